/*
 * broker/bridge/bridge_topic.c — topic mapping between the local and the
 * remote broker, as data: the bridge's "topic" lines (config_bridge.h made
 * local_topic = local_prefix + pattern and remote_topic = remote_prefix +
 * pattern).
 *
 * Inbound (remote -> local): the first in/both line whose remote_topic
 * matches has its remote prefix replaced by its local prefix. Outbound
 * (local -> remote): the first out/both line whose local_topic matches has
 * its local prefix replaced by its remote prefix. A topic no line matches is
 * kept as it is (mosquitto 2.0 does the same). Prefixes contain no
 * wildcards, so a matching topic always starts with the prefix.
 * Both count the message for the bridge's $SYS counters and its lazy idle
 * timer. Not here: subscriptions, connections (bridge.c).
 */
#include <stdlib.h>
#include <string.h>

#include "bridge_int.h"

/* dst_prefix + topic[strip..] as a NUL-terminated string. */
static const char *remap(const char *dst_prefix, struct mqtt_str topic, size_t strip, char *buf, size_t cap,
			 char **big)
{
	size_t a = dst_prefix ? strlen(dst_prefix) : 0, n = topic.len - strip;
	char *out = a + n + 1 <= cap ? buf : (*big = malloc(a + n + 1));
	if (!out)
		return NULL;
	memcpy(out, dst_prefix ? dst_prefix : "", a);
	memcpy(out + a, topic.p + strip, n);
	out[a + n] = 0;
	return out;
}

static bool starts_with(struct mqtt_str t, const char *prefix)
{
	size_t n = prefix ? strlen(prefix) : 0;
	return t.len >= n && memcmp(t.p, prefix ? prefix : "", n) == 0;
}

const char *bridge_topic_in(const struct client *c, struct mqtt_str topic, char *buf, size_t cap, char **big)
{
	const struct bridge_conf *bc = c->bridge->conf;
	c->bridge->n_in++;
	c->bridge->last_msg = broker_now(c->b); /* lazy: not idle */
	for (size_t i = 0; i < bc->n_topics; i++) {
		const struct bridge_topic *t = &bc->topics[i];
		if (t->dir == BRIDGE_OUT || !mqtt_topic_matches(mqtt_cstr(t->remote_topic), topic))
			continue;
		if (!starts_with(topic, t->remote_prefix))
			continue;
		return remap(t->local_prefix, topic, t->remote_prefix ? strlen(t->remote_prefix) : 0, buf, cap, big);
	}
	return remap(NULL, topic, 0, buf, cap, big);
}

void bridge_publish_out(const struct client *c, struct mqtt_str *topic, bool *retain, char *buf, size_t cap,
			char **big)
{
	const struct bridge_conf *bc = c->bridge->conf;
	c->bridge->n_out++;
	c->bridge->last_msg = broker_now(c->b); /* lazy: not idle */
	if (!bc->outgoing_retain)
		*retain = false;
	for (size_t i = 0; i < bc->n_topics; i++) {
		const struct bridge_topic *t = &bc->topics[i];
		if (t->dir == BRIDGE_IN || !mqtt_topic_matches(mqtt_cstr(t->local_topic), *topic))
			continue;
		if (!starts_with(*topic, t->local_prefix))
			continue;
		if (!t->local_prefix && !t->remote_prefix)
			return;
		const char *s = remap(t->remote_prefix, *topic, t->local_prefix ? strlen(t->local_prefix) : 0, buf,
				      cap, big);
		if (s)
			*topic = mqtt_cstr(s);
		return;
	}
}
