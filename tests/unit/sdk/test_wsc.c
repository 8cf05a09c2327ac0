/* cn_wsc: the opening handshake is built exactly and checked strictly; frames
 * are masked and parsed per RFC 6455 whatever the split of the input; control
 * frames are answered; every protocol violation fails the parser for good. */
#include "cn_test.h"

#include "cn_buf.h"
#include "cn_err.h"
#include "cn_wsc.h"

#include <sys/wait.h>
#include <unistd.h>

/* RFC 6455 section 1.3: the key "dGhlIHNhbXBsZSBub25jZQ==" is base64 of these
 * 16 bytes, and its accept value is "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" (checked
 * against sha1sum: SHA-1 b37a4f2cc0624f1690f64606cf385945b2bec4ea). */
static const uint8_t rfc_key[16] = "the sample nonce";
#define RFC_KEY_B64 "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define OK_HEAD                                                                                    \
    "HTTP/1.1 101 Switching Protocols\r\n"                                                         \
    "Upgrade: websocket\r\n"                                                                       \
    "Connection: Upgrade\r\n"                                                                      \
    "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"                                                     \
    "Sec-WebSocket-Protocol: connect.v1\r\n"                                                       \
    "\r\n"

/* ---- helpers ---------------------------------------------------------- */

static cn_wsc_t *new_client(const char *subprotocol, uint64_t max_message)
{
    cn_wsc_config_t cfg = {.host = "hub.test",
                           .path = "/v1/agent",
                           .subprotocol = subprotocol,
                           .max_message = max_message};
    cn_wsc_t *ws = cn_wsc_new(&cfg, NULL, 0);
    assert_non_null(ws);
    assert_int_equal(cn_wsc_set_key_for_test(ws, rfc_key), 0);
    return ws;
}

/* Everything the parser reported, in a form that does not depend on how the
 * input was split: message bytes, message lengths, and the event order. */
struct rec {
    cn_buf_t msgs;
    size_t msg_lens[512];
    size_t n_msgs;
    size_t cur;
    bool in_msg;
    char order[1024]; /* O open, M message end, P ping, Q pong, C close */
    size_t n_order;
    uint8_t ping[125], pong[125];
    size_t ping_len, pong_len;
    uint16_t close_code;
    char reason[124];
    size_t reason_len;
    const uint8_t *in_lo, *in_hi; /* the buffer of the current feed call */
    int fail_on;                  /* event type the callback refuses, 0 none */
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    cn_buf_init(&r->msgs, 64u * 1024 * 1024, 0);
}

static void rec_free(struct rec *r)
{
    cn_buf_free(&r->msgs);
}

static void rec_mark(struct rec *r, char c)
{
    assert_true(r->n_order < sizeof(r->order) - 1);
    r->order[r->n_order++] = c;
}

static int rec_cb(void *user, const cn_wsc_event_t *ev)
{
    struct rec *r = user;
    if (r->fail_on == ev->type)
        return CN_EREFUSED;
    switch (ev->type) {
    case CN_WSC_EV_OPEN:
        rec_mark(r, 'O');
        break;
    case CN_WSC_EV_DATA:
        /* first exactly when no message is open; data is zero copy. */
        assert_int_equal(ev->first, !r->in_msg);
        if (ev->len) {
            assert_true(ev->data >= r->in_lo && ev->data + ev->len <= r->in_hi);
            assert_int_equal(cn_buf_append(&r->msgs, ev->data, ev->len), 0);
        }
        r->in_msg = true;
        r->cur += ev->len;
        if (ev->fin) {
            assert_true(r->n_msgs < 512);
            r->msg_lens[r->n_msgs++] = r->cur;
            r->cur = 0;
            r->in_msg = false;
            rec_mark(r, 'M');
        }
        break;
    case CN_WSC_EV_PING:
        memcpy(r->ping, ev->data, ev->len);
        r->ping_len = ev->len;
        rec_mark(r, 'P');
        break;
    case CN_WSC_EV_PONG:
        memcpy(r->pong, ev->data, ev->len);
        r->pong_len = ev->len;
        rec_mark(r, 'Q');
        break;
    case CN_WSC_EV_CLOSE:
        r->close_code = ev->close_code;
        memcpy(r->reason, ev->data, ev->len);
        r->reason_len = ev->len;
        rec_mark(r, 'C');
        break;
    default:
        fail();
    }
    return 0;
}

static int feed(cn_wsc_t *ws, const void *p, size_t n, struct rec *r)
{
    r->in_lo = p;
    r->in_hi = (const uint8_t *)p + n;
    return cn_wsc_feed(ws, p, n, rec_cb, r);
}

/* Feeds in pieces whose sizes come from a PRNG (1..max_piece). */
static int feed_split(cn_wsc_t *ws, const uint8_t *p, size_t n, struct rec *r, size_t max_piece,
                      uint64_t seed)
{
    uint64_t x = seed | 1;
    while (n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t k = 1 + (size_t)(x % max_piece);
        if (k > n)
            k = n;
        /* A private copy, so out-of-bounds slices would show up under ASan. */
        uint8_t *piece = malloc(k);
        assert_non_null(piece);
        memcpy(piece, p, k);
        int rc = feed(ws, piece, k, r);
        free(piece);
        if (rc)
            return rc;
        p += k;
        n -= k;
    }
    return 0;
}

