/*
 * net/http.c — HTTP listeners (plain or TLS) served by libwebsockets 4.1 on our epoll loop, for the
 * broker's read-only API. Knows nothing of MQTT: it hands each request head to the owner's callback
 * (net_http_cb) and sends the owner's answer, whole or streamed.
 *
 * The lws integration is lws.c's, shared with ws.c (Debian's lws is built without LWS_WITH_EXTERNAL_POLL):
 * listen.c accepts as for TCP (bind, IPv4+IPv6, EMFILE pause, peer string), net_http_attach adopts the fd
 * into this listener's lws context; we register every adopted fd with net_fd_add and serve it with
 * net_lws_service_fd, computing its interest after each entry into lws (READ always; WRITE while an
 * answer is being written, lws holds a partial write or OpenSSL wants to write). lws's own timers
 * (handshake, keep-alive idle, request-head timeouts) run from lws.c's timerfd, which ticks every
 * HTTP_TICK_MS only while a connection is open (lw.busy counts them) and is kicked when lws reports
 * pending work: no connection, no cost.
 *
 * lws parses the request (method, URI, headers; oversized heads are refused by lws, 431 or a close),
 * decodes and sanitises the path and splits the query. An answer is written one slice per
 * SERVER_WRITEABLE (at most HTTP_SLICE bytes), pulled from the owner's fill callback, so a long answer
 * never holds the loop: Content-Length when the size is known, chunked (lws frames the chunks)
 * otherwise. Request bodies are not accepted: a request that carries one is answered and closed.
 * Each listener holds at most max_conns connections (more are closed at accept: an fd spent on HTTP is
 * one MQTT cannot have), each with a fixed 128 KiB send buffer (HTTP_SNDBUF).
 *
 * HTTP/1.x only: no h2 in ALPN, and an Upgrade request (h2c, WebSocket) is closed (each request is one
 * wsi and one session here; h2 streams would be child wsis).
 * Not here: routing, JSON, authentication policy (the owner's).
 * Invariant: a session lives while its wsi lives; the owner's stream state is released exactly once
 * (answer finished, or the connection gone), after which net never calls the owner for it again.
 */
#include "lws.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#define HTTP_SLICE 16384          /* body bytes written per writeable callback */
#define HTTP_HEAD_MAX 2048        /* response head */
#define HTTP_TICK_MS 1000         /* lws timer service while connections are open */
#define HTTP_TIMEOUT_SECS 10      /* lws's handshake / request-head timeouts */
#define HTTP_KEEPALIVE_SECS 15    /* idle keep-alive connection */
/* Kernel send buffer of an HTTP connection (Linux doubles it: 256 KiB in all). Fixed rather than
 * autotuned (up to tcp_wmem's 4 MiB): a streamed listing then reflects the broker when the reader
 * takes it, not seconds earlier, and a slow scraper pins at most this much kernel memory; 256 KiB
 * per round trip is still 5 MB/s at 50 ms. */
#define HTTP_SNDBUF (128 * 1024)
#define HTTP_MAX_CONNS_DEFAULT 256 /* open HTTP connections per listener (max_connections overrides) */

struct net_http {
	struct net_lws lw; /* context, timer; lw.touched: requests to re-sync; lw.busy: open connections */
	net_http_cb cb;
	void *user;
	unsigned max_conns;
	struct net_http_req *adopting; /* being adopted: lws may destroy it before adopt returns */
	struct net_link all;
};

struct net_http_req {
	struct net_http *h;
	struct lws *wsi;
	int fd;
	unsigned mask;
	bool registered, gone;
	/* the request */
	int method; /* LWSHUMETH_*, -1 unknown */
	char path[512];
	/* the answer */
	bool answered, head_sent, done, close_after;
	int status;
	char *ctype, *extra;
	long long length; /* -1: chunked */
	net_http_fill_cb fill;
	void *state;
	void (*release)(void *state);
	uint8_t *body; /* whole-body answers (copied) */
	size_t body_len, body_off;
	struct net_link touch, all;
	char peer[];
};

static const char *const http_methods[] = {"GET", "POST", "OPTIONS", "PUT", "PATCH", "DELETE", "CONNECT", "HEAD"};

/* ---- session bookkeeping ------------------------------------------------------------------ */

static void answer_reset(struct net_http_req *r)
{
	if (r->release && r->state)
		r->release(r->state);
	r->release = NULL;
	r->state = NULL;
	r->fill = NULL;
	free(r->ctype);
	free(r->extra);
	free(r->body);
	r->ctype = r->extra = NULL;
	r->body = NULL;
	r->body_len = r->body_off = 0;
	r->answered = r->head_sent = r->done = false;
}

