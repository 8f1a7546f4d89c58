/*
 * tests/unit/test_ws.c — net/ws.c: WebSocket listeners (libwebsockets in our
 * epoll loop), seen through the conn API.
 *
 * One thread on loopback with a kernel-chosen port: a raw TCP client does
 * the HTTP upgrade by hand (Sec-WebSocket-Key, accept hash checked) and
 * builds masked frames byte by byte; the loop is pumped between client
 * operations and every wait is bounded. The server side echoes or collects
 * what the conn delivers. MQTT over WebSockets: v5 / v311 chapter 6
 * (v5 MQTT-6.0.0-1 binary frames only, -2 frames are not packet boundaries,
 * -3/-4 subprotocol "mqtt").
 */
#include "net.h"
#include "net_internal.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test_ws_util.h"

/* ---- tests ------------------------------------------------------------------------------- */

START_TEST(t_echo)
{
	struct srv s;
	srv_start(&s, M_ECHO, NULL);
	struct cli *k = cli_connect(&s);
	pump(&s, 20);
	ck_assert_int_eq(s.accepts, 1);
	char want_peer[32];
	ck_assert_str_eq(strtok(strcpy(want_peer, s.peer), ":"), "127.0.0.1");
	upgrade_ok(&s, k);
	ck_assert_ptr_nonnull(s.c);
	ck_assert(net_conn_ready(s.c)); /* true after the upgrade */
	/* v5 MQTT-6.0.0-1: binary frames carry the bytes */
	send_frame(&s, k, true, 2, "\xc0\x00", 2); /* a PINGREQ */
	struct stream st;
	stream_init(&st, 2);
	ck_assert(cli_wait(&s, k, stream_pred, &st, 3000));
	ck_assert_uint_eq(st.n, 2);
	ck_assert(!memcmp(st.p, "\xc0\x00", 2));
	ck_assert(s.ready_at_first_data);
	free(st.p);
	cli_free(k);
	srv_stop(&s);
}
END_TEST

/* v5 MQTT-6.0.0-2 / v311 MQTT-6.0.0-2: a packet may span frames and a frame
 * may hold several packets; the conn sees one byte stream. */
START_TEST(t_split_and_packed)
{
	struct srv s;
	srv_start(&s, M_COLLECT, NULL);
	struct cli *k = cli_connect(&s);
	upgrade_ok(&s, k);
	static const uint8_t pub[] = {0x30, 0x07, 0x00, 0x01, 't', 'h', 'e', 'l', 'o'};
	send_frame(&s, k, true, 2, pub, 3);
	pump(&s, 20);
	send_frame(&s, k, true, 2, pub + 3, 4);
	send_frame(&s, k, true, 2, pub + 7, 2);
	uint8_t two[2 * sizeof pub];
	memcpy(two, pub, sizeof pub);
	memcpy(two + sizeof pub, pub, sizeof pub);
	send_frame(&s, k, true, 2, two, sizeof two);
	wait_collected(&s, k, 3 * sizeof pub);
	ck_assert_uint_eq(s.ngot, 3 * sizeof pub);
	for (int i = 0; i < 3; i++)
		ck_assert(!memcmp(s.got + i * sizeof pub, pub, sizeof pub));
	ck_assert_int_eq(s.closes, 0);
	cli_free(k);
	srv_stop(&s);
}
END_TEST

/* Fragmented message (FIN=0 + continuations): streamed in order. */
START_TEST(t_fragmented)
{
	struct srv s;
	srv_start(&s, M_COLLECT, NULL);
	struct cli *k = cli_connect(&s);
	upgrade_ok(&s, k);
	send_frame(&s, k, false, 2, "abc", 3);
	send_frame(&s, k, false, 0, "defg", 4);
	send_frame(&s, k, true, 9, "pp", 2); /* a ping between fragments is allowed */
	send_frame(&s, k, true, 0, "hij", 3);
	wait_collected(&s, k, 10);
	ck_assert_uint_eq(s.ngot, 10);
	ck_assert(!memcmp(s.got, "abcdefghij", 10));
	struct stream st;
	stream_init(&st, 0);
	ck_assert(cli_wait(&s, k, stream_pred, &st, 3000));
	ck_assert_int_eq(st.pongs, 1);
	ck_assert_int_eq(s.closes, 0);
	free(st.p);
	cli_free(k);
	srv_stop(&s);
}
END_TEST

