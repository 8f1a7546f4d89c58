/*
 * net/conn_io.c — moving bytes for a conn: epoll interest, reading and
 * delivering, flushing with writev, the reap step and the bounded orderly
 * close ("linger"); also the plain TCP / Unix-socket transport.
 *
 * Reads: up to NET_READ_BUDGET transport reads per readiness event, big
 * reads straight into the input buffer; data read together with a FIN is
 * delivered (on_data) before the EOF closes the conn. Writes: once per pass
 * (and on EPOLLOUT after a short write), one writev of up to NET_IOV_MAX
 * chunks per call.
 *
 * Close: on_close runs in the reap step of the pass in which the close was
 * requested or the error seen. Then ABORT / RESET / ERROR conns are dropped
 * at once (SO_LINGER 0 -> RST); TLS failures and unfinished handshakes are
 * closed plainly; FLUSH / EOF conns linger: flush what is queued, send FIN
 * (transport shutdown + SHUT_WR), read and discard until the peer's FIN so
 * that close(2) does not turn into an RST that could destroy our last
 * bytes in flight; all bounded by NET_LINGER_MS, after which they are
 * aborted. The owner never sees a lingering conn.
 *
 * Not here: buffer management and the owner-facing API (conn.c), TLS
 * (tls.c). Invariant: on_close runs exactly once per conn that had
 * callbacks set, from net_conn_reap_all only, and the conn is freed only
 * there (or by net_loop_free).
 */
#include "net_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define NET_READ_BUDGET 16

/* ---- TCP / Unix transport -------------------------------------------------------------- */

static ssize_t tcp_read(struct net_conn *c, void *buf, size_t len)
{
	ssize_t n = recv(c->fd, buf, len, 0);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return -EAGAIN;
	return -errno;
}

static ssize_t tcp_writev(struct net_conn *c, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg;
	memset(&msg, 0, sizeof msg);
	msg.msg_iov = (struct iovec *)iov;
	msg.msg_iovlen = (size_t)iovcnt;
	ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return -EAGAIN;
	return -errno;
}

const struct net_transport net_tcp_transport = {
	.name = "tcp",
	.proto_reason = NET_CLOSED_ERROR,
	.short_read_drains = true,
	.read = tcp_read,
	.writev = tcp_writev,
};

/* ---- interest ------------------------------------------------------------------------- */

void net_conn_update_events(struct net_conn *c)
{
	unsigned f = c->flags;
	bool rd = false, wr = false;
	if (f & NET_CF_DONE) {
		/* nothing */
	} else if (f & NET_CF_CLOSED_CB) { /* lingering */
		if (f & NET_CF_WR_SHUT)
			rd = true;
		else
			wr = c->out_bytes > 0;
	} else if (!(f & NET_CF_READY)) {
		if (!(f & NET_CF_CLOSING)) {
			rd = (c->tp_want & NET_READ) != 0;
			wr = (c->tp_want & NET_WRITE) != 0;
		}
	} else {
		rd = !(f & (NET_CF_CLOSING | NET_CF_PAUSED | NET_CF_PEER_EOF)) &&
		     c->in_end - c->in_start < c->in_limit;
		wr = (f & NET_CF_WBLOCKED) != 0;
		if (wr && (c->tp_want & NET_READ))
			rd = true; /* TLS write waiting for a read */
	}
	if (f & NET_CF_TP_OWNS_IO) {
		if (c->tp->update)
			c->tp->update(c, rd, wr || c->out_bytes > 0);
		return;
	}
	if (c->fd < 0)
		return;
	uint32_t want = (rd ? EPOLLIN : 0) | (wr ? EPOLLOUT : 0);
	if (want == c->ev)
		return;
	int r = net_loop_ctl(c->loop, c->fd, &c->h, c->ev, want);
	if (r == 0)
		c->ev = want;
	else if (!(f & NET_CF_CLOSING))
		net_conn_fail(c, NET_CLOSED_ERROR, -r);
}

/* ---- reading ----------------------------------------------------------------------------- */

