/* cn_utf8: every class of malformed UTF-8 is refused, and every boundary of
 * the valid ranges is accepted (vectors after Markus Kuhn's stress test). */
#include "cn_test.h"

#include "cn_utf8.h"

typedef struct vec {
    const char *name;
    const char *bytes;
    size_t len;
    bool valid;
    size_t first; /* cn_utf8_seq() of the first sequence */
} vec_t;

#define V(name, lit, valid, first)                                                                 \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, valid, first                                                   \
    }

static const vec_t vectors[] = {
    V("ascii", "hello", true, 1),
    V("NUL is a character", "a\0b", true, 1),
    V("U+0080, first 2-byte", "\xc2\x80", true, 2),
    V("U+07FF, last 2-byte", "\xdf\xbf", true, 2),
    V("U+0800, first 3-byte", "\xe0\xa0\x80", true, 3),
    V("U+D7FF, before surrogates", "\xed\x9f\xbf", true, 3),
    V("U+E000, after surrogates", "\xee\x80\x80", true, 3),
    V("U+FFFF", "\xef\xbf\xbf", true, 3),
    V("U+10000, first 4-byte", "\xf0\x90\x80\x80", true, 4),
    V("U+10FFFF, last code point", "\xf4\x8f\xbf\xbf", true, 4),
    V("mixed text", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", true, 1),
    V("lone continuation", "\x80", false, 0),
    V("overlong 2-byte (C0)", "\xc0\xaf", false, 0),
    V("overlong 2-byte (C1)", "\xc1\xbf", false, 0),
    V("overlong 3-byte", "\xe0\x80\xaf", false, 0),
    V("overlong 4-byte", "\xf0\x80\x80\xaf", false, 0),
    V("surrogate D800", "\xed\xa0\x80", false, 0),
    V("surrogate DFFF", "\xed\xbf\xbf", false, 0),
    V("above U+10FFFF", "\xf4\x90\x80\x80", false, 0),
    V("F5 lead byte", "\xf5\x80\x80\x80", false, 0),
    V("FF byte", "\xff", false, 0),
    V("truncated 2-byte", "\xc3", false, 0),
    V("truncated 3-byte", "\xe2\x82", false, 0),
    V("truncated 4-byte", "\xf0\x9f\x98", false, 0),
    V("bad continuation", "\xc3\x28", false, 0),
    V("valid then invalid", "ok\xc3", false, 1),
};

static void test_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const vec_t *v = &vectors[i];
        if (cn_utf8_valid(v->bytes, v->len) != v->valid)
            fail_msg("%s: valid should be %d", v->name, v->valid);
        size_t first = cn_utf8_seq((const uint8_t *)v->bytes, v->len);
        if (first != v->first)
            fail_msg("%s: first sequence %zu, expected %zu", v->name, first, v->first);
    }
}

static void test_empty_is_valid(void **state)
{
    (void)state;
    assert_true(cn_utf8_valid("", 0));
    assert_true(cn_utf8_valid(NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_empty_is_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
