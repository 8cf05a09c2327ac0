/* Shared by the REST API's files: the API object, one call's context, the
 * route tables each resource file exports, and helpers that read JSON
 * fields while collecting validation errors (422 naming the field). */
#ifndef HUB_API_INTERNAL_H
#define HUB_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api.h"
#include "cn_err.h"
#include "cn_log.h"
#include "events.h"
#include "ratelimit.h"
#include "router.h"

struct hub_api {
    hub_store_t *store;
    hub_api_config_t cfg;
    char public_domain[256];
    char hub_url[300]; /* scheme://HOST:PORT of this API; "" until listening */
    hub_ratelimit_t *limiter;
    hub_ratelimit_t *auth_fails; /* per client address; NULL = unlimited */
    hub_ratelimit_t *auth_log;   /* one key: 401 log lines a second */
    uint64_t auth_log_dropped;   /* 401/429 log lines left out since the last one */
    struct plugins *own_plugins; /* the built-ins, when cfg.plugins was NULL */
};

/* One request being answered. */
typedef struct hub_api_call {
    hub_api_t *api;
    const hub_http_req_t *req;
    hub_http_resp_t *resp;
    hub_route_params_t params;
    /* The caller's token, once authenticated. */
    hub_token_info_t token;
    /* Parsed body (owned by the dispatcher), after hub_api_body(). */
    json_t *body;
    /* Validation errors gathered so far (owned by the dispatcher). */
    json_t *errors;
} hub_api_call_t;

typedef void (*hub_api_handler_fn)(hub_api_call_t *c);

/* Who may call a route (403 otherwise); the roles are in docs/security.md.
 * Agent-scoped tokens pass HUB_AUTH_TOKEN but handlers that act on one
 * agent's objects also check hub_api_acts_for_agent(). */
enum hub_api_auth {
    HUB_AUTH_NONE = 0, /* public (health) */
    HUB_AUTH_TOKEN,    /* any valid API token */
    HUB_AUTH_ADMIN,    /* a workspace admin (admin or operator scope) */
    HUB_AUTH_OPERATOR, /* the hub operator (operator scope) */
};

typedef struct hub_api_route {
    hub_route_t route; /* first: the router walks tables of these */
    hub_api_handler_fn handler;
    enum hub_api_auth auth;
    /* The query arguments the route takes (NULL-terminated), NULL for none.
     * The dispatcher answers 422 for any other, and for one given twice,
     * before the handler runs: no endpoint can forget the check. */
    const char *const *query;
    /* For a route whose access is not an API token's to grant (metrics):
     * checked before the query, so that a refused client learns nothing
     * from validation. Answers and returns false to refuse; NULL for none. */
    bool (*gate)(hub_api_call_t *c);
} hub_api_route_t;

/* One table per resource file. */
extern const hub_api_route_t hub_api_health_routes[];
extern const size_t hub_api_health_nroutes;
extern const hub_api_route_t hub_api_workspaces_routes[];
extern const size_t hub_api_workspaces_nroutes;
extern const hub_api_route_t hub_api_agents_routes[];
extern const size_t hub_api_agents_nroutes;
extern const hub_api_route_t hub_api_tunnels_routes[];
extern const size_t hub_api_tunnels_nroutes;
extern const hub_api_route_t hub_api_events_routes[];
extern const size_t hub_api_events_nroutes;
extern const hub_api_route_t hub_api_tokens_routes[];
extern const size_t hub_api_tokens_nroutes;
extern const hub_api_route_t hub_api_webhooks_routes[];
extern const size_t hub_api_webhooks_nroutes;
extern const hub_api_route_t hub_api_metrics_routes[];
extern const size_t hub_api_metrics_nroutes;
extern const hub_api_route_t hub_api_shares_routes[];
extern const size_t hub_api_shares_nroutes;
extern const hub_api_route_t hub_api_reach_routes[];
extern const size_t hub_api_reach_nroutes;
extern const hub_api_route_t hub_api_openapi_routes[];
extern const size_t hub_api_openapi_nroutes;

