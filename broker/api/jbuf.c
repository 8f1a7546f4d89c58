/*
 * broker/api/jbuf.c — a growable output buffer and vigil's one JSON string writer, used by the HTTP
 * API (broker/api/) and the JSON log lines (log.c, log_format json).
 *
 * Why not a JSON library: vigil only writes JSON, a few flat objects; the one subtle part is string
 * escaping (client ids and $SYS values are arbitrary bytes), done here in one function with its own
 * unit suite (tests/unit/test_jbuf.c). Does not: parse JSON. Invariant: jb_str always produces a valid
 * JSON string in UTF-8 whatever bytes it is given; after a failed allocation j->oom is set and every
 * later append is dropped, so a caller checks oom once at the end instead of after every call.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jbuf.h"

void jb_init_buf(struct jbuf *j, char *buf, size_t cap)
{
	*j = (struct jbuf){.p = buf, .cap = cap, .borrowed = true};
	buf[0] = '\0';
}

void jb_free(struct jbuf *j)
{
	if (!j->borrowed)
		free(j->p);
	*j = (struct jbuf){0};
}

static bool jb_room(struct jbuf *j, size_t n)
{
	if (j->oom)
		return false;
	if (j->len + n + 1 <= j->cap)
		return true;
	size_t cap = j->cap ? j->cap : 1024;
	while (cap < j->len + n + 1)
		cap *= 2;
	char *p = j->borrowed ? malloc(cap) : realloc(j->p, cap);
	if (!p) {
		j->oom = true;
		return false;
	}
	if (j->borrowed)
		memcpy(p, j->p, j->len + 1);
	j->borrowed = false;
	j->p = p;
	j->cap = cap;
	return true;
}

void jb_put(struct jbuf *j, const char *s, size_t n)
{
	if (!jb_room(j, n))
		return;
	memcpy(j->p + j->len, s, n);
	j->len += n;
	j->p[j->len] = '\0';
}

void jb_puts(struct jbuf *j, const char *s)
{
	jb_put(j, s, strlen(s));
}

void jb_printf(struct jbuf *j, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0) {
		j->oom = true;
		return;
	}
	if ((size_t)n < sizeof tmp) {
		jb_put(j, tmp, (size_t)n);
		return;
	}
	if (!jb_room(j, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(j->p + j->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	j->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t k;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		k = 2, min = 0x80;
	else if (c >= 0xE0 && c <= 0xEF)
		k = 3, min = 0x800;
	else if (c >= 0xF0 && c <= 0xF4)
		k = 4, min = 0x10000;
	else
		return 0;
	if (n < k)
		return 0;
	unsigned cp = c & (0xFF >> (k + 1));
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return k;
}

void jb_str(struct jbuf *j, const char *str, size_t n)
{
	if (!str) {
		jb_puts(j, "null");
		return;
	}
	const unsigned char *s = (const unsigned char *)str;
	jb_put(j, "\"", 1);
	size_t run = 0; /* bytes copied as they are, flushed in one put */
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		const char *esc = NULL;
		char ubuf[8];
		size_t k = 1;
		if (c == '"')
			esc = "\\\"";
		else if (c == '\\')
			esc = "\\\\";
		else if (c == '\n')
			esc = "\\n";
		else if (c == '\r')
			esc = "\\r";
		else if (c == '\t')
			esc = "\\t";
		else if (c < 0x20 || c == 0x7F) {
			snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
			esc = ubuf;
		} else if (c == '/' && i > 0 && s[i - 1] == '<')
			esc = "\\/";
		else if (c >= 0x80 && !(k = utf8_len(s + i, n - i))) {
			esc = "\\ufffd";
			k = 1;
		}
		if (!esc) {
			i += k;
			run += k;
			continue;
		}
		jb_put(j, (const char *)s + i - run, run);
		run = 0;
		jb_puts(j, esc);
		i += k;
	}
	jb_put(j, (const char *)s + n - run, run);
	jb_put(j, "\"", 1);
}

void jb_cstr(struct jbuf *j, const char *s)
{
	jb_str(j, s, s ? strlen(s) : 0);
}
