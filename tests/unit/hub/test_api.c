/* api: the REST dispatcher and handlers driven without sockets, against a
 * real store in a scratch directory and a hand-moved clock: statuses and
 * error params for bad input, authentication, admin checks, workspace
 * isolation, rate limits, and the tunnel lifecycle (agent online/offline,
 * pause/resume, TTL expiry) with its events. */
#include "hub_test.h"

#include <jansson.h>
#include <sodium.h>

#include "api.h"
#include "api_internal.h"
#include "cn_err.h"
#include "cn_id.h"
#include "cn_log.h"
#include "router.h"
#include "shares.h"
#include "store.h"
#include "tunnels.h"

#define T0 1795442400000LL

typedef struct fx {
    hub_test_store_t s; /* the clock at T0 */
    hub_api_t *api;
    char admin[HUB_TOKEN_STR_SIZE];
    char ws[HUB_ID_SIZE];
    /* last answer */
    int status;
    json_t *body;
    hub_http_resp_t resp;
    /* the live side handed to the API (zeroed: none) */
    hub_live_t live;
    unsigned changed_calls;
    char changed_agent[HUB_ID_SIZE];
    unsigned status_calls; /* live.tunnel_status: expired ones among them */
    unsigned status_expired;
    /* live.tunnel_changed: calls, removals, the last tunnel's id and name */
    unsigned delta_calls, delta_removed;
    char delta_id[HUB_ID_SIZE], delta_name[128];
    /* live.statuses_changed: calls, tunnels moved in all */
    unsigned statuses_calls, statuses_moved;
    bool serve;
    const char *peer; /* the caller's address; NULL = "test" */
} fx_t;

static void open_api(fx_t *f, unsigned rate_limit, size_t max_tunnels, size_t max_agents)
{
    hub_api_free(f->api);
    hub_api_config_t cfg = {
        .public_domain = "example.test",
        .public_http_port = 8080,
        .tcp_port_lo = 30000,
        .tcp_port_hi = 30001,
        .rate_limit = rate_limit,
        .max_tunnels = max_tunnels,
        .max_agents = max_agents,
        .live = f->live,
        .clock = hub_test_clock_read,
        .clock_ctx = &f->s.clock,
    };
    f->api = hub_api_new(f->s.st, &cfg);
    assert_non_null(f->api);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    hub_test_store_init(&f->s, 11, T0);
    hub_test_store_open(&f->s, NULL, true);
    hub_workspace_t w;
    assert_int_equal(hub_store_bootstrap(f->s.st, "default", f->admin, &w), 0);
    memcpy(f->ws, w.id, sizeof(f->ws));
    open_api(f, 0, 5, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    json_decref(f->body);
    hub_resp_clear(&f->resp);
    hub_api_free(f->api);
    hub_test_store_fini(&f->s);
    free(f);
    return 0;
}

/* Sends one request; `query` is "k=v&k2=v2" or NULL; token NULL = none. */
static int call(fx_t *f, unsigned method, const char *path, const char *query, const char *token,
                const char *body)
{
    hub_http_req_t req = {.method = method, .path = path, .peer = f->peer ? f->peer : "test"};
    char auth[128];
    if (token) {
        snprintf(auth, sizeof(auth), "Bearer %s", token);
        req.authorization = auth;
    }
    char qbuf[256];
    if (query) {
        snprintf(qbuf, sizeof(qbuf), "%s", query);
        for (char *save = NULL, *kv = strtok_r(qbuf, "&", &save); kv;
             kv = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(kv, '=');
            if (eq)
                *eq = '\0';
            req.query[req.nquery].key = kv;
            req.query[req.nquery].value = eq ? eq + 1 : "";
            req.nquery++;
        }
    }
    if (body) {
        req.body = (const uint8_t *)body;
        req.body_len = strlen(body);
    }
    json_decref(f->body);
    hub_resp_clear(&f->resp);
    hub_api_handle(f->api, &req, &f->resp);
    f->status = f->resp.status;
    f->body = json_loadb(f->resp.body, f->resp.body_len, 0, NULL);
    assert_non_null(f->body);
    return f->status;
}

/* Whether the last answer is an error naming `param`. */
static bool names_param(fx_t *f, const char *param)
{
    json_t *errs = json_object_get(f->body, "errors");
    size_t i;
    json_t *e;
    json_array_foreach(errs, i, e)
    {
        if (!strcmp(json_string_value(json_object_get(e, "param")), param))
            return true;
    }
    return false;
}

static const char *str(fx_t *f, const char *key)
{
    return json_string_value(json_object_get(f->body, key));
}

#define EXPECT(f, want, param)                                                                     \
    do {                                                                                           \
        if ((f)->status != (want) || ((param) && !names_param((f), (param))))                      \
            fail_msg("expected %d %s, got %d %s", (want), (param) ? (param) : "", (f)->status,     \
                     (f)->resp.body);                                                              \
    } while (0)

/* PATCH `path` as the admin with `body`, which must answer 200. */
static void patch_ok(fx_t *f, const char *path, const char *body)
{
    call(f, HUB_PATCH, path, NULL, f->admin, body);
    EXPECT(f, 200, NULL);
}

static void make_agent(fx_t *f, const char *token, char id[static HUB_ID_SIZE])
{
    call(f, HUB_POST, "/api/v1/agents", NULL, token, "{\"name\":\"a\"}");
    EXPECT(f, 201, NULL);
    snprintf(id, HUB_ID_SIZE, "%s", str(f, "id"));
}

static void make_tunnel(fx_t *f, const char *agent, const char *extra, char id[static HUB_ID_SIZE])
{
    char body[512];
    snprintf(body, sizeof(body), "{\"target\":\"localhost:80\",\"agentId\":\"%s\"%s%s}", agent,
             extra ? "," : "", extra ? extra : "");
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, body);
    EXPECT(f, 201, NULL);
    snprintf(id, HUB_ID_SIZE, "%s", str(f, "id"));
}

static void test_routing_and_auth(void **state)
{
    fx_t *f = *state;
    call(f, HUB_GET, "/api/v1/health", NULL, NULL, NULL);
    EXPECT(f, 200, NULL);
    assert_string_equal(str(f, "status"), "ok");
    call(f, HUB_HEAD, "/api/v1/health", NULL, NULL, NULL);
    EXPECT(f, 200, NULL);
    call(f, HUB_GET, "/api/v1/nothing", NULL, f->admin, NULL);
    EXPECT(f, 404, "path");
    call(f, HUB_PUT, "/api/v1/tunnels", NULL, f->admin, "{}");
    EXPECT(f, 405, "method");
    assert_string_equal(f->resp.allow, "GET, HEAD, POST");
    call(f, HUB_GET, "/api/v1/tunnels", NULL, NULL, NULL);
    EXPECT(f, 401, "Authorization");
    call(f, HUB_GET, "/api/v1/tunnels", NULL, "cnt_nope", NULL);
    EXPECT(f, 401, "Authorization");
    call(f, HUB_GET, "/api/v1/tunnels", "token=abc", f->admin, NULL);
    EXPECT(f, 401, "token");
    call(f, HUB_GET, "/api/v1/tunnels", "API_KEY=abc", NULL, NULL);
    EXPECT(f, 401, "api_key");
    /* Scheme other than Bearer. */
    hub_http_req_t req = {.method = HUB_GET, .path = "/api/v1/tunnels", .peer = "t"};
    char basic[128];
    snprintf(basic, sizeof(basic), "Basic %s", f->admin);
    req.authorization = basic;
    hub_resp_clear(&f->resp);
    hub_api_handle(f->api, &req, &f->resp);
    assert_int_equal(f->resp.status, 401);
    /* Case-insensitive scheme. */
    snprintf(basic, sizeof(basic), "bearer %s", f->admin);
    hub_resp_clear(&f->resp);
    hub_api_handle(f->api, &req, &f->resp);
    assert_int_equal(f->resp.status, 200);
    call(f, HUB_GET, "/api/v1/tunnels", NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    assert_true(json_is_array(json_object_get(f->body, "tunnels")));
}

static void test_bodies(void **state)
{
    fx_t *f = *state;
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, "{\"target\":");
    EXPECT(f, 400, "body");
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, "\"string\"");
    EXPECT(f, 400, "body");
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, "{\"a\":\"\xc3\x28\"}");
    EXPECT(f, 400, "body");
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, "{\"a\":1,\"a\":1}");
    EXPECT(f, 400, "body");
    /* An empty body is an empty object: every required field is named. */
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, NULL);
    EXPECT(f, 422, "target");
    EXPECT(f, 422, "agentId");
}

