/*
 * net/tls.c — TLS server transport (OpenSSL 3) and struct net_tls.
 *
 * The handshake is driven by the loop: SSL_do_handshake on each readiness
 * event, WANT_READ / WANT_WRITE become the conn's epoll interest. After it,
 * SSL_read fills the conn's input buffer and SSL_write drains its output
 * chunks (partial writes + moving write buffer, so a retry may pass the
 * same bytes from a grown chunk). Unexpected EOF without close_notify is an
 * ordinary EOF (SSL_OP_IGNORE_UNEXPECTED_EOF), as most MQTT clients do it.
 *
 * compat: (mosquitto-compat.md) tls_version, as in mosquitto 2.0, sets the
 * minimum protocol version: "tlsv1.3" = 1.3 only, "tlsv1.2" = 1.2 and 1.3,
 * "tlsv1.1" = 1.1 to 1.3; unset = 1.2 and 1.3. require_certificate false
 * means SSL_VERIFY_NONE (no certificate is requested), as mosquitto does;
 * true means SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT against
 * cafile/capath (and crlfile when given).
 *
 * Reload (SIGHUP) builds a fresh SSL_CTX and swaps it in for new
 * connections; live SSL objects hold a reference to the old one.
 * Client side (outbound connections, net_tls_client_new): verifies the
 * server's certificate against cafile/capath and, unless insecure, its
 * name (SSL_set1_host / the IP address); sends SNI for host names. With
 * TLS-PSK (psk_identity / psk_hex) the key replaces the certificates.
 * With require_ocsp the server must staple a good OCSP response (tls_ocsp.c).
 * Not here: server-side SNI, stapling OCSP as a server, certificate-based ACLs.
 * Invariant: OpenSSL's error queue is empty whenever control returns to
 * the loop, so one conn's failure never shows up as another's.
 */
#include "net_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

struct net_tls {
	SSL_CTX *ctx;
	int (*psk_lookup)(const char *identity, uint8_t *key, size_t cap, void *user);
	void *psk_user;
	struct net_tls_opts opts; /* deep copy, for ws.c (net_tls_opts_of) */
	bool client_insecure;     /* client contexts: no server name check */
	char *client_psk_identity; /* client contexts with TLS-PSK */
	uint8_t client_psk[256];
	unsigned client_psk_len;
};

/* Per-connection state (conn->tp_state). */
struct tls_conn {
	SSL *ssl;
	int (*psk_lookup)(const char *identity, uint8_t *key, size_t cap, void *user);
	void *psk_user;
	char *psk_identity; /* accepted by psk_lookup (TLS 1.3 does not keep it) */
};

static void tls_err(char *err, size_t errlen, const char *what, const char *arg)
{
	char buf[256] = "";
	unsigned long e = ERR_peek_last_error();
	if (e)
		ERR_error_string_n(e, buf, sizeof buf);
	if (err && errlen)
		snprintf(err, errlen, "%s%s%s%s%s", what, arg ? " " : "", arg ? arg : "", buf[0] ? ": " : "", buf);
	ERR_clear_error();
}

static unsigned int tls_psk_cb(SSL *ssl, const char *identity, unsigned char *psk, unsigned int max_psk_len)
{
	struct tls_conn *t = SSL_get_app_data(ssl);
	if (!t || !t->psk_lookup || !identity)
		return 0;
	int n = t->psk_lookup(identity, psk, max_psk_len, t->psk_user);
	if (n <= 0 || (unsigned)n > max_psk_len)
		return 0;
	free(t->psk_identity);
	t->psk_identity = strdup(identity);
	if (!t->psk_identity) {
		OPENSSL_cleanse(psk, max_psk_len);
		return 0;
	}
	return (unsigned)n;
}

static int tls_min_version(const char *v, int *out)
{
	if (!v || !v[0])
		*out = TLS1_2_VERSION;
	else if (!strcmp(v, "tlsv1.3"))
		*out = TLS1_3_VERSION;
	else if (!strcmp(v, "tlsv1.2"))
		*out = TLS1_2_VERSION;
	else if (!strcmp(v, "tlsv1.1"))
		*out = TLS1_1_VERSION;
	else
		return -1;
	return 0;
}

