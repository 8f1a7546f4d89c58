/*
 * broker/broker.c — the broker's lifetime: init, listeners, one loop pass,
 * reload, shutdown.
 *
 * One loop pass sleeps until the timing wheel's next deadline (rounded up to
 * the millisecond, so a timer never fires early), then runs what is due.
 * Between deadlines an idle broker does no work at all: there is no periodic
 * sweep over sessions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "broker.h"

int broker_init(struct broker *b, struct config *cfg, struct net_loop *loop)
{
	memset(b, 0, sizeof(*b));
	b->cfg = cfg;
	b->loop = loop;
	b->start_mono = net_now_update(loop);
	mem_init(&b->mem, cfg->memory_limit);
	net_loop_set_mem_hook(loop, mem_note, &b->mem); /* connection buffers count too */
	wheel_init(&b->wheel, b->start_mono);
	b->subs = subtree_new();
	b->retained = retain_new();
	if (!b->subs || !b->retained)
		return -1;
	log_init(b);
	return 0;
}

static void drop_retained(void *v)
{
	struct message *m = v;
	message_unref(&m);
}

static void listener_free_auth(struct broker *b, struct listener *l)
{
	/* Shared (global) auth objects are owned by listeners[0]'s slot
	 * when per_listener_settings is false; free each object once. */
	for (size_t i = 0; i < (size_t)(l - b->listeners); i++) {
		if (b->listeners[i].pw == l->pw)
			l->pw = NULL;
		if (b->listeners[i].acl == l->acl)
			l->acl = NULL;
		if (b->listeners[i].psk == l->psk)
			l->psk = NULL;
	}
	auth_pw_free(l->pw);
	auth_acl_free(l->acl);
	auth_psk_free(l->psk);
}

void broker_fini(struct broker *b)
{
	session_destroy_all(b);
	for (size_t i = b->n_listeners; i-- > 0;) {
		struct listener *l = &b->listeners[i];
		if (l->nl)
			net_listener_close(l->nl);
		listener_free_auth(b, l);
	}
	for (size_t i = 0; i < b->n_listeners; i++)
		net_tls_free(b->listeners[i].tls);
	free(b->listeners);
	subtree_free(b->subs);
	retain_free(b->retained, drop_retained);
	sub_match_free(&b->match);
	log_close(b);
	mem_fini(&b->mem);
}

static int psk_lookup(const char *identity, uint8_t *key, size_t cap, void *user)
{
	struct listener *l = user;
	return l->psk ? auth_psk_lookup(l->psk, identity, key, cap) : -1;
}

static void tls_opts(const struct listener_conf *lc, struct listener *l, struct net_tls_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->cafile = lc->cafile;
	o->capath = lc->capath;
	o->certfile = lc->certfile;
	o->keyfile = lc->keyfile;
	o->tls_version = lc->tls_version;
	o->ciphers = lc->ciphers;
	o->ciphers_tls13 = lc->ciphers_tls13;
	o->crlfile = lc->crlfile;
	o->dhparamfile = lc->dhparamfile;
	o->psk_hint = lc->psk_hint;
	o->require_certificate = lc->require_certificate;
	if (l->psk) {
		o->psk_lookup = psk_lookup;
		o->psk_user = l;
	}
}

/* Load password / ACL / PSK files for one security block. */
static int load_security(struct listener *l, const struct security_conf *sec, char *err, size_t errlen)
{
	if (sec->password_file && !(l->pw = auth_pw_load(sec->password_file, err, errlen)))
		return -1;
	if (sec->acl_file && !(l->acl = auth_acl_load(sec->acl_file, err, errlen)))
		return -1;
	if (sec->psk_file && !(l->psk = auth_psk_load(sec->psk_file, err, errlen)))
		return -1;
	return 0;
}

/* websockets_log_level: libwebsockets' lines go to the log as type
 * "websockets" (as mosquitto's log_wrap), without lws's newline. */
static void ws_log_line(void *user, const char *line)
{
	size_t n = strlen(line);
	log_msg(user, LOG_F_WEBSOCKETS, "%.*s", (int)(n && line[n - 1] == '\n' ? n - 1 : n), line);
}

/* Prefix err with where the listener was configured ("file:line: listener
 * 8883: "), so a certificate or address that fails names its line. */
static int listener_err(const struct listener_conf *lc, char *err, size_t errlen)
{
	if (!lc->file || !errlen)
		return -1;
	char *was = strdup(err);
	if (was) {
		snprintf(err, errlen, "%s:%d: listener %d%s%s: %s", lc->file, lc->line, lc->port,
			 lc->unix_path ? " " : "", lc->unix_path ? lc->unix_path : "", was);
		free(was);
	}
	return -1;
}

