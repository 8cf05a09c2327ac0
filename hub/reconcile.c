/* The reconciler's rules (see reconcile.h). */
#include "reconcile.h"

#include <string.h>

static bool link_serves(const hub_reconcile_link_t *l, const char *agent_id, const char *tunnel_id)
{
    if (strcmp(l->agent_id, agent_id) != 0)
        return false;
    if (l->serve_all)
        return true;
    for (size_t i = 0; i < l->nserved; i++)
        if (!strcmp(l->served[i], tunnel_id))
            return true;
    return false;
}

bool hub_reconcile_served(const char *agent_id, const char *tunnel_id,
                          const hub_reconcile_link_t *links, size_t nlinks)
{
    for (size_t i = 0; i < nlinks; i++)
        if (link_serves(&links[i], agent_id, tunnel_id))
            return true;
    return false;
}

hub_reconcile_verdict_t hub_reconcile_one(const hub_reconcile_tunnel_t *t, bool served, int64_t now)
{
    hub_reconcile_verdict_t v = {.status = t->status, .reason = NULL};
    if (t->status == HUB_TUNNEL_EXPIRED)
        return v;
    if (t->expires_at != HUB_TIME_NONE && t->expires_at <= now) {
        v.status = HUB_TUNNEL_EXPIRED;
        v.reason = "ttl";
        return v;
    }
    if (t->status == HUB_TUNNEL_PAUSED)
        return v;
    if (served && t->status != HUB_TUNNEL_ACTIVE) {
        v.status = HUB_TUNNEL_ACTIVE;
        v.reason = "agent online";
    } else if (!served && t->status == HUB_TUNNEL_ACTIVE) {
        v.status = HUB_TUNNEL_CONNECTING;
        v.reason = "agent offline";
    }
    return v;
}

void hub_reconcile(const hub_reconcile_tunnel_t *tunnels, size_t n,
                   const hub_reconcile_link_t *links, size_t nlinks, int64_t now,
                   hub_reconcile_verdict_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const hub_reconcile_tunnel_t *t = &tunnels[i];
        out[i] = hub_reconcile_one(t, hub_reconcile_served(t->agent_id, t->id, links, nlinks), now);
    }
}
