/* Tunnel status changes and their events (see tunnels.h). */
#include "tunnels.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cn_err.h"
#include "cn_log.h"
#include "events.h"
#include "reconcile.h"

void hub_live_changed(const hub_live_t *live, const char *workspace_id, const char *agent_id)
{
    if (live && live->changed && workspace_id && agent_id)
        live->changed(live->ctx, workspace_id, agent_id);
}

void hub_live_tunnel_status(const hub_live_t *live, const hub_tunnel_t *t)
{
    if (live && live->tunnel_status)
        live->tunnel_status(live->ctx, t);
    else
        hub_live_changed(live, t->workspace_id, t->agent_id);
}

void hub_live_tunnel_changed(const hub_live_t *live, const char *workspace_id, const char *agent_id,
                             const char *tunnel_id, const hub_tunnel_t *t)
{
    if (live && live->tunnel_changed)
        live->tunnel_changed(live->ctx, workspace_id, agent_id, tunnel_id, t);
    else
        hub_live_changed(live, workspace_id, agent_id);
}

bool hub_live_served(const hub_live_t *live, const char *agent_id, const char *tunnel_id,
                     bool agent_connected)
{
    return live && live->served ? live->served(live->ctx, agent_id, tunnel_id) : agent_connected;
}

/* The update that takes `cur` to `to` (fields 0: nothing to do). */
static hub_tunnel_update_t status_update(hub_store_t *st, const hub_tunnel_t *cur,
                                         enum hub_tunnel_status to, const char *last_error)
{
    hub_tunnel_update_t upd = {.fields = 0};
    if (cur->status != to) {
        upd.fields |= HUB_TUNNEL_SET_STATUS;
        upd.status = to;
    }
    if (to == HUB_TUNNEL_ERROR) {
        upd.fields |= HUB_TUNNEL_SET_LAST_ERROR;
        upd.last_error = last_error && *last_error ? last_error : "unknown error";
    } else if (cur->last_error) {
        upd.fields |= HUB_TUNNEL_SET_LAST_ERROR;
        upd.last_error = NULL;
    }
    if (to == HUB_TUNNEL_ACTIVE && cur->status != HUB_TUNNEL_ACTIVE) {
        upd.fields |= HUB_TUNNEL_SET_CONNECTED_AT;
        upd.connected_at = hub_store_now(st);
    }
    return upd;
}

/* The body of hub_tunnels_set_status, inside its transaction. */
static int set_status_tx(hub_store_t *st, const char *workspace_id, const char *id,
                         enum hub_tunnel_status to, const char *reason, const char *last_error,
                         hub_tunnel_t *res, bool *changed)
{
    hub_tunnel_t cur = {0};
    int rc = hub_store_tunnel_get(st, workspace_id, id, &cur);
    if (rc < 0)
        return rc;
    enum hub_tunnel_status from = cur.status;
    hub_tunnel_update_t upd = status_update(st, &cur, to, last_error);
    if (!upd.fields) {
        *res = cur;
        return 0;
    }
    hub_tunnel_clear(&cur);
    rc = hub_store_tunnel_update(st, workspace_id, id, &upd, res);
    if (rc < 0 || from == to)
        return rc;
    json_t *data = json_pack("{s:s,s:s}", "from", hub_tunnel_status_name(from), "to",
                             hub_tunnel_status_name(to));
    if (data && reason)
        json_object_set_new(data, "reason", json_string(reason));
    if (data && to == HUB_TUNNEL_ERROR && res->last_error)
        json_object_set_new(data, "lastError", json_string(res->last_error));
    rc = hub_event_record(st, workspace_id, HUB_EV_TUNNEL_STATUS, id, res->agent_id, data);
    if (rc < 0)
        return rc;
    *changed = true;
    cn_log_info("tunnel %s (%s): %s -> %s%s%s", id, res->name, hub_tunnel_status_name(from),
                hub_tunnel_status_name(to), reason ? ": " : "", reason ? reason : "");
    return 0;
}

