/*
 * broker/store/db.c — the SQLite file: open, check, schema, statements.
 *
 * WAL mode, synchronous=NORMAL (safe against a crash of the process; a power
 * loss may lose the last commits) or FULL with `persistence_fsync true`.
 * Every statement is prepared once at open. A file that is not a vigil
 * store, is damaged, or was written by a newer vigil is refused with an
 * error naming the file, and is never changed or deleted.
 * Not here: what the rows mean (write.c, load.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

static const char *const schema =
	"CREATE TABLE meta(k TEXT PRIMARY KEY, v);"
	"CREATE TABLE retained(topic TEXT PRIMARY KEY, payload BLOB NOT NULL, props BLOB, qos INTEGER NOT NULL,"
	" expires_at INTEGER NOT NULL, origin_id TEXT, origin_user TEXT);"
	"CREATE TABLE sessions(id TEXT PRIMARY KEY, version INTEGER NOT NULL, expiry INTEGER NOT NULL,"
	" username TEXT, listener INTEGER NOT NULL, connected INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
	" next_pid INTEGER NOT NULL, will_topic TEXT, will_payload BLOB, will_props BLOB, will_qos INTEGER,"
	" will_retain INTEGER, will_delay INTEGER, will_has_expiry INTEGER, will_expiry INTEGER, will_at INTEGER,"
	" will_user TEXT);"
	"CREATE TABLE subs(sid TEXT NOT NULL, filter TEXT NOT NULL, options INTEGER NOT NULL, sub_id INTEGER NOT NULL,"
	" PRIMARY KEY(sid, filter)) WITHOUT ROWID;"
	"CREATE TABLE msgs(mid INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL, props BLOB,"
	" qos INTEGER NOT NULL, retain INTEGER NOT NULL, expires_at INTEGER NOT NULL);"
	"CREATE TABLE deliveries(seq INTEGER PRIMARY KEY, sid TEXT NOT NULL, mid INTEGER NOT NULL,"
	" qos INTEGER NOT NULL, retain INTEGER NOT NULL, state INTEGER NOT NULL, pid INTEGER NOT NULL, sub_ids BLOB);"
	"CREATE TABLE qos2_in(sid TEXT NOT NULL, pid INTEGER NOT NULL, PRIMARY KEY(sid, pid)) WITHOUT ROWID;"
	"INSERT INTO meta VALUES('created_by', 'vigil " VIGIL_VERSION "');";

static const char *const sql[Q__COUNT] = {
	[Q_BEGIN] = "BEGIN",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_RET_PUT] = "INSERT OR REPLACE INTO retained VALUES(?1,?2,?3,?4,?5,?6,?7)",
	[Q_RET_DEL] = "DELETE FROM retained WHERE topic=?1",
	[Q_SES_PUT] = "INSERT OR REPLACE INTO sessions VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,"
		      "?17,?18)",
	[Q_SES_DEL] = "DELETE FROM sessions WHERE id=?1",
	[Q_SES_SUBS_DEL] = "DELETE FROM subs WHERE sid=?1",
	[Q_SES_Q2_DEL] = "DELETE FROM qos2_in WHERE sid=?1",
	[Q_SUB_PUT] = "INSERT OR REPLACE INTO subs VALUES(?1,?2,?3,?4)",
	[Q_SUB_DEL] = "DELETE FROM subs WHERE sid=?1 AND filter=?2",
	[Q_MSG_PUT] = "INSERT INTO msgs VALUES(?1,?2,?3,?4,?5,?6,?7)",
	[Q_MSG_DEL] = "DELETE FROM msgs WHERE mid BETWEEN ?1 AND ?2",
	[Q_DELIV_PUT] = "INSERT INTO deliveries VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
	[Q_DELIV_UPD] = "UPDATE deliveries SET state=?2, pid=?3 WHERE seq=?1",
	[Q_DELIV_DEL] = "DELETE FROM deliveries WHERE seq BETWEEN ?1 AND ?2",
	[Q_Q2_PUT] = "INSERT OR REPLACE INTO qos2_in VALUES(?1,?2)",
	[Q_Q2_DEL] = "DELETE FROM qos2_in WHERE sid=?1 AND pid=?2",
};

int store_db_exec(struct store_db *st, const char *q)
{
	return sqlite3_exec(st->db, q, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int pragma_int(sqlite3 *db, const char *q, long long *v)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, q, -1, &s, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* PRAGMA quick_check: "ok" or the first problem. */
