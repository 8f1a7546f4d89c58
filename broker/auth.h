/*
 * broker/auth.h — mosquitto-compatible password and ACL files.
 *
 * Password file: lines "user:hash" as mosquitto_passwd writes them: "$6$"
 * salted SHA-512 (mosquitto 1.x/2.0), "$7$" PBKDF2-SHA512 (2.0), and
 * "$argon2id$" (2.1) when built with libargon2. Comparison is constant time.
 *
 * ACL file: "user NAME", "topic [read|write|readwrite|deny] TOPIC",
 * "pattern [read|write|readwrite|deny] TOPIC" with %c (client id) and %u
 * (username); "topic" lines before the first "user" line apply to anonymous
 * clients; "pattern" lines apply to everyone. Semantics follow mosquitto 2.0's
 * acl_file plugin (deny lines win; SUBSCRIBE checks the filter as mosquitto
 * does; delivery checks READ on the concrete topic, so a '#' subscription
 * receives only readable topics).
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

/* Load; NULL with err "file:line: reason" on failure. */
struct auth_pw *auth_pw_load(const char *path, char *err, size_t errlen);
void auth_pw_free(struct auth_pw *p);
/* 0 ok, -1 wrong password, -2 unknown user. Constant time in the hash. */
int auth_pw_check(const struct auth_pw *p, const char *user, const uint8_t *pass, size_t passlen);
size_t auth_pw_count(const struct auth_pw *p);

struct auth_acl *auth_acl_load(const char *path, char *err, size_t errlen);
void auth_acl_free(struct auth_acl *a);
/* username NULL = anonymous. topic is a topic name (READ/WRITE) or a filter
 * (SUBSCRIBE). Returns true if allowed. */
bool auth_acl_check(const struct auth_acl *a, const char *clientid, const char *username, const char *topic,
		    enum auth_access access);

/* PSK file "identity:hexkey" (psk_file). */
struct auth_psk;
struct auth_psk *auth_psk_load(const char *path, char *err, size_t errlen);
void auth_psk_free(struct auth_psk *p);
/* Returns key length or -1. */
int auth_psk_lookup(const struct auth_psk *p, const char *identity, uint8_t *key, size_t cap);

#endif
