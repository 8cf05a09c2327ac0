/* The edge's cache of share and tunnel records (share_cache.h): a hash
 * table of keyed digests with chaining, and one LRU list for the bounds. */
#include "share_cache.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cn_err.h"

/* Entries are named by a keyed SipHash-2-4 digest of what they are found
 * by (crypto_shorthash_siphashx24, 128 bits): a share token is never kept
 * as such, a Host header's name cannot be chosen to crowd one bucket, and
 * two names meet by chance with odds of 2^-128 a pair. SipHash replaced a
 * keyed BLAKE2b here: two of them per share request were 0.6 us of the
 * hub's ~21 (perf), SipHash is about a tenth of that for these short keys. */
#define KEY_BYTES crypto_shorthash_siphashx24_BYTES
/* The longest name + value a key is made of; a longer one is not cached
 * (no record has one: tokens, names and ids are far shorter). */
#define KEY_INPUT_MAX 1024

enum kind {
    K_SHARE_TOKEN = 1,
    K_SHARE_ID,
    K_TUNNEL_ID,
    K_TUNNEL_PUBLIC,
    /* A share by its token with its tunnel, for share_route(): the edge's
     * per-request pair in one entry, one key and one probe (two of each
     * showed in a share request's profile). Fresh the same way: the
     * generation moves for a write to either. */
    K_SHARE_ROUTE,
};

typedef struct entry {
    struct entry *hnext;       /* bucket chain */
    struct entry *prev, *next; /* LRU list, most recent first */
    uint8_t key[KEY_BYTES];
    int64_t filled_at;
    size_t bytes;
    size_t rec_size;
    /* The record, in the same allocation (one cache miss less a lookup):
     * a packed share, a tunnel, or both (rec_layout()), by the kind in the
     * key. uint64_t: aligned for the tunnel's pointers and int64_t. */
    uint64_t rec[];
} entry_t;

struct hub_share_cache {
    uint8_t hash_key[crypto_shorthash_siphashx24_KEYBYTES];
    entry_t **buckets;
    size_t nbuckets; /* a power of two */
    entry_t *head, *tail;
    size_t max_entries, max_bytes;
    int64_t max_age_ms;
    uint64_t gen; /* the store's generation the entries were read at */
    bool gen_known;
    hub_share_cache_stats_t stats;
};

hub_share_cache_t *hub_share_cache_new(const hub_share_cache_options_t *opt)
{
    if (sodium_init() < 0)
        return NULL;
    hub_share_cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->max_entries = opt && opt->max_entries ? opt->max_entries : HUB_SHARE_CACHE_ENTRIES_DEFAULT;
    c->max_bytes = opt && opt->max_bytes ? opt->max_bytes : HUB_SHARE_CACHE_BYTES_DEFAULT;
    c->max_age_ms = opt && opt->max_age_ms > 0 ? opt->max_age_ms : HUB_SHARE_CACHE_AGE_DEFAULT_MS;
    c->nbuckets = 16;
    while (c->nbuckets < c->max_entries && c->nbuckets < (1u << 20))
        c->nbuckets <<= 1;
    /* An array of pointers. NOLINTNEXTLINE(bugprone-sizeof-expression) */
    c->buckets = calloc(c->nbuckets, sizeof(entry_t *));
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    randombytes_buf(c->hash_key, sizeof(c->hash_key));
    return c;
}

static size_t bucket_of(const hub_share_cache_t *c, const uint8_t key[static KEY_BYTES])
{
    uint64_t h;
    memcpy(&h, key, sizeof(h)); /* a keyed digest: uniform already */
    return (size_t)(h & (c->nbuckets - 1));
}

/* Unlinks `e` from its bucket and the LRU list and frees it. */
static void drop(hub_share_cache_t *c, entry_t *e)
{
    for (entry_t **pp = &c->buckets[bucket_of(c, e->key)]; *pp; pp = &(*pp)->hnext)
        if (*pp == e) {
            *pp = e->hnext;
            break;
        }
    if (e->prev)
        e->prev->next = e->next;
    if (e->next)
        e->next->prev = e->prev;
    if (c->head == e)
        c->head = e->next;
    if (c->tail == e)
        c->tail = e->prev;
    c->stats.entries--;
    c->stats.bytes -= e->bytes;
    sodium_memzero(e->rec, e->rec_size); /* shares hold auth hashes */
    free(e);
}

static void drop_all(hub_share_cache_t *c)
{
    while (c->head)
        drop(c, c->head);
}

void hub_share_cache_free(hub_share_cache_t *c)
{
    if (!c)
        return;
    drop_all(c);
    free(c->buckets);
    sodium_memzero(c->hash_key, sizeof(c->hash_key));
    free(c);
}

