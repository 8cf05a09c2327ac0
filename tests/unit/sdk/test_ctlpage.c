/* cn_ctlpage: a tunnel list cut into pages that each fit one CONTROL frame
 * (sizes right at the budget and one byte past it), and the receiver's
 * gathering, which hands over a list only when its last page arrived. */
#include "cn_test.h"

#include "cn_ctlpage.h"
#include "cn_err.h"
#include "cn_frame.h"

#include <jansson.h>

/* An item whose compact JSON is exactly `len` bytes: {"id":"xxx..."}. */
static json_t *item_of_len(size_t len)
{
    const size_t shell = strlen("{\"id\":\"\"}");
    assert_true(len >= shell);
    char *s = malloc(len - shell + 1);
    assert_non_null(s);
    memset(s, 'x', len - shell);
    s[len - shell] = '\0';
    json_t *j = json_pack("{s:s}", "id", s);
    free(s);
    assert_int_equal(json_dumpb(j, NULL, 0, JSON_COMPACT), len);
    return j;
}

/* A tunnel as the hub lists it (hub/agents.c tunnel_json), numbered. */
static json_t *tunnel(size_t i)
{
    char id[40], name[16];
    snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012zu", i);
    snprintf(name, sizeof(name), "t%zu", i);
    return json_pack("{s:s,s:s,s:{s:s,s:i},s:s,s:s}", "id", id, "name", name, "target", "host",
                     "127.0.0.1", "port", 8080, "protocol", "http", "status", "active");
}

static void test_take_boundary(void **state)
{
    (void)state;
    /* Three items of 100 bytes: "[" + 100 + "," + 100 + "," + 100 + "]". */
    json_t *items = json_array();
    for (int i = 0; i < 3; i++)
        json_array_append_new(items, item_of_len(100));
    const size_t all = 2 + 3 * 100 + 2;
    assert_int_equal(json_dumpb(items, NULL, 0, JSON_COMPACT), all);
    assert_int_equal(cn_ctlpage_take(items, 0, all), 3);
    assert_int_equal(cn_ctlpage_take(items, 0, all - 1), 2);
    assert_int_equal(cn_ctlpage_take(items, 0, 2 + 100 + 1 + 100), 2);
    assert_int_equal(cn_ctlpage_take(items, 0, 2 + 100), 1);
    assert_int_equal(cn_ctlpage_take(items, 0, 2 + 99), 0); /* one alone does not fit */
    assert_int_equal(cn_ctlpage_take(items, 1, all), 2);
    assert_int_equal(cn_ctlpage_take(items, 2, 2 + 100), 1);
    assert_int_equal(cn_ctlpage_take(items, 3, all), 0); /* past the end */
    assert_int_equal(cn_ctlpage_take(NULL, 0, all), 0);
    json_decref(items);
}

/* Cuts `items` as the hub does and feeds the pages to a gathering; checks
 * every page fits one frame and the list comes back whole, once, on the
 * last page. Returns the number of pages. */
static size_t round_trip(json_t *items, size_t budget)
{
    cn_ctlpage_t g = {.max_items = 10000};
    size_t n = json_array_size(items), pages = 0;
    json_t *whole = NULL;
    for (size_t i = 0; i < n;) {
        size_t k = cn_ctlpage_take(items, i, budget);
        assert_true(k > 0);
        json_t *msg = cn_ctlpage_msg(items, i, k, pages, i + k < n);
        assert_non_null(msg);
        assert_true(json_dumpb(msg, NULL, 0, JSON_COMPACT) <= CN_FRAME_MAX_PAYLOAD);
        /* Full: one more item would not have fitted. */
        if (i + k < n) {
            json_t *one_more = cn_ctlpage_msg(items, i, k + 1, pages, true);
            assert_true(json_dumpb(json_object_get(one_more, "tunnels"), NULL, 0, JSON_COMPACT) >
                        budget);
            json_decref(one_more);
        }
        i += k;
        pages++;
        /* A round trip through the wire form, as the agent reads it. */
        char *text = json_dumps(msg, JSON_COMPACT);
        json_decref(msg);
        json_t *back = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        free(text);
        int rc = cn_ctlpage_add(&g, back, &whole);
        json_decref(back);
        assert_int_equal(rc, i < n ? 0 : 1);
        if (i < n)
            assert_null(whole);
    }
    assert_non_null(whole);
    assert_true(json_equal(whole, items));
    assert_null(g.acc);
    json_decref(whole);
    cn_ctlpage_reset(&g);
    return pages;
}

