/*
 * tests/unit/test_subtree_oom.h — allocation-failure tests of test_subtree.c
 * (included last by it; split for the 800-line limit).
 */
/* ---- allocation failures ---------------------------------------------------
 * subtree.c is compiled a second time into this file with its allocator
 * calls (and uthash's, which expand to them) routed through fi_*, and its
 * public names prefixed fi_, so that the N-th allocation can fail. The
 * countdown is the one mutable static of this test: allocators take no
 * context. Every failing call must report -ENOMEM and change nothing. */

static long fi_countdown = -1; /* allocations left before one fails; -1 = never */

static bool fi_fail(void)
{
	if (fi_countdown < 0)
		return false;
	return fi_countdown-- == 0;
}
static void *fi_malloc(size_t n)
{
	return fi_fail() ? NULL : malloc(n);
}
static void *fi_calloc(size_t n, size_t s)
{
	return fi_fail() ? NULL : calloc(n, s);
}
static void *fi_realloc(void *p, size_t n)
{
	return fi_fail() ? NULL : realloc(p, n);
}
static char *fi_strdup(const char *s)
{
	return fi_fail() ? NULL : strdup(s);
}

#define malloc fi_malloc
#define calloc fi_calloc
#define realloc fi_realloc
#define strdup fi_strdup
#define subtree_new fi_subtree_new
#define subtree_free fi_subtree_free
#define subtree_add fi_subtree_add
#define subtree_remove fi_subtree_remove
#define subtree_match fi_subtree_match
#define sub_match_free fi_sub_match_free
#define subtree_count fi_subtree_count
#define subtree_shared_count fi_subtree_shared_count
#define subtree_set_watch fi_subtree_set_watch
#define subtree_group fi_subtree_group
#define retain_new fi_retain_new
#define retain_free fi_retain_free
#define retain_set fi_retain_set
#define retain_get fi_retain_get
#define retain_match fi_retain_match
#define retain_count fi_retain_count
#include "../../broker/subtree.c"
#undef malloc
#undef calloc
#undef realloc
#undef strdup

static const char *const fi_topics[] = {"a", "a/b", "a/b/c", "x/y", "$SYS/x", "n/e/w/d/e/e/p", "q/r"};
#define FI_NT (sizeof fi_topics / sizeof fi_topics[0])

/* Number of plain + grouped matches per sample topic. */
static void fi_snapshot(struct subtree *t, size_t out[FI_NT][2])
{
	struct sub_match m = {0};
	for (size_t i = 0; i < FI_NT; i++) {
		ck_assert_int_eq(subtree_match(t, S(fi_topics[i]), &m), 0);
		out[i][0] = m.n;
		size_t members = 0;
		for (size_t g = 0; g < m.ng; g++)
			members += m.groups[g]->n;
		out[i][1] = members;
	}
	sub_match_free(&m);
}

