/* Private to the hub's live side (runtime.c, agents.c, edge_tcp.c): the
 * runtime's state and the calls its parts make on each other. Everything
 * runs on the lws service thread. */
#ifndef HUB_RUNTIME_INTERNAL_H
#define HUB_RUNTIME_INTERNAL_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

#include "cn_link.h"
#include "metrics.h"
#include "runtime.h"
#include "store.h"

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
    /* A share redeemer (`connect reach SHARE_URL`), not an agent: agent_id
     * holds the share's id, the link may only open reach streams to
     * share_tunnel, and only while the share is live (edge_reach.c). */
    int share;
    char share_tunnel[HUB_ID_SIZE];
    size_t nserved;
    char served[MAX_SERVED][HUB_ID_SIZE];
    /* The tunnel list is due again (agents.c): changes in a burst send one
     * list, and one that found the link's queue full is sent again. */
    int list_due;
    lws_sorted_usec_list_t sul_list;
    /* A message to this link found its queue full since the last whole
     * list went (agents.c, lost()): the agent's allow-list may still hold a
     * tunnel the hub deleted, so a tunnel_upsert could take it over
     * AGENT_ALLOWLIST_MAX. Until a whole list has gone, an upsert is sent
     * as the whole list. */
    int behind;
    /* The agent takes tunnel_status messages (its handshake payload said
     * "tunnelStatus":true); else every change sends the whole list. */
    int tunnel_status;
    /* Likewise tunnel_upsert and tunnel_remove ("tunnelDelta":true). */
    int tunnel_delta;
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
    unsigned idle_timeout_s; /* the tunnel's, else the hub's; 0 = never */
    struct conn *conn_head;  /* its live public connections */
} listener_t;

/* One open public connection (edge_tcp.c), on its listener's list: the
 * caps count these, pause or delete of its tunnel aborts them, and the
 * metrics read their live byte counts. */
typedef struct conn {
    struct conn *next, *prev;
    hub_runtime_t *rt;
    listener_t *l; /* NULL once its listener is gone */
    struct cn_pipe *pipe;
    char tunnel_id[HUB_ID_SIZE];
    char client[CN_LINK_ADDR_KEY_SIZE]; /* address key (IPv6: /64) */
} conn_t;

struct hub_edge_http;
struct hub_relay;
struct cn_udp_listener;

/* One public UDP port (edge_udp.c): owned by the runtime's list; its
 * cn_udp listener frees itself once closed. */
typedef struct udp_port {
    struct udp_port *next;
    hub_runtime_t *rt;
    struct cn_udp_listener *l;
    char tunnel_id[HUB_ID_SIZE];
    char agent_id[HUB_ID_SIZE];
    uint16_t port;
    int paused;
} udp_port_t;

/* One reach stream relayed between two agents (edge_reach.c): owned by the
 * runtime's list, freed when its relay is done. */
typedef struct reach {
    struct reach *next;
    hub_runtime_t *rt;
    struct hub_relay *relay;
    char tunnel_id[HUB_ID_SIZE];
    char to_agent[HUB_ID_SIZE];   /* the exposing agent */
    char from_agent[HUB_ID_SIZE]; /* the reaching agent (or share id) */
    char share_id[HUB_ID_SIZE];   /* "" unless redeemed through a share */
} reach_t;

struct reach_share_window;
struct hub_share_cache;

struct hub_runtime {
    hub_runtime_config_t cfg;
    char *tcp_host;
    char *public_domain;
    struct hub_edge_http *edge; /* edge_http.c's state */
    struct lws_context *ctx;
    struct lws_vhost *vh;
    cn_link_server_t *links;
    cn_mux_callbacks_t mux_cb;
    session_t *sessions;
    listener_t *listeners;
    reach_t *reaches;
    struct reach_share_window *share_windows; /* TCP shares' new connections per minute */
    /* The edges' per-request reads of shares and tunnels (share_cache.h). */
    struct hub_share_cache *cache;
    udp_port_t *udp_ports;
    unsigned online;
    unsigned conns;
    /* Public connections refused since the last log line, and its time (ms),
     * per reason (edge_tcp.c's refusal reasons). */
    uint64_t refused[HUB_REF_COUNT];
    uint64_t refused_log_at[HUB_REF_COUNT];
};

/* ---- runtime.c ---- */

/* The tunnel `id` of `list` (NULL list allowed), or NULL. */
const hub_tunnel_t *hub_tunnel_list_find(const hub_tunnel_list_t *list, const char *id);
/* hub_runtime_agent_changed() for a change of one tunnel's status alone
 * (a health verdict, an agent's refusal, a port that cannot be bound, the
 * TTL reaper's expiry, a pause; not a resume, which the API sends as the
 * whole entry, hub_runtime_tunnel_changed),
 * `t` as it now is (borrowed): the agent's links get only its new status
 * when they take it (hub_agents_tunnel_status), and the edges are synced
 * for that tunnel alone (an expired tunnel's port and pooled streams
 * close). Reaches end only on a delete, so they have nothing to do here. */