/* An unmasked server frame with minimally encoded length. */
static void srv_frame(cn_buf_t *out, uint8_t b0, const uint8_t *payload, uint64_t len)
{
    uint8_t h[10];
    size_t n = 2;
    h[0] = b0;
    if (len < 126) {
        h[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        n = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    assert_int_equal(cn_buf_append(out, h, n), 0);
    assert_int_equal(cn_buf_append(out, payload, (size_t)len), 0);
}

static cn_wsc_t *open_client(struct rec *r, uint64_t max_message)
{
    cn_wsc_t *ws = new_client("connect.v1", max_message);
    assert_int_equal(feed(ws, OK_HEAD, strlen(OK_HEAD), r), 0);
    assert_int_equal(cn_wsc_state(ws), CN_WSC_OPEN);
    return ws;
}

/* Parses one client frame: FIN and MASK set; unmasks the payload into out. */
static size_t client_frame(const uint8_t *p, size_t n, int *op, uint8_t *out, size_t *out_len)
{
    assert_true(n >= 6);
    assert_true(p[0] & 0x80);
    assert_int_equal(p[0] & 0x70, 0);
    assert_true(p[1] & 0x80);
    *op = p[0] & 0x0f;
    uint64_t len = p[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
        len = (uint64_t)p[2] << 8 | p[3];
        h = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        h = 10;
    }
    const uint8_t *mask = p + h;
    h += 4;
    assert_true(n >= h + len);
    for (size_t i = 0; i < len; i++)
        out[i] = p[h + i] ^ mask[i & 3];
    *out_len = (size_t)len;
    return h + (size_t)len;
}

/* Takes all pending bytes and checks they are exactly one control frame. */
static void expect_one_pending(cn_wsc_t *ws, int want_op, const void *want, size_t want_len)
{
    uint8_t buf[CN_WSC_MAX_PENDING], body[CN_WSC_MAX_PENDING];
    size_t n = cn_wsc_take_pending(ws, buf, sizeof(buf));
    int op;
    size_t blen;
    assert_int_equal(client_frame(buf, n, &op, body, &blen), n);
    assert_int_equal(op, want_op);
    assert_int_equal(blen, want_len);
    if (want_len)
        assert_memory_equal(body, want, want_len);
    assert_int_equal(cn_wsc_pending_len(ws), 0);
}

static void expect_pending_close(cn_wsc_t *ws, uint16_t code)
{
    uint8_t want[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    expect_one_pending(ws, CN_WSC_OP_CLOSE, want, code ? 2 : 0);
}

/* ---- the request ------------------------------------------------------ */

static void test_request_format(void **state)
{
    const char *hdrs[] = {"Authorization: Bearer abc.def", "X-Agent-Version:  0.1.0"};
    cn_wsc_config_t cfg = {.host = "hub.test:8443",
                           .path = "/v1/agent?x=1",
                           .subprotocol = "connect.v1",
                           .headers = hdrs,
                           .n_headers = 2};
    cn_wsc_t *ws = cn_wsc_new(&cfg, NULL, 0);
    assert_non_null(ws);
    assert_int_equal(cn_wsc_set_key_for_test(ws, rfc_key), 0);
    size_t n;
    const uint8_t *req = cn_wsc_request(ws, &n);
    const char *want = "GET /v1/agent?x=1 HTTP/1.1\r\n"
                       "Host: hub.test:8443\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: " RFC_KEY_B64 "\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Protocol: connect.v1\r\n"
                       "Authorization: Bearer abc.def\r\n"
                       "X-Agent-Version:  0.1.0\r\n"
                       "\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(req, want, n);
    /* Nothing offers an extension. */
    assert_null(memmem(req, n, "Extensions", 10));
    cn_wsc_free(ws);

    /* Without a subprotocol the header is absent. */
    cn_wsc_config_t plain = {.host = "h", .path = "/"};
    ws = cn_wsc_new(&plain, NULL, 0);
    assert_non_null(ws);
    req = cn_wsc_request(ws, &n);
    assert_null(memmem(req, n, "Protocol", 8));
    cn_wsc_free(ws);
    cn_wsc_free(NULL);
}

static void test_request_key_is_random(void **state)
{
    cn_wsc_config_t cfg = {.host = "h", .path = "/"};
    char keys[2][25];
    for (int i = 0; i < 2; i++) {
        cn_wsc_t *ws = cn_wsc_new(&cfg, NULL, 0);
        assert_non_null(ws);
        size_t n;
        const char *req = (const char *)cn_wsc_request(ws, &n);
        const char *k = memmem(req, n, "Sec-WebSocket-Key: ", 19);
        assert_non_null(k);
        k += 19;
        memcpy(keys[i], k, 24);
        keys[i][24] = 0;
        assert_memory_equal(k + 24, "\r\n", 2);
        /* 16 bytes in base64: 22 characters and "==". */
        assert_memory_equal(keys[i] + 22, "==", 2);
        cn_wsc_free(ws);
    }
    assert_string_not_equal(keys[0], keys[1]);
}

static void test_config_rejected(void **state)
{
    static const struct {
        const char *host, *path, *sub, *hdr;
    } bad[] = {
        {NULL, "/", NULL, NULL},
        {"h", NULL, NULL, NULL},
        {"", "/", NULL, NULL},
        {"h h", "/", NULL, NULL},
        {"h\r\nX: y", "/", NULL, NULL},
        {"h", "v1", NULL, NULL},
        {"h", "/a b", NULL, NULL},
        {"h", "/a\r\nX: y", NULL, NULL},
        {"h", "/", "", NULL},
        {"h", "/", "connect.v1, other", NULL},
        {"h", "/", "connect v1", NULL},
        {"h", "/", NULL, "X-A: b\r\nX-C: d"},
        {"h", "/", NULL, "X-A: b\n"},
        {"h", "/", NULL, "X-A: b\r"},
        {"h", "/", NULL, "X-A: \x01"},
        {"h", "/", NULL, "X-A: \x7f"},
        {"h", "/", NULL, "no colon"},
        {"h", "/", NULL, ": empty name"},
        {"h", "/", NULL, "X A: b"},
        {"h", "/", NULL, "X-A : b"},
        {"h", "/", NULL, "Host: other"},
        {"h", "/", NULL, "upgrade: h2c"},
        {"h", "/", NULL, "Connection: close"},
        {"h", "/", NULL, "Content-Length: 5"},
        {"h", "/", NULL, "Transfer-Encoding: chunked"},
        {"h", "/", NULL, "Sec-WebSocket-Extensions: permessage-deflate"},
        {"h", "/", NULL, "sec-websocket-key: x"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *hdrs[1] = {bad[i].hdr};
        cn_wsc_config_t cfg = {.host = bad[i].host,
                               .path = bad[i].path,
                               .subprotocol = bad[i].sub,
                               .headers = bad[i].hdr ? hdrs : NULL,
                               .n_headers = bad[i].hdr ? 1 : 0};
        char err[128] = "";
        cn_wsc_t *ws = cn_wsc_new(&cfg, err, sizeof(err));
        if (ws)
            print_error("case %zu accepted\n", i);
        assert_null(ws);
        assert_string_equal(err, "WebSocket client: invalid argument or malformed input");
    }
    char err[128] = "";
    assert_null(cn_wsc_new(NULL, err, sizeof(err)));
    assert_string_equal(err, "WebSocket client: invalid argument or malformed input");

    /* A request over the bound. */
    char *big = malloc(CN_WSC_MAX_REQUEST + 1);
    assert_non_null(big);
    memcpy(big, "X-Big: ", 7);
    memset(big + 7, 'a', CN_WSC_MAX_REQUEST - 7);
    big[CN_WSC_MAX_REQUEST] = 0;
    const char *hdrs[1] = {big};
    cn_wsc_config_t cfg = {.host = "h", .path = "/", .headers = hdrs, .n_headers = 1};
    assert_null(cn_wsc_new(&cfg, err, sizeof(err)));
    assert_string_equal(err, "WebSocket client: length above limit");
    free(big);
}

/* ---- the response ----------------------------------------------------- */

static void test_accept_rfc_vector(void **state)
{
    struct rec r;
    rec_init(&r);
    cn_wsc_t *ws = new_client("connect.v1", 0);
    assert_int_equal(cn_wsc_state(ws), CN_WSC_CONNECTING);
    size_t n;
    const uint8_t *req = cn_wsc_request(ws, &n);
    assert_non_null(memmem(req, n, "Sec-WebSocket-Key: " RFC_KEY_B64 "\r\n", 45));
    assert_int_equal(feed(ws, OK_HEAD, strlen(OK_HEAD), &r), 0);
    assert_string_equal(r.order, "O");
    assert_int_equal(cn_wsc_state(ws), CN_WSC_OPEN);
    assert_int_equal(cn_wsc_http_status(ws), 101);
    /* The key can no longer change. */
    assert_int_equal(cn_wsc_set_key_for_test(ws, rfc_key), CN_ESTATE);
    cn_wsc_free(ws);
    rec_free(&r);
}

#define H101 "HTTP/1.1 101 Switching Protocols\r\n"
#define UPG "Upgrade: websocket\r\n"
#define CONN "Connection: Upgrade\r\n"
#define ACC "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
#define PROTO "Sec-WebSocket-Protocol: connect.v1\r\n"

static void test_good_response_variants(void **state)
{
    static const struct {
        const char *sub, *head;
    } good[] = {
        {"connect.v1", OK_HEAD},
        {NULL, H101 UPG CONN ACC "\r\n"},
        {"connect.v1", "HTTP/1.1 101\r\n" UPG CONN ACC PROTO "\r\n"},
        {"connect.v1", "HTTP/1.1 101 \r\n" UPG CONN ACC PROTO "\r\n"},
        {"connect.v1", H101 "UPGRADE: WebSocket\r\nconnection: upgrade\r\n"
                            "SEC-WEBSOCKET-ACCEPT: " RFC_ACCEPT "\r\n"
                            "sec-websocket-protocol: connect.v1\r\n\r\n"},
        {"connect.v1", H101 "Upgrade:websocket\r\nConnection:\tkeep-alive , Upgrade \r\n"
                            "Sec-WebSocket-Accept:   " RFC_ACCEPT "  \r\n" PROTO "\r\n"},
        {"connect.v1", H101 "Connection: keep-alive\r\nConnection: Upgrade\r\n" UPG ACC PROTO
                            "Server: test\r\nDate: Mon, 23 Nov 2026 14:00:00 GMT\r\n"
                            "X-Empty:\r\n\r\n"},
        {"connect.v1", H101 UPG "Connection: ,,upgrade,\r\n" ACC PROTO "\r\n"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct rec r;
        rec_init(&r);
        cn_wsc_t *ws = new_client(good[i].sub, 0);
        int rc = feed(ws, good[i].head, strlen(good[i].head), &r);
        if (rc)
            print_error("case %zu: %s\n", i, cn_wsc_error_detail(ws));
        assert_int_equal(rc, 0);
        assert_int_equal(cn_wsc_state(ws), CN_WSC_OPEN);
        assert_string_equal(r.order, "O");
        cn_wsc_free(ws);
        rec_free(&r);
    }
}

static void test_bad_responses_rejected(void **state)
{
    static const struct {
        const char *what, *sub, *head;
        int err, status;
    } bad[] = {
        {"200", "connect.v1", "HTTP/1.1 200 OK\r\n" UPG CONN ACC PROTO "\r\n", CN_EREFUSED, 200},
        {"403", "connect.v1", "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", CN_EREFUSED,
         403},
        {"426", NULL, "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n",
         CN_EREFUSED, 426},
        {"HTTP/1.0", "connect.v1", "HTTP/1.0 101 Switching\r\n" UPG CONN ACC PROTO "\r\n",
         CN_EPROTO, 101},
        {"HTTP/2", "connect.v1", "HTTP/2.0 101 Switching\r\n" UPG CONN ACC PROTO "\r\n", CN_EPROTO,
         101},
        {"not http", "connect.v1", "HTTX/1.1 101 Switching\r\n" UPG CONN ACC PROTO "\r\n",
         CN_EPROTO, 0},
        {"4-digit status", "connect.v1", "HTTP/1.1 1010 X\r\n" UPG CONN ACC PROTO "\r\n", CN_EPROTO,
         0},
        {"short status", "connect.v1", "HTTP/1.1 10\r\n" UPG CONN ACC PROTO "\r\n", CN_EPROTO, 0},
        {"status letters", "connect.v1", "HTTP/1.1 1O1 X\r\n" UPG CONN ACC PROTO "\r\n", CN_EPROTO,
         0},
        {"two spaces", "connect.v1", "HTTP/1.1  101 X\r\n" UPG CONN ACC PROTO "\r\n", CN_EPROTO, 0},
        {"leading CRLF", "connect.v1", "\r\n" H101 UPG CONN ACC PROTO "\r\n", CN_EPROTO, 0},
        {"no Upgrade", "connect.v1", H101 CONN ACC PROTO "\r\n", CN_EPROTO, 101},
        {"Upgrade h2c", "connect.v1", H101 "Upgrade: h2c\r\n" CONN ACC PROTO "\r\n", CN_EPROTO,
         101},
        {"Upgrade list", "connect.v1", H101 "Upgrade: websocket, h2c\r\n" CONN ACC PROTO "\r\n",
         CN_EPROTO, 101},
        {"two Upgrades", "connect.v1", H101 UPG UPG CONN ACC PROTO "\r\n", CN_EPROTO, 101},
        {"no Connection", "connect.v1", H101 UPG ACC PROTO "\r\n", CN_EPROTO, 101},
        {"Connection close", "connect.v1", H101 UPG "Connection: close\r\n" ACC PROTO "\r\n",
         CN_EPROTO, 101},
        {"Connection upgrades", "connect.v1", H101 UPG "Connection: upgrades\r\n" ACC PROTO "\r\n",
         CN_EPROTO, 101},
        {"Connection quoted", "connect.v1", H101 UPG "Connection: \"upgrade\"\r\n" ACC PROTO "\r\n",
         CN_EPROTO, 101},
        {"no Accept", "connect.v1", H101 UPG CONN PROTO "\r\n", CN_EPROTO, 101},
        {"wrong Accept", "connect.v1",
         H101 UPG CONN "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOp=\r\n" PROTO "\r\n",
         CN_EPROTO, 101},
        {"Accept case", "connect.v1",
         H101 UPG CONN "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n" PROTO "\r\n",
         CN_EPROTO, 101},
        {"Accept of the key itself", "connect.v1",
         H101 UPG CONN "Sec-WebSocket-Accept: " RFC_KEY_B64 "\r\n" PROTO "\r\n", CN_EPROTO, 101},
        {"two Accepts", "connect.v1", H101 UPG CONN ACC ACC PROTO "\r\n", CN_EPROTO, 101},
        {"Accept truncated", "connect.v1",
         H101 UPG CONN "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n" PROTO "\r\n",
         CN_EPROTO, 101},
        {"deflate", "connect.v1",
         H101 UPG CONN ACC PROTO "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", CN_EPROTO,
         101},
        {"empty extensions", "connect.v1",
         H101 UPG CONN ACC PROTO "sec-websocket-extensions:\r\n\r\n", CN_EPROTO, 101},
        {"no subprotocol", "connect.v1", H101 UPG CONN ACC "\r\n", CN_EPROTO, 101},
        {"wrong subprotocol", "connect.v1",
         H101 UPG CONN ACC "Sec-WebSocket-Protocol: connect.v2\r\n\r\n", CN_EPROTO, 101},
        {"subprotocol case", "connect.v1",
         H101 UPG CONN ACC "Sec-WebSocket-Protocol: Connect.V1\r\n\r\n", CN_EPROTO, 101},
        {"subprotocol list", "connect.v1",
         H101 UPG CONN ACC "Sec-WebSocket-Protocol: connect.v1, x\r\n\r\n", CN_EPROTO, 101},
        {"two subprotocols", "connect.v1", H101 UPG CONN ACC PROTO PROTO "\r\n", CN_EPROTO, 101},
        {"unrequested subprotocol", NULL, H101 UPG CONN ACC PROTO "\r\n", CN_EPROTO, 101},
        {"no colon", "connect.v1", H101 UPG CONN ACC PROTO "Bogus\r\n\r\n", CN_EPROTO, 101},
        {"space before colon", "connect.v1", H101 "Upgrade : websocket\r\n" CONN ACC PROTO "\r\n",
         CN_EPROTO, 101},
        {"obs-fold", "connect.v1", H101 UPG CONN ACC PROTO "X-A: b\r\n c\r\n\r\n", CN_EPROTO, 101},
        {"bare LF", "connect.v1", H101 UPG "X-A: b\nConnection: Upgrade\r\n" ACC PROTO "\r\n",
         CN_EPROTO, 101},
        {"bare CR", "connect.v1", H101 UPG "X-A: b\rc\r\n" CONN ACC PROTO "\r\n", CN_EPROTO, 101},
        {"control in value", "connect.v1", H101 UPG "X-A: b\x01\r\n" CONN ACC PROTO "\r\n",
         CN_EPROTO, 101},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rec r;
        rec_init(&r);
        cn_wsc_t *ws = new_client(bad[i].sub, 0);
        int rc = feed(ws, bad[i].head, strlen(bad[i].head), &r);
        if (rc != bad[i].err)
            print_error("case '%s': rc %d (%s)\n", bad[i].what, rc, cn_wsc_error_detail(ws));
        assert_int_equal(rc, bad[i].err);
        assert_int_equal(cn_wsc_http_status(ws), bad[i].status);
        assert_int_equal(cn_wsc_state(ws), CN_WSC_FAILED);
        assert_string_not_equal(cn_wsc_error_detail(ws), "no error");
        assert_int_equal(r.n_order, 0);
        /* Failed for good, and nothing to send. */
        assert_int_equal(feed(ws, OK_HEAD, strlen(OK_HEAD), &r), bad[i].err);
        assert_int_equal(r.n_order, 0);
        assert_int_equal(cn_wsc_pending_len(ws), 0);
        assert_int_equal(cn_wsc_ping(ws, NULL, 0), CN_ESTATE);
        assert_int_equal(cn_wsc_close(ws, 1000, NULL, 0), CN_ESTATE);
        cn_wsc_free(ws);
        rec_free(&r);
    }
}

/* Builds a valid head padded with an X-Pad header to exactly `total` bytes. */
static char *padded_head(size_t total)
{
    const char *pre = H101 UPG CONN ACC PROTO "X-Pad: ";
    size_t fixed = strlen(pre) + 4; /* "\r\n\r\n" */
    assert_true(total > fixed);
    char *h = malloc(total + 1);
    assert_non_null(h);
    strcpy(h, pre);
    memset(h + strlen(pre), 'p', total - fixed);
    strcpy(h + strlen(pre) + total - fixed, "\r\n\r\n");
    assert_int_equal(strlen(h), total);
    return h;
}

static void test_head_size_limit(void **state)
{
    /* Exactly at the limit passes, one byte more fails, in any split. */
    for (int over = 0; over <= 1; over++) {
        char *h = padded_head(CN_WSC_MAX_RESPONSE_HEAD + (size_t)over);
        for (size_t piece = 1; piece <= 4096; piece *= 8) {
            struct rec r;
            rec_init(&r);
            cn_wsc_t *ws = new_client("connect.v1", 0);
            int rc = feed_split(ws, (const uint8_t *)h, strlen(h), &r, piece, piece);
            assert_int_equal(rc, over ? CN_ETOOBIG : 0);
            assert_int_equal(cn_wsc_state(ws), over ? CN_WSC_FAILED : CN_WSC_OPEN);
            cn_wsc_free(ws);
            rec_free(&r);
        }
        free(h);
    }
    /* A server that never ends its head. */
    struct rec r;
    rec_init(&r);
    cn_wsc_t *ws = new_client("connect.v1", 0);
    uint8_t junk[1000];
    memset(junk, 'a', sizeof(junk));
    int rc = 0;
    for (int i = 0; i < 20 && rc == 0; i++)
        rc = feed(ws, junk, sizeof(junk), &r);
    assert_int_equal(rc, CN_ETOOBIG);
    cn_wsc_free(ws);
    rec_free(&r);
}

/* The response, a message and a ping arrive in one read. */
static void build_head_and_frames(cn_buf_t *b)
{
    uint8_t payload[300];
    cn_test_fill(payload, sizeof(payload), 7);
    cn_buf_init(b, 1 << 20, 0);
    assert_int_equal(cn_buf_append(b, OK_HEAD, strlen(OK_HEAD)), 0);
    srv_frame(b, 0x82, payload, sizeof(payload));
    srv_frame(b, 0x89, (const uint8_t *)"hi", 2);
    srv_frame(b, 0x02, payload, 10);
    srv_frame(b, 0x80, payload + 10, 5);
}

static void check_head_and_frames(cn_wsc_t *ws, struct rec *r)
{
    uint8_t payload[300];
    cn_test_fill(payload, sizeof(payload), 7);
    assert_string_equal(r->order, "OMPM");
    assert_int_equal(r->n_msgs, 2);
    assert_int_equal(r->msg_lens[0], 300);
    assert_int_equal(r->msg_lens[1], 15);
    assert_memory_equal(cn_buf_data(&r->msgs), payload, 300);
    assert_memory_equal(cn_buf_data(&r->msgs) + 300, payload, 15);
    expect_one_pending(ws, CN_WSC_OP_PONG, "hi", 2);
}

static void test_response_and_frames_in_one_chunk(void **state)
{
    cn_buf_t b;
    build_head_and_frames(&b);
    struct rec r;
    rec_init(&r);
    cn_wsc_t *ws = new_client("connect.v1", 0);
    assert_int_equal(feed(ws, cn_buf_data(&b), b.len, &r), 0);
    check_head_and_frames(ws, &r);
    cn_wsc_free(ws);
    rec_free(&r);
    cn_buf_free(&b);
}

static void test_split_at_every_position(void **state)
{
    cn_buf_t b;
    build_head_and_frames(&b);
    for (size_t cut = 0; cut <= b.len; cut++) {
        struct rec r;
        rec_init(&r);
        cn_wsc_t *ws = new_client("connect.v1", 0);
        uint8_t *a = malloc(cut + 1), *z = malloc(b.len - cut + 1);
        assert_non_null(a);
        assert_non_null(z);
        memcpy(a, cn_buf_data(&b), cut);
        memcpy(z, cn_buf_data(&b) + cut, b.len - cut);
        assert_int_equal(feed(ws, a, cut, &r), 0);
        assert_int_equal(cn_wsc_state(ws),
                         cut >= strlen(OK_HEAD) ? CN_WSC_OPEN : CN_WSC_CONNECTING);
        assert_int_equal(feed(ws, z, b.len - cut, &r), 0);
        check_head_and_frames(ws, &r);
        free(a);
        free(z);
        cn_wsc_free(ws);
        rec_free(&r);
    }
    /* And one byte at a time. */
    struct rec r;
    rec_init(&r);
    cn_wsc_t *ws = new_client("connect.v1", 0);
    assert_int_equal(feed_split(ws, cn_buf_data(&b), b.len, &r, 1, 1), 0);
    check_head_and_frames(ws, &r);
    cn_wsc_free(ws);
    rec_free(&r);
    cn_buf_free(&b);
}

/* ---- frames ----------------------------------------------------------- */

static void test_frame_header_encoding(void **state)
{
    const uint8_t mask[4] = {0xa1, 0xb2, 0xc3, 0xd4};
    uint8_t h[CN_WSC_MAX_HEADER];
    static const struct {
        uint64_t len;
        size_t n;
        uint8_t bytes[10];
    } v[] = {
        {0, 2, {0x82, 0x80}},
        {1, 2, {0x82, 0x81}},
        {125, 2, {0x82, 0xfd}},
        {126, 4, {0x82, 0xfe, 0x00, 0x7e}},
        {65535, 4, {0x82, 0xfe, 0xff, 0xff}},
        {65536, 10, {0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0}},
        {0x123456789aull, 10, {0x82, 0xff, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a}},
        {0x7fffffffffffffffull, 10, {0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = cn_wsc_frame_header(h, CN_WSC_OP_BINARY, v[i].len, mask);
        assert_int_equal(n, v[i].n + 4);
        assert_memory_equal(h, v[i].bytes, v[i].n);
        assert_memory_equal(h + v[i].n, mask, 4);
    }
    assert_int_equal(cn_wsc_frame_header(h, CN_WSC_OP_PING, 125, mask), 6);
    assert_int_equal(h[0], 0x89);
    assert_int_equal(cn_wsc_frame_header(h, CN_WSC_OP_PONG, 0, mask), 6);
    assert_int_equal(h[0], 0x8a);
    assert_int_equal(cn_wsc_frame_header(h, CN_WSC_OP_CLOSE, 2, mask), 6);
    assert_int_equal(h[0], 0x88);
    /* Refused: top length bit, long control frames, opcodes we never send. */
    assert_int_equal(cn_wsc_frame_header(h, CN_WSC_OP_BINARY, 1ull << 63, mask), 0);
    assert_int_equal(cn_wsc_frame_header(h, CN_WSC_OP_PING, 126, mask), 0);
    assert_int_equal(cn_wsc_frame_header(h, CN_WSC_OP_CLOSE, 126, mask), 0);
    assert_int_equal(cn_wsc_frame_header(h, CN_WSC_OP_TEXT, 1, mask), 0);
    assert_int_equal(cn_wsc_frame_header(h, CN_WSC_OP_CONT, 1, mask), 0);
    assert_int_equal(cn_wsc_frame_header(h, 3, 1, mask), 0);
    assert_int_equal(cn_wsc_frame_header(h, 0xb, 1, mask), 0);
    assert_int_equal(cn_wsc_frame_header(h, 16, 1, mask), 0);
}

static void naive_mask(uint8_t *p, size_t len, const uint8_t mask[4], size_t offset)
{
    for (size_t i = 0; i < len; i++)
        p[i] ^= mask[(offset + i) % 4];
}

static void test_mask_pieces_match_reference(void **state)
{
    const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    enum { N = 200 };
    uint8_t src[N + 8], want[N], got[N + 8];
    cn_test_fill(src, sizeof(src), 11);
    for (size_t len = 0; len <= N; len += (len < 80 ? 1 : 17)) {
        for (size_t off = 0; off < 8; off++) {
            /* Whole payload at every starting offset and alignment. */
            for (size_t align = 0; align < 8; align++) {
                memcpy(want, src, len);
                naive_mask(want, len, mask, off);
                memcpy(got + align, src, len);
                cn_wsc_mask(got + align, len, mask, off);
                assert_memory_equal(got + align, want, len);
            }
            /* Two pieces split at every position. */
            memcpy(want, src, len);
            naive_mask(want, len, mask, off);
            for (size_t cut = 0; cut <= len; cut++) {
                memcpy(got, src, len);
                cn_wsc_mask(got, cut, mask, off);
                cn_wsc_mask(got + cut, len - cut, mask, off + cut);
                assert_memory_equal(got, want, len);
            }
        }
    }
    /* Many pieces of pseudo-random sizes over a large payload; unmasking is
     * the same call. */
    size_t big = (1u << 20) + 3;
    uint8_t *a = malloc(big), *b = malloc(big);
    assert_non_null(a);
    assert_non_null(b);
    cn_test_fill(a, big, 12);
    memcpy(b, a, big);
    naive_mask(a, big, mask, 0);
    uint64_t x = 99;
    for (size_t done = 0; done < big;) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t k = (size_t)(x >> 33) % 70000 + 1;
        if (k > big - done)
            k = big - done;
        cn_wsc_mask(b + done, k, mask, done);
        done += k;
    }
    assert_memory_equal(a, b, big);
    cn_wsc_mask(b, big, mask, 0);
    naive_mask(a, big, mask, 0);
    assert_memory_equal(a, b, big);
    free(a);
    free(b);
}

static void test_wrap_writes_header_before_payload(void **state)
{
    static const size_t lens[] = {0, 1, 125, 126, 65535, 65536, 100000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t len = lens[i];
        uint8_t *buf = malloc(CN_WSC_MAX_HEADER + len + 1);
        uint8_t *orig = malloc(len + 1);
        uint8_t *back = malloc(len + 1);
        assert_non_null(buf);
        assert_non_null(orig);
        assert_non_null(back);
        cn_test_fill(orig, len, 20 + i);
        memcpy(buf + CN_WSC_MAX_HEADER, orig, len);
        uint8_t *frame = NULL;
        size_t flen = 0;
        assert_int_equal(cn_wsc_wrap(buf + CN_WSC_MAX_HEADER, len, CN_WSC_MAX_HEADER,
                                     CN_WSC_OP_BINARY, &frame, &flen),
                         0);
        size_t hl = len < 126 ? 6 : len <= 0xffff ? 8 : 14;
        assert_ptr_equal(frame, buf + CN_WSC_MAX_HEADER - hl);
        assert_int_equal(flen, hl + len);
        int op;
        size_t blen;
        assert_int_equal(client_frame(frame, flen, &op, back, &blen), flen);
        assert_int_equal(op, CN_WSC_OP_BINARY);
        assert_int_equal(blen, len);
        assert_memory_equal(back, orig, len);

        /* Headroom of exactly the header size is enough; less is refused and
         * leaves the buffer alone. */
        memcpy(buf + CN_WSC_MAX_HEADER, orig, len);
        assert_int_equal(
            cn_wsc_wrap(buf + CN_WSC_MAX_HEADER, len, hl, CN_WSC_OP_BINARY, &frame, &flen), 0);
        memcpy(buf + CN_WSC_MAX_HEADER, orig, len);
        assert_int_equal(
            cn_wsc_wrap(buf + CN_WSC_MAX_HEADER, len, hl - 1, CN_WSC_OP_BINARY, &frame, &flen),
            CN_EINVAL);
        assert_memory_equal(buf + CN_WSC_MAX_HEADER, orig, len);
        free(buf);
        free(orig);
        free(back);
    }
    uint8_t buf[20], *frame;
    size_t flen;
    assert_int_equal(cn_wsc_wrap(buf + 14, 1, 14, CN_WSC_OP_TEXT, &frame, &flen), CN_EINVAL);
    /* Two frames of the same payload use different masks. */
    uint8_t f1[20] = {0}, f2[20] = {0};
    assert_int_equal(cn_wsc_wrap(f1 + 14, 4, 14, CN_WSC_OP_BINARY, &frame, &flen), 0);
    assert_int_equal(cn_wsc_wrap(f2 + 14, 4, 14, CN_WSC_OP_BINARY, &frame, &flen), 0);
    assert_memory_not_equal(f1 + 10, f2 + 10, 8);
}

/* The mask of an empty binary frame from cn_wsc_wrap(). */
static void wrap_mask(uint8_t mask[4])
{
    uint8_t buf[CN_WSC_MAX_HEADER], *frame;
    size_t flen;
    assert_int_equal(
        cn_wsc_wrap(buf + CN_WSC_MAX_HEADER, 0, CN_WSC_MAX_HEADER, CN_WSC_OP_BINARY, &frame, &flen),
        0);
    assert_int_equal(flen, 6);
    memcpy(mask, frame + 2, 4);
}

/* Masks are drawn from the CSPRNG in batches of 256 per thread: every batch
 * is new (a pool that wrapped around instead of refilling would resend the
 * same 256 masks), masks within a batch are distinct, and a forked child
 * does not send the masks its parent is about to use. */
static void test_masks_fresh_across_batches_and_fork(void **state)
{
    enum { BATCH = 256, ROUNDS = 4 };
    static uint8_t m[ROUNDS * BATCH][4];
    for (size_t i = 0; i < ROUNDS * BATCH; i++)
        wrap_mask(m[i]);
    /* A pool that wrapped around instead of refilling makes the sequence
     * periodic: windows one batch apart would match, whatever its phase. */
    for (size_t r = 1; r < ROUNDS; r++)
        assert_memory_not_equal(m[(r - 1) * BATCH], m[r * BATCH], sizeof(m[0]) * BATCH);
    /* 1,024 draws of 32 random bits: a repeat has odds ~1e-4 per run, so
     * allow a couple; a broken pool (reused or constant) repeats hundreds. */
    size_t repeats = 0;
    for (size_t i = 0; i < ROUNDS * BATCH; i++)
        for (size_t j = i + 1; j < ROUNDS * BATCH; j++)
            repeats += memcmp(m[i], m[j], 4) == 0;
    assert_true(repeats <= 2);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint8_t child[4];
        wrap_mask(child);
        _exit(write(fds[1], child, 4) == 4 ? 0 : 1);
    }
    uint8_t parent[4], child[4];
    wrap_mask(parent);
    assert_int_equal(read(fds[0], child, 4), 4);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fds[0]);
    close(fds[1]);
    assert_memory_not_equal(parent, child, 4);
}

static void test_pong_and_close_frames(void **state)
{
    uint8_t f[CN_WSC_MAX_CONTROL], body[CN_WSC_MAX_CONTROL], ping[126];
    int op;
    size_t blen;
    cn_test_fill(ping, sizeof(ping), 3);
    size_t n = cn_wsc_pong_frame(f, ping, 125);
    assert_int_equal(n, CN_WSC_MAX_CONTROL);
    assert_int_equal(client_frame(f, n, &op, body, &blen), n);
    assert_int_equal(op, CN_WSC_OP_PONG);
    assert_int_equal(blen, 125);
    assert_memory_equal(body, ping, 125);
    assert_int_equal(cn_wsc_pong_frame(f, ping, 126), 0);
    n = cn_wsc_pong_frame(f, NULL, 0);
    assert_int_equal(n, 6);

    char reason[124];
    memset(reason, 'r', sizeof(reason));
    n = cn_wsc_close_frame(f, 1000, reason, 123);
    assert_int_equal(n, CN_WSC_MAX_CONTROL);
    assert_int_equal(client_frame(f, n, &op, body, &blen), n);
    assert_int_equal(op, CN_WSC_OP_CLOSE);
    assert_int_equal(blen, 125);
    assert_int_equal(body[0], 0x03);
    assert_int_equal(body[1], 0xe8);
    assert_memory_equal(body + 2, reason, 123);
    assert_int_equal(cn_wsc_close_frame(f, 1000, reason, 124), 0);
    n = cn_wsc_close_frame(f, 4321, "\xc3\xa9t\xc3\xa9", 6);
    assert_int_equal(client_frame(f, n, &op, body, &blen), n);
    assert_int_equal(blen, 8);
    n = cn_wsc_close_frame(f, 0, NULL, 0);
    assert_int_equal(client_frame(f, n, &op, body, &blen), n);
    assert_int_equal(blen, 0);
    assert_int_equal(cn_wsc_close_frame(f, 0, "x", 1), 0);
    static const uint16_t bad_codes[] = {1, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(bad_codes) / sizeof(bad_codes[0]); i++)
        assert_int_equal(cn_wsc_close_frame(f, bad_codes[i], NULL, 0), 0);
    static const char *bad_utf8[] = {
        "\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc3", "\x80"};
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++)
        assert_int_equal(cn_wsc_close_frame(f, 1000, bad_utf8[i], strlen(bad_utf8[i])), 0);
}

static void test_lengths_7_16_64(void **state)
{
    static const size_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 200000};
    size_t total = 0;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        total += lens[i];
    uint8_t *payload = malloc(total);
    assert_non_null(payload);
    cn_test_fill(payload, total, 5);
    cn_buf_t b;
    cn_buf_init(&b, 1 << 22, 0);
    size_t off = 0;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        srv_frame(&b, 0x82, payload + off, lens[i]);
        off += lens[i];
    }
    static const size_t pieces[] = {1u << 22, 4096, 7, 1};
    for (size_t s = 0; s < sizeof(pieces) / sizeof(pieces[0]); s++) {
        struct rec r;
        rec_init(&r);
        cn_wsc_t *ws = open_client(&r, 0);
        assert_int_equal(feed_split(ws, cn_buf_data(&b), b.len, &r, pieces[s], s + 1), 0);
        assert_int_equal(r.n_msgs, sizeof(lens) / sizeof(lens[0]));
        for (size_t i = 0; i < r.n_msgs; i++)
            assert_int_equal(r.msg_lens[i], lens[i]);
        assert_int_equal(r.msgs.len, total);
        assert_memory_equal(cn_buf_data(&r.msgs), payload, total);
        cn_wsc_free(ws);
        rec_free(&r);
    }
    cn_buf_free(&b);
    free(payload);
}

/* A stream of messages (some fragmented, some fragments empty) with pings and
 * pongs between frames, and the transcript it should produce. */
static void random_stream(cn_buf_t *b, struct rec *want, uint64_t seed)
{
    uint64_t x = seed;
    uint8_t *chunk = malloc(70000);
    assert_non_null(chunk);
    cn_buf_init(b, 1 << 24, 0);
    rec_init(want);
    rec_mark(want, 'O');
    for (int m = 0; m < 60; m++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int frags = 1 + (int)((x >> 40) % 4);
        size_t msg_len = 0;
        for (int f = 0; f < frags; f++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            unsigned pick = (unsigned)(x >> 56);
            size_t len = pick < 20 ? 0 : pick < 240 ? (x >> 20) % 300 : (x >> 20) % 70000;
            cn_test_fill(chunk, len, x);
            uint8_t b0 = (uint8_t)((f == 0 ? 0x02 : 0x00) | (f == frags - 1 ? 0x80 : 0));
            srv_frame(b, b0, chunk, len);
            assert_int_equal(cn_buf_append(&want->msgs, chunk, len), 0);
            msg_len += len;
            if (f == frags - 1) {
                want->msg_lens[want->n_msgs++] = msg_len;
                rec_mark(want, 'M');
            }
            if ((x >> 8) % 5 == 0) {
                uint8_t pp[125];
                size_t plen = (x >> 12) % 126;
                cn_test_fill(pp, plen, x + 1);
                bool ping = (x >> 30) & 1;
                srv_frame(b, ping ? 0x89 : 0x8a, pp, plen);
                rec_mark(want, ping ? 'P' : 'Q');
            }
        }
    }
    free(chunk);
}

static void test_bytewise_equals_oneshot(void **state)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        cn_buf_t b;
        struct rec want;
        random_stream(&b, &want, seed);
        static const size_t pieces[] = {(size_t)1 << 30, 1, 3, 1000, 65536};
        for (size_t s = 0; s < sizeof(pieces) / sizeof(pieces[0]); s++) {
            struct rec r;
            rec_init(&r);
            cn_wsc_t *ws = open_client(&r, 0);
            uint8_t pend[CN_WSC_MAX_PENDING];
            /* The glue drains pending after each read; here after the whole
             * stream (the pong slot just keeps the latest ping's answer). */
            assert_int_equal(feed_split(ws, cn_buf_data(&b), b.len, &r, pieces[s], seed * 7 + s),
                             0);
            assert_string_equal(r.order, want.order);
            assert_int_equal(r.n_msgs, want.n_msgs);
            assert_memory_equal(r.msg_lens, want.msg_lens, want.n_msgs * sizeof(size_t));
            assert_int_equal(r.msgs.len, want.msgs.len);
            assert_memory_equal(cn_buf_data(&r.msgs), cn_buf_data(&want.msgs), want.msgs.len);
            assert_true(cn_wsc_take_pending(ws, pend, sizeof(pend)) <= CN_WSC_MAX_CONTROL);
            cn_wsc_free(ws);
            rec_free(&r);
        }
        cn_buf_free(&b);
        rec_free(&want);
    }
}

