/* The hub's live side put together (see runtime.h): the agent endpoint and
 * link registry (agents.c) and the public TCP edge (edge_tcp.c), reconciled
 * with the store per agent. */
#include "runtime.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_err.h"
#include "cn_log.h"
#include "cn_pipe.h"
#include "cn_udp.h"
#include "runtime_internal.h"
#include "share_cache.h"
#include "tunnels.h"

/* ---- reconciliation ----------------------------------------------------- */

const hub_tunnel_t *hub_tunnel_list_find(const hub_tunnel_list_t *list, const char *id)
{
    for (size_t i = 0; list && i < list->count; i++)
        if (!strcmp(list->items[i].id, id))
            return &list->items[i];
    return NULL;
}

/* Brings the edges and reaches in line with all of the agent's tunnels;
 * *gone: the agent itself was deleted. CN_E* when its tunnels cannot be
 * read (nothing done). */
static int sync_edges(hub_runtime_t *rt, const char *ws, const char *agent_id, bool *gone)
{
    hub_agent_t agent;
    *gone = hub_store_agent_get(rt->cfg.store, ws, agent_id, &agent) == CN_ENOTFOUND;

    hub_tunnel_filter_t f = {.agent_id = agent_id};
    hub_tunnel_list_t list = {0};
    int rc = *gone ? 0 : hub_store_tunnel_list(rt->cfg.store, ws, &f, &list);
    if (rc < 0) {
        cn_log_warn("agent %s: cannot list tunnels: %s", agent_id, hub_store_errmsg(rt->cfg.store));
        return rc;
    }
    hub_edge_tcp_sync_agent(rt, agent_id, &list, NULL);
    hub_edge_udp_sync_agent(rt, agent_id, &list, NULL);
    hub_reach_sync_agent(rt, agent_id, &list, NULL);
    hub_edge_http_sync_agent(rt, agent_id, &list, NULL);
    hub_tunnel_list_free(&list);
    return 0;
}

void hub_runtime_agent_changed(hub_runtime_t *rt, const char *ws, const char *agent_id)
{
    if (!rt || !rt->vh)
        return;
    bool gone;
    if (sync_edges(rt, ws, agent_id, &gone) == 0)
        hub_agents_changed(rt, ws, agent_id, gone);
}

void hub_runtime_tunnel_changed(hub_runtime_t *rt, const char *ws, const char *agent_id,
                                const char *tunnel_id, const hub_tunnel_t *t)
{
    (void)ws;
    if (!rt || !rt->vh)
        return;
    /* The tunnel alone, as for a status: the agent's whole list read, sent
     * to each link and walked by each edge per tunnel made or deleted made
     * N tunnels made one by one O(N^2). The agent first, as there: a port
     * that cannot be bound moves the new tunnel on to error, which must
     * come after it. */
    hub_tunnel_list_t one = {.items = (hub_tunnel_t *)t, .count = t ? 1 : 0};
    hub_agents_tunnel_delta(rt, agent_id, tunnel_id, t);
    hub_edge_tcp_sync_agent(rt, agent_id, &one, tunnel_id);
    hub_edge_udp_sync_agent(rt, agent_id, &one, tunnel_id);
    hub_reach_sync_agent(rt, agent_id, &one, tunnel_id);
    hub_edge_http_sync_agent(rt, agent_id, &one, tunnel_id);
}

void hub_runtime_statuses_changed(hub_runtime_t *rt, const char *ws, const char *agent_id,
                                  const hub_tunnel_list_t *moved)
{
    if (!rt || !rt->vh)
        return;
    /* The statuses to the links first (a port that fails to bind in the
     * sync below moves its tunnel on, after them); the edges as for any
     * change of the agent, all of its tunnels at once. */
    hub_agents_statuses(rt, agent_id, moved);
    bool gone;
    (void)sync_edges(rt, ws, agent_id, &gone);
}

