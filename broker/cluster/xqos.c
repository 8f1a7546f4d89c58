/*
 * broker/cluster/xqos.c — QoS 1/2 between nodes at least once (JetStream),
 * delivered once (issue 12 item 8).
 *
 * The stream vigil_<name>_msgs (link.c makes it at join) captures the
 * routed QoS >= 1 subjects (P.m.q.>, P.long.q), so core subscribers still
 * get each message as before and the stream keeps a short replay window of
 * them; QoS 0 (P.m.z.>, P.long.z) is not stored: at most once.
 * Publishing node: a routed QoS >= 1 message is published with a reply
 * (js_PublishMsgAsync, message id <instance>-<seq>, so a re-send is stored
 * once) and kept here until JetStream's PubAck. The acknowledgement of the
 * PUBLISH it came from (PUBACK; for QoS 2 PUBCOMP, or PUBREC when a store
 * routes it at PUBLISH) waits behind it: one FIFO of publishes and acks, released from
 * the head, so a client's acks leave in the order its PUBLISHes came (v311
 * MQTT-4.6.0-2). Not confirmed within ACK_WAIT_MS, or published while NATS
 * was lost: sent again, in order, once connected. Held longer than
 * HOLD_MS (NATS or JetStream gone for good): the ack leaves unconfirmed,
 * counted and logged, and while NATS stays lost past HOLD_MS new messages
 * are not held at all (core NATS, at most once, as without this file).
 * Receiving node: (origin instance, sequence) of every routed message is
 * remembered in a window per origin instance, kept for minutes even after
 * the instance left (a node reconnected to NATS takes a new one), so a
 * message that comes twice (two
 * filters, a re-send, a replay) is routed once. After a reconnection to
 * NATS it replays the stream from REPLAY_MARGIN_MS before it lost NATS
 * (link.c, CMD_REPLAY), once the other nodes are heard again (their
 * servers route to it again: what a replay read before then could miss);
 * live routed messages arriving meanwhile wait with
 * the replayed ones (REPLAY_HOLD_MS at most), and all are routed by
 * sequence: in each publisher's order.
 * Trade-offs: every routed QoS >= 1 message is stored by JetStream
 * (replicas cluster_replicas); its ack waits a JetStream round trip; QoS 0
 * that a node misses while cut off is not replayed. Not covered: shared-subscription deliveries are not replayed; a
 * message re-sent after later ones were stored reaches a node
 * that is not replaying after them, and a replay slower than
 * REPLAY_HOLD_MS (JetStream electing a stream leader) brings what the node
 * missed after newer ones (not lost, out of order).
 * Invariant: an XQ_PUB item is in the hash exactly while unconfirmed; an
 * XQ_ACK item's client has it counted in c->cluster_acks (c NULL: gone).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"

/* Fixed (they follow libnats' and link.c's own timing): */
#define ACK_WAIT_MS 2000      /* libnats reports a missing PubAck after this */
#define TICK_MS 200           /* re-sends and the hold bound are checked this often */
#define REPLAY_MARGIN_MS 5000 /* a broken link is noticed within ~3 pings of 1 s */
/* The operator's (config.h): the longest an ack waits for JetStream
 * (cluster_ack_hold), live messages for a replay (cluster_replay_hold). */
#define HOLD_MS(cl) ((uint64_t)(cl)->conf->ack_hold * 1000u)
#define SETTLE_MS 100 /* after the last peer heard again: the rest of its route's subscriptions */
#define REPLAY_HOLD_MS(cl) ((uint64_t)(cl)->conf->replay_hold * 1000u)
/* Per origin (128 KiB): which of its last sequences were seen. What a
 * replay brings must be within it (~100 s of a node routing 10 000 msgs/s);
 * an older sequence is taken as seen. */
#define WIN_BITS (1u << 20)
#define ORIGIN_KEEP_MS(cl) ((uint64_t)(cl)->conf->replay_window * 2000u) /* twice the stream's max age */

enum { XQ_PUB = 0, XQ_ACK };

struct xq_item {
	struct xq_item *next;
	UT_hash_handle hh; /* XQ_PUB while unconfirmed, by seq */
	uint8_t kind;
	bool acked, resend;
	uint8_t type, rc;  /* XQ_ACK */
	uint16_t pid;
	struct client *c;  /* XQ_ACK; NULL once gone */
	uint64_t inst, seq, at; /* XQ_PUB: identity (as in the envelope), first sent (monotonic ms) */
	uint32_t len;
	char *subj;        /* XQ_PUB: into data, after the payload */
	uint8_t data[];
};

