/*
 * broker/cluster/cadopt.c — a dead node's persistent sessions resume on the
 * node that won its claim with the QoS 1/2 messages it had queued or in
 * flight for them, replayed from the msgs stream (issue 12 point 3).
 *
 * Every session record (csrecord.c) ends with a cursor: which of the
 * routed messages the session already has. A routed message is known
 * cluster-wide by (origin instance, sequence), and each origin's sequences
 * reach a node in order, where route.c hands every one to every matching
 * session at once. So when the record is written, for each origin X the
 * node knows of, the session has every matching message of X up to the
 * highest sequence H(X) seen from X, and of those only its in-flight and
 * queued ones are not done. The cursor says:
 *   fresh(X)    every message of X from this sequence on is new to the
 *               session: H(X) + 1, or the first of X in its queue (the
 *               queue is a FIFO behind the in-flight window); origins
 *               not listed are new altogether;
 *   in flight   (X, seq, state, packet id, DUP) of each message in flight,
 *               in send order: a PUBLISH is resent with its packet id and
 *               DUP; a PUBREL pending (the PUBREC was taken) is resent and
 *               the message never again (QoS 2 exactly once: v5
 *               MQTT-4.3.3-6, v311 MQTT-4.3.3-1);
 *   queued      a queued delivery with RETAIN set (a retained message sent
 *               on SUBSCRIBE keeps its old identity), listed one by one;
 *   next packet id, and, at the record's head, the wall time from which a
 *   replay must read: the storing of its oldest queued or in-flight
 *   PUBLISH (else the record's own time).
 * Its size is bounded by the in-flight window (plus the retained ones,
 * PEND_MAX at most) and the number of origins (nodes).
 * The record is written when the session connects, subscribes,
 * unsubscribes, disconnects (the case that matters: offline sessions are
 * exact) and, while it is connected, at most every CKPT_MS when its
 * delivery state changed (one core NATS publish per active session per
 * second, none per message).
 * The winner of a claim reads the stream once from the earliest start of
 * the dead node's records (link.c, replay_adopted) while the sessions are
 * built (CONNECTs and hand-over requests for them wait); each replayed
 * QoS >= 1 message goes to the adopted sessions it matches (subscription
 * tree, effective QoS, retain-as-published, subscription ids, ACL) that do
 * not have it yet by their cursor. At the claim's end each session gets,
 * in order: its in-flight messages in their state, its retained queued
 * ones, the replayed ones in stream order, then those routed to it here
 * meanwhile that the replay did not bring (same identity), and a new
 * record.
 * Deliberately not replayed: shared-subscription deliveries (NATS gave
 * each to one node's member; a queued one is lost with the node, one in
 * flight resumes), QoS 0, messages never routed between nodes (published
 * before the node joined; $SYS), no-local is not applied (the publisher of
 * a stored message is not known: only a session connected at the death can
 * meet its own messages again), and whatever the stream no longer holds
 * (older than cluster_replay_window, or pushed out by
 * cluster_replay_max_bytes). A session connected at the death is as of its
 * last checkpoint: what it received after it comes again (QoS 1 and 2).
 * Invariant: an adopted session awaiting its replay is in by_serial, keyed
 * by its serial (never kept by pointer: found again by id and serial).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"

#define PEND_MAX 1024      /* in-flight and retained queued entries of one cursor */
#define MAX_IDS 32         /* subscription identifiers kept per delivery */
#define CKPT_MS 1000       /* connected sessions' records refreshed at most this often */
#define CKPT_SLICES 10     /* the session table is walked a tenth at a time, every CKPT_MS / 10 */
#define HW_KEEP_MS 240000  /* origins' replayed high-water marks: twice the stream's max age */

struct ad_origin {
	uint64_t inst, fresh;
};

struct ad_pend {
	uint64_t inst, seq;
	uint8_t state, qos, nid;
	bool retain, sent;
	uint16_t pid;
	uint32_t ids[MAX_IDS];
	struct message *m; /* found in the replay */
};

