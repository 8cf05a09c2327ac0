/* libFuzzer harness for the frame codec.
 *
 * Input: one byte that picks how the rest is split across cn_frame_decode()
 * calls, then the byte stream. The stream is decoded twice, in one call and in
 * those splits; the two must agree on every frame, the final error and whether
 * a frame is left pending. Every frame must re-encode to exactly the bytes it
 * was decoded from and decode again to the same fields; a CONTROL frame's JSON,
 * when it parses, must survive cn_frame_encode_control(). Any disagreement
 * aborts with the condition that failed. */
#include "cn_err.h"
#include "cn_frame.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_frame: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static uint8_t enc[CN_FRAME_HEADER + CN_FRAME_MAX_PAYLOAD];
static uint8_t json_out[CN_FRAME_HEADER + CN_FRAME_MAX_PAYLOAD];

static int bytes_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}

/* Same type, stream, payload and typed fields (pointed-to bytes by content). */
static int frame_equal(const cn_frame_t *a, const cn_frame_t *b)
{
    if (a->type != b->type || a->stream != b->stream || a->len != b->len ||
        !bytes_equal(a->payload, b->payload, a->len))
        return 0;
    switch (a->type) {
    case CN_FRAME_OPEN:
        return a->u.open.window == b->u.open.window && a->u.open.kind == b->u.open.kind &&
               a->u.open.ref_len == b->u.open.ref_len &&
               bytes_equal(a->u.open.ref, b->u.open.ref, a->u.open.ref_len) &&
               a->u.open.meta_len == b->u.open.meta_len &&
               bytes_equal(a->u.open.meta, b->u.open.meta, a->u.open.meta_len);
    case CN_FRAME_OPEN_ACK:
    case CN_FRAME_WINDOW:
        return a->u.window == b->u.window;
    case CN_FRAME_RST:
    case CN_FRAME_GOAWAY:
        return a->u.reason.code == b->u.reason.code && a->u.reason.msg_len == b->u.reason.msg_len &&
               bytes_equal(a->u.reason.msg, b->u.reason.msg, a->u.reason.msg_len);
    case CN_FRAME_PING:
    case CN_FRAME_PONG:
        return a->u.ping == b->u.ping;
    default:
        return 1;
    }
}

/* A CONTROL payload that parses as an object encodes back to an equal object. */
static void check_control(cn_frame_decoder_t *redecode, const cn_frame_t *f)
{
    json_t *obj = NULL;
    int rc = cn_frame_parse_control(f, &obj);
    CHECK(rc == 0 || rc == CN_EPROTO);
    CHECK((rc == 0) == (obj != NULL));
    if (!obj)
        return;
    CHECK(json_is_object(obj));
    int n = cn_frame_encode_control(obj, json_out, sizeof(json_out));
    /* Compact output can be longer than the input (1e5 -> 100000.0). */
    CHECK(n > CN_FRAME_HEADER || n == CN_ETOOBIG);
    if (n > 0) {
        cn_frame_t g;
        size_t used;
        json_t *back = NULL;
        CHECK(cn_frame_decode(redecode, json_out, (size_t)n, &used, &g) == 1);
        CHECK(used == (size_t)n && g.type == CN_FRAME_CONTROL && g.stream == 0);
        CHECK(cn_frame_parse_control(&g, &back) == 0);
        CHECK(json_equal(obj, back));
        json_decref(back);
    }
    json_decref(obj);
}

/* A decoded frame is well formed: it encodes to the bytes it came from
 * (in[0..n)) and those decode, in one call, to the same fields. */
static void check_frame(cn_frame_decoder_t *redecode, const cn_frame_t *f, const uint8_t *in,
                        size_t n)
{
    CHECK(cn_frame_size(f) == n);
    CHECK(cn_frame_encode(f, enc, sizeof(enc)) == (int)n);
    CHECK(memcmp(enc, in, n) == 0);
    CHECK(cn_frame_encode(f, enc, n - 1) == CN_EAGAIN);
    cn_frame_t g;
    size_t used;
    CHECK(cn_frame_decode(redecode, enc, n, &used, &g) == 1);
    CHECK(used == n);
    CHECK(g.payload == enc + CN_FRAME_HEADER);
    CHECK(frame_equal(f, &g));
    CHECK(!cn_frame_decoder_pending(redecode));
    if (f->type == CN_FRAME_CONTROL)
        check_control(redecode, f);
}

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* 0: everything in one call; otherwise chunks of 1..2^(b%17) bytes. */
    const uint8_t mode = data[0];
    const uint8_t *in = data + 1;
    const size_t n = size - 1;
    const size_t max_chunk = mode ? (size_t)1 << (mode % 17) : n;
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ ((uint64_t)mode << 32) ^ n;

    size_t cap = n / CN_FRAME_HEADER + 1;
    cn_frame_t *whole = malloc(cap * sizeof(*whole));
    size_t *ends = malloc(cap * sizeof(*ends));
    cn_frame_decoder_t *a = cn_frame_decoder_new();
    cn_frame_decoder_t *b = cn_frame_decoder_new();
    cn_frame_decoder_t *redecode = cn_frame_decoder_new();
    CHECK(whole && ends && a && b && redecode);

    /* One call per frame over the whole input: every frame borrows from it. */
    size_t count = 0, off = 0, used;
    int rc_a = 0;
    while (off < n) {
        cn_frame_t f;
        int rc = cn_frame_decode(a, in + off, n - off, &used, &f);
        CHECK(used <= n - off);
        if (rc == 1) {
            CHECK(used >= CN_FRAME_HEADER && count < cap);
            CHECK(f.payload == in + off + CN_FRAME_HEADER);
            off += used;
            whole[count] = f;
            ends[count++] = off;
            continue;
        }
        CHECK(rc <= 0);
        if (rc == 0)
            CHECK(used == n - off);
        rc_a = rc;
        break;
    }
    /* Errors are sticky. */
    if (rc_a < 0) {
        cn_frame_t f;
        CHECK(cn_frame_decode(a, in, n, &used, &f) == rc_a && used == 0);
    }
    size_t last_end = count ? ends[count - 1] : 0;
    if (rc_a == 0)
        CHECK(cn_frame_decoder_pending(a) == (last_end != n));

    /* The same bytes in chunks: the same frames, each re-encoded and re-decoded. */
    size_t got = 0, start = 0;
    int rc_b = 0;
    off = 0;
    while (off < n && rc_b == 0) {
        size_t chunk = 1 + (size_t)(next_rand(&seed) % max_chunk);
        size_t end = chunk < n - off ? off + chunk : n;
        while (off < end) {
            cn_frame_t f;
            int rc = cn_frame_decode(b, in + off, end - off, &used, &f);
            CHECK(used <= end - off);
            off += used;
            if (rc < 0) {
                rc_b = rc;
                break;
            }
            if (rc == 0) {
                CHECK(off == end);
                break;
            }
            CHECK(rc == 1 && used > 0);
            CHECK(got < count && ends[got] == off);
            CHECK(frame_equal(&whole[got], &f));
            check_frame(redecode, &f, in + start, off - start);
            start = off;
            got++;
        }
    }
    CHECK(rc_b == rc_a && got == count);
    if (rc_a == 0)
        CHECK(cn_frame_decoder_pending(b) == (last_end != n));

    cn_frame_decoder_free(a);
    cn_frame_decoder_free(b);
    cn_frame_decoder_free(redecode);
    free(whole);
    free(ends);
    return 0;
}
