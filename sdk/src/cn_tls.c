/* Transport rules for hub clients: loopback-only plain HTTP, verified TLS
 * contexts, and one line per TLS failure class (see cn_tls.h). */
#include "cn_tls.h"

#include "cn_err.h"
#include "cn_errmsg.h"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool cn_tls_host_is_loopback(const char *host)
{
    if (!host)
        return false;
    if (!strcasecmp(host, "localhost"))
        return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return false;
}

int cn_tls_check_scheme(bool tls, const char *host, bool allow_insecure, char *err, size_t errlen)
{
    if (tls || allow_insecure || cn_tls_host_is_loopback(host))
        return 0;
    return cn_errf(CN_EREFUSED, err, errlen,
                   "refusing plain http:// to %s: tokens and passwords would cross the network "
                   "in cleartext; use https:// (or --allow-insecure to accept that)",
                   host ? host : "?");
}

void cn_tls_client_context(struct lws_context_creation_info *info, const char *ca_file)
{
    info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    if (ca_file && *ca_file) {
        /* "--ca-file" means "this CA", as with curl --cacert: a private CA
         * should not widen trust to every public one, nor the reverse. */
        info->client_ssl_ca_filepath = ca_file;
        info->options |= LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
    }
}

cn_tls_failure_t cn_tls_classify(long v)
{
    switch (v) {
    case X509_V_OK:
        return CN_TLS_OK;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return CN_TLS_UNTRUSTED;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return CN_TLS_NAME_MISMATCH;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return CN_TLS_EXPIRED;
    default:
        return CN_TLS_BAD_CERTIFICATE;
    }
}

void cn_tls_failure_line(cn_tls_failure_t f, const char *host, const char *detail, char *out,
                         size_t outlen)
{
    if (!host)
        host = "?";
    switch (f) {
    case CN_TLS_UNTRUSTED:
        snprintf(out, outlen,
                 "TLS: the hub's certificate is not signed by a trusted CA (for a private CA, "
                 "give its certificate with --ca-file or CONNECT_CA_FILE)");
        break;
    case CN_TLS_NAME_MISMATCH:
        snprintf(out, outlen, "TLS: the hub's certificate is not valid for the name '%s'", host);
        break;
    case CN_TLS_EXPIRED:
        snprintf(out, outlen, "TLS: the hub's certificate has expired");
        break;
    case CN_TLS_BAD_CERTIFICATE:
        snprintf(out, outlen, "TLS: the hub's certificate was refused (%s)",
                 detail ? detail : "verification failed");
        break;
    case CN_TLS_HANDSHAKE:
    case CN_TLS_OK:
    default:
        snprintf(out, outlen,
                 "TLS: the handshake with %s failed (does the hub serve https on this port?)",
                 host);
        break;
    }
}

cn_tls_failure_t cn_tls_describe(struct lws *wsi, const char *host, char *out, size_t outlen)
{
    SSL *ssl = wsi ? lws_get_ssl(wsi) : NULL;
    if (!ssl) {
        /* TLS never started: the TCP connection itself failed. */
        if (outlen)
            out[0] = '\0';
        return CN_TLS_OK;
    }
    long v = SSL_get_verify_result(ssl);
    cn_tls_failure_t f = cn_tls_classify(v);
    if (f == CN_TLS_OK)
        f = CN_TLS_HANDSHAKE;
    cn_tls_failure_line(f, host, X509_verify_cert_error_string(v), out, outlen);
    return f;
}

/* ---- the session ------------------------------------------------------ */

struct cn_tls_ctx {
    SSL_CTX *ssl_ctx;
};

struct cn_tls {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    char host[256];
    bool ready;
    bool failed;
};

