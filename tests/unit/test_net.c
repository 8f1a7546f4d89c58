/*
 * tests/unit/test_net.c — net/: loop, raw fds, clock, TCP/IPv6/Unix
 * listeners, conn reading/writing/closing, TLS.
 *
 * Everything runs in one thread on loopback with kernel-chosen ports: the
 * test's client sockets are nonblocking and the loop is pumped between
 * client operations, with every wait bounded. White-box where a property is
 * not observable from outside (net_internal.h: the conn's fd, epoll mask).
 * net/ has no MQTT, so no MQTT normative statement is cited here; the
 * tests cite design.md ("Dead peers") where they check its rules.
 */
#include "net.h"
#include "net_internal.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------------ */

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define PUMP_UNTIL(loop, cond, ms)                                                                           \
	do {                                                                                                 \
		uint64_t end_ = mono_ms() + (ms);                                                            \
		while (!(cond) && mono_ms() < end_)                                                          \
			net_loop_run_once((loop), 5);                                                        \
	} while (0)

enum srv_mode {
	M_ECHO = 0,       /* write back everything, consume it */
	M_HOLD,           /* record sizes, consume nothing */
	M_SINK,           /* consume and count, write nothing */
	M_CLOSE_FLUSH,    /* on first data: write `bigwrite` bytes, close FLUSH */
	M_CLOSE_ABORT,    /* on first data: close ABORT */
	M_CLOSE_TWICE,    /* on first data: close FLUSH twice, then ABORT */
	M_ECHO_RESERVE,   /* echo through reserve/commit */
};

struct srv {
	struct net_loop *loop;
	struct net_listener *l;
	struct net_conn *c;
	enum srv_mode mode;
	int accepts, closes, datas;
	int ready_at_accept;
	enum net_close_reason why;
	int err;
	size_t got, last_len, limit, bigwrite;
	int sndbuf;
	char log[512];
	char cn[128], subject[256], psk_id[64];
};

static void logf_(struct srv *s, const char *ev)
{
	size_t n = strlen(s->log);
	snprintf(s->log + n, sizeof s->log - n, "%s;", ev);
}

static void pattern(uint8_t *p, size_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((off + i) * 7 + ((off + i) >> 13));
}

static void on_data(struct net_conn *c, void *user)
{
	struct srv *s = user;
	size_t len;
	const uint8_t *in = net_conn_input(c, &len);
	s->datas++;
	s->last_len = len;
	char ev[32];
	snprintf(ev, sizeof ev, "D%zu", len);
	if (s->mode != M_ECHO && s->mode != M_ECHO_RESERVE && s->mode != M_SINK)
		logf_(s, ev);
	const char *cn = net_conn_cert_cn(c), *sub = net_conn_cert_subject(c), *id = net_conn_psk_identity(c);
	if (cn)
		snprintf(s->cn, sizeof s->cn, "%s", cn);
	if (sub)
		snprintf(s->subject, sizeof s->subject, "%s", sub);
	if (id)
		snprintf(s->psk_id, sizeof s->psk_id, "%s", id);
	switch (s->mode) {
	case M_ECHO:
		ck_assert_int_eq(net_conn_write(c, in, len), 0);
		net_conn_consume(c, len);
		s->got += len;
		break;
	case M_ECHO_RESERVE: {
		uint8_t *p = net_conn_reserve(c, len + 10);
		ck_assert_ptr_nonnull(p);
		memcpy(p, in, len);
		net_conn_commit(c, len);
		net_conn_consume(c, len);
		s->got += len;
		break;
	}
	case M_HOLD:
		break;
	case M_SINK:
		s->got += len;
		net_conn_consume(c, len);
		break;
	case M_CLOSE_FLUSH: {
		net_conn_consume(c, len);
		uint8_t *buf = malloc(s->bigwrite ? s->bigwrite : 1);
		ck_assert_ptr_nonnull(buf);
		pattern(buf, 0, s->bigwrite);
		ck_assert_int_eq(net_conn_write(c, buf, s->bigwrite), 0);
		free(buf);
		net_conn_close(c, NET_CLOSE_FLUSH);
		ck_assert(net_conn_closing(c));
		ck_assert_int_eq(net_conn_write(c, "x", 1), -EPIPE);
		break;
	}
	case M_CLOSE_ABORT:
		net_conn_consume(c, len);
		net_conn_write(c, "never sent", 10);
		net_conn_close(c, NET_CLOSE_ABORT);
		break;
	case M_CLOSE_TWICE:
		net_conn_consume(c, len);
		net_conn_close(c, NET_CLOSE_FLUSH);
		net_conn_close(c, NET_CLOSE_FLUSH);
		net_conn_close(c, NET_CLOSE_ABORT);
		break;
	}
}

static void on_close(struct net_conn *c, enum net_close_reason why, int err, void *user)
{
	struct srv *s = user;
	s->closes++;
	s->why = why;
	s->err = err;
	char ev[32];
	snprintf(ev, sizeof ev, "C%d", (int)why);
	logf_(s, ev);
	if (s->c == c)
		s->c = NULL;
}

static void on_accept(struct net_listener *l, struct net_conn *c, void *user)
{
	struct srv *s = user;
	static const struct net_conn_cbs cbs = { on_data, on_close };
	ck_assert_ptr_eq(net_listener_user(l), s);
	ck_assert_ptr_eq(net_conn_listener(c), l);
	s->accepts++;
	s->c = c;
	s->ready_at_accept = net_conn_ready(c);
	net_conn_set_cbs(c, &cbs, s);
	ck_assert_ptr_eq(net_conn_user(c), s);
	if (s->limit)
		net_conn_set_input_limit(c, s->limit);
	if (s->sndbuf)
		setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &s->sndbuf, sizeof s->sndbuf);
	ck_assert_int_eq(net_conn_set_nodelay(c, true), 0);
	ck_assert_int_eq(net_conn_set_user_timeout(c, 5000), 0);
	ck_assert_int_eq(net_conn_set_keepalive(c, 30, 5, 3), 0);
}

