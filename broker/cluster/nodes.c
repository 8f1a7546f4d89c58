/*
 * broker/cluster/nodes.c — node liveness, wills cluster-wide, takeover
 * across nodes.
 *
 * Every node publishes a heartbeat on P.hb each hb_ms (a timer on the
 * broker's wheel); each peer instance has a wheel entry re-armed lazily at
 * last_seen + cluster_node_timeout, like a client's keepalive. A peer not
 * heard from for that long is dead: this node asks the link thread to
 * claim it (a KV create in the dead bucket: exactly one node wins) and the
 * winner publishes the wills that instance had stored in the wills bucket,
 * once. A node does not judge others while it is itself cut off from NATS,
 * and when it comes back (or finds its loop stalled longer than the
 * timeout) it claims its own instance: if it wins, nobody published its
 * wills and it carries on as a new instance; if it loses, the cluster
 * declared it dead, so it drops its wills unpublished and closes its
 * clients' connections (they reconnect and own their sessions afresh).
 * A CONNECT is announced on P.conn; the node holding a connection with the
 * same client id closes it (v5 DISCONNECT 0x8E) and forgets its session.
 * A will with a delay waits on the winner's wheel and is dropped if the
 * client connects again anywhere before it is due — also when that
 * connect came before the will's record reached the winner: connects are
 * remembered for a while (cl_recent) and a record of a client seen
 * connecting after its node went silent is dropped.
 * A node stopped gracefully hands the delayed wills that would die with it
 * (held for dead nodes; its own, without a store) to the cluster: stored
 * under its instance with what is left of their delay, then a goodbye
 * that asks the others to claim it as if it had died (nodes_bye).
 * Not here: sessions that move between nodes (csession.c; a step-down
 * and a new instance tell it and csrecord.c).
 * Invariant: a will is in the wills bucket under this node's current
 * instance exactly while a local session holds it (bucket permitting).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cluster_int.h"

static void send_hb(struct cluster *cl, uint64_t inst, bool bye)
{
	char subj[96], buf[128];
	snprintf(subj, sizeof(subj), "%s.hb", cl->prefix);
	int n = snprintf(buf, sizeof(buf), "%016" PRIx64 " %s %d", inst, cl->conf->node_id, bye ? 1 : 0);
	natsConnection_Publish(cl->nc, subj, buf, n);
}

static void on_hb_timer(struct wheel_entry *e, uint64_t now)
{
	struct cluster *cl = (struct cluster *)((char *)e - offsetof(struct cluster, hb_timer));
	if (cl->joined && cl->connected) {
		/* The loop stood still longer than the timeout (SIGSTOP, a stall):
		 * the cluster may have buried us meanwhile. */
		if (cl->hb_at && now > cl->hb_at + cl->timeout_ms) {
			log_msg(cl->b, LOG_F_WARNING, "Cluster: this node was silent for %" PRIu64 " ms; checking with the cluster.",
				now - cl->hb_at + cl->hb_ms);
			cluster_command(cl, CMD_SELF, cl->inst);
		}
		send_hb(cl, cl->inst, false);
	}
	cl->hb_at = now + cl->hb_ms;
	wheel_add(&cl->b->wheel, &cl->hb_timer, cl->hb_at);
}

void nodes_start(struct cluster *cl)
{
	wheel_entry_init(&cl->hb_timer, on_hb_timer);
	cl->recent_tail = &cl->recent_head;
	cl->hb_at = broker_now(cl->b) + cl->hb_ms;
	wheel_add(&cl->b->wheel, &cl->hb_timer, cl->hb_at);
}

static void peer_free(struct cluster *cl, struct cl_peer *p)
{
	HASH_DEL(cl->peers, p);
	wheel_cancel(&cl->b->wheel, &p->timer);
	free(p);
}

/* ---- claims and recent connects ---------------------------------------------------- */

/* Forget connects older than any claim in progress can ask about: a peer
 * still alive was heard within the timeout, so a future claim's
 * silent_since is later than now - timeout. */
