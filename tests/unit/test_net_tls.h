/*
 * tests/unit/test_net_tls.h — the TLS half of test_net.c (included by it;
 * split for the 800-line limit). Certificates are throwaway self-signed
 * EC keys made with the openssl command line in a temporary directory.
 */
/* ---- TLS ---------------------------------------------------------------------------- */

struct certs {
	char dir[64];
	char scert[128], skey[128], ccert[128], ckey[128];
};

static int certs_make(struct certs *k)
{
	snprintf(k->dir, sizeof k->dir, "/tmp/vigil-tls-XXXXXX");
	if (!mkdtemp(k->dir))
		return -1;
	snprintf(k->scert, sizeof k->scert, "%s/scert.pem", k->dir);
	snprintf(k->skey, sizeof k->skey, "%s/skey.pem", k->dir);
	snprintf(k->ccert, sizeof k->ccert, "%s/ccert.pem", k->dir);
	snprintf(k->ckey, sizeof k->ckey, "%s/ckey.pem", k->dir);
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
		 "-keyout %s -out %s -subj /CN=localhost >/dev/null 2>&1 && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
		 "-keyout %s -out %s -subj '/O=Acme Corp/CN=client1' >/dev/null 2>&1",
		 k->skey, k->scert, k->ckey, k->ccert);
	return system(cmd) == 0 ? 0 : -1;
}

static void certs_free(struct certs *k)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", k->dir); /* our own mkdtemp directory */
	ck_assert_int_eq(system(cmd), 0);
}

/* An empty CRL, a CRL (issued by the self-signed client cert acting as its
 * own CA) that revokes the client cert, and FFDHE parameters. */
static int certs_make_crl_dh(const struct certs *k)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "cd '%s' && printf '[ca]\\ndefault_ca=d\\n[d]\\ndatabase=%s/index.txt\\n"
		 "crlnumber=%s/crlnumber\\ndefault_md=sha256\\ndefault_crl_days=1\\n' > ca.cnf && "
		 "touch index.txt && echo 01 > crlnumber && "
		 "openssl ca -config ca.cnf -keyfile ckey.pem -cert ccert.pem -gencrl -out empty.crl && "
		 "openssl ca -config ca.cnf -keyfile ckey.pem -cert ccert.pem -revoke ccert.pem && "
		 "openssl ca -config ca.cnf -keyfile ckey.pem -cert ccert.pem -gencrl -out revoked.crl && "
		 "openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out dh.pem",
		 k->dir, k->dir, k->dir);
	char full[2100];
	snprintf(full, sizeof full, "(%s) >/dev/null 2>&1", cmd);
	return system(full) == 0 ? 0 : -1;
}

struct tcli {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
};

static unsigned int cli_psk_cb(SSL *ssl, const char *hint, char *identity, unsigned int max_identity_len,
			       unsigned char *psk, unsigned int max_psk_len)
{
	snprintf(identity, max_identity_len, "id1");
	memcpy(psk, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	return 8;
}

/* Handshake a TLS client against the loop; returns 1 on success. */
static int tcli_open(struct srv *s, struct tcli *t, int port, const struct certs *k, int maxver, bool psk)
{
	t->ctx = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(t->ctx);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
	if (maxver)
		SSL_CTX_set_max_proto_version(t->ctx, maxver);
	if (k) {
		ck_assert_int_eq(SSL_CTX_use_certificate_file(t->ctx, k->ccert, SSL_FILETYPE_PEM), 1);
		ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(t->ctx, k->ckey, SSL_FILETYPE_PEM), 1);
	}
	if (psk)
		SSL_CTX_set_psk_client_callback(t->ctx, cli_psk_cb);
	t->fd = cli_connect(AF_INET, "127.0.0.1", port);
	t->ssl = SSL_new(t->ctx);
	SSL_set_fd(t->ssl, t->fd);
	uint64_t end = mono_ms() + 3000;
	for (;;) {
		ERR_clear_error();
		int r = SSL_connect(t->ssl);
		if (r == 1)
			return 1;
		int e = SSL_get_error(t->ssl, r);
		if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && mono_ms() < end) {
			net_loop_run_once(s->loop, 2);
			continue;
		}
		ERR_clear_error();
		return 0;
	}
}