struct ad_fresh {
	struct message *m;
	uint8_t qos, nid;
	bool retain;
	uint32_t ids[MAX_IDS];
};

struct cl_adopt {
	UT_hash_handle hh; /* by serial */
	uint64_t serial, claim, from_wall;
	char *id;
	uint8_t *raw; /* the dead node's cursor: our record carries it until the replay is over */
	size_t raw_len;
	struct ad_origin *orig;
	struct ad_pend *pend;
	uint32_t n_orig, n_pend;
	struct ad_fresh *fresh;
	size_t n_fresh, cap_fresh;
	uint16_t next_pid;
	uint32_t gen, slot; /* per replayed message: its target */
	unsigned dropped;   /* over max_queued_messages */
};

/* A pending entry's identity (several sessions may share one). */
struct ad_key {
	UT_hash_handle hh;
	uint64_t key[2];
	struct cl_adopt *a;
	uint32_t idx;
	struct ad_key *next; /* same identity, another session */
};

/* The highest sequence of an origin delivered to sessions through a
 * replay: the node may not have seen those itself (its filters did not
 * match before the adoption), yet the sessions have them. */
struct ad_hw {
	UT_hash_handle hh;
	uint64_t inst, seq, used;
};

struct ad_seen {
	UT_hash_handle hh;
	uint64_t key[2];
};

struct cl_adopt_state {
	struct cluster *cl;
	struct cl_adopt *by_serial;
	struct ad_key *keys;
	struct ad_hw *hw;
	struct sub_match match;
	uint32_t gen;
	natsMsg **gets; /* P.sget for sessions awaiting their replay */
	size_t n_gets, cap_gets;
	struct wheel_entry ckpt;
	uint32_t ckpt_at; /* the next bucket of the session table to look at */
};

/* ---- the cursor, written ------------------------------------------------------------ */

struct origins {
	struct ad_origin *v;
	uint32_t n, cap;
	bool err;
};

static struct ad_origin *orig_find(struct origins *o, uint64_t inst, bool add)
{
	for (uint32_t i = 0; i < o->n; i++)
		if (o->v[i].inst == inst)
			return &o->v[i];
	if (!add || o->err)
		return NULL;
	if (o->n == o->cap) {
		uint32_t cap = o->cap ? o->cap * 2 : 16;
		struct ad_origin *v = realloc(o->v, cap * sizeof(*v));
		if (!v) {
			o->err = true;
			return NULL;
		}
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n] = (struct ad_origin){inst, UINT64_MAX};
	return &o->v[o->n++];
}

static void orig_high(void *u, uint64_t inst, uint64_t seq)
{
	struct ad_origin *x = orig_find(u, inst, true);
	if (x && (x->fresh == UINT64_MAX || x->fresh < seq + 1))
		x->fresh = seq + 1;
}

static struct cl_adopt *adopt_of(struct cl_adopt_state *st, const struct session *s)
{
	struct cl_adopt *a = NULL;
	if (st->by_serial)
		HASH_FIND(hh, st->by_serial, &s->serial, sizeof(s->serial), a);
	return a;
}

static uint64_t fingerprint(const struct session *s)
{
	uint64_t h = 1469598103934665603ull;
	uint64_t v[3] = {s->next_pid, s->inflight.count, s->queue.count};
	for (int i = 0; i < 3; i++)
		h = (h ^ v[i]) * 1099511628211ull;
	for (const struct outmsg *o = s->inflight.head; o; o = o->next)
		h = (h ^ ((uint64_t)o->pid << 2 | o->state)) * 1099511628211ull;
	return h | 1; /* 0: never written */
}

