/*
 * broker/auth_acl.c — mosquitto ACL files (acl_file) and the ACL check.
 *
 * File syntax as mosquitto 2.0.11's acl_file parser:
 *   user NAME                           rest of the line, trimmed
 *   topic [read|write|readwrite|deny] TOPIC
 *   pattern [read|write|readwrite|deny] TOPIC   (%c client id, %u username)
 * "topic" lines before the first "user" line belong to anonymous clients;
 * "pattern" lines apply to everyone. No access word means readwrite (so
 * "topic read" alone is the topic "read", readwrite, as in mosquitto).
 * A topic with spaces needs the access word. Errors: "file:line: reason".
 *
 * Check, as mosquitto 2.0.11's mosquitto_acl_check + acl_file plugin:
 *  1. '$' rules (auth_dollar_check).
 *  2. SUBSCRIBE is always allowed: 2.0.11's acl_file returns success for
 *     it ("FIXME - implement ACL subscription strings"; verified against
 *     the installed broker: SUBACK 0 for a filter the user cannot read).
 *     What a client receives is limited by READ on each delivered topic.
 *  3. The client's own list (its "user" section, or the anonymous one):
 *     a matching deny denies; else a matching rule with the access bit
 *     allows; else go on. (An own-list allow beats a deny pattern.)
 *  4. Patterns, only if any exist: a username or client id with '+' or
 *     '#' is denied outright; then a matching deny pattern denies, a
 *     matching pattern with the access bit allows.
 *  5. Otherwise denied.
 * Topic matching is MQTT filter matching (ACL topic as filter), with '$'
 * topics matched only by ACL topics that start with '$'.
 *
 * Deliberate differences (all narrow access, none widens it):
 *  - an allow pattern is skipped when a %c/%u value it uses contains '/'
 *    or is empty (mosquitto 2.0 substitutes it, so client id "alice/x"
 *    would reach "alice/x/..." under "pattern readwrite %c/#"); deny
 *    patterns still substitute such values, so they still deny.
 * Deliberate leniencies (files mosquitto rejects are accepted): tabs count
 * as spaces; '#' comments may be indented.
 *
 * Invariant: each list holds valid filters; a check allocates only for a
 * substituted pattern longer than 255 bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "auth.h"

#define ACL_DENY 0 /* access value of a "deny" rule */
#define ACL_RW (AUTH_READ | AUTH_WRITE)

struct acl_rule {
	char *topic;
	int access; /* AUTH_READ | AUTH_WRITE bits, or ACL_DENY */
	bool has_c, has_u;
};

struct acl_list {
	struct acl_rule *r;
	size_t n, cap;
};

struct acl_user {
	char *name;
	struct acl_list rules;
	UT_hash_handle hh;
};

struct auth_acl {
	struct acl_user *users;
	struct acl_list anon;     /* topic lines before the first user line */
	struct acl_list patterns; /* pattern lines, everyone */
};

enum verdict { V_NOMATCH, V_ALLOW, V_DENY };

/* MQTT filter matching: filter f (valid) against topic name t. */
static bool topic_match(const char *f, const char *t)
{
	const char *fe, *te;

	if ((f[0] == '$') != (t[0] == '$'))
		return false; /* v311 MQTT-4.7.2-1, v5 MQTT-4.7.2-1 */
	if (strpbrk(t, "+#"))
		return false; /* not a topic name */
	for (;;) {
		fe = strchrnul(f, '/');
		te = strchrnul(t, '/');
		if (fe - f == 1 && f[0] == '#')
			return true;
		if (!(fe - f == 1 && f[0] == '+') && (fe - f != te - t || memcmp(f, t, (size_t)(fe - f))))
			return false;
		if (!*fe && !*te)
			return true;
		if (!*te)
			return !strcmp(fe, "/#"); /* "a/#" matches "a" */
		if (!*fe)
			return false;
		f = fe + 1;
		t = te + 1;
	}
}

/* Level-by-level walk of two filters. The first level of a '$' topic is
 * never matched by a wildcard (v311 MQTT-4.7.2-1, v5 MQTT-4.7.2-1). */
static bool level_is(const char *p, const char *e, char w)
{
	return e - p == 1 && p[0] == w;
}

