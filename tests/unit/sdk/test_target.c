/* cn_target: every form of HOST:PORT a user may type (agent CLI, hub API,
 * hub --listen) and every way it can be wrong, with the sentence that says
 * so. Vectors merged from the agent's and the hub's former parsers. */
#include "cn_test.h"

#include "cn_target.h"

enum { BARE = CN_TARGET_BARE_PORT, ZERO = CN_TARGET_PORT_ZERO, ADDR = CN_TARGET_ADDRESS_ONLY };

static const struct {
    const char *in;
    unsigned flags;
    const char *host; /* NULL: must fail */
    unsigned port;
    const char *why; /* part of the failure sentence */
} cases[] = {
    /* bare ports (targets only) */
    {"8080", BARE, "localhost", 8080, NULL},
    {"1", BARE, "localhost", 1, NULL},
    {"65535", BARE, "localhost", 65535, NULL},
    {"0", BARE, NULL, 0, "between 1 and 65535"},
    {"65536", BARE, NULL, 0, "between 1 and 65535"},
    {"123456", BARE, NULL, 0, "between 1 and 65535"},
    {"8080", 0, NULL, 0, "expected HOST:PORT"},
    {"host", BARE, NULL, 0, "HOST:PORT or PORT"},
    {"abc", BARE, NULL, 0, "HOST:PORT or PORT"},
    {"", BARE, NULL, 0, "empty"},
    /* names and IPv4 */
    {"localhost:5432", BARE, "localhost", 5432, NULL},
    {"127.0.0.1:6379", BARE, "127.0.0.1", 6379, NULL},
    {"127.0.0.1:65535", 0, "127.0.0.1", 65535, NULL},
    {"db.internal:1", BARE, "db.internal", 1, NULL},
    {"my_host-1.example.com:443", BARE, "my_host-1.example.com", 443, NULL},
    {"example.com.:80", BARE, "example.com.", 80, NULL},
    {"A-b.C:22", BARE, "A-b.C", 22, NULL},
    {"host:0", BARE, NULL, 0, "between 1 and 65535"},
    {"host:70000", BARE, NULL, 0, "between 1 and 65535"},
    {"host:99999999999999999999", BARE, NULL, 0, "between 1 and 65535"},
    {"host:", BARE, NULL, 0, "between 1 and 65535"},
    {"host:80x", BARE, NULL, 0, "between 1 and 65535"},
    {"host:-1", BARE, NULL, 0, "between 1 and 65535"},
    {"host: 80", BARE, NULL, 0, "between 1 and 65535"},
    {":80", BARE, NULL, 0, "no host"},
    {"-bad.example:80", BARE, NULL, 0, "starts with '-'"},
    {"bad-.example:80", BARE, NULL, 0, "ends with '-'"},
    {"a..b:80", BARE, NULL, 0, "empty label"},
    {"sp ace:80", BARE, NULL, 0, "not a valid name"},
    {"host/x:80", BARE, NULL, 0, "not a valid name"},
    {"user@host:80", BARE, NULL, 0, "not a valid name"},
    {"h\xc3\xa9llo:80", BARE, NULL, 0, "not a valid name"},
    {"999.1.1.1:80", BARE, NULL, 0, "IPv4"},
    {"1.2.3:80", BARE, NULL, 0, "IPv4"},
    /* IPv6 */
    {"[::1]:5432", BARE, "::1", 5432, NULL},
    {"[2001:db8::42]:27017", BARE, "2001:db8::42", 27017, NULL},
    {"[fe80::1%eth0]:80", BARE, NULL, 0, "IPv6"},
    {"[not-v6]:80", BARE, NULL, 0, "IPv6"},
    {"[nothost]:80", BARE, NULL, 0, "IPv6"},
    {"[]:80", BARE, NULL, 0, "IPv6"},
    {"::1:80", BARE, NULL, 0, "brackets"},
    {"2001:db8::1:80", BARE, NULL, 0, "brackets"},
    {"[::1]", BARE, NULL, 0, ":PORT"},
    {"[::1]80", BARE, NULL, 0, ":PORT"},
    {"[::1:80", BARE, NULL, 0, "unterminated"},
    /* listen addresses: IP literals or localhost, port 0 allowed */
    {"127.0.0.1:8080", ZERO | ADDR, "127.0.0.1", 8080, NULL},
    {"localhost:0", ZERO | ADDR, "localhost", 0, NULL},
    {"[::1]:9000", ZERO | ADDR, "::1", 9000, NULL},
    {"127.0.0.1:65536", ZERO | ADDR, NULL, 0, "between 0 and 65535"},
    {"127.0.0.1:", ZERO | ADDR, NULL, 0, "between 0 and 65535"},
    {"1.2.3.4:x", ZERO | ADDR, NULL, 0, "between 0 and 65535"},
    {"example.com:80", ZERO | ADDR, NULL, 0, "IP address or localhost"},
    {"8080", ZERO | ADDR, NULL, 0, "expected HOST:PORT"},
    {":8080", ZERO | ADDR, NULL, 0, "no host"},
};

