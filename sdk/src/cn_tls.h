/* cn_tls: the transport rules both hub clients share (the REST client,
 * cn_api, and the agent link, cn_link): which hub URLs may be used without
 * TLS, how a client lws context verifies the hub, and one line for each way
 * a TLS connection fails.
 *
 * Verification is lws's (OpenSSL): the chain against the system CA store,
 * or only against a CA file when one is given, and the host name (or IP
 * address) of the hub URL against the certificate; never self-signed or
 * expired certificates, never a skipped name check. */
#ifndef CN_TLS_H
#define CN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lws;
struct lws_context_creation_info;

/* True for a host that never leaves this machine: 127.0.0.0/8, ::1
 * (also as ::ffff:127.x.y.z) and the name "localhost" (any case). An
 * IPv6 literal is given bare, without brackets. */
bool cn_tls_host_is_loopback(const char *host);

/* The plain-HTTP rule: an http:// hub is allowed only on a loopback host,
 * unless allow_insecure. 0, or CN_EREFUSED with one line in err saying why
 * and what to do. https:// is always allowed. */
int cn_tls_check_scheme(bool tls, const char *host, bool allow_insecure, char *err, size_t errlen);

/* Sets up a client context creation info for verified TLS: global TLS
 * init, and with ca_file (borrowed; it must outlive the context creation)
 * that file as the only trust anchor (the system store is not loaded);
 * without it the system store. */
void cn_tls_client_context(struct lws_context_creation_info *info, const char *ca_file);

/* How a TLS connection failed. */
typedef enum cn_tls_failure {
    CN_TLS_OK = 0,          /* no certificate problem was recorded */
    CN_TLS_UNTRUSTED,       /* the chain does not end at a trusted CA */
    CN_TLS_NAME_MISMATCH,   /* the certificate is for another name or address */
    CN_TLS_EXPIRED,         /* the certificate (or one in its chain) has expired */
    CN_TLS_BAD_CERTIFICATE, /* any other verification failure */
    CN_TLS_HANDSHAKE,       /* no certificate problem: the TLS handshake itself failed */
} cn_tls_failure_t;

/* Classifies an OpenSSL X509_V_* verify result. */
cn_tls_failure_t cn_tls_classify(long verify_result);

/* Classifies the failure of a client connection whose TLS handshake did not
 * complete: call it from LWS_CALLBACK_CLIENT_CONNECTION_ERROR, while lws
 * still holds the connection's TLS state. Writes one line into out (about
 * the hub at `host`, as given in its URL): which check failed and what to
 * do. CN_TLS_OK (and "" in out) when TLS never started, i.e. the TCP
 * connection failed: the caller's own words apply then. */
cn_tls_failure_t cn_tls_describe(struct lws *wsi, const char *host, char *out, size_t outlen);

/* The line cn_tls_describe() writes for a class; `detail` (optional) is
 * the library's own words for CN_TLS_BAD_CERTIFICATE. */
void cn_tls_failure_line(cn_tls_failure_t f, const char *host, const char *detail, char *out,
                         size_t outlen);

/* ---- a TLS client session over memory buffers, for the agent link ----
 *
 * lws 4.1.6 cannot put TLS under a RAW client connection (it starts the
 * TLS handshake on the socket before connecting it: lws-notes.md), so the
 * link runs TLS itself: ciphertext in from the socket (cn_tls_feed),
 * plaintext out (cn_tls_read); plaintext in (cn_tls_write), ciphertext out
 * to the socket (cn_tls_take). No I/O, no lws. */

typedef struct cn_tls_ctx cn_tls_ctx_t;
typedef struct cn_tls cn_tls_t;

/* A client trust configuration: TLS 1.2 or later, peer verification on,
 * the CA file only when given (else the system store). NULL with one line
 * in err when the file cannot be loaded. */
cn_tls_ctx_t *cn_tls_ctx_new(const char *ca_file, char *err, size_t errlen);
void cn_tls_ctx_free(cn_tls_ctx_t *ctx);

/* A session to `host` (the hub URL's host: a DNS name, checked against the
 * certificate's names and sent as SNI; or an IP literal, checked against
 * its addresses). The handshake starts at once: take its first bytes with
 * cn_tls_take(). ctx must outlive the session. NULL when out of memory. */
cn_tls_t *cn_tls_new(cn_tls_ctx_t *ctx, const char *host);
void cn_tls_free(cn_tls_t *t);

/* Ciphertext received from the hub. 0 or CN_ENOMEM. */
int cn_tls_feed(cn_tls_t *t, const uint8_t *in, size_t len);
/* Advances the handshake, then decrypts: up to cap plaintext bytes into
 * out. Returns the byte count (0: nothing more until more is fed), or
 * CN_EAUTH when the handshake or a record failed (cn_tls_failure() says
 * how), or CN_ECLOSED when the hub closed the TLS session. */
int cn_tls_read(cn_tls_t *t, uint8_t *out, size_t cap);
/* True once the handshake completed (and the certificate was verified). */
bool cn_tls_ready(const cn_tls_t *t);
/* Encrypts len plaintext bytes (only once ready). 0 or CN_ESTATE/CN_EAUTH. */
int cn_tls_write(cn_tls_t *t, const uint8_t *in, size_t len);
/* Ciphertext waiting to go to the hub. */
size_t cn_tls_pending(const cn_tls_t *t);
/* Moves up to cap bytes of it into out; returns the count. */
size_t cn_tls_take(cn_tls_t *t, uint8_t *out, size_t cap);
/* After CN_EAUTH: the class and its line (see cn_tls_failure_line). */
cn_tls_failure_t cn_tls_failure(const cn_tls_t *t, char *out, size_t outlen);

#endif
