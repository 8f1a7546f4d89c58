/*
 * net/lws.c — libwebsockets 4.1 on our epoll loop, the part ws.c and http.c share: one lws context
 * and vhost per listener (no listening socket of lws's own: listen.c accepts and net_lws_adopt hands
 * the fd over), the service of adopted fds from loop events, one timerfd for lws's timers, and the
 * TLS settings lws has no option for.
 *
 * Polling without LWS_WITH_EXTERNAL_POLL: Debian's lws 4.1 is built without it, so lws never tells us
 * which fds it wants polled. The owners know every fd lws serves (they adopted it): each registers its
 * fds with net_fd_add, serves their events with net_lws_service_fd, and recomputes their interest
 * after every entry into lws for the sessions lws called back about (linked on lw->touched, re-synced
 * by net_lws_after through lw->sync). Timers: lws_service(ctx, -1) never blocks; it runs lws's ripe
 * timers (its sul list: handshake, close and keep-alive timeouts), polls lws's fds with timeout 0 and
 * serves buffered rx/TLS data. It runs from the listener's timerfd, which is kicked to fire at once
 * when lws_service_adjust_timeout reports pending work and ticks every tick_ms only while the owner
 * says some session is busy: an idle listener costs nothing.
 *
 * Not here: what a session is (ws.c: an MQTT byte stream over binary frames; http.c: requests and
 * answers), the lws protocol callbacks, interest masks, accepting.
 * Invariant: the context's user pointer is the struct net_lws; init_tls is set only while
 * lws_create_vhost runs (the only time lws asks for the extra TLS settings).
 */
#include "lws.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

/* ---- the timerfd ------------------------------------------------------------------------ */

void net_lws_timer_set(struct net_lws *lw, int want)
{
	if (want == lw->timer || (lw->timer == NET_LWS_TIMER_KICK && want == NET_LWS_TIMER_TICK))
		return; /* a pending kick fires first and re-evaluates */
	struct itimerspec its;
	memset(&its, 0, sizeof its);
	struct timespec tick = {.tv_sec = lw->tick_ms / 1000, .tv_nsec = (long)(lw->tick_ms % 1000) * 1000000L};
	if (want == NET_LWS_TIMER_KICK)
		its.it_value.tv_nsec = 1;
	else if (want == NET_LWS_TIMER_TICK)
		its.it_value = tick;
	if (want != NET_LWS_TIMER_OFF)
		its.it_interval = tick;
	if (timerfd_settime(lw->tfd, 0, &its, NULL) == 0)
		lw->timer = want;
}

void net_lws_after(struct net_lws *lw)
{
	while (!net_list_empty(&lw->touched)) {
		struct net_link *k = lw->touched.next;
		net_list_del(k);
		lw->sync(k);
	}
	net_lws_timer_set(lw, !lws_service_adjust_timeout(lw->ctx, 1, 0) ? NET_LWS_TIMER_KICK
			      : lw->busy ? NET_LWS_TIMER_TICK
					 : NET_LWS_TIMER_OFF);
}

static void timer_cb(struct net_loop *loop, int fd, unsigned ev, void *user)
{
	struct net_lws *lw = user;
	uint64_t n;
	(void)loop;
	(void)ev;
	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		return;
	lw->timer = NET_LWS_TIMER_TICK; /* armed with an interval; net_lws_after re-decides */
	if (lw->on_timer)
		lw->on_timer(lw);
	lws_service(lw->ctx, -1); /* ripe timers + forced service; never blocks */
	net_lws_after(lw);
}

/* ---- adopted fds ------------------------------------------------------------------------ */

struct lws *net_lws_adopt(struct net_lws *lw, int fd, void *opaque)
{
	lws_adopt_desc_t ad;
	memset(&ad, 0, sizeof ad);
	ad.vh = lw->vh;
	ad.type = LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP | (lw->tls ? LWS_ADOPT_ALLOW_SSL : 0);
	ad.fd.sockfd = fd;
	ad.opaque = opaque;
	return lws_adopt_descriptor_vhost_via_info(&ad);
}

bool net_lws_service_fd(struct net_lws *lw, int fd, unsigned mask, unsigned ev)
{
	struct lws_pollfd p;
	p.fd = fd;
	p.events = (short)(((mask & NET_READ) ? POLLIN : 0) | ((mask & NET_WRITE) ? POLLOUT : 0));
	p.revents = 0;
	/* An event we did not ask for is EPOLLERR/HUP folded in by the loop. */
	if (ev & NET_READ)
		p.revents |= (mask & NET_READ) ? POLLIN : POLLHUP;
	if (ev & NET_WRITE)
		p.revents |= (mask & NET_WRITE) ? POLLOUT : POLLHUP;
	bool offered_out = (p.revents & POLLOUT) != 0;
	lws_service_fd(lw->ctx, &p);
	return offered_out;
}

void net_lws_offer_write(struct net_lws *lw, int fd)
{
	struct lws_pollfd p;
	p.fd = fd;
	p.events = POLLIN | POLLOUT;
	p.revents = POLLOUT;
	lws_service_fd(lw->ctx, &p);
}

bool net_lws_fd_is(const struct net_loop *loop, int fd, net_fd_cb cb, const void *user)
{
	return fd >= 0 && fd < loop->nfds && loop->fds[fd] && loop->fds[fd]->cb == cb && loop->fds[fd]->user == user;
}

