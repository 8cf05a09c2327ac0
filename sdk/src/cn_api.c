/* The hub REST client: one lws HTTP/1.1 client connection per call, in a
 * context that lives only as long as the call (see cn_api.h for why). */
#include "cn_api.h"

#include "cn_buf.h"
#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_time.h"
#include "cn_tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <libwebsockets.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define API_PROTOCOL "cn-api"
#define TICK_US (100 * LWS_US_PER_MS) /* how often a call checks its deadline and cancel flag */
#define WRITE_CHUNK (16u * 1024)      /* request body bytes per lws_write */
#define LWS_BUF (32u * 1024)

struct cn_api {
    char url[512];
    cn_api_url_t u;
    char host_header[CN_API_HOST_MAX + 16];
    char token[CN_API_TOKEN_MAX + 1];
    unsigned timeout_ms;
    cn_api_cancel_fn cancel;
    void *cancel_arg;
    char ca_file[PATH_MAX]; /* "" = the system CA store */
    bool allow_insecure;    /* http:// to a host that is not loopback */
};

/* One call in flight; lives on cn_api_call()'s stack. */
typedef struct api_req {
    cn_api_t *api;
    struct lws_context *context;
    lws_sorted_usec_list_t sul;
    uint64_t deadline_ms;
    cn_buf_t body; /* request body with LWS_PRE headroom */
    size_t body_off;
    cn_buf_t resp;
    int status;
    unsigned retry_after;
    int finished; /* the connection is done with, one way or another */
    int completed;
    int err; /* transport failure: CN_EIO, CN_EAUTH (TLS), CN_ETOOBIG, CN_ETIMEOUT, CN_ECLOSED */
    bool tls_failed; /* why is cn_tls's line about the hub's certificate or handshake */
    char why[256];
} api_req_t;

/* ---- URLs ------------------------------------------------------------- */

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

static bool path_char(char c)
{
    /* RFC 3986 pchar plus '/', minus what would end the path. */
    return isalnum((unsigned char)c) || strchr("-._~!$&'()*+,;=:@/%", c) != NULL;
}

int cn_api_parse_url(const char *url, cn_api_url_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!url || !*url) {
        return cn_errf(CN_EINVAL, err, errlen, "the hub URL is empty");
    }
    if (!strncasecmp(url, "https://", 8)) {
        out->tls = true;
    } else if (strncasecmp(url, "http://", 7) != 0) {
        return cn_errf(CN_EINVAL, err, errlen,
                       "the hub URL must look like https://HOST[:PORT] or http://HOST:PORT");
    }
    const char *p = url + (out->tls ? 8 : 7);
    const char *auth_end = p + strcspn(p, "/?#");
    if (*auth_end == '?' || *auth_end == '#' || strpbrk(auth_end, "?#")) {
        return cn_errf(CN_EINVAL, err, errlen, "the hub URL must not have a query or fragment");
    }
    if (memchr(p, '@', (size_t)(auth_end - p))) {
        return cn_errf(CN_EINVAL, err, errlen,
                       "the hub URL must not carry credentials (user@host)");
    }
    const char *host = p, *host_end;
    const char *port_at = NULL;
    if (*p == '[') {
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(auth_end - host));
        if (!host_end) {
            return cn_errf(CN_EINVAL, err, errlen,
                           "the hub URL has an unterminated [IPv6] address");
        }
        if (host_end + 1 < auth_end) {
            if (host_end[1] != ':') {
                return cn_errf(CN_EINVAL, err, errlen,
                               "the hub URL has junk after the [IPv6] address");
            }
            port_at = host_end + 2;
        }
        out->ipv6 = true;
        if (out->tls) {
            /* lws names the peer for the certificate check by cutting the
             * host at its first ':', which an IPv6 literal cannot survive. */
            return cn_errf(CN_EINVAL, err, errlen,
                           "an https hub URL needs a host name or IPv4 address, not an [IPv6] "
                           "literal (the certificate check cannot name it)");
        }
    } else {
        host_end = memchr(host, ':', (size_t)(auth_end - host));
        if (host_end)
            port_at = host_end + 1;
        else
            host_end = auth_end;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0) {
        return cn_errf(CN_EINVAL, err, errlen, "the hub URL has no host");
    }
    if (hlen > CN_API_HOST_MAX) {
        return cn_errf(CN_EINVAL, err, errlen, "the hub URL's host is too long");
    }
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    if (out->ipv6) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, out->host, &a6) != 1) {
            return cn_errf(CN_EINVAL, err, errlen, "the hub URL's [IPv6] address is not valid");
        }
    } else {
        for (size_t i = 0; i < hlen; i++) {
            if (!host_char(out->host[i])) {
                return cn_errf(CN_EINVAL, err, errlen,
                               "the hub URL's host has a character that is not allowed");
            }
        }
    }
    out->port = out->tls ? 443 : 80;
    if (port_at) {
        size_t plen = (size_t)(auth_end - port_at);
        long v = 0;
        if (plen == 0 || plen > 5) {
            return cn_errf(CN_EINVAL, err, errlen,
                           "the hub URL's port must be between 1 and 65535");
        }
        for (size_t i = 0; i < plen; i++) {
            if (!isdigit((unsigned char)port_at[i])) {
                return cn_errf(CN_EINVAL, err, errlen,
                               "the hub URL's port must be between 1 and 65535");
            }
            v = v * 10 + (port_at[i] - '0');
        }
        if (v < 1 || v > 65535) {
            return cn_errf(CN_EINVAL, err, errlen,
                           "the hub URL's port must be between 1 and 65535");
        }
        out->port = (int)v;
    }
    /* Base path: kept without its trailing slashes. */
    size_t blen = strlen(auth_end);
    while (blen && auth_end[blen - 1] == '/')
        blen--;
    if (blen >= sizeof(out->base)) {
        return cn_errf(CN_EINVAL, err, errlen, "the hub URL's path is too long");
    }
    for (size_t i = 0; i < blen; i++) {
        if (!path_char(auth_end[i])) {
            return cn_errf(CN_EINVAL, err, errlen,
                           "the hub URL's path has a character that is not allowed");
        }
    }
    memcpy(out->base, auth_end, blen);
    out->base[blen] = '\0';
    return 0;
}

