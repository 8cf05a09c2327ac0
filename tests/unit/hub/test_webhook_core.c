/* webhook_core: the signature a receiver checks (a known vector computed
 * with Python's hmac and with openssl), the retry schedule, which URLs and
 * filters a webhook may have, and which resolved addresses the hub refuses
 * to POST to. */
#include "cn_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "cn_err.h"
#include "webhook_core.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static void test_signature_known_vector(void **state)
{
    static const char body[] = "{\"id\":1,\"type\":\"tunnel.created\"}";
    char sig[HUB_WEBHOOK_SIG_SIZE];
    assert_int_equal(hub_webhook_sign(SECRET, 1700000000, (const uint8_t *)body, strlen(body), sig),
                     0);
    /* python3: hmac.new(SECRET, b"1700000000." + body, sha256).hexdigest() */
    assert_string_equal(
        sig, "t=1700000000,v1=88906f9817f4ab73d99f34095fc37c46c348c344c16b1cca5a5ef14a8051fcca");
    /* An empty body signs "TIMESTAMP." alone. */
    assert_int_equal(hub_webhook_sign(SECRET, 1700000000, NULL, 0, sig), 0);
    assert_string_equal(
        sig, "t=1700000000,v1=cba1e6bca7337490cde16bc4e0003251c7f5bb8e661e3d8e25d141a92c2ec991");
    /* Any change to the timestamp, the body or the secret changes it. */
    char other[HUB_WEBHOOK_SIG_SIZE];
    assert_int_equal(
        hub_webhook_sign(SECRET, 1700000001, (const uint8_t *)body, strlen(body), other), 0);
    assert_string_not_equal(strchr(sig, ','), strchr(other, ','));
    assert_int_equal(hub_webhook_sign(SECRET "x", 1700000000, NULL, 0, other), 0);
    assert_string_not_equal(sig, other);
    assert_int_equal(hub_webhook_sign(NULL, 1, NULL, 0, other), CN_EINVAL);
    assert_int_equal(hub_webhook_sign(SECRET, -1, NULL, 0, other), CN_EINVAL);
    assert_int_equal(hub_webhook_sign(SECRET, 1, NULL, 3, other), CN_EINVAL);
}

/* Failure n waits within [c/2, c] for c = base * 2^(n-1), capped at an
 * hour; the schedule for the default base is written out. */
static void test_retry_schedule(void **state)
{
    static const uint32_t ceilings[] = {2000,    4000,    8000,    16000,   32000,   64000,
                                        128000,  256000,  512000,  1024000, 2048000, 3600000,
                                        3600000, 3600000, 3600000, 3600000};
    for (unsigned n = 1; n <= sizeof(ceilings) / sizeof(ceilings[0]); n++) {
        uint32_t c = ceilings[n - 1];
        assert_int_equal(hub_webhook_retry_delay(n, 0, 0), c / 2);     /* rnd 0: floor */
        assert_int_equal(hub_webhook_retry_delay(n, 0, c - c / 2), c); /* top of the span */
        assert_int_equal(hub_webhook_retry_delay(n, 0, 0xffffffffu) <= c, 1);
        assert_int_equal(hub_webhook_retry_delay(n, 0, 0xffffffffu) >= c / 2, 1);
    }
    /* n = 0 behaves as the first failure; a custom base scales it. */
    assert_int_equal(hub_webhook_retry_delay(0, 0, 0), 1000);
    assert_int_equal(hub_webhook_retry_delay(3, 100, 0), 200);
    assert_int_equal(hub_webhook_retry_delay(1000, 100, 0), HUB_WEBHOOK_RETRY_CAP_MS / 2);
    /* Jitter spreads over the range. */
    uint32_t lo = UINT32_MAX, hi = 0;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 1000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t d = hub_webhook_retry_delay(4, 0, (uint32_t)x);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(lo < 8000 + 800 && hi > 16000 - 800);
}

static void test_url_parse(void **state)
{
    hub_webhook_url_t u;
    const char *why = NULL;
    assert_true(hub_webhook_url_parse("http://127.0.0.1:8081/hook?x=1", &u, &why));
    assert_false(u.tls);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 8081);
    assert_string_equal(u.path, "/hook?x=1");
    assert_true(hub_webhook_url_parse("HTTPS://hooks.example.com", &u, &why));
    assert_true(u.tls);
    assert_string_equal(u.host, "hooks.example.com");
    assert_int_equal(u.port, 443);
    assert_string_equal(u.path, "/");
    assert_true(hub_webhook_url_parse("http://[::1]:9000?q", &u, &why));
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 9000);
    assert_string_equal(u.path, "/?q");
    assert_true(hub_webhook_url_parse("http://[fd00::1]/p", &u, &why));
    assert_string_equal(u.host, "fd00::1");
    assert_int_equal(u.port, 80);

    static const char *const bad[] = {
        "",
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "example.com/hook",
        "http://",
        "http:///path",
        "http://user:pw@example.com/",
        "http://example.com/#frag",
        "http://example.com:0/",
        "http://example.com:99999/",
        "http://example.com:/",
        "http://exa mple.com/",
        "http://example.com/\x01",
        "http://[::1/",
        "http://[127.0.0.1]/",
        "http://-bad-.example/",
        NULL,
    };
    for (size_t i = 0; bad[i]; i++) {
        why = NULL;
        if (hub_webhook_url_parse(bad[i], &u, &why))
            fail_msg("accepted %s", bad[i]);
        assert_non_null(why);
    }
    char longurl[HUB_WEBHOOK_URL_MAX + 16];
    memset(longurl, 'a', sizeof(longurl) - 1);
    longurl[sizeof(longurl) - 1] = '\0';
    memcpy(longurl, "http://h/", 9);
    assert_false(hub_webhook_url_parse(longurl, &u, &why));
}

