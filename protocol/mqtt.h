/*
 * protocol/mqtt.h — the MQTT 3.1 / 3.1.1 / 5.0 codec.
 *
 * Pure: no I/O, no clock, no globals, no allocation. Decoders fill structs
 * whose strings are borrowed views (pointer + length) into the caller's
 * frame; they stay valid until the caller consumes the frame. Encoders write
 * into a caller buffer with snprintf semantics: they return the number of
 * bytes the whole packet needs and write nothing past `cap`; the caller
 * retries with a bigger buffer when the return value exceeds cap. An encoder
 * returns 0 when the packet cannot be represented at all (a string over
 * 65 535 bytes or a remaining length over 268 435 455).
 *
 * Errors are `enum mqtt_rc` values equal to MQTT 5 reason codes, so the
 * broker maps them to the wire with no table (v3 CONNACK codes are separate).
 */
#ifndef VIGIL_MQTT_H
#define VIGIL_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol levels as carried in CONNECT. */
enum mqtt_version {
	MQTT_V31 = 3,  /* "MQIsdp" */
	MQTT_V311 = 4, /* "MQTT" level 4 */
	MQTT_V5 = 5,   /* "MQTT" level 5 */
};

enum mqtt_type {
	MQTT_CONNECT = 1,
	MQTT_CONNACK = 2,
	MQTT_PUBLISH = 3,
	MQTT_PUBACK = 4,
	MQTT_PUBREC = 5,
	MQTT_PUBREL = 6,
	MQTT_PUBCOMP = 7,
	MQTT_SUBSCRIBE = 8,
	MQTT_SUBACK = 9,
	MQTT_UNSUBSCRIBE = 10,
	MQTT_UNSUBACK = 11,
	MQTT_PINGREQ = 12,
	MQTT_PINGRESP = 13,
	MQTT_DISCONNECT = 14,
	MQTT_AUTH = 15,
};

/* Return codes. MQTT_OK and MQTT_INCOMPLETE are codec-internal; every other
 * value is the MQTT 5 reason code the broker sends for that failure. */
enum mqtt_rc {
	MQTT_OK = 0,
	MQTT_INCOMPLETE = 1,          /* frame not complete yet: read more */
	MQTT_RC_MALFORMED = 0x81,
	MQTT_RC_PROTOCOL_ERROR = 0x82,
	MQTT_RC_UNSUPPORTED_VERSION = 0x84,
	MQTT_RC_CLIENT_ID_INVALID = 0x85,
	MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
	MQTT_RC_TOPIC_NAME_INVALID = 0x90,
	MQTT_RC_PACKET_TOO_LARGE = 0x95,
	MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
	MQTT_RC_SHARED_SUB_NOT_SUPPORTED = 0x9E,
	MQTT_RC_WILDCARD_SUB_NOT_SUPPORTED = 0xA2,
};

/* A borrowed byte range: a UTF-8 string, binary data or a payload. */
struct mqtt_str {
	const uint8_t *p;
	uint32_t len;
};

/* ---- fixed header / framing ------------------------------------------------ */

struct mqtt_frame {
	uint8_t type;        /* enum mqtt_type */
	uint8_t flags;       /* low nibble of byte 0 */
	const uint8_t *body; /* variable header + payload */
	uint32_t len;        /* remaining length */
	uint32_t total;      /* fixed header + remaining length: bytes to consume */
};

/*
 * Find one frame at the start of buf[0..avail).
 * Returns MQTT_OK (f filled), MQTT_INCOMPLETE (need more bytes; *f untouched),
 * MQTT_RC_MALFORMED (a fifth length byte, or reserved flag bits wrong
 * for the type: v311 MQTT-2.2.2-1/2, v5 MQTT-2.1.3-1), MQTT_RC_PROTOCOL_ERROR
 * for the reserved packet type 0 (the spec names no code; mosquitto's), or
 * MQTT_RC_PACKET_TOO_LARGE as soon as the remaining length announces a
 * packet whose total size exceeds max_size (0 = no limit beyond the
 * protocol's 268 435 455 + 5).
 */
int mqtt_frame_parse(const uint8_t *buf, size_t avail, uint32_t max_size, struct mqtt_frame *f);

/* Variable byte integer helpers. decode returns bytes used, 0 if incomplete,
 * -1 if malformed (more than 4 bytes or, v5 MQTT-1.5.5-1, not minimal). */
