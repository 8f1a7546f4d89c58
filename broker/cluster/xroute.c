/*
 * broker/cluster/xroute.c — messages between nodes, filter interest, and
 * the cluster-wide retained messages.
 *
 * Out: the core routes a message to its local sessions, then hands it here
 * once (cluster_route_out); it is published on P.m.q.<topic tokens> (QoS
 * >= 1, which JetStream's stream captures) or P.m.z.<topic tokens> (QoS 0,
 * which it does not) in an envelope that carries QoS, RETAIN, v5 properties, the expiry (as wall
 * time) and (instance, sequence number). Interest: every distinct filter
 * of the local subscription tree (subtree watch) is a NATS subscription on
 * its subject P.m.*.<filter tokens> (both kinds, so one subscription keeps
 * each publisher's QoS 0 and QoS 1/2 messages in order), so NATS forwards a message only to nodes that have a
 * matching filter. QoS >= 1 goes through JetStream's stream of routed
 * messages, its ack held until JetStream confirms (xqos.c). In: the
 * receiving node routes it through its own tree exactly as a local publish
 * (effective QoS, no-local, retain-as-published, subscription ids, ACL),
 * but never back out. A message matching several filters of a node arrives
 * once per filter; (instance, sequence) keeps the first (all subscriptions
 * share one delivery thread, so the order per publisher is the order the
 * server saw), also of a re-sent or replayed one (xqos_seen).
 * Share groups: each (group, filter) with members here is a NATS queue
 * subscription (queue = the group's name) on a second connection that hears
 * this node's own messages too, so NATS picks one node per message and that
 * node one member (route_group); the core's own group delivery is off while
 * the cluster is connected (b->groups_in_cluster).
 * Retained: set and cleared in the retain bucket (key = topic tokens, one
 * value per key); every node, this one included, applies the bucket's
 * updates in the bucket's order, so all nodes converge, and a node started
 * later loads the last value of every key. A node that has not joined yet
 * (NATS unreachable at start) remembers the topics it retained or cleared
 * meanwhile; while the bucket loads, a remembered topic keeps the local
 * value unless the bucket's entry is newer (wall clock, last writer wins),
 * and when it has loaded the local values that won go to the bucket.
 * Not here: the JetStream confirmation and the replay (xqos.c), sessions.
 * Invariant: nothing here runs inside route_message (in_remote guards the
 * way back out).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"

static bool is_sys(const struct message *m)
{
	return m->topic.len >= 4 && memcmp(m->topic.p, "$SYS", 4) == 0;
}

/* routed: a routed message, QoS >= 1 of which goes through JetStream (xqos.c). */
static void publish(struct cluster *cl, const char *subj, const struct cl_env *e, bool routed)
{
	size_t len = 0;
	uint8_t *buf = env_encode(e, &len);
	natsStatus s = NATS_NO_MEMORY;
	if (buf && routed && (e->flags & ENV_QOS) && xqos_publish(cl, subj, buf, len, e->seq))
		s = NATS_OK;
	else if (buf)
		s = natsConnection_Publish(cl->nc, subj, buf, (int)len);
	free(buf);
	if (s != NATS_OK && cl->drops++ % 1000 == 0)
		log_msg(cl->b, LOG_F_WARNING, "Cluster: a message on '%.*s' was not sent to the other nodes (%s; %u so far).",
			(int)(e->topic.len > 200 ? 200 : e->topic.len), (const char *)e->topic.p, natsStatus_GetText(s),
			cl->drops);
}

static void env_from(struct cluster *cl, const struct message *m, struct cl_env *e)
{
	memset(e, 0, sizeof(*e));
	e->flags = (uint8_t)((m->qos & ENV_QOS) | (m->retain ? ENV_RETAIN : 0));
	e->inst = cl->inst;
	e->topic = m->topic;
	e->props = m->props;
	e->payload = m->payload;
	if (m->has_expiry) {
		uint64_t now = broker_now(cl->b);
		e->flags |= ENV_EXPIRY;
		e->expiry_wall = store_wall_now() + (m->expiry_at > now ? m->expiry_at - now : 0);
	}
}

