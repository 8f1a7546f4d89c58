/*
 * broker/connect.c — CONNECT: validation, authentication, client id rules,
 * session resume or takeover, will, CONNACK.
 *
 * Decides, then acts: every refusal is decided before any session state is
 * touched, so a refused CONNECT changes nothing; the checks run in
 * mosquitto 2.0.11's order. The one exception is a CONNACK too big for the
 * client's Maximum Packet Size: the CONNECT was accepted, so (as mosquitto)
 * the connection then ends as a network failure would. CONNACK properties are
 * written in the order mosquitto 2.0 writes them (Topic Alias Maximum,
 * Server Keep Alive, Assigned Client Identifier, Retain Available, Maximum
 * Packet Size, Receive Maximum, Maximum QoS) so byte-exact tests written
 * against mosquitto see the same bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "broker.h"

/* v3 CONNACK return codes. */
enum { V3_ACCEPTED = 0, V3_BAD_VERSION = 1, V3_ID_REJECTED = 2, V3_BAD_AUTH = 4, V3_NOT_AUTHORIZED = 5 };

/* False (nothing sent) when the CONNACK would exceed the client's Maximum
 * Packet Size: v5 MQTT-3.1.2-24 applies to every packet. */
static bool send_connack(struct client *c, uint8_t version, bool present, uint8_t rc, struct mqtt_str props)
{
	uint8_t buf[512];
	size_t n = mqtt_connack_encode(present, rc, props, version, buf, sizeof(buf));
	if (c->max_packet_out && n > c->max_packet_out)
		return false;
	if (n <= sizeof(buf)) {
		client_send(c, buf, n);
	} else {
		uint8_t *p = malloc(n);
		if (!p)
			return false;
		mqtt_connack_encode(present, rc, props, version, p, n);
		client_send(c, p, n);
		free(p);
	}
	return true;
}

static char *str_dup(struct mqtt_str s);

/* Refuse: CONNACK with the code for this version, then close. Returns 0
 * because the connection is already handled. k: the CONNECT as far as it
 * was decoded (its client id and user name go into the log event). */
static int refuse(struct client *c, const struct mqtt_connect *k, uint8_t version, uint8_t v3rc, uint8_t v5rc,
		  const char *log_reason)
{
	uint8_t rc = version == MQTT_V5 ? v5rc : v3rc;
	uint8_t pbuf[4];
	struct mqtt_pw w;
	mqtt_pw_init(&w, pbuf, sizeof(pbuf));
	/* compat: mosquitto 2.0 puts Maximum QoS into every v5 CONNACK, a
	 * refusal too (its other CONNACK properties only into an accepting one). */
	if (version == MQTT_V5 && c->l->conf->max_qos < 2)
		mqtt_pw_byte(&w, MQTT_PROP_MAXIMUM_QOS, (uint8_t)c->l->conf->max_qos);
	send_connack(c, version == MQTT_V5 ? MQTT_V5 : MQTT_V311, false, rc, (struct mqtt_str){pbuf, (uint32_t)w.len});
	char *id = k->client_id.len ? str_dup(k->client_id) : NULL;
	char *user = k->has_username && k->username.len ? str_dup(k->username) : NULL;
	struct log_ev ev = {.event = "connect_refused", .client_id = id, .address = net_conn_peer(c->conn),
			    .username = user, .reason = log_reason, .protocol = k->version,
			    .has_protocol = k->version != 0};
	log_event(c->b, LOG_F_NOTICE, &ev, "Client %s refused: %s.", net_conn_peer(c->conn), log_reason);
	free(id);
	free(user);
	/* compat: then mosquitto 2.0.11's own line for the close, which people grep for */
	bool auth = version == MQTT_V5 ? (v5rc == 0x86 || v5rc == 0x87) : (v3rc == V3_BAD_AUTH || v3rc == V3_NOT_AUTHORIZED);
	if (auth)
		log_msg(c->b, LOG_F_NOTICE, "Client <unknown> disconnected, not authorised.");
	else if ((version == MQTT_V5 ? v5rc : v3rc) != (version == MQTT_V5 ? 0x97 : 3))
		log_msg(c->b, LOG_F_NOTICE, "Client <unknown> disconnected due to protocol error.");
	client_close(c, 0, false, false, NULL);
	return 0;
}

