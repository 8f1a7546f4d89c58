/*
 * net/net.h — event loop, connections, listeners, transports.
 *
 * Knows nothing of MQTT. Reports events through callbacks (function pointer
 * + void *user). One thread. Connections read big into an input buffer and
 * hand the bytes to their owner; output is appended and flushed once per
 * loop pass with writev (a short write arms EPOLLOUT). Closes are deferred:
 * a connection is never freed inside a callback; it is reaped after the
 * dispatch pass, and its on_close callback runs exactly once.
 *
 * Transports (TCP, TLS with OpenSSL, WebSockets with libwebsockets, Unix
 * sockets) sit behind one vtable in net_internal.h; the broker sees only
 * struct net_conn.
 *
 * Errors are negative errno values.
 */
#ifndef VIGIL_NET_H
#define VIGIL_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct net_loop;
struct net_conn;
struct net_listener;
struct net_tls; /* a TLS server context (certificates, verify mode, ...) */

/* ---- loop ------------------------------------------------------------------- */

enum { NET_READ = 1, NET_WRITE = 2 };

typedef void (*net_fd_cb)(struct net_loop *loop, int fd, unsigned events, void *user);
typedef void (*net_hook_cb)(struct net_loop *loop, void *user);

struct net_loop *net_loop_new(void);
/* Frees the loop; closes (abortively) any connection and listener still open.
 * on_close is not called for them (the owner is tearing down); raw fds
 * registered with net_fd_add are forgotten, not closed. */
void net_loop_free(struct net_loop *loop);

/* Raw fd registration (signalfd, timerfd, ...). events: NET_READ|NET_WRITE. */
int net_fd_add(struct net_loop *loop, int fd, unsigned events, net_fd_cb cb, void *user);
int net_fd_mod(struct net_loop *loop, int fd, unsigned events);
void net_fd_del(struct net_loop *loop, int fd);

/* The cached monotonic clock in milliseconds (CLOCK_MONOTONIC), refreshed
 * once per loop pass, after epoll_wait returns. */
uint64_t net_now(const struct net_loop *loop);
/* Refresh the cache now (for start-up and tests). */
uint64_t net_now_update(struct net_loop *loop);

/*
 * One pass: flush pending output, run the before-sleep hook, epoll_wait for
 * at most timeout_ms (-1 forever, 0 poll), refresh now, dispatch events,
 * then reap closed connections. Returns the number of events or -errno.
 */
int net_loop_run_once(struct net_loop *loop, int timeout_ms);
/* Hook run at the start of every pass before pending output is flushed,
 * and again before any other write of output queued since it last ran
 * (the broker commits its durable store there: acks leave after commit).
 * The hook must not flush. */
void net_loop_set_before_flush(struct net_loop *loop, net_hook_cb cb, void *user);
/* Memory accounting: cb is told, in bytes (usable sizes), of every block
 * net allocates (+) or frees (-) for connections: the conn itself, its
 * input buffer and its output chunks. NULL cb: none (the default). */
void net_loop_set_mem_hook(struct net_loop *loop, void (*cb)(void *user, long long delta), void *user);
/* Connections past their on_close that are still finishing an orderly
 * close (flushing queued output, waiting for the peer's FIN). A shutdown
 * can run passes until this is 0; each is bounded by the linger time. */
size_t net_loop_lingering(const struct net_loop *loop);

/* ---- connections -------------------------------------------------------------- */

enum net_close_how {
	NET_CLOSE_FLUSH = 0, /* orderly: flush queued output (bounded), then FIN */
	NET_CLOSE_ABORT = 1, /* peer is dead: SO_LINGER 0, RST, discard output */
};

/* Why a connection closed, passed to on_close. */
enum net_close_reason {
	NET_CLOSED_LOCAL = 0,   /* net_conn_close was called */
	NET_CLOSED_EOF = 1,     /* peer sent FIN */
	NET_CLOSED_RESET = 2,   /* ECONNRESET / EPIPE */
	NET_CLOSED_ERROR = 3,   /* other socket error (ETIMEDOUT from TCP_USER_TIMEOUT, ...) */
	NET_CLOSED_TLS = 4,     /* TLS handshake or record failure */
	NET_CLOSED_PROTOCOL = 5 /* WebSocket protocol violation (text frame, bad framing) */
};

