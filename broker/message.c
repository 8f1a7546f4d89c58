/*
 * broker/message.c — refcounted immutable application messages.
 *
 * One allocation holds the header, the topic (NUL-terminated), the payload
 * and the forwardable v5 properties. A message is never changed after
 * message_new; every receiver shares it. message_unref NULLs the caller's
 * pointer so a dangling use faults at once. It is allocated from the
 * broker's accounting (mem.c), so a message that does not fit under
 * memory_limit is never made.
 */
#include <stdlib.h>
#include <string.h>

#include "broker.h"

struct message *message_new(struct mem *mem, struct mqtt_str topic, struct mqtt_str payload, struct mqtt_str props,
			    uint8_t qos, bool retain, const char *origin_id, const char *origin_user)
{
	size_t il = retain && origin_id ? strlen(origin_id) + 1 : 0;
	size_t ul = retain && origin_user ? strlen(origin_user) + 1 : 0;
	size_t n = sizeof(struct message) + (size_t)topic.len + 1 + payload.len + props.len + il + ul;
	struct message *m = mem_obj_alloc(mem, n, true, false); /* refused at memory_limit */
	if (!m)
		return NULL;
	memset(m, 0, sizeof(*m));
	m->size = (uint32_t)n;
	m->mem = mem;
	if (mem) {
		mem->msgs++;
		mem->msg_bytes += payload.len;
	}
	m->refs = 1;
	m->qos = qos;
	m->retain = retain;
	uint8_t *p = m->data;
	if (topic.len)
		memcpy(p, topic.p, topic.len);
	p[topic.len] = 0;
	m->topic = (struct mqtt_str){p, topic.len};
	p += topic.len + 1;
	if (payload.len)
		memcpy(p, payload.p, payload.len);
	m->payload = (struct mqtt_str){p, payload.len};
	p += payload.len;
	if (props.len)
		memcpy(p, props.p, props.len);
	m->props = (struct mqtt_str){p, props.len};
	p += props.len;
	if (il) {
		memcpy(p, origin_id, il);
		m->origin_id = (const char *)p;
		p += il;
	}
	if (ul) {
		memcpy(p, origin_user, ul);
		m->origin_user = (const char *)p;
	}
	return m;
}

void message_unref(struct message **mp)
{
	struct message *m = *mp;
	if (!m)
		return;
	*mp = NULL;
	if (--m->refs == 0) {
		if (m->mem) {
			m->mem->msgs--;
			m->mem->msg_bytes -= m->payload.len;
		}
		mem_obj_free(m->mem, m, m->size);
	}
}

bool message_expired(const struct message *m, uint64_t now)
{
	/* '>': a Message Expiry Interval of 0 still reaches the subscribers
	 * connected when it arrives (compat: mosquitto delivers it too), but it
	 * is never kept for later ones (v5 MQTT-3.3.2-5). */
	return m->has_expiry && now > m->expiry_at;
}

const char *topic_join(const char *prefix, struct mqtt_str t, char *buf, size_t cap, char **big)
{
	size_t pl = prefix ? strlen(prefix) : 0;
	size_t n = pl + t.len + 1;
	char *out = n <= cap ? buf : (*big = malloc(n));
	if (!out)
		return NULL;
	if (pl)
		memcpy(out, prefix, pl);
	if (t.len)
		memcpy(out + pl, t.p, t.len);
	out[n - 1] = 0;
	return out;
}
