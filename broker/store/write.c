/*
 * broker/store/write.c — mirror the core's durable changes into SQLite.
 *
 * Each store_ops call writes its rows at once inside the pass's transaction
 * (opened lazily by the first change); commit() ends it. So one loop pass
 * is one transaction, and the seam releases the pass's acks after it.
 * Deletes of acknowledged deliveries are the exception: they are collected
 * as ranges of consecutive ids and run just before COMMIT (same transaction,
 * same result; a rollback drops them with the rest). Held-back deliveries
 * are the other (see "held back" below): written up to STORE_CARRY_MS
 * later, or never when the subscriber acknowledges them first.
 * Durable: retained messages (any QoS, not $SYS), sessions with a non-zero
 * expiry with their subscriptions, QoS 1/2 deliveries (message bodies
 * shared through msgs rows, refcounted by store_refs) and inbound QoS 2 ids.
 * Not durable: clean sessions (expiry 0), QoS 0 deliveries.
 * When a write or commit fails the store turns unwritable: it writes
 * nothing, a wheel timer tries every STORE_RETRY_MS one snapshot that
 * rewrites everything from memory, and until one succeeds commit() fails
 * for every pass with changes and writable() is false.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

static void bind_str(sqlite3_stmt *q, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(q, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, i);
}

static void bind_blob(sqlite3_stmt *q, int i, struct mqtt_str v)
{
	sqlite3_bind_blob(q, i, v.len ? (const void *)v.p : "", (int)v.len, SQLITE_STATIC);
}

static uint64_t wall_expiry(struct store_db *st, const struct message *m)
{
	return m->has_expiry ? store_mono_to_wall(st->b, m->expiry_at) : 0;
}

/* ---- retained ---- */

static void put_retained(struct store_db *st, const struct message *m)
{
	if (m->payload.len == 0) {
		sqlite3_stmt *q = st->q[Q_RET_DEL];
		sqlite3_bind_text(q, 1, (const char *)m->topic.p, (int)m->topic.len, SQLITE_STATIC);
		store_db_step(st, Q_RET_DEL);
		return;
	}
	sqlite3_stmt *q = st->q[Q_RET_PUT];
	sqlite3_bind_text(q, 1, (const char *)m->topic.p, (int)m->topic.len, SQLITE_STATIC);
	bind_blob(q, 2, m->payload);
	bind_blob(q, 3, m->props);
	sqlite3_bind_int(q, 4, m->qos);
	sqlite3_bind_int64(q, 5, (sqlite3_int64)wall_expiry(st, m));
	bind_str(q, 6, m->origin_id);
	bind_str(q, 7, m->origin_user);
	store_db_step(st, Q_RET_PUT);
}

static void op_retain_set(void *u, const struct message *m)
{
	struct store_db *st = u;
	if (m->topic.len >= 4 && memcmp(m->topic.p, "$SYS", 4) == 0)
		return; /* the broker's own status, rebuilt at start */
	if (store_db_begin(st))
		put_retained(st, m);
}

/* ---- sessions ---- */

static void put_session(struct store_db *st, const struct session *s)
{
	struct broker *b = st->b;
	sqlite3_stmt *q = st->q[Q_SES_PUT];
	const struct will *w = s->will;
	sqlite3_bind_text(q, 1, s->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 2, s->version);
	sqlite3_bind_int64(q, 3, s->expiry);
	bind_str(q, 4, s->username);
	sqlite3_bind_int(q, 5, s->listener && !s->bridge_owned ? (int)(s->listener - b->listeners) : -1);
	sqlite3_bind_int(q, 6, s->client != NULL);
	sqlite3_bind_int64(q, 7, wheel_armed(&s->expiry_timer)
					 ? (sqlite3_int64)store_mono_to_wall(b, s->expiry_timer.deadline) : 0);
	sqlite3_bind_int(q, 8, s->next_pid);
	if (w) {
		sqlite3_bind_text(q, 9, (const char *)w->msg->topic.p, (int)w->msg->topic.len, SQLITE_STATIC);
		bind_blob(q, 10, w->msg->payload);
		bind_blob(q, 11, w->msg->props);
		sqlite3_bind_int(q, 12, w->msg->qos);
		sqlite3_bind_int(q, 13, w->msg->retain);
		sqlite3_bind_int64(q, 14, w->delay);
		sqlite3_bind_int(q, 15, w->has_expiry);
		sqlite3_bind_int64(q, 16, w->expiry);
		sqlite3_bind_int64(q, 17, wheel_armed(&w->timer)
						  ? (sqlite3_int64)store_mono_to_wall(b, w->timer.deadline) : 0);
		bind_str(q, 18, w->msg->origin_user);
	}
	store_db_step(st, Q_SES_PUT);
}

