/*
 * broker/store/mosqdb_import.c — a user switching from mosquitto keeps the
 * state mosquitto saved: mosquitto.db is walked with the reader (mosqdb.c)
 * and every record is handed to the core through broker/restore.h, step 2 of
 * its contract (store_db_start then writes one snapshot and runs step 4).
 *
 * What becomes what (mosquitto 2.0.11 semantics, see mosquitto-compat.md):
 *   retained message       -> restore_retained (expired ones and $SYS skipped)
 *   client (session)       -> restore_session; expiry counted across the
 *                             downtime from the saved wall-clock deadline, or
 *                             from now for a session connected when saved
 *   subscription           -> restore_sub (QoS, No Local, Retain As Published,
 *                             identifier; mosquitto keeps no Retain Handling)
 *   outbound client message-> restore_delivery: queued, or in flight with its
 *                             packet id (PUBLISH resent with DUP, or PUBREL)
 *   inbound QoS 2 awaiting PUBREL -> restore_qos2_in, and the message is
 *                             delivered now (mosquitto had held it back until
 *                             PUBREL; vigil delivers on PUBLISH), so it is
 *                             neither lost nor delivered twice
 * Not imported: wills (mosquitto 2.0 does not save them), QoS 0 messages,
 * anything whose Message Expiry passed while mosquitto was down.
 * Invariant: the file is only read; any record the core refuses for lack of
 * memory stops start-up with the file named (nothing half-imported is kept:
 * start-up ends). Records mosquitto itself would skip are skipped and counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mosqdb.h"
#include "restore.h"
#include "store_int.h"

struct imsg {
	uint64_t store_id;
	struct message *m;
	UT_hash_handle hh;
};

/* Ids of sessions not imported, so that their records are not either. */
struct iskip {
	UT_hash_handle hh;
	char id[];
};

struct imp {
	struct broker *b;
	int64_t now;        /* wall clock, s */
	struct imsg *msgs;  /* by store id: one core message per stored message */
	struct iskip *dropped;
	char err[300];      /* set on a fatal error (no memory) */
	uint32_t version;
	size_t retained, sessions, subs, queued, inflight, qos2_in;
	size_t expired, skipped, orphans, suspect_users;
};

static char *cstr(struct mosqdb_bytes v)
{
	char *s = malloc(v.len + 1);
	if (s) {
		if (v.len)
			memcpy(s, v.p, v.len);
		s[v.len] = 0;
	}
	return s;
}

static struct mqtt_str mstr(struct mosqdb_bytes v)
{
	return (struct mqtt_str){v.p, (uint32_t)v.len};
}

static int nomem(struct imp *im, const char *what)
{
	snprintf(im->err, sizeof im->err, "out of memory importing %s", what);
	return -1;
}

/* A valid UTF-8 MQTT string of 1..65535 bytes as a C string, else NULL. */
static char *valid_cstr(struct mosqdb_bytes v, bool *oom)
{
	*oom = false;
	if (!v.len || !mqtt_utf8_valid(v.p, v.len))
		return NULL;
	char *s = cstr(v);
	*oom = !s;
	return s;
}

static bool expired(const struct imp *im, const struct mosqdb_msg *m)
{
	return m->expiry_time > 0 && m->expiry_time <= im->now;
}

/* The core message for a stored one (created once, shared), or NULL with
 * *fatal set when there is no memory; NULL alone: skipped (bad topic). */
