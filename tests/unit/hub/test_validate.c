/* validate: tunnel targets, names, ports, TTLs, listen addresses and port
 * ranges, as table-driven vectors. */
#include "cn_test.h"

#include "cn_target.h"
#include "validate.h"

static void test_targets_accepted(void **state)
{
    static const struct {
        const char *in;
        const char *host;
        unsigned port;
    } ok[] = {
        {"localhost:5432", "localhost", 5432},
        {"db.internal:1", "db.internal", 1},
        {"127.0.0.1:65535", "127.0.0.1", 65535},
        {"[::1]:8080", "::1", 8080},
        {"[2001:db8::1]:443", "2001:db8::1", 443},
        {"my_service:80", "my_service", 80},
        {"example.com.:80", "example.com.", 80},
        {"3000", "localhost", 3000},
        {"A-b.C:22", "A-b.C", 22},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char host[HUB_HOST_SIZE];
        uint16_t port = 0;
        const char *why = NULL;
        assert_true(hub_parse_target(ok[i].in, host, &port, &why));
        assert_string_equal(host, ok[i].host);
        assert_int_equal(port, ok[i].port);
    }
}

static void test_targets_refused(void **state)
{
    static const char *const bad[] = {
        "",
        ":80",
        "host:",
        "host:0",
        "host:65536",
        "host:99999999999999999999",
        "host:-1",
        "host:80x",
        "host: 80",
        "::1:80",
        "[::1]80",
        "[nothost]:80",
        "[]:80",
        "-bad.host:80",
        "bad-.host:80",
        "bad..host:80",
        "bad host:80",
        "bad/host:80",
        "999.1.1.1:80",
        "1.2.3:80",
        "abc",
        "h\xc3\xa9llo:80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char host[HUB_HOST_SIZE];
        uint16_t port = 0;
        const char *why = NULL;
        assert_false(hub_parse_target(bad[i], host, &port, &why));
        assert_non_null(why);
        assert_string_equal(host, "");
    }
    /* Length limits of hosts and labels: tests/unit/sdk/test_target.c (the
     * parser is cn_target's); here, that the hub spelling is that parser. */
    const char *why = NULL;
    assert_false(hub_valid_host("bad..host", &why));
    const char *sdk_why = NULL;
    assert_false(cn_target_host_valid("bad..host", &sdk_why));
    assert_ptr_equal(why, sdk_why);
}

static void test_format_target(void **state)
{
    char out[300];
    hub_format_target("::1", 80, out, sizeof(out));
    assert_string_equal(out, "[::1]:80");
    hub_format_target("db", 5432, out, sizeof(out));
    assert_string_equal(out, "db:5432");
}

static void test_ports_and_ttl(void **state)
{
    assert_false(hub_valid_port(0, NULL));
    assert_true(hub_valid_port(1, NULL));
    assert_true(hub_valid_port(65535, NULL));
    assert_false(hub_valid_port(65536, NULL));
    assert_false(hub_valid_port(-5, NULL));
    assert_false(hub_valid_ttl(0, NULL));
    assert_true(hub_valid_ttl(1, NULL));
    assert_true(hub_valid_ttl(HUB_TTL_MAX_SECONDS, NULL));
    assert_false(hub_valid_ttl(HUB_TTL_MAX_SECONDS + 1, NULL));
    assert_false(hub_valid_ttl(-1, NULL));
}