int mqtt_vbi_decode(const uint8_t *p, size_t avail, uint32_t *value);
/* The fixed header's remaining length: as mqtt_vbi_decode, but an encoding
 * longer than needed is accepted (compat: mosquitto 2.0.11 does). */
int mqtt_frame_length(const uint8_t *p, size_t avail, uint32_t *value);
int mqtt_vbi_size(uint32_t value); /* 1..4 */
int mqtt_vbi_encode(uint32_t value, uint8_t *out); /* returns bytes written; value <= 268 435 455 */

/* UTF-8 rules for MQTT strings (v311 MQTT-1.5.3-1/2, v5 MQTT-1.5.4-1/2):
 * well-formed, no surrogates, no U+0000. Control characters and
 * non-characters are allowed. */
bool mqtt_utf8_valid(const uint8_t *p, size_t len);

/* Topic names (PUBLISH): non-empty, no '+' or '#', valid UTF-8. (The v5
 * empty topic with a Topic Alias is accepted by mqtt_publish_decode.) */
bool mqtt_topic_name_valid(struct mqtt_str t);
/* Topic filters: '#' only last and alone in its level, '+' alone in its
 * level, non-empty, valid UTF-8; "$share/<group>/<filter>" checked when
 * shared_ok (group non-empty, no '+' '#' '/' in it, filter non-empty). */
bool mqtt_topic_filter_valid(struct mqtt_str f, bool shared_ok);
/* Split a shared subscription "$share/group/filter". Returns true and fills
 * group and filter if f is shared (it must already be valid). */
bool mqtt_share_split(struct mqtt_str f, struct mqtt_str *group, struct mqtt_str *filter);
/* True if topic name `topic` matches filter `filter` ('+', '#', and the rule
 * that wildcards at the first level do not match topics starting with '$'). */
bool mqtt_topic_matches(struct mqtt_str filter, struct mqtt_str topic);

/* ---- MQTT 5 properties ----------------------------------------------------- */