static void test_tunnel_validation(void **state)
{
    fx_t *f = *state;
    char agent[HUB_ID_SIZE];
    make_agent(f, f->admin, agent);
    static const struct {
        const char *extra;
        const char *param;
    } bad[] = {
        {"\"target\":\"h:0\"", "target"},
        {"\"target\":{\"host\":\"h\",\"port\":65536}", "target"},
        {"\"target\":{\"host\":\"h\"}", "target"},
        {"\"target\":{\"host\":\"h\",\"port\":1,\"x\":1}", "target"},
        {"\"target\":true", "target"},
        {"\"name\":\"\"", "name"},
        {"\"name\":\"a b\"", "name"},
        {"\"name\":[]", "name"},
        {"\"protocol\":\"TCP\"", "protocol"},
        {"\"public\":1", "public"},
        {"\"hubPort\":1.5", "hubPort"},
        {"\"hubPort\":29999", "hubPort"},
        {"\"ttl\":-5", "ttl"},
        {"\"ttl\":2592001", "ttl"},
        {"\"idleTimeout\":-1", "idleTimeout"},
        {"\"idleTimeout\":604801", "idleTimeout"},
        {"\"idleTimeout\":\"60\"", "idleTimeout"},
        {"\"idleTimeout\":1.5", "idleTimeout"},
        {"\"httpUser\":\"\"", "httpUser"},
        {"\"httpUser\":\"u\",\"protocol\":\"tcp\"", "httpUser"},
        {"\"metadata\":\"m\"", "metadata"},
        {"\"agentId\":\"nope\"", "agentId"},
        {"\"extra\":null", "extra"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[600];
        /* Later keys win in neither direction: give target/agentId only
         * when the case does not. */
        bool has_target = strstr(bad[i].extra, "\"target\"") != NULL;
        bool has_agent = strstr(bad[i].extra, "\"agentId\"") != NULL;
        snprintf(body, sizeof(body), "{%s%s%s%s%s%s}", has_target ? "" : "\"target\":\"h:1\",",
                 has_agent ? "" : "\"agentId\":\"", has_agent ? "" : agent, has_agent ? "" : "\",",
                 bad[i].extra, "");
        call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, body);
        if (f->status != 422 || !names_param(f, bad[i].param))
            fail_msg("case %zu (%s): %d %s", i, body, f->status, f->resp.body);
    }
    char body[300];
    char name[102];
    memset(name, 'n', 101);
    name[101] = '\0';
    snprintf(body, sizeof(body), "{\"target\":\"h:1\",\"agentId\":\"%s\",\"name\":\"%s\"}", agent,
             name);
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, body);
    EXPECT(f, 422, "name");
    /* Unknown agent of the right shape: 422 on agentId, not 404. */
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin,
         "{\"target\":\"h:1\",\"agentId\":\"00000000-0000-4000-8000-000000000000\"}");
    EXPECT(f, 422, "agentId");
}

static void test_tunnel_object_and_conflicts(void **state)
{
    fx_t *f = *state;
    char agent[HUB_ID_SIZE], id[HUB_ID_SIZE];
    make_agent(f, f->admin, agent);
    make_tunnel(f, agent, "\"name\":\"app\",\"protocol\":\"http\",\"public\":true,\"ttl\":60", id);
    static const char *const fields[] = {
        "id",          "name",      "agentId",   "target",    "protocol",         "public",
        "publicUrl",   "hubPort",   "status",    "metadata",  "connectionString", "createdAt",
        "connectedAt", "expiresAt", "updatedAt", "lastError", "idleTimeout",      NULL,
    };
    for (size_t i = 0; fields[i]; i++)
        if (!json_object_get(f->body, fields[i]))
            fail_msg("missing %s in %s", fields[i], f->resp.body);
    assert_string_equal(str(f, "publicUrl"), "http://app.example.test:8080/");
    assert_string_equal(str(f, "status"), "connecting");
    assert_string_equal(str(f, "expiresAt"), "2026-11-23T14:01:00.000Z");
    assert_string_equal(str(f, "target"), "localhost:80");
    /* No idle timeout of its own: the hub's. */
    assert_true(json_is_null(json_object_get(f->body, "idleTimeout")));

    char body[300];
    snprintf(body, sizeof(body), "{\"target\":\"h:1\",\"agentId\":\"%s\",\"name\":\"app\"}", agent);
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, body);
    EXPECT(f, 409, "name");

    /* Public TCP tunnels get hub ports from the range, then run out. */
    char t1[HUB_ID_SIZE], t2[HUB_ID_SIZE];
    make_tunnel(f, agent, "\"protocol\":\"tcp\",\"public\":true", t1);
    assert_int_equal(json_integer_value(json_object_get(f->body, "hubPort")), 30000);
    assert_string_equal(str(f, "publicUrl"), "tcp://example.test:30000");
    make_tunnel(f, agent, "\"protocol\":\"tcp\",\"public\":true,\"idleTimeout\":90", t2);
    assert_int_equal(json_integer_value(json_object_get(f->body, "hubPort")), 30001);
    assert_int_equal(json_integer_value(json_object_get(f->body, "idleTimeout")), 90);
    snprintf(body, sizeof(body),
             "{\"target\":\"h:1\",\"agentId\":\"%s\",\"protocol\":\"tcp\",\"public\":true}", agent);
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, body);
    EXPECT(f, 409, "hubPort");
    snprintf(body, sizeof(body), "{\"target\":\"h:1\",\"agentId\":\"%s\",\"hubPort\":30000}",
             agent);
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, body);
    EXPECT(f, 409, "hubPort");

    /* Cap of 5 per workspace: 3 made, 2 more fit. */
    char t[HUB_ID_SIZE];
    make_tunnel(f, agent, NULL, t);
    make_tunnel(f, agent, NULL, t);
    snprintf(body, sizeof(body), "{\"target\":\"h:1\",\"agentId\":\"%s\"}", agent);
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, body);
    EXPECT(f, 409, "tunnels");
}

/* An agent holds at most HUB_API_TUNNELS_PER_AGENT tunnels, whatever the
 * workspace's cap: what the agent keeps (AGENT_ALLOWLIST_MAX), so that it
 * serves every tunnel it is given. */
static void test_tunnels_per_agent_cap(void **state)
{
    fx_t *f = *state;
    open_api(f, 0, 0, 0); /* no per-workspace cap */
    char agent[HUB_ID_SIZE], other[HUB_ID_SIZE], id[HUB_ID_SIZE];
    make_agent(f, f->admin, agent);
    make_agent(f, f->admin, other);
    /* All but one straight through the store (one transaction): the API
     * makes the last that fits. */
    assert_int_equal(hub_store_tx_begin(f->s.st), 0);
    int rc = 0;
    for (int i = 0; rc == 0 && i < HUB_API_TUNNELS_PER_AGENT - 1; i++) {
        char name[16];
        snprintf(name, sizeof(name), "t%d", i);
        hub_tunnel_spec_t spec = {.name = name,
                                  .agent_id = agent,
                                  .target_host = "localhost",
                                  .target_port = 80,
                                  .protocol = HUB_PROTO_TCP};
        rc = hub_store_tunnel_create(f->s.st, f->ws, &spec, NULL, NULL);
    }
    assert_int_equal(hub_store_tx_end(f->s.st, rc), 0);
    make_tunnel(f, agent, NULL, id);
    char body[300];
    snprintf(body, sizeof(body), "{\"target\":\"h:1\",\"agentId\":\"%s\"}", agent);
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, body);
    EXPECT(f, 409, "agentId");
    char want[96];
    snprintf(want, sizeof(want), "this agent already has the maximum of %d tunnels",
             HUB_API_TUNNELS_PER_AGENT);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(f->body, "errors"), 0), "details")),
                        want);
    /* Another agent of the workspace still gets tunnels, and none can be
     * moved over to the full agent: PATCH knows no agentId. */
    make_tunnel(f, other, NULL, id);
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", id);
    snprintf(body, sizeof(body), "{\"agentId\":\"%s\"}", agent);
    call(f, HUB_PATCH, path, NULL, f->admin, body);
    EXPECT(f, 422, "agentId");
    size_t n = 0;
    assert_int_equal(hub_store_tunnel_count_agent(f->s.st, f->ws, agent, &n), 0);
    assert_int_equal(n, HUB_API_TUNNELS_PER_AGENT);
    /* One deleted makes room again. */
    hub_tunnel_t t;
    assert_int_equal(hub_store_tunnel_get_by_name(f->s.st, f->ws, "t0", &t), 0);
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", t.id);
    hub_tunnel_clear(&t);
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    make_tunnel(f, agent, NULL, id);
}

static void test_isolation_and_admin(void **state)
{
    fx_t *f = *state;
    char agent[HUB_ID_SIZE], tun[HUB_ID_SIZE], path[128];
    make_agent(f, f->admin, agent);
    make_tunnel(f, agent, NULL, tun);

    call(f, HUB_POST, "/api/v1/workspaces", NULL, f->admin, "{\"name\":\"other\"}");
    EXPECT(f, 201, NULL);
    char ws2[HUB_ID_SIZE];
    snprintf(ws2, sizeof(ws2), "%s", str(f, "id"));
    snprintf(path, sizeof(path), "/api/v1/workspaces/%s/tokens", ws2);
    call(f, HUB_POST, path, NULL, f->admin, "{}");
    EXPECT(f, 201, NULL);
    char tok2[HUB_TOKEN_STR_SIZE];
    snprintf(tok2, sizeof(tok2), "%s", str(f, "token"));
    assert_true(json_is_false(json_object_get(f->body, "admin")));

    call(f, HUB_GET, "/api/v1/workspaces", NULL, tok2, NULL);
    EXPECT(f, 403, "Authorization");
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", tun);
    call(f, HUB_GET, path, NULL, tok2, NULL);
    EXPECT(f, 404, "id");
    call(f, HUB_DELETE, path, NULL, tok2, NULL);
    EXPECT(f, 404, "id");
    call(f, HUB_PATCH, path, NULL, tok2, "{\"status\":\"paused\"}");
    EXPECT(f, 404, "id");
    snprintf(path, sizeof(path), "/api/v1/agents/%s", agent);
    call(f, HUB_GET, path, NULL, tok2, NULL);
    EXPECT(f, 404, "id");
    call(f, HUB_GET, "/api/v1/tunnels", NULL, tok2, NULL);
    EXPECT(f, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(f->body, "tunnels")), 0);
    /* The owner still sees it. */
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", tun);
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
}

