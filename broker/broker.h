/*
 * broker/broker.h — vigil's broker: all MQTT state in one struct broker.
 *
 * Reading order for a newcomer (five minutes):
 *   1. main.c      the composition root: config, listeners, signals, the loop.
 *   2. client.c    one network connection: framing, dispatch by packet type,
 *                  keepalive (lazy re-arm on the wheel), close handling, and the
 *                  single place where internal errors become reason codes.
 *   3. connect.c   CONNECT -> auth, client id rules, session resume/takeover,
 *                  CONNACK.
 *   4. session.c   the session (outlives connections): subscriptions,
 *                  in-flight window and queue, expiry, will.
 *   5. publish.c   inbound PUBLISH and its acks; route.c matches a message to
 *                  sessions and hands it to deliver.c, which owns the outbound
 *                  QoS state machine and encoding.
 *   6. subscribe.c SUBSCRIBE / UNSUBSCRIBE and retained delivery.
 *   7. wheel.c, subtree.c  data structures; store.c the durable-state seam
 *      (broker/store/ is the SQLite store behind it, restore.h how saved state
 *      comes back at start-up); sys.c $SYS; log.c logging; config.c and
 *      auth.c the mosquitto files; mem.c the memory_limit accounting of what
 *      holds load; bridge/ the outbound bridges; notify.c systemd's sd_notify.
 *      holds load; bridge/ the outbound bridges; cluster/ several nodes as
 *      one broker over NATS (struct cluster_ops below is all the core sees).
 *
 * Threading: one thread owns everything here. Time: broker_now(b) (monotonic
 * ms) is the loop's cached clock; nothing in the broker reads the wall clock for
 * a timeout.
 */
#ifndef VIGIL_BROKER_H
#define VIGIL_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#include "auth.h"
#include "config.h"
#include "mem.h"
#include "mqtt.h"
#include "net.h"
#include "subtree.h"
#include "wheel.h"

#define VIGIL_VERSION "0.1.0"

struct broker;
struct session;
struct client;
struct bridge;
struct api;

/* ---- messages --------------------------------------------------------------- */

/* One immutable application message, shared by every receiver (refcounted).
 * Topic, payload and forwardable properties live in the same allocation. */
struct message {
	uint32_t refs;
	uint8_t qos;           /* as published */
	bool retain;           /* as published */
	bool has_expiry;
	bool ack_waits;        /* store.c: being routed for a QoS 1 PUBLISH whose PUBACK is not sent yet */
	bool store_row_carried; /* the store's bookkeeping: its row is held back with its deliveries */
	uint32_t size;         /* of its allocation (mem_obj_free) */
	uint64_t expiry_at;    /* monotonic ms, valid if has_expiry */
	uint64_t origin_sid;   /* session serial of the publisher (no-local), 0 = none */
	struct mqtt_str topic; /* NUL-terminated */
	struct mqtt_str payload;
	struct mqtt_str props; /* v5 properties forwarded as-is (no alias, sub id, expiry) */
	const char *origin_id;   /* retained messages: publisher's client id (check_retain_source) */
	const char *origin_user; /* and user name; NULL when none */
	struct mem *mem;         /* the accounting it was allocated from (NULL: none) */
	uint64_t store_id;       /* the store's bookkeeping: row id, 0 = not stored */
	uint32_t store_refs;     /* stored deliveries that refer to it */
	uint32_t store_carry;    /* of those, held back (not written yet) until acked or due */
	uint64_t cl_inst, cl_seq; /* cluster/'s bookkeeping: origin node instance and its sequence
				   * number once routed between nodes (0: never), to merge a session's
				   * queues without duplicates when it moves to another node */
	uint64_t cl_at;           /* cluster/'s bookkeeping: monotonic ms it was routed here, or (replayed)
				   * stored by JetStream: where a replay for its session must start */
	uint8_t data[];
};

/* origin_id / origin_user (may be NULL) are kept only when retain is set.
 * mem: the broker's accounting (&b->mem); NULL only for the broker's own
 * bounded messages ($SYS, log topic). NULL result: no memory, or
 * memory_limit reached (the caller refuses the message). */
