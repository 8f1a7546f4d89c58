/*
 * broker/config_bridge.h — private to config.c (included by config_kw.h):
 * the bridge keywords of mosquitto.conf(5) "Configuring Bridges".
 *
 * A "connection NAME" line opens a bridge section; every bridge keyword
 * after it (until the next "connection") configures that bridge, whatever
 * listener lines come in between, as mosquitto. A bridge keyword before any
 * connection line is an error naming file and line. Defaults are
 * mosquitto 2.0.11's (keepalive 60, restart backoff 5..30 s, try_private
 * true, cleansession false, notifications true, protocol mqttv311, ...);
 * the derived ones (remote_clientid "HOSTNAME.NAME", local_clientid
 * "local." + remote_clientid, the notification topic) are filled in by
 * bridge_conf_finish. Not here: the bridge's behaviour (broker/bridge/).
 */
#ifndef VIGIL_CONFIG_BRIDGE_H
#define VIGIL_CONFIG_BRIDGE_H

#include <unistd.h>

static void bridge_topic_free(struct bridge_topic *t)
{
	free(t->pattern);
	free(t->local_prefix);
	free(t->remote_prefix);
	free(t->local_topic);
	free(t->remote_topic);
}

static void bridge_conf_free(struct bridge_conf *b)
{
	for (size_t i = 0; i < b->n_addrs; i++)
		free(b->addrs[i].host);
	free(b->addrs);
	for (size_t i = 0; i < b->n_topics; i++)
		bridge_topic_free(&b->topics[i]);
	free(b->topics);
	char *s[] = {b->name, b->file, b->local_clientid, b->remote_clientid, b->remote_username, b->remote_password,
		     b->local_username, b->local_password, b->notification_topic, b->cafile, b->capath, b->certfile,
		     b->keyfile, b->tls_version, b->alpn, b->psk_identity, b->psk, b->bind_address};
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		free(s[i]);
	memset(b, 0, sizeof(*b));
}

static void bridge_conf_free_all(struct config *c)
{
	for (size_t i = 0; i < c->n_bridges; i++)
		bridge_conf_free(&c->bridges[i]);
	free(c->bridges);
	c->bridges = NULL;
	c->n_bridges = 0;
}

/* The bridge being configured, or an error naming the keyword. */
static struct bridge_conf *cur_bridge(struct pfile *f, const struct kw *k)
{
	struct config *c = f->p->c;
	if (c->n_bridges == 0) {
		perr(f, "%s: only valid in a bridge section (after a 'connection' line)", k->name);
		return NULL;
	}
	return &c->bridges[c->n_bridges - 1];
}

static int h_connection(struct pfile *f, const struct kw *k, char *args)
{
	struct config *c = f->p->c;
	char *w = one_word(f, k, &args);
	if (!w)
		return -1;
	for (size_t i = 0; i < c->n_bridges; i++)
		if (!strcmp(c->bridges[i].name, w))
			return perr(f, "connection: duplicate bridge name '%s' (first at %s:%d)", w, c->bridges[i].file,
				    c->bridges[i].line);
	struct bridge_conf *v = realloc(c->bridges, (c->n_bridges + 1) * sizeof(*v));
	if (!v)
		return oom(f);
	c->bridges = v;
	struct bridge_conf *b = &v[c->n_bridges];
	memset(b, 0, sizeof(*b));
	b->name = strdup(w);
	b->file = strdup(f->name);
	if (!b->name || !b->file) {
		bridge_conf_free(b);
		return oom(f);
	}
	c->n_bridges++;
	b->line = f->line;
	b->protocol = 4;
	b->try_private = true;
	b->local_cleansession = -1;
	b->notifications = true;
	b->keepalive = 60;
	b->restart_base = 5;
	b->restart_cap = 30;
	b->idle_timeout = 60;
	b->threshold = 10;
	b->attempt_unsubscribe = true;
	b->outgoing_retain = true;
	b->tcp_user_timeout_ms = -1;
	return 0;
}