static void tcli_close(struct tcli *t)
{
	SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	close(t->fd);
}

static void tcli_write_all(struct srv *s, struct tcli *t, const void *p, size_t n)
{
	size_t off = 0;
	uint64_t end = mono_ms() + 5000;
	while (off < n && mono_ms() < end) {
		size_t w = 0;
		ERR_clear_error();
		if (SSL_write_ex(t->ssl, (const uint8_t *)p + off, n - off, &w) == 1)
			off += w;
		else
			net_loop_run_once(s->loop, 2);
	}
	ck_assert_uint_eq(off, n);
}

/* Read up to n bytes (stops at EOF / error); *eof set on close_notify/EOF. */
static size_t tcli_read(struct srv *s, struct tcli *t, uint8_t *buf, size_t n, int *eof, int ms)
{
	size_t off = 0;
	*eof = 0;
	uint64_t end = mono_ms() + (uint64_t)ms;
	while (off < n && mono_ms() < end) {
		size_t r = 0;
		ERR_clear_error();
		if (SSL_read_ex(t->ssl, buf + off, n - off, &r) == 1) {
			off += r;
			continue;
		}
		int e = SSL_get_error(t->ssl, 0);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			net_loop_run_once(s->loop, 2);
			continue;
		}
		ERR_clear_error();
		*eof = 1;
		break;
	}
	return off;
}

static struct net_tls *tls_make(const struct certs *k, bool require_cert, const char *version)
{
	struct net_tls_opts o = { .certfile = k->scert, .keyfile = k->skey, .tls_version = version };
	if (require_cert) {
		o.cafile = k->ccert;
		o.require_certificate = true;
	}
	char err[256] = "";
	struct net_tls *t = net_tls_new(&o, err, sizeof err);
	ck_assert_msg(t != NULL, "%s", err);
	return t;
}

START_TEST(t_tls_handshake_echo)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	struct srv s;
	srv_init(&s);
	s.sndbuf = 4096;
	struct net_tls *tls = tls_make(&k, false, NULL);
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	struct tcli t;
	ck_assert_int_eq(tcli_open(&s, &t, net_listener_port(s.l), NULL, 0, false), 1);
	ck_assert_int_eq(s.accepts, 1);
	ck_assert(!s.ready_at_accept); /* not ready until the handshake ends */
	tcli_write_all(&s, &t, "hello tls", 9);
	uint8_t b[16];
	int eof;
	ck_assert_uint_eq(tcli_read(&s, &t, b, 9, &eof, 2000), 9);
	ck_assert_mem_eq(b, "hello tls", 9);
	ck_assert(net_conn_ready(s.c));
	ck_assert_ptr_null(net_conn_cert_cn(s.c));
	/* 2 MB each way through a 4 KiB send buffer: partial SSL writes */
	const size_t total = 2u << 20;
	uint8_t *out = malloc(total), *in = malloc(total);
	pattern(out, 0, total);
	size_t sent = 0, recvd = 0;
	uint64_t end = mono_ms() + 20000;
	while (recvd < total && mono_ms() < end) {
		if (sent < total) {
			size_t w = 0;
			if (SSL_write_ex(t.ssl, out + sent, total - sent > 16384 ? 16384 : total - sent, &w) == 1)
				sent += w;
			ERR_clear_error();
		}
		net_loop_run_once(s.loop, 0);
		size_t r = 0;
		while (recvd < total && SSL_read_ex(t.ssl, in + recvd, total - recvd, &r) == 1)
			recvd += r;
		ERR_clear_error();
	}
	ck_assert_uint_eq(recvd, total);
	ck_assert(memcmp(in, out, total) == 0);
	free(in);
	free(out);
	/* orderly TLS close from the client: EOF */
	SSL_shutdown(t.ssl);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_int_eq(s.why, NET_CLOSED_EOF);
	tcli_close(&t);
	srv_done(&s);
	net_tls_free(tls);
	net_tls_free(NULL);
	certs_free(&k);
}
END_TEST