enum mqtt_prop_id {
	MQTT_PROP_PAYLOAD_FORMAT = 0x01,
	MQTT_PROP_MESSAGE_EXPIRY = 0x02,
	MQTT_PROP_CONTENT_TYPE = 0x03,
	MQTT_PROP_RESPONSE_TOPIC = 0x08,
	MQTT_PROP_CORRELATION_DATA = 0x09,
	MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
	MQTT_PROP_SESSION_EXPIRY = 0x11,
	MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
	MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
	MQTT_PROP_AUTH_METHOD = 0x15,
	MQTT_PROP_AUTH_DATA = 0x16,
	MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
	MQTT_PROP_WILL_DELAY = 0x18,
	MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
	MQTT_PROP_RESPONSE_INFO = 0x1A,
	MQTT_PROP_SERVER_REFERENCE = 0x1C,
	MQTT_PROP_REASON_STRING = 0x1F,
	MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
	MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
	MQTT_PROP_TOPIC_ALIAS = 0x23,
	MQTT_PROP_MAXIMUM_QOS = 0x24,
	MQTT_PROP_RETAIN_AVAILABLE = 0x25,
	MQTT_PROP_USER_PROPERTY = 0x26,
	MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
	MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
	MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Where a property block sits; decides which identifiers are allowed. */
enum mqtt_prop_ctx {
	MQTT_PCTX_CONNECT,
	MQTT_PCTX_CONNACK,
	MQTT_PCTX_PUBLISH,
	MQTT_PCTX_WILL,
	MQTT_PCTX_ACK, /* PUBACK PUBREC PUBREL PUBCOMP */
	MQTT_PCTX_SUBSCRIBE,
	MQTT_PCTX_SUBACK,
	MQTT_PCTX_UNSUBSCRIBE,
	MQTT_PCTX_UNSUBACK,
	MQTT_PCTX_DISCONNECT,
	MQTT_PCTX_AUTH,
};

/* Bit (1u << n) of mqtt_props.present for each single-valued property. */
#define MQTT_PBIT(id) (UINT64_C(1) << (id))

/*
 * A decoded property block. `present` has MQTT_PBIT(id) set for each
 * property found. User properties and subscription identifiers may repeat;
 * they are counted here and walked with mqtt_props_next(). `raw` is the
 * whole block (without its length prefix), for forwarding.
 */
struct mqtt_props {
	uint64_t present;
	struct mqtt_str raw;
	uint8_t payload_format, request_problem_info, request_response_info;
	uint8_t maximum_qos, retain_available, wildcard_sub_available;
	uint8_t sub_id_available, shared_sub_available;
	uint16_t server_keep_alive, receive_maximum, topic_alias_maximum, topic_alias;
	uint32_t message_expiry, session_expiry, will_delay, maximum_packet_size;
	uint32_t subscription_id; /* the first one */
	uint32_t n_user, n_sub_id;
	struct mqtt_str content_type, response_topic, correlation_data;
	struct mqtt_str assigned_client_id, auth_method, auth_data;
	struct mqtt_str response_info, server_reference, reason_string;
};

/*
 * Decode the property block at p (starting at its variable-byte length).
 * On success returns MQTT_OK and sets *used to the bytes taken including the
 * length. Errors: MQTT_RC_MALFORMED (bad encoding, truncated, bad UTF-8, an
 * identifier unknown or not allowed in ctx, topic alias 0: as mosquitto),
 * MQTT_RC_PROTOCOL_ERROR (a single-valued property twice, or a value the
 * spec forbids: receive maximum 0, maximum packet size 0, subscription id
 * 0, request flags not 0 or 1, maximum QoS not 0 or 1, ...). A Payload
 * Format Indicator other than 0/1 is accepted (the spec names no error).
 */
int mqtt_props_decode(const uint8_t *p, size_t avail, enum mqtt_prop_ctx ctx, struct mqtt_props *out,
		      size_t *used);

/* One property as walked by mqtt_props_next. */
struct mqtt_prop {
	uint8_t id;
	uint32_t value;        /* byte, two-byte, four-byte and VBI properties */
	struct mqtt_str s;     /* string / binary value; for user property: key */
	struct mqtt_str v;     /* user property value */
};
/* Walk an already validated raw block. *off starts at 0. Returns false at the end. */
bool mqtt_props_next(struct mqtt_str raw, size_t *off, struct mqtt_prop *out);

/*
 * Property writer: builds a property block (without its length prefix) in a
 * caller buffer in the order the calls are made. On overflow it records
 * `overflow` and keeps counting `len`, so a caller can size a buffer.
 */
struct mqtt_pw {
	uint8_t *buf;
	size_t cap, len;
	bool overflow;
};
void mqtt_pw_init(struct mqtt_pw *w, uint8_t *buf, size_t cap);
void mqtt_pw_byte(struct mqtt_pw *w, uint8_t id, uint8_t v);
void mqtt_pw_u16(struct mqtt_pw *w, uint8_t id, uint16_t v);
void mqtt_pw_u32(struct mqtt_pw *w, uint8_t id, uint32_t v);
void mqtt_pw_vbi(struct mqtt_pw *w, uint8_t id, uint32_t v);
void mqtt_pw_str(struct mqtt_pw *w, uint8_t id, struct mqtt_str s); /* string or binary */
void mqtt_pw_pair(struct mqtt_pw *w, struct mqtt_str key, struct mqtt_str val); /* user property */
void mqtt_pw_raw(struct mqtt_pw *w, const uint8_t *p, size_t len);
/* Copy a validated raw block, leaving out every property whose bit is in
 * `drop` (e.g. MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS) | MQTT_PBIT(MQTT_PROP_SUBSCRIPTION_ID)). */
void mqtt_pw_copy_except(struct mqtt_pw *w, struct mqtt_str raw, uint64_t drop);

/* ---- packets --------------------------------------------------------------- */

struct mqtt_connect {
	uint8_t version;     /* enum mqtt_version; set as soon as it is known, even on error */
	bool clean_start;
	bool will;
	uint8_t will_qos;
	bool will_retain;
	bool has_username, has_password;
	uint16_t keepalive;
	struct mqtt_props props;      /* v5 only (present == 0 otherwise) */
	struct mqtt_str client_id;
	struct mqtt_props will_props; /* v5 only */
	struct mqtt_str will_topic, will_payload;
	struct mqtt_str username, password;
	bool bridge; /* level byte had bit 7 set (mosquitto bridge); version has it cleared */
};
/*
 * Decode CONNECT. Errors: MQTT_RC_UNSUPPORTED_VERSION (unknown protocol name
 * or level: v311 MQTT-3.1.2-2, v5 MQTT-3.1.2-2), MQTT_RC_MALFORMED (reserved
 * flag bit set: v311 MQTT-3.1.2-3; will flags inconsistent: MQTT-3.1.2-11..15;
 * password without username in 3.1.1: MQTT-3.1.2-22; bad UTF-8; trailing or
 * missing bytes; will QoS 3), MQTT_RC_PROTOCOL_ERROR (bad property),
 * MQTT_RC_TOPIC_NAME_INVALID (will topic empty or with wildcards; reported
 * only once the whole packet parsed). On UNSUPPORTED_VERSION, version is 0
 * (answer with the 3.1.1 CONNACK 0x01, as mosquitto does for a bad level).
 * MALFORMED wins over PROTOCOL_ERROR. Client id validity beyond UTF-8 is
 * the broker's.
 */
int mqtt_connect_decode(const struct mqtt_frame *f, struct mqtt_connect *c);

struct mqtt_publish {
	uint8_t qos;
	bool dup, retain;
	uint16_t packet_id;      /* 0 for QoS 0 */
	struct mqtt_str topic;   /* may be empty in v5 when a topic alias is given */
	struct mqtt_props props; /* v5 */
	struct mqtt_str payload;
};
/* Decode PUBLISH. QoS 3 -> MALFORMED (v311 MQTT-3.3.1-4, v5 MQTT-3.3.1-4);
 * DUP with QoS 0 (3.1.1 and 5) -> MALFORMED (MQTT-3.3.1-2); packet id 0 with
 * QoS>0 -> PROTOCOL_ERROR; topic with bad UTF-8 or U+0000 -> MALFORMED
 * (v5 MQTT-1.5.4-1/2), then wildcards -> TOPIC_NAME_INVALID (MQTT-3.3.2-2);
 * empty topic (v5: without a Topic Alias) -> PROTOCOL_ERROR. */
int mqtt_publish_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_publish *p);

