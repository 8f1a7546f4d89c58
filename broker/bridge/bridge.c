/*
 * broker/bridge/bridge.c — one bridge's state machine: connect, CONNECT /
 * CONNACK, remote subscriptions, notifications, liveness, reconnect.
 *
 *   IDLE --timer--> CONNECTING --CONNACK 0--> UP
 *     ^                 |                      |
 *     +-- restart_timeout (backoff) <-- close (EOF, RST, refused, dead remote)
 *
 * start_type: automatic arms the timer at start and after every close;
 * once only at start; lazy only when `threshold` messages wait
 * (bridge_lazy.c), and a lazy bridge that is up closes itself after
 * idle_timeout without a PUBLISH either way. round_robin false: while up on
 * a secondary address, bridge_probe.c watches the primary.
 *
 * The local side is an ordinary session (id local_clientid, never expiring)
 * subscribed to the out/both topics with no-local and retain-as-published,
 * made once at start-up, so that messages published while the remote is
 * down wait in the session's queue (max_queued_messages) and leave in order
 * on the next CONNACK (deliver_resume), whatever cleansession says (cleansession
 * is the remote session's; mosquitto 2.0.11 forwards what waited either way). The connection is an ordinary
 * struct client with c->bridge set: publish.c and deliver.c handle PUBLISH
 * and its acks in both directions; only CONNACK, SUBACK, UNSUBACK and
 * PINGRESP are handled here.
 *
 * Liveness, the client's wheel entry reversed: one wheel entry per bridge,
 * due at min(next PINGREQ, last packet from the remote + 1.5 x keepalive).
 * PINGREQ goes out every keepalive seconds; a remote silent for 1.5 x
 * keepalive (also one that accepts TCP and never sends CONNACK) is closed
 * abortively, state 0 is published locally and a reconnect is scheduled.
 * Invariant: br->c is the only connection of a bridge; it is freed in
 * on_close only (or by bridge_free_all when the loop is torn down).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bridge_int.h"

static void on_data(struct net_conn *conn, void *user);
static void on_close(struct net_conn *conn, enum net_close_reason why, int err, void *user);
static const struct net_conn_cbs bridge_cbs = {on_data, on_close};

static uint32_t ka_dead_ms(const struct client *c)
{
	return (uint32_t)c->keepalive * 1500u + 1u; /* +1: last_rx is truncated to the ms */
}

/* A packet id unused by the session's in-flight messages. */
static uint16_t bridge_pid(struct bridge *br)
{
	struct session *s = br->s;
	for (unsigned tries = 0; tries < 65536; tries++) {
		uint16_t pid = s->next_pid++;
		if (s->next_pid == 0)
			s->next_pid = 1;
		bool used = pid == 0;
		for (const struct outmsg *o = s->inflight.head; o && !used; o = o->next)
			used = o->pid == pid;
		if (!used)
			return pid;
	}
	return 1;
}

static void notify_local(struct bridge *br, const char *v)
{
	struct broker *b = br->b;
	if (!br->conf->notifications)
		return;
	struct message *m = message_new(NULL, mqtt_cstr(br->conf->notification_topic), mqtt_cstr(v), (struct mqtt_str){0},
					1, true, NULL, NULL);
	if (!m)
		return;
	m->origin_sid = br->s->serial; /* not forwarded back through our own out topics */
	route_retain(b, m);
	route_message(b, m);
	message_unref(&m);
}

/* start_type lazy, up: when the connection is closed for idle_timeout (0: never). */
static uint64_t idle_deadline(const struct bridge *br)
{
	const struct bridge_conf *bc = br->conf;
	if (bc->start_type != BRIDGE_START_LAZY || br->state != BR_UP || bc->idle_timeout == 0)
		return 0;
	return br->last_msg + (uint64_t)bc->idle_timeout * 1000u;
}

static void arm(struct bridge *br)
{
	struct client *c = br->c;
	struct broker *b = br->b;
	if (!c || c->keepalive == 0) {
		wheel_cancel(&b->wheel, &br->timer);
		return;
	}
	uint64_t dead = c->last_rx + ka_dead_ms(c);
	uint64_t at = br->state == BR_UP && br->next_ping < dead ? br->next_ping : dead;
	uint64_t idle = idle_deadline(br);
	if (idle && idle < at)
		at = idle;
	wheel_add(&b->wheel, &br->timer, at);
}

