/*
 * tests/unit/test_net_util.h — the harness of test_net.c (included by it;
 * split for the 800-line limit): a test server (struct srv) with
 * configurable on_data behaviour, and nonblocking loopback clients that
 * pump the loop while they wait, every wait bounded.
 */
/* ---- helpers ------------------------------------------------------------------------ */

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define PUMP_UNTIL(loop, cond, ms)                                                                           \
	do {                                                                                                 \
		uint64_t end_ = mono_ms() + (ms);                                                            \
		while (!(cond) && mono_ms() < end_)                                                          \
			net_loop_run_once((loop), 5);                                                        \
	} while (0)

enum srv_mode {
	M_ECHO = 0,       /* write back everything, consume it */
	M_HOLD,           /* record sizes, consume nothing */
	M_SINK,           /* consume and count, write nothing */
	M_CLOSE_FLUSH,    /* on first data: write `bigwrite` bytes, close FLUSH */
	M_CLOSE_ABORT,    /* on first data: close ABORT */
	M_CLOSE_TWICE,    /* on first data: close FLUSH twice, then ABORT */
	M_ECHO_RESERVE,   /* echo through reserve/commit */
	M_FRAMES,         /* consume whole 1000-byte "frames" only, check order */
};

struct srv {
	struct net_loop *loop;
	struct net_listener *l;
	struct net_conn *c;
	enum srv_mode mode;
	int accepts, closes, datas;
	int ready_at_accept;
	enum net_close_reason why;
	int err;
	size_t got, last_len, limit, bigwrite;
	int sndbuf;
	int close_at_accept; /* 1: ABORT before setting callbacks, 2: FLUSH after */
	int bad_frames;
	char log[512];
	char cn[128], subject[256], psk_id[64];
};

static void logf_(struct srv *s, const char *ev)
{
	size_t n = strlen(s->log);
	snprintf(s->log + n, sizeof s->log - n, "%s;", ev);
}

static void pattern(uint8_t *p, size_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((off + i) * 7 + ((off + i) >> 13));
}

static void on_data(struct net_conn *c, void *user)
{
	struct srv *s = user;
	size_t len;
	const uint8_t *in = net_conn_input(c, &len);
	s->datas++;
	s->last_len = len;
	char ev[32];
	snprintf(ev, sizeof ev, "D%zu", len);
	if (s->mode != M_ECHO && s->mode != M_ECHO_RESERVE && s->mode != M_SINK)
		logf_(s, ev);
	const char *cn = net_conn_cert_cn(c), *sub = net_conn_cert_subject(c), *id = net_conn_psk_identity(c);
	if (cn)
		snprintf(s->cn, sizeof s->cn, "%s", cn);
	if (sub)
		snprintf(s->subject, sizeof s->subject, "%s", sub);
	if (id)
		snprintf(s->psk_id, sizeof s->psk_id, "%s", id);
	switch (s->mode) {
	case M_ECHO:
		ck_assert_int_eq(net_conn_write(c, in, len), 0);
		net_conn_consume(c, len);
		s->got += len;
		break;
	case M_ECHO_RESERVE: {
		uint8_t *p = net_conn_reserve(c, len + 10);
		ck_assert_ptr_nonnull(p);
		memcpy(p, in, len);
		net_conn_commit(c, len);
		net_conn_consume(c, len);
		s->got += len;
		break;
	}
	case M_HOLD:
		break;
	case M_FRAMES: {
		size_t n = len / 1000 * 1000;
		for (size_t i = 0; i < n; i++)
			if (in[i] != (uint8_t)((s->got + i) * 7 + ((s->got + i) >> 13)))
				s->bad_frames++;
		net_conn_consume(c, n);
		s->got += n;
		break;
	}
	case M_SINK:
		s->got += len;
		net_conn_consume(c, len);
		break;
	case M_CLOSE_FLUSH: {
		net_conn_consume(c, len);
		uint8_t *buf = malloc(s->bigwrite ? s->bigwrite : 1);
		ck_assert_ptr_nonnull(buf);
		pattern(buf, 0, s->bigwrite);
		ck_assert_int_eq(net_conn_write(c, buf, s->bigwrite), 0);
		free(buf);
		net_conn_close(c, NET_CLOSE_FLUSH);
		ck_assert(net_conn_closing(c));
		ck_assert_int_eq(net_conn_write(c, "x", 1), -EPIPE);
		break;
	}
	case M_CLOSE_ABORT:
		net_conn_consume(c, len);
		net_conn_write(c, "never sent", 10);
		net_conn_close(c, NET_CLOSE_ABORT);
		break;
	case M_CLOSE_TWICE:
		net_conn_consume(c, len);
		net_conn_close(c, NET_CLOSE_FLUSH);
		net_conn_close(c, NET_CLOSE_FLUSH);
		net_conn_close(c, NET_CLOSE_ABORT);
		break;
	}
}