static int check_file(sqlite3 *db, char *why, size_t cap)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &s, NULL) != SQLITE_OK) {
		snprintf(why, cap, "%s", sqlite3_errmsg(db));
		return -1;
	}
	int rc = sqlite3_step(s);
	const char *r = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
	int ok = r && strcmp(r, "ok") == 0;
	if (!ok)
		snprintf(why, cap, "%s", r ? r : sqlite3_errmsg(db));
	sqlite3_finalize(s);
	return ok ? 0 : -1;
}

/* "INSERT INTO t VALUES(?,...),(?,...)...": rows rows of cols columns. */
static sqlite3_stmt *prepare_batch(sqlite3 *db, const char *table, int cols, int rows)
{
	size_t cap = 40 + (size_t)rows * (3 + 2 * (size_t)cols);
	char *q = malloc(cap), *p = q;
	if (!q)
		return NULL;
	p += sprintf(p, "INSERT INTO %s VALUES", table);
	for (int r = 0; r < rows; r++) {
		*p++ = r ? ',' : ' ';
		*p++ = '(';
		for (int c = 0; c < cols; c++) {
			if (c)
				*p++ = ',';
			*p++ = '?';
		}
		*p++ = ')';
	}
	*p = 0;
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v3(db, q, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK)
		s = NULL;
	free(q);
	return s;
}

/* Same table format as Q_MSG_PUT / Q_DELIV_PUT (7 and 8 columns), so load.c
 * reads what these write unchanged. */
static int prepare_batches(struct store_db *st)
{
	for (int i = 0; i < STORE_BATCH_LOG; i++) {
		st->q_msg_n[i] = prepare_batch(st->db, "msgs", 7, 2 << i);
		st->q_dlv_n[i] = prepare_batch(st->db, "deliveries", 8, 2 << i);
		if (!st->q_msg_n[i] || !st->q_dlv_n[i])
			return -1;
	}
	return 0;
}

