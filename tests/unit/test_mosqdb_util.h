/*
 * tests/unit/test_mosqdb_util.h — helpers for test_mosqdb.c: a visitor that
 * copies every record (views die with the callback), lookups, file helpers.
 */
#ifndef TEST_MOSQDB_UTIL_H
#define TEST_MOSQDB_UTIL_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mosqdb.h"

#define COLL_MAX 64

struct blob {
	uint8_t *p;
	size_t len;
};

struct cmsg {
	char *topic, *source_id, *source_user;
	struct blob payload, props;
	uint64_t store_id;
	int64_t expiry_time;
	uint16_t source_mid, source_port;
	uint8_t qos;
	bool retain;
};

struct ccl {
	char *id, *username;
	bool username_suspect;
	int64_t session_expiry_time, disconnect_time;
	uint32_t session_expiry_interval;
	uint16_t last_mid, listener_port;
};

struct csub {
	char *cid, *filter;
	uint8_t qos, options;
	uint32_t identifier;
};

struct ccm {
	char *cid;
	struct cmsg m;
	struct blob props;
	uint16_t mid;
	uint8_t qos, state, direction;
	bool retain, dup;
};

struct coll {
	struct mosqdb_info info;
	struct cmsg ret[COLL_MAX];
	struct ccl cl[COLL_MAX];
	struct csub sub[COLL_MAX];
	struct ccm cm[COLL_MAX];
	size_t n_ret, n_cl, n_sub, n_cm;
	size_t calls, stop_after; /* stop_after 0: never stop */
	int phase;                /* 0 info, 1 retained, 2 clients, 3 subs, 4 client msgs: order check */
};

static char *dupstr(struct mosqdb_bytes b)
{
	char *s = malloc(b.len + 1);
	ck_assert(s);
	if (b.len)
		memcpy(s, b.p, b.len);
	s[b.len] = 0;
	return s;
}

static struct blob dupblob(struct mosqdb_bytes b)
{
	struct blob x = {malloc(b.len + 1), b.len};
	ck_assert(x.p);
	if (b.len)
		memcpy(x.p, b.p, b.len);
	return x;
}

static bool beq(struct blob b, const void *p, size_t len)
{
	return b.len == len && memcmp(b.p, p, len) == 0;
}

static void copy_msg(struct cmsg *d, const struct mosqdb_msg *m)
{
	d->topic = dupstr(m->topic);
	d->source_id = dupstr(m->source_id);
	d->source_user = dupstr(m->source_username);
	d->payload = dupblob(m->payload);
	d->props = dupblob(m->props);
	d->store_id = m->store_id;
	d->expiry_time = m->expiry_time;
	d->source_mid = m->source_mid;
	d->source_port = m->source_port;
	d->qos = m->qos;
	d->retain = m->retain;
}

static void free_msg(struct cmsg *m)
{
	free(m->topic);
	free(m->source_id);
	free(m->source_user);
	free(m->payload.p);
	free(m->props.p);
}

static int coll_step(struct coll *c, int phase)
{
	ck_assert_msg(phase >= c->phase, "callback of phase %d after phase %d", phase, c->phase);
	c->phase = phase;
	c->calls++;
	return c->stop_after && c->calls >= c->stop_after;
}

static int on_info(void *u, const struct mosqdb_info *i)
{
	struct coll *c = u;
	c->info = *i;
	return coll_step(c, 0);
}

static int on_retained(void *u, const struct mosqdb_msg *m)
{
	struct coll *c = u;
	ck_assert_uint_lt(c->n_ret, COLL_MAX);
	copy_msg(&c->ret[c->n_ret++], m);
	return coll_step(c, 1);
}

