/* The share access log in its own file (PATH-log), written by a thread of
 * the store's own (hub_store_options_t.log_thread, as `serve` opens it):
 * rows appended reach the list; the main file's generation does not move
 * for the log's commits nor for its retention (which reads the main file's
 * shares); a close writes what is queued; a full queue drops and counts;
 * ids only grow, so page cursors stay right across retention; rows of
 * shares that are gone are removed. */
#include "hub_test.h"

#include <time.h>

#include "cn_err.h"
#include "cn_time.h"
#include "router.h"
#include "store.h"
#include "store_sqlite_log.h"

#define T0 1795442400000LL

typedef struct fx {
    hub_test_store_t s;
    char logf[PATH_MAX + 32];
    hub_workspace_t ws;
    hub_tunnel_t tunnel;
    hub_share_t share;
    size_t step_rows; /* log_prune_step_rows of the next fx_open (0: default) */
} fx_t;

static void fx_open(fx_t *f, bool thread, size_t queue_bytes)
{
    hub_store_options_t so = {
        .log_thread = thread, .log_queue_bytes = queue_bytes, .log_prune_step_rows = f->step_rows};
    hub_test_store_open(&f->s, &so, true);
}

/* A tunnel NAME of an agent of its own, with a share "s" (its agent
 * named after it). */
static void add_tunnel(fx_t *f, const char *name, hub_tunnel_t *t, hub_share_t *share)
{
    hub_agent_t agent;
    char tok[HUB_TOKEN_STR_SIZE], token[HUB_SHARE_TOKEN_SIZE], pw[HUB_PASSWORD_SIZE];
    assert_int_equal(hub_store_agent_create(f->s.st, f->ws.id, name, 0, 0, tok, &agent), 0);
    hub_tunnel_spec_t sp = {.name = name,
                            .agent_id = agent.id,
                            .target_host = "127.0.0.1",
                            .target_port = 8080,
                            .protocol = HUB_PROTO_HTTP,
                            .is_public = true};
    assert_int_equal(hub_store_tunnel_create(f->s.st, f->ws.id, &sp, t, NULL), 0);
    hub_share_spec_t ss = {.tunnel_id = t->id, .name = "s", .description = "", .rate_limit = 60};
    assert_int_equal(hub_store_share_create(f->s.st, f->ws.id, &ss, share, token, pw), 0);
}

static fx_t *fx_new(bool thread, size_t queue_bytes)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    hub_test_store_init(&f->s, 5, T0);
    snprintf(f->logf, sizeof(f->logf), "%s-log", f->s.db);
    fx_open(f, thread, queue_bytes);
    assert_int_equal(hub_store_workspace_create(f->s.st, "ws", &f->ws), 0);
    add_tunnel(f, "web", &f->tunnel, &f->share);
    return f;
}

static void fx_free(fx_t *f)
{
    hub_tunnel_clear(&f->tunnel);
    hub_test_store_fini(&f->s);
    free(f);
}

/* Row number i (its path "/r/i", in `path`), at `at`. */
static hub_share_log_row_t row_n(int64_t at, int i, char path[32])
{
    snprintf(path, 32, "/r/%d", i);
    return (hub_share_log_row_t){.at = at,
                                 .method = "GET",
                                 .path = path,
                                 .status = 200,
                                 .latency_ms = 1,
                                 .client = "127.0.0.1:5000"};
}

static int append(fx_t *f, const char *share_id, int64_t at, int i)
{
    char path[32];
    hub_share_log_row_t r = row_n(at, i, path);
    return hub_store_share_log_append(f->s.st, share_id, &r);
}

/* Rows in the log file, read by a connection of the test's own. */
static int64_t log_rows(const fx_t *f)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_open_v2(f->logf, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT count(*) FROM share_access_log", -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(h);
    return n;
}

/* One integer from the log file, read by a connection of the test's own. */
static int64_t log_int(const fx_t *f, const char *sql)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_open_v2(f->logf, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(h);
    return n;
}

/* Every run counts exactly the rows of its share in its range, and starts
 * and ends on one of them. */
static void runs_exact(const fx_t *f)
{
    assert_int_equal(
        log_int(f, "SELECT count(*) FROM share_access_runs r WHERE r.n <> (SELECT count(*) FROM "
                   "share_access_log l WHERE l.id BETWEEN r.first_id AND r.last_id AND "
                   "l.share_id = r.share_id) OR r.n <> (SELECT count(*) FROM share_access_log l "
                   "WHERE l.id BETWEEN r.first_id AND r.last_id) OR NOT EXISTS (SELECT 1 FROM "
                   "share_access_log l WHERE l.id = r.first_id) OR NOT EXISTS (SELECT 1 FROM "
                   "share_access_log l WHERE l.id = r.last_id)"),
        0);
    assert_int_equal(log_int(f, "SELECT count(*) FROM share_access_log"),
                     log_int(f, "SELECT coalesce(sum(n), 0) FROM share_access_runs"));
}

