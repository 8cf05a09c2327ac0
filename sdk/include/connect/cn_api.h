/* cn_api: a small synchronous client for the hub's REST API (/api/v1).
 *
 * Every call runs its own short-lived lws context (HTTP/1.1 client role)
 * until the response is complete, the deadline passes or the caller's
 * cancel flag is raised, then destroys it: nothing outlives the call, so a
 * call may be made between two lws_service() rounds of another context
 * (never from inside one of its callbacks). lws does all the HTTP; this
 * module adds the bearer token (a header, never the URL), the JSON body
 * with its Content-Type and Content-Length, a bound on the response size,
 * and turns the API's error shape into one human line.
 *
 * Transport: https:// hub URLs are verified (the chain against the system
 * CA store, or only against cn_api_set_ca_file()'s file; the host name or
 * IPv4 address against the certificate). Plain http:// is refused, before
 * anything is sent, to a host that is not loopback (127.0.0.0/8, ::1,
 * localhost) unless cn_api_set_allow_insecure(). Redirects are not
 * followed, so the token never travels to another host.
 *
 * Not thread-safe: one client belongs to one thread. */
#ifndef CN_API_H
#define CN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cn_defs.h"

/* Requests and answers are jansson values (json_t), on purpose: they are the
 * REST API's JSON documents (docs/api.md), which a typed mirror in C would
 * only chase, and a text interface would make every caller bring and run a
 * second parser. jansson is what libconnect is built on, has kept its ABI
 * since 2.0 (libjansson.so.4) and is packaged everywhere, so connect.pc
 * lists it under Requires: `pkg-config --cflags --libs connect` gives a
 * program jansson's flags and -ljansson as well, and this header is complete
 * on its own. No other library's type appears in libconnect's headers. */
#include <jansson.h>

#define CN_API_DEFAULT_TIMEOUT_MS 15000u
#define CN_API_MAX_RESPONSE (4u * 1024 * 1024) /* response body bytes */
#define CN_API_MAX_REQUEST (1u * 1024 * 1024)  /* request body bytes */
#define CN_API_HOST_MAX 255                    /* host name or IP literal */
#define CN_API_PATH_MAX 1024                   /* base path + request path + query */
#define CN_API_TOKEN_MAX 512

typedef struct cn_api cn_api_t;

/* A parsed hub URL "http[s]://HOST[:PORT][/BASE]". host has no brackets
 * (an IPv6 literal is bare); port defaults to 443 for https, 80 for http;
 * base is "" or "/prefix" without a trailing slash. */
typedef struct cn_api_url {
    char host[CN_API_HOST_MAX + 1];
    int port;
    bool ipv6;
    char base[256];
    bool tls; /* https:// */
} cn_api_url_t;

/* Parses a hub URL. Returns 0, or CN_EINVAL with a sentence in err
 * ("port must be between 1 and 65535", ...). No query, fragment or
 * user-info is accepted, nor an https URL with an [IPv6] literal host. */
CN_EXTERN CN_WARN_UNUSED int cn_api_parse_url(const char *url, cn_api_url_t *out, char *err,
                                              size_t errlen);

/* Creates a client for `hub_url` with the API token `token` (may be NULL
 * or "" for unauthenticated calls such as health). Both are copied; the
 * token is wiped when the client is freed. Returns NULL with a sentence in
 * err (bad URL, token too long or with characters not allowed in a header,
 * no memory). */
CN_EXTERN CN_WARN_UNUSED cn_api_t *cn_api_new(const char *hub_url, const char *token, char *err,
                                              size_t errlen);
/* Frees the client and wipes its token. NULL is fine. */
CN_EXTERN void cn_api_free(cn_api_t *api);

/* Per-call deadline, covering connect, request and response. 0 = default. */
CN_EXTERN void cn_api_set_timeout(cn_api_t *api, unsigned timeout_ms);
/* Asked about ten times a second during a call, on the calling thread:
 * nonzero aborts the call in progress with CN_ECLOSED. A program stopped by
 * a signal returns its volatile sig_atomic_t flag from here. It must not
 * call back into this client. */
typedef int (*cn_api_cancel_fn)(void *arg);
/* Installs the cancel check `fn` with its argument `arg` (borrowed); a NULL
 * fn clears it. */
