/* The webhook delivery worker: takes queued deliveries from the store and
 * POSTs them, signed, with lws's HTTP client on the hub's event loop.
 *
 * - Never blocks the loop: connections are lws client connections to an
 *   address, and host names are resolved off the loop (getaddrinfo_a) and
 *   polled; the store is the hub's usual synchronous, local SQLite.
 * - Never loses a delivery: the queue is the store's (store.h, webhooks).
 *   An attempt cut short by a crash is simply pending again after a restart,
 *   so delivery is at least once; receivers deduplicate on
 *   X-Connect-Delivery (or the event id in the body).
 * - Per webhook one attempt at a time, oldest delivery first; a failed
 *   attempt delays the webhook by hub_webhook_retry_delay() and after
 *   `disable_after` consecutive failures disables it (a webhook.disabled
 *   event in the same transaction, and a warning in the log).
 * - Every attempt is bounded by `timeout_ms` from start (resolution,
 *   connection, request and response) and counted in the metrics.
 *
 * Lifecycle: new -> start (on the running context, from the loop thread)
 * -> stop (before the context is destroyed) -> free (after). */
#ifndef HUB_WEBHOOKS_H
#define HUB_WEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "store.h"

struct lws_context;

#define HUB_WEBHOOK_TIMEOUT_MS_DEFAULT 10000u
#define HUB_WEBHOOK_IN_FLIGHT_MAX 16u
#define HUB_WEBHOOKS_PER_WORKSPACE 20u
/* Finished deliveries kept per webhook in its log, and pending ones at most
 * (older pending ones are dropped when a receiver stays down that long). */
#define HUB_WEBHOOK_LOG_KEEP 1000u
#define HUB_WEBHOOK_QUEUE_MAX 10000u

typedef struct hub_webhooks hub_webhooks_t;

typedef struct hub_webhooks_config {
    hub_store_t *store;     /* borrowed; outlives the worker */
    hub_metrics_t *metrics; /* borrowed; NULL = none */
    uint32_t retry_base_ms; /* 0 = HUB_WEBHOOK_RETRY_BASE_MS */
    unsigned disable_after; /* 0 = HUB_WEBHOOK_DISABLE_AFTER */
    uint32_t timeout_ms;    /* 0 = HUB_WEBHOOK_TIMEOUT_MS_DEFAULT */
} hub_webhooks_config_t;

/* NULL on allocation failure. */
hub_webhooks_t *hub_webhooks_new(const hub_webhooks_config_t *cfg);
/* Creates the worker's client vhost on `ctx` and starts polling the queue.
 * 0 or CN_ENOMEM / CN_EIO. */
int hub_webhooks_start(hub_webhooks_t *wh, struct lws_context *ctx);
/* Abandons attempts in flight (they stay pending in the store) and stops
 * the timer. NULL is fine. */
void hub_webhooks_stop(hub_webhooks_t *wh);
/* After the context is destroyed. NULL is fine. */
void hub_webhooks_free(hub_webhooks_t *wh);

#endif
