/*
 * broker/publish.c — inbound PUBLISH and the four acknowledgements.
 *
 * Decode, then decide: topic alias, limits, ACL, QoS 2 duplicates, then one
 * refcounted message is made. QoS 0 and 1 messages are routed at once. A
 * QoS 2 message is answered with PUBREC and held in the session until its
 * PUBREL, then routed (compat: mosquitto 2.0.11 does the same, so PUBREC
 * leaves before any subscriber sees the message, and the PUBLISH to a
 * subscriber comes before the PUBCOMP). Until PUBREL a re-sent PUBLISH with
 * the same id is acknowledged again and never delivered twice (v311
 * MQTT-4.3.3-2, v5 MQTT-4.3.3-10); one with another topic or payload is
 * taken as a reused id and replaces the held message, as mosquitto does.
 * Acks of our own outbound messages go to deliver.c; one of the wrong kind
 * for the packet id in flight is a protocol error (v311 4.8, v5 4.13).
 * Does not send DISCONNECT or close: errors (enum mqtt_rc) go back to
 * client.c, which does.
 */
#include <stdlib.h>
#include <string.h>

#include "bridge/bridge.h"
#include "broker.h"

/* Acknowledge a PUBLISH that is not routed (denied, too large, ...). */
static void ack_rejected(struct client *c, const struct mqtt_publish *p, uint8_t rc)
{
	if (p->qos == 1) {
		/* behind any PUBACK kept (held-back deliveries, JetStream): in order */
		store_send_ack(c, NULL, MQTT_PUBACK, p->packet_id, c->version == MQTT_V5 ? rc : 0);
	} else if (p->qos == 2) {
		store_send_ack(c, NULL, MQTT_PUBREC, p->packet_id, c->version == MQTT_V5 ? rc : 0);
		/* v3 has no error PUBREC: remember the id so PUBREL completes. */
		if (c->version != MQTT_V5 && !session_qos2_find(c->s, p->packet_id))
			session_qos2_add(c->s, p->packet_id, NULL);
	}
}

/* Resolve a v5 topic alias (v5 3.3.2.3.4). Returns 0 or a reason code.
 * (Alias 0 never gets here: the decoder refuses it as malformed.) */
static int resolve_alias(struct client *c, struct mqtt_publish *p)
{
	if (!(p->props.present & MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS)))
		return p->topic.len ? 0 : MQTT_RC_PROTOCOL_ERROR;
	uint16_t a = p->props.topic_alias;
	if (a == 0 || a > c->alias_max_in)
		return 0x94; /* Topic Alias invalid, v5 MQTT-3.3.2-9/10 */
	if (p->topic.len) {
		char *t = malloc((size_t)p->topic.len + 1);
		if (!t)
			return 0x97;
		memcpy(t, p->topic.p, p->topic.len);
		t[p->topic.len] = 0;
		free(c->aliases[a]);
		c->aliases[a] = t;
		return 0;
	}
	if (!c->aliases[a])
		return MQTT_RC_PROTOCOL_ERROR; /* alias never set */
	p->topic = mqtt_cstr(c->aliases[a]);
	return 0;
}

/* A re-sent QoS 2 PUBLISH is a duplicate when topic and payload are those
 * of the held message (compat: mosquitto's test; properties, retain and DUP
 * are not compared). */
static bool same_message(const struct message *m, const char *topic, const struct mqtt_publish *p)
{
	return m && strcmp((const char *)m->topic.p, topic) == 0 && m->payload.len == p->payload.len &&
	       (p->payload.len == 0 || memcmp(m->payload.p, p->payload.p, p->payload.len) == 0);
}

/* Hand an accepted message to the subscribers. Returns the matches. */
static size_t publish_route(struct broker *b, struct message *m)
{
	if (message_expired(m, broker_now(b)))
		return 0; /* held QoS 2 message expired before its PUBREL */
	if (m->retain)
		route_retain(b, m);
	return route_message(b, m);
}

/* The v5 properties a message forwards: all but alias, subscription id and
 * expiry, which are per receiver (v5 MQTT-3.3.2-4, 3.3.4). */
