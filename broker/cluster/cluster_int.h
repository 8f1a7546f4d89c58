/*
 * broker/cluster/cluster_int.h — private to the cluster room.
 *
 * Threads: the loop thread owns struct cluster except the fields marked
 * "shared" (under mu) and "link" (the link thread's). libnats calls back on
 * its own threads; every callback only appends a struct cl_event to the
 * shared queue and writes the eventfd; the loop thread runs the events in
 * order (cluster.c). Blocking NATS calls (connect, JetStream requests) run on
 * the link thread (link.c), asked through the command queue. The loop
 * thread itself only publishes (natsConnection_Publish never waits for the
 * network) and subscribes.
 *
 * Names on NATS, with P = "vigil.<cluster_name>":
 *   P.m.q.<tokens>   routed QoS >= 1 messages, P.m.z.<tokens> QoS 0 ones; a
 *                    node subscribes P.m.*.<tokens> of its local filters
 *                    (subject.c maps them), so NATS sends a message only to
 *                    nodes with a matching subscription
 *   P.long.q, P.long.z  messages whose subject would be too long (every node)
 *   P.hb             heartbeats;  P.conn  client attached;  P.dead  claims
 *   KV vigil_<name>_retain  retained messages, key = topic tokens
 *   KV vigil_<name>_wills   wills, key = <instance>.<client id token>
 *   KV vigil_<name>_dead    one key per dead instance: who publishes its wills
 *   KV vigil_<name>_sess    persistent sessions, key = <instance>.<client id token>:
 *                    what a dead node's sessions resume from (csrecord.c), with
 *                    a cursor into the msgs stream (cadopt.c)
 *   P.sget           "who has the session of this client id?" (every node)
 *   P.s.<token>      one node's direct subject: the answers and the hand-over
 *                    of a session (csession.c)
 *   P.sadopt         a dead instance's sessions have been adopted by the sender
 *   stream vigil_<name>_msgs  captures P.m.q.> and P.long.q (a replay window,
 *                    not a store): QoS >= 1 is published to it with a PubAck
 *                    (message id <instance>-<seq>), and a node that lost
 *                    NATS replays from it (xqos.c), as does the winner of a
 *                    claim for the dead node's sessions (cadopt.c); QoS 0 is
 *                    not stored (at most once: a node cut off misses it)
 */
#ifndef VIGIL_CLUSTER_INT_H
#define VIGIL_CLUSTER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <nats/nats.h>
#include <uthash.h>

#include "broker.h"

#define CL_SUBJ_MAX 3000 /* below nats-server's 4 KiB control line */

enum cl_tag {
	TAG_ROUTE = 0, TAG_HB, TAG_CONN, TAG_DEAD, TAG_RETAIN, TAG_WILL, TAG_GROUP,
	TAG_SGET, TAG_SDIRECT, TAG_SADOPT, TAG_SREC, /* csession.c, csrecord.c */
	TAG_REPLAY,      /* a routed message replayed from the msgs stream (xqos.c) */
	TAG_AREPLAY,     /* one replayed for the sessions of a claimed instance (inst; cadopt.c) */
	N_TAGS
};

enum cl_ev_kind {
	CE_MSG = 0,      /* msg on subscription tag */
	CE_JOINED,       /* connected and JetStream ready (first time or again) */
	CE_DISCONNECTED, /* lost NATS (libnats reconnects) */
	CE_RECONNECTED,
	CE_LOG,          /* text from the link thread */
	CE_CLAIMED,      /* won inst: its wills follow as CE_MSG TAG_WILL, then CE_CLAIM_DONE */
	CE_CLAIM_DONE,   /* the claim of inst is over (won or lost) */
	CE_CLAIM_FAILED, /* NATS did not answer the claim: judge the node again */
	CE_SELF_OK,      /* we claimed our own old instance: carry on as a new one */
	CE_SELF_DEAD,    /* another node declared us dead: step down */
	CE_RETAIN_LOADED,
	CE_JS_ACK,       /* JetStream has our routed message of sequence inst */
	CE_JS_NACK,      /* it did not confirm it (error, timeout): send it again */
	CE_REPLAY_DONE,  /* a CMD_REPLAY ended (inst: messages replayed) */
};

struct cl_event {
	struct cl_event *next;
	enum cl_ev_kind kind;
	enum cl_tag tag;
	natsMsg *msg;
	uint64_t inst;
	unsigned level; /* CE_LOG: LOG_F_* */
	char text[];
};

