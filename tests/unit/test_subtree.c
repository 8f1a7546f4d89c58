/*
 * tests/unit/test_subtree.c — subscription and retained trees: spec matching
 * tables, randomized comparison with a brute-force matcher, add / replace /
 * remove, pruning back to nothing, shared groups, 32768-level topics.
 * The reference matcher and generators are in test_subtree_ref.h, the
 * allocation-failure tests in test_subtree_oom.h.
 */
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt.h"
#include "subtree.h"

#include "test_subtree_ref.h"

/* ---- helpers ---------------------------------------------------------------- */

/* Does topic match filter according to the tree (one plain sub)? */
static bool tree_match(const char *filter, const char *topic)
{
	struct subtree *t = subtree_new();
	struct sub_match m = {0};
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(subtree_add(t, S(filter), NULL, OWNER(0), 1, 0, NULL), 0);
	ck_assert_int_eq(subtree_match(t, S(topic), &m), 0);
	bool hit = m.n == 1;
	ck_assert_uint_le(m.n, 1);
	sub_match_free(&m);
	subtree_free(t);
	return hit;
}

static bool count_cb(void *value, void *ctx)
{
	(void)value;
	(*(int *)ctx)++;
	return true;
}

/* Does the retained topic match filter according to the retained tree? */
static bool retain_tree_match(const char *filter, const char *topic)
{
	struct retain_tree *r = retain_new();
	int err = 1, hits = 0;
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_null(retain_set(r, S(topic), OWNER(1), &err));
	ck_assert_int_eq(err, 0);
	retain_match(r, S(filter), count_cb, &hits);
	retain_free(r, NULL);
	ck_assert_int_le(hits, 1);
	return hits == 1;
}

struct case_ {
	const char *filter, *topic;
	bool match;
	const char *why;
};

static const struct case_ cases[] = {
	/* v311 MQTT-4.7.1-2, v5 MQTT-4.7.1-1: '#' multi-level, also the parent */
	{"sport/tennis/player1/#", "sport/tennis/player1", true, "v311 MQTT-4.7.1-2 / v5 MQTT-4.7.1-1"},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true, "v311 MQTT-4.7.1-2"},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true, "v311 MQTT-4.7.1-2"},
	{"sport/tennis/player1/#", "sport/tennis/player2", false, "v311 MQTT-4.7.1-2"},
	{"sport/tennis/player1/#", "sport/tennis", false, "v311 MQTT-4.7.1-2"},
	{"sport/#", "sport", true, "v311 4.7.1.2 / v5 4.7.1.2: parent level"},
	{"sport/#", "sport/", true, "v5 4.7.1.2"},
	{"sport/#", "sports", false, "v5 4.7.1.2"},
	{"#", "sport/tennis", true, "v311 MQTT-4.7.1-2"},
	{"#", "/", true, "v311 MQTT-4.7.1-2"},
	{"#", "a", true, "v311 MQTT-4.7.1-2"},
	/* v311 MQTT-4.7.1-3, v5 MQTT-4.7.1-2: '+' one whole level, empty ones too */
	{"sport/tennis/+", "sport/tennis/player1", true, "v311 MQTT-4.7.1-3 / v5 MQTT-4.7.1-2"},
	{"sport/tennis/+", "sport/tennis/player2", true, "v311 MQTT-4.7.1-3"},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false, "v311 MQTT-4.7.1-3"},
	{"sport/+", "sport", false, "v311 MQTT-4.7.1-3"},
	{"sport/+", "sport/", true, "v311 MQTT-4.7.1-3: empty level"},
	{"+/+", "/finance", true, "v311 MQTT-4.7.1-3"},
	{"/+", "/finance", true, "v311 MQTT-4.7.1-3"},
	{"+", "/finance", false, "v311 MQTT-4.7.1-3"},
	{"+", "a", true, "v311 MQTT-4.7.1-3"},
	{"+/+", "/", true, "v5 MQTT-4.7.1-2: two empty levels"},
	{"+", "/", false, "v5 MQTT-4.7.1-2"},
	{"a/+/b", "a//b", true, "v5 MQTT-4.7.1-2: empty middle level"},
	{"a//b", "a//b", true, "literal empty level"},
	{"a//b", "a/b", false, "literal empty level"},
	{"+/tennis/#", "sport/tennis/player1", true, "v311 MQTT-4.7.1-2/3 together"},
	{"+/tennis/#", "sport/tennis", true, "v311 MQTT-4.7.1-2/3 together"},
	{"+/+/#", "a", false, "v5 MQTT-4.7.1-2"},
	{"+/#", "a", true, "v5 MQTT-4.7.1-1: '#' matches the parent"},
	/* v311 MQTT-4.7.2-1, v5 MQTT-4.7.2-1: '$' topics */
	{"#", "$SYS/broker/load", false, "v311 MQTT-4.7.2-1 / v5 MQTT-4.7.2-1"},
	{"+/broker/load", "$SYS/broker/load", false, "v311 MQTT-4.7.2-1"},
	{"+", "$SYS", false, "v311 MQTT-4.7.2-1"},
	{"$SYS/#", "$SYS/broker/load", true, "v311 MQTT-4.7.2-1"},
	{"$SYS/#", "$SYS", true, "v311 MQTT-4.7.2-1"},
	{"$SYS/broker/+", "$SYS/broker/load", true, "v311 MQTT-4.7.2-1"},
	{"$SYS/+/load", "$SYS/broker/load", true, "v311 MQTT-4.7.2-1"},
	{"$SYS", "$SYS", true, "v311 MQTT-4.7.2-1"},
	{"a/#", "a/$SYS", true, "'$' rule is for the first level only"},
	{"+/$x", "a/$x", true, "'$' rule is for the first level only"},
	/* v311/v5 MQTT-4.7.3-4: no normalisation */
	{"Sport", "sport", false, "v311 MQTT-4.7.3-4"},
	{"sport ", "sport", false, "v311 MQTT-4.7.3-4"},
	{"caf\xc3\xa9", "cafe\xcc\x81", false, "v5 MQTT-4.7.3-4: no Unicode normalisation"},
	{"caf\xc3\xa9/+", "caf\xc3\xa9/x", true, "v5 MQTT-4.7.3-4"},
	/* v311 MQTT-4.7.1-1 / v5 MQTT-4.7.0-1: wildcards only act in filters;
	 * a topic level that merely contains '+' or '#' characters elsewhere
	 * in a filter level is literal (such filters are invalid; not tested) */
	{"a/b", "a/b", true, "exact"},
	{"a/b", "a/b/c", false, "exact"},
	{"a/b/c", "a/b", false, "exact"},
};