/* v5 MQTT-6.0.0-1 / v311 MQTT-6.0.0-1: a text frame closes the connection. */
START_TEST(t_text_closes)
{
	struct srv s;
	srv_start(&s, M_COLLECT, NULL);
	struct cli *k = cli_connect(&s);
	upgrade_ok(&s, k);
	send_frame(&s, k, true, 1, "\xc0\x00", 2);
	struct stream st;
	stream_init(&st, 0);
	ck_assert(cli_wait(&s, k, cli_eof, &st, 8000));
	ck_assert_int_eq(st.close_code, 1003);
	ck_assert_uint_eq(s.ngot, 0); /* nothing of it reached the conn */
	ck_assert_int_eq(s.closes, 1);
	ck_assert_int_eq(s.why, NET_CLOSED_PROTOCOL);
	pump(&s, 20);
	ck_assert_int_eq(s.closes, 1); /* exactly once */
	free(st.p);
	cli_free(k);
	srv_stop(&s);
}
END_TEST

/* v5 MQTT-6.0.0-3/-4: subprotocol negotiation. */
START_TEST(t_subprotocols)
{
	struct srv s;
	srv_start(&s, M_ECHO, NULL);
	char resp[2048];
	struct cli *k = cli_connect(&s);
	ck_assert_ptr_nonnull(upgrade(&s, k, "mqttv3.1", resp, sizeof resp));
	ck_assert_msg(!strncmp(resp, "HTTP/1.1 101", 12), "%s", resp);
	ck_assert_ptr_nonnull(strcasestr(resp, "Sec-WebSocket-Protocol: mqttv3.1\r\n"));
	cli_free(k);

	k = cli_connect(&s);
	ck_assert_ptr_nonnull(upgrade(&s, k, "foo, mqtt", resp, sizeof resp));
	ck_assert_msg(!strncmp(resp, "HTTP/1.1 101", 12), "%s", resp);
	ck_assert_ptr_nonnull(strcasestr(resp, "Sec-WebSocket-Protocol: mqtt\r\n"));
	cli_free(k);

	/* none offered: accepted as mqtt (lenient), no header echoed */
	k = cli_connect(&s);
	ck_assert_ptr_nonnull(upgrade(&s, k, NULL, resp, sizeof resp));
	ck_assert_msg(!strncmp(resp, "HTTP/1.1 101", 12), "%s", resp);
	ck_assert_ptr_null(strcasestr(resp, "Sec-WebSocket-Protocol"));
	send_frame(&s, k, true, 2, "xy", 2);
	struct stream st;
	stream_init(&st, 2);
	ck_assert(cli_wait(&s, k, stream_pred, &st, 3000));
	ck_assert(!memcmp(st.p, "xy", 2));
	free(st.p);
	cli_free(k);

	/* only unknown subprotocols: refused, never upgraded */
	int closes = s.closes;
	k = cli_connect(&s);
	char *r = upgrade(&s, k, "foo", resp, sizeof resp);
	ck_assert(r == NULL || strncmp(resp, "HTTP/1.1 101", 12) != 0);
	ck_assert(cli_wait(&s, k, srv_closed, &s, 3000));
	ck_assert_int_gt(s.closes, closes);
	cli_free(k);
	srv_stop(&s);
}
END_TEST

/* The owner closes (FLUSH): queued bytes arrive, then a close frame (1000),
 * then EOF; on_close once with NET_CLOSED_LOCAL. */
START_TEST(t_server_close_flush)
{
	struct srv s;
	srv_start(&s, M_COLLECT, NULL);
	struct cli *k = cli_connect(&s);
	upgrade_ok(&s, k);
	ck_assert_int_eq(net_conn_write(s.c, "\x20\x02\x00\x00", 4), 0); /* CONNACK */
	net_conn_close(s.c, NET_CLOSE_FLUSH);
	struct stream st;
	stream_init(&st, 0);
	ck_assert(cli_wait(&s, k, cli_eof, &st, 3000) || st.close_code == 1000);
	ck_assert_uint_eq(st.n, 4);
	ck_assert(!memcmp(st.p, "\x20\x02\x00\x00", 4));
	ck_assert_int_eq(st.close_code, 1000);
	ck_assert_int_eq(s.closes, 1);
	ck_assert_int_eq(s.why, NET_CLOSED_LOCAL);
	/* answer the close: lws then drops the connection */
	send_frame(&s, k, true, 8, "\x03\xe8", 2);
	ck_assert(cli_wait(&s, k, cli_eof, &st, 3000));
	pump(&s, 20);
	ck_assert_int_eq(s.closes, 1);
	free(st.p);
	cli_free(k);
	srv_stop(&s);
}
END_TEST

