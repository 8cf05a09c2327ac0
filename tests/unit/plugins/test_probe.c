/* The probe runner against scripted TCP peers on 127.0.0.1: up, down with
 * the plugin's reason, refused, silent until the timeout, closed without an
 * answer, server-first greetings, bounded replies, one probe in flight per
 * key, callbacks that start the next probe, and steps that never block. */
#include "cn_test.h"

#include "cn_err.h"
#include "peer.h"
#include "plugins.h"
#include "probe.h"

typedef struct seen {
    int calls;
    probe_result_t res;
    char key[PROBE_KEY_MAX + 1];
    uint8_t reply[64];
    size_t reply_len;
} seen_t;

static void on_done(void *user, const char *key, const probe_result_t *res)
{
    seen_t *s = user;
    s->calls++;
    s->res = *res;
    s->res.reply = NULL;
    snprintf(s->key, sizeof(s->key), "%s", key);
    s->reply_len = res->reply_len < sizeof(s->reply) ? res->reply_len : sizeof(s->reply);
    if (s->reply_len)
        memcpy(s->reply, res->reply, s->reply_len);
}

static void run(probe_runner_t *r)
{
    for (int i = 0; i < 1000 && probe_runner_active(r); i++)
        probe_runner_step(r, 20);
    assert_int_equal(probe_runner_active(r), 0);
}

#define S(x) (const uint8_t *)(x), sizeof(x) - 1

static void test_up_with_the_reply_in_the_callback(void **state)
{
    peer_t pe = {.reply = S("+PONG\r\n")};
    seen_t s = {0};
    peer_start(&pe);
    probe_runner_t *r = probe_runner_new();
    assert_int_equal(
        probe_runner_start(r, "t1", &cn_plugin_redis, "127.0.0.1", pe.port, 2000, on_done, &s), 0);
    assert_true(probe_runner_busy(r, "t1"));
    assert_int_equal(s.calls, 0); /* never from start */
    run(r);
    assert_int_equal(s.calls, 1);
    assert_true(s.res.up);
    assert_int_equal(s.res.err, 0);
    assert_true(s.res.connected);
    assert_string_equal(s.res.why, "");
    assert_string_equal(s.key, "t1");
    assert_int_equal(s.reply_len, 7);
    assert_memory_equal(s.reply, "+PONG\r\n", 7);
    assert_true(s.res.elapsed_ms < 2000);
    assert_false(probe_runner_busy(r, "t1"));
    probe_runner_free(r);
    peer_stop(&pe);
}

static void test_wrong_protocol_is_down_with_the_plugins_reason(void **state)
{
    peer_t pe = {.reply = S("HTTP/1.0 400 Bad request\r\n\r\n"), .close_after_reply = true};
    seen_t s = {0};
    peer_start(&pe);
    probe_runner_t *r = probe_runner_new();
    assert_int_equal(
        probe_runner_start(r, "t", &cn_plugin_redis, "127.0.0.1", pe.port, 2000, on_done, &s), 0);
    run(r);
    assert_false(s.res.up);
    assert_int_equal(s.res.err, CN_EPROTO);
    assert_non_null(strstr(s.res.why, "not a Redis server"));
    probe_runner_free(r);
    peer_stop(&pe);
}

static void test_closed_port_is_refused(void **state)
{
    seen_t s = {0};
    probe_runner_t *r = probe_runner_new();
    assert_int_equal(probe_runner_start(r, "t", &cn_plugin_postgresql, "127.0.0.1", closed_port(),
                                        2000, on_done, &s),
                     0);
    run(r);
    assert_int_equal(s.calls, 1);
    assert_false(s.res.up);
    assert_false(s.res.connected);
    assert_int_equal(s.res.err, CN_EREFUSED);
    assert_non_null(strstr(s.res.why, "refused"));
    probe_runner_free(r);
}

static void test_silent_server_times_out(void **state)
{
    peer_t pe = {0};
    seen_t s = {0};
    peer_start(&pe);
    probe_runner_t *r = probe_runner_new();
    assert_int_equal(
        probe_runner_start(r, "t", &cn_plugin_postgresql, "127.0.0.1", pe.port, 300, on_done, &s),
        0);
    int next = probe_runner_next_ms(r);
    assert_true(next > 0 && next <= 300);
    run(r);
    assert_int_equal(s.res.err, CN_ETIMEOUT);
    assert_true(s.res.connected);
    assert_string_equal(s.res.why, "no answer within 300 ms");
    assert_true(s.res.elapsed_ms >= 300 && s.res.elapsed_ms < 2000);
    assert_int_equal(probe_runner_next_ms(r), -1);
    probe_runner_free(r);
    peer_stop(&pe);
}

