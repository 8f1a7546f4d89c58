/*
 * broker/cluster/link.c — the link thread: everything that waits on NATS.
 *
 * It connects (retrying every second while NATS is unreachable, so a node
 * started before NATS serves its local clients and joins later), makes the
 * three JetStream key-value buckets, subscribes the cluster's fixed
 * subjects, and then runs the loop thread's commands: claim a dead
 * instance (a KV create: only one node in the cluster can win it, which is
 * what makes its wills published exactly once), fetch and purge its wills,
 * ask whether this node itself was declared dead. libnats' own threads
 * deliver messages (one global delivery thread, so messages of all our
 * subscriptions arrive in the order the server sent them) to link_on_msg,
 * which only queues them for the loop thread.
 * Deliberately not here: any broker state (results go back as events).
 * Invariant: only this thread calls blocking libnats functions.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_int.h"

void link_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	uint8_t *tagp = closure;
	struct cluster *cl = (struct cluster *)(void *)(tagp - *tagp - offsetof(struct cluster, tags));
	(void)nc;
	(void)sub;
	struct cl_event *e = calloc(1, sizeof(*e));
	if (!e) {
		natsMsg_Destroy(msg);
		return;
	}
	e->kind = CE_MSG;
	e->tag = *tagp;
	e->msg = msg;
	cluster_post(cl, e);
}

#define REPLAY_GIVE_UP_MS(cl) ((uint64_t)(cl)->conf->replay_window * 500u)
#define REPLAY_MAX_MS 10000     /* one replay reads for at most this long */
#define ADOPT_MARGIN_MS 5000    /* clocks of the nodes and of the NATS servers apart, and a message's way to the stream */
#define ADOPT_TRIES_MS 10000    /* an adoption's replay waits this long at most for JetStream */

/* ---- the retained bucket's consumer ------------------------------------------------------
 * A plain push consumer (no acks), made and made again by this thread:
 * libnats' ordered consumers remake themselves on a thread of their own,
 * and in libnats 3.4 that remake can block the connection's reader (seen
 * under load after a NATS server loss: the node heard nothing for 10-25 s
 * and could not close its connection). A gap in the consumer's sequence
 * (messages dropped), missed heartbeats or a reconnection makes it again
 * from the stream sequence after the last one routed, so every update
 * arrives once and in order. */
struct cl_watch {
	struct cluster *cl;
	natsSubscription *sub;
	uint64_t cseq; /* the consumer sequence seen last (the delivery thread's) */
	atomic_bool stale; /* a newer one replaces it: what it still brings is dropped */
};

static void watch_wake(struct cluster *cl)
{
	atomic_store(&cl->watch_reset, true);
	pthread_mutex_lock(&cl->mu);
	pthread_cond_broadcast(&cl->cv);
	pthread_mutex_unlock(&cl->mu);
}

static void on_retained(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct cl_watch *w = closure;
	struct cluster *cl = w->cl;
	(void)nc;
	(void)sub;
	jsMsgMetaData *meta = NULL;
	if (atomic_load(&w->stale) || natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
		natsMsg_Destroy(msg);
		return;
	}
	uint64_t cseq = meta->Sequence.Consumer, sseq = meta->Sequence.Stream;
	bool loaded = meta->NumPending == 0;
	jsMsgMetaData_Destroy(meta);
	if (cseq != w->cseq + 1) { /* some dropped (a slow consumer): from the last one routed */
		atomic_store(&w->stale, true);
		natsMsg_Destroy(msg);
		watch_wake(cl);
		return;
	}
	w->cseq = cseq;
	struct cl_event *e = calloc(1, sizeof(*e));
	if (!e) {
		atomic_store(&w->stale, true);
		natsMsg_Destroy(msg);
		watch_wake(cl);
		return;
	}
	e->kind = CE_MSG;
	e->tag = TAG_RETAIN;
	e->msg = msg;
	atomic_store(&cl->ret_sseq, sseq);
	cluster_post(cl, e);
	if (loaded)
		cluster_postf(cl, CE_RETAIN_LOADED, 0);
}

static void watch_done(void *closure)
{
	free(closure); /* closed, and its handler will not run again */
}

/* w may be freed (watch_done, on the delivery thread) from the
 * unsubscribe on: not touched after it. Called before the connection
 * closes (which would free w too). */