static void put_pend(struct cl_wbuf *w, const struct outmsg *o)
{
	uint8_t nid = o->n_sub_ids < MAX_IDS ? o->n_sub_ids : MAX_IDS;
	csrecord_le(w, o->msg->cl_inst, 8);
	csrecord_le(w, o->msg->cl_seq, 8);
	csrecord_le(w, o->state, 1);
	csrecord_le(w, o->qos, 1);
	csrecord_le(w, o->retain, 1);
	csrecord_le(w, o->sent, 1);
	csrecord_le(w, o->pid, 2);
	csrecord_le(w, nid, 1);
	for (unsigned i = 0; i < nid; i++)
		csrecord_le(w, o->sub_ids[i], 4);
}

/* u16 next packet id, u32 n, n x (u64 inst, u64 fresh), u32 n, n x (u64
 * inst, u64 seq, u8 state, u8 qos, u8 retain, u8 sent, u16 pid, u8 nid,
 * nid x u32 subscription id). */
uint64_t cadopt_cursor(struct cluster *cl, struct session *s, struct cl_wbuf *w)
{
	struct cl_adopt_state *st = cl->ad;
	struct broker *b = cl->b;
	struct cl_adopt *a = adopt_of(st, s);
	s->cluster_ckpt = fingerprint(s);
	if (a) { /* its replay runs: the dead node's cursor still says what it has */
		csrecord_put(w, a->raw, a->raw_len);
		return a->from_wall;
	}
	struct origins o = {0};
	xqos_each_origin(cl, orig_high, &o);
	orig_high(&o, cl->inst, cl->seq);
	struct ad_hw *h, *ht;
	HASH_ITER(hh, st->hw, h, ht)
		orig_high(&o, h->inst, h->seq);
	uint64_t oldest = broker_now(b);
	uint32_t n_pend = 0;
	for (const struct outmsg *q = s->queue.head; q; q = q->next) {
		const struct message *m = q->msg;
		if (!m->cl_seq)
			continue; /* never routed between nodes: not in the stream */
		if (q->retain) {
			n_pend++;
		} else {
			struct ad_origin *x = orig_find(&o, m->cl_inst, true);
			if (x && m->cl_seq < x->fresh)
				x->fresh = m->cl_seq;
		}
		if (m->cl_at < oldest)
			oldest = m->cl_at;
	}
	for (const struct outmsg *q = s->inflight.head; q; q = q->next) {
		if (!q->msg->cl_seq)
			continue;
		n_pend++;
		if (q->state == OUT_PUBLISH && q->msg->cl_at < oldest)
			oldest = q->msg->cl_at; /* a PUBREL needs no message */
	}
	if (n_pend > PEND_MAX)
		n_pend = PEND_MAX;
	csrecord_le(w, s->next_pid, 2);
	csrecord_le(w, o.n, 4);
	for (uint32_t i = 0; i < o.n; i++) {
		csrecord_le(w, o.v[i].inst, 8);
		csrecord_le(w, o.v[i].fresh, 8);
	}
	if (o.err)
		w->err = true;
	free(o.v);
	csrecord_le(w, n_pend, 4);
	uint32_t k = 0;
	for (const struct outmsg *q = s->inflight.head; q && k < n_pend; q = q->next)
		if (q->msg->cl_seq && ++k)
			put_pend(w, q);
	for (const struct outmsg *q = s->queue.head; q && k < n_pend; q = q->next)
		if (q->msg->cl_seq && q->retain && ++k)
			put_pend(w, q);
	return store_mono_to_wall(b, oldest);
}

/* ---- the cursor, read ---------------------------------------------------------------- */

static void adopt_free(struct cl_adopt_state *st, struct cl_adopt *a)
{
	for (uint32_t i = 0; i < a->n_pend; i++) {
		uint64_t key[2] = {a->pend[i].inst, a->pend[i].seq};
		struct ad_key *head = NULL, **pp, *x;
		HASH_FIND(hh, st->keys, key, sizeof(key), head);
		for (pp = &head; (x = *pp) && !(x->a == a && x->idx == i); pp = &x->next)
			;
		if (x && x == head) { /* the head: its successor takes its place in the hash */
			HASH_DEL(st->keys, x);
			if (x->next)
				HASH_ADD(hh, st->keys, key, sizeof(x->next->key), x->next);
		} else if (x) {
			*pp = x->next;
		}
		free(x);
		message_unref(&a->pend[i].m);
	}
	for (size_t i = 0; i < a->n_fresh; i++)
		message_unref(&a->fresh[i].m);
	HASH_DEL(st->by_serial, a);
	free(a->fresh);
	free(a->pend);
	free(a->orig);
	free(a->raw);
	free(a->id);
	free(a);
}