static unsigned rand_between(unsigned lo, unsigned hi)
{
	if (hi <= lo)
		return lo;
	return lo + (unsigned)(random() % (hi - lo));
}

static void schedule_restart(struct bridge *br, bool was_up)
{
	struct broker *b = br->b;
	const struct bridge_conf *bc = br->conf;
	if (br->stopped || b->stopping)
		return;
	if (bc->start_type == BRIDGE_START_ONCE) {
		log_msg(b, LOG_F_NOTICE, "Bridge %s: not restarted (start_type once).", bc->name);
		br->stopped = true;
		return;
	}
	br->state = BR_IDLE;
	if (br->idle_closed) { /* lazy: idle, not failed; up again at the threshold */
		br->idle_closed = false;
		br->not_before = 0;
		bridge_lazy_check(br);
		return;
	}
	if (br->to_primary) {
		br->to_primary = false;
		br->cur_addr = 0;
		log_msg(b, LOG_F_NOTICE, "Bridge %s: reconnecting to the primary address %s:%d now.", bc->name,
			bc->addrs[0].host, bc->addrs[0].port);
		wheel_add(&b->wheel, &br->timer, broker_now(b));
		return;
	}
	if (bc->n_addrs > 1) /* the next address, whether connecting or connected failed */
		br->cur_addr = (br->cur_addr + 1) % bc->n_addrs;
	unsigned delay = br->restart_ms;
	if (bc->restart_cap && !was_up) {
		/* "Decorrelated jitter" backoff, as mosquitto: base..3 x previous, capped. */
		unsigned next = rand_between(bc->restart_base * 1000u, br->restart_ms * 3u);
		br->restart_ms = next > bc->restart_cap * 1000u ? bc->restart_cap * 1000u : next;
	}
	if (bc->start_type == BRIDGE_START_LAZY) {
		br->not_before = broker_now(b) + delay;
		log_msg(b, LOG_F_NOTICE, "Bridge %s: lazy, reconnecting to %s:%d when %u messages wait (not before "
			"%u.%03u s).", bc->name, bc->addrs[br->cur_addr].host, bc->addrs[br->cur_addr].port,
			bc->threshold, delay / 1000, delay % 1000);
		bridge_lazy_check(br);
		return;
	}
	log_msg(b, LOG_F_NOTICE, "Bridge %s: reconnecting to %s:%d in %u.%03u s.", bc->name,
		bc->addrs[br->cur_addr].host, bc->addrs[br->cur_addr].port, delay / 1000, delay % 1000);
	wheel_add(&b->wheel, &br->timer, broker_now(b) + delay);
}

/* Byte offset of the protocol level in an encoded CONNECT. */
static size_t level_offset(const uint8_t *p, uint8_t version)
{
	size_t i = 1;
	while (p[i] & 0x80)
		i++;
	return i + 1 + 2 + (version == MQTT_V31 ? 6 : 4);
}

static int send_connect(struct bridge *br)
{
	const struct bridge_conf *bc = br->conf;
	struct client *c = br->c;
	uint8_t pbuf[32];
	struct mqtt_pw w;
	mqtt_pw_init(&w, pbuf, sizeof(pbuf));
	if (br->version == MQTT_V5) {
		if (!bc->cleansession) /* compat: the remote keeps our session (see mosquitto-compat.md) */
			mqtt_pw_u32(&w, MQTT_PROP_SESSION_EXPIRY, UINT32_MAX);
		if (bc->max_packet_size)
			mqtt_pw_u32(&w, MQTT_PROP_MAXIMUM_PACKET_SIZE, bc->max_packet_size);
	}
	bool will = bc->notifications && !bc->notifications_local_only;
	struct mqtt_connect_out co = {
		.version = br->version,
		.clean_start = bc->cleansession,
		.keepalive = (uint16_t)bc->keepalive,
		.props = {pbuf, (uint32_t)w.len},
		.client_id = mqtt_cstr(bc->remote_clientid),
		.will = will,
		.will_qos = will ? 1 : 0, /* v311 MQTT-3.1.2-13/-15: 0 without a will */
		.will_retain = will,
		.will_topic = will ? mqtt_cstr(bc->notification_topic) : (struct mqtt_str){0},
		.will_payload = will ? mqtt_cstr("0") : (struct mqtt_str){0},
		.has_username = bc->remote_username != NULL,
		.has_password = bc->remote_password != NULL,
		.username = bc->remote_username ? mqtt_cstr(bc->remote_username) : (struct mqtt_str){0},
		.password = bc->remote_password ? mqtt_cstr(bc->remote_password) : (struct mqtt_str){0},
	};
	size_t need = mqtt_connect_encode(&co, NULL, 0);
	uint8_t *out = need ? net_conn_reserve(c->conn, need) : NULL;
	if (!out)
		return -1;
	mqtt_connect_encode(&co, out, need);
	if (br->try_private)
		out[level_offset(out, br->version)] |= 0x80; /* mosquitto's bridge bit */
	net_conn_commit(c->conn, need);
	return 0;
}

