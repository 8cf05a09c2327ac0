/* HTTP/1.1 framing for the edge: request and response heads, the body
 * framers (Content-Length, chunked, close) and the smuggling defences. */
#include "cn_test.h"

#include "cn_err.h"
#include "http1.h"

static int req(const char *s, hub_h1_head_t *h)
{
    return hub_h1_parse_request(s, strlen(s), h);
}

static void test_request_head(void **state)
{
    hub_h1_head_t h;
    const char *s = "GET /api/x?y=1 HTTP/1.1\r\nHost: app.localhost:8081\r\n"
                    "X-A:  padded value \t\r\nConnection: keep-alive, Upgrade\r\n\r\nBODY";
    assert_int_equal(req(s, &h), 1);
    assert_int_equal(h.head_len, strlen(s) - 4);
    assert_int_equal(h.method_len, 3);
    assert_memory_equal(h.method, "GET", 3);
    assert_int_equal(h.target_len, 10);
    assert_memory_equal(h.target, "/api/x?y=1", 10);
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.nheaders, 3);
    const hub_h1_header_t *a = hub_h1_find(&h, "x-a");
    assert_non_null(a);
    assert_int_equal(a->value_len, 12);
    assert_memory_equal(a->value, "padded value", 12);
    assert_true(hub_h1_has_token(&h, "connection", "upgrade"));
    assert_true(hub_h1_has_token(&h, "Connection", "KEEP-ALIVE"));
    assert_false(hub_h1_has_token(&h, "connection", "close"));
    /* Leading empty lines are skipped. */
    assert_int_equal(req("\r\nGET / HTTP/1.0\r\n\r\n", &h), 1);
    assert_int_equal(h.minor, 0);
}

static void test_request_incomplete_and_limits(void **state)
{
    hub_h1_head_t h;
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a", &h), 0);
    assert_int_equal(req("", &h), 0);
    char big[HUB_H1_HEAD_MAX + 64];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(hub_h1_parse_request(big, sizeof(big), &h), CN_ETOOBIG);
    /* Too many headers. */
    char many[8192] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i <= HUB_H1_MAX_HEADERS; i++)
        strcat(many, "A: b\r\n");
    strcat(many, "\r\n");
    assert_int_equal(req(many, &h), CN_ETOOBIG);
}

static void test_request_malformed(void **state)
{
    const char *bad[] = {
        "GET /\r\n\r\n",                                /* no version */
        "GET / HTTP/2.0\r\n\r\n",                       /* not 1.x */
        "GET  / HTTP/1.1\r\n\r\n",                      /* empty target */
        "G(T / HTTP/1.1\r\n\r\n",                       /* method not a token */
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",           /* space before colon */
        "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", /* obs-fold */
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty\r\n\r\n",
        "GET / HTTP/1.1\nHost: x\n\n",        /* bare LF */
        "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",  /* bare CR */
        "GET / HTTP/1.1\r\nX: a\nb\r\n\r\n",  /* bare LF in a line */
        "GET / HTTP/1.1\r\nX: a\n\r\n\r\n",   /* bare LF just before the CR */
        "GET / HTTP/1.1\nX: a\r\n\r\n",       /* bare LF ending the request line */
        "GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", /* control byte */
    };
    hub_h1_head_t h;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (req(bad[i], &h) != CN_EPROTO)
            fail_msg("case %zu should be malformed", i);
}

static int feed_all(hub_h1_body_t *b, const char *s, size_t *used)
{
    return hub_h1_body_feed(b, (const uint8_t *)s, strlen(s), used);
}