/* The peer closes (close frame, then FIN): on_close once, NET_CLOSED_EOF. */
START_TEST(t_peer_close)
{
	struct srv s;
	srv_start(&s, M_COLLECT, NULL);
	struct cli *k = cli_connect(&s);
	upgrade_ok(&s, k);
	send_frame(&s, k, true, 2, "\xe0\x00", 2); /* DISCONNECT */
	send_frame(&s, k, true, 8, "\x03\xe8", 2);
	struct stream st;
	stream_init(&st, 0);
	ck_assert(cli_wait(&s, k, cli_eof, &st, 5000));
	ck_assert_int_eq(st.close_code, 1000); /* echoed */
	ck_assert(cli_wait(&s, k, srv_closed, &s, 2000));
	ck_assert_uint_eq(s.ngot, 2);
	ck_assert_int_eq(s.why, NET_CLOSED_EOF);
	cli_free(k);

	/* plain FIN without a close frame */
	k = cli_connect(&s);
	upgrade_ok(&s, k);
	shutdown(k->fd, SHUT_WR);
	ck_assert(cli_wait(&s, k, cli_eof, &st, 5000));
	pump(&s, 20);
	ck_assert_int_eq(s.closes, 2);
	ck_assert_int_eq(s.why, NET_CLOSED_EOF);
	free(st.p);
	cli_free(k);
	srv_stop(&s);
}
END_TEST

/* A stalled upgrade (the broker's connect_timeout) closes cleanly. */
START_TEST(t_close_before_upgrade)
{
	struct srv s;
	srv_start(&s, M_COLLECT, NULL);
	struct cli *k = cli_connect(&s);
	cli_send(&s, k, "GET /mqtt HTTP/1.1\r\nHost: x\r\n", 29);
	pump(&s, 30);
	ck_assert_ptr_nonnull(s.c);
	ck_assert(!net_conn_ready(s.c));
	net_conn_close(s.c, NET_CLOSE_FLUSH);
	struct stream st;
	stream_init(&st, 0);
	ck_assert(cli_wait(&s, k, cli_eof, &st, 3000));
	ck_assert_int_eq(s.closes, 1);
	ck_assert_int_eq(s.why, NET_CLOSED_LOCAL);
	/* and an abort of an upgraded conn */
	cli_free(k);
	k = cli_connect(&s);
	upgrade_ok(&s, k);
	net_conn_close(s.c, NET_CLOSE_ABORT);
	ck_assert(cli_wait(&s, k, cli_eof, &st, 3000));
	ck_assert_int_eq(s.closes, 2);
	free(st.p);
	cli_free(k);
	srv_stop(&s);
}
END_TEST

/* Big transfers both ways: several frames, partial writes, input limit. */
START_TEST(t_big)
{
	struct srv s;
	srv_start(&s, M_COLLECT, NULL);
	struct cli *k = cli_connect_buf(&s, 16384);
	upgrade_ok(&s, k);
	size_t big = 1500000;
	uint8_t *p = malloc(big);
	ck_assert_ptr_nonnull(p);
	pattern(p, big, 7);
	for (size_t off = 0; off < big; off += 100000)
		ck_assert_int_eq(net_conn_write(s.c, p + off, off + 100000 <= big ? 100000 : big - off), 0);
	struct stream st;
	stream_init(&st, big);
	ck_assert_msg(cli_wait(&s, k, stream_pred, &st, 10000), "client got %zu of %zu (pending %zu, buf %zu %02x %02x eof %d)", st.n, big,
		      s.c ? net_conn_out_pending(s.c) : 0, k->n, k->buf[0], k->buf[1], k->eof);
	ck_assert_uint_eq(st.n, big);
	ck_assert(!memcmp(st.p, p, big));
	ck_assert_int_gt(st.frames, 1);

	/* client -> server through a small input limit: back-pressure, no loss */
	net_conn_set_input_limit(s.c, 10000);
	pattern(p, big, 3);
	for (size_t off = 0; off < 600000; off += 60000)
		send_frame(&s, k, true, 2, p + off, 60000);
	wait_collected(&s, k, 600000);
	ck_assert(!memcmp(s.got, p, 600000));
	ck_assert_int_eq(s.closes, 0);
	free(st.p);
	free(p);
	cli_free(k);
	srv_stop(&s);
}
END_TEST

/* Paused reading holds input; resuming delivers it. */
START_TEST(t_pause)
{
	struct srv s;
	srv_start(&s, M_COLLECT, NULL);
	struct cli *k = cli_connect(&s);
	upgrade_ok(&s, k);
	net_conn_pause_read(s.c, true);
	send_frame(&s, k, true, 2, "12345", 5);
	pump(&s, 50);
	ck_assert_uint_eq(s.ngot, 0);
	net_conn_pause_read(s.c, false);
	wait_collected(&s, k, 5);
	ck_assert(!memcmp(s.got, "12345", 5));
	cli_free(k);
	srv_stop(&s);
}
END_TEST

