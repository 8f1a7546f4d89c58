/*
 * net/connect.c — outbound TCP connections (IPv4 / IPv6), nonblocking.
 *
 * net_connect() resolves the host, opens a nonblocking socket and starts
 * connect(2); the result is an ordinary struct net_conn whose transport is
 * plain TCP with one extra step, a "handshake" that completes when the
 * socket becomes writable and SO_ERROR is 0. From then on the conn is read,
 * written, flushed and closed exactly like an accepted one; a refused or
 * timed-out connect reaches the owner as on_close (NET_CLOSED_ERROR or
 * RESET, err = the errno). Output queued before the connect completes is
 * flushed when it does.
 *
 * Name resolution: numeric addresses are parsed directly (AI_NUMERICHOST,
 * never blocks). A host name (or a bind address that is a name) goes to
 * resolve.c: getaddrinfo(3) on a thread of its own, the answer through an
 * eventfd, so a stalled DNS server never pauses the loop (keepalive
 * deadlines of every other client stay exact meanwhile).
 *
 * net_connect_from binds the socket to a local address first (mosquitto's
 * bridge_bind_address): only remote addresses of that family are tried.
 *
 * Of several resolved addresses the first whose connect(2) does not fail at
 * once is used; the owner's retry policy (e.g. the bridge's address list)
 * handles the rest. Knows nothing of MQTT.
 */
#include "net_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct cx_tls {
	struct net_tls *tls;
	char host[];
};

static ssize_t cx_read(struct net_conn *c, void *buf, size_t len)
{
	return net_tcp_transport.read(c, buf, len);
}

static ssize_t cx_writev(struct net_conn *c, const struct iovec *iov, int iovcnt)
{
	return net_tcp_transport.writev(c, iov, iovcnt);
}

/* The connect completes: writable with SO_ERROR 0. */
static int cx_handshake(struct net_conn *c)
{
	int e = 0;
	socklen_t l = sizeof e;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
		return -errno;
	if (e == EINPROGRESS || e == EALREADY) {
		c->tp_want = NET_WRITE;
		return 0;
	}
	if (e)
		return -e;
	struct sockaddr_storage ss;
	l = sizeof ss;
	if (getpeername(c->fd, (struct sockaddr *)&ss, &l) < 0) {
		if (errno == ENOTCONN) { /* spurious wake-up */
			c->tp_want = NET_WRITE;
			return 0;
		}
		return -errno;
	}
	struct cx_tls *x = c->tp_state;
	if (!x)
		return 1;
	/* TCP is up: the conn becomes a TLS client and its handshake starts. */
	c->tp_state = NULL;
	int r = net_tls_attach_client(x->tls, c, x->host);
	free(x);
	if (r < 0)
		return r;
	return c->tp->handshake(c);
}

static void cx_close(struct net_conn *c, bool abort_)
{
	free(c->tp_state); /* a struct cx_tls while the TCP connect was pending */
	c->tp_state = NULL;
}

const struct net_transport net_tcp_connect_transport = {
	.name = "tcp-connect",
	.proto_reason = NET_CLOSED_ERROR,
	.short_read_drains = true,
	.handshake = cx_handshake,
	.read = cx_read,
	.writev = cx_writev,
	.close = cx_close,
};

static void cx_err(char *err, size_t errlen, const char *host, int port, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "%s:%d: %s", host, port, why);
}

int net_connect_tls_state(struct net_tls *tls, const char *host, void **state)
{
	struct cx_tls *x = malloc(sizeof(*x) + strlen(host) + 1);
	if (!x)
		return -1;
	x->tls = tls;
	strcpy(x->host, host);
	*state = x;
	return 0;
}

static bool numeric(const char *host)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, "0", &hints, &res))
		return false;
	freeaddrinfo(res);
	return true;
}

/* The local address to bind to (port 0, numeric): 0, or -1 with err filled. */
static int resolve_bind(const char *bind_address, int family, struct sockaddr_storage *ss, socklen_t *len,
			char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	int r = getaddrinfo(bind_address, "0", &hints, &res);
	if (r || !res) {
		cx_err(err, errlen, bind_address, 0, r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		if (res)
			freeaddrinfo(res);
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

struct net_conn *net_connect(struct net_loop *loop, const char *host, int port, int family, struct net_tls *tls,
			     char *err, size_t errlen)
{
	return net_connect_from(loop, host, port, family, tls, NULL, err, errlen);
}

struct net_conn *net_connect_from(struct net_loop *loop, const char *host, int port, int family, struct net_tls *tls,
				  const char *bind_address, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char portstr[16];
	struct sockaddr_storage local;
	socklen_t local_len = 0;
	if (!numeric(host) || (bind_address && bind_address[0] && !numeric(bind_address)))
		return net_resolve_connect(loop, host, port, family, tls,
					   bind_address && bind_address[0] ? bind_address : NULL, err, errlen);
	if (bind_address && bind_address[0]) {
		if (resolve_bind(bind_address, family, &local, &local_len, err, errlen))
			return NULL;
		family = local.ss_family; /* connect from that family only */
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(portstr, sizeof portstr, "%d", port);
	int r = getaddrinfo(host, portstr, &hints, &res);
	if (r) {
		cx_err(err, errlen, host, port, r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return NULL;
	}
	int last = ECONNREFUSED;
	struct net_conn *c = NULL;
	for (struct addrinfo *ai = res; ai && !c; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (local_len && bind(fd, (struct sockaddr *)&local, local_len) < 0) {
			last = errno;
			close(fd);
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			last = errno;
			close(fd);
			continue;
		}
		char ip[INET6_ADDRSTRLEN] = "?", peer[INET6_ADDRSTRLEN + 16];
		const void *a = ai->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
							   : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
		inet_ntop(ai->ai_family, a, ip, sizeof ip);
		snprintf(peer, sizeof peer, "%s:%d", ip, port);
		/* The host name rides in tp_state until the TCP connect is done. */
		c = net_conn_new(loop, fd, NULL, &net_tcp_connect_transport, peer);
		if (c && tls && net_connect_tls_state(tls, host, &c->tp_state) < 0) {
			net_conn_destroy(c); /* closes fd */
			c = NULL;
			last = ENOMEM;
			continue;
		}
		if (!c) {
			last = ENOMEM;
			close(fd);
			continue;
		}
		c->tp_want = NET_WRITE;
		net_conn_update_events(c);
		if (c->flags & NET_CF_CLOSING) { /* epoll refused the fd */
			last = c->err ? c->err : EIO;
			net_conn_destroy(c);
			c = NULL;
		}
	}
	freeaddrinfo(res);
	if (!c)
		cx_err(err, errlen, host, port, strerror(last));
	return c;
}
