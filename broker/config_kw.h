/*
 * broker/config_kw.h — private to config.c, included once by it: the
 * keyword table and the handlers of the options that need more than a
 * field store. Kept apart so that config.c stays readable; it relies on the
 * helpers config.c defines before including it (perr, pwarn, word, ...).
 * To add an option: one row in KW[] (and a handler if its syntax is not a
 * plain bool / integer / string), one row in mosquitto-compat.md, one test.
 */
#ifndef VIGIL_CONFIG_KW_H
#define VIGIL_CONFIG_KW_H

/* ---- custom handlers ---------------------------------------------------------- */

static const struct kw *kw_find(const char *name);
static int parse_fd(struct pctx *p, FILE *fp, const char *name, int level);

static int h_listener(struct pfile *f, const struct kw *k, char *args)
{
	static const struct kw port_kw = {"listener", T_INT, 0, 0, 0, 0, 0, 65535, NULL, NULL};
	struct config *c = f->p->c;
	char *w = word(&args), *addr = word(&args);
	long long port;
	if (addr && addr[0] == '#') /* "listener 1883 # comment" */
		addr = NULL, args = "";
	if (!w)
		return perr(f, "%s: missing port", k->name);
	if (parse_int(f, &port_kw, w, &port))
		return -1;
	if (*args && *args != '#')
		pwarn(f, "listener: extra text '%s' ignored", args);
	if (port == 0 && !addr)
		return perr(f, "listener: port 0 needs a Unix socket path (listener 0 /path/to/socket)");
	struct listener_conf l;
	listener_defaults(&l);
	l.port = (int)port;
	l.line = f->line;
	l.file = strdup(f->name);
	if (addr) {
		if (port == 0)
			l.unix_path = strdup(addr);
		else
			l.bind_address = strdup(addr);
	}
	if (!l.file || (addr && !l.unix_path && !l.bind_address)) {
		listener_free(&l);
		return oom(f);
	}
	for (size_t i = 0; i < c->n_listeners; i++) {
		if (same_listener(&c->listeners[i], &l)) {
			listener_free(&l);
			return perr(f, "listener: the same port and address as the listener at %s:%d",
				    c->listeners[i].file, c->listeners[i].line);
		}
	}
	struct listener_conf *v = realloc(c->listeners, (c->n_listeners + 1) * sizeof(*v));
	if (!v) {
		listener_free(&l);
		return oom(f);
	}
	c->listeners = v;
	c->listeners[c->n_listeners] = l;
	f->cur = (long)c->n_listeners++;
	f->p->security_seen = true;
	return 0;
}

static int h_port(struct pfile *f, const struct kw *k, char *args)
{
	char *w = one_word(f, k, &args);
	long long v;
	if (!w || parse_int(f, k, w, &v))
		return -1;
	pwarn(f, "option 'port' is deprecated (as in mosquitto 2.0); use 'listener %lld'", v);
	f->p->c->default_listener.port = (int)v;
	return 0;
}

static int h_bind_address(struct pfile *f, const struct kw *k, char *args)
{
	if (set_string(f, k->name, &f->p->c->default_listener.bind_address, args))
		return -1;
	pwarn(f, "option 'bind_address' is deprecated (as in mosquitto 2.0); use 'listener PORT ADDRESS'");
	return 0;
}

/* Maps a word to a value from a "name=value" list; -1 when absent. */
static int choose(struct pfile *f, const struct kw *k, char **args, const char *const *names, const int *vals,
		  const char *expect)
{
	char *w = one_word(f, k, args);
	if (!w)
		return -1;
	for (int i = 0; names[i]; i++)
		if (!strcmp(w, names[i]))
			return vals[i];
	return perr(f, "%s: invalid value '%s' (expected %s)", k->name, w, expect);
}

static int h_socket_domain(struct pfile *f, const struct kw *k, char *args)
{
	static const char *const n[] = {"ipv4", "ipv6", NULL};
	static const int v[] = {AF_INET, AF_INET6};
	int r = choose(f, k, &args, n, v, "ipv4 or ipv6");
	if (r < 0)
		return -1;
	cur_listener(f)->family = r;
	return 0;
}

