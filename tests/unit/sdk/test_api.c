/* cn_api: the REST client against a small lws HTTP server running on its
 * own thread (its own context), plus the pure helpers: hub URL parsing,
 * percent-encoding and the API-error-to-one-line formatting. */
#include "cn_test.h"

#include "cn_api.h"
#include "cn_err.h"
#include "cn_time.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <signal.h>
#include <time.h>

/* ---- the test server -------------------------------------------------- */

typedef struct pss {
    char method[8];
    char path[256];
    char query[256];
    char auth[256];
    char ctype[64];
    char body[4096];
    size_t body_len;
    /* response being written */
    int status;
    char *out;
    size_t out_len, out_off;
    int headers_sent;
    int chunked_unknown_len; /* send without Content-Length */
    int never;               /* never answer */
} pss_t;

static struct {
    struct lws_context *ctx;
    pthread_t thread;
    volatile int stop;
    int port;
} S;

static const char *method_of(struct lws *wsi)
{
    static const struct {
        enum lws_token_indexes tok;
        const char *name;
    } m[] = {
        {WSI_TOKEN_GET_URI, "GET"},       {WSI_TOKEN_POST_URI, "POST"},
        {WSI_TOKEN_PATCH_URI, "PATCH"},   {WSI_TOKEN_PUT_URI, "PUT"},
        {WSI_TOKEN_DELETE_URI, "DELETE"},
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if (lws_hdr_total_length(wsi, m[i].tok) > 0)
            return m[i].name;
    return "?";
}

static void respond(struct lws *wsi, pss_t *p)
{
    if (p->never)
        return;
    if (!strncmp(p->path, "/echo", 5)) {
        json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s#}", "method", p->method, "path", p->path,
                              "query", p->query, "auth", p->auth, "ctype", p->ctype, "body",
                              p->body, (int)p->body_len);
        p->out = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        p->status = 200;
    } else if (!strncmp(p->path, "/status/", 8)) {
        p->status = atoi(p->path + 8);
        p->out = strdup("{\"errors\":[{\"param\":\"name\",\"details\":\"must be 1-100 "
                        "characters\"},{\"param\":\"\",\"details\":\"second\\nline\"}]}");
    } else if (!strcmp(p->path, "/plain404")) {
        p->status = 404;
        p->out = strdup("not json at all");
    } else if (!strcmp(p->path, "/big") || !strcmp(p->path, "/bignolen")) {
        size_t n = 5u * 1024 * 1024;
        p->out = malloc(n);
        memset(p->out, ' ', n);
        p->out[0] = '[';
        p->out[n - 1] = ']';
        p->status = 200;
        p->chunked_unknown_len = !strcmp(p->path, "/bignolen");
    } else if (!strcmp(p->path, "/notjson")) {
        p->status = 200;
        p->out = strdup("hello");
    } else if (!strcmp(p->path, "/empty")) {
        p->status = 204;
        p->out = strdup("");
    } else {
        p->status = 404;
        p->out = strdup("{\"errors\":[{\"param\":\"path\",\"details\":\"no such route\"}]}");
    }
    if (!strcmp(p->path, "/big") || !strcmp(p->path, "/bignolen"))
        p->out_len = 5u * 1024 * 1024;
    else
        p->out_len = strlen(p->out);
    lws_callback_on_writable(wsi);
}