size_t xroute_route_out(void *u, const struct message *m)
{
	struct cluster *cl = u;
	if (cl->in_remote || !cl->joined || is_sys(m))
		return 0;
	char subj[CL_SUBJ_MAX + 1], pfx[96];
	char k = m->qos ? 'q' : 'z'; /* QoS 0 stays out of the stream (cluster_int.h) */
	snprintf(pfx, sizeof(pfx), "%s.m.%c", cl->prefix, k);
	if (subject_topic(subj, sizeof(subj), pfx, m->topic.p, m->topic.len, false) < 0)
		snprintf(subj, sizeof(subj), "%s.long.%c", cl->prefix, k);
	struct cl_env e;
	env_from(cl, m, &e);
	e.seq = ++cl->seq;
	xqos_routed(cl);
	publish(cl, subj, &e, true);
	return 1;
}

/* A topic retained (or cleared) here before the first join. */
struct cl_unjoined {
	UT_hash_handle hh; /* key: m->topic */
	struct message *m;
	uint64_t wall_ms;  /* when it was set here (store_wall_now) */
};

static void unjoined_drop(struct cluster *cl, struct cl_unjoined *u)
{
	HASH_DEL(cl->unjoined, u);
	message_unref(&u->m);
	free(u);
}

static void unjoined_remember(struct cluster *cl, const struct message *m)
{
	struct cl_unjoined *u = NULL;
	HASH_FIND(hh, cl->unjoined, m->topic.p, m->topic.len, u);
	if (u)
		unjoined_drop(cl, u);
	u = calloc(1, sizeof(*u));
	if (!u) {
		log_msg(cl->b, LOG_F_WARNING, "Cluster: out of memory: retained message on '%s' kept on this node only.",
			(const char *)m->topic.p);
		return;
	}
	u->m = message_ref((struct message *)m);
	u->wall_ms = store_wall_now();
	HASH_ADD_KEYPTR(hh, cl->unjoined, u->m->topic.p, u->m->topic.len, u);
}

static void retain_publish(struct cluster *cl, const struct message *m)
{
	char subj[CL_SUBJ_MAX + 1], pfx[128];
	snprintf(pfx, sizeof(pfx), "$KV.%s", cl->bucket[0]);
	if (subject_topic(subj, sizeof(subj), pfx, m->topic.p, m->topic.len, false) < 0) {
		log_msg(cl->b, LOG_F_WARNING, "Cluster: retained message on a topic too long for the cluster; kept on this node only.");
		return;
	}
	struct cl_env e;
	env_from(cl, m, &e);
	if (m->origin_id)
		e.id = mqtt_cstr(m->origin_id);
	if (m->origin_user)
		e.user = mqtt_cstr(m->origin_user);
	publish(cl, subj, &e, false);
}

void xroute_retain_out(void *u, const struct message *m)
{
	struct cluster *cl = u;
	if (cl->in_remote || is_sys(m))
		return;
	if (!cl->joined) {
		unjoined_remember(cl, m);
		return;
	}
	retain_publish(cl, m);
}

void xroute_unjoined_flush(struct cluster *cl)
{
	if (!cl->joined || !cl->retain_loaded)
		return; /* both happen once, in either order */
	unsigned n = 0;
	struct cl_unjoined *u, *t;
	uint64_t now = broker_now(cl->b);
	HASH_ITER(hh, cl->unjoined, u, t) {
		if (!message_expired(u->m, now)) {
			retain_publish(cl, u->m);
			n++;
		}
		unjoined_drop(cl, u);
	}
	if (n)
		log_msg(cl->b, LOG_F_NOTICE, "Cluster: %u retained topic%s set or cleared before joining sent to the cluster.",
			n, n == 1 ? "" : "s");
}

