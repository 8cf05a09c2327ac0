/* The hub's network side: one lws context (default poll loop) with one
 * vhost on the listen address that serves the REST API over HTTP/1.1 and,
 * on the same port, WebSocket upgrades for protocols appended to its
 * protocols array (built in one place, server.c). Also the periodic
 * timers (TTL expiry, event retention). Everything runs on the thread that calls
 * hub_server_run(). */
#ifndef HUB_SERVER_H
#define HUB_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "events.h"
#include "runtime.h"
#include "secrets.h"
#include "store.h"
#include "webhooks.h"

/* How often the TTL reaper looks for expired tunnels. */
#define HUB_SERVER_EXPIRY_PERIOD_MS 1000
/* New connections per client address (IPv6: per /64) per minute on the
 * API/agent port: a CLI or an agent opens a few; 600 with GCRA's burst
 * leaves any script room while one address cannot churn sockets. */
#define HUB_SERVER_CONN_RATE_DEFAULT 600

typedef struct hub_server_config {
    const char *listen_host; /* IP literal */
    uint16_t listen_port;    /* 0: the kernel picks; see hub_server_port() */
    const char *tls_cert;    /* both or neither */
    const char *tls_key;
    hub_event_retention_t retention; /* applied at start and every HUB_EVENT_PRUNE_PERIOD_MS */
    hub_store_t *store;              /* borrowed, outlives the server */
    hub_api_t *api;                  /* borrowed, outlives the server */
    /* The agent endpoint and public TCP edge, whose protocols the vhost
     * serves. Borrowed; freed by the caller after hub_server_free(). */
    hub_runtime_t *runtime;
    /* New connections per address per minute (0 = unlimited): over it the
     * connection is reset at accept, before lws sees a byte. */
    unsigned conn_rate;
    /* The loop lws runs on (cn_loop.h): epoll (libev, the default), uv
     * (libuv) or lws's poll(), which scans every descriptor on every turn,
     * so idle connections slow the busy ones (docs/performance.md). */
    int event_loop; /* cn_loop_kind_t */
    /* Microseconds a turn keeps checking for events before it sleeps
     * (cn_loop_set_busy_poll); 0 = never. */
    unsigned busy_poll_us;
    /* The webhook delivery worker, started on the context and stopped
     * before it is destroyed. Borrowed; NULL = none. */
    hub_webhooks_t *webhooks;
} hub_server_config_t;

typedef struct hub_server hub_server_t;

/* Creates the context and the listening vhost. NULL on failure with one
 * line in `err`. */
hub_server_t *hub_server_new(const hub_server_config_t *cfg, char *err, size_t errlen);
/* The port actually listened on. */
int hub_server_port(const hub_server_t *s);
/* Services the loop until *stop becomes non-zero. */
int hub_server_run(hub_server_t *s, volatile sig_atomic_t *stop);
/* Wakes hub_server_run() (lws_cancel_service); safe from a signal handler
 * or another thread. */
void hub_server_wake(hub_server_t *s);
/* Cancels timers and destroys the context. NULL is fine. */
void hub_server_free(hub_server_t *s);

#endif
