/*
 * tests/unit/fake_net.c — a fake of net/net.h for broker unit tests.
 *
 * No sockets: a connection's input is fed by the test, its output is a
 * byte buffer the test reads, close requests are recorded, and time is a
 * field the test sets. Included (not linked) by the broker unit tests, which
 * link libbroker.a and libprotocol.a but not libnet.a.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

struct net_loop {
	uint64_t now;
};

struct net_conn {
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_len, out_cap, out_read;
	bool close_requested;
	int close_how;
	const struct net_conn_cbs *cbs;
	void *cb_user;
	void *user;
	char peer[32];
};

struct net_listener {
	int port;
};

struct net_loop *net_loop_new(void)
{
	return calloc(1, sizeof(struct net_loop));
}
void net_loop_free(struct net_loop *loop)
{
	free(loop);
}
int net_fd_add(struct net_loop *loop, int fd, unsigned events, net_fd_cb cb, void *user)
{
	return 0;
}
int net_fd_mod(struct net_loop *loop, int fd, unsigned events)
{
	return 0;
}
void net_fd_del(struct net_loop *loop, int fd)
{
}
uint64_t net_now(const struct net_loop *loop)
{
	return loop->now;
}
uint64_t net_now_update(struct net_loop *loop)
{
	return loop->now;
}
int net_loop_run_once(struct net_loop *loop, int timeout_ms)
{
	return 0;
}
void net_loop_set_before_flush(struct net_loop *loop, net_hook_cb cb, void *user)
{
}
void net_loop_set_mem_hook(struct net_loop *loop, void (*cb)(void *user, long long delta), void *user)
{
}

static struct net_conn *fake_conn_new(int n)
{
	struct net_conn *c = calloc(1, sizeof(*c));
	snprintf(c->peer, sizeof(c->peer), "10.0.0.%d:1000", n);
	return c;
}

static void fake_conn_free(struct net_conn *c)
{
	free(c->in);
	free(c->out);
	free(c);
}

void net_conn_set_cbs(struct net_conn *c, const struct net_conn_cbs *cbs, void *user)
{
	c->cbs = cbs;
	c->cb_user = user;
}
const uint8_t *net_conn_input(const struct net_conn *c, size_t *len)
{
	*len = c->in_len;
	return c->in;
}
void net_conn_consume(struct net_conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
}
void net_conn_set_input_limit(struct net_conn *c, size_t max)
{
}
void net_conn_pause_read(struct net_conn *c, bool paused)
{
}
uint8_t *net_conn_reserve(struct net_conn *c, size_t len)
{
	if (c->out_len + len > c->out_cap) {
		size_t cap = (c->out_len + len) * 2 + 64;
		uint8_t *p = realloc(c->out, cap);
		if (!p)
			return NULL;
		c->out = p;
		c->out_cap = cap;
	}
	return c->out + c->out_len;
}
void net_conn_commit(struct net_conn *c, size_t used)
{
	c->out_len += used;
}
int net_conn_write(struct net_conn *c, const void *p, size_t len)
{
	uint8_t *o = net_conn_reserve(c, len);
	if (!o)
		return -ENOMEM;
	memcpy(o, p, len);
	net_conn_commit(c, len);
	return 0;
}
size_t net_conn_out_pending(const struct net_conn *c)
{
	return c->out_len - c->out_read;
}
void net_conn_close(struct net_conn *c, enum net_close_how how)
{
	if (!c->close_requested || how == NET_CLOSE_ABORT)
		c->close_how = how;
	c->close_requested = true;
}
bool net_conn_closing(const struct net_conn *c)
{
	return c->close_requested;
}
const char *net_conn_peer(const struct net_conn *c)
{
	return c->peer;
}
struct net_listener *net_conn_listener(const struct net_conn *c)
{
	return NULL;
}
const char *net_conn_cert_cn(const struct net_conn *c)
{
	return NULL;
}
const char *net_conn_cert_subject(const struct net_conn *c)
{
	return NULL;
}
const char *net_conn_psk_identity(const struct net_conn *c)
{
	return NULL;
}
bool net_conn_ready(const struct net_conn *c)
{
	return true;
}
int net_conn_set_nodelay(struct net_conn *c, bool on)
{
	return 0;
}
int net_conn_set_user_timeout(struct net_conn *c, unsigned ms)
{
	return 0;
}
int net_conn_set_keepalive(struct net_conn *c, int idle_s, int intvl_s, int count)
{
	return 0;
}
void net_conn_set_user(struct net_conn *c, void *user)
{
	c->user = user;
}
void *net_conn_user(const struct net_conn *c)
{
	return c->user;
}
struct net_listener *net_listen(struct net_loop *loop, const struct net_listen_opts *o, net_accept_cb cb,
				void *user, char *err, size_t errlen)
{
	snprintf(err, errlen, "fake net has no listeners");
	return NULL;
}
void net_listener_close(struct net_listener *l)
{
}
void *net_listener_user(const struct net_listener *l)
{
	return NULL;
}
int net_listener_port(const struct net_listener *l)
{
	return 0;
}
struct net_tls *net_tls_new(const struct net_tls_opts *o, char *err, size_t errlen)
{
	snprintf(err, errlen, "fake net has no TLS");
	return NULL;
}
int net_tls_reload(struct net_tls *t, const struct net_tls_opts *o, char *err, size_t errlen)
{
	return -1;
}
void net_tls_free(struct net_tls *t)
{
}
void net_conn_discard_output(struct net_conn *c)
{
	c->out_len = c->out_read = 0;
}
