/* libFuzzer harness for the hub's REST API: the dispatcher (credential
 * query keys, routing, 404/405, authentication, scopes, rate limits) and
 * every handler's validation and JSON body parsing, against a real SQLite
 * store in a scratch directory. Each input runs inside a transaction that
 * is rolled back afterwards, so every input starts from the same state:
 * two workspaces, an agent with an agent token, tunnels in both
 * workspaces, and one token of each scope.
 *
 * Input (text, so that seeds are readable):
 *   line 1  method: GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, or
 *           anything else (an unknown method bit)
 *   line 2  credential: "operator", "admin", "member", "agent", "revoked",
 *           "-" (no header), or the raw Authorization value
 *   line 3  path, with an optional "?k=v&k2" query
 *   rest    the body
 * In the path, query and body, "$W" "$X" "$A" "$T" "$U" "$K" "$H" expand to
 * the first workspace's id, the second's, the agent's, a tunnel of the first
 * workspace, one of the second, the member token's id and a webhook of the
 * first workspace, so that the fuzzer reaches handlers past their lookups.
 *
 * Invariants that abort the run: the status is 200, 201 or an error status
 * the contract names (400..429; never 500, which no input may cause with
 * a healthy store); the body is a JSON object; every
 * error answer has the shape {"errors":[{"param":string,"details":string},
 * ...]} with at least one entry; 405 carries Allow, 429 Retry-After; a
 * request without a valid credential never succeeds past health; a route
 * for admins (webhooks, agents, ...) or the operator answers 401 without a
 * valid credential and 403 (401 for a credential in the query) to a valid
 * one of a lower scope; GET /metrics, whose access is not an API token's
 * to grant, answers 403 to this non-loopback peer whatever the token; and
 * the store stays usable (the rollback succeeds). CN_FUZZ_VERBOSE=1 prints
 * each answer (to see what the seeds reach). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "api.h"
#include "api_internal.h"
#include "cn_err.h"
#include "cn_log.h"
#include "router.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TEXT 70000

static hub_store_t *st;
static hub_api_t *api;
static int64_t now_ms = 1795442400000LL;
static char ws1[HUB_ID_SIZE], ws2[HUB_ID_SIZE], agent_id[HUB_ID_SIZE], tun1[HUB_ID_SIZE],
    tun2[HUB_ID_SIZE], member_id[HUB_ID_SIZE], hook1[HUB_ID_SIZE];
static char tok_operator[HUB_TOKEN_STR_SIZE], tok_admin[HUB_TOKEN_STR_SIZE],
    tok_member[HUB_TOKEN_STR_SIZE], tok_agent[HUB_TOKEN_STR_SIZE], tok_revoked[HUB_TOKEN_STR_SIZE];

static int64_t fixed_clock(void *ctx)
{
    (void)ctx;
    return now_ms;
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz_hub_api: set-up failed: %s (%s)\n", what, st ? hub_store_errmsg(st) : "");
    abort();
}

/* One request through the dispatcher; returns the parsed body (owned). */
static json_t *call(unsigned method, const char *path, const char *auth, const char *body,
                    int *status)
{
    hub_http_req_t req = {
        .method = method,
        .path = path,
        .authorization = auth,
        .body = (const uint8_t *)body,
        .body_len = body ? strlen(body) : 0,
        .peer = "127.0.0.1",
    };
    hub_http_resp_t resp = {0};
    hub_api_handle(api, &req, &resp);
    *status = resp.status;
    json_t *j = resp.body ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
    hub_resp_clear(&resp);
    return j;
}

static void copy_field(json_t *j, const char *key, char *out, size_t outlen)
{
    const char *s = json_string_value(json_object_get(j, key));
    if (!s || strlen(s) >= outlen)
        die(key);
    memcpy(out, s, strlen(s) + 1);
}

static void bearer(char *out, const char *token)
{
    snprintf(out, 16 + HUB_TOKEN_STR_SIZE, "Bearer %s", token);
}

static char dir[] = "/tmp/cn-fuzz-api-XXXXXX";

