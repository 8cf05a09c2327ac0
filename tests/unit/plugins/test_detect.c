/* Detection: bytes recorded from real clients and servers (vectors/, see
 * capture.sh) are recognised by their own plugin and by no other; every
 * prefix of them keeps the answer open (MORE) or matches, never NO; and
 * hand-made near misses are refused. */
#include "cn_test.h"

#include "plugins.h"
#include "vectors.h"

typedef struct recorded {
    const char *file;
    const cn_plugin_t *plugin;
    int from;
} recorded_t;

static const recorded_t recorded[] = {
    {"postgresql_psql_sslrequest.bin", &cn_plugin_postgresql, CN_PLUGIN_FROM_CLIENT},
    {"postgresql_psql_startup.bin", &cn_plugin_postgresql, CN_PLUGIN_FROM_CLIENT},
    {"redis_cli_ping.bin", &cn_plugin_redis, CN_PLUGIN_FROM_CLIENT},
    {"http_curl_get.bin", &cn_plugin_http, CN_PLUGIN_FROM_CLIENT},
    {"http2_curl_prior_knowledge.bin", &cn_plugin_http, CN_PLUGIN_FROM_CLIENT},
    {"mongodb_node_op_query.bin", &cn_plugin_mongodb, CN_PLUGIN_FROM_CLIENT},
    {"mongodb_node_op_msg.bin", &cn_plugin_mongodb, CN_PLUGIN_FROM_CLIENT},
    {"mysql_mariadb_greeting.bin", &cn_plugin_mysql, CN_PLUGIN_FROM_SERVER},
};

static const cn_plugin_t *const all[] = {&cn_plugin_postgresql, &cn_plugin_mysql, &cn_plugin_redis,
                                         &cn_plugin_mongodb,    &cn_plugin_http,  &cn_plugin_tcp};
#define NALL (sizeof(all) / sizeof(all[0]))

static int detect(const cn_plugin_t *p, const uint8_t *data, size_t len, int from)
{
    if (!p->detect)
        return CN_PLUGIN_NO;
    /* An exact-size copy of the prefix, so reading past len is caught. */
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, data, len);
    int v = p->detect(copy, len, from);
    free(copy);
    return v;
}

static void test_recorded_bytes_match_their_plugin_only(void **state)
{
    for (size_t i = 0; i < sizeof(recorded) / sizeof(recorded[0]); i++) {
        size_t len;
        uint8_t *data = vector_load(recorded[i].file, &len);
        for (size_t k = 0; k < NALL; k++) {
            int want = all[k] == recorded[i].plugin ? CN_PLUGIN_MATCH : CN_PLUGIN_NO;
            int got = detect(all[k], data, len, recorded[i].from);
            if (got != want)
                fail_msg("%s: %s says %d, want %d", recorded[i].file, all[k]->name, got, want);
            /* The other direction never matches. */
            int other = recorded[i].from == CN_PLUGIN_FROM_CLIENT ? CN_PLUGIN_FROM_SERVER
                                                                  : CN_PLUGIN_FROM_CLIENT;
            if (detect(all[k], data, len, other) == CN_PLUGIN_MATCH)
                fail_msg("%s: %s matches the wrong direction", recorded[i].file, all[k]->name);
        }
        free(data);
    }
}

static void test_prefixes_never_say_no(void **state)
{
    for (size_t i = 0; i < sizeof(recorded) / sizeof(recorded[0]); i++) {
        size_t len;
        uint8_t *data = vector_load(recorded[i].file, &len);
        bool matched = false;
        for (size_t n = 0; n <= len; n++) {
            int v = detect(recorded[i].plugin, data, n, recorded[i].from);
            if (v == CN_PLUGIN_NO)
                fail_msg("%s: prefix of %zu bytes says NO", recorded[i].file, n);
            if (v == CN_PLUGIN_MATCH)
                matched = true;
            else if (matched)
                fail_msg("%s: prefix of %zu bytes un-matches", recorded[i].file, n);
        }
        assert_true(matched);
        free(data);
    }
}

static void test_registry_detects_recorded_bytes(void **state)
{
    plugins_t *ps = plugins_new();
    assert_non_null(ps);
    for (size_t i = 0; i < sizeof(recorded) / sizeof(recorded[0]); i++) {
        size_t len;
        bool more = true;
        uint8_t *data = vector_load(recorded[i].file, &len);
        assert_ptr_equal(plugins_detect(ps, data, len, recorded[i].from, &more),
                         recorded[i].plugin);
        assert_false(more);
        /* Two bytes are not enough for anyone to decide. */
        more = false;
        assert_null(plugins_detect(ps, data, 2, recorded[i].from, &more));
        assert_true(more);
        free(data);
    }
    plugins_free(ps);
}

typedef struct handmade {
    const char *what;
    const cn_plugin_t *plugin;
    int from;
    const char *bytes;
    size_t len;
    int want;
} handmade_t;

#define B(s) s, sizeof(s) - 1

