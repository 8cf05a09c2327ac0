/* The request policy of a share, sans-IO: the path normaliser, the path
 * pattern matcher, the per-minute window and the one decision the HTTP edge
 * asks for every request (each request of a keep-alive connection too).
 * Pure: no lws, no store, no clock of its own; the caller passes "now".
 *
 * Conventions
 * - Paths are bytes with a length (a request path is not a C string until
 *   it is checked); patterns and method names are NUL-terminated.
 * - Functions return 0 or a negative CN_E* code, or a verdict; nothing
 *   here allocates, logs or keeps pointers after returning.
 * - Ownership: every argument is borrowed for the call.
 *
 * Normalisation (hub_path_normalize): what a share's path rules are matched
 * against, and what the edge forwards when a share has path rules, so that
 * what was checked is what the target sees.
 *   1. The path must start with '/' and stop at '?' or '#' (the caller
 *      passes the path part of the request target only).
 *   2. Percent-decoding exactly once. A malformed escape ("%zz", "%4") is
 *      refused (CN_EINVAL), as is a decoded NUL or other control byte.
 *   3. A backslash, literal or decoded from "%5c", is a '/', and so is a
 *      decoded "%2f": every separator a server might honour is one here.
 *   4. Empty segments ("//") collapse; "." segments vanish; ".." removes
 *      the segment before it and never climbs above the root.
 *   5. A trailing '/' is kept (it is part of the resource's name).
 *   The result is decoded bytes; hub_path_encode() writes it back as a
 *   request path in a canonical percent-encoding.
 *
 * Patterns (a share's allowedPaths): normalised paths where '*' inside a
 * segment matches any run of bytes other than '/', matched segment by
 * segment as a prefix: "/api" and "/api/" + "*" both allow "/api", "/api/"
 * and everything below "/api/", and never "/apiX"; "/users/" + "*" +
 * "/profile" allows one user segment; "/" allows every path. */
#ifndef HUB_SHARE_POLICY_H
#define HUB_SHARE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest decoded path; the raw form may be three times as long, since
 * each decoded byte is at most one "%XX": so any normalised path, written
 * back by hub_path_encode(), normalises again to itself (a path of 3,000
 * '"' bytes is 9,000 bytes encoded). */
#define HUB_PATH_MAX 8192
#define HUB_PATH_RAW_MAX (3 * HUB_PATH_MAX)
/* Most allowedPaths patterns one share may have, and their length. */
#define HUB_SHARE_PATHS_MAX 32
#define HUB_SHARE_PATTERN_MAX 256
/* rateLimitPerMinute bounds (contract). */
#define HUB_SHARE_RATE_MIN 1
#define HUB_SHARE_RATE_MAX 1000
#define HUB_SHARE_WINDOW_MS 60000

/* Normalises `raw[0..len)` into `out` (at most `cap` bytes, NUL-terminated;
 * *outlen gets the length without the NUL). 0, CN_EINVAL (malformed, see
 * above) or CN_ETOOBIG (does not fit). */
int hub_path_normalize(const char *raw, size_t len, char *out, size_t cap, size_t *outlen);
/* Writes a normalised path as a request path: unreserved bytes and
 * "/!$&'()*+,;=:@" stay, everything else becomes %XX (so '%' is "%25" and
 * '?' is "%3F"). 0 or CN_ETOOBIG. */
int hub_path_encode(const char *path, size_t len, char *out, size_t cap, size_t *outlen);

/* Whether `pattern` is a usable allowedPaths entry: 1..HUB_SHARE_PATTERN_MAX
 * bytes, starts with '/', printable ASCII without '?', '#', '%' or '\\',
 * and already normal (no "//", "." or ".." segments). *why (optional) says
 * what is wrong. */
bool hub_path_pattern_valid(const char *pattern, const char **why);
/* Whether the normalised path `path[0..len)` matches `pattern`. */
bool hub_path_match(const char *pattern, const char *path, size_t len);

/* A fixed per-minute window: exactly `limit` requests are accepted from
 * the first request of a window until HUB_SHARE_WINDOW_MS later. */
typedef struct hub_share_window {
    int64_t start_ms; /* 0: no window yet */
    uint32_t count;
} hub_share_window_t;
/* Counts one request at now_ms: true when accepted; false leaves the count
 * and sets *retry_after_s (whole seconds until the window ends, >= 1). */
bool hub_share_window_take(hub_share_window_t *w, uint32_t limit, int64_t now_ms,
                           uint32_t *retry_after_s);

/* What a share allows. Methods are a mask of router.h's HUB_* bits (0: any
 * method); an allowed GET allows HEAD too. */
typedef struct hub_share_rules {
    unsigned methods;
    const char *const *paths; /* npaths patterns; none: any path */
    size_t npaths;
    uint32_t rate_limit; /* per minute; 0: no limit */
    int64_t expires_at;  /* ms; 0: never */
    bool revoked;
    bool needs_auth; /* basic auth configured */
} hub_share_rules_t;

/* One request as the edge parsed it. */
typedef struct hub_share_request {
    unsigned method;  /* HUB_* bit; 0 for a method router.h does not know */
    const char *path; /* normalised (hub_path_normalize) */
    size_t path_len;
    bool auth_ok; /* the request's credentials matched (when needs_auth) */
} hub_share_request_t;

/* The decision, in the order it is taken: a gone share first, then who
 * asks (auth), then what is asked (method, path), and the rate limit
 * last, so refused requests do not use up the budget. */
enum hub_share_verdict {
    HUB_SHARE_ALLOW = 0,
    HUB_SHARE_REVOKED, /* 410 */
    HUB_SHARE_EXPIRED, /* 410 */
    HUB_SHARE_AUTH,    /* 401 + WWW-Authenticate */
    HUB_SHARE_METHOD,  /* 405 + Allow */
    HUB_SHARE_PATH,    /* 403 */
    HUB_SHARE_LIMIT,   /* 429 + Retry-After */
};

typedef struct hub_share_decision {
    enum hub_share_verdict verdict;
    int status;             /* the HTTP status for the verdict (200 for ALLOW) */
    uint32_t retry_after_s; /* HUB_SHARE_LIMIT */
} hub_share_decision_t;

/* Decides one request against `rules` at now_ms, taking one unit of the
 * share's window `w` only when everything else allowed it. */
hub_share_decision_t hub_share_decide(const hub_share_rules_t *rules, hub_share_window_t *w,
                                      const hub_share_request_t *req, int64_t now_ms);
/* "revoked", "expired", "auth", "method", "path", "rate_limit"; "allow". */
const char *hub_share_verdict_name(enum hub_share_verdict v);
/* The mask a rules' methods allow for an Allow header (GET adds HEAD). */
unsigned hub_share_allowed_mask(const hub_share_rules_t *rules);

#endif
