/* lws context, the listening vhost and its protocols array, and the hub's
 * timers (see server.h). */
#include "server.h"

#include "accept.h"

#include <assert.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <libwebsockets.h>

#include "cn_err.h"
#include "cn_link.h"
#include "cn_loop.h"
#include "cn_log.h"
#include "cn_pipe.h"
#include "http.h"
#include "hub_time.h"
#include "ratelimit.h"
#include "runtime.h"
#include "tunnels.h"

/* Room in the protocols array for everything the hub will serve on this
 * port (HTTP, the agent endpoint, more later) plus the terminator. */
#define MAX_PROTOCOLS 12
/* The API/agent port's own listening socket (see open_listener()). */
#define LISTEN_PROTOCOL "hub-api-listen"
#define LISTEN_BACKLOG 1024
#define ACCEPTS_PER_EVENT 64
/* lws parses each connection's request headers in a header table taken
 * from a pool; a connection without one waits in a FIFO. Silent or
 * trickling clients holding the tables would make a real agent wait
 * behind them (1,000 silent sockets: 19 s). So the hub counts connections
 * that have not finished their headers ("pre-header"), caps them per
 * address (IPv6: per /64) and in total, below the pool, and resets the rest
 * at accept: nobody ever waits for a table. 64 per address leaves a busy
 * client (or a NAT) room; 24 addresses are needed to fill the total. A
 * table costs ~8.5 KiB while in use, so the pool is ~17 MiB at worst. */
#define HEADER_POOL 2048
#define PRE_MAX 1536
#define PRE_PER_ADDR 64
/* A pre-header entry older than this is forgotten (lws drops a connection
 * that holds a header table idle for timeout_secs_ah_idle, 10 s). */
#define PRE_STALE_MS 15000

struct hub_server {
    struct lws_context *ctx;
    cn_loop_t *loop; /* what lws runs on */
    struct lws_vhost *vhost;
    hub_server_config_t cfg;
    hub_http_config_t http_cfg;
    struct lws_protocols protocols[MAX_PROTOCOLS];
    hub_runtime_t *rt; /* borrowed: agent endpoint and public TCP edge */
    lws_sorted_usec_list_t expiry_sul;
    lws_sorted_usec_list_t retention_sul;
    struct lws *listen_wsi;
    int port;
    hub_ratelimit_t *conn_limiter;  /* per-address new connections; NULL = unlimited */
    int64_t conn_log_at;            /* last "refused" line, for log rate limiting */
    uint64_t conn_refused;          /* refused since that line */
    lws_callback_function *http_cb; /* protocols[0]'s own callback, behind the gate */
    struct pre_conn *pre;           /* PRE_MAX slots */
    unsigned npre;
};

/* One connection still sending its request headers; the wsi's opaque user
 * data points here until the headers are in or the wsi goes. */
typedef struct pre_conn {
    hub_server_t *s;
    struct lws *wsi; /* compared, never dereferenced after release */
    int64_t since;
    char key[CN_LINK_ADDR_KEY_SIZE];
} pre_conn_t;

static void pre_release(pre_conn_t *p)
{
    if (!p->s)
        return;
    p->s->npre--;
    p->s = NULL;
    p->wsi = NULL;
}

/* A free slot for a new connection from `key`, or NULL when over the caps
 * (stale entries are swept first). */
static pre_conn_t *pre_claim(hub_server_t *s, const char *key, int64_t now)
{
    pre_conn_t *free_slot = NULL;
    unsigned mine = 0;
    for (unsigned i = 0; i < PRE_MAX; i++) {
        pre_conn_t *p = &s->pre[i];
        if (p->s && now - p->since > PRE_STALE_MS)
            pre_release(p);
        if (!p->s) {
            if (!free_slot)
                free_slot = p;
        } else if (!strcmp(p->key, key)) {
            mine++;
        }
    }
    if (!free_slot || mine >= PRE_PER_ADDR)
        return NULL;
    return free_slot;
}

/* protocols[0]'s callback with the pre-header gate in front: the headers
 * are in (a request or an upgrade) or the connection is gone. */
static int http_gate(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    /* From the vhost, not from the wsi's protocol: lws calls protocols[0]
     * for some events of connections bound to other protocols too (the
     * WSI_DESTROY of an upgraded agent link over TLS), whose `user` is not
     * ours. */
    struct lws_vhost *vh = lws_get_vhost(wsi);
    hub_server_t *s = vh ? lws_get_vhost_user(vh) : NULL;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_WSI_DESTROY: {
        pre_conn_t *p = lws_get_opaque_user_data(wsi);
        if (p && p->wsi == wsi) {
            pre_release(p);
            lws_set_opaque_user_data(wsi, NULL);
        }
        break;
    }
    default:
        break;
    }
    return s && s->http_cb ? s->http_cb(wsi, reason, user, in, len) : 0;
}