/* A plain MQTT client on a TLS port: the handshake fails, the conn is
 * closed with NET_CLOSED_TLS and no data is ever delivered. */
START_TEST(t_tls_plain_client_closed)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	struct srv s;
	srv_init(&s);
	struct net_tls *tls = tls_make(&k, false, NULL);
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	int fd = cli_connect(AF_INET, "127.0.0.1", net_listener_port(s.l));
	static const uint8_t connect_pkt[] = { 0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T',
					       0x04, 0x02, 0x00, 0x3c, 0x00, 0x00 };
	cli_send_all(&s, fd, connect_pkt, sizeof connect_pkt);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_int_eq(s.closes, 1);
	ck_assert_int_eq(s.why, NET_CLOSED_TLS);
	ck_assert_int_eq(s.datas, 0);
	uint8_t b[256];
	int eof, err;
	uint64_t end = mono_ms() + 2000;
	do
		cli_recv(&s, fd, b, sizeof b, &eof, &err, 50);
	while (!eof && !err && mono_ms() < end);
	ck_assert(eof || err); /* the client is closed on */
	close(fd);
	srv_done(&s);
	net_tls_free(tls);
	certs_free(&k);
}
END_TEST

START_TEST(t_tls_client_certificate)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	struct srv s;
	srv_init(&s);
	struct net_tls *tls = tls_make(&k, true, "tlsv1.2");
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	int port = net_listener_port(s.l);
	struct tcli t;
	ck_assert_int_eq(tcli_open(&s, &t, port, &k, 0, false), 1);
	tcli_write_all(&s, &t, "id?", 3);
	uint8_t b[8];
	int eof;
	ck_assert_uint_eq(tcli_read(&s, &t, b, 3, &eof, 2000), 3);
	ck_assert_str_eq(s.cn, "client1");
	/* RFC 2253: most specific first, like mosquitto's use_subject_as_username */
	ck_assert_str_eq(s.subject, "CN=client1,O=Acme Corp");
	tcli_close(&t);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);

	/* no certificate: refused (TLS 1.3 reports it after the client's
	 * Finished, so look at the server side) */
	s.closes = 0;
	struct tcli t2;
	tcli_open(&s, &t2, port, NULL, 0, false);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_int_eq(s.closes, 1);
	ck_assert_int_eq(s.why, NET_CLOSED_TLS);
	tcli_close(&t2);
	srv_done(&s);
	net_tls_free(tls);
	certs_free(&k);
}
END_TEST

START_TEST(t_tls_version_and_bad_options)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	char err[256] = "";
	struct net_tls_opts o = { .certfile = k.scert, .keyfile = k.skey, .tls_version = "tlsv9" };
	ck_assert_ptr_null(net_tls_new(&o, err, sizeof err));
	ck_assert(strstr(err, "tlsv9") != NULL);
	o.tls_version = NULL;
	o.keyfile = k.ckey; /* mismatched key */
	ck_assert_ptr_null(net_tls_new(&o, err, sizeof err));
	ck_assert(strstr(err, "keyfile") != NULL);
	o.keyfile = "/nonexistent/key.pem";
	ck_assert_ptr_null(net_tls_new(&o, err, sizeof err));
	o.keyfile = k.skey;
	o.ciphers = "NO-SUCH-CIPHER";
	ck_assert_ptr_null(net_tls_new(&o, err, sizeof err));
	ck_assert(strstr(err, "ciphers") != NULL);
	o.ciphers = NULL;
	o.require_certificate = true; /* without a CA */
	ck_assert_ptr_null(net_tls_new(&o, err, sizeof err));

	/* compat: tls_version "tlsv1.3" is a minimum -> a 1.2-only client fails */
	struct srv s;
	srv_init(&s);
	struct net_tls *tls = tls_make(&k, false, "tlsv1.3");
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	struct tcli t;
	ck_assert_int_eq(tcli_open(&s, &t, net_listener_port(s.l), NULL, TLS1_2_VERSION, false), 0);
	tcli_close(&t);
	ck_assert_int_eq(tcli_open(&s, &t, net_listener_port(s.l), NULL, 0, false), 1);
	ck_assert_int_eq(SSL_version(t.ssl), TLS1_3_VERSION);
	tcli_close(&t);
	srv_done(&s);
	net_tls_free(tls);
	certs_free(&k);
}
END_TEST