/* PUBLISH encoder input. props is a finished property block (v5; ignored
 * for v3). */
struct mqtt_publish_out {
	uint8_t qos;
	bool dup, retain;
	uint16_t packet_id;
	struct mqtt_str topic;
	struct mqtt_str props;
	struct mqtt_str payload;
};
size_t mqtt_publish_encode(const struct mqtt_publish_out *p, uint8_t version, uint8_t *out, size_t cap);
/* Bytes a PUBLISH would take. The payload is always last, so its offset in
 * the encoding is size - payload.len (for writing header and payload
 * separately). */
size_t mqtt_publish_size(const struct mqtt_publish_out *p, uint8_t version);

/* PUBACK / PUBREC / PUBREL / PUBCOMP. */
struct mqtt_ack {
	uint8_t type;
	uint16_t packet_id;
	uint8_t rc;              /* v5; 0 when absent */
	struct mqtt_props props; /* v5 decode */
};
/* Also checks PUBREL's flags were 0x2 (done by the framer). Packet id 0 ->
 * PROTOCOL_ERROR. */
int mqtt_ack_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_ack *a);
/* Encodes the shortest valid form: v5 omits rc and props when rc == 0 and
 * props is empty (v5 3.4.2.1). */
size_t mqtt_ack_encode(uint8_t type, uint16_t packet_id, uint8_t rc, struct mqtt_str props, uint8_t version,
		       uint8_t *out, size_t cap);

/* SUBSCRIBE: entries are validated by decode and walked by next. */
struct mqtt_subscribe {
	uint16_t packet_id;
	struct mqtt_props props;
	struct mqtt_str entries; /* raw payload */
	uint32_t count;
};
/* Errors: no entries -> PROTOCOL_ERROR (v311 MQTT-3.8.3-3, v5 MQTT-3.8.3-2);
 * reserved option bits set or QoS 3 -> MALFORMED (v311 MQTT-3.8.3-4,
 * v5 MQTT-3.8.3-5); retain handling 3 -> PROTOCOL_ERROR; bad UTF-8 ->
 * MALFORMED. A syntactically invalid filter is NOT an error here: the broker
 * answers it with SUBACK 0x8F / 0x80 (or closes, for v3). */
