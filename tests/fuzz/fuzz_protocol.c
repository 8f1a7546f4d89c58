/*
 * tests/fuzz/fuzz_protocol.c — libFuzzer harness for protocol/: the framer,
 * every decoder, the property walker, the topic functions, and encode /
 * decode round trips.
 *
 * Input: byte 0 picks the protocol version (3, 4 or 5) and a maximum packet
 * size; the rest is a byte stream framed with mqtt_frame_parse, as the
 * broker does. Every frame goes through every decoder (whatever its type);
 * a decode that succeeds is re-encoded and must give the same bytes (or,
 * where the encoder picks a shorter legal form, the same fields).
 *
 * Build and run (clang):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iprotocol \
 *         tests/fuzz/fuzz_protocol.c protocol/[a-z]*.c -o build/fuzz_protocol
 *   ./build/fuzz_protocol -max_total_time=60 corpus/
 * Without libFuzzer (replays files, e.g. a corpus, with any compiler):
 *   cc -DFUZZ_STANDALONE -g -fsanitize=address,undefined -Iprotocol \
 *         tests/fuzz/fuzz_protocol.c protocol/[a-z]*.c -o build/fuzz_protocol_replay
 *   ./build/fuzz_protocol_replay FILE...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt.h"

#define CHECK(c)                                                                               \
	do {                                                                                   \
		if (!(c)) {                                                                    \
			fprintf(stderr, "fuzz_protocol: %s:%d: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                               \
		}                                                                              \
	} while (0)

static bool str_eq(struct mqtt_str a, struct mqtt_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static uint8_t out[1 << 21]; /* larger than any replayed input */

/* The encoding must be the frame itself. */
static void same_bytes(const uint8_t *frame, const struct mqtt_frame *f, size_t n)
{
	CHECK(n == f->total);
	CHECK(memcmp(out, frame, n) == 0);
}

static void walk_props(const struct mqtt_props *p)
{
	size_t off = 0;
	struct mqtt_prop pr;
	uint32_t n = 0;
	while (mqtt_props_next(p->raw, &off, &pr))
		n++;
	CHECK(off == p->raw.len);
	CHECK(n >= p->n_user + p->n_sub_id);
	struct mqtt_pw w;
	mqtt_pw_init(&w, out, sizeof out);
	mqtt_pw_copy_except(&w, p->raw, 0);
	CHECK(w.len == p->raw.len && !w.overflow);
}

static void fuzz_connect(const uint8_t *frame, const struct mqtt_frame *f)
{
	struct mqtt_connect c;
	if (mqtt_connect_decode(f, &c) != MQTT_OK)
		return;
	walk_props(&c.props);
	walk_props(&c.will_props);
	struct mqtt_connect_out o = {
		.version = c.version, .clean_start = c.clean_start, .keepalive = c.keepalive,
		.props = c.props.raw, .client_id = c.client_id, .will = c.will, .will_qos = c.will_qos,
		.will_retain = c.will_retain, .will_props = c.will_props.raw, .will_topic = c.will_topic,
		.will_payload = c.will_payload, .has_username = c.has_username, .has_password = c.has_password,
		.username = c.username, .password = c.password,
	};
	size_t n = mqtt_connect_encode(&o, out, sizeof out);
	if (c.bridge || c.version == MQTT_V31) /* bit 7, or 3.1 absent credentials dropped */
		CHECK(n <= f->total);
	else
		same_bytes(frame, f, n);
}

static void fuzz_publish(const uint8_t *frame, const struct mqtt_frame *f, uint8_t v)
{
	struct mqtt_publish p;
	if (mqtt_publish_decode(f, v, &p) != MQTT_OK)
		return;
	walk_props(&p.props);
	struct mqtt_publish_out o = {p.qos, p.dup, p.retain, p.packet_id, p.topic, p.props.raw, p.payload};
	CHECK(mqtt_publish_size(&o, v) == f->total);
	same_bytes(frame, f, mqtt_publish_encode(&o, v, out, sizeof out));
}

static void fuzz_ack(const struct mqtt_frame *f, uint8_t v)
{
	struct mqtt_ack a, b;
	if (mqtt_ack_decode(f, v, &a) != MQTT_OK)
		return;
	walk_props(&a.props);
	size_t n = mqtt_ack_encode(a.type, a.packet_id, a.rc, a.props.raw, v, out, sizeof out);
	struct mqtt_frame g;
	CHECK(n <= f->total);
	CHECK(mqtt_frame_parse(out, n, 0, &g) == MQTT_OK);
	CHECK(mqtt_ack_decode(&g, v, &b) == MQTT_OK);
	CHECK(a.type == b.type && a.packet_id == b.packet_id && a.rc == b.rc && str_eq(a.props.raw, b.props.raw));
}

static void fuzz_subscribe(const uint8_t *frame, const struct mqtt_frame *f, uint8_t v)
{
	struct mqtt_subscribe s;
	if (mqtt_subscribe_decode(f, v, &s) != MQTT_OK || s.count > (1u << 14))
		return;
	walk_props(&s.props);
	static struct mqtt_str filters[1 << 14];
	static uint8_t opts[1 << 14];
	size_t off = 0, n = 0;
	while (mqtt_subscribe_next(&s, &off, &filters[n], &opts[n])) {
		(void)mqtt_topic_filter_valid(filters[n], true);
		n++;
	}
	CHECK(off == s.entries.len && n == s.count);
	same_bytes(frame, f, mqtt_subscribe_encode(s.packet_id, s.props.raw, filters, opts, n, v, out, sizeof out));
}