void hub_share_cache_stats(const hub_share_cache_t *c, hub_share_cache_stats_t *out)
{
    if (c)
        *out = c->stats;
    else
        memset(out, 0, sizeof(*out));
}

/* The digest of (kind, a, b): the parts are length-prefixed, so no two
 * different lookups share a key. */
/* The key of (kind, a, b); false when a and b are too long to be cached. */
static bool make_key(const hub_share_cache_t *c, enum kind kind, const char *a, const char *b,
                     uint8_t key[static KEY_BYTES])
{
    uint8_t in[1 + 2 * sizeof(uint64_t) + KEY_INPUT_MAX];
    size_t n = 0;
    in[n++] = (uint8_t)kind;
    const char *parts[2] = {a ? a : "", b ? b : ""};
    for (size_t i = 0; i < 2; i++) {
        uint64_t len = strlen(parts[i]);
        if (len > KEY_INPUT_MAX || n + sizeof(len) + len > sizeof(in))
            return false;
        memcpy(in + n, &len, sizeof(len)); /* lengths first: ("ab","c") is not ("a","bc") */
        n += sizeof(len);
        memcpy(in + n, parts[i], len);
        n += len;
    }
    crypto_shorthash_siphashx24(key, in, n, c->hash_key);
    sodium_memzero(in, n); /* it held a share token */
    return true;
}

/* Empties the cache when the store's generation moved since it was read:
 * the one check that makes every entry current. It costs a small SQLite
 * statement, so a lookup of several records checks once. */
static void sync_gen(hub_share_cache_t *c, hub_store_t *st)
{
    uint64_t gen = hub_store_generation(st);
    if (!c->gen_known || gen != c->gen) {
        if (c->head)
            c->stats.flushes++;
        drop_all(c);
        c->gen = gen;
        c->gen_known = true;
    }
}

/* The entry for `key`, unchecked against the generation; NULL if none or
 * too old. */
static entry_t *probe(hub_share_cache_t *c, const uint8_t key[static KEY_BYTES], int64_t now)
{
    entry_t *e = c->buckets[bucket_of(c, key)];
    while (e && sodium_memcmp(e->key, key, KEY_BYTES) != 0)
        e = e->hnext;
    if (!e)
        return NULL;
    if (now - e->filled_at >= c->max_age_ms) {
        c->stats.evictions++;
        drop(c, e);
        return NULL;
    }
    if (e != c->head) { /* to the front of the LRU list */
        e->prev->next = e->next;
        if (e->next)
            e->next->prev = e->prev;
        else
            c->tail = e->prev;
        e->prev = NULL;
        e->next = c->head;
        c->head->prev = e;
        c->head = e;
    }
    return e;
}

/* The live entry for `key`, moved to the front, or NULL. Only an entry
 * found is checked against the generation (sync_gen, once per `*synced`):
 * a miss costs no check until there is something to keep. */
static entry_t *find(hub_share_cache_t *c, hub_store_t *st, const uint8_t key[static KEY_BYTES],
                     int64_t now, bool *synced)
{
    entry_t *e = probe(c, key, now);
    if (!e || *synced)
        return e;
    sync_gen(c, st);
    *synced = true;
    return probe(c, key, now); /* gone if the generation moved */
}

/* Keeps a copy of `rec`, read at the cache's generation, making room under
 * the bounds. Out of memory or a record past max_bytes: not kept. */
static bool is_share(enum kind kind)
{
    return kind == K_SHARE_TOKEN || kind == K_SHARE_ID;
}

/* A share as the cache keeps it: the fields before the path slots, its
 * npaths slots, the fields after them. A whole hub_share_t is ~9 KB, nearly
 * all of it HUB_SHARE_PATHS_MAX slots: kept whole, 16 MiB held ~1,700
 * shares, and a round-robin over 2,000 (bench/http_edge.sh) missed every
 * time, an SQLite read per request (share / tunnel 0.73). Compact, a share
 * with a path or two is ~1.3 KB. */
#define SHARE_HEAD offsetof(hub_share_t, paths)
#define SHARE_TAIL offsetof(hub_share_t, rate_limit)
#define SHARE_SLOT sizeof(((hub_share_t *)0)->paths[0])

static size_t share_paths(const hub_share_t *s)
{
    return s->npaths < HUB_SHARE_PATHS_MAX ? s->npaths : HUB_SHARE_PATHS_MAX;
}

static size_t share_packed_size(const hub_share_t *s)
{
    return SHARE_HEAD + share_paths(s) * SHARE_SLOT + (sizeof(hub_share_t) - SHARE_TAIL);
}

