/*
 * broker/store.c — the durable-state seam.
 *
 * Every change to state that must survive a restart (retained messages,
 * sessions, subscriptions, queued messages, wills) is announced here and
 * nowhere else, so a crash-safe store can mirror it later by installing a
 * struct store_ops, without touching the packet handlers. With no store
 * installed (the default: no persistence yet) every call is a no-op.
 * Invariant: store callbacks observe state, they never change it.
 */
#include "broker.h"

void store_set(struct broker *b, const struct store_ops *ops, void *user)
{
	b->store = ops;
	b->store_user = user;
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

void store_session_new(struct broker *b, const struct session *s)
{
	STORE_CALL(b, session_new, s);
}

void store_session_end(struct broker *b, const struct session *s)
{
	STORE_CALL(b, session_end, s);
}

void store_sub_add(struct broker *b, const struct session *s, const struct subscription *sub)
{
	STORE_CALL(b, sub_add, s, sub);
}

void store_sub_remove(struct broker *b, const struct session *s, const char *filter)
{
	STORE_CALL(b, sub_remove, s, filter);
}

void store_msg_queued(struct broker *b, const struct session *s, const struct outmsg *o)
{
	STORE_CALL(b, msg_queued, s, o);
}

void store_msg_acked(struct broker *b, const struct session *s, const struct outmsg *o)
{
	STORE_CALL(b, msg_acked, s, o);
}

void store_will_set(struct broker *b, const struct session *s)
{
	STORE_CALL(b, will_set, s);
}

void store_will_clear(struct broker *b, const struct session *s)
{
	STORE_CALL(b, will_clear, s);
}