/* "host", "host:port", "[v6]:port", or a bare IPv6 literal. */
static int bridge_addr_parse(struct pfile *f, const struct kw *k, char *w, struct bridge_addr *a)
{
	static const struct kw port_kw = {"port", T_INT, 0, 0, 0, 0, 1, 65535, NULL, NULL};
	char *host = w, *port = NULL;
	if (w[0] == '[') {
		char *e = strchr(w, ']');
		if (!e || (e[1] && e[1] != ':'))
			return perr(f, "%s: invalid address '%s'", k->name, w);
		*e = 0;
		host = w + 1;
		port = e[1] ? e + 2 : NULL;
	} else {
		char *colon = strchr(w, ':');
		if (colon && !strchr(colon + 1, ':')) { /* exactly one ':' */
			*colon = 0;
			port = colon + 1;
		}
	}
	long long p = 1883;
	if (!*host)
		return perr(f, "%s: empty host name", k->name);
	if (port && parse_int(f, &port_kw, port, &p))
		return -1;
	a->host = strdup(host);
	a->port = (int)p;
	return a->host ? 0 : oom(f);
}

static int h_address(struct pfile *f, const struct kw *k, char *args)
{
	struct bridge_conf *b = cur_bridge(f, k);
	if (!b)
		return -1;
	if (b->n_addrs)
		return perr(f, "%s: duplicate address/addresses value in bridge '%s'", k->name, b->name);
	char *w;
	while ((w = word(&args)) && w[0] != '#') {
		struct bridge_addr *v = realloc(b->addrs, (b->n_addrs + 1) * sizeof(*v));
		if (!v)
			return oom(f);
		b->addrs = v;
		if (bridge_addr_parse(f, k, w, &v[b->n_addrs]))
			return -1;
		b->n_addrs++;
	}
	if (!b->n_addrs)
		return perr(f, "%s: missing value", k->name);
	return 0;
}

/* A topic prefix: "" is none; no wildcards. */
static int bridge_prefix(struct pfile *f, const char *w, char **dst)
{
	if (!strcmp(w, "\"\""))
		return 0;
	if (strpbrk(w, "+#"))
		return perr(f, "topic: invalid prefix '%s' (a prefix cannot contain '+' or '#')", w);
	*dst = strdup(w);
	return *dst ? 0 : oom(f);
}

static char *bridge_join(const char *prefix, const char *pattern)
{
	size_t a = prefix ? strlen(prefix) : 0, n = strlen(pattern);
	char *s = malloc(a + n + 1);
	if (s) {
		memcpy(s, prefix ? prefix : "", a);
		memcpy(s + a, pattern, n + 1);
	}
	return s;
}

/* A topic filter as MQTT allows it (v311 / v5 4.7.1): '#' last and alone
 * in its level, '+' alone in its level, not empty. */
static bool bridge_filter_valid(const char *t)
{
	if (!*t)
		return false;
	for (const char *p = t; *p; p++) {
		if (*p == '#' && (p[1] || (p != t && p[-1] != '/')))
			return false;
		if (*p == '+' && ((p != t && p[-1] != '/') || (p[1] && p[1] != '/')))
			return false;
	}
	return true;
}

