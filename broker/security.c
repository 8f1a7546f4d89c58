/*
 * broker/security.c — ACL decisions for the broker's handlers.
 *
 * The acl_file of the listener the session last connected through (or the
 * global one) decides; with no acl_file everything is allowed except what
 * mosquitto's '$' rule denies (auth_dollar_check: writes to $SYS except
 * "$SYS/broker/connection/+/state", and PUBLISH to "$share...").
 */

#include "broker.h"

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
