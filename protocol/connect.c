/*
 * protocol/connect.c — CONNECT and CONNACK, decode and encode, for MQTT 3.1
 * ("MQIsdp" level 3), 3.1.1 (level 4) and 5.0 (level 5).
 *
 * Does not judge client ids, credentials, keepalive limits or whether the
 * server supports the will QoS/retain: those are broker policy.
 *
 * Invariant: c->version is set as soon as the protocol name and level are
 * read and understood, before any later check can fail, so the broker can
 * answer an error in the right CONNACK format.
 */
#include "codec.h"

static bool str_is(struct mqtt_str s, const char *lit, size_t n)
{
	return s.len == n && memcmp(s.p, lit, n) == 0;
}

/* A UTF-8 string field: truncation and bad UTF-8 are both malformed. */
static bool rd_utf8(struct mqtt_rd *r, struct mqtt_str *s)
{
	return mqtt_rd_bin(r, s) && mqtt_utf8_valid(s->p, s->len);
}

int mqtt_connect_decode(const struct mqtt_frame *f, struct mqtt_connect *c)
{
	*c = (struct mqtt_connect){0};
	if (f->type != MQTT_CONNECT)
		return MQTT_RC_MALFORMED;
	struct mqtt_rd r = mqtt_rd_frame(f);
	struct mqtt_str name;
	uint8_t level, flags;
	if (!mqtt_rd_bin(&r, &name) || !mqtt_rd_u8(&r, &level))
		return MQTT_RC_MALFORMED;
	/* compat: mosquitto bridges set bit 7 of the level ("try_private"). */
	uint8_t lv = level & 0x7F;
	if (str_is(name, "MQIsdp", 6) && lv == MQTT_V31)
		c->version = MQTT_V31;
	else if (str_is(name, "MQTT", 4) && (lv == MQTT_V311 || lv == MQTT_V5))
		c->version = lv;
	else
		return MQTT_RC_UNSUPPORTED_VERSION; /* v311 MQTT-3.1.2-1/2, v5 MQTT-3.1.2-1/2 */
	c->bridge = (level & 0x80) != 0;
	bool v5 = c->version == MQTT_V5;

	if (!mqtt_rd_u8(&r, &flags) || !mqtt_rd_u16(&r, &c->keepalive))
		return MQTT_RC_MALFORMED;
	c->clean_start = flags & 0x02;
	c->will = flags & 0x04;
	c->will_qos = (flags >> 3) & 0x03;
	c->will_retain = flags & 0x20;
	c->has_password = flags & 0x40;
	c->has_username = flags & 0x80;
	if (c->will_qos == 3)
		return MQTT_RC_MALFORMED; /* v311 MQTT-3.1.2-14, v5 MQTT-3.1.2-12 (even without the will flag) */
	if (c->version == MQTT_V31) {
		/* compat: MQTT 3.1 has no rule for the reserved bit or for will
		 * QoS / retain without the will flag; mosquitto ignores them. */
		if (!c->will)
			c->will_qos = 0, c->will_retain = false;
	} else {
		if (flags & 0x01)
			return MQTT_RC_MALFORMED; /* v311 MQTT-3.1.2-3, v5 MQTT-3.1.2-3 */
		if (!c->will && (c->will_qos || c->will_retain))
			return MQTT_RC_MALFORMED; /* v311 MQTT-3.1.2-11/13/15, v5 MQTT-3.1.2-11/13 */
	}
	if (!v5 && c->has_password && !c->has_username)
		return MQTT_RC_MALFORMED; /* v311 MQTT-3.1.2-22; allowed in 5.0 */

	int verdict = MQTT_OK; /* PROTOCOL_ERROR found so far; MALFORMED wins */
	size_t used;
	int rc;
	if (v5) {
		rc = mqtt_props_decode(mqtt_rd_cur(&r), mqtt_rd_left(&r), MQTT_PCTX_CONNECT, &c->props, &used);
		if (rc == MQTT_RC_MALFORMED)
			return rc;
		if (rc != MQTT_OK)
			verdict = rc;
		r.off += used;
	}
	if (!rd_utf8(&r, &c->client_id)) /* v311/v5 MQTT-3.1.3-4 */
		return MQTT_RC_MALFORMED;
	if (c->will) {
		if (v5) {
			rc = mqtt_props_decode(mqtt_rd_cur(&r), mqtt_rd_left(&r), MQTT_PCTX_WILL, &c->will_props,
					       &used);
			if (rc == MQTT_RC_MALFORMED)
				return rc;
			if (rc != MQTT_OK && verdict == MQTT_OK)
				verdict = rc;
			r.off += used;
		}
		if (!rd_utf8(&r, &c->will_topic) || !mqtt_rd_bin(&r, &c->will_payload))
			return MQTT_RC_MALFORMED; /* v311 MQTT-3.1.3-10, v5 MQTT-3.1.3-11 */
	}
	/* compat: MQTT 3.1 clients may set the user name / password flags and
	 * leave the field out; mosquitto then treats the flag as clear. */
	if (c->has_username) {
		if (c->version == MQTT_V31 && mqtt_rd_left(&r) == 0)
			c->has_username = c->has_password = false;
		else if (!rd_utf8(&r, &c->username)) /* v311 MQTT-3.1.3-11, v5 MQTT-3.1.3-12 */
			return MQTT_RC_MALFORMED;
	}
	if (c->has_password) {
		if (c->version == MQTT_V31 && mqtt_rd_left(&r) == 0)
			c->has_password = false;
		else if (!mqtt_rd_bin(&r, &c->password))
			return MQTT_RC_MALFORMED;
	}
	if (mqtt_rd_left(&r))
		return MQTT_RC_MALFORMED; /* trailing bytes */
	if (verdict != MQTT_OK)
		return verdict;
	if (c->will && !mqtt_topic_name_valid(c->will_topic))
		return MQTT_RC_TOPIC_NAME_INVALID; /* v311 MQTT-4.7.1-1, v5 MQTT-4.7.0-1 */
	return MQTT_OK;
}