static void fuzz_unsubscribe(const uint8_t *frame, const struct mqtt_frame *f, uint8_t v)
{
	struct mqtt_unsubscribe u;
	if (mqtt_unsubscribe_decode(f, v, &u) != MQTT_OK || u.count > (1u << 15))
		return;
	walk_props(&u.props);
	static struct mqtt_str filters[1 << 15];
	size_t off = 0, n = 0;
	while (mqtt_unsubscribe_next(&u, &off, &filters[n]))
		n++;
	CHECK(off == u.entries.len && n == u.count);
	same_bytes(frame, f, mqtt_unsubscribe_encode(u.packet_id, u.props.raw, filters, n, v, out, sizeof out));
}

static void fuzz_acks_out(const uint8_t *frame, const struct mqtt_frame *f, uint8_t v)
{
	struct mqtt_connack ca;
	if (mqtt_connack_decode(f, v, &ca) == MQTT_OK) {
		walk_props(&ca.props);
		same_bytes(frame, f, mqtt_connack_encode(ca.session_present, ca.rc, ca.props.raw, v, out, sizeof out));
	}
	struct mqtt_suback sa;
	if (mqtt_suback_decode(f, v, &sa) == MQTT_OK) {
		walk_props(&sa.props);
		same_bytes(frame, f,
			   mqtt_suback_encode(f->type, sa.packet_id, sa.props.raw, sa.rcs.p, sa.rcs.len, v, out, sizeof out));
	}
}

static void fuzz_control(const struct mqtt_frame *f, uint8_t v)
{
	struct mqtt_disconnect d, e;
	struct mqtt_frame g;
	size_t n;
	if (mqtt_disconnect_decode(f, v, &d) == MQTT_OK) {
		walk_props(&d.props);
		n = mqtt_disconnect_encode(d.rc, d.props.raw, v, out, sizeof out);
		CHECK(n <= f->total && mqtt_frame_parse(out, n, 0, &g) == MQTT_OK);
		CHECK(mqtt_disconnect_decode(&g, v, &e) == MQTT_OK && e.rc == d.rc && str_eq(e.props.raw, d.props.raw));
	}
	if (mqtt_auth_decode(f, &d) == MQTT_OK) {
		walk_props(&d.props);
		n = mqtt_auth_encode(d.rc, d.props.raw, out, sizeof out);
		CHECK(n <= f->total && mqtt_frame_parse(out, n, 0, &g) == MQTT_OK);
		CHECK(mqtt_auth_decode(&g, &e) == MQTT_OK && e.rc == d.rc && str_eq(e.props.raw, d.props.raw));
	}
	(void)mqtt_empty_decode(f);
}

/* Topic functions on the body split in two. */
static void fuzz_topics(const struct mqtt_frame *f)
{
	struct mqtt_str a = {f->body, f->len / 2}, b = {f->body + f->len / 2, f->len - f->len / 2};
	bool fv = mqtt_topic_filter_valid(a, false), tv = mqtt_topic_name_valid(b);
	if (fv && tv) {
		bool m = mqtt_topic_matches(a, b);
		if (str_eq(a, b))
			CHECK(m); /* a valid name is a filter matching itself */
	}
	struct mqtt_str g, s;
	if (mqtt_topic_filter_valid(a, true) && mqtt_share_split(a, &g, &s))
		CHECK(g.len > 0 && mqtt_topic_filter_valid(s, false));
	if (tv)
		CHECK(mqtt_utf8_valid(b.p, b.len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t v = (uint8_t)(MQTT_V31 + data[0] % 3);
	uint32_t max = (data[0] & 0x80) ? 256 : 0;
	data++;
	size--;
	while (size) {
		struct mqtt_frame f;
		int rc = mqtt_frame_parse(data, size, max, &f);
		if (rc != MQTT_OK) {
			CHECK(rc == MQTT_INCOMPLETE || rc == MQTT_RC_MALFORMED || rc == MQTT_RC_PACKET_TOO_LARGE);
			break;
		}
		CHECK(f.total <= size && f.body + f.len == data + f.total);
		/* Every decoder, whatever the type: none may crash or over-read. */
		fuzz_connect(data, &f);
		fuzz_publish(data, &f, v);
		fuzz_ack(&f, v);
		fuzz_subscribe(data, &f, v);
		fuzz_unsubscribe(data, &f, v);
		fuzz_acks_out(data, &f, v);
		fuzz_control(&f, v);
		fuzz_topics(&f);
		(void)mqtt_type_name(f.type);
		data += f.total;
		size -= f.total;
	}
	return 0;
}

#ifdef FUZZ_STANDALONE
int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		FILE *fp = fopen(argv[i], "rb");
		if (!fp) {
			perror(argv[i]);
			return 1;
		}
		static uint8_t buf[1 << 20];
		size_t n = fread(buf, 1, sizeof buf, fp);
		fclose(fp);
		uint8_t *copy = malloc(n ? n : 1); /* exact size, for ASan */
		if (!copy)
			return 1;
		memcpy(copy, buf, n);
		LLVMFuzzerTestOneInput(copy, n);
		free(copy);
	}
	return 0;
}
#endif
