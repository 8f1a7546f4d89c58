/*
 * broker/subscribe.c — SUBSCRIBE, UNSUBSCRIBE and retained delivery.
 *
 * Each filter (its syntax already checked by the decoder) is added to the
 * tree (a subscription with the same filter replaces the old one: v311
 * MQTT-3.8.4-3, v5 MQTT-3.8.4-3) and acknowledged in one SUBACK with a code
 * per filter in order (v311 MQTT-3.8.4-5, v5 MQTT-3.8.4-6). Retained
 * messages are sent after the SUBACK, honouring Retain Handling, and never
 * for shared subscriptions (v5 4.8.2).
 *
 * Deliberately not here: the ACL. compat: as mosquitto's acl_file, every
 * subscription is granted and each message is checked for read access when
 * it is delivered (route.c; retained messages below), so '#' under a
 * restricted ACL is granted and receives only the readable topics.
 * Invariant: a SUBACK / UNSUBACK that would exceed the client's Maximum
 * Packet Size is found before anything changes (v5 MQTT-3.1.2-24).
 */
#include <stdlib.h>
#include <string.h>

#include "broker.h"

/* Split an optional "$share/group/" prefix off a (valid) filter. */
static void split_share(const char *full, char *group, size_t gcap, const char **filter)
{
	struct mqtt_str g, f;
	group[0] = 0;
	*filter = full;
	if (mqtt_share_split(mqtt_cstr(full), &g, &f) && g.len < gcap) {
		memcpy(group, g.p, g.len);
		group[g.len] = 0;
		*filter = (const char *)f.p;
	}
}

void subscribe_remove_all(struct session *s)
{
	struct broker *b = s->b;
	char group[256];
	for (size_t i = 0; i < s->n_subs; i++) {
		const char *f;
		split_share(s->subs[i].filter, group, sizeof(group), &f);
		subtree_remove(b->subs, mqtt_cstr(f), group[0] ? group : NULL, s);
		store_sub_remove(b, s, s->subs[i].filter);
		free(s->subs[i].filter);
	}
	s->n_subs = 0;
}

struct retained_ctx {
	struct broker *b;
	struct session *s;
	uint8_t granted;
	uint32_t sub_id;
};

static bool send_retained(void *value, void *ctx)
{
	struct message *m = value;
	struct retained_ctx *rc = ctx;
	if (!security_acl(rc->s->client, rc->s, (const char *)m->topic.p, AUTH_READ))
		return true;
	/* check_retain_source (mosquitto's default): the publisher of a retained
	 * message must still be allowed to write it when it is handed out. */
	const struct listener *l = rc->s->listener;
	if (rc->b->cfg->check_retain_source && m->origin_id && l && l->acl &&
	    !auth_acl_check(l->acl, m->origin_id, m->origin_user, (const char *)m->topic.p, AUTH_WRITE))
		return true;
	uint8_t q = (m->qos < rc->granted && !rc->b->cfg->upgrade_outgoing_qos) ? m->qos : rc->granted;
	/* v311 MQTT-3.3.1-8, v5 MQTT-3.3.1-9: RETAIN set on messages sent
	 * because of a new subscription. */
	deliver_to_session(rc->b, rc->s, m, q, true, &rc->sub_id, rc->sub_id ? 1 : 0);
	return true;
}

/* "mount_point + filter", keeping a "$share/group/" prefix in front. */
static const char *full_filter(const char *mp, struct mqtt_str f, char *buf, size_t cap, char **big)
{
	struct mqtt_str g, inner;
	if (!mp || !mqtt_share_split(f, &g, &inner))
		return topic_join(mp, f, buf, cap, big);
	/* "$share/group/" + mount point + inner filter */
	size_t pre = (size_t)(inner.p - f.p), mpl = strlen(mp);
	size_t n = pre + mpl + inner.len + 1;
	char *out = n <= cap ? buf : (*big = malloc(n));
	if (!out)
		return NULL;
	memcpy(out, f.p, pre);
	memcpy(out + pre, mp, mpl);
	memcpy(out + pre + mpl, inner.p, inner.len);
	out[n - 1] = 0;
	return out;
}