struct message *xroute_message(struct cluster *cl, const struct cl_env *e, bool will)
{
	char idb[256], ub[256];
	char *id = NULL, *user = NULL;
	bool retain = (e->flags & ENV_RETAIN) != 0;
	if (retain && e->id.len) {
		id = e->id.len < sizeof(idb) ? idb : malloc(e->id.len + 1);
		if (!id)
			return NULL;
		memcpy(id, e->id.p, e->id.len);
		id[e->id.len] = 0;
	}
	if (retain && e->user.len) {
		user = e->user.len < sizeof(ub) ? ub : malloc(e->user.len + 1);
		if (user) {
			memcpy(user, e->user.p, e->user.len);
			user[e->user.len] = 0;
		}
	}
	struct message *m = message_new(&cl->b->mem, e->topic, e->payload, e->props, e->flags & ENV_QOS, retain, id, user);
	if (id && id != idb)
		free(id);
	if (user && user != ub)
		free(user);
	if (m) { /* its identity, for sessions that move between nodes (csession.c, cadopt.c) */
		m->cl_inst = e->inst;
		m->cl_seq = e->seq;
		m->cl_at = broker_now(cl->b);
	}
	if (m && (e->flags & ENV_EXPIRY)) {
		uint64_t now = broker_now(cl->b);
		m->has_expiry = true;
		if (will) {
			m->expiry_at = now + (uint64_t)e->rel_expiry * 1000u;
		} else {
			uint64_t wall = store_wall_now();
			m->expiry_at = now + (e->expiry_wall > wall ? e->expiry_wall - wall : 0);
		}
	}
	return m;
}

uint64_t xroute_stream_at(struct cluster *cl, natsMsg *msg)
{
	const char *reply = natsMsg_GetReply(msg);
	uint64_t now = broker_now(cl->b);
	jsMsgMetaData *meta = NULL;
	if (!reply || strncmp(reply, "$JS.ACK.", 8) || natsMsg_GetMetaData(&meta, msg) != NATS_OK)
		return now; /* a core NATS message: stored about now */
	uint64_t at = store_wall_to_mono(cl->b, (uint64_t)(meta->Timestamp / 1000000));
	jsMsgMetaData_Destroy(meta);
	return at < now ? at : now;
}

static int decode(natsMsg *msg, struct cl_env *e)
{
	return env_decode((const uint8_t *)natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), e) ||
	       e->topic.len == 0 || !mqtt_topic_name_valid(e->topic);
}

void xroute_remote_in(struct cluster *cl, natsMsg *msg)
{
	struct cl_env e;
	if (decode(msg, &e) || e.inst == cl->inst)
		return;
	if (xqos_seen(cl, e.inst, e.seq))
		return; /* the same message through another filter, re-sent, or replayed */
	struct message *m = xroute_message(cl, &e, false);
	if (!m) {
		cl->b->st.pub_dropped++;
		return;
	}
	if (natsMsg_GetReply(msg)) /* replayed: a replay for its sessions starts from its storing (cadopt.c) */
		m->cl_at = xroute_stream_at(cl, msg);
	cl->in_remote = true;
	route_message(cl->b, m);
	cl->in_remote = false;
	message_unref(&m);
}

void xroute_retain_in(struct cluster *cl, natsMsg *msg)
{
	struct cl_env e;
	if (decode(msg, &e))
		return;
	struct cl_unjoined *u = NULL;
	if (cl->unjoined)
		HASH_FIND(hh, cl->unjoined, e.topic.p, e.topic.len, u);
	if (u) {
		jsMsgMetaData *meta = NULL;
		int64_t at = 0;
		if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
			at = meta->Timestamp;
			jsMsgMetaData_Destroy(meta);
		}
		if ((int64_t)u->wall_ms * 1000000 >= at) /* the bucket's Timestamp is in ns */
			return; /* set here later than the bucket's entry: ours goes out when loaded */
		unjoined_drop(cl, u); /* the bucket's is newer */
	}
	struct message *m = xroute_message(cl, &e, false);
	if (!m)
		return;
	m->retain = true;
	cl->in_remote = true;
	route_retain(cl->b, m);
	cl->in_remote = false;
	message_unref(&m);
}

