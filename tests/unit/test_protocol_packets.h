/*
 * tests/unit/test_protocol_packets.h — the packet half of test_protocol.c,
 * included by it once (split only to keep files short; not a real header):
 * every packet type in every version, malformed packets, systematic
 * truncation and extension, cross-decoding and encoder limits.
 * Uses the helpers defined in test_protocol.c before the #include.
 */
/* ---- CONNECT / CONNACK --------------------------------------------------- */

static struct mqtt_connect_out connect_full(uint8_t version)
{
	return (struct mqtt_connect_out){
		.version = version, .clean_start = true, .keepalive = 60,
		.props = version == MQTT_V5 ? S("\x11\x00\x00\x00\x3c\x21\x00\x0a") : NOSTR,
		.client_id = S("client-1"), .will = true, .will_qos = 2, .will_retain = true,
		.will_props = version == MQTT_V5 ? S("\x18\x00\x00\x00\x05") : NOSTR,
		.will_topic = S("will/t"), .will_payload = S("bye\x00\xff"),
		.has_username = true, .has_password = true, .username = S("user"), .password = S("p\x00ss"),
	};
}

/* Round trip in all three versions; v311 MQTT-3.1.3-1, v5 MQTT-3.1.3-1 field order. */
START_TEST(connect_roundtrip)
{
	static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
	for (size_t i = 0; i < ARRAY_LEN(versions); i++) {
		struct mqtt_connect_out o = connect_full(versions[i]);
		struct pkt p;
		ENCODE(&p, mqtt_connect_encode(&o, out, cap));
		struct mqtt_frame f = frame_ok(&p);
		struct mqtt_connect c;
		ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_OK);
		ck_assert_uint_eq(c.version, versions[i]);
		ck_assert(c.clean_start && c.will && c.will_retain && c.has_username && c.has_password && !c.bridge);
		ck_assert_uint_eq(c.will_qos, 2);
		ck_assert_uint_eq(c.keepalive, 60);
		ck_assert(str_eq(c.client_id, o.client_id) && str_eq(c.will_topic, o.will_topic));
		ck_assert(str_eq(c.will_payload, o.will_payload) && str_eq(c.username, o.username));
		ck_assert(str_eq(c.password, o.password));
		if (versions[i] == MQTT_V5) {
			ck_assert_uint_eq(c.props.session_expiry, 60);
			ck_assert_uint_eq(c.props.receive_maximum, 10);
			ck_assert_uint_eq(c.will_props.will_delay, 5);
		} else {
			ck_assert_uint_eq(c.props.present | c.will_props.present, 0);
		}
		/* Minimal: no will, no credentials, empty client id. */
		struct mqtt_connect_out m = {.version = versions[i]};
		ENCODE(&p, mqtt_connect_encode(&m, out, cap));
		f = frame_ok(&p);
		ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_OK);
		ck_assert(!c.clean_start && !c.will && !c.has_username && !c.has_password && c.client_id.len == 0);
	}
	/* The exact v311 bytes. */
	struct mqtt_connect_out o = {.version = MQTT_V311, .clean_start = true, .keepalive = 60, .client_id = S("a")};
	struct pkt p, want = mk(0x10, "0004 4d515454 04 02 003c 0001 61");
	ENCODE(&p, mqtt_connect_encode(&o, out, cap));
	ck_assert_uint_eq(p.n, want.n);
	ck_assert_mem_eq(p.b, want.b, p.n);
}
END_TEST

#define V311HDR "0004 4d515454 04 "
#define V5HDR "0004 4d515454 05 "
#define V31HDR "0006 4d5149736470 03 "