static void test_rate_limit(void **state)
{
    fx_t *f = *state;
    open_api(f, 3, 5, 0);
    for (int i = 0; i < 3; i++) {
        call(f, HUB_GET, "/api/v1/agents", NULL, f->admin, NULL);
        EXPECT(f, 200, NULL);
        assert_int_equal(f->resp.ratelimit_limit, 3);
    }
    call(f, HUB_GET, "/api/v1/agents", NULL, f->admin, NULL);
    EXPECT(f, 429, NULL);
    assert_true(f->resp.retry_after >= 1);
    /* Health is not limited; other tokens are not affected. */
    call(f, HUB_GET, "/api/v1/health", NULL, NULL, NULL);
    EXPECT(f, 200, NULL);
    f->s.clock.now += 60 * 1000;
    call(f, HUB_GET, "/api/v1/agents", NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
}

/* Failed authentications are counted per client address (IPv6: per /64):
 * past the limit the address gets 429 with Retry-After without its token
 * being checked, other addresses are unaffected, and the budget comes back
 * with time. */
static void test_auth_failures_limited_per_address(void **state)
{
    fx_t *f = *state;
    hub_api_free(f->api);
    hub_api_config_t cfg = {
        .auth_fail_rate = 3,
        .clock = hub_test_clock_read,
        .clock_ctx = &f->s.clock,
    };
    f->api = hub_api_new(f->s.st, &cfg);
    assert_non_null(f->api);
    f->peer = "2001:db8:1:2::10";
    for (int i = 0; i < 3; i++) {
        call(f, HUB_GET, "/api/v1/agents", NULL, "cnt_wrong", NULL);
        EXPECT(f, 401, "Authorization");
    }
    call(f, HUB_GET, "/api/v1/agents", NULL, NULL, NULL); /* no token at all */
    EXPECT(f, 429, "Authorization");
    assert_true(f->resp.retry_after >= 1);
    /* The same /64, another host: still throttled, even with a good token. */
    f->peer = "2001:db8:1:2::99";
    call(f, HUB_GET, "/api/v1/agents", NULL, f->admin, NULL);
    EXPECT(f, 429, "Authorization");
    /* Another address is not affected; public routes never are. */
    f->peer = "192.0.2.1";
    call(f, HUB_GET, "/api/v1/agents", NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    f->peer = "2001:db8:1:2::10";
    call(f, HUB_GET, "/api/v1/health", NULL, NULL, NULL);
    EXPECT(f, 200, NULL);
    f->s.clock.now += 60 * 1000;
    call(f, HUB_GET, "/api/v1/agents", NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    f->peer = NULL;
}

/* Every route of every table answers 422 naming an unknown query argument
 * (docs/api.md), and the arguments a route takes pass the check; one given
 * twice is 422 too. The dispatcher checks from the route table, so a new
 * endpoint cannot forget it. */
static void test_unknown_query_every_route(void **state)
{
    fx_t *f = *state;
    size_t checked = 0;
    for (size_t t = 0; t < hub_api_ntables; t++) {
        for (size_t i = 0; i < *hub_api_tables[t].n; i++) {
            const hub_api_route_t *r = &hub_api_tables[t].routes[i];
            /* Path parameters: a well-formed id of nothing (404 once past
             * the query check, which comes first). */
            char path[256];
            size_t o = 0;
            for (const char *p = r->route.pattern; *p && o + 40 < sizeof(path);) {
                if (*p == '{') {
                    o += (size_t)snprintf(path + o, sizeof(path) - o, "%s", f->ws);
                    p = strchr(p, '}') + 1;
                } else {
                    path[o++] = *p++;
                }
            }
            path[o] = '\0';
            call(f, r->route.method, path, "bogus=1", f->admin, "{}");
            if (r->gate) { /* refuses this fixture's peer before the query
                            * (test_metrics_access has the 422 it passes to) */
                if (f->status != 401 && f->status != 403)
                    fail_msg("%s %s?bogus=1 answered %d", hub_method_name(r->route.method), path,
                             f->status);
                checked++;
                continue;
            }
            if (f->status != 422 || !names_param(f, "bogus"))
                fail_msg("%s %s?bogus=1 answered %d", hub_method_name(r->route.method), path,
                         f->status);
            for (size_t k = 0; r->query && r->query[k]; k++) {
                char q[64];
                snprintf(q, sizeof(q), "%s=x&%s=y", r->query[k], r->query[k]);
                call(f, r->route.method, path, q, f->admin, NULL);
                if (f->status != 422 || !names_param(f, r->query[k]))
                    fail_msg("%s %s?%s answered %d", hub_method_name(r->route.method), path, q,
                             f->status);
                snprintf(q, sizeof(q), "%s=x", r->query[k]);
                call(f, r->route.method, path, q, f->admin, NULL);
                if (names_param(f, "bogus") || (f->status == 422 && !names_param(f, r->query[k])))
                    fail_msg("%s %s?%s answered %d", hub_method_name(r->route.method), path, q,
                             f->status);
            }
            checked++;
        }
    }
    assert_true(checked >= 15);
}

/* Types of the workspace's events about `tunnel`, joined by spaces. */
static void event_types(fx_t *f, const char *tunnel, char *out, size_t outlen)
{
    char q[80];
    snprintf(q, sizeof(q), "tunnelId=%s", tunnel);
    call(f, HUB_GET, "/api/v1/events", q, f->admin, NULL);
    EXPECT(f, 200, NULL);
    out[0] = '\0';
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(f->body, "events"), i, e)
    {
        size_t n = strlen(out);
        snprintf(out + n, outlen - n, "%s%s", n ? " " : "",
                 json_string_value(json_object_get(e, "type")));
        json_t *to = json_object_get(json_object_get(e, "data"), "to");
        if (to) {
            n = strlen(out);
            snprintf(out + n, outlen - n, ":%s", json_string_value(to));
        }
    }
}

static void test_lifecycle(void **state)
{
    fx_t *f = *state;
    char agent[HUB_ID_SIZE], tun[HUB_ID_SIZE], path[128], types[1024];
    make_agent(f, f->admin, agent);
    make_tunnel(f, agent, "\"name\":\"svc\"", tun);
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", tun);

    /* Agent comes online: connecting -> active. */
    f->s.clock.now += 1000;
    assert_int_equal(hub_tunnels_on_agent_online(f->s.st, NULL, f->ws, agent), 0);
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    assert_string_equal(str(f, "status"), "active");
    assert_string_equal(str(f, "connectedAt"), "2026-11-23T14:00:01.000Z");

    /* Pause, agent drops (paused stays), resume gives connecting. */
    patch_ok(f, path, "{\"status\":\"paused\"}");
    assert_string_equal(str(f, "status"), "paused");
    assert_int_equal(hub_tunnels_on_agent_offline(f->s.st, NULL, f->ws, agent), 0);
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    assert_string_equal(str(f, "status"), "paused");
    call(f, HUB_PATCH, path, NULL, f->admin, "{\"status\":\"active\"}");
    assert_string_equal(str(f, "status"), "connecting");
    assert_int_equal(hub_tunnels_on_agent_online(f->s.st, NULL, f->ws, agent), 0);
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    assert_string_equal(str(f, "status"), "active");
    /* A new tunnel of an online agent is active at once. */
    char tun2[HUB_ID_SIZE];
    make_tunnel(f, agent, NULL, tun2);
    assert_string_equal(str(f, "status"), "active");
    assert_int_equal(hub_tunnels_on_agent_offline(f->s.st, NULL, f->ws, agent), 0);
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    assert_string_equal(str(f, "status"), "connecting");

    /* Patch validation. */
    call(f, HUB_PATCH, path, NULL, f->admin, "{\"status\":\"error\"}");
    EXPECT(f, 422, "status");
    call(f, HUB_PATCH, path, NULL, f->admin, "{\"target\":\"x:1\"}");
    EXPECT(f, 422, "target");
    call(f, HUB_PATCH, path, NULL, f->admin, "{\"metadata\":[]}");
    EXPECT(f, 422, "metadata");
    call(f, HUB_PATCH, path, NULL, f->admin, "{}");
    EXPECT(f, 422, "body");
    call(f, HUB_PATCH, path, NULL, f->admin, "{\"idleTimeout\":604801}");
    EXPECT(f, 422, "idleTimeout");
    patch_ok(f, path, "{\"name\":\"renamed\",\"metadata\":{\"k\":[1]}}");
    assert_string_equal(str(f, "name"), "renamed");
    /* A tunnel's own idle timeout, kept by the store, and back to the
     * hub's with null. */
    patch_ok(f, path, "{\"idleTimeout\":0}");
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    assert_int_equal(json_integer_value(json_object_get(f->body, "idleTimeout")), 0);
    assert_true(json_is_integer(json_object_get(f->body, "idleTimeout")));
    patch_ok(f, path, "{\"idleTimeout\":null}");
    assert_true(json_is_null(json_object_get(f->body, "idleTimeout")));

    event_types(f, tun, types, sizeof(types));
    assert_string_equal(types, "tunnel.created tunnel.status_changed:active "
                               "tunnel.status_changed:paused tunnel.status_changed:connecting "
                               "tunnel.status_changed:active tunnel.status_changed:connecting "
                               "tunnel.updated tunnel.updated tunnel.updated");

    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    EXPECT(f, 404, "id");
    event_types(f, tun, types, sizeof(types));
    assert_non_null(strstr(types, "tunnel.deleted"));
}

static void test_ttl_expiry(void **state)
{
    fx_t *f = *state;
    char agent[HUB_ID_SIZE], tun[HUB_ID_SIZE], keep[HUB_ID_SIZE], path[128], types[512];
    make_agent(f, f->admin, agent);
    make_tunnel(f, agent, "\"ttl\":5", tun);
    make_tunnel(f, agent, NULL, keep);
    size_t n = 99;
    f->s.clock.now += 4000;
    assert_int_equal(hub_tunnels_expire_due(f->s.st, NULL, &n), 0);
    assert_int_equal(n, 0);
    f->s.clock.now += 1000;
    assert_int_equal(hub_tunnels_expire_due(f->s.st, NULL, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(hub_tunnels_expire_due(f->s.st, NULL, &n), 0);
    assert_int_equal(n, 0);
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", tun);
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    assert_string_equal(str(f, "status"), "expired");
    call(f, HUB_PATCH, path, NULL, f->admin, "{\"status\":\"active\"}");
    EXPECT(f, 409, "status");
    event_types(f, tun, types, sizeof(types));
    assert_string_equal(types, "tunnel.created tunnel.status_changed:expired");
    call(f, HUB_GET, "/api/v1/tunnels", "status=expired", f->admin, NULL);
    assert_int_equal(json_array_size(json_object_get(f->body, "tunnels")), 1);
    call(f, HUB_GET, "/api/v1/tunnels", "status=gone", f->admin, NULL);
    EXPECT(f, 422, "status");
    call(f, HUB_GET, "/api/v1/tunnels", "status=active&status=paused", f->admin, NULL);
    EXPECT(f, 422, "status");
}

/* GET /events?after=N is a cursor from event N, and after=0 starts at the
 * first event (not the latest page, which is what no cursor means). */
static void test_events_cursor(void **state)
{
    fx_t *f = *state;
    char agent[HUB_ID_SIZE];
    for (int i = 0; i < 4; i++)
        make_agent(f, f->admin, agent); /* one agent.created event each */
    call(f, HUB_GET, "/api/v1/events", "limit=2", f->admin, NULL);
    EXPECT(f, 200, NULL);
    json_t *ev = json_object_get(f->body, "events");
    assert_int_equal(json_array_size(ev), 2);
    json_int_t latest = json_integer_value(json_object_get(json_array_get(ev, 0), "id"));

    call(f, HUB_GET, "/api/v1/events", "after=0&limit=2", f->admin, NULL);
    EXPECT(f, 200, NULL);
    ev = json_object_get(f->body, "events");
    assert_int_equal(json_array_size(ev), 2);
    json_int_t first = json_integer_value(json_object_get(json_array_get(ev, 0), "id"));
    json_int_t second = json_integer_value(json_object_get(json_array_get(ev, 1), "id"));
    assert_true(first < second);
    assert_true(first < latest);

    char q[64];
    snprintf(q, sizeof(q), "after=%lld&limit=1", (long long)first);
    call(f, HUB_GET, "/api/v1/events", q, f->admin, NULL);
    EXPECT(f, 200, NULL);
    ev = json_object_get(f->body, "events");
    assert_int_equal(json_array_size(ev), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ev, 0), "id")), second);
}

static void test_agents(void **state)
{
    fx_t *f = *state;
    char agent[HUB_ID_SIZE], tun[HUB_ID_SIZE], path[128];
    make_agent(f, f->admin, agent);
    assert_non_null(strstr(str(f, "enrollToken"), "cne_"));
    assert_string_equal(str(f, "status"), "pending");
    make_tunnel(f, agent, NULL, tun);
    snprintf(path, sizeof(path), "/api/v1/agents/%s", agent);
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    assert_null(json_object_get(f->body, "enrollToken"));
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    EXPECT(f, 404, "id");
    /* Its tunnel went with it, with an event. */
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", tun);
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    EXPECT(f, 404, "id");
    char types[256];
    event_types(f, tun, types, sizeof(types));
    assert_string_equal(types, "tunnel.created tunnel.deleted");
    call(f, HUB_POST, "/api/v1/agents", NULL, f->admin, "{\"name\":\"\\u0001\"}");
    EXPECT(f, 422, "name");
    call(f, HUB_GET, "/api/v1/agents", "x=1", f->admin, NULL);
    EXPECT(f, 422, "x");
}

/* ---- scopes: operator, admin, member, agent ------------------------------ */

/* What enrollment does: an API token bound to `agent`. */
static void agent_token(fx_t *f, const char *agent, char tok[static HUB_TOKEN_STR_SIZE])
{
    assert_int_equal(
        hub_store_token_create(f->s.st, f->ws, "agent", HUB_SCOPE_AGENT, agent, tok, NULL), 0);
}

/* Mints a token in workspace `ws` with `body`, as `as`; returns its id. */
static void mint(fx_t *f, const char *as, const char *ws, const char *body,
                 char tok[static HUB_TOKEN_STR_SIZE], char id[static HUB_ID_SIZE])
{
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/workspaces/%s/tokens", ws);
    call(f, HUB_POST, path, NULL, as, body);
    EXPECT(f, 201, NULL);
    snprintf(tok, HUB_TOKEN_STR_SIZE, "%s", str(f, "token"));
    snprintf(id, HUB_ID_SIZE, "%s", str(f, "id"));
}

static void test_agent_token_acts_only_for_its_agent(void **state)
{
    fx_t *f = *state;
    char a[HUB_ID_SIZE], b[HUB_ID_SIZE], ta[HUB_TOKEN_STR_SIZE], body[256], path[128];
    char mine[HUB_ID_SIZE], theirs[HUB_ID_SIZE];
    make_agent(f, f->admin, a);
    make_agent(f, f->admin, b);
    agent_token(f, a, ta);
    make_tunnel(f, b, "\"name\":\"theirs\"", theirs);

    /* Tunnels for another agent: 403, whatever the target. */
    snprintf(body, sizeof(body), "{\"target\":\"10.0.0.5:22\",\"agentId\":\"%s\"}", b);
    call(f, HUB_POST, "/api/v1/tunnels", NULL, ta, body);
    EXPECT(f, 403, "agentId");
    /* Its own, named or by default. */
    snprintf(body, sizeof(body), "{\"target\":\"localhost:5432\",\"agentId\":\"%s\"}", a);
    call(f, HUB_POST, "/api/v1/tunnels", NULL, ta, body);
    EXPECT(f, 201, NULL);
    assert_string_equal(str(f, "agentId"), a);
    call(f, HUB_POST, "/api/v1/tunnels", NULL, ta, "{\"target\":\"localhost:6379\"}");
    EXPECT(f, 201, NULL);
    assert_string_equal(str(f, "agentId"), a);
    snprintf(mine, sizeof(mine), "%s", str(f, "id"));
    /* Other scopes still must name the agent. */
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, "{\"target\":\"localhost:6379\"}");
    EXPECT(f, 422, "agentId");

    /* It reads the workspace's tunnels, but changes only its own. */
    call(f, HUB_GET, "/api/v1/tunnels", NULL, ta, NULL);
    EXPECT(f, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(f->body, "tunnels")), 3);
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", theirs);
    call(f, HUB_GET, path, NULL, ta, NULL);
    EXPECT(f, 200, NULL);
    call(f, HUB_PATCH, path, NULL, ta, "{\"status\":\"paused\"}");
    EXPECT(f, 403, "id");
    call(f, HUB_DELETE, path, NULL, ta, NULL);
    EXPECT(f, 403, "id");
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    assert_string_equal(str(f, "status"), "connecting"); /* untouched */
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", mine);
    call(f, HUB_PATCH, path, NULL, ta, "{\"status\":\"paused\"}");
    EXPECT(f, 200, NULL);
    call(f, HUB_DELETE, path, NULL, ta, NULL);
    EXPECT(f, 200, NULL);
    call(f, HUB_GET, "/api/v1/events", NULL, ta, NULL);
    EXPECT(f, 200, NULL);

    /* No agent, token or workspace administration. */
    call(f, HUB_POST, "/api/v1/agents", NULL, ta, "{}");
    EXPECT(f, 403, "Authorization");
    snprintf(path, sizeof(path), "/api/v1/agents/%s", b);
    call(f, HUB_DELETE, path, NULL, ta, NULL);
    EXPECT(f, 403, "Authorization");
    call(f, HUB_GET, "/api/v1/tokens", NULL, ta, NULL);
    EXPECT(f, 403, "Authorization");
    snprintf(path, sizeof(path), "/api/v1/workspaces/%s/tokens", f->ws);
    call(f, HUB_POST, path, NULL, ta, "{}");
    EXPECT(f, 403, "Authorization");
    call(f, HUB_POST, "/api/v1/workspaces", NULL, ta, "{\"name\":\"x\"}");
    EXPECT(f, 403, "Authorization");

    /* Deleting the agent revokes its token at once. */
    call(f, HUB_GET, "/api/v1/agents", NULL, ta, NULL);
    EXPECT(f, 200, NULL);
    snprintf(path, sizeof(path), "/api/v1/agents/%s", a);
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    call(f, HUB_GET, "/api/v1/tunnels", NULL, ta, NULL);
    EXPECT(f, 401, "Authorization");
}

