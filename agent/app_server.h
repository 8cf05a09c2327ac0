/* The core of `connect app-server`, the local control plane for
 * process-owned tunnels (contract: "Local app-server", shaped like
 * Portr's). Sans-IO: requests, results from the tunnels' workers and a
 * clock go in; answers, actions for the glue, events and callback
 * deliveries come out. cmd_app_server.c is the glue (lws HTTP server,
 * worker threads, callback POSTs).
 *
 * Conventions
 * - Ownership: everything passed in is borrowed for the call; JSON handed
 *   out (as_answer_t.body, as_tunnel_json) belongs to the caller.
 * - Errors: answers carry {"message": "..."} with 400, 401, 404, 405 or
 *   500; functions return 0 or a negative CN_E* code.
 * - Threading: one thread (the glue's loop thread) owns an as_server_t.
 * - Clock: `wall_ms` (Unix ms) stamps what leaves the process; `mono_ms`
 *   schedules callback retries. Both are arguments, never read here.
 *
 * Tunnel statuses: starting (created, link not serving yet), running,
 * unhealthy (link down and reconnecting, or the hub puts the tunnel in
 * error, e.g. a failed target probe), failed (cannot go on: gone or
 * expired on the hub, the link refused), stopped (shut down here). Events:
 * started (first running), unhealthy, reconnected (running again),
 * failed, stopped (the worker ended and the hub tunnel is deleted). */
#ifndef AGENT_APP_SERVER_H
#define AGENT_APP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cn_id.h"

typedef struct as_server as_server_t;

#define AS_MAX_BODY (64 * 1024)   /* request bodies; more is answered 413 by the glue */
#define AS_MAX_TUNNELS 64         /* live tunnels at once */
#define AS_EVENTS_MAX 1000        /* the event ring: the oldest go first */
#define AS_CALLBACK_URLS_MAX 8    /* callback_url + callback_urls of one tunnel */
#define AS_CALLBACK_URL_MAX 2048  /* bytes of one callback URL */
#define AS_CALLBACK_ATTEMPTS 5    /* one delivery and four retries */
#define AS_CALLBACK_BASE_MS 1000  /* retry backoff: about 1, 2, 4, 8 s */
#define AS_CALLBACK_QUEUE_MAX 256 /* deliveries waiting; beyond, the oldest is dropped */

typedef enum as_status {
    AS_STARTING = 0,
    AS_RUNNING,
    AS_UNHEALTHY,
    AS_FAILED,
    AS_STOPPED,
} as_status_t;

const char *as_status_name(as_status_t s);

typedef struct as_config {
    const char *token; /* NULL or "": no bearer token required (copied) */
} as_config_t;

/* NULL when out of memory. */
as_server_t *as_new(const as_config_t *cfg);
/* Frees everything (NULL ok) and wipes the token. */
void as_free(as_server_t *as);

/* ---- requests ------------------------------------------------------------ */

typedef struct as_request {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* decoded path without the query */
    const char *tunnel_id_arg; /* ?tunnel_id= value, or NULL */
    const char *authorization; /* the raw header, or NULL */
    const char *body;          /* may be NULL when body_len is 0 */
    size_t body_len;
} as_request_t;

/* What the glue must do after an answer. */
typedef enum as_action {
    AS_ACT_NONE = 0,
    AS_ACT_START, /* start a worker for `tunnel_id` (as_tunnel_spec); the answer is deferred */
    AS_ACT_STOP,  /* stop the worker for `tunnel_id` and delete its hub tunnel */
} as_action_t;

typedef struct as_answer {
    int status;        /* 0 when deferred (AS_ACT_START) */
    json_t *body;      /* owned; NULL when deferred */
    const char *allow; /* Allow header for 405 (static), else NULL */
    as_action_t action;
    char tunnel_id[CN_ID_UUID_SIZE];
} as_answer_t;

/* Answers one complete request. Never fails: out of memory becomes a 500
 * without a body (the glue writes a static one). */
void as_handle(as_server_t *as, const as_request_t *req, int64_t wall_ms, as_answer_t *out);
/* Releases an answer's body. */
void as_answer_clear(as_answer_t *a);

