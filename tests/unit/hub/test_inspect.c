/* Request inspection: masking (a table), records built from parsed heads,
 * body caps, the store's bounds (per tunnel, bytes, age), workspace
 * isolation, paging, and the request a replay sends. */
#include "cn_test.h"

#include "cn_err.h"
#include "http1.h"
#include "inspect.h"

#define WS "11111111-1111-4111-8111-111111111111"
#define WS2 "22222222-2222-4222-8222-222222222222"
#define T1 "33333333-3333-4333-8333-333333333333"
#define T2 "44444444-4444-4444-8444-444444444444"
#define SH "55555555-5555-4555-8555-555555555555"

/* ---- masking ---- */

typedef struct {
    const char *name, *value, *want;
} mask_case_t;

static const mask_case_t mask_cases[] = {
    {"Authorization", "Bearer abc.def.ghi", "Bearer ***"},
    {"authorization", "Basic dXNlcjpwYXNz", "Basic ***"},
    {"AUTHORIZATION", "tokenwithoutscheme", "***"},
    {"Proxy-Authorization", "Basic eDp5", "Basic ***"},
    {"Cookie", "sid=s3cr3t", "sid=***"},
    {"Cookie", "sid=s3cr3t; theme=dark; x=", "sid=***; theme=***; x=***"},
    {"Cookie", "sid=a;theme=b", "sid=***; theme=***"},
    {"Cookie", "justavalue", "***"},
    {"Set-Cookie", "session=abc123; Path=/; HttpOnly", "session=***; Path=/; HttpOnly"},
    {"set-cookie", "id=a; Expires=Wed, 21 Oct 2015 07:28:00 GMT",
     "id=***; Expires=Wed, 21 Oct 2015 07:28:00 GMT"},
    {"Content-Type", "text/plain", "text/plain"},
    {"X-Authorization-Hint", "visible", "visible"},
    {"Cookies", "not=masked", "not=masked"},
};

static void test_mask_table(void **state)
{
    for (size_t i = 0; i < sizeof(mask_cases) / sizeof(mask_cases[0]); i++) {
        const mask_case_t *c = &mask_cases[i];
        char out[256];
        size_t n = hub_inspect_mask_header(c->name, strlen(c->name), c->value, strlen(c->value),
                                           out, sizeof(out));
        if (strcmp(out, c->want)) {
            fprintf(stderr, "case %zu: %s: %s -> '%s', want '%s'\n", i, c->name, c->value, out,
                    c->want);
            fail();
        }
        assert_int_equal(n, strlen(c->want));
    }
}

static void test_mask_cut_to_cap(void **state)
{
    char out[8];
    size_t n = hub_inspect_mask_header("Cookie", 6, "aaaa=1; bbbb=2", 14, out, sizeof(out));
    assert_int_equal(n, 7);
    assert_string_equal(out, "aaaa=**");
    n = hub_inspect_mask_header("X", 1, "0123456789", 10, out, sizeof(out));
    assert_string_equal(out, "0123456");
    assert_int_equal(n, 7);
}

/* ---- building ---- */

static hub_inspect_t *store(size_t body_max, size_t keep)
{
    hub_inspect_config_t cfg = {.enabled = true, .body_max = body_max, .keep = keep};
    hub_inspect_t *in = hub_inspect_new(&cfg);
    assert_non_null(in);
    return in;
}

static hub_h1_head_t *parse_req(const char *text)
{
    hub_h1_head_t *h = malloc(sizeof(*h));
    assert_non_null(h);
    assert_int_equal(hub_h1_parse_request(text, strlen(text), h), 1);
    return h;
}

static hub_inspect_rec_t *begin(hub_inspect_t *in, const char *text, const char *ws,
                                const char *tunnel, const char *share, int64_t now)
{
    hub_h1_head_t *h = parse_req(text);
    hub_inspect_rec_t *r = hub_inspect_begin(in, h, ws, tunnel, share, "127.0.0.1:5000", now);
    free(h);
    return r;
}