/* ---- control frames ----------------------------------------------------- */

static void test_ping_queues_pong(void **state)
{
    struct rec r;
    rec_init(&r);
    cn_wsc_t *ws = open_client(&r, 0);
    cn_buf_t b;
    cn_buf_init(&b, 4096, 0);
    srv_frame(&b, 0x89, (const uint8_t *)"one", 3);
    assert_int_equal(feed(ws, cn_buf_data(&b), b.len, &r), 0);
    assert_int_equal(r.ping_len, 3);
    assert_memory_equal(r.ping, "one", 3);
    assert_int_equal(cn_wsc_pending_len(ws), 6 + 3);
    expect_one_pending(ws, CN_WSC_OP_PONG, "one", 3);

    /* Two pings before the glue writes: only the latest is answered. */
    cn_buf_reset(&b);
    srv_frame(&b, 0x89, (const uint8_t *)"first", 5);
    srv_frame(&b, 0x89, (const uint8_t *)"second", 6);
    assert_int_equal(feed(ws, cn_buf_data(&b), b.len, &r), 0);
    expect_one_pending(ws, CN_WSC_OP_PONG, "second", 6);

    /* An empty ping, and a 125-byte one. */
    uint8_t big[125];
    cn_test_fill(big, sizeof(big), 4);
    cn_buf_reset(&b);
    srv_frame(&b, 0x89, NULL, 0);
    assert_int_equal(feed(ws, cn_buf_data(&b), b.len, &r), 0);
    expect_one_pending(ws, CN_WSC_OP_PONG, NULL, 0);
    cn_buf_reset(&b);
    srv_frame(&b, 0x89, big, 125);
    assert_int_equal(feed(ws, cn_buf_data(&b), b.len, &r), 0);
    expect_one_pending(ws, CN_WSC_OP_PONG, big, 125);

    /* Pongs are reported and need no answer. */
    cn_buf_reset(&b);
    srv_frame(&b, 0x8a, (const uint8_t *)"pong", 4);
    assert_int_equal(feed(ws, cn_buf_data(&b), b.len, &r), 0);
    assert_int_equal(r.pong_len, 4);
    assert_memory_equal(r.pong, "pong", 4);
    assert_int_equal(cn_wsc_pending_len(ws), 0);
    assert_string_equal(r.order, "OPPPPPQ");

    /* Control frames between the fragments of a message. */
    cn_buf_reset(&b);
    srv_frame(&b, 0x02, (const uint8_t *)"ab", 2);
    srv_frame(&b, 0x89, (const uint8_t *)"x", 1);
    srv_frame(&b, 0x00, (const uint8_t *)"cd", 2);
    srv_frame(&b, 0x8a, (const uint8_t *)"y", 1);
    srv_frame(&b, 0x80, (const uint8_t *)"e", 1);
    assert_int_equal(feed(ws, cn_buf_data(&b), b.len, &r), 0);
    assert_string_equal(r.order, "OPPPPPQPQM");
    assert_int_equal(r.msg_lens[0], 5);
    assert_memory_equal(cn_buf_data(&r.msgs), "abcde", 5);
    expect_one_pending(ws, CN_WSC_OP_PONG, "x", 1);
    cn_buf_free(&b);
    cn_wsc_free(ws);
    rec_free(&r);
}

