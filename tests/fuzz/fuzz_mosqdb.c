/*
 * tests/fuzz/fuzz_mosqdb.c — libFuzzer harness for the mosquitto.db reader.
 *
 * Any byte string is parsed as a mosquitto.db image (the corpus starts from
 * the golden files written by mosquitto 2.0.11, tests/fixtures/mosqdb/) and
 * every view handed to a callback is read in full: no crash, no read out of
 * bounds, no leak, and an error always carries a message. `make fuzz` runs it.
 */
#include <stdint.h>
#include <stdlib.h>

#include "mosqdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink;

static void touch(struct mosqdb_bytes b)
{
	for (size_t i = 0; i < b.len; i++)
		sink ^= b.p[i];
}

static void touch_msg(const struct mosqdb_msg *m)
{
	touch(m->topic);
	touch(m->payload);
	touch(m->source_id);
	touch(m->source_username);
	touch(m->props);
}

static int on_retained(void *u, const struct mosqdb_msg *m)
{
	touch_msg(m);
	return 0;
}

static int on_client(void *u, const struct mosqdb_client *c)
{
	touch(c->id);
	touch(c->username);
	return 0;
}

static int on_sub(void *u, const struct mosqdb_sub *s)
{
	touch(s->client_id);
	touch(s->filter);
	return 0;
}

static int on_client_msg(void *u, const struct mosqdb_client_msg *cm)
{
	touch(cm->client_id);
	touch(cm->props);
	touch_msg(cm->msg);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct mosqdb_visitor v = {NULL, on_retained, on_client, on_sub, on_client_msg};
	char err[256] = "";
	int rc = mosqdb_parse(data, size, &v, NULL, err, sizeof err);
	if (rc != MOSQDB_OK && !err[0])
		abort(); /* an error must say what is wrong */
	return 0;
}