static void test_record_masks_and_drops_hop_by_hop(void **state)
{
    hub_inspect_t *in = store(16, 10);
    hub_inspect_rec_t *r =
        begin(in,
              "GET /a?b=c HTTP/1.1\r\nHost: share-TOKENTOKEN.localhost:8081\r\n"
              "Authorization: Basic dXNlcjpwYXNz\r\nCookie: a=1; b=2\r\nConnection: keep-alive, "
              "X-Hop\r\nX-Hop: gone\r\nKeep-Alive: timeout=5\r\nAccept: */*\r\n\r\n",
              WS, T1, SH, 1000);
    assert_non_null(r);
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->target, "/a?b=c");
    assert_string_equal(r->share_id, SH);
    assert_string_equal(r->req_head, "Host: share-***.localhost:8081\n"
                                     "Authorization: Basic ***\nCookie: a=***; b=***\n"
                                     "Accept: */*\n");
    assert_null(strstr(r->req_head, "TOKEN"));
    /* The response: Set-Cookie masked, timing from the start. */
    const char *resp = "HTTP/1.1 201 Created\r\nSet-Cookie: s=xyz; Path=/\r\nContent-Length: "
                       "3\r\n\r\n";
    hub_h1_head_t *h = malloc(sizeof(*h));
    assert_int_equal(hub_h1_parse_response(resp, strlen(resp), h), 1);
    hub_inspect_response(r, h, 1007);
    free(h);
    assert_int_equal(r->status, 201);
    assert_int_equal(r->first_byte, 7);
    assert_string_equal(r->resp_head, "Set-Cookie: s=***; Path=/\nContent-Length: 3\n");
    hub_inspect_commit(in, r, 201, 1010);
    const hub_inspect_rec_t *g = hub_inspect_get(in, WS, 1);
    assert_non_null(g);
    assert_int_equal(g->duration, 10);
    hub_inspect_free(in);
}

static void test_tunnel_host_kept(void **state)
{
    hub_inspect_t *in = store(16, 10);
    hub_inspect_rec_t *r =
        begin(in, "GET / HTTP/1.1\r\nHost: share-web.localhost\r\n\r\n", WS, T1, "", 1);
    /* Not through a share: a tunnel named share-web keeps its Host. */
    assert_string_equal(r->req_head, "Host: share-web.localhost\n");
    hub_inspect_rec_free(r);
    hub_inspect_free(in);
}

static void test_disabled_records_nothing(void **state)
{
    hub_inspect_config_t cfg = {.enabled = false, .body_max = 16};
    hub_inspect_t *in = hub_inspect_new(&cfg);
    assert_false(hub_inspect_enabled(in));
    assert_null(begin(in, "GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n", WS, T1, "", 1));
    assert_false(hub_inspect_enabled(NULL));
    hub_inspect_free(in);
}

static void test_body_cap(void **state)
{
    hub_inspect_t *in = store(8, 10);
    hub_inspect_rec_t *r = begin(
        in, "POST / HTTP/1.1\r\nHost: a.localhost\r\nContent-Length: 12\r\n\r\n", WS, T1, "", 1);
    hub_inspect_body(r, HUB_INSPECT_REQ, "hello ", 6);
    hub_inspect_body(r, HUB_INSPECT_REQ, "world!", 6);
    assert_int_equal(r->req_body.len, 8);
    assert_int_equal(r->req_body.seen, 12);
    assert_memory_equal(r->req_body.data, "hello wo", 8);
    hub_inspect_body(r, HUB_INSPECT_RESP, "ok", 2);
    assert_int_equal(r->resp_body.len, 2);
    char *out = NULL;
    size_t len = 0;
    const char *why = NULL;
    assert_int_equal(hub_inspect_replay_request(r, "a.localhost", &out, &len, &why), CN_EINVAL);
    assert_non_null(strstr(why, "not recorded whole"));
    assert_null(out);
    hub_inspect_rec_free(r);

    /* body_max 0: counted, never kept. */
    hub_inspect_free(in);
    in = store(0, 10);
    r = begin(in, "POST / HTTP/1.1\r\nHost: a.localhost\r\nContent-Length: 2\r\n\r\n", WS, T1, "",
              1);
    hub_inspect_body(r, HUB_INSPECT_REQ, "hi", 2);
    assert_int_equal(r->req_body.len, 0);
    assert_int_equal(r->req_body.seen, 2);
    assert_null(r->req_body.data);
    hub_inspect_rec_free(r);
    hub_inspect_free(in);
}