/* What a worker needs to create the hub tunnel (borrowed from the server,
 * valid until the tunnel is forgotten). */
typedef struct as_tunnel_spec {
    const char *id;
    const char *name; /* NULL: the hub generates one */
    bool http;        /* else tcp */
    const char *host;
    uint16_t port;
} as_tunnel_spec_t;
/* 0 with *spec, or CN_ENOTFOUND. */
int as_tunnel_spec(const as_server_t *as, const char *id, as_tunnel_spec_t *spec);

/* ---- results from workers ------------------------------------------------- */

/* The hub created the tunnel: the deferred create answer (201 and the
 * tunnel) goes in *out. `url` and `remote_port` (0: none) as the hub says. */
void as_tunnel_created(as_server_t *as, const char *id, const char *hub_id, const char *url,
                       int remote_port, int64_t wall_ms, as_answer_t *out);
/* The hub refused or could not be reached: the deferred answer (400 when
 * the hub found the request invalid, else 500, with `why`) goes in *out and
 * the tunnel is forgotten. */
void as_tunnel_create_failed(as_server_t *as, const char *id, bool invalid, const char *why,
                             as_answer_t *out);
/* The link's view changed: AS_RUNNING, AS_UNHEALTHY or AS_FAILED, with an
 * optional reason. Emits the matching event (none when nothing changed).
 * Ignored once the tunnel is stopped or failed. */
void as_tunnel_state(as_server_t *as, const char *id, as_status_t st, const char *why,
                     int64_t wall_ms, int64_t mono_ms);
/* The worker ended (link closed, hub tunnel deleted unless `why` says it
 * could not be). Emits "stopped" when the tunnel was stopped here, then
 * forgets a tunnel that was deleted (DELETE). */
void as_tunnel_finished(as_server_t *as, const char *id, const char *why, int64_t wall_ms,
                        int64_t mono_ms);
/* Marks every live tunnel stopped (the app-server is exiting); the ids to
 * stop go to `each`. */
void as_stop_all(as_server_t *as, int64_t wall_ms, void (*each)(void *ctx, const char *id),
                 void *ctx);

/* A tunnel as the API shows it, or NULL. */
json_t *as_tunnel_json(const as_server_t *as, const char *id);
/* Live tunnels (not yet forgotten). */
size_t as_tunnel_count(const as_server_t *as);

/* ---- callbacks ------------------------------------------------------------ */

/* One delivery: POST `body` (JSON) to `url`. Owned by the server. */
typedef struct as_callback {
    uint64_t seq;
    char url[AS_CALLBACK_URL_MAX + 1];
    char *body;
    size_t body_len;
    unsigned attempts; /* made so far */
    int64_t due_mono_ms;
    bool in_flight;
} as_callback_t;

/* The next delivery due at `mono_ms` that is not in flight (marked in
 * flight), or NULL. *next_due_ms (optional) gets the earliest due time of
 * the waiting ones, or -1. */
as_callback_t *as_callback_take(as_server_t *as, int64_t mono_ms, int64_t *next_due_ms);
/* The outcome of a delivery taken above. A success, or a failure after
 * AS_CALLBACK_ATTEMPTS attempts, frees it (returns true: given up when
 * !ok); else it is due again after a backoff (*retry_ms gets the delay). */
bool as_callback_done(as_server_t *as, uint64_t seq, bool ok, int64_t mono_ms, uint32_t rnd,
                      uint32_t *retry_ms);
/* Deliveries waiting or in flight. */
size_t as_callback_pending(const as_server_t *as);

/* ---- callback URLs -------------------------------------------------------- */

typedef struct as_url {
    char host[64]; /* IPv4/IPv6 literal (no brackets) or "localhost" */
    uint16_t port;
    char path[AS_CALLBACK_URL_MAX + 1]; /* "/" when empty; with the query */
} as_url_t;

/* http://HOST[:PORT][/PATH] where HOST is an IP literal ([v6] in brackets)
 * or localhost: the loop never waits on DNS, and a local control plane
 * calls local receivers. No user-info, no fragment, printable ASCII. */
bool as_url_parse(const char *url, as_url_t *out, const char **why);

#endif