static int h_topic(struct pfile *f, const struct kw *k, char *args)
{
	static const struct kw qos_kw = {"topic", T_INT, 0, 0, 0, 0, 0, 2, NULL, NULL};
	struct bridge_conf *b = cur_bridge(f, k);
	if (!b)
		return -1;
	char *pat = word(&args), *dir = word(&args), *qos = word(&args), *lp = word(&args), *rp = word(&args);
	if (!pat) /* "topic # both": '#' is a pattern here, not a comment */
		return perr(f, "topic: missing value");
	if (*args && *args != '#')
		return perr(f, "topic: extra text '%s'", args);
	struct bridge_topic t;
	memset(&t, 0, sizeof(t));
	if (!dir || !strcmp(dir, "out"))
		t.dir = BRIDGE_OUT;
	else if (!strcmp(dir, "in"))
		t.dir = BRIDGE_IN;
	else if (!strcmp(dir, "both"))
		t.dir = BRIDGE_BOTH;
	else
		return perr(f, "topic: invalid direction '%s' (expected in, out or both)", dir);
	long long q = 0;
	if (qos && parse_int(f, &qos_kw, qos, &q))
		return -1;
	t.qos = (int)q;
	if (lp && !rp)
		return perr(f, "topic: a local prefix needs a remote prefix too (use \"\" for none)");
	t.pattern = strdup(strcmp(pat, "\"\"") ? pat : "");
	if (!t.pattern)
		return oom(f);
	if ((lp && bridge_prefix(f, lp, &t.local_prefix)) || (rp && bridge_prefix(f, rp, &t.remote_prefix))) {
		bridge_topic_free(&t);
		return -1;
	}
	if (!t.pattern[0] && !t.local_prefix && !t.remote_prefix) {
		bridge_topic_free(&t);
		return perr(f, "topic: an empty pattern needs a local or remote prefix");
	}
	t.local_topic = bridge_join(t.local_prefix, t.pattern);
	t.remote_topic = bridge_join(t.remote_prefix, t.pattern);
	if (!t.local_topic || !t.remote_topic) {
		bridge_topic_free(&t);
		return oom(f);
	}
	if (!bridge_filter_valid(t.local_topic) || !bridge_filter_valid(t.remote_topic)) {
		perr(f, "topic: '%s' / '%s' is not a valid topic filter", t.local_topic, t.remote_topic);
		bridge_topic_free(&t);
		return -1;
	}
	struct bridge_topic *v = realloc(b->topics, (b->n_topics + 1) * sizeof(*v));
	if (!v) {
		bridge_topic_free(&t);
		return oom(f);
	}
	b->topics = v;
	v[b->n_topics++] = t;
	return 0;
}

/* Booleans, integers and strings of the current bridge: the row's offset
 * is into struct bridge_conf. */
static int h_bridge_bool(struct pfile *f, const struct kw *k, char *args)
{
	struct bridge_conf *b = cur_bridge(f, k);
	char *w;
	bool v;
	if (!b || !(w = one_word(f, k, &args)) || parse_bool(f, k, w, &v))
		return -1;
	if (k->size == sizeof(int)) {
		int iv = v;
		memcpy((char *)b + k->off, &iv, sizeof(iv));
	} else {
		memcpy((char *)b + k->off, &v, sizeof(v));
	}
	return 0;
}

static int h_bridge_int(struct pfile *f, const struct kw *k, char *args)
{
	struct bridge_conf *b = cur_bridge(f, k);
	char *w;
	long long v;
	if (!b || !(w = one_word(f, k, &args)) || parse_int(f, k, w, &v))
		return -1;
	store_int((char *)b, k, v);
	return 0;
}

static int h_bridge_str(struct pfile *f, const struct kw *k, char *args)
{
	struct bridge_conf *b = cur_bridge(f, k);
	if (!b)
		return -1;
	const char *name = k->name;
	if (!strcmp(name, "clientid") || !strcmp(name, "username") || !strcmp(name, "password"))
		pwarn(f, "option '%s' is deprecated (as in mosquitto 2.0); use 'remote_%s'", name, name);
	return set_string(f, name, (char **)(void *)((char *)b + k->off), args);
}

/* bridge_psk: hex digits, an even number of them (mosquitto: a hex key). */
static int h_bridge_psk(struct pfile *f, const struct kw *k, char *args)
{
	struct bridge_conf *b = cur_bridge(f, k);
	char *w;
	if (!b || !(w = one_word(f, k, &args)))
		return -1;
	size_t n = strlen(w);
	if (n % 2 || n > 512 || strspn(w, "0123456789abcdefABCDEF") != n)
		return perr(f, "%s: invalid value '%s' (expected an even number of hex digits, at most 512)", k->name, w);
	return set_string(f, k->name, &b->psk, w);
}

static int h_bridge_protocol(struct pfile *f, const struct kw *k, char *args)
{
	static const char *const n[] = {"mqttv31", "mqttv311", "mqttv50", NULL};
	static const int v[] = {3, 4, 5};
	struct bridge_conf *b = cur_bridge(f, k);
	int r = b ? choose(f, k, &args, n, v, "mqttv31, mqttv311 or mqttv50") : -1;
	if (r < 0)
		return -1;
	b->protocol = r;
	return 0;
}

