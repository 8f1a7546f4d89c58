/*
 * broker/client.c — one network connection: framing, dispatch, keepalive,
 * close.
 *
 * Frames are cut from the connection's input buffer in place (no copy) and
 * dispatched by type. This file is the one place where internal errors
 * (enum mqtt_rc values returned by the handlers) become wire behaviour:
 * DISCONNECT with a reason code for MQTT 5, a plain close for 3.x, and the
 * will. Keepalive is lazily re-armed: a packet only stores last_rx; when the
 * wheel entry comes due it re-arms at last_rx + 1.5 x K or closes.
 * Invariant: a client in CS_GONE has no session and is never dispatched
 * again; it is freed in on_close, which net calls after the dispatch pass.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "api/api.h"

static void on_data(struct net_conn *conn, void *user);
static void on_close(struct net_conn *conn, enum net_close_reason why, int err, void *user);
static void on_timer(struct wheel_entry *e, uint64_t now);

static const struct net_conn_cbs client_cbs = {on_data, on_close};

static const char *client_name(const struct client *c)
{
	return c->id ? c->id : "<unknown>";
}

void client_accept(struct net_listener *nl, struct net_conn *conn, void *user)
{
	struct listener *l = user;
	struct broker *b = l->b;
	int max = l->conf->max_connections;

	if (b->stopping || (max >= 0 && l->connections >= max)) {
		struct log_ev ev = {.event = "connect_refused", .address = net_conn_peer(conn),
				    .reason = "max_connections exceeded"};
		log_event(b, LOG_F_NOTICE, &ev, "Client connection from %s denied: max_connections exceeded.",
			  net_conn_peer(conn));
		net_conn_close(conn, NET_CLOSE_ABORT);
		return;
	}
	b->st.sockets_accepted++;
	struct client *c = mem_zalloc_always(&b->mem, sizeof(*c)); /* counted; a CONNECT is refused later */
	if (!c) {
		net_conn_close(conn, NET_CLOSE_ABORT);
		return;
	}
	c->b = b;
	c->conn = conn;
	c->l = l;
	c->request_problem_info = true;
	c->last_rx = broker_now(b);
	net_conn_set_cbs(conn, &client_cbs, c);
	net_conn_set_user(conn, c);
	if (!l->conf->unix_path) {
		net_conn_set_nodelay(conn, b->cfg->set_tcp_nodelay);
		if (l->conf->tcp_user_timeout_ms)
			net_conn_set_user_timeout(conn, l->conf->tcp_user_timeout_ms);
		if (l->conf->tcp_keepalive_idle > 0)
			net_conn_set_keepalive(conn, l->conf->tcp_keepalive_idle, l->conf->tcp_keepalive_interval,
					       l->conf->tcp_keepalive_count);
	}
	if (b->cfg->max_packet_size)
		net_conn_set_input_limit(conn, (size_t)b->cfg->max_packet_size + 8);
	l->connections++;
	c->next_all = b->clients;
	if (b->clients)
		b->clients->prev_all = c;
	b->clients = c;

	/* Pre-CONNECT timeout (also covers a TLS or WebSocket handshake that
	 * never finishes). compat: mosquitto keeps such sockets much longer. */
	wheel_entry_init(&c->timer, on_timer);
	c->timeout_ms = b->cfg->connect_timeout * 1000u;
	wheel_add(&b->wheel, &c->timer, broker_now(b) + c->timeout_ms);
	if (b->cfg->connection_messages) {
		struct log_ev ev = {.event = "new_connection", .address = net_conn_peer(conn)};
		log_event(b, LOG_F_NOTICE, &ev, "New connection from %s on port %d.", net_conn_peer(conn),
			  l->conf->port);
	}
}

void client_start_keepalive(struct client *c)
{
	struct broker *b = c->b;
	wheel_cancel(&b->wheel, &c->timer);
	if (c->keepalive == 0) {
		c->timeout_ms = 0;
		return;
	}
	/* v311 MQTT-3.1.2-24, v5 MQTT-3.1.2-22: 1.5 x Keep Alive. The +1
	 * ms: last_rx is the millisecond clock truncated, so the packet may
	 * have arrived up to 1 ms after it; never close early. */
	c->timeout_ms = (uint32_t)c->keepalive * 1500u + 1u;
	wheel_add(&b->wheel, &c->timer, c->last_rx + c->timeout_ms);
}