/* Can some topic name match both filters a and b? */
static bool filters_intersect(const char *a, const char *b)
{
	bool first = true;
	for (;;) {
		const char *ae = strchrnul(a, '/'), *be = strchrnul(b, '/');
		bool aw = level_is(a, ae, '+') || level_is(a, ae, '#');
		bool bw = level_is(b, be, '+') || level_is(b, be, '#');
		if (first && ((aw && b[0] == '$') || (bw && a[0] == '$')))
			return false;
		first = false;
		if (level_is(a, ae, '#') || level_is(b, be, '#'))
			return true;
		if (!aw && !bw && (ae - a != be - b || memcmp(a, b, (size_t)(ae - a))))
			return false;
		if (!*ae && !*be)
			return true;
		if (!*ae)
			return !strcmp(be, "/#");
		if (!*be)
			return !strcmp(ae, "/#");
		a = ae + 1;
		b = be + 1;
	}
}

/* Does every topic matching filter f also match filter d? */
static bool filter_covers(const char *d, const char *f)
{
	bool first = true;
	for (;;) {
		const char *de = strchrnul(d, '/'), *fe = strchrnul(f, '/');
		if (first && d[0] != '$' && f[0] == '$')
			return false;
		first = false;
		if (level_is(d, de, '#'))
			return true;
		if (level_is(f, fe, '#'))
			return false;
		if (level_is(d, de, '+')) {
			/* any single level of f is covered */
		} else if (level_is(f, fe, '+') || de - d != fe - f || memcmp(d, f, (size_t)(de - d))) {
			return false;
		}
		if (!*de && !*fe)
			return true;
		if (!*fe)
			return !strcmp(de, "/#");
		if (!*de)
			return false;
		d = de + 1;
		f = fe + 1;
	}
}

/* A valid topic filter: '+' and '#' fill a whole level, '#' only last. */
static bool filter_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 65535)
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] != '+' && s[i] != '#')
			continue;
		if (i > 0 && s[i - 1] != '/')
			return false;
		if (s[i] == '+' && i + 1 < n && s[i + 1] != '/')
			return false;
		if (s[i] == '#' && i + 1 != n)
			return false;
	}
	return true;
}

bool auth_dollar_check(const char *topic, enum auth_access access)
{
	if (!topic || topic[0] != '$')
		return true;
	if (!strncmp(topic, "$SYS", 4)) {
		/* Only the bridge state topic may be written to. */
		if (access & AUTH_WRITE)
			return topic_match("$SYS/broker/connection/+/state", topic);
		return true;
	}
	if (!strncmp(topic, "$share", 6))
		return access == AUTH_SUBSCRIBE;
	return true;
}

static void list_free(struct acl_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->r[i].topic);
	free(l->r);
	l->r = NULL;
	l->n = l->cap = 0;
}

static int list_add(struct acl_list *l, const char *topic, int access)
{
	struct acl_rule *r;
	size_t cap;

	if (l->n == l->cap) {
		cap = l->cap ? l->cap * 2 : 4;
		r = realloc(l->r, cap * sizeof(*r));
		if (!r)
			return -1;
		l->r = r;
		l->cap = cap;
	}
	r = &l->r[l->n];
	if (!(r->topic = strdup(topic)))
		return -1;
	r->access = access;
	r->has_c = strstr(topic, "%c") != NULL;
	r->has_u = strstr(topic, "%u") != NULL;
	l->n++;
	return 0;
}

void auth_acl_free(struct auth_acl *a)
{
	struct acl_user *u, *tmp;

	if (!a)
		return;
	HASH_ITER(hh, a->users, u, tmp) {
		HASH_DEL(a->users, u);
		list_free(&u->rules);
		free(u->name);
		free(u);
	}
	list_free(&a->anon);
	list_free(&a->patterns);
	free(a);
}

/* The list topic lines go to: the user's (created on first use) or the
 * anonymous one. NULL when out of memory. */
static struct acl_list *user_list(struct auth_acl *a, const char *user)
{
	struct acl_user *u;

	if (!user)
		return &a->anon;
	HASH_FIND_STR(a->users, user, u);
	if (u)
		return &u->rules; /* repeated "user X" sections merge */
	u = calloc(1, sizeof(*u));
	if (!u || !(u->name = strdup(user))) {
		free(u);
		return NULL;
	}
	HASH_ADD_KEYPTR(hh, a->users, u->name, strlen(u->name), u);
	return &u->rules;
}

static int parse_access(const char *w)
{
	if (!strcmp(w, "read"))
		return AUTH_READ;
	if (!strcmp(w, "write"))
		return AUTH_WRITE;
	if (!strcmp(w, "readwrite"))
		return ACL_RW;
	if (!strcmp(w, "deny"))
		return ACL_DENY;
	return -1;
}

/* One line (trailing whitespace already gone). *user is the current user
 * section (owned, replaced on "user" lines). 0 or -1 with err set. */