static void test_our_ping(void **state)
{
    struct rec r;
    rec_init(&r);
    cn_wsc_t *ws = new_client("connect.v1", 0);
    assert_int_equal(cn_wsc_ping(ws, NULL, 0), CN_ESTATE);
    assert_int_equal(feed(ws, OK_HEAD, strlen(OK_HEAD), &r), 0);
    assert_int_equal(cn_wsc_ping(ws, (const uint8_t *)"ka", 2), 0);
    assert_int_equal(cn_wsc_ping(ws, (const uint8_t *)"kb", 2), CN_EAGAIN);
    uint8_t big[126] = {0};
    assert_int_equal(cn_wsc_ping(ws, big, 126), CN_EINVAL);
    expect_one_pending(ws, CN_WSC_OP_PING, "ka", 2);
    assert_int_equal(cn_wsc_ping(ws, big, 125), 0);

    /* Pending frames come out whole, oldest first, and only if they fit. */
    cn_buf_t b;
    cn_buf_init(&b, 4096, 0);
    srv_frame(&b, 0x89, (const uint8_t *)"p", 1);
    assert_int_equal(feed(ws, cn_buf_data(&b), b.len, &r), 0);
    assert_int_equal(cn_wsc_pending_len(ws), 131 + 7);
    uint8_t out[CN_WSC_MAX_PENDING], body[200];
    assert_int_equal(cn_wsc_take_pending(ws, out, 130), 0);
    assert_int_equal(cn_wsc_take_pending(ws, out, 137), 131);
    int op;
    size_t blen;
    assert_int_equal(client_frame(out, 131, &op, body, &blen), 131);
    assert_int_equal(op, CN_WSC_OP_PING);
    expect_one_pending(ws, CN_WSC_OP_PONG, "p", 1);
    cn_buf_free(&b);
    cn_wsc_free(ws);
    rec_free(&r);
}

