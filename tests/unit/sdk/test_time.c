/* cn_time: the monotonic clock never goes back and counts real time; the
 * wall clock agrees with time(2). */
#include "cn_test.h"

#include "cn_time.h"

#include <time.h>

static void test_mono_moves_forward(void **state)
{
    (void)state;
    uint64_t a = cn_time_mono_ms();
    struct timespec nap = {0, 30 * 1000000L};
    nanosleep(&nap, NULL);
    uint64_t b = cn_time_mono_ms();
    assert_true(b >= a + 29);  /* slept 30 ms; ms truncation can cost one */
    assert_true(b < a + 5000); /* and not seconds (a unit mix-up would show) */
}

static void test_wall_is_epoch_ms(void **state)
{
    (void)state;
    int64_t before = (int64_t)time(NULL) * 1000;
    int64_t now = cn_time_wall_ms();
    int64_t after = (int64_t)time(NULL) * 1000 + 1000;
    assert_true(now >= before);
    assert_true(now < after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mono_moves_forward),
        cmocka_unit_test(test_wall_is_epoch_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