int cn_api_escape(const char *in, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool plain = isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        size_t need = plain ? 1 : 3;
        if (o + need >= outlen) {
            if (outlen)
                out[0] = '\0';
            return CN_ETOOBIG;
        }
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    if (o >= outlen)
        return CN_ETOOBIG;
    out[o] = '\0';
    return 0;
}

/* ---- client ----------------------------------------------------------- */

cn_api_t *cn_api_new(const char *hub_url, const char *token, char *err, size_t errlen)
{
    cn_api_t *api = calloc(1, sizeof(*api));
    if (!api) {
        cn_errf(CN_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    if (!hub_url || strlen(hub_url) >= sizeof(api->url)) {
        cn_errf(CN_EINVAL, err, errlen, "the hub URL is too long");
        goto fail;
    }
    if (cn_api_parse_url(hub_url, &api->u, err, errlen) < 0)
        goto fail;
    snprintf(api->url, sizeof(api->url), "%s", hub_url);
    if (api->u.ipv6)
        snprintf(api->host_header, sizeof(api->host_header), "[%s]:%d", api->u.host, api->u.port);
    else
        snprintf(api->host_header, sizeof(api->host_header), "%s:%d", api->u.host, api->u.port);
    if (token) {
        size_t n = strlen(token);
        if (n > CN_API_TOKEN_MAX) {
            cn_errf(CN_EINVAL, err, errlen, "the API token is too long");
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            if (token[i] < 0x21 || token[i] > 0x7e) {
                cn_errf(CN_EINVAL, err, errlen,
                        "the API token has a character that is not allowed");
                goto fail;
            }
        }
        memcpy(api->token, token, n + 1);
    }
    api->timeout_ms = CN_API_DEFAULT_TIMEOUT_MS;
    return api;
fail:
    cn_api_free(api);
    return NULL;
}

void cn_api_free(cn_api_t *api)
{
    if (!api)
        return;
    sodium_memzero(api->token, sizeof(api->token));
    free(api);
}

void cn_api_set_timeout(cn_api_t *api, unsigned timeout_ms)
{
    api->timeout_ms = timeout_ms ? timeout_ms : CN_API_DEFAULT_TIMEOUT_MS;
}

void cn_api_set_cancel(cn_api_t *api, cn_api_cancel_fn fn, void *arg)
{
    api->cancel = fn;
    api->cancel_arg = arg;
}

const char *cn_api_url(const cn_api_t *api)
{
    return api->url;
}

int cn_api_set_ca_file(cn_api_t *api, const char *path, char *err, size_t errlen)
{
    if (!path || !*path) {
        api->ca_file[0] = '\0';
        return 0;
    }
    if (strlen(path) >= sizeof(api->ca_file))
        return cn_errf(CN_EINVAL, err, errlen, "the CA file path is too long");
    FILE *f = fopen(path, "r");
    if (!f)
        return cn_errf(CN_EINVAL, err, errlen, "cannot read the CA file %s", path);
    fclose(f);
    snprintf(api->ca_file, sizeof(api->ca_file), "%s", path);
    return 0;
}

void cn_api_set_allow_insecure(cn_api_t *api, bool allow)
{
    api->allow_insecure = allow;
}

/* ---- errors ----------------------------------------------------------- */

int cn_api_status_error(int status)
{
    if (status >= 200 && status < 300)
        return 0;
    switch (status) {
    case 400:
    case 422:
        return CN_EINVAL;
    case 401:
    case 403:
        return CN_EAUTH;
    case 404:
    case 410:
        return CN_ENOTFOUND;
    case 409:
        return CN_ESTATE;
    case 429:
        return CN_EAGAIN;
    default:
        return CN_EREFUSED;
    }
}

static const char *status_reason(int status)
{
    switch (status) {
    case 301:
    case 302:
    case 303:
    case 307:
    case 308:
        return "Redirect (not followed)";
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
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
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
        return "";
    }
}

/* Appends text to out at *o, turning control characters into spaces so the
 * line stays one line and carries no terminal escapes from the server. */
static void put_text(char *out, size_t outlen, size_t *o, const char *s)
{
    for (; *s && *o + 1 < outlen; s++) {
        unsigned char c = (unsigned char)*s;
        out[(*o)++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[*o] = '\0';
}

void cn_api_format_errors(int status, const struct json_t *response, unsigned retry_after,
                          char *out, size_t outlen)
{
    if (!out || !outlen)
        return;
    size_t o = 0;
    out[0] = '\0';
    json_t *errs = json_is_object(response) ? json_object_get(response, "errors") : NULL;
    int n = 0;
    if (json_is_array(errs)) {
        size_t i;
        json_t *e;
        json_array_foreach(errs, i, e)
        {
            const char *details = json_string_value(json_object_get(e, "details"));
            const char *param = json_string_value(json_object_get(e, "param"));
            if (!details || !*details)
                continue;
            if (n++)
                put_text(out, outlen, &o, "; ");
            if (param && *param) {
                put_text(out, outlen, &o, param);
                put_text(out, outlen, &o, ": ");
            }
            put_text(out, outlen, &o, details);
        }
    }
    if (!n) {
        char head[64];
        const char *reason = status_reason(status);
        snprintf(head, sizeof(head), "HTTP %d%s%s", status, *reason ? " " : "", reason);
        put_text(out, outlen, &o, head);
        const char *msg = NULL;
        if (json_is_object(response)) {
            msg = json_string_value(json_object_get(response, "message"));
            if (!msg)
                msg = json_string_value(json_object_get(response, "error"));
        }
        if (msg && *msg) {
            put_text(out, outlen, &o, ": ");
            put_text(out, outlen, &o, msg);
        }
    }
    if (retry_after) {
        char tail[48];
        snprintf(tail, sizeof(tail), " (retry in %u s)", retry_after);
        put_text(out, outlen, &o, tail);
    }
}

/* ---- the lws side ----------------------------------------------------- */

static void req_fail(api_req_t *r, int err, const char *why)
{
    if (!r->err) {
        r->err = err;
        snprintf(r->why, sizeof(r->why), "%s", why);
    }
}

static void tick(lws_sorted_usec_list_t *sul)
{
    api_req_t *r = lws_container_of(sul, api_req_t, sul);
    if (r->api->cancel && r->api->cancel(r->api->cancel_arg))
        req_fail(r, CN_ECLOSED, "interrupted");
    else if (cn_time_mono_ms() >= r->deadline_ms)
        req_fail(r, CN_ETIMEOUT, "timed out");
    /* Suls run at the start of a service round, before the poll: wake the
     * poll so the loop sees the failure now, not at lws's next timer. */
    if (r->err)
        lws_cancel_service(r->context);
    else
        lws_sul_schedule(r->context, 0, &r->sul, tick, TICK_US);
}

static int add_headers(api_req_t *r, struct lws *wsi, unsigned char **p, unsigned char *end)
{
    static const char json_type[] = "application/json";
    if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_ACCEPT, (const unsigned char *)json_type,
                                     (int)strlen(json_type), p, end))
        return -1;
    if (r->api->token[0]) {
        char auth[CN_API_TOKEN_MAX + 16];
        int n = snprintf(auth, sizeof(auth), "Bearer %s", r->api->token);
        int rc = lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                              (const unsigned char *)auth, n, p, end);
        sodium_memzero(auth, sizeof(auth));
        if (rc)
            return -1;
    }
    if (r->body.len) {
        char cl[24];
        int n = snprintf(cl, sizeof(cl), "%zu", r->body.len);
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                         (const unsigned char *)json_type, (int)strlen(json_type),
                                         p, end) ||
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
                                         (const unsigned char *)cl, n, p, end))
            return -1;
        lws_client_http_body_pending(wsi, 1);
        lws_callback_on_writable(wsi);
    }
    return 0;
}

