/*
 * broker/sys.c — the $SYS tree, as mosquitto publishes it.
 *
 * Every sys_interval seconds the broker publishes its counters as retained
 * messages under $SYS/broker/..., only when a value changed. vigil adds its
 * liveness counters under $SYS/broker/vigil/... (keepalive timeouts, wills
 * published, pre-CONNECT timeouts, half-open closes). The heap figures are
 * the memory_limit accounting of mem.c (what the broker holds for its load),
 * not the whole process heap.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "bridge/bridge.h"

static void pub(struct broker *b, const char *topic, const char *value)
{
	struct message *old = retain_get(b->retained, mqtt_cstr(topic));
	if (old && old->payload.len == strlen(value) && memcmp(old->payload.p, value, old->payload.len) == 0)
		return;
	struct message *m = message_new(NULL, mqtt_cstr(topic), mqtt_cstr(value), (struct mqtt_str){0}, 0, true, NULL, NULL);
	if (!m)
		return;
	route_retain(b, m);
	route_message(b, m);
	message_unref(&m);
}

static void pub_u64(struct broker *b, const char *topic, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	pub(b, topic, buf);
}

void sys_publish(struct broker *b)
{
	char buf[64];
	const struct stats *st = &b->st;
	uint64_t sessions = b->n_sessions;
	snprintf(buf, sizeof(buf), "%" PRIu64 " seconds", (broker_now(b) - b->start_mono) / 1000);
	pub(b, "$SYS/broker/uptime", buf);
	pub_u64(b, "$SYS/broker/clients/connected", st->clients_connected);
	pub_u64(b, "$SYS/broker/clients/active", st->clients_connected);
	pub_u64(b, "$SYS/broker/clients/total", sessions);
	pub_u64(b, "$SYS/broker/clients/disconnected", sessions - st->clients_connected);
	pub_u64(b, "$SYS/broker/clients/inactive", sessions - st->clients_connected);
	pub_u64(b, "$SYS/broker/clients/expired", st->clients_expired);
	pub_u64(b, "$SYS/broker/messages/received", st->msgs_received);
	pub_u64(b, "$SYS/broker/messages/sent", st->msgs_sent);
	pub_u64(b, "$SYS/broker/publish/messages/dropped", st->pub_dropped);
	pub_u64(b, "$SYS/broker/bytes/received", st->bytes_received);
	pub_u64(b, "$SYS/broker/bytes/sent", st->bytes_sent);
	pub_u64(b, "$SYS/broker/subscriptions/count", subtree_count(b->subs));
	pub_u64(b, "$SYS/broker/retained messages/count", retain_count(b->retained));
	/* mosquitto's figures with memory tracking; vigil's count what mem.c accounts. */
	pub_u64(b, "$SYS/broker/heap/current", b->mem.current);
	pub_u64(b, "$SYS/broker/heap/maximum", b->mem.maximum);
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
	wheel_add(&b->wheel, &b->sys_timer, now + (uint64_t)b->cfg->sys_interval * 1000u);
}

void sys_start(struct broker *b)
{
	pub(b, "$SYS/broker/version", "vigil version " VIGIL_VERSION);
	wheel_entry_init(&b->sys_timer, on_sys);
	if (b->cfg->sys_interval == 0)
		return;
	sys_publish(b);
	wheel_add(&b->wheel, &b->sys_timer, broker_now(b) + (uint64_t)b->cfg->sys_interval * 1000u);
}