static struct message *message_of(struct imp *im, const struct mosqdb_msg *mm, bool *fatal)
{
	struct imsg *e;
	*fatal = false;
	HASH_FIND(hh, im->msgs, &mm->store_id, sizeof mm->store_id, e);
	if (e)
		return e->m;
	if (!mqtt_topic_name_valid(mstr(mm->topic)))
		return NULL;
	/* Per-receiver properties never travel with the message (v5 3.3.2). */
	uint8_t *pb = NULL;
	struct mqtt_str props = {0};
	if (mm->props.len) {
		struct mqtt_pw w;
		if (!(pb = malloc(mm->props.len)))
			goto oom;
		mqtt_pw_init(&w, pb, mm->props.len);
		mqtt_pw_copy_except(&w, mstr(mm->props),
				    MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS) | MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY) |
					    MQTT_PBIT(MQTT_PROP_SUBSCRIPTION_ID));
		props = (struct mqtt_str){pb, (uint32_t)w.len};
	}
	char *sid = mm->source_id.len ? cstr(mm->source_id) : NULL;
	char *suser = mm->source_username.len ? cstr(mm->source_username) : NULL;
	struct message *m = NULL;
	if ((!mm->source_id.len || sid) && (!mm->source_username.len || suser))
		m = restore_message(im->b, mstr(mm->topic), mstr(mm->payload), props, mm->qos, mm->retain,
				    mm->expiry_time > 0 ? (uint64_t)mm->expiry_time * 1000u : 0, sid, suser);
	free(pb);
	free(sid);
	free(suser);
	if (!m || !(e = calloc(1, sizeof *e))) {
		message_unref(&m);
		goto oom;
	}
	e->store_id = mm->store_id;
	e->m = m;
	HASH_ADD(hh, im->msgs, store_id, sizeof e->store_id, e);
	return m;
oom:
	*fatal = true;
	return NULL;
}

static int on_info(void *u, const struct mosqdb_info *info)
{
	struct imp *im = u;
	im->version = info->version;
	im->skipped += info->n_empty + info->n_unknown;
	im->expired += info->n_dangling; /* mosquitto drops expired messages before saving their references */
	return 0;
}

static int on_retained(void *u, const struct mosqdb_msg *mm)
{
	struct imp *im = u;
	bool fatal;
	if (expired(im, mm)) {
		im->expired++;
		return 0;
	}
	if (mm->topic.len >= 4 && !memcmp(mm->topic.p, "$SYS", 4)) {
		im->skipped++; /* vigil publishes its own $SYS tree */
		return 0;
	}
	struct message *m = message_of(im, mm, &fatal);
	if (!m) {
		if (fatal)
			return nomem(im, "a retained message");
		im->skipped++;
		return 0;
	}
	if (restore_retained(im->b, m))
		return nomem(im, "a retained message");
	im->retained++;
	return 0;
}

/* Create the session a subscription or message names when the file has no
 * CLIENT chunk for it (mosquitto does the same: it lives until the client
 * comes back, as a v3.1.1 persistent session). */
static struct session *session_of(struct imp *im, struct mosqdb_bytes id, bool *fatal)
{
	bool oom;
	*fatal = false;
	char *cid = valid_cstr(id, &oom);
	if (!cid) {
		*fatal = oom;
		return NULL;
	}
	struct session *s = session_find(im->b, cid);
	struct iskip *k;
	HASH_FIND_STR(im->dropped, cid, k);
	if (!s && !k) {
		struct restore_session rs = {.id = cid, .version = MQTT_V311, .expiry = UINT32_MAX, .listener = -1,
					     .was_connected = true};
		s = restore_session(im->b, &rs);
		if (s)
			im->orphans++;
		else
			*fatal = true;
	}
	free(cid);
	return s;
}

static int listener_index(const struct broker *b, uint16_t port)
{
	for (size_t i = 0; port && i < b->n_listeners; i++)
		if (b->listeners[i].conf && b->listeners[i].conf->port == port)
			return (int)i;
	return -1;
}