/* A second share of the fixture's tunnel. */
static void other_share(fx_t *f, hub_share_t *out)
{
    char token[HUB_SHARE_TOKEN_SIZE], pw[HUB_PASSWORD_SIZE];
    hub_share_spec_t ss = {
        .tunnel_id = f->tunnel.id, .name = "s2", .description = "", .rate_limit = 60};
    assert_int_equal(hub_store_share_create(f->s.st, f->ws.id, &ss, out, token, pw), 0);
}

/* Pages through a share's whole log `page` rows at a time; checks newest
 * first and returns the paths' numbers (newest first) in `nums`. */
static size_t page_all(fx_t *f, const char *share_id, size_t page, int *nums, size_t cap)
{
    size_t n = 0;
    int64_t before = 0;
    for (;;) {
        hub_share_log_list_t l = {0};
        assert_int_equal(hub_store_share_log_list(f->s.st, f->ws.id, share_id, before, page, &l),
                         0);
        assert_true(l.count <= page);
        for (size_t i = 0; i < l.count; i++) {
            assert_true(n < cap);
            assert_true(i == 0 || l.items[i].id < l.items[i - 1].id);
            assert_true(!before || l.items[i].id < before);
            nums[n++] = atoi(l.items[i].path + 3); /* "/r/N" */
        }
        size_t got = l.count;
        if (got)
            before = l.items[got - 1].id;
        hub_share_log_list_free(&l);
        if (got < page)
            return n;
    }
}

static size_t listed(fx_t *f, int64_t before, size_t limit, int64_t *first, int64_t *last)
{
    hub_share_log_list_t l = {0};
    assert_int_equal(hub_store_share_log_list(f->s.st, f->ws.id, f->share.id, before, limit, &l),
                     0);
    size_t n = l.count;
    if (first)
        *first = n ? l.items[0].id : 0;
    if (last)
        *last = n ? l.items[n - 1].id : 0;
    for (size_t i = 1; i < n; i++) /* newest first */
        assert_true(l.items[i].id < l.items[i - 1].id);
    hub_share_log_list_free(&l);
    return n;
}

/* Rows handed to the writer are in the very next list, without any call
 * but the list: the writer commits about once a second under load
 * (HUB_SLOG_FLUSH_MS), so the list asks it to commit what is queued first
 * (GET .../logs right after a request shows it). The main file has no
 * access-log table, the log file is private. */
static void test_rows_reach_the_list(void **state)
{
    (void)state;
    fx_t *f = fx_new(true, 0);
    assert_int_equal(hub_test_mode(f->logf), 0600);
    for (int round = 0; round < 3; round++) {
        for (int i = round * 50; i < (round + 1) * 50; i++)
            assert_int_equal(append(f, f->share.id, T0 + i, i), 0);
        uint64_t t0 = cn_time_mono_ms();
        assert_int_equal(listed(f, 0, 1000, NULL, NULL), (size_t)(round + 1) * 50);
        /* Without waiting out the writer's gathering (1 s). */
        assert_true(cn_time_mono_ms() - t0 < 500);
    }
    hub_share_log_list_t l = {0};
    assert_int_equal(hub_store_share_log_list(f->s.st, f->ws.id, f->share.id, 0, 1, &l), 0);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].path, "/r/149");
    assert_string_equal(l.items[0].method, "GET");
    assert_string_equal(l.items[0].client, "127.0.0.1:5000");
    assert_int_equal(l.items[0].at, T0 + 149);
    hub_share_log_list_free(&l);
    fx_free(f);
}

/* The log's commits and its retention (which reads the main file's shares
 * from the writer's connection) leave the main file's data_version, and so
 * the share cache's generation, where they were. */