static void del_session_rows(struct store_db *st, const char *id)
{
	static const enum store_stmt del[] = {Q_SES_DEL, Q_SES_SUBS_DEL, Q_SES_Q2_DEL};
	for (size_t i = 0; i < sizeof(del) / sizeof(del[0]); i++) {
		sqlite3_bind_text(st->q[del[i]], 1, id, -1, SQLITE_STATIC);
		store_db_step(st, del[i]);
	}
}

static void put_sub(struct store_db *st, const struct session *s, const struct subscription *sub)
{
	sqlite3_stmt *q = st->q[Q_SUB_PUT];
	sqlite3_bind_text(q, 1, s->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, sub->filter, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 3, sub->options);
	sqlite3_bind_int64(q, 4, sub->sub_id);
	store_db_step(st, Q_SUB_PUT);
}

/* ---- msgs / deliveries rows, INSERTed many per statement ----
 *
 * A routed message costs one msgs row and one deliveries row per durable
 * subscriber. Rather than one INSERT each, the rows of a pass are kept in
 * st->pend_msg / pend_dlv and INSERTed at once, STORE_BATCH per statement
 * (then 32, 16, ... 1 for the rest): one statement run, one cursor and
 * one B-tree descent for many appended rows instead of one each.
 * Durability is unchanged: the rows are INSERTed inside the same
 * transaction before COMMIT (op_commit, store_db_snapshot), so the
 * acknowledgements the seam releases after commit() still follow the rows
 * they depend on. Order is unchanged for every other statement too:
 * store_db_step flushes the buffer before it runs anything else (so a
 * delete or update of a buffered row finds it). A rollback drops the
 * buffer with the rest. A buffered msgs row holds a reference on its
 * message (immutable), a deliveries row copies its values (the outmsg or
 * session may be gone by the flush); a row that does not fit (long session
 * id, subscription ids) flushes the buffer and takes the one-row path.
 *
 * An ack in the same pass as the insert (a message too large for the
 * client, expired, ACL-denied) runs the buffered INSERT then the DELETE,
 * the same result as before. */

static unsigned batch_size(unsigned n)
{
	unsigned k = STORE_BATCH;
	while (k > n)
		k >>= 1;
	return k;
}

static sqlite3_stmt *batch_stmt(struct store_db *st, bool msgs, unsigned k)
{
	if (k == 1)
		return st->q[msgs ? Q_MSG_PUT : Q_DELIV_PUT];
	unsigned i = 0;
	while ((2u << i) < k)
		i++;
	return msgs ? st->q_msg_n[i] : st->q_dlv_n[i];
}

static void flush_msgs(struct store_db *st)
{
	unsigned n = st->n_pend_msg;
	for (unsigned i = 0; i < n && !st->txn_failed;) {
		unsigned k = batch_size(n - i);
		sqlite3_stmt *q = batch_stmt(st, true, k);
		for (unsigned r = 0; r < k; r++) {
			const struct store_pend_msg *p = &st->pend_msg[i + r];
			const struct message *m = p->m;
			int b = (int)r * 7;
			sqlite3_bind_int64(q, b + 1, (sqlite3_int64)p->mid);
			sqlite3_bind_text(q, b + 2, (const char *)m->topic.p, (int)m->topic.len, SQLITE_STATIC);
			bind_blob(q, b + 3, m->payload);
			bind_blob(q, b + 4, m->props);
			sqlite3_bind_int(q, b + 5, m->qos);
			sqlite3_bind_int(q, b + 6, m->retain);
			sqlite3_bind_int64(q, b + 7, p->expires_at);
		}
		store_db_step_stmt(st, q, false); /* every parameter is bound each time */
		i += k;
	}
	for (unsigned i = 0; i < n; i++)
		message_unref(&st->pend_msg[i].m);
	st->n_pend_msg = 0;
}

