/*
 * net/ws.c — WebSocket listeners (MQTT over WebSockets, plain or TLS) with libwebsockets 4.1, driven by
 * our epoll loop through lws.c (context, vhost, fd service, timer, TLS extras: shared with http.c).
 *
 * listen.c binds and accepts as for TCP (bind address honoured, IPv4+IPv6, SO_REUSEADDR, EMFILE pause,
 * peer string); net_ws_attach adopts the fd into lws (opaque = our session). lws does TLS (with the
 * listener's net_tls file names), the HTTP upgrade (subprotocol "mqtt" or "mqttv3.1"; none = "mqtt") and
 * the framing. Binary payloads are appended to the conn's input as one byte stream (split/packed packets
 * are the broker's framing business; fragments are streamed). Text frames close (v5/v311 MQTT-6.0.0-1).
 * Output: up to WS_FRAME_MAX of the conn's queue is copied into an LWS_PRE-headed buffer, written as a
 * binary frame in SERVER_WRITEABLE, which pulls the next.
 *
 * Polling without LWS_WITH_EXTERNAL_POLL (lws.c): each adopted fd is registered here with net_fd_add and
 * served with net_lws_service_fd; the interest mask is ours to compute after every entry into lws for
 * each session lws called back about: READ unless rx is flow-controlled; WRITE while we hold an unsent
 * frame or a close request, lws holds a partial write (lws_partial_buffered) or OpenSSL wants to write.
 * Writes lws decides on its own (pong, close reply) are caught by offering an established session one
 * POLLOUT right after each read service. lws's timers (close-ack, shutdown and handshake timeouts, our
 * own drain bound) run from lws.c's timerfd, kicked when lws reports pending work or rx was resumed and
 * ticking every WS_TICK_MS only while some session is "unsettled" (handshaking, closing, holding output
 * or overflow input; counted in lw.busy): an idle broker or idle established sessions cost nothing.
 *
 * Options: lws's header buffer size and log level (and a sink for its lines) come in net_listen_opts. Not
 * here: accepting (listen.c), conn buffers and reaping (conn*.c), PSK over WebSockets (config refuses it),
 * permessage-deflate, TLS reload for WS listeners (new certificate files need a restart).
 *
 * Invariant: a session lives while its wsi lives or its conn names it; the conn never sees lws, and lws never
 * sees a conn after tp->close (the session is detached and lws finishes the close on its own, bounded in time).
 */
#include "lws.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#define WS_FRAME_MAX ((size_t)128 * 1024) /* payload bytes per binary frame we send */
#define WS_RX_BUFFER 4096                 /* lws per-session rx chunk (allocated per session) */
#define WS_SERV_BUF 32768                 /* lws per-thread read buffer */
#define WS_TICK_MS 1000                   /* timer service period while sessions are unsettled */
#define WS_CLOSE_SECS 3                   /* bound on drain + close once the conn is gone */
#define WS_LWS_TIMEOUT_SECS 10            /* lws's own handshake / shutdown timeouts */

struct net_ws {
	struct net_lws lw;       /* context, timer; lw.touched: sessions lws called back about since the
				  * last sync; lw.busy: sessions for which lws may have timers running */
	struct net_link pend;    /* sessions with overflow input waiting for room */
	struct net_link all;     /* every session */
	char *http_dir;
	struct lws_http_mount mount;
};

struct ws_sess {
	struct net_ws *ws;
	struct lws *wsi;     /* NULL before the first callback and after WSI_DESTROY */
	struct net_conn *c;  /* NULL once detached (the conn was freed) */
	int fd;
	unsigned mask;       /* NET_READ|NET_WRITE registered with the loop */
	bool registered;     /* fd is in the loop */
	bool gone;           /* lws destroyed the wsi (and closed the fd) */
	bool established;    /* WebSocket upgrade done */
	bool lws_closing;    /* lws is closing it (we returned -1, or it said CLOSED) */
	bool close_req;      /* detached: close once the output is written */
	bool rx_off;         /* lws rx flow control applied by us */
	bool c_paused;       /* the conn does not want input now */
	bool http_busy;      /* plain HTTP request (ws_http_dir) being answered */
	bool counted;        /* counted in ws->lw.busy */
	uint8_t *out;        /* LWS_PRE headroom + payload [out_off, out_len) */
	size_t out_off, out_len;
	uint8_t *ovf;        /* received payload that did not fit the conn's input */
	size_t ovf_len;
	struct net_link touch, pend, all;
};

