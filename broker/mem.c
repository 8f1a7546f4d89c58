/*
 * broker/mem.c — memory_limit: accounting of the memory the broker holds
 * for its load, and the check against the limit.
 *
 * What mosquitto 2.0.11 does: every allocation goes through
 * mosquitto__malloc, which refuses it when bytes-in-use + size > limit and
 * counts malloc_usable_size of what it returns. Observed on the Debian
 * binary: the PUBLISH whose message no longer fits is the one that fails;
 * its publisher is disconnected (v5: DISCONNECT 0x80, or a bare close when
 * the packet could not even be read; v3: a bare close) and is not
 * acknowledged; small allocations still fit, so other clients go on
 * connecting, pinging, subscribing and receiving what is stored.
 *
 * What is counted here (usable sizes, as mosquitto): messages (topic,
 * payload, properties: message.c), per-receiver entries (deliver.c),
 * sessions and their ids (session.c), clients (client.c), and through
 * net's memory hook each connection's struct, input buffer and output
 * chunks. Those are what grows with load. Not counted: subscriptions and
 * the topic trees, retained-tree nodes, topic aliases, user names, the
 * configuration and auth files, net/ws.c's frame buffers, libwebsockets and
 * OpenSSL internals, and the broker's own $SYS and log-topic messages (a
 * bounded set; they must go on reporting while the broker sits at its
 * limit). So the $SYS heap topics are this figure, not the process's heap.
 *
 * The policy (mem_alloc vs mem_zalloc_always): only new load is refused —
 * a new message (PUBLISH, will) and a new session. Whatever serves load
 * already accepted (a message's deliveries, acknowledgements, PINGRESP, the
 * output that drains queues) is counted but never refused, so nothing
 * acknowledged is dropped for lack of memory and memory can always drain.
 * The limit can therefore be passed by one message's fan-out; it is a
 * bound on admission, as mosquitto's is in practice.
 *
 * Why one allocator called from a few places, and not the link-time
 * wrapping of malloc (-Wl,--wrap=malloc,calloc,realloc,free,strdup) that
 * would count every byte with no call-site edit:
 *  - the wrapper has no context, so its counter and limit would be process
 *    globals (design rule: no globals except through struct broker; two
 *    brokers in one unit-test process would share one budget);
 *  - libc allocates behind our back (getline, strdup inside libc, open_memstream)
 *    and vigil frees those buffers: the wrapped free would subtract bytes
 *    never added and the counter would drift, the very bug this must avoid;
 *  - it would make every allocation fail at the limit, including the output
 *    chunk of a PUBLISH to a subscriber (deliver.c treats an unsendable
 *    message as delivered) and the PUBACK that lets memory drain: that would
 *    drop acknowledged messages, which we must never do;
 *  - with AddressSanitizer (make san) it works (__real_malloc is ASan's), but
 *    every other link (unit tests, fuzzers, which compile broker sources
 *    without the flags) would need the wrap flags or a stub of __real_*.
 * The price of the explicit allocator: what is not routed through it is not
 * counted (listed above), and the sized accounting relies on
 * malloc_usable_size (glibc, also intercepted by ASan).
 *
 * Invariant: current is the sum of malloc_usable_size over the live blocks
 * allocated with m, plus what mem_note was told; it returns to its start
 * value when the load is gone (checked by tests/unit/test_mem.c).
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

void mem_init(struct mem *m, uint64_t limit)
{
	memset(m, 0, sizeof(*m));
	m->limit = limit;
}

bool mem_fits(const struct mem *m, size_t n)
{
	return !m || !m->limit || (m->current < m->limit && n <= m->limit - m->current);
}

static void *counted(struct mem *m, void *p)
{
	if (m && p) {
		m->current += malloc_usable_size(p);
		if (m->current > m->maximum)
			m->maximum = m->current;
	}
	return p;
}

void *mem_alloc(struct mem *m, size_t n)
{
	if (!mem_fits(m, n)) {
		m->refused++;
		return NULL;
	}
	return counted(m, malloc(n ? n : 1));
}

void *mem_zalloc(struct mem *m, size_t n)
{
	if (!mem_fits(m, n)) {
		m->refused++;
		return NULL;
	}
	return counted(m, calloc(1, n ? n : 1));
}

void *mem_zalloc_always(struct mem *m, size_t n)
{
	return counted(m, calloc(1, n ? n : 1));
}

void mem_free(struct mem *m, void *p)
{
	if (!p)
		return;
	if (m) {
		size_t n = malloc_usable_size(p);
		m->current = m->current > n ? m->current - n : 0;
	}
	free(p);
}

static int obj_class(size_t n)
{
	size_t c = n ? (n - 1) >> MEM_CLASS_SHIFT : 0;
	return c < MEM_CLASSES ? (int)c : -1;
}

void *mem_obj_alloc(struct mem *m, size_t n, bool refusable, bool zero)
{
	int c = m ? obj_class(n) : -1;
	if (c < 0)
		return refusable ? (zero ? mem_zalloc(m, n) : mem_alloc(m, n)) : mem_zalloc_always(m, n);
	size_t size = (size_t)(c + 1) << MEM_CLASS_SHIFT;
	if (refusable && !mem_fits(m, size)) {
		m->refused++;
		return NULL;
	}
	void *p = m->cache[c];
	if (p) {
		memcpy(&m->cache[c], p, sizeof(void *));
		m->n_cache[c]--;
	} else if (!(p = malloc(size))) {
		return NULL;
	}
	if (zero)
		memset(p, 0, size);
	m->current += size;
	if (m->current > m->maximum)
		m->maximum = m->current;
	return p;
}

void mem_obj_free(struct mem *m, void *p, size_t n)
{
	int c = m ? obj_class(n) : -1;
	if (!p || c < 0) {
		mem_free(m, p);
		return;
	}
	size_t size = (size_t)(c + 1) << MEM_CLASS_SHIFT;
	m->current = m->current > size ? m->current - size : 0;
	if (m->cache_off || m->n_cache[c] >= MEM_CACHE_MAX) {
		free(p);
		return;
	}
	memcpy(p, &m->cache[c], sizeof(void *));
	m->cache[c] = p;
	m->n_cache[c]++;
}

void mem_fini(struct mem *m)
{
	for (int c = 0; c < MEM_CLASSES; c++) {
		while (m->cache[c]) {
			void *p = m->cache[c];
			memcpy(&m->cache[c], p, sizeof(void *));
			free(p);
		}
		m->n_cache[c] = 0;
	}
	m->cache_off = true;
}

void mem_note(void *u, long long delta)
{
	struct mem *m = u;
	if (delta < 0) {
		uint64_t d = (uint64_t)-delta;
		m->current = m->current > d ? m->current - d : 0;
	} else {
		m->current += (uint64_t)delta;
		if (m->current > m->maximum)
			m->maximum = m->current;
	}
}
