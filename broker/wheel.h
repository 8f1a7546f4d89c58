/*
 * broker/wheel.h — one hierarchical timing wheel for every broker timer
 * (keepalive, pre-CONNECT timeout, will delay, session expiry, retry).
 *
 * Intrusive entries with absolute deadlines in monotonic milliseconds.
 * O(1) insert and cancel. An entry never fires before its deadline; callers
 * sleep until wheel_next() so lateness is bounded by loop latency, not by a
 * tick. Due entries are moved to a local list before their callbacks run, so
 * a callback may re-add itself, cancel others or add new ones.
 * Idle timers cost nothing between their deadlines beyond cascading between
 * levels (at most once per level per entry).
 */
#ifndef VIGIL_WHEEL_H
#define VIGIL_WHEEL_H

#include <stdbool.h>
#include <stdint.h>

struct wheel_entry;
typedef void (*wheel_cb)(struct wheel_entry *e, uint64_t now);

struct wheel_entry {
	struct wheel_entry *next, **pprev; /* pprev == NULL: not armed */
	uint64_t deadline;
	wheel_cb cb;
};

#define WHEEL_BITS 6
#define WHEEL_SLOTS (1u << WHEEL_BITS)
#define WHEEL_LEVELS 7 /* 6*7 = 42 bits of ms: ~139 years */

struct wheel {
	uint64_t now;   /* time the wheel has been advanced to */
	uint64_t count; /* armed entries */
	uint64_t occupied[WHEEL_LEVELS]; /* bit per non-empty slot */
	struct wheel_entry *slots[WHEEL_LEVELS][WHEEL_SLOTS];
};

void wheel_init(struct wheel *w, uint64_t now);
static inline void wheel_entry_init(struct wheel_entry *e, wheel_cb cb)
{
	e->next = 0;
	e->pprev = 0;
	e->deadline = 0;
	e->cb = cb;
}
/* Arm (or re-arm) e for `deadline`. A deadline in the past fires at the next wheel_run. */
void wheel_add(struct wheel *w, struct wheel_entry *e, uint64_t deadline);
/* Disarm e; harmless if it is not armed. */
void wheel_cancel(struct wheel *w, struct wheel_entry *e);
static inline bool wheel_armed(const struct wheel_entry *e)
{
	return e->pprev != 0;
}
/* The earliest time at which wheel_run may have work: a lower bound on the
 * earliest deadline (exact for the first level), or UINT64_MAX when empty. */
uint64_t wheel_next(const struct wheel *w);
/* Fire every entry whose deadline <= now, in deadline order within the
 * same millisecond-agnostic batch. Returns the number fired. */
unsigned wheel_run(struct wheel *w, uint64_t now);

#endif
