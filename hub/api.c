/* The REST API's dispatcher: route lookup (404/405), tokens refused in the
 * URL, bearer authentication, per-token rate limits (429), admin checks
 * (403), then the resource's handler; plus the helpers handlers share. */
#include "api_internal.h"
#include "plugins.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cn_err.h"
#include "cn_link.h"
#include "cn_log.h"

/* 401 and throttled lines in the log: at most this many a second, the rest
 * counted and reported with the next line (a guessing client must not
 * flood the log). */
#define AUTH_LOG_PER_S 10

/* Every resource's routes, searched in turn. */
const hub_api_table_t hub_api_tables[] = {
    {hub_api_health_routes, &hub_api_health_nroutes},
    {hub_api_workspaces_routes, &hub_api_workspaces_nroutes},
    {hub_api_agents_routes, &hub_api_agents_nroutes},
    {hub_api_tunnels_routes, &hub_api_tunnels_nroutes},
    {hub_api_events_routes, &hub_api_events_nroutes},
    {hub_api_tokens_routes, &hub_api_tokens_nroutes},
    {hub_api_webhooks_routes, &hub_api_webhooks_nroutes},
    {hub_api_metrics_routes, &hub_api_metrics_nroutes},
    {hub_api_shares_routes, &hub_api_shares_nroutes},
    {hub_api_reach_routes, &hub_api_reach_nroutes},
    {hub_api_openapi_routes, &hub_api_openapi_nroutes},
    {hub_api_requests_routes, &hub_api_requests_nroutes},
};
const size_t hub_api_ntables = sizeof(hub_api_tables) / sizeof(hub_api_tables[0]);

/* Query keys that would carry a credential: refused so that no client gets
 * used to putting tokens in URLs (they end up in logs and histories). */
static const char *const credential_keys[] = {
    "token", "access_token", "api_key", "apikey", "key", "auth", "authorization", "bearer", NULL,
};

hub_api_t *hub_api_new(hub_store_t *store, const hub_api_config_t *cfg)
{
    hub_api_t *api = calloc(1, sizeof(*api));
    if (!api)
        return NULL;
    api->store = store;
    api->cfg = *cfg;
    snprintf(api->public_domain, sizeof(api->public_domain), "%s",
             cfg->public_domain && *cfg->public_domain ? cfg->public_domain : "localhost");
    api->cfg.public_domain = api->public_domain;
    if (!api->cfg.clock)
        api->cfg.clock = hub_time_now_ms;
    if (!api->cfg.plugins) {
        api->own_plugins = plugins_new();
        if (!api->own_plugins) {
            free(api);
            return NULL;
        }
        api->cfg.plugins = api->own_plugins;
    }
    if (cfg->rate_limit) {
        /* Keys are token ids; one slot per live token is plenty. */
        api->limiter = hub_ratelimit_new(65536, HUB_RATELIMIT_WINDOW_MS);
        if (!api->limiter)
            goto fail;
    }
    if (cfg->auth_fail_rate) {
        /* Keys are client addresses (IPv6: /64). */
        api->auth_fails = hub_ratelimit_new(65536, HUB_RATELIMIT_WINDOW_MS);
        if (!api->auth_fails)
            goto fail;
    }
    api->auth_log = hub_ratelimit_new(1, 1000);
    if (!api->auth_log)
        goto fail;
    return api;
fail:
    hub_api_free(api);
    return NULL;
}

void hub_api_free(hub_api_t *api)
{
    if (!api)
        return;
    hub_ratelimit_free(api->limiter);
    hub_ratelimit_free(api->auth_fails);
    hub_ratelimit_free(api->auth_log);
    plugins_free(api->own_plugins);
    free(api);
}

void hub_api_set_public_http_port(hub_api_t *api, uint16_t port)
{
    api->cfg.public_http_port = port;
}

void hub_api_set_public_tls(hub_api_t *api, uint16_t port)
{
    api->cfg.tls = true;
    api->cfg.public_http_port = port;
}

void hub_api_set_hub_url(hub_api_t *api, const char *url)
{
    snprintf(api->hub_url, sizeof(api->hub_url), "%s", url);
}

/* ---- answering ---------------------------------------------------------- */