static SSL_CTX *tls_ctx_build(const struct net_tls_opts *o, char *err, size_t errlen)
{
	int minv;
	if (tls_min_version(o->tls_version, &minv) < 0) {
		if (err && errlen)
			snprintf(err, errlen, "unsupported tls_version \"%s\"", o->tls_version);
		return NULL;
	}
	if (!o->certfile && !o->psk_hint) {
		if (err && errlen)
			snprintf(err, errlen, "TLS listener needs certfile/keyfile or psk_hint");
		return NULL;
	}
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		tls_err(err, errlen, "SSL_CTX_new failed", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, minv);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	static const unsigned char sid_ctx[] = "vigil";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);

	if (o->ciphers && SSL_CTX_set_cipher_list(ctx, o->ciphers) != 1) {
		tls_err(err, errlen, "invalid ciphers", o->ciphers);
		goto fail;
	}
	if (o->ciphers_tls13 && SSL_CTX_set_ciphersuites(ctx, o->ciphers_tls13) != 1) {
		tls_err(err, errlen, "invalid ciphers_tls1.3", o->ciphers_tls13);
		goto fail;
	}
	if (o->dhparamfile) {
		BIO *bio = BIO_new_file(o->dhparamfile, "r");
		EVP_PKEY *dh = bio ? PEM_read_bio_Parameters(bio, NULL) : NULL;
		BIO_free(bio);
		if (!dh || SSL_CTX_set0_tmp_dh_pkey(ctx, dh) != 1) {
			EVP_PKEY_free(dh);
			tls_err(err, errlen, "cannot load dhparamfile", o->dhparamfile);
			goto fail;
		}
	} else {
		SSL_CTX_set_dh_auto(ctx, 1);
	}
	if ((o->cafile || o->capath) && SSL_CTX_load_verify_locations(ctx, o->cafile, o->capath) != 1) {
		tls_err(err, errlen, "cannot load cafile/capath", o->cafile ? o->cafile : o->capath);
		goto fail;
	}
	if (o->require_certificate && !o->cafile && !o->capath) {
		if (err && errlen)
			snprintf(err, errlen, "require_certificate needs cafile or capath");
		goto fail;
	}
	SSL_CTX_set_verify(ctx, o->require_certificate ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
						       : SSL_VERIFY_NONE,
			   NULL);
	if (o->certfile) {
		if (SSL_CTX_use_certificate_chain_file(ctx, o->certfile) != 1) {
			tls_err(err, errlen, "cannot load certfile", o->certfile);
			goto fail;
		}
		const char *key = o->keyfile ? o->keyfile : o->certfile;
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
			tls_err(err, errlen, "cannot load keyfile", key);
			goto fail;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			tls_err(err, errlen, "keyfile does not match certfile", key);
			goto fail;
		}
	}
	if (o->crlfile) {
		X509_STORE *store = SSL_CTX_get_cert_store(ctx);
		X509_LOOKUP *lk = store ? X509_STORE_add_lookup(store, X509_LOOKUP_file()) : NULL;
		if (!lk || X509_load_crl_file(lk, o->crlfile, X509_FILETYPE_PEM) < 1) {
			tls_err(err, errlen, "cannot load crlfile", o->crlfile);
			goto fail;
		}
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	}
	if (o->psk_hint) {
		if (SSL_CTX_use_psk_identity_hint(ctx, o->psk_hint) != 1) {
			tls_err(err, errlen, "invalid psk_hint", o->psk_hint);
			goto fail;
		}
		SSL_CTX_set_psk_server_callback(ctx, tls_psk_cb);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* ---- a copy of the options, for WebSocket listeners (ws.c) ----------------------------- */

static void tls_opts_clear(struct net_tls_opts *o)
{
	const char *f[] = {o->cafile,	   o->capath,	      o->certfile, o->keyfile,	   o->tls_version,
			   o->ciphers,	   o->ciphers_tls13, o->crlfile,  o->dhparamfile, o->psk_hint};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		free((char *)f[i]);
	memset(o, 0, sizeof *o);
}

static int tls_opts_copy(struct net_tls_opts *d, const struct net_tls_opts *s)
{
	*d = *s;
	const char **f[] = {&d->cafile,	 &d->capath,	    &d->certfile, &d->keyfile,	   &d->tls_version,
			    &d->ciphers, &d->ciphers_tls13, &d->crlfile,  &d->dhparamfile, &d->psk_hint};
	int bad = 0;
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		if (*f[i] && !(*f[i] = strdup(*f[i])))
			bad = 1;
	if (bad)
		tls_opts_clear(d);
	return bad ? -1 : 0;
}

const struct net_tls_opts *net_tls_opts_of(const struct net_tls *t)
{
	return &t->opts;
}

/* ---- struct net_tls ----------------------------------------------------------------------- */

struct net_tls *net_tls_new(const struct net_tls_opts *o, char *err, size_t errlen)
{
	struct net_tls *t = calloc(1, sizeof *t);
	if (!t) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->ctx = tls_ctx_build(o, err, errlen);
	if (!t->ctx) {
		free(t);
		return NULL;
	}
	if (tls_opts_copy(&t->opts, o) < 0) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		SSL_CTX_free(t->ctx);
		free(t);
		return NULL;
	}
	t->psk_lookup = o->psk_lookup;
	t->psk_user = o->psk_user;
	return t;
}

