/*
 * net/net_internal.h — internals shared by the net/ sources only (never by broker/).
 *
 * Three kinds of object sit in the epoll set, each starting with a
 * struct net_handle so that epoll_event.data.ptr identifies it: raw fds
 * (net_fd_add), listening sockets, and connections. Nothing registered with
 * epoll is freed before the dispatch pass that might still name it is over:
 * connections are freed in the reap step, raw-fd entries and listener
 * sockets go to a graveyard freed there too.
 *
 * ---- Transports ---------------------------------------------------------
 * A connection (struct net_conn) owns the buffers and the life cycle; a
 * transport (struct net_transport) only moves bytes. TCP (conn_io.c) and TLS
 * (tls.c) use the conn's fd directly: the conn registers the fd with epoll,
 * calls tp->handshake until it returns 1, then tp->read into the input
 * buffer and tp->writev from the output queue. The conn maps the negative
 * errno they return to a close reason (net_conn_fail_errno).
 *
 * ---- How a WebSocket (libwebsockets, external poll) transport plugs in ---
 * lws owns its fds and does its own reads/writes. A net/ws.c would:
 *  - listener: in net_listen (listen.c), kind NET_WEBSOCKETS currently fails
 *    with "not supported yet"; replace that with a ws.c init that creates the
 *    lws context/vhost (external poll: LWS_CALLBACK_ADD_POLL_FD /
 *    DEL_POLL_FD / CHANGE_MODE_POLL_FD answered with net_fd_add /
 *    net_fd_del / net_fd_mod on raw fds, whose net_fd_cb calls
 *    lws_service_fd(); lws timeouts serviced from a hook or a timerfd) and
 *    keeps it in net_listener.ws. Keep accepting in listen.c and hand each
 *    accepted fd to lws with lws_adopt_socket_vhost() where listen.c now
 *    calls net_tls_attach: accept, EMFILE handling and peer strings stay in
 *    one place (TLS for wss can be lws's own, configured from l->tls opts).
 *  - conn: net_conn_new(loop, fd, listener, &ws_transport, peer), then
 *    c->flags |= NET_CF_TP_OWNS_IO and c->flags &= ~NET_CF_READY: the conn
 *    never registers its fd with epoll, never calls tp->read, never closes
 *    the fd. tp_state = the wsi; the wsi's user pointer = c.
 *  - LWS_CALLBACK_ESTABLISHED: net_conn_set_ready(c) (net_conn_ready()
 *    turns true; queued output becomes flushable).
 *  - LWS_CALLBACK_RECEIVE: binary frames only (text ->
 *    net_conn_fail(c, NET_CLOSED_PROTOCOL, 0)); net_conn_feed(c, in, len)
 *    appends to the input buffer (-ENOBUFS past the input limit), then
 *    net_conn_deliver(c) runs on_data (it does nothing when closing/paused).
 *  - output: once per pass (and whenever ws calls net_conn_flush) the conn
 *    calls tp->writev(c, iov, n). ws copies what it accepts into its own
 *    LWS_PRE-padded buffer and returns the count, or returns -EAGAIN after
 *    lws_callback_on_writable(wsi) (the conn is then "write blocked" and
 *    waits). On LWS_CALLBACK_SERVER_WRITEABLE ws lws_write()s its buffer and
 *    calls net_conn_flush(c) to pull more; when a lingering (closed, FLUSH)
 *    conn drains, net_conn_flush continues the orderly close by itself.
 *  - tp->update(c, want_read, want_write) is called whenever the conn's
 *    interest changes (pause/resume, input limit, output pending): map it
 *    to lws_rx_flow_control() and lws_callback_on_writable().
 *  - LWS_CALLBACK_CLOSED: net_conn_fail(c, NET_CLOSED_EOF, 0) (or RESET /
 *    PROTOCOL as fits) and clear the wsi user pointer's notion of c only in
 *    tp->close. tp->shutdown(c) (orderly close, output drained) sends a
 *    close frame; tp->close(c, abort) is called exactly once when net frees
 *    the conn (after on_close ran): make lws drop the wsi (lws_set_timeout(
 *    wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC) or return -1 from
 *    its next callback) and never touch c again.
 *  - errors returned by tp->read/writev as -EPROTO close with
 *    tp->proto_reason (NET_CLOSED_PROTOCOL for ws).
 */