/* ---- filter interest ------------------------------------------------------------ */

/* The NATS subjects of a filter: its own, and for "a/#" also the parent
 * "a" (v5 4.7.1.2). A subject too long is left out: every topic it matches
 * is as long, and arrives on P.long. Returns how many (0..2). */
static int filter_subjects(struct cluster *cl, const char *filter, char subj[2][CL_SUBJ_MAX + 1])
{
	char pfx[96];
	snprintf(pfx, sizeof(pfx), "%s.m.*", cl->prefix); /* either kind: P.m.q (QoS >= 1) and P.m.z (QoS 0) */
	size_t len = strlen(filter);
	size_t lens[2] = {len, len >= 2 && !strcmp(filter + len - 2, "/#") ? len - 2 : 0};
	int n = 0;
	for (int i = 0; i < 2; i++)
		if (lens[i] && subject_topic(subj[n], CL_SUBJ_MAX + 1, pfx, (const uint8_t *)filter, lens[i], true) >= 0)
			n++;
	return n;
}

static void subscribe_filter(struct cluster *cl, struct cl_filter *f)
{
	char subj[2][CL_SUBJ_MAX + 1];
	int n = filter_subjects(cl, f->filter, subj);
	for (int i = 0; i < n; i++) {
		if (f->sub[i])
			continue;
		if (natsConnection_Subscribe(&f->sub[i], cl->nc, subj[i], link_on_msg, &cl->tags[TAG_ROUTE]) != NATS_OK) {
			f->sub[i] = NULL;
			log_msg(cl->b, LOG_F_WARNING, "Cluster: cannot subscribe to the cluster for '%s'.", f->filter);
		}
	}
}

/* A share group: a queue subscription on nc2 (which hears this node's own
 * messages too), so NATS gives each message to one node of the group. */