/* The per-address key of a peer (IPv6 per /64, see cn_link_addr_key()). */
static void peer_key(const struct sockaddr_storage *ss, char key[static CN_LINK_ADDR_KEY_SIZE])
{
    char addr[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, addr, sizeof(addr));
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, addr, sizeof(addr));
    cn_link_addr_key(addr, key);
}

/* Whether `ss` may open another connection now (per-address rate). Logs
 * refusals at most once a second, with how many were dropped. */
static pre_conn_t *conn_allowed(hub_server_t *s, const struct sockaddr_storage *ss)
{
    char key[CN_LINK_ADDR_KEY_SIZE];
    peer_key(ss, key);
    int64_t now = hub_time_now_ms(NULL);
    const char *why = NULL;
    pre_conn_t *slot = pre_claim(s, key, now);
    if (!slot) {
        why = s->npre >= PRE_MAX ? "too many connections still sending headers"
                                 : "too many connections from there still sending headers";
    } else if (s->conn_limiter) {
        hub_ratelimit_result_t r =
            hub_ratelimit_check(s->conn_limiter, key, strlen(key), s->cfg.conn_rate, now);
        if (!r.allowed)
            why = "new connections over the per-address rate";
    }
    if (!why) {
        slot->s = s;
        slot->since = now;
        memcpy(slot->key, key, sizeof(slot->key));
        s->npre++;
        return slot;
    }
    s->conn_refused++;
    if (now - s->conn_log_at >= 1000) {
        cn_log_warn("api: %llu new connection(s) refused: %s (%u a minute), last from %s",
                    (unsigned long long)s->conn_refused, why, s->cfg.conn_rate, key);
        s->conn_log_at = now;
        s->conn_refused = 0;
    }
    return NULL;
}

/* lws's own log lines go through ours at debug level only: in 4.1 most of
 * its "errors" are about bad input from clients, and the failures that
 * matter to an operator (cannot listen, bad certificate) are reported by
 * us in one line. */
static void lws_log_emit(int level, const char *line)
{
    (void)level;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", line);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    cn_log_debug("lws: %s", buf);
}

/* Accepts on the hub's own listening socket and hands each connection to
 * lws as if its listener had accepted it (HTTP, upgrades, TLS alike). */
static int listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    hub_server_t *s = lws_get_opaque_user_data(wsi);
    if (reason != LWS_CALLBACK_RAW_RX_FILE || !s)
        return 0;
    int lfd = lws_get_socket_fd(wsi);
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        struct sockaddr_storage ss = {0}; /* the analyser cannot see accept4() fill it */
        socklen_t sl = sizeof(ss);
        int fd = hub_accept(lfd, &ss, &sl, "api");
        if (fd < 0)
            break;
        pre_conn_t *slot = conn_allowed(s, &ss);
        if (!slot) {
            cn_sock_reset(fd); /* RST: no lws state, no half-open socket left behind */
            continue;
        }
        /* Closes fd itself on failure. */
        struct lws *w = lws_adopt_socket_vhost(s->vhost, fd);
        if (!w) {
            pre_release(slot);
            cn_log_debug("api: could not adopt a connection");
            continue;
        }
        if (slot->s) { /* not already through its headers inside the adoption */
            slot->wsi = w;
            lws_set_opaque_user_data(w, slot);
        }
    }
    return 0;
}

static const struct lws_protocols listen_protocol = {
    .name = LISTEN_PROTOCOL,
    .callback = listen_callback,
};

/* lws 4.1 binds a vhost's port on every interface (dual-stack `::`) when
 * given an IPv4 literal, and silently listens nowhere for an address this
 * host does not have. So the hub binds the socket itself, exactly on the
 * address asked for (IPv6 only for an IPv6 address), fails loudly when it
 * cannot, and lets the vhost serve what it accepts. */
