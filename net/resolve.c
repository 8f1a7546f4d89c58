/*
 * net/resolve.c — outbound connections to a host name without blocking the
 * loop: getaddrinfo(3) runs on a short-lived thread of its own, and the
 * answer meets the loop through an eventfd (registered with net_fd_add).
 *
 * net_connect_from (connect.c) calls net_resolve_connect for a host or a
 * bind address that is not numeric. The conn exists at once, with its real
 * TCP socket (so the owner can set TCP options on it as on any conn): an
 * AF_INET6 socket that also reaches IPv4 (IPV6_V6ONLY off, IPv4 answers
 * as ::ffff:a.b.c.d), or AF_INET where IPv6 is absent or asked away. The
 * socket stays out of epoll until the answer is there; then the first
 * answer whose connect(2) does not fail at once is used, and the conn
 * continues as connect.c's "tcp-connect" transport (TLS included). A
 * failed resolution reaches the owner as on_close(NET_CLOSED_ERROR,
 * NET_EAI_BASE + the EAI code): net_strerror names it.
 *
 * Deliberately not here: a resolver of our own (libc's getaddrinfo follows
 * nsswitch.conf, /etc/hosts, resolv.conf, as every other program on the
 * host), caching (the libc/nscd's), cancelling a running getaddrinfo (not
 * possible: a conn closed meanwhile just drops its interest; the thread
 * finishes, frees the job and exits).
 * Invariant: a job is freed by whichever of the thread and the conn lets go
 * of it last (refs, atomic); the thread writes only to its own dup of the
 * eventfd, never to an fd the loop may have closed and reused.
 */
#include "net_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

struct rs_job {
	int refs;        /* atomic: the thread's and the conn's */
	int done;        /* atomic: res/gai_err/bind_* are valid (release/acquire) */
	int thread_fd;   /* the thread's dup of the eventfd */
	int family;      /* of the socket: AF_INET or AF_INET6 */
	int port;
	int gai_err;     /* 0, or the EAI code of the failed lookup */
	bool bind_failed;
	struct addrinfo *res;
	struct sockaddr_storage local; /* the resolved bind address */
	socklen_t local_len;
	char *bind_name; /* NULL: no bind address */
	char host[];
};

struct rs_state {
	struct rs_job *job;
	struct net_loop *loop;
	struct net_conn *conn;
	struct net_tls *tls; /* handed to connect.c once TCP starts */
	int efd;             /* the loop's end of the eventfd */
	char host[];         /* for the TLS certificate check */
};

