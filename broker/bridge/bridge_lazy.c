/*
 * broker/bridge/bridge_lazy.c — start_type lazy: the bridge connects once
 * `threshold` messages wait for the remote in its local session (in flight
 * plus queued, as mosquitto's msgs_out count), and the hooks deliver.c calls
 * when it queues for an offline bridge session (what is queued at all:
 * bridge_session_queues). The idle side (closing
 * after idle_timeout without a PUBLISH either way) is bridge.c's timer.
 * Invariant: a lazy bridge that is down has its timer armed only when the
 * threshold is reached (at once, or at not_before after a failed attempt).
 */
#include "bridge_int.h"

uint32_t bridge_waiting(const struct bridge *br)
{
	return br->s->inflight.count + br->s->queue.count;
}

/* start_type lazy, down: connect once threshold messages wait (not before
 * the restart delay after a failed attempt). */
void bridge_lazy_check(struct bridge *br)
{
	struct broker *b = br->b;
	if (br->conf->start_type != BRIDGE_START_LAZY || br->c || br->stopped || b->stopping ||
	    wheel_armed(&br->timer) || bridge_waiting(br) < br->conf->threshold)
		return;
	uint64_t now = broker_now(b);
	log_msg(b, LOG_F_NOTICE, "Bridge %s: %u messages waiting (threshold %u), starting the lazy bridge.",
		br->conf->name, bridge_waiting(br), br->conf->threshold);
	wheel_add(&b->wheel, &br->timer, br->not_before > now ? br->not_before : now);
}

static struct bridge *bridge_of(const struct broker *b, const struct session *s)
{
	for (size_t i = 0; i < b->n_bridges; i++)
		if (b->bridges[i].s == s)
			return &b->bridges[i];
	return NULL;
}

void bridge_session_queued(struct broker *b, struct session *s)
{
	struct bridge *br = s->bridge_owned ? bridge_of(b, s) : NULL;
	if (br)
		bridge_lazy_check(br);
}

bool bridge_session_queues(const struct broker *b, const struct session *s, uint8_t qos)
{
	const struct bridge *br = s->bridge_owned ? bridge_of(b, s) : NULL;
	if (br && br->conf->local_cleansession > 0)
		return false; /* compat: mosquitto's clean_start_local */
	if (br && br->conf->start_type == BRIDGE_START_LAZY)
		return true;
	return qos > 0 || b->cfg->queue_qos0_messages;
}