static void connect_now(struct bridge *br)
{
	struct broker *b = br->b;
	const struct bridge_conf *bc = br->conf;
	const struct bridge_addr *a = &bc->addrs[br->cur_addr];
	char err[256];
	log_msg(b, LOG_F_NOTICE, "Connecting bridge %s (%s:%d)", bc->name, a->host, a->port);
	if (bc->cleansession)
		br->s->n_in_qos2 = 0; /* a clean remote session forgets its QoS 2 flows to us */
	struct net_conn *conn = net_connect_from(b->loop, a->host, a->port, AF_UNSPEC, br->tls, bc->bind_address, err,
						 sizeof(err));
	struct client *c = conn ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		log_msg(b, LOG_F_ERROR, "Error creating bridge %s: %s.", bc->name, conn ? "out of memory" : err);
		if (conn)
			net_conn_close(conn, NET_CLOSE_ABORT);
		schedule_restart(br, false);
		return;
	}
	c->b = b;
	c->conn = conn;
	c->l = &br->l;
	c->bridge = br;
	c->version = br->version;
	c->request_problem_info = true;
	c->receive_max_out = 65535;
	c->keepalive = (uint16_t)bc->keepalive;
	c->last_rx = broker_now(b);
	c->state = CS_NEW;
	br->c = c;
	br->state = BR_CONNECTING;
	br->started = broker_now(b);
	net_conn_set_cbs(conn, &bridge_cbs, br);
	net_conn_set_user(conn, c);
	net_conn_set_nodelay(conn, b->cfg->set_tcp_nodelay);
	if (bc->tcp_user_timeout_ms >= 0)
		net_conn_set_user_timeout(conn, (unsigned)bc->tcp_user_timeout_ms);
	if (bc->tcp_keepalive_idle > 0)
		net_conn_set_keepalive(conn, bc->tcp_keepalive_idle, bc->tcp_keepalive_interval,
				       bc->tcp_keepalive_count);
	if (b->cfg->max_packet_size)
		net_conn_set_input_limit(conn, (size_t)b->cfg->max_packet_size + 8);
	if (send_connect(br)) {
		client_close(c, 0, false, true, NULL);
		return;
	}
	arm(br); /* also bounds a TCP connect or a CONNACK that never comes */
}

static void send_subscriptions(struct bridge *br)
{
	const struct bridge_conf *bc = br->conf;
	struct client *c = br->c;
	uint8_t buf[600];
	for (size_t i = 0; i < bc->n_topics; i++) {
		const struct bridge_topic *t = &bc->topics[i];
		struct mqtt_str f = mqtt_cstr(t->remote_topic);
		size_t n;
		if (t->dir == BRIDGE_OUT) {
			if (!bc->attempt_unsubscribe)
				continue;
			/* A stale subscription of an earlier, different config. */
			n = mqtt_unsubscribe_encode(bridge_pid(br), (struct mqtt_str){0}, &f, 1, c->version, buf,
						    sizeof(buf));
		} else {
			/* v5: No Local (never echoed back) and Retain As Published. */
			uint8_t opt = (uint8_t)(t->qos | (c->version == MQTT_V5 ? 0x0C : 0));
			n = mqtt_subscribe_encode(bridge_pid(br), (struct mqtt_str){0}, &f, &opt, 1, c->version, buf,
						  sizeof(buf));
			log_msg(br->b, LOG_F_DEBUG, "Bridge %s doing SUBSCRIBE on topic %s", bc->name, t->remote_topic);
		}
		if (n && n <= sizeof(buf))
			client_send(c, buf, n);
	}
}

