/* router: pattern matching, 404 vs 405 with Allow, parameter capture. */
#include "cn_test.h"

#include "router.h"

typedef struct route {
    hub_route_t r;
    int tag;
} route_t;

static const route_t table[] = {
    {{HUB_GET, "/api/v1/health"}, 1},
    {{HUB_POST, "/api/v1/tunnels"}, 2},
    {{HUB_GET, "/api/v1/tunnels"}, 3},
    {{HUB_GET, "/api/v1/tunnels/{id}"}, 4},
    {{HUB_PATCH, "/api/v1/tunnels/{id}"}, 5},
    {{HUB_DELETE, "/api/v1/tunnels/{id}"}, 6},
    {{HUB_POST, "/api/v1/workspaces/{id}/tokens"}, 7},
};
#define N (sizeof(table) / sizeof(table[0]))

static int lookup(unsigned method, const char *path, hub_route_params_t *p, unsigned *allow,
                  int *tag)
{
    size_t idx = 99;
    *allow = 0;
    int r = hub_route_lookup(table, N, sizeof(route_t), method, path, &idx, p, allow);
    *tag = r == HUB_ROUTE_FOUND ? table[idx].tag : 0;
    return r;
}

static void test_matching(void **state)
{
    static const struct {
        unsigned method;
        const char *path;
        int result;
        int tag;
        const char *param;
    } v[] = {
        {HUB_GET, "/api/v1/health", HUB_ROUTE_FOUND, 1, NULL},
        {HUB_GET, "/api/v1/health/", HUB_ROUTE_FOUND, 1, NULL},
        {HUB_GET, "/api/v1/healthz", HUB_ROUTE_NOT_FOUND, 0, NULL},
        {HUB_GET, "/api/v1", HUB_ROUTE_NOT_FOUND, 0, NULL},
        {HUB_GET, "/", HUB_ROUTE_NOT_FOUND, 0, NULL},
        {HUB_GET, "", HUB_ROUTE_NOT_FOUND, 0, NULL},
        {HUB_GET, "api/v1/health", HUB_ROUTE_NOT_FOUND, 0, NULL},
        {HUB_POST, "/api/v1/tunnels", HUB_ROUTE_FOUND, 2, NULL},
        {HUB_GET, "/api/v1/tunnels", HUB_ROUTE_FOUND, 3, NULL},
        {HUB_GET, "/api/v1/tunnels/abc", HUB_ROUTE_FOUND, 4, "abc"},
        {HUB_PATCH, "/api/v1/tunnels/abc/", HUB_ROUTE_FOUND, 5, "abc"},
        {HUB_DELETE, "/api/v1/tunnels/x-y", HUB_ROUTE_FOUND, 6, "x-y"},
        {HUB_GET, "/api/v1/tunnels/abc/def", HUB_ROUTE_NOT_FOUND, 0, NULL},
        {HUB_POST, "/api/v1/workspaces/w1/tokens", HUB_ROUTE_FOUND, 7, "w1"},
        {HUB_POST, "/api/v1/workspaces//tokens", HUB_ROUTE_NOT_FOUND, 0, NULL},
        {HUB_GET, "/API/V1/HEALTH", HUB_ROUTE_NOT_FOUND, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        hub_route_params_t p;
        unsigned allow;
        int tag;
        assert_int_equal(lookup(v[i].method, v[i].path, &p, &allow, &tag), v[i].result);
        assert_int_equal(tag, v[i].tag);
        if (v[i].param) {
            assert_int_equal(p.count, 1);
            assert_string_equal(p.value[0], v[i].param);
        }
    }
}

static void test_method_not_allowed(void **state)
{
    hub_route_params_t p;
    unsigned allow;
    int tag;
    assert_int_equal(lookup(HUB_PUT, "/api/v1/tunnels", &p, &allow, &tag), HUB_ROUTE_BAD_METHOD);
    assert_int_equal(allow, HUB_GET | HUB_POST);
    char text[64];
    assert_true(hub_allow_format(allow, text, sizeof(text)) > 0);
    assert_string_equal(text, "GET, POST");
    assert_int_equal(lookup(HUB_POST, "/api/v1/tunnels/t1", &p, &allow, &tag),
                     HUB_ROUTE_BAD_METHOD);
    assert_int_equal(allow, HUB_GET | HUB_PATCH | HUB_DELETE);
    hub_allow_format(allow, text, sizeof(text));
    assert_string_equal(text, "GET, PATCH, DELETE");
    assert_int_equal(lookup(HUB_DELETE, "/api/v1/health", &p, &allow, &tag), HUB_ROUTE_BAD_METHOD);
    assert_int_equal(allow, HUB_GET);
}

static void test_param_limits(void **state)
{
    char path[200];
    char seg[HUB_ROUTE_PARAM_MAX + 2];
    memset(seg, 'a', sizeof(seg) - 1);
    seg[HUB_ROUTE_PARAM_MAX] = '\0';
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", seg);
    hub_route_params_t p;
    assert_true(hub_route_path_match("/api/v1/tunnels/{id}", path, &p));
    assert_int_equal(strlen(p.value[0]), HUB_ROUTE_PARAM_MAX);
    seg[HUB_ROUTE_PARAM_MAX] = 'a';
    seg[HUB_ROUTE_PARAM_MAX + 1] = '\0';
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", seg);
    assert_false(hub_route_path_match("/api/v1/tunnels/{id}", path, &p));
    assert_true(hub_route_path_match("/a/{x}/b/{y}", "/a/1/b/2", &p));
    assert_int_equal(p.count, 2);
    assert_string_equal(p.value[0], "1");
    assert_string_equal(p.value[1], "2");
    assert_false(hub_route_path_match("/a/{x}/b/{y}", "/a/1/c/2", &p));
    assert_false(hub_route_path_match(NULL, "/a", &p));
    assert_false(hub_route_path_match("/a", NULL, &p));
}

static void test_allow_format(void **state)
{
    char small[5];
    assert_int_equal(hub_allow_format(HUB_GET | HUB_POST, small, sizeof(small)), -1);
    assert_string_equal(small, "");
    char text[96];
    assert_int_equal(hub_allow_format(0, text, sizeof(text)), 0);
    assert_string_equal(text, "");
    assert_string_equal(hub_method_name(HUB_PATCH), "PATCH");
    assert_string_equal(hub_method_name(0), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_param_limits),
        cmocka_unit_test(test_allow_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