enum cl_cmd_kind {
	CMD_CLAIM = 0, CMD_SELF, CMD_PURGE, CMD_REPLAY /* inst: from wall ms */,
	CMD_PUT,     /* a key-value record (subj, data), stored before the next command runs */
	CMD_HANDOVER /* goodbye of instance inst, whose records the others must claim */
};
struct cl_cmd {
	struct cl_cmd *next;
	enum cl_cmd_kind kind;
	uint64_t inst;
	char *subj;    /* CMD_PUT: into data, after the record */
	size_t len;
	uint8_t data[];
};

struct cl_filter {
	UT_hash_handle hh;
	natsSubscription *sub[2]; /* the filter's subject; "a/#" also "a" */
	char filter[];
};

/* A share group on a filter with members here: a NATS queue subscription
 * on the filter's subject(s) and on P.long, on nc2; the queue name is the
 * group's token + a hash of the filter, one NATS queue group per MQTT one. */
struct cl_group {
	UT_hash_handle hh; /* by key "group/filter" */
	natsSubscription *sub[3]; /* the filter's subject(s), and P.long */
	int64_t sid[3];
	const char *group, *filter; /* into key: "group/filter\0group\0" */
	char key[];
};

struct cl_peer {
	UT_hash_handle hh;
	uint64_t inst;
	uint64_t last_seen;
	struct wheel_entry timer;
	struct cluster *cl;
	bool heard; /* since this node last (re)joined NATS */
	char node[65];
};

/* A dead node's will waiting for its delay (this node won the claim). */
struct cl_pwill {
	UT_hash_handle hh; /* by client id */
	struct wheel_entry timer;
	struct cluster *cl;
	struct message *m;
	uint32_t rel_expiry; /* the will's Message Expiry Interval, from publication */
	char id[];
};

/* A claim of a dead instance in progress: connects seen after silent_since
 * (its last heartbeat) cancel its delayed wills, even those whose record
 * has not arrived yet (v5 MQTT-3.1.3-9). */
struct cl_claim {
	UT_hash_handle hh; /* by inst */
	uint64_t inst;
	uint64_t silent_since;
};

/* A client id seen connecting (here or on another node) lately, oldest
 * first in the list. */
struct cl_recent {
	UT_hash_handle hh; /* by id */
	struct cl_recent *next;
	uint64_t at;
	uint64_t inst; /* the instance it connected to */
	char id[];
};

struct cluster {
	struct broker *b;
	const struct cluster_conf *conf;
	char name[65];
	char prefix[80];        /* "vigil.<name>" */
	char bucket[4][96];     /* retain, wills, dead, sess */
	char stream[96];        /* vigil_<name>_msgs */
	uint64_t inst;          /* this node's incarnation, random */
	uint64_t seq;           /* routed messages sent */
	unsigned timeout_ms, hb_ms;

	/* loop thread */
	bool joined, connected, in_remote, retain_loaded, stopping;
	bool left; /* cluster_leave said goodbye */
	natsConnection *nc;     /* valid for the loop from CE_JOINED on */
	natsConnection *nc2;    /* the shared-subscription connection (echo on), same */
	struct cl_filter *filters;
	struct cl_group *groups;
	struct cl_unjoined *unjoined; /* retained set or cleared here before the first join */
	struct cl_peer *peers;
	struct cl_pwill *pwills;
	struct cl_claim *claims;
	struct cl_recent *recent, *recent_head, **recent_tail;
	struct wheel_entry hb_timer;
	uint64_t hb_at;         /* when the heartbeat timer was due */
	uint64_t down_since;    /* NATS lost at (0: connected) */
	int efd;
	unsigned drops;         /* messages not sent (too large, buffer full) */
	struct cl_sess *cs;     /* csession.c: sessions on their way between nodes */
	struct cl_xqos *xq;     /* xqos.c: routed QoS >= 1 awaiting JetStream, replays */
	struct cl_adopt_state *ad; /* cadopt.c: adopted sessions awaiting their replay, checkpoints */

	/* shared, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cl_event *ev_head, **ev_tail;
	struct cl_cmd *cmd_head, **cmd_tail;
	bool stop;
	bool thread_started;
	pthread_t thread;

	/* link thread */
	natsOptions *opts, *opts2;
	jsCtx *js;
	jsCtx *js_pub;          /* async publishes of the loop thread (xqos.c), set before CE_JOINED */
	kvStore *kv_dead;
	natsSubscription *sys_sub[4]; /* hb, conn, dead, long */
	struct cl_watch *watch;       /* the retained bucket's consumer (link.c) */
	uint8_t tags[N_TAGS];         /* closures for the callbacks */