/* ---- TLS ---------------------------------------------------------------------------------- */

int net_lws_tls_extra(struct lws *wsi, void *ssl_ctx)
{
	SSL_CTX *ctx = ssl_ctx;
	struct lws_context *lc = wsi ? lws_get_context(wsi) : NULL;
	struct net_lws *lw = lc ? lws_context_user(lc) : NULL;
	const struct net_tls_opts *o = lw ? lw->init_tls : NULL;
	if (!o || !ctx)
		return 0;
	/* compat: tls_version sets the minimum version, as in tls.c. */
	int v = TLS1_2_VERSION;
	if (o->tls_version && !strcmp(o->tls_version, "tlsv1.3"))
		v = TLS1_3_VERSION;
	else if (o->tls_version && !strcmp(o->tls_version, "tlsv1.1"))
		v = TLS1_1_VERSION;
	SSL_CTX_set_min_proto_version(ctx, v);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	if (o->capath && SSL_CTX_load_verify_locations(ctx, NULL, o->capath) != 1)
		return 1;
	if (o->crlfile) {
		X509_STORE *st = SSL_CTX_get_cert_store(ctx);
		X509_LOOKUP *lk = st ? X509_STORE_add_lookup(st, X509_LOOKUP_file()) : NULL;
		if (!lk || X509_load_crl_file(lk, o->crlfile, X509_FILETYPE_PEM) < 1)
			return 1;
		X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
	}
	return 0;
}

/* ---- context and vhost -------------------------------------------------------------------- */

/* lws's log level and emit function are process-wide (no user pointer): so is this sink. */
static struct {
	void (*fn)(void *user, const char *line);
	void *user;
} log_sink;

static void log_emit(int level, const char *line)
{
	(void)level;
	if (log_sink.fn)
		log_sink.fn(log_sink.user, line);
}

int net_lws_init(struct net_lws *lw, struct net_loop *loop, const struct net_lws_conf *c,
		 const struct net_listen_opts *o, char *err, size_t errlen)
{
	lw->loop = loop;
	lw->ctx = NULL;
	lw->vh = NULL;
	lw->tls = c->tls != NULL;
	lw->timer = NET_LWS_TIMER_OFF;
	lw->tick_ms = c->tick_ms ? c->tick_ms : 1000;
	lw->busy = 0;
	lw->init_tls = NULL;
	net_list_init(&lw->touched);
	lw->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (lw->tfd < 0 || net_fd_add(loop, lw->tfd, NET_READ, timer_cb, lw) < 0) {
		snprintf(err, errlen, "timerfd: %s", strerror(errno));
		if (lw->tfd >= 0)
			close(lw->tfd);
		lw->tfd = -1;
		return -1;
	}
	log_sink.fn = o->ws_log, log_sink.user = o->ws_log_user; /* websockets_log_level */
	lws_set_log_level(o->ws_log_level, o->ws_log ? log_emit : NULL);

	const struct net_tls_opts *t = c->tls;
	struct lws_context_creation_info ci;
	memset(&ci, 0, sizeof ci);
	ci.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | (t ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0);
	ci.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	ci.gid = -1;
	ci.uid = -1;
	ci.user = lw;
	ci.pt_serv_buf_size = c->pt_serv_buf_size;
	ci.max_http_header_data = c->max_http_header_data;
	ci.timeout_secs = (unsigned)c->timeout_secs;
	lw->ctx = lws_create_context(&ci);
	if (!lw->ctx) {
		snprintf(err, errlen, "cannot create the libwebsockets context");
		goto fail;
	}
	struct lws_context_creation_info vi;
	memset(&vi, 0, sizeof vi);
	vi.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	vi.protocols = c->protocols;
	vi.vhost_name = c->vhost_name;
	vi.mounts = c->mounts;
	vi.timeout_secs = (unsigned)c->timeout_secs;
	vi.keepalive_timeout = c->keepalive_timeout;
	vi.server_string = c->server_string;
	vi.alpn = c->alpn;
	if (t) {
		vi.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		if (t->require_certificate)
			vi.options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
		vi.ssl_cert_filepath = t->certfile;
		vi.ssl_private_key_filepath = t->keyfile ? t->keyfile : t->certfile;
		vi.ssl_ca_filepath = t->cafile;
		vi.ssl_cipher_list = t->ciphers;
		vi.tls1_3_plus_cipher_list = t->ciphers_tls13;
		lw->init_tls = t;
	}
	lw->vh = lws_create_vhost(lw->ctx, &vi);
	lw->init_tls = NULL;
	if (!lw->vh) {
		snprintf(err, errlen, "cannot create the %s vhost (TLS files?)%s%s", c->what, t ? ": " : "",
			 t ? t->certfile : "");
		goto fail;
	}
	return 0;
fail:
	if (lw->ctx)
		lws_context_destroy(lw->ctx);
	lw->ctx = NULL;
	net_fd_del(loop, lw->tfd);
	close(lw->tfd);
	lw->tfd = -1;
	return -1;
}

void net_lws_fini(struct net_lws *lw)
{
	if (lw->ctx)
		lws_context_destroy(lw->ctx);
	lw->ctx = NULL;
	if (lw->tfd >= 0) {
		net_fd_del(lw->loop, lw->tfd);
		close(lw->tfd);
	}
	lw->tfd = -1;
}
