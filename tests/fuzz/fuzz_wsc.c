/* libFuzzer harness for cn_wsc. Input: [mode][split seed][bytes...].
 * mode bit 0: 0 = the bytes are the server's handshake response (and maybe
 * frames after it), 1 = the handshake is done and the bytes are a frame stream.
 * Bit 1 requests a subprotocol, bit 2 sets a small max_message, bit 3 lets the
 * harness call cn_wsc_ping()/cn_wsc_close() between pieces.
 * The bytes are fed in pseudo-random pieces, each in its own exact-size heap
 * copy so a slice reaching past its input shows up under ASan. Invariants
 * that must hold for any input abort the run. */
#include "cn_wsc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t test_key[16] = "the sample nonce";
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

struct ctx {
    const uint8_t *lo, *hi;
    bool in_msg;
    bool closed;
    uint32_t sum;
};

static int on_event(void *user, const cn_wsc_event_t *ev)
{
    struct ctx *c = user;
    if (c->closed)
        abort(); /* nothing after CLOSE */
    switch (ev->type) {
    case CN_WSC_EV_OPEN:
        break;
    case CN_WSC_EV_DATA:
        if (ev->first == c->in_msg)
            abort();
        if (ev->len && (ev->data < c->lo || ev->data + ev->len > c->hi))
            abort();
        for (size_t i = 0; i < ev->len; i++)
            c->sum += ev->data[i];
        c->in_msg = !ev->fin;
        break;
    case CN_WSC_EV_PING:
    case CN_WSC_EV_PONG:
        if (ev->len > 125)
            abort();
        for (size_t i = 0; i < ev->len; i++)
            c->sum += ev->data[i];
        break;
    case CN_WSC_EV_CLOSE:
        if (ev->len > 123)
            abort();
        for (size_t i = 0; i < ev->len; i++)
            c->sum += ev->data[i];
        c->closed = true;
        break;
    default:
        abort();
    }
    return 0;
}

/* Every pending byte must form whole masked client control frames. */
static void check_pending(cn_wsc_t *ws)
{
    uint8_t out[CN_WSC_MAX_PENDING];
    size_t want = cn_wsc_pending_len(ws);
    size_t n = cn_wsc_take_pending(ws, out, sizeof(out));
    if (n != want || cn_wsc_pending_len(ws) != 0)
        abort();
    for (size_t i = 0; i < n;) {
        if (n - i < 6 || !(out[i] & 0x80) || (out[i] & 0x70) || (out[i] & 0x0f) < 8 ||
            !(out[i + 1] & 0x80) || (out[i + 1] & 0x7f) > 125)
            abort();
        size_t flen = 6 + (out[i + 1] & 0x7f);
        if (flen > n - i)
            abort();
        i += flen;
    }
}

/* Masking in two pieces must equal masking at once, and undo itself. */
static void check_mask(const uint8_t *p, size_t n, unsigned cut)
{
    static const uint8_t mask[4] = {0x12, 0x9a, 0xfe, 0x01};
    if (n > 4096)
        n = 4096;
    uint8_t *a = malloc(n + 1), *b = malloc(n + 1);
    if (!a || !b)
        abort();
    memcpy(a, p, n);
    memcpy(b, p, n);
    size_t k = n ? cut % (n + 1) : 0;
    cn_wsc_mask(a, n, mask, 0);
    cn_wsc_mask(b, k, mask, 0);
    cn_wsc_mask(b + k, n - k, mask, k);
    if (memcmp(a, b, n) != 0)
        abort();
    cn_wsc_mask(a, n, mask, 0);
    if (memcmp(a, p, n) != 0)
        abort();
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    uint64_t x = (uint64_t)data[1] * 0x9e3779b97f4a7c15ull + 1;
    data += 2;
    size -= 2;
    check_mask(data, size, data[-1]);

    cn_wsc_config_t cfg = {.host = "hub.test",
                           .path = "/v1/agent",
                           .subprotocol = (mode & 2) ? "connect.v1" : NULL,
                           .max_message = (mode & 4) ? 4096 : 0};
    cn_wsc_t *ws = cn_wsc_new(&cfg, NULL, 0);
    if (!ws || cn_wsc_set_key_for_test(ws, test_key) != 0)
        abort();
    struct ctx c = {0};
    if (mode & 1) {
        static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                   "Sec-WebSocket-Accept: " ACCEPT "\r\n";
        char buf[sizeof(head) + 64];
        strcpy(buf, head);
        strcat(buf, (mode & 2) ? "Sec-WebSocket-Protocol: connect.v1\r\n\r\n" : "\r\n");
        c.lo = (const uint8_t *)buf;
        c.hi = c.lo + strlen(buf);
        if (cn_wsc_feed(ws, (const uint8_t *)buf, strlen(buf), on_event, &c) != 0 ||
            cn_wsc_state(ws) != CN_WSC_OPEN)
            abort();
    }

    int rc = 0;
    while (size && rc == 0) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t k = (x & 1) ? size : 1 + (size_t)((x >> 8) % 64);
        if (k > size)
            k = size;
        uint8_t *piece = malloc(k);
        if (!piece)
            abort();
        memcpy(piece, data, k);
        c.lo = piece;
        c.hi = piece + k;
        rc = cn_wsc_feed(ws, piece, k, on_event, &c);
        free(piece);
        data += k;
        size -= k;
        if ((mode & 8) && ((x >> 20) & 7) == 0)
            (void)cn_wsc_ping(ws, (const uint8_t *)"k", 1);
        if ((mode & 8) && ((x >> 24) & 15) == 0)
            (void)cn_wsc_close(ws, 1000, "bye", 3);
        check_pending(ws);
    }
    if (rc) {
        /* Failed for good. */
        if (cn_wsc_state(ws) != CN_WSC_FAILED || cn_wsc_feed(ws, data, size, on_event, &c) != rc)
            abort();
        if (cn_wsc_error_detail(ws) == NULL)
            abort();
    }
    cn_wsc_free(ws);
    return 0;
}