static char *str_dup(struct mqtt_str s)
{
	char *p = malloc((size_t)s.len + 1);
	if (!p)
		return NULL;
	if (s.len)
		memcpy(p, s.p, s.len);
	p[s.len] = 0;
	return p;
}

/* auto_id_prefix + a random UUID-shaped id, as mosquitto 2.0 makes them. */
static char *make_auto_id(const char *prefix)
{
	uint8_t r[16];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return NULL;
	char hex[40];
	snprintf(hex, sizeof(hex), "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", r[0],
		 r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
	size_t n = strlen(prefix) + strlen(hex) + 1;
	char *id = malloc(n);
	if (id)
		snprintf(id, n, "%s%s", prefix, hex);
	return id;
}

/* Build the will message from CONNECT (topic, QoS and retain already
 * checked). MQTT_RC_PACKET_TOO_LARGE: the payload exceeds
 * message_size_limit (as mosquitto, which applies it to wills too). */
static int make_will(struct client *c, const struct mqtt_connect *k, struct will **out)
{
	struct broker *b = c->b;
	uint8_t pbuf[1024];
	uint8_t *big = NULL;
	struct mqtt_pw w;
	struct mqtt_str props = {0};
	const char *mp = c->l->conf->mount_point;

	*out = NULL;
	if (!mqtt_topic_name_valid(k->will_topic))
		return MQTT_RC_TOPIC_NAME_INVALID; /* v311 MQTT-3.1.3-10, v5 MQTT-3.1.3-11 */
	if (b->cfg->message_size_limit && k->will_payload.len > b->cfg->message_size_limit)
		return MQTT_RC_PACKET_TOO_LARGE;
	if (k->version == MQTT_V5 && k->will_props.raw.len) {
		uint64_t drop = MQTT_PBIT(MQTT_PROP_WILL_DELAY) | MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY);
		mqtt_pw_init(&w, pbuf, sizeof(pbuf));
		mqtt_pw_copy_except(&w, k->will_props.raw, drop);
		if (w.overflow) {
			big = malloc(w.len);
			if (!big)
				return 0x97;
			mqtt_pw_init(&w, big, w.len);
			mqtt_pw_copy_except(&w, k->will_props.raw, drop);
		}
		props = (struct mqtt_str){w.buf, (uint32_t)w.len};
		if ((k->will_props.present & MQTT_PBIT(MQTT_PROP_PAYLOAD_FORMAT)) && k->will_props.payload_format == 1 &&
		    !mqtt_utf8_valid(k->will_payload.p, k->will_payload.len)) {
			free(big);
			return 0x99; /* Payload format invalid */
		}
	}
	char tbuf[256], *full = NULL;
	const char *t = topic_join(mp, k->will_topic, tbuf, sizeof(tbuf), &full);
	if (!t) {
		free(big);
		return 0x97;
	}
	struct mqtt_str topic = mqtt_cstr(t);
	struct will *wl = calloc(1, sizeof(*wl));
	if (wl)
		wl->msg = message_new(&c->b->mem, topic, k->will_payload, props, k->will_qos, k->will_retain, NULL, NULL);
	free(big);
	free(full);
	if (!wl || !wl->msg) {
		free(wl);
		return 0x97;
	}
	if (k->will_props.present & MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY)) {
		wl->has_expiry = true; /* counted from publication */
		wl->expiry = k->will_props.message_expiry;
	}
	wl->delay = (k->will_props.present & MQTT_PBIT(MQTT_PROP_WILL_DELAY)) ? k->will_props.will_delay : 0;
	*out = wl;
	return 0;
}

