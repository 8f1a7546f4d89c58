/*
 * tests/unit/test_ws_util.h — helpers for test_ws.c: a net loop with one
 * WebSocket listener whose conns echo or collect, and a raw nonblocking
 * WebSocket client (hand-made upgrade, masked frames built byte by byte,
 * server frames parsed). Every wait is bounded; the loop is pumped while
 * the client waits.
 */
#ifndef VIGIL_TEST_WS_UTIL_H
#define VIGIL_TEST_WS_UTIL_H

/* ---- server side --------------------------------------------------------------------- */

enum mode { M_ECHO, M_COLLECT };

struct srv {
	struct net_loop *loop;
	struct net_listener *l;
	int port;
	enum mode mode;
	struct net_conn *c; /* the last accepted conn, NULL once closed */
	int accepts, closes;
	enum net_close_reason why;
	bool ready_at_first_data;
	char peer[80];
	uint8_t *got; /* M_COLLECT */
	size_t ngot, capgot;
	int datas;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_data(struct net_conn *c, void *user)
{
	struct srv *s = user;
	size_t n;
	const uint8_t *p = net_conn_input(c, &n);
	if (!s->datas++)
		s->ready_at_first_data = net_conn_ready(c);
	if (s->mode == M_ECHO) {
		ck_assert_int_eq(net_conn_write(c, p, n), 0);
	} else {
		if (s->ngot + n > s->capgot) {
			s->capgot = (s->ngot + n) * 2;
			s->got = realloc(s->got, s->capgot);
			ck_assert_ptr_nonnull(s->got);
		}
		memcpy(s->got + s->ngot, p, n);
		s->ngot += n;
	}
	net_conn_consume(c, n);
}

static void on_close(struct net_conn *c, enum net_close_reason why, int err, void *user)
{
	struct srv *s = user;
	s->closes++;
	s->why = why;
	if (s->c == c)
		s->c = NULL;
}

static void on_accept(struct net_listener *l, struct net_conn *c, void *user)
{
	struct srv *s = user;
	static const struct net_conn_cbs cbs = {on_data, on_close};
	s->accepts++;
	s->c = c;
	snprintf(s->peer, sizeof s->peer, "%s", net_conn_peer(c));
	ck_assert(!net_conn_ready(c)); /* before the upgrade */
	net_conn_set_cbs(c, &cbs, s);
}

static void srv_start_opts(struct srv *s, enum mode m, struct net_tls *tls, const char *bind, const char *http_dir)
{
	memset(s, 0, sizeof *s);
	s->mode = m;
	s->loop = net_loop_new();
	ck_assert_ptr_nonnull(s->loop);
	struct net_listen_opts o = {
		.bind_address = bind, .port = 0, .kind = NET_WEBSOCKETS, .tls = tls, .ws_http_dir = http_dir};
	char err[256] = "";
	s->l = net_listen(s->loop, &o, on_accept, s, err, sizeof err);
	ck_assert_msg(s->l != NULL, "net_listen: %s", err);
	s->port = net_listener_port(s->l);
	ck_assert_int_gt(s->port, 0);
}

static void srv_start(struct srv *s, enum mode m, struct net_tls *tls)
{
	srv_start_opts(s, m, tls, "127.0.0.1", NULL);
}

static void srv_stop(struct srv *s)
{
	net_loop_free(s->loop); /* closes the listener: destroys the lws context */
	free(s->got);
}

static void pump(struct srv *s, int ms)
{
	uint64_t end = mono_ms() + (uint64_t)ms;
	do
		net_loop_run_once(s->loop, 5);
	while (mono_ms() < end);
}

/* ---- client side --------------------------------------------------------------------- */

struct cli {
	int fd;
	uint8_t buf[1 << 21];
	size_t n; /* bytes received, not yet parsed */
	bool eof;
};

static struct cli *cli_connect_af(struct srv *s, int rcvbuf, int af)
{
	struct cli *k = calloc(1, sizeof *k);
	ck_assert_ptr_nonnull(k);
	k->fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(k->fd, 0);
	if (rcvbuf) /* before connect, so the window is negotiated for it */
		setsockopt(k->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)s->port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	inet_pton(AF_INET6, "::1", &a6.sin6_addr);
	int r = af == AF_INET ? connect(k->fd, (struct sockaddr *)&a, sizeof a)
			      : connect(k->fd, (struct sockaddr *)&a6, sizeof a6);
	ck_assert_int_eq(r, 0); /* loopback: the backlog takes it */
	fcntl(k->fd, F_SETFL, O_NONBLOCK);
	return k;
}

static struct cli *cli_connect_buf(struct srv *s, int rcvbuf)
{
	return cli_connect_af(s, rcvbuf, AF_INET);
}

static struct cli *cli_connect(struct srv *s)
{
	return cli_connect_buf(s, 0);
}

static void cli_free(struct cli *k)
{
	if (k->fd >= 0)
		close(k->fd);
	free(k);
}

/* Pump the loop and read what arrives until pred(k) holds or ms pass. */
static bool cli_wait(struct srv *s, struct cli *k, bool (*pred)(struct cli *, void *), void *arg, int ms)
{
	uint64_t end = mono_ms() + (uint64_t)ms;
	for (;;) {
		if (pred(k, arg))
			return true;
		if (mono_ms() > end)
			return false;
		net_loop_run_once(s->loop, 2);
		while (!k->eof && k->n < sizeof k->buf) {
			ssize_t r = recv(k->fd, k->buf + k->n, sizeof k->buf - k->n, 0);
			if (r > 0)
				k->n += (size_t)r;
			else if (r == 0 || (errno != EAGAIN && errno != EINTR))
				k->eof = true;
			else
				break;
		}
	}
}

static void cli_send(struct srv *s, struct cli *k, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t end = mono_ms() + 5000;
	while (n > 0) {
		ssize_t w = send(k->fd, b, n, MSG_NOSIGNAL);
		if (w > 0) {
			b += w;
			n -= (size_t)w;
			continue;
		}
		ck_assert_msg(w < 0 && errno == EAGAIN, "send: %s", strerror(errno));
		ck_assert_msg(mono_ms() < end, "send stalled");
		net_loop_run_once(s->loop, 2);
	}
}

static bool have_headers(struct cli *k, void *arg)
{
	return k->eof || memmem(k->buf, k->n, "\r\n\r\n", 4) != NULL;
}

static void expected_accept(const char *key, char out[64])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char cat[128];
	unsigned char sha[SHA_DIGEST_LENGTH];
	snprintf(cat, sizeof cat, "%s%s", key, guid);
	SHA1((const unsigned char *)cat, strlen(cat), sha);
	EVP_EncodeBlock((unsigned char *)out, sha, SHA_DIGEST_LENGTH);
}

