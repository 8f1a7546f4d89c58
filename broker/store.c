/*
 * broker/store.c — the durable-state seam.
 *
 * Every change to state that must survive a restart (retained messages,
 * sessions, subscriptions, queued and in-flight messages, inbound QoS 2 ids,
 * wills) is announced here and nowhere else; a store (broker/store/, SQLite)
 * installs a struct store_ops and mirrors it. With no store installed (no
 * `persistence true`) every call is a no-op and nothing is written.
 *
 * Ack after commit: clients sent anything while a commit is pending are
 * marked; store_commit (the loop's before_flush hook, also run by
 * net_loop_barrier before any other write) commits once per pass. If the
 * commit fails, the marked clients' output is dropped and they are closed:
 * they never see an acknowledgement for a change that is not durable.
 * Kept PUBACKs: a QoS 1 PUBLISH whose deliveries the store holds back
 * (broker.h, store contract) is acknowledged only once they are durable or
 * done: store_send_ack queues the PUBACK on the publisher (c->ackq; a
 * later ack of that client queues behind it, so they leave in order),
 * store_commit sends the ones whose message has nothing held back any
 * more. A failed commit closes those publishers unacknowledged.
 * The cluster room (broker/cluster/) is told here too when a will goes
 * (cluster_will_gone): it keeps the wills of this node's clients in NATS.
 * Not here: SQL, files, what is durable (the store decides).
 * Invariant: a client is in b->store_marked exactly while c->store_marked
 * is true, and in b->ack_waiting exactly while c->ackq is set; a client
 * leaves both lists before it is freed.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"

struct store_ack {
	struct message *m; /* a reference (or NULL): m->store_carry says when it may go */
	uint16_t pid;
	uint8_t type, rc;
};
struct store_ackq {
	uint32_t head, n, cap; /* a ring of cap entries */
	size_t slot;           /* the client's index in b->ack_waiting */
	struct store_ack e[];
};

static void ackq_free(struct client *c)
{
	struct store_ackq *q = c->ackq;
	for (uint32_t i = 0; i < q->n; i++)
		if (q->e[(q->head + i) % q->cap].m)
			message_unref(&q->e[(q->head + i) % q->cap].m);
	free(q);
	c->ackq = NULL;
}

/* Take b->ack_waiting[i] off the list (the last entry moves into its slot). */
static void ackq_unlist(struct broker *b, size_t i)
{
	struct client *last = b->ack_waiting[--b->n_ack_waiting];
	b->ack_waiting[i] = last;
	last->ackq->slot = i;
}

/* Take c off b->ack_waiting and free its queue (unsent). */
static void ackq_drop(struct broker *b, struct client *c)
{
	ackq_unlist(b, c->ackq->slot);
	ackq_free(c);
}

/* Room for one more entry in c's queue (and c on the waiting list). */
static bool ackq_room(struct broker *b, struct client *c)
{
	struct store_ackq *q = c->ackq;
	if (!q) {
		if (b->n_ack_waiting == b->cap_ack_waiting) {
			size_t cap = b->cap_ack_waiting ? b->cap_ack_waiting * 2 : 16;
			struct client **v = realloc(b->ack_waiting, cap * sizeof(*v));
			if (!v)
				return false;
			b->ack_waiting = v;
			b->cap_ack_waiting = cap;
		}
		q = calloc(1, sizeof(*q) + 16 * sizeof(q->e[0]));
		if (!q)
			return false;
		q->cap = 16;
		q->slot = b->n_ack_waiting;
		c->ackq = q;
		b->ack_waiting[b->n_ack_waiting++] = c;
		return true;
	}
	if (q->n < q->cap)
		return true;
	struct store_ackq *nq = malloc(sizeof(*nq) + 2 * (size_t)q->cap * sizeof(q->e[0]));
	if (!nq)
		return false;
	for (uint32_t i = 0; i < q->n; i++)
		nq->e[i] = q->e[(q->head + i) % q->cap];
	nq->head = 0;
	nq->n = q->n;
	nq->cap = 2 * q->cap;
	nq->slot = q->slot;
	free(q);
	c->ackq = nq;
	return true;
}