struct message *message_new(struct mem *mem, struct mqtt_str topic, struct mqtt_str payload, struct mqtt_str props,
			    uint8_t qos, bool retain, const char *origin_id, const char *origin_user);
static inline struct message *message_ref(struct message *m)
{
	m->refs++;
	return m;
}
/* Drops a reference and NULLs the caller's pointer. */
void message_unref(struct message **m);
/* prefix (may be NULL) + t as a NUL-terminated string, in buf when it fits
 * in cap bytes, else in a malloc'd *big the caller frees. NULL: no memory. */
const char *topic_join(const char *prefix, struct mqtt_str t, char *buf, size_t cap, char **big);
/* True once a message with a Message Expiry Interval has passed it (an
 * interval of 0 passes after the loop pass that received the message). */
bool message_expired(const struct message *m, uint64_t now);

/* ---- sessions ----------------------------------------------------------------- */

enum out_state {
	OUT_QUEUED = 0,     /* waiting for a window slot or a connection */
	OUT_PUBLISH = 1,    /* PUBLISH sent, waiting for PUBACK / PUBREC */
	OUT_PUBREL = 2,     /* PUBREL sent, waiting for PUBCOMP */
};

/* One message on its way to one session. */
struct outmsg {
	struct outmsg *next, *prev;
	struct message *msg;
	uint16_t pid;
	uint8_t qos;
	uint8_t state;      /* enum out_state */
	bool retain;        /* RETAIN flag to send */
	bool sent;          /* sent at least once (DUP on resend) */
	uint8_t n_sub_ids;
	uint64_t store_seq; /* the store's bookkeeping: row id, 0 = not stored */
	uint32_t sub_ids[]; /* v5 Subscription Identifiers */
};

struct out_list {
	struct outmsg *head, *tail;
	uint32_t count;
	uint64_t bytes;
	struct outmsg **ix;  /* deliver.c: in-flight entries by packet id (direct-mapped), or NULL */
	uint32_t ix_cap;     /* slots in ix, a power of two */
	uint32_t n_spill;    /* in-flight entries not in their slot (another holds it) */
};

struct subscription {
	char *filter;      /* as given, "$share/g/f" included (after mount point) */
	uint8_t options;
	uint32_t sub_id;
};

struct will {
	struct wheel_entry timer; /* will delay (armed only while it runs) */
	struct session *s;
	struct message *msg;  /* qos and retain inside; expiry set when published */
	uint32_t delay;       /* v5 Will Delay Interval, seconds */
	bool has_expiry;      /* v5 Message Expiry Interval of the will */
	uint32_t expiry;      /* seconds, counted from publication */
};

/* One inbound QoS 2 flow between PUBREC and PUBREL. */
struct in_qos2 {
	uint16_t pid;
	struct message *msg; /* routed on PUBREL; NULL: refused, only acknowledged */
};

struct session {
	struct session *hnext;     /* session table chain (session.c) */
	uint32_t hash;
	uint32_t route_gen;        /* route.c scratch: merge overlapping subscriptions */
	uint32_t route_slot;
	char *id;
	uint64_t serial;           /* unique per session object, for no-local */
	struct broker *b;
	struct client *client;     /* NULL while offline */
	uint8_t version;           /* of the last connection */
	bool store_saved;          /* the store's bookkeeping: a row exists */
	uint64_t store_hold_after; /* the store's bookkeeping: hold back no delivery before (monotonic ms) */
	uint32_t expiry;           /* seconds; UINT32_MAX = never */
	struct wheel_entry expiry_timer;
	char *username;            /* of the last connection, for ACL on delivery while offline */
	struct listener *listener; /* of the last connection (ACL, mount point) */

	struct subscription *subs;
	uint32_t n_subs, cap_subs;