/* ---- helpers ------------------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *msg, const char *arg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s%s%s", msg, arg ? ": " : "", arg ? arg : "");
}

static size_t conn_room(const struct net_conn *c)
{
	size_t used = c->in_end - c->in_start;
	return used < c->in_limit ? c->in_limit - used : 0;
}

static bool ssl_wants_write(struct lws *wsi)
{
	SSL *ssl = lws_get_ssl(wsi);
	return ssl && SSL_want_write(ssl);
}

/* Bytes ever handed to the kernel for fd: acked + still queued. */
static long long sent_mark(int fd)
{
	int q = 0;
	struct tcp_info ti;
	socklen_t tl = sizeof ti;
	memset(&ti, 0, sizeof ti);
	if (ioctl(fd, SIOCOUTQ, &q) < 0)
		return -1;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0)
		ti.tcpi_bytes_acked = 0; /* a Unix socket: the queue alone */
	return (long long)ti.tcpi_bytes_acked + q;
}

/* Handshaking, closing, or holding data: lws timers or our buffers may need
 * the tick. Kept as a count, updated whenever a session is re-synced. */
static void sess_account(struct ws_sess *s, bool dying)
{
	bool u = !dying && !s->gone &&
		 (!s->established || !s->c || s->lws_closing || s->out_len > s->out_off || s->ovf_len);
	if (u != s->counted) {
		s->ws->lw.busy += u ? 1u : -1u;
		s->counted = u;
	}
}

/* ---- session state ----------------------------------------------------------------------- */

static void sess_touch(struct ws_sess *s)
{
	if (!net_link_linked(&s->touch))
		net_list_add_tail(&s->ws->lw.touched, &s->touch);
}

static void sess_out_free(struct ws_sess *s)
{
	free(s->out);
	s->out = NULL;
	s->out_off = s->out_len = 0;
}

static void sess_free(struct ws_sess *s)
{
	if (s->registered)
		net_fd_del(s->ws->lw.loop, s->fd);
	sess_account(s, true);
	net_list_del(&s->touch);
	net_list_del(&s->pend);
	net_list_del(&s->all);
	sess_out_free(s);
	free(s->ovf);
	free(s);
}

/* The epoll interest this session needs now (see the header comment). */
static void sess_sync(struct ws_sess *s)
{
	sess_account(s, false);
	if (!s->registered || s->gone || !s->wsi)
		return;
	unsigned want = 0;
	if (!s->rx_off)
		want |= NET_READ;
	if (s->out_len > s->out_off || (s->close_req && !s->lws_closing) || lws_partial_buffered(s->wsi) ||
	    ssl_wants_write(s->wsi) || s->http_busy)
		want |= NET_WRITE;
	if (want != s->mask && net_fd_mod(s->ws->lw.loop, s->fd, want) == 0)
		s->mask = want;
}

/* lw.sync: a touched session's turn. */
static void ws_sync(struct net_link *touch)
{
	sess_sync(net_container_of(touch, struct ws_sess, touch));
}

/* Apply lws rx flow control: off while the conn is paused or overflow input
 * waits; always on once detached (lws must read the close handshake). */
static void sess_rx_apply(struct ws_sess *s)
{
	if (s->gone || !s->wsi || !s->established)
		return;
	bool off = s->c && !s->lws_closing && (s->c_paused || s->ovf_len > 0);
	if (off == s->rx_off)
		return;
	s->rx_off = off;
	lws_rx_flow_control(s->wsi, (off ? 0 : 1) | LWS_RXFLOW_REASON_FLAG_PROCESS_NOW);
	if (!off)
		net_lws_timer_set(&s->ws->lw, NET_LWS_TIMER_KICK); /* lws may hold buffered rx: serve it without waiting for epoll */
	sess_touch(s);
}