void hub_api_reply(hub_api_call_t *c, int status, json_t *body)
{
    hub_resp_json(c->resp, status, body);
}

void hub_api_fail(hub_api_call_t *c, int status, const char *param, const char *details)
{
    hub_resp_error(c->resp, status, param, details);
}

void hub_api_not_found(hub_api_call_t *c, const char *what)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "no such %s", what);
    hub_api_fail(c, 404, "id", msg);
}

/* Splits a store message "param: details" (the store names the refused
 * input with its contract name). False when it has no such prefix. */
static bool split_store_msg(const char *msg, char *param, size_t plen, const char **details)
{
    size_t n = 0;
    while (msg[n] && (isalnum((unsigned char)msg[n]) || msg[n] == '_' || msg[n] == '.'))
        n++;
    if (n == 0 || n >= plen || msg[n] != ':' || msg[n + 1] != ' ')
        return false;
    memcpy(param, msg, n);
    param[n] = '\0';
    *details = msg + n + 2;
    return true;
}

void hub_api_store_fail(hub_api_call_t *c, int rc, const char *what, const char *param)
{
    const char *msg = hub_store_errmsg(c->api->store);
    char p[32];
    const char *details = NULL;
    if (!msg)
        msg = "";
    if (!split_store_msg(msg, p, sizeof(p), &details)) {
        snprintf(p, sizeof(p), "%s", param ? param : "");
        details = msg;
    }
    switch (rc) {
    case CN_ENOTFOUND:
        hub_api_not_found(c, what);
        return;
    case HUB_ECONFLICT:
        hub_api_fail(c, 409, p, *details ? details : "already exists");
        return;
    case CN_EEXHAUSTED:
        hub_api_fail(c, 409, p, *details ? details : "limit reached");
        return;
    case CN_EINVAL:
    case CN_ETOOBIG:
        hub_api_fail(c, 422, p, *details ? details : "invalid value");
        return;
    case CN_EAGAIN:
        cn_log_warn("api: database busy on %s", what);
        hub_api_fail(c, 503, "", "the database is busy; retry");
        c->resp->retry_after = 1;
        return;
    default:
        cn_log_error("api: store failure on %s: %s (%s)", what, hub_strerror(rc), msg);
        hub_api_fail(c, 500, "", "internal error");
        return;
    }
}

/* ---- validation --------------------------------------------------------- */

void hub_api_invalid(hub_api_call_t *c, const char *param, const char *details)
{
    hub_errors_add(&c->errors, param, details);
}

bool hub_api_failed_validation(hub_api_call_t *c)
{
    if (!c->errors)
        return false;
    json_t *e = c->errors;
    c->errors = NULL;
    hub_resp_errors(c->resp, 422, e);
    return true;
}

json_t *hub_api_body(hub_api_call_t *c)
{
    if (c->body)
        return c->body;
    if (!c->req->body_len) {
        c->body = json_object();
        if (!c->body)
            hub_api_fail(c, 500, "", "internal error");
        return c->body;
    }
    json_error_t jerr;
    /* jansson checks UTF-8, refuses NUL in strings and, with this flag,
     * duplicate keys. */
    json_t *v =
        json_loadb((const char *)c->req->body, c->req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        char msg[256];
        snprintf(msg, sizeof(msg), "request body is not valid JSON: %.120s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        /* jerr.text may quote the input; keep the message ASCII-safe. */
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = '?';
        hub_api_fail(c, 400, "body", msg);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        hub_api_fail(c, 400, "body", "request body must be a JSON object");
        return NULL;
    }
    c->body = v;
    return v;
}

/* A key safe to echo in an error or a log: printable ASCII, bounded. */
static void printable(const char *in, char *out, size_t outlen)
{
    size_t j = 0;
    for (size_t i = 0; in[i] && j + 1 < outlen; i++) {
        unsigned char ch = (unsigned char)in[i];
        out[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    out[j] = '\0';
}

static bool in_list(const char *key, const char *const list[])
{
    for (size_t i = 0; list[i]; i++)
        if (!strcmp(key, list[i]))
            return true;
    return false;
}

bool hub_api_only_fields(hub_api_call_t *c, json_t *obj, const char *const allowed[])
{
    bool ok = true;
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        if (in_list(key, allowed))
            continue;
        ok = false;
        /* Echo the key bounded and as printable ASCII. */
        char param[64];
        printable(key, param, sizeof(param));
        hub_api_invalid(c, param, "unknown field");
    }
    return ok;
}

static json_t *field(json_t *obj, const char *key, bool *present)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_null(v)) /* json_is_null() tests v for NULL itself */
        v = NULL;
    if (present)
        *present = v != NULL;
    return v;
}

