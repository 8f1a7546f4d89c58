/*
 * net/loop.c — the epoll event loop, the cached clock, raw fd registration.
 *
 * Level-triggered epoll: a connection that stops reading early (input
 * limit, read budget, pause) is simply reported again on the next pass, so
 * no readiness is ever lost and no "drain until EAGAIN" is needed for
 * correctness. Interest is kept exact: an fd with nothing to wait for is
 * removed from the set (EPOLLHUP/EPOLLERR cannot spin on a paused conn).
 *
 * One pass: before_flush hook -> flush conns with pending output ->
 * epoll_wait -> refresh now -> dispatch -> reap closed conns. Output
 * written outside that flush (a blocked conn's EPOLLOUT, a lingering
 * close, an abort's last words) passes net_loop_barrier first, so no byte
 * leaves before the hook has run after it was queued (ack after commit). Nothing that
 * epoll may still name in the current batch is freed before the reap step.
 *
 * SIGPIPE: net_loop_new sets SIGPIPE to SIG_IGN for the process (OpenSSL
 * writes with write(2), which cannot take MSG_NOSIGNAL); plain sockets also
 * use sendmsg(MSG_NOSIGNAL), so TCP never depends on it.
 *
 * Not here: timers (the broker owns a timing wheel and passes the timeout),
 * threads.
 */
#include "net_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define NET_EVENTS_BATCH 256

struct net_loop *net_loop_new(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);

	struct net_loop *loop = calloc(1, sizeof *loop);
	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->scratch = malloc(NET_SCRATCH_SIZE);
	if (loop->epfd < 0 || !loop->scratch) {
		if (loop->epfd >= 0)
			close(loop->epfd);
		free(loop->scratch);
		free(loop);
		return NULL;
	}
	net_list_init(&loop->conns);
	net_list_init(&loop->dirty);
	net_list_init(&loop->reap);
	net_list_init(&loop->linger);
	net_list_init(&loop->rdpend);
	net_list_init(&loop->listeners);
	net_list_init(&loop->grave);
	net_list_init(&loop->dead_lsock);
	net_now_update(loop);
	return loop;
}

static void loop_free_graves(struct net_loop *loop)
{
	while (!net_list_empty(&loop->grave)) {
		struct net_link *l = loop->grave.next;
		net_list_del(l);
		free(net_container_of(l, struct net_fdent, grave));
	}
	while (!net_list_empty(&loop->dead_lsock)) {
		struct net_link *l = loop->dead_lsock.next;
		net_list_del(l);
		struct net_listener *ls = net_container_of(l, struct net_listener, link);
		free(ls->unix_path);
		free(ls);
	}
}

void net_loop_free(struct net_loop *loop)
{
	if (!loop)
		return;
	/* Connections still open are dropped without on_close: the owner is
	 * tearing down and its state may be gone already. */
	while (!net_list_empty(&loop->conns)) {
		struct net_conn *c = net_container_of(loop->conns.next, struct net_conn, link_all);
		if (!(c->flags & NET_CF_CLOSED_CB) || (c->flags & NET_CF_WR_SHUT) == 0)
			c->flags |= NET_CF_ABORT;
		net_conn_destroy(c);
	}
	while (!net_list_empty(&loop->listeners))
		net_listener_close(net_container_of(loop->listeners.next, struct net_listener, link));
	for (int fd = 0; fd < loop->nfds; fd++)
		free(loop->fds[fd]);
	free(loop->fds);
	loop_free_graves(loop);
	net_chunk_spares_free(loop);
	close(loop->epfd);
	free(loop->scratch);
	free(loop);
}

uint64_t net_now(const struct net_loop *loop)
{
	return loop->now;
}

uint64_t net_now_update(struct net_loop *loop)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t t = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	if (t > loop->now) /* never goes backwards, even across a bad clock */
		loop->now = t;
	return loop->now;
}

void net_loop_barrier(struct net_loop *loop)
{
	if (loop->out_since_hook && loop->before_flush) {
		loop->out_since_hook = 0;
		loop->before_flush(loop, loop->before_flush_user);
	}
}

void net_loop_set_before_flush(struct net_loop *loop, net_hook_cb cb, void *user)
{
	loop->before_flush = cb;
	loop->before_flush_user = user;
}

void net_loop_set_mem_hook(struct net_loop *loop, void (*cb)(void *user, long long delta), void *user)
{
	loop->mem_cb = cb;
	loop->mem_user = user;
}

size_t net_loop_lingering(const struct net_loop *loop)
{
	size_t n = 0;
	for (const struct net_link *l = loop->linger.next; l != &loop->linger; l = l->next)
		n++;
	return n;
}

int net_loop_ctl(struct net_loop *loop, int fd, struct net_handle *h, uint32_t cur, uint32_t want)
{
	if (cur == want)
		return 0;
	struct epoll_event ev;
	memset(&ev, 0, sizeof ev);
	ev.events = want;
	ev.data.ptr = h;
	int op = cur == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
	if (epoll_ctl(loop->epfd, op, fd, &ev) < 0)
		return -errno;
	return 0;
}

/* ---- raw fds ------------------------------------------------------------------- */

static uint32_t fd_epoll_mask(unsigned events)
{
	return ((events & NET_READ) ? EPOLLIN : 0) | ((events & NET_WRITE) ? EPOLLOUT : 0);
}