static void on_close(struct net_conn *c, enum net_close_reason why, int err, void *user)
{
	struct srv *s = user;
	s->closes++;
	s->why = why;
	s->err = err;
	char ev[32];
	snprintf(ev, sizeof ev, "C%d", (int)why);
	logf_(s, ev);
	if (s->c == c)
		s->c = NULL;
}

static void on_accept(struct net_listener *l, struct net_conn *c, void *user)
{
	struct srv *s = user;
	static const struct net_conn_cbs cbs = { on_data, on_close };
	ck_assert_ptr_eq(net_listener_user(l), s);
	ck_assert_ptr_eq(net_conn_listener(c), l);
	s->accepts++;
	s->c = c;
	s->ready_at_accept = net_conn_ready(c);
	if (s->close_at_accept == 1) {
		net_conn_close(c, NET_CLOSE_ABORT);
		return;
	}
	net_conn_set_cbs(c, &cbs, s);
	if (s->close_at_accept == 2) {
		net_conn_write(c, "bye", 3);
		net_conn_close(c, NET_CLOSE_FLUSH);
		return;
	}
	ck_assert_ptr_eq(net_conn_user(c), s);
	if (s->limit)
		net_conn_set_input_limit(c, s->limit);
	if (s->sndbuf)
		setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &s->sndbuf, sizeof s->sndbuf);
	ck_assert_int_eq(net_conn_set_nodelay(c, true), 0);
	ck_assert_int_eq(net_conn_set_user_timeout(c, 5000), 0);
	ck_assert_int_eq(net_conn_set_keepalive(c, 30, 5, 3), 0);
}

static void srv_init(struct srv *s)
{
	memset(s, 0, sizeof *s);
	s->loop = net_loop_new();
	ck_assert_ptr_nonnull(s->loop);
}

static struct net_listener *srv_listen(struct srv *s, const char *addr, int family, struct net_tls *tls)
{
	struct net_listen_opts o = { .bind_address = addr, .port = 0, .family = family, .tls = tls };
	char err[256] = "";
	s->l = net_listen(s->loop, &o, on_accept, s, err, sizeof err);
	return s->l;
}

static void srv_done(struct srv *s)
{
	net_loop_free(s->loop);
	s->loop = NULL;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* rcvbuf > 0: set before connect (shrinking it later can stall TCP). */
static int cli_connect_buf(int family, const char *ip, int port, int rcvbuf)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, ip, &a->sin_addr);
		len = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, ip, &a->sin6_addr);
		len = sizeof *a;
	}
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&ss, len), 0);
	set_nonblock(fd);
	return fd;
}

static int cli_connect(int family, const char *ip, int port)
{
	return cli_connect_buf(family, ip, port, 0);
}

static void cli_send_all(struct srv *s, int fd, const void *p, size_t n)
{
	size_t off = 0;
	uint64_t end = mono_ms() + 5000;
	while (off < n && mono_ms() < end) {
		ssize_t w = send(fd, (const uint8_t *)p + off, n - off, MSG_NOSIGNAL);
		if (w > 0)
			off += (size_t)w;
		else
			net_loop_run_once(s->loop, 2);
	}
	ck_assert_uint_eq(off, n);
}

/* Read until `want` bytes, EOF or error, pumping the loop. Returns bytes
 * read; *eof = 1 on EOF, *err = errno on error. */
static size_t cli_recv(struct srv *s, int fd, uint8_t *buf, size_t want, int *eof, int *err, int ms)
{
	size_t off = 0;
	*eof = 0;
	*err = 0;
	uint64_t end = mono_ms() + (uint64_t)ms;
	while (off < want && mono_ms() < end) {
		ssize_t r = recv(fd, buf + off, want - off, 0);
		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		if (r == 0) {
			*eof = 1;
			break;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			*err = errno;
			break;
		}
		net_loop_run_once(s->loop, 2);
	}
	return off;
}
