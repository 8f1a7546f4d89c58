/*
 * broker/sys.c — the $SYS tree, as mosquitto 2.0.11 publishes it.
 *
 * Every sys_interval seconds the broker publishes its counters as retained
 * messages under $SYS/broker/..., each only when its value changed: the
 * topics and meanings of mosquitto 2.0.11's sys_tree.c (clients, messages and
 * bytes per direction, PUBLISH counts and payload bytes, the message store,
 * subscriptions, retained messages, heap, uptime, version) and its load
 * averages: per counter the rate per minute, exponentially decayed over 1, 5
 * and 15 minutes (new = rate + e^(-dt/T) * (old - rate)), published when they
 * move by 0.01 or more, all forced to "0.00" at start. vigil adds its liveness
 * counters: $SYS/broker/clients/keepalive_timeouts, $SYS/broker/wills/published
 * and the $SYS/broker/vigil/... ones.
 *
 * It does not count anything itself: the counters are plain increments in
 * struct stats where the events happen (client.c, publish.c, deliver.c, ...),
 * so $SYS costs nothing per message; this file only reads them once per
 * interval. It does not publish with sys_interval 0 (mosquitto publishes not
 * even the version then). The heap figures are the memory_limit accounting of
 * mem.c (what the broker holds for its load), not the whole process heap.
 *
 * Invariant: every value sys.c publishes is one retained message per topic,
 * so "changed" is "differs from the retained payload", and held_msgs /
 * held_bytes are exactly the $SYS messages the retained tree holds.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "bridge/bridge.h"

/* The load averages, in mosquitto's order: topic stem and its counter. */
enum { L_MSG_RX, L_MSG_TX, L_PUB_DROP, L_PUB_RX, L_PUB_TX, L_BYTES_RX, L_BYTES_TX, L_SOCKETS, L_CONNECTS };
static const char *const load_stem[SYS_N_LOADS] = {
	"messages/received", "messages/sent", "publish/dropped", "publish/received", "publish/sent",
	"bytes/received",    "bytes/sent",    "sockets",         "connections",
};
static const char *const load_span[3] = {"1min", "5min", "15min"};
static const double load_secs[3] = {60.0, 300.0, 900.0};

static void load_counters(const struct broker *b, uint64_t v[SYS_N_LOADS])
{
	const struct stats *st = &b->st;
	v[L_MSG_RX] = st->pkts_received;
	v[L_MSG_TX] = st->pkts_sent;
	v[L_PUB_DROP] = st->pub_dropped;
	v[L_PUB_RX] = st->msgs_received;
	v[L_PUB_TX] = st->msgs_sent;
	v[L_BYTES_RX] = st->bytes_received;
	v[L_BYTES_TX] = st->bytes_sent;
	v[L_SOCKETS] = st->sockets_accepted;
	v[L_CONNECTS] = st->connects_received;
}

static void pub(struct broker *b, const char *topic, const char *value)
{
	size_t len = strlen(value);
	struct message *old = retain_get(b->retained, mqtt_cstr(topic));
	if (old && old->payload.len == len && memcmp(old->payload.p, value, len) == 0)
		return;
	uint64_t old_len = old ? old->payload.len : 0;
	bool had = old != NULL;
	struct message *m = message_new(NULL, mqtt_cstr(topic), mqtt_cstr(value), (struct mqtt_str){0}, 0, true, NULL, NULL);
	if (!m)
		return;
	route_retain(b, m);
	if (retain_get(b->retained, mqtt_cstr(topic)) == m) {
		b->sys.held_msgs += !had;
		b->sys.held_bytes += len - old_len;
	}
	route_message(b, m);
	message_unref(&m);
}

static void pub_u64(struct broker *b, const char *topic, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	pub(b, topic, buf);
}

static void pub_load(struct broker *b, int i, int span, double v)
{
	char topic[80], buf[48];
	snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%s", load_stem[i], load_span[span]);
	snprintf(buf, sizeof(buf), "%.2f", v);
	pub(b, topic, buf);
}

/* Rates per minute since the last update, decayed into the averages. Skipped
 * when less than half a second passed (a SIGUSR1 right after a tick), which
 * loses nothing: the counters' deltas wait for the next update. */
static void update_loads(struct broker *b, uint64_t now)
{
	struct sys_state *sy = &b->sys;
	uint64_t cur[SYS_N_LOADS];
	load_counters(b, cur);
	if (now < sy->last_ms + 500)
		return;
	double dt = (double)(now - sy->last_ms) / 1000.0;
	for (int i = 0; i < SYS_N_LOADS; i++) {
		double rate = (double)(cur[i] - sy->prev[i]) * 60.0 / dt;
		sy->prev[i] = cur[i];
		for (int s = 0; s < 3; s++) {
			double v = rate + exp(-dt / load_secs[s]) * (sy->load[i][s] - rate);
			if (fabs(v - sy->load[i][s]) >= 0.01)
				pub_load(b, i, s, v);
			sy->load[i][s] = v;
		}
	}
	sy->last_ms = now;
}

