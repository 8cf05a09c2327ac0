/* The public TCP edge: one listening socket per public TCP tunnel, each
 * accepted connection piped into a stream to the exposing agent (see
 * runtime.h). */
#include "runtime_internal.h"

#include "accept.h"

#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "cn_err.h"
#include "cn_frame.h"
#include "cn_link.h"
#include "cn_log.h"
#include "hub_time.h"
#include "cn_pipe.h"
#include "tunnels.h"

#define LISTEN_PROTOCOL "hub-listen"
#define ACCEPTS_PER_EVENT 64
#define LISTEN_BACKLOG 4096

static void conn_unlink(conn_t *c)
{
    if (!c->l)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->l->conn_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->l->conns)
        c->l->conns--;
    c->l = NULL;
    c->next = c->prev = NULL;
}

/* Aborts every public connection of the listener at once (RST to the
 * client), without waiting for the agent: used on pause and delete. */
static void abort_conns(listener_t *l, uint32_t code)
{
    conn_t *c = l->conn_head;
    while (c) {
        conn_t *next = c->next;
        /* done() may run inside the abort and unlink c; it never frees
         * another connection of this list. */
        cn_pipe_abort(c->pipe, code);
        c = next;
    }
}

unsigned hub_edge_tcp_ws_conns(const hub_runtime_t *rt, const char *workspace_id)
{
    unsigned n = 0;
    for (const listener_t *l = rt->listeners; l; l = l->next)
        if (!strcmp(l->workspace_id, workspace_id))
            n += l->conns;
    return n;
}

static unsigned client_conns(const listener_t *l, const char *client)
{
    unsigned n = 0;
    for (const conn_t *c = l->conn_head; c; c = c->next)
        if (!strcmp(c->client, client))
            n++;
    return n;
}

static listener_t *find_listener(hub_runtime_t *rt, const char *tunnel_id)
{
    for (listener_t *l = rt->listeners; l; l = l->next)
        if (!l->closing && !strcmp(l->tunnel_id, tunnel_id))
            return l;
    return NULL;
}

static int wants_listener(const hub_tunnel_t *t)
{
    return t->is_public && t->hub_port && t->status != HUB_TUNNEL_EXPIRED &&
           (t->protocol == HUB_PROTO_TCP || t->protocol == HUB_PROTO_AUTO);
}

static void conn_done(void *ctx, cn_pipe_t *p, int err)
{
    conn_t *c = ctx;
    hub_runtime_t *rt = c->rt;
    hub_metrics_tunnel_bytes(rt->cfg.metrics, c->tunnel_id, cn_pipe_bytes_up(p),
                             cn_pipe_bytes_down(p));
    rt->conns--;
    conn_unlink(c);
    free(c);
}

void hub_edge_peer(const struct sockaddr_storage *ss, char *ip, size_t iplen, int *port)
{
    snprintf(ip, iplen, "?");
    *port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)iplen);
        *port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)iplen);
        *port = ntohs(a->sin6_port);
    }
}

/* Refuses a connection at once: RST, so a client never hangs on a tunnel
 * that is paused, offline or over its limits. */
void hub_edge_refuse(int fd)
{
    cn_sock_reset(fd);
}

void hub_edge_refuse_counted(hub_runtime_t *rt, int fd, enum hub_metrics_refusal reason,
                             const char *what, const char *client)
{
    static const char *const reasons[HUB_REF_COUNT] = {
        "tunnel paused",
        "agent offline",
        "hub connection limit",
        "tunnel connection limit",
        "workspace connection limit",
        "client address limit",
    };
    hub_metrics_connection_refused(rt->cfg.metrics, reason);
    rt->refused[reason]++;
    uint64_t now = (uint64_t)hub_time_now_ms(NULL);
    if (now - rt->refused_log_at[reason] >= 1000) {
        cn_log_info("%s: connection from %s refused: %s (%llu since the last such line)", what,
                    client, reasons[reason], (unsigned long long)rt->refused[reason]);
        rt->refused_log_at[reason] = now;
        rt->refused[reason] = 0;
    }
    hub_edge_refuse(fd);
}

