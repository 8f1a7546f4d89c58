/*
 * loadgen.c - MQTT load generator for the vigil benchmarks (driven by bench/run.sh).
 *
 * Opens N MQTT connections (v3.1.1 or v5) at a bounded rate, each bound to a
 * source address cycling over 127.0.0.0/8 (so N is not capped by the ~28k
 * ephemeral ports of one address pair), then runs one scenario:
 *   idle   hold everything, PINGREQ only when needed to stay inside keepalive;
 *   ping   every connection sends PINGREQ every I seconds, evenly spread;
 *   silent N clients with wills stop sending and reading at T0 (sockets stay
 *          open: a dead peer); an observer subscribed to will/# times the wills.
 * It does not measure the broker (run.sh samples /proc/PID), speaks no QoS > 0
 * and decodes only what it must (CONNACK, SUBACK, PINGRESP, PUBLISH topics).
 * Invariant: every loop is bounded by a count or by the global deadline; a
 * connection is in exactly one state and owns at most one fd.
 * Output: key=value lines on stdout ("phase=..." markers as they happen, the
 * results at the end), human summary lines prefixed with "# ".
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { SC_IDLE, SC_PING, SC_SILENT, SC_CONNECT, SC_FANOUT };
enum { ST_FREE, ST_TCP, ST_CONNACK, ST_UP, ST_SILENT, ST_DEAD };
enum { P_HDR, P_LEN, P_BODY };

#define NONE32 UINT32_MAX
#define EV_OBS (UINT64_MAX - 1)
#define EV_SIG UINT64_MAX
#define RTT_MAX_MS 60000
#define RBUF_SIZE 65536
#define OBS_BUF 65536

static const char *const scenario_names[] = { "idle", "ping", "silent", "connect", "fanout" };

struct cfg {
	struct sockaddr_in dst;
	unsigned n, version, keepalive, rate, inflight, nsrc, obs_keepalive, nsub, payload;
	int scenario, will;
	double window_s, interval_s, settle_s, hold_s, timeout_s, connect_s;
	char prefix[40];
	int quiet;
};

/* One client connection; small on purpose (a million of them must fit). */
struct lconn {
	int fd;
	uint8_t state, pst, ptype, shift, rc;
	uint32_t rl, got;
	uint32_t last_tx;        /* ms since start of the last packet we wrote */
	uint32_t ping_tx;        /* ms since start of the outstanding PINGREQ, NONE32 if none */
};

struct observer {
	int fd, ready;
	uint32_t last_tx;
	size_t len;
	uint8_t buf[OBS_BUF];
};

struct lg {
	struct cfg cfg;
	int ep, sigfd, stop;
	int64_t start_ns;
	struct lconn *c;
	struct observer *obs;
	uint8_t *rbuf;
	uint32_t *rtt_hist;
	int32_t *late;           /* per client will lateness in ms, INT32_MIN = none yet */
	int in_window;
	/* connect phase */
	unsigned started, inflight, up, failed, refused, last_refusal;
	uint32_t connected_at;
	/* sweeps */
	uint64_t ka_visits, ping_visits;
	uint32_t ping_t0;
	/* counters */
	uint64_t pings_sent, pongs, pongs_window, pings_skipped, write_fail, dropped, other_pkts;
	uint64_t ka_pings;
	/* fanout */
	uint64_t pubs_sent, pubs_rx, pubs_rx_window, subacks;
	uint64_t pub_visits;
	/* silent */
	unsigned silent_n, wills, will_dups, will_unknown, will_unexpected;
	uint32_t t0;
};