void net_conn_read(struct net_conn *c)
{
	struct net_loop *loop = c->loop;
	net_list_del(&c->link_rdpend);
	bool redeliver = (c->flags & NET_CF_REDELIVER) != 0;
	c->flags &= ~NET_CF_REDELIVER;
	if ((c->flags & (NET_CF_CLOSING | NET_CF_PAUSED | NET_CF_TP_OWNS_IO)) || !(c->flags & NET_CF_READY)) {
		if (redeliver)
			net_conn_deliver(c);
		return;
	}
	bool got = false, eof = false;
	ssize_t err = 0;
	for (int i = 0; i < NET_READ_BUDGET; i++) {
		uint8_t *dst;
		size_t avail;
		if (c->in_end == c->in_start && (!c->in_base || c->in_base == loop->scratch)) {
			/* No pending input: read into the shared scratch buffer. */
			if (!c->in_base) {
				c->in_base = loop->scratch;
				c->in_start = c->in_end = 0;
			}
		}
		if (c->in_base == loop->scratch) {
			size_t used = c->in_end - c->in_start;
			avail = NET_SCRATCH_SIZE - c->in_end;
			if (avail > c->in_limit - used)
				avail = c->in_limit - used;
			dst = loop->scratch + c->in_end;
		} else {
			int e;
			dst = net_conn_in_space(c, NET_SCRATCH_SIZE / 2, &avail, &e);
			if (!dst) {
				err = e;
				break;
			}
		}
		if (avail == 0)
			break;
		ssize_t n = c->tp->read(c, dst, avail);
		if (n > 0) {
			c->in_end += (size_t)n;
			got = true;
			if ((size_t)n < avail && c->tp->short_read_drains)
				break; /* drained the socket */
			continue;
		}
		if (n == 0)
			eof = true;
		else if (n != -EAGAIN)
			err = n;
		break;
	}
	if (got || redeliver)
		net_conn_deliver(c);
	else if (c->in_base == loop->scratch && c->in_end == c->in_start)
		c->in_base = NULL;
	if (c->in_base == loop->scratch && net_conn_input_own(c) < 0 && !err)
		err = -ENOMEM;
	if (eof) {
		c->flags |= NET_CF_PEER_EOF;
		net_conn_fail(c, NET_CLOSED_EOF, 0);
	} else if (err) {
		net_conn_fail_errno(c, (int)err);
	} else if (!(c->flags & (NET_CF_CLOSING | NET_CF_PAUSED)) && c->tp->pending && c->tp->pending(c) &&
		   c->in_end - c->in_start < c->in_limit && !net_link_linked(&c->link_rdpend)) {
		net_list_add_tail(&loop->rdpend, &c->link_rdpend);
	}
	net_conn_update_events(c);
}

static void linger_step(struct net_conn *c);

/* ---- flushing ---------------------------------------------------------------------------- */

void net_conn_flush(struct net_conn *c)
{
	net_loop_barrier(c->loop);
	net_list_del(&c->link_dirty);
	if (!(c->flags & NET_CF_READY) || (c->flags & (NET_CF_ABORT | NET_CF_DONE)))
		return;
	if ((c->flags & NET_CF_CLOSING) && !(c->flags & NET_CF_CLOSED_CB))
		return; /* the reap step flushes after on_close */
	struct iovec iov[NET_IOV_MAX];
	while (c->out_bytes > 0) {
		int cnt = 0;
		size_t total = 0;
		for (struct net_chunk *k = c->out_head; k && cnt < NET_IOV_MAX; k = k->next) {
			if (k->end == k->start)
				continue;
			iov[cnt].iov_base = k->data + k->start;
			iov[cnt].iov_len = k->end - k->start;
			total += iov[cnt].iov_len;
			cnt++;
		}
		ssize_t n = c->tp->writev(c, iov, cnt);
		if (n == -EAGAIN || n == 0) {
			c->flags |= NET_CF_WBLOCKED;
			break;
		}
		if (n < 0) {
			net_conn_free_out(c);
			net_conn_fail_errno(c, (int)n);
			return;
		}
		size_t left = (size_t)n;
		c->out_bytes -= left;
		while (c->out_head) {
			struct net_chunk *k = c->out_head;
			size_t have = k->end - k->start;
			if (left < have) {
				k->start += left;
				break;
			}
			left -= have;
			if (k == c->out_tail && c->reserved) {
				k->start = k->end; /* keep the reserved tail */
				break;
			}
			c->out_head = k->next;
			if (!c->out_head)
				c->out_tail = NULL;
			net_chunk_release(c->loop, k);
		}
		if ((size_t)n < total) {
			c->flags |= NET_CF_WBLOCKED;
			break;
		}
	}
	if (c->out_bytes == 0) {
		c->flags &= ~NET_CF_WBLOCKED;
		c->tp_want &= ~NET_READ;
		if ((c->flags & NET_CF_CLOSED_CB) && !(c->flags & NET_CF_WR_SHUT)) {
			linger_step(c); /* drained while lingering: send FIN */
			return;
		}
	}
	net_conn_update_events(c);
}

/* ---- events ------------------------------------------------------------------------------- */

void net_conn_event(struct net_conn *c, uint32_t events)
{
	if (c->flags & NET_CF_DONE)
		return;
	if (c->flags & NET_CF_CLOSED_CB) {
		linger_step(c);
		return;
	}
	if (c->flags & NET_CF_CLOSING)
		return; /* reaped at the end of this pass */
	if (!(c->flags & NET_CF_READY)) {
		int r = c->tp->handshake(c);
		if (r < 0) {
			net_conn_fail_errno(c, r);
			return;
		}
		if (r == 0) {
			net_conn_update_events(c);
			return;
		}
		net_conn_set_ready(c);
		net_conn_read(c); /* the transport may hold application data already */
		return;
	}
	if ((c->flags & NET_CF_WBLOCKED) && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLIN)))
		net_conn_flush(c);
	if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !(c->flags & NET_CF_CLOSING))
		net_conn_read(c);
}