static int h_protocol(struct pfile *f, const struct kw *k, char *args)
{
	static const char *const n[] = {"mqtt", "websockets", "http_api", NULL};
	static const int v[] = {0, 1, 2};
	int r = choose(f, k, &args, n, v, "mqtt, websockets or http_api");
	if (r < 0)
		return -1;
	cur_listener(f)->websockets = r == 1;
	cur_listener(f)->http_api = r == 2; /* vigil extension (mosquitto-compat.md) */
	return 0;
}

static int h_tls_version(struct pfile *f, const struct kw *k, char *args)
{
	static const char *const n[] = {"tlsv1.3", "tlsv1.2", "tlsv1.1", NULL};
	static const int v[] = {0, 1, 2};
	char *w = args;
	int r = choose(f, k, &w, n, v, "tlsv1.3, tlsv1.2 or tlsv1.1");
	if (r < 0)
		return -1;
	return set_string(f, k->name, &cur_listener(f)->tls_version, n[r]);
}

static int h_tls_keyform(struct pfile *f, const struct kw *k, char *args)
{
	static const char *const n[] = {"pem", "engine", NULL};
	static const int v[] = {0, 1};
	int r = choose(f, k, &args, n, v, "pem or engine");
	if (r == 1)
		return perr(f, "tls_keyform engine: OpenSSL engines are not supported by vigil");
	return r < 0 ? -1 : 0;
}

static int h_mount_point(struct pfile *f, const struct kw *k, char *args)
{
	if (strpbrk(args, "+#"))
		return perr(f, "mount_point: invalid value '%s' (a topic prefix cannot contain '+' or '#')", args);
	return set_string(f, k->name, &cur_listener(f)->mount_point, args);
}

static int h_per_listener(struct pfile *f, const struct kw *k, char *args)
{
	char *w = one_word(f, k, &args);
	bool b;
	if (!w || parse_bool(f, k, w, &b))
		return -1;
	if (b != f->p->c->per_listener_settings && f->p->security_seen)
		pwarn(f, "per_listener_settings comes after a listener or security option; the options above it "
			 "were applied as if it were %s (as mosquitto does); put it at the top of the file",
		      b ? "false" : "true");
	f->p->c->per_listener_settings = b;
	return 0;
}

static int h_log_dest(struct pfile *f, const struct kw *k, char *args)
{
	static const char *const n[] = {"stderr", "stdout", "syslog", "topic", "none", "file", "dlt", NULL};
	static const int v[] = {LOG_D_STDERR, LOG_D_STDOUT, LOG_D_SYSLOG, LOG_D_TOPIC, LOG_D_NONE, LOG_D_FILE, 0};
	struct config *c = f->p->c;
	char *rest = args;
	char *w = word(&rest);
	if (!w)
		return perr(f, "log_dest: missing value");
	int i = 0;
	while (n[i] && strcmp(n[i], w))
		i++;
	if (!n[i])
		return perr(f, "log_dest: invalid value '%s' (expected stderr, stdout, syslog, topic, file PATH or none)",
			    w);
	if (!f->p->log_dest_seen)
		c->log_dest = 0; /* the first log_dest line replaces the default */
	f->p->log_dest_seen = true;
	if (v[i] == LOG_D_FILE) {
		if (!*rest)
			return perr(f, "log_dest file: missing file name");
		if (c->log_file)
			return perr(f, "log_dest file: given twice (only one log file, as mosquitto)");
		if (!(c->log_file = strdup(rest)))
			return oom(f);
	} else if (!v[i]) {
		pwarn(f, "log_dest dlt is not supported by vigil and is ignored");
		return 0;
	} else if (*rest && *rest != '#') {
		pwarn(f, "log_dest: extra text '%s' ignored", rest);
	}
	if (v[i] == LOG_D_NONE)
		c->log_dest = LOG_D_NONE;
	else
		c->log_dest = (c->log_dest & ~(unsigned)LOG_D_NONE) | (unsigned)v[i];
	return 0;
}

