/*
 * net/conn.c — struct net_conn: life cycle, input buffer, output queue,
 * the owner-facing accessors and socket options.
 *
 * Input: a conn with no unconsumed input owns no buffer; reads go into the
 * loop's shared 64 KiB scratch buffer and only the unconsumed tail (a
 * partial frame) is copied into a buffer of the conn's own, which then
 * grows (up to the input limit) and is freed once consumed. Idle conns
 * therefore cost no input memory. Output: a list of chunks (16 KiB or the
 * size of a bigger write), appended to by net_conn_write / reserve+commit
 * and drained by writev in conn_io.c.
 *
 * Not here: reading, flushing, closing sockets (conn_io.c).
 * Invariant: a conn is freed only by net_conn_destroy, called from the reap
 * step or net_loop_free, never inside a callback.
 */
#include "net_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct net_conn *net_conn_new(struct net_loop *loop, int fd, struct net_listener *l,
			      const struct net_transport *tp, const char *peer)
{
	if (!peer)
		peer = "";
	size_t plen = strlen(peer);
	struct net_conn *c = calloc(1, sizeof *c + plen + 1);
	if (!c)
		return NULL;
	net_mem(loop, c, 1);
	memcpy(c->peer, peer, plen + 1);
	c->h.kind = NET_H_CONN;
	c->loop = loop;
	c->listener = l;
	if (l)
		l->refs++;
	c->tp = tp;
	c->fd = fd;
	c->in_limit = NET_INPUT_LIMIT_DEFAULT;
	if (!tp->handshake)
		c->flags |= NET_CF_READY;
	net_list_init(&c->link_dirty);
	net_list_init(&c->link_reap);
	net_list_init(&c->link_rdpend);
	net_list_add_tail(&loop->conns, &c->link_all);
	return c;
}

void net_conn_discard_output(struct net_conn *c)
{
	c->reserved = 0;
	net_conn_free_out(c);
	net_list_del(&c->link_dirty);
}

static int spare_class(size_t cap)
{
	return cap == NET_CHUNK_FIRST ? 0 : cap == NET_CHUNK_SIZE ? 1 : -1;
}

void net_chunk_release(struct net_loop *loop, struct net_chunk *k)
{
	net_mem(loop, k, -1); /* a spare is not connection memory */
	int i = spare_class(k->cap);
	if (i < 0 || loop->n_spare[i] >= NET_SPARE_MAX) {
		free(k);
		return;
	}
	k->next = loop->spare[i];
	loop->spare[i] = k;
	loop->n_spare[i]++;
}

void net_chunk_spares_free(struct net_loop *loop)
{
	for (int i = 0; i < 2; i++) {
		while (loop->spare[i]) {
			struct net_chunk *k = loop->spare[i];
			loop->spare[i] = k->next;
			free(k);
		}
		loop->n_spare[i] = 0;
	}
}

static struct net_chunk *chunk_get(struct net_loop *loop, size_t cap)
{
	int i = spare_class(cap);
	struct net_chunk *k;
	if (i >= 0 && loop->spare[i]) {
		k = loop->spare[i];
		loop->spare[i] = k->next;
		loop->n_spare[i]--;
	} else {
		k = malloc(sizeof *k + cap);
		if (!k)
			return NULL;
	}
	net_mem(loop, k, 1);
	return k;
}

void net_conn_free_out(struct net_conn *c)
{
	struct net_chunk *k = c->out_head;
	while (k) {
		struct net_chunk *next = k->next;
		net_chunk_release(c->loop, k);
		k = next;
	}
	c->out_head = c->out_tail = NULL;
	c->out_bytes = 0;
	c->reserved = 0;
}

void net_conn_destroy(struct net_conn *c)
{
	if (!c)
		return;
	struct net_loop *loop = c->loop;
	net_list_del(&c->link_all);
	net_list_del(&c->link_dirty);
	net_list_del(&c->link_reap);
	net_list_del(&c->link_rdpend);
	bool abort_ = (c->flags & NET_CF_ABORT) != 0;
	if (c->tp->close)
		c->tp->close(c, abort_);
	if (c->fd >= 0 && !(c->flags & NET_CF_TP_OWNS_IO)) {
		if (c->ev)
			net_loop_ctl(loop, c->fd, &c->h, c->ev, 0);
		if (abort_ && !(c->flags & NET_CF_UNIX)) {
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };
			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		}
		close(c->fd);
	}
	c->h.dead = 1;
	net_mem(loop, c->in_own, -1);
	free(c->in_own);
	net_conn_free_out(c);
	free(c->cert_cn);
	free(c->cert_subject);
	free(c->psk_identity);
	if (c->listener)
		net_listener_unref(c->listener);
	net_mem(loop, c, -1);
	free(c);
}

