/*
 * broker/wheel.c — hierarchical timing wheel, 7 levels of 64 slots, 1 ms.
 *
 * Does: place each armed entry by the highest bit in which its deadline
 * differs from w->now (level = bit / 6, slot = the deadline's 6 bits at that
 * level), cascade entries down as time reaches their slot, and hand every
 * due entry to its callback. wheel_run skips empty time with the occupancy
 * bitmaps, so a jump of days (suspend) costs O(entries), not O(ms).
 * Does not: read the clock, allocate, or support wheel_run re-entered from a
 * callback.
 *
 * Key invariant: an entry at level L > 0 agrees with w->now on every
 * deadline bit above 6(L+1) and its slot index is strictly greater than
 * w->now's index at level L; an entry at level 0 either has deadline > now
 * (slot = deadline & 63, same upper bits) or deadline <= now, and then sits
 * in the "past" slot (now & 63) and fires at the next wheel_run. Entries
 * whose deadline leaves the current 2^42 ms block wait on w->far. Every
 * entry is checked against its own deadline before it fires, so nothing
 * ever fires early.
 */
#include "wheel.h"

#include <stddef.h>

#define LEVEL_SPAN_BITS (WHEEL_BITS * WHEEL_LEVELS) /* 42 */

static inline uint64_t low_mask(unsigned bits)
{
	return bits >= 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
}

static void link_front(struct wheel_entry **head, struct wheel_entry *e)
{
	e->next = *head;
	if (e->next)
		e->next->pprev = &e->next;
	*head = e;
	e->pprev = head;
}

/* Unlink e from whatever list holds it; keeps occupancy bits exact. */
static void unlink_entry(struct wheel *w, struct wheel_entry *e)
{
	*e->pprev = e->next;
	if (e->next)
		e->next->pprev = e->pprev;
	uintptr_t p = (uintptr_t)e->pprev, base = (uintptr_t)&w->slots[0][0];
	if (p >= base && p < base + sizeof w->slots) {
		size_t idx = (p - base) / sizeof(struct wheel_entry *);
		if (!w->slots[idx / WHEEL_SLOTS][idx % WHEEL_SLOTS])
			w->occupied[idx / WHEEL_SLOTS] &= ~(UINT64_C(1) << (idx % WHEEL_SLOTS));
	}
	e->next = NULL;
	e->pprev = NULL;
}

/* Put e (not linked) in its place relative to w->now. */
static void place(struct wheel *w, struct wheel_entry *e)
{
	uint64_t d = e->deadline, now = w->now;
	unsigned level, slot;
	if (d <= now) {
		level = 0;
		slot = now & (WHEEL_SLOTS - 1);
	} else {
		uint64_t x = d ^ now;
		if (x >> LEVEL_SPAN_BITS) {
			link_front(&w->far, e);
			return;
		}
		level = (63u - (unsigned)__builtin_clzll(x)) / WHEEL_BITS;
		slot = (d >> (level * WHEEL_BITS)) & (WHEEL_SLOTS - 1);
	}
	link_front(&w->slots[level][slot], e);
	w->occupied[level] |= UINT64_C(1) << slot;
}

void wheel_init(struct wheel *w, uint64_t now)
{
	*w = (struct wheel){.now = now};
}

void wheel_add(struct wheel *w, struct wheel_entry *e, uint64_t deadline)
{
	if (e->pprev)
		unlink_entry(w, e);
	else
		w->count++;
	e->deadline = deadline;
	place(w, e);
}

void wheel_cancel(struct wheel *w, struct wheel_entry *e)
{
	if (!e->pprev)
		return;
	unlink_entry(w, e);
	w->count--;
}

/* Earliest time > w->now at which some slot (or the far list) must be
 * looked at; UINT64_MAX if none. Ignores the level-0 "past" slot. */
static uint64_t next_event(const struct wheel *w)
{
	uint64_t now = w->now;
	for (unsigned l = 0; l < WHEEL_LEVELS; l++) {
		unsigned shift = l * WHEEL_BITS;
		unsigned cur = (now >> shift) & (WHEEL_SLOTS - 1);
		uint64_t later = cur == WHEEL_SLOTS - 1 ? 0 : w->occupied[l] & (UINT64_MAX << (cur + 1));
		if (later) {
			/* Lower levels always lie before higher ones: first found wins. */
			uint64_t s = (uint64_t)__builtin_ctzll(later);
			return (now & ~low_mask(shift + WHEEL_BITS)) | (s << shift);
		}
	}
	if (w->far)
		return (now | low_mask(LEVEL_SPAN_BITS)) + 1; /* cannot wrap: far entries lie beyond */
	return UINT64_MAX;
}

