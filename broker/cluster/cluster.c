/*
 * broker/cluster/cluster.c — the room's front door: start and stop, the
 * hooks table the core calls, and the one hand-over point between libnats'
 * threads and the loop thread (a mutex-guarded event queue and an eventfd).
 *
 * Deliberately not here: NATS connection handling (link.c), routing
 * (xroute.c), node liveness (nodes.c).
 * Invariant: broker state is touched only from on_events (the loop
 * thread); other threads only append to the queue and write the eventfd.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "cluster.h"
#include "cluster_int.h"

static void client_gone(void *u, struct client *c)
{
	if (c->cluster_held)
		csession_client_gone(u, c);
	if (c->cluster_acks)
		xqos_client_gone(u, c);
}

static const struct cluster_ops OPS = {
	.route_out = csession_route_out, /* xroute_route_out, and the message's identity */
	.retain_out = xroute_retain_out,
	.attached = csession_attached,   /* nodes_attached, and the session's record */
	.will_gone = nodes_will_gone,
	.connect_hold = csession_hold,
	.ack_hold = xqos_ack_hold,
	.client_gone = client_gone,
	.session_changed = csrecord_changed,
	.session_end = csrecord_end,
};

void cluster_post(struct cluster *cl, struct cl_event *e)
{
	e->next = NULL;
	pthread_mutex_lock(&cl->mu);
	*cl->ev_tail = e;
	cl->ev_tail = &e->next;
	pthread_mutex_unlock(&cl->mu);
	uint64_t one = 1;
	ssize_t r = write(cl->efd, &one, sizeof(one)); /* EAGAIN: the counter is already set */
	(void)r;
}

void cluster_postf(struct cluster *cl, enum cl_ev_kind kind, uint64_t inst)
{
	struct cl_event *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->kind = kind;
	e->inst = inst;
	cluster_post(cl, e);
}

void cluster_logf(struct cluster *cl, unsigned level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = strlen(buf);
	struct cl_event *e = calloc(1, sizeof(*e) + len + 1);
	if (!e)
		return;
	e->kind = CE_LOG;
	e->level = level;
	memcpy(e->text, buf, len + 1);
	cluster_post(cl, e);
}

/* A replay goes first: live traffic waits for it (xqos.c), and it
 * depends on nothing queued (a purge behind a lost JetStream leader may
 * take seconds). */
static void command(struct cluster *cl, struct cl_cmd *c)
{
	pthread_mutex_lock(&cl->mu);
	if (c->kind == CMD_REPLAY && cl->cmd_head) {
		c->next = cl->cmd_head;
		cl->cmd_head = c;
	} else {
		*cl->cmd_tail = c;
		cl->cmd_tail = &c->next;
	}
	pthread_cond_broadcast(&cl->cv);
	pthread_mutex_unlock(&cl->mu);
}

void cluster_command(struct cluster *cl, enum cl_cmd_kind kind, uint64_t inst)
{
	struct cl_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->kind = kind;
	c->inst = inst;
	command(cl, c);
}

void cluster_command_put(struct cluster *cl, const char *subj, const uint8_t *p, size_t len)
{
	size_t sl = strlen(subj);
	struct cl_cmd *c = calloc(1, sizeof(*c) + len + sl + 1);
	if (!c)
		return;
	c->kind = CMD_PUT;
	c->len = len;
	memcpy(c->data, p, len);
	c->subj = (char *)c->data + len;
	memcpy(c->subj, subj, sl + 1);
	command(cl, c);
}