	struct out_list inflight;  /* OUT_PUBLISH / OUT_PUBREL, in send order */
	struct out_list queue;     /* OUT_QUEUED, FIFO */
	uint16_t next_pid;
	uint16_t n_in_qos2, cap_in_qos2;
	struct in_qos2 *in_qos2;   /* inbound QoS 2 flows awaiting PUBREL */

	struct will *will;
	bool bridge_owned;         /* the local side of a bridge (bridge/): no client may take it */
	uint64_t cluster_since;    /* cluster/'s bookkeeping: wall ms its connection attached (takeover order) */
	bool cluster_rec;          /* cluster/'s bookkeeping: its record is in the cluster's session bucket */
	uint64_t cluster_ckpt;     /* cluster/'s bookkeeping: delivery state when its record was last written */
};

/* ---- clients (connections) ------------------------------------------------------ */

enum client_state { CS_NEW = 0, CS_CONNECTED = 1, CS_GONE = 2 };

struct listener;

struct client {
	struct broker *b;
	struct net_conn *conn;
	struct listener *l;
	struct session *s;
	enum client_state state;
	uint8_t version;
	bool clean_start;
	bool request_problem_info; /* v5, default true */
	bool store_marked;         /* store.c: on b->store_marked (acks await the commit) */
	uint16_t keepalive;        /* seconds, as granted */
	uint32_t timeout_ms;       /* 1.5 x keepalive, or the CONNECT timeout */
	uint64_t last_rx;          /* monotonic ms of the last complete packet */
	struct wheel_entry timer;  /* keepalive or pre-CONNECT timeout */
	const char *id;            /* the session's id while attached, else NULL */
	char *username;            /* NULL = anonymous */
	uint8_t *password;         /* kept only with a password_file: SIGHUP re-checks it */
	uint16_t password_len;
	uint32_t max_packet_out;   /* client's Maximum Packet Size, 0 = none */
	uint16_t receive_max_out;  /* client's Receive Maximum */
	uint16_t alias_max_in;     /* our Topic Alias Maximum for this client */
	char **aliases;            /* [alias_max_in + 1] inbound topic aliases */
	struct bridge *bridge;     /* set: our outbound connection to a remote broker (bridge/) */
	bool bridge_peer;          /* a remote mosquitto-style bridge (CONNECT level bit 7) */
	bool cluster_held;         /* CONNECT held while the cluster fetches its session: no dispatch */
	struct store_ackq *ackq;   /* store.c: acks waiting for held-back deliveries, NULL = none */
	uint32_t cluster_acks;     /* acks the cluster holds until JetStream confirms (cluster/xqos.c) */
	struct client *next_all, *prev_all;
};

/* ---- listeners -------------------------------------------------------------------- */

struct listener {
	struct broker *b;
	const struct listener_conf *conf;
	struct net_listener *nl;
	struct net_tls *tls;
	const struct security_conf *sec;
	struct auth_pw *pw;
	struct auth_acl *acl;
	struct auth_psk *psk;
	int connections;
};

/* ---- statistics ------------------------------------------------------------------- */

/* Counters only: incremented where the event happens, read by sys.c every
 * sys_interval (which keeps the load averages and the maxima). */
struct stats {
	uint64_t clients_total, clients_connected, clients_expired, clients_disconnected;
	uint64_t msgs_received, msgs_sent;        /* PUBLISH packets in / out */
	uint64_t pub_bytes_received, pub_bytes_sent; /* their payload bytes */
	uint64_t pkts_received, pkts_sent;        /* MQTT packets of any type in / out */
	uint64_t bytes_received, bytes_sent, pub_dropped;
	uint64_t sockets_accepted, connects_received; /* TCP/WebSocket accepts; CONNECT packets */
	uint64_t store_msgs, store_bytes;         /* live struct message objects, their payload bytes */
	uint64_t keepalive_timeouts, wills_published, preconnect_timeouts, halfopen_closes;
};

