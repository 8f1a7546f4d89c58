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

#define MEM_CLASS_SHIFT 5 /* small objects are kept by 32-byte size class */
#define MEM_CLASSES 16    /* up to 512 bytes */
#define MEM_CACHE_MAX 1024/* freed blocks kept per class for reuse */

struct mem {
	uint64_t current; /* accounted bytes now ($SYS/broker/heap/current) */
	uint64_t maximum; /* the most current has been ($SYS/broker/heap/maximum) */
	uint64_t limit;   /* memory_limit; 0 = none */
	uint64_t refused; /* allocations refused because of the limit */
	uint64_t msgs;      /* messages allocated from here and alive ($SYS store/messages/count) */
	uint64_t msg_bytes; /* their payload bytes ($SYS store/messages/bytes) */
	void *cache[MEM_CLASSES]; /* mem_obj_*: freed blocks of each class, linked through their first word */
	uint32_t n_cache[MEM_CLASSES];
	bool cache_off;           /* after mem_fini: frees go straight to free() */
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
/* Objects whose size the caller knows again when it frees them (a message,
 * a delivery): as mem_alloc (refusable) or mem_zalloc_always, but a small
 * block is reused from a per-size cache instead of malloc: under load the
 * broker makes and drops one message and one delivery per PUBLISH, in bulk
 * across passes, which malloc's own per-thread cache does not absorb. A
 * small block counts as its class size, a cached one as freed. zero:
 * cleared like calloc. */
void *mem_obj_alloc(struct mem *m, size_t n, bool refusable, bool zero);
void mem_obj_free(struct mem *m, void *p, size_t n);
/* Free the cache (broker_fini); later frees bypass it. */
void mem_fini(struct mem *m);
/* Bytes allocated elsewhere (net's buffers, reported through its hook);
 * a void * user so that it plugs into net_loop_set_mem_hook directly. */
void mem_note(void *m, long long delta);

#endif
