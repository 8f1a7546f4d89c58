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
};

/* bridge_topic.c: no-local + retain-as-published on the local subscriptions. */
#define BRIDGE_LOCAL_SUB_OPTS 0x0C

#endif
