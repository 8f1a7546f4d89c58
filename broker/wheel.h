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
	struct wheel_entry *far; /* deadlines beyond the current 2^42 ms block */
};

void wheel_init(struct wheel *w, uint64_t now);
static inline void wheel_entry_init(struct wheel_entry *e, wheel_cb cb)
{
	e->next = 0;
	e->pprev = 0;
	e->deadline = 0;
	e->cb = cb;
}
/* Arm (or re-arm) e for `deadline` (any uint64_t; UINT64_MAX is fine for
 * "never"). A deadline <= w->now fires at the next wheel_run, also when it is
 * added from a callback inside wheel_run (never in the same run, so a
 * callback re-adding itself in the past cannot loop). Re-arming an entry
 * that waits in wheel_run's due list takes it out of that list. */
void wheel_add(struct wheel *w, struct wheel_entry *e, uint64_t deadline);
/* Disarm e; harmless if it is not armed. Inside wheel_run, cancelling an
 * entry that is due but not yet fired prevents it from firing. An armed entry
 * must be cancelled before its memory is freed. */
void wheel_cancel(struct wheel *w, struct wheel_entry *e);
static inline bool wheel_armed(const struct wheel_entry *e)
{
	return e->pprev != 0;
}
/* The earliest time at which wheel_run may have work: a lower bound on the
 * earliest deadline, exact when the earliest entry sits in level 0 (deadline
 * within the current 64 ms block) or is already past (then it is <= now);
 * otherwise the start of the earliest occupied slot, so a loop sleeping until
 * wheel_next wakes needlessly at most once per level cascade. UINT64_MAX when
 * empty. */
uint64_t wheel_next(const struct wheel *w);
/* Fire every entry whose deadline <= now and none other, in deadline order
 * (ties in no particular order); cb gets this `now`. Entries are disarmed
 * (wheel_armed false) before their callback runs. A `now` far ahead costs
 * O(entries), not O(ms); a `now` behind w->now only fires past-due entries
 * and does not move the wheel back. Not re-entrant: never call wheel_run
 * from a callback. Returns the number fired. */
unsigned wheel_run(struct wheel *w, uint64_t now);

#endif