static const handmade_t handmade[] = {
    /* PostgreSQL */
    {"cancel request", &cn_plugin_postgresql, CN_PLUGIN_FROM_CLIENT,
     B("\0\0\0\x10\x04\xd2\x16\x2e\0\0\0\1\0\0\0\2"), CN_PLUGIN_MATCH},
    {"GSSENC request", &cn_plugin_postgresql, CN_PLUGIN_FROM_CLIENT,
     B("\0\0\0\x08\x04\xd2\x16\x30"), CN_PLUGIN_MATCH},
    {"SSLRequest with a wrong length", &cn_plugin_postgresql, CN_PLUGIN_FROM_CLIENT,
     B("\0\0\0\x09\x04\xd2\x16\x2f"), CN_PLUGIN_NO},
    {"protocol 2 startup", &cn_plugin_postgresql, CN_PLUGIN_FROM_CLIENT,
     B("\0\0\0\x20\0\x02\0\0user"), CN_PLUGIN_NO},
    {"startup longer than the server allows", &cn_plugin_postgresql, CN_PLUGIN_FROM_CLIENT,
     B("\0\0\x27\x11\0\x03\0\0"), CN_PLUGIN_NO},
    {"bare startup header", &cn_plugin_postgresql, CN_PLUGIN_FROM_CLIENT, B("\0\0\0\x08\0\x03\0\0"),
     CN_PLUGIN_NO},
    {"postgres from the server", &cn_plugin_postgresql, CN_PLUGIN_FROM_SERVER,
     B("\0\0\0\x08\x04\xd2\x16\x2f"), CN_PLUGIN_NO},
    {"empty", &cn_plugin_postgresql, CN_PLUGIN_FROM_CLIENT, "", 0, CN_PLUGIN_MORE},
    /* MySQL */
    {"ERR greeting (too many connections)", &cn_plugin_mysql, CN_PLUGIN_FROM_SERVER,
     B("\x17\0\0\0\xff\x10\x04Too many connections"), CN_PLUGIN_MATCH},
    {"protocol 9 greeting", &cn_plugin_mysql, CN_PLUGIN_FROM_SERVER,
     B("\x20\0\0\0\x09"
       "3.23"),
     CN_PLUGIN_NO},
    {"greeting with sequence 1", &cn_plugin_mysql, CN_PLUGIN_FROM_SERVER,
     B("\x20\0\0\x01\x0a"
       "8.0"),
     CN_PLUGIN_NO},
    {"greeting with a control character in the version", &cn_plugin_mysql, CN_PLUGIN_FROM_SERVER,
     B("\x40\0\0\0\x0a"
       "8.\x01"),
     CN_PLUGIN_NO},
    {"greeting too short for its fields", &cn_plugin_mysql, CN_PLUGIN_FROM_SERVER,
     B("\x08\0\0\0\x0a"
       "8.0\0abc"),
     CN_PLUGIN_NO},
    {"greeting with a non-zero filler", &cn_plugin_mysql, CN_PLUGIN_FROM_SERVER,
     B("\x13\0\0\0\x0a"
       "8\0"
       "\1\0\0\0"
       "abcdefgh"
       "\x07"
       "\xff\xf7"),
     CN_PLUGIN_NO},
    {"minimal v10 greeting", &cn_plugin_mysql, CN_PLUGIN_FROM_SERVER,
     B("\x11\0\0\0\x0a"
       "\0"
       "\1\0\0\0"
       "abcdefgh"
       "\0"
       "\xff\xf7"),
     CN_PLUGIN_MATCH},
    {"an SSH banner", &cn_plugin_mysql, CN_PLUGIN_FROM_SERVER, B("SSH-2.0-OpenSSH_9.2p1\r\n"),
     CN_PLUGIN_NO},
    {"zero-length packet", &cn_plugin_mysql, CN_PLUGIN_FROM_SERVER, B("\0\0\0"), CN_PLUGIN_NO},
    /* Redis */
    {"inline PING", &cn_plugin_redis, CN_PLUGIN_FROM_CLIENT, B("PING\r\n"), CN_PLUGIN_NO},
    {"empty array", &cn_plugin_redis, CN_PLUGIN_FROM_CLIENT, B("*0\r\n"), CN_PLUGIN_NO},
    {"empty command name", &cn_plugin_redis, CN_PLUGIN_FROM_CLIENT, B("*1\r\n$0\r\n"),
     CN_PLUGIN_NO},
    {"bare LF", &cn_plugin_redis, CN_PLUGIN_FROM_CLIENT, B("*1\n$4\r\n"), CN_PLUGIN_NO},
    {"count too large", &cn_plugin_redis, CN_PLUGIN_FROM_CLIENT, B("*99999999\r\n"), CN_PLUGIN_NO},
    {"HELLO 3 from a RESP3 client", &cn_plugin_redis, CN_PLUGIN_FROM_CLIENT,
     B("*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"), CN_PLUGIN_MATCH},
    {"array of a number", &cn_plugin_redis, CN_PLUGIN_FROM_CLIENT, B("*1\r\n:1\r\n"), CN_PLUGIN_NO},
    /* HTTP */
    {"lower-case method", &cn_plugin_http, CN_PLUGIN_FROM_CLIENT, B("get / HTTP/1.1\r\n"),
     CN_PLUGIN_NO},
    {"HTTP/2.0 request line", &cn_plugin_http, CN_PLUGIN_FROM_CLIENT, B("GET / HTTP/2.0\r\n"),
     CN_PLUGIN_NO},
    {"HTTP/1.0 request", &cn_plugin_http, CN_PLUGIN_FROM_CLIENT, B("HEAD /x?y=1 HTTP/1.0\r\n"),
     CN_PLUGIN_MATCH},
    {"OPTIONS *", &cn_plugin_http, CN_PLUGIN_FROM_CLIENT, B("OPTIONS * HTTP/1.1\r\n"),
     CN_PLUGIN_MATCH},
    {"two spaces", &cn_plugin_http, CN_PLUGIN_FROM_CLIENT, B("GET  / HTTP/1.1\r\n"), CN_PLUGIN_NO},
    {"redis inline GET", &cn_plugin_http, CN_PLUGIN_FROM_CLIENT, B("GET key\r\n"), CN_PLUGIN_NO},
    {"LF without CR", &cn_plugin_http, CN_PLUGIN_FROM_CLIENT, B("GET / HTTP/1.1\n"), CN_PLUGIN_NO},
    {"a method of 21 letters", &cn_plugin_http, CN_PLUGIN_FROM_CLIENT,
     B("ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\n"), CN_PLUGIN_NO},
    {"TLS ClientHello", &cn_plugin_http, CN_PLUGIN_FROM_CLIENT, B("\x16\x03\x01\x02\0\x01"),
     CN_PLUGIN_NO},
    /* MongoDB */
    {"OP_MSG with an unknown required flag", &cn_plugin_mongodb, CN_PLUGIN_FROM_CLIENT,
     B("\x30\0\0\0\1\0\0\0\0\0\0\0\xdd\x07\0\0\x04\0\0\0\0\x05\0\0\0\0"), CN_PLUGIN_NO},
    {"OP_MSG answering a request", &cn_plugin_mongodb, CN_PLUGIN_FROM_CLIENT,
     B("\x30\0\0\0\1\0\0\0\1\0\0\0\xdd\x07\0\0"), CN_PLUGIN_NO},
    {"OP_MSG with a document sequence", &cn_plugin_mongodb, CN_PLUGIN_FROM_CLIENT,
     B("\x30\0\0\0\1\0\0\0\0\0\0\0\xdd\x07\0\0\0\0\0\0\x01"), CN_PLUGIN_MATCH},
    {"OP_MSG body longer than the message", &cn_plugin_mongodb, CN_PLUGIN_FROM_CLIENT,
     B("\x1a\0\0\0\1\0\0\0\0\0\0\0\xdd\x07\0\0\0\0\0\0\0\x40\0\0\0"), CN_PLUGIN_NO},
    {"OP_COMPRESSED first", &cn_plugin_mongodb, CN_PLUGIN_FROM_CLIENT,
     B("\x30\0\0\0\1\0\0\0\0\0\0\0\xdc\x07\0\0"), CN_PLUGIN_NO},
    {"OP_QUERY on a name without a dot", &cn_plugin_mongodb, CN_PLUGIN_FROM_CLIENT,
     B("\x30\0\0\0\1\0\0\0\0\0\0\0\xd4\x07\0\0\0\0\0\0admincmd\0"), CN_PLUGIN_NO},
    {"message length too small", &cn_plugin_mongodb, CN_PLUGIN_FROM_CLIENT, B("\x10\0\0\0"),
     CN_PLUGIN_NO},
    {"message length too large", &cn_plugin_mongodb, CN_PLUGIN_FROM_CLIENT, B("\0\0\0\x7f"),
     CN_PLUGIN_NO},
};

static void test_handmade_vectors(void **state)
{
    for (size_t i = 0; i < sizeof(handmade) / sizeof(handmade[0]); i++) {
        const handmade_t *h = &handmade[i];
        int got = detect(h->plugin, (const uint8_t *)h->bytes, h->len, h->from);
        if (got != h->want)
            fail_msg("%s: %s says %d, want %d", h->what, h->plugin->name, got, h->want);
    }
}

static void test_tcp_detects_nothing(void **state)
{
    plugins_t *ps = plugins_new();
    assert_null(cn_plugin_tcp.detect);
    bool more = true;
    assert_null(plugins_detect(ps, (const uint8_t *)"hello\r\n", 7, CN_PLUGIN_FROM_CLIENT, &more));
    assert_false(more);
    plugins_free(ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded_bytes_match_their_plugin_only),
        cmocka_unit_test(test_prefixes_never_say_no),
        cmocka_unit_test(test_registry_detects_recorded_bytes),
        cmocka_unit_test(test_handmade_vectors),
        cmocka_unit_test(test_tcp_detects_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