static void test_request_framing(void **state)
{
    hub_h1_head_t h;
    hub_h1_body_t b;
    assert_int_equal(req("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", &h), 1);
    assert_int_equal(hub_h1_request_body(&h, &b), 0);
    assert_int_equal(b.kind, HUB_H1_BODY_LENGTH);
    size_t used = 0;
    assert_int_equal(feed_all(&b, "helloGET / HTTP/1.1", &used), 0);
    assert_int_equal(used, 5);
    assert_true(b.done);

    assert_int_equal(req("GET / HTTP/1.1\r\n\r\n", &h), 1);
    assert_int_equal(hub_h1_request_body(&h, &b), 0);
    assert_int_equal(b.kind, HUB_H1_BODY_NONE);
    assert_true(b.done);

    /* Smuggling defences. */
    const char *bad[] = {
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(req(bad[i], &h), 1);
        if (hub_h1_request_body(&h, &b) != CN_EPROTO)
            fail_msg("framing case %zu should be refused", i);
    }
    /* Repeated identical lengths are one length. */
    assert_int_equal(req("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n", &h), 1);
    assert_int_equal(hub_h1_request_body(&h, &b), 0);
    assert_int_equal(b.left, 3);
}

static void test_chunked(void **state)
{
    const char *body = "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    size_t blen = strlen(body) - 4;
    /* Whole, and byte by byte: the same end. */
    hub_h1_body_t b = {.kind = HUB_H1_BODY_CHUNKED};
    size_t used = 0;
    assert_int_equal(feed_all(&b, body, &used), 0);
    assert_true(b.done);
    assert_int_equal(used, blen);
    hub_h1_body_t c = {.kind = HUB_H1_BODY_CHUNKED};
    size_t total = 0;
    for (size_t i = 0; i < strlen(body) && !c.done; i++) {
        size_t u = 0;
        assert_int_equal(hub_h1_body_feed(&c, (const uint8_t *)body + i, 1, &u), 0);
        total += u;
    }
    assert_true(c.done);
    assert_int_equal(total, blen);

    const char *bad[] = {
        "g\r\n", "\r\n", "5\r\nhelloX\r\n", "5\nhello", "1234567890abcdef0\r\n", "0\r\nTrailer\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hub_h1_body_t d = {.kind = HUB_H1_BODY_CHUNKED};
        if (feed_all(&d, bad[i], &used) != CN_EPROTO)
            fail_msg("chunked case %zu should be refused", i);
    }
}