void hub_runtime_tunnel_status_changed(hub_runtime_t *rt, const hub_tunnel_t *t)
{
    if (!rt || !rt->vh)
        return;
    /* The tunnel alone: reading and walking all of the agent's tunnels
     * for each verdict made a burst of them (a target behind many tunnels
     * going down) O(tunnels^2), long enough to stall the loop. Reaches end
     * only on a delete, so they have nothing to do here. */
    hub_tunnel_list_t one = {.items = (hub_tunnel_t *)t, .count = 1};
    /* The agent first: a port that cannot be bound while the edges are
     * synced moves the tunnel on to error and tells the agent so, which
     * must come after this status, not before it. */
    hub_agents_tunnel_status(rt, t->agent_id, t->id, t->status);
    hub_edge_tcp_sync_agent(rt, t->agent_id, &one, t->id);
    hub_edge_udp_sync_agent(rt, t->agent_id, &one, t->id);
    hub_edge_http_sync_agent(rt, t->agent_id, &one, t->id);
}

void hub_runtime_port_unavailable(hub_runtime_t *rt, const hub_tunnel_t *t, const char *why)
{
    /* A paused tunnel stays paused: in error, the next link of its agent
     * to come up would make it active, a resume nobody asked for. Its port
     * is tried again on the next sync, and on resume. */
    if (t->status == HUB_TUNNEL_PAUSED)
        return;
    bool changed = false;
    hub_tunnel_t now = {0};
    if (hub_tunnels_set_status(rt->cfg.store, t->workspace_id, t->id, HUB_TUNNEL_ERROR,
                               "port unavailable", why, &now, &changed) < 0)
        cn_log_warn("tunnel %s: cannot record its port unavailable: %s", t->id,
                    hub_store_errmsg(rt->cfg.store));
    /* Its status alone: the whole agent per failed port (the list read,
     * sent and the edges synced, twice when it came from an agent-wide
     * sync) made N ports taken at once, as when an agent comes online,
     * O(N^2). In error the edges do not try the port again. */
    if (changed)
        hub_runtime_tunnel_status_changed(rt, &now);
    hub_tunnel_clear(&now);
}

static void live_tunnel_status(void *ctx, const hub_tunnel_t *t)
{
    hub_runtime_tunnel_status_changed(ctx, t);
}

static void live_changed(void *ctx, const char *ws, const char *agent_id)
{
    hub_runtime_agent_changed(ctx, ws, agent_id);
}

static void live_tunnel_changed(void *ctx, const char *ws, const char *agent_id,
                                const char *tunnel_id, const hub_tunnel_t *t)
{
    hub_runtime_tunnel_changed(ctx, ws, agent_id, tunnel_id, t);
}

static void live_statuses_changed(void *ctx, const char *ws, const char *agent_id,
                                  const hub_tunnel_list_t *moved)
{
    hub_runtime_statuses_changed(ctx, ws, agent_id, moved);
}

void hub_runtime_live(hub_runtime_t *rt, hub_live_t *out)
{
    *out = (hub_live_t){.changed = live_changed,
                        .served = hub_agents_served_probe,
                        .tunnel_status = live_tunnel_status,
                        .tunnel_changed = live_tunnel_changed,
                        .statuses_changed = live_statuses_changed,
                        .ctx = rt};
}

/* ---- lifecycle ---------------------------------------------------------- */

hub_runtime_t *hub_runtime_new(const hub_runtime_config_t *cfg, char *err, size_t errlen)
{
    hub_runtime_t *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rt->cfg = *cfg;
    if (!rt->cfg.max_conns)
        rt->cfg.max_conns = HUB_RUNTIME_MAX_CONNS_DEFAULT;
    if (!rt->cfg.max_conns_per_tunnel)
        rt->cfg.max_conns_per_tunnel = HUB_RUNTIME_MAX_CONNS_PER_TUNNEL_DEFAULT;
    if (!rt->cfg.max_conns_per_ws)
        rt->cfg.max_conns_per_ws = HUB_RUNTIME_MAX_CONNS_PER_WS_DEFAULT;
    if (!rt->cfg.max_conns_per_client)
        rt->cfg.max_conns_per_client = HUB_RUNTIME_MAX_CONNS_PER_CLIENT_DEFAULT;
    if (!rt->cfg.max_links)
        rt->cfg.max_links = HUB_RUNTIME_MAX_LINKS_DEFAULT;
    if (!rt->cfg.max_links_per_agent)
        rt->cfg.max_links_per_agent = HUB_RUNTIME_MAX_LINKS_PER_AGENT_DEFAULT;
    if (!rt->cfg.http_timeout_ms)
        rt->cfg.http_timeout_ms = 30000;
    if (!rt->cfg.http_pool_idle_ms)
        rt->cfg.http_pool_idle_ms = 4000;
    rt->tcp_host = strdup(cfg->tcp_host ? cfg->tcp_host : "127.0.0.1");
    rt->public_domain =
        strdup(cfg->public_domain && *cfg->public_domain ? cfg->public_domain : "localhost");
    rt->cfg.public_domain = rt->public_domain;
    rt->cache = hub_share_cache_new(NULL);
    int e = rt->cache ? hub_agents_init(rt) : CN_ENOMEM;
    if (e == 0)
        e = hub_edge_http_init(rt);
    if (!rt->tcp_host || !rt->public_domain || !rt->links || !rt->edge) {
        snprintf(err, errlen, "cannot set up the agent endpoint: %s", cn_strerror(e));
        hub_runtime_free(rt);
        return NULL;
    }
    return rt;
}