static void test_log_commits_do_not_move_the_generation(void **state)
{
    (void)state;
    fx_t *f = fx_new(true, 0);
    uint64_t gen = hub_store_generation(f->s.st);
    for (int round = 0; round < 5; round++) {
        int64_t t = T0 + round * 200;
        for (int i = 0; i < 200; i++)
            assert_int_equal(append(f, f->share.id, t + i, i), 0);
        hub_store_share_log_sync(f->s.st);
        assert_int_equal(log_rows(f), round ? 300 : 200);
        assert_int_equal(hub_store_share_log_prune(f->s.st, t + 100, NULL), 0);
        hub_store_share_log_sync(f->s.st);
        assert_int_equal(log_rows(f), 100);
        assert_int_equal(hub_store_generation(f->s.st), gen);
    }
    /* A write of the main file still counts. */
    assert_int_equal(hub_store_share_revoke(f->s.st, f->ws.id, f->share.id, NULL, NULL), 0);
    assert_true(hub_store_generation(f->s.st) != gen);
    fx_free(f);
}

/* A close writes every queued row first. */
static void test_close_writes_the_queue(void **state)
{
    (void)state;
    fx_t *f = fx_new(true, 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(append(f, f->share.id, T0 + i, i), 0);
    hub_store_close(f->s.st);
    f->s.st = NULL;
    assert_int_equal(log_rows(f), 1000);
    fx_open(f, false, 0);
    int64_t first = 0, last = 0;
    assert_int_equal(listed(f, 0, 1000, &first, &last), 1000);
    assert_int_equal(first, 1000);
    assert_int_equal(last, 1);
    fx_free(f);
}

/* Ids only grow: a cursor taken before retention pages on correctly, and
 * rows written after retention emptied the table are numbered after every
 * earlier one (SQLite alone would start again at 1). */
static void test_paging_across_retention(void **state)
{
    (void)state;
    fx_t *f = fx_new(false, 0);
    for (int i = 1; i <= 10; i++)
        assert_int_equal(append(f, f->share.id, T0 + i, i), 0);
    int64_t first = 0, last = 0;
    assert_int_equal(listed(f, 0, 4, &first, &last), 4);
    assert_int_equal(first, 10);
    assert_int_equal(last, 7);
    size_t n = 0;
    assert_int_equal(hub_store_share_log_prune(f->s.st, T0 + 6, &n), 0); /* ids 1-5 */
    assert_int_equal(n, 5);
    assert_int_equal(listed(f, last, 4, &first, NULL), 1);
    assert_int_equal(first, 6);
    assert_int_equal(hub_store_share_log_prune(f->s.st, T0 + 1000, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(listed(f, 0, 10, NULL, NULL), 0);
    assert_int_equal(append(f, f->share.id, T0 + 2000, 11), 0);
    assert_int_equal(listed(f, 0, 10, &first, NULL), 1);
    assert_int_equal(first, 11);
    /* ... and after a restart too. */
    hub_store_close(f->s.st);
    fx_open(f, true, 0);
    assert_int_equal(append(f, f->share.id, T0 + 2001, 12), 0);
    hub_store_share_log_sync(f->s.st);
    assert_int_equal(listed(f, 0, 10, &first, NULL), 2);
    assert_int_equal(first, 12);
    fx_free(f);
}

/* Rows of a share that is gone (its tunnel deleted, the shares with it) are
 * removed by retention, on the writer's thread; the list never shows
 * another workspace's share's rows. */
static void test_rows_of_deleted_shares_go(void **state)
{
    (void)state;
    fx_t *f = fx_new(true, 0);
    hub_workspace_t other;
    assert_int_equal(hub_store_workspace_create(f->s.st, "other", &other), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(append(f, f->share.id, T0 + i, i), 0);
    hub_store_share_log_sync(f->s.st);
    hub_share_log_list_t l = {0};
    assert_int_equal(hub_store_share_log_list(f->s.st, other.id, f->share.id, 0, 10, &l), 0);
    assert_int_equal(l.count, 0);
    assert_int_equal(hub_store_tunnel_delete(f->s.st, f->ws.id, f->tunnel.id), 0);
    /* A row of the share that arrives after it is gone. */
    assert_int_equal(append(f, f->share.id, T0 + 100, 100), 0);
    hub_store_share_log_sync(f->s.st);
    assert_int_equal(log_rows(f), 21);
    assert_int_equal(hub_store_share_log_prune(f->s.st, T0, NULL), 0);
    hub_store_share_log_sync(f->s.st);
    assert_int_equal(log_rows(f), 0);
    fx_free(f);
}

/* The list's wait for the writer is bounded (it runs on the event loop):
 * with the log file's write lock held by another connection (the writer's
 * BEGIN waits up to its 5 s busy timeout), the list answers within
 * HUB_SLOG_READ_WAIT_MS with what is committed; the rows follow once the
 * lock is gone. */
static void test_list_waits_for_a_stuck_writer_briefly(void **state)
{
    (void)state;
    fx_t *f = fx_new(true, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(append(f, f->share.id, T0 + i, i), 0);
    assert_int_equal(listed(f, 0, 100, NULL, NULL), 10);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->logf, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 10; i < 20; i++)
        assert_int_equal(append(f, f->share.id, T0 + i, i), 0);
    uint64_t t0 = cn_time_mono_ms();
    assert_int_equal(listed(f, 0, 100, NULL, NULL), 10);
    uint64_t waited = cn_time_mono_ms() - t0;
    assert_true(waited >= 200 && waited < 2000); /* HUB_SLOG_READ_WAIT_MS is 250 */
    assert_int_equal(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    hub_store_share_log_sync(f->s.st);
    assert_int_equal(listed(f, 0, 100, NULL, NULL), 20);
    fx_free(f);
}

/* A writer that falls behind: the queue is bounded, rows beyond it are
 * dropped and counted, none is lost or written twice otherwise. */
static void test_full_queue_drops_and_counts(void **state)
{
    (void)state;
    fx_t *f = fx_new(true, 1024); /* about 10 rows */
    uint64_t refused = 0;
    for (int i = 0; i < 5000; i++) {
        int rc = append(f, f->share.id, T0 + i, i);
        if (rc == CN_EEXHAUSTED)
            refused++;
        else
            assert_int_equal(rc, 0);
    }
    hub_store_share_log_sync(f->s.st);
    assert_true(refused > 0);
    assert_int_equal(hub_store_share_log_dropped(f->s.st), refused);
    assert_int_equal(log_rows(f), 5000 - (int64_t)refused);
    fx_free(f);
}

/* A batch is written by share: one run per share per batch, whatever the
 * interleaving of the requests; each share's list is its own rows, in
 * arrival order, newest first, on every page size. */
static void test_batches_are_runs_by_share(void **state)
{
    (void)state;
    fx_t *f = fx_new(true, 0);
    hub_share_t b;
    other_share(f, &b);
    for (int batch = 0; batch < 3; batch++) {
        for (int i = 0; i < 90; i++) {
            int k = batch * 90 + i;
            assert_int_equal(append(f, (k % 3) ? f->share.id : b.id, T0 + k, k), 0);
        }
        hub_store_share_log_sync(f->s.st);
    }
    assert_int_equal(log_int(f, "SELECT count(*) FROM share_access_runs"), 6);
    runs_exact(f);
    static int nums[300];
    for (size_t page = 1; page <= 61; page += 15) {
        assert_int_equal(page_all(f, f->share.id, page, nums, 300), 180);
        for (int i = 0, k = 269; i < 180; i++, k--) {
            if (k % 3 == 0)
                k--;
            assert_int_equal(nums[i], k);
        }
        assert_int_equal(page_all(f, b.id, page, nums, 300), 90);
        for (int i = 0; i < 90; i++)
            assert_int_equal(nums[i], 267 - 3 * i);
    }
    fx_free(f);
}

/* Grouping a batch by share (a hash table of the batch's shares, not a
 * sort): rows of 300 shares (the table grows twice on the way) in a
 * shuffled interleaving, one batch, give one run per share with exactly
 * its rows, consecutive ids, no id twice or skipped, and each share's
 * rows in arrival order. */
#define MANY_SHARES 300
#define MANY_ROWS (MANY_SHARES * 8)
static void test_interleaved_batch_groups_by_share(void **state)
{
    (void)state;
    fx_t *f = fx_new(true, 0);
    static char ids[MANY_SHARES][HUB_ID_SIZE];
    static hub_share_t sh;
    char token[HUB_SHARE_TOKEN_SIZE], pw[HUB_PASSWORD_SIZE], name[16];
    for (int s = 0; s < MANY_SHARES; s++) {
        snprintf(name, sizeof(name), "g%d", s);
        hub_share_spec_t ss = {
            .tunnel_id = f->tunnel.id, .name = name, .description = "", .rate_limit = 60};
        assert_int_equal(hub_store_share_create(f->s.st, f->ws.id, &ss, &sh, token, pw), 0);
        memcpy(ids[s], sh.id, HUB_ID_SIZE);
    }
    /* Row k goes to share owner[k]: every share 8 times, shuffled. */
    static int owner[MANY_ROWS];
    for (int k = 0; k < MANY_ROWS; k++)
        owner[k] = k % MANY_SHARES;
    uint32_t x = 12345;
    for (int k = MANY_ROWS - 1; k > 0; k--) {
        x = x * 1103515245u + 12345u;
        int j = (int)((x >> 8) % (uint32_t)(k + 1)), t = owner[k];
        owner[k] = owner[j];
        owner[j] = t;
    }
    for (int k = 0; k < MANY_ROWS; k++)
        assert_int_equal(append(f, ids[owner[k]], T0 + k, k), 0);
    hub_store_share_log_sync(f->s.st);

    assert_int_equal(log_rows(f), MANY_ROWS);
    assert_int_equal(log_int(f, "SELECT max(id) - min(id) + 1 FROM share_access_log"), MANY_ROWS);
    assert_int_equal(log_int(f, "SELECT count(*) FROM share_access_runs"), MANY_SHARES);
    assert_int_equal(log_int(f, "SELECT count(*) FROM share_access_runs "
                                "WHERE n <> last_id - first_id + 1"),
                     0);
    runs_exact(f);
    static int nums[MANY_ROWS];
    for (int s = 0; s < MANY_SHARES; s++) {
        size_t n = page_all(f, ids[s], 3, nums, MANY_ROWS);
        size_t i = 0;
        for (int k = MANY_ROWS - 1; k >= 0; k--) /* its rows, newest first */
            if (owner[k] == s) {
                assert_true(i < n);
                assert_int_equal(nums[i++], k);
            }
        assert_int_equal(i, n);
    }
    fx_free(f);
}

/* Retention keeps the newest HUB_SHARE_LOG_KEEP rows of a share exactly:
 * cutting inside a run (which then starts at its oldest kept row) and at
 * a run's edge (the run goes); the other share keeps all its rows; age
 * retention cuts inside a run too. */
static void keep_and_age_cut_runs(size_t step_rows)
{
    fx_t *f = fx_new(true, 0);
    if (step_rows) { /* reopened with retention in steps of that many rows */
        hub_store_close(f->s.st);
        f->s.st = NULL;
        f->step_rows = step_rows;
        fx_open(f, true, 0);
    }
    hub_share_t b;
    other_share(f, &b);
    const int keep = HUB_SHARE_LOG_KEEP;
    /* Runs of 1,000, keep + 500 (cut inside it) and 500. */
    int k = 0;
    int sizes[] = {1000, keep - 500 + 1000, 500};
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < sizes[r]; i++, k++)
            assert_int_equal(append(f, f->share.id, T0 + k, k), 0);
        for (int i = 0; i < 5; i++)
            assert_int_equal(append(f, b.id, T0 + k, 100000 + r * 5 + i), 0);
        hub_store_share_log_sync(f->s.st);
    }
    size_t n = 0;
    assert_int_equal(hub_store_share_log_prune(f->s.st, T0, &n), 0);
    hub_store_share_log_sync(f->s.st);
    runs_exact(f);
    static int nums[HUB_SHARE_LOG_KEEP + 100];
    assert_int_equal(page_all(f, f->share.id, 1000, nums, HUB_SHARE_LOG_KEEP + 100), keep);
    assert_int_equal(nums[0], k - 1);
    assert_int_equal(nums[keep - 1], k - keep);
    assert_int_equal(page_all(f, b.id, 7, nums, 100), 15);
    assert_int_equal(log_int(f, "SELECT count(*) FROM share_access_runs"), 5);

    /* At a run's edge: the newest two runs hold exactly `keep`. */
    for (int i = 0; i < keep - 500; i++, k++)
        assert_int_equal(append(f, f->share.id, T0 + k, k), 0);
    hub_store_share_log_sync(f->s.st);
    assert_int_equal(hub_store_share_log_prune(f->s.st, T0, &n), 0);
    hub_store_share_log_sync(f->s.st);
    runs_exact(f);
    assert_int_equal(page_all(f, f->share.id, 1000, nums, HUB_SHARE_LOG_KEEP + 100), keep);
    assert_int_equal(nums[keep - 1], k - keep);
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM share_access_runs WHERE share_id = '%s'",
             f->share.id);
    assert_int_equal(log_int(f, sql), 2);

    /* By age, inside the newest run: its rows from T0 + k - 100 stay. */
    assert_int_equal(hub_store_share_log_prune(f->s.st, T0 + k - 100, &n), 0);
    hub_store_share_log_sync(f->s.st);
    runs_exact(f);
    assert_int_equal(page_all(f, f->share.id, 1000, nums, HUB_SHARE_LOG_KEEP + 100), 100);
    assert_int_equal(nums[99], k - 100);
    assert_int_equal(page_all(f, b.id, 7, nums, 100), 0); /* older */
    assert_int_equal(log_int(f, "SELECT count(*) FROM share_access_runs"), 1);
    fx_free(f);
}

static void test_keep_and_age_cut_runs(void **state)
{
    (void)state;
    keep_and_age_cut_runs(0);
}

/* The same in steps of 97 rows: cuts inside runs and at their edges land
 * on step boundaries too, and the result is the one-step pass's. */
static void test_keep_and_age_cut_runs_in_steps(void **state)
{
    (void)state;
    keep_and_age_cut_runs(97);
}

/* A log file of version 1 (two indexes per row, no runs) is migrated on
 * open: its rows get runs (islands of one share), the indexes go, lists
 * and retention work on the old rows and new ones continue their ids. */
static void test_version_1_file_is_migrated(void **state)
{
    (void)state;
    fx_t *f = fx_new(false, 0);
    hub_share_t b;
    other_share(f, &b);
    hub_store_close(f->s.st);
    f->s.st = NULL;
    char p[PATH_MAX + 40];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->logf, (const char *[]){"", "-wal", "-shm"}[i]);
        unlink(p);
    }
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->logf, &h), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(h,
                     "PRAGMA application_id = 1129203788;"
                     "CREATE TABLE share_access_log (id INTEGER PRIMARY KEY, share_id TEXT NOT "
                     "NULL, at INTEGER NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, status "
                     "INTEGER NOT NULL, latency_ms INTEGER NOT NULL, client TEXT NOT NULL) STRICT;"
                     "CREATE INDEX share_access_log_share ON share_access_log(share_id, id);"
                     "CREATE INDEX share_access_log_at ON share_access_log(at);"
                     "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) "
                     "STRICT; INSERT INTO meta VALUES ('last_id', 40);"
                     "PRAGMA user_version = 1;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    /* Ids 1-30 with gaps (every 4th is gone), the shares in stretches of
     * five ids: 4 islands of the fixture's share (11 rows), 3 of b's (12). */
    for (int id = 1; id <= 30; id++) {
        if (id % 4 == 0)
            continue;
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO share_access_log VALUES (%d, '%s', %lld, 'GET', '/r/%d', 200, 1, "
                 "'127.0.0.1:1')",
                 id, (id / 5) % 2 ? b.id : f->share.id, (long long)(T0 + id), id);
        assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    sqlite3_close(h);
    fx_open(f, true, 0);
    assert_int_equal(log_int(f, "PRAGMA user_version"), 2);
    assert_int_equal(log_int(f, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                                "name LIKE 'share_access_log_%'"),
                     0);
    runs_exact(f);
    assert_int_equal(log_int(f, "SELECT count(*) FROM share_access_runs"), 7);
    static int nums[64];
    assert_int_equal(page_all(f, f->share.id, 4, nums, 64), 11);
    assert_int_equal(nums[0], 30);
    assert_int_equal(nums[10], 1);
    assert_int_equal(page_all(f, b.id, 4, nums, 64), 12);
    assert_int_equal(nums[0], 29);
    assert_int_equal(append(f, b.id, T0 + 100, 100), 0);
    int64_t first = 0;
    hub_share_log_list_t l = {0};
    assert_int_equal(hub_store_share_log_list(f->s.st, f->ws.id, b.id, 0, 1, &l), 0);
    assert_int_equal(l.count, 1);
    first = l.items[0].id;
    hub_share_log_list_free(&l);
    assert_int_equal(first, 41); /* after meta.last_id */
    size_t n = 0;
    assert_int_equal(hub_store_share_log_prune(f->s.st, T0 + 10, &n), 0);
    hub_store_share_log_sync(f->s.st);
    runs_exact(f);
    assert_int_equal(page_all(f, f->share.id, 4, nums, 64), 8); /* ids 1-9 went: 1,2,3 */
    fx_free(f);
}

static int slog_add(hub_slog_t *lg, const char *share_id, int64_t at, int i)
{
    char path[32];
    hub_share_log_row_t r = row_n(at, i, path);
    return hub_slog_append(lg, share_id, &r);
}

/* A retention pass runs in steps of at most about prune_step_rows rows
 * (a transaction each, the writer's batches between them), whatever it
 * deletes: by age (one range of ids), a share that is gone, the runs
 * beyond a share's newest `keep`. In one transaction a pass at 10 M rows
 * held the writer for seconds and the queue overflowed
 * (docs/performance.md). The result is the one pass's: exact runs, the
 * newest `keep` of each share, nothing of the share that is gone, and
 * rows appended while it runs stay. The writer here is a log handle of
 * the test's own (the store's is idle), for its counters. */
static void test_retention_runs_in_bounded_steps(void **state)
{
    (void)state;
    fx_t *f = fx_new(false, 0);
    hub_share_t b, c, g;
    other_share(f, &b);
    other_share(f, &c);
    /* A share on a second tunnel, deleted below: it is gone. */
    hub_tunnel_t t2;
    add_tunnel(f, "web2", &t2, &g);

    enum { STEP = 50, BATCHES = 20, AGED = 5, KEEP = 300 };
    static const int per[4] = {60, 20, 3, 25}; /* a batch's rows: share, b, c, g */
    const char *ids[4] = {f->share.id, b.id, c.id, g.id};
    char err[256] = "";
    hub_slog_t *lg = NULL;
    hub_slog_options_t o = {.main_path = f->s.db, .thread = true, .prune_step_rows = STEP};
    assert_int_equal(hub_slog_open(&o, &lg, err, sizeof(err)), 0);
    int k = 0, cut_k = 0, last_k = 0;
    for (int bt = 0; bt < BATCHES; bt++) {
        if (bt == AGED)
            cut_k = k;
        for (int s = 0; s < 4; s++)
            for (int i = 0; i < per[s]; i++, k++) {
                if (s == 0)
                    last_k = k;
                assert_int_equal(slog_add(lg, ids[s], T0 + k, k), 0);
            }
        hub_slog_sync(lg); /* a batch: a run per share */
    }
    assert_int_equal(hub_store_tunnel_delete(f->s.st, f->ws.id, t2.id), 0);
    hub_tunnel_clear(&t2);

    size_t n = 0;
    assert_int_equal(hub_slog_prune(lg, T0 + cut_k, KEEP, &n), 0);
    for (int i = 0; i < 40; i++) /* young rows, during the pass */
        assert_int_equal(slog_add(lg, c.id, T0 + 1000000 + i, 1000000 + i), 0);
    hub_slog_sync(lg);
    hub_slog_stats_t st;
    hub_slog_stats(lg, &st);
    hub_slog_close(lg);

    /* By age the first AGED batches; g the rest; the share all but KEEP. */
    const int batch = per[0] + per[1] + per[2] + per[3], kept = BATCHES - AGED;
    const uint64_t gone = (uint64_t)(AGED * batch + kept * per[3] + kept * per[0] - KEEP);
    assert_int_equal(st.prunes, 1);
    assert_int_equal(st.pruned, gone);
    /* At most the budget, or one run when a run alone is larger. */
    assert_true(st.prune_step_rows_max <= (uint64_t)per[0]);
    assert_true(st.prune_steps.n >= gone / (uint64_t)per[0]);
    runs_exact(f);
    static int nums[2000];
    assert_int_equal(page_all(f, f->share.id, 64, nums, 2000), KEEP);
    assert_int_equal(nums[0], last_k);
    assert_int_equal(page_all(f, b.id, 64, nums, 2000), kept * per[1]);
    assert_int_equal(page_all(f, c.id, 64, nums, 2000), kept * per[2] + 40);
    assert_int_equal(nums[0], 1000039);
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM share_access_log WHERE share_id = '%s'", g.id);
    assert_int_equal(log_int(f, sql), 0);
    assert_int_equal(log_rows(f), KEEP + kept * per[1] + kept * per[2] + 40);
    fx_free(f);
}

/* A log handle of the test's own on the fixture's file, opened with `o`,
 * after `old` rows of the fixture's share (at T0 + k), committed in runs
 * of 5,000 (within the queue's bound). */
static hub_slog_t *old_rows(fx_t *f, const hub_slog_options_t *o, int old)
{
    char err[256] = "";
    hub_slog_t *lg = NULL;
    assert_int_equal(hub_slog_open(o, &lg, err, sizeof(err)), 0);
    for (int k = 0; k < old; k++) {
        assert_int_equal(slog_add(lg, f->share.id, T0 + k, k), 0);
        if (k % 5000 == 4999)
            hub_slog_sync(lg);
    }
    hub_slog_sync(lg);
    return lg;
}

/* Closing writes the queued rows but leaves a retention pass where it is:
 * a whole pass held the hub's exit for about 19 s at 10 M rows. The steps
 * taken stay done, and the next pass (the first sweep after a start)
 * deletes the rest. With steps of 10 rows, the pass over 50,000 old rows
 * takes thousands of transactions: it cannot end in the moment between
 * asking for it and closing. */
static void test_close_leaves_a_retention_pass(void **state)
{
    (void)state;
    fx_t *f = fx_new(false, 0);
    enum { OLD = 50000, YOUNG = 5, STEP = 10 };
    char err[256] = "";
    hub_slog_options_t o = {.main_path = f->s.db, .thread = true, .prune_step_rows = STEP};
    hub_slog_t *lg = old_rows(f, &o, OLD);
    size_t n = 0;
    assert_int_equal(hub_slog_prune(lg, T0 + OLD, 1000000, &n), 0);
    for (int i = 0; i < YOUNG; i++)
        assert_int_equal(slog_add(lg, f->share.id, T0 + 1000000 + i, 1000000 + i), 0);
    hub_slog_close(lg);
    int64_t left = log_rows(f);
    assert_true(left > YOUNG + OLD / 2); /* the young rows, and most old ones */
    assert_true(left <= YOUNG + OLD);

    assert_int_equal(hub_slog_open(&o, &lg, err, sizeof(err)), 0);
    assert_int_equal(hub_slog_prune(lg, T0 + OLD, 1000000, &n), 0);
    hub_slog_sync(lg);
    hub_slog_close(lg);
    assert_int_equal(log_rows(f), YOUNG);
    fx_free(f);
}

/* A pass left in its age range: test_close_leaves_a_retention_pass closes
 * right after asking, before the writer may have taken any step. Here the
 * close comes after some steps, so that a run counts rows the age range's
 * steps deleted (runs are exact only once the pass has been through their
 * share): lists still show what is there, and the next pass, whose age
 * cut (found among the rows left) is never below the ids deleted, deletes
 * the rest and leaves every run exact. */
static void test_pass_left_in_its_age_range(void **state)
{
    (void)state;
    fx_t *f = fx_new(false, 0);
    enum { OLD = 20000, YOUNG = 5, STEP = 10 };
    char err[256] = "";
    hub_slog_options_t o = {.main_path = f->s.db, .thread = true, .prune_step_rows = STEP};
    hub_slog_t *lg = old_rows(f, &o, OLD);
    for (int i = 0; i < YOUNG; i++)
        assert_int_equal(slog_add(lg, f->share.id, T0 + 1000000 + i, 1000000 + i), 0);
    hub_slog_sync(lg);
    size_t n = 0;
    assert_int_equal(hub_slog_prune(lg, T0 + OLD, 1000000, &n), 0);
    hub_slog_stats_t st = {0};
    uint64_t t0 = cn_time_mono_ms();
    while (st.prune_steps.n < 5 && cn_time_mono_ms() - t0 < 10000) {
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
        hub_slog_stats(lg, &st);
    }
    hub_slog_close(lg);
    assert_true(st.prune_steps.n >= 5);
    int64_t left = log_rows(f);
    assert_true(left < YOUNG + OLD); /* the steps taken stay */
    assert_true(left > YOUNG + OLD / 2);
    assert_true(log_int(f, "SELECT count(*) FROM share_access_runs r WHERE r.n <> (SELECT "
                           "count(*) FROM share_access_log l WHERE l.id BETWEEN r.first_id "
                           "AND r.last_id)") > 0);
    static int nums[OLD + YOUNG];
    assert_int_equal(page_all(f, f->share.id, 997, nums, OLD + YOUNG), (size_t)left);
    assert_int_equal(nums[0], 1000000 + YOUNG - 1);
    assert_int_equal(nums[left - 1], OLD - (left - YOUNG));

    assert_int_equal(hub_slog_open(&o, &lg, err, sizeof(err)), 0);
    assert_int_equal(hub_slog_prune(lg, T0 + OLD, 1000000, &n), 0);
    hub_slog_sync(lg);
    hub_slog_close(lg);
    assert_int_equal(log_rows(f), YOUNG);
    runs_exact(f);
    assert_int_equal(page_all(f, f->share.id, 997, nums, OLD + YOUNG), YOUNG);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_reach_the_list),
        cmocka_unit_test(test_log_commits_do_not_move_the_generation),
        cmocka_unit_test(test_close_writes_the_queue),
        cmocka_unit_test(test_paging_across_retention),
        cmocka_unit_test(test_rows_of_deleted_shares_go),
        cmocka_unit_test(test_full_queue_drops_and_counts),
        cmocka_unit_test(test_list_waits_for_a_stuck_writer_briefly),
        cmocka_unit_test(test_batches_are_runs_by_share),
        cmocka_unit_test(test_interleaved_batch_groups_by_share),
        cmocka_unit_test(test_keep_and_age_cut_runs),
        cmocka_unit_test(test_keep_and_age_cut_runs_in_steps),
        cmocka_unit_test(test_version_1_file_is_migrated),
        cmocka_unit_test(test_retention_runs_in_bounded_steps),
        cmocka_unit_test(test_close_leaves_a_retention_pass),
        cmocka_unit_test(test_pass_left_in_its_age_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
