/*
 * tests/unit/test_store.c — the SQLite store (broker/store/) through the
 * core with a fake net: what is written, one commit per pass, restore after
 * a restart, clean sessions and QoS 0 writing nothing, a failing store
 * withholding acknowledgements and recovering, refused files. Real files in
 * a temporary directory; no sockets.
 * mqtt-spec: both
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "fake_net.c"
#include "store_int.h"
#include "restore.h"
#include "store_sqlite.h"

#define MAX_CONNS 16

static struct net_loop *loop;
static struct broker b;
static struct config cfg;
static struct listener_conf lc;
static struct listener lis;
static struct net_conn *conns[MAX_CONNS];
static bool reaped[MAX_CONNS];
static int n_conns;
static struct store_db *st;
static char dir[64];
static char path[128];

static void broker_up(void)
{
	loop = net_loop_new();
	loop->now = 1000;
	ck_assert_int_eq(broker_init(&b, &cfg, loop), 0);
	memset(&lis, 0, sizeof(lis));
	lis.b = &b;
	lis.conf = &lc;
	lis.sec = &cfg.security;
	char err[512] = "";
	ck_assert_msg(store_db_start(&b, &st, err, sizeof(err)) == 0, "%s", err);
	ck_assert_ptr_nonnull(st);
}

static void broker_down(void)
{
	for (int i = 0; i < n_conns; i++) {
		if (!reaped[i]) {
			reaped[i] = true;
			conns[i]->cbs->on_close(conns[i], NET_CLOSED_EOF, 0, conns[i]->cb_user);
		}
	}
	store_db_stop(&b, st); /* as main.c: before broker_fini */
	st = NULL;
	broker_fini(&b);
	for (int i = 0; i < n_conns; i++)
		fake_conn_free(conns[i]);
	n_conns = 0;
	memset(reaped, 0, sizeof(reaped));
	net_loop_free(loop);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/vigil-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vigil.db", dir);
	config_init(&cfg);
	cfg.log_type = 0;
	cfg.log_dest = LOG_D_NONE;
	cfg.sys_interval = 0;
	cfg.security.allow_anonymous = 1;
	cfg.persistence = true;
	cfg.persistence_location = strdup(dir);
	memset(&lc, 0, sizeof(lc));
	lc.port = 1883;
	lc.max_qos = 2;
	lc.max_connections = -1;
	n_conns = 0;
	memset(reaped, 0, sizeof(reaped));
	broker_up();
}

static void teardown(void)
{
	if (loop)
		broker_down();
	loop = NULL;
	config_free(&cfg);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void restart(void)
{
	broker_down();
	broker_up();
}

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

static struct net_conn *connect_client(uint8_t version, const char *id, bool clean, uint32_t expiry, bool present)
{
	ck_assert_int_lt(n_conns, MAX_CONNS);
	struct net_conn *c = fake_conn_new(n_conns);
	conns[n_conns++] = c;
	client_accept(NULL, c, &lis);
	uint8_t props[16], buf[256];
	struct mqtt_pw pw;
	mqtt_pw_init(&pw, props, sizeof(props));
	if (expiry)
		mqtt_pw_u32(&pw, MQTT_PROP_SESSION_EXPIRY, expiry);
	struct mqtt_connect_out k = {
		.version = version,
		.clean_start = clean,
		.keepalive = 60,
		.props = {props, (uint32_t)pw.len},
		.client_id = mqtt_cstr(id),
	};
	size_t n = mqtt_connect_encode(&k, buf, sizeof(buf));
	feed(c, buf, n);
	ck_assert_uint_ge(c->out_len, 4);
	ck_assert_uint_eq(c->out[0], 0x20);
	ck_assert_uint_eq(c->out[2], present ? 1 : 0);
	ck_assert_uint_eq(c->out[3], 0);
	c->out_read = 2 + c->out[1];
	return c;
}

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
	store_commit(&b);
	struct mqtt_frame f;
	ck_assert(next_packet(c, &f));
	ck_assert_uint_eq(f.type, MQTT_SUBACK);
}

static void publish(struct net_conn *c, uint8_t version, const char *topic, uint8_t qos, uint16_t pid, bool retain,
		    const char *payload)
{
	struct mqtt_publish_out p = {.qos = qos, .packet_id = pid, .retain = retain, .topic = mqtt_cstr(topic),
				     .payload = mqtt_cstr(payload)};
	size_t n = mqtt_publish_encode(&p, version, NULL, 0); /* snprintf semantics: the size it needs */
	uint8_t *buf = malloc(n);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(mqtt_publish_encode(&p, version, buf, n), n);
	feed(c, buf, n);
	free(buf);
}

