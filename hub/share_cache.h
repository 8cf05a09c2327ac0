/* An in-memory cache of the store reads the public edges make per request:
 * a share by its token (share-TOKEN.DOMAIN, TCP share redemption), a share
 * by id (the once-a-second revocation sweeps, replays), a tunnel by id (the
 * shared tunnel) and a public tunnel by name (NAME.DOMAIN). Without it each
 * request through a share cost two SQLite reads (and the JSON of its rules
 * parsed again), a plain tunnel request one.
 *
 * Why it never serves a stale record
 * - Invalidation lives in one place, the store: before an entry is trusted
 *   the cache compares hub_store_generation() (store.h) with the generation
 *   it last saw, and drops every entry when it moved. The generation moves
 *   on every row the store writes to a share, tunnel, agent or workspace -
 *   share create, revoke and expiry mark, tunnel update (pause, resume,
 *   rename, PATCH, status), tunnel delete and the shares its delete cascades
 *   to, agent delete and its tunnels - so no API handler, reaper or sweep
 *   calls the cache, and a write path added later is covered unless store.c
 *   makes it quiet on purpose (only the access log, its retention and a
 *   token's lastUsedAt are). Reads inside a transaction are never trusted
 *   after it (a rollback).
 * - Other processes: the generation also moves when another connection
 *   commits to the database file (SQLite's data_version: a second hub on
 *   the same file, an operator's sqlite3), so their writes are seen by the
 *   next request too. That check is one small statement (no table read),
 *   which the hub's store makes at most once a millisecond
 *   (external_check_ms in store.h); it runs once per lookup call -
 *   hub_share_cache_share_route() checks once for its two records. A miss
 *   checks first and then reads the record once, so nothing kept is older
 *   than the generation it is kept at. As a last bound, an entry is read
 *   again once it is max_age_ms old.
 * - Expiry is a time, not a write: the record comes back whatever its
 *   expires_at, and the caller checks it on every request against the
 *   store's clock (hub_share_decide, share_dead in edge_reach.c).
 * - Misses are not cached: an unknown token or name costs the check and one
 *   indexed store read, as before the cache, and no memory, so a flood of
 *   random share hosts cannot grow the cache. Store errors are not cached
 *   either.
 * - Bounded: at most max_entries entries and max_bytes bytes (records
 *   included); the least recently used entry goes first.
 *
 * Keys are 128-bit SipHash digests, keyed with a random per-cache key, of
 * the lookup kind and its key text: the raw token is never kept, and bucket
 * positions cannot be chosen by a client.
 *
 * Ownership: the caller owns the cache (hub_share_cache_free()); lookups
 * copy records into caller-owned structs. A tunnel comes back without its
 * heap strings (metadata, connection_string and last_error are NULL): the
 * edges use none of them; hub_tunnel_clear() on it is still fine. A hit
 * leaves a share's paths[] slots past npaths as they were (most of its
 * ~9 KB): nothing may read them.
 * Threading: one thread (the hub's event loop), like the store. */
#ifndef HUB_SHARE_CACHE_H
#define HUB_SHARE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct hub_share_cache hub_share_cache_t;

#define HUB_SHARE_CACHE_ENTRIES_DEFAULT 4096
#define HUB_SHARE_CACHE_BYTES_DEFAULT (16u * 1024 * 1024)
#define HUB_SHARE_CACHE_AGE_DEFAULT_MS 1000

typedef struct hub_share_cache_options {
    size_t max_entries; /* 0 = HUB_SHARE_CACHE_ENTRIES_DEFAULT */
    size_t max_bytes;   /* 0 = HUB_SHARE_CACHE_BYTES_DEFAULT */
    int64_t max_age_ms; /* 0 = HUB_SHARE_CACHE_AGE_DEFAULT_MS */
} hub_share_cache_options_t;

/* A new, empty cache (`opt` may be NULL: the defaults); NULL when out of
 * memory or libsodium cannot start. */
hub_share_cache_t *hub_share_cache_new(const hub_share_cache_options_t *opt);
/* Frees the cache and its entries. NULL is fine. */
void hub_share_cache_free(hub_share_cache_t *c);

/* The lookups: the same answers as the store calls they stand for
 * (hub_store_share_find_by_token, hub_store_share_get, hub_store_tunnel_get,
 * hub_store_tunnel_find_public), errors included, with the store read only
 * on a miss. A NULL cache reads the store every time. `out` is overwritten
 * on entry; on failure it holds nothing that needs freeing. */
int hub_share_cache_share_by_token(hub_share_cache_t *c, hub_store_t *st, const char *token,
                                   hub_share_t *out);
int hub_share_cache_share_get(hub_share_cache_t *c, hub_store_t *st, const char *workspace_id,
                              const char *id, hub_share_t *out);
int hub_share_cache_tunnel_get(hub_share_cache_t *c, hub_store_t *st, const char *workspace_id,
                               const char *id, hub_tunnel_t *out);
int hub_share_cache_tunnel_public(hub_share_cache_t *c, hub_store_t *st, const char *name,
                                  hub_tunnel_t *out);

/* A share request's two reads at once: the share whose token this is, as
 * hub_share_cache_share_by_token() returns it, and then, when that
 * succeeded, its tunnel into `tunnel` with the result in *tunnel_rc (as
 * hub_share_cache_tunnel_get()). The pair is kept in one entry (one key,
 * one probe, one generation check a request; a share whose tunnel is not
 * found is not kept), so a hit counts once in the stats. */
int hub_share_cache_share_route(hub_share_cache_t *c, hub_store_t *st, const char *token,
                                hub_share_t *share, hub_tunnel_t *tunnel, int *tunnel_rc);

typedef struct hub_share_cache_stats {
    uint64_t hits;
    uint64_t misses;    /* store reads, found or not */
    uint64_t evictions; /* entries dropped for the bounds or their age */
    uint64_t flushes;   /* times the generation moved and everything went */
    size_t entries;
    size_t bytes;
} hub_share_cache_stats_t;
/* Counters since hub_share_cache_new(); all zero for NULL. */
void hub_share_cache_stats(const hub_share_cache_t *c, hub_share_cache_stats_t *out);

#endif