/* sys.c's own state: what it last published, for the load averages and maxima. */
#define SYS_N_LOADS 9
struct sys_state {
	uint64_t last_ms;                 /* monotonic ms of the last load update; 0: nothing published yet */
	uint64_t prev[SYS_N_LOADS];       /* each load's counter at last_ms */
	double load[SYS_N_LOADS][3];      /* 1, 5 and 15 min exponentially decaying rates per minute */
	uint64_t clients_max;             /* most sessions seen at a publish ($SYS/broker/clients/maximum) */
	uint64_t held_msgs, held_bytes;   /* sys.c's retained messages (not in b->mem) and their payload bytes */
};

/* ---- the broker --------------------------------------------------------------------- */

struct broker {
	struct config *cfg;
	struct net_loop *loop;
	struct wheel wheel;
	uint64_t start_mono; /* for uptime */
	struct subtree *subs;
	struct retain_tree *retained;
	struct session **stab;    /* session table by id: chained, power-of-two size */
	uint32_t stab_size, n_sessions;
	uint32_t route_gen;
	uint64_t next_serial;
	struct client *clients;   /* every connection, for shutdown */
	struct listener *listeners;
	size_t n_listeners;
	struct stats st;
	struct sub_match match;   /* reused by route */
	struct wheel_entry sys_timer;
	struct sys_state sys;
	bool stopping;
	bool routing;        /* inside route_message (log.c must not route then) */
	struct log *log;
	struct mem mem;      /* memory_limit accounting (mem.c) */
	const struct store_ops *store;
	void *store_user;
	struct bridge *bridges;   /* bridge/: one per "connection" section */
	size_t n_bridges;
	struct api *api;          /* api/: the HTTP API room, NULL without an http_api listener */
	struct client **store_marked; /* store.c: clients with acks awaiting the commit */
	size_t n_store_marked, cap_store_marked;
	struct client **ack_waiting;  /* store.c: clients with a PUBACK waiting (c->ackq) */
	size_t n_ack_waiting, cap_ack_waiting;
	const struct cluster_ops *cluster; /* broker/cluster/: NULL without cluster_* options */
	void *cluster_user;
	bool groups_in_cluster;  /* set by the cluster: shared groups are served by route_group */
};

/* The loop's cached monotonic clock (ms), refreshed once per pass right
 * after epoll_wait, so it is current while packets are dispatched. */
static inline uint64_t broker_now(const struct broker *b)
{
	return net_now(b->loop);
}

/* broker.c */
int broker_init(struct broker *b, struct config *cfg, struct net_loop *loop);
void broker_fini(struct broker *b);
/* Run one loop pass with the wheel's next deadline as timeout. */
int broker_run_once(struct broker *b);
/* SIGTERM/SIGINT: stop accepting, DISCONNECT 0x8B to v5 clients, close all. */
void broker_shutdown(struct broker *b);
/* Open listeners (and TLS contexts, password and ACL files) from b->cfg. */
int broker_listen(struct broker *b, char *err, size_t errlen);
/* SIGHUP: reload password/ACL files and TLS certificates. */
void broker_reload(struct broker *b);

/* client.c */
void client_accept(struct net_listener *nl, struct net_conn *conn, void *user);
/* Send bytes to the client (encoded packet). Drops silently if closing. */
void client_send(struct client *c, const uint8_t *p, size_t len);
/* Encode-and-send helpers. */
void client_send_ack(struct client *c, uint8_t type, uint16_t pid, uint8_t rc);
void client_send_disconnect(struct client *c, uint8_t rc, const char *reason);
/* End the connection. abnormal: the will is published (network failure,
 * protocol error, takeover, keepalive). rc: v5 DISCONNECT reason to send
 * first (0 = none). dead: the peer is presumed gone (abortive close). */
void client_close(struct client *c, uint8_t rc, bool abnormal, bool dead, const char *why);
/* Arm the keepalive timer after CONNACK. */
void client_start_keepalive(struct client *c);

/* connect.c */
int connect_handle(struct client *c, const struct mqtt_frame *f);

/* session.c */
struct session *session_find(struct broker *b, const char *id);
/* Destroy every session (broker_fini). */
void session_destroy_all(struct broker *b);
struct session *session_new(struct broker *b, const char *id);
/* Destroy: remove subscriptions, free queues, cancel timers. Publishes
 * nothing (callers handle the will first). */