/* ---- the store ---- */

static void add(hub_inspect_t *in, const char *ws, const char *tunnel, int64_t now)
{
    hub_inspect_rec_t *r =
        begin(in, "GET /x HTTP/1.1\r\nHost: a.localhost\r\n\r\n", ws, tunnel, "", now);
    assert_non_null(r);
    hub_inspect_commit(in, r, 200, now);
}

static void test_keep_per_tunnel(void **state)
{
    hub_inspect_t *in = store(16, 5);
    for (int i = 0; i < 15; i++)
        add(in, WS, T1, i);
    add(in, WS, T2, 100);
    const hub_inspect_rec_t *out[100];
    size_t n = hub_inspect_list(in, WS, T1, 0, false, 0, 100, out);
    assert_int_equal(n, 5);
    assert_int_equal(out[0]->id, 15); /* newest first */
    assert_int_equal(out[4]->id, 11);
    assert_int_equal(hub_inspect_list(in, WS, T2, 0, false, 0, 100, out), 1);
    assert_null(hub_inspect_get(in, WS, 10)); /* dropped */
    assert_non_null(hub_inspect_get(in, WS, 11));
    hub_inspect_free(in);
}

/* Many tunnels recording (more than the index has slots, so they share
 * slots): each keeps its own newest, the hub's oldest go first across
 * tunnels, and buckets emptied by a sweep leave their slots sound. */
#define MANY 3000

static const char *tunnel_n(int i)
{
    static char ids[MANY][HUB_ID_SIZE];
    snprintf(ids[i], sizeof(ids[i]), "%08x-0000-4000-8000-%012x", (unsigned)i, (unsigned)i * 7u);
    return ids[i];
}

static void test_many_tunnels(void **state)
{
    hub_inspect_config_t cfg = {.enabled = true, .body_max = 4, .keep = 3, .retention_ms = 10000};
    hub_inspect_t *in = hub_inspect_new(&cfg);
    /* Four rounds over all tunnels: record id = round * MANY + i + 1. */
    for (int round = 0; round < 4; round++)
        for (int i = 0; i < MANY; i++)
            add(in, WS, tunnel_n(i), round * 1000);
    const hub_inspect_rec_t *out[8];
    for (int i = 0; i < MANY; i++) {
        size_t n = hub_inspect_list(in, WS, tunnel_n(i), 0, false, 0, 8, out);
        assert_int_equal(n, 3); /* keep = 3: round 0 dropped */
        for (int k = 0; k < 3; k++)
            assert_int_equal(out[k]->id, (uint64_t)((3 - k) * MANY + i + 1));
        assert_null(hub_inspect_get(in, WS, (uint64_t)i + 1));
    }
    /* Retention: rounds 1 and 2 (t = 1000, 2000) age out at 12,001. */
    hub_inspect_sweep(in, 12001);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(hub_inspect_list(in, WS, tunnel_n(i), 0, false, 0, 8, out), 1);
        assert_int_equal(out[0]->id, (uint64_t)(3 * MANY + i + 1));
    }
    /* All gone, every bucket freed; tunnels record again from nothing. */
    hub_inspect_sweep(in, 20000);
    for (int i = 0; i < MANY; i += 7)
        assert_int_equal(hub_inspect_list(in, WS, tunnel_n(i), 0, false, 0, 8, out), 0);
    for (int i = MANY - 1; i >= 0; i -= 3)
        add(in, WS, tunnel_n(i), 20000);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(hub_inspect_list(in, WS, tunnel_n(i), 0, false, 0, 8, out),
                         (MANY - 1 - i) % 3 == 0 ? 1 : 0);
    hub_inspect_free(in);

    /* The bytes bound drops the hub's oldest, whichever tunnel they are of. */
    cfg = (hub_inspect_config_t){.enabled = true, .body_max = 4, .keep = 100};
    in = hub_inspect_new(&cfg);
    add(in, WS, tunnel_n(0), 0);
    size_t one = hub_inspect_get(in, WS, 1)->bytes; /* every record here is this size */
    hub_inspect_free(in);
    cfg.bytes_max = 500 * one;
    in = hub_inspect_new(&cfg);
    for (int i = 0; i < MANY; i++)
        add(in, WS, tunnel_n(i), i);
    for (int i = 0; i < MANY; i++) {
        size_t n = hub_inspect_list(in, WS, tunnel_n(i), 0, false, 0, 8, out);
        assert_int_equal(n, i >= MANY - 500 ? 1 : 0);
    }
    assert_null(hub_inspect_get(in, WS, MANY - 500));
    assert_non_null(hub_inspect_get(in, WS, MANY - 499));
    hub_inspect_free(in);
}