static void watch_drop(struct cl_watch *w)
{
	if (!w)
		return;
	natsSubscription *sub = w->sub;
	atomic_store(&w->stale, true);
	natsSubscription_Unsubscribe(sub); /* deletes the consumer (NATS permitting) */
	natsSubscription_Destroy(sub);
}

/* (Re)make the consumer: from the stream sequence after the last one
 * routed, or (first time) the last value of every key. 0 or -1. */
static int watch_make(struct cluster *cl)
{
	char subj[160];
	jsErrCode jerr = 0;
	struct cl_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	w->cl = cl;
	uint64_t from = atomic_load(&cl->ret_sseq);
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Config.AckPolicy = js_AckNone;
	so.Config.Heartbeat = 2000000000LL; /* missed ones (3 x) say the consumer is gone */
	if (from) {
		so.Config.DeliverPolicy = js_DeliverByStartSequence;
		so.Config.OptStartSeq = from + 1;
	} else {
		so.Config.DeliverPolicy = js_DeliverLastPerSubject;
	}
	snprintf(subj, sizeof(subj), "$KV.%s.>", cl->bucket[0]);
	natsSubscription *sub = NULL;
	natsStatus s = js_Subscribe(&sub, cl->js, subj, on_retained, w, NULL, &so, &jerr);
	if (s != NATS_OK) {
		free(w);
		return -1;
	}
	w->sub = sub;
	natsSubscription_SetPendingLimits(sub, -1, -1); /* bounded by the bucket: never dropped here */
	natsSubscription_SetOnCompleteCB(sub, watch_done, w);
	struct cl_watch *old = cl->watch;
	cl->watch = w;
	atomic_store(&cl->watch_sub, (void *)sub);
	watch_drop(old);
	if (!from) {
		jsConsumerInfo *ci = NULL;
		if (natsSubscription_GetConsumerInfo(&ci, sub, NULL, &jerr) == NATS_OK) {
			if (ci->NumPending == 0 && ci->Delivered.Consumer == 0)
				cluster_postf(cl, CE_RETAIN_LOADED, 0);
			jsConsumerInfo_Destroy(ci);
		}
	}
	return 0;
}

/* Missed heartbeats of the retained consumer (async error handler). */
static void watch_check(struct cluster *cl, natsSubscription *sub, natsStatus err)
{
	if ((err == NATS_MISSED_HEARTBEAT || err == NATS_MISMATCH || err == NATS_SLOW_CONSUMER) && sub &&
	    (void *)sub == atomic_load(&cl->watch_sub))
		watch_wake(cl);
}

void link_on_group(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct cl_event *e = calloc(1, sizeof(*e));
	(void)nc;
	if (!e) {
		natsMsg_Destroy(msg);
		return;
	}
	e->kind = CE_MSG;
	e->tag = TAG_GROUP;
	e->msg = msg;
	e->inst = (uint64_t)natsSubscription_GetID(sub); /* which group: the loop looks it up */
	cluster_post(closure, e);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	cluster_postf(closure, CE_DISCONNECTED, 0);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	watch_wake(closure); /* its consumer may have been on the lost server */
	cluster_postf(closure, CE_RECONNECTED, 0);
}

/* Asynchronous errors of libnats (a slow consumer: messages dropped at a
 * subscription whose pending limit was reached; a permission violation).
 * Called on a libnats thread: logged through the loop, at most one line
 * per error kind and second. */
static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
	struct cluster *cl = closure;
	static _Atomic int64_t last[2];
	(void)nc;
	watch_check(cl, sub, err);
	int64_t now = nats_Now();
	_Atomic int64_t *l = &last[err == NATS_SLOW_CONSUMER];
	int64_t prev = *l;
	if (now - prev < 1000 || !atomic_compare_exchange_strong(l, &prev, now))
		return;
	const char *subj = sub ? natsSubscription_GetSubject(sub) : NULL;
	cluster_logf(cl, LOG_F_ERROR, "NATS reports %s%s%s%s.", natsStatus_GetText(err), subj ? " on subscription " : "",
		     subj ? subj : "", err == NATS_SLOW_CONSUMER ? ": messages dropped" : "");
}