CN_EXTERN void cn_api_set_cancel(cn_api_t *api, cn_api_cancel_fn fn, void *arg);
/* The hub URL as given (for messages). */
CN_EXTERN const char *cn_api_url(const cn_api_t *api);
/* Verify an https hub against this PEM file of CA certificates only,
 * instead of the system store (NULL or "" restores the system store). The
 * path is copied. 0, or CN_EINVAL with err when it is unreadable or too
 * long. */
CN_EXTERN CN_WARN_UNUSED int cn_api_set_ca_file(cn_api_t *api, const char *path, char *err,
                                                size_t errlen);
/* Permit plain http:// to a host that is not loopback (default: refused,
 * every call answers CN_EREFUSED). */
CN_EXTERN void cn_api_set_allow_insecure(cn_api_t *api, bool allow);

/* One call: `method` ("GET", "POST", "PATCH", "DELETE"), `path` starting
 * with '/' (already percent-encoded; the URL's base path is prepended),
 * optional JSON `body` (borrowed). On return:
 *   - *status (optional) holds the HTTP status, or 0 when no response came;
 *   - *response (optional) holds the parsed JSON body (owned by the caller,
 *     json_decref it) whenever one arrived and parsed, also for errors, else
 *     NULL;
 *   - err gets one human line on failure.
 * Returns 0 for a 2xx answer. Otherwise a negative code:
 *   CN_EIO       the hub could not be reached or the connection failed
 *   CN_EAUTH     TLS: the hub's certificate failed verification (untrusted
 *                CA, wrong name, expired) or the TLS handshake failed
 *   CN_EREFUSED  plain http:// to a host that is not loopback, not allowed
 *   CN_ETIMEOUT  the deadline passed
 *   CN_ECLOSED   the cancel flag was raised
 *   CN_ETOOBIG   the response body was larger than CN_API_MAX_RESPONSE
 *   CN_EPROTO    a 2xx answer whose body is not JSON
 *   CN_EINVAL    400/422 (bad request), or a bad argument to this call
 *   CN_EAUTH     401/403
 *   CN_ENOTFOUND 404/410
 *   CN_ESTATE    409
 *   CN_EAGAIN    429 (err says when to retry)
 *   CN_EREFUSED  any other non-2xx status (3xx included: never followed)
 * For HTTP errors err is the API's errors turned into one line by
 * cn_api_format_errors(). */
CN_EXTERN CN_WARN_UNUSED int cn_api_call(cn_api_t *api, const char *method, const char *path,
                                         const json_t *body, int *status, json_t **response,
                                         char *err, size_t errlen);

/* The CN_E* code cn_api_call() returns for an HTTP status (0 for 2xx). */
CN_EXTERN int cn_api_status_error(int status);

/* Turns an error answer into one line: each {"param","details"} of
 * {"errors":[...]} as "param: details" (just "details" when param is empty),
 * joined by "; "; without that shape, "HTTP STATUS REASON" (with the body's
 * "message" or "error" string when there is one). `retry_after` (seconds,
 * 0 = none) adds " (retry in N s)". Always NUL-terminates; truncates. */
CN_EXTERN void cn_api_format_errors(int status, const json_t *response, unsigned retry_after,
                                    char *out, size_t outlen);

/* Percent-encodes `in` (RFC 3986 unreserved characters pass) into out.
 * Returns 0, or CN_ETOOBIG when it does not fit. */
CN_EXTERN CN_WARN_UNUSED int cn_api_escape(const char *in, char *out, size_t outlen);

/* ---- typed helpers: thin wrappers over cn_api_call(); on success *out
 * (owned by the caller) holds the documented JSON value ---- */

/* GET /api/v1/health (no token needed) -> the health object. */
CN_EXTERN CN_WARN_UNUSED int cn_api_health(cn_api_t *api, json_t **out, char *err, size_t errlen);

/* POST /api/v1/tunnels with `spec` (target, agentId, name, protocol, public,
 * ttl, httpUser, ...) -> the tunnel object (with httpPassword, once, when
 * httpUser was given). */
CN_EXTERN CN_WARN_UNUSED int cn_api_tunnel_create(cn_api_t *api, const json_t *spec, json_t **out,
                                                  char *err, size_t errlen);
/* GET /api/v1/tunnels[?agentId=&status=] -> the array of tunnel objects.
 * agent_id and status may be NULL. */
