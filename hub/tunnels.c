/* Tunnel status changes and their events (see tunnels.h). */
#include "tunnels.h"

#include <string.h>

#include <jansson.h>

#include "cn_err.h"
#include "cn_log.h"
#include "events.h"

static hub_tunnels_observer_fn observer;
static void *observer_ctx;

void hub_tunnels_set_observer(hub_tunnels_observer_fn fn, void *ctx)
{
    observer = fn;
    observer_ctx = ctx;
}

static hub_tunnels_served_fn served_probe;
static void *served_ctx;

void hub_tunnels_set_served_probe(hub_tunnels_served_fn fn, void *ctx)
{
    served_probe = fn;
    served_ctx = ctx;
}

bool hub_tunnels_is_served(const char *agent_id, const char *tunnel_id, bool agent_connected)
{
    return served_probe ? served_probe(served_ctx, agent_id, tunnel_id) : agent_connected;
}

void hub_tunnels_notify(const char *workspace_id, const char *agent_id)
{
    if (observer && workspace_id && agent_id)
        observer(observer_ctx, workspace_id, agent_id);
}

int hub_tunnels_set_status(hub_store_t *st, const char *workspace_id, const char *id,
                           enum hub_tunnel_status to, const char *reason, const char *last_error,
                           hub_tunnel_t *out)
{
    hub_tunnel_t cur = {0};
    int rc = hub_store_tunnel_get(st, workspace_id, id, &cur);
    if (rc < 0)
        return rc;
    enum hub_tunnel_status from = cur.status;
    bool had_error = cur.last_error != NULL;
    hub_tunnel_update_t upd = {.fields = 0};
    if (from != to) {
        upd.fields |= HUB_TUNNEL_SET_STATUS;
        upd.status = to;
    }
    if (to == HUB_TUNNEL_ERROR) {
        upd.fields |= HUB_TUNNEL_SET_LAST_ERROR;
        upd.last_error = last_error && *last_error ? last_error : "unknown error";
    } else if (had_error) {
        upd.fields |= HUB_TUNNEL_SET_LAST_ERROR;
        upd.last_error = NULL;
    }
    if (to == HUB_TUNNEL_ACTIVE && from != HUB_TUNNEL_ACTIVE) {
        upd.fields |= HUB_TUNNEL_SET_CONNECTED_AT;
        upd.connected_at = hub_store_now(st);
    }
    if (!upd.fields) {
        if (out)
            *out = cur;
        else
            hub_tunnel_clear(&cur);
        return 0;
    }
    hub_tunnel_clear(&cur);
    hub_tunnel_t res = {0};
    rc = hub_store_tunnel_update(st, workspace_id, id, &upd, &res);
    if (rc < 0)
        return rc;
    if (from != to) {
        json_t *data = json_pack("{s:s,s:s}", "from", hub_tunnel_status_name(from), "to",
                                 hub_tunnel_status_name(to));
        if (data && reason)
            json_object_set_new(data, "reason", json_string(reason));
        if (data && to == HUB_TUNNEL_ERROR && res.last_error)
            json_object_set_new(data, "lastError", json_string(res.last_error));
        hub_event_record(st, workspace_id, HUB_EV_TUNNEL_STATUS, id, res.agent_id, data);
        cn_log_info("tunnel %s (%s): %s -> %s%s%s", id, res.name, hub_tunnel_status_name(from),
                    hub_tunnel_status_name(to), reason ? ": " : "", reason ? reason : "");
    }
    if (from != to)
        hub_tunnels_notify(workspace_id, res.agent_id);
    if (out)
        *out = res;
    else
        hub_tunnel_clear(&res);
    return 0;
}

int hub_tunnels_resume_status(hub_store_t *st, const hub_tunnel_t *t, enum hub_tunnel_status *out)
{
    hub_agent_t a;
    int rc = hub_store_agent_get(st, t->workspace_id, t->agent_id, &a);
    if (rc == CN_ENOTFOUND) {
        *out = HUB_TUNNEL_CONNECTING;
        return 0;
    }
    if (rc < 0)
        return rc;
    *out = hub_tunnels_is_served(t->agent_id, t->id, a.connected) ? HUB_TUNNEL_ACTIVE
                                                                  : HUB_TUNNEL_CONNECTING;
    return 0;
}

