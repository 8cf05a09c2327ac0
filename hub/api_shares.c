/* Shares (= connect share): create, list, show, revoke, and each share's
 * access log. A share of an HTTP tunnel answers at share-TOKEN.DOMAIN on
 * the HTTP edge; a share of a TCP tunnel is redeemed with `connect reach
 * HUB/share/TOKEN` (api_reach.c, edge_reach.c). The token is shown once,
 * in shareUrl. */
#include "api_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "share_policy.h"
#include "validate.h"

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static const char *share_status(const hub_api_t *api, const hub_share_t *s)
{
    if (s->revoked_at != HUB_TIME_NONE)
        return "revoked";
    int64_t now = hub_store_now(api->store);
    if (s->expires_at != HUB_TIME_NONE && now >= s->expires_at)
        return "expired";
    return "active";
}

static void share_url(const hub_api_t *api, const char *token, char *out, size_t n)
{
    hub_api_edge_url(api, "share-", token, out, n);
}

static json_t *share_json(const hub_api_t *api, const hub_share_t *s)
{
    json_t *methods = json_array(), *paths = json_array();
    static const unsigned order[] = {HUB_GET,   HUB_HEAD,   HUB_POST,   HUB_PUT,
                                     HUB_PATCH, HUB_DELETE, HUB_OPTIONS};
    for (size_t i = 0; methods && i < sizeof(order) / sizeof(order[0]); i++)
        if (s->methods & order[i])
            json_array_append_new(methods, json_string(hub_method_name(order[i])));
    for (size_t i = 0; paths && i < s->npaths; i++)
        json_array_append_new(paths, json_string(s->paths[i]));
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:i,s:o,s:s,s:o,s:o,s:o}", "id", s->id, "tunnelId",
                     s->tunnel_id, "name", s->name, "description", s->description, "allowedMethods",
                     methods, "allowedPaths", paths, "rateLimitPerMinute", (int)s->rate_limit,
                     "httpUser", str_or_null(s->http_user), "status", share_status(api, s),
                     "createdAt", hub_json_time(s->created_at), "expiresAt",
                     hub_json_time(s->expires_at), "revokedAt", hub_json_time(s->revoked_at));
}

/* A create request once parsed. Strings point into the request body. */
typedef struct create_req {
    const char *name;
    const char *description;
    int64_t ttl_ms;
    unsigned methods;
    const char *paths[HUB_SHARE_PATHS_MAX];
    size_t npaths;
    long long rate;
    const char *http_user;
} create_req_t;

static void parse_expires(hub_api_call_t *c, json_t *body, create_req_t *r)
{
    static const struct {
        const char *text;
        int64_t ms;
    } opts[] = {{"1h", 3600000LL},
                {"24h", 86400000LL},
                {"7d", 7 * 86400000LL},
                {"30d", 30 * 86400000LL},
                {"never", 0}};
    const char *v = NULL;
    bool have = false;
    r->ttl_ms = 86400000LL; /* 24h unless told otherwise */
    if (!hub_api_get_string(c, body, "expiresIn", false, &v, &have) || !have)
        return;
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (!strcmp(v, opts[i].text)) {
            r->ttl_ms = opts[i].ms;
            return;
        }
    hub_api_invalid(c, "expiresIn", "must be one of 1h, 24h, 7d, 30d, never");
}

