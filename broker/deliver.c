/*
 * broker/deliver.c — outbound messages: the in-flight window, the queue,
 * encoding, acknowledgements and redelivery.
 *
 * Each session sends QoS 1/2 messages through a window no wider than
 * max_inflight_messages and the client's Receive Maximum (v5 MQTT-3.3.4-9
 * on our side as sender: never more unacknowledged than the client allows);
 * the rest wait in a FIFO bounded by max_queued_messages / max_queued_bytes.
 * In-flight messages are resent with DUP only when a session is resumed on a
 * new connection, never on the same one (v5 MQTT-4.4.0-1, v311 MQTT-4.4.0-1).
 * Read access (ACL) is checked again whenever a stored message is sent
 * from the queue or resent from the window, as it may have been revoked.
 * Encoding goes straight into the connection's output queue; the loop
 * flushes every connection once per pass.
 * Packet ids of the window are found through a direct-mapped index (below),
 * so a PUBACK and the next free id cost the same at a window of 65535.
 * Invariant: inflight holds only OUT_PUBLISH / OUT_PUBREL entries with
 * distinct packet ids; with the index, each is in its slot or counted in
 * n_spill; queue holds only OUT_QUEUED ones.
 */
#include <stdlib.h>
#include <string.h>

#include "bridge/bridge.h"
#include "broker.h"

/* Output backlog (bytes) past which QoS 0 messages to a connected client
 * are dropped, when max_queued_bytes does not set one. */
#define DELIVER_QOS0_BACKLOG ((uint64_t)8 << 20)

static void list_append(struct out_list *l, struct outmsg *o)
{
	o->next = NULL;
	o->prev = l->tail;
	if (l->tail)
		l->tail->next = o;
	else
		l->head = o;
	l->tail = o;
	l->count++;
	l->bytes += o->msg->payload.len;
}

static void list_remove(struct out_list *l, struct outmsg *o)
{
	if (o->prev)
		o->prev->next = o->next;
	else
		l->head = o->next;
	if (o->next)
		o->next->prev = o->prev;
	else
		l->tail = o->prev;
	l->count--;
	l->bytes -= o->msg->payload.len;
	o->next = o->prev = NULL;
}

static void out_free(struct outmsg *o)
{
	struct mem *acct = o->msg->mem; /* entries are charged to their message's accounting */
	message_unref(&o->msg);
	mem_obj_free(acct, o, sizeof(*o) + o->n_sub_ids * sizeof(uint32_t));
}

void out_list_clear(struct out_list *l)
{
	struct outmsg *o = l->head;
	while (o) {
		struct outmsg *n = o->next;
		out_free(o);
		o = n;
	}
	free(l->ix);
	memset(l, 0, sizeof(*l));
}

static uint32_t window(const struct session *s)
{
	const struct config *cfg = s->b->cfg;
	uint32_t w = cfg->max_inflight_messages ? cfg->max_inflight_messages : 65535;
	if (s->client && s->client->receive_max_out < w)
		w = s->client->receive_max_out;
	return w;
}

/* Room in the window for one more message of `bytes` payload: the count
 * (max_inflight_messages, the client's Receive Maximum) and, when set,
 * max_inflight_bytes (always room for one message, however large). */
static bool window_room(const struct session *s, uint64_t bytes)
{
	uint64_t maxb = s->b->cfg->max_inflight_bytes;
	if (s->inflight.count >= window(s))
		return false;
	return !maxb || s->inflight.count == 0 || s->inflight.bytes + bytes <= maxb;
}

/* ---- the in-flight index: packet id -> entry ----
 * A direct-mapped table: entry o sits in slot o->pid & (ix_cap - 1) unless
 * another entry holds that slot; such entries are counted in n_spill and
 * found by a scan of the list, which only a lookup that misses its slot
 * pays, and only while n_spill > 0 (ids are handed out in sequence, so a
 * slot is shared only with an id held for a whole lap of the table). Built
 * once IX_MIN entries are in flight (a scan of fewer is as cheap) and kept
 * at most half full; without memory for it the list is scanned. */
#define IX_MIN 8

static void ix_build(struct out_list *l, uint32_t want)
{
	uint32_t cap = 16;
	while (cap < want * 2)
		cap *= 2;
	free(l->ix);
	l->ix = calloc(cap, sizeof(*l->ix));
	l->ix_cap = l->ix ? cap : 0;
	l->n_spill = 0;
	if (!l->ix)
		return;
	for (struct outmsg *o = l->head; o; o = o->next) {
		if (l->ix[o->pid & (cap - 1)])
			l->n_spill++;
		else
			l->ix[o->pid & (cap - 1)] = o;
	}
}

