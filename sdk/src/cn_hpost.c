/* cn_hpost: one HTTP/1.1 POST over an lws client connection (cn_hpost.h). */
#include "cn_hpost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_err.h"
#include "cn_time.h"

#define HEADERS_MAX 8

struct cn_hpost {
    cn_hpost_done_fn done; /* NULL once called or cancelled */
    void *user;
    struct lws *wsi;
    bool starting;        /* inside lws_client_connect_via_info() */
    bool failed_starting; /* ... and lws reported the failure there */
    bool body_sent;
    int status;
    uint64_t started_ms; /* monotonic */
    size_t nheaders;
    char *headers[HEADERS_MAX * 2];
    unsigned char *buf; /* LWS_PRE + body */
    size_t body_len;
};

static void hpost_free(cn_hpost_t *p)
{
    for (size_t i = 0; i < p->nheaders * 2; i++)
        free(p->headers[i]);
    free(p->buf);
    free(p);
}

static void finish(cn_hpost_t *p, const char *error)
{
    cn_hpost_done_fn done = p->done;
    p->done = NULL;
    if (done)
        done(p->user, p->status, error);
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **pos,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), pos, end);
}

static int append_headers(struct lws *wsi, cn_hpost_t *p, unsigned char **pos, unsigned char *end)
{
    char num[32];
    snprintf(num, sizeof(num), "%zu", p->body_len);
    if (add_header(wsi, "content-length:", num, pos, end))
        return -1;
    for (size_t i = 0; i < p->nheaders; i++)
        if (add_header(wsi, p->headers[2 * i], p->headers[2 * i + 1], pos, end))
            return -1;
    lws_client_http_body_pending(wsi, 1);
    lws_callback_on_writable(wsi);
    return 0;
}

int cn_hpost_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    cn_hpost_t *p = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (!p || !p->done)
            return -1;
        return append_headers(wsi, p, (unsigned char **)in, *(unsigned char **)in + len);
    case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
        if (!p || !p->done || p->body_sent)
            return 0;
        p->body_sent = true;
        lws_client_http_body_pending(wsi, 0);
        if (lws_write(wsi, p->buf + LWS_PRE, p->body_len, LWS_WRITE_HTTP_FINAL) < (int)p->body_len)
            return -1;
        return 0;
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        if (p)
            p->status = (int)lws_http_client_http_response(wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
        /* The answer's body is read and dropped. */
        char buf[LWS_PRE + 1024];
        char *d = buf + LWS_PRE;
        int n = (int)sizeof(buf) - LWS_PRE;
        return lws_http_client_read(wsi, &d, &n) < 0 ? -1 : 0;
    }
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        if (p && p->done)
            finish(p, NULL);
        /* One request per connection: let it go. */
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP: {
        if (!p)
            return 0;
        lws_set_wsi_user(wsi, NULL); /* one of the two ends it */
        p->wsi = NULL;
        if (p->starting) {
            /* cn_hpost_start() reports it and frees p. */
            p->failed_starting = true;
            return 0;
        }
        if (p->done) {
            char why[160];
            if (reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR)
                snprintf(why, sizeof(why), "%.150s",
                         in && len ? (const char *)in : "could not connect");
            else /* lws's timeouts end here too: say how long it waited */
                snprintf(why, sizeof(why), "connection closed before an answer, after %.1f s",
                         (double)(cn_time_mono_ms() - p->started_ms) / 1000.0);
            /* An answer's status and then a close without a length is an
             * answer. */
            finish(p, p->status && reason == LWS_CALLBACK_CLOSED_CLIENT_HTTP ? NULL : why);
        }
        hpost_free(p);
        return 0;
    }
    default:
        break;
    }
    return 0;
}

int cn_hpost_start(const cn_hpost_opts_t *o, cn_hpost_t **out, char *err, size_t errlen)
{
    *out = NULL;
    cn_hpost_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->buf = malloc(LWS_PRE + o->body_len + 1)))
        goto oom;
    for (const char *const *h = o->headers; h && h[0] && h[1]; h += 2) {
        if (p->nheaders == HEADERS_MAX) {
            hpost_free(p);
            snprintf(err, errlen, "too many headers");
            return CN_EINVAL;
        }
        size_t i = p->nheaders * 2;
        if (!(p->headers[i] = strdup(h[0])) || !(p->headers[i + 1] = strdup(h[1]))) {
            p->nheaders++; /* both slots are freed */
            goto oom;
        }
        p->nheaders++;
    }
    if (o->body_len)
        memcpy(p->buf + LWS_PRE, o->body, o->body_len);
    p->body_len = o->body_len;
    p->done = o->done;
    p->user = o->user;

    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = o->ctx;
    ci.vhost = o->vhost;
    ci.address = o->address;
    ci.port = o->port;
    ci.path = o->path;
    ci.host = o->host;
    ci.method = "POST";
    ci.protocol = o->protocol;
    ci.alpn = "http/1.1";
    ci.ssl_connection = o->tls ? LCCSCF_USE_SSL : 0;
    ci.userdata = p;
    ci.pwsi = &p->wsi;
    p->started_ms = cn_time_mono_ms();
    p->starting = true;
    struct lws *wsi = lws_client_connect_via_info(&ci);
    p->starting = false;
    if (!wsi || p->failed_starting) {
        /* Failed inside the call, reported there or not (lws 4.1 may
         * return NULL without CONNECTION_ERROR). */
        if (wsi)
            lws_set_wsi_user(wsi, NULL);
        hpost_free(p);
        snprintf(err, errlen, "could not start the connection");
        return CN_EIO;
    }
    if (o->timeout_s)
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, (int)o->timeout_s);
    *out = p;
    return 0;
oom:
    if (p)
        hpost_free(p);
    snprintf(err, errlen, "out of memory");
    return CN_ENOMEM;
}

void cn_hpost_cancel(cn_hpost_t *p)
{
    if (!p)
        return;
    p->done = NULL;
    if (p->wsi)
        lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}
