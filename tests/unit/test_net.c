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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "test_net_util.h"

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
 * RST. What was queued gets one nonblocking send first (a live peer reads
 * our last words, e.g. MQTT DISCONNECT 0x8D, before the reset); nothing
 * waits for it. */
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
	ck_assert_uint_eq(n, 10); /* "never sent": one attempt, then RST */
	ck_assert_int_eq(memcmp(b, "never sent", 10), 0);
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
	ck_assert_uint_le(dt, NET_LINGER_MS + 2000);
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

/* Partial frames left in the buffer across reads: scratch -> own buffer,
 * growth, compaction; the stream stays in order. */
START_TEST(t_partial_frames_in_order)
{
	struct srv s;
	srv_init(&s);
	s.mode = M_FRAMES;
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, NULL));
	int fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	const size_t total = 3000000; /* a multiple of the frame size */
	uint8_t *out = malloc(total);
	pattern(out, 0, total);
	size_t sent = 0;
	uint64_t end = mono_ms() + 10000;
	while (s.got < total && mono_ms() < end) {
		if (sent < total) {
			size_t chunk = 1 + (sent * 13) % 7001; /* odd sizes, frames straddle reads */
			if (chunk > total - sent)
				chunk = total - sent;
			ssize_t w = send(fd, out + sent, chunk, MSG_NOSIGNAL);
			if (w > 0)
				sent += (size_t)w;
		}
		net_loop_run_once(s.loop, 0);
	}
	ck_assert_uint_eq(s.got, total);
	ck_assert_int_eq(s.bad_frames, 0);
	ck_assert_ptr_null(s.c->in_own); /* all consumed: no buffer kept */
	free(out);
	close(fd);
	srv_done(&s);
}
END_TEST

/* The accept callback may close at once (max_connections): before setting
 * callbacks (no on_close, RST) or after (on_close once, bytes flushed). */
START_TEST(t_close_in_accept_cb)
{
	struct srv s;
	srv_init(&s);
	s.close_at_accept = 1;
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, NULL));
	int fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	uint8_t b[8];
	int eof, err;
	cli_recv(&s, fd, b, sizeof b, &eof, &err, 2000);
	ck_assert_int_eq(err, ECONNRESET);
	ck_assert_int_eq(s.closes, 0);
	close(fd);
	s.close_at_accept = 2;
	fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	ck_assert_uint_eq(cli_recv(&s, fd, b, sizeof b, &eof, &err, 2000), 3);
	ck_assert_mem_eq(b, "bye", 3);
	ck_assert_int_eq(eof, 1);
	ck_assert_int_eq(s.closes, 1);
	ck_assert_int_eq(s.why, NET_CLOSED_LOCAL);
	close(fd);
	PUMP_UNTIL(s.loop, net_loop_lingering(s.loop) == 0, 1000);
	ck_assert_uint_eq(net_loop_lingering(s.loop), 0);
	srv_done(&s);
}
END_TEST

/* EMFILE: the listener stops accepting for a while instead of spinning on a
 * readable listening socket, then accepts the waiting connection. */
START_TEST(t_accept_emfile_pauses)
{
	struct srv s;
	srv_init(&s);
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, NULL));
	int fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	struct rlimit old, lim;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)fd + 1;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	int dups[1024], nd = 0;
	while (nd < 1024 && (dups[nd] = dup(0)) >= 0)
		nd++;
	net_loop_run_once(s.loop, 0);
	ck_assert_int_eq(s.accepts, 0);
	ck_assert(s.l->paused_until != 0);
	int spins = 0;
	uint64_t t0 = mono_ms();
	while (mono_ms() - t0 < 40) {
		net_loop_run_once(s.loop, 20);
		spins++;
	}
	ck_assert_int_le(spins, 5); /* waited, did not spin */
	for (int i = 0; i < nd; i++)
		close(dups[i]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	PUMP_UNTIL(s.loop, s.accepts == 1, 2000);
	ck_assert_int_eq(s.accepts, 1);
	ck_assert(s.l->paused_until == 0);
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

#include "test_net_tls.h"

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
	tcase_add_test(tc, t_partial_frames_in_order);
	tcase_add_test(tc, t_close_in_accept_cb);
	tcase_add_test(tc, t_accept_emfile_pauses);
	tcase_add_test(tc, t_ipv6_loopback);
	tcase_add_test(tc, t_unspec_localhost_both_families);
	tcase_add_test(tc, t_unix_listener);
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