static void inflight_add(struct session *s, struct outmsg *o)
{
	struct out_list *l = &s->inflight;
	list_append(l, o);
	if (l->ix && l->count * 2 <= l->ix_cap) {
		if (l->ix[o->pid & (l->ix_cap - 1)])
			l->n_spill++;
		else
			l->ix[o->pid & (l->ix_cap - 1)] = o;
	} else if (l->count >= IX_MIN) {
		ix_build(l, l->count);
	}
}

static void inflight_remove(struct session *s, struct outmsg *o)
{
	struct out_list *l = &s->inflight;
	if (l->ix) {
		if (l->ix[o->pid & (l->ix_cap - 1)] == o)
			l->ix[o->pid & (l->ix_cap - 1)] = NULL;
		else
			l->n_spill--;
	}
	list_remove(l, o);
}

static struct outmsg *find_inflight(const struct session *s, uint16_t pid)
{
	const struct out_list *l = &s->inflight;
	if (l->ix) {
		struct outmsg *o = l->ix[pid & (l->ix_cap - 1)];
		if (o && o->pid == pid)
			return o;
		if (!l->n_spill)
			return NULL;
	}
	for (struct outmsg *o = l->head; o; o = o->next)
		if (o->pid == pid)
			return o;
	return NULL;
}

static bool pid_in_use(const struct session *s, uint16_t pid)
{
	return find_inflight(s, pid) != NULL;
}

static uint16_t next_pid(struct session *s)
{
	for (unsigned tries = 0; tries < 65536; tries++) {
		uint16_t pid = s->next_pid++;
		if (s->next_pid == 0)
			s->next_pid = 1;
		if (pid && !pid_in_use(s, pid))
			return pid;
	}
	return 0;
}

/* Encode one PUBLISH for client c. Returns false if it could not be sent
 * (too big for the client: v5 MQTT-3.1.2-24 says discard it as if sent). */
static bool send_publish(struct client *c, struct message *m, uint8_t qos, uint16_t pid, bool retain, bool dup,
			 const uint32_t *sub_ids, uint8_t n_sub_ids)
{
	struct broker *b = c->b;
	uint8_t pbuf[64];
	uint8_t *props = NULL;
	size_t plen = 0;
	struct mqtt_str topic = m->topic;
	const char *mp = c->l->conf->mount_point;
	char tbuf[256], *tbig = NULL;

	if (mp) {
		size_t n = strlen(mp);
		if (topic.len >= n && memcmp(topic.p, mp, n) == 0) {
			topic.p += n;
			topic.len -= (uint32_t)n;
		}
	}
	if (c->bridge) /* to a remote broker: local prefix -> remote, bridge_outgoing_retain */
		bridge_publish_out(c, &topic, &retain, tbuf, sizeof(tbuf), &tbig);
	if (c->version == MQTT_V5) {
		struct mqtt_pw w;
		size_t need = 5 + 5u * n_sub_ids + m->props.len;
		props = need <= sizeof(pbuf) ? pbuf : malloc(need);
		if (!props) {
			free(tbig);
			return false;
		}
		mqtt_pw_init(&w, props, need);
		if (m->has_expiry) {
			uint64_t left = m->expiry_at > broker_now(b) ? m->expiry_at - broker_now(b) : 0;
			/* v5 MQTT-3.3.2-6: the remaining interval, rounded up. */
			mqtt_pw_u32(&w, MQTT_PROP_MESSAGE_EXPIRY, (uint32_t)((left + 999) / 1000));
		}
		for (uint8_t i = 0; i < n_sub_ids; i++)
			mqtt_pw_vbi(&w, MQTT_PROP_SUBSCRIPTION_ID, sub_ids[i]);
		mqtt_pw_raw(&w, m->props.p, m->props.len);
		plen = w.len;
	}
	struct mqtt_publish_out po = {
		.qos = qos,
		.dup = dup,
		.retain = retain,
		.packet_id = pid,
		.topic = topic,
		.props = {props, (uint32_t)plen},
		.payload = m->payload,
	};
	bool ok = false;
	size_t need = mqtt_publish_size(&po, c->version);
	if (c->max_packet_out && need > c->max_packet_out) {
		b->st.pub_dropped++;
	} else if (c->state != CS_GONE) {
		uint8_t *out = net_conn_reserve(c->conn, need);
		if (out) {
			mqtt_publish_encode(&po, c->version, out, need);
			net_conn_commit(c->conn, need);
			b->st.msgs_sent++;
			b->st.pkts_sent++;
			b->st.bytes_sent += need;
			b->st.pub_bytes_sent += m->payload.len;
			ok = true;
		}
	}
	if (props != pbuf)
		free(props);
	free(tbig);
	return ok;
}