CN_EXTERN CN_WARN_UNUSED int cn_api_tunnel_list(cn_api_t *api, const char *agent_id,
                                                const char *status, json_t **out, char *err,
                                                size_t errlen);
/* GET /api/v1/tunnels/{id} -> the tunnel object. */
CN_EXTERN CN_WARN_UNUSED int cn_api_tunnel_get(cn_api_t *api, const char *id, json_t **out,
                                               char *err, size_t errlen);
/* PATCH /api/v1/tunnels/{id} with `changes` (name, status, metadata) -> the
 * updated tunnel object. */
CN_EXTERN CN_WARN_UNUSED int cn_api_tunnel_patch(cn_api_t *api, const char *id,
                                                 const json_t *changes, json_t **out, char *err,
                                                 size_t errlen);
/* DELETE /api/v1/tunnels/{id}. out may be NULL. */
CN_EXTERN CN_WARN_UNUSED int cn_api_tunnel_delete(cn_api_t *api, const char *id, json_t **out,
                                                  char *err, size_t errlen);

/* GET /api/v1/events[?tunnelId=&since=] -> the array of events, oldest
 * first. tunnel_id and since (RFC 3339) may be NULL. */
CN_EXTERN CN_WARN_UNUSED int cn_api_events_list(cn_api_t *api, const char *tunnel_id,
                                                const char *since, json_t **out, char *err,
                                                size_t errlen);

/* POST /api/v1/tunnels/{id}/connect (reach): the receiving agent
 * `agent_id`, `local_port` (0: the hub picks) -> {localPort,
 * connectionString, ...}. */
CN_EXTERN CN_WARN_UNUSED int cn_api_tunnel_connect(cn_api_t *api, const char *tunnel_id,
                                                   const char *agent_id, int local_port,
                                                   json_t **out, char *err, size_t errlen);

/* POST /api/v1/tunnels/{id}/shares with `spec` (name, description,
 * expiresIn, allowedMethods, allowedPaths, rateLimitPerMinute, httpUser)
 * -> the share with its shareUrl (shown this once). */
CN_EXTERN CN_WARN_UNUSED int cn_api_share_create(cn_api_t *api, const char *tunnel_id,
                                                 const json_t *spec, json_t **out, char *err,
                                                 size_t errlen);
/* GET /api/v1/tunnels/{id}/shares, or /api/v1/shares when tunnel_id is
 * NULL -> the array of shares (revoked and expired ones too). */
CN_EXTERN CN_WARN_UNUSED int cn_api_share_list(cn_api_t *api, const char *tunnel_id, json_t **out,
                                               char *err, size_t errlen);
/* GET /api/v1/shares/{id} -> the share object. */
CN_EXTERN CN_WARN_UNUSED int cn_api_share_get(cn_api_t *api, const char *id, json_t **out,
                                              char *err, size_t errlen);
/* DELETE /api/v1/shares/{id}: revokes it at once -> the share. out may be
 * NULL. */
CN_EXTERN CN_WARN_UNUSED int cn_api_share_revoke(cn_api_t *api, const char *id, json_t **out,
                                                 char *err, size_t errlen);
/* GET /api/v1/shares/{id}/logs -> the array of access-log rows, newest
 * first (the first page). */
CN_EXTERN CN_WARN_UNUSED int cn_api_share_logs(cn_api_t *api, const char *id, json_t **out,
                                               char *err, size_t errlen);

/* POST /api/v1/share-redemptions {token, localPort?} -> what `connect reach
 * SHARE_URL` needs for a TCP share (the tunnel, the exposing agent's key,
 * the hub's key). Needs no API token: `api` may be made with token NULL.
 * local_port 0: the hub's default. */
CN_EXTERN CN_WARN_UNUSED int cn_api_share_redeem(cn_api_t *api, const char *token, int local_port,
                                                 json_t **out, char *err, size_t errlen);

/* GET /api/v1/tunnels/{id}/requests -> the array of recorded HTTP requests,
 * newest first (the first page). */
CN_EXTERN CN_WARN_UNUSED int cn_api_requests_list(cn_api_t *api, const char *tunnel_id,
                                                  json_t **out, char *err, size_t errlen);
/* GET /api/v1/requests/{rid} -> one recorded request in full. */
CN_EXTERN CN_WARN_UNUSED int cn_api_request_get(cn_api_t *api, uint64_t rid, json_t **out,
                                                char *err, size_t errlen);