static void test_close_without_answer(void **state)
{
    peer_t pe = {.close_at_once = true};
    seen_t s = {0};
    peer_start(&pe);
    probe_runner_t *r = probe_runner_new();
    assert_int_equal(
        probe_runner_start(r, "t", &cn_plugin_http, "127.0.0.1", pe.port, 2000, on_done, &s), 0);
    run(r);
    assert_false(s.res.up);
    /* Closed before or after our request went out: either way not up. */
    assert_true(s.res.err == CN_ECLOSED || s.res.err == CN_EREFUSED);
    probe_runner_free(r);
    peer_stop(&pe);
}

static const uint8_t greeting[] = "\x11\0\0\0\x0a"
                                  "\0"
                                  "\1\0\0\0"
                                  "abcdefgh"
                                  "\0"
                                  "\xff\xf7";

static void test_server_first_greeting_is_read(void **state)
{
    peer_t pe = {.greeting = greeting, .greeting_len = sizeof(greeting) - 1};
    seen_t s = {0};
    peer_start(&pe);
    probe_runner_t *r = probe_runner_new();
    assert_int_equal(
        probe_runner_start(r, "t", &cn_plugin_mysql, "127.0.0.1", pe.port, 2000, on_done, &s), 0);
    run(r);
    assert_true(s.res.up);
    assert_int_equal(s.reply_len, sizeof(greeting) - 1);
    /* A client-first probe against the same server sees the greeting
     * instead of its answer: down. */
    assert_int_equal(
        probe_runner_start(r, "t", &cn_plugin_postgresql, "127.0.0.1", pe.port, 2000, on_done, &s),
        0);
    run(r);
    assert_false(s.res.up);
    assert_int_equal(s.res.err, CN_EPROTO);
    probe_runner_free(r);
    peer_stop(&pe);
}

static void test_tcp_is_up_on_connect(void **state)
{
    peer_t pe = {0};
    seen_t s = {0};
    peer_start(&pe);
    probe_runner_t *r = probe_runner_new();
    assert_int_equal(
        probe_runner_start(r, "t", &cn_plugin_tcp, "127.0.0.1", pe.port, 2000, on_done, &s), 0);
    run(r);
    assert_true(s.res.up);
    assert_int_equal(s.reply_len, 0);
    assert_int_equal(
        probe_runner_start(r, "t", &cn_plugin_tcp, "127.0.0.1", closed_port(), 2000, on_done, &s),
        0);
    run(r);
    assert_false(s.res.up);
    assert_int_equal(s.res.err, CN_EREFUSED);
    probe_runner_free(r);
    peer_stop(&pe);
}

static int always_partial(void *ctx, const uint8_t *reply, size_t len, char *why, size_t cap)
{
    (*(int *)ctx)++;
    return CN_PLUGIN_PARTIAL;
}

static void test_reply_is_bounded(void **state)
{
    peer_t pe = {.flood = 3 * CN_PLUGIN_REPLY_MAX};
    seen_t s = {0};
    int judged = 0;
    peer_start(&pe);
    probe_runner_t *r = probe_runner_new();
    assert_int_equal(probe_runner_start_raw(r, "t", "127.0.0.1", pe.port, 5000,
                                            (const uint8_t *)"go", 2, always_partial, &judged,
                                            on_done, &s),
                     0);
    run(r);
    assert_int_equal(s.res.err, CN_ETOOBIG);
    assert_true(judged > 0);
    assert_int_equal(s.res.reply_len, CN_PLUGIN_REPLY_MAX);
    probe_runner_free(r);
    peer_stop(&pe);
}

static void test_one_probe_in_flight_per_key(void **state)
{
    peer_t pe = {0};
    seen_t a = {0}, b = {0};
    peer_start(&pe);
    probe_runner_t *r = probe_runner_new();
    assert_int_equal(
        probe_runner_start(r, "same", &cn_plugin_redis, "127.0.0.1", pe.port, 200, on_done, &a), 0);
    assert_int_equal(
        probe_runner_start(r, "same", &cn_plugin_http, "127.0.0.1", pe.port, 200, on_done, &b),
        CN_EAGAIN);
    assert_int_equal(
        probe_runner_start(r, "other", &cn_plugin_http, "127.0.0.1", pe.port, 200, on_done, &b), 0);
    assert_int_equal(probe_runner_active(r), 2);
    run(r);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    /* Free again once it ended. */
    assert_int_equal(
        probe_runner_start(r, "same", &cn_plugin_http, "127.0.0.1", pe.port, 100, on_done, &b), 0);
    run(r);
    assert_int_equal(b.calls, 2);
    probe_runner_free(r);
    peer_stop(&pe);
}

typedef struct chain {
    probe_runner_t *r;
    uint16_t port;
    int calls;
} chain_t;

