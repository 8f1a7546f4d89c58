/*
 * broker/health.c — `vigil --check [-c FILE] [-p PORT] [--timeout MS]`, the
 * health check the Docker image's HEALTHCHECK runs: read the same
 * configuration the broker reads, pick a listener this process can reach,
 * and do one MQTT 3.1.1 CONNECT / CONNACK round trip with a deadline.
 *
 * Listeners are tried in this order: plain TCP, Unix socket, TLS (the
 * listener's cafile/capath verify the chain; the name is not checked, since
 * we connect to a loopback or bind address; with require_certificate the
 * listener's own certfile/keyfile are presented), then WebSockets (plain,
 * then TLS), then `protocol http_api` listeners (plain, then HTTPS), which
 * get `GET /api/v1/health` instead of an MQTT CONNECT: 200 is healthy, 401
 * (Basic auth required) proves the broker serves as a CONNACK refusal does,
 * 5xx fails, another answer lets the next listener be tried, no answer on an
 * accepted connection is a frozen broker. A PSK-only listener is skipped
 * (we have no identity). A TCP listener on all addresses is reached on
 * 127.0.0.1 (::1 for an IPv6-only one), one with bind_interface on that
 * interface's first address.
 *
 * Verdict: any CONNACK proves the broker is serving, including a refusal
 * for credentials (bad user name or password, not authorized), a rejected
 * client identifier or protocol version; the check sends no credentials
 * (compat: as issue 11 decided). CONNACK 3 "server unavailable" is a failure.
 * A listener that refuses the connection, fails TLS, closes or answers with
 * something else than a CONNACK (an HTTP listener, say) lets the next one be
 * tried; an accepted connection that gets no CONNACK before the deadline is
 * a failure at once (a frozen broker: the kernel still accepts for it).
 *
 * Deliberately not here: credentials, checking every listener, MQTT 5, or
 * any state left behind (clean session, empty client id, DISCONNECT at once).
 * Invariant: one deadline bounds everything (resolution of numeric addresses
 * only; names go through getaddrinfo and may block until the resolver gives up).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "health.h"
#include "config.h"
#include "mqtt.h"
#include "net.h"

#define CHECK_DEFAULT_TIMEOUT_MS 3000

struct chk {
	uint64_t deadline;      /* monotonic ms */
	int fd;                 /* plain TCP / Unix: the socket, else -1 */
	struct net_loop *loop;  /* TLS: a private loop running one net_conn */
	struct net_conn *conn;
	struct net_tls *tls;
	bool closed, was_ready; /* on_close ran; the handshake had completed */
	int close_why, close_err;
	bool ws;
	uint8_t in[8192];       /* transport bytes, not consumed yet */
	size_t in_len;
	uint8_t msg[4096];      /* MQTT bytes (WebSocket payloads when ws) */
	size_t msg_len;
	char where[320];
};

enum { CK_OK = 0, CK_NEXT = 1, CK_FAIL = 2 }; /* attempt outcomes */

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int remaining(const struct chk *k)
{
	uint64_t now = mono_ms();
	return now >= k->deadline ? 0 : (int)(k->deadline - now);
}

/* ---- transport: a raw socket (TCP, Unix) or a net_conn (TLS) ---------------- */

static void on_data(struct net_conn *c, void *u)
{
	struct chk *k = u;
	size_t n;
	const uint8_t *p = net_conn_input(c, &n);
	if (n > sizeof k->in - k->in_len)
		n = sizeof k->in - k->in_len;
	memcpy(k->in + k->in_len, p, n);
	k->in_len += n;
	net_conn_consume(c, n);
}

static void on_close(struct net_conn *c, enum net_close_reason why, int err, void *u)
{
	struct chk *k = u;
	k->closed = true;
	k->was_ready = net_conn_ready(c);
	k->close_why = why;
	k->close_err = err;
	k->conn = NULL;
}

/* Connect a raw socket to sa; 0, or -errno (-ETIMEDOUT at the deadline). */
static int raw_connect(struct chk *k, const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	k->fd = fd;
	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int r = poll(&p, 1, remaining(k));
	if (r <= 0)
		return r == 0 ? -ETIMEDOUT : -errno;
	int e = 0;
	socklen_t l = sizeof e;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
		return -errno;
	return -e;
}

