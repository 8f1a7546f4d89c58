/*
 * tests/unit/test_auth.c — password, PSK and ACL files against mosquitto
 * 2.0.11's formats and semantics.
 *
 * Password files are made at test time by the real mosquitto_passwd
 * (Debian's 2.0.11), plus fixed lines it wrote earlier, plus entries
 * computed here with OpenSSL from a known salt. ACL semantics follow
 * mosquitto's acl_file plugin; the ACL is not part of the MQTT spec, so
 * only the '$' topic rule cites it (v311 MQTT-4.7.2-1, v5 MQTT-4.7.2-1).
 */
#include <argon2.h>
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "auth.h"

#define MOSQUITTO_PASSWD "/usr/bin/mosquitto_passwd"

struct tmp {
	char dir[64];
	char path[8][128];
	int n;
};

static const char *tmp_file(struct tmp *t, const char *name, const char *text)
{
	FILE *f;
	char *p;

	if (!t->dir[0]) {
		strcpy(t->dir, "/tmp/vigil-auth-XXXXXX");
		ck_assert_ptr_nonnull(mkdtemp(t->dir));
	}
	ck_assert_int_lt(t->n, 8);
	p = t->path[t->n++];
	strcpy(p, t->dir);
	strcat(p, "/");
	strcat(p, name);
	if (text) {
		f = fopen(p, "w");
		ck_assert_ptr_nonnull(f);
		fputs(text, f);
		fclose(f);
	}
	return p;
}

static void tmp_clean(struct tmp *t)
{
	int i;

	for (i = 0; i < t->n; i++)
		unlink(t->path[i]);
	if (t->dir[0])
		rmdir(t->dir);
}

/* Run mosquitto_passwd with args; returns its exit status. */
static int run_passwd(char *const argv[])
{
	pid_t pid;
	int st, fd;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(MOSQUITTO_PASSWD, argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int check(const struct auth_pw *p, const char *user, const char *pass)
{
	return auth_pw_check(p, user, (const uint8_t *)pass, pass ? strlen(pass) : 0);
}

static struct auth_pw *load_pw(const char *path)
{
	char err[256] = "";
	struct auth_pw *p = auth_pw_load(path, err, sizeof(err));

	ck_assert_msg(p != NULL, "load failed: %s", err);
	return p;
}

/* ---- passwords ---- */

START_TEST(pw_real_tool_pbkdf2_default)
{
	struct tmp t = {0};
	const char *f = tmp_file(&t, "pw", NULL);
	struct auth_pw *p;

	ck_assert_int_eq(run_passwd((char *const[]){"mosquitto_passwd", "-c", "-b", (char *)f, "alice", "secret", NULL}), 0);
	ck_assert_int_eq(run_passwd((char *const[]){"mosquitto_passwd", "-b", (char *)f, "car ol", "p w:x", NULL}), 0);
	ck_assert_int_eq(run_passwd((char *const[]){"mosquitto_passwd", "-b", (char *)f, "emp", "", NULL}), 0);
	p = load_pw(f);
	ck_assert_uint_eq(auth_pw_count(p), 3);
	ck_assert_uint_eq(auth_pw_warning_count(p), 0);
	ck_assert_int_eq(check(p, "alice", "secret"), 0);
	ck_assert_int_eq(check(p, "alice", "Secret"), -1);
	ck_assert_int_eq(check(p, "alice", "secret "), -1);
	ck_assert_int_eq(check(p, "alice", NULL), -1);
	ck_assert_int_eq(check(p, "bob", "secret"), -2);
	ck_assert_int_eq(check(p, "Alice", "secret"), -2);
	ck_assert_int_eq(check(p, "car ol", "p w:x"), 0);
	ck_assert_int_eq(check(p, "car ol", "p w"), -1);
	/* compat: mosquitto 2.0.11 reads a zero-length password as absent and
	 * refuses it even for a user created with '' (checked against the
	 * installed broker: CONNACK 5). */
	ck_assert_int_eq(check(p, "emp", ""), -1);
	ck_assert_int_eq(check(p, "emp", NULL), -1);
	ck_assert_int_eq(check(p, "emp", "x"), -1);
	auth_pw_free(p);
	tmp_clean(&t);
}
END_TEST

START_TEST(pw_real_tool_sha512)
{
	struct tmp t = {0};
	const char *f = tmp_file(&t, "pw", NULL);
	struct auth_pw *p;
	FILE *fp;
	char line[512];

	ck_assert_int_eq(run_passwd((char *const[]){"mosquitto_passwd", "-H", "sha512", "-c", "-b", (char *)f, "dave", "hunter2", NULL}), 0);
	fp = fopen(f, "r");
	ck_assert_ptr_nonnull(fp);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), fp));
	fclose(fp);
	ck_assert_msg(!strncmp(line, "dave:$6$", 8), "-H sha512 writes $6$: %s", line);
	p = load_pw(f);
	ck_assert_int_eq(check(p, "dave", "hunter2"), 0);
	ck_assert_int_eq(check(p, "dave", "hunter3"), -1);
	auth_pw_free(p);
	tmp_clean(&t);
}
END_TEST

