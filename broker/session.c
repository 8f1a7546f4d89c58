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
#include "api/api.h"

static void on_expiry(struct wheel_entry *e, uint64_t now);
static void on_will_delay(struct wheel_entry *e, uint64_t now);

/* The session table: chained, grown to keep chains short. A session costs
 * one pointer and a hash here (uthash's handle is 56 bytes, and sessions
 * are what an idle broker holds). */
static uint32_t id_hash(const char *id)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

struct session *session_find(struct broker *b, const char *id)
{
	if (!b->stab_size)
		return NULL;
	uint32_t h = id_hash(id);
	for (struct session *s = b->stab[h & (b->stab_size - 1)]; s; s = s->hnext)
		if (s->hash == h && strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

static int stab_insert(struct broker *b, struct session *s)
{
	if (b->n_sessions + 1 > b->stab_size) {
		uint32_t size = b->stab_size ? b->stab_size * 2 : 64;
		struct session **t = calloc(size, sizeof(*t));
		if (!t)
			return -1;
		for (uint32_t i = 0; i < b->stab_size; i++) {
			for (struct session *x = b->stab[i], *n; x; x = n) {
				n = x->hnext;
				x->hnext = t[x->hash & (size - 1)];
				t[x->hash & (size - 1)] = x;
			}
		}
		free(b->stab);
		b->stab = t;
		b->stab_size = size;
	}
	struct session **slot = &b->stab[s->hash & (b->stab_size - 1)];
	s->hnext = *slot;
	*slot = s;
	b->n_sessions++;
	return 0;
}

static void stab_remove(struct broker *b, struct session *s)
{
	for (struct session **pp = &b->stab[s->hash & (b->stab_size - 1)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == s) {
			*pp = s->hnext;
			b->n_sessions--;
			return;
		}
	}
}

void session_destroy_all(struct broker *b)
{
	for (uint32_t i = 0; i < b->stab_size; i++) {
		while (b->stab[i]) {
			struct session *s = b->stab[i];
			s->client = NULL;
			session_destroy(s);
		}
	}
	free(b->stab);
	b->stab = NULL;
	b->stab_size = 0;
}

struct session *session_new(struct broker *b, const char *id)
{
	/* A new session is new load: refused at memory_limit (mem.c). */
	size_t idlen = strlen(id) + 1;
	struct session *s = mem_zalloc(&b->mem, sizeof(*s));
	if (!s)
		return NULL;
	s->id = mem_alloc(&b->mem, idlen);
	if (!s->id) {
		mem_free(&b->mem, s);
		return NULL;
	}
	memcpy(s->id, id, idlen);
	s->b = b;
	s->serial = ++b->next_serial;
	s->next_pid = 1;
	s->hash = id_hash(id);
	wheel_entry_init(&s->expiry_timer, on_expiry);
	if (stab_insert(b, s)) {
		mem_free(&b->mem, s->id);
		mem_free(&b->mem, s);
		return NULL;
	}
	store_session_new(b, s);
	return s;
}

static void will_free(struct broker *b, struct will **wp)
{
	struct will *w = *wp;
	if (!w)
		return;
	*wp = NULL;
	wheel_cancel(&b->wheel, &w->timer);
	message_unref(&w->msg);
	free(w);
}

void session_destroy(struct session *s)
{
	struct broker *b = s->b;
	cluster_session_end(b, s); /* its record in the cluster */
	store_session_end(b, s); /* first: the store forgets its deliveries */
	wheel_cancel(&b->wheel, &s->expiry_timer);
	subscribe_remove_all(s);
	out_list_clear(&s->inflight);
	out_list_clear(&s->queue);
	will_free(b, &s->will);
	stab_remove(b, s);
	for (uint32_t i = 0; i < s->n_in_qos2; i++)
		message_unref(&s->in_qos2[i].msg);
	free(s->in_qos2);
	free(s->subs);
	free(s->username);
	mem_free(&b->mem, s->id);
	mem_free(&b->mem, s);
}

void session_clear_will(struct session *s)
{
	if (s->will) {
		will_free(s->b, &s->will);
		store_will_clear(s->b, s);
	}
}

void session_publish_will(struct session *s)
{
	struct broker *b = s->b;
	struct will *w = s->will;
	if (!w)
		return;
	wheel_cancel(&b->wheel, &w->timer);
	s->will = NULL;
	struct message *m = w->msg;
	if (w->has_expiry) {
		m->has_expiry = true;
		m->expiry_at = broker_now(b) + (uint64_t)w->expiry * 1000u;
	}
	m->origin_sid = s->serial;
	/* Wills obey the ACL when they are published, not when they are set. */
	if (security_acl(s->client, s, (const char *)m->topic.p, AUTH_WRITE)) {
		struct log_ev ev = {.event = "will_published", .client_id = s->id, .username = s->username,
				    .topic = (const char *)m->topic.p};
		log_event(b, LOG_F_NOTICE, &ev, "Publishing will of client %s on '%s'.", s->id,
			  (const char *)m->topic.p);
		if (m->retain)
			route_retain(b, m);
		route_message(b, m);
		b->st.wills_published++;
		api_note_will(b->api, s->id, (const char *)m->topic.p);
	} else {
		struct log_ev ev = {.event = "will_denied", .client_id = s->id, .username = s->username,
				    .topic = (const char *)m->topic.p, .reason = "ACL"};
		log_event(b, LOG_F_NOTICE, &ev, "Denied will of client %s on '%s' (ACL).", s->id,
			  (const char *)m->topic.p);
	}
	store_will_clear(b, s);
	will_free(b, &w);
}

static void on_will_delay(struct wheel_entry *e, uint64_t now)
{
	struct will *w = (struct will *)((char *)e - offsetof(struct will, timer));
	(void)now;
	session_publish_will(w->s);
}

static void on_expiry(struct wheel_entry *e, uint64_t now)
{
	struct session *s = (struct session *)((char *)e - offsetof(struct session, expiry_timer));
	struct broker *b = s->b;
	(void)now;
	if (s->client)
		return; /* reconnected: the timer should have been cancelled */
	struct log_ev ev = {.event = "session_expired", .client_id = s->id, .username = s->username};
	log_event(b, LOG_F_NOTICE, &ev, "Expiring client %s due to timeout.", s->id);
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
			wheel_entry_init(&s->will->timer, on_will_delay);
			s->will->s = s;
			wheel_add(&b->wheel, &s->will->timer, broker_now(b) + d * 1000u);
		}
	}
	if (s->expiry == 0) {
		session_destroy(s);
		return;
	}
	if (s->expiry != UINT32_MAX)
		wheel_add(&b->wheel, &s->expiry_timer, broker_now(b) + (uint64_t)s->expiry * 1000u);
	store_session_saved(b, s); /* detached: the deadlines are persisted */
	cluster_session_changed(b, s);
}

