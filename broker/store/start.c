/*
 * broker/store/start.c — which file, opening it, loading it, installing the
 * store; and stopping.
 *
 * The file is persistence_location + (persistence_file, else "vigil.db").
 * vigil never writes a file in mosquitto's format (mosquitto.db starts with
 * 00 B5 00 "mosquitto db") nor one named mosquitto.db (so the user can
 * switch back): if the configured file is one, vigil keeps its own store as
 * vigil.db beside it, and, while that does not exist yet, hands
 * the mosquitto file to the importer (store_import_mosquitto). The same
 * happens when no persistence_file is set and mosquitto.db lies in the
 * location: a user switching from mosquitto keeps the state mosquitto saved.
 * Not here: rows (write.c, load.c), SQL set-up (db.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "restore.h"
#include "store_int.h"
#include "store_sqlite.h"

static const unsigned char mosq_magic[15] = {0x00, 0xB5, 0x00, 'm', 'o', 's', 'q', 'u', 'i', 't', 't', 'o', ' ', 'd', 'b'};

/* 1: mosquitto's binary format, 0: not (or no file). */
static int is_mosquitto_file(const char *path)
{
	unsigned char head[sizeof(mosq_magic)];
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t n = fread(head, 1, sizeof(head), f);
	fclose(f);
	return n == sizeof(head) && memcmp(head, mosq_magic, sizeof(head)) == 0;
}

static char *join(const char *dir, const char *name)
{
	size_t dl = dir ? strlen(dir) : 0;
	bool slash = dl && dir[dl - 1] != '/' && name[0] != '/';
	char *p = malloc(dl + slash + strlen(name) + 1);
	if (p)
		sprintf(p, "%s%s%s", dl ? dir : "", slash ? "/" : "", name);
	return p;
}

static bool exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

int store_db_start(struct broker *b, struct store_db **out, char *err, size_t errlen)
{
	const struct config *cfg = b->cfg;
	*out = NULL;
	if (!cfg->persistence)
		return 0; /* nothing is written */
	const char *loc = cfg->persistence_location;
	const char *name = cfg->persistence_file ? cfg->persistence_file : STORE_DEFAULT_FILE;
	char *path = join(loc, name), *import = NULL;
	bool fresh = false;
	struct store_db *st = calloc(1, sizeof(*st));
	if (!path || !st) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	if (is_mosquitto_file(path) || strcmp(base, "mosquitto.db") == 0) {
		if (strcmp(name, STORE_DEFAULT_FILE) == 0) {
			snprintf(err, errlen, "persistence file %s is in mosquitto's format; vigil never writes it: "
					      "set persistence_file to another name", path);
			goto fail;
		}
		log_msg(b, LOG_F_WARNING, "Warning: %s is mosquitto's file; vigil never writes it and keeps its own "
					  "store in %s in the same place.", path, STORE_DEFAULT_FILE);
		import = is_mosquitto_file(path) ? path : NULL;
		if (!import)
			free(path);
		path = join(loc, STORE_DEFAULT_FILE);
		if (!path) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	} else if (!cfg->persistence_file) {
		char *m = join(loc, "mosquitto.db");
		if (m && is_mosquitto_file(m))
			import = m;
		else
			free(m);
	}
	fresh = !exists(path);
	st->b = b;
	store_db_retry_init(st);
	st->path = path;
	path = NULL;
	if (store_db_open(st, st->path, cfg->persistence_fsync, err, errlen) || store_db_load(st, err, errlen))
		goto fail;
	/* restore.h steps 2-4: the importer (a fresh store only) restores
	 * through restore.h, then the store is installed and writes what was
	 * imported in one snapshot. */
	if (fresh && import && store_import_mosquitto(b, import, err, errlen))
		goto fail;
	store_set(b, &store_db_ops, st);
	if (fresh && import) {
		if (store_db_snapshot(st)) {
			snprintf(err, errlen, "cannot write persistence file %s: %s", st->path, sqlite3_errmsg(st->db));
			goto fail_installed;
		}
	}
	restore_finish(b);
	store_db_loaded(st);
	store_commit(b);
	log_msg(b, LOG_F_NOTICE, "Persistence: %s (%u sessions, %zu retained messages restored).", st->path,
		b->n_sessions, retain_count(b->retained));
	free(import);
	*out = st;
	return 0;
fail_installed:
	store_set(b, NULL, NULL);
fail:
	if (st && st->db)
		store_db_close(st);
	if (st && st->path && fresh && import) {
		/* A failed import leaves no store behind: the next start must
		 * try (and refuse) again, never start empty (issue 8, item 4). */
		static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
		for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
			char *f = malloc(strlen(st->path) + 9);
			if (f) {
				sprintf(f, "%s%s", st->path, sfx[i]);
				unlink(f);
				free(f);
			}
		}
	}
	if (st) {
		for (size_t i = 0; i < st->n_was_connected; i++)
			free(st->was_connected[i]);
		free(st->was_connected);
		free(st->path);
	}
	free(st);
	free(path);
	free(import);
	return -1;
}

void store_db_stop(struct broker *b, struct store_db *st)
{
	if (!st)
		return;
	st->stopping = true; /* the last commit writes whatever is held back */
	store_commit(b);
	log_msg(b, LOG_F_INFORMATION, "Persistence: %llu QoS 1 deliveries were acknowledged before they had to be written, %llu were written.",
		(unsigned long long)st->carry_dropped, (unsigned long long)st->carry_written);
	store_set(b, NULL, NULL);
	store_db_carry_free(st);
	wheel_cancel(&b->wheel, &st->retry);
	if (st->in_txn)
		store_db_step(st, Q_ROLLBACK);
	store_db_exec(st, "PRAGMA wal_checkpoint(TRUNCATE)");
	store_db_close(st);
	free(st->path);
	free(st);
}
