/*
 * protocol/publish.c — PUBLISH and its acknowledgements (PUBACK, PUBREC,
 * PUBREL, PUBCOMP), decode and encode.
 *
 * Does not resolve topic aliases, track packet identifiers or check
 * negotiated limits: the broker does, with session state.
 *
 * Invariant: a decoded PUBLISH's payload is exactly the bytes after the
 * variable header; encoders put the payload last, so a caller may write
 * header and payload separately (payload offset = size - payload.len).
 */
#include "codec.h"

int mqtt_publish_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_publish *p)
{
	*p = (struct mqtt_publish){0};
	if (f->type != MQTT_PUBLISH)
		return MQTT_RC_MALFORMED;
	p->dup = f->flags & 0x08;
	p->qos = (f->flags >> 1) & 0x03;
	p->retain = f->flags & 0x01;
	if (p->qos == 3)
		return MQTT_RC_MALFORMED; /* v311 MQTT-3.3.1-4, v5 MQTT-3.3.1-4 */
	/* v311/v5 MQTT-3.3.1-2: DUP is 0 on every QoS 0 PUBLISH; invalid flags
	 * are a Malformed Packet (v5 2.1.3). MQTT 3.1 has no such rule. */
	if (p->dup && p->qos == 0 && version != MQTT_V31)
		return MQTT_RC_MALFORMED;
	struct mqtt_rd r = mqtt_rd_frame(f);
	if (!mqtt_rd_bin(&r, &p->topic))
		return MQTT_RC_MALFORMED;
	if (p->qos && !mqtt_rd_u16(&r, &p->packet_id))
		return MQTT_RC_MALFORMED;
	int verdict = MQTT_OK;
	if (version == MQTT_V5) {
		size_t used;
		verdict = mqtt_props_decode(mqtt_rd_cur(&r), mqtt_rd_left(&r), MQTT_PCTX_PUBLISH, &p->props, &used);
		if (verdict == MQTT_RC_MALFORMED)
			return verdict;
		r.off += used;
	}
	p->payload = (struct mqtt_str){mqtt_rd_cur(&r), (uint32_t)mqtt_rd_left(&r)};
	if (verdict != MQTT_OK)
		return verdict;
	if (p->qos && p->packet_id == 0)
		return MQTT_RC_PROTOCOL_ERROR; /* v311 MQTT-2.3.1-1, v5 MQTT-2.2.1-3 */
	if (p->topic.len == 0) {
		/* v5 3.3.2.3.4: an empty topic needs a Topic Alias; v3: MQTT-4.7.3-1. */
		if (version == MQTT_V5 && (p->props.present & MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS)))
			return MQTT_OK;
		return MQTT_RC_PROTOCOL_ERROR;
	}
	/* UTF-8 first: ill-formed or U+0000 is a Malformed Packet (v5
	 * MQTT-1.5.4-1/2, v311 MQTT-1.5.3-1/2); then wildcards, Topic Name
	 * invalid (v311/v5 MQTT-3.3.2-2). */
	if (!mqtt_utf8_valid(p->topic.p, p->topic.len))
		return MQTT_RC_MALFORMED;
	if (!mqtt_topic_name_valid(p->topic))
		return MQTT_RC_TOPIC_NAME_INVALID;
	return MQTT_OK;
}

/* Remaining length of a PUBLISH, or 0 if it cannot be represented. */
static size_t publish_rl(const struct mqtt_publish_out *p, uint8_t version)
{
	if (p->topic.len > MQTT_STR_MAX)
		return 0;
	size_t rl = 2 + (size_t)p->topic.len + (p->qos ? 2 : 0) + p->payload.len;
	if (version == MQTT_V5)
		rl += mqtt_props_wire(p->props);
	return rl > MQTT_VBI_MAX ? 0 : rl;
}

size_t mqtt_publish_size(const struct mqtt_publish_out *p, uint8_t version)
{
	size_t rl = publish_rl(p, version);
	return rl ? 1 + (size_t)mqtt_vbi_size((uint32_t)rl) + rl : 0;
}

