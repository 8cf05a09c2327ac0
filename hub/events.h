/* Lifecycle events: the one place that records them and renders them for
 * the API. Recording one also queues its webhook deliveries (the store does
 * that in the same transaction, store.h). */
#ifndef HUB_EVENTS_H
#define HUB_EVENTS_H

#include <stdbool.h>

#include <jansson.h>

#include "store.h"

#define HUB_EV_TUNNEL_CREATED "tunnel.created"
#define HUB_EV_TUNNEL_UPDATED "tunnel.updated"
#define HUB_EV_TUNNEL_DELETED "tunnel.deleted"
#define HUB_EV_TUNNEL_STATUS "tunnel.status_changed"
#define HUB_EV_AGENT_CREATED "agent.created"
#define HUB_EV_AGENT_DELETED "agent.deleted"
#define HUB_EV_AGENT_CONNECTED "agent.connected"
#define HUB_EV_AGENT_DISCONNECTED "agent.disconnected"
#define HUB_EV_SHARE_CREATED "share.created"
#define HUB_EV_SHARE_REVOKED "share.revoked"
#define HUB_EV_SHARE_EXPIRED "share.expired"
#define HUB_EV_WEBHOOK_DISABLED "webhook.disabled"

/* Every event type the hub records (NULL-terminated): what a webhook's
 * filter may name. */
extern const char *const hub_event_types[];
/* Whether `type` is one of them. */
bool hub_event_type_known(const char *type);

/* Appends an event; `data` (a JSON object, may be NULL) is consumed.
 * `tunnel_id` / `agent_id` may be NULL. Record it inside the transaction
 * of the change it describes (hub_store_tx_begin/end) and hand a failure
 * to hub_store_tx_end(): the change and its event are kept together or
 * not at all. 0 or a store error (also logged here). */
int hub_event_record(hub_store_t *st, const char *workspace_id, const char *type,
                     const char *tunnel_id, const char *agent_id, json_t *data);

/* {id, type, tunnelId, agentId, data, createdAt}; NULL on allocation
 * failure. */
json_t *hub_event_to_json(const hub_event_t *e);

/* How long events are kept. 0 in a field = no limit of that kind. */
typedef struct hub_event_retention {
    unsigned days;     /* drop events older than this */
    size_t max_per_ws; /* keep at most this many per workspace, newest first */
} hub_event_retention_t;
#define HUB_EVENT_RETENTION_DAYS_DEFAULT 30
#define HUB_EVENT_MAX_DEFAULT 100000
/* How often the hub applies it (and once at start). */
#define HUB_EVENT_PRUNE_PERIOD_MS (10 * 60 * 1000)

/* Applies the retention now (the store's clock): age first, then the cap.
 * *pruned (optional) gets the events dropped. 0 or a store error. */
int hub_event_retain(hub_store_t *st, const hub_event_retention_t *r, size_t *pruned);

/* An ISO-8601 string, or JSON null for HUB_TIME_NONE. */
json_t *hub_json_time(int64_t ms);

#endif