uint64_t wheel_next(const struct wheel *w)
{
	if (!w->count)
		return UINT64_MAX;
	unsigned cur = w->now & (WHEEL_SLOTS - 1);
	if (w->occupied[0] & (UINT64_C(1) << cur)) {
		/* Entries added with a deadline <= now: exact minimum. */
		uint64_t min = UINT64_MAX;
		for (const struct wheel_entry *e = w->slots[0][cur]; e; e = e->next)
			if (e->deadline < min)
				min = e->deadline;
		return min;
	}
	/* count may include entries in wheel_run's local due list, which are
	 * fired before wheel_run returns; next_event ignores them. */
	return next_event(w);
}

/* Move every entry of *head whose deadline <= limit to *due; re-place the
 * rest relative to w->now (they land strictly lower, or back in the
 * past slot when limit < w->now). */
static void process_list(struct wheel *w, struct wheel_entry **head, uint64_t limit, struct wheel_entry **due)
{
	struct wheel_entry *e = *head;
	*head = NULL;
	while (e) {
		struct wheel_entry *next = e->next;
		e->next = NULL;
		e->pprev = NULL;
		if (e->deadline <= limit)
			link_front(due, e);
		else
			place(w, e);
		e = next;
	}
}

static void process_slot(struct wheel *w, unsigned level, unsigned slot, uint64_t limit, struct wheel_entry **due)
{
	w->occupied[level] &= ~(UINT64_C(1) << slot);
	process_list(w, &w->slots[level][slot], limit, due);
}

/* Stable merge sort of a singly linked list by deadline (pprev ignored). */
static struct wheel_entry *sort_by_deadline(struct wheel_entry *list)
{
	if (!list || !list->next)
		return list;
	struct wheel_entry *slow = list, *fast = list->next;
	while (fast && fast->next) {
		slow = slow->next;
		fast = fast->next->next;
	}
	struct wheel_entry *b = slow->next;
	slow->next = NULL;
	struct wheel_entry *a = sort_by_deadline(list);
	b = sort_by_deadline(b);
	struct wheel_entry *head = NULL, **tail = &head;
	while (a && b) {
		struct wheel_entry **pick = b->deadline < a->deadline ? &b : &a;
		*tail = *pick;
		tail = &(*pick)->next;
		*pick = (*pick)->next;
	}
	*tail = a ? a : b;
	return head;
}

unsigned wheel_run(struct wheel *w, uint64_t now)
{
	struct wheel_entry *due = NULL;
	unsigned cur = w->now & (WHEEL_SLOTS - 1);

	/* The past slot: entries added with deadline <= w->now. */
	if (w->occupied[0] & (UINT64_C(1) << cur))
		process_slot(w, 0, cur, now, &due);

	/* Jump from event to event; each entry cascades at most once per level. */
	while (w->now < now) {
		uint64_t t = next_event(w);
		if (t > now) {
			w->now = now; /* no slot starts in (w->now, now]: placement stays valid */
			break;
		}
		w->now = t;
		if (w->far && !(t & low_mask(LEVEL_SPAN_BITS)))
			process_list(w, &w->far, now, &due);
		for (int l = WHEEL_LEVELS - 1; l >= 0; l--) {
			unsigned shift = (unsigned)l * WHEEL_BITS;
			if (t & low_mask(shift))
				continue;
			unsigned s = (t >> shift) & (WHEEL_SLOTS - 1);
			if (w->occupied[l] & (UINT64_C(1) << s))
				process_slot(w, (unsigned)l, s, now, &due);
		}
	}

	/* Sort, then relink with pprev so a callback may cancel a due entry. */
	due = sort_by_deadline(due);
	for (struct wheel_entry **pp = &due; *pp; pp = &(*pp)->next)
		(*pp)->pprev = pp;

	unsigned fired = 0;
	while (due) {
		struct wheel_entry *e = due;
		due = e->next;
		if (due)
			due->pprev = &due;
		e->next = NULL;
		e->pprev = NULL;
		w->count--;
		fired++;
		e->cb(e, now);
	}
	return fired;
}