struct net_conn_cbs {
	/* New bytes are in the input buffer (net_conn_input). The owner consumes
	 * whole frames with net_conn_consume and leaves partial ones. */
	void (*on_data)(struct net_conn *c, void *user);
	/* The connection is over for its owner: EOF, error, or net_conn_close.
	 * Called once, from the reaper after the dispatch pass, never inside
	 * another callback. After it returns the owner must not touch the conn;
	 * net may keep the socket a little longer to flush an orderly close
	 * (bounded, default 2 s), then frees it. */
	void (*on_close)(struct net_conn *c, enum net_close_reason why, int err, void *user);
};

void net_conn_set_cbs(struct net_conn *c, const struct net_conn_cbs *cbs, void *user);

/* The unconsumed input. */
const uint8_t *net_conn_input(const struct net_conn *c, size_t *len);
void net_conn_consume(struct net_conn *c, size_t n);
/* Largest input the conn will buffer before it stops reading (back-pressure
 * and packet size limit); default 1 MiB + 8. */
void net_conn_set_input_limit(struct net_conn *c, size_t max);
/* Stop / resume reading from the socket (flow control). */
void net_conn_pause_read(struct net_conn *c, bool paused);

/* Queue bytes (copied). Flushed before the loop sleeps. Returns 0 or -ENOMEM
 * / -EPIPE (closing). */
int net_conn_write(struct net_conn *c, const void *p, size_t len);
/* Reserve len bytes at the tail of the output queue to encode into; commit
 * what was used. Avoids a copy. */
uint8_t *net_conn_reserve(struct net_conn *c, size_t len);
void net_conn_commit(struct net_conn *c, size_t used);
/* Drop everything queued and not yet written (an acknowledgement that
 * must not leave after all). */
void net_conn_discard_output(struct net_conn *c);
/* Bytes queued and not yet accepted by the kernel / TLS / WS layer. */
size_t net_conn_out_pending(const struct net_conn *c);

/* Schedule a close. Idempotent; the first `how` wins unless a later call
 * asks for ABORT. Reads stop immediately; on_close runs after dispatch. */
void net_conn_close(struct net_conn *c, enum net_close_how how);
bool net_conn_closing(const struct net_conn *c);

/* "ip:port" (or "unix" / path) of the peer, for logs. */
const char *net_conn_peer(const struct net_conn *c);
/* The listener that accepted it. */
struct net_listener *net_conn_listener(const struct net_conn *c);
/* TLS: the verified peer certificate's CN / subject ("CN=...,O=..." in
 * RFC 2253 form) or NULL; PSK identity or NULL. */
const char *net_conn_cert_cn(const struct net_conn *c);
const char *net_conn_cert_subject(const struct net_conn *c);
const char *net_conn_psk_identity(const struct net_conn *c);
/* True once the transport handshake (TLS, WebSocket upgrade) is complete. */
bool net_conn_ready(const struct net_conn *c);

/* Socket options on an accepted connection. */
int net_conn_set_nodelay(struct net_conn *c, bool on);
int net_conn_set_user_timeout(struct net_conn *c, unsigned ms);
int net_conn_set_keepalive(struct net_conn *c, int idle_s, int intvl_s, int count);

void net_conn_set_user(struct net_conn *c, void *user);
void *net_conn_user(const struct net_conn *c);

/* ---- outbound connections (connect.c) ------------------------------------------ */

