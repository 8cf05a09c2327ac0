/* The allow-list from the hub's control messages and the stream admission
 * decision: only TCP streams naming a listed, open tunnel are dialed, and
 * only to that tunnel's own target. */
#include "cn_test.h"

#include "allowlist.h"
#include "cn_err.h"
#include "cn_frame.h"

#include <ctype.h>
#include <jansson.h>
#include <strings.h>

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

/* A full list (AGENT_ALLOWLIST_MAX entries, in no order, with repeats that
 * differ only in case): every listed id is found, whatever its case, the
 * first entry of a repeated id is the one kept, and ids not listed are not
 * found. The lookup is a binary search over a sorted index. */
static void test_many_ids_and_repeats(void **state)
{
    (void)state;
    json_t *arr = json_array();
    char id[40], name[16];
    /* ids in a scattered order: i * 2,654,435,761 mod 2^32 */
    for (unsigned i = 0; i < AGENT_ALLOWLIST_MAX - 4; i++) {
        snprintf(id, sizeof(id), "%08x-1111-4111-8111-%012u", i * 2654435761u, i);
        snprintf(name, sizeof(name), "t%u", i);
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:s}", "id", id, "target", "127.0.0.1:1", "name", name));
    }
    /* Repeats of entry 7, one upper-case: skipped, entry 7 stays. */
    snprintf(id, sizeof(id), "%08x-1111-4111-8111-%012u", 7 * 2654435761u, 7u);
    json_array_append_new(arr, json_pack("{s:s,s:s}", "id", id, "target", "127.0.0.1:2"));
    for (char *c = id; *c; c++)
        *c = (char)toupper((unsigned char)*c);
    json_array_append_new(arr, json_pack("{s:s,s:s}", "id", id, "target", "127.0.0.1:3"));
    agent_allowlist_t l = {0};
    size_t skipped = 0;
    assert_int_equal(agent_allowlist_parse(arr, &l, &skipped), 0);
    assert_int_equal(l.count, AGENT_ALLOWLIST_MAX - 4);
    assert_int_equal(skipped, 2);
    for (unsigned i = 0; i < AGENT_ALLOWLIST_MAX - 4; i++) {
        snprintf(id, sizeof(id), "%08x-1111-4111-8111-%012u", i * 2654435761u, i);
        const agent_tunnel_t *t = agent_allowlist_find(&l, id, 36);
        assert_non_null(t);
        snprintf(name, sizeof(name), "t%u", i);
        assert_string_equal(t->name, name);
        assert_int_equal(t->port, 1);     /* the first of entry 7's three */
        assert_ptr_equal(&l.items[i], t); /* the hub's order kept */
        for (char *c = id; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        assert_ptr_equal(agent_allowlist_find(&l, id, 36), t);
        snprintf(id, sizeof(id), "%08x-1111-4111-8111-%012u", i * 2654435761u + 1, i);
        assert_null(agent_allowlist_find(&l, id, 36)); /* its suffix is i's alone */
    }
    assert_null(agent_allowlist_find(&l, "00000000-0000-4000-8000-000000000000", 36));
    assert_null(agent_allowlist_find(&l, "ffffffff-ffff-4fff-8fff-ffffffffffff", 36));
    agent_allowlist_free(&l);
    json_decref(arr);
}

/* A tunnel_status message changes one listed entry's status and nothing
 * else; an unlisted id (a list under way will say) and a repeat change
 * nothing; a status that cannot be stored is refused whole. */
