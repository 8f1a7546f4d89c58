/*
 * broker/store/mosqdb.c — reads mosquitto's persistence file (mosquitto.db).
 *
 * The format, as mosquitto 1.x / 2.0 write it (learnt from mosquitto's
 * persist_*.c, written afresh here):
 *   header   15-byte magic "\0\xb5\0mosquitto db", a 4-byte CRC field that
 *            is always 0 and never checked, the db version (u32 big-endian).
 *   chunks   v5/v6: u32 type + u32 length (big-endian), then the body;
 *            v2-v4: u16 type + u32 length, and bodies made of u16-prefixed
 *            strings. Integers are big-endian, except the 64-bit fields
 *            (message ids, last_db_id, expiry times), written in the
 *            writer's order: little-endian on every machine this runs on.
 *   v5/v6 bodies start with a fixed C struct (with its padding) followed by
 *   the strings, then, for stored and client messages, a v5 property block
 *   filling the rest of the chunk.
 * mosquitto itself ignores the declared length of fixed-size chunks; here a
 * v5/v6 chunk must match its length exactly. v2-v4 chunks are read as
 * mosquitto reads them, field by field (their lengths were not kept exact).
 *
 * Not done here: anything that needs the clock (expired messages and
 * sessions), topic or UTF-8 validation of names: mosqdb_import.c does that.
 * Invariant: every read is bounds-checked against the chunk, the whole file
 * is validated before the first callback, and the file is never written.
 */
#include "mosqdb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mqtt.h"

static const uint8_t magic[15] = {0x00, 0xB5, 0x00, 'm', 'o', 's', 'q', 'u', 'i', 't', 't', 'o', ' ', 'd', 'b'};
#define HEADER_LEN 23 /* magic, crc, version */
#define MAX_PAYLOAD 268435455u

struct store_ref {
	uint64_t id;
	size_t off, end; /* body of its chunk */
};

struct rd {
	const uint8_t *buf;
	size_t len;
	uint32_t version;
	char msg[512];
	bool failed;
	struct store_ref *stores;
	size_t n_stores, cap_stores;
	struct mosqdb_info info;
	/* mosquitto 2.0's client writer, for the user name pattern */
	size_t prev_ulen;
	struct mosqdb_bytes last_user;
};