/* Leaves nothing behind in /tmp. */
static void teardown(void)
{
    static const char *const files[] = {"hub.db", "hub.db-wal", "hub.db-shm", "hub.db-journal"};
    char path[64];
    hub_api_free(api);
    hub_store_close(st);
    api = NULL;
    st = NULL;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void setup(void)
{
    char path[64], auth[16 + HUB_TOKEN_STR_SIZE];
    uint8_t key[HUB_KEY_BYTES];
    int status;
    json_t *j;

    cn_log_set_level(CN_LOG_ERROR); /* request lines would drown the fuzzer's output */
    if (!mkdtemp(dir))
        die("mkdtemp");
    snprintf(path, sizeof(path), "%s/hub.db", dir);
    memset(key, 0x5a, sizeof(key));
    hub_store_options_t opt = {
        .path = path, .secret_key = key, .create = true, .clock = fixed_clock};
    char err[256];
    if (hub_store_open(&opt, &st, err, sizeof(err)) != 0)
        die(err);
    atexit(teardown);
    hub_workspace_t w;
    if (hub_store_bootstrap(st, "first", tok_operator, &w) != 0)
        die("bootstrap");
    memcpy(ws1, w.id, sizeof(ws1));
    if (hub_store_workspace_create(st, "second", &w) != 0)
        die("workspace");
    memcpy(ws2, w.id, sizeof(ws2));
    hub_token_info_t info;
    if (hub_store_token_create(st, ws1, "admin", HUB_SCOPE_ADMIN, NULL, tok_admin, NULL) != 0 ||
        hub_store_token_create(st, ws1, "member", HUB_SCOPE_MEMBER, NULL, tok_member, &info) != 0 ||
        hub_store_token_create(st, ws1, "gone", HUB_SCOPE_MEMBER, NULL, tok_revoked, NULL) != 0)
        die("tokens");
    memcpy(member_id, info.id, sizeof(member_id));

    hub_api_config_t cfg = {
        .public_domain = "example.test",
        .public_http_port = 8080,
        .tcp_port_lo = 30000,
        .tcp_port_hi = 30009,
        .rate_limit = 0,
        .max_tunnels = 20,
        .max_agents = 20,
        .clock = fixed_clock,
    };
    api = hub_api_new(st, &cfg);
    if (!api)
        die("api");

    /* The agent and its token, made the way enrollment makes them. */
    char enroll[HUB_TOKEN_STR_SIZE];
    hub_agent_t a;
    uint8_t agent_key[32];
    memset(agent_key, 0x11, sizeof(agent_key));
    if (hub_store_agent_create(st, ws1, "fuzz", 0, 0, enroll, &a) != 0 ||
        hub_store_agent_enroll(st, enroll, agent_key, &a) != 0 ||
        hub_store_token_create(st, ws1, "agent", HUB_SCOPE_AGENT, a.id, tok_agent, NULL) != 0)
        die("agent");
    memcpy(agent_id, a.id, sizeof(agent_id));

    char body[256];
    bearer(auth, tok_operator);
    snprintf(body, sizeof(body),
             "{\"target\":\"127.0.0.1:5432\",\"agentId\":\"%s\",\"name\":\"db\","
             "\"protocol\":\"tcp\",\"public\":true}",
             agent_id);
    j = call(HUB_POST, "/api/v1/tunnels", auth, body, &status);
    if (status != 201)
        die("tunnel 1");
    copy_field(j, "id", tun1, sizeof(tun1));
    json_decref(j);

    /* The second workspace's tunnel, made by its own admin. */
    char admin2[HUB_TOKEN_STR_SIZE], enroll2[HUB_TOKEN_STR_SIZE];
    hub_agent_t a2;
    if (hub_store_token_create(st, ws2, "admin2", HUB_SCOPE_ADMIN, NULL, admin2, NULL) != 0 ||
        hub_store_agent_create(st, ws2, "other", 0, 0, enroll2, &a2) != 0)
        die("second workspace");
    bearer(auth, admin2);
    snprintf(body, sizeof(body),
             "{\"target\":\"10.0.0.1:80\",\"agentId\":\"%s\",\"name\":\"web\","
             "\"protocol\":\"http\"}",
             a2.id);
    j = call(HUB_POST, "/api/v1/tunnels", auth, body, &status);
    if (status != 201)
        die("tunnel 2");
    copy_field(j, "id", tun2, sizeof(tun2));
    json_decref(j);

    /* A webhook of the first workspace (every event), for the routes on one. */
    bearer(auth, tok_admin);
    j = call(HUB_POST, "/api/v1/webhooks", auth, "{\"url\":\"https://hooks.example.test/c\"}",
             &status);
    if (status != 201)
        die("webhook");
    copy_field(j, "id", hook1, sizeof(hook1));
    json_decref(j);

    /* A revoked token: presented, it must be refused like an unknown one. */
    hub_token_info_t rinfo;
    if (hub_store_token_authenticate(st, tok_revoked, &rinfo) != 0 ||
        hub_store_token_delete(st, ws1, rinfo.id) != 0)
        die("revoke");
}

/* Copies src[0..n) into out (NUL-terminated, at most cap-1 bytes) with the
 * $-placeholders expanded. */
static void expand(const char *src, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        const char *rep = NULL;
        if (src[i] == '$' && i + 1 < n) {
            switch (src[i + 1]) {
            case 'W':
                rep = ws1;
                break;
            case 'X':
                rep = ws2;
                break;
            case 'A':
                rep = agent_id;
                break;
            case 'T':
                rep = tun1;
                break;
            case 'U':
                rep = tun2;
                break;
            case 'K':
                rep = member_id;
                break;
            case 'H':
                rep = hook1;
                break;
            default:
                break;
            }
        }
        if (rep) {
            size_t k = strlen(rep);
            if (o + k + 1 > cap)
                break;
            memcpy(out + o, rep, k);
            o += k;
            i++;
        } else {
            out[o++] = src[i];
        }
    }
    out[o] = '\0';
}