/* Static files from ws_http_dir on the same port; big ones complete. */
static bool http_done(struct cli *k, void *arg)
{
	size_t *want = arg;
	uint8_t *e = memmem(k->buf, k->n, "\r\n\r\n", 4);
	return k->eof || (e && k->n - (size_t)(e + 4 - k->buf) >= *want);
}

START_TEST(t_http_dir)
{
	char dir[] = "/tmp/vigil-ws-http-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char path[256];
	size_t big = 400000;
	uint8_t *p = malloc(big);
	ck_assert_ptr_nonnull(p);
	pattern(p, big, 11);
	snprintf(path, sizeof path, "%s/big.js", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(p, 1, big, f), big);
	fclose(f);
	snprintf(path, sizeof path, "%s/index.html", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("<p>vigil</p>\n", f);
	fclose(f);

	struct srv s;
	srv_start_opts(&s, M_COLLECT, NULL, "127.0.0.1", dir);
	struct cli *k = cli_connect_buf(&s, 16384);
	const char *get = "GET /big.js HTTP/1.1\r\nHost: x\r\n\r\n";
	cli_send(&s, k, get, strlen(get));
	uint64_t t0 = mono_ms();
	ck_assert_msg(cli_wait(&s, k, http_done, &big, 10000), "got %zu bytes", k->n);
	ck_assert_msg(mono_ms() - t0 < 3000, "static file took %llu ms: %.*s", (unsigned long long)(mono_ms() - t0),
		      (int)(k->n < 300 ? k->n : 300), (char *)k->buf);
	ck_assert(!strncmp((char *)k->buf, "HTTP/1.1 200", 12));
	uint8_t *body = memmem(k->buf, k->n, "\r\n\r\n", 4) + 4;
	ck_assert(!memcmp(body, p, big));
	cli_free(k);

	k = cli_connect(&s);
	get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	cli_send(&s, k, get, strlen(get));
	size_t small = 13;
	ck_assert(cli_wait(&s, k, http_done, &small, 5000));
	ck_assert_ptr_nonnull(memmem(k->buf, k->n, "<p>vigil</p>", 12));
	cli_free(k);
	/* the same port still upgrades */
	k = cli_connect(&s);
	upgrade_ok(&s, k);
	cli_free(k);
	srv_stop(&s);
	snprintf(path, sizeof path, "rm -rf %s", dir);
	ck_assert_int_eq(system(path), 0);
	free(p);
}
END_TEST

/* The bind address is honoured (::1 only here), IPv6 peers work. */
START_TEST(t_ipv6_bind)
{
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "::1", &a6.sin6_addr);
	bool have6 = probe >= 0 && bind(probe, (struct sockaddr *)&a6, sizeof a6) == 0;
	if (probe >= 0)
		close(probe);
	if (!have6)
		return; /* no IPv6 loopback on this machine */
	struct srv s;
	srv_start_opts(&s, M_ECHO, NULL, "::1", NULL);
	struct cli *k = cli_connect_af(&s, 0, AF_INET6);
	upgrade_ok(&s, k);
	ck_assert_str_eq(strrchr(s.peer, ':') - 3 >= s.peer ? "::1" : "", "::1");
	send_frame(&s, k, true, 2, "v6", 2);
	struct stream st;
	stream_init(&st, 2);
	ck_assert(cli_wait(&s, k, stream_pred, &st, 3000));
	ck_assert(!memcmp(st.p, "v6", 2));
	free(st.p);
	cli_free(k);
	/* not on 127.0.0.1 */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	ck_assert_int_ne(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	close(fd);
	srv_stop(&s);
}
END_TEST

static Suite *ws_suite(void)
{
	Suite *su = suite_create("ws");
	TCase *tc = tcase_create("plain");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, t_echo);
	tcase_add_test(tc, t_split_and_packed);
	tcase_add_test(tc, t_fragmented);
	tcase_add_test(tc, t_text_closes);
	tcase_add_test(tc, t_subprotocols);
	tcase_add_test(tc, t_server_close_flush);
	tcase_add_test(tc, t_peer_close);
	tcase_add_test(tc, t_close_before_upgrade);
	tcase_add_test(tc, t_big);
	tcase_add_test(tc, t_pause);
	tcase_add_test(tc, t_http_dir);
	tcase_add_test(tc, t_ipv6_bind);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(ws_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
