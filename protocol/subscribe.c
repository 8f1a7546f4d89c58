/*
 * protocol/subscribe.c — SUBSCRIBE, UNSUBSCRIBE, SUBACK and UNSUBACK,
 * decode and encode.
 *
 * Does not judge shared subscription names, support or ACLs: those are
 * answered per entry by the broker. A topic filter that breaks the wildcard
 * or length rules makes the whole packet malformed (compat: mosquitto
 * closes the connection, v5 DISCONNECT 0x81, before answering any entry).
 * MQTT 3.1 has no rule against an empty SUBSCRIBE / UNSUBSCRIBE: accepted,
 * as mosquitto does.
 *
 * Invariant: after a successful decode, the entries walker cannot fail
 * part-way: every entry is complete, well-formed UTF-8 and a valid filter.
 */
#include "codec.h"

/* Packet id and, for v5, the property block. */
static int sub_head(struct mqtt_rd *r, uint8_t version, enum mqtt_prop_ctx ctx, uint16_t *pid,
		    struct mqtt_props *props, int *verdict)
{
	if (!mqtt_rd_u16(r, pid))
		return MQTT_RC_MALFORMED;
	if (version == MQTT_V5) {
		size_t used;
		int rc = mqtt_props_decode(mqtt_rd_cur(r), mqtt_rd_left(r), ctx, props, &used);
		if (rc == MQTT_RC_MALFORMED)
			return rc;
		*verdict = rc;
		r->off += used;
	}
	return MQTT_OK;
}

static bool is_shared(struct mqtt_str f)
{
	struct mqtt_str g, sub;
	return mqtt_share_split(f, &g, &sub);
}

int mqtt_subscribe_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_subscribe *s)
{
	*s = (struct mqtt_subscribe){0};
	if (f->type != MQTT_SUBSCRIBE || f->flags != 0x2)
		return MQTT_RC_MALFORMED; /* v311 MQTT-3.8.1-1, v5 MQTT-3.8.1-1 */
	struct mqtt_rd r = mqtt_rd_frame(f);
	int verdict = MQTT_OK;
	int rc = sub_head(&r, version, MQTT_PCTX_SUBSCRIBE, &s->packet_id, &s->props, &verdict);
	if (rc != MQTT_OK)
		return rc;
	s->entries = (struct mqtt_str){mqtt_rd_cur(&r), (uint32_t)mqtt_rd_left(&r)};
	while (mqtt_rd_left(&r)) {
		struct mqtt_str filter;
		uint8_t opt;
		if (!mqtt_rd_bin(&r, &filter) || !mqtt_rd_u8(&r, &opt))
			return MQTT_RC_MALFORMED;
		if (!mqtt_utf8_valid(filter.p, filter.len))
			return MQTT_RC_MALFORMED; /* v311 MQTT-3.8.3-1 / MQTT-1.5.3-1, v5 MQTT-1.5.4-1 */
		if (!mqtt_topic_filter_valid(filter, false))
			return MQTT_RC_MALFORMED; /* v311 MQTT-4.7.1-1/2, MQTT-4.7.3-1; v5 the same */
		if ((opt & 0x03) == 3)
			return MQTT_RC_MALFORMED; /* v311 MQTT-3.8.3-4, v5 3.8.3.1 */
		if (version == MQTT_V5) {
			if (opt & 0xC0)
				return MQTT_RC_MALFORMED; /* v5 MQTT-3.8.3-5 */
			if (verdict == MQTT_OK && ((opt >> 4) & 3) == 3)
				verdict = MQTT_RC_PROTOCOL_ERROR; /* v5 3.8.3.1 retain handling 3 */
			if (verdict == MQTT_OK && (opt & 0x04) && is_shared(filter))
				verdict = MQTT_RC_PROTOCOL_ERROR; /* v5 MQTT-3.8.3-4 */
		} else if (opt & 0xFC) {
			return MQTT_RC_MALFORMED; /* v311 MQTT-3.8.3-4 */
		}
		s->count++;
	}
	if (verdict != MQTT_OK)
		return verdict;
	if (s->packet_id == 0)
		return MQTT_RC_PROTOCOL_ERROR; /* v311 MQTT-2.3.1-1, v5 MQTT-2.2.1-3 */
	if (s->count == 0 && version != MQTT_V31)
		return MQTT_RC_PROTOCOL_ERROR; /* v311 MQTT-3.8.3-3, v5 MQTT-3.8.3-2 */
	return MQTT_OK;
}

