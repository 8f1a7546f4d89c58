/*
 * broker/api/api_json.c — a small JSON writer (growable buffer, string escaping) and the JSON views:
 * health, $SYS tree, one client row.
 *
 * Why not a JSON library: the API only writes JSON, a few flat objects; the one subtle part is string
 * escaping (client ids and $SYS values are arbitrary bytes), done here in one tested function. Does not:
 * parse JSON, or read broker state other than through api_view_*. Invariant: output is always valid
 * JSON in UTF-8 whatever bytes the strings hold; on allocation failure j->oom is set and the caller
 * answers 503 instead of sending a truncated document.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"

void jb_free(struct jbuf *j)
{
	free(j->p);
	j->p = NULL;
	j->len = j->cap = 0;
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
	char *p = realloc(j->p, cap);
	if (!p) {
		j->oom = true;
		return false;
	}
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

void api_health_json(const struct api *a, struct jbuf *j)
{
	struct api_totals t;
	api_view_totals(a->b, &t);
	jb_printf(j, "{\"status\": \"ok\", \"version\": \"%s\", \"uptime_seconds\": %" PRIu64, api_view_version(),
		  t.uptime_s);
	jb_printf(j, ", \"clients_connected\": %" PRIu64 ", \"sessions\": %" PRIu64 ", \"subscriptions\": %" PRIu64
		     ", \"retained_messages\": %" PRIu64,
		  t.clients_connected, t.sessions, t.subscriptions, t.retained);
	jb_printf(j, ", \"messages_received\": %" PRIu64 ", \"messages_sent\": %" PRIu64 ", \"keepalive_timeouts\": %" PRIu64
		     ", \"wills_published\": %" PRIu64 ", \"connect_timeouts\": %" PRIu64 "}\n",
		  t.msgs_received, t.msgs_sent, t.keepalive_timeouts, t.wills_published, t.connect_timeouts);
}

struct sys_ctx {
	struct jbuf *j;
	bool first;
};

static void sys_one(const char *topic, const void *val, size_t len, void *ctx)
{
	struct sys_ctx *c = ctx;
	jb_puts(c->j, c->first ? "\n  " : ",\n  ");
	c->first = false;
	jb_cstr(c->j, topic);
	jb_puts(c->j, ": ");
	jb_str(c->j, val, len);
}

void api_systree_json(const struct api *a, struct jbuf *j)
{
	struct sys_ctx c = {j, true};
	jb_puts(j, "{");
	api_view_systree(a->b, sys_one, &c);
	jb_puts(j, c.first ? "}\n" : "\n}\n");
}

void api_client_json(struct jbuf *j, const struct api_client_row *r)
{
	jb_puts(j, "{\"client_id\": ");
	jb_cstr(j, r->client_id);
	jb_puts(j, ", \"address\": ");
	jb_cstr(j, r->address);
	jb_printf(j, ", \"protocol_version\": %d, \"keepalive\": %u, \"last_packet_ms_ago\": %" PRIu64 ", \"expires_in_ms\": ",
		  r->protocol_version, r->keepalive, r->last_packet_ms_ago);
	if (r->expires_in_ms < 0)
		jb_puts(j, "null");
	else
		jb_printf(j, "%" PRId64, r->expires_in_ms);
	jb_printf(j, ", \"will\": %s, \"username\": ", r->will ? "true" : "false");
	jb_cstr(j, r->username);
	jb_printf(j, ", \"clean\": %s, \"bridge\": %s, \"listener_port\": %d}", r->clean ? "true" : "false",
		  r->bridge ? "true" : "false", r->listener_port);
}