static int h_log_type(struct pfile *f, const struct kw *k, char *args)
{
	static const char *const n[] = {"error", "warning", "notice", "information", "debug", "subscribe",
					"unsubscribe", "websockets", "all", "none", NULL};
	static const int v[] = {LOG_F_ERROR, LOG_F_WARNING, LOG_F_NOTICE, LOG_F_INFORMATION, LOG_F_DEBUG,
				LOG_F_SUBSCRIBE, LOG_F_UNSUBSCRIBE, LOG_F_WEBSOCKETS, LOG_F_ALL, 0};
	struct config *c = f->p->c;
	char *w = word(&args);
	if (!w)
		return perr(f, "log_type: missing value");
	for (; w && *w != '#'; w = word(&args)) { /* mosquitto reads one per line; several are accepted */
		int i = 0;
		while (n[i] && strcmp(n[i], w))
			i++;
		if (!n[i])
			return perr(f, "log_type: invalid value '%s' (expected error, warning, notice, information, "
				       "debug, subscribe, unsubscribe, websockets, all or none)", w);
		if (!f->p->log_type_seen)
			c->log_type = 0;
		f->p->log_type_seen = true;
		c->log_type = v[i] ? c->log_type | (unsigned)v[i] : 0;
	}
	return 0;
}

/* "N" + h d w m y (mosquitto: hour, day, week, month = 30 days, year = 365 days). */
/* log_format text|json (vigil). */
static int h_log_format(struct pfile *f, const struct kw *k, char *args)
{
	char *w = one_word(f, k, &args);
	if (!w)
		return -1;
	if (!strcmp(w, "text"))
		f->p->c->log_format = LOG_FORMAT_TEXT;
	else if (!strcmp(w, "json"))
		f->p->c->log_format = LOG_FORMAT_JSON;
	else
		return perr(f, "log_format: invalid value '%s' (expected text or json)", w);
	return 0;
}

static int h_expiration(struct pfile *f, const struct kw *k, char *args)
{
	char *w = one_word(f, k, &args), *end;
	if (!w)
		return -1;
	errno = 0;
	long long n = strtoll(w, &end, 10);
	long long unit = 0;
	if (end != w && end[0] && !end[1]) {
		switch (end[0]) {
		case 'h': unit = 3600; break;
		case 'd': unit = 86400; break;
		case 'w': unit = 7 * 86400LL; break;
		case 'm': unit = 30 * 86400LL; break;
		case 'y': unit = 365 * 86400LL; break;
		}
	}
	if (!unit || errno || n <= 0 || n > INT64_MAX / unit)
		return perr(f, "%s: invalid value '%s' (expected a number followed by h, d, w, m or y, e.g. 14d)",
			    k->name, w);
	f->p->c->persistent_client_expiration = n * unit;
	return 0;
}

static int h_tcp_keepalive(struct pfile *f, const struct kw *k, char *args)
{
	static const struct kw parts[] = {
		{"tcp_keepalive IDLE", T_INT, 0, 0, 0, 0, 1, 32767, NULL, NULL},
		{"tcp_keepalive INTERVAL", T_INT, 0, 0, 0, 0, 1, 32767, NULL, NULL},
		{"tcp_keepalive COUNT", T_INT, 0, 0, 0, 0, 1, 127, NULL, NULL},
	};
	long long v[3];
	for (int i = 0; i < 3; i++) {
		char *w = word(&args);
		if (!w)
			return perr(f, "tcp_keepalive: expected IDLE INTERVAL COUNT (seconds, seconds, probes)");
		if (parse_int(f, &parts[i], w, &v[i]))
			return -1;
	}
	if (*args && *args != '#')
		pwarn(f, "%s: extra text '%s' ignored", k->name, args);
	struct listener_conf *l = cur_listener(f);
	l->tcp_keepalive_idle = (int)v[0];
	l->tcp_keepalive_interval = (int)v[1];
	l->tcp_keepalive_count = (int)v[2];
	return 0;
}

static int h_retry_interval(struct pfile *f, const struct kw *k, char *args)
{
	char *w = one_word(f, k, &args);
	long long v;
	if (!w || parse_int(f, k, w, &v))
		return -1;
	f->p->c->retry_interval = (unsigned)v;
	pwarn(f, "option 'retry_interval' has no effect (mosquitto 2.0 ignores it too)");
	return 0;
}