static void flush_dlvs(struct store_db *st)
{
	unsigned n = st->n_pend_dlv;
	for (unsigned i = 0; i < n && !st->txn_failed;) {
		unsigned k = batch_size(n - i);
		sqlite3_stmt *q = batch_stmt(st, false, k);
		for (unsigned r = 0; r < k; r++) {
			const struct store_pend_dlv *p = &st->pend_dlv[i + r];
			int b = (int)r * 8;
			sqlite3_bind_int64(q, b + 1, (sqlite3_int64)p->seq);
			sqlite3_bind_text(q, b + 2, p->sid, -1, SQLITE_STATIC);
			sqlite3_bind_int64(q, b + 3, (sqlite3_int64)p->mid);
			sqlite3_bind_int(q, b + 4, p->qos);
			sqlite3_bind_int(q, b + 5, p->retain);
			sqlite3_bind_int(q, b + 6, p->state);
			sqlite3_bind_int(q, b + 7, p->pid);
			sqlite3_bind_null(q, b + 8); /* rows with sub_ids take the one-row path */
		}
		store_db_step_stmt(st, q, false); /* every parameter is bound each time */
		i += k;
	}
	st->n_pend_dlv = 0;
}

void store_db_flush_rows(struct store_db *st)
{
	flush_msgs(st);
	flush_dlvs(st);
}

/* A rollback: the buffered rows are dropped, not written. */
static void drop_rows(struct store_db *st)
{
	for (unsigned i = 0; i < st->n_pend_msg; i++)
		message_unref(&st->pend_msg[i].m);
	st->n_pend_msg = st->n_pend_dlv = 0;
}

static void pend_msg_push(struct store_db *st, struct store_pend_msg row)
{
	if (st->n_pend_msg == STORE_BATCH)
		flush_msgs(st);
	st->pend_msg[st->n_pend_msg++] = row;
}

static void pend_dlv_push(struct store_db *st, const struct store_pend_dlv *row)
{
	if (st->n_pend_dlv == STORE_BATCH)
		flush_dlvs(st);
	st->pend_dlv[st->n_pend_dlv++] = *row;
}

/* ---- held back: deliveries written only if not acknowledged soon ----
 *
 * A QoS 1 message from a publisher, routed to a connected persistent
 * subscriber and sent to it at once, would cost a msgs row and a deliveries
 * row INSERTed in this pass and DELETEd a pass later when the subscriber's
 * PUBACK comes: most of the store's work under load, for rows that are
 * dead before anyone could need them. So such a delivery (put while
 * m->ack_waits, QoS 1, in flight, no subscription ids) is held back here
 * instead, with its msgs row, for up to STORE_CARRY_MS: acknowledged by
 * then, it is dropped unwritten; else commit() writes it (due()), and that
 * subscriber's deliveries are not held back for STORE_CARRY_BACKOFF_MS. The seam
 * keeps the publisher's PUBACK while m->store_carry > 0 (store.c,
 * store_send_ack), so "the PUBACK follows the delivery's durability" still
 * holds, with "or its end" added; only the subscriber's PUBLISH may leave
 * before it is durable, and a crash then makes the publisher, which has no
 * PUBACK, send it again: a duplicate at QoS 1, never a loss of anything
 * acknowledged. Anything else that needs the msgs row (a delivery of the
 * same message that is not held back) writes it with its pass
 * (carry_msg_release); a rollback drops what is held back with the rest.
 * Held-back entries are kept in id order (ids only grow), so by due time
 * too, and found by binary search. */

static bool carry_room(void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return true;
	size_t nc = *cap ? *cap * 2 : 64;
	void *nv = realloc(*v, nc * size);
	if (!nv)
		return false;
	*v = nv;
	*cap = nc;
	return true;
}