/* Wait up to ms for a command or stop; returns the command (or NULL). */
static struct cl_cmd *next_cmd(struct cluster *cl, long ms, bool *stop)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&cl->mu);
	while (!cl->cmd_head && !cl->stop)
		if (pthread_cond_timedwait(&cl->cv, &cl->mu, &ts) == ETIMEDOUT)
			break;
	struct cl_cmd *c = cl->cmd_head;
	if (c) {
		cl->cmd_head = c->next;
		if (!cl->cmd_head)
			cl->cmd_tail = &cl->cmd_head;
	}
	*stop = cl->stop;
	pthread_mutex_unlock(&cl->mu);
	return c;
}

static void requeue(struct cluster *cl, struct cl_cmd *c)
{
	pthread_mutex_lock(&cl->mu);
	c->next = NULL;
	*cl->cmd_tail = c;
	cl->cmd_tail = &c->next;
	pthread_mutex_unlock(&cl->mu);
}

static int ensure_bucket(struct cluster *cl, const char *name, kvStore **out)
{
	kvConfig kc;
	kvConfig_Init(&kc);
	kc.Bucket = name;
	kc.History = 1;
	kc.StorageType = js_FileStorage;
	kc.Replicas = cl->conf->replicas ? (int)cl->conf->replicas : 1;
	kvStore *kv = NULL;
	/* Bind first: a stream info needs only the stream's leader, while a
	 * create goes through the metadata leader, which a NATS cluster may be
	 * electing (a server lost). An existing bucket with another
	 * configuration is used as it is. */
	natsStatus s = js_KeyValue(&kv, cl->js, name);
	if (s != NATS_OK)
		s = js_CreateKeyValue(&kv, cl->js, &kc);
	if (s != NATS_OK) {
		cluster_logf(cl, LOG_F_ERROR, "JetStream key-value bucket %s unavailable (%s): is nats-server running with -js?",
			     name, natsStatus_GetText(s));
		return -1;
	}
	if (out)
		*out = kv;
	else
		kvStore_Destroy(kv);
	return 0;
}

static void drop_watch(struct cluster *cl)
{
	atomic_store(&cl->watch_sub, NULL);
	watch_drop(cl->watch);
	cl->watch = NULL;
}

/* After the connection closed (drop_watch before). */
static void drop_link(struct cluster *cl)
{
	for (size_t i = 0; i < sizeof(cl->sys_sub) / sizeof(cl->sys_sub[0]); i++) {
		if (cl->sys_sub[i])
			natsSubscription_Unsubscribe(cl->sys_sub[i]);
		natsSubscription_Destroy(cl->sys_sub[i]);
		cl->sys_sub[i] = NULL;
	}

	kvStore_Destroy(cl->kv_dead);
	cl->kv_dead = NULL;
	jsCtx_Destroy(cl->js);
	jsCtx_Destroy(cl->js_pub);
	cl->js = cl->js_pub = NULL;
}

static bool stream_as_wanted(const jsStreamConfig *have, const jsStreamConfig *want)
{
	if (!have || have->SubjectsLen != want->SubjectsLen || have->MaxAge != want->MaxAge ||
	    have->MaxBytes != want->MaxBytes)
		return false;
	for (int i = 0; i < want->SubjectsLen; i++)
		if (strcmp(have->Subjects[i], want->Subjects[i]))
			return false;
	return true;
}

/* The stream of routed messages: a replay window for nodes that lost NATS
 * and the PubAck of QoS >= 1 publishes (xqos.c). Bound first, as a bucket. */
static int ensure_stream(struct cluster *cl)
{
	char subj[2][128];
	const char *subjs[2] = {subj[0], subj[1]};
	snprintf(subj[0], sizeof(subj[0]), "%s.m.q.>", cl->prefix); /* QoS >= 1 only: QoS 0 is P.m.z */
	snprintf(subj[1], sizeof(subj[1]), "%s.long.q", cl->prefix);
	jsStreamConfig sc;
	jsStreamConfig_Init(&sc);
	sc.Name = cl->stream;
	sc.Subjects = subjs;
	sc.SubjectsLen = 2;
	sc.Storage = js_FileStorage;
	sc.Replicas = cl->conf->replicas ? (int)cl->conf->replicas : 1;
	sc.MaxAge = (int64_t)cl->conf->replay_window * 1000000000LL; /* a window for replays, not a store */
	sc.MaxBytes = (int64_t)cl->conf->replay_max_bytes;
	sc.Duplicates = 60 * 1000000000LL;   /* a re-sent message id is stored once */
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetStreamInfo(&si, cl->js, cl->stream, NULL, &jerr);
	if (s != NATS_OK) {
		s = js_AddStream(&si, cl->js, &sc, NULL, &jerr);
	} else if (!stream_as_wanted(si->Config, &sc)) {
		/* made by an older vigil (which stored QoS 0 too) or with other
		 * limits: the subjects and limits become ours, its replicas stay */
		sc.Replicas = si->Config->Replicas;
		jsStreamInfo_Destroy(si);
		si = NULL;
		s = js_UpdateStream(&si, cl->js, &sc, NULL, &jerr);
		if (s == NATS_OK)
			cluster_logf(cl, LOG_F_NOTICE, "JetStream stream %s updated (subjects, limits)", cl->stream);
	}
	jsStreamInfo_Destroy(si);
	if (s != NATS_OK)
		cluster_logf(cl, LOG_F_ERROR, "JetStream stream %s unavailable (%s, %d)", cl->stream, natsStatus_GetText(s),
			     (int)jerr);
	return s == NATS_OK ? 0 : -1;
}

