/* hub_time: ISO-8601 formatting and parsing of millisecond timestamps. */
#include "cn_test.h"

#include "cn_err.h"
#include "hub_time.h"

static void test_format_vectors(void **state)
{
    static const struct {
        int64_t ms;
        const char *iso;
    } v[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {951782400000LL, "2000-02-29T00:00:00.000Z"},
        {1795442400000LL, "2026-11-23T14:00:00.000Z"},
        {1795442400123LL, "2026-11-23T14:00:00.123Z"},
        {4107542399999LL, "2100-02-28T23:59:59.999Z"},
        {253402300799999LL, "9999-12-31T23:59:59.999Z"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char out[HUB_TIME_ISO_SIZE];
        assert_int_equal(hub_time_format(v[i].ms, out), 0);
        assert_string_equal(out, v[i].iso);
        int64_t back = -1;
        assert_int_equal(hub_time_parse(v[i].iso, &back), 0);
        assert_int_equal(back, v[i].ms);
    }
    char out[HUB_TIME_ISO_SIZE];
    assert_int_equal(hub_time_format(-1, out), CN_EINVAL);
    assert_string_equal(out, "");
    assert_int_equal(hub_time_format(253402300800000LL, out), CN_EINVAL);
}

static void test_parse_forms(void **state)
{
    int64_t ms = 0;
    assert_int_equal(hub_time_parse("2026-11-23T14:00:00Z", &ms), 0);
    assert_int_equal(ms, 1795442400000LL);
    assert_int_equal(hub_time_parse("2026-11-23t14:00:00.5z", &ms), 0);
    assert_int_equal(ms, 1795442400500LL);
    assert_int_equal(hub_time_parse("2026-11-23T14:00:00.123456789Z", &ms), 0);
    assert_int_equal(ms, 1795442400123LL);
    assert_int_equal(hub_time_parse("2026-11-23T15:30:00+01:30", &ms), 0);
    assert_int_equal(ms, 1795442400000LL);
    assert_int_equal(hub_time_parse("2026-11-23T12:00:00-02:00", &ms), 0);
    assert_int_equal(ms, 1795442400000LL);
}

static void test_parse_rejects(void **state)
{
    static const char *bad[] = {
        "",
        "2026-11-23",
        "2026-11-23T14:00:00",             /* no zone */
        "2026-11-23 14:00:00Z",            /* space */
        "2026-13-01T00:00:00Z",            /* month */
        "2026-02-29T00:00:00Z",            /* not a leap year */
        "2026-04-31T00:00:00Z",            /* day */
        "2026-11-23T24:00:00Z",            /* hour */
        "2026-11-23T14:60:00Z",            /* minute */
        "2026-11-23T14:00:60Z",            /* leap second */
        "2026-11-23T14:00:00.Z",           /* empty fraction */
        "2026-11-23T14:00:00.1234567890Z", /* fraction too long */
        "2026-11-23T14:00:00Zjunk",
        "2026-11-23T14:00:00+0100",
        "1969-12-31T23:59:59.999Z", /* before the epoch */
        "+2026-11-23T14:00:00Z",
        "2026-1-23T14:00:00Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 42;
        assert_int_equal(hub_time_parse(bad[i], &ms), CN_EINVAL);
        assert_int_equal(ms, 42);
    }
    int64_t ms;
    assert_int_equal(hub_time_parse(NULL, &ms), CN_EINVAL);
}

static void test_now_is_plausible(void **state)
{
    int64_t now = hub_time_now_ms(NULL);
    assert_true(now > 1700000000000LL); /* after 2023-11 */
    char out[HUB_TIME_ISO_SIZE];
    assert_int_equal(hub_time_format(now, out), 0);
    assert_int_equal(strlen(out), 24);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_vectors),
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_now_is_plausible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
