/*
 * broker/cluster/subject.c — MQTT topics and filters as NATS subjects, and
 * the envelope a message travels in between nodes.
 *
 * Every topic level becomes one subject token "_" + the level with each
 * byte outside [A-Za-z0-9_-] written as %XX, so empty levels, '.', spaces,
 * '*', '>' and non-ASCII bytes all survive, and a literal token never looks
 * like a wildcard ("*", ">": the filter's '+' and '#'). The mapping is
 * injective and keeps MQTT's level structure, so NATS wildcard matching
 * selects a superset of the MQTT matches (the receiving node's own
 * subscription tree decides exactly; e.g. '#' there never matches "$SYS").
 * Not here: which subjects are subscribed (xroute.c).
 * Invariant: the output is NUL-terminated and never longer than CL_SUBJ_MAX.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"

static const char HEX[] = "0123456789ABCDEF";

static bool safe(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Appends "_" + escaped s at out[*n]; false when it does not fit. */
static bool put_token(char *out, size_t cap, size_t *n, const uint8_t *s, size_t len)
{
	if (*n + 1 >= cap)
		return false;
	out[(*n)++] = '_';
	for (size_t i = 0; i < len; i++) {
		if (safe(s[i])) {
			if (*n + 1 >= cap)
				return false;
			out[(*n)++] = (char)s[i];
		} else {
			if (*n + 3 >= cap)
				return false;
			out[(*n)++] = '%';
			out[(*n)++] = HEX[s[i] >> 4];
			out[(*n)++] = HEX[s[i] & 15];
		}
	}
	return true;
}

int subject_topic(char *out, size_t cap, const char *prefix, const uint8_t *t, size_t len, bool filter)
{
	if (cap > CL_SUBJ_MAX + 1)
		cap = CL_SUBJ_MAX + 1;
	size_t n = strlen(prefix);
	if (n >= cap)
		return -1;
	memcpy(out, prefix, n);
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && t[i] != '/')
			continue;
		const uint8_t *lv = t + start;
		size_t ll = i - start;
		if (n + 2 >= cap)
			return -1;
		out[n++] = '.';
		if (filter && ll == 1 && (lv[0] == '+' || lv[0] == '#'))
			out[n++] = lv[0] == '+' ? '*' : '>';
		else if (!put_token(out, cap, &n, lv, ll))
			return -1;
		start = i + 1;
	}
	out[n] = 0;
	return (int)n;
}

int subject_token(char *out, size_t cap, const uint8_t *s, size_t len)
{
	if (cap > CL_SUBJ_MAX + 1)
		cap = CL_SUBJ_MAX + 1;
	size_t n = 0;
	if (!put_token(out, cap, &n, s, len))
		return -1;
	out[n] = 0;
	return (int)n;
}

/* ---- envelope ------------------------------------------------------------------
 * u8 version (1), u8 flags, u64 inst, u64 seq, u64 expiry_wall, u32 rel_expiry, u32 delay,
 * u16 topic, u16 id, u16 user, u32 props (lengths, then the bytes), payload = rest.
 * Integers little-endian. */

#define ENV_HDR (1 + 1 + 8 + 8 + 8 + 4 + 4 + 2 + 2 + 2 + 4)

static uint8_t *put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint8_t *env_encode(const struct cl_env *e, size_t *len)
{
	if (e->topic.len > 65535 || e->id.len > 65535 || e->user.len > 65535 || e->props.len > UINT32_MAX)
		return NULL;
	size_t n = ENV_HDR + e->topic.len + e->id.len + e->user.len + e->props.len + e->payload.len;
	uint8_t *buf = malloc(n), *p = buf;
	if (!buf)
		return NULL;
	*p++ = 1;
	*p++ = e->flags;
	p = put_le(p, e->inst, 8);
	p = put_le(p, e->seq, 8);
	p = put_le(p, e->expiry_wall, 8);
	p = put_le(p, e->rel_expiry, 4);
	p = put_le(p, e->delay, 4);
	p = put_le(p, e->topic.len, 2);
	p = put_le(p, e->id.len, 2);
	p = put_le(p, e->user.len, 2);
	p = put_le(p, e->props.len, 4);
	const struct mqtt_str *parts[] = {&e->topic, &e->id, &e->user, &e->props, &e->payload};
	for (size_t i = 0; i < 5; i++) {
		if (parts[i]->len)
			memcpy(p, parts[i]->p, parts[i]->len);
		p += parts[i]->len;
	}
	*len = n;
	return buf;
}

int env_decode(const uint8_t *p, size_t len, struct cl_env *e)
{
	if (len < ENV_HDR || p[0] != 1)
		return -1;
	e->flags = p[1];
	e->inst = get_le(p + 2, 8);
	e->seq = get_le(p + 10, 8);
	e->expiry_wall = get_le(p + 18, 8);
	e->rel_expiry = (uint32_t)get_le(p + 26, 4);
	e->delay = (uint32_t)get_le(p + 30, 4);
	size_t tl = get_le(p + 34, 2), il = get_le(p + 36, 2), ul = get_le(p + 38, 2), pl = get_le(p + 40, 4);
	size_t off = ENV_HDR;
	if (tl + il + ul + pl > len - off)
		return -1;
	e->topic = (struct mqtt_str){p + off, (uint32_t)tl};
	off += tl;
	e->id = (struct mqtt_str){p + off, (uint32_t)il};
	off += il;
	e->user = (struct mqtt_str){p + off, (uint32_t)ul};
	off += ul;
	e->props = (struct mqtt_str){p + off, (uint32_t)pl};
	off += pl;
	e->payload = (struct mqtt_str){p + off, (uint32_t)(len - off)};
	return 0;
}