void session_restore_timers(struct session *s, uint64_t will_at, uint64_t expiry_at)
{
	struct broker *b = s->b;
	if (s->will && will_at) {
		wheel_entry_init(&s->will->timer, on_will_delay);
		s->will->s = s;
		wheel_add(&b->wheel, &s->will->timer, will_at);
	}
	if (expiry_at)
		wheel_add(&b->wheel, &s->expiry_timer, expiry_at);
}

int session_sub_add(struct session *s, const char *filter, uint8_t options, uint32_t sub_id, bool *existed)
{
	for (uint32_t i = 0; i < s->n_subs; i++) {
		if (strcmp(s->subs[i].filter, filter) == 0) {
			s->subs[i].options = options;
			s->subs[i].sub_id = sub_id;
			*existed = true;
			return 0;
		}
	}
	*existed = false;
	if (s->n_subs == s->cap_subs) {
		uint32_t cap = s->cap_subs ? s->cap_subs * 2 : 4;
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
	for (uint32_t i = 0; i < s->n_subs; i++) {
		if (strcmp(s->subs[i].filter, filter) == 0) {
			free(s->subs[i].filter);
			s->subs[i] = s->subs[--s->n_subs];
			return true;
		}
	}
	return false;
}

struct in_qos2 *session_qos2_find(struct session *s, uint16_t pid)
{
	for (uint32_t i = 0; i < s->n_in_qos2; i++)
		if (s->in_qos2[i].pid == pid)
			return &s->in_qos2[i];
	return NULL;
}

int session_qos2_add(struct session *s, uint16_t pid, struct message *m)
{
	if (s->n_in_qos2 == s->cap_in_qos2) {
		if (s->cap_in_qos2 == UINT16_MAX)
			return -1;
		uint32_t cap = s->cap_in_qos2 ? s->cap_in_qos2 * 2u : 4u;
		if (cap > UINT16_MAX)
			cap = UINT16_MAX;
		struct in_qos2 *n = realloc(s->in_qos2, cap * sizeof(*n));
		if (!n)
			return -1;
		s->in_qos2 = n;
		s->cap_in_qos2 = (uint16_t)cap;
	}
	s->in_qos2[s->n_in_qos2++] = (struct in_qos2){pid, m};
	store_qos2_in(s->b, s, pid, true);
	return 0;
}

bool session_qos2_remove(struct session *s, uint16_t pid, struct message **m)
{
	struct in_qos2 *q = session_qos2_find(s, pid);
	if (!q)
		return false;
	if (m)
		*m = q->msg;
	else
		message_unref(&q->msg);
	*q = s->in_qos2[--s->n_in_qos2];
	store_qos2_in(s->b, s, pid, false);
	return true;
}
