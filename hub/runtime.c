/* Agent endpoint, agent registry and public TCP edge (see runtime.h). */
#include "runtime.h"

#include <errno.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <sodium.h>
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
#include "cn_pipe.h"
#include "events.h"
#include "tunnels.h"

#define LISTEN_PROTOCOL "hub-listen"
#define ACCEPTS_PER_EVENT 64
#define LISTEN_BACKLOG 4096

#define MAX_SERVED 64

/* One link of a connected agent: owned by its link (freed when the link
 * closes). An agent may hold several links at once (a daemon and a few
 * `connect expose` processes sharing one identity); each serves either all
 * of the agent's tunnels or the ones it named in its handshake. */
typedef struct session {
    struct session *next;
    hub_runtime_t *rt;
    cn_link_t *link;
    char agent_id[HUB_ID_SIZE];
    char workspace_id[HUB_ID_SIZE];
    int admitted;   /* counted as one of the agent's live links */
    int hello_sent; /* "tunnels" updates only follow "hello" */
    int serve_all;
    size_t nserved;
    char served[MAX_SERVED][HUB_ID_SIZE];
} session_t;

/* One public TCP port: owned by the runtime, freed when lws closes it. */
typedef struct listener {
    struct listener *next;
    hub_runtime_t *rt;
    struct lws *wsi;
    char tunnel_id[HUB_ID_SIZE];
    char workspace_id[HUB_ID_SIZE];
    char agent_id[HUB_ID_SIZE];
    uint16_t port;
    int paused;
    int closing;
    unsigned conns;
} listener_t;

/* A public connection's bookkeeping, for the connection caps. */
typedef struct conn {
    hub_runtime_t *rt;
    char tunnel_id[HUB_ID_SIZE];
} conn_t;

struct hub_runtime {
    hub_runtime_config_t cfg;
    char *tcp_host;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    cn_link_server_t *links;
    cn_mux_callbacks_t mux_cb;
    session_t *sessions;
    listener_t *listeners;
    unsigned online;
    unsigned conns;
};

/* ---- helpers ------------------------------------------------------------ */

static int serves(const session_t *s, const char *tunnel_id)
{
    if (s->serve_all)
        return 1;
    for (size_t i = 0; i < s->nserved; i++)
        if (!strcmp(s->served[i], tunnel_id))
            return 1;
    return 0;
}

/* The newest live link of the agent that serves the tunnel (sessions are
 * kept newest first, so a reconnecting agent wins over a stale link that
 * has not timed out yet). tunnel_id NULL: any link of the agent. */
static session_t *find_route(hub_runtime_t *rt, const char *agent_id, const char *tunnel_id)
{
    for (session_t *s = rt->sessions; s; s = s->next)
        if (s->admitted && !strcmp(s->agent_id, agent_id) && (!tunnel_id || serves(s, tunnel_id)) &&
            cn_link_is_established(s->link))
            return s;
    return NULL;
}

static int agent_links(hub_runtime_t *rt, const char *agent_id, const session_t *except)
{
    int n = 0;
    for (session_t *s = rt->sessions; s; s = s->next)
        if (s != except && s->admitted && !strcmp(s->agent_id, agent_id))
            n++;
    return n;
}

static int served_elsewhere(hub_runtime_t *rt, const session_t *except, const char *agent_id,
                            const char *tunnel_id)
{
    for (session_t *s = rt->sessions; s; s = s->next)
        if (s != except && s->admitted && !strcmp(s->agent_id, agent_id) && serves(s, tunnel_id))
            return 1;
    return 0;
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

static json_t *tunnel_json(const hub_tunnel_t *t)
{
    return json_pack("{s:s,s:s,s:{s:s,s:i},s:s,s:s}", "id", t->id, "name", t->name, "target",
                     "host", t->target_host, "port", (int)t->target_port, "protocol",
                     hub_protocol_name(t->protocol), "status", hub_tunnel_status_name(t->status));
}

/* The agent's allow-list as a JSON array (NULL on store failure). */
static json_t *agent_tunnels(hub_runtime_t *rt, const char *ws, const char *agent_id)
{
    hub_tunnel_filter_t f = {.agent_id = agent_id};
    hub_tunnel_list_t list = {0};
    if (hub_store_tunnel_list(rt->cfg.store, ws, &f, &list) < 0)
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < list.count; i++)
        json_array_append_new(arr, tunnel_json(&list.items[i]));
    hub_tunnel_list_free(&list);
    return arr;
}