static int h_start_type(struct pfile *f, const struct kw *k, char *args)
{
	static const char *const n[] = {"automatic", "lazy", "once", NULL};
	static const int v[] = {BRIDGE_START_AUTOMATIC, BRIDGE_START_LAZY, BRIDGE_START_ONCE};
	struct bridge_conf *b = cur_bridge(f, k);
	int r = b ? choose(f, k, &args, n, v, "automatic, lazy or once") : -1;
	if (r < 0)
		return -1;
	b->start_type = r;
	return 0;
}

/* "restart_timeout N" (constant) or "restart_timeout BASE CAP" (backoff). */
static int h_restart_timeout(struct pfile *f, const struct kw *k, char *args)
{
	struct bridge_conf *b = cur_bridge(f, k);
	if (!b)
		return -1;
	char *w1 = word(&args), *w2 = word(&args);
	long long base, cap = 0;
	if (!w1 || w1[0] == '#')
		return perr(f, "%s: missing value", k->name);
	if (w2 && w2[0] == '#')
		w2 = NULL;
	if (parse_int(f, k, w1, &base) || (w2 && parse_int(f, k, w2, &cap)))
		return -1;
	if (w2 && cap < base)
		return perr(f, "%s: the cap (%lld) is below the base (%lld)", k->name, cap, base);
	b->restart_base = (unsigned)base;
	b->restart_cap = (unsigned)cap;
	return 0;
}

/* "bridge_tcp_keepalive IDLE INTERVAL COUNT" (mosquitto 2.1), seconds. */
static int h_bridge_tcp_keepalive(struct pfile *f, const struct kw *k, char *args)
{
	struct bridge_conf *b = cur_bridge(f, k);
	if (!b)
		return -1;
	long long v[3];
	for (int i = 0; i < 3; i++) {
		char *w = word(&args);
		if (!w || w[0] == '#')
			return perr(f, "%s: expected three values: idle interval count", k->name);
		if (parse_int(f, k, w, &v[i]))
			return -1;
	}
	b->tcp_keepalive_idle = (int)v[0];
	b->tcp_keepalive_interval = (int)v[1];
	b->tcp_keepalive_count = (int)v[2];
	return 0;
}

static int h_bridge_tls_version(struct pfile *f, const struct kw *k, char *args)
{
	static const char *const n[] = {"tlsv1.3", "tlsv1.2", "tlsv1.1", NULL};
	static const int v[] = {0, 1, 2};
	struct bridge_conf *b = cur_bridge(f, k);
	int r = b ? choose(f, k, &args, n, v, "tlsv1.3, tlsv1.2 or tlsv1.1") : -1;
	if (r < 0)
		return -1;
	return set_string(f, k->name, &b->tls_version, n[r]);
}

static int hostname_dot(char *out, size_t cap, const char *name)
{
	char host[256];
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = 0;
	return snprintf(out, cap, "%s.%s", host, name) >= (int)cap ? -1 : 0;
}

static bool bridge_streq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool bridge_same(const struct bridge_conf *a, const struct bridge_conf *b)
{
	if (strcmp(a->name, b->name) || a->n_addrs != b->n_addrs || a->n_topics != b->n_topics ||
	    a->keepalive != b->keepalive || a->protocol != b->protocol || strcmp(a->remote_clientid, b->remote_clientid))
		return false;
	if (a->start_type != b->start_type || a->threshold != b->threshold || a->idle_timeout != b->idle_timeout ||
	    a->round_robin != b->round_robin || !bridge_streq(a->bind_address, b->bind_address) ||
	    !bridge_streq(a->psk_identity, b->psk_identity) || !bridge_streq(a->psk, b->psk))
		return false;
	for (size_t i = 0; i < a->n_addrs; i++)
		if (strcmp(a->addrs[i].host, b->addrs[i].host) || a->addrs[i].port != b->addrs[i].port)
			return false;
	for (size_t i = 0; i < a->n_topics; i++)
		if (strcmp(a->topics[i].local_topic, b->topics[i].local_topic) ||
		    strcmp(a->topics[i].remote_topic, b->topics[i].remote_topic) || a->topics[i].dir != b->topics[i].dir ||
		    a->topics[i].qos != b->topics[i].qos)
			return false;
	return true;
}

/* SIGHUP: bridges are not reloaded (as mosquitto 2.0.11); say so when they changed
 * (names, addresses, topics, keepalive, protocol, remote client id, start
 * type, round_robin, bind address, PSK). */