static void test_set_status(void **state)
{
    (void)state;
    json_t *j = load("["
                     "{\"id\":\"" ID1 "\",\"name\":\"db\",\"target\":\"127.0.0.1:5432\","
                     "\"protocol\":\"postgresql\",\"status\":\"active\"},"
                     "{\"id\":\"" ID2 "\",\"name\":\"web\",\"target\":\"127.0.0.1:80\","
                     "\"protocol\":\"http\",\"status\":\"active\"}]");
    agent_allowlist_t l = {0};
    assert_int_equal(agent_allowlist_parse(j, &l, NULL), 0);
    json_decref(j);
    agent_tunnel_t before = l.items[0];

    assert_int_equal(agent_allowlist_set_status(&l, ID1, "error"), 1);
    assert_string_equal(l.items[0].status, "error");
    assert_string_equal(l.items[1].status, "active");
    /* Everything else of the entry stays as listed. */
    memcpy(before.status, "error", sizeof("error"));
    assert_memory_equal(&l.items[0], &before, sizeof(before));
    assert_int_equal(agent_allowlist_set_status(&l, ID1, "error"), 0); /* no change */
    /* Case-insensitive like every lookup. */
    assert_int_equal(
        agent_allowlist_set_status(&l, "11111111-1111-4111-8111-111111111111", "active"), 1);
    assert_string_equal(l.items[0].status, "active");
    assert_int_equal(agent_allowlist_set_status(&l, ID3, "error"), 0); /* not listed */
    assert_int_equal(agent_allowlist_set_status(&l, "short", "error"), 0);
    assert_int_equal(l.count, 2);

    assert_int_equal(agent_allowlist_set_status(&l, ID2, ""), CN_EINVAL);
    assert_int_equal(agent_allowlist_set_status(&l, ID2, "a-status-far-too-long"), CN_EINVAL);
    assert_int_equal(agent_allowlist_set_status(&l, ID2, NULL), CN_EINVAL);
    assert_int_equal(agent_allowlist_set_status(&l, NULL, "error"), CN_EINVAL);
    assert_string_equal(l.items[1].status, "active");

    /* A status that closes the tunnel reads as closed at once. */
    assert_int_equal(agent_allowlist_set_status(&l, ID2, "paused"), 1);
    assert_false(agent_tunnel_open(&l.items[1]));
    agent_allowlist_free(&l);
}

/* Every id of the list is found where the list says, and the sorted
 * index covers each entry once: what a parse of the same list gives. */
static void assert_index_whole(const agent_allowlist_t *l)
{
    for (size_t i = 0; i < l->count; i++) {
        assert_ptr_equal(agent_allowlist_find(l, l->items[i].id, 36), &l->items[i]);
        if (i)
            assert_true(strcasecmp(l->items[l->by_id[i - 1]].id, l->items[l->by_id[i]].id) < 0);
    }
}

/* tunnel_upsert and tunnel_remove change the list as a list with that one
 * change would: a new id last in the hub's order, a listed one replaced in
 * place (all its fields), a removed one gone with the others in order; an
 * entry a list would skip is refused and changes nothing. */