#ifndef VIGIL_NET_INTERNAL_H
#define VIGIL_NET_INTERNAL_H

#include "net.h"

#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define NET_LINGER_MS 2000      /* bound on an orderly (FLUSH) close */
#define NET_ACCEPT_PAUSE_MS 100 /* accept pause after EMFILE/ENFILE/ENOBUFS */
#define NET_SCRATCH_SIZE 65536  /* shared read buffer (see conn_io.c) */
#define NET_CHUNK_SIZE 16384    /* default output chunk */
#define NET_CHUNK_FIRST 480     /* first chunk of an empty queue (+ 32 B header: 512 B) */
#define NET_IOV_MAX 64          /* iovecs per writev */
#define NET_INPUT_LIMIT_DEFAULT ((size_t)1024 * 1024 + 8)

/* ---- intrusive circular doubly-linked lists -------------------------------- */

struct net_link {
	struct net_link *prev, *next;
};

#define net_container_of(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

static inline void net_list_init(struct net_link *h) { h->prev = h->next = h; }
static inline int net_list_empty(const struct net_link *h) { return h->next == h; }
static inline int net_link_linked(const struct net_link *l) { return l->next != NULL && l->next != l; }
static inline void net_list_add_tail(struct net_link *h, struct net_link *l)
{
	l->prev = h->prev;
	l->next = h;
	h->prev->next = l;
	h->prev = l;
}
static inline void net_list_del(struct net_link *l)
{
	if (l->next == NULL || l->next == l)
		return;
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l->next = l; /* unlinked, re-deletable */
}

/* ---- epoll handles ------------------------------------------------------------ */

enum net_handle_kind { NET_H_FD = 1, NET_H_LISTEN = 2, NET_H_CONN = 3 };

struct net_handle {
	enum net_handle_kind kind;
	int dead; /* unregistered; skip any event still in this batch */
};

/* A raw fd registered with net_fd_add. */
struct net_fdent {
	struct net_handle h;
	int fd;
	unsigned events; /* NET_READ|NET_WRITE */
	net_fd_cb cb;
	void *user;
	struct net_link grave;
};

/* ---- loop ------------------------------------------------------------------------ */

/* Runs before_flush if output was appended since it last ran: no byte
 * leaves before the hook has seen it (the broker commits its store there). */
void net_loop_barrier(struct net_loop *loop);

struct net_loop {
	int epfd;
	uint64_t now;
	net_hook_cb before_flush;
	void *before_flush_user;
	int out_since_hook;      /* output appended since before_flush last ran */

	struct net_fdent **fds; /* raw fds by fd number */
	int nfds;

	struct net_link conns;   /* every live conn (owner's view), link_all */
	struct net_link dirty;   /* conns with output to flush this pass */
	struct net_link reap;    /* conns whose close was requested / failed */
	struct net_link linger;  /* conns past on_close, flushing or draining */
	struct net_link rdpend;  /* conns to read/deliver without an epoll event */
	struct net_link listeners;  /* open listeners */
	struct net_link grave;      /* raw-fd entries to free after dispatch */
	struct net_link dead_lsock; /* listener structs to free after dispatch */

	uint8_t *scratch; /* NET_SCRATCH_SIZE shared read buffer */
	int in_dispatch;
	/* Drained output chunks of the two standard sizes, kept for reuse
	 * (conn.c): a busy connection empties and refills its queue every
	 * pass, and a 16 KiB block from malloc costs a consolidation each time. */
	struct net_chunk *spare[2];
	unsigned n_spare[2];

	void (*mem_cb)(void *user, long long delta); /* net_loop_set_mem_hook */
	void *mem_user;
};