static void accept_one(listener_t *l, int fd, const struct sockaddr_storage *ss)
{
    hub_runtime_t *rt = l->rt;
    session_t *s = hub_agents_route(rt, l->agent_id, l->tunnel_id);
    char addr[INET6_ADDRSTRLEN];
    int port = 0;
    hub_edge_peer(ss, addr, sizeof(addr), &port);
    char client[CN_LINK_ADDR_KEY_SIZE];
    cn_link_addr_key(addr, client);
    int why = l->paused                                  ? HUB_REF_PAUSED
              : !s                                       ? HUB_REF_OFFLINE
              : rt->conns >= rt->cfg.max_conns           ? HUB_REF_HUB_LIMIT
              : l->conns >= rt->cfg.max_conns_per_tunnel ? HUB_REF_TUNNEL_LIMIT
              : hub_edge_tcp_ws_conns(rt, l->workspace_id) >= rt->cfg.max_conns_per_ws
                  ? HUB_REF_WS_LIMIT
              : client_conns(l, client) >= rt->cfg.max_conns_per_client ? HUB_REF_CLIENT_LIMIT
                                                                        : -1;
    if (why >= 0) {
        char what[64];
        snprintf(what, sizeof(what), "tunnel %s", l->tunnel_id);
        hub_edge_refuse_counted(rt, fd, (enum hub_metrics_refusal)why, what, client);
        return;
    }
    char meta[128];
    int mlen = snprintf(meta, sizeof(meta), "{\"client\":\"%s:%d\"}", addr, port);
    conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        hub_edge_refuse(fd);
        return;
    }
    c->rt = rt;
    memcpy(c->tunnel_id, l->tunnel_id, sizeof(c->tunnel_id));
    memcpy(c->client, client, sizeof(c->client));
    cn_pipe_config_t pc = {
        .done = conn_done,
        .ctx = c,
        .idle_timeout_ms = l->idle_timeout_s * 1000u,
    };
    int err = 0;
    /* cn_pipe_open owns fd from here, on failure too. */
    c->pipe = cn_pipe_open(rt->vh, fd, s->link, CN_KIND_TCP, (const uint8_t *)l->tunnel_id,
                           strlen(l->tunnel_id), (const uint8_t *)meta, (size_t)mlen, &pc, &err);
    if (!c->pipe) {
        cn_log_warn("tunnel %s: could not open a stream: %s", l->tunnel_id, cn_strerror(err));
        free(c);
        return;
    }
    rt->conns++;
    l->conns++;
    c->l = l;
    c->next = l->conn_head;
    if (l->conn_head)
        l->conn_head->prev = c;
    l->conn_head = c;
}

static int listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    listener_t *l = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE: {
        if (!l || l->closing)
            return 0;
        int lfd = lws_get_socket_fd(wsi);
        for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
            struct sockaddr_storage ss = {0};
            socklen_t sl = sizeof(ss);
            char who[64];
            snprintf(who, sizeof(who), "tunnel %s", l->tunnel_id);
            int fd = hub_accept(lfd, &ss, &sl, who);
            if (fd < 0)
                break;
            accept_one(l, fd, &ss);
        }
        return 0;
    }
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (!l)
            return 0;
        lws_set_opaque_user_data(wsi, NULL);
        {
            hub_runtime_t *rt = l->rt;
            for (listener_t **pp = &rt->listeners; *pp; pp = &(*pp)->next)
                if (*pp == l) {
                    *pp = l->next;
                    break;
                }
        }
        while (l->conn_head)
            conn_unlink(l->conn_head); /* they finish on their own */
        free(l);
        return 0;
    default:
        return 0;
    }
}