static void test_upsert_and_remove(void **state)
{
    (void)state;
    agent_allowlist_t l = {0};
    json_t *e1 = load("{\"id\":\"" ID1 "\",\"name\":\"db\",\"target\":\"127.0.0.1:5432\","
                      "\"protocol\":\"postgresql\",\"status\":\"active\"}");
    json_t *e2 = load("{\"id\":\"" ID2 "\",\"name\":\"web\",\"target\":{\"host\":\"::1\","
                      "\"port\":80},\"protocol\":\"https\",\"status\":\"connecting\","
                      "\"tls\":{\"serverName\":\"web.internal\",\"insecure\":true}}");
    json_t *e3 = load("{\"id\":\"" ID3 "\",\"name\":\"cache\",\"target\":\"localhost:6379\","
                      "\"status\":\"active\"}");
    /* Onto an empty list (no hello list yet), in an order the ids do not
     * sort in. */
    assert_int_equal(agent_allowlist_upsert(&l, e3), 1);
    assert_int_equal(agent_allowlist_upsert(&l, e1), 1);
    assert_int_equal(agent_allowlist_upsert(&l, e2), 1);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].id, ID3);
    assert_string_equal(l.items[1].id, ID1);
    assert_string_equal(l.items[2].id, ID2);
    assert_index_whole(&l);
    /* The same as a parse of that list, field for field. */
    json_t *arr = json_pack("[O,O,O]", e3, e1, e2);
    agent_allowlist_t parsed = {0};
    assert_int_equal(agent_allowlist_parse(arr, &parsed, NULL), 0);
    assert_memory_equal(parsed.items, l.items, 3 * sizeof(*l.items));
    agent_allowlist_free(&parsed);
    json_decref(arr);

    /* The same entry again changes nothing; a changed one is replaced in
     * its place, every field (the target too). */
    assert_int_equal(agent_allowlist_upsert(&l, e1), 0);
    json_t *e1b = load("{\"id\":\"" ID1 "\",\"name\":\"db2\",\"target\":\"10.0.0.9:6543\","
                       "\"protocol\":\"tcp\",\"status\":\"paused\"}");
    assert_int_equal(agent_allowlist_upsert(&l, e1b), 1);
    assert_int_equal(l.count, 3);
    const agent_tunnel_t *t = agent_allowlist_find(&l, ID1, 36);
    assert_ptr_equal(t, &l.items[1]);
    assert_string_equal(t->name, "db2");
    assert_string_equal(t->host, "10.0.0.9");
    assert_int_equal(t->port, 6543);
    assert_string_equal(t->protocol, "tcp");
    assert_false(agent_tunnel_open(t));
    /* Whatever a list would skip is refused, the list untouched. */
    static const char *const bad[] = {
        "[]",
        "{\"id\":\"not-a-uuid\",\"target\":\"a:1\"}",
        "{\"id\":\"" ID4 "\"}",
        "{\"id\":\"" ID4 "\",\"target\":{\"host\":\"a\",\"port\":0}}",
        "{\"id\":\"" ID1 "\",\"target\":\"a:1\",\"status\":\"a-status-far-too-long\"}",
        "{\"id\":\"" ID1 "\",\"target\":\"a:1\",\"tls\":7}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *b = load(bad[i]);
        assert_int_equal(agent_allowlist_upsert(&l, b), CN_EINVAL);
        json_decref(b);
    }
    assert_int_equal(agent_allowlist_upsert(&l, NULL), CN_EINVAL);
    assert_int_equal(l.count, 3);
    assert_string_equal(agent_allowlist_find(&l, ID1, 36)->name, "db2");

    /* Remove: the others keep their order and are all still found. */
    assert_int_equal(agent_allowlist_remove(&l, ID3), 1);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].id, ID1);
    assert_string_equal(l.items[1].id, ID2);
    assert_null(agent_allowlist_find(&l, ID3, 36));
    assert_index_whole(&l);
    assert_int_equal(agent_allowlist_remove(&l, ID3), 0); /* not listed */
    assert_int_equal(agent_allowlist_remove(&l, "short"), CN_EINVAL);
    assert_int_equal(agent_allowlist_remove(&l, NULL), CN_EINVAL);
    /* Case-insensitive like every lookup. */
    assert_int_equal(agent_allowlist_remove(&l, "11111111-1111-4111-8111-111111111111"), 1);
    assert_int_equal(agent_allowlist_remove(&l, ID2), 1);
    assert_int_equal(l.count, 0);
    assert_null(agent_allowlist_find(&l, ID2, 36));
    /* And it grows again after being emptied. */
    assert_int_equal(agent_allowlist_upsert(&l, e2), 1);
    assert_index_whole(&l);
    agent_allowlist_free(&l);
    json_decref(e1);
    json_decref(e1b);
    json_decref(e2);
    json_decref(e3);
}

/* Upserts on top of a parsed list up to AGENT_ALLOWLIST_MAX entries; one
 * more new id is refused (the agent closes the link, as for a list above
 * it), a replacement still goes. Removes in a scattered order keep the
 * index whole. */
