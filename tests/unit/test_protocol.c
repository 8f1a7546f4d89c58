/*
 * tests/unit/test_protocol.c — the MQTT codec alone: framing, VBIs, UTF-8,
 * topics, properties, every packet type in every version, malformed input,
 * systematic truncation, and encoder bounds (snprintf semantics).
 *
 * Inputs under test are copied into malloc'd buffers of their exact size,
 * so AddressSanitizer reports any read past the end of a frame.
 * Spec citations: "v311" = MQTT 3.1.1, "v5" = MQTT 5.0 (catalogs in
 * shared/conformance).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt.h"

#define S(lit) ((struct mqtt_str){(const uint8_t *)(lit), sizeof(lit) - 1})
#define NOSTR ((struct mqtt_str){NULL, 0})
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct pkt {
	uint8_t b[1024];
	size_t n;
};

/* Hex digits (spaces ignored) to bytes. */
static size_t hex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;
	for (; *s; s++) {
		int v;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			v = *s - 'A' + 10;
		else
			continue;
		if (hi < 0) {
			hi = v;
		} else {
			ck_assert_uint_lt(n, cap);
			out[n++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	ck_assert_int_lt(hi, 0);
	return n;
}

/* A whole packet: byte 0, then the body given in hex, remaining length computed. */
static struct pkt mk(uint8_t byte0, const char *body_hex)
{
	struct pkt p = {.n = 0};
	uint8_t body[900];
	size_t bl = hex(body_hex, body, sizeof body);
	p.b[0] = byte0;
	p.n = 1 + (size_t)mqtt_vbi_encode((uint32_t)bl, p.b + 1);
	memcpy(p.b + p.n, body, bl);
	p.n += bl;
	return p;
}

static uint8_t *dup_exact(const uint8_t *b, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(c);
	if (n)
		memcpy(c, b, n);
	return c;
}

/* Decode a frame with the decoder for its type. */
static int decode_any(const struct mqtt_frame *f, uint8_t version)
{
	union {
		struct mqtt_connect c;
		struct mqtt_connack ca;
		struct mqtt_publish p;
		struct mqtt_ack a;
		struct mqtt_subscribe s;
		struct mqtt_unsubscribe u;
		struct mqtt_suback sa;
		struct mqtt_disconnect d;
	} u;
	switch (f->type) {
	case MQTT_CONNECT: return mqtt_connect_decode(f, &u.c);
	case MQTT_CONNACK: return mqtt_connack_decode(f, version, &u.ca);
	case MQTT_PUBLISH: return mqtt_publish_decode(f, version, &u.p);
	case MQTT_PUBACK: case MQTT_PUBREC: case MQTT_PUBREL: case MQTT_PUBCOMP:
		return mqtt_ack_decode(f, version, &u.a);
	case MQTT_SUBSCRIBE: return mqtt_subscribe_decode(f, version, &u.s);
	case MQTT_UNSUBSCRIBE: return mqtt_unsubscribe_decode(f, version, &u.u);
	case MQTT_SUBACK: case MQTT_UNSUBACK: return mqtt_suback_decode(f, version, &u.sa);
	case MQTT_DISCONNECT: return mqtt_disconnect_decode(f, version, &u.d);
	case MQTT_AUTH: return mqtt_auth_decode(f, &u.d);
	default: return mqtt_empty_decode(f);
	}
}

/* Frame a whole packet from an exact copy and decode it; the frame must be
 * complete and exactly the packet. */
static int decode_pkt(const struct pkt *p, uint8_t version)
{
	uint8_t *c = dup_exact(p->b, p->n);
	struct mqtt_frame f;
	int rc = mqtt_frame_parse(c, p->n, 0, &f);
	if (rc == MQTT_OK) {
		ck_assert_uint_eq(f.total, p->n);
		rc = decode_any(&f, version);
	}
	free(c);
	return rc;
}

/* EXPR encodes into (out, cap). Check that it returns the same size for
 * every cap below it and writes nothing past cap (canary and ASan), then
 * encode into p. */
#define ENCODE(p, EXPR)                                                                  \
	do {                                                                             \
		uint8_t *out = NULL;                                                     \
		size_t cap = 0, need_ = (EXPR);                                          \
		ck_assert_uint_gt(need_, 0);                                             \
		ck_assert_uint_le(need_, sizeof(p)->b);                                  \
		for (cap = 0; cap < need_; cap++) {                                      \
			uint8_t *buf_ = malloc(cap + 8);                                 \
			ck_assert_ptr_nonnull(buf_);                                     \
			memset(buf_, 0xA5, cap + 8);                                     \
			out = buf_;                                                      \
			ck_assert_uint_eq((EXPR), need_);                                \
			for (size_t k_ = cap; k_ < cap + 8; k_++)                        \
				ck_assert_uint_eq(buf_[k_], 0xA5);                       \
			free(buf_);                                                      \
		}                                                                        \
		out = (p)->b;                                                            \
		cap = sizeof(p)->b;                                                      \
		ck_assert_uint_eq((EXPR), need_);                                        \
		(p)->n = need_;                                                          \
	} while (0)

static struct mqtt_frame frame_ok(const struct pkt *p)
{
	struct mqtt_frame f;
	ck_assert_int_eq(mqtt_frame_parse(p->b, p->n, 0, &f), MQTT_OK);
	ck_assert_uint_eq(f.total, p->n);
	return f;
}

static bool str_eq(struct mqtt_str a, struct mqtt_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* ---- variable byte integers ---------------------------------------------- */

/* v5 MQTT-1.5.5-1 (minimal encoding), v311/v5 1.5.5 boundaries. */
START_TEST(vbi_boundaries)
{
	static const struct {
		uint32_t v;
		int n;
		const char *hex;
	} t[] = {
		{0, 1, "00"}, {127, 1, "7f"}, {128, 2, "8001"}, {16383, 2, "ff7f"}, {16384, 3, "808001"},
		{2097151, 3, "ffff7f"}, {2097152, 4, "80808001"}, {268435455, 4, "ffffff7f"},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		uint8_t want[4], got[4], *c;
		size_t wn = hex(t[i].hex, want, 4);
		ck_assert_int_eq(mqtt_vbi_size(t[i].v), t[i].n);
		ck_assert_int_eq(mqtt_vbi_encode(t[i].v, got), t[i].n);
		ck_assert_uint_eq(wn, (size_t)t[i].n);
		ck_assert_mem_eq(got, want, wn);
		uint32_t v = 12345;
		c = dup_exact(want, wn);
		ck_assert_int_eq(mqtt_vbi_decode(c, wn, &v), t[i].n);
		ck_assert_uint_eq(v, t[i].v);
		for (size_t k = 0; k < wn; k++) /* every strict prefix is incomplete */
			ck_assert_int_eq(mqtt_vbi_decode(c, k, &v), 0);
		free(c);
	}
}
END_TEST

START_TEST(vbi_malformed)
{
	static const char *bad[] = {
		"8080808001", /* five bytes */
		"ffffff8001", "80808080", /* fourth byte continues */
		"8000", "ff00", "808000", "ff8000", "80808000", /* non-minimal: v5 MQTT-1.5.5-1 */
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		uint8_t b[8];
		uint32_t v;
		size_t n = hex(bad[i], b, sizeof b);
		ck_assert_msg(mqtt_vbi_decode(b, n, &v) == -1, "%s", bad[i]);
	}
}
END_TEST

/* ---- framing ------------------------------------------------------------- */

/* v311 MQTT-2.2.2-1/2, v5 MQTT-2.1.3-1, v311/v5 MQTT-3.6.1-1, MQTT-3.8.1-1,
 * MQTT-3.10.1-1, v5 MQTT-3.15.1-1: flags per type; type 0 reserved. */
START_TEST(frame_flags_table)
{
	for (int type = 0; type < 16; type++) {
		for (int flags = 0; flags < 16; flags++) {
			uint8_t b[2] = {(uint8_t)(type << 4 | flags), 0};
			struct mqtt_frame f;
			int want;
			if (type == 0)
				want = MQTT_RC_MALFORMED;
			else if (type == MQTT_PUBLISH)
				want = MQTT_OK;
			else if (type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE)
				want = flags == 2 ? MQTT_OK : MQTT_RC_MALFORMED;
			else
				want = flags == 0 ? MQTT_OK : MQTT_RC_MALFORMED;
			ck_assert_msg(mqtt_frame_parse(b, 2, 0, &f) == want, "type %d flags %d", type, flags);
			if (want == MQTT_OK) {
				ck_assert_uint_eq(f.type, type);
				ck_assert_uint_eq(f.flags, flags);
				ck_assert_uint_eq(f.total, 2);
				ck_assert_uint_eq(f.len, 0);
			}
			/* Bad flags are reported from byte 0 alone. */
			if (want != MQTT_OK)
				ck_assert_int_eq(mqtt_frame_parse(b, 1, 0, &f), MQTT_RC_MALFORMED);
		}
	}
}
END_TEST

START_TEST(frame_sizes)
{
	struct mqtt_frame f, untouched;
	memset(&untouched, 0x5A, sizeof untouched);
	uint8_t b[300];
	memset(b, 0, sizeof b);
	b[0] = 0x30;
	mqtt_vbi_encode(200, b + 1); /* 2-byte VBI, total 203 */
	for (size_t k = 0; k < 203; k++) {
		f = untouched;
		uint8_t *c = dup_exact(b, k);
		ck_assert_int_eq(mqtt_frame_parse(c, k, 0, &f), MQTT_INCOMPLETE);
		ck_assert_mem_eq(&f, &untouched, sizeof f); /* *f untouched */
		free(c);
	}
	ck_assert_int_eq(mqtt_frame_parse(b, 203, 0, &f), MQTT_OK);
	ck_assert_uint_eq(f.total, 203);
	ck_assert_uint_eq(f.len, 200);
	ck_assert_ptr_eq(f.body, b + 3);
	ck_assert_int_eq(mqtt_frame_parse(b, sizeof b, 0, &f), MQTT_OK); /* extra bytes: next frame */
	ck_assert_uint_eq(f.total, 203);
	/* Maximum size: announced size decides, before the body arrives. */
	ck_assert_int_eq(mqtt_frame_parse(b, 203, 203, &f), MQTT_OK);
	ck_assert_int_eq(mqtt_frame_parse(b, 3, 202, &f), MQTT_RC_PACKET_TOO_LARGE);
	ck_assert_int_eq(mqtt_frame_parse(b, 3, 203, &f), MQTT_INCOMPLETE);
	/* Largest remaining length, and a fifth length byte. */
	uint8_t big[6] = {0x30, 0xff, 0xff, 0xff, 0x7f, 0};
	ck_assert_int_eq(mqtt_frame_parse(big, 5, 0, &f), MQTT_INCOMPLETE);
	ck_assert_int_eq(mqtt_frame_parse(big, 5, 1000, &f), MQTT_RC_PACKET_TOO_LARGE);
	uint8_t five[6] = {0x30, 0x80, 0x80, 0x80, 0x80, 0x01};
	ck_assert_int_eq(mqtt_frame_parse(five, 6, 0, &f), MQTT_RC_MALFORMED);
	ck_assert_int_eq(mqtt_frame_parse(five, 5, 0, &f), MQTT_RC_MALFORMED);
	ck_assert_int_eq(mqtt_frame_parse(five, 4, 0, &f), MQTT_INCOMPLETE);
	uint8_t nonmin[3] = {0xC0, 0x80, 0x00}; /* v5 MQTT-1.5.5-1 */
	ck_assert_int_eq(mqtt_frame_parse(nonmin, 3, 0, &f), MQTT_RC_MALFORMED);
	ck_assert_int_eq(mqtt_frame_parse(b, 0, 0, &f), MQTT_INCOMPLETE);
}
END_TEST

START_TEST(names)
{
	ck_assert_str_eq(mqtt_type_name(MQTT_CONNECT), "CONNECT");
	ck_assert_str_eq(mqtt_type_name(MQTT_UNSUBACK), "UNSUBACK");
	ck_assert_str_eq(mqtt_type_name(MQTT_AUTH), "AUTH");
	ck_assert_str_eq(mqtt_type_name(0), "RESERVED");
	ck_assert_str_eq(mqtt_type_name(16), "UNKNOWN");
	ck_assert_str_eq(mqtt_rc_name(MQTT_RC_MALFORMED), "Malformed Packet");
	ck_assert_str_eq(mqtt_rc_name(MQTT_RC_PROTOCOL_ERROR), "Protocol Error");
	ck_assert_str_eq(mqtt_rc_name(0x8D), "Keep Alive timeout");
	ck_assert_str_eq(mqtt_rc_name(0), "Success");
	ck_assert_str_eq(mqtt_rc_name(0x7F), "Unknown reason code");
	for (int i = 0; i < 256; i++)
		ck_assert_ptr_nonnull(mqtt_rc_name((uint8_t)i));
}
END_TEST

/* ---- UTF-8 --------------------------------------------------------------- */

/* v311 MQTT-1.5.3-1/2/3, v5 MQTT-1.5.4-1/2/3. */
START_TEST(utf8_table)
{
	static const struct {
		const char *hex;
		bool ok;
	} t[] = {
		{"", true}, {"616263", true}, {"00", false}, {"610062", false},             /* U+0000 */
		{"01", true}, {"7f", true}, {"c280", true}, {"c29f", true},                 /* controls ok */
		{"c080", false}, {"c1bf", false}, {"e09fbf", false}, {"f08fbfbf", false}, /* overlong */
		{"dfbf", true}, {"e0a080", true}, {"efbfbf", true}, {"f0908080", true},    /* boundaries */
		{"ed9fbf", true}, {"eda080", false}, {"edbfbf", false}, {"ee8080", true}, /* surrogates */
		{"f48fbfbf", true}, {"f4908080", false}, {"f5808080", false}, {"ff", false}, /* max */
		{"efbbbf", true}, {"efbbbf61", true},                                         /* BOM kept */
		{"80", false}, {"bf", false}, {"c2", false}, {"e0a0", false}, {"f09080", false}, /* cut */
		{"c241", false}, {"e18041", false}, {"f0908041", false}, {"f09041", false},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		uint8_t b[8];
		size_t n = hex(t[i].hex, b, sizeof b);
		uint8_t *c = dup_exact(b, n);
		ck_assert_msg(mqtt_utf8_valid(c, n) == t[i].ok, "utf8 %s", t[i].hex);
		free(c);
	}
}
END_TEST

/* ---- topics -------------------------------------------------------------- */

/* v311 MQTT-4.7.1-1, MQTT-4.7.3-1/2/3; v5 MQTT-4.7.0-1, MQTT-4.7.3-1/2/3. */
START_TEST(topic_name_table)
{
	static const struct {
		const char *t;
		bool ok;
	} t[] = {
		{"a", true}, {"", false}, {"a/b", true}, {"/", true}, {"//", true}, {" ", true},
		{"a+", false}, {"+", false}, {"#", false}, {"a/#", false}, {"a/+/b", false},
		{"$SYS/x", true}, {"\xc3\xa9t\xc3\xa9", true}, {"a\xc0\x80", false},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++)
		ck_assert_msg(mqtt_topic_name_valid(mqtt_cstr(t[i].t)) == t[i].ok, "name '%s'", t[i].t);
	ck_assert(!mqtt_topic_name_valid((struct mqtt_str){(const uint8_t *)"a\0b", 3}));
	uint8_t *big = malloc(65536);
	ck_assert_ptr_nonnull(big);
	memset(big, 'x', 65536);
	ck_assert(mqtt_topic_name_valid((struct mqtt_str){big, 65535}));
	ck_assert(!mqtt_topic_name_valid((struct mqtt_str){big, 65536}));
	ck_assert(mqtt_topic_filter_valid((struct mqtt_str){big, 65535}, true));
	ck_assert(!mqtt_topic_filter_valid((struct mqtt_str){big, 65536}, true));
	free(big);
}
END_TEST

/* v311 MQTT-4.7.1-2/3, v5 MQTT-4.7.1-1/2, v5 4.8.2 shared subscriptions. */
START_TEST(topic_filter_table)
{
	static const struct {
		const char *f;
		bool plain, shared; /* valid with shared_ok false / true */
	} t[] = {
		{"#", true, true}, {"a/#", true, true}, {"a/#/b", false, false}, {"a#", false, false},
		{"a/b#", false, false}, {"#/", false, false}, {"+", true, true}, {"+/+", true, true},
		{"a/+", true, true}, {"a+", false, false}, {"a/+b", false, false}, {"+a", false, false},
		{"/", true, true}, {"//", true, true}, {"", false, false}, {"a/b/", true, true},
		{"sport/tennis/#", true, true}, {"+/#", true, true}, {"a/\xc0\xaf", false, false},
		{"$share/g/a", true, true}, {"$share/g/#", true, true}, {"$share/g/a/+", true, true},
		{"$share//a", true, false}, {"$share/g", true, false}, {"$share/g/", true, false},
		{"$share/+/a", true, false}, {"$share/g+/a", false, false}, {"$share/g#/a", false, false},
		{"$share/g/a#", false, false}, {"$sharex/a", true, true}, {"$share", true, true},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		ck_assert_msg(mqtt_topic_filter_valid(mqtt_cstr(t[i].f), false) == t[i].plain, "plain '%s'", t[i].f);
		ck_assert_msg(mqtt_topic_filter_valid(mqtt_cstr(t[i].f), true) == t[i].shared, "shared '%s'", t[i].f);
	}
	ck_assert(!mqtt_topic_filter_valid((struct mqtt_str){(const uint8_t *)"a\0", 2}, false));
}
END_TEST

START_TEST(share_split)
{
	struct mqtt_str g, f;
	ck_assert(mqtt_share_split(S("$share/grp/a/b"), &g, &f));
	ck_assert(str_eq(g, S("grp")) && str_eq(f, S("a/b")));
	ck_assert(mqtt_share_split(S("$share/g/#"), &g, &f));
	ck_assert(str_eq(g, S("g")) && str_eq(f, S("#")));
	ck_assert(!mqtt_share_split(S("$share/g"), &g, &f));
	ck_assert(!mqtt_share_split(S("$share/"), &g, &f));
	ck_assert(!mqtt_share_split(S("a/b"), &g, &f));
	ck_assert(!mqtt_share_split(S("$SHARE/g/a"), &g, &f));
}
END_TEST

/* v311/v5 4.7.1.2-3 examples, v311/v5 MQTT-4.7.2-1 ('$' topics), MQTT-4.7.3-4. */
START_TEST(topic_match_table)
{
	static const struct {
		const char *f, *t;
		bool m;
	} t[] = {
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true}, {"#", "sport", true}, {"#", "/", true}, {"#", "a/b/c", true},
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false}, {"sport/+", "sport/", true},
		{"+/+", "/finance", true}, {"/+", "/finance", true}, {"+", "/finance", false},
		{"+", "a", true}, {"a/b", "a/b", true}, {"a/b", "a/c", false}, {"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false}, {"a/+/c", "a//c", true}, {"a/#", "a/", true}, {"a/b/#", "a", false},
		{"+/#", "a", true}, {"+/+/#", "a", false}, {"a/+/#", "a/b", true}, {"A", "a", false},
		{"a//b", "a/b", false}, {"/#", "/", true}, {"//", "//", true}, {"a/", "a", false},
		{"#", "$SYS/x", false}, {"+/x", "$SYS/x", false}, {"+", "$SYS", false},
		{"$SYS/#", "$SYS/x", true}, {"$SYS/+", "$SYS/x", true}, {"$SYS/#", "$SYS", true},
		{"a/+", "a/$x", true}, {"a/#", "a/$x", true}, {"\xef\xbb\xbf" "a", "a", false},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++)
		ck_assert_msg(mqtt_topic_matches(mqtt_cstr(t[i].f), mqtt_cstr(t[i].t)) == t[i].m, "'%s' vs '%s'",
			      t[i].f, t[i].t);
}
END_TEST

/* ---- properties ---------------------------------------------------------- */

/* Decode a property block given in hex (without its length) in ctx, from an
 * exact copy with the length prefix; on success used must be the whole. */
static int props_dec_keep(enum mqtt_prop_ctx ctx, const char *block_hex, struct mqtt_props *out, uint8_t **keep)
{
	uint8_t blk[300], buf[310];
	size_t bl = hex(block_hex, blk, sizeof blk);
	size_t n = (size_t)mqtt_vbi_encode((uint32_t)bl, buf);
	memcpy(buf + n, blk, bl);
	n += bl;
	uint8_t *c = dup_exact(buf, n);
	size_t used = 0;
	int rc = mqtt_props_decode(c, n, ctx, out, &used);
	if (rc == MQTT_OK)
		ck_assert_uint_eq(used, n);
	if (keep)
		*keep = c; /* out's views point into it */
	else
		free(c);
	return rc;
}

static int props_dec(enum mqtt_prop_ctx ctx, const char *block_hex, struct mqtt_props *out)
{
	return props_dec_keep(ctx, block_hex, out, NULL);
}

#define X(c) (1u << MQTT_PCTX_##c)
/* v5 2.2.2.2 table 2-4, written out from the spec: which packet may carry
 * each property, with one valid value. */
static const struct {
	uint8_t id;
	unsigned ctx;
	const char *hex;
} prop_table[] = {
	{0x01, X(PUBLISH) | X(WILL), "01 01"},
	{0x02, X(PUBLISH) | X(WILL), "02 00000010"},
	{0x03, X(PUBLISH) | X(WILL), "03 0004 74657874"},
	{0x08, X(PUBLISH) | X(WILL), "08 0003 612f62"},
	{0x09, X(PUBLISH) | X(WILL), "09 0002 0001"},
	{0x0B, X(PUBLISH) | X(SUBSCRIBE), "0b 05"},
	{0x11, X(CONNECT) | X(CONNACK) | X(DISCONNECT), "11 0000003c"},
	{0x12, X(CONNACK), "12 0002 6964"},
	{0x13, X(CONNACK), "13 003c"},
	{0x15, X(CONNECT) | X(CONNACK) | X(AUTH), "15 0005 504c41494e"},
	{0x16, X(CONNECT) | X(CONNACK) | X(AUTH), "15 0001 41 16 0002 0102"}, /* needs a method */
	{0x17, X(CONNECT), "17 01"},
	{0x18, X(WILL), "18 00000005"},
	{0x19, X(CONNECT), "19 01"},
	{0x1A, X(CONNACK), "1a 0002 7269"},
	{0x1C, X(CONNACK) | X(DISCONNECT), "1c 0002 7372"},
	{0x1F, X(CONNACK) | X(ACK) | X(SUBACK) | X(UNSUBACK) | X(DISCONNECT) | X(AUTH), "1f 0002 7273"},
	{0x21, X(CONNECT) | X(CONNACK), "21 000a"},
	{0x22, X(CONNECT) | X(CONNACK), "22 000a"},
	{0x23, X(PUBLISH), "23 0001"},
	{0x24, X(CONNACK), "24 01"},
	{0x25, X(CONNACK), "25 01"},
	{0x26, X(CONNECT) | X(CONNACK) | X(PUBLISH) | X(WILL) | X(ACK) | X(SUBSCRIBE) | X(SUBACK) | X(UNSUBSCRIBE) |
		       X(UNSUBACK) | X(DISCONNECT) | X(AUTH), "26 0001 6b 0001 76"},
	{0x27, X(CONNECT) | X(CONNACK), "27 00000400"},
	{0x28, X(CONNACK), "28 01"},
	{0x29, X(CONNACK), "29 01"},
	{0x2A, X(CONNACK), "2a 01"},
};

START_TEST(props_validity_table)
{
	for (size_t i = 0; i < ARRAY_LEN(prop_table); i++) {
		for (int ctx = MQTT_PCTX_CONNECT; ctx <= MQTT_PCTX_AUTH; ctx++) {
			struct mqtt_props p;
			int want = (prop_table[i].ctx & (1u << ctx)) ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR;
			int rc = props_dec((enum mqtt_prop_ctx)ctx, prop_table[i].hex, &p);
			ck_assert_msg(rc == want, "prop 0x%02x ctx %d: rc 0x%x", prop_table[i].id, ctx, rc);
			ck_assert(p.present & MQTT_PBIT(prop_table[i].id));
			/* Duplicates: only user property, and sub id in PUBLISH (v5 2.2.2.2). */
			if (want != MQTT_OK)
				continue;
			char twice[200];
			snprintf(twice, sizeof twice, "%s %s", prop_table[i].hex, prop_table[i].hex);
			bool multi = prop_table[i].id == 0x26 || (prop_table[i].id == 0x0B && ctx == MQTT_PCTX_PUBLISH);
			ck_assert_msg(props_dec((enum mqtt_prop_ctx)ctx, twice, &p) ==
					      (multi ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR),
				      "prop 0x%02x twice in ctx %d", prop_table[i].id, ctx);
		}
	}
}
END_TEST

/* Value rules and encodings (v5 2.2.2.2, 3.1.2.11, 3.2.2.3, 3.3.2.3, 1.5.x). */
START_TEST(props_value_table)
{
	static const struct {
		enum mqtt_prop_ctx ctx;
		const char *hex;
		int rc;
	} t[] = {
		{MQTT_PCTX_CONNECT, "", MQTT_OK},
		{MQTT_PCTX_CONNECT, "21 0000", MQTT_RC_PROTOCOL_ERROR},     /* receive maximum 0 */
		{MQTT_PCTX_CONNACK, "21 0000", MQTT_RC_PROTOCOL_ERROR},
		{MQTT_PCTX_CONNECT, "27 00000000", MQTT_RC_PROTOCOL_ERROR}, /* maximum packet size 0 */
		{MQTT_PCTX_CONNECT, "22 0000", MQTT_OK},                    /* topic alias maximum 0 ok */
		{MQTT_PCTX_PUBLISH, "23 0000", MQTT_RC_PROTOCOL_ERROR},     /* v5 MQTT-3.3.2-8 */
		{MQTT_PCTX_PUBLISH, "0b 00", MQTT_RC_PROTOCOL_ERROR},       /* subscription id 0 */
		{MQTT_PCTX_SUBSCRIBE, "0b 00", MQTT_RC_PROTOCOL_ERROR},
		{MQTT_PCTX_PUBLISH, "0b ffffff7f", MQTT_OK},                /* 268 435 455 */
		{MQTT_PCTX_PUBLISH, "0b 8000", MQTT_RC_MALFORMED},          /* v5 MQTT-1.5.5-1 */
		{MQTT_PCTX_PUBLISH, "0b 8080808001", MQTT_RC_MALFORMED},
		{MQTT_PCTX_PUBLISH, "01 00", MQTT_OK},
		{MQTT_PCTX_PUBLISH, "01 02", MQTT_RC_PROTOCOL_ERROR},       /* payload format */
		{MQTT_PCTX_WILL, "01 ff", MQTT_RC_PROTOCOL_ERROR},
		{MQTT_PCTX_CONNECT, "17 02", MQTT_RC_PROTOCOL_ERROR},       /* request problem info */
		{MQTT_PCTX_CONNECT, "19 02", MQTT_RC_PROTOCOL_ERROR},       /* request response info */
		{MQTT_PCTX_CONNECT, "17 00 19 00", MQTT_OK},
		{MQTT_PCTX_CONNACK, "24 00", MQTT_OK},
		{MQTT_PCTX_CONNACK, "24 02", MQTT_RC_PROTOCOL_ERROR},       /* maximum QoS */
		{MQTT_PCTX_CONNACK, "25 02", MQTT_RC_PROTOCOL_ERROR},
		{MQTT_PCTX_CONNACK, "28 02", MQTT_RC_PROTOCOL_ERROR},
		{MQTT_PCTX_CONNACK, "29 02", MQTT_RC_PROTOCOL_ERROR},
		{MQTT_PCTX_CONNACK, "2a 02", MQTT_RC_PROTOCOL_ERROR},
		{MQTT_PCTX_CONNACK, "13 0000", MQTT_OK},                    /* server keep alive 0 */
		{MQTT_PCTX_CONNECT, "16 0001 01", MQTT_RC_PROTOCOL_ERROR},  /* auth data, no method */
		{MQTT_PCTX_PUBLISH, "08 0003 612f2b", MQTT_RC_PROTOCOL_ERROR}, /* v5 MQTT-3.3.2-14 */
		{MQTT_PCTX_PUBLISH, "08 0000", MQTT_RC_PROTOCOL_ERROR},
		{MQTT_PCTX_CONNECT, "00", MQTT_RC_MALFORMED},               /* no such identifier */
		{MQTT_PCTX_CONNECT, "04 00", MQTT_RC_MALFORMED},
		{MQTT_PCTX_CONNECT, "2b 00", MQTT_RC_MALFORMED},
		{MQTT_PCTX_CONNECT, "ff 7f", MQTT_RC_MALFORMED},
		{MQTT_PCTX_CONNECT, "11 0000", MQTT_RC_MALFORMED},          /* truncated value */
		{MQTT_PCTX_CONNECT, "26 0001 6b 0002 76", MQTT_RC_MALFORMED},
		{MQTT_PCTX_PUBLISH, "03 0002 c080", MQTT_RC_MALFORMED},     /* v5 MQTT-1.5.4-1 */
		{MQTT_PCTX_PUBLISH, "03 0001 00", MQTT_RC_MALFORMED},       /* v5 MQTT-1.5.4-2 */
		{MQTT_PCTX_PUBLISH, "03 0003 efbbbf", MQTT_OK},             /* v5 MQTT-1.5.4-3 */
		{MQTT_PCTX_CONNECT, "26 0001 ff 0001 61", MQTT_RC_MALFORMED}, /* v5 MQTT-1.5.7-1 */
		{MQTT_PCTX_CONNECT, "26 0001 61 0001 ff", MQTT_RC_MALFORMED},
		{MQTT_PCTX_PUBLISH, "09 0002 ff00", MQTT_OK},               /* binary is not UTF-8 */
		/* MALFORMED wins whatever comes first. */
		{MQTT_PCTX_CONNECT, "21 0000 ff", MQTT_RC_MALFORMED},
		{MQTT_PCTX_CONNECT, "23 0001 11 00", MQTT_RC_MALFORMED},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct mqtt_props p;
		int rc = props_dec(t[i].ctx, t[i].hex, &p);
		ck_assert_msg(rc == t[i].rc, "ctx %d '%s': 0x%x", t[i].ctx, t[i].hex, rc);
	}
	/* The block length itself. */
	struct mqtt_props p;
	size_t used;
	uint8_t *c = dup_exact((const uint8_t *)"\x03\x01\x01", 3);
	ck_assert_int_eq(mqtt_props_decode(c, 3, MQTT_PCTX_PUBLISH, &p, &used), MQTT_RC_MALFORMED);
	ck_assert_int_eq(mqtt_props_decode(c, 0, MQTT_PCTX_PUBLISH, &p, &used), MQTT_RC_MALFORMED);
	free(c);
	c = dup_exact((const uint8_t *)"\x80\x00", 2); /* non-minimal length */
	ck_assert_int_eq(mqtt_props_decode(c, 2, MQTT_PCTX_PUBLISH, &p, &used), MQTT_RC_MALFORMED);
	free(c);
}
END_TEST

START_TEST(props_fields_and_walk)
{
	struct mqtt_props p;
	uint8_t *keep;
	ck_assert_int_eq(props_dec_keep(MQTT_PCTX_PUBLISH,
				   "01 01 02 0000012c 03 0002 6a73 08 0003 722f74 09 0003 010203 0b 81 01 "
				   "26 0001 6b 0002 7631 23 0007 0b 02 26 0001 6b 0002 7632",
				   &p, &keep),
			 MQTT_OK);
	ck_assert_uint_eq(p.payload_format, 1);
	ck_assert_uint_eq(p.message_expiry, 300);
	ck_assert(str_eq(p.content_type, S("js")));
	ck_assert(str_eq(p.response_topic, S("r/t")));
	ck_assert(str_eq(p.correlation_data, S("\x01\x02\x03")));
	ck_assert_uint_eq(p.subscription_id, 129);
	ck_assert_uint_eq(p.n_sub_id, 2);
	ck_assert_uint_eq(p.n_user, 2);
	ck_assert_uint_eq(p.topic_alias, 7);
	ck_assert_uint_eq(p.raw.len, 48);
	ck_assert(!(p.present & MQTT_PBIT(MQTT_PROP_SESSION_EXPIRY)));
	/* The walker keeps order and repeats. */
	static const uint8_t ids[] = {0x01, 0x02, 0x03, 0x08, 0x09, 0x0b, 0x26, 0x23, 0x0b, 0x26};
	static const uint32_t vals[] = {1, 300, 0, 0, 0, 129, 0, 7, 2, 0};
	size_t off = 0, i = 0;
	struct mqtt_prop pr;
	while (mqtt_props_next(p.raw, &off, &pr)) {
		ck_assert_uint_lt(i, ARRAY_LEN(ids));
		ck_assert_uint_eq(pr.id, ids[i]);
		if (vals[i])
			ck_assert_uint_eq(pr.value, vals[i]);
		if (i == 6)
			ck_assert(str_eq(pr.s, S("k")) && str_eq(pr.v, S("v1")));
		if (i == 9)
			ck_assert(str_eq(pr.v, S("v2")));
		i++;
	}
	ck_assert_uint_eq(i, ARRAY_LEN(ids));
	ck_assert_uint_eq(off, p.raw.len);
	/* copy_except: drop topic alias and subscription ids, keep the rest in order. */
	uint8_t buf[64];
	struct mqtt_pw w;
	mqtt_pw_init(&w, buf, sizeof buf);
	mqtt_pw_copy_except(&w, p.raw, MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS) | MQTT_PBIT(MQTT_PROP_SUBSCRIPTION_ID));
	ck_assert(!w.overflow);
	uint8_t want[64];
	size_t wn = hex("01 01 02 0000012c 03 0002 6a73 08 0003 722f74 09 0003 010203 "
			"26 0001 6b 0002 7631 26 0001 6b 0002 7632",
			want, sizeof want);
	ck_assert_uint_eq(w.len, wn);
	ck_assert_mem_eq(buf, want, wn);
	/* Unvalidated garbage only stops the walker. */
	off = 0;
	ck_assert(!mqtt_props_next(S("\x11\x00"), &off, &pr));
	ck_assert(!mqtt_props_next(S("\x77"), &off, &pr));
	free(keep);
}
END_TEST

START_TEST(props_writer)
{
	uint8_t buf[128];
	struct mqtt_pw w;
	mqtt_pw_init(&w, buf, sizeof buf);
	mqtt_pw_byte(&w, MQTT_PROP_PAYLOAD_FORMAT, 1);
	mqtt_pw_u32(&w, MQTT_PROP_MESSAGE_EXPIRY, 0x01020304);
	mqtt_pw_u16(&w, MQTT_PROP_TOPIC_ALIAS, 513);
	mqtt_pw_vbi(&w, MQTT_PROP_SUBSCRIPTION_ID, 268435455);
	mqtt_pw_str(&w, MQTT_PROP_CONTENT_TYPE, S("text/plain"));
	mqtt_pw_pair(&w, S("key"), S("value"));
	mqtt_pw_raw(&w, (const uint8_t *)"\x09\x00\x01\x7f", 4);
	ck_assert(!w.overflow);
	uint8_t want[128];
	size_t wn = hex("01 01 02 01020304 23 0201 0b ffffff7f 03 000a 746578742f706c61696e "
			"26 0003 6b6579 0005 76616c7565 09 0001 7f",
			want, sizeof want);
	ck_assert_uint_eq(w.len, wn);
	ck_assert_mem_eq(buf, want, wn);
	/* Same calls into a small buffer: counts on, writes stop at cap. */
	uint8_t *small = malloc(10);
	ck_assert_ptr_nonnull(small);
	mqtt_pw_init(&w, small, 10);
	mqtt_pw_byte(&w, MQTT_PROP_PAYLOAD_FORMAT, 1);
	mqtt_pw_u32(&w, MQTT_PROP_MESSAGE_EXPIRY, 0x01020304);
	ck_assert(!w.overflow);
	mqtt_pw_u16(&w, MQTT_PROP_TOPIC_ALIAS, 513);
	mqtt_pw_vbi(&w, MQTT_PROP_SUBSCRIPTION_ID, 268435455);
	mqtt_pw_str(&w, MQTT_PROP_CONTENT_TYPE, S("text/plain"));
	mqtt_pw_pair(&w, S("key"), S("value"));
	mqtt_pw_raw(&w, (const uint8_t *)"\x09\x00\x01\x7f", 4);
	ck_assert(w.overflow);
	ck_assert_uint_eq(w.len, wn);
	ck_assert_mem_eq(small, want, 10);
	free(small);
	/* NULL buffer, cap 0: pure sizing. */
	mqtt_pw_init(&w, NULL, 0);
	mqtt_pw_str(&w, MQTT_PROP_REASON_STRING, S("abc"));
	ck_assert_uint_eq(w.len, 6);
	ck_assert(w.overflow);
}
END_TEST

/* ---- CONNECT / CONNACK --------------------------------------------------- */

static struct mqtt_connect_out connect_full(uint8_t version)
{
	return (struct mqtt_connect_out){
		.version = version, .clean_start = true, .keepalive = 60,
		.props = version == MQTT_V5 ? S("\x11\x00\x00\x00\x3c\x21\x00\x0a") : NOSTR,
		.client_id = S("client-1"), .will = true, .will_qos = 2, .will_retain = true,
		.will_props = version == MQTT_V5 ? S("\x18\x00\x00\x00\x05") : NOSTR,
		.will_topic = S("will/t"), .will_payload = S("bye\x00\xff"),
		.has_username = true, .has_password = true, .username = S("user"), .password = S("p\x00ss"),
	};
}

/* Round trip in all three versions; v311/v5 MQTT-3.1.3-1 field order. */
START_TEST(connect_roundtrip)
{
	static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
	for (size_t i = 0; i < ARRAY_LEN(versions); i++) {
		struct mqtt_connect_out o = connect_full(versions[i]);
		struct pkt p;
		ENCODE(&p, mqtt_connect_encode(&o, out, cap));
		struct mqtt_frame f = frame_ok(&p);
		struct mqtt_connect c;
		ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_OK);
		ck_assert_uint_eq(c.version, versions[i]);
		ck_assert(c.clean_start && c.will && c.will_retain && c.has_username && c.has_password && !c.bridge);
		ck_assert_uint_eq(c.will_qos, 2);
		ck_assert_uint_eq(c.keepalive, 60);
		ck_assert(str_eq(c.client_id, o.client_id) && str_eq(c.will_topic, o.will_topic));
		ck_assert(str_eq(c.will_payload, o.will_payload) && str_eq(c.username, o.username));
		ck_assert(str_eq(c.password, o.password));
		if (versions[i] == MQTT_V5) {
			ck_assert_uint_eq(c.props.session_expiry, 60);
			ck_assert_uint_eq(c.props.receive_maximum, 10);
			ck_assert_uint_eq(c.will_props.will_delay, 5);
		} else {
			ck_assert_uint_eq(c.props.present | c.will_props.present, 0);
		}
		/* Minimal: no will, no credentials, empty client id. */
		struct mqtt_connect_out m = {.version = versions[i]};
		ENCODE(&p, mqtt_connect_encode(&m, out, cap));
		f = frame_ok(&p);
		ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_OK);
		ck_assert(!c.clean_start && !c.will && !c.has_username && !c.has_password && c.client_id.len == 0);
	}
	/* The exact v311 bytes. */
	struct mqtt_connect_out o = {.version = MQTT_V311, .clean_start = true, .keepalive = 60, .client_id = S("a")};
	struct pkt p, want = mk(0x10, "0004 4d515454 04 02 003c 0001 61");
	ENCODE(&p, mqtt_connect_encode(&o, out, cap));
	ck_assert_uint_eq(p.n, want.n);
	ck_assert_mem_eq(p.b, want.b, p.n);
}
END_TEST