static void test_round_trip(void **state)
{
    (void)state;
    /* 1,000 tunnels: several frames' worth. */
    json_t *items = json_array();
    for (size_t i = 0; i < 1000; i++)
        json_array_append_new(items, tunnel(i));
    size_t whole = json_dumpb(items, NULL, 0, JSON_COMPACT);
    assert_true(whole > CN_FRAME_MAX_PAYLOAD);
    size_t pages = round_trip(items, CN_CTLPAGE_BUDGET);
    assert_int_equal(pages, (whole + CN_CTLPAGE_BUDGET - 1) / CN_CTLPAGE_BUDGET);
    json_decref(items);

    /* Lists right at a page's budget and one item past it. */
    json_t *one = item_of_len(1000);
    items = json_array();
    size_t per_page = (CN_CTLPAGE_BUDGET - 2 + 1) / 1001;
    for (size_t i = 0; i < per_page; i++)
        json_array_append(items, one);
    assert_int_equal(round_trip(items, CN_CTLPAGE_BUDGET), 1);
    json_array_append(items, one);
    assert_int_equal(round_trip(items, CN_CTLPAGE_BUDGET), 2);
    json_decref(items);
    json_decref(one);

    /* An item as large as a page allows. */
    items = json_array();
    json_array_append_new(items, item_of_len(CN_CTLPAGE_BUDGET - 2));
    json_array_append_new(items, item_of_len(10));
    assert_int_equal(round_trip(items, CN_CTLPAGE_BUDGET), 2);
    json_decref(items);
}

static json_t *page(size_t n, bool more, size_t count)
{
    json_t *items = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(items, tunnel(n * 100 + i));
    json_t *msg = cn_ctlpage_msg(items, 0, count, n, more);
    json_decref(items);
    return msg;
}

static int add(cn_ctlpage_t *g, json_t *msg, json_t **whole)
{
    int rc = cn_ctlpage_add(g, msg, whole);
    json_decref(msg);
    return rc;
}

static void test_gathering(void **state)
{
    (void)state;
    cn_ctlpage_t g = {.max_items = 5};
    json_t *whole = NULL;

    /* A page out of order drops the gathering; nothing is handed over. */
    assert_int_equal(add(&g, page(0, true, 2), &whole), 0);
    assert_int_equal(add(&g, page(2, false, 1), &whole), CN_EINVAL);
    assert_null(whole);
    assert_null(g.acc);
    /* ... and a later page without its page 0 is refused too. */
    assert_int_equal(add(&g, page(1, false, 1), &whole), CN_EINVAL);
    assert_null(whole);

    /* A new page 0 starts over: the cut-short list is never used. */
    assert_int_equal(add(&g, page(0, true, 2), &whole), 0);
    assert_int_equal(add(&g, page(0, true, 1), &whole), 0);
    assert_int_equal(add(&g, page(1, false, 1), &whole), 1);
    assert_non_null(whole);
    assert_int_equal(json_array_size(whole), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(whole, 1), "name")),
                        "t100");
    json_decref(whole);
    whole = NULL;

    /* One page alone (more false at page 0) is a whole list; so is an
     * empty one. */
    assert_int_equal(add(&g, page(0, false, 0), &whole), 1);
    assert_int_equal(json_array_size(whole), 0);
    json_decref(whole);
    whole = NULL;

    /* More than max_items: refused, dropped. */
    assert_int_equal(add(&g, page(0, true, 3), &whole), 0);
    assert_int_equal(add(&g, page(1, false, 3), &whole), CN_ETOOBIG);
    assert_null(whole);
    assert_null(g.acc);
    assert_int_equal(add(&g, page(0, true, 5), &whole), 0);
    assert_int_equal(add(&g, page(1, false, 0), &whole), 1);
    assert_int_equal(json_array_size(whole), 5);
    json_decref(whole);
    whole = NULL;

    /* Malformed pages. */
    static const char *bad[] = {
        "{\"type\":\"tunnels_page\",\"page\":0,\"more\":false}",
        "{\"type\":\"tunnels_page\",\"page\":0,\"tunnels\":[]}",
        "{\"type\":\"tunnels_page\",\"more\":false,\"tunnels\":[]}",
        "{\"type\":\"tunnels_page\",\"page\":-1,\"more\":false,\"tunnels\":[]}",
        "{\"type\":\"tunnels_page\",\"page\":\"0\",\"more\":false,\"tunnels\":[]}",
        "{\"type\":\"tunnels_page\",\"page\":0,\"more\":1,\"tunnels\":[]}",
        "{\"type\":\"tunnels_page\",\"page\":0,\"more\":false,\"tunnels\":{}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(add(&g, page(0, true, 1), &whole), 0);
        assert_int_equal(add(&g, json_loads(bad[i], 0, NULL), &whole), CN_EINVAL);
        assert_null(whole);
        assert_null(g.acc);
    }

    /* Reset mid-list (the link went down) frees what was gathered. */
    assert_int_equal(add(&g, page(0, true, 2), &whole), 0);
    cn_ctlpage_reset(&g);
    assert_null(g.acc);
    assert_int_equal(add(&g, page(1, false, 1), &whole), CN_EINVAL);
    cn_ctlpage_reset(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_boundary),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_gathering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
