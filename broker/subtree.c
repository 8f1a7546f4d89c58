/*
 * broker/subtree.c — subscription tree and retained-message tree.
 *
 * Does: store topic filters level by level (literal children in a uthash,
 * '+' and '#' children apart, '$' filters under their own root), keep each
 * node's plain subscriptions in a node list indexed tree-wide by
 * (node, owner) so add/replace/remove are O(levels) whatever the fan-in, and
 * collect matches into the caller's vectors with an explicit stack (no
 * recursion: a 65535-byte topic may have 32768 levels). The retained tree
 * maps topic names to opaque values and is walked by a filter the same way.
 * Does not: deliver, choose a shared-group member, check ACLs or validate
 * filters (callers pass valid filters and topics, shares already split).
 *
 * Key invariants: every node other than the two roots has a subscription,
 * a group or a child (empty nodes are pruned at once); the '$' root never
 * has '+' or '#' children (a filter starting with a wildcard is stored
 * under the plain root), which is v311/v5 MQTT-4.7.2-1. The match stacks
 * are sized when the tree grows deeper, so matching allocates only the
 * result vectors and retain_match never allocates.
 */
#include "subtree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HASH_NONFATAL_OOM 1 /* a failed add leaves (add)->hh.tbl NULL */
#include <uthash.h>

/* ---- shared helpers --------------------------------------------------------- */

/* Grow *v (elements of size el) so that it holds at least need. */
static int grow(void **v, size_t *cap, size_t need, size_t el)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 8;
	while (n < need)
		n *= 2;
	void *p = realloc(*v, n * el);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = n;
	return 0;
}

static size_t count_levels(struct mqtt_str s)
{
	size_t k = 1;
	for (uint32_t i = 0; i < s.len; i++)
		k += s.p[i] == '/';
	return k;
}

/* End of the level that starts at pos (index of '/' or len). */
static uint32_t level_end(struct mqtt_str s, uint32_t pos)
{
	const uint8_t *q = pos < s.len ? memchr(s.p + pos, '/', s.len - pos) : NULL;
	return q ? (uint32_t)(q - s.p) : s.len;
}

/* ---- subscription tree ------------------------------------------------------ */

struct sub_item;

struct snode {
	UT_hash_handle hh; /* in parent->children (literal levels only) */
	struct snode *parent;
	struct snode *children, *plus, *hash;
	struct sub_item *subs; /* plain subscriptions, doubly linked */
	struct sub_group **groups;
	size_t ng, gcap;
	uint32_t keylen;
	char key[];
};

struct sub_key {
	struct snode *node;
	void *owner;
};

struct sub_item {
	struct sub_entry e; /* what sub_match points at */
	struct sub_key key;
	struct sub_item *next, *prev;
	UT_hash_handle hh; /* in subtree->index */
};

struct mstate {
	struct snode *n;
	uint32_t pos; /* start of the next topic level; len + 1 = all consumed */
};

struct subtree {
	struct snode *root, *droot; /* droot: filters whose first level starts with '$' */
	struct sub_item *index;
	size_t count;
	size_t shared; /* of count: shared-group members ($SYS shared_subscriptions/count) */
	struct mstate *stack;
	size_t scap;
	void (*watch)(void *u, struct mqtt_str filter, const char *group, bool added); /* subtree_set_watch */
	void *watch_u;
};

static struct snode *snode_new(const uint8_t *key, uint32_t len, struct snode *parent)
{
	struct snode *n = calloc(1, sizeof *n + len + 1);
	if (!n)
		return NULL;
	n->parent = parent;
	n->keylen = len;
	if (len)
		memcpy(n->key, key, len);
	return n;
}

static bool snode_empty(const struct snode *n)
{
	return !n->subs && !n->ng && !n->children && !n->plus && !n->hash;
}

static void snode_detach(struct snode *n)
{
	struct snode *p = n->parent;
	if (p->plus == n)
		p->plus = NULL;
	else if (p->hash == n)
		p->hash = NULL;
	else
		HASH_DEL(p->children, n);
}

static void group_free(struct sub_group *g)
{
	if (!g)
		return;
	free(g->name);
	free(g->members);
	free(g);
}

