/*
 * broker/store/load.c — read the store at start-up into the core, through
 * restore.h only.
 *
 * Order: retained messages, sessions (with wills), subscriptions, message
 * bodies, deliveries (by seq: queue order and send order), inbound QoS 2
 * ids. A row that cannot be restored (bad values: the file was edited or
 * damaged) stops start-up with the file named; nothing is deleted.
 * Not here: timers falling due (restore_finish, after the ops are installed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "restore.h"
#include "store_int.h"

struct loaded_msg {
	uint64_t mid;
	struct message *m;
};

static struct mqtt_str col_blob(sqlite3_stmt *q, int i)
{
	const void *p = sqlite3_column_blob(q, i);
	int n = sqlite3_column_bytes(q, i);
	return (struct mqtt_str){p, p ? (uint32_t)n : 0};
}

static struct mqtt_str col_text(sqlite3_stmt *q, int i)
{
	const unsigned char *p = sqlite3_column_text(q, i);
	int n = sqlite3_column_bytes(q, i);
	return (struct mqtt_str){p, p ? (uint32_t)n : 0};
}

static const char *col_cstr(sqlite3_stmt *q, int i)
{
	return sqlite3_column_type(q, i) == SQLITE_NULL ? NULL : (const char *)sqlite3_column_text(q, i);
}

static int prepare(struct store_db *st, const char *sql, sqlite3_stmt **q, char *err, size_t errlen)
{
	if (sqlite3_prepare_v2(st->db, sql, -1, q, NULL) == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "persistence file %s: %s", st->path, sqlite3_errmsg(st->db));
	return -1;
}

/* SQLITE_DONE after the rows: 0; an error: -1 with err. */
static int finish(struct store_db *st, sqlite3_stmt *q, int rc, const char *what, char *err, size_t errlen)
{
	if (rc != SQLITE_DONE) {
		if (rc == SQLITE_ROW)
			snprintf(err, errlen, "persistence file %s: bad %s row; the file was left untouched", st->path,
				 what);
		else
			snprintf(err, errlen, "persistence file %s: reading %s: %s; the file was left untouched",
				 st->path, what, sqlite3_errmsg(st->db));
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int load_retained(struct store_db *st, char *err, size_t errlen)
{
	sqlite3_stmt *q;
	int rc;
	if (prepare(st, "SELECT topic, payload, props, qos, expires_at, origin_id, origin_user FROM retained", &q,
		    err, errlen))
		return -1;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct message *m = restore_message(st->b, col_text(q, 0), col_blob(q, 1), col_blob(q, 2),
						    (uint8_t)sqlite3_column_int(q, 3), true,
						    (uint64_t)sqlite3_column_int64(q, 4), col_cstr(q, 5), col_cstr(q, 6));
		int bad = !m || restore_retained(st->b, m);
		message_unref(&m);
		if (bad)
			break;
	}
	return finish(st, q, rc, "retained", err, errlen);
}

static int load_sessions(struct store_db *st, char *err, size_t errlen)
{
	sqlite3_stmt *q;
	int rc;
	if (prepare(st, "SELECT id, version, expiry, username, listener, connected, expires_at, next_pid, will_topic,"
			" will_payload, will_props, will_qos, will_retain, will_delay, will_has_expiry, will_expiry,"
			" will_at, will_user FROM sessions",
		    &q, err, errlen))
		return -1;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		sqlite3_int64 exp = sqlite3_column_int64(q, 2);
		struct restore_session rs = {
			.id = col_cstr(q, 0),
			.version = (uint8_t)sqlite3_column_int(q, 1),
			.expiry = exp < 0 || exp > UINT32_MAX ? 0 : (uint32_t)exp,
			.username = col_cstr(q, 3),
			.listener = sqlite3_column_int(q, 4),
			.was_connected = sqlite3_column_int(q, 5) != 0,
			.expires_at = (uint64_t)sqlite3_column_int64(q, 6),
			.next_pid = (uint16_t)sqlite3_column_int(q, 7),
		};
		if (sqlite3_column_type(q, 8) != SQLITE_NULL) {
			rs.will_msg = restore_message(st->b, col_text(q, 8), col_blob(q, 9), col_blob(q, 10),
						      (uint8_t)sqlite3_column_int(q, 11), sqlite3_column_int(q, 12) != 0,
						      0, rs.id, col_cstr(q, 17));
			if (!rs.will_msg)
				break;
			rs.will_delay = (uint32_t)sqlite3_column_int64(q, 13);
			rs.will_has_expiry = sqlite3_column_int(q, 14) != 0;
			rs.will_expiry = (uint32_t)sqlite3_column_int64(q, 15);
			rs.will_at = (uint64_t)sqlite3_column_int64(q, 16);
		}
		struct session *s = restore_session(st->b, &rs);
		message_unref(&rs.will_msg);
		if (!s)
			break;
		s->store_saved = true;
		if (rs.was_connected) {
			char **v = realloc(st->was_connected, (st->n_was_connected + 1) * sizeof(*v));
			if (!v || !(v[st->n_was_connected] = strdup(rs.id))) {
				if (v)
					st->was_connected = v;
				break;
			}
			st->was_connected = v;
			st->n_was_connected++;
		}
	}
	return finish(st, q, rc, "sessions", err, errlen);
}