int mqtt_subscribe_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_subscribe *s);
/* options: bits 0-1 QoS, bit 2 no-local, bit 3 retain-as-published, bits 4-5
 * retain handling (v5 layout; v3 gives QoS only). */
bool mqtt_subscribe_next(const struct mqtt_subscribe *s, size_t *off, struct mqtt_str *filter, uint8_t *options);

struct mqtt_unsubscribe {
	uint16_t packet_id;
	struct mqtt_props props;
	struct mqtt_str entries;
	uint32_t count;
};
int mqtt_unsubscribe_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_unsubscribe *u);
bool mqtt_unsubscribe_next(const struct mqtt_unsubscribe *u, size_t *off, struct mqtt_str *filter);

/* SUBACK / UNSUBACK: one reason code per entry (UNSUBACK v3 carries none). */
size_t mqtt_suback_encode(uint8_t type, uint16_t packet_id, struct mqtt_str props, const uint8_t *rcs, size_t n,
			  uint8_t version, uint8_t *out, size_t cap);

/* CONNACK: v3 return code or v5 reason code; props only for v5. */
size_t mqtt_connack_encode(bool session_present, uint8_t rc, struct mqtt_str props, uint8_t version, uint8_t *out,
			   size_t cap);

/* DISCONNECT and AUTH. */
struct mqtt_disconnect {
	uint8_t rc; /* 0 when absent */
	struct mqtt_props props;
};
int mqtt_disconnect_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_disconnect *d);
/* v5: omits rc/props when rc == 0 and no props, and the property length
 * when there are no props (as mosquitto); v3 always 2 bytes. */
size_t mqtt_disconnect_encode(uint8_t rc, struct mqtt_str props, uint8_t version, uint8_t *out, size_t cap);
int mqtt_auth_decode(const struct mqtt_frame *f, struct mqtt_disconnect *a);
/* AUTH is MQTT 5 only: the framer cannot know the version, so the broker
 * calls mqtt_auth_decode only on v5 connections (AUTH on 3.x is a protocol
 * violation it handles). Remaining length 0 means Success, no properties;
 * otherwise reason code and property length are both required. */
size_t mqtt_auth_encode(uint8_t rc, struct mqtt_str props, uint8_t *out, size_t cap);

/* PINGREQ / PINGRESP (and any other empty packet): 2 bytes. Remaining length
 * must be 0 on decode, else MALFORMED. */
int mqtt_empty_decode(const struct mqtt_frame *f);
size_t mqtt_empty_encode(uint8_t type, uint8_t *out, size_t cap);

/* Decoders for the client-bound packets, for tests and tools (CONNACK,
 * SUBACK, UNSUBACK). rcs points into the frame. */
struct mqtt_connack {
	bool session_present;
	uint8_t rc;
	struct mqtt_props props;
};
int mqtt_connack_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_connack *c);
struct mqtt_suback {
	uint16_t packet_id;
	struct mqtt_props props;
	struct mqtt_str rcs;
};
int mqtt_suback_decode(const struct mqtt_frame *f, uint8_t version, struct mqtt_suback *s);

/* Encode CONNECT / SUBSCRIBE / UNSUBSCRIBE (for tests, fuzz seeds and bench). */
struct mqtt_connect_out {
	uint8_t version;
	bool clean_start;
	uint16_t keepalive;
	struct mqtt_str props, client_id;
	bool will;
	uint8_t will_qos;
	bool will_retain;
	struct mqtt_str will_props, will_topic, will_payload;
	bool has_username, has_password;
	struct mqtt_str username, password;
};
size_t mqtt_connect_encode(const struct mqtt_connect_out *c, uint8_t *out, size_t cap);
/* One filter with its options byte. */
size_t mqtt_subscribe_encode(uint16_t packet_id, struct mqtt_str props, const struct mqtt_str *filters,
			     const uint8_t *options, size_t n, uint8_t version, uint8_t *out, size_t cap);
size_t mqtt_unsubscribe_encode(uint16_t packet_id, struct mqtt_str props, const struct mqtt_str *filters, size_t n,
			       uint8_t version, uint8_t *out, size_t cap);

/* Readable names, for logs. */
const char *mqtt_type_name(uint8_t type);
const char *mqtt_rc_name(uint8_t rc);

static inline struct mqtt_str mqtt_cstr(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return (struct mqtt_str){(const uint8_t *)s, (uint32_t)n};
}

#endif