size_t mqtt_publish_encode(const struct mqtt_publish_out *p, uint8_t version, uint8_t *out, size_t cap)
{
	size_t rl = publish_rl(p, version);
	if (!rl)
		return 0;
	uint8_t b0 = (uint8_t)(MQTT_PUBLISH << 4 | (p->dup ? 0x08 : 0) | (p->qos & 3) << 1 | (p->retain ? 1 : 0));
	struct mqtt_wr w = {out, cap, 0};
	size_t total = mqtt_wr_header(&w, b0, rl);
	mqtt_wr_str(&w, p->topic);
	if (p->qos)
		mqtt_wr_u16(&w, p->packet_id);
	if (version == MQTT_V5)
		mqtt_wr_props(&w, p->props);
	mqtt_wr_bytes(&w, p->payload.p, p->payload.len);
	return total;
}

/* Reason codes each ack may carry (v5 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1). */
static bool ack_rc_valid(uint8_t type, uint8_t rc)
{
	if (type == MQTT_PUBREL || type == MQTT_PUBCOMP)
		return rc == 0x00 || rc == 0x92;
	switch (rc) {
	case 0x00: case 0x10: case 0x80: case 0x83: case 0x87:
	case 0x90: case 0x91: case 0x97: case 0x99:
		return true;
	default:
		return false;
	}
}

int mqtt_ack_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_ack *a)
{
	*a = (struct mqtt_ack){.type = f->type};
	if (f->type < MQTT_PUBACK || f->type > MQTT_PUBCOMP)
		return MQTT_RC_MALFORMED;
	/* PUBREL's 0x2 flags were checked by the framer (v311 MQTT-3.6.1-1,
	 * v5 MQTT-3.6.1-1); re-checked here for frames built by hand. */
	if (f->flags != (f->type == MQTT_PUBREL ? 0x2 : 0x0))
		return MQTT_RC_MALFORMED;
	struct mqtt_rd r = mqtt_rd_frame(f);
	if (!mqtt_rd_u16(&r, &a->packet_id))
		return MQTT_RC_MALFORMED;
	if (version == MQTT_V5) {
		/* v5 3.4.2.1: rc may be left out when 0x00 and there are no
		 * properties; the property length when there are none. */
		if (mqtt_rd_left(&r) >= 1)
			mqtt_rd_u8(&r, &a->rc);
		if (mqtt_rd_left(&r) >= 1) {
			size_t used;
			int rc = mqtt_props_decode(mqtt_rd_cur(&r), mqtt_rd_left(&r), MQTT_PCTX_ACK, &a->props, &used);
			if (rc != MQTT_OK)
				return rc;
			r.off += used;
		}
	}
	if (mqtt_rd_left(&r))
		return MQTT_RC_MALFORMED;
	if (a->packet_id == 0)
		return MQTT_RC_PROTOCOL_ERROR; /* v5 MQTT-2.2.1-5 echo of a non-zero id */
	if (!ack_rc_valid(a->type, a->rc))
		return MQTT_RC_PROTOCOL_ERROR; /* v5 MQTT-3.4.2-1, MQTT-3.6.2-1 */
	return MQTT_OK;
}

size_t mqtt_ack_encode(uint8_t type, uint16_t packet_id, uint8_t rc, struct mqtt_str props, uint8_t version,
		       uint8_t *out, size_t cap)
{
	size_t rl = 2;
	bool v5 = version == MQTT_V5;
	if (!props.len && (!v5 || rc == 0)) {
		/* The common ack: four bytes, written here (one per QoS 1 message). */
		if (out && cap >= 4) {
			out[0] = (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 0x2 : 0));
			out[1] = 2;
			out[2] = (uint8_t)(packet_id >> 8);
			out[3] = (uint8_t)packet_id;
		}
		return 4;
	}
	if (v5 && (rc != 0 || props.len))
		rl++;
	if (v5 && props.len)
		rl += mqtt_props_wire(props);
	if (rl > MQTT_VBI_MAX)
		return 0;
	struct mqtt_wr w = {out, cap, 0};
	size_t total = mqtt_wr_header(&w, (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 0x2 : 0)), rl);
	mqtt_wr_u16(&w, packet_id);
	if (rl > 2)
		mqtt_wr_u8(&w, rc);
	if (rl > 3)
		mqtt_wr_props(&w, props);
	return total;
}