/* Start a nonblocking TCP connect to host:port (a numeric IPv4/IPv6 address
 * or a name; family AF_UNSPEC, AF_INET or AF_INET6). Names are resolved
 * on a thread, never blocking the loop (resolve.c); a failed lookup
 * reaches on_close as NET_CLOSED_ERROR with err = NET_EAI_BASE + |EAI
 * code| (net_strerror names it). Returns a conn that is not
 * ready yet: set its callbacks at once; writes are queued and flushed once
 * connected; a failed connect reaches on_close (NET_CLOSED_ERROR / RESET,
 * err = errno; a failed TLS handshake: NET_CLOSED_TLS). tls (a client
 * context, borrowed) makes it a TLS connection once TCP is up, checking
 * the certificate against host. NULL with err filled when it fails at once (resolution,
 * socket, an immediate connect error). net_conn_listener() is NULL. */
struct net_conn *net_connect(struct net_loop *loop, const char *host, int port, int family, struct net_tls *tls,
			     char *err, size_t errlen);
#define NET_EAI_BASE 100000 /* on_close err values from name resolution: NET_EAI_BASE + |EAI_*| */
/* strerror(3) for an on_close err, resolution failures included. */
const char *net_strerror(int err);
/* net_connect from a given local address (bind(2) before connect; a
 * numeric address or a name, port 0; NULL = any). Only the remote's
 * addresses of the bound address's family are tried. */
struct net_conn *net_connect_from(struct net_loop *loop, const char *host, int port, int family, struct net_tls *tls,
				  const char *bind_address, char *err, size_t errlen);

/* ---- listeners ----------------------------------------------------------------- */

enum net_transport_kind { NET_TCP = 0, NET_WEBSOCKETS = 1, NET_HTTP = 2 };

/* ---- HTTP (http.c: libwebsockets parses, we answer) ------------------------------ */

/* One request on an HTTP listener, valid from the handler call until its
 * answer is written or the connection ends (for streams: until release). */
struct net_http_req;
/* A request head arrived. The handler answers before it returns, with
 * net_http_respond or net_http_stream (no answer: 500). */
typedef void (*net_http_cb)(struct net_http_req *r, void *user);
/* Fill up to cap bytes of a streamed body; set *done with the last bytes.
 * Called once per writeable slot, so each call should be short. */
typedef size_t (*net_http_fill_cb)(void *state, uint8_t *buf, size_t cap, bool *done);

/* "GET", "POST", ... ("" when lws did not recognise it). */
const char *net_http_method(const struct net_http_req *r);
/* The decoded, sanitised path without the query ("/api/v1/clients"). */
const char *net_http_path(const struct net_http_req *r);
const char *net_http_peer(const struct net_http_req *r);
/* The (decoded) value of query argument name, in buf. 0, or -1: absent. */
int net_http_query(const struct net_http_req *r, const char *name, char *buf, size_t cap);
/* "Authorization: Basic ..." decoded into user and pass (NUL-terminated).
 * 0, or -1: absent, not Basic, malformed or too long. */
int net_http_basic_auth(const struct net_http_req *r, char *user, size_t ucap, char *pass, size_t pcap);
/* Answer with a whole body (copied; sent with Content-Length, in slices).
 * extra: more header lines, each "Name: value\r\n", or NULL. A status >= 400
 * or a method other than GET also closes the connection after the answer. */
int net_http_respond(struct net_http_req *r, int status, const char *ctype, const char *extra, const void *body,
		     size_t len);
/* Answer with a streamed body (chunked): fill(state) is pulled once per
 * writeable slot; release(state) runs exactly once, when the answer is done
 * or the connection ends first. On error the caller still owns state. */
int net_http_stream(struct net_http_req *r, int status, const char *ctype, const char *extra, net_http_fill_cb fill,
		    void *state, void (*release)(void *state));
/* Connections open now on an HTTP listener (0 for any other). */
size_t net_http_connections(const struct net_listener *l);