/* Send the upgrade request (proto NULL: no Sec-WebSocket-Protocol header)
 * and wait for the response head; returns it (NUL-terminated, consumed
 * from k->buf) or NULL if the connection closed without one. */
static char *upgrade(struct srv *s, struct cli *k, const char *proto, char *resp, size_t resplen)
{
	static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
	char req[512];
	int n = snprintf(req, sizeof req,
			 "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s%s%s\r\n",
			 s->port, key, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "", proto ? "\r\n" : "");
	cli_send(s, k, req, (size_t)n);
	ck_assert(cli_wait(s, k, have_headers, NULL, 3000));
	uint8_t *end = memmem(k->buf, k->n, "\r\n\r\n", 4);
	if (!end)
		return NULL;
	size_t hl = (size_t)(end + 4 - k->buf);
	ck_assert_uint_lt(hl, resplen);
	memcpy(resp, k->buf, hl);
	resp[hl] = '\0';
	memmove(k->buf, k->buf + hl, k->n - hl);
	k->n -= hl;
	if (!strncmp(resp, "HTTP/1.1 101", 12)) {
		char acc[64], line[128];
		expected_accept(key, acc);
		snprintf(line, sizeof line, "Sec-WebSocket-Accept: %s\r\n", acc);
		ck_assert_msg(strcasestr(resp, line) != NULL, "bad accept in %s", resp);
	}
	return resp;
}

static void upgrade_ok(struct srv *s, struct cli *k)
{
	char resp[2048];
	ck_assert_ptr_nonnull(upgrade(s, k, "mqtt", resp, sizeof resp));
	ck_assert_msg(!strncmp(resp, "HTTP/1.1 101", 12), "no 101: %s", resp);
	ck_assert_ptr_nonnull(strcasestr(resp, "Sec-WebSocket-Protocol: mqtt\r\n"));
}