size_t mqtt_connect_encode(const struct mqtt_connect_out *c, uint8_t *out, size_t cap)
{
	bool v5 = c->version == MQTT_V5;
	bool v31 = c->version == MQTT_V31;
	struct mqtt_str strs[5] = {c->client_id, c->will_topic, c->will_payload, c->username, c->password};
	for (int i = 0; i < 5; i++)
		if (strs[i].len > MQTT_STR_MAX)
			return 0;
	size_t rl = 2 + (v31 ? 6 : 4) + 1 + 1 + 2; /* name, level, flags, keepalive */
	if (v5)
		rl += mqtt_props_wire(c->props);
	rl += 2 + (size_t)c->client_id.len;
	if (c->will) {
		if (v5)
			rl += mqtt_props_wire(c->will_props);
		rl += 2 + (size_t)c->will_topic.len + 2 + (size_t)c->will_payload.len;
	}
	if (c->has_username)
		rl += 2 + (size_t)c->username.len;
	if (c->has_password)
		rl += 2 + (size_t)c->password.len;
	if (rl > MQTT_VBI_MAX)
		return 0;

	struct mqtt_wr w = {out, cap, 0};
	size_t total = mqtt_wr_header(&w, MQTT_CONNECT << 4, rl);
	mqtt_wr_str(&w, v31 ? (struct mqtt_str){(const uint8_t *)"MQIsdp", 6} : (struct mqtt_str){(const uint8_t *)"MQTT", 4});
	mqtt_wr_u8(&w, c->version);
	uint8_t flags = (uint8_t)((c->clean_start ? 0x02 : 0) | (c->will ? 0x04 : 0) | ((c->will_qos & 3) << 3) |
				  (c->will_retain ? 0x20 : 0) | (c->has_password ? 0x40 : 0) |
				  (c->has_username ? 0x80 : 0));
	mqtt_wr_u8(&w, flags);
	mqtt_wr_u16(&w, c->keepalive);
	if (v5)
		mqtt_wr_props(&w, c->props);
	mqtt_wr_str(&w, c->client_id);
	if (c->will) {
		if (v5)
			mqtt_wr_props(&w, c->will_props);
		mqtt_wr_str(&w, c->will_topic);
		mqtt_wr_str(&w, c->will_payload);
	}
	if (c->has_username)
		mqtt_wr_str(&w, c->username);
	if (c->has_password)
		mqtt_wr_str(&w, c->password);
	return total;
}

size_t mqtt_connack_encode(bool session_present, uint8_t rc, struct mqtt_str props, uint8_t version, uint8_t *out,
			   size_t cap)
{
	bool v5 = version == MQTT_V5;
	size_t rl = 2 + (v5 ? mqtt_props_wire(props) : 0);
	if (rl > MQTT_VBI_MAX)
		return 0;
	struct mqtt_wr w = {out, cap, 0};
	size_t total = mqtt_wr_header(&w, MQTT_CONNACK << 4, rl);
	mqtt_wr_u8(&w, session_present ? 1 : 0);
	mqtt_wr_u8(&w, rc);
	if (v5)
		mqtt_wr_props(&w, props);
	return total;
}

int mqtt_connack_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_connack *c)
{
	*c = (struct mqtt_connack){0};
	if (f->type != MQTT_CONNACK)
		return MQTT_RC_MALFORMED;
	struct mqtt_rd r = mqtt_rd_frame(f);
	uint8_t ack;
	if (!mqtt_rd_u8(&r, &ack) || !mqtt_rd_u8(&r, &c->rc))
		return MQTT_RC_MALFORMED;
	if (ack & 0xFE)
		return MQTT_RC_MALFORMED; /* v5 MQTT-3.2.2-1: reserved bits */
	c->session_present = ack & 1;
	if (version == MQTT_V5) {
		size_t used;
		/* v5 MQTT-2.2.2-1: the property length is always there. */
		int rc = mqtt_props_decode(mqtt_rd_cur(&r), mqtt_rd_left(&r), MQTT_PCTX_CONNACK, &c->props, &used);
		if (rc != MQTT_OK)
			return rc;
		r.off += used;
	}
	if (mqtt_rd_left(&r))
		return MQTT_RC_MALFORMED;
	if (c->session_present && c->rc != 0)
		return MQTT_RC_PROTOCOL_ERROR; /* v311 MQTT-3.2.2-4, v5 MQTT-3.2.2-6 */
	return MQTT_OK;
}