static int write_body(api_req_t *r, struct lws *wsi)
{
    size_t left = r->body.len - r->body_off;
    if (!left)
        return 0;
    size_t n = left > WRITE_CHUNK ? WRITE_CHUNK : left;
    int last = n == left;
    /* The bytes before this chunk (LWS_PRE headroom, or the chunk already
     * sent) are ours to let lws scribble on. */
    uint8_t *at = cn_buf_data(&r->body) + r->body_off;
    if (lws_write(wsi, at, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n) {
        req_fail(r, CN_EIO, "could not send the request");
        return -1;
    }
    r->body_off += n;
    if (last)
        lws_client_http_body_pending(wsi, 0);
    else
        lws_callback_on_writable(wsi);
    return 0;
}

static int api_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    api_req_t *r = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        if (!r)
            return 0;
        char line[sizeof(r->why)];
        if (r->api->u.tls && !r->err &&
            cn_tls_describe(wsi, r->api->u.host, line, sizeof(line)) != CN_TLS_OK) {
            req_fail(r, CN_EAUTH, line);
            r->tls_failed = true;
        }
        req_fail(r, CN_EIO, in && len ? (const char *)in : "connection failed");
        r->finished = 1;
        lws_set_opaque_user_data(wsi, NULL);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (!r)
            return -1;
        if (add_headers(r, wsi, (unsigned char **)in,
                        (unsigned char *)(*(unsigned char **)in) + len)) {
            req_fail(r, CN_EIO, "request headers too large");
            return -1;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
        if (!r)
            return -1;
        return write_body(r, wsi);
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP: {
        if (!r)
            return -1;
        r->status = (int)lws_http_client_http_response(wsi);
        char v[32];
        if (lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP_RETRY_AFTER) > 0) {
            char *e = NULL;
            unsigned long s = strtoul(v, &e, 10);
            if (e != v && *e == '\0' && s <= 86400)
                r->retry_after = (unsigned)s;
        }
        if (lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
            unsigned long long cl = strtoull(v, NULL, 10);
            if (cl > CN_API_MAX_RESPONSE) {
                req_fail(r, CN_ETOOBIG, "the hub's answer is larger than 4 MiB");
                return -1;
            }
        }
        return 0;
    }
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
        char buf[LWS_PRE + 4096];
        char *px = buf + LWS_PRE;
        int lenx = (int)sizeof(buf) - LWS_PRE;
        if (lws_http_client_read(wsi, &px, &lenx) < 0)
            return -1;
        return 0;
    }
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        if (!r)
            return -1;
        if (cn_buf_append(&r->resp, in, len) < 0) {
            req_fail(r, CN_ETOOBIG, "the hub's answer is larger than 4 MiB");
            return -1;
        }
        return 0;
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        if (!r)
            return 0;
        r->completed = 1;
        r->finished = 1;
        lws_cancel_service(lws_get_context(wsi));
        return 0;
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        if (!r)
            return 0;
        if (!r->completed)
            req_fail(r, CN_EIO, "the connection closed before the answer was complete");
        r->finished = 1;
        lws_set_opaque_user_data(wsi, NULL);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols api_protocols[] = {
    {API_PROTOCOL, api_callback, 0, LWS_BUF, 0, NULL, LWS_BUF},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static bool method_ok(const char *m)
{
    return m && (!strcmp(m, "GET") || !strcmp(m, "POST") || !strcmp(m, "PUT") ||
                 !strcmp(m, "PATCH") || !strcmp(m, "DELETE"));
}

static bool request_path_ok(const char *p)
{
    if (!p || p[0] != '/')
        return false;
    for (; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return false;
    return true;
}

/* Runs the exchange; fills r. Returns 0 once an answer (any status) was
 * read completely, else a negative code with r->why set. */
static int run_request(api_req_t *r, const char *method, const char *full_path)
{
    cn_api_t *api = r->api;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = api_protocols;
    info.pt_serv_buf_size = LWS_BUF;
    info.timeout_secs = (api->timeout_ms + 999) / 1000;
    info.connect_timeout_secs = info.timeout_secs;
    if (api->u.tls)
        cn_tls_client_context(&info, api->ca_file);
    r->context = lws_create_context(&info);
    if (!r->context) {
        req_fail(r, CN_ENOMEM, "could not create an HTTP client");
        return r->err;
    }
    r->deadline_ms = cn_time_mono_ms() + api->timeout_ms;
    lws_sul_schedule(r->context, 0, &r->sul, tick, TICK_US);

    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = r->context;
    ci.address = api->u.host;
    ci.port = api->u.port;
    ci.path = full_path;
    ci.host = api->host_header;
    ci.method = method;
    ci.alpn = "http/1.1";
    ci.ssl_connection = LCCSCF_HTTP_NO_FOLLOW_REDIRECT;
    /* Verified: no LCCSCF_ALLOW_SELFSIGNED/_EXPIRED/_INSECURE, no
     * LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK. */
    if (api->u.tls)
        ci.ssl_connection |= LCCSCF_USE_SSL;
    ci.local_protocol_name = API_PROTOCOL;
    ci.opaque_user_data = r;
    struct lws *wsi = lws_client_connect_via_info(&ci);
    if (!wsi) {
        req_fail(r, CN_EIO, "connection failed");
        r->finished = 1;
    }
    while (!r->finished && !r->err) {
        if (lws_service(r->context, 0) < 0) {
            req_fail(r, CN_EIO, "event loop failure");
            break;
        }
    }
    lws_sul_cancel(&r->sul);
    /* Closes a connection still open (timeout, cancel, keep-alive); its
     * CLOSED callback still sees r. */
    lws_context_destroy(r->context);
    r->context = NULL;
    if (r->err)
        return r->err;
    return r->completed ? 0 : CN_EIO;
}

/* Step 1: the request line. The base path of the hub URL plus `path`, into
 * full; 0 or CN_EINVAL with err. */
static int build_target(const cn_api_t *api, const char *method, const char *path,
                        char full[static CN_API_PATH_MAX + 1], char *err, size_t errlen)
{
    if (!api || !method_ok(method) || !request_path_ok(path))
        return cn_errf(CN_EINVAL, err, errlen, "invalid API request");
    if ((size_t)snprintf(full, CN_API_PATH_MAX + 1, "%s%s", api->u.base, path) > CN_API_PATH_MAX)
        return cn_errf(CN_EINVAL, err, errlen, "API request path too long");
    return 0;
}

/* Step 2: the body, compact JSON, into the request buffer (bounded by
 * CN_API_MAX_REQUEST). 0 or a negative code with err. */
static int encode_body(api_req_t *r, const json_t *body, char *err, size_t errlen)
{
    if (!body)
        return 0;
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text)
        return cn_errf(CN_EINVAL, err, errlen, "could not encode the request as JSON");
    int rc = cn_buf_append(&r->body, text, strlen(text));
    free(text);
    if (rc < 0)
        return cn_errf(rc, err, errlen, "the request is too large");
    return 0;
}

/* Step 3 (after run_request): a transport failure in words. Returns the
 * code callers see: CN_ETIMEOUT, CN_ECLOSED, CN_ETOOBIG, CN_ENOMEM or
 * CN_EIO. */
static int describe_failure(const api_req_t *r, int rc, char *err, size_t errlen)
{
    const cn_api_t *api = r->api;
    switch (rc) {
    case CN_ETIMEOUT:
        return cn_errf(rc, err, errlen, "the hub at %s did not answer within %u s", api->url,
                       (api->timeout_ms + 999) / 1000);
    case CN_ECLOSED:
        return cn_errf(rc, err, errlen, "interrupted");
    case CN_ETOOBIG:
        return cn_errf(rc, err, errlen, "the hub's answer is larger than %u MiB",
                       CN_API_MAX_RESPONSE >> 20);
    case CN_EAUTH:
        if (r->tls_failed)
            return cn_errf(rc, err, errlen, "cannot reach the hub at %s: %s", api->url, r->why);
        return cn_errf(CN_EIO, err, errlen, "cannot reach the hub at %s (%s)", api->url, r->why);
    default:
        rc = rc == CN_ENOMEM ? rc : CN_EIO;
        if (r->status)
            return cn_errf(rc, err, errlen, "the hub at %s: %s", api->url, r->why);
        return cn_errf(rc, err, errlen, "cannot reach the hub at %s (%s)", api->url, r->why);
    }
}

/* Step 4: the answer. Parses the JSON body into *doc (NULL when empty),
 * maps the status to a code and, for an error status, the API's errors to
 * one line. */
static int read_answer(const api_req_t *r, json_t **doc, char *err, size_t errlen)
{
    *doc = NULL;
    if (r->resp.len) {
        json_error_t jerr;
        *doc = json_loadb((const char *)cn_buf_data(&r->resp), r->resp.len, JSON_REJECT_DUPLICATES,
                          &jerr);
    }
    int rc = cn_api_status_error(r->status);
    if (rc < 0) {
        cn_api_format_errors(r->status, *doc, r->retry_after, err, errlen);
        return rc;
    }
    if (r->resp.len && !*doc)
        return cn_errf(CN_EPROTO, err, errlen,
                       "the hub at %s answered with something that is not JSON", r->api->url);
    return 0;
}

int cn_api_call(cn_api_t *api, const char *method, const char *path, const struct json_t *body,
                int *status, struct json_t **response, char *err, size_t errlen)
{
    if (status)
        *status = 0;
    if (response)
        *response = NULL;
    if (err && errlen)
        err[0] = '\0';
    char full[CN_API_PATH_MAX + 1];
    int rc = build_target(api, method, path, full, err, errlen);
    if (rc < 0)
        return rc;
    /* Before any byte is sent: the token must not cross a network in
     * cleartext unless the caller said so. */
    rc = cn_tls_check_scheme(api->u.tls, api->u.host, api->allow_insecure, err, errlen);
    if (rc < 0)
        return rc;
    api_req_t r;
    memset(&r, 0, sizeof(r));
    r.api = api;
    cn_buf_init(&r.body, CN_API_MAX_REQUEST, LWS_PRE);
    cn_buf_init(&r.resp, CN_API_MAX_RESPONSE, 0);
    json_t *doc = NULL;
    rc = encode_body(&r, body, err, errlen);
    if (rc < 0)
        goto out;
    rc = run_request(&r, method, full);
    if (rc < 0) {
        rc = describe_failure(&r, rc, err, errlen);
        goto out;
    }
    if (status)
        *status = r.status;
    rc = read_answer(&r, &doc, err, errlen);
    /* An error answer hands its body over too: the caller may want more
     * than the one line. (A body that is not JSON left doc NULL.) */
    if (response) {
        *response = doc;
        doc = NULL;
    }
out:
    json_decref(doc);
    cn_buf_free(&r.body);
    cn_buf_free(&r.resp);
    return rc;
}

/* ---- typed helpers ---------------------------------------------------- */

/* Moves member `key` (of the expected type) out of *doc into *out. */
static int take_member(json_t **doc, const char *key, bool array, json_t **out, cn_api_t *api,
                       char *err, size_t errlen)
{
    json_t *v = json_object_get(*doc, key);
    if (array ? !json_is_array(v) : !json_is_object(v)) {
        cn_errf(CN_EPROTO, err, errlen, "unexpected answer from the hub at %s (no \"%s\")",
                api->url, key);
        json_decref(*doc);
        *doc = NULL;
        return CN_EPROTO;
    }
    json_incref(v);
    json_decref(*doc);
    *doc = NULL;
    *out = v;
    return 0;
}

static int call_object(cn_api_t *api, const char *method, const char *path, const json_t *body,
                       json_t **out, char *err, size_t errlen)
{
    json_t *doc = NULL;
    int rc = cn_api_call(api, method, path, body, NULL, &doc, err, errlen);
    if (rc < 0) {
        json_decref(doc);
        return rc;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        if (!out)
            return 0;
        return cn_errf(CN_EPROTO, err, errlen,
                       "unexpected answer from the hub at %s (not a JSON object)", api->url);
    }
    if (out)
        *out = doc;
    else
        json_decref(doc);
    return 0;
}

static int call_list(cn_api_t *api, const char *path, const char *key, json_t **out, char *err,
                     size_t errlen)
{
    json_t *doc = NULL;
    int rc = call_object(api, "GET", path, NULL, &doc, err, errlen);
    if (rc < 0)
        return rc;
    return take_member(&doc, key, true, out, api, err, errlen);
}

/* Builds "/api/v1/<coll>/<escaped id>". */
static int item_path(const char *coll, const char *id, char *out, size_t outlen, char *err,
                     size_t errlen)
{
    char esc[256];
    if (!id || !*id || cn_api_escape(id, esc, sizeof(esc)) < 0) {
        return cn_errf(CN_EINVAL, err, errlen, "invalid id");
    }
    if ((size_t)snprintf(out, outlen, "/api/v1/%s/%s", coll, esc) >= outlen) {
        return cn_errf(CN_EINVAL, err, errlen, "invalid id");
    }
    return 0;
}

/* Appends "?k=v" or "&k=v" (v escaped) when v is set. */
static int add_query(char *path, size_t cap, const char *k, const char *v, char *err, size_t errlen)
{
    if (!v)
        return 0;
    char esc[512];
    size_t len = strlen(path);
    if (cn_api_escape(v, esc, sizeof(esc)) < 0 ||
        (size_t)snprintf(path + len, cap - len, "%c%s=%s", strchr(path, '?') ? '&' : '?', k, esc) >=
            cap - len) {
        return cn_errf(CN_EINVAL, err, errlen, "query value for %s is too long", k);
    }
    return 0;
}

int cn_api_health(cn_api_t *api, json_t **out, char *err, size_t errlen)
{
    return call_object(api, "GET", "/api/v1/health", NULL, out, err, errlen);
}

int cn_api_tunnel_create(cn_api_t *api, const json_t *spec, json_t **out, char *err, size_t errlen)
{
    return call_object(api, "POST", "/api/v1/tunnels", spec, out, err, errlen);
}

int cn_api_tunnel_list(cn_api_t *api, const char *agent_id, const char *status, json_t **out,
                       char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX] = "/api/v1/tunnels";
    int rc;
    if ((rc = add_query(path, sizeof(path), "agentId", agent_id, err, errlen)) < 0 ||
        (rc = add_query(path, sizeof(path), "status", status, err, errlen)) < 0)
        return rc;
    return call_list(api, path, "tunnels", out, err, errlen);
}

