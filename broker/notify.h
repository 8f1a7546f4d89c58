/*
 * broker/notify.h — systemd service notifications (notify.c): the calls the
 * composition root (main.c) makes at each stage of the broker's life. Every
 * call does nothing when vigil was not started with NOTIFY_SOCKET set.
 */
#ifndef VIGIL_NOTIFY_H
#define VIGIL_NOTIFY_H

struct broker;
struct notify;

/* Reads NOTIFY_SOCKET and WATCHDOG_USEC (sd_watchdog_enabled). NULL: no
 * memory (the broker runs without notifications). */
struct notify *notify_new(struct broker *b);
/* Cancels the timer; NULL ok. Call before the broker's wheel goes away. */
void notify_free(struct notify *n);
/* READY=1 with STATUS=; starts the WATCHDOG=1 / STATUS= timer. Call once the
 * listeners are open, and again after a reload. */
void notify_ready(struct notify *n);
/* RELOADING=1 (SIGHUP received; notify_ready follows when it is done). */
void notify_reloading(struct notify *n);
/* STOPPING=1: shutdown has begun; the timer stops. */
void notify_stopping(struct notify *n);

#endif
