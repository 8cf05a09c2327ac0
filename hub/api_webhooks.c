/* Webhooks: register (the signing secret is shown once), list, show,
 * enable/disable, delete, and each webhook's delivery log. Workspace
 * admins only: a webhook makes the hub send requests where it says
 * (docs/security.md, "Webhooks"). */
#include "api_internal.h"

#include <sodium.h>
#include <string.h>

#include "validate.h"
#include "webhook_core.h"
#include "webhooks.h"

static json_t *webhook_json(const hub_webhook_t *w)
{
    json_t *events = json_loads(w->events, 0, NULL);
    if (!json_is_array(events)) {
        json_decref(events);
        events = json_array();
    }
    return json_pack("{s:s,s:s,s:o,s:b,s:i,s:o,s:o,s:o,s:o,s:o,s:o}", "id", w->id, "url", w->url,
                     "events", events, "enabled", w->enabled, "consecutiveFailures",
                     (int)w->failures, "lastError",
                     w->last_error[0] ? json_string(w->last_error) : json_null(), "nextAttemptAt",
                     hub_json_time(w->retry_at), "disabledAt", hub_json_time(w->disabled_at),
                     "lastSuccessAt", hub_json_time(w->last_success_at), "createdAt",
                     hub_json_time(w->created_at), "updatedAt", hub_json_time(w->updated_at));
}

static json_t *delivery_json(const hub_delivery_t *d)
{
    return json_pack("{s:I,s:I,s:s,s:s,s:i,s:o,s:o,s:o,s:o,s:o}", "id", (json_int_t)d->id,
                     "eventId", (json_int_t)d->event_id, "eventType", d->event_type, "status",
                     hub_delivery_state_name(d->state), "attempts", (int)d->attempts,
                     "responseStatus", d->last_status ? json_integer(d->last_status) : json_null(),
                     "error", d->last_error[0] ? json_string(d->last_error) : json_null(),
                     "createdAt", hub_json_time(d->created_at), "lastAttemptAt",
                     hub_json_time(d->last_attempt_at), "deliveredAt",
                     hub_json_time(d->delivered_at));
}

/* POST /api/v1/webhooks {url, events?} */
static void webhook_create(hub_api_call_t *c)
{
    static const char *const fields[] = {"url", "events", NULL};
    json_t *body = hub_api_body(c);
    if (!body)
        return;
    hub_api_only_fields(c, body, fields);
    const char *url = NULL, *why = NULL;
    hub_webhook_url_t parsed;
    if (hub_api_get_string(c, body, "url", true, &url, NULL) &&
        !hub_webhook_url_parse(url, &parsed, &why))
        hub_api_invalid(c, "url", why);
    json_t *events = json_object_get(body, "events");
    char *events_text = NULL;
    if (events && !json_is_null(events)) {
        if (!hub_webhook_events_valid(events, &why))
            hub_api_invalid(c, "events", why);
        else
            events_text = json_dumps(events, JSON_COMPACT);
    }
    if (hub_api_failed_validation(c)) {
        free(events_text);
        return;
    }
    char secret[HUB_WEBHOOK_SECRET_SIZE];
    hub_webhook_t w;
    int rc = hub_store_webhook_create(c->api->store, c->token.workspace_id, url, events_text,
                                      c->api->cfg.max_webhooks, secret, &w);
    free(events_text);
    if (rc < 0) {
        sodium_memzero(secret, sizeof(secret));
        hub_api_store_fail(c, rc, "workspace", "url");
        return;
    }
    cn_log_info("workspace %s: webhook %s created", c->token.workspace_id, w.id);
    json_t *out = webhook_json(&w);
    if (out)
        json_object_set_new(out, "secret", json_string(secret));
    sodium_memzero(secret, sizeof(secret));
    hub_api_reply(c, 201, out);
}

static void webhook_list(hub_api_call_t *c)
{
    if (hub_api_failed_validation(c))
        return;
    hub_webhook_list_t l = {0};
    int rc = hub_store_webhook_list(c->api->store, c->token.workspace_id, &l);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "webhook", "");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l.count; i++)
        json_array_append_new(arr, webhook_json(&l.items[i]));
    hub_webhook_list_free(&l);
    hub_api_reply(c, 200, json_pack("{s:o}", "webhooks", arr));
}