static void parse_methods(hub_api_call_t *c, json_t *body, create_req_t *r)
{
    json_t *v = json_object_get(body, "allowedMethods");
    if (!v || json_is_null(v))
        return;
    size_t i;
    json_t *m;
    if (!json_is_array(v)) {
        hub_api_invalid(c, "allowedMethods", "must be an array such as [\"GET\",\"POST\"]");
        return;
    }
    json_array_foreach(v, i, m)
    {
        const char *s = json_string_value(m);
        unsigned bit = s ? hub_method_parse(s, strlen(s)) : 0;
        if (!bit) {
            hub_api_invalid(c, "allowedMethods",
                            "each must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
            return;
        }
        r->methods |= bit;
    }
}

static void parse_paths(hub_api_call_t *c, json_t *body, create_req_t *r)
{
    json_t *v = json_object_get(body, "allowedPaths");
    if (!v || json_is_null(v))
        return;
    size_t i;
    json_t *p;
    if (!json_is_array(v) || json_array_size(v) > HUB_SHARE_PATHS_MAX) {
        hub_api_invalid(c, "allowedPaths", "must be an array of at most 32 path patterns");
        return;
    }
    json_array_foreach(v, i, p)
    {
        const char *s = json_string_value(p), *why = NULL;
        if (!s || strlen(s) != json_string_length(p) || !hub_path_pattern_valid(s, &why)) {
            hub_api_invalid(c, "allowedPaths", why ? why : "each must be a string");
            return;
        }
        r->paths[r->npaths++] = s;
    }
}

static bool create_parse(hub_api_call_t *c, json_t *body, create_req_t *r)
{
    static const char *const fields[] = {
        "name",         "description",        "expiresIn", "allowedMethods",
        "allowedPaths", "rateLimitPerMinute", "httpUser",  NULL};
    const char *why = NULL;
    bool have = false;
    hub_api_only_fields(c, body, fields);
    if (hub_api_get_string(c, body, "name", false, &r->name, &have) && have &&
        !hub_valid_name(r->name, &why))
        hub_api_invalid(c, "name", why);
    if (!have)
        r->name = NULL;
    if (hub_api_get_string(c, body, "description", false, &r->description, &have) && have &&
        (strlen(r->description) > HUB_DESCRIPTION_MAX ||
         strlen(r->description) != json_string_length(json_object_get(body, "description"))))
        hub_api_invalid(c, "description", "must be at most 500 characters");
    if (!have)
        r->description = "";
    parse_expires(c, body, r);
    parse_methods(c, body, r);
    parse_paths(c, body, r);
    r->rate = 60;
    if (hub_api_get_int(c, body, "rateLimitPerMinute", &r->rate, &have) && have &&
        (r->rate < HUB_SHARE_RATE_MIN || r->rate > HUB_SHARE_RATE_MAX))
        hub_api_invalid(c, "rateLimitPerMinute", "must be an integer between 1 and 1000");
    if (hub_api_get_string(c, body, "httpUser", false, &r->http_user, &have) && have &&
        !hub_valid_http_user(r->http_user, &why))
        hub_api_invalid(c, "httpUser", why);
    if (!have)
        r->http_user = NULL;
    return !hub_api_failed_validation(c);
}

static void share_create(hub_api_call_t *c)
{
    hub_api_t *api = c->api;
    hub_store_t *st = api->store;
    const char *ws = c->token.workspace_id;
    const char *tid = c->params.value[0];
    if (!hub_api_check_id(c, tid, "tunnel"))
        return;
    json_t *body = hub_api_body(c);
    if (!body)
        return;
    hub_tunnel_t t = {0};
    int rc = hub_store_tunnel_get(st, ws, tid, &t);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "tunnel", "id");
        return;
    }
    create_req_t r = {0};
    if (!hub_api_acts_for_agent(c, t.agent_id, "id") || !create_parse(c, body, &r))
        goto out;
    bool tcp = !hub_protocol_on_http_edge(t.protocol);
    if (t.protocol == HUB_PROTO_UDP) {
        hub_api_fail(c, 422, "id", "UDP tunnels cannot be shared");
        goto out;
    }
    if (tcp) {
        /* Requests, paths and basic auth mean nothing to a TCP stream. */
        if (r.methods)
            hub_api_invalid(c, "allowedMethods", "only for HTTP tunnels");
        if (r.npaths)
            hub_api_invalid(c, "allowedPaths", "only for HTTP tunnels");
        if (r.http_user)
            hub_api_invalid(c, "httpUser", "only for HTTP tunnels");
        if (hub_api_failed_validation(c))
            goto out;
    }
    char defname[HUB_NAME_SIZE];
    if (!r.name) {
        snprintf(defname, sizeof(defname), "share of %.80s", t.name);
        r.name = defname;
    }
    hub_share_spec_t spec = {
        .tunnel_id = t.id,
        .name = r.name,
        .description = r.description,
        .methods = r.methods,
        .paths = r.paths,
        .npaths = r.npaths,
        .rate_limit = (uint32_t)r.rate,
        .ttl_ms = r.ttl_ms,
        .http_user = r.http_user,
    };
    hub_share_t *s = calloc(1, sizeof(*s));
    char token[HUB_SHARE_TOKEN_SIZE] = "", password[HUB_PASSWORD_SIZE] = "";
    if (!s) {
        hub_api_fail(c, 500, "", "out of memory");
        goto out;
    }
    rc = hub_store_tx_begin(st);
    if (rc == 0) {
        rc = hub_store_share_create(st, ws, &spec, s, token, password);
        if (rc == 0)
            rc = hub_event_record(st, ws, HUB_EV_SHARE_CREATED, t.id, t.agent_id,
                                  json_pack("{s:s,s:s}", "shareId", s->id, "name", s->name));
        rc = hub_store_tx_end(st, rc);
    }
    if (rc < 0) {
        hub_api_store_fail(c, rc, "tunnel", "id");
    } else {
        cn_log_info("share %s (%s) of tunnel %s created", s->id, s->name, t.id);
        char url[512];
        if (tcp)
            snprintf(url, sizeof(url), "%s/share/%s", api->hub_url, token);
        else
            share_url(api, token, url, sizeof(url));
        json_t *j = share_json(api, s);
        if (j) {
            json_object_set_new(j, "shareUrl", json_string(url));
            if (password[0])
                json_object_set_new(j, "httpPassword", json_string(password));
        }
        hub_api_reply(c, 201, j);
        sodium_memzero(url, sizeof(url));
    }
    sodium_memzero(token, sizeof(token));
    sodium_memzero(password, sizeof(password));
    free(s);