/* Free n and what it holds (its children must be gone already). */
static void snode_destroy(struct subtree *t, struct snode *n)
{
	struct sub_item *it = n->subs;
	while (it) {
		struct sub_item *next = it->next;
		HASH_DEL(t->index, it);
		t->count--;
		free(it);
		it = next;
	}
	for (size_t i = 0; i < n->ng; i++) {
		t->count -= n->groups[i]->n;
		t->shared -= n->groups[i]->n;
		group_free(n->groups[i]);
	}
	free(n->groups);
	free(n);
}

/* Remove empty nodes from n upwards (roots stay). */
static void prune(struct subtree *t, struct snode *n)
{
	while (n->parent && snode_empty(n)) {
		struct snode *p = n->parent;
		snode_detach(n);
		snode_destroy(t, n);
		n = p;
	}
}

struct subtree *subtree_new(void)
{
	struct subtree *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->root = snode_new(NULL, 0, NULL);
	t->droot = snode_new(NULL, 0, NULL);
	if (!t->root || !t->droot || grow((void **)&t->stack, &t->scap, 16, sizeof *t->stack)) {
		free(t->root);
		free(t->droot);
		free(t->stack);
		free(t);
		return NULL;
	}
	return t;
}

static void snode_free_all(struct subtree *t, struct snode *n)
{
	/* Post-order without recursion: descend while a child exists. */
	while (n) {
		struct snode *c = n->children ? n->children : n->plus ? n->plus : n->hash;
		if (c) {
			n = c;
			continue;
		}
		struct snode *p = n->parent;
		if (p)
			snode_detach(n);
		snode_destroy(t, n);
		n = p;
	}
}

void subtree_free(struct subtree *t)
{
	if (!t)
		return;
	snode_free_all(t, t->root);
	snode_free_all(t, t->droot);
	free(t->stack);
	free(t);
}

size_t subtree_count(const struct subtree *t)
{
	return t->count;
}

size_t subtree_shared_count(const struct subtree *t)
{
	return t->shared;
}

static struct snode *root_for(struct subtree *t, struct mqtt_str s)
{
	return s.len && s.p[0] == '$' ? t->droot : t->root;
}

/* The child of n for filter level [p, p+len), or NULL; created when create. */
static struct snode *snode_child(struct snode *n, const uint8_t *p, uint32_t len, bool create)
{
	struct snode **slot = NULL, *c = NULL;
	if (len == 1 && p[0] == '+')
		slot = &n->plus;
	else if (len == 1 && p[0] == '#')
		slot = &n->hash;
	if (slot) {
		if (!*slot && create)
			*slot = snode_new(p, len, n);
		return *slot;
	}
	HASH_FIND(hh, n->children, p, len, c);
	if (c || !create)
		return c;
	c = snode_new(p, len, n);
	if (!c)
		return NULL;
	HASH_ADD_KEYPTR(hh, n->children, c->key, c->keylen, c);
	if (!c->hh.tbl) { /* uthash could not allocate */
		free(c);
		return NULL;
	}
	return c;
}

/* Walk filter from its root; NULL if a level is missing (or, when create,
 * could not be allocated: then nothing new is left behind). */
static struct snode *snode_walk(struct subtree *t, struct mqtt_str f, bool create)
{
	struct snode *n = root_for(t, f);
	uint32_t pos = 0;
	for (;;) {
		uint32_t e = level_end(f, pos);
		struct snode *c = snode_child(n, f.p + pos, e - pos, create);
		if (!c) {
			if (create)
				prune(t, n);
			return NULL;
		}
		n = c;
		if (e >= f.len)
			return n;
		pos = e + 1;
	}
}

static struct sub_group *group_find(struct snode *n, const char *name, size_t *idx)
{
	for (size_t i = 0; i < n->ng; i++) {
		if (!strcmp(n->groups[i]->name, name)) {
			if (idx)
				*idx = i;
			return n->groups[i];
		}
	}
	return NULL;
}

static int group_add(struct subtree *t, struct snode *n, const char *name, struct sub_entry se, bool *replaced)
{
	struct sub_group *g = group_find(n, name, NULL);
	if (g) {
		for (size_t i = 0; i < g->n; i++) {
			if (g->members[i].owner == se.owner) {
				g->members[i] = se;
				*replaced = true;
				return 0;
			}
		}
		if (grow((void **)&g->members, &g->cap, g->n + 1, sizeof *g->members))
			return -ENOMEM;
		g->members[g->n++] = se;
		t->count++;
		t->shared++;
		return 0;
	}
	if (grow((void **)&n->groups, &n->gcap, n->ng + 1, sizeof *n->groups))
		return -ENOMEM;
	g = calloc(1, sizeof *g);
	if (!g || !(g->name = strdup(name)) || grow((void **)&g->members, &g->cap, 4, sizeof *g->members)) {
		group_free(g);
		return -ENOMEM;
	}
	g->members[g->n++] = se;
	n->groups[n->ng++] = g;
	t->count++;
	t->shared++;
	return 0;
}