static void sess_free(struct net_http_req *r)
{
	if (r->registered)
		net_fd_del(r->h->lw.loop, r->fd);
	answer_reset(r);
	net_list_del(&r->touch);
	net_list_del(&r->all);
	r->h->lw.busy--;
	free(r);
}

static void sess_touch(struct net_http_req *r)
{
	if (!net_link_linked(&r->touch))
		net_list_add_tail(&r->h->lw.touched, &r->touch);
}

static void sess_sync(struct net_http_req *r)
{
	if (!r->registered || r->gone || !r->wsi)
		return;
	SSL *ssl = lws_get_ssl(r->wsi);
	unsigned want = NET_READ;
	if ((r->answered && !r->done) || lws_partial_buffered(r->wsi) || (ssl && SSL_want_write(ssl)))
		want |= NET_WRITE;
	if (want != r->mask && net_fd_mod(r->h->lw.loop, r->fd, want) == 0)
		r->mask = want;
}

/* lw.sync: a touched request's turn. */
static void http_sync(struct net_link *touch)
{
	sess_sync(net_container_of(touch, struct net_http_req, touch));
}

/* ---- the owner's side ------------------------------------------------------------------- */

const char *net_http_method(const struct net_http_req *r)
{
	return r->method >= 0 && r->method < (int)(sizeof http_methods / sizeof *http_methods)
		       ? http_methods[r->method]
		       : "";
}

const char *net_http_path(const struct net_http_req *r)
{
	return r->path;
}

const char *net_http_peer(const struct net_http_req *r)
{
	return r->peer;
}

int net_http_query(const struct net_http_req *r, const char *name, char *buf, size_t cap)
{
	char key[64];
	if (!r->wsi || cap == 0 || snprintf(key, sizeof key, "%s=", name) >= (int)sizeof key)
		return -1;
	const char *v = lws_get_urlarg_by_name(r->wsi, key, buf, (int)cap); /* buf holds "name=value" */
	if (!v)
		return -1;
	memmove(buf, v, strlen(v) + 1);
	return 0;
}

int net_http_basic_auth(const struct net_http_req *r, char *user, size_t ucap, char *pass, size_t pcap)
{
	char hdr[1024], dec[768];
	if (!r->wsi || lws_hdr_total_length(r->wsi, WSI_TOKEN_HTTP_AUTHORIZATION) >= (int)sizeof hdr ||
	    lws_hdr_copy(r->wsi, hdr, sizeof hdr, WSI_TOKEN_HTTP_AUTHORIZATION) <= 0)
		return -1;
	const char *p = hdr;
	if (strncasecmp(p, "basic", 5) != 0 || (p[5] != ' ' && p[5] != '\t'))
		return -1;
	p += 6;
	while (*p == ' ' || *p == '\t')
		p++;
	int n = lws_b64_decode_string(p, dec, sizeof dec - 1);
	if (n <= 0)
		return -1;
	dec[n] = '\0';
	if (memchr(dec, '\0', (size_t)n)) /* an embedded NUL: not a credential we could check as given */
		return -1;
	char *colon = strchr(dec, ':');
	if (!colon || (size_t)(colon - dec) >= ucap || strlen(colon + 1) >= pcap)
		return -1;
	memcpy(user, dec, (size_t)(colon - dec));
	user[colon - dec] = '\0';
	strcpy(pass, colon + 1);
	explicit_bzero(dec, sizeof dec);
	explicit_bzero(hdr, sizeof hdr);
	return 0;
}

static int answer_begin(struct net_http_req *r, int status, const char *ctype, const char *extra)
{
	if (r->answered)
		return -EALREADY;
	r->ctype = strdup(ctype ? ctype : "text/plain");
	r->extra = extra ? strdup(extra) : NULL;
	if (!r->ctype || (extra && !r->extra)) {
		answer_reset(r);
		return -ENOMEM;
	}
	r->status = status;
	r->answered = true;
	if (status >= 400 || (r->method != LWSHUMETH_GET && r->method != LWSHUMETH_HEAD))
		r->close_after = true; /* a body may follow a refused request: do not parse it as the next */
	if (r->wsi)
		lws_callback_on_writable(r->wsi);
	sess_touch(r);
	return 0;
}

int net_http_respond(struct net_http_req *r, int status, const char *ctype, const char *extra, const void *body,
		     size_t len)
{
	if (r->answered)
		return -EALREADY;
	r->body = malloc(len ? len : 1);
	if (!r->body)
		return -ENOMEM;
	memcpy(r->body, body, len);
	r->body_len = len;
	r->length = (long long)len;
	return answer_begin(r, status, ctype, extra);
}