/* Report a connection block (conn, input buffer, output chunk) to the
 * memory hook by its usable size: sign +1 after allocating, -1 before
 * freeing. p may be NULL. */
static inline void net_mem(struct net_loop *loop, const void *p, int sign)
{
	if (loop->mem_cb && p)
		loop->mem_cb(loop->mem_user, sign * (long long)malloc_usable_size((void *)p));
}

/* Add/modify/remove fd in epoll according to the EPOLL* mask, given the
 * currently registered mask (0 = not registered). Returns 0 or -errno. */
int net_loop_ctl(struct net_loop *loop, int fd, struct net_handle *h, uint32_t cur, uint32_t want);

/* ---- transports ------------------------------------------------------------------- */

struct net_transport {
	const char *name;
	/* Close reason used when read/writev return -EPROTO. */
	enum net_close_reason proto_reason;
	/* A read shorter than asked means the kernel buffer is empty (plain
	 * sockets): stop without the extra read that would return EAGAIN.
	 * False for record-based transports (TLS returns one record per read). */
	bool short_read_drains;
	/* Drive the handshake: 1 done, 0 in progress (c->tp_want set to
	 * NET_READ/NET_WRITE), or -errno (-EPROTO: handshake failed). NULL: none. */
	int (*handshake)(struct net_conn *c);
	/* Read up to len bytes: >0 count, 0 orderly EOF, -EAGAIN, -errno. */
	ssize_t (*read)(struct net_conn *c, void *buf, size_t len);
	/* Bytes the transport has already buffered (TLS records decrypted but
	 * not yet read): the conn reads again without waiting for epoll. */
	size_t (*pending)(struct net_conn *c);
	/* Write: count of bytes accepted (may be short), -EAGAIN, -errno. */
	ssize_t (*writev)(struct net_conn *c, const struct iovec *iov, int iovcnt);
	/* Orderly end of our direction once output drained (TLS close_notify);
	 * the conn then does shutdown(fd, SHUT_WR) itself unless
	 * NET_CF_TP_OWNS_IO. May be NULL. */
	void (*shutdown)(struct net_conn *c);
	/* Interest changed (only for NET_CF_TP_OWNS_IO transports; others are
	 * driven by epoll via the conn's fd). May be NULL. */
	void (*update)(struct net_conn *c, bool want_read, bool want_write);
	/* Free the transport state. abort: the connection is being dropped
	 * (RST). The conn closes the fd itself unless NET_CF_TP_OWNS_IO. */
	void (*close)(struct net_conn *c, bool abort);
};

extern const struct net_transport net_tcp_transport;
extern const struct net_transport net_tls_transport;
extern const struct net_transport net_tcp_connect_transport; /* connect.c */
/* connect.c: the tcp-connect transport's state for a TLS client conn
 * (certificate checked against host); 0, or -1 out of memory. */
int net_connect_tls_state(struct net_tls *tls, const char *host, void **state);
/* tls_ocsp.c: make ctx (a client context) ask for a stapled OCSP response
 * and fail the handshake unless it says "good" (see tls_ocsp.c). 0 or -1. */
struct ssl_ctx_st;
int net_tls_ocsp_require(struct ssl_ctx_st *ctx);
/* resolve.c: net_connect_from for a host (or bind address) that is a name:
 * resolved on a thread, the conn returned at once (see resolve.c). */
struct net_conn *net_resolve_connect(struct net_loop *loop, const char *host, int port, int family,
				     struct net_tls *tls, const char *bind_name, char *err, size_t errlen);

/* ---- connections ------------------------------------------------------------------ */

#define NET_SPARE_MAX 32 /* spare chunks kept per size */
struct net_chunk {
	struct net_chunk *next;
	size_t start, end, cap;
	uint8_t data[];
};