static int handle_connack(struct bridge *br, const struct mqtt_frame *f)
{
	struct broker *b = br->b;
	const struct bridge_conf *bc = br->conf;
	struct client *c = br->c;
	struct mqtt_connack ca;
	int rc = mqtt_connack_decode(f, c->version, &ca);
	if (rc)
		return rc;
	if (ca.rc) {
		log_msg(b, LOG_F_ERROR, "Bridge %s: connection refused by %s: %s (0x%02x).", bc->name,
			net_conn_peer(c->conn), mqtt_rc_name(ca.rc), ca.rc);
		if (br->try_private && (ca.rc == 0x01 || ca.rc == 0x84)) {
			br->try_private = false; /* the remote does not know the bridge bit: retry without */
			log_msg(b, LOG_F_NOTICE, "Bridge %s: retrying without try_private.", bc->name);
		}
		client_close(c, 0, false, false, NULL);
		return 0;
	}
	if (c->version == MQTT_V5) {
		if (ca.props.present & MQTT_PBIT(MQTT_PROP_RECEIVE_MAXIMUM))
			c->receive_max_out = ca.props.receive_maximum;
		if (ca.props.present & MQTT_PBIT(MQTT_PROP_MAXIMUM_PACKET_SIZE))
			c->max_packet_out = ca.props.maximum_packet_size;
		if (ca.props.present & MQTT_PBIT(MQTT_PROP_SERVER_KEEP_ALIVE))
			c->keepalive = ca.props.server_keep_alive; /* v5 MQTT-3.2.2-21 */
	}
	c->state = CS_CONNECTED;
	b->st.clients_connected++;
	br->state = BR_UP;
	br->restart_ms = br->conf->restart_base * 1000u;
	br->last_msg = broker_now(b);
	br->n_connects++;
	log_msg(b, LOG_F_NOTICE, "Bridge %s connected to %s (MQTT %s%s, keepalive %u s).", bc->name,
		net_conn_peer(c->conn), c->version == MQTT_V5 ? "5" : c->version == MQTT_V31 ? "3.1" : "3.1.1",
		br->try_private ? ", bridge bit" : "", c->keepalive);
	/* compat: as mosquitto, the remote state 1 (packet id 1) before the subscriptions */
	if (bc->notifications && !bc->notifications_local_only) {
		uint8_t buf[600];
		struct mqtt_publish_out po = {.qos = 1, .retain = true, .packet_id = bridge_pid(br),
					      .topic = mqtt_cstr(bc->notification_topic), .payload = mqtt_cstr("1")};
		size_t n = mqtt_publish_encode(&po, c->version, buf, sizeof(buf));
		if (n && n <= sizeof(buf))
			client_send(c, buf, n);
	}
	send_subscriptions(br);
	notify_local(br, "1");
	/* Attach the local session: what waited leaves now, in order. */
	c->s = br->s;
	c->id = br->s->id;
	br->s->client = c;
	br->s->version = c->version;
	deliver_resume(br->s);
	br->next_ping = broker_now(b) + (uint64_t)c->keepalive * 1000u;
	arm(br);
	bridge_probe_arm(br); /* round_robin false on a secondary address: watch the primary */
	return 0;
}

static int handle_suback(struct bridge *br, const struct mqtt_frame *f)
{
	struct mqtt_suback sa;
	int rc = mqtt_suback_decode(f, br->c->version, &sa);
	if (rc)
		return rc;
	for (uint32_t i = 0; f->type == MQTT_SUBACK && i < sa.rcs.len; i++)
		if (sa.rcs.p[i] >= 0x80)
			log_msg(br->b, LOG_F_WARNING, "Bridge %s: the remote refused a subscription (0x%02x).",
				br->conf->name, sa.rcs.p[i]);
	return 0;
}