void session_destroy(struct session *s);
/* Connection ended (s->client already cleared by caller). Handles will
 * (abnormal), expiry timer or immediate destroy. */
void session_detach(struct session *s, bool abnormal);
/* Subscription bookkeeping on the session side. */
int session_sub_add(struct session *s, const char *filter, uint8_t options, uint32_t sub_id, bool *existed);
bool session_sub_remove(struct session *s, const char *filter);
/* Inbound QoS 2 flows (publish.c holds the message until PUBREL). add
 * takes over the caller's reference to m (may be NULL); remove hands the
 * held message to *m, or drops it when m is NULL. */
struct in_qos2 *session_qos2_find(struct session *s, uint16_t pid);
int session_qos2_add(struct session *s, uint16_t pid, struct message *m);
bool session_qos2_remove(struct session *s, uint16_t pid, struct message **m);
/* Will: publish now (honouring ACL) and clear. */
void session_publish_will(struct session *s);
void session_clear_will(struct session *s);
/* Restore (restore.c): arm the will delay and the session expiry at these
 * monotonic deadlines (0 = not armed). */
void session_restore_timers(struct session *s, uint64_t will_at, uint64_t expiry_at);

/* deliver.c */
/* Queue or send msg to session s with the effective options. */
void deliver_to_session(struct broker *b, struct session *s, struct message *m, uint8_t qos, bool retain,
			const uint32_t *sub_ids, uint8_t n_sub_ids);
/* Resend in-flight messages (DUP) and drain the queue on a (re)connect. */
void deliver_resume(struct session *s);
/* Send queued messages while the window has room. */
void deliver_drain(struct session *s);
/* Ack handling for outbound messages: ACK_WRONG when the ack does not fit
 * the message in flight with that id (PUBACK for QoS 2, PUBREC for QoS 1,
 * PUBCOMP before PUBREC, ...), a protocol error (v311 4.8, v5 4.13). */
enum ack_result { ACK_OK = 0, ACK_UNKNOWN = 1, ACK_WRONG = 2 };
enum ack_result deliver_puback(struct session *s, uint16_t pid);
enum ack_result deliver_pubrec(struct session *s, uint16_t pid, uint8_t rc);
enum ack_result deliver_pubcomp(struct session *s, uint16_t pid);
void out_list_clear(struct out_list *l);
/* Restore (restore.c): put a stored delivery back, in order: QUEUED at the
 * queue's tail, PUBLISH / PUBREL at the in-flight tail (sent: DUP when
 * resent). Returns 0 or -1 (bad state, duplicate packet id, no memory). */
int deliver_restore(struct session *s, struct message *m, uint8_t qos, bool retain, uint8_t state, uint16_t pid,
		    const uint32_t *sub_ids, uint8_t n_sub_ids, uint64_t store_seq);

/* route.c */
/* Deliver msg to every matching subscription (policy second loop).
 * Returns the number of matching subscriptions before policy (no-local, ACL)
 * is applied; 0 means "no matching subscribers" (compat: as mosquitto). */
size_t route_message(struct broker *b, struct message *m);
/* Set or clear a retained message (store notified). */
void route_retain(struct broker *b, struct message *m);
/* Deliver msg to one member of share group `group` on exactly `filter`
 * (the cluster picked this node for it). False: no such group, no member,
 * or denied. */
bool route_group(struct broker *b, struct message *m, struct mqtt_str filter, const char *group);

/* publish.c */
int publish_handle(struct client *c, const struct mqtt_frame *f);
int publish_handle_ack(struct client *c, const struct mqtt_frame *f);

/* subscribe.c */
int subscribe_handle(struct client *c, const struct mqtt_frame *f);
int unsubscribe_handle(struct client *c, const struct mqtt_frame *f);
/* Remove all of a session's subscriptions from the tree. */
void subscribe_remove_all(struct session *s);
/* Restore (restore.c): re-add a subscription as stored ("$share/g/f"
 * included, mount point already applied). Returns 0 or -1. */