/* Lines the real mosquitto_passwd 2.0.11 wrote (passwords: secret, hunter2). */
START_TEST(pw_fixed_lines_from_real_tool)
{
	struct tmp t = {0};
	const char *f = tmp_file(&t, "pw",
				 "alice:$7$101$qj3MLzDkXOZ68E+B$1QKJB+gEnuOuGkZHjLgKerOUHA+TAbsaVTQ5TKaiIXbX9tldMcRL70augwjAcEWyaqRlJ082B1D2joerXw3qZQ==\n"
				 "dave:$6$amjl6uq99BDnnQK7$82S6j3wZiWcT0KjteWZvz+BoIAPZjE7ewvXWl/LrakeWD0BZ4ThbO3EOa5EuTQ3JLlMoqOmRbh3lG8ZJ1Ci67g==\n");
	struct auth_pw *p = load_pw(f);

	ck_assert_uint_eq(auth_pw_count(p), 2);
	ck_assert_int_eq(check(p, "alice", "secret"), 0);
	ck_assert_int_eq(check(p, "alice", "hunter2"), -1);
	ck_assert_int_eq(check(p, "dave", "hunter2"), 0);
	ck_assert_int_eq(check(p, "dave", "secret"), -1);
	/* Unlike mosquitto (which hashes up to the first NUL), the whole
	 * password counts. */
	ck_assert_int_eq(auth_pw_check(p, "alice", (const uint8_t *)"secret\0zz", 9), -1);
	auth_pw_free(p);
	tmp_clean(&t);
}
END_TEST

static void b64(const uint8_t *in, int n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, n);
}

/* $6$ and $7$ built here from a known salt: SHA-512(password || salt) once;
 * PBKDF2-HMAC-SHA512 with the iteration count from the line. */
START_TEST(pw_hand_computed)
{
	static const uint8_t salt[12] = "0123456789ab";
	uint8_t h6[64], h7[64];
	unsigned int n = 0;
	char s64[32], h64[100], k64[100], text[600];
	struct tmp t = {0};
	struct auth_pw *p;

	{
		EVP_MD_CTX *c = EVP_MD_CTX_new();
		EVP_DigestInit_ex(c, EVP_sha512(), NULL);
		EVP_DigestUpdate(c, "pa55", 4);
		EVP_DigestUpdate(c, salt, sizeof(salt));
		EVP_DigestFinal_ex(c, h6, &n);
		EVP_MD_CTX_free(c);
	}
	ck_assert_int_eq(PKCS5_PBKDF2_HMAC("pa55", 4, salt, sizeof(salt), 1000, EVP_sha512(), 64, h7), 1);
	b64(salt, sizeof(salt), s64);
	b64(h6, 64, h64);
	b64(h7, 64, k64);
	snprintf(text, sizeof(text), "# made by hand\n\nsix:$6$%s$%s\nseven:$7$1000$%s$%s\n", s64, h64, s64, k64);
	p = load_pw(tmp_file(&t, "pw", text));
	ck_assert_uint_eq(auth_pw_count(p), 2);
	ck_assert_int_eq(check(p, "six", "pa55"), 0);
	ck_assert_int_eq(check(p, "six", "pa56"), -1);
	ck_assert_int_eq(check(p, "seven", "pa55"), 0);
	ck_assert_int_eq(check(p, "seven", "pa5"), -1);
	auth_pw_free(p);
	tmp_clean(&t);
}
END_TEST