static void test_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char host[CN_TARGET_HOST_SIZE];
        uint16_t port = 7;
        const char *why = NULL;
        bool ok = cn_target_parse(cases[i].in, cases[i].flags, host, &port, &why);
        if (cases[i].host) {
            if (!ok)
                fail_msg("'%s' refused: %s", cases[i].in, why);
            assert_string_equal(host, cases[i].host);
            assert_int_equal(port, cases[i].port);
        } else {
            if (ok)
                fail_msg("'%s' accepted", cases[i].in);
            if (!why || !strstr(why, cases[i].why))
                fail_msg("'%s': '%s' lacks '%s'", cases[i].in, why ? why : "(null)", cases[i].why);
            assert_string_equal(host, "");
        }
    }
    const char *why = NULL;
    char host[CN_TARGET_HOST_SIZE];
    uint16_t port;
    assert_false(cn_target_parse(NULL, BARE, host, &port, &why));
    assert_non_null(strstr(why, "empty"));
}

static void test_length_limits(void **state)
{
    (void)state;
    /* 253-byte names pass, 254 do not; 63-byte labels pass, 64 do not. */
    char name[300], in[320], host[CN_TARGET_HOST_SIZE];
    uint16_t port;
    memset(name, 'a', sizeof(name));
    for (int i = 63; i < 253; i += 64)
        name[i] = '.';
    name[253] = '\0';
    assert_true(cn_target_host_valid(name, NULL));
    snprintf(in, sizeof(in), "%s:1", name);
    assert_true(cn_target_parse(in, 0, host, &port, NULL));
    name[253] = 'a';
    name[254] = '\0';
    assert_false(cn_target_host_valid(name, NULL));
    snprintf(in, sizeof(in), "%s:1", name);
    assert_false(cn_target_parse(in, 0, host, &port, NULL));
    char label[80];
    memset(label, 'b', 64);
    strcpy(label + 64, ".com");
    assert_false(cn_target_host_valid(label, NULL));
    strcpy(label + 63, ".com");
    assert_true(cn_target_host_valid(label, NULL));
    /* Overlong text is refused before anything is copied. */
    char big[400];
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    const char *why = NULL;
    assert_false(cn_target_parse(big, 0, host, &port, &why));
    assert_non_null(strstr(why, "too long"));
}

static void test_host_valid(void **state)
{
    (void)state;
    assert_true(cn_target_host_valid("::1", NULL)); /* unbracketed is fine here */
    assert_true(cn_target_host_valid("10.0.0.1", NULL));
    assert_false(cn_target_host_valid("", NULL));
    assert_false(cn_target_host_valid(NULL, NULL));
    assert_false(cn_target_host_valid("::zz", NULL));
}

static void test_format(void **state)
{
    (void)state;
    char out[64];
    cn_target_format("::1", 5432, out, sizeof(out));
    assert_string_equal(out, "[::1]:5432");
    cn_target_format("db", 1, out, sizeof(out));
    assert_string_equal(out, "db:1");
    /* What it formats parses back to the same thing. */
    char host[CN_TARGET_HOST_SIZE];
    uint16_t port;
    cn_target_format("2001:db8::1", 65535, out, sizeof(out));
    assert_true(cn_target_parse(out, 0, host, &port, NULL));
    assert_string_equal(host, "2001:db8::1");
    assert_int_equal(port, 65535);
    cn_target_format("db", 5432, out, 4);
    assert_string_equal(out, "db:");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_length_limits),
        cmocka_unit_test(test_host_valid),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
