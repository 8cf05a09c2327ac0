/* Tunnel lifecycle: every status change goes through here, through the
 * store, and leaves an event. The API (PATCH, create) and the agent
 * endpoint (links coming up and going down) share these functions, and the
 * TTL reaper runs hub_tunnels_expire_due() from a timer.
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

#include "store.h"

/* Moves tunnel `id` to status `to` (recording connectedAt when it becomes
 * active and lastError when `to` is error, clearing it otherwise) and, if
 * that changed anything, records a tunnel.status_changed event whose data
 * carries from, to and `reason`. `out` (may be NULL) gets the tunnel.
 * Errors are the store's. */
int hub_tunnels_set_status(hub_store_t *st, const char *workspace_id, const char *id,
                           enum hub_tunnel_status to, const char *reason, const char *last_error,
                           hub_tunnel_t *out);

/* The status an explicit resume gives: active if the tunnel's agent is
 * online, else connecting. */
int hub_tunnels_resume_status(hub_store_t *st, const hub_tunnel_t *t, enum hub_tunnel_status *out);

/* An agent's authenticated link came up: marks the agent connected,
 * records agent.connected and activates its connecting/error tunnels.
 * Called by the agent endpoint. */
int hub_tunnels_on_agent_online(hub_store_t *st, const char *workspace_id, const char *agent_id);

/* An agent's link went down: marks it disconnected, records
 * agent.disconnected and returns its active tunnels to connecting. */
int hub_tunnels_on_agent_offline(hub_store_t *st, const char *workspace_id, const char *agent_id);

/* Marks every tunnel whose TTL has passed "expired" (with an event each).
 * `count` (may be NULL) gets how many. */
int hub_tunnels_expire_due(hub_store_t *st, size_t *count);

/* At start-up no agent link exists: marks every agent disconnected and
 * every active tunnel connecting (with events). */
int hub_tunnels_reset_links(hub_store_t *st);

/* One observer (the runtime) hears about every change to an agent's
 * tunnels: status changes made here, and creations/deletions the API
 * reports with hub_tunnels_notify(). NULL clears it. */
typedef void (*hub_tunnels_observer_fn)(void *ctx, const char *workspace_id, const char *agent_id);
void hub_tunnels_set_observer(hub_tunnels_observer_fn fn, void *ctx);
void hub_tunnels_notify(const char *workspace_id, const char *agent_id);

/* Whether a live agent link serves tunnel `tunnel_id` right now (the
 * runtime knows; an agent may hold links that serve only some of its
 * tunnels). Without a probe (no runtime, e.g. unit tests) this is
 * `agent_connected`. */
typedef bool (*hub_tunnels_served_fn)(void *ctx, const char *agent_id, const char *tunnel_id);
void hub_tunnels_set_served_probe(hub_tunnels_served_fn fn, void *ctx);
bool hub_tunnels_is_served(const char *agent_id, const char *tunnel_id, bool agent_connected);

#endif