cn_tls_ctx_t *cn_tls_ctx_new(const char *ca_file, char *err, size_t errlen)
{
    cn_tls_ctx_t *c = calloc(1, sizeof(*c));
    if (!c) {
        cn_errf(CN_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ssl_ctx) {
        cn_errf(CN_ECRYPTO, err, errlen, "cannot set up TLS");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file && *ca_file ? SSL_CTX_load_verify_locations(c->ssl_ctx, ca_file, NULL)
                                 : SSL_CTX_set_default_verify_paths(c->ssl_ctx);
    ERR_clear_error();
    if (ok != 1) {
        if (ca_file && *ca_file)
            cn_errf(CN_EINVAL, err, errlen,
                    "cannot load the CA file %s (is it a PEM file of CA certificates?)", ca_file);
        else
            cn_errf(CN_ECRYPTO, err, errlen, "cannot load the system's CA certificates");
        goto fail;
    }
    return c;
fail:
    cn_tls_ctx_free(c);
    return NULL;
}

void cn_tls_ctx_free(cn_tls_ctx_t *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

cn_tls_t *cn_tls_new(cn_tls_ctx_t *ctx, const char *host)
{
    if (!ctx || !host || strlen(host) >= sizeof(((cn_tls_t *)0)->host))
        return NULL;
    cn_tls_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    snprintf(t->host, sizeof(t->host), "%s", host);
    t->ssl = SSL_new(ctx->ssl_ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        goto fail;
    }
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    /* The name check: an IP literal against the certificate's addresses,
     * a name against its DNS names (no partial wildcards), and SNI. */
    X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1) {
        if (X509_VERIFY_PARAM_set1_host(param, host, 0) != 1 ||
            SSL_set_tlsext_host_name(t->ssl, host) != 1)
            goto fail;
    }
    SSL_set_connect_state(t->ssl);
    /* Writes the ClientHello into wbio. */
    SSL_do_handshake(t->ssl);
    ERR_clear_error();
    return t;
fail:
    ERR_clear_error();
    cn_tls_free(t);
    return NULL;
}

void cn_tls_free(cn_tls_t *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t);
}

int cn_tls_feed(cn_tls_t *t, const uint8_t *in, size_t len)
{
    while (len) {
        int chunk = len > INT32_MAX ? INT32_MAX : (int)len;
        int n = BIO_write(t->rbio, in, chunk);
        if (n <= 0)
            return CN_ENOMEM;
        in += n;
        len -= (size_t)n;
    }
    return 0;
}

/* An SSL call returned n <= 0: 0 when it only needs more input, else the
 * code to return. */
static int ssl_outcome(cn_tls_t *t, int n)
{
    int e = SSL_get_error(t->ssl, n);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN)
        return CN_ECLOSED;
    t->failed = true;
    return CN_EAUTH;
}

int cn_tls_read(cn_tls_t *t, uint8_t *out, size_t cap)
{
    if (t->failed)
        return CN_EAUTH;
    if (!t->ready) {
        int n = SSL_do_handshake(t->ssl);
        if (n != 1)
            return ssl_outcome(t, n);
        t->ready = true;
    }
    if (!cap)
        return 0;
    int n = SSL_read(t->ssl, out, cap > INT32_MAX ? INT32_MAX : (int)cap);
    return n > 0 ? n : ssl_outcome(t, n);
}

bool cn_tls_ready(const cn_tls_t *t)
{
    return t && t->ready;
}

int cn_tls_write(cn_tls_t *t, const uint8_t *in, size_t len)
{
    if (!t->ready)
        return CN_ESTATE;
    while (len) {
        int chunk = len > INT32_MAX ? INT32_MAX : (int)len;
        /* A memory BIO never blocks: SSL_write takes it all or fails. */
        int n = SSL_write(t->ssl, in, chunk);
        if (n <= 0) {
            int rc = ssl_outcome(t, n);
            return rc ? rc : CN_EAUTH;
        }
        in += n;
        len -= (size_t)n;
    }
    return 0;
}

size_t cn_tls_pending(const cn_tls_t *t)
{
    return t ? BIO_ctrl_pending(t->wbio) : 0;
}

size_t cn_tls_take(cn_tls_t *t, uint8_t *out, size_t cap)
{
    size_t pending = BIO_ctrl_pending(t->wbio);
    size_t n = pending < cap ? pending : cap;
    if (n > INT32_MAX)
        n = INT32_MAX;
    int got = n ? BIO_read(t->wbio, out, (int)n) : 0;
    return got > 0 ? (size_t)got : 0;
}

cn_tls_failure_t cn_tls_failure(const cn_tls_t *t, char *out, size_t outlen)
{
    long v = SSL_get_verify_result(t->ssl);
    cn_tls_failure_t f = cn_tls_classify(v);
    if (f == CN_TLS_OK)
        f = CN_TLS_HANDSHAKE;
    cn_tls_failure_line(f, t->host, X509_verify_cert_error_string(v), out, outlen);
    return f;
}