static void recent_prune(struct cluster *cl, uint64_t now)
{
	uint64_t keep = now > 2ull * cl->timeout_ms + cl->hb_ms ? now - 2ull * cl->timeout_ms - cl->hb_ms : 0;
	struct cl_claim *c, *ct;
	HASH_ITER(hh, cl->claims, c, ct) {
		if (c->silent_since < keep)
			keep = c->silent_since;
	}
	while (cl->recent_head && cl->recent_head->at < keep) {
		struct cl_recent *r = cl->recent_head;
		cl->recent_head = r->next;
		if (!cl->recent_head)
			cl->recent_tail = &cl->recent_head;
		HASH_DEL(cl->recent, r);
		free(r);
	}
}

/* Client id seen connecting now on instance inst (this node or another). */
static void recent_add(struct cluster *cl, const char *id, uint64_t inst)
{
	uint64_t now = broker_now(cl->b);
	recent_prune(cl, now);
	struct cl_recent *r = NULL;
	HASH_FIND_STR(cl->recent, id, r);
	if (r) { /* move to the tail: the list stays oldest first */
		struct cl_recent **pp = &cl->recent_head;
		while (*pp != r)
			pp = &(*pp)->next;
		*pp = r->next;
		if (cl->recent_tail == &r->next)
			cl->recent_tail = pp;
	} else {
		size_t l = strlen(id);
		r = malloc(sizeof(*r) + l + 1);
		if (!r)
			return;
		memcpy(r->id, id, l + 1);
		HASH_ADD_STR(cl->recent, id, r);
	}
	if (!cl->recent_tail)
		cl->recent_tail = &cl->recent_head;
	r->at = now;
	r->inst = inst;
	r->next = NULL;
	*cl->recent_tail = r;
	cl->recent_tail = &r->next;
}

/* Did client id connect on another node after instance inst went silent?
 * (Its own connect on the dead node, before it died, does not count.) */
static bool back_since_claim(struct cluster *cl, uint64_t inst, const char *id)
{
	struct cl_claim *c = NULL;
	struct cl_recent *r = NULL;
	HASH_FIND(hh, cl->claims, &inst, sizeof(inst), c);
	HASH_FIND_STR(cl->recent, id, r);
	return c && r && r->inst != inst && r->at >= c->silent_since;
}

void nodes_claim_done(struct cluster *cl, uint64_t inst)
{
	struct cl_claim *c = NULL;
	HASH_FIND(hh, cl->claims, &inst, sizeof(inst), c);
	if (c) {
		HASH_DEL(cl->claims, c);
		free(c);
	}
}

static void claim_start(struct cluster *cl, uint64_t inst, uint64_t silent_since)
{
	struct cl_claim *c = NULL;
	HASH_FIND(hh, cl->claims, &inst, sizeof(inst), c);
	if (c) /* claimed again after a failed try: it has been silent since the first */
		return;
	c = calloc(1, sizeof(*c));
	if (!c)
		return; /* then a reconnect before the will record arrives does not cancel it */
	c->inst = inst;
	c->silent_since = silent_since;
	HASH_ADD(hh, cl->claims, inst, sizeof(c->inst), c);
}

static void declare_dead(struct cluster *cl, struct cl_peer *p, const char *why)
{
	log_msg(cl->b, LOG_F_NOTICE, "Cluster: node %s (instance %016" PRIx64 ") %s: dead.", p->node[0] ? p->node : "?",
		p->inst, why);
	claim_start(cl, p->inst, p->last_seen);
	cluster_command(cl, CMD_CLAIM, p->inst);
	peer_free(cl, p);
}

static void on_peer_timer(struct wheel_entry *e, uint64_t now)
{
	struct cl_peer *p = (struct cl_peer *)((char *)e - offsetof(struct cl_peer, timer));
	struct cluster *cl = p->cl;
	uint64_t due = p->last_seen + cl->timeout_ms;
	if (now < due) {
		wheel_add(&cl->b->wheel, &p->timer, due);
	} else if (!cl->connected) {
		wheel_add(&cl->b->wheel, &p->timer, now + cl->timeout_ms); /* we are the blind one */
	} else {
		char why[64];
		snprintf(why, sizeof(why), "not heard from for %" PRIu64 " ms", now - p->last_seen);
		declare_dead(cl, p, why);
	}
}