/* Shares by scope, as tunnels: an agent token shares and revokes only its
 * own agent's tunnels (403 naming the tunnel's or share's id otherwise) and
 * reads the workspace's; an admin manages every share. */
static void test_agent_token_shares_only_its_tunnels(void **state)
{
    fx_t *f = *state;
    char a[HUB_ID_SIZE], b[HUB_ID_SIZE], ta[HUB_TOKEN_STR_SIZE], path[160];
    char mine[HUB_ID_SIZE], theirs[HUB_ID_SIZE], my_share[HUB_ID_SIZE], their_share[HUB_ID_SIZE];
    make_agent(f, f->admin, a);
    make_agent(f, f->admin, b);
    agent_token(f, a, ta);
    make_tunnel(f, a, "\"name\":\"mine\",\"protocol\":\"http\",\"public\":true", mine);
    make_tunnel(f, b, "\"name\":\"theirs\",\"protocol\":\"http\",\"public\":true", theirs);

    /* Creating: another agent's tunnel is 403 and makes nothing. */
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s/shares", theirs);
    call(f, HUB_POST, path, NULL, ta, "{\"expiresIn\":\"1h\"}");
    EXPECT(f, 403, "id");
    call(f, HUB_GET, "/api/v1/shares", NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(f->body, "shares")), 0);
    call(f, HUB_POST, path, NULL, f->admin, "{\"expiresIn\":\"1h\"}");
    EXPECT(f, 201, NULL);
    snprintf(their_share, sizeof(their_share), "%s", str(f, "id"));
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s/shares", mine);
    call(f, HUB_POST, path, NULL, ta, "{\"expiresIn\":\"1h\"}");
    EXPECT(f, 201, NULL);
    snprintf(my_share, sizeof(my_share), "%s", str(f, "id"));
    assert_string_equal(str(f, "tunnelId"), mine);
    assert_true(!strncmp(str(f, "shareUrl"), "http://share-", 13));

    /* Reading: the workspace's shares, as for tunnels. */
    call(f, HUB_GET, "/api/v1/shares", NULL, ta, NULL);
    EXPECT(f, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(f->body, "shares")), 2);
    snprintf(path, sizeof(path), "/api/v1/shares/%s", their_share);
    call(f, HUB_GET, path, NULL, ta, NULL);
    EXPECT(f, 200, NULL);

    /* Revoking: its own only; the other share stays active. */
    call(f, HUB_DELETE, path, NULL, ta, NULL);
    EXPECT(f, 403, "id");
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    assert_string_equal(str(f, "status"), "active");
    snprintf(path, sizeof(path), "/api/v1/shares/%s", my_share);
    call(f, HUB_DELETE, path, NULL, ta, NULL);
    EXPECT(f, 200, NULL);
    assert_string_equal(str(f, "status"), "revoked");
    snprintf(path, sizeof(path), "/api/v1/shares/%s", their_share);
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    assert_string_equal(str(f, "status"), "revoked");
}