static int dispatch(struct bridge *br, const struct mqtt_frame *f)
{
	struct client *c = br->c;
	if (c->state == CS_NEW)
		return f->type == MQTT_CONNACK ? handle_connack(br, f) : MQTT_RC_PROTOCOL_ERROR;
	switch (f->type) {
	case MQTT_PUBLISH:
		return publish_handle(c, f);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		return publish_handle_ack(c, f);
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		return handle_suback(br, f);
	case MQTT_PINGRESP:
		return mqtt_empty_decode(f);
	case MQTT_DISCONNECT: {
		struct mqtt_disconnect d;
		int rc = mqtt_disconnect_decode(f, c->version, &d);
		if (rc)
			return rc;
		log_msg(br->b, LOG_F_NOTICE, "Bridge %s: the remote sent DISCONNECT (%s).", br->conf->name,
			mqtt_rc_name(d.rc));
		client_close(c, 0, false, false, NULL);
		return 0;
	}
	default:
		return MQTT_RC_PROTOCOL_ERROR; /* CONNECT, SUBSCRIBE, ... only go to servers */
	}
}

static void on_data(struct net_conn *conn, void *user)
{
	struct bridge *br = user;
	struct client *c = br->c;
	struct broker *b = br->b;
	while (c->state != CS_GONE) {
		size_t avail;
		const uint8_t *buf = net_conn_input(conn, &avail);
		struct mqtt_frame f;
		if (avail == 0)
			break;
		int rc = mqtt_frame_parse(buf, avail, b->cfg->max_packet_size, &f);
		if (rc == MQTT_INCOMPLETE) {
			uint32_t rl;
			int n = avail > 1 ? mqtt_vbi_decode(buf + 1, avail - 1, &rl) : 0;
			if (n > 0)
				net_conn_set_input_limit(conn, (size_t)rl + 1 + (size_t)n);
			break;
		}
		if (rc == MQTT_OK) {
			c->last_rx = broker_now(b); /* the only per-packet liveness work */
			b->st.bytes_received += f.total;
			rc = dispatch(br, &f);
			if (c->state != CS_GONE)
				net_conn_consume(conn, f.total);
		}
		if (rc) {
			log_msg(b, LOG_F_NOTICE, "Bridge %s: %s from the remote %s, disconnecting.", br->conf->name,
				mqtt_rc_name((uint8_t)rc), net_conn_peer(conn));
			client_close(c, (uint8_t)rc, false, false, NULL);
		}
	}
}

static const char *close_reason(const struct bridge *br, enum net_close_reason why, int err, char *buf, size_t cap)
{
	if (why == NET_CLOSED_EOF)
		return "the remote closed the connection";
	if (why == NET_CLOSED_LOCAL)
		return "closed";
	if (why == NET_CLOSED_TLS)
		return br->conf->require_ocsp ? "TLS handshake or record failed (certificate not trusted, wrong name, not "
						"TLS, or no good OCSP response stapled: bridge_require_ocsp)"
					      : "TLS handshake or record failed (certificate not trusted, wrong name, or not TLS)";
	snprintf(buf, cap, "%s", err ? net_strerror(err) : "socket error");
	return buf;
}

static void on_close(struct net_conn *conn, enum net_close_reason why, int err, void *user)
{
	struct bridge *br = user;
	struct broker *b = br->b;
	struct client *c = br->c;
	bool was_up = br->state == BR_UP;
	char ebuf[128];
	if (c->state != CS_GONE) {
		const char *r = close_reason(br, why, err, ebuf, sizeof(ebuf));
		if (was_up)
			log_msg(b, LOG_F_NOTICE, "Bridge %s: connection to %s lost: %s.", br->conf->name,
				net_conn_peer(conn), r);
		else
			log_msg(b, LOG_F_ERROR, "Bridge %s: cannot connect to %s: %s.", br->conf->name,
				net_conn_peer(conn), r);
		client_close(c, 0, false, why != NET_CLOSED_EOF, NULL);
	}
	wheel_cancel(&b->wheel, &br->timer);
	bridge_probe_stop(br);
	free(c->username);
	free(c);
	br->c = NULL;
	if (was_up) {
		br->n_losses++;
		notify_local(br, "0");
	}
	br->state = BR_IDLE;
	schedule_restart(br, was_up);
}