out:
    hub_tunnel_clear(&t);
}

static void reply_list(hub_api_call_t *c, const char *tunnel_id)
{
    hub_share_list_t l = {0};
    int rc = hub_store_share_list(c->api->store, c->token.workspace_id, tunnel_id, &l);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "share", "");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l.count; i++)
        json_array_append_new(arr, share_json(c->api, &l.items[i]));
    hub_share_list_free(&l);
    hub_api_reply(c, 200, json_pack("{s:o}", "shares", arr));
}

static void share_list_tunnel(hub_api_call_t *c)
{
    const char *tid = c->params.value[0];
    if (!hub_api_check_id(c, tid, "tunnel"))
        return;
    hub_tunnel_t t = {0};
    int rc = hub_store_tunnel_get(c->api->store, c->token.workspace_id, tid, &t);
    hub_tunnel_clear(&t);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "tunnel", "id");
        return;
    }
    reply_list(c, tid);
}

static void share_list_all(hub_api_call_t *c)
{
    reply_list(c, NULL);
}

/* Loads the share named by the path into *s; false when answered. */
static bool load_share(hub_api_call_t *c, hub_share_t *s)
{
    const char *id = c->params.value[0];
    if (!hub_api_check_id(c, id, "share"))
        return false;
    int rc = hub_store_share_get(c->api->store, c->token.workspace_id, id, s);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "share", "id");
        return false;
    }
    return true;
}

static void share_get(hub_api_call_t *c)
{
    hub_share_t *s = calloc(1, sizeof(*s));
    if (!s) {
        hub_api_fail(c, 500, "", "out of memory");
        return;
    }
    if (load_share(c, s))
        hub_api_reply(c, 200, share_json(c->api, s));
    free(s);
}