/* What was routed here from one origin instance. */
struct xq_origin {
	UT_hash_handle hh; /* by inst */
	uint64_t inst, seq; /* the highest sequence seen */
	uint64_t used;      /* monotonic ms */
	bool own;           /* one of this node's instances: routed here when published */
	uint64_t win[WIN_BITS / 64]; /* sequences seq - WIN_BITS + 1 .. seq seen */
};

/* A routed message kept while a replay runs. */
struct xq_held {
	uint64_t seq; /* the order it is routed in */
	natsMsg *msg;
};

struct cl_xqos {
	struct xq_item *head, **tail, *pending; /* FIFO; hash of unconfirmed */
	struct wheel_entry tick;
	struct cluster *cl;
	unsigned unconfirmed;       /* acks that left after HOLD_MS without JetStream's confirmation */
	unsigned unheld;            /* messages not held at all: NATS lost for longer than HOLD_MS */
	unsigned replays;           /* CMD_REPLAY running or queued */
	bool holding;               /* routed messages are kept for the replay's end */
	struct wheel_entry hold;    /* ... until then at most */
	struct wheel_entry settle;  /* the replay's start: the routes to us are back */
	bool replay_wait;           /* a replay from replay_from waits for settle */
	uint64_t replay_from;       /* wall ms */
	bool backlog;               /* some publish waits to be sent again: new ones queue behind */
	struct xq_origin *origins;
	uint64_t own_inst, own_used; /* the instance last noted by xqos_routed, when */
	struct xq_held *deferred;   /* routed messages (live and replayed) during a replay */
	size_t n_deferred, cap_deferred;
};

/* ---- publishing node ------------------------------------------------------------ */

static bool nats_up(struct cluster *cl)
{
	return cl->connected && natsConnection_Status(cl->nc) == NATS_CONN_STATUS_CONNECTED;
}

/* it waits to be sent again, and every publish after it too. */
static bool stall(struct cl_xqos *x, struct xq_item *it)
{
	it->resend = x->backlog = true;
	return false;
}

/* One async publish of it; false: not sent (sent again later). While
 * libnats reconnects it is not even tried: it would sit in libnats' buffer
 * and reach NATS after messages re-sent from here, out of order. */
static bool send_item(struct cluster *cl, struct xq_item *it)
{
	char id[48];
	natsMsg *msg = NULL;
	if (!nats_up(cl) || natsMsg_Create(&msg, it->subj, NULL, (const char *)it->data, (int)it->len) != NATS_OK)
		return stall(cl->xq, it);
	snprintf(id, sizeof(id), "%016" PRIx64 "-%" PRIu64, it->inst, it->seq);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MsgId = id; /* JetStream stores a re-send once */
	po.MaxWait = ACK_WAIT_MS;
	natsStatus s = js_PublishMsgAsync(cl->js_pub, &msg, &po);
	natsMsg_Destroy(msg); /* NULL when libnats took it */
	if (s != NATS_OK)
		return stall(cl->xq, it);
	it->resend = false;
	return true;
}

static void arm(struct cl_xqos *x)
{
	if (x->head && !wheel_armed(&x->tick))
		wheel_add(&x->cl->b->wheel, &x->tick, broker_now(x->cl->b) + TICK_MS);
}

/* Pop what may go: confirmed publishes, and the acks behind them. */
static void release(struct cl_xqos *x)
{
	struct xq_item *it;
	while ((it = x->head) && (it->kind == XQ_ACK || it->acked)) {
		x->head = it->next;
		if (!x->head)
			x->tail = &x->head;
		if (it->kind == XQ_ACK && it->c) {
			it->c->cluster_acks--;
			client_send_ack(it->c, it->type, it->pid, it->rc);
		}
		free(it);
	}
}

static void confirm(struct cl_xqos *x, struct xq_item *it)
{
	it->acked = true;
	HASH_DEL(x->pending, it);
}

static void on_tick(struct wheel_entry *e, uint64_t now)
{
	struct cl_xqos *x = (struct cl_xqos *)((char *)e - offsetof(struct cl_xqos, tick));
	struct cluster *cl = x->cl;
	unsigned given_up = 0;
	bool stuck = false;
	for (struct xq_item *it = x->head; it; it = it->next) {
		if (it->kind != XQ_PUB || it->acked)
			continue;
		if (now - it->at >= HOLD_MS(cl)) {
			confirm(x, it); /* released below, as if confirmed */
			given_up++;
		} else if (!stuck && it->resend && !send_item(cl, it)) {
			stuck = true; /* NATS still away: the rest waits, in order */
		}
	}
	x->backlog = stuck;
	if (given_up) {
		x->unconfirmed += given_up;
		log_msg(cl->b, LOG_F_WARNING,
			"Cluster: JetStream did not confirm %u routed message%s within %u s: acknowledged anyway, "
			"other nodes may miss %s (%u so far).", given_up, given_up == 1 ? "" : "s", cl->conf->ack_hold,
			given_up == 1 ? "it" : "them", x->unconfirmed);
	}
	release(x);
	arm(x);
}