/* The loop thread's context for async publishes, their answers to xqos.c. */
static int publish_ctx(struct cluster *cl, natsConnection *nc)
{
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.PublishAsync.AckHandler = xqos_on_puback;
	jo.PublishAsync.AckHandlerClosure = cl;
	jo.PublishAsync.MaxPending = 1 << 20; /* xqos.c bounds them (hold time) */
	jo.PublishAsync.StallWait = 1;        /* the loop thread never waits long */
	return natsConnection_JetStream(&cl->js_pub, nc, &jo) == NATS_OK ? 0 : -1;
}

/* After a connect: JetStream, buckets, fixed subscriptions. 0 or -1. */
static int setup(struct cluster *cl, natsConnection *nc)
{
	char subj[160];
	/* A JetStream API request sent while the NATS cluster has no metadata
	 * leader (elections after a server loss) gets no answer: time out
	 * sooner than libnats' 5 s and try again (link_main retries each second). */
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 2000;
	if (natsConnection_JetStream(&cl->js, nc, &jo) != NATS_OK)
		return -1;
	if (ensure_bucket(cl, cl->bucket[0], NULL) || ensure_bucket(cl, cl->bucket[1], NULL) ||
	    ensure_bucket(cl, cl->bucket[2], &cl->kv_dead) || ensure_bucket(cl, cl->bucket[3], NULL) ||
	    ensure_stream(cl) || publish_ctx(cl, nc))
		return -1;
	static const char *const fixed[4] = {"hb", "conn", "dead", "long.*"};
	static const enum cl_tag ftag[4] = {TAG_HB, TAG_CONN, TAG_DEAD, TAG_ROUTE};
	for (int i = 0; i < 4; i++) {
		snprintf(subj, sizeof(subj), "%s.%s", cl->prefix, fixed[i]);
		if (natsConnection_Subscribe(&cl->sys_sub[i], nc, subj, link_on_msg, &cl->tags[ftag[i]]) != NATS_OK)
			return -1;
	}
	atomic_store(&cl->watch_reset, false);
	if (watch_make(cl)) {
		cluster_logf(cl, LOG_F_ERROR, "cannot watch retained messages (%s)", nats_GetLastError(NULL));
		return -1;
	}
	return natsConnection_Flush(nc) == NATS_OK ? 0 : -1;
}

/* The messages an ordered consumer on subj (options so) has when it is
 * made (not those stored after it) to the loop thread as CE_MSG tag (inst),
 * stopping early at a deadline (nats_Now() ms, 0: none); *n counts them.
 * min_from (may be NULL): the earliest replay start of the session records
 * (format 2) among them (csrecord.c). Returns the subscribe's status. */