static int corrupt(struct rd *r, size_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int corrupt(struct rd *r, size_t off, const char *fmt, ...)
{
	if (!r->failed) {
		va_list ap;
		int n = snprintf(r->msg, sizeof r->msg, "offset %zu: ", off);
		va_start(ap, fmt);
		vsnprintf(r->msg + n, sizeof r->msg - (size_t)n, fmt, ap);
		va_end(ap);
		r->failed = true;
	}
	return MOSQDB_ECORRUPT;
}

/* ---- a bounds-checked cursor over one chunk -------------------------------- */

struct cur {
	struct rd *r;
	size_t off, end;
	const char *chunk;
	bool ok;
};

static const uint8_t *take(struct cur *c, size_t n, const char *what)
{
	if (!c->ok)
		return NULL;
	if (c->end - c->off < n) {
		corrupt(c->r, c->off, "%s chunk: %s needs %zu bytes, %zu left", c->chunk, what, n, c->end - c->off);
		c->ok = false;
		return NULL;
	}
	const uint8_t *p = c->r->buf + c->off;
	c->off += n;
	return p;
}

static uint8_t get8(struct cur *c, const char *what)
{
	const uint8_t *p = take(c, 1, what);
	return p ? p[0] : 0;
}

static uint16_t get16(struct cur *c, const char *what)
{
	const uint8_t *p = take(c, 2, what);
	return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

static uint32_t get32(struct cur *c, const char *what)
{
	const uint8_t *p = take(c, 4, what);
	return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

static uint64_t get64le(struct cur *c, const char *what)
{
	const uint8_t *p = take(c, 8, what);
	uint64_t v = 0;
	for (int i = 7; p && i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static struct mosqdb_bytes getbytes(struct cur *c, size_t n, const char *what)
{
	struct mosqdb_bytes b = {NULL, 0};
	const uint8_t *p = take(c, n, what);
	if (p && n) {
		b.p = p;
		b.len = n;
	}
	return b;
}

/* v2-v4: a u16 length and the bytes. */
static struct mosqdb_bytes getstr16(struct cur *c, const char *what)
{
	uint16_t n = get16(c, what);
	return getbytes(c, n, what);
}

/* The rest of a v5/v6 chunk: a property block (with its length prefix) that
 * must fill it exactly. */
static struct mosqdb_bytes getprops(struct cur *c)
{
	struct mosqdb_bytes b = {NULL, 0};
	size_t avail = c->end - c->off;
	if (!c->ok || avail == 0)
		return b;
	struct mqtt_props pr;
	size_t used = 0;
	int rc = mqtt_props_decode(c->r->buf + c->off, avail, MQTT_PCTX_PUBLISH, &pr, &used);
	if (rc != MQTT_OK) {
		corrupt(c->r, c->off, "%s chunk: invalid property block (reason 0x%02x)", c->chunk, rc);
		c->ok = false;
		return b;
	}
	if (used != avail) {
		corrupt(c->r, c->off, "%s chunk: %zu bytes after the property block", c->chunk, avail - used);
		c->ok = false;
		return b;
	}
	c->off += used;
	if (pr.raw.len) {
		b.p = pr.raw.p;
		b.len = pr.raw.len;
	}
	return b;
}

static bool check(struct cur *c, bool cond, const char *fmt, unsigned v)
{
	if (c->ok && !cond) {
		char what[96];
		snprintf(what, sizeof what, fmt, v);
		corrupt(c->r, c->off, "%s chunk: %s", c->chunk, what);
		c->ok = false;
	}
	return c->ok;
}

static bool v56(const struct rd *r)
{
	return r->version >= 5;
}

/* ---- chunk bodies ------------------------------------------------------------ */

static void parse_cfg(struct cur *c, struct mosqdb_info *info)
{
	uint8_t dbid_size;
	if (v56(c->r)) {
		info->last_db_id = get64le(c, "last_db_id");
		info->shutdown = get8(c, "shutdown") != 0;
		dbid_size = get8(c, "dbid_size");
		take(c, 6, "padding");
	} else {
		info->shutdown = get8(c, "shutdown") != 0;
		dbid_size = get8(c, "dbid_size");
		info->last_db_id = get64le(c, "last_db_id");
	}
	check(c, dbid_size == 8, "message id size %u, only 8 is known", dbid_size);
}

static void parse_msg(struct cur *c, struct mosqdb_msg *m)
{
	memset(m, 0, sizeof *m);
	m->store_id = get64le(c, "store id");
	if (v56(c->r)) {
		m->expiry_time = (int64_t)get64le(c, "expiry time");
		uint32_t payloadlen = get32(c, "payload length");
		m->source_mid = get16(c, "source mid");
		uint16_t idlen = get16(c, "source id length");
		uint16_t ulen = get16(c, "source username length");
		uint16_t tlen = get16(c, "topic length");
		m->source_port = get16(c, "source port");
		m->qos = get8(c, "qos");
		m->retain = get8(c, "retain") != 0;
		if (!check(c, payloadlen <= MAX_PAYLOAD, "payload length %u over the MQTT maximum", payloadlen))
			return;
		m->source_id = getbytes(c, idlen, "source id");
		m->source_username = getbytes(c, ulen, "source username");
		m->topic = getbytes(c, tlen, "topic");
		m->payload = getbytes(c, payloadlen, "payload");
		m->props = getprops(c);
	} else {
		m->source_id = getstr16(c, "source id");
		if (c->r->version == 4) {
			m->source_username = getstr16(c, "source username");
			m->source_port = get16(c, "source port");
		}
		m->source_mid = get16(c, "source mid");
		get16(c, "mid");
		m->topic = getstr16(c, "topic");
		m->qos = get8(c, "qos");
		m->retain = get8(c, "retain") != 0;
		uint32_t payloadlen = get32(c, "payload length");
		if (!check(c, payloadlen <= MAX_PAYLOAD, "payload length %u over the MQTT maximum", payloadlen))
			return;
		m->payload = getbytes(c, payloadlen, "payload");
	}
	check(c, m->qos <= 2, "qos %u", m->qos);
	check(c, m->topic.len > 0, "empty topic (length %u)", 0);
}

static void parse_client(struct cur *c, struct mosqdb_client *cl)
{
	memset(cl, 0, sizeof *cl);
	if (v56(c->r)) {
		cl->session_expiry_time = (int64_t)get64le(c, "session expiry time");
		cl->session_expiry_interval = get32(c, "session expiry interval");
		cl->last_mid = get16(c, "last mid");
		uint16_t idlen = get16(c, "client id length");
		uint16_t ulen = 0;
		if (c->r->version == 6) {
			cl->listener_port = get16(c, "listener port");
			ulen = get16(c, "username length");
			take(c, 4, "padding");
		}
		cl->id = getbytes(c, idlen, "client id");
		cl->username = getbytes(c, ulen, "username");
	} else {
		cl->id = getstr16(c, "client id");
		cl->last_mid = get16(c, "last mid");
		if (c->r->version != 2)
			cl->disconnect_time = (int64_t)get64le(c, "disconnect time");
		cl->session_expiry_interval = UINT32_MAX; /* mosquitto 1.x: persistent sessions never expired */
	}
}

static void parse_client_msg(struct cur *c, struct mosqdb_client_msg *cm, uint64_t *store_id)
{
	uint8_t rd;
	memset(cm, 0, sizeof *cm);
	if (v56(c->r)) {
		*store_id = get64le(c, "store id");
		cm->mid = get16(c, "mid");
		uint16_t idlen = get16(c, "client id length");
		cm->qos = get8(c, "qos");
		cm->state = get8(c, "state");
		rd = get8(c, "retain/dup");
		cm->direction = get8(c, "direction");
		cm->client_id = getbytes(c, idlen, "client id");
		cm->props = getprops(c);
		cm->retain = (rd & 0xF0) != 0;
		cm->dup = (rd & 0x0F) != 0;
	} else {
		cm->client_id = getstr16(c, "client id");
		*store_id = get64le(c, "store id");
		cm->mid = get16(c, "mid");
		cm->qos = get8(c, "qos");
		cm->retain = get8(c, "retain") != 0;
		cm->direction = get8(c, "direction");
		cm->state = get8(c, "state");
		cm->dup = get8(c, "dup") != 0;
	}
	check(c, cm->qos <= 2, "qos %u", cm->qos);
	check(c, cm->direction <= MOSQDB_DIR_OUT, "direction %u", cm->direction);
	check(c, cm->state <= MOSQDB_MS_QUEUED, "message state %u", cm->state);
}

static void parse_sub(struct cur *c, struct mosqdb_sub *s)
{
	memset(s, 0, sizeof *s);
	if (v56(c->r)) {
		s->identifier = get32(c, "identifier");
		uint16_t idlen = get16(c, "client id length");
		uint16_t tlen = get16(c, "topic length");
		s->qos = get8(c, "qos");
		s->options = get8(c, "options");
		take(c, 2, "padding");
		s->client_id = getbytes(c, idlen, "client id");
		s->filter = getbytes(c, tlen, "topic filter");
	} else {
		s->client_id = getstr16(c, "client id");
		s->filter = getstr16(c, "topic filter");
		s->qos = get8(c, "qos");
	}
	check(c, s->qos <= 2, "qos %u", s->qos);
	check(c, s->identifier <= 268435455u, "subscription identifier %u", s->identifier);
}

/* ---- chunks -------------------------------------------------------------------- */

struct chunk {
	uint32_t type;
	size_t hdr, body, end; /* end: of the declared length (v2-v4: of the file for known types) */
};

static const char *chunk_name(uint32_t t)
{
	static const char *const names[] = {"?", "CFG", "MSG_STORE", "CLIENT_MSG", "RETAIN", "SUB", "CLIENT"};
	return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

static bool known(uint32_t t)
{
	return t >= MOSQDB_CHUNK_CFG && t <= MOSQDB_CHUNK_CLIENT;
}

/* 1: *ch filled; 0: end of file; <0: error. */
static int chunk_next(struct rd *r, size_t pos, struct chunk *ch)
{
	size_t left = r->len - pos;
	size_t hl = v56(r) ? 8 : 6;
	uint32_t len;
	if (left == 0)
		return 0;
	if (left < hl)
		return corrupt(r, pos, "truncated chunk header (%zu of %zu bytes)", left, hl);
	const uint8_t *p = r->buf + pos;
	if (v56(r)) {
		ch->type = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		p += 4;
	} else {
		ch->type = (uint32_t)(p[0] << 8 | p[1]);
		p += 2;
	}
	len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	ch->hdr = pos;
	ch->body = pos + hl;
	left -= hl;
	if (!v56(r) && known(ch->type)) {
		ch->end = r->len;
		return 1;
	}
	if (len > left)
		return corrupt(r, pos, "%s chunk (type %u) of %u bytes, only %zu left in the file", chunk_name(ch->type),
			       ch->type, len, left);
	ch->end = ch->body + len;
	return 1;
}

/* Where the next chunk starts, once c has parsed ch. v5/v6: the contents
 * must fill the declared length exactly. */
static int chunk_done(struct rd *r, const struct chunk *ch, const struct cur *c, size_t *next)
{
	if (!c->ok)
		return MOSQDB_ECORRUPT;
	if (v56(r) && c->off != ch->end)
		return corrupt(r, ch->hdr, "%s chunk declares %zu bytes, its contents take %zu", c->chunk,
			       ch->end - ch->body, c->off - ch->body);
	*next = known(ch->type) ? c->off : ch->end;
	return MOSQDB_OK;
}

static struct cur cur_of(struct rd *r, const struct chunk *ch)
{
	struct cur c = {r, ch->body, ch->end, chunk_name(ch->type), true};
	return c;
}

static int store_cmp(const void *a, const void *b)
{
	const struct store_ref *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static const struct store_ref *store_find(const struct rd *r, uint64_t id)
{
	struct store_ref key = {id, 0, 0};
	return r->stores ? bsearch(&key, r->stores, r->n_stores, sizeof key, store_cmp) : NULL;
}

static void store_load(struct rd *r, const struct store_ref *ref, struct mosqdb_msg *m)
{
	struct cur c = {r, ref->off, ref->end, "MSG_STORE", true};
	parse_msg(&c, m);
}

union rec {
	struct mosqdb_info i;
	struct mosqdb_msg m;
	struct mosqdb_client cl;
	struct mosqdb_sub s;
	struct mosqdb_client_msg cm;
};

/* Parse a chunk's body as its type says; unknown types are skipped.
 * *sid: the message a RETAIN or CLIENT_MSG chunk refers to. */
static void parse_chunk(struct cur *c, const struct chunk *ch, union rec *u, uint64_t *sid)
{
	*sid = 0;
	switch (ch->type) {
	case MOSQDB_CHUNK_CFG:
		parse_cfg(c, &u->i);
		break;
	case MOSQDB_CHUNK_MSG_STORE:
		parse_msg(c, &u->m);
		break;
	case MOSQDB_CHUNK_CLIENT:
		parse_client(c, &u->cl);
		break;
	case MOSQDB_CHUNK_SUB:
		parse_sub(c, &u->s);
		break;
	case MOSQDB_CHUNK_CLIENT_MSG:
		parse_client_msg(c, &u->cm, sid);
		break;
	case MOSQDB_CHUNK_RETAIN:
		*sid = get64le(c, "store id");
		break;
	default:
		c->off = ch->end;
		break;
	}
}

/* Pass 1, per chunk: count, and index the stored messages. */
static int index_chunk(struct rd *r, const struct chunk *ch, const struct cur *c, const union rec *u)
{
	struct mosqdb_info *in = &r->info;
	switch (ch->type) {
	case MOSQDB_CHUNK_CFG:
		in->last_db_id = u->i.last_db_id;
		in->shutdown = u->i.shutdown;
		break;
	case MOSQDB_CHUNK_MSG_STORE:
		if (r->n_stores == r->cap_stores) {
			size_t cap = r->cap_stores ? r->cap_stores * 2 : 64;
			struct store_ref *ns = realloc(r->stores, cap * sizeof *ns);
			if (!ns)
				return MOSQDB_ENOMEM;
			r->stores = ns;
			r->cap_stores = cap;
		}
		r->stores[r->n_stores++] = (struct store_ref){u->m.store_id, ch->body, c->off};
		break;
	case MOSQDB_CHUNK_CLIENT:
		*(u->cl.id.len ? &in->n_clients : &in->n_empty) += 1;
		break;
	case MOSQDB_CHUNK_SUB:
		*(u->s.client_id.len && u->s.filter.len ? &in->n_subs : &in->n_empty) += 1;
		break;
	case MOSQDB_CHUNK_CLIENT_MSG:
		in->n_empty += u->cm.client_id.len == 0;
		break;
	case MOSQDB_CHUNK_RETAIN:
		break;
	default:
		in->n_unknown++;
		break;
	}
	return MOSQDB_OK;
}

/* Was this user name written by mosquitto 2.0's writer for a client that had
 * none? It then reuses the previous chunk's length field byte-swapped and
 * copies from the last real user name (its NUL and whatever follows). */
static bool username_stale(struct rd *r, struct mosqdb_bytes u)
{
	size_t prev = r->prev_ulen, lu = r->last_user.len;
	if (u.len == 0 || prev == 0 || lu == 0)
		return false;
	if (u.len != (((prev & 0xFF) << 8) | (prev >> 8)))
		return false;
	size_t n = u.len < lu ? u.len : lu;
	if (memcmp(u.p, r->last_user.p, n) != 0)
		return false;
	return u.len <= lu || u.p[lu] == 0;
}

/* Pass 2, per record of the kind being walked. v NULL: only count what
 * resolves (before the info callback). Returns the callback's value. */
static int visit(struct rd *r, uint32_t type, union rec *u, uint64_t sid, const struct mosqdb_visitor *v,
		 void *user)
{
	const struct store_ref *ref;
	struct mosqdb_msg m;
	switch (type) {
	case MOSQDB_CHUNK_RETAIN:
		if (!(ref = store_find(r, sid))) {
			r->info.n_dangling += !v;
			return 0;
		}
		if (!v) {
			r->info.n_retained++;
			return 0;
		}
		store_load(r, ref, &m);
		return v->retained ? v->retained(user, &m) : 0;
	case MOSQDB_CHUNK_CLIENT: {
		struct mosqdb_client *cl = &u->cl;
		if (username_stale(r, cl->username) || (cl->username.len && memchr(cl->username.p, 0, cl->username.len)))
			cl->username_suspect = true; /* a user name cannot hold U+0000 either */
		else if (cl->username.len)
			r->last_user = cl->username;
		r->prev_ulen = cl->username.len;
		if (cl->username_suspect)
			cl->username = (struct mosqdb_bytes){NULL, 0};
		return cl->id.len && v && v->client ? v->client(user, cl) : 0;
	}
	case MOSQDB_CHUNK_SUB:
		return u->s.client_id.len && u->s.filter.len && v && v->sub ? v->sub(user, &u->s) : 0;
	case MOSQDB_CHUNK_CLIENT_MSG:
		if (!u->cm.client_id.len)
			return 0;
		if (!(ref = store_find(r, sid))) {
			r->info.n_dangling += !v;
			return 0;
		}
		if (!v) {
			r->info.n_client_msgs++;
			return 0;
		}
		store_load(r, ref, &m);
		u->cm.msg = &m;
		return v->client_msg ? v->client_msg(user, &u->cm) : 0;
	}
	return 0;
}

/* Walk every chunk: pass 1 (type 0) validates and indexes; pass 2 visits the
 * records of one type. */
static int walk(struct rd *r, uint32_t type, const struct mosqdb_visitor *v, void *user)
{
	size_t pos = HEADER_LEN;
	struct chunk ch = {0, 0, 0, 0};
	int rc;
	while ((rc = chunk_next(r, pos, &ch)) == 1) {
		struct cur c = cur_of(r, &ch);
		union rec u;
		uint64_t sid;
		if (type != 0 && ch.type != type && v56(r))
			c.off = ch.end; /* validated already; v2-v4 chunks must be parsed to find their end */
		else
			parse_chunk(&c, &ch, &u, &sid);
		if (c.ok && type == 0 && (rc = index_chunk(r, &ch, &c, &u)) != MOSQDB_OK)
			return rc;
		if (c.ok && type != 0 && ch.type == type && visit(r, type, &u, sid, v, user))
			return corrupt(r, ch.hdr, "stopped by the caller at this %s chunk", chunk_name(ch.type)),
			       MOSQDB_ESTOP;
		if ((rc = chunk_done(r, &ch, &c, &pos)) != MOSQDB_OK)
			return rc;
	}
	return rc < 0 ? rc : MOSQDB_OK;
}

/* Pass 1 and the checks that need the whole index. */
static int validate(struct rd *r)
{
	int rc = walk(r, 0, NULL, NULL);
	if (rc != MOSQDB_OK)
		return rc;
	r->info.version = r->version;
	r->info.n_msgs = r->n_stores;
	if (r->n_stores)
		qsort(r->stores, r->n_stores, sizeof *r->stores, store_cmp);
	for (size_t i = 1; i < r->n_stores; i++)
		if (r->stores[i].id == r->stores[i - 1].id)
			return corrupt(r, r->stores[i].off, "message id %llu stored twice (also at offset %zu)",
				       (unsigned long long)r->stores[i].id, r->stores[i - 1].off);
	return MOSQDB_OK;
}

static int parse(struct rd *r, const struct mosqdb_visitor *v, void *user)
{
	int rc;
	if (r->len == 0) {
		snprintf(r->msg, sizeof r->msg, "empty file");
		return MOSQDB_EFORMAT;
	}
	if (memcmp(r->buf, magic, r->len < sizeof magic ? r->len : sizeof magic) != 0) {
		snprintf(r->msg, sizeof r->msg, "not a mosquitto persistence file (no mosquitto db magic)");
		return MOSQDB_EFORMAT;
	}
	if (r->len < HEADER_LEN)
		return corrupt(r, 0, "truncated header (%zu of %d bytes)", r->len, HEADER_LEN);
	const uint8_t *p = r->buf + 19;
	r->version = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (r->version < 2 || r->version > 6) {
		snprintf(r->msg, sizeof r->msg, "db format version %u, this reader knows 2 to 6 (mosquitto 2.0 writes 6)",
			 r->version);
		return MOSQDB_EFORMAT;
	}
	if ((rc = validate(r)) != MOSQDB_OK)
		return rc;
	if ((rc = walk(r, MOSQDB_CHUNK_RETAIN, NULL, NULL)) != MOSQDB_OK ||
	    (rc = walk(r, MOSQDB_CHUNK_CLIENT_MSG, NULL, NULL)) != MOSQDB_OK)
		return rc;
	if (v && v->info && v->info(user, &r->info))
		return corrupt(r, 0, "stopped by the caller after the header"), MOSQDB_ESTOP;
	static const uint32_t order[] = {MOSQDB_CHUNK_RETAIN, MOSQDB_CHUNK_CLIENT, MOSQDB_CHUNK_SUB,
					 MOSQDB_CHUNK_CLIENT_MSG};
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		static const struct mosqdb_visitor none;
		if ((rc = walk(r, order[i], v ? v : &none, user)) != MOSQDB_OK)
			return rc;
	}
	return MOSQDB_OK;
}

static void put_err(char *err, size_t errlen, const char *prefix, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s%s%s", prefix ? prefix : "", prefix ? ": " : "", msg);
}

int mosqdb_parse(const uint8_t *buf, size_t len, const struct mosqdb_visitor *v, void *user, char *err,
		 size_t errlen)
{
	struct rd r;
	memset(&r, 0, sizeof r);
	r.buf = buf;
	r.len = len;
	int rc = parse(&r, v, user);
	free(r.stores);
	if (rc == MOSQDB_ENOMEM)
		snprintf(r.msg, sizeof r.msg, "out of memory");
	if (rc != MOSQDB_OK)
		put_err(err, errlen, NULL, r.msg);
	return rc;
}

static int slurp(const char *path, uint8_t **out, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	if (fd < 0 || fstat(fd, &st) != 0)
		goto io;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto io;
	}
	buf = malloc((size_t)st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		put_err(err, errlen, path, "out of memory");
		return MOSQDB_ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto io;
		if (n == 0)
			break; /* shrank meanwhile: parse what is there */
		got += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len = got;
	return MOSQDB_OK;
io:;
	int e = errno;
	if (fd >= 0)
		close(fd);
	free(buf);
	if (err && errlen)
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
	return MOSQDB_EIO;
}

int mosqdb_read(const char *path, const struct mosqdb_visitor *v, void *user, char *err, size_t errlen)
{
	uint8_t *buf;
	size_t len;
	int rc = slurp(path, &buf, &len, err, errlen);
	if (rc != MOSQDB_OK)
		return rc;
	char msg[600];
	rc = mosqdb_parse(buf, len, v, user, msg, sizeof msg);
	free(buf);
	if (rc != MOSQDB_OK)
		put_err(err, errlen, path, msg);
	return rc;
}

int mosqdb_probe(const char *path)
{
	uint8_t head[sizeof magic];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	ssize_t n = read(fd, head, sizeof head);
	int e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return -1;
	}
	return n == (ssize_t)sizeof head && memcmp(head, magic, sizeof head) == 0;
}
