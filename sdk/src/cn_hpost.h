/* cn_hpost: one HTTP/1.1 POST over an lws client connection: a few headers
 * and a body out, the status of the answer back (its body is read and
 * dropped). The hub's webhook deliveries and the app-server's callbacks
 * both send exactly this, and both need the same care with lws's client
 * lifecycle (a failure reported inside lws_client_connect_via_info(), a
 * close after the status but before the end of the answer), kept here once.
 *
 * Use: register cn_hpost_callback under a protocol name on the vhost the
 * posts go out of (no per-session data), then cn_hpost_start() per POST.
 * Everything runs on the lws service thread. */
#ifndef CN_HPOST_H
#define CN_HPOST_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cn_hpost cn_hpost_t;

/* How a started POST ended; called exactly once, unless cancelled first,
 * and never from inside cn_hpost_start(). status is the answer's HTTP
 * status, 0 when none arrived; error is NULL when an answer arrived (the
 * caller judges its status), otherwise one line saying what failed. The
 * cn_hpost_t is gone once this returns. */
typedef void (*cn_hpost_done_fn)(void *user, int status, const char *error);

typedef struct cn_hpost_opts {
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    const char *protocol; /* the name cn_hpost_callback is registered under */
    const char *address;  /* what is connected to: an address or a name */
    uint16_t port;
    const char *path;
    const char *host; /* the Host header (and Origin) */
    bool tls;         /* verified by the vhost's client TLS context */
    /* Extra headers as pairs "name:", "value", ending with NULL; borrowed
     * for the call only (copied). Content-Length is added here. */
    const char *const *headers;
    const void *body; /* copied */
    size_t body_len;
    unsigned timeout_s; /* the whole exchange; 0 for lws's defaults only */
    cn_hpost_done_fn done;
    void *user;
} cn_hpost_opts_t;

/* Starts a POST. 0 with *out set (the handle is only for
 * cn_hpost_cancel(); the module owns and frees it), or a negative CN_E*
 * code with one line in err when it could not start (done is then never
 * called). */
int cn_hpost_start(const cn_hpost_opts_t *o, cn_hpost_t **out, char *err, size_t errlen);

/* Abandons a POST whose done has not been called: done never will be, and
 * the connection is closed soon after. */
void cn_hpost_cancel(cn_hpost_t *p);

/* The lws protocol callback for the protocol named in the options. */
int cn_hpost_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len);

#endif
