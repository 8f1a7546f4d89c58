/*
 * net/listen.c — listening sockets: TCP over IPv4 and IPv6, Unix-domain
 * sockets; accepting connections.
 *
 * A listener is one or more sockets (AF_UNSPEC: one per address that
 * getaddrinfo returns, e.g. 0.0.0.0 and ::, or 127.0.0.1 and ::1 for
 * "localhost"), IPV6_V6ONLY on v6 so both families share the port. With
 * port 0, the first socket's kernel-chosen port is reused for the others.
 * Accepting runs until EAGAIN (bounded per event). On EMFILE / ENFILE /
 * ENOBUFS / ENOMEM the listener stops accepting for NET_ACCEPT_PAUSE_MS
 * (its sockets leave epoll), so a full fd table never spins the loop; the
 * pending connections wait in the kernel backlog meanwhile.
 *
 * Not here: WebSockets (ws.c, later), TLS details (tls.c).
 * Invariant: a listener struct lives while it is open or any conn names it
 * (refs), and is freed only after a dispatch pass.
 */
#include "net_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define NET_ACCEPT_BUDGET 1024

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, int e)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, a ? a : "", e ? strerror(e) : "");
}

static void sockaddr_peer(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
		port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
		port = ntohs(a->sin6_port);
	}
	/* compat: mosquitto logs "New connection from <ip>:<port>", IPv6
	 * included, without brackets (e.g. "::1:54321"). */
	snprintf(out, outlen, "%s:%u", ip, port);
}

static void listener_set_paused(struct net_listener *l, bool paused)
{
	for (int i = 0; i < l->nsocks; i++) {
		struct net_lsock *s = &l->socks[i];
		uint32_t cur = paused ? EPOLLIN : 0, want = paused ? 0 : EPOLLIN;
		net_loop_ctl(l->loop, s->fd, &s->h, cur, want);
	}
}

void net_listener_event(struct net_lsock *s, uint32_t events)
{
	struct net_listener *l = s->l;
	struct net_loop *loop = l->loop;
	for (int i = 0; i < NET_ACCEPT_BUDGET && !l->closed && !l->paused_until; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(s->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				l->paused_until = loop->now + NET_ACCEPT_PAUSE_MS;
				listener_set_paused(l, true);
			}
			break; /* EAGAIN or a persistent error */
		}
		char peer[80];
		if (s->family == AF_UNIX)
			snprintf(peer, sizeof peer, "%s", l->unix_path);
		else
			sockaddr_peer(&ss, peer, sizeof peer);
		if (l->kind == NET_HTTP) { /* http.c: lws adopts the fd, no net_conn */
			net_http_attach(l, fd, peer);
			continue;
		}
		struct net_conn *c = net_conn_new(loop, fd, l, &net_tcp_transport, peer);
		if (!c) {
			close(fd);
			continue;
		}
		if (s->family == AF_UNIX)
			c->flags |= NET_CF_UNIX;
		if (l->kind == NET_WEBSOCKETS ? net_ws_attach(l, c) < 0 /* ws.c: lws adopts the fd */
					      : l->tls && net_tls_attach(l->tls, c) < 0) {
			net_conn_destroy(c);
			continue;
		}
		net_conn_update_events(c);
		if (l->cb)
			l->cb(l, c, l->user);
	}
}

uint64_t net_listener_tick(struct net_loop *loop)
{
	uint64_t next = UINT64_MAX;
	for (struct net_link *k = loop->listeners.next; k != &loop->listeners; k = k->next) {
		struct net_listener *l = net_container_of(k, struct net_listener, link);
		if (!l->paused_until)
			continue;
		if (loop->now >= l->paused_until) {
			l->paused_until = 0;
			listener_set_paused(l, false);
		} else if (l->paused_until < next) {
			next = l->paused_until;
		}
	}
	return next;
}

static int listen_unix(struct net_listener *l, const struct net_listen_opts *o, int backlog, char *err,
		       size_t errlen)
{
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(o->unix_path) >= sizeof sa.sun_path) {
		set_err(err, errlen, "unix socket path too long: %s%s", o->unix_path, 0);
		return -1;
	}
	strcpy(sa.sun_path, o->unix_path);
	l->unix_path = strdup(o->unix_path);
	if (!l->unix_path) {
		set_err(err, errlen, "%sout of memory%s", NULL, 0);
		return -1;
	}
	struct stat st;
	if (lstat(o->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(o->unix_path); /* stale socket from an earlier run */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, backlog) < 0) {
		int e = errno;
		set_err(err, errlen, "cannot listen on unix socket %s: %s", o->unix_path, e);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	l->socks[0].fd = fd;
	l->socks[0].family = AF_UNIX;
	l->nsocks = 1;
	return 0;
}