static struct message *make_message(struct client *c, const struct mqtt_publish *p, const char *topic)
{
	uint8_t pbuf[256];
	uint8_t *pbig = NULL;
	struct mqtt_str props = {0};
	if (c->version == MQTT_V5 && p->props.raw.len) {
		uint64_t drop = MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS) | MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY) |
				MQTT_PBIT(MQTT_PROP_SUBSCRIPTION_ID);
		struct mqtt_pw w;
		uint8_t *buf = p->props.raw.len <= sizeof(pbuf) ? pbuf : (pbig = malloc(p->props.raw.len));
		if (!buf)
			return NULL;
		mqtt_pw_init(&w, buf, p->props.raw.len);
		mqtt_pw_copy_except(&w, p->props.raw, drop);
		props = (struct mqtt_str){buf, (uint32_t)w.len};
	}
	struct message *m = message_new(&c->b->mem, mqtt_cstr(topic), p->payload, props, p->qos, p->retain, c->id, c->username);
	free(pbig);
	if (!m)
		return NULL;
	m->origin_sid = c->s->serial;
	if (p->props.present & MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY)) {
		m->has_expiry = true;
		m->expiry_at = broker_now(c->b) + (uint64_t)p->props.message_expiry * 1000u;
	}
	return m;
}

/* After the checks: route (QoS 0/1) or hold (QoS 2), and acknowledge. */
static int publish_accept(struct client *c, const struct mqtt_publish *p, const char *topic)
{
	struct broker *b = c->b;
	struct session *s = c->s;
	struct in_qos2 *held = p->qos ? session_qos2_find(s, p->packet_id) : NULL;
	if (held) {
		/* held->msg NULL: routed at PUBLISH time (a store is on, below). */
		if (p->qos == 2 && (!held->msg || same_message(held->msg, topic, p))) {
			/* A re-sent QoS 2 PUBLISH: acknowledge, do not deliver again
			 * (behind a PUBREC of it still kept on this connection). */
			store_send_ack(c, NULL, MQTT_PUBREC, p->packet_id, 0);
			return 0;
		}
		/* compat: another message on an id still in use: mosquitto drops
		 * the held one ("Reused message ID") and takes the new one. */
		if (held->msg)
			log_msg(b, LOG_F_WARNING, "Reused message ID %u from %s detected. Clearing from storage.",
				p->packet_id, c->id);
		session_qos2_remove(s, p->packet_id, NULL);
	}
	if (p->qos == 2 && c->version == MQTT_V5) {
		uint32_t rmax = b->cfg->max_inflight_messages ? b->cfg->max_inflight_messages : 65535;
		if (s->n_in_qos2 >= rmax)
			return 0x93; /* Receive Maximum exceeded, v5 MQTT-3.3.4-9 */
	}
	struct message *m = make_message(c, p, topic);
	if (!m)
		return 0x97;
	if (p->qos == 2) {
		/* With a store the message is routed now, so that its deliveries
		 * are committed with the PUBREC and only the packet id waits for
		 * PUBREL (a held message would be lost by a crash after PUBREC;
		 * mosquitto-compat.md). Without one it is held and routed on
		 * PUBREL (compat: as mosquitto 2.0.11). */
		bool durable = b->store != NULL;
		if (session_qos2_add(s, p->packet_id, durable ? NULL : m)) {
			message_unref(&m);
			return 0x97;
		}
		/* v311 MQTT-4.3.3-2, v5 MQTT-4.3.3-8; PUBREC 0x00 always. With a
		 * store it follows the routing, so that in a cluster it waits
		 * (as a QoS 1 PUBACK does) until JetStream has the message: once
		 * PUBREC has left, the publisher will not send it again. Either
		 * way it queues behind the client's kept acks, so acks leave in the
		 * order the PUBLISHes came (what v311 MQTT-4.6.0-2/3 ask of a receiver). */
		if (durable) {
			publish_route(b, m);
			store_send_ack(c, m, MQTT_PUBREC, p->packet_id, 0);
			message_unref(&m);
		} else {
			store_send_ack(c, NULL, MQTT_PUBREC, p->packet_id, 0); /* m is held for PUBREL */
		}
		return 0;
	}
	/* QoS 1: the store may hold back the deliveries made now until their
	 * subscribers acknowledge them; the PUBACK then waits (store.c). */
	m->ack_waits = p->qos == 1 && b->store;
	size_t matched = publish_route(b, m);
	if (p->qos == 1) {
		/* v5: 0x10 No matching subscribers when no subscription matched;
		 * one whose no-local dropped the copy still counts (compat: as
		 * mosquitto). v311 MQTT-4.3.2-2, v5 MQTT-4.3.2-4. In a cluster
		 * it leaves once JetStream has the message (cluster/xqos.c). */
		uint8_t ack_rc = (c->version == MQTT_V5 && matched == 0) ? 0x10 : 0;
		store_send_ack(c, m, MQTT_PUBACK, p->packet_id, ack_rc);
	}
	message_unref(&m);
	return 0;
}

