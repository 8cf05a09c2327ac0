/* What the share access log costs its writer thread per request, measured
 * in-process on a real SQLite file, so the figure does not depend on the
 * load of the machine the way a wrk run does: rows are appended as the
 * edge appends them (round-robin over many shares, at a paced rate, from
 * the loop's thread), and the writer thread's CPU time is the process's
 * minus the appending thread's. Then one list page and one retention pass.
 *
 * usage: bench_share_log [SHARES [ROWS_PER_S [SECONDS]]]   (1000 40000 10) */
#include "bench_store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t nshares = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    double rate = argc > 2 ? strtod(argv[2], NULL) : 40000;
    double secs = argc > 3 ? strtod(argv[3], NULL) : 10;
    if (!nshares || rate <= 0 || secs <= 0)
        return 2;
    bench_store_t bs;
    bench_store_open(&bs, "slog", true);
    hub_store_t *st = bs.st;
    char pw[HUB_PASSWORD_SIZE], stok[HUB_SHARE_TOKEN_SIZE];
    char(*ids)[HUB_ID_SIZE] = calloc(nshares, HUB_ID_SIZE);
    if (!ids)
        return 1;
    bench_check(hub_store_tx_begin(st), "begin");
    for (size_t i = 0; i < nshares; i++) {
        hub_share_spec_t ss = {.tunnel_id = bs.web.id,
                               .name = "bench",
                               .description = "",
                               .rate_limit = 1000,
                               .ttl_ms = 3600000};
        hub_share_t s;
        bench_check(hub_store_share_create(st, bs.ws.id, &ss, &s, stok, pw), "share");
        memcpy(ids[i], s.id, HUB_ID_SIZE);
    }
    bench_check(hub_store_tx_end(st, 0), "commit");

    /* Paced in 1 ms steps, as requests would arrive. */
    double t0 = clock_s(CLOCK_MONOTONIC), p0 = clock_s(CLOCK_PROCESS_CPUTIME_ID),
           m0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    size_t rows = 0;
    char path[64], client[32];
    for (;;) {
        double el = clock_s(CLOCK_MONOTONIC) - t0;
        if (el >= secs)
            break;
        size_t due = (size_t)(el * rate);
        for (; rows < due; rows++) {
            snprintf(path, sizeof(path), "/api/items/%zu?page=%zu", rows % 50, rows % 7);
            snprintf(client, sizeof(client), "127.0.0.1:%zu", 30000 + rows % 20000);
            hub_share_log_row_t r = {.at = 1795442400000LL + (int64_t)(el * 1000),
                                     .method = "GET",
                                     .path = path,
                                     .status = 200,
                                     .latency_ms = 1,
                                     .client = client};
            bench_check(hub_store_share_log_append(st, ids[rows % nshares], &r), "append");
        }
        usleep(1000);
    }
    hub_store_share_log_sync(st);
    double wall = clock_s(CLOCK_MONOTONIC) - t0;
    double writer =
        (clock_s(CLOCK_PROCESS_CPUTIME_ID) - p0) - (clock_s(CLOCK_THREAD_CPUTIME_ID) - m0);
    uint64_t dropped = hub_store_share_log_dropped(st);

    double l0 = clock_s(CLOCK_MONOTONIC);
    hub_share_log_list_t l = {0};
    for (int i = 0; i < 100; i++) {
        bench_check(hub_store_share_log_list(st, bs.ws.id, ids[i % nshares], 0, 100, &l), "list");
        hub_share_log_list_free(&l);
    }
    double list_ms = (clock_s(CLOCK_MONOTONIC) - l0) * 10;
    double r0 = clock_s(CLOCK_MONOTONIC);
    size_t pruned = 0;
    bench_check(hub_store_share_log_prune(st, 1795442400000LL + (int64_t)(secs * 500), &pruned),
                "prune");
    hub_store_share_log_sync(st);
    double prune_ms = (clock_s(CLOCK_MONOTONIC) - r0) * 1e3;

    printf("shares %zu, %zu rows in %.1f s (%.0f/s), %llu dropped\n", nshares, rows, wall,
           (double)rows / wall, (unsigned long long)dropped);
    printf("writer thread CPU: %.2f s, %.2f us per row\n", writer, writer / (double)rows * 1e6);
    printf("list page of 100 rows: %.2f ms; retention of half the rows: %.0f ms\n", list_ms,
           prune_ms);
    free(ids);
    bench_store_close(&bs);
    return 0;
}
