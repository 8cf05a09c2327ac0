/* cn_loop: each loop kind runs an lws context (a timer fires, a wake-up from
 * another thread ends a turn), and the context and the loop are torn down
 * completely: ASan's leak check fails this test if lws 4.1.6's three-step
 * destruction on a foreign libuv loop is cut short. */
#include "cn_test.h"

#include "cn_loop.h"
#include "cn_time.h"

#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void test_kinds_parse(void **state)
{
    (void)state;
    cn_loop_kind_t k = CN_LOOP_POLL;
    assert_true(cn_loop_kind_parse("epoll", &k));
    assert_int_equal(k, CN_LOOP_EPOLL);
    assert_true(cn_loop_kind_parse("poll", &k));
    assert_int_equal(k, CN_LOOP_POLL);
    assert_true(cn_loop_kind_parse("uv", &k));
    assert_int_equal(k, CN_LOOP_UV);
    assert_false(cn_loop_kind_parse("select", &k));
    assert_false(cn_loop_kind_parse("", &k));
    assert_false(cn_loop_kind_parse(NULL, &k));
    assert_string_equal(cn_loop_kind_name(CN_LOOP_UV), "uv");
    /* The help's choices are the names, in the enum's order. */
    char want[64];
    snprintf(want, sizeof(want), "%s|%s|%s", cn_loop_kind_name(0), cn_loop_kind_name(1),
             cn_loop_kind_name(2));
    assert_string_equal(want, CN_LOOP_CHOICES);
}

typedef struct fixture {
    lws_sorted_usec_list_t sul;
    int fired;
} fixture_t;

static void timer_cb(lws_sorted_usec_list_t *sul)
{
    fixture_t *f = lws_container_of(sul, fixture_t, sul);
    f->fired++;
}

static int dummy_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    (void)wsi, (void)reason, (void)user, (void)in, (void)len;
    return 0;
}

static void *wake_later(void *arg)
{
    struct timespec nap = {0, 50 * 1000000L};
    nanosleep(&nap, NULL);
    lws_cancel_service(arg);
    return NULL;
}

/* A loop of `kind` and a context on it with `protocols`. */
static struct lws_context *open_loop(cn_loop_kind_t kind, const struct lws_protocols *protocols,
                                     cn_loop_t **lp)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    char err[128] = "";
    cn_loop_t *l = cn_loop_new(kind, &info, err, sizeof(err));
    assert_non_null(l);
    assert_int_equal(cn_loop_kind(l), kind);
    struct lws_context *ctx = lws_create_context(&info);
    assert_non_null(ctx);
    *lp = l;
    return ctx;
}

/* busy_us: with busy polling (cn_loop_set_busy_poll), which the epoll loop
 * does and the others ignore; turns still end on a wake-up and on a timer,
 * and a loop with nothing to do sleeps (test_tcp_tunnel_busypoll measures
 * an idle hub's CPU). */
static void run_kind(cn_loop_kind_t kind, unsigned busy_us)
{
    static const struct lws_protocols protocols[] = {{"dummy", dummy_cb, 0, 0, 0, NULL, 0},
                                                     {NULL, NULL, 0, 0, 0, NULL, 0}};
    cn_loop_t *l;
    struct lws_context *ctx = open_loop(kind, protocols, &l);
    cn_loop_set_busy_poll(l, busy_us);

    /* With nothing scheduled, a wake-up from another thread ends a turn. */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wake_later, ctx), 0);
    uint64_t start = cn_time_mono_ms();
    assert_int_equal(cn_loop_run_once(l, ctx), 0);
    pthread_join(t, NULL);
    assert_true(cn_time_mono_ms() - start < 5000);

    /* A 20 ms timer fires (a turn may also return early: bounded by time).
     * Not on lws's poll() loop: with no connection at all, a timer
     * scheduled from outside a callback waited ~30 s there (measured); the
     * hub and the agent schedule theirs from callbacks and always hold a
     * socket, and test_tcp_tunnel_poll runs them on it. */
    if (kind == CN_LOOP_POLL) {
        cn_loop_context_destroy(l, ctx);
        cn_loop_free(l);
        return;
    }
    fixture_t f = {0};
    lws_sul_schedule(ctx, 0, &f.sul, timer_cb, 20 * LWS_US_PER_MS);
    start = cn_time_mono_ms();
    while (!f.fired && cn_time_mono_ms() - start < 5000)
        assert_int_equal(cn_loop_run_once(l, ctx), 0);
    assert_int_equal(f.fired, 1);
    assert_true(cn_time_mono_ms() - start >= 19);

    cn_loop_context_destroy(l, ctx);
    cn_loop_free(l);
}

/* A socket that is readable on every turn: its data is never read. */
static int busy_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    (void)wsi, (void)reason, (void)user, (void)in, (void)len;
    return 0;
}

/* lws's timers run while every turn brings I/O. On the libev loop lws runs
 * them from an idle watcher, which libev never runs then, and from a timer
 * armed for the earliest one pending when they last ran: a zero-delay timer
 * scheduled later (an LWS_TO_KILL_ASYNC close) waited for the next lws
 * timer due, and the hub's edge, busy with new connections, piled up
 * thousands of sockets waiting to be closed (docs/performance.md). */