int subscribe_handle(struct client *c, const struct mqtt_frame *f)
{
	struct broker *b = c->b;
	struct session *s = c->s;
	struct mqtt_subscribe sub;
	int rc = mqtt_subscribe_decode(f, c->version, &sub);
	if (rc)
		return rc;
	uint32_t sub_id = 0;
	if (sub.props.present & MQTT_PBIT(MQTT_PROP_SUBSCRIPTION_ID))
		sub_id = sub.props.subscription_id;
	/* The SUBACK has one code per filter and no properties. */
	if (c->max_packet_out && mqtt_suback_encode(MQTT_SUBACK, sub.packet_id, (struct mqtt_str){0}, NULL, sub.count,
						    c->version, NULL, 0) > c->max_packet_out)
		return MQTT_RC_PACKET_TOO_LARGE; /* v5 MQTT-3.1.2-24: close, DISCONNECT 0x95 */

	uint8_t stack_rcs[64];
	uint8_t *rcs = sub.count <= sizeof(stack_rcs) ? stack_rcs : malloc(sub.count);
	uint8_t *send_ret = calloc(sub.count ? sub.count : 1, 1);
	if (!rcs || !send_ret) {
		if (rcs != stack_rcs)
			free(rcs);
		free(send_ret);
		return 0x97;
	}
	const uint8_t fail = c->version == MQTT_V5 ? 0x8F : 0x80;
	size_t off = 0, i = 0;
	struct mqtt_str filter;
	uint8_t opts;
	while (rc == 0 && mqtt_subscribe_next(&sub, &off, &filter, &opts)) {
		uint8_t qos = opts & 0x03;
		struct mqtt_str g, inner;
		if (!mqtt_topic_filter_valid(filter, true)) {
			/* Only a bad "$share/" name gets here (v5 MQTT-4.8.2-1/2):
			 * compat row "Shared subscriptions". */
			rcs[i++] = fail; /* v5 0x8F Topic Filter invalid; v3 0x80 */
			continue;
		}
		bool shared = mqtt_share_split(filter, &g, &inner);
		if (shared && (opts & 0x04) && c->version == MQTT_V5) {
			rc = MQTT_RC_PROTOCOL_ERROR; /* v5 MQTT-3.8.3-4: no-local on a shared subscription */
			break;
		}
		char fbuf[512], *fbig = NULL;
		const char *full = full_filter(c->l->conf->mount_point, filter, fbuf, sizeof(fbuf), &fbig);
		if (!full) {
			rcs[i++] = c->version == MQTT_V5 ? 0x97 : 0x80;
			continue;
		}
		char group[256];
		const char *tf;
		split_share(full, group, sizeof(group), &tf);
		if (qos > c->l->conf->max_qos)
			qos = (uint8_t)c->l->conf->max_qos; /* the server may grant less (v311 3.9.3, v5 3.9.3) */
		uint8_t stored = (uint8_t)((opts & ~0x03) | qos);
		if (c->version != MQTT_V5) {
			stored = qos;
			/* compat: a mosquitto bridge (protocol level with bit 7) gets
			 * no echo of its own messages and the original RETAIN flag
			 * on its v3 subscriptions, as mosquitto's is_bridge. */
			if (c->bridge_peer)
				stored |= 0x04 | 0x08;
		}
		bool replaced = false, existed = false;
		if (subtree_add(b->subs, mqtt_cstr(tf), group[0] ? group : NULL, s, stored, sub_id, &replaced) ||
		    session_sub_add(s, full, stored, sub_id, &existed)) {
			rcs[i++] = c->version == MQTT_V5 ? 0x97 : 0x80;
			free(fbig);
			continue;
		}
		struct subscription rec = {(char *)full, stored, sub_id};
		store_sub_add(b, s, &rec);
		if (b->cfg->log_type & LOG_F_SUBSCRIBE)
			log_msg(b, LOG_F_SUBSCRIBE, "%s %d %s", c->id, qos, full);
		rcs[i] = qos;
		/* Retain Handling: 0 always, 1 only if new, 2 never (v5 MQTT-3.3.1-9/10/11). */
		uint8_t rh = c->version == MQTT_V5 ? (opts >> 4) & 0x03 : 0;
		send_ret[i] = !shared && (rh == 0 || (rh == 1 && !replaced));
		i++;
		free(fbig);
	}
	if (rc == 0) {
		uint8_t hdr[16];
		size_t need = mqtt_suback_encode(MQTT_SUBACK, sub.packet_id, (struct mqtt_str){0}, rcs, i, c->version,
						 hdr, sizeof(hdr));
		uint8_t *buf = need <= sizeof(hdr) ? hdr : malloc(need);
		if (buf) {
			if (buf != hdr)
				mqtt_suback_encode(MQTT_SUBACK, sub.packet_id, (struct mqtt_str){0}, rcs, i, c->version,
						   buf, need);
			client_send(c, buf, need);
			if (buf != hdr)
				free(buf);
		}
		/* Retained messages after the SUBACK. */
		off = 0;
		for (size_t k = 0; k < i && mqtt_subscribe_next(&sub, &off, &filter, &opts); k++) {
			if (!send_ret[k] || rcs[k] >= 0x80)
				continue;
			char fbuf[512], *fbig = NULL;
			const char *full = full_filter(c->l->conf->mount_point, filter, fbuf, sizeof(fbuf), &fbig);
			if (!full)
				continue;
			struct retained_ctx rctx = {b, s, rcs[k], sub_id};
			retain_match(b->retained, mqtt_cstr(full), send_retained, &rctx);
			free(fbig);
		}
	}
	if (rcs != stack_rcs)
		free(rcs);
	free(send_ret);
	if (rc == 0)
		cluster_session_changed(b, s);
	return rc;
}

