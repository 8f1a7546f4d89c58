/*
 * broker/bridge/bridge_int.h — private to the .c files of broker/bridge: struct bridge.
 */
#ifndef VIGIL_BRIDGE_INT_H
#define VIGIL_BRIDGE_INT_H

#include "bridge.h"
#include "broker.h"

enum bridge_state {
	BR_IDLE = 0,       /* waiting for the restart timer (or stopped) */
	BR_CONNECTING = 1, /* TCP connect and CONNECT sent, waiting for CONNACK */
	BR_UP = 2,         /* CONNACK 0 received */
};

struct bridge {
	struct broker *b;
	const struct bridge_conf *conf;
	struct listener l;           /* what the core reads through c->l: no mount point, no ACL */
	struct listener_conf lconf;
	struct net_tls *tls;         /* client context when bridge_cafile / bridge_capath is set */
	struct session *s;           /* the local side: an ordinary session */
	struct client *c;            /* the current connection, or NULL */
	struct wheel_entry timer;    /* restart, or liveness (PINGREQ / dead remote) */
	enum bridge_state state;
	uint8_t version;             /* protocol used on the wire (3, 4, 5) */
	bool try_private;            /* still offering the bridge bit (cleared if refused) */
	bool stopped;
	size_t cur_addr;
	unsigned restart_ms;         /* current restart delay (backoff state) */
	uint64_t next_ping;          /* monotonic ms: PINGREQ due */
	uint64_t started;            /* monotonic ms of this connection attempt */
	uint16_t notify_pid;         /* packet ids for the remote notification */
	/* start_type lazy */
	uint64_t last_msg;           /* monotonic ms of the last PUBLISH either way (idle_timeout) */
	uint64_t not_before;         /* monotonic ms: no lazy reconnect before (restart_timeout) */
	bool idle_closed;            /* the connection is being closed for idle_timeout */
	/* round_robin false: TCP probe of the primary address while on another */
	struct net_conn *probe;
	struct wheel_entry probe_timer;
	uint64_t probe_started;
	bool to_primary;             /* closing a secondary connection: reconnect to address 0 at once */
	/* counters ($SYS/broker/vigil/bridge/NAME/..., bridge_sys.c) */
	uint64_t n_out, n_in, n_connects, n_losses, n_timeouts;
};

/* bridge_probe.c: start (or keep) probing the primary address while the
 * bridge is up on another one (round_robin false); stop probing. */
void bridge_probe_arm(struct bridge *br);
void bridge_probe_stop(struct bridge *br);
/* bridge.c: leave the current (secondary) connection for the primary address. */
void bridge_back_to_primary(struct bridge *br);
/* bridge_lazy.c: connect a lazy bridge that is down if threshold messages wait. */
void bridge_lazy_check(struct bridge *br);
/* Messages waiting for the remote: in flight plus queued. */
uint32_t bridge_waiting(const struct bridge *br);

/* bridge_topic.c: no-local + retain-as-published on the local subscriptions. */
#define BRIDGE_LOCAL_SUB_OPTS 0x0C

#endif