bool hub_api_get_string(hub_api_call_t *c, json_t *obj, const char *key, bool required,
                        const char **out, bool *present)
{
    bool have = false;
    json_t *v = field(obj, key, &have);
    if (present)
        *present = have;
    if (!v) {
        if (required) {
            hub_api_invalid(c, key, "is required");
            return false;
        }
        return true;
    }
    if (!json_is_string(v)) {
        hub_api_invalid(c, key, "must be a string");
        return false;
    }
    *out = json_string_value(v);
    if (strlen(*out) != json_string_length(v)) {
        hub_api_invalid(c, key, "must not contain NUL characters");
        return false;
    }
    return true;
}

bool hub_api_get_bool(hub_api_call_t *c, json_t *obj, const char *key, bool *out, bool *present)
{
    bool have = false;
    json_t *v = field(obj, key, &have);
    if (present)
        *present = have;
    if (!v)
        return true;
    if (!json_is_boolean(v)) {
        hub_api_invalid(c, key, "must be true or false");
        return false;
    }
    *out = json_is_true(v);
    return true;
}

bool hub_api_get_int(hub_api_call_t *c, json_t *obj, const char *key, long long *out, bool *present)
{
    bool have = false;
    json_t *v = field(obj, key, &have);
    if (present)
        *present = have;
    if (!v)
        return true;
    if (!json_is_integer(v)) {
        hub_api_invalid(c, key, "must be an integer");
        return false;
    }
    *out = (long long)json_integer_value(v);
    return true;
}

const char *hub_api_query(hub_api_call_t *c, const char *key)
{
    for (size_t i = 0; i < c->req->nquery; i++)
        if (!strcmp(c->req->query[i].key, key))
            return c->req->query[i].value;
    return NULL;
}

bool hub_api_only_query(hub_api_call_t *c, const char *const allowed[])
{
    bool ok = true;
    for (size_t i = 0; i < c->req->nquery; i++) {
        const char *k = c->req->query[i].key;
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(c->req->query[j].key, k))
                dup = true;
        char param[64];
        printable(k, param, sizeof(param));
        if (!in_list(k, allowed)) {
            hub_api_invalid(c, param, "unknown query parameter");
            ok = false;
        } else if (dup) {
            hub_api_invalid(c, param, "given more than once");
            ok = false;
        }
    }
    return ok;
}

bool hub_api_acts_for_agent(hub_api_call_t *c, const char *agent_id, const char *param)
{
    if (c->token.scope != HUB_SCOPE_AGENT || (agent_id && !strcmp(agent_id, c->token.agent_id)))
        return true;
    hub_api_fail(c, 403, param, "an agent token may only act for its own agent");
    return false;
}

void hub_api_edge_url(const hub_api_t *api, const char *prefix, const char *label, char *out,
                      size_t outlen)
{
    const char *scheme = api->cfg.tls ? "https" : "http";
    uint16_t port = api->cfg.public_http_port;
    if (port == 0 || port == (api->cfg.tls ? 443 : 80))
        snprintf(out, outlen, "%s://%s%s.%s/", scheme, prefix, label, api->cfg.public_domain);
    else
        snprintf(out, outlen, "%s://%s%s.%s:%u/", scheme, prefix, label, api->cfg.public_domain,
                 (unsigned)port);
}

bool hub_api_check_id(hub_api_call_t *c, const char *id, const char *what)
{
    if (hub_uuid_valid(id))
        return true;
    hub_api_not_found(c, what);
    return false;
}

/* ---- dispatch ----------------------------------------------------------- */