static void test_server_close(void **state)
{
    static const struct {
        const char *body;
        size_t len;
        uint16_t code;
        const char *reason;
    } ok[] = {
        {"", 0, 1005, ""},
        {"\x03\xe8", 2, 1000, ""},
        {"\003\350bye", 5, 1000, "bye"},
        {"\003\351going", 7, 1001, "going"},
        {"\017\240\303\251", 4, 4000, "\xc3\xa9"},
        {"\x03\xf3", 2, 1011, ""},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct rec r;
        rec_init(&r);
        cn_wsc_t *ws = open_client(&r, 0);
        cn_buf_t b;
        cn_buf_init(&b, 4096, 0);
        srv_frame(&b, 0x88, (const uint8_t *)ok[i].body, ok[i].len);
        /* Whatever follows the close is discarded, even garbage. */
        assert_int_equal(cn_buf_append(&b, "\xff\xff\xff", 3), 0);
        assert_int_equal(feed(ws, cn_buf_data(&b), b.len, &r), 0);
        assert_string_equal(r.order, "OC");
        assert_int_equal(r.close_code, ok[i].code);
        assert_int_equal(r.reason_len, strlen(ok[i].reason));
        assert_memory_equal(r.reason, ok[i].reason, r.reason_len);
        assert_int_equal(cn_wsc_state(ws), CN_WSC_CLOSED);
        /* The echo carries the code, or nothing when there was none. */
        expect_pending_close(ws, ok[i].code == 1005 ? 0 : ok[i].code);
        assert_int_equal(feed(ws, "\x82\x01x", 3, &r), 0);
        assert_string_equal(r.order, "OC");
        assert_int_equal(cn_wsc_close(ws, 1000, NULL, 0), CN_ESTATE);
        assert_int_equal(cn_wsc_ping(ws, NULL, 0), CN_ESTATE);
        cn_buf_free(&b);
        cn_wsc_free(ws);
        rec_free(&r);
    }
}