static int open_listener(hub_server_t *s, char *err, size_t errlen)
{
    int bound = 0;
    int fd = cn_sock_listen(s->cfg.listen_host, s->cfg.listen_port, LISTEN_BACKLOG, &bound);
    if (fd < 0) {
        snprintf(err, errlen, "could not listen on %s:%u: %s", s->cfg.listen_host,
                 (unsigned)s->cfg.listen_port,
                 fd == CN_EIO ? strerror(errno) : "not a usable address");
        return fd;
    }
    lws_sock_file_fd_type u;
    u.filefd = fd;
    s->listen_wsi =
        lws_adopt_descriptor_vhost(s->vhost, LWS_ADOPT_RAW_FILE_DESC, u, LISTEN_PROTOCOL, NULL);
    if (!s->listen_wsi) {
        close(fd);
        snprintf(err, errlen, "could not listen on %s:%u: out of memory", s->cfg.listen_host,
                 (unsigned)s->cfg.listen_port);
        return -1;
    }
    lws_set_opaque_user_data(s->listen_wsi, s);
    s->port = bound;
    return 0;
}

/* The ONE place the vhost's protocols array is built. protocols[0] gets
 * every plain HTTP request; WebSocket upgrades are matched by subprotocol
 * name against the entries after it. */
static void build_protocols(hub_server_t *s)
{
    size_t n = 0;
    memset(s->protocols, 0, sizeof(s->protocols));

    /* [0] The REST API (and, later, the HTTP edge and dashboard), behind
     * the pre-header gate. */
    hub_http_protocol(&s->protocols[n], &s->http_cfg);
    s->http_cb = s->protocols[n].callback;
    s->protocols[n++].callback = http_gate;

    /* [1..] The agent WebSocket endpoint (upgrades on /agent with
     * subprotocol "connect.v1"), public-connection pipes and the public
     * TCP listeners. */
    int rc = hub_runtime_protocols(s->rt, s->protocols, &n, MAX_PROTOCOLS - 2);
    if (rc < 0) {
        /* A table too small is a build mistake: the hub would serve no
         * agent. Stop at once rather than run without the endpoint. */
        cn_log_error("server: protocol table too small (%s)", cn_strerror(rc));
        abort();
    }

    /* The listening socket of this port. */
    s->protocols[n++] = listen_protocol;

    /* Terminator: already zeroed. */
}

static void expiry_tick(lws_sorted_usec_list_t *sul)
{
    hub_server_t *s = lws_container_of(sul, hub_server_t, expiry_sul);
    size_t n = 0;
    hub_live_t live;
    hub_runtime_live(s->rt, &live);
    if (hub_tunnels_expire_due(s->cfg.store, &live, &n) < 0)
        cn_log_warn("ttl: could not list expired tunnels: %s", hub_store_errmsg(s->cfg.store));
    lws_sul_schedule(s->ctx, 0, &s->expiry_sul, expiry_tick,
                     (lws_usec_t)HUB_SERVER_EXPIRY_PERIOD_MS * LWS_US_PER_MS);
}

/* Events are pruned on a timer, not per write: one DELETE every few
 * minutes costs nothing on the write path, and a reconnect loop between
 * two runs adds at most a few minutes of rows. */
static void retention_run(hub_server_t *s)
{
    size_t n = 0;
    if (hub_event_retain(s->cfg.store, &s->cfg.retention, &n) < 0)
        cn_log_warn("events: could not prune: %s", hub_store_errmsg(s->cfg.store));
    else if (n)
        cn_log_info("events: pruned %zu past the retention", n);
}

static void retention_tick(lws_sorted_usec_list_t *sul)
{
    hub_server_t *s = lws_container_of(sul, hub_server_t, retention_sul);
    retention_run(s);
    lws_sul_schedule(s->ctx, 0, &s->retention_sul, retention_tick,
                     (lws_usec_t)HUB_EVENT_PRUNE_PERIOD_MS * LWS_US_PER_MS);
}

