/*
 * protocol/utf8.c — MQTT string rules: UTF-8 validity, topic name and topic
 * filter syntax, shared subscription splitting and topic matching.
 *
 * Does not normalise anything (v311/v5 MQTT-4.7.3-4: topics are compared as
 * received; a BOM EF BB BF is an ordinary character, v5 MQTT-1.5.4-3) and
 * does not strip "$share/<group>/" before matching: callers split first.
 *
 * Invariant: every function reads only s.p[0 .. s.len).
 */
#include "codec.h"

/* Eight bytes at once: none has the high bit set and none is zero. */
static bool ascii8(const uint8_t *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof(w));
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	return (w & highs) == 0 && ((w - ones) & ~w & highs) == 0;
}

bool mqtt_utf8_valid(const uint8_t *p, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if (len - i >= 8 && ascii8(p + i)) {
			i += 8; /* the common case: plain ASCII, no U+0000 */
			continue;
		}
		uint8_t c = p[i];
		if (c < 0x80) {
			if (c == 0)
				return false; /* v311 MQTT-1.5.3-2, v5 MQTT-1.5.4-2 */
			i++;
			continue;
		}
		size_t n;
		uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
		if (c >= 0xC2 && c <= 0xDF) {
			n = 2;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 3;
			if (c == 0xE0)
				lo = 0xA0; /* overlong */
			else if (c == 0xED)
				hi = 0x9F; /* U+D800..U+DFFF surrogates */
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 4;
			if (c == 0xF0)
				lo = 0x90; /* overlong */
			else if (c == 0xF4)
				hi = 0x8F; /* above U+10FFFF */
		} else {
			return false; /* continuation byte, C0/C1 overlong, F5..FF */
		}
		if (len - i < n)
			return false;
		if (p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t k = 2; k < n; k++)
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
		i += n;
	}
	return true;
}

/* Eight bytes of a topic name at once: ascii8() and no '+' or '#'. */
static bool topic8(const uint8_t *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof(w));
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	const uint64_t plus = w ^ (ones * '+'), hash = w ^ (ones * '#'); /* zero bytes where they are */
	uint64_t zeros = ((w - ones) & ~w) | ((plus - ones) & ~plus) | ((hash - ones) & ~hash);
	return (w & highs) == 0 && (zeros & highs) == 0;
}

static bool has_byte(struct mqtt_str s, uint8_t b)
{
	return s.len && memchr(s.p, b, s.len) != NULL;
}

bool mqtt_topic_name_valid(struct mqtt_str t)
{
	/* v311/v5 MQTT-4.7.3-1 non-empty, MQTT-4.7.3-3 length, v311 MQTT-4.7.1-1 /
	 * v5 MQTT-4.7.0-1 no wildcards. */
	if (t.len == 0 || t.len > MQTT_STR_MAX)
		return false;
	size_t i = 0;
	while (t.len - i >= 8 && topic8(t.p + i))
		i += 8; /* the common case, one pass; an ASCII block ends no UTF-8 sequence */
	struct mqtt_str rest = {t.p + i, t.len - i};
	if (has_byte(rest, '+') || has_byte(rest, '#'))
		return false;
	return mqtt_utf8_valid(rest.p, rest.len);
}

/* Wildcard placement: v311 MQTT-4.7.1-2/3, v5 MQTT-4.7.1-1/2. */
static bool filter_syntax_ok(const uint8_t *p, size_t len)
{
	if (len == 0)
		return false;
	size_t start = 0; /* start of the current level */
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '/') {
			start = i + 1;
		} else if (p[i] == '+') {
			if (i != start || (i + 1 < len && p[i + 1] != '/'))
				return false;
		} else if (p[i] == '#') {
			if (i != start || i + 1 != len)
				return false;
		}
	}
	return true;
}

static const char share_prefix[] = "$share/";
#define SHARE_PREFIX_LEN (sizeof(share_prefix) - 1)

static bool is_share(struct mqtt_str f)
{
	return f.len >= SHARE_PREFIX_LEN && memcmp(f.p, share_prefix, SHARE_PREFIX_LEN) == 0;
}

bool mqtt_share_split(struct mqtt_str f, struct mqtt_str *group, struct mqtt_str *filter)
{
	if (!is_share(f))
		return false;
	const uint8_t *g = f.p + SHARE_PREFIX_LEN;
	size_t rest = f.len - SHARE_PREFIX_LEN;
	const uint8_t *slash = rest ? memchr(g, '/', rest) : NULL;
	if (!slash)
		return false;
	group->p = g;
	group->len = (uint32_t)(slash - g);
	filter->p = slash + 1;
	filter->len = (uint32_t)(rest - group->len - 1);
	return true;
}

bool mqtt_topic_filter_valid(struct mqtt_str f, bool shared_ok)
{
	if (f.len == 0 || f.len > MQTT_STR_MAX || !mqtt_utf8_valid(f.p, f.len))
		return false;
	if (shared_ok && is_share(f)) {
		/* v5 4.8.2: "$share/" ShareName "/" filter; the ShareName is at
		 * least one character and holds no '/', '+' or '#'. */
		struct mqtt_str g, sub;
		if (!mqtt_share_split(f, &g, &sub))
			return false;
		if (g.len == 0 || has_byte(g, '+') || has_byte(g, '#'))
			return false;
		return filter_syntax_ok(sub.p, sub.len);
	}
	return filter_syntax_ok(f.p, f.len);
}

/* End of the level starting at i. */
static size_t level_end(struct mqtt_str s, size_t i)
{
	const uint8_t *q = i < s.len ? memchr(s.p + i, '/', s.len - i) : NULL;
	return q ? (size_t)(q - s.p) : s.len;
}

bool mqtt_topic_matches(struct mqtt_str filter, struct mqtt_str topic)
{
	if (filter.len == 0 || topic.len == 0)
		return false;
	/* v311/v5 MQTT-4.7.2-1: a first-level wildcard never matches '$' topics. */
	if (topic.p[0] == '$' && (filter.p[0] == '+' || filter.p[0] == '#'))
		return false;
	size_t fi = 0, ti = 0;
	bool topic_done = false;
	for (;;) {
		size_t fe = level_end(filter, fi);
		size_t flen = fe - fi;
		if (flen == 1 && filter.p[fi] == '#')
			return true; /* matches this level, deeper ones and the parent */
		if (topic_done)
			return false;
		size_t te = level_end(topic, ti);
		if (!(flen == 1 && filter.p[fi] == '+')) {
			if (flen != te - ti || memcmp(filter.p + fi, topic.p + ti, flen) != 0)
				return false;
		}
		bool f_last = fe == filter.len, t_last = te == topic.len;
		if (f_last)
			return t_last;
		if (t_last)
			topic_done = true; /* only a trailing "/#" can still match */
		fi = fe + 1;
		ti = te + 1;
	}
}