static int tr_send(struct chk *k, const uint8_t *p, size_t len)
{
	if (k->fd < 0)
		return k->conn ? net_conn_write(k->conn, p, len) : -EPIPE;
	while (len) {
		ssize_t n = send(k->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		struct pollfd pf = {.fd = k->fd, .events = POLLOUT};
		if (poll(&pf, 1, remaining(k)) == 0)
			return -ETIMEDOUT;
	}
	return 0;
}

/* Wait for more transport bytes in k->in: > 0 new bytes, 0 end of stream,
 * -ETIMEDOUT, or -errno. */
static int tr_recv(struct chk *k)
{
	size_t before = k->in_len;
	if (before == sizeof k->in)
		return -EMSGSIZE;
	if (k->fd < 0) {
		while (k->in_len == before && !k->closed) {
			int ms = remaining(k);
			if (ms == 0)
				return -ETIMEDOUT;
			net_loop_run_once(k->loop, ms);
		}
		if (k->in_len > before)
			return (int)(k->in_len - before);
		if (k->close_why == NET_CLOSED_EOF)
			return 0;
		return k->close_err ? -k->close_err : -EPROTO;
	}
	for (;;) {
		struct pollfd pf = {.fd = k->fd, .events = POLLIN};
		int r = poll(&pf, 1, remaining(k));
		if (r == 0)
			return -ETIMEDOUT;
		ssize_t n = read(k->fd, k->in + before, sizeof k->in - before);
		if (n >= 0) {
			k->in_len += (size_t)n;
			return (int)n;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
}

static void tr_close(struct chk *k)
{
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	net_loop_free(k->loop); /* closes a conn still open */
	net_tls_free(k->tls);
	k->loop = NULL;
	k->conn = NULL;
	k->tls = NULL;
}

/* ---- WebSockets (RFC 6455 client side, just enough for one exchange) ---------- */

static void b64(const uint8_t *p, size_t n, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
		*out++ = t[v >> 18 & 63];
		*out++ = t[v >> 12 & 63];
		*out++ = i + 1 < n ? t[v >> 6 & 63] : '=';
		*out++ = i + 2 < n ? t[v & 63] : '=';
	}
	*out = 0;
}

/* Send the upgrade request and wait for "101": CK_OK, or CK_FAIL / -errno. */
static int ws_handshake(struct chk *k, const char *host, int port, char *why, size_t whylen)
{
	uint8_t nonce[16];
	uint64_t seed = mono_ms() ^ (uint64_t)getpid() << 32;
	for (size_t i = 0; i < sizeof nonce; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		nonce[i] = (uint8_t)(seed >> 56);
	}
	char key[32], req[512];
	b64(nonce, sizeof nonce, key);
	int n = snprintf(req, sizeof req,
			 "GET /mqtt HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
			 host, port, key);
	int r = tr_send(k, (const uint8_t *)req, (size_t)n);
	if (r < 0)
		return r;
	const uint8_t *end;
	while (!(end = memmem(k->in, k->in_len, "\r\n\r\n", 4)))
		if ((r = tr_recv(k)) <= 0)
			return r == 0 ? -ECONNRESET : r;
	if (k->in_len < 12 || memcmp(k->in, "HTTP/1.1 101", 12)) {
		size_t l = strcspn((const char *)k->in, "\r");
		snprintf(why, whylen, "WebSocket upgrade refused: %.*s", (int)(l < 80 ? l : 80), (const char *)k->in);
		return CK_FAIL;
	}
	size_t hdr = (size_t)(end + 4 - k->in);
	memmove(k->in, k->in + hdr, k->in_len - hdr);
	k->in_len -= hdr;
	return CK_OK;
}

/* Send MQTT bytes, in one masked binary frame when ws. */
static int mq_send(struct chk *k, const uint8_t *p, size_t len)
{
	if (!k->ws)
		return tr_send(k, p, len);
	uint8_t f[16 + 256];
	if (len > 256)
		return -EMSGSIZE;
	size_t h = 0;
	f[h++] = 0x82;
	if (len < 126) {
		f[h++] = (uint8_t)(0x80 | len);
	} else {
		f[h++] = 0x80 | 126;
		f[h++] = (uint8_t)(len >> 8);
		f[h++] = (uint8_t)len;
	}
	const uint8_t mask[4] = {0x5a, 0x3c, 0x96, 0xe1};
	memcpy(f + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < len; i++)
		f[h + i] = p[i] ^ mask[i & 3];
	return tr_send(k, f, h + len);
}

/* Move complete frames' payloads from in[] to msg[]: 0, or -ECONNRESET when
 * the server sent a close frame, -EPROTO for framing we do not accept. */
static int ws_unframe(struct chk *k)
{
	for (;;) {
		if (k->in_len < 2)
			return 0;
		uint8_t op = k->in[0] & 0x0f;
		bool masked = k->in[1] & 0x80;
		uint64_t len = k->in[1] & 0x7f;
		size_t h = 2;
		if (len == 126) {
			if (k->in_len < 4)
				return 0;
			len = (uint64_t)k->in[2] << 8 | k->in[3];
			h = 4;
		} else if (len == 127) {
			return -EPROTO; /* a CONNACK never needs that */
		}
		size_t mh = masked ? 4 : 0;
		if (h + mh + len > sizeof k->in)
			return -EPROTO;
		if (k->in_len < h + mh + len)
			return 0;
		uint8_t *pl = k->in + h + mh;
		if (masked)
			for (size_t i = 0; i < len; i++)
				pl[i] ^= k->in[h + (i & 3)];
		if (op == 0x8)
			return -ECONNRESET;
		if (op <= 0x2) {
			if (len > sizeof k->msg - k->msg_len)
				return -EPROTO;
			memcpy(k->msg + k->msg_len, pl, len);
			k->msg_len += len;
		} /* ping / pong: ignored, the exchange is over in a moment */
		size_t used = h + mh + len;
		memmove(k->in, k->in + used, k->in_len - used);
		k->in_len -= used;
	}
}

/* Wait for more MQTT bytes in msg[]: > 0, 0 end of stream, or -errno. */
static int mq_recv(struct chk *k)
{
	for (;;) {
		if (!k->ws && k->in_len) {
			size_t n = k->in_len < sizeof k->msg - k->msg_len ? k->in_len : sizeof k->msg - k->msg_len;
			memcpy(k->msg + k->msg_len, k->in, n);
			k->msg_len += n;
			memmove(k->in, k->in + n, k->in_len - n);
			k->in_len -= n;
			return (int)n;
		}
		size_t before = k->msg_len;
		if (k->ws) {
			int r = ws_unframe(k);
			if (r < 0)
				return r;
			if (k->msg_len > before)
				return (int)(k->msg_len - before);
		}
		int r = tr_recv(k);
		if (r <= 0)
			return r;
	}
}

/* ---- one attempt ---------------------------------------------------------------- */

static const char *connack_text(uint8_t rc)
{
	static const char *const t[] = {"Connection Accepted", "unacceptable protocol version",
					"identifier rejected", "server unavailable",
					"bad user name or password", "not authorized"};
	return rc < 6 ? t[rc] : "unknown return code";
}

/* An http_api listener: GET /api/v1/health on an open transport; the status
 * line decides (see the header comment). */
static int http_probe(struct chk *k, const char *host, int port, char *why, size_t whylen)
{
	char req[384];
	bool v6 = strchr(host, ':') != NULL;
	int n = snprintf(req, sizeof req,
			 "GET /api/v1/health HTTP/1.1\r\nHost: %s%s%s:%d\r\nConnection: close\r\n\r\n", v6 ? "[" : "",
			 host, v6 ? "]" : "", port);
	int r = tr_send(k, (const uint8_t *)req, (size_t)n);
	while (r >= 0 && !memmem(k->in, k->in_len, "\r\n", 2)) {
		r = tr_recv(k);
		if (r == 0) {
			snprintf(why, whylen, "closed the connection without an HTTP answer");
			return CK_NEXT;
		}
	}
	if (r == -ETIMEDOUT) {
		bool up = k->fd >= 0 || (k->conn && net_conn_ready(k->conn));
		snprintf(why, whylen, "%s within the timeout: the broker did not answer (frozen or overloaded)",
			 up ? "no HTTP answer" : "TLS handshake not complete");
		return CK_FAIL;
	}
	if (r < 0 && k->fd < 0 && !k->was_ready) {
		snprintf(why, whylen, "%s", k->close_why == NET_CLOSED_TLS ? "TLS handshake failed" : strerror(-r));
		return CK_NEXT;
	}
	if (r < 0) {
		snprintf(why, whylen, "%s before an HTTP answer", strerror(-r));
		return CK_FAIL;
	}
	const uint8_t *d = k->in + 9; /* "HTTP/1.x NNN" */
	if (k->in_len < 12 || memcmp(k->in, "HTTP/1.", 7) || k->in[8] != ' ' || d[0] < '1' || d[0] > '5' ||
	    d[1] < '0' || d[1] > '9' || d[2] < '0' || d[2] > '9') {
		snprintf(why, whylen, "not an HTTP answer to GET /api/v1/health");
		return CK_NEXT;
	}
	int status = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
	snprintf(why, whylen, "GET /api/v1/health: HTTP %d%s", status,
		 status == 401 ? " (the broker is serving; the check sends no credentials)" : "");
	return status == 200 || status == 401 ? CK_OK : status >= 500 ? CK_FAIL : CK_NEXT;
}

/* The CONNECT / CONNACK exchange on an open transport. */
static int exchange(struct chk *k, char *why, size_t whylen)
{
	uint8_t buf[64];
	struct mqtt_connect_out co = {.version = 4, .clean_start = true, .keepalive = 10,
				      .client_id = mqtt_cstr("")};
	size_t n = mqtt_connect_encode(&co, buf, sizeof buf);
	int r = n ? mq_send(k, buf, n) : -EINVAL;
	struct mqtt_frame f;
	while (r >= 0) {
		int pr = mqtt_frame_parse(k->msg, k->msg_len, 1024, &f);
		if (pr == MQTT_OK)
			break;
		if (pr != MQTT_INCOMPLETE) {
			snprintf(why, whylen, "not an MQTT answer to CONNECT");
			return CK_NEXT;
		}
		r = mq_recv(k);
		if (r == 0) {
			snprintf(why, whylen, "closed the connection without a CONNACK");
			return CK_NEXT;
		}
	}
	if (r == -ETIMEDOUT) {
		bool up = k->fd >= 0 || (k->conn && net_conn_ready(k->conn));
		snprintf(why, whylen, "%s within the timeout: the broker did not answer (frozen or overloaded)",
			 up ? "no CONNACK" : "TLS handshake not complete");
		return CK_FAIL;
	}
	if (r < 0 && k->fd < 0 && !k->was_ready) { /* TCP refused or TLS failed: try the next listener */
		if (k->close_why == NET_CLOSED_TLS)
			snprintf(why, whylen, "TLS handshake failed (server certificate not verified by the "
					      "listener's cafile/capath, or our client certificate refused)");
		else
			snprintf(why, whylen, "%s", strerror(-r));
		return CK_NEXT;
	}
	if (r < 0) {
		snprintf(why, whylen, "%s before a CONNACK", strerror(-r));
		return CK_FAIL;
	}
	struct mqtt_connack ca;
	if (f.type != MQTT_CONNACK || mqtt_connack_decode(&f, 4, &ca) != MQTT_OK) {
		snprintf(why, whylen, "answered CONNECT with %s, not a CONNACK", mqtt_type_name(f.type));
		return CK_NEXT;
	}
	if (ca.rc == 0)
		(void)mq_send(k, (const uint8_t *)"\xe0\x00", 2); /* DISCONNECT: no will, no session */
	snprintf(why, whylen, "CONNACK %u \"%s\"%s", ca.rc, connack_text(ca.rc),
		 ca.rc == 0 || ca.rc == 3 ? "" : " (the broker is serving; the check sends no credentials)");
	if (k->fd < 0 && k->conn) { /* let the DISCONNECT leave */
		net_conn_close(k->conn, NET_CLOSE_FLUSH);
		net_loop_run_once(k->loop, 0);
	}
	return ca.rc == 3 ? CK_FAIL : CK_OK;
}

/* The address to reach a TCP listener at: its bind address, loopback for
 * "all addresses", or the first address of its bind_interface. */
static void tcp_host(const struct listener_conf *l, char *host, size_t cap)
{
	const char *b = l->bind_address;
	if (b && *b && strcmp(b, "0.0.0.0") && strcmp(b, "::")) {
		snprintf(host, cap, "%s", b);
		return;
	}
	bool v6 = l->family == AF_INET6 || (b && !strcmp(b, "::"));
	snprintf(host, cap, "%s", v6 ? "::1" : "127.0.0.1");
	struct ifaddrs *ifs, *i;
	if (!l->bind_interface || getifaddrs(&ifs))
		return;
	for (i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || strcmp(i->ifa_name, l->bind_interface))
			continue;
		int fam = i->ifa_addr->sa_family;
		if ((fam == AF_INET && !v6) || (fam == AF_INET6 && v6)) {
			getnameinfo(i->ifa_addr, fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6),
				    host, (socklen_t)cap, NULL, 0, NI_NUMERICHOST);
			break;
		}
	}
	freeifaddrs(ifs);
}