static bool has_warning(const struct auth_pw *p, const char *needle);

/* mosquitto 2.1's argon2id lines: the PHC string libargon2 writes, made
 * here with libargon2 itself (a fixed salt and small costs). */
START_TEST(pw_argon2id)
{
	static const uint8_t salt[16] = "vigil-salt-16byt";
	char enc[256], text[400];
	struct tmp t = {0};

	ck_assert_int_eq(argon2id_hash_encoded(2, 1024, 1, "s3cret", 6, salt, sizeof(salt), 32, enc, sizeof(enc)),
			 ARGON2_OK);
	ck_assert(strncmp(enc, "$argon2id$v=19$m=1024,t=2,p=1$", 30) == 0);
	snprintf(text, sizeof(text), "argo:%s\nbroken:$argon2id$nonsense\n", enc);
	struct auth_pw *p = load_pw(tmp_file(&t, "pw", text));
	ck_assert_uint_eq(auth_pw_count(p), 1);
	ck_assert(has_warning(p, ":2:"));
	ck_assert_int_eq(check(p, "argo", "s3cret"), 0);
	ck_assert_int_eq(check(p, "argo", "s3cres"), -1);
	ck_assert_int_eq(check(p, "argo", ""), -1);
	ck_assert_int_eq(check(p, "broken", "x"), -2);
	auth_pw_free(p);
	tmp_clean(&t);
}
END_TEST

static bool has_warning(const struct auth_pw *p, const char *needle)
{
	size_t i;

	for (i = 0; i < auth_pw_warning_count(p); i++)
		if (strstr(auth_pw_warning(p, i), needle))
			return true;
	return false;
}

/* mosquitto 2.0.11 logs these entries and drops them, but still starts
 * (checked with the installed broker): so do we, as warnings. */
START_TEST(pw_malformed_lines_are_warnings_with_line_numbers)
{
	struct tmp t = {0};
	const char *f = tmp_file(&t, "pw",
				 "# comment: with colon\n"                                       /* 1 skipped */
				 "\n"                                                            /* 2 skipped */
				 "plain:secret\n"                                                /* 3 plain text */
				 "nohash:\n"                                                     /* 4 */
				 "nocolon\n"                                                     /* 5 silently skipped */
				 "bad6:$6$xx$yy\n"                                               /* 6 bad salt */
				 "zero:$7$0$qj3MLzDkXOZ68E+B$1QKJB+gEnuOuGkZHjLgKerOUHA+TAbsaVTQ5TKaiIXbX9tldMcRL70augwjAcEWyaqRlJ082B1D2joerXw3qZQ==\n" /* 7 */
				 "short:$6$amjl6uq99BDnnQK7$82S6j3wZiWcT0Kjt\n"                  /* 8 short hash */
				 "eight:$8$amjl6uq99BDnnQK7$82S6j3wZiWcT0Kjt\n"                  /* 9 unknown type */
				 "nosalt:$7$101\n"                                               /* 10 */
				 "  dave  :  $6$amjl6uq99BDnnQK7$82S6j3wZiWcT0KjteWZvz+BoIAPZjE7ewvXWl/LrakeWD0BZ4ThbO3EOa5EuTQ3JLlMoqOmRbh3lG8ZJ1Ci67g==  \r\n");
	struct auth_pw *p = load_pw(f);

	ck_assert_uint_eq(auth_pw_count(p), 1);
	ck_assert_int_eq(check(p, "dave", "hunter2"), 0); /* names and hashes are trimmed */
	ck_assert_int_eq(check(p, "plain", "secret"), -2);
	ck_assert_int_eq(check(p, "nohash", ""), -2);
	ck_assert_uint_eq(auth_pw_warning_count(p), 7);
	ck_assert(has_warning(p, ":3: invalid password hash type"));
	ck_assert(has_warning(p, ":4: missing password hash"));
	ck_assert(has_warning(p, ":6: unable to decode password salt"));
	ck_assert(has_warning(p, ":7: invalid hash iterations"));
	ck_assert(has_warning(p, ":8: unable to decode password hash"));
	ck_assert(has_warning(p, ":9: invalid password hash type"));
	ck_assert(has_warning(p, ":10: invalid password hash"));
	ck_assert(!strncmp(auth_pw_warning(p, 0), f, strlen(f)));
	ck_assert_ptr_null(auth_pw_warning(p, 7));
	auth_pw_free(p);
	tmp_clean(&t);
}
END_TEST

