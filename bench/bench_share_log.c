/* What the share access log costs its writer thread per request, measured
 * in-process on a real SQLite file, so the figure does not depend on the
 * load of the machine the way a wrk run does: rows are appended as the
 * edge appends them (round-robin over many shares, at a paced rate, from
 * the loop's thread), and the writer thread's CPU time is the process's
 * minus the appending thread's. Then one list page and one retention pass.
 *
 * With FILL > 0 the log is first filled with FILL rows as fast as the
 * writer takes them (the appending thread waits while the queue is full,
 * so nothing is lost), then retention keeps KEEP rows a share, and the
 * paced run asks for retention (newest KEEP a share) every PRUNE_S
 * seconds as the hub's tick does once a minute: the steady state of a
 * long-lived busy hub whose log is at its size (1,000 shares x 10,000
 * rows: 10 M). It reports the writer's commits (CPU, time, pages read),
 * the prunes, the list's pages at several depths and the file's size.
 *
 * usage: bench_share_log [SHARES [ROWS_PER_S [SECONDS [FILL [KEEP [PRUNE_S]]]]]]
 *        (1000 40000 10 0 10000 60) */
#include "bench_store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "store_sqlite_log.h"

#define BASE_AT 1795442400000LL

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void row_of(size_t i, int64_t at, char *path, size_t psize, char *client, size_t csize,
                   hub_share_log_row_t *r)
{
    snprintf(path, psize, "/api/items/%zu?page=%zu", i % 50, i % 7);
    snprintf(client, csize, "127.0.0.1:%zu", 30000 + i % 20000);
    *r = (hub_share_log_row_t){
        .at = at, .method = "GET", .path = path, .status = 200, .latency_ms = 1, .client = client};
}

/* The commits and prunes between two snapshots of the writer's counters. */
static void report(const char *what, const hub_slog_stats_t *a, const hub_slog_stats_t *b)
{
    const hub_slog_cost_t *c0 = &a->commits, *c1 = &b->commits;
    uint64_t c = c1->n - c0->n, rows = b->rows - a->rows;
    if (c)
        printf("%s: %llu commits of %.0f rows: writer CPU %.2f us a row, %.1f ms a commit "
               "(longest %.1f ms), %.0f pages read a commit\n",
               what, (unsigned long long)c, (double)rows / (double)c,
               (double)(c1->cpu_ns - c0->cpu_ns) / 1e3 / (double)rows,
               (double)(c1->wall_ns - c0->wall_ns) / 1e6 / (double)c, (double)c1->wall_max_ns / 1e6,
               (double)(c1->pages_read - c0->pages_read) / (double)c);
    const hub_slog_cost_t *p0 = &a->prune_steps, *p1 = &b->prune_steps;
    uint64_t steps = p1->n - p0->n;
    if (steps)
        printf(
            "%s: %llu retention passes in %llu steps deleting %llu rows (at most %llu a step): "
            "%.0f ms a step (longest %.0f ms, CPU %.0f ms), %.0f pages read a step\n",
            what, (unsigned long long)(b->prunes - a->prunes), (unsigned long long)steps,
            (unsigned long long)(b->pruned - a->pruned), (unsigned long long)b->prune_step_rows_max,
            (double)(p1->wall_ns - p0->wall_ns) / 1e6 / (double)steps,
            (double)p1->wall_max_ns / 1e6, (double)(p1->cpu_ns - p0->cpu_ns) / 1e6 / (double)steps,
            (double)(p1->pages_read - p0->pages_read) / (double)steps);
}

/* The log file's size, its pages and free pages, and the WAL's size. */
static void file_size(const char *log_path)
{
    struct stat st = {0}, wst = {0};
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof(wal), "%s-wal", log_path);
    stat(log_path, &st);
    stat(wal, &wst);
    sqlite3 *db = NULL;
    long long pages = 0, freel = 0, runs = 0, rows = 0;
    if (sqlite3_open_v2(log_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        static const char *const q[] = {"PRAGMA page_count", "PRAGMA freelist_count",
                                        "SELECT count(*) FROM share_access_runs",
                                        "SELECT count(*) FROM share_access_log"};
        long long *out[] = {&pages, &freel, &runs, &rows};
        for (int i = 0; i < 4; i++) {
            sqlite3_stmt *s = NULL;
            if (sqlite3_prepare_v2(db, q[i], -1, &s, NULL) == SQLITE_OK &&
                sqlite3_step(s) == SQLITE_ROW)
                *out[i] = sqlite3_column_int64(s, 0);
            sqlite3_finalize(s);
        }
    }
    sqlite3_close(db);
    printf("file: %lld rows, %lld runs; %.1f MB (%lld pages, %lld free), WAL %.1f MB\n", rows, runs,
           (double)st.st_size / 1e6, pages, freel, (double)wst.st_size / 1e6);
}

