/*
 * broker/store/store_sqlite.h — vigil's durable store (SQLite), as main.c
 * sees it: start (open, check, load, install) and stop (commit, close).
 *
 * The core talks to the store only through broker/store.c (store_*()), and
 * the store recreates state only through broker/restore.h.
 */
#ifndef VIGIL_STORE_SQLITE_H
#define VIGIL_STORE_SQLITE_H

#include <stddef.h>

struct broker;
struct store_db;

/* With `persistence true`: open (or create) the store file under
 * persistence_location, refuse a corrupt, foreign or newer file (err names
 * the file; the file is kept), load its state into b (restore.h), install
 * the store's ops and run restore_finish. Call after broker_listen, before
 * the loop runs. *out is NULL when persistence is off (nothing is written).
 * Returns 0, or -1 with err set: start-up must stop. */
int store_db_start(struct broker *b, struct store_db **out, char *err, size_t errlen);
/* Commit what is pending, uninstall the ops, close the file. Call before
 * broker_fini (which destroys sessions: that is not a durable change).
 * store_db_stop(b, NULL) does nothing. */
void store_db_stop(struct broker *b, struct store_db *st);

#endif
