/*
 * tests/unit/test_broker.c — broker state machines with a fake net and a
 * fake clock: keepalive precision and lazy re-arm, pre-CONNECT timeout,
 * wills (delay, cancel, takeover), in-flight window, QoS 2 exactly-once,
 * redelivery with DUP, session expiry. No sockets, no sleeping: time is set
 * by the test and the wheel is run by hand.
 * mqtt-spec: both
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "fake_net.c"

#define MAX_CONNS 16

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
	lc.max_topic_alias = 10;
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

/* What net does after a dispatch pass: run on_close for closed conns. */
static void reap(void)
{
	for (int i = 0; i < n_conns; i++) {
		struct net_conn *c = conns[i];
		if (c->close_requested && !reaped[i]) {
			reaped[i] = true;
			c->cbs->on_close(c, NET_CLOSED_LOCAL, 0, c->cb_user);
		}
	}
}

static void teardown(void)
{
	for (int i = 0; i < n_conns; i++) {
		if (!reaped[i]) {
			reaped[i] = true;
			conns[i]->cbs->on_close(conns[i], NET_CLOSED_EOF, 0, conns[i]->cb_user);
		}
	}
	broker_fini(&b);
	for (int i = 0; i < n_conns; i++)
		fake_conn_free(conns[i]);
	net_loop_free(loop);
	config_free(&cfg);
}

static void set_time(uint64_t t)
{
	loop->now = t;
}

static void advance(uint64_t t)
{
	set_time(t);
	wheel_run(&b.wheel, t);
	reap();
}

static int idx_of(struct net_conn *c)
{
	for (int i = 0; i < n_conns; i++)
		if (conns[i] == c)
			return i;
	return -1;
}

static void feed(struct net_conn *c, const uint8_t *p, size_t n)
{
	ck_assert(!reaped[idx_of(c)]);
	if (c->in_len + n > c->in_cap) {
		c->in_cap = (c->in_len + n) * 2;
		c->in = realloc(c->in, c->in_cap);
	}
	memcpy(c->in + c->in_len, p, n);
	c->in_len += n;
	c->cbs->on_data(c, c->cb_user);
	reap();
}

/* The peer vanished: EOF / RST reported by net. */
static void drop(struct net_conn *c, enum net_close_reason why)
{
	int i = idx_of(c);
	ck_assert(!reaped[i]);
	reaped[i] = true;
	c->cbs->on_close(c, why, 0, c->cb_user);
}

static struct net_conn *accept_conn(void)
{
	ck_assert_int_lt(n_conns, MAX_CONNS);
	struct net_conn *c = fake_conn_new(n_conns);
	conns[n_conns++] = c;
	client_accept(NULL, c, &lis);
	return c;
}

struct conn_opts {
	uint8_t version;
	const char *id;
	uint16_t keepalive;
	bool clean;
	const char *will_topic;
	uint32_t will_delay;
	uint32_t session_expiry;
};

static struct net_conn *connect_client(const struct conn_opts *o)
{
	struct net_conn *c = accept_conn();
	uint8_t props[16], wprops[16], buf[256];
	struct mqtt_pw pw, ww;
	mqtt_pw_init(&pw, props, sizeof(props));
	mqtt_pw_init(&ww, wprops, sizeof(wprops));
	if (o->session_expiry)
		mqtt_pw_u32(&pw, MQTT_PROP_SESSION_EXPIRY, o->session_expiry);
	if (o->will_delay)
		mqtt_pw_u32(&ww, MQTT_PROP_WILL_DELAY, o->will_delay);
	struct mqtt_connect_out k = {
		.version = o->version ? o->version : MQTT_V311,
		.clean_start = o->clean,
		.keepalive = o->keepalive,
		.props = {props, (uint32_t)pw.len},
		.client_id = mqtt_cstr(o->id),
		.will = o->will_topic != NULL,
		.will_topic = o->will_topic ? mqtt_cstr(o->will_topic) : (struct mqtt_str){0},
		.will_payload = mqtt_cstr("gone"),
		.will_props = {wprops, (uint32_t)ww.len},
	};
	size_t n = mqtt_connect_encode(&k, buf, sizeof(buf));
	ck_assert_uint_le(n, sizeof(buf));
	feed(c, buf, n);
	/* CONNACK accepted */
	ck_assert_uint_ge(c->out_len, 4);
	ck_assert_uint_eq(c->out[0], 0x20);
	ck_assert_uint_eq(c->out[3], 0);
	c->out_read = 2 + c->out[1];
	return c;
}