int net_http_stream(struct net_http_req *r, int status, const char *ctype, const char *extra, net_http_fill_cb fill,
		    void *state, void (*release)(void *state))
{
	if (r->answered)
		return -EALREADY;
	r->length = -1;
	int e = answer_begin(r, status, ctype, extra);
	if (e < 0)
		return e; /* the caller still owns state */
	r->fill = fill;
	r->state = state;
	r->release = release;
	return 0;
}

/* ---- lws callbacks ---------------------------------------------------------------------- */

static int write_head(struct net_http_req *r, struct lws *wsi)
{
	uint8_t buf[LWS_PRE + HTTP_HEAD_MAX], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
	if (lws_add_http_common_headers(wsi, (unsigned)r->status, r->ctype,
					r->length < 0 ? LWS_ILLEGAL_HTTP_CONTENT_LEN : (lws_filepos_t)r->length, &p, end))
		return -1;
	if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL, (const unsigned char *)"no-store", 8,
					 &p, end))
		return -1;
	if (r->close_after &&
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p, end))
		return -1;
	/* extra: "name: value\r\n" lines from the owner */
	for (const char *s = r->extra; s && *s;) {
		const char *eol = strstr(s, "\r\n"), *colon = strchr(s, ':');
		if (!eol || !colon || colon > eol)
			break;
		char name[64];
		size_t nl = (size_t)(colon - s) + 1;
		if (nl >= sizeof name)
			return -1;
		memcpy(name, s, nl);
		name[nl] = '\0';
		const char *v = colon + 1;
		while (*v == ' ')
			v++;
		if (lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)v,
						(int)(eol - v), &p, end))
			return -1;
		s = eol + 2;
	}
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	r->head_sent = true;
	return 0;
}