void store_send_ack(struct client *c, struct message *m, uint8_t type, uint16_t pid, uint8_t rc)
{
	struct broker *b = c->b;
	if (m)
		m->ack_waits = false;
	if (!(m && m->store_carry) && !c->ackq) {
		cluster_send_ack(b, c, m, type, pid, rc); /* in a cluster: once JetStream has m */
		return;
	}
	if (!ackq_room(b, c)) {
		/* No memory to keep it in order: close without it (and without the
		 * acks kept before it); the publisher resends what has no PUBACK. */
		if (c->ackq)
			ackq_drop(b, c); /* cannot keep order without the queue: close below */
		client_close(c, 0x97, true, true, "out of memory");
		return;
	}
	struct store_ackq *q = c->ackq;
	q->e[(q->head + q->n) % q->cap] = (struct store_ack){m ? message_ref(m) : NULL, pid, type, rc};
	q->n++;
}

/* After a commit: send every kept ack whose message holds nothing back,
 * in order per client; rc != 0 (not durable): close the waiting clients. */
static void ackq_release(struct broker *b, int rc)
{
	for (size_t i = 0; i < b->n_ack_waiting;) {
		struct client *c = b->ack_waiting[i];
		struct store_ackq *q = c->ackq;
		while (rc == 0 && q->n && !(q->e[q->head].m && q->e[q->head].m->store_carry)) {
			struct store_ack a = q->e[q->head];
			q->head = (q->head + 1) % q->cap;
			q->n--;
			cluster_send_ack(b, c, a.m, a.type, a.pid, a.rc);
			if (a.m)
				message_unref(&a.m);
		}
		if (rc == 0 && q->n) {
			i++;
			continue;
		}
		ackq_unlist(b, i);
		ackq_free(c);
		if (rc != 0 && c->state != CS_GONE) {
			net_conn_discard_output(c->conn);
			client_close(c, 0x97, true, true, "store unwritable");
		}
	}
}

uint64_t store_due(const struct broker *b)
{
	return b->store && b->store->due ? b->store->due(b->store_user) : UINT64_MAX;
}

void store_set(struct broker *b, const struct store_ops *ops, void *user)
{
	b->store = ops;
	b->store_user = user;
	if (!ops) {
		for (size_t i = 0; i < b->n_store_marked; i++)
			b->store_marked[i]->store_marked = false;
		free(b->store_marked);
		b->store_marked = NULL;
		b->n_store_marked = b->cap_store_marked = 0;
		while (b->n_ack_waiting)
			ackq_drop(b, b->ack_waiting[0]);
		free(b->ack_waiting);
		b->ack_waiting = NULL;
		b->cap_ack_waiting = 0;
	}
}

#define STORE_CALL(b, fn, ...)                                          \
	do {                                                            \
		if ((b)->store && (b)->store->fn)                       \
			(b)->store->fn((b)->store_user, __VA_ARGS__);   \
	} while (0)

void store_retain_set(struct broker *b, const struct message *m)
{
	STORE_CALL(b, retain_set, m);
}

void store_session_new(struct broker *b, struct session *s)
{
	(void)b;
	(void)s; /* the row is written by store_session_saved once the expiry is known */
}

void store_session_saved(struct broker *b, struct session *s)
{
	STORE_CALL(b, session_saved, s);
}

void store_session_end(struct broker *b, struct session *s)
{
	if (s->will)
		cluster_will_gone(b, s);
	STORE_CALL(b, session_end, s);
}

void store_sub_add(struct broker *b, struct session *s, const struct subscription *sub)
{
	STORE_CALL(b, sub_add, s, sub);
}

void store_sub_remove(struct broker *b, struct session *s, const char *filter)
{
	STORE_CALL(b, sub_remove, s, filter);
}

void store_msg_queued(struct broker *b, struct session *s, struct outmsg *o)
{
	STORE_CALL(b, msg_queued, s, o);
}