/* Next packet written to the client, or false. */
static bool next_packet(struct net_conn *c, struct mqtt_frame *f)
{
	if (c->out_read >= c->out_len)
		return false;
	ck_assert_int_eq(mqtt_frame_parse(c->out + c->out_read, c->out_len - c->out_read, 0, f), MQTT_OK);
	c->out_read += f->total;
	return true;
}

static void subscribe(struct net_conn *c, uint8_t version, const char *filter, uint8_t qos)
{
	uint8_t buf[128];
	struct mqtt_str fl = mqtt_cstr(filter);
	size_t n = mqtt_subscribe_encode(1, (struct mqtt_str){0}, &fl, &qos, 1, version, buf, sizeof(buf));
	feed(c, buf, n);
	struct mqtt_frame f;
	ck_assert(next_packet(c, &f));
	ck_assert_uint_eq(f.type, MQTT_SUBACK);
}

static void publish(struct net_conn *c, uint8_t version, const char *topic, uint8_t qos, uint16_t pid, bool dup)
{
	uint8_t buf[128];
	struct mqtt_publish_out p = {.qos = qos, .dup = dup, .packet_id = pid, .topic = mqtt_cstr(topic),
				     .payload = mqtt_cstr("hello")};
	size_t n = mqtt_publish_encode(&p, version, buf, sizeof(buf));
	feed(c, buf, n);
}

static void send_ack(struct net_conn *c, uint8_t type, uint16_t pid)
{
	uint8_t buf[8];
	size_t n = mqtt_ack_encode(type, pid, 0, (struct mqtt_str){0}, MQTT_V311, buf, sizeof(buf));
	feed(c, buf, n);
}

static void pingreq(struct net_conn *c)
{
	static const uint8_t ping[2] = {0xC0, 0};
	feed(c, ping, 2);
}

static int count_type(struct net_conn *c, uint8_t type)
{
	struct mqtt_frame f;
	int n = 0;
	while (next_packet(c, &f))
		if (f.type == type)
			n++;
	return n;
}

/* ---- keepalive --------------------------------------------------------------- */

/* v311 MQTT-3.1.2-24: closed after 1.5 x K of silence, never before. */
START_TEST(keepalive_exact_v311_MQTT_3_1_2_24)
{
	struct net_conn *c = connect_client(&(struct conn_opts){.id = "k", .keepalive = 10, .clean = true});
	advance(1000 + 15000); /* the clock is truncated to ms: 1 ms margin */
	ck_assert(!c->close_requested);
	advance(1000 + 15001);
	ck_assert(c->close_requested);
	ck_assert_int_eq(c->close_how, NET_CLOSE_ABORT); /* peer presumed dead */
	ck_assert_uint_eq(b.st.keepalive_timeouts, 1);
}
END_TEST

/* v5 MQTT-3.1.2-22: any packet restarts the 1.5 x K window (lazy re-arm). */
START_TEST(keepalive_rearm_v5_MQTT_3_1_2_22)
{
	struct net_conn *c =
		connect_client(&(struct conn_opts){.version = MQTT_V5, .id = "k5", .keepalive = 10, .clean = true});
	set_time(10000);
	pingreq(c);
	advance(16000); /* first deadline: re-armed at 10000 + 15000 */
	ck_assert(!c->close_requested);
	advance(25000);
	ck_assert(!c->close_requested);
	advance(25001);
	ck_assert(c->close_requested);
	/* v5: DISCONNECT 0x8D (Keep Alive timeout) before the close. */
	struct mqtt_frame f;
	bool saw = false;
	while (next_packet(c, &f))
		if (f.type == MQTT_DISCONNECT && f.len >= 1 && f.body[0] == 0x8D)
			saw = true;
	ck_assert(saw);
}
END_TEST