static void test_names(void **state)
{
    char n100[101], n101[102];
    memset(n100, 'a', 100);
    n100[100] = '\0';
    memset(n101, 'a', 101);
    n101[101] = '\0';
    assert_true(hub_valid_name("web", NULL));
    assert_true(hub_valid_name("My_App.v2-x", NULL));
    assert_true(hub_valid_name(n100, NULL));
    const char *why = NULL;
    assert_false(hub_valid_name(n101, &why));
    assert_non_null(why);
    assert_false(hub_valid_name("", NULL));
    assert_false(hub_valid_name("-x", NULL));
    assert_false(hub_valid_name(".x", NULL));
    assert_false(hub_valid_name("a b", NULL));
    assert_false(hub_valid_name("a/b", NULL));
    assert_false(hub_valid_name("caf\xc3\xa9", NULL));

    assert_true(hub_valid_dns_label("my-app-1", NULL));
    assert_false(hub_valid_dns_label("My-App", NULL));
    assert_false(hub_valid_dns_label("my_app", NULL));
    assert_false(hub_valid_dns_label("-app", NULL));
    assert_false(hub_valid_dns_label("app-", NULL));
    assert_false(hub_valid_dns_label(n100, NULL));

    assert_true(hub_valid_label("Production \xc3\xa9quipe", NULL));
    assert_false(hub_valid_label("tab\there", NULL));
    assert_false(hub_valid_label("", NULL));
    assert_false(hub_valid_label(n101, NULL));

    assert_true(hub_valid_http_user("alice@example.com", NULL));
    assert_false(hub_valid_http_user("a:b", NULL));
    assert_false(hub_valid_http_user("", NULL));
}

static void test_generated_names(void **state)
{
    for (uint32_t seed = 0; seed < 5000; seed += 7) {
        char name[HUB_NAME_SIZE];
        hub_generate_name(seed * 2654435761u, name);
        assert_true(hub_valid_name(name, NULL));
        assert_true(hub_valid_dns_label(name, NULL));
        /* adjective-noun-xxxx */
        size_t n = strlen(name);
        assert_true(n > 7);
        assert_int_equal(name[n - 5], '-');
    }
    char a[HUB_NAME_SIZE], b[HUB_NAME_SIZE];
    hub_generate_name(0x12345678, a);
    hub_generate_name(0x12345678, b);
    assert_string_equal(a, b);
}

static void test_port_range(void **state)
{
    uint16_t lo = 0, hi = 0;
    assert_true(hub_parse_port_range("20000-20010", &lo, &hi, NULL));
    assert_int_equal(lo, 20000);
    assert_int_equal(hi, 20010);
    assert_true(hub_parse_port_range("5-5", &lo, &hi, NULL));
    static const char *const bad[] = {"",        "-",   "1-",   "-2",    "0-10", "10-5",
                                      "1-65536", "a-b", "1--2", "1-2-3", " 1-2", NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_false(hub_parse_port_range(bad[i], &lo, &hi, NULL));
}

static void test_listen(void **state)
{
    char host[64];
    uint16_t port = 1;
    assert_true(hub_parse_listen("127.0.0.1:8080", host, sizeof(host), &port, NULL));
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_true(hub_parse_listen("localhost:0", host, sizeof(host), &port, NULL));
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 0);
    assert_true(hub_parse_listen("[::1]:9000", host, sizeof(host), &port, NULL));
    assert_string_equal(host, "::1");
    static const char *const bad[] = {
        "",       "8080",    ":8080",     "127.0.0.1:", "127.0.0.1:65536", "example.com:80",
        "::1:80", "[::1:80", "1.2.3.4:x", NULL};
    for (size_t i = 0; bad[i]; i++) {
        const char *why = NULL;
        assert_false(hub_parse_listen(bad[i], host, sizeof(host), &port, &why));
        assert_non_null(why);
    }
}

static void test_parse_uint(void **state)
{
    unsigned long long v = 0;
    assert_true(hub_parse_uint("0", 10, &v));
    assert_int_equal(v, 0);
    assert_true(hub_parse_uint("18446744073709551615", UINT64_MAX, &v));
    assert_false(hub_parse_uint("18446744073709551616", UINT64_MAX, &v));
    assert_false(hub_parse_uint("11", 10, &v));
    assert_false(hub_parse_uint("", 10, &v));
    assert_false(hub_parse_uint("+1", 10, &v));
    assert_false(hub_parse_uint(" 1", 10, &v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets_accepted),
        cmocka_unit_test(test_targets_refused),
        cmocka_unit_test(test_format_target),
        cmocka_unit_test(test_ports_and_ttl),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_generated_names),
        cmocka_unit_test(test_port_range),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_parse_uint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
