/*
 * broker/auth_pw.c — mosquitto password files (password_file).
 *
 * Reads "user:hash" lines exactly as mosquitto 2.0.11 does and checks a
 * CONNECT password against them:
 *   $6$<salt b64>$<hash b64>         SHA-512(password || salt), one round
 *   $7$<iter>$<salt b64>$<hash b64>  PBKDF2-HMAC-SHA512, 64-byte output
 *   $argon2id$v=19$m=..,t=..,p=..$salt$hash   argon2id (mosquitto 2.1), via libargon2
 * (salt 12 bytes as mosquitto_passwd writes it; 64 is accepted as mosquitto
 * 2.1 does). Lines mosquitto drops (plain text, missing hash, bad base64 or
 * lengths) are dropped here too, as warnings, so a file mosquitto starts
 * with starts vigil as well.
 *
 * Does not: write password files, or support plain-text passwords
 * (mosquitto 2.0 rejects them as well; mosquitto_passwd -U converts).
 *
 * Invariant: every entry in the table holds a decoded salt and a 64-byte
 * hash of a known type, or an argon2id string libargon2 verifies; the
 * comparison is constant time (CRYPTO_memcmp, libargon2's own) and an
 * unknown user costs one PBKDF2 too, so timing does not reveal users.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <uthash.h>

#include "auth.h"

#define PW_HASH_LEN 64
#define PW_SALT_MAX 64

enum pw_type { PW_SHA512 = 6, PW_PBKDF2 = 7, PW_ARGON2ID = 8 };

struct pw_entry {
	char *user;
	enum pw_type type;
	int iterations;
	uint8_t salt[PW_SALT_MAX];
	size_t salt_len;
	uint8_t hash[PW_HASH_LEN];
	char *encoded; /* PW_ARGON2ID: the whole "$argon2id$v=19$m=..,t=..,p=..$salt$hash" */
	UT_hash_handle hh;
};

struct auth_pw {
	struct pw_entry *by_user;
	char **warn;
	size_t nwarn;
};

/* Strict base64 (with padding, no whitespace) into out; -1 if invalid or
 * the decoded length is not in [1, cap]. */