static struct outmsg *out_new(struct message *m, uint8_t qos, bool retain, const uint32_t *sub_ids, uint8_t n)
{
	/* Counted, never refused: the message was accepted (mem.c). */
	struct outmsg *o = mem_obj_alloc(m->mem, sizeof(*o) + n * sizeof(uint32_t), false, true);
	if (!o)
		return NULL;
	o->msg = message_ref(m);
	o->qos = qos;
	o->retain = retain;
	o->n_sub_ids = n;
	if (n)
		memcpy(o->sub_ids, sub_ids, n * sizeof(uint32_t));
	return o;
}

/* Put o in flight on the session's connection. */
static void start_flight(struct session *s, struct outmsg *o)
{
	o->pid = next_pid(s);
	o->state = OUT_PUBLISH;
	if (o->store_seq)
		store_msg_update(s->b, s, o); /* from the queue */
	else
		store_msg_queued(s->b, s, o); /* straight into the window: one row write */
	inflight_add(s, o);
	o->sent = send_publish(s->client, o->msg, o->qos, o->pid, o->retain, false, o->sub_ids, o->n_sub_ids);
	if (!o->sent) {
		/* Too large for this client: treat as delivered (v5 MQTT-3.1.2-25). */
		inflight_remove(s, o);
		store_msg_acked(s->b, s, o);
		out_free(o);
	}
}

void deliver_to_session(struct broker *b, struct session *s, struct message *m, uint8_t qos, bool retain,
			const uint32_t *sub_ids, uint8_t n_sub_ids)
{
	const struct config *cfg = b->cfg;
	if (message_expired(m, broker_now(b)))
		return; /* v5 MQTT-3.3.2-5 */
	struct client *c = s->client;
	if (qos == 0 && c && c->state == CS_CONNECTED) {
		/* A slow or vanished reader must not make the output queue grow
		 * without bound: past the limit, QoS 0 messages to it are dropped
		 * (QoS 1/2 are bounded by the in-flight window). */
		uint64_t cap = cfg->max_queued_bytes ? cfg->max_queued_bytes : DELIVER_QOS0_BACKLOG;
		size_t pending = net_conn_out_pending(c->conn);
		/* At memory_limit, a client that has not taken its output yet
		 * sheds QoS 0 first (at most once allows it). */
		if (pending > cap || (pending && !mem_fits(&b->mem, m->payload.len))) {
			b->st.pub_dropped++;
			return;
		}
		send_publish(c, m, 0, 0, retain, false, sub_ids, n_sub_ids);
		return;
	}
	bool offline = !c || c->state != CS_CONNECTED;
	if ((s->bridge_owned && offline) ? !bridge_session_queues(b, s, qos) : (qos == 0 && !cfg->queue_qos0_messages))
		return; /* a bridge's local side has its own rules (bridge/bridge.h) */
	if (c && c->state == CS_CONNECTED && qos > 0 && window_room(s, m->payload.len) && !s->queue.head) {
		struct outmsg *o = out_new(m, qos, retain, sub_ids, n_sub_ids);
		if (!o) {
			b->st.pub_dropped++;
			return;
		}
		start_flight(s, o);
		return;
	}
	/* Queue: bounded by count and bytes (compat: mosquitto counts in-flight
	 * messages separately, as here). */
	if ((cfg->max_queued_messages && s->queue.count >= cfg->max_queued_messages) ||
	    (cfg->max_queued_bytes && s->queue.bytes + m->payload.len > cfg->max_queued_bytes)) {
		b->st.pub_dropped++;
		return;
	}
	struct outmsg *o = out_new(m, qos, retain, sub_ids, n_sub_ids);
	if (!o) {
		b->st.pub_dropped++;
		return;
	}
	o->state = OUT_QUEUED;
	list_append(&s->queue, o);
	store_msg_queued(b, s, o);
	if (s->bridge_owned)
		bridge_session_queued(b, s); /* start_type lazy: threshold */
}

/* Read access re-checked when a stored message is (re)sent: the ACL may
 * have changed on SIGHUP, or the session resumed under another user. */
static bool may_read(struct session *s, const struct outmsg *o)
{
	if (security_acl(s->client, s, (const char *)o->msg->topic.p, AUTH_READ))
		return true;
	log_msg(s->b, LOG_F_DEBUG, "Denied delivery to %s on '%s' (ACL).", s->id, (const char *)o->msg->topic.p);
	return false;
}