static json_t *arr(const char *text)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    return j;
}

static void test_event_filters(void **state)
{
    static const struct {
        const char *filter;
        bool valid;
    } filters[] = {
        {"[\"*\"]", true},
        {"[\"tunnel.*\"]", true},
        {"[\"tunnel.created\", \"agent.*\", \"share.expired\"]", true},
        {"[\"webhook.disabled\"]", true},
        {"[]", false},
        {"[\"tunnel\"]", false},
        {"[\"tunnel.nope\"]", false},
        {"[\"nope.*\"]", false},
        {"[\"tunnel.*.x\"]", false},
        {"[\"*.*\"]", false},
        {"[1]", false},
        {"[\"tunnel.*\", \"tunnel.*\"]", false},
        {"{}", false},
        {"\"*\"", false},
    };
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
        json_t *j = arr(filters[i].filter);
        const char *why = NULL;
        if (hub_webhook_events_valid(j, &why) != filters[i].valid)
            fail_msg("%s: expected %s", filters[i].filter, filters[i].valid ? "valid" : "invalid");
        if (!filters[i].valid)
            assert_non_null(why);
        json_decref(j);
    }
    json_t *many = json_array();
    for (int i = 0; i <= HUB_WEBHOOK_PATTERNS_MAX; i++)
        json_array_append_new(many, json_string("*"));
    assert_false(hub_webhook_events_valid(many, NULL));
    json_decref(many);

    static const struct {
        const char *filter, *type;
        bool hit;
    } match[] = {
        {"[\"*\"]", "tunnel.created", true},
        {"[\"tunnel.*\"]", "tunnel.status_changed", true},
        {"[\"tunnel.*\"]", "tunnels.created", false},
        {"[\"tunnel.*\"]", "agent.connected", false},
        {"[\"tunnel.*\"]", "tunnel.", false},
        {"[\"agent.connected\"]", "agent.connected", true},
        {"[\"agent.connected\"]", "agent.disconnected", false},
        {"[\"agent.disconnected\",\"share.*\"]", "share.revoked", true},
        {"not json", "tunnel.created", false},
        {"[]", "tunnel.created", false},
    };
    for (size_t i = 0; i < sizeof(match) / sizeof(match[0]); i++)
        if (hub_webhook_events_match(match[i].filter, match[i].type) != match[i].hit)
            fail_msg("%s vs %s: expected %d", match[i].filter, match[i].type, match[i].hit);
}

static bool allowed4(const char *a)
{
    struct sockaddr_in in = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, a, &in.sin_addr), 1);
    return hub_webhook_addr_allowed((struct sockaddr *)&in, NULL);
}

static bool allowed6(const char *a)
{
    struct sockaddr_in6 in = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, a, &in.sin6_addr), 1);
    const char *why = NULL;
    bool ok = hub_webhook_addr_allowed((struct sockaddr *)&in, &why);
    assert_true(ok || why != NULL);
    return ok;
}

static void test_address_policy(void **state)
{
    /* Receivers on this host, the LAN and the internet. */
    assert_true(allowed4("127.0.0.1"));
    assert_true(allowed4("10.1.2.3"));
    assert_true(allowed4("192.168.1.10"));
    assert_true(allowed4("93.184.216.34"));
    assert_true(allowed6("::1"));
    assert_true(allowed6("fd12:3456::1"));
    assert_true(allowed6("2001:db8::1"));
    /* What no receiver needs: metadata, link-local, unspecified,
     * multicast, broadcast, reserved, also IPv4-mapped. */
    assert_false(allowed4("169.254.169.254"));
    assert_false(allowed4("169.254.0.1"));
    assert_false(allowed4("0.0.0.0"));
    assert_false(allowed4("0.1.2.3"));
    assert_false(allowed4("224.0.0.1"));
    assert_false(allowed4("255.255.255.255"));
    assert_false(allowed4("240.0.0.1"));
    assert_false(allowed6("::"));
    assert_false(allowed6("fe80::1"));
    assert_false(allowed6("ff02::1"));
    assert_false(allowed6("fd00:ec2::254"));
    assert_false(allowed6("::ffff:169.254.169.254"));
    assert_true(allowed6("::ffff:127.0.0.1"));
    assert_false(hub_webhook_addr_allowed(NULL, NULL));
}

static void test_payload(void **state)
{
    hub_event_t e = {.id = 7, .created_at = 1795442400000LL};
    snprintf(e.workspace_id, sizeof(e.workspace_id), "%s", "0b6b0f3c-8a57-4d35-9c52-6f0e1e2b8c41");
    snprintf(e.type, sizeof(e.type), "%s", "tunnel.created");
    e.data = strdup("{\"name\":\"web\"}");
    json_t *j = hub_webhook_payload(&e);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"agentId\":null,\"createdAt\":\"2026-11-23T14:00:00.000Z\","
                              "\"data\":{\"name\":\"web\"},\"id\":7,\"tunnelId\":null,"
                              "\"type\":\"tunnel.created\",\"workspaceId\":"
                              "\"0b6b0f3c-8a57-4d35-9c52-6f0e1e2b8c41\"}");
    free(text);
    json_decref(j);
    hub_event_clear(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_known_vector),
        cmocka_unit_test(test_retry_schedule),
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_event_filters),
        cmocka_unit_test(test_address_policy),
        cmocka_unit_test(test_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