bool xqos_publish(struct cluster *cl, const char *subj, const uint8_t *buf, size_t len, uint64_t seq)
{
	struct cl_xqos *x = cl->xq;
	uint64_t now = broker_now(cl->b);
	if (!cl->connected && cl->down_since && now - cl->down_since >= HOLD_MS(cl)) {
		if (x->unheld++ % 1000 == 0)
			log_msg(cl->b, LOG_F_WARNING, "Cluster: NATS lost for more than %u s: routed QoS 1/2 messages are "
				"acknowledged without JetStream's confirmation (%u so far).", cl->conf->ack_hold, x->unheld);
		return false;
	}
	size_t sl = strlen(subj);
	struct xq_item *it = calloc(1, sizeof(*it) + len + sl + 1);
	if (!it)
		return false;
	it->kind = XQ_PUB;
	it->inst = cl->inst; /* a re-send after a new instance keeps its id */
	it->seq = seq;
	it->at = now;
	it->len = (uint32_t)len;
	memcpy(it->data, buf, len);
	it->subj = (char *)it->data + len;
	memcpy(it->subj, subj, sl + 1);
	*x->tail = it;
	x->tail = &it->next;
	HASH_ADD(hh, x->pending, seq, sizeof(it->seq), it);
	if (x->backlog)
		it->resend = true; /* behind one to be sent again: after it (order per publisher) */
	else
		send_item(cl, it);
	arm(x);
	return true;
}

bool xqos_ack_hold(void *u, struct client *c, const struct message *m, uint8_t type, uint16_t pid, uint8_t rc)
{
	struct cluster *cl = u;
	struct cl_xqos *x = cl->xq;
	struct xq_item *p = NULL;
	if (m && m->qos && m->cl_inst == cl->inst)
		HASH_FIND(hh, x->pending, &m->cl_seq, sizeof(m->cl_seq), p);
	/* With a store, a message-less PUBREC answers a re-sent QoS 2 PUBLISH
	 * whose message was routed when it first came, perhaps on an earlier
	 * connection whose PUBREC still waited: it waits behind everything
	 * routed before it (that one among them), so the publisher is not
	 * released before JetStream has the message (v5 MQTT-4.3.3-8). */
	bool resent = !m && type == MQTT_PUBREC && !rc && cl->b->store && x->head;
	if (!p && !c->cluster_acks && !resent)
		return false; /* nothing to wait for, nothing of c's ahead */
	struct xq_item *it = calloc(1, sizeof(*it));
	if (!it)
		return false; /* no memory: sent now (before JetStream confirmed) */
	it->kind = XQ_ACK;
	it->c = c;
	it->type = type;
	it->pid = pid;
	it->rc = rc;
	*x->tail = it;
	x->tail = &it->next;
	c->cluster_acks++;
	release(x); /* nothing ahead of it: at once */
	return true;
}

void xqos_client_gone(struct cluster *cl, struct client *c)
{
	for (struct xq_item *it = cl->xq->head; it; it = it->next)
		if (it->c == c)
			it->c = NULL;
	c->cluster_acks = 0;
}

void xqos_js_ack(struct cluster *cl, uint64_t seq, bool ok)
{
	struct cl_xqos *x = cl->xq;
	struct xq_item *it = NULL;
	HASH_FIND(hh, x->pending, &seq, sizeof(seq), it);
	if (!it)
		return; /* an answer to an earlier send of one confirmed since */
	if (!ok) {
		stall(x, it); /* on_tick sends it again, in order */
		return;
	}
	confirm(x, it);
	release(x);
}

void xqos_on_puback(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	(void)js;
	(void)pae;
	const char *id = NULL;
	if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id && strchr(id, '-'))
		cluster_postf(closure, pa ? CE_JS_ACK : CE_JS_NACK, strtoull(strchr(id, '-') + 1, NULL, 10));
	natsMsg_Destroy(msg);
}

/* ---- receiving node ------------------------------------------------------------- */