static int on_client(void *u, const struct mosqdb_client *x)
{
	struct coll *c = u;
	ck_assert_uint_lt(c->n_cl, COLL_MAX);
	struct ccl *d = &c->cl[c->n_cl++];
	d->id = dupstr(x->id);
	d->username = dupstr(x->username);
	d->username_suspect = x->username_suspect;
	d->session_expiry_time = x->session_expiry_time;
	d->disconnect_time = x->disconnect_time;
	d->session_expiry_interval = x->session_expiry_interval;
	d->last_mid = x->last_mid;
	d->listener_port = x->listener_port;
	return coll_step(c, 2);
}

static int on_sub(void *u, const struct mosqdb_sub *x)
{
	struct coll *c = u;
	ck_assert_uint_lt(c->n_sub, COLL_MAX);
	struct csub *d = &c->sub[c->n_sub++];
	d->cid = dupstr(x->client_id);
	d->filter = dupstr(x->filter);
	d->qos = x->qos;
	d->options = x->options;
	d->identifier = x->identifier;
	return coll_step(c, 3);
}

static int on_client_msg(void *u, const struct mosqdb_client_msg *x)
{
	struct coll *c = u;
	ck_assert_uint_lt(c->n_cm, COLL_MAX);
	ck_assert_ptr_nonnull(x->msg);
	struct ccm *d = &c->cm[c->n_cm++];
	d->cid = dupstr(x->client_id);
	copy_msg(&d->m, x->msg);
	d->props = dupblob(x->props);
	d->mid = x->mid;
	d->qos = x->qos;
	d->state = x->state;
	d->direction = x->direction;
	d->retain = x->retain;
	d->dup = x->dup;
	return coll_step(c, 4);
}

static const struct mosqdb_visitor coll_visitor = {on_info, on_retained, on_client, on_sub, on_client_msg};

static void coll_init(struct coll *c)
{
	memset(c, 0, sizeof *c);
}

static void coll_free(struct coll *c)
{
	for (size_t i = 0; i < c->n_ret; i++)
		free_msg(&c->ret[i]);
	for (size_t i = 0; i < c->n_cl; i++) {
		free(c->cl[i].id);
		free(c->cl[i].username);
	}
	for (size_t i = 0; i < c->n_sub; i++) {
		free(c->sub[i].cid);
		free(c->sub[i].filter);
	}
	for (size_t i = 0; i < c->n_cm; i++) {
		free(c->cm[i].cid);
		free_msg(&c->cm[i].m);
		free(c->cm[i].props.p);
	}
	memset(c, 0, sizeof *c);
}

static const struct cmsg *find_ret(const struct coll *c, const char *topic)
{
	for (size_t i = 0; i < c->n_ret; i++)
		if (!strcmp(c->ret[i].topic, topic))
			return &c->ret[i];
	return NULL;
}

static const struct ccl *find_cl(const struct coll *c, const char *id)
{
	for (size_t i = 0; i < c->n_cl; i++)
		if (!strcmp(c->cl[i].id, id))
			return &c->cl[i];
	return NULL;
}

static const struct csub *find_sub(const struct coll *c, const char *cid, const char *filter)
{
	for (size_t i = 0; i < c->n_sub; i++)
		if (!strcmp(c->sub[i].cid, cid) && !strcmp(c->sub[i].filter, filter))
			return &c->sub[i];
	return NULL;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f, "cannot open %s (run from the repository root)", path);
	uint8_t *buf = malloc(1 << 20);
	ck_assert(buf);
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

/* Offsets where a v5/v6 image's chunks end (and the header), 0-terminated. */
static size_t *chunk_bounds(const uint8_t *b, size_t len)
{
	size_t *out = calloc(len / 8 + 2, sizeof *out), n = 0, pos = 23;
	ck_assert(out);
	out[n++] = pos;
	while (pos + 8 <= len) {
		size_t l = (size_t)b[pos + 4] << 24 | (size_t)b[pos + 5] << 16 | (size_t)b[pos + 6] << 8 | b[pos + 7];
		pos += 8 + l;
		if (pos > len)
			break;
		out[n++] = pos;
	}
	return out;
}

#endif