int net_tls_reload(struct net_tls *t, const struct net_tls_opts *o, char *err, size_t errlen)
{
	SSL_CTX *ctx = tls_ctx_build(o, err, errlen);
	if (!ctx)
		return -1;
	struct net_tls_opts copy;
	if (tls_opts_copy(&copy, o) < 0) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		SSL_CTX_free(ctx);
		return -1;
	}
	tls_opts_clear(&t->opts);
	t->opts = copy;
	SSL_CTX_free(t->ctx); /* live SSLs keep their own reference */
	t->ctx = ctx;
	t->psk_lookup = o->psk_lookup;
	t->psk_user = o->psk_user;
	return 0;
}

void net_tls_free(struct net_tls *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	tls_opts_clear(&t->opts);
	free(t->client_psk_identity);
	OPENSSL_cleanse(t->client_psk, sizeof(t->client_psk));
	free(t);
}

/* ---- transport ------------------------------------------------------------------------ */

static SSL *conn_ssl(struct net_conn *c)
{
	return ((struct tls_conn *)c->tp_state)->ssl;
}

int net_tls_attach(struct net_tls *t, struct net_conn *c)
{
	struct tls_conn *tc = calloc(1, sizeof *tc);
	if (!tc)
		return -ENOMEM;
	tc->ssl = SSL_new(t->ctx);
	if (!tc->ssl || SSL_set_fd(tc->ssl, c->fd) != 1) {
		SSL_free(tc->ssl);
		free(tc);
		ERR_clear_error();
		return -ENOMEM;
	}
	tc->psk_lookup = t->psk_lookup;
	tc->psk_user = t->psk_user;
	SSL_set_app_data(tc->ssl, tc);
	SSL_set_accept_state(tc->ssl);
	c->tp = &net_tls_transport;
	c->tp_state = tc;
	c->tp_want = NET_READ;
	c->flags &= ~NET_CF_READY;
	return 0;
}

/* Map an SSL failure to -EAGAIN (with c->tp_want) or -errno / -EPROTO. */
static int tls_fail(struct net_conn *c, int r, bool eof_ok)
{
	int e = SSL_get_error(conn_ssl(c), r);
	int saved = errno;
	ERR_clear_error();
	switch (e) {
	case SSL_ERROR_WANT_READ:
		c->tp_want = NET_READ;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		c->tp_want = NET_WRITE;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return eof_ok ? 0 : -EPROTO;
	case SSL_ERROR_SYSCALL:
		if (saved == ECONNRESET || saved == EPIPE || saved == ETIMEDOUT || saved == EHOSTUNREACH)
			return -saved;
		return eof_ok ? 0 : -EPROTO;
	default:
		return -EPROTO;
	}
}

static char *x509_name_rfc2253(X509_NAME *name)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		return NULL;
	char *out = NULL;
	if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
		char *p;
		long n = BIO_get_mem_data(b, &p);
		out = malloc((size_t)n + 1);
		if (out) {
			memcpy(out, p, (size_t)n);
			out[n] = '\0';
		}
	}
	BIO_free(b);
	return out;
}

static char *x509_name_cn(X509_NAME *name)
{
	int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (i < 0)
		return NULL;
	ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	unsigned char *u = NULL;
	int n = ASN1_STRING_to_UTF8(&u, d);
	if (n < 0)
		return NULL;
	char *out = NULL;
	if (memchr(u, '\0', (size_t)n) == NULL) /* embedded NUL: refuse the name */
		out = strndup((const char *)u, (size_t)n);
	OPENSSL_free(u);
	return out;
}

