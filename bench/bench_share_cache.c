/* What the HTTP edge pays per request to find its share and tunnel, store
 * against cache (hub/share_cache.h), measured in-process on a real SQLite
 * file so that the figure does not depend on the load of the machine the way
 * a wrk run does: a share request (the share by its token, then its tunnel),
 * a plain tunnel request (the public tunnel by name), and an unknown token.
 * Shares are set up as bench/http_edge.sh does (GET only, two paths), and
 * looked up round-robin; the store is opened as `serve` opens it. Entries
 * age out after a second (share_cache.h), so the longer a run, the more
 * of its lookups are refills: the line below the table counts them.
 *
 * usage: bench_share_cache [ITERATIONS [SHARES]]   (default 200000, 300) */
#include "bench_store.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "router.h"
#include "share_cache.h"
#include "store.h"

static size_t nshares = 300;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char (*tokens)[HUB_SHARE_TOKEN_SIZE];
static hub_share_t share;

/* One share request's lookups; `c` NULL: the store, as before the cache. */
static void share_request(hub_share_cache_t *c, hub_store_t *st, size_t i)
{
    hub_tunnel_t t = {0};
    if (c) {
        int trc = 0;
        bench_check(hub_share_cache_share_route(c, st, tokens[i % nshares], &share, &t, &trc),
                    "share");
        bench_check(trc, "tunnel");
    } else {
        bench_check(hub_store_share_find_by_token(st, tokens[i % nshares], &share), "share");
        bench_check(hub_store_tunnel_get(st, share.workspace_id, share.tunnel_id, &t), "tunnel");
    }
    hub_tunnel_clear(&t);
}

static void tunnel_request(hub_share_cache_t *c, hub_store_t *st, size_t i)
{
    (void)i;
    hub_tunnel_t t = {0};
    bench_check(c ? hub_share_cache_tunnel_public(c, st, "web", &t)
                  : hub_store_tunnel_find_public(st, "web", &t),
                "public tunnel");
    hub_tunnel_clear(&t);
}

static void unknown_request(hub_share_cache_t *c, hub_store_t *st, size_t i)
{
    char tok[HUB_SHARE_TOKEN_SIZE];
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz234567";
    size_t v = i * 2654435761u;
    for (size_t k = 0; k < HUB_SHARE_TOKEN_LEN; k++, v = v * 31 + 7)
        tok[k] = alpha[(v >> 7) % 32];
    tok[HUB_SHARE_TOKEN_LEN] = '\0';
    int rc = c ? hub_share_cache_share_by_token(c, st, tok, &share)
               : hub_store_share_find_by_token(st, tok, &share);
    if (rc != CN_ENOTFOUND)
        bench_check(rc < 0 ? rc : CN_EPROTO, "unknown token");
}

typedef void (*request_fn)(hub_share_cache_t *c, hub_store_t *st, size_t i);

static double run(request_fn fn, hub_share_cache_t *c, hub_store_t *st, size_t n)
{
    for (size_t i = 0; i < nshares * 2; i++) /* warm: the cache full, SQLite's pages read */
        fn(c, st, i);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++)
        fn(c, st, i);
    return (now_s() - t0) / (double)n * 1e6;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    if (argc > 2)
        nshares = strtoul(argv[2], NULL, 10);
    if (!n || !nshares || !(tokens = calloc(nshares, sizeof(*tokens))))
        return 1;
    bench_store_t bs;
    bench_store_open(&bs, "cache", false);
    hub_store_t *st = bs.st;
    char pw[HUB_PASSWORD_SIZE];
    const char *paths[] = {"/1k.bin", "/x/*"};
    bench_check(hub_store_tx_begin(st), "begin");
    for (size_t i = 0; i < nshares; i++) {
        hub_share_spec_t ss = {.tunnel_id = bs.web.id,
                               .name = "bench",
                               .description = "",
                               .methods = HUB_GET,
                               .paths = paths,
                               .npaths = 2,
                               .rate_limit = 1000,
                               .ttl_ms = 3600000};
        bench_check(hub_store_share_create(st, bs.ws.id, &ss, NULL, tokens[i], pw), "share");
    }
    bench_check(hub_store_tx_end(st, 0), "commit");

    hub_share_cache_t *c = hub_share_cache_new(NULL);
    if (!c)
        return 1;
    static const struct {
        const char *what;
        request_fn fn;
    } cases[] = {
        {"share request (share by token + its tunnel)", share_request},
        {"tunnel request (public tunnel by name)", tunnel_request},
        {"unknown share token (a miss, never kept)", unknown_request},
    };
    printf("| lookups per request | store µs | cache µs | store / cache |\n");
    printf("| --- | ---: | ---: | ---: |\n");
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        double s = run(cases[k].fn, NULL, st, n);
        double m = run(cases[k].fn, c, st, n);
        printf("| %s | %.2f | %.2f | %.1f |\n", cases[k].what, s, m, s / m);
    }
    hub_share_cache_stats_t cs;
    hub_share_cache_stats(c, &cs);
    printf("\n%zu iterations each, %zu shares; cache: %llu hits, %llu misses, %zu entries, %zu "
           "bytes\n",
           n, nshares, (unsigned long long)cs.hits, (unsigned long long)cs.misses, cs.entries,
           cs.bytes);
    hub_share_cache_free(c);
    bench_store_close(&bs);
    free(tokens);
    return 0;
}
