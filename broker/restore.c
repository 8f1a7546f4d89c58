/*
 * broker/restore.c — recreate saved state in the core at start-up (the
 * contract is in restore.h).
 *
 * Builds sessions, subscriptions, deliveries and retained messages with the
 * core's own functions, so restored state is indistinguishable from state
 * made by packets. Persisted deadlines are wall clock; they become monotonic
 * wheel deadlines here (already past: due at once, in restore_finish).
 * Not here: where the state comes from (SQL, mosquitto.db), writing it.
 */
#include <stdlib.h>
#include <string.h>

#include "restore.h"

struct message *restore_message(struct broker *b, struct mqtt_str topic, struct mqtt_str payload,
				struct mqtt_str props, uint8_t qos, bool retain, uint64_t expires_at,
				const char *origin_id, const char *origin_user)
{
	if (!topic.len || qos > 2)
		return NULL;
	/* What was acknowledged before the restart is never refused by
	 * memory_limit (mem.h): load it unlimited, but counted. */
	uint64_t limit = b->mem.limit;
	b->mem.limit = 0;
	struct message *m = message_new(&b->mem, topic, payload, props, qos, retain, origin_id, origin_user);
	b->mem.limit = limit;
	if (!m)
		return NULL;
	if (expires_at) {
		m->has_expiry = true;
		m->expiry_at = store_wall_to_mono(b, expires_at);
	}
	return m;
}

int restore_retained(struct broker *b, struct message *m)
{
	if (!m->payload.len || message_expired(m, broker_now(b)))
		return 0;
	int err = 0;
	void *old = retain_set(b->retained, m->topic, message_ref(m), &err);
	if (err) {
		struct message *mm = m;
		message_unref(&mm);
		return -1;
	}
	struct message *o = old;
	message_unref(&o);
	return 0;
}

static uint64_t deadline(struct broker *b, uint64_t wall)
{
	uint64_t t = store_wall_to_mono(b, wall);
	return t > broker_now(b) ? t : broker_now(b);
}

struct session *restore_session(struct broker *b, const struct restore_session *rs)
{
	if (!rs->id || !rs->id[0] || session_find(b, rs->id) || rs->expiry == 0)
		return NULL;
	struct session *s = session_new(b, rs->id);
	if (!s)
		return NULL;
	s->version = rs->version;
	s->expiry = rs->expiry;
	if (rs->username && !(s->username = strdup(rs->username))) {
		session_destroy(s);
		return NULL;
	}
	if (rs->listener >= 0 && (size_t)rs->listener < b->n_listeners)
		s->listener = &b->listeners[rs->listener];
	else if (b->n_listeners)
		s->listener = &b->listeners[0];
	if (rs->next_pid)
		s->next_pid = rs->next_pid;
	uint64_t will_at = 0, expiry_at = 0;
	if (rs->will_msg && !rs->was_connected) {
		s->will = calloc(1, sizeof(*s->will));
		if (!s->will) {
			session_destroy(s);
			return NULL;
		}
		s->will->msg = message_ref(rs->will_msg);
		s->will->delay = rs->will_delay;
		s->will->has_expiry = rs->will_has_expiry;
		s->will->expiry = rs->will_expiry;
		will_at = deadline(b, rs->will_at ? rs->will_at : store_wall_now());
	}
	if (rs->expiry != UINT32_MAX) {
		if (rs->was_connected || !rs->expires_at)
			expiry_at = broker_now(b) + (uint64_t)rs->expiry * 1000u;
		else
			expiry_at = deadline(b, rs->expires_at);
	}
	session_restore_timers(s, will_at, expiry_at);
	return s;
}

int restore_sub(struct session *s, const char *filter, uint8_t options, uint32_t sub_id)
{
	return subscribe_restore(s, filter, options, sub_id);
}

int restore_delivery(struct session *s, struct message *m, uint8_t qos, bool retain, uint8_t state, uint16_t pid,
		     const uint32_t *sub_ids, uint8_t n_sub_ids, uint64_t store_seq)
{
	return deliver_restore(s, m, qos, retain, state, pid, sub_ids, n_sub_ids, store_seq);
}

int restore_qos2_in(struct session *s, uint16_t pid)
{
	if (!pid || session_qos2_find(s, pid))
		return -1;
	struct broker *b = s->b;
	const struct store_ops *ops = b->store;
	b->store = NULL; /* restoring: not a change to write back */
	int rc = session_qos2_add(s, pid, NULL);
	b->store = ops;
	return rc;
}

void restore_finish(struct broker *b)
{
	/* Only restored timers are armed yet: what is due (wills whose delay ran
	 * out, sessions that expired during the downtime) runs now, before the
	 * first client can connect. */
	wheel_run(&b->wheel, broker_now(b));
}