static uint32_t now_ms(const struct lg *g)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint32_t)(((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - g->start_ns) / 1000000);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* ---- encoding ---- */

static size_t put_varint(uint8_t *b, uint32_t v)
{
	size_t n = 0;
	do {
		uint8_t d = v % 128;
		v /= 128;
		b[n++] = (uint8_t)(d | (v ? 0x80 : 0));
	} while (v && n < 4);
	return n;
}

static size_t put_str(uint8_t *b, const char *s, size_t len)
{
	b[0] = (uint8_t)(len >> 8);
	b[1] = (uint8_t)len;
	memcpy(b + 2, s, len);
	return len + 2;
}

/* Builds a CONNECT into b (room for 512 bytes); clean session, will QoS 0 not retained. */
static size_t build_connect(uint8_t *b, const struct cfg *cf, const char *id, unsigned keepalive,
			    int will)
{
	uint8_t body[480];
	size_t n = 0;
	char topic[96];
	size_t idlen = strlen(id);

	n += put_str(body + n, "MQTT", 4);
	body[n++] = (uint8_t)cf->version;
	body[n++] = (uint8_t)(0x02 | (will ? 0x04 : 0));
	body[n++] = (uint8_t)(keepalive >> 8);
	body[n++] = (uint8_t)keepalive;
	if (cf->version == 5)
		body[n++] = 0; /* no properties */
	n += put_str(body + n, id, idlen);
	if (will) {
		int tl = snprintf(topic, sizeof topic, "will/%s", id);
		if (cf->version == 5)
			body[n++] = 0; /* no will properties */
		n += put_str(body + n, topic, (size_t)tl);
		n += put_str(body + n, "dead", 4);
	}
	b[0] = 0x10;
	size_t h = 1 + put_varint(b + 1, (uint32_t)n);
	memcpy(b + h, body, n);
	return h + n;
}

static size_t build_subscribe(uint8_t *b, const struct cfg *cf, const char *filter)
{
	uint8_t body[128];
	size_t n = 0;
	body[n++] = 0;
	body[n++] = 1; /* packet id 1 */
	if (cf->version == 5)
		body[n++] = 0;
	n += put_str(body + n, filter, strlen(filter));
	body[n++] = 0; /* QoS 0 */
	b[0] = 0x82;
	size_t h = 1 + put_varint(b + 1, (uint32_t)n);
	memcpy(b + h, body, n);
	return h + n;
}

/* QoS 0 PUBLISH of cf->payload bytes to topic. */
static size_t build_publish(uint8_t *b, const struct cfg *cf, const char *topic)
{
	uint8_t body[1200];
	size_t n = put_str(body, topic, strlen(topic));
	if (cf->version == 5)
		body[n++] = 0;
	memset(body + n, 'x', cf->payload);
	n += cf->payload;
	b[0] = 0x30;
	size_t h = 1 + put_varint(b + 1, (uint32_t)n);
	memcpy(b + h, body, n);
	return h + n;
}

static void client_id(const struct lg *g, unsigned i, char *out, size_t cap)
{
	snprintf(out, cap, "%s-%u", g->cfg.prefix, i);
}

/* ---- connections ---- */

static void conn_close(struct lg *g, unsigned i, int was_up)
{
	struct lconn *c = &g->c[i];
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->state == ST_TCP || c->state == ST_CONNACK) {
		g->inflight--;
		g->failed++;
	} else if (was_up) {
		g->dropped++;
	}
	c->state = ST_DEAD;
}

static int conn_write(struct lg *g, unsigned i, const uint8_t *b, size_t n)
{
	struct lconn *c = &g->c[i];
	ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
	if (w != (ssize_t)n) {
		g->write_fail++;
		return -1;
	}
	c->last_tx = now_ms(g);
	return 0;
}

static void conn_send_connect(struct lg *g, unsigned i)
{
	uint8_t b[512];
	char id[64];
	client_id(g, i, id, sizeof id);
	size_t n = build_connect(b, &g->cfg, id, g->cfg.keepalive, g->cfg.will);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };
	if (conn_write(g, i, b, n) < 0 || epoll_ctl(g->ep, EPOLL_CTL_MOD, g->c[i].fd, &ev) < 0) {
		conn_close(g, i, 0);
		return;
	}
	g->c[i].state = ST_CONNACK;
}

static void conn_start(struct lg *g, unsigned i)
{
	struct lconn *c = &g->c[i];
	unsigned j = i % g->cfg.nsrc;
	struct sockaddr_in src = { .sin_family = AF_INET };
	int one = 1;

	src.sin_addr.s_addr = htonl(0x7f000000u | ((j / 254) << 8) | (j % 254 + 1));
	c->state = ST_TCP;
	c->ping_tx = NONE32;
	g->inflight++;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_close(g, i, 0);
		return;
	}
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) {
		conn_close(g, i, 0);
		return;
	}
	int r = connect(c->fd, (struct sockaddr *)&g->cfg.dst, sizeof g->cfg.dst);
	if (r < 0 && errno != EINPROGRESS) {
		conn_close(g, i, 0);
		return;
	}
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN, .data.u64 = i };
	if (epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		conn_close(g, i, 0);
		return;
	}
	if (r == 0)
		conn_send_connect(g, i);
}

static void conn_packet(struct lg *g, unsigned i)
{
	struct lconn *c = &g->c[i];
	uint32_t now;

	switch (c->ptype) {
	case 2: /* CONNACK: byte 2 of the body is the return / reason code */
		if (c->state != ST_CONNACK)
			break;
		g->inflight--;
		if (c->rc == 0 && c->rl >= 2) {
			c->state = ST_UP;
			g->up++;
		} else {
			g->refused++;
			g->last_refusal = c->rc;
			close(c->fd);
			c->fd = -1;
			c->state = ST_DEAD;
			g->failed++;
		}
		break;
	case 3: /* PUBLISH (fanout: delivered to a subscriber) */
		g->pubs_rx++;
		if (g->in_window)
			g->pubs_rx_window++;
		break;
	case 9: /* SUBACK */
		g->subacks++;
		break;
	case 13: /* PINGRESP */
		g->pongs++;
		now = now_ms(g);
		if (g->in_window)
			g->pongs_window++;
		if (c->ping_tx != NONE32) {
			uint32_t rtt = now - c->ping_tx;
			g->rtt_hist[rtt > RTT_MAX_MS ? RTT_MAX_MS : rtt]++;
			c->ping_tx = NONE32;
		}
		break;
	default:
		g->other_pkts++;
	}
}

