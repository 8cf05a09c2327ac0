/* Probe requests and the verdicts on replies: each plugin's request bytes,
 * and for each plugin a table of replies (real, recorded or built per the
 * protocol's spec) that are up, incomplete, or down with a named reason. */
#include "cn_test.h"

#include "plugins.h"
#include "vectors.h"

/* The verdict on an exact-size heap copy; `why` gets the reason. */
static int judge(const cn_plugin_t *p, const void *bytes, size_t len, char *why, size_t cap)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, bytes, len);
    why[0] = '\0';
    int v = p->probe_reply(copy, len, why, cap);
    free(copy);
    return v;
}

typedef struct reply {
    const cn_plugin_t *plugin;
    const char *bytes;
    size_t len;
    int want;
    const char *why; /* a substring of the reason when down */
} reply_t;

#define B(s) s, sizeof(s) - 1

static const reply_t replies[] = {
    {&cn_plugin_postgresql, B("S"), CN_PLUGIN_UP, NULL},
    {&cn_plugin_postgresql, B("N"), CN_PLUGIN_UP, NULL},
    {&cn_plugin_postgresql, "", 0, CN_PLUGIN_PARTIAL, NULL},
    {&cn_plugin_postgresql, B("SSH-2.0-OpenSSH_9.2\r\n"), CN_PLUGIN_DOWN,
     "not a PostgreSQL server"},
    {&cn_plugin_postgresql, B("+PONG\r\n"), CN_PLUGIN_DOWN, "answer starts 0x2b"},
    {&cn_plugin_postgresql, B("E\0\0\0\x2aSFATAL\0C53300\0Msorry, too many clients\0\0"),
     CN_PLUGIN_DOWN, "PostgreSQL error: sorry, too many clients"},
    {&cn_plugin_postgresql, B("E\0\0\0\x2aSFATAL\0C5"), CN_PLUGIN_PARTIAL, NULL},
    {&cn_plugin_postgresql, B("E\xff\0\0\0"), CN_PLUGIN_DOWN, "bad error length"},

    {&cn_plugin_mysql, B("\x17\0\0\0\xff\x10\x04Too many connections"), CN_PLUGIN_DOWN,
     "MySQL error 1040: Too many connections"},
    {&cn_plugin_mysql, B("\x18\0\0\0\xff\x6a\x04#HY000Host is blocked"), CN_PLUGIN_DOWN,
     "MySQL error 1130: Host is blocked"},
    {&cn_plugin_mysql, B("SSH-2.0-OpenSSH_9.2\r\n"), CN_PLUGIN_DOWN, "not a MySQL server"},
    {&cn_plugin_mysql,
     B("\x20\0\0\0\x09"
       "3.23.58\0"),
     CN_PLUGIN_DOWN, "protocol 9"},
    {&cn_plugin_mysql,
     B("\x64\0\0\0\x0a"
       "5.5"),
     CN_PLUGIN_PARTIAL, NULL},

    {&cn_plugin_redis, B("+PONG\r\n"), CN_PLUGIN_UP, NULL},
    {&cn_plugin_redis, B("+PON"), CN_PLUGIN_PARTIAL, NULL},
    {&cn_plugin_redis, B("-NOAUTH Authentication required.\r\n"), CN_PLUGIN_UP, NULL},
    {&cn_plugin_redis, B("-WRONGPASS invalid username-password pair\r\n"), CN_PLUGIN_UP, NULL},
    {&cn_plugin_redis, B("-LOADING Redis is loading the dataset in memory\r\n"), CN_PLUGIN_DOWN,
     "Redis error: LOADING Redis is loading"},
    {&cn_plugin_redis, B("-ERR max number of clients reached\r\n"), CN_PLUGIN_DOWN,
     "max number of clients"},
    {&cn_plugin_redis, B("+OK\r\n"), CN_PLUGIN_DOWN, "answered \"OK\" to PING"},
    {&cn_plugin_redis, B("+PONG\n"), CN_PLUGIN_DOWN, "malformed line"},
    {&cn_plugin_redis, B("HTTP/1.1 400 Bad Request\r\n"), CN_PLUGIN_DOWN, "not a Redis server"},
    {&cn_plugin_redis, B("N"), CN_PLUGIN_DOWN, "not a Redis server"},

    {&cn_plugin_http, B("HTTP/1.1 200 OK\r\n"), CN_PLUGIN_UP, NULL},
    {&cn_plugin_http, B("HTTP/1.0 404 File not found\r\nServer: x\r\n"), CN_PLUGIN_UP, NULL},
    {&cn_plugin_http, B("HTTP/1.1 401 Unauthorized\r\n"), CN_PLUGIN_UP, NULL},
    {&cn_plugin_http, B("HTTP/1.1 204"), CN_PLUGIN_UP, NULL},
    {&cn_plugin_http, B("HTTP/1.1 20"), CN_PLUGIN_PARTIAL, NULL},
    {&cn_plugin_http, B("HTTP/1.1 503 Service Unavailable\r\n"), CN_PLUGIN_DOWN,
     "HTTP 503 Service Unavailable"},
    {&cn_plugin_http, B("HTTP/1.1 2x0 OK\r\n"), CN_PLUGIN_DOWN, "bad status line"},
    {&cn_plugin_http, B("HTTP/2.0 200 OK\r\n"), CN_PLUGIN_DOWN, "not an HTTP server"},
    {&cn_plugin_http, B("-ERR unknown command 'HEAD'\r\n"), CN_PLUGIN_DOWN, "not an HTTP server"},
    {&cn_plugin_http, B("N"), CN_PLUGIN_DOWN, "not an HTTP server"},

    {&cn_plugin_tcp, B("anything"), CN_PLUGIN_UP, NULL},
};