/* The next line of [*p, end) without its '\n'; *p moves past it. */
static const char *next_line(const char **p, const char *end, size_t *len)
{
    const char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    *len = nl ? (size_t)(nl - s) : (size_t)(end - s);
    *p = nl ? nl + 1 : end;
    return s;
}

static unsigned parse_method(const char *s, size_t n)
{
    static const struct {
        const char *name;
        unsigned bit;
    } m[] = {{"GET", HUB_GET},        {"POST", HUB_POST},     {"PUT", HUB_PUT},
             {"PATCH", HUB_PATCH},    {"DELETE", HUB_DELETE}, {"HEAD", HUB_HEAD},
             {"OPTIONS", HUB_OPTIONS}};
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if (strlen(m[i].name) == n && !memcmp(m[i].name, s, n))
            return m[i].bit;
    return n ? 1u << 7 : 0; /* a method the hub does not know */
}

static bool is_error_shape(json_t *j)
{
    json_t *errs = json_object_get(j, "errors");
    if (!json_is_array(errs) || json_array_size(errs) == 0)
        return false;
    size_t i;
    json_t *e;
    json_array_foreach(errs, i, e)
    {
        if (!json_is_string(json_object_get(e, "param")) ||
            !json_is_string(json_object_get(e, "details")))
            return false;
    }
    return true;
}

/* The route (method, path) reaches, NULL when none, from the dispatcher's
 * own tables, so that the harness checks the scope every route declares. */
static const hub_api_route_t *route_of(unsigned method, const char *path)
{
    if (method == HUB_HEAD)
        method = HUB_GET;
    for (size_t t = 0; t < hub_api_ntables; t++) {
        size_t idx = 0;
        unsigned allow = 0;
        hub_route_params_t params;
        if (hub_route_lookup(hub_api_tables[t].routes, *hub_api_tables[t].n,
                             sizeof(hub_api_route_t), method, path, &idx, &params,
                             &allow) == HUB_ROUTE_FOUND)
            return &hub_api_tables[t].routes[idx];
    }
    return NULL;
}

/* Whether a route that needs `need` was refused as it must be: 401 without
 * a valid credential, 403 (or 401 for a credential in the query) with one
 * of a scope below it. */
static bool scope_held(enum hub_api_auth need, bool valid_credential, int scope, int status)
{
    if (need == HUB_AUTH_NONE)
        return true;
    if (!valid_credential)
        return status == 401;
    bool enough =
        need == HUB_AUTH_TOKEN ||
        (need == HUB_AUTH_ADMIN && (scope == HUB_SCOPE_ADMIN || scope == HUB_SCOPE_OPERATOR)) ||
        (need == HUB_AUTH_OPERATOR && scope == HUB_SCOPE_OPERATOR);
    return enough || status == 403 || status == 401;
}

