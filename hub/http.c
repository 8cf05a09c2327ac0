/* The hub's HTTP layer on lws (see http.h).
 *
 * Life of a request on one connection (HTTP/1.1 keep-alive reuses the
 * session): LWS_CALLBACK_HTTP collects method, path, query and headers and
 * decides about the body; LWS_CALLBACK_HTTP_BODY accumulates it (bounded);
 * once the request is complete the handler runs and the answer is written
 * at once, headers and body in one lws_write, and the transaction is
 * completed (as lws's own lws_return_http_status does for HTTP/1.1). lws
 * keeps whatever the socket does not take and ends the transaction only
 * once it has gone. Answering later, from WRITEABLE, would let lws parse a
 * pipelined next request into the header table of the one being answered,
 * and rx flow control cannot hold it back: lws 4.1 delivers no WRITEABLE to
 * a flow-controlled h1 connection. */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>
#include <sodium.h>

#include "cn_buf.h"
#include "cn_err.h"
#include "cn_log.h"
#include "router.h"

#define HEADER_BUF_SIZE 2048

enum phase {
    PH_IDLE = 0, /* between requests */
    PH_BODY,     /* reading a body we will use */
    PH_DISCARD,  /* reading a too-large body we will answer 413 to */
    PH_CLOSING,  /* answer sent; close once lws has flushed it */
};

typedef struct http_session {
    enum phase phase;
    hub_http_req_t req;
    char *path;
    char *query_mem;
    char *authorization;
    size_t authorization_len;
    char peer[64];
    cn_buf_t body;
    time_t started;
    bool head_only;
    hub_http_resp_t resp;
} http_session_t;

/* ---- responses ---------------------------------------------------------- */

void hub_resp_clear(hub_http_resp_t *resp)
{
    if (!resp)
        return;
    if (resp->body) {
        sodium_memzero(resp->body, resp->body_len);
        free(resp->body);
    }
    memset(resp, 0, sizeof(*resp));
    resp->ratelimit_limit = -1;
    resp->ratelimit_remaining = -1;
}

static void resp_set_500(hub_http_resp_t *resp)
{
    static const char text[] = "{\"errors\":[{\"param\":\"\",\"details\":\"internal error\"}]}";
    if (resp->body) {
        sodium_memzero(resp->body, resp->body_len);
        free(resp->body);
    }
    resp->status = 500;
    resp->content_type = NULL;
    resp->body = strdup(text);
    resp->body_len = resp->body ? sizeof(text) - 1 : 0;
}

int hub_resp_json(hub_http_resp_t *resp, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(body);
    if (!text) {
        resp_set_500(resp);
        return CN_ENOMEM;
    }
    if (resp->body) {
        sodium_memzero(resp->body, resp->body_len);
        free(resp->body);
    }
    resp->status = status;
    resp->body = text;
    resp->body_len = strlen(text);
    resp->content_type = NULL;
    return 0;
}

int hub_resp_text(hub_http_resp_t *resp, int status, char *text, size_t len,
                  const char *content_type)
{
    if (!text) {
        resp_set_500(resp);
        return CN_EINVAL;
    }
    if (resp->body) {
        sodium_memzero(resp->body, resp->body_len);
        free(resp->body);
    }
    resp->status = status;
    resp->body = text;
    resp->body_len = len;
    resp->content_type = content_type;
    return 0;
}

void hub_errors_add(json_t **errors, const char *param, const char *details)
{
    if (!*errors)
        *errors = json_array();
    if (!*errors)
        return;
    json_t *e =
        json_pack("{s:s,s:s}", "param", param ? param : "", "details", details ? details : "");
    /* json_pack refuses invalid UTF-8; never let that empty the list. */
    if (!e)
        e = json_pack("{s:s,s:s}", "param", "", "details", "invalid input");
    json_array_append_new(*errors, e);
}

int hub_resp_errors(hub_http_resp_t *resp, int status, json_t *errors)
{
    if (!errors) {
        resp_set_500(resp);
        return CN_ENOMEM;
    }
    return hub_resp_json(resp, status, json_pack("{s:o}", "errors", errors));
}

int hub_resp_error(hub_http_resp_t *resp, int status, const char *param, const char *details)
{
    json_t *errors = NULL;
    hub_errors_add(&errors, param, details);
    return hub_resp_errors(resp, status, errors);
}

const char *hub_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status >= 500 ? "Error" : "Status";
    }
}