const char *hub_api_bearer_token(const char *header, char *buf, size_t buflen)
{
    if (!header)
        return NULL;
    while (*header == ' ')
        header++;
    if (strncasecmp(header, "bearer", 6) != 0 || header[6] != ' ')
        return NULL;
    const char *t = header + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= buflen)
        return NULL;
    memcpy(buf, t, n);
    buf[n] = '\0';
    return buf;
}

static const hub_api_route_t *find_route(hub_api_call_t *c)
{
    unsigned allow = 0;
    bool path_known = false;
    /* HEAD is GET without the body (http.c leaves the body out). */
    unsigned method = c->req->method == HUB_HEAD ? HUB_GET : c->req->method;
    for (size_t t = 0; t < hub_api_ntables; t++) {
        size_t idx = 0;
        int r = hub_route_lookup(hub_api_tables[t].routes, *hub_api_tables[t].n,
                                 sizeof(hub_api_route_t), method, c->req->path, &idx, &c->params,
                                 &allow);
        if (r == HUB_ROUTE_FOUND)
            return &hub_api_tables[t].routes[idx];
        if (r == HUB_ROUTE_BAD_METHOD)
            path_known = true;
    }
    if (path_known) {
        if (allow & HUB_GET)
            allow |= HUB_HEAD;
        hub_allow_format(allow, c->resp->allow, sizeof(c->resp->allow));
        char msg[160];
        snprintf(msg, sizeof(msg), "method %s is not allowed here; allowed: %s",
                 hub_method_name(c->req->method), c->resp->allow);
        hub_api_fail(c, 405, "method", msg);
    } else {
        hub_api_fail(c, 404, "path", "no such endpoint");
    }
    return NULL;
}

/* The caller's address key for per-address limits (IPv6: its /64). */
static void caller_key(const hub_api_call_t *c, char key[static CN_LINK_ADDR_KEY_SIZE])
{
    cn_link_addr_key(c->req->peer ? c->req->peer : "?", key);
}

/* Answers 401 and counts the failure against the caller's address: past
 * auth_fail_rate a minute, the address gets 429 without a token check. */
static void auth_failed(hub_api_call_t *c, const char *details)
{
    hub_api_t *api = c->api;
    hub_api_fail(c, 401, "Authorization", details);
    if (!api->auth_fails)
        return;
    char key[CN_LINK_ADDR_KEY_SIZE];
    caller_key(c, key);
    hub_ratelimit_check(api->auth_fails, key, strlen(key), api->cfg.auth_fail_rate,
                        api->cfg.clock(api->cfg.clock_ctx));
}

/* Whether the caller's address used up its failed authentications. */
static bool auth_throttled(hub_api_call_t *c)
{
    hub_api_t *api = c->api;
    if (!api->auth_fails)
        return false;
    char key[CN_LINK_ADDR_KEY_SIZE];
    caller_key(c, key);
    hub_ratelimit_result_t r =
        hub_ratelimit_peek(api->auth_fails, key, strlen(key), api->cfg.auth_fail_rate,
                           api->cfg.clock(api->cfg.clock_ctx));
    if (r.allowed)
        return false;
    hub_api_fail(c, 429, "Authorization",
                 "too many failed authentications from this address; retry later");
    c->resp->retry_after = r.retry_after_s ? r.retry_after_s : 1;
    return true;
}

