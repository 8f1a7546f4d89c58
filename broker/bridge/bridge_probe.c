/*
 * broker/bridge/bridge_probe.c — round_robin false: while a bridge is up on
 * a secondary address, a plain TCP connect to the primary (the first
 * address) every 5 s; once one succeeds the probe is closed at once and the
 * bridge leaves the secondary for the primary (bridge_back_to_primary), as
 * mosquitto's primary_retry.
 *
 * Deliberately only TCP: a primary that accepts TCP but refuses the bridge
 * makes the bridge fail over again (restart_timeout), as in mosquitto.
 * Invariant: br->probe is the only probe conn of a bridge; its on_close
 * clears it only when it is still the current one.
 */
#include <sys/socket.h>

#include "bridge_int.h"

#define PROBE_EVERY_MS 5000u
#define PROBE_POLL_MS 100u

static void probe_on_data(struct net_conn *conn, void *user)
{
	(void)user;
	size_t n;
	net_conn_input(conn, &n);
	net_conn_consume(conn, n); /* the primary talks first? ignore it */
}

static void probe_on_close(struct net_conn *conn, enum net_close_reason why, int err, void *user)
{
	struct bridge *br = user;
	(void)why;
	(void)err;
	if (br->probe == conn)
		br->probe = NULL; /* refused or reset: the next try is already scheduled */
}

static const struct net_conn_cbs probe_cbs = {probe_on_data, probe_on_close};

static bool wanted(const struct bridge *br)
{
	return !br->conf->round_robin && br->conf->n_addrs > 1 && br->cur_addr != 0 && br->state == BR_UP &&
	       !br->stopped && !br->b->stopping;
}

static void probe_close(struct bridge *br)
{
	if (br->probe) {
		net_conn_close(br->probe, NET_CLOSE_ABORT);
		br->probe = NULL;
	}
}

static void on_probe_timer(struct wheel_entry *e, uint64_t now)
{
	struct bridge *br = (struct bridge *)((char *)e - offsetof(struct bridge, probe_timer));
	struct broker *b = br->b;
	if (!wanted(br)) {
		probe_close(br);
		return;
	}
	if (br->probe && net_conn_ready(br->probe)) {
		probe_close(br);
		bridge_back_to_primary(br);
		return;
	}
	if (now - br->probe_started < PROBE_EVERY_MS) {
		/* pending: poll it; refused (on_close cleared it): wait for the next round */
		wheel_add(&b->wheel, &br->probe_timer, br->probe ? now + PROBE_POLL_MS : br->probe_started + PROBE_EVERY_MS);
		return;
	}
	probe_close(br); /* no answer within 5 s: start over */
	const struct bridge_addr *a = &br->conf->addrs[0];
	char err[256];
	br->probe = net_connect_from(b->loop, a->host, a->port, AF_UNSPEC, NULL, br->conf->bind_address, err,
				     sizeof(err)); /* from where the bridge would connect */
	br->probe_started = now;
	if (br->probe) {
		net_conn_set_cbs(br->probe, &probe_cbs, br);
		wheel_add(&b->wheel, &br->probe_timer, now + PROBE_POLL_MS);
	} else {
		wheel_add(&b->wheel, &br->probe_timer, now + PROBE_EVERY_MS);
	}
}

void bridge_probe_arm(struct bridge *br)
{
	if (!wanted(br) || wheel_armed(&br->probe_timer))
		return;
	br->probe_timer.cb = on_probe_timer;
	/* as mosquitto: the first probe 5 s after connecting to a secondary */
	wheel_add(&br->b->wheel, &br->probe_timer, broker_now(br->b) + PROBE_EVERY_MS);
	br->probe_started = broker_now(br->b);
}

void bridge_probe_stop(struct bridge *br)
{
	wheel_cancel(&br->b->wheel, &br->probe_timer);
	probe_close(br);
}