static void run_event(struct cluster *cl, struct cl_event *e)
{
	struct broker *b = cl->b;
	if (cl->stopping)
		return;
	switch (e->kind) {
	case CE_MSG:
		switch (e->tag) {
		case TAG_ROUTE:
		case TAG_REPLAY:
			if (!xqos_defer(cl, e)) /* during a replay: routed after it, in order */
				xroute_remote_in(cl, e->msg);
			break;
		case TAG_RETAIN: xroute_retain_in(cl, e->msg); break;
		case TAG_HB: nodes_hb_in(cl, e->msg); break;
		case TAG_CONN: nodes_conn_in(cl, e->msg); break;
		case TAG_DEAD: nodes_dead_in(cl, e->msg); break;
		case TAG_WILL: nodes_will_in(cl, e->msg); break;
		case TAG_GROUP: xroute_group_in(cl, e->msg, (int64_t)e->inst); break;
		case TAG_SGET:
			if (!cadopt_defer_get(cl, e)) /* its session awaits its replay here: answered after it */
				csession_get_in(cl, e->msg);
			break;
		case TAG_SDIRECT: csession_direct_in(cl, e->msg); break;
		case TAG_SADOPT: csession_adopt_in(cl, e->msg); break;
		case TAG_SREC: csrecord_adopt(cl, e->msg, e->inst); break;
		case TAG_AREPLAY: cadopt_replay_in(cl, e->msg, e->inst); break;
		default: break;
		}
		break;
	case CE_JOINED:
		cl->connected = true;
		b->groups_in_cluster = true; /* shared groups: one member cluster-wide, through NATS */
		cl->down_since = 0;
		if (!cl->joined) {
			cl->joined = true;
			xroute_subscribe_all(cl);
			csession_joined(cl);
			xroute_unjoined_flush(cl);
		}
		nodes_joined(cl);
		char url[256] = "?";
		natsConnection_GetConnectedUrl(cl->nc, url, sizeof(url));
		log_msg(b, LOG_F_NOTICE, "Cluster: node %s joined cluster %s through NATS %s.", cl->conf->node_id,
			cl->name, url);
		break;
	case CE_DISCONNECTED:
		b->groups_in_cluster = false; /* cut off: serve shared groups here meanwhile */
		if (cl->connected) {
			cl->connected = false;
			cl->down_since = broker_now(b);
			log_msg(b, LOG_F_WARNING, "Cluster: lost NATS; serving local clients, reconnecting.");
		}
		break;
	case CE_RECONNECTED:
		/* Peers were not heard while we were blind: do not judge them by
		 * it; and we may have been declared dead meanwhile: ask. */
		cl->connected = true;
		b->groups_in_cluster = true;
		nodes_joined(cl);
		if (cl->down_since)
			cluster_command(cl, CMD_SELF, cl->inst);
		xqos_reconnected(cl); /* re-send what JetStream did not confirm, replay what we missed */
		cl->down_since = 0;
		log_msg(b, LOG_F_NOTICE, "Cluster: NATS connection restored.");
		break;
	case CE_LOG:
		log_msg(b, e->level, "Cluster: %s", e->text);
		break;
	case CE_CLAIMED:
		log_msg(b, LOG_F_NOTICE, "Cluster: this node publishes the wills of dead instance %016llx.",
			(unsigned long long)e->inst);
		csession_claimed(cl, e->inst);
		break;
	case CE_CLAIM_DONE:
		nodes_claim_done(cl, e->inst);
		cadopt_done(cl, e->inst);         /* its sessions get their replayed messages */
		csession_claim_done(cl, e->inst); /* then they answer for themselves */
		break;
	case CE_CLAIM_FAILED:
		nodes_peer(cl, e->inst, true); /* judged again; its claim record stays (silent since the first time) */
		break;
	/* Answers about an instance we have since left (a P.dead notice came
	 * first, or a second check) change nothing. */
	case CE_SELF_OK:
		if (e->inst == cl->inst)
			nodes_new_instance(cl);
		break;
	case CE_SELF_DEAD:
		if (e->inst == cl->inst)
			nodes_step_down(cl);
		break;
	case CE_JS_ACK:
	case CE_JS_NACK:
		xqos_js_ack(cl, e->inst, e->kind == CE_JS_ACK);
		break;
	case CE_REPLAY_DONE:
		xqos_replay_done(cl, e->inst);
		break;
	case CE_RETAIN_LOADED:
		if (!cl->retain_loaded) {
			log_msg(b, LOG_F_NOTICE, "Cluster: retained messages loaded.");
			cl->retain_loaded = true;
			xroute_unjoined_flush(cl);
		}
		break;
	}
}

static void on_events(struct net_loop *loop, int fd, unsigned events, void *user)
{
	struct cluster *cl = user;
	uint64_t v;
	(void)loop;
	(void)events;
	if (fd >= 0) {
		ssize_t r = read(fd, &v, sizeof(v));
		(void)r;
	}
	pthread_mutex_lock(&cl->mu);
	struct cl_event *e = cl->ev_head;
	cl->ev_head = NULL;
	cl->ev_tail = &cl->ev_head;
	pthread_mutex_unlock(&cl->mu);
	while (e) {
		struct cl_event *n = e->next;
		run_event(cl, e);
		if (e->msg)
			natsMsg_Destroy(e->msg);
		free(e);
		e = n;
	}
}

