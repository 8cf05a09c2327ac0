/* Per-key request limiter: at most `limit` requests per window (60 s by
 * default) for each key (an API token, a share, a client address), with
 * bounded memory. Sans-IO: the caller passes the clock in milliseconds, so
 * tests and the event loop decide what "now" is.
 *
 * Algorithm: GCRA (the generic cell rate algorithm, a leaky bucket kept as
 * one "theoretical arrival time" per key). A fresh key may burst `limit`
 * requests at once; after that, capacity comes back steadily, one request
 * every window/limit, and the whole budget is back one window after the
 * last request. Any window of that length therefore sees at most about
 * 2 * limit requests in the worst case (a full burst at its start and the
 * refill during it), and a client pacing itself at limit/window is never
 * refused. Compared with a sliding log it needs 16 bytes per key instead of
 * one timestamp per request, and unlike fixed windows there is no boundary
 * at which a client can double up.
 *
 * Memory: a fixed table allocated once (capacity = max_keys rounded up to
 * a power of two). Keys are stored as 64-bit keyed SipHash values, never
 * as the bytes given. A key that has fully recovered is indistinguishable
 * from a new one and its slot is reused freely; when every candidate slot
 * is still in debt, the least indebted key is forgotten (it regains its
 * budget early). The most limited keys are evicted last, so a flood of new
 * keys cannot free a key that is being throttled.
 *
 * One limiter serves one thread at a time. */
#ifndef HUB_RATELIMIT_H
#define HUB_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_RATELIMIT_WINDOW_MS 60000
#define HUB_RATELIMIT_LIMIT_MAX 1000000

typedef struct hub_ratelimit hub_ratelimit_t;

typedef struct hub_ratelimit_result {
    bool allowed;
    /* When refused: whole seconds until a retry is allowed (>= 1), the
     * value for a Retry-After header. 0 when allowed. */
    uint32_t retry_after_s;
    /* When allowed: how many more requests the key may make right now. */
    uint32_t remaining;
} hub_ratelimit_result_t;

/* A limiter tracking up to about `max_keys` keys (1..2^24) over `window_ms`
 * (0 means HUB_RATELIMIT_WINDOW_MS). NULL on bad arguments or no memory. */
hub_ratelimit_t *hub_ratelimit_new(size_t max_keys, int64_t window_ms);
/* NULL is fine. */
void hub_ratelimit_free(hub_ratelimit_t *rl);

/* Counts one request for `key` at `now_ms` against `limit` requests per
 * window (1..HUB_RATELIMIT_LIMIT_MAX; larger values are clamped; 0 refuses
 * everything). A refused request is not counted. The limit may differ
 * between calls for one key (a share's limit was edited): the debt already
 * run up is kept. */
hub_ratelimit_result_t hub_ratelimit_check(hub_ratelimit_t *rl, const void *key, size_t keylen,
                                           uint32_t limit, int64_t now_ms);

/* Whether one more request for `key` would be allowed now, without
 * counting it (the result's fields as for hub_ratelimit_check()). Used to
 * refuse at once what only failures are counted for (failed logins). */
hub_ratelimit_result_t hub_ratelimit_peek(const hub_ratelimit_t *rl, const void *key, size_t keylen,
                                          uint32_t limit, int64_t now_ms);

/* Slots in use (keys seen and not yet reused) and the table's size. */
size_t hub_ratelimit_size(const hub_ratelimit_t *rl);
size_t hub_ratelimit_capacity(const hub_ratelimit_t *rl);
/* How many keys were forgotten while still in debt (table pressure). */
uint64_t hub_ratelimit_evictions(const hub_ratelimit_t *rl);

#endif