static void test_roles(void **state)
{
    fx_t *f = *state;
    char path[128], ws2[HUB_ID_SIZE], adm2[HUB_TOKEN_STR_SIZE], mem2[HUB_TOKEN_STR_SIZE];
    char id[HUB_ID_SIZE], agent[HUB_ID_SIZE], tun[HUB_ID_SIZE];
    /* The operator (init's token) creates workspaces and mints in any. */
    call(f, HUB_POST, "/api/v1/workspaces", NULL, f->admin, "{\"name\":\"two\"}");
    EXPECT(f, 201, NULL);
    snprintf(ws2, sizeof(ws2), "%s", str(f, "id"));
    mint(f, f->admin, ws2, "{\"name\":\"boss\",\"scope\":\"admin\"}", adm2, id);
    assert_string_equal(str(f, "scope"), "admin");
    assert_true(json_is_true(json_object_get(f->body, "admin")));
    assert_true(json_is_null(json_object_get(f->body, "lastUsedAt")));
    /* The older boolean still works. */
    mint(f, f->admin, ws2, "{\"admin\":false}", mem2, id);
    assert_string_equal(str(f, "scope"), "member");

    /* A workspace admin: everything in its workspace, nothing beyond. */
    call(f, HUB_POST, "/api/v1/workspaces", NULL, adm2, "{\"name\":\"three\"}");
    EXPECT(f, 403, "Authorization");
    call(f, HUB_GET, "/api/v1/workspaces", NULL, adm2, NULL);
    EXPECT(f, 403, "Authorization");
    snprintf(path, sizeof(path), "/api/v1/workspaces/%s/tokens", f->ws);
    call(f, HUB_POST, path, NULL, adm2, "{}");
    EXPECT(f, 404, "id");
    char t3[HUB_TOKEN_STR_SIZE];
    mint(f, adm2, ws2, "{\"name\":\"ci\",\"scope\":\"member\"}", t3, id);
    make_agent(f, adm2, agent);
    snprintf(path, sizeof(path), "/api/v1/agents/%s", agent);
    call(f, HUB_GET, path, NULL, adm2, NULL);
    EXPECT(f, 200, NULL);

    /* Scopes the API does not mint, and contradictions. */
    static const char *const bad[] = {
        "{\"scope\":\"operator\"}",
        "{\"scope\":\"agent\"}",
        "{\"scope\":\"root\"}",
        "{\"scope\":1}",
        "{\"scope\":\"member\",\"admin\":true}",
    };
    snprintf(path, sizeof(path), "/api/v1/workspaces/%s/tokens", ws2);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        call(f, HUB_POST, path, NULL, f->admin, bad[i]);
        if (f->status != 422)
            fail_msg("%s: %d %s", bad[i], f->status, f->resp.body);
    }

    /* A member: the workspace's tunnels, no agent or token administration. */
    call(f, HUB_POST, "/api/v1/agents", NULL, mem2, "{}");
    EXPECT(f, 403, "Authorization");
    call(f, HUB_DELETE, path, NULL, mem2, NULL);
    EXPECT(f, 405, "method");
    snprintf(path, sizeof(path), "/api/v1/agents/%s", agent);
    call(f, HUB_DELETE, path, NULL, mem2, NULL);
    EXPECT(f, 403, "Authorization");
    call(f, HUB_GET, "/api/v1/tokens", NULL, mem2, NULL);
    EXPECT(f, 403, "Authorization");
    call(f, HUB_GET, "/api/v1/agents", NULL, mem2, NULL);
    EXPECT(f, 200, NULL);
    char body[200];
    snprintf(body, sizeof(body), "{\"target\":\"h:1\",\"agentId\":\"%s\"}", agent);
    call(f, HUB_POST, "/api/v1/tunnels", NULL, mem2, body);
    EXPECT(f, 201, NULL);
    snprintf(tun, sizeof(tun), "%s", str(f, "id"));
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", tun);
    call(f, HUB_DELETE, path, NULL, mem2, NULL);
    EXPECT(f, 200, NULL);
}

static void test_token_list_and_revoke(void **state)
{
    fx_t *f = *state;
    char path[128], adm[HUB_TOKEN_STR_SIZE], adm_id[HUB_ID_SIZE], ci[HUB_TOKEN_STR_SIZE];
    char ci_id[HUB_ID_SIZE], agent[HUB_ID_SIZE], ta[HUB_TOKEN_STR_SIZE];
    mint(f, f->admin, f->ws, "{\"name\":\"ops\",\"scope\":\"admin\"}", adm, adm_id);
    f->s.clock.now += 1000;
    mint(f, f->admin, f->ws, "{\"name\":\"ci\"}", ci, ci_id);
    make_agent(f, f->admin, agent);
    agent_token(f, agent, ta);
    call(f, HUB_GET, "/api/v1/agents", NULL, ci, NULL); /* ci used once */

    call(f, HUB_GET, "/api/v1/tokens", NULL, adm, NULL);
    EXPECT(f, 200, NULL);
    json_t *list = json_object_get(f->body, "tokens");
    assert_int_equal(json_array_size(list), 4); /* operator, ops, ci, agent */
    static const char *const scopes[] = {"operator", "admin", "member", "agent"};
    for (size_t i = 0; i < 4; i++) {
        json_t *t = json_array_get(list, i);
        assert_string_equal(json_string_value(json_object_get(t, "scope")), scopes[i]);
        assert_null(json_object_get(t, "token"));
        static const char *const keys[] = {"id",        "name",        "scope",      "agentId",
                                           "createdAt", "workspaceId", "lastUsedAt", NULL};
        for (size_t k = 0; keys[k]; k++)
            if (!json_object_get(t, keys[k]))
                fail_msg("token %zu lacks %s", i, keys[k]);
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 3), "agentId")),
                        agent);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 2), "lastUsedAt")),
                        "2026-11-23T14:00:01.000Z");
    assert_true(json_is_null(json_object_get(json_array_get(list, 3), "lastUsedAt")));
    /* No secret anywhere in the answer. */
    assert_null(strstr(f->resp.body, ci + 4));
    assert_null(strstr(f->resp.body, f->admin + 4));

    /* Revocation is immediate; the id is gone afterwards. */
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", ci_id);
    call(f, HUB_DELETE, path, NULL, adm, NULL);
    EXPECT(f, 200, NULL);
    call(f, HUB_GET, "/api/v1/agents", NULL, ci, NULL);
    EXPECT(f, 401, "Authorization");
    call(f, HUB_DELETE, path, NULL, adm, NULL);
    EXPECT(f, 404, "id");
    /* Another workspace's token id is "not found". */
    call(f, HUB_POST, "/api/v1/workspaces", NULL, f->admin, "{\"name\":\"two\"}");
    char ws2[HUB_ID_SIZE], other[HUB_TOKEN_STR_SIZE], other_id[HUB_ID_SIZE];
    snprintf(ws2, sizeof(ws2), "%s", str(f, "id"));
    mint(f, f->admin, ws2, "{\"scope\":\"admin\"}", other, other_id);
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", other_id);
    call(f, HUB_DELETE, path, NULL, adm, NULL);
    EXPECT(f, 404, "id");
    call(f, HUB_GET, "/api/v1/tokens", NULL, other, NULL);
    assert_int_equal(json_array_size(json_object_get(f->body, "tokens")), 1);
    /* A workspace admin cannot revoke the operator; the operator can
     * revoke anything in its workspace, itself included. */
    call(f, HUB_GET, "/api/v1/tokens", NULL, adm, NULL);
    char op_id[HUB_ID_SIZE];
    snprintf(op_id, sizeof(op_id), "%s",
             json_string_value(
                 json_object_get(json_array_get(json_object_get(f->body, "tokens"), 0), "id")));
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", op_id);
    call(f, HUB_DELETE, path, NULL, adm, NULL);
    EXPECT(f, 403, "id");
    call(f, HUB_GET, "/api/v1/tokens", NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    snprintf(path, sizeof(path), "/api/v1/tokens/%s", adm_id);
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    call(f, HUB_GET, "/api/v1/tokens", NULL, adm, NULL);
    EXPECT(f, 401, "Authorization");
}