/* SIGHUP reload: a new SSL_CTX for new conns; live conns keep theirs. */
START_TEST(t_tls_reload)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	struct srv s;
	srv_init(&s);
	struct net_tls *tls = tls_make(&k, false, NULL);
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	int port = net_listener_port(s.l);
	struct tcli a;
	ck_assert_int_eq(tcli_open(&s, &a, port, NULL, 0, false), 1);
	struct net_tls_opts o = { .certfile = k.scert, .keyfile = "/nonexistent.pem" };
	char err[256] = "";
	ck_assert_int_eq(net_tls_reload(tls, &o, err, sizeof err), -1);
	ck_assert(err[0] != 0);
	o.keyfile = k.skey;
	o.tls_version = "tlsv1.3";
	ck_assert_int_eq(net_tls_reload(tls, &o, err, sizeof err), 0);
	struct tcli b;
	ck_assert_int_eq(tcli_open(&s, &b, port, NULL, TLS1_2_VERSION, false), 0); /* new rules */
	tcli_close(&b);
	ck_assert_int_eq(tcli_open(&s, &b, port, NULL, 0, false), 1);
	uint8_t buf[4];
	int eof;
	tcli_write_all(&s, &a, "old", 3);
	ck_assert_uint_eq(tcli_read(&s, &a, buf, 3, &eof, 2000), 3);
	ck_assert_mem_eq(buf, "old", 3);
	tcli_write_all(&s, &b, "new", 3);
	ck_assert_uint_eq(tcli_read(&s, &b, buf, 3, &eof, 2000), 3);
	ck_assert_mem_eq(buf, "new", 3);
	/* freeing the net_tls while conns live is safe (SSL_CTX refcount) */
	net_tls_free(tls);
	tcli_write_all(&s, &a, "still", 5);
	ck_assert_uint_eq(tcli_read(&s, &a, buf, 4, &eof, 2000), 4);
	tcli_close(&a);
	tcli_close(&b);
	srv_done(&s);
	certs_free(&k);
}
END_TEST

static int psk_lookup(const char *identity, uint8_t *key, size_t cap, void *user)
{
	(*(int *)user)++;
	if (strcmp(identity, "id1") != 0 || cap < 8)
		return -1;
	memcpy(key, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	return 8;
}

START_TEST(t_tls_psk)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	int lookups = 0;
	struct net_tls_opts o = { .certfile = k.scert, .keyfile = k.skey, .psk_hint = "hint",
				  .psk_lookup = psk_lookup, .psk_user = &lookups };
	char err[256] = "";
	struct net_tls *tls = net_tls_new(&o, err, sizeof err);
	ck_assert_msg(tls != NULL, "%s", err);
	struct srv s;
	srv_init(&s);
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	struct tcli t;
	ck_assert_int_eq(tcli_open(&s, &t, net_listener_port(s.l), NULL, 0, true), 1);
	tcli_write_all(&s, &t, "psk", 3);
	uint8_t b[4];
	int eof;
	ck_assert_uint_eq(tcli_read(&s, &t, b, 3, &eof, 2000), 3);
	ck_assert_int_ge(lookups, 1);
	ck_assert_str_eq(s.psk_id, "id1");
	tcli_close(&t);
	srv_done(&s);
	net_tls_free(tls);
	certs_free(&k);
}
END_TEST

