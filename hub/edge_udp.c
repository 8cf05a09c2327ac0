/* The public UDP edge: one UDP socket per public UDP tunnel on its hub
 * port, each sender a flow (a stream to the exposing agent, datagrams as
 * DATAGRAM frames; cn_udp.h). Paused tunnels and offline agents drop
 * datagrams (UDP has nothing to refuse with) and end the open flows. */
#include "runtime_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_err.h"
#include "cn_frame.h"
#include "cn_log.h"
#include "cn_udp.h"
#include "tunnels.h"

static udp_port_t *find_port(hub_runtime_t *rt, const char *tunnel_id)
{
    for (udp_port_t *u = rt->udp_ports; u; u = u->next)
        if (!strcmp(u->tunnel_id, tunnel_id))
            return u;
    return NULL;
}

static int wants_port(const hub_tunnel_t *t)
{
    return t->is_public && t->hub_port && t->status != HUB_TUNNEL_EXPIRED &&
           t->protocol == HUB_PROTO_UDP;
}

/* Which link a new flow of this tunnel goes out on. */
static cn_link_t *route(void *ctx, const char **why)
{
    udp_port_t *u = ctx;
    if (u->paused) {
        *why = "tunnel paused";
        return NULL;
    }
    session_t *s = hub_agents_route(u->rt, u->agent_id, u->tunnel_id);
    if (!s) {
        *why = "agent offline";
        return NULL;
    }
    return s->link;
}

static void port_close(hub_runtime_t *rt, udp_port_t *u)
{
    for (udp_port_t **pp = &rt->udp_ports; *pp; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    cn_log_info("tunnel %s: UDP port %u closed", u->tunnel_id, (unsigned)u->port);
    cn_udp_listener_close(u->l, CN_RST_GONE);
    free(u);
}

static void port_open(hub_runtime_t *rt, const hub_tunnel_t *t)
{
    udp_port_t *u = calloc(1, sizeof(*u));
    if (!u)
        return;
    u->rt = rt;
    u->port = t->hub_port;
    snprintf(u->tunnel_id, sizeof(u->tunnel_id), "%s", t->id);
    snprintf(u->agent_id, sizeof(u->agent_id), "%s", t->agent_id);
    u->paused = t->status == HUB_TUNNEL_PAUSED;
    cn_udp_listener_config_t lc = {
        .kind = CN_KIND_UDP,
        .ref = t->id,
        .name = t->name,
        .idle_ms = rt->cfg.udp_idle_ms,
        .route = route,
        .ctx = u,
    };
    char why[200];
    u->l = cn_udp_listen(rt->vh, rt->tcp_host, t->hub_port, &lc, NULL, why, sizeof(why));
    if (!u->l) {
        cn_log_warn("tunnel %s: %s", t->id, why);
        free(u);
        hub_runtime_port_unavailable(rt, t, why);
        return;
    }
    u->next = rt->udp_ports;
    rt->udp_ports = u;
    cn_log_info("tunnel %s (%s): listening on UDP %s:%u", t->id, t->name, rt->tcp_host,
                (unsigned)t->hub_port);
}

void hub_edge_udp_sync_agent(hub_runtime_t *rt, const char *agent_id, const hub_tunnel_list_t *list,
                             const char *only)
{
    udp_port_t *next;
    for (udp_port_t *u = rt->udp_ports; u; u = next) {
        next = u->next;
        if (strcmp(u->agent_id, agent_id) || (only && strcmp(u->tunnel_id, only)))
            continue;
        const hub_tunnel_t *t = hub_tunnel_list_find(list, u->tunnel_id);
        if (!t || !wants_port(t) || t->hub_port != u->port) {
            port_close(rt, u);
            continue;
        }
        int paused = t->status == HUB_TUNNEL_PAUSED;
        if (paused && !u->paused)
            cn_udp_listener_reset_flows(u->l, CN_RST_PAUSED);
        u->paused = paused;
    }
    for (size_t i = 0; list && i < list->count; i++)
        if (wants_port(&list->items[i]) && !find_port(rt, list->items[i].id) &&
            list->items[i].status != HUB_TUNNEL_ERROR &&
            list->items[i].status != HUB_TUNNEL_PAUSED) /* as edge_tcp.c */
            port_open(rt, &list->items[i]);
}

void hub_edge_udp_open_all(hub_runtime_t *rt, const hub_tunnel_list_t *list)
{
    for (size_t i = 0; i < list->count; i++)
        if (wants_port(&list->items[i]) && !find_port(rt, list->items[i].id))
            port_open(rt, &list->items[i]);
}

void hub_edge_udp_close_all(hub_runtime_t *rt)
{
    while (rt->udp_ports)
        port_close(rt, rt->udp_ports);
}

void hub_edge_udp_free_all(hub_runtime_t *rt)
{
    /* The sockets died with the context, and their listeners with them. */
    while (rt->udp_ports) {
        udp_port_t *u = rt->udp_ports;
        rt->udp_ports = u->next;
        free(u);
    }
}
