/* Recording and rendering lifecycle events (see events.h). */
#include "events.h"

#include <stdlib.h>
#include <string.h>

#include "cn_err.h"
#include "cn_log.h"

const char *const hub_event_types[] = {
    HUB_EV_TUNNEL_CREATED,
    HUB_EV_TUNNEL_UPDATED,
    HUB_EV_TUNNEL_DELETED,
    HUB_EV_TUNNEL_STATUS,
    HUB_EV_AGENT_CREATED,
    HUB_EV_AGENT_DELETED,
    HUB_EV_AGENT_CONNECTED,
    HUB_EV_AGENT_DISCONNECTED,
    HUB_EV_SHARE_CREATED,
    HUB_EV_SHARE_REVOKED,
    HUB_EV_SHARE_EXPIRED,
    HUB_EV_WEBHOOK_DISABLED,
    NULL,
};

bool hub_event_type_known(const char *type)
{
    for (size_t i = 0; type && hub_event_types[i]; i++)
        if (!strcmp(type, hub_event_types[i]))
            return true;
    return false;
}

json_t *hub_json_time(int64_t ms)
{
    char iso[HUB_TIME_ISO_SIZE];
    if (ms == HUB_TIME_NONE || hub_time_format(ms, iso) < 0)
        return json_null();
    return json_string(iso);
}

int hub_event_record(hub_store_t *st, const char *workspace_id, const char *type,
                     const char *tunnel_id, const char *agent_id, json_t *data)
{
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (data && !text)
        return CN_ENOMEM;
    hub_event_spec_t spec = {
        .type = type,
        .tunnel_id = tunnel_id,
        .agent_id = agent_id,
        .data = text,
    };
    int rc = hub_store_event_append(st, workspace_id, &spec, NULL);
    if (rc < 0)
        cn_log_warn("events: could not record %s (tunnel %s, agent %s): %s", type,
                    tunnel_id ? tunnel_id : "-", agent_id ? agent_id : "-", hub_store_errmsg(st));
    free(text);
    return rc;
}

static json_t *id_or_null(const char *id)
{
    return id && *id ? json_string(id) : json_null();
}

json_t *hub_event_to_json(const hub_event_t *e)
{
    json_t *data = e->data ? json_loads(e->data, 0, NULL) : NULL;
    if (!json_is_object(data)) {
        json_decref(data);
        data = json_object();
    }
    return json_pack("{s:I,s:s,s:o,s:o,s:o,s:o}", "id", (json_int_t)e->id, "type", e->type,
                     "tunnelId", id_or_null(e->tunnel_id), "agentId", id_or_null(e->agent_id),
                     "data", data, "createdAt", hub_json_time(e->created_at));
}

int hub_event_retain(hub_store_t *st, const hub_event_retention_t *r, size_t *pruned)
{
    size_t old = 0, over = 0;
    int rc = 0;
    if (r->days)
        rc = hub_store_event_prune(st, hub_store_now(st) - (int64_t)r->days * 86400 * 1000, &old);
    if (rc == 0 && r->max_per_ws)
        rc = hub_store_event_cap(st, r->max_per_ws, &over);
    if (pruned)
        *pruned = old + over;
    return rc;
}