static void test_reply_table(void **state)
{
    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        const reply_t *r = &replies[i];
        char why[CN_PLUGIN_WHY_MAX];
        int v = judge(r->plugin, r->bytes, r->len, why, sizeof(why));
        if (v != r->want)
            fail_msg("reply %zu (%s): verdict %d, want %d (%s)", i, r->plugin->name, v, r->want,
                     why);
        if (r->why && !strstr(why, r->why))
            fail_msg("reply %zu (%s): reason \"%s\" lacks \"%s\"", i, r->plugin->name, why, r->why);
    }
}

static void test_requests(void **state)
{
    uint8_t out[CN_PLUGIN_REQUEST_MAX];
    size_t len = 99;
    cn_plugin_target_t t = {.host = "::1", .port = 8080};

    assert_int_equal(cn_plugin_postgresql.probe_request(&t, out, sizeof(out), &len), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(out, "\0\0\0\x08\x04\xd2\x16\x2f", 8); /* SSLRequest */

    assert_int_equal(cn_plugin_redis.probe_request(&t, out, sizeof(out), &len), 0);
    assert_int_equal(len, 14);
    assert_memory_equal(out, "*1\r\n$4\r\nPING\r\n", 14);

    assert_int_equal(cn_plugin_http.probe_request(&t, out, sizeof(out), &len), 0);
    assert_true(len > 20 && len < sizeof(out));
    out[len] = '\0';
    assert_non_null(strstr((char *)out, "HEAD / HTTP/1.1\r\nHost: [::1]:8080\r\n"));
    assert_true(strstr((char *)out, "\r\n\r\n") == (char *)out + len - 4);
    /* What HTTP and Redis probes send is what their detection accepts. */
    assert_int_equal(cn_plugin_http.detect(out, len, CN_PLUGIN_FROM_CLIENT), CN_PLUGIN_MATCH);
    assert_int_equal(cn_plugin_redis.probe_request(&t, out, sizeof(out), &len), 0);
    assert_int_equal(cn_plugin_redis.detect(out, len, CN_PLUGIN_FROM_CLIENT), CN_PLUGIN_MATCH);
    assert_int_equal(cn_plugin_postgresql.probe_request(&t, out, sizeof(out), &len), 0);
    assert_int_equal(cn_plugin_postgresql.detect(out, len, CN_PLUGIN_FROM_CLIENT), CN_PLUGIN_MATCH);

    /* MongoDB: an OP_MSG hello that detection takes for a client's. */
    assert_int_equal(cn_plugin_mongodb.probe_request(&t, out, sizeof(out), &len), 0);
    assert_int_equal(len, 52);
    assert_int_equal(cn_plugin_mongodb.detect(out, len, CN_PLUGIN_FROM_CLIENT), CN_PLUGIN_MATCH);
    assert_non_null(memmem(out, len, "hello", 6));

    /* Server-first and tcp send nothing. */
    len = 99;
    assert_int_equal(cn_plugin_mysql.probe_request(&t, out, sizeof(out), &len), 0);
    assert_int_equal(len, 0);
    assert_true(cn_plugin_mysql.flags & CN_PLUGIN_SERVER_FIRST);
    len = 99;
    assert_int_equal(cn_plugin_tcp.probe_request(&t, out, sizeof(out), &len), 0);
    assert_int_equal(len, 0);

    /* Small buffers are refused, not overrun. */
    assert_int_equal(cn_plugin_postgresql.probe_request(&t, out, 7, &len), CN_PLUGIN_ETOOBIG);
    assert_int_equal(cn_plugin_redis.probe_request(&t, out, 13, &len), CN_PLUGIN_ETOOBIG);
    assert_int_equal(cn_plugin_mongodb.probe_request(&t, out, 51, &len), CN_PLUGIN_ETOOBIG);
    assert_int_equal(cn_plugin_http.probe_request(&t, out, 30, &len), CN_PLUGIN_ETOOBIG);
}

static void test_mysql_recorded_greeting_is_up(void **state)
{
    size_t len;
    char why[CN_PLUGIN_WHY_MAX];
    uint8_t *g = vector_load("mysql_mariadb_greeting.bin", &len);
    assert_int_equal(judge(&cn_plugin_mysql, g, len, why, sizeof(why)), CN_PLUGIN_UP);
    for (size_t n = 0; n < len; n++)
        if (judge(&cn_plugin_mysql, g, n, why, sizeof(why)) != CN_PLUGIN_PARTIAL)
            fail_msg("greeting prefix of %zu bytes: not PARTIAL (%s)", n, why);
    free(g);
}

/* The hello reply in vectors/ is built per the OP_MSG and BSON specs
 * (tests/integration/plugin_peers.py; the Node.js driver accepts it), not
 * recorded: Debian 12 has no MongoDB server. */
static void test_mongodb_reply(void **state)
{
    size_t len;
    char why[CN_PLUGIN_WHY_MAX];
    uint8_t *r = vector_load("mongodb_hello_reply.bin", &len);
    assert_int_equal(judge(&cn_plugin_mongodb, r, len, why, sizeof(why)), CN_PLUGIN_UP);
    for (size_t n = 0; n < len; n++)
        if (judge(&cn_plugin_mongodb, r, n, why, sizeof(why)) != CN_PLUGIN_PARTIAL)
            fail_msg("reply prefix of %zu bytes: not PARTIAL (%s)", n, why);

    /* An answer to another request. */
    uint8_t *m = malloc(len);
    memcpy(m, r, len);
    m[8] ^= 1;
    assert_int_equal(judge(&cn_plugin_mongodb, m, len, why, sizeof(why)), CN_PLUGIN_DOWN);
    assert_non_null(strstr(why, "another request"));
    /* A BSON length that runs past the message. */
    memcpy(m, r, len);
    m[21] = 0xff;
    assert_int_equal(judge(&cn_plugin_mongodb, m, len, why, sizeof(why)), CN_PLUGIN_DOWN);
    assert_non_null(strstr(why, "malformed BSON"));
    free(m);
    free(r);

    /* ok: 0 with an errmsg, built here: header, flags, kind 0, document
     * {ok: 0.0, errmsg: "no"}. */
    static const uint8_t failed[] = {
        0x35, 0,   0,   0,   1,   0,   0,   0, 0x52, 0x50, 0x4e, 0x43, 0xdd, 0x07, 0,
        0,                                                          /* header */
        0,    0,   0,   0,   0,                                     /* flags, kind */
        32,   0,   0,   0,                                          /* doc length */
        0x01, 'o', 'k', 0,   0,   0,   0,   0, 0,    0,    0,    0, /* ok: 0.0 */
        0x02, 'e', 'r', 'r', 'm', 's', 'g', 0, 3,    0,    0,    0,    'n',  'o',  0, /* errmsg */
        0};
    assert_int_equal(judge(&cn_plugin_mongodb, failed, sizeof(failed), why, sizeof(why)),
                     CN_PLUGIN_DOWN);
    assert_string_equal(why, "MongoDB error: no");
    /* The same with ok: true as a boolean, and as an int32 1. */
    static const uint8_t ok_bool[] = {0x1f, 0,    0,    0,    1,   0,   0, 0, 0x52, 0x50, 0x4e,
                                      0x43, 0xdd, 0x07, 0,    0,   0,   0, 0, 0,    0,    10,
                                      0,    0,    0,    0x08, 'o', 'k', 0, 1, 0};
    assert_int_equal(judge(&cn_plugin_mongodb, ok_bool, sizeof(ok_bool), why, sizeof(why)),
                     CN_PLUGIN_UP);
    static const uint8_t ok_int[] = {0x22, 0,    0,   0,   1, 0, 0, 0, 0x52, 0x50, 0x4e, 0x43,
                                     0xdd, 0x07, 0,   0,   0, 0, 0, 0, 0,    13,   0,    0,
                                     0,    0x10, 'o', 'k', 0, 1, 0, 0, 0,    0};
    assert_int_equal(judge(&cn_plugin_mongodb, ok_int, sizeof(ok_int), why, sizeof(why)),
                     CN_PLUGIN_UP);
    /* No ok field at all. */
    static const uint8_t no_ok[] = {0x1f, 0,    0,    0,    1,   0,   0, 0, 0x52, 0x50, 0x4e,
                                    0x43, 0xdd, 0x07, 0,    0,   0,   0, 0, 0,    0,    10,
                                    0,    0,    0,    0x08, 'o', 'x', 0, 1, 0};
    assert_int_equal(judge(&cn_plugin_mongodb, no_ok, sizeof(no_ok), why, sizeof(why)),
                     CN_PLUGIN_DOWN);
    assert_non_null(strstr(why, "without an ok field"));
    /* A boolean that is neither 0 nor 1 is malformed BSON. */
    static const uint8_t bad_bool[] = {0x1f, 0,    0,    0,    1,   0,   0, 0, 0x52, 0x50, 0x4e,
                                       0x43, 0xdd, 0x07, 0,    0,   0,   0, 0, 0,    0,    10,
                                       0,    0,    0,    0x08, 'o', 'k', 0, 2, 0};
    assert_int_equal(judge(&cn_plugin_mongodb, bad_bool, sizeof(bad_bool), why, sizeof(why)),
                     CN_PLUGIN_DOWN);
    /* A reply larger than the host keeps. */
    static const uint8_t huge[] = {0, 0, 1, 0};
    assert_int_equal(judge(&cn_plugin_mongodb, huge, sizeof(huge), why, sizeof(why)),
                     CN_PLUGIN_DOWN);
    assert_non_null(strstr(why, "too large"));
    /* HTTP's answer. */
    assert_int_equal(judge(&cn_plugin_mongodb, "HTTP/1.1 400 Bad", 16, why, sizeof(why)),
                     CN_PLUGIN_DOWN);
}

static void test_reason_fits_small_buffers(void **state)
{
    char why[8];
    memset(why, 'x', sizeof(why));
    assert_int_equal(judge(&cn_plugin_redis, "-ERR a long reason here\r\n", 25, why, sizeof(why)),
                     CN_PLUGIN_DOWN);
    assert_int_equal(strlen(why), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_table),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_mysql_recorded_greeting_is_up),
        cmocka_unit_test(test_mongodb_reply),
        cmocka_unit_test(test_reason_fits_small_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
