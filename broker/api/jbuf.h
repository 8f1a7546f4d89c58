/*
 * broker/api/jbuf.h — a growable output buffer and vigil's one JSON string
 * writer: the API room's, and the core's JSON log lines (log.c) use it too
 * (this header and api.h are the room's only headers the core includes).
 */
#ifndef VIGIL_JBUF_H
#define VIGIL_JBUF_H

#include <stdbool.h>
#include <stddef.h>

struct jbuf {
	char *p;
	size_t len, cap;
	bool oom;      /* an append failed: the content is incomplete */
	bool borrowed; /* p is the caller's buffer (jb_init_buf), not ours to free */
};

/* Start j on the caller's buffer buf (cap bytes, cap > 0): appends that fit
 * need no allocation; a longer content moves to the heap. A zeroed jbuf is
 * valid too (heap from the first append). */
void jb_init_buf(struct jbuf *j, char *buf, size_t cap);
/* Release what j allocated; j is empty (and zeroed) after. */
void jb_free(struct jbuf *j);
void jb_put(struct jbuf *j, const char *s, size_t n);
void jb_puts(struct jbuf *j, const char *s);
void jb_printf(struct jbuf *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal (quotes included): UTF-8 passed through, control
 * characters, '"', '\\' and invalid UTF-8 bytes escaped (invalid bytes as
 * U+FFFD), "</" as "<\/" so that it is safe inside HTML. NULL: null. */
void jb_str(struct jbuf *j, const char *s, size_t n);
void jb_cstr(struct jbuf *j, const char *s);

#endif