/* Keepalive 0 disables the timer (v311 MQTT-3.1.2-24: 0 = off). */
START_TEST(keepalive_zero_never_expires_v311_MQTT_3_1_2_24)
{
	struct net_conn *c = connect_client(&(struct conn_opts){.id = "z", .keepalive = 0, .clean = true});
	advance(10000000);
	ck_assert(!c->close_requested);
}
END_TEST

START_TEST(preconnect_timeout)
{
	cfg.connect_timeout = 10;
	struct net_conn *c = accept_conn();
	advance(1000 + 9999);
	ck_assert(!c->close_requested);
	advance(1000 + 10000);
	ck_assert(c->close_requested);
	ck_assert_uint_eq(b.st.preconnect_timeouts, 1);
}
END_TEST

/* ---- wills ----------------------------------------------------------------------- */

START_TEST(will_on_keepalive_timeout_v311_MQTT_3_1_2_8)
{
	struct net_conn *sub = connect_client(&(struct conn_opts){.id = "sub", .keepalive = 0, .clean = true});
	subscribe(sub, MQTT_V311, "will/#", 1);
	connect_client(&(struct conn_opts){.id = "dev", .keepalive = 2, .clean = true, .will_topic = "will/dev"});
	advance(1000 + 3000);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 0);
	advance(1000 + 3001);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 1);
	ck_assert_uint_eq(b.st.wills_published, 1);
}
END_TEST

/* v311 MQTT-3.14.4-3: DISCONNECT discards the will. */
START_TEST(no_will_after_disconnect_v311_MQTT_3_14_4_3)
{
	struct net_conn *sub = connect_client(&(struct conn_opts){.id = "sub", .clean = true});
	subscribe(sub, MQTT_V311, "will/#", 0);
	struct net_conn *d = connect_client(&(struct conn_opts){.id = "dev", .clean = true, .will_topic = "will/dev"});
	static const uint8_t disc[2] = {0xE0, 0};
	feed(d, disc, 2);
	ck_assert(d->close_requested);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 0);
}
END_TEST

/* v311 MQTT-3.1.2-8: takeover of a persistent session publishes the old
 * connection's will. */
START_TEST(takeover_publishes_will_v311_MQTT_3_1_2_8)
{
	struct net_conn *sub = connect_client(&(struct conn_opts){.id = "sub", .clean = true});
	subscribe(sub, MQTT_V311, "will/#", 0);
	struct net_conn *a = connect_client(&(struct conn_opts){.id = "dev", .clean = false, .will_topic = "will/dev"});
	struct net_conn *a2 = connect_client(&(struct conn_opts){.id = "dev", .clean = false});
	ck_assert(a->close_requested);
	ck_assert(!a2->close_requested);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 1);
}
END_TEST

/* v5 MQTT-3.1.3-9: a reconnect within the will delay cancels the will. */
START_TEST(will_delay_cancelled_by_reconnect_v5_MQTT_3_1_3_9)
{
	struct net_conn *sub = connect_client(&(struct conn_opts){.id = "sub", .clean = true});
	subscribe(sub, MQTT_V311, "will/#", 0);
	struct net_conn *d = connect_client(&(struct conn_opts){.version = MQTT_V5, .id = "dev", .clean = false,
								 .will_topic = "will/dev", .will_delay = 5,
								 .session_expiry = 100});
	drop(d, NET_CLOSED_RESET);
	advance(4000);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 0);
	connect_client(&(struct conn_opts){.version = MQTT_V5, .id = "dev", .clean = false, .session_expiry = 100});
	advance(20000);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 0);
}
END_TEST

/* v5 3.1.2.5: the delayed will goes out when the delay passes... */
START_TEST(will_delay_fires_v5_MQTT_3_1_2_8)
{
	struct net_conn *sub = connect_client(&(struct conn_opts){.id = "sub", .clean = true});
	subscribe(sub, MQTT_V311, "will/#", 0);
	struct net_conn *d = connect_client(&(struct conn_opts){.version = MQTT_V5, .id = "dev", .clean = false,
								 .will_topic = "will/dev", .will_delay = 5,
								 .session_expiry = 100});
	drop(d, NET_CLOSED_EOF);
	advance(1000 + 4999);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 0);
	advance(1000 + 5000);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 1);
}
END_TEST

