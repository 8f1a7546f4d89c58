/*
 * broker/api/api_view.c — the API room's one window onto the core: copies broker state into the plain
 * rows of api_int.h (totals, listeners, one client, the $SYS retained messages), checks HTTP Basic
 * credentials with the MQTT password code, and opens / closes the `protocol http_api` listeners.
 *
 * The only file of the room built with the core's include path (see the Makefile): the HTTP, JSON and
 * metrics code sees rows, never struct broker / client / session. Does not: format anything, or change
 * broker state. Invariant: every function is a read, except api_start/api_stop, which own the room.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "bridge/bridge.h"
#include "api_int.h"

void api_view_totals(const struct broker *b, struct api_totals *t)
{
	memset(t, 0, sizeof *t);
	const struct stats *st = &b->st;
	t->clients_connected = st->clients_connected;
	t->sessions = b->n_sessions;
	t->subscriptions = subtree_count(b->subs);
	t->retained = retain_count(b->retained);
	t->uptime_s = (broker_now(b) - b->start_mono) / 1000u;
	t->msgs_received = st->msgs_received;
	t->msgs_sent = st->msgs_sent;
	t->bytes_received = st->bytes_received;
	t->bytes_sent = st->bytes_sent;
	t->keepalive_timeouts = st->keepalive_timeouts;
	t->wills_published = st->wills_published;
	t->connect_timeouts = st->preconnect_timeouts;
	t->clients_total = st->clients_total;
	t->clients_disconnected = st->clients_disconnected;
	t->clients_expired = st->clients_expired;
	t->msgs_dropped = st->pub_dropped;
	t->halfopen_closes = st->halfopen_closes;
	/* Queue figures: one pass over the session table (a few microseconds
	 * per thousand sessions). */
	for (uint32_t i = 0; i < b->stab_size; i++)
		for (const struct session *s = b->stab[i]; s; s = s->hnext) {
			t->msgs_queued += s->queue.count;
			t->bytes_queued += s->queue.bytes;
			t->msgs_inflight += s->inflight.count;
		}
	t->heap_current = b->mem.current;
	t->heap_maximum = b->mem.maximum;
	t->heap_limit = b->mem.limit;
	t->heap_refused = b->mem.refused;
	t->persistence = b->cfg->persistence;
	t->store_writable = store_writable(b);
	t->n_listeners = b->n_listeners;
	t->n_bridges = b->n_bridges;
}

uint64_t api_view_clients_connected(const struct broker *b)
{
	return b->st.clients_connected;
}

bool api_view_bridge(const struct broker *b, size_t i, struct api_bridge_row *row, char *addr, size_t len)
{
	struct bridge_view v;
	if (!bridge_view_get(b, i, &v))
		return false;
	snprintf(addr, len, "%s:%d", v.host ? v.host : "", v.port);
	*row = (struct api_bridge_row){
		.name = v.name, .state = v.state, .address = addr, .up = v.up,
		.connects = v.connects, .disconnects = v.disconnects, .remote_timeouts = v.remote_timeouts,
		.sent = v.sent, .received = v.received, .queued = v.queued,
	};
	return true;
}

bool api_view_listener(const struct broker *b, size_t i, struct api_listener_row *row)
{
	if (i >= b->n_listeners)
		return false;
	const struct listener *l = &b->listeners[i];
	const struct listener_conf *lc = l->conf;
	row->port = lc->port;
	row->bind = lc->unix_path ? lc->unix_path : lc->bind_address;
	row->protocol = lc->http_api ? "http_api" : lc->websockets ? "websockets" : "mqtt";
	row->tls = l->tls != NULL;
	row->connections = l->connections > 0 ? (uint64_t)l->connections : 0;
	row->open = l->nl != NULL;
	if (lc->http_api && b->api)
		for (size_t k = 0; k < b->api->n_ls; k++)
			if (b->api->ls[k].core_listener == l) {
				row->open = b->api->ls[k].nl != NULL;
				row->connections = net_http_connections(b->api->ls[k].nl);
			}
	return true;
}

const void *api_view_client_first(const struct broker *b)
{
	return b->clients;
}

const void *api_view_client_next(const void *cursor)
{
	return cursor ? ((const struct client *)cursor)->next_all : NULL;
}