int broker_listen(struct broker *b, char *err, size_t errlen)
{
	const struct config *cfg = b->cfg;
	b->listeners = calloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof(struct listener));
	if (!b->listeners) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < cfg->n_listeners; i++) {
		struct listener *l = &b->listeners[i];
		const struct listener_conf *lc = &cfg->listeners[i];
		l->b = b;
		l->conf = lc;
		l->sec = config_security(cfg, lc);
		b->n_listeners = i + 1;
		if (cfg->per_listener_settings || i == 0) {
			if (load_security(l, l->sec, err, errlen))
				return cfg->per_listener_settings ? listener_err(lc, err, errlen) : -1;
		} else {
			l->pw = b->listeners[0].pw;
			l->acl = b->listeners[0].acl;
			l->psk = b->listeners[0].psk;
		}
		if (lc->certfile || lc->psk_hint || (l->psk && lc->psk_hint)) {
			struct net_tls_opts o;
			tls_opts(lc, l, &o);
			l->tls = net_tls_new(&o, err, errlen);
			if (!l->tls)
				return listener_err(lc, err, errlen);
		}
		if (lc->http_api)
			continue; /* opened by api_start (broker/api/) with the security and TLS loaded here */
		struct net_listen_opts lo = {
			.bind_address = lc->bind_address,
			.bind_interface = lc->bind_interface,
			.port = lc->port,
			.unix_path = lc->unix_path,
			.family = lc->family,
			.kind = lc->websockets ? NET_WEBSOCKETS : NET_TCP,
			.tls = l->tls,
			.ws_http_dir = lc->http_dir,
			.ws_headers_size = cfg->websockets_headers_size,
			.ws_log_level = cfg->websockets_log_level,
			.ws_log = ws_log_line,
			.ws_log_user = b,
		};
		l->nl = net_listen(b->loop, &lo, client_accept, l, err, errlen);
		if (!l->nl && lc->bind_optional) {
			/* e.g. ::1 in local only mode on a host without IPv6 */
			log_msg(b, LOG_F_WARNING, "Warning: %s (optional listener skipped).", err);
			continue;
		}
		if (!l->nl)
			return listener_err(lc, err, errlen);
		if (lc->unix_path)
			log_msg(b, LOG_F_NOTICE, "Opening unix listen socket on %s.", lc->unix_path);
		else
			log_msg(b, LOG_F_NOTICE, "Opening %s%s listen socket on %s port %d.",
				lc->websockets ? "websockets " : "", l->tls ? "TLS" : "TCP",
				lc->bind_address ? lc->bind_address : "all addresses", net_listener_port(l->nl));
	}
	return 0;
}

/* After a reload: connected clients whose credentials no longer pass are
 * disconnected (compat: mosquitto 2.0.11 does the same, although its man
 * page says otherwise): a removed user, a changed password, a removed
 * password_file while allow_anonymous is false, an anonymous client once
 * allow_anonymous is false. The same decision as at CONNECT
 * (security_password_ok). Certificate identities are left to the TLS layer. */
static void recheck_clients(struct broker *b)
{
	for (struct client *c = b->clients, *n; c; c = n) {
		n = c->next_all;
		const struct listener *l = c->l;
		if (c->state != CS_CONNECTED || security_uses_tls_identity(l))
			continue;
		if (!security_password_ok(l, c->username, c->password, c->password_len)) {
			log_msg(b, LOG_F_NOTICE, "Client %s disconnected: credentials no longer valid after reload.",
				c->id);
			client_close(c, 0x87, true, false, NULL); /* v5: Not authorized */
		}
	}
}

/* Reload one security block into l (the previous objects are freed by the
 * caller once nothing refers to them). A password or PSK file that no
 * longer loads fails closed (compat: mosquitto then admits no user name /
 * PSK identity): an operator who deletes the file to revoke access must not
 * be met by the old users. An ACL file that no longer loads keeps its
 * previous rules (mosquitto drops them all, allowing everything:
 * mosquitto-compat.md). */
