/*
 * fanin.c - QoS 1 fan-in load for the vigil benchmarks (driven by bench/run.sh).
 *
 * P publishers each keep W QoS 1 PUBLISHes in flight (a new one leaves as soon
 * as a PUBACK comes back) on topic fanin/<i>; one subscriber holds fanin/# at
 * QoS 1 and answers every PUBLISH with PUBACK at once. Optionally the
 * subscriber's session is persistent (-c: v3.1.1 clean session 0, v5 clean
 * start 0 with session expiry 3600), which makes a store write every delivery.
 * After a warm-up it counts over a window the PUBACKs the publishers get and
 * the PUBLISHes the subscriber gets; then the publishers stop and it waits for
 * the subscriber to receive everything acknowledged, and checks loss: each
 * payload carries (publisher, sequence), one publisher's messages arrive in
 * order (MQTT 4.6), so a gap is a lost message and a repeat a duplicate.
 * It does not measure the broker's CPU (run.sh samples /proc/PID).
 * Invariant: every loop is bounded by the global deadline; writes are
 * appended to a per-connection buffer and flushed once per loop pass.
 * Output: key=value lines on stdout, "phase=..." markers as they happen.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF 262144
#define WBUF 262144

struct fconn {
	int fd, up, want_out;
	uint32_t idx; /* publisher index; UINT32_MAX: the subscriber */
	uint8_t *rb, *wb;
	size_t rlen, wlen;
	uint64_t sent, acked;  /* publisher: PUBLISHes written, PUBACKs received */
	uint32_t next_expect;  /* subscriber side, per publisher: next sequence */
};

static struct {
	struct sockaddr_in dst;
	unsigned np, win, payload, version, persist;
	uint64_t max_msgs;       /* -m: messages per publisher, 0 = timed window */
	int retain, offline;     /* -r: retained, one topic per message; -o: subscriber goes away first */
	double warm_s, window_s, drain_s;
	int ep;
	struct fconn *pubs, sub;
	uint32_t *expect;        /* per publisher: next sequence the subscriber expects */
	uint64_t rx, rx_window, acks_window, gaps, dups, other;
	int publishing, in_window;
} g;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "fanin: %s: %s\n", what, strerror(errno));
	exit(1);
}

static size_t put_vbi(uint8_t *p, uint32_t v)
{
	size_t n = 0;
	do {
		uint8_t b = v & 0x7f;
		v >>= 7;
		p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
	} while (v);
	return n;
}

static uint8_t *out(struct fconn *c, size_t n)
{
	if (c->wlen + n > WBUF) {
		fprintf(stderr, "fanin: output buffer full\n");
		exit(1);
	}
	uint8_t *p = c->wb + c->wlen;
	c->wlen += n;
	return p;
}

static void put_str(uint8_t **p, const char *s)
{
	size_t n = strlen(s);
	(*p)[0] = (uint8_t)(n >> 8);
	(*p)[1] = (uint8_t)n;
	memcpy(*p + 2, s, n);
	*p += 2 + n;
}

static void send_connect(struct fconn *c, const char *id, int clean)
{
	uint8_t body[128], *p = body;
	put_str(&p, "MQTT");
	*p++ = (uint8_t)g.version;
	*p++ = clean ? 0x02 : 0x00;
	*p++ = 0;
	*p++ = 60; /* keepalive 60 s */
	if (g.version == 5) {
		if (!clean) {
			*p++ = 5; /* properties: session expiry 3600 */
			*p++ = 0x11;
			*p++ = 0, *p++ = 0, *p++ = 0x0e, *p++ = 0x10;
		} else {
			*p++ = 0;
		}
	}
	put_str(&p, id);
	size_t bl = (size_t)(p - body);
	uint8_t *o = out(c, 2 + bl);
	o[0] = 0x10;
	o[1] = (uint8_t)bl;
	memcpy(o + 2, body, bl);
}

static void send_subscribe(struct fconn *c)
{
	uint8_t body[64], *p = body;
	*p++ = 0, *p++ = 1; /* packet id */
	if (g.version == 5)
		*p++ = 0;
	put_str(&p, "fanin/#");
	*p++ = 1; /* QoS 1 */
	size_t bl = (size_t)(p - body);
	uint8_t *o = out(c, 2 + bl);
	o[0] = 0x82;
	o[1] = (uint8_t)bl;
	memcpy(o + 2, body, bl);
}

