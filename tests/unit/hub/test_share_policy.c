/* The share policy: the path normaliser (a traversal matrix), the pattern
 * matcher, the per-minute window and the per-request decision. */
#include "cn_test.h"

#include "cn_err.h"
#include "router.h"
#include "share_policy.h"

/* ---- normalising ---- */

typedef struct {
    const char *raw;
    const char *want; /* NULL: refused (CN_EINVAL) */
} norm_case_t;

static const norm_case_t norm_cases[] = {
    {"/", "/"},
    {"/api", "/api"},
    {"/api/", "/api/"},
    {"/api/users?x=1", "/api/users"},
    {"/api/users#frag", "/api/users"},
    {"//api", "/api"},
    {"/api//users", "/api/users"},
    {"/api///", "/api/"},
    {"/./api", "/api"},
    {"/api/.", "/api/"},
    {"/api/./users", "/api/users"},
    {"/api/../admin", "/admin"},
    {"/api/users/../../admin", "/admin"},
    {"/..", "/"},
    {"/../../../etc/passwd", "/etc/passwd"},
    {"/api/..", "/"},
    {"/api/%2e%2e/admin", "/admin"},
    {"/api/%2E%2E/admin", "/admin"},
    {"/api/.%2e/admin", "/admin"},
    {"/api/%2e./admin", "/admin"},
    {"/api/%2e/admin", "/api/admin"},
    {"/api%2f..%2fadmin", "/admin"},
    {"/api%2F..%2Fadmin", "/admin"},
    {"/api\\..\\admin", "/admin"},
    {"/api%5c..%5cadmin", "/admin"},
    {"\\api", "/api"},
    {"/api/%252e%252e/admin", "/api/%2e%2e/admin"}, /* decoded once only */
    {"/a%20b", "/a b"},
    {"/caf%C3%A9", "/caf\xc3\xa9"},
    {"/api/%00", NULL},
    {"/api/%0d%0aX:1", NULL},
    {"/api/%zz", NULL},
    {"/api/%4", NULL},
    {"/api/%", NULL},
    {"api", NULL},
    {"", NULL},
    {"/a b", NULL},
    {"/api/..;/admin", NULL},
    {"/api/.;x/admin", NULL},
    {"/api/...", "/api/..."},
    {"/api/..x", "/api/..x"},
    {"/%2e%2e%2f%2e%2e%2fadmin", "/admin"},
};

static void test_normalize_matrix(void **state)
{
    char out[256];
    for (size_t i = 0; i < sizeof(norm_cases) / sizeof(norm_cases[0]); i++) {
        const norm_case_t *c = &norm_cases[i];
        size_t n = 0;
        int rc = hub_path_normalize(c->raw, strlen(c->raw), out, sizeof(out), &n);
        if (!c->want) {
            if (rc != CN_EINVAL)
                fail_msg("case %zu \"%s\": want refused, got rc %d \"%s\"", i, c->raw, rc,
                         rc == 0 ? out : "");
            continue;
        }
        if (rc != 0 || strcmp(out, c->want) != 0 || n != strlen(c->want))
            fail_msg("case %zu \"%s\": want \"%s\", got rc %d \"%s\"", i, c->raw, c->want, rc,
                     rc == 0 ? out : "");
    }
}

static void test_normalize_bounds(void **state)
{
    char out[8];
    size_t n;
    assert_int_equal(hub_path_normalize("/abcdefgh", 9, out, sizeof(out), &n), CN_ETOOBIG);
    assert_int_equal(hub_path_normalize("/abcdef", 7, out, sizeof(out), &n), 0);
    assert_string_equal(out, "/abcdef");
    /* A length, not a NUL, ends the input. */
    assert_int_equal(hub_path_normalize("/ab/cd", 3, out, sizeof(out), &n), 0);
    assert_string_equal(out, "/ab");
}

static void test_encode_round_trip(void **state)
{
    const char *paths[] = {"/a b", "/%2e%2e", "/caf\xc3\xa9", "/x?y", "/~user/a-b_c.d"};
    const char *want[] = {"/a%20b", "/%252e%252e", "/caf%C3%A9", "/x%3Fy", "/~user/a-b_c.d"};
    for (size_t i = 0; i < 5; i++) {
        char enc[64], back[64];
        size_t n = 0, m = 0;
        assert_int_equal(hub_path_encode(paths[i], strlen(paths[i]), enc, sizeof(enc), &n), 0);
        assert_string_equal(enc, want[i]);
        assert_int_equal(hub_path_normalize(enc, n, back, sizeof(back), &m), 0);
        assert_string_equal(back, paths[i]);
    }
}

/* A longest normal path whose every byte re-encodes as "%XX" normalises
 * again to itself (fuzz_share_policy found the raw limit refusing it). */
