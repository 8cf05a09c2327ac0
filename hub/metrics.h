/* The hub's metrics: a small registry of counters, fed where things happen
 * (agent links, public connections, the HTTP edge, webhook deliveries), and
 * the Prometheus text rendering of GET /metrics (docs/api.md lists every
 * family).
 *
 * Conventions
 * - Counters only ever grow while the hub runs and start at zero on a
 *   restart (Prometheus handles resets). Gauges (agents, tunnels, links,
 *   open streams, queued deliveries) are not kept here: whoever renders
 *   reads them from the store and the runtime into a snapshot.
 * - Sans-IO: hub_metrics_render() turns the registry and a snapshot into
 *   text, nothing else, so the whole output is unit-tested byte for byte.
 * - Every family is rendered even when nothing happened yet (labelled
 *   families with fixed label values as zeros, the others as HELP/TYPE
 *   only), so dashboards and alerts can name them from the start.
 * - Label cardinality is bounded: per-tunnel bytes carry the tunnel's id and
 *   name (bounded by the tunnel caps), every other label has a fixed set of
 *   values (HTTP status codes: 100-599).
 * - One registry serves one thread (the event loop); nothing is locked.
 * - Every function accepts a NULL registry and then does nothing, so code
 *   paths run the same without metrics (unit tests, tools). */
#ifndef HUB_METRICS_H
#define HUB_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hub_metrics hub_metrics_t;

/* Why an agent link failed before the hub admitted it. */
enum hub_metrics_handshake {
    HUB_HS_TIMEOUT = 0, /* upgrade + channel handshake past the deadline */
    HUB_HS_CHANNEL,     /* Noise handshake failed (wrong keys, bad records) */
    HUB_HS_REFUSED,     /* the hub refused the peer (unknown key, bad enroll token) */
    HUB_HS_WEBSOCKET,   /* WebSocket upgrade or framing failed */
    HUB_HS_OTHER,       /* the connection dropped or misbehaved first */
    HUB_HS_COUNT
};

/* Why the HTTP edge refused a request (or a TCP share a connection). */
enum hub_metrics_share_reject {
    HUB_SHARE_REJ_EXPIRED = 0,
    HUB_SHARE_REJ_REVOKED,
    HUB_SHARE_REJ_METHOD,
    HUB_SHARE_REJ_PATH,
    HUB_SHARE_REJ_RATE_LIMIT,
    HUB_SHARE_REJ_AUTH,
    HUB_SHARE_REJ_COUNT
};

/* The outcome of one webhook delivery attempt. */
enum hub_metrics_delivery {
    HUB_WH_DELIVERED = 0, /* the receiver answered 2xx */
    HUB_WH_FAILED,        /* any other answer, a timeout or no connection */
    HUB_WH_DROPPED,       /* given up without sending (event gone, queue cap) */
    HUB_WH_COUNT
};

/* How tunnel entries reached an agent (docs/agent-protocol.md). */
enum hub_metrics_tunnel_msg {
    HUB_TM_LIST = 0, /* whole lists: hello, tunnels, tunnels_page */
    HUB_TM_STATUS,   /* one tunnel's new status: tunnel_status */
    HUB_TM_DELTA,    /* one tunnel made, changed or deleted: tunnel_upsert, tunnel_remove */
    HUB_TM_COUNT
};

/* Why a public connection (a TCP tunnel's port, the HTTP edge) was
 * refused right after accept() with a reset, before any byte was read. */
enum hub_metrics_refusal {
    HUB_REF_PAUSED = 0,   /* the tunnel is paused */
    HUB_REF_OFFLINE,      /* its agent has no link */
    HUB_REF_HUB_LIMIT,    /* --max-conns */
    HUB_REF_TUNNEL_LIMIT, /* --max-conns-per-tunnel */
    HUB_REF_WS_LIMIT,     /* --max-conns-per-workspace */
    HUB_REF_CLIENT_LIMIT, /* --max-conns-per-client */
    HUB_REF_COUNT
};