static natsStatus fetch(struct cluster *cl, const char *subj, jsSubOptions *so, enum cl_tag tag, uint64_t inst,
			uint64_t deadline, unsigned *n, uint64_t *min_from)
{
	jsErrCode jerr = 0;
	so->Config.AckPolicy = js_AckNone; /* a plain consumer: see the retained one above */
	natsSubscription *sub = NULL;
	natsStatus s = js_SubscribeSync(&sub, cl->js, subj, NULL, so, &jerr);
	uint64_t pending = 0, cseq = 0;
	if (s == NATS_OK) {
		natsSubscription_SetPendingLimits(sub, -1, -1); /* read as fast as it comes; bounded by the stream */
		jsConsumerInfo *ci = NULL;
		if (natsSubscription_GetConsumerInfo(&ci, sub, NULL, &jerr) == NATS_OK) {
			pending = ci->NumPending + ci->Delivered.Consumer;
			jsConsumerInfo_Destroy(ci);
		}
	}
	while (s == NATS_OK && pending > 0 && (!deadline || (uint64_t)nats_Now() < deadline)) {
		natsMsg *m = NULL;
		if (natsSubscription_NextMsg(&m, sub, 2000) != NATS_OK)
			break;
		jsMsgMetaData *meta = NULL;
		pending--;
		if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
			if (meta->NumPending == 0)
				pending = 0;
			bool gap = meta->Sequence.Consumer != cseq + 1;
			cseq = meta->Sequence.Consumer;
			jsMsgMetaData_Destroy(meta);
			if (gap) { /* cannot happen without limits; if it does, the caller tries again */
				natsMsg_Destroy(m);
				s = NATS_MISMATCH;
				break;
			}
		}
		const uint8_t *d = (const uint8_t *)natsMsg_GetData(m);
		if (min_from && natsMsg_GetDataLength(m) >= 9 && d[0] == 2) {
			uint64_t from = 0;
			for (int i = 0; i < 8; i++)
				from |= (uint64_t)d[1 + i] << (8 * i);
			if (from && (!*min_from || from < *min_from))
				*min_from = from;
		}
		struct cl_event *e = calloc(1, sizeof(*e));
		if (!e) {
			natsMsg_Destroy(m);
			continue;
		}
		e->kind = CE_MSG;
		e->tag = tag;
		e->msg = m;
		e->inst = inst;
		cluster_post(cl, e);
		(*n)++;
	}
	natsSubscription_Unsubscribe(sub); /* deletes the consumer */
	natsSubscription_Destroy(sub);
	return s;
}

/* The wills (bucket 1, TAG_WILL) or session records (bucket 3, TAG_SREC)
 * of instance inst, last value per client, to the loop thread; then purge
 * them. Returns the earliest replay start of the session records (0: none). */
