/*
 * tests/fuzz/fuzz_cluster.c — libFuzzer harness for what the cluster room
 * reads from NATS and the names it makes (broker/cluster/subject.c).
 *
 * Any byte string is decoded as a message envelope (every view is read in
 * full: no read out of bounds), re-encoded and decoded again to the same
 * fields; and taken as a topic and a filter: the subject never exceeds
 * CL_SUBJ_MAX, has one token per level, no empty token, and a topic's
 * subject never contains a wildcard token. `make fuzz` runs it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink;

static void touch(struct mqtt_str s)
{
	for (size_t i = 0; i < s.len; i++)
		sink ^= s.p[i];
}

static int same(struct mqtt_str a, struct mqtt_str b)
{
	return a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len));
}

static void check_subject(const uint8_t *t, size_t len, int filter)
{
	char out[CL_SUBJ_MAX + 1];
	int n = subject_topic(out, sizeof(out), "P", t, len, filter);
	if (n < 0)
		return;
	if ((size_t)n != strlen(out) || n > CL_SUBJ_MAX)
		abort();
	size_t levels = 1, tokens = 0;
	for (size_t i = 0; i < len; i++)
		levels += t[i] == '/';
	for (const char *p = out + 1; *p; p++) {
		if (*p != '.')
			continue;
		tokens++;
		if (p[1] == '.' || p[1] == 0)
			abort(); /* an empty token */
		if (!filter && (p[1] == '*' || p[1] == '>'))
			abort(); /* a wildcard from a topic */
	}
	if (tokens != levels)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cl_env e, d;
	if (env_decode(data, size, &e) == 0) {
		touch(e.topic);
		touch(e.id);
		touch(e.user);
		touch(e.props);
		touch(e.payload);
		size_t len = 0;
		uint8_t *buf = env_encode(&e, &len);
		if (buf) {
			if (env_decode(buf, len, &d) || d.flags != e.flags || d.inst != e.inst || d.seq != e.seq ||
			    d.delay != e.delay || !same(d.topic, e.topic) || !same(d.payload, e.payload) ||
			    !same(d.props, e.props) || !same(d.id, e.id) || !same(d.user, e.user))
				abort();
			free(buf);
		}
	}
	check_subject(data, size, 0);
	check_subject(data, size, 1);
	return 0;
}