void net_tls_peer_names(struct net_conn *c, void *ssl_)
{
	SSL *ssl = ssl_;
	X509 *cert = SSL_get0_peer_certificate(ssl);
	if (cert && SSL_get_verify_result(ssl) == X509_V_OK) {
		X509_NAME *name = X509_get_subject_name(cert);
		c->cert_cn = x509_name_cn(name);
		c->cert_subject = x509_name_rfc2253(name);
	}
}

static int tls_handshake(struct net_conn *c)
{
	SSL *ssl = conn_ssl(c);
	ERR_clear_error();
	int r = SSL_do_handshake(ssl);
	if (r != 1) {
		int e = tls_fail(c, r, false);
		return e == -EAGAIN ? 0 : e;
	}
	net_tls_peer_names(c, ssl);
	struct tls_conn *tc = c->tp_state;
	const char *id = SSL_get_psk_identity(ssl);
	if (!id)
		id = tc->psk_identity;
	if (id)
		c->psk_identity = strdup(id);
	return 1;
}

static ssize_t tls_read(struct net_conn *c, void *buf, size_t len)
{
	size_t n = 0;
	ERR_clear_error();
	if (SSL_read_ex(conn_ssl(c), buf, len, &n) == 1)
		return (ssize_t)n;
	return tls_fail(c, 0, true);
}

static size_t tls_pending(struct net_conn *c)
{
	return SSL_has_pending(conn_ssl(c)) ? 1 : 0;
}

static ssize_t tls_writev(struct net_conn *c, const struct iovec *iov, int iovcnt)
{
	SSL *ssl = conn_ssl(c);
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++) {
		size_t w = 0;
		ERR_clear_error();
		if (SSL_write_ex(ssl, iov[i].iov_base, iov[i].iov_len, &w) == 1) {
			total += w;
			if (w < iov[i].iov_len)
				break;
			continue;
		}
		int e = tls_fail(c, 0, false);
		if (e == -EAGAIN)
			break;
		return total ? (ssize_t)total : e;
	}
	return total ? (ssize_t)total : -EAGAIN;
}

static void tls_shutdown(struct net_conn *c)
{
	ERR_clear_error();
	SSL_shutdown(conn_ssl(c)); /* close_notify; best effort */
	ERR_clear_error();
}

static void tls_close(struct net_conn *c, bool abort_)
{
	struct tls_conn *tc = c->tp_state;
	if (!tc)
		return;
	if (abort_)
		SSL_set_quiet_shutdown(tc->ssl, 1);
	SSL_free(tc->ssl);
	free(tc->psk_identity);
	free(tc);
	c->tp_state = NULL;
}

const struct net_transport net_tls_transport = {
	.name = "tls",
	.proto_reason = NET_CLOSED_TLS,
	.handshake = tls_handshake,
	.read = tls_read,
	.pending = tls_pending,
	.writev = tls_writev,
	.shutdown = tls_shutdown,
	.close = tls_close,
};

/* ---- client side (outbound connections) ---------------------------------------------- */

/* TLS-PSK, client side: our identity and key, whatever the server's hint. */
static unsigned int tls_psk_client_cb(SSL *ssl, const char *hint, char *identity, unsigned int max_identity_len,
				      unsigned char *psk, unsigned int max_psk_len)
{
	(void)hint;
	const struct net_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	if (!t || !t->client_psk_identity || strlen(t->client_psk_identity) + 1 > max_identity_len ||
	    t->client_psk_len > max_psk_len)
		return 0;
	strcpy(identity, t->client_psk_identity);
	memcpy(psk, t->client_psk, t->client_psk_len);
	return t->client_psk_len;
}

