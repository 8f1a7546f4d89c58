/*
 * broker/bridge/bridge.h — the bridge room's one header: outbound MQTT
 * client connections to remote brokers (mosquitto's bridges, configured by
 * the "connection" sections of mosquitto.conf).
 *
 * A bridge is a client of the remote broker whose local side is an ordinary
 * session (subscriptions with no-local and retain-as-published on the
 * bridge's "out" topics, the in-flight window and the queue of deliver.c);
 * the connection to the remote is an ordinary struct client on a net_conn
 * from net_connect, so PUBLISH and its acknowledgements are handled by
 * publish.c / deliver.c in both directions. Its liveness is the client's
 * wheel entry reversed: vigil sends PINGREQ every keepalive_interval and
 * declares the remote dead 1.5 x keepalive_interval after its last packet.
 * The core calls only the functions below.
 */
#ifndef VIGIL_BRIDGE_H
#define VIGIL_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "mqtt.h"

struct broker;
struct client;
struct session;
struct bridge;

/* Start every configured bridge (b->cfg->bridges): local sessions and
 * subscriptions now, connections on the next loop passes. -1 with err. */
int bridge_start_all(struct broker *b, char *err, size_t errlen);
/* Shutdown: close every bridge connection without DISCONNECT (so the
 * remote publishes the bridge's will, state 0, as with mosquitto), stop
 * reconnecting. */
void bridge_stop_all(struct broker *b);
/* Free what bridge_start_all made (after the loop is done with it). */
void bridge_free_all(struct broker *b);

/* Topic of a PUBLISH received from the remote as routed locally (the
 * remote prefix of the first matching in/both topic replaced by its local
 * prefix): in buf when it fits in cap, else in a malloc'd *big. NULL: no
 * memory. */
const char *bridge_topic_in(const struct client *c, struct mqtt_str topic, char *buf, size_t cap, char **big);
/* Topic and RETAIN of a PUBLISH sent to the remote (local prefix of the
 * first matching out/both topic replaced by its remote prefix;
 * bridge_outgoing_retain false clears RETAIN). *topic may point into buf
 * (cap bytes) or a malloc'd *big afterwards. */
void bridge_publish_out(const struct client *c, struct mqtt_str *topic, bool *retain, char *buf, size_t cap,
			char **big);

/* deliver.c: a message was queued for the offline session s. For the
 * local side of a start_type lazy bridge, the connection is started once
 * `threshold` messages wait (as mosquitto). Cheap for other sessions. */
void bridge_session_queued(struct broker *b, struct session *s);
/* deliver.c: whether a message of this QoS is queued for the bridge
 * session s while its remote is not connected. As mosquitto: never with
 * local_cleansession true; QoS 0 too for a lazy bridge (so that they count
 * towards the threshold); else QoS 1/2, and QoS 0 with queue_qos0_messages. */
bool bridge_session_queues(const struct broker *b, const struct session *s, uint8_t qos);
/* sys.c (sys_publish): each bridge's state and counters, retained, under
 * $SYS/broker/vigil/bridge/NAME/ (bridge_sys.c). */
void bridge_sys_publish(struct broker *b);

/* A read-only snapshot of bridge i (0-based, config order) for the HTTP
 * API's /metrics: the figures $SYS/broker/vigil/bridge/NAME/ shows.
 * Strings point into the configuration (valid until a reload frees it).
 * False past the end. */
struct bridge_view {
	const char *name, *state, *host; /* state: connected | connecting | down | stopped */
	int port;
	bool up;
	uint64_t connects, disconnects, remote_timeouts, sent, received, queued;
};
bool bridge_view_get(const struct broker *b, size_t i, struct bridge_view *v);

#endif
