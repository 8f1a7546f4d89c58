/*
 * net/lws.h — the libwebsockets glue shared by ws.c (MQTT over WebSockets) and http.c (the HTTP
 * API): one lws context and vhost per listener driven by our epoll loop (Debian's lws 4.1 has no
 * LWS_WITH_EXTERNAL_POLL), see lws.c. Included only by net/ws.c, net/http.c and net/lws.c.
 */
#ifndef VIGIL_NET_LWS_H
#define VIGIL_NET_LWS_H

#include "net_internal.h"

#include <libwebsockets.h>

enum { NET_LWS_TIMER_OFF = 0, NET_LWS_TIMER_TICK = 1, NET_LWS_TIMER_KICK = 2 };

/* One listener's lws context, embedded in the owner's listener state. The
 * owner links each session it wants re-synced into `touched` (through a
 * struct net_link of its own) and keeps `busy` as the number of sessions for
 * which lws may run timers; both are read by net_lws_after. */
struct net_lws {
	struct net_loop *loop;
	struct lws_context *ctx; /* its user pointer is this struct */
	struct lws_vhost *vh;
	bool tls;
	int tfd;            /* timerfd: kick (fire now) and tick */
	int timer;          /* NET_LWS_TIMER_* as armed */
	unsigned tick_ms;
	unsigned busy;      /* the owner's count: tick while > 0 */
	struct net_link touched;
	void (*sync)(struct net_link *touch);     /* the owner's re-sync of one touched session */
	void (*on_timer)(struct net_lws *lw);     /* may be NULL: run before lws's timers are serviced */
	const struct net_tls_opts *init_tls;      /* only while the vhost is being created */
};

/* What differs between the two kinds of listener. */
struct net_lws_conf {
	const char *what;                        /* "WebSockets", "HTTP": for error messages */
	const struct lws_protocols *protocols;
	const char *vhost_name;
	const struct lws_http_mount *mounts;     /* NULL: none */
	const char *server_string, *alpn;        /* NULL: lws's defaults */
	unsigned short max_http_header_data;     /* 0: lws's default */
	unsigned pt_serv_buf_size;               /* 0: lws's default */
	int timeout_secs;                        /* lws's handshake / shutdown / request-head timeouts */
	int keepalive_timeout;                   /* 0: lws's default */
	unsigned tick_ms;                        /* timer service period while busy */
	const struct net_tls_opts *tls;          /* NULL: plain; else certfile is set */
};

/* Set lw up for loop: the timerfd (registered with the loop), lws's log
 * level and sink from o (process-wide in lws: the last listener's wins), the
 * context and the vhost (TLS from c->tls, with net_lws_tls_extra applied by
 * the owner's callback). lw->sync must be set by the caller (before any
 * session is adopted). 0, or -1 with err set and nothing left allocated. */
int net_lws_init(struct net_lws *lw, struct net_loop *loop, const struct net_lws_conf *c,
		 const struct net_listen_opts *o, char *err, size_t errlen);
/* Destroy the context (lws calls back WSI_DESTROY for every wsi left), then
 * unregister and close the timerfd. The owner frees what it still holds. */
void net_lws_fini(struct net_lws *lw);

/* Adopt an accepted socket into lw's vhost (HTTP first; TLS when the
 * listener has it), opaque as the wsi's opaque user data. NULL: lws closed
 * the fd. lws may call back (even WSI_DESTROY) before this returns. */
struct lws *net_lws_adopt(struct net_lws *lw, int fd, void *opaque);

/* Serve one loop event ev on fd, registered with interest mask, through
 * lws_service_fd (an event outside mask is an error/hangup folded in by the
 * loop: POLLHUP). Returns whether POLLOUT was offered. */
bool net_lws_service_fd(struct net_lws *lw, int fd, unsigned mask, unsigned ev);
/* Offer fd one POLLOUT (lws may have decided to write while reading). */
void net_lws_offer_write(struct net_lws *lw, int fd);
/* fd is still registered with the loop as (cb, user): lws did not free it. */
bool net_lws_fd_is(const struct net_loop *loop, int fd, net_fd_cb cb, const void *user);

/* Arm the timer: KICK fires at once, TICK every tick_ms, OFF. A pending
 * kick is not downgraded to a tick. */
void net_lws_timer_set(struct net_lws *lw, int want);
/* After every entry into lws: re-sync the touched sessions (lw->sync), then
 * kick the timer if lws has pending work, else tick while busy, else off. */
void net_lws_after(struct net_lws *lw);

/* LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS (user is the vhost's
 * SSL_CTX): what lws has no option for — tls_version as the minimum version
 * (as tls.c), no renegotiation, capath, crlfile. 0, or 1 to fail the vhost. */
int net_lws_tls_extra(struct lws *wsi, void *ssl_ctx);

#endif