static bool known_status(int s)
{
    switch (s) {
    case 200:
    case 201:
    case 400:
    case 401:
    case 403:
    case 404:
    case 405:
    case 409:
    case 410:
    case 413:
    case 422:
    case 429:
        return true; /* not 500: with a healthy store, no input may cause one */
    default:
        return false;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[4096], qbuf[4096], body[MAX_TEXT + 1024], auth[16 + 512];
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("CN_FUZZ_VERBOSE") != NULL;
    if (!api)
        setup();
    if (size > MAX_TEXT)
        return 0;
    const char *p = (const char *)data, *end = p + size, *s;
    size_t n;

    s = next_line(&p, end, &n);
    unsigned method = parse_method(s, n);

    s = next_line(&p, end, &n);
    const char *authz = auth;
    bool valid_credential = true;
    int scope = -1;
    if (n == 8 && !memcmp(s, "operator", 8)) {
        bearer(auth, tok_operator);
        scope = HUB_SCOPE_OPERATOR;
    } else if (n == 5 && !memcmp(s, "admin", 5)) {
        bearer(auth, tok_admin);
        scope = HUB_SCOPE_ADMIN;
    } else if (n == 6 && !memcmp(s, "member", 6)) {
        bearer(auth, tok_member);
        scope = HUB_SCOPE_MEMBER;
    } else if (n == 5 && !memcmp(s, "agent", 5)) {
        bearer(auth, tok_agent);
        scope = HUB_SCOPE_AGENT;
    } else if (n == 7 && !memcmp(s, "revoked", 7)) {
        bearer(auth, tok_revoked);
        valid_credential = false;
    } else if (n == 1 && s[0] == '-') {
        authz = NULL;
        valid_credential = false;
    } else {
        if (n >= sizeof(auth) || memchr(s, '\0', n))
            return 0;
        memcpy(auth, s, n);
        auth[n] = '\0';
        valid_credential = false; /* random text is never a live token */
    }

    /* Path and query: lws hands both over NUL-terminated and decoded. */
    s = next_line(&p, end, &n);
    if (memchr(s, '\0', n))
        return 0;
    const char *q = memchr(s, '?', n);
    size_t plen = q ? (size_t)(q - s) : n;
    expand(s, plen, path, sizeof(path));
    hub_http_req_t req = {
        .method = method, .path = path, .authorization = authz, .peer = "192.0.2.1"};
    if (q) {
        expand(q + 1, n - plen - 1, qbuf, sizeof(qbuf));
        for (char *save = NULL, *arg = strtok_r(qbuf, "&", &save);
             arg && req.nquery < HUB_HTTP_MAX_QUERY; arg = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(arg, '=');
            if (eq)
                *eq++ = '\0';
            req.query[req.nquery].key = arg;
            req.query[req.nquery].value = eq ? eq : "";
            req.nquery++;
        }
    }

    /* The body on an exact-size heap copy, so that a read past it shows. */
    expand(p, (size_t)(end - p), body, sizeof(body));
    size_t blen = strlen(body);
    uint8_t *copy = blen ? malloc(blen) : NULL;
    if (blen) {
        if (!copy)
            abort();
        memcpy(copy, body, blen);
    }
    req.body = copy;
    req.body_len = blen;

    if (hub_store_tx_begin(st) != 0)
        abort();
    hub_http_resp_t resp = {0};
    hub_api_handle(api, &req, &resp);
    if (hub_store_tx_end(st, CN_ECLOSED) != CN_ECLOSED)
        abort(); /* the rollback failed: the store is no longer trustworthy */
    free(copy);

    if (verbose) /* for checking what the seeds reach */
        fprintf(stderr, "%s -> %d %.300s\n", path, resp.status, resp.body ? resp.body : "");
    if (!known_status(resp.status))
        abort();
    json_t *j = resp.body ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
    if (!json_is_object(j))
        abort();
    if (resp.status >= 400 && !is_error_shape(j))
        abort();
    if (resp.status == 405 && !resp.allow[0])
        abort();
    if (resp.status == 429 && !resp.retry_after)
        abort();
    /* Only health answers without a credential. */
    if (!valid_credential && resp.status < 300 && strncmp(path, "/api/v1/health", 14) != 0)
        abort();
    const hub_api_route_t *route = route_of(method, path);
    if (route && !scope_held(route->auth, valid_credential, scope, resp.status))
        abort();
    /* Webhooks make the hub send requests where they say: admins only,
     * whatever the route table declares. */
    if (!strncmp(path, "/api/v1/webhooks", 16) &&
        (scope == HUB_SCOPE_MEMBER || scope == HUB_SCOPE_AGENT) && resp.status < 400)
        abort();
    if (route && !strcmp(route->route.pattern, "/metrics") && resp.status != 403 &&
        resp.status != 401)
        abort();
    json_decref(j);
    hub_resp_clear(&resp);
    return 0;
}