/* ---- sessions ----------------------------------------------------------- */

static void wipe_free(void *p, size_t n)
{
    if (!p)
        return;
    sodium_memzero(p, n);
    free(p);
}

/* Releases everything a request holds; the session can take the next one. */
static void session_reset(http_session_t *s)
{
    free(s->path);
    free(s->query_mem);
    wipe_free(s->authorization, s->authorization_len);
    if (s->body.mem)
        sodium_memzero(s->body.mem, s->body.cap);
    cn_buf_free(&s->body);
    hub_resp_clear(&s->resp);
    memset(s, 0, sizeof(*s));
    s->resp.ratelimit_limit = -1;
    s->resp.ratelimit_remaining = -1;
}

static unsigned request_method(struct lws *wsi)
{
    static const struct {
        enum lws_token_indexes token;
        unsigned method;
    } methods[] = {
        {WSI_TOKEN_GET_URI, HUB_GET},         {WSI_TOKEN_POST_URI, HUB_POST},
        {WSI_TOKEN_PUT_URI, HUB_PUT},         {WSI_TOKEN_PATCH_URI, HUB_PATCH},
        {WSI_TOKEN_DELETE_URI, HUB_DELETE},   {WSI_TOKEN_HEAD_URI, HUB_HEAD},
        {WSI_TOKEN_OPTIONS_URI, HUB_OPTIONS},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (lws_hdr_total_length(wsi, methods[i].token) > 0)
            return methods[i].method;
    return 0;
}

/* Copies a whole header into a fresh NUL-terminated string; NULL when
 * absent. *len gets its length. */
static char *header_dup(struct lws *wsi, enum lws_token_indexes token, size_t *len, int *err)
{
    *err = 0;
    int n = lws_hdr_total_length(wsi, token);
    if (n <= 0)
        return NULL;
    char *p = malloc((size_t)n + 1);
    if (!p) {
        *err = CN_ENOMEM;
        return NULL;
    }
    if (lws_hdr_copy(wsi, p, n + 1, token) < 0) {
        free(p);
        *err = CN_EINVAL;
        return NULL;
    }
    if (len)
        *len = (size_t)n;
    return p;
}

/* Splits the decoded query arguments ("k=v" fragments) into req.query. */
static int collect_query(struct lws *wsi, http_session_t *s)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if (total <= 0)
        return 0;
    /* Each fragment plus its NUL fits in total + fragments bytes. */
    size_t cap = (size_t)total * 2 + HUB_HTTP_MAX_QUERY + 2;
    s->query_mem = malloc(cap);
    if (!s->query_mem)
        return CN_ENOMEM;
    size_t used = 0;
    for (int idx = 0;; idx++) {
        if (used >= cap)
            return CN_ETOOBIG;
        int n = lws_hdr_copy_fragment(wsi, s->query_mem + used, (int)(cap - used),
                                      WSI_TOKEN_HTTP_URI_ARGS, idx);
        if (n < 0)
            break;
        if (n == 0)
            continue; /* "a=1&&b=2" */
        if (s->req.nquery >= HUB_HTTP_MAX_QUERY)
            return CN_ETOOBIG;
        char *frag = s->query_mem + used;
        char *eq = strchr(frag, '=');
        hub_http_query_arg_t *a = &s->req.query[s->req.nquery++];
        a->key = frag;
        if (eq) {
            *eq = '\0';
            a->value = eq + 1;
        } else {
            a->value = frag + n; /* "" */
        }
        used += (size_t)n + 1;
    }
    return 0;
}

/* Strict Content-Length: 1-18 digits, nothing else. */
static bool parse_content_length(const char *s, long long *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 18)
        return false;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* ---- answering ---------------------------------------------------------- */

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