static void job_release(struct rs_job *j)
{
	if (__atomic_sub_fetch(&j->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (j->res)
		freeaddrinfo(j->res);
	free(j->bind_name);
	free(j);
}

static void *rs_thread(void *arg)
{
	struct rs_job *j = arg;
	struct addrinfo hints, *res = NULL;
	char portstr[16];
	if (j->bind_name) {
		memset(&hints, 0, sizeof hints);
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE;
		int r = getaddrinfo(j->bind_name, "0", &hints, &res);
		if (r || !res) {
			j->gai_err = r ? r : EAI_NONAME;
			j->bind_failed = true;
		} else {
			memcpy(&j->local, res->ai_addr, res->ai_addrlen);
			j->local_len = res->ai_addrlen;
		}
		if (res)
			freeaddrinfo(res);
		res = NULL;
	}
	if (!j->gai_err) {
		memset(&hints, 0, sizeof hints);
		hints.ai_family = j->family == AF_INET ? AF_INET : AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
		snprintf(portstr, sizeof portstr, "%d", j->port);
		int r = getaddrinfo(j->host, portstr, &hints, &res);
		if (r)
			j->gai_err = r;
		else
			j->res = res;
	}
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	uint64_t one = 1;
	ssize_t w = write(j->thread_fd, &one, sizeof one);
	(void)w; /* eventfd: cannot fail short of a full counter, which also wakes the loop */
	close(j->thread_fd);
	job_release(j);
	return NULL;
}

/* Forget the resolution side (eventfd, job); the conn itself stays. */
static void rs_detach(struct rs_state *x)
{
	if (x->efd >= 0) {
		net_fd_del(x->loop, x->efd);
		close(x->efd);
		x->efd = -1;
	}
	if (x->job)
		job_release(x->job);
	x->job = NULL;
}

/* An answer as a sockaddr for a socket of family fam (IPv4 mapped into
 * IPv6 for a dual-stack socket); false if it cannot be reached from it. */
static bool fit(const struct addrinfo *ai, int fam, struct sockaddr_storage *ss, socklen_t *len)
{
	if (ai->ai_family == fam) {
		memcpy(ss, ai->ai_addr, ai->ai_addrlen);
		*len = ai->ai_addrlen;
		return true;
	}
	if (fam != AF_INET6 || ai->ai_family != AF_INET)
		return false;
	const struct sockaddr_in *v4 = (const struct sockaddr_in *)ai->ai_addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	memset(v6, 0, sizeof *v6);
	v6->sin6_family = AF_INET6;
	v6->sin6_port = v4->sin_port;
	v6->sin6_addr.s6_addr[10] = 0xff;
	v6->sin6_addr.s6_addr[11] = 0xff;
	memcpy(&v6->sin6_addr.s6_addr[12], &v4->sin_addr, 4);
	*len = sizeof *v6;
	return true;
}

static int rs_start_tcp(struct rs_state *x)
{
	struct net_conn *c = x->conn;
	struct rs_job *j = x->job;
	if (j->gai_err)
		return -(NET_EAI_BASE + (j->gai_err < 0 ? -j->gai_err : j->gai_err));
	if (j->local_len) {
		struct sockaddr_storage ls;
		socklen_t ll;
		struct addrinfo lai = {.ai_family = j->local.ss_family, .ai_addr = (struct sockaddr *)&j->local,
				       .ai_addrlen = j->local_len};
		if (!fit(&lai, j->family, &ls, &ll))
			return -EAFNOSUPPORT;
		if (bind(c->fd, (struct sockaddr *)&ls, ll) < 0)
			return -errno;
	}
	int last = EHOSTUNREACH;
	bool v4_bound = j->local_len && j->local.ss_family == AF_INET;
	for (const struct addrinfo *ai = j->res; ai; ai = ai->ai_next) {
		struct sockaddr_storage ss;
		socklen_t len;
		if (v4_bound && ai->ai_family != AF_INET)
			continue; /* bound to an IPv4 address: IPv4 peers only */
		if (j->local_len && j->local.ss_family == AF_INET6 && ai->ai_family != AF_INET6)
			continue;
		if (!fit(ai, j->family, &ss, &len))
			continue;
		if (connect(c->fd, (struct sockaddr *)&ss, len) == 0 || errno == EINPROGRESS)
			return 0;
		last = errno;
		/* a socket whose connect failed cannot be reused portably; Linux
		 * allows a new attempt after an immediate failure */
	}
	return -last;
}

/* The answer is in: connect, and hand the conn to connect.c's transport. */
static void rs_on_answer(struct net_loop *loop, int fd, unsigned events, void *user)
{
	struct rs_state *x = user;
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof v);
	(void)r;
	if (!__atomic_load_n(&x->job->done, __ATOMIC_ACQUIRE))
		return; /* spurious */
	struct net_conn *c = x->conn;
	int e = rs_start_tcp(x);
	void *tls_state = NULL;
	if (e == 0 && x->tls && net_connect_tls_state(x->tls, x->host, &tls_state) < 0)
		e = -ENOMEM;
	rs_detach(x);
	if (e < 0) {
		net_conn_fail(c, NET_CLOSED_ERROR, -e);
		return;
	}
	free(x);
	c->tp = &net_tcp_connect_transport;
	c->tp_state = tls_state;
	c->tp_want = NET_WRITE;
	net_conn_update_events(c);
}

/* Waiting for the answer: not in epoll, nothing to do on an event. */
static int rs_handshake(struct net_conn *c)
{
	c->tp_want = 0;
	return 0;
}

static ssize_t rs_read(struct net_conn *c, void *buf, size_t len)
{
	return -EAGAIN;
}

static ssize_t rs_writev(struct net_conn *c, const struct iovec *iov, int iovcnt)
{
	return -EAGAIN;
}

static void rs_close(struct net_conn *c, bool abort_)
{
	struct rs_state *x = c->tp_state;
	c->tp_state = NULL;
	if (!x)
		return;
	rs_detach(x);
	free(x);
}

static const struct net_transport rs_transport = {
	.name = "tcp-resolve",
	.proto_reason = NET_CLOSED_ERROR,
	.short_read_drains = true,
	.handshake = rs_handshake,
	.read = rs_read,
	.writev = rs_writev,
	.close = rs_close,
};

/* A TCP socket for the answers: dual-stack IPv6, else IPv4. */
static int rs_socket(int want_family, int *family)
{
	if (want_family != AF_INET) {
		int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			int off = 0;
			if (want_family == AF_INET6 ||
			    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0) {
				*family = AF_INET6;
				return fd;
			}
			close(fd);
		}
		if (want_family == AF_INET6)
			return -errno;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	*family = AF_INET;
	return fd;
}

struct net_conn *net_resolve_connect(struct net_loop *loop, const char *host, int port, int family,
				     struct net_tls *tls, const char *bind_name, char *err, size_t errlen)
{
	int fam = 0, efd = -1, tfd = -1;
	struct rs_job *j = NULL;
	struct rs_state *x = NULL;
	struct net_conn *c = NULL;
	const char *why = "out of memory";
	int sfd = rs_socket(family, &fam);
	if (sfd < 0) {
		why = strerror(-sfd);
		goto fail;
	}
	j = calloc(1, sizeof(*j) + strlen(host) + 1);
	x = calloc(1, sizeof(*x) + strlen(host) + 1);
	if (!j || !x || (bind_name && !(j->bind_name = strdup(bind_name))))
		goto fail;
	strcpy(j->host, host);
	strcpy(x->host, host);
	j->port = port;
	j->family = fam;
	j->refs = 2;
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	tfd = efd >= 0 ? fcntl(efd, F_DUPFD_CLOEXEC, 0) : -1;
	if (tfd < 0) {
		why = strerror(errno);
		goto fail;
	}
	j->thread_fd = tfd;
	char peer[300];
	snprintf(peer, sizeof peer, "%s:%d", host, port);
	if (!(c = net_conn_new(loop, sfd, NULL, &rs_transport, peer)))
		goto fail;
	sfd = -1; /* the conn's now */
	x->job = j;
	x->loop = loop;
	x->conn = c;
	x->tls = tls;
	x->efd = efd;
	if (net_fd_add(loop, efd, NET_READ, rs_on_answer, x) < 0) {
		why = "cannot watch the resolver's eventfd";
		goto fail;
	}
	pthread_attr_t attr;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int r = pthread_create(&t, &attr, rs_thread, j);
	pthread_attr_destroy(&attr);
	if (r) {
		why = "cannot start a resolver thread";
		net_fd_del(loop, efd);
		goto fail;
	}
	c->tp_state = x;
	return c;
fail:
	if (err && errlen)
		snprintf(err, errlen, "%s:%d: %s", host, port, why);
	if (c) {
		c->tp_state = NULL;
		net_conn_destroy(c); /* closes the socket */
	}
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	if (efd >= 0)
		close(efd);
	if (j)
		free(j->bind_name);
	free(j);
	free(x);
	return NULL;
}

const char *net_strerror(int err)
{
	if (err >= NET_EAI_BASE)
		return gai_strerror(-(err - NET_EAI_BASE));
	return strerror(err);
}