int subscribe_restore(struct session *s, const char *full, uint8_t options, uint32_t sub_id);

/* security.c: admission and ACL decisions */
/* The CONNECT's credentials on listener l (not for TLS-identity listeners):
 * username NULL or "" = anonymous (allow_anonymous decides); otherwise the
 * password_file must hold user and password, and without a password_file
 * allow_anonymous decides (compat: mosquitto 2.0.11). */
bool security_password_ok(const struct listener *l, const char *username, const uint8_t *pass, size_t passlen);
/* Does l take user names from TLS (use_identity_as_username /
 * use_subject_as_username on a TLS listener)? */
bool security_uses_tls_identity(const struct listener *l);
/* On such a listener: the user name of conn (certificate CN or RFC 2253
 * subject; on a psk_hint listener the PSK identity, with
 * use_identity_as_username only), or NULL: the client is refused. */
const char *security_tls_identity(const struct listener *l, const struct net_conn *conn);
bool security_acl(struct client *c, struct session *s, const char *topic, enum auth_access a);

/* sys.c */
/* Arm the $SYS timer and publish the first values (nothing while
 * sys_interval is 0; a SIGHUP that sets it starts $SYS at the next second). */
void sys_start(struct broker *b);
/* Publish every $SYS value that changed since the last call (retained,
 * QoS 0) and update the load averages; the timer calls it every
 * sys_interval seconds, SIGUSR1 at once. No-op while sys_interval is 0. */
void sys_publish(struct broker *b);

/* store.c: the durable-state seam. Every change to durable state passes
 * here, so a crash-safe store (broker/store/) mirrors it without touching
 * handlers. With no store installed every call is a no-op.
 *
 * Contract for a store (struct store_ops):
 * - Calls arrive as changes happen, on the loop thread. The store batches
 *   them and makes them durable in commit(), which the seam runs from the
 *   loop's before_flush hook (store_commit): once per pass and before any
 *   byte queued since the last commit leaves (net_loop_barrier). So an
 *   acknowledgement (PUBACK, PUBREC, SUBACK, CONNACK) never leaves before
 *   the change it acknowledges is committed.
 * - commit() returns -1 when the changes could not be made durable: the seam
 *   then drops the output of every client that was sent something since the
 *   last commit and closes it (nothing it was told survives a crash, so it
 *   must not keep an ack), and writable() stays false until the store has
 *   caught up again (publish.c then refuses QoS 1/2 with 0x97).
 * - Store callbacks observe broker state; they change only the store_*
 *   bookkeeping fields (message store_id/store_refs, outmsg store_seq,
 *   session store_saved).
 * - Sessions with expiry 0 (clean) and QoS 0 deliveries are not durable:
 *   the store ignores them (they write nothing).
 * - Held-back deliveries (the one exception to "written in the pass"): a
 *   QoS 1 delivery made while routing a message with ack_waits set, sent at
 *   once to a connected subscriber, may be held back unwritten (the message's
 *   store_carry counts them) until the subscriber acknowledges it (then it
 *   is never written) or until due() (then commit() writes it). The seam
 *   keeps the publisher's PUBACK until store_carry is 0 (store_send_ack), so
 *   that ack still follows a delivery that is durable or done; the
 *   subscriber may see the PUBLISH before it is durable (a crash then: the
 *   publisher, without its PUBACK, resends: a duplicate, which QoS 1
 *   allows). pending() is true while anything is held back. */
