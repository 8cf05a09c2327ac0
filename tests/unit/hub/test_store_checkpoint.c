/* Two store options `serve` sets. The checkpoint thread (hub_store_options_t.checkpoint_thread, as
 * `serve` opens it): the WAL the hub's writes grow is copied into the
 * database by the thread, not in one of the hub's commits; the copies are
 * not changes (the share cache's generation stays put); without the option
 * SQLite keeps checkpointing in commits and no thread runs. */
#include "hub_test.h"

#include <sys/stat.h>
#include <time.h>

#include "hub_time.h"
#include "router.h"
#include "store.h"
#include "store_backend.h"

typedef struct fx {
    hub_test_store_t s; /* on the real clock, as `serve` runs */
    char wal[PATH_MAX + 32];
    hub_share_t share;
} fx_t;

static void open_store_opts(fx_t *f, bool thread, unsigned external_check_ms)
{
    hub_test_store_init(&f->s, 3, 0);
    snprintf(f->wal, sizeof(f->wal), "%s-wal", f->s.db);
    hub_store_options_t so = {
        .checkpoint_thread = thread,
        .external_check_ms = external_check_ms,
        .clock = hub_time_now_ms,
    };
    hub_test_store_open(&f->s, &so, true);
    hub_workspace_t ws;
    hub_agent_t agent;
    hub_tunnel_t t;
    char tok[HUB_TOKEN_STR_SIZE], token[HUB_SHARE_TOKEN_SIZE], pw[HUB_PASSWORD_SIZE];
    assert_int_equal(hub_store_workspace_create(f->s.st, "ws", &ws), 0);
    assert_int_equal(hub_store_agent_create(f->s.st, ws.id, "a", 0, 0, tok, &agent), 0);
    hub_tunnel_spec_t sp = {.name = "web",
                            .agent_id = agent.id,
                            .target_host = "127.0.0.1",
                            .target_port = 8080,
                            .protocol = HUB_PROTO_HTTP,
                            .is_public = true};
    assert_int_equal(hub_store_tunnel_create(f->s.st, ws.id, &sp, &t, NULL), 0);
    hub_share_spec_t ss = {.tunnel_id = t.id,
                           .name = "s",
                           .description = "",
                           .methods = HUB_GET,
                           .rate_limit = 60,
                           .ttl_ms = 3600000};
    assert_int_equal(hub_store_share_create(f->s.st, ws.id, &ss, &f->share, token, pw), 0);
    hub_tunnel_clear(&t);
}

static void open_store(fx_t *f, bool thread)
{
    open_store_opts(f, thread, 0);
}

static void close_store(fx_t *f)
{
    hub_test_store_fini(&f->s);
}

/* Many small transactions of the main file (events of ~6 KB; the share
 * access log, once the bulk of them, has a file of its own), well past
 * SQLite's 1000-page autocheckpoint mark (about 4 MB of WAL). */
static void write_log(fx_t *f, int batches)
{
    static char data[6000];
    memset(data, 'p', sizeof(data) - 1);
    memcpy(data, "{\"p\":\"", 6);
    memcpy(data + sizeof(data) - 3, "\"}", 3);
    hub_event_spec_t ev = {.type = "test.bulk", .data = data};
    for (int b = 0; b < batches; b++) {
        assert_int_equal(hub_store_tx_begin(f->s.st), 0);
        for (int i = 0; i < 5; i++)
            assert_int_equal(hub_store_event_append(f->s.st, f->share.workspace_id, &ev, NULL), 0);
        assert_int_equal(hub_store_tx_end(f->s.st, 0), 0);
    }
}

static off_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

static void test_thread_checkpoints_off_the_commits(void **state)
{
    (void)state;
    fx_t f = {0};
    open_store(&f, true);
    uint64_t frames = 0;
    write_log(&f, 200); /* 1,000 events of ~6 KB */
    /* The hub's connection did not checkpoint: the whole run is still in
     * the WAL (an autocheckpoint would have restarted it near 4 MB). */
    assert_true(file_size(f.wal) > 5 * 1024 * 1024);
    uint64_t gen = hub_store_generation(f.s.st);
    struct timespec nap = {0, 50 * 1000000L};
    /* A checkpoint that started after the writes has copied all of them. */
    uint64_t runs0 = hub_store_sqlite_checkpoints(f.s.st, &frames);
    for (int i = 0; i < 100 && hub_store_sqlite_checkpoints(f.s.st, &frames) < runs0 + 2; i++)
        nanosleep(&nap, NULL);
    assert_true(frames > 1000);
    /* A checkpoint is not a change of shares or tunnels. */
    assert_int_equal(hub_store_generation(f.s.st), gen);
    /* The next writes start the WAL over instead of growing it. */
    off_t before = file_size(f.wal);
    write_log(&f, 10);
    assert_int_equal(file_size(f.wal), before);
    close_store(&f);
}

static void test_without_the_option_sqlite_checkpoints(void **state)
{
    (void)state;
    fx_t f = {0};
    open_store(&f, false);
    write_log(&f, 200);
    uint64_t frames = 1;
    assert_int_equal(hub_store_sqlite_checkpoints(f.s.st, &frames), 0);
    assert_int_equal(frames, 0);
    /* SQLite's own checkpoints in the commits kept the WAL near 4 MB. */
    assert_true(file_size(f.wal) < 5 * 1024 * 1024);
    close_store(&f);
}

/* external_check_ms: another process's commit is seen at most that late;
 * this process's own writes and anything inside a transaction at once. */
static void test_external_check_throttled(void **state)
{
    (void)state;
    fx_t f = {0};
    open_store_opts(&f, false, 60000);
    uint64_t g0 = hub_store_generation(f.s.st);
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE shares SET revoked_at = 5 WHERE id = '%s'", f.share.id);
    hub_test_sql(f.s.db, sql);
    assert_int_equal(hub_store_generation(f.s.st), g0); /* not asked again yet */
    assert_int_equal(hub_store_tx_begin(f.s.st), 0);
    uint64_t in_tx = hub_store_generation(f.s.st);
    assert_int_not_equal(in_tx, g0); /* inside a transaction: always asked */
    assert_int_equal(hub_store_tx_end(f.s.st, 0), 0);
    uint64_t g1 = hub_store_generation(f.s.st);
    hub_workspace_t ws2;
    assert_int_equal(hub_store_workspace_create(f.s.st, "ws2", &ws2), 0);
    assert_int_not_equal(hub_store_generation(f.s.st), g1); /* own write: at once */
    close_store(&f);

    /* 0: every read asks. */
    fx_t e = {0};
    open_store_opts(&e, false, 0);
    g0 = hub_store_generation(e.s.st);
    snprintf(sql, sizeof(sql), "UPDATE shares SET revoked_at = 5 WHERE id = '%s'", e.share.id);
    hub_test_sql(e.s.db, sql);
    assert_int_not_equal(hub_store_generation(e.s.st), g0);
    close_store(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_checkpoints_off_the_commits),
        cmocka_unit_test(test_without_the_option_sqlite_checkpoints),
        cmocka_unit_test(test_external_check_throttled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