static void test_client_close(void **state)
{
    struct rec r;
    rec_init(&r);
    cn_wsc_t *ws = new_client("connect.v1", 0);
    assert_int_equal(cn_wsc_close(ws, 1000, NULL, 0), CN_ESTATE);
    assert_int_equal(feed(ws, OK_HEAD, strlen(OK_HEAD), &r), 0);
    assert_int_equal(cn_wsc_close(ws, 1005, NULL, 0), CN_EINVAL);
    assert_int_equal(cn_wsc_close(ws, 1000, "\xff", 1), CN_EINVAL);
    assert_int_equal(cn_wsc_state(ws), CN_WSC_OPEN);
    assert_int_equal(cn_wsc_close(ws, 1000, "done", 4), 0);
    assert_int_equal(cn_wsc_state(ws), CN_WSC_CLOSING);
    assert_int_equal(cn_wsc_close(ws, 1000, NULL, 0), CN_ESTATE);
    assert_int_equal(cn_wsc_ping(ws, NULL, 0), CN_ESTATE);
    uint8_t out[CN_WSC_MAX_PENDING], body[200];
    int op;
    size_t blen;
    size_t n = cn_wsc_take_pending(ws, out, sizeof(out));
    assert_int_equal(client_frame(out, n, &op, body, &blen), n);
    assert_int_equal(op, CN_WSC_OP_CLOSE);
    assert_memory_equal(body, "\003\350done", 6);

    /* Data already in flight still arrives; a ping is no longer answered;
     * the server's close ends it without a second close from us. */
    cn_buf_t b;
    cn_buf_init(&b, 4096, 0);
    srv_frame(&b, 0x82, (const uint8_t *)"late", 4);
    srv_frame(&b, 0x89, (const uint8_t *)"p", 1);
    srv_frame(&b, 0x88, (const uint8_t *)"\x03\xe8", 2);
    assert_int_equal(feed(ws, cn_buf_data(&b), b.len, &r), 0);
    assert_string_equal(r.order, "OMPC");
    assert_int_equal(r.close_code, 1000);
    assert_int_equal(cn_wsc_state(ws), CN_WSC_CLOSED);
    assert_int_equal(cn_wsc_pending_len(ws), 0);
    cn_buf_free(&b);
    cn_wsc_free(ws);
    rec_free(&r);
}

