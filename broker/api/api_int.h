/*
 * broker/api/api_int.h — inside the API room. Everything here is plain data: the core's structs are read
 * only by api_view.c (the one file of the room built with the core's include path) and copied into these
 * rows, so the HTTP, JSON and metrics code cannot reach broker state.
 */
#ifndef VIGIL_API_INT_H
#define VIGIL_API_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "jbuf.h"
#include "net.h"

#define API_EVENTS 64 /* recent events kept for the status page */

/* struct jbuf and the JSON string writer: jbuf.h */

/* ---- the read-only view of the broker (api_view.c) ---- */
struct api_totals {
	uint64_t clients_connected, sessions, subscriptions, retained, uptime_s;
	uint64_t msgs_received, msgs_sent, bytes_received, bytes_sent, keepalive_timeouts, wills_published,
		connect_timeouts, clients_total, clients_disconnected, clients_expired, msgs_dropped, halfopen_closes;
	uint64_t msgs_queued, msgs_inflight, bytes_queued;
	uint64_t heap_current, heap_maximum, heap_limit, heap_refused;
	bool persistence, store_writable;
	size_t n_listeners, n_bridges;
};
struct api_listener_row {
	int port;
	const char *bind;     /* NULL = any */
	const char *protocol; /* "mqtt", "websockets", "http_api" */
	bool tls, open;
	uint64_t connections;
};
struct api_bridge_row {
	const char *name, *state, *address; /* address "host:port" in the caller's buffer */
	bool up;
	uint64_t connects, disconnects, remote_timeouts, sent, received, queued;
};
struct api_client_row {
	const char *client_id, *address, *username; /* username NULL: none */
	int protocol_version;
	unsigned keepalive;
	uint64_t last_packet_ms_ago;
	int64_t expires_in_ms; /* -1: no deadline (keepalive 0) */
	bool will, clean, bridge;
	int listener_port;
};
/* One snapshot of every figure (walks the session table for the queue
 * figures: O(sessions)). */
void api_view_totals(const struct broker *b, struct api_totals *t);
uint64_t api_view_clients_connected(const struct broker *b); /* O(1) */
/* Row i (0-based) of the listeners; false past the end. */
bool api_view_listener(const struct broker *b, size_t i, struct api_listener_row *row);
/* Row i (0-based) of the bridges; false past the end. addr (len bytes)
 * receives the current remote address. */
bool api_view_bridge(const struct broker *b, size_t i, struct api_bridge_row *row, char *addr, size_t len);
/* Client list cursor: an opaque position in the core's list (newest first).
 * first/next return NULL at the end; row() fills row and returns false for
 * a connection that is not a connected MQTT client (pre-CONNECT, closing). */
const void *api_view_client_first(const struct broker *b);
const void *api_view_client_next(const void *cursor);
bool api_view_client_row(const struct broker *b, const void *cursor, struct api_client_row *row);
/* Each retained message under $SYS, in topic order of the tree. */
void api_view_systree(const struct broker *b, void (*fn)(const char *topic, const void *val, size_t len, void *ctx),
		      void *ctx);
/* The broker's clock (monotonic ms) and version. */
uint64_t api_view_now(const struct broker *b);
const char *api_view_version(void);

/* ---- recent events (api_events.c) ---- */
enum api_event_type { API_EV_KEEPALIVE = 1, API_EV_WILL = 2 };
struct api_event {
	uint64_t seq, wall_ms, silent_ms;
	enum api_event_type type;
	unsigned keepalive;
	char client_id[128], peer[64], topic[128];
};

/* ---- the room ---- */
struct api_stream;
struct api_http_listener {
	struct api *a;
	struct net_listener *nl;
	const void *core_listener; /* the core's struct listener (auth), opaque here */
};
struct api {
	struct broker *b;
	struct api_http_listener *ls;
	size_t n_ls;
	struct api_event ev[API_EVENTS];
	uint64_t ev_seq; /* events ever recorded; the newest is ev[(ev_seq - 1) % API_EVENTS] */
	struct api_stream *streams; /* client listings being streamed */
	uint64_t requests, unauthorized;
};
struct api_stream {
	struct api *a;
	struct api_stream *next, *prev;
	const void *cursor; /* next client to visit; NULL: the end */
	uint64_t skip, left; /* offset still to skip, limit left */
	uint64_t emitted;
	bool opened, closed;
	struct jbuf pend;   /* rendered, not yet handed to net */
	size_t pend_off;
};

/* api_events.c */
size_t api_events_json(const struct api *a, struct jbuf *j, size_t max);
/* api_view.c: auth for an HTTP listener. Required while its security
 * settings have a password_file and allow_anonymous false (read per
 * request: SIGHUP may change them); checked by the MQTT password code. */
bool api_view_auth_required(const void *core_listener);
bool api_view_password_ok(const void *core_listener, const char *user, const char *pass);
/* api_metrics.c */
void api_metrics_text(const struct api *a, struct jbuf *j);
/* api_json.c */
void api_health_json(const struct api *a, struct jbuf *j);
void api_systree_json(const struct api *a, struct jbuf *j);
void api_client_json(struct jbuf *j, const struct api_client_row *r);
/* api_http.c: the request handler (net_http_cb) */
void api_http_request(struct net_http_req *r, void *user);
/* api_page.c */
extern const char api_page_html[];

#endif