/* Malformed and refused CONNECTs; the error code and version. */
START_TEST(connect_errors)
{
	static const struct {
		const char *body;
		int rc;
		uint8_t version; /* expected c.version */
		const char *why;
	} t[] = {
		{V311HDR "02 003c 0001 61", MQTT_OK, 4, "base"},
		{V311HDR "03 003c 0001 61", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.2-3 reserved flag"},
		{V5HDR "03 003c 00 0001 61", MQTT_RC_MALFORMED, 5, "v5 MQTT-3.1.2-3 reserved flag"},
		{V31HDR "03 003c 0001 61", MQTT_OK, 3, "compat: 3.1 reserved flag ignored, as mosquitto"},
		{V31HDR "0a 003c 0001 61", MQTT_OK, 3, "compat: 3.1 will QoS without will flag ignored"},
		{V31HDR "1a 003c 0001 61", MQTT_RC_MALFORMED, 3, "3.1 will QoS 3 without will flag"},
		{V311HDR "0a 003c 0001 61", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.2-13 will QoS without will flag"},
		{V311HDR "0a 003c 0001 61", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.2-13 will QoS, no will"},
		{V311HDR "12 003c 0001 61", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.2-13 will QoS 2, no will"},
		{V311HDR "22 003c 0001 61", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.2-15 will retain, no will"},
		{V5HDR "22 003c 00 0001 61", MQTT_RC_MALFORMED, 5, "v5 MQTT-3.1.2-13 will retain, no will"},
		{V311HDR "1e 003c 0001 61 0001 74 0000", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.2-14 will QoS 3"},
		{V5HDR "1e 003c 00 0001 61 00 0001 74 0000", MQTT_RC_MALFORMED, 5, "v5 MQTT-3.1.2-12 will QoS 3"},
		{V311HDR "42 003c 0001 61 0001 70", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.2-22 password only"},
		{V31HDR "42 003c 0001 61 0001 70", MQTT_RC_MALFORMED, 3, "3.1 password only"},
		{V5HDR "42 003c 00 0001 61 0001 70", MQTT_OK, 5, "v5 allows a password alone"},
		{"0004 4d515458 04 02 003c 0001 61", MQTT_RC_UNSUPPORTED_VERSION, 0, "v311 MQTT-3.1.2-1 name"},
		{"0004 4d515454 06 02 003c 0001 61", MQTT_RC_UNSUPPORTED_VERSION, 0, "v311 MQTT-3.1.2-2 level 6"},
		{"0004 4d515454 03 02 003c 0001 61", MQTT_RC_UNSUPPORTED_VERSION, 0, "MQTT level 3"},
		{"0004 4d515458 05 02 003c 00 0001 61", MQTT_RC_UNSUPPORTED_VERSION, 0, "v5 MQTT-3.1.2-1 name"},
		{"0004 4d515454 07 02 003c 00 0001 61", MQTT_RC_UNSUPPORTED_VERSION, 0, "v5 MQTT-3.1.2-2 level 7"},
		{"0004 4d515454 00 02 003c 0001 61", MQTT_RC_UNSUPPORTED_VERSION, 0, "level 0"},
		{"0006 4d5149736470 04 02 003c 0001 61", MQTT_RC_UNSUPPORTED_VERSION, 0, "MQIsdp level 4"},
		{"0004 6d717474 04 02 003c 0001 61", MQTT_RC_UNSUPPORTED_VERSION, 0, "name is case sensitive"},
		{V311HDR "02 003c 0001 61 00", MQTT_RC_MALFORMED, 4, "trailing byte"},
		{V311HDR "02 003c 0002 61", MQTT_RC_MALFORMED, 4, "client id cut"},
		{V311HDR "02 003c 0001 ff", MQTT_RC_MALFORMED, 4, "v311 MQTT-1.5.3-1 client id UTF-8"},
		{V311HDR "02 003c 0001 00", MQTT_RC_MALFORMED, 4, "v311 MQTT-1.5.3-2 client id U+0000"},
		{V311HDR "06 003c 0001 61 0002 c080 0000", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.3-10 will topic UTF-8"},
		{V311HDR "06 003c 0001 61 0003 612f23 0000", MQTT_RC_TOPIC_NAME_INVALID, 4, "will topic wildcard"},
		{V311HDR "06 003c 0001 61 0000 0000", MQTT_RC_TOPIC_NAME_INVALID, 4, "will topic empty"},
		{V311HDR "06 003c 0001 61 0001 74", MQTT_RC_MALFORMED, 4, "will payload missing"},
		{V311HDR "82 003c 0001 61 0002 ff41", MQTT_RC_MALFORMED, 4, "v311 MQTT-3.1.3-11 user name UTF-8"},
		{V311HDR "82 003c 0001 61", MQTT_RC_MALFORMED, 4, "user name missing"},
		{V311HDR "c2 003c 0001 61 0001 75", MQTT_RC_MALFORMED, 4, "password missing"},
		{V5HDR "02 003c 03 210000 0001 61", MQTT_RC_PROTOCOL_ERROR, 5, "receive maximum 0"},
		{V5HDR "02 003c 03 230001 0001 61", MQTT_RC_MALFORMED, 5, "topic alias in CONNECT"},
		{V5HDR "02 003c 03 210000 0001 61 00", MQTT_RC_MALFORMED, 5, "MALFORMED wins"},
		{V5HDR "06 003c 00 0001 61 03 230001 0001 74 0000", MQTT_RC_MALFORMED, 5, "topic alias in will"},
		{V5HDR "06 003c 00 0001 61 05 1800000005 0001 74 0000", MQTT_OK, 5, "will delay"},
		{V5HDR "02 003c 05 1800000005 0001 61", MQTT_RC_MALFORMED, 5, "will delay in CONNECT"},
		{V5HDR "02 003c 05 1800000005", MQTT_RC_MALFORMED, 5, "client id missing"},
		{V5HDR "02 003c", MQTT_RC_MALFORMED, 5, "properties missing"},
		{V5HDR "02 003c 00 0001 61 00", MQTT_RC_MALFORMED, 5, "v5 trailing byte"},
		{V311HDR "02 00", MQTT_RC_MALFORMED, 4, "keepalive cut"},
		{V311HDR, MQTT_RC_MALFORMED, 4, "flags missing"},
		{"0004 4d5154", MQTT_RC_MALFORMED, 0, "name cut"},
		{"", MQTT_RC_MALFORMED, 0, "empty"},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct pkt p = mk(0x10, t[i].body);
		uint8_t *c = dup_exact(p.b, p.n);
		struct mqtt_frame f;
		ck_assert_int_eq(mqtt_frame_parse(c, p.n, 0, &f), MQTT_OK);
		struct mqtt_connect cn;
		int rc = mqtt_connect_decode(&f, &cn);
		ck_assert_msg(rc == t[i].rc, "%s: rc 0x%x", t[i].why, rc);
		ck_assert_msg(cn.version == t[i].version, "%s: version %d", t[i].why, cn.version);
		free(c);
	}
}
END_TEST

START_TEST(connect_compat)
{
	/* compat: mosquitto bridges set bit 7 of the level. */
	struct pkt p = mk(0x10, "0004 4d515454 84 02 003c 0001 61");
	struct mqtt_frame f = frame_ok(&p);
	struct mqtt_connect c;
	ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_OK);
	ck_assert(c.bridge);
	ck_assert_uint_eq(c.version, MQTT_V311);
	/* compat: MQTT 3.1 user name / password flags with the fields left out. */
	p = mk(0x10, V31HDR "c2 003c 0001 61");
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_OK);
	ck_assert(!c.has_username && !c.has_password);
	p = mk(0x10, V31HDR "c2 003c 0001 61 0001 75");
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_OK);
	ck_assert(c.has_username && !c.has_password && str_eq(c.username, S("u")));
	/* 3.1.1 gives no such leniency. */
	p = mk(0x10, V311HDR "c2 003c 0001 61 0001 75");
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_connect_decode(&f, &c), MQTT_RC_MALFORMED);
}
END_TEST

START_TEST(connack_roundtrip)
{
	struct pkt p;
	struct mqtt_frame f;
	struct mqtt_connack c;
	ENCODE(&p, mqtt_connack_encode(true, 0, S("\x21\x00\x05"), MQTT_V311, out, cap));
	struct pkt want = mk(0x20, "01 00");
	ck_assert_uint_eq(p.n, want.n);
	ck_assert_mem_eq(p.b, want.b, p.n);
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_connack_decode(&f, MQTT_V311, &c), MQTT_OK);
	ck_assert(c.session_present && c.rc == 0);
	ENCODE(&p, mqtt_connack_encode(false, 5, NOSTR, MQTT_V31, out, cap));
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_connack_decode(&f, MQTT_V31, &c), MQTT_OK);
	ck_assert(!c.session_present && c.rc == 5);
	ENCODE(&p, mqtt_connack_encode(false, 0x87, S("\x1f\x00\x02no\x24\x01"), MQTT_V5, out, cap));
	want = mk(0x20, "00 87 07 1f00026e6f 2401");
	ck_assert_mem_eq(p.b, want.b, want.n);
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_connack_decode(&f, MQTT_V5, &c), MQTT_OK);
	ck_assert(str_eq(c.props.reason_string, S("no")) && c.props.maximum_qos == 1 && c.rc == 0x87);
	static const struct {
		const char *body;
		uint8_t version;
		int rc;
	} bad[] = {
		{"02 00", MQTT_V311, MQTT_RC_MALFORMED},        /* v5 MQTT-3.2.2-1 reserved bits */
		{"01 05", MQTT_V311, MQTT_RC_PROTOCOL_ERROR},   /* v311 MQTT-3.2.2-4 */
		{"01 80 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR},  /* v5 MQTT-3.2.2-6 */
		{"00 00 00", MQTT_V311, MQTT_RC_MALFORMED},
		{"00", MQTT_V311, MQTT_RC_MALFORMED},
		{"00 00", MQTT_V5, MQTT_RC_MALFORMED},          /* v5 MQTT-2.2.2-1 */
		{"00 00 02 1700", MQTT_V5, MQTT_RC_MALFORMED},
		{"00 00 00 00", MQTT_V5, MQTT_RC_MALFORMED},
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		p = mk(0x20, bad[i].body);
		ck_assert_msg(decode_pkt(&p, bad[i].version) == bad[i].rc, "connack %s", bad[i].body);
	}
}
END_TEST

/* ---- PUBLISH and acks ---------------------------------------------------- */

START_TEST(publish_roundtrip)
{
	static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
	for (size_t i = 0; i < ARRAY_LEN(versions); i++) {
		for (uint8_t qos = 0; qos <= 2; qos++) {
			struct mqtt_publish_out o = {
				.qos = qos, .dup = qos > 0, .retain = true, .packet_id = qos ? 0x1234 : 0,
				.topic = S("a/b"), .props = S("\x23\x00\x02\x26\x00\x01k\x00\x01v"),
				.payload = S("hello\x00"),
			};
			struct pkt p;
			ENCODE(&p, mqtt_publish_encode(&o, versions[i], out, cap));
			ck_assert_uint_eq(mqtt_publish_size(&o, versions[i]), p.n);
			ck_assert_mem_eq(p.b + p.n - o.payload.len, o.payload.p, o.payload.len); /* payload last */
			ck_assert_uint_eq(p.b[0], 0x30 | (qos ? 0x08 : 0) | qos << 1 | 1);
			struct mqtt_frame f = frame_ok(&p);
			struct mqtt_publish d;
			ck_assert_int_eq(mqtt_publish_decode(&f, versions[i], &d), MQTT_OK);
			ck_assert(d.qos == qos && d.retain && d.dup == (qos > 0));
			ck_assert_uint_eq(d.packet_id, o.packet_id);
			ck_assert(str_eq(d.topic, o.topic) && str_eq(d.payload, o.payload));
			if (versions[i] == MQTT_V5)
				ck_assert(d.props.topic_alias == 2 && d.props.n_user == 1 && str_eq(d.props.raw, o.props));
			else
				ck_assert_uint_eq(d.props.present, 0);
		}
	}
	/* v5 empty topic with an alias; empty payload. */
	struct mqtt_publish_out o = {.topic = NOSTR, .props = S("\x23\x00\x01")};
	struct pkt p;
	ENCODE(&p, mqtt_publish_encode(&o, MQTT_V5, out, cap));
	struct pkt want = mk(0x30, "0000 03 230001");
	ck_assert_mem_eq(p.b, want.b, want.n);
	ck_assert_int_eq(decode_pkt(&p, MQTT_V5), MQTT_OK);
}
END_TEST

START_TEST(publish_errors)
{
	static const struct {
		uint8_t b0;
		const char *body;
		uint8_t version;
		int rc;
		const char *why;
	} t[] = {
		{0x36, "0001 61 0001", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.3.1-4 QoS 3"},
		{0x36, "0001 61 0001 00", MQTT_V5, MQTT_RC_MALFORMED, "v5 MQTT-3.3.1-4 QoS 3"},
		{0x30, "0003 612f2b", MQTT_V311, MQTT_RC_TOPIC_NAME_INVALID, "v311 MQTT-3.3.2-2 '+'"},
		{0x30, "0003 612f23 00", MQTT_V5, MQTT_RC_TOPIC_NAME_INVALID, "v5 MQTT-3.3.2-2 '#'"},
		{0x30, "0002 c0af", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-1.5.3-1 topic UTF-8"},
		{0x30, "0003 c0af2b 00", MQTT_V5, MQTT_RC_MALFORMED, "v5 MQTT-1.5.4-1 UTF-8 before wildcards"},
		{0x30, "0002 6100", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-4.7.3-2 U+0000"},
		{0x30, "0003 61002b 00", MQTT_V5, MQTT_RC_MALFORMED, "v5 MQTT-1.5.4-2 U+0000 and a wildcard"},
		{0x30, "0000 6869", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 MQTT-4.7.3-1 empty topic"},
		{0x30, "0000 00 6869", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 empty topic, no alias"},
		{0x32, "0001 61 0000", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 MQTT-2.3.1-1 packet id 0"},
		{0x34, "0001 61 0000 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 MQTT-2.2.1-3 packet id 0"},
		{0x32, "0001 61 00", MQTT_V311, MQTT_RC_MALFORMED, "packet id cut"},
		{0x30, "0005 61", MQTT_V311, MQTT_RC_MALFORMED, "topic cut"},
		{0x30, "00", MQTT_V311, MQTT_RC_MALFORMED, "topic length cut"},
		{0x30, "0001 61", MQTT_V5, MQTT_RC_MALFORMED, "v5 property length missing"},
		{0x30, "0001 61 05 2300", MQTT_V5, MQTT_RC_MALFORMED, "properties past the end"},
		{0x30, "0001 61 03 230000", MQTT_V5, MQTT_RC_MALFORMED, "v5 MQTT-3.3.2-8 alias 0"},
		{0x30, "0001 61 05 1100000001", MQTT_V5, MQTT_RC_MALFORMED, "session expiry in PUBLISH"},
		{0x30, "0001 61 02 0102", MQTT_V5, MQTT_OK, "payload format 2 accepted"},
		{0x30, "0001 61 02 0101 ff", MQTT_V5, MQTT_OK, "payload not checked"},
		{0x38, "0001 61", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.3.1-2 DUP on QoS 0"},
		{0x38, "0001 61 00", MQTT_V5, MQTT_RC_MALFORMED, "v5 MQTT-3.3.1-2 DUP on QoS 0"},
		{0x38, "0001 61", MQTT_V31, MQTT_OK, "3.1: DUP on QoS 0 accepted"},
		{0x3a, "0001 61 0001", MQTT_V311, MQTT_OK, "DUP on QoS 1"},
		{0x30, "0003 efbbbf", MQTT_V311, MQTT_OK, "v311 MQTT-1.5.3-3 BOM"},
		{0x30, "0001 61", MQTT_V311, MQTT_OK, "empty payload"},
		{0x30, "0001 61 02 0101", MQTT_V311, MQTT_OK, "v3: bytes after the topic are payload"},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct pkt p = mk(t[i].b0, t[i].body);
		int rc = decode_pkt(&p, t[i].version);
		ck_assert_msg(rc == t[i].rc, "%s: 0x%x", t[i].why, rc);
	}
}
END_TEST

START_TEST(ack_roundtrip)
{
	for (uint8_t type = MQTT_PUBACK; type <= MQTT_PUBCOMP; type++) {
		uint8_t b0 = (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 2 : 0));
		struct pkt p;
		struct mqtt_frame f;
		struct mqtt_ack a;
		/* v3: always 2 bytes of body, rc and props ignored. */
		ENCODE(&p, mqtt_ack_encode(type, 7, 0x92, S("\x1f\x00\x00"), MQTT_V311, out, cap));
		struct pkt want = mk(b0, "0007");
		ck_assert_uint_eq(p.n, want.n);
		ck_assert_mem_eq(p.b, want.b, p.n);
		f = frame_ok(&p);
		ck_assert_int_eq(mqtt_ack_decode(&f, MQTT_V311, &a), MQTT_OK);
		ck_assert(a.type == type && a.packet_id == 7 && a.rc == 0);
		/* v5 shortest forms (v5 3.4.2.1). */
		ENCODE(&p, mqtt_ack_encode(type, 7, 0, NOSTR, MQTT_V5, out, cap));
		ck_assert_uint_eq(p.n, 4);
		ck_assert_int_eq(decode_pkt(&p, MQTT_V5), MQTT_OK);
		uint8_t code = type <= MQTT_PUBREC ? 0x10 : 0x92;
		ENCODE(&p, mqtt_ack_encode(type, 7, code, NOSTR, MQTT_V5, out, cap));
		want = mk(b0, type <= MQTT_PUBREC ? "0007 10" : "0007 92");
		ck_assert_uint_eq(p.n, want.n);
		ck_assert_mem_eq(p.b, want.b, p.n);
		f = frame_ok(&p);
		ck_assert_int_eq(mqtt_ack_decode(&f, MQTT_V5, &a), MQTT_OK);
		ck_assert_uint_eq(a.rc, code);
		ENCODE(&p, mqtt_ack_encode(type, 7, 0, S("\x1f\x00\x01x"), MQTT_V5, out, cap));
		want = mk(b0, "0007 00 04 1f000178");
		ck_assert_mem_eq(p.b, want.b, want.n);
		f = frame_ok(&p);
		ck_assert_int_eq(mqtt_ack_decode(&f, MQTT_V5, &a), MQTT_OK);
		ck_assert(str_eq(a.props.reason_string, S("x")));
		/* Errors. */
		static const struct {
			const char *body;
			uint8_t version;
			int rc;
		} bad[] = {
			{"0000", MQTT_V311, MQTT_RC_PROTOCOL_ERROR}, {"0000", MQTT_V5, MQTT_RC_PROTOCOL_ERROR},
			{"00", MQTT_V311, MQTT_RC_MALFORMED},        {"", MQTT_V5, MQTT_RC_MALFORMED},
			{"0001 00", MQTT_V311, MQTT_RC_MALFORMED},   {"0001 00 00 00", MQTT_V5, MQTT_RC_MALFORMED},
			{"0001 00 05 1f", MQTT_V5, MQTT_RC_MALFORMED}, {"0001 00 03 230001", MQTT_V5, MQTT_RC_MALFORMED},
			{"0001 01", MQTT_V5, MQTT_RC_PROTOCOL_ERROR}, /* v5 MQTT-3.4.2-1, v5 MQTT-3.6.2-1 */
		};
		for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
			p = mk(b0, bad[i].body);
			ck_assert_msg(decode_pkt(&p, bad[i].version) == bad[i].rc, "%s %s", mqtt_type_name(type),
				      bad[i].body);
		}
		/* Reason codes per type. */
		p = mk(b0, "0001 10");
		ck_assert_int_eq(decode_pkt(&p, MQTT_V5), type <= MQTT_PUBREC ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR);
		p = mk(b0, "0001 92");
		ck_assert_int_eq(decode_pkt(&p, MQTT_V5), type >= MQTT_PUBREL ? MQTT_OK : MQTT_RC_PROTOCOL_ERROR);
	}
	/* PUBREL with flags 0 never reaches the decoder: v311 MQTT-3.6.1-1, v5 MQTT-3.6.1-1. */
	struct pkt p = mk(0x60, "0001");
	ck_assert_int_eq(decode_pkt(&p, MQTT_V311), MQTT_RC_MALFORMED);
	p = mk(0x42, "0001");
	ck_assert_int_eq(decode_pkt(&p, MQTT_V311), MQTT_RC_MALFORMED);
}
END_TEST

/* ---- SUBSCRIBE / UNSUBSCRIBE / SUBACK / UNSUBACK ------------------------- */

START_TEST(subscribe_roundtrip)
{
	const struct mqtt_str filters[] = {S("a/+"), S("#"), S("$share/g/x")};
	const uint8_t opts_v5[] = {0x01, 0x2e, 0x12}, opts_v3[] = {0, 1, 2};
	static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
	for (size_t v = 0; v < ARRAY_LEN(versions); v++) {
		bool v5 = versions[v] == MQTT_V5;
		const uint8_t *opts = v5 ? opts_v5 : opts_v3;
		struct pkt p;
		ENCODE(&p, mqtt_subscribe_encode(9, S("\x0b\x07"), filters, opts, 3, versions[v], out, cap));
		ck_assert_uint_eq(p.b[0], 0x82);
		struct mqtt_frame f = frame_ok(&p);
		struct mqtt_subscribe s;
		ck_assert_int_eq(mqtt_subscribe_decode(&f, versions[v], &s), MQTT_OK);
		ck_assert_uint_eq(s.packet_id, 9);
		ck_assert_uint_eq(s.count, 3);
		ck_assert_uint_eq(s.props.subscription_id, v5 ? 7 : 0);
		size_t off = 0, i = 0;
		struct mqtt_str flt;
		uint8_t o;
		while (mqtt_subscribe_next(&s, &off, &flt, &o)) {
			ck_assert(str_eq(flt, filters[i]));
			ck_assert_uint_eq(o, opts[i]);
			i++;
		}
		ck_assert_uint_eq(i, 3);

		ENCODE(&p, mqtt_unsubscribe_encode(10, NOSTR, filters, 3, versions[v], out, cap));
		ck_assert_uint_eq(p.b[0], 0xa2);
		f = frame_ok(&p);
		struct mqtt_unsubscribe u;
		ck_assert_int_eq(mqtt_unsubscribe_decode(&f, versions[v], &u), MQTT_OK);
		ck_assert(u.packet_id == 10 && u.count == 3);
		off = i = 0;
		while (mqtt_unsubscribe_next(&u, &off, &flt))
			ck_assert(str_eq(flt, filters[i++]));
		ck_assert_uint_eq(i, 3);

		const uint8_t rcs[] = {0x00, 0x02, 0x80};
		ENCODE(&p, mqtt_suback_encode(MQTT_SUBACK, 9, S("\x1f\x00\x01r"), rcs, 3, versions[v], out, cap));
		f = frame_ok(&p);
		struct mqtt_suback sa;
		ck_assert_int_eq(mqtt_suback_decode(&f, versions[v], &sa), MQTT_OK);
		ck_assert(sa.packet_id == 9 && str_eq(sa.rcs, S("\x00\x02\x80")));
		ck_assert_uint_eq(p.n, v5 ? 12 : 7);

		const uint8_t urcs[] = {0x00, 0x11};
		ENCODE(&p, mqtt_suback_encode(MQTT_UNSUBACK, 10, NOSTR, urcs, 2, versions[v], out, cap));
		ck_assert_uint_eq(p.n, v5 ? 7 : 4); /* v3 UNSUBACK has no codes */
		f = frame_ok(&p);
		ck_assert_int_eq(mqtt_suback_decode(&f, versions[v], &sa), MQTT_OK);
		ck_assert(sa.packet_id == 10 && sa.rcs.len == (v5 ? 2 : 0));
	}
}
END_TEST

START_TEST(subscribe_errors)
{
	static const struct {
		uint8_t b0;
		const char *body;
		uint8_t version;
		int rc;
		const char *why;
	} t[] = {
		{0x82, "0001", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 MQTT-3.8.3-3 no entries"},
		{0x82, "0001 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 MQTT-3.8.3-2 no entries"},
		{0x82, "0000 0001 61 00", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 MQTT-2.3.1-1 id 0"},
		{0x82, "0001 0001 61 03", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.8.3-4 QoS 3"},
		{0x82, "0001 0001 61 04", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.8.3-4 reserved bits"},
		{0x82, "0001 0001 61 80", MQTT_V31, MQTT_RC_MALFORMED, "3.1 reserved bits"},
		{0x82, "0001 00 0001 61 03", MQTT_V5, MQTT_RC_MALFORMED, "v5 3.8.3.1 QoS 3"},
		{0x82, "0001 00 0001 61 40", MQTT_V5, MQTT_RC_MALFORMED, "v5 MQTT-3.8.3-5 bit 6"},
		{0x82, "0001 00 0001 61 80", MQTT_V5, MQTT_RC_MALFORMED, "v5 MQTT-3.8.3-5 bit 7"},
		{0x82, "0001 00 0001 61 30", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 retain handling 3"},
		{0x82, "0001 00 0001 61 2e", MQTT_V5, MQTT_OK, "v5 all options"},
		{0x82, "0001 00 000a 2473686172652f672f61 04", MQTT_V5, MQTT_RC_PROTOCOL_ERROR,
		 "v5 MQTT-3.8.3-4 no local on shared"},
		{0x82, "0001 00 000a 2473686172652f672f61 00 0001 61 03", MQTT_V5, MQTT_RC_MALFORMED, "2nd entry"},
		{0x82, "0001 0002 c0af 00", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-1.5.3-1 filter UTF-8"},
		{0x82, "0001 0001 00 00", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-1.5.3-2 filter U+0000"},
		{0x82, "0001 0003 612f", MQTT_V311, MQTT_RC_MALFORMED, "entry cut"},
		{0x82, "0001 0001 61", MQTT_V311, MQTT_RC_MALFORMED, "options missing"},
		{0x82, "0001 0003 612b62 00", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-4.7.1-2 bad filter (as mosquitto)"},
		{0x82, "0001 00 0008 2473686172652f67 00", MQTT_V5, MQTT_OK, "bad share name is the broker's (SUBACK 0x8F)"},
		{0x82, "0001 0000 00", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-4.7.3-1 empty filter"},
		{0x82, "0001", MQTT_V31, MQTT_OK, "compat: 3.1 SUBSCRIBE without entries (mosquitto: empty SUBACK)"},
		{0xa2, "0001", MQTT_V31, MQTT_OK, "compat: 3.1 UNSUBSCRIBE without entries"},
		{0xa2, "0001 0003 612f23 0003 23 2f 61", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-4.7.1-2 bad UNSUBSCRIBE filter"},
		{0xa2, "0001 0000", MQTT_V5, MQTT_RC_MALFORMED, "v5 MQTT-4.7.3-1 empty UNSUBSCRIBE filter"},
		{0x82, "0001 04 0b010b02 0001 61 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "two sub ids"},
		{0x82, "0001 02 0b00 0001 61 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "sub id 0"},
		{0x82, "0001 03 1f0000 0001 61 00", MQTT_V5, MQTT_RC_MALFORMED, "reason string"},
		{0x82, "00", MQTT_V311, MQTT_RC_MALFORMED, "id cut"},
		{0xa2, "0001", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 MQTT-3.10.3-2 no entries"},
		{0xa2, "0001 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 MQTT-3.10.3-2 no entries"},
		{0xa2, "0000 0001 61", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 MQTT-2.3.1-1 id 0"},
		{0xa2, "0001 0001 ff", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.10.3-1 UTF-8"},
		{0xa2, "0001 0002 61", MQTT_V311, MQTT_RC_MALFORMED, "cut"},
		{0xa2, "0001 02 0b01 0001 61", MQTT_V5, MQTT_RC_MALFORMED, "sub id in UNSUBSCRIBE"},
		{0xa2, "0001 03 260000 0001 61", MQTT_V5, MQTT_RC_MALFORMED, "user property cut"},
		{0xa0, "0001 0001 61", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.10.1-1 flags"},
		{0x80, "0001 0001 61 00", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.8.1-1 flags"},
		{0x90, "0001", MQTT_V311, MQTT_RC_MALFORMED, "SUBACK without codes"},
		{0x90, "0001 03", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "SUBACK code 3"},
		{0x90, "0001 00 97", MQTT_V5, MQTT_OK, "v5 SUBACK quota exceeded"},
		{0x90, "0001 97", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "v311 SUBACK 0x97"},
		{0x90, "0000 00", MQTT_V311, MQTT_RC_PROTOCOL_ERROR, "SUBACK id 0"},
		{0xb0, "0001 00", MQTT_V311, MQTT_RC_MALFORMED, "v3 UNSUBACK with a code"},
		{0xb0, "0001 00", MQTT_V5, MQTT_RC_MALFORMED, "v5 UNSUBACK without codes"},
		{0xb0, "0001 00 02", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 UNSUBACK code 2"},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct pkt p = mk(t[i].b0, t[i].body);
		int rc = decode_pkt(&p, t[i].version);
		ck_assert_msg(rc == t[i].rc, "%s: 0x%x", t[i].why, rc);
	}
}
END_TEST

/* ---- DISCONNECT / AUTH / PING -------------------------------------------- */

START_TEST(control_packets)
{
	struct pkt p, want;
	struct mqtt_frame f;
	struct mqtt_disconnect d;
	ENCODE(&p, mqtt_disconnect_encode(0x8d, S("\x1f\x00\x00"), MQTT_V311, out, cap));
	want = mk(0xe0, "");
	ck_assert(p.n == 2 && memcmp(p.b, want.b, 2) == 0);
	ck_assert_int_eq(decode_pkt(&p, MQTT_V311), MQTT_OK);
	ENCODE(&p, mqtt_disconnect_encode(0, NOSTR, MQTT_V5, out, cap));
	ck_assert(p.n == 2 && memcmp(p.b, want.b, 2) == 0);
	ENCODE(&p, mqtt_disconnect_encode(0x8d, NOSTR, MQTT_V5, out, cap));
	want = mk(0xe0, "8d"); /* v5 3.14.2.2.1: no property length needed */
	ck_assert(p.n == want.n && memcmp(p.b, want.b, p.n) == 0);
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_disconnect_decode(&f, MQTT_V5, &d), MQTT_OK);
	ck_assert_uint_eq(d.rc, 0x8d);
	ENCODE(&p, mqtt_disconnect_encode(0, S("\x11\x00\x00\x00\x0a"), MQTT_V5, out, cap));
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_disconnect_decode(&f, MQTT_V5, &d), MQTT_OK);
	ck_assert(d.rc == 0 && d.props.session_expiry == 10);
	ENCODE(&p, mqtt_auth_encode(0, NOSTR, out, cap));
	ck_assert(p.n == 2 && p.b[0] == 0xf0 && p.b[1] == 0);
	ck_assert_int_eq(decode_pkt(&p, MQTT_V5), MQTT_OK);
	ENCODE(&p, mqtt_auth_encode(0x18, S("\x15\x00\x01x\x16\x00\x01y"), out, cap));
	f = frame_ok(&p);
	ck_assert_int_eq(mqtt_auth_decode(&f, &d), MQTT_OK);
	ck_assert(d.rc == 0x18 && str_eq(d.props.auth_method, S("x")) && str_eq(d.props.auth_data, S("y")));
	for (uint8_t type = MQTT_PINGREQ; type <= MQTT_PINGRESP; type++) {
		ENCODE(&p, mqtt_empty_encode(type, out, cap));
		ck_assert(p.n == 2 && p.b[0] == type << 4 && p.b[1] == 0);
		ck_assert_int_eq(decode_pkt(&p, MQTT_V311), MQTT_OK);
	}
	static const struct {
		uint8_t b0;
		const char *body;
		uint8_t version;
		int rc;
		const char *why;
	} t[] = {
		{0xe0, "00", MQTT_V311, MQTT_RC_MALFORMED, "v3 DISCONNECT has no body"},
		{0xe1, "", MQTT_V311, MQTT_RC_MALFORMED, "v311 MQTT-3.14.1-1 flags"},
		{0xe0, "04", MQTT_V5, MQTT_OK, "v5 rc only"},
		{0xe0, "05", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 MQTT-3.14.2-1 code"},
		{0xe0, "00 00 00", MQTT_V5, MQTT_RC_MALFORMED, "trailing"},
		{0xe0, "00 03 11", MQTT_V5, MQTT_RC_MALFORMED, "props cut"},
		{0xe0, "00 03 230001", MQTT_V5, MQTT_RC_MALFORMED, "alias in DISCONNECT"},
		{0xf0, "00", MQTT_V5, MQTT_RC_MALFORMED, "AUTH rc without property length"},
		{0xf0, "19 00", MQTT_V5, MQTT_OK, "AUTH re-authenticate"},
		{0xf0, "04 00", MQTT_V5, MQTT_RC_PROTOCOL_ERROR, "v5 MQTT-3.15.2-1 code"},
		{0xf0, "18 00 00", MQTT_V5, MQTT_RC_MALFORMED, "AUTH trailing"},
		{0xf0, "18 05 1100000001", MQTT_V5, MQTT_RC_MALFORMED, "session expiry in AUTH"},
		{0xf1, "", MQTT_V5, MQTT_RC_MALFORMED, "v5 MQTT-3.15.1-1 flags"},
		{0xc0, "00", MQTT_V311, MQTT_RC_MALFORMED, "PINGREQ with a body"},
		{0xd0, "00", MQTT_V311, MQTT_RC_MALFORMED, "PINGRESP with a body"},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		p = mk(t[i].b0, t[i].body);
		int rc = decode_pkt(&p, t[i].version);
		ck_assert_msg(rc == t[i].rc, "%s: 0x%x", t[i].why, rc);
	}
}
END_TEST

/* ---- systematic truncation and extension --------------------------------- */

struct sample {
	struct pkt p;
	uint8_t version;
	bool strict_cut;  /* every shorter body must be an error */
	bool strict_tail; /* one more body byte must be an error */
};

static size_t build_samples(struct sample *s)
{
	size_t n = 0;
	static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
	for (size_t v = 0; v < ARRAY_LEN(versions); v++) {
		uint8_t ver = versions[v];
		bool v5 = ver == MQTT_V5;
		struct mqtt_connect_out co = connect_full(ver);
		const struct mqtt_str flt[] = {S("a/b")}, two[] = {S("a/b"), S("c")};
		const uint8_t opt[] = {1, 2}, rcs[] = {1}, urcs[] = {0x11};
		struct mqtt_publish_out po = {.qos = 1, .packet_id = 3, .topic = S("t/x"), .props = S("\x01\x01"),
					      .payload = S("pay")};
		struct mqtt_str pr = v5 ? S("\x1f\x00\x01r") : NOSTR;
#define ADD(cut, tail, EXPR)                                                        \
	do {                                                                        \
		s[n].version = ver;                                                 \
		s[n].strict_cut = (cut);                                            \
		s[n].strict_tail = (tail);                                          \
		ENCODE(&s[n].p, EXPR);                                              \
		n++;                                                                \
	} while (0)
		ADD(ver != MQTT_V31, true, mqtt_connect_encode(&co, out, cap)); /* compat: 3.1 */
		co.has_password = co.has_username = co.will = co.will_retain = false;
		co.will_qos = 0;
		ADD(true, true, mqtt_connect_encode(&co, out, cap));
		ADD(true, true, mqtt_connack_encode(false, 0, pr, ver, out, cap));
		ADD(false, false, mqtt_publish_encode(&po, ver, out, cap));
		for (uint8_t t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++)
			ADD(!v5, true, mqtt_ack_encode(t, 5, t <= MQTT_PUBREC ? 0x10 : 0x92, pr, ver, out, cap));
		/* compat: MQTT 3.1 accepts a SUBSCRIBE / UNSUBSCRIBE cut to its packet id */
		ADD(ver != MQTT_V31, true, mqtt_subscribe_encode(4, v5 ? S("\x0b\x01") : NOSTR, flt, opt, 1, ver, out, cap));
		ADD(false, true, mqtt_subscribe_encode(4, NOSTR, two, opt, 2, ver, out, cap));
		ADD(ver != MQTT_V31, true, mqtt_unsubscribe_encode(4, NOSTR, flt, 1, ver, out, cap));
		ADD(false, !v5, mqtt_unsubscribe_encode(4, NOSTR, two, 2, ver, out, cap)); /* "00" + ... */
		ADD(true, false, mqtt_suback_encode(MQTT_SUBACK, 4, pr, rcs, 1, ver, out, cap));
		ADD(true, !v5, mqtt_suback_encode(MQTT_UNSUBACK, 4, pr, urcs, 1, ver, out, cap));
		ADD(!v5, true, mqtt_disconnect_encode(0x8b, pr, ver, out, cap));
		ADD(true, true, mqtt_empty_encode(MQTT_PINGREQ, out, cap));
		ADD(true, true, mqtt_empty_encode(MQTT_PINGRESP, out, cap));
		if (v5)
			ADD(false, true, mqtt_auth_encode(0x18, S("\x15\x00\x01m"), out, cap));
#undef ADD
	}
	return n;
}

/* Every byte-prefix of every packet is INCOMPLETE for the framer; every
 * shortened body is rejected or (where the spec allows the short form)
 * accepted, never read past its end; a byte too many is rejected where the
 * packet has a fixed end. */
START_TEST(truncation_systematic)
{
	static struct sample s[64];
	size_t n = build_samples(s);
	ck_assert_uint_gt(n, 50);
	for (size_t i = 0; i < n; i++) {
		const struct pkt *p = &s[i].p;
		ck_assert_msg(decode_pkt(p, s[i].version) == MQTT_OK, "sample %zu (%s v%d)", i,
			      mqtt_type_name(p->b[0] >> 4), s[i].version);
		struct mqtt_frame f = frame_ok(p);
		for (size_t k = 0; k < p->n; k++) {
			uint8_t *c = dup_exact(p->b, k);
			struct mqtt_frame g;
			ck_assert_int_eq(mqtt_frame_parse(c, k, 0, &g), MQTT_INCOMPLETE);
			free(c);
		}
		for (uint32_t k = 0; k < f.len; k++) {
			uint8_t *c = dup_exact(f.body, k);
			struct mqtt_frame g = f;
			g.body = c;
			g.len = k;
			int rc = decode_any(&g, s[i].version);
			if (s[i].strict_cut)
				ck_assert_msg(rc != MQTT_OK, "sample %zu (%s v%d) cut to %u", i, mqtt_type_name(f.type),
					      s[i].version, k);
			free(c);
		}
		uint8_t *c = malloc(f.len + 1);
		ck_assert_ptr_nonnull(c);
		memcpy(c, f.body, f.len);
		c[f.len] = 0;
		struct mqtt_frame g = f;
		g.body = c;
		g.len = f.len + 1;
		int rc = decode_any(&g, s[i].version);
		if (s[i].strict_tail)
			ck_assert_msg(rc != MQTT_OK, "sample %zu (%s v%d) + 1 byte", i, mqtt_type_name(f.type),
				      s[i].version);
		free(c);
	}
}
END_TEST

/* Every decoder on every frame type and version: no crash, no over-read. */
START_TEST(cross_decoders)
{
	static struct sample s[64];
	size_t n = build_samples(s);
	for (size_t i = 0; i < n; i++) {
		struct mqtt_frame f = frame_ok(&s[i].p);
		uint8_t *c = dup_exact(f.body, f.len);
		f.body = c;
		for (uint8_t ver = MQTT_V31; ver <= MQTT_V5; ver++) {
			union {
				struct mqtt_connect c;
				struct mqtt_connack ca;
				struct mqtt_publish p;
				struct mqtt_ack a;
				struct mqtt_subscribe s;
				struct mqtt_unsubscribe u;
				struct mqtt_suback sa;
				struct mqtt_disconnect d;
			} u;
			(void)mqtt_connect_decode(&f, &u.c);
			(void)mqtt_connack_decode(&f, ver, &u.ca);
			(void)mqtt_publish_decode(&f, ver, &u.p);
			(void)mqtt_ack_decode(&f, ver, &u.a);
			(void)mqtt_subscribe_decode(&f, ver, &u.s);
			(void)mqtt_unsubscribe_decode(&f, ver, &u.u);
			(void)mqtt_suback_decode(&f, ver, &u.sa);
			(void)mqtt_disconnect_decode(&f, ver, &u.d);
			(void)mqtt_auth_decode(&f, &u.d);
			(void)mqtt_empty_decode(&f);
		}
		free(c);
	}
}
END_TEST

/* Strings and lengths that cannot be represented: encoders return 0. */
START_TEST(encode_limits)
{
	uint8_t *big = calloc(1, 70000);
	ck_assert_ptr_nonnull(big);
	uint8_t buf[16];
	struct mqtt_publish_out po = {.topic = {big, 65536}};
	ck_assert_uint_eq(mqtt_publish_encode(&po, MQTT_V311, buf, sizeof buf), 0);
	ck_assert_uint_eq(mqtt_publish_size(&po, MQTT_V311), 0);
	po.topic = (struct mqtt_str){(const uint8_t *)"t", 1};
	po.payload = (struct mqtt_str){big, 268435455};
	ck_assert_uint_eq(mqtt_publish_size(&po, MQTT_V311), 0);
	po.payload.len = 268435455 - 3;
	ck_assert_uint_eq(mqtt_publish_size(&po, MQTT_V311), 268435455 + 5); /* largest packet */
	struct mqtt_connect_out co = {.version = MQTT_V311, .client_id = {big, 65536}};
	ck_assert_uint_eq(mqtt_connect_encode(&co, buf, sizeof buf), 0);
	const struct mqtt_str f[] = {{big, 65536}};
	const uint8_t o[] = {0};
	ck_assert_uint_eq(mqtt_subscribe_encode(1, NOSTR, f, o, 1, MQTT_V311, buf, sizeof buf), 0);
	free(big);
}
END_TEST