int cluster_start(struct broker *b, char *err, size_t errlen)
{
	const struct cluster_conf *cc = &b->cfg->cluster;
	if (!cc->nats_url)
		return 0;
	struct cluster *cl = calloc(1, sizeof(*cl));
	if (!cl) {
		snprintf(err, errlen, "cluster: out of memory");
		return -1;
	}
	cl->b = b;
	cl->conf = cc;
	cl->efd = -1;
	snprintf(cl->name, sizeof(cl->name), "%s", cc->name ? cc->name : "vigil");
	snprintf(cl->prefix, sizeof(cl->prefix), "vigil.%s", cl->name);
	static const char *const what[4] = {"retain", "wills", "dead", "sess"};
	for (int i = 0; i < 4; i++)
		snprintf(cl->bucket[i], sizeof(cl->bucket[i]), "vigil_%s_%s", cl->name, what[i]);
	snprintf(cl->stream, sizeof(cl->stream), "vigil_%s_msgs", cl->name);
	cl->timeout_ms = cc->node_timeout * 1000u;
	cl->hb_ms = cl->timeout_ms / 4 < 1000 ? cl->timeout_ms / 4 : 1000;
	if (getrandom(&cl->inst, sizeof(cl->inst), 0) != (ssize_t)sizeof(cl->inst) || !cl->inst)
		cl->inst = ((uint64_t)getpid() << 32) ^ net_now(b->loop) ^ 0x9e3779b97f4a7c15ull;
	pthread_mutex_init(&cl->mu, NULL);
	pthread_cond_init(&cl->cv, NULL);
	cl->ev_tail = &cl->ev_head;
	cl->cmd_tail = &cl->cmd_head;
	cl->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (cl->efd >= 0 && net_fd_add(b->loop, cl->efd, NET_READ, on_events, cl)) {
		close(cl->efd);
		cl->efd = -1;
	}
	if (cl->efd < 0) {
		snprintf(err, errlen, "cluster: eventfd: %s", strerror(errno));
		goto fail;
	}
	b->cluster = &OPS;
	b->cluster_user = cl;
	subtree_set_watch(b->subs, xroute_watch, cl);
	nodes_start(cl);
	if (csession_start(cl) || xqos_start(cl) || cadopt_start(cl)) {
		snprintf(err, errlen, "cluster: out of memory");
		goto fail;
	}
	if (link_start(cl, err, errlen))
		goto fail;
	log_msg(b, LOG_F_NOTICE, "Cluster: node %s (instance %016llx) of cluster %s, NATS %s, node timeout %u s.",
		cc->node_id, (unsigned long long)cl->inst, cl->name, cc->nats_url, cc->node_timeout);
	return 0;
fail:
	b->cluster_user = cl;
	cluster_stop(b);
	return -1;
}

void cluster_leave(struct broker *b)
{
	struct cluster *cl = b->cluster_user;
	if (!cl || cl->left || !cl->joined || !cl->connected)
		return;
	nodes_bye(cl);
	cl->left = true;
}

void cluster_stop(struct broker *b)
{
	struct cluster *cl = b->cluster_user;
	if (!cl)
		return;
	subtree_set_watch(b->subs, NULL, NULL);
	b->cluster = NULL;
	b->groups_in_cluster = false;
	if (cl->joined && cl->connected && !cl->left)
		nodes_bye(cl); /* and the command to purge our wills, run before the link closes */
	xroute_free(cl);
	csession_free(cl);
	cadopt_free(cl);
	link_stop(cl); /* closes NATS, joins the thread */
	xqos_free(cl); /* after: no more PubAcks; held acks never leave */
	b->cluster_user = NULL;
	cl->stopping = true;
	/* Free what is left (not run): messages before libnats closes, then
	 * whatever its last callbacks queued. */
	if (cl->efd >= 0)
		net_fd_del(b->loop, cl->efd);
	on_events(b->loop, cl->efd, 0, cl);
	nats_CloseAndWait(2000);
	on_events(b->loop, cl->efd, 0, cl);
	if (cl->efd >= 0)
		close(cl->efd);
	nodes_free(cl);
	while (cl->cmd_head) {
		struct cl_cmd *c = cl->cmd_head;
		cl->cmd_head = c->next;
		free(c);
	}
	pthread_mutex_destroy(&cl->mu);
	pthread_cond_destroy(&cl->cv);
	free(cl);
}