void net_conn_set_cbs(struct net_conn *c, const struct net_conn_cbs *cbs, void *user)
{
	if (cbs)
		c->cbs = cbs;
	else
		c->cbs = NULL;
	c->cb_user = user;
	if (!(c->flags & NET_CF_USER_SET))
		c->user = user;
}

/* net_conn_user returns what net_conn_set_user stored, else the callback
 * user given to net_conn_set_cbs. */
void net_conn_set_user(struct net_conn *c, void *user)
{
	c->user = user;
	c->flags |= NET_CF_USER_SET;
}

void *net_conn_user(const struct net_conn *c)
{
	return c->user;
}

/* ---- close bookkeeping ------------------------------------------------------------ */

static void conn_schedule_reap(struct net_conn *c)
{
	if (!(c->flags & NET_CF_CLOSED_CB) && !net_link_linked(&c->link_reap))
		net_list_add_tail(&c->loop->reap, &c->link_reap);
}

void net_conn_close(struct net_conn *c, enum net_close_how how)
{
	if (!c || (c->flags & NET_CF_CLOSED_CB))
		return;
	if (how == NET_CLOSE_ABORT)
		c->flags |= NET_CF_ABORT;
	if (!(c->flags & NET_CF_CLOSING)) {
		c->flags |= NET_CF_CLOSING;
		c->why = NET_CLOSED_LOCAL;
		c->err = 0;
	}
	conn_schedule_reap(c);
	net_conn_update_events(c);
}

bool net_conn_closing(const struct net_conn *c)
{
	return (c->flags & NET_CF_CLOSING) != 0;
}

void net_conn_fail(struct net_conn *c, enum net_close_reason why, int err)
{
	if (why == NET_CLOSED_RESET || why == NET_CLOSED_ERROR)
		c->flags |= NET_CF_ABORT; /* nobody to flush to */
	if (c->flags & NET_CF_CLOSED_CB) {
		c->flags |= NET_CF_DONE; /* failed while lingering */
		return;
	}
	if (!(c->flags & NET_CF_CLOSING)) {
		c->flags |= NET_CF_CLOSING;
		c->why = why;
		c->err = err;
	}
	conn_schedule_reap(c);
	net_conn_update_events(c);
}

void net_conn_fail_errno(struct net_conn *c, int neg_errno)
{
	int e = -neg_errno;
	if (e == ECONNRESET || e == EPIPE)
		net_conn_fail(c, NET_CLOSED_RESET, e);
	else if (e == EPROTO)
		net_conn_fail(c, c->tp->proto_reason, e);
	else
		net_conn_fail(c, NET_CLOSED_ERROR, e);
}

/* ---- input ------------------------------------------------------------------------- */

const uint8_t *net_conn_input(const struct net_conn *c, size_t *len)
{
	*len = c->in_end - c->in_start;
	if (!c->in_base)
		return (const uint8_t *)"";
	return c->in_base + c->in_start;
}

void net_conn_consume(struct net_conn *c, size_t n)
{
	size_t used = c->in_end - c->in_start;
	bool was_full = used >= c->in_limit;
	if (n > used)
		n = used;
	c->in_start += n;
	if (c->in_start == c->in_end) {
		/* Nothing left: drop the own buffer (idle conns hold none). */
		if (c->in_base == c->in_own) {
			net_mem(c->loop, c->in_own, -1);
			free(c->in_own);
			c->in_own = NULL;
			c->in_cap = 0;
		}
		c->in_base = NULL;
		c->in_start = c->in_end = 0;
	}
	if (was_full)
		net_conn_update_events(c);
}

void net_conn_set_input_limit(struct net_conn *c, size_t max)
{
	if (max > UINT32_MAX - 65536)
		max = UINT32_MAX - 65536; /* in_* are 32-bit; MQTT frames are at most 256 MiB */
	c->in_limit = (uint32_t)(max ? max : NET_INPUT_LIMIT_DEFAULT);
	net_conn_update_events(c);
}

void net_conn_pause_read(struct net_conn *c, bool paused)
{
	if (paused) {
		c->flags |= NET_CF_PAUSED;
		net_list_del(&c->link_rdpend);
	} else if (c->flags & NET_CF_PAUSED) {
		c->flags &= ~NET_CF_PAUSED;
		/* Re-deliver what was left while paused, and read what the
		 * transport may already hold, in the next pass. */
		if (!(c->flags & NET_CF_CLOSING) && !net_link_linked(&c->link_rdpend)) {
			c->flags |= NET_CF_REDELIVER;
			net_list_add_tail(&c->loop->rdpend, &c->link_rdpend);
		}
	}
	net_conn_update_events(c);
}

