/*
 * protocol/props.c — MQTT 5 properties: decode and validate a property
 * block for the packet it sits in (v5 2.2.2.2), walk a validated block, and
 * build blocks with the property writer.
 *
 * Does not apply session state (topic alias ranges, negotiated maxima,
 * whether a client may send a Subscription Identifier in PUBLISH, v5
 * MQTT-3.3.4-6): that is the broker's.
 *
 * Invariant: mqtt_props_decode accepts a block only if every property is
 * known, allowed in its context, well encoded and inside the block, so that
 * mqtt_props_next on the accepted raw block cannot fail part-way.
 *
 * Error choice (as mosquitto 2.0.11, checked on the wire): an identifier
 * that does not exist at all, or a known one that is not allowed in this
 * packet (v5 2.2.2.2, table 2-4), is MALFORMED, and so is Topic Alias 0; a
 * repeated single-valued property or a forbidden value is PROTOCOL_ERROR.
 * A Payload Format Indicator other than 0 or 1 is kept as it is (the spec
 * names no error for it; mosquitto forwards it).
 */
#include "codec.h"

enum ptype { PT_NONE, PT_BYTE, PT_U16, PT_U32, PT_VBI, PT_UTF8, PT_BIN, PT_PAIR };

#define C(x) (1u << MQTT_PCTX_##x)
#define C_ACKS C(ACK)

struct pdef {
	uint8_t type;
	uint16_t ctx; /* bit per enum mqtt_prop_ctx where allowed */
};