void sys_publish(struct broker *b)
{
	char buf[64];
	const struct stats *st = &b->st;
	uint64_t now = broker_now(b);
	uint64_t sessions = b->n_sessions;
	uint64_t connected = st->clients_connected;
	uint64_t offline = sessions > connected ? sessions - connected : 0;

	if (b->cfg->sys_interval == 0)
		return;
	if (!b->sys.last_ms) { /* the first publish (at start, or after a SIGHUP turned $SYS on) */
		pub(b, "$SYS/broker/version", "vigil version " VIGIL_VERSION);
		/* As mosquitto: every load average is published once as 0.00. */
		load_counters(b, b->sys.prev);
		b->sys.last_ms = now ? now : 1;
		for (int i = 0; i < SYS_N_LOADS; i++)
			for (int s = 0; s < 3; s++)
				pub_load(b, i, s, 0.0);
	}
	snprintf(buf, sizeof(buf), "%" PRIu64 " seconds", (now - b->start_mono) / 1000);
	pub(b, "$SYS/broker/uptime", buf);

	/* compat: "total" and "maximum" count sessions (connected or not), as
	 * mosquitto's contexts_by_id; "maximum" is sampled here, as mosquitto. */
	if (sessions > b->sys.clients_max)
		b->sys.clients_max = sessions;
	pub_u64(b, "$SYS/broker/clients/total", sessions);
	if (b->sys.clients_max) /* compat: mosquitto publishes a maximum only once it is above 0 */
		pub_u64(b, "$SYS/broker/clients/maximum", b->sys.clients_max);
	pub_u64(b, "$SYS/broker/clients/connected", connected);
	pub_u64(b, "$SYS/broker/clients/active", connected);
	pub_u64(b, "$SYS/broker/clients/disconnected", offline);
	pub_u64(b, "$SYS/broker/clients/inactive", offline);
	pub_u64(b, "$SYS/broker/clients/expired", st->clients_expired);

	update_loads(b, now);

	/* The message store: every message the broker holds (retained, queued,
	 * in flight), each once however many receivers share it, with $SYS's
	 * own retained ones as mosquitto counts them. Payload bytes. */
	uint64_t stored = b->mem.msgs + b->sys.held_msgs;
	pub_u64(b, "$SYS/broker/messages/stored", stored);
	pub_u64(b, "$SYS/broker/store/messages/count", stored);
	pub_u64(b, "$SYS/broker/store/messages/bytes", b->mem.msg_bytes + b->sys.held_bytes);

	size_t subs = subtree_count(b->subs), shared = subtree_shared_count(b->subs);
	pub_u64(b, "$SYS/broker/subscriptions/count", subs - shared);
	pub_u64(b, "$SYS/broker/shared_subscriptions/count", shared);
	pub_u64(b, "$SYS/broker/retained messages/count", retain_count(b->retained));
	/* mosquitto's figures with memory tracking; vigil's count what mem.c accounts. */
	pub_u64(b, "$SYS/broker/heap/current", b->mem.current);
	pub_u64(b, "$SYS/broker/heap/maximum", b->mem.maximum);

	pub_u64(b, "$SYS/broker/messages/received", st->pkts_received);
	pub_u64(b, "$SYS/broker/messages/sent", st->pkts_sent);
	pub_u64(b, "$SYS/broker/publish/messages/dropped", st->pub_dropped);
	pub_u64(b, "$SYS/broker/publish/messages/received", st->msgs_received);
	pub_u64(b, "$SYS/broker/publish/messages/sent", st->msgs_sent);
	pub_u64(b, "$SYS/broker/bytes/received", st->bytes_received);
	pub_u64(b, "$SYS/broker/bytes/sent", st->bytes_sent);
	pub_u64(b, "$SYS/broker/publish/bytes/received", st->pub_bytes_received);
	pub_u64(b, "$SYS/broker/publish/bytes/sent", st->pub_bytes_sent);

	/* vigil's liveness counters (no mosquitto counterpart); other rooms' topics
	 * (bridges) follow them. */
	pub_u64(b, "$SYS/broker/clients/keepalive_timeouts", st->keepalive_timeouts);
	pub_u64(b, "$SYS/broker/wills/published", st->wills_published);
	pub_u64(b, "$SYS/broker/vigil/keepalive_timeouts", st->keepalive_timeouts);
	pub_u64(b, "$SYS/broker/vigil/wills_published", st->wills_published);
	pub_u64(b, "$SYS/broker/vigil/preconnect_timeouts", st->preconnect_timeouts);
	pub_u64(b, "$SYS/broker/vigil/halfopen_closes", st->halfopen_closes);
	bridge_sys_publish(b);
}

static void on_sys(struct wheel_entry *e, uint64_t now)
{
	struct broker *b = (struct broker *)((char *)e - offsetof(struct broker, sys_timer));
	sys_publish(b);
	/* sys_interval is reloadable: while it is 0, look again once a second. */
	unsigned iv = b->cfg->sys_interval ? b->cfg->sys_interval : 1;
	wheel_add(&b->wheel, &b->sys_timer, now + (uint64_t)iv * 1000u);
}

void sys_start(struct broker *b)
{
	wheel_entry_init(&b->sys_timer, on_sys);
	sys_publish(b); /* nothing with sys_interval 0 */
	unsigned iv = b->cfg->sys_interval ? b->cfg->sys_interval : 1;
	wheel_add(&b->wheel, &b->sys_timer, broker_now(b) + (uint64_t)iv * 1000u);
}