static void srv_init(struct srv *s)
{
	memset(s, 0, sizeof *s);
	s->loop = net_loop_new();
	ck_assert_ptr_nonnull(s->loop);
}

static struct net_listener *srv_listen(struct srv *s, const char *addr, int family, struct net_tls *tls)
{
	struct net_listen_opts o = { .bind_address = addr, .port = 0, .family = family, .tls = tls };
	char err[256] = "";
	s->l = net_listen(s->loop, &o, on_accept, s, err, sizeof err);
	return s->l;
}

static void srv_done(struct srv *s)
{
	net_loop_free(s->loop);
	s->loop = NULL;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* rcvbuf > 0: set before connect (shrinking it later can stall TCP). */
static int cli_connect_buf(int family, const char *ip, int port, int rcvbuf)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, ip, &a->sin_addr);
		len = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, ip, &a->sin6_addr);
		len = sizeof *a;
	}
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&ss, len), 0);
	set_nonblock(fd);
	return fd;
}

static int cli_connect(int family, const char *ip, int port)
{
	return cli_connect_buf(family, ip, port, 0);
}

static void cli_send_all(struct srv *s, int fd, const void *p, size_t n)
{
	size_t off = 0;
	uint64_t end = mono_ms() + 5000;
	while (off < n && mono_ms() < end) {
		ssize_t w = send(fd, (const uint8_t *)p + off, n - off, MSG_NOSIGNAL);
		if (w > 0)
			off += (size_t)w;
		else
			net_loop_run_once(s->loop, 2);
	}
	ck_assert_uint_eq(off, n);
}

/* Read until `want` bytes, EOF or error, pumping the loop. Returns bytes
 * read; *eof = 1 on EOF, *err = errno on error. */
static size_t cli_recv(struct srv *s, int fd, uint8_t *buf, size_t want, int *eof, int *err, int ms)
{
	size_t off = 0;
	*eof = 0;
	*err = 0;
	uint64_t end = mono_ms() + (uint64_t)ms;
	while (off < want && mono_ms() < end) {
		ssize_t r = recv(fd, buf + off, want - off, 0);
		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		if (r == 0) {
			*eof = 1;
			break;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			*err = errno;
			break;
		}
		net_loop_run_once(s->loop, 2);
	}
	return off;
}

/* ---- loop, raw fds, clock ----------------------------------------------------------- */

struct fdrec {
	int calls;
	unsigned events;
	int del_in_cb;
};

static void fd_cb(struct net_loop *loop, int fd, unsigned events, void *user)
{
	struct fdrec *r = user;
	r->calls++;
	r->events = events;
	char b[16];
	if (events & NET_READ)
		(void)!read(fd, b, sizeof b);
	if (r->del_in_cb)
		net_fd_del(loop, fd);
}

START_TEST(t_loop_raw_fd)
{
	struct net_loop *loop = net_loop_new();
	ck_assert_ptr_nonnull(loop);
	int p[2];
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	struct fdrec r = { 0 };
	ck_assert_int_eq(net_fd_add(loop, p[0], NET_READ, fd_cb, &r), 0);
	ck_assert_int_eq(net_fd_add(loop, p[0], NET_READ, fd_cb, &r), -EEXIST);
	ck_assert_int_eq(net_loop_run_once(loop, 0), 0);
	ck_assert_int_eq(r.calls, 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(net_loop_run_once(loop, 1000), 1);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_uint_eq(r.events, NET_READ);
	/* interest off: no callback even though readable */
	ck_assert_int_eq(net_fd_mod(loop, p[0], 0), 0);
	ck_assert_int_eq(write(p[1], "y", 1), 1);
	net_loop_run_once(loop, 0);
	ck_assert_int_eq(r.calls, 1);
	/* deleted from inside its own callback: never called again */
	ck_assert_int_eq(net_fd_mod(loop, p[0], NET_READ), 0);
	r.del_in_cb = 1;
	net_loop_run_once(loop, 100);
	ck_assert_int_eq(r.calls, 2);
	ck_assert_int_eq(write(p[1], "z", 1), 1);
	net_loop_run_once(loop, 0);
	ck_assert_int_eq(r.calls, 2);
	ck_assert_int_eq(net_fd_mod(loop, p[0], NET_READ), -ENOENT);
	/* write interest on the pipe's write end */
	struct fdrec w = { 0 };
	ck_assert_int_eq(net_fd_add(loop, p[1], NET_WRITE, fd_cb, &w), 0);
	net_loop_run_once(loop, 100);
	ck_assert_int_eq(w.calls, 1);
	ck_assert_uint_eq(w.events & NET_WRITE, NET_WRITE);
	net_fd_del(loop, p[1]);
	close(p[0]);
	close(p[1]);
	net_loop_free(loop);
	net_loop_free(NULL);
}
END_TEST

static void hook_cb(struct net_loop *loop, void *user)
{
	(*(int *)user)++;
}

START_TEST(t_clock_cached_monotonic)
{
	struct net_loop *loop = net_loop_new();
	int hooks = 0;
	net_loop_set_before_flush(loop, hook_cb, &hooks);
	uint64_t a = net_now(loop);
	ck_assert_uint_gt(a, 0);
	struct timespec ts = { 0, 30 * 1000000 };
	nanosleep(&ts, NULL);
	ck_assert_uint_eq(net_now(loop), a); /* cached: does not move by itself */
	net_loop_run_once(loop, 0);
	uint64_t b = net_now(loop);
	ck_assert_uint_ge(b, a + 25);
	ck_assert_uint_le(b, a + 5000);
	ck_assert_int_eq(hooks, 1);
	/* epoll_wait timeout honoured, then now refreshed */
	uint64_t t0 = mono_ms();
	net_loop_run_once(loop, 50);
	ck_assert_uint_ge(mono_ms() - t0, 45);
	ck_assert_uint_ge(net_now(loop), b + 45);
	uint64_t c = net_now_update(loop);
	ck_assert_uint_ge(c, net_now(loop) - 0);
	ck_assert_int_eq(hooks, 2);
	net_loop_free(loop);
}
END_TEST

/* ---- TCP --------------------------------------------------------------------------- */

START_TEST(t_tcp_echo_v4)
{
	struct srv s;
	srv_init(&s);
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, NULL));
	int port = net_listener_port(s.l);
	ck_assert_int_gt(port, 0);
	int fd = cli_connect(AF_INET, "127.0.0.1", port);
	PUMP_UNTIL(s.loop, s.accepts == 1, 2000);
	ck_assert_int_eq(s.accepts, 1);
	ck_assert(s.ready_at_accept);
	ck_assert_str_eq(net_conn_input(s.c, &(size_t){ 0 }) ? "ok" : "", "ok");
	/* compat: mosquitto's "New connection from 127.0.0.1:54321" form */
	struct sockaddr_in me;
	socklen_t ml = sizeof me;
	getsockname(fd, (struct sockaddr *)&me, &ml);
	char want[64];
	snprintf(want, sizeof want, "127.0.0.1:%u", ntohs(me.sin_port));
	ck_assert_str_eq(net_conn_peer(s.c), want);
	cli_send_all(&s, fd, "hello", 5);
	uint8_t buf[16];
	int eof, err;
	ck_assert_uint_eq(cli_recv(&s, fd, buf, 5, &eof, &err, 2000), 5);
	ck_assert_mem_eq(buf, "hello", 5);
	ck_assert_uint_eq(net_conn_out_pending(s.c), 0);
	close(fd);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_int_eq(s.closes, 1);
	ck_assert_int_eq(s.why, NET_CLOSED_EOF);
	srv_done(&s);
}
END_TEST