bool mqtt_subscribe_next(const struct mqtt_subscribe *s, size_t *off, struct mqtt_str *filter, uint8_t *options)
{
	struct mqtt_rd r = {s->entries.p, s->entries.len, *off};
	if (*off >= s->entries.len || !mqtt_rd_bin(&r, filter) || !mqtt_rd_u8(&r, options))
		return false;
	*off = r.off;
	return true;
}

int mqtt_unsubscribe_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_unsubscribe *u)
{
	*u = (struct mqtt_unsubscribe){0};
	if (f->type != MQTT_UNSUBSCRIBE || f->flags != 0x2)
		return MQTT_RC_MALFORMED; /* v311 MQTT-3.10.1-1, v5 MQTT-3.10.1-1 */
	struct mqtt_rd r = mqtt_rd_frame(f);
	int verdict = MQTT_OK;
	int rc = sub_head(&r, version, MQTT_PCTX_UNSUBSCRIBE, &u->packet_id, &u->props, &verdict);
	if (rc != MQTT_OK)
		return rc;
	u->entries = (struct mqtt_str){mqtt_rd_cur(&r), (uint32_t)mqtt_rd_left(&r)};
	while (mqtt_rd_left(&r)) {
		struct mqtt_str filter;
		if (!mqtt_rd_bin(&r, &filter) || !mqtt_utf8_valid(filter.p, filter.len))
			return MQTT_RC_MALFORMED; /* v311/v5 MQTT-3.10.3-1 */
		if (!mqtt_topic_filter_valid(filter, false))
			return MQTT_RC_MALFORMED; /* v311 MQTT-4.7.1-1/2, MQTT-4.7.3-1; v5 the same */
		u->count++;
	}
	if (verdict != MQTT_OK)
		return verdict;
	if (u->packet_id == 0)
		return MQTT_RC_PROTOCOL_ERROR; /* v311 MQTT-2.3.1-1, v5 MQTT-2.2.1-3 */
	if (u->count == 0 && version != MQTT_V31)
		return MQTT_RC_PROTOCOL_ERROR; /* v311 MQTT-3.10.3-2, v5 MQTT-3.10.3-2 */
	return MQTT_OK;
}

bool mqtt_unsubscribe_next(const struct mqtt_unsubscribe *u, size_t *off, struct mqtt_str *filter)
{
	struct mqtt_rd r = {u->entries.p, u->entries.len, *off};
	if (*off >= u->entries.len || !mqtt_rd_bin(&r, filter))
		return false;
	*off = r.off;
	return true;
}

/* SUBSCRIBE / UNSUBSCRIBE: options == NULL means UNSUBSCRIBE. */
static size_t sub_encode(uint8_t type, uint16_t packet_id, struct mqtt_str props, const struct mqtt_str *filters,
			 const uint8_t *options, size_t n, uint8_t version, uint8_t *out, size_t cap)
{
	size_t rl = 2 + (version == MQTT_V5 ? mqtt_props_wire(props) : 0);
	for (size_t i = 0; i < n; i++) {
		if (filters[i].len > MQTT_STR_MAX)
			return 0;
		rl += 2 + (size_t)filters[i].len + (options ? 1 : 0);
		if (rl > MQTT_VBI_MAX)
			return 0;
	}
	struct mqtt_wr w = {out, cap, 0};
	size_t total = mqtt_wr_header(&w, (uint8_t)(type << 4 | 0x2), rl);
	mqtt_wr_u16(&w, packet_id);
	if (version == MQTT_V5)
		mqtt_wr_props(&w, props);
	for (size_t i = 0; i < n; i++) {
		mqtt_wr_str(&w, filters[i]);
		if (options)
			mqtt_wr_u8(&w, options[i]);
	}
	return total;
}