#define V311HDR "0004 4d515454 04 "
#define V5HDR "0004 4d515454 05 "
#define V31HDR "0006 4d5149736470 03 "

/* Malformed and refused CONNECTs; the error code and version. */
START_TEST(connect_errors)
{
	static const struct {
		const char *body;
		int rc;
		uint8_t version; /* expected c.version */
		const char *why;
	} t[] = {
		{V311HDR "02 003c 0001 61", MQTT_OK, 4, "base"},
		{V311HDR "03 003c 0001 61", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.2-3 reserved flag"},
		{V5HDR "03 003c 00 0001 61", MQTT_RC_MALFORMED, 5, "v5 MQTT-3.1.2-3 reserved flag"},
		{V31HDR "03 003c 0001 61", MQTT_RC_MALFORMED, 3, "3.1 reserved flag"},
		{V311HDR "0a 003c 0001 61", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.2-13 will QoS, no will"},
		{V311HDR "12 003c 0001 61", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.2-13 will QoS 2, no will"},
		{V311HDR "22 003c 0001 61", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.2-15 will retain, no will"},
		{V5HDR "22 003c 00 0001 61", MQTT_RC_MALFORMED, 5, "v5 MQTT-3.1.2-13 will retain, no will"},
		{V311HDR "1e 003c 0001 61 0001 74 0000", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.2-14 will QoS 3"},
		{V5HDR "1e 003c 00 0001 61 00 0001 74 0000", MQTT_RC_MALFORMED, 5, "v5 MQTT-3.1.2-12 will QoS 3"},
		{V311HDR "42 003c 0001 61 0001 70", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.2-22 password only"},
		{V31HDR "42 003c 0001 61 0001 70", MQTT_RC_MALFORMED, 3, "3.1 password only"},
		{V5HDR "42 003c 00 0001 61 0001 70", MQTT_OK, 5, "v5 allows a password alone"},
		{"0004 4d515458 04 02 003c 0001 61", MQTT_RC_UNSUPPORTED_VERSION, 0, "v311 MQTT-3.1.2-1 name"},
		{"0004 4d515454 06 02 003c 0001 61", MQTT_RC_UNSUPPORTED_VERSION, 0, "v311 MQTT-3.1.2-2 level 6"},
		{"0004 4d515454 03 02 003c 0001 61", MQTT_RC_UNSUPPORTED_VERSION, 0, "MQTT level 3"},
		{"0006 4d5149736470 04 02 003c 0001 61", MQTT_RC_UNSUPPORTED_VERSION, 0, "MQIsdp level 4"},
		{"0004 6d717474 04 02 003c 0001 61", MQTT_RC_UNSUPPORTED_VERSION, 0, "name is case sensitive"},
		{V311HDR "02 003c 0001 61 00", MQTT_RC_MALFORMED, 4, "trailing byte"},
		{V311HDR "02 003c 0002 61", MQTT_RC_MALFORMED, 4, "client id cut"},
		{V311HDR "02 003c 0001 ff", MQTT_RC_MALFORMED, 4, "v311 MQTT-1.5.3-1 client id UTF-8"},
		{V311HDR "02 003c 0001 00", MQTT_RC_MALFORMED, 4, "v311 MQTT-1.5.3-2 client id U+0000"},
		{V311HDR "06 003c 0001 61 0002 c080 0000", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.3-10 will topic UTF-8"},
		{V311HDR "06 003c 0001 61 0003 612f23 0000", MQTT_RC_TOPIC_NAME_INVALID, 4, "will topic wildcard"},
		{V311HDR "06 003c 0001 61 0000 0000", MQTT_RC_TOPIC_NAME_INVALID, 4, "will topic empty"},
		{V311HDR "06 003c 0001 61 0001 74", MQTT_RC_MALFORMED, 4, "will payload missing"},
		{V311HDR "82 003c 0001 61 0002 ff41", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.3-11 user name UTF-8"},
		{V311HDR "82 003c 0001 61", MQTT_RC_MALFORMED, 4, "user name missing"},
		{V311HDR "c2 003c 0001 61 0001 75", MQTT_RC_MALFORMED, 4, "password missing"},
		{V5HDR "02 003c 03 210000 0001 61", MQTT_RC_PROTOCOL_ERROR, 5, "receive maximum 0"},
		{V5HDR "02 003c 03 230001 0001 61", MQTT_RC_PROTOCOL_ERROR, 5, "topic alias in CONNECT"},
		{V5HDR "02 003c 03 210000 0001 61 00", MQTT_RC_MALFORMED, 5, "MALFORMED wins"},
		{V5HDR "06 003c 00 0001 61 03 230001 0001 74 0000", MQTT_RC_PROTOCOL_ERROR, 5, "topic alias in will"},
		{V5HDR "06 003c 00 0001 61 05 1800000005 0001 74 0000", MQTT_OK, 5, "will delay"},
		{V5HDR "02 003c 05 1800000005 0001 61", MQTT_RC_PROTOCOL_ERROR, 5, "will delay in CONNECT"},
		{V5HDR "02 003c 05 1800000005", MQTT_RC_MALFORMED, 5, "client id missing"},
		{V5HDR "02 003c", MQTT_RC_MALFORMED, 5, "properties missing"},
		{V5HDR "02 003c 00 0001 61 00", MQTT_RC_MALFORMED, 5, "v5 trailing byte"},
		{V311HDR "02 00", MQTT_RC_MALFORMED, 4, "keepalive cut"},
		{V311HDR, MQTT_RC_MALFORMED, 4, "flags missing"},
		{"0004 4d5154", MQTT_RC_MALFORMED, 0, "name cut"},
		{"", MQTT_RC_MALFORMED, 0, "empty"},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct pkt p = mk(0x10, t[i].body);
		uint8_t *c = dup_exact(p.b, p.n);
		struct mqtt_frame f;
		ck_assert_int_eq(mqtt_frame_parse(c, p.n, 0, &f), MQTT_OK);
		struct mqtt_connect cn;
		int rc = mqtt_connect_decode(&f, &cn);
		ck_assert_msg(rc == t[i].rc, "%s: rc 0x%x", t[i].why, rc);
		ck_assert_msg(cn.version == t[i].version, "%s: version %d", t[i].why, cn.version);
		free(c);
	}
}
END_TEST

START_TEST(connect_compat)
{
	/* compat: mosquitto bridges set bit 7 of the level. */
	struct pkt p = mk(0x10, "0004 4d515454 84 02 003c 0001 61");
	struct mqtt_frame f = frame_ok(&p);
	struct mqtt_connect c;
	ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_OK);
	ck_assert(c.bridge);
	ck_assert_uint_eq(c.version, MQTT_V311);
	/* compat: MQTT 3.1 user name / password flags with the fields left out. */
	p = mk(0x10, V31HDR "c2 003c 0001 61");
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_OK);
	ck_assert(!c.has_username && !c.has_password);
	p = mk(0x10, V31HDR "c2 003c 0001 61 0001 75");
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_OK);
	ck_assert(c.has_username && !c.has_password && str_eq(c.username, S("u")));
	/* 3.1.1 gives no such leniency. */
	p = mk(0x10, V311HDR "c2 003c 0001 61 0001 75");
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_RC_MALFORMED);
}
END_TEST

START_TEST(connack_roundtrip)
{
	struct pkt p;
	struct mqtt_frame f;
	struct mqtt_connack c;
	ENCODE(&p, mqtt_connack_encode(true, 0, S("\x21\x00\x05"), MQTT_V311, out, cap));
	struct pkt want = mk(0x20, "01 00");
	ck_assert_uint_eq(p.n, want.n);
	ck_assert_mem_eq(p.b, want.b, p.n);
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_connack_decode(&f, MQTT_V311, &c), MQTT_OK);
	ck_assert(c.session_present && c.rc == 0);
	ENCODE(&p, mqtt_connack_encode(false, 5, NOSTR, MQTT_V31, out, cap));
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_connack_decode(&f, MQTT_V31, &c), MQTT_OK);
	ck_assert(!c.session_present && c.rc == 5);
	ENCODE(&p, mqtt_connack_encode(false, 0x87, S("\x1f\x00\x02no\x24\x01"), MQTT_V5, out, cap));
	want = mk(0x20, "00 87 07 1f00026e6f 2401");
	ck_assert_mem_eq(p.b, want.b, want.n);
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_connack_decode(&f, MQTT_V5, &c), MQTT_OK);
	ck_assert(str_eq(c.props.reason_string, S("no")) && c.props.maximum_qos == 1 && c.rc == 0x87);
	static const struct {
		const char *body;
		uint8_t version;
		int rc;
	} bad[] = {
		{"02 00", MQTT_V311, MQTT_RC_MALFORMED},        /* v5 MQTT-3.2.2-1 reserved bits */
		{"01 05", MQTT_V311, MQTT_RC_PROTOCOL_ERROR},   /* v311 MQTT-3.2.2-4 */
		{"01 80 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR},  /* v5 MQTT-3.2.2-6 */
		{"00 00 00", MQTT_V311, MQTT_RC_MALFORMED},
		{"00", MQTT_V311, MQTT_RC_MALFORMED},
		{"00 00", MQTT_V5, MQTT_RC_MALFORMED},          /* v5 MQTT-2.2.2-1 */
		{"00 00 02 1700", MQTT_V5, MQTT_RC_PROTOCOL_ERROR},
		{"00 00 00 00", MQTT_V5, MQTT_RC_MALFORMED},
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		p = mk(0x20, bad[i].body);
		ck_assert_msg(decode_pkt(&p, bad[i].version) == bad[i].rc, "connack %s", bad[i].body);
	}
}
END_TEST

/* ---- PUBLISH and acks ---------------------------------------------------- */

START_TEST(publish_roundtrip)
{
	static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
	for (size_t i = 0; i < ARRAY_LEN(versions); i++) {
		for (uint8_t qos = 0; qos <= 2; qos++) {
			struct mqtt_publish_out o = {
				.qos = qos, .dup = qos > 0, .retain = true, .packet_id = qos ? 0x1234 : 0,
				.topic = S("a/b"), .props = S("\x23\x00\x02\x26\x00\x01k\x00\x01v"),
				.payload = S("hello\x00"),
			};
			struct pkt p;
			ENCODE(&p, mqtt_publish_encode(&o, versions[i], out, cap));
			ck_assert_uint_eq(mqtt_publish_size(&o, versions[i]), p.n);
			ck_assert_mem_eq(p.b + p.n - o.payload.len, o.payload.p, o.payload.len); /* payload last */
			ck_assert_uint_eq(p.b[0], 0x30 | (qos ? 0x08 : 0) | qos << 1 | 1);
			struct mqtt_frame f = frame_ok(&p);
			struct mqtt_publish d;
			ck_assert_int_eq(mqtt_publish_decode(&f, versions[i], &d), MQTT_OK);
			ck_assert(d.qos == qos && d.retain && d.dup == (qos > 0));
			ck_assert_uint_eq(d.packet_id, o.packet_id);
			ck_assert(str_eq(d.topic, o.topic) && str_eq(d.payload, o.payload));
			if (versions[i] == MQTT_V5)
				ck_assert(d.props.topic_alias == 2 && d.props.n_user == 1 && str_eq(d.props.raw, o.props));
			else
				ck_assert_uint_eq(d.props.present, 0);
		}
	}
	/* v5 empty topic with an alias; empty payload. */
	struct mqtt_publish_out o = {.topic = NOSTR, .props = S("\x23\x00\x01")};
	struct pkt p;
	ENCODE(&p, mqtt_publish_encode(&o, MQTT_V5, out, cap));
	struct pkt want = mk(0x30, "0000 03 230001");
	ck_assert_mem_eq(p.b, want.b, want.n);
	ck_assert_int_eq(decode_pkt(&p, MQTT_V5), MQTT_OK);
}
END_TEST

START_TEST(publish_errors)
{
	static const struct {
		uint8_t b0;
		const char *body;
		uint8_t version;
		int rc;
		const char *why;
	} t[] = {
		{0x36, "0001 61 0001", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.3.1-4 QoS 3"},
		{0x36, "0001 61 0001 00", MQTT_V5, MQTT_RC_MALFORMED, "v5 MQTT-3.3.1-4 QoS 3"},
		{0x30, "0003 612f2b", MQTT_V311, MQTT_RC_TOPIC_NAME_INVALID, "v311 MQTT-3.3.2-2 '+'"},
		{0x30, "0003 612f23 00", MQTT_V5, MQTT_RC_TOPIC_NAME_INVALID, "v5 MQTT-3.3.2-2 '#'"},
		{0x30, "0002 c0af", MQTT_V311, MQTT_RC_TOPIC_NAME_INVALID, "v311 MQTT-1.5.3-1 topic UTF-8"},
		{0x30, "0002 6100", MQTT_V311, MQTT_RC_TOPIC_NAME_INVALID, "v311 MQTT-4.7.3-2 U+0000"},
		{0x30, "0000 6869", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 MQTT-4.7.3-1 empty topic"},
		{0x30, "0000 00 6869", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 empty topic, no alias"},
		{0x32, "0001 61 0000", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 MQTT-2.3.1-1 packet id 0"},
		{0x34, "0001 61 0000 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 MQTT-2.2.1-3 packet id 0"},
		{0x32, "0001 61 00", MQTT_V311, MQTT_RC_MALFORMED, "packet id cut"},
		{0x30, "0005 61", MQTT_V311, MQTT_RC_MALFORMED, "topic cut"},
		{0x30, "00", MQTT_V311, MQTT_RC_MALFORMED, "topic length cut"},
		{0x30, "0001 61", MQTT_V5, MQTT_RC_MALFORMED, "v5 property length missing"},
		{0x30, "0001 61 05 2300", MQTT_V5, MQTT_RC_MALFORMED, "properties past the end"},
		{0x30, "0001 61 03 230000", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 MQTT-3.3.2-8 alias 0"},
		{0x30, "0001 61 05 1100000001", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "session expiry in PUBLISH"},
		{0x30, "0001 61 02 0102", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "payload format 2"},
		{0x30, "0001 61 02 0101 ff", MQTT_V5, MQTT_OK, "payload not checked"},
		{0x38, "0001 61", MQTT_V311, MQTT_OK, "DUP on QoS 0 is accepted"},
		{0x30, "0003 efbbbf", MQTT_V311, MQTT_OK, "v311 MQTT-1.5.3-3 BOM"},
		{0x30, "0001 61", MQTT_V311, MQTT_OK, "empty payload"},
		{0x30, "0001 61 02 0101", MQTT_V311, MQTT_OK, "v3: bytes after the topic are payload"},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct pkt p = mk(t[i].b0, t[i].body);
		int rc = decode_pkt(&p, t[i].version);
		ck_assert_msg(rc == t[i].rc, "%s: 0x%x", t[i].why, rc);
	}
}
END_TEST

START_TEST(ack_roundtrip)
{
	for (uint8_t type = MQTT_PUBACK; type <= MQTT_PUBCOMP; type++) {
		uint8_t b0 = (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 2 : 0));
		struct pkt p;
		struct mqtt_frame f;
		struct mqtt_ack a;
		/* v3: always 2 bytes of body, rc and props ignored. */
		ENCODE(&p, mqtt_ack_encode(type, 7, 0x92, S("\x1f\x00\x00"), MQTT_V311, out, cap));
		struct pkt want = mk(b0, "0007");
		ck_assert_uint_eq(p.n, want.n);
		ck_assert_mem_eq(p.b, want.b, p.n);
		f = frame_ok(&p);
		ck_assert_int_eq(mqtt_ack_decode(&f, MQTT_V311, &a), MQTT_OK);
		ck_assert(a.type == type && a.packet_id == 7 && a.rc == 0);
		/* v5 shortest forms (v5 3.4.2.1). */
		ENCODE(&p, mqtt_ack_encode(type, 7, 0, NOSTR, MQTT_V5, out, cap));
		ck_assert_uint_eq(p.n, 4);
		ck_assert_int_eq(decode_pkt(&p, MQTT_V5), MQTT_OK);
		uint8_t code = type <= MQTT_PUBREC ? 0x10 : 0x92;
		ENCODE(&p, mqtt_ack_encode(type, 7, code, NOSTR, MQTT_V5, out, cap));
		want = mk(b0, type <= MQTT_PUBREC ? "0007 10" : "0007 92");
		ck_assert_uint_eq(p.n, want.n);
		ck_assert_mem_eq(p.b, want.b, p.n);
		f = frame_ok(&p);
		ck_assert_int_eq(mqtt_ack_decode(&f, MQTT_V5, &a), MQTT_OK);
		ck_assert_uint_eq(a.rc, code);
		ENCODE(&p, mqtt_ack_encode(type, 7, 0, S("\x1f\x00\x01x"), MQTT_V5, out, cap));
		want = mk(b0, "0007 00 04 1f000178");
		ck_assert_mem_eq(p.b, want.b, want.n);
		f = frame_ok(&p);
		ck_assert_int_eq(mqtt_ack_decode(&f, MQTT_V5, &a), MQTT_OK);
		ck_assert(str_eq(a.props.reason_string, S("x")));
		/* Errors. */
		static const struct {
			const char *body;
			uint8_t version;
			int rc;
		} bad[] = {
			{"0000", MQTT_V311, MQTT_RC_PROTOCOL_ERROR}, {"0000", MQTT_V5, MQTT_RC_PROTOCOL_ERROR},
			{"00", MQTT_V311, MQTT_RC_MALFORMED},        {"", MQTT_V5, MQTT_RC_MALFORMED},
			{"0001 00", MQTT_V311, MQTT_RC_MALFORMED},   {"0001 00 00 00", MQTT_V5, MQTT_RC_MALFORMED},
			{"0001 00 05 1f", MQTT_V5, MQTT_RC_MALFORMED}, {"0001 00 03 230001", MQTT_V5, MQTT_RC_PROTOCOL_ERROR},
			{"0001 01", MQTT_V5, MQTT_RC_PROTOCOL_ERROR}, /* v5 MQTT-3.4.2-1 / MQTT-3.6.2-1 */
		};
		for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
			p = mk(b0, bad[i].body);
			ck_assert_msg(decode_pkt(&p, bad[i].version) == bad[i].rc, "%s %s", mqtt_type_name(type),
				      bad[i].body);
		}
		/* Reason codes per type. */
		p = mk(b0, "0001 10");
		ck_assert_int_eq(decode_pkt(&p, MQTT_V5), type <= MQTT_PUBREC ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR);
		p = mk(b0, "0001 92");
		ck_assert_int_eq(decode_pkt(&p, MQTT_V5), type >= MQTT_PUBREL ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR);
	}
	/* PUBREL with flags 0 never reaches the decoder: v311/v5 MQTT-3.6.1-1. */
	struct pkt p = mk(0x60, "0001");
	ck_assert_int_eq(decode_pkt(&p, MQTT_V311), MQTT_RC_MALFORMED);
	p = mk(0x42, "0001");
	ck_assert_int_eq(decode_pkt(&p, MQTT_V311), MQTT_RC_MALFORMED);
}
END_TEST

/* ---- SUBSCRIBE / UNSUBSCRIBE / SUBACK / UNSUBACK ------------------------- */

START_TEST(subscribe_roundtrip)
{
	const struct mqtt_str filters[] = {S("a/+"), S("#"), S("$share/g/x")};
	const uint8_t opts_v5[] = {0x01, 0x2e, 0x12}, opts_v3[] = {0, 1, 2};
	static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
	for (size_t v = 0; v < ARRAY_LEN(versions); v++) {
		bool v5 = versions[v] == MQTT_V5;
		const uint8_t *opts = v5 ? opts_v5 : opts_v3;
		struct pkt p;
		ENCODE(&p, mqtt_subscribe_encode(9, S("\x0b\x07"), filters, opts, 3, versions[v], out, cap));
		ck_assert_uint_eq(p.b[0], 0x82);
		struct mqtt_frame f = frame_ok(&p);
		struct mqtt_subscribe s;
		ck_assert_int_eq(mqtt_subscribe_decode(&f, versions[v], &s), MQTT_OK);
		ck_assert_uint_eq(s.packet_id, 9);
		ck_assert_uint_eq(s.count, 3);
		ck_assert_uint_eq(s.props.subscription_id, v5 ? 7 : 0);
		size_t off = 0, i = 0;
		struct mqtt_str flt;
		uint8_t o;
		while (mqtt_subscribe_next(&s, &off, &flt, &o)) {
			ck_assert(str_eq(flt, filters[i]));
			ck_assert_uint_eq(o, opts[i]);
			i++;
		}
		ck_assert_uint_eq(i, 3);

		ENCODE(&p, mqtt_unsubscribe_encode(10, NOSTR, filters, 3, versions[v], out, cap));
		ck_assert_uint_eq(p.b[0], 0xa2);
		f = frame_ok(&p);
		struct mqtt_unsubscribe u;
		ck_assert_int_eq(mqtt_unsubscribe_decode(&f, versions[v], &u), MQTT_OK);
		ck_assert(u.packet_id == 10 && u.count == 3);
		off = i = 0;
		while (mqtt_unsubscribe_next(&u, &off, &flt))
			ck_assert(str_eq(flt, filters[i++]));
		ck_assert_uint_eq(i, 3);

		const uint8_t rcs[] = {0x00, 0x02, 0x80};
		ENCODE(&p, mqtt_suback_encode(MQTT_SUBACK, 9, S("\x1f\x00\x01r"), rcs, 3, versions[v], out, cap));
		f = frame_ok(&p);
		struct mqtt_suback sa;
		ck_assert_int_eq(mqtt_suback_decode(&f, versions[v], &sa), MQTT_OK);
		ck_assert(sa.packet_id == 9 && str_eq(sa.rcs, S("\x00\x02\x80")));
		ck_assert_uint_eq(p.n, v5 ? 12 : 7);

		const uint8_t urcs[] = {0x00, 0x11};
		ENCODE(&p, mqtt_suback_encode(MQTT_UNSUBACK, 10, NOSTR, urcs, 2, versions[v], out, cap));
		ck_assert_uint_eq(p.n, v5 ? 7 : 4); /* v3 UNSUBACK has no codes */
		f = frame_ok(&p);
		ck_assert_int_eq(mqtt_suback_decode(&f, versions[v], &sa), MQTT_OK);
		ck_assert(sa.packet_id == 10 && sa.rcs.len == (v5 ? 2 : 0));
	}
}
END_TEST

START_TEST(subscribe_errors)
{
	static const struct {
		uint8_t b0;
		const char *body;
		uint8_t version;
		int rc;
		const char *why;
	} t[] = {
		{0x82, "0001", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 MQTT-3.8.3-3 no entries"},
		{0x82, "0001 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 MQTT-3.8.3-2 no entries"},
		{0x82, "0000 0001 61 00", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 MQTT-2.3.1-1 id 0"},
		{0x82, "0001 0001 61 03", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.8.3-4 QoS 3"},
		{0x82, "0001 0001 61 04", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.8.3-4 reserved bits"},
		{0x82, "0001 0001 61 80", MQTT_V31, MQTT_RC_MALFORMED, "3.1 reserved bits"},
		{0x82, "0001 00 0001 61 03", MQTT_V5, MQTT_RC_MALFORMED, "v5 3.8.3.1 QoS 3"},
		{0x82, "0001 00 0001 61 40", MQTT_V5, MQTT_RC_MALFORMED, "v5 MQTT-3.8.3-5 bit 6"},
		{0x82, "0001 00 0001 61 80", MQTT_V5, MQTT_RC_MALFORMED, "v5 MQTT-3.8.3-5 bit 7"},
		{0x82, "0001 00 0001 61 30", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 retain handling 3"},
		{0x82, "0001 00 0001 61 2e", MQTT_V5, MQTT_OK, "v5 all options"},
		{0x82, "0001 00 000a 2473686172652f672f61 04", MQTT_V5, MQTT_RC_PROTOCOL_ERROR,
		 "v5 MQTT-3.8.3-4 no local on shared"},
		{0x82, "0001 00 000a 2473686172652f672f61 00 0001 61 03", MQTT_V5, MQTT_RC_MALFORMED, "2nd entry"},
		{0x82, "0001 0002 c0af 00", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-1.5.3-1 filter UTF-8"},
		{0x82, "0001 0001 00 00", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-1.5.3-2 filter U+0000"},
		{0x82, "0001 0003 612f", MQTT_V311, MQTT_RC_MALFORMED, "entry cut"},
		{0x82, "0001 0001 61", MQTT_V311, MQTT_RC_MALFORMED, "options missing"},
		{0x82, "0001 0003 612b62 00", MQTT_V311, MQTT_OK, "bad filter is the broker's (SUBACK 0x80)"},
		{0x82, "0001 0000 00", MQTT_V311, MQTT_OK, "empty filter is the broker's"},
		{0x82, "0001 04 0b010b02 0001 61 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "two sub ids"},
		{0x82, "0001 02 0b00 0001 61 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "sub id 0"},
		{0x82, "0001 03 1f0000 0001 61 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "reason string"},
		{0x82, "00", MQTT_V311, MQTT_RC_MALFORMED, "id cut"},
		{0xa2, "0001", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 MQTT-3.10.3-2 no entries"},
		{0xa2, "0001 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 MQTT-3.10.3-2 no entries"},
		{0xa2, "0000 0001 61", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 MQTT-2.3.1-1 id 0"},
		{0xa2, "0001 0001 ff", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.10.3-1 UTF-8"},
		{0xa2, "0001 0002 61", MQTT_V311, MQTT_RC_MALFORMED, "cut"},
		{0xa2, "0001 02 0b01 0001 61", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "sub id in UNSUBSCRIBE"},
		{0xa2, "0001 03 260000 0001 61", MQTT_V5, MQTT_RC_MALFORMED, "user property cut"},
		{0xa0, "0001 0001 61", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.10.1-1 flags"},
		{0x80, "0001 0001 61 00", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.8.1-1 flags"},
		{0x90, "0001", MQTT_V311, MQTT_RC_MALFORMED, "SUBACK without codes"},
		{0x90, "0001 03", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "SUBACK code 3"},
		{0x90, "0001 00 97", MQTT_V5, MQTT_OK, "v5 SUBACK quota exceeded"},
		{0x90, "0001 97", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 SUBACK 0x97"},
		{0x90, "0000 00", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "SUBACK id 0"},
		{0xb0, "0001 00", MQTT_V311, MQTT_RC_MALFORMED, "v3 UNSUBACK with a code"},
		{0xb0, "0001 00", MQTT_V5, MQTT_RC_MALFORMED, "v5 UNSUBACK without codes"},
		{0xb0, "0001 00 02", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 UNSUBACK code 2"},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct pkt p = mk(t[i].b0, t[i].body);
		int rc = decode_pkt(&p, t[i].version);
		ck_assert_msg(rc == t[i].rc, "%s: 0x%x", t[i].why, rc);
	}
}
END_TEST

/* ---- DISCONNECT / AUTH / PING -------------------------------------------- */

START_TEST(control_packets)
{
	struct pkt p, want;
	struct mqtt_frame f;
	struct mqtt_disconnect d;
	ENCODE(&p, mqtt_disconnect_encode(0x8d, S("\x1f\x00\x00"), MQTT_V311, out, cap));
	want = mk(0xe0, "");
	ck_assert(p.n == 2 && memcmp(p.b, want.b, 2) == 0);
	ck_assert_int_eq(decode_pkt(&p, MQTT_V311), MQTT_OK);
	ENCODE(&p, mqtt_disconnect_encode(0, NOSTR, MQTT_V5, out, cap));
	ck_assert(p.n == 2 && memcmp(p.b, want.b, 2) == 0);
	ENCODE(&p, mqtt_disconnect_encode(0x8d, NOSTR, MQTT_V5, out, cap));
	want = mk(0xe0, "8d 00");
	ck_assert(p.n == want.n && memcmp(p.b, want.b, p.n) == 0);
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_disconnect_decode(&f, MQTT_V5, &d), MQTT_OK);
	ck_assert_uint_eq(d.rc, 0x8d);
	ENCODE(&p, mqtt_disconnect_encode(0, S("\x11\x00\x00\x00\x0a"), MQTT_V5, out, cap));
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_disconnect_decode(&f, MQTT_V5, &d), MQTT_OK);
	ck_assert(d.rc == 0 && d.props.session_expiry == 10);
	ENCODE(&p, mqtt_auth_encode(0, NOSTR, out, cap));
	ck_assert(p.n == 2 && p.b[0] == 0xf0 && p.b[1] == 0);
	ck_assert_int_eq(decode_pkt(&p, MQTT_V5), MQTT_OK);
	ENCODE(&p, mqtt_auth_encode(0x18, S("\x15\x00\x01x\x16\x00\x01y"), out, cap));
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_auth_decode(&f, &d), MQTT_OK);
	ck_assert(d.rc == 0x18 && str_eq(d.props.auth_method, S("x")) && str_eq(d.props.auth_data, S("y")));
	for (uint8_t type = MQTT_PINGREQ; type <= MQTT_PINGRESP; type++) {
		ENCODE(&p, mqtt_empty_encode(type, out, cap));
		ck_assert(p.n == 2 && p.b[0] == type << 4 && p.b[1] == 0);
		ck_assert_int_eq(decode_pkt(&p, MQTT_V311), MQTT_OK);
	}
	static const struct {
		uint8_t b0;
		const char *body;
		uint8_t version;
		int rc;
		const char *why;
	} t[] = {
		{0xe0, "00", MQTT_V311, MQTT_RC_MALFORMED, "v3 DISCONNECT has no body"},
		{0xe1, "", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.14.1-1 flags"},
		{0xe0, "04", MQTT_V5, MQTT_OK, "v5 rc only"},
		{0xe0, "05", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 MQTT-3.14.2-1 code"},
		{0xe0, "00 00 00", MQTT_V5, MQTT_RC_MALFORMED, "trailing"},
		{0xe0, "00 03 11", MQTT_V5, MQTT_RC_MALFORMED, "props cut"},
		{0xe0, "00 03 230001", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "alias in DISCONNECT"},
		{0xf0, "00", MQTT_V5, MQTT_RC_MALFORMED, "AUTH rc without property length"},
		{0xf0, "19 00", MQTT_V5, MQTT_OK, "AUTH re-authenticate"},
		{0xf0, "04 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 MQTT-3.15.2-1 code"},
		{0xf0, "18 00 00", MQTT_V5, MQTT_RC_MALFORMED, "AUTH trailing"},
		{0xf0, "18 05 1100000001", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "session expiry in AUTH"},
		{0xf1, "", MQTT_V5, MQTT_RC_MALFORMED, "v5 MQTT-3.15.1-1 flags"},
		{0xc0, "00", MQTT_V311, MQTT_RC_MALFORMED, "PINGREQ with a body"},
		{0xd0, "00", MQTT_V311, MQTT_RC_MALFORMED, "PINGRESP with a body"},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		p = mk(t[i].b0, t[i].body);
		int rc = decode_pkt(&p, t[i].version);
		ck_assert_msg(rc == t[i].rc, "%s: 0x%x", t[i].why, rc);
	}
}
END_TEST

/* ---- systematic truncation and extension --------------------------------- */

struct sample {
	struct pkt p;
	uint8_t version;
	bool strict_cut;  /* every shorter body must be an error */
	bool strict_tail; /* one more body byte must be an error */
};

static size_t build_samples(struct sample *s)
{
	size_t n = 0;
	static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
	for (size_t v = 0; v < ARRAY_LEN(versions); v++) {
		uint8_t ver = versions[v];
		bool v5 = ver == MQTT_V5;
		struct mqtt_connect_out co = connect_full(ver);
		const struct mqtt_str flt[] = {S("a/b")}, two[] = {S("a/b"), S("c")};
		const uint8_t opt[] = {1, 2}, rcs[] = {1}, urcs[] = {0x11};
		struct mqtt_publish_out po = {.qos = 1, .packet_id = 3, .topic = S("t/x"), .props = S("\x01\x01"),
					      .payload = S("pay")};
		struct mqtt_str pr = v5 ? S("\x1f\x00\x01r") : NOSTR;
#define ADD(cut, tail, EXPR)                                                        \
	do {                                                                        \
		s[n].version = ver;                                                 \
		s[n].strict_cut = (cut);                                            \
		s[n].strict_tail = (tail);                                          \
		ENCODE(&s[n].p, EXPR);                                              \
		n++;                                                                \
	} while (0)
		ADD(ver != MQTT_V31, true, mqtt_connect_encode(&co, out, cap)); /* compat: 3.1 */
		co.has_password = co.has_username = co.will = co.will_retain = false;
		co.will_qos = 0;
		ADD(true, true, mqtt_connect_encode(&co, out, cap));
		ADD(true, true, mqtt_connack_encode(false, 0, pr, ver, out, cap));
		ADD(false, false, mqtt_publish_encode(&po, ver, out, cap));
		for (uint8_t t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++)
			ADD(!v5, true, mqtt_ack_encode(t, 5, t <= MQTT_PUBREC ? 0x10 : 0x92, pr, ver, out, cap));
		ADD(true, true, mqtt_subscribe_encode(4, v5 ? S("\x0b\x01") : NOSTR, flt, opt, 1, ver, out, cap));
		ADD(false, true, mqtt_subscribe_encode(4, NOSTR, two, opt, 2, ver, out, cap));
		ADD(true, true, mqtt_unsubscribe_encode(4, NOSTR, flt, 1, ver, out, cap));
		ADD(false, !v5, mqtt_unsubscribe_encode(4, NOSTR, two, 2, ver, out, cap)); /* "00" + ... */
		ADD(true, false, mqtt_suback_encode(MQTT_SUBACK, 4, pr, rcs, 1, ver, out, cap));
		ADD(true, !v5, mqtt_suback_encode(MQTT_UNSUBACK, 4, pr, urcs, 1, ver, out, cap));
		ADD(!v5, true, mqtt_disconnect_encode(0x8b, pr, ver, out, cap));
		ADD(true, true, mqtt_empty_encode(MQTT_PINGREQ, out, cap));
		ADD(true, true, mqtt_empty_encode(MQTT_PINGRESP, out, cap));
		if (v5)
			ADD(false, true, mqtt_auth_encode(0x18, S("\x15\x00\x01m"), out, cap));
#undef ADD
	}
	return n;
}

/* Every byte-prefix of every packet is INCOMPLETE for the framer; every
 * shortened body is rejected or (where the spec allows the short form)
 * accepted, never read past its end; a byte too many is rejected where the
 * packet has a fixed end. */
START_TEST(truncation_systematic)
{
	static struct sample s[64];
	size_t n = build_samples(s);
	ck_assert_uint_gt(n, 50);
	for (size_t i = 0; i < n; i++) {
		const struct pkt *p = &s[i].p;
		ck_assert_msg(decode_pkt(p, s[i].version) == MQTT_OK, "sample %zu (%s v%d)", i,
			      mqtt_type_name(p->b[0] >> 4), s[i].version);
		struct mqtt_frame f = frame_ok(p);
		for (size_t k = 0; k < p->n; k++) {
			uint8_t *c = dup_exact(p->b, k);
			struct mqtt_frame g;
			ck_assert_int_eq(mqtt_frame_parse(c, k, 0, &g), MQTT_INCOMPLETE);
			free(c);
		}
		for (uint32_t k = 0; k < f.len; k++) {
			uint8_t *c = dup_exact(f.body, k);
			struct mqtt_frame g = f;
			g.body = c;
			g.len = k;
			int rc = decode_any(&g, s[i].version);
			if (s[i].strict_cut)
				ck_assert_msg(rc != MQTT_OK, "sample %zu (%s v%d) cut to %u", i, mqtt_type_name(f.type),
					      s[i].version, k);
			free(c);
		}
		uint8_t *c = malloc(f.len + 1);
		ck_assert_ptr_nonnull(c);
		memcpy(c, f.body, f.len);
		c[f.len] = 0;
		struct mqtt_frame g = f;
		g.body = c;
		g.len = f.len + 1;
		int rc = decode_any(&g, s[i].version);
		if (s[i].strict_tail)
			ck_assert_msg(rc != MQTT_OK, "sample %zu (%s v%d) + 1 byte", i, mqtt_type_name(f.type),
				      s[i].version);
		free(c);
	}
}
END_TEST

/* Every decoder on every frame type and version: no crash, no over-read. */
START_TEST(cross_decoders)
{
	static struct sample s[64];
	size_t n = build_samples(s);
	for (size_t i = 0; i < n; i++) {
		struct mqtt_frame f = frame_ok(&s[i].p);
		uint8_t *c = dup_exact(f.body, f.len);
		f.body = c;
		for (uint8_t ver = MQTT_V31; ver <= MQTT_V5; ver++) {
			union {
				struct mqtt_connect c;
				struct mqtt_connack ca;
				struct mqtt_publish p;
				struct mqtt_ack a;
				struct mqtt_subscribe s;
				struct mqtt_unsubscribe u;
				struct mqtt_suback sa;
				struct mqtt_disconnect d;
			} u;
			(void)mqtt_connect_decode(&f, &u.c);
			(void)mqtt_connack_decode(&f, ver, &u.ca);
			(void)mqtt_publish_decode(&f, ver, &u.p);
			(void)mqtt_ack_decode(&f, ver, &u.a);
			(void)mqtt_subscribe_decode(&f, ver, &u.s);
			(void)mqtt_unsubscribe_decode(&f, ver, &u.u);
			(void)mqtt_suback_decode(&f, ver, &u.sa);
			(void)mqtt_disconnect_decode(&f, ver, &u.d);
			(void)mqtt_auth_decode(&f, &u.d);
			(void)mqtt_empty_decode(&f);
		}
		free(c);
	}
}
END_TEST

/* Strings and lengths that cannot be represented: encoders return 0. */
START_TEST(encode_limits)
{
	uint8_t *big = calloc(1, 70000);
	ck_assert_ptr_nonnull(big);
	uint8_t buf[16];
	struct mqtt_publish_out po = {.topic = {big, 65536}};
	ck_assert_uint_eq(mqtt_publish_encode(&po, MQTT_V311, buf, sizeof buf), 0);
	ck_assert_uint_eq(mqtt_publish_size(&po, MQTT_V311), 0);
	po.topic = (struct mqtt_str){(const uint8_t *)"t", 1};
	po.payload = (struct mqtt_str){big, 268435455};
	ck_assert_uint_eq(mqtt_publish_size(&po, MQTT_V311), 0);
	po.payload.len = 268435455 - 3;
	ck_assert_uint_eq(mqtt_publish_size(&po, MQTT_V311), 268435455 + 5); /* largest packet */
	struct mqtt_connect_out co = {.version = MQTT_V311, .client_id = {big, 65536}};
	ck_assert_uint_eq(mqtt_connect_encode(&co, buf, sizeof buf), 0);
	const struct mqtt_str f[] = {{big, 65536}};
	const uint8_t o[] = {0};
	ck_assert_uint_eq(mqtt_subscribe_encode(1, NOSTR, f, o, 1, MQTT_V311, buf, sizeof buf), 0);
	free(big);
}
END_TEST

static Suite *protocol_suite(void)
{
	Suite *s = suite_create("protocol");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, vbi_boundaries);
	tcase_add_test(tc, vbi_malformed);
	tcase_add_test(tc, frame_flags_table);
	tcase_add_test(tc, frame_sizes);
	tcase_add_test(tc, names);
	tcase_add_test(tc, utf8_table);
	tcase_add_test(tc, topic_name_table);
	tcase_add_test(tc, topic_filter_table);
	tcase_add_test(tc, share_split);
	tcase_add_test(tc, topic_match_table);
	tcase_add_test(tc, props_validity_table);
	tcase_add_test(tc, props_value_table);
	tcase_add_test(tc, props_fields_and_walk);
	tcase_add_test(tc, props_writer);
	tcase_add_test(tc, connect_roundtrip);
	tcase_add_test(tc, connect_errors);
	tcase_add_test(tc, connect_compat);
	tcase_add_test(tc, connack_roundtrip);
	tcase_add_test(tc, publish_roundtrip);
	tcase_add_test(tc, publish_errors);
	tcase_add_test(tc, ack_roundtrip);
	tcase_add_test(tc, subscribe_roundtrip);
	tcase_add_test(tc, subscribe_errors);
	tcase_add_test(tc, control_packets);
	tcase_add_test(tc, truncation_systematic);
	tcase_add_test(tc, cross_decoders);
	tcase_add_test(tc, encode_limits);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(protocol_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
