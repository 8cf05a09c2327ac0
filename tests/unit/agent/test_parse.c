/* Enrollment tokens: every form a user may paste and every way it can be
 * wrong. (Targets, ids and keys: tests/unit/sdk/test_target.c, test_id.c.) */
#include "cn_test.h"

#include "cn_err.h"
#include "cn_id.h"
#include "parse.h"

#include <sodium.h>

static void test_enroll_token(void **state)
{
    uint8_t pk[32], got[32];
    char key[44], token[400], secret[AGENT_ENROLL_SECRET_MAX + 1], err[256];
    randombytes_buf(pk, sizeof(pk));
    cn_id_key_to_b64url(pk, key);
    assert_int_equal(strlen(key), 43);

    snprintf(token, sizeof(token), "cne_27BwyGlP-XqBJiNULiSAq-mYkPHGgiqP85wCYBApUMI.%s", key);
    assert_int_equal(agent_split_enroll_token(token, secret, got, err, sizeof(err)), 0);
    assert_string_equal(secret, "cne_27BwyGlP-XqBJiNULiSAq-mYkPHGgiqP85wCYBApUMI");
    assert_memory_equal(got, pk, 32);

    static const struct {
        const char *fmt; /* %s = a valid key */
        const char *why;
    } bad[] = {
        {"", "empty"},
        {"cne_abc", "not an enrollment token"},
        {"cnt_abcdef.%s", "must start with cne_"},
        {"cne_.%s", "must start with cne_"},
        {".%s", "must start with cne_"},
        {"cne_ab cd.%s", "not allowed"},
        {"cne_ab.cd.%s", "not allowed"},
        {"cne_abc.", "43 base64url"},
        {"cne_abc.%s=", "43 base64url"},
        {"cne_abc.AAAA", "43 base64url"},
        {"cne_abc.%sA", "43 base64url"},
        {"cne_abc.!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "43 base64url"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *at = strstr(bad[i].fmt, "%s");
        if (at)
            snprintf(token, sizeof(token), "%.*s%s%s", (int)(at - bad[i].fmt), bad[i].fmt, key,
                     at + 2);
        else
            snprintf(token, sizeof(token), "%s", bad[i].fmt);
        err[0] = '\0';
        if (agent_split_enroll_token(token, secret, got, err, sizeof(err)) != CN_EINVAL)
            fail_msg("'%s' accepted", token);
        if (!strstr(err, bad[i].why))
            fail_msg("'%s': '%s' lacks '%s'", token, err, bad[i].why);
        assert_string_equal(secret, "");
    }
    /* The split is at the LAST dot; a secret is never longer than the max. */
    char longtok[600];
    memset(longtok, 'a', sizeof(longtok));
    memcpy(longtok, "cne_", 4);
    snprintf(longtok + AGENT_ENROLL_SECRET_MAX + 1, sizeof(longtok) - AGENT_ENROLL_SECRET_MAX - 1,
             ".%s", key);
    assert_int_equal(agent_split_enroll_token(longtok, secret, got, err, sizeof(err)), CN_EINVAL);
    assert_non_null(strstr(err, "too long"));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enroll_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
