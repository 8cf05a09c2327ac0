/* cn_errf: formats into the caller's buffer, tolerates a missing or tiny
 * buffer, and hands the code back so "return cn_errf(...)" works. */
#include "cn_test.h"

#include "cn_err.h"
#include "cn_errmsg.h"

static void test_formats_and_returns(void **state)
{
    (void)state;
    static const struct {
        int rc;
        size_t len;
        const char *want;
    } cases[] = {
        {CN_EINVAL, 40, "port 70000 is out of range"},
        {CN_EIO, 8, "port 70"}, /* truncated, terminated */
        {CN_OK, 1, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[65];
        memset(buf, 'x', sizeof(buf));
        int rc = cn_errf(cases[i].rc, buf, cases[i].len, "port %d is %s", 70000, "out of range");
        assert_int_equal(rc, cases[i].rc);
        assert_string_equal(buf, cases[i].want);
        assert_int_equal(buf[cases[i].len], 'x'); /* nothing written past len */
    }
}

/* Found by fuzz_config: an "allow" pattern with a newline in the config
 * file turned the CLI's one-line error into two lines. */
static void test_quoted_input_stays_one_line(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(
        cn_errf(CN_EINVAL, buf, sizeof(buf), "allow pattern '%s': bad", "*.i\nt\x1b[2J\x7f"),
        CN_EINVAL);
    assert_string_equal(buf, "allow pattern '*.i?t?[2J?': bad");
}

static void test_no_buffer(void **state)
{
    (void)state;
    assert_int_equal(cn_errf(CN_ENOMEM, NULL, 0, "ignored %s", "text"), CN_ENOMEM);
    char one = 'x';
    assert_int_equal(cn_errf(CN_EIO, &one, 0, "ignored"), CN_EIO);
    assert_int_equal(one, 'x');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_and_returns),
        cmocka_unit_test(test_quoted_input_stays_one_line),
        cmocka_unit_test(test_no_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
