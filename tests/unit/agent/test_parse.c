/* Targets, enrollment tokens, ids and keys: every form a user may type and
 * every way it can be wrong. */
#include "cn_test.h"

#include "cn_err.h"
#include "parse.h"

#include <sodium.h>

static void test_targets(void **state)
{
    static const struct {
        const char *in;
        const char *host; /* NULL: must fail */
        unsigned port;
        const char *why;
    } cases[] = {
        {"8080", "localhost", 8080, NULL},
        {"1", "localhost", 1, NULL},
        {"65535", "localhost", 65535, NULL},
        {"localhost:5432", "localhost", 5432, NULL},
        {"127.0.0.1:6379", "127.0.0.1", 6379, NULL},
        {"db.internal:5432", "db.internal", 5432, NULL},
        {"my_host-1.example.com:443", "my_host-1.example.com", 443, NULL},
        {"[::1]:5432", "::1", 5432, NULL},
        {"[fe80::1%eth0]:80", NULL, 0, "IPv6"},
        {"[2001:db8::42]:27017", "2001:db8::42", 27017, NULL},
        {"0", NULL, 0, "between 1 and 65535"},
        {"65536", NULL, 0, "between 1 and 65535"},
        {"123456", NULL, 0, "between 1 and 65535"},
        {"host:0", NULL, 0, "between 1 and 65535"},
        {"host:70000", NULL, 0, "between 1 and 65535"},
        {"host:", NULL, 0, "between 1 and 65535"},
        {"host:80x", NULL, 0, "between 1 and 65535"},
        {"host:-1", NULL, 0, "between 1 and 65535"},
        {":80", NULL, 0, "no host"},
        {"host", NULL, 0, "HOST:PORT or PORT"},
        {"", NULL, 0, "empty"},
        {"::1:80", NULL, 0, "brackets"},
        {"2001:db8::1:80", NULL, 0, "brackets"},
        {"[::1]", NULL, 0, ":PORT"},
        {"[::1]80", NULL, 0, ":PORT"},
        {"[::1:80", NULL, 0, "unterminated"},
        {"[not-v6]:80", NULL, 0, "IPv6"},
        {"[]:80", NULL, 0, "IPv6"},
        {"-bad.example:80", NULL, 0, "valid name"},
        {"bad-.example:80", NULL, 0, "valid name"},
        {"a..b:80", NULL, 0, "valid name"},
        {"sp ace:80", NULL, 0, "valid name"},
        {"host/x:80", NULL, 0, "valid name"},
        {"user@host:80", NULL, 0, "valid name"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char host[AGENT_HOST_MAX + 1], err[128] = "";
        uint16_t port = 0;
        int rc = agent_parse_target(cases[i].in, host, &port, err, sizeof(err));
        if (cases[i].host) {
            if (rc != 0)
                fail_msg("'%s' refused: %s", cases[i].in, err);
            assert_string_equal(host, cases[i].host);
            assert_int_equal(port, cases[i].port);
        } else {
            if (rc != CN_EINVAL)
                fail_msg("'%s' accepted", cases[i].in);
            if (!strstr(err, cases[i].why))
                fail_msg("'%s': '%s' lacks '%s'", cases[i].in, err, cases[i].why);
        }
    }
    /* 253-byte names pass, 254 do not. */
    char name[300], in[320], host[AGENT_HOST_MAX + 1];
    uint16_t port;
    memset(name, 'a', sizeof(name));
    for (int i = 63; i < 253; i += 64)
        name[i] = '.';
    name[253] = '\0';
    snprintf(in, sizeof(in), "%s:1", name);
    assert_int_equal(agent_parse_target(in, host, &port, NULL, 0), 0);
    name[253] = 'a';
    name[254] = '\0';
    snprintf(in, sizeof(in), "%s:1", name);
    assert_int_equal(agent_parse_target(in, host, &port, NULL, 0), CN_EINVAL);
}

static void test_format_target(void **state)
{
    char out[64];
    agent_format_target("::1", 5432, out, sizeof(out));
    assert_string_equal(out, "[::1]:5432");
    agent_format_target("db", 1, out, sizeof(out));
    assert_string_equal(out, "db:1");
}

static void test_enroll_token(void **state)
{
    uint8_t pk[32], got[32];
    char key[44], token[400], secret[AGENT_ENROLL_SECRET_MAX + 1], err[256];
    randombytes_buf(pk, sizeof(pk));
    agent_key_to_b64url(pk, key);
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

static void test_uuid(void **state)
{
    assert_true(agent_is_uuid("2da00a1a-38b5-49ea-bedf-669e3b31ccef"));
    assert_true(agent_is_uuid("2DA00A1A-38B5-49EA-BEDF-669E3B31CCEF"));
    assert_false(agent_is_uuid("2da00a1a-38b5-49ea-bedf-669e3b31cce"));
    assert_false(agent_is_uuid("2da00a1a-38b5-49ea-bedf-669e3b31ccefa"));
    assert_false(agent_is_uuid("2da00a1a_38b5-49ea-bedf-669e3b31ccef"));
    assert_false(agent_is_uuid("2da00a1a-38b5-49ea-bedf-669e3b31ccgf"));
    assert_false(agent_is_uuid("redis1"));
    assert_false(agent_is_uuid(""));
    assert_false(agent_is_uuid(NULL));
}

static void test_keys(void **state)
{
    uint8_t k[32], back[32];
    char b64[45], b64url[44];
    randombytes_buf(k, sizeof(k));
    agent_key_to_b64(k, b64);
    agent_key_to_b64url(k, b64url);
    assert_int_equal(strlen(b64), 44);
    assert_int_equal(b64[43], '=');
    assert_int_equal(agent_key_from_b64(b64, back), 0);
    assert_memory_equal(back, k, 32);
    assert_int_equal(agent_key_from_b64url(b64url, back), 0);
    assert_memory_equal(back, k, 32);
    /* The variants are not interchangeable, lengths are exact. */
    assert_int_equal(agent_key_from_b64url(b64, back), CN_EINVAL);
    b64[20] = '\0';
    assert_int_equal(agent_key_from_b64(b64, back), CN_EINVAL);
    assert_int_equal(agent_key_from_b64("", back), CN_EINVAL);
    assert_int_equal(agent_key_from_b64(NULL, back), CN_EINVAL);
    assert_int_equal(agent_key_from_b64url("AAAA", back), CN_EINVAL);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets),      cmocka_unit_test(test_format_target),
        cmocka_unit_test(test_enroll_token), cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