/* ---- reap and linger ----------------------------------------------------------------------- */

/* Orderly close after on_close: flush, FIN, drain until the peer's FIN.
 * Sets NET_CF_DONE when the conn can be freed. */
static void linger_step(struct net_conn *c)
{
	if (c->flags & (NET_CF_DONE | NET_CF_ABORT)) {
		c->flags |= NET_CF_DONE;
		return;
	}
	if (!(c->flags & NET_CF_WR_SHUT)) {
		if (c->out_bytes) {
			/* Comes back here (from net_conn_flush) once drained. */
			net_conn_flush(c);
			return;
		}
		if (c->tp->shutdown)
			c->tp->shutdown(c);
		c->flags |= NET_CF_WR_SHUT;
		if (c->flags & NET_CF_TP_OWNS_IO) {
			c->flags |= NET_CF_DONE;
			return;
		}
		shutdown(c->fd, SHUT_WR);
		if (c->flags & NET_CF_PEER_EOF) {
			c->flags |= NET_CF_DONE;
			return;
		}
		net_conn_update_events(c);
	}
	/* Drain and discard until EOF (bounded per step). */
	for (int i = 0; i < NET_READ_BUDGET; i++) {
		ssize_t n = recv(c->fd, c->loop->scratch, NET_SCRATCH_SIZE, 0);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		c->flags |= NET_CF_DONE; /* EOF or error: done */
		break;
	}
	net_conn_update_events(c);
}

uint64_t net_conn_next_deadline(struct net_loop *loop)
{
	if (net_list_empty(&loop->linger))
		return UINT64_MAX;
	/* Appended with now + constant: the head has the earliest deadline. */
	return net_container_of(loop->linger.next, struct net_conn, link_reap)->linger_deadline;
}

/* One nonblocking writev of what is queued, no retry, no shutdown: used
 * just before an abortive close. */
static void abort_last_words(struct net_conn *c)
{
	struct iovec iov[NET_IOV_MAX];
	net_loop_barrier(c->loop);
	int cnt = 0;
	for (struct net_chunk *k = c->out_head; k && cnt < NET_IOV_MAX; k = k->next) {
		if (k->end == k->start)
			continue;
		iov[cnt].iov_base = k->data + k->start;
		iov[cnt].iov_len = k->end - k->start;
		cnt++;
	}
	if (cnt)
		(void)c->tp->writev(c, iov, cnt);
}

void net_conn_reap_all(struct net_loop *loop)
{
	while (!net_list_empty(&loop->reap)) {
		struct net_conn *c = net_container_of(loop->reap.next, struct net_conn, link_reap);
		net_list_del(&c->link_reap);
		net_list_del(&c->link_rdpend);
		c->flags |= NET_CF_CLOSED_CB;
		if (c->cbs && c->cbs->on_close)
			c->cbs->on_close(c, c->why, c->err, c->cb_user);
		/* The owner is done with c; net alone decides its fate now. */
		c->reserved = 0;
		net_mem(loop, c->in_own, -1);
		free(c->in_own);
		c->in_own = c->in_base = NULL;
		c->in_start = c->in_end = c->in_cap = 0;
		if ((c->flags & NET_CF_ABORT) || c->why == NET_CLOSED_TLS || c->why == NET_CLOSED_PROTOCOL ||
		    !(c->flags & NET_CF_READY) || (c->fd < 0 && !(c->flags & NET_CF_TP_OWNS_IO))) {
			if ((c->flags & NET_CF_ABORT) && c->why == NET_CLOSED_LOCAL && c->out_bytes &&
			    (c->flags & NET_CF_READY) && !(c->flags & NET_CF_TP_OWNS_IO)) {
				/* A local abort (peer presumed dead): one nonblocking
				 * attempt to send what is queued (e.g. MQTT DISCONNECT
				 * 0x8D) so a peer that is alive after all still reads it
				 * before the RST. Nothing waits: a dead peer costs nothing. */
				abort_last_words(c);
			}
			if (c->flags & NET_CF_ABORT)
				net_conn_free_out(c);
			net_conn_destroy(c);
			continue;
		}
		c->linger_deadline = loop->now + NET_LINGER_MS;
		net_list_add_tail(&loop->linger, &c->link_reap);
		linger_step(c);
	}
	/* Lingering conns that finished, or ran out of time (-> RST). */
	struct net_link *l = loop->linger.next;
	while (l != &loop->linger) {
		struct net_conn *c = net_container_of(l, struct net_conn, link_reap);
		l = l->next;
		if (c->flags & NET_CF_DONE) {
			net_conn_destroy(c);
		} else if (loop->now >= c->linger_deadline) {
			if (!(c->flags & NET_CF_WR_SHUT))
				c->flags |= NET_CF_ABORT; /* output could not drain */
			net_conn_destroy(c);
		}
	}
}
