/*
 * broker/notify.c — systemd's service notifications (Type=notify) through
 * libsystemd's sd_notify(3): READY=1 once the listeners are open,
 * RELOADING=1 / READY=1 around a SIGHUP reload, STOPPING=1 at shutdown,
 * STATUS= with the number of connected clients, and WATCHDOG=1 at half of
 * WATCHDOG_USEC when the service manager asks for a watchdog.
 * Deliberately not here: a thread. The keep-alive is a wheel timer on the
 * broker's loop, so a loop that stops turning stops the pings and systemd
 * restarts the service, which is the point of the watchdog.
 * Without NOTIFY_SOCKET (not started by systemd) every call is cheap and
 * sends nothing; the timer runs only when there is something to send.
 * Invariant: at most one timer armed; it is cancelled by notify_free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "broker.h"
#include "notify.h"

/* STATUS= refresh period when there is no watchdog (ms). */
#define NOTIFY_STATUS_MS 5000u

struct notify {
	struct wheel_entry timer;
	struct broker *b;
	bool active;          /* NOTIFY_SOCKET was set at start */
	uint64_t period_ms;   /* timer period: half the watchdog, or the status refresh */
	bool watchdog;
	uint64_t last_clients; /* in the last STATUS= sent */
	bool status_sent;
};

static void status_line(const struct broker *b, char *buf, size_t cap)
{
	unsigned long long n = b->st.clients_connected;
	snprintf(buf, cap, "STATUS=%llu client%s connected", n, n == 1 ? "" : "s");
}

static void on_timer(struct wheel_entry *e, uint64_t now)
{
	struct notify *n = (struct notify *)((char *)e - offsetof(struct notify, timer));
	struct broker *b = n->b;
	char msg[96];
	size_t len = 0;
	if (n->watchdog)
		len = (size_t)snprintf(msg, sizeof(msg), "WATCHDOG=1\n");
	if (!n->status_sent || b->st.clients_connected != n->last_clients) {
		status_line(b, msg + len, sizeof(msg) - len);
		n->last_clients = b->st.clients_connected;
		n->status_sent = true;
	}
	if (msg[0] && len < sizeof(msg))
		sd_notify(0, msg);
	wheel_add(&b->wheel, &n->timer, now + n->period_ms);
}

struct notify *notify_new(struct broker *b)
{
	struct notify *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->b = b;
	wheel_entry_init(&n->timer, on_timer);
	const char *sock = getenv("NOTIFY_SOCKET");
	n->active = sock && sock[0];
	uint64_t usec = 0;
	/* > 0 only when WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is us). */
	if (n->active && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		n->watchdog = true;
		n->period_ms = usec / 2000u;
		if (n->period_ms == 0)
			n->period_ms = 1;
	} else {
		n->period_ms = NOTIFY_STATUS_MS;
	}
	return n;
}

void notify_free(struct notify *n)
{
	if (!n)
		return;
	wheel_cancel(&n->b->wheel, &n->timer);
	free(n);
}

void notify_ready(struct notify *n)
{
	if (!n || !n->active)
		return;
	struct broker *b = n->b;
	char msg[128];
	int len = snprintf(msg, sizeof(msg), "READY=1\n%s", n->watchdog ? "WATCHDOG=1\n" : "");
	status_line(b, msg + len, sizeof(msg) - (size_t)len);
	n->last_clients = b->st.clients_connected;
	n->status_sent = true;
	sd_notify(0, msg);
	wheel_cancel(&b->wheel, &n->timer);
	wheel_add(&b->wheel, &n->timer, broker_now(b) + n->period_ms);
}

void notify_reloading(struct notify *n)
{
	if (!n || !n->active)
		return;
	/* MONOTONIC_USEC: required by systemd >= 253 for Type=notify-reload. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=Reloading configuration",
		   (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
}

void notify_stopping(struct notify *n)
{
	if (!n || !n->active)
		return;
	wheel_cancel(&n->b->wheel, &n->timer);
	/* Pings stop: systemd's stop timeout now applies, not the watchdog. */
	sd_notify(0, "STOPPING=1\nSTATUS=Shutting down");
}