START_TEST(spec_table_subtree)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct case_ *c = &cases[i];
		ck_assert_msg(ref_match(c->filter, c->topic) == c->match, "reference: %s vs %s (%s)", c->filter,
			      c->topic, c->why);
		ck_assert_msg(tree_match(c->filter, c->topic) == c->match, "subtree: %s vs %s (%s)", c->filter,
			      c->topic, c->why);
	}
}
END_TEST

START_TEST(spec_table_retain)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct case_ *c = &cases[i];
		ck_assert_msg(retain_tree_match(c->filter, c->topic) == c->match, "retain: %s vs %s (%s)", c->filter,
			      c->topic, c->why);
	}
}
END_TEST

START_TEST(spec_table_protocol_agrees)
{
	/* The protocol library's matcher must agree with the same table. */
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct case_ *c = &cases[i];
		ck_assert_msg(mqtt_topic_matches(S(c->filter), S(c->topic)) == c->match, "mqtt_topic_matches: %s vs %s (%s)",
			      c->filter, c->topic, c->why);
	}
}
END_TEST

static const char *const group_names[] = {"g1", "g2"};

struct rsub {
	char filter[64];
	int group; /* -1 plain */
	int owner;
	uint8_t options;
	uint32_t sub_id;
	bool live;
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Canonical "name:id,id,..." of a group (ids sorted). Fixed-size buffers
 * keep the test's own heap use from polluting the pruning check. */
enum { GROUP_MAX = 8, GROUP_KEY = 16 + GROUP_MAX * 12 };
static char *group_key(const char *name, uint32_t *ids, size_t n)
{
	REQUIRE(n <= GROUP_MAX); /* one member per owner, 8 owners */
	qsort(ids, n, sizeof *ids, cmp_u32);
	char *s = malloc(GROUP_KEY);
	REQUIRE(s);
	int off = snprintf(s, GROUP_KEY, "%s:", name);
	for (size_t i = 0; i < n; i++)
		off += snprintf(s + off, GROUP_KEY - (size_t)off, "%u,", ids[i]);
	return s;
}

static void compare_match(struct subtree *t, struct rsub *subs, size_t nsubs, const char *topic, struct sub_match *m)
{
	REQUIRE(subtree_match(t, S(topic), m) == 0);
	/* plain: each sub_id unique, so compare sorted id lists and check owner/options */
	enum { CAP = 4096 }; /* > MAXSUBS; one size class for every call */
	REQUIRE(nsubs < CAP && m->n < CAP && m->ng < CAP);
	uint32_t *want = malloc(CAP * sizeof *want), *got = malloc(CAP * sizeof *got);
	size_t nw = 0;
	REQUIRE(want && got);
	for (size_t i = 0; i < nsubs; i++)
		if (subs[i].live && subs[i].group < 0 && ref_match(subs[i].filter, topic))
			want[nw++] = subs[i].sub_id;
	for (size_t i = 0; i < m->n; i++) {
		got[i] = m->subs[i]->sub_id;
		/* find its reference entry: owner and options must agree */
		size_t j = 0;
		while (j < nsubs && !(subs[j].live && subs[j].group < 0 && subs[j].sub_id == got[i]))
			j++;
		REQUIRE(j < nsubs);
		REQUIRE(m->subs[i]->owner == OWNER(subs[j].owner));
		REQUIRE(m->subs[i]->options == subs[j].options);
	}
	if (nw != m->n)
		ck_abort_msg("topic %s: %zu plain matches, want %zu", topic, m->n, nw);
	qsort(want, nw, sizeof *want, cmp_u32);
	qsort(got, m->n, sizeof *got, cmp_u32);
	REQUIRE(!memcmp(want, got, nw * sizeof *want));
	free(want);
	free(got);

	/* groups: one per (filter, name) with a matching filter, all members */
	char **gw = calloc(CAP, sizeof *gw), **gg = calloc(CAP, sizeof *gg);
	uint32_t *ids = malloc(CAP * sizeof *ids);
	bool *done = calloc(CAP, 1);
	REQUIRE(gw && gg && ids && done);
	size_t ngw = 0;
	for (size_t i = 0; i < nsubs; i++) {
		if (!subs[i].live || subs[i].group < 0 || done[i] || !ref_match(subs[i].filter, topic))
			continue;
		size_t n = 0;
		for (size_t j = i; j < nsubs; j++) {
			if (subs[j].live && subs[j].group == subs[i].group && !strcmp(subs[j].filter, subs[i].filter)) {
				ids[n++] = subs[j].sub_id;
				done[j] = true;
			}
		}
		gw[ngw++] = group_key(group_names[subs[i].group], ids, n);
	}
	for (size_t i = 0; i < m->ng; i++) {
		struct sub_group *g = m->groups[i];
		REQUIRE(g->n > 0 && g->n <= g->cap && (g->cursor < g->n || g->cursor == 0));
		uint32_t gi[GROUP_MAX];
		REQUIRE(g->n <= GROUP_MAX);
		for (size_t j = 0; j < g->n; j++)
			gi[j] = g->members[j].sub_id;
		gg[i] = group_key(g->name, gi, g->n);
	}
	if (ngw != m->ng)
		ck_abort_msg("topic %s: %zu groups, want %zu", topic, m->ng, ngw);
	qsort(gw, ngw, sizeof *gw, cmp_str);
	qsort(gg, m->ng, sizeof *gg, cmp_str);
	for (size_t i = 0; i < ngw; i++)
		if (strcmp(gw[i], gg[i]))
			ck_abort_msg("topic %s: group %s, want %s", topic, gg[i], gw[i]);
	for (size_t i = 0; i < ngw; i++) {
		free(gw[i]);
		free(gg[i]);
	}
	free(gw);
	free(gg);
	free(ids);
	free(done);
}

enum { MAXSUBS = 1500 };

struct sim {
	struct rng r;
	struct rsub *subs;
	size_t nsubs, live, live_shared;
	uint32_t next_id;
	struct subtree *t;
	struct sub_match m;
	size_t peak;
};

/* Random add / replace / remove / match steps, each checked against the
 * reference; then remove everything (count back to 0). */
static void sim_phase(struct sim *x, unsigned ops)
{
	char buf[64];
	for (unsigned op = 0; op < ops; op++) {
		if (op % 256 == 0 && heap_in_use() > x->peak)
			x->peak = heap_in_use();
		unsigned k = rnd_below(&x->r, 100);
		if (k < 45 && x->nsubs < MAXSUBS) {
			struct rsub s = {.group = rnd_below(&x->r, 3) ? -1 : (int)rnd_below(&x->r, 2),
					 .owner = (int)rnd_below(&x->r, 8),
					 .options = (uint8_t)rnd_below(&x->r, 3),
					 .sub_id = x->next_id++,
					 .live = true};
			rnd_filter(&x->r, s.filter, sizeof s.filter);
			bool replaced = true, want_replaced = false;
			for (size_t i = 0; i < x->nsubs; i++) {
				struct rsub *o = &x->subs[i];
				if (o->live && o->owner == s.owner && o->group == s.group && !strcmp(o->filter, s.filter)) {
					o->options = s.options;
					o->sub_id = s.sub_id;
					want_replaced = true;
				}
			}
			REQUIRE(subtree_add(x->t, S(s.filter), s.group < 0 ? NULL : group_names[s.group], OWNER(s.owner),
					    s.options, s.sub_id, &replaced) == 0);
			REQUIRE(replaced == want_replaced);
			if (!want_replaced) {
				x->subs[x->nsubs++] = s;
				x->live++;
				x->live_shared += s.group >= 0;
			}
		} else if (k < 70 && x->nsubs) {
			/* remove: a known key (maybe dead, maybe re-added since), or a random one */
			struct rsub key = x->subs[rnd_below(&x->r, (unsigned)x->nsubs)];
			if (!rnd_below(&x->r, 4)) {
				key.owner = (int)rnd_below(&x->r, 8);
				key.group = rnd_below(&x->r, 2) ? -1 : 0;
				rnd_filter(&x->r, key.filter, sizeof key.filter);
			}
			bool want = false;
			for (size_t i = 0; i < x->nsubs; i++) {
				struct rsub *o = &x->subs[i];
				if (o->live && o->owner == key.owner && o->group == key.group && !strcmp(o->filter, key.filter)) {
					o->live = false;
					want = true;
					x->live--;
					x->live_shared -= o->group >= 0;
				}
			}
			REQUIRE(subtree_remove(x->t, S(key.filter), key.group < 0 ? NULL : group_names[key.group],
					       OWNER(key.owner)) == want);
		} else {
			rnd_topic(&x->r, buf, sizeof buf);
			compare_match(x->t, x->subs, x->nsubs, buf, &x->m);
		}
		REQUIRE(subtree_count(x->t) == x->live);
		REQUIRE(subtree_shared_count(x->t) == x->live_shared); /* $SYS shared_subscriptions/count */
		if (x->nsubs == MAXSUBS || op % 1000 == 999) { /* compact the reference */
			size_t j = 0;
			for (size_t i = 0; i < x->nsubs; i++)
				if (x->subs[i].live)
					x->subs[j++] = x->subs[i];
			x->nsubs = j;
		}
	}
	for (size_t i = 0; i < x->nsubs; i++) {
		struct rsub *o = &x->subs[i];
		if (o->live)
			REQUIRE(subtree_remove(x->t, S(o->filter), o->group < 0 ? NULL : group_names[o->group],
					       OWNER(o->owner)));
	}
	x->nsubs = x->live = x->live_shared = 0;
	ck_assert_uint_eq(subtree_count(x->t), 0);
	ck_assert_uint_eq(subtree_shared_count(x->t), 0);
	ck_assert_int_eq(subtree_match(x->t, S("a"), &x->m), 0);
	ck_assert_uint_eq(x->m.n + x->m.ng, 0);
	sub_match_free(&x->m);
}

START_TEST(random_subtree_vs_bruteforce)
{
	struct sim x = {.r = {0x5eed0000ull + (uint64_t)_i * 7919 + 1}, .next_id = 1};
	x.subs = calloc(MAXSUBS, sizeof *x.subs);
	ck_assert_ptr_nonnull(x.subs);
	x.t = subtree_new();
	ck_assert_ptr_nonnull(x.t);
	/* A warm-up phase settles one-time allocations (libc, match stack)... */
	sim_phase(&x, 2000);
	size_t baseline = heap_in_use();
	x.peak = baseline;
	/* ...then the measured phase must leave the heap as it found it:
	 * every emptied node pruned, every table and group freed. */
	sim_phase(&x, 25000);
	check_pruned(baseline, x.peak, heap_in_use());
	subtree_free(x.t);
	free(x.subs);
}
END_TEST

struct rtopic {
	char topic[64];
	int value; /* index into vals, -1 none */
};

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
	return x < y ? -1 : x > y;
}

