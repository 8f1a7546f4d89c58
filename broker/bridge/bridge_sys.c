/*
 * broker/bridge/bridge_sys.c — each bridge's state and counters in $SYS,
 * called from sys_publish every sys_interval (retained, only when a value
 * changed, as the rest of $SYS):
 *
 *   $SYS/broker/vigil/bridge/NAME/state      connected | connecting | down | stopped
 *   .../address                              host:port in use or next tried
 *   .../connects                             CONNACKs accepted since start
 *   .../disconnects                          connections lost (any reason)
 *   .../remote_timeouts                      remote silent 1.5 x keepalive
 *   .../messages/sent, .../messages/received PUBLISH to / from the remote
 *   .../messages/queued                      waiting for the remote (in flight + queued)
 *
 * Not here: mosquitto's $SYS/broker/connection/ID/state notification
 * (bridge.c, on every change). NAME is the connection name; '+', '#' and
 * '/' in it become '_' so that it stays one topic level.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bridge_int.h"

static void pub(struct broker *b, const char *topic, const char *value)
{
	struct message *old = retain_get(b->retained, mqtt_cstr(topic));
	if (old && old->payload.len == strlen(value) && memcmp(old->payload.p, value, old->payload.len) == 0)
		return;
	struct message *m = message_new(NULL, mqtt_cstr(topic), mqtt_cstr(value), (struct mqtt_str){0}, 0, true,
					NULL, NULL);
	if (!m)
		return;
	route_retain(b, m);
	route_message(b, m);
	message_unref(&m);
}

static void pub_at(struct broker *b, const char *base, const char *leaf, const char *value)
{
	char topic[512];
	if (snprintf(topic, sizeof(topic), "%s/%s", base, leaf) < (int)sizeof(topic))
		pub(b, topic, value);
}

static void pub_u64(struct broker *b, const char *base, const char *leaf, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	pub_at(b, base, leaf, buf);
}

static const char *state_name(const struct bridge *br)
{
	if (br->state == BR_UP)
		return "connected";
	if (br->state == BR_CONNECTING)
		return "connecting";
	return br->stopped ? "stopped" : "down";
}

void bridge_sys_publish(struct broker *b)
{
	for (size_t i = 0; i < b->n_bridges; i++) {
		const struct bridge *br = &b->bridges[i];
		const struct bridge_conf *bc = br->conf;
		char base[300], name[200], addr[300];
		snprintf(name, sizeof(name), "%s", bc->name);
		for (char *p = name; *p; p++)
			if (*p == '+' || *p == '#' || *p == '/')
				*p = '_';
		snprintf(base, sizeof(base), "$SYS/broker/vigil/bridge/%s", name);
		snprintf(addr, sizeof(addr), "%s:%d", bc->addrs[br->cur_addr].host, bc->addrs[br->cur_addr].port);
		pub_at(b, base, "state", state_name(br));
		pub_at(b, base, "address", addr);
		pub_u64(b, base, "connects", br->n_connects);
		pub_u64(b, base, "disconnects", br->n_losses);
		pub_u64(b, base, "remote_timeouts", br->n_timeouts);
		pub_u64(b, base, "messages/sent", br->n_out);
		pub_u64(b, base, "messages/received", br->n_in);
		pub_u64(b, base, "messages/queued", bridge_waiting(br));
	}
}

bool bridge_view_get(const struct broker *b, size_t i, struct bridge_view *v)
{
	if (i >= b->n_bridges)
		return false;
	const struct bridge *br = &b->bridges[i];
	const struct bridge_conf *bc = br->conf;
	*v = (struct bridge_view){
		.name = bc->name,
		.state = state_name(br),
		.host = bc->addrs[br->cur_addr].host,
		.port = bc->addrs[br->cur_addr].port,
		.up = br->state == BR_UP,
		.connects = br->n_connects,
		.disconnects = br->n_losses,
		.remote_timeouts = br->n_timeouts,
		.sent = br->n_out,
		.received = br->n_in,
		.queued = bridge_waiting(br),
	};
	return true;
}
