/*
 * broker/api/api_events.c — the ring of recent events the status page shows (keepalive timeouts, wills
 * published), fed by named calls from the core, and the cursor fix-up for client listings being
 * streamed when a client leaves the core's list.
 *
 * Does not: log (log.c does), count (struct stats does), or read broker state. Invariant: the ring holds
 * the last API_EVENTS events; fixed-size slots, no allocation, so recording cannot fail or slow the
 * keepalive path by more than a copy.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api_int.h"

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct api_event *ev_new(struct api *a, enum api_event_type type, const char *id)
{
	struct api_event *e = &a->ev[a->ev_seq % API_EVENTS];
	memset(e, 0, sizeof *e);
	e->seq = ++a->ev_seq;
	e->type = type;
	e->wall_ms = wall_ms();
	snprintf(e->client_id, sizeof e->client_id, "%s", id ? id : "");
	return e;
}

void api_note_keepalive_timeout(struct api *a, const char *client_id, const char *peer, unsigned keepalive,
				uint64_t silent_ms)
{
	if (!a)
		return;
	struct api_event *e = ev_new(a, API_EV_KEEPALIVE, client_id);
	snprintf(e->peer, sizeof e->peer, "%s", peer ? peer : "");
	e->keepalive = keepalive;
	e->silent_ms = silent_ms;
}

void api_note_will(struct api *a, const char *client_id, const char *topic)
{
	if (!a)
		return;
	struct api_event *e = ev_new(a, API_EV_WILL, client_id);
	snprintf(e->topic, sizeof e->topic, "%s", topic ? topic : "");
}

void api_client_gone(struct api *a, const void *client, const void *next)
{
	if (!a)
		return;
	for (struct api_stream *s = a->streams; s; s = s->next)
		if (s->cursor == client)
			s->cursor = next;
}

size_t api_events_json(const struct api *a, struct jbuf *j, size_t max)
{
	size_t n = a->ev_seq < API_EVENTS ? (size_t)a->ev_seq : API_EVENTS;
	if (n > max)
		n = max;
	jb_puts(j, "[");
	for (size_t i = 0; i < n; i++) { /* newest first */
		const struct api_event *e = &a->ev[(a->ev_seq - 1 - i) % API_EVENTS];
		jb_printf(j, "%s\n  {\"seq\": %llu, \"time_ms\": %llu, \"type\": \"%s\", \"client_id\": ", i ? "," : "",
			  (unsigned long long)e->seq, (unsigned long long)e->wall_ms,
			  e->type == API_EV_KEEPALIVE ? "keepalive_timeout" : "will");
		jb_cstr(j, e->client_id);
		if (e->type == API_EV_KEEPALIVE) {
			jb_puts(j, ", \"address\": ");
			jb_cstr(j, e->peer);
			jb_printf(j, ", \"keepalive\": %u, \"silent_ms\": %llu}", e->keepalive,
				  (unsigned long long)e->silent_ms);
		} else {
			jb_puts(j, ", \"topic\": ");
			jb_cstr(j, e->topic);
			jb_puts(j, "}");
		}
	}
	jb_puts(j, n ? "\n]\n" : "]\n");
	return n;
}