static int acl_line(struct auth_acl *a, char *buf, char **user, const char *path, size_t ln, char *err,
		    size_t errlen)
{
	char *save = NULL, *tok, *acc, *topic, *rest;
	struct acl_list *l;
	int access;
	bool pattern;

	tok = strtok_r(buf, " \t", &save);
	if (!tok || tok[0] == '#')
		return 0;
	if (!strcmp(tok, "user")) {
		rest = strtok_r(NULL, "", &save);
		rest = rest ? auth_trim(rest) : NULL;
		if (!rest || !*rest) {
			auth_errf(err, errlen, path, ln, "missing username");
			return -1;
		}
		free(*user);
		if (!(*user = strdup(rest))) {
			auth_errf(err, errlen, path, ln, "out of memory");
			return -1;
		}
		return 0;
	}
	if (strcmp(tok, "topic") && strcmp(tok, "pattern")) {
		auth_errf(err, errlen, path, ln, "invalid line \"%s\" (expected user, topic or pattern)", tok);
		return -1;
	}
	pattern = tok[0] == 'p';
	acc = strtok_r(NULL, " \t", &save);
	if (!acc) {
		auth_errf(err, errlen, path, ln, "empty topic");
		return -1;
	}
	rest = strtok_r(NULL, "", &save);
	if (rest && *(topic = auth_trim(rest))) {
		access = parse_access(acc);
		if (access < 0) {
			auth_errf(err, errlen, path, ln, "invalid topic access type \"%s\"", acc);
			return -1;
		}
	} else {
		topic = acc; /* compat: one word is the topic, readwrite */
		access = ACL_RW;
	}
	if (!filter_valid(topic)) {
		auth_errf(err, errlen, path, ln, "invalid ACL topic \"%s\"", topic);
		return -1;
	}
	l = pattern ? &a->patterns : user_list(a, *user);
	if (!l || list_add(l, topic, access)) {
		auth_errf(err, errlen, path, ln, "out of memory");
		return -1;
	}
	return 0;
}

struct auth_acl *auth_acl_load(const char *path, char *err, size_t errlen)
{
	struct auth_acl *a = NULL;
	FILE *f;
	char *line = NULL, *user = NULL;
	size_t cap = 0, ln = 0, n;
	ssize_t got;

