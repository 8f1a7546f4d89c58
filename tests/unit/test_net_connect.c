/*
 * tests/unit/test_net_connect.c — net_connect (net/connect.c): an outbound
 * nonblocking TCP connection is an ordinary net_conn. Bytes written before
 * the connect completes are flushed once it does; data flows both ways; a
 * refused connect reaches on_close (NET_CLOSED_ERROR, ECONNREFUSED); a name
 * is resolved off the loop (net/resolve.c): an unresolvable one reaches
 * on_close with an EAI error that net_strerror names, and a conn closed
 * while its name is resolved goes away cleanly; IPv6 loopback works when
 * the host has it. Every wait is bounded; the loop is freed at the end.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "net.h"

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

struct side {
	char got[64];
	size_t n;
	int closes;
	enum net_close_reason why;
	int err;
	struct net_conn *c;
};

static void s_data(struct net_conn *c, void *user)
{
	struct side *s = user;
	size_t len;
	const uint8_t *in = net_conn_input(c, &len);
	size_t room = sizeof(s->got) - 1 - s->n;
	size_t k = len < room ? len : room;
	memcpy(s->got + s->n, in, k);
	s->n += k;
	net_conn_consume(c, len);
}

static void s_close(struct net_conn *c, enum net_close_reason why, int err, void *user)
{
	struct side *s = user;
	s->closes++;
	s->why = why;
	s->err = err;
	s->c = NULL;
}

static const struct net_conn_cbs cbs = {s_data, s_close};

static void on_accept(struct net_listener *l, struct net_conn *c, void *user)
{
	struct side *s = user;
	s->c = c;
	net_conn_set_cbs(c, &cbs, s);
	net_conn_write(c, "hello client", 12);
}

static void roundtrip(const char *bind, const char *host, int family)
{
	struct net_loop *loop = net_loop_new();
	char err[256];
	struct side srv = {0}, cli = {0};
	struct net_listen_opts o = {.bind_address = bind, .port = 0, .family = family};
	struct net_listener *l = net_listen(loop, &o, on_accept, &srv, err, sizeof(err));
	if (!l && family == AF_INET6) { /* no IPv6 on this host */
		net_loop_free(loop);
		return;
	}
	ck_assert_msg(l != NULL, "%s", err);
	struct net_conn *c = net_connect(loop, host, net_listener_port(l), AF_UNSPEC, NULL, err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	net_conn_set_cbs(c, &cbs, &cli);
	cli.c = c;
	ck_assert(!net_conn_ready(c));
	ck_assert_ptr_null(net_conn_listener(c));
	ck_assert_int_eq(net_conn_write(c, "hello server", 12), 0); /* queued before the connect completes */
	PUMP_UNTIL(loop, srv.n == 12 && cli.n == 12, 3000);
	ck_assert_str_eq(srv.got, "hello server");
	ck_assert_str_eq(cli.got, "hello client");
	ck_assert(net_conn_ready(c));
	net_conn_close(c, NET_CLOSE_FLUSH);
	PUMP_UNTIL(loop, cli.closes == 1 && srv.closes == 1, 3000);
	ck_assert_int_eq(cli.closes, 1);
	ck_assert_int_eq(cli.why, NET_CLOSED_LOCAL);
	ck_assert_int_eq(srv.closes, 1);
	ck_assert_int_eq(srv.why, NET_CLOSED_EOF);
	net_listener_close(l);
	net_loop_free(loop);
}

START_TEST(connect_ipv4_roundtrip)
{
	roundtrip("127.0.0.1", "127.0.0.1", AF_INET);
}
END_TEST

START_TEST(connect_ipv6_roundtrip)
{
	roundtrip("::1", "::1", AF_INET6);
}
END_TEST

START_TEST(connect_by_name)
{
	roundtrip("127.0.0.1", "localhost", AF_INET);
}
END_TEST