/* ...or when the session ends, whichever is first: never outlives it. */
START_TEST(will_not_after_session_end_v5_MQTT_3_1_2_8)
{
	struct net_conn *sub = connect_client(&(struct conn_opts){.id = "sub", .clean = true});
	subscribe(sub, MQTT_V311, "will/#", 0);
	struct net_conn *d = connect_client(&(struct conn_opts){.version = MQTT_V5, .id = "dev", .clean = false,
								 .will_topic = "will/dev", .will_delay = 60,
								 .session_expiry = 3});
	drop(d, NET_CLOSED_EOF);
	advance(1000 + 2999);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 0);
	advance(1000 + 3000);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 1);
	ck_assert_ptr_null(session_find(&b, "dev"));
	ck_assert_uint_eq(b.st.clients_expired, 1);
}
END_TEST

/* ---- QoS flows ------------------------------------------------------------------------ */

/* The in-flight window is never exceeded; an ack lets the next one out. */
START_TEST(inflight_window)
{
	cfg.max_inflight_messages = 2;
	struct net_conn *sub = connect_client(&(struct conn_opts){.id = "sub", .clean = true});
	subscribe(sub, MQTT_V311, "t", 1);
	struct net_conn *pub = connect_client(&(struct conn_opts){.id = "pub", .clean = true});
	for (int i = 1; i <= 5; i++)
		publish(pub, MQTT_V311, "t", 1, (uint16_t)i, false);
	ck_assert_int_eq(count_type(pub, MQTT_PUBACK), 5);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 2);
	send_ack(sub, MQTT_PUBACK, 1);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 1);
	send_ack(sub, MQTT_PUBACK, 2);
	send_ack(sub, MQTT_PUBACK, 3);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 2);
}
END_TEST

/* The in-flight index (deliver.c): with an unlimited window, one message left
 * unacknowledged while the packet ids wrap around twice and a few hundred
 * more open at any time, no id is handed out twice while its flow is open
 * (v311 MQTT-2.3.1-4) and every PUBACK finds its message. */
START_TEST(inflight_ids_unique_across_wrap_v311_MQTT_2_3_1_4)
{
	static uint8_t open_ids[65536];
	uint16_t ring[256];
	unsigned head = 0, n_ring = 0, got = 0;
	uint16_t held = 0;
	memset(open_ids, 0, sizeof(open_ids));
	cfg.max_inflight_messages = 0;
	struct net_conn *sub = connect_client(&(struct conn_opts){.id = "sub", .clean = true});
	subscribe(sub, MQTT_V311, "t", 1);
	struct net_conn *pub = connect_client(&(struct conn_opts){.id = "pub", .clean = true});
	for (unsigned i = 0; i < 140000; i++) {
		publish(pub, MQTT_V311, "t", 1, (uint16_t)(i % 65535 + 1), false);
		ck_assert_int_eq(count_type(pub, MQTT_PUBACK), 1);
		struct mqtt_frame f;
		while (next_packet(sub, &f)) {
			struct mqtt_publish p;
			ck_assert_uint_eq(f.type, MQTT_PUBLISH);
			ck_assert_int_eq(mqtt_publish_decode(&f, MQTT_V311, &p), 0);
			ck_assert_uint_ne(p.packet_id, 0);
			ck_assert_msg(!open_ids[p.packet_id], "id %u given twice", p.packet_id);
			open_ids[p.packet_id] = 1;
			got++;
			if (!held) {
				held = p.packet_id; /* never acknowledged until the end */
				continue;
			}
			if (n_ring == 256) { /* acknowledge the oldest open one */
				uint16_t old = ring[head];
				send_ack(sub, MQTT_PUBACK, old);
				open_ids[old] = 0;
				head = (head + 1) % 256;
				n_ring--;
			}
			ring[(head + n_ring++) % 256] = p.packet_id;
		}
	}
	ck_assert_uint_eq(got, 140000);
	send_ack(sub, MQTT_PUBACK, held);
	while (n_ring) {
		send_ack(sub, MQTT_PUBACK, ring[head]);
		head = (head + 1) % 256;
		n_ring--;
	}
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 0);
	struct session *s = session_find(&b, "sub");
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(s->inflight.count, 0);
}
END_TEST