/* The origin inst (made when new; the long unused ones are dropped then). */
static struct xq_origin *origin(struct cl_xqos *x, uint64_t inst, uint64_t now)
{
	uint64_t keep = ORIGIN_KEEP_MS(x->cl);
	struct xq_origin *o = NULL, *t;
	HASH_FIND(hh, x->origins, &inst, sizeof(inst), o);
	if (o || !(o = calloc(1, sizeof(*o))))
		return o;
	struct xq_origin *old;
	HASH_ITER(hh, x->origins, old, t) {
		if (now - old->used > keep) {
			HASH_DEL(x->origins, old);
			free(old);
		}
	}
	o->inst = inst;
	HASH_ADD(hh, x->origins, inst, sizeof(o->inst), o);
	return o;
}

void xqos_routed(struct cluster *cl)
{
	struct cl_xqos *x = cl->xq;
	uint64_t now = broker_now(cl->b);
	uint64_t refresh_ms = ORIGIN_KEEP_MS(cl) / 4;
	if (x->own_inst == cl->inst && now - x->own_used < refresh_ms)
		return;
	struct xq_origin *o = origin(x, cl->inst, now);
	if (o) {
		o->own = true;
		o->used = now;
		x->own_inst = cl->inst;
		x->own_used = now;
	}
}

bool xqos_seen(struct cluster *cl, uint64_t inst, uint64_t seq)
{
	uint64_t now = broker_now(cl->b);
	struct xq_origin *p = origin(cl->xq, inst, now);
	if (!p)
		return false; /* no memory: routed (a duplicate is possible) */
	if (p->own)
		return true; /* ours under an earlier instance, replayed: routed here already */
	p->used = now;
	if (seq > p->seq) {
		if (seq - p->seq >= WIN_BITS)
			memset(p->win, 0, sizeof(p->win));
		else
			for (uint64_t s = p->seq + 1; s < seq; s++)
				p->win[(s % WIN_BITS) / 64] &= ~(1ull << (s % 64));
		p->seq = seq;
	} else if (p->seq - seq >= WIN_BITS || (p->win[(seq % WIN_BITS) / 64] >> (seq % 64) & 1)) {
		return true; /* too old to tell: taken as seen */
	}
	p->win[(seq % WIN_BITS) / 64] |= 1ull << (seq % 64);
	return false;
}

void xqos_each_origin(struct cluster *cl, void (*fn)(void *u, uint64_t inst, uint64_t seq), void *u)
{
	struct xq_origin *o, *t;
	HASH_ITER(hh, cl->xq->origins, o, t)
		fn(u, o->inst, o->own ? cl->seq : o->seq);
}

void xqos_reconnected(struct cluster *cl)
{
	struct cl_xqos *x = cl->xq;
	/* Unconfirmed ones may have died with the old server: again, in order
	 * (JetStream stores a message id once; receivers route it once). */
	for (struct xq_item *it = x->head; it; it = it->next)
		if (it->kind == XQ_PUB && !it->acked)
			it->resend = true;
	on_tick(&x->tick, broker_now(cl->b));
	if (!cl->down_since || !cl->filters)
		return; /* not lost (or nothing to hear): nothing to replay */
	uint64_t from = store_mono_to_wall(cl->b, cl->down_since), now = broker_now(cl->b);
	from = from > REPLAY_MARGIN_MS ? from - REPLAY_MARGIN_MS : 0;
	if (!x->replay_wait || from < x->replay_from)
		x->replay_from = from;
	x->replay_wait = true;
	x->holding = true;
	wheel_add(&cl->b->wheel, &x->hold, now + REPLAY_HOLD_MS(cl));
	wheel_add(&cl->b->wheel, &x->settle, now + 2ull * cl->hb_ms + SETTLE_MS);
	xqos_peer_heard(cl); /* no peers: at once */
}

/* The replay starts once the other nodes' servers route to us again:
 * until then what they publish reaches the stream but not us, and a
 * replay started earlier (it reads what the stream has when it starts)
 * would miss it. A peer's heartbeat heard says its server has our
 * subscriptions back (they go along the route together); if one stays
 * silent, the replay starts after two heartbeat intervals anyway. */
void xqos_peer_heard(struct cluster *cl)
{
	struct cl_xqos *x = cl->xq;
	if (!x->replay_wait)
		return;
	struct cl_peer *p, *t;
	HASH_ITER(hh, cl->peers, p, t) {
		if (!p->heard)
			return;
	}
	uint64_t at = broker_now(cl->b) + SETTLE_MS;
	if (at < x->settle.deadline)
		wheel_add(&cl->b->wheel, &x->settle, at);
}

