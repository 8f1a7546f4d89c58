/*
 * broker/store/import.c — THE PLACE FOR THE mosquitto.db IMPORTER.
 *
 * store_db_start calls store_import_mosquitto(b, path, ...) once, when the
 * configured location holds a file in mosquitto 2.0's format and vigil has
 * no store there yet. The importer reads the file (never writes it), and
 * recreates retained messages, sessions, subscriptions and queued messages
 * through broker/restore.h (steps 2 of its contract; store_db_start does 3
 * and 4). Returns 0, or -1 with err naming the file: start-up stops.
 * This stub imports nothing; it says so and leaves the file alone.
 */
#include "store_int.h"

int store_import_mosquitto(struct broker *b, const char *path, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	log_msg(b, LOG_F_WARNING, "Warning: %s is a mosquitto persistence file; importing it is not implemented "
				  "yet: starting with an empty store (the file is left untouched).", path);
	return 0;
}
