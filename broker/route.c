/*
 * broker/route.c — match, then deliver.
 *
 * The subscription tree only collects matches into a vector; policy runs
 * here in a second loop: overlapping subscriptions of one session are merged
 * into one delivery with the highest QoS and every Subscription Identifier
 * (v311 MQTT-3.3.5-1, v5 MQTT-3.3.4-2/3/4/5), no-local (v5 MQTT-3.8.3-3),
 * retain-as-published (v5 MQTT-3.3.1-12/13), the ACL read check, and one
 * member per shared-subscription group (v5 MQTT-4.8.2-2..6; in a cluster
 * the cluster room picks the node and calls route_group).
 * Invariant: route never frees the message it is given.
 */
#include <stdlib.h>
#include <string.h>

#include "broker.h"

#define MAX_SUB_IDS 32

struct target {
	struct session *s;
	uint8_t qos;
	bool retain;
	bool denied;
	uint8_t n_ids;
	uint32_t ids[MAX_SUB_IDS];
};

struct route_ctx {
	struct target *t;
	size_t n, cap;
	bool heap;
	bool upgrade; /* upgrade_outgoing_qos (non-standard, as mosquitto) */
	bool dup_v3;  /* allow_duplicate_messages: a v3.x session gets one copy per subscription */
};

static struct target *target_for(struct route_ctx *rc, struct session *s, struct message *m,
				 uint32_t gen)
{
	if (s->route_gen == gen && !(rc->dup_v3 && s->version != MQTT_V5))
		return &rc->t[s->route_slot];
	if (rc->n == rc->cap) {
		size_t cap = rc->cap * 2;
		struct target *n = rc->heap ? realloc(rc->t, cap * sizeof(*n)) : malloc(cap * sizeof(*n));
		if (!n)
			return NULL;
		if (!rc->heap)
			memcpy(n, rc->t, rc->n * sizeof(*n));
		rc->heap = true;
		rc->t = n;
		rc->cap = cap;
	}
	struct target *t = &rc->t[rc->n];
	s->route_gen = gen;
	s->route_slot = (uint32_t)rc->n++;
	t->s = s;
	t->qos = 0;
	t->retain = false;
	t->n_ids = 0;
	t->denied = !security_acl(s->client, s, (const char *)m->topic.p, AUTH_READ);
	return t;
}

static void add_sub(struct route_ctx *rc, struct session *s, const struct sub_entry *e,
		    struct message *m, uint32_t gen)
{
	/* v5 MQTT-3.8.3-3: no-local. */
	if ((e->options & 0x04) && m->origin_sid == s->serial)
		return;
	struct target *t = target_for(rc, s, m, gen);
	if (!t)
		return;
	uint8_t q = e->options & 0x03;
	if (q > m->qos && !rc->upgrade)
		q = m->qos; /* effective QoS = min(published, granted) (v5 3.8.4, v311 3.8.4) */
	if (q > t->qos)
		t->qos = q;
	if ((e->options & 0x08) && m->retain)
		t->retain = true;
	if (e->sub_id && t->n_ids < MAX_SUB_IDS)
		t->ids[t->n_ids++] = e->sub_id;
}

/* One member of a shared group: round robin, preferring connected ones. */
static const struct sub_entry *pick_member(struct sub_group *g)
{
	if (g->n == 0)
		return NULL;
	for (size_t i = 0; i < g->n; i++) {
		size_t k = (g->cursor + i) % g->n;
		struct session *s = g->members[k].owner;
		if (s->client && s->client->state == CS_CONNECTED) {
			g->cursor = k + 1;
			return &g->members[k];
		}
	}
	size_t k = g->cursor % g->n;
	g->cursor = k + 1;
	return &g->members[k];
}

size_t route_message(struct broker *b, struct message *m)
{
	struct route_ctx rc = {0};
	struct target stack[16];
	rc.t = stack;
	rc.cap = 16;
	rc.upgrade = b->cfg->upgrade_outgoing_qos;
	rc.dup_v3 = b->cfg->allow_duplicate_messages; /* compat: as mosquitto 2.0.11 */
	if (b->routing || subtree_match(b->subs, m->topic, &b->match))
		return 0; /* never re-entered: b->match is in use */
	b->routing = true;
	uint32_t gen = ++b->route_gen;
	for (size_t i = 0; i < b->match.n; i++) {
		const struct sub_entry *e = b->match.subs[i];
		add_sub(&rc, e->owner, e, m, gen);
	}
	/* In a cluster, shared groups are served through route_group (each
	 * message to one member cluster-wide), not here. */
	for (size_t i = 0; i < b->match.ng && !b->groups_in_cluster; i++) {
		const struct sub_entry *e = pick_member(b->match.groups[i]);
		if (e)
			add_sub(&rc, e->owner, e, m, gen);
	}
	/* Second loop: policy is decided, now deliver. */
	for (size_t i = 0; i < rc.n; i++) {
		struct target *t = &rc.t[i];
		if (t->denied)
			continue;
		deliver_to_session(b, t->s, m, t->qos, t->retain, t->ids, t->n_ids);
	}
	if (rc.heap)
		free(rc.t);
	b->routing = false;
	/* Once, after the local sessions; 1 if other nodes may have subscribers. */
	size_t remote = cluster_route_out(b, m);
	/* compat: "has subscribers" as mosquitto counts it, before no-local and
	 * ACL: a PUBACK is 0x00, not 0x10, when only no-local held it back. */
	return b->match.n + b->match.ng + remote;
}

bool route_group(struct broker *b, struct message *m, struct mqtt_str filter, const char *group)
{
	if (b->routing)
		return false;
	struct sub_group *g = subtree_group(b->subs, filter, group);
	const struct sub_entry *e = g ? pick_member(g) : NULL;
	if (!e)
		return false;
	struct route_ctx rc = {0};
	struct target one[1];
	rc.t = one;
	rc.cap = 1;
	rc.upgrade = b->cfg->upgrade_outgoing_qos;
	add_sub(&rc, e->owner, e, m, ++b->route_gen);
	if (rc.n && !rc.t[0].denied)
		deliver_to_session(b, rc.t[0].s, m, rc.t[0].qos, rc.t[0].retain, rc.t[0].ids, rc.t[0].n_ids);
	return rc.n > 0;
}

void route_retain(struct broker *b, struct message *m)
{
	int err = 0;
	void *old;
	if (m->payload.len == 0) {
		/* v311 MQTT-3.3.1-10, v5 MQTT-3.3.1-6: empty payload clears. */
		old = retain_set(b->retained, m->topic, NULL, &err);
	} else {
		old = retain_set(b->retained, m->topic, message_ref(m), &err);
		if (err) {
			struct message *mm = m;
			message_unref(&mm);
			log_msg(b, LOG_F_ERROR, "Out of memory storing retained message on '%s'.",
				(const char *)m->topic.p);
			return;
		}
	}
	struct message *o = old;
	message_unref(&o);
	store_retain_set(b, m);
	cluster_retain_out(b, m);
}