/* v5 2.2.2.2, table 2-4. */
static const struct pdef pdefs[0x2B] = {
	[MQTT_PROP_PAYLOAD_FORMAT] = {PT_BYTE, C(PUBLISH) | C(WILL)},
	[MQTT_PROP_MESSAGE_EXPIRY] = {PT_U32, C(PUBLISH) | C(WILL)},
	[MQTT_PROP_CONTENT_TYPE] = {PT_UTF8, C(PUBLISH) | C(WILL)},
	[MQTT_PROP_RESPONSE_TOPIC] = {PT_UTF8, C(PUBLISH) | C(WILL)},
	[MQTT_PROP_CORRELATION_DATA] = {PT_BIN, C(PUBLISH) | C(WILL)},
	[MQTT_PROP_SUBSCRIPTION_ID] = {PT_VBI, C(PUBLISH) | C(SUBSCRIBE)},
	[MQTT_PROP_SESSION_EXPIRY] = {PT_U32, C(CONNECT) | C(CONNACK) | C(DISCONNECT)},
	[MQTT_PROP_ASSIGNED_CLIENT_ID] = {PT_UTF8, C(CONNACK)},
	[MQTT_PROP_SERVER_KEEP_ALIVE] = {PT_U16, C(CONNACK)},
	[MQTT_PROP_AUTH_METHOD] = {PT_UTF8, C(CONNECT) | C(CONNACK) | C(AUTH)},
	[MQTT_PROP_AUTH_DATA] = {PT_BIN, C(CONNECT) | C(CONNACK) | C(AUTH)},
	[MQTT_PROP_REQUEST_PROBLEM_INFO] = {PT_BYTE, C(CONNECT)},
	[MQTT_PROP_WILL_DELAY] = {PT_U32, C(WILL)},
	[MQTT_PROP_REQUEST_RESPONSE_INFO] = {PT_BYTE, C(CONNECT)},
	[MQTT_PROP_RESPONSE_INFO] = {PT_UTF8, C(CONNACK)},
	[MQTT_PROP_SERVER_REFERENCE] = {PT_UTF8, C(CONNACK) | C(DISCONNECT)},
	[MQTT_PROP_REASON_STRING] = {PT_UTF8, C(CONNACK) | C_ACKS | C(SUBACK) | C(UNSUBACK) | C(DISCONNECT) | C(AUTH)},
	[MQTT_PROP_RECEIVE_MAXIMUM] = {PT_U16, C(CONNECT) | C(CONNACK)},
	[MQTT_PROP_TOPIC_ALIAS_MAXIMUM] = {PT_U16, C(CONNECT) | C(CONNACK)},
	[MQTT_PROP_TOPIC_ALIAS] = {PT_U16, C(PUBLISH)},
	[MQTT_PROP_MAXIMUM_QOS] = {PT_BYTE, C(CONNACK)},
	[MQTT_PROP_RETAIN_AVAILABLE] = {PT_BYTE, C(CONNACK)},
	[MQTT_PROP_USER_PROPERTY] = {PT_PAIR, C(CONNECT) | C(CONNACK) | C(PUBLISH) | C(WILL) | C_ACKS | C(SUBSCRIBE) |
						      C(SUBACK) | C(UNSUBSCRIBE) | C(UNSUBACK) | C(DISCONNECT) | C(AUTH)},
	[MQTT_PROP_MAXIMUM_PACKET_SIZE] = {PT_U32, C(CONNECT) | C(CONNACK)},
	[MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {PT_BYTE, C(CONNACK)},
	[MQTT_PROP_SUB_ID_AVAILABLE] = {PT_BYTE, C(CONNACK)},
	[MQTT_PROP_SHARED_SUB_AVAILABLE] = {PT_BYTE, C(CONNACK)},
};

static const struct pdef *pdef_get(uint8_t id)
{
	if (id >= sizeof(pdefs) / sizeof(pdefs[0]) || pdefs[id].type == PT_NONE)
		return NULL;
	return &pdefs[id];
}

/*
 * Read one property at r. Fills out (value, s, v). Returns MQTT_OK or
 * MQTT_RC_MALFORMED for an unknown identifier, a truncated value or a bad
 * VBI. UTF-8 is not checked here.
 */
static int prop_read(struct mqtt_rd *r, struct mqtt_prop *out, const struct pdef **def)
{
	uint8_t id;
	if (!mqtt_rd_u8(r, &id))
		return MQTT_RC_MALFORMED;
	const struct pdef *d = pdef_get(id);
	if (!d)
		return MQTT_RC_MALFORMED;
	*out = (struct mqtt_prop){.id = id};
	*def = d;
	uint8_t b;
	uint16_t h;
	int n;
	switch (d->type) {
	case PT_BYTE:
		if (!mqtt_rd_u8(r, &b))
			return MQTT_RC_MALFORMED;
		out->value = b;
		break;
	case PT_U16:
		if (!mqtt_rd_u16(r, &h))
			return MQTT_RC_MALFORMED;
		out->value = h;
		break;
	case PT_U32:
		if (!mqtt_rd_u32(r, &out->value))
			return MQTT_RC_MALFORMED;
		break;
	case PT_VBI:
		n = mqtt_vbi_decode(mqtt_rd_cur(r), mqtt_rd_left(r), &out->value);
		if (n <= 0)
			return MQTT_RC_MALFORMED;
		r->off += (size_t)n;
		break;
	case PT_UTF8:
	case PT_BIN:
		if (!mqtt_rd_bin(r, &out->s))
			return MQTT_RC_MALFORMED;
		break;
	case PT_PAIR:
		if (!mqtt_rd_bin(r, &out->s) || !mqtt_rd_bin(r, &out->v))
			return MQTT_RC_MALFORMED;
		break;
	}
	return MQTT_OK;
}

static bool is_flag(uint32_t v)
{
	return v <= 1;
}

/* Store one property in the struct; value rules. */
static int prop_store(struct mqtt_props *o, const struct mqtt_prop *p, enum mqtt_prop_ctx ctx)
{
	uint32_t v = p->value;
	switch (p->id) {
	case MQTT_PROP_PAYLOAD_FORMAT:
		o->payload_format = (uint8_t)v; /* compat: 2..255 forwarded, as mosquitto */
		break;
	case MQTT_PROP_MESSAGE_EXPIRY:
		o->message_expiry = v;
		break;
	case MQTT_PROP_CONTENT_TYPE:
		o->content_type = p->s;
		break;
	case MQTT_PROP_RESPONSE_TOPIC:
		o->response_topic = p->s;
		/* v5 MQTT-3.3.2-14: a topic name, no wildcards, not empty. */
		return mqtt_topic_name_valid(p->s) ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_CORRELATION_DATA:
		o->correlation_data = p->s;
		break;
	case MQTT_PROP_SUBSCRIPTION_ID:
		if (o->n_sub_id++ == 0)
			o->subscription_id = v;
		/* v5 3.8.2.1.2 / 3.3.2.3.8: 1 .. 268 435 455; once in SUBSCRIBE. */
		if (v == 0 || (ctx == MQTT_PCTX_SUBSCRIBE && o->n_sub_id > 1))
			return MQTT_RC_PROTOCOL_ERROR;
		break;
	case MQTT_PROP_SESSION_EXPIRY:
		o->session_expiry = v;
		break;
	case MQTT_PROP_ASSIGNED_CLIENT_ID:
		o->assigned_client_id = p->s;
		break;
	case MQTT_PROP_SERVER_KEEP_ALIVE:
		o->server_keep_alive = (uint16_t)v;
		break;
	case MQTT_PROP_AUTH_METHOD:
		o->auth_method = p->s;
		break;
	case MQTT_PROP_AUTH_DATA:
		o->auth_data = p->s;
		break;
	case MQTT_PROP_REQUEST_PROBLEM_INFO:
		o->request_problem_info = (uint8_t)v;
		return is_flag(v) ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_WILL_DELAY:
		o->will_delay = v;
		break;
	case MQTT_PROP_REQUEST_RESPONSE_INFO:
		o->request_response_info = (uint8_t)v;
		return is_flag(v) ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_RESPONSE_INFO:
		o->response_info = p->s;
		break;
	case MQTT_PROP_SERVER_REFERENCE:
		o->server_reference = p->s;
		break;
	case MQTT_PROP_REASON_STRING:
		o->reason_string = p->s;
		break;
	case MQTT_PROP_RECEIVE_MAXIMUM:
		o->receive_maximum = (uint16_t)v;
		return v ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR; /* v5 3.1.2.11.3 */
	case MQTT_PROP_TOPIC_ALIAS_MAXIMUM:
		o->topic_alias_maximum = (uint16_t)v;
		break;
	case MQTT_PROP_TOPIC_ALIAS:
		o->topic_alias = (uint16_t)v;
		return v ? MQTT_OK : MQTT_RC_MALFORMED; /* v5 MQTT-3.3.2-8 (0x81 as mosquitto) */
	case MQTT_PROP_MAXIMUM_QOS:
		o->maximum_qos = (uint8_t)v;
		return is_flag(v) ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_RETAIN_AVAILABLE:
		o->retain_available = (uint8_t)v;
		return is_flag(v) ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_USER_PROPERTY:
		o->n_user++;
		break;
	case MQTT_PROP_MAXIMUM_PACKET_SIZE:
		o->maximum_packet_size = v;
		return v ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR; /* v5 3.1.2.11.4 */
	case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
		o->wildcard_sub_available = (uint8_t)v;
		return is_flag(v) ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_SUB_ID_AVAILABLE:
		o->sub_id_available = (uint8_t)v;
		return is_flag(v) ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_SHARED_SUB_AVAILABLE:
		o->shared_sub_available = (uint8_t)v;
		return is_flag(v) ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR;
	}
	return MQTT_OK;
}

int mqtt_props_decode(const uint8_t *p, size_t avail, enum mqtt_prop_ctx ctx, struct mqtt_props *out,
		      size_t *used)
{
	*out = (struct mqtt_props){0};
	uint32_t blen;
	int n = mqtt_vbi_decode(p, avail, &blen);
	if (n <= 0 || avail - (size_t)n < blen)
		return MQTT_RC_MALFORMED;
	struct mqtt_rd r = {p + n, blen, 0};
	out->raw = (struct mqtt_str){r.p, blen};
	/* Decode everything first so that MALFORMED wins over PROTOCOL_ERROR
	 * whatever the order of the properties. */
	int verdict = MQTT_OK;
	while (mqtt_rd_left(&r)) {
		struct mqtt_prop pr;
		const struct pdef *d;
		if (prop_read(&r, &pr, &d) != MQTT_OK)
			return MQTT_RC_MALFORMED;
		if (d->type == PT_UTF8 && !mqtt_utf8_valid(pr.s.p, pr.s.len))
			return MQTT_RC_MALFORMED; /* v5 MQTT-1.5.4-1/2 */
		if (d->type == PT_PAIR &&
		    (!mqtt_utf8_valid(pr.s.p, pr.s.len) || !mqtt_utf8_valid(pr.v.p, pr.v.len)))
			return MQTT_RC_MALFORMED; /* v5 MQTT-1.5.7-1 */
		if (!(d->ctx & (1u << ctx)))
			return MQTT_RC_MALFORMED; /* not a property of this packet (v5 2.2.2.2) */
		uint64_t bit = MQTT_PBIT(pr.id);
		if (verdict != MQTT_OK) {
			out->present |= bit;
			continue;
		}
		bool multi = pr.id == MQTT_PROP_USER_PROPERTY ||
			     (pr.id == MQTT_PROP_SUBSCRIPTION_ID && ctx == MQTT_PCTX_PUBLISH);
		if ((out->present & bit) && !multi)
			verdict = MQTT_RC_PROTOCOL_ERROR; /* v5 2.2.2.2: at most once */
		else
			verdict = prop_store(out, &pr, ctx);
		out->present |= bit;
	}
	/* v5 3.1.2.11.10: Authentication Data without a method is an error. */
	if (verdict == MQTT_OK && (out->present & MQTT_PBIT(MQTT_PROP_AUTH_DATA)) &&
	    !(out->present & MQTT_PBIT(MQTT_PROP_AUTH_METHOD)))
		verdict = MQTT_RC_PROTOCOL_ERROR;
	*used = (size_t)n + blen;
	return verdict;
}

bool mqtt_props_next(struct mqtt_str raw, size_t *off, struct mqtt_prop *out)
{
	if (*off >= raw.len)
		return false;
	struct mqtt_rd r = {raw.p, raw.len, *off};
	const struct pdef *d;
	if (prop_read(&r, out, &d) != MQTT_OK)
		return false; /* only for unvalidated input */
	*off = r.off;
	return true;
}

/* ---- writer ---------------------------------------------------------------- */

void mqtt_pw_init(struct mqtt_pw *w, uint8_t *buf, size_t cap)
{
	*w = (struct mqtt_pw){.buf = buf, .cap = cap};
}

static void pw_bytes(struct mqtt_pw *w, const uint8_t *p, size_t n)
{
	struct mqtt_wr wr = {w->buf, w->cap, w->len};
	mqtt_wr_bytes(&wr, p, n);
	w->len = wr.len;
	if (w->len > w->cap)
		w->overflow = true;
}

void mqtt_pw_byte(struct mqtt_pw *w, uint8_t id, uint8_t v)
{
	uint8_t b[2] = {id, v};
	pw_bytes(w, b, 2);
}

void mqtt_pw_u16(struct mqtt_pw *w, uint8_t id, uint16_t v)
{
	uint8_t b[3] = {id, (uint8_t)(v >> 8), (uint8_t)v};
	pw_bytes(w, b, 3);
}

void mqtt_pw_u32(struct mqtt_pw *w, uint8_t id, uint32_t v)
{
	uint8_t b[5] = {id, (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	pw_bytes(w, b, 5);
}

void mqtt_pw_vbi(struct mqtt_pw *w, uint8_t id, uint32_t v)
{
	uint8_t b[5] = {id};
	int n = mqtt_vbi_encode(v, b + 1);
	pw_bytes(w, b, 1 + (size_t)n);
}

static void pw_lstr(struct mqtt_pw *w, struct mqtt_str s)
{
	uint16_t n = s.len > MQTT_STR_MAX ? (uint16_t)MQTT_STR_MAX : (uint16_t)s.len; /* cut, never corrupt */
	uint8_t b[2] = {(uint8_t)(n >> 8), (uint8_t)n};
	pw_bytes(w, b, 2);
	pw_bytes(w, s.p, n);
}

void mqtt_pw_str(struct mqtt_pw *w, uint8_t id, struct mqtt_str s)
{
	pw_bytes(w, &id, 1);
	pw_lstr(w, s);
}

void mqtt_pw_pair(struct mqtt_pw *w, struct mqtt_str key, struct mqtt_str val)
{
	uint8_t id = MQTT_PROP_USER_PROPERTY;
	pw_bytes(w, &id, 1);
	pw_lstr(w, key);
	pw_lstr(w, val);
}

void mqtt_pw_raw(struct mqtt_pw *w, const uint8_t *p, size_t len)
{
	pw_bytes(w, p, len);
}

void mqtt_pw_copy_except(struct mqtt_pw *w, struct mqtt_str raw, uint64_t drop)
{
	size_t off = 0, start = 0;
	struct mqtt_prop pr;
	while (mqtt_props_next(raw, &off, &pr)) {
		if (!(drop & MQTT_PBIT(pr.id)))
			pw_bytes(w, raw.p + start, off - start);
		start = off;
	}
}