struct collect {
	void **v;
	size_t n, cap;
};

static bool collect_cb(void *value, void *ctx)
{
	struct collect *c = ctx;
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->v = realloc(c->v, c->cap * sizeof *c->v);
		REQUIRE(c->v);
	}
	c->v[c->n++] = value;
	return true;
}

START_TEST(random_retain_vs_bruteforce)
{
	enum { MAXT = 600, OPS = 20000 };
	struct rng r = {0xabcdef12ull + (uint64_t)_i * 104729};
	struct rtopic *ts = calloc(MAXT, sizeof *ts);
	int *vals = calloc(OPS + 1, sizeof *vals);
	ck_assert_ptr_nonnull(ts);
	ck_assert_ptr_nonnull(vals);
	size_t nt = 0, live = 0;
	int next_val = 0;
	struct retain_tree *rt = retain_new();
	ck_assert_ptr_nonnull(rt);
	int err = 0;
	ck_assert_ptr_null(retain_set(rt, S("a/b/c/d/e/f/g"), &vals[OPS], &err));
	ck_assert_ptr_eq(retain_set(rt, S("a/b/c/d/e/f/g"), NULL, &err), &vals[OPS]);
	char buf[64];
	struct collect col = {0};
	void **want = malloc(MAXT * sizeof *want);
	ck_assert_ptr_nonnull(want);
	size_t baseline = heap_in_use(), peak = baseline;

	for (unsigned op = 0; op < OPS; op++) {
		if (op % 256 == 0 && heap_in_use() > peak)
			peak = heap_in_use();
		unsigned k = rnd_below(&r, 100);
		rnd_topic(&r, buf, sizeof buf);
		size_t i = 0;
		while (i < nt && strcmp(ts[i].topic, buf))
			i++;
		if (k < 40) {
			if (i == nt) {
				if (nt == MAXT)
					continue;
				strcpy(ts[nt].topic, buf);
				ts[nt++].value = -1;
			}
			void *old = retain_set(rt, S(buf), &vals[next_val], &err);
			REQUIRE(err == 0);
			REQUIRE(old == (ts[i].value < 0 ? NULL : &vals[ts[i].value]));
			live += ts[i].value < 0;
			ts[i].value = next_val++;
		} else if (k < 60) {
			void *old = retain_set(rt, S(buf), NULL, &err);
			REQUIRE(err == 0);
			bool had = i < nt && ts[i].value >= 0;
			REQUIRE(old == (had ? &vals[ts[i].value] : NULL));
			if (had) {
				ts[i].value = -1;
				live--;
			}
		} else if (k < 70) {
			void *v = retain_get(rt, S(buf));
			REQUIRE(v == (i < nt && ts[i].value >= 0 ? &vals[ts[i].value] : NULL));
		} else {
			rnd_filter(&r, buf, sizeof buf);
			size_t nw = 0;
			for (size_t j = 0; j < nt; j++)
				if (ts[j].value >= 0 && ref_match(buf, ts[j].topic))
					want[nw++] = &vals[ts[j].value];
			col.n = 0;
			retain_match(rt, S(buf), collect_cb, &col);
			if (col.n != nw)
				ck_abort_msg("filter %s: %zu retained matches, want %zu", buf, col.n, nw);
			if (nw) {
				qsort(want, nw, sizeof *want, cmp_ptr);
				qsort(col.v, col.n, sizeof *col.v, cmp_ptr);
				REQUIRE(!memcmp(want, col.v, nw * sizeof *want));
			}
		}
		REQUIRE(retain_count(rt) == live);
	}
	/* Clear all: count 0 and every node pruned. */
	for (size_t i = 0; i < nt; i++)
		if (ts[i].value >= 0)
			REQUIRE(retain_set(rt, S(ts[i].topic), NULL, &err) == &vals[ts[i].value]);
	ck_assert_uint_eq(retain_count(rt), 0);
	free(col.v);
	check_pruned(baseline, peak, heap_in_use());
	retain_free(rt, NULL);
	free(want);
	free(ts);
	free(vals);
}
END_TEST