int subtree_add(struct subtree *t, struct mqtt_str filter, const char *group, void *owner, uint8_t options,
		uint32_t sub_id, bool *replaced)
{
	bool dummy;
	if (!replaced)
		replaced = &dummy;
	*replaced = false;
	if (!filter.len)
		return -EINVAL;
	/* Size the match stack for the new depth first: matching must not fail
	 * for lack of stack (see mstate). */
	if (grow((void **)&t->stack, &t->scap, 2 * (count_levels(filter) + 2), sizeof *t->stack))
		return -ENOMEM;
	struct snode *n = snode_walk(t, filter, true);
	if (!n)
		return -ENOMEM;
	struct sub_entry se = {.owner = owner, .options = options, .sub_id = sub_id};
	if (group) {
		bool is_new = !group_find(n, group, NULL);
		int rc = group_add(t, n, group, se, replaced);
		if (rc)
			prune(t, n);
		else if (is_new && t->watch)
			t->watch(t->watch_u, filter, group, true);
		return rc;
	}
	bool was_empty = !n->subs;
	struct sub_key key = {.node = n, .owner = owner};
	struct sub_item *it = NULL;
	HASH_FIND(hh, t->index, &key, sizeof key, it);
	if (it) {
		it->e = se;
		*replaced = true;
		return 0;
	}
	it = calloc(1, sizeof *it);
	if (!it) {
		prune(t, n);
		return -ENOMEM;
	}
	it->e = se;
	it->key = key;
	HASH_ADD(hh, t->index, key, sizeof it->key, it);
	if (!it->hh.tbl) {
		free(it);
		prune(t, n);
		return -ENOMEM;
	}
	it->next = n->subs;
	if (it->next)
		it->next->prev = it;
	n->subs = it;
	t->count++;
	if (was_empty && t->watch)
		t->watch(t->watch_u, filter, NULL, true);
	return 0;
}

struct sub_group *subtree_group(struct subtree *t, struct mqtt_str filter, const char *group)
{
	struct snode *n = filter.len ? snode_walk(t, filter, false) : NULL;
	return n ? group_find(n, group, NULL) : NULL;
}

void subtree_set_watch(struct subtree *t, void (*fn)(void *u, struct mqtt_str filter, const char *group, bool added),
		       void *u)
{
	t->watch = fn;
	t->watch_u = u;
}

bool subtree_remove(struct subtree *t, struct mqtt_str filter, const char *group, void *owner)
{
	if (!filter.len)
		return false;
	struct snode *n = snode_walk(t, filter, false);
	if (!n)
		return false;
	if (group) {
		size_t gi;
		struct sub_group *g = group_find(n, group, &gi);
		if (!g)
			return false;
		size_t i = 0;
		while (i < g->n && g->members[i].owner != owner)
			i++;
		if (i == g->n)
			return false;
		/* Keep member order so a round-robin cursor stays fair. */
		memmove(&g->members[i], &g->members[i + 1], (g->n - i - 1) * sizeof *g->members);
		g->n--;
		t->shared--;
		if (g->cursor > i)
			g->cursor--;
		if (g->cursor >= g->n)
			g->cursor = 0;
		if (!g->n) {
			memmove(&n->groups[gi], &n->groups[gi + 1], (n->ng - gi - 1) * sizeof *n->groups);
			n->ng--;
			group_free(g);
			if (t->watch)
				t->watch(t->watch_u, filter, group, false);
		}
	} else {
		struct sub_key key = {.node = n, .owner = owner};
		struct sub_item *it = NULL;
		HASH_FIND(hh, t->index, &key, sizeof key, it);
		if (!it)
			return false;
		HASH_DEL(t->index, it);
		if (it->prev)
			it->prev->next = it->next;
		else
			n->subs = it->next;
		if (it->next)
			it->next->prev = it->prev;
		free(it);
		if (t->watch && !n->subs)
			t->watch(t->watch_u, filter, NULL, false);
	}
	t->count--;
	prune(t, n);
	return true;
}

