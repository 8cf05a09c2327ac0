/* reconcile: which status each tunnel should have, given its status, its
 * expiry, the live links of its agent and what each serves, and now. One
 * table row per rule; then whole agents through hub_reconcile(). */
#include "hub_test.h"

#include "reconcile.h"

#define NOW 1795442400000LL
#define A "11111111-1111-4111-8111-111111111111"
#define B "22222222-2222-4222-8222-222222222222"
#define T1 "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define T2 "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"

enum {
    CONN = HUB_TUNNEL_CONNECTING,
    ACT = HUB_TUNNEL_ACTIVE,
    PAU = HUB_TUNNEL_PAUSED,
    ERR = HUB_TUNNEL_ERROR,
    EXP = HUB_TUNNEL_EXPIRED
};

static const char only_t1[][HUB_ID_SIZE] = {T1};
static const char only_t2[][HUB_ID_SIZE] = {T2};

/* Link sets the rows pick from. */
static const hub_reconcile_link_t none[1] = {{0}};
static const hub_reconcile_link_t all_of_a[] = {{.agent_id = A, .serve_all = true}};
static const hub_reconcile_link_t t1_of_a[] = {{.agent_id = A, .served = only_t1, .nserved = 1}};
static const hub_reconcile_link_t t2_of_a[] = {{.agent_id = A, .served = only_t2, .nserved = 1}};
static const hub_reconcile_link_t all_of_b[] = {{.agent_id = B, .serve_all = true}};
/* T1 named by a link of another agent: not served. */
static const hub_reconcile_link_t t1_of_b[] = {{.agent_id = B, .served = only_t1, .nserved = 1}};
static const hub_reconcile_link_t t2_then_all_of_a[] = {
    {.agent_id = A, .served = only_t2, .nserved = 1},
    {.agent_id = A, .serve_all = true},
};

static const struct row {
    const char *what;
    int status;
    int64_t expires_at;
    const hub_reconcile_link_t *links;
    size_t nlinks;
    int want;
    const char *reason; /* NULL: unchanged */
} rows[] = {
    {"connecting, no link", CONN, 0, none, 0, CONN, NULL},
    {"connecting, a link serves all", CONN, 0, all_of_a, 1, ACT, "agent online"},
    {"connecting, a link names it", CONN, 0, t1_of_a, 1, ACT, "agent online"},
    {"connecting, the link names another", CONN, 0, t2_of_a, 1, CONN, NULL},
    {"connecting, another agent's link", CONN, 0, all_of_b, 1, CONN, NULL},
    {"connecting, another agent's link names the id", CONN, 0, t1_of_b, 1, CONN, NULL},
    {"connecting, the second link serves it", CONN, 0, t2_then_all_of_a, 2, ACT, "agent online"},
    {"active, still served", ACT, 0, all_of_a, 1, ACT, NULL},
    {"active, no link left", ACT, 0, none, 0, CONN, "agent offline"},
    {"active, only a link for another tunnel", ACT, 0, t2_of_a, 1, CONN, "agent offline"},
    {"error, served", ERR, 0, all_of_a, 1, ACT, "agent online"},
    {"error, not served", ERR, 0, none, 0, ERR, NULL},
    {"paused, served", PAU, 0, all_of_a, 1, PAU, NULL},
    {"paused, not served", PAU, 0, none, 0, PAU, NULL},
    {"expired stays expired, served", EXP, 0, all_of_a, 1, EXP, NULL},
    {"expired stays expired, TTL long past", EXP, NOW - 1, none, 0, EXP, NULL},
    {"TTL passed just now", ACT, NOW, all_of_a, 1, EXP, "ttl"},
    {"TTL passed, paused", PAU, NOW - 5000, none, 0, EXP, "ttl"},
    {"TTL passed, connecting", CONN, NOW - 1, none, 0, EXP, "ttl"},
    {"TTL in a millisecond", CONN, NOW + 1, all_of_a, 1, ACT, "agent online"},
    {"TTL ahead, active, no link", ACT, NOW + 60000, none, 0, CONN, "agent offline"},
};

static void test_rules(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        hub_reconcile_tunnel_t t = {
            .id = T1,
            .agent_id = A,
            .status = (enum hub_tunnel_status)r->status,
            .expires_at = r->expires_at,
        };
        hub_reconcile_verdict_t v;
        hub_reconcile(&t, 1, r->links, r->nlinks, NOW, &v);
        if ((int)v.status != r->want || (v.reason == NULL) != (r->reason == NULL) ||
            (r->reason && strcmp(v.reason, r->reason) != 0))
            fail_msg("%s: got %s (%s), want %s (%s)", r->what, hub_tunnel_status_name(v.status),
                     v.reason ? v.reason : "unchanged", hub_tunnel_status_name(r->want),
                     r->reason ? r->reason : "unchanged");
        /* The one-tunnel form agrees with the list form. */
        bool served = hub_reconcile_served(A, T1, r->links, r->nlinks);
        assert_int_equal(hub_reconcile_one(&t, served, NOW).status, v.status);
    }
}

/* A whole agent at once: an expose link for T1 only, an error tunnel that
 * comes back, a paused one and one whose TTL ran out; another agent's
 * tunnel is untouched by A's links. */
static void test_agents(void **state)
{
    (void)state;
    static const char c3[] = "cccccccc-cccc-4ccc-8ccc-cccccccccccc";
    static const char d4[] = "dddddddd-dddd-4ddd-8ddd-dddddddddddd";
    const hub_reconcile_tunnel_t tunnels[] = {
        {T1, A, HUB_TUNNEL_CONNECTING, 0},
        {T2, A, HUB_TUNNEL_ACTIVE, 0},
        {c3, A, HUB_TUNNEL_PAUSED, NOW - 1},
        {d4, B, HUB_TUNNEL_ACTIVE, 0},
    };
    hub_reconcile_verdict_t v[4];
    hub_reconcile(tunnels, 4, t1_of_a, 1, NOW, v);
    assert_int_equal(v[0].status, HUB_TUNNEL_ACTIVE);
    assert_int_equal(v[1].status, HUB_TUNNEL_CONNECTING);
    assert_int_equal(v[2].status, HUB_TUNNEL_EXPIRED);
    assert_int_equal(v[3].status, HUB_TUNNEL_CONNECTING);

    /* Every link gone: nothing is active, nothing else moves. */
    hub_reconcile(tunnels, 4, NULL, 0, NOW - 10, v);
    assert_int_equal(v[0].status, HUB_TUNNEL_CONNECTING);
    assert_null(v[0].reason);
    assert_int_equal(v[1].status, HUB_TUNNEL_CONNECTING);
    assert_int_equal(v[2].status, HUB_TUNNEL_PAUSED);
    assert_null(v[2].reason);
    assert_int_equal(v[3].status, HUB_TUNNEL_CONNECTING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_agents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
