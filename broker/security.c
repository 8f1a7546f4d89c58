/*
 * broker/security.c — ACL decisions for the broker's handlers.
 *
 * The acl_file of the listener the session last connected through (or the
 * global one) decides; with no acl_file everything is allowed except writes
 * to $SYS, which only the broker publishes, bridge state topics excepted
 * (compat: as mosquitto).
 */
#include <string.h>

#include "broker.h"

bool security_acl(struct client *c, struct session *s, const char *topic, enum auth_access a)
{
	struct listener *l = c ? c->l : s ? s->listener : NULL;
	/* compat: as mosquitto, $SYS is the broker's, except the bridge state
	 * topics that bridges publish (and leave as their will). */
	if (a == AUTH_WRITE && strncmp(topic, "$SYS", 4) == 0 && (topic[4] == '/' || topic[4] == 0) &&
	    !mqtt_topic_matches(mqtt_cstr("$SYS/broker/connection/+/state"), mqtt_cstr(topic)))
		return false;
	if (!l || !l->acl)
		return true;
	const char *id = c && c->id ? c->id : s ? s->id : "";
	const char *user = c ? c->username : s ? s->username : NULL;
	return auth_acl_check(l->acl, id, user, topic, a);
}