void store_msg_update(struct broker *b, struct session *s, const struct outmsg *o)
{
	STORE_CALL(b, msg_update, s, o);
}

void store_msg_acked(struct broker *b, struct session *s, struct outmsg *o)
{
	STORE_CALL(b, msg_acked, s, o);
}

void store_qos2_in(struct broker *b, struct session *s, uint16_t pid, bool add)
{
	STORE_CALL(b, qos2_in, s, pid, add);
}

void store_will_set(struct broker *b, struct session *s)
{
	/* Written with the session (connect.c saves it once attached). */
	(void)b;
	(void)s;
}

void store_will_clear(struct broker *b, struct session *s)
{
	cluster_will_gone(b, s); /* the cluster's copy of the will (broker/cluster/) */
	STORE_CALL(b, session_saved, s);
}

void store_client_sent(struct broker *b, struct client *c)
{
	if (!b->store || c->store_marked || !b->store->pending(b->store_user))
		return;
	if (b->n_store_marked == b->cap_store_marked) {
		size_t cap = b->cap_store_marked ? b->cap_store_marked * 2 : 16;
		struct client **v = realloc(b->store_marked, cap * sizeof(*v));
		if (!v) {
			/* No room to remember c: commit before its ack is queued. */
			store_commit(b);
			if (!store_writable(b)) {
				net_conn_discard_output(c->conn);
				client_close(c, 0x97, true, true, "store unwritable");
			}
			return;
		}
		b->store_marked = v;
		b->cap_store_marked = cap;
	}
	c->store_marked = true;
	b->store_marked[b->n_store_marked++] = c;
}

void store_client_gone(struct broker *b, struct client *c)
{
	if (c->ackq)
		ackq_drop(b, c); /* the publisher resends them (QoS 1 in flight) */
	if (!c->store_marked)
		return;
	store_commit(b); /* its queued acks may be flushed by the close */
	for (size_t i = 0; c->store_marked && i < b->n_store_marked; i++) {
		if (b->store_marked[i] == c) {
			b->store_marked[i] = b->store_marked[--b->n_store_marked];
			c->store_marked = false;
		}
	}
}

void store_commit(struct broker *b)
{
	if (!b->store)
		return;
	int rc = b->store->pending(b->store_user) ? b->store->commit(b->store_user) : 0;
	/* Closing a client below may queue more (DISCONNECT): take the list. */
	size_t n = b->n_store_marked, cap = b->cap_store_marked;
	struct client **v = b->store_marked;
	b->store_marked = NULL;
	b->n_store_marked = b->cap_store_marked = 0;
	for (size_t i = 0; i < n; i++) {
		struct client *c = v[i];
		c->store_marked = false;
		if (rc == 0)
			continue;
		/* Not durable: the acknowledgements queued for c must not leave.
		 * The client resends (QoS 1/2 in flight) on its next connection. */
		net_conn_discard_output(c->conn);
		if (c->state != CS_GONE)
			client_close(c, 0x97, true, true, "store unwritable"); /* v5: Quota exceeded */
	}
	if (!b->store_marked) {
		b->store_marked = v; /* keep the allocation */
		b->cap_store_marked = cap;
	} else {
		free(v);
	}
	if (b->n_ack_waiting)
		ackq_release(b, rc);
}

bool store_writable(const struct broker *b)
{
	return !b->store || b->store->writable(b->store_user);
}

uint64_t store_wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t store_mono_to_wall(const struct broker *b, uint64_t mono)
{
	uint64_t now = broker_now(b), wall = store_wall_now();
	return mono >= now ? wall + (mono - now) : (wall > now - mono ? wall - (now - mono) : 1);
}

uint64_t store_wall_to_mono(const struct broker *b, uint64_t wall)
{
	uint64_t now = broker_now(b), wnow = store_wall_now();
	return wall >= wnow ? now + (wall - wnow) : (now > wnow - wall ? now - (wnow - wall) : 0);
}