/* Hex digits to bytes: the length, or -1 (odd length, not hex, too long). */
static int psk_from_hex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex);
	if (n == 0 || n % 2 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (!isxdigit((unsigned char)hex[2 * i]) || !isxdigit((unsigned char)hex[2 * i + 1]) ||
		    sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return (int)(n / 2);
}

struct net_tls *net_tls_client_new(const struct net_tls_client_opts *o, char *err, size_t errlen)
{
	int v;
	if (tls_min_version(o->tls_version, &v) < 0) {
		if (err && errlen)
			snprintf(err, errlen, "unsupported tls_version \"%s\"", o->tls_version);
		return NULL;
	}
	struct net_tls *t = calloc(1, sizeof *t);
	ERR_clear_error();
	SSL_CTX *ctx = t ? SSL_CTX_new(TLS_client_method()) : NULL;
	if (!ctx) {
		tls_err(err, errlen, "SSL_CTX_new failed", NULL);
		free(t);
		return NULL;
	}
	t->ctx = ctx;
	t->client_insecure = o->insecure;
	SSL_CTX_set_app_data(ctx, t);
	if (o->psk_hex) {
		int n = psk_from_hex(o->psk_hex, t->client_psk, sizeof(t->client_psk));
		if (n < 0 || !o->psk_identity) {
			if (err && errlen)
				snprintf(err, errlen, n < 0 ? "the PSK is not an even number of hex digits (at most 512)"
							    : "a PSK needs an identity");
			goto fail;
		}
		t->client_psk_len = (unsigned)n;
		if (!(t->client_psk_identity = strdup(o->psk_identity))) {
			if (err && errlen)
				snprintf(err, errlen, "out of memory");
			goto fail;
		}
		SSL_CTX_set_psk_client_callback(ctx, tls_psk_client_cb);
		/* compat: as libmosquitto, the TLS <= 1.2 suites are the PSK ones */
		if (SSL_CTX_set_cipher_list(ctx, "PSK") != 1) {
			tls_err(err, errlen, "cannot select the PSK cipher suites", NULL);
			goto fail;
		}
	}
	/* compat: as libmosquitto 2.0, a given version is the only one offered. */
	SSL_CTX_set_min_proto_version(ctx, v);
	if (o->tls_version)
		SSL_CTX_set_max_proto_version(ctx, v);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (o->require_ocsp && net_tls_ocsp_require(ctx) < 0) {
		tls_err(err, errlen, "cannot ask for OCSP stapling", NULL);
		goto fail;
	}
	if ((o->cafile || o->capath) && SSL_CTX_load_verify_locations(ctx, o->cafile, o->capath) != 1) {
		tls_err(err, errlen, "cannot load CA", o->cafile ? o->cafile : o->capath);
		goto fail;
	}
	if (o->certfile && SSL_CTX_use_certificate_chain_file(ctx, o->certfile) != 1) {
		tls_err(err, errlen, "cannot load certificate", o->certfile);
		goto fail;
	}
	if (o->keyfile && (SSL_CTX_use_PrivateKey_file(ctx, o->keyfile, SSL_FILETYPE_PEM) != 1 ||
			   SSL_CTX_check_private_key(ctx) != 1)) {
		tls_err(err, errlen, "cannot load key", o->keyfile);
		goto fail;
	}
	if (o->alpn) {
		size_t n = strlen(o->alpn);
		unsigned char wire[256];
		if (n == 0 || n > 255) {
			if (err && errlen)
				snprintf(err, errlen, "invalid ALPN \"%s\"", o->alpn);
			goto fail;
		}
		wire[0] = (unsigned char)n;
		memcpy(wire + 1, o->alpn, n);
		if (SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)n + 1) != 0) {
			tls_err(err, errlen, "cannot set ALPN", o->alpn);
			goto fail;
		}
	}
	return t;
fail:
	net_tls_free(t);
	return NULL;
}

int net_tls_attach_client(struct net_tls *t, struct net_conn *c, const char *host)
{
	struct tls_conn *tc = calloc(1, sizeof *tc);
	if (!tc)
		return -ENOMEM;
	tc->ssl = SSL_new(t->ctx);
	if (!tc->ssl || SSL_set_fd(tc->ssl, c->fd) != 1)
		goto fail;
	unsigned char ip[16];
	bool literal = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
	if (!literal && SSL_set_tlsext_host_name(tc->ssl, host) != 1)
		goto fail;
	if (!t->client_insecure) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(tc->ssl);
		if (literal ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1 : SSL_set1_host(tc->ssl, host) != 1)
			goto fail;
	}
	SSL_set_app_data(tc->ssl, tc);
	SSL_set_connect_state(tc->ssl);
	c->tp = &net_tls_transport;
	c->tp_state = tc;
	c->tp_want = NET_WRITE;
	c->flags &= ~NET_CF_READY;
	return 0;
fail:
	SSL_free(tc->ssl);
	free(tc);
	ERR_clear_error();
	return -ENOMEM;
}