bool api_view_client_row(const struct broker *b, const void *cursor, struct api_client_row *row)
{
	const struct client *c = cursor;
	if (!c || c->state != CS_CONNECTED || !c->s)
		return false;
	uint64_t now = broker_now(b);
	row->client_id = c->id ? c->id : c->s->id;
	row->address = net_conn_peer(c->conn);
	row->username = c->username;
	row->protocol_version = c->version;
	row->keepalive = c->keepalive;
	row->last_packet_ms_ago = now > c->last_rx ? now - c->last_rx : 0;
	if (c->keepalive == 0 || c->timeout_ms == 0) {
		row->expires_in_ms = -1;
	} else {
		uint64_t deadline = c->last_rx + c->timeout_ms;
		row->expires_in_ms = deadline > now ? (int64_t)(deadline - now) : 0;
	}
	row->will = c->s->will != NULL;
	row->clean = c->clean_start;
	row->bridge = c->bridge != NULL;
	row->listener_port = c->l && c->l->conf ? c->l->conf->port : 0;
	return true;
}

struct sys_walk {
	void (*fn)(const char *topic, const void *val, size_t len, void *ctx);
	void *ctx;
};

static bool sys_one(void *value, void *ctx)
{
	const struct message *m = value;
	struct sys_walk *w = ctx;
	w->fn((const char *)m->topic.p, m->payload.p, m->payload.len, w->ctx);
	return true;
}

void api_view_systree(const struct broker *b, void (*fn)(const char *topic, const void *val, size_t len, void *ctx),
		      void *ctx)
{
	struct sys_walk w = {fn, ctx};
	retain_match(b->retained, mqtt_cstr("$SYS/#"), sys_one, &w);
}

uint64_t api_view_now(const struct broker *b)
{
	return broker_now(b);
}

const char *api_view_version(void)
{
	return VIGIL_VERSION;
}

bool api_view_auth_required(const void *core_listener)
{
	const struct listener *l = core_listener;
	return l->sec->password_file && !l->sec->allow_anonymous;
}

bool api_view_password_ok(const void *core_listener, const char *user, const char *pass)
{
	/* The same decision as for an MQTT CONNECT on that listener. */
	return user && user[0] &&
	       security_password_ok(core_listener, user, (const uint8_t *)pass, pass ? strlen(pass) : 0);
}

/* ---- the room's life ---------------------------------------------------------------------- */

/* websockets_log_level also covers the HTTP API's libwebsockets lines. */
static void lws_line(void *user, const char *line)
{
	size_t n = strlen(line);
	log_msg(user, LOG_F_WEBSOCKETS, "%.*s", (int)(n && line[n - 1] == '\n' ? n - 1 : n), line);
}

int api_start(struct broker *b, char *err, size_t errlen)
{
	size_t n = 0;
	for (size_t i = 0; i < b->n_listeners; i++)
		n += b->listeners[i].conf->http_api;
	if (!n)
		return 0;
	struct api *a = calloc(1, sizeof *a);
	if (!a || !(a->ls = calloc(n, sizeof *a->ls))) {
		free(a);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->b = b;
	b->api = a;
	for (size_t i = 0; i < b->n_listeners; i++) {
		struct listener *l = &b->listeners[i];
		const struct listener_conf *lc = l->conf;
		if (!lc->http_api)
			continue;
		struct api_http_listener *hl = &a->ls[a->n_ls++];
		hl->a = a;
		hl->core_listener = l;
		struct net_listen_opts lo = {
			.bind_address = lc->bind_address,
			.bind_interface = lc->bind_interface,
			.port = lc->port,
			.family = lc->family,
			.kind = NET_HTTP,
			.tls = l->tls,
			.ws_headers_size = b->cfg->websockets_headers_size,
			.ws_log_level = b->cfg->websockets_log_level,
			.ws_log = lws_line,
			.ws_log_user = b,
			.http_max_conns = lc->max_connections, /* -1 (unlimited) means net's default bound */
			.http_cb = api_http_request,
			.http_user = hl,
		};
		hl->nl = net_listen(b->loop, &lo, NULL, hl, err, errlen);
		if (!hl->nl && lc->bind_optional) {
			log_msg(b, LOG_F_WARNING, "Warning: %s (optional listener skipped).", err);
			continue;
		}
		if (!hl->nl)
			return -1;
		log_msg(b, LOG_F_NOTICE, "Opening http_api %s listen socket on %s port %d%s.", l->tls ? "HTTPS" : "HTTP",
			lc->bind_address ? lc->bind_address : "all addresses", net_listener_port(hl->nl),
			api_view_auth_required(l) ? " (Basic auth)" : "");
	}
	return 0;
}

void api_stop(struct broker *b)
{
	struct api *a = b->api;
	if (!a)
		return;
	for (size_t i = 0; i < a->n_ls; i++) {
		net_listener_close(a->ls[i].nl); /* ends its connections: streams are released */
		a->ls[i].nl = NULL;
	}
	b->api = NULL;
	free(a->ls);
	free(a);
}