struct cl_peer *nodes_peer(struct cluster *cl, uint64_t inst, bool create)
{
	struct cl_peer *p = NULL;
	HASH_FIND(hh, cl->peers, &inst, sizeof(inst), p);
	if (p || !create || inst == cl->inst)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->inst = inst;
	p->cl = cl;
	p->last_seen = broker_now(cl->b);
	wheel_entry_init(&p->timer, on_peer_timer);
	HASH_ADD(hh, cl->peers, inst, sizeof(p->inst), p);
	wheel_add(&cl->b->wheel, &p->timer, p->last_seen + cl->timeout_ms);
	return p;
}

/* ---- wills ------------------------------------------------------------------------ */

static int will_subject(struct cluster *cl, const char *id, char *subj, size_t cap)
{
	char tok[CL_SUBJ_MAX + 1];
	if (subject_token(tok, sizeof(tok), (const uint8_t *)id, strlen(id)) < 0)
		return -1;
	int n = snprintf(subj, cap, "$KV.%s.%016" PRIx64 ".%s", cl->bucket[1], cl->inst, tok);
	return n < 0 || (size_t)n >= cap || n > CL_SUBJ_MAX ? -1 : 0;
}

/* A record in the wills bucket under this node's instance: e (whose inst
 * is replaced by ours), or a deletion when e is NULL. -1: the client id
 * does not fit in a subject. */
static int will_record(struct cluster *cl, const char *id, const struct cl_env *e)
{
	char subj[CL_SUBJ_MAX + 1];
	if (!cl->joined)
		return 0;
	if (will_subject(cl, id, subj, sizeof(subj)))
		return -1;
	struct cl_env d = {.flags = ENV_DELETED, .id = mqtt_cstr(id)};
	if (e)
		d = *e;
	d.inst = cl->inst;
	size_t len;
	uint8_t *buf = env_encode(&d, &len);
	if (buf)
		natsConnection_Publish(cl->nc, subj, buf, (int)len);
	free(buf);
	return 0;
}

static void will_put(struct cluster *cl, struct session *s)
{
	struct will *w = s->will;
	if (!w || !cl->joined)
		return;
	if (!security_acl(s->client, s, (const char *)w->msg->topic.p, AUTH_WRITE))
		return; /* it would be denied when published: do not let another node publish it */
	const struct message *m = w->msg;
	struct cl_env e = {
		.flags = (uint8_t)((m->qos & ENV_QOS) | (m->retain ? ENV_RETAIN : 0) | (w->has_expiry ? ENV_EXPIRY : 0)),
		.rel_expiry = w->expiry,
		/* v5 MQTT-3.1.3-9: held back for the delay or until the session
		 * would end, whichever is first (session.c does the same locally) */
		.delay = w->delay == 0 || s->expiry == 0 ? 0 : (w->delay < s->expiry ? w->delay : s->expiry),
		.topic = m->topic,
		.id = mqtt_cstr(s->id),
		.user = s->username ? mqtt_cstr(s->username) : (struct mqtt_str){0},
		.props = m->props,
		.payload = m->payload,
	};
	if (will_record(cl, s->id, &e))
		log_msg(cl->b, LOG_F_WARNING, "Cluster: client id too long for the cluster; the will of %.64s... stays local.",
			s->id);
}

static void put_all_wills(struct cluster *cl)
{
	struct broker *b = cl->b;
	for (uint32_t i = 0; i < b->stab_size; i++)
		for (struct session *s = b->stab[i]; s; s = s->hnext)
			if (s->will)
				will_put(cl, s);
}

void nodes_will_gone(void *u, struct session *s)
{
	will_record(u, s->id, NULL);
}

static void publish_dead_will(struct cluster *cl, const char *id, struct message *m, uint32_t rel_expiry)
{
	struct broker *b = cl->b;
	log_msg(b, LOG_F_NOTICE, "Cluster: publishing the will of client %s of a dead node on '%s'.", id,
		(const char *)m->topic.p);
	if (m->has_expiry) /* counted from publication */
		m->expiry_at = broker_now(b) + (uint64_t)rel_expiry * 1000u;
	if (m->retain)
		route_retain(b, m);
	route_message(b, m); /* as a local publish: to this node's and every other node's subscribers */
	b->st.wills_published++;
}