static bool is_tls(const struct listener_conf *l)
{
	return l->certfile && l->keyfile;
}

static int attempt(struct chk *k, const struct listener_conf *l, char *why, size_t whylen)
{
	char host[256];
	int r;
	k->fd = -1;
	k->ws = l->websockets;
	const char *kind = l->http_api	   ? (is_tls(l) ? "https" : "http")
			   : l->websockets ? (is_tls(l) ? "wss" : "ws")
					   : (is_tls(l) ? "mqtts" : "mqtt");
	if (l->unix_path) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(k->where, sizeof k->where, "unix:%s (%s)", l->unix_path, kind);
		if (strlen(l->unix_path) >= sizeof sa.sun_path) {
			snprintf(why, whylen, "socket path too long");
			return CK_NEXT;
		}
		strcpy(sa.sun_path, l->unix_path);
		snprintf(host, sizeof host, "localhost");
		r = raw_connect(k, (struct sockaddr *)&sa, sizeof sa);
	} else {
		tcp_host(l, host, sizeof host);
		snprintf(k->where, sizeof k->where, "%s%s%s:%d (%s)", strchr(host, ':') ? "[" : "", host,
			 strchr(host, ':') ? "]" : "", l->port, kind);
		if (is_tls(l)) {
			struct net_tls_client_opts o = {.cafile = l->cafile, .capath = l->capath, .insecure = true,
							.tls_version = l->tls_version};
			if (l->require_certificate) {
				o.certfile = l->certfile;
				o.keyfile = l->keyfile;
			}
			char err[256] = "";
			k->loop = net_loop_new();
			k->tls = k->loop ? net_tls_client_new(&o, err, sizeof err) : NULL;
			k->conn = k->tls ? net_connect(k->loop, host, l->port, l->family, k->tls, err, sizeof err) : NULL;
			if (!k->conn) {
				snprintf(why, whylen, "%s", *err ? err : "out of memory");
				return CK_NEXT;
			}
			static const struct net_conn_cbs cbs = {.on_data = on_data, .on_close = on_close};
			net_conn_set_cbs(k->conn, &cbs, k);
			r = 0; /* connect and handshake go on in the loop while we wait */
		} else {
			char port[16];
			struct addrinfo hints = {.ai_family = l->family, .ai_socktype = SOCK_STREAM,
						 .ai_flags = AI_NUMERICSERV}, *res;
			snprintf(port, sizeof port, "%d", l->port);
			int g = getaddrinfo(host, port, &hints, &res);
			if (g) {
				snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(g));
				return CK_NEXT;
			}
			r = raw_connect(k, res->ai_addr, res->ai_addrlen);
			freeaddrinfo(res);
		}
	}
	if (r == 0 && k->ws) {
		r = ws_handshake(k, host, l->port, why, whylen);
		if (r == CK_FAIL)
			return CK_FAIL;
	}
	if (r == 0)
		return l->http_api ? http_probe(k, host, l->port, why, whylen) : exchange(k, why, whylen);
	if (r == -ETIMEDOUT) {
		snprintf(why, whylen, "%s timed out", k->ws ? "WebSocket upgrade" : "connect");
		return CK_FAIL;
	}
	snprintf(why, whylen, "%s", strerror(-r));
	return CK_NEXT;
}

