/*
 * tests/unit/test_mosqdb.c — the mosquitto.db reader (broker/store/mosqdb.c)
 * on files written by the real mosquitto 2.0.11.
 *
 * - golden: tests/fixtures/mosqdb/mosquitto-2.0.11.db, written by mosquitto
 *   2.0.11 for the state tests/unit/mosqdb_gen.py builds; every record is
 *   asserted (check_scenario).
 * - live: the same script run now against /usr/sbin/mosquitto (skipped, with
 *   a message, when mosquitto or python3 is missing), same assertions plus
 *   the wall-clock expiry times.
 * - every truncation and single-byte corruption of the golden file: a clear
 *   error with an offset or a consistent result, never a crash (run under
 *   ASan/UBSan by `make san`); no callback before the file is validated.
 * - hand-built images of the older formats 2-5 and odd chunks.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mosqdb.h"
#include "test_mosqdb_util.h"

#define GOLDEN "tests/fixtures/mosqdb/mosquitto-2.0.11.db"
#define GOLDEN_EMPTY "tests/fixtures/mosqdb/mosquitto-2.0.11-empty.db"
#define GEN "tests/unit/mosqdb_gen.py"

/* ---- the scenario of mosqdb_gen.py, as mosquitto 2.0.11 saves it ---------- */