static void test_paging(void **state)
{
    hub_inspect_t *in = store(16, 100);
    for (int i = 0; i < 10; i++)
        add(in, WS, T1, i);
    const hub_inspect_rec_t *out[100];
    size_t n = hub_inspect_list(in, WS, T1, 0, false, 0, 3, out);
    assert_int_equal(n, 3);
    assert_int_equal(out[2]->id, 8);
    n = hub_inspect_list(in, WS, T1, 8, false, 0, 3, out);
    assert_int_equal(n, 3);
    assert_int_equal(out[0]->id, 7);
    assert_int_equal(out[2]->id, 5);
    n = hub_inspect_list(in, WS, T1, 0, true, 0, 4, out); /* oldest first */
    assert_int_equal(n, 4);
    assert_int_equal(out[0]->id, 1);
    n = hub_inspect_list(in, WS, T1, 0, true, 8, 100, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0]->id, 9);
    assert_int_equal(out[1]->id, 10);
    hub_inspect_free(in);
}

static void test_workspace_isolation(void **state)
{
    hub_inspect_t *in = store(16, 100);
    add(in, WS, T1, 1);
    const hub_inspect_rec_t *out[4];
    assert_null(hub_inspect_get(in, WS2, 1));
    assert_non_null(hub_inspect_get(in, WS, 1));
    assert_int_equal(hub_inspect_list(in, WS2, T1, 0, false, 0, 4, out), 0);
    assert_int_equal(hub_inspect_list(in, WS, T2, 0, false, 0, 4, out), 0);
    hub_inspect_free(in);
}

static void test_retention_sweep(void **state)
{
    hub_inspect_config_t cfg = {.enabled = true, .body_max = 4, .retention_ms = 1000};
    hub_inspect_t *in = hub_inspect_new(&cfg);
    add(in, WS, T1, 0);
    add(in, WS, T2, 500);
    add(in, WS, T1, 900);
    hub_inspect_sweep(in, 1000);
    assert_non_null(hub_inspect_get(in, WS, 1));
    hub_inspect_sweep(in, 1501);
    assert_null(hub_inspect_get(in, WS, 1));
    assert_null(hub_inspect_get(in, WS, 2));
    assert_non_null(hub_inspect_get(in, WS, 3));
    hub_inspect_sweep(in, 5000);
    assert_null(hub_inspect_get(in, WS, 3));
    const hub_inspect_rec_t *out[4];
    assert_int_equal(hub_inspect_list(in, WS, T1, 0, false, 0, 4, out), 0);
    add(in, WS, T1, 6000); /* its tunnel's list starts again */
    assert_int_equal(hub_inspect_list(in, WS, T1, 0, false, 0, 4, out), 1);
    hub_inspect_free(in);
}