START_TEST(subtree_enomem_changes_nothing)
{
	static const struct {
		const char *filter, *group;
		int owner;
		bool allocates;
	} adds[] = {
		{"n/e/w/d/e/e/p", NULL, 1, true}, /* new deep branch */
		{"a/+", NULL, 9, true},           /* new sub on an existing node */
		{"a/b", NULL, 2, true},           /* second owner on an existing node */
		{"q/#", "g", 1, true},            /* new group on a new node */
		{"a/b", "g", 3, false},           /* new members while the array has room (8) */
		{"a/b", "g", 4, false},
		{"a/b", "g", 5, false},
		{"a/b", "g", 6, false},
		{"a/b", "g", 7, false},
		{"a/b", "g", 8, false},
		{"a/b", "g", 9, false},
		{"a/b", "g", 10, true},           /* ninth member: the array grows */
		{"a/b", "h", 3, true},            /* new group on an existing node */
		{"+/+/+", NULL, 4, true},
		{"$SYS/#", NULL, 5, true},
	};
	struct subtree *t = subtree_new();
	ck_assert_ptr_nonnull(t);
	/* a populated tree to fail into */
	const char *base[] = {"a", "a/b", "a/+", "#", "x/y", "+/b/#", "$SYS/x"};
	for (int i = 0; i < 7; i++)
		ck_assert_int_eq(subtree_add(t, S(base[i]), NULL, OWNER(i), 0, 0, NULL), 0);
	ck_assert_int_eq(subtree_add(t, S("a/b"), "g", OWNER(1), 0, 0, NULL), 0);
	for (size_t k = 0; k < sizeof adds / sizeof adds[0]; k++) {
		size_t before[FI_NT][2], after[FI_NT][2];
		size_t count = subtree_count(t);
		fi_snapshot(t, before);
		int failures = 0;
		for (long n = 0;; n++) {
			bool replaced = true;
			fi_countdown = n;
			int rc = subtree_add(t, S(adds[k].filter), adds[k].group, OWNER(adds[k].owner), 1, 0, &replaced);
			bool hit = fi_countdown < 0; /* the n-th allocation was refused */
			fi_countdown = -1;
			if (rc == 0) {
				ck_assert_msg(!hit, "%s: success although allocation %ld failed", adds[k].filter, n);
				ck_assert(!replaced);
				break;
			}
			ck_assert_int_eq(rc, -ENOMEM);
			ck_assert(hit);
			failures++;
			ck_assert_uint_eq(subtree_count(t), count);
			fi_snapshot(t, after);
			ck_assert(!memcmp(before, after, sizeof before));
			ck_assert(!subtree_remove(t, S(adds[k].filter), adds[k].group, OWNER(adds[k].owner)));
		}
		ck_assert_msg((failures > 0) == adds[k].allocates, "%s: %d failures", adds[k].filter, failures);
		ck_assert_uint_eq(subtree_count(t), count + 1);
	}
	/* match: the vectors fail to grow, then succeed */
	struct sub_match m = {0};
	int rc;
	long n = 0;
	do {
		fi_countdown = n++;
		rc = subtree_match(t, S("a/b"), &m);
		fi_countdown = -1;
		ck_assert(rc == 0 || rc == -ENOMEM);
	} while (rc);
	ck_assert_int_gt(n, 1);
	ck_assert_uint_eq(m.n, 6); /* a/b, a/+ (x2), #, +/b/#, a/b owner 2 */
	ck_assert_uint_eq(m.ng, 2);
	for (size_t i = 0; i < m.ng; i++)
		ck_assert_uint_eq(m.groups[i]->n, strcmp(m.groups[i]->name, "g") ? 1 : 9);
	sub_match_free(&m);
	subtree_free(t);
}
END_TEST

START_TEST(retain_enomem_changes_nothing)
{
	struct retain_tree *r = retain_new();
	int v[3], err = 0, hits = 0;
	ck_assert_ptr_nonnull(r);
	ck_assert_ptr_null(retain_set(r, S("a/b"), &v[0], &err));
	const char *topics[] = {"a/b/c/d/e/f/g/h/i/j/k", "a/c", "z", "$SYS/q"};
	for (int k = 0; k < 4; k++) {
		int failures = 0;
		for (long n = 0;; n++) {
			fi_countdown = n;
			err = 1;
			void *old = retain_set(r, S(topics[k]), &v[1], &err);
			bool hit = fi_countdown < 0;
			fi_countdown = -1;
			ck_assert_ptr_null(old);
			if (!err) {
				ck_assert(!hit);
				break;
			}
			ck_assert_int_eq(err, -ENOMEM);
			failures++;
			ck_assert_uint_eq(retain_count(r), (size_t)k + 1);
			ck_assert_ptr_null(retain_get(r, S(topics[k])));
			hits = 0;
			retain_match(r, S("#"), count_cb, &hits);
			ck_assert_int_eq(hits, k + 1); /* a/b and the topics set so far (none starts with '$') */
		}
		ck_assert_int_gt(failures, 0);
		ck_assert_ptr_eq(retain_get(r, S(topics[k])), &v[1]);
	}
	/* replacing a value allocates nothing, so it cannot fail */
	fi_countdown = 0;
	ck_assert_ptr_eq(retain_set(r, S("a/b"), &v[2], &err), &v[0]);
	ck_assert_int_eq(err, 0);
	fi_countdown = -1;
	retain_free(r, NULL);
}
END_TEST