static void check_scenario(struct coll *c, int64_t t0, int64_t t1)
{
	ck_assert_uint_eq(c->info.version, 6);
	ck_assert(c->info.shutdown);
	ck_assert_uint_eq(c->info.n_msgs, 12);
	ck_assert_uint_eq(c->info.n_retained, 4);
	ck_assert_uint_eq(c->info.n_clients, 5);
	ck_assert_uint_eq(c->info.n_subs, 8);
	ck_assert_uint_eq(c->info.n_client_msgs, 8);
	ck_assert_uint_eq(c->info.n_dangling + c->info.n_empty + c->info.n_unknown, 0);
	ck_assert_uint_eq(c->n_ret, 4);
	ck_assert_uint_eq(c->n_cl, 5);
	ck_assert_uint_eq(c->n_sub, 8);
	ck_assert_uint_eq(c->n_cm, 8);

	/* Retained: QoS 0/1/2 from a v3.1.1 publisher with a user name, and one
	 * from a v5 publisher whose properties are kept (Message Expiry moved
	 * out of the block into expiry_time). */
	const struct cmsg *r = find_ret(c, "r/plain");
	ck_assert(r && r->qos == 0 && r->retain && beq(r->payload, "hello", 5));
	ck_assert_str_eq(r->source_id, "pub311");
	ck_assert_str_eq(r->source_user, "alice");
	ck_assert_int_eq(r->expiry_time, 0);
	ck_assert_uint_eq(r->props.len, 0);
	uint16_t port = r->source_port;
	ck_assert_uint_ne(port, 0);
	r = find_ret(c, "r/qos1");
	ck_assert(r && r->qos == 1 && r->retain && beq(r->payload, "one", 3));
	r = find_ret(c, "r/bin");
	ck_assert(r && r->qos == 2 && beq(r->payload, "\x00\x01\xff", 3));
	r = find_ret(c, "r/v5props");
	ck_assert(r && r->qos == 1 && r->retain && beq(r->payload, "props", 5));
	ck_assert_str_eq(r->source_id, "pub5");
	ck_assert_str_eq(r->source_user, "");
	static const char v5props[] = "\x01\x01"
				      "\x03\x00\x0atext/plain"
				      "\x08\x00\x06resp/t"
				      "\x09\x00\x02\x01\x02"
				      "\x26\x00\x01k\x00\x01v";
	ck_assert(beq(r->props, v5props, sizeof v5props - 1));
	int64_t exp5 = r->expiry_time; /* published with Message Expiry 3600 */
	ck_assert_int_gt(exp5, 1600000000);
	if (t0)
		ck_assert(exp5 >= t0 + 3600 && exp5 <= t1 + 3600);

	/* Sessions: only Clean Start 0 ones (not sess5c, not the publishers). */
	ck_assert(!find_cl(c, "sess5c") && !find_cl(c, "pub311") && !find_cl(c, "pub5"));
	const struct ccl *s = find_cl(c, "sess311");
	ck_assert(s && s->session_expiry_interval == UINT32_MAX && s->session_expiry_time == 0);
	ck_assert_str_eq(s->username, "bob");
	ck_assert(!s->username_suspect);
	ck_assert_uint_eq(s->last_mid, 3);
	ck_assert_uint_eq(s->listener_port, port);
	ck_assert_int_eq(s->disconnect_time, 0); /* v6 keeps none */
	/* v5, Session Expiry 3600, disconnected: expiry time = disconnect + 3600;
	 * no user name, for which mosquitto wrote "bob" + NUL + heap bytes. */
	s = find_cl(c, "sess5");
	ck_assert(s && s->session_expiry_interval == 3600);
	ck_assert_int_ge(s->session_expiry_time, exp5 - 5);
	ck_assert_int_le(s->session_expiry_time, exp5);
	ck_assert_str_eq(s->username, "");
	ck_assert(s->username_suspect);
	/* no user name either; mosquitto wrote "bob" exactly this time */
	s = find_cl(c, "inflight311");
	ck_assert(s && s->session_expiry_interval == UINT32_MAX);
	ck_assert_str_eq(s->username, "");
	ck_assert(s->username_suspect);
	s = find_cl(c, "inq2");
	ck_assert(s && !s->username_suspect);
	ck_assert_str_eq(s->username, "carol");
	/* v5, Session Expiry 120, connected at shutdown: not counting yet */
	s = find_cl(c, "live5");
	ck_assert(s && s->session_expiry_interval == 120 && s->session_expiry_time == 0);
	ck_assert(s->username_suspect);

	/* Subscriptions: v3 QoS 0/1/2 and a wildcard; v5 options (No Local,
	 * Retain As Published; Retain Handling is not saved) and identifiers; the
	 * shared subscription is not saved by mosquitto 2.0.11. */
	static const struct {
		const char *cid, *filter;
		uint8_t qos, options;
		uint32_t id;
	} subs[] = {{"sess311", "q/0", 0, 0, 0},  {"sess311", "q/1", 1, 0, 0},      {"sess311", "q/2", 2, 0, 0},
		    {"sess311", "w/+/x", 1, 0, 0}, {"sess311", "i/#", 2, 0, 0},     {"sess5", "v5/a", 2, 0x0c, 42},
		    {"sess5", "v5/b", 1, 0, 7},
		    {"inflight311", "f/#", 2, 0, 0}};
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
		const struct csub *x = find_sub(c, subs[i].cid, subs[i].filter);
		ck_assert_msg(x, "subscription %s %s missing", subs[i].cid, subs[i].filter);
		ck_assert_uint_eq(x->qos, subs[i].qos);
		ck_assert_uint_eq(x->options, subs[i].options);
		ck_assert_uint_eq(x->identifier, subs[i].id);
	}

	/* Client messages, in the session's order. */
	static const struct {
		const char *cid, *topic, *payload;
		uint16_t mid;
		uint8_t qos, state, dir;
		bool dup;
	} cms[] = {
		{"sess311", "q/1", "m1", 1, 1, MOSQDB_MS_QUEUED, MOSQDB_DIR_OUT, false},
		{"sess311", "q/2", "m2", 2, 2, MOSQDB_MS_QUEUED, MOSQDB_DIR_OUT, false},
		{"sess311", "w/y/x", "mw", 3, 1, MOSQDB_MS_QUEUED, MOSQDB_DIR_OUT, false}, /* QoS 2 sent, sub QoS 1 */
		{"sess5", "v5/a", "to-sess5", 1, 2, MOSQDB_MS_QUEUED, MOSQDB_DIR_OUT, false},
		{"inflight311", "f/1", "f-qos1", 1, 1, MOSQDB_MS_WAIT_FOR_PUBACK, MOSQDB_DIR_OUT, true},
		{"inflight311", "f/2", "f-qos2", 2, 2, MOSQDB_MS_WAIT_FOR_PUBREC, MOSQDB_DIR_OUT, true},
		{"inflight311", "f/3", "f-pubrel", 3, 2, MOSQDB_MS_WAIT_FOR_PUBCOMP, MOSQDB_DIR_OUT, true},
		{"inq2", "i/q2", "in-qos2", 77, 2, MOSQDB_MS_WAIT_FOR_PUBREL, MOSQDB_DIR_IN, false},
	};
	for (size_t i = 0; i < sizeof cms / sizeof cms[0]; i++) {
		const struct ccm *x = &c->cm[i];
		ck_assert_str_eq(x->cid, cms[i].cid);
		ck_assert_str_eq(x->m.topic, cms[i].topic);
		ck_assert(beq(x->m.payload, cms[i].payload, strlen(cms[i].payload)));
		ck_assert_uint_eq(x->mid, cms[i].mid);
		ck_assert_uint_eq(x->qos, cms[i].qos);
		ck_assert_uint_eq(x->state, cms[i].state);
		ck_assert_uint_eq(x->direction, cms[i].dir);
		ck_assert(x->dup == cms[i].dup);
		ck_assert(!x->retain && !x->m.retain);
	}
	/* The v5 one carries its Subscription Identifier, and the publisher's
	 * user property stays on the stored message. */
	ck_assert(beq(c->cm[3].props, "\x0b\x2a", 2));
	ck_assert(beq(c->cm[3].m.props, "\x26\x00\x03src\x00\x02p5", 10));
	ck_assert_str_eq(c->cm[7].m.source_id, "inq2");
	ck_assert_str_eq(c->cm[7].m.source_user, "carol");
	ck_assert_uint_eq(c->cm[7].m.source_mid, 77);
	ck_assert_uint_eq(c->cm[0].m.qos, 1);
	ck_assert_uint_eq(c->cm[2].m.qos, 2);
}

