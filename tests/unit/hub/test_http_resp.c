/* http responses: every error has exactly the contract's shape
 * {"errors":[{"param","details"}]}, bodies are compact ASCII JSON, and
 * status lines carry reason phrases. */
#include "cn_test.h"

#include <jansson.h>

#include "cn_err.h"
#include "http.h"

static json_t *parse(const hub_http_resp_t *r)
{
    assert_non_null(r->body);
    assert_int_equal(strlen(r->body), r->body_len);
    json_t *v = json_loadb(r->body, r->body_len, 0, NULL);
    assert_non_null(v);
    return v;
}

static void assert_error_shape(json_t *v, size_t n)
{
    assert_true(json_is_object(v));
    assert_int_equal(json_object_size(v), 1);
    json_t *errs = json_object_get(v, "errors");
    assert_true(json_is_array(errs));
    assert_int_equal(json_array_size(errs), n);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(errs, i);
        assert_int_equal(json_object_size(e), 2);
        assert_true(json_is_string(json_object_get(e, "param")));
        assert_true(json_is_string(json_object_get(e, "details")));
    }
}

static void test_single_error(void **state)
{
    hub_http_resp_t r = {0};
    assert_int_equal(hub_resp_error(&r, 422, "target", "port must be between 1 and 65535"), 0);
    assert_int_equal(r.status, 422);
    assert_string_equal(r.body, "{\"errors\":[{\"param\":\"target\",\"details\":\"port must be "
                                "between 1 and 65535\"}]}");
    json_t *v = parse(&r);
    assert_error_shape(v, 1);
    json_decref(v);
    hub_resp_clear(&r);
    assert_null(r.body);
    assert_int_equal(r.status, 0);
}

static void test_error_list_and_escaping(void **state)
{
    json_t *errs = NULL;
    hub_errors_add(&errs, "name", "must be 1-100 characters");
    hub_errors_add(&errs, NULL, "quote \" and \xc3\xa9");
    hub_http_resp_t r = {0};
    assert_int_equal(hub_resp_errors(&r, 400, errs), 0);
    json_t *v = parse(&r);
    assert_error_shape(v, 2);
    json_t *second = json_array_get(json_object_get(v, "errors"), 1);
    assert_string_equal(json_string_value(json_object_get(second, "param")), "");
    assert_string_equal(json_string_value(json_object_get(second, "details")),
                        "quote \" and \xc3\xa9");
    /* ASCII on the wire. */
    for (size_t i = 0; i < r.body_len; i++)
        assert_true((unsigned char)r.body[i] < 0x80);
    json_decref(v);
    hub_resp_clear(&r);
}

static void test_replacing_a_body(void **state)
{
    hub_http_resp_t r = {0};
    hub_resp_json(&r, 200, json_pack("{s:s}", "status", "ok"));
    hub_resp_error(&r, 404, "id", "no such tunnel");
    assert_int_equal(r.status, 404);
    json_t *v = parse(&r);
    assert_error_shape(v, 1);
    json_decref(v);
    /* A NULL body (allocation failure upstream) becomes a 500 error. */
    assert_int_equal(hub_resp_json(&r, 200, NULL), CN_ENOMEM);
    assert_int_equal(r.status, 500);
    v = parse(&r);
    assert_error_shape(v, 1);
    json_decref(v);
    hub_resp_clear(&r);
}

static void test_reasons(void **state)
{
    assert_string_equal(hub_http_reason(201), "Created");
    assert_string_equal(hub_http_reason(422), "Unprocessable Content");
    assert_string_equal(hub_http_reason(429), "Too Many Requests");
    assert_string_equal(hub_http_reason(413), "Content Too Large");
    assert_string_equal(hub_http_reason(599), "Error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_error),
        cmocka_unit_test(test_error_list_and_escaping),
        cmocka_unit_test(test_replacing_a_body),
        cmocka_unit_test(test_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