static void restart(void *user, const char *key, const probe_result_t *res)
{
    chain_t *c = user;
    assert_true(res->up);
    /* The key is free inside its own callback. */
    if (++c->calls < 3)
        assert_int_equal(
            probe_runner_start(c->r, key, &cn_plugin_redis, "127.0.0.1", c->port, 2000, restart, c),
            0);
}

static void test_callback_may_start_the_next_probe(void **state)
{
    peer_t pe = {.reply = S("+PONG\r\n")};
    peer_start(&pe);
    chain_t c = {.r = probe_runner_new(), .port = pe.port};
    assert_int_equal(
        probe_runner_start(c.r, "k", &cn_plugin_redis, "127.0.0.1", pe.port, 2000, restart, &c), 0);
    run(c.r);
    assert_int_equal(c.calls, 3);
    probe_runner_free(c.r);
    peer_stop(&pe);
}

static void test_cancel_and_free_never_call_back(void **state)
{
    peer_t pe = {0};
    seen_t s = {0};
    peer_start(&pe);
    probe_runner_t *r = probe_runner_new();
    assert_int_equal(
        probe_runner_start(r, "a", &cn_plugin_redis, "127.0.0.1", pe.port, 5000, on_done, &s), 0);
    assert_int_equal(
        probe_runner_start(r, "b", &cn_plugin_redis, "127.0.0.1", pe.port, 5000, on_done, &s), 0);
    probe_runner_step(r, 20);
    probe_runner_cancel(r, "a");
    probe_runner_cancel(r, "unknown");
    assert_false(probe_runner_busy(r, "a"));
    assert_true(probe_runner_busy(r, "b"));
    probe_runner_free(r); /* "b" still in flight */
    assert_int_equal(s.calls, 0);
    peer_stop(&pe);
    probe_runner_free(NULL);
}

static void test_a_step_never_blocks(void **state)
{
    peer_t pe = {0};
    seen_t s = {0};
    peer_start(&pe);
    probe_runner_t *r = probe_runner_new();
    assert_int_equal(
        probe_runner_start(r, "t", &cn_plugin_postgresql, "127.0.0.1", pe.port, 5000, on_done, &s),
        0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(probe_runner_step(r, 0), 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms < 1000); /* 100 steps against a silent server, no waiting */
    assert_int_equal(s.calls, 0);
    probe_runner_free(r);
    peer_stop(&pe);
}

static void test_bad_arguments(void **state)
{
    seen_t s = {0};
    probe_runner_t *r = probe_runner_new();
    char long_key[PROBE_KEY_MAX + 2];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    assert_int_equal(
        probe_runner_start(r, long_key, &cn_plugin_tcp, "127.0.0.1", 1, 100, on_done, &s),
        CN_EINVAL);
    assert_int_equal(probe_runner_start(r, "", &cn_plugin_tcp, "127.0.0.1", 1, 100, on_done, &s),
                     CN_EINVAL);
    assert_int_equal(probe_runner_start(r, "k", &cn_plugin_tcp, "", 1, 100, on_done, &s),
                     CN_EINVAL);
    assert_int_equal(probe_runner_start(r, "k", &cn_plugin_tcp, "127.0.0.1", 0, 100, on_done, &s),
                     CN_EINVAL);
    assert_int_equal(probe_runner_start(r, "k", &cn_plugin_tcp, "127.0.0.1", 1, 0, on_done, &s),
                     CN_EINVAL);
    assert_int_equal(probe_runner_start(r, "k", NULL, "127.0.0.1", 1, 100, on_done, &s), CN_EINVAL);
    assert_int_equal(probe_runner_start_raw(r, "k", "127.0.0.1", 1, 100, NULL,
                                            CN_PLUGIN_REQUEST_MAX + 1, NULL, NULL, on_done, &s),
                     CN_EINVAL);
    assert_int_equal(probe_runner_active(r), 0);
    assert_int_equal(probe_runner_step(r, 0), 0);
    assert_int_equal(s.calls, 0);
    probe_runner_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_up_with_the_reply_in_the_callback),
        cmocka_unit_test(test_wrong_protocol_is_down_with_the_plugins_reason),
        cmocka_unit_test(test_closed_port_is_refused),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_close_without_answer),
        cmocka_unit_test(test_server_first_greeting_is_read),
        cmocka_unit_test(test_tcp_is_up_on_connect),
        cmocka_unit_test(test_reply_is_bounded),
        cmocka_unit_test(test_one_probe_in_flight_per_key),
        cmocka_unit_test(test_callback_may_start_the_next_probe),
        cmocka_unit_test(test_cancel_and_free_never_call_back),
        cmocka_unit_test(test_a_step_never_blocks),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