static void test_encode_round_trip_longest(void **state)
{
    static char raw[HUB_PATH_MAX + 1], norm[HUB_PATH_MAX + 1], enc[HUB_PATH_RAW_MAX + 2],
        back[HUB_PATH_MAX + 1];
    raw[0] = '/';
    memset(raw + 1, '"', HUB_PATH_MAX - 1);
    size_t n = 0, e = 0, m = 0;
    assert_int_equal(hub_path_normalize(raw, HUB_PATH_MAX, norm, sizeof(norm), &n), 0);
    assert_int_equal(n, HUB_PATH_MAX);
    assert_int_equal(hub_path_encode(norm, n, enc, sizeof(enc), &e), 0);
    assert_int_equal(e, 1 + 3 * (HUB_PATH_MAX - 1));
    assert_int_equal(hub_path_normalize(enc, e, back, sizeof(back), &m), 0);
    assert_int_equal(m, n);
    assert_memory_equal(back, norm, n);
    /* Past three bytes per decoded byte the raw form is refused unread. */
    memset(enc, 'a', sizeof(enc) - 1);
    enc[0] = '/';
    assert_int_equal(hub_path_normalize(enc, HUB_PATH_RAW_MAX + 1, back, sizeof(back), &m),
                     CN_EINVAL);
}

/* ---- patterns ---- */

typedef struct {
    const char *pattern;
    const char *path;
    bool match;
} match_case_t;

static const match_case_t match_cases[] = {
    {"/api/*", "/api", true},
    {"/api/*", "/api/", true},
    {"/api/*", "/api/users", true},
    {"/api/*", "/api/users/1/x", true},
    {"/api/*", "/apiX", false},
    {"/api/*", "/apix/users", false},
    {"/api/*", "/ap", false},
    {"/api/*", "/", false},
    {"/api/*", "/admin", false},
    {"/api", "/api", true},
    {"/api", "/api/users", true},
    {"/api", "/apiX", false},
    {"/api", "/api.json", false},
    {"/", "/anything/at/all", true},
    {"/*", "/", true},
    {"/*", "/x", true},
    {"/users/*/profile", "/users/7/profile", true},
    {"/users/*/profile", "/users/7/profile/photo", true},
    {"/users/*/profile", "/users/7/settings", false},
    {"/users/*/profile", "/users/profile", false},
    {"/files/*.json", "/files/a.json", true},
    {"/files/*.json", "/files/a.jsonx", false},
    {"/files/*.json", "/files/dir/a.json", false},
    {"/api*", "/apiX", true},
    {"/v1/api", "/v1/api/x", true},
    {"/v1/api", "/v1", false},
};

static void test_match_table(void **state)
{
    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const match_case_t *c = &match_cases[i];
        if (hub_path_match(c->pattern, c->path, strlen(c->path)) != c->match)
            fail_msg("case %zu: \"%s\" against \"%s\" should %s", i, c->path, c->pattern,
                     c->match ? "match" : "not match");
    }
}

/* The whole chain the edge runs: raw target -> normalise -> match. */
static void test_traversal_never_slips_through(void **state)
{
    const char *attacks[] = {
        "/api/../admin",
        "/api/%2e%2e/admin",
        "/api/%2E%2e/admin",
        "/api/.%2e/admin",
        "/api%2f..%2fadmin",
        "/api\\..\\admin",
        "/api%5c..%5cadmin",
        "/api/./../admin",
        "/api//../admin",
        "/api/x/../../admin",
        "/apiX",
        "/apiX/../api2",
        "/api/..",
        "/%2e%2e/api/../admin",
        "/ap%69/../admin",
        "/api/%2e%2e%2fadmin",
    };
    char out[256];
    for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
        size_t n = 0;
        int rc = hub_path_normalize(attacks[i], strlen(attacks[i]), out, sizeof(out), &n);
        if (rc == 0 && hub_path_match("/api/*", out, n))
            fail_msg("\"%s\" normalised to \"%s\" slipped through /api/*", attacks[i], out);
    }
    /* And legitimate ones get in. */
    const char *fine[] = {"/api",         "/api/users",   "/api//users",
                          "/api/./users", "/ap%69/users", "/x/../api/users"};
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        size_t n = 0;
        assert_int_equal(hub_path_normalize(fine[i], strlen(fine[i]), out, sizeof(out), &n), 0);
        if (!hub_path_match("/api/*", out, n))
            fail_msg("\"%s\" (\"%s\") should be allowed by /api/*", fine[i], out);
    }
}