/* Room for at least `want` more bytes (clamped to the limit) at the end of
 * the conn's own buffer; moves a scratch view into it first. NULL when the
 * limit is reached or on ENOMEM (*err set). */
uint8_t *net_conn_in_space(struct net_conn *c, size_t want, size_t *avail, int *err)
{
	*err = 0;
	if (c->in_base && c->in_base != c->in_own && net_conn_input_own(c) < 0) {
		*err = -ENOMEM;
		return NULL;
	}
	size_t used = c->in_end - c->in_start;
	if (used >= c->in_limit)
		return NULL;
	if (want > c->in_limit - used)
		want = c->in_limit - used;
	if (c->in_own && c->in_start > 0 && c->in_cap - c->in_end < want) {
		memmove(c->in_own, c->in_own + c->in_start, used);
		c->in_start = 0;
		c->in_end = used;
	}
	if (c->in_cap - c->in_end < want) {
		size_t ncap = c->in_cap ? c->in_cap * 2 : NET_CHUNK_SIZE;
		if (ncap < used + want)
			ncap = used + want;
		if (ncap > c->in_limit)
			ncap = c->in_limit;
		long long was = c->in_own ? (long long)malloc_usable_size(c->in_own) : 0;
		uint8_t *nb = realloc(c->in_own, ncap);
		if (!nb) {
			*err = -ENOMEM;
			return NULL;
		}
		if (c->loop->mem_cb)
			c->loop->mem_cb(c->loop->mem_user, (long long)malloc_usable_size(nb) - was);
		c->in_own = nb;
		c->in_cap = ncap;
	}
	c->in_base = c->in_own;
	size_t room = c->in_cap - c->in_end;
	if (room > c->in_limit - used)
		room = c->in_limit - used;
	*avail = room;
	return c->in_own + c->in_end;
}

int net_conn_input_own(struct net_conn *c)
{
	if (!c->in_base || c->in_base == c->in_own)
		return 0;
	size_t used = c->in_end - c->in_start;
	if (used == 0) {
		c->in_base = NULL;
		c->in_start = c->in_end = 0;
		return 0;
	}
	size_t cap = used < NET_CHUNK_SIZE ? NET_CHUNK_SIZE : used;
	if (cap > c->in_limit && used <= c->in_limit)
		cap = c->in_limit;
	uint8_t *nb = malloc(cap);
	if (!nb) {
		c->in_base = NULL;
		c->in_start = c->in_end = 0;
		return -ENOMEM;
	}
	net_mem(c->loop, nb, 1);
	memcpy(nb, c->in_base + c->in_start, used);
	net_mem(c->loop, c->in_own, -1);
	free(c->in_own);
	c->in_own = nb;
	c->in_cap = cap;
	c->in_base = nb;
	c->in_start = 0;
	c->in_end = used;
	return 0;
}

int net_conn_feed(struct net_conn *c, const void *p, size_t len)
{
	if (c->flags & NET_CF_CLOSING)
		return -EPIPE;
	if (len > c->in_limit - (c->in_end - c->in_start))
		return -ENOBUFS;
	while (len > 0) {
		size_t avail;
		int err;
		uint8_t *dst = net_conn_in_space(c, len, &avail, &err);
		if (!dst)
			return err ? err : -ENOBUFS;
		size_t n = avail < len ? avail : len;
		memcpy(dst, p, n);
		c->in_end += n;
		p = (const uint8_t *)p + n;
		len -= n;
	}
	return 0;
}

void net_conn_deliver(struct net_conn *c)
{
	if ((c->flags & (NET_CF_CLOSING | NET_CF_PAUSED)) || !(c->flags & NET_CF_READY))
		return;
	if (c->in_end > c->in_start && c->cbs && c->cbs->on_data)
		c->cbs->on_data(c, c->cb_user);
	if (net_conn_input_own(c) < 0)
		net_conn_fail(c, NET_CLOSED_ERROR, ENOMEM);
}

void net_conn_set_ready(struct net_conn *c)
{
	c->flags |= NET_CF_READY;
	c->tp_want = 0;
	if (c->out_bytes && !(c->flags & NET_CF_WBLOCKED) && !net_link_linked(&c->link_dirty))
		net_list_add_tail(&c->loop->dirty, &c->link_dirty);
	net_conn_update_events(c);
}

bool net_conn_ready(const struct net_conn *c)
{
	return (c->flags & NET_CF_READY) != 0;
}

/* ---- output ------------------------------------------------------------------------ */

static void conn_mark_dirty(struct net_conn *c)
{
	c->loop->out_since_hook = 1;
	if (!(c->flags & NET_CF_WBLOCKED) && !net_link_linked(&c->link_dirty))
		net_list_add_tail(&c->loop->dirty, &c->link_dirty);
}