int cn_api_tunnel_get(cn_api_t *api, const char *id, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = item_path("tunnels", id, path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "GET", path, NULL, out, err, errlen);
}

int cn_api_tunnel_patch(cn_api_t *api, const char *id, const json_t *changes, json_t **out,
                        char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = item_path("tunnels", id, path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "PATCH", path, changes, out, err, errlen);
}

int cn_api_tunnel_delete(cn_api_t *api, const char *id, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = item_path("tunnels", id, path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "DELETE", path, NULL, out, err, errlen);
}

int cn_api_events_list(cn_api_t *api, const char *tunnel_id, const char *since, json_t **out,
                       char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX] = "/api/v1/events";
    int rc;
    if ((rc = add_query(path, sizeof(path), "tunnelId", tunnel_id, err, errlen)) < 0 ||
        (rc = add_query(path, sizeof(path), "since", since, err, errlen)) < 0)
        return rc;
    return call_list(api, path, "events", out, err, errlen);
}

int cn_api_agent_create(cn_api_t *api, const char *name, json_t **out, char *err, size_t errlen)
{
    json_t *body = name ? json_pack("{s:s}", "name", name) : json_object();
    if (!body) {
        return cn_errf(CN_ENOMEM, err, errlen, "out of memory");
    }
    int rc = call_object(api, "POST", "/api/v1/agents", body, out, err, errlen);
    json_decref(body);
    return rc;
}