static int add_headers(struct lws *wsi, const hub_http_resp_t *r, unsigned char **p,
                       unsigned char *end)
{
    char num[32];
    /* Our own status line: lws 4.1 leaves the reason phrase of 201, 204,
     * 422 and 429 empty. HTTP/1.1 only (the vhost's ALPN excludes h2). */
    char status_line[64];
    int sl = snprintf(status_line, sizeof(status_line), "HTTP/1.1 %d %s", r->status,
                      hub_http_reason(r->status));
    if (lws_add_http_header_by_name(wsi, NULL, (const unsigned char *)status_line, sl, p, end) ||
        add_header(wsi, "content-type:", r->content_type ? r->content_type : "application/json", p,
                   end) ||
        lws_add_http_header_content_length(wsi, (lws_filepos_t)r->body_len, p, end))
        return -1;
    if (add_header(wsi, "cache-control:", "no-store", p, end) ||
        add_header(wsi, "x-content-type-options:", "nosniff", p, end))
        return -1;
    if (r->allow[0] && add_header(wsi, "allow:", r->allow, p, end))
        return -1;
    if (r->retry_after) {
        snprintf(num, sizeof(num), "%u", r->retry_after);
        if (add_header(wsi, "retry-after:", num, p, end))
            return -1;
    }
    if (r->ratelimit_limit >= 0) {
        snprintf(num, sizeof(num), "%lld", r->ratelimit_limit);
        if (add_header(wsi, "x-ratelimit-limit:", num, p, end))
            return -1;
        snprintf(num, sizeof(num), "%lld", r->ratelimit_remaining < 0 ? 0 : r->ratelimit_remaining);
        if (add_header(wsi, "x-ratelimit-remaining:", num, p, end))
            return -1;
    }
    if (r->status == 401 &&
        add_header(wsi, "www-authenticate:", "Bearer realm=\"connect\"", p, end))
        return -1;
    if (r->close && add_header(wsi, "connection:", "close", p, end))
        return -1;
    return lws_finalize_http_header(wsi, p, end) ? -1 : 0;
}

/* Writes the whole answer and ends the transaction (or the connection).
 * Returns what the lws callback must return. */
static int respond(struct lws *wsi, http_session_t *s)
{
    hub_http_resp_t *r = &s->resp;
    if (!r->body || r->status < 100 || r->status > 599)
        resp_set_500(r);
    if (!r->body)
        return -1;
    size_t cap = LWS_PRE + HEADER_BUF_SIZE + r->body_len;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -1;
    unsigned char *start = buf + LWS_PRE, *p = start;
    if (add_headers(wsi, r, &p, buf + LWS_PRE + HEADER_BUF_SIZE - 1) < 0) {
        free(buf);
        return -1;
    }
    if (!s->head_only) {
        memcpy(p, r->body, r->body_len);
        p += r->body_len;
    }
    size_t n = (size_t)(p - start);
    /* lws reports the full length even when it buffered part of it. */
    int w = lws_write(wsi, start, n, LWS_WRITE_HTTP);
    wipe_free(buf, cap);
    bool close = r->close;
    session_reset(s);
    if (w < (int)n)
        return -1;
    if (close) {
        if (!lws_partial_buffered(wsi))
            return -1;
        /* WRITEABLE comes once lws has sent what it buffered. */
        s->phase = PH_CLOSING;
        lws_callback_on_writable(wsi);
        return 0;
    }
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int respond_error(struct lws *wsi, http_session_t *s, int status, const char *param,
                         const char *details, bool close)
{
    cn_log_info("http: %s request from %s -> %d (%s)", hub_method_name(s->req.method), s->peer,
                status, details);
    hub_resp_error(&s->resp, status, param, details);
    s->resp.close = close;
    return respond(wsi, s);
}

static void run_handler(const hub_http_config_t *cfg, http_session_t *s)
{
    s->req.path = s->path;
    s->req.authorization = s->authorization;
    s->req.body = cn_buf_data(&s->body);
    s->req.body_len = s->body.len;
    s->req.peer = s->peer;
    cfg->handler(cfg->ctx, &s->req, &s->resp);
}

/* ---- the request's head ------------------------------------------------- */

static int on_http(struct lws *wsi, const hub_http_config_t *cfg, http_session_t *s,
                   const char *uri)
{
    int err = 0;
    session_reset(s);
    s->started = time(NULL);
    s->req.method = request_method(wsi);
    s->head_only = s->req.method == HUB_HEAD;
    lws_get_peer_simple(wsi, s->peer, sizeof(s->peer) - 1);
    s->peer[sizeof(s->peer) - 1] = '\0';

    s->path = strdup(uri ? uri : "/");
    if (!s->path)
        return -1;
    err = collect_query(wsi, s);
    if (err == CN_ENOMEM)
        return -1;
    if (err)
        return respond_error(wsi, s, 400, "query", "too many or too long query arguments", false);
    s->authorization = header_dup(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, &s->authorization_len, &err);
    if (err == CN_ENOMEM)
        return -1;

    /* We take bodies with a Content-Length only: lws 4.1 does not decode
     * chunked request bodies, and without a length we cannot bound it. */
    bool body_method = s->req.method & (HUB_POST | HUB_PUT | HUB_PATCH);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
        return respond_error(wsi, s, 411, "Content-Length",
                             "request bodies need a Content-Length (no chunked encoding)", true);
    long long clen = 0;
    bool has_clen = false;
    char clbuf[32];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        if (lws_hdr_copy(wsi, clbuf, sizeof(clbuf), WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0 ||
            !parse_content_length(clbuf, &clen))
            return respond_error(wsi, s, 400, "Content-Length", "invalid Content-Length", true);
        has_clen = true;
    }
    if (body_method && !has_clen) {
        /* No length and no chunking means no body (RFC 9112 6.3), but lws
         * waits for one: answer now and close, so nothing that follows can
         * be mistaken for a body or a next request. */
        run_handler(cfg, s);
        s->resp.close = true;
        return respond(wsi, s);
    }
    bool expect_continue = false;
    char expect[32];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_EXPECT) > 0 &&
        lws_hdr_copy(wsi, expect, sizeof(expect), WSI_TOKEN_HTTP_EXPECT) > 0)
        expect_continue = !strcasecmp(expect, "100-continue");

    if (clen > HUB_HTTP_MAX_BODY) {
        /* A client that waits for "100 Continue" has not sent the body: say
         * no now. So for bodies too big to be worth reading. */
        if (expect_continue || clen > HUB_HTTP_DISCARD_MAX)
            return respond_error(wsi, s, 413, "body", "request body is larger than 65536 bytes",
                                 true);
        s->phase = PH_DISCARD;
        return 0;
    }
    if (clen > 0) {
        cn_buf_init(&s->body, HUB_HTTP_MAX_BODY, 0);
        s->phase = PH_BODY;
        if (expect_continue) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            unsigned char buf[LWS_PRE + sizeof(cont)];
            memcpy(buf + LWS_PRE, cont, sizeof(cont) - 1);
            if (lws_write(wsi, buf + LWS_PRE, sizeof(cont) - 1, LWS_WRITE_HTTP_HEADERS) < 0)
                return -1;
        }
        return 0;
    }
    /* lws itself reports an explicitly empty POST body as BODY +
     * BODY_COMPLETION right after this callback: answer there. */
    if (s->req.method == HUB_POST && has_clen) {
        s->phase = PH_BODY;
        return 0;
    }
    run_handler(cfg, s);
    return respond(wsi, s);
}