static void on_settle(struct wheel_entry *e, uint64_t now)
{
	struct cl_xqos *x = (struct cl_xqos *)((char *)e - offsetof(struct cl_xqos, settle));
	(void)now;
	if (!x->replay_wait)
		return;
	x->replay_wait = false;
	x->replays++;
	cluster_command(x->cl, CMD_REPLAY, x->replay_from);
}

bool xqos_defer(struct cluster *cl, struct cl_event *e)
{
	struct cl_xqos *x = cl->xq;
	struct cl_env env;
	if (!x->holding || env_decode((const uint8_t *)natsMsg_GetData(e->msg), (size_t)natsMsg_GetDataLength(e->msg), &env))
		return false;
	if (x->n_deferred == x->cap_deferred) {
		size_t cap = x->cap_deferred ? x->cap_deferred * 2 : 256;
		struct xq_held *v = realloc(x->deferred, cap * sizeof(*v));
		if (!v)
			return false; /* routed now: order may suffer, nothing is lost */
		x->deferred = v;
		x->cap_deferred = cap;
	}
	x->deferred[x->n_deferred++] = (struct xq_held){env.seq, e->msg};
	e->msg = NULL;
	return true;
}

/* A node's sequence goes on across its instances (it takes a new one
 * when it reconnects), so it alone orders each node's messages. */
static int by_seq(const void *pa, const void *pb)
{
	const struct xq_held *a = pa, *b = pb;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void drop_deferred(struct cl_xqos *x, bool route)
{
	for (size_t i = 0; i < x->n_deferred; i++) {
		if (route)
			xroute_remote_in(x->cl, x->deferred[i].msg);
		natsMsg_Destroy(x->deferred[i].msg);
	}
	x->n_deferred = 0;
}

/* What was kept, routed in each publisher's order: a message re-sent to
 * JetStream after later ones is stored after them, but its sequence puts
 * it back in place. */
static size_t route_held(struct cl_xqos *x)
{
	size_t held = x->n_deferred;
	if (held) /* deferred is NULL until the first one */
		qsort(x->deferred, held, sizeof(*x->deferred), by_seq);
	drop_deferred(x, true);
	x->holding = false;
	wheel_cancel(&x->cl->b->wheel, &x->hold);
	return held;
}

/* The replay waits for JetStream (a stream leader lost with the server is
 * elected again in seconds): live traffic does not wait that long. What
 * the replay brings later is still routed once, but after newer ones. */
static void on_hold(struct wheel_entry *e, uint64_t now)
{
	struct cl_xqos *x = (struct cl_xqos *)((char *)e - offsetof(struct cl_xqos, hold));
	(void)now;
	size_t held = route_held(x);
	log_msg(x->cl->b, LOG_F_WARNING, "Cluster: JetStream slow to replay after the NATS reconnection: %zu routed "
		"message%s routed without waiting for it (what it brings later may come out of order).", held,
		held == 1 ? "" : "s");
}

void xqos_replay_done(struct cluster *cl, uint64_t n)
{
	struct cl_xqos *x = cl->xq;
	if (x->replays && --x->replays)
		return; /* another one follows */
	size_t held = route_held(x);
	log_msg(cl->b, LOG_F_NOTICE, "Cluster: replayed %" PRIu64 " routed message%s from JetStream after the NATS "
		"reconnection (%zu routed in order, duplicates dropped).", n, n == 1 ? "" : "s", held);
}

/* ---- life ------------------------------------------------------------------------ */

int xqos_start(struct cluster *cl)
{
	struct cl_xqos *x = calloc(1, sizeof(*x));
	if (!x)
		return -1;
	x->cl = cl;
	x->tail = &x->head;
	wheel_entry_init(&x->tick, on_tick);
	wheel_entry_init(&x->hold, on_hold);
	wheel_entry_init(&x->settle, on_settle);
	cl->xq = x;
	return 0;
}

void xqos_free(struct cluster *cl)
{
	struct cl_xqos *x = cl->xq;
	if (!x)
		return;
	wheel_cancel(&cl->b->wheel, &x->tick);
	wheel_cancel(&cl->b->wheel, &x->hold);
	wheel_cancel(&cl->b->wheel, &x->settle);
	HASH_CLEAR(hh, x->pending);
	struct xq_origin *o, *t;
	HASH_ITER(hh, x->origins, o, t) {
		HASH_DEL(x->origins, o);
		free(o);
	}
	while (x->head) { /* acks never confirmed do not leave: the clients send again */
		struct xq_item *it = x->head;
		x->head = it->next;
		if (it->c)
			it->c->cluster_acks--;
		free(it);
	}
	drop_deferred(x, false);
	free(x->deferred);
	free(x);
	cl->xq = NULL;
}
