/*
 * broker/config.c — reads mosquitto.conf as mosquitto 2.0.11 does, through
 * one keyword table (name, type, scope, target field, reloadable, range).
 *
 * It does: syntax, values, ranges, listener sections, mosquitto's default
 * listener and local-only mode, include_dir, per_listener_settings routing,
 * cross-option checks, and the SIGHUP merge of a freshly parsed file.
 * It does not: open files named by options (password, ACL, certificates),
 * resolve host names, or log; warnings go to the caller's warn().
 * Invariant: every option mosquitto 2.0.11 accepts has a table row here
 * (implemented, warned about, or refused); nothing is silently dropped.
 * The list and the reasons are in mosquitto-compat.md; the table itself and
 * the option handlers are in config_kw.h (included once, below). An option
 * the broker does not act on yet carries F_NOTYET: drop the flag (and update
 * mosquitto-compat.md) when it does.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"

enum kw_type { T_BOOL, T_INT, T_STR, T_FN, T_WARN, T_ERR };
enum kw_scope { S_GLOBAL, S_LISTENER, S_SECURITY, S_BRIDGE /* struct bridge_conf (config_bridge.h) */ };
enum kw_flag {
	F_RELOAD = 1,  /* reloaded on SIGHUP (as mosquitto.conf(5) says) */
	F_PREFIX = 2,  /* name is a prefix: plugin_opt_*, auth_opt_* */
	F_NEGMIN = 4,  /* a negative value means the minimum (mosquitto clamps) */
	F_STRF = 8,    /* T_FN row whose field is a string */
	F_ALIAS = 16,  /* another name for the row above it (skipped when comparing fields) */
	F_NOTYET = 32, /* parsed, but the broker does not act on it yet: warn when not the default */
};

struct pfile;
struct kw {
	const char *name;
	unsigned char type, scope, flags;
	unsigned short off, size; /* target field in struct config / listener_conf / security_conf */
	long long min, max;
	int (*fn)(struct pfile *f, const struct kw *k, char *args);
	const char *why; /* T_ERR: why ignoring it is not an option */
};

/* One parse (a main file and its include_dir files). */
struct pctx {
	struct config *c;
	void (*warn)(const char *msg, void *u);
	void *u;
	char *err;
	size_t errlen;
	bool log_dest_seen, log_type_seen, security_seen, default_warned;
};

/* One file being read. */
struct pfile {
	struct pctx *p;
	const char *name;
	int line, level;
	long cur; /* index of the current listener in c->listeners; -1: the default listener */
};

/* ---- messages ----------------------------------------------------------------- */