static struct net_chunk *chunk_append(struct net_conn *c, size_t atleast)
{
	/* An empty queue starts with a small chunk: most output is one small
	 * packet (PINGRESP, an ack, a short PUBLISH), and a small block comes
	 * from malloc's per-thread cache, where a 16 KiB one makes the heap top
	 * grow and shrink (brk) on every response. */
	size_t unit = c->out_head ? NET_CHUNK_SIZE : NET_CHUNK_FIRST;
	size_t cap = atleast > unit ? atleast : unit;
	struct net_chunk *k = chunk_get(c->loop, cap);
	if (!k)
		return NULL;
	k->next = NULL;
	k->start = k->end = 0;
	k->cap = cap;
	if (c->out_tail)
		c->out_tail->next = k;
	else
		c->out_head = k;
	c->out_tail = k;
	return k;
}

int net_conn_write(struct net_conn *c, const void *p, size_t len)
{
	if (c->flags & NET_CF_CLOSING)
		return -EPIPE;
	if (len == 0)
		return 0;
	struct net_chunk *t = c->out_tail;
	size_t first = 0;
	if (t && t->cap > t->end) {
		first = t->cap - t->end;
		if (first > len)
			first = len;
	}
	if (first < len && !chunk_append(c, len - first))
		return -ENOMEM;
	if (first) {
		memcpy(t->data + t->end, p, first);
		t->end += first;
	}
	if (first < len) {
		memcpy(c->out_tail->data, (const uint8_t *)p + first, len - first);
		c->out_tail->end = len - first;
	}
	c->out_bytes += len;
	conn_mark_dirty(c);
	return 0;
}

uint8_t *net_conn_reserve(struct net_conn *c, size_t len)
{
	if (c->flags & NET_CF_CLOSING)
		return NULL;
	struct net_chunk *t = c->out_tail;
	if (!t || t->cap - t->end < len) {
		t = chunk_append(c, len);
		if (!t)
			return NULL;
	}
	c->reserved = len;
	return t->data + t->end;
}

void net_conn_commit(struct net_conn *c, size_t used)
{
	if (used > c->reserved)
		used = c->reserved; /* caller bug: never past the reservation */
	c->reserved = 0;
	if (!used || !c->out_tail)
		return;
	c->out_tail->end += used;
	c->out_bytes += used;
	conn_mark_dirty(c);
}

size_t net_conn_out_pending(const struct net_conn *c)
{
	return c->out_bytes;
}

/* ---- accessors and socket options -------------------------------------------------- */

const char *net_conn_peer(const struct net_conn *c)
{
	return c->peer;
}

struct net_listener *net_conn_listener(const struct net_conn *c)
{
	return c->listener;
}

const char *net_conn_cert_cn(const struct net_conn *c)
{
	return c->cert_cn;
}

const char *net_conn_cert_subject(const struct net_conn *c)
{
	return c->cert_subject;
}

const char *net_conn_psk_identity(const struct net_conn *c)
{
	return c->psk_identity;
}

static int conn_sockopt(struct net_conn *c, int level, int name, int val)
{
	if (c->flags & NET_CF_UNIX)
		return 0; /* no TCP options on Unix sockets: silently fine */
	if (c->fd < 0)
		return -EBADF;
	if (setsockopt(c->fd, level, name, &val, sizeof val) < 0)
		return -errno;
	return 0;
}

int net_conn_set_nodelay(struct net_conn *c, bool on)
{
	return conn_sockopt(c, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

/* Bounds how long unacknowledged output may wait before the kernel gives
 * up (ETIMEDOUT -> NET_CLOSED_ERROR): a dead peer with data queued. */
int net_conn_set_user_timeout(struct net_conn *c, unsigned ms)
{
	return conn_sockopt(c, IPPROTO_TCP, TCP_USER_TIMEOUT, (int)ms);
}

/* idle_s <= 0 turns SO_KEEPALIVE off; intvl_s / count <= 0 keep the
 * system default for that parameter. */
int net_conn_set_keepalive(struct net_conn *c, int idle_s, int intvl_s, int count)
{
	int r = conn_sockopt(c, SOL_SOCKET, SO_KEEPALIVE, idle_s > 0);
	if (r < 0 || idle_s <= 0)
		return r;
	r = conn_sockopt(c, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
	if (r == 0 && intvl_s > 0)
		r = conn_sockopt(c, IPPROTO_TCP, TCP_KEEPINTVL, intvl_s);
	if (r == 0 && count > 0)
		r = conn_sockopt(c, IPPROTO_TCP, TCP_KEEPCNT, count);
	return r;
}
