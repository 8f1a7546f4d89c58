/*
 * tests/fuzz/fuzz_broker.c — libFuzzer harness for the broker's packet
 * handlers, with the fake net of the unit tests (no sockets).
 *
 * Each input is split into up to four client streams by a one-byte header
 * per chunk (client index, protocol version, whether to CONNECT first);
 * chunks are fed to their clients in order, time advances between chunks,
 * and closes are reaped as net would. Whatever the bytes: no crash, no
 * leak, no undefined behaviour, and broker_fini frees everything.
 * `make fuzz` builds and runs it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "../unit/fake_net.c"

#define NCLIENTS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void feed(struct net_conn *c, const uint8_t *p, size_t n)
{
	if (c->close_requested || !c->cbs)
		return;
	uint8_t *in = realloc(c->in, c->in_len + n + 1);
	if (!in)
		return;
	c->in = in;
	memcpy(c->in + c->in_len, p, n);
	c->in_len += n;
	c->cbs->on_data(c, c->cb_user);
}

static void reap(struct net_conn **conns, bool *reaped)
{
	for (int i = 0; i < NCLIENTS; i++) {
		if (conns[i] && conns[i]->close_requested && !reaped[i]) {
			reaped[i] = true;
			conns[i]->cbs->on_close(conns[i], NET_CLOSED_LOCAL, 0, conns[i]->cb_user);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	struct broker b;
	struct listener_conf lc = {.port = 1883, .max_qos = 2, .max_topic_alias = 4, .max_connections = -1};
	struct listener lis;
	struct net_conn *conns[NCLIENTS] = {0};
	bool reaped[NCLIENTS] = {0};

	config_init(&cfg);
	cfg.log_type = 0;
	cfg.log_dest = LOG_D_NONE;
	cfg.sys_interval = 0;
	cfg.max_inflight_messages = 3;
	cfg.max_queued_messages = 5;
	cfg.security.allow_anonymous = 1;
	cfg.security.allow_zero_length_clientid = true;
	struct net_loop *loop = net_loop_new();
	loop->now = 1000;
	if (broker_init(&b, &cfg, loop))
		abort();
	memset(&lis, 0, sizeof(lis));
	lis.b = &b;
	lis.conf = &lc;
	lis.sec = &cfg.security;

	size_t off = 0;
	while (off + 2 <= size) {
		uint8_t hdr = data[off++];
		size_t len = data[off++];
		if (len > size - off)
			len = size - off;
		int i = hdr & 3;
		if (!conns[i]) {
			conns[i] = fake_conn_new(i);
			client_accept(NULL, conns[i], &lis);
			if (hdr & 4) {
				/* a valid CONNECT first: v3.1.1 or v5, shared ids collide on purpose */
				char id[8];
				snprintf(id, sizeof(id), "c%d", (hdr >> 5) & 1);
				struct mqtt_connect_out k = {.version = (hdr & 8) ? MQTT_V5 : MQTT_V311,
							     .clean_start = (hdr & 16) != 0,
							     .keepalive = 2,
							     .client_id = mqtt_cstr(id),
							     .will = (hdr & 64) != 0,
							     .will_topic = mqtt_cstr("w/t"),
							     .will_payload = mqtt_cstr("x")};
				uint8_t buf[64];
				size_t n = mqtt_connect_encode(&k, buf, sizeof(buf));
				if (n <= sizeof(buf))
					feed(conns[i], buf, n);
			}
		}
		feed(conns[i], data + off, len);
		off += len;
		reap(conns, reaped);
		if (hdr & 128) {
			loop->now += 700;
			wheel_run(&b.wheel, loop->now);
			reap(conns, reaped);
		}
		if (reaped[i]) {
			fake_conn_free(conns[i]);
			conns[i] = NULL;
			reaped[i] = false;
		}
	}
	for (int i = 0; i < NCLIENTS; i++) {
		if (conns[i]) {
			if (!reaped[i] && conns[i]->cbs)
				conns[i]->cbs->on_close(conns[i], NET_CLOSED_EOF, 0, conns[i]->cb_user);
			fake_conn_free(conns[i]);
		}
	}
	loop->now += 100000000;
	wheel_run(&b.wheel, loop->now);
	broker_fini(&b);
	net_loop_free(loop);
	config_free(&cfg);
	return 0;
}
