/*
 * net/tls_ocsp.c — OCSP stapling required by a TLS client (mosquitto's
 * bridge_require_ocsp): the client asks for the server's certificate
 * status in the handshake, and the handshake fails unless the server
 * staples an OCSP response that is well formed, successful, signed by a
 * responder the client's CA store vouches for (the issuing CA itself, or a
 * responder certificate it delegated), current (thisUpdate/nextUpdate,
 * 5 minutes of clock skew allowed), and says "good" for exactly the
 * certificate the server presented.
 *
 * Deliberately not here: fetching a response from the responder's URL
 * ourselves when none is stapled (that is a blocking HTTP request to a
 * third party in the middle of a handshake; mosquitto does not do it
 * either), CRLs (cafile/capath), server-side stapling.
 * Invariant: any doubt fails closed (callback returns 0); OpenSSL's error
 * queue is left empty.
 */
#include "net_internal.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define OCSP_SKEW_S 300L

/* The issuer of cert: from the chain the server sent, else from the store. */
static X509 *issuer_of(SSL *ssl, X509 *cert)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	for (int i = 0; chain && i < sk_X509_num(chain); i++) {
		X509 *c = sk_X509_value(chain, i);
		if (X509_check_issued(c, cert) == X509_V_OK) {
			X509_up_ref(c);
			return c;
		}
	}
	X509_STORE *store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
	X509_STORE_CTX *sc = X509_STORE_CTX_new();
	X509 *issuer = NULL;
	if (sc && X509_STORE_CTX_init(sc, store, cert, NULL) == 1 && X509_STORE_CTX_get1_issuer(&issuer, sc, cert) != 1)
		issuer = NULL;
	X509_STORE_CTX_free(sc);
	return issuer;
}

static int status_cb(SSL *ssl, void *arg)
{
	(void)arg;
	const unsigned char *p = NULL;
	long len = SSL_get_tlsext_status_ocsp_resp(ssl, &p);
	int ok = 0;
	OCSP_RESPONSE *rsp = NULL;
	OCSP_BASICRESP *basic = NULL;
	OCSP_CERTID *id = NULL;
	X509 *cert = SSL_get1_peer_certificate(ssl), *issuer = NULL;
	if (len <= 0 || !p || !cert)
		goto done; /* nothing stapled */
	if (!(rsp = d2i_OCSP_RESPONSE(NULL, &p, len)) ||
	    OCSP_response_status(rsp) != OCSP_RESPONSE_STATUS_SUCCESSFUL || !(basic = OCSP_response_get1_basic(rsp)))
		goto done;
	if (OCSP_basic_verify(basic, SSL_get_peer_cert_chain(ssl), SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)), 0) <= 0)
		goto done;
	if (!(issuer = issuer_of(ssl, cert)) || !(id = OCSP_cert_to_id(NULL, cert, issuer)))
		goto done;
	int status = -1, reason = 0;
	ASN1_GENERALIZEDTIME *rev = NULL, *this_upd = NULL, *next_upd = NULL;
	if (OCSP_resp_find_status(basic, id, &status, &reason, &rev, &this_upd, &next_upd) != 1)
		goto done;
	if (OCSP_check_validity(this_upd, next_upd, OCSP_SKEW_S, -1) != 1)
		goto done;
	ok = status == V_OCSP_CERTSTATUS_GOOD;
done:
	OCSP_CERTID_free(id);
	OCSP_BASICRESP_free(basic);
	OCSP_RESPONSE_free(rsp);
	X509_free(issuer);
	X509_free(cert);
	ERR_clear_error();
	return ok;
}

int net_tls_ocsp_require(struct ssl_ctx_st *ctx)
{
	if (SSL_CTX_set_tlsext_status_type(ctx, TLSEXT_STATUSTYPE_ocsp) != 1)
		return -1;
	if (SSL_CTX_set_tlsext_status_cb(ctx, status_cb) != 1)
		return -1;
	return 0;
}