START_TEST(reference_agrees_with_protocol)
{
	/* Our brute force and mqtt_topic_matches agree on random pairs. */
	struct rng r = {77};
	char f[64], t[64];
	for (int i = 0; i < 50000; i++) {
		rnd_filter(&r, f, sizeof f);
		rnd_topic(&r, t, sizeof t);
		if (ref_match(f, t) != mqtt_topic_matches(S(f), S(t)))
			ck_abort_msg("filter %s topic %s: reference %d, mqtt_topic_matches %d", f, t, ref_match(f, t),
				     !ref_match(f, t));
	}
}
END_TEST

/* ---- add / replace / remove, groups, owners --------------------------------- */

START_TEST(overlapping_subscriptions_of_one_owner)
{
	/* All of one owner's matching filters come back; the caller merges. */
	struct subtree *t = subtree_new();
	struct sub_match m = {0};
	const char *fs[] = {"a/b", "a/+", "a/#", "+/b", "#", "+/+", "a/b/#"};
	for (unsigned i = 0; i < 7; i++)
		ck_assert_int_eq(subtree_add(t, S(fs[i]), NULL, OWNER(3), (uint8_t)i, i + 1, NULL), 0);
	ck_assert_int_eq(subtree_add(t, S("a/c"), NULL, OWNER(3), 0, 99, NULL), 0);
	ck_assert_uint_eq(subtree_count(t), 8);
	ck_assert_int_eq(subtree_match(t, S("a/b"), &m), 0);
	ck_assert_uint_eq(m.n, 7);
	ck_assert_uint_eq(m.ng, 0);
	uint32_t seen = 0;
	for (size_t i = 0; i < m.n; i++) {
		ck_assert_ptr_eq(m.subs[i]->owner, OWNER(3));
		ck_assert_uint_eq(m.subs[i]->options, m.subs[i]->sub_id - 1);
		seen |= 1u << m.subs[i]->sub_id;
	}
	ck_assert_uint_eq(seen, 0xFE);
	/* the vectors are reused: a second match starts from empty */
	ck_assert_int_eq(subtree_match(t, S("z"), &m), 0);
	ck_assert_uint_eq(m.n, 1); /* "#" only */
	sub_match_free(&m);
	sub_match_free(&m); /* idempotent */
	subtree_free(t);
}
END_TEST