struct store_ops {
	void (*retain_set)(void *u, const struct message *m);     /* m->payload.len == 0: cleared */
	void (*session_saved)(void *u, struct session *s);         /* expiry, will, timers, attached */
	void (*session_end)(void *u, struct session *s);
	void (*sub_add)(void *u, struct session *s, const struct subscription *sub);
	void (*sub_remove)(void *u, struct session *s, const char *filter);
	void (*msg_queued)(void *u, struct session *s, struct outmsg *o);
	void (*msg_update)(void *u, struct session *s, const struct outmsg *o); /* pid / state changed */
	void (*msg_acked)(void *u, struct session *s, struct outmsg *o);
	void (*qos2_in)(void *u, struct session *s, uint16_t pid, bool add);   /* inbound QoS 2 ids */
	bool (*pending)(void *u);   /* changes not committed yet */
	int (*commit)(void *u);     /* 0, or -1: the pass's changes are not durable */
	bool (*writable)(void *u);  /* false while the store cannot write */
	uint64_t (*due)(void *u);   /* when commit() must run next to write held-back rows, or UINT64_MAX */
};
void store_set(struct broker *b, const struct store_ops *ops, void *user);
void store_retain_set(struct broker *b, const struct message *m);
void store_session_new(struct broker *b, struct session *s);
/* The session's expiry, will, timers or connection changed. */
void store_session_saved(struct broker *b, struct session *s);
void store_session_end(struct broker *b, struct session *s);
void store_sub_add(struct broker *b, struct session *s, const struct subscription *sub);
void store_sub_remove(struct broker *b, struct session *s, const char *filter);
void store_msg_queued(struct broker *b, struct session *s, struct outmsg *o);
void store_msg_update(struct broker *b, struct session *s, const struct outmsg *o);
void store_msg_acked(struct broker *b, struct session *s, struct outmsg *o);
void store_qos2_in(struct broker *b, struct session *s, uint16_t pid, bool add);
void store_will_set(struct broker *b, struct session *s);
void store_will_clear(struct broker *b, struct session *s);
/* Something was queued for c: if a commit is pending, c's output waits
 * for it (and is dropped if it fails). */
void store_client_sent(struct broker *b, struct client *c);
/* c's connection is ending (on_close): commit now if c awaits a commit. */
void store_client_gone(struct broker *b, struct client *c);
/* Commit pending changes (the loop's before_flush hook calls this), then
 * send the PUBACKs whose deliveries are now durable or done. */
void store_commit(struct broker *b);
/* An acknowledgement of c's PUBLISH (type PUBACK, or PUBREC / PUBCOMP)
 * whose message m was just routed (m->ack_waits set while routing; m NULL:
 * none, e.g. refused): sent now, or kept while m has held-back deliveries
 * or c has acks kept before it (they leave in order); then, in a cluster,
 * cluster_send_ack holds it until JetStream has m. */
void store_send_ack(struct client *c, struct message *m, uint8_t type, uint16_t pid, uint8_t rc);
/* Monotonic ms by which the loop must pass the hook again, or UINT64_MAX. */
uint64_t store_due(const struct broker *b);
/* False while a store is installed but cannot write (disk full, I/O error). */
bool store_writable(const struct broker *b);
/* Wall-clock ms <-> monotonic ms (the loop's clock) for persisted deadlines. */
uint64_t store_wall_now(void);
uint64_t store_mono_to_wall(const struct broker *b, uint64_t mono);
uint64_t store_wall_to_mono(const struct broker *b, uint64_t wall);

/* The cluster room's hooks (broker/cluster/, installed by cluster_start in
 * main.c). Without cluster_* options b->cluster is NULL and each hook is one
 * branch. Called on the loop thread; they never re-enter the core's routing
 * and never block. */