START_TEST(pw_duplicate_user_later_wins)
{
	struct tmp t = {0};
	const char *f = tmp_file(&t, "pw",
				 "dave:$6$amjl6uq99BDnnQK7$82S6j3wZiWcT0KjteWZvz+BoIAPZjE7ewvXWl/LrakeWD0BZ4ThbO3EOa5EuTQ3JLlMoqOmRbh3lG8ZJ1Ci67g==\n"
				 "dave:$7$101$qj3MLzDkXOZ68E+B$1QKJB+gEnuOuGkZHjLgKerOUHA+TAbsaVTQ5TKaiIXbX9tldMcRL70augwjAcEWyaqRlJ082B1D2joerXw3qZQ==\n");
	struct auth_pw *p = load_pw(f);

	ck_assert_uint_eq(auth_pw_count(p), 1);
	ck_assert_int_eq(check(p, "dave", "secret"), 0);
	ck_assert_int_eq(check(p, "dave", "hunter2"), -1);
	ck_assert(has_warning(p, ":2: duplicate entry"));
	auth_pw_free(p);
	tmp_clean(&t);
}
END_TEST

START_TEST(pw_missing_file_and_null)
{
	char err[256] = "";

	ck_assert_ptr_null(auth_pw_load("/nonexistent/vigil/pw", err, sizeof(err)));
	ck_assert_msg(!strncmp(err, "/nonexistent/vigil/pw: cannot open", 34), "%s", err);
	auth_pw_free(NULL);
	ck_assert_uint_eq(auth_pw_count(NULL), 0);
	ck_assert_int_eq(check(NULL, "x", "y"), -2);
}
END_TEST

/* A reload whose password or PSK file no longer loads installs these
 * (compat: mosquitto then admits no user name and no PSK identity). */
START_TEST(empty_tables_refuse_everyone)
{
	struct auth_pw *p = auth_pw_empty();
	struct auth_psk *k = auth_psk_empty();
	uint8_t key[16];

	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(k);
	ck_assert_uint_eq(auth_pw_count(p), 0);
	ck_assert_int_eq(check(p, "alice", "apass"), -2);
	ck_assert_int_eq(check(p, "alice", ""), -2);
	ck_assert_int_eq(check(p, "", "x"), -2);
	ck_assert_int_eq(auth_psk_lookup(k, "id1", key, sizeof(key)), -1);
	auth_pw_free(p);
	auth_psk_free(k);
}
END_TEST

/* ---- PSK ---- */