void cadopt_add(struct cluster *cl, struct session *s, uint64_t inst, const struct cl_meta *m)
{
	struct cl_adopt_state *st = cl->ad;
	struct cl_rbuf r = {m->cursor, m->cursor_len, 0, false};
	struct cl_adopt *a = calloc(1, sizeof(*a));
	if (!a || !(a->id = strdup(s->id)) || !(a->raw = malloc(m->cursor_len ? m->cursor_len : 1)))
		goto bad;
	memcpy(a->raw, m->cursor, m->cursor_len);
	a->raw_len = m->cursor_len;
	a->serial = s->serial;
	a->claim = inst;
	a->from_wall = m->from_wall;
	a->next_pid = (uint16_t)csrecord_get(&r, 2);
	uint32_t n = (uint32_t)csrecord_get(&r, 4);
	if (r.err || n > (r.len - r.off) / 16 || !(a->orig = calloc(n ? n : 1, sizeof(*a->orig))))
		goto bad;
	for (a->n_orig = 0; a->n_orig < n; a->n_orig++) {
		a->orig[a->n_orig].inst = csrecord_get(&r, 8);
		a->orig[a->n_orig].fresh = csrecord_get(&r, 8);
	}
	n = (uint32_t)csrecord_get(&r, 4);
	if (r.err || n > PEND_MAX || !(a->pend = calloc(n ? n : 1, sizeof(*a->pend))))
		goto bad;
	HASH_ADD(hh, st->by_serial, serial, sizeof(a->serial), a);
	for (uint32_t i = 0; i < n && !r.err; i++) {
		struct ad_pend *p = &a->pend[i];
		p->inst = csrecord_get(&r, 8);
		p->seq = csrecord_get(&r, 8);
		p->state = (uint8_t)csrecord_get(&r, 1);
		p->qos = (uint8_t)csrecord_get(&r, 1);
		p->retain = csrecord_get(&r, 1) != 0;
		p->sent = csrecord_get(&r, 1) != 0;
		p->pid = (uint16_t)csrecord_get(&r, 2);
		p->nid = (uint8_t)csrecord_get(&r, 1);
		for (unsigned j = 0; j < p->nid; j++) {
			uint32_t id = (uint32_t)csrecord_get(&r, 4);
			if (j < MAX_IDS)
				p->ids[j] = id;
		}
		if (p->nid > MAX_IDS)
			p->nid = MAX_IDS;
		struct ad_key *k = calloc(1, sizeof(*k)), *head = NULL;
		if (r.err || !k) {
			free(k);
			break;
		}
		a->n_pend++;
		k->key[0] = p->inst;
		k->key[1] = p->seq;
		k->a = a;
		k->idx = i;
		HASH_FIND(hh, st->keys, k->key, sizeof(k->key), head);
		if (head) {
			k->next = head->next;
			head->next = k;
		} else {
			HASH_ADD(hh, st->keys, key, sizeof(k->key), k);
		}
	}
	if (r.err)
		log_msg(cl->b, LOG_F_WARNING, "Cluster: the record of client %s says only part of what it had.", s->id);
	return;
bad:
	if (a) {
		free(a->orig);
		free(a->raw);
		free(a->id);
		free(a);
	}
	log_msg(cl->b, LOG_F_WARNING, "Cluster: the messages of client %s queued on a dead node are lost (bad record or "
		"no memory).", s->id);
}

/* ---- the replay ---------------------------------------------------------------------- */