static void send_control(session_t *s, json_t *msg)
{
    if (!msg)
        return;
    int rc = cn_mux_send_control(cn_link_mux(s->link), msg);
    if (rc < 0)
        cn_log_warn("agent %s: could not queue control message: %s", s->agent_id, cn_strerror(rc));
    json_decref(msg);
    cn_link_flush(s->link);
}

/* ---- public TCP edge ---------------------------------------------------- */

static void conn_done(void *ctx, cn_pipe_t *p, int err)
{
    conn_t *c = ctx;
    hub_runtime_t *rt = c->rt;
    rt->conns--;
    listener_t *l = find_listener(rt, c->tunnel_id);
    if (l && l->conns)
        l->conns--;
    free(c);
}

/* Refuses a connection at once: RST, so a client never hangs on a tunnel
 * that is paused, offline or over its limits. */
static void refuse(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static void accept_one(listener_t *l, int fd, const struct sockaddr_storage *ss)
{
    hub_runtime_t *rt = l->rt;
    session_t *s = find_route(rt, l->agent_id, l->tunnel_id);
    const char *why = l->paused                                  ? "tunnel paused"
                      : !s                                       ? "agent offline"
                      : rt->conns >= rt->cfg.max_conns           ? "hub connection limit"
                      : l->conns >= rt->cfg.max_conns_per_tunnel ? "tunnel connection limit"
                                                                 : NULL;
    if (why) {
        cn_log_info("tunnel %s: connection refused: %s", l->tunnel_id, why);
        refuse(fd);
        return;
    }
    char addr[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, addr, sizeof(addr));
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof(addr));
        port = ntohs(a->sin6_port);
    }
    char meta[128];
    int mlen = snprintf(meta, sizeof(meta), "{\"client\":\"%s:%d\"}", addr, port);
    conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        refuse(fd);
        return;
    }
    c->rt = rt;
    memcpy(c->tunnel_id, l->tunnel_id, sizeof(c->tunnel_id));
    cn_pipe_config_t pc = {.done = conn_done, .ctx = c};
    int err = 0;
    /* cn_pipe_open owns fd from here, on failure too. */
    if (!cn_pipe_open(rt->vh, fd, s->link, CN_KIND_TCP, (const uint8_t *)l->tunnel_id,
                      strlen(l->tunnel_id), (const uint8_t *)meta, (size_t)mlen, &pc, &err)) {
        cn_log_warn("tunnel %s: could not open a stream: %s", l->tunnel_id, cn_strerror(err));
        free(c);
        return;
    }
    rt->conns++;
    l->conns++;
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
            int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE)
                    cn_log_warn("tunnel %s: out of file descriptors, connection left queued",
                                l->tunnel_id);
                break;
            }
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
    if (l->wsi) {
        /* Stop listening now (Linux refuses new connections after
         * SHUT_RD on a listener); lws frees the socket on its next turn. */
        shutdown(lws_get_socket_fd(l->wsi), SHUT_RD);
        lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
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
        hub_tunnels_set_status(rt->cfg.store, t->workspace_id, t->id, HUB_TUNNEL_ERROR,
                               "port unavailable", why, NULL);
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

/* ---- reconciliation ----------------------------------------------------- */

void hub_runtime_agent_changed(hub_runtime_t *rt, const char *ws, const char *agent_id)
{
    if (!rt || !rt->vh)
        return;
    hub_agent_t agent;
    int gone = hub_store_agent_get(rt->cfg.store, ws, agent_id, &agent) == CN_ENOTFOUND;

    hub_tunnel_filter_t f = {.agent_id = agent_id};
    hub_tunnel_list_t list = {0};
    if (!gone && hub_store_tunnel_list(rt->cfg.store, ws, &f, &list) < 0) {
        cn_log_warn("agent %s: cannot list tunnels: %s", agent_id, hub_store_errmsg(rt->cfg.store));
        return;
    }
    /* Close listeners whose tunnel is gone or no longer public TCP. */
    for (listener_t *l = rt->listeners; l; l = l->next) {
        if (l->closing || strcmp(l->agent_id, agent_id))
            continue;
        const hub_tunnel_t *t = NULL;
        for (size_t i = 0; i < list.count; i++)
            if (!strcmp(list.items[i].id, l->tunnel_id))
                t = &list.items[i];
        if (!t || !wants_listener(t) || t->hub_port != l->port)
            listener_close(l);
        else
            l->paused = t->status == HUB_TUNNEL_PAUSED;
    }
    for (size_t i = 0; i < list.count; i++)
        if (wants_listener(&list.items[i]) && !find_listener(rt, list.items[i].id) &&
            list.items[i].status != HUB_TUNNEL_ERROR)
            listener_open(rt, &list.items[i]);
    hub_tunnel_list_free(&list);

    for (session_t *s = rt->sessions; s; s = s->next) {
        if (!s->admitted || strcmp(s->agent_id, agent_id))
            continue;
        if (gone) {
            cn_log_info("agent %s deleted: closing its link", agent_id);
            cn_link_close(s->link, "agent deleted");
        } else if (s->hello_sent) {
            send_control(s, json_pack("{s:s,s:o*}", "type", "tunnels", "tunnels",
                                      agent_tunnels(rt, ws, agent_id)));
        }
    }
}

/* Moves the tunnels a link serves to `to` when they are in `from_mask`;
 * going down, only those no other link of the agent still serves. */
static void move_served(hub_runtime_t *rt, session_t *s, unsigned from_mask,
                        enum hub_tunnel_status to, const char *reason)
{
    hub_tunnel_filter_t f = {.agent_id = s->agent_id};
    hub_tunnel_list_t list = {0};
    if (hub_store_tunnel_list(rt->cfg.store, s->workspace_id, &f, &list) < 0)
        return;
    for (size_t i = 0; i < list.count; i++) {
        const hub_tunnel_t *t = &list.items[i];
        if (!(from_mask & (1u << t->status)) || !serves(s, t->id))
            continue;
        if (to != HUB_TUNNEL_ACTIVE && served_elsewhere(rt, s, s->agent_id, t->id))
            continue;
        hub_tunnels_set_status(rt->cfg.store, s->workspace_id, t->id, to, reason, NULL, NULL);
    }
    hub_tunnel_list_free(&list);
}

static bool served_probe(void *ctx, const char *agent_id, const char *tunnel_id)
{
    return find_route(ctx, agent_id, tunnel_id) != NULL;
}

static void tunnels_observer(void *ctx, const char *ws, const char *agent_id)
{
    hub_runtime_agent_changed(ctx, ws, agent_id);
}

/* ---- agent endpoint ----------------------------------------------------- */

/* Checks who the agent is: an enrollment or a known key. Fills s and, for
 * an enrollment, a fresh API token for the agent's CLI. */
static int admit(hub_runtime_t *rt, cn_link_t *link, session_t *s, char *api_token)
{
    size_t plen = 0;
    const uint8_t *payload = cn_link_peer_payload(link, &plen);
    const uint8_t *pk = cn_link_peer_key(link);
    json_error_t jerr;
    json_t *hello = payload && plen ? json_loadb((const char *)payload, plen, 0, &jerr) : NULL;
    int rc = CN_EREFUSED;
    hub_agent_t agent;
    const char *enroll = json_string_value(json_object_get(hello, "enroll"));
    const char *want_id = json_string_value(json_object_get(hello, "agentId"));
    if (!pk || !json_is_object(hello))
        goto out;
    if (enroll) {
        rc = hub_store_agent_enroll(rt->cfg.store, enroll, pk, &agent);
        if (rc < 0) {
            cn_log_warn("agent endpoint: enrollment refused: %s", hub_store_errmsg(rt->cfg.store));
            goto out;
        }
        char name[64];
        snprintf(name, sizeof(name), "agent %s", agent.id);
        rc =
            hub_store_token_create(rt->cfg.store, agent.workspace_id, name, false, api_token, NULL);
        if (rc < 0)
            goto out;
        cn_log_info("agent %s enrolled in workspace %s", agent.id, agent.workspace_id);
    } else {
        rc = hub_store_agent_find_by_key(rt->cfg.store, pk, &agent);
        if (rc < 0 || !want_id || strcmp(want_id, agent.id)) {
            char fp[CN_CHAN_FINGERPRINT_SIZE];
            cn_chan_fingerprint(pk, fp);
            cn_log_warn("agent endpoint: unknown agent key %s refused", fp);
            rc = CN_EREFUSED;
            goto out;
        }
    }
    memcpy(s->agent_id, agent.id, sizeof(s->agent_id));
    memcpy(s->workspace_id, agent.workspace_id, sizeof(s->workspace_id));
    /* "tunnels": [ids] narrows what this link serves; absent = all. */
    json_t *only = json_object_get(hello, "tunnels");
    s->serve_all = !json_is_array(only);
    if (!s->serve_all) {
        size_t i;
        json_t *v;
        json_array_foreach(only, i, v)
        {
            if (json_is_string(v) && strlen(json_string_value(v)) < HUB_ID_SIZE &&
                s->nserved < MAX_SERVED)
                snprintf(s->served[s->nserved++], HUB_ID_SIZE, "%s", json_string_value(v));
        }
    }
    rc = 0;
out:
    json_decref(hello);
    return rc;
}

static int link_established(cn_link_t *link, void *ctx)
{
    hub_runtime_t *rt = ctx;
    char api_token[HUB_TOKEN_STR_SIZE] = "";
    session_t *s = calloc(1, sizeof(*s));
    if (!s)
        return CN_ENOMEM;
    s->rt = rt;
    s->link = link;
    int rc = admit(rt, link, s, api_token);
    if (rc < 0) {
        free(s);
        return rc;
    }
    /* Newest first: a reconnecting agent (dirty disconnect) gets the
     * streams at once, before its stale link times out. */
    int first = agent_links(rt, s->agent_id, NULL) == 0;
    s->admitted = 1;
    s->next = rt->sessions;
    rt->sessions = s;
    rt->online++;
    cn_link_set_user(link, s);
    cn_log_info("agent %s connected (%s, serving %s)", s->agent_id, cn_link_cipher(link),
                s->serve_all ? "all its tunnels" : "named tunnels");
    if (first) {
        hub_store_agent_set_connected(rt->cfg.store, s->workspace_id, s->agent_id, true);
        hub_event_record(rt->cfg.store, s->workspace_id, HUB_EV_AGENT_CONNECTED, NULL, s->agent_id,
                         NULL);
    }
    move_served(rt, s, (1u << HUB_TUNNEL_CONNECTING) | (1u << HUB_TUNNEL_ERROR), HUB_TUNNEL_ACTIVE,
                "agent online");

    json_t *hello =
        json_pack("{s:s,s:s,s:s,s:o*}", "type", "hello", "agentId", s->agent_id, "workspaceId",
                  s->workspace_id, "tunnels", agent_tunnels(rt, s->workspace_id, s->agent_id));
    if (hello && api_token[0])
        json_object_set_new(hello, "apiToken", json_string(api_token));
    sodium_memzero(api_token, sizeof(api_token));
    send_control(s, hello);
    s->hello_sent = 1;
    return 0;
}

static void link_closed(cn_link_t *link, void *ctx, int err, const char *why)
{
    hub_runtime_t *rt = ctx;
    session_t *s = cn_link_user(link);
    if (!s)
        return;
    for (session_t **pp = &rt->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    cn_log_info("agent %s disconnected: %s", s->agent_id, why);
    if (s->admitted) {
        rt->online--;
        move_served(rt, s, 1u << HUB_TUNNEL_ACTIVE, HUB_TUNNEL_CONNECTING, "agent offline");
        if (agent_links(rt, s->agent_id, s) == 0) {
            hub_store_agent_set_connected(rt->cfg.store, s->workspace_id, s->agent_id, false);
            hub_event_record(rt->cfg.store, s->workspace_id, HUB_EV_AGENT_DISCONNECTED, NULL,
                             s->agent_id, NULL);
        }
    }
    free(s);
}

/* Agents may not open streams to the hub yet (reach arrives later). */
static void agent_open(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t ref_len,
                       const uint8_t *meta, size_t meta_len)
{
    cn_mux_reject(cn_link_mux(ctx), id, CN_RST_REFUSED, "not supported");
    cn_link_flush(ctx);
}

static void agent_control(void *ctx, const uint8_t *payload, size_t len)
{
    session_t *s = cn_link_user(ctx);
    cn_log_debug("agent %s: control message (%zu bytes) ignored", s ? s->agent_id : "?", len);
}

/* ---- lifecycle ---------------------------------------------------------- */

static const struct lws_protocols listen_protocol = {
    .name = LISTEN_PROTOCOL,
    .callback = listen_callback,
};

hub_runtime_t *hub_runtime_new(const hub_runtime_config_t *cfg, char *err, size_t errlen)
{
    hub_runtime_t *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rt->cfg = *cfg;
    if (!rt->cfg.max_conns)
        rt->cfg.max_conns = 3000;
    if (!rt->cfg.max_conns_per_tunnel)
        rt->cfg.max_conns_per_tunnel = 1024;
    rt->tcp_host = strdup(cfg->tcp_host ? cfg->tcp_host : "127.0.0.1");
    cn_stream_dispatch_callbacks(&rt->mux_cb);
    rt->mux_cb.on_open = agent_open;
    rt->mux_cb.on_control = agent_control;
    cn_link_server_config_t lc = {
        .path = "/agent",
        .binding = "",
        .static_sk = cfg->keypair->secret_key,
        .mux_cb = &rt->mux_cb,
        .cb = {.on_established = link_established, .on_closed = link_closed},
        .ctx = rt,
    };
    int e = 0;
    rt->links = cn_link_server_new(&lc, &e);
    if (!rt->tcp_host || !rt->links) {
        snprintf(err, errlen, "cannot set up the agent endpoint: %s", cn_strerror(e));
        hub_runtime_free(rt);
        return NULL;
    }
    hub_tunnels_set_observer(tunnels_observer, rt);
    hub_tunnels_set_served_probe(served_probe, rt);
    return rt;
}

int hub_runtime_protocols(hub_runtime_t *rt, struct lws_protocols *protos, size_t *n, size_t cap)
{
    if (*n + 3 > cap)
        return CN_ETOOBIG;
    protos[(*n)++] = cn_link_server_protocol(rt->links);
    protos[(*n)++] = *cn_pipe_protocol();
    protos[(*n)++] = listen_protocol;
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
        for (size_t i = 0; i < tl.count; i++)
            if (wants_listener(&tl.items[i]) && !find_listener(rt, tl.items[i].id))
                listener_open(rt, &tl.items[i]);
        hub_tunnel_list_free(&tl);
    }
    hub_workspace_list_free(&wl);
    return 0;
}

unsigned hub_runtime_agents_online(const hub_runtime_t *rt)
{
    return rt ? rt->online : 0;
}

void hub_runtime_stop(hub_runtime_t *rt)
{
    if (!rt)
        return;
    for (session_t *s = rt->sessions; s; s = s->next)
        cn_link_close(s->link, "hub shutting down");
    for (listener_t *l = rt->listeners; l; l = l->next)
        listener_close(l);
}

void hub_runtime_free(hub_runtime_t *rt)
{
    if (!rt)
        return;
    hub_tunnels_set_observer(NULL, NULL);
    hub_tunnels_set_served_probe(NULL, NULL);
    /* Links and listeners died with the context; whatever is left was never
     * handed to lws. */
    while (rt->listeners) {
        listener_t *l = rt->listeners;
        rt->listeners = l->next;
        free(l);
    }
    while (rt->sessions) {
        session_t *s = rt->sessions;
        rt->sessions = s->next;
        free(s);
    }
    cn_link_server_free(rt->links);
    free(rt->tcp_host);
    free(rt);
}
