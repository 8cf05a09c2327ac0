/* Tunnel lifecycle: every status change goes through here, through the
 * store, and leaves an event in the same transaction. The API (PATCH,
 * create) and the agent endpoint (links coming up and going down) share
 * these functions, and the TTL reaper runs hub_tunnels_expire_due() from a
 * timer.
 *
 * Status rules
 * - A new tunnel is "connecting" until its agent is online, then "active".
 * - "paused" is only left by an explicit resume (status "active"), which
 *   gives "active" when the agent is online and "connecting" otherwise.
 * - "expired" is final (the tunnel stays listed until deleted).
 * - When an agent goes offline its active tunnels go back to "connecting";
 *   when it comes online its connecting and error tunnels become active. */
#ifndef HUB_TUNNELS_H
#define HUB_TUNNELS_H

#include <stdbool.h>
#include <stddef.h>

#include "reconcile.h"
#include "store.h"

/* What the lifecycle needs from the live side (the runtime: agent links,
 * listeners), handed in explicitly by whoever calls it. A zeroed value or
 * NULL means no live side (unit tests, start-up). */
typedef struct hub_live {
    /* Hears about every committed change to an agent's tunnels (created,
     * deleted, renamed, status): the runtime reconciles that agent. */
    void (*changed)(void *ctx, const char *workspace_id, const char *agent_id);
    /* Whether a live agent link serves the tunnel right now (an agent may
     * hold links that serve only some of its tunnels). */
    bool (*served)(void *ctx, const char *agent_id, const char *tunnel_id);
    /* Hears about a committed change of one tunnel's status alone (`t` as
     * it now is, borrowed): the runtime brings that tunnel alone in line,
     * and its agent's links get the new status rather than the whole list
     * again. NULL: `changed` for the tunnel's agent instead. */
    void (*tunnel_status)(void *ctx, const hub_tunnel_t *t);
    /* Hears about one tunnel made, edited or resumed (`t` as it now is) or
     * deleted (`t` NULL), committed: the runtime brings that tunnel alone
     * in line, and its agent's links get that one entry (tunnel_upsert,
     * tunnel_remove) rather than the whole list again, at once. Strings
     * and `t` are borrowed. NULL: `changed` for the agent instead. */
    void (*tunnel_changed)(void *ctx, const char *workspace_id, const char *agent_id,
                           const char *tunnel_id, const hub_tunnel_t *t);
    /* Hears about the statuses that changed together as a link of the
     * agent came up or went (`moved`: those tunnels as they now are,
     * borrowed; at least one): the agent's links get those statuses alone
     * (tunnel_status) rather than the whole list again. NULL: `changed`. */
    void (*statuses_changed)(void *ctx, const char *workspace_id, const char *agent_id,
                             const hub_tunnel_list_t *moved);
    void *ctx;
} hub_live_t;

/* Tells the live side (if any) that the agent's tunnels changed. Call it
 * after the change committed. */
void hub_live_changed(const hub_live_t *live, const char *workspace_id, const char *agent_id);
/* Tells the live side (if any) that tunnel `t`'s status alone changed
 * (hub_live_t.tunnel_status, else .changed). Call it after the change
 * committed. */
void hub_live_tunnel_status(const hub_live_t *live, const hub_tunnel_t *t);
/* Tells the live side (if any) that tunnel `tunnel_id` of the agent was
 * made or edited (`t` as it now is) or deleted (`t` NULL):
 * hub_live_t.tunnel_changed, else .changed. Call it after the change
 * committed. */
void hub_live_tunnel_changed(const hub_live_t *live, const char *workspace_id, const char *agent_id,
                             const char *tunnel_id, const hub_tunnel_t *t);
/* Whether a live link serves the tunnel; without a live side, whether the
 * agent is connected (`agent_connected`). */
bool hub_live_served(const hub_live_t *live, const char *agent_id, const char *tunnel_id,
                     bool agent_connected);

/* Moves tunnel `id` to status `to` (recording connectedAt when it becomes
 * active and lastError when `to` is error, clearing it otherwise) and, if
 * that changed anything, records a tunnel.status_changed event whose data
 * carries from, to and `reason`, in one transaction (nested in the
 * caller's when one is open). `out` (may be NULL) gets the tunnel;
 * `changed` (may be NULL) whether the status changed. It tells no live
 * side: the caller does, once its transaction committed. Errors are the
 * store's. */
int hub_tunnels_set_status(hub_store_t *st, const char *workspace_id, const char *id,
                           enum hub_tunnel_status to, const char *reason, const char *last_error,
                           hub_tunnel_t *out, bool *changed);

/* The status an explicit resume gives: active if a live link serves the
 * tunnel, else connecting. */
int hub_tunnels_resume_status(hub_store_t *st, const hub_live_t *live, const hub_tunnel_t *t,
                              enum hub_tunnel_status *out);

/* Brings the agent in line with its live links (`links`, nlinks of them;
 * NULL/0: none): its connected flag (with agent.connected or
 * agent.disconnected when it flips) and every tunnel's status as
 * hub_reconcile decides (with a tunnel.status_changed each), in one
 * transaction; then tells the live side the statuses that changed
 * (hub_live_t.statuses_changed, else .changed once). The runtime
 * calls it whenever one of the agent's links comes up or goes down. */
int hub_tunnels_reconcile_agent(hub_store_t *st, const hub_live_t *live, const char *workspace_id,
                                const char *agent_id, const hub_reconcile_link_t *links,
                                size_t nlinks);

/* hub_tunnels_reconcile_agent() with one link serving all the agent's
 * tunnels: marks the agent connected (agent.connected) and activates its
 * connecting/error tunnels. */
int hub_tunnels_on_agent_online(hub_store_t *st, const hub_live_t *live, const char *workspace_id,
                                const char *agent_id);

/* hub_tunnels_reconcile_agent() with no link: marks the agent
 * disconnected (agent.disconnected) and returns its active tunnels to
 * connecting. */
int hub_tunnels_on_agent_offline(hub_store_t *st, const hub_live_t *live, const char *workspace_id,
                                 const char *agent_id);

/* Marks every tunnel whose TTL has passed "expired" (with an event each,
 * each in its own transaction) and tells the live side of each one alone
 * (hub_live_tunnel_status): N tunnels of one agent expiring together cost
 * its links N status messages, not N whole lists (N^2 entries). `count`
 * (may be NULL) gets how many. */
int hub_tunnels_expire_due(hub_store_t *st, const hub_live_t *live, size_t *count);

/* At start-up no agent link exists: marks every agent disconnected and
 * every active tunnel connecting (with events), in one transaction. */
int hub_tunnels_reset_links(hub_store_t *st);

#endif