struct cluster_ops {
	/* m was routed to local sessions: hand it to remote subscribers.
	 * Returns 1 when it went to the cluster (other nodes may have
	 * subscribers, so "no matching subscribers" is not known), else 0. */
	size_t (*route_out)(void *u, const struct message *m);
	/* m set (payload) or cleared (empty payload) a retained message. */
	void (*retain_out)(void *u, const struct message *m);
	/* s was attached to a new connection (CONNECT accepted). */
	void (*attached)(void *u, struct session *s);
	/* s's will is gone: cleared, published, or its session ends. */
	void (*will_gone)(void *u, struct session *s);
	/* Cluster-wide sessions (cluster/csession.c). A CONNECT for id, decided
	 * but not acted on yet: true when the cluster holds it (f copied) while
	 * it fetches the session from the node that has it (Clean Start 0, no
	 * session here); it then runs connect_handle again itself, with
	 * c->cluster_held set meanwhile. */
	bool (*connect_hold)(void *u, struct client *c, const char *id, bool clean_start, const struct mqtt_frame *f);
	/* Acknowledge (type, pid, rc) a PUBLISH of c whose message m has just
	 * been routed: true when the cluster holds the ack until JetStream has
	 * the message (then it sends it itself, in order with c's other acks,
	 * c->cluster_acks counting them); false: send it now. */
	bool (*ack_hold)(void *u, struct client *c, const struct message *m, uint8_t type, uint16_t pid, uint8_t rc);
	/* A held client's (cluster_held or cluster_acks) connection ended (client.c on_close). */
	void (*client_gone)(void *u, struct client *c);
	/* s's subscriptions, expiry or connection changed. */
	void (*session_changed)(void *u, struct session *s);
	/* s ends (session_destroy). */
	void (*session_end)(void *u, struct session *s);
};
static inline size_t cluster_route_out(struct broker *b, const struct message *m)
{
	return b->cluster ? b->cluster->route_out(b->cluster_user, m) : 0;
}
static inline void cluster_retain_out(struct broker *b, const struct message *m)
{
	if (b->cluster)
		b->cluster->retain_out(b->cluster_user, m);
}
static inline void cluster_session_attached(struct broker *b, struct session *s)
{
	if (b->cluster)
		b->cluster->attached(b->cluster_user, s);
}
static inline void cluster_will_gone(struct broker *b, struct session *s)
{
	if (b->cluster)
		b->cluster->will_gone(b->cluster_user, s);
}
static inline bool cluster_connect_hold(struct broker *b, struct client *c, const char *id, bool clean_start,
					const struct mqtt_frame *f)
{
	return b->cluster && b->cluster->connect_hold(b->cluster_user, c, id, clean_start, f);
}
/* The acknowledgement of a routed PUBLISH (m: its message): held by the
 * cluster until JetStream has m, or sent now. */
static inline void cluster_send_ack(struct broker *b, struct client *c, const struct message *m, uint8_t type,
				    uint16_t pid, uint8_t rc)
{
	if (!b->cluster || !b->cluster->ack_hold(b->cluster_user, c, m, type, pid, rc))
		client_send_ack(c, type, pid, rc);
}
static inline void cluster_client_gone(struct broker *b, struct client *c)
{
	if (b->cluster && (c->cluster_held || c->cluster_acks))
		b->cluster->client_gone(b->cluster_user, c);
}
static inline void cluster_session_changed(struct broker *b, struct session *s)
{
	if (b->cluster)
		b->cluster->session_changed(b->cluster_user, s);
}
static inline void cluster_session_end(struct broker *b, struct session *s)
{
	if (b->cluster && s->cluster_rec)
		b->cluster->session_end(b->cluster_user, s);
}

/* log.c */
void log_init(struct broker *b);
void log_close(struct broker *b);
/* SIGHUP: reopen the log file by its name (logrotate renamed it). If the
 * new file cannot be opened, lines keep going to the old one. */
void log_reopen(struct broker *b);
/* SIGHUP after the logging options were reloaded: log_init afresh (the file
 * is reopened by name); a log file that cannot be reopened stays open. */
void log_reinit(struct broker *b);
void log_msg(struct broker *b, unsigned type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* What log_format json adds to a line about a client (NULL / 0 fields are
 * left out). event: connect, disconnect, keepalive_timeout, will_published,
 * connect_refused, ... (mosquitto-compat.md lists them). */
struct log_ev {
	const char *event, *client_id, *address, *username, *reason, *topic;
	unsigned keepalive, protocol;
	bool has_keepalive, has_protocol;
	unsigned long long silent_ms;
};
/* log_msg with event fields: the text line is the same as log_msg's. */
void log_event(struct broker *b, unsigned type, const struct log_ev *ev, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
