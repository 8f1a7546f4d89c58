/*
 * tests/unit/test_mosqdb_old.h — hand-built mosquitto.db images: the older
 * formats mosquitto 2.0.11 still reads (v5 from mosquitto 1.6, v2-v4 from
 * 1.x), chunks mosquitto skips, and references that do not resolve. Built
 * from the layouts in mosqdb.c's header comment, field by field.
 */
#ifndef TEST_MOSQDB_OLD_H
#define TEST_MOSQDB_OLD_H

struct bld {
	uint8_t b[4096];
	size_t n;
};

static void p8(struct bld *x, unsigned v)
{
	ck_assert_uint_lt(x->n, sizeof x->b);
	x->b[x->n++] = (uint8_t)v;
}
static void p16(struct bld *x, unsigned v)
{
	p8(x, v >> 8);
	p8(x, v);
}
static void p32(struct bld *x, uint32_t v)
{
	p16(x, v >> 16);
	p16(x, v & 0xFFFF);
}
static void p64le(struct bld *x, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p8(x, (unsigned)(v >> (8 * i)) & 0xFF);
}
static void praw(struct bld *x, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p8(x, ((const uint8_t *)p)[i]);
}
static void pstr16(struct bld *x, const char *s)
{
	p16(x, (unsigned)strlen(s));
	praw(x, s, strlen(s));
}

static void header(struct bld *x, uint32_t version)
{
	static const uint8_t magic[15] = {0, 0xB5, 0, 'm', 'o', 's', 'q', 'u', 'i', 't', 't', 'o', ' ', 'd', 'b'};
	x->n = 0;
	praw(x, magic, sizeof magic);
	p32(x, 0); /* crc, unused */
	p32(x, version);
}

/* v5/v6 chunk: u32 type, u32 length, body. */
static void chunk56(struct bld *x, uint32_t type, const struct bld *body)
{
	p32(x, type);
	p32(x, (uint32_t)body->n);
	praw(x, body->b, body->n);
}

/* v2-v4 chunk: u16 type, u32 length (here deliberately not the body's size
 * for MSG_STORE, as some 1.x writers left it: mosquitto reads field by field). */
static void chunk234(struct bld *x, unsigned type, const struct bld *body, uint32_t declared)
{
	p16(x, type);
	p32(x, declared);
	praw(x, body->b, body->n);
}

static int parse_bld(const struct bld *x, struct coll *c, char *err, size_t errlen)
{
	coll_init(c);
	err[0] = 0;
	return mosqdb_parse(x->b, x->n, &coll_visitor, c, err, errlen);
}

