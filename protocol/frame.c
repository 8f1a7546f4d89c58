/*
 * protocol/frame.c — fixed header framing, variable byte integers, and the
 * readable names of packet types and reason codes.
 *
 * Does not look at the variable header or payload, and does not know the
 * protocol version: checks that depend on it (AUTH only exists in MQTT 5)
 * belong to the decoders and the broker.
 *
 * Invariant: mqtt_frame_parse reads at most min(avail, 5) bytes before it
 * knows the frame size and never touches *f unless it returns MQTT_OK.
 *
 * Design choice (compat: mosquitto-compat.md): the fixed header's remaining
 * length may be encoded in more bytes than needed (0x80 0x00 for 0), as
 * mosquitto 2.0.11 accepts it. v5 MQTT-1.5.5-1 binds the sender, no
 * statement tells the receiver to refuse, and a client that encodes its
 * lengths at a fixed width works with mosquitto. Variable byte integers
 * inside a packet (property lengths, Subscription Identifiers) stay strict
 * (mqtt_vbi_decode), which is also what mosquitto does.
 */
#include "codec.h"

int mqtt_vbi_decode(const uint8_t *p, size_t avail, uint32_t *value)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		if ((size_t)i >= avail)
			return 0;
		uint8_t b = p[i];
		v |= (uint32_t)(b & 0x7F) << (7 * i);
		if (!(b & 0x80)) {
			if (i > 0 && b == 0)
				return -1; /* v5 MQTT-1.5.5-1: not minimal */
			*value = v;
			return i + 1;
		}
	}
	return -1; /* a fifth byte would be needed */
}

int mqtt_frame_length(const uint8_t *p, size_t avail, uint32_t *value)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		if ((size_t)i >= avail)
			return 0;
		v |= (uint32_t)(p[i] & 0x7F) << (7 * i);
		if (!(p[i] & 0x80)) {
			*value = v;
			return i + 1;
		}
	}
	return -1; /* a fifth byte would be needed */
}

int mqtt_vbi_size(uint32_t value)
{
	if (value < 128u)
		return 1;
	if (value < 16384u)
		return 2;
	if (value < 2097152u)
		return 3;
	return 4;
}

int mqtt_vbi_encode(uint32_t value, uint8_t *out)
{
	/* Values above 268 435 455 cannot be represented; they are cut to
	 * 4 bytes so that the count always equals mqtt_vbi_size(). */
	int n = 0;
	do {
		uint8_t b = value & 0x7F;
		value >>= 7;
		if (value && n < 3)
			b |= 0x80;
		out[n++] = b;
	} while (value && n < 4);
	return n;
}

/* Required low nibble of byte 0 per type, -1 for PUBLISH (flags carry
 * DUP/QoS/RETAIN): v311 MQTT-2.2.2-1, v5 MQTT-2.1.3-1. */
static int frame_required_flags(uint8_t type)
{
	switch (type) {
	case MQTT_PUBLISH:
		return -1;
	case MQTT_PUBREL:
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		return 0x2;
	default:
		return 0x0;
	}
}

int mqtt_frame_parse(const uint8_t *buf, size_t avail, uint32_t max_size, struct mqtt_frame *f)
{
	if (avail < 1)
		return MQTT_INCOMPLETE;
	uint8_t type = buf[0] >> 4, flags = buf[0] & 0x0F;
	if (type == 0)
		return MQTT_RC_PROTOCOL_ERROR; /* reserved type; compat: mosquitto's v5 0x82 */
	int req = frame_required_flags(type);
	if (req >= 0 && flags != req)
		return MQTT_RC_MALFORMED;
	uint32_t rl;
	int n = mqtt_frame_length(buf + 1, avail - 1, &rl);
	if (n < 0)
		return MQTT_RC_MALFORMED;
	if (n == 0)
		return MQTT_INCOMPLETE;
	uint32_t total = 1u + (uint32_t)n + rl;
	if (max_size && total > max_size)
		return MQTT_RC_PACKET_TOO_LARGE;
	if (avail < total)
		return MQTT_INCOMPLETE;
	f->type = type;
	f->flags = flags;
	f->body = buf + 1 + n;
	f->len = rl;
	f->total = total;
	return MQTT_OK;
}

const char *mqtt_type_name(uint8_t type)
{
	static const char *const names[16] = {
		"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
		"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
	};
	return type < 16 ? names[type] : "UNKNOWN";
}

const char *mqtt_rc_name(uint8_t rc)
{
	switch (rc) {
	case 0x00: return "Success";
	case 0x01: return "Granted QoS 1";
	case 0x02: return "Granted QoS 2";
	case 0x04: return "Disconnect with Will Message";
	case 0x10: return "No matching subscribers";
	case 0x11: return "No subscription existed";
	case 0x18: return "Continue authentication";
	case 0x19: return "Re-authenticate";
	case 0x80: return "Unspecified error";
	case 0x81: return "Malformed Packet";
	case 0x82: return "Protocol Error";
	case 0x83: return "Implementation specific error";
	case 0x84: return "Unsupported Protocol Version";
	case 0x85: return "Client Identifier not valid";
	case 0x86: return "Bad User Name or Password";
	case 0x87: return "Not authorized";
	case 0x88: return "Server unavailable";
	case 0x89: return "Server busy";
	case 0x8A: return "Banned";
	case 0x8B: return "Server shutting down";
	case 0x8C: return "Bad authentication method";
	case 0x8D: return "Keep Alive timeout";
	case 0x8E: return "Session taken over";
	case 0x8F: return "Topic Filter invalid";
	case 0x90: return "Topic Name invalid";
	case 0x91: return "Packet Identifier in use";
	case 0x92: return "Packet Identifier not found";
	case 0x93: return "Receive Maximum exceeded";
	case 0x94: return "Topic Alias invalid";
	case 0x95: return "Packet too large";
	case 0x96: return "Message rate too high";
	case 0x97: return "Quota exceeded";
	case 0x98: return "Administrative action";
	case 0x99: return "Payload format invalid";
	case 0x9A: return "Retain not supported";
	case 0x9B: return "QoS not supported";
	case 0x9C: return "Use another server";
	case 0x9D: return "Server moved";
	case 0x9E: return "Shared Subscriptions not supported";
	case 0x9F: return "Connection rate exceeded";
	case 0xA0: return "Maximum connect time";
	case 0xA1: return "Subscription Identifiers not supported";
	case 0xA2: return "Wildcard Subscriptions not supported";
	default: return "Unknown reason code";
	}
}