static void on_timer(struct wheel_entry *e, uint64_t now)
{
	struct bridge *br = (struct bridge *)((char *)e - offsetof(struct bridge, timer));
	struct broker *b = br->b;
	struct client *c = br->c;
	if (br->stopped || b->stopping)
		return;
	if (br->state == BR_IDLE) {
		connect_now(br);
		return;
	}
	if (!c || c->state == CS_GONE)
		return;
	uint64_t dead = c->last_rx + ka_dead_ms(c);
	if (now >= dead) {
		uint64_t silent = now - c->last_rx - 1;
		b->st.keepalive_timeouts++;
		br->n_timeouts++;
		log_msg(b, LOG_F_NOTICE,
			"Bridge %s: remote %s silent for %llu.%03llu s (keepalive %u s), disconnecting.",
			br->conf->name, net_conn_peer(c->conn), (unsigned long long)(silent / 1000),
			(unsigned long long)(silent % 1000), c->keepalive);
		if (net_conn_out_pending(c->conn) > 0)
			b->st.halfopen_closes++;
		client_close(c, 0, false, true, NULL); /* dead: abortive */
		return;
	}
	uint64_t idle = idle_deadline(br);
	if (idle && now >= idle) {
		log_msg(b, LOG_F_NOTICE, "Bridge %s: no message either way for %u s (idle_timeout, start_type lazy), "
			"disconnecting.", br->conf->name, br->conf->idle_timeout);
		br->idle_closed = true;
		client_close(c, 0, false, false, NULL); /* no DISCONNECT: the remote publishes state 0 (as mosquitto) */
		return;
	}
	if (br->state == BR_UP && now >= br->next_ping) {
		uint8_t ping[2];
		mqtt_empty_encode(MQTT_PINGREQ, ping, sizeof(ping));
		client_send(c, ping, 2);
		br->next_ping = now + (uint64_t)c->keepalive * 1000u;
	}
	arm(br);
}

/* The local session and its subscriptions (out/both topics). */
static int bridge_local_init(struct bridge *br, char *err, size_t errlen)
{
	struct broker *b = br->b;
	const struct bridge_conf *bc = br->conf;
	struct session *s = session_find(b, bc->local_clientid);
	if (s && bc->local_cleansession > 0) {
		/* compat: mosquitto's clean_start_local: a local session restored
		 * from the store (written while local_cleansession was false) starts
		 * clean, and this one is never written (below). */
		session_destroy(s);
		s = NULL;
	}
	if (!s)
		s = session_new(b, bc->local_clientid);
	if (!s) {
		snprintf(err, errlen, "bridge %s: out of memory", bc->name);
		return -1;
	}
	br->s = s;
	s->expiry = UINT32_MAX; /* the bridge owns it for the broker's life */
	s->bridge_owned = true;
	s->listener = &br->l;
	s->version = br->version;
	for (size_t i = 0; i < bc->n_topics; i++) {
		const struct bridge_topic *t = &bc->topics[i];
		if (t->dir == BRIDGE_IN)
			continue;
		uint8_t opts = (uint8_t)(t->qos | BRIDGE_LOCAL_SUB_OPTS);
		bool replaced = false, existed = false;
		if (subtree_add(b->subs, mqtt_cstr(t->local_topic), NULL, s, opts, 0, &replaced) ||
		    session_sub_add(s, t->local_topic, opts, 0, &existed)) {
			snprintf(err, errlen, "bridge %s: out of memory", bc->name);
			return -1;
		}
		log_msg(b, LOG_F_DEBUG, "Bridge %s doing local SUBSCRIBE on topic %s", bc->name, t->local_topic);
	}
	/* A session restored by the store may hold the out topics of an earlier
	 * configuration: as mosquitto (sub__clean_session), only today's stay. */
	for (uint32_t i = s->n_subs; i-- > 0;) {
		const char *f = s->subs[i].filter;
		bool keep = false;
		for (size_t j = 0; j < bc->n_topics && !keep; j++)
			keep = bc->topics[j].dir != BRIDGE_IN && !strcmp(bc->topics[j].local_topic, f);
		if (!keep) {
			char *dup = strdup(f);
			if (dup) {
				subtree_remove(b->subs, mqtt_cstr(dup), NULL, s);
				session_sub_remove(s, dup);
				store_sub_remove(b, s, dup);
				free(dup);
			}
		}
	}
	/* Durable from now (persistence true): what is queued while the remote
	 * is down survives a restart; a restored session keeps its rows. Not
	 * with local_cleansession true: nothing of it outlives the process. */
	if (bc->local_cleansession <= 0)
		store_session_saved(b, s);
	return 0;
}