int cn_api_agent_list(cn_api_t *api, json_t **out, char *err, size_t errlen)
{
    return call_list(api, "/api/v1/agents", "agents", out, err, errlen);
}

int cn_api_agent_get(cn_api_t *api, const char *id, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = item_path("agents", id, path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "GET", path, NULL, out, err, errlen);
}

int cn_api_agent_delete(cn_api_t *api, const char *id, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = item_path("agents", id, path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "DELETE", path, NULL, out, err, errlen);
}

/* "/api/v1/<coll>/<escaped id><tail>", for a resource's sub-collections. */
static int sub_path(const char *coll, const char *id, const char *tail, char *out, size_t outlen,
                    char *err, size_t errlen)
{
    int rc = item_path(coll, id, out, outlen, err, errlen);
    if (rc < 0)
        return rc;
    size_t len = strlen(out);
    if ((size_t)snprintf(out + len, outlen - len, "%s", tail) >= outlen - len)
        return cn_errf(CN_EINVAL, err, errlen, "invalid id");
    return 0;
}

int cn_api_tunnel_connect(cn_api_t *api, const char *tunnel_id, const char *agent_id,
                          int local_port, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = sub_path("tunnels", tunnel_id, "/connect", path, sizeof(path), err, errlen);
    if (rc < 0)
        return rc;
    if (!agent_id || local_port < 0 || local_port > 65535)
        return cn_errf(CN_EINVAL, err, errlen, "reach: an agent id and a port 0-65535 are needed");
    json_t *body = json_pack("{s:s}", "agentId", agent_id);
    if (body && local_port)
        json_object_set_new(body, "localPort", json_integer(local_port));
    if (!body)
        return cn_errf(CN_ENOMEM, err, errlen, "out of memory");
    rc = call_object(api, "POST", path, body, out, err, errlen);
    json_decref(body);
    return rc;
}