static uint64_t fresh_of(const struct cl_adopt *a, uint64_t inst)
{
	for (uint32_t i = 0; i < a->n_orig; i++)
		if (a->orig[i].inst == inst)
			return a->orig[i].fresh;
	return 0; /* not heard of from there: all new */
}

static void note_hw(struct cl_adopt_state *st, uint64_t inst, uint64_t seq)
{
	uint64_t now = broker_now(st->cl->b);
	struct ad_hw *h = NULL, *x, *t;
	HASH_FIND(hh, st->hw, &inst, sizeof(inst), h);
	if (!h) {
		HASH_ITER(hh, st->hw, x, t) {
			if (now - x->used > HW_KEEP_MS) {
				HASH_DEL(st->hw, x);
				free(x);
			}
		}
		if (!(h = calloc(1, sizeof(*h))))
			return;
		h->inst = inst;
		HASH_ADD(hh, st->hw, inst, sizeof(h->inst), h);
	}
	if (seq > h->seq)
		h->seq = seq;
	h->used = now;
}

static bool has_pend(const struct ad_key *k, const struct cl_adopt *a)
{
	for (; k; k = k->next)
		if (k->a == a)
			return true;
	return false;
}

/* The message of envelope e, made once (accepted on another node: never
 * refused by memory_limit here). */
static struct message *msg_of(struct cluster *cl, const struct cl_env *e, natsMsg *msg, struct message **m)
{
	if (!*m) {
		uint64_t limit = cl->b->mem.limit;
		cl->b->mem.limit = 0;
		*m = xroute_message(cl, e, false);
		cl->b->mem.limit = limit;
		if (*m)
			(*m)->cl_at = xroute_stream_at(cl, msg);
	}
	return *m;
}

static void add_fresh(struct cl_adopt *a, struct message *m, uint8_t qos, bool retain, const uint32_t *ids, uint8_t nid,
		      uint32_t maxq)
{
	if (maxq && a->n_fresh >= maxq) {
		a->dropped++; /* as deliver_to_session would have */
		return;
	}
	if (a->n_fresh == a->cap_fresh) {
		size_t cap = a->cap_fresh ? a->cap_fresh * 2 : 16;
		struct ad_fresh *v = realloc(a->fresh, cap * sizeof(*v));
		if (!v)
			return;
		a->fresh = v;
		a->cap_fresh = cap;
	}
	struct ad_fresh *f = &a->fresh[a->n_fresh++];
	f->m = message_ref(m);
	f->qos = qos;
	f->retain = retain;
	f->nid = nid;
	memcpy(f->ids, ids, nid * sizeof(*ids));
}

struct ad_target {
	struct cl_adopt *a;
	uint8_t qos, nid;
	bool retain;
	uint32_t ids[MAX_IDS];
};