START_TEST(connect_refused_reaches_on_close)
{
	struct net_loop *loop = net_loop_new();
	char err[256];
	struct side srv = {0}, cli = {0};
	/* A port that was free a moment ago: bind, note it, close. */
	struct net_listen_opts o = {.bind_address = "127.0.0.1", .port = 0, .family = AF_INET};
	struct net_listener *l = net_listen(loop, &o, on_accept, &srv, err, sizeof(err));
	ck_assert(l != NULL);
	int port = net_listener_port(l);
	net_listener_close(l);
	net_loop_run_once(loop, 0);
	struct net_conn *c = net_connect(loop, "127.0.0.1", port, AF_INET, NULL, err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	net_conn_set_cbs(c, &cbs, &cli);
	PUMP_UNTIL(loop, cli.closes == 1, 3000);
	ck_assert_int_eq(cli.closes, 1);
	ck_assert_int_eq(cli.why, NET_CLOSED_ERROR);
	ck_assert_int_eq(cli.err, ECONNREFUSED);
	net_loop_free(loop);
}
END_TEST

/* The lookup fails on the resolver thread: on_close, never a blocked loop. */
static void bad_name(const char *host, const char *bind)
{
	struct net_loop *loop = net_loop_new();
	char err[256] = "";
	struct side cli = {0};
	struct net_conn *c = net_connect_from(loop, host, 1883, AF_UNSPEC, NULL, bind, err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	net_conn_set_cbs(c, &cbs, &cli);
	PUMP_UNTIL(loop, cli.closes == 1, 15000);
	ck_assert_int_eq(cli.closes, 1);
	ck_assert_int_eq(cli.why, NET_CLOSED_ERROR);
	ck_assert_msg(cli.err >= NET_EAI_BASE, "err %d", cli.err);
	ck_assert_msg(strlen(net_strerror(cli.err)) > 0 && strcmp(net_strerror(cli.err), "Unknown error"),
		      "%s", net_strerror(cli.err));
	net_loop_free(loop);
}

START_TEST(connect_bad_name_reaches_on_close)
{
	bad_name("no-such-host.invalid", NULL);
}
END_TEST

/* Closed before the answer: the thread finishes alone; nothing leaks (ASan). */
START_TEST(connect_closed_while_resolving)
{
	struct net_loop *loop = net_loop_new();
	char err[256] = "";
	struct side cli = {0};
	for (int i = 0; i < 20; i++) {
		struct net_conn *c = net_connect(loop, "localhost", 1883, AF_UNSPEC, NULL, err, sizeof(err));
		ck_assert_msg(c != NULL, "%s", err);
		net_conn_set_cbs(c, &cbs, &cli);
		net_conn_close(c, NET_CLOSE_ABORT);
		net_loop_run_once(loop, 0);
	}
	PUMP_UNTIL(loop, cli.closes == 20, 3000);
	ck_assert_int_eq(cli.closes, 20);
	net_loop_free(loop);
	struct timespec ts = {0, 200 * 1000000L}; /* let the resolver threads finish and free their jobs */
	nanosleep(&ts, NULL);
}
END_TEST

/* bridge_bind_address: the outbound socket is bound to the given local address. */
START_TEST(connect_from_bound_address)
{
	struct net_loop *loop = net_loop_new();
	char err[256];
	struct side srv = {0}, cli = {0};
	struct net_listen_opts o = {.bind_address = "127.0.0.1", .port = 0, .family = AF_INET};
	struct net_listener *l = net_listen(loop, &o, on_accept, &srv, err, sizeof(err));
	ck_assert(l != NULL);
	struct net_conn *c = net_connect_from(loop, "127.0.0.1", net_listener_port(l), AF_UNSPEC, NULL, "127.0.0.2", err,
					      sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	net_conn_set_cbs(c, &cbs, &cli);
	cli.c = c;
	PUMP_UNTIL(loop, srv.c != NULL && cli.n == 12, 3000);
	ck_assert_ptr_nonnull(srv.c);
	ck_assert_msg(!strncmp(net_conn_peer(srv.c), "127.0.0.2:", 10), "%s", net_conn_peer(srv.c));
	net_conn_close(c, NET_CLOSE_ABORT);
	net_listener_close(l);
	net_loop_free(loop);
}
END_TEST

START_TEST(connect_from_bad_bind_address_reaches_on_close)
{
	bad_name("127.0.0.1", "no-such-host.invalid");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("net_connect");
	TCase *t = tcase_create("core");
	tcase_set_timeout(t, 20);
	tcase_add_test(t, connect_ipv4_roundtrip);
	tcase_add_test(t, connect_ipv6_roundtrip);
	tcase_add_test(t, connect_by_name);
	tcase_add_test(t, connect_refused_reaches_on_close);
	tcase_add_test(t, connect_bad_name_reaches_on_close);
	tcase_add_test(t, connect_closed_while_resolving);
	tcase_add_test(t, connect_from_bound_address);
	tcase_add_test(t, connect_from_bad_bind_address_reaches_on_close);
	suite_add_tcase(s, t);
	SRunner *r = srunner_create(s);
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