static int on_body(http_session_t *s, const void *in, size_t len)
{
    if (s->phase != PH_BODY && s->phase != PH_DISCARD)
        return 0; /* answered already (closing): ignore the rest */
    if (time(NULL) - s->started > HUB_HTTP_REQUEST_DEADLINE_S) {
        cn_log_warn("http: request from %s took too long, closing", s->peer);
        return -1;
    }
    if (s->phase == PH_DISCARD)
        return 0;
    if (len && cn_buf_append(&s->body, in, len) < 0)
        s->phase = PH_DISCARD; /* cannot happen with an honest length; be safe */
    return 0;
}

static int on_body_done(struct lws *wsi, const hub_http_config_t *cfg, http_session_t *s)
{
    if (s->phase == PH_DISCARD)
        return respond_error(wsi, s, 413, "body", "request body is larger than 65536 bytes", false);
    if (s->phase != PH_BODY)
        return 0;
    run_handler(cfg, s);
    return respond(wsi, s);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    http_session_t *s = user;
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    const hub_http_config_t *cfg = proto ? proto->user : NULL;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (!s || !cfg)
            return -1;
        return on_http(wsi, cfg, s, in);
    case LWS_CALLBACK_HTTP_BODY:
        if (!s)
            return -1;
        return on_body(s, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!s || !cfg)
            return -1;
        return on_body_done(wsi, cfg, s);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        /* Only a closing answer asks for this; anything else is spurious. */
        return s && s->phase == PH_CLOSING ? -1 : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (s)
            session_reset(s);
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* A WebSocket upgrade that matched no WebSocket protocol. */
        return 1;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

void hub_http_protocol(struct lws_protocols *out, const hub_http_config_t *cfg)
{
    memset(out, 0, sizeof(*out));
    out->name = "http";
    out->callback = callback;
    out->per_session_data_size = sizeof(http_session_t);
    out->user = (void *)(uintptr_t)cfg;
}