int unsubscribe_handle(struct client *c, const struct mqtt_frame *f)
{
	struct broker *b = c->b;
	struct session *s = c->s;
	struct mqtt_unsubscribe u;
	int rc = mqtt_unsubscribe_decode(f, c->version, &u);
	if (rc)
		return rc;
	if (c->max_packet_out && mqtt_suback_encode(MQTT_UNSUBACK, u.packet_id, (struct mqtt_str){0}, NULL, u.count,
						    c->version, NULL, 0) > c->max_packet_out)
		return MQTT_RC_PACKET_TOO_LARGE; /* v5 MQTT-3.1.2-24: close, DISCONNECT 0x95 */
	uint8_t stack_rcs[64];
	uint8_t *rcs = u.count <= sizeof(stack_rcs) ? stack_rcs : malloc(u.count);
	if (!rcs)
		return 0x97;
	size_t off = 0, i = 0;
	struct mqtt_str filter;
	while (mqtt_unsubscribe_next(&u, &off, &filter)) {
		char fbuf[512], *fbig = NULL;
		const char *full = full_filter(c->l->conf->mount_point, filter, fbuf, sizeof(fbuf), &fbig);
		bool found = false;
		if (full) {
			char group[256];
			const char *tf;
			split_share(full, group, sizeof(group), &tf);
			found = session_sub_remove(s, full);
			if (found) {
				subtree_remove(b->subs, mqtt_cstr(tf), group[0] ? group : NULL, s);
				store_sub_remove(b, s, full);
			}
			if (b->cfg->log_type & LOG_F_UNSUBSCRIBE)
				log_msg(b, LOG_F_UNSUBSCRIBE, "%s %s", c->id, full);
		}
		rcs[i++] = found ? 0x00 : 0x11; /* v5: Success / No subscription existed */
		free(fbig);
	}
	uint8_t hdr[16];
	size_t need = mqtt_suback_encode(MQTT_UNSUBACK, u.packet_id, (struct mqtt_str){0}, rcs, i, c->version, hdr,
					 sizeof(hdr));
	uint8_t *buf = need <= sizeof(hdr) ? hdr : malloc(need);
	if (buf) {
		if (buf != hdr)
			mqtt_suback_encode(MQTT_UNSUBACK, u.packet_id, (struct mqtt_str){0}, rcs, i, c->version, buf, need);
		client_send(c, buf, need);
		if (buf != hdr)
			free(buf);
	}
	if (rcs != stack_rcs)
		free(rcs);
	cluster_session_changed(b, s);
	return 0;
}

int subscribe_restore(struct session *s, const char *full, uint8_t options, uint32_t sub_id)
{
	char group[256];
	const char *tf;
	bool replaced, existed;
	if (!mqtt_topic_filter_valid(mqtt_cstr(full), true))
		return -1;
	split_share(full, group, sizeof(group), &tf);
	if (subtree_add(s->b->subs, mqtt_cstr(tf), group[0] ? group : NULL, s, options, sub_id, &replaced))
		return -1;
	if (session_sub_add(s, full, options, sub_id, &existed)) {
		subtree_remove(s->b->subs, mqtt_cstr(tf), group[0] ? group : NULL, s);
		return -1;
	}
	return 0;
}
