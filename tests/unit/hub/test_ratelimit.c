/* ratelimit: N per window then Retry-After, recovery, independence of keys,
 * and a key table that stays bounded under a flood of new keys. */
#include "cn_test.h"

#include "ratelimit.h"

#define T0 1795442400000LL

static hub_ratelimit_result_t hit(hub_ratelimit_t *rl, const char *key, uint32_t limit, int64_t now)
{
    return hub_ratelimit_check(rl, key, strlen(key), limit, now);
}

static void test_allows_n_then_retry_after(void **state)
{
    hub_ratelimit_t *rl = hub_ratelimit_new(128, 0);
    assert_non_null(rl);
    for (uint32_t i = 0; i < 5; i++) {
        hub_ratelimit_result_t r = hit(rl, "tok", 5, T0);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 4 - i);
        assert_int_equal(r.retry_after_s, 0);
    }
    /* 5 per 60 s: one more every 12 s. */
    hub_ratelimit_result_t r = hit(rl, "tok", 5, T0);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_s, 12);
    r = hit(rl, "tok", 5, T0 + 11001);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_s, 1); /* rounded up, never 0 */
    r = hit(rl, "tok", 5, T0 + 12000);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_false(hit(rl, "tok", 5, T0 + 12000).allowed);
    hub_ratelimit_free(rl);
}

static void test_recovers_after_window(void **state)
{
    hub_ratelimit_t *rl = hub_ratelimit_new(128, 0);
    for (int i = 0; i < 100; i++)
        assert_true(hit(rl, "k", 100, T0).allowed);
    assert_false(hit(rl, "k", 100, T0).allowed);
    /* Refused requests are not counted: hammering does not extend it. */
    for (int i = 0; i < 1000; i++)
        assert_false(hit(rl, "k", 100, T0 + i / 10).allowed);
    int64_t later = T0 + HUB_RATELIMIT_WINDOW_MS;
    for (int i = 0; i < 100; i++)
        assert_true(hit(rl, "k", 100, later).allowed);
    hub_ratelimit_result_t r = hit(rl, "k", 100, later);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_s, 1);
    hub_ratelimit_free(rl);
}

static void test_keys_are_independent(void **state)
{
    hub_ratelimit_t *rl = hub_ratelimit_new(128, 0);
    assert_true(hit(rl, "a", 1, T0).allowed);
    assert_false(hit(rl, "a", 1, T0).allowed);
    assert_true(hit(rl, "b", 1, T0).allowed);
    /* Keys are bytes, not C strings. */
    assert_true(hub_ratelimit_check(rl, "a\0x", 3, 1, T0).allowed);
    hub_ratelimit_free(rl);
}

/* A client pacing itself at the rate is never refused, and no window of
 * the given length ever sees more than twice the limit. */
static void test_rate_and_worst_case(void **state)
{
    hub_ratelimit_t *rl = hub_ratelimit_new(128, 0);
    for (int i = 0; i < 600; i++)
        assert_true(hit(rl, "steady", 60, T0 + (int64_t)i * 1000).allowed);

    enum { N = 30 };
    static int64_t allowed_at[20000];
    size_t n = 0;
    for (int64_t t = T0; t < T0 + 10 * 60000; t += 50) {
        if (hit(rl, "greedy", N, t).allowed)
            allowed_at[n++] = t;
    }
    assert_true(n > 10 * N);
    for (size_t i = 0, j = 0; i < n; i++) {
        while (allowed_at[i] - allowed_at[j] >= HUB_RATELIMIT_WINDOW_MS)
            j++;
        assert_true(i - j + 1 <= 2 * N);
    }
    hub_ratelimit_free(rl);
}

static void test_limit_zero_and_change(void **state)
{
    hub_ratelimit_t *rl = hub_ratelimit_new(16, 0);
    hub_ratelimit_result_t r = hit(rl, "x", 0, T0);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_s, 60);
    /* Lowering a key's limit keeps the debt it ran up. */
    for (int i = 0; i < 10; i++)
        assert_true(hit(rl, "y", 10, T0).allowed);
    r = hit(rl, "y", 5, T0);
    assert_false(r.allowed);
    hub_ratelimit_free(rl);
}

static void test_custom_window(void **state)
{
    hub_ratelimit_t *rl = hub_ratelimit_new(16, 1000); /* 3 per second */
    for (int i = 0; i < 3; i++)
        assert_true(hit(rl, "s", 3, T0).allowed);
    hub_ratelimit_result_t r = hit(rl, "s", 3, T0);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_s, 1);
    assert_true(hit(rl, "s", 3, T0 + 334).allowed);
    hub_ratelimit_free(rl);
}

static void test_bounded_key_table(void **state)
{
    hub_ratelimit_t *rl = hub_ratelimit_new(64, 0);
    assert_int_equal(hub_ratelimit_capacity(rl), 64);
    /* A throttled key... */
    for (int i = 0; i < 10; i++)
        assert_true(hit(rl, "hot", 10, T0).allowed);
    assert_false(hit(rl, "hot", 10, T0).allowed);
    /* ...survives a flood of 100000 new keys, and memory stays fixed. */
    char k[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(k, sizeof(k), "client-%d", i);
        assert_true(hit(rl, k, 10, T0 + 1000).allowed);
        assert_true(hub_ratelimit_size(rl) <= hub_ratelimit_capacity(rl));
    }
    assert_int_equal(hub_ratelimit_capacity(rl), 64);
    assert_true(hub_ratelimit_evictions(rl) > 0);
    assert_false(hit(rl, "hot", 10, T0 + 1000).allowed);

    /* Recovered keys are reused without counting as evictions. */
    uint64_t ev = hub_ratelimit_evictions(rl);
    int64_t later = T0 + 2 * HUB_RATELIMIT_WINDOW_MS;
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "late-%d", i);
        assert_true(hit(rl, k, 1000, later).allowed);
    }
    assert_true(hub_ratelimit_evictions(rl) - ev < 1000);
    hub_ratelimit_free(rl);
}

static void test_bad_arguments(void **state)
{
    assert_null(hub_ratelimit_new(0, 0));
    assert_null(hub_ratelimit_new((size_t)1 << 30, 0));
    assert_null(hub_ratelimit_new(8, -1));
    hub_ratelimit_t *rl = hub_ratelimit_new(3, 0);
    assert_int_equal(hub_ratelimit_capacity(rl), 8);
    assert_false(hub_ratelimit_check(NULL, "k", 1, 1, T0).allowed);
    assert_true(hub_ratelimit_check(rl, NULL, 0, HUB_RATELIMIT_LIMIT_MAX + 5u, T0).allowed);
    hub_ratelimit_free(rl);
    hub_ratelimit_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allows_n_then_retry_after),
        cmocka_unit_test(test_recovers_after_window),
        cmocka_unit_test(test_keys_are_independent),
        cmocka_unit_test(test_rate_and_worst_case),
        cmocka_unit_test(test_limit_zero_and_change),
        cmocka_unit_test(test_custom_window),
        cmocka_unit_test(test_bounded_key_table),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
