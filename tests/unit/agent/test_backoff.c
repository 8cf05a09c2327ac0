/* Reconnect backoff: bounded, jittered, doubling from the base to the cap. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_doubles_to_cap),
        cmocka_unit_test(test_delay_bounded_and_jittered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