enum {
	NET_CF_READY = 1u << 0,       /* handshake done */
	NET_CF_PAUSED = 1u << 1,      /* owner paused reading */
	NET_CF_CLOSING = 1u << 2,     /* close requested or failed: no more on_data */
	NET_CF_CLOSED_CB = 1u << 3,   /* on_close has run */
	NET_CF_WBLOCKED = 1u << 4,    /* short write: waiting for EPOLLOUT */
	NET_CF_ABORT = 1u << 5,       /* close abortively (RST, discard output) */
	NET_CF_PEER_EOF = 1u << 6,    /* peer sent FIN */
	NET_CF_WR_SHUT = 1u << 7,     /* our FIN sent (linger: draining input) */
	NET_CF_TP_OWNS_IO = 1u << 8,  /* transport does its own polling (WS) */
	NET_CF_DONE = 1u << 9,        /* linger finished: free at reap */
	NET_CF_UNIX = 1u << 10,       /* AF_UNIX: no TCP options */
	NET_CF_REDELIVER = 1u << 11,  /* resumed: run on_data even if nothing new */
	NET_CF_USER_SET = 1u << 12,   /* net_conn_set_user was called */
};

struct net_conn {
	struct net_handle h;
	struct net_loop *loop;
	struct net_listener *listener;
	const struct net_transport *tp;
	void *tp_state; /* SSL *, lws wsi, ... */
	unsigned tp_want; /* NET_READ/NET_WRITE wanted by an unfinished handshake or TLS op */
	int fd;
	unsigned flags;
	uint32_t ev; /* EPOLL* mask currently registered (0 = not in epoll) */

	/* input: [in_start, in_end) of in_base; in_base is either in_own
	 * (allocated, cap in_cap) or the loop's scratch (only during delivery). */
	uint8_t *in_base, *in_own;
	uint32_t in_start, in_end, in_cap, in_limit; /* input never exceeds 4 GiB (MQTT: 256 MiB) */

	/* output queue */
	struct net_chunk *out_head, *out_tail;
	size_t out_bytes;
	size_t reserved; /* bytes handed out by net_conn_reserve */

	enum net_close_reason why;
	int err;
	uint64_t linger_deadline;

	const struct net_conn_cbs *cbs; /* the owner's (static) table, or NULL */
	void *cb_user, *user;

	char *cert_cn, *cert_subject, *psk_identity; /* TLS, set at handshake end */

	struct net_link link_all, link_dirty, link_reap, link_rdpend;
	char peer[]; /* "ip:port", exact size: idle connections are what a broker holds most */
};

/* conn.c */
struct net_conn *net_conn_new(struct net_loop *loop, int fd, struct net_listener *l,
			      const struct net_transport *tp, const char *peer);
/* Record a failure (first reason wins) and schedule the reap. */
void net_conn_fail(struct net_conn *c, enum net_close_reason why, int err);
/* Map a transport's negative errno to a close reason and fail. */
void net_conn_fail_errno(struct net_conn *c, int neg_errno);
/* Append bytes to the input buffer (WS transports). -ENOBUFS past the limit. */
int net_conn_feed(struct net_conn *c, const void *p, size_t len);
/* Run on_data if there is input and the conn is open (WS transports). */
void net_conn_deliver(struct net_conn *c);
void net_conn_set_ready(struct net_conn *c);
/* Make input live in the conn's own buffer (after delivery from scratch). */
int net_conn_input_own(struct net_conn *c);
void net_conn_free_out(struct net_conn *c);
/* A drained output chunk: kept as a spare (standard sizes) or freed. */
void net_chunk_release(struct net_loop *loop, struct net_chunk *k);
/* Free the spare chunks (net_loop_free). */
void net_chunk_spares_free(struct net_loop *loop);
/* Room for >= want more input bytes in the conn's own buffer (see conn.c). */
uint8_t *net_conn_in_space(struct net_conn *c, size_t want, size_t *avail, int *err);
/* Free a conn completely (on_close has run or the loop is being freed). */
void net_conn_destroy(struct net_conn *c);