static int cb_writeable(struct net_http_req *r, struct lws *wsi)
{
	if (!r || !r->answered || r->done)
		return 0;
	if (!r->head_sent && write_head(r, wsi) < 0)
		return -1;
	static uint8_t buf[LWS_PRE + HTTP_SLICE + 32]; /* one thread; lws copies what the kernel refuses */
	uint8_t *p = buf + LWS_PRE;
	size_t n = 0;
	bool fin;
	if (r->method == LWSHUMETH_HEAD) {
		fin = true; /* RFC 9110 9.3.2: the head of the GET answer, no content */
	} else if (r->fill) {
		fin = false;
		n = r->fill(r->state, p, HTTP_SLICE, &fin);
		if (n > HTTP_SLICE)
			return -1;
	} else {
		n = r->body_len - r->body_off;
		if (n > HTTP_SLICE)
			n = HTTP_SLICE;
		memcpy(p, r->body + r->body_off, n);
		r->body_off += n;
		fin = r->body_off == r->body_len;
	}
	if (r->method != LWSHUMETH_HEAD && (n || fin) &&
	    lws_write(wsi, p, n, fin ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
		return -1;
	if (!fin) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	r->done = true;
	bool close_after = r->close_after;
	answer_reset(r); /* releases the owner's state */
	r->done = true;
	if (close_after || lws_http_transaction_completed(wsi))
		return -1;
	return 0;
}

static int cb_http(struct net_http_req *r, struct lws *wsi, const char *uri)
{
	if (!r)
		return -1;
	answer_reset(r);
	r->close_after = false;
	char *u = NULL;
	int ul = 0;
	r->method = lws_http_get_uri_and_method(wsi, &u, &ul);
	snprintf(r->path, sizeof r->path, "%s", uri ? uri : "");
	/* lws takes a Content-Length it cannot parse as none: refuse it here
	 * (RFC 9110 8.6: digits only). A body on a GET is not read: close after. */
	char cl[32];
	int cn = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
	if (cn > 0) {
		bool ok = cn < (int)sizeof cl && lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
			  strspn(cl, "0123456789") == strlen(cl);
		if (!ok)
			return net_http_respond(r, 400, "text/plain", NULL, "bad Content-Length\n", 19) < 0 ? -1 : 0;
		if (strcmp(cl, "0") != 0)
			r->close_after = true;
	}
	r->h->cb(r, r->h->user);
	if (!r->answered && net_http_respond(r, 500, "text/plain", NULL, "internal error\n", 15) < 0)
		return -1;
	return 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct net_http_req *r = wsi ? lws_get_opaque_user_data(wsi) : NULL;
	if (r && !r->gone) {
		if (!r->wsi)
			r->wsi = wsi;
		sess_touch(r);
	}
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return cb_http(r, wsi, in);
	case LWS_CALLBACK_HTTP_BODY:
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return 0; /* discarded: the answer says Connection: close */
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return cb_writeable(r, wsi);
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:     /* h2c or websocket: HTTP/1.1 only here */
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return -1;
	case LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION:
		return len ? 0 : 1; /* keep OpenSSL's verdict */
	case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
		return net_lws_tls_extra(wsi, user); /* what lws has no option for (lws.c) */
	case LWS_CALLBACK_WSI_DESTROY:
		if (r && !r->gone) {
			r->gone = true;
			r->wsi = NULL;
			if (r->registered) {
				net_fd_del(r->h->lw.loop, r->fd); /* lws has closed it */
				r->registered = false;
			}
			if (r->h->adopting != r)
				sess_free(r);
		}
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols http_protocols[] = {
	{"http", http_callback, 0, 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- loop callbacks ---------------------------------------------------------------------- */

static void http_fd_cb(struct net_loop *loop, int fd, unsigned ev, void *user)
{
	struct net_http_req *r = user;
	struct net_http *h = r->h;
	bool offered_out = net_lws_service_fd(&h->lw, fd, r->mask, ev);
	/* lws may have written on its own while reading (an error answer it
	 * generates): offer POLLOUT once so that it can finish. */
	if (!offered_out && net_lws_fd_is(loop, fd, http_fd_cb, r) && !(r->mask & NET_WRITE))
		net_lws_offer_write(&h->lw, fd);
	net_lws_after(&h->lw);
}

/* ---- listener ------------------------------------------------------------------------------ */

int net_http_attach(struct net_listener *l, int fd, const char *peer)
{
	struct net_http *h = l->http;
	if (h->lw.busy >= h->max_conns) { /* an fd spent on HTTP is not available to MQTT: bounded */
		close(fd);
		return -EMFILE;
	}
	size_t pl = strlen(peer) + 1;
	struct net_http_req *r = calloc(1, sizeof *r + pl);
	if (!r) {
		close(fd);
		return -ENOMEM;
	}
	memcpy(r->peer, peer, pl);
	int sb = HTTP_SNDBUF;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb); /* best effort */
	r->h = h;
	r->fd = fd;
	r->method = -1;
	net_list_init(&r->touch);
	int e = net_fd_add(h->lw.loop, fd, NET_READ, http_fd_cb, r);
	if (e < 0) {
		free(r);
		close(fd);
		return e;
	}
	r->registered = true;
	r->mask = NET_READ;
	net_list_add_tail(&h->all, &r->all);
	h->lw.busy++;
	h->adopting = r;
	struct lws *wsi = net_lws_adopt(&h->lw, fd, r);
	h->adopting = NULL;
	if (!wsi || r->gone) { /* lws closed the fd */
		if (r->registered)
			net_fd_del(h->lw.loop, fd);
		r->registered = false;
		sess_free(r);
		net_lws_after(&h->lw);
		return -EIO;
	}
	r->wsi = wsi;
	net_lws_after(&h->lw);
	return 0;
}

int net_http_listener_init(struct net_listener *l, const struct net_listen_opts *o, char *err, size_t errlen)
{
	struct net_http *h = calloc(1, sizeof *h);
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->cb = o->http_cb;
	h->user = o->http_user;
	h->max_conns = o->http_max_conns > 0 ? (unsigned)o->http_max_conns : HTTP_MAX_CONNS_DEFAULT;
	net_list_init(&h->all);
	const struct net_tls_opts *t = l->tls ? net_tls_opts_of(l->tls) : NULL;
	if (!h->cb) {
		snprintf(err, errlen, "HTTP listener without a request handler");
		goto fail;
	}
	if (t && !t->certfile) {
		snprintf(err, errlen, "HTTPS needs certfile and keyfile (no PSK with http_api)");
		goto fail;
	}
	const struct net_lws_conf lc = {
		.what = "HTTP",
		.protocols = http_protocols,
		.vhost_name = "vigil-http",
		.server_string = "vigil",
		.alpn = "http/1.1", /* no h2: every request is one wsi here, h2 streams would be child wsis */
		.max_http_header_data = (unsigned short)(o->ws_headers_size ? o->ws_headers_size : 4096),
		.timeout_secs = HTTP_TIMEOUT_SECS,
		.keepalive_timeout = HTTP_KEEPALIVE_SECS,
		.tick_ms = HTTP_TICK_MS,
		.tls = t,
	};
	h->lw.sync = http_sync;
	if (net_lws_init(&h->lw, l->loop, &lc, o, err, errlen) < 0)
		goto fail;
	l->http = h;
	return 0;
fail:
	free(h);
	return -1;
}

size_t net_http_connections(const struct net_listener *l)
{
	return l && l->http ? l->http->lw.busy : 0;
}

void net_http_listener_free(struct net_listener *l)
{
	struct net_http *h = l->http;
	l->http = NULL;
	if (!h)
		return;
	net_lws_fini(&h->lw); /* WSI_DESTROY frees every session and releases its stream */
	while (!net_list_empty(&h->all))
		sess_free(net_container_of(h->all.next, struct net_http_req, all));
	free(h);
}
