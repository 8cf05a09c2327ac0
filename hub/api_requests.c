/* Recorded requests of HTTP tunnels and shares (= connect inspect / connect
 * replay): list a tunnel's records, show one, replay one through the edge.
 * The records live in the hub's memory (inspect.h says why); every route
 * is scoped to the caller's workspace. */
#include "api_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inspect.h"
#include "validate.h"

/* A path's request id: a positive integer, else 404 (it cannot exist). */
static bool parse_rid(hub_api_call_t *c, uint64_t *rid)
{
    unsigned long long v = 0;
    if (!hub_parse_uint(c->params.value[0], (unsigned long long)INT64_MAX, &v) || !v) {
        hub_api_not_found(c, "request");
        return false;
    }
    *rid = v;
    return true;
}

static json_t *opt_str(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

/* The list's view of a record. */
static json_t *summary_json(const hub_inspect_rec_t *r)
{
    return json_pack("{s:I,s:o,s:s,s:s,s:o,s:I,s:o,s:o,s:s,s:o}", "id", (json_int_t)r->id, "time",
                     hub_json_time(r->started), "method", r->method, "path", r->target, "status",
                     r->status ? json_integer(r->status) : json_null(), "durationMs",
                     (json_int_t)r->duration, "firstByteMs",
                     r->first_byte >= 0 ? json_integer(r->first_byte) : json_null(), "shareId",
                     opt_str(r->share_id), "client", r->client, "replayOf",
                     r->replay_of ? json_integer((json_int_t)r->replay_of) : json_null());
}

/* "Name: value\n" lines -> [{"name","value"}]. */
static json_t *headers_json(const char *text)
{
    json_t *arr = json_array();
    for (const char *p = text; arr && p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        const char *colon = memchr(p, ':', ll);
        if (colon) {
            size_t nlen = (size_t)(colon - p), voff = nlen + (nlen + 1 < ll ? 2 : 1);
            json_t *name = json_stringn(p, nlen);
            json_t *value = json_stringn(p + voff, voff <= ll ? ll - voff : 0);
            /* A header value that is not UTF-8 cannot be a JSON string. */
            if (!value)
                value = json_string("(not UTF-8)");
            if (name && value)
                json_array_append_new(arr, json_pack("{s:o,s:o}", "name", name, "value", value));
            else {
                json_decref(name);
                json_decref(value);
            }
        }
        p = nl ? nl + 1 : p + ll;
    }
    return arr;
}

/* A body prefix: UTF-8 text as is, anything else as base64. */
static json_t *body_json(const hub_inspect_body_t *b)
{
    json_t *text = b->len ? json_stringn((const char *)b->data, b->len) : json_string("");
    const char *enc = "utf-8";
    if (!text) {
        size_t cap = sodium_base64_ENCODED_LEN(b->len, sodium_base64_VARIANT_ORIGINAL);
        char *s = malloc(cap);
        if (s) {
            sodium_bin2base64(s, cap, b->data, b->len, sodium_base64_VARIANT_ORIGINAL);
            text = json_string(s);
            free(s);
        }
        enc = "base64";
    }
    return json_pack("{s:o,s:s,s:I,s:b}", "body", text ? text : json_null(), "bodyEncoding", enc,
                     "bodyBytes", (json_int_t)b->seen, "bodyComplete", b->seen == b->len);
}

static json_t *record_json(const hub_inspect_rec_t *r)
{
    json_t *j = summary_json(r);
    json_t *req = body_json(&r->req_body), *resp = NULL;
    if (req) {
        json_object_set_new(req, "headers", headers_json(r->req_head));
        json_object_set_new(req, "headersComplete", json_boolean(!r->req_head_cut));
    }
    if (r->resp_head) {
        resp = body_json(&r->resp_body);
        if (resp) {
            json_object_set_new(resp, "status", json_integer(r->status));
            json_object_set_new(resp, "headers", headers_json(r->resp_head));
            json_object_set_new(resp, "headersComplete", json_boolean(!r->resp_head_cut));
        }
    }
    if (j) {
        json_object_set_new(j, "tunnelId", json_string(r->tunnel_id));
        json_object_set_new(j, "request", req ? req : json_null());
        json_object_set_new(j, "response", resp ? resp : json_null());
    } else {
        json_decref(req);
        json_decref(resp);
    }
    return j;
}

static void requests_list(hub_api_call_t *c)
{
    const char *tid = c->params.value[0];
    const char *limit = hub_api_query(c, "limit"), *before = hub_api_query(c, "before"),
               *after = hub_api_query(c, "after");
    unsigned long long lim = 100, bef = 0, aft = 0;
    if (limit && (!hub_parse_uint(limit, HUB_INSPECT_PAGE_MAX, &lim) || lim < 1))
        hub_api_invalid(c, "limit", "must be an integer between 1 and 1000");
    if (before && (!hub_parse_uint(before, (unsigned long long)INT64_MAX, &bef) || bef < 1))
        hub_api_invalid(c, "before", "must be a request id (a positive integer)");
    if (after && !hub_parse_uint(after, (unsigned long long)INT64_MAX, &aft))
        hub_api_invalid(c, "after", "must be a request id (an integer, 0 for the oldest)");
    if (before && after)
        hub_api_invalid(c, "after", "cannot be given with before");
    if (hub_api_failed_validation(c) || !hub_api_check_id(c, tid, "tunnel"))
        return;
    hub_tunnel_t t = {0};
    int rc = hub_store_tunnel_get(c->api->store, c->token.workspace_id, tid, &t);
    hub_tunnel_clear(&t);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "tunnel", "id");
        return;
    }
    const hub_inspect_rec_t *items[HUB_INSPECT_PAGE_MAX];
    bool forward = after != NULL;
    size_t n = hub_inspect_list(c->api->cfg.inspect, c->token.workspace_id, tid, (uint64_t)bef,
                                forward, (uint64_t)aft, (size_t)lim, items);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, summary_json(items[i]));
    json_t *cursor = json_null();
    if (forward)
        cursor = json_integer((json_int_t)(n ? items[n - 1]->id : aft));
    else if (n == lim)
        cursor = json_integer((json_int_t)items[n - 1]->id);
    hub_api_reply(c, 200,
                  json_pack("{s:o,s:o,s:b}", "requests", arr, forward ? "nextAfter" : "nextBefore",
                            cursor, "recording", hub_inspect_enabled(c->api->cfg.inspect)));
}