/* max_inflight_bytes: payload bytes in flight are bounded too (but one
 * message always fits). Each test payload is 5 bytes ("hello"). */
START_TEST(inflight_bytes_window)
{
	cfg.max_inflight_bytes = 12;
	struct net_conn *sub = connect_client(&(struct conn_opts){.id = "sub", .clean = true});
	subscribe(sub, MQTT_V311, "t", 1);
	struct net_conn *pub = connect_client(&(struct conn_opts){.id = "pub", .clean = true});
	for (int i = 1; i <= 4; i++)
		publish(pub, MQTT_V311, "t", 1, (uint16_t)i, false);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 2); /* 10 of 12 bytes */
	send_ack(sub, MQTT_PUBACK, 1);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 1);
}
END_TEST

/* v311 MQTT-4.3.3-2 / v5 MQTT-4.3.3-3: a re-sent QoS 2 PUBLISH is not
 * delivered twice; the message is held until PUBREL (as mosquitto). */
START_TEST(qos2_exactly_once_v311_MQTT_4_3_3_2)
{
	struct net_conn *sub = connect_client(&(struct conn_opts){.id = "sub", .clean = true});
	subscribe(sub, MQTT_V311, "t", 2);
	struct net_conn *pub = connect_client(&(struct conn_opts){.id = "pub", .clean = true});
	publish(pub, MQTT_V311, "t", 2, 7, false);
	publish(pub, MQTT_V311, "t", 2, 7, true);
	ck_assert_int_eq(count_type(pub, MQTT_PUBREC), 2);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 0);
	send_ack(pub, MQTT_PUBREL, 7);
	ck_assert_int_eq(count_type(pub, MQTT_PUBCOMP), 1);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 1);
	send_ack(pub, MQTT_PUBREL, 7); /* finished: PUBCOMP again, nothing delivered */
	ck_assert_int_eq(count_type(pub, MQTT_PUBCOMP), 1);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 0);
	publish(pub, MQTT_V311, "t", 2, 7, false); /* id free again: a new message */
	send_ack(pub, MQTT_PUBREL, 7);
	ck_assert_int_eq(count_type(sub, MQTT_PUBLISH), 1);
}
END_TEST

/* v311 MQTT-4.4.0-1: unacknowledged messages are re-sent with DUP on
 * reconnect, and only then. */
START_TEST(redelivery_with_dup_on_reconnect_v311_MQTT_4_4_0_1)
{
	struct net_conn *sub = connect_client(&(struct conn_opts){.id = "sub", .clean = false});
	subscribe(sub, MQTT_V311, "t", 1);
	struct net_conn *pub = connect_client(&(struct conn_opts){.id = "pub", .clean = true});
	publish(pub, MQTT_V311, "t", 1, 1, false);
	struct mqtt_frame f;
	ck_assert(next_packet(sub, &f));
	ck_assert_uint_eq(f.type, MQTT_PUBLISH);
	ck_assert_uint_eq(f.flags & 0x08, 0);
	advance(200000); /* no resend on the same connection */
	ck_assert(!next_packet(sub, &f));
	drop(sub, NET_CLOSED_RESET);
	struct net_conn *sub2 = connect_client(&(struct conn_opts){.id = "sub", .clean = false});
	ck_assert_uint_eq(sub2->out[2] & 1, 1); /* session present, v311 MQTT-3.2.2-2 */
	ck_assert(next_packet(sub2, &f));
	ck_assert_uint_eq(f.type, MQTT_PUBLISH);
	ck_assert_uint_eq(f.flags & 0x08, 0x08); /* DUP */
}
END_TEST

/* Clean session discards the old session (v311 MQTT-3.1.2-6). */
START_TEST(clean_session_discards_v311_MQTT_3_1_2_6)
{
	struct net_conn *a = connect_client(&(struct conn_opts){.id = "c", .clean = false});
	subscribe(a, MQTT_V311, "t", 1);
	drop(a, NET_CLOSED_EOF);
	ck_assert_ptr_nonnull(session_find(&b, "c"));
	struct net_conn *a2 = connect_client(&(struct conn_opts){.id = "c", .clean = true});
	ck_assert_uint_eq(a2->out[2] & 1, 0); /* v311 MQTT-3.2.2-1: session present 0 */
	ck_assert_uint_eq(subtree_count(b.subs), 0);
}
END_TEST