/* Stream parser: keeps only the packet type, its length and the second body byte. */
static int conn_feed(struct lg *g, unsigned i, const uint8_t *p, size_t n)
{
	struct lconn *c = &g->c[i];
	size_t k = 0;

	while (k < n) {
		if (c->pst == P_HDR) {
			c->ptype = p[k++] >> 4;
			c->rl = 0;
			c->shift = 0;
			c->got = 0;
			c->rc = 0xff;
			c->pst = P_LEN;
		} else if (c->pst == P_LEN) {
			uint8_t d = p[k++];
			c->rl |= (uint32_t)(d & 0x7f) << c->shift;
			c->shift += 7;
			if (!(d & 0x80))
				c->pst = P_BODY;
			else if (c->shift > 21)
				return -1;
		} else {
			size_t take = n - k;
			if (take > c->rl - c->got)
				take = c->rl - c->got;
			if (c->got <= 1 && c->got + take > 1)
				c->rc = p[k + 1 - c->got];
			c->got += (uint32_t)take;
			k += take;
		}
		if (c->pst == P_BODY && c->got == c->rl) {
			c->pst = P_HDR;
			conn_packet(g, i);
			if (c->state == ST_DEAD)
				return 1;
		}
	}
	return 0;
}

static void conn_read(struct lg *g, unsigned i)
{
	struct lconn *c = &g->c[i];
	for (int round = 0; round < 8 && (c->state == ST_CONNACK || c->state == ST_UP); round++) {
		ssize_t r = read(c->fd, g->rbuf, RBUF_SIZE);
		if (r > 0) {
			int f = conn_feed(g, i, g->rbuf, (size_t)r);
			if (f < 0)
				conn_close(g, i, c->state == ST_UP);
			if (f != 0 || r < RBUF_SIZE)
				return;
		} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
			conn_close(g, i, c->state == ST_UP);
			return;
		} else if (errno == EAGAIN) {
			return;
		}
	}
}

static void conn_event(struct lg *g, unsigned i, uint32_t ev)
{
	struct lconn *c = &g->c[i];
	if (c->state == ST_TCP) {
		int err = 0;
		socklen_t l = sizeof err;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err || (ev & EPOLLERR))
			conn_close(g, i, 0);
		else if (ev & (EPOLLOUT | EPOLLHUP | EPOLLIN))
			conn_send_connect(g, i);
		return;
	}
	if (c->state == ST_CONNACK || c->state == ST_UP)
		conn_read(g, i);
}

static int conn_ping(struct lg *g, unsigned i)
{
	static const uint8_t pingreq[2] = { 0xc0, 0x00 };
	if (conn_write(g, i, pingreq, 2) < 0)
		return -1;
	g->pings_sent++;
	if (g->c[i].ping_tx == NONE32)
		g->c[i].ping_tx = g->c[i].last_tx;
	return 0;
}

/* ---- observer (silent scenario) ---- */

static int obs_write(struct lg *g, const uint8_t *b, size_t n)
{
	if (send(g->obs->fd, b, n, MSG_NOSIGNAL) != (ssize_t)n)
		return -1;
	g->obs->last_tx = now_ms(g);
	return 0;
}

/* One PUBLISH on will/<prefix>-<i>: record lateness of client i. */
static void obs_will(struct lg *g, const uint8_t *body, uint32_t rl)
{
	char want[64];
	int wl = snprintf(want, sizeof want, "will/%s-", g->cfg.prefix);
	uint32_t now = now_ms(g);

	if (rl < 2) {
		g->will_unknown++;
		return;
	}
	size_t tl = (size_t)body[0] << 8 | body[1];
	if (tl + 2 > rl || tl <= (size_t)wl || tl - (size_t)wl > 9 ||
	    memcmp(body + 2, want, (size_t)wl) != 0) {
		g->will_unknown++;
		return;
	}
	unsigned idx = 0;
	for (size_t k = 2 + (size_t)wl; k < 2 + tl; k++) {
		if (body[k] < '0' || body[k] > '9') {
			g->will_unknown++;
			return;
		}
		idx = idx * 10 + (unsigned)(body[k] - '0');
	}
	if (idx >= g->cfg.n) {
		g->will_unknown++;
		return;
	}
	if (g->late[idx] != INT32_MIN) {
		g->will_dups++;
		return;
	}
	if (g->c[idx].state != ST_SILENT) {
		g->will_unexpected++;
		g->late[idx] = INT32_MAX;
		return;
	}
	int64_t due = (int64_t)g->c[idx].last_tx + (int64_t)g->cfg.keepalive * 1500;
	g->late[idx] = (int32_t)((int64_t)now - due);
	g->wills++;
}