/* Several MB each way through a small SO_SNDBUF: short writes arm EPOLLOUT
 * and everything arrives, in order. Also through reserve/commit. */
static void big_echo(enum srv_mode mode)
{
	struct srv s;
	srv_init(&s);
	s.mode = mode;
	s.sndbuf = 4096;
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, NULL));
	int fd = cli_connect_buf(AF_INET, "127.0.0.1", net_listener_port(s.l), 8192);
	const size_t total = 6u << 20;
	uint8_t *out = malloc(total), *in = malloc(total);
	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(in);
	pattern(out, 0, total);
	size_t sent = 0, recvd = 0;
	int saw_blocked = 0;
	uint64_t end = mono_ms() + 20000;
	while (recvd < total && mono_ms() < end) {
		if (sent < total) {
			ssize_t w = send(fd, out + sent, total - sent > 65536 ? 65536 : total - sent, MSG_NOSIGNAL);
			if (w > 0)
				sent += (size_t)w;
		}
		net_loop_run_once(s.loop, 0);
		if (s.c && (s.c->flags & NET_CF_WBLOCKED))
			saw_blocked = 1;
		for (int i = 0; i < 4; i++) {
			ssize_t r = recv(fd, in + recvd, total - recvd, 0);
			if (r <= 0)
				break;
			recvd += (size_t)r;
		}
	}
	if (recvd != total && s.c)
		fprintf(stderr, "sent %zu got %zu recvd %zu pending %zu flags %x ev %x\n", sent, s.got, recvd,
			net_conn_out_pending(s.c), s.c->flags, s.c->ev);
	ck_assert_uint_eq(recvd, total);
	ck_assert(memcmp(in, out, total) == 0);
	ck_assert(saw_blocked); /* the short-write path was exercised */
	PUMP_UNTIL(s.loop, s.c && !(s.c->flags & NET_CF_WBLOCKED) && !(s.c->ev & EPOLLOUT), 1000);
	ck_assert(!(s.c->ev & EPOLLOUT)); /* disarmed once drained */
	free(out);
	free(in);
	close(fd);
	srv_done(&s);
}

START_TEST(t_tcp_big_transfer_short_writes)
{
	big_echo(M_ECHO);
}
END_TEST

START_TEST(t_tcp_big_transfer_reserve_commit)
{
	big_echo(M_ECHO_RESERVE);
}
END_TEST

/* design.md "Dead peers": a process that dies sends FIN; data sent just
 * before it (PUBLISH + DISCONNECT, then close) is delivered before on_close. */
START_TEST(t_tcp_data_then_fin_in_order)
{
	struct srv s;
	srv_init(&s);
	s.mode = M_HOLD;
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, NULL));
	int fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	/* data and FIN both queued before the server ever runs */
	ck_assert_int_eq(send(fd, "0123456789", 10, 0), 10);
	close(fd);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_str_eq(s.log, "D10;C1;");
	ck_assert_int_eq(s.closes, 1);
	srv_done(&s);
}
END_TEST

START_TEST(t_tcp_rst_is_reset)
{
	struct srv s;
	srv_init(&s);
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, NULL));
	int fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	PUMP_UNTIL(s.loop, s.accepts == 1, 2000);
	struct linger lg = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_int_eq(s.closes, 1);
	ck_assert_int_eq(s.why, NET_CLOSED_RESET);
	ck_assert_int_eq(s.err, ECONNRESET);
	srv_done(&s);
}
END_TEST

/* on_close exactly once: close requested three times, and the peer's FIN
 * arriving in the same pass. */
