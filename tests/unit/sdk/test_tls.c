/* cn_tls: which hosts count as loopback, the plain-HTTP rule, and one line
 * per TLS failure class. (Real handshakes: tests/integration/test_tls.sh.) */
#include "cn_test.h"

#include "cn_err.h"
#include "cn_tls.h"

#include <openssl/x509_vfy.h>

static void test_loopback_hosts(void **state)
{
    static const struct {
        const char *host;
        bool loopback;
    } cases[] = {
        {"127.0.0.1", true},
        {"127.255.0.9", true},
        {"localhost", true},
        {"LocalHost", true},
        {"::1", true},
        {"::ffff:127.0.0.1", true},
        {"0:0:0:0:0:0:0:1", true},
        {"128.0.0.1", false},
        {"10.0.0.1", false},
        {"0.0.0.0", false},
        {"::", false},
        {"::ffff:10.0.0.1", false},
        {"localhost.example.com", false},
        {"127.0.0.1.example.com", false},
        {"my-localhost", false},
        {"", false},
        {NULL, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (cn_tls_host_is_loopback(cases[i].host) != cases[i].loopback)
            fail_msg("%s: expected loopback=%d", cases[i].host ? cases[i].host : "(null)",
                     cases[i].loopback);
}

static void test_plain_http_rule(void **state)
{
    char err[256];
    assert_int_equal(cn_tls_check_scheme(false, "127.0.0.1", false, err, sizeof(err)), 0);
    assert_int_equal(cn_tls_check_scheme(false, "localhost", false, err, sizeof(err)), 0);
    assert_int_equal(cn_tls_check_scheme(true, "hub.example.com", false, err, sizeof(err)), 0);
    assert_int_equal(cn_tls_check_scheme(false, "hub.example.com", true, err, sizeof(err)), 0);
    err[0] = '\0';
    assert_int_equal(cn_tls_check_scheme(false, "hub.example.com", false, err, sizeof(err)),
                     CN_EREFUSED);
    /* One line that says why and what to do. */
    assert_non_null(strstr(err, "hub.example.com"));
    assert_non_null(strstr(err, "cleartext"));
    assert_non_null(strstr(err, "https://"));
    assert_non_null(strstr(err, "--allow-insecure"));
    assert_null(strchr(err, '\n'));
    assert_int_equal(cn_tls_check_scheme(false, "10.1.2.3", false, NULL, 0), CN_EREFUSED);
}

static void test_failure_classes(void **state)
{
    assert_int_equal(cn_tls_classify(X509_V_OK), CN_TLS_OK);
    assert_int_equal(cn_tls_classify(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
                     CN_TLS_UNTRUSTED);
    assert_int_equal(cn_tls_classify(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT), CN_TLS_UNTRUSTED);
    assert_int_equal(cn_tls_classify(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN), CN_TLS_UNTRUSTED);
    assert_int_equal(cn_tls_classify(X509_V_ERR_HOSTNAME_MISMATCH), CN_TLS_NAME_MISMATCH);
    assert_int_equal(cn_tls_classify(X509_V_ERR_IP_ADDRESS_MISMATCH), CN_TLS_NAME_MISMATCH);
    assert_int_equal(cn_tls_classify(X509_V_ERR_CERT_HAS_EXPIRED), CN_TLS_EXPIRED);
    assert_int_equal(cn_tls_classify(X509_V_ERR_CERT_REVOKED), CN_TLS_BAD_CERTIFICATE);

    static const struct {
        cn_tls_failure_t f;
        const char *want;
    } lines[] = {
        {CN_TLS_UNTRUSTED, "not signed by a trusted CA"},
        {CN_TLS_UNTRUSTED, "--ca-file"},
        {CN_TLS_NAME_MISMATCH, "not valid for the name 'hub.test'"},
        {CN_TLS_EXPIRED, "has expired"},
        {CN_TLS_BAD_CERTIFICATE, "was refused (revoked)"},
        {CN_TLS_HANDSHAKE, "handshake with hub.test failed"},
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        char out[256];
        cn_tls_failure_line(lines[i].f, "hub.test", "revoked", out, sizeof(out));
        if (!strstr(out, lines[i].want))
            fail_msg("class %d: '%s' lacks '%s'", (int)lines[i].f, out, lines[i].want);
        assert_null(strchr(out, '\n'));
    }
    /* No connection, no TLS state: not a TLS failure. */
    char out[64] = "x";
    assert_int_equal(cn_tls_describe(NULL, "hub.test", out, sizeof(out)), CN_TLS_OK);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_hosts),
        cmocka_unit_test(test_plain_http_rule),
        cmocka_unit_test(test_failure_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