/* conn_io.c */
void net_conn_event(struct net_conn *c, uint32_t events);
/* Flush output now (writev until drained or EAGAIN). */
void net_conn_flush(struct net_conn *c);
/* Recompute and apply the epoll interest (or tp->update). */
void net_conn_update_events(struct net_conn *c);
/* Read and deliver (epoll said readable, or transport has pending bytes). */
void net_conn_read(struct net_conn *c);
/* The reap step: on_close for closed conns, then linger or free. */
void net_conn_reap_all(struct net_loop *loop);
/* Earliest linger deadline, or UINT64_MAX. */
uint64_t net_conn_next_deadline(struct net_loop *loop);

/* ---- listeners ---------------------------------------------------------------------- */

#define NET_LISTEN_MAX_SOCKS 8

struct net_lsock {
	struct net_handle h;
	int fd;
	int family;
	struct net_listener *l;
};

struct net_listener {
	struct net_loop *loop;
	net_accept_cb cb;
	void *user;
	enum net_transport_kind kind;
	struct net_tls *tls; /* borrowed */
	char *unix_path;
	int port;
	int refs;   /* 1 while open + 1 per conn that names it */
	int closed;
	uint64_t paused_until; /* accept pause after EMFILE (0 = not paused) */
	void *ws; /* WebSockets state (ws.c), NULL otherwise */
	struct net_http *http; /* HTTP state (http.c), NULL otherwise */
	int nsocks;
	struct net_lsock socks[NET_LISTEN_MAX_SOCKS];
	struct net_link link; /* loop->listeners while open, loop->dead_lsock when freed */
};

void net_listener_event(struct net_lsock *s, uint32_t events);
void net_listener_unref(struct net_listener *l);
/* Resume listeners whose accept pause has expired; next resume deadline. */
uint64_t net_listener_tick(struct net_loop *loop);

/* ---- TLS (tls.c) ---------------------------------------------------------------------- */

/* Attach a new SSL (from t's current SSL_CTX) to an accepted conn. */
int net_tls_attach(struct net_tls *t, struct net_conn *c);
/* Client side: SSL in connect state for a connected outbound conn, SNI and
 * name check for host (connect.c, once the TCP connect completed). */
int net_tls_attach_client(struct net_tls *t, struct net_conn *c, const char *host);
/* The options t was last built from (deep copy kept by tls.c): ws.c hands
 * the file names to libwebsockets, which does TLS itself for WS listeners. */
const struct net_tls_opts *net_tls_opts_of(const struct net_tls *t);
/* Fill c->cert_cn / cert_subject from ssl's (SSL *) verified peer
 * certificate; used by tls.c and, for WSS, by ws.c. */
void net_tls_peer_names(struct net_conn *c, void *ssl);

/* ---- WebSockets (ws.c, libwebsockets; the only file including its header) ---- */

struct net_ws;
/* net_listen, kind NET_WEBSOCKETS, once the sockets are bound: create the
 * lws context / vhost (TLS from l->tls, static files from o->ws_http_dir). */
int net_ws_listener_init(struct net_listener *l, const struct net_listen_opts *o, char *err, size_t errlen);
/* Instead of net_tls_attach for a conn accepted on a WS listener: adopt its
 * fd into lws (c->tp becomes the ws transport, NET_CF_TP_OWNS_IO). On error
 * the caller destroys c (c->fd is -1 if lws closed the fd already). */
int net_ws_attach(struct net_listener *l, struct net_conn *c);
/* The listener struct is being freed (refs 0): destroy the lws context. */
void net_ws_listener_free(struct net_listener *l);

/* ---- HTTP (http.c, libwebsockets) ------------------------------------------------ */
struct net_http;
/* net_listen, kind NET_HTTP, once the sockets are bound: the lws context
 * and vhost (TLS from l->tls), the owner's handler from o->http_cb. */
int net_http_listener_init(struct net_listener *l, const struct net_listen_opts *o, char *err, size_t errlen);
/* An fd accepted on an HTTP listener (no net_conn: HTTP requests are not a
 * byte stream for the owner): lws adopts it. The fd is closed on error. */
int net_http_attach(struct net_listener *l, int fd, const char *peer);
/* The listener struct is being freed: destroy the lws context. */
void net_http_listener_free(struct net_listener *l);
#endif
