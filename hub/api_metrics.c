/* GET /metrics: the Prometheus text of metrics.h, served on the API
 * listener (not under /api/v1: scrapers expect /metrics). Who may read it
 * is `connect-hub serve --metrics`: loopback clients only by default, a
 * bearer token of its own, or anyone (docs/security.md argues the
 * default). The numbers are hub-wide, across workspaces, so no workspace
 * token opens it. */
#include "api_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

int hub_metrics_token_hash(const char *token, uint8_t out[static HUB_KEY_BYTES])
{
    if (!token || strlen(token) < 32)
        return CN_EINVAL;
    crypto_generichash(out, HUB_KEY_BYTES, (const uint8_t *)token, strlen(token), NULL, 0);
    return 0;
}

/* The peer text is lws's numeric address ("127.0.0.1", "::1",
 * "::ffff:127.0.0.1"). */
static bool peer_is_loopback(const char *peer)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (!peer)
        return false;
    if (inet_pton(AF_INET, peer, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, peer, &v6) != 1)
        return false;
    if (IN6_IS_ADDR_LOOPBACK(&v6))
        return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

static bool allowed(hub_api_call_t *c)
{
    const hub_api_config_t *cfg = &c->api->cfg;
    switch (cfg->metrics_access) {
    case HUB_METRICS_PUBLIC:
        return true;
    case HUB_METRICS_LOOPBACK:
        if (peer_is_loopback(c->req->peer))
            return true;
        hub_api_fail(c, 403, "peer",
                     "metrics are served to clients on the hub's host only (see --metrics)");
        return false;
    case HUB_METRICS_TOKEN:
    default: {
        char buf[256];
        uint8_t hash[HUB_KEY_BYTES];
        const char *token = hub_api_bearer_token(c->req->authorization, buf, sizeof(buf));
        bool ok = token && hub_metrics_token_hash(token, hash) == 0 &&
                  crypto_verify_32(hash, cfg->metrics_token_hash) == 0;
        sodium_memzero(buf, sizeof(buf));
        if (!ok)
            hub_api_fail(c, 401, "Authorization", "metrics need the metrics bearer token");
        return ok;
    }
    }
}

/* Everything the snapshot borrows from, freed by gauges_free(). */
typedef struct gauges {
    hub_workspace_list_t ws;
    hub_tunnel_list_t *tunnels; /* one list per workspace */
    hub_metrics_tunnel_t *rows;
} gauges_t;

static void gauges_free(gauges_t *g)
{
    for (size_t i = 0; g->tunnels && i < g->ws.count; i++)
        hub_tunnel_list_free(&g->tunnels[i]);
    free(g->tunnels);
    free(g->rows);
    hub_workspace_list_free(&g->ws);
}

/* Agents and tunnels of every workspace from the store, the queue's
 * length, then the live side's numbers. */
static int gauges_read(hub_api_t *api, gauges_t *g, hub_metrics_snapshot_t *snap)
{
    hub_store_t *st = api->store;
    int rc = hub_store_workspace_list(st, &g->ws);
    if (rc < 0)
        return rc;
    g->tunnels = calloc(g->ws.count ? g->ws.count : 1, sizeof(*g->tunnels));
    if (!g->tunnels)
        return CN_ENOMEM;
    size_t ntunnels = 0;
    for (size_t w = 0; w < g->ws.count; w++) {
        hub_agent_list_t al = {0};
        rc = hub_store_agent_list(st, g->ws.items[w].id, &al);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < al.count; i++) {
            const hub_agent_t *a = &al.items[i];
            if (!a->enrolled)
                snap->agents_pending++;
            else if (a->connected)
                snap->agents_connected++;
            else
                snap->agents_disconnected++;
        }
        hub_agent_list_free(&al);
        rc = hub_store_tunnel_list(st, g->ws.items[w].id, NULL, &g->tunnels[w]);
        if (rc < 0)
            return rc;
        ntunnels += g->tunnels[w].count;
    }
    g->rows = calloc(ntunnels ? ntunnels : 1, sizeof(*g->rows));
    if (!g->rows)
        return CN_ENOMEM;
    size_t n = 0;
    for (size_t w = 0; w < g->ws.count; w++)
        for (size_t i = 0; i < g->tunnels[w].count; i++) {
            const hub_tunnel_t *t = &g->tunnels[w].items[i];
            g->rows[n++] = (hub_metrics_tunnel_t){
                .id = t->id,
                .name = t->name,
                .status = hub_tunnel_status_name(t->status),
                .protocol = hub_protocol_name(t->protocol),
            };
        }
    snap->tunnels = g->rows;
    snap->ntunnels = n;
    snap->share_log_dropped = hub_store_share_log_dropped(st);
    rc = hub_store_delivery_pending_count(st, &snap->webhook_pending);
    if (rc < 0)
        return rc;
    if (api->cfg.metrics_source.collect)
        api->cfg.metrics_source.collect(api->cfg.metrics_source.ctx, snap, g->rows, n);
    return 0;
}

static void metrics_get(hub_api_call_t *c)
{
    gauges_t g = {0};
    hub_metrics_snapshot_t snap = {0};
    int rc = gauges_read(c->api, &g, &snap);
    char *text = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = hub_metrics_render(c->api->cfg.metrics, &snap, &text, &len);
    gauges_free(&g);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "metrics", "");
        return;
    }
    hub_resp_text(c->resp, 200, text, len, HUB_METRICS_CONTENT_TYPE);
}

const hub_api_route_t hub_api_metrics_routes[] = {
    /* Access is checked by the handler: it is not an API token's to grant. */
    {{HUB_GET, "/metrics"}, metrics_get, HUB_AUTH_NONE, NULL, allowed},
};
const size_t hub_api_metrics_nroutes =
    sizeof(hub_api_metrics_routes) / sizeof(hub_api_metrics_routes[0]);