static int perr(struct pfile *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct pfile *f, const char *fmt, ...)
{
	if (!f->p->err || !f->p->errlen)
		return -1;
	int n = snprintf(f->p->err, f->p->errlen, "%s:%d: ", f->name, f->line);
	if (n < 0 || (size_t)n >= f->p->errlen)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->p->err + n, f->p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static void pwarn(struct pfile *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pwarn(struct pfile *f, const char *fmt, ...)
{
	if (!f->p->warn)
		return;
	char msg[1024];
	int n = f->line ? snprintf(msg, sizeof(msg), "%s:%d: ", f->name, f->line)
			: snprintf(msg, sizeof(msg), "%s: ", f->name);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(msg))
		vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	f->p->warn(msg, f->p->u);
}

static int oom(struct pfile *f)
{
	return perr(f, "out of memory");
}

/* ---- listeners ---------------------------------------------------------------- */

static void listener_defaults(struct listener_conf *l)
{
	memset(l, 0, sizeof(*l));
	l->family = AF_UNSPEC;
	l->max_connections = -1;
	l->max_qos = 2;
	l->max_topic_alias = 10;
	l->security.allow_anonymous = -1;
	l->security.allow_zero_length_clientid = true;
}

static void security_free(struct security_conf *s)
{
	free(s->password_file);
	free(s->acl_file);
	free(s->psk_file);
	free(s->auto_id_prefix);
}

static void listener_free(struct listener_conf *l)
{
	char *s[] = {l->bind_address, l->bind_interface, l->unix_path, l->http_dir, l->mount_point, l->cafile,
		     l->capath, l->certfile, l->keyfile, l->tls_version, l->ciphers, l->ciphers_tls13, l->crlfile,
		     l->dhparamfile, l->psk_hint, l->file};
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		free(s[i]);
	security_free(&l->security);
	listener_defaults(l);
}

static struct listener_conf *cur_listener(struct pfile *f)
{
	struct config *c = f->p->c;
	return f->cur < 0 ? &c->default_listener : &c->listeners[f->cur];
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static bool same_listener(const struct listener_conf *a, const struct listener_conf *b)
{
	return a->port == b->port && str_eq(a->bind_address, b->bind_address) && str_eq(a->unix_path, b->unix_path);
}

/* ---- tokens and values -------------------------------------------------------- */

/* Splits the first word off *s (spaces and tabs separate); NULL when none. */
static char *word(char **s)
{
	char *p = *s + strspn(*s, " \t");
	if (!*p) {
		*s = p;
		return NULL;
	}
	char *e = p + strcspn(p, " \t");
	if (*e)
		*e++ = '\0';
	*s = e + strspn(e, " \t");
	return p;
}

/* One-word options: a trailing "# comment" is fine, other text is reported. */
static char *one_word(struct pfile *f, const struct kw *k, char **args)
{
	char *w = word(args);
	if (!w) {
		perr(f, "%s: missing value", k->name);
		return NULL;
	}
	if (**args && **args != '#')
		pwarn(f, "%s: extra text '%s' ignored", k->name, *args);
	return w;
}

static int parse_bool(struct pfile *f, const struct kw *k, const char *w, bool *out)
{
	if (!strcmp(w, "true") || !strcmp(w, "1"))
		*out = true;
	else if (!strcmp(w, "false") || !strcmp(w, "0"))
		*out = false;
	else
		return perr(f, "%s: invalid value '%s' (expected true or false)", k->name, w);
	return 0;
}

static int parse_int(struct pfile *f, const struct kw *k, const char *w, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(w, &end, 10);
	bool ok = end != w && !*end && !errno;
	if (ok && v < 0 && (k->flags & F_NEGMIN))
		v = k->min;
	if (!ok || v < k->min || v > k->max) {
		if (k->max == INT_MAX || k->max == INT64_MAX) /* "unbounded" */
			return perr(f, "%s: invalid value '%s' (expected an integer >= %lld)", k->name, w, k->min);
		return perr(f, "%s: invalid value '%s' (expected an integer %lld..%lld)", k->name, w, k->min,
			    k->max);
	}
	*out = v;
	return 0;
}

static void store_int(char *base, const struct kw *k, long long v)
{
	char *p = base + k->off;
	if (k->size == sizeof(bool)) {
		bool b = v != 0;
		memcpy(p, &b, sizeof(b));
	} else if (k->size == 4) {
		uint32_t x = (uint32_t)v; /* int or unsigned field; the range was checked */
		memcpy(p, &x, 4);
	} else {
		uint64_t x = (uint64_t)v;
		memcpy(p, &x, 8);
	}
}

/* String options take the rest of the line, as mosquitto; given twice is an
 * error, as mosquitto ("Duplicate ... value"). */
static int set_string(struct pfile *f, const char *name, char **dst, const char *args)
{
	if (!*args)
		return perr(f, "%s: missing value", name);
	if (*dst)
		return perr(f, "%s: given twice (mosquitto refuses duplicate values too)", name);
	*dst = strdup(args);
	return *dst ? 0 : oom(f);
}

#include "config_kw.h"

/* ---- lines and files ---------------------------------------------------------- */

static bool field_differs(const struct kw *k, const char *a, const char *b);

/* The surprising case of mosquitto's per-file default listener: a listener
 * option at the top of an included file (or after listeners of an earlier
 * parse) goes to port 1883, not to the listener the reader sees above. */
static void note_default_listener(struct pfile *f, const struct kw *k)
{
	struct config *c = f->p->c;
	bool to_listener = k->scope == S_LISTENER || (k->scope == S_SECURITY && c->per_listener_settings);
	if (!to_listener || f->cur >= 0 || f->p->default_warned || (f->level == 0 && c->n_listeners == 0))
		return;
	f->p->default_warned = true;
	pwarn(f, "'%s' comes before any 'listener' line of this file, so it configures mosquitto's default "
		 "listener (port 1883 on all addresses unless 'port'/'bind_address' say otherwise), as "
		 "mosquitto 2.0 does", k->name);
}

static char *target(struct pfile *f, const struct kw *k)
{
	struct config *c = f->p->c;
	if (k->scope == S_GLOBAL)
		return (char *)c;
	if (k->scope == S_SECURITY && !c->per_listener_settings)
		return (char *)&c->security;
	struct listener_conf *l = cur_listener(f);
	return k->scope == S_LISTENER ? (char *)l : (char *)&l->security;
}

static int parse_line(struct pfile *f, char *line)
{
	size_t len = strlen(line);
	while (len && strchr(" \t\r\n", line[len - 1]))
		line[--len] = '\0';
	char *args = line;
	char *name = word(&args);
	if (!name || name[0] == '#')
		return 0;
	const struct kw *k = kw_find(name);
	if (!k)
		return perr(f, "unknown configuration option '%s'", name);
	if (k->scope == S_SECURITY)
		f->p->security_seen = true;
	note_default_listener(f, k);
	char *w;
	long long v;
	bool b;
	int rc = 0;
	switch (k->type) {
	case T_BOOL:
		if (!(w = one_word(f, k, &args)) || parse_bool(f, k, w, &b))
			return -1;
		store_int(target(f, k), k, b);
		break;
	case T_INT:
		if (!(w = one_word(f, k, &args)) || parse_int(f, k, w, &v))
			return -1;
		store_int(target(f, k), k, v);
		break;
	case T_STR:
		rc = set_string(f, k->name, (char **)(void *)(target(f, k) + k->off), args);
		break;
	case T_FN:
		return k->fn(f, k, args);
	case T_WARN:
		pwarn(f, "option '%s' is not supported by vigil yet and is ignored", name);
		return 0;
	default:
		return perr(f, "option '%s' %s", name, k->why);
	}
	if (!rc && (k->flags & F_NOTYET)) {
		struct config d; /* the defaults; config_init allocates nothing */
		config_init(&d);
		const char *def = k->scope == S_GLOBAL ? (const char *)&d : (const char *)&d.default_listener;
		if (field_differs(k, target(f, k), def))
			pwarn(f, "option '%s' is not supported by vigil yet and is ignored", name);
	}
	return rc;
}

static int parse_fd(struct pctx *p, FILE *fp, const char *name, int level)
{
	struct pfile f = {p, name, 0, level, -1};
	char *buf = NULL;
	size_t cap = 0;
	int rc = 0;
	while (!rc && getline(&buf, &cap, fp) >= 0) {
		f.line++;
		rc = parse_line(&f, buf);
	}
	if (!rc && ferror(fp))
		rc = perr(&f, "read error");
	free(buf);
	return rc;
}

static bool default_listener_used(const struct config *c);

/* Options that went to mosquitto's default listener, which is then not
 * started (max_topic_alias, http_dir, or with per_listener_settings true
 * acl_file, allow_anonymous, auto_id_prefix): mosquitto drops them without a
 * word; vigil says so. */
static void warn_unused_default(struct pfile *f)
{
	struct config *c = f->p->c;
	struct listener_conf d;
	listener_defaults(&d);
	if (default_listener_used(c))
		return;
	for (size_t i = 0; i < N_KW; i++) {
		const struct kw *k = &KW[i];
		if (k->scope == S_GLOBAL || k->scope == S_BRIDGE || !k->size || (k->flags & F_ALIAS))
			continue;
		const char *a = k->scope == S_LISTENER ? (const char *)&c->default_listener
						       : (const char *)&c->default_listener.security;
		const char *b = k->scope == S_LISTENER ? (const char *)&d : (const char *)&d.security;
		if (field_differs(k, a, b))
			pwarn(f, "option '%s' comes before any 'listener' line and applies to no listener (mosquitto "
				 "ignores it too); move it below a 'listener' line", k->name);
	}
}

int config_parse_file(struct config *c, const char *path, void (*warn)(const char *msg, void *u), void *u,
		      char *err, size_t errlen)
{
	struct pctx p = {.c = c, .warn = warn, .u = u, .err = err, .errlen = errlen};
	FILE *fp = fopen(path, "r");
	if (!fp) {
		if (err && errlen)
			snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	int rc = parse_fd(&p, fp, path, 0);
	fclose(fp);
	if (!rc) {
		struct pfile f = {&p, path, 0, 0, -1};
		warn_unused_default(&f);
	}
	return rc;
}

int config_parse_string(struct config *c, const char *name, const char *text,
			void (*warn)(const char *msg, void *u), void *u, char *err, size_t errlen)
{
	struct pctx p = {.c = c, .warn = warn, .u = u, .err = err, .errlen = errlen};
	struct pfile f = {&p, name, 0, 0, -1};
	char *copy = strdup(text ? text : "");
	if (!copy)
		return oom(&f);
	int rc = 0;
	for (char *line = copy, *next; line && !rc; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!next && !*line)
			break;
		f.line++;
		rc = parse_line(&f, line);
	}
	free(copy);
	f.line = 0;
	if (!rc)
		warn_unused_default(&f);
	return rc;
}

/* ---- life cycle --------------------------------------------------------------- */

void config_init(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->security.allow_anonymous = -1;
	c->security.allow_zero_length_clientid = true;
	c->max_keepalive = 65535;
	c->max_inflight_messages = 20;
	c->max_queued_messages = 1000;
	c->retain_available = true;
	c->persistent_client_expiration = -1;
	c->max_connections = -1;
	c->set_tcp_nodelay = true; /* compat: mosquitto's default is false */
	c->check_retain_source = true;
	c->connect_timeout = 10;
	c->sys_interval = 10;
	c->autosave_interval = 1800;
	c->log_dest = LOG_D_STDERR;
	c->log_type = LOG_F_ERROR | LOG_F_WARNING | LOG_F_NOTICE | LOG_F_INFORMATION;
	c->log_timestamp = true;
	c->connection_messages = true;
	c->log_facility = -1; /* daemon */
	c->cluster.node_timeout = 3;
	c->cluster.replicas = 1;
	c->cluster.ack_hold = 10;
	c->cluster.replay_window = 120;
	c->cluster.replay_hold = 2;
	c->cluster.replay_max_bytes = 256ull * 1024 * 1024;
	listener_defaults(&c->default_listener);
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_listeners; i++)
		listener_free(&c->listeners[i]);
	free(c->listeners);
	listener_free(&c->default_listener);
	security_free(&c->security);
	bridge_conf_free_all(c);
	char *s[] = {c->pid_file, c->user, c->persistence_file, c->persistence_location, c->log_file,
		     c->log_timestamp_format, c->cluster.nats_url, c->cluster.node_id, c->cluster.name,
		     c->cluster.creds, c->cluster.cafile, c->cluster.certfile, c->cluster.keyfile};
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		free(s[i]);
	config_init(c);
}

const struct security_conf *config_security(const struct config *c, const struct listener_conf *l)
{
	return c->per_listener_settings && l ? &l->security : &c->security;
}

/* ---- config_finish ------------------------------------------------------------ */

static int ferr(char *err, size_t errlen, const struct listener_conf *l, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int ferr(char *err, size_t errlen, const struct listener_conf *l, const char *fmt, ...)
{
	if (!err || !errlen)
		return -1;
	int n;
	if (l->file)
		n = snprintf(err, errlen, "%s:%d: listener %d%s%s: ", l->file, l->line, l->port,
			     l->unix_path ? " " : "", l->unix_path ? l->unix_path : "");
	else
		n = snprintf(err, errlen, "default listener (port %d): ", l->port);
	if (n < 0 || (size_t)n >= errlen)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* mosquitto 2.0.11 starts its default listener when any of these differs
 * from the default (config__parse_args); vigil adds its own tcp_* options. */
static bool default_listener_used(const struct config *c)
{
	const struct listener_conf *d = &c->default_listener;
	return d->port || d->bind_address || d->bind_interface || d->cafile || d->capath || d->certfile ||
	       d->keyfile || d->ciphers || d->ciphers_tls13 || d->dhparamfile || d->psk_hint ||
	       d->require_certificate || d->crlfile || d->use_identity_as_username || d->use_subject_as_username ||
	       d->use_username_as_clientid || d->max_connections != -1 || d->max_qos != 2 || d->mount_point ||
	       d->websockets || d->http_api || d->family != AF_UNSPEC || d->security.password_file || d->security.psk_file ||
	       !d->security.allow_zero_length_clientid || d->tcp_keepalive_idle || d->tcp_user_timeout_ms;
}

static int add_listener(struct config *c, const struct listener_conf *l)
{
	struct listener_conf *v = realloc(c->listeners, (c->n_listeners + 1) * sizeof(*v));
	if (!v)
		return -1;
	c->listeners = v;
	c->listeners[c->n_listeners++] = *l;
	return 0;
}

static int add_local(struct config *c, const char *addr, int port, bool optional)
{
	struct listener_conf l;
	listener_defaults(&l);
	l.port = port;
	l.bind_optional = optional;
	l.security.allow_anonymous = 1;
	if (!(l.bind_address = strdup(addr)) || add_listener(c, &l)) {
		listener_free(&l);
		return -1;
	}
	return 0;
}

/* "file:line: listener PORT: " + text through warn (NULL: dropped). */
static void lwarn(config_warn_fn warn, void *u, const struct listener_conf *l, const char *text)
{
	char msg[600];
	if (!warn)
		return;
	if (l->file)
		snprintf(msg, sizeof(msg), "%s:%d: listener %d: %s", l->file, l->line, l->port, text);
	else
		snprintf(msg, sizeof(msg), "default listener (port %d): %s", l->port, text);
	warn(msg, u);
}

static int check_listener(const struct listener_conf *l, config_warn_fn warn, void *u, char *err, size_t errlen)
{
	bool tls = l->certfile || l->psk_hint;
	if (l->certfile && !l->keyfile)
		return ferr(err, errlen, l, "certfile is set but keyfile is not");
	if (l->keyfile && !l->certfile)
		return ferr(err, errlen, l, "keyfile is set but certfile is not");
	const char *tls_only[] = {l->cafile ? "cafile" : NULL, l->capath ? "capath" : NULL,
				  l->crlfile ? "crlfile" : NULL, l->dhparamfile ? "dhparamfile" : NULL,
				  l->ciphers ? "ciphers" : NULL, l->ciphers_tls13 ? "ciphers_tls1.3" : NULL,
				  l->tls_version ? "tls_version" : NULL,
				  l->require_certificate ? "require_certificate" : NULL,
				  l->use_identity_as_username ? "use_identity_as_username" : NULL,
				  l->use_subject_as_username ? "use_subject_as_username" : NULL};
	for (size_t i = 0; i < sizeof(tls_only) / sizeof(tls_only[0]) && !tls; i++)
		if (tls_only[i])
			return ferr(err, errlen, l,
				    "%s is set but TLS is not enabled on this listener (it needs certfile and keyfile, "
				    "or psk_hint); mosquitto would silently listen in plain text",
				    tls_only[i]);
	if (l->require_certificate && !l->cafile && !l->capath)
		return ferr(err, errlen, l, "require_certificate needs cafile or capath to verify client certificates");
	/* compat: mosquitto 2.0.11 starts with these and refuses every client
	 * that has no identity (CONNACK 0x04 / v5 0x86): without
	 * require_certificate no certificate is even asked for, and on a
	 * psk_hint listener only use_identity_as_username takes the PSK
	 * identity. Started as mosquitto does, with a warning. */
	if (l->use_identity_as_username && !l->require_certificate && !l->psk_hint)
		lwarn(warn, u, l, "use_identity_as_username without require_certificate true: no client certificate "
				  "is requested, so every client is refused (as mosquitto)");
	else if (l->use_subject_as_username && !l->use_identity_as_username && (l->psk_hint || !l->require_certificate))
		lwarn(warn, u, l,
		      l->psk_hint ? "use_subject_as_username on a psk_hint listener: PSK clients have no subject, so every "
				    "client is refused (as mosquitto)"
				  : "use_subject_as_username without require_certificate true: no client certificate is "
				    "requested, so every client is refused (as mosquitto)");
	if (l->psk_hint && l->websockets)
		return ferr(err, errlen, l, "psk_hint cannot be used with protocol websockets (as mosquitto)");
	if (l->psk_hint && l->http_api)
		return ferr(err, errlen, l, "psk_hint cannot be used with protocol http_api (HTTPS needs certfile and keyfile)");
	if (l->unix_path && (l->websockets || l->http_api || tls))
		return ferr(err, errlen, l, "a Unix socket listener supports plain MQTT only");
	return 0;
}

static int finish_security(struct security_conf *s, int anonymous)
{
	if (s->allow_anonymous < 0 || anonymous >= 0)
		s->allow_anonymous = anonymous > 0;
	if (!s->auto_id_prefix && !(s->auto_id_prefix = strdup("auto-")))
		return -1;
	return 0;
}

int config_finish(struct config *c, int cmdline_port, char *err, size_t errlen)
{
	return config_finish_warn(c, cmdline_port, NULL, NULL, err, errlen);
}

int config_finish_warn(struct config *c, int cmdline_port, config_warn_fn warn, void *u, char *err, size_t errlen)
{
	if (default_listener_used(c)) {
		if (!c->default_listener.port)
			c->default_listener.port = 1883;
		if (add_listener(c, &c->default_listener))
			goto nomem;
		listener_defaults(&c->default_listener);
	} else {
		listener_free(&c->default_listener);
	}
	c->local_only = c->n_listeners == 0;
	if (c->local_only) {
		/* compat: mosquitto 2.0 "local only mode", also with -p PORT */
		int port = cmdline_port > 0 ? cmdline_port : 1883;
		if (add_local(c, "127.0.0.1", port, false) || add_local(c, "::1", port, true))
			goto nomem;
		for (size_t i = 0; i < c->n_more_ports; i++)
			if (add_local(c, "127.0.0.1", c->more_ports[i], false) ||
			    add_local(c, "::1", c->more_ports[i], true))
				goto nomem;
	}
	int anonymous = c->local_only ? 1 : -1; /* local-only forces it on, as mosquitto */
	if (finish_security(&c->security, anonymous))
		goto nomem;
	for (size_t i = 0; i < c->n_listeners; i++) {
		if (finish_security(&c->listeners[i].security, anonymous))
			goto nomem;
		if (check_listener(&c->listeners[i], warn, u, err, errlen))
			return -1;
	}
	if (bridge_conf_finish(c, err, errlen))
		return -1;
	if (!c->cluster.nats_url != !c->cluster.node_id) {
		if (err && errlen)
			snprintf(err, errlen, "%s is set but %s is not: a cluster node needs both",
				 c->cluster.nats_url ? "cluster_nats_url" : "cluster_node_id",
				 c->cluster.nats_url ? "cluster_node_id" : "cluster_nats_url");
		return -1;
	}
	if (!c->user && !(c->user = strdup("mosquitto")))
		goto nomem;
	if (c->verbose)
		c->log_type = LOG_F_ALL;
	if (c->daemon && c->log_dest == LOG_D_STDERR)
		c->log_dest = LOG_D_NONE; /* a daemon's stderr is /dev/null */
	return 0;
nomem:
	if (err && errlen)
		snprintf(err, errlen, "out of memory");
	return -1;
}

/* ---- SIGHUP ------------------------------------------------------------------- */

static void rwarn(void (*warn)(const char *msg, void *u), void *u, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void rwarn(void (*warn)(const char *msg, void *u), void *u, const char *fmt, ...)
{
	if (!warn)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	warn(msg, u);
}

/* Field of keyword k in a (struct config / listener_conf / security_conf). */
static bool field_differs(const struct kw *k, const char *a, const char *b)
{
	if (k->type == T_STR || (k->flags & F_STRF))
		return !str_eq(*(char *const *)(const void *)(a + k->off), *(char *const *)(const void *)(b + k->off));
	return memcmp(a + k->off, b + k->off, k->size) != 0;
}

static void field_swap(const struct kw *k, char *a, char *b)
{
	char tmp[8];
	size_t n = k->type == T_STR || (k->flags & F_STRF) ? sizeof(char *) : k->size;
	memcpy(tmp, a + k->off, n);
	memcpy(a + k->off, b + k->off, n);
	memcpy(b + k->off, tmp, n);
}

#define SWAP(a, b, f)                                                                                          \
	do {                                                                                                   \
		__typeof__((a)->f) t_ = (a)->f;                                                                \
		(a)->f = (b)->f;                                                                               \
		(b)->f = t_;                                                                                   \
	} while (0)

/* Moves the fields of one scope that differ; reports the ones that cannot move. */
static int reload_fields(int scope, char *live, char *fresh, const char *where,
			 void (*warn)(const char *msg, void *u), void *u)
{
	int n = 0;
	for (size_t i = 0; i < N_KW; i++) {
		const struct kw *k = &KW[i];
		if (k->scope != scope || !k->size || (k->flags & F_ALIAS) || !field_differs(k, live, fresh))
			continue;
		if (k->flags & F_RELOAD) {
			field_swap(k, live, fresh);
			n++;
		} else {
			rwarn(warn, u, "%soption '%s' changed; restart vigil to apply it", where, k->name);
		}
	}
	return n;
}

int config_reload(struct config *live, struct config *fresh, void (*warn)(const char *msg, void *u), void *u)
{
	int n = reload_fields(S_GLOBAL, (char *)live, (char *)fresh, "", warn, u);
	bridge_conf_reload_warn(live, fresh, warn, u);
	n += reload_fields(S_SECURITY, (char *)&live->security, (char *)&fresh->security, "", warn, u);
	if (!str_eq(live->log_file, fresh->log_file)) /* set by log_dest file, which moved with log_dest */
		n++;
	SWAP(live, fresh, log_file);
	for (size_t i = 0; i < live->n_listeners; i++) {
		struct listener_conf *l = &live->listeners[i], *m = NULL;
		for (size_t j = 0; j < fresh->n_listeners && !m; j++)
			if (same_listener(l, &fresh->listeners[j]))
				m = &fresh->listeners[j];
		char where[96];
		snprintf(where, sizeof(where), "listener %d%s%s: ", l->port, l->unix_path ? " " : "",
			 l->unix_path ? l->unix_path : "");
		if (!m) {
			rwarn(warn, u, "%sremoved from the configuration; restart vigil to close it", where);
			continue;
		}
		n += reload_fields(S_LISTENER, (char *)l, (char *)m, where, warn, u);
		n += reload_fields(S_SECURITY, (char *)&l->security, (char *)&m->security, where, warn, u);
	}
	for (size_t j = 0; j < fresh->n_listeners; j++) {
		bool known = false;
		for (size_t i = 0; i < live->n_listeners && !known; i++)
			known = same_listener(&live->listeners[i], &fresh->listeners[j]);
		if (!known)
			rwarn(warn, u, "new listener %d%s%s; restart vigil to open it", fresh->listeners[j].port,
			      fresh->listeners[j].unix_path ? " " : "",
			      fresh->listeners[j].unix_path ? fresh->listeners[j].unix_path : "");
	}
	return n;
}