int net_fd_add(struct net_loop *loop, int fd, unsigned events, net_fd_cb cb, void *user)
{
	if (fd < 0 || !cb)
		return -EINVAL;
	if (fd >= loop->nfds) {
		int n = loop->nfds ? loop->nfds : 16;
		while (n <= fd)
			n *= 2;
		struct net_fdent **nf = realloc(loop->fds, (size_t)n * sizeof *nf);
		if (!nf)
			return -ENOMEM;
		memset(nf + loop->nfds, 0, (size_t)(n - loop->nfds) * sizeof *nf);
		loop->fds = nf;
		loop->nfds = n;
	}
	if (loop->fds[fd])
		return -EEXIST;
	struct net_fdent *e = calloc(1, sizeof *e);
	if (!e)
		return -ENOMEM;
	e->h.kind = NET_H_FD;
	e->fd = fd;
	e->events = events;
	e->cb = cb;
	e->user = user;
	/* Registered even with no events (EPOLLERR/HUP still reported), so
	 * net_fd_mod is always a MOD. */
	struct epoll_event ev = { .events = fd_epoll_mask(events), .data.ptr = &e->h };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;
		free(e);
		return err;
	}
	loop->fds[fd] = e;
	return 0;
}

int net_fd_mod(struct net_loop *loop, int fd, unsigned events)
{
	if (fd < 0 || fd >= loop->nfds || !loop->fds[fd])
		return -ENOENT;
	struct net_fdent *e = loop->fds[fd];
	struct epoll_event ev = { .events = fd_epoll_mask(events), .data.ptr = &e->h };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	e->events = events;
	return 0;
}

void net_fd_del(struct net_loop *loop, int fd)
{
	if (fd < 0 || fd >= loop->nfds || !loop->fds[fd])
		return;
	struct net_fdent *e = loop->fds[fd];
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL); /* EBADF if already closed: fine */
	loop->fds[fd] = NULL;
	e->h.dead = 1;
	net_list_add_tail(&loop->grave, &e->grave);
}

static void fd_dispatch(struct net_loop *loop, struct net_fdent *e, uint32_t ev)
{
	unsigned out = 0;
	if (ev & EPOLLIN)
		out |= NET_READ;
	if (ev & EPOLLOUT)
		out |= NET_WRITE;
	if (ev & (EPOLLERR | EPOLLHUP))
		out |= e->events ? e->events : NET_READ;
	e->cb(loop, e->fd, out, e->user);
}

/* ---- one pass ------------------------------------------------------------------- */

static int pass_timeout(struct net_loop *loop, int timeout_ms)
{
	if (!net_list_empty(&loop->reap) || !net_list_empty(&loop->rdpend) || !net_list_empty(&loop->dirty))
		return 0;
	uint64_t d = net_conn_next_deadline(loop);
	uint64_t dl = net_listener_tick(loop);
	if (dl < d)
		d = dl;
	if (d == UINT64_MAX)
		return timeout_ms;
	uint64_t now = net_now_update(loop);
	uint64_t wait = d > now ? d - now : 0;
	if (timeout_ms < 0 || wait < (uint64_t)timeout_ms)
		return (int)(wait > 60000 ? 60000 : wait);
	return timeout_ms;
}

int net_loop_run_once(struct net_loop *loop, int timeout_ms)
{
	struct epoll_event evs[NET_EVENTS_BATCH];

	loop->out_since_hook = 0;
	if (loop->before_flush)
		loop->before_flush(loop, loop->before_flush_user);
	/* Flush; a conn re-added while flushing (cannot happen today) waits. */
	struct net_link batch;
	net_list_init(&batch);
	if (!net_list_empty(&loop->dirty)) {
		batch.next = loop->dirty.next;
		batch.prev = loop->dirty.prev;
		batch.next->prev = &batch;
		batch.prev->next = &batch;
		net_list_init(&loop->dirty);
	}
	while (!net_list_empty(&batch)) {
		struct net_conn *c = net_container_of(batch.next, struct net_conn, link_dirty);
		net_list_del(&c->link_dirty);
		net_conn_flush(c);
	}

	int n = epoll_wait(loop->epfd, evs, NET_EVENTS_BATCH, pass_timeout(loop, timeout_ms));
	int ret = n;
	if (n < 0) {
		ret = errno == EINTR ? 0 : -errno;
		n = 0;
	}
	net_now_update(loop);

	loop->in_dispatch = 1;
	for (int i = 0; i < n; i++) {
		struct net_handle *h = evs[i].data.ptr;
		if (h->dead)
			continue;
		switch (h->kind) {
		case NET_H_FD:
			fd_dispatch(loop, (struct net_fdent *)h, evs[i].events);
			break;
		case NET_H_LISTEN:
			net_listener_event((struct net_lsock *)h, evs[i].events);
			break;
		case NET_H_CONN:
			net_conn_event((struct net_conn *)h, evs[i].events);
			break;
		}
	}
	/* Conns with bytes the transport already holds (TLS), or resumed with
	 * unconsumed input: read/deliver without waiting for epoll. */
	if (!net_list_empty(&loop->rdpend)) {
		net_list_init(&batch);
		batch.next = loop->rdpend.next;
		batch.prev = loop->rdpend.prev;
		batch.next->prev = &batch;
		batch.prev->next = &batch;
		net_list_init(&loop->rdpend);
		while (!net_list_empty(&batch)) {
			struct net_conn *c = net_container_of(batch.next, struct net_conn, link_rdpend);
			net_list_del(&c->link_rdpend);
			net_conn_read(c);
		}
	}
	net_listener_tick(loop);
	loop->in_dispatch = 0;

	net_conn_reap_all(loop);
	loop_free_graves(loop);
	return ret;
}