static uint64_t take_records(struct cluster *cl, uint64_t inst, int bucket, enum cl_tag tag)
{
	char subj[160], stream[128];
	jsErrCode jerr = 0;
	snprintf(subj, sizeof(subj), "$KV.%s.%016llx.>", cl->bucket[bucket], (unsigned long long)inst);
	snprintf(stream, sizeof(stream), "KV_%s", cl->bucket[bucket]);
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Config.DeliverPolicy = js_DeliverLastPerSubject;
	unsigned n = 0;
	uint64_t min_from = 0;
	uint64_t give_up = (uint64_t)nats_Now() + ADOPT_TRIES_MS;
	natsStatus s;
	/* JetStream may be electing (the server lost with the node): try
	 * again; never purge what could not be read. */
	while ((s = fetch(cl, subj, &so, tag, inst, 0, &n, tag == TAG_SREC ? &min_from : NULL)) != NATS_OK && n == 0 &&
	       (uint64_t)nats_Now() < give_up) {
		struct timespec ts = {0, 200 * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (s != NATS_OK) {
		cluster_logf(cl, LOG_F_ERROR, "cannot read the %s records of instance %016llx (%s): %u taken, the rest stay "
			     "in the bucket unpublished", tag == TAG_WILL ? "will" : "session", (unsigned long long)inst,
			     natsStatus_GetText(s), n);
		return min_from;
	}
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Stream.Purge.Subject = subj;
	js_PurgeStream(cl->js, stream, &jo, &jerr);
	cluster_logf(cl, LOG_F_INFORMATION, "took %u %s record(s) of instance %016llx", n, tag == TAG_WILL ? "will" : "session",
		     (unsigned long long)inst);
	return min_from;
}

static bool transient(natsStatus s)
{
	return s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS || s == NATS_CONNECTION_DISCONNECTED ||
	       s == NATS_NOT_YET_CONNECTED || s == NATS_CONNECTION_CLOSED || s == NATS_NO_SERVER;
}

/* JetStream unusable that long after the loss: give up (half the stream's window) */

/* Routed messages stored since from_wall (ms) to the loop thread as tag
 * (inst); *n counts them. */
static natsStatus replay_from(struct cluster *cl, uint64_t from_wall, enum cl_tag tag, uint64_t inst, unsigned *n)
{
	static const char *const tail[2] = {"m.q.>", "long.q"};
	natsStatus s = NATS_OK;
	uint64_t deadline = (uint64_t)nats_Now() + REPLAY_MAX_MS;
	for (int i = 0; i < 2 && s == NATS_OK; i++) {
		char subj[160];
		snprintf(subj, sizeof(subj), "%s.%s", cl->prefix, tail[i]);
		jsSubOptions so;
		jsSubOptions_Init(&so);
		so.Stream = cl->stream;
		so.Config.DeliverPolicy = js_DeliverByStartTime;
		so.Config.OptStartTime = (int64_t)from_wall * 1000000;
		s = fetch(cl, subj, &so, tag, inst, deadline, n, NULL);
	}
	return s;
}

/* Routed messages stored since from_wall (ms) to the loop thread as
 * TAG_REPLAY, then CE_REPLAY_DONE. false: JetStream not ready (retried
 * later, up to REPLAY_GIVE_UP_MS after from_wall). */
static bool replay(struct cluster *cl, uint64_t from_wall)
{
	unsigned n = 0;
	natsStatus s = replay_from(cl, from_wall, TAG_REPLAY, 0, &n);
	if (s != NATS_OK && (uint64_t)nats_Now() - from_wall < REPLAY_GIVE_UP_MS(cl))
		return false;
	if (s != NATS_OK)
		cluster_logf(cl, LOG_F_WARNING, "cannot replay routed messages from JetStream (%s): messages sent while "
			     "this node was cut off may be missing", natsStatus_GetText(s));
	cluster_postf(cl, CE_REPLAY_DONE, n);
	return true;
}

/* The adopted sessions of claimed instance inst get what the stream kept
 * since the earliest of their records' replay starts (cadopt.c sorts out
 * what each had): TAG_AREPLAY (inst), before CE_CLAIM_DONE. */
static void replay_adopted(struct cluster *cl, uint64_t inst, uint64_t from_wall)
{
	unsigned n = 0;
	natsStatus s = NATS_OK;
	uint64_t give_up = (uint64_t)nats_Now() + ADOPT_TRIES_MS;
	from_wall = from_wall > ADOPT_MARGIN_MS ? from_wall - ADOPT_MARGIN_MS : 0;
	while ((s = replay_from(cl, from_wall, TAG_AREPLAY, inst, &n)) != NATS_OK && n == 0 &&
	       (uint64_t)nats_Now() < give_up) {
		struct timespec ts = {0, 200 * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (s != NATS_OK)
		cluster_logf(cl, LOG_F_WARNING, "cannot replay the messages of the sessions of dead instance %016llx from "
			     "JetStream (%s): what it had queued for them is lost", (unsigned long long)inst,
			     natsStatus_GetText(s));
	else
		cluster_logf(cl, LOG_F_INFORMATION, "replayed %u routed message(s) for the sessions of instance %016llx", n,
			     (unsigned long long)inst);
}

/* One command; false: retry it later. */
static bool run_cmd(struct cluster *cl, natsConnection *nc, struct cl_cmd *c)
{
	if (c->kind == CMD_REPLAY)
		return replay(cl, c->inst);
	if (c->kind == CMD_PUT) { /* waits for JetStream, so a claim after it finds it */
		jsPubOptions po;
		jsPubOptions_Init(&po);
		po.MaxWait = 1000; /* run at shutdown: within its budget */
		jsErrCode jerr = 0;
		natsStatus s = js_Publish(NULL, cl->js, c->subj, c->data, (int)c->len, &po, &jerr);
		if (s != NATS_OK)
			cluster_logf(cl, LOG_F_WARNING, "a will record was not stored (%s): it is lost with this node",
				     natsStatus_GetText(s));
		return true;
	}
	if (c->kind == CMD_HANDOVER) { /* after the records: the others claim them now */
		char subj[160], buf[128];
		snprintf(subj, sizeof(subj), "%s.hb", cl->prefix);
		int n = snprintf(buf, sizeof(buf), "%016llx %s 2", (unsigned long long)c->inst, cl->conf->node_id);
		natsConnection_Publish(nc, subj, buf, n);
		return true;
	}
	char key[32], val[96];
	snprintf(key, sizeof(key), "%016llx", (unsigned long long)c->inst);
	if (c->kind == CMD_PURGE) { /* the instance's wills and session records */
		natsStatus s = NATS_OK;
		for (int bk = 1; bk <= 3 && !transient(s); bk += 2) {
			char subj[160], stream[128];
			jsErrCode jerr = 0;
			jsOptions jo;
			snprintf(subj, sizeof(subj), "$KV.%s.%s.>", cl->bucket[bk], key);
			snprintf(stream, sizeof(stream), "KV_%s", cl->bucket[bk]);
			jsOptions_Init(&jo);
			jo.Stream.Purge.Subject = subj;
			jo.Wait = 1000; /* also run at shutdown, which must stay within its budget */
			s = js_PurgeStream(cl->js, stream, &jo, &jerr);
		}
		return !transient(s);
	}
	snprintf(val, sizeof(val), "%s", cl->conf->node_id);
	uint64_t rev = 0;
	natsStatus s = kvStore_Create(&rev, cl->kv_dead, key, val, (int)strlen(val));
	if (transient(s) && c->kind == CMD_SELF)
		return false;
	if (transient(s)) { /* the loop judges the node again: it may be us who were cut off */
		cluster_postf(cl, CE_CLAIM_FAILED, c->inst);
		return true;
	}
	if (c->kind == CMD_SELF) {
		cluster_postf(cl, s == NATS_OK ? CE_SELF_OK : CE_SELF_DEAD, c->inst);
		return true;
	}
	if (s != NATS_OK) {
		cluster_postf(cl, CE_CLAIM_DONE, c->inst); /* another node won it */
		return true;
	}
	cluster_postf(cl, CE_CLAIMED, c->inst);
	char subj[160];
	snprintf(subj, sizeof(subj), "%s.dead", cl->prefix);
	natsConnection_Publish(nc, subj, key, (int)strlen(key));
	take_records(cl, c->inst, 1, TAG_WILL);
	uint64_t from = take_records(cl, c->inst, 3, TAG_SREC); /* its persistent sessions resume here (csrecord.c) */
	if (from)
		replay_adopted(cl, c->inst, from); /* with what it had queued for them (cadopt.c) */
	cluster_postf(cl, CE_CLAIM_DONE, c->inst);
	return true;
}

static void *link_main(void *arg)
{
	struct cluster *cl = arg;
	natsConnection *nc = NULL;
	bool stop = false, said = false;
	natsConnection *nc2 = NULL;
	while (!stop) {
		natsStatus s = natsConnection_Connect(&nc, cl->opts);
		if (s == NATS_OK && setup(cl, nc) == 0 && (s = natsConnection_Connect(&nc2, cl->opts2)) == NATS_OK)
			break;
		if (nc) {
			drop_watch(cl);
			natsConnection_Close(nc);
			drop_link(cl);
			natsConnection_Destroy(nc);
		}
		nc = NULL;
		if (!said)
			cluster_logf(cl, LOG_F_WARNING, "NATS %s not usable (%s): serving local clients, retrying every second.",
				     cl->conf->nats_url, s == NATS_OK ? "JetStream not ready" : natsStatus_GetText(s));
		said = true;
		struct cl_cmd *c = next_cmd(cl, 1000, &stop);
		free(c); /* nothing to claim from while we are out of the cluster */
	}
	if (nc) {
		pthread_mutex_lock(&cl->mu);
		cl->nc = nc;
		cl->nc2 = nc2;
		pthread_mutex_unlock(&cl->mu);
		cluster_postf(cl, CE_JOINED, 0);
		for (;;) {
			if (atomic_load(&cl->watch_reset) && natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED) {
				atomic_store(&cl->watch_reset, false);
				if (watch_make(cl))
					atomic_store(&cl->watch_reset, true); /* JetStream not there yet: again in a moment */
			}
			struct cl_cmd *c = next_cmd(cl, atomic_load(&cl->watch_reset) ? 200 : 500, &stop);
			if (!c) {
				if (stop)
					break;
				continue;
			}
			if (!run_cmd(cl, nc, c) && !stop) {
				requeue(cl, c);
				struct timespec ts = {0, 200 * 1000000L};
				nanosleep(&ts, NULL);
				continue;
			}
			free(c);
		}
		/* What is queued (the goodbye) goes out; with NATS away there is
		 * nothing to wait for (libnats' default would wait 10 s). */
		if (natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED)
			natsConnection_FlushTimeout(nc, 1000);
	}
	pthread_mutex_lock(&cl->mu);
	cl->nc = cl->nc2 = NULL;
	pthread_mutex_unlock(&cl->mu);
	/* Close first: it ends every subscription and drops what they had
	 * queued; then free the handles. */
	drop_watch(cl);
	natsConnection_Close(nc2);
	natsConnection_Close(nc);
	drop_link(cl);
	natsConnection_Destroy(nc2);
	natsConnection_Destroy(nc);
	nats_ReleaseThreadMemory();
	return NULL;
}

/* "URL[,URL...]" (spaces around commas allowed) as libnats' server list. */
static natsStatus set_servers(natsOptions *o, const char *list)
{
	char *copy = strdup(list), *save = NULL;
	const char *urls[64];
	int n = 0;
	if (!copy)
		return NATS_NO_MEMORY;
	for (char *t = strtok_r(copy, ",", &save); t && n < 64; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ' || *t == '\t')
			t++;
		size_t l = strlen(t);
		while (l && (t[l - 1] == ' ' || t[l - 1] == '\t'))
			t[--l] = 0;
		if (*t)
			urls[n++] = t;
	}
	natsStatus s = n ? natsOptions_SetServers(o, urls, n) : NATS_INVALID_ARG;
	free(copy);
	return s;
}

/* Options for the main connection, or (shares) for the one that carries
 * only the shared-subscription queue groups: that one must hear this
 * node's own messages too, so it has no no-echo and no state callbacks. */
static natsStatus make_opts(struct cluster *cl, natsOptions **out, bool shares)
{
	const struct cluster_conf *cc = cl->conf;
	char name[96];
	snprintf(name, sizeof(name), "%s%s", cc->node_id, shares ? "-shares" : "");
	natsOptions *o = NULL;
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = set_servers(o, cc->nats_url);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, name);
	if (s == NATS_OK)
		s = natsOptions_SetNoEcho(o, !shares); /* main: our own messages are routed locally already */
	if (s == NATS_OK)
		s = natsOptions_UseGlobalMessageDelivery(o, true); /* one thread: one order */
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, 2000);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 250);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(o, 1000);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(o, 3);
	if (s == NATS_OK && !shares)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, cl);
	if (s == NATS_OK && !shares)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, cl);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(o, on_async_error, cl);
	if (s == NATS_OK && cc->creds)
		s = natsOptions_SetUserCredentialsFromFiles(o, cc->creds, NULL);
	if (s == NATS_OK && cc->cafile)
		s = natsOptions_LoadCATrustedCertificates(o, cc->cafile);
	if (s == NATS_OK && (cc->cafile || cc->certfile))
		s = natsOptions_SetSecure(o, true);
	if (s == NATS_OK && cc->certfile)
		s = natsOptions_LoadCertificatesChain(o, cc->certfile, cc->keyfile ? cc->keyfile : cc->certfile);
	if (s != NATS_OK)
		natsOptions_Destroy(o);
	else
		*out = o;
	return s;
}