static void on_timer(struct wheel_entry *e, uint64_t now)
{
	struct client *c = (struct client *)((char *)e - offsetof(struct client, timer));
	struct broker *b = c->b;

	if (c->state == CS_NEW) {
		b->st.preconnect_timeouts++;
		struct log_ev ev = {.event = "connect_timeout", .address = net_conn_peer(c->conn),
				    .reason = "no CONNECT"};
		log_event(b, LOG_F_NOTICE, &ev, "Client %s did not send CONNECT within %u s, disconnecting.",
			  net_conn_peer(c->conn), b->cfg->connect_timeout);
		client_close(c, 0, false, true, NULL);
		return;
	}
	if (c->state != CS_CONNECTED || c->timeout_ms == 0)
		return;
	uint64_t deadline = c->last_rx + c->timeout_ms;
	if (now < deadline) {
		wheel_add(&b->wheel, &c->timer, deadline); /* spoke since: lazy re-arm */
		return;
	}
	b->st.keepalive_timeouts++;
	uint64_t silent = now - c->last_rx - 1;
	if (b->cfg->connection_messages) {
		struct log_ev ev = {.event = "keepalive_timeout", .client_id = client_name(c),
				    .address = net_conn_peer(c->conn), .username = c->username,
				    .reason = "keepalive timeout", .keepalive = c->keepalive, .has_keepalive = true,
				    .silent_ms = silent ? silent : 1};
		/* compat: mosquitto's words, then the measured silence (mosquitto-compat.md) */
		log_event(b, LOG_F_NOTICE, &ev,
			  "Client %s has exceeded timeout, disconnecting. (silent for %llu.%03llu s, keepalive %u s)",
			  client_name(c), (unsigned long long)(silent / 1000), (unsigned long long)(silent % 1000),
			  c->keepalive);
	}
	api_note_keepalive_timeout(b->api, client_name(c), net_conn_peer(c->conn), c->keepalive, silent);
	if (net_conn_out_pending(c->conn) > 0)
		b->st.halfopen_closes++; /* unsent data to a silent peer: most likely half-open */
	client_close(c, 0x8D, true, true, NULL); /* v5: Keep Alive timeout */
}

void client_send(struct client *c, const uint8_t *p, size_t len)
{
	if (c->state == CS_GONE)
		return;
	store_client_sent(c->b, c); /* acks leave after the store's commit */
	if (net_conn_write(c->conn, p, len) == 0) {
		c->b->st.bytes_sent += len;
		c->b->st.pkts_sent++;
	}
}

/* Encode with an snprintf-style encoder straight into the output queue. */
#define CLIENT_ENCODE(c, call_out_cap)                                                  \
	do {                                                                            \
		uint8_t *out = NULL;                                                    \
		size_t cap = 0;                                                         \
		size_t need = (call_out_cap);                                           \
		if ((c)->max_packet_out && need > (c)->max_packet_out)                  \
			break; /* v5 MQTT-3.1.2-24: never exceed the client's limit */  \
		out = net_conn_reserve((c)->conn, need);                                \
		if (!out)                                                               \
			break;                                                          \
		cap = need;                                                             \
		(void)(call_out_cap);                                                   \
		net_conn_commit((c)->conn, need);                                       \
		(c)->b->st.bytes_sent += need;                                          \
		(c)->b->st.pkts_sent++;                                                 \
	} while (0)

void client_send_ack(struct client *c, uint8_t type, uint16_t pid, uint8_t rc)
{
	if (c->state == CS_GONE)
		return;
	store_client_sent(c->b, c);
	CLIENT_ENCODE(c, mqtt_ack_encode(type, pid, rc, (struct mqtt_str){0}, c->version, out, cap));
}

void client_send_disconnect(struct client *c, uint8_t rc, const char *reason)
{
	uint8_t pbuf[300];
	struct mqtt_pw w;
	if (c->state == CS_GONE || c->version != MQTT_V5)
		return;
	mqtt_pw_init(&w, pbuf, sizeof(pbuf));
	/* compat: no Reason String, so the bytes are mosquitto's (E0 01 rc);
	 * the reason is in our log instead. */
	(void)reason;
	struct mqtt_str props = {pbuf, w.overflow ? 0 : (uint32_t)w.len};
	CLIENT_ENCODE(c, mqtt_disconnect_encode(rc, props, MQTT_V5, out, cap));
}

