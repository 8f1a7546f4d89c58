/*
 * broker/session.c — sessions: they outlive connections.
 *
 * A session holds a client id's subscriptions, its outbound in-flight window
 * and queue, its inbound QoS 2 packet ids and its will. It is found by id in a
 * hash. When its connection ends, session_detach decides the will (now,
 * after the will delay, or at session end — whichever is first) and arms
 * the session-expiry timer on the broker's wheel. Nothing here reads the
 * wall clock: all deadlines are monotonic.
 * Invariant: s->client is non-NULL exactly while a connection owns it.
 */
#include <stdlib.h>
#include <string.h>

#include "broker.h"

static void on_expiry(struct wheel_entry *e, uint64_t now);
static void on_will_delay(struct wheel_entry *e, uint64_t now);

struct session *session_find(struct broker *b, const char *id)
{
	struct session *s = NULL;
	HASH_FIND_STR(b->sessions, id, s);
	return s;
}

struct session *session_new(struct broker *b, const char *id)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->id = strdup(id);
	if (!s->id) {
		free(s);
		return NULL;
	}
	s->b = b;
	s->serial = ++b->next_serial;
	s->next_pid = 1;
	wheel_entry_init(&s->expiry_timer, on_expiry);
	wheel_entry_init(&s->will_timer, on_will_delay);
	HASH_ADD_KEYPTR(hh, b->sessions, s->id, strlen(s->id), s);
	store_session_new(b, s);
	return s;
}

static void will_free(struct will **wp)
{
	struct will *w = *wp;
	if (!w)
		return;
	*wp = NULL;
	message_unref(&w->msg);
	free(w);
}

void session_destroy(struct session *s)
{
	struct broker *b = s->b;
	wheel_cancel(&b->wheel, &s->expiry_timer);
	wheel_cancel(&b->wheel, &s->will_timer);
	subscribe_remove_all(s);
	out_list_clear(&s->inflight);
	out_list_clear(&s->queue);
	will_free(&s->will);
	HASH_DEL(b->sessions, s);
	store_session_end(b, s);
	free(s->in_qos2);
	free(s->subs);
	free(s->username);
	free(s->id);
	free(s);
}

void session_clear_will(struct session *s)
{
	wheel_cancel(&s->b->wheel, &s->will_timer);
	if (s->will) {
		will_free(&s->will);
		store_will_clear(s->b, s);
	}
}

void session_publish_will(struct session *s)
{
	struct broker *b = s->b;
	wheel_cancel(&b->wheel, &s->will_timer);
	struct will *w = s->will;
	if (!w)
		return;
	s->will = NULL;
	struct message *m = w->msg;
	if (w->has_expiry) {
		m->has_expiry = true;
		m->expiry_at = broker_now(b) + (uint64_t)w->expiry * 1000u;
	}
	m->origin_sid = s->serial;
	/* Wills obey the ACL when they are published, not when they are set. */
	if (security_acl(s->client, s, (const char *)m->topic.p, AUTH_WRITE)) {
		log_msg(b, LOG_F_DEBUG, "Publishing will of client %s on '%s'.", s->id, (const char *)m->topic.p);
		if (m->retain)
			route_retain(b, m);
		route_message(b, m);
		b->st.wills_published++;
	} else {
		log_msg(b, LOG_F_NOTICE, "Denied will of client %s on '%s' (ACL).", s->id, (const char *)m->topic.p);
	}
	store_will_clear(b, s);
	will_free(&w);
}

static void on_will_delay(struct wheel_entry *e, uint64_t now)
{
	struct session *s = (struct session *)((char *)e - offsetof(struct session, will_timer));
	(void)now;
	session_publish_will(s);
}

static void on_expiry(struct wheel_entry *e, uint64_t now)
{
	struct session *s = (struct session *)((char *)e - offsetof(struct session, expiry_timer));
	struct broker *b = s->b;
	(void)now;
	if (s->client)
		return; /* reconnected: the timer should have been cancelled */
	log_msg(b, LOG_F_NOTICE, "Expiring client %s due to timeout.", s->id);
	b->st.clients_expired++;
	/* The will never outlives the session (v5 3.1.2.5). */
	session_publish_will(s);
	session_destroy(s);
}

void session_detach(struct session *s, bool abnormal)
{
	struct broker *b = s->b;
	if (s->will) {
		if (!abnormal) {
			session_clear_will(s);
		} else if (s->will->delay == 0 || s->expiry == 0) {
			session_publish_will(s);
		} else {
			/* v5 MQTT-3.1.3-9: held back for the delay, cancelled by a
			 * reconnect; never later than the session's end. */
			uint64_t d = s->will->delay < s->expiry ? s->will->delay : s->expiry;
			wheel_add(&b->wheel, &s->will_timer, broker_now(b) + d * 1000u);
		}
	}
	if (s->expiry == 0) {
		session_destroy(s);
		return;
	}
	if (s->expiry != UINT32_MAX)
		wheel_add(&b->wheel, &s->expiry_timer, broker_now(b) + (uint64_t)s->expiry * 1000u);
}

int session_sub_add(struct session *s, const char *filter, uint8_t options, uint32_t sub_id, bool *existed)
{
	for (size_t i = 0; i < s->n_subs; i++) {
		if (strcmp(s->subs[i].filter, filter) == 0) {
			s->subs[i].options = options;
			s->subs[i].sub_id = sub_id;
			*existed = true;
			return 0;
		}
	}
	*existed = false;
	if (s->n_subs == s->cap_subs) {
		size_t cap = s->cap_subs ? s->cap_subs * 2 : 4;
		struct subscription *n = realloc(s->subs, cap * sizeof(*n));
		if (!n)
			return -1;
		s->subs = n;
		s->cap_subs = cap;
	}
	char *f = strdup(filter);
	if (!f)
		return -1;
	s->subs[s->n_subs++] = (struct subscription){f, options, sub_id};
	return 0;
}

bool session_sub_remove(struct session *s, const char *filter)
{
	for (size_t i = 0; i < s->n_subs; i++) {
		if (strcmp(s->subs[i].filter, filter) == 0) {
			free(s->subs[i].filter);
			s->subs[i] = s->subs[--s->n_subs];
			return true;
		}
	}
	return false;
}

bool session_qos2_has(struct session *s, uint16_t pid)
{
	for (size_t i = 0; i < s->n_in_qos2; i++)
		if (s->in_qos2[i] == pid)
			return true;
	return false;
}

int session_qos2_add(struct session *s, uint16_t pid)
{
	if (s->n_in_qos2 == s->cap_in_qos2) {
		size_t cap = s->cap_in_qos2 ? s->cap_in_qos2 * 2 : 4;
		uint16_t *n = realloc(s->in_qos2, cap * sizeof(*n));
		if (!n)
			return -1;
		s->in_qos2 = n;
		s->cap_in_qos2 = cap;
	}
	s->in_qos2[s->n_in_qos2++] = pid;
	return 0;
}

bool session_qos2_remove(struct session *s, uint16_t pid)
{
	for (size_t i = 0; i < s->n_in_qos2; i++) {
		if (s->in_qos2[i] == pid) {
			s->in_qos2[i] = s->in_qos2[--s->n_in_qos2];
			return true;
		}
	}
	return false;
}