/* mosquitto 1.6 (db version 5): no user name / listener port in CLIENT. */
START_TEST(version5)
{
	struct bld f, b;
	header(&f, 5);
	b.n = 0; /* CFG */
	p64le(&b, 9);
	p8(&b, 1);
	p8(&b, 8);
	praw(&b, "\0\0\0\0\0\0", 6);
	chunk56(&f, MOSQDB_CHUNK_CFG, &b);
	b.n = 0; /* MSG_STORE id 7 */
	p64le(&b, 7);
	p64le(&b, 2000000000);
	p32(&b, 2);   /* payload */
	p16(&b, 5);   /* source mid */
	p16(&b, 2);   /* source id */
	p16(&b, 0);   /* source user */
	p16(&b, 3);   /* topic */
	p16(&b, 1883);
	p8(&b, 1);
	p8(&b, 1);
	praw(&b, "c1t/5pl", 7);
	praw(&b, "\x07\x26\x00\x01k\x00\x01v", 8);
	chunk56(&f, MOSQDB_CHUNK_MSG_STORE, &b);
	b.n = 0; /* CLIENT v5 */
	p64le(&b, 1999999999);
	p32(&b, 77);
	p16(&b, 9);
	p16(&b, 2);
	praw(&b, "c5", 2);
	chunk56(&f, MOSQDB_CHUNK_CLIENT, &b);
	b.n = 0; /* SUB */
	p32(&b, 3);
	p16(&b, 2);
	p16(&b, 3);
	p8(&b, 1);
	p8(&b, MOSQDB_SUB_NO_LOCAL);
	p16(&b, 0);
	praw(&b, "c5t/#", 5);
	chunk56(&f, MOSQDB_CHUNK_SUB, &b);
	b.n = 0; /* CLIENT_MSG */
	p64le(&b, 7);
	p16(&b, 9);
	p16(&b, 2);
	p8(&b, 1);
	p8(&b, MOSQDB_MS_QUEUED);
	p8(&b, 0x10); /* retain, no dup */
	p8(&b, MOSQDB_DIR_OUT);
	praw(&b, "c5", 2);
	praw(&b, "\x02\x0b\x03", 3);
	chunk56(&f, MOSQDB_CHUNK_CLIENT_MSG, &b);
	b.n = 0; /* RETAIN */
	p64le(&b, 7);
	chunk56(&f, MOSQDB_CHUNK_RETAIN, &b);

	struct coll c;
	char err[600];
	ck_assert_msg(parse_bld(&f, &c, err, sizeof err) == MOSQDB_OK, "%s", err);
	ck_assert_uint_eq(c.info.version, 5);
	ck_assert_uint_eq(c.info.last_db_id, 9);
	ck_assert_uint_eq(c.n_ret, 1);
	ck_assert_str_eq(c.ret[0].topic, "t/5");
	ck_assert(beq(c.ret[0].payload, "pl", 2) && beq(c.ret[0].props, "\x26\x00\x01k\x00\x01v", 7));
	ck_assert_int_eq(c.ret[0].expiry_time, 2000000000);
	ck_assert_uint_eq(c.ret[0].source_port, 1883);
	ck_assert_uint_eq(c.n_cl, 1);
	ck_assert_str_eq(c.cl[0].id, "c5");
	ck_assert_str_eq(c.cl[0].username, "");
	ck_assert_uint_eq(c.cl[0].session_expiry_interval, 77);
	ck_assert_int_eq(c.cl[0].session_expiry_time, 1999999999);
	ck_assert_uint_eq(c.cl[0].last_mid, 9);
	ck_assert(c.n_sub == 1 && c.sub[0].identifier == 3 && c.sub[0].options == MOSQDB_SUB_NO_LOCAL);
	ck_assert(c.n_cm == 1 && c.cm[0].retain && !c.cm[0].dup && beq(c.cm[0].props, "\x0b\x03", 2));
	coll_free(&c);

	/* a v5 CLIENT chunk one byte longer than its contents */
	f.b[23 + 8 + 16 + 8 + 32 + 7 + 8 + 7] = 19;
	ck_assert_int_eq(parse_bld(&f, &c, err, sizeof err), MOSQDB_ECORRUPT);
	ck_assert_msg(strstr(err, "CLIENT chunk declares 19 bytes"), "%s", err);
	coll_free(&c);
}
END_TEST

/* mosquitto 1.x (db versions 2, 3, 4): u16 chunk types, u16-prefixed
 * strings, no properties, no session expiry (sessions never expired). */
static void build_v234(struct bld *f, uint32_t version)
{
	struct bld b;
	header(f, version);
	b.n = 0; /* CFG */
	p8(&b, 1);
	p8(&b, 8);
	p64le(&b, 5);
	chunk234(f, MOSQDB_CHUNK_CFG, &b, (uint32_t)b.n);
	b.n = 0; /* MSG_STORE */
	p64le(&b, 5);
	pstr16(&b, "c4");
	if (version == 4) {
		pstr16(&b, "u4");
		p16(&b, 1883);
	}
	p16(&b, 2); /* source mid */
	p16(&b, 0); /* mid, unused */
	pstr16(&b, "t/4");
	p8(&b, 2);
	p8(&b, 1);
	p32(&b, 1);
	praw(&b, "x", 1);
	chunk234(f, MOSQDB_CHUNK_MSG_STORE, &b, (uint32_t)b.n - 6); /* length without user/port */
	b.n = 0; /* CLIENT */
	pstr16(&b, "c4");
	p16(&b, 4);
	if (version != 2)
		p64le(&b, 1234); /* disconnect time */
	chunk234(f, MOSQDB_CHUNK_CLIENT, &b, (uint32_t)b.n);
	b.n = 0; /* CLIENT_MSG */
	pstr16(&b, "c4");
	p64le(&b, 5);
	p16(&b, 4);
	p8(&b, 2);
	p8(&b, 0);
	p8(&b, MOSQDB_DIR_OUT);
	p8(&b, MOSQDB_MS_WAIT_FOR_PUBCOMP);
	p8(&b, 1);
	chunk234(f, MOSQDB_CHUNK_CLIENT_MSG, &b, (uint32_t)b.n);
	b.n = 0; /* SUB */
	pstr16(&b, "c4");
	pstr16(&b, "t/+");
	p8(&b, 2);
	chunk234(f, MOSQDB_CHUNK_SUB, &b, (uint32_t)b.n);
	b.n = 0; /* RETAIN */
	p64le(&b, 5);
	chunk234(f, MOSQDB_CHUNK_RETAIN, &b, 8);
}