START_TEST(add_replaces_same_owner_filter_group)
{
	struct subtree *t = subtree_new();
	struct sub_match m = {0};
	bool replaced = true;
	ck_assert_int_eq(subtree_add(t, S("a/+"), NULL, OWNER(1), 1, 5, &replaced), 0);
	ck_assert(!replaced);
	ck_assert_int_eq(subtree_add(t, S("a/+"), NULL, OWNER(1), 2, 6, &replaced), 0);
	ck_assert(replaced);
	ck_assert_int_eq(subtree_add(t, S("a/+"), NULL, OWNER(2), 0, 0, &replaced), 0);
	ck_assert(!replaced);
	ck_assert_int_eq(subtree_add(t, S("a/+"), "g", OWNER(1), 0, 0, &replaced), 0);
	ck_assert(!replaced); /* a share on the same filter is another subscription */
	ck_assert_int_eq(subtree_add(t, S("a/+"), "g", OWNER(1), 1, 7, &replaced), 0);
	ck_assert(replaced); /* v5 MQTT-4.8.2-3: the member's new granted QoS is kept */
	ck_assert_uint_eq(subtree_count(t), 3);
	ck_assert_int_eq(subtree_match(t, S("a/x"), &m), 0);
	ck_assert_uint_eq(m.n, 2);
	for (size_t i = 0; i < m.n; i++)
		if (m.subs[i]->owner == OWNER(1))
			ck_assert(m.subs[i]->options == 2 && m.subs[i]->sub_id == 6);
	ck_assert_uint_eq(m.ng, 1);
	ck_assert_uint_eq(m.groups[0]->n, 1);
	ck_assert_uint_eq(m.groups[0]->members[0].options, 1);
	ck_assert_uint_eq(m.groups[0]->members[0].sub_id, 7);
	/* removal is exact: wrong owner / group / filter do nothing */
	ck_assert(!subtree_remove(t, S("a/+"), NULL, OWNER(3)));
	ck_assert(!subtree_remove(t, S("a/+"), "h", OWNER(1)));
	ck_assert(!subtree_remove(t, S("a/#"), NULL, OWNER(1)));
	ck_assert(!subtree_remove(t, S("a"), NULL, OWNER(1)));
	ck_assert(!subtree_remove(t, S("a/+/c"), NULL, OWNER(1)));
	ck_assert(subtree_remove(t, S("a/+"), NULL, OWNER(1)));
	ck_assert(!subtree_remove(t, S("a/+"), NULL, OWNER(1)));
	ck_assert(subtree_remove(t, S("a/+"), "g", OWNER(1)));
	ck_assert(subtree_remove(t, S("a/+"), NULL, OWNER(2)));
	ck_assert_uint_eq(subtree_count(t), 0);
	ck_assert_int_eq(subtree_match(t, S("a/x"), &m), 0);
	ck_assert_uint_eq(m.n + m.ng, 0);
	sub_match_free(&m);
	subtree_free(t);
}
END_TEST

