/*
 * broker/auth.c — what the auth files share (line splitting, trimming,
 * "file:line: reason" errors) and the PSK file (psk_file).
 *
 * Does not: hash passwords (auth_pw.c), check ACLs (auth_acl.c), or talk
 * TLS: auth_psk_lookup only hands the key bytes to whoever asks.
 *
 * Invariant: a loaded auth_psk holds every identity with a non-empty, even
 * or odd length hex key already decoded; lookups never allocate.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <uthash.h>

#include "auth.h"

char *auth_trim(char *s)
{
	size_t n;

	while (*s && isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

void auth_errf(char *err, size_t errlen, const char *path, size_t line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || errlen == 0)
		return;
	if (line)
		n = snprintf(err, errlen, "%s:%zu: ", path, line);
	else
		n = snprintf(err, errlen, "%s: ", path);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/* compat: mosquitto's pwfile__parse skips '#' only in column 0 and any line
 * without ':', then takes strtok(":") tokens 1 and 2. */
bool auth_split_entry(char *line, char **user, char **secret)
{
	char *save = NULL, *u, *s;

	*user = *secret = NULL;
	if (line[0] == '#' || !strchr(line, ':'))
		return false;
	u = strtok_r(line, ":", &save);
	if (!u)
		return false;
	s = strtok_r(NULL, ":", &save);
	*user = auth_trim(u);
	*secret = s ? auth_trim(s) : NULL;
	return true;
}

/* ---- PSK file ---- */

struct psk_entry {
	char *identity;
	uint8_t *key;
	size_t keylen;
	UT_hash_handle hh;
};

struct auth_psk {
	struct psk_entry *by_id;
};

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode hex; an odd length gets a leading zero nibble (as OpenSSL's
 * BN_hex2bn, which mosquitto uses, reads it). */
static uint8_t *hex_decode(const char *hex, size_t *outlen)
{
	size_t n = strlen(hex), len = (n + 1) / 2, i, j = 0;
	uint8_t *out = malloc(len ? len : 1);

	if (!out)
		return NULL;
	i = 0;
	if (n % 2) {
		out[j++] = (uint8_t)hexval(hex[0]);
		i = 1;
	}
	for (; i < n; i += 2)
		out[j++] = (uint8_t)(hexval(hex[i]) << 4 | hexval(hex[i + 1]));
	*outlen = len;
	return out;
}

void auth_psk_free(struct auth_psk *p)
{
	struct psk_entry *e, *tmp;

	if (!p)
		return;
	HASH_ITER(hh, p->by_id, e, tmp) {
		HASH_DEL(p->by_id, e);
		free(e->identity);
		if (e->key)
			OPENSSL_cleanse(e->key, e->keylen);
		free(e->key);
		free(e);
	}
	free(p);
}

/* One "identity:hexkey" line into p; 0, or -1 with err set. */
static int psk_add(struct auth_psk *p, char *line, const char *path, size_t lineno, char *err, size_t errlen)
{
	char *id, *hex;
	struct psk_entry *e, *old;

	if (!auth_split_entry(line, &id, &hex))
		return 0;
	if (!hex || !*hex) {
		auth_errf(err, errlen, path, lineno, "empty psk for identity \"%s\"", id);
		return -1;
	}
	if (strspn(hex, "0123456789abcdefABCDEF") != strlen(hex)) {
		auth_errf(err, errlen, path, lineno, "psk for identity \"%s\" contains non-hexadecimal characters", id);
		return -1;
	}
	e = calloc(1, sizeof(*e));
	if (!e || !(e->identity = strdup(id)) || !(e->key = hex_decode(hex, &e->keylen))) {
		if (e)
			free(e->identity);
		free(e);
		auth_errf(err, errlen, path, lineno, "out of memory");
		return -1;
	}
	HASH_FIND_STR(p->by_id, e->identity, old);
	if (old) { /* the later line wins */
		HASH_DEL(p->by_id, old);
		free(old->identity);
		OPENSSL_cleanse(old->key, old->keylen);
		free(old->key);
		free(old);
	}
	HASH_ADD_KEYPTR(hh, p->by_id, e->identity, strlen(e->identity), e);
	return 0;
}

struct auth_psk *auth_psk_empty(void)
{
	return calloc(1, sizeof(struct auth_psk));
}

struct auth_psk *auth_psk_load(const char *path, char *err, size_t errlen)
{
	struct auth_psk *p = NULL;
	FILE *f;
	char *line = NULL;
	size_t cap = 0, lineno = 0;

	f = fopen(path, "r");
	if (!f) {
		auth_errf(err, errlen, path, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		auth_errf(err, errlen, path, 0, "out of memory");
		goto fail;
	}
	while (getline(&line, &cap, f) != -1) {
		lineno++;
		if (psk_add(p, line, path, lineno, err, errlen))
			goto fail;
	}
	if (ferror(f)) {
		auth_errf(err, errlen, path, lineno, "read error");
		goto fail;
	}
	free(line);
	fclose(f);
	return p;
fail:
	free(line);
	fclose(f);
	auth_psk_free(p);
	return NULL;
}

int auth_psk_lookup(const struct auth_psk *p, const char *identity, uint8_t *key, size_t cap)
{
	struct psk_entry *e;

	if (!p || !identity)
		return -1;
	HASH_FIND_STR(p->by_id, identity, e);
	if (!e || e->keylen > cap || e->keylen > INT32_MAX)
		return -1;
	memcpy(key, e->key, e->keylen);
	return (int)e->keylen;
}