START_TEST(versions234)
{
	for (uint32_t v = 2; v <= 4; v++) {
		struct bld f;
		struct coll c;
		char err[600];
		build_v234(&f, v);
		ck_assert_msg(parse_bld(&f, &c, err, sizeof err) == MOSQDB_OK, "v%u: %s", v, err);
		ck_assert_uint_eq(c.info.version, v);
		ck_assert_uint_eq(c.info.last_db_id, 5);
		ck_assert(c.info.shutdown);
		ck_assert_uint_eq(c.n_ret, 1);
		ck_assert_str_eq(c.ret[0].topic, "t/4");
		ck_assert_str_eq(c.ret[0].source_id, "c4");
		ck_assert_str_eq(c.ret[0].source_user, v == 4 ? "u4" : "");
		ck_assert_uint_eq(c.ret[0].source_port, v == 4 ? 1883 : 0);
		ck_assert(c.ret[0].qos == 2 && c.ret[0].retain && beq(c.ret[0].payload, "x", 1));
		ck_assert_uint_eq(c.n_cl, 1);
		ck_assert_uint_eq(c.cl[0].session_expiry_interval, UINT32_MAX);
		ck_assert_uint_eq(c.cl[0].last_mid, 4);
		ck_assert_int_eq(c.cl[0].disconnect_time, v == 2 ? 0 : 1234);
		ck_assert(c.n_sub == 1 && c.sub[0].qos == 2 && !strcmp(c.sub[0].filter, "t/+"));
		ck_assert_uint_eq(c.n_cm, 1);
		ck_assert(c.cm[0].state == MOSQDB_MS_WAIT_FOR_PUBCOMP && c.cm[0].dup && c.cm[0].mid == 4);
		ck_assert_str_eq(c.cm[0].m.topic, "t/4");
		coll_free(&c);
		/* truncated in the last chunk */
		f.n -= 3;
		ck_assert_int_eq(parse_bld(&f, &c, err, sizeof err), MOSQDB_ECORRUPT);
		ck_assert_msg(strstr(err, "RETAIN chunk: store id needs 8 bytes, 5 left"), "v%u: %s", v, err);
		ck_assert_uint_eq(c.calls, 0);
		coll_free(&c);
	}
}
END_TEST

/* Unknown chunks are skipped, references to absent messages (mosquitto:
 * expired) and records without a client id are dropped and counted; a
 * message id stored twice and bad properties are refused. */