int cn_api_share_create(cn_api_t *api, const char *tunnel_id, const json_t *spec, json_t **out,
                        char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = sub_path("tunnels", tunnel_id, "/shares", path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "POST", path, spec, out, err, errlen);
}

int cn_api_share_list(cn_api_t *api, const char *tunnel_id, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX] = "/api/v1/shares";
    int rc =
        tunnel_id ? sub_path("tunnels", tunnel_id, "/shares", path, sizeof(path), err, errlen) : 0;
    return rc < 0 ? rc : call_list(api, path, "shares", out, err, errlen);
}

int cn_api_share_get(cn_api_t *api, const char *id, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = item_path("shares", id, path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "GET", path, NULL, out, err, errlen);
}

int cn_api_share_revoke(cn_api_t *api, const char *id, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = item_path("shares", id, path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "DELETE", path, NULL, out, err, errlen);
}

int cn_api_share_logs(cn_api_t *api, const char *id, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = sub_path("shares", id, "/logs", path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_list(api, path, "logs", out, err, errlen);
}

int cn_api_workspace_create(cn_api_t *api, const json_t *spec, json_t **out, char *err,
                            size_t errlen)
{
    return call_object(api, "POST", "/api/v1/workspaces", spec, out, err, errlen);
}

int cn_api_workspace_list(cn_api_t *api, json_t **out, char *err, size_t errlen)
{
    return call_list(api, "/api/v1/workspaces", "workspaces", out, err, errlen);
}

int cn_api_token_create(cn_api_t *api, const char *workspace_id, const json_t *spec, json_t **out,
                        char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = sub_path("workspaces", workspace_id, "/tokens", path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "POST", path, spec, out, err, errlen);
}

int cn_api_token_list(cn_api_t *api, json_t **out, char *err, size_t errlen)
{
    return call_list(api, "/api/v1/tokens", "tokens", out, err, errlen);
}

int cn_api_token_delete(cn_api_t *api, const char *id, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = item_path("tokens", id, path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "DELETE", path, NULL, out, err, errlen);
}

int cn_api_webhook_create(cn_api_t *api, const json_t *spec, json_t **out, char *err, size_t errlen)
{
    return call_object(api, "POST", "/api/v1/webhooks", spec, out, err, errlen);
}

int cn_api_webhook_list(cn_api_t *api, json_t **out, char *err, size_t errlen)
{
    return call_list(api, "/api/v1/webhooks", "webhooks", out, err, errlen);
}

int cn_api_webhook_get(cn_api_t *api, const char *id, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = item_path("webhooks", id, path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "GET", path, NULL, out, err, errlen);
}

int cn_api_webhook_patch(cn_api_t *api, const char *id, const json_t *changes, json_t **out,
                         char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = item_path("webhooks", id, path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "PATCH", path, changes, out, err, errlen);
}

int cn_api_webhook_delete(cn_api_t *api, const char *id, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = item_path("webhooks", id, path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "DELETE", path, NULL, out, err, errlen);
}

int cn_api_webhook_deliveries(cn_api_t *api, const char *id, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = sub_path("webhooks", id, "/deliveries", path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_list(api, path, "deliveries", out, err, errlen);
}

int cn_api_requests_list(cn_api_t *api, const char *tunnel_id, json_t **out, char *err,
                         size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = sub_path("tunnels", tunnel_id, "/requests", path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_list(api, path, "requests", out, err, errlen);
}

/* /api/v1/requests/RID[TAIL]: ids of recorded requests are integers. */
static int request_path(uint64_t rid, const char *tail, char *out, size_t outlen, char *err,
                        size_t errlen)
{
    if (rid == 0)
        return cn_errf(CN_EINVAL, err, errlen, "a recorded request's id is a positive integer");
    snprintf(out, outlen, "/api/v1/requests/%llu%s", (unsigned long long)rid, tail);
    return 0;
}

int cn_api_request_get(cn_api_t *api, uint64_t rid, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = request_path(rid, "", path, sizeof(path), err, errlen);
    return rc < 0 ? rc : call_object(api, "GET", path, NULL, out, err, errlen);
}

int cn_api_request_replay(cn_api_t *api, uint64_t rid, json_t **out, char *err, size_t errlen)
{
    char path[CN_API_PATH_MAX];
    int rc = request_path(rid, "/replay", path, sizeof(path), err, errlen);
    if (rc < 0)
        return rc;
    json_t *body = json_object();
    if (!body)
        return cn_errf(CN_ENOMEM, err, errlen, "out of memory");
    rc = call_object(api, "POST", path, body, out, err, errlen);
    json_decref(body);
    return rc;
}

int cn_api_share_redeem(cn_api_t *api, const char *token, int local_port, json_t **out, char *err,
                        size_t errlen)
{
    if (!token || !*token || local_port < 0 || local_port > 65535)
        return cn_errf(CN_EINVAL, err, errlen,
                       "redeem: a share token and a port 0-65535 are needed");
    json_t *body = json_pack("{s:s}", "token", token);
    if (body && local_port)
        json_object_set_new(body, "localPort", json_integer(local_port));
    if (!body)
        return cn_errf(CN_ENOMEM, err, errlen, "out of memory");
    int rc = call_object(api, "POST", "/api/v1/share-redemptions", body, out, err, errlen);
    json_decref(body);
    return rc;
}