START_TEST(shared_groups_once_with_all_members)
{
	/* v5 4.8.2 (MQTT-4.8.2-1/2 give the syntax, split by the caller): a
	 * shared subscription is identified by ShareName and filter; each group
	 * whose filter matches is returned once, with all its members. */
	struct subtree *t = subtree_new();
	struct sub_match m = {0};
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(subtree_add(t, S("s/+"), "workers", OWNER(i), (uint8_t)(i % 3), 0, NULL), 0);
	ck_assert_int_eq(subtree_add(t, S("s/+"), "audit", OWNER(5), 0, 0, NULL), 0);
	ck_assert_int_eq(subtree_add(t, S("s/#"), "workers", OWNER(6), 0, 0, NULL), 0); /* other filter, other group */
	ck_assert_int_eq(subtree_add(t, S("s/+"), NULL, OWNER(0), 2, 0, NULL), 0);     /* plain, same owner */
	ck_assert_uint_eq(subtree_count(t), 8);
	ck_assert_int_eq(subtree_match(t, S("s/1"), &m), 0);
	ck_assert_uint_eq(m.n, 1);
	ck_assert_uint_eq(m.ng, 3);
	int seen_workers5 = 0, seen_audit = 0, seen_workers1 = 0;
	for (size_t i = 0; i < m.ng; i++) {
		struct sub_group *g = m.groups[i];
		if (!strcmp(g->name, "workers") && g->n == 5) {
			seen_workers5++;
			for (size_t j = 0; j < 5; j++)
				ck_assert_ptr_eq(g->members[j].owner, OWNER(j));
		} else if (!strcmp(g->name, "workers") && g->n == 1) {
			seen_workers1++;
			ck_assert_ptr_eq(g->members[0].owner, OWNER(6));
		} else if (!strcmp(g->name, "audit")) {
			seen_audit++;
		}
	}
	ck_assert(seen_workers5 == 1 && seen_workers1 == 1 && seen_audit == 1);
	/* Removing a member keeps order and the cursor on the same next member. */
	struct sub_group *g = NULL;
	for (size_t i = 0; i < m.ng; i++)
		if (m.groups[i]->n == 5)
			g = m.groups[i];
	g->cursor = 3; /* next: owners[3] */
	ck_assert(subtree_remove(t, S("s/+"), "workers", OWNER(1)));
	ck_assert_uint_eq(g->n, 4);
	ck_assert_ptr_eq(g->members[g->cursor].owner, OWNER(3));
	ck_assert(subtree_remove(t, S("s/+"), "workers", OWNER(4)));
	ck_assert(subtree_remove(t, S("s/+"), "workers", OWNER(3)));
	ck_assert_uint_lt(g->cursor, g->n);
	/* '$share' groups never match '$' topics through wildcards either */
	ck_assert_int_eq(subtree_add(t, S("#"), "all", OWNER(7), 0, 0, NULL), 0);
	ck_assert_int_eq(subtree_match(t, S("$SYS/x"), &m), 0);
	ck_assert_uint_eq(m.n + m.ng, 0);
	ck_assert_int_eq(subtree_match(t, S("s"), &m), 0);
	ck_assert_uint_eq(m.ng, 2); /* "all" on "#", "workers" on "s/#" */
	sub_match_free(&m);
	subtree_free(t); /* frees groups still held */
}
END_TEST