int bridge_start_all(struct broker *b, char *err, size_t errlen)
{
	const struct config *cfg = b->cfg;
	if (!cfg->n_bridges)
		return 0;
	b->bridges = calloc(cfg->n_bridges, sizeof(*b->bridges));
	if (!b->bridges) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	b->n_bridges = cfg->n_bridges;
	for (size_t i = 0; i < cfg->n_bridges; i++) {
		struct bridge *br = &b->bridges[i];
		br->b = b;
		br->conf = &cfg->bridges[i];
		br->lconf.max_qos = 2;
		br->lconf.max_connections = -1;
		br->l.b = b;
		br->l.conf = &br->lconf;
		br->version = (uint8_t)br->conf->protocol;
		br->try_private = br->conf->try_private;
		br->restart_ms = br->conf->restart_base * 1000u;
		wheel_entry_init(&br->timer, on_timer);
		wheel_entry_init(&br->probe_timer, NULL);
		const struct bridge_conf *bc = br->conf;
		if (bc->cafile || bc->capath || bc->psk) {
			struct net_tls_client_opts o = {bc->cafile, bc->capath, bc->certfile, bc->keyfile,
							bc->tls_version, bc->alpn, bc->insecure, bc->psk_identity, bc->psk,
							bc->require_ocsp};
			char terr[256];
			if (!(br->tls = net_tls_client_new(&o, terr, sizeof(terr)))) {
				snprintf(err, errlen, "%s:%d: bridge %s: %s", bc->file, bc->line, bc->name, terr);
				return -1;
			}
			if (bc->insecure)
				log_msg(b, LOG_F_WARNING, "Warning: bridge %s: bridge_insecure true, the remote's "
					"certificate name is not checked.", bc->name);
		}
		if (bridge_local_init(br, err, errlen))
			return -1;
		notify_local(br, "0"); /* as mosquitto: state 0 until the first CONNACK */
		if (bc->start_type == BRIDGE_START_LAZY)
			bridge_lazy_check(br); /* persisted messages may already reach the threshold */
		else
			wheel_add(&b->wheel, &br->timer, broker_now(b)); /* connect on the next pass */
	}
	return 0;
}

void bridge_stop_all(struct broker *b)
{
	for (size_t i = 0; i < b->n_bridges; i++) {
		struct bridge *br = &b->bridges[i];
		br->stopped = true;
		wheel_cancel(&b->wheel, &br->timer);
		bridge_probe_stop(br);
		/* No DISCONNECT: the remote publishes our will (state 0). */
		if (br->c && br->c->state != CS_GONE)
			client_close(br->c, 0, false, false, NULL);
	}
}

void bridge_free_all(struct broker *b)
{
	for (size_t i = 0; i < b->n_bridges; i++) {
		struct bridge *br = &b->bridges[i];
		wheel_cancel(&b->wheel, &br->timer);
		wheel_cancel(&b->wheel, &br->probe_timer);
		br->probe = NULL; /* freed by net with the loop */
		if (br->c) { /* on_close never ran: net frees the conn without callbacks */
			if (br->s && br->s->client == br->c)
				br->s->client = NULL;
			free(br->c->username);
			free(br->c);
			br->c = NULL;
		}
		if (br->s && br->s->listener == &br->l)
			br->s->listener = NULL;
		net_tls_free(br->tls);
	}
	free(b->bridges);
	b->bridges = NULL;
	b->n_bridges = 0;
}

void bridge_back_to_primary(struct bridge *br)
{
	if (!br->c || br->c->state == CS_GONE || br->cur_addr == 0)
		return;
	log_msg(br->b, LOG_F_NOTICE, "Bridge %s: the primary address %s:%d is reachable again, leaving %s.",
		br->conf->name, br->conf->addrs[0].host, br->conf->addrs[0].port, net_conn_peer(br->c->conn));
	br->to_primary = true;
	client_close(br->c, 0, false, false, NULL);
}