/* docs/openapi.json as compiled in (hub/embed.cmake): hub_openapi_doc_len
 * bytes, followed by a NUL that is not counted. */
extern const unsigned char hub_openapi_doc[];
extern const size_t hub_openapi_doc_len;
extern const hub_api_route_t hub_api_requests_routes[];
extern const size_t hub_api_requests_nroutes;

/* All of them, in the order the dispatcher searches them. */
typedef struct hub_api_table {
    const hub_api_route_t *routes;
    const size_t *n;
} hub_api_table_t;
extern const hub_api_table_t hub_api_tables[];
extern const size_t hub_api_ntables;

/* ---- answering ---- */
/* 200/201 with `body` (consumed). */
void hub_api_reply(hub_api_call_t *c, int status, json_t *body);
/* One error with `status`. */
void hub_api_fail(hub_api_call_t *c, int status, const char *param, const char *details);
/* Maps a store error to a response: CN_ENOTFOUND 404 (`what` names the
 * object), HUB_ECONFLICT 409, CN_EINVAL 422, CN_EEXHAUSTED 409, else 500
 * (logged with the store's message, never shown). `param` names the field
 * for 409/422. */
void hub_api_store_fail(hub_api_call_t *c, int rc, const char *what, const char *param);
/* 404 for an unknown id. */
void hub_api_not_found(hub_api_call_t *c, const char *what);

/* ---- validation (errors accumulate; answer 422 at the end) ---- */
void hub_api_invalid(hub_api_call_t *c, const char *param, const char *details);
/* True (and a 422 answered) when any validation error was gathered. */
bool hub_api_failed_validation(hub_api_call_t *c);

/* The request body as a JSON object ({} when empty). NULL means the
 * request was answered (400: not JSON / not an object). */
json_t *hub_api_body(hub_api_call_t *c);
/* Records "unknown field" for every key of `obj` not in `allowed`
 * (NULL-terminated). True when all keys are known. */
bool hub_api_only_fields(hub_api_call_t *c, json_t *obj, const char *const allowed[]);
/* Optional/required typed fields. Each returns false after recording a
 * 422 when the field has the wrong type (or is missing and required);
 * *present says whether it was given (null counts as absent). */
bool hub_api_get_string(hub_api_call_t *c, json_t *obj, const char *key, bool required,
                        const char **out, bool *present);
bool hub_api_get_bool(hub_api_call_t *c, json_t *obj, const char *key, bool *out, bool *present);
bool hub_api_get_int(hub_api_call_t *c, json_t *obj, const char *key, long long *out,
                     bool *present);

/* Query arguments: the value of `key` or NULL; whether only `allowed`
 * (NULL-terminated) keys were given (records 422 for the others; the
 * dispatcher calls it with the route's `query`). */
const char *hub_api_query(hub_api_call_t *c, const char *key);
bool hub_api_only_query(hub_api_call_t *c, const char *const allowed[]);

/* Whether the caller may act for agent `agent_id` (create, change or
 * delete its tunnels): every scope but agent may, an agent token only for
 * its own agent. False after answering 403 naming `param`. */
bool hub_api_acts_for_agent(hub_api_call_t *c, const char *agent_id, const char *param);

/* Extracts the token from "Bearer <token>"; NULL when the header is not of
 * that form. Writes into `buf`. */
const char *hub_api_bearer_token(const char *header, char *buf, size_t buflen);

/* A path id that is not a canonical UUID cannot exist: 404 without asking
 * the store. True when `id` looks valid. */
bool hub_api_check_id(hub_api_call_t *c, const char *id, const char *what);

/* A URL on the HTTP edge: SCHEME://PREFIX LABEL.DOMAIN[:PORT]/ (the port
 * left out when it is the scheme's default). Tunnels' publicUrl and shares'
 * shareUrl are both this. */
void hub_api_edge_url(const hub_api_t *api, const char *prefix, const char *label, char *out,
                      size_t outlen);

#endif
