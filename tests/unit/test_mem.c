/*
 * tests/unit/test_mem.c — memory_limit accounting (broker/mem.c) alone, and in
 * the broker with a fake net: what is counted returns to zero when the load
 * is gone, new load (a message, a session) is refused at the limit, what was
 * accepted (deliveries) never is, and QoS 0 to a backlogged reader is shed.
 * mqtt-spec: both
 */
#include <check.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "fake_net.c"

/* ---- mem.c alone ------------------------------------------------------------- */

START_TEST(counts_usable_sizes_and_returns_to_zero)
{
	struct mem m;
	mem_init(&m, 0);
	void *a = mem_alloc(&m, 100), *z = mem_zalloc(&m, 3000);
	ck_assert(a && z);
	ck_assert_uint_eq(m.current, malloc_usable_size(a) + malloc_usable_size(z));
	ck_assert_uint_ge(m.current, 3100);
	ck_assert_uint_eq(((unsigned char *)z)[2999], 0);
	uint64_t peak = m.current;
	mem_free(&m, a);
	mem_free(&m, z);
	mem_free(&m, NULL);
	ck_assert_uint_eq(m.current, 0);
	ck_assert_uint_eq(m.maximum, peak);
	mem_note(&m, 500); /* net's buffers */
	mem_note(&m, -200);
	ck_assert_uint_eq(m.current, 300);
	void *p = mem_alloc(NULL, 10); /* NULL: not accounted */
	ck_assert_ptr_nonnull(p);
	mem_free(NULL, p);
}
END_TEST

/* mosquitto's check: refused when current + n > limit; == limit still fits. */
START_TEST(limit_refuses_new_load_only)
{
	struct mem m;
	mem_init(&m, 1000);
	ck_assert(mem_fits(&m, 1000) && !mem_fits(&m, 1001));
	mem_note(&m, 600);
	ck_assert(mem_fits(&m, 400) && !mem_fits(&m, 401));
	ck_assert_ptr_null(mem_alloc(&m, 401));
	ck_assert_ptr_null(mem_zalloc(&m, 5000));
	ck_assert_uint_eq(m.refused, 2);
	ck_assert_uint_eq(m.current, 600);
	void *a = mem_zalloc_always(&m, 2000); /* what serves accepted load is never refused */
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_ge(m.current, 2600);
	ck_assert(!mem_fits(&m, 1));
	mem_free(&m, a);
	ck_assert_uint_eq(m.current, 600);
	m.limit = 0; /* SIGHUP to "no limit" */
	ck_assert(mem_fits(&m, (size_t)1 << 40));
}
END_TEST

/* ---- in the broker (fake net, fake clock) ------------------------------------- */

#define MAX_CONNS 8

static struct net_loop *loop;
static struct broker b;
static struct config cfg;
static struct listener_conf lc;
static struct listener lis;
static struct net_conn *conns[MAX_CONNS];
static bool reaped[MAX_CONNS];
static int n_conns;

static void setup(void)
{
	config_init(&cfg);
	cfg.log_type = 0;
	cfg.log_dest = LOG_D_NONE;
	cfg.sys_interval = 0;
	cfg.security.allow_anonymous = 1;
	memset(&lc, 0, sizeof(lc));
	lc.port = 1883;
	lc.max_qos = 2;
	lc.max_connections = -1;
	loop = net_loop_new();
	loop->now = 1000;
	ck_assert_int_eq(broker_init(&b, &cfg, loop), 0);
	memset(&lis, 0, sizeof(lis));
	lis.b = &b;
	lis.conf = &lc;
	lis.sec = &cfg.security;
	n_conns = 0;
	memset(reaped, 0, sizeof(reaped));
}

static void reap(void)
{
	for (int i = 0; i < n_conns; i++) {
		if (conns[i]->close_requested && !reaped[i]) {
			reaped[i] = true;
			conns[i]->cbs->on_close(conns[i], NET_CLOSED_LOCAL, 0, conns[i]->cb_user);
		}
	}
}

static void teardown(void)
{
	for (int i = 0; i < n_conns; i++)
		if (!reaped[i])
			conns[i]->cbs->on_close(conns[i], NET_CLOSED_EOF, 0, conns[i]->cb_user);
	broker_fini(&b);
	ck_assert_uint_eq(b.mem.current, 0); /* every counted block was given back */
	for (int i = 0; i < n_conns; i++)
		fake_conn_free(conns[i]);
	net_loop_free(loop);
	config_free(&cfg);
}

