/*
 * broker/cluster/csession.c — a persistent session follows its client to
 * whichever node it connects to (issue 12 points 3 and 6).
 *
 * The node a client was connected to keeps owning its session after it
 * disconnects: the session stays subscribed and queues as on one node (and
 * in that node's store). When the client connects with Clean Start 0 to
 * another node B that has no session for it, B holds the CONNECT (no
 * CONNACK yet, reads paused, c->cluster_held) and asks every node on P.sget.
 * Every node answers on B's direct subject: "none", or, from the owner A,
 * the session's subscriptions (A closes a connection it still has, v5
 * DISCONNECT 0x8E, as a takeover). Then:
 *   1. B builds the session from them: its filters enter B's tree, so B
 *      subscribes their NATS subjects, and it starts queueing messages;
 *   2. B sends "take" to A on the same NATS connection, after those SUBs,
 *      so NATS registers them before A sees the request: whatever A routes
 *      after that reaches B;
 *   3. A sends the queued and in-flight messages in order (with their
 *      state: PUBLISH sent -> resent with DUP, PUBREL pending), the inbound
 *      QoS 2 packet ids (with a held message) and its next packet id, in
 *      chunks below NATS's max payload, then "end", and drops the session;
 *   4. B puts A's messages first and its own after them, leaving out those
 *      A had too: every message carries (origin instance, sequence) from
 *      its first routing (struct message cl_inst/cl_seq), and a message
 *      that reached both copies has the same pair. Per publisher, A has a
 *      prefix and B a suffix of its messages, so the order holds and
 *      nothing is delivered twice (QoS 2 exactly once);
 *   5. B runs the CONNECT again: the session is local now (session
 *      present 1, v5 MQTT-3.2.2-2).
 * No answer from a node: if it is declared dead (nodes.c), its sessions
 * are adopted from their records by the node that wins its claim
 * (csrecord.c), which then says so on P.sadopt; B asks again and gets the
 * adopted session (or had adopted it itself). Nobody has it: a new session.
 * A hold never lasts longer than cluster_node_timeout + 3 s (then: a new
 * session), and the client's pre-CONNECT timeout keeps running.
 * The will needs nothing here: nodes.c keeps it cluster-wide, and a
 * delayed will still waiting at A is dropped with A's copy (the client is
 * back within its delay, v5 MQTT-3.1.3-9).
 * Deliberately not here: records (csrecord.c), the owner's side of a
 * hand-over (csowner.c), takeover of a connected client on P.conn (nodes.c).
 * Trade-offs: a hand-over costs two round trips through NATS plus the
 * transfer; the merge is exact while NATS delivers in order between two
 * connections (one server, or a cluster without a route change in the
 * middle); the transfer rides on core NATS, so if NATS drops a chunk the
 * messages in it are lost (logged). A shared subscription's queue group is
 * on the second connection and may start a moment after the take.
 * Invariant: a pending hand-over exists per client id at most once; its
 * half-built session (PEND_TAKE) is found by id and serial, never kept by
 * pointer; a held client is in a pending entry exactly while
 * c->cluster_held is set.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cluster_int.h"

enum { PEND_ASK = 0, PEND_TAKE };
#define TICK_MS 100

struct cl_pend {
	UT_hash_handle hh; /* by id */
	struct cluster *cl;
	struct client *c;      /* NULL: left while its session was on its way */
	uint8_t ftype, fflags; /* the CONNECT, to run again */
	uint32_t flen;
	uint8_t *frame;
	int state;
	uint64_t req, deadline;
	uint64_t owner, serial; /* PEND_TAKE: who sends it; the half-built session */
	uint64_t *wait, *dead;  /* peers yet to answer; dead instances being adopted */
	uint32_t n_wait, n_dead;
	struct cl_wbuf data;    /* PEND_TAKE: the chunks so far */
	uint32_t chunks;
	bool broken;            /* a chunk went missing */
	struct wheel_entry timer;
	char id[];
};

