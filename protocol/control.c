/*
 * protocol/control.c — DISCONNECT, AUTH and the empty packets (PINGREQ,
 * PINGRESP), decode and encode.
 *
 * Does not know whether AUTH is legal on this connection: AUTH exists only
 * in MQTT 5 and the framer cannot know the version, so the broker calls
 * mqtt_auth_decode only for MQTT 5 connections and treats AUTH on a 3.x
 * connection as a protocol violation itself.
 *
 * Invariant: v5 short forms are decoded exactly as the spec allows them
 * and encoded in the shortest form.
 */
#include "codec.h"

/* v5 3.14.2.1 */
static bool disconnect_rc_valid(uint8_t rc)
{
	switch (rc) {
	case 0x00: case 0x04: case 0x80: case 0x81: case 0x82: case 0x83: case 0x87: case 0x89:
	case 0x8B: case 0x8D: case 0x8E: case 0x8F: case 0x90: case 0x93: case 0x94: case 0x95:
	case 0x96: case 0x97: case 0x98: case 0x99: case 0x9A: case 0x9B: case 0x9C: case 0x9D:
	case 0x9E: case 0x9F: case 0xA0: case 0xA1: case 0xA2:
		return true;
	default:
		return false;
	}
}

int mqtt_disconnect_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_disconnect *d)
{
	*d = (struct mqtt_disconnect){0};
	if (f->type != MQTT_DISCONNECT || f->flags)
		return MQTT_RC_MALFORMED; /* v311 MQTT-3.14.1-1, v5 MQTT-3.14.1-1 */
	if (version != MQTT_V5)
		return f->len ? MQTT_RC_MALFORMED : MQTT_OK;
	struct mqtt_rd r = mqtt_rd_frame(f);
	/* v5 3.14.2.1: rc left out means 0x00; property length left out
	 * (remaining length < 2) means no properties. */
	if (mqtt_rd_left(&r))
		mqtt_rd_u8(&r, &d->rc);
	if (mqtt_rd_left(&r)) {
		size_t used;
		int rc = mqtt_props_decode(mqtt_rd_cur(&r), mqtt_rd_left(&r), MQTT_PCTX_DISCONNECT, &d->props, &used);
		if (rc != MQTT_OK)
			return rc;
		r.off += used;
		if (mqtt_rd_left(&r))
			return MQTT_RC_MALFORMED;
	}
	if (!disconnect_rc_valid(d->rc))
		return MQTT_RC_PROTOCOL_ERROR; /* v5 MQTT-3.14.2-1 */
	return MQTT_OK;
}

/* Shared by DISCONNECT and AUTH in v5: rc and props, shortest form. Only
 * DISCONNECT may carry a reason code without a property length (v5
 * 3.14.2.2.1), as mosquitto sends it. */
static size_t rc_props_encode(uint8_t type, uint8_t rc, struct mqtt_str props, uint8_t *out, size_t cap)
{
	size_t rl = 0;
	if (props.len || (rc != 0 && type == MQTT_AUTH))
		rl = 1 + mqtt_props_wire(props);
	else if (rc != 0)
		rl = 1;
	if (rl > MQTT_VBI_MAX)
		return 0;
	struct mqtt_wr w = {out, cap, 0};
	size_t total = mqtt_wr_header(&w, (uint8_t)(type << 4), rl);
	if (rl)
		mqtt_wr_u8(&w, rc);
	if (rl > 1)
		mqtt_wr_props(&w, props);
	return total;
}

size_t mqtt_disconnect_encode(uint8_t rc, struct mqtt_str props, uint8_t version, uint8_t *out, size_t cap)
{
	if (version != MQTT_V5)
		return mqtt_empty_encode(MQTT_DISCONNECT, out, cap);
	return rc_props_encode(MQTT_DISCONNECT, rc, props, out, cap);
}

int mqtt_auth_decode(const struct mqtt_frame *f, struct mqtt_disconnect *a)
{
	*a = (struct mqtt_disconnect){0};
	if (f->type != MQTT_AUTH || f->flags)
		return MQTT_RC_MALFORMED; /* v5 MQTT-3.15.1-1 */
	if (f->len == 0)
		return MQTT_OK; /* v5 3.15.2.1: Success, no properties */
	struct mqtt_rd r = mqtt_rd_frame(f);
	size_t used;
	mqtt_rd_u8(&r, &a->rc);
	/* Unlike DISCONNECT, AUTH has no form with a reason code alone. */
	int rc = mqtt_props_decode(mqtt_rd_cur(&r), mqtt_rd_left(&r), MQTT_PCTX_AUTH, &a->props, &used);
	if (rc != MQTT_OK)
		return rc;
	r.off += used;
	if (mqtt_rd_left(&r))
		return MQTT_RC_MALFORMED;
	if (a->rc != 0x00 && a->rc != 0x18 && a->rc != 0x19)
		return MQTT_RC_PROTOCOL_ERROR; /* v5 MQTT-3.15.2-1 */
	return MQTT_OK;
}

size_t mqtt_auth_encode(uint8_t rc, struct mqtt_str props, uint8_t *out, size_t cap)
{
	return rc_props_encode(MQTT_AUTH, rc, props, out, cap);
}

int mqtt_empty_decode(const struct mqtt_frame *f)
{
	return f->len ? MQTT_RC_MALFORMED : MQTT_OK;
}

size_t mqtt_empty_encode(uint8_t type, uint8_t *out, size_t cap)
{
	struct mqtt_wr w = {out, cap, 0};
	return mqtt_wr_header(&w, (uint8_t)(type << 4), 0);
}