static void feed(struct net_conn *c, const uint8_t *p, size_t n)
{
	if (c->in_len + n > c->in_cap) {
		c->in_cap = (c->in_len + n) * 2;
		c->in = realloc(c->in, c->in_cap);
	}
	memcpy(c->in + c->in_len, p, n);
	c->in_len += n;
	c->cbs->on_data(c, c->cb_user);
	reap();
}

static bool next_packet(struct net_conn *c, struct mqtt_frame *f)
{
	if (c->out_read >= c->out_len)
		return false;
	ck_assert_int_eq(mqtt_frame_parse(c->out + c->out_read, c->out_len - c->out_read, 0, f), MQTT_OK);
	c->out_read += f->total;
	return true;
}

/* CONNECT; returns the conn with the CONNACK's reason code in *rc (read past it). */
static struct net_conn *connect_rc(uint8_t version, const char *id, uint8_t *rc)
{
	ck_assert_int_lt(n_conns, MAX_CONNS);
	struct net_conn *c = fake_conn_new(n_conns);
	conns[n_conns++] = c;
	client_accept(NULL, c, &lis);
	uint8_t buf[128];
	struct mqtt_connect_out k = {.version = version, .clean_start = true, .keepalive = 60,
				     .client_id = mqtt_cstr(id)};
	feed(c, buf, mqtt_connect_encode(&k, buf, sizeof(buf)));
	struct mqtt_frame f;
	ck_assert(next_packet(c, &f));
	ck_assert_uint_eq(f.type, MQTT_CONNACK);
	*rc = f.body[1];
	return c;
}

static struct net_conn *connect_ok(uint8_t version, const char *id)
{
	uint8_t rc;
	struct net_conn *c = connect_rc(version, id, &rc);
	ck_assert_uint_eq(rc, 0);
	return c;
}

static void subscribe(struct net_conn *c, uint8_t version, const char *filter, uint8_t qos)
{
	uint8_t buf[128];
	struct mqtt_str fl = mqtt_cstr(filter);
	feed(c, buf, mqtt_subscribe_encode(1, (struct mqtt_str){0}, &fl, &qos, 1, version, buf, sizeof(buf)));
	struct mqtt_frame f;
	ck_assert(next_packet(c, &f));
	ck_assert_uint_eq(f.type, MQTT_SUBACK);
}

static void publish(struct net_conn *c, uint8_t version, const char *topic, size_t len, uint8_t qos, bool retain)
{
	static uint8_t payload[20000], buf[20100];
	memset(payload, 'p', sizeof(payload));
	ck_assert_uint_le(len, sizeof(payload));
	struct mqtt_publish_out p = {.qos = qos, .retain = retain, .packet_id = qos ? 7 : 0,
				     .topic = mqtt_cstr(topic), .payload = {payload, (uint32_t)len}};
	feed(c, buf, mqtt_publish_encode(&p, version, buf, sizeof(buf)));
}

static int count_type(struct net_conn *c, uint8_t type)
{
	struct mqtt_frame f;
	int n = 0;
	while (next_packet(c, &f))
		n += f.type == type;
	return n;
}

START_TEST(broker_load_is_counted_and_given_back)
{
	struct net_conn *s = connect_ok(MQTT_V5, "s");
	uint64_t idle = b.mem.current; /* a client and its session */
	ck_assert_uint_gt(idle, sizeof(struct client) + sizeof(struct session));
	subscribe(s, MQTT_V5, "t/#", 1);
	struct net_conn *p = connect_ok(MQTT_V311, "p");
	publish(p, MQTT_V311, "t/r", 10000, 1, true); /* retained and in flight to s */
	ck_assert_int_eq(count_type(p, MQTT_PUBACK), 1);
	ck_assert_int_eq(count_type(s, MQTT_PUBLISH), 1);
	ck_assert_uint_gt(b.mem.current, 2 * idle + 10000);
	ck_assert_uint_ge(b.mem.maximum, b.mem.current);
	publish(p, MQTT_V311, "t/r", 0, 1, true); /* clears the retained copy; s still holds one */
	ck_assert_uint_gt(b.mem.current, 2 * idle + 10000);
	uint8_t ack[8];
	feed(s, ack, mqtt_ack_encode(MQTT_PUBACK, 1, 0, (struct mqtt_str){0}, MQTT_V5, ack, sizeof(ack)));
	ck_assert_uint_lt(b.mem.current, 2 * idle + 1000); /* acknowledged: freed */
	/* teardown checks that everything returns to 0 */
}
END_TEST

/* At the limit a v5 publisher gets DISCONNECT 0x97 (Quota exceeded), no PUBACK, and the
 * message is not kept (v5 MQTT-4.13.2-1); a small message still fits. */