static void test_pattern_validity(void **state)
{
    const char *why = NULL;
    assert_true(hub_path_pattern_valid("/api/*", &why));
    assert_true(hub_path_pattern_valid("/", &why));
    assert_true(hub_path_pattern_valid("/users/*/profile", &why));
    assert_false(hub_path_pattern_valid("", &why));
    assert_false(hub_path_pattern_valid("api", &why));
    assert_false(hub_path_pattern_valid("/api//x", &why));
    assert_false(hub_path_pattern_valid("/api/../x", &why));
    assert_false(hub_path_pattern_valid("/api/./x", &why));
    assert_false(hub_path_pattern_valid("/api/%2e", &why));
    assert_false(hub_path_pattern_valid("/api?x", &why));
    assert_false(hub_path_pattern_valid("/a b", &why));
    assert_false(hub_path_pattern_valid("/a\\b", &why));
    assert_non_null(why);
}

/* ---- the window ---- */

static void test_window_exactly_n(void **state)
{
    hub_share_window_t w = {0};
    uint32_t retry = 0;
    int64_t t0 = 1000000;
    for (int i = 0; i < 5; i++)
        assert_true(hub_share_window_take(&w, 5, t0 + i, &retry));
    assert_false(hub_share_window_take(&w, 5, t0 + 10, &retry));
    assert_int_equal(retry, 60);
    assert_false(hub_share_window_take(&w, 5, t0 + 59500, &retry));
    assert_int_equal(retry, 1);
    /* The next window starts with the next request after the first one's
     * minute, with the whole budget again. */
    for (int i = 0; i < 5; i++)
        assert_true(hub_share_window_take(&w, 5, t0 + 60000 + i, &retry));
    assert_false(hub_share_window_take(&w, 5, t0 + 60010, &retry));
}

/* ---- the decision ---- */

static void test_decide_order_and_statuses(void **state)
{
    const char *paths[] = {"/api/*"};
    hub_share_rules_t r = {.methods = HUB_GET | HUB_POST,
                           .paths = paths,
                           .npaths = 1,
                           .rate_limit = 2,
                           .expires_at = 5000,
                           .needs_auth = true};
    hub_share_window_t w = {0};
    hub_share_request_t q = {.method = HUB_GET, .path = "/api/x", .path_len = 6, .auth_ok = true};
    hub_share_decision_t d = hub_share_decide(&r, &w, &q, 1000);
    assert_int_equal(d.verdict, HUB_SHARE_ALLOW);
    assert_int_equal(d.status, 200);

    q.auth_ok = false;
    assert_int_equal(hub_share_decide(&r, &w, &q, 1000).status, 401);
    q.auth_ok = true;
    q.method = HUB_DELETE;
    assert_int_equal(hub_share_decide(&r, &w, &q, 1000).status, 405);
    q.method = HUB_HEAD; /* GET allows HEAD */
    q.path = "/admin";
    q.path_len = 6;
    assert_int_equal(hub_share_decide(&r, &w, &q, 1000).status, 403);
    /* Refusals above did not use the budget: one more is allowed, then 429. */
    q.path = "/api";
    q.path_len = 4;
    assert_int_equal(hub_share_decide(&r, &w, &q, 1000).status, 200);
    d = hub_share_decide(&r, &w, &q, 1000);
    assert_int_equal(d.status, 429);
    assert_true(d.retry_after_s >= 1);
    /* Expiry and revocation come before everything. */
    assert_int_equal(hub_share_decide(&r, &w, &q, 5000).verdict, HUB_SHARE_EXPIRED);
    r.revoked = true;
    assert_int_equal(hub_share_decide(&r, &w, &q, 1000).verdict, HUB_SHARE_REVOKED);
    assert_int_equal(hub_share_allowed_mask(&r), HUB_GET | HUB_POST | HUB_HEAD);
    assert_string_equal(hub_share_verdict_name(HUB_SHARE_LIMIT), "rate_limit");
}

static void test_decide_unknown_method(void **state)
{
    hub_share_rules_t r = {.methods = HUB_GET};
    hub_share_window_t w = {0};
    hub_share_request_t q = {.method = 0, .path = "/", .path_len = 1};
    assert_int_equal(hub_share_decide(&r, &w, &q, 1).status, 405);
    r.methods = 0; /* any method */
    assert_int_equal(hub_share_decide(&r, &w, &q, 1).status, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_matrix),
        cmocka_unit_test(test_normalize_bounds),
        cmocka_unit_test(test_encode_round_trip),
        cmocka_unit_test(test_encode_round_trip_longest),
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_traversal_never_slips_through),
        cmocka_unit_test(test_pattern_validity),
        cmocka_unit_test(test_window_exactly_n),
        cmocka_unit_test(test_decide_order_and_statuses),
        cmocka_unit_test(test_decide_unknown_method),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
