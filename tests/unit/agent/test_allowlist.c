/* The allow-list from the hub's control messages and the stream admission
 * decision: only TCP streams naming a listed, open tunnel are dialed, and
 * only to that tunnel's own target. */
#include "cn_test.h"

#include "allowlist.h"
#include "cn_err.h"
#include "cn_frame.h"

#include <jansson.h>

#define ID1 "11111111-1111-4111-8111-111111111111"
#define ID2 "22222222-2222-4222-8222-222222222222"
#define ID3 "33333333-3333-4333-8333-333333333333"
#define ID4 "44444444-4444-4444-8444-444444444444"

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static void test_parse_keeps_good_entries(void **state)
{
    json_t *j = load("["
                     "{\"id\":\"" ID1 "\",\"name\":\"db\",\"target\":{\"host\":\"127.0.0.1\","
                     "\"port\":5432},\"protocol\":\"tcp\",\"status\":\"active\"},"
                     "{\"id\":\"" ID2 "\",\"name\":\"v6\",\"target\":{\"host\":\"::1\",\"port\":"
                     "80},\"protocol\":\"http\",\"status\":\"paused\"},"
                     "{\"id\":\"" ID3 "\",\"name\":\"str\",\"target\":\"localhost:6379\","
                     "\"status\":\"connecting\"},"
                     /* skipped: */
                     "{\"id\":\"not-a-uuid\",\"target\":\"a:1\"},"
                     "{\"id\":\"" ID4 "\"},"
                     "{\"id\":\"" ID4 "\",\"target\":{\"host\":\"a\",\"port\":0}},"
                     "{\"id\":\"" ID4 "\",\"target\":{\"host\":\"a\",\"port\":65536}},"
                     "{\"id\":\"" ID4 "\",\"target\":{\"host\":\"a b\",\"port\":1}},"
                     "{\"id\":\"" ID4 "\",\"target\":{\"host\":\"a\",\"port\":\"1\"}},"
                     "{\"id\":\"" ID4 "\",\"target\":\"::1:80\"},"
                     "{\"id\":\"" ID1 "\",\"target\":\"dup:1\"},"
                     "{\"id\":\"" ID4 "\",\"target\":\"a:1\",\"name\":7},"
                     "42, null, \"x\"]");
    agent_allowlist_t l = {0};
    size_t skipped = 0;
    assert_int_equal(agent_allowlist_parse(j, &l, &skipped), 0);
    assert_int_equal(l.count, 3);
    assert_int_equal(skipped, 12);
    assert_string_equal(l.items[0].host, "127.0.0.1");
    assert_int_equal(l.items[0].port, 5432);
    assert_string_equal(l.items[0].name, "db");
    assert_string_equal(l.items[1].host, "::1");
    assert_string_equal(l.items[1].status, "paused");
    assert_string_equal(l.items[2].host, "localhost");
    assert_int_equal(l.items[2].port, 6379);
    /* Lookups are by exact length and case-insensitive hex. */
    assert_non_null(agent_allowlist_find(&l, ID1, 36));
    assert_non_null(agent_allowlist_find(&l, "11111111-1111-4111-8111-111111111111", 36));
    assert_null(agent_allowlist_find(&l, ID1, 35));
    assert_null(agent_allowlist_find(&l, ID4, 36));

    /* A failed parse leaves the old list alone. */
    json_t *notarray = load("{\"tunnels\":[]}");
    assert_int_equal(agent_allowlist_parse(notarray, &l, NULL), CN_EINVAL);
    assert_int_equal(l.count, 3);
    /* An empty list empties it. */
    json_t *empty = json_array();
    assert_int_equal(agent_allowlist_parse(empty, &l, NULL), 0);
    assert_int_equal(l.count, 0);
    agent_allowlist_free(&l);
    agent_allowlist_free(&l); /* idempotent */
    json_decref(j);
    json_decref(notarray);
    json_decref(empty);
}

static void test_admission(void **state)
{
    json_t *j = load("["
                     "{\"id\":\"" ID1 "\",\"target\":\"127.0.0.1:5432\",\"protocol\":\"tcp\","
                     "\"status\":\"active\"},"
                     "{\"id\":\"" ID2 "\",\"target\":\"127.0.0.1:5433\",\"status\":\"paused\"},"
                     "{\"id\":\"" ID3 "\",\"target\":\"127.0.0.1:5434\",\"status\":\"expired\"},"
                     "{\"id\":\"" ID4 "\",\"target\":\"127.0.0.1:53\",\"protocol\":\"udp\","
                     "\"status\":\"active\"}]");
    agent_allowlist_t l = {0};
    assert_int_equal(agent_allowlist_parse(j, &l, NULL), 0);
    static const struct {
        uint8_t kind;
        const char *ref;
        size_t len;
        uint32_t code;
        int port;
    } cases[] = {
        {CN_KIND_TCP, ID1, 36, 0, 5432},
        {CN_KIND_TCP, ID2, 36, CN_RST_REFUSED, 0},  /* paused */
        {CN_KIND_TCP, ID3, 36, CN_RST_REFUSED, 0},  /* expired */
        {CN_KIND_TCP, ID4, 36, CN_RST_REFUSED, 0},  /* udp tunnel: not served yet */
        {CN_KIND_UDP, ID1, 36, CN_RST_REFUSED, 0},  /* wrong kind */
        {CN_KIND_HTTP, ID1, 36, CN_RST_REFUSED, 0}, /* wrong kind */
        {CN_KIND_RELAY, ID1, 36, CN_RST_REFUSED, 0},
        {0, ID1, 36, CN_RST_REFUSED, 0},
        {CN_KIND_TCP, "33333333-0000-4333-8333-333333333333", 36, CN_RST_REFUSED, 0}, /* unknown */
        {CN_KIND_TCP, ID1, 10, CN_RST_REFUSED, 0},                                    /* prefix */
        {CN_KIND_TCP, "127.0.0.1:22", 12, CN_RST_REFUSED, 0}, /* a target as ref */
        {CN_KIND_TCP, "", 0, CN_RST_REFUSED, 0},
        {CN_KIND_TCP, NULL, 0, CN_RST_REFUSED, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const agent_tunnel_t *t = (const agent_tunnel_t *)1;
        const char *why = NULL;
        uint32_t code = agent_allowlist_check(&l, cases[i].kind, (const uint8_t *)cases[i].ref,
                                              cases[i].len, &t, &why);
        assert_int_equal(code, cases[i].code);
        if (code) {
            assert_null(t);
            assert_non_null(why);
        } else {
            assert_non_null(t);
            assert_int_equal(t->port, cases[i].port);
        }
    }
    /* A ref with a NUL in the middle never matches. */
    char nul[36];
    memcpy(nul, ID1, 36);
    nul[10] = '\0';
    const agent_tunnel_t *t;
    const char *why;
    assert_int_equal(agent_allowlist_check(&l, CN_KIND_TCP, (const uint8_t *)nul, 36, &t, &why),
                     CN_RST_REFUSED);
    agent_allowlist_free(&l);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_keeps_good_entries),
        cmocka_unit_test(test_admission),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