START_TEST(psk_file)
{
	struct tmp t = {0};
	char err[256] = "";
	uint8_t key[16];
	struct auth_psk *p;

	p = auth_psk_load(tmp_file(&t, "psk", "# ids\nid1:0a0B0c\n\n  id 2 : abc \nid1:00ff\n"), err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_int_eq(auth_psk_lookup(p, "id1", key, sizeof(key)), 2); /* later line wins */
	ck_assert_int_eq(key[0], 0x00);
	ck_assert_int_eq(key[1], 0xff);
	ck_assert_int_eq(auth_psk_lookup(p, "id 2", key, sizeof(key)), 2); /* odd: leading 0 nibble */
	ck_assert_int_eq(key[0], 0x0a);
	ck_assert_int_eq(key[1], 0xbc);
	ck_assert_int_eq(auth_psk_lookup(p, "id3", key, sizeof(key)), -1);
	ck_assert_int_eq(auth_psk_lookup(p, "id1", key, 1), -1);
	auth_psk_free(p);
	auth_psk_free(NULL);

	ck_assert_ptr_null(auth_psk_load(tmp_file(&t, "bad1", "id1:00\nid2:xyz\n"), err, sizeof(err)));
	ck_assert_msg(strstr(err, "bad1:2: psk for identity \"id2\" contains non-hexadecimal"), "%s", err);
	ck_assert_ptr_null(auth_psk_load(tmp_file(&t, "bad2", "id1:\n"), err, sizeof(err)));
	ck_assert_msg(strstr(err, "bad2:1: empty psk"), "%s", err);
	tmp_clean(&t);
}
END_TEST

/* ---- ACL ---- */

static const char ACL_TEXT[] =
	"# anonymous section\n"
	"topic read anon/#\n"
	"topic deny anon/secret\n"
	"\n"
	"user alice\n"
	"topic read a/#\n"
	"topic deny a/secret\n"
	"topic write w/+\n"
	"topic readwrite rw/topic\n"
	"user bob smith  \n"
	"topic rw/x\n"
	"topic read with space/x\n"
	"user dave\n"
	"topic readwrite c/#\n"
	"user frank\n"
	"topic read #\n"
	"topic read $SYS/#\n"
	"user grace\n"
	"topic readwrite $SYS/#\n"
	"user carol\n"
	"topic deny #\n"
	"user alice\n"
	"topic read more/#\n"
	"pattern read p/%u/%c\n"
	"pattern readwrite c/%c/#\n"
	"pattern deny c/%c/locked\n"
	"pattern write u/%u\n"
	"pattern read pub/#\n"
	"pattern deny pub/%c\n";

static struct auth_acl *load_acl(struct tmp *t, const char *text)
{
	char err[256] = "";
	struct auth_acl *a = auth_acl_load(tmp_file(t, "acl", text), err, sizeof(err));

	ck_assert_msg(a != NULL, "load failed: %s", err);
	return a;
}

#define R AUTH_READ
#define W AUTH_WRITE
#define S AUTH_SUBSCRIBE
static const char *show(const char *s)
{
	return s ? s : "(null)";
}
#define ALLOW(cid, user, topic, acc) \
	ck_assert_msg(auth_acl_check(a, cid, user, topic, acc), "should allow %s %s %s %d", show(cid), show(user), topic, acc)
#define DENY(cid, user, topic, acc) \
	ck_assert_msg(!auth_acl_check(a, cid, user, topic, acc), "should deny %s %s %s %d", show(cid), show(user), topic, acc)

START_TEST(acl_anonymous_section)
{
	struct tmp t = {0};
	struct auth_acl *a = load_acl(&t, ACL_TEXT);

	ck_assert_uint_eq(auth_acl_count(a), 20); /* 14 topic + 6 pattern lines */
	ALLOW("c1", NULL, "anon/x", R);
	ALLOW("c1", NULL, "anon", R); /* "anon/#" covers its parent */
	DENY("c1", NULL, "anon/x", W);
	DENY("c1", NULL, "anon/secret", R); /* deny wins over the earlier allow */
	DENY("c1", NULL, "a/x", R);         /* alice's lines are not anonymous */
	/* %c patterns apply to anonymous clients; %u patterns never do */
	ALLOW("c1", NULL, "c/c1/t", W);
	DENY("c1", NULL, "p/c1", R);
	DENY("c1", NULL, "u/", W);
	DENY("c1", NULL, "u/%u", W);
	/* A named user without a section gets no anonymous rules */
	DENY("c1", "nobody", "anon/x", R);
	auth_acl_free(a);
	tmp_clean(&t);
}
END_TEST

START_TEST(acl_user_sections)
{
	struct tmp t = {0};
	struct auth_acl *a = load_acl(&t, ACL_TEXT);

	ALLOW("c", "alice", "a/b", R);
	ALLOW("c", "alice", "a/b/c/d", R);
	DENY("c", "alice", "a/b", W);         /* read only */
	DENY("c", "alice", "a/secret", R);    /* deny after the allow still wins */
	ALLOW("c", "alice", "a/secret/x", R); /* deny a/secret is that topic only */
	ALLOW("c", "alice", "w/x", W);
	DENY("c", "alice", "w/x", R);   /* write only */
	DENY("c", "alice", "w/x/y", W); /* '+' is one level */
	ALLOW("c", "alice", "w/", W);   /* '+' matches an empty level */
	ALLOW("c", "alice", "rw/topic", R);
	ALLOW("c", "alice", "rw/topic", W);
	DENY("c", "alice", "rw/topic/x", R);
	ALLOW("c", "alice", "more/x", R); /* a second "user alice" section merges */
	DENY("c", "alice", "b", R);
	DENY("c", "alice", "anon/x", R);
	/* "user bob smith" (trailing blanks trimmed), no access word = readwrite */
	ALLOW("c", "bob smith", "rw/x", R);
	ALLOW("c", "bob smith", "rw/x", W);
	ALLOW("c", "bob smith", "with space/x", R);
	DENY("c", "bob", "rw/x", R);
	/* carol: "topic deny #" denies before any pattern is consulted */
	DENY("c", "carol", "c/c/t", W);
	DENY("c", "carol", "x", R);
	auth_acl_free(a);
	tmp_clean(&t);
}
END_TEST

START_TEST(acl_patterns)
{
	struct tmp t = {0};
	struct auth_acl *a = load_acl(&t, ACL_TEXT);

	ALLOW("c1", "alice", "p/alice/c1", R);
	DENY("c1", "alice", "p/alice/c1", W);
	DENY("c1", "alice", "p/alice/c2", R);
	DENY("c1", "alice", "p/bob/c1", R);
	ALLOW("c1", "erin", "u/erin", W);
	DENY("c1", "erin", "u/erin/x", W);
	DENY("c1", "erin", "u/erin", R);
	ALLOW("x", "erin", "c/x/other", W);
	ALLOW("x", "erin", "c/x", R);
	DENY("x", "erin", "c/x/locked", W); /* deny pattern wins among patterns */
	DENY("x", "erin", "c/y/other", W);
	/* dave's own "readwrite c/#" is checked before patterns: it wins over
	 * the deny pattern, as in mosquitto */
	ALLOW("x", "dave", "c/x/locked", W);
	/* "pattern read pub/#" is not substituted; "pattern deny pub/%c" is */
	ALLOW("z", "erin", "pub/q", R);
	DENY("q", "erin", "pub/q", R);
	{ /* a substitution longer than the check's stack buffer */
		char cid[301], topic[400];

		memset(cid, 'k', 300);
		cid[300] = '\0';
		snprintf(topic, sizeof(topic), "c/%s/t", cid);
		ALLOW(cid, "erin", topic, W);
		snprintf(topic, sizeof(topic), "c/%s/locked", cid);
		DENY(cid, "erin", topic, W);
		snprintf(topic, sizeof(topic), "c/%.299s/t", cid);
		DENY(cid, "erin", topic, W);
	}
	auth_acl_free(a);
	tmp_clean(&t);
}
END_TEST

/* A client id or user name must not turn a pattern into a wider one. */
START_TEST(acl_pattern_values_cannot_widen)
{
	struct tmp t = {0};
	struct auth_acl *a = load_acl(&t, ACL_TEXT);

	/* mosquitto: '+' or '#' in either name denies all pattern access */
	DENY("+", "erin", "c/anything/t", W);
	DENY("a#", "erin", "c/a#/t", W);
	DENY("x", "er+in", "c/x/t", W);
	DENY("x", "#", "u/#", W);
	/* ... but not access from the user's own section */
	ALLOW("bad#", "alice", "a/x", R);
	/* vigil: a value with '/' or an empty value does not enable an allow
	 * pattern (mosquitto 2.0 would let client id "x/y" into c/x/y/...) */
	DENY("x/y", "erin", "c/x/y/t", W);
	DENY("x", "", "u/", W);
	/* ... yet a deny pattern still applies to it */
	DENY("q/r", "erin", "pub/q/r", R);
	ALLOW("z", "erin", "pub/q/r", R);
	/* %c without a client id: nothing from patterns */
	DENY(NULL, "erin", "pub/q", R);
	auth_acl_free(a);
	tmp_clean(&t);
}
END_TEST

START_TEST(acl_dollar_topics)
{
	struct tmp t = {0};
	struct auth_acl *a = load_acl(&t, ACL_TEXT);

	/* v311 MQTT-4.7.2-1, v5 MQTT-4.7.2-1: '#' does not match '$' topics */
	ALLOW("c", "frank", "any/thing", R);
	ALLOW("c", "frank", "$SYS/broker/uptime", R); /* via "topic read $SYS/#" */
	DENY("c", "alice", "$SYS/broker/uptime", R);
	DENY("c", "dave", "$SYS/c/x", R);
	/* writing to $SYS: only the bridge state topic, whatever the ACL says */
	ALLOW("c", "grace", "$SYS/broker/uptime", R);
	DENY("c", "grace", "$SYS/broker/uptime", W);
	ALLOW("c", "grace", "$SYS/broker/connection/br1/state", W);
	DENY("c", "grace", "$SYS/broker/connection/br1/state/x", W);
	/* "$share/..." is a filter, never a topic to read or write */
	DENY("c", "frank", "$share/g/any", R);
	ck_assert(auth_dollar_check("$share/g/a/b", S));
	ck_assert(!auth_dollar_check("$share/g/a/b", W));
	ck_assert(auth_dollar_check("$other/x", W));
	ck_assert(auth_dollar_check("plain/x", W));
	auth_acl_free(a);
	tmp_clean(&t);
}
END_TEST

/* SUBSCRIBE (vigil; compat: mosquitto 2.0.11's acl_file grants every
 * SUBSCRIBE and only filters delivery): a filter is granted when some
 * readable rule can match a topic of it, refused when a deny rule covers it
 * or nothing readable could ever be delivered. READ on each delivered topic
 * still limits what a '#' subscriber receives. The broker passes the filter
 * without its "$share/group/" prefix. */
START_TEST(acl_subscribe_is_granted_read_filters_delivery)
{
	struct tmp t = {0};
	struct auth_acl *a = load_acl(&t, ACL_TEXT);

	ALLOW("c", "alice", "#", S);
	ALLOW("c", "alice", "a/+", S);
	ALLOW("c", "alice", "more/x", S);
	DENY("c", "alice", "b/+/c", S);
	DENY("c", "alice", "a/secret", S);
	DENY("c", "alice", "$SYS/#", S);
	ALLOW("c", "frank", "$SYS/#", S);
	DENY("c", "carol", "x", S);
	DENY("c", "carol", "#", S);
	ALLOW("c", NULL, "+/+", S);
	DENY("c", NULL, "anon/secret", S);
	ALLOW("c", "alice", "p/alice/c", S); /* pattern with %u and %c */
	DENY("c", "alice", "p/bob/c", S);
	/* what a '#' subscriber of alice's then receives */
	ALLOW("c", "alice", "a/b", R);
	DENY("c", "alice", "b/x/c", R);
	DENY("c", "alice", "a/secret", R);
	auth_acl_free(a);
	tmp_clean(&t);
}
END_TEST

START_TEST(acl_empty_file_and_no_file)
{
	struct tmp t = {0};
	struct auth_acl *a = load_acl(&t, "# nothing\n\n   \n");

	ck_assert_uint_eq(auth_acl_count(a), 0);
	DENY("c", NULL, "x", R);
	DENY("c", "alice", "x", W);
	DENY("c", "alice", "x", S); /* nothing readable: refused (vigil) */
	auth_acl_free(a);
	a = NULL; /* no acl_file: all allowed but the '$' rules */
	ALLOW("c", "alice", "x", W);
	ALLOW("c", NULL, "x/y", R);
	DENY("c", NULL, "$SYS/x", W);
	DENY("c", "alice", "", R);
	auth_acl_free(NULL);
	ck_assert_uint_eq(auth_acl_count(NULL), 0);
	tmp_clean(&t);
}
END_TEST

START_TEST(acl_syntax_quirks)
{
	struct tmp t = {0};
	struct auth_acl *a = load_acl(&t,
				      "user u1\n"
				      "topic read\n"          /* the topic "read", readwrite */
				      "   topic   write   x/y   \n"
				      "\t# indented comment\n"
				      "topic\tdeny\tx/y/z\n"
				      "pattern x/%c/%u\n"
				      "pattern read 100%/%c%d\n");

	ALLOW("c", "u1", "read", W);
	ALLOW("c", "u1", "read", R);
	ALLOW("c", "u1", "x/y", W);
	DENY("c", "u1", "x/y", R);
	ALLOW("k", "u1", "x/k/u1", R); /* pattern without access word: readwrite */
	ALLOW("k", "u1", "x/k/u1", W);
	ALLOW("k", "u1", "100%/k%d", R); /* '%' not followed by c/u is literal */
	DENY("k", "u1", "100%/kd", R);
	auth_acl_free(a);
	tmp_clean(&t);
}
END_TEST

static void acl_bad(const char *text, const char *want)
{
	struct tmp t = {0};
	char err[256] = "";
	struct auth_acl *a = auth_acl_load(tmp_file(&t, "acl", text), err, sizeof(err));

	ck_assert_ptr_null(a);
	ck_assert_msg(strstr(err, want) != NULL, "got \"%s\", want \"%s\"", err, want);
	ck_assert_msg(!strncmp(err, t.path[0], strlen(t.path[0])), "%s", err);
	tmp_clean(&t);
}

START_TEST(acl_malformed_lines)
{
	char err[256] = "";

	ck_assert_ptr_null(auth_acl_load("/nonexistent/vigil/acl", err, sizeof(err)));
	ck_assert_msg(!strncmp(err, "/nonexistent/vigil/acl: cannot open", 35), "%s", err);
	acl_bad("topic\n", ":1: empty topic");
	acl_bad("# c\ntopic rread foo\n", ":2: invalid topic access type \"rread\"");
	acl_bad("\n\ntopic read a/#/b\n", ":3: invalid ACL topic \"a/#/b\"");
	acl_bad("topic read a+\n", ":1: invalid ACL topic");
	acl_bad("topic read a/b#\n", ":1: invalid ACL topic");
	acl_bad("topic a b\n", ":1: invalid topic access type \"a\"");
	acl_bad("user alice\nuser   \n", ":2: missing username");
	acl_bad("user alice\nbogus x\n", ":2: invalid line");
	acl_bad("pattern\n", ":1: empty topic");
}
END_TEST

static Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *pw = tcase_create("password"), *psk = tcase_create("psk"), *acl = tcase_create("acl");

	tcase_add_test(pw, pw_real_tool_pbkdf2_default);
	tcase_add_test(pw, pw_real_tool_sha512);
	tcase_add_test(pw, pw_fixed_lines_from_real_tool);
	tcase_add_test(pw, pw_hand_computed);
	tcase_add_test(pw, pw_argon2id);
	tcase_add_test(pw, pw_malformed_lines_are_warnings_with_line_numbers);
	tcase_add_test(pw, pw_duplicate_user_later_wins);
	tcase_add_test(pw, pw_missing_file_and_null);
	tcase_add_test(pw, empty_tables_refuse_everyone);
	tcase_add_test(psk, psk_file);
	tcase_add_test(acl, acl_anonymous_section);
	tcase_add_test(acl, acl_user_sections);
	tcase_add_test(acl, acl_patterns);
	tcase_add_test(acl, acl_pattern_values_cannot_widen);
	tcase_add_test(acl, acl_dollar_topics);
	tcase_add_test(acl, acl_subscribe_is_granted_read_filters_delivery);
	tcase_add_test(acl, acl_empty_file_and_no_file);
	tcase_add_test(acl, acl_syntax_quirks);
	tcase_add_test(acl, acl_malformed_lines);
	suite_add_tcase(s, pw);
	suite_add_tcase(s, psk);
	suite_add_tcase(s, acl);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(auth_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