START_TEST(dollar_topics_and_roots)
{
	/* v311 MQTT-4.7.2-1, v5 MQTT-4.7.2-1 */
	struct subtree *t = subtree_new();
	struct sub_match m = {0};
	const char *fs[] = {"#", "+/x", "+", "$SYS/#", "$SYS/x", "$SYS/+", "$SYS"};
	for (unsigned i = 0; i < 7; i++)
		ck_assert_int_eq(subtree_add(t, S(fs[i]), NULL, OWNER(0), 0, i, NULL), 0);
	ck_assert_int_eq(subtree_match(t, S("$SYS/x"), &m), 0);
	ck_assert_uint_eq(m.n, 3); /* $SYS/#, $SYS/x, $SYS/+ */
	for (size_t i = 0; i < m.n; i++)
		ck_assert_uint_ge(m.subs[i]->sub_id, 3);
	ck_assert_int_eq(subtree_match(t, S("$SYS"), &m), 0);
	ck_assert_uint_eq(m.n, 2); /* $SYS, $SYS/# */
	ck_assert_int_eq(subtree_match(t, S("SYS/x"), &m), 0);
	ck_assert_uint_eq(m.n, 2); /* #, +/x */
	ck_assert_int_eq(subtree_match(t, S("$other"), &m), 0);
	ck_assert_uint_eq(m.n, 0);

	struct retain_tree *r = retain_new();
	int err = 0, hits = 0;
	retain_set(r, S("$SYS/x"), OWNER(1), &err);
	retain_set(r, S("x"), OWNER(2), &err);
	retain_set(r, S("x/x"), OWNER(3), &err);
	ck_assert_uint_eq(retain_count(r), 3);
	retain_match(r, S("#"), count_cb, &hits);
	ck_assert_int_eq(hits, 2);
	hits = 0;
	retain_match(r, S("+/x"), count_cb, &hits);
	ck_assert_int_eq(hits, 1);
	hits = 0;
	retain_match(r, S("$SYS/#"), count_cb, &hits);
	ck_assert_int_eq(hits, 1);
	hits = 0;
	retain_match(r, S("$SYS/+"), count_cb, &hits);
	ck_assert_int_eq(hits, 1);
	retain_free(r, NULL);
	sub_match_free(&m);
	subtree_free(t);
}
END_TEST

static bool stop_after_one(void *value, void *ctx)
{
	(void)value;
	(*(int *)ctx)++;
	return false;
}

static void drop_count(void *value)
{
	(*(int *)value)++;
}