void cadopt_replay_in(struct cluster *cl, natsMsg *msg, uint64_t inst)
{
	struct cl_adopt_state *st = cl->ad;
	struct broker *b = cl->b;
	struct cl_env e;
	if (!st->by_serial ||
	    env_decode((const uint8_t *)natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &e) ||
	    !(e.flags & ENV_QOS) || !e.seq || !e.topic.len || !mqtt_topic_name_valid(e.topic))
		return;
	struct message *m = NULL;
	bool used = false;
	uint64_t key[2] = {e.inst, e.seq};
	struct ad_key *head = NULL;
	HASH_FIND(hh, st->keys, key, sizeof(key), head);
	for (struct ad_key *k = head; k; k = k->next) {
		struct ad_pend *p = &k->a->pend[k->idx];
		if (k->a->claim == inst && !p->m && msg_of(cl, &e, msg, &m)) {
			p->m = message_ref(m); /* in flight there: resumed in its state */
			used = true;
		}
	}
	struct ad_target tv[16], *t = tv;
	size_t nt = 0, cap = 16;
	if (subtree_match(b->subs, e.topic, &st->match) == 0) {
		uint32_t gen = ++st->gen;
		uint8_t mq = e.flags & ENV_QOS;
		for (size_t i = 0; i < st->match.n; i++) {
			const struct sub_entry *se = st->match.subs[i];
			struct cl_adopt *a = adopt_of(st, se->owner);
			if (!a || a->claim != inst || has_pend(head, a) || e.seq < fresh_of(a, e.inst))
				continue; /* not awaiting this replay, or it has the message */
			if (a->gen != gen) {
				if (nt == cap) {
					struct ad_target *n = malloc(cap * 2 * sizeof(*n));
					if (!n)
						continue;
					memcpy(n, t, nt * sizeof(*n));
					if (t != tv)
						free(t);
					t = n;
					cap *= 2;
				}
				a->gen = gen;
				a->slot = (uint32_t)nt;
				t[nt++] = (struct ad_target){.a = a};
			}
			struct ad_target *x = &t[a->slot];
			uint8_t q = se->options & 0x03;
			if (q > mq && !b->cfg->upgrade_outgoing_qos)
				q = mq; /* effective QoS, as route.c */
			if (q > x->qos)
				x->qos = q;
			if ((se->options & 0x08) && (e.flags & ENV_RETAIN))
				x->retain = true;
			if (se->sub_id && x->nid < MAX_IDS)
				x->ids[x->nid++] = se->sub_id;
		}
	}
	for (size_t i = 0; i < nt; i++) {
		struct session *s = session_find(b, t[i].a->id);
		if (!t[i].qos || !s || !security_acl(NULL, s, (const char *)e.topic.p, AUTH_READ) || !msg_of(cl, &e, msg, &m))
			continue;
		add_fresh(t[i].a, m, t[i].qos, t[i].retain, t[i].ids, t[i].nid, b->cfg->max_queued_messages);
		used = true;
	}
	if (t != tv)
		free(t);
	if (used)
		note_hw(st, e.inst, e.seq);
	message_unref(&m);
}

/* ---- the claim is over ------------------------------------------------------------------ */

static bool seen_add(struct ad_seen **set, const struct message *m)
{
	struct ad_seen *x = NULL;
	uint64_t key[2] = {m->cl_inst, m->cl_seq};
	if (!key[1])
		return true;
	HASH_FIND(hh, *set, key, sizeof(key), x);
	if (x || !(x = calloc(1, sizeof(*x))))
		return !x;
	memcpy(x->key, key, sizeof(key));
	HASH_ADD(hh, *set, key, sizeof(x->key), x);
	return true;
}

/* A PUBREL to resend whose message the stream no longer has: only its
 * packet id matters (the message is never sent again). */
static struct message *placeholder(struct broker *b)
{
	uint64_t limit = b->mem.limit;
	b->mem.limit = 0;
	struct message *m = message_new(&b->mem, mqtt_cstr("$vigil/cluster/pubrel"), (struct mqtt_str){0},
					(struct mqtt_str){0}, 2, false, NULL, NULL);
	b->mem.limit = limit;
	return m;
}

/* Restore one delivery and tell the store (persistence true). */
static bool put(struct session *s, struct message *m, uint8_t qos, bool retain, uint8_t state, uint16_t pid,
		const uint32_t *ids, uint8_t nid, uint64_t store_seq)
{
	if (deliver_restore(s, m, qos, retain, state, pid, ids, nid, store_seq))
		return false;
	if (!store_seq)
		store_msg_queued(s->b, s, state == OUT_QUEUED ? s->queue.tail : s->inflight.tail);
	return true;
}