static void reload_security(struct broker *b, struct listener *l)
{
	char err[512];
	const struct security_conf *sec = l->sec;
	struct auth_pw *pw = NULL;
	struct auth_psk *psk = NULL;
	struct auth_acl *acl = NULL;

	if (sec->password_file && !(pw = auth_pw_load(sec->password_file, err, sizeof(err)))) {
		log_msg(b, LOG_F_ERROR, "Error: %s; no user name is accepted until the password file loads.", err);
		pw = auth_pw_empty();
	}
	if (sec->psk_file && !(psk = auth_psk_load(sec->psk_file, err, sizeof(err)))) {
		log_msg(b, LOG_F_ERROR, "Error: %s; no PSK identity is accepted until the PSK file loads.", err);
		psk = auth_psk_empty();
	}
	if (sec->acl_file && !(acl = auth_acl_load(sec->acl_file, err, sizeof(err)))) {
		log_msg(b, LOG_F_ERROR, "Error: %s; keeping the previous ACL rules.", err);
		acl = l->acl;
	}
	if ((sec->password_file && !pw) || (sec->psk_file && !psk)) {
		/* no memory even for an empty table: keep everything as it was
		 * rather than fall back to "no password_file" */
		log_msg(b, LOG_F_ERROR, "Error: out of memory reloading security files; keeping the previous ones.");
		auth_pw_free(pw);
		auth_psk_free(psk);
		if (acl != l->acl)
			auth_acl_free(acl);
		return;
	}
	l->pw = pw;
	l->psk = psk;
	l->acl = acl;
}

/* Is p still used by a listener, or an earlier entry of old[0..i)? */
static bool auth_in_use(const struct broker *b, const struct listener *old, size_t i, const void *p)
{
	for (size_t j = 0; j < b->n_listeners; j++) {
		const struct listener *l = &b->listeners[j];
		if ((const void *)l->pw == p || (const void *)l->acl == p || (const void *)l->psk == p)
			return true;
	}
	for (size_t j = 0; j < i; j++)
		if ((const void *)old[j].pw == p || (const void *)old[j].acl == p || (const void *)old[j].psk == p)
			return true;
	return false;
}

void broker_reload(struct broker *b)
{
	char err[512];
	log_msg(b, LOG_F_NOTICE, "Reloading password, ACL and TLS files.");
	b->mem.limit = b->cfg->memory_limit; /* reloaded, as mosquitto */
	struct listener *old = calloc(b->n_listeners ? b->n_listeners : 1, sizeof(*old));
	if (!old) {
		log_msg(b, LOG_F_ERROR, "Error: out of memory; password, ACL and PSK files not reloaded.");
	} else {
		memcpy(old, b->listeners, b->n_listeners * sizeof(*old));
		for (size_t i = 0; i < b->n_listeners; i++) {
			struct listener *l = &b->listeners[i];
			/* per_listener_settings is reloadable: re-pick the block */
			l->sec = config_security(b->cfg, l->conf);
			if (!b->cfg->per_listener_settings && i > 0) {
				l->pw = b->listeners[0].pw;
				l->acl = b->listeners[0].acl;
				l->psk = b->listeners[0].psk;
			} else {
				reload_security(b, l);
			}
		}
		for (size_t i = 0; i < b->n_listeners; i++) {
			if (old[i].pw && !auth_in_use(b, old, i, old[i].pw))
				auth_pw_free(old[i].pw);
			if (old[i].acl && !auth_in_use(b, old, i, old[i].acl))
				auth_acl_free(old[i].acl);
			if (old[i].psk && !auth_in_use(b, old, i, old[i].psk))
				auth_psk_free(old[i].psk);
		}
		free(old);
	}
	for (size_t i = 0; i < b->n_listeners; i++) {
		struct listener *l = &b->listeners[i];
		if (l->tls) {
			struct net_tls_opts o;
			tls_opts(l->conf, l, &o);
			if (net_tls_reload(l->tls, &o, err, sizeof(err)))
				log_msg(b, LOG_F_ERROR, "Error reloading TLS for listener %d: %s.", l->conf->port, err);
		}
	}
	recheck_clients(b);
}

int broker_run_once(struct broker *b)
{
	int timeout = -1;
	uint64_t next = wheel_next(&b->wheel), due = store_due(b);
	if (due < next)
		next = due; /* held-back store rows are written by the next pass's hook */
	if (next != UINT64_MAX) {
		uint64_t now = net_now_update(b->loop);
		timeout = next <= now ? 0 : (next - now > 60000 ? 60000 : (int)(next - now));
	}
	int n = net_loop_run_once(b->loop, timeout);
	wheel_run(&b->wheel, broker_now(b));
	return n;
}

void broker_shutdown(struct broker *b)
{
	if (b->stopping)
		return;
	b->stopping = true;
	log_msg(b, LOG_F_NOTICE, "vigil version %s terminating", VIGIL_VERSION);
	for (size_t i = 0; i < b->n_listeners; i++) {
		if (b->listeners[i].nl) {
			net_listener_close(b->listeners[i].nl);
			b->listeners[i].nl = NULL;
		}
	}
	for (struct client *c = b->clients, *n; c; c = n) {
		n = c->next_all;
		/* v5: 0x8B Server shutting down. The will is not published: the
		 * network did not fail (compat: as mosquitto). */
		client_close(c, 0x8B, false, false, NULL);
	}
}