hub_server_t *hub_server_new(const hub_server_config_t *cfg, char *err, size_t errlen)
{
    hub_server_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->http_cfg.handler = hub_api_handle;
    s->http_cfg.ctx = cfg->api;
    s->rt = cfg->runtime;
    s->pre = calloc(PRE_MAX, sizeof(*s->pre));
    if (!s->pre) {
        snprintf(err, errlen, "out of memory");
        free(s);
        return NULL;
    }
    if (cfg->conn_rate) {
        /* One slot per recently seen address; evicting the least indebted
         * under pressure keeps the throttled ones throttled. */
        s->conn_limiter = hub_ratelimit_new(65536, HUB_RATELIMIT_WINDOW_MS);
        if (!s->conn_limiter) {
            snprintf(err, errlen, "out of memory");
            free(s->pre);
            free(s);
            return NULL;
        }
    }
    build_protocols(s);

    /* Not LLL_NOTICE even at debug: on the epoll loop lws's libev plugin
     * logs a notice for every socket event. */
    lws_set_log_level(cn_log_get_level() >= CN_LOG_DEBUG ? LLL_ERR | LLL_WARN : 0, lws_log_emit);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    /* TLS is initialised even without a certificate: webhook deliveries
     * to https receivers are TLS clients. */
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.pt_serv_buf_size = 256 * 1024;
    /* Bounded header parsing: 8 KiB of headers per request, HEADER_POOL
     * requests parsing headers at once (the gate keeps the pre-header ones
     * below it); stalled ones are dropped after 10 s. */
    info.max_http_header_data = 8192;
    info.max_http_header_pool = HEADER_POOL;
    info.timeout_secs = 10;
    /* With epoll or uv the loop is ours (foreign to lws), so
     * hub_server_run() keeps turning it once per event and checking `stop`
     * in between, as with lws_service(). */
    s->loop = cn_loop_new((cn_loop_kind_t)cfg->event_loop, &info, err, errlen);
    if (!s->loop)
        goto fail;
    cn_loop_set_busy_poll(s->loop, cfg->busy_poll_us);
    if (cfg->busy_poll_us)
        cn_log_info("event loop: busy polling up to %u us after each turn with events",
                    cfg->busy_poll_us);
    /* fd tables follow RLIMIT_NOFILE, which `serve` raises at start to
     * what its caps need (cmd_serve.c: connections + links + HUB_FD_SPARE, at
     * least HUB_FD_LIMIT_MIN, within the hard limit). */
    s->ctx = lws_create_context(&info);
    if (!s->ctx) {
        snprintf(err, errlen, "could not create the network context%s", cn_loop_hint(s->loop));
        goto fail;
    }

    struct lws_context_creation_info vh;
    memset(&vh, 0, sizeof(vh));
    vh.vhost_name = "hub";
    vh.user = s; /* http_gate() finds the server here */
    /* No lws listener: open_listener() binds the socket. */
    vh.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    vh.protocols = s->protocols;
    vh.keepalive_timeout = 30;
    vh.timeout_secs_ah_idle = 10;
    /* HTTP/1.1 only: WebSockets over h2 would complicate the agent link. */
    vh.alpn = "http/1.1";
    if (cfg->tls_cert) {
        vh.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        vh.ssl_cert_filepath = cfg->tls_cert;
        vh.ssl_private_key_filepath = cfg->tls_key;
    }
    s->vhost = lws_create_vhost(s->ctx, &vh);
    if (!s->vhost) {
        snprintf(err, errlen, "could not set up %s:%u%s", cfg->listen_host,
                 (unsigned)cfg->listen_port,
                 cfg->tls_cert ? " (unusable TLS certificate/key?)" : "");
        goto fail;
    }
    if (open_listener(s, err, errlen) < 0)
        goto fail;
    if (hub_runtime_start(s->rt, s->ctx, s->vhost) < 0) {
        snprintf(err, errlen, "could not open the public tunnel ports");
        goto fail;
    }
    if (cfg->webhooks && hub_webhooks_start(cfg->webhooks, s->ctx) < 0) {
        snprintf(err, errlen, "could not start the webhook deliveries");
        goto fail;
    }
    lws_sul_schedule(s->ctx, 0, &s->expiry_sul, expiry_tick,
                     (lws_usec_t)HUB_SERVER_EXPIRY_PERIOD_MS * LWS_US_PER_MS);
    retention_run(s);
    lws_sul_schedule(s->ctx, 0, &s->retention_sul, retention_tick,
                     (lws_usec_t)HUB_EVENT_PRUNE_PERIOD_MS * LWS_US_PER_MS);
    return s;
fail:
    hub_server_free(s);
    return NULL;
}

int hub_server_port(const hub_server_t *s)
{
    return s->port;
}

int hub_server_run(hub_server_t *s, volatile sig_atomic_t *stop)
{
    while (!*stop) {
        /* One turn: returns after the events it waited for (a signal
         * wakes it through hub_server_wake()). */
        if (cn_loop_run_once(s->loop, s->ctx) < 0)
            return -1;
        cn_pipe_flush_turn(); /* sockets, then the agents' links: this turn's output */
    }
    return 0;
}

void hub_server_wake(hub_server_t *s)
{
    if (s && s->ctx)
        lws_cancel_service(s->ctx);
}

void hub_server_free(hub_server_t *s)
{
    if (!s)
        return;
    if (s->ctx) {
        lws_sul_cancel(&s->expiry_sul);
        hub_webhooks_stop(s->cfg.webhooks);
        lws_sul_cancel(&s->retention_sul);
        cn_loop_context_destroy(s->loop, s->ctx);
    }
    cn_loop_free(s->loop);
    hub_ratelimit_free(s->conn_limiter);
    free(s->pre);
    free(s);
}