int main(int argc, char **argv)
{
    size_t nshares = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    double rate = argc > 2 ? strtod(argv[2], NULL) : 40000;
    double secs = argc > 3 ? strtod(argv[3], NULL) : 10;
    size_t fill = argc > 4 ? strtoul(argv[4], NULL, 10) : 0;
    size_t keep = argc > 5 ? strtoul(argv[5], NULL, 10) : HUB_SHARE_LOG_KEEP;
    double prune_s = argc > 6 ? strtod(argv[6], NULL) : 60;
    if (!nshares || rate <= 0 || secs <= 0 || !keep || prune_s <= 0)
        return 2;
    /* The store's own log is opened without a thread and stays idle: the
     * bench writes through a log handle of its own, whose counters it
     * reads, with the thread `serve` runs. */
    bench_store_t bs;
    bench_store_open(&bs, "slog", false);
    hub_store_t *st = bs.st;
    char err[256] = "";
    hub_slog_t *lg = NULL;
    hub_slog_options_t lo = {.main_path = bs.db, .thread = true};
    if (hub_slog_open(&lo, &lg, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
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

    char path[64], client[32];
    hub_share_log_row_t r;
    hub_slog_stats_t s0, s1, s2;
    hub_slog_stats(lg, &s0);
    if (fill) {
        /* As fast as the writer takes them: a full queue makes this thread
         * wait (its drops are not the paced run's). */
        double f0 = clock_s(CLOCK_MONOTONIC);
        for (size_t i = 0; i < fill; i++) {
            row_of(i, BASE_AT - 1, path, sizeof(path), client, sizeof(client), &r);
            while (hub_slog_append(lg, ids[i % nshares], &r) == CN_EEXHAUSTED)
                usleep(500);
        }
        size_t n = 0;
        bench_check(hub_slog_prune(lg, 0, keep, &n), "prune");
        hub_slog_sync(lg);
        hub_slog_stats(lg, &s1);
        printf("fill: %zu rows in %.1f s, then kept %zu a share\n", fill,
               clock_s(CLOCK_MONOTONIC) - f0, keep);
        report("fill", &s0, &s1);
        file_size(hub_slog_path(lg));
        s0 = s1;
    }
    uint64_t dropped0 = hub_slog_dropped(lg);

    /* Paced in 1 ms steps, as requests would arrive. */
    double t0 = clock_s(CLOCK_MONOTONIC), p0 = clock_s(CLOCK_PROCESS_CPUTIME_ID),
           m0 = clock_s(CLOCK_THREAD_CPUTIME_ID), next_prune = prune_s;
    size_t rows = 0;
    for (;;) {
        double el = clock_s(CLOCK_MONOTONIC) - t0;
        if (el >= secs)
            break;
        size_t due = (size_t)(el * rate);
        for (; rows < due; rows++) {
            row_of(rows, BASE_AT + (int64_t)(el * 1000), path, sizeof(path), client, sizeof(client),
                   &r);
            (void)hub_slog_append(lg, ids[rows % nshares], &r); /* a drop is counted */
        }
        if (fill && el >= next_prune) {
            size_t n = 0;
            bench_check(hub_slog_prune(lg, 0, keep, &n), "prune");
            next_prune += prune_s;
        }
        usleep(1000);
    }
    hub_slog_sync(lg);
    double wall = clock_s(CLOCK_MONOTONIC) - t0;
    double writer =
        (clock_s(CLOCK_PROCESS_CPUTIME_ID) - p0) - (clock_s(CLOCK_THREAD_CPUTIME_ID) - m0);
    uint64_t dropped = hub_slog_dropped(lg) - dropped0;
    hub_slog_stats(lg, &s1);

    printf("shares %zu, %zu rows in %.1f s (%.0f/s), %llu dropped\n", nshares, rows, wall,
           (double)rows / wall, (unsigned long long)dropped);
    printf("writer thread CPU: %.2f s, %.2f us per row\n", writer, writer / (double)rows * 1e6);
    report("paced", &s0, &s1);

    double l0 = clock_s(CLOCK_MONOTONIC);
    hub_share_log_list_t l = {0};
    for (int i = 0; i < 100; i++) {
        bench_check(hub_store_share_log_list(st, bs.ws.id, ids[i % nshares], 0, 100, &l), "list");
        hub_share_log_list_free(&l);
    }
    double list_ms = (clock_s(CLOCK_MONOTONIC) - l0) * 10;
    if (fill) {
        /* One share's pages, newest first, by the cursor to its oldest. */
        double worst = 0, sum = 0;
        size_t pages = 0, seen = 0;
        int64_t before = 0;
        for (;;) {
            double q0 = clock_s(CLOCK_MONOTONIC);
            bench_check(hub_store_share_log_list(st, bs.ws.id, ids[0], before, 100, &l), "list");
            double ms = (clock_s(CLOCK_MONOTONIC) - q0) * 1e3;
            size_t got = l.count;
            if (got)
                before = l.items[got - 1].id;
            hub_share_log_list_free(&l);
            if (!got)
                break;
            sum += ms;
            worst = ms > worst ? ms : worst;
            pages++;
            seen += got;
        }
        printf("list: newest page of 100 rows %.2f ms; one share's %zu rows in %zu pages by "
               "the cursor: %.2f ms a page, the slowest %.2f ms\n",
               list_ms, seen, pages, pages ? sum / (double)pages : 0, worst);
        file_size(hub_slog_path(lg));
    } else {
        double r0 = clock_s(CLOCK_MONOTONIC);
        size_t pruned = 0;
        bench_check(hub_slog_prune(lg, BASE_AT + (int64_t)(secs * 500), keep, &pruned), "prune");
        hub_slog_sync(lg);
        double prune_ms = (clock_s(CLOCK_MONOTONIC) - r0) * 1e3;
        printf("list page of 100 rows: %.2f ms; retention of half the rows: %.0f ms\n", list_ms,
               prune_ms);
        hub_slog_stats(lg, &s2);
        report("retention", &s1, &s2);
    }
    free(ids);
    hub_slog_close(lg);
    bench_store_close(&bs);
    return 0;
}
