/*
 * broker/publish.c — inbound PUBLISH and the four acknowledgements.
 *
 * Decode, then decide: topic alias, limits, QoS 2 duplicate check, ACL,
 * then one refcounted message is made and handed to route.c. QoS 2 messages
 * are routed when the PUBLISH arrives and their packet id is remembered
 * until PUBREL, so a re-sent PUBLISH is acknowledged but never delivered
 * twice (v311 MQTT-4.3.3-2, v5 MQTT-4.3.3-3).
 * Returns enum mqtt_rc errors to client.c, which closes the connection.
 */
#include <stdlib.h>
#include <string.h>

#include "broker.h"

/* Acknowledge a PUBLISH that is not routed (denied, too large, ...). */
static void ack_rejected(struct client *c, const struct mqtt_publish *p, uint8_t rc)
{
	if (p->qos == 1) {
		client_send_ack(c, MQTT_PUBACK, p->packet_id, c->version == MQTT_V5 ? rc : 0);
	} else if (p->qos == 2) {
		client_send_ack(c, MQTT_PUBREC, p->packet_id, c->version == MQTT_V5 ? rc : 0);
		/* v3 has no error PUBREC: remember the id so PUBREL completes. */
		if (c->version != MQTT_V5 && !session_qos2_has(c->s, p->packet_id))
			session_qos2_add(c->s, p->packet_id);
	}
}

/* Resolve a v5 topic alias (v5 3.3.2.3.4). Returns 0 or a reason code. */
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

int publish_handle(struct client *c, const struct mqtt_frame *f)
{
	struct broker *b = c->b;
	const struct config *cfg = b->cfg;
	struct session *s = c->s;
	struct mqtt_publish p;
	char tbuf[512];
	char *tbig = NULL;
	int rc = mqtt_publish_decode(f, c->version, &p);
	if (rc)
		return rc;
	b->st.msgs_received++;

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
		client_send_ack(c, p.qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p.packet_id, 0x97);
		return 0;
	}
	if (p.qos == 2 && session_qos2_has(s, p.packet_id)) {
		/* A re-sent QoS 2 PUBLISH: acknowledge, do not deliver again. */
		client_send_ack(c, MQTT_PUBREC, p.packet_id, 0);
		return 0;
	}
	if (p.qos == 2 && c->version == MQTT_V5) {
		uint32_t rmax = cfg->max_inflight_messages ? cfg->max_inflight_messages : 65535;
		if (s->n_in_qos2 >= rmax)
			return 0x93; /* Receive Maximum exceeded, v5 MQTT-3.3.4-9 */
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
	const char *ctopic = topic_join(c->l->conf->mount_point, p.topic, tbuf, sizeof(tbuf), &tbig);
	if (!ctopic)
		return 0x97;
	struct mqtt_str topic = mqtt_cstr(ctopic);

	if (!security_acl(c, s, ctopic, AUTH_WRITE)) {
		log_msg(b, LOG_F_DEBUG, "Denied PUBLISH from %s on '%s'.", c->id, ctopic);
		ack_rejected(c, &p, 0x87); /* Not authorized */
		free(tbig);
		return 0;
	}

	/* Forwarded properties: all but alias, subscription id and expiry,
	 * which are per receiver (v5 MQTT-3.3.2-4, 3.3.4). */
	uint8_t pbuf[256];
	uint8_t *pbig = NULL;
	struct mqtt_str props = {0};
	if (c->version == MQTT_V5 && p.props.raw.len) {
		uint64_t drop = MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS) | MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY) |
				MQTT_PBIT(MQTT_PROP_SUBSCRIPTION_ID);
		struct mqtt_pw w;
		uint8_t *buf = p.props.raw.len <= sizeof(pbuf) ? pbuf : (pbig = malloc(p.props.raw.len));
		if (!buf) {
			free(tbig);
			return 0x97;
		}
		mqtt_pw_init(&w, buf, p.props.raw.len);
		mqtt_pw_copy_except(&w, p.props.raw, drop);
		props = (struct mqtt_str){buf, (uint32_t)w.len};
	}
	struct message *m = message_new(topic, p.payload, props, p.qos, p.retain, c->id, c->username);
	free(pbig);
	free(tbig);
	if (!m)
		return 0x97;
	m->origin_sid = s->serial;
	if (p.props.present & MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY)) {
		m->has_expiry = true;
		m->expiry_at = broker_now(b) + (uint64_t)p.props.message_expiry * 1000u;
	}
	if (p.retain)
		route_retain(b, m);
	size_t matched = route_message(b, m);
	message_unref(&m);

	/* v5: PUBACK 0x10 No matching subscribers (compat: as mosquitto 2.0,
	 * which sends it in PUBACK only; PUBREC stays 0x00). */
	uint8_t ack_rc = (c->version == MQTT_V5 && matched == 0) ? 0x10 : 0;
	if (p.qos == 1) {
		client_send_ack(c, MQTT_PUBACK, p.packet_id, ack_rc); /* v311 MQTT-4.3.2-2, v5 MQTT-4.3.2-4 */
	} else if (p.qos == 2) {
		if (session_qos2_add(s, p.packet_id))
			return 0x97;
		client_send_ack(c, MQTT_PUBREC, p.packet_id, 0); /* v311 MQTT-4.3.3-2, v5 MQTT-4.3.3-8 */
	}
	return 0;
}

int publish_handle_ack(struct client *c, const struct mqtt_frame *f)
{
	struct session *s = c->s;
	struct mqtt_ack a;
	int rc = mqtt_ack_decode(f, c->version, &a);
	if (rc)
		return rc;
	switch (a.type) {
	case MQTT_PUBACK:
		deliver_puback(s, a.packet_id);
		break;
	case MQTT_PUBREC:
		rc = deliver_pubrec(s, a.packet_id, a.rc);
		if (rc == 0 || rc == 0x92) /* v5 MQTT-4.3.3-4: PUBREL, 0x92 if unknown */
			client_send_ack(c, MQTT_PUBREL, a.packet_id, c->version == MQTT_V5 ? (uint8_t)rc : 0);
		break;
	case MQTT_PUBREL: {
		bool found = session_qos2_remove(s, a.packet_id);
		/* v311 MQTT-4.3.3-2, v5 MQTT-4.3.3-11: PUBCOMP, 0x92 if unknown. */
		client_send_ack(c, MQTT_PUBCOMP, a.packet_id, (found || c->version != MQTT_V5) ? 0 : 0x92);
		break;
	}
	case MQTT_PUBCOMP:
		deliver_pubcomp(s, a.packet_id);
		break;
	}
	return 0;
}