/* POST /api/v1/requests/{rid}/replay -> {id, replayOf, ...}: the replay's
 * record appears under id once its response is complete. */
CN_EXTERN CN_WARN_UNUSED int cn_api_request_replay(cn_api_t *api, uint64_t rid, json_t **out,
                                                   char *err, size_t errlen);

/* POST /api/v1/agents {name?} -> {id, enrollToken, ...}. */
CN_EXTERN CN_WARN_UNUSED int cn_api_agent_create(cn_api_t *api, const char *name, json_t **out,
                                                 char *err, size_t errlen);
/* GET /api/v1/agents -> the array of agents. */
CN_EXTERN CN_WARN_UNUSED int cn_api_agent_list(cn_api_t *api, json_t **out, char *err,
                                               size_t errlen);
/* GET /api/v1/agents/{id} -> the agent object. */
CN_EXTERN CN_WARN_UNUSED int cn_api_agent_get(cn_api_t *api, const char *id, json_t **out,
                                              char *err, size_t errlen);
/* DELETE /api/v1/agents/{id}. out may be NULL. */
CN_EXTERN CN_WARN_UNUSED int cn_api_agent_delete(cn_api_t *api, const char *id, json_t **out,
                                                 char *err, size_t errlen);

/* ---- administration (operator and workspace-admin tokens) ---- */

/* POST /api/v1/workspaces {name} -> the workspace with its first admin
 * token (shown this once). */
CN_EXTERN CN_WARN_UNUSED int cn_api_workspace_create(cn_api_t *api, const json_t *spec,
                                                     json_t **out, char *err, size_t errlen);
/* GET /api/v1/workspaces -> the array of workspaces. */
CN_EXTERN CN_WARN_UNUSED int cn_api_workspace_list(cn_api_t *api, json_t **out, char *err,
                                                   size_t errlen);
/* POST /api/v1/workspaces/{id}/tokens {name, scope} -> the token object
 * with its secret (shown this once). */
CN_EXTERN CN_WARN_UNUSED int cn_api_token_create(cn_api_t *api, const char *workspace_id,
                                                 const json_t *spec, json_t **out, char *err,
                                                 size_t errlen);
/* GET /api/v1/tokens -> the array of the workspace's tokens (never their
 * secrets). */
CN_EXTERN CN_WARN_UNUSED int cn_api_token_list(cn_api_t *api, json_t **out, char *err,
                                               size_t errlen);
/* DELETE /api/v1/tokens/{id}: revokes it. out may be NULL. */
CN_EXTERN CN_WARN_UNUSED int cn_api_token_delete(cn_api_t *api, const char *id, json_t **out,
                                                 char *err, size_t errlen);
/* POST /api/v1/webhooks {url, events} -> the webhook with its signing
 * secret (shown this once). */
CN_EXTERN CN_WARN_UNUSED int cn_api_webhook_create(cn_api_t *api, const json_t *spec, json_t **out,
                                                   char *err, size_t errlen);
/* GET /api/v1/webhooks -> the array of webhooks. */
CN_EXTERN CN_WARN_UNUSED int cn_api_webhook_list(cn_api_t *api, json_t **out, char *err,
                                                 size_t errlen);
/* GET /api/v1/webhooks/{id} -> the webhook. */
CN_EXTERN CN_WARN_UNUSED int cn_api_webhook_get(cn_api_t *api, const char *id, json_t **out,
                                                char *err, size_t errlen);
/* PATCH /api/v1/webhooks/{id} with `changes` ({"enabled": bool}, ...) ->
 * the webhook. */
CN_EXTERN CN_WARN_UNUSED int cn_api_webhook_patch(cn_api_t *api, const char *id,
                                                  const json_t *changes, json_t **out, char *err,
                                                  size_t errlen);
/* DELETE /api/v1/webhooks/{id}. out may be NULL. */
CN_EXTERN CN_WARN_UNUSED int cn_api_webhook_delete(cn_api_t *api, const char *id, json_t **out,
                                                   char *err, size_t errlen);
/* GET /api/v1/webhooks/{id}/deliveries -> the array of its deliveries. */
CN_EXTERN CN_WARN_UNUSED int cn_api_webhook_deliveries(cn_api_t *api, const char *id, json_t **out,
                                                       char *err, size_t errlen);

#endif
