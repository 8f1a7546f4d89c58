/*
 * broker/api/api_json.c — the JSON views: health, the $SYS tree, one client row (written with jbuf.c).
 *
 * Does not: read broker state other than through api_view_*. Invariant: output is valid JSON whatever
 * bytes the strings hold; on allocation failure j->oom is set and the caller answers 503 instead of
 * sending a truncated document.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api_int.h"

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