int link_start(struct cluster *cl, char *err, size_t errlen)
{
	natsStatus s = nats_Open(-1);
	if (s == NATS_OK)
		s = nats_SetMessageDeliveryPoolSize(1);
	if (s == NATS_OK)
		s = make_opts(cl, &cl->opts, false);
	if (s == NATS_OK)
		s = make_opts(cl, &cl->opts2, true);
	if (s != NATS_OK) {
		snprintf(err, errlen, "cluster: NATS options: %s (%s)", natsStatus_GetText(s), nats_GetLastError(NULL));
		return -1;
	}
	for (int i = 0; i < N_TAGS; i++)
		cl->tags[i] = (uint8_t)i;
	if (pthread_create(&cl->thread, NULL, link_main, cl)) {
		snprintf(err, errlen, "cluster: cannot start the NATS thread: %s", strerror(errno));
		return -1;
	}
	cl->thread_started = true;
	return 0;
}

void link_stop(struct cluster *cl)
{
	if (cl->thread_started) {
		pthread_mutex_lock(&cl->mu);
		cl->stop = true;
		pthread_cond_broadcast(&cl->cv);
		pthread_mutex_unlock(&cl->mu);
		pthread_join(cl->thread, NULL);
		cl->thread_started = false;
	}
	natsOptions_Destroy(cl->opts);
	natsOptions_Destroy(cl->opts2);
	cl->opts = cl->opts2 = NULL;
}
