/* The REST API (/api/v1): routing, bearer-token authentication, per-token
 * rate limits and the handlers of every resource, on top of the store.
 * hub_api_handle() is the http.h handler; everything it does is synchronous
 * on the event-loop thread. */
#ifndef HUB_API_H
#define HUB_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "metrics.h"
#include "secrets.h"
#include "store.h"
#include "tunnels.h"

/* Defaults of `connect-hub serve`. */
#define HUB_API_AUTH_FAIL_RATE_DEFAULT 30 /* 401s per client address per 60 s */
#define HUB_API_RATE_LIMIT_DEFAULT 600    /* requests per token per 60 s */
#define HUB_API_MAX_TUNNELS_DEFAULT 100
#define HUB_API_MAX_AGENTS_DEFAULT 100
/* Tunnels per agent, whatever --max-tunnels allows: the store's own cap
 * (store.h), which every path that makes a tunnel meets. */
#define HUB_API_TUNNELS_PER_AGENT HUB_TUNNELS_PER_AGENT_MAX
#define HUB_API_TCP_PORTS_DEFAULT_LO 20000
#define HUB_API_TCP_PORTS_DEFAULT_HI 29999

/* Who may read GET /metrics (`connect-hub serve --metrics`). */
enum hub_metrics_access {
    HUB_METRICS_LOOPBACK = 0, /* clients on this host only (the default) */
    HUB_METRICS_TOKEN,        /* a bearer token of its own (--metrics-token-file) */
    HUB_METRICS_PUBLIC,       /* anyone who reaches the API port */
};

/* What /metrics reads from the live side: fills links, streams_open and
 * each tunnel's live_in/live_out (snap->tunnels, by id). */
typedef struct hub_metrics_source {
    void (*collect)(void *ctx, hub_metrics_snapshot_t *snap, hub_metrics_tunnel_t *tunnels,
                    size_t ntunnels);
    void *ctx;
} hub_metrics_source_t;

typedef struct hub_api_config {
    /* Public domain for tunnel URLs (NAME.DOMAIN); "localhost" by default. */
    const char *public_domain;
    /* Port in public URLs (0: none, i.e. the scheme's default). */
    uint16_t public_http_port;
    /* URLs on the HTTP edge (publicUrl, shareUrl) use https: and the edge's
     * HTTPS port (hub_api_set_public_tls, once it listens). */
    bool tls;
    /* Range hub ports are allocated from (and requested ones must lie in). */
    uint16_t tcp_port_lo, tcp_port_hi;
    /* Requests per token per 60 s; 0 = unlimited. */
    unsigned rate_limit;
    /* Tunnels per workspace; 0 = unlimited. */
    size_t max_tunnels;
    /* Agents per workspace; 0 = unlimited. */
    size_t max_agents;
    /* Failed authentications (401) per client address per 60 s before the
     * address gets 429 without its token being checked; 0 = unlimited.
     * Also bounds the 401 log lines. */
    unsigned auth_fail_rate;
    /* The hub's public channel key (base64url), shown to agents. */
    char hub_public_key[HUB_KEY_B64_SIZE];
    /* The live side (the runtime): told about every committed change to an
     * agent's tunnels, and asked whether a link serves a tunnel. Zeroed:
     * none (a tunnel counts as served while its agent is connected). */
    hub_live_t live;
    /* The protocol plugins (borrowed; outlives the API) that name tunnel
     * protocols and build connection strings. NULL: the built-ins. */
    const struct plugins *plugins;
    /* Webhooks per workspace; 0 = unlimited. */
    size_t max_webhooks;
    /* GET /metrics: the registry (borrowed; NULL renders zeros), who may
     * read it, the keyed hash of the metrics token (HUB_METRICS_TOKEN;
     * hub_metrics_token_hash()), and the live side's gauges. */
    hub_metrics_t *metrics;
    enum hub_metrics_access metrics_access;
    uint8_t metrics_token_hash[HUB_KEY_BYTES];
    hub_metrics_source_t metrics_source;
    /* Request inspection (inspect.h): the edge's records (borrowed; NULL:
     * the routes answer 404) and the live side's replay
     * (hub_runtime_replay with the runtime as replay_ctx). */
    struct hub_inspect *inspect;
    int (*replay)(void *ctx, const char *workspace_id, uint64_t rid, uint64_t *new_id,
                  const char **why);
    void *replay_ctx;
    /* Time source for rate limits (ms); NULL = hub_time_now_ms. */
    hub_clock_fn clock;
    void *clock_ctx;
} hub_api_config_t;

typedef struct hub_api hub_api_t;

/* `store` is borrowed and must outlive the API; cfg is copied (strings
 * too). NULL on allocation failure. */
hub_api_t *hub_api_new(hub_store_t *store, const hub_api_config_t *cfg);
void hub_api_free(hub_api_t *api);
/* Sets the port shown in public HTTP URLs (known once listening). */
void hub_api_set_public_http_port(hub_api_t *api, uint16_t port);
/* The edge answers TLS on `port`: public URLs say https:// and name it. */
void hub_api_set_public_tls(hub_api_t *api, uint16_t port);
/* Sets the hub's own URL (scheme://HOST:PORT of the API and agent
 * endpoint, known once listening): TCP shares' shareUrl starts with it. */
void hub_api_set_hub_url(hub_api_t *api, const char *url);

/* The hash /metrics compares a presented token with (BLAKE2b-256 of the
 * token; the comparison is constant-time). 0 or CN_EINVAL (shorter than
 * 32 characters). */
int hub_metrics_token_hash(const char *token, uint8_t out[static HUB_KEY_BYTES]);

/* The hub_http_handler_fn: `ctx` is the hub_api_t. */
void hub_api_handle(void *ctx, const hub_http_req_t *req, hub_http_resp_t *resp);

#endif