/* ---- protocol errors ---------------------------------------------------- */

static void test_frame_errors(void **state)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
        int err;
        uint16_t close_code;
    } bad[] = {
        {"masked", "\x82\x81\x00\x00\x00\x00x", 7, CN_EPROTO, 1002},
        {"masked control", "\x89\x80\x01\x02\x03\x04", 6, CN_EPROTO, 1002},
        {"RSV1", "\xc2\x01x", 3, CN_EPROTO, 1002},
        {"RSV2", "\xa2\x01x", 3, CN_EPROTO, 1002},
        {"RSV3", "\x92\x01x", 3, CN_EPROTO, 1002},
        {"RSV on ping", "\xc9\x00", 2, CN_EPROTO, 1002},
        {"text", "\x81\x02hi", 4, CN_EPROTO, 1003},
        {"text fragment", "\x01\x02hi", 4, CN_EPROTO, 1003},
        {"opcode 3", "\x83\x00", 2, CN_EUNKNOWN, 1002},
        {"opcode 7", "\x87\x00", 2, CN_EUNKNOWN, 1002},
        {"opcode 0xb", "\x8b\x00", 2, CN_EUNKNOWN, 1002},
        {"opcode 0xf", "\x8f\x00", 2, CN_EUNKNOWN, 1002},
        {"lone continuation", "\x80\x01x", 3, CN_EPROTO, 1002},
        {"lone non-final continuation", "\x00\x01x", 3, CN_EPROTO, 1002},
        {"continuation after a whole message", "\x82\x01x\x80\x01y", 6, CN_EPROTO, 1002},
        {"binary inside a fragmented message", "\x02\x01x\x82\x01y", 6, CN_EPROTO, 1002},
        {"fragmented ping", "\x09\x01x", 3, CN_EPROTO, 1002},
        {"fragmented close", "\x08\x02\x03\xe8", 4, CN_EPROTO, 1002},
        {"ping of 126", "\x89\x7e\x00\x7e", 4, CN_EPROTO, 1002},
        {"pong of 127-coded", "\x8a\x7f", 2, CN_EPROTO, 1002},
        {"top length bit", "\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x01", 10, CN_EPROTO, 1002},
        {"top length bit, all ones", "\x82\x7f\xff\xff\xff\xff\xff\xff\xff\xff", 10, CN_EPROTO,
         1002},
        {"16-bit length under 126", "\x82\x7e\x00\x7d", 4, CN_EPROTO, 1002},
        {"64-bit length under 65536", "\x82\x7f\x00\x00\x00\x00\x00\x00\xff\xff", 10, CN_EPROTO,
         1002},
        {"close of 1 byte", "\x88\x01\x03", 3, CN_EPROTO, 1002},
        {"close code 999", "\x88\x02\x03\xe7", 4, CN_EPROTO, 1002},
        {"close code 1004", "\x88\x02\x03\xec", 4, CN_EPROTO, 1002},
        {"close code 1005", "\x88\x02\x03\xed", 4, CN_EPROTO, 1002},
        {"close code 1006", "\x88\x02\x03\xee", 4, CN_EPROTO, 1002},
        {"close code 1015", "\x88\x02\x03\xf7", 4, CN_EPROTO, 1002},
        {"close code 2000", "\x88\x02\x07\xd0", 4, CN_EPROTO, 1002},
        {"close code 5000", "\x88\x02\x13\x88", 4, CN_EPROTO, 1002},
        {"close reason not UTF-8", "\x88\x04\x03\xe8\xc0\xaf", 6, CN_EPROTO, 1002},
        {"close reason surrogate", "\x88\x05\x03\xe8\xed\xa0\x80", 7, CN_EPROTO, 1002},
        {"message over the limit", "\x82\x7e\x04\x01", 4, CN_ETOOBIG, 1009},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int bytewise = 0; bytewise <= 1; bytewise++) {
            struct rec r;
            rec_init(&r);
            cn_wsc_t *ws = open_client(&r, 1024);
            int rc = bytewise ? feed_split(ws, (const uint8_t *)bad[i].bytes, bad[i].len, &r, 1, 1)
                              : feed(ws, bad[i].bytes, bad[i].len, &r);
            if (rc != bad[i].err)
                print_error("case '%s': rc %d (%s)\n", bad[i].what, rc, cn_wsc_error_detail(ws));
            assert_int_equal(rc, bad[i].err);
            assert_int_equal(cn_wsc_state(ws), CN_WSC_FAILED);
            expect_pending_close(ws, bad[i].close_code);
            /* Stays failed: a good frame changes nothing. */
            size_t before = r.n_order;
            assert_int_equal(feed(ws, "\x82\x01x", 3, &r), bad[i].err);
            assert_int_equal(r.n_order, before);
            assert_int_equal(cn_wsc_pending_len(ws), 0);
            cn_wsc_free(ws);
            rec_free(&r);
        }
    }
}