static void client_unlink(struct client *c)
{
	struct broker *b = c->b;
	api_client_gone(b->api, c, c->next_all); /* a client listing being streamed moves past it */
	if (c->prev_all)
		c->prev_all->next_all = c->next_all;
	else if (b->clients == c)
		b->clients = c->next_all;
	if (c->next_all)
		c->next_all->prev_all = c->prev_all;
	c->next_all = c->prev_all = NULL;
}

void client_close(struct client *c, uint8_t rc, bool abnormal, bool dead, const char *why)
{
	struct broker *b = c->b;
	if (c->state == CS_GONE)
		return;
	if (rc && c->state == CS_CONNECTED)
		client_send_disconnect(c, rc, why);
	wheel_cancel(&b->wheel, &c->timer);
	if (c->state == CS_CONNECTED)
		b->st.clients_connected--;
	c->state = CS_GONE;
	struct session *s = c->s;
	if (s) {
		c->s = NULL;
		c->id = NULL; /* the session's; it may end now */
		s->client = NULL;
		session_detach(s, abnormal);
	}
	net_conn_close(c->conn, dead ? NET_CLOSE_ABORT : NET_CLOSE_FLUSH);
}

/* Map a handler's error to the wire and close (the one place that does). */
static void client_fail(struct client *c, int rc, uint8_t type)
{
	struct broker *b = c->b;
	const char *what = mqtt_rc_name((uint8_t)rc);
	char lower[64];
	size_t i = 0;
	for (; what[i] && i < sizeof(lower) - 1; i++)
		lower[i] = (char)((what[i] >= 'A' && what[i] <= 'Z') ? what[i] - 'A' + 'a' : what[i]);
	lower[i] = 0;
	/* mosquitto's wording ("... disconnected due to protocol error."), then
	 * which packet and from where. */
	struct log_ev ev = {.event = "disconnect", .client_id = c->id, .address = net_conn_peer(c->conn),
			    .username = c->username, .reason = lower};
	log_event(b, LOG_F_NOTICE, &ev, "Client %s disconnected due to %s (%s from %s).", client_name(c), lower,
		  mqtt_type_name(type), net_conn_peer(c->conn));
	client_close(c, (uint8_t)rc, true, false, what);
}

static int handle_disconnect(struct client *c, const struct mqtt_frame *f)
{
	struct mqtt_disconnect d;
	int rc = mqtt_disconnect_decode(f, c->version, &d);
	if (rc)
		return rc;
	struct session *s = c->s;
	if (c->version == MQTT_V5 && (d.props.present & MQTT_PBIT(MQTT_PROP_SESSION_EXPIRY))) {
		/* v5 MQTT-3.14.2-2: cannot turn a 0 expiry into a non-zero one. */
		if (s && s->expiry == 0 && d.props.session_expiry != 0)
			return MQTT_RC_PROTOCOL_ERROR;
		if (s)
			s->expiry = d.props.session_expiry;
	}
	/* v5 0x04: Disconnect with Will Message. Otherwise the will is
	 * discarded (v311 MQTT-3.14.4-3, v5 MQTT-3.1.2-10). */
	bool with_will = (c->version == MQTT_V5 && d.rc == 0x04);
	if (!with_will && s)
		session_clear_will(s);
	if (c->b->cfg->connection_messages) {
		struct log_ev ev = {.event = "disconnect", .client_id = c->id, .address = net_conn_peer(c->conn),
				    .username = c->username, .reason = with_will ? "DISCONNECT with will" : "DISCONNECT"};
		log_event(c->b, LOG_F_NOTICE, &ev, "Client %s disconnected.", client_name(c));
	}
	c->b->st.clients_disconnected++;
	client_close(c, 0, with_will, false, NULL);
	return 0;
}