static void test_response(void **state)
{
    hub_h1_head_t h;
    hub_h1_body_t b;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    assert_int_equal(hub_h1_parse_response(s, strlen(s), &h), 1);
    assert_int_equal(h.status, 200);
    assert_int_equal(hub_h1_response_body(&h, false, &b), 0);
    assert_int_equal(b.kind, HUB_H1_BODY_LENGTH);
    assert_int_equal(hub_h1_response_body(&h, true, &b), 0);
    assert_int_equal(b.kind, HUB_H1_BODY_NONE);

    s = "HTTP/1.0 200\r\n\r\n";
    assert_int_equal(hub_h1_parse_response(s, strlen(s), &h), 1);
    assert_int_equal(hub_h1_response_body(&h, false, &b), 0);
    assert_int_equal(b.kind, HUB_H1_BODY_CLOSE);

    s = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    assert_int_equal(hub_h1_parse_response(s, strlen(s), &h), 1);
    assert_int_equal(h.status, 101);
    assert_int_equal(hub_h1_response_body(&h, false, &b), 0);
    assert_int_equal(b.kind, HUB_H1_BODY_NONE);

    s = "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n";
    assert_int_equal(hub_h1_parse_response(s, strlen(s), &h), 1);
    assert_int_equal(hub_h1_response_body(&h, false, &b), 0);
    assert_int_equal(b.kind, HUB_H1_BODY_NONE);

    s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(hub_h1_parse_response(s, strlen(s), &h), 1);
    assert_int_equal(hub_h1_response_body(&h, false, &b), 0);
    assert_int_equal(b.kind, HUB_H1_BODY_CHUNKED);

    const char *bad[] = {"HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 099 x\r\n\r\n",
                         "HTTP/1.1 200OK\r\n\r\n", "HTTX/1.1 200 OK\r\n\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (hub_h1_parse_response(bad[i], strlen(bad[i]), &h) != CN_EPROTO)
            fail_msg("response case %zu should be malformed", i);
}

static void test_hop_by_hop(void **state)
{
    hub_h1_head_t h;
    assert_int_equal(req("GET / HTTP/1.1\r\nConnection: close, X-Secret\r\nKeep-Alive: 5\r\n"
                         "X-Secret: 1\r\nX-Other: 2\r\nTE: trailers\r\n\r\n",
                         &h),
                     1);
    assert_true(hub_h1_hop_by_hop(&h.headers[0]));
    assert_true(hub_h1_hop_by_hop(&h.headers[1]));
    assert_false(hub_h1_hop_by_hop(&h.headers[2]));
    assert_true(hub_h1_connection_names(&h, &h.headers[2]));
    assert_false(hub_h1_connection_names(&h, &h.headers[3]));
    assert_true(hub_h1_hop_by_hop(&h.headers[4]));
}

/* Every hop-by-hop name in any case, and names one letter off, which a
 * check that looks at lengths first must still tell apart. */
static void test_hop_by_hop_names(void **state)
{
    static const char *const hop[] = {"Connection",          "KEEP-ALIVE", "proxy-connection",
                                      "Proxy-Authenticate",  "te",         "Trailer",
                                      "proxy-AUTHORIZATION", "Upgrade"};
    static const char *const other[] = {
        "Connectio", "Connections", "keep-alivf",       "tf",         "t",
        "trailers",  "upgradE2",    "Proxy-Connectiom", "x-upgrade1", "Content-Type"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
        hub_h1_header_t hd = {.name = hop[i], .name_len = strlen(hop[i])};
        if (!hub_h1_hop_by_hop(&hd))
            fail_msg("%s is hop-by-hop", hop[i]);
    }
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        hub_h1_header_t hd = {.name = other[i], .name_len = strlen(other[i])};
        if (hub_h1_hop_by_hop(&hd))
            fail_msg("%s is not hop-by-hop", other[i]);
    }
}

/* A header name takes exactly the tchar bytes of RFC 9110 (5.6.2), byte by
 * byte over all 256, and the head's end is found wherever it falls. */
static void test_name_bytes_and_head_end(void **state)
{
    for (int c = 0; c < 256; c++) {
        if (c == ':')
            continue; /* "X:Y: 1" is the header X */
        bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    (c && strchr("!#$%&'*+-.^_`|~", c));
        char s[64];
        int n = snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nX%cY: 1\r\n\r\n", c);
        hub_h1_head_t h;
        int rc = hub_h1_parse_request(s, (size_t)n, &h);
        if (want ? rc != 1 : rc == 1)
            fail_msg("byte 0x%02x in a header name: %d", c, rc);
    }
    /* CRs that start no end, and the end at every offset of a buffer. */
    char buf[96];
    for (size_t pad = 0; pad < 40; pad++) {
        size_t n = (size_t)snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nA: %.*s\r\r\n\r\n",
                                    (int)pad, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
        hub_h1_head_t h;
        assert_int_equal(hub_h1_parse_response(buf, n, &h), CN_EPROTO); /* the bare CR */
        n = (size_t)snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nA: %.*s\r\n\r\nzz", (int)pad,
                             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
        assert_int_equal(hub_h1_parse_response(buf, n, &h), 1);
        assert_int_equal(h.head_len, n - 2);
        for (size_t cut = 0; cut < n - 2; cut++) /* one byte short: not yet a head */
            assert_int_equal(hub_h1_parse_response(buf, cut, &h), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_head),
        cmocka_unit_test(test_request_incomplete_and_limits),
        cmocka_unit_test(test_request_malformed),
        cmocka_unit_test(test_request_framing),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_hop_by_hop),
        cmocka_unit_test(test_hop_by_hop_names),
        cmocka_unit_test(test_name_bytes_and_head_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