static void send_publish(struct fconn *c)
{
	char topic[40];
	uint32_t seq = (uint32_t)c->sent;
	int tl = g.retain ? snprintf(topic, sizeof(topic), "fanin/%u/%u", c->idx, seq)
			  : snprintf(topic, sizeof(topic), "fanin/%u", c->idx);
	uint16_t pid = (uint16_t)(seq % 65535 + 1);
	size_t rl = 2 + (size_t)tl + 2 + (g.version == 5) + g.payload;
	uint8_t hdr[5];
	size_t hl = put_vbi(hdr, (uint32_t)rl);
	uint8_t *o = out(c, 1 + hl + rl);
	*o++ = g.retain ? 0x33 : 0x32;
	memcpy(o, hdr, hl);
	o += hl;
	*o++ = 0, *o++ = (uint8_t)tl;
	memcpy(o, topic, (size_t)tl);
	o += tl;
	*o++ = (uint8_t)(pid >> 8), *o++ = (uint8_t)pid;
	if (g.version == 5)
		*o++ = 0;
	memset(o, 'x', g.payload);
	memcpy(o, &c->idx, 4);
	memcpy(o + 4, &seq, 4);
	c->sent++;
}

static void flush(struct fconn *c)
{
	size_t off = 0;
	while (off < c->wlen) {
		ssize_t n = write(c->fd, c->wb + off, c->wlen - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		die("write");
	}
	memmove(c->wb, c->wb + off, c->wlen - off);
	c->wlen -= off;
	int want = c->wlen > 0;
	if (want != c->want_out) {
		struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
		epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->want_out = want;
	}
}

/* One complete packet from the broker. */
static void on_packet(struct fconn *c, uint8_t type, const uint8_t *b, uint32_t len)
{
	switch (type >> 4) {
	case 2: /* CONNACK */
		if (len < 2 || b[1] != 0) {
			fprintf(stderr, "fanin: CONNACK refused (%u)\n", len >= 2 ? b[1] : 255);
			exit(1);
		}
		if (c == &g.sub)
			send_subscribe(c);
		else
			c->up = 1;
		break;
	case 9: /* SUBACK */
		g.sub.up = 1;
		break;
	case 4: /* PUBACK */
		c->acked++;
		if (g.in_window)
			g.acks_window++;
		if (g.publishing && (!g.max_msgs || c->sent < g.max_msgs))
			send_publish(c);
		break;
	case 3: { /* PUBLISH to the subscriber */
		uint32_t tl = (uint32_t)b[0] << 8 | b[1];
		uint32_t off = 2 + tl;
		uint16_t pid = 0;
		if ((type & 0x06) && off + 2 <= len) {
			pid = (uint16_t)(b[off] << 8 | b[off + 1]);
			off += 2;
		}
		if (g.version == 5 && off < len)
			off += 1 + b[off]; /* property length < 128 here */
		uint32_t idx, seq;
		if (off + 8 > len)
			break;
		memcpy(&idx, b + off, 4);
		memcpy(&seq, b + off + 4, 4);
		if (idx < g.np) {
			uint32_t *e = &g.expect[idx];
			if (seq == *e)
				(*e)++;
			else if (seq < *e)
				g.dups++;
			else {
				g.gaps += seq - *e;
				*e = seq + 1;
			}
		}
		g.rx++;
		if (g.in_window)
			g.rx_window++;
		if (type & 0x06) {
			uint8_t *o = out(c, 4);
			o[0] = 0x40, o[1] = 2, o[2] = (uint8_t)(pid >> 8), o[3] = (uint8_t)pid;
		}
		break;
	}
	default:
		g.other++;
	}
}

static void on_readable(struct fconn *c)
{
	for (int rounds = 0; rounds < 4; rounds++) {
		ssize_t n = read(c->fd, c->rb + c->rlen, RBUF - c->rlen);
		if (n == 0) {
			fprintf(stderr, "fanin: broker closed connection %u\n", c->idx);
			exit(1);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			die("read");
		}
		c->rlen += (size_t)n;
		size_t off = 0;
		for (;;) {
			if (c->rlen - off < 2)
				break;
			uint32_t rl = 0, shift = 0;
			size_t i = off + 1;
			int ok = 0;
			while (i < c->rlen && i - off <= 4) {
				uint8_t byte = c->rb[i++];
				rl |= (uint32_t)(byte & 0x7f) << shift;
				shift += 7;
				if (!(byte & 0x80)) {
					ok = 1;
					break;
				}
			}
			if (!ok || c->rlen - i < rl)
				break;
			on_packet(c, c->rb[off], c->rb + i, rl);
			off = i + rl;
		}
		memmove(c->rb, c->rb + off, c->rlen - off);
		c->rlen -= off;
		if ((size_t)n < RBUF / 2)
			return;
	}
}

static void open_conn(struct fconn *c, uint32_t idx)
{
	c->idx = idx;
	c->rb = malloc(RBUF);
	c->wb = malloc(WBUF);
	if (!c->rb || !c->wb)
		die("malloc");
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		die("socket");
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&g.dst, sizeof(g.dst)) < 0 && errno != EINPROGRESS)
		die("connect");
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
	c->want_out = 1;
	if (epoll_ctl(g.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		die("epoll_ctl");
}

/* One loop pass: read what is there, then flush every connection once. */
static void pass(int timeout_ms)
{
	struct epoll_event evs[128];
	int n = epoll_wait(g.ep, evs, 128, timeout_ms);
	for (int i = 0; i < n; i++) {
		struct fconn *c = evs[i].data.ptr;
		if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			on_readable(c);
	}
	if (g.sub.fd >= 0 && (g.sub.wlen || g.sub.want_out))
		flush(&g.sub);
	for (unsigned i = 0; i < g.np; i++)
		if (g.pubs[i].wlen || g.pubs[i].want_out)
			flush(&g.pubs[i]);
}

static int all_up(void)
{
	if (!g.sub.up)
		return 0;
	for (unsigned i = 0; i < g.np; i++)
		if (!g.pubs[i].up)
			return 0;
	return 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: fanin -p PORT [-H 127.0.0.1] [-P publishers 50] [-w window 8] [-s payload 64]\n"
			"             [-W warmup_s 1] [-d window_s 10] [-D drain_s 20] [-V 4|5] [-c] [-m msgs] [-r] [-o]\n"
			"  -r  retained, topic fanin/<publisher>/<sequence> (one retained message each)\n"
			"  -o  with -c: the subscriber subscribes and leaves, so every message is queued for it\n"
			"  -m  each publisher sends msgs messages; the window ends when all arrived (at most -d s)\n"
			"  -c  persistent subscriber (v3.1.1 clean session 0; v5 clean start 0, expiry 3600)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int opt, port = 0;
	const char *host = "127.0.0.1";
	g.np = 50, g.win = 8, g.payload = 64, g.version = 4;
	g.warm_s = 1, g.window_s = 10, g.drain_s = 20;
	while ((opt = getopt(argc, argv, "p:H:P:w:s:W:d:D:V:cm:ro")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'H': host = optarg; break;
		case 'P': g.np = (unsigned)atoi(optarg); break;
		case 'w': g.win = (unsigned)atoi(optarg); break;
		case 's': g.payload = (unsigned)atoi(optarg); break;
		case 'W': g.warm_s = atof(optarg); break;
		case 'd': g.window_s = atof(optarg); break;
		case 'D': g.drain_s = atof(optarg); break;
		case 'V': g.version = (unsigned)atoi(optarg); break;
		case 'c': g.persist = 1; break;
		case 'r': g.retain = 1; break;
		case 'o': g.offline = 1; break;
		case 'm': g.max_msgs = strtoull(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (!port || !g.np || g.np > 10000 || !g.win || g.win > 1000 || g.payload < 8 || g.payload > 100000 ||
	    (g.version != 4 && g.version != 5))
		usage();
	signal(SIGPIPE, SIG_IGN);
	g.dst.sin_family = AF_INET;
	g.dst.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &g.dst.sin_addr) != 1)
		usage();
	g.ep = epoll_create1(0);
	g.pubs = calloc(g.np, sizeof(*g.pubs));
	g.expect = calloc(g.np, sizeof(*g.expect));
	if (g.ep < 0 || !g.pubs || !g.expect)
		die("setup");

	double t_start = now_s(), deadline = t_start + 30;
	open_conn(&g.sub, UINT32_MAX);
	send_connect(&g.sub, "fanin-sub", !g.persist);
	while (!g.sub.up) {
		if (now_s() > deadline) {
			fprintf(stderr, "fanin: subscriber not up\n");
			return 1;
		}
		pass(100);
	}
	for (unsigned i = 0; i < g.np; i++) {
		char id[32];
		snprintf(id, sizeof(id), "fanin-p%u", i);
		open_conn(&g.pubs[i], i);
		send_connect(&g.pubs[i], id, 1);
	}
	while (!all_up()) {
		if (now_s() > deadline) {
			fprintf(stderr, "fanin: publishers not up\n");
			return 1;
		}
		pass(100);
	}
	if (g.offline) {
		/* The persistent subscriber leaves: everything is queued for it. */
		uint8_t *d = out(&g.sub, 2);
		d[0] = 0xe0, d[1] = 0;
		flush(&g.sub);
		epoll_ctl(g.ep, EPOLL_CTL_DEL, g.sub.fd, NULL);
		close(g.sub.fd);
		g.sub.fd = -1;
	}
	printf("phase=connected\n");
	fflush(stdout);
	g.publishing = 1;
	for (unsigned i = 0; i < g.np; i++)
		for (unsigned k = 0; k < g.win && (!g.max_msgs || k < g.max_msgs); k++)
			send_publish(&g.pubs[i]);
	double t0 = now_s(), w0 = t0 + g.warm_s, w1 = w0 + g.window_s, tw0 = 0, tw1 = 0;
	if (g.max_msgs) /* counted run: the window is all of it, bounded by -d */
		w0 = t0, w1 = t0 + g.window_s;
	while (now_s() < w1) {
		if (g.max_msgs && g.rx >= g.max_msgs * g.np)
			break;
		if (g.max_msgs && g.offline) {
			uint64_t a = 0;
			for (unsigned i = 0; i < g.np; i++)
				a += g.pubs[i].acked;
			if (a >= g.max_msgs * g.np)
				break;
		}
		double t = now_s();
		if (!g.in_window && t >= w0) {
			g.in_window = 1;
			tw0 = t;
			printf("phase=window_start\n");
			fflush(stdout);
		}
		pass(10);
	}
	tw1 = now_s();
	g.in_window = 0;
	g.publishing = 0;
	printf("phase=window_end\n");
	fflush(stdout);
	/* Drain: every publisher gets its outstanding acks, the subscriber everything. */
	uint64_t sent = 0, acked = 0;
	double dl = now_s() + g.drain_s;
	for (;;) {
		sent = acked = 0;
		uint64_t delivered = 0;
		for (unsigned i = 0; i < g.np; i++) {
			sent += g.pubs[i].sent;
			acked += g.pubs[i].acked;
			delivered += g.offline ? g.pubs[i].acked
					       : g.expect[i] < g.pubs[i].acked ? g.expect[i] : g.pubs[i].acked;
		}
		if ((acked == sent && delivered == acked) || now_s() > dl)
			break;
		pass(10);
	}
	uint64_t lost = g.gaps;
	for (unsigned i = 0; i < g.np && !g.offline; i++)
		if (g.expect[i] < g.pubs[i].acked)
			lost += g.pubs[i].acked - g.expect[i];
	double ws = tw1 - tw0;
	printf("publishers=%u\nwindow=%u\npayload=%u\npersistent_sub=%u\nmqtt=%u\n", g.np, g.win, g.payload,
	       g.persist, g.version);
	printf("window_s=%.3f\n", ws);
	printf("acks_in_window=%llu\nacks_per_sec=%.1f\n", (unsigned long long)g.acks_window, g.acks_window / ws);
	printf("delivered_in_window=%llu\ndelivered_per_sec=%.1f\n", (unsigned long long)g.rx_window,
	       g.rx_window / ws);
	printf("sent=%llu\nacked=%llu\nreceived=%llu\nlost=%llu\nduplicates=%llu\nunacked=%llu\n",
	       (unsigned long long)sent, (unsigned long long)acked, (unsigned long long)g.rx,
	       (unsigned long long)lost, (unsigned long long)g.dups, (unsigned long long)(sent - acked));
	printf("phase=done\n");
	return 0;
}
