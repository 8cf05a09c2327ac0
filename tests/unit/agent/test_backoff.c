/* Reconnect backoff: bounded, jittered, doubling from the base to the cap;
 * reset by an admitted link; capped in attempts a minute. */
#include "cn_test.h"

#include "backoff.h"

static void test_ceiling_doubles_to_cap(void **state)
{
    assert_int_equal(agent_backoff_ceiling(0, 500, 30000), 500);
    assert_int_equal(agent_backoff_ceiling(1, 500, 30000), 1000);
    assert_int_equal(agent_backoff_ceiling(2, 500, 30000), 2000);
    assert_int_equal(agent_backoff_ceiling(5, 500, 30000), 16000);
    assert_int_equal(agent_backoff_ceiling(6, 500, 30000), 30000);
    assert_int_equal(agent_backoff_ceiling(7, 500, 30000), 30000);
    /* No overflow however many attempts. */
    assert_int_equal(agent_backoff_ceiling(64, 500, 30000), 30000);
    assert_int_equal(agent_backoff_ceiling(100000, 500, 30000), 30000);
    assert_int_equal(agent_backoff_ceiling(40, 0xffffffffu, 0xffffffffu), 0xffffffffu);
    /* Degenerate settings still give a positive, bounded delay. */
    assert_int_equal(agent_backoff_ceiling(0, 0, 0), 1);
    assert_int_equal(agent_backoff_ceiling(3, 1000, 10), 1000);
    uint32_t prev = 0;
    for (unsigned a = 0; a < 40; a++) {
        uint32_t c = agent_backoff_ceiling(a, AGENT_BACKOFF_BASE_MS, AGENT_BACKOFF_CAP_MS);
        assert_true(c >= prev);
        prev = c;
    }
}

static void test_delay_bounded_and_jittered(void **state)
{
    uint64_t x = 0x1234567;
    for (unsigned a = 0; a < 20; a++) {
        uint32_t c = agent_backoff_ceiling(a, AGENT_BACKOFF_BASE_MS, AGENT_BACKOFF_CAP_MS);
        uint32_t lo = 0xffffffffu, hi = 0;
        for (int i = 0; i < 2000; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            uint32_t d =
                agent_backoff_delay(a, AGENT_BACKOFF_BASE_MS, AGENT_BACKOFF_CAP_MS, (uint32_t)x);
            assert_true(d >= c / 2);
            assert_true(d <= c);
            assert_true(d <= AGENT_BACKOFF_CAP_MS);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        /* Jitter spreads over most of the range. */
        assert_true(hi - lo > (c - c / 2) * 8 / 10);
    }
    /* The extremes of the random input hit the ends of the range. */
    assert_int_equal(agent_backoff_delay(0, 500, 30000, 0), 250);
    assert_int_equal(agent_backoff_delay(0, 500, 30000, 250), 500);
    assert_int_equal(agent_backoff_delay(20, 500, 30000, 0xffffffffu) <= 30000, 1);
    /* The first retry comes quickly. */
    assert_true(agent_backoff_delay(0, AGENT_BACKOFF_BASE_MS, AGENT_BACKOFF_CAP_MS, 0) >= 250);
    assert_true(agent_backoff_delay(0, AGENT_BACKOFF_BASE_MS, AGENT_BACKOFF_CAP_MS, ~0u) <= 500);
}

/* A link that the hub admitted and that then died is retried after the base
 * delay, however many failures came before it. */
static void test_admitted_link_resets_backoff(void **state)
{
    agent_backoff_t b;
    agent_backoff_init(&b, 500, 30000, 0, 0);
    uint64_t now = 1000000;
    for (int i = 0; i < 8; i++) { /* the hub is down for a while */
        agent_backoff_started(&b, now);
        now += agent_backoff_next(&b, now, 0xffffffffu);
    }
    agent_backoff_started(&b, now);
    uint32_t d = agent_backoff_next(&b, now, 0);
    assert_true(d >= 15000); /* deep in the backoff: half of the 30 s cap */
    now += d;
    agent_backoff_started(&b, now);
    agent_backoff_reset(&b); /* admitted */
    now += 2000;             /* ... and the link dies 2 s later */
    d = agent_backoff_next(&b, now, 0xffffffffu);
    assert_true(d <= 500);
    assert_true(d >= 250);
    /* Not admitted this time: the backoff grows again. */
    now += d;
    agent_backoff_started(&b, now);
    d = agent_backoff_next(&b, now, 0);
    assert_true(d >= 500);
}

/* A link that is admitted and dies at once, forever: after the burst, no
 * more than per_min attempts start in any minute, and the tunnel is never
 * left down longer than one interval between attempts. */
static void test_flapping_link_is_rate_capped(void **state)
{
    agent_backoff_t b;
    agent_backoff_init(&b, 500, 30000, 20, 6);
    uint64_t now = 5000000, starts[400];
    size_t n = 0;
    while (n < 400) {
        starts[n++] = now;
        agent_backoff_started(&b, now);
        agent_backoff_reset(&b);
        now += 100; /* admitted, then dead 100 ms later */
        uint32_t d = agent_backoff_next(&b, now, 0x9e3779b9u * (uint32_t)n);
        assert_true(d <= 3000); /* never a long outage: one interval at most */
        now += d;
    }
    /* The first burst comes at backoff speed. */
    assert_true(starts[5] - starts[0] < 6 * 600);
    /* In any 60 s window: at most per_min + burst attempts. */
    for (size_t i = 0, j = 0; i < n; i++) {
        while (j < n && starts[j] < starts[i] + 60000)
            j++;
        assert_true(j - i <= 20 + 6);
    }
    /* And over the long run, about per_min a minute. */
    double per_min = (double)(n - 1) * 60000.0 / (double)(starts[n - 1] - starts[0]);
    assert_true(per_min <= 20.5);
    assert_true(per_min >= 19.0);
}

static void test_defaults(void **state)
{
    agent_backoff_t b;
    agent_backoff_init(&b, 0, 0, 0, 0);
    assert_int_equal(b.base_ms, AGENT_BACKOFF_BASE_MS);
    assert_int_equal(b.cap_ms, AGENT_BACKOFF_CAP_MS);
    assert_int_equal(b.interval_ms, 60000 / AGENT_BACKOFF_PER_MIN);
    assert_int_equal(b.burst, AGENT_BACKOFF_BURST);
    /* The first failure of a fresh link: the base delay. */
    agent_backoff_started(&b, 10);
    uint32_t d = agent_backoff_next(&b, 20, 0);
    assert_int_equal(d, AGENT_BACKOFF_BASE_MS / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_doubles_to_cap),
        cmocka_unit_test(test_delay_bounded_and_jittered),
        cmocka_unit_test(test_admitted_link_resets_backoff),
        cmocka_unit_test(test_flapping_link_is_rate_capped),
        cmocka_unit_test(test_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
