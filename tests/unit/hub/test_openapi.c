/* openapi: docs/openapi.json, as compiled into connect-hub, documents the
 * REST API exactly. Both directions: every route of every table the
 * dispatcher searches has its operation (same path, same method, the same
 * query arguments, the security its auth level needs, its path
 * parameters), and every documented operation has a route. The checks
 * also run on doctored tables and documents, so that each is seen to fail
 * on what it must catch. The document is served as is, without a token. */
#include "hub_test.h"

#include <ctype.h>

#include <jansson.h>

#include "api.h"
#include "api_internal.h"
#include "router.h"

static json_t *load_doc(void)
{
    json_error_t err;
    json_t *doc = json_loadb((const char *)hub_openapi_doc, hub_openapi_doc_len,
                             JSON_REJECT_DUPLICATES, &err);
    if (!doc)
        fail_msg("docs/openapi.json does not parse: %s (line %d)", err.text, err.line);
    return doc;
}

/* Follows a local "$ref" ("#/components/parameters/limit"); other values
 * come back as they are. NULL for a dangling reference. */
static json_t *resolve(json_t *doc, json_t *v)
{
    const char *ref = json_string_value(json_object_get(v, "$ref"));
    if (!ref)
        return v;
    if (strncmp(ref, "#/", 2) != 0)
        return NULL;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", ref + 2);
    json_t *cur = doc;
    for (char *save = NULL, *k = strtok_r(buf, "/", &save); cur && k;
         k = strtok_r(NULL, "/", &save))
        cur = json_object_get(cur, k);
    return cur;
}

