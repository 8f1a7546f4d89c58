/*
 * tests/unit/test_wheel.c — the timing wheel against a brute-force reference
 * with a fake clock: never early, never missed, never twice, fired at the
 * first wheel_run whose now >= deadline; callbacks that re-arm and cancel;
 * wheel_next a tight lower bound; jumps of days and deadlines near 2^64.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "wheel.h"

#define DAY_MS (24ull * 3600 * 1000)

/* ck_assert records its location on every call (a write); the hot loops
 * below only call into Check when something is wrong. */
#define REQUIRE(cond, ...)                                                                         \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);                      \
	} while (0)
#define REQUIRE_MSG(cond, ...)                                                                     \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg(__VA_ARGS__);                                                 \
	} while (0)

struct ctx;
struct tent {
	struct wheel_entry we;
	struct ctx *c;
	unsigned idx;
	bool armed;        /* reference: armed? */
	uint64_t deadline; /* reference deadline */
	bool expected;     /* must fire in the run in progress */
	unsigned fired;    /* fires in the run in progress */
};

struct ctx {
	struct wheel w;
	struct tent *e;
	unsigned n;
	uint64_t rng;
	uint64_t now;      /* the `now` of the run in progress */
	uint64_t last_fire_deadline;
	unsigned fires_this_run;
	bool in_run;
	unsigned long total_fired;
	int cb_mode;       /* 0 = random actions, 1 = none */
};

static uint64_t rnd(struct ctx *c)
{
	/* xorshift64* */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * UINT64_C(2685821657736338717);
}