/* Preference rank of a listener, 0..9 (lower first): TCP before Unix, plain
 * before TLS, MQTT before WebSockets before http_api; -1 for one we cannot use. */
static int rank(const struct listener_conf *l)
{
	if (!is_tls(l) && l->psk_hint)
		return -1;
	if (l->http_api)
		return 8 + is_tls(l);
	return (l->websockets ? 4 : 0) + (is_tls(l) ? 2 : l->unix_path ? 1 : 0);
}

int health_wanted(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--check"))
			return 1;
	return 0;
}

int health_main(int argc, char **argv)
{
	const char *file = NULL;
	int port = 0, timeout = CHECK_DEFAULT_TIMEOUT_MS, rc = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;
		if (!strcmp(a, "--check")) {
			continue;
		} else if ((!strcmp(a, "-c") || !strcmp(a, "--config-file")) && more) {
			file = argv[++i];
		} else if ((!strcmp(a, "-p") || !strcmp(a, "--port")) && more) {
			port = atoi(argv[++i]);
		} else if (!strcmp(a, "--timeout") && more) {
			timeout = atoi(argv[++i]);
		} else if (strcmp(a, "-v") && strcmp(a, "-d")) {
			fprintf(stderr, "Usage: vigil --check [-c config_file] [-p port] [--timeout ms]\n");
			return 1;
		}
	}
	if (port < 0 || port > 65535 || timeout <= 0) {
		fprintf(stderr, "vigil --check: invalid port or timeout\n");
		return 1;
	}
	struct config cfg;
	char err[1024];
	config_init(&cfg);
	if ((file && config_parse_file(&cfg, file, NULL, NULL, err, sizeof err)) ||
	    config_finish(&cfg, port, err, sizeof err)) {
		printf("vigil --check: FAIL: configuration: %s\n", err);
		goto out;
	}
	struct chk *k = calloc(1, sizeof *k);
	if (!k)
		goto out;
	k->deadline = mono_ms() + (uint64_t)timeout;
	char why[512] = "no listener this check can use (TLS-PSK listeners are skipped)", tried[1500] = "";
	size_t tl = 0;
	int outcome = CK_NEXT;
	for (int want = 0; want <= 9 && outcome == CK_NEXT; want++) {
		for (size_t i = 0; i < cfg.n_listeners && outcome == CK_NEXT; i++) {
			if (rank(&cfg.listeners[i]) != want)
				continue;
			uint64_t t0 = mono_ms();
			uint64_t deadline = k->deadline;
			memset(k, 0, sizeof *k); /* one attempt's state; the deadline is shared */
			k->deadline = deadline;
			outcome = attempt(k, &cfg.listeners[i], why, sizeof why);
			tr_close(k);
			if (outcome == CK_OK) {
				printf("vigil --check: OK: %s answered in %llu ms: %s\n", k->where,
				       (unsigned long long)(mono_ms() - t0), why);
				rc = 0;
			} else if (outcome == CK_FAIL) {
				printf("vigil --check: FAIL: %s: %s\n", k->where, why);
			} else if (tl < sizeof tried) {
				tl += (size_t)snprintf(tried + tl, sizeof tried - tl, "%s%s: %s", tl ? "; " : "", k->where,
						       why);
			}
		}
	}
	if (outcome == CK_NEXT)
		printf("vigil --check: FAIL: no listener answered (%s)\n", tl ? tried : why);
	free(k);
out:
	config_free(&cfg);
	return rc;
}