	f = fopen(path, "r");
	if (!f) {
		auth_errf(err, errlen, path, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		auth_errf(err, errlen, path, 0, "out of memory");
		goto fail;
	}
	while ((got = getline(&line, &cap, f)) != -1) {
		ln++;
		n = (size_t)got;
		if (strlen(line) != n) {
			auth_errf(err, errlen, path, ln, "NUL byte in line");
			goto fail;
		}
		while (n > 0 && (line[n - 1] == ' ' || (line[n - 1] >= '\t' && line[n - 1] <= '\r')))
			line[--n] = '\0';
		if (acl_line(a, line, &user, path, ln, err, errlen))
			goto fail;
	}
	if (ferror(f)) {
		auth_errf(err, errlen, path, ln, "read error");
		goto fail;
	}
	free(user);
	free(line);
	fclose(f);
	return a;
fail:
	free(user);
	free(line);
	fclose(f);
	auth_acl_free(a);
	return NULL;
}

size_t auth_acl_count(const struct auth_acl *a)
{
	struct acl_user *u;
	size_t n;

	if (!a)
		return 0;
	n = a->anon.n + a->patterns.n;
	for (u = a->users; u; u = u->hh.next)
		n += u->rules.n;
	return n;
}

/* Substitute %c / %u in pattern topic t (mosquitto: anywhere, '%' followed
 * by 'c' or 'u'). *tainted is set when a substituted value is empty or
 * contains '/'. The result goes to buf when it fits in cap bytes, else to
 * a malloc'd string; NULL only when out of memory. */
static char *substitute(const char *t, const char *cid, const char *user, bool *tainted, char *buf, size_t cap)
{
	size_t n = 0, i, cl = strlen(cid), ul = user ? strlen(user) : 0;
	const char *v;
	char *out, *o;

	*tainted = false;
	for (i = 0; t[i]; i++) {
		if (t[i] == '%' && (t[i + 1] == 'c' || (t[i + 1] == 'u' && user))) {
			n += t[i + 1] == 'c' ? cl : ul;
			i++;
		} else {
			n++;
		}
	}
	out = o = n < cap ? buf : malloc(n + 1);
	if (!out)
		return NULL;
	for (i = 0; t[i]; i++) {
		if (t[i] == '%' && (t[i + 1] == 'c' || (t[i + 1] == 'u' && user))) {
			v = t[i + 1] == 'c' ? cid : user;
			if (!*v || strchr(v, '/'))
				*tainted = true;
			o = stpcpy(o, v);
			i++;
		} else {
			*o++ = t[i];
		}
	}
	*o = '\0';
	return out;
}

/* SUBSCRIBE: a deny rule covering the whole filter refuses it; a read rule
 * that some topic of the filter can match grants it (what is actually
 * delivered is still checked per message with READ). */
static enum verdict check_sub(const struct acl_list *l, bool pat, const char *cid, const char *user,
			      const char *filter)
{
	bool allow = false, tainted;
	char *f, buf[256];

	for (size_t i = 0; i < l->n; i++) {
		const struct acl_rule *r = &l->r[i];
		if (r->access != ACL_DENY && !(r->access & AUTH_READ))
			continue;
		const char *t = r->topic;
		f = NULL;
		tainted = false;
		if (pat && (r->has_c || r->has_u)) {
			if ((r->has_u && !user) || !cid)
				continue;
			f = substitute(r->topic, cid, user, &tainted, buf, sizeof(buf));
			if (!f)
				return V_DENY;
			t = f;
		}
		if (r->access == ACL_DENY) {
			if (filter_covers(t, filter)) {
				if (f && f != buf)
					free(f);
				return V_DENY;
			}
		} else if (!tainted && filters_intersect(t, filter)) {
			allow = true;
		}
		if (f && f != buf)
			free(f);
	}
	return allow ? V_ALLOW : V_NOMATCH;
}

/* One pass over list l: deny rules first (any match denies), then allow
 * rules with the access bit. Patterns are substituted when pat is set. */
static enum verdict check_list(const struct acl_list *l, bool pat, const char *cid, const char *user,
			       const char *topic, int access)
{
	size_t i;
	int pass;
	bool hit, tainted;
	const struct acl_rule *r;
	char *f, buf[256];

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < l->n; i++) {
			r = &l->r[i];
			if ((pass == 0) != (r->access == ACL_DENY))
				continue;
			if (pass == 1 && !(r->access & access))
				continue;
			if (!pat || (!r->has_c && !r->has_u)) {
				hit = topic_match(r->topic, topic);
			} else {
				if ((r->has_u && !user) || !cid)
					continue; /* %u never matches anonymous clients */
				f = substitute(r->topic, cid, user, &tainted, buf, sizeof(buf));
				if (!f)
					return V_DENY; /* out of memory: fail closed */
				hit = topic_match(f, topic) && (pass == 0 || !tainted);
				if (f != buf)
					free(f);
			}
			if (hit)
				return pass == 0 ? V_DENY : V_ALLOW;
		}
	}
	return V_NOMATCH;
}

bool auth_acl_check(const struct auth_acl *a, const char *clientid, const char *username, const char *topic,
		    enum auth_access access)
{
	const struct acl_list *own = NULL;
	struct acl_user *u;
	enum verdict v;

	if (!topic || !*topic)
		return false;
	if (!auth_dollar_check(topic, access))
		return false;
	if (!a)
		return true;
	if (username) {
		HASH_FIND_STR(a->users, username, u);
		if (u)
			own = &u->rules;
	} else {
		own = &a->anon;
	}
	if (access == AUTH_SUBSCRIBE) {
		/* compat: mosquitto 2.0.11 grants every subscription and filters at
		 * delivery; vigil refuses a filter that could never deliver anything
		 * readable, or that a deny rule covers (SUBACK 0x80 / 0x87). */
		v = own ? check_sub(own, false, NULL, NULL, topic) : V_NOMATCH;
		if (v == V_DENY)
			return false;
		bool ok = v == V_ALLOW;
		if (a->patterns.n && clientid && !((username && strpbrk(username, "+#")) || strpbrk(clientid, "+#"))) {
			enum verdict pv = check_sub(&a->patterns, true, clientid, username, topic);
			if (pv == V_DENY)
				return false;
			ok = ok || pv == V_ALLOW;
		}
		return ok;
	}
	if (own) {
		v = check_list(own, false, NULL, NULL, topic, (int)access);
		if (v != V_NOMATCH)
			return v == V_ALLOW;
	}
	if (a->patterns.n == 0 || !clientid)
		return false;
	/* mosquitto: a '+' or '#' in either name would turn a pattern into a
	 * wildcard, so such clients get nothing from patterns at all. */
	if ((username && strpbrk(username, "+#")) || strpbrk(clientid, "+#"))
		return false;
	return check_list(&a->patterns, true, clientid, username, topic, (int)access) == V_ALLOW;
}