void hub_runtime_tunnel_status_changed(hub_runtime_t *rt, const hub_tunnel_t *t);
/* hub_runtime_agent_changed() for one tunnel made, edited or resumed (`t`
 * as it now is) or deleted (`t` NULL), all borrowed: the agent's links
 * get that entry alone when they take it (hub_agents_tunnel_delta), and
 * the edges and reaches are synced for that tunnel alone. */
void hub_runtime_tunnel_changed(hub_runtime_t *rt, const char *ws, const char *agent_id,
                                const char *tunnel_id, const hub_tunnel_t *t);
/* hub_runtime_agent_changed() for statuses changed together as a link of
 * the agent came up or went (`moved`, borrowed): the agent's links get
 * those statuses alone when they take them (hub_agents_statuses). */
void hub_runtime_statuses_changed(hub_runtime_t *rt, const char *ws, const char *agent_id,
                                  const hub_tunnel_list_t *moved);
/* The public port of tunnel `t` (borrowed) cannot be bound (`why`): moves
 * the tunnel to error with that lastError (reason "port unavailable") and
 * tells its agent's links that status alone; a paused tunnel stays paused. Safe from inside an
 * edge's sync: in error the edges do not try the port again. */
void hub_runtime_port_unavailable(hub_runtime_t *rt, const hub_tunnel_t *t, const char *why);

/* ---- agents.c: the agent endpoint and the registry of links ---- */

/* Creates the link server (the /agent endpoint) into rt->links. 0 or a
 * CN_E* code. */
int hub_agents_init(hub_runtime_t *rt);
/* The newest live link of the agent that serves the tunnel (tunnel_id
 * NULL: any link of the agent); NULL if none. */
session_t *hub_agents_route(hub_runtime_t *rt, const char *agent_id, const char *tunnel_id);
/* Tells the agent's links about a change: closes them when the agent is
 * `gone`, else pushes the agent's current tunnels (the whole list: for a
 * change of many tunnels at once; one tunnel's goes by
 * hub_agents_tunnel_delta or hub_agents_tunnel_status). */
void hub_agents_changed(hub_runtime_t *rt, const char *ws, const char *agent_id, bool gone);
/* Tells the agent's links one tunnel's new status: a tunnel_status message
 * to a link that said it takes them (handshake "tunnelStatus"), the whole
 * list to any other (docs/agent-protocol.md). */
void hub_agents_tunnel_status(hub_runtime_t *rt, const char *agent_id, const char *tunnel_id,
                              enum hub_tunnel_status status);
/* Tells the agent's links one tunnel made or edited (`t`) or deleted (`t`
 * NULL): a tunnel_upsert or tunnel_remove at once to a link that said it
 * takes them (handshake "tunnelDelta"), the whole list at once to any
 * other (docs/agent-protocol.md). */
void hub_agents_tunnel_delta(hub_runtime_t *rt, const char *agent_id, const char *tunnel_id,
                             const hub_tunnel_t *t);
/* Tells the agent's links the statuses of `moved` (changed together): a
 * tunnel_status each to a link that takes them, the whole list at once to
 * any other. */
void hub_agents_statuses(hub_runtime_t *rt, const char *agent_id, const hub_tunnel_list_t *moved);
/* Whether a live link serves the tunnel (`ctx` is the runtime). */
bool hub_agents_served_probe(void *ctx, const char *agent_id, const char *tunnel_id);
/* Closes every link (shutdown); frees sessions lws never closed. */
void hub_agents_close_all(hub_runtime_t *rt);
void hub_agents_free_all(hub_runtime_t *rt);

/* ---- edge_tcp.c: public TCP listeners ---- */

/* The lws protocol the listeners are adopted into. */
extern const struct lws_protocols hub_edge_tcp_protocol;
/* Opens a listener for every tunnel of the list that wants one and has
 * none (start-up). */
void hub_edge_tcp_open_all(hub_runtime_t *rt, const hub_tunnel_list_t *list);
/* Brings the agent's listeners in line with its tunnels (`list`): closes
 * those whose tunnel is gone or changed, updates pauses, opens new ones.
 * `only` NULL: `list` is all of the agent's tunnels; else it is the one
 * tunnel `only` names and the agent's other listeners stay as they are
 * (so does the `only` of the other edges' syncs). */
void hub_edge_tcp_sync_agent(hub_runtime_t *rt, const char *agent_id, const hub_tunnel_list_t *list,
                             const char *only);
