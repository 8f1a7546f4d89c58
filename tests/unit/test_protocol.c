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

/* v311 MQTT-2.2.2-1, v311 MQTT-2.2.2-2, v5 MQTT-2.1.3-1, v311 MQTT-3.6.1-1,
 * v5 MQTT-3.6.1-1, v311 MQTT-3.8.1-1, v5 MQTT-3.8.1-1, v311 MQTT-3.10.1-1,
 * v5 MQTT-3.10.1-1, v311 MQTT-3.14.1-1, v5 MQTT-3.14.1-1, v5 MQTT-3.15.1-1:
 * flags per type; type 0 reserved. */
START_TEST(frame_flags_table)
{
	for (int type = 0; type < 16; type++) {
		for (int flags = 0; flags < 16; flags++) {
			uint8_t b[2] = {(uint8_t)(type << 4 | flags), 0};
			struct mqtt_frame f;
			int want;
			if (type == 0)
				want = MQTT_RC_PROTOCOL_ERROR;
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
				ck_assert_int_eq(mqtt_frame_parse(b, 1, 0, &f), want);
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
	/* A remaining length longer than needed is accepted, as mosquitto does
	 * (MQTT-1.5.5-1 binds the sender); inside packets it is malformed. */
	uint8_t nonmin[5] = {0xC0, 0x80, 0x00, 0x40, 0x82};
	ck_assert_int_eq(mqtt_frame_parse(nonmin, 3, 0, &f), MQTT_OK);
	ck_assert_uint_eq(f.len, 0);
	ck_assert_uint_eq(f.total, 3);
	ck_assert_int_eq(mqtt_frame_parse(nonmin + 3, 2, 0, &f), MQTT_INCOMPLETE);
	ck_assert_int_eq(mqtt_vbi_decode(nonmin + 1, 2, &f.len), -1);
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

/* v311 MQTT-1.5.3-1, v311 MQTT-1.5.3-2, v311 MQTT-1.5.3-3,
 * v5 MQTT-1.5.4-1, v5 MQTT-1.5.4-2, v5 MQTT-1.5.4-3. */
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
		/* past the eight-byte ASCII step: a NUL, a bad byte or a character in any lane */
		{"61626364656667686970", true}, {"6162636465666768006a", false},
		{"6162636465666700", false}, {"0062636465666768696a", false},
		{"61626364656667c280", true}, {"6162636465666768ff", false},
		{"616263646566676869c2", false}, {"61626364656667686162636465666768e0a080", true},
		{"8062636465666768", false}, {"616263646566677f", true},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		uint8_t b[32];
		size_t n = hex(t[i].hex, b, sizeof b);
		uint8_t *c = dup_exact(b, n);
		ck_assert_msg(mqtt_utf8_valid(c, n) == t[i].ok, "utf8 %s", t[i].hex);
		free(c);
	}
}
END_TEST

/* ---- topics -------------------------------------------------------------- */

/* v311 MQTT-4.7.1-1, v311 MQTT-4.7.3-1, v311 MQTT-4.7.3-2, v311 MQTT-4.7.3-3;
 * v5 MQTT-4.7.0-1, v5 MQTT-4.7.3-1, v5 MQTT-4.7.3-2, v5 MQTT-4.7.3-3. */
START_TEST(topic_name_table)
{
	static const struct {
		const char *t;
		bool ok;
	} t[] = {
		{"a", true}, {"", false}, {"a/b", true}, {"/", true}, {"//", true}, {" ", true},
		{"a+", false}, {"+", false}, {"#", false}, {"a/#", false}, {"a/+/b", false},
		{"$SYS/x", true}, {"\xc3\xa9t\xc3\xa9", true}, {"a\xc0\x80", false},
		/* long names take eight bytes at a time: a wildcard or bad byte in a block or after it */
		{"sensors/room/12/temp", true}, {"sensors+room/12/temp", false}, {"sensors/#oom/12/temp", false},
		{"sensors/room/12/tem+", false}, {"abcdefg#", false}, {"abcdefgh#", false}, {"abcdefgh+ijklmno", false},
		{"abcdefgh\xc3\xa9ijklmno", true}, {"abcdefg\xc3\xa9", true}, {"abcdefg\xff", false},
		{"abcdefghijklmno\x80", false}, {"abc*efgh", true}, {"abc\"efgh", true}, {"abc$efgh", true},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++)
		ck_assert_msg(mqtt_topic_name_valid(mqtt_cstr(t[i].t)) == t[i].ok, "name '%s'", t[i].t);
	ck_assert(!mqtt_topic_name_valid((struct mqtt_str){(const uint8_t *)"a\0b", 3}));
	ck_assert(!mqtt_topic_name_valid((struct mqtt_str){(const uint8_t *)"abcdef\0hijk", 11}));
	ck_assert(!mqtt_topic_name_valid((struct mqtt_str){(const uint8_t *)"abcdefghij\0k", 12}));
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

/* v311 MQTT-4.7.1-2, v311 MQTT-4.7.1-3, v5 MQTT-4.7.1-1, v5 MQTT-4.7.1-2,
 * v5 4.8.2 shared subscriptions. */
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

/* Spec examples of 4.7.1.2-3; v311 MQTT-4.7.2-1, v5 MQTT-4.7.2-1 ('$' topics);
 * v311 MQTT-4.7.3-4, v5 MQTT-4.7.3-4 (no normalisation). */
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
			/* Not allowed in this packet: Malformed (as mosquitto 2.0.11). */
			int want = (prop_table[i].ctx & (1u << ctx)) ? MQTT_OK : MQTT_RC_MALFORMED;
			int rc = props_dec((enum mqtt_prop_ctx)ctx, prop_table[i].hex, &p);
			ck_assert_msg(rc == want, "prop 0x%02x ctx %d: rc 0x%x", prop_table[i].id, ctx, rc);
			ck_assert(want != MQTT_OK || (p.present & MQTT_PBIT(prop_table[i].id)));
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
		{MQTT_PCTX_PUBLISH, "23 0000", MQTT_RC_MALFORMED},          /* v5 MQTT-3.3.2-8, 0x81 as mosquitto */
		{MQTT_PCTX_PUBLISH, "0b 00", MQTT_RC_PROTOCOL_ERROR},       /* subscription id 0 */
		{MQTT_PCTX_SUBSCRIBE, "0b 00", MQTT_RC_PROTOCOL_ERROR},
		{MQTT_PCTX_PUBLISH, "0b ffffff7f", MQTT_OK},                /* 268 435 455 */
		{MQTT_PCTX_PUBLISH, "0b 8000", MQTT_RC_MALFORMED},          /* v5 MQTT-1.5.5-1 */
		{MQTT_PCTX_PUBLISH, "0b 8080808001", MQTT_RC_MALFORMED},
		{MQTT_PCTX_PUBLISH, "01 00", MQTT_OK},
		{MQTT_PCTX_PUBLISH, "01 02", MQTT_OK},                      /* payload format: no error named */
		{MQTT_PCTX_WILL, "01 ff", MQTT_OK},
		{MQTT_PCTX_PUBLISH, "01 02 01 02", MQTT_RC_PROTOCOL_ERROR}, /* twice */
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
		{MQTT_PCTX_PUBLISH, "01 01 01 01 11 00000000", MQTT_RC_MALFORMED}, /* not allowed wins */
		{MQTT_PCTX_DISCONNECT, "01 01", MQTT_RC_MALFORMED},
		{MQTT_PCTX_ACK, "02 00000001", MQTT_RC_MALFORMED},
		{MQTT_PCTX_SUBSCRIBE, "23 0001", MQTT_RC_MALFORMED},
		{MQTT_PCTX_UNSUBSCRIBE, "0b 01", MQTT_RC_MALFORMED},
		{MQTT_PCTX_CONNECT, "01 01", MQTT_RC_MALFORMED},
		{MQTT_PCTX_AUTH, "11 00000000", MQTT_RC_MALFORMED},
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

#include "test_protocol_packets.h"

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