/* Orderly close over TLS: queued bytes arrive, then close_notify (EOF). */
START_TEST(t_tls_flush_close)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	struct srv s;
	srv_init(&s);
	s.mode = M_CLOSE_FLUSH;
	s.bigwrite = 300000;
	s.sndbuf = 8192;
	struct net_tls *tls = tls_make(&k, false, NULL);
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	struct tcli t;
	ck_assert_int_eq(tcli_open(&s, &t, net_listener_port(s.l), NULL, 0, false), 1);
	tcli_write_all(&s, &t, "go", 2);
	uint8_t *buf = malloc(s.bigwrite + 10), *exp = malloc(s.bigwrite);
	pattern(exp, 0, s.bigwrite);
	int eof;
	size_t n = tcli_read(&s, &t, buf, s.bigwrite + 10, &eof, 5000);
	ck_assert_uint_eq(n, s.bigwrite);
	ck_assert(memcmp(buf, exp, n) == 0);
	ck_assert_int_eq(eof, 1);
	ck_assert_int_eq(SSL_get_shutdown(t.ssl) & SSL_RECEIVED_SHUTDOWN, SSL_RECEIVED_SHUTDOWN);
	ck_assert_int_eq(s.closes, 1);
	free(buf);
	free(exp);
	tcli_close(&t);
	PUMP_UNTIL(s.loop, net_loop_lingering(s.loop) == 0, 2000);
	ck_assert_uint_eq(net_loop_lingering(s.loop), 0);
	srv_done(&s);
	net_tls_free(tls);
	certs_free(&k);
}
END_TEST

/* crlfile: a revoked client certificate is refused; dhparamfile loads. */
START_TEST(t_tls_crl_and_dhparam)
{
	struct certs k;
	ck_assert_int_eq(certs_make(&k), 0);
	ck_assert_int_eq(certs_make_crl_dh(&k), 0);
	char empty[128], revoked[128], dh[128];
	snprintf(empty, sizeof empty, "%s/empty.crl", k.dir);
	snprintf(revoked, sizeof revoked, "%s/revoked.crl", k.dir);
	snprintf(dh, sizeof dh, "%s/dh.pem", k.dir);
	struct net_tls_opts o = { .certfile = k.scert, .keyfile = k.skey, .cafile = k.ccert,
				  .require_certificate = true, .crlfile = empty, .dhparamfile = k.scert };
	char err[256] = "";
	ck_assert_ptr_null(net_tls_new(&o, err, sizeof err)); /* not DH parameters */
	ck_assert(strstr(err, "dhparamfile") != NULL);
	o.dhparamfile = dh;
	struct net_tls *tls = net_tls_new(&o, err, sizeof err);
	ck_assert_msg(tls != NULL, "%s", err);
	struct srv s;
	srv_init(&s);
	ck_assert_ptr_nonnull(srv_listen(&s, "127.0.0.1", AF_INET, tls));
	int port = net_listener_port(s.l);
	struct tcli t;
	ck_assert_int_eq(tcli_open(&s, &t, port, &k, TLS1_2_VERSION, false), 1); /* DHE-capable 1.2 too */
	tcli_write_all(&s, &t, "ok", 2);
	uint8_t b[2];
	int eof;
	ck_assert_uint_eq(tcli_read(&s, &t, b, 2, &eof, 2000), 2);
	tcli_close(&t);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	o.crlfile = revoked;
	ck_assert_int_eq(net_tls_reload(tls, &o, err, sizeof err), 0);
	s.closes = 0;
	tcli_open(&s, &t, port, &k, 0, false);
	PUMP_UNTIL(s.loop, s.closes == 1, 2000);
	ck_assert_int_eq(s.why, NET_CLOSED_TLS);
	ck_assert_int_eq(s.datas, 1);
	tcli_close(&t);
	srv_done(&s);
	net_tls_free(tls);
	certs_free(&k);
}
END_TEST

static void tls_add_tests(TCase *tc)
{
	tcase_add_test(tc, t_tls_flush_close);
	tcase_add_test(tc, t_tls_crl_and_dhparam);
	tcase_add_test(tc, t_tls_handshake_echo);
	tcase_add_test(tc, t_tls_plain_client_closed);
	tcase_add_test(tc, t_tls_client_certificate);
	tcase_add_test(tc, t_tls_version_and_bad_options);
	tcase_add_test(tc, t_tls_reload);
	tcase_add_test(tc, t_tls_psk);
}