	/* shared, atomic */
	_Atomic uint64_t ret_sseq;    /* the retained bucket's stream sequence routed last */
	atomic_bool watch_reset;      /* its consumer must be made again (gap, missed heartbeats, reconnection) */
	_Atomic(void *) watch_sub;    /* its subscription (the error handler compares) */
};

/* cluster.c */
void cluster_post(struct cluster *cl, struct cl_event *e); /* any thread */
void cluster_postf(struct cluster *cl, enum cl_ev_kind kind, uint64_t inst);
void cluster_logf(struct cluster *cl, unsigned level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void cluster_command(struct cluster *cl, enum cl_cmd_kind kind, uint64_t inst); /* loop thread */
void cluster_command_put(struct cluster *cl, const char *subj, const uint8_t *p, size_t len); /* CMD_PUT */

/* link.c: the link thread (connect, JetStream, claims) */
int link_start(struct cluster *cl, char *err, size_t errlen);
void link_stop(struct cluster *cl); /* joins the thread; libnats itself is closed by the caller */
void link_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure);
void link_on_group(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure); /* closure: cl */

/* subject.c: MQTT names to NATS subjects, and the message envelope */
/* prefix + one "." token per topic level; filter: '+' -> '*', '#' -> '>'.
 * Returns the length, or -1 when it would exceed cap - 1 (or CL_SUBJ_MAX). */
int subject_topic(char *out, size_t cap, const char *prefix, const uint8_t *t, size_t len, bool filter);
/* One token for an arbitrary string (client ids). Same return. */
int subject_token(char *out, size_t cap, const uint8_t *s, size_t len);

enum { ENV_QOS = 0x03, ENV_RETAIN = 0x04, ENV_EXPIRY = 0x08, ENV_DELETED = 0x10 };
struct cl_env {
	uint8_t flags;
	uint64_t inst, seq;
	uint64_t expiry_wall;  /* ENV_EXPIRY: wall-clock ms (routed, retained) */
	uint32_t rel_expiry;   /* ENV_EXPIRY on a will: seconds from publication */
	uint32_t delay;        /* a will: seconds to wait after its node died (v5 Will Delay) */
	struct mqtt_str topic, id, user, props, payload;
};
/* Encode into a malloc'd buffer (*len). NULL: no memory. */
uint8_t *env_encode(const struct cl_env *e, size_t *len);
/* Views into p. Returns 0 or -1 (malformed). */
int env_decode(const uint8_t *p, size_t len, struct cl_env *e);

/* xroute.c: routing, filter interest, retained */
size_t xroute_route_out(void *u, const struct message *m);
void xroute_retain_out(void *u, const struct message *m);
void xroute_watch(void *u, struct mqtt_str filter, const char *group, bool added);
void xroute_group_in(struct cluster *cl, natsMsg *msg, int64_t sid);
void xroute_subscribe_all(struct cluster *cl); /* after CE_JOINED */
void xroute_remote_in(struct cluster *cl, natsMsg *msg);
void xroute_retain_in(struct cluster *cl, natsMsg *msg);
/* Once joined and the bucket loaded (CE_JOINED and CE_RETAIN_LOADED, in
 * either order): what was retained or cleared here before the first join
 * and is newer than the bucket's value goes to the bucket. */
void xroute_unjoined_flush(struct cluster *cl);
void xroute_free(struct cluster *cl);
/* A message from an envelope (shared by routing, retained, wills). NULL: no memory. */
struct message *xroute_message(struct cluster *cl, const struct cl_env *e, bool will);
/* When msg was stored by JetStream (monotonic ms), for one read from the
 * stream; now for a core NATS message. */
uint64_t xroute_stream_at(struct cluster *cl, natsMsg *msg);

/* nodes.c: heartbeats, node death, wills, takeover */
void nodes_start(struct cluster *cl);
void nodes_joined(struct cluster *cl);
void nodes_hb_in(struct cluster *cl, natsMsg *msg);
void nodes_conn_in(struct cluster *cl, natsMsg *msg);
void nodes_dead_in(struct cluster *cl, natsMsg *msg);
void nodes_will_in(struct cluster *cl, natsMsg *msg); /* a claimed node's will: publish */
void nodes_step_down(struct cluster *cl);             /* CE_SELF_DEAD */
void nodes_new_instance(struct cluster *cl);          /* CE_SELF_OK */
void nodes_attached(void *u, struct session *s);
void nodes_will_gone(void *u, struct session *s);
/* The peer of instance inst, created (and its liveness timer armed) when
 * unknown and create is set; NULL otherwise or without memory. */