/* Move overflow input into the conn as room allows, and deliver. */
static void sess_feed_overflow(struct ws_sess *s)
{
	struct net_conn *c = s->c;
	if (!c || !s->ovf_len || s->c_paused || net_conn_closing(c))
		return;
	size_t n = conn_room(c);
	if (n > s->ovf_len)
		n = s->ovf_len;
	if (n && net_conn_feed(c, s->ovf, n) < 0) {
		net_conn_fail(c, NET_CLOSED_ERROR, ENOMEM);
		return;
	}
	memmove(s->ovf, s->ovf + n, s->ovf_len - n);
	s->ovf_len -= n;
	if (!s->ovf_len) {
		free(s->ovf);
		s->ovf = NULL;
		net_list_del(&s->pend);
	}
	net_conn_deliver(c);
	sess_rx_apply(s);
}

/* ---- lws callbacks ------------------------------------------------------------------------- */

static int cb_established(struct ws_sess *s)
{
	if (!s)
		return -1;
	s->established = true;
	s->http_busy = false;
	if (s->c) {
		SSL *ssl = lws_get_ssl(s->wsi); /* WSS: CN / subject as for a TLS conn */
		if (ssl)
			net_tls_peer_names(s->c, ssl);
		net_conn_set_ready(s->c);
	}
	return 0;
}

static int cb_receive(struct ws_sess *s, struct lws *wsi, const uint8_t *in, size_t len)
{
	if (!s)
		return -1;
	if (!lws_frame_is_binary(wsi)) {
		/* v5 MQTT-6.0.0-1, v311 MQTT-6.0.0-1: MQTT travels in binary
		 * frames; any other data frame closes the connection. */
		if (s->c)
			net_conn_fail(s->c, NET_CLOSED_PROTOCOL, EPROTO);
		lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, NULL, 0);
		s->lws_closing = true;
		return -1;
	}
	struct net_conn *c = s->c;
	if (!c || net_conn_closing(c) || len == 0)
		return 0; /* detached or closing: discard */
	size_t n = s->ovf_len ? 0 : conn_room(c);
	if (n > len)
		n = len;
	if (n && net_conn_feed(c, in, n) < 0) {
		net_conn_fail(c, NET_CLOSED_ERROR, ENOMEM);
		return 0;
	}
	if (n < len) {
		/* No room (the owner has not consumed): keep the rest and stop
		 * lws reading until the conn asks for more. Bounded by the
		 * input limit; beyond it the peer is flooding us. */
		size_t rest = len - n;
		uint8_t *nb = s->ovf_len + rest <= c->in_limit ? realloc(s->ovf, s->ovf_len + rest) : NULL;
		if (!nb) {
			net_conn_fail(c, NET_CLOSED_ERROR, ENOBUFS);
			return 0;
		}
		memcpy(nb + s->ovf_len, in + n, rest);
		s->ovf = nb;
		s->ovf_len += rest;
		if (!net_link_linked(&s->pend))
			net_list_add_tail(&s->ws->pend, &s->pend);
		sess_rx_apply(s);
	}
	if (n)
		net_conn_deliver(c);
	return 0;
}

static int cb_writeable(struct ws_sess *s, struct lws *wsi)
{
	if (!s)
		return 0;
	if (s->out_len > s->out_off) {
		size_t n = s->out_len - s->out_off;
		if (n > WS_FRAME_MAX)
			n = WS_FRAME_MAX;
		/* Successive frames reuse the bytes before them as LWS_PRE
		 * headroom: those were sent already (lws copies what the kernel
		 * does not take). */
		int w = lws_write(wsi, s->out + LWS_PRE + s->out_off, n, LWS_WRITE_BINARY);
		if (w < (int)n) {
			if (s->c)
				net_conn_fail(s->c, NET_CLOSED_ERROR, EIO);
			s->lws_closing = true;
			return -1;
		}
		s->out_off += n;
		if (s->out_off < s->out_len) {
			lws_callback_on_writable(wsi);
			return 0;
		}
		sess_out_free(s);
	}
	if (s->c) {
		if (s->c->out_bytes)
			net_conn_flush(s->c); /* hands us the next frame (ws_writev) */
		return 0;
	}
	if (s->close_req) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		s->lws_closing = true;
		return -1; /* lws sends the close frame and finishes the handshake */
	}
	return 0;
}