static void share_revoke(hub_api_call_t *c)
{
    hub_store_t *st = c->api->store;
    const char *ws = c->token.workspace_id;
    hub_share_t *s = calloc(1, sizeof(*s));
    hub_tunnel_t t = {0};
    if (!s) {
        hub_api_fail(c, 500, "", "out of memory");
        return;
    }
    if (!load_share(c, s))
        goto out;
    int rc = hub_store_tunnel_get(st, ws, s->tunnel_id, &t);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "share", "id");
        goto out;
    }
    if (!hub_api_acts_for_agent(c, t.agent_id, "id"))
        goto out;
    bool changed = false;
    rc = hub_store_tx_begin(st);
    if (rc == 0) {
        rc = hub_store_share_revoke(st, ws, s->id, s, &changed);
        if (rc == 0 && changed)
            rc = hub_event_record(st, ws, HUB_EV_SHARE_REVOKED, t.id, t.agent_id,
                                  json_pack("{s:s,s:s}", "shareId", s->id, "name", s->name));
        rc = hub_store_tx_end(st, rc);
    }
    if (rc < 0) {
        hub_api_store_fail(c, rc, "share", "id");
        goto out;
    }
    if (changed)
        cn_log_info("share %s (%s) revoked", s->id, s->name);
    hub_api_reply(c, 200, share_json(c->api, s));
out:
    hub_tunnel_clear(&t);
    free(s);
}

static void share_logs(hub_api_call_t *c)
{
    const char *limit = hub_api_query(c, "limit"), *before = hub_api_query(c, "before");
    unsigned long long lim = 100, bef = 0;
    if (limit && (!hub_parse_uint(limit, HUB_SHARE_LOG_PAGE_MAX, &lim) || lim < 1))
        hub_api_invalid(c, "limit", "must be an integer between 1 and 1000");
    if (before && (!hub_parse_uint(before, (unsigned long long)INT64_MAX, &bef) || bef < 1))
        hub_api_invalid(c, "before", "must be a log entry id (a positive integer)");
    if (hub_api_failed_validation(c))
        return;
    hub_share_t *s = calloc(1, sizeof(*s));
    if (!s) {
        hub_api_fail(c, 500, "", "out of memory");
        return;
    }
    if (!load_share(c, s)) {
        free(s);
        return;
    }
    hub_share_log_list_t l = {0};
    int rc = hub_store_share_log_list(c->api->store, c->token.workspace_id, s->id, (int64_t)bef,
                                      (size_t)lim, &l);
    free(s);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "share", "id");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l.count; i++) {
        const hub_share_log_entry_t *e = &l.items[i];
        json_array_append_new(
            arr, json_pack("{s:I,s:o,s:s,s:s,s:i,s:I,s:s}", "id", (json_int_t)e->id, "time",
                           hub_json_time(e->at), "method", e->method, "path", e->path, "status",
                           e->status, "latencyMs", (json_int_t)e->latency_ms, "client", e->client));
    }
    json_t *next = l.count == lim ? json_integer(l.items[l.count - 1].id) : json_null();
    hub_share_log_list_free(&l);
    hub_api_reply(c, 200, json_pack("{s:o,s:o}", "logs", arr, "nextBefore", next));
}

static const char *const share_log_query[] = {"limit", "before", NULL};

const hub_api_route_t hub_api_shares_routes[] = {
    {{HUB_POST, "/api/v1/tunnels/{id}/shares"}, share_create, HUB_AUTH_TOKEN, NULL, NULL},
    {{HUB_GET, "/api/v1/tunnels/{id}/shares"}, share_list_tunnel, HUB_AUTH_TOKEN, NULL, NULL},
    {{HUB_GET, "/api/v1/shares"}, share_list_all, HUB_AUTH_TOKEN, NULL, NULL},
    {{HUB_GET, "/api/v1/shares/{id}"}, share_get, HUB_AUTH_TOKEN, NULL, NULL},
    {{HUB_DELETE, "/api/v1/shares/{id}"}, share_revoke, HUB_AUTH_TOKEN, NULL, NULL},
    {{HUB_GET, "/api/v1/shares/{id}/logs"}, share_logs, HUB_AUTH_TOKEN, share_log_query, NULL},
};
const size_t hub_api_shares_nroutes =
    sizeof(hub_api_shares_routes) / sizeof(hub_api_shares_routes[0]);