START_TEST(odd_chunks)
{
	struct bld f, b, store;
	struct coll c;
	char err[600];
	header(&f, 6);
	b.n = 0;
	praw(&b, "abc", 3);
	chunk56(&f, 99, &b);
	store.n = 0;
	p64le(&store, 1);
	p64le(&store, 0);
	p32(&store, 0);
	p16(&store, 0);
	p16(&store, 0);
	p16(&store, 0);
	p16(&store, 1);
	p16(&store, 0);
	p8(&store, 0);
	p8(&store, 1);
	praw(&store, "t", 1);
	chunk56(&f, MOSQDB_CHUNK_MSG_STORE, &store);
	b.n = 0; /* RETAIN of an absent message */
	p64le(&b, 42);
	chunk56(&f, MOSQDB_CHUNK_RETAIN, &b);
	b.n = 0; /* CLIENT without id */
	p64le(&b, 0);
	p32(&b, 0);
	p16(&b, 0);
	p16(&b, 0);
	p16(&b, 0);
	p16(&b, 0);
	p32(&b, 0);
	chunk56(&f, MOSQDB_CHUNK_CLIENT, &b);
	b.n = 0; /* CLIENT_MSG of an absent message */
	p64le(&b, 43);
	p16(&b, 1);
	p16(&b, 1);
	p8(&b, 1);
	p8(&b, MOSQDB_MS_QUEUED);
	p8(&b, 0);
	p8(&b, MOSQDB_DIR_OUT);
	praw(&b, "z", 1);
	chunk56(&f, MOSQDB_CHUNK_CLIENT_MSG, &b);
	b.n = 0; /* RETAIN of message 1 */
	p64le(&b, 1);
	chunk56(&f, MOSQDB_CHUNK_RETAIN, &b);
	ck_assert_msg(parse_bld(&f, &c, err, sizeof err) == MOSQDB_OK, "%s", err);
	ck_assert_uint_eq(c.info.n_unknown, 1);
	ck_assert_uint_eq(c.info.n_dangling, 2);
	ck_assert_uint_eq(c.info.n_empty, 1);
	ck_assert_uint_eq(c.info.n_retained, 1);
	ck_assert(c.n_ret == 1 && c.n_cl == 0 && c.n_cm == 0);
	coll_free(&c);

	size_t before = f.n;
	chunk56(&f, MOSQDB_CHUNK_MSG_STORE, &store);
	ck_assert_int_eq(parse_bld(&f, &c, err, sizeof err), MOSQDB_ECORRUPT);
	ck_assert_msg(strstr(err, "message id 1 stored twice"), "%s", err);
	coll_free(&c);

	f.n = before;
	store.b[8 + 8 + 4 + 6 + 1] = 0; /* topic length 0, the topic byte becomes a property block */
	store.b[store.n - 1] = 0x01; /* property length 1 and nothing after it */
	chunk56(&f, MOSQDB_CHUNK_MSG_STORE, &store);
	ck_assert_int_eq(parse_bld(&f, &c, err, sizeof err), MOSQDB_ECORRUPT);
	ck_assert_msg(strstr(err, "invalid property block"), "%s", err);
	coll_free(&c);
}
END_TEST

/* mosquitto 2.0's stale user name, recognised in its three shapes. */
START_TEST(stale_usernames)
{
	struct bld f, b;
	static const struct {
		const char *id, *user;
		size_t ulen;
		const char *want;
		bool suspect;
	} cl[] = {
		{"a", "bob", 3, "bob", false},
		{"b", "bob\0xyz", 768, "", true},  /* no user name: swapped length, NUL, heap bytes */
		{"c", "bob", 3, "", true},         /* no user name: swapped back, exact copy */
		{"d", "bob", 3, "bob", false},     /* a real "bob" after a real one */
		{"e", "eve", 3, "eve", false},
		{"f", "eve\0\0\0\0", 768, "", true},
	};
	header(&f, 6);
	for (size_t i = 0; i < sizeof cl / sizeof cl[0]; i++) {
		b.n = 0;
		p64le(&b, 0);
		p32(&b, UINT32_MAX);
		p16(&b, 0);
		p16(&b, 1);
		p16(&b, 1883);
		p16(&b, (unsigned)cl[i].ulen);
		p32(&b, 0);
		praw(&b, cl[i].id, 1);
		size_t have = cl[i].ulen < 8 ? cl[i].ulen : 8;
		praw(&b, cl[i].user, have);
		for (size_t k = have; k < cl[i].ulen; k++)
			p8(&b, k & 0xFF);
		chunk56(&f, MOSQDB_CHUNK_CLIENT, &b);
	}
	struct coll c;
	char err[600];
	ck_assert_msg(parse_bld(&f, &c, err, sizeof err) == MOSQDB_OK, "%s", err);
	ck_assert_uint_eq(c.n_cl, 6);
	for (size_t i = 0; i < 6; i++) {
		ck_assert_str_eq(c.cl[i].username, cl[i].want);
		ck_assert_msg(c.cl[i].username_suspect == cl[i].suspect, "client %s", cl[i].id);
	}
	coll_free(&c);
}
END_TEST

Suite *mosqdb_old_suite(void)
{
	Suite *s = suite_create("mosqdb-hand-built");
	TCase *tc = tcase_create("formats");
	tcase_add_test(tc, version5);
	tcase_add_test(tc, versions234);
	tcase_add_test(tc, odd_chunks);
	tcase_add_test(tc, stale_usernames);
	suite_add_tcase(s, tc);
	return s;
}

#endif