static void subscribe_group(struct cluster *cl, struct cl_group *g)
{
	char subj[3][CL_SUBJ_MAX + 1], queue[CL_SUBJ_MAX + 1];
	int ql = subject_token(queue, sizeof(queue) - 20, (const uint8_t *)g->group, strlen(g->group));
	if (ql < 0)
		return;
	uint64_t h = 1469598103934665603ull; /* FNV-1a of the filter */
	for (const char *p = g->filter; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	snprintf(queue + ql, sizeof(queue) - (size_t)ql, "_%016llx", (unsigned long long)h);
	int n = filter_subjects(cl, g->filter, subj);
	snprintf(subj[2], CL_SUBJ_MAX + 1, "%s.long.*", cl->prefix); /* always slot 2: see xroute_group_in */
	for (int i = 0; i < 3; i++) {
		if (g->sub[i] || (i >= n && i < 2))
			continue;
		if (natsConnection_QueueSubscribe(&g->sub[i], cl->nc2, subj[i], queue, link_on_group, cl) != NATS_OK) {
			g->sub[i] = NULL;
			log_msg(cl->b, LOG_F_WARNING, "Cluster: cannot join the cluster's share group '%s' on '%s'.", g->group,
				g->filter);
		} else {
			g->sid[i] = natsSubscription_GetID(g->sub[i]);
		}
	}
}

static void unsubscribe(natsSubscription **sub, int n)
{
	for (int i = 0; i < n; i++) {
		if (sub[i]) {
			natsSubscription_Unsubscribe(sub[i]);
			natsSubscription_Destroy(sub[i]);
			sub[i] = NULL;
		}
	}
}

static void watch_group(struct cluster *cl, struct mqtt_str filter, const char *group, bool added)
{
	size_t gl = strlen(group), klen = gl + 1 + filter.len;
	char kb[512], *key = klen < sizeof(kb) ? kb : malloc(klen + 1);
	if (!key)
		return;
	memcpy(key, group, gl);
	key[gl] = '/';
	memcpy(key + gl + 1, filter.p, filter.len);
	key[klen] = 0;
	struct cl_group *g = NULL;
	HASH_FIND(hh, cl->groups, key, klen, g);
	if (added && !g && (g = calloc(1, sizeof(*g) + klen + 1 + gl + 1))) {
		memcpy(g->key, key, klen + 1);          /* "group/filter" */
		memcpy(g->key + klen + 1, group, gl + 1); /* then "group" alone */
		g->group = g->key + klen + 1;
		g->filter = g->key + gl + 1;
		HASH_ADD_KEYPTR(hh, cl->groups, g->key, klen, g);
		if (cl->joined)
			subscribe_group(cl, g);
	} else if (!added && g) {
		HASH_DEL(cl->groups, g);
		unsubscribe(g->sub, 3);
		free(g);
	}
	if (key != kb)
		free(key);
}

void xroute_watch(void *u, struct mqtt_str filter, const char *group, bool added)
{
	struct cluster *cl = u;
	if (group) {
		watch_group(cl, filter, group, added);
		return;
	}
	struct cl_filter *f = NULL;
	HASH_FIND(hh, cl->filters, filter.p, filter.len, f);
	if (added) {
		if (f)
			return;
		f = calloc(1, sizeof(*f) + filter.len + 1);
		if (!f) {
			log_msg(cl->b, LOG_F_ERROR, "Cluster: out of memory: other nodes' messages will miss a filter.");
			return;
		}
		memcpy(f->filter, filter.p, filter.len);
		HASH_ADD_KEYPTR(hh, cl->filters, f->filter, filter.len, f);
		if (cl->joined)
			subscribe_filter(cl, f);
	} else if (f) {
		HASH_DEL(cl->filters, f);
		unsubscribe(f->sub, 2);
		free(f);
	}
}

void xroute_group_in(struct cluster *cl, natsMsg *msg, int64_t sid)
{
	/* Linear: a node has few distinct share groups. */
	struct cl_group *g, *tmp;
	HASH_ITER(hh, cl->groups, g, tmp) {
		if (g->sid[0] != sid && g->sid[1] != sid && g->sid[2] != sid)
			continue;
		struct cl_env e;
		if (decode(msg, &e))
			return;
		/* P.long carries every long topic: only those the filter matches. */
		if (sid == g->sid[2] && !mqtt_topic_matches(mqtt_cstr(g->filter), e.topic))
			return;
		struct message *m = xroute_message(cl, &e, false);
		if (!m)
			return;
		route_group(cl->b, m, mqtt_cstr(g->filter), g->group);
		message_unref(&m);
		return;
	}
}

void xroute_subscribe_all(struct cluster *cl)
{
	struct cl_filter *f, *tmp;
	HASH_ITER(hh, cl->filters, f, tmp)
		subscribe_filter(cl, f);
	struct cl_group *g, *gt;
	HASH_ITER(hh, cl->groups, g, gt)
		subscribe_group(cl, g);
}

void xroute_free(struct cluster *cl)
{
	struct cl_unjoined *u, *ut;
	HASH_ITER(hh, cl->unjoined, u, ut)
		unjoined_drop(cl, u);
	struct cl_filter *f, *tmp;
	HASH_ITER(hh, cl->filters, f, tmp) {
		HASH_DEL(cl->filters, f);
		unsubscribe(f->sub, 2);
		free(f);
	}
	struct cl_group *g, *gt;
	HASH_ITER(hh, cl->groups, g, gt) {
		HASH_DEL(cl->groups, g);
		unsubscribe(g->sub, 3);
		free(g);
	}
}