START_TEST(t_close_once)
{
	struct srv s;
	srv_init(&s);
	s.mode = M_CLOSE_TWICE;
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, NULL));
	int fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	PUMP_UNTIL(s.loop, s.accepts == 1, 2000);
	ck_assert_int_eq(send(fd, "x", 1, 0), 1);
	shutdown(fd, SHUT_WR);
	PUMP_UNTIL(s.loop, s.closes >= 1, 2000);
	for (int i = 0; i < 20; i++)
		net_loop_run_once(s.loop, 2);
	ck_assert_int_eq(s.closes, 1);
	ck_assert_int_eq(s.why, NET_CLOSED_LOCAL);
	ck_assert_str_eq(s.log, "D1;C0;");
	/* the ABORT asked last wins over FLUSH: the peer sees a reset */
	uint8_t b[8];
	int eof, err;
	cli_recv(&s, fd, b, sizeof b, &eof, &err, 1000);
	ck_assert_int_eq(err, ECONNRESET);
	close(fd);

	/* close requested by the owner in the same pass as the peer's EOF */
	s.mode = M_HOLD;
	s.log[0] = 0;
	s.closes = 0;
	fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	PUMP_UNTIL(s.loop, s.accepts == 2, 2000);
	struct net_conn *c = s.c;
	close(fd);
	struct timespec ts = { 0, 20 * 1000000 };
	nanosleep(&ts, NULL);
	net_conn_close(c, NET_CLOSE_FLUSH); /* before the pass that sees EOF */
	net_loop_run_once(s.loop, 0);
	ck_assert_int_eq(s.closes, 1); /* promptly, in that pass */
	ck_assert_int_eq(s.why, NET_CLOSED_LOCAL);
	for (int i = 0; i < 10; i++)
		net_loop_run_once(s.loop, 2);
	ck_assert_int_eq(s.closes, 1);
	srv_done(&s);
}
END_TEST

/* design.md "Dead peers": ABORT closes with SO_LINGER 0 -> the peer sees
 * RST, queued output is discarded. */
START_TEST(t_abort_peer_sees_reset)
{
	struct srv s;
	srv_init(&s);
	s.mode = M_CLOSE_ABORT;
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, NULL));
	int fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	ck_assert_int_eq(send(fd, "x", 1, 0), 1);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_int_eq(s.why, NET_CLOSED_LOCAL);
	uint8_t b[32];
	int eof, err;
	size_t n = cli_recv(&s, fd, b, sizeof b, &eof, &err, 1000);
	ck_assert_uint_eq(n, 0); /* "never sent" was discarded */
	ck_assert_int_eq(err, ECONNRESET);
	close(fd);
	srv_done(&s);
}
END_TEST

/* FLUSH close: on_close runs at once, all queued bytes still arrive, then
 * EOF. */
START_TEST(t_flush_close_delivers_then_eof)
{
	struct srv s;
	srv_init(&s);
	s.mode = M_CLOSE_FLUSH;
	s.bigwrite = 3u << 20;
	s.sndbuf = 8192;
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, NULL));
	int fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	ck_assert_int_eq(send(fd, "go", 2, 0), 2);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_int_eq(s.closes, 1);
	ck_assert_int_eq(s.why, NET_CLOSED_LOCAL);
	uint8_t *buf = malloc(s.bigwrite + 16), *exp = malloc(s.bigwrite);
	pattern(exp, 0, s.bigwrite);
	int eof, err;
	size_t n = cli_recv(&s, fd, buf, s.bigwrite + 16, &eof, &err, 5000);
	ck_assert_uint_eq(n, s.bigwrite);
	ck_assert(memcmp(buf, exp, n) == 0);
	ck_assert_int_eq(eof, 1);
	ck_assert_int_eq(err, 0);
	close(fd);
	PUMP_UNTIL(s.loop, net_list_empty(&s.loop->linger), 1000);
	ck_assert(net_list_empty(&s.loop->linger));
	free(buf);
	free(exp);
	srv_done(&s);
}
END_TEST

/* A FLUSH close to a peer that never reads is bounded (~2 s), then RST. */
START_TEST(t_flush_close_bounded)
{
	struct srv s;
	srv_init(&s);
	s.mode = M_CLOSE_FLUSH;
	s.bigwrite = 8u << 20;
	s.sndbuf = 8192;
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, NULL));
	int fd = cli_connect_buf(AF_INET, "127.0.0.1", net_listener_port(s.l), 4096);
	ck_assert_int_eq(send(fd, "go", 2, 0), 2);
	uint64_t t0 = mono_ms();
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_int_eq(s.closes, 1);
	ck_assert(!net_list_empty(&s.loop->linger));
	PUMP_UNTIL(s.loop, net_list_empty(&s.loop->linger), 4000);
	uint64_t dt = mono_ms() - t0;
	ck_assert(net_list_empty(&s.loop->linger));
	ck_assert_uint_ge(dt, NET_LINGER_MS - 100);
	ck_assert_uint_le(dt, NET_LINGER_MS + 1000);
	/* the peer eventually sees the reset after the bytes that made it */
	uint8_t *buf = malloc(1 << 20);
	int eof, err;
	uint64_t end = mono_ms() + 3000;
	do
		cli_recv(&s, fd, buf, 1 << 20, &eof, &err, 100);
	while (!eof && !err && mono_ms() < end);
	ck_assert_int_eq(err, ECONNRESET);
	free(buf);
	close(fd);
	srv_done(&s);
}
END_TEST

