/*
 * tests/unit/test_cluster_subject.c — the cluster room's names and envelope
 * (broker/cluster/subject.c): MQTT levels as NATS tokens (escaping of what
 * NATS cannot carry, wildcards only where the filter has them, one token
 * per level so NATS' matching keeps MQTT's level structure), length limits,
 * the envelope round trip with malformed input refused, and the
 * subscription tree's interest watch the room relies on (one event per
 * filter gaining its first / losing its last subscription, shared included).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster_int.h"

static const char *subj(const char *t, bool filter)
{
	static char buf[CL_SUBJ_MAX + 1];
	if (subject_topic(buf, sizeof(buf), "P", (const uint8_t *)t, strlen(t), filter) < 0)
		return NULL;
	return buf;
}

START_TEST(levels_and_escapes)
{
	ck_assert_str_eq(subj("a/b", false), "P._a._b");
	ck_assert_str_eq(subj("a//b", false), "P._a._._b");       /* empty level: a token of its own */
	ck_assert_str_eq(subj("/", false), "P._._");
	ck_assert_str_eq(subj("x.y z", false), "P._x%2Ey%20z");   /* '.' and ' ' would split or end a subject */
	ck_assert_str_eq(subj("*/>", false), "P._%2A._%3E");      /* never a NATS wildcard in a topic */
	ck_assert_str_eq(subj("%", false), "P._%25");             /* the escape itself is escaped: injective */
	ck_assert_str_eq(subj("\xc3\xa9", false), "P._%C3%A9");
	ck_assert_str_eq(subj("$SYS/x", false), "P._%24SYS._x");
}
END_TEST

START_TEST(filters)
{
	ck_assert_str_eq(subj("a/+/c", true), "P._a.*._c");
	ck_assert_str_eq(subj("a/#", true), "P._a.>");
	ck_assert_str_eq(subj("#", true), "P.>");
	ck_assert_str_eq(subj("+/+", true), "P.*.*");
	ck_assert_str_eq(subj("a+/b#", true), "P._a%2B._b%23"); /* not whole levels: literal */
	ck_assert_str_eq(subj("a/+", false), "P._a._%2B");     /* a topic never has wildcards */
}
END_TEST

START_TEST(limits)
{
	char *t = malloc(CL_SUBJ_MAX + 10);
	memset(t, 'a', CL_SUBJ_MAX + 9);
	t[CL_SUBJ_MAX + 9] = 0;
	ck_assert_ptr_null(subj(t, false));
	t[CL_SUBJ_MAX - 4] = 0; /* "P." + "_" + 2996 = 2999 bytes */
	ck_assert_ptr_nonnull(subj(t, false));
	ck_assert_int_eq((int)strlen(subj(t, false)), CL_SUBJ_MAX - 1);
	char small[8];
	ck_assert_int_eq(subject_topic(small, sizeof(small), "P", (const uint8_t *)"abcdef", 6, false), -1);
	ck_assert_int_eq(subject_token(small, sizeof(small), (const uint8_t *)"a/b", 3), 6);
	ck_assert_str_eq(small, "_a%2Fb");
	free(t);
}
END_TEST

START_TEST(envelope)
{
	struct cl_env e = {
		.flags = 1 | ENV_RETAIN | ENV_EXPIRY,
		.inst = 0x1122334455667788ull,
		.seq = 42,
		.expiry_wall = 1700000000123ull,
		.rel_expiry = 9,
		.delay = 30,
		.topic = mqtt_cstr("t/x"),
		.id = mqtt_cstr("client"),
		.user = mqtt_cstr("u"),
		.props = {(const uint8_t *)"\x26\x00\x01k\x00\x01v", 7},
		.payload = {(const uint8_t *)"\0pay", 4},
	};
	size_t len = 0;
	uint8_t *buf = env_encode(&e, &len);
	ck_assert_ptr_nonnull(buf);
	struct cl_env d;
	ck_assert_int_eq(env_decode(buf, len, &d), 0);
	ck_assert_int_eq(d.flags, e.flags);
	ck_assert(d.inst == e.inst && d.seq == 42 && d.expiry_wall == e.expiry_wall && d.rel_expiry == 9 && d.delay == 30);
	ck_assert(d.topic.len == 3 && !memcmp(d.topic.p, "t/x", 3));
	ck_assert(d.id.len == 6 && d.user.len == 1 && d.props.len == 7 && d.payload.len == 4);
	ck_assert(!memcmp(d.payload.p, "\0pay", 4) && !memcmp(d.props.p, e.props.p, 7));
	/* Truncated anywhere in the header or the lengths: refused, never read past. */
	for (size_t n = 0; n < len - e.payload.len; n++)
		ck_assert_int_eq(env_decode(buf, n, &d), -1);
	buf[0] = 2; /* unknown version */
	ck_assert_int_eq(env_decode(buf, len, &d), -1);
	free(buf);
}
END_TEST