/* drop_record: the will is published or cancelled, so the copy this node
 * keeps under its own instance (nodes_will_in) goes too. */
static void pwill_free(struct cluster *cl, struct cl_pwill *pw, bool drop_record)
{
	if (drop_record)
		will_record(cl, pw->id, NULL);
	HASH_DEL(cl->pwills, pw);
	wheel_cancel(&cl->b->wheel, &pw->timer);
	message_unref(&pw->m);
	free(pw);
}

static void on_pwill(struct wheel_entry *e, uint64_t now)
{
	struct cl_pwill *pw = (struct cl_pwill *)((char *)e - offsetof(struct cl_pwill, timer));
	(void)now;
	publish_dead_will(pw->cl, pw->id, pw->m, pw->rel_expiry);
	pwill_free(pw->cl, pw, true);
}

/* The client connected again (anywhere) within its will delay: the will is
 * not published (v5 MQTT-3.1.3-9). */
static void pwill_cancel(struct cluster *cl, const char *id)
{
	struct cl_pwill *pw = NULL;
	HASH_FIND_STR(cl->pwills, id, pw);
	if (pw) {
		log_msg(cl->b, LOG_F_INFORMATION, "Cluster: client %s is back within its will delay; will dropped.", id);
		pwill_free(cl, pw, true);
	}
}

void nodes_will_in(struct cluster *cl, natsMsg *msg)
{
	struct cl_env e;
	if (env_decode((const uint8_t *)natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &e) ||
	    (e.flags & ENV_DELETED) || !e.topic.len || !mqtt_topic_name_valid(e.topic))
		return;
	struct message *m = xroute_message(cl, &e, true);
	if (!m)
		return;
	char *id = strndup((const char *)e.id.p, e.id.len);
	if (id && e.delay && back_since_claim(cl, e.inst, id)) {
		/* It connected again (here or elsewhere) after its node went
		 * silent and before this record arrived: within its delay, so
		 * dropped as pwill_cancel would have (v5 MQTT-3.1.3-9). */
		log_msg(cl->b, LOG_F_INFORMATION, "Cluster: client %s is back within its will delay; will dropped.", id);
		free(id);
		message_unref(&m);
		return;
	}
	if (id && e.delay) {
		struct cl_pwill *pw = calloc(1, sizeof(*pw) + e.id.len + 1), *old = NULL;
		if (pw) {
			HASH_FIND_STR(cl->pwills, id, old);
			if (old)
				pwill_free(cl, old, false); /* its record is replaced below */
			memcpy(pw->id, id, e.id.len + 1);
			pw->cl = cl;
			pw->m = m;
			pw->rel_expiry = e.rel_expiry;
			wheel_entry_init(&pw->timer, on_pwill);
			HASH_ADD_STR(cl->pwills, id, pw);
			wheel_add(&cl->b->wheel, &pw->timer, broker_now(cl->b) + (uint64_t)e.delay * 1000u);
			/* Held here for its delay: recorded under this node too, so
			 * that if this node dies before it is due, the node that
			 * claims this one takes the will over (its delay counted
			 * again from that claim: late by at most what had run). */
			will_record(cl, pw->id, &e);
			free(id);
			return;
		}
	}
	publish_dead_will(cl, id ? id : "?", m, e.rel_expiry);
	free(id);
	message_unref(&m);
}

/* ---- joins, instances, stepping down ----------------------------------------------- */

void nodes_joined(struct cluster *cl)
{
	uint64_t now = broker_now(cl->b);
	struct cl_peer *p, *tmp;
	HASH_ITER(hh, cl->peers, p, tmp) {
		p->last_seen = now; /* not heard while we were away: not their fault */
		p->heard = false;
		wheel_add(&cl->b->wheel, &p->timer, now + cl->timeout_ms);
	}
	put_all_wills(cl);
	csrecord_put_all(cl);
	send_hb(cl, cl->inst, false);
}