static void test_upsert_bound(void **state)
{
    (void)state;
    agent_allowlist_t l = {0};
    json_t *two = load("[{\"id\":\"" ID1 "\",\"target\":\"a:1\"},"
                       "{\"id\":\"" ID2 "\",\"target\":\"a:2\"}]");
    assert_int_equal(agent_allowlist_parse(two, &l, NULL), 0);
    json_decref(two);
    char id[40];
    for (unsigned i = 0; l.count < AGENT_ALLOWLIST_MAX; i++) {
        /* Ids that do not arrive in sorted order. */
        snprintf(id, sizeof(id), "%08x-0000-4000-8000-000000000000", (i * 2654435761u) ^ 0x5a5a);
        json_t *e = json_pack("{s:s,s:s}", "id", id, "target", "127.0.0.1:9");
        assert_int_equal(agent_allowlist_upsert(&l, e), 1);
        json_decref(e);
    }
    assert_index_whole(&l);
    json_t *more = json_pack("{s:s,s:s}", "id", "ffffffff-ffff-4fff-8fff-ffffffffffff", "target",
                             "127.0.0.1:9");
    assert_int_equal(agent_allowlist_upsert(&l, more), CN_ETOOBIG);
    json_decref(more);
    assert_int_equal(l.count, AGENT_ALLOWLIST_MAX);
    json_t *again =
        json_pack("{s:s,s:s,s:s}", "id", ID2, "target", "127.0.0.1:9", "status", "paused");
    assert_int_equal(agent_allowlist_upsert(&l, again), 1);
    json_decref(again);
    assert_string_equal(agent_allowlist_find(&l, ID2, 36)->status, "paused");
    for (size_t k = 0; k < 1000; k++)
        assert_int_equal(agent_allowlist_remove(&l, l.items[(k * 7919) % l.count].id), 1);
    assert_int_equal(l.count, AGENT_ALLOWLIST_MAX - 1000);
    assert_index_whole(&l);
    agent_allowlist_free(&l);
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
        {CN_KIND_TCP, ID2, 36, CN_RST_REFUSED, 0}, /* paused */
        {CN_KIND_TCP, ID3, 36, CN_RST_REFUSED, 0}, /* expired */
        {CN_KIND_TCP, ID4, 36, CN_RST_REFUSED, 0}, /* a TCP stream for a udp tunnel */
        {CN_KIND_UDP, ID1, 36, CN_RST_REFUSED, 0}, /* a UDP flow for a tcp tunnel */
        {CN_KIND_UDP, ID4, 36, 0, 53},
        {CN_KIND_HTTP, ID1, 36, CN_RST_REFUSED, 0},  /* wrong kind */
        {CN_KIND_RELAY, ID1, 36, 0, 5432},           /* reach: the same tunnel, the same target */
        {CN_KIND_RELAY, ID2, 36, CN_RST_REFUSED, 0}, /* reach of a paused tunnel */
        {CN_KIND_RELAY, ID4, 36, 0, 53},             /* reach of a udp tunnel */
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

/* ---- the agent-local target policy ----------------------------------- */

/* Every pattern against every target it should and should not allow. */
static void test_policy_patterns(void **state)
{
    static const struct {
        const char *pattern;
        const char *host;
        uint16_t port;
        bool allowed;
    } cases[] = {
        /* exact address and port */
        {"127.0.0.1:5432", "127.0.0.1", 5432, true},
        {"127.0.0.1:5432", "127.0.0.1", 5433, false},
        {"127.0.0.1:5432", "127.0.0.2", 5432, false},
        {"127.0.0.1:5432", "localhost", 5432, false}, /* names never match addresses */
        /* any port, ranges */
        {"127.0.0.1:*", "127.0.0.1", 1, true},
        {"127.0.0.1:*", "127.0.0.1", 65535, true},
        {"10.0.0.1:8000-8010", "10.0.0.1", 8000, true},
        {"10.0.0.1:8000-8010", "10.0.0.1", 8010, true},
        {"10.0.0.1:8000-8010", "10.0.0.1", 7999, false},
        {"10.0.0.1:8000-8010", "10.0.0.1", 8011, false},
        /* IPv4 CIDRs, with prefixes on and off byte boundaries */
        {"10.0.0.0/8:5432", "10.200.3.4", 5432, true},
        {"10.0.0.0/8:5432", "11.0.0.1", 5432, false},
        {"10.0.0.0/8:5432", "10.0.0.1", 22, false},
        {"192.168.4.0/22:*", "192.168.7.255", 80, true},
        {"192.168.4.0/22:*", "192.168.8.0", 80, false},
        {"192.168.4.0/22:*", "192.168.3.255", 80, false},
        {"0.0.0.0/0:443", "8.8.8.8", 443, true},
        {"0.0.0.0/0:443", "::1", 443, false},
        /* IPv6 */
        {"[::1]:6379", "::1", 6379, true},
        {"[::1]:6379", "::2", 6379, false},
        {"[fd00::/8]:*", "fd12:3456::1", 9, true},
        {"[fd00::/8]:*", "fe80::1", 9, false},
        {"[::ffff:0:0/96]:*", "10.0.0.1", 1, false}, /* v4 targets match v4 entries only */
        /* names: exact (no case, root dot) and suffixes */
        {"db.internal:5432", "db.internal", 5432, true},
        {"db.internal:5432", "DB.Internal", 5432, true},
        {"db.internal:5432", "db.internal.", 5432, true},
        {"db.internal:5432", "xdb.internal", 5432, false},
        {"db.internal:5432", "db.internal.evil.com", 5432, false},
        {"localhost:*", "localhost", 8080, true},
        {"*.internal:5432", "db.internal", 5432, true},
        {"*.internal:5432", "a.b.internal", 5432, true},
        {"*.internal:5432", "internal", 5432, false},
        {"*.internal:5432", "evilinternal", 5432, false},
        {"*.internal:5432", "10.0.0.1", 5432, false},
        /* everything, on request only */
        {"*:*", "anything.example", 1, true},
        {"*:*", "::1", 65535, true},
        {"*:22", "10.0.0.1", 22, true},
        {"*:22", "10.0.0.1", 23, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        agent_policy_t p = {0};
        char err[256] = "";
        if (agent_policy_add(&p, cases[i].pattern, err, sizeof(err)) != 0)
            fail_msg("case %zu: '%s' refused: %s", i, cases[i].pattern, err);
        if (agent_policy_allows(&p, cases[i].host, cases[i].port) != cases[i].allowed)
            fail_msg("case %zu: '%s' %s %s:%u", i, cases[i].pattern,
                     cases[i].allowed ? "refuses" : "allows", cases[i].host,
                     (unsigned)cases[i].port);
        agent_policy_free(&p);
    }
}

static void test_policy_bad_patterns(void **state)
{
    static const char *const bad[] = {
        "",           "5432",          "host",           "host:",       "host:0",
        "host:65536", "host:10-5",     "host:x",         "host:1-",     "host:-1",
        ":80",        "10.0.0.0/33:1", "10.0.0.256:1",   "1.2.3:1",     "::1:80",
        "[::1]80",    "[::1:80",       "[fd00::/129]:1", "[nothost]:1", "a b:1",
        "*.:1",       "*.*.x:1",       "a*b:1",          "-bad-.x:1",   "10.0.0.0/8/8:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        agent_policy_t p = {0};
        char err[256] = "";
        if (agent_policy_add(&p, bad[i], err, sizeof(err)) != CN_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(err, "allow pattern"));
        assert_int_equal(p.count, 0);
        agent_policy_free(&p);
    }
}

static void test_policy_default_denies_and_targets_add(void **state)
{
    agent_policy_t p = {0};
    /* Empty: nothing at all, not even loopback. */
    assert_false(agent_policy_allows(&p, "127.0.0.1", 22));
    assert_false(agent_policy_allows(&p, "localhost", 5432));
    /* What an expose named: exactly that target. */
    assert_int_equal(agent_policy_add_target(&p, "localhost", 5432), 0);
    assert_int_equal(agent_policy_add_target(&p, "::1", 6379), 0);
    assert_true(agent_policy_allows(&p, "localhost", 5432));
    assert_false(agent_policy_allows(&p, "localhost", 5433));
    assert_true(agent_policy_allows(&p, "::1", 6379));
    assert_false(agent_policy_allows(&p, "127.0.0.1", 6379));
    assert_false(agent_policy_allows(&p, NULL, 1));
    assert_false(agent_policy_allows(&p, "localhost", 0));
    /* Many entries: any one allows. */
    char err[128];
    assert_int_equal(agent_policy_add(&p, "10.0.0.0/8:*", err, sizeof(err)), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(agent_policy_add_target(&p, "h.example", (uint16_t)(1000 + i)), 0);
    assert_true(agent_policy_allows(&p, "10.1.2.3", 1));
    assert_true(agent_policy_allows(&p, "h.example", 1019));
    assert_false(agent_policy_allows(&p, "h.example", 1020));
    agent_policy_free(&p);
    agent_policy_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_keeps_good_entries),
        cmocka_unit_test(test_many_ids_and_repeats),
        cmocka_unit_test(test_set_status),
        cmocka_unit_test(test_upsert_and_remove),
        cmocka_unit_test(test_upsert_bound),
        cmocka_unit_test(test_admission),
        cmocka_unit_test(test_policy_patterns),
        cmocka_unit_test(test_policy_bad_patterns),
        cmocka_unit_test(test_policy_default_denies_and_targets_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
