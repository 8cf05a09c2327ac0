/* The hub's live side: the agent endpoint (cn_link server role on /agent)
 * and the registry of connected agents (agents.c), and the public TCP edge
 * (edge_tcp.c: one listening socket per public TCP tunnel, each accepted
 * connection piped into a stream to the exposing agent). runtime.c puts
 * them together; runtime_internal.h is what they share.
 *
 * The store is the truth; the runtime reconciles with it per agent
 * (hub_runtime_agent_changed) whenever the API or a timer changed one of
 * that agent's tunnels: listeners opened/closed/paused, and the agent's
 * allow-list pushed as a CONTROL "tunnels" message, or only what changed
 * (one tunnel's entry or status) to a link that takes that
 * (docs/agent-protocol.md).
 * Everything runs on the lws service thread. */
#ifndef HUB_RUNTIME_H
#define HUB_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "secrets.h"
#include "store.h"
#include "tunnels.h"

struct lws_context;
struct lws_vhost;
struct lws_protocols;

typedef struct hub_runtime hub_runtime_t;

/* Agent links: each holds two 256 KiB buffers (the link's and lws's) and at
 * most ~1.3 MiB of queued replies before it stops reading (docs/security.md
 * has the arithmetic), so the total cap bounds their memory. */
#define HUB_RUNTIME_MAX_LINKS_DEFAULT 1024
#define HUB_RUNTIME_MAX_LINKS_PER_AGENT_DEFAULT 16
/* Public TCP connections: hub-wide (`serve` sets its descriptor limit from
 * this cap: one per connection, the client socket), per tunnel, per
 * workspace (a third of the hub, so one tenant cannot fill it), per client
 * address per tunnel (half a tunnel: a client address is often a NAT or a
 * load generator). */
#define HUB_RUNTIME_MAX_CONNS_DEFAULT 3000
#define HUB_RUNTIME_MAX_CONNS_PER_TUNNEL_DEFAULT 1024
#define HUB_RUNTIME_MAX_CONNS_PER_WS_DEFAULT 1000
#define HUB_RUNTIME_MAX_CONNS_PER_CLIENT_DEFAULT 512
/* Seconds a public TCP connection may stay idle (no byte either way). */
#define HUB_RUNTIME_TCP_IDLE_TIMEOUT_DEFAULT 3600

typedef struct hub_runtime_config {
    hub_store_t *store;            /* borrowed */
    const hub_keypair_t *keypair;  /* borrowed: the hub's channel key */
    const char *tcp_host;          /* address public TCP ports bind to */
    unsigned max_conns;            /* public connections at once, all tunnels; default 3000 */
    unsigned max_conns_per_tunnel; /* default 1024 */
    unsigned max_conns_per_ws;     /* ... to one workspace's tunnels; default 1000 */
    unsigned max_conns_per_client; /* ... from one client address (IPv6 /64) per tunnel; 512 */
    unsigned tcp_idle_timeout_s;   /* idle public connections are closed; 0 = never */
    unsigned max_links;            /* agent links at once, any state; default 1024 */
    unsigned max_links_per_agent;  /* admitted links of one agent; default 16 */
    /* Receive window granted to each stream on an agent link and the
     * consumed bytes after which its credit goes back (cn_mux_config_t);
     * 0 = the multiplexer's defaults. Checked by the caller
     * (cn_mux_window_valid()): bad values fail hub_runtime_new(). */
    uint32_t stream_window, window_update;
    hub_metrics_t *metrics; /* borrowed; NULL = none (handshake failures, bytes) */
    /* The HTTP edge (edge_http.c) listens on tcp_host:http_port; 0 lets the
     * kernel pick (hub_runtime_http_port() says which), -1 means no edge. */
    int http_port;
    bool http_port_fallback; /* http_port taken: let the kernel pick instead */
    /* With a certificate (the API's --tls-cert/--tls-key, PEM files), the
     * edge also answers TLS on tcp_host:https_port (0: the kernel picks;
     * -1: no HTTPS port). */
    const char *tls_cert, *tls_key;
    int https_port;
    bool https_port_fallback;
    const char *public_domain; /* NAME.DOMAIN routing; default "localhost" */
    unsigned http_timeout_ms;  /* 504 when a target has not answered; default 30000 */
    /* Idle keep-alive streams the edge keeps per tunnel and agent link for
     * the next requests (0 = none: a target connection per request), and
     * how long one stays idle (0 = 4000). */
    unsigned http_pool_max;
    unsigned http_pool_idle_ms;
    uint32_t udp_idle_ms;        /* UDP flow idle expiry; 0 = CN_UDP_DEFAULT_IDLE_MS */
    struct hub_inspect *inspect; /* borrowed; the edge's request records; NULL = none */
    /* A test knob (`serve` sets it from CONNECT_HUB_TUNNEL_DELTA=0): the
     * hub acts as one before tunnel_upsert/tunnel_remove, ignoring the
     * handshake's "tunnelDelta" and sending the whole list for each tunnel
     * made, edited, resumed or deleted and each link coming or going, so a
     * newer agent's handling of an older hub is tested against the real
     * hub (docs/agent-protocol.md). */
    bool no_tunnel_delta;
} hub_runtime_config_t;