int publish_handle(struct client *c, const struct mqtt_frame *f)
{
	struct broker *b = c->b;
	const struct config *cfg = b->cfg;
	struct mqtt_publish p;
	char tbuf[512];
	char *tbig = NULL;
	int rc = mqtt_publish_decode(f, c->version, &p);
	if (rc)
		return rc;
	b->st.msgs_received++;
	b->st.pub_bytes_received += p.payload.len;

	if (p.qos > c->l->conf->max_qos)
		return MQTT_RC_QOS_NOT_SUPPORTED; /* v5 MQTT-3.2.2-11 */
	if (p.retain && !cfg->retain_available)
		return 0x9A; /* Retain not supported, v5 MQTT-3.2.2-14 */
	if (c->version == MQTT_V5) {
		if (p.props.present & MQTT_PBIT(MQTT_PROP_SUBSCRIPTION_ID))
			return MQTT_RC_PROTOCOL_ERROR; /* v5 MQTT-3.3.4-6 */
		rc = resolve_alias(c, &p);
		if (rc)
			return rc;
	}
	if (p.qos && !store_writable(b)) {
		/* The store cannot write: accept nothing we could not keep
		 * (v5 0x97 Quota exceeded; v3 has no negative ack: close). */
		log_msg(b, LOG_F_WARNING, "Refused QoS %d PUBLISH from %s: the store is unwritable.", p.qos, c->id);
		if (c->version != MQTT_V5)
			return 0x97;
		store_send_ack(c, NULL, p.qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p.packet_id, 0x97);
		return 0;
	}
	if (cfg->message_size_limit && p.payload.len > cfg->message_size_limit) {
		log_msg(b, LOG_F_DEBUG, "Dropped too large PUBLISH from %s (%u bytes).", c->id, p.payload.len);
		b->st.pub_dropped++;
		ack_rejected(c, &p, MQTT_RC_PACKET_TOO_LARGE);
		return 0;
	}
	if (c->version == MQTT_V5 && (p.props.present & MQTT_PBIT(MQTT_PROP_PAYLOAD_FORMAT)) &&
	    p.props.payload_format == 1 && !mqtt_utf8_valid(p.payload.p, p.payload.len)) {
		ack_rejected(c, &p, 0x99); /* Payload format invalid */
		return 0;
	}

	/* Topic as routed: with the listener's mount point in front. */
	const char *topic = c->bridge ? bridge_topic_in(c, p.topic, tbuf, sizeof(tbuf), &tbig) /* remote prefix -> local */
				  : topic_join(c->l->conf->mount_point, p.topic, tbuf, sizeof(tbuf), &tbig);
	if (!topic)
		return 0x97;
	if (!security_acl(c, c->s, topic, AUTH_WRITE)) {
		log_msg(b, LOG_F_DEBUG, "Denied PUBLISH from %s on '%s'.", c->id, topic);
		ack_rejected(c, &p, 0x87); /* Not authorized */
		rc = 0;
	} else {
		rc = publish_accept(c, &p, topic);
	}
	free(tbig);
	return rc;
}

int publish_handle_ack(struct client *c, const struct mqtt_frame *f)
{
	struct session *s = c->s;
	struct mqtt_ack a;
	struct message *m = NULL;
	int rc = mqtt_ack_decode(f, c->version, &a);
	if (rc)
		return rc;
	switch (a.type) {
	case MQTT_PUBACK:
		if (deliver_puback(s, a.packet_id) == ACK_WRONG)
			return MQTT_RC_PROTOCOL_ERROR;
		break; /* an unknown id is ignored, as mosquitto */
	case MQTT_PUBREC:
		if (deliver_pubrec(s, a.packet_id, a.rc) == ACK_WRONG)
			return MQTT_RC_PROTOCOL_ERROR;
		/* v5 MQTT-4.3.3-4: PUBREL, none after an error PUBREC. compat: an
		 * unknown id gets PUBREL 0x00 too, as mosquitto (not 0x92). */
		if (a.rc < 0x80)
			client_send_ack(c, MQTT_PUBREL, a.packet_id, 0);
		break;
	case MQTT_PUBREL:
		if (session_qos2_remove(s, a.packet_id, &m) && m)
			publish_route(c->b, m);
		/* v311 MQTT-4.3.3-2, v5 MQTT-4.3.3-11: PUBCOMP; compat: 0x00 also
		 * for an unknown or finished id, as mosquitto (not 0x92). In a
		 * cluster it leaves once JetStream has the message. */
		cluster_send_ack(c->b, c, m, MQTT_PUBCOMP, a.packet_id, 0);
		message_unref(&m);
		break;
	case MQTT_PUBCOMP:
		if (deliver_pubcomp(s, a.packet_id) == ACK_WRONG)
			return MQTT_RC_PROTOCOL_ERROR;
		break;
	}
	return 0;
}