/* Applies `to` to the agent's tunnels whose status is in `from_mask`. */
static int move_agent_tunnels(hub_store_t *st, const char *workspace_id, const char *agent_id,
                              unsigned from_mask, enum hub_tunnel_status to, const char *reason)
{
    hub_tunnel_filter_t f = {.agent_id = agent_id};
    hub_tunnel_list_t list = {0};
    int rc = hub_store_tunnel_list(st, workspace_id, &f, &list);
    if (rc < 0)
        return rc;
    int first_err = 0;
    for (size_t i = 0; i < list.count; i++) {
        const hub_tunnel_t *t = &list.items[i];
        if (!(from_mask & (1u << t->status)))
            continue;
        rc = hub_tunnels_set_status(st, workspace_id, t->id, to, reason, NULL, NULL);
        if (rc < 0 && !first_err)
            first_err = rc;
    }
    hub_tunnel_list_free(&list);
    return first_err;
}

int hub_tunnels_on_agent_online(hub_store_t *st, const char *workspace_id, const char *agent_id)
{
    int rc = hub_store_agent_set_connected(st, workspace_id, agent_id, true);
    if (rc < 0)
        return rc;
    hub_event_record(st, workspace_id, HUB_EV_AGENT_CONNECTED, NULL, agent_id, NULL);
    return move_agent_tunnels(st, workspace_id, agent_id,
                              (1u << HUB_TUNNEL_CONNECTING) | (1u << HUB_TUNNEL_ERROR),
                              HUB_TUNNEL_ACTIVE, "agent online");
}

int hub_tunnels_on_agent_offline(hub_store_t *st, const char *workspace_id, const char *agent_id)
{
    int rc = hub_store_agent_set_connected(st, workspace_id, agent_id, false);
    if (rc < 0)
        return rc;
    hub_event_record(st, workspace_id, HUB_EV_AGENT_DISCONNECTED, NULL, agent_id, NULL);
    return move_agent_tunnels(st, workspace_id, agent_id, 1u << HUB_TUNNEL_ACTIVE,
                              HUB_TUNNEL_CONNECTING, "agent offline");
}

int hub_tunnels_expire_due(hub_store_t *st, size_t *count)
{
    if (count)
        *count = 0;
    hub_tunnel_list_t due = {0};
    int rc = hub_store_tunnel_list_expired(st, 100, &due);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < due.count; i++) {
        const hub_tunnel_t *t = &due.items[i];
        rc = hub_tunnels_set_status(st, t->workspace_id, t->id, HUB_TUNNEL_EXPIRED, "ttl", NULL,
                                    NULL);
        if (rc < 0) {
            cn_log_warn("tunnel %s: could not expire: %s", t->id, hub_store_errmsg(st));
            continue;
        }
        if (count)
            (*count)++;
    }
    hub_tunnel_list_free(&due);
    return 0;
}

int hub_tunnels_reset_links(hub_store_t *st)
{
    int rc = hub_store_agent_reset_connections(st, NULL);
    if (rc < 0)
        return rc;
    hub_workspace_list_t wl = {0};
    rc = hub_store_workspace_list(st, &wl);
    if (rc < 0)
        return rc;
    for (size_t w = 0; w < wl.count && rc >= 0; w++) {
        hub_tunnel_filter_t f = {.by_status = true, .status = HUB_TUNNEL_ACTIVE};
        hub_tunnel_list_t list = {0};
        rc = hub_store_tunnel_list(st, wl.items[w].id, &f, &list);
        for (size_t i = 0; rc >= 0 && i < list.count; i++)
            rc = hub_tunnels_set_status(st, wl.items[w].id, list.items[i].id, HUB_TUNNEL_CONNECTING,
                                        "hub restarted", NULL, NULL);
        hub_tunnel_list_free(&list);
    }
    hub_workspace_list_free(&wl);
    return rc;
}