static int on_client(void *u, const struct mosqdb_client *c)
{
	struct imp *im = u;
	bool oom;
	char *id = valid_cstr(c->id, &oom);
	if (!id) {
		if (oom)
			return nomem(im, "a session");
		im->skipped++;
		return 0;
	}
	if (session_find(im->b, id) || c->session_expiry_interval == 0) {
		/* a second chunk for one id, or a session that ended with its
		 * connection: neither it nor its records are imported */
		struct iskip *k;
		size_t n = strlen(id) + 1;
		HASH_FIND_STR(im->dropped, id, k);
		if (!k && !session_find(im->b, id)) {
			if (!(k = malloc(sizeof *k + n))) {
				free(id);
				return nomem(im, "a session");
			}
			memcpy(k->id, id, n);
			HASH_ADD_STR(im->dropped, id, k);
		}
		im->skipped++;
		free(id);
		return 0;
	}
	char *user = valid_cstr(c->username, &oom);
	if (oom) {
		free(id);
		return nomem(im, "a session");
	}
	if (c->username_suspect)
		im->suspect_users++;
	/* mosquitto keeps no protocol version; it gives v3 sessions the
	 * interval UINT32_MAX. (Only the next connection's version matters.) */
	struct restore_session rs = {
		.id = id,
		.version = c->session_expiry_interval == UINT32_MAX ? MQTT_V311 : MQTT_V5,
		.expiry = c->session_expiry_interval,
		.username = user,
		.listener = listener_index(im->b, c->listener_port),
		.was_connected = c->session_expiry_time == 0,
		.expires_at = c->session_expiry_time > 0 ? (uint64_t)c->session_expiry_time * 1000u : 0,
		.next_pid = (uint16_t)(c->last_mid + 1),
	};
	if (c->session_expiry_interval != UINT32_MAX && c->session_expiry_time > 0 &&
	    c->session_expiry_time <= im->now)
		im->expired++; /* restored all the same: restore_finish ends it */
	struct session *s = restore_session(im->b, &rs);
	free(id);
	free(user);
	if (!s)
		return nomem(im, "a session");
	im->sessions++;
	return 0;
}

static int on_sub(void *u, const struct mosqdb_sub *sb)
{
	struct imp *im = u;
	bool fatal, oom;
	char *filter = valid_cstr(sb->filter, &oom);
	if (!filter || !mqtt_topic_filter_valid(mqtt_cstr(filter), true)) {
		free(filter);
		if (oom)
			return nomem(im, "a subscription");
		im->skipped++;
		return 0;
	}
	struct session *s = session_of(im, sb->client_id, &fatal);
	int rc = 0;
	if (!s) {
		if (fatal)
			rc = nomem(im, "a subscription");
		else
			im->skipped++;
	} else {
		uint8_t opts = (uint8_t)(sb->qos | (sb->options & (MOSQDB_SUB_NO_LOCAL | MOSQDB_SUB_RETAIN_AS_PUBLISHED)));
		if (restore_sub(s, filter, opts, sb->identifier))
			rc = nomem(im, "a subscription");
		else
			im->subs++;
	}
	free(filter);
	return rc;
}

/* Inbound QoS 2 message whose PUBREL had not come: delivered now, its packet
 * id remembered so that the PUBLISH re-sent after the switch is not. */
static int import_qos2_in(struct imp *im, struct session *s, const struct mosqdb_client_msg *cm, struct message *m)
{
	if (restore_qos2_in(s, cm->mid)) {
		im->skipped++; /* id 0 or twice */
		return 0;
	}
	m->origin_sid = s->serial; /* no-local */
	if (m->retain)
		route_retain(im->b, m);
	route_message(im->b, m);
	im->qos2_in++;
	return 0;
}