static int b64_decode(const char *in, uint8_t *out, size_t cap, size_t *outlen)
{
	size_t n = strlen(in);
	uint8_t *buf;
	int len, fin, rc = -1;
	EVP_ENCODE_CTX *ctx;

	if (n == 0 || n % 4 || n > INT_MAX || strspn(in, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n)
		return -1;
	buf = malloc(n);
	ctx = EVP_ENCODE_CTX_new();
	if (!buf || !ctx)
		goto out;
	EVP_DecodeInit(ctx);
	if (EVP_DecodeUpdate(ctx, buf, &len, (const unsigned char *)in, (int)n) < 0)
		goto out;
	if (EVP_DecodeFinal(ctx, buf + len, &fin) != 1)
		goto out;
	len += fin;
	if (len <= 0 || (size_t)len > cap)
		goto out;
	memcpy(out, buf, (size_t)len);
	*outlen = (size_t)len;
	rc = 0;
out:
	EVP_ENCODE_CTX_free(ctx);
	free(buf);
	return rc;
}

static int warn(struct auth_pw *p, const char *path, size_t line, const char *reason, const char *user)
{
	char msg[512], **w;

	auth_errf(msg, sizeof(msg), path, line, "%s for user \"%s\", entry ignored", reason, user);
	w = realloc(p->warn, (p->nwarn + 1) * sizeof(*w));
	if (!w)
		return -1;
	p->warn = w;
	if (!(w[p->nwarn] = strdup(msg)))
		return -1;
	p->nwarn++;
	return 0;
}

/* Parse "$6$salt$hash" / "$7$iter$salt$hash" into e; NULL or a reason. */
static const char *parse_hash(char *h, struct pw_entry *e)
{
	char *save = NULL, *tok, *end;
	long it;
	size_t hlen;

	if (!strncmp(h, "$argon2id$", 10)) {
		/* mosquitto 2.1: the standard PHC string libargon2 writes and
		 * reads; checked now so a broken line is reported at load. */
		if (!strstr(h, "$v=") || !strstr(h, "m=") || !strstr(h, ",t=") || !strstr(h, ",p="))
			return "invalid argon2id password hash";
		e->type = PW_ARGON2ID;
		e->encoded = strdup(h);
		return e->encoded ? NULL : "out of memory";
	}
	/* compat: strtok("$") as mosquitto, so "6$..." without the leading '$'
	 * is accepted the same way. */
	tok = strtok_r(h, "$", &save);
	if (!tok)
		return "missing password hash";
	if (!strcmp(tok, "6")) {
		e->type = PW_SHA512;
		e->iterations = 1;
	} else if (!strcmp(tok, "7")) {
		e->type = PW_PBKDF2;
		tok = strtok_r(NULL, "$", &save);
		if (!tok)
			return "invalid password hash";
		errno = 0;
		it = strtol(tok, &end, 10);
		if (errno || *end || it < 1 || it > INT_MAX)
			return "invalid hash iterations";
		e->iterations = (int)it;
	} else {
		return "invalid password hash type (plain-text or unsupported)";
	}
	tok = strtok_r(NULL, "$", &save);
	if (!tok)
		return "invalid password hash";
	if (b64_decode(tok, e->salt, sizeof(e->salt), &e->salt_len) || (e->salt_len != 12 && e->salt_len != 64))
		return "unable to decode password salt";
	tok = strtok_r(NULL, "$", &save);
	if (!tok)
		return "invalid password hash";
	if (b64_decode(tok, e->hash, sizeof(e->hash), &hlen) || hlen != PW_HASH_LEN)
		return "unable to decode password hash";
	return NULL;
}

static void entry_free(struct pw_entry *e)
{
	if (!e)
		return;
	free(e->user);
	if (e->encoded) {
		OPENSSL_cleanse(e->encoded, strlen(e->encoded));
		free(e->encoded);
	}
	OPENSSL_cleanse(e, sizeof(*e));
	free(e);
}

/* One line; 0 (added or skipped) or -1 out of memory. */
static int pw_line(struct auth_pw *p, char *line, const char *path, size_t lineno)
{
	char *user, *hash;
	const char *why;
	struct pw_entry *e, *old;

	if (!auth_split_entry(line, &user, &hash))
		return 0;
	if (!hash || !*hash)
		return warn(p, path, lineno, "missing password hash", user);
	if (strlen(user) > 65535 || strlen(hash) > 65535)
		return warn(p, path, lineno, "line too long", user);
	e = calloc(1, sizeof(*e));
	if (!e)
		return -1;
	why = parse_hash(hash, e);
	if (why) {
		entry_free(e);
		return warn(p, path, lineno, why, user);
	}
	if (!(e->user = strdup(user))) {
		entry_free(e);
		return -1;
	}
	HASH_FIND_STR(p->by_user, e->user, old);
	if (old) { /* mosquitto_passwd never writes duplicates; the later wins */
		HASH_DEL(p->by_user, old);
		entry_free(old);
		if (warn(p, path, lineno, "duplicate entry (replaces the earlier one)", user)) {
			entry_free(e);
			return -1;
		}
	}
	HASH_ADD_KEYPTR(hh, p->by_user, e->user, strlen(e->user), e);
	return 0;
}

void auth_pw_free(struct auth_pw *p)
{
	struct pw_entry *e, *tmp;
	size_t i;

	if (!p)
		return;
	HASH_ITER(hh, p->by_user, e, tmp) {
		HASH_DEL(p->by_user, e);
		entry_free(e);
	}
	for (i = 0; i < p->nwarn; i++)
		free(p->warn[i]);
	free(p->warn);
	free(p);
}

struct auth_pw *auth_pw_empty(void)
{
	return calloc(1, sizeof(struct auth_pw));
}

struct auth_pw *auth_pw_load(const char *path, char *err, size_t errlen)
{
	struct auth_pw *p = NULL;
	FILE *f;
	char *line = NULL;
	size_t cap = 0, lineno = 0;

	f = fopen(path, "r");
	if (!f) {
		auth_errf(err, errlen, path, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		goto nomem;
	while (getline(&line, &cap, f) != -1) {
		lineno++;
		if (pw_line(p, line, path, lineno))
			goto nomem;
	}
	if (ferror(f)) {
		auth_errf(err, errlen, path, lineno, "read error");
		goto fail;
	}
	if (line)
		OPENSSL_cleanse(line, cap);
	free(line);
	fclose(f);
	return p;
nomem:
	auth_errf(err, errlen, path, lineno, "out of memory");
fail:
	free(line);
	fclose(f);
	auth_pw_free(p);
	return NULL;
}

/* The digest of pass under e's type, salt and iterations; 0 or -1. */
static int pw_digest(const struct pw_entry *e, const uint8_t *pass, size_t passlen, uint8_t out[PW_HASH_LEN])
{
	EVP_MD_CTX *ctx;
	unsigned int n = 0;
	int ok;

	if (passlen > INT_MAX)
		return -1;
	if (e->type == PW_PBKDF2)
		return PKCS5_PBKDF2_HMAC((const char *)pass, (int)passlen, e->salt, (int)e->salt_len, e->iterations,
					 EVP_sha512(), PW_HASH_LEN, out) == 1 ? 0 : -1;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 && EVP_DigestUpdate(ctx, pass, passlen) == 1 &&
	     EVP_DigestUpdate(ctx, e->salt, e->salt_len) == 1 && EVP_DigestFinal_ex(ctx, out, &n) == 1 &&
	     n == PW_HASH_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

int auth_pw_check(const struct auth_pw *p, const char *user, const uint8_t *pass, size_t passlen)
{
	struct pw_entry *e = NULL, dummy;
	uint8_t got[PW_HASH_LEN];
	int rc;

	if (p && user)
		HASH_FIND_STR(p->by_user, user, e);
	if (!e) {
		/* Burn the time a real $7$ check costs, so a wrong user name
		 * looks like a wrong password from outside. */
		memset(&dummy, 0, sizeof(dummy));
		dummy.type = PW_PBKDF2;
		dummy.iterations = 101;
		dummy.salt_len = 12;
		(void)pw_digest(&dummy, pass ? pass : (const uint8_t *)"", pass ? passlen : 0, got);
		return -2;
	}
	/* compat: mosquitto 2.0 reads a zero-length password as no password,
	 * which never matches. Unlike mosquitto (strlen), the whole passlen is
	 * hashed: "secret\0x" does not pass for "secret". */
	if (!pass || passlen == 0) {
		if (e->type != PW_ARGON2ID)
			(void)pw_digest(e, (const uint8_t *)"", 0, got);
		return -1;
	}
	if (e->type == PW_ARGON2ID) /* constant time inside libargon2 */
		return argon2id_verify(e->encoded, pass, passlen) == ARGON2_OK ? 0 : -1;
	if (pw_digest(e, pass, passlen, got))
		return -1;
	rc = CRYPTO_memcmp(got, e->hash, PW_HASH_LEN) == 0 ? 0 : -1;
	OPENSSL_cleanse(got, sizeof(got));
	return rc;
}

size_t auth_pw_count(const struct auth_pw *p)
{
	return p ? HASH_COUNT(p->by_user) : 0;
}

size_t auth_pw_warning_count(const struct auth_pw *p)
{
	return p ? p->nwarn : 0;
}

const char *auth_pw_warning(const struct auth_pw *p, size_t i)
{
	return p && i < p->nwarn ? p->warn[i] : NULL;
}