static int collect(struct snode *n, struct sub_match *m)
{
	for (struct sub_item *it = n->subs; it; it = it->next) {
		if (grow((void **)&m->subs, &m->cap, m->n + 1, sizeof *m->subs))
			return -ENOMEM;
		m->subs[m->n++] = &it->e;
	}
	if (n->ng) {
		if (grow((void **)&m->groups, &m->gcap, m->ng + n->ng, sizeof *m->groups))
			return -ENOMEM;
		for (size_t i = 0; i < n->ng; i++)
			m->groups[m->ng++] = n->groups[i];
	}
	return 0;
}

int subtree_match(struct subtree *t, struct mqtt_str topic, struct sub_match *m)
{
	m->n = 0;
	m->ng = 0;
	if (!topic.len)
		return 0;
	size_t sp = 0;
	t->stack[sp++] = (struct mstate){root_for(t, topic), 0};
	while (sp) {
		struct mstate st = t->stack[--sp];
		struct snode *n = st.n;
		int rc = 0;
		if (st.pos > topic.len) {
			/* All levels consumed: this filter, and "x/#" for topic "x". */
			rc = collect(n, m);
			if (!rc && n->hash)
				rc = collect(n->hash, m);
			if (rc)
				return rc;
			continue;
		}
		if (n->hash && (rc = collect(n->hash, m)))
			return rc;
		uint32_t e = level_end(topic, st.pos);
		/* Each push goes one level deeper and a level has at most one
		 * pending sibling: the stack never exceeds 2 * (depth + 2). */
		if (n->plus)
			t->stack[sp++] = (struct mstate){n->plus, e + 1};
		if (n->children) {
			struct snode *c = n->children;
			uint32_t len = e - st.pos;
			if (c->hh.tbl->num_items == 1) /* an only child: compare, do not hash */
				c = c->keylen == len && !memcmp(c->key, topic.p + st.pos, len) ? c : NULL;
			else
				HASH_FIND(hh, n->children, topic.p + st.pos, len, c);
			if (c)
				t->stack[sp++] = (struct mstate){c, e + 1};
		}
	}
	return 0;
}

void sub_match_free(struct sub_match *m)
{
	if (!m)
		return;
	free(m->subs);
	free(m->groups);
	*m = (struct sub_match){0};
}

/* ---- retained messages ------------------------------------------------------ */

struct rnode {
	UT_hash_handle hh;
	struct rnode *parent, *children;
	void *value;
	uint32_t keylen;
	char key[];
};

enum { R_SIBLINGS = 1, R_ALL = 2 };

struct rstate {
	struct rnode *n;
	uint32_t pos;  /* start of the next filter level; len + 1 = all consumed */
	uint32_t flags; /* R_SIBLINGS: also walk n's later siblings; R_ALL: whole subtree */
};

struct retain_tree {
	struct rnode *root, *droot; /* droot: topics starting with '$' */
	size_t count;
	struct rstate *stack;
	size_t scap;
};

static struct rnode *rnode_new(const uint8_t *key, uint32_t len, struct rnode *parent)
{
	struct rnode *n = calloc(1, sizeof *n + len + 1);
	if (!n)
		return NULL;
	n->parent = parent;
	n->keylen = len;
	if (len)
		memcpy(n->key, key, len);
	return n;
}

static void rprune(struct rnode *n)
{
	while (n->parent && !n->value && !n->children) {
		struct rnode *p = n->parent;
		HASH_DEL(p->children, n);
		free(n);
		n = p;
	}
}

struct retain_tree *retain_new(void)
{
	struct retain_tree *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->root = rnode_new(NULL, 0, NULL);
	r->droot = rnode_new(NULL, 0, NULL);
	if (!r->root || !r->droot || grow((void **)&r->stack, &r->scap, 16, sizeof *r->stack)) {
		free(r->root);
		free(r->droot);
		free(r->stack);
		free(r);
		return NULL;
	}
	return r;
}

static void rnode_free_all(struct rnode *n, void (*drop)(void *value))
{
	while (n) {
		if (n->children) {
			n = n->children;
			continue;
		}
		struct rnode *p = n->parent;
		if (p)
			HASH_DEL(p->children, n);
		if (n->value && drop)
			drop(n->value);
		free(n);
		n = p;
	}
}