static void share_pack(uint8_t *dst, const hub_share_t *s)
{
    size_t np = share_paths(s);
    memcpy(dst, s, SHARE_HEAD);
    memcpy(dst + SHARE_HEAD, s->paths, np * SHARE_SLOT);
    memcpy(dst + SHARE_HEAD + np * SHARE_SLOT, (const char *)s + SHARE_TAIL,
           sizeof(hub_share_t) - SHARE_TAIL);
}

/* The slots past npaths in `d` are left as they were (they mean nothing,
 * share_cache.h). */
static void share_unpack(hub_share_t *d, const uint8_t *src)
{
    memcpy(d, src, SHARE_HEAD);
    size_t np = share_paths(d);
    memcpy(d->paths, src + SHARE_HEAD, np * SHARE_SLOT);
    memcpy((char *)d + SHARE_TAIL, src + SHARE_HEAD + np * SHARE_SLOT,
           sizeof(hub_share_t) - SHARE_TAIL);
}

/* The record of `kind` for a share and/or a tunnel: its size, and where
 * the tunnel starts in it (a route's follows its packed share). */
static size_t rec_layout(enum kind kind, const hub_share_t *share, size_t *tunnel_at)
{
    size_t packed = share ? share_packed_size(share) : 0;
    *tunnel_at = kind == K_SHARE_ROUTE ? (packed + 7) & ~(size_t)7 : 0;
    if (is_share(kind))
        return packed;
    return *tunnel_at + sizeof(hub_tunnel_t);
}

/* Keeps a copy of `share` and/or `tunnel` (as `kind` needs), read at the
 * cache's generation, making room under the bounds. Out of memory or a
 * record past max_bytes: not kept. */
static void insert(hub_share_cache_t *c, enum kind kind, const uint8_t key[static KEY_BYTES],
                   const hub_share_t *share, const hub_tunnel_t *tunnel, int64_t now)
{
    size_t tunnel_at;
    size_t rec_size = rec_layout(kind, share, &tunnel_at);
    size_t bytes = sizeof(entry_t) + rec_size;
    if (bytes > c->max_bytes)
        return;
    while (c->tail &&
           (c->stats.entries >= c->max_entries || c->stats.bytes + bytes > c->max_bytes)) {
        c->stats.evictions++;
        drop(c, c->tail);
    }
    entry_t *e = calloc(1, bytes);
    if (!e)
        return;
    uint8_t *rec = (uint8_t *)e->rec;
    if (share)
        share_pack(rec, share);
    if (tunnel)
        memcpy(rec + tunnel_at, tunnel, sizeof(*tunnel));
    memcpy(e->key, key, KEY_BYTES);
    e->rec_size = rec_size;
    e->bytes = bytes;
    e->filled_at = now;
    size_t b = bucket_of(c, key);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
    c->stats.entries++;
    c->stats.bytes += bytes;
}

/* A tunnel as the cache keeps it: the fixed fields only. */
static void tunnel_strip(hub_tunnel_t *t)
{
    free(t->metadata);
    free(t->connection_string);
    free(t->last_error);
    t->metadata = t->connection_string = t->last_error = NULL;
}

/* The store call a lookup stands for, into `out` (a hub_share_t or a
 * hub_tunnel_t by kind; a tunnel without its heap strings). */
static int store_read(hub_store_t *st, enum kind kind, const char *a, const char *b, void *out)
{
    int rc;
    switch (kind) {
    case K_SHARE_TOKEN:
        return hub_store_share_find_by_token(st, a, out);
    case K_SHARE_ID:
        return hub_store_share_get(st, a, b, out);
    case K_TUNNEL_ID:
        rc = hub_store_tunnel_get(st, a, b, out);
        break;
    default:
        rc = hub_store_tunnel_find_public(st, a, out);
        break;
    }
    if (rc == 0)
        tunnel_strip(out); /* what a hit returns, a miss returns too */
    return rc;
}

/* A hit's copy into `share` and/or `tunnel`, as `kind` holds: a share
 * unpacked (only its npaths slots are copied: a share request looks it up
 * each time), a tunnel as kept. */
static void copy_out(enum kind kind, const entry_t *e, hub_share_t *share, hub_tunnel_t *tunnel)
{
    const uint8_t *rec = (const uint8_t *)e->rec;
    size_t tunnel_at;
    if (share)
        share_unpack(share, rec);
    if (tunnel) {
        rec_layout(kind, share, &tunnel_at);
        memcpy(tunnel, rec + tunnel_at, sizeof(*tunnel));
    }
}

