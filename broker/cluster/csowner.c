/*
 * broker/cluster/csowner.c — the owner's side of a session hand-over
 * (csession.c describes the whole exchange): answer "where is client X's
 * session" (P.sget) with its subscriptions, closing a connection it still
 * has (v5 DISCONNECT 0x8E), and on "take" send its in-flight and queued
 * messages, in order and with their state, and its inbound QoS 2 packet ids,
 * in chunks below NATS's max payload, then "end", and drop the session.
 * Item IT_OUT: u8 state, u8 qos, u8 retain, u8 sent, u16 pid, u8 n, n x
 * u32 subscription id, u64 wall ms it was routed, the envelope.
 * Deliberately not here: the requesting node's side (csession.c), records
 * (csrecord.c).
 * Invariant: a session is sent whole or not at all (a message larger than
 * NATS carries is counted and logged, never half sent); after "end" this
 * node no longer has it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"

void csession_get_in(struct cluster *cl, natsMsg *msg)
{
	struct broker *b = cl->b;
	struct cl_rbuf r = {(const uint8_t *)natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, false};
	bool absent;
	const char *reply = natsMsg_GetReply(msg);
	int kind = (int)csrecord_get(&r, 1);
	uint64_t from = csrecord_get(&r, 8), req = csrecord_get(&r, 8);
	char *id = csrecord_getstr(&r, &absent);
	if (!id || r.err || kind != K_GET || !reply || from == cl->inst) {
		free(id);
		return;
	}
	struct session *s = session_find(b, id);
	bool p = csession_pending(cl, id);
	if (s && !p && !s->bridge_owned && s->client) {
		log_msg(b, LOG_F_NOTICE, "Client %s connected to another cluster node, closing old connection.", id);
		/* as a takeover on one node: v5 DISCONNECT 0x8E (MQTT-3.1.4-3), the will follows its rules */
		client_close(s->client, 0x8E, true, false, "Session taken over");
		s = session_find(b, id); /* a session with expiry 0 ended with it */
	}
	if (!s || p || s->bridge_owned || s->client || s->expiry == 0) {
		cs_answer(cl, reply, K_NONE, req, id);
		free(id);
		return;
	}
	struct cl_wbuf w = {0};
	cs_hdr(cl, &w, K_SUBS, req, id);
	csrecord_encode(cl, s, &w, false); /* the messages follow on take */
	cs_send_to(cl, reply, csession_direct(cl), &w);
	free(id);
}

static void put_env(struct cluster *cl, struct cl_wbuf *w, const struct message *m)
{
	struct cl_env e = {
		.flags = (uint8_t)((m->qos & ENV_QOS) | (m->retain ? ENV_RETAIN : 0)),
		.inst = m->cl_inst,
		.seq = m->cl_seq,
		.topic = m->topic,
		.props = m->props,
		.payload = m->payload,
		.id = m->origin_id ? mqtt_cstr(m->origin_id) : (struct mqtt_str){0},
		.user = m->origin_user ? mqtt_cstr(m->origin_user) : (struct mqtt_str){0},
	};
	if (m->has_expiry) {
		uint64_t now = broker_now(cl->b);
		e.flags |= ENV_EXPIRY;
		e.expiry_wall = store_wall_now() + (m->expiry_at > now ? m->expiry_at - now : 0);
	}
	size_t len = 0;
	uint8_t *buf = env_encode(&e, &len);
	if (!buf) {
		w->err = true;
		return;
	}
	csrecord_put(w, buf, len);
	free(buf);
}

struct sender {
	struct cluster *cl;
	const char *to, *id;
	uint64_t req;
	size_t limit;
	struct cl_wbuf chunk, item;
	uint32_t chunks, items, skipped;
};

static void flush_chunk(struct sender *sd)
{
	struct cl_wbuf w = {0};
	cs_hdr(sd->cl, &w, K_DATA, sd->req, sd->id);
	csrecord_le(&w, sd->chunks++, 4);
	csrecord_put(&w, sd->chunk.p, sd->chunk.len);
	cs_send_to(sd->cl, sd->to, NULL, &w);
	sd->chunk.len = 0;
}

static void add_item(struct sender *sd, uint8_t type)
{
	if (sd->item.err || sd->item.len + 64 > sd->limit) {
		sd->skipped++; /* larger than NATS carries */
	} else {
		if (sd->chunk.len + sd->item.len + 5 > sd->limit)
			flush_chunk(sd);
		csrecord_le(&sd->chunk, type, 1);
		csrecord_le(&sd->chunk, sd->item.len, 4);
		csrecord_put(&sd->chunk, sd->item.p, sd->item.len);
		sd->items++;
	}
	sd->item.len = 0;
	sd->item.err = false;
}

static void send_list(struct sender *sd, const struct out_list *l)
{
	for (const struct outmsg *o = l->head; o; o = o->next) {
		struct cl_wbuf *w = &sd->item;
		csrecord_le(w, o->state, 1);
		csrecord_le(w, o->qos, 1);
		csrecord_le(w, o->retain, 1);
		csrecord_le(w, o->sent, 1);
		csrecord_le(w, o->pid, 2);
		csrecord_le(w, o->n_sub_ids, 1);
		for (unsigned i = 0; i < o->n_sub_ids; i++)
			csrecord_le(w, o->sub_ids[i], 4);
		/* when it was stored (routed here): a replay for it starts there (cadopt.c) */
		csrecord_le(w, store_mono_to_wall(sd->cl->b, o->msg->cl_at), 8);
		put_env(sd->cl, w, o->msg);
		add_item(sd, IT_OUT);
	}
}

void csession_take_in(struct cluster *cl, uint64_t from, uint64_t req, const char *id, const char *reply)
{
	struct broker *b = cl->b;
	struct session *s = session_find(b, id);
	if (!reply)
		return;
	if (!s || s->client || s->bridge_owned || s->expiry == 0 || csession_busy(cl, id) || cadopt_busy(cl, id)) {
		cs_answer(cl, reply, K_GONE, req, id); /* reconnected here meanwhile, or ended */
		return;
	}
	int64_t maxp = natsConnection_GetMaxPayload(cl->nc);
	struct sender sd = {.cl = cl, .to = reply, .id = id, .req = req,
			    .limit = (size_t)(maxp > 8192 ? (maxp - 4096 < 512 * 1024 ? maxp - 4096 : 512 * 1024) : 4096)};
	send_list(&sd, &s->inflight); /* in send order: resent first */
	send_list(&sd, &s->queue);
	for (uint32_t i = 0; i < s->n_in_qos2; i++) {
		csrecord_le(&sd.item, s->in_qos2[i].pid, 2);
		if (s->in_qos2[i].msg)
			put_env(cl, &sd.item, s->in_qos2[i].msg);
		add_item(&sd, IT_QOS2);
	}
	if (sd.chunk.len)
		flush_chunk(&sd);
	struct cl_wbuf w = {0};
	cs_hdr(cl, &w, K_END, req, id);
	csrecord_le(&w, sd.chunks, 4);
	csrecord_le(&w, s->next_pid, 2);
	cs_send_to(cl, reply, NULL, &w);
	struct cl_peer *q = nodes_peer(cl, from, false);
	log_msg(b, LOG_F_NOTICE, "Cluster: session of client %s moved to node %s with %u message(s)%s.", id,
		q && q->node[0] ? q->node : "?", sd.items, sd.skipped ? " (some too large for NATS were dropped)" : "");
	free(sd.chunk.p);
	free(sd.item.p);
	session_destroy(s); /* with its delayed will, if any: its client is back (v5 MQTT-3.1.3-9) */
}