/* Closes every listener (shutdown); frees listeners lws never closed. */
void hub_edge_tcp_close_all(hub_runtime_t *rt);
/* Public connections open to the workspace's tunnels. */
unsigned hub_edge_tcp_ws_conns(const hub_runtime_t *rt, const char *workspace_id);
/* Both edges: a peer's address as text and port; closing a socket with an
 * RST (SO_LINGER 0) so that a refused client never hangs. */
struct sockaddr_storage;
void hub_edge_peer(const struct sockaddr_storage *ss, char *ip, size_t iplen, int *port);
void hub_edge_refuse(int fd);
/* Refuses public connection `fd` (hub_edge_refuse) for `reason`: counted
 * in /metrics, and logged at most once a second per reason with the count
 * since the last line (refusals come in floods). `what` names where it
 * came ("tunnel ID", "http edge") and `client` who ("IP:PORT"). */
void hub_edge_refuse_counted(hub_runtime_t *rt, int fd, enum hub_metrics_refusal reason,
                             const char *what, const char *client);
void hub_edge_tcp_free_all(hub_runtime_t *rt);

/* ---- edge_http.c: the public HTTP edge and shares' data path ---- */

/* The lws protocols of the edge's listener and its client connections. */
extern const struct lws_protocols hub_edge_http_listen_protocol;
extern const struct lws_protocols hub_edge_http_conn_protocol;
/* The client end of replays (hub_runtime_replay): reads and drops. */
extern const struct lws_protocols hub_edge_http_sink_protocol;
/* Allocates the edge's state into rt->edge. 0 or CN_ENOMEM. */
int hub_edge_http_init(hub_runtime_t *rt);
/* Opens the listener (unless cfg.http_port < 0) and starts the periodic
 * work (access-log batches, share expiry sweep). 0 or CN_EIO. */
int hub_edge_http_start(hub_runtime_t *rt);
int hub_edge_http_port(const hub_runtime_t *rt);
/* The HTTPS port (TLS), -1 when the edge serves none. */
int hub_edge_http_tls_port(const hub_runtime_t *rt);
/* Closes the listener and every client connection; flushes the log. */
void hub_edge_http_close_all(hub_runtime_t *rt);
void hub_edge_http_free(hub_runtime_t *rt);
/* Drops the idle keep-alive streams of the agent's tunnels that left
 * `list`, were paused or expired, or changed (a PATCH): a pooled stream
 * belongs to the tunnel as it was. */
void hub_edge_http_sync_agent(hub_runtime_t *rt, const char *agent_id,
                              const hub_tunnel_list_t *list, const char *only);
/* Idle keep-alive streams in the edge's pools (/metrics). */
size_t hub_edge_http_pooled(const hub_runtime_t *rt);
/* ---- edge_udp.c: public UDP ports ---- */

/* Opens a UDP port for every public UDP tunnel of the list (start-up). */
void hub_edge_udp_open_all(hub_runtime_t *rt, const hub_tunnel_list_t *list);
/* Brings the agent's UDP ports in line with its tunnels: closes those of
 * tunnels gone or changed, ends the flows of paused ones, opens new ones. */
void hub_edge_udp_sync_agent(hub_runtime_t *rt, const char *agent_id, const hub_tunnel_list_t *list,
                             const char *only);
/* Closes every UDP port (shutdown); frees what the context left. */
void hub_edge_udp_close_all(hub_runtime_t *rt);
void hub_edge_udp_free_all(hub_runtime_t *rt);

/* ---- edge_reach.c: reach streams between agents ---- */

/* An agent (session `s`) opened stream `id` of kind CN_KIND_RELAY naming a
 * tunnel: checks workspace, status and the exposing agent's link, then
 * relays, or refuses the stream at once with one log line. */
void hub_reach_open(hub_runtime_t *rt, session_t *s, uint32_t id, const uint8_t *ref,
                    size_t ref_len);
/* Ends the reaches of the agent's tunnels that left `list` (deleted);
 * `only` as for hub_edge_tcp_sync_agent(). */
void hub_reach_sync_agent(hub_runtime_t *rt, const char *agent_id, const hub_tunnel_list_t *list,
                          const char *only);
/* The link is closing: reaches still waiting on it let go of it. */
void hub_reach_link_down(hub_runtime_t *rt, cn_link_t *link);
/* Frees what is left after the links died with the context. */
void hub_reach_free_all(hub_runtime_t *rt);
/* Admits a share redeemer's link: `token` names a live share of a TCP
 * tunnel. Fills s (share, agent_id = the share id, workspace, tunnel). 0 or
 * CN_EREFUSED (logged without the token). */
int hub_reach_share_admit(hub_runtime_t *rt, session_t *s, const char *token);
/* Ends what revoked or expired shares still hold: their open reach streams
 * are reset and their redeemers' links closed. Called every second. */
void hub_reach_share_sweep(hub_runtime_t *rt);

#endif