struct watch_log {
	char ev[16][32];
	int n;
};

static void watch_cb(void *u, struct mqtt_str f, const char *group, bool added)
{
	struct watch_log *w = u;
	if (w->n < 16)
		snprintf(w->ev[w->n++], sizeof(w->ev[0]), "%c%s%s%.*s", added ? '+' : '-', group ? group : "",
			 group ? ":" : "", (int)f.len, (const char *)f.p);
}

START_TEST(interest_watch)
{
	struct subtree *t = subtree_new();
	struct watch_log w = {0};
	int o1, o2;
	subtree_set_watch(t, watch_cb, &w);
	ck_assert_int_eq(subtree_add(t, mqtt_cstr("a/+"), NULL, &o1, 0, 0, NULL), 0);
	ck_assert_int_eq(subtree_add(t, mqtt_cstr("a/+"), NULL, &o2, 0, 0, NULL), 0);   /* same filter: no event */
	ck_assert_int_eq(subtree_add(t, mqtt_cstr("a/+"), NULL, &o1, 1, 0, NULL), 0);   /* replaced: none */
	ck_assert_int_eq(subtree_add(t, mqtt_cstr("a/+"), "g", &o1, 0, 0, NULL), 0);    /* a group on it */
	ck_assert_int_eq(subtree_add(t, mqtt_cstr("a/+"), "g", &o2, 0, 0, NULL), 0);    /* second member: none */
	ck_assert_int_eq(subtree_add(t, mqtt_cstr("s/#"), "g", &o1, 0, 0, NULL), 0);    /* same name, other filter */
	ck_assert(subtree_remove(t, mqtt_cstr("a/+"), NULL, &o1));
	ck_assert_int_eq(w.n, 3);
	ck_assert(subtree_remove(t, mqtt_cstr("a/+"), NULL, &o2));                     /* last plain one */
	ck_assert(subtree_remove(t, mqtt_cstr("a/+"), "g", &o1));
	ck_assert_int_eq(w.n, 4);
	ck_assert(subtree_remove(t, mqtt_cstr("a/+"), "g", &o2));                      /* last member */
	ck_assert(!subtree_remove(t, mqtt_cstr("a/+"), "g", &o1));                     /* absent: no event */
	ck_assert(subtree_remove(t, mqtt_cstr("s/#"), "g", &o1));
	ck_assert_int_eq(w.n, 6);
	static const char *const want[6] = {"+a/+", "+g:a/+", "+g:s/#", "-a/+", "-g:a/+", "-g:s/#"};
	for (int i = 0; i < 6; i++)
		ck_assert_str_eq(w.ev[i], want[i]);
	ck_assert_ptr_null(subtree_group(t, mqtt_cstr("a/+"), "g"));
	ck_assert_int_eq(subtree_add(t, mqtt_cstr("a/+"), "h", &o1, 0, 0, NULL), 0);
	ck_assert_ptr_nonnull(subtree_group(t, mqtt_cstr("a/+"), "h"));
	ck_assert_ptr_null(subtree_group(t, mqtt_cstr("a/+"), "g"));
	ck_assert_ptr_null(subtree_group(t, mqtt_cstr("a/x"), "h"));
	ck_assert(subtree_remove(t, mqtt_cstr("a/+"), "h", &o1));
	w.n = 0;
	subtree_set_watch(t, NULL, NULL);
	ck_assert_int_eq(subtree_add(t, mqtt_cstr("z"), NULL, &o1, 0, 0, NULL), 0);
	ck_assert_int_eq(w.n, 0);
	subtree_free(t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cluster_subject");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, levels_and_escapes);
	tcase_add_test(tc, filters);
	tcase_add_test(tc, limits);
	tcase_add_test(tc, envelope);
	tcase_add_test(tc, interest_watch);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