static int dispatch(struct client *c, const struct mqtt_frame *f)
{
	if (c->state == CS_NEW) {
		if (f->type != MQTT_CONNECT)
			return MQTT_RC_PROTOCOL_ERROR; /* v311 MQTT-3.1.0-1, v5 MQTT-3.1.0-1 */
		return connect_handle(c, f);
	}
	switch (f->type) {
	case MQTT_PUBLISH:
		return publish_handle(c, f);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		return publish_handle_ack(c, f);
	case MQTT_SUBSCRIBE:
		return subscribe_handle(c, f);
	case MQTT_UNSUBSCRIBE:
		return unsubscribe_handle(c, f);
	case MQTT_PINGREQ: {
		int rc = mqtt_empty_decode(f);
		if (rc)
			return rc;
		uint8_t resp[2];
		mqtt_empty_encode(MQTT_PINGRESP, resp, sizeof(resp));
		client_send(c, resp, 2);
		return 0;
	}
	case MQTT_DISCONNECT:
		return handle_disconnect(c, f);
	case MQTT_AUTH:
		/* No enhanced authentication methods are offered, so AUTH is
		 * never expected (v5 MQTT-4.12.0-1? see 3.15). */
		return c->version == MQTT_V5 ? MQTT_RC_PROTOCOL_ERROR : MQTT_RC_MALFORMED;
	case MQTT_CONNECT:
		return MQTT_RC_PROTOCOL_ERROR; /* v311 MQTT-3.1.0-2, v5 MQTT-3.1.0-2 */
	default:
		/* CONNACK, SUBACK, UNSUBACK, PINGRESP only go to clients. */
		return MQTT_RC_PROTOCOL_ERROR;
	}
}

static void on_data(struct net_conn *conn, void *user)
{
	struct client *c = user;
	struct broker *b = c->b;
	uint32_t max = b->cfg->max_packet_size;

	while (c->state != CS_GONE && !c->cluster_held) { /* held: the cluster re-runs the CONNECT */
		size_t avail;
		const uint8_t *buf = net_conn_input(conn, &avail);
		struct mqtt_frame f;
		if (avail == 0)
			break;
		int rc = mqtt_frame_parse(buf, avail, max, &f);
		if (rc == MQTT_INCOMPLETE) {
			uint32_t rl;
			int n = avail > 1 ? mqtt_frame_length(buf + 1, avail - 1, &rl) : 0;
			/* memory_limit: a PUBLISH that cannot fit is refused before it
			 * is buffered (mosquitto fails its packet read the same way). */
			if (n > 0 && (buf[0] >> 4) == MQTT_PUBLISH && c->state == CS_CONNECTED &&
			    !mem_fits(&b->mem, rl)) {
				client_fail(c, 0x97, MQTT_PUBLISH); /* v5: Quota exceeded */
				break;
			}
			if (n > 0)
				net_conn_set_input_limit(conn, (size_t)rl + 1 + (size_t)n); /* room for this frame */
			break;
		}
		if (rc != MQTT_OK) {
			/* A packet bigger than Maximum Packet Size: v5 MQTT-3.2.2-? 0x95. */
			client_fail(c, rc, buf[0] >> 4);
			break;
		}
		c->last_rx = broker_now(b); /* the only per-packet keepalive work */
		b->st.bytes_received += f.total;
		b->st.pkts_received++;
		rc = dispatch(c, &f);
		if (c->state != CS_GONE)
			net_conn_consume(conn, f.total);
		if (rc)
			client_fail(c, rc, f.type);
	}
}

static void on_close(struct net_conn *conn, enum net_close_reason why, int err, void *user)
{
	struct client *c = user;
	struct broker *b = c->b;
	store_client_gone(b, c); /* before net flushes a lingering close */
	cluster_client_gone(b, c); /* a CONNECT the cluster held */
	if (c->state != CS_GONE) {
		if (c->state == CS_CONNECTED && b->cfg->connection_messages) {
			struct log_ev ev = {.event = "disconnect", .client_id = c->id,
					    .address = net_conn_peer(conn), .username = c->username,
					    .reason = why == NET_CLOSED_EOF ? "connection closed" : "socket error"};
			if (why == NET_CLOSED_EOF)
				log_event(b, LOG_F_NOTICE, &ev, "Client %s closed its connection.", client_name(c));
			else
				log_event(b, LOG_F_NOTICE, &ev, "Socket error on client %s, disconnecting.",
					  client_name(c));
		}
		if (c->state == CS_CONNECTED && why == NET_CLOSED_ERROR && err == ETIMEDOUT)
			b->st.halfopen_closes++;
		/* EOF, RST, error: the network failed, so the will goes out. */
		client_close(c, 0, true, why != NET_CLOSED_EOF, NULL);
	}
	wheel_cancel(&b->wheel, &c->timer);
	client_unlink(c);
	c->l->connections--;
	if (c->aliases) {
		for (unsigned i = 0; i <= c->alias_max_in; i++)
			free(c->aliases[i]);
		free(c->aliases);
	}
	free(c->username);
	if (c->password) {
		explicit_bzero(c->password, c->password_len);
		free(c->password);
	}
	mem_free(&b->mem, c);
}