static void test_bytes_bound(void **state)
{
    /* Room for a few records only: the oldest of the hub go first. */
    hub_inspect_config_t cfg = {.enabled = true,
                                .body_max = 1024,
                                .keep = 1000,
                                .bytes_max = 4 * (sizeof(hub_inspect_rec_t) + 1024 + 64)};
    hub_inspect_t *in = hub_inspect_new(&cfg);
    for (int i = 0; i < 20; i++) {
        hub_inspect_rec_t *r =
            begin(in, "POST /x HTTP/1.1\r\nHost: a.localhost\r\nContent-Length: 1\r\n\r\n", WS,
                  i % 2 ? T1 : T2, "", i);
        hub_inspect_body(r, HUB_INSPECT_REQ, "x", 1);
        hub_inspect_commit(in, r, 200, i);
    }
    const hub_inspect_rec_t *out[100];
    size_t n = hub_inspect_list(in, WS, T1, 0, false, 0, 100, out) +
               hub_inspect_list(in, WS, T2, 0, false, 0, 100, out);
    assert_true(n >= 1 && n <= 4);
    assert_non_null(hub_inspect_get(in, WS, 20));
    assert_null(hub_inspect_get(in, WS, 1));
    hub_inspect_free(in);
}

static void test_reserved_id(void **state)
{
    hub_inspect_t *in = store(16, 100);
    add(in, WS, T1, 1);
    uint64_t id = hub_inspect_reserve(in);
    assert_int_equal(id, 2);
    add(in, WS, T1, 2); /* takes 3 */
    hub_inspect_rec_t *r =
        begin(in, "GET /again HTTP/1.1\r\nHost: a.localhost\r\n\r\n", WS, T1, "", 3);
    hub_inspect_set_replay(r, 1, id);
    hub_inspect_commit(in, r, 200, 4);
    const hub_inspect_rec_t *g = hub_inspect_get(in, WS, 2);
    assert_non_null(g);
    assert_int_equal(g->replay_of, 1);
    assert_string_equal(g->target, "/again");
    /* --follow from 2 still finds 3; from 1 both. */
    const hub_inspect_rec_t *out[4];
    assert_int_equal(hub_inspect_list(in, WS, T1, 0, true, 1, 4, out), 2);
    hub_inspect_free(in);
}

/* ---- what a replay sends ---- */

typedef struct {
    const char *head; /* as received */
    const char *body; /* recorded body bytes */
    const char *want; /* NULL: refused */
} replay_case_t;

static const replay_case_t replay_cases[] = {
    {"GET /a?x=1 HTTP/1.1\r\nHost: web.localhost:8081\r\nAuthorization: Bearer t\r\n"
     "Cookie: a=1\r\nAccept: */*\r\n\r\n",
     "", "GET /a?x=1 HTTP/1.1\r\nHost: web.example\r\nAccept: */*\r\n\r\n"},
    {"POST /p HTTP/1.1\r\nHost: web.localhost\r\nContent-Length: 5\r\n\r\n", "hello",
     "POST /p HTTP/1.1\r\nHost: web.example\r\nContent-Length: 5\r\n\r\nhello"},
    {"POST /p HTTP/1.1\r\nHost: web.localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
     "5\r\nhello\r\n0\r\n\r\n",
     "POST /p HTTP/1.1\r\nHost: web.example\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\r\n0\r\n\r\n"},
    /* A chunked body whose end was not seen. */
    {"POST /p HTTP/1.1\r\nHost: web.localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
     "5\r\nhello\r\n", NULL},
    /* A body shorter than its Content-Length. */
    {"POST /p HTTP/1.1\r\nHost: web.localhost\r\nContent-Length: 9\r\n\r\n", "hello", NULL},
};