/* mount_point: topics are prefixed on the way in and stripped on the way
 * out, so clients of one listener see their own namespace. */
START_TEST(mount_point_namespaces_topics)
{
	lc.mount_point = "site1/";
	struct net_conn *sub = connect_client(&(struct conn_opts){.id = "sub", .clean = true});
	subscribe(sub, MQTT_V311, "x/#", 0);
	struct net_conn *pub = connect_client(&(struct conn_opts){.id = "pub", .clean = true});
	uint8_t buf[64];
	struct mqtt_publish_out p = {.retain = true, .topic = mqtt_cstr("x/t"), .payload = mqtt_cstr("v")};
	feed(pub, buf, mqtt_publish_encode(&p, MQTT_V311, buf, sizeof(buf)));
	ck_assert_ptr_nonnull(retain_get(b.retained, mqtt_cstr("site1/x/t")));
	ck_assert_ptr_null(retain_get(b.retained, mqtt_cstr("x/t")));
	struct mqtt_frame f;
	ck_assert(next_packet(sub, &f));
	struct mqtt_publish d;
	ck_assert_int_eq(mqtt_publish_decode(&f, MQTT_V311, &d), 0);
	ck_assert_uint_eq(d.topic.len, 3);
	ck_assert_int_eq(memcmp(d.topic.p, "x/t", 3), 0);
	lc.mount_point = NULL;
}
END_TEST

/* upgrade_outgoing_qos (non-standard, as mosquitto): the subscription's
 * QoS wins; without it the effective QoS is the minimum (v311 MQTT-3.8.4-6). */
START_TEST(upgrade_outgoing_qos_v311_MQTT_3_8_4_6)
{
	struct net_conn *sub = connect_client(&(struct conn_opts){.id = "sub", .clean = true});
	subscribe(sub, MQTT_V311, "t", 2);
	struct net_conn *pub = connect_client(&(struct conn_opts){.id = "pub", .clean = true});
	struct mqtt_frame f;
	publish(pub, MQTT_V311, "t", 0, 0, false);
	ck_assert(next_packet(sub, &f));
	ck_assert_uint_eq((f.flags >> 1) & 3, 0);
	cfg.upgrade_outgoing_qos = true;
	publish(pub, MQTT_V311, "t", 0, 0, false);
	ck_assert(next_packet(sub, &f));
	ck_assert_uint_eq((f.flags >> 1) & 3, 2);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("broker");
	TCase *t = tcase_create("core");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, keepalive_exact_v311_MQTT_3_1_2_24);
	tcase_add_test(t, keepalive_rearm_v5_MQTT_3_1_2_22);
	tcase_add_test(t, keepalive_zero_never_expires_v311_MQTT_3_1_2_24);
	tcase_add_test(t, preconnect_timeout);
	tcase_add_test(t, will_on_keepalive_timeout_v311_MQTT_3_1_2_8);
	tcase_add_test(t, no_will_after_disconnect_v311_MQTT_3_14_4_3);
	tcase_add_test(t, takeover_publishes_will_v311_MQTT_3_1_2_8);
	tcase_add_test(t, will_delay_cancelled_by_reconnect_v5_MQTT_3_1_3_9);
	tcase_add_test(t, will_delay_fires_v5_MQTT_3_1_2_8);
	tcase_add_test(t, will_not_after_session_end_v5_MQTT_3_1_2_8);
	tcase_add_test(t, inflight_window);
	tcase_add_test(t, inflight_bytes_window);
	tcase_add_test(t, inflight_ids_unique_across_wrap_v311_MQTT_2_3_1_4);
	tcase_add_test(t, qos2_exactly_once_v311_MQTT_4_3_3_2);
	tcase_add_test(t, redelivery_with_dup_on_reconnect_v311_MQTT_4_4_0_1);
	tcase_add_test(t, clean_session_discards_v311_MQTT_3_1_2_6);
	tcase_add_test(t, mount_point_namespaces_topics);
	tcase_add_test(t, upgrade_outgoing_qos_v311_MQTT_3_8_4_6);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