static int write_response(struct lws *wsi, pss_t *p)
{
    uint8_t buf[LWS_PRE + 16384];
    if (!p->headers_sent) {
        uint8_t *start = buf + LWS_PRE, *q = start, *end = buf + sizeof(buf) - 1;
        lws_filepos_t cl = p->chunked_unknown_len ? LWS_ILLEGAL_HTTP_CONTENT_LEN : p->out_len;
        if (lws_add_http_common_headers(wsi, (unsigned)p->status, "application/json", cl, &q, end))
            return -1;
        if (p->status == 429 &&
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_RETRY_AFTER,
                                         (const unsigned char *)"7", 1, &q, end))
            return -1;
        if (lws_finalize_write_http_header(wsi, start, &q, end))
            return -1;
        p->headers_sent = 1;
        if (p->out_len)
            lws_callback_on_writable(wsi);
        else if (lws_http_transaction_completed(wsi))
            return -1;
        return 0;
    }
    size_t n = p->out_len - p->out_off;
    if (n > 16384)
        n = 16384;
    memcpy(buf + LWS_PRE, p->out + p->out_off, n);
    int last = p->out_off + n == p->out_len;
    if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
        return -1;
    p->out_off += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (p->chunked_unknown_len)
        return -1; /* close-delimited */
    if (lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

static int server_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    pss_t *p = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        free(p->out);
        memset(p, 0, sizeof(*p));
        snprintf(p->method, sizeof(p->method), "%s", method_of(wsi));
        snprintf(p->path, sizeof(p->path), "%s", (const char *)in);
        for (int i = 0; i < 8; i++) {
            char frag[128];
            if (lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
                break;
            size_t l = strlen(p->query);
            snprintf(p->query + l, sizeof(p->query) - l, "%s%s", l ? "&" : "", frag);
        }
        lws_hdr_copy(wsi, p->auth, sizeof(p->auth), WSI_TOKEN_HTTP_AUTHORIZATION);
        lws_hdr_copy(wsi, p->ctype, sizeof(p->ctype), WSI_TOKEN_HTTP_CONTENT_TYPE);
        p->never = !strcmp(p->path, "/slow");
        if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
            return 0; /* body follows */
        respond(wsi, p);
        return 0;
    }
    case LWS_CALLBACK_HTTP_BODY:
        if (p->body_len + len < sizeof(p->body)) {
            memcpy(p->body + p->body_len, in, len);
            p->body_len += len;
        }
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        respond(wsi, p);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!p->out)
            return 0;
        return write_response(wsi, p);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (p) {
            free(p->out);
            p->out = NULL;
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols server_protocols[] = {
    {"http", server_cb, sizeof(pss_t), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *server_main(void *arg)
{
    while (!S.stop)
        lws_service(S.ctx, 0);
    return NULL;
}

static int server_start(void **state)
{
    lws_set_log_level(0, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = 0;
    info.iface = "127.0.0.1";
    info.protocols = server_protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    info.pt_serv_buf_size = 32 * 1024;
    S.ctx = lws_create_context(&info);
    if (!S.ctx)
        return -1;
    S.port = lws_get_vhost_listen_port(lws_get_vhost_by_name(S.ctx, "default"));
    S.stop = 0;
    return pthread_create(&S.thread, NULL, server_main, NULL);
}

static int server_stop(void **state)
{
    S.stop = 1;
    lws_cancel_service(S.ctx);
    pthread_join(S.thread, NULL);
    lws_context_destroy(S.ctx);
    return 0;
}

static cn_api_t *client(const char *token)
{
    char url[64], err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", S.port);
    cn_api_t *api = cn_api_new(url, token, err, sizeof(err));
    assert_non_null(api);
    return api;
}

/* ---- transport -------------------------------------------------------- */

static void test_get_with_bearer(void **state)
{
    cn_api_t *api = client("cnt_secret");
    json_t *resp = NULL;
    int status = 0;
    char err[256];
    assert_int_equal(
        cn_api_call(api, "GET", "/echo/x?a=1&b=two", NULL, &status, &resp, err, sizeof(err)), 0);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(resp, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(resp, "path")), "/echo/x");
    assert_string_equal(json_string_value(json_object_get(resp, "query")), "a=1&b=two");
    assert_string_equal(json_string_value(json_object_get(resp, "auth")), "Bearer cnt_secret");
    json_decref(resp);
    cn_api_free(api);
}

static void test_post_and_patch_json_body(void **state)
{
    cn_api_t *api = client("tok");
    char err[256];
    const char *methods[] = {"POST", "PATCH", "PUT"};
    for (size_t i = 0; i < 3; i++) {
        json_t *body = json_pack("{s:s,s:i}", "name", "db", "port", 5432);
        json_t *resp = NULL;
        int status = 0;
        assert_int_equal(
            cn_api_call(api, methods[i], "/echo", body, &status, &resp, err, sizeof(err)), 0);
        assert_string_equal(json_string_value(json_object_get(resp, "method")), methods[i]);
        assert_string_equal(json_string_value(json_object_get(resp, "ctype")), "application/json");
        json_t *sent = json_loads(json_string_value(json_object_get(resp, "body")), 0, NULL);
        assert_true(json_equal(sent, body));
        json_decref(sent);
        json_decref(body);
        json_decref(resp);
    }
    cn_api_free(api);
}

static void test_large_request_body(void **state)
{
    cn_api_t *api = client("tok");
    char err[256];
    /* Bigger than one write chunk; the server keeps only the first 4 KiB,
     * so check the call completes and the length header was right. */
    char *big = malloc(40000);
    memset(big, 'x', 39999);
    big[39999] = '\0';
    json_t *body = json_pack("{s:s}", "blob", big);
    json_t *resp = NULL;
    assert_int_equal(cn_api_call(api, "POST", "/echo", body, NULL, &resp, err, sizeof(err)), 0);
    assert_string_equal(json_string_value(json_object_get(resp, "method")), "POST");
    json_decref(resp);
    json_decref(body);
    free(big);
    cn_api_free(api);
}

static void test_no_token_no_header(void **state)
{
    cn_api_t *api = client(NULL);
    json_t *resp = NULL;
    char err[256];
    assert_int_equal(cn_api_call(api, "DELETE", "/echo", NULL, NULL, &resp, err, sizeof(err)), 0);
    assert_string_equal(json_string_value(json_object_get(resp, "method")), "DELETE");
    assert_string_equal(json_string_value(json_object_get(resp, "auth")), "");
    json_decref(resp);
    cn_api_free(api);
}

static void test_error_statuses(void **state)
{
    static const struct {
        int status;
        int rc;
    } cases[] = {
        {400, CN_EINVAL},   {401, CN_EAUTH},     {403, CN_EAUTH},  {404, CN_ENOTFOUND},
        {409, CN_ESTATE},   {410, CN_ENOTFOUND}, {422, CN_EINVAL}, {429, CN_EAGAIN},
        {500, CN_EREFUSED}, {503, CN_EREFUSED},
    };
    cn_api_t *api = client("tok");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[32], err[256];
        snprintf(path, sizeof(path), "/status/%d", cases[i].status);
        json_t *resp = NULL;
        int status = 0;
        int rc = cn_api_call(api, "GET", path, NULL, &status, &resp, err, sizeof(err));
        assert_int_equal(rc, cases[i].rc);
        assert_int_equal(status, cases[i].status);
        assert_non_null(resp); /* the error body is handed back too */
        if (cases[i].status == 429)
            assert_string_equal(err, "name: must be 1-100 characters; second line (retry in 7 s)");
        else
            assert_string_equal(err, "name: must be 1-100 characters; second line");
        json_decref(resp);
    }
    char err[256];
    json_t *resp = NULL;
    assert_int_equal(cn_api_call(api, "GET", "/plain404", NULL, NULL, &resp, err, sizeof(err)),
                     CN_ENOTFOUND);
    assert_null(resp);
    assert_string_equal(err, "HTTP 404 Not Found");
    cn_api_free(api);
}

static void test_response_limits(void **state)
{
    cn_api_t *api = client("tok");
    char err[256];
    json_t *resp = NULL;
    assert_int_equal(cn_api_call(api, "GET", "/big", NULL, NULL, &resp, err, sizeof(err)),
                     CN_ETOOBIG);
    assert_null(resp);
    assert_non_null(strstr(err, "larger than 4 MiB"));
    assert_int_equal(cn_api_call(api, "GET", "/bignolen", NULL, NULL, &resp, err, sizeof(err)),
                     CN_ETOOBIG);
    assert_null(resp);
    assert_int_equal(cn_api_call(api, "GET", "/notjson", NULL, NULL, &resp, err, sizeof(err)),
                     CN_EPROTO);
    assert_null(resp);
    int status = 0;
    assert_int_equal(cn_api_call(api, "GET", "/empty", NULL, &status, &resp, err, sizeof(err)), 0);
    assert_int_equal(status, 204);
    assert_null(resp);
    cn_api_free(api);
}

/* A cancel check (cn_api_cancel_fn) reading an int flag. */
static int flag_raised(void *flag)
{
    return *(const int *)flag;
}

static void test_timeout_and_cancel(void **state)
{
    cn_api_t *api = client("tok");
    char err[256];
    cn_api_set_timeout(api, 600);
    uint64_t t0 = cn_time_mono_ms();
    assert_int_equal(cn_api_call(api, "GET", "/slow", NULL, NULL, NULL, err, sizeof(err)),
                     CN_ETIMEOUT);
    uint64_t took = cn_time_mono_ms() - t0;
    assert_true(took >= 550 && took < 1500);
    assert_non_null(strstr(err, "did not answer"));

    int flag = 1;
    cn_api_set_timeout(api, 10000);
    cn_api_set_cancel(api, flag_raised, &flag);
    t0 = cn_time_mono_ms();
    assert_int_equal(cn_api_call(api, "GET", "/slow", NULL, NULL, NULL, err, sizeof(err)),
                     CN_ECLOSED);
    assert_true(cn_time_mono_ms() - t0 < 2000);
    cn_api_free(api);
}

static void test_unreachable(void **state)
{
    /* A port nobody listens on: bind one, note it, close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    char url[64], err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
    cn_api_t *api = cn_api_new(url, "tok", err, sizeof(err));
    assert_non_null(api);
    int status = -1;
    assert_int_equal(cn_api_health(api, NULL, err, sizeof(err)), CN_EIO);
    assert_int_equal(cn_api_call(api, "GET", "/x", NULL, &status, NULL, err, sizeof(err)), CN_EIO);
    assert_int_equal(status, 0);
    assert_non_null(strstr(err, "cannot reach the hub at"));
    cn_api_free(api);
}

/* Plain http:// to a host that is not loopback: refused before anything
 * is sent (192.0.2.1 is TEST-NET-1: a call that went out would time out,
 * not answer CN_EREFUSED), unless the caller allows it. */
static void test_plain_http_needs_loopback_or_consent(void **state)
{
    char err[256] = "";
    cn_api_t *api = cn_api_new("http://192.0.2.1:8080", "tok", err, sizeof(err));
    assert_non_null(api);
    cn_api_set_timeout(api, 300);
    assert_int_equal(cn_api_health(api, NULL, err, sizeof(err)), CN_EREFUSED);
    assert_non_null(strstr(err, "--allow-insecure"));
    assert_null(strchr(err, '\n'));
    cn_api_set_allow_insecure(api, true);
    int rc = cn_api_health(api, NULL, err, sizeof(err));
    assert_true(rc == CN_ETIMEOUT || rc == CN_EIO);
    cn_api_free(api);
    /* Loopback needs no consent: the echo server answers. */
    api = client("tok");
    json_t *out = NULL;
    assert_int_equal(cn_api_call(api, "GET", "/echo", NULL, NULL, &out, err, sizeof(err)), 0);
    json_decref(out);
    /* A CA file that cannot be read is refused when set. */
    assert_int_equal(cn_api_set_ca_file(api, "/nonexistent/ca.pem", err, sizeof(err)), CN_EINVAL);
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    cn_api_free(api);
}

static void test_bad_requests_refused_locally(void **state)
{
    cn_api_t *api = client("tok");
    char err[256];
    assert_int_equal(cn_api_call(api, "TRACE", "/echo", NULL, NULL, NULL, err, sizeof(err)),
                     CN_EINVAL);
    assert_int_equal(cn_api_call(api, "GET", "echo", NULL, NULL, NULL, err, sizeof(err)),
                     CN_EINVAL);
    assert_int_equal(
        cn_api_call(api, "GET", "/echo\r\nX-Evil: 1", NULL, NULL, NULL, err, sizeof(err)),
        CN_EINVAL);
    cn_api_free(api);
    assert_null(cn_api_new("http://127.0.0.1:1", "tok\nX: y", err, sizeof(err)));
    assert_non_null(strstr(err, "token"));
}

static void test_typed_helpers_paths(void **state)
{
    /* The echo server answers 404 for everything but /echo*, which proves
     * the helpers build the documented paths and escape ids. */
    cn_api_t *api = client("tok");
    char err[256];
    json_t *out = NULL;
    assert_int_equal(cn_api_tunnel_get(api, "../echo", &out, err, sizeof(err)), CN_ENOTFOUND);
    assert_string_equal(err, "path: no such route");
    assert_int_equal(cn_api_tunnel_list(api, NULL, NULL, &out, err, sizeof(err)), CN_ENOTFOUND);
    /* Shares and reach: ids escaped into sub-paths, arguments checked first. */
    assert_int_equal(cn_api_share_get(api, "../echo", &out, err, sizeof(err)), CN_ENOTFOUND);
    assert_int_equal(cn_api_share_logs(api, "../echo", &out, err, sizeof(err)), CN_ENOTFOUND);
    assert_int_equal(cn_api_share_list(api, NULL, &out, err, sizeof(err)), CN_ENOTFOUND);
    assert_int_equal(cn_api_share_list(api, "t/1", &out, err, sizeof(err)), CN_ENOTFOUND);
    assert_int_equal(cn_api_share_revoke(api, "", NULL, err, sizeof(err)), CN_EINVAL);
    assert_int_equal(cn_api_share_create(api, NULL, NULL, &out, err, sizeof(err)), CN_EINVAL);
    assert_int_equal(cn_api_tunnel_connect(api, "t", NULL, 0, &out, err, sizeof(err)), CN_EINVAL);
    assert_int_equal(cn_api_tunnel_connect(api, "t", "a", 70000, &out, err, sizeof(err)),
                     CN_EINVAL);
    assert_int_equal(cn_api_tunnel_connect(api, "t", "a", 0, &out, err, sizeof(err)), CN_ENOTFOUND);
    /* Recorded requests and share redemption. */
    assert_int_equal(cn_api_requests_list(api, "../echo", &out, err, sizeof(err)), CN_ENOTFOUND);
    assert_int_equal(cn_api_request_get(api, 0, &out, err, sizeof(err)), CN_EINVAL);
    assert_int_equal(cn_api_request_get(api, 7, &out, err, sizeof(err)), CN_ENOTFOUND);
    assert_int_equal(cn_api_request_replay(api, 0, &out, err, sizeof(err)), CN_EINVAL);
    assert_int_equal(cn_api_request_replay(api, 7, &out, err, sizeof(err)), CN_ENOTFOUND);
    assert_int_equal(cn_api_share_redeem(api, "", 0, &out, err, sizeof(err)), CN_EINVAL);
    assert_int_equal(cn_api_share_redeem(api, "t", 70000, &out, err, sizeof(err)), CN_EINVAL);
    assert_int_equal(cn_api_share_redeem(api, "t", 0, &out, err, sizeof(err)), CN_ENOTFOUND);
    assert_null(out);
    cn_api_free(api);
}

/* ---- pure helpers ----------------------------------------------------- */

static void test_parse_url(void **state)
{
    static const struct {
        const char *url;
        int ok;
        const char *host;
        int port;
        const char *base;
        const char *why;
    } cases[] = {
        {"http://127.0.0.1:8080", 1, "127.0.0.1", 8080, "", NULL},
        {"http://hub.example.com", 1, "hub.example.com", 80, "", NULL},
        {"http://hub.example.com/", 1, "hub.example.com", 80, "", NULL},
        {"HTTP://Hub:1/connect/", 1, "Hub", 1, "/connect", NULL},
        {"http://[::1]:9000", 1, "::1", 9000, "", NULL},
        {"http://[::1]", 1, "::1", 80, "", NULL},
        {"https://hub", 1, "hub", 443, "", NULL},
        {"HTTPS://hub.example.com:8443/c", 1, "hub.example.com", 8443, "/c", NULL},
        {"https://127.0.0.1:9443", 1, "127.0.0.1", 9443, "", NULL},
        {"https://[::1]:9443", 0, NULL, 0, NULL, "IPv6"},
        {"ftp://hub", 0, NULL, 0, NULL, "http://HOST:PORT"},
        {"hub:8080", 0, NULL, 0, NULL, "http://HOST:PORT"},
        {"http://:8080", 0, NULL, 0, NULL, "no host"},
        {"http://hub:0", 0, NULL, 0, NULL, "between 1 and 65535"},
        {"http://hub:65536", 0, NULL, 0, NULL, "between 1 and 65535"},
        {"http://hub:80x", 0, NULL, 0, NULL, "between 1 and 65535"},
        {"http://hub:", 0, NULL, 0, NULL, "between 1 and 65535"},
        {"http://user:pw@hub", 0, NULL, 0, NULL, "credentials"},
        {"http://hub/?x=1", 0, NULL, 0, NULL, "query"},
        {"http://[::1", 0, NULL, 0, NULL, "unterminated"},
        {"http://[zz]:1", 0, NULL, 0, NULL, "not valid"},
        {"http://h b", 0, NULL, 0, NULL, "not allowed"},
        {"", 0, NULL, 0, NULL, "empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cn_api_url_t u;
        char err[128] = "";
        int rc = cn_api_parse_url(cases[i].url, &u, err, sizeof(err));
        if (cases[i].ok) {
            assert_int_equal(rc, 0);
            assert_string_equal(u.host, cases[i].host);
            assert_int_equal(u.port, cases[i].port);
            assert_string_equal(u.base, cases[i].base);
            assert_int_equal(u.tls, !strncasecmp(cases[i].url, "https", 5));
        } else {
            assert_int_equal(rc, CN_EINVAL);
            if (!strstr(err, cases[i].why))
                fail_msg("%s: '%s' lacks '%s'", cases[i].url, err, cases[i].why);
        }
    }
}

static void test_escape(void **state)
{
    char out[64];
    assert_int_equal(cn_api_escape("2026-01-31T12:00:00+01:00", out, sizeof(out)), 0);
    assert_string_equal(out, "2026-01-31T12%3A00%3A00%2B01%3A00");
    assert_int_equal(cn_api_escape("a b/../c~_.-", out, sizeof(out)), 0);
    assert_string_equal(out, "a%20b%2F..%2Fc~_.-");
    assert_int_equal(cn_api_escape("abc", out, 3), CN_ETOOBIG);
    assert_int_equal(cn_api_escape("abc", out, 4), 0);
    assert_int_equal(cn_api_escape("/", out, 3), CN_ETOOBIG);
}

static void test_format_errors(void **state)
{
    static const struct {
        int status;
        const char *body;
        unsigned retry;
        const char *want;
    } cases[] = {
        {422, "{\"errors\":[{\"param\":\"name\",\"details\":\"must be 1-100 characters\"}]}", 0,
         "name: must be 1-100 characters"},
        {422,
         "{\"errors\":[{\"param\":\"target\",\"details\":\"port must be between 1 and 65535\"},"
         "{\"param\":\"ttl\",\"details\":\"must be positive\"}]}",
         0, "target: port must be between 1 and 65535; ttl: must be positive"},
        {401, "{\"errors\":[{\"param\":\"\",\"details\":\"invalid token\"}]}", 0, "invalid token"},
        {401, "{\"errors\":[{\"details\":\"invalid token\"}]}", 0, "invalid token"},
        {429, "{\"errors\":[{\"param\":\"token\",\"details\":\"rate limit exceeded\"}]}", 12,
         "token: rate limit exceeded (retry in 12 s)"},
        {404, NULL, 0, "HTTP 404 Not Found"},
        {500, "{\"message\":\"database locked\"}", 0,
         "HTTP 500 Internal Server Error: database locked"},
        {502, "[1,2]", 0, "HTTP 502 Bad Gateway"},
        {418, "{}", 0, "HTTP 418"},
        {302, NULL, 0, "HTTP 302 Redirect (not followed)"},
        {422, "{\"errors\":[{\"param\":\"x\"},{\"param\":\"y\",\"details\":7}]}", 0,
         "HTTP 422 Unprocessable Entity"},
        {400, "{\"errors\":[{\"param\":\"a\\u001b[31m\",\"details\":\"l1\\nl2\\r\"}]}", 0,
         "a [31m: l1 l2 "},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = cases[i].body ? json_loads(cases[i].body, 0, NULL) : NULL;
        char out[256];
        cn_api_format_errors(cases[i].status, j, cases[i].retry, out, sizeof(out));
        assert_string_equal(out, cases[i].want);
        json_decref(j);
    }
    /* Truncation keeps a terminated string. */
    json_t *j = json_loads(cases[0].body, 0, NULL);
    char tiny[8];
    cn_api_format_errors(422, j, 0, tiny, sizeof(tiny));
    assert_string_equal(tiny, "name: m");
    json_decref(j);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_parse_url),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_format_errors),
    };
    const struct CMUnitTest net[] = {
        cmocka_unit_test(test_get_with_bearer),
        cmocka_unit_test(test_post_and_patch_json_body),
        cmocka_unit_test(test_large_request_body),
        cmocka_unit_test(test_no_token_no_header),
        cmocka_unit_test(test_error_statuses),
        cmocka_unit_test(test_response_limits),
        cmocka_unit_test(test_timeout_and_cancel),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_bad_requests_refused_locally),
        cmocka_unit_test(test_plain_http_needs_loopback_or_consent),
        cmocka_unit_test(test_typed_helpers_paths),
    };
    int rc = cmocka_run_group_tests_name("pure", pure, NULL, NULL);
    rc |= cmocka_run_group_tests_name("http", net, server_start, server_stop);
    return rc;
}