/* One lookup into `out` (`size` bytes) at store time `now`. `synced`:
 * whether sync_gen() ran with no store call since (in, out).
 *
 * A miss checks the generation first and then reads the record once, so
 * that what is kept is no older than the generation it is kept at. (It
 * read, checked and read again, so that an unknown token cost no check;
 * but the check is a clock read, and at most one small statement a
 * millisecond (store.h), while every entry that ages out (max_age_ms) is
 * a miss of a record that exists: two SQLite reads and two parses of a
 * share's rules each time, for each share in use, every second.) */
static int lookup(hub_share_cache_t *c, hub_store_t *st, enum kind kind, const char *a,
                  const char *b, void *out, int64_t now, bool *synced)
{
    uint8_t key[KEY_BYTES];
    if (!make_key(c, kind, a, b, key))
        return store_read(st, kind, a, b, out); /* too long to be anything cached */
    bool is_sh = is_share(kind);
    entry_t *e = find(c, st, key, now, synced);
    if (e) {
        c->stats.hits++;
        copy_out(kind, e, is_sh ? out : NULL, is_sh ? NULL : out);
        return 0;
    }
    c->stats.misses++;
    if (!*synced) {
        sync_gen(c, st);
        *synced = true;
    }
    int rc = store_read(st, kind, a, b, out);
    if (rc == 0)
        insert(c, kind, key, is_sh ? out : NULL, is_sh ? NULL : out, now);
    return rc;
}

int hub_share_cache_share_by_token(hub_share_cache_t *c, hub_store_t *st, const char *token,
                                   hub_share_t *out)
{
    if (!c || !token)
        return hub_store_share_find_by_token(st, token, out);
    bool synced = false;
    return lookup(c, st, K_SHARE_TOKEN, token, NULL, out, hub_store_now(st), &synced);
}

int hub_share_cache_share_get(hub_share_cache_t *c, hub_store_t *st, const char *workspace_id,
                              const char *id, hub_share_t *out)
{
    if (!c || !workspace_id || !id)
        return hub_store_share_get(st, workspace_id, id, out);
    bool synced = false;
    return lookup(c, st, K_SHARE_ID, workspace_id, id, out, hub_store_now(st), &synced);
}

int hub_share_cache_tunnel_get(hub_share_cache_t *c, hub_store_t *st, const char *workspace_id,
                               const char *id, hub_tunnel_t *out)
{
    if (!c || !workspace_id || !id) {
        int rc = hub_store_tunnel_get(st, workspace_id, id, out);
        if (rc == 0)
            tunnel_strip(out);
        return rc;
    }
    bool synced = false;
    return lookup(c, st, K_TUNNEL_ID, workspace_id, id, out, hub_store_now(st), &synced);
}

int hub_share_cache_tunnel_public(hub_share_cache_t *c, hub_store_t *st, const char *name,
                                  hub_tunnel_t *out)
{
    if (!c || !name) {
        int rc = hub_store_tunnel_find_public(st, name, out);
        if (rc == 0)
            tunnel_strip(out);
        return rc;
    }
    bool synced = false;
    return lookup(c, st, K_TUNNEL_PUBLIC, name, NULL, out, hub_store_now(st), &synced);
}

int hub_share_cache_share_route(hub_share_cache_t *c, hub_store_t *st, const char *token,
                                hub_share_t *share, hub_tunnel_t *tunnel, int *tunnel_rc)
{
    if (!c || !token) {
        int rc = hub_share_cache_share_by_token(NULL, st, token, share);
        if (rc == 0)
            *tunnel_rc =
                hub_share_cache_tunnel_get(NULL, st, share->workspace_id, share->tunnel_id, tunnel);
        return rc;
    }
    /* One entry for both; on a miss, one check for both: a store read in
     * between (the share's) moves no generation, reads never do. */
    int64_t now = hub_store_now(st);
    uint8_t key[KEY_BYTES];
    bool synced = false;
    if (!make_key(c, K_SHARE_ROUTE, token, NULL, key))
        return hub_share_cache_share_route(NULL, st, token, share, tunnel, tunnel_rc);
    entry_t *e = find(c, st, key, now, &synced);
    if (e) {
        c->stats.hits++;
        copy_out(K_SHARE_ROUTE, e, share, tunnel);
        *tunnel_rc = 0;
        return 0;
    }
    c->stats.misses++;
    sync_gen(c, st);
    synced = true;
    int rc = store_read(st, K_SHARE_TOKEN, token, NULL, share);
    if (rc < 0)
        return rc;
    *tunnel_rc =
        lookup(c, st, K_TUNNEL_ID, share->workspace_id, share->tunnel_id, tunnel, now, &synced);
    if (*tunnel_rc == 0)
        insert(c, K_SHARE_ROUTE, key, share, tunnel, now);
    return 0;
}
