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

#define T0 1795442400000LL

typedef struct fx {
    hub_test_store_t s;
    char logf[PATH_MAX + 32];
    hub_workspace_t ws;
    hub_tunnel_t tunnel;
    hub_share_t share;
} fx_t;

static void fx_open(fx_t *f, bool thread, size_t queue_bytes)
{
    hub_store_options_t so = {.log_thread = thread, .log_queue_bytes = queue_bytes};
    hub_test_store_open(&f->s, &so, true);
}

static fx_t *fx_new(bool thread, size_t queue_bytes)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    hub_test_store_init(&f->s, 5, T0);
    snprintf(f->logf, sizeof(f->logf), "%s-log", f->s.db);
    fx_open(f, thread, queue_bytes);
    hub_agent_t agent;
    char tok[HUB_TOKEN_STR_SIZE], token[HUB_SHARE_TOKEN_SIZE], pw[HUB_PASSWORD_SIZE];
    assert_int_equal(hub_store_workspace_create(f->s.st, "ws", &f->ws), 0);
    assert_int_equal(hub_store_agent_create(f->s.st, f->ws.id, "a", 0, 0, tok, &agent), 0);
    hub_tunnel_spec_t sp = {.name = "web",
                            .agent_id = agent.id,
                            .target_host = "127.0.0.1",
                            .target_port = 8080,
                            .protocol = HUB_PROTO_HTTP,
                            .is_public = true};
    assert_int_equal(hub_store_tunnel_create(f->s.st, f->ws.id, &sp, &f->tunnel, NULL), 0);
    hub_share_spec_t ss = {
        .tunnel_id = f->tunnel.id, .name = "s", .description = "", .rate_limit = 60};
    assert_int_equal(hub_store_share_create(f->s.st, f->ws.id, &ss, &f->share, token, pw), 0);
    return f;
}

static void fx_free(fx_t *f)
{
    hub_tunnel_clear(&f->tunnel);
    hub_test_store_fini(&f->s);
    free(f);
}

static int append(fx_t *f, const char *share_id, int64_t at, int i)
{
    char path[32];
    snprintf(path, sizeof(path), "/r/%d", i);
    hub_share_log_row_t r = {.at = at,
                             .method = "GET",
                             .path = path,
                             .status = 200,
                             .latency_ms = 1,
                             .client = "127.0.0.1:5000"};
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
        for (int i = 0; i < 200; i++)
            assert_int_equal(append(f, f->share.id, T0 + i, i), 0);
        hub_store_share_log_sync(f->s.st);
        assert_int_equal(hub_store_share_log_prune(f->s.st, T0 + 100, NULL), 0);
        hub_store_share_log_sync(f->s.st);
        assert_int_equal(hub_store_generation(f->s.st), gen);
    }
    assert_int_equal(log_rows(f), 5 * 100);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