static uint64_t rnd_below(struct ctx *c, uint64_t n)
{
	return n ? rnd(c) % n : 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Deadlines from the past to days ahead, a few beyond 2^42 ms. */
static uint64_t rnd_deadline(struct ctx *c)
{
	uint64_t now = c->w.now;
	switch (rnd_below(c, 20)) {
	case 0:
		return now - rnd_below(c, now < 5000 ? now + 1 : 5000); /* past or now */
	case 1:
		return now;
	case 2:
		return sat_add(now, 1);
	case 3: case 4: case 5: case 6:
		return sat_add(now, rnd_below(c, 64));
	case 7: case 8: case 9:
		return sat_add(now, rnd_below(c, 5000));
	case 10: case 11:
		return sat_add(now, rnd_below(c, 300000));
	case 12: case 13:
		return sat_add(now, rnd_below(c, 3 * DAY_MS));
	case 14:
		return rnd_below(c, 50) ? sat_add(now, rnd_below(c, UINT64_C(1) << 44)) : UINT64_MAX;
	default:
		return sat_add(now, rnd_below(c, 1500));
	}
}

static void ref_add(struct ctx *c, struct tent *t, uint64_t d)
{
	wheel_add(&c->w, &t->we, d);
	t->armed = true;
	t->deadline = d;
	t->expected = false; /* a re-armed entry no longer fires in this run */
}

static void ref_cancel(struct ctx *c, struct tent *t)
{
	wheel_cancel(&c->w, &t->we);
	t->armed = false;
	t->expected = false;
}

static void cb(struct wheel_entry *we, uint64_t now)
{
	struct tent *t = (struct tent *)we;
	struct ctx *c = t->c;
	REQUIRE(c->in_run);
	REQUIRE((now) == (c->now));
	REQUIRE_MSG(t->expected, "entry %u (deadline %llu) fired at %llu unexpectedly", t->idx,
		      (unsigned long long)t->deadline, (unsigned long long)now);
	REQUIRE(t->deadline <= now);
	REQUIRE(!wheel_armed(we));
	REQUIRE((t->deadline) >= (c->last_fire_deadline)); /* deadline order */
	c->last_fire_deadline = t->deadline;
	t->fired++;
	t->expected = false;
	t->armed = false;
	c->fires_this_run++;
	if (c->cb_mode)
		return;
	/* Random actions: re-arm self, cancel or re-arm others (maybe still due
	 * in this run), arm idle ones (maybe in the past: next run). */
	unsigned k = (unsigned)rnd_below(c, 4);
	for (unsigned i = 0; i < k; i++) {
		struct tent *o = &c->e[rnd_below(c, c->n)];
		switch (rnd_below(c, 4)) {
		case 0:
			ref_add(c, t, rnd_deadline(c));
			break;
		case 1:
			ref_cancel(c, o);
			break;
		default:
			ref_add(c, o, rnd_deadline(c));
			break;
		}
	}
}

static void check_next(struct ctx *c)
{
	uint64_t min = UINT64_MAX;
	uint64_t armed = 0;
	for (unsigned i = 0; i < c->n; i++) {
		REQUIRE(wheel_armed(&c->e[i].we) == c->e[i].armed);
		if (c->e[i].armed) {
			armed++;
			if (c->e[i].deadline < min)
				min = c->e[i].deadline;
		}
	}
	REQUIRE((c->w.count) == (armed));
	uint64_t next = wheel_next(&c->w);
	if (!armed) {
		REQUIRE((next) == (UINT64_MAX));
		return;
	}
	REQUIRE_MSG(next <= min, "wheel_next %llu > earliest %llu", (unsigned long long)next, (unsigned long long)min);
	if (min > c->w.now) {
		REQUIRE_MSG(next > c->w.now, "wheel_next %llu <= now %llu", (unsigned long long)next,
			      (unsigned long long)c->w.now);
		if ((min ^ c->w.now) < WHEEL_SLOTS)
			REQUIRE((next) == (min)); /* exact in level 0 */
	} else {
		REQUIRE((next) == (min)); /* past-due entries: exact */
	}
}

static void do_run(struct ctx *c, uint64_t now)
{
	unsigned want = 0;
	for (unsigned i = 0; i < c->n; i++) {
		struct tent *t = &c->e[i];
		t->fired = 0;
		t->expected = t->armed && t->deadline <= now;
		want += t->expected;
	}
	c->now = now;
	c->in_run = true;
	c->last_fire_deadline = 0;
	c->fires_this_run = 0;
	unsigned n = wheel_run(&c->w, now);
	c->in_run = false;
	REQUIRE((n) == (c->fires_this_run));
	REQUIRE((n) <= (want));
	for (unsigned i = 0; i < c->n; i++) {
		struct tent *t = &c->e[i];
		REQUIRE_MSG(!t->expected, "entry %u (deadline %llu) missed at now %llu", i,
			      (unsigned long long)t->deadline, (unsigned long long)now);
		REQUIRE((t->fired) <= (1));
	}
	c->total_fired += n;
}

static struct ctx *ctx_new(unsigned n, uint64_t start, uint64_t seed)
{
	struct ctx *c = calloc(1, sizeof *c);
	ck_assert_ptr_nonnull(c);
	c->e = calloc(n, sizeof *c->e);
	ck_assert_ptr_nonnull(c->e);
	c->n = n;
	c->rng = seed | 1;
	wheel_init(&c->w, start);
	for (unsigned i = 0; i < n; i++) {
		wheel_entry_init(&c->e[i].we, cb);
		c->e[i].c = c;
		c->e[i].idx = i;
	}
	return c;
}

static void ctx_free(struct ctx *c)
{
	free(c->e);
	free(c);
}

static void randomized(uint64_t start, uint64_t seed, unsigned nent, unsigned ops)
{
	struct ctx *c = ctx_new(nent, start, seed);
	uint64_t now = start;
	for (unsigned op = 0; op < ops; op++) {
		struct tent *t = &c->e[rnd_below(c, c->n)];
		unsigned r = (unsigned)rnd_below(c, 100);
		if (r < 40) {
			ref_add(c, t, rnd_deadline(c));
		} else if (r < 55) {
			ref_cancel(c, t);
		} else {
			/* advance: mostly small steps, sometimes a suspend, rarely backwards */
			uint64_t step;
			unsigned k = (unsigned)rnd_below(c, 1000);
			if (k < 600)
				step = rnd_below(c, 20);
			else if (k < 900)
				step = rnd_below(c, 2000);
			else if (k < 990)
				step = rnd_below(c, 600000);
			else if (k < 997)
				step = rnd_below(c, 10 * DAY_MS);
			else
				step = 0;
			if (k >= 997 && now >= 100) {
				do_run(c, now - rnd_below(c, 100)); /* a caller whose clock went back */
			} else {
				now = sat_add(now, step);
				do_run(c, now);
			}
		}
		if (op % 7 == 0 || r >= 55)
			check_next(c);
	}
	/* Drain whatever is still due within a year. */
	c->cb_mode = 1;
	do_run(c, sat_add(now, 365 * DAY_MS));
	check_next(c);
	ck_assert_uint_gt(c->total_fired, ops / 20);
	ctx_free(c);
}

START_TEST(random_from_zero)
{
	randomized(0, 0x9e3779b97f4a7c15ull + (uint64_t)_i, 1000, 120000);
}
END_TEST

START_TEST(random_from_uptime)
{
	/* a typical CLOCK_MONOTONIC in ms, and just below a level-6 boundary */
	randomized(_i ? (UINT64_C(1) << 42) - 3000 : 123456789ull, 0xdeadbeefcafeull + (uint64_t)_i, 700, 120000);
}
END_TEST

START_TEST(random_near_top)
{
	randomized(UINT64_MAX - 20 * DAY_MS, 0x1234567ull, 500, 60000);
}
END_TEST

START_TEST(random_small_set_many_ops)
{
	/* few entries: many cascades of the same entries, many re-arms */
	randomized(777, 42, 16, 200000);
}
END_TEST

/* ---- edge cases -------------------------------------------------------- */

struct rec {
	struct wheel_entry we;
	struct wheel *w;
	uint64_t fired_at;
	unsigned fires;
	struct rec *victim;   /* cancelled by cb */
	struct rec *rearm;    /* re-armed by cb at rearm_to */
	uint64_t rearm_to;
	uint64_t self_to;     /* self re-arm deadline, 0 = none */
};

static void rec_cb(struct wheel_entry *we, uint64_t now)
{
	struct rec *r = (struct rec *)we;
	r->fires++;
	r->fired_at = now;
	if (r->victim)
		wheel_cancel(r->w, &r->victim->we);
	if (r->rearm)
		wheel_add(r->w, &r->rearm->we, r->rearm_to);
	if (r->self_to)
		wheel_add(r->w, &r->we, r->self_to);
}

static void rec_init(struct rec *r, struct wheel *w)
{
	*r = (struct rec){.w = w};
	wheel_entry_init(&r->we, rec_cb);
}

START_TEST(empty_wheel)
{
	struct wheel w;
	wheel_init(&w, 1000);
	ck_assert_uint_eq(wheel_next(&w), UINT64_MAX);
	ck_assert_uint_eq(wheel_run(&w, 5000), 0);
	ck_assert_uint_eq(wheel_run(&w, UINT64_MAX), 0);
	ck_assert_uint_eq(w.now, UINT64_MAX);
	struct rec r;
	rec_init(&r, &w);
	wheel_cancel(&w, &r.we); /* not armed: harmless */
	ck_assert_uint_eq(w.count, 0);
}
END_TEST

START_TEST(past_and_exact_deadlines)
{
	struct wheel w;
	struct rec a, b, c;
	wheel_init(&w, 1000);
	rec_init(&a, &w);
	rec_init(&b, &w);
	rec_init(&c, &w);
	wheel_add(&w, &a.we, 10);   /* long past */
	wheel_add(&w, &b.we, 1000); /* == now */
	wheel_add(&w, &c.we, 1001);
	ck_assert_uint_eq(w.count, 3);
	ck_assert_uint_eq(wheel_next(&w), 10);
	ck_assert_uint_eq(wheel_run(&w, 1000), 2); /* same now: past ones fire */
	ck_assert_uint_eq(a.fires, 1);
	ck_assert_uint_eq(b.fires, 1);
	ck_assert_uint_eq(c.fires, 0);
	ck_assert_uint_eq(wheel_next(&w), 1001);
	ck_assert_uint_eq(wheel_run(&w, 1000), 0); /* never one ms early */
	ck_assert_uint_eq(wheel_run(&w, 1001), 1);
	ck_assert_uint_eq(c.fired_at, 1001);
	ck_assert_uint_eq(w.count, 0);
	/* re-adding an armed entry re-arms it, count unchanged */
	wheel_add(&w, &a.we, 5000);
	wheel_add(&w, &a.we, 2000);
	ck_assert_uint_eq(w.count, 1);
	ck_assert_uint_eq(wheel_run(&w, 1999), 0);
	ck_assert_uint_eq(wheel_run(&w, 4000), 1);
	ck_assert_uint_eq(a.fires, 2);
	ck_assert_uint_eq(wheel_run(&w, 6000), 0);
}
END_TEST

START_TEST(cancel_entry_in_due_list)
{
	struct wheel w;
	struct rec a, b, c, d;
	wheel_init(&w, 0);
	rec_init(&a, &w);
	rec_init(&b, &w);
	rec_init(&c, &w);
	rec_init(&d, &w);
	wheel_add(&w, &a.we, 5);
	wheel_add(&w, &b.we, 6);   /* due in the same run, cancelled by a */
	wheel_add(&w, &c.we, 7);   /* due in the same run, re-armed by a to 100 */
	wheel_add(&w, &d.we, 300); /* not due, cancelled by a */
	a.victim = &b;
	a.rearm = &c;
	a.rearm_to = 100;
	ck_assert_uint_eq(wheel_run(&w, 200), 1);
	ck_assert_uint_eq(a.fires, 1);
	ck_assert_uint_eq(b.fires, 0);
	ck_assert(!wheel_armed(&b.we));
	ck_assert_uint_eq(c.fires, 0);
	ck_assert(wheel_armed(&c.we));
	ck_assert_uint_eq(w.count, 2);
	a.victim = &d;
	a.rearm = NULL;
	wheel_add(&w, &a.we, 1);
	ck_assert_uint_eq(wheel_run(&w, 200), 2); /* a (past) and c (100, re-armed in the past) */
	ck_assert_uint_eq(c.fires, 1);
	ck_assert_uint_eq(c.fired_at, 200);
	ck_assert_uint_eq(w.count, 0);
	ck_assert(!wheel_armed(&d.we)); /* not due, cancelled from a callback */
	ck_assert_uint_eq(wheel_run(&w, 1000), 0);
	ck_assert_uint_eq(d.fires, 0);
}
END_TEST

START_TEST(callback_adds_past_entry_next_run)
{
	/* Documented: an entry due at <= now added from a callback fires at the
	 * next wheel_run, not the same one; a self re-arm in the past never loops. */
	struct wheel w;
	struct rec a, b;
	wheel_init(&w, 50);
	rec_init(&a, &w);
	rec_init(&b, &w);
	a.rearm = &b;
	a.rearm_to = 10; /* in the past */
	a.self_to = 60;  /* == now of the run */
	wheel_add(&w, &a.we, 55);
	ck_assert_uint_eq(wheel_run(&w, 60), 1);
	ck_assert_uint_eq(a.fires, 1);
	ck_assert_uint_eq(b.fires, 0);
	ck_assert_uint_eq(wheel_next(&w), 10);
	a.rearm = NULL;
	a.self_to = 0;
	ck_assert_uint_eq(wheel_run(&w, 60), 2);
	ck_assert_uint_eq(a.fires, 2);
	ck_assert_uint_eq(b.fires, 1);
	ck_assert_uint_eq(wheel_next(&w), UINT64_MAX);
}
END_TEST

START_TEST(suspend_jump_is_cheap_and_ordered)
{
	/* 20000 entries over 3 days, then now jumps 30 days ahead (a suspend):
	 * all fire in one run, in deadline order; the loop is O(entries). */
	enum { N = 20000 };
	struct ctx *c = ctx_new(N, 5000, 99);
	c->cb_mode = 1;
	for (unsigned i = 0; i < N; i++)
		ref_add(c, &c->e[i], 5000 + rnd_below(c, 3 * DAY_MS));
	do_run(c, 5000 + 30 * DAY_MS);
	ck_assert_uint_eq(c->total_fired, N);
	ck_assert_uint_eq(c->w.count, 0);
	/* and a jump to the end of time */
	ref_add(c, &c->e[0], UINT64_MAX - 1);
	ref_add(c, &c->e[1], UINT64_MAX);
	ref_add(c, &c->e[2], 6000 + (UINT64_C(1) << 50));
	check_next(c);
	do_run(c, UINT64_MAX - 2);
	ck_assert_uint_eq(c->total_fired, N + 1);
	do_run(c, UINT64_MAX - 1);
	do_run(c, UINT64_MAX - 1);
	ck_assert_uint_eq(c->total_fired, N + 2);
	do_run(c, UINT64_MAX);
	ck_assert_uint_eq(c->total_fired, N + 3);
	ck_assert_uint_eq(wheel_next(&c->w), UINT64_MAX);
	ctx_free(c);
}
END_TEST

START_TEST(crossing_the_2_pow_42_block)
{
	struct wheel w;
	struct rec a, b;
	uint64_t base = UINT64_C(1) << 42;
	wheel_init(&w, base - 1);
	rec_init(&a, &w);
	rec_init(&b, &w);
	wheel_add(&w, &a.we, base);     /* 1 ms away, but differs in bit 42 */
	wheel_add(&w, &b.we, base + 70);
	ck_assert_uint_le(wheel_next(&w), base);
	ck_assert_uint_gt(wheel_next(&w), base - 1);
	ck_assert_uint_eq(wheel_run(&w, base - 1), 0);
	ck_assert_uint_eq(wheel_run(&w, base), 1);
	ck_assert_uint_eq(a.fired_at, base);
	ck_assert_uint_le(wheel_next(&w), base + 70);
	ck_assert_uint_eq(wheel_run(&w, base + 69), 0);
	ck_assert_uint_eq(wheel_run(&w, base + 70), 1);
}
END_TEST

START_TEST(sleeping_until_next_wakes_little)
{
	/* A loop that sleeps until wheel_next: never late (fires at exactly its
	 * deadline), at most one needless wake-up per level per fire. */
	enum { N = 300 };
	struct ctx *c = ctx_new(N, 1000, 7);
	c->cb_mode = 1;
	for (unsigned i = 0; i < N; i++)
		ref_add(c, &c->e[i], 1000 + 1 + rnd_below(c, 40 * DAY_MS));
	unsigned wakes = 0;
	while (c->w.count) {
		uint64_t t = wheel_next(&c->w);
		REQUIRE(t > c->w.now);
		do_run(c, t);
		wakes++;
		for (unsigned i = 0; i < N; i++)
			REQUIRE(!c->e[i].fired || c->e[i].deadline == t); /* on time, to the ms */
	}
	ck_assert_uint_eq(c->total_fired, N);
	ck_assert_uint_le(wakes, N * WHEEL_LEVELS);
	ctx_free(c);
}
END_TEST

START_TEST(clock_going_back)
{
	struct wheel w;
	struct rec a, b;
	wheel_init(&w, 10000);
	rec_init(&a, &w);
	rec_init(&b, &w);
	wheel_add(&w, &a.we, 9000);  /* past */
	wheel_add(&w, &b.we, 9500);  /* past */
	ck_assert_uint_eq(wheel_run(&w, 9200), 1); /* only a: never one whose deadline > now */
	ck_assert_uint_eq(a.fires, 1);
	ck_assert_uint_eq(b.fires, 0);
	ck_assert_uint_eq(w.now, 10000); /* the wheel does not go back */
	ck_assert_uint_eq(wheel_run(&w, 10000), 1);
	ck_assert_uint_eq(b.fires, 1);
}
END_TEST

static Suite *wheel_suite(void)
{
	Suite *s = suite_create("wheel");
	TCase *tc = tcase_create("edge");
	tcase_add_test(tc, empty_wheel);
	tcase_add_test(tc, past_and_exact_deadlines);
	tcase_add_test(tc, cancel_entry_in_due_list);
	tcase_add_test(tc, callback_adds_past_entry_next_run);
	tcase_add_test(tc, crossing_the_2_pow_42_block);
	tcase_add_test(tc, clock_going_back);
	tcase_add_test(tc, suspend_jump_is_cheap_and_ordered);
	tcase_add_test(tc, sleeping_until_next_wakes_little);
	suite_add_tcase(s, tc);
	TCase *tr = tcase_create("randomized");
	tcase_set_timeout(tr, 300);
	tcase_add_loop_test(tr, random_from_zero, 0, 2);
	tcase_add_loop_test(tr, random_from_uptime, 0, 2);
	tcase_add_test(tr, random_near_top);
	tcase_add_test(tr, random_small_set_many_ops);
	suite_add_tcase(s, tr);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(wheel_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
