/*
 * protocol/codec.h — internal helpers shared by the protocol/ sources only
 * (never included outside protocol/): a bounds-checked reader over a frame
 * body and a counting writer with snprintf semantics.
 *
 * Invariant: a reader never looks at p[len] or beyond; a writer never stores
 * at buf[cap] or beyond but keeps counting, so `len` is always the size the
 * whole output needs.
 */
#ifndef VIGIL_CODEC_H
#define VIGIL_CODEC_H

#include <string.h>

#include "mqtt.h"

#define MQTT_VBI_MAX 268435455u
#define MQTT_STR_MAX 65535u

/* ---- reader ---------------------------------------------------------------- */

struct mqtt_rd {
	const uint8_t *p;
	size_t len, off;
};

static inline struct mqtt_rd mqtt_rd_frame(const struct mqtt_frame *f)
{
	return (struct mqtt_rd){f->body, f->len, 0};
}

static inline size_t mqtt_rd_left(const struct mqtt_rd *r)
{
	return r->len - r->off;
}

static inline const uint8_t *mqtt_rd_cur(const struct mqtt_rd *r)
{
	return r->p + r->off;
}

static inline bool mqtt_rd_u8(struct mqtt_rd *r, uint8_t *v)
{
	if (mqtt_rd_left(r) < 1)
		return false;
	*v = r->p[r->off++];
	return true;
}

static inline bool mqtt_rd_u16(struct mqtt_rd *r, uint16_t *v)
{
	if (mqtt_rd_left(r) < 2)
		return false;
	*v = (uint16_t)((r->p[r->off] << 8) | r->p[r->off + 1]);
	r->off += 2;
	return true;
}

static inline bool mqtt_rd_u32(struct mqtt_rd *r, uint32_t *v)
{
	if (mqtt_rd_left(r) < 4)
		return false;
	const uint8_t *q = r->p + r->off;
	*v = ((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) | q[3];
	r->off += 4;
	return true;
}

/* Two-byte length then that many bytes (string or binary data). */
static inline bool mqtt_rd_bin(struct mqtt_rd *r, struct mqtt_str *s)
{
	uint16_t n;
	if (!mqtt_rd_u16(r, &n) || mqtt_rd_left(r) < n)
		return false;
	s->p = r->p + r->off;
	s->len = n;
	r->off += n;
	return true;
}

/* ---- writer ---------------------------------------------------------------- */

struct mqtt_wr {
	uint8_t *buf;
	size_t cap, len;
};

static inline void mqtt_wr_u8(struct mqtt_wr *w, uint8_t v)
{
	if (w->len < w->cap)
		w->buf[w->len] = v;
	w->len++;
}

static inline void mqtt_wr_u16(struct mqtt_wr *w, uint16_t v)
{
	mqtt_wr_u8(w, (uint8_t)(v >> 8));
	mqtt_wr_u8(w, (uint8_t)v);
}

static inline void mqtt_wr_bytes(struct mqtt_wr *w, const uint8_t *p, size_t n)
{
	if (n && w->len < w->cap) {
		size_t room = w->cap - w->len;
		memcpy(w->buf + w->len, p, n < room ? n : room);
	}
	w->len += n;
}

static inline void mqtt_wr_vbi(struct mqtt_wr *w, uint32_t v)
{
	uint8_t tmp[4];
	int n = mqtt_vbi_encode(v, tmp);
	mqtt_wr_bytes(w, tmp, (size_t)n);
}

/* Two-byte length prefix then the bytes; the caller checked len <= 65535. */
static inline void mqtt_wr_str(struct mqtt_wr *w, struct mqtt_str s)
{
	mqtt_wr_u16(w, (uint16_t)s.len);
	mqtt_wr_bytes(w, s.p, s.len);
}

/* Fixed header for a body of `rl` bytes. Returns the total packet size. */
static inline size_t mqtt_wr_header(struct mqtt_wr *w, uint8_t byte0, size_t rl)
{
	mqtt_wr_u8(w, byte0);
	mqtt_wr_vbi(w, (uint32_t)rl);
	return 1 + (size_t)mqtt_vbi_size((uint32_t)rl) + rl;
}

/* Size of a v5 property block with its length prefix. */
static inline size_t mqtt_props_wire(struct mqtt_str props)
{
	return (size_t)mqtt_vbi_size(props.len) + props.len;
}

static inline void mqtt_wr_props(struct mqtt_wr *w, struct mqtt_str props)
{
	mqtt_wr_vbi(w, props.len);
	mqtt_wr_bytes(w, props.p, props.len);
}

#endif