void deliver_drain(struct session *s)
{
	struct broker *b = s->b;
	struct client *c = s->client;
	while (c && c->state == CS_CONNECTED && s->queue.head && window_room(s, s->queue.head->msg->payload.len)) {
		struct outmsg *o = s->queue.head;
		list_remove(&s->queue, o);
		if (message_expired(o->msg, broker_now(b)) || !may_read(s, o)) {
			store_msg_acked(b, s, o);
			out_free(o);
			continue;
		}
		if (o->qos == 0) {
			send_publish(c, o->msg, 0, 0, o->retain, false, o->sub_ids, o->n_sub_ids);
			store_msg_acked(b, s, o);
			out_free(o);
			continue;
		}
		start_flight(s, o);
	}
}

void deliver_resume(struct session *s)
{
	struct client *c = s->client;
	uint8_t buf[8];
	struct outmsg *next;
	for (struct outmsg *o = s->inflight.head; o; o = next) {
		next = o->next;
		if (o->state == OUT_PUBLISH && !may_read(s, o)) {
			/* compat: a PUBLISH whose topic the client may no longer read
			 * is not resent, as mosquitto (checked on reconnect). A PUBREL
			 * carries no data and is always resent (MQTT-4.4.0-1). */
			inflight_remove(s, o);
			store_msg_acked(s->b, s, o);
			out_free(o);
			continue;
		}
		if (o->state == OUT_PUBLISH) {
			/* v311 MQTT-4.4.0-1, v5 MQTT-4.4.0-1: resend with DUP on reconnect. */
			send_publish(c, o->msg, o->qos, o->pid, o->retain, o->sent, o->sub_ids, o->n_sub_ids);
			o->sent = true;
		} else {
			size_t n = mqtt_ack_encode(MQTT_PUBREL, o->pid, 0, (struct mqtt_str){0}, c->version, buf,
						   sizeof(buf));
			client_send(c, buf, n);
		}
	}
	deliver_drain(s);
}

static void finish(struct session *s, struct outmsg *o)
{
	inflight_remove(s, o);
	store_msg_acked(s->b, s, o);
	out_free(o);
	deliver_drain(s);
}

/* The acks below: an unknown id is ignored (the ack may be a late repeat),
 * an ack of the wrong kind for the message in flight is ACK_WRONG (v311
 * 4.8 / v5 4.13 protocol violation; mosquitto closes the connection). */
enum ack_result deliver_puback(struct session *s, uint16_t pid)
{
	struct outmsg *o = find_inflight(s, pid);
	if (!o)
		return ACK_UNKNOWN;
	if (o->qos != 1)
		return ACK_WRONG; /* PUBACK for a QoS 2 message */
	finish(s, o);
	return ACK_OK;
}

enum ack_result deliver_pubrec(struct session *s, uint16_t pid, uint8_t rc)
{
	struct outmsg *o = find_inflight(s, pid);
	if (!o)
		return ACK_UNKNOWN;
	if (o->qos != 2)
		return ACK_WRONG; /* PUBREC for a QoS 1 message */
	if (o->state == OUT_PUBREL)
		return rc >= 0x80 ? ACK_WRONG : ACK_OK; /* a repeated PUBREC gets PUBREL again */
	if (rc >= 0x80) {
		/* v5 MQTT-4.4.0-2: an error PUBREC ends the flow; no PUBREL. */
		finish(s, o);
		return ACK_OK;
	}
	o->state = OUT_PUBREL;
	store_msg_update(s->b, s, o);
	return ACK_OK;
}

enum ack_result deliver_pubcomp(struct session *s, uint16_t pid)
{
	struct outmsg *o = find_inflight(s, pid);
	if (!o)
		return ACK_UNKNOWN;
	if (o->state != OUT_PUBREL)
		return ACK_WRONG; /* QoS 1, or QoS 2 before its PUBREC */
	finish(s, o);
	return ACK_OK;
}

int deliver_restore(struct session *s, struct message *m, uint8_t qos, bool retain, uint8_t state, uint16_t pid,
		    const uint32_t *sub_ids, uint8_t n_sub_ids, uint64_t store_seq)
{
	if (qos < 1 || qos > 2 || state > OUT_PUBREL || (state != OUT_QUEUED && (!pid || pid_in_use(s, pid))))
		return -1;
	struct outmsg *o = out_new(m, qos, retain, sub_ids, n_sub_ids);
	if (!o)
		return -1;
	o->state = state;
	o->store_seq = store_seq;
	if (state == OUT_QUEUED) {
		list_append(&s->queue, o);
		return 0;
	}
	o->pid = pid;
	o->sent = true; /* it may have left before the restart: DUP on resend */
	inflight_add(s, o);
	if ((uint16_t)(pid + 1) != 0 && (uint16_t)(pid + 1) >= s->next_pid)
		s->next_pid = (uint16_t)(pid + 1);
	return 0;
}