int hub_tunnels_set_status(hub_store_t *st, const char *workspace_id, const char *id,
                           enum hub_tunnel_status to, const char *reason, const char *last_error,
                           hub_tunnel_t *out, bool *changed)
{
    hub_tunnel_t res = {0};
    bool moved = false;
    int rc = hub_store_tx_begin(st);
    if (rc < 0)
        return rc;
    rc = set_status_tx(st, workspace_id, id, to, reason, last_error, &res, &moved);
    rc = hub_store_tx_end(st, rc);
    if (changed)
        *changed = rc == 0 && moved;
    if (rc == 0 && out)
        *out = res;
    else
        hub_tunnel_clear(&res);
    return rc;
}

int hub_tunnels_resume_status(hub_store_t *st, const hub_live_t *live, const hub_tunnel_t *t,
                              enum hub_tunnel_status *out)
{
    hub_agent_t a;
    int rc = hub_store_agent_get(st, t->workspace_id, t->agent_id, &a);
    if (rc < 0 && rc != CN_ENOTFOUND)
        return rc;
    bool served = rc == 0 && hub_live_served(live, t->agent_id, t->id, a.connected);
    /* Resuming is leaving the pause: ask as if the tunnel were waiting
     * (its TTL is the reaper's business). */
    hub_reconcile_tunnel_t rt = {
        .id = t->id,
        .agent_id = t->agent_id,
        .status = HUB_TUNNEL_CONNECTING,
        .expires_at = HUB_TIME_NONE,
    };
    *out = hub_reconcile_one(&rt, served, hub_store_now(st)).status;
    return 0;
}

/* The agent's connected flag and its event, when the flag flips. */
static int set_connected_tx(hub_store_t *st, const char *ws, const char *agent_id, bool connected)
{
    hub_agent_t a;
    int rc = hub_store_agent_get(st, ws, agent_id, &a);
    if (rc < 0 || a.connected == connected)
        return rc;
    rc = hub_store_agent_set_connected(st, ws, agent_id, connected);
    if (rc == 0)
        rc =
            hub_event_record(st, ws, connected ? HUB_EV_AGENT_CONNECTED : HUB_EV_AGENT_DISCONNECTED,
                             NULL, agent_id, NULL);
    return rc;
}

/* Appends `t` (taken: cleared here on failure) to `l`, whose items are
 * allocated for `*cap`. */
static int list_take(hub_tunnel_list_t *l, size_t *cap, hub_tunnel_t *t)
{
    if (l->count == *cap) {
        size_t n = *cap ? *cap * 2 : 16;
        hub_tunnel_t *items = realloc(l->items, n * sizeof(*items));
        if (!items) {
            hub_tunnel_clear(t);
            return CN_ENOMEM;
        }
        l->items = items;
        *cap = n;
    }
    l->items[l->count++] = *t;
    return 0;
}

/* Applies the reconciler's verdict to the agent's tunnels; `moved` gets
 * those whose status changed, as they now are. */
static int reconcile_agent_tx(hub_store_t *st, const char *ws, const char *agent_id,
                              const hub_reconcile_link_t *links, size_t nlinks,
                              hub_tunnel_list_t *moved)
{
    size_t cap = 0;
    hub_tunnel_filter_t f = {.agent_id = agent_id};
    hub_tunnel_list_t list = {0};
    int rc = hub_store_tunnel_list(st, ws, &f, &list);
    if (rc < 0)
        return rc;
    int64_t now = hub_store_now(st);
    for (size_t i = 0; rc == 0 && i < list.count; i++) {
        const hub_tunnel_t *t = &list.items[i];
        hub_reconcile_tunnel_t in = {t->id, t->agent_id, t->status, t->expires_at};
        hub_reconcile_verdict_t v =
            hub_reconcile_one(&in, hub_reconcile_served(agent_id, t->id, links, nlinks), now);
        if (v.status == t->status)
            continue;
        hub_tunnel_t res = {0};
        bool one = false;
        rc = set_status_tx(st, ws, t->id, v.status, v.reason, NULL, &res, &one);
        if (rc == 0 && one)
            rc = list_take(moved, &cap, &res);
        else
            hub_tunnel_clear(&res);
    }
    hub_tunnel_list_free(&list);
    return rc;
}