static void listener_close(listener_t *l)
{
    if (l->closing)
        return;
    l->closing = 1;
    cn_log_info("tunnel %s: port %u closed", l->tunnel_id, (unsigned)l->port);
    /* Its clients go now too: a deleted tunnel serves nobody. */
    abort_conns(l, CN_RST_GONE);
    if (l->wsi) {
        /* Stop listening now (Linux refuses new connections after
         * SHUT_RD on a listener); lws frees the socket on its next turn. */
        shutdown(lws_get_socket_fd(l->wsi), SHUT_RD);
        lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

/* A tunnel's own idle timeout, else the hub's --tcp-idle-timeout. */
static unsigned idle_timeout_s(const hub_runtime_t *rt, const hub_tunnel_t *t)
{
    return t->idle_timeout_s >= 0 ? (unsigned)t->idle_timeout_s : rt->cfg.tcp_idle_timeout_s;
}

static void listener_open(hub_runtime_t *rt, const hub_tunnel_t *t)
{
    int bound = 0;
    int fd = cn_sock_listen(rt->tcp_host, t->hub_port, LISTEN_BACKLOG, &bound);
    if (fd < 0) {
        char why[128];
        snprintf(why, sizeof(why), "cannot listen on %s:%u: %s", rt->tcp_host,
                 (unsigned)t->hub_port, strerror(errno));
        cn_log_warn("tunnel %s: %s", t->id, why);
        hub_runtime_port_unavailable(rt, t, why);
        return;
    }
    listener_t *l = calloc(1, sizeof(*l));
    if (!l) {
        close(fd);
        return;
    }
    l->rt = rt;
    l->port = t->hub_port;
    snprintf(l->tunnel_id, sizeof(l->tunnel_id), "%s", t->id);
    snprintf(l->workspace_id, sizeof(l->workspace_id), "%s", t->workspace_id);
    snprintf(l->agent_id, sizeof(l->agent_id), "%s", t->agent_id);
    l->paused = t->status == HUB_TUNNEL_PAUSED;
    l->idle_timeout_s = idle_timeout_s(rt, t);
    lws_sock_file_fd_type u;
    u.filefd = fd;
    l->wsi = lws_adopt_descriptor_vhost(rt->vh, LWS_ADOPT_RAW_FILE_DESC, u, LISTEN_PROTOCOL, NULL);
    if (!l->wsi) {
        close(fd);
        free(l);
        return;
    }
    lws_set_opaque_user_data(l->wsi, l);
    l->next = rt->listeners;
    rt->listeners = l;
    cn_log_info("tunnel %s (%s): listening on %s:%u", t->id, t->name, rt->tcp_host,
                (unsigned)t->hub_port);
}

void hub_edge_tcp_sync_agent(hub_runtime_t *rt, const char *agent_id, const hub_tunnel_list_t *list,
                             const char *only)
{
    /* Close listeners whose tunnel is gone or no longer public TCP. */
    for (listener_t *l = rt->listeners; l; l = l->next) {
        if (l->closing || strcmp(l->agent_id, agent_id) || (only && strcmp(l->tunnel_id, only)))
            continue;
        const hub_tunnel_t *t = hub_tunnel_list_find(list, l->tunnel_id);
        if (!t || !wants_listener(t) || t->hub_port != l->port) {
            listener_close(l);
        } else {
            int was = l->paused;
            l->paused = t->status == HUB_TUNNEL_PAUSED;
            unsigned idle = idle_timeout_s(rt, t);
            if (idle != l->idle_timeout_s) {
                /* Open connections follow a changed timeout too. */
                l->idle_timeout_s = idle;
                for (conn_t *c = l->conn_head; c; c = c->next)
                    cn_pipe_set_idle_timeout(c->pipe, idle * 1000u);
            }
            if (l->paused && !was && l->conn_head) {
                cn_log_info("tunnel %s: paused, closing its %u connection(s)", l->tunnel_id,
                            l->conns);
                abort_conns(l, CN_RST_PAUSED);
            }
        }
    }
    /* Not in error (a port that failed stays closed until the tunnel is
     * active again) nor paused (a paused tunnel without its port, which
     * failed, gets it on resume: not a bind per sync meanwhile). */
    for (size_t i = 0; i < list->count; i++)
        if (wants_listener(&list->items[i]) && !find_listener(rt, list->items[i].id) &&
            list->items[i].status != HUB_TUNNEL_ERROR && list->items[i].status != HUB_TUNNEL_PAUSED)
            listener_open(rt, &list->items[i]);
}

void hub_edge_tcp_open_all(hub_runtime_t *rt, const hub_tunnel_list_t *tl)
{
    for (size_t i = 0; i < tl->count; i++)
        if (wants_listener(&tl->items[i]) && !find_listener(rt, tl->items[i].id))
            listener_open(rt, &tl->items[i]);
}

const struct lws_protocols hub_edge_tcp_protocol = {
    .name = LISTEN_PROTOCOL,
    .callback = listen_callback,
};

void hub_edge_tcp_close_all(hub_runtime_t *rt)
{
    for (listener_t *l = rt->listeners; l; l = l->next)
        listener_close(l);
}

void hub_edge_tcp_free_all(hub_runtime_t *rt)
{
    while (rt->listeners) {
        listener_t *l = rt->listeners;
        rt->listeners = l->next;
        free(l);
    }
}
