/*
 * broker/auth.h — mosquitto-compatible password, ACL and PSK files.
 *
 * Password file: lines "user:hash" as mosquitto_passwd writes them: "$6$"
 * salted SHA-512 (mosquitto 1.x/2.0, -H sha512) and "$7$" PBKDF2-SHA512
 * (2.0 default), and "$argon2id$v=19$m=..,t=..,p=..$salt$hash" as mosquitto
 * 2.1 writes them (verified by libargon2). Comparison is constant time.
 * Implemented in auth_pw.c.
 *
 * ACL file: "user NAME", "topic [read|write|readwrite|deny] TOPIC",
 * "pattern [read|write|readwrite|deny] TOPIC" with %c (client id) and %u
 * (username); "topic" lines before the first "user" line apply to anonymous
 * clients; "pattern" lines apply to everyone. Semantics follow mosquitto
 * 2.0.11's acl_file plugin: deny lines win within a list; SUBSCRIBE is
 * always granted (2.0.11 does not check filters); delivery checks READ on
 * the concrete topic, so a '#' subscription receives only readable topics.
 * Implemented in auth_acl.c; PSK file and shared helpers in auth.c.
 */
#ifndef VIGIL_AUTH_H
#define VIGIL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum auth_access {
	AUTH_READ = 1,      /* a message is delivered to the client */
	AUTH_WRITE = 2,     /* the client publishes (also wills) */
	AUTH_SUBSCRIBE = 4, /* the client subscribes to a filter */
};

struct auth_pw;  /* a loaded password file */
struct auth_acl; /* a loaded ACL file */

/* Load; NULL with err "file:line: reason" on failure (unreadable file, out
 * of memory). Entries mosquitto 2.0 drops with an error but still starts
 * (no hash, plain text, unknown "$N$", bad base64, wrong salt/hash length)
 * are skipped too and listed as warnings, "file:line: reason". */
struct auth_pw *auth_pw_load(const char *path, char *err, size_t errlen);
void auth_pw_free(struct auth_pw *p);
/* A password file without users: every user name is refused (a reload
 * whose file no longer loads fails closed). NULL: out of memory. */
struct auth_pw *auth_pw_empty(void);
/* 0 ok, -1 wrong password, -2 unknown user. Constant time in the hash.
 * pass NULL (no password field) or passlen 0 never authenticates: mosquitto
 * 2.0 reads an empty password as absent (compat). */
int auth_pw_check(const struct auth_pw *p, const char *user, const uint8_t *pass, size_t passlen);
size_t auth_pw_count(const struct auth_pw *p);
size_t auth_pw_warning_count(const struct auth_pw *p);
const char *auth_pw_warning(const struct auth_pw *p, size_t i); /* NULL past the end */

struct auth_acl *auth_acl_load(const char *path, char *err, size_t errlen);
void auth_acl_free(struct auth_acl *a);
/* username NULL = anonymous. topic is a topic name (READ/WRITE) or a filter
 * (SUBSCRIBE). Returns true if allowed. */
bool auth_acl_check(const struct auth_acl *a, const char *clientid, const char *username, const char *topic,
		    enum auth_access access);
/* mosquitto's broker-wide rule for '$' topics, applied with or without an
 * ACL file (auth_acl_check applies it too): WRITE to "$SYS/..." is denied
 * except "$SYS/broker/connection/+/state"; "$share/..." is only a filter, so
 * READ/WRITE on it are denied. Everything else: true. */
bool auth_dollar_check(const char *topic, enum auth_access access);
/* Rules loaded (topic + pattern lines), for logging. */
size_t auth_acl_count(const struct auth_acl *a);

/* PSK file "identity:hexkey" (psk_file). */
struct auth_psk;
struct auth_psk *auth_psk_load(const char *path, char *err, size_t errlen);
void auth_psk_free(struct auth_psk *p);
/* No identities: every PSK handshake fails. NULL: out of memory. */
struct auth_psk *auth_psk_empty(void);
/* Returns key length or -1. */
int auth_psk_lookup(const struct auth_psk *p, const char *identity, uint8_t *key, size_t cap);

/* ---- internal: shared by auth.c, auth_pw.c, auth_acl.c only ---- */
char *auth_trim(char *s); /* strip leading/trailing isspace, in place */
void auth_errf(char *err, size_t errlen, const char *path, size_t line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Split "user:secret" as mosquitto's pwfile parser does (strtok on ':',
 * both parts trimmed; text after a second ':' is ignored). Returns false
 * for a line to skip silently ('#' in column 0, no ':'); *secret is NULL
 * when nothing follows the ':'. */
bool auth_split_entry(char *line, char **user, char **secret);

#endif