START_TEST(golden_file)
{
	struct coll c;
	coll_init(&c);
	char err[600] = "";
	int rc = mosqdb_read(GOLDEN, &coll_visitor, &c, err, sizeof err);
	ck_assert_msg(rc == MOSQDB_OK, "%s", err);
	check_scenario(&c, 0, 0);
	coll_free(&c);
	ck_assert_int_eq(mosqdb_probe(GOLDEN), 1);
}
END_TEST

START_TEST(golden_empty)
{
	struct coll c;
	coll_init(&c);
	char err[600] = "";
	ck_assert_int_eq(mosqdb_read(GOLDEN_EMPTY, &coll_visitor, &c, err, sizeof err), MOSQDB_OK);
	ck_assert_uint_eq(c.info.version, 6);
	ck_assert(c.info.shutdown);
	ck_assert_uint_eq(c.info.n_msgs + c.info.n_clients + c.info.n_subs, 0);
	ck_assert_uint_eq(c.n_ret + c.n_cl + c.n_sub + c.n_cm, 0);
	coll_free(&c);
}
END_TEST

/* The real mosquitto 2.0.11, now. */
START_TEST(live_mosquitto)
{
	if (access("/usr/sbin/mosquitto", X_OK) != 0 || access("/usr/bin/python3", X_OK) != 0 ||
	    access(GEN, R_OK) != 0) {
		fprintf(stderr, "test_mosqdb: SKIP live_mosquitto (needs /usr/sbin/mosquitto, python3, %s)\n", GEN);
		return;
	}
	char dir[] = "/tmp/vigil-mosqdb-XXXXXX";
	ck_assert(mkdtemp(dir));
	char cmd[256], path[300];
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 " GEN " %s", dir);
	int64_t t0 = (int64_t)time(NULL);
	int st = system(cmd);
	int64_t t1 = (int64_t)time(NULL);
	ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed (%d)", cmd, st);
	snprintf(path, sizeof path, "%s/mosquitto.db", dir);
	struct coll c;
	coll_init(&c);
	char err[600] = "";
	int rc = mosqdb_read(path, &coll_visitor, &c, err, sizeof err);
	ck_assert_msg(rc == MOSQDB_OK, "%s", err);
	check_scenario(&c, t0, t1);
	coll_free(&c);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Every prefix: an error naming an offset, unless the cut falls exactly
 * between chunks (mosquitto.db has no end marker and no checksum). Callbacks
 * never run for a file that is then refused. */
START_TEST(truncated)
{
	size_t len;
	uint8_t *buf = slurp(GOLDEN, &len);
	size_t *bounds = chunk_bounds(buf, len);
	for (size_t n = 0; n < len; n++) {
		struct coll c;
		coll_init(&c);
		char err[600] = "";
		int rc = mosqdb_parse(buf, n, &coll_visitor, &c, err, sizeof err);
		bool at_bound = false;
		for (size_t i = 0; bounds[i]; i++)
			at_bound |= bounds[i] == n;
		if (at_bound) {
			ck_assert_msg(rc == MOSQDB_OK, "cut at chunk boundary %zu: %s", n, err);
		} else {
			ck_assert_msg(rc != MOSQDB_OK, "cut at %zu accepted", n);
			ck_assert_msg(err[0], "no message for cut at %zu", n);
			if (n >= 23)
				ck_assert_msg(rc == MOSQDB_ECORRUPT && strstr(err, "offset "), "cut at %zu: %s", n, err);
			ck_assert_uint_eq(c.calls, 0);
		}
		coll_free(&c);
	}
	free(bounds);
	free(buf);
}
END_TEST

/* Every byte flipped (two ways): OK or an error with a message; never a
 * crash or a read outside the image (ASan), never callbacks then an error. */
START_TEST(corrupted_bytes)
{
	size_t len;
	uint8_t *buf = slurp(GOLDEN, &len);
	uint8_t *copy = malloc(len);
	ck_assert(copy);
	size_t refused = 0;
	for (size_t i = 0; i < len; i++) {
		static const uint8_t masks[] = {0xFF, 0x01, 0x80};
		for (size_t k = 0; k < sizeof masks; k++) {
			memcpy(copy, buf, len);
			copy[i] ^= masks[k];
			struct coll c;
			coll_init(&c);
			char err[600] = "";
			int rc = mosqdb_parse(copy, len, &coll_visitor, &c, err, sizeof err);
			if (rc != MOSQDB_OK) {
				refused++;
				ck_assert_msg(err[0], "byte %zu ^ %02x: no message", i, masks[k]);
				ck_assert_uint_eq(c.calls, 0);
			}
			coll_free(&c);
		}
	}
	ck_assert_uint_gt(refused, len / 4);
	free(copy);
	free(buf);
}
END_TEST

/* Named corruptions, each with the offset of the faulty chunk. */
START_TEST(corrupted_named)
{
	size_t len;
	uint8_t *buf = slurp(GOLDEN, &len);
	uint8_t *b = malloc(len);
	char err[600];
	ck_assert(b);
	/* bad magic / version */
	memcpy(b, buf, len);
	b[3] = 'M';
	ck_assert_int_eq(mosqdb_parse(b, len, NULL, NULL, err, sizeof err), MOSQDB_EFORMAT);
	ck_assert_ptr_nonnull(strstr(err, "not a mosquitto"));
	memcpy(b, buf, len);
	b[22] = 7;
	ck_assert_int_eq(mosqdb_parse(b, len, NULL, NULL, err, sizeof err), MOSQDB_EFORMAT);
	ck_assert_ptr_nonnull(strstr(err, "version 7"));
	/* the first MSG_STORE chunk (after the 16-byte CFG at 23): length past the end */
	size_t st = 23 + 8 + 16;
	memcpy(b, buf, len);
	b[st + 4] = 0x7f;
	ck_assert_int_eq(mosqdb_parse(b, len, NULL, NULL, err, sizeof err), MOSQDB_ECORRUPT);
	ck_assert_msg(strstr(err, "offset 47:") && strstr(err, "MSG_STORE"), "%s", err);
	/* its qos (byte 30 of the body) = 3 */
	memcpy(b, buf, len);
	b[st + 8 + 30] = 3;
	ck_assert_int_eq(mosqdb_parse(b, len, NULL, NULL, err, sizeof err), MOSQDB_ECORRUPT);
	ck_assert_msg(strstr(err, "qos 3"), "%s", err);
	/* its topic length larger than the chunk */
	memcpy(b, buf, len);
	b[st + 8 + 26] = 0x40;
	ck_assert_int_eq(mosqdb_parse(b, len, NULL, NULL, err, sizeof err), MOSQDB_ECORRUPT);
	ck_assert_msg(strstr(err, "topic needs"), "%s", err);
	/* message id size in CFG */
	memcpy(b, buf, len);
	b[23 + 8 + 9] = 4;
	ck_assert_int_eq(mosqdb_parse(b, len, NULL, NULL, err, sizeof err), MOSQDB_ECORRUPT);
	ck_assert_msg(strstr(err, "message id size 4"), "%s", err);
	/* garbage */
	ck_assert_int_eq(mosqdb_parse((const uint8_t *)"hello world", 11, NULL, NULL, err, sizeof err),
			 MOSQDB_EFORMAT);
	ck_assert_int_eq(mosqdb_parse(NULL, 0, NULL, NULL, err, sizeof err), MOSQDB_EFORMAT);
	ck_assert_ptr_nonnull(strstr(err, "empty"));
	free(b);
	free(buf);
}
END_TEST

START_TEST(read_errors)
{
	char err[600] = "";
	ck_assert_int_eq(mosqdb_read("/nonexistent/mosquitto.db", NULL, NULL, err, sizeof err), MOSQDB_EIO);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/mosquitto.db: cannot read"));
	ck_assert_int_eq(mosqdb_probe("/nonexistent/mosquitto.db"), 0);
	ck_assert_int_eq(mosqdb_probe("Makefile"), 0);
	ck_assert_int_eq(mosqdb_read("tests", NULL, NULL, err, sizeof err), MOSQDB_EIO);
	ck_assert_int_eq(mosqdb_read("Makefile", NULL, NULL, err, sizeof err), MOSQDB_EFORMAT);
	ck_assert_ptr_nonnull(strstr(err, "Makefile: not a mosquitto"));
}
END_TEST

START_TEST(visitor_stops)
{
	struct coll c;
	coll_init(&c);
	c.stop_after = 3;
	char err[600] = "";
	ck_assert_int_eq(mosqdb_read(GOLDEN, &coll_visitor, &c, err, sizeof err), MOSQDB_ESTOP);
	ck_assert_uint_eq(c.calls, 3);
	ck_assert_ptr_nonnull(strstr(err, "stopped"));
	coll_free(&c);
}
END_TEST

Suite *mosqdb_old_suite(void); /* test_mosqdb_old.h */
#include "test_mosqdb_old.h"

int main(void)
{
	Suite *s = suite_create("mosqdb");
	TCase *tc = tcase_create("mosquitto-2.0.11");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, golden_file);
	tcase_add_test(tc, golden_empty);
	tcase_add_test(tc, live_mosquitto);
	tcase_add_test(tc, truncated);
	tcase_add_test(tc, corrupted_bytes);
	tcase_add_test(tc, corrupted_named);
	tcase_add_test(tc, read_errors);
	tcase_add_test(tc, visitor_stops);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_add_suite(sr, mosqdb_old_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
