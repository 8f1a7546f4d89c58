/*
 * broker/cluster/cluster.h — the cluster room's one public header: several
 * vigil nodes as one broker over NATS (JetStream for the state that outlives
 * a node). main.c starts and stops it; the core talks to it only through the
 * struct cluster_ops hooks in broker.h (cluster_route_out, ...), which
 * cluster_start installs.
 */
#ifndef VIGIL_CLUSTER_H
#define VIGIL_CLUSTER_H

#include <stddef.h>

struct broker;

/* Without cluster_nats_url: does nothing, returns 0 (b->cluster stays NULL:
 * no NATS code runs). Otherwise installs the hooks and the filter watch,
 * registers the event fd with the loop and starts the NATS link thread,
 * which connects in the background (NATS unreachable: the node serves its
 * local clients, logs it and keeps retrying). Call before the store
 * restores sessions, so restored subscriptions are known. Returns -1 with
 * err filled on a local failure (no memory, no thread, bad TLS files). */
int cluster_start(struct broker *b, char *err, size_t errlen);
/* Leave the cluster: tell the others (they do not mourn a node that said
 * goodbye), forget this node's wills cluster-wide, close NATS, free.
 * Harmless when not started. Call after broker_shutdown, before
 * broker_fini. */
void cluster_stop(struct broker *b);
/* The goodbye of cluster_stop, said early: right after broker_shutdown,
 * before the up to 1.5 s spent flushing clients without timers (no
 * heartbeats then: a node timeout shorter than that would bury this node
 * first, and its delayed wills would go the way of a dead node's). */
void cluster_leave(struct broker *b);

#endif
