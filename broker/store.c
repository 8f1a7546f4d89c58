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
 * The cluster room (broker/cluster/) is told here too when a will goes
 * (cluster_will_gone): it keeps the wills of this node's clients in NATS.
 * Not here: SQL, files, what is durable (the store decides).
 * Invariant: a client is in b->store_marked exactly while c->store_marked
 * is true; a client leaves the list before it is freed.
 */
#include <stdlib.h>
#include <time.h>

#include "broker.h"

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