static void request_get(hub_api_call_t *c)
{
    uint64_t rid = 0;
    if (!parse_rid(c, &rid))
        return;
    const hub_inspect_rec_t *r = hub_inspect_get(c->api->cfg.inspect, c->token.workspace_id, rid);
    if (!r) {
        hub_api_not_found(c, "request");
        return;
    }
    hub_api_reply(c, 200, record_json(r));
}

static void request_replay(hub_api_call_t *c)
{
    uint64_t rid = 0, new_id = 0;
    if (!parse_rid(c, &rid))
        return;
    json_t *body = hub_api_body(c);
    if (!body)
        return;
    static const char *const fields[] = {NULL};
    if (!hub_api_only_fields(c, body, fields) && hub_api_failed_validation(c))
        return;
    const hub_inspect_rec_t *r = hub_inspect_get(c->api->cfg.inspect, c->token.workspace_id, rid);
    if (!r) {
        hub_api_not_found(c, "request");
        return;
    }
    /* A replay acts on the tunnel as its owner would. */
    hub_tunnel_t t = {0};
    int rc = hub_store_tunnel_get(c->api->store, c->token.workspace_id, r->tunnel_id, &t);
    if (rc < 0) {
        hub_tunnel_clear(&t);
        hub_api_fail(c, 404, "rid", "the request's tunnel no longer exists");
        return;
    }
    bool may = hub_api_acts_for_agent(c, t.agent_id, "rid");
    hub_tunnel_clear(&t);
    if (!may)
        return;
    const char *why = "this hub cannot replay requests";
    rc = c->api->cfg.replay
             ? c->api->cfg.replay(c->api->cfg.replay_ctx, c->token.workspace_id, rid, &new_id, &why)
             : CN_EIO;
    if (rc == CN_ENOTFOUND) {
        hub_api_fail(c, 404, "rid", why);
        return;
    }
    if (rc == CN_EINVAL) {
        hub_api_fail(c, 409, "rid", why);
        return;
    }
    if (rc < 0) {
        hub_api_fail(c, 503, "rid", why);
        return;
    }
    cn_log_info("request %llu replayed as %llu", (unsigned long long)rid,
                (unsigned long long)new_id);
    hub_api_reply(c, 202,
                  json_pack("{s:I,s:I,s:o,s:s}", "id", (json_int_t)new_id, "replayOf",
                            (json_int_t)rid, "status", json_null(), "state", "sent"));
}

static const char *const list_query[] = {"limit", "before", "after", NULL};

const hub_api_route_t hub_api_requests_routes[] = {
    {{HUB_GET, "/api/v1/tunnels/{id}/requests"}, requests_list, HUB_AUTH_TOKEN, list_query, NULL},
    {{HUB_GET, "/api/v1/requests/{rid}"}, request_get, HUB_AUTH_TOKEN, NULL, NULL},
    {{HUB_POST, "/api/v1/requests/{rid}/replay"}, request_replay, HUB_AUTH_TOKEN, NULL, NULL},
};
const size_t hub_api_requests_nroutes =
    sizeof(hub_api_requests_routes) / sizeof(hub_api_requests_routes[0]);