struct cl_sess {
	struct cl_pend *pends;
	natsSubscription *sub[3]; /* P.sget, P.s.<token>, P.sadopt */
	char direct[128];
	uint64_t next_req;
	struct client *rerun; /* its CONNECT runs again: not held twice */
	uint64_t *won;        /* claims won, until CE_CLAIM_DONE */
	uint32_t n_won;
};

struct seen {
	UT_hash_handle hh;
	uint64_t key[2];
};

/* ---- small helpers ------------------------------------------------------------- */

static bool ids_has(const uint64_t *v, uint32_t n, uint64_t x)
{
	for (uint32_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

static void ids_del(uint64_t *v, uint32_t *n, uint64_t x)
{
	for (uint32_t i = 0; i < *n; i++)
		if (v[i] == x) {
			v[i] = v[--*n];
			return;
		}
}

static bool ids_add(uint64_t **v, uint32_t *n, uint64_t x)
{
	if (ids_has(*v, *n, x))
		return true;
	uint64_t *nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return false;
	nv[(*n)++] = x;
	*v = nv;
	return true;
}

void cs_hdr(struct cluster *cl, struct cl_wbuf *w, int kind, uint64_t req, const char *id)
{
	csrecord_le(w, (uint64_t)kind, 1);
	csrecord_le(w, cl->inst, 8);
	csrecord_le(w, req, 8);
	csrecord_str(w, id, strlen(id));
}

void cs_send_to(struct cluster *cl, const char *subj, const char *reply, struct cl_wbuf *w)
{
	natsStatus st = NATS_OK;
	if (w->err || !subj || !*subj)
		st = NATS_INVALID_ARG;
	else if (reply)
		st = natsConnection_PublishRequest(cl->nc, subj, reply, w->p, (int)w->len);
	else
		st = natsConnection_Publish(cl->nc, subj, w->p, (int)w->len);
	if (st != NATS_OK)
		log_msg(cl->b, LOG_F_WARNING, "Cluster: a session message to %.80s was not sent (%s).", subj ? subj : "?",
			natsStatus_GetText(st));
	free(w->p);
	memset(w, 0, sizeof(*w));
}

void cs_answer(struct cluster *cl, const char *to, int kind, uint64_t req, const char *id)
{
	struct cl_wbuf w = {0};
	cs_hdr(cl, &w, kind, req, id);
	cs_send_to(cl, to, NULL, &w);
}

static struct session *half_built(struct cl_pend *p)
{
	struct session *s = session_find(p->cl->b, p->id);
	return s && s->serial == p->serial ? s : NULL;
}

/* ---- the requesting side ------------------------------------------------------- */

static void pend_free(struct cl_pend *p)
{
	struct cl_sess *cs = p->cl->cs;
	HASH_DEL(cs->pends, p);
	wheel_cancel(&p->cl->b->wheel, &p->timer);
	if (p->c)
		p->c->cluster_held = false;
	free(p->frame);
	free(p->wait);
	free(p->dead);
	free(p->data.p);
	free(p);
}

/* The hand-over is over: run the CONNECT again (the session is local now,
 * or there is none), or, the client gone, keep the session detached. */
static void finish(struct cl_pend *p, const char *how)
{
	struct cluster *cl = p->cl;
	struct broker *b = cl->b;
	struct client *c = p->c;
	struct mqtt_frame f = {p->ftype, p->fflags, p->frame, p->flen, p->flen};
	log_msg(b, LOG_F_INFORMATION, "Cluster: session of client %s: %s.", p->id, how);
	p->frame = NULL;
	if (!c) {
		struct session *s = half_built(p);
		if (s)
			session_detach(s, false); /* expiry armed, saved, recorded */
		pend_free(p);
		free((void *)f.body);
		return;
	}
	p->c = NULL;
	c->cluster_held = false;
	pend_free(p);
	b->st.connects_received--; /* counted the first time */
	c->last_rx = broker_now(b); /* the client could not speak before its CONNACK: keepalive from now */
	cl->cs->rerun = c;
	int rc = connect_handle(c, &f);
	cl->cs->rerun = NULL;
	free((void *)f.body);
	if (rc && c->state != CS_GONE)
		client_close(c, 0, false, false, NULL);
	else if (c->state == CS_CONNECTED)
		net_conn_pause_read(c->conn, false); /* and what it sent meanwhile is dispatched now */
}

/* Ask every node; W = the live peers, D = instances being claimed. */
static void ask(struct cl_pend *p)
{
	struct cluster *cl = p->cl;
	p->state = PEND_ASK;
	p->req = ++cl->cs->next_req;
	p->n_wait = 0;
	struct cl_peer *q, *qt;
	HASH_ITER(hh, cl->peers, q, qt)
		ids_add(&p->wait, &p->n_wait, q->inst);
	struct cl_claim *k, *kt;
	HASH_ITER(hh, cl->claims, k, kt)
		ids_add(&p->dead, &p->n_dead, k->inst);
	if (!p->n_wait && !p->n_dead) {
		finish(p, "no other node, a new session");
		return;
	}
	struct cl_wbuf w = {0};
	char subj[96];
	snprintf(subj, sizeof(subj), "%s.sget", cl->prefix);
	cs_hdr(cl, &w, K_GET, p->req, p->id);
	cs_send_to(cl, subj, cl->cs->direct, &w);
}

static void on_tick(struct wheel_entry *e, uint64_t now)
{
	struct cl_pend *p = (struct cl_pend *)((char *)e - offsetof(struct cl_pend, timer));
	struct cluster *cl = p->cl;
	if (p->state == PEND_TAKE && !nodes_peer(cl, p->owner, false)) {
		finish(p, "its node died while sending it; resumed with its subscriptions, messages queued there lost");
		return;
	}
	if (now >= p->deadline) {
		if (p->state == PEND_TAKE)
			finish(p, "its node did not finish sending it in time; resumed with its subscriptions");
		else
			finish(p, "no answer in time, a new session");
		return;
	}
	if (p->state == PEND_ASK) {
		/* A peer that died before answering: wait for its sessions'
		 * adoption (csession_left: one that said goodbye answers no more). */
		for (uint32_t i = 0; i < p->n_wait;) {
			if (nodes_peer(cl, p->wait[i], false)) {
				i++;
				continue;
			}
			ids_add(&p->dead, &p->n_dead, p->wait[i]);
			ids_del(p->wait, &p->n_wait, p->wait[i]);
		}
	}
	wheel_add(&cl->b->wheel, &p->timer, now + TICK_MS);
}

bool csession_hold(void *u, struct client *c, const char *id, bool clean_start, const struct mqtt_frame *f)
{
	struct cluster *cl = u;
	struct cl_sess *cs = cl->cs;
	struct broker *b = cl->b;
	if (c == cs->rerun)
		return false;
	struct cl_pend *p = NULL;
	HASH_FIND_STR(cs->pends, id, p);
	if (p) {
		/* The same client id again while its session is on its way: the
		 * newer connection wins (as a takeover); with Clean Start it
		 * discards the session, half-built here or not (the rest of it
		 * is ignored when it comes). */
		struct client *old = p->c;
		p->c = NULL;
		if (old) {
			old->cluster_held = false;
			client_close(old, 0, false, false, NULL);
		}
		if (clean_start) {
			pend_free(p);
			return false;
		}
	} else if (clean_start || !cl->joined || !cl->connected || (!cl->peers && !cl->claims) ||
		   (session_find(b, id) && !cadopt_busy(cl, id))) {
		return false; /* one adopted here whose replay runs waits for it (its claim's end) */
	}
	uint8_t *frame = malloc(f->len ? f->len : 1);
	if (!frame)
		return false; /* p (if any) goes on without a client */
	memcpy(frame, f->body, f->len);
	if (p) {
		free(p->frame);
	} else {
		size_t l = strlen(id);
		p = calloc(1, sizeof(*p) + l + 1);
		if (!p) {
			free(frame);
			return false;
		}
		memcpy(p->id, id, l + 1);
		p->cl = cl;
		p->deadline = broker_now(b) + cl->timeout_ms + 3000;
		wheel_entry_init(&p->timer, on_tick);
		HASH_ADD_STR(cs->pends, id, p);
		wheel_add(&b->wheel, &p->timer, broker_now(b) + TICK_MS);
	}
	p->frame = frame;
	p->flen = f->len;
	p->ftype = f->type;
	p->fflags = f->flags;
	p->c = c;
	c->cluster_held = true;
	net_conn_pause_read(c->conn, true);
	if (p->state == PEND_ASK && !p->req)
		ask(p); /* it has peers or claims: not finished at once */
	return true;
}

void csession_client_gone(void *u, struct client *c)
{
	struct cluster *cl = u;
	struct cl_pend *p, *t;
	c->cluster_held = false;
	HASH_ITER(hh, cl->cs->pends, p, t) {
		if (p->c != c)
			continue;
		p->c = NULL;
		if (p->state == PEND_ASK)
			pend_free(p); /* nothing moved yet */
		/* PEND_TAKE: the owner drops its copy: finish it here, detached */
	}
}

bool csession_pending(struct cluster *cl, const char *id)
{
	struct cl_pend *p = NULL;
	if (cl->cs)
		HASH_FIND_STR(cl->cs->pends, id, p);
	return p != NULL;
}

const char *csession_direct(const struct cluster *cl)
{
	return cl->cs->direct;
}

bool csession_busy(struct cluster *cl, const char *id)
{
	struct cl_pend *p = NULL;
	if (!cl->cs)
		return false;
	HASH_FIND_STR(cl->cs->pends, id, p);
	return p && p->state == PEND_TAKE;
}

/* "It is here": SUBS from the owner. Build, then take. */
static void got_subs(struct cl_pend *p, uint64_t from, struct cl_rbuf *r, const char *reply)
{
	struct cluster *cl = p->cl;
	struct cl_meta m;
	if (csrecord_decode(r, &m))
		return;
	struct session *s = session_find(cl->b, p->id);
	if (s) {
		csrecord_meta_free(&m);
		finish(p, "already here");
		return;
	}
	s = csrecord_build(cl, &m);
	csrecord_meta_free(&m);
	if (!s) {
		finish(p, "could not be built here (no memory), a new session");
		return;
	}
	nodes_peer(cl, from, true); /* watched: if it dies while sending, we stop waiting */
	p->serial = s->serial;
	p->owner = from;
	p->state = PEND_TAKE;
	p->deadline = broker_now(cl->b) + cl->timeout_ms + 5000;
	/* After the SUBs its filters just sent, on the same connection. */
	struct cl_wbuf w = {0};
	cs_hdr(cl, &w, K_TAKE, p->req, p->id);
	cs_send_to(cl, reply, cl->cs->direct, &w);
}

static struct message *env_message(struct cluster *cl, struct cl_rbuf *r, size_t n)
{
	const uint8_t *d = csrecord_bytes(r, n);
	struct cl_env e;
	if (!d || env_decode(d, n, &e) || !e.topic.len)
		return NULL;
	uint64_t limit = cl->b->mem.limit; /* accepted at the other node: never refused here */
	cl->b->mem.limit = 0;
	struct message *m = xroute_message(cl, &e, false);
	cl->b->mem.limit = limit;
	return m;
}

/* Apply the owner's items (in its order), then ours that it did not have. */
static unsigned merge(struct cl_pend *p, struct session *s, uint16_t next_pid, unsigned *dups)
{
	struct cluster *cl = p->cl;
	struct out_list mine = s->queue;
	struct seen *set = NULL, *x, *xt;
	unsigned n = 0;
	memset(&s->queue, 0, sizeof(s->queue));
	struct cl_rbuf r = {p->data.p, p->data.len, 0, false};
	while (r.off < r.len && !r.err) {
		uint8_t type = (uint8_t)csrecord_get(&r, 1);
		uint32_t len = (uint32_t)csrecord_get(&r, 4);
		const uint8_t *body = csrecord_bytes(&r, len);
		if (!body)
			break;
		struct cl_rbuf ib = {body, len, 0, false};
		if (type == IT_OUT) {
			uint8_t state = (uint8_t)csrecord_get(&ib, 1), qos = (uint8_t)csrecord_get(&ib, 1);
			bool retain = csrecord_get(&ib, 1) != 0, sent = csrecord_get(&ib, 1) != 0;
			uint16_t pid = (uint16_t)csrecord_get(&ib, 2);
			uint8_t nid = (uint8_t)csrecord_get(&ib, 1);
			uint32_t ids[256];
			for (unsigned i = 0; i < nid; i++)
				ids[i] = (uint32_t)csrecord_get(&ib, 4);
			uint64_t at = csrecord_get(&ib, 8);
			struct message *m = ib.err ? NULL : env_message(cl, &ib, ib.len - ib.off);
			if (!m)
				continue;
			if (at) /* routed (stored) back then, not now: where a replay for it starts (cadopt.c) */
				m->cl_at = store_wall_to_mono(cl->b, at);
			if (deliver_restore(s, m, qos, retain, state, pid, ids, nid, 0) == 0) {
				n++;
				if (state != OUT_QUEUED && !sent && s->inflight.tail)
					s->inflight.tail->sent = false; /* never left the other node: no DUP */
			}
			if (m->cl_seq && (x = calloc(1, sizeof(*x)))) {
				x->key[0] = m->cl_inst;
				x->key[1] = m->cl_seq;
				HASH_ADD(hh, set, key, sizeof(x->key), x);
			}
			message_unref(&m);
		} else if (type == IT_QOS2) {
			uint16_t pid = (uint16_t)csrecord_get(&ib, 2);
			struct message *m = ib.len > ib.off ? env_message(cl, &ib, ib.len - ib.off) : NULL;
			if (m)
				m->origin_sid = s->serial; /* its publisher's session is this one now (no-local) */
			if (ib.err || !pid || session_qos2_find(s, pid) || session_qos2_add(s, pid, m))
				message_unref(&m);
		}
	}
	*dups = 0;
	for (struct outmsg *o = mine.head; o; o = o->next) {
		uint64_t key[2] = {o->msg->cl_inst, o->msg->cl_seq};
		x = NULL;
		if (key[1])
			HASH_FIND(hh, set, key, sizeof(key), x);
		if (x)
			(*dups)++; /* it had it too */
		else
			deliver_restore(s, o->msg, o->qos, o->retain, OUT_QUEUED, 0, o->sub_ids, o->n_sub_ids, 0);
	}
	out_list_clear(&mine);
	HASH_ITER(hh, set, x, xt) {
		HASH_DEL(set, x);
		free(x);
	}
	if (next_pid)
		s->next_pid = next_pid;
	return n;
}

static void got_end(struct cl_pend *p, struct cl_rbuf *r)
{
	uint32_t chunks = (uint32_t)csrecord_get(r, 4);
	uint16_t next_pid = (uint16_t)csrecord_get(r, 2);
	struct session *s = half_built(p);
	if (!s) {
		finish(p, "dropped here while it was on its way, a new session");
		return;
	}
	if (r->err || chunks != p->chunks || p->broken)
		log_msg(p->cl->b, LOG_F_WARNING, "Cluster: part of the messages of client %s were lost on their way from "
						 "another node.", p->id);
	unsigned dups = 0, n = merge(p, s, next_pid, &dups);
	char how[160];
	snprintf(how, sizeof(how), "moved here with %u message(s) from the other node, %u arrived here too", n, dups);
	finish(p, how);
}

/* Something on our direct subject: answers to our asks and takes, or a take. */

void csession_direct_in(struct cluster *cl, natsMsg *msg)
{
	struct cl_rbuf r = {(const uint8_t *)natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, false};
	bool absent;
	int kind = (int)csrecord_get(&r, 1);
	uint64_t from = csrecord_get(&r, 8), req = csrecord_get(&r, 8);
	char *id = csrecord_getstr(&r, &absent);
	if (!id || r.err) {
		free(id);
		return;
	}
	if (kind == K_TAKE) {
		csession_take_in(cl, from, req, id, natsMsg_GetReply(msg));
		free(id);
		return;
	}
	struct cl_pend *p = NULL;
	HASH_FIND_STR(cl->cs->pends, id, p);
	free(id);
	if (!p || p->req != req)
		return; /* a late answer to an ask that is over */
	switch (kind) {
	case K_NONE:
		if (p->state != PEND_ASK)
			break;
		ids_del(p->wait, &p->n_wait, from);
		if (!p->n_wait && !p->n_dead)
			finish(p, "not on any other node, a new session");
		break;
	case K_SUBS:
		if (p->state == PEND_ASK)
			got_subs(p, from, &r, natsMsg_GetReply(msg));
		break;
	case K_DATA:
		if (p->state != PEND_TAKE || from != p->owner)
			break;
		if (csrecord_get(&r, 4) != p->chunks || r.err)
			p->broken = true;
		p->chunks++;
		csrecord_put(&p->data, r.p + r.off, r.len - r.off);
		if (p->data.err)
			p->broken = true;
		break;
	case K_END:
		if (p->state == PEND_TAKE && from == p->owner)
			got_end(p, &r);
		break;
	case K_GONE:
		if (p->state == PEND_TAKE && from == p->owner) {
			struct session *s = half_built(p);
			if (s)
				session_destroy(s);
			finish(p, "taken by another connection meanwhile, a new session");
		}
		break;
	}
}

/* Sessions of a dead instance were adopted (here or by the sender of
 * P.sadopt): the asks that waited for it ask again. */
static void adopted(struct cluster *cl, uint64_t inst)
{
	struct cl_pend *p, *t;
	HASH_ITER(hh, cl->cs->pends, p, t) {
		if (p->state != PEND_ASK || !(ids_has(p->dead, p->n_dead, inst) || ids_has(p->wait, p->n_wait, inst)))
			continue;
		ids_del(p->dead, &p->n_dead, inst);
		ids_del(p->wait, &p->n_wait, inst);
		if (session_find(cl->b, p->id))
			finish(p, "resumed from the record of a dead node");
		else
			ask(p);
	}
}

void csession_left(struct cluster *cl, uint64_t inst)
{
	struct cl_pend *p, *t;
	if (!cl->cs)
		return;
	HASH_ITER(hh, cl->cs->pends, p, t) {
		if (p->state != PEND_ASK)
			continue;
		ids_del(p->dead, &p->n_dead, inst);
		ids_del(p->wait, &p->n_wait, inst);
		if (!p->n_wait && !p->n_dead)
			finish(p, "its node left, a new session");
	}
}

void csession_adopt_in(struct cluster *cl, natsMsg *msg)
{
	char buf[32];
	int len = natsMsg_GetDataLength(msg);
	uint64_t inst = 0;
	if (len <= 0 || len >= (int)sizeof(buf))
		return;
	memcpy(buf, natsMsg_GetData(msg), (size_t)len);
	buf[len] = 0;
	if (sscanf(buf, "%16" SCNx64, &inst) == 1)
		adopted(cl, inst);
}

void csession_claimed(struct cluster *cl, uint64_t inst)
{
	ids_add(&cl->cs->won, &cl->cs->n_won, inst);
}

void csession_claim_done(struct cluster *cl, uint64_t inst)
{
	struct cl_sess *cs = cl->cs;
	if (!ids_has(cs->won, cs->n_won, inst))
		return; /* lost: the winner says P.sadopt when it is done */
	ids_del(cs->won, &cs->n_won, inst);
	char subj[96], buf[24];
	snprintf(subj, sizeof(subj), "%s.sadopt", cl->prefix);
	int n = snprintf(buf, sizeof(buf), "%016" PRIx64, inst);
	natsConnection_Publish(cl->nc, subj, buf, n);
	adopted(cl, inst);
}

/* ---- start, stop, hooks ----------------------------------------------------------- */

int csession_start(struct cluster *cl)
{
	cl->cs = calloc(1, sizeof(*cl->cs));
	if (!cl->cs)
		return -1;
	uint64_t tok = 0;
	if (getrandom(&tok, sizeof(tok), 0) != (ssize_t)sizeof(tok))
		tok = cl->inst ^ 0x5bd1e995u;
	snprintf(cl->cs->direct, sizeof(cl->cs->direct), "%s.s.%016" PRIx64, cl->prefix, tok);
	cl->cs->next_req = tok << 16;
	return 0;
}

void csession_joined(struct cluster *cl)
{
	char subj[3][128];
	snprintf(subj[0], sizeof(subj[0]), "%s.sget", cl->prefix);
	snprintf(subj[1], sizeof(subj[1]), "%s", cl->cs->direct);
	snprintf(subj[2], sizeof(subj[2]), "%s.sadopt", cl->prefix);
	static const enum cl_tag tag[3] = {TAG_SGET, TAG_SDIRECT, TAG_SADOPT};
	for (int i = 0; i < 3; i++)
		if (!cl->cs->sub[i] &&
		    natsConnection_Subscribe(&cl->cs->sub[i], cl->nc, subj[i], link_on_msg, &cl->tags[tag[i]]) != NATS_OK) {
			cl->cs->sub[i] = NULL;
			log_msg(cl->b, LOG_F_WARNING, "Cluster: cannot subscribe to %s: sessions will not move between nodes.",
				subj[i]);
		}
}

void csession_free(struct cluster *cl)
{
	struct cl_sess *cs = cl->cs;
	if (!cs)
		return;
	while (cs->pends)
		pend_free(cs->pends);
	for (int i = 0; i < 3; i++) {
		if (cs->sub[i]) {
			natsSubscription_Unsubscribe(cs->sub[i]);
			natsSubscription_Destroy(cs->sub[i]);
		}
	}
	free(cs->won);
	free(cs);
	cl->cs = NULL;
}

size_t csession_route_out(void *u, const struct message *m)
{
	struct cluster *cl = u;
	uint64_t before = cl->seq;
	size_t r = xroute_route_out(u, m);
	if (cl->seq != before) {
		/* Its identity across the cluster (bookkeeping, not content: the
		 * same message object the local deliveries share). */
		struct message *mm = (struct message *)(uintptr_t)m;
		mm->cl_inst = cl->inst;
		mm->cl_seq = cl->seq;
		mm->cl_at = broker_now(cl->b);
	}
	return r;
}

void csession_attached(void *u, struct session *s)
{
	nodes_attached(u, s);
	csrecord_changed(u, s);
}

void csession_step_down(struct cluster *cl)
{
	/* The cluster declared this node dead: the claimer adopted its
	 * persistent sessions from their records; the copies here would
	 * answer for them too. Their clients were closed just before. */
	struct broker *b = cl->b;
	unsigned n = 0;
	for (uint32_t i = 0; i < b->stab_size; i++) {
		for (struct session *s = b->stab[i], *nx; s; s = nx) {
			nx = s->hnext;
			if (s->client || !s->cluster_rec || csession_busy(cl, s->id))
				continue;
			s->cluster_rec = false; /* purged with the old instance */
			session_destroy(s);
			n++;
		}
	}
	if (n)
		log_msg(b, LOG_F_WARNING, "Cluster: dropped %u persistent session(s) the cluster resumed on another node.", n);
}