int store_db_open(struct store_db *st, const char *path, bool fsync_full, char *err, size_t errlen)
{
	char why[256] = "";
	long long app = 0, ver = 0, tables = 0;
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "cannot open persistence file %s: %s", path,
			 st->db ? sqlite3_errmsg(st->db) : "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 1);
	/* One process owns the store: the lock is taken at the first read and
	 * kept (and WAL then needs no shared-memory file). */
	if (store_db_exec(st, "PRAGMA locking_mode=EXCLUSIVE")) {
		snprintf(err, errlen, "cannot open persistence file %s: %s", path, sqlite3_errmsg(st->db));
		goto fail;
	}
	if (pragma_int(st->db, "SELECT count(*) FROM sqlite_schema", &tables)) {
		int ec = sqlite3_errcode(st->db);
		if (ec == SQLITE_BUSY || ec == SQLITE_LOCKED)
			snprintf(err, errlen, "persistence file %s is in use by another process", path);
		else
			snprintf(err, errlen, "persistence file %s is not a vigil store (%s); it was left untouched",
				 path, sqlite3_errmsg(st->db));
		goto fail;
	}
	if (tables > 0) {
		if (check_file(st->db, why, sizeof(why))) {
			snprintf(err, errlen, "persistence file %s is damaged (%s); it was left untouched", path, why);
			goto fail;
		}
		if (pragma_int(st->db, "PRAGMA application_id", &app) || app != STORE_APP_ID) {
			snprintf(err, errlen, "persistence file %s is an SQLite file but not a vigil store; it was "
					      "left untouched", path);
			goto fail;
		}
		if (pragma_int(st->db, "PRAGMA user_version", &ver) || ver > STORE_FORMAT || ver < 1) {
			snprintf(err, errlen, "persistence file %s has store format %lld, this vigil reads format %d%s; "
					      "it was left untouched", path, ver, STORE_FORMAT,
				 ver > STORE_FORMAT ? " (written by a newer vigil)" : "");
			goto fail;
		}
	}
	if (store_db_exec(st, "PRAGMA journal_mode=WAL") ||
	    store_db_exec(st, fsync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL") ||
	    store_db_exec(st, "PRAGMA foreign_keys=OFF")) {
		snprintf(err, errlen, "cannot set up persistence file %s: %s", path, sqlite3_errmsg(st->db));
		goto fail;
	}
	/* Format 1 files made before this build carry an index on
	 * deliveries(sid) that nothing reads (a session's rows are deleted one
	 * by one by seq: load refuses a row with no session): drop it, it costs
	 * two B-tree writes per delivery. */
	if (tables > 0 && store_db_exec(st, "DROP INDEX IF EXISTS deliveries_sid")) {
		snprintf(err, errlen, "cannot set up persistence file %s: %s", path, sqlite3_errmsg(st->db));
		goto fail;
	}
	if (tables == 0) {
		char pre[128];
		snprintf(pre, sizeof(pre), "PRAGMA application_id=%d; PRAGMA user_version=%d;", STORE_APP_ID,
			 STORE_FORMAT);
		if (store_db_exec(st, "BEGIN") || store_db_exec(st, pre) || store_db_exec(st, schema) ||
		    store_db_exec(st, "COMMIT")) {
			snprintf(err, errlen, "cannot create persistence file %s: %s", path, sqlite3_errmsg(st->db));
			goto fail;
		}
	}
	for (int i = 0; i < Q__COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->q[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "persistence file %s: %s (is it a vigil store?)", path,
				 sqlite3_errmsg(st->db));
			goto fail;
		}
	}
	if (prepare_batches(st)) {
		snprintf(err, errlen, "persistence file %s: %s (is it a vigil store?)", path, sqlite3_errmsg(st->db));
		goto fail;
	}
	return 0;
fail:
	store_db_close(st);
	return -1;
}

void store_db_close(struct store_db *st)
{
	for (int i = 0; i < Q__COUNT; i++) {
		sqlite3_finalize(st->q[i]);
		st->q[i] = NULL;
	}
	for (int i = 0; i < STORE_BATCH_LOG; i++) {
		sqlite3_finalize(st->q_msg_n[i]);
		sqlite3_finalize(st->q_dlv_n[i]);
		st->q_msg_n[i] = st->q_dlv_n[i] = NULL;
	}
	if (st->db)
		sqlite3_close(st->db);
	st->db = NULL;
}

bool store_db_step(struct store_db *st, enum store_stmt q)
{
	/* Buffered rows go in first, so every other statement (a delete or
	 * update of those rows among them) sees them, as if written at once. */
	if ((st->n_pend_msg || st->n_pend_dlv) && q != Q_COMMIT && q != Q_ROLLBACK)
		store_db_flush_rows(st);
	return store_db_step_stmt(st, st->q[q], true);
}

bool store_db_step_stmt(struct store_db *st, sqlite3_stmt *s, bool clear)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (clear)
		sqlite3_clear_bindings(s);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return true;
	if (!st->txn_failed)
		log_msg(st->b, LOG_F_ERROR, "Error: persistence file %s: write failed: %s.", st->path,
			sqlite3_errstr(rc));
	st->txn_failed = true;
	return false;
}

bool store_db_begin(struct store_db *st)
{
	if (st->failed) {
		st->dirty = true; /* caught up by the next snapshot */
		return false;
	}
	if (st->txn_failed)
		return false;
	if (!st->in_txn) {
		if (!store_db_step(st, Q_BEGIN))
			return false;
		st->in_txn = true;
	}
	return true;
}