struct net_listen_opts {
	const char *bind_address; /* NULL or "" = any; a host name or literal */
	const char *bind_interface; /* SO_BINDTODEVICE (e.g. "eth0"), or NULL */
	int port;                 /* TCP port; ignored with unix_path */
	const char *unix_path;    /* Unix-domain socket path, or NULL */
	int family;               /* AF_UNSPEC (both), AF_INET, AF_INET6 */
	enum net_transport_kind kind;
	struct net_tls *tls;      /* NULL for plain; owned by the caller */
	int backlog;              /* 0 = default (SOMAXCONN) */
	const char *ws_http_dir;  /* optional static files for WebSockets (NULL = none) */
	unsigned ws_headers_size; /* WebSockets: HTTP header buffer (bytes, <= 65535), 0 = lws's default */
	/* WebSockets: libwebsockets' log level (its LLL_* bitmask; 0 = nothing)
	 * and where its lines go (NULL: stderr). Process-wide in lws: the last
	 * WebSockets listener opened sets them. */
	int ws_log_level;
	void (*ws_log)(void *user, const char *line);
	void *ws_log_user;
	/* NET_HTTP: the request handler (ws_headers_size also bounds the
	 * request head; TLS from tls; accept_cb is not called). */
	net_http_cb http_cb;
	void *http_user;
	int http_max_conns;       /* open connections at most (more are closed at accept); <= 0: 256 */
};

/* A new connection was accepted (before any handshake completes). The
 * callback sets the conn's callbacks; it may close it at once. */
typedef void (*net_accept_cb)(struct net_listener *l, struct net_conn *c, void *user);

/* Open a listener (one or more sockets: IPv4 and IPv6 for AF_UNSPEC).
 * SO_REUSEADDR is set as mosquitto does. Returns NULL and fills err. */
struct net_listener *net_listen(struct net_loop *loop, const struct net_listen_opts *o, net_accept_cb cb,
				void *user, char *err, size_t errlen);
/* Stop accepting and close the listening sockets (connections stay). */
void net_listener_close(struct net_listener *l);
void *net_listener_user(const struct net_listener *l);
/* The port actually bound (useful with port 0). */
int net_listener_port(const struct net_listener *l);

/* ---- TLS ---------------------------------------------------------------------- */

struct net_tls_opts {
	const char *cafile, *capath, *certfile, *keyfile;
	const char *tls_version;    /* "tlsv1.3", "tlsv1.2", "tlsv1.1" or NULL (1.2+) */
	const char *ciphers;        /* TLS <= 1.2 cipher list */
	const char *ciphers_tls13;  /* TLS 1.3 cipher suites */
	const char *crlfile;
	const char *dhparamfile;
	const char *psk_hint;
	/* PSK lookup: identity -> key bytes; returns key length or -1. */
	int (*psk_lookup)(const char *identity, uint8_t *key, size_t cap, void *user);
	void *psk_user;
	bool require_certificate;
};
struct net_tls *net_tls_new(const struct net_tls_opts *o, char *err, size_t errlen);
/* Reload certificates/keys/CRL in place (SIGHUP); existing connections keep
 * their sessions. Returns 0 or -1 with err filled (old context kept). */
int net_tls_reload(struct net_tls *t, const struct net_tls_opts *o, char *err, size_t errlen);
void net_tls_free(struct net_tls *t);

/* A TLS client context for outbound connections (net_connect). The server
 * certificate is verified against cafile/capath; insecure skips the check
 * of its name. tls_version: that version only (as libmosquitto), NULL:
 * 1.2 and later. alpn: one protocol name or NULL. Free with net_tls_free. */
struct net_tls_client_opts {
	const char *cafile, *capath, *certfile, *keyfile, *tls_version, *alpn;
	bool insecure;
	/* TLS-PSK instead of certificates: identity and the key as hex digits
	 * (mosquitto's bridge_identity / bridge_psk); TLS 1.2 offers the PSK
	 * cipher suites only, TLS 1.3 the external PSK (SHA-256 suites). */
	const char *psk_identity, *psk_hex;
	/* Require a stapled OCSP response that says "good" for the server's
	 * certificate, signed by a CA we trust and current (mosquitto's
	 * bridge_require_ocsp); no response, or any other status, fails the
	 * handshake (tls_ocsp.c). */
	bool require_ocsp;
};
struct net_tls *net_tls_client_new(const struct net_tls_client_opts *o, char *err, size_t errlen);

#endif