static void test_replay_request_table(void **state)
{
    hub_inspect_t *in = store(64, 10);
    for (size_t i = 0; i < sizeof(replay_cases) / sizeof(replay_cases[0]); i++) {
        const replay_case_t *c = &replay_cases[i];
        hub_inspect_rec_t *r = begin(in, c->head, WS, T1, "", 1);
        hub_inspect_body(r, HUB_INSPECT_REQ, c->body, strlen(c->body));
        char *out = NULL;
        size_t len = 0;
        const char *why = NULL;
        int rc = hub_inspect_replay_request(r, "web.example", &out, &len, &why);
        if (c->want) {
            if (rc != 0) {
                fprintf(stderr, "case %zu refused: %s\n", i, why);
                fail();
            }
            assert_int_equal(len, strlen(c->want));
            assert_memory_equal(out, c->want, len);
        } else {
            assert_int_equal(rc, CN_EINVAL);
            assert_non_null(why);
            assert_null(out);
        }
        free(out);
        hub_inspect_rec_free(r);
    }
    hub_inspect_free(in);
}

static void test_replay_refuses_cut_target(void **state)
{
    hub_inspect_t *in = store(64, 10);
    size_t n = HUB_INSPECT_TARGET_MAX + 100;
    char *head = malloc(n + 64);
    memcpy(head, "GET /", 5);
    memset(head + 5, 'a', n);
    strcpy(head + 5 + n, " HTTP/1.1\r\nHost: a.localhost\r\n\r\n");
    hub_inspect_rec_t *r = begin(in, head, WS, T1, "", 1);
    free(head);
    assert_true(r->target_cut);
    assert_int_equal(strlen(r->target), HUB_INSPECT_TARGET_MAX);
    char *out = NULL;
    size_t len = 0;
    const char *why = NULL;
    assert_int_equal(hub_inspect_replay_request(r, "a", &out, &len, &why), CN_EINVAL);
    hub_inspect_rec_free(r);
    hub_inspect_free(in);
}

static void test_headers_cut_at_bound(void **state)
{
    /* Two headers of 5,000 bytes: the first fits the 8,192-byte bound, the
     * second does not and is left out whole (never half a value). */
    hub_inspect_t *in = store(16, 10);
    size_t vl = 5000;
    char *head = malloc(2 * vl + 128);
    size_t j = (size_t)sprintf(head, "GET / HTTP/1.1\r\nHost: a.localhost\r\nX-A: ");
    memset(head + j, 'a', vl);
    j += vl;
    j += (size_t)sprintf(head + j, "\r\nX-B: ");
    memset(head + j, 'b', vl);
    j += vl;
    strcpy(head + j, "\r\n\r\n");
    hub_inspect_rec_t *r = begin(in, head, WS, T1, "", 1);
    free(head);
    assert_true(r->req_head_cut);
    assert_int_equal(r->req_head_len, strlen("Host: a.localhost\nX-A: \n") + vl);
    assert_null(strchr(r->req_head, 'b'));
    char *out = NULL;
    size_t len = 0;
    const char *why = NULL;
    assert_int_equal(hub_inspect_replay_request(r, "a", &out, &len, &why), CN_EINVAL);
    hub_inspect_rec_free(r);
    hub_inspect_free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_table),
        cmocka_unit_test(test_mask_cut_to_cap),
        cmocka_unit_test(test_record_masks_and_drops_hop_by_hop),
        cmocka_unit_test(test_tunnel_host_kept),
        cmocka_unit_test(test_disabled_records_nothing),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_keep_per_tunnel),
        cmocka_unit_test(test_paging),
        cmocka_unit_test(test_many_tunnels),
        cmocka_unit_test(test_workspace_isolation),
        cmocka_unit_test(test_retention_sweep),
        cmocka_unit_test(test_bytes_bound),
        cmocka_unit_test(test_reserved_id),
        cmocka_unit_test(test_replay_request_table),
        cmocka_unit_test(test_replay_refuses_cut_target),
        cmocka_unit_test(test_headers_cut_at_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
