/*
 * broker/store/store_int.h — the store room's internals (db.c, write.c,
 * load.c). Nothing outside broker/store/ includes this.
 */
#ifndef VIGIL_STORE_INT_H
#define VIGIL_STORE_INT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker.h"

#define STORE_FORMAT 1              /* PRAGMA user_version this build writes and reads */
#define STORE_APP_ID 0x5647494c     /* PRAGMA application_id: "VGIL" */
#define STORE_DEFAULT_FILE "vigil.db"
#define STORE_RETRY_MS 1000         /* unwritable store: try again at most this often */

enum store_stmt {
	Q_BEGIN, Q_COMMIT, Q_ROLLBACK,
	Q_RET_PUT, Q_RET_DEL,
	Q_SES_PUT, Q_SES_DEL, Q_SES_SUBS_DEL, Q_SES_Q2_DEL,
	Q_SUB_PUT, Q_SUB_DEL,
	Q_MSG_PUT, Q_MSG_DEL,
	Q_DELIV_PUT, Q_DELIV_UPD, Q_DELIV_DEL,
	Q_Q2_PUT, Q_Q2_DEL,
	Q__COUNT
};

/* write.c: rows INSERTed at the end of the pass, many per statement. */
#define STORE_BATCH_LOG 6                    /* largest batch: 1 << 6 = 64 rows per INSERT */
#define STORE_BATCH (1 << STORE_BATCH_LOG)
#define STORE_SID_INLINE 48                  /* longer session ids take the one-row path */
struct store_pend_msg {
	struct message *m;                   /* a reference: alive and unchanged until flushed */
	uint64_t mid;                        /* copied: m->store_id is cleared when its last delivery goes */
	int64_t expires_at;
};
struct store_pend_dlv {
	uint64_t seq, mid;
	uint16_t pid;
	uint8_t qos, retain, state;
	char sid[STORE_SID_INLINE];
};

/* write.c: a delivery held back (and its msgs row): written when due,
 * never when acknowledged first. Both hold a reference on the message. */
#define STORE_CARRY_MS 2                     /* held back at most this long (then written) */
#define STORE_CARRY_BACKOFF_MS 100           /* a subscriber that missed it: written at once this long */
struct store_carry_msg {
	struct store_pend_msg row;           /* row.m: NULL once dropped */
	uint64_t due;
};
struct store_carry_dlv {
	struct store_pend_dlv row;
	struct message *m;                   /* NULL once dropped */
	uint64_t due;
};

struct store_db {
	struct broker *b;
	sqlite3 *db;
	char *path;
	sqlite3_stmt *q[Q__COUNT];  /* prepared once (SQLITE_PREPARE_PERSISTENT) */
	bool in_txn;                /* BEGIN issued this pass */
	bool txn_failed;            /* a statement of this transaction failed */
	bool failed;                /* unwritable: nothing is written until a snapshot succeeds */
	bool dirty;                 /* while failed: changes since the last snapshot attempt */
	struct wheel_entry retry;   /* while failed: the next snapshot attempt */
	uint64_t next_mid, next_seq;
	/* write.c: deletes of this transaction not yet run, as one range each
	 * (acks come in order, so consecutive seq / mid are the common case);
	 * run before COMMIT, dropped with a rollback. hi 0 = none. */
	uint64_t del_seq_lo, del_seq_hi, del_mid_lo, del_mid_hi;
	/* write.c: msgs / deliveries rows of this transaction not INSERTed yet;
	 * flushed before any other statement runs (store_db_step) and before
	 * COMMIT, dropped with a rollback. */
	struct store_pend_msg pend_msg[STORE_BATCH];
	struct store_pend_dlv pend_dlv[STORE_BATCH];
	unsigned n_pend_msg, n_pend_dlv;
	/* write.c: held-back rows, in id order (so by due time too); dropped
	 * entries stay (m NULL) until the next commit compacts them. */
	struct store_carry_msg *cmsg;
	struct store_carry_dlv *cdlv;
	size_t n_cmsg, cap_cmsg, n_cdlv, cap_cdlv;
	size_t cdlv_first;          /* cdlv[0..cdlv_first) are known dropped */
	unsigned carried;           /* live entries of cdlv */
	bool stopping;              /* store_db_stop: write everything held back */
	uint64_t carry_written, carry_dropped; /* held-back deliveries written / never written */
	/* db.c: INSERT of 2, 4, ... STORE_BATCH rows (index log2(rows) - 1) */
	sqlite3_stmt *q_msg_n[STORE_BATCH_LOG], *q_dlv_n[STORE_BATCH_LOG];
	uint64_t commits, commit_failures; /* for tests and logs */
	char **was_connected;       /* load: ids of sessions connected when the broker stopped */
	size_t n_was_connected;
};

/* db.c */
int store_db_open(struct store_db *st, const char *path, bool fsync_full, char *err, size_t errlen);
void store_db_close(struct store_db *st);
/* Start the pass's transaction if none is open; false: cannot write. */
bool store_db_begin(struct store_db *st);
/* Run a bound statement (then reset it). false: it failed (txn_failed set). */
bool store_db_step(struct store_db *st, enum store_stmt q);
int store_db_exec(struct store_db *st, const char *sql);
/* Step a bound statement (then reset it; clear: and unbind its parameters,
 * which a caller that binds every parameter each time can skip); as
 * store_db_step, without its flush of buffered rows. */
bool store_db_step_stmt(struct store_db *st, sqlite3_stmt *s, bool clear);

/* write.c */
extern const struct store_ops store_db_ops;
/* Rewrite everything from the broker's memory in one transaction (after an
 * unwritable period, or after an import). 0 or -1. */
int store_db_snapshot(struct store_db *st);
void store_db_retry_init(struct store_db *st);
/* INSERT the buffered msgs / deliveries rows now (in the open transaction). */
void store_db_flush_rows(struct store_db *st);
/* Drop whatever is held back and free its arrays (store_db_stop). */
void store_db_carry_free(struct store_db *st);

/* load.c */
int store_db_load(struct store_db *st, char *err, size_t errlen);
/* After restore_finish: sessions that were connected when the broker
 * stopped are saved as detached now (their expiry runs from this start). */
void store_db_loaded(struct store_db *st);

/* mosqdb_import.c: the mosquitto.db importer. */
int store_import_mosquitto(struct broker *b, const char *path, char *err, size_t errlen);

#endif