static void test_agent_cap(void **state)
{
    fx_t *f = *state;
    open_api(f, 0, 5, 2);
    char a[HUB_ID_SIZE], b[HUB_ID_SIZE], path[128];
    make_agent(f, f->admin, a);
    make_agent(f, f->admin, b);
    call(f, HUB_POST, "/api/v1/agents", NULL, f->admin, "{}");
    EXPECT(f, 409, "agents");
    assert_non_null(strstr(f->resp.body, "maximum of 2 agents"));
    snprintf(path, sizeof(path), "/api/v1/agents/%s", a);
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    make_agent(f, f->admin, a);
}

/* Makes every event insert fail inside the database (as a full disk or an
 * I/O error would), between a change and its event. */
#define FAIL_EVENTS                                                                                \
    "CREATE TRIGGER test_fail_events BEFORE INSERT ON events "                                     \
    "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"

static size_t tunnel_count(fx_t *f)
{
    size_t n = 0;
    assert_int_equal(hub_store_tunnel_count(f->s.st, f->ws, &n), 0);
    return n;
}

/* A write whose event cannot be recorded is not made: the client gets an
 * error and the store is as before (no tunnel without tunnel.created, no
 * rename without tunnel.updated, no deletion without tunnel.deleted). */
static void test_write_fails_with_its_event(void **state)
{
    fx_t *f = *state;
    char agent[HUB_ID_SIZE], tun[HUB_ID_SIZE], path[128];
    make_agent(f, f->admin, agent);
    make_tunnel(f, agent, "\"name\":\"svc\"", tun);
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", tun);
    hub_test_sql(f->s.db, FAIL_EVENTS);

    char body[256];
    snprintf(body, sizeof(body), "{\"target\":\"localhost:81\",\"agentId\":\"%s\"}", agent);
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, body);
    assert_true(f->status >= 400);
    assert_int_equal(tunnel_count(f), 1);

    call(f, HUB_PATCH, path, NULL, f->admin, "{\"name\":\"renamed\"}");
    assert_true(f->status >= 400);
    call(f, HUB_PATCH, path, NULL, f->admin, "{\"status\":\"paused\"}");
    assert_true(f->status >= 400);
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    assert_string_equal(str(f, "name"), "svc");
    assert_string_equal(str(f, "status"), "connecting");

    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    assert_true(f->status >= 400);
    snprintf(path, sizeof(path), "/api/v1/agents/%s", agent);
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    assert_true(f->status >= 400);
    assert_int_equal(tunnel_count(f), 1);
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    call(f, HUB_POST, "/api/v1/agents", NULL, f->admin, "{}");
    assert_true(f->status >= 400);

    /* Once events can be written again, so can everything else. */
    hub_test_sql(f->s.db, "DROP TRIGGER test_fail_events");
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    assert_int_equal(tunnel_count(f), 0);
}