static int obs_read(struct lg *g)
{
	struct observer *o = g->obs;
	for (int round = 0; round < 64; round++) {
		ssize_t r = read(o->fd, o->buf + o->len, OBS_BUF - o->len);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			return -1;
		if (r < 0 && errno == EAGAIN)
			return 0;
		if (r < 0)
			continue;
		o->len += (size_t)r;
		size_t k = 0;
		while (o->len - k >= 2) {
			uint32_t rl = 0;
			size_t h = 1;
			int shift = 0, complete = 0;
			while (h < o->len - k && h <= 4) {
				uint8_t d = o->buf[k + h++];
				rl |= (uint32_t)(d & 0x7f) << shift;
				shift += 7;
				if (!(d & 0x80)) {
					complete = 1;
					break;
				}
			}
			if (!complete) {
				if (h > 4)
					return -1;
				break; /* length incomplete */
			}
			if (rl + h > OBS_BUF)
				return -1;
			if (o->len - k < h + rl)
				break;
			uint8_t type = o->buf[k] >> 4;
			if (type == 3)
				obs_will(g, o->buf + k + h, rl);
			else if (type == 9)
				o->ready = 1;
			k += h + rl;
		}
		memmove(o->buf, o->buf + k, o->len - k);
		o->len -= k;
	}
	return 0;
}