struct cl_peer *nodes_peer(struct cluster *cl, uint64_t inst, bool create);
void nodes_bye(struct cluster *cl);
void nodes_claim_done(struct cluster *cl, uint64_t inst); /* CE_CLAIM_DONE: claim over, won or lost */
void nodes_free(struct cluster *cl);

/* xqos.c: routed QoS >= 1 at least once between nodes, once at delivery */
int xqos_start(struct cluster *cl); /* 0 or -1 (no memory) */
void xqos_free(struct cluster *cl);
/* A routed QoS >= 1 message (buf, len) for subj: published to JetStream
 * with a PubAck, kept until it confirms. false: not taken (no memory, or
 * NATS lost for longer than the hold bound): publish it on core NATS. */
bool xqos_publish(struct cluster *cl, const char *subj, const uint8_t *buf, size_t len, uint64_t seq);
bool xqos_ack_hold(void *u, struct client *c, const struct message *m, uint8_t type, uint16_t pid, uint8_t rc);
void xqos_client_gone(struct cluster *cl, struct client *c);
void xqos_js_ack(struct cluster *cl, uint64_t seq, bool ok); /* CE_JS_ACK, CE_JS_NACK */
void xqos_reconnected(struct cluster *cl); /* CE_RECONNECTED, before down_since is cleared */
void xqos_peer_heard(struct cluster *cl);  /* a peer heard for the first time since (re)joining */
/* A routed message (live or replayed) while a replay runs: kept (e->msg
 * taken) and routed after it, by sequence. */
bool xqos_defer(struct cluster *cl, struct cl_event *e);
void xqos_replay_done(struct cluster *cl, uint64_t n); /* CE_REPLAY_DONE */
/* Was routed message (origin instance, seq) routed here already? Marks it
 * seen. Remembered per instance for as long as the stream keeps messages,
 * also after that instance left (its messages may still be replayed). */
bool xqos_seen(struct cluster *cl, uint64_t inst, uint64_t seq);
/* A message goes out under this node's instance: so a replay of it, also
 * after the node took a new instance, is not routed here again. */
void xqos_routed(struct cluster *cl);
/* Each origin instance routed here lately, with the highest sequence seen
 * from it (one of ours: cl->seq, which goes on across our instances). */
void xqos_each_origin(struct cluster *cl, void (*fn)(void *u, uint64_t inst, uint64_t seq), void *u);
/* libnats' thread: JetStream's answer to an async publish */
void xqos_on_puback(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure);

/* csession.c: a persistent session moves to the node its client connects to */
int csession_start(struct cluster *cl);  /* 0 or -1 (no memory) */
void csession_joined(struct cluster *cl); /* first CE_JOINED: subscribe */
void csession_free(struct cluster *cl);
size_t csession_route_out(void *u, const struct message *m); /* xroute_route_out + message identity */
void csession_attached(void *u, struct session *s);
bool csession_hold(void *u, struct client *c, const char *id, bool clean_start, const struct mqtt_frame *f);
void csession_left(struct cluster *cl, uint64_t inst); /* a peer said goodbye: it answers no more */
void csession_client_gone(void *u, struct client *c);
void csession_get_in(struct cluster *cl, natsMsg *msg);    /* P.sget */
void csession_direct_in(struct cluster *cl, natsMsg *msg); /* P.s.<token> */
void csession_adopt_in(struct cluster *cl, natsMsg *msg);  /* P.sadopt */
void csession_claimed(struct cluster *cl, uint64_t inst);  /* CE_CLAIMED */
void csession_claim_done(struct cluster *cl, uint64_t inst); /* CE_CLAIM_DONE */
void csession_step_down(struct cluster *cl);
/* Is a session for id on its way here? (nodes.c must not drop it then) */
bool csession_busy(struct cluster *cl, const char *id);
bool csession_pending(struct cluster *cl, const char *id); /* a hand-over for id in progress (asking or taking) */
const char *csession_direct(const struct cluster *cl);    /* this node's direct subject (replies) */
struct cl_wbuf;
/* the hand-over's messages: kind, sender instance, request number, client id, then per kind */
enum { K_GET = 1, K_NONE, K_SUBS, K_TAKE, K_DATA, K_END, K_GONE };
enum { IT_OUT = 1, IT_QOS2 = 2 }; /* K_DATA items */
void cs_hdr(struct cluster *cl, struct cl_wbuf *w, int kind, uint64_t req, const char *id);
/* Publish w (freed) to subj, with reply; a failure is logged (the hand-over times out). */
void cs_send_to(struct cluster *cl, const char *subj, const char *reply, struct cl_wbuf *w);
void cs_answer(struct cluster *cl, const char *to, int kind, uint64_t req, const char *id);
/* csowner.c: the owner's side */
void csession_take_in(struct cluster *cl, uint64_t from, uint64_t req, const char *id, const char *reply);

