/* The hub's HTTP layer on libwebsockets: one lws protocol that turns each
 * HTTP/1.1 request into a hub_http_req_t (method, decoded path, query
 * arguments, Authorization header, body bounded by a hard limit), hands it
 * to one handler synchronously, and writes the handler's JSON answer with
 * Content-Type, Content-Length and any Allow / Retry-After headers.
 *
 * lws does all HTTP parsing; this file only enforces our limits on top of
 * it (body size, Content-Length sanity, total time per request) and never
 * lets a malformed request reach the handler. Errors it answers by itself
 * (400, 411, 413) have the API's error shape too.
 *
 * WebSocket upgrades on the same port are not ours: protocols appended after
 * this one in the vhost's array (server.c) receive them; an upgrade that
 * lands on this protocol is refused. */
#ifndef HUB_HTTP_H
#define HUB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct lws_protocols;

/* Hard limit on a request body; more is answered 413. */
#define HUB_HTTP_MAX_BODY (64 * 1024)
/* Bodies up to this size are read and thrown away before answering 413 (so
 * the client sees the answer and the connection stays usable); larger ones
 * are answered at once and the connection is closed. */
#define HUB_HTTP_DISCARD_MAX (1024 * 1024)
/* Most query arguments one request may carry. */
#define HUB_HTTP_MAX_QUERY 16
/* Longest a single request may take from its headers to its last body byte. */
#define HUB_HTTP_REQUEST_DEADLINE_S 30

typedef struct hub_http_query_arg {
    const char *key;
    const char *value; /* "" when the argument had no '=' */
} hub_http_query_arg_t;

/* One request. Everything is borrowed from the connection and valid only
 * during the handler call. */
typedef struct hub_http_req {
    unsigned method;  /* one HUB_* bit of router.h */
    const char *path; /* percent-decoded and normalised by lws */
    size_t nquery;
    hub_http_query_arg_t query[HUB_HTTP_MAX_QUERY];
    const char *authorization; /* the raw header value, or NULL */
    const uint8_t *body;       /* may be NULL when body_len is 0 */
    size_t body_len;
    const char *peer; /* client address, for logs */
} hub_http_req_t;

/* One response, filled by the handler. Zero-initialise; hub_resp_* set it. */
typedef struct hub_http_resp {
    int status;
    char *body;               /* owned text (malloc'd): JSON unless content_type says otherwise */
    const char *content_type; /* static string; NULL = application/json */
    size_t body_len;
    char allow[96];            /* Allow header value, "" for none */
    unsigned retry_after;      /* seconds; 0 for none */
    long long ratelimit_limit; /* X-RateLimit-Limit; < 0 for none */
    long long ratelimit_remaining;
    bool close; /* close the connection after answering */
} hub_http_resp_t;

/* Called once per complete request. Must fill `resp` (status and JSON
 * body); anything left unset becomes a 500. */
typedef void (*hub_http_handler_fn)(void *ctx, const hub_http_req_t *req, hub_http_resp_t *resp);

/* What the lws protocol needs; point lws_protocols.user at one of these,
 * living as long as the context. */
typedef struct hub_http_config {
    hub_http_handler_fn handler;
    void *ctx;
} hub_http_config_t;

/* Fills one entry of a vhost's protocols array with the HTTP protocol
 * (name "http"; it must be the array's first entry so that plain requests
 * reach it). `cfg` is borrowed for the life of the lws context. */
void hub_http_protocol(struct lws_protocols *out, const hub_http_config_t *cfg);

/* ---- building responses (pure; used by the handler and by tests) ------ */

/* Sets status and body to the JSON serialisation of `body`, which the call
 * consumes (decref) in every case. 0 or CN_ENOMEM (then resp is a 500). */
int hub_resp_json(hub_http_resp_t *resp, int status, json_t *body);
/* Sets status and body to `text` (len bytes, malloc'd; the call takes it
 * in every case) served as `content_type` (a static string). 0, or
 * CN_EINVAL for a NULL text (then resp is a 500). */
int hub_resp_text(hub_http_resp_t *resp, int status, char *text, size_t len,
                  const char *content_type);
/* {"errors":[{"param":param,"details":details}]} with `status`. `param` may
 * be NULL (serialised as the empty string). */
int hub_resp_error(hub_http_resp_t *resp, int status, const char *param, const char *details);
/* Appends {"param","details"} to an errors array (created when *errors is
 * NULL). */
void hub_errors_add(json_t **errors, const char *param, const char *details);
/* {"errors": errors} with `status`; consumes `errors`. */
int hub_resp_errors(hub_http_resp_t *resp, int status, json_t *errors);
/* The reason phrase for a status code ("Created", "Too Many Requests"). */
const char *hub_http_reason(int status);
/* Frees the body and zeroes the response. */
void hub_resp_clear(hub_http_resp_t *resp);

#endif