START_TEST(publish_over_limit_refused_v5_MQTT_4_13_2_1)
{
	struct net_conn *p = connect_ok(MQTT_V5, "p");
	struct net_conn *q = connect_ok(MQTT_V311, "q");
	b.mem.limit = b.mem.current + 5000;
	publish(p, MQTT_V5, "r", 6000, 1, true);
	struct mqtt_frame f;
	ck_assert(next_packet(p, &f));
	ck_assert_uint_eq(f.type, MQTT_DISCONNECT);
	ck_assert_uint_eq(f.body[0], 0x97);
	ck_assert(!next_packet(p, &f));
	ck_assert(p->close_requested);
	ck_assert_uint_eq(retain_count(b.retained), 0);
	ck_assert_uint_ge(b.mem.refused, 1);
	publish(q, MQTT_V311, "r", 100, 1, true);
	ck_assert_int_eq(count_type(q, MQTT_PUBACK), 1);
	ck_assert_uint_eq(retain_count(b.retained), 1);
}
END_TEST

/* A new session does not fit: CONNACK 0x97 (v5) / 0x03 Server unavailable (v3.1.1). */
START_TEST(connect_over_limit_refused)
{
	connect_ok(MQTT_V311, "first");
	b.mem.limit = b.mem.current + 64; /* the next client struct fits, its session does not */
	uint8_t rc;
	struct net_conn *c5 = connect_rc(MQTT_V5, "v5", &rc);
	ck_assert_uint_eq(rc, 0x97);
	ck_assert(c5->close_requested);
	struct net_conn *c3 = connect_rc(MQTT_V311, "v3", &rc);
	ck_assert_uint_eq(rc, 3);
	ck_assert(c3->close_requested);
	b.mem.limit = 0;
	connect_ok(MQTT_V5, "later");
}
END_TEST

/* Usable size of the message publish() makes for topic "f" and len payload bytes. */
static size_t msg_size(size_t len)
{
	void *probe = malloc(sizeof(struct message) + 2 + len);
	size_t n = malloc_usable_size(probe);
	free(probe);
	return n;
}

/* An accepted message reaches every subscriber even when its fan-out passes the
 * limit (nothing acknowledged is dropped: v5 MQTT-4.3.2-4); at the limit, QoS 0
 * to a reader that has not taken its output is shed, idle readers still get it. */
START_TEST(fanout_not_refused_qos0_shed_when_backlogged_v5_MQTT_4_3_2_4)
{
	struct net_conn *s[3];
	for (int i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof(id), "s%d", i);
		s[i] = connect_ok(MQTT_V311, id);
		subscribe(s[i], MQTT_V311, "f", 1);
	}
	struct net_conn *p = connect_ok(MQTT_V311, "p");
	b.mem.limit = b.mem.current + msg_size(2000); /* the message fits exactly; its deliveries do not */
	publish(p, MQTT_V311, "f", 2000, 1, false);
	ck_assert_int_eq(count_type(p, MQTT_PUBACK), 1);
	ck_assert_uint_gt(b.mem.current, b.mem.limit);
	uint8_t ack[8];
	size_t n = mqtt_ack_encode(MQTT_PUBACK, 1, 0, (struct mqtt_str){0}, MQTT_V311, ack, sizeof(ack));
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(count_type(s[i], MQTT_PUBLISH), 1);
		feed(s[i], ack, n);
	}
	static const uint8_t ping[2] = {0xC0, 0};
	feed(s[0], ping, 2); /* s0 leaves its PINGRESP unread: a backlogged reader */
	b.mem.limit = b.mem.current + msg_size(2000);
	publish(p, MQTT_V311, "f", 2000, 0, false);
	ck_assert_int_eq(count_type(s[0], MQTT_PUBLISH), 0);
	ck_assert_int_eq(count_type(s[1], MQTT_PUBLISH), 1);
	ck_assert_int_eq(count_type(s[2], MQTT_PUBLISH), 1);
	ck_assert_uint_ge(b.st.pub_dropped, 1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("mem");
	TCase *t = tcase_create("mem");
	tcase_add_test(t, counts_usable_sizes_and_returns_to_zero);
	tcase_add_test(t, limit_refuses_new_load_only);
	suite_add_tcase(s, t);
	t = tcase_create("broker");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, broker_load_is_counted_and_given_back);
	tcase_add_test(t, publish_over_limit_refused_v5_MQTT_4_13_2_1);
	tcase_add_test(t, connect_over_limit_refused);
	tcase_add_test(t, fanout_not_refused_qos0_shed_when_backlogged_v5_MQTT_4_3_2_4);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
