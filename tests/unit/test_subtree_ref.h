/*
 * tests/unit/test_subtree_ref.h — the reference side of test_subtree.c
 * (included by it; split for the 800-line limit): a brute-force topic
 * matcher written straight from the spec text, a seeded generator of
 * topics and filters, and the heap check used for pruning.
 */
/* Owners are opaque to the tree: distinct fake addresses, never dereferenced. */
#define OWNER(i) ((void *)(uintptr_t)(0x1000 + 16 * (uintptr_t)(i)))

/* ck_assert records its location on every call; hot loops call Check only
 * on failure. */
#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);                      \
	} while (0)

static struct mqtt_str S(const char *s)
{
	return (struct mqtt_str){(const uint8_t *)s, (uint32_t)strlen(s)};
}

/* ---- brute-force reference matcher ---------------------------------------- */

/* Split s on '/' into at most max levels (pointers/lengths). */
static int split(const char *s, const char **lv, int *len, int max)
{
	int n = 0;
	const char *p = s;
	for (;;) {
		const char *q = strchr(p, '/');
		if (n == max)
			return -1;
		lv[n] = p;
		len[n] = q ? (int)(q - p) : (int)strlen(p);
		n++;
		if (!q)
			return n;
		p = q + 1;
	}
}

static bool lv_is(const char *p, int len, const char *w)
{
	return len == (int)strlen(w) && !memcmp(p, w, (size_t)len);
}

static bool ref_match(const char *filter, const char *topic)
{
	enum { MAXL = 64 };
	const char *fl[MAXL], *tl[MAXL];
	int fn[MAXL], tn[MAXL];
	if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
		return false;
	int nf = split(filter, fl, fn, MAXL), nt = split(topic, tl, tn, MAXL);
	REQUIRE(nf > 0 && nt > 0);
	for (int i = 0; i < nf; i++) {
		if (lv_is(fl[i], fn[i], "#"))
			return true;
		if (i >= nt)
			return false;
		if (!lv_is(fl[i], fn[i], "+") && (fn[i] != tn[i] || memcmp(fl[i], tl[i], (size_t)fn[i])))
			return false;
	}
	return nf == nt;
}


/* ---- randomized against the brute-force matcher ----------------------------- */

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * UINT64_C(2685821657736338717);
}

static unsigned rnd_below(struct rng *r, unsigned n)
{
	return (unsigned)(rnd(r) % n);
}

static const char *const levels[] = {"a", "b", "ab", "", "$s", "x y", "\xc3\xa9"};
#define NLEVELS (sizeof levels / sizeof levels[0])

static void rnd_topic(struct rng *r, char *buf, size_t cap)
{
	do {
		buf[0] = 0;
		unsigned n = 1 + rnd_below(r, 5);
		for (unsigned i = 0; i < n; i++) {
			if (i)
				strncat(buf, "/", cap - strlen(buf) - 1);
			strncat(buf, levels[rnd_below(r, NLEVELS)], cap - strlen(buf) - 1);
		}
	} while (!buf[0]);
}

static void rnd_filter(struct rng *r, char *buf, size_t cap)
{
	do {
		buf[0] = 0;
		unsigned n = rnd_below(r, 5);
		for (unsigned i = 0; i < n; i++) {
			if (i)
				strncat(buf, "/", cap - strlen(buf) - 1);
			strncat(buf, rnd_below(r, 3) ? levels[rnd_below(r, NLEVELS)] : "+", cap - strlen(buf) - 1);
		}
		if (!n || rnd_below(r, 4) == 0)
			strncat(buf, n ? "/#" : "#", cap - strlen(buf) - 1);
	} while (!buf[0]);
}

/* Bytes in use on the heap (glibc). Freed chunks parked in glibc's
 * per-thread cache still count as used, so pruning is checked with a slack
 * far below what an unpruned tree would keep. Not meaningful under ASan
 * (its allocator does not report here), which checks leaks instead. */
static size_t heap_in_use(void)
{
	return mallinfo2().uordblks;
}

static void check_pruned(size_t baseline, size_t peak, size_t now)
{
#ifndef __SANITIZE_ADDRESS__
	ck_assert_msg(peak > baseline + 100000, "peak %zu baseline %zu: test too small", peak, baseline);
	ck_assert_msg(now < baseline + 32768, "%zu bytes still held after removing everything", now - baseline);
#else
	(void)baseline;
	(void)peak;
	(void)now;
#endif
}