static int load_subs(struct store_db *st, char *err, size_t errlen)
{
	sqlite3_stmt *q;
	int rc;
	if (prepare(st, "SELECT sid, filter, options, sub_id FROM subs", &q, err, errlen))
		return -1;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *sid = col_cstr(q, 0), *f = col_cstr(q, 1);
		struct session *s = sid ? session_find(st->b, sid) : NULL;
		if (!s || !f ||
		    restore_sub(s, f, (uint8_t)sqlite3_column_int(q, 2), (uint32_t)sqlite3_column_int64(q, 3)))
			break;
	}
	return finish(st, q, rc, "subscription", err, errlen);
}

static int cmp_mid(const void *a, const void *b)
{
	uint64_t x = ((const struct loaded_msg *)a)->mid, y = ((const struct loaded_msg *)b)->mid;
	return x < y ? -1 : x > y;
}

static int load_deliveries(struct store_db *st, char *err, size_t errlen)
{
	sqlite3_stmt *q;
	int rc;
	struct loaded_msg *v = NULL;
	size_t n = 0, cap = 0;
	int ret = -1;
	/* Bodies no delivery refers to (cannot happen unless edited): skipped. */
	if (prepare(st, "SELECT mid, topic, payload, props, qos, retain, expires_at FROM msgs WHERE mid IN"
			" (SELECT mid FROM deliveries) ORDER BY mid",
		    &q, err, errlen))
		return -1;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct loaded_msg *nv = realloc(v, nc * sizeof(*v));
			if (!nv)
				break;
			v = nv;
			cap = nc;
		}
		struct message *m = restore_message(st->b, col_text(q, 1), col_blob(q, 2), col_blob(q, 3),
						    (uint8_t)sqlite3_column_int(q, 4), sqlite3_column_int(q, 5) != 0,
						    (uint64_t)sqlite3_column_int64(q, 6), NULL, NULL);
		if (!m)
			break;
		m->store_id = (uint64_t)sqlite3_column_int64(q, 0);
		v[n++] = (struct loaded_msg){m->store_id, m};
		if (m->store_id >= st->next_mid)
			st->next_mid = m->store_id + 1;
	}
	if (finish(st, q, rc, "message", err, errlen))
		goto out;
	if (prepare(st, "SELECT seq, sid, mid, qos, retain, state, pid, sub_ids FROM deliveries ORDER BY seq", &q, err,
		    errlen))
		goto out;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		uint64_t seq = (uint64_t)sqlite3_column_int64(q, 0);
		const char *sid = col_cstr(q, 1);
		struct loaded_msg key = {(uint64_t)sqlite3_column_int64(q, 2), NULL};
		struct loaded_msg *lm = n ? bsearch(&key, v, n, sizeof(*v), cmp_mid) : NULL;
		struct session *s = sid ? session_find(st->b, sid) : NULL;
		struct mqtt_str ids = col_blob(q, 7);
		uint32_t sub_ids[255];
		uint8_t nids = (uint8_t)(ids.len / sizeof(uint32_t) > 255 ? 255 : ids.len / sizeof(uint32_t));
		if (nids)
			memcpy(sub_ids, ids.p, nids * sizeof(uint32_t));
		if (!s || !lm ||
		    restore_delivery(s, lm->m, (uint8_t)sqlite3_column_int(q, 3), sqlite3_column_int(q, 4) != 0,
				     (uint8_t)sqlite3_column_int(q, 5), (uint16_t)sqlite3_column_int(q, 6), sub_ids,
				     nids, seq))
			break;
		lm->m->store_refs++;
		if (seq >= st->next_seq)
			st->next_seq = seq + 1;
	}
	ret = finish(st, q, rc, "delivery", err, errlen);
out:
	for (size_t i = 0; i < n; i++)
		message_unref(&v[i].m);
	free(v);
	return ret;
}

static int load_qos2(struct store_db *st, char *err, size_t errlen)
{
	sqlite3_stmt *q;
	int rc;
	if (prepare(st, "SELECT sid, pid FROM qos2_in", &q, err, errlen))
		return -1;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *sid = col_cstr(q, 0);
		struct session *s = sid ? session_find(st->b, sid) : NULL;
		if (!s || restore_qos2_in(s, (uint16_t)sqlite3_column_int(q, 1)))
			break;
	}
	return finish(st, q, rc, "QoS 2", err, errlen);
}

int store_db_load(struct store_db *st, char *err, size_t errlen)
{
	st->next_mid = st->next_seq = 1;
	if (load_retained(st, err, errlen) || load_sessions(st, err, errlen) || load_subs(st, err, errlen) ||
	    load_deliveries(st, err, errlen) || load_qos2(st, err, errlen))
		return -1;
	return 0;
}

void store_db_loaded(struct store_db *st)
{
	for (size_t i = 0; i < st->n_was_connected; i++) {
		struct session *s = session_find(st->b, st->was_connected[i]);
		if (s && !s->client)
			store_session_saved(st->b, s);
		free(st->was_connected[i]);
	}
	free(st->was_connected);
	st->was_connected = NULL;
	st->n_was_connected = 0;
	/* Message bodies no delivery refers to (none unless the file was
	 * edited): dropped once, at start-up. */
	if (store_db_begin(st))
		store_db_exec(st, "DELETE FROM msgs WHERE mid NOT IN (SELECT mid FROM deliveries)");
}