static long long count(const char *table)
{
	char q[96];
	snprintf(q, sizeof(q), "SELECT count(*) FROM %s", table);
	sqlite3_stmt *s;
	ck_assert_int_eq(sqlite3_prepare_v2(st->db, q, -1, &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	long long n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

/* Commit once the held-back QoS 1 deliveries are due (write.c): they are
 * written now, as every other change of the pass. */
static void commit_due(void)
{
	loop->now += STORE_CARRY_MS;
	store_commit(&b);
}

static void puback(struct net_conn *c, uint8_t version, uint16_t pid)
{
	uint8_t ack[8];
	size_t n = mqtt_ack_encode(MQTT_PUBACK, pid, 0, (struct mqtt_str){0}, version, ack, sizeof(ack));
	feed(c, ack, n);
}

static uint16_t next_publish_pid(struct net_conn *c, uint8_t version)
{
	struct mqtt_frame f;
	ck_assert(next_packet(c, &f));
	ck_assert_uint_eq(f.type, MQTT_PUBLISH);
	struct mqtt_publish p;
	ck_assert_int_eq(mqtt_publish_decode(&f, version, &p), 0);
	return p.packet_id;
}

static void expect_puback(struct net_conn *c, uint16_t pid)
{
	struct mqtt_frame f;
	ck_assert(next_packet(c, &f));
	ck_assert_uint_eq(f.type, MQTT_PUBACK);
	ck_assert_uint_eq((uint16_t)(f.body[0] << 8 | f.body[1]), pid);
}

static void disconnect(struct net_conn *c)
{
	static const uint8_t d[2] = {0xE0, 0};
	feed(c, d, 2);
	store_commit(&b);
}

/* ---- tests --------------------------------------------------------------------- */

START_TEST(fresh_file_has_schema_and_format)
{
	ck_assert_int_eq(access(path, F_OK), 0);
	long long v = -1;
	sqlite3_stmt *s;
	ck_assert_int_eq(sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	ck_assert_int_eq(v, STORE_FORMAT);
	ck_assert_int_eq(count("sessions"), 0);
	ck_assert(b.store == &store_db_ops);
}
END_TEST

/* issue 8: one loop pass is one transaction; its ack waits for it. */
START_TEST(one_commit_per_pass)
{
	struct net_conn *s = connect_client(MQTT_V311, "sub", false, 0, false);
	subscribe(s, MQTT_V311, "t/#", 1);
	disconnect(s);
	struct net_conn *p = connect_client(MQTT_V311, "pub", true, 0, false);
	uint64_t before = st->commits;
	for (uint16_t i = 1; i <= 10; i++)
		publish(p, MQTT_V311, "t/x", 1, i, false, "m");
	ck_assert(b.store->pending(b.store_user));
	ck_assert(((struct client *)p->user)->store_marked); /* its PUBACKs wait for the commit */
	store_commit(&b);
	ck_assert_uint_eq(st->commits, before + 1);
	ck_assert(((struct client *)p->user)->store_marked == false);
	ck_assert_int_eq(count("deliveries"), 10);
	ck_assert_int_eq(count("msgs"), 10);
}
END_TEST

/* issue 8: QoS 0 traffic and clean sessions write nothing. */
START_TEST(clean_and_qos0_write_nothing)
{
	struct net_conn *s = connect_client(MQTT_V311, "clean", true, 0, false);
	subscribe(s, MQTT_V311, "c/#", 2);
	struct net_conn *p = connect_client(MQTT_V5, "p5", true, 0, false);
	publish(p, MQTT_V5, "c/a", 1, 1, false, "x");
	publish(p, MQTT_V5, "c/a", 2, 2, false, "y");
	publish(p, MQTT_V5, "c/a", 0, 0, false, "z");
	ck_assert(!b.store->pending(b.store_user));
	disconnect(s);
	ck_assert(!b.store->pending(b.store_user));
	ck_assert_int_eq(count("sessions") + count("subs") + count("deliveries") + count("qos2_in"), 0);
}
END_TEST

/* v311 MQTT-3.1.2-4/-5, MQTT-3.3.1-5: sessions, subscriptions, queued and
 * in-flight messages and retained messages come back after a restart;
 * in-flight ones are resent with DUP (MQTT-4.4.0-1). */
START_TEST(restart_restores_everything_v311_MQTT_4_4_0_1)
{
	struct net_conn *s = connect_client(MQTT_V311, "s", false, 0, false);
	subscribe(s, MQTT_V311, "q/#", 2);
	struct net_conn *p = connect_client(MQTT_V311, "p", false, 0, false);
	publish(p, MQTT_V311, "q/1", 1, 1, false, "inflight");
	publish(p, MQTT_V311, "r/1", 0, 0, true, "retained");
	publish(p, MQTT_V311, "q/2", 2, 2, false, "in2"); /* PUBREC, no PUBREL: id kept */
	store_commit(&b);
	ck_assert_int_eq(count("qos2_in"), 1);
	ck_assert_int_eq(count("retained"), 1);
	struct mqtt_frame f;
	int pubs = 0;
	while (next_packet(s, &f))
		pubs += f.type == MQTT_PUBLISH;
	ck_assert_int_eq(pubs, 2); /* both in flight, neither acked */
	restart();
	ck_assert_uint_eq(b.n_sessions, 2);
	ck_assert_uint_eq(retain_count(b.retained), 1);
	struct session *ss = session_find(&b, "s");
	ck_assert_ptr_nonnull(ss);
	ck_assert_uint_eq(ss->n_subs, 1);
	ck_assert_uint_eq(ss->inflight.count, 2);
	ck_assert(session_qos2_find(session_find(&b, "p"), 2) != NULL);
	s = connect_client(MQTT_V311, "s", false, 0, true);
	int dups = 0;
	while (next_packet(s, &f))
		if (f.type == MQTT_PUBLISH && (f.flags & 0x08))
			dups++;
	ck_assert_int_eq(dups, 2);
	/* The re-sent QoS 2 PUBLISH is acknowledged, not delivered again. */
	p = connect_client(MQTT_V311, "p", false, 0, true);
	publish(p, MQTT_V311, "q/2", 2, 2, false, "in2");
	ck_assert_uint_eq(ss->inflight.count + ss->queue.count, 2);
}
END_TEST

/* issue 8: acknowledged deliveries are deleted with their message body. */
START_TEST(ack_deletes_rows)
{
	struct net_conn *s = connect_client(MQTT_V5, "a", false, 3600, false);
	subscribe(s, MQTT_V5, "a/#", 1);
	struct net_conn *p = connect_client(MQTT_V311, "ap", true, 0, false);
	publish(p, MQTT_V311, "a/1", 1, 1, false, "x");
	commit_due();
	ck_assert_int_eq(count("deliveries"), 1);
	struct mqtt_frame f;
	ck_assert(next_packet(s, &f));
	uint16_t pid = (uint16_t)(f.body[2 + 3] << 8 | f.body[2 + 4]);
	uint8_t ack[8];
	size_t n = mqtt_ack_encode(MQTT_PUBACK, pid, 0, (struct mqtt_str){0}, MQTT_V5, ack, sizeof(ack));
	feed(s, ack, n);
	store_commit(&b);
	ck_assert_int_eq(count("deliveries"), 0);
	ck_assert_int_eq(count("msgs"), 0);
	/* Clean start ends the session: its rows go. */
	disconnect(s);
	ck_assert_int_eq(count("sessions"), 1);
	connect_client(MQTT_V5, "a", true, 0, false);
	store_commit(&b);
	ck_assert_int_eq(count("sessions") + count("subs"), 0);
}
END_TEST

/* Deletes are deferred within the pass as ranges (write.c): acks in order,
 * out of order and with a gap leave exactly the unacknowledged row, which is
 * what comes back after a restart (v311 MQTT-4.4.0-1: resent with DUP). */
START_TEST(acks_out_of_order_delete_exactly_v311_MQTT_4_4_0_1)
{
	struct net_conn *s = connect_client(MQTT_V311, "r", false, 0, false);
	subscribe(s, MQTT_V311, "r/#", 1);
	struct net_conn *p = connect_client(MQTT_V311, "rp", true, 0, false);
	for (uint16_t i = 1; i <= 10; i++)
		publish(p, MQTT_V311, "r/1", 1, i, false, "x");
	commit_due();
	ck_assert_int_eq(count("deliveries"), 10);
	ck_assert_int_eq(count("msgs"), 10);
	uint16_t pids[10];
	struct mqtt_frame f;
	for (int i = 0; i < 10; i++) {
		ck_assert(next_packet(s, &f));
		ck_assert_uint_eq(f.type, MQTT_PUBLISH);
		pids[i] = (uint16_t)(f.body[5] << 8 | f.body[6]);
	}
	static const int order[] = {0, 1, 2, 4, 3, 9, 8, 6, 7}; /* all but the 6th */
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		uint8_t ack[8];
		size_t n = mqtt_ack_encode(MQTT_PUBACK, pids[order[i]], 0, (struct mqtt_str){0}, MQTT_V311, ack,
					   sizeof(ack));
		feed(s, ack, n);
	}
	store_commit(&b);
	ck_assert_int_eq(count("deliveries"), 1);
	ck_assert_int_eq(count("msgs"), 1);
	restart();
	ck_assert_int_eq(count("deliveries"), 1);
	s = connect_client(MQTT_V311, "r", false, 0, true);
	ck_assert(next_packet(s, &f));
	ck_assert_uint_eq(f.type, MQTT_PUBLISH);
	ck_assert(f.flags & 0x08); /* DUP */
	ck_assert_uint_eq((uint16_t)(f.body[5] << 8 | f.body[6]), pids[5]);
	ck_assert(!next_packet(s, &f));
}
END_TEST

/* issue 8: a store that cannot write withholds the acks of that pass (the
 * client's output is dropped, it is closed), refuses QoS 1 with v5 0x97,
 * and recovers with a snapshot once it can write. */
START_TEST(unwritable_store_withholds_acks_and_recovers)
{
	struct net_conn *s = connect_client(MQTT_V311, "w", false, 0, false);
	subscribe(s, MQTT_V311, "w/#", 1);
	disconnect(s);
	struct net_conn *p = connect_client(MQTT_V5, "wp", true, 0, false);
	long long pages = 0;
	sqlite3_stmt *q;
	sqlite3_prepare_v2(st->db, "PRAGMA page_count", -1, &q, NULL);
	sqlite3_step(q);
	pages = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	char pragma[64];
	snprintf(pragma, sizeof(pragma), "PRAGMA max_page_count=%lld", pages);
	ck_assert_int_eq(store_db_exec(st, pragma), 0);
	char big[200];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	for (uint16_t i = 1; i <= 40; i++)
		publish(p, MQTT_V5, "w/1", 1, i, false, big);
	size_t queued = p->out_len;
	ck_assert_uint_gt(queued, 0);
	store_commit(&b); /* fails: the file may not grow */
	ck_assert(!store_writable(&b));
	ck_assert(p->close_requested);
	/* Only the DISCONNECT 0x97 is left of its output: no PUBACK leaves. */
	struct mqtt_frame f;
	p->out_read = 0;
	ck_assert(next_packet(p, &f));
	ck_assert_uint_eq(f.type, MQTT_DISCONNECT);
	ck_assert_uint_eq(f.body[0], 0x97);
	ck_assert(!next_packet(p, &f));
	reap();
	/* While unwritable, a QoS 1 PUBLISH is refused: PUBACK 0x97. */
	struct net_conn *p2 = connect_client(MQTT_V5, "wp2", true, 0, false);
	publish(p2, MQTT_V5, "w/1", 1, 1, false, "y");
	ck_assert(next_packet(p2, &f));
	ck_assert_uint_eq(f.type, MQTT_PUBACK);
	ck_assert_uint_eq(f.body[2], 0x97);
	/* Space again: the retry timer's snapshot makes it writable. */
	ck_assert_int_eq(store_db_exec(st, "PRAGMA max_page_count=1000000"), 0);
	loop->now += STORE_RETRY_MS;
	wheel_run(&b.wheel, loop->now);
	ck_assert(store_writable(&b));
	publish(p2, MQTT_V5, "w/1", 1, 2, false, "z");
	store_commit(&b);
	ck_assert(next_packet(p2, &f));
	ck_assert_uint_eq(f.type, MQTT_PUBACK);
	ck_assert_uint_eq(f.len, 2); /* success */
	/* The snapshot holds everything in memory: the 40 queued + 1. */
	ck_assert_int_eq(count("deliveries"), (long long)session_find(&b, "w")->queue.count);
	restart();
	ck_assert_uint_eq(session_find(&b, "w")->queue.count, count("deliveries"));
}
END_TEST

static void set_max_pages(long long extra)
{
	char pragma[96];
	snprintf(pragma, sizeof(pragma), "PRAGMA max_page_count=1000000");
	if (extra >= 0) {
		sqlite3_stmt *q;
		sqlite3_prepare_v2(st->db, "PRAGMA page_count", -1, &q, NULL);
		sqlite3_step(q);
		snprintf(pragma, sizeof(pragma), "PRAGMA max_page_count=%lld", sqlite3_column_int64(q, 0) + extra);
		sqlite3_finalize(q);
	}
	ck_assert_int_eq(store_db_exec(st, pragma), 0);
}

/* A retained message queued before an unwritable period and acked during
 * it is written again when it is queued after the recovery snapshot (its
 * old row id is gone): the store still loads. */
START_TEST(retained_message_ids_reset_by_snapshot)
{
	struct net_conn *s = connect_client(MQTT_V311, "rs", false, 0, false);
	subscribe(s, MQTT_V311, "r/#", 1);
	disconnect(s);
	struct net_conn *p = connect_client(MQTT_V311, "rp", true, 0, false);
	publish(p, MQTT_V311, "r/1", 1, 1, true, "retained");
	store_commit(&b);
	ck_assert_int_eq(count("deliveries"), 1);
	set_max_pages(0);
	char big[300];
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	for (uint16_t i = 2; i < 200 && store_writable(&b); i++) {
		char t[16];
		snprintf(t, sizeof(t), "x/%u", i);
		publish(p, MQTT_V311, t, 1, i, true, big);
		store_commit(&b);
	}
	ck_assert(!store_writable(&b));
	reap();
	/* rs acks the retained message while the store cannot write. */
	s = connect_client(MQTT_V311, "rs", false, 0, true);
	struct mqtt_frame f;
	ck_assert(next_packet(s, &f));
	ck_assert_uint_eq(f.type, MQTT_PUBLISH);
	uint16_t pid = (uint16_t)(f.body[2 + 3] << 8 | f.body[2 + 4]);
	uint8_t ack[4];
	size_t n = mqtt_ack_encode(MQTT_PUBACK, pid, 0, (struct mqtt_str){0}, MQTT_V311, ack, sizeof(ack));
	feed(s, ack, n);
	store_commit(&b);
	set_max_pages(-1);
	loop->now += STORE_RETRY_MS;
	wheel_run(&b.wheel, loop->now);
	ck_assert(store_writable(&b));
	/* Queued again (a new subscription hands out the retained message). */
	disconnect(s);
	reap();
	s = connect_client(MQTT_V311, "rs2", false, 0, false);
	subscribe(s, MQTT_V311, "r/#", 1);
	disconnect(s);
	restart(); /* must load */
	struct session *r2 = session_find(&b, "rs2");
	ck_assert_uint_eq(r2->queue.count + r2->inflight.count, 1);
}
END_TEST

static void expect_refused(const char *want)
{
	broker_down();
	loop = net_loop_new();
	loop->now = 1000;
	ck_assert_int_eq(broker_init(&b, &cfg, loop), 0);
	char err[512] = "";
	struct store_db *x = NULL;
	ck_assert_int_eq(store_db_start(&b, &x, err, sizeof(err)), -1);
	ck_assert_ptr_null(x);
	ck_assert_msg(strstr(err, path) && strstr(err, want), "%s", err);
	broker_fini(&b);
	net_loop_free(loop);
	loop = NULL;
	ck_assert_int_eq(access(path, F_OK), 0); /* kept */
}

/* issue 8: garbage and foreign files are refused, named, kept. */
START_TEST(garbage_file_refused)
{
	broker_down();
	loop = NULL;
	FILE *fp = fopen(path, "wb");
	for (int i = 0; i < 5000; i++)
		fputc((i * 7919) & 0xff, fp);
	fclose(fp);
	loop = net_loop_new();
	broker_init(&b, &cfg, loop);
	st = NULL;
	{
		char err[512] = "";
		struct store_db *x = NULL;
		ck_assert_int_eq(store_db_start(&b, &x, err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, path) != NULL, "%s", err);
	}
	broker_fini(&b);
	net_loop_free(loop);
	loop = NULL;
}
END_TEST

START_TEST(newer_format_refused)
{
	ck_assert_int_eq(store_db_exec(st, "PRAGMA user_version=7"), 0);
	expect_refused("newer");
}
END_TEST

START_TEST(no_persistence_writes_nothing)
{
	broker_down();
	unlink(path);
	char wal[160];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	unlink(wal);
	cfg.persistence = false;
	loop = net_loop_new();
	broker_init(&b, &cfg, loop);
	char err[64];
	ck_assert_int_eq(store_db_start(&b, &st, err, sizeof(err)), 0);
	ck_assert_ptr_null(st);
	ck_assert_ptr_null(b.store);
	struct net_conn *s = connect_client(MQTT_V311, "n", false, 0, false);
	subscribe(s, MQTT_V311, "n/#", 1);
	ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

static long long pragma(const char *q)
{
	sqlite3_stmt *s;
	ck_assert_int_eq(sqlite3_prepare_v2(st->db, q, -1, &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	long long v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* issue 8: synchronous=NORMAL by default (safe against a process crash),
 * FULL with persistence_fsync (power loss); WAL; one process owns the file. */
START_TEST(fsync_option_and_wal)
{
	ck_assert_int_eq(pragma("PRAGMA synchronous"), 1);
	sqlite3_stmt *q;
	ck_assert_int_eq(sqlite3_prepare_v2(st->db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	cfg.persistence_fsync = true;
	restart();
	ck_assert_int_eq(pragma("PRAGMA synchronous"), 2);
}
END_TEST

/* ---- restore.h, the interface importers use (no store installed) ---------------- */

static void restore_setup(void)
{
	config_init(&cfg);
	cfg.log_type = 0;
	cfg.log_dest = LOG_D_NONE;
	cfg.sys_interval = 0;
	loop = net_loop_new();
	loop->now = 50000;
	ck_assert_int_eq(broker_init(&b, &cfg, loop), 0);
	st = NULL;
	n_conns = 0;
}

static void restore_teardown(void)
{
	broker_fini(&b);
	net_loop_free(loop);
	loop = NULL;
	config_free(&cfg);
}

/* v5 MQTT-3.1.3-9 / 3.1.2.11.2 across downtime: a will whose delay ran out
 * is published to the restored subscribers, an expired session ends, a
 * live one keeps its remaining expiry, a session connected at the stop
 * counts its expiry from now and has no will. */
START_TEST(restore_interface_contract)
{
	uint64_t wall = store_wall_now();
	struct message *r = restore_message(&b, mqtt_cstr("r/a"), mqtt_cstr("ret"), (struct mqtt_str){0}, 1, true, 0,
					    "pub", NULL);
	ck_assert_int_eq(restore_retained(&b, r), 0);
	message_unref(&r);
	ck_assert_uint_eq(retain_count(b.retained), 1);

	struct session *sub = restore_session(&b, &(struct restore_session){.id = "sub", .version = MQTT_V311,
									    .expiry = UINT32_MAX, .listener = -1});
	ck_assert_ptr_nonnull(sub);
	ck_assert_int_eq(restore_sub(sub, "w/#", 1, 0), 0);
	ck_assert_int_eq(restore_sub(sub, "a/#/b", 1, 0), -1); /* invalid filter */
	ck_assert_ptr_null(restore_session(&b, &(struct restore_session){.id = "sub", .expiry = 5})); /* duplicate */

	struct message *m = restore_message(&b, mqtt_cstr("w/q"), mqtt_cstr("queued"), (struct mqtt_str){0}, 1, false,
					    0, NULL, NULL);
	ck_assert_int_eq(restore_delivery(sub, m, 1, false, OUT_PUBLISH, 5, NULL, 0, 0), 0);
	ck_assert_int_eq(restore_delivery(sub, m, 1, false, OUT_PUBLISH, 5, NULL, 0, 0), -1); /* pid in use */
	ck_assert_int_eq(restore_delivery(sub, m, 1, false, OUT_PUBLISH, 0, NULL, 0, 0), -1); /* no pid */
	ck_assert_int_eq(restore_delivery(sub, m, 2, false, OUT_QUEUED, 0, NULL, 0, 0), 0);
	message_unref(&m);
	ck_assert_int_eq(restore_qos2_in(sub, 9), 0);
	ck_assert(session_qos2_find(sub, 9) != NULL);
	ck_assert_uint_eq(sub->next_pid, 6);

	struct message *w = restore_message(&b, mqtt_cstr("w/dev"), mqtt_cstr("gone"), (struct mqtt_str){0}, 1, false,
					    0, "dev", NULL);
	struct session *dev = restore_session(&b, &(struct restore_session){
		.id = "dev", .version = MQTT_V5, .expiry = 60, .listener = -1, .expires_at = wall - 1000,
		.will_msg = w, .will_delay = 5, .will_at = wall - 2000});
	ck_assert_ptr_nonnull(dev);
	struct session *conn = restore_session(&b, &(struct restore_session){
		.id = "conn", .version = MQTT_V5, .expiry = 60, .listener = -1, .was_connected = true, .will_msg = w,
		.will_delay = 5, .will_at = wall - 2000});
	message_unref(&w);
	ck_assert_ptr_nonnull(conn);
	ck_assert_ptr_null(conn->will); /* the broker stopped; the client did not fail */
	struct session *live = restore_session(&b, &(struct restore_session){
		.id = "live", .version = MQTT_V5, .expiry = 60, .listener = -1, .expires_at = wall + 30000});
	ck_assert_ptr_nonnull(live);

	restore_finish(&b);
	ck_assert_ptr_null(session_find(&b, "dev"));      /* expired during the downtime */
	ck_assert_ptr_nonnull(session_find(&b, "live"));
	ck_assert(wheel_armed(&live->expiry_timer));
	ck_assert_uint_ge(live->expiry_timer.deadline, 50000 + 29000);
	ck_assert_uint_le(live->expiry_timer.deadline, 50000 + 30000);
	ck_assert_uint_eq(conn->expiry_timer.deadline, 50000 + 60000);
	ck_assert_uint_eq(sub->inflight.count, 1);
	ck_assert_uint_eq(sub->queue.count, 2);           /* the restored one and the will */
	ck_assert_str_eq((const char *)sub->queue.tail->msg->topic.p, "w/dev");
}
END_TEST

/* write.c buffers a pass's msgs/deliveries rows and INSERTs them up to 64
 * per statement: 150 messages in one pass to a short-id and a long-id
 * (one-row path) session give every row, and all come back after a restart
 * (v311 MQTT-4.4.0-1: resent with DUP). */
START_TEST(batched_rows_one_pass_restored_v311_MQTT_4_4_0_1)
{
	const char *lid = "a-session-id-longer-than-the-inline-buffer-of-write-c-0123456789";
	struct net_conn *s1 = connect_client(MQTT_V311, "bs", false, 0, false);
	subscribe(s1, MQTT_V311, "b/#", 1);
	struct net_conn *s2 = connect_client(MQTT_V5, lid, false, 3600, false);
	subscribe(s2, MQTT_V5, "b/#", 1);
	struct net_conn *p = connect_client(MQTT_V311, "bp", true, 0, false);
	uint64_t c0 = st->commits;
	for (int i = 0; i < 150; i++) {
		char t[16];
		snprintf(t, sizeof(t), "b/%d", i);
		publish(p, MQTT_V311, t, 1, (uint16_t)(i + 1), false, "payload");
	}
	commit_due();
	ck_assert_uint_eq(st->commits, c0 + 1);
	ck_assert_int_eq(count("msgs"), 150);
	ck_assert_int_eq(count("deliveries"), 300);
	restart();
	struct session *a = session_find(&b, "bs"), *l = session_find(&b, lid);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(l);
	ck_assert_uint_eq(a->inflight.count + a->queue.count, 150);
	ck_assert_uint_eq(l->inflight.count + l->queue.count, 150);
	s1 = connect_client(MQTT_V311, "bs", false, 0, true);
	struct mqtt_frame f;
	ck_assert(next_packet(s1, &f));
	ck_assert_uint_eq(f.type, MQTT_PUBLISH);
	ck_assert(f.flags & 0x08);
	ck_assert_uint_eq(f.body[1], 3); /* the first one routed: topic "b/0" */
	ck_assert_int_eq(memcmp(f.body + 2, "b/0", 3), 0);
}
END_TEST

/* issue 8 item 7: a QoS 1 delivery to a connected persistent subscriber is
 * held back (write.c); acknowledged before it is due, it is never written,
 * and the publisher's PUBACK, kept until then, follows the subscriber's
 * (v311 MQTT-4.3.2-2: the PUBACK still means the message is taken care of). */
START_TEST(held_back_delivery_acked_first_is_never_written)
{
	struct net_conn *s = connect_client(MQTT_V311, "hs", false, 0, false);
	subscribe(s, MQTT_V311, "h/#", 1);
	struct net_conn *p = connect_client(MQTT_V311, "hp", true, 0, false);
	uint64_t c0 = st->commits;
	publish(p, MQTT_V311, "h/1", 1, 7, false, "x");
	store_commit(&b);
	struct mqtt_frame f;
	ck_assert(!next_packet(p, &f)); /* the PUBACK waits */
	uint16_t pid = next_publish_pid(s, MQTT_V311); /* the PUBLISH did not */
	ck_assert_int_eq(count("deliveries") + count("msgs"), 0);
	ck_assert(b.store->due(b.store_user) <= loop->now + STORE_CARRY_MS);
	puback(s, MQTT_V311, pid);
	store_commit(&b);
	expect_puback(p, 7);
	ck_assert_uint_eq(st->commits, c0); /* nothing was ever written */
	ck_assert_uint_eq(st->carry_dropped, 1);
	ck_assert_uint_eq(st->carry_written, 0);
	ck_assert(!b.store->pending(b.store_user));
	ck_assert_uint_eq(b.store->due(b.store_user), UINT64_MAX);
	commit_due();
	ck_assert_int_eq(count("deliveries") + count("msgs"), 0);
}
END_TEST

/* Not acknowledged in time: written when due, and only then the PUBACK;
 * that subscriber's next deliveries are written at once for a while; after
 * a restart they are resent with DUP (v311 MQTT-4.4.0-1). */
START_TEST(held_back_delivery_written_when_due_v311_MQTT_4_4_0_1)
{
	struct net_conn *s = connect_client(MQTT_V311, "ws", false, 0, false);
	subscribe(s, MQTT_V311, "w/#", 1);
	struct net_conn *p = connect_client(MQTT_V311, "wp", true, 0, false);
	publish(p, MQTT_V311, "w/1", 1, 3, false, "x");
	store_commit(&b);
	struct mqtt_frame f;
	ck_assert(!next_packet(p, &f));
	uint16_t pid = next_publish_pid(s, MQTT_V311);
	loop->now += STORE_CARRY_MS - 1;
	store_commit(&b);
	ck_assert(!next_packet(p, &f)); /* not due yet */
	ck_assert_int_eq(count("deliveries"), 0);
	commit_due();
	ck_assert_int_eq(count("deliveries"), 1);
	ck_assert_int_eq(count("msgs"), 1);
	expect_puback(p, 3);
	ck_assert_uint_eq(st->carry_written, 1);
	/* It missed: for STORE_CARRY_BACKOFF_MS its deliveries are written with
	 * their pass, and the PUBACK leaves after that commit, as without holding. */
	publish(p, MQTT_V311, "w/1", 1, 4, false, "y");
	store_commit(&b);
	ck_assert_int_eq(count("deliveries"), 2);
	expect_puback(p, 4);
	loop->now += STORE_CARRY_BACKOFF_MS;
	publish(p, MQTT_V311, "w/1", 1, 5, false, "z"); /* held back again */
	store_commit(&b);
	ck_assert_int_eq(count("deliveries"), 2);
	ck_assert(!next_packet(p, &f));
	commit_due();
	expect_puback(p, 5);
	restart();
	s = connect_client(MQTT_V311, "ws", false, 0, true);
	ck_assert(next_packet(s, &f));
	ck_assert_uint_eq(f.type, MQTT_PUBLISH);
	ck_assert(f.flags & 0x08); /* DUP */
	ck_assert_uint_eq((uint16_t)(f.body[5] << 8 | f.body[6]), pid);
	ck_assert_int_eq(count("deliveries"), 3);
}
END_TEST

/* A publisher's PUBACKs leave in order: one that needs no wait (no
 * subscriber, or refused) queues behind one that waits; a message with a delivery that is not held back (an
 * offline session's queue) writes its msgs row with the pass. */
START_TEST(kept_pubacks_leave_in_order)
{
	struct net_conn *off = connect_client(MQTT_V311, "off", false, 0, false);
	subscribe(off, MQTT_V311, "o/#", 1);
	disconnect(off);
	struct net_conn *s = connect_client(MQTT_V311, "os", false, 0, false);
	subscribe(s, MQTT_V311, "o/1", 1);
	struct net_conn *p = connect_client(MQTT_V5, "op", true, 0, false);
	publish(p, MQTT_V5, "o/1", 1, 1, false, "a"); /* held back for os, queued for off */
	publish(p, MQTT_V5, "none", 1, 2, false, "b"); /* no subscriber: 0x10 */
	cfg.message_size_limit = 4;
	publish(p, MQTT_V5, "o/1", 1, 3, false, "too large"); /* refused: 0x95 */
	cfg.message_size_limit = 0;
	store_commit(&b);
	struct mqtt_frame f;
	ck_assert(!next_packet(p, &f));
	ck_assert_int_eq(count("msgs"), 1);       /* written for off's queue */
	ck_assert_int_eq(count("deliveries"), 1); /* off's; os's is held back */
	puback(s, MQTT_V311, next_publish_pid(s, MQTT_V311));
	store_commit(&b);
	expect_puback(p, 1);
	ck_assert(next_packet(p, &f));
	ck_assert_uint_eq(f.type, MQTT_PUBACK);
	ck_assert_uint_eq((uint16_t)(f.body[0] << 8 | f.body[1]), 2);
	ck_assert_uint_eq(f.body[2], 0x10);
	ck_assert(next_packet(p, &f));
	ck_assert_uint_eq(f.type, MQTT_PUBACK);
	ck_assert_uint_eq((uint16_t)(f.body[0] << 8 | f.body[1]), 3);
	ck_assert_uint_eq(f.body[2], 0x95);
	ck_assert_int_eq(count("msgs"), 1); /* still needed by off */
	ck_assert_int_eq(count("deliveries"), 1);
}
END_TEST

/* A graceful stop writes what is held back: the delivery comes back. */
START_TEST(held_back_written_at_stop)
{
	struct net_conn *s = connect_client(MQTT_V311, "ts", false, 0, false);
	subscribe(s, MQTT_V311, "t/#", 1);
	struct net_conn *p = connect_client(MQTT_V311, "tp", true, 0, false);
	publish(p, MQTT_V311, "t/1", 1, 1, false, "x");
	store_commit(&b);
	ck_assert_int_eq(count("deliveries"), 0);
	restart();
	ck_assert_int_eq(count("deliveries"), 1);
	struct session *ss = session_find(&b, "ts");
	ck_assert_ptr_nonnull(ss);
	ck_assert_uint_eq(ss->inflight.count, 1);
}
END_TEST

/* A publisher that goes while its PUBACK waits loses nothing it was told:
 * the message stays with the subscriber, and nothing leaks. */
START_TEST(publisher_gone_while_puback_kept)
{
	struct net_conn *s = connect_client(MQTT_V311, "gs", false, 0, false);
	subscribe(s, MQTT_V311, "g/#", 1);
	struct net_conn *p = connect_client(MQTT_V311, "gp", true, 0, false);
	publish(p, MQTT_V311, "g/1", 1, 1, false, "x");
	store_commit(&b);
	disconnect(p);
	ck_assert_uint_eq(b.n_ack_waiting, 0);
	puback(s, MQTT_V311, next_publish_pid(s, MQTT_V311));
	store_commit(&b);
	ck_assert_int_eq(count("deliveries") + count("msgs"), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("store");
	TCase *t = tcase_create("store");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 20);
	tcase_add_test(t, fresh_file_has_schema_and_format);
	tcase_add_test(t, one_commit_per_pass);
	tcase_add_test(t, clean_and_qos0_write_nothing);
	tcase_add_test(t, restart_restores_everything_v311_MQTT_4_4_0_1);
	tcase_add_test(t, ack_deletes_rows);
	tcase_add_test(t, acks_out_of_order_delete_exactly_v311_MQTT_4_4_0_1);
	tcase_add_test(t, batched_rows_one_pass_restored_v311_MQTT_4_4_0_1);
	tcase_add_test(t, held_back_delivery_acked_first_is_never_written);
	tcase_add_test(t, held_back_delivery_written_when_due_v311_MQTT_4_4_0_1);
	tcase_add_test(t, kept_pubacks_leave_in_order);
	tcase_add_test(t, held_back_written_at_stop);
	tcase_add_test(t, publisher_gone_while_puback_kept);
	tcase_add_test(t, unwritable_store_withholds_acks_and_recovers);
	tcase_add_test(t, garbage_file_refused);
	tcase_add_test(t, newer_format_refused);
	tcase_add_test(t, no_persistence_writes_nothing);
	tcase_add_test(t, fsync_option_and_wal);
	tcase_add_test(t, retained_message_ids_reset_by_snapshot);
	suite_add_tcase(s, t);
	TCase *r = tcase_create("restore");
	tcase_add_checked_fixture(r, restore_setup, restore_teardown);
	tcase_add_test(r, restore_interface_contract);
	suite_add_tcase(s, r);
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