/* Input limit: reading stops at the limit (EPOLLIN off) until consumed. */
START_TEST(t_input_limit_pauses)
{
	struct srv s;
	srv_init(&s);
	s.mode = M_HOLD;
	s.limit = 1000;
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, NULL));
	int fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	uint8_t data[5000];
	pattern(data, 0, sizeof data);
	cli_send_all(&s, fd, data, sizeof data);
	PUMP_UNTIL(s.loop, s.c && s.last_len == 1000, 2000);
	for (int i = 0; i < 10; i++)
		net_loop_run_once(s.loop, 2);
	size_t len;
	const uint8_t *in = net_conn_input(s.c, &len);
	ck_assert_uint_eq(len, 1000);
	ck_assert(memcmp(in, data, 1000) == 0);
	ck_assert(!(s.c->ev & EPOLLIN));
	/* consume in pieces; everything arrives in order */
	size_t seen = 0;
	uint64_t end = mono_ms() + 3000;
	while (seen < sizeof data && mono_ms() < end) {
		in = net_conn_input(s.c, &len);
		if (len) {
			ck_assert_uint_le(len, 1000);
			ck_assert(memcmp(in, data + seen, len) == 0);
			net_conn_consume(s.c, len);
			seen += len;
		}
		net_loop_run_once(s.loop, 2);
	}
	ck_assert_uint_eq(seen, sizeof data);
	close(fd);
	srv_done(&s);
}
END_TEST

START_TEST(t_pause_resume)
{
	struct srv s;
	srv_init(&s);
	s.mode = M_HOLD;
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, NULL));
	int fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	cli_send_all(&s, fd, "ab", 2);
	PUMP_UNTIL(s.loop, s.datas == 1, 2000);
	net_conn_pause_read(s.c, true);
	cli_send_all(&s, fd, "cd", 2);
	for (int i = 0; i < 10; i++)
		net_loop_run_once(s.loop, 2);
	ck_assert_int_eq(s.datas, 1);
	ck_assert_uint_eq(s.c->ev, 0); /* out of epoll while paused */
	net_conn_pause_read(s.c, false);
	PUMP_UNTIL(s.loop, s.last_len == 4, 2000);
	size_t len;
	const uint8_t *in = net_conn_input(s.c, &len);
	ck_assert_uint_eq(len, 4);
	ck_assert_mem_eq(in, "abcd", 4);
	/* resumed with nothing new from the socket: unconsumed input is
	 * offered again */
	net_conn_pause_read(s.c, true);
	net_conn_pause_read(s.c, false);
	int d = s.datas;
	net_loop_run_once(s.loop, 0);
	ck_assert_int_eq(s.datas, d + 1);
	close(fd);
	srv_done(&s);
}
END_TEST

START_TEST(t_ipv6_loopback)
{
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	if (probe < 0)
		return; /* no IPv6 here: skip */
	close(probe);
	struct srv s;
	srv_init(&s);
	if (!srv_listen(&s, "::1", AF_INET6, NULL)) {
		srv_done(&s);
		return; /* ::1 not configured: skip */
	}
	int port = net_listener_port(s.l);
	int fd = cli_connect(AF_INET6, "::1", port);
	cli_send_all(&s, fd, "v6", 2);
	uint8_t b[2];
	int eof, err;
	ck_assert_uint_eq(cli_recv(&s, fd, b, 2, &eof, &err, 2000), 2);
	ck_assert_mem_eq(b, "v6", 2);
	ck_assert_ptr_nonnull(s.c);
	ck_assert(strncmp(net_conn_peer(s.c), "::1:", 4) == 0);
	close(fd);
	srv_done(&s);
}
END_TEST

/* AF_UNSPEC with a host name: "localhost" -> 127.0.0.1 and ::1 on the same
 * port (IPV6_V6ONLY lets both bind). */
START_TEST(t_unspec_localhost_both_families)
{
	struct srv s;
	srv_init(&s);
	ck_assert_ptr_nonnull(srv_listen(&s, "localhost", AF_UNSPEC, NULL));
	int port = net_listener_port(s.l);
	int fd4 = cli_connect(AF_INET, "127.0.0.1", port);
	cli_send_all(&s, fd4, "4", 1);
	uint8_t b[1];
	int eof, err;
	ck_assert_uint_eq(cli_recv(&s, fd4, b, 1, &eof, &err, 2000), 1);
	bool v6 = false;
	for (int i = 0; i < s.l->nsocks; i++)
		v6 |= s.l->socks[i].family == AF_INET6;
	if (v6) {
		int fd6 = cli_connect(AF_INET6, "::1", port);
		cli_send_all(&s, fd6, "6", 1);
		ck_assert_uint_eq(cli_recv(&s, fd6, b, 1, &eof, &err, 2000), 1);
		ck_assert_int_eq(b[0], '6');
		close(fd6);
	}
	close(fd4);
	/* the same port is now taken: a second listener fails with a message */
	struct net_listen_opts o = { .bind_address = "127.0.0.1", .port = port, .family = AF_INET };
	char e[256] = "";
	ck_assert_ptr_null(net_listen(s.loop, &o, on_accept, &s, e, sizeof e));
	ck_assert(strstr(e, "in use") != NULL);
	/* closing the listener keeps the connections */
	net_listener_close(s.l);
	net_listener_close(s.l);
	srv_done(&s);
}
END_TEST

START_TEST(t_unix_listener)
{
	char dir[] = "/tmp/vigil-net-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof path, "%s/sock", dir);
	/* a stale socket file left by an earlier run */
	int st = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	ck_assert_int_eq(bind(st, (struct sockaddr *)&sa, sizeof sa), 0);
	close(st);
	struct srv s;
	srv_init(&s);
	struct net_listen_opts o = { .unix_path = path };
	char err[256] = "";
	s.l = net_listen(s.loop, &o, on_accept, &s, err, sizeof err);
	ck_assert_msg(s.l != NULL, "%s", err);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	set_nonblock(fd);
	cli_send_all(&s, fd, "unix!", 5);
	uint8_t b[5];
	int eof, e2;
	ck_assert_uint_eq(cli_recv(&s, fd, b, 5, &eof, &e2, 2000), 5);
	ck_assert_mem_eq(b, "unix!", 5);
	ck_assert_str_eq(net_conn_peer(s.c), path);
	close(fd);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_int_eq(s.why, NET_CLOSED_EOF);
	net_listener_close(s.l);
	struct stat sb;
	ck_assert_int_ne(stat(path, &sb), 0); /* unlinked at close */
	srv_done(&s);
	rmdir(dir);
}
END_TEST