static void lower(const char *in, char *out, size_t n)
{
    size_t i = 0;
    for (; in[i] && i + 1 < n; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

/* The documented operation of a route, or NULL. */
static json_t *operation(json_t *doc, const hub_api_route_t *r)
{
    char m[16];
    lower(hub_method_name(r->route.method), m, sizeof(m));
    return json_object_get(json_object_get(json_object_get(doc, "paths"), r->route.pattern), m);
}

/* Whether the parameter `name` in `where` (query, path) is documented for
 * the operation (its own parameters or its path item's). */
static bool has_param(json_t *doc, json_t *path_item, json_t *op, const char *where,
                      const char *name)
{
    json_t *lists[2] = {json_object_get(op, "parameters"),
                        json_object_get(path_item, "parameters")};
    for (size_t l = 0; l < 2; l++) {
        size_t i;
        json_t *p;
        json_array_foreach(lists[l], i, p)
        {
            json_t *rp = resolve(doc, p);
            if (!strcmp(json_string_value(json_object_get(rp, "in")) ?: "", where) &&
                !strcmp(json_string_value(json_object_get(rp, "name")) ?: "", name))
                return true;
        }
    }
    return false;
}

/* How many parameters `where` the operation documents; dangling ones
 * count as problems in *bad. */
static size_t count_params(json_t *doc, json_t *path_item, json_t *op, const char *where,
                           size_t *bad)
{
    json_t *lists[2] = {json_object_get(op, "parameters"),
                        json_object_get(path_item, "parameters")};
    size_t n = 0;
    for (size_t l = 0; l < 2; l++) {
        size_t i;
        json_t *p;
        json_array_foreach(lists[l], i, p)
        {
            json_t *rp = resolve(doc, p);
            if (!rp) {
                print_message("dangling parameter reference\n");
                (*bad)++;
            } else if (!strcmp(json_string_value(json_object_get(rp, "in")) ?: "", where)) {
                n++;
            }
        }
    }
    return n;
}

/* Whether the operation's security (its own, else the document's) says
 * what the route's auth level is: HUB_AUTH_NONE has no requirement ([])
 * or allows the empty one ({}); the others need exactly one bearerAuth requirement whose
 * roles are none (any token), ["admin"] or ["operator"]. */
static bool security_matches(json_t *doc, json_t *op, enum hub_api_auth auth)
{
    json_t *sec = json_object_get(op, "security");
    if (!sec)
        sec = json_object_get(doc, "security");
    if (!json_is_array(sec))
        return false;
    if (auth == HUB_AUTH_NONE) {
        /* [] (no requirement) or a list holding {} (optional). */
        bool open = json_array_size(sec) == 0;
        for (size_t i = 0; i < json_array_size(sec); i++) {
            json_t *req = json_array_get(sec, i);
            open |= json_is_object(req) && json_object_size(req) == 0;
        }
        return open;
    }
    if (json_array_size(sec) != 1)
        return false;
    json_t *req = json_array_get(sec, 0);
    json_t *roles = json_object_get(req, "bearerAuth");
    if (json_object_size(req) != 1 || !json_is_array(roles))
        return false;
    const char *want = auth == HUB_AUTH_ADMIN      ? "admin"
                       : auth == HUB_AUTH_OPERATOR ? "operator"
                                                   : NULL;
    if (!want)
        return json_array_size(roles) == 0;
    return json_array_size(roles) == 1 &&
           !strcmp(json_string_value(json_array_get(roles, 0)) ?: "", want);
}

/* Routes to document: the problems found, each printed. */
static size_t check_routes(const hub_api_table_t *tables, size_t ntables, json_t *doc)
{
    size_t bad = 0;
    json_t *paths = json_object_get(doc, "paths");
    for (size_t t = 0; t < ntables; t++) {
        for (size_t i = 0; i < *tables[t].n; i++) {
            const hub_api_route_t *r = &tables[t].routes[i];
            const char *m = hub_method_name(r->route.method), *pat = r->route.pattern;
            json_t *item = json_object_get(paths, pat), *op = operation(doc, r);
            if (!op) {
                print_message("undocumented route: %s %s\n", m, pat);
                bad++;
                continue;
            }
            /* Query arguments: the same set both ways. */
            size_t nq = 0;
            for (; r->query && r->query[nq]; nq++)
                if (!has_param(doc, item, op, "query", r->query[nq])) {
                    print_message("%s %s: query argument %s undocumented\n", m, pat, r->query[nq]);
                    bad++;
                }
            if (count_params(doc, item, op, "query", &bad) != nq) {
                print_message("%s %s: documents other query arguments than the route's %zu\n", m,
                              pat, nq);
                bad++;
            }
            /* Path parameters: each {name} of the pattern, and no other. */
            size_t np = 0;
            for (const char *p = strchr(pat, '{'); p; p = strchr(p + 1, '{')) {
                char name[32];
                const char *end = strchr(p, '}');
                snprintf(name, sizeof(name), "%.*s", end ? (int)(end - p - 1) : 0, p + 1);
                np++;
                if (!has_param(doc, item, op, "path", name)) {
                    print_message("%s %s: path parameter %s undocumented\n", m, pat, name);
                    bad++;
                }
            }
            if (count_params(doc, item, op, "path", &bad) != np) {
                print_message("%s %s: documents other path parameters\n", m, pat);
                bad++;
            }
            if (!security_matches(doc, op, r->auth)) {
                print_message("%s %s: security does not match the route's auth level %d\n", m, pat,
                              (int)r->auth);
                bad++;
            }
            if (!json_object_get(op, "responses")) {
                print_message("%s %s: no responses\n", m, pat);
                bad++;
            }
        }
    }
    return bad;
}

/* Operations to route: the problems found, each printed. */
static size_t check_operations(const hub_api_table_t *tables, size_t ntables, json_t *doc)
{
    static const char *const methods[] = {"get",   "put",     "post", "delete",
                                          "patch", "options", "head", "trace"};
    static const char *const other_keys[] = {"summary", "description", "parameters", "servers"};
    size_t bad = 0;
    const char *path;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        const char *key;
        json_t *op;
        json_object_foreach(item, key, op)
        {
            bool is_method = false, is_other = false;
            for (size_t k = 0; k < sizeof(methods) / sizeof(methods[0]); k++)
                is_method |= !strcmp(key, methods[k]);
            for (size_t k = 0; k < sizeof(other_keys) / sizeof(other_keys[0]); k++)
                is_other |= !strcmp(key, other_keys[k]);
            if (is_other)
                continue;
            if (!is_method) {
                print_message("%s: unexpected key %s\n", path, key);
                bad++;
                continue;
            }
            char upper[16];
            size_t n = 0;
            for (; key[n] && n + 1 < sizeof(upper); n++)
                upper[n] = (char)toupper((unsigned char)key[n]);
            upper[n] = '\0';
            unsigned method = hub_method_parse(upper, n);
            bool found = false;
            for (size_t t = 0; t < ntables && !found; t++)
                for (size_t i = 0; i < *tables[t].n && !found; i++)
                    found = tables[t].routes[i].route.method == method &&
                            !strcmp(tables[t].routes[i].route.pattern, path);
            if (!found) {
                print_message("documented but not routed: %s %s\n", upper, path);
                bad++;
            }
        }
    }
    return bad;
}

static void test_document_is_openapi_3_1(void **state)
{
    (void)state;
    /* One NUL ends it, none inside: the bytes are the file's. */
    assert_int_equal(strlen((const char *)hub_openapi_doc), hub_openapi_doc_len);
    json_t *doc = load_doc();
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    assert_true(json_object_size(json_object_get(doc, "paths")) >= 20);
    /* The error shape every answer uses (http.c's hub_resp_error). */
    json_t *err = json_object_get(
        json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"), "Error"),
        "properties");
    json_t *item =
        json_object_get(json_object_get(json_object_get(err, "errors"), "items"), "properties");
    assert_non_null(json_object_get(item, "param"));
    assert_non_null(json_object_get(item, "details"));
    json_decref(doc);
}

static void test_every_route_documented(void **state)
{
    (void)state;
    json_t *doc = load_doc();
    size_t routes = 0;
    for (size_t t = 0; t < hub_api_ntables; t++)
        routes += *hub_api_tables[t].n;
    assert_true(routes >= 30);
    assert_int_equal(check_routes(hub_api_tables, hub_api_ntables, doc), 0);
    json_decref(doc);
}

static void test_every_operation_routed(void **state)
{
    (void)state;
    json_t *doc = load_doc();
    assert_int_equal(check_operations(hub_api_tables, hub_api_ntables, doc), 0);
    json_decref(doc);
}

static void handler(hub_api_call_t *c)
{
    (void)c;
}

/* A route added without its documentation, or with a query argument, a
 * path parameter or an auth level the document does not say, is caught. */
static void test_undocumented_route_fails(void **state)
{
    (void)state;
    json_t *doc = load_doc();
    static const char *const limit_only[] = {"limit", NULL};
    static const char *const extra_query[] = {"limit", "cursor", NULL};
    const hub_api_route_t cases[][1] = {
        {{{HUB_GET, "/api/v1/tunnels/{id}/requests"}, handler, HUB_AUTH_TOKEN, NULL, NULL}},
        {{{HUB_PUT, "/api/v1/tunnels/{id}"}, handler, HUB_AUTH_TOKEN, NULL, NULL}},
        {{{HUB_GET, "/api/v1/webhooks/{id}/deliveries"},
          handler,
          HUB_AUTH_ADMIN,
          extra_query,
          NULL}},
        {{{HUB_GET, "/api/v1/webhooks/{id}/deliveries"}, handler, HUB_AUTH_ADMIN, NULL, NULL}},
        {{{HUB_GET, "/api/v1/webhooks/{id}/deliveries"},
          handler,
          HUB_AUTH_TOKEN,
          limit_only,
          NULL}},
        {{{HUB_GET, "/api/v1/tokens"}, handler, HUB_AUTH_NONE, NULL, NULL}},
        {{{HUB_POST, "/api/v1/workspaces"}, handler, HUB_AUTH_ADMIN, NULL, NULL}},
    };
    const size_t one = 1;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const hub_api_table_t t[] = {{cases[i], &one}};
        if (check_routes(t, 1, doc) == 0)
            fail_msg("case %zu (%s %s) passed", i, hub_method_name(cases[i][0].route.method),
                     cases[i][0].route.pattern);
    }
    /* ... while the documented form of the same route passes. */
    const hub_api_route_t good[] = {
        {{HUB_GET, "/api/v1/webhooks/{id}/deliveries"}, handler, HUB_AUTH_ADMIN, limit_only, NULL},
    };
    const hub_api_table_t t[] = {{good, &one}};
    assert_int_equal(check_routes(t, 1, doc), 0);
    json_decref(doc);
}