/* The entry of v (sorted by the uint64_t id at byte offset off) with id. */
static void *carry_find(void *v, size_t n, size_t size, size_t off, uint64_t id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		char *e = (char *)v + mid * size;
		uint64_t got;
		memcpy(&got, e + off, sizeof(got));
		if (got == id)
			return e;
		if (got < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static struct store_carry_msg *carry_msg_of(struct store_db *st, const struct message *m)
{
	return carry_find(st->cmsg, st->n_cmsg, sizeof(*st->cmsg),
			  offsetof(struct store_carry_msg, row) + offsetof(struct store_pend_msg, mid), m->store_id);
}

static uint64_t carry_due(struct store_db *st);

static struct store_carry_dlv *carry_dlv_of(struct store_db *st, const struct outmsg *o)
{
	/* Acks come mostly in order: the oldest live entry first. */
	if (st->carried && carry_due(st) != UINT64_MAX && st->cdlv[st->cdlv_first].row.seq == o->store_seq)
		return &st->cdlv[st->cdlv_first];
	struct store_carry_dlv *d = carry_find(st->cdlv, st->n_cdlv, sizeof(*st->cdlv),
					       offsetof(struct store_carry_dlv, row) + offsetof(struct store_pend_dlv, seq),
					       o->store_seq);
	return d && d->m ? d : NULL;
}

static bool carryable(const struct store_db *st, const struct session *s, const struct outmsg *o)
{
	return o->msg->ack_waits && o->qos == 1 && o->state == OUT_PUBLISH && !o->n_sub_ids && s->client &&
	       s->client->state == CS_CONNECTED && !st->failed && !st->stopping &&
	       broker_now(st->b) >= s->store_hold_after && strnlen(s->id, STORE_SID_INLINE) < STORE_SID_INLINE;
}

/* Hold back o's row (and its message's, when new). false: no room. */
static bool carry_put(struct store_db *st, const struct session *s, struct outmsg *o)
{
	struct message *m = o->msg;
	if (!carry_room((void **)&st->cdlv, &st->cap_cdlv, st->n_cdlv, sizeof(*st->cdlv)) ||
	    (!m->store_id && !carry_room((void **)&st->cmsg, &st->cap_cmsg, st->n_cmsg, sizeof(*st->cmsg))))
		return false;
	uint64_t due = broker_now(st->b) + STORE_CARRY_MS;
	if (!m->store_id) {
		m->store_id = st->next_mid++;
		m->store_row_carried = true;
		st->cmsg[st->n_cmsg++] = (struct store_carry_msg){
			{message_ref(m), m->store_id, (int64_t)wall_expiry(st, m)}, due};
	}
	m->store_refs++;
	m->store_carry++;
	o->store_seq = st->next_seq++;
	struct store_carry_dlv *d = &st->cdlv[st->n_cdlv++];
	d->row = (struct store_pend_dlv){.seq = o->store_seq, .mid = m->store_id, .pid = o->pid, .qos = o->qos,
					 .retain = o->retain, .state = (uint8_t)o->state};
	memcpy(d->row.sid, s->id, strlen(s->id) + 1);
	d->m = message_ref(m);
	d->due = due;
	st->carried++;
	return true;
}

/* m's held-back msgs row is needed now: write it with this pass. */
static void carry_msg_release(struct store_db *st, struct message *m)
{
	struct store_carry_msg *e = carry_msg_of(st, m);
	m->store_row_carried = false;
	if (e && e->row.m) {
		pend_msg_push(st, e->row); /* its reference goes with it */
		e->row.m = NULL;
	}
}

/* m's last delivery went: its held-back msgs row is never written. */
static void carry_msg_forget(struct store_db *st, struct message *m)
{
	struct store_carry_msg *e = carry_msg_of(st, m);
	m->store_row_carried = false;
	if (e && e->row.m)
		message_unref(&e->row.m);
}

/* o's delivery ends while held back: never written. false: not held back. */
static bool carry_drop(struct store_db *st, struct outmsg *o)
{
	struct store_carry_dlv *d = carry_dlv_of(st, o);
	if (!d)
		return false;
	d->m->store_carry--;
	message_unref(&d->m);
	st->carried--;
	st->carry_dropped++;
	return true;
}

/* A subscriber that did not acknowledge in time gets its next deliveries
 * written with their pass for a while: holding them would only delay its
 * publishers' PUBACKs (and with them the publishers) by STORE_CARRY_MS
 * each, for rows that are written anyway. */
static void carry_missed(struct store_db *st, const char *sid, uint64_t now)
{
	struct session *s = session_find(st->b, sid);
	if (s && s->store_hold_after <= now)
		s->store_hold_after = now + STORE_CARRY_BACKOFF_MS;
}

/* Write the held-back rows due by now (all: every one), then compact. */
static void carry_write(struct store_db *st, uint64_t now, bool all)
{
	size_t k = 0;
	for (size_t i = 0; i < st->n_cmsg; i++) {
		struct store_carry_msg *e = &st->cmsg[i];
		if (!e->row.m)
			continue;
		if (all || e->due <= now) {
			e->row.m->store_row_carried = false;
			pend_msg_push(st, e->row);
			continue;
		}
		st->cmsg[k++] = *e;
	}
	st->n_cmsg = k;
	k = 0;
	for (size_t i = 0; i < st->n_cdlv; i++) {
		struct store_carry_dlv *d = &st->cdlv[i];
		if (!d->m)
			continue;
		if (all || d->due <= now) {
			if (!all)
				carry_missed(st, d->row.sid, now);
			if (d->m->store_row_carried)
				carry_msg_release(st, d->m); /* never later than its deliveries */
			pend_dlv_push(st, &d->row);
			d->m->store_carry--;
			message_unref(&d->m);
			st->carried--;
			st->carry_written++;
			continue;
		}
		st->cdlv[k++] = *d;
	}
	st->n_cdlv = k;
	st->cdlv_first = 0;
}

/* A rollback: what is held back goes with the rest (the snapshot that
 * follows rewrites it from memory if it still matters). */
static void carry_drop_all(struct store_db *st)
{
	for (size_t i = 0; i < st->n_cmsg; i++) {
		if (st->cmsg[i].row.m) {
			st->cmsg[i].row.m->store_row_carried = false;
			message_unref(&st->cmsg[i].row.m);
		}
	}
	for (size_t i = 0; i < st->n_cdlv; i++) {
		if (st->cdlv[i].m) {
			st->cdlv[i].m->store_carry--;
			message_unref(&st->cdlv[i].m);
		}
	}
	st->n_cmsg = st->n_cdlv = 0;
	st->cdlv_first = 0;
	st->carried = 0;
}

void store_db_carry_free(struct store_db *st)
{
	carry_drop_all(st);
	free(st->cmsg);
	free(st->cdlv);
	st->cmsg = NULL;
	st->cdlv = NULL;
	st->cap_cmsg = st->cap_cdlv = 0;
}

/* The first live entry's due time (dropped ones before it are skipped once). */
static uint64_t carry_due(struct store_db *st)
{
	if (!st->carried)
		return UINT64_MAX;
	while (st->cdlv_first < st->n_cdlv && !st->cdlv[st->cdlv_first].m)
		st->cdlv_first++;
	return st->cdlv_first < st->n_cdlv ? st->cdlv[st->cdlv_first].due : UINT64_MAX;
}


static void put_delivery(struct store_db *st, const struct session *s, struct outmsg *o)
{
	struct message *m = o->msg;
	if (!m->store_id) {
		m->store_id = st->next_mid++;
		pend_msg_push(st, (struct store_pend_msg){message_ref(m), m->store_id, (int64_t)wall_expiry(st, m)});
	} else if (m->store_row_carried) {
		carry_msg_release(st, m); /* this delivery is written now: so is its message */
	}
	m->store_refs++;
	o->store_seq = st->next_seq++;
	size_t sl = strlen(s->id);
	if (sl < STORE_SID_INLINE && !o->n_sub_ids) {
		struct store_pend_dlv p = {.seq = o->store_seq, .mid = m->store_id, .pid = o->pid, .qos = o->qos,
					   .retain = o->retain, .state = (uint8_t)o->state};
		memcpy(p.sid, s->id, sl + 1);
		pend_dlv_push(st, &p);
		return;
	}
	sqlite3_stmt *q = st->q[Q_DELIV_PUT];
	store_db_flush_rows(st); /* before the binds: the flush uses this statement too */
	sqlite3_bind_int64(q, 1, (sqlite3_int64)o->store_seq);
	sqlite3_bind_text(q, 2, s->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, (sqlite3_int64)m->store_id);
	sqlite3_bind_int(q, 4, o->qos);
	sqlite3_bind_int(q, 5, o->retain);
	sqlite3_bind_int(q, 6, o->state);
	sqlite3_bind_int(q, 7, o->pid);
	if (o->n_sub_ids)
		sqlite3_bind_blob(q, 8, o->sub_ids, (int)(o->n_sub_ids * sizeof(uint32_t)), SQLITE_STATIC);
	store_db_step(st, Q_DELIV_PUT);
}

/* Deferred deletes: a row id joins the pending range when it extends it,
 * else the range is run and a new one starts. Same transaction, same
 * result as deleting at once (ids are never reused while it is open). */
static void del_range_run(struct store_db *st, enum store_stmt q, uint64_t *lo, uint64_t *hi)
{
	if (!*hi)
		return;
	sqlite3_bind_int64(st->q[q], 1, (sqlite3_int64)*lo);
	sqlite3_bind_int64(st->q[q], 2, (sqlite3_int64)*hi);
	*lo = *hi = 0;
	store_db_step(st, q);
}

static void del_defer(struct store_db *st, enum store_stmt q, uint64_t *lo, uint64_t *hi, uint64_t id)
{
	if (*hi && id == *hi + 1) {
		*hi = id;
		return;
	}
	if (*hi && id + 1 == *lo) {
		*lo = id;
		return;
	}
	del_range_run(st, q, lo, hi);
	*lo = *hi = id;
}

static void del_flush(struct store_db *st)
{
	del_range_run(st, Q_DELIV_DEL, &st->del_seq_lo, &st->del_seq_hi);
	del_range_run(st, Q_MSG_DEL, &st->del_mid_lo, &st->del_mid_hi);
}

/* o's delivery ended: its row goes (a held-back one is never written), and
 * with the message's last delivery its msgs row. */
static void drop_delivery(struct store_db *st, struct outmsg *o)
{
	if (!carry_drop(st, o)) {
		if (!store_db_begin(st))
			return;
		del_defer(st, Q_DELIV_DEL, &st->del_seq_lo, &st->del_seq_hi, o->store_seq);
	}
	o->store_seq = 0;
	struct message *m = o->msg;
	if (!m->store_refs || --m->store_refs)
		return;
	if (m->store_row_carried)
		carry_msg_forget(st, m);
	else if (store_db_begin(st))
		del_defer(st, Q_MSG_DEL, &st->del_mid_lo, &st->del_mid_hi, m->store_id);
	m->store_id = 0;
}

static void put_qos2(struct store_db *st, const struct session *s, uint16_t pid)
{
	sqlite3_bind_text(st->q[Q_Q2_PUT], 1, s->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st->q[Q_Q2_PUT], 2, pid);
	store_db_step(st, Q_Q2_PUT);
}

/* Everything a session holds, written as new rows. */
static void put_session_all(struct store_db *st, struct session *s)
{
	put_session(st, s);
	for (uint32_t i = 0; i < s->n_subs; i++)
		put_sub(st, s, &s->subs[i]);
	for (struct outmsg *o = s->inflight.head; o; o = o->next)
		if (o->qos)
			put_delivery(st, s, o);
	for (struct outmsg *o = s->queue.head; o; o = o->next)
		if (o->qos)
			put_delivery(st, s, o);
	for (uint32_t i = 0; i < s->n_in_qos2; i++)
		put_qos2(st, s, s->in_qos2[i].pid);
	s->store_saved = true;
}

/* Forget a session's deliveries (their message rows go with the last one). */
static void drop_deliveries(struct store_db *st, struct out_list *l)
{
	for (struct outmsg *o = l->head; o; o = o->next)
		if (o->store_seq)
			drop_delivery(st, o);
}

static void op_session_saved(void *u, struct session *s)
{
	struct store_db *st = u;
	if (!s->store_saved && s->expiry == 0)
		return; /* clean session: nothing durable */
	if (!store_db_begin(st))
		return;
	if (s->expiry == 0) {
		/* no longer outlives its connection */
		drop_deliveries(st, &s->inflight);
		drop_deliveries(st, &s->queue);
		del_session_rows(st, s->id);
		s->store_saved = false;
	} else if (!s->store_saved) {
		put_session_all(st, s);
	} else {
		put_session(st, s);
	}
}

static void op_session_end(void *u, struct session *s)
{
	struct store_db *st = u;
	if (!s->store_saved || !store_db_begin(st))
		return;
	drop_deliveries(st, &s->inflight);
	drop_deliveries(st, &s->queue);
	del_session_rows(st, s->id);
	s->store_saved = false;
}

static void op_sub_add(void *u, struct session *s, const struct subscription *sub)
{
	struct store_db *st = u;
	if (s->store_saved && store_db_begin(st))
		put_sub(st, s, sub);
}

static void op_sub_remove(void *u, struct session *s, const char *filter)
{
	struct store_db *st = u;
	if (!s->store_saved || !store_db_begin(st))
		return;
	sqlite3_bind_text(st->q[Q_SUB_DEL], 1, s->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st->q[Q_SUB_DEL], 2, filter, -1, SQLITE_STATIC);
	store_db_step(st, Q_SUB_DEL);
}

static void op_msg_queued(void *u, struct session *s, struct outmsg *o)
{
	struct store_db *st = u;
	if (!s->store_saved || !o->qos)
		return;
	if (carryable(st, s, o) && carry_put(st, s, o))
		return;
	if (store_db_begin(st))
		put_delivery(st, s, o);
}

static void op_msg_update(void *u, struct session *s, const struct outmsg *o)
{
	struct store_db *st = u;
	struct store_carry_dlv *d = o->store_seq ? carry_dlv_of(st, o) : NULL;
	if (d) {
		d->row.state = (uint8_t)o->state;
		d->row.pid = o->pid;
		return;
	}
	if (!o->store_seq || !store_db_begin(st))
		return;
	sqlite3_stmt *q = st->q[Q_DELIV_UPD];
	sqlite3_bind_int64(q, 1, (sqlite3_int64)o->store_seq);
	sqlite3_bind_int(q, 2, o->state);
	sqlite3_bind_int(q, 3, o->pid);
	store_db_step(st, Q_DELIV_UPD);
}

static void op_msg_acked(void *u, struct session *s, struct outmsg *o)
{
	struct store_db *st = u;
	if (o->store_seq)
		drop_delivery(st, o);
}

static void op_qos2_in(void *u, struct session *s, uint16_t pid, bool add)
{
	struct store_db *st = u;
	if (!s->store_saved || !store_db_begin(st))
		return;
	if (add) {
		put_qos2(st, s, pid);
		return;
	}
	sqlite3_bind_text(st->q[Q_Q2_DEL], 1, s->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st->q[Q_Q2_DEL], 2, pid);
	store_db_step(st, Q_Q2_DEL);
}

/* ---- commit, failure, snapshot ---- */

static bool op_pending(void *u)
{
	struct store_db *st = u;
	return st->in_txn || st->txn_failed || (st->failed && st->dirty) || st->carried;
}

static uint64_t op_due(void *u)
{
	return carry_due(u);
}

static bool op_writable(void *u)
{
	struct store_db *st = u;
	return !st->failed && !st->txn_failed;
}

static void rollback(struct store_db *st)
{
	drop_rows(st);
	carry_drop_all(st);
	st->del_seq_lo = st->del_seq_hi = st->del_mid_lo = st->del_mid_hi = 0;
	if (!sqlite3_get_autocommit(st->db))
		store_db_step(st, Q_ROLLBACK);
	st->in_txn = false;
	st->txn_failed = false;
}

static bool sys_topic(const struct message *m)
{
	return m->topic.len >= 4 && memcmp(m->topic.p, "$SYS", 4) == 0;
}

static bool snap_retained(void *value, void *ctx)
{
	struct message *m = value;
	if (!sys_topic(m))
		put_retained(ctx, m);
	return true;
}

static bool clear_retained_id(void *value, void *ctx)
{
	struct message *m = value;
	(void)ctx;
	m->store_id = 0; /* it may carry an id from before the unwritable period */
	m->store_refs = 0;
	return true;
}

static void clear_ids(struct out_list *l)
{
	for (struct outmsg *o = l->head; o; o = o->next) {
		o->store_seq = 0;
		o->msg->store_id = 0;
		o->msg->store_refs = 0;
	}
}

int store_db_snapshot(struct store_db *st)
{
	struct broker *b = st->b;
	rollback(st);
	retain_match(b->retained, mqtt_cstr("#"), clear_retained_id, NULL);
	for (uint32_t i = 0; i < b->stab_size; i++) {
		for (struct session *s = b->stab[i]; s; s = s->hnext) {
			clear_ids(&s->inflight);
			clear_ids(&s->queue);
			s->store_saved = false;
		}
	}
	st->failed = false;
	st->next_mid = st->next_seq = 1;
	if (!store_db_begin(st) ||
	    store_db_exec(st, "DELETE FROM retained; DELETE FROM sessions; DELETE FROM subs; DELETE FROM msgs;"
			      " DELETE FROM deliveries; DELETE FROM qos2_in;"))
		st->txn_failed = true;
	if (!st->txn_failed) {
		retain_match(b->retained, mqtt_cstr("#"), snap_retained, st);
		for (uint32_t i = 0; i < b->stab_size && !st->txn_failed; i++)
			for (struct session *s = b->stab[i]; s; s = s->hnext)
				if (s->expiry)
					put_session_all(st, s);
	}
	if (!st->txn_failed)
		store_db_flush_rows(st);
	if (!st->txn_failed)
		del_flush(st);
	int rc = (!st->txn_failed && store_db_step(st, Q_COMMIT)) ? 0 : -1;
	if (rc) {
		rollback(st);
		st->failed = true;
		return -1;
	}
	st->in_txn = false;
	return 0;
}

/* While unwritable: one snapshot attempt per STORE_RETRY_MS, on the wheel. */
static void on_retry(struct wheel_entry *e, uint64_t now)
{
	struct store_db *st = (struct store_db *)((char *)e - offsetof(struct store_db, retry));
	if (!st->failed)
		return;
	st->dirty = false;
	if (store_db_snapshot(st)) {
		st->commit_failures++;
		wheel_add(&st->b->wheel, &st->retry, now + STORE_RETRY_MS);
		return;
	}
	st->commits++;
	log_msg(st->b, LOG_F_NOTICE, "Persistence file %s is writable again; acknowledging again.", st->path);
}

void store_db_retry_init(struct store_db *st)
{
	wheel_entry_init(&st->retry, on_retry);
}

static int op_commit(void *u)
{
	struct store_db *st = u;
	struct broker *b = st->b;
	if (st->failed) {
		/* Changes made while unwritable are not durable until the next
		 * snapshot: their acknowledgements must not leave. */
		st->dirty = false;
		return -1;
	}
	if (st->n_cdlv || st->n_cmsg) {
		/* Write what is due (in the transaction), drop what was acked. */
		bool due = st->stopping || carry_due(st) <= broker_now(b);
		if (!due || store_db_begin(st))
			carry_write(st, due ? broker_now(b) : 0, st->stopping);
	}
	if (!st->in_txn && !st->txn_failed)
		return 0; /* only rows held back, none due */
	if (st->in_txn && !st->txn_failed)
		store_db_flush_rows(st);
	if (st->in_txn && !st->txn_failed)
		del_flush(st);
	if (!st->txn_failed && st->in_txn && store_db_step(st, Q_COMMIT)) {
		st->in_txn = false;
		st->commits++;
		return 0;
	}
	rollback(st);
	st->failed = true;
	st->dirty = false;
	wheel_add(&b->wheel, &st->retry, broker_now(b) + STORE_RETRY_MS);
	st->commit_failures++;
	log_msg(b, LOG_F_ERROR,
		"Error: persistence file %s is unwritable (%s): acknowledgements are withheld and QoS 1/2 PUBLISH "
		"refused until it can be written again.",
		st->path, sqlite3_errmsg(st->db));
	return -1;
}

const struct store_ops store_db_ops = {
	.retain_set = op_retain_set,
	.session_saved = op_session_saved,
	.session_end = op_session_end,
	.sub_add = op_sub_add,
	.sub_remove = op_sub_remove,
	.msg_queued = op_msg_queued,
	.msg_update = op_msg_update,
	.msg_acked = op_msg_acked,
	.qos2_in = op_qos2_in,
	.pending = op_pending,
	.commit = op_commit,
	.writable = op_writable,
	.due = op_due,
};