static void test_busy_timers(void **state)
{
    static const struct lws_protocols protocols[] = {{"busy", busy_cb, 0, 0, 0, NULL, 0},
                                                     {NULL, NULL, 0, 0, 0, NULL, 0}};
    cn_loop_t *l;
    struct lws_context *ctx = open_loop(*(const cn_loop_kind_t *)*state, protocols, &l);
    /* Start-up: turns without I/O, until a first timer ran (lws's own
     * timers start there too; a loop busy from its very first turn would
     * run none). */
    fixture_t first = {0};
    lws_sul_schedule(ctx, 0, &first.sul, timer_cb, 5 * LWS_US_PER_MS);
    uint64_t t0 = cn_time_mono_ms();
    while (!first.fired && cn_time_mono_ms() - t0 < 5000)
        assert_int_equal(cn_loop_run_once(l, ctx), 0);
    assert_int_equal(first.fired, 1);

    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    lws_sock_file_fd_type u;
    u.filefd = sv[0];
    struct lws *wsi = lws_adopt_descriptor_vhost(lws_get_vhost_by_name(ctx, "default"),
                                                 LWS_ADOPT_RAW_FILE_DESC, u, "busy", NULL);
    assert_non_null(wsi);

    /* A second of busy turns, then timers scheduled during them. */
    t0 = cn_time_mono_ms();
    unsigned turns = 0;
    while (cn_time_mono_ms() - t0 < 1000) {
        assert_int_equal(cn_loop_run_once(l, ctx), 0);
        turns++;
    }
    assert_true(turns > 100); /* every turn had I/O: none waited */
    /* Without the pace timer none of these runs, however long the turns
     * go on (there is no other lws timer to wait for). */
    for (int i = 0; i < 20; i++) {
        fixture_t f = {0};
        lws_sul_schedule(ctx, 0, &f.sul, timer_cb, 0);
        t0 = cn_time_mono_ms();
        while (!f.fired && cn_time_mono_ms() - t0 < 2000)
            assert_int_equal(cn_loop_run_once(l, ctx), 0);
        lws_sul_cancel(&f.sul);
        assert_int_equal(f.fired, 1);
    }

    cn_loop_context_destroy(l, ctx); /* closes sv[0] with the connection */
    close(sv[1]);
    cn_loop_free(l);
}

static void test_epoll(void **state)
{
    (void)state;
    run_kind(CN_LOOP_EPOLL, 0);
}

static void test_poll(void **state)
{
    (void)state;
    run_kind(CN_LOOP_POLL, 0);
}

static void test_uv(void **state)
{
    (void)state;
    run_kind(CN_LOOP_UV, 0);
}

static void test_busy_poll(void **state)
{
    (void)state;
    run_kind(CN_LOOP_EPOLL, 200);
    run_kind(CN_LOOP_POLL, 200); /* ignored */
}

/* An idle loop with busy polling at its most sleeps: the only callback it
 * runs is its own pace timer (every PACE_IDLE_US, 50 ms), which is no sign
 * of traffic. Counted as one, each of its wake-ups began a spin of
 * CN_LOOP_BUSY_POLL_MAX (10 ms): a fifth of a core for an idle hub or
 * agent (129 ms of CPU in this test's second, 2 ms without). The CPU is the
 * thread's own, which a loaded machine only lowers. */
static void test_busy_poll_idle_sleeps(void **state)
{
    (void)state;
    static const struct lws_protocols protocols[] = {{"dummy", dummy_cb, 0, 0, 0, NULL, 0},
                                                     {NULL, NULL, 0, 0, 0, NULL, 0}};
    cn_loop_t *l;
    struct lws_context *ctx = open_loop(CN_LOOP_EPOLL, protocols, &l);
    cn_loop_set_busy_poll(l, CN_LOOP_BUSY_POLL_MAX);
    /* The pace timer slows from 1 ms to its idle 50 ms in its first ~0.1 s. */
    uint64_t t0 = cn_time_mono_ms();
    while (cn_time_mono_ms() - t0 < 200)
        assert_int_equal(cn_loop_run_once(l, ctx), 0);
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    t0 = cn_time_mono_ms();
    while (cn_time_mono_ms() - t0 < 1000)
        assert_int_equal(cn_loop_run_once(l, ctx), 0);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    long long cpu_ms = (c1.tv_sec - c0.tv_sec) * 1000LL + (c1.tv_nsec - c0.tv_nsec) / 1000000;
    print_message("idle second with busy polling at %u us: %lld ms of CPU\n", CN_LOOP_BUSY_POLL_MAX,
                  cpu_ms);
    assert_true(cpu_ms < 50);
    cn_loop_context_destroy(l, ctx);
    cn_loop_free(l);
}

int main(void)
{
    static cn_loop_kind_t busy_kinds[] = {CN_LOOP_EPOLL, CN_LOOP_UV};
    lws_set_log_level(LLL_ERR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds_parse),
        cmocka_unit_test(test_epoll),
        cmocka_unit_test(test_poll),
        cmocka_unit_test(test_uv),
        cmocka_unit_test(test_busy_poll),
        cmocka_unit_test(test_busy_poll_idle_sleeps),
        cmocka_unit_test_prestate(test_busy_timers, &busy_kinds[0]),
        cmocka_unit_test_prestate(test_busy_timers, &busy_kinds[1]),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