static int listen_inet(struct net_listener *l, const struct net_listen_opts *o, int backlog, char *err,
		       size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = o->family == AF_INET || o->family == AF_INET6 ? o->family : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	const char *host = o->bind_address && o->bind_address[0] ? o->bind_address : NULL;
	char portstr[16];
	snprintf(portstr, sizeof portstr, "%d", o->port);
	int gr = getaddrinfo(host, portstr, &hints, &res);
	if (gr != 0) {
		if (err && errlen)
			snprintf(err, errlen, "cannot resolve %s: %s", host ? host : "*", gai_strerror(gr));
		return -1;
	}
	int port = o->port, lasterr = 0, hard = 0;
	struct sockaddr_storage bound[NET_LISTEN_MAX_SOCKS];
	for (struct addrinfo *ai = res; ai && l->nsocks < NET_LISTEN_MAX_SOCKS; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof ss);
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		bool dup = false; /* e.g. /etc/hosts listing an address twice */
		for (int i = 0; i < l->nsocks; i++)
			dup |= memcmp(&bound[i], &ss, sizeof ss) == 0;
		if (dup)
			continue;
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			lasterr = errno; /* EAFNOSUPPORT: no IPv6 here, soft */
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		if (o->bind_interface && o->bind_interface[0] &&
		    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, o->bind_interface, (socklen_t)strlen(o->bind_interface)) < 0) {
			/* bind_interface: only connections arriving on that device */
			lasterr = errno;
			hard = 1;
			close(fd);
			break;
		}
		if (bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
			lasterr = errno;
			if (lasterr != EADDRNOTAVAIL && lasterr != EAFNOSUPPORT)
				hard = 1;
			close(fd);
			if (hard)
				break;
			continue;
		}
		if (port == 0) {
			struct sockaddr_storage got;
			socklen_t gl = sizeof got;
			if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0)
				port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
								      : ((struct sockaddr_in6 *)&got)->sin6_port);
		}
		bound[l->nsocks] = ss;
		l->socks[l->nsocks].fd = fd;
		l->socks[l->nsocks].family = ai->ai_family;
		l->nsocks++;
	}
	freeaddrinfo(res);
	if (hard || l->nsocks == 0) {
		if (err && errlen)
			snprintf(err, errlen, "cannot listen on %s port %d: %s", host ? host : "*", o->port,
				 strerror(lasterr ? lasterr : EADDRNOTAVAIL));
		return -1;
	}
	l->port = port;
	return 0;
}

struct net_listener *net_listen(struct net_loop *loop, const struct net_listen_opts *o, net_accept_cb cb,
				void *user, char *err, size_t errlen)
{
	struct net_listener *l = calloc(1, sizeof *l);
	if (!l) {
		set_err(err, errlen, "%sout of memory%s", NULL, 0);
		return NULL;
	}
	l->loop = loop;
	l->cb = cb;
	l->user = user;
	l->kind = o->kind;
	l->tls = o->tls;
	l->refs = 1;
	int backlog = o->backlog > 0 ? o->backlog : SOMAXCONN;
	int r = o->unix_path ? listen_unix(l, o, backlog, err, errlen) : listen_inet(l, o, backlog, err, errlen);
	for (int i = 0; r == 0 && i < l->nsocks; i++) {
		struct net_lsock *s = &l->socks[i];
		s->h.kind = NET_H_LISTEN;
		s->l = l;
		r = net_loop_ctl(loop, s->fd, &s->h, 0, EPOLLIN);
		if (r < 0)
			set_err(err, errlen, "%sepoll: %s", NULL, -r);
	}
	if (r == 0 && o->kind == NET_WEBSOCKETS) /* ws.c: lws context for this listener */
		r = net_ws_listener_init(l, o, err, errlen);
	if (r == 0 && o->kind == NET_HTTP) /* http.c: lws context for this listener */
		r = net_http_listener_init(l, o, err, errlen);
	if (r != 0) {
		for (int i = 0; i < l->nsocks; i++)
			close(l->socks[i].fd); /* close also drops it from epoll */
		free(l->unix_path);
		free(l);
		return NULL;
	}
	net_list_add_tail(&loop->listeners, &l->link);
	return l;
}

void net_listener_close(struct net_listener *l)
{
	if (!l || l->closed)
		return;
	l->closed = 1;
	for (int i = 0; i < l->nsocks; i++) {
		struct net_lsock *s = &l->socks[i];
		if (!l->paused_until)
			net_loop_ctl(l->loop, s->fd, &s->h, EPOLLIN, 0);
		close(s->fd);
		s->h.dead = 1;
	}
	if (l->unix_path)
		unlink(l->unix_path);
	net_list_del(&l->link);
	net_listener_unref(l);
}

void net_listener_unref(struct net_listener *l)
{
	if (--l->refs != 0)
		return;
	if (l->ws)
		net_ws_listener_free(l); /* ws.c: destroy the lws context */
	if (l->http)
		net_http_listener_free(l); /* http.c */
	net_list_add_tail(&l->loop->dead_lsock, &l->link);
}

void *net_listener_user(const struct net_listener *l)
{
	return l->user;
}

int net_listener_port(const struct net_listener *l)
{
	return l->port;
}