static void bridge_conf_reload_warn(const struct config *live, const struct config *fresh,
				    void (*warn)(const char *msg, void *u), void *u)
{
	bool same = live->n_bridges == fresh->n_bridges;
	for (size_t i = 0; same && i < live->n_bridges; i++)
		same = bridge_same(&live->bridges[i], &fresh->bridges[i]);
	if (!same && warn)
		warn("bridge configuration changed; restart vigil to apply it (bridges are not reloaded on SIGHUP, "
		     "as in mosquitto)", u);
}

/* After parsing: the derived defaults and the cross-option rules. */
static int bridge_conf_finish(struct config *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->n_bridges; i++) {
		struct bridge_conf *b = &c->bridges[i];
		char buf[600];
		if (!b->n_addrs) {
			snprintf(err, errlen, "%s:%d: bridge '%s' has no address", b->file, b->line, b->name);
			return -1;
		}
		if (!b->n_topics) {
			snprintf(err, errlen, "%s:%d: bridge '%s' has no topic", b->file, b->line, b->name);
			return -1;
		}
		if (b->remote_password && !b->remote_username && b->protocol != 5) {
			snprintf(err, errlen, "%s:%d: bridge '%s': remote_password needs remote_username (v3.1.1 "
					      "MQTT-3.1.2-22)", b->file, b->line, b->name);
			return -1;
		}
		if (!b->psk != !b->psk_identity) {
			snprintf(err, errlen, "%s:%d: bridge '%s': %s without %s (TLS-PSK needs both)", b->file, b->line,
				 b->name, b->psk ? "bridge_psk" : "bridge_identity", b->psk ? "bridge_identity" : "bridge_psk");
			return -1;
		}
		if (b->psk && (b->cafile || b->capath)) {
			snprintf(err, errlen, "%s:%d: bridge '%s': bridge_psk and bridge_cafile/bridge_capath exclude each "
					      "other (PSK or certificates, as in mosquitto)", b->file, b->line, b->name);
			return -1;
		}
		/* Certificate options need a CA; the version and ALPN need TLS (a CA or a PSK). */
		const char *cert_only = b->certfile ? "bridge_certfile" : b->keyfile ? "bridge_keyfile"
				      : b->insecure ? "bridge_insecure" : b->require_ocsp ? "bridge_require_ocsp" : NULL;
		const char *tls_only = b->tls_version ? "bridge_tls_version" : b->alpn ? "bridge_alpn" : NULL;
		bool has_ca = b->cafile || b->capath;
		if ((cert_only && !has_ca) || (tls_only && !has_ca && !b->psk)) {
			snprintf(err, errlen, "%s:%d: bridge '%s': %s needs bridge_cafile or bridge_capath%s (TLS is on only "
					      "with a CA%s, as in mosquitto)", b->file, b->line, b->name,
				 cert_only && !has_ca ? cert_only : tls_only, cert_only && !has_ca ? "" : " or bridge_psk",
				 cert_only && !has_ca ? "" : " or a PSK");
			return -1;
		}
		if (!b->certfile != !b->keyfile) {
			snprintf(err, errlen, "%s:%d: bridge '%s': bridge_certfile and bridge_keyfile go together", b->file,
				 b->line, b->name);
			return -1;
		}
		if (!b->remote_clientid) {
			if (hostname_dot(buf, sizeof(buf), b->name) || !(b->remote_clientid = strdup(buf)))
				goto nomem;
		}
		if (!b->local_clientid) {
			snprintf(buf, sizeof(buf), "local.%s", b->remote_clientid);
			if (!(b->local_clientid = strdup(buf)))
				goto nomem;
		}
		if (!b->notification_topic) {
			snprintf(buf, sizeof(buf), "$SYS/broker/connection/%s/state", b->remote_clientid);
			if (!(b->notification_topic = strdup(buf)))
				goto nomem;
		}
		/* compat: unset is false whatever cleansession says: mosquitto 2.0.11 queues for a down
		 * remote with cleansession true (23_bridge.py, test_cleansession_true_still_forwards_what_waited) */
		if (b->local_cleansession < 0)
			b->local_cleansession = 0;
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

#endif