static void finish_one(struct cluster *cl, struct cl_adopt *a)
{
	struct broker *b = cl->b;
	struct session *s = session_find(b, a->id);
	if (!s || s->serial != a->serial)
		return; /* ended, discarded or taken meanwhile */
	struct out_list mine = s->queue; /* routed to it here while the replay ran */
	memset(&s->queue, 0, sizeof(s->queue));
	struct ad_seen *set = NULL, *x, *xt;
	unsigned resumed = 0, lost = 0, replayed = 0, dups = 0, dropped = a->dropped;
	uint32_t maxq = b->cfg->max_queued_messages;
	if (a->next_pid)
		s->next_pid = a->next_pid;
	for (uint32_t i = 0; i < a->n_pend; i++) {
		struct ad_pend *p = &a->pend[i];
		if (p->state == OUT_QUEUED)
			continue;
		struct message *m = p->m ? message_ref(p->m) : p->state == OUT_PUBREL ? placeholder(b) : NULL;
		if (m && put(s, m, p->qos, p->retain, p->state, p->pid, p->ids, p->nid, 0)) {
			s->inflight.tail->sent = p->sent; /* never left the dead node: no DUP */
			resumed++;
			if (p->m)
				seen_add(&set, p->m);
		} else {
			lost++; /* older than the stream's window */
		}
		message_unref(&m);
	}
	for (uint32_t i = 0; i < a->n_pend; i++) {
		struct ad_pend *p = &a->pend[i];
		if (p->state != OUT_QUEUED)
			continue;
		if (p->m && seen_add(&set, p->m) && put(s, p->m, p->qos, p->retain, OUT_QUEUED, 0, p->ids, p->nid, 0))
			replayed++;
		else if (!p->m)
			lost++;
	}
	for (size_t i = 0; i < a->n_fresh; i++) {
		struct ad_fresh *f = &a->fresh[i];
		if (!seen_add(&set, f->m))
			continue; /* a second copy (it cannot be: the stream stores an id once) */
		if (maxq && s->queue.count >= maxq)
			dropped++; /* as deliver_to_session would have */
		else if (put(s, f->m, f->qos, f->retain, OUT_QUEUED, 0, f->ids, f->nid, 0))
			replayed++;
	}
	for (struct outmsg *o = mine.head; o; o = o->next) {
		if (!seen_add(&set, o->msg)) {
			dups++;
			store_msg_acked(b, s, o); /* the replay brought it first: this copy goes */
		} else if (deliver_restore(s, o->msg, o->qos, o->retain, OUT_QUEUED, 0, o->sub_ids, o->n_sub_ids, o->store_seq)) {
			store_msg_acked(b, s, o);
		}
	}
	out_list_clear(&mine);
	HASH_ITER(hh, set, x, xt) {
		HASH_DEL(set, x);
		free(x);
	}
	char extra[96] = "";
	if (lost || dropped)
		snprintf(extra, sizeof(extra), "; %u no longer in the stream, %u over max_queued_messages: lost", lost,
			 dropped);
	log_msg(b, LOG_F_NOTICE, "Cluster: resumed the session of client %s of a dead node here (%u subscription(s), "
		"%u message(s) in flight resumed, %u replayed from the stream, %u also routed here meanwhile%s).", a->id,
		s->n_subs, resumed, replayed, dups, extra);
	if (s->client && s->client->state == CS_CONNECTED)
		deliver_drain(s);
}

/* A P.sget's client id: does its session await its replay here? */
static bool get_busy(struct cluster *cl, natsMsg *msg)
{
	struct cl_rbuf r = {(const uint8_t *)natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, false};
	bool absent;
	csrecord_get(&r, 1);
	csrecord_get(&r, 8); /* kind, sender, request */
	csrecord_get(&r, 8);
	char *id = csrecord_getstr(&r, &absent);
	bool busy = id && cadopt_busy(cl, id);
	free(id);
	return busy;
}