/* csrecord.c: session records in the sess bucket, and their encoding */
struct cl_wbuf {
	uint8_t *p;
	size_t len, cap;
	bool err;
};
struct cl_rbuf {
	const uint8_t *p;
	size_t len, off;
	bool err;
};
void csrecord_put(struct cl_wbuf *w, const void *d, size_t n);
void csrecord_le(struct cl_wbuf *w, uint64_t v, int bytes);
void csrecord_str(struct cl_wbuf *w, const char *s, size_t n); /* s NULL: absent */
uint64_t csrecord_get(struct cl_rbuf *r, int bytes);
const uint8_t *csrecord_bytes(struct cl_rbuf *r, size_t n);
char *csrecord_getstr(struct cl_rbuf *r, bool *absent); /* malloc'd; NULL: absent or error */
/* A session as a record: version, expiry, the wall time it expires (0:
 * counted from now), user, listener, subscriptions; with cursor, also
 * where a replay of its messages starts and what it had already
 * (cadopt.c). */
void csrecord_encode(struct cluster *cl, struct session *s, struct cl_wbuf *w, bool cursor);
struct cl_meta {
	uint8_t format;  /* 1: no cursor; 2: from_wall and cursor follow */
	uint64_t from_wall;
	uint8_t *cursor; /* malloc'd copy, cursor_len bytes (cadopt.c reads it) */
	size_t cursor_len;
	uint8_t version;
	uint32_t expiry;
	uint64_t expires_wall;
	char *id, *username;
	int listener;
	uint32_t n_subs;
	struct cl_msub {
		char *filter;
		uint8_t options;
		uint32_t sub_id;
	} *subs;
};
int csrecord_decode(struct cl_rbuf *r, struct cl_meta *m); /* 0 or -1; csrecord_meta_free either way */
void csrecord_meta_free(struct cl_meta *m);
/* A detached session built from m, its subscriptions in the tree (and so
 * on NATS); not yet saved. NULL: no memory, bad record, id in use. */
struct session *csrecord_build(struct cluster *cl, const struct cl_meta *m);
void csrecord_changed(void *u, struct session *s); /* session_changed hook: put or delete */
void csrecord_end(void *u, struct session *s);     /* session_end hook: delete */
void csrecord_put_all(struct cluster *cl);         /* joined, new instance */
void csrecord_store(struct cluster *cl, struct session *s); /* (re)write s's record now */
bool csrecord_recorded(const struct session *s);  /* s has a record in the cluster (persistent) */
void csrecord_adopt(struct cluster *cl, natsMsg *msg, uint64_t inst); /* a record of dead instance inst (claim won) */

/* cadopt.c: a dead node's sessions get the messages it had queued for
 * them, replayed from the msgs stream; records checkpointed meanwhile */
int cadopt_start(struct cluster *cl); /* 0 or -1 (no memory) */
void cadopt_free(struct cluster *cl);
/* The cursor part of s's record (after its subscriptions). Returns the
 * wall ms a replay for it must start from. */
uint64_t cadopt_cursor(struct cluster *cl, struct session *s, struct cl_wbuf *w);
/* s was built from the record m of claimed instance inst: await its replay. */
void cadopt_add(struct cluster *cl, struct session *s, uint64_t inst, const struct cl_meta *m);
void cadopt_replay_in(struct cluster *cl, natsMsg *msg, uint64_t inst); /* TAG_AREPLAY */
void cadopt_done(struct cluster *cl, uint64_t inst); /* CE_CLAIM_DONE: the replay is over */
bool cadopt_busy(struct cluster *cl, const char *id); /* id's session awaits its replay here */
/* A P.sget for a session awaiting its replay: kept (e->msg taken) and
 * answered when it is over. */
bool cadopt_defer_get(struct cluster *cl, struct cl_event *e);

#endif
