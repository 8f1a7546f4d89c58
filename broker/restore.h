/*
 * broker/restore.h — how durable state is put back into the core at start-up.
 *
 * One interface for every source of saved state: vigil's own store
 * (broker/store/, SQLite) and importers of other brokers' files (the
 * mosquitto.db importer). The core never learns where the state came from.
 *
 * Contract (the order matters):
 *   1. broker_init, broker_listen (listeners exist; nothing is accepted
 *      before the loop runs).
 *   2. restore_message / restore_retained / restore_session / restore_sub /
 *      restore_delivery / restore_qos2_in for everything saved. No store is
 *      installed yet, so none of this is written back.
 *   3. store_set(...) installs the store (an importer then asks the store
 *      for a full snapshot, so the imported state becomes durable).
 *   4. restore_finish: sessions that expired and wills whose delay ran out
 *      while the broker was down take effect now (the will is published to
 *      the restored subscribers, the session ends) and are written through
 *      the installed store.
 * Times are wall-clock ms since the epoch (store_wall_now()); they are
 * turned into monotonic deadlines here, so expiry counts across downtime.
 * Every function returns NULL / -1 on bad input or no memory and changes
 * nothing then; the caller decides whether that stops start-up.
 */
#ifndef VIGIL_RESTORE_H
#define VIGIL_RESTORE_H

#include "broker.h"

/* A message as saved. expires_at: wall ms of its Message Expiry, 0 = none.
 * Returns a new reference (the caller unrefs it when done handing it out),
 * or NULL. A message already expired is returned all the same; it is
 * dropped when delivered (v5 MQTT-3.3.2-5). */
struct message *restore_message(struct broker *b, struct mqtt_str topic, struct mqtt_str payload,
				struct mqtt_str props, uint8_t qos, bool retain, uint64_t expires_at,
				const char *origin_id, const char *origin_user);

/* Make m the retained message on its topic (the core takes its own ref).
 * Expired messages are skipped (returns 0). */
int restore_retained(struct broker *b, struct message *m);

struct restore_session {
	const char *id;
	uint8_t version;       /* MQTT_V31 / MQTT_V311 / MQTT_V5 of its last connection */
	uint32_t expiry;       /* Session Expiry Interval, seconds; UINT32_MAX = never */
	const char *username;  /* of its last connection, NULL = anonymous (ACL while offline) */
	int listener;          /* index of its last listener in the configuration, -1 = unknown */
	bool was_connected;    /* connected when the broker stopped: expiry counts from now */
	uint64_t expires_at;   /* detached: wall ms when it expires (0 with expiry UINT32_MAX) */
	uint16_t next_pid;     /* 0 = 1 */
	/* Will of a detached session whose Will Delay was running (NULL = none);
	 * the core takes its own ref. Ignored for was_connected sessions (the
	 * broker stopped, the client did not fail: as on SIGTERM, no will). */
	struct message *will_msg;
	uint32_t will_delay;   /* seconds */
	bool will_has_expiry;
	uint32_t will_expiry;  /* seconds, counted from publication */
	uint64_t will_at;      /* wall ms when the will is due */
};

/* Create a session (detached). Its subscriptions, deliveries and QoS 2 ids
 * follow with the calls below. NULL: bad input (empty id, duplicate id) or
 * no memory. */
struct session *restore_session(struct broker *b, const struct restore_session *rs);
/* A subscription: filter as the client gave it plus mount point,
 * "$share/group/" kept in front; options is the v5 options byte (v3: QoS). */
int restore_sub(struct session *s, const char *filter, uint8_t options, uint32_t sub_id);
/* A delivery, in order (queue order, then send order for in-flight ones):
 * state OUT_QUEUED (pid ignored), OUT_PUBLISH (resent with DUP on
 * reconnect) or OUT_PUBREL (PUBREL resent). qos 1 or 2. store_seq is the
 * store's row id (importers pass 0). The core takes its own ref on m. */
int restore_delivery(struct session *s, struct message *m, uint8_t qos, bool retain, uint8_t state, uint16_t pid,
		     const uint32_t *sub_ids, uint8_t n_sub_ids, uint64_t store_seq);
/* An inbound QoS 2 packet id whose PUBREL has not arrived: a re-sent
 * PUBLISH with it is acknowledged, not delivered again. */
int restore_qos2_in(struct session *s, uint16_t pid);
/* Run what fell due while the broker was down (see the contract above). */
void restore_finish(struct broker *b);

#endif
