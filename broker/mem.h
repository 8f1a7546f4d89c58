/*
 * broker/mem.h — memory_limit: the bytes the broker holds for its load,
 * counted and checked against the limit (see mem.c for what is counted and
 * why this is an allocator of its own rather than a wrapped malloc).
 *
 * Every function takes the accounting (struct mem, one per broker, inside
 * struct broker) explicitly; NULL means "not accounted" (plain malloc/free),
 * for the few objects that are deliberately left out. Durable state restored
 * at start-up was acknowledged before the restart and must not be refused:
 * restore it with the limit lifted (m->limit = 0 while loading).
 */
#ifndef VIGIL_MEM_H
#define VIGIL_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mem {
	uint64_t current; /* accounted bytes now ($SYS/broker/heap/current) */
	uint64_t maximum; /* the most current has been ($SYS/broker/heap/maximum) */
	uint64_t limit;   /* memory_limit; 0 = none */
	uint64_t refused; /* allocations refused because of the limit */
	uint64_t msgs;      /* messages allocated from here and alive ($SYS store/messages/count) */
	uint64_t msg_bytes; /* their payload bytes ($SYS store/messages/bytes) */
};

void mem_init(struct mem *m, uint64_t limit);
/* Would n more bytes stay within the limit? (as mosquitto: current + n <= limit) */
bool mem_fits(const struct mem *m, size_t n);
/* Refusable allocation, for new load (a message, a session): NULL when
 * current + n would exceed the limit (m->refused counts it) or malloc fails. */
void *mem_alloc(struct mem *m, size_t n);
void *mem_zalloc(struct mem *m, size_t n);
/* Counted but never refused by the limit, for what must not fail once the
 * load was accepted (delivering an accepted message, a connection's own
 * state): NULL only when calloc fails. */
void *mem_zalloc_always(struct mem *m, size_t n);
/* Frees a block from the functions above with the same m. NULL ok. */
void mem_free(struct mem *m, void *p);
/* Bytes allocated elsewhere (net's buffers, reported through its hook);
 * a void * user so that it plugs into net_loop_set_mem_hook directly. */
void mem_note(void *m, long long delta);

#endif