static int on_client_msg(void *u, const struct mosqdb_client_msg *cm)
{
	struct imp *im = u;
	bool fatal;
	if (expired(im, cm->msg)) {
		im->expired++;
		return 0;
	}
	struct session *s = session_of(im, cm->client_id, &fatal);
	if (!s) {
		if (fatal)
			return nomem(im, "a queued message");
		im->skipped++;
		return 0;
	}
	struct message *m = message_of(im, cm->msg, &fatal);
	if (!m) {
		if (fatal)
			return nomem(im, "a queued message");
		im->skipped++;
		return 0;
	}
	if (cm->direction == MOSQDB_DIR_IN) {
		if (cm->qos == 2 && cm->state == MOSQDB_MS_WAIT_FOR_PUBREL)
			return import_qos2_in(im, s, cm, m);
		im->skipped++;
		return 0;
	}
	uint8_t state;
	switch (cm->state) {
	case MOSQDB_MS_QUEUED:
	case MOSQDB_MS_PUBLISH_QOS1: /* in the window, not sent yet */
	case MOSQDB_MS_PUBLISH_QOS2:
		state = OUT_QUEUED;
		break;
	case MOSQDB_MS_WAIT_FOR_PUBACK:
	case MOSQDB_MS_WAIT_FOR_PUBREC:
		state = OUT_PUBLISH;
		break;
	case MOSQDB_MS_RESEND_PUBREL:
	case MOSQDB_MS_WAIT_FOR_PUBCOMP:
		state = OUT_PUBREL;
		break;
	default: /* QoS 0, or an inbound state on an outbound message */
		im->skipped++;
		return 0;
	}
	if (cm->qos == 0 || (state == OUT_PUBREL && cm->qos != 2)) {
		im->skipped++;
		return 0;
	}
	uint32_t ids[255];
	uint8_t n = 0;
	size_t off = 0;
	struct mqtt_prop pr;
	while (mqtt_props_next(mstr(cm->props), &off, &pr))
		if (pr.id == MQTT_PROP_SUBSCRIPTION_ID && n < 255)
			ids[n++] = pr.value;
	if (restore_delivery(s, m, cm->qos, cm->retain, state, state == OUT_QUEUED ? 0 : cm->mid, ids, n, 0)) {
		if (state != OUT_QUEUED && cm->mid == 0) {
			im->skipped++;
			return 0;
		}
		snprintf(im->err, sizeof im->err, "session %.*s: message %llu (packet id %u) refused (no memory, or the id twice)",
			 (int)cm->client_id.len, (const char *)cm->client_id.p, (unsigned long long)cm->msg->store_id, cm->mid);
		return -1;
	}
	if (state == OUT_QUEUED)
		im->queued++;
	else
		im->inflight++;
	return 0;
}

/*
 * Import mosquitto.db at path into the core (restore.h step 2). The file is
 * validated whole before the first record reaches the core. 0, or -1 with
 * err naming the file (and, for a damaged file, the byte offset): start-up
 * stops then, and the caller removes the store it had just created.
 */
int store_import_mosquitto(struct broker *b, const char *path, char *err, size_t errlen)
{
	static const struct mosqdb_visitor v = {on_info, on_retained, on_client, on_sub, on_client_msg};
	struct imp im;
	memset(&im, 0, sizeof im);
	im.b = b;
	im.now = (int64_t)(store_wall_now() / 1000u);
	char rerr[600] = "";
	int rc = mosqdb_read(path, &v, &im, rerr, sizeof rerr);
	struct imsg *e, *tmp;
	HASH_ITER(hh, im.msgs, e, tmp)
	{
		HASH_DEL(im.msgs, e);
		message_unref(&e->m);
		free(e);
	}
	struct iskip *k, *ktmp;
	HASH_ITER(hh, im.dropped, k, ktmp)
	{
		HASH_DEL(im.dropped, k);
		free(k);
	}
	if (rc != MOSQDB_OK) {
		if (rc == MOSQDB_ESTOP)
			snprintf(err, errlen, "importing mosquitto persistence file %s: %s; the file was left untouched",
				 path, im.err);
		else
			snprintf(err, errlen, "cannot import mosquitto persistence file %s; the file was left untouched",
				 rerr);
		return -1;
	}
	log_msg(b, LOG_F_NOTICE,
		"Imported mosquitto persistence file %s (db version %u): %zu retained messages, %zu sessions, "
		"%zu subscriptions, %zu queued and %zu in-flight messages, %zu inbound QoS 2 messages awaiting "
		"PUBREL; %zu expired, %zu skipped. The file was left untouched.",
		path, im.version, im.retained, im.sessions + im.orphans, im.subs, im.queued, im.inflight, im.qos2_in,
		im.expired, im.skipped);
	if (im.suspect_users)
		log_msg(b, LOG_F_NOTICE,
			"%zu imported sessions had no user name that could be trusted (mosquitto 2.0 writes the "
			"previous client's name for a client without one): they have none until they reconnect.",
			im.suspect_users);
	return 0;
}