static void webhook_get(hub_api_call_t *c)
{
    const char *id = c->params.value[0];
    hub_webhook_t w;
    if (!hub_api_check_id(c, id, "webhook"))
        return;
    int rc = hub_store_webhook_get(c->api->store, c->token.workspace_id, id, &w);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "webhook", "id");
        return;
    }
    hub_api_reply(c, 200, webhook_json(&w));
}

/* PATCH /api/v1/webhooks/{id} {enabled}: a disabled webhook (by hand or
 * after repeated failures) is enabled again with its queue intact. */
static void webhook_update(hub_api_call_t *c)
{
    static const char *const fields[] = {"enabled", NULL};
    const char *id = c->params.value[0];
    if (!hub_api_check_id(c, id, "webhook"))
        return;
    json_t *body = hub_api_body(c);
    if (!body)
        return;
    hub_api_only_fields(c, body, fields);
    bool enabled = true, have = false;
    if (hub_api_get_bool(c, body, "enabled", &enabled, &have) && !have)
        hub_api_invalid(c, "enabled", "is required");
    if (hub_api_failed_validation(c))
        return;
    hub_webhook_t w;
    int rc = hub_store_webhook_set_enabled(c->api->store, c->token.workspace_id, id, enabled, &w);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "webhook", "id");
        return;
    }
    cn_log_info("workspace %s: webhook %s %s", c->token.workspace_id, id,
                enabled ? "enabled" : "disabled");
    hub_api_reply(c, 200, webhook_json(&w));
}

static void webhook_delete(hub_api_call_t *c)
{
    const char *id = c->params.value[0];
    if (!hub_api_check_id(c, id, "webhook"))
        return;
    int rc = hub_store_webhook_delete(c->api->store, c->token.workspace_id, id);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "webhook", "id");
        return;
    }
    cn_log_info("workspace %s: webhook %s deleted", c->token.workspace_id, id);
    hub_api_reply(c, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
}

/* GET /api/v1/webhooks/{id}/deliveries[?limit=]: newest first. */
static void delivery_list(hub_api_call_t *c)
{
    const char *id = c->params.value[0];
    if (!hub_api_check_id(c, id, "webhook"))
        return;
    const char *limit = hub_api_query(c, "limit");
    unsigned long long n = 0;
    if (limit && (!hub_parse_uint(limit, HUB_EVENTS_MAX, &n) || n < 1))
        hub_api_invalid(c, "limit", "must be an integer between 1 and 1000");
    if (hub_api_failed_validation(c))
        return;
    hub_delivery_list_t l = {0};
    int rc = hub_store_delivery_list(c->api->store, c->token.workspace_id, id, (size_t)n, &l);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "webhook", "id");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l.count; i++)
        json_array_append_new(arr, delivery_json(&l.items[i]));
    hub_delivery_list_free(&l);
    hub_api_reply(c, 200, json_pack("{s:o}", "deliveries", arr));
}

static const char *const delivery_query[] = {"limit", NULL};

/* The dispatcher answers 422 to any query argument a route does not list. */
const hub_api_route_t hub_api_webhooks_routes[] = {
    {{HUB_POST, "/api/v1/webhooks"}, webhook_create, HUB_AUTH_ADMIN, NULL, NULL},
    {{HUB_GET, "/api/v1/webhooks"}, webhook_list, HUB_AUTH_ADMIN, NULL, NULL},
    {{HUB_GET, "/api/v1/webhooks/{id}"}, webhook_get, HUB_AUTH_ADMIN, NULL, NULL},
    {{HUB_PATCH, "/api/v1/webhooks/{id}"}, webhook_update, HUB_AUTH_ADMIN, NULL, NULL},
    {{HUB_DELETE, "/api/v1/webhooks/{id}"}, webhook_delete, HUB_AUTH_ADMIN, NULL, NULL},
    {{HUB_GET, "/api/v1/webhooks/{id}/deliveries"},
     delivery_list,
     HUB_AUTH_ADMIN,
     delivery_query,
     NULL},
};
const size_t hub_api_webhooks_nroutes =
    sizeof(hub_api_webhooks_routes) / sizeof(hub_api_webhooks_routes[0]);
