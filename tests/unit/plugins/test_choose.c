/* protocol auto: a server that greets is judged by its greeting, a silent
 * one by the probes (only its own protocol's probe comes back up), a target
 * that is down by its port, and anything else falls back to tcp. */
#include "cn_test.h"

#include "cn_err.h"
#include "peer.h"
#include "plugins.h"
#include "vectors.h"

#define S(x) (const uint8_t *)(x), sizeof(x) - 1

static bool starts(const uint8_t *p, size_t len, const char *prefix)
{
    return len >= strlen(prefix) && !memcmp(p, prefix, strlen(prefix));
}

/* Like redis-server: +PONG to a RESP PING, an error line to anything else. */
static size_t redis_like(const uint8_t *req, size_t len, const uint8_t **reply)
{
    static const char pong[] = "+PONG\r\n", err[] = "-ERR unknown command\r\n";
    *reply = (const uint8_t *)(starts(req, len, "*1\r\n$4\r\nPING") ? pong : err);
    return strlen((const char *)*reply);
}

/* Like an HTTP server: answers a request line, waits for more otherwise. */
static size_t http_like(const uint8_t *req, size_t len, const uint8_t **reply)
{
    static const char ok[] = "HTTP/1.0 200 OK\r\nServer: test\r\n\r\n";
    *reply = (const uint8_t *)ok;
    return starts(req, len, "HEAD / HTTP/1.1\r\n") ? strlen(ok) : 0;
}

/* Like a postmaster: 'N' to an SSLRequest, silence otherwise. */
static size_t pg_like(const uint8_t *req, size_t len, const uint8_t **reply)
{
    *reply = (const uint8_t *)"N";
    return len == 8 && !memcmp(req, "\0\0\0\x08\x04\xd2\x16\x2f", 8) ? 1 : 0;
}

static void choose(const plugins_t *ps, uint16_t port, plugins_choice_t *c)
{
    assert_int_equal(plugins_choose(ps, "127.0.0.1", port, 300, 500, c), 0);
    assert_non_null(c->plugin);
    assert_non_null(c->how);
}

static void test_greeting_decides(void **state)
{
    static const uint8_t greeting[] = "\x11\0\0\0\x0a"
                                      "\0"
                                      "\1\0\0\0"
                                      "abcdefgh"
                                      "\0"
                                      "\xff\xf7";
    peer_t pe = {.greeting = greeting, .greeting_len = sizeof(greeting) - 1};
    plugins_t *ps = plugins_new();
    plugins_choice_t c;
    peer_start(&pe);
    choose(ps, pe.port, &c);
    assert_ptr_equal(c.plugin, &cn_plugin_mysql);
    assert_string_equal(c.how, "greeting");
    assert_string_equal(c.why, "the server greeted as mysql");
    /* Only the greeting connection: no client-first probe was sent to it. */
    assert_int_equal(pe.accepted, 1);
    peer_stop(&pe);
    plugins_free(ps);
}

static void test_unknown_greeting_skips_probes(void **state)
{
    peer_t pe = {.greeting = S("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")};
    plugins_t *ps = plugins_new();
    plugins_choice_t c;
    peer_start(&pe);
    choose(ps, pe.port, &c);
    assert_ptr_equal(c.plugin, &cn_plugin_tcp);
    assert_string_equal(c.how, "fallback");
    assert_non_null(strstr(c.why, "speaks first"));
    assert_int_equal(pe.accepted, 1);
    peer_stop(&pe);
    plugins_free(ps);
}

static void test_silent_servers_are_probed(void **state)
{
    struct {
        size_t (*chooser)(const uint8_t *, size_t, const uint8_t **);
        const cn_plugin_t *want;
    } cases[] = {
        {redis_like, &cn_plugin_redis},
        {http_like, &cn_plugin_http},
        {pg_like, &cn_plugin_postgresql},
    };
    plugins_t *ps = plugins_new();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        peer_t pe = {.chooser = cases[i].chooser};
        plugins_choice_t c;
        peer_start(&pe);
        choose(ps, pe.port, &c);
        if (c.plugin != cases[i].want)
            fail_msg("case %zu: chose %s (%s: %s), want %s", i, c.plugin->name, c.how, c.why,
                     cases[i].want->name);
        assert_string_equal(c.how, "probe");
        peer_stop(&pe);
    }
    plugins_free(ps);
}

static void test_mongodb_by_probe(void **state)
{
    size_t len;
    uint8_t *reply = vector_load("mongodb_hello_reply.bin", &len);
    /* A stand-in that answers OP_MSG with the constructed hello reply, and
     * closes on anything else, as mongod does on a bad message header. */
    peer_t pe = {.reply = reply, .reply_len = len};
    plugins_t *ps = plugins_new();
    plugins_choice_t c;
    peer_start(&pe);
    assert_int_equal(plugins_choose(ps, "127.0.0.1", pe.port, 300, 500, &c), 0);
    /* Every client-first probe got the same bytes; only mongodb's accepts. */
    assert_ptr_equal(c.plugin, &cn_plugin_mongodb);
    assert_string_equal(c.how, "probe");
    peer_stop(&pe);
    plugins_free(ps);
    free(reply);
}

static void test_down_target_goes_by_port(void **state)
{
    plugins_t *ps = plugins_new();
    plugins_choice_t c;
    /* A closed port that no plugin owns: tcp. */
    choose(ps, closed_port(), &c);
    assert_ptr_equal(c.plugin, &cn_plugin_tcp);
    assert_string_equal(c.how, "fallback");
    assert_non_null(strstr(c.why, "target down"));
    /* A closed port that a plugin owns. 127.0.0.1:27017 must be closed
     * here (no MongoDB server on Debian 12); say so if it is not. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(27017), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
        fail_msg("something listens on 127.0.0.1:27017; this test needs that port closed");
    close(fd);
    choose(ps, 27017, &c);
    assert_ptr_equal(c.plugin, &cn_plugin_mongodb);
    assert_string_equal(c.how, "port");
    plugins_free(ps);
}

static void test_no_probe_up_goes_by_port_then_tcp(void **state)
{
    peer_t pe = {0}; /* accepts, never answers */
    plugins_t *ps = plugins_new();
    plugins_choice_t c;
    peer_start(&pe);
    choose(ps, pe.port, &c);
    assert_ptr_equal(c.plugin, &cn_plugin_tcp);
    assert_string_equal(c.how, "fallback");
    assert_non_null(strstr(c.why, "no probe answered"));
    peer_stop(&pe);
    plugins_free(ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting_decides),
        cmocka_unit_test(test_unknown_greeting_skips_probes),
        cmocka_unit_test(test_silent_servers_are_probed),
        cmocka_unit_test(test_mongodb_by_probe),
        cmocka_unit_test(test_down_target_goes_by_port),
        cmocka_unit_test(test_no_probe_up_goes_by_port_then_tcp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