/* Authenticates and rate-limits; false when the request was answered. */
static bool authenticate(hub_api_call_t *c, enum hub_api_auth need)
{
    hub_api_t *api = c->api;
    char buf[256];
    if (auth_throttled(c))
        return false;
    const char *token = hub_api_bearer_token(c->req->authorization, buf, sizeof(buf));
    if (!c->req->authorization) {
        auth_failed(c, "missing Authorization: Bearer token");
        return false;
    }
    if (!token) {
        auth_failed(c, "the Authorization header must be \"Bearer TOKEN\"");
        return false;
    }
    int rc = hub_store_token_authenticate(api->store, token, &c->token);
    sodium_memzero(buf, sizeof(buf));
    if (rc == CN_EAUTH) {
        auth_failed(c, "invalid or revoked token");
        return false;
    }
    if (rc < 0) {
        hub_api_store_fail(c, rc, "token", "Authorization");
        return false;
    }
    if (api->limiter) {
        hub_ratelimit_result_t rl =
            hub_ratelimit_check(api->limiter, c->token.id, strlen(c->token.id), api->cfg.rate_limit,
                                api->cfg.clock(api->cfg.clock_ctx));
        c->resp->ratelimit_limit = api->cfg.rate_limit;
        c->resp->ratelimit_remaining = rl.remaining;
        if (!rl.allowed) {
            hub_api_fail(c, 429, "Authorization", "rate limit exceeded for this token");
            c->resp->retry_after = rl.retry_after_s ? rl.retry_after_s : 1;
            return false;
        }
    }
    bool operator= c->token.scope == HUB_SCOPE_OPERATOR;
    if (need == HUB_AUTH_ADMIN && !operator&& c->token.scope != HUB_SCOPE_ADMIN) {
        hub_api_fail(c, 403, "Authorization", "this endpoint needs an admin token");
        return false;
    }
    if (need == HUB_AUTH_OPERATOR && !operator) {
        hub_api_fail(c, 403, "Authorization",
                     "this endpoint needs the hub operator's token (the one 'connect-hub init' "
                     "printed)");
        return false;
    }
    return true;
}

/* Path as a log-safe string (no control bytes, bounded). Refusals of
 * unauthenticated callers (401, and 429 without a token) share a small
 * budget of lines a second. */
static void log_request(const hub_http_req_t *req, const hub_http_resp_t *resp,
                        const hub_api_call_t *c)
{
    hub_api_t *api = c->api;
    char dropped[64] = "";
    if ((resp->status == 401 || resp->status == 429) && !c->token.id[0]) {
        hub_ratelimit_result_t r = hub_ratelimit_check(api->auth_log, "401", 3, AUTH_LOG_PER_S,
                                                       api->cfg.clock(api->cfg.clock_ctx));
        if (!r.allowed) {
            api->auth_log_dropped++;
            return;
        }
        if (api->auth_log_dropped)
            snprintf(dropped, sizeof(dropped), " (%llu similar lines left out)",
                     (unsigned long long)api->auth_log_dropped);
        api->auth_log_dropped = 0;
    }
    char path[128];
    printable(req->path ? req->path : "", path, sizeof(path));
    int level = resp->status >= 500 ? CN_LOG_WARN : CN_LOG_INFO;
    cn_log(level, "api: %s %s -> %d (peer %s%s%.8s)%s", hub_method_name(req->method), path,
           resp->status, req->peer ? req->peer : "?", c->token.id[0] ? ", token " : "", c->token.id,
           dropped);
}

void hub_api_handle(void *ctx, const hub_http_req_t *req, hub_http_resp_t *resp)
{
    hub_api_call_t c = {.api = ctx, .req = req, .resp = resp};

    for (size_t i = 0; i < req->nquery; i++) {
        char lower[32];
        size_t j = 0;
        for (; req->query[i].key[j] && j + 1 < sizeof(lower); j++)
            lower[j] = (char)tolower((unsigned char)req->query[i].key[j]);
        lower[j] = '\0';
        if (in_list(lower, credential_keys)) {
            hub_api_fail(&c, 401, lower,
                         "tokens are never accepted in the URL; send Authorization: Bearer TOKEN");
            goto done;
        }
    }

    const hub_api_route_t *route = find_route(&c);
    if (!route)
        goto done;
    if (route->auth != HUB_AUTH_NONE && !authenticate(&c, route->auth))
        goto done;
    if (route->gate && !route->gate(&c))
        goto done;
    static const char *const no_query[] = {NULL};
    if (!hub_api_only_query(&c, route->query ? route->query : no_query)) {
        hub_api_failed_validation(&c);
        goto done;
    }
    route->handler(&c);
    if (c.errors && !resp->body)
        hub_api_failed_validation(&c);
    if (!resp->body) {
        cn_log_error("api: handler for %s left no answer", route->route.pattern);
        hub_api_fail(&c, 500, "", "internal error");
    }
done:
    log_request(req, resp, &c);
    json_decref(c.body);
    json_decref(c.errors);
    sodium_memzero(&c.token, sizeof(c.token));
}