int hub_runtime_protocols(hub_runtime_t *rt, struct lws_protocols *protos, size_t *n, size_t cap)
{
    if (*n + 7 > cap)
        return CN_ETOOBIG;
    protos[(*n)++] = cn_link_server_protocol(rt->links);
    protos[(*n)++] = *cn_pipe_protocol();
    protos[(*n)++] = *cn_udp_protocol();
    protos[(*n)++] = hub_edge_tcp_protocol;
    protos[(*n)++] = hub_edge_http_listen_protocol;
    protos[(*n)++] = hub_edge_http_conn_protocol;
    protos[(*n)++] = hub_edge_http_sink_protocol;
    return 0;
}

int hub_runtime_start(hub_runtime_t *rt, struct lws_context *ctx, struct lws_vhost *vh)
{
    rt->ctx = ctx;
    rt->vh = vh;
    hub_workspace_list_t wl = {0};
    int rc = hub_store_workspace_list(rt->cfg.store, &wl);
    if (rc < 0)
        return rc;
    for (size_t w = 0; w < wl.count; w++) {
        hub_tunnel_list_t tl = {0};
        if (hub_store_tunnel_list(rt->cfg.store, wl.items[w].id, NULL, &tl) < 0)
            continue;
        hub_edge_tcp_open_all(rt, &tl);
        hub_edge_udp_open_all(rt, &tl);
        hub_tunnel_list_free(&tl);
    }
    hub_workspace_list_free(&wl);
    return hub_edge_http_start(rt);
}

int hub_runtime_http_port(const hub_runtime_t *rt)
{
    return hub_edge_http_port(rt);
}

int hub_runtime_https_port(const hub_runtime_t *rt)
{
    return hub_edge_http_tls_port(rt);
}

void hub_runtime_metrics(void *ctx, hub_metrics_snapshot_t *snap, hub_metrics_tunnel_t *tunnels,
                         size_t ntunnels)
{
    hub_runtime_t *rt = ctx;
    snap->links = rt->online;
    for (session_t *s = rt->sessions; s; s = s->next)
        if (s->admitted && s->link)
            snap->streams_open += cn_mux_stream_count(cn_link_mux(s->link));
    snap->streams_pooled = hub_edge_http_pooled(rt);
    for (listener_t *l = rt->listeners; l; l = l->next)
        for (conn_t *c = l->conn_head; c; c = c->next)
            for (size_t i = 0; i < ntunnels; i++)
                if (!strcmp(tunnels[i].id, c->tunnel_id)) {
                    tunnels[i].live_in += cn_pipe_bytes_up(c->pipe);
                    tunnels[i].live_out += cn_pipe_bytes_down(c->pipe);
                    break;
                }
}

unsigned hub_runtime_agents_online(const hub_runtime_t *rt)
{
    return rt ? rt->online : 0;
}

void hub_runtime_stop(hub_runtime_t *rt)
{
    if (!rt)
        return;
    hub_agents_close_all(rt);
    hub_edge_tcp_close_all(rt);
    hub_edge_http_close_all(rt);
    hub_edge_udp_close_all(rt);
}

void hub_runtime_free(hub_runtime_t *rt)
{
    if (!rt)
        return;
    /* Links and listeners died with the context; whatever is left was never
     * handed to lws. */
    hub_edge_tcp_free_all(rt);
    hub_edge_http_free(rt);
    hub_reach_free_all(rt);
    hub_edge_udp_free_all(rt);
    hub_agents_free_all(rt);
    cn_link_server_free(rt->links);
    hub_share_cache_free(rt->cache);
    free(rt->tcp_host);
    free(rt->public_domain);
    free(rt);
}
