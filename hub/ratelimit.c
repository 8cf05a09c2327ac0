/* GCRA per-key limiter over a fixed, set-associative table (see
 * ratelimit.h for the behaviour and its reasons).
 *
 * Time is kept in microseconds so that window/limit is exact enough: the
 * emission interval is T = floor(window / limit) and the burst tolerance is
 * limit * T (<= window), so exactly `limit` requests fit in a burst. A key's
 * state is its theoretical arrival time (TAT): a request at `now` is allowed
 * when max(TAT, now) + T - now <= limit * T, and then TAT advances by T. */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define WAYS 8 /* slots probed per key */
#define MAX_KEYS (1u << 24)
#define US_PER_MS 1000
#define US_PER_S 1000000

typedef struct slot {
    uint64_t key; /* 0 = empty */
    int64_t tat;  /* µs */
} slot_t;

struct hub_ratelimit {
    slot_t *slots;
    size_t mask;
    size_t used;
    uint64_t evictions;
    int64_t window_us;
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
};

hub_ratelimit_t *hub_ratelimit_new(size_t max_keys, int64_t window_ms)
{
    if (max_keys == 0 || max_keys > MAX_KEYS || window_ms < 0 || window_ms > 7LL * 24 * 3600 * 1000)
        return NULL;
    if (sodium_init() < 0)
        return NULL;
    size_t cap = WAYS;
    while (cap < max_keys)
        cap <<= 1;
    hub_ratelimit_t *rl = calloc(1, sizeof(*rl));
    if (!rl)
        return NULL;
    rl->slots = calloc(cap, sizeof(slot_t));
    if (!rl->slots) {
        free(rl);
        return NULL;
    }
    rl->mask = cap - 1;
    rl->window_us = (window_ms ? window_ms : HUB_RATELIMIT_WINDOW_MS) * US_PER_MS;
    /* A secret hash key: clients choosing keys (addresses, names) cannot
     * aim them at one set of slots to evict a throttled neighbour. */
    crypto_shorthash_keygen(rl->hash_key);
    return rl;
}

void hub_ratelimit_free(hub_ratelimit_t *rl)
{
    if (!rl)
        return;
    free(rl->slots);
    sodium_memzero(rl, sizeof(*rl));
    free(rl);
}

static uint64_t key_hash(const hub_ratelimit_t *rl, const void *key, size_t keylen)
{
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, key ? key : "", key ? keylen : 0, rl->hash_key);
    uint64_t h;
    memcpy(&h, out, sizeof(h));
    return h ? h : 1; /* 0 marks an empty slot */
}

/* The slot for `h`: its own, else an empty one, else a recovered one, else
 * the least indebted one (evicted). */
static slot_t *find_slot(hub_ratelimit_t *rl, uint64_t h, int64_t now_us)
{
    size_t base = (size_t)h & rl->mask;
    slot_t *empty = NULL, *stale = NULL, *least = NULL;
    for (size_t i = 0; i < WAYS; i++) {
        slot_t *s = &rl->slots[(base + i) & rl->mask];
        if (s->key == h)
            return s;
        if (s->key == 0) {
            if (!empty)
                empty = s;
        } else if (s->tat <= now_us) {
            if (!stale)
                stale = s;
        } else if (!least || s->tat < least->tat) {
            least = s;
        }
    }
    slot_t *s = empty ? empty : stale ? stale : least;
    if (s == empty)
        rl->used++;
    else if (s == least)
        rl->evictions++;
    s->key = h;
    s->tat = now_us; /* a fresh key: no debt */
    return s;
}

static uint32_t ceil_seconds(int64_t us)
{
    int64_t s = (us + US_PER_S - 1) / US_PER_S;
    if (s < 1)
        s = 1;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* The key's slot if it is tracked, else NULL (nothing is claimed). */
static const slot_t *lookup_slot(const hub_ratelimit_t *rl, uint64_t h)
{
    size_t base = (size_t)h & rl->mask;
    for (size_t i = 0; i < WAYS; i++) {
        const slot_t *s = &rl->slots[(base + i) & rl->mask];
        if (s->key == h)
            return s;
    }
    return NULL;
}

/* Decides a request at `now` (µs) for a key whose TAT is `tat`: the result,
 * and the key's next TAT when allowed. */
static hub_ratelimit_result_t decide(const hub_ratelimit_t *rl, uint32_t limit, int64_t now,
                                     int64_t tat, int64_t *next_tat);

/* The clock in µs, clamped so that arithmetic on it cannot overflow. */
static int64_t clock_us(int64_t now_ms)
{
    if (now_ms < 0)
        now_ms = 0;
    if (now_ms > INT64_MAX / US_PER_MS / 2)
        now_ms = INT64_MAX / US_PER_MS / 2;
    return now_ms * US_PER_MS;
}

hub_ratelimit_result_t hub_ratelimit_peek(const hub_ratelimit_t *rl, const void *key, size_t keylen,
                                          uint32_t limit, int64_t now_ms)
{
    hub_ratelimit_result_t res = {0};
    if (!rl)
        return res;
    int64_t now = clock_us(now_ms), next;
    const slot_t *s = lookup_slot(rl, key_hash(rl, key, keylen));
    return decide(rl, limit, now, s ? s->tat : now, &next);
}

hub_ratelimit_result_t hub_ratelimit_check(hub_ratelimit_t *rl, const void *key, size_t keylen,
                                           uint32_t limit, int64_t now_ms)
{
    hub_ratelimit_result_t res = {0};
    if (!rl)
        return res;
    int64_t now = clock_us(now_ms), next = 0;
    if (limit == 0)
        return decide(rl, limit, now, now, &next);
    slot_t *s = find_slot(rl, key_hash(rl, key, keylen), now);
    res = decide(rl, limit, now, s->tat, &next);
    if (res.allowed)
        s->tat = next;
    return res;
}

static hub_ratelimit_result_t decide(const hub_ratelimit_t *rl, uint32_t limit, int64_t now,
                                     int64_t tat, int64_t *next_tat)
{
    hub_ratelimit_result_t res = {0};
    if (limit == 0) {
        res.retry_after_s = ceil_seconds(rl->window_us);
        return res;
    }
    if (limit > HUB_RATELIMIT_LIMIT_MAX)
        limit = HUB_RATELIMIT_LIMIT_MAX;
    if ((int64_t)limit > rl->window_us)
        limit = (uint32_t)rl->window_us; /* at most one request per µs */
    int64_t T = rl->window_us / limit;   /* >= 1 */
    int64_t burst = T * (int64_t)limit;  /* <= window */

    if (tat < now)
        tat = now;
    int64_t next = tat + T;
    if (next - now > burst) {
        res.retry_after_s = ceil_seconds(next - burst - now);
        return res;
    }
    *next_tat = next;
    res.allowed = true;
    res.remaining = (uint32_t)((burst - (next - now)) / T);
    return res;
}

size_t hub_ratelimit_size(const hub_ratelimit_t *rl)
{
    return rl ? rl->used : 0;
}

size_t hub_ratelimit_capacity(const hub_ratelimit_t *rl)
{
    return rl ? rl->mask + 1 : 0;
}

uint64_t hub_ratelimit_evictions(const hub_ratelimit_t *rl)
{
    return rl ? rl->evictions : 0;
}