/* Label values, for rendering and for tests. Never NULL ("?" out of range). */
const char *hub_metrics_handshake_name(enum hub_metrics_handshake r);
const char *hub_metrics_share_reject_name(enum hub_metrics_share_reject r);
const char *hub_metrics_delivery_name(enum hub_metrics_delivery r);
const char *hub_metrics_tunnel_msg_name(enum hub_metrics_tunnel_msg r);
const char *hub_metrics_refusal_name(enum hub_metrics_refusal r);

/* NULL on allocation failure. */
hub_metrics_t *hub_metrics_new(void);
/* NULL is fine. */
void hub_metrics_free(hub_metrics_t *m);

/* ---- counters (NULL registry: no-op) ----------------------------------- */
void hub_metrics_handshake_failure(hub_metrics_t *m, enum hub_metrics_handshake reason);
/* One answered HTTP request on the edge; statuses outside 100-599 are
 * ignored. */
void hub_metrics_http_request(hub_metrics_t *m, int status);
void hub_metrics_share_rejection(hub_metrics_t *m, enum hub_metrics_share_reject reason);
void hub_metrics_webhook_delivery(hub_metrics_t *m, enum hub_metrics_delivery result);
/* `n` tunnel entries queued to an agent link in messages of kind `how`. */
void hub_metrics_tunnel_entries_sent(hub_metrics_t *m, enum hub_metrics_tunnel_msg how, size_t n);
void hub_metrics_connection_refused(hub_metrics_t *m, enum hub_metrics_refusal reason);
/* Adds the bytes of a finished connection of tunnel `tunnel_id`: `in` came
 * from the public client toward the target, `out` went back to the client.
 * Connections still open are reported in the snapshot instead. */
void hub_metrics_tunnel_bytes(hub_metrics_t *m, const char *tunnel_id, uint64_t in, uint64_t out);

/* ---- rendering ---------------------------------------------------------- */

/* One tunnel as the renderer sees it. Strings are borrowed. */
typedef struct hub_metrics_tunnel {
    const char *id;
    const char *name;
    const char *status;   /* hub_tunnel_status_name() */
    const char *protocol; /* hub_protocol_name() */
    uint64_t live_in;     /* bytes of its connections still open */
    uint64_t live_out;
} hub_metrics_tunnel_t;

/* The gauges, read by the caller right before rendering. */
typedef struct hub_metrics_snapshot {
    size_t agents_connected;    /* enrolled agents with a live link */
    size_t agents_disconnected; /* enrolled agents without one */
    size_t agents_pending;      /* created, not enrolled yet */
    size_t links;               /* live agent links (an agent may hold several) */
    size_t streams_open;        /* multiplexed streams open on all links */
    size_t streams_pooled;      /* of those, idle in the HTTP edge's keep-alive pools */
    size_t webhook_pending;     /* webhook deliveries waiting in the store */
    uint64_t share_log_dropped; /* access-log rows the store's queue dropped (a counter) */
    const hub_metrics_tunnel_t *tunnels;
    size_t ntunnels;
} hub_metrics_snapshot_t;

/* The status and protocol label values of connect_tunnels: rendered as a
 * full grid, zeros included. A tunnel whose status or protocol is not in
 * these lists is counted under its own values. */
extern const char *const hub_metrics_tunnel_statuses[];  /* NULL-terminated */
extern const char *const hub_metrics_tunnel_protocols[]; /* NULL-terminated */

/* Renders the Prometheus text exposition format (version 0.0.4) into a
 * fresh NUL-terminated string (*out, *len; the caller frees it). Byte totals
 * of tunnels absent from the snapshot are forgotten (they were deleted).
 * 0 or CN_ENOMEM. */
int hub_metrics_render(hub_metrics_t *m, const hub_metrics_snapshot_t *snap, char **out,
                       size_t *len);

/* The Content-Type of the rendering. */
#define HUB_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