/* Connects the observer synchronously (bounded by socket timeouts) and subscribes to will/#. */
static int obs_setup(struct lg *g)
{
	struct observer *o = g->obs;
	uint8_t b[512];
	char id[64];
	struct timeval tv = { .tv_sec = 5 };

	o->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (o->fd < 0)
		return -1;
	setsockopt(o->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(o->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	int rcvbuf = 4 << 20;
	setsockopt(o->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	if (connect(o->fd, (struct sockaddr *)&g->cfg.dst, sizeof g->cfg.dst) < 0)
		return -1;
	snprintf(id, sizeof id, "%s-obs", g->cfg.prefix);
	if (obs_write(g, b, build_connect(b, &g->cfg, id, g->cfg.obs_keepalive, 0)) < 0)
		return -1;
	ssize_t r = read(o->fd, b, 4);
	if (r < 4 || b[0] != 0x20 || b[3] != 0)
		return -1;
	/* Drain the rest of a v5 CONNACK (properties), bounded. */
	if (b[1] > 2 && read(o->fd, b, (size_t)(b[1] - 2)) < 0)
		return -1;
	if (obs_write(g, b, build_subscribe(b, &g->cfg, "will/#")) < 0)
		return -1;
	int fl = fcntl(o->fd, F_GETFL);
	if (fcntl(o->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_OBS };
	return epoll_ctl(g->ep, EPOLL_CTL_ADD, o->fd, &ev);
}

/* ---- loop ---- */

/* Keepalive sweep: visits every client once per 0.15 K and pings it if quiet for 0.7 K,
 * so no client stays quiet longer than 0.85 K. */
static void sweep_keepalive(struct lg *g, uint32_t now)
{
	uint32_t k_ms = g->cfg.keepalive * 1000;
	uint64_t period = k_ms * 15 / 100;
	uint64_t target, budget = g->cfg.n;

	if (k_ms == 0)
		return;
	target = (uint64_t)now * g->cfg.n / (period ? period : 1);
	for (; g->ka_visits < target && budget; g->ka_visits++, budget--) {
		unsigned i = (unsigned)(g->ka_visits % g->cfg.n);
		struct lconn *c = &g->c[i];
		if (c->state == ST_UP && now - c->last_tx >= k_ms * 7 / 10) {
			if (conn_ping(g, i) == 0)
				g->ka_pings++;
		}
	}
	g->ka_visits = target > g->ka_visits ? target : g->ka_visits;
	if (g->obs && g->obs->fd >= 0 && now - g->obs->last_tx >= g->cfg.obs_keepalive * 700) {
		static const uint8_t pingreq[2] = { 0xc0, 0x00 };
		obs_write(g, pingreq, 2);
	}
}

/* Ping scenario: client i pings at ping_t0 + (i / N + m) x I. */
static void sweep_ping(struct lg *g, uint32_t now)
{
	uint64_t iv = (uint64_t)(g->cfg.interval_s * 1000);
	uint64_t target = (uint64_t)(now - g->ping_t0) * g->cfg.n / (iv ? iv : 1);
	uint64_t budget = g->cfg.n;

	for (; g->ping_visits < target && budget; g->ping_visits++, budget--) {
		unsigned i = (unsigned)(g->ping_visits % g->cfg.n);
		if (g->c[i].state != ST_UP)
			continue;
		if (g->c[i].ping_tx != NONE32) {
			g->pings_skipped++;
			continue;
		}
		conn_ping(g, i);
	}
	g->ping_visits = target > g->ping_visits ? target : g->ping_visits;
}

/* Fanout scenario: every publisher (clients nsub..N-1) sends one QoS 0
 * PUBLISH per interval, spread evenly; the nsub subscribers of bench/# each
 * receive every message. */
static void sweep_publish(struct lg *g, uint32_t now)
{
	unsigned npub = g->cfg.n - g->cfg.nsub;
	uint64_t iv = (uint64_t)(g->cfg.interval_s * 1000);
	uint64_t target = (uint64_t)(now - g->ping_t0) * npub / (iv ? iv : 1);
	uint64_t budget = npub;
	uint8_t b[1300];
	char topic[32];

	for (; npub && g->pub_visits < target && budget; g->pub_visits++, budget--) {
		unsigned i = g->cfg.nsub + (unsigned)(g->pub_visits % npub);
		if (g->c[i].state != ST_UP)
			continue;
		snprintf(topic, sizeof topic, "bench/%u", i % 100);
		if (conn_write(g, i, b, build_publish(b, &g->cfg, topic)) == 0)
			g->pubs_sent++;
	}
	g->pub_visits = target > g->pub_visits ? target : g->pub_visits;
}

static void sweep_connect(struct lg *g, uint32_t now)
{
	uint64_t allowed = (uint64_t)now * g->cfg.rate / 1000 + 1;
	while (g->started < g->cfg.n && g->started < allowed && g->inflight < g->cfg.inflight)
		conn_start(g, g->started++);
}

/* One pass: wait up to wait_ms for events, dispatch them, run the active sweeps. */
static void loop_once(struct lg *g, int wait_ms, int ka, int ping)
{
	struct epoll_event evs[1024];
	int n = epoll_wait(g->ep, evs, 1024, wait_ms);
	for (int k = 0; k < n; k++) {
		uint64_t d = evs[k].data.u64;
		if (d == EV_SIG) {
			struct signalfd_siginfo si;
			if (read(g->sigfd, &si, sizeof si) > 0)
				g->stop = 1;
		} else if (d == EV_OBS) {
			if (obs_read(g) < 0) {
				epoll_ctl(g->ep, EPOLL_CTL_DEL, g->obs->fd, NULL);
				g->obs->ready = -1;
			}
		} else if (d < g->cfg.n) {
			conn_event(g, (unsigned)d, evs[k].events);
		}
	}
	uint32_t now = now_ms(g);
	if (g->started < g->cfg.n)
		sweep_connect(g, now);
	if (ka)
		sweep_keepalive(g, now);
	if (ping == 1)
		sweep_ping(g, now);
	else if (ping == 2)
		sweep_publish(g, now);
}

/* Runs the loop until stop, deadline (ms since start) or done(g) holds. */
static void run_until(struct lg *g, uint32_t until, int ka, int ping, int (*done)(struct lg *))
{
	uint32_t hard = (uint32_t)(g->cfg.timeout_s * 1000);
	for (;;) {
		uint32_t now = now_ms(g);
		if (g->stop || now >= until || now >= hard || (done && done(g)))
			return;
		loop_once(g, 5, ka, ping);
	}
}

static int connect_done(struct lg *g)
{
	return g->started == g->cfg.n && g->inflight == 0;
}

static int silent_done(struct lg *g)
{
	return g->wills >= g->silent_n;
}

static int obs_ready(struct lg *g)
{
	return g->obs->ready != 0;
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

static uint32_t hist_pct(const uint32_t *h, uint64_t total, double p)
{
	uint64_t want = (uint64_t)(p / 100.0 * (double)(total - 1)), acc = 0;
	for (uint32_t k = 0; k <= RTT_MAX_MS; k++) {
		acc += h[k];
		if (acc > want)
			return k;
	}
	return RTT_MAX_MS;
}

static void report_silent(struct lg *g)
{
	int32_t *v = calloc(g->cfg.n ? g->cfg.n : 1, sizeof *v);
	unsigned m = 0, early = 0;
	if (!v) {
		say("error=oom\n");
		return;
	}
	for (unsigned i = 0; i < g->cfg.n; i++)
		if (g->late[i] != INT32_MIN && g->late[i] != INT32_MAX) {
			v[m++] = g->late[i];
			early += g->late[i] < -1; /* beyond the 1 ms resolution */
		}
	qsort(v, m, sizeof *v, cmp_i32);
	say("wills_expected=%u\nwills_received=%u\nwills_duplicate=%u\nwills_missing=%u\n"
	    "wills_unknown=%u\nwills_unexpected=%u\nwills_early=%u\n",
	    g->silent_n, g->wills, g->will_dups, g->silent_n - g->wills, g->will_unknown,
	    g->will_unexpected, early);
	if (m) {
		say("lateness_min_ms=%d\nlateness_p50_ms=%d\nlateness_p90_ms=%d\n"
		    "lateness_p99_ms=%d\nlateness_max_ms=%d\n",
		    v[0], v[m / 2], v[(size_t)((m - 1) * 0.9)], v[(size_t)((m - 1) * 0.99)], v[m - 1]);
		if (!g->cfg.quiet)
			say("# silent: %u/%u wills (%u dup, %u early) lateness ms min %d p50 %d p90 %d "
			    "p99 %d max %d (K=%u)\n",
			    g->wills, g->silent_n, g->will_dups, early, v[0], v[m / 2],
			    v[(size_t)((m - 1) * 0.9)], v[(size_t)((m - 1) * 0.99)], v[m - 1],
			    g->cfg.keepalive);
	}
	free(v);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: loadgen -p PORT [-H 127.0.0.1] [-s idle|ping|silent|connect] [-n CONNS]\n"
		"  [-V 4|5] [-k KEEPALIVE] [-w] [-r CONNECTS_PER_S] [-m MAX_PENDING] [-S NSRC]\n"
		"  [-d WINDOW_S] [-i PING_INTERVAL_S] [-W SETTLE_S] [-g HOLD_S] [-C CONNECT_TIMEOUT_S]\n"
		"  [-T TIMEOUT_S] [-c ID_PREFIX] [-b SUBSCRIBERS] [-P PAYLOAD_BYTES] [-q]\n"
		"  fanout: clients 0..b-1 subscribe to bench/#, the others publish QoS 0 every -i s\n");
}

static int parse_args(struct cfg *cf, int argc, char **argv)
{
	int opt, kset = 0, dset = 0;
	const char *host = "127.0.0.1";
	unsigned port = 0;

	*cf = (struct cfg){ .n = 1000, .version = 4, .keepalive = 60, .rate = 5000, .inflight = 200,
			    .obs_keepalive = 60, .window_s = 30, .interval_s = 1, .settle_s = 1,
			    .hold_s = 5, .timeout_s = 0, .connect_s = 0, .nsub = 10, .payload = 64 };
	snprintf(cf->prefix, sizeof cf->prefix, "lg%ld", (long)getpid());
	while ((opt = getopt(argc, argv, "H:p:s:n:V:k:wr:m:S:d:i:W:g:C:T:c:b:P:q")) != -1) {
		switch (opt) {
		case 'H': host = optarg; break;
		case 'p': port = (unsigned)atoi(optarg); break;
		case 's':
			cf->scenario = -1;
			for (int k = 0; k < 5; k++)
				if (strcmp(optarg, scenario_names[k]) == 0)
					cf->scenario = k;
			if (cf->scenario < 0)
				return -1;
			break;
		case 'n': cf->n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'V': cf->version = (unsigned)atoi(optarg); break;
		case 'k': cf->keepalive = (unsigned)atoi(optarg); kset = 1; break;
		case 'w': cf->will = 1; break;
		case 'r': cf->rate = (unsigned)atoi(optarg); break;
		case 'm': cf->inflight = (unsigned)atoi(optarg); break;
		case 'S': cf->nsrc = (unsigned)atoi(optarg); break;
		case 'd': cf->window_s = atof(optarg); dset = 1; break;
		case 'i': cf->interval_s = atof(optarg); break;
		case 'W': cf->settle_s = atof(optarg); break;
		case 'g': cf->hold_s = atof(optarg); break;
		case 'C': cf->connect_s = atof(optarg); break;
		case 'T': cf->timeout_s = atof(optarg); break;
		case 'c': snprintf(cf->prefix, sizeof cf->prefix, "%s", optarg); break;
		case 'b': cf->nsub = (unsigned)atoi(optarg); break;
		case 'P': cf->payload = (unsigned)atoi(optarg); break;
		case 'q': cf->quiet = 1; break;
		default: return -1;
		}
	}
	if (port == 0 || port > 65535 || cf->n == 0 || cf->n > 10000000 || cf->rate == 0 ||
	    cf->inflight == 0 || (cf->version != 4 && cf->version != 5) || cf->keepalive > 65535 ||
	    cf->interval_s <= 0 || cf->window_s < 0 || cf->payload > 1000 ||
	    (cf->scenario == SC_FANOUT && (cf->nsub == 0 || cf->nsub >= cf->n)))
		return -1;
	if (inet_pton(AF_INET, host, &cf->dst.sin_addr) != 1)
		return -1;
	cf->dst.sin_family = AF_INET;
	cf->dst.sin_port = htons((uint16_t)port);
	if (cf->scenario == SC_SILENT) {
		cf->will = 1;
		if (!kset)
			cf->keepalive = 2;
		if (!dset)
			cf->window_s = 3.0 * cf->keepalive + 5;
		if (cf->keepalive == 0)
			return -1;
	}
	if (cf->nsrc == 0) {
		cf->nsrc = (cf->n + 19999) / 20000;
		if (cf->nsrc < 8)
			cf->nsrc = 8;
	}
	if (cf->nsrc > 254 * 254)
		return -1;
	if (cf->connect_s <= 0)
		cf->connect_s = (double)cf->n / cf->rate * 2 + 30;
	if (cf->timeout_s <= 0)
		cf->timeout_s = cf->connect_s + cf->settle_s + cf->window_s + cf->hold_s + 30;
	return 0;
}

static int setup(struct lg *g)
{
	struct rlimit rl;
	sigset_t ss;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	g->start_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((uint64_t)g->cfg.n + 16 > (uint64_t)rl.rlim_cur) {
		fprintf(stderr, "loadgen: %u connections need more fds than RLIMIT_NOFILE %llu\n",
			g->cfg.n, (unsigned long long)rl.rlim_cur);
		return -1;
	}
	g->c = calloc(g->cfg.n, sizeof *g->c);
	g->rbuf = malloc(RBUF_SIZE);
	g->rtt_hist = calloc(RTT_MAX_MS + 1, sizeof *g->rtt_hist);
	g->late = malloc(sizeof *g->late * g->cfg.n);
	if (!g->c || !g->rbuf || !g->rtt_hist || !g->late)
		return -1;
	for (unsigned i = 0; i < g->cfg.n; i++) {
		g->c[i].fd = -1;
		g->late[i] = INT32_MIN;
	}
	g->ep = epoll_create1(EPOLL_CLOEXEC);
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	g->sigfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_SIG };
	if (g->ep < 0 || g->sigfd < 0 || epoll_ctl(g->ep, EPOLL_CTL_ADD, g->sigfd, &ev) < 0)
		return -1;
	return 0;
}

static void teardown(struct lg *g)
{
	if (g->c)
		for (unsigned i = 0; i < g->cfg.n; i++)
			if (g->c[i].fd >= 0)
				close(g->c[i].fd);
	if (g->obs && g->obs->fd >= 0)
		close(g->obs->fd);
	if (g->ep >= 0)
		close(g->ep);
	if (g->sigfd >= 0)
		close(g->sigfd);
	free(g->c);
	free(g->obs);
	free(g->rbuf);
	free(g->rtt_hist);
	free(g->late);
}

int main(int argc, char **argv)
{
	struct lg g = { .ep = -1, .sigfd = -1 };
	const struct cfg *cf = &g.cfg;
	uint32_t tw0 = 0, tw1 = 0, t_conn;
	uint64_t ka0 = 0;
	int rc = 1;

	if (parse_args(&g.cfg, argc, argv) < 0) {
		usage();
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (setup(&g) < 0) {
		fprintf(stderr, "loadgen: setup failed: %s\n", strerror(errno));
		goto out;
	}
	say("scenario=%s\nconns=%u\nversion=%u\nkeepalive=%u\nwill=%d\nsources=%u\n",
	    scenario_names[cf->scenario], cf->n, cf->version, cf->keepalive, cf->will, cf->nsrc);
	if (cf->scenario == SC_SILENT) {
		g.obs = calloc(1, sizeof *g.obs);
		if (!g.obs || (g.obs->fd = -1, obs_setup(&g) < 0)) {
			say("error=observer_setup\n");
			goto out;
		}
		run_until(&g, now_ms(&g) + 5000, 0, 0, obs_ready);
		if (g.obs->ready != 1) {
			say("error=observer_suback\n");
			goto out;
		}
	}

	/* Connect phase. */
	run_until(&g, (uint32_t)(cf->connect_s * 1000), 1, 0, connect_done);
	t_conn = now_ms(&g);
	for (unsigned i = 0; i < g.started; i++)
		if (g.c[i].state == ST_TCP || g.c[i].state == ST_CONNACK)
			conn_close(&g, i, 0);
	say("phase=connected\nconnected=%u\nconnect_failed=%u\nconnect_refused=%u\n"
	    "connect_secs=%.3f\n", g.up, g.failed + (cf->n - g.started), g.refused, t_conn / 1000.0);
	if (g.refused)
		say("last_refusal_code=%u\n", g.last_refusal);
	if (!cf->quiet)
		say("# connected %u/%u in %.2f s (%u failed, %u refused)\n", g.up, cf->n,
		    t_conn / 1000.0, g.failed, g.refused);
	if (g.stop || g.up == 0)
		goto results;

	if (cf->scenario == SC_FANOUT) {
		uint8_t sb[64];
		size_t sn = build_subscribe(sb, cf, "bench/#");
		for (unsigned i = 0; i < cf->nsub; i++)
			if (g.c[i].state == ST_UP)
				conn_write(&g, i, sb, sn);
	}
	run_until(&g, t_conn + (uint32_t)(cf->settle_s * 1000), 1, 0, NULL);
	tw0 = now_ms(&g);
	ka0 = g.ka_pings;
	g.in_window = 1;
	if (cf->scenario == SC_SILENT) {
		g.t0 = tw0;
		for (unsigned i = 0; i < cf->n; i++)
			if (g.c[i].state == ST_UP) {
				epoll_ctl(g.ep, EPOLL_CTL_DEL, g.c[i].fd, NULL);
				g.c[i].state = ST_SILENT;
				g.silent_n++;
			}
		say("phase=window_start\nsilent_clients=%u\n", g.silent_n);
		run_until(&g, tw0 + (uint32_t)(cf->window_s * 1000), 1, 0, silent_done);
	} else {
		say("phase=window_start\n");
		g.ping_t0 = tw0;
		run_until(&g, tw0 + (uint32_t)(cf->window_s * 1000), 1,
			  cf->scenario == SC_PING ? 1 : cf->scenario == SC_FANOUT ? 2 : 0, NULL);
	}
	tw1 = now_ms(&g);
	g.in_window = 0;
	say("phase=window_end\nwindow_secs=%.3f\n", (tw1 - tw0) / 1000.0);

results:
	tw1 = now_ms(&g);
	say("dropped_by_broker=%llu\nwrite_failures=%llu\nkeepalive_pings=%llu\n",
	    (unsigned long long)g.dropped, (unsigned long long)g.write_fail,
	    (unsigned long long)g.ka_pings);
	if (cf->scenario == SC_IDLE && g.in_window == 0 && tw1 > tw0)
		say("keepalive_pings_in_window=%llu\n", (unsigned long long)(g.ka_pings - ka0));
	if (cf->scenario == SC_PING && tw1 > tw0) {
		double secs = (tw1 - tw0) / 1000.0;
		uint64_t tot = 0;
		for (uint32_t k = 0; k <= RTT_MAX_MS; k++)
			tot += g.rtt_hist[k];
		say("ping_interval_s=%.3f\npings_sent=%llu\npongs=%llu\npongs_in_window=%llu\n"
		    "pings_skipped=%llu\npings_per_sec=%.1f\nping_target_per_sec=%.1f\n",
		    cf->interval_s, (unsigned long long)g.pings_sent, (unsigned long long)g.pongs,
		    (unsigned long long)g.pongs_window, (unsigned long long)g.pings_skipped,
		    g.pongs_window / secs, g.up / cf->interval_s);
		if (tot)
			say("rtt_p50_ms=%u\nrtt_p99_ms=%u\nrtt_max_ms=%u\n",
			    hist_pct(g.rtt_hist, tot, 50), hist_pct(g.rtt_hist, tot, 99),
			    hist_pct(g.rtt_hist, tot, 100));
		if (!cf->quiet)
			say("# ping: %.0f pings/s answered (target %.0f), %llu skipped, rtt p50 %u ms "
			    "p99 %u ms\n", g.pongs_window / secs, g.up / cf->interval_s,
			    (unsigned long long)g.pings_skipped, tot ? hist_pct(g.rtt_hist, tot, 50) : 0,
			    tot ? hist_pct(g.rtt_hist, tot, 99) : 0);
	}
	if (cf->scenario == SC_FANOUT && tw1 > tw0) {
		double secs = (tw1 - tw0) / 1000.0;
		say("subscribers=%u\nsubacks=%llu\npublishes_sent=%llu\ndelivered=%llu\n"
		    "delivered_in_window=%llu\ndelivered_per_sec=%.1f\ndelivery_target_per_sec=%.1f\n",
		    cf->nsub, (unsigned long long)g.subacks, (unsigned long long)g.pubs_sent,
		    (unsigned long long)g.pubs_rx, (unsigned long long)g.pubs_rx_window, g.pubs_rx_window / secs,
		    (cf->n - cf->nsub) / cf->interval_s * cf->nsub);
		if (!cf->quiet)
			say("# fanout: %.0f deliveries/s (target %.0f)\n", g.pubs_rx_window / secs,
			    (cf->n - cf->nsub) / cf->interval_s * cf->nsub);
	}
	if (cf->scenario == SC_SILENT)
		report_silent(&g);
	say("phase=done\n");
	rc = g.up == cf->n && g.dropped == 0 ? 0 : 3;
	if (cf->scenario == SC_SILENT)
		rc = (g.wills == g.silent_n && g.will_dups == 0 && g.up == cf->n) ? 0 : 3;
	/* Hold the connections so the caller can sample the broker, unless told to stop. */
	if (!g.stop)
		run_until(&g, now_ms(&g) + (uint32_t)(cf->hold_s * 1000), 1, 0, NULL);
out:
	teardown(&g);
	return rc;
}