void cadopt_done(struct cluster *cl, uint64_t inst)
{
	struct cl_adopt_state *st = cl->ad;
	struct cl_adopt *a, *t;
	HASH_ITER(hh, st->by_serial, a, t) {
		if (a->claim != inst)
			continue;
		finish_one(cl, a);
		struct session *s = session_find(cl->b, a->id);
		bool ours = s && s->serial == a->serial;
		adopt_free(st, a);
		if (ours && s->cluster_rec)
			csrecord_store(cl, s); /* its own cursor now */
	}
	size_t k = 0;
	for (size_t i = 0; i < st->n_gets; i++) {
		natsMsg *msg = st->gets[i];
		if (get_busy(cl, msg)) { /* another claim's session: kept */
			st->gets[k++] = msg;
			continue;
		}
		csession_get_in(cl, msg); /* answered now that it is whole */
		natsMsg_Destroy(msg);
	}
	st->n_gets = k;
}

bool cadopt_busy(struct cluster *cl, const char *id)
{
	struct cl_adopt_state *st = cl->ad;
	struct session *s;
	return st && st->by_serial && (s = session_find(cl->b, id)) && adopt_of(st, s);
}

bool cadopt_defer_get(struct cluster *cl, struct cl_event *e)
{
	struct cl_adopt_state *st = cl->ad;
	if (!st->by_serial || !get_busy(cl, e->msg))
		return false;
	if (st->n_gets == st->cap_gets) {
		size_t cap = st->cap_gets ? st->cap_gets * 2 : 8;
		natsMsg **v = realloc(st->gets, cap * sizeof(*v));
		if (!v)
			return false; /* answered now: the asker may take it before its replay is in */
		st->gets = v;
		st->cap_gets = cap;
	}
	st->gets[st->n_gets++] = e->msg;
	e->msg = NULL;
	return true;
}

/* ---- checkpoints of connected sessions --------------------------------------------------- */

/* A slice of the table per tick, so a node with many sessions never
 * stops its loop for the whole walk (keepalive precision, latency). A
 * table resized between slices only shifts one round's order. */
static void on_ckpt(struct wheel_entry *we, uint64_t now)
{
	struct cl_adopt_state *st = (struct cl_adopt_state *)((char *)we - offsetof(struct cl_adopt_state, ckpt));
	struct cluster *cl = st->cl;
	struct broker *b = cl->b;
	uint32_t slice = (b->stab_size + CKPT_SLICES - 1) / CKPT_SLICES;
	if (st->ckpt_at >= b->stab_size)
		st->ckpt_at = 0;
	uint32_t end = b->stab_size - st->ckpt_at > slice ? st->ckpt_at + slice : b->stab_size;
	if (cl->joined && cl->connected) {
		for (uint32_t i = st->ckpt_at; i < end; i++) {
			for (struct session *s = b->stab[i]; s; s = s->hnext) {
				if (!s->client || !s->cluster_rec || !csrecord_recorded(s) || s->cluster_ckpt == fingerprint(s) ||
				    csession_busy(cl, s->id))
					continue;
				csrecord_store(cl, s);
			}
		}
	}
	st->ckpt_at = end;
	wheel_add(&b->wheel, &st->ckpt, now + CKPT_MS / CKPT_SLICES);
}

/* ---- life ------------------------------------------------------------------------------ */

int cadopt_start(struct cluster *cl)
{
	struct cl_adopt_state *st = calloc(1, sizeof(*st));
	if (!st)
		return -1;
	st->cl = cl;
	wheel_entry_init(&st->ckpt, on_ckpt);
	wheel_add(&cl->b->wheel, &st->ckpt, broker_now(cl->b) + CKPT_MS / CKPT_SLICES);
	cl->ad = st;
	return 0;
}

void cadopt_free(struct cluster *cl)
{
	struct cl_adopt_state *st = cl->ad;
	if (!st)
		return;
	wheel_cancel(&cl->b->wheel, &st->ckpt);
	while (st->by_serial)
		adopt_free(st, st->by_serial);
	struct ad_hw *h, *ht;
	HASH_ITER(hh, st->hw, h, ht) {
		HASH_DEL(st->hw, h);
		free(h);
	}
	for (size_t i = 0; i < st->n_gets; i++)
		natsMsg_Destroy(st->gets[i]);
	free(st->gets);
	sub_match_free(&st->match);
	free(st);
	cl->ad = NULL;
}