static size_t share_count(fx_t *f)
{
    call(f, HUB_GET, "/api/v1/shares", NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    return json_array_size(json_object_get(f->body, "shares"));
}

/* Shares too: creating, revoking and the expiry sweep commit with their
 * share.created, share.revoked and share.expired, or not at all. */
static void test_share_change_fails_with_its_event(void **state)
{
    fx_t *f = *state;
    char agent[HUB_ID_SIZE], tun[HUB_ID_SIZE], share[HUB_ID_SIZE], path[160];
    make_agent(f, f->admin, agent);
    make_tunnel(f, agent, "\"name\":\"web\",\"protocol\":\"http\",\"public\":true", tun);
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s/shares", tun);
    call(f, HUB_POST, path, NULL, f->admin, "{\"expiresIn\":\"1h\"}");
    EXPECT(f, 201, NULL);
    snprintf(share, sizeof(share), "%s", str(f, "id"));
    hub_test_sql(f->s.db, FAIL_EVENTS);

    call(f, HUB_POST, path, NULL, f->admin, "{\"expiresIn\":\"1h\"}");
    assert_true(f->status >= 400);
    assert_int_equal(share_count(f), 1);
    snprintf(path, sizeof(path), "/api/v1/shares/%s", share);
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    assert_true(f->status >= 400);
    call(f, HUB_GET, path, NULL, f->admin, NULL);
    assert_string_equal(str(f, "status"), "active");
    /* Past its expiry, the sweep cannot mark it without its event. */
    f->s.clock.now += 3600000;
    size_t n = 0;
    assert_true(hub_shares_expire_due(f->s.st, &n) < 0);
    assert_int_equal(n, 0);

    hub_test_sql(f->s.db, "DROP TRIGGER test_fail_events");
    assert_int_equal(hub_shares_expire_due(f->s.st, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(hub_shares_expire_due(f->s.st, &n), 0);
    assert_int_equal(n, 0); /* once */
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    call(f, HUB_GET, "/api/v1/events", NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    size_t created = 0, expired = 0, revoked = 0, i;
    json_t *e;
    json_array_foreach(json_object_get(f->body, "events"), i, e)
    {
        const char *type = json_string_value(json_object_get(e, "type"));
        created += !strcmp(type, "share.created");
        expired += !strcmp(type, "share.expired");
        revoked += !strcmp(type, "share.revoked");
    }
    assert_int_equal(created, 1);
    assert_int_equal(expired, 1);
    assert_int_equal(revoked, 1);
}

static void live_changed(void *ctx, const char *ws, const char *agent_id)
{
    fx_t *f = ctx;
    assert_string_equal(ws, f->ws);
    f->changed_calls++;
    snprintf(f->changed_agent, sizeof(f->changed_agent), "%s", agent_id);
}

static bool live_served(void *ctx, const char *agent_id, const char *tunnel_id)
{
    return ((fx_t *)ctx)->serve;
}

/* The live side comes through the API's configuration: it is told about
 * every committed change and asked whether a link serves a tunnel. */
static void test_live_side_from_config(void **state)
{
    fx_t *f = *state;
    f->live = (hub_live_t){.changed = live_changed, .served = live_served, .ctx = f};
    open_api(f, 0, 5, 0);
    char agent[HUB_ID_SIZE], tun[HUB_ID_SIZE], path[128];
    make_agent(f, f->admin, agent);
    assert_int_equal(f->changed_calls, 0);

    /* The agent is not connected, but a live link serves the tunnel. */
    f->serve = true;
    make_tunnel(f, agent, NULL, tun);
    assert_string_equal(str(f, "status"), "active");
    assert_int_equal(f->changed_calls, 1);
    assert_string_equal(f->changed_agent, agent);

    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", tun);
    patch_ok(f, path, "{\"status\":\"paused\"}");
    assert_int_equal(f->changed_calls, 2);
    f->serve = false;
    call(f, HUB_PATCH, path, NULL, f->admin, "{\"status\":\"active\"}");
    assert_string_equal(str(f, "status"), "connecting");
    assert_int_equal(f->changed_calls, 3);
    /* Nothing changed, nobody told. */
    patch_ok(f, path, "{\"status\":\"active\"}");
    assert_int_equal(f->changed_calls, 3);

    /* A failed write tells nobody. */
    hub_test_sql(f->s.db, FAIL_EVENTS);
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    assert_true(f->status >= 400);
    assert_int_equal(f->changed_calls, 3);
    hub_test_sql(f->s.db, "DROP TRIGGER test_fail_events");
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    assert_int_equal(f->changed_calls, 4);

    /* The reaper and the link hooks tell the same live side. */
    make_tunnel(f, agent, "\"ttl\":1", tun);
    assert_int_equal(f->changed_calls, 5);
    f->s.clock.now += 1000;
    size_t n = 0;
    assert_int_equal(hub_tunnels_expire_due(f->s.st, &f->live, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(f->changed_calls, 6);
    make_tunnel(f, agent, NULL, tun);
    assert_int_equal(hub_tunnels_on_agent_online(f->s.st, &f->live, f->ws, agent), 0);
    assert_int_equal(f->changed_calls, 8);
    assert_int_equal(hub_tunnels_on_agent_online(f->s.st, &f->live, f->ws, agent), 0);
    assert_int_equal(f->changed_calls, 8);
}

static void live_tunnel_status(void *ctx, const hub_tunnel_t *t)
{
    fx_t *f = ctx;
    assert_string_equal(t->workspace_id, f->ws);
    assert_string_equal(t->agent_id, f->changed_agent);
    f->status_calls++;
    f->status_expired += t->status == HUB_TUNNEL_EXPIRED;
}

static void live_tunnel_changed(void *ctx, const char *ws, const char *agent_id,
                                const char *tunnel_id, const hub_tunnel_t *t)
{
    fx_t *f = ctx;
    assert_string_equal(ws, f->ws);
    assert_string_equal(agent_id, f->changed_agent);
    f->delta_calls++;
    snprintf(f->delta_id, sizeof(f->delta_id), "%s", tunnel_id);
    if (t) {
        assert_string_equal(t->id, tunnel_id);
        assert_string_equal(t->agent_id, agent_id);
        snprintf(f->delta_name, sizeof(f->delta_name), "%s", t->name);
    } else {
        f->delta_removed++;
    }
}

static void live_statuses_changed(void *ctx, const char *ws, const char *agent_id,
                                  const hub_tunnel_list_t *moved)
{
    fx_t *f = ctx;
    assert_string_equal(ws, f->ws);
    assert_string_equal(agent_id, f->changed_agent);
    assert_true(moved->count > 0);
    f->statuses_calls++;
    f->statuses_moved += (unsigned)moved->count;
}

/* Makes agent `agent` and opens the API again with a live side that counts
 * what it is told of that agent: a tunnel's status alone, the whole agent,
 * and with `deltas` one tunnel made, edited or deleted, and the statuses a
 * link moved (what the runtime gives it). */
static void live_agent(fx_t *f, bool deltas, char agent[static HUB_ID_SIZE])
{
    make_agent(f, f->admin, agent);
    snprintf(f->changed_agent, sizeof(f->changed_agent), "%s", agent);
    f->live = (hub_live_t){.changed = live_changed,
                           .served = live_served,
                           .tunnel_status = live_tunnel_status,
                           .tunnel_changed = deltas ? live_tunnel_changed : NULL,
                           .statuses_changed = deltas ? live_statuses_changed : NULL,
                           .ctx = f};
    open_api(f, 0, 5, 0);
}

/* The reaper tells the live side of each expired tunnel alone, never the
 * whole agent: N tunnels of one agent expiring in one sweep used to cost
 * its links N whole lists (N^2 entries). */
static void test_ttl_sweep_tells_each_tunnel(void **state)
{
    fx_t *f = *state;
    open_api(f, 0, 0, 0);
    char agent[HUB_ID_SIZE], tun[HUB_ID_SIZE];
    make_agent(f, f->admin, agent);
    snprintf(f->changed_agent, sizeof(f->changed_agent), "%s", agent);
    for (int i = 0; i < 40; i++)
        make_tunnel(f, agent, "\"ttl\":1", tun);
    make_tunnel(f, agent, NULL, tun); /* no TTL: stays */
    f->live = (hub_live_t){.changed = live_changed,
                           .served = live_served,
                           .tunnel_status = live_tunnel_status,
                           .ctx = f};
    f->s.clock.now += 1000;
    size_t n = 0;
    assert_int_equal(hub_tunnels_expire_due(f->s.st, &f->live, &n), 0);
    assert_int_equal(n, 40);
    assert_int_equal(f->status_calls, 40);
    assert_int_equal(f->status_expired, 40);
    assert_int_equal(f->changed_calls, 0);
    /* Nothing left to expire, nobody told. */
    assert_int_equal(hub_tunnels_expire_due(f->s.st, &f->live, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(f->status_calls, 40);
}

/* A pause alone tells the live side of that tunnel's status; a resume, or
 * a pause with another change, tells the whole agent. */
static void test_pause_tells_the_tunnel(void **state)
{
    fx_t *f = *state;
    char agent[HUB_ID_SIZE], tun[HUB_ID_SIZE], path[128];
    live_agent(f, false, agent);
    f->serve = true;
    make_tunnel(f, agent, NULL, tun);
    assert_int_equal(f->changed_calls, 1);
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", tun);
    patch_ok(f, path, "{\"status\":\"paused\"}");
    assert_int_equal(f->status_calls, 1);
    assert_int_equal(f->changed_calls, 1);
    patch_ok(f, path, "{\"status\":\"active\"}");
    assert_string_equal(str(f, "status"), "active");
    assert_int_equal(f->status_calls, 1);
    assert_int_equal(f->changed_calls, 2);
    patch_ok(f, path, "{\"status\":\"paused\",\"name\":\"renamed\"}");
    assert_int_equal(f->status_calls, 1);
    assert_int_equal(f->changed_calls, 3);
}

/* A tunnel made, edited, resumed or deleted tells the live side of that
 * tunnel alone (its agent's links get one entry, not the whole list: N
 * tunnels made one by one cost N^2/2 entries), and links coming and going
 * tell it the statuses that moved, never the whole agent. */
static void test_edits_tell_the_tunnel(void **state)
{
    fx_t *f = *state;
    char agent[HUB_ID_SIZE], tun[HUB_ID_SIZE], other[HUB_ID_SIZE], path[128];
    live_agent(f, true, agent);
    make_tunnel(f, agent, NULL, tun);
    assert_int_equal(f->delta_calls, 1);
    assert_string_equal(f->delta_id, tun);
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", tun);
    patch_ok(f, path, "{\"name\":\"renamed\"}");
    assert_int_equal(f->delta_calls, 2);
    assert_string_equal(f->delta_name, "renamed");
    /* A pause alone is its status; the resume is the whole entry. */
    patch_ok(f, path, "{\"status\":\"paused\"}");
    assert_int_equal(f->status_calls, 1);
    assert_int_equal(f->delta_calls, 2);
    patch_ok(f, path, "{\"status\":\"active\"}");
    assert_int_equal(f->delta_calls, 3);
    /* Links: the agent's first link makes both tunnels active, its last
     * one going makes them connecting again. */
    make_tunnel(f, agent, NULL, other);
    assert_int_equal(f->delta_calls, 4);
    assert_int_equal(hub_tunnels_on_agent_online(f->s.st, &f->live, f->ws, agent), 0);
    assert_int_equal(f->statuses_calls, 1);
    assert_int_equal(f->statuses_moved, 2);
    assert_int_equal(hub_tunnels_on_agent_online(f->s.st, &f->live, f->ws, agent), 0);
    assert_int_equal(f->statuses_calls, 1); /* nothing moved, nobody told */
    assert_int_equal(hub_tunnels_on_agent_offline(f->s.st, &f->live, f->ws, agent), 0);
    assert_int_equal(f->statuses_calls, 2);
    assert_int_equal(f->statuses_moved, 4);
    call(f, HUB_DELETE, path, NULL, f->admin, NULL);
    EXPECT(f, 200, NULL);
    assert_int_equal(f->delta_calls, 5);
    assert_int_equal(f->delta_removed, 1);
    assert_string_equal(f->delta_id, tun);
    assert_int_equal(f->changed_calls, 0);
}

/* GET /metrics without the JSON decoding of call(): status and body. */
static int scrape(fx_t *f, const char *peer, const char *auth)
{
    hub_http_req_t req = {.method = HUB_GET, .path = "/metrics", .peer = peer};
    req.authorization = auth;
    hub_resp_clear(&f->resp);
    hub_api_handle(f->api, &req, &f->resp);
    return f->resp.status;
}

static void fake_collect(void *ctx, hub_metrics_snapshot_t *snap, hub_metrics_tunnel_t *t, size_t n)
{
    snap->links = 7;
    for (size_t i = 0; i < n; i++)
        t[i].live_in = 42;
}

/* /metrics: loopback peers only by default; a token of its own (no API
 * token opens it); or public. Text in the Prometheus format, with the
 * store's agents and tunnels and the live side's numbers. */
static void test_metrics_access(void **state)
{
    fx_t *f = *state;
    char agent[HUB_ID_SIZE], tun[HUB_ID_SIZE];
    make_agent(f, f->admin, agent);
    make_tunnel(f, agent, "\"name\":\"web\"", tun);
    hub_api_free(f->api);
    hub_metrics_t *m = hub_metrics_new();
    hub_metrics_handshake_failure(m, HUB_HS_REFUSED);
    hub_api_config_t cfg = {
        .metrics = m,
        .metrics_source = {.collect = fake_collect},
        .clock = hub_test_clock_read,
        .clock_ctx = &f->s.clock,
    };
    f->api = hub_api_new(f->s.st, &cfg);

    assert_int_equal(scrape(f, "127.0.0.1", NULL), 200);
    assert_string_equal(f->resp.content_type, HUB_METRICS_CONTENT_TYPE);
    const char *text = f->resp.body;
    assert_non_null(strstr(text, "connect_agents{state=\"pending\"} 1\n"));
    assert_non_null(strstr(text, "connect_agent_links 7\n"));
    assert_non_null(strstr(text, "connect_tunnels{status=\"connecting\",protocol=\"auto\"} 1\n"));
    assert_non_null(strstr(text, "tunnel_name=\"web\"} 42\n"));
    assert_non_null(strstr(text, "connect_handshake_failures_total{reason=\"refused\"} 1\n"));
    assert_int_equal(scrape(f, "127.8.9.10", NULL), 200);
    assert_int_equal(scrape(f, "::1", NULL), 200);
    assert_int_equal(scrape(f, "::ffff:127.0.0.1", NULL), 200);
    assert_int_equal(scrape(f, "10.0.0.5", NULL), 403);
    assert_int_equal(scrape(f, "::ffff:10.0.0.5", NULL), 403);
    assert_int_equal(scrape(f, "2001:db8::1", NULL), 403);
    assert_int_equal(scrape(f, "?", NULL), 403);
    char bearer[128];
    snprintf(bearer, sizeof(bearer), "Bearer %s", f->admin);
    assert_int_equal(scrape(f, "10.0.0.5", bearer), 403); /* an API token does not open it */
    /* Access comes before the query's validation: a refused client learns
     * nothing from it (fuzz_hub_api found a 422 here). */
    hub_http_req_t q = {.method = HUB_GET, .path = "/metrics", .peer = "10.0.0.5"};
    q.query[0].key = "limit";
    q.query[0].value = "4";
    q.nquery = 1;
    hub_resp_clear(&f->resp);
    hub_api_handle(f->api, &q, &f->resp);
    assert_int_equal(f->resp.status, 403);
    q.peer = "127.0.0.1";
    hub_resp_clear(&f->resp);
    hub_api_handle(f->api, &q, &f->resp);
    assert_int_equal(f->resp.status, 422);

    static const char token[] = "metrics-scrape-token-0123456789abcdef";
    hub_api_free(f->api);
    cfg.metrics_access = HUB_METRICS_TOKEN;
    assert_int_equal(hub_metrics_token_hash(token, cfg.metrics_token_hash), 0);
    uint8_t unused[HUB_KEY_BYTES];
    assert_int_equal(hub_metrics_token_hash("short", unused), CN_EINVAL);
    assert_int_equal(hub_metrics_token_hash(token, cfg.metrics_token_hash), 0);
    f->api = hub_api_new(f->s.st, &cfg);
    assert_int_equal(scrape(f, "127.0.0.1", NULL), 401);
    assert_int_equal(scrape(f, "127.0.0.1", bearer), 401);
    assert_int_equal(scrape(f, "127.0.0.1", "Bearer metrics-scrape-token-0123456789abcdeX"), 401);
    assert_int_equal(scrape(f, "10.0.0.5", "Bearer metrics-scrape-token-0123456789abcdef"), 200);

    hub_api_free(f->api);
    cfg.metrics_access = HUB_METRICS_PUBLIC;
    f->api = hub_api_new(f->s.st, &cfg);
    assert_int_equal(scrape(f, "10.0.0.5", NULL), 200);
    /* Not under /api/v1, and only GET (HEAD is GET without the body). */
    call(f, HUB_POST, "/metrics", NULL, NULL, NULL);
    EXPECT(f, 405, "method");
    hub_metrics_free(m);
}

/* An agent with a static key bound, as enrollment leaves it. */
static void make_enrolled_agent(fx_t *f, const char *token, char id[static HUB_ID_SIZE],
                                uint8_t pk[static 32])
{
    call(f, HUB_POST, "/api/v1/agents", NULL, token, "{\"name\":\"a\"}");
    EXPECT(f, 201, NULL);
    snprintf(id, HUB_ID_SIZE, "%s", str(f, "id"));
    char secret[256];
    snprintf(secret, sizeof(secret), "%s", str(f, "enrollToken"));
    *strrchr(secret, '.') = '\0'; /* SECRET.HUBKEY */
    randombytes_buf(pk, 32);
    hub_agent_t a;
    assert_int_equal(hub_store_agent_enroll(f->s.st, secret, pk, &a), 0);
}

/* POST /api/v1/tunnels/{id}/connect: who may reach what, the local port and
 * connection string, and the exposing agent's key. */
static void test_reach_connect(void **state)
{
    fx_t *f = *state;
    char exp[HUB_ID_SIZE], lap[HUB_ID_SIZE], bare[HUB_ID_SIZE], tun[HUB_ID_SIZE];
    char high[HUB_ID_SIZE], path[128], body[256], ta[HUB_TOKEN_STR_SIZE];
    uint8_t exp_pk[32], lap_pk[32];
    make_enrolled_agent(f, f->admin, exp, exp_pk);
    make_enrolled_agent(f, f->admin, lap, lap_pk);
    make_agent(f, f->admin, bare); /* never enrolled */
    make_tunnel(f, exp, "\"name\":\"db\"", tun);
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s/connect", tun);

    /* An admin names the reaching agent. */
    call(f, HUB_POST, path, NULL, f->admin, "{}");
    EXPECT(f, 422, "agentId");
    snprintf(body, sizeof(body), "{\"agentId\":\"%s\"}", lap);
    call(f, HUB_POST, path, NULL, f->admin, body);
    EXPECT(f, 200, NULL);
    assert_string_equal(str(f, "tunnelId"), tun);
    assert_string_equal(str(f, "agentId"), lap);
    assert_string_equal(str(f, "exposingAgentId"), exp);
    assert_int_equal(json_integer_value(json_object_get(f->body, "localPort")), 10080);
    assert_string_equal(str(f, "connectionString"), "127.0.0.1:10080");
    char want_key[CN_ID_KEY_B64URL_SIZE];
    cn_id_key_to_b64url(exp_pk, want_key);
    assert_string_equal(str(f, "peerKey"), want_key);
    /* A port of its choice. */
    snprintf(body, sizeof(body), "{\"agentId\":\"%s\",\"localPort\":15432}", lap);
    call(f, HUB_POST, path, NULL, f->admin, body);
    EXPECT(f, 200, NULL);
    assert_string_equal(str(f, "connectionString"), "127.0.0.1:15432");
    static const char *const bad_ports[] = {"0", "65536", "\"x\"", "-1"};
    for (size_t i = 0; i < sizeof(bad_ports) / sizeof(bad_ports[0]); i++) {
        snprintf(body, sizeof(body), "{\"agentId\":\"%s\",\"localPort\":%s}", lap, bad_ports[i]);
        call(f, HUB_POST, path, NULL, f->admin, body);
        EXPECT(f, 422, "localPort");
    }
    snprintf(body, sizeof(body), "{\"agentId\":\"%s\",\"port\":1}", lap);
    call(f, HUB_POST, path, NULL, f->admin, body);
    EXPECT(f, 422, "port");
    /* No port + 10000 above 65535: 0, any free port. */
    snprintf(body, sizeof(body), "{\"target\":\"localhost:60000\",\"agentId\":\"%s\"}", exp);
    call(f, HUB_POST, "/api/v1/tunnels", NULL, f->admin, body);
    EXPECT(f, 201, NULL);
    snprintf(high, sizeof(high), "%s", str(f, "id"));
    char hpath[128];
    snprintf(hpath, sizeof(hpath), "/api/v1/tunnels/%s/connect", high);
    snprintf(body, sizeof(body), "{\"agentId\":\"%s\"}", lap);
    call(f, HUB_POST, hpath, NULL, f->admin, body);
    EXPECT(f, 200, NULL);
    assert_int_equal(json_integer_value(json_object_get(f->body, "localPort")), 0);

    /* An agent token reaches for its own agent only. */
    agent_token(f, lap, ta);
    call(f, HUB_POST, path, NULL, ta, "{}");
    EXPECT(f, 200, NULL);
    assert_string_equal(str(f, "agentId"), lap);
    snprintf(body, sizeof(body), "{\"agentId\":\"%s\"}", exp);
    call(f, HUB_POST, path, NULL, ta, body);
    EXPECT(f, 403, "agentId");

    /* An agent without a key cannot take part yet. */
    snprintf(body, sizeof(body), "{\"agentId\":\"%s\"}", bare);
    call(f, HUB_POST, path, NULL, f->admin, body);
    EXPECT(f, 409, "agentId");

    /* Other workspaces: their tunnels and their agents do not exist here. */
    call(f, HUB_POST, "/api/v1/workspaces", NULL, f->admin, "{\"name\":\"other\"}");
    EXPECT(f, 201, NULL);
    char ws2[HUB_ID_SIZE], tok2[HUB_TOKEN_STR_SIZE], tok2id[HUB_ID_SIZE], stranger[HUB_ID_SIZE];
    uint8_t spk[32];
    snprintf(ws2, sizeof(ws2), "%s", str(f, "id"));
    mint(f, f->admin, ws2, "{\"scope\":\"admin\"}", tok2, tok2id);
    make_enrolled_agent(f, tok2, stranger, spk);
    snprintf(body, sizeof(body), "{\"agentId\":\"%s\"}", stranger);
    call(f, HUB_POST, path, NULL, tok2, body);
    EXPECT(f, 404, "id");
    call(f, HUB_POST, path, NULL, f->admin, body);
    EXPECT(f, 404, "id");
    snprintf(body, sizeof(body), "{\"agentId\":\"%s\"}", lap);
    call(f, HUB_POST, "/api/v1/tunnels/00000000-0000-4000-8000-000000000000/connect", NULL,
         f->admin, body);
    EXPECT(f, 404, "id");
}

int main(void)
{
    cn_log_set_level(CN_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routing_and_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tunnel_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tunnel_object_and_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tunnels_per_agent_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_isolation_and_admin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_token_acts_only_for_its_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_token_shares_only_its_tunnels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_list_and_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_fails_with_its_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_share_change_fails_with_its_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_side_from_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_sweep_tells_each_tunnel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_tells_the_tunnel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edits_tell_the_tunnel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_failures_limited_per_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_query_every_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_access, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reach_connect, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