/* A client frame, masked (RFC 6455 5.3), built byte by byte. */
static size_t frame(uint8_t *out, bool fin, int opcode, const void *payload, size_t len)
{
	static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
	size_t i = 0;
	out[i++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
	if (len < 126) {
		out[i++] = (uint8_t)(0x80 | len);
	} else if (len < 65536) {
		out[i++] = 0x80 | 126;
		out[i++] = (uint8_t)(len >> 8);
		out[i++] = (uint8_t)len;
	} else {
		out[i++] = 0x80 | 127;
		for (int b = 7; b >= 0; b--)
			out[i++] = (uint8_t)((uint64_t)len >> (8 * b));
	}
	memcpy(out + i, mask, 4);
	i += 4;
	for (size_t j = 0; j < len; j++)
		out[i + j] = ((const uint8_t *)payload)[j] ^ mask[j % 4];
	return i + len;
}

static void send_frame(struct srv *s, struct cli *k, bool fin, int opcode, const void *p, size_t len)
{
	uint8_t *b = malloc(len + 14);
	ck_assert_ptr_nonnull(b);
	size_t n = frame(b, fin, opcode, p, len);
	cli_send(s, k, b, n);
	free(b);
}

/* Parse one server frame from k->buf (server frames are unmasked). */
static bool frame_parse(struct cli *k, int *opcode, bool *fin, size_t *hdr, size_t *plen)
{
	if (k->n < 2)
		return false;
	uint8_t b1 = k->buf[1];
	ck_assert_msg(!(b1 & 0x80), "server frames must not be masked");
	size_t len = b1 & 0x7f, h = 2;
	if (len == 126) {
		if (k->n < 4)
			return false;
		len = (size_t)k->buf[2] << 8 | k->buf[3];
		h = 4;
	} else if (len == 127) {
		if (k->n < 10)
			return false;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | k->buf[2 + i];
		h = 10;
	}
	if (k->n < h + len)
		return false;
	*opcode = k->buf[0] & 0x0f;
	*fin = (k->buf[0] & 0x80) != 0;
	*hdr = h;
	*plen = len;
	return true;
}

/* Accumulates server binary payloads (any framing) into a byte stream. */
struct stream {
	uint8_t *p;
	size_t n, want;
	int close_code; /* -1 none yet */
	int pongs, frames;
};

static bool stream_pred(struct cli *k, void *arg)
{
	struct stream *st = arg;
	int op;
	bool fin;
	size_t h, len;
	while (frame_parse(k, &op, &fin, &h, &len)) {
		st->frames++;
		if (op == 2 || op == 0) {
			memcpy(st->p + st->n, k->buf + h, len);
			st->n += len;
		} else if (op == 8) {
			st->close_code = len >= 2 ? (k->buf[h] << 8 | k->buf[h + 1]) : 0;
		} else if (op == 0xA) {
			st->pongs++;
		} else {
			ck_abort_msg("unexpected opcode %d", op);
		}
		memmove(k->buf, k->buf + h + len, k->n - h - len);
		k->n -= h + len;
	}
	return (st->want && st->n >= st->want) || (!st->want && (st->close_code >= 0 || st->pongs)) || k->eof;
}

static void stream_init(struct stream *st, size_t want)
{
	memset(st, 0, sizeof *st);
	st->p = malloc(want + 65536);
	ck_assert_ptr_nonnull(st->p);
	st->want = want;
	st->close_code = -1;
}

static bool srv_got(struct cli *k, void *arg)
{
	struct srv *s = ((void **)arg)[0];
	size_t *want = ((void **)arg)[1];
	return s->ngot >= *want;
}

static void wait_collected(struct srv *s, struct cli *k, size_t want)
{
	void *arg[2] = {s, &want};
	ck_assert_msg(cli_wait(s, k, srv_got, arg, 5000), "server got %zu of %zu", s->ngot, want);
}

static bool cli_eof(struct cli *k, void *arg)
{
	stream_pred(k, arg);
	return k->eof;
}

static bool srv_closed(struct cli *k, void *arg)
{
	return ((struct srv *)arg)->closes > 0;
}


static void pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + seed + (i >> 9));
}

#endif