START_TEST(t_ws_not_yet)
{
	struct srv s;
	srv_init(&s);
	struct net_listen_opts o = { .bind_address = "127.0.0.1", .kind = NET_WEBSOCKETS };
	char err[128] = "";
	ck_assert_ptr_null(net_listen(s.loop, &o, on_accept, &s, err, sizeof err));
	ck_assert(strstr(err, "WebSockets") != NULL);
	srv_done(&s);
}
END_TEST

/* ---- TLS ---------------------------------------------------------------------------- */

struct certs {
	char dir[64];
	char scert[128], skey[128], ccert[128], ckey[128];
};

static int certs_make(struct certs *k)
{
	snprintf(k->dir, sizeof k->dir, "/tmp/vigil-tls-XXXXXX");
	if (!mkdtemp(k->dir))
		return -1;
	snprintf(k->scert, sizeof k->scert, "%s/scert.pem", k->dir);
	snprintf(k->skey, sizeof k->skey, "%s/skey.pem", k->dir);
	snprintf(k->ccert, sizeof k->ccert, "%s/ccert.pem", k->dir);
	snprintf(k->ckey, sizeof k->ckey, "%s/ckey.pem", k->dir);
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
		 "-keyout %s -out %s -subj /CN=localhost >/dev/null 2>&1 && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
		 "-keyout %s -out %s -subj '/O=Acme Corp/CN=client1' >/dev/null 2>&1",
		 k->skey, k->scert, k->ckey, k->ccert);
	return system(cmd) == 0 ? 0 : -1;
}

static void certs_free(struct certs *k)
{
	unlink(k->scert);
	unlink(k->skey);
	unlink(k->ccert);
	unlink(k->ckey);
	rmdir(k->dir);
}

struct tcli {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
};

static unsigned int cli_psk_cb(SSL *ssl, const char *hint, char *identity, unsigned int max_identity_len,
			       unsigned char *psk, unsigned int max_psk_len)
{
	snprintf(identity, max_identity_len, "id1");
	memcpy(psk, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	return 8;
}

/* Handshake a TLS client against the loop; returns 1 on success. */
static int tcli_open(struct srv *s, struct tcli *t, int port, const struct certs *k, int maxver, bool psk)
{
	t->ctx = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(t->ctx);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
	if (maxver)
		SSL_CTX_set_max_proto_version(t->ctx, maxver);
	if (k) {
		ck_assert_int_eq(SSL_CTX_use_certificate_file(t->ctx, k->ccert, SSL_FILETYPE_PEM), 1);
		ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(t->ctx, k->ckey, SSL_FILETYPE_PEM), 1);
	}
	if (psk)
		SSL_CTX_set_psk_client_callback(t->ctx, cli_psk_cb);
	t->fd = cli_connect(AF_INET, "127.0.0.1", port);
	t->ssl = SSL_new(t->ctx);
	SSL_set_fd(t->ssl, t->fd);
	uint64_t end = mono_ms() + 3000;
	for (;;) {
		ERR_clear_error();
		int r = SSL_connect(t->ssl);
		if (r == 1)
			return 1;
		int e = SSL_get_error(t->ssl, r);
		if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && mono_ms() < end) {
			net_loop_run_once(s->loop, 2);
			continue;
		}
		ERR_clear_error();
		return 0;
	}
}

static void tcli_close(struct tcli *t)
{
	SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	close(t->fd);
}

static void tcli_write_all(struct srv *s, struct tcli *t, const void *p, size_t n)
{
	size_t off = 0;
	uint64_t end = mono_ms() + 5000;
	while (off < n && mono_ms() < end) {
		size_t w = 0;
		ERR_clear_error();
		if (SSL_write_ex(t->ssl, (const uint8_t *)p + off, n - off, &w) == 1)
			off += w;
		else
			net_loop_run_once(s->loop, 2);
	}
	ck_assert_uint_eq(off, n);
}

/* Read up to n bytes (stops at EOF / error); *eof set on close_notify/EOF. */
static size_t tcli_read(struct srv *s, struct tcli *t, uint8_t *buf, size_t n, int *eof, int ms)
{
	size_t off = 0;
	*eof = 0;
	uint64_t end = mono_ms() + (uint64_t)ms;
	while (off < n && mono_ms() < end) {
		size_t r = 0;
		ERR_clear_error();
		if (SSL_read_ex(t->ssl, buf + off, n - off, &r) == 1) {
			off += r;
			continue;
		}
		int e = SSL_get_error(t->ssl, 0);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			net_loop_run_once(s->loop, 2);
			continue;
		}
		ERR_clear_error();
		*eof = 1;
		break;
	}
	return off;
}

static struct net_tls *tls_make(const struct certs *k, bool require_cert, const char *version)
{
	struct net_tls_opts o = { .certfile = k->scert, .keyfile = k->skey, .tls_version = version };
	if (require_cert) {
		o.cafile = k->ccert;
		o.require_certificate = true;
	}
	char err[256] = "";
	struct net_tls *t = net_tls_new(&o, err, sizeof err);
	ck_assert_msg(t != NULL, "%s", err);
	return t;
}

