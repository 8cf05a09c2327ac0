/* cn_id: UUID shapes (any case, and the hub's lowercase spelling) and
 * 32-byte keys in base64url and base64, exact lengths only. */
#include "cn_test.h"

#include "cn_err.h"
#include "cn_id.h"

#include <sodium.h>

static void test_uuid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool any, lower;
    } v[] = {
        {"2da00a1a-38b5-49ea-bedf-669e3b31ccef", true, true},
        {"2DA00A1A-38B5-49EA-BEDF-669E3B31CCEF", true, false},
        {"2da00a1a-38B5-49ea-bedf-669e3b31ccef", true, false},
        {"2da00a1a-38b5-49ea-bedf-669e3b31cce", false, false},
        {"2da00a1a-38b5-49ea-bedf-669e3b31ccefa", false, false},
        {"2da00a1a_38b5-49ea-bedf-669e3b31ccef", false, false},
        {"2da00a1a-38b5-49ea-bedf-669e3b31ccgf", false, false},
        {"2da00a1a-38b5-49ea-bedf-669e3b31cc-f", false, false},
        {"2da00a1a-38b5-49ea-bedf0669e3b31ccef", false, false},
        {"2da00a1a-38b5-49ea-bedf-669e3b31cce\xe9", false, false},
        {"2da00a1a-38b5-49ea-bedf-669e3b31ccE0", true, false},
        {"2da00a1a-", false, false},
        {"redis1", false, false},
        {"", false, false},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        if (cn_id_is_uuid(v[i].s) != v[i].any)
            fail_msg("cn_id_is_uuid('%s') != %d", v[i].s, v[i].any);
        if (cn_id_is_uuid_lower(v[i].s) != v[i].lower)
            fail_msg("cn_id_is_uuid_lower('%s') != %d", v[i].s, v[i].lower);
    }
    assert_false(cn_id_is_uuid(NULL));
    assert_false(cn_id_is_uuid_lower(NULL));
}

static void test_keys(void **state)
{
    (void)state;
    uint8_t k[32], back[32];
    char b64[CN_ID_KEY_B64_SIZE], b64url[CN_ID_KEY_B64URL_SIZE];
    randombytes_buf(k, sizeof(k));
    cn_id_key_to_b64(k, b64);
    cn_id_key_to_b64url(k, b64url);
    assert_int_equal(strlen(b64), 44);
    assert_int_equal(b64[43], '=');
    assert_int_equal(strlen(b64url), CN_ID_KEY_B64URL_LEN);
    assert_int_equal(cn_id_key_from_b64(b64, back), 0);
    assert_memory_equal(back, k, 32);
    memset(back, 0, sizeof(back));
    assert_int_equal(cn_id_key_from_b64url(b64url, back), 0);
    assert_memory_equal(back, k, 32);
    /* The variants are not interchangeable, lengths are exact. */
    assert_int_equal(cn_id_key_from_b64url(b64, back), CN_EINVAL);
    char longer[64];
    snprintf(longer, sizeof(longer), "%sA", b64url);
    assert_int_equal(cn_id_key_from_b64url(longer, back), CN_EINVAL);
    b64[20] = '\0';
    assert_int_equal(cn_id_key_from_b64(b64, back), CN_EINVAL);
    assert_int_equal(cn_id_key_from_b64("", back), CN_EINVAL);
    assert_int_equal(cn_id_key_from_b64(NULL, back), CN_EINVAL);
    assert_int_equal(cn_id_key_from_b64url("AAAA", back), CN_EINVAL);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
