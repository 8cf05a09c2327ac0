/* GET /api/v1/events[?tunnelId=&since=&after=&limit=]: the workspace's
 * lifecycle events, oldest first. */
#include "api_internal.h"

#include "validate.h"

static void event_list(hub_api_call_t *c)
{
    hub_event_filter_t f = {0};
    const char *tunnel = hub_api_query(c, "tunnelId");
    const char *since = hub_api_query(c, "since");
    const char *after = hub_api_query(c, "after");
    const char *limit = hub_api_query(c, "limit");
    unsigned long long n = 0;
    if (tunnel) {
        if (!hub_uuid_valid(tunnel))
            hub_api_invalid(c, "tunnelId", "must be a tunnel id (UUID)");
        f.tunnel_id = tunnel;
    }
    if (since) {
        int64_t ms = 0;
        if (hub_time_parse(since, &ms) < 0 || ms <= 0)
            hub_api_invalid(c, "since",
                            "must be an RFC 3339 time such as 2026-01-31T12:00:00Z (encode + "
                            "as %2B)");
        f.since = ms;
    }
    if (after) {
        if (!hub_parse_uint(after, (unsigned long long)INT64_MAX, &n))
            hub_api_invalid(c, "after", "must be an event id (a non-negative integer)");
        f.has_after = true; /* after=0 is a cursor too: from the first event */
        f.after_id = (int64_t)n;
    }
    if (limit) {
        if (!hub_parse_uint(limit, HUB_EVENTS_MAX, &n) || n < 1)
            hub_api_invalid(c, "limit", "must be an integer between 1 and 1000");
        f.limit = (size_t)n;
    }
    if (hub_api_failed_validation(c))
        return;
    hub_event_list_t l = {0};
    int rc = hub_store_event_list(c->api->store, c->token.workspace_id, &f, &l);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "event", "");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l.count; i++)
        json_array_append_new(arr, hub_event_to_json(&l.items[i]));
    hub_event_list_free(&l);
    hub_api_reply(c, 200, json_pack("{s:o}", "events", arr));
}

static const char *const event_query[] = {"tunnelId", "since", "after", "limit", NULL};

const hub_api_route_t hub_api_events_routes[] = {
    {{HUB_GET, "/api/v1/events"}, event_list, HUB_AUTH_TOKEN, event_query, NULL},
};
const size_t hub_api_events_nroutes =
    sizeof(hub_api_events_routes) / sizeof(hub_api_events_routes[0]);