/* A documented operation with no route behind it is caught, and so is a
 * route table that lost one. */
static void test_unrouted_operation_fails(void **state)
{
    (void)state;
    json_t *doc = load_doc();
    json_t *paths = json_object_get(doc, "paths");
    json_t *copy = json_deep_copy(json_object_get(json_object_get(paths, "/api/v1/shares"), "get"));
    json_object_set_new(json_object_get(paths, "/api/v1/shares"), "post", copy);
    assert_true(check_operations(hub_api_tables, hub_api_ntables, doc) > 0);
    json_decref(doc);

    doc = load_doc();
    /* All tables but the last: its operations are now unrouted. */
    assert_true(check_operations(hub_api_tables, hub_api_ntables - 1, doc) > 0);
    json_decref(doc);
}

/* GET (and HEAD) /api/v1/openapi.json without a token: the document's
 * bytes as application/json. The route needs no store. */
static void test_served_without_token(void **state)
{
    (void)state;
    hub_api_config_t cfg = {.public_domain = "example.test"};
    hub_api_t *api = hub_api_new(NULL, &cfg);
    assert_non_null(api);
    hub_http_req_t req = {.method = HUB_GET, .path = "/api/v1/openapi.json", .peer = "test"};
    hub_http_resp_t resp = {0};
    hub_api_handle(api, &req, &resp);
    assert_int_equal(resp.status, 200);
    assert_non_null(resp.content_type);
    assert_string_equal(resp.content_type, "application/json");
    assert_int_equal(resp.body_len, hub_openapi_doc_len);
    assert_memory_equal(resp.body, hub_openapi_doc, hub_openapi_doc_len);
    hub_resp_clear(&resp);
    req.method = HUB_POST;
    hub_api_handle(api, &req, &resp);
    assert_int_equal(resp.status, 405);
    hub_resp_clear(&resp);
    hub_api_free(api);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_document_is_openapi_3_1),
        cmocka_unit_test(test_every_route_documented),
        cmocka_unit_test(test_every_operation_routed),
        cmocka_unit_test(test_undocumented_route_fails),
        cmocka_unit_test(test_unrouted_operation_fails),
        cmocka_unit_test(test_served_without_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
