/*
 * broker/security.c — who may connect, and what they may do (ACL), for the
 * broker's handlers.
 *
 * Admission (compat: mosquitto 2.0.11's handle__connect and
 * mosquitto_unpwd_check, observed on the same bytes): a listener that takes
 * the user name from TLS (use_identity_as_username / use_subject_as_username)
 * admits exactly the clients that have that identity, whatever the CONNECT
 * says, and ignores allow_anonymous and password_file. Every other client is
 * judged by its CONNECT: without a user name it is anonymous (allow_anonymous
 * decides); with one, a password_file must hold the user and the password;
 * without a password_file a user name proves nothing, so allow_anonymous
 * decides again. A zero-length user name or password counts as absent.
 *
 * ACL: the acl_file of the listener the session last connected through (or
 * the global one) decides; with no acl_file everything is allowed except what
 * mosquitto's '$' rule denies (auth_dollar_check: writes to $SYS except
 * "$SYS/broker/connection/+/state", and PUBLISH to "$share...").
 *
 * Does not: send CONNACKs or close anything (connect.c and the reload in
 * broker.c do), or parse the files (auth*.c).
 */

#include "broker.h"

bool security_password_ok(const struct listener *l, const char *username, const uint8_t *pass, size_t passlen)
{
	if (!username || !username[0])
		return l->sec->allow_anonymous != 0;
	if (!l->pw) /* no password_file: a user name is no credential */
		return l->sec->allow_anonymous != 0;
	return auth_pw_check(l->pw, username, pass, pass ? passlen : 0) == 0;
}

bool security_uses_tls_identity(const struct listener *l)
{
	return l->tls && (l->conf->use_identity_as_username || l->conf->use_subject_as_username);
}

const char *security_tls_identity(const struct listener *l, const struct net_conn *conn)
{
	const struct listener_conf *lc = l->conf;
	if (lc->psk_hint) /* compat: a PSK listener only knows PSK identities */
		return lc->use_identity_as_username ? net_conn_psk_identity(conn) : NULL;
	return lc->use_identity_as_username ? net_conn_cert_cn(conn) : net_conn_cert_subject(conn);
}

bool security_acl(struct client *c, struct session *s, const char *topic, enum auth_access a)
{
	struct listener *l = c ? c->l : s ? s->listener : NULL;
	if (!auth_dollar_check(topic, a))
		return false; /* '$SYS' and '$share' rules, with or without an ACL file */
	if (!l || !l->acl)
		return true;
	const char *id = c && c->id ? c->id : s ? s->id : "";
	const char *user = c ? c->username : s ? s->username : NULL;
	return auth_acl_check(l->acl, id, user, topic, a);
}