START_TEST(t_tls_handshake_echo)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	struct srv s;
	srv_init(&s);
	s.sndbuf = 4096;
	struct net_tls *tls = tls_make(&k, false, NULL);
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	struct tcli t;
	ck_assert_int_eq(tcli_open(&s, &t, net_listener_port(s.l), NULL, 0, false), 1);
	ck_assert_int_eq(s.accepts, 1);
	ck_assert(!s.ready_at_accept); /* not ready until the handshake ends */
	tcli_write_all(&s, &t, "hello tls", 9);
	uint8_t b[16];
	int eof;
	ck_assert_uint_eq(tcli_read(&s, &t, b, 9, &eof, 2000), 9);
	ck_assert_mem_eq(b, "hello tls", 9);
	ck_assert(net_conn_ready(s.c));
	ck_assert_ptr_null(net_conn_cert_cn(s.c));
	/* 2 MB each way through a 4 KiB send buffer: partial SSL writes */
	const size_t total = 2u << 20;
	uint8_t *out = malloc(total), *in = malloc(total);
	pattern(out, 0, total);
	size_t sent = 0, recvd = 0;
	uint64_t end = mono_ms() + 20000;
	while (recvd < total && mono_ms() < end) {
		if (sent < total) {
			size_t w = 0;
			if (SSL_write_ex(t.ssl, out + sent, total - sent > 16384 ? 16384 : total - sent, &w) == 1)
				sent += w;
			ERR_clear_error();
		}
		net_loop_run_once(s.loop, 0);
		size_t r = 0;
		while (recvd < total && SSL_read_ex(t.ssl, in + recvd, total - recvd, &r) == 1)
			recvd += r;
		ERR_clear_error();
	}
	ck_assert_uint_eq(recvd, total);
	ck_assert(memcmp(in, out, total) == 0);
	free(in);
	free(out);
	/* orderly TLS close from the client: EOF */
	SSL_shutdown(t.ssl);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_int_eq(s.why, NET_CLOSED_EOF);
	tcli_close(&t);
	srv_done(&s);
	net_tls_free(tls);
	net_tls_free(NULL);
	certs_free(&k);
}
END_TEST

/* A plain MQTT client on a TLS port: the handshake fails, the conn is
 * closed with NET_CLOSED_TLS and no data is ever delivered. */
START_TEST(t_tls_plain_client_closed)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	struct srv s;
	srv_init(&s);
	struct net_tls *tls = tls_make(&k, false, NULL);
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	int fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	static const uint8_t connect_pkt[] = { 0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T',
					       0x04, 0x02, 0x00, 0x3c, 0x00, 0x00 };
	cli_send_all(&s, fd, connect_pkt, sizeof connect_pkt);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_int_eq(s.closes, 1);
	ck_assert_int_eq(s.why, NET_CLOSED_TLS);
	ck_assert_int_eq(s.datas, 0);
	uint8_t b[256];
	int eof, err;
	uint64_t end = mono_ms() + 2000;
	do
		cli_recv(&s, fd, b, sizeof b, &eof, &err, 50);
	while (!eof && !err && mono_ms() < end);
	ck_assert(eof || err); /* the client is closed on */
	close(fd);
	srv_done(&s);
	net_tls_free(tls);
	certs_free(&k);
}
END_TEST

START_TEST(t_tls_client_certificate)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	struct srv s;
	srv_init(&s);
	struct net_tls *tls = tls_make(&k, true, "tlsv1.2");
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	int port = net_listener_port(s.l);
	struct tcli t;
	ck_assert_int_eq(tcli_open(&s, &t, port, &k, 0, false), 1);
	tcli_write_all(&s, &t, "id?", 3);
	uint8_t b[8];
	int eof;
	ck_assert_uint_eq(tcli_read(&s, &t, b, 3, &eof, 2000), 3);
	ck_assert_str_eq(s.cn, "client1");
	/* RFC 2253: most specific first, like mosquitto's use_subject_as_username */
	ck_assert_str_eq(s.subject, "CN=client1,O=Acme Corp");
	tcli_close(&t);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);

	/* no certificate: refused (TLS 1.3 reports it after the client's
	 * Finished, so look at the server side) */
	s.closes = 0;
	struct tcli t2;
	tcli_open(&s, &t2, port, NULL, 0, false);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_int_eq(s.closes, 1);
	ck_assert_int_eq(s.why, NET_CLOSED_TLS);
	tcli_close(&t2);
	srv_done(&s);
	net_tls_free(tls);
	certs_free(&k);
}
END_TEST

START_TEST(t_tls_version_and_bad_options)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	char err[256] = "";
	struct net_tls_opts o = { .certfile = k.scert, .keyfile = k.skey, .tls_version = "tlsv9" };
	ck_assert_ptr_null(net_tls_new(&o, err, sizeof err));
	ck_assert(strstr(err, "tlsv9") != NULL);
	o.tls_version = NULL;
	o.keyfile = k.ckey; /* mismatched key */
	ck_assert_ptr_null(net_tls_new(&o, err, sizeof err));
	ck_assert(strstr(err, "keyfile") != NULL);
	o.keyfile = "/nonexistent/key.pem";
	ck_assert_ptr_null(net_tls_new(&o, err, sizeof err));
	o.keyfile = k.skey;
	o.ciphers = "NO-SUCH-CIPHER";
	ck_assert_ptr_null(net_tls_new(&o, err, sizeof err));
	ck_assert(strstr(err, "ciphers") != NULL);
	o.ciphers = NULL;
	o.require_certificate = true; /* without a CA */
	ck_assert_ptr_null(net_tls_new(&o, err, sizeof err));

	/* compat: tls_version "tlsv1.3" is a minimum -> a 1.2-only client fails */
	struct srv s;
	srv_init(&s);
	struct net_tls *tls = tls_make(&k, false, "tlsv1.3");
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	struct tcli t;
	ck_assert_int_eq(tcli_open(&s, &t, net_listener_port(s.l), NULL, TLS1_2_VERSION, false), 0);
	tcli_close(&t);
	ck_assert_int_eq(tcli_open(&s, &t, net_listener_port(s.l), NULL, 0, false), 1);
	ck_assert_int_eq(SSL_version(t.ssl), TLS1_3_VERSION);
	tcli_close(&t);
	srv_done(&s);
	net_tls_free(tls);
	certs_free(&k);
}
END_TEST