static void test_max_message(void **state)
{
    uint8_t payload[1024];
    cn_test_fill(payload, sizeof(payload), 8);
    /* Exactly the limit, in one frame and in fragments, passes. */
    struct rec r;
    rec_init(&r);
    cn_wsc_t *ws = open_client(&r, 1000);
    cn_buf_t b;
    cn_buf_init(&b, 1 << 16, 0);
    srv_frame(&b, 0x82, payload, 1000);
    srv_frame(&b, 0x02, payload, 600);
    srv_frame(&b, 0x89, payload, 10);
    srv_frame(&b, 0x80, payload, 400);
    assert_int_equal(feed(ws, cn_buf_data(&b), b.len, &r), 0);
    assert_int_equal(r.n_msgs, 2);
    expect_one_pending(ws, CN_WSC_OP_PONG, payload, 10);
    /* One byte over, spread over fragments, fails. */
    cn_buf_reset(&b);
    srv_frame(&b, 0x02, payload, 600);
    srv_frame(&b, 0x00, payload, 400);
    srv_frame(&b, 0x80, payload, 1);
    assert_int_equal(feed(ws, cn_buf_data(&b), b.len, &r), CN_ETOOBIG);
    assert_int_equal(r.n_msgs, 2);
    expect_pending_close(ws, 1009);
    cn_wsc_free(ws);
    rec_free(&r);

    /* The default bound. */
    rec_init(&r);
    ws = open_client(&r, 0);
    uint8_t h[10] = {0x82, 0x7f};
    uint64_t len = (uint64_t)CN_WSC_DEFAULT_MAX_MESSAGE + 1;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    assert_int_equal(feed(ws, h, sizeof(h), &r), CN_ETOOBIG);
    cn_wsc_free(ws);
    rec_free(&r);
    cn_buf_free(&b);
}

static void test_callback_error_fails(void **state)
{
    struct rec r;
    rec_init(&r);
    cn_wsc_t *ws = open_client(&r, 0);
    r.fail_on = CN_WSC_EV_DATA;
    assert_int_equal(feed(ws, "\x82\x01x\x89\x00", 5, &r), CN_EREFUSED);
    assert_int_equal(cn_wsc_state(ws), CN_WSC_FAILED);
    expect_pending_close(ws, 1011);
    r.fail_on = 0;
    assert_int_equal(feed(ws, "\x82\x01x", 3, &r), CN_EREFUSED);
    assert_string_equal(r.order, "O");
    cn_wsc_free(ws);
    rec_free(&r);

    /* Refusing the open also fails politely with a queued 1011 close. */
    rec_init(&r);
    r.fail_on = CN_WSC_EV_OPEN;
    ws = new_client("connect.v1", 0);
    assert_int_equal(feed(ws, OK_HEAD, strlen(OK_HEAD), &r), CN_EREFUSED);
    assert_int_equal(cn_wsc_state(ws), CN_WSC_FAILED);
    expect_pending_close(ws, 1011);
    cn_wsc_free(ws);
    rec_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_format),
        cmocka_unit_test(test_request_key_is_random),
        cmocka_unit_test(test_config_rejected),
        cmocka_unit_test(test_accept_rfc_vector),
        cmocka_unit_test(test_good_response_variants),
        cmocka_unit_test(test_bad_responses_rejected),
        cmocka_unit_test(test_head_size_limit),
        cmocka_unit_test(test_response_and_frames_in_one_chunk),
        cmocka_unit_test(test_split_at_every_position),
        cmocka_unit_test(test_frame_header_encoding),
        cmocka_unit_test(test_mask_pieces_match_reference),
        cmocka_unit_test(test_wrap_writes_header_before_payload),
        cmocka_unit_test(test_masks_fresh_across_batches_and_fork),
        cmocka_unit_test(test_pong_and_close_frames),
        cmocka_unit_test(test_lengths_7_16_64),
        cmocka_unit_test(test_bytewise_equals_oneshot),
        cmocka_unit_test(test_ping_queues_pong),
        cmocka_unit_test(test_our_ping),
        cmocka_unit_test(test_server_close),
        cmocka_unit_test(test_client_close),
        cmocka_unit_test(test_frame_errors),
        cmocka_unit_test(test_max_message),
        cmocka_unit_test(test_callback_error_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
