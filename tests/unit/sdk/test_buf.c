/* cn_buf: bounded growth, headroom, consume and compaction. */
#include "cn_test.h"

#include "cn_buf.h"
#include "cn_err.h"

static void test_append_within_max(void **state)
{
    cn_buf_t b;
    cn_buf_init(&b, 1000, 16);
    uint8_t src[600];
    cn_test_fill(src, sizeof(src), 1);
    assert_int_equal(cn_buf_append(&b, src, 600), 0);
    assert_int_equal(b.len, 600);
    assert_memory_equal(cn_buf_data(&b), src, 600);
    assert_true(cn_buf_data(&b) - b.mem >= 16);
    assert_int_equal(cn_buf_append(&b, src, 401), CN_ETOOBIG);
    assert_int_equal(b.len, 600);
    assert_int_equal(cn_buf_append(&b, src, 400), 0);
    assert_int_equal(b.len, 1000);
    cn_buf_free(&b);
}

static void test_consume_and_compact(void **state)
{
    cn_buf_t b;
    cn_buf_init(&b, 512, 8);
    uint8_t src[512];
    cn_test_fill(src, sizeof(src), 2);
    for (int round = 0; round < 100; round++) {
        assert_int_equal(cn_buf_append(&b, src, 300), 0);
        cn_buf_consume(&b, 250);
        assert_int_equal(b.len, 50);
        assert_memory_equal(cn_buf_data(&b), src + 250, 50);
        cn_buf_consume(&b, 50);
    }
    assert_true(b.cap <= 512 + 8);
    cn_buf_free(&b);
    cn_buf_free(NULL);
}

static void test_reserve_commit(void **state)
{
    cn_buf_t b;
    int err = 0;
    cn_buf_init(&b, 64, 0);
    uint8_t *p = cn_buf_reserve(&b, 64, &err);
    assert_non_null(p);
    memset(p, 7, 64);
    cn_buf_commit(&b, 64);
    assert_null(cn_buf_reserve(&b, 1, &err));
    assert_int_equal(err, CN_ETOOBIG);
    assert_null(cn_buf_reserve(&b, SIZE_MAX, &err));
    cn_buf_free(&b);
}

/* cn_buf_strcpy gives what snprintf(dst, cap, "%.*s", n, src) gives: cut
 * at n, at a NUL and at cap - 1, always terminated. */
static void test_strcpy_as_snprintf(void **state)
{
    (void)state;
    static const char src[] = "abcdefgh\0ij";
    for (size_t cap = 1; cap <= 12; cap++)
        for (size_t n = 0; n <= sizeof(src); n++) {
            char got[12], want[12];
            memset(got, 'x', sizeof(got));
            size_t m = cn_buf_strcpy(got, cap, src, n);
            int w = snprintf(want, cap, "%.*s", (int)n, src);
            size_t wl = (size_t)w < cap ? (size_t)w : cap - 1;
            assert_int_equal(m, wl);
            assert_memory_equal(got, want, wl + 1);
        }
    char d[4];
    assert_int_equal(cn_buf_strcpy(d, sizeof(d), "longer", SIZE_MAX), 3);
    assert_string_equal(d, "lon");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_within_max),
        cmocka_unit_test(test_consume_and_compact),
        cmocka_unit_test(test_reserve_commit),
        cmocka_unit_test(test_strcpy_as_snprintf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