static void cb_wsi_destroy(struct ws_sess *s)
{
	if (!s || s->gone)
		return;
	struct net_ws *ws = s->ws;
	s->gone = true;
	s->wsi = NULL;
	if (s->registered) {
		net_fd_del(ws->lw.loop, s->fd); /* lws has closed it already */
		s->registered = false;
	}
	sess_account(s, false);
	net_list_del(&s->touch);
	if (!s->c) {
		sess_free(s);
		return;
	}
	s->c->fd = -1;
	net_conn_fail(s->c, NET_CLOSED_EOF, 0); /* no-op if already closing */
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct ws_sess *s = wsi ? lws_get_opaque_user_data(wsi) : NULL;
	if (s && !s->gone) {
		if (!s->wsi)
			s->wsi = wsi;
		sess_touch(s);
	}
	switch (reason) {
	case LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION:
		/* lws: 0 accepts. Keep OpenSSL's verdict (len = preverify_ok);
		 * the default would accept any certificate. */
		return len ? 0 : 1;
	case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
		return net_lws_tls_extra(wsi, user); /* lws leaves these SSL_CTX settings to us */
	case LWS_CALLBACK_ESTABLISHED:
		return cb_established(s);
	case LWS_CALLBACK_RECEIVE:
		return cb_receive(s, wsi, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return cb_writeable(s, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (s)
			s->lws_closing = true;
		return 0; /* lws echoes the close */
	case LWS_CALLBACK_CLOSED:
		if (s) {
			s->lws_closing = true;
			if (s->c)
				net_conn_fail(s->c, NET_CLOSED_EOF, 0);
		}
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		cb_wsi_destroy(s);
		return 0;
	case LWS_CALLBACK_FILTER_HTTP_CONNECTION: /* a plain request: lws answers it by POLLOUT */
	case LWS_CALLBACK_HTTP_FILE_COMPLETION:
		if (s)
			s->http_busy = reason == LWS_CALLBACK_FILTER_HTTP_CONNECTION;
		/* fall through */
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* protocols[0] also serves the HTTP phase and is chosen when the client
 * offers no subprotocol (lenient; v5 MQTT-6.0.0-3 binds the client). */
static const struct lws_protocols ws_protocols[] = {
	{"mqtt", ws_callback, 0, WS_RX_BUFFER, 0, NULL, 0},
	{"mqttv3.1", ws_callback, 0, WS_RX_BUFFER, 0, NULL, 0}, /* compat: mosquitto accepts it */
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- loop callbacks ---------------------------------------------------------------------- */

static void ws_fd_cb(struct net_loop *loop, int fd, unsigned ev, void *user)
{
	struct ws_sess *s = user;
	struct net_ws *ws = s->ws;
	bool writing = (ev & NET_WRITE) && (s->mask & NET_WRITE);
	long long mark = writing && s->http_busy ? sent_mark(fd) : -1; /* see below */
	bool offered_out = net_lws_service_fd(&ws->lw, fd, s->mask, ev);
	if (mark >= 0 && net_lws_fd_is(loop, fd, ws_fd_cb, s)) {
		/* Static files go out one chunk per POLLOUT, asked for inside
		 * lws where we cannot see it: keep POLLOUT while a request is
		 * being answered and lws keeps writing; a POLLOUT that wrote
		 * nothing means it is done (no spinning on a writable socket). */
		if (sent_mark(fd) <= mark)
			s->http_busy = false;
		sess_touch(s);
	}
	/* lws may have decided to write by itself while reading (a pong, the
	 * close reply): offer POLLOUT once; a no-op when it has nothing. */
	if (!offered_out && net_lws_fd_is(loop, fd, ws_fd_cb, s) && s->established && !(s->mask & NET_WRITE))
		net_lws_offer_write(&ws->lw, fd);
	net_lws_after(&ws->lw);
}

/* lw.on_timer: overflow input the conns have room for now. */
static void ws_on_timer(struct net_lws *lw)
{
	struct net_ws *ws = net_container_of(lw, struct net_ws, lw);
	for (struct net_link *k = ws->pend.next, *nx; k != &ws->pend; k = nx) {
		nx = k->next; /* feeding unlinks k only */
		sess_feed_overflow(net_container_of(k, struct ws_sess, pend));
	}
}

/* ---- transport ------------------------------------------------------------------------- */

/* Copy the conn's output into our frame buffer. One frame waits at a time
 * (the conn keeps the rest: its out_pending stays meaningful for the
 * owner's back-pressure), except once the owner is gone (lingering close):
 * then everything is taken, to be drained after the conn is freed. */
static ssize_t ws_writev(struct net_conn *c, const struct iovec *iov, int iovcnt)
{
	struct ws_sess *s = c->tp_state;
	if (!s || s->gone || !s->wsi || s->lws_closing)
		return -EPIPE;
	bool all = (c->flags & NET_CF_CLOSED_CB) != 0;
	if (s->out_len > s->out_off && !all)
		return -EAGAIN;
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	size_t take = all || total < WS_FRAME_MAX ? total : WS_FRAME_MAX;
	if (s->out_off) { /* compact what is left before appending */
		memmove(s->out + LWS_PRE, s->out + LWS_PRE + s->out_off, s->out_len - s->out_off);
		s->out_len -= s->out_off;
		s->out_off = 0;
	}
	uint8_t *nb = realloc(s->out, LWS_PRE + s->out_len + take);
	if (!nb)
		return -ENOMEM;
	s->out = nb;
	size_t left = take;
	for (int i = 0; i < iovcnt && left; i++) {
		size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
		memcpy(s->out + LWS_PRE + s->out_len, iov[i].iov_base, k);
		s->out_len += k;
		left -= k;
	}
	lws_callback_on_writable(s->wsi);
	sess_touch(s);
	net_lws_after(&s->ws->lw);
	return (ssize_t)take;
}

static void ws_update(struct net_conn *c, bool want_read, bool want_write)
{
	struct ws_sess *s = c->tp_state;
	if (!s || s->gone || !s->established || !(c->flags & NET_CF_READY))
		return; /* the HTTP / TLS phase is lws's business */
	s->c_paused = !want_read;
	if (want_read && s->ovf_len) {
		if (!net_link_linked(&s->pend))
			net_list_add_tail(&s->ws->pend, &s->pend);
		net_lws_timer_set(&s->ws->lw, NET_LWS_TIMER_KICK); /* feed it from the timer callback, not from inside the owner's */
	}
	sess_rx_apply(s);
	sess_touch(s);
	net_lws_after(&s->ws->lw);
}

/* The conn is being freed (after on_close): detach. Abort or unfinished
 * upgrade: lws drops the wsi now (RST for abort). Orderly: lws writes what
 * we still hold, sends a close frame and waits for the peer's, all bounded
 * by WS_CLOSE_SECS and lws's own timeouts (serviced by the timer). */
static void ws_close(struct net_conn *c, bool abort_)
{
	struct ws_sess *s = c->tp_state;
	c->tp_state = NULL;
	if (!s)
		return;
	struct net_ws *ws = s->ws;
	s->c = NULL;
	net_list_del(&s->pend);
	free(s->ovf);
	s->ovf = NULL;
	s->ovf_len = 0;
	if (s->gone) {
		sess_free(s);
		return;
	}
	if (!s->wsi) {
		/* adopted but lws never called back: nothing to close through lws */
		net_lws_after(&ws->lw);
		return;
	}
	if (!s->lws_closing && (abort_ || !s->established)) {
		if (abort_) {
			struct linger lg = {.l_onoff = 1, .l_linger = 0};
			setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		}
		lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC); /* frees s */
		net_lws_after(&ws->lw);
		return;
	}
	sess_rx_apply(s);
	if (!s->lws_closing) {
		s->close_req = true;
		lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, WS_CLOSE_SECS);
		lws_callback_on_writable(s->wsi);
	}
	sess_touch(s);
	net_lws_after(&ws->lw);
}

static const struct net_transport ws_transport = {
	.name = "websockets",
	.proto_reason = NET_CLOSED_PROTOCOL,
	.writev = ws_writev,
	.update = ws_update,
	.close = ws_close,
};

/* ---- listener ------------------------------------------------------------------------------ */

int net_ws_attach(struct net_listener *l, struct net_conn *c)
{
	struct net_ws *ws = l->ws;
	struct ws_sess *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->ws = ws;
	s->c = c;
	s->fd = c->fd;
	net_list_init(&s->touch);
	net_list_init(&s->pend);
	int r = net_fd_add(ws->lw.loop, s->fd, NET_READ, ws_fd_cb, s);
	if (r < 0) {
		free(s);
		return r;
	}
	s->registered = true;
	s->mask = NET_READ;
	net_list_add_tail(&ws->all, &s->all);
	c->tp = &ws_transport;
	c->tp_state = s;
	c->flags = (c->flags | NET_CF_TP_OWNS_IO) & ~NET_CF_READY;

	struct lws *wsi = net_lws_adopt(&ws->lw, s->fd, s);
	if (!wsi) {
		/* lws closed the fd. Undo so that destroying c touches nothing. */
		c->tp = &net_tcp_transport;
		c->tp_state = NULL;
		c->flags &= ~NET_CF_TP_OWNS_IO;
		c->fd = -1;
		sess_free(s);
		net_lws_after(&ws->lw);
		return -EIO;
	}
	if (!s->gone)
		s->wsi = wsi;
	net_lws_after(&ws->lw);
	return 0;
}

int net_ws_listener_init(struct net_listener *l, const struct net_listen_opts *o, char *err, size_t errlen)
{
	struct net_ws *ws = calloc(1, sizeof *ws);
	if (!ws) {
		set_err(err, errlen, "out of memory", NULL);
		return -1;
	}
	net_list_init(&ws->pend);
	net_list_init(&ws->all);
	const struct net_tls_opts *t = l->tls ? net_tls_opts_of(l->tls) : NULL;
	if (t && !t->certfile) {
		set_err(err, errlen, "WebSockets over TLS needs certfile and keyfile (no PSK with websockets)", NULL);
		goto fail;
	}
	if (o->ws_http_dir && o->ws_http_dir[0]) {
		ws->http_dir = strdup(o->ws_http_dir);
		if (!ws->http_dir) {
			set_err(err, errlen, "out of memory", NULL);
			goto fail;
		}
		ws->mount.mountpoint = "/";
		ws->mount.mountpoint_len = 1;
		ws->mount.origin = ws->http_dir;
		ws->mount.def = "index.html";
		ws->mount.origin_protocol = LWSMPRO_FILE;
	}
	const struct net_lws_conf lc = {
		.what = "WebSockets",
		.protocols = ws_protocols,
		.vhost_name = "vigil",
		.mounts = ws->http_dir ? &ws->mount : NULL,
		.max_http_header_data = (unsigned short)o->ws_headers_size, /* 0: lws's default */
		.pt_serv_buf_size = WS_SERV_BUF,
		.timeout_secs = WS_LWS_TIMEOUT_SECS,
		.tick_ms = WS_TICK_MS,
		.tls = t,
	};
	ws->lw.sync = ws_sync;
	ws->lw.on_timer = ws_on_timer;
	if (net_lws_init(&ws->lw, l->loop, &lc, o, err, errlen) < 0)
		goto fail;
	l->ws = ws;
	return 0;
fail:
	free(ws->http_dir);
	free(ws);
	return -1;
}

void net_ws_listener_free(struct net_listener *l)
{
	struct net_ws *ws = l->ws;
	l->ws = NULL;
	if (!ws)
		return;
	/* Sessions left are detached ones still closing: lws drops them and
	 * WSI_DESTROY frees them. */
	net_lws_fini(&ws->lw);
	while (!net_list_empty(&ws->all)) /* defensive: lws did not say WSI_DESTROY */
		sess_free(net_container_of(ws->all.next, struct ws_sess, all));
	free(ws->http_dir);
	free(ws);
}