size_t mqtt_subscribe_encode(uint16_t packet_id, struct mqtt_str props, const struct mqtt_str *filters,
			     const uint8_t *options, size_t n, uint8_t version, uint8_t *out, size_t cap)
{
	return sub_encode(MQTT_SUBSCRIBE, packet_id, props, filters, options, n, version, out, cap);
}

size_t mqtt_unsubscribe_encode(uint16_t packet_id, struct mqtt_str props, const struct mqtt_str *filters, size_t n,
			       uint8_t version, uint8_t *out, size_t cap)
{
	return sub_encode(MQTT_UNSUBSCRIBE, packet_id, props, filters, NULL, n, version, out, cap);
}

size_t mqtt_suback_encode(uint8_t type, uint16_t packet_id, struct mqtt_str props, const uint8_t *rcs, size_t n,
			  uint8_t version, uint8_t *out, size_t cap)
{
	bool v5 = version == MQTT_V5;
	if (type == MQTT_UNSUBACK && !v5)
		n = 0; /* v3 UNSUBACK carries no reason codes */
	size_t rl = 2 + (v5 ? mqtt_props_wire(props) : 0) + n;
	if (rl > MQTT_VBI_MAX)
		return 0;
	struct mqtt_wr w = {out, cap, 0};
	size_t total = mqtt_wr_header(&w, (uint8_t)(type << 4), rl);
	mqtt_wr_u16(&w, packet_id);
	if (v5)
		mqtt_wr_props(&w, props);
	mqtt_wr_bytes(&w, rcs, n);
	return total;
}

static bool suback_rc_valid(uint8_t type, uint8_t version, uint8_t rc)
{
	if (type == MQTT_UNSUBACK) /* v5 3.11.3 */
		return rc == 0x00 || rc == 0x11 || rc == 0x80 || rc == 0x83 || rc == 0x87 || rc == 0x8F ||
		       rc == 0x91;
	if (rc <= 2 || rc == 0x80)
		return true;
	if (version != MQTT_V5)
		return false; /* v311 3.9.3 */
	switch (rc) { /* v5 3.9.3 */
	case 0x83: case 0x87: case 0x8F: case 0x91: case 0x97: case 0x9E: case 0xA1: case 0xA2:
		return true;
	default:
		return false;
	}
}

int mqtt_suback_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_suback *s)
{
	*s = (struct mqtt_suback){0};
	if ((f->type != MQTT_SUBACK && f->type != MQTT_UNSUBACK) || f->flags)
		return MQTT_RC_MALFORMED;
	struct mqtt_rd r = mqtt_rd_frame(f);
	int verdict = MQTT_OK;
	enum mqtt_prop_ctx ctx = f->type == MQTT_SUBACK ? MQTT_PCTX_SUBACK : MQTT_PCTX_UNSUBACK;
	int rc = sub_head(&r, version, ctx, &s->packet_id, &s->props, &verdict);
	if (rc != MQTT_OK)
		return rc;
	s->rcs = (struct mqtt_str){mqtt_rd_cur(&r), (uint32_t)mqtt_rd_left(&r)};
	bool v3_unsuback = f->type == MQTT_UNSUBACK && version != MQTT_V5;
	if (v3_unsuback ? s->rcs.len != 0 : s->rcs.len == 0)
		return MQTT_RC_MALFORMED; /* one code per filter; none in v3 UNSUBACK */
	if (verdict != MQTT_OK)
		return verdict;
	if (s->packet_id == 0)
		return MQTT_RC_PROTOCOL_ERROR;
	for (uint32_t i = 0; i < s->rcs.len; i++)
		if (!suback_rc_valid(f->type, version, s->rcs.p[i]))
			return MQTT_RC_PROTOCOL_ERROR;
	return MQTT_OK;
}
