/*
 * broker/api/api_metrics.c — GET /metrics: the Prometheus text exposition format 0.0.4.
 *
 * Every family has its # HELP and # TYPE lines; counters end in _total, sizes in _bytes, times in
 * _seconds; label values are escaped as the format says. The figures come from api_view_totals (one
 * snapshot per scrape), so they are consistent with each other. Does not: keep history, or export
 * per-client series (a fleet would explode the cardinality: /api/v1/clients is for that).
 */
#include <inttypes.h>
#include <string.h>

#include "api_int.h"

static void family(struct jbuf *j, const char *name, const char *type, const char *help)
{
	jb_printf(j, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct jbuf *j, const char *name, const char *type, const char *help, uint64_t v)
{
	family(j, name, type, help);
	jb_printf(j, "%s %" PRIu64 "\n", name, v);
}

/* A label value: backslash, double quote and newline escaped. */
static void label_value(struct jbuf *j, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '\\')
			jb_puts(j, "\\\\");
		else if (*s == '"')
			jb_puts(j, "\\\"");
		else if (*s == '\n')
			jb_puts(j, "\\n");
		else
			jb_put(j, s, 1);
	}
}

/* Per bridge, labelled bridge="NAME": one family at a time (the format
 * wants a family's samples together), so the rows are read once per family. */
static void bridge_families(const struct api *a, struct jbuf *j)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{"vigil_bridge_up", "gauge", "1 while the bridge's connection to its remote is up (CONNACK accepted), else 0."},
		{"vigil_bridge_connects_total", "counter", "Connections of the bridge accepted by its remote."},
		{"vigil_bridge_disconnects_total", "counter", "Connections of the bridge lost, for any reason."},
		{"vigil_bridge_remote_timeouts_total", "counter", "Remote declared dead after 1.5 x keepalive_interval of silence."},
		{"vigil_bridge_messages_sent_total", "counter", "PUBLISH packets the bridge sent to its remote."},
		{"vigil_bridge_messages_received_total", "counter", "PUBLISH packets the bridge received from its remote."},
		{"vigil_bridge_messages_queued", "gauge", "Messages waiting for the remote (in flight and queued)."},
	};
	struct api_bridge_row r;
	char addr[300];
	if (!api_view_bridge(a->b, 0, &r, addr, sizeof(addr)))
		return;
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		family(j, fam[f].name, fam[f].type, fam[f].help);
		for (size_t i = 0; api_view_bridge(a->b, i, &r, addr, sizeof(addr)); i++) {
			uint64_t v[] = {r.up, r.connects, r.disconnects, r.remote_timeouts, r.sent, r.received, r.queued};
			jb_printf(j, "%s{bridge=\"", fam[f].name);
			label_value(j, r.name);
			if (f == 0) {
				jb_puts(j, "\",state=\"");
				label_value(j, r.state);
				jb_puts(j, "\",address=\"");
				label_value(j, r.address);
			}
			jb_printf(j, "\"} %" PRIu64 "\n", v[f]);
		}
	}
}

void api_metrics_text(const struct api *a, struct jbuf *j)
{
	struct api_totals t;
	api_view_totals(a->b, &t);
	const char *G = "gauge", *C = "counter";
	sample(j, "vigil_clients_connected", G, "MQTT clients connected now (bridges' own connections included).", t.clients_connected);
	sample(j, "vigil_sessions", G, "Sessions held, connected or not.", t.sessions);
	sample(j, "vigil_subscriptions", G, "Subscriptions, shared-subscription members included.", t.subscriptions);
	sample(j, "vigil_retained_messages", G, "Retained messages, $SYS included.", t.retained);
	sample(j, "vigil_uptime_seconds", G, "Seconds since the broker started.", t.uptime_s);
	sample(j, "vigil_messages_received_total", C, "PUBLISH packets received from clients.", t.msgs_received);
	sample(j, "vigil_messages_sent_total", C, "PUBLISH packets sent to clients.", t.msgs_sent);
	sample(j, "vigil_bytes_received_total", C, "Bytes of MQTT packets received.", t.bytes_received);
	sample(j, "vigil_bytes_sent_total", C, "Bytes of MQTT packets sent.", t.bytes_sent);
	sample(j, "vigil_keepalive_timeouts_total", C, "Clients closed after 1.5 x keepalive of silence.",
	       t.keepalive_timeouts);
	sample(j, "vigil_wills_published_total", C, "Will messages published.", t.wills_published);
	sample(j, "vigil_connect_timeouts_total", C, "Sockets closed because no CONNECT arrived in time.",
	       t.connect_timeouts);
	sample(j, "vigil_connections_total", C, "MQTT connections accepted with CONNACK success.", t.clients_total);
	sample(j, "vigil_disconnects_total", C, "Clients that ended with a DISCONNECT packet.", t.clients_disconnected);
	sample(j, "vigil_sessions_expired_total", C, "Sessions removed by session expiry.", t.clients_expired);
	sample(j, "vigil_messages_dropped_total", C,
	       "Messages dropped (queue limits, memory_limit, expiry, refused QoS 1/2 while the store cannot write).",
	       t.msgs_dropped);
	sample(j, "vigil_halfopen_closes_total", C, "Keepalive closes of peers that still had unsent data (half-open).",
	       t.halfopen_closes);
	sample(j, "vigil_messages_queued", G, "Messages queued for sessions (offline or window full).", t.msgs_queued);
	sample(j, "vigil_messages_queued_bytes", G, "Payload bytes queued for sessions.", t.bytes_queued);
	sample(j, "vigil_messages_inflight", G, "QoS 1/2 messages sent and not yet acknowledged.", t.msgs_inflight);
	sample(j, "vigil_heap_bytes", G, "Bytes the broker holds for its load (memory_limit accounting).",
	       t.heap_current);
	sample(j, "vigil_heap_max_bytes", G, "Largest vigil_heap_bytes so far.", t.heap_maximum);
	sample(j, "vigil_memory_limit_bytes", G, "memory_limit (0: none).", t.heap_limit);
	sample(j, "vigil_memory_refused_total", C, "Allocations refused because of memory_limit.", t.heap_refused);
	if (t.persistence)
		sample(j, "vigil_store_writable", G, "1 while the persistence store commits, 0 while it cannot write.",
		       t.store_writable);
	sample(j, "vigil_bridges", G, "Configured bridge connections.", t.n_bridges);
	bridge_families(a, j);
	family(j, "vigil_listener_connections", G, "Connections open now, per listener.");
	for (size_t i = 0;; i++) {
		struct api_listener_row r;
		if (!api_view_listener(a->b, i, &r))
			break;
		jb_printf(j, "vigil_listener_connections{port=\"%d\",protocol=\"%s\",tls=\"%s\",address=\"", r.port,
			  r.protocol, r.tls ? "true" : "false");
		label_value(j, r.bind ? r.bind : "");
		jb_printf(j, "\"} %" PRIu64 "\n", r.connections);
	}
	sample(j, "vigil_http_requests_total", C, "HTTP API requests answered.", a->requests);
	sample(j, "vigil_http_unauthorized_total", C, "HTTP API requests refused with 401.", a->unauthorized);
}
