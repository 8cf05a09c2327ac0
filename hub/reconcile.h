/* Which status each tunnel should have, decided in one pure function: no
 * store, no lws, no clock of its own. Inputs are the tunnels (status, the
 * pause being one, expiry), the live links of their agents and what each
 * serves, and now; the output is the wanted status per tunnel with the
 * reason that names the change. tunnels.c applies the verdict through the
 * store; the runtime feeds it its links.
 *
 * Rules (docs/agent-protocol.md, tunnels.h)
 * - "expired" is final; a tunnel whose expiry has passed becomes expired,
 *   paused or not ("ttl").
 * - "paused" stays paused: only an explicit resume leaves it (the caller
 *   then asks with status "connecting").
 * - A tunnel served by at least one live link of its agent is "active"
 *   ("agent online"), coming from connecting or error.
 * - Served by none: "active" goes back to "connecting" ("agent offline");
 *   "connecting" and "error" stay as they are. */
#ifndef HUB_RECONCILE_H
#define HUB_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* One live link of an agent. Borrowed strings. */
typedef struct hub_reconcile_link {
    const char *agent_id;
    bool serve_all;                    /* serves every tunnel of its agent */
    const char (*served)[HUB_ID_SIZE]; /* else these tunnel ids */
    size_t nserved;
} hub_reconcile_link_t;

/* One tunnel as the reconciler sees it. Borrowed strings. */
typedef struct hub_reconcile_tunnel {
    const char *id;
    const char *agent_id;
    enum hub_tunnel_status status;
    int64_t expires_at; /* HUB_TIME_NONE: no TTL */
} hub_reconcile_tunnel_t;

typedef struct hub_reconcile_verdict {
    enum hub_tunnel_status status; /* wanted */
    const char *reason;            /* static text; NULL when status is unchanged */
} hub_reconcile_verdict_t;

/* Whether any of `links` serves the tunnel of `agent_id`. */
bool hub_reconcile_served(const char *agent_id, const char *tunnel_id,
                          const hub_reconcile_link_t *links, size_t nlinks);

/* The wanted status of one tunnel, given whether a live link serves it. */
hub_reconcile_verdict_t hub_reconcile_one(const hub_reconcile_tunnel_t *t, bool served,
                                          int64_t now);

/* The wanted status of each of `n` tunnels into out[0..n). */
void hub_reconcile(const hub_reconcile_tunnel_t *tunnels, size_t n,
                   const hub_reconcile_link_t *links, size_t nlinks, int64_t now,
                   hub_reconcile_verdict_t *out);

#endif