/* "MQTT" or "MQIsdp" at the start of CONNECT's variable header. */
static bool known_protocol_name(const struct mqtt_frame *f)
{
	if (f->len < 2)
		return false;
	size_t n = ((size_t)f->body[0] << 8) | f->body[1];
	if (f->len < 2 + n)
		return false;
	return (n == 4 && memcmp(f->body + 2, "MQTT", 4) == 0) || (n == 6 && memcmp(f->body + 2, "MQIsdp", 6) == 0);
}

static void free_will(struct will *w)
{
	if (!w)
		return;
	message_unref(&w->msg);
	free(w);
}

int connect_handle(struct client *c, const struct mqtt_frame *f)
{
	struct broker *b = c->b;
	const struct config *cfg = b->cfg;
	const struct listener_conf *lc = c->l->conf;
	struct mqtt_connect k;
	struct will *will = NULL;
	char *id = NULL, *username = NULL;
	bool assigned = false;
	b->st.connects_received++;
	int rc;

	memset(&k, 0, sizeof(k));
	rc = mqtt_connect_decode(f, &k);
	c->bridge_peer = k.bridge; /* compat: mosquitto's bridge bit (try_private), see subscribe.c */
	if (rc == MQTT_RC_UNSUPPORTED_VERSION && !known_protocol_name(f)) {
		/* compat: as mosquitto, an unknown protocol name gets no CONNACK. */
		struct log_ev ev = {.event = "connect_refused", .address = net_conn_peer(c->conn),
				    .reason = "unknown protocol name"};
		log_event(c->b, LOG_F_NOTICE, &ev, "Client %s refused: unknown protocol name.", net_conn_peer(c->conn));
		return MQTT_RC_PROTOCOL_ERROR;
	}
	if (rc == MQTT_RC_UNSUPPORTED_VERSION) {
		/* v311 MQTT-3.1.2-2: CONNACK 0x01 then close; v5 0x84. */
		return refuse(c, &k, k.version == MQTT_V5 ? MQTT_V5 : MQTT_V311, V3_BAD_VERSION, 0x84,
			      "unsupported protocol version");
	}
	if (rc) {
		if (k.version == MQTT_V5) /* v5 MQTT-3.1.4-1 / 4.13: CONNACK with the reason, then close */
			return refuse(c, &k, MQTT_V5, 0, (uint8_t)rc, mqtt_rc_name((uint8_t)rc));
		return rc; /* v311 MQTT-3.1.4-1: close without CONNACK */
	}
	c->version = k.version;
	if (k.version == MQTT_V5 && (k.props.present & MQTT_PBIT(MQTT_PROP_MAXIMUM_PACKET_SIZE)))
		c->max_packet_out = k.props.maximum_packet_size; /* before any CONNACK (MQTT-3.1.2-24) */

	/* The order of the checks below is mosquitto 2.0.11's, so that a CONNECT
	 * with several faults gets the same answer: will QoS / retain, empty
	 * client id, the will itself, authentication, use_username_as_clientid. */
	if (k.will && k.will_retain && !cfg->retain_available) {
		if (k.version != MQTT_V5)
			return MQTT_RC_PROTOCOL_ERROR; /* compat: v3 closes without CONNACK */
		return refuse(c, &k, MQTT_V5, 0, 0x9A, "will retain not supported"); /* v5 MQTT-3.2.2-13 */
	}
	if (k.will && k.will_qos > lc->max_qos) {
		if (k.version != MQTT_V5)
			return MQTT_RC_PROTOCOL_ERROR; /* compat: v3 closes without CONNACK */
		return refuse(c, &k, MQTT_V5, 0, MQTT_RC_QOS_NOT_SUPPORTED, "will QoS not supported"); /* v5 MQTT-3.2.2-12 */
	}

	/* ---- empty client identifier (decided before authentication) ---- */
	if (k.client_id.len == 0) {
		if (k.version == MQTT_V31)
			return refuse(c, &k, k.version, V3_ID_REJECTED, 0x85, "empty client id (MQTT 3.1)");
		if (k.version == MQTT_V311 && !k.clean_start) /* v311 MQTT-3.1.3-8 */
			return refuse(c, &k, k.version, V3_ID_REJECTED, 0x85, "empty client id without clean session");
		if (!c->l->sec->allow_zero_length_clientid) /* compat: v5 0x85 (mosquitto 0x80) */
			return refuse(c, &k, k.version, V3_ID_REJECTED, 0x85, "empty client id not allowed");
		assigned = true; /* v311 MQTT-3.1.3-6, v5 MQTT-3.1.3-6: the server assigns one */
	}

	/* ---- the will ---- */
	if (k.will) {
		rc = make_will(c, &k, &will);
		if (rc == MQTT_RC_PACKET_TOO_LARGE) /* compat: v3 0x05 as mosquitto; v5 0x95 */
			return refuse(c, &k, k.version, V3_NOT_AUTHORIZED, 0x95, "will payload above message_size_limit");
		if (rc) {
			if (k.version == MQTT_V5)
				return refuse(c, &k, MQTT_V5, 0, (uint8_t)rc, "invalid will");
			return MQTT_RC_PROTOCOL_ERROR; /* v3: close */
		}
	}

	/* Enhanced authentication is not offered (v5 4.12). */
	if (k.version == MQTT_V5 && (k.props.present & MQTT_PBIT(MQTT_PROP_AUTH_METHOD))) {
		rc = refuse(c, &k, MQTT_V5, 0, 0x8C, "unsupported authentication method");
		goto out;
	}

	/* ---- who is it? (security.c decides; compat: as mosquitto 2.0.11) ---- */
	if (security_uses_tls_identity(c->l)) {
		/* The certificate (or PSK) identity is the user name; the CONNECT's
		 * user name and password are ignored. None: v3 0x04, v5 0x86. */
		const char *u = security_tls_identity(c->l, c->conn);
		username = u ? strdup(u) : NULL;
		if (!u) {
			rc = refuse(c, &k, k.version, V3_BAD_AUTH, 0x86, "no certificate identity");
			goto out;
		}
		if (!username)
			goto nomem;
	} else {
		/* compat: a zero-length user name is no user name (anonymous). */
		if (k.has_username && k.username.len && !(username = str_dup(k.username)))
			goto nomem;
		if (!security_password_ok(c->l, username, k.password.p, k.has_password ? k.password.len : 0)) {
			/* v3 0x05, v5 0x87 Not authorized (MQTT-3.1.4-2), as mosquitto */
			rc = refuse(c, &k, k.version, V3_NOT_AUTHORIZED, 0x87,
				    username ? "bad user name or password" : "anonymous access not allowed");
			goto out;
		}
	}
	if (lc->use_username_as_clientid && !username) {
		rc = refuse(c, &k, k.version, V3_NOT_AUTHORIZED, 0x87, "no user name for use_username_as_clientid");
		goto out;
	}

	/* ---- client identifier ---- */
	if (lc->use_username_as_clientid && username)
		id = strdup(username); /* compat: an empty id still gets it as Assigned Client Identifier */
	else if (assigned)
		id = make_auto_id(c->l->sec->auto_id_prefix ? c->l->sec->auto_id_prefix : "auto-");
	else
		id = str_dup(k.client_id);
	if (!id)
		goto nomem;
	struct session *owned = session_find(b, id);
	if (owned && owned->bridge_owned) { /* compat: mosquitto lets a client take a bridge's session over */
		rc = refuse(c, &k, k.version, V3_ID_REJECTED, 0x85, "client id of a bridge's local side");
		goto out;
	}

	/* ---- a persistent session may live on another cluster node (cluster/csession.c):
	 * the CONNECT waits, and runs again once the session is here (or is known not to be) ---- */
	if (cluster_connect_hold(b, c, id, k.clean_start, f)) {
		rc = 0;
		goto out;
	}

	/* ---- keepalive (v5 MQTT-3.2.2-21/22) ---- */
	bool server_ka = false;
	c->keepalive = k.keepalive;
	if (k.version == MQTT_V5 && cfg->max_keepalive && (k.keepalive > cfg->max_keepalive || k.keepalive == 0)) {
		/* compat: as mosquitto 2.0, v5 clients asking for 0 also get the cap. */
		c->keepalive = (uint16_t)cfg->max_keepalive;
		server_ka = true;
	}
	/* compat: v3.x clients above max_keepalive keep their value, as in
	 * mosquitto 2.0.11 (there is no way to tell them otherwise). */

	/* ---- v5 limits the client asked for (Maximum Packet Size: above) ---- */
	c->receive_max_out = 65535;
	if (k.version == MQTT_V5) {
		if (k.props.present & MQTT_PBIT(MQTT_PROP_RECEIVE_MAXIMUM))
			c->receive_max_out = k.props.receive_maximum;
		if (k.props.present & MQTT_PBIT(MQTT_PROP_REQUEST_PROBLEM_INFO))
			c->request_problem_info = k.props.request_problem_info != 0;
		c->alias_max_in = (uint16_t)lc->max_topic_alias;
		if (c->alias_max_in) {
			c->aliases = calloc((size_t)c->alias_max_in + 1, sizeof(char *));
			if (!c->aliases)
				goto nomem;
		}
	}

	/* ---- session: takeover, resume or new ---- */
	struct session *s = session_find(b, id);
	if (s && s->client) {
		struct client *old = s->client;
		struct log_ev ev = {.event = "disconnect", .client_id = id, .address = net_conn_peer(old->conn),
				    .username = old->username, .reason = "session taken over"};
		log_event(b, LOG_F_NOTICE, &ev, "Client %s already connected, closing old connection.", id);
		/* v5 MQTT-3.1.4-3: DISCONNECT 0x8E; the old connection's will is
		 * published (v311 MQTT-3.1.2-8) unless the session resumes before
		 * its will delay. */
		client_close(old, 0x8E, true, false, "Session taken over");
		s = session_find(b, id); /* detach may have ended it */
	}
	bool present = false;
	uint32_t expiry;
	if (k.version == MQTT_V5)
		expiry = (k.props.present & MQTT_PBIT(MQTT_PROP_SESSION_EXPIRY)) ? k.props.session_expiry : 0;
	else if (k.clean_start)
		expiry = 0;
	else
		expiry = cfg->persistent_client_expiration < 0 ? UINT32_MAX
							       : (uint32_t)(cfg->persistent_client_expiration > UINT32_MAX - 1
										? UINT32_MAX - 1
										: cfg->persistent_client_expiration);
	if (s && k.clean_start) {
		/* A will still waiting for its delay is discarded: a new connection
		 * for the client id came first (v5 MQTT-3.1.2-8, MQTT-3.1.3-9). */
		session_clear_will(s);
		session_destroy(s);
		s = NULL;
	}
	if (s) {
		present = true; /* v311 MQTT-3.2.2-2, v5 MQTT-3.2.2-2 */
		wheel_cancel(&b->wheel, &s->expiry_timer);
		if (s->will) {
			/* v5 MQTT-3.1.3-9: reconnected within the will delay. */
			session_clear_will(s);
		}
	} else {
		s = session_new(b, id);
		if (!s)
			goto nomem;
	}
	s->expiry = expiry;
	s->version = k.version;
	s->listener = c->l;
	free(s->username);
	s->username = username ? strdup(username) : NULL;
	if (will) {
		s->will = will;
		will = NULL;
		store_will_set(b, s);
	}
	s->client = c;
	store_session_saved(b, s); /* before CONNACK (session present) leaves */
	c->s = s;
	c->id = s->id; /* free(id) below: the session holds the id */
	c->username = username;
	username = NULL;
	cluster_session_attached(b, s); /* takeover on other nodes; the will cluster-wide */
	if (k.has_password && k.password.len && !security_uses_tls_identity(c->l)) {
		/* compat: as mosquitto, a reload re-checks connected clients
		 * (also against a password_file the reload adds). */
		c->password = malloc(k.password.len);
		if (c->password) {
			memcpy(c->password, k.password.p, k.password.len);
			c->password_len = (uint16_t)k.password.len;
		}
	}
	c->clean_start = k.clean_start;
	c->state = CS_CONNECTED;
	b->st.clients_connected++;
	b->st.clients_total++;

	/* ---- CONNACK ---- */
	uint8_t pbuf[512];
	struct mqtt_pw w;
	mqtt_pw_init(&w, pbuf, sizeof(pbuf));
	if (k.version == MQTT_V5) {
		if (lc->max_topic_alias > 0)
			mqtt_pw_u16(&w, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, (uint16_t)lc->max_topic_alias);
		if (server_ka)
			mqtt_pw_u16(&w, MQTT_PROP_SERVER_KEEP_ALIVE, c->keepalive);
		if (assigned)
			mqtt_pw_str(&w, MQTT_PROP_ASSIGNED_CLIENT_ID, mqtt_cstr(c->id)); /* v5 MQTT-3.2.2-16 */
		if (!cfg->retain_available)
			mqtt_pw_byte(&w, MQTT_PROP_RETAIN_AVAILABLE, 0);
		if (cfg->max_packet_size)
			mqtt_pw_u32(&w, MQTT_PROP_MAXIMUM_PACKET_SIZE, cfg->max_packet_size);
		if (cfg->max_inflight_messages > 0 && cfg->max_inflight_messages < 65535)
			mqtt_pw_u16(&w, MQTT_PROP_RECEIVE_MAXIMUM, (uint16_t)cfg->max_inflight_messages);
		if (lc->max_qos < 2)
			mqtt_pw_byte(&w, MQTT_PROP_MAXIMUM_QOS, (uint8_t)lc->max_qos);
	}
	if (cfg->connection_messages) {
		char ubuf[300] = "";
		if (c->username)
			snprintf(ubuf, sizeof(ubuf), ", u'%s'", c->username);
		struct log_ev ev = {.event = "connect", .client_id = c->id, .address = net_conn_peer(c->conn),
				    .username = c->username, .keepalive = k.keepalive, .has_keepalive = true,
				    .protocol = k.version, .has_protocol = true};
		log_event(b, LOG_F_NOTICE, &ev, "New %s connected from %s as %s (p%d, c%d, k%u%s).",
			  c->bridge_peer ? "bridge" : "client", net_conn_peer(c->conn), c->id,
			  k.version == MQTT_V5 ? 5 : k.version == MQTT_V311 ? 2 : 1, k.clean_start ? 1 : 0, k.keepalive,
			  ubuf);
	}
	/* MQTT 3.1's CONNACK has no Session Present flag (its first byte is
	 * reserved); v311 MQTT-3.2.2-2, v5 MQTT-3.2.2-2 from level 4 on. */
	if (!send_connack(c, k.version == MQTT_V31 ? MQTT_V311 : k.version, present && k.version != MQTT_V31, 0,
			  (struct mqtt_str){pbuf, w.overflow ? 0 : (uint32_t)w.len})) {
		/* v5 MQTT-3.1.2-24: too big for the client. compat: as mosquitto,
		 * the CONNECT was accepted, so the connection ends as a network
		 * failure would (the will is published, the session kept). */
		struct log_ev ev = {.event = "disconnect", .client_id = c->id, .address = net_conn_peer(c->conn),
				    .username = c->username, .reason = "oversize packet"};
		log_event(b, LOG_F_NOTICE, &ev, "Client %s disconnected due to oversize packet.", c->id);
		client_close(c, 0, true, false, NULL);
		rc = 0;
		goto out;
	}
	client_start_keepalive(c);
	deliver_resume(s);
	rc = 0;
	goto out;

nomem:
	rc = refuse(c, &k, k.version, 3 /* server unavailable */, 0x97, "out of memory");
out:
	free_will(will);
	free(id);
	free(username);
	return rc;
}