/* SIGHUP reload: a new SSL_CTX for new conns; live conns keep theirs. */
START_TEST(t_tls_reload)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	struct srv s;
	srv_init(&s);
	struct net_tls *tls = tls_make(&k, false, NULL);
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	int port = net_listener_port(s.l);
	struct tcli a;
	ck_assert_int_eq(tcli_open(&s, &a, port, NULL, 0, false), 1);
	struct net_tls_opts o = { .certfile = k.scert, .keyfile = "/nonexistent.pem" };
	char err[256] = "";
	ck_assert_int_eq(net_tls_reload(tls, &o, err, sizeof err), -1);
	ck_assert(err[0] != 0);
	o.keyfile = k.skey;
	o.tls_version = "tlsv1.3";
	ck_assert_int_eq(net_tls_reload(tls, &o, err, sizeof err), 0);
	struct tcli b;
	ck_assert_int_eq(tcli_open(&s, &b, port, NULL, TLS1_2_VERSION, false), 0); /* new rules */
	tcli_close(&b);
	ck_assert_int_eq(tcli_open(&s, &b, port, NULL, 0, false), 1);
	uint8_t buf[4];
	int eof;
	tcli_write_all(&s, &a, "old", 3);
	ck_assert_uint_eq(tcli_read(&s, &a, buf, 3, &eof, 2000), 3);
	ck_assert_mem_eq(buf, "old", 3);
	tcli_write_all(&s, &b, "new", 3);
	ck_assert_uint_eq(tcli_read(&s, &b, buf, 3, &eof, 2000), 3);
	ck_assert_mem_eq(buf, "new", 3);
	/* freeing the net_tls while conns live is safe (SSL_CTX refcount) */
	net_tls_free(tls);
	tcli_write_all(&s, &a, "still", 5);
	ck_assert_uint_eq(tcli_read(&s, &a, buf, 4, &eof, 2000), 4);
	tcli_close(&a);
	tcli_close(&b);
	srv_done(&s);
	certs_free(&k);
}
END_TEST

static int psk_lookup(const char *identity, uint8_t *key, size_t cap, void *user)
{
	(*(int *)user)++;
	if (strcmp(identity, "id1") != 0 || cap < 8)
		return -1;
	memcpy(key, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	return 8;
}

START_TEST(t_tls_psk)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	int lookups = 0;
	struct net_tls_opts o = { .certfile = k.scert, .keyfile = k.skey, .psk_hint = "hint",
				  .psk_lookup = psk_lookup, .psk_user = &lookups };
	char err[256] = "";
	struct net_tls *tls = net_tls_new(&o, err, sizeof err);
	ck_assert_msg(tls != NULL, "%s", err);
	struct srv s;
	srv_init(&s);
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	struct tcli t;
	ck_assert_int_eq(tcli_open(&s, &t, net_listener_port(s.l), NULL, 0, true), 1);
	tcli_write_all(&s, &t, "psk", 3);
	uint8_t b[4];
	int eof;
	ck_assert_uint_eq(tcli_read(&s, &t, b, 3, &eof, 2000), 3);
	ck_assert_int_ge(lookups, 1);
	ck_assert_str_eq(s.psk_id, "id1");
	tcli_close(&t);
	srv_done(&s);
	net_tls_free(tls);
	certs_free(&k);
}
END_TEST

static void tls_add_tests(TCase *tc)
{
	tcase_add_test(tc, t_tls_handshake_echo);
	tcase_add_test(tc, t_tls_plain_client_closed);
	tcase_add_test(tc, t_tls_client_certificate);
	tcase_add_test(tc, t_tls_version_and_bad_options);
	tcase_add_test(tc, t_tls_reload);
	tcase_add_test(tc, t_tls_psk);
}

static Suite *net_suite(void)
{
	Suite *s = suite_create("net");
	TCase *tc = tcase_create("loop");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, t_loop_raw_fd);
	tcase_add_test(tc, t_clock_cached_monotonic);
	suite_add_tcase(s, tc);
	tc = tcase_create("tcp");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, t_tcp_echo_v4);
	tcase_add_test(tc, t_tcp_big_transfer_short_writes);
	tcase_add_test(tc, t_tcp_big_transfer_reserve_commit);
	tcase_add_test(tc, t_tcp_data_then_fin_in_order);
	tcase_add_test(tc, t_tcp_rst_is_reset);
	tcase_add_test(tc, t_close_once);
	tcase_add_test(tc, t_abort_peer_sees_reset);
	tcase_add_test(tc, t_flush_close_delivers_then_eof);
	tcase_add_test(tc, t_flush_close_bounded);
	tcase_add_test(tc, t_input_limit_pauses);
	tcase_add_test(tc, t_pause_resume);
	tcase_add_test(tc, t_ipv6_loopback);
	tcase_add_test(tc, t_unspec_localhost_both_families);
	tcase_add_test(tc, t_unix_listener);
	tcase_add_test(tc, t_ws_not_yet);
	suite_add_tcase(s, tc);
	tc = tcase_create("tls");
	tcase_set_timeout(tc, 60);
	tls_add_tests(tc);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(net_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