int hub_tunnels_reconcile_agent(hub_store_t *st, const hub_live_t *live, const char *workspace_id,
                                const char *agent_id, const hub_reconcile_link_t *links,
                                size_t nlinks)
{
    hub_tunnel_list_t moved = {0};
    int rc = hub_store_tx_begin(st);
    if (rc < 0)
        return rc;
    rc = set_connected_tx(st, workspace_id, agent_id, nlinks > 0);
    if (rc == 0)
        rc = reconcile_agent_tx(st, workspace_id, agent_id, links, nlinks, &moved);
    rc = hub_store_tx_end(st, rc);
    /* The statuses alone: a link coming or going sent every other link of
     * the agent its whole list again, though one `connect expose` coming
     * up changes one tunnel's status. */
    if (rc == 0 && moved.count && live && live->statuses_changed)
        live->statuses_changed(live->ctx, workspace_id, agent_id, &moved);
    else if (rc == 0 && moved.count)
        hub_live_changed(live, workspace_id, agent_id);
    hub_tunnel_list_free(&moved);
    return rc;
}

int hub_tunnels_on_agent_online(hub_store_t *st, const hub_live_t *live, const char *workspace_id,
                                const char *agent_id)
{
    hub_reconcile_link_t all = {.agent_id = agent_id, .serve_all = true};
    return hub_tunnels_reconcile_agent(st, live, workspace_id, agent_id, &all, 1);
}

int hub_tunnels_on_agent_offline(hub_store_t *st, const hub_live_t *live, const char *workspace_id,
                                 const char *agent_id)
{
    return hub_tunnels_reconcile_agent(st, live, workspace_id, agent_id, NULL, 0);
}

int hub_tunnels_expire_due(hub_store_t *st, const hub_live_t *live, size_t *count)
{
    if (count)
        *count = 0;
    hub_tunnel_list_t due = {0};
    int rc = hub_store_tunnel_list_expired(st, 100, &due);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < due.count; i++) {
        const hub_tunnel_t *t = &due.items[i];
        bool changed = false;
        hub_tunnel_t now = {0};
        rc = hub_tunnels_set_status(st, t->workspace_id, t->id, HUB_TUNNEL_EXPIRED, "ttl", NULL,
                                    &now, &changed);
        if (rc < 0) {
            cn_log_warn("tunnel %s: could not expire: %s", t->id, hub_store_errmsg(st));
            continue;
        }
        /* This tunnel alone: telling the whole agent (its list read, sent
         * and its edges synced) per expiry made a sweep of N tunnels of one
         * agent O(N^2). */
        if (changed)
            hub_live_tunnel_status(live, &now);
        hub_tunnel_clear(&now);
        if (count)
            (*count)++;
    }
    hub_tunnel_list_free(&due);
    return 0;
}

/* Every workspace's active tunnels back to connecting. */
static int reset_links_tx(hub_store_t *st)
{
    int rc = hub_store_agent_reset_connections(st, NULL);
    if (rc < 0)
        return rc;
    hub_workspace_list_t wl = {0};
    rc = hub_store_workspace_list(st, &wl);
    for (size_t w = 0; rc == 0 && w < wl.count; w++) {
        hub_tunnel_filter_t f = {.by_status = true, .status = HUB_TUNNEL_ACTIVE};
        hub_tunnel_list_t list = {0};
        rc = hub_store_tunnel_list(st, wl.items[w].id, &f, &list);
        for (size_t i = 0; rc == 0 && i < list.count; i++) {
            hub_tunnel_t res = {0};
            bool changed = false;
            rc = set_status_tx(st, wl.items[w].id, list.items[i].id, HUB_TUNNEL_CONNECTING,
                               "hub restarted", NULL, &res, &changed);
            hub_tunnel_clear(&res);
        }
        hub_tunnel_list_free(&list);
    }
    hub_workspace_list_free(&wl);
    return rc;
}

int hub_tunnels_reset_links(hub_store_t *st)
{
    int rc = hub_store_tx_begin(st);
    if (rc < 0)
        return rc;
    return hub_store_tx_end(st, reset_links_tx(st));
}