void retain_free(struct retain_tree *r, void (*drop)(void *value))
{
	if (!r)
		return;
	rnode_free_all(r->root, drop);
	rnode_free_all(r->droot, drop);
	free(r->stack);
	free(r);
}

size_t retain_count(const struct retain_tree *r)
{
	return r->count;
}

static struct rnode *rnode_walk(struct retain_tree *r, struct mqtt_str topic, bool create)
{
	struct rnode *n = topic.p[0] == '$' ? r->droot : r->root;
	uint32_t pos = 0;
	for (;;) {
		uint32_t e = level_end(topic, pos);
		struct rnode *c = NULL;
		HASH_FIND(hh, n->children, topic.p + pos, e - pos, c);
		if (!c) {
			if (!create || !(c = rnode_new(topic.p + pos, e - pos, n))) {
				if (create)
					rprune(n);
				return NULL;
			}
			HASH_ADD_KEYPTR(hh, n->children, c->key, c->keylen, c);
			if (!c->hh.tbl) {
				free(c);
				rprune(n);
				return NULL;
			}
		}
		n = c;
		if (e >= topic.len)
			return n;
		pos = e + 1;
	}
}

void *retain_set(struct retain_tree *r, struct mqtt_str topic, void *value, int *err)
{
	if (err)
		*err = 0;
	if (!topic.len)
		return NULL;
	if (!value) {
		struct rnode *n = rnode_walk(r, topic, false);
		if (!n || !n->value)
			return NULL;
		void *old = n->value;
		n->value = NULL;
		r->count--;
		rprune(n);
		return old;
	}
	struct rnode *n = NULL;
	if (grow((void **)&r->stack, &r->scap, 2 * (count_levels(topic) + 2), sizeof *r->stack) ||
	    !(n = rnode_walk(r, topic, true))) {
		if (err)
			*err = -ENOMEM;
		return NULL;
	}
	void *old = n->value;
	n->value = value;
	if (!old)
		r->count++;
	return old;
}

void *retain_get(struct retain_tree *r, struct mqtt_str topic)
{
	if (!topic.len)
		return NULL;
	struct rnode *n = rnode_walk(r, topic, false);
	return n ? n->value : NULL;
}

void retain_match(struct retain_tree *r, struct mqtt_str filter, bool (*fn)(void *value, void *ctx), void *ctx)
{
	if (!filter.len)
		return;
	/* A filter starting with '+' or '#' walks the plain root only, so
	 * '$' topics are never reached (v311/v5 MQTT-4.7.2-1). */
	size_t sp = 0;
	r->stack[sp++] = (struct rstate){filter.p[0] == '$' ? r->droot : r->root, 0, 0};
	/* Stack bound: each state pushes at most one sibling continuation (same
	 * depth) and one child (one level deeper), and the tree is never deeper
	 * than the deepest topic set, for which retain_set sized the stack. */
	while (sp) {
		struct rstate st = r->stack[--sp];
		struct rnode *n = st.n;
		if ((st.flags & R_SIBLINGS) && n->hh.next)
			r->stack[sp++] = (struct rstate){n->hh.next, st.pos, st.flags};
		if (st.flags & R_ALL) {
			if (n->value && !fn(n->value, ctx))
				return;
			if (n->children)
				r->stack[sp++] = (struct rstate){n->children, 0, R_ALL | R_SIBLINGS};
			continue;
		}
		if (st.pos > filter.len) {
			if (n->value && !fn(n->value, ctx))
				return;
			continue;
		}
		uint32_t e = level_end(filter, st.pos);
		const uint8_t *lv = filter.p + st.pos;
		uint32_t len = e - st.pos;
		if (len == 1 && lv[0] == '#') {
			/* "a/#" matches "a" itself and everything below it. */
			if (n->value && !fn(n->value, ctx))
				return;
			if (n->children)
				r->stack[sp++] = (struct rstate){n->children, 0, R_ALL | R_SIBLINGS};
		} else if (len == 1 && lv[0] == '+') {
			if (n->children)
				r->stack[sp++] = (struct rstate){n->children, e + 1, R_SIBLINGS};
		} else {
			struct rnode *c = NULL;
			HASH_FIND(hh, n->children, lv, len, c);
			if (c)
				r->stack[sp++] = (struct rstate){c, e + 1, 0};
		}
	}
}