void nodes_new_instance(struct cluster *cl)
{
	uint64_t old = cl->inst, inst = 0;
	if (getrandom(&inst, sizeof(inst), 0) != (ssize_t)sizeof(inst) || !inst)
		inst = old * 6364136223846793005ull + 1442695040888963407ull;
	send_hb(cl, old, true);
	cl->inst = inst;
	log_msg(cl->b, LOG_F_NOTICE, "Cluster: still the owner of this node's clients; now instance %016" PRIx64 ".", inst);
	put_all_wills(cl);
	csrecord_put_all(cl);
	cluster_command(cl, CMD_PURGE, old);
	send_hb(cl, cl->inst, false);
}

void nodes_step_down(struct cluster *cl)
{
	struct broker *b = cl->b;
	log_msg(b, LOG_F_WARNING, "Cluster: the cluster declared this node dead and published its clients' wills; "
				  "closing their connections without publishing them again.");
	for (uint32_t i = 0; i < b->stab_size; i++) {
		for (struct session *s = b->stab[i]; s; s = s->hnext) {
			if (s->will)
				session_clear_will(s);
		}
	}
	for (struct client *c = b->clients, *n; c; c = n) {
		n = c->next_all;
		if (c->state != CS_CONNECTED || c->bridge || (c->s && c->s->bridge_owned))
			continue;
		client_close(c, 0x8E, false, false, "Session owned by the cluster");
	}
	uint64_t old = cl->inst, inst = 0;
	if (getrandom(&inst, sizeof(inst), 0) != (ssize_t)sizeof(inst) || !inst)
		inst = old * 6364136223846793005ull + 1442695040888963407ull;
	cl->inst = inst;
	csession_step_down(cl); /* its persistent sessions were adopted by the claimer */
	send_hb(cl, cl->inst, false);
}

/* ---- messages from the other nodes ------------------------------------------------- */

void nodes_hb_in(struct cluster *cl, natsMsg *msg)
{
	char buf[160], node[65] = "";
	int len = natsMsg_GetDataLength(msg), bye = 0;
	uint64_t inst = 0;
	if (len <= 0 || len >= (int)sizeof(buf))
		return;
	memcpy(buf, natsMsg_GetData(msg), (size_t)len);
	buf[len] = 0;
	if (sscanf(buf, "%16" SCNx64 " %64s %d", &inst, node, &bye) != 3 || inst == cl->inst)
		return;
	struct cl_peer *p = nodes_peer(cl, inst, false);
	if (bye) {
		if (p) {
			log_msg(cl->b, LOG_F_NOTICE, "Cluster: node %s left%s.", node,
				bye == 2 ? ", handing over its delayed wills" : "");
			peer_free(cl, p);
		}
		csession_left(cl, inst);
		if (bye == 2) { /* one node wins the claim and keeps them for their delays */
			claim_start(cl, inst, broker_now(cl->b));
			cluster_command(cl, CMD_CLAIM, inst);
		}
		return;
	}
	uint64_t now = broker_now(cl->b);
	if (!strcmp(node, cl->conf->node_id)) {
		if (cl->drops++ % 100 == 0)
			log_msg(cl->b, LOG_F_ERROR, "Cluster: another node (instance %016" PRIx64 ") uses cluster_node_id %s: "
				"node ids must be unique.", inst, node);
		return;
	}
	if (!p || !p->node[0]) {
		/* The same node under an older instance that has gone quiet: it
		 * restarted, so that one is dead (a shortcut: its timeout would say
		 * so too). One still speaking is a second node with the same id. */
		struct cl_peer *q, *tmp;
		HASH_ITER(hh, cl->peers, q, tmp) {
			if (q->inst == inst || strcmp(q->node, node))
				continue;
			if (now - q->last_seen > 2ull * cl->hb_ms)
				declare_dead(cl, q, "restarted");
			else
				log_msg(cl->b, LOG_F_ERROR, "Cluster: two nodes use cluster_node_id %s: node ids must be unique.",
					node);
		}
		if (!p)
			p = nodes_peer(cl, inst, true);
		if (!p)
			return;
		snprintf(p->node, sizeof(p->node), "%s", node);
		log_msg(cl->b, LOG_F_NOTICE, "Cluster: node %s (instance %016" PRIx64 ") is up.", node, inst);
	}
	p->last_seen = now;
	if (!p->heard) {
		p->heard = true;
		xqos_peer_heard(cl); /* its server has our subscriptions again */
	}
	nodes_claim_done(cl, inst); /* alive after all (a claim that failed): nothing to wait for */
	if (!wheel_armed(&p->timer))
		wheel_add(&cl->b->wheel, &p->timer, p->last_seen + cl->timeout_ms);
}