static int h_allow_duplicate(struct pfile *f, const struct kw *k, char *args)
{
	char *w = one_word(f, k, &args);
	bool b;
	if (!w || parse_bool(f, k, w, &b))
		return -1;
	f->p->c->allow_duplicate_messages = b;
	pwarn(f, "option 'allow_duplicate_messages' is deprecated (as in mosquitto 2.0, which still honours it, "
		 "as vigil does)");
	return 0;
}

/* mosquitto's include_dir order: letter by letter, case-insensitively first,
 * then upper case before lower case ("A.conf" < "a.conf" < "B.conf"). */
static int include_cmp(const void *a, const void *b)
{
	const unsigned char *s = *(const unsigned char *const *)a, *t = *(const unsigned char *const *)b;
	for (; *s && *t; s++, t++) {
		int d = toupper(*s) - toupper(*t);
		if (!d)
			d = *s - *t;
		if (d)
			return d;
	}
	return *s - *t;
}

static int h_include_dir(struct pfile *f, const struct kw *k, char *args)
{
	if (!*args)
		return perr(f, "include_dir: missing value");
	if (f->level > 0) {
		pwarn(f, "include_dir is read only in the main configuration file (as mosquitto); ignored");
		return 0;
	}
	DIR *d = opendir(args);
	if (!d)
		return perr(f, "include_dir: cannot open '%s': %s", args, strerror(errno));
	char **names = NULL;
	size_t n = 0;
	int rc = 0;
	struct dirent *e;
	while (!rc && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len <= 5 || strcmp(e->d_name + len - 5, ".conf"))
			continue;
		char **v = realloc(names, (n + 1) * sizeof(*v));
		char *path = malloc(strlen(args) + len + 2);
		if (v)
			names = v;
		if (!v || !path) {
			free(path);
			rc = oom(f);
			break;
		}
		sprintf(path, "%s/%s", args, e->d_name);
		names[n++] = path;
	}
	closedir(d);
	if (!rc && n) /* no .conf file: names is NULL, which qsort's argument must not be */
		qsort(names, n, sizeof(*names), include_cmp);
	for (size_t i = 0; i < n && !rc; i++) {
		FILE *fp = fopen(names[i], "r");
		if (!fp) {
			rc = perr(f, "include_dir: cannot read '%s': %s", names[i], strerror(errno));
			break;
		}
		rc = parse_fd(f->p, fp, names[i], f->level + 1);
		fclose(fp);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* cluster_node_id / cluster_name: one NATS subject token and JetStream
 * bucket-name part, so [A-Za-z0-9_-], at most 64 bytes. */
static int h_cluster_token(struct pfile *f, const struct kw *k, char *args)
{
	char *w = one_word(f, k, &args);
	if (!w)
		return -1;
	size_t n = strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
	if (w[n] || n > 64)
		return perr(f, "%s: '%s' must be 1-64 characters of A-Z a-z 0-9 _ -", k->name, w);
	char **dst = (char **)((char *)f->p->c + k->off);
	return set_string(f, k->name, dst, w);
}

#include "config_bridge.h"

/* ---- the keyword table -------------------------------------------------------- */

#define FLD(type, f) offsetof(type, f), sizeof(((type *)0)->f)
#define GF(f) FLD(struct config, f)
#define LF(f) FLD(struct listener_conf, f)
#define SF(f) FLD(struct security_conf, f)
#define BF(f) FLD(struct bridge_conf, f)
#define BOOL(n, sc, fld, fl) {n, T_BOOL, sc, fl, fld, 0, 1, NULL, NULL}
#define INT(n, sc, fld, lo, hi, fl) {n, T_INT, sc, fl, fld, lo, hi, NULL, NULL}
#define STR(n, sc, fld, fl) {n, T_STR, sc, fl, fld, 0, 0, NULL, NULL}
/* FN rows name the field they set when there is one, so that SIGHUP can compare it. */
#define FN(n, sc, fn, lo, hi, fl) {n, T_FN, sc, fl, 0, 0, lo, hi, fn, NULL}
#define FNF(n, sc, fld, fn, lo, hi, fl) {n, T_FN, sc, fl, fld, lo, hi, fn, NULL}
#define WARN(n) {n, T_WARN, S_GLOBAL, 0, 0, 0, 0, 0, NULL, NULL}
#define ERR(n, fl, why) {n, T_ERR, S_GLOBAL, fl, 0, 0, 0, 0, NULL, why}

static const char PLUGIN[] = "loads a mosquitto plugin, which vigil does not support; ignoring it would "
			     "change who may connect and what they may access (see mosquitto-compat.md)";

static const struct kw KW[] = {
	/* security: global, or the current listener's with per_listener_settings true */
	BOOL("allow_anonymous", S_SECURITY, SF(allow_anonymous), F_RELOAD),
	BOOL("allow_zero_length_clientid", S_SECURITY, SF(allow_zero_length_clientid), F_RELOAD),
	STR("auto_id_prefix", S_SECURITY, SF(auto_id_prefix), F_RELOAD),
	STR("password_file", S_SECURITY, SF(password_file), F_RELOAD),
	STR("acl_file", S_SECURITY, SF(acl_file), F_RELOAD),
	STR("psk_file", S_SECURITY, SF(psk_file), F_RELOAD),
	FNF("per_listener_settings", S_GLOBAL, GF(per_listener_settings), h_per_listener, 0, 0, F_RELOAD),
	/* global limits and behaviour */
	INT("max_keepalive", S_GLOBAL, GF(max_keepalive), 1, 65535, F_RELOAD),
	INT("max_packet_size", S_GLOBAL, GF(max_packet_size), 20, UINT32_MAX, F_RELOAD),
	INT("message_size_limit", S_GLOBAL, GF(message_size_limit), 0, 268435455, F_RELOAD),
	INT("max_inflight_messages", S_GLOBAL, GF(max_inflight_messages), 0, 65535, F_RELOAD),
	INT("max_inflight_bytes", S_GLOBAL, GF(max_inflight_bytes), 0, INT64_MAX, F_RELOAD),
	INT("max_queued_messages", S_GLOBAL, GF(max_queued_messages), 0, INT_MAX, F_RELOAD | F_NEGMIN),
	INT("max_queued_bytes", S_GLOBAL, GF(max_queued_bytes), 0, INT64_MAX, F_RELOAD),
	INT("memory_limit", S_GLOBAL, GF(memory_limit), 0, INT64_MAX, F_RELOAD),
	BOOL("queue_qos0_messages", S_GLOBAL, GF(queue_qos0_messages), F_RELOAD),
	BOOL("retain_available", S_GLOBAL, GF(retain_available), F_RELOAD),
	BOOL("set_tcp_nodelay", S_GLOBAL, GF(set_tcp_nodelay), F_RELOAD),
	BOOL("upgrade_outgoing_qos", S_GLOBAL, GF(upgrade_outgoing_qos), F_RELOAD),
	BOOL("check_retain_source", S_GLOBAL, GF(check_retain_source), F_RELOAD),
	FNF("persistent_client_expiration", S_GLOBAL, GF(persistent_client_expiration), h_expiration, 0, 0, F_RELOAD),
	INT("sys_interval", S_GLOBAL, GF(sys_interval), 0, 65535, F_RELOAD),
	INT("connect_timeout", S_GLOBAL, GF(connect_timeout), 1, 3600, F_RELOAD), /* vigil */
	FNF("retry_interval", S_GLOBAL, GF(retry_interval), h_retry_interval, 0, INT_MAX, F_RELOAD),
	FNF("allow_duplicate_messages", S_GLOBAL, GF(allow_duplicate_messages), h_allow_duplicate, 0, 0, F_RELOAD),
	/* process, persistence, logging */
	STR("pid_file", S_GLOBAL, GF(pid_file), 0),
	STR("user", S_GLOBAL, GF(user), 0),
	/* persistence: read at start-up (a reload keeps the open store); every
	 * change is committed before its acknowledgement, so autosave_* have
	 * nothing left to do (compat: mosquitto-compat.md) */
	BOOL("persistence", S_GLOBAL, GF(persistence), 0),
	BOOL("retained_persistence", S_GLOBAL, GF(persistence), F_ALIAS), /* old alias, still in 2.0 */
	STR("persistence_file", S_GLOBAL, GF(persistence_file), 0),
	STR("persistence_location", S_GLOBAL, GF(persistence_location), 0),
	BOOL("persistence_fsync", S_GLOBAL, GF(persistence_fsync), 0), /* vigil: synchronous=FULL */
	INT("autosave_interval", S_GLOBAL, GF(autosave_interval), 0, INT_MAX, F_RELOAD | F_NEGMIN),
	BOOL("autosave_on_changes", S_GLOBAL, GF(autosave_on_changes), F_RELOAD),
	FNF("log_dest", S_GLOBAL, GF(log_dest), h_log_dest, 0, 0, F_RELOAD),
	FNF("log_type", S_GLOBAL, GF(log_type), h_log_type, 0, 0, F_RELOAD),
	BOOL("log_timestamp", S_GLOBAL, GF(log_timestamp), F_RELOAD),
	STR("log_timestamp_format", S_GLOBAL, GF(log_timestamp_format), F_RELOAD),
	BOOL("connection_messages", S_GLOBAL, GF(connection_messages), F_RELOAD),
	INT("log_facility", S_GLOBAL, GF(log_facility), 0, 7, F_RELOAD), /* local0..local7 */
	FNF("log_format", S_GLOBAL, GF(log_format), h_log_format, 0, 0, F_RELOAD), /* vigil: text | json */
	INT("websockets_log_level", S_GLOBAL, GF(websockets_log_level), 0, INT_MAX, 0),
	INT("websockets_headers_size", S_GLOBAL, GF(websockets_headers_size), 0, 65535, 0),
	FN("include_dir", S_GLOBAL, h_include_dir, 0, 0, 0),
	/* listeners */
	FN("listener", S_GLOBAL, h_listener, 0, 0, 0),
	FN("port", S_GLOBAL, h_port, 1, 65535, 0),
	FN("bind_address", S_GLOBAL, h_bind_address, 0, 0, 0),
	STR("bind_interface", S_LISTENER, LF(bind_interface), 0),
	FNF("socket_domain", S_LISTENER, LF(family), h_socket_domain, 0, 0, 0),
	FNF("protocol", S_LISTENER, LF(websockets), h_protocol, 0, 0, 0),
	STR("http_dir", S_LISTENER, LF(http_dir), 0),
	FNF("mount_point", S_LISTENER, LF(mount_point), h_mount_point, 0, 0, F_STRF),
	INT("max_connections", S_LISTENER, LF(max_connections), -1, INT_MAX, F_NEGMIN),
	INT("max_qos", S_LISTENER, LF(max_qos), 0, 2, 0),
	INT("maximum_qos", S_LISTENER, LF(max_qos), 0, 2, F_ALIAS), /* undocumented alias in 2.0 */
	INT("max_topic_alias", S_LISTENER, LF(max_topic_alias), 0, 65535, 0),
	BOOL("use_username_as_clientid", S_LISTENER, LF(use_username_as_clientid), 0),
	FNF("tcp_keepalive", S_LISTENER, LF(tcp_keepalive_idle), h_tcp_keepalive, 0, 0, 0),           /* vigil */
	INT("tcp_user_timeout", S_LISTENER, LF(tcp_user_timeout_ms), 0, INT_MAX, 0), /* vigil, ms */
	/* listener TLS (the certificate files' contents are reloaded by the broker on SIGHUP) */
	STR("cafile", S_LISTENER, LF(cafile), 0),
	STR("capath", S_LISTENER, LF(capath), 0),
	STR("certfile", S_LISTENER, LF(certfile), 0),
	STR("keyfile", S_LISTENER, LF(keyfile), 0),
	FNF("tls_version", S_LISTENER, LF(tls_version), h_tls_version, 0, 0, F_STRF),
	STR("ciphers", S_LISTENER, LF(ciphers), 0),
	STR("ciphers_tls1.3", S_LISTENER, LF(ciphers_tls13), 0),
	STR("crlfile", S_LISTENER, LF(crlfile), 0),
	STR("dhparamfile", S_LISTENER, LF(dhparamfile), 0),
	STR("psk_hint", S_LISTENER, LF(psk_hint), 0),
	BOOL("require_certificate", S_LISTENER, LF(require_certificate), 0),
	BOOL("use_identity_as_username", S_LISTENER, LF(use_identity_as_username), 0),
	BOOL("use_subject_as_username", S_LISTENER, LF(use_subject_as_username), 0),
	FN("tls_keyform", S_LISTENER, h_tls_keyform, 0, 0, 0),
	ERR("tls_engine", 0, "selects an OpenSSL engine, which vigil does not support"),
	ERR("tls_engine_kpass_sha1", 0, "selects an OpenSSL engine, which vigil does not support"),
	/* known, accepted, ignored with a warning */
	/* known, refused */
	ERR("clientid_prefixes", 0, "restricts client ids; vigil does not implement it and ignoring it would "
				    "admit clients that mosquitto refuses"),
	ERR("auth_plugin", 0, PLUGIN), ERR("plugin", 0, PLUGIN), ERR("auth_plugin_deny_special_chars", 0, PLUGIN),
	ERR("auth_opt_", F_PREFIX, PLUGIN), ERR("plugin_opt_", F_PREFIX, PLUGIN),
	/* cluster (broker/cluster/, vigil extension; read at start-up) */
	STR("cluster_nats_url", S_GLOBAL, GF(cluster.nats_url), 0),
	FNF("cluster_node_id", S_GLOBAL, GF(cluster.node_id), h_cluster_token, 0, 0, F_STRF),
	FNF("cluster_name", S_GLOBAL, GF(cluster.name), h_cluster_token, 0, 0, F_STRF),
	INT("cluster_node_timeout", S_GLOBAL, GF(cluster.node_timeout), 1, 3600, 0),
	INT("cluster_replicas", S_GLOBAL, GF(cluster.replicas), 1, 5, 0),
	/* JetStream's duplicate window (60 s) must fit in the stream's max age,
	 * and re-sends (within the ack hold) in the duplicate window */
	INT("cluster_ack_hold", S_GLOBAL, GF(cluster.ack_hold), 1, 60, 0),
	INT("cluster_replay_window", S_GLOBAL, GF(cluster.replay_window), 60, 86400, 0),
	INT("cluster_replay_hold", S_GLOBAL, GF(cluster.replay_hold), 0, 60, 0),
	INT("cluster_replay_max_bytes", S_GLOBAL, GF(cluster.replay_max_bytes), 1048576, INT64_MAX, 0),
	STR("cluster_nats_creds", S_GLOBAL, GF(cluster.creds), 0),
	STR("cluster_nats_cafile", S_GLOBAL, GF(cluster.cafile), 0),
	STR("cluster_nats_certfile", S_GLOBAL, GF(cluster.certfile), 0),
	STR("cluster_nats_keyfile", S_GLOBAL, GF(cluster.keyfile), 0),
	/* bridges (config_bridge.h): after a "connection" line */
	FN("connection", S_GLOBAL, h_connection, 0, 0, 0),
	FN("address", S_BRIDGE, h_address, 0, 0, 0),
	FN("addresses", S_BRIDGE, h_address, 0, 0, 0),
	FN("topic", S_BRIDGE, h_topic, 0, 0, 0),
	FNF("round_robin", S_BRIDGE, BF(round_robin), h_bridge_bool, 0, 1, 0),
	FN("bridge_protocol_version", S_BRIDGE, h_bridge_protocol, 0, 0, 0),
	FNF("try_private", S_BRIDGE, BF(try_private), h_bridge_bool, 0, 1, 0),
	FNF("cleansession", S_BRIDGE, BF(cleansession), h_bridge_bool, 0, 1, 0),
	FNF("local_cleansession", S_BRIDGE, BF(local_cleansession), h_bridge_bool, 0, 1, 0),
	FNF("local_clientid", S_BRIDGE, BF(local_clientid), h_bridge_str, 0, 0, F_STRF),
	FNF("remote_clientid", S_BRIDGE, BF(remote_clientid), h_bridge_str, 0, 0, F_STRF),
	FNF("clientid", S_BRIDGE, BF(remote_clientid), h_bridge_str, 0, 0, F_STRF | F_ALIAS),
	FNF("remote_username", S_BRIDGE, BF(remote_username), h_bridge_str, 0, 0, F_STRF),
	FNF("username", S_BRIDGE, BF(remote_username), h_bridge_str, 0, 0, F_STRF | F_ALIAS),
	FNF("remote_password", S_BRIDGE, BF(remote_password), h_bridge_str, 0, 0, F_STRF),
	FNF("password", S_BRIDGE, BF(remote_password), h_bridge_str, 0, 0, F_STRF | F_ALIAS),
	FNF("local_username", S_BRIDGE, BF(local_username), h_bridge_str, 0, 0, F_STRF),
	FNF("local_password", S_BRIDGE, BF(local_password), h_bridge_str, 0, 0, F_STRF),
	FNF("notifications", S_BRIDGE, BF(notifications), h_bridge_bool, 0, 1, 0),
	FNF("notifications_local_only", S_BRIDGE, BF(notifications_local_only), h_bridge_bool, 0, 1, 0),
	FNF("notification_topic", S_BRIDGE, BF(notification_topic), h_bridge_str, 0, 0, F_STRF),
	/* compat: honoured down to 1 s; mosquitto raises values below 5 to 5 */
	FNF("keepalive_interval", S_BRIDGE, BF(keepalive), h_bridge_int, 1, 65535, 0),
	FN("restart_timeout", S_BRIDGE, h_restart_timeout, 1, INT_MAX, 0),
	FN("start_type", S_BRIDGE, h_start_type, 0, 0, 0),
	FNF("idle_timeout", S_BRIDGE, BF(idle_timeout), h_bridge_int, 0, INT_MAX, 0),
	FNF("threshold", S_BRIDGE, BF(threshold), h_bridge_int, 1, INT_MAX, 0),
	FNF("bridge_attempt_unsubscribe", S_BRIDGE, BF(attempt_unsubscribe), h_bridge_bool, 0, 1, 0),
	FNF("bridge_outgoing_retain", S_BRIDGE, BF(outgoing_retain), h_bridge_bool, 0, 1, 0),
	FNF("bridge_max_packet_size", S_BRIDGE, BF(max_packet_size), h_bridge_int, 0, 268435460, 0),
	FN("bridge_tcp_keepalive", S_BRIDGE, h_bridge_tcp_keepalive, 1, 65535, 0),
	FNF("bridge_tcp_user_timeout", S_BRIDGE, BF(tcp_user_timeout_ms), h_bridge_int, 0, INT_MAX, 0),
	FNF("bridge_cafile", S_BRIDGE, BF(cafile), h_bridge_str, 0, 0, F_STRF),
	FNF("bridge_capath", S_BRIDGE, BF(capath), h_bridge_str, 0, 0, F_STRF),
	FNF("bridge_certfile", S_BRIDGE, BF(certfile), h_bridge_str, 0, 0, F_STRF),
	FNF("bridge_keyfile", S_BRIDGE, BF(keyfile), h_bridge_str, 0, 0, F_STRF),
	FNF("bridge_insecure", S_BRIDGE, BF(insecure), h_bridge_bool, 0, 1, 0),
	FNF("bridge_require_ocsp", S_BRIDGE, BF(require_ocsp), h_bridge_bool, 0, 1, 0),
	FNF("bridge_tls_version", S_BRIDGE, BF(tls_version), h_bridge_tls_version, 0, 0, F_STRF),
	FNF("bridge_alpn", S_BRIDGE, BF(alpn), h_bridge_str, 0, 0, F_STRF),
	FNF("bridge_identity", S_BRIDGE, BF(psk_identity), h_bridge_str, 0, 0, F_STRF),
	FNF("bridge_psk", S_BRIDGE, BF(psk), h_bridge_psk, 0, 0, F_STRF),
	FNF("bridge_bind_address", S_BRIDGE, BF(bind_address), h_bridge_str, 0, 0, F_STRF),
};
#define N_KW (sizeof(KW) / sizeof(KW[0]))

static const struct kw *kw_find(const char *name)
{
	for (size_t i = 0; i < N_KW; i++) {
		if (KW[i].flags & F_PREFIX) {
			if (!strncmp(name, KW[i].name, strlen(KW[i].name)))
				return &KW[i];
		} else if (!strcmp(name, KW[i].name)) {
			return &KW[i];
		}
	}
	return NULL;
}

bool config_option_reloadable(const char *name)
{
	const struct kw *k = name ? kw_find(name) : NULL;
	return k && (k->flags & F_RELOAD);
}

#endif