hub_runtime_t *hub_runtime_new(const hub_runtime_config_t *cfg, char *err, size_t errlen);
/* Appends the runtime's lws protocols (agent endpoint, pipes, listeners) to
 * protos[*n..cap) and advances *n. Returns 0 or CN_ETOOBIG. */
int hub_runtime_protocols(hub_runtime_t *rt, struct lws_protocols *protos, size_t *n, size_t cap);
/* Binds to the running context/vhost and opens the listeners of every
 * public TCP tunnel in the store. */
int hub_runtime_start(hub_runtime_t *rt, struct lws_context *ctx, struct lws_vhost *vh);
/* Reconciles one agent with the store (its listeners, its allow-list, and
 * its link if the agent was deleted). Safe to call at any time. */
void hub_runtime_agent_changed(hub_runtime_t *rt, const char *workspace_id, const char *agent_id);
/* The runtime as the lifecycle's live side (tunnels.h): hand it to the
 * API's configuration and to the TTL reaper. Valid while rt lives. */
void hub_runtime_live(hub_runtime_t *rt, hub_live_t *out);
/* The live gauges for /metrics (hub_metrics_source_t.collect with the
 * runtime as ctx): links, open streams, and the bytes of each tunnel's
 * open public connections. */
void hub_runtime_metrics(void *rt, hub_metrics_snapshot_t *snap, hub_metrics_tunnel_t *tunnels,
                         size_t ntunnels);
/* The port the HTTP edge listens on, -1 when it does not. */
int hub_runtime_http_port(const hub_runtime_t *rt);
/* Sends recorded request `rid` of the workspace again through the HTTP
 * edge (the same routing and policy as any request, a share's basic auth
 * aside: a replay is asked for by an API token of the workspace, and the
 * recorded credentials are masked). Returns at once with the id the
 * replay's record will have in *new_id; the record appears once the
 * response is complete. CN_ENOTFOUND (no such record or tunnel),
 * CN_EINVAL (not replayable: the body was not captured whole), CN_EIO
 * (no edge), each with one line in *why. `ctx` is the runtime. */
int hub_runtime_replay(void *ctx, const char *workspace_id, uint64_t rid, uint64_t *new_id,
                       const char **why);
/* The edge's HTTPS port, -1 when it has none. */
int hub_runtime_https_port(const hub_runtime_t *rt);
/* Agents connected right now. */
unsigned hub_runtime_agents_online(const hub_runtime_t *rt);
/* Closes every link and listener (before the context is destroyed). */
void hub_runtime_stop(hub_runtime_t *rt);
/* Frees the runtime after the context is destroyed. NULL is fine. */
void hub_runtime_free(hub_runtime_t *rt);

#endif