void nodes_dead_in(struct cluster *cl, natsMsg *msg)
{
	char buf[32];
	int len = natsMsg_GetDataLength(msg);
	uint64_t inst = 0;
	if (len <= 0 || len >= (int)sizeof(buf))
		return;
	memcpy(buf, natsMsg_GetData(msg), (size_t)len);
	buf[len] = 0;
	if (sscanf(buf, "%16" SCNx64, &inst) != 1)
		return;
	if (inst == cl->inst) {
		nodes_step_down(cl); /* we are alive after all, but no longer the owner */
		return;
	}
	struct cl_peer *p = nodes_peer(cl, inst, false);
	if (p)
		peer_free(cl, p);
}

/* ---- takeover across nodes --------------------------------------------------------- */

void nodes_attached(void *u, struct session *s)
{
	struct cluster *cl = u;
	if (s->bridge_owned)
		return;
	pwill_cancel(cl, s->id);
	recent_add(cl, s->id, cl->inst);
	if (!cl->joined)
		return;
	/* "<instance> <since> <client id>": of two connections with one id the
	 * later (since, then instance) stays, decided alike on both nodes. */
	s->cluster_since = store_wall_now();
	size_t idl = strlen(s->id);
	char subj[96], *buf = malloc(17 + 21 + idl + 1);
	if (buf) {
		snprintf(subj, sizeof(subj), "%s.conn", cl->prefix);
		int n = snprintf(buf, 17 + 21 + 1, "%016" PRIx64 " %" PRIu64 " ", cl->inst, s->cluster_since);
		memcpy(buf + n, s->id, idl);
		natsConnection_Publish(cl->nc, subj, buf, (int)(n + idl));
		free(buf);
	}
	if (s->will)
		will_put(cl, s);
}

void nodes_conn_in(struct cluster *cl, natsMsg *msg)
{
	const char *d = natsMsg_GetData(msg);
	int len = natsMsg_GetDataLength(msg);
	char head[40];
	uint64_t inst = 0, since = 0;
	const char *sp = len > 18 ? memchr(d + 17, ' ', (size_t)len - 17) : NULL;
	if (!sp || sp - d >= (ptrdiff_t)sizeof(head))
		return;
	memcpy(head, d, (size_t)(sp - d));
	head[sp - d] = 0;
	if (sscanf(head, "%16" SCNx64 " %" SCNu64, &inst, &since) != 2 || inst == cl->inst)
		return;
	char *id = strndup(sp + 1, (size_t)(d + len - sp - 1));
	if (!id)
		return;
	struct broker *b = cl->b;
	pwill_cancel(cl, id);
	recent_add(cl, id, inst);
	struct session *s = session_find(b, id);
	if (s && !s->bridge_owned) {
		if (s->client) {
			if (s->cluster_since > since || (s->cluster_since == since && cl->inst > inst)) {
				free(id); /* ours is the later connection: the other node closes its own */
				return;
			}
			log_msg(b, LOG_F_NOTICE, "Client %s connected to another cluster node, closing old connection.", id);
			/* as a takeover on one node: v5 DISCONNECT 0x8E, the will is published */
			client_close(s->client, 0x8E, true, false, "Session taken over");
			s = session_find(b, id);
		}
		if (s && !s->client && !csession_busy(cl, id))
			session_destroy(s); /* the client lives on the other node now */
	}
	free(id);
}