START_TEST(retain_set_get_clear_and_free)
{
	struct retain_tree *r = retain_new();
	int v[4] = {0}, err = 7, hits = 0;
	ck_assert_ptr_null(retain_set(r, S("a/b"), &v[0], &err));
	ck_assert_int_eq(err, 0);
	ck_assert_ptr_eq(retain_set(r, S("a/b"), &v[1], &err), &v[0]); /* previous value handed back */
	ck_assert_ptr_null(retain_set(r, S("a"), &v[2], &err));
	ck_assert_ptr_null(retain_set(r, S("/a"), &v[3], &err));
	ck_assert_uint_eq(retain_count(r), 3);
	ck_assert_ptr_eq(retain_get(r, S("a/b")), &v[1]);
	ck_assert_ptr_eq(retain_get(r, S("a")), &v[2]);
	ck_assert_ptr_null(retain_get(r, S("a/b/c")));
	ck_assert_ptr_null(retain_get(r, S("b")));
	ck_assert_ptr_eq(retain_get(r, S("/a")), &v[3]);
	ck_assert_ptr_null(retain_set(r, S("zz"), NULL, &err)); /* clearing nothing */
	ck_assert_ptr_null(retain_set(r, S("a/b/c"), NULL, NULL));
	retain_match(r, S("#"), stop_after_one, &hits); /* fn false stops the walk */
	ck_assert_int_eq(hits, 1);
	hits = 0;
	retain_match(r, S("a/#"), count_cb, &hits); /* "a/#" matches "a" itself */
	ck_assert_int_eq(hits, 2);
	hits = 0;
	retain_match(r, S("+/+"), count_cb, &hits); /* "a/b" and "/a" */
	ck_assert_int_eq(hits, 2);
	ck_assert_ptr_eq(retain_set(r, S("a"), NULL, &err), &v[2]);
	ck_assert_ptr_eq(retain_get(r, S("a/b")), &v[1]); /* child kept */
	ck_assert_uint_eq(retain_count(r), 2);
	v[1] = v[3] = 0;
	retain_free(r, drop_count); /* drop once per held value */
	ck_assert_int_eq(v[1], 1);
	ck_assert_int_eq(v[3], 1);
	ck_assert_int_eq(v[2], 0);
	retain_free(NULL, NULL);
	subtree_free(NULL);
	sub_match_free(NULL);
}
END_TEST

START_TEST(very_deep_topics)
{
	/* 32768 levels (a 65535-byte topic): no recursion, no stack overflow. */
	enum { LV = 32768 };
	char *topic = malloc(2 * LV), *plus = malloc(2 * LV + 2);
	ck_assert_ptr_nonnull(topic);
	ck_assert_ptr_nonnull(plus);
	for (int i = 0; i < LV; i++) {
		topic[2 * i] = 'a';
		topic[2 * i + 1] = '/';
		plus[2 * i] = '+';
		plus[2 * i + 1] = '/';
	}
	topic[2 * LV - 1] = 0;
	plus[2 * LV - 1] = 0;
	struct subtree *t = subtree_new();
	struct sub_match m = {0};
	ck_assert_int_eq(subtree_add(t, S(topic), NULL, OWNER(0), 0, 1, NULL), 0);
	ck_assert_int_eq(subtree_add(t, S(plus), NULL, OWNER(0), 0, 2, NULL), 0);
	plus[2 * LV - 2] = '#'; /* "+/+/.../+/#" */
	ck_assert_int_eq(subtree_add(t, S(plus), NULL, OWNER(0), 0, 3, NULL), 0);
	ck_assert_int_eq(subtree_match(t, S(topic), &m), 0);
	ck_assert_uint_eq(m.n, 3);
	struct retain_tree *r = retain_new();
	int err = 0, hits = 0;
	ck_assert_ptr_null(retain_set(r, S(topic), OWNER(1), &err));
	ck_assert_ptr_null(retain_set(r, S("a"), OWNER(2), &err));
	retain_match(r, S("#"), count_cb, &hits);
	ck_assert_int_eq(hits, 2);
	hits = 0;
	retain_match(r, S(plus), count_cb, &hits); /* "+/.../#" */
	ck_assert_int_eq(hits, 1);
	ck_assert(subtree_remove(t, S(topic), NULL, OWNER(0)));
	ck_assert_uint_eq(subtree_count(t), 2);
	retain_free(r, NULL);
	sub_match_free(&m);
	subtree_free(t);
	free(topic);
	free(plus);
}
END_TEST

#include "test_subtree_oom.h"

static Suite *subtree_suite(void)
{
	Suite *s = suite_create("subtree");
	TCase *tc = tcase_create("tables");
	tcase_add_test(tc, spec_table_subtree);
	tcase_add_test(tc, spec_table_retain);
	tcase_add_test(tc, spec_table_protocol_agrees);
	tcase_add_test(tc, overlapping_subscriptions_of_one_owner);
	tcase_add_test(tc, add_replaces_same_owner_filter_group);
	tcase_add_test(tc, shared_groups_once_with_all_members);
	tcase_add_test(tc, dollar_topics_and_roots);
	tcase_add_test(tc, retain_set_get_clear_and_free);
	tcase_add_test(tc, very_deep_topics);
	tcase_add_test(tc, subtree_enomem_changes_nothing);
	tcase_add_test(tc, retain_enomem_changes_nothing);
	suite_add_tcase(s, tc);
	TCase *tr = tcase_create("randomized");
	tcase_set_timeout(tr, 300);
	tcase_add_loop_test(tr, random_subtree_vs_bruteforce, 0, 3);
	tcase_add_loop_test(tr, random_retain_vs_bruteforce, 0, 3);
	tcase_add_test(tr, reference_agrees_with_protocol);
	suite_add_tcase(s, tr);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(subtree_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