/* One delayed will handed over at goodbye: its record, stored (CMD_PUT)
 * after the purge, with what is left of its delay. */
static bool hand_over(struct cluster *cl, struct cl_env *e, const struct wheel_entry *t, uint64_t now)
{
	char subj[CL_SUBJ_MAX + 1], id[256];
	uint64_t left = t->deadline > now ? t->deadline - now : 0;
	e->delay = (uint32_t)((left + 999) / 1000);
	if (!e->delay)
		e->delay = 1;
	e->inst = cl->inst;
	snprintf(id, sizeof(id), "%.*s", (int)e->id.len, (const char *)e->id.p);
	if (e->id.len >= sizeof(id) || will_subject(cl, id, subj, sizeof(subj)))
		return false;
	size_t len;
	uint8_t *buf = env_encode(e, &len);
	if (!buf)
		return false;
	cluster_command_put(cl, subj, buf, len);
	free(buf);
	return true;
}

static void env_of_will(struct cl_env *e, const struct message *m, bool has_expiry, uint32_t rel_expiry,
			const char *id, const char *user)
{
	*e = (struct cl_env){
		.flags = (uint8_t)((m->qos & ENV_QOS) | (m->retain ? ENV_RETAIN : 0) | (has_expiry ? ENV_EXPIRY : 0)),
		.rel_expiry = rel_expiry,
		.topic = m->topic,
		.id = mqtt_cstr(id),
		.user = user ? mqtt_cstr(user) : (struct mqtt_str){0},
		.props = m->props,
		.payload = m->payload,
	};
}

/* Delayed wills that would die with this node go to the cluster: those
 * it holds for dead nodes, and without a store (which keeps them for the
 * restart) those of its own detached sessions. */
static unsigned hand_over_wills(struct cluster *cl)
{
	struct broker *b = cl->b;
	uint64_t now = broker_now(b);
	unsigned n = 0;
	struct cl_env e;
	struct cl_pwill *pw, *pt;
	HASH_ITER(hh, cl->pwills, pw, pt) {
		env_of_will(&e, pw->m, pw->m->has_expiry, pw->rel_expiry, pw->id, pw->m->origin_user);
		n += hand_over(cl, &e, &pw->timer, now);
	}
	for (uint32_t i = 0; !b->store && i < b->stab_size; i++) {
		for (struct session *s = b->stab[i]; s; s = s->hnext) {
			struct will *w = s->will;
			if (!w || s->client || s->bridge_owned || !wheel_armed(&w->timer) ||
			    !security_acl(NULL, s, (const char *)w->msg->topic.p, AUTH_WRITE))
				continue;
			env_of_will(&e, w->msg, w->has_expiry, w->expiry, s->id, s->username);
			n += hand_over(cl, &e, &w->timer, now);
		}
	}
	return n;
}

void nodes_bye(struct cluster *cl)
{
	cluster_command(cl, CMD_PURGE, cl->inst); /* wills and session records: a stopped node hands over no session */
	unsigned n = hand_over_wills(cl);
	if (!n) {
		send_hb(cl, cl->inst, true);
		return;
	}
	log_msg(cl->b, LOG_F_NOTICE, "Cluster: handing %u delayed will%s over to the cluster.", n, n == 1 ? "" : "s");
	cluster_command(cl, CMD_HANDOVER, cl->inst);
}

void nodes_free(struct cluster *cl)
{
	wheel_cancel(&cl->b->wheel, &cl->hb_timer);
	struct cl_pwill *pw, *pt;
	HASH_ITER(hh, cl->pwills, pw, pt)
		pwill_free(cl, pw, false);
	struct cl_peer *p, *tmp;
	HASH_ITER(hh, cl->peers, p, tmp)
		peer_free(cl, p);
	struct cl_claim *c, *ct;
	HASH_ITER(hh, cl->claims, c, ct) {
		HASH_DEL(cl->claims, c);
		free(c);
	}
	while (cl->recent_head) {
		struct cl_recent *r = cl->recent_head;
		cl->recent_head = r->next;
		HASH_DEL(cl->recent, r);
		free(r);
	}
	cl->recent_tail = &cl->recent_head;
}
