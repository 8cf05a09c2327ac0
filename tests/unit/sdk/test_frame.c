/* cn_frame: the agent<->hub wire frames, written as a specification.
 *
 * Each row of a table below is one named case, so the run reads as the spec:
 * valid frames keep every field through encode and decode, decode the same
 * however the byte stream is split and without a copy when they arrive whole;
 * each class of malformed frame is refused with its own code at the first byte
 * that decides it, and the decoder stays failed afterwards. */
#include "cn_test.h"

#include "cn_err.h"
#include "cn_frame.h"

#include <jansson.h>
#include <malloc.h>

#if defined(__SANITIZE_ADDRESS__)
#define CN_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CN_TEST_ASAN 1
#endif
#endif

#ifdef CN_TEST_ASAN
/* ASan replaces malloc, so mallinfo2() sees nothing; ask its allocator. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#define U8(lit) ((const uint8_t *)(lit))
#define LEN(lit) (sizeof(lit) - 1)

#define WIRE_MAX (CN_FRAME_HEADER + CN_FRAME_MAX_PAYLOAD)

/* Random bytes that large payloads point into (filled by the group setup). */
static uint8_t pool[2 * CN_FRAME_MAX_PAYLOAD];
/* Scratch wire buffers; big enough for any frame plus a little. */
static uint8_t wire[WIRE_MAX + 64];
static uint8_t wire2[WIRE_MAX + 64];

#define REF_TUN "tun_7f3a9c"
#define META_CLIENT "{\"client\":\"203.0.113.7:51234\"}"
#define MSG_REFUSED "tunnel not exposed on this agent"
#define MSG_RESTART "hub restarting"
#define JSON_HEALTH "{\"type\":\"health\",\"ok\":true}"

/* ---- helpers ------------------------------------------------------------ */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A header written without any checks, to build frames the encoder refuses. */
static void raw_header(uint8_t *h, uint8_t ver, uint8_t type, uint16_t flags, uint32_t stream,
                       uint32_t len)
{
    h[0] = ver;
    h[1] = type;
    h[2] = (uint8_t)(flags >> 8);
    h[3] = (uint8_t)flags;
    put_be32(h + 4, stream);
    put_be32(h + 8, len);
}

static int is_connection_frame(uint8_t type)
{
    return type == CN_FRAME_PING || type == CN_FRAME_PONG || type == CN_FRAME_CONTROL ||
           type == CN_FRAME_GOAWAY;
}

static void assert_bytes_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    if (n)
        assert_memory_equal(a, b, n);
}

/* Payload length that `f` encodes to. */
static uint32_t payload_len(const cn_frame_t *f)
{
    size_t n = cn_frame_size(f);
    assert_true(n >= CN_FRAME_HEADER);
    return (uint32_t)(n - CN_FRAME_HEADER);
}

/* `got` carries the same frame as `want`: type, stream and every field its
 * type defines, pointed-to bytes compared by content. */
static void assert_frame_equal(const cn_frame_t *want, const cn_frame_t *got)
{
    assert_int_equal(got->type, want->type);
    assert_int_equal(got->stream, want->stream);
    assert_int_equal(got->len, payload_len(want));
    switch (want->type) {
    case CN_FRAME_OPEN:
        assert_int_equal(got->u.open.window, want->u.open.window);
        assert_int_equal(got->u.open.kind, want->u.open.kind);
        assert_int_equal(got->u.open.ref_len, want->u.open.ref_len);
        assert_bytes_equal(got->u.open.ref, want->u.open.ref, want->u.open.ref_len);
        assert_int_equal(got->u.open.meta_len, want->u.open.meta_len);
        assert_bytes_equal(got->u.open.meta, want->u.open.meta, want->u.open.meta_len);
        break;
    case CN_FRAME_OPEN_ACK:
    case CN_FRAME_WINDOW:
        assert_int_equal(got->u.window, want->u.window);
        break;
    case CN_FRAME_RST:
    case CN_FRAME_GOAWAY:
        assert_int_equal(got->u.reason.code, want->u.reason.code);
        assert_int_equal(got->u.reason.msg_len, want->u.reason.msg_len);
        assert_bytes_equal(got->u.reason.msg, want->u.reason.msg, want->u.reason.msg_len);
        break;
    case CN_FRAME_PING:
    case CN_FRAME_PONG:
        assert_int_equal(got->u.ping, want->u.ping);
        break;
    case CN_FRAME_DATA:
    case CN_FRAME_CONTROL:
    case CN_FRAME_DATAGRAM:
        assert_bytes_equal(got->payload, want->payload, want->len);
        break;
    case CN_FRAME_FIN:
        break;
    default:
        fail_msg("unexpected frame type %u", want->type);
    }
}

/* Decodes exactly one frame from in[0..n) in a single call. */
static void decode_one(const uint8_t *in, size_t n, cn_frame_decoder_t *d, cn_frame_t *out)
{
    size_t used = 0;
    assert_int_equal(cn_frame_decode(d, in, n, &used, out), 1);
    assert_int_equal(used, n);
    assert_false(cn_frame_decoder_pending(d));
}

/* Decodes exactly one frame from in[0..n) one byte per call. */
static void decode_bytewise(const uint8_t *in, size_t n, cn_frame_decoder_t *d, cn_frame_t *out)
{
    size_t used = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        assert_int_equal(cn_frame_decode(d, in + i, 1, &used, out), 0);
        assert_int_equal(used, 1);
        assert_true(cn_frame_decoder_pending(d));
    }
    assert_int_equal(cn_frame_decode(d, in + n - 1, 1, &used, out), 1);
    assert_int_equal(used, 1);
    assert_false(cn_frame_decoder_pending(d));
}

/* The code's name as written in cn_err.h, for case names. */
static const char *code_name(int err)
{
    switch (err) {
    case CN_EINVAL:
        return "CN_EINVAL";
    case CN_EPROTO:
        return "CN_EPROTO";
    case CN_ETOOBIG:
        return "CN_ETOOBIG";
    case CN_EVERSION:
        return "CN_EVERSION";
    case CN_EUNKNOWN:
        return "CN_EUNKNOWN";
    default:
        return cn_strerror(err);
    }
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static uint32_t below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(rnd(s) % n);
}

/* ---- named cases, one per table row ------------------------------------- */

static struct CMUnitTest *cases;
static size_t ncases, capcases;

static void add_case(CMUnitTestFunction fn, const void *row, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_case(CMUnitTestFunction fn, const void *row, const char *fmt, ...)
{
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    if (ncases == capcases) {
        capcases = capcases ? 2 * capcases : 64;
        cases = realloc(cases, capcases * sizeof(*cases));
        if (!cases)
            abort();
    }
    char *copy = strdup(name);
    if (!copy)
        abort();
    cases[ncases++] =
        (struct CMUnitTest){.name = copy, .test_func = fn, .initial_state = (void *)(uintptr_t)row};
}

/* ---- valid frames --------------------------------------------------------- */

struct valid_row {
    const char *name;
    cn_frame_t f;
};

static const struct valid_row valid_frames[] = {
    {"OPEN tcp with ref, no meta",
     {.type = CN_FRAME_OPEN,
      .stream = 1,
      .u.open = {.window = 256 * 1024,
                 .kind = CN_KIND_TCP,
                 .ref_len = LEN(REF_TUN),
                 .ref = U8(REF_TUN)}}},
    {"OPEN http with ref and meta",
     {.type = CN_FRAME_OPEN,
      .stream = 3,
      .u.open = {.window = CN_FRAME_MAX_WINDOW,
                 .kind = CN_KIND_HTTP,
                 .ref_len = LEN(REF_TUN),
                 .ref = U8(REF_TUN),
                 .meta_len = LEN(META_CLIENT),
                 .meta = U8(META_CLIENT)}}},
    {"OPEN udp without ref or meta, window 0",
     {.type = CN_FRAME_OPEN, .stream = CN_FRAME_MAX_STREAM, .u.open = {.kind = CN_KIND_UDP}}},
    {"OPEN relay with meta only",
     {.type = CN_FRAME_OPEN,
      .stream = 2,
      .u.open = {.window = 65536,
                 .kind = CN_KIND_RELAY,
                 .meta_len = LEN(META_CLIENT),
                 .meta = U8(META_CLIENT)}}},
    {"OPEN with an unknown kind (the acceptor decides)",
     {.type = CN_FRAME_OPEN, .stream = 5, .u.open = {.window = 1, .kind = 200}}},
    {"OPEN largest: 255-byte ref, meta up to the payload limit",
     {.type = CN_FRAME_OPEN,
      .stream = 7,
      .u.open = {.window = 4096,
                 .kind = CN_KIND_TCP,
                 .ref_len = CN_FRAME_MAX_REF,
                 .ref = pool,
                 .meta_len = CN_FRAME_MAX_PAYLOAD - 6 - CN_FRAME_MAX_REF,
                 .meta = pool + CN_FRAME_MAX_REF}}},
    {"OPEN_ACK window 64 KiB", {.type = CN_FRAME_OPEN_ACK, .stream = 1, .u.window = 65536}},
    {"OPEN_ACK window 0", {.type = CN_FRAME_OPEN_ACK, .stream = 1, .u.window = 0}},
    {"OPEN_ACK window max",
     {.type = CN_FRAME_OPEN_ACK, .stream = 9, .u.window = CN_FRAME_MAX_WINDOW}},
    {"DATA empty", {.type = CN_FRAME_DATA, .stream = 1}},
    {"DATA 1 byte", {.type = CN_FRAME_DATA, .stream = 1, .len = 1, .payload = U8("x")}},
    {"DATA max payload",
     {.type = CN_FRAME_DATA,
      .stream = CN_FRAME_MAX_STREAM,
      .len = CN_FRAME_MAX_PAYLOAD,
      .payload = pool}},
    {"WINDOW increment 1", {.type = CN_FRAME_WINDOW, .stream = 1, .u.window = 1}},
    {"WINDOW increment max",
     {.type = CN_FRAME_WINDOW, .stream = 4, .u.window = CN_FRAME_MAX_WINDOW}},
    {"FIN", {.type = CN_FRAME_FIN, .stream = 11}},
    {"RST without message",
     {.type = CN_FRAME_RST, .stream = 1, .u.reason = {.code = CN_RST_CANCEL}}},
    {"RST with message",
     {.type = CN_FRAME_RST,
      .stream = 13,
      .u.reason = {.code = CN_RST_REFUSED, .msg_len = LEN(MSG_REFUSED), .msg = U8(MSG_REFUSED)}}},
    {"RST with the longest message",
     {.type = CN_FRAME_RST,
      .stream = 13,
      .u.reason = {.code = CN_RST_INTERNAL, .msg_len = CN_FRAME_MAX_REASON, .msg = pool}}},
    {"RST with an unknown code (codes are opaque to the codec)",
     {.type = CN_FRAME_RST, .stream = 1, .u.reason = {.code = 0xdeadbeef}}},
    {"PING", {.type = CN_FRAME_PING, .u.ping = 0x0123456789abcdefull}},
    {"PING zero", {.type = CN_FRAME_PING}},
    {"PONG", {.type = CN_FRAME_PONG, .u.ping = 0x0123456789abcdefull}},
    {"PONG all ones", {.type = CN_FRAME_PONG, .u.ping = UINT64_MAX}},
    {"CONTROL JSON object",
     {.type = CN_FRAME_CONTROL, .len = LEN(JSON_HEALTH), .payload = U8(JSON_HEALTH)}},
    {"CONTROL max payload",
     {.type = CN_FRAME_CONTROL, .len = CN_FRAME_MAX_PAYLOAD, .payload = pool}},
    {"DATAGRAM empty (UDP allows it)", {.type = CN_FRAME_DATAGRAM, .stream = 3}},
    {"DATAGRAM 512 bytes", {.type = CN_FRAME_DATAGRAM, .stream = 3, .len = 512, .payload = pool}},
    {"DATAGRAM max",
     {.type = CN_FRAME_DATAGRAM, .stream = 3, .len = CN_FRAME_MAX_DATAGRAM, .payload = pool}},
    {"GOAWAY without message", {.type = CN_FRAME_GOAWAY, .u.reason = {.code = CN_RST_NONE}}},
    {"GOAWAY with message",
     {.type = CN_FRAME_GOAWAY,
      .u.reason = {.code = CN_RST_GONE, .msg_len = LEN(MSG_RESTART), .msg = U8(MSG_RESTART)}}},
    {"GOAWAY with the longest message",
     {.type = CN_FRAME_GOAWAY,
      .u.reason = {.code = CN_RST_LIMIT, .msg_len = CN_FRAME_MAX_REASON, .msg = pool + 1}}},
};

/* Encodes, checks the header bytes, decodes in one call: every field is back,
 * and the decoded pointers borrow from the input. Short buffers are refused
 * without a byte written. */
static void test_round_trip(void **state)
{
    const struct valid_row *row = *state;
    const cn_frame_t *f = &row->f;
    size_t n = cn_frame_size(f);
    assert_true(n >= CN_FRAME_HEADER && n <= WIRE_MAX);

    const size_t caps[] = {0, 1, CN_FRAME_HEADER - 1, CN_FRAME_HEADER, n - 1};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        if (caps[i] >= n)
            continue;
        memset(wire, 0xa5, n);
        assert_int_equal(cn_frame_encode(f, wire, caps[i]), CN_EAGAIN);
        for (size_t j = 0; j < n; j++)
            assert_int_equal(wire[j], 0xa5);
    }

    assert_int_equal(cn_frame_encode(f, wire, n), (int)n);
    assert_int_equal(wire[0], CN_FRAME_VERSION);
    assert_int_equal(wire[1], f->type);
    assert_int_equal(wire[2], 0);
    assert_int_equal(wire[3], 0);
    assert_int_equal(be32(wire + 4), f->stream);
    assert_int_equal(be32(wire + 8), n - CN_FRAME_HEADER);

    cn_frame_decoder_t *d = cn_frame_decoder_new();
    assert_non_null(d);
    cn_frame_t got;
    decode_one(wire, n, d, &got);
    assert_frame_equal(f, &got);

    /* Zero copy: the frame was whole in the input, so it points into it. */
    const uint8_t *p = wire + CN_FRAME_HEADER;
    assert_ptr_equal(got.payload, p);
    if (f->type == CN_FRAME_OPEN) {
        assert_ptr_equal(got.u.open.ref, p + 6);
        assert_ptr_equal(got.u.open.meta, p + 6 + got.u.open.ref_len);
    } else if (f->type == CN_FRAME_RST || f->type == CN_FRAME_GOAWAY) {
        assert_ptr_equal(got.u.reason.msg, p + 4);
    }

    /* Nothing more in the input: nothing more comes out. */
    size_t used = 99;
    assert_int_equal(cn_frame_decode(d, wire + n, 0, &used, &got), 0);
    assert_int_equal(used, 0);
    assert_false(cn_frame_decoder_pending(d));
    cn_frame_decoder_free(d);
}

/* One byte per call yields the same frame as the whole frame in one call. */
static void test_bytewise_equals_one_shot(void **state)
{
    const struct valid_row *row = *state;
    size_t n = cn_frame_size(&row->f);
    assert_int_equal(cn_frame_encode(&row->f, wire, sizeof(wire)), (int)n);

    cn_frame_decoder_t *whole = cn_frame_decoder_new();
    cn_frame_decoder_t *bytes = cn_frame_decoder_new();
    assert_non_null(whole);
    assert_non_null(bytes);
    cn_frame_t one, split;
    decode_one(wire, n, whole, &one);
    decode_bytewise(wire, n, bytes, &split);
    assert_frame_equal(&one, &split);
    assert_frame_equal(&row->f, &split);
    /* Split across calls, the payload had to be gathered into the decoder. */
    if (split.len)
        assert_true(split.payload < wire || split.payload >= wire + n);
    cn_frame_decoder_free(whole);
    cn_frame_decoder_free(bytes);
}

/* ---- exact wire bytes ----------------------------------------------------- */

struct wire_row {
    const char *name;
    cn_frame_t f;
    const char *bytes;
    size_t len;
};

#define BYTES(lit) .bytes = (lit), .len = LEN(lit)

static const struct wire_row wire_vectors[] = {
    {"OPEN stream 1, window 256 KiB, tcp, ref \"t1\", meta \"{}\"",
     {.type = CN_FRAME_OPEN,
      .stream = 1,
      .u.open = {.window = 0x40000,
                 .kind = CN_KIND_TCP,
                 .ref_len = 2,
                 .ref = U8("t1"),
                 .meta_len = 2,
                 .meta = U8("{}")}},
     BYTES("\x01\x01\x00\x00"
           "\x00\x00\x00\x01"
           "\x00\x00\x00\x0a"
           "\x00\x04\x00\x00"
           "\x01\x02"
           "t1{}")},
    {"OPEN_ACK stream 1, window 64 KiB",
     {.type = CN_FRAME_OPEN_ACK, .stream = 1, .u.window = 0x10000},
     BYTES("\x01\x02\x00\x00"
           "\x00\x00\x00\x01"
           "\x00\x00\x00\x04"
           "\x00\x01\x00\x00")},
    {"DATA stream 7, \"hi\"",
     {.type = CN_FRAME_DATA, .stream = 7, .len = 2, .payload = U8("hi")},
     BYTES("\x01\x03\x00\x00"
           "\x00\x00\x00\x07"
           "\x00\x00\x00\x02"
           "hi")},
    {"WINDOW stream 5, increment 0x10000",
     {.type = CN_FRAME_WINDOW, .stream = 5, .u.window = 0x10000},
     BYTES("\x01\x04\x00\x00"
           "\x00\x00\x00\x05"
           "\x00\x00\x00\x04"
           "\x00\x01\x00\x00")},
    {"FIN stream 7",
     {.type = CN_FRAME_FIN, .stream = 7},
     BYTES("\x01\x05\x00\x00"
           "\x00\x00\x00\x07"
           "\x00\x00\x00\x00")},
    {"RST stream 9, UNREACHABLE, \"no\"",
     {.type = CN_FRAME_RST,
      .stream = 9,
      .u.reason = {.code = CN_RST_UNREACHABLE, .msg_len = 2, .msg = U8("no")}},
     BYTES("\x01\x06\x00\x00"
           "\x00\x00\x00\x09"
           "\x00\x00\x00\x06"
           "\x00\x00\x00\x02"
           "no")},
    {"PING 0x0102030405060708",
     {.type = CN_FRAME_PING, .u.ping = 0x0102030405060708ull},
     BYTES("\x01\x07\x00\x00"
           "\x00\x00\x00\x00"
           "\x00\x00\x00\x08"
           "\x01\x02\x03\x04\x05\x06\x07\x08")},
    {"PONG 0xfffffffffffffffe",
     {.type = CN_FRAME_PONG, .u.ping = 0xfffffffffffffffeull},
     BYTES("\x01\x08\x00\x00"
           "\x00\x00\x00\x00"
           "\x00\x00\x00\x08"
           "\xff\xff\xff\xff\xff\xff\xff\xfe")},
    {"CONTROL {}",
     {.type = CN_FRAME_CONTROL, .len = 2, .payload = U8("{}")},
     BYTES("\x01\x09\x00\x00"
           "\x00\x00\x00\x00"
           "\x00\x00\x00\x02"
           "{}")},
    {"DATAGRAM stream 0x7fffffff, 3 bytes",
     {.type = CN_FRAME_DATAGRAM, .stream = CN_FRAME_MAX_STREAM, .len = 3, .payload = U8("udp")},
     BYTES("\x01\x0a\x00\x00"
           "\x7f\xff\xff\xff"
           "\x00\x00\x00\x03"
           "udp")},
    {"GOAWAY NONE, no message",
     {.type = CN_FRAME_GOAWAY, .u.reason = {.code = CN_RST_NONE}},
     BYTES("\x01\x0b\x00\x00"
           "\x00\x00\x00\x00"
           "\x00\x00\x00\x04"
           "\x00\x00\x00\x00")},
};

/* The frame encodes to exactly these bytes, and these bytes decode to it. */
static void test_wire_bytes(void **state)
{
    const struct wire_row *row = *state;
    assert_int_equal(cn_frame_size(&row->f), row->len);
    assert_int_equal(cn_frame_encode(&row->f, wire, sizeof(wire)), (int)row->len);
    assert_memory_equal(wire, row->bytes, row->len);

    cn_frame_decoder_t *d = cn_frame_decoder_new();
    assert_non_null(d);
    cn_frame_t got;
    decode_one(U8(row->bytes), row->len, d, &got);
    assert_frame_equal(&row->f, &got);
    cn_frame_decoder_free(d);
}

/* ---- malformed frames ----------------------------------------------------- */

enum decided_at {
    AT_HEADER,  /* the 12 header bytes decide: refused before any payload */
    AT_PAYLOAD, /* refused when the last payload byte arrives */
};

struct bad_row {
    const char *name;
    uint8_t ver, type;
    uint16_t flags;
    uint32_t stream, len; /* the header's fields */
    const char *payload;  /* the payload's first bytes; the rest are zero */
    size_t plen;
    enum decided_at at;
    int want;
};

#define PAYLOAD(lit) .payload = (lit), .plen = LEN(lit)
#define V CN_FRAME_VERSION

static const struct bad_row bad_frames[] = {
    /* header: version, type, flags */
    {"version 0", 0, CN_FRAME_DATA, 0, 1, 0, .at = AT_HEADER, .want = CN_EVERSION},
    {"version 2", 2, CN_FRAME_DATA, 0, 1, 4, .at = AT_HEADER, .want = CN_EVERSION},
    {"version 255", 255, CN_FRAME_PING, 0, 0, 8, .at = AT_HEADER, .want = CN_EVERSION},
    {"version is checked before type", 2, 0, 0, 1, 0, .at = AT_HEADER, .want = CN_EVERSION},
    {"type 0", V, 0, 0, 1, 0, .at = AT_HEADER, .want = CN_EUNKNOWN},
    {"type 12", V, 12, 0, 1, 0, .at = AT_HEADER, .want = CN_EUNKNOWN},
    {"type 255", V, 255, 0, 0, 4, .at = AT_HEADER, .want = CN_EUNKNOWN},
    {"reserved flag 0x0001", V, CN_FRAME_DATA, 0x0001, 1, 0, .at = AT_HEADER, .want = CN_EPROTO},
    {"reserved flag 0x8000", V, CN_FRAME_DATA, 0x8000, 1, 3, .at = AT_HEADER, .want = CN_EPROTO},
    {"reserved flags on PING", V, CN_FRAME_PING, 0x0100, 0, 8, .at = AT_HEADER, .want = CN_EPROTO},
    /* header: stream ids */
    {"DATA on stream 0x80000000", V, CN_FRAME_DATA, 0, 0x80000000u, 1, .at = AT_HEADER,
     .want = CN_EPROTO},
    {"DATA on stream 0xffffffff", V, CN_FRAME_DATA, 0, 0xffffffffu, 1, .at = AT_HEADER,
     .want = CN_EPROTO},
    {"OPEN on stream 0", V, CN_FRAME_OPEN, 0, 0, 6, PAYLOAD("\x00\x01\x00\x00\x01\x00"),
     .at = AT_HEADER, .want = CN_EPROTO},
    {"OPEN_ACK on stream 0", V, CN_FRAME_OPEN_ACK, 0, 0, 4, PAYLOAD("\x00\x01\x00\x00"),
     .at = AT_HEADER, .want = CN_EPROTO},
    {"DATA on stream 0", V, CN_FRAME_DATA, 0, 0, 2, PAYLOAD("hi"), .at = AT_HEADER,
     .want = CN_EPROTO},
    {"WINDOW on stream 0", V, CN_FRAME_WINDOW, 0, 0, 4, PAYLOAD("\x00\x01\x00\x00"),
     .at = AT_HEADER, .want = CN_EPROTO},
    {"FIN on stream 0", V, CN_FRAME_FIN, 0, 0, 0, .at = AT_HEADER, .want = CN_EPROTO},
    {"RST on stream 0", V, CN_FRAME_RST, 0, 0, 4, PAYLOAD("\x00\x00\x00\x03"), .at = AT_HEADER,
     .want = CN_EPROTO},
    {"DATAGRAM on stream 0", V, CN_FRAME_DATAGRAM, 0, 0, 3, PAYLOAD("udp"), .at = AT_HEADER,
     .want = CN_EPROTO},
    {"PING on stream 1", V, CN_FRAME_PING, 0, 1, 8, .at = AT_HEADER, .want = CN_EPROTO},
    {"PONG on stream 1", V, CN_FRAME_PONG, 0, 1, 8, .at = AT_HEADER, .want = CN_EPROTO},
    {"CONTROL on stream 7", V, CN_FRAME_CONTROL, 0, 7, 2, PAYLOAD("{}"), .at = AT_HEADER,
     .want = CN_EPROTO},
    {"GOAWAY on stream 0x80000000", V, CN_FRAME_GOAWAY, 0, 0x80000000u, 4, .at = AT_HEADER,
     .want = CN_EPROTO},
    /* header: length */
    {"DATA length max+1", V, CN_FRAME_DATA, 0, 1, CN_FRAME_MAX_PAYLOAD + 1, .at = AT_HEADER,
     .want = CN_ETOOBIG},
    {"CONTROL length 0xffffffff", V, CN_FRAME_CONTROL, 0, 0, 0xffffffffu, .at = AT_HEADER,
     .want = CN_ETOOBIG},
    {"OPEN length max+1", V, CN_FRAME_OPEN, 0, 1, CN_FRAME_MAX_PAYLOAD + 1, .at = AT_HEADER,
     .want = CN_ETOOBIG},
    /* OPEN payload */
    {"OPEN empty", V, CN_FRAME_OPEN, 0, 1, 0, .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"OPEN shorter than 6", V, CN_FRAME_OPEN, 0, 1, 5, PAYLOAD("\x00\x01\x00\x00\x01"),
     .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"OPEN ref_len 1 with no ref byte", V, CN_FRAME_OPEN, 0, 1, 6,
     PAYLOAD("\x00\x01\x00\x00\x01\x01"), .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"OPEN ref_len 200 beyond a 10-byte payload", V, CN_FRAME_OPEN, 0, 1, 10,
     PAYLOAD("\x00\x01\x00\x00\x01\xc8"), .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"OPEN kind 0", V, CN_FRAME_OPEN, 0, 1, 6, PAYLOAD("\x00\x01\x00\x00\x00\x00"),
     .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"OPEN window max+1", V, CN_FRAME_OPEN, 0, 1, 6, PAYLOAD("\x40\x00\x00\x01\x01\x00"),
     .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"OPEN window 0xffffffff", V, CN_FRAME_OPEN, 0, 1, 6, PAYLOAD("\xff\xff\xff\xff\x01\x00"),
     .at = AT_PAYLOAD, .want = CN_EPROTO},
    /* OPEN_ACK and WINDOW payload */
    {"OPEN_ACK length 0", V, CN_FRAME_OPEN_ACK, 0, 1, 0, .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"OPEN_ACK length 3", V, CN_FRAME_OPEN_ACK, 0, 1, 3, PAYLOAD("\x00\x01\x00"), .at = AT_PAYLOAD,
     .want = CN_EPROTO},
    {"OPEN_ACK length 5", V, CN_FRAME_OPEN_ACK, 0, 1, 5, PAYLOAD("\x00\x01\x00\x00\x00"),
     .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"OPEN_ACK window max+1", V, CN_FRAME_OPEN_ACK, 0, 1, 4, PAYLOAD("\x40\x00\x00\x01"),
     .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"WINDOW length 3", V, CN_FRAME_WINDOW, 0, 1, 3, PAYLOAD("\x00\x01\x00"), .at = AT_PAYLOAD,
     .want = CN_EPROTO},
    {"WINDOW length 5", V, CN_FRAME_WINDOW, 0, 1, 5, PAYLOAD("\x00\x01\x00\x00\x00"),
     .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"WINDOW increment 0", V, CN_FRAME_WINDOW, 0, 1, 4, PAYLOAD("\x00\x00\x00\x00"),
     .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"WINDOW increment max+1", V, CN_FRAME_WINDOW, 0, 1, 4, PAYLOAD("\x40\x00\x00\x01"),
     .at = AT_PAYLOAD, .want = CN_EPROTO},
    /* FIN, RST, GOAWAY payload */
    {"FIN with a payload byte", V, CN_FRAME_FIN, 0, 1, 1, .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"RST length 0", V, CN_FRAME_RST, 0, 1, 0, .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"RST length 3", V, CN_FRAME_RST, 0, 1, 3, .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"RST message of max+1 bytes", V, CN_FRAME_RST, 0, 1, 4 + CN_FRAME_MAX_REASON + 1,
     .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"GOAWAY length 0", V, CN_FRAME_GOAWAY, 0, 0, 0, .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"GOAWAY length 3", V, CN_FRAME_GOAWAY, 0, 0, 3, .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"GOAWAY message of max+1 bytes", V, CN_FRAME_GOAWAY, 0, 0, 4 + CN_FRAME_MAX_REASON + 1,
     .at = AT_PAYLOAD, .want = CN_EPROTO},
    /* PING, PONG, CONTROL, DATAGRAM payload */
    {"PING length 0", V, CN_FRAME_PING, 0, 0, 0, .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"PING length 7", V, CN_FRAME_PING, 0, 0, 7, .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"PING length 9", V, CN_FRAME_PING, 0, 0, 9, .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"PONG length 7", V, CN_FRAME_PONG, 0, 0, 7, .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"PONG length 9", V, CN_FRAME_PONG, 0, 0, 9, .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"CONTROL empty", V, CN_FRAME_CONTROL, 0, 0, 0, .at = AT_PAYLOAD, .want = CN_EPROTO},
    {"DATAGRAM of max+1 bytes", V, CN_FRAME_DATAGRAM, 0, 1, CN_FRAME_MAX_DATAGRAM + 1,
     .at = AT_PAYLOAD, .want = CN_ETOOBIG},
};

#undef V

/* Writes the row's frame into wire[]; returns how many bytes to feed (the
 * header and as much of the declared payload as fits). */
static size_t build_bad(const struct bad_row *row)
{
    size_t body = row->len <= CN_FRAME_MAX_PAYLOAD + 1 ? row->len : 64;
    assert_true(CN_FRAME_HEADER + body <= sizeof(wire));
    raw_header(wire, row->ver, row->type, row->flags, row->stream, row->len);
    memset(wire + CN_FRAME_HEADER, 0, body);
    assert_true(row->plen <= body);
    if (row->plen)
        memcpy(wire + CN_FRAME_HEADER, row->payload, row->plen);
    return CN_FRAME_HEADER + body;
}

/* After an error the decoder only repeats it, even for a valid frame. */
static void assert_sticky(cn_frame_decoder_t *d, int want)
{
    uint8_t fin[CN_FRAME_HEADER];
    cn_frame_t f;
    size_t used = 99;
    assert_int_equal(cn_frame_write_header(fin, CN_FRAME_FIN, 1, 0), CN_FRAME_HEADER);
    assert_int_equal(cn_frame_decode(d, fin, sizeof(fin), &used, &f), want);
    assert_int_equal(used, 0);
    used = 99;
    assert_int_equal(cn_frame_decode(d, fin, 0, &used, &f), want);
    assert_int_equal(used, 0);
}

/* Refused with the row's code: whole, one byte at a time (exactly at the byte
 * that decides), from the header alone when the header decides; sticky. */
static void test_reject(void **state)
{
    const struct bad_row *row = *state;
    size_t n = build_bad(row);
    size_t decide = row->at == AT_HEADER ? CN_FRAME_HEADER : CN_FRAME_HEADER + row->len;
    assert_true(decide <= n);
    cn_frame_t f;
    size_t used;

    cn_frame_decoder_t *d = cn_frame_decoder_new();
    assert_non_null(d);
    assert_int_equal(cn_frame_decode(d, wire, n, &used, &f), row->want);
    assert_sticky(d, row->want);
    cn_frame_decoder_free(d);

    d = cn_frame_decoder_new();
    assert_non_null(d);
    for (size_t i = 0; i + 1 < decide; i++) {
        assert_int_equal(cn_frame_decode(d, wire + i, 1, &used, &f), 0);
        assert_int_equal(used, 1);
    }
    assert_int_equal(cn_frame_decode(d, wire + decide - 1, 1, &used, &f), row->want);
    assert_sticky(d, row->want);
    cn_frame_decoder_free(d);

    if (row->at == AT_HEADER) {
        d = cn_frame_decoder_new();
        assert_non_null(d);
        assert_int_equal(cn_frame_decode(d, wire, CN_FRAME_HEADER, &used, &f), row->want);
        assert_sticky(d, row->want);
        cn_frame_decoder_free(d);
    }
}

/* Types 0 and 12..255 are unknown, whatever their stream and length. */
static void test_unknown_types(void **state)
{
    for (unsigned t = 0; t < 256; t++) {
        if (t >= CN_FRAME_OPEN && t <= CN_FRAME_GOAWAY)
            continue;
        for (uint32_t stream = 0; stream < 2; stream++) {
            cn_frame_t f;
            size_t used;
            raw_header(wire, CN_FRAME_VERSION, (uint8_t)t, 0, stream, 4);
            cn_frame_decoder_t *d = cn_frame_decoder_new();
            assert_non_null(d);
            assert_int_equal(cn_frame_decode(d, wire, CN_FRAME_HEADER, &used, &f), CN_EUNKNOWN);
            assert_sticky(d, CN_EUNKNOWN);
            cn_frame_decoder_free(d);
        }
    }
}

/* Bytes the process holds from the heap right now. */
static size_t heap_in_use(void)
{
#ifdef CN_TEST_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

/* A length above the limit is refused from the header, before the decoder
 * reserves its payload buffer, whether the header comes whole or in pieces. A
 * valid header does reserve it, which shows the measurement works. */
static void test_too_big_never_allocates(void **state)
{
    const uint32_t lens[] = {CN_FRAME_MAX_PAYLOAD + 1, 0x7fffffffu, 0xffffffffu};
    cn_frame_t f;
    size_t used;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        raw_header(wire, CN_FRAME_VERSION, CN_FRAME_DATA, 0, 1, lens[i]);
        for (size_t step = 1; step <= CN_FRAME_HEADER; step += CN_FRAME_HEADER - 1) {
            cn_frame_decoder_t *d = cn_frame_decoder_new();
            assert_non_null(d);
            size_t before = heap_in_use();
            int rc = 0;
            for (size_t off = 0; off < CN_FRAME_HEADER && rc == 0; off += step)
                rc = cn_frame_decode(d, wire + off, step, &used, &f);
            assert_int_equal(rc, CN_ETOOBIG);
            assert_true(heap_in_use() < before + CN_FRAME_MAX_PAYLOAD);
            cn_frame_decoder_free(d);
        }
    }

    raw_header(wire, CN_FRAME_VERSION, CN_FRAME_DATA, 0, 1, CN_FRAME_MAX_PAYLOAD);
    cn_frame_decoder_t *d = cn_frame_decoder_new();
    assert_non_null(d);
    size_t before = heap_in_use();
    assert_int_equal(cn_frame_decode(d, wire, CN_FRAME_HEADER, &used, &f), 0);
    assert_true(heap_in_use() >= before + CN_FRAME_MAX_PAYLOAD);
    cn_frame_decoder_free(d);
}

/* ---- encoder ---------------------------------------------------------------- */

static const struct valid_row invalid_frames[] = {
    {"type 0", {.type = 0, .stream = 1}},
    {"type 12", {.type = 12, .stream = 1}},
    {"type 255", {.type = 255, .stream = 1}},
    {"DATA on stream 0", {.type = CN_FRAME_DATA, .stream = 0}},
    {"DATA on stream 0x80000000", {.type = CN_FRAME_DATA, .stream = 0x80000000u}},
    {"FIN on stream 0", {.type = CN_FRAME_FIN}},
    {"PING on stream 1", {.type = CN_FRAME_PING, .stream = 1}},
    {"CONTROL on stream 7", {.type = CN_FRAME_CONTROL, .stream = 7, .len = 2, .payload = U8("{}")}},
    {"OPEN kind 0", {.type = CN_FRAME_OPEN, .stream = 1, .u.open = {.window = 1}}},
    {"OPEN window max+1",
     {.type = CN_FRAME_OPEN,
      .stream = 1,
      .u.open = {.window = CN_FRAME_MAX_WINDOW + 1, .kind = CN_KIND_TCP}}},
    {"OPEN ref_len without ref",
     {.type = CN_FRAME_OPEN, .stream = 1, .u.open = {.kind = CN_KIND_TCP, .ref_len = 3}}},
    {"OPEN meta_len without meta",
     {.type = CN_FRAME_OPEN, .stream = 1, .u.open = {.kind = CN_KIND_TCP, .meta_len = 3}}},
    {"OPEN meta one byte over the payload limit",
     {.type = CN_FRAME_OPEN,
      .stream = 1,
      .u.open = {.kind = CN_KIND_TCP, .meta_len = CN_FRAME_MAX_PAYLOAD - 5, .meta = pool}}},
    {"OPEN ref and meta one byte over the payload limit",
     {.type = CN_FRAME_OPEN,
      .stream = 1,
      .u.open = {.kind = CN_KIND_TCP,
                 .ref_len = CN_FRAME_MAX_REF,
                 .ref = pool,
                 .meta_len = CN_FRAME_MAX_PAYLOAD - 6 - CN_FRAME_MAX_REF + 1,
                 .meta = pool}}},
    {"OPEN_ACK window max+1",
     {.type = CN_FRAME_OPEN_ACK, .stream = 1, .u.window = CN_FRAME_MAX_WINDOW + 1}},
    {"WINDOW increment 0", {.type = CN_FRAME_WINDOW, .stream = 1, .u.window = 0}},
    {"WINDOW increment max+1",
     {.type = CN_FRAME_WINDOW, .stream = 1, .u.window = CN_FRAME_MAX_WINDOW + 1}},
    {"RST message of max+1 bytes",
     {.type = CN_FRAME_RST,
      .stream = 1,
      .u.reason = {.msg_len = CN_FRAME_MAX_REASON + 1, .msg = pool}}},
    {"RST msg_len without msg", {.type = CN_FRAME_RST, .stream = 1, .u.reason = {.msg_len = 1}}},
    {"GOAWAY message of max+1 bytes",
     {.type = CN_FRAME_GOAWAY, .u.reason = {.msg_len = CN_FRAME_MAX_REASON + 1, .msg = pool}}},
    {"GOAWAY msg_len without msg", {.type = CN_FRAME_GOAWAY, .u.reason = {.msg_len = 4}}},
    {"DATA of max+1 bytes",
     {.type = CN_FRAME_DATA, .stream = 1, .len = CN_FRAME_MAX_PAYLOAD + 1, .payload = pool}},
    {"DATA len without payload", {.type = CN_FRAME_DATA, .stream = 1, .len = 1}},
    {"DATAGRAM of max+1 bytes",
     {.type = CN_FRAME_DATAGRAM, .stream = 1, .len = CN_FRAME_MAX_DATAGRAM + 1, .payload = pool}},
    {"CONTROL empty", {.type = CN_FRAME_CONTROL, .payload = U8("{}")}},
    {"CONTROL len without payload", {.type = CN_FRAME_CONTROL, .len = 2}},
};

/* The encoder refuses a frame the decoder would refuse, and writes nothing. */
static void test_encoder_rejects(void **state)
{
    const struct valid_row *row = *state;
    assert_int_equal(cn_frame_size(&row->f), 0);
    memset(wire, 0xa5, 64);
    assert_int_equal(cn_frame_encode(&row->f, wire, sizeof(wire)), CN_EINVAL);
    for (size_t i = 0; i < 64; i++)
        assert_int_equal(wire[i], 0xa5);
}

/* cn_frame_write_header checks type, stream and length, and writes the same
 * header the encoder does; a DATA frame built in place decodes. */
static void test_write_header(void **state)
{
    static const struct {
        uint8_t type;
        uint32_t stream, len;
        int want;
    } rows[] = {
        {CN_FRAME_DATA, 1, 0, CN_FRAME_HEADER},
        {CN_FRAME_DATA, CN_FRAME_MAX_STREAM, CN_FRAME_MAX_PAYLOAD, CN_FRAME_HEADER},
        {CN_FRAME_PING, 0, 8, CN_FRAME_HEADER},
        {CN_FRAME_GOAWAY, 0, 4, CN_FRAME_HEADER},
        {CN_FRAME_DATAGRAM, 9, 100, CN_FRAME_HEADER},
        {0, 1, 0, CN_EINVAL},
        {12, 1, 0, CN_EINVAL},
        {255, 0, 0, CN_EINVAL},
        {CN_FRAME_DATA, 0, 1, CN_EINVAL},
        {CN_FRAME_DATA, 0x80000000u, 1, CN_EINVAL},
        {CN_FRAME_PING, 1, 8, CN_EINVAL},
        {CN_FRAME_CONTROL, 3, 2, CN_EINVAL},
        {CN_FRAME_DATA, 1, CN_FRAME_MAX_PAYLOAD + 1, CN_EINVAL},
        {CN_FRAME_DATA, 1, 0xffffffffu, CN_EINVAL},
    };
    uint8_t h[CN_FRAME_HEADER], expect[CN_FRAME_HEADER];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        memset(h, 0xa5, sizeof(h));
        assert_int_equal(cn_frame_write_header(h, rows[i].type, rows[i].stream, rows[i].len),
                         rows[i].want);
        if (rows[i].want < 0) {
            for (size_t j = 0; j < sizeof(h); j++)
                assert_int_equal(h[j], 0xa5);
            continue;
        }
        raw_header(expect, CN_FRAME_VERSION, rows[i].type, 0, rows[i].stream, rows[i].len);
        assert_memory_equal(h, expect, sizeof(h));
    }

    /* DATA built in place: header, then the payload right after it. */
    const uint32_t n = 1000;
    assert_int_equal(cn_frame_write_header(wire, CN_FRAME_DATA, 42, n), CN_FRAME_HEADER);
    memcpy(wire + CN_FRAME_HEADER, pool, n);
    cn_frame_t want = {.type = CN_FRAME_DATA, .stream = 42, .len = n, .payload = pool};
    assert_int_equal(cn_frame_encode(&want, wire2, sizeof(wire2)), (int)(CN_FRAME_HEADER + n));
    assert_memory_equal(wire, wire2, CN_FRAME_HEADER + n);
    cn_frame_decoder_t *d = cn_frame_decoder_new();
    assert_non_null(d);
    cn_frame_t got;
    decode_one(wire, CN_FRAME_HEADER + n, d, &got);
    assert_frame_equal(&want, &got);
    cn_frame_decoder_free(d);
}

/* ---- decoder state -------------------------------------------------------- */

/* pending is true exactly while a frame is partly in: a stream that ends then
 * is truncated. */
static void test_pending_reports_truncation(void **state)
{
    cn_frame_t data = {.type = CN_FRAME_DATA, .stream = 1, .len = 100, .payload = pool};
    const size_t n = CN_FRAME_HEADER + 100;
    assert_int_equal(cn_frame_encode(&data, wire, sizeof(wire)), (int)n);
    cn_frame_t f;
    size_t used;

    /* Pieces: 1 byte, the rest of the header, half the payload, the rest. */
    cn_frame_decoder_t *d = cn_frame_decoder_new();
    assert_non_null(d);
    assert_false(cn_frame_decoder_pending(d));
    const size_t cuts[] = {0, 1, 11, 12, 62, n};
    for (size_t i = 1; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        size_t len = cuts[i] - cuts[i - 1];
        int rc = cn_frame_decode(d, wire + cuts[i - 1], len, &used, &f);
        assert_int_equal(used, len);
        assert_int_equal(rc, cuts[i] == n);
        assert_int_equal(cn_frame_decoder_pending(d), cuts[i] != n);
    }
    assert_frame_equal(&data, &f);

    /* A whole header and part of the payload in one call. */
    assert_int_equal(cn_frame_decode(d, wire, 72, &used, &f), 0);
    assert_int_equal(used, 72);
    assert_true(cn_frame_decoder_pending(d));
    assert_int_equal(cn_frame_decode(d, wire + 72, n - 72, &used, &f), 1);
    assert_int_equal(used, n - 72);
    assert_false(cn_frame_decoder_pending(d));
    assert_frame_equal(&data, &f);

    /* A frame without payload is pending until its last header byte. */
    assert_int_equal(cn_frame_write_header(wire, CN_FRAME_FIN, 3, 0), CN_FRAME_HEADER);
    assert_int_equal(cn_frame_decode(d, wire, 6, &used, &f), 0);
    assert_true(cn_frame_decoder_pending(d));
    assert_int_equal(cn_frame_decode(d, wire + 6, 6, &used, &f), 1);
    assert_false(cn_frame_decoder_pending(d));
    assert_int_equal(f.type, CN_FRAME_FIN);
    assert_int_equal(f.stream, 3);
    cn_frame_decoder_free(d);
    cn_frame_decoder_free(NULL);
}

/* An empty input is no input, also as (NULL, 0) (an empty cn_buf has no
 * memory): before a frame, inside a header and inside a payload. */
static void test_empty_input(void **state)
{
    cn_frame_t data = {.type = CN_FRAME_DATA, .stream = 1, .len = 10, .payload = pool};
    const size_t n = CN_FRAME_HEADER + 10;
    assert_int_equal(cn_frame_encode(&data, wire, sizeof(wire)), (int)n);
    cn_frame_decoder_t *d = cn_frame_decoder_new();
    assert_non_null(d);
    const size_t cuts[] = {0, 5, 12, 17};
    size_t used;
    cn_frame_t f;
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        if (i > 0) {
            size_t len = cuts[i] - cuts[i - 1];
            assert_int_equal(cn_frame_decode(d, wire + cuts[i - 1], len, &used, &f), 0);
            assert_int_equal(used, len);
        }
        used = 99;
        assert_int_equal(cn_frame_decode(d, NULL, 0, &used, &f), 0);
        assert_int_equal(used, 0);
        assert_int_equal(cn_frame_decoder_pending(d), cuts[i] != 0);
    }
    assert_int_equal(cn_frame_decode(d, wire + 17, n - 17, &used, &f), 1);
    assert_frame_equal(&data, &f);
    cn_frame_decoder_free(d);
}

/* Several frames in one input come out one per call, each borrowing from the
 * input; a frame that straddles calls is gathered, the next ones are not. */
static void test_zero_copy(void **state)
{
    const cn_frame_t frames[] = {
        {.type = CN_FRAME_DATA, .stream = 1, .len = 3, .payload = U8("abc")},
        {.type = CN_FRAME_OPEN,
         .stream = 3,
         .u.open = {.window = 10,
                    .kind = CN_KIND_HTTP,
                    .ref_len = LEN(REF_TUN),
                    .ref = U8(REF_TUN),
                    .meta_len = LEN(META_CLIENT),
                    .meta = U8(META_CLIENT)}},
        {.type = CN_FRAME_RST,
         .stream = 3,
         .u.reason = {.code = CN_RST_PAUSED, .msg_len = 6, .msg = U8("paused")}},
        {.type = CN_FRAME_DATAGRAM, .stream = 5, .len = 4, .payload = U8("dgrm")},
    };
    const size_t count = sizeof(frames) / sizeof(frames[0]);
    size_t start[sizeof(frames) / sizeof(frames[0])];
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        start[i] = n;
        int rc = cn_frame_encode(&frames[i], wire + n, sizeof(wire) - n);
        assert_true(rc > 0);
        n += (size_t)rc;
    }

    for (size_t first_cut = 0; first_cut <= 5; first_cut += 5) {
        cn_frame_decoder_t *d = cn_frame_decoder_new();
        assert_non_null(d);
        size_t off = 0, used;
        cn_frame_t f;
        if (first_cut) {
            assert_int_equal(cn_frame_decode(d, wire, first_cut, &used, &f), 0);
            off = first_cut;
        }
        for (size_t i = 0; i < count; i++) {
            assert_int_equal(cn_frame_decode(d, wire + off, n - off, &used, &f), 1);
            off += used;
            assert_frame_equal(&frames[i], &f);
            const uint8_t *p = wire + start[i] + CN_FRAME_HEADER;
            if (i == 0 && first_cut) {
                assert_true(f.payload < wire || f.payload >= wire + n);
                continue;
            }
            assert_ptr_equal(f.payload, p);
            if (f.type == CN_FRAME_OPEN) {
                assert_ptr_equal(f.u.open.ref, p + 6);
                assert_ptr_equal(f.u.open.meta, p + 6 + LEN(REF_TUN));
            }
            if (f.type == CN_FRAME_RST)
                assert_ptr_equal(f.u.reason.msg, p + 4);
        }
        assert_int_equal(off, n);
        assert_false(cn_frame_decoder_pending(d));
        cn_frame_decoder_free(d);
    }
}

/* ---- a long random stream, split every way -------------------------------- */

#define STREAM_FRAMES 4000

static cn_frame_t *stream_frames;
static uint8_t *stream_wire;
static size_t stream_len;

/* A length that is mostly small, sometimes up to `max`. */
static uint32_t some_len(uint64_t *s, uint32_t max)
{
    uint32_t r = below(s, 100);
    uint32_t cap = r < 60 ? 64 : r < 95 ? 2048 : max;
    if (cap > max)
        cap = max;
    return below(s, cap + 1);
}

/* A random valid frame of any type; byte fields point into pool. */
static void random_frame(uint64_t *s, cn_frame_t *f)
{
    memset(f, 0, sizeof(*f));
    f->type = (uint8_t)(CN_FRAME_OPEN + below(s, CN_FRAME_GOAWAY));
    f->stream = is_connection_frame(f->type) ? 0 : 1 + below(s, CN_FRAME_MAX_STREAM);
    const uint8_t *src = pool + below(s, CN_FRAME_MAX_PAYLOAD);
    switch (f->type) {
    case CN_FRAME_OPEN:
        f->u.open.window = below(s, CN_FRAME_MAX_WINDOW + 1);
        f->u.open.kind = (uint8_t)(1 + below(s, 255));
        f->u.open.ref_len = (uint8_t)below(s, CN_FRAME_MAX_REF + 1);
        f->u.open.ref = src;
        f->u.open.meta_len = some_len(s, CN_FRAME_MAX_PAYLOAD - 6 - f->u.open.ref_len);
        f->u.open.meta = src + f->u.open.ref_len;
        break;
    case CN_FRAME_OPEN_ACK:
        f->u.window = below(s, CN_FRAME_MAX_WINDOW + 1);
        break;
    case CN_FRAME_WINDOW:
        f->u.window = 1 + below(s, CN_FRAME_MAX_WINDOW);
        break;
    case CN_FRAME_RST:
    case CN_FRAME_GOAWAY:
        f->u.reason.code = below(s, CN_RST_INTERNAL + 3);
        f->u.reason.msg_len = some_len(s, CN_FRAME_MAX_REASON);
        f->u.reason.msg = src;
        break;
    case CN_FRAME_PING:
    case CN_FRAME_PONG:
        f->u.ping = rnd(s);
        break;
    case CN_FRAME_DATA:
        f->len = some_len(s, CN_FRAME_MAX_PAYLOAD);
        break;
    case CN_FRAME_CONTROL:
        f->len = 1 + some_len(s, CN_FRAME_MAX_PAYLOAD - 1);
        break;
    case CN_FRAME_DATAGRAM:
        f->len = some_len(s, CN_FRAME_MAX_DATAGRAM);
        break;
    default:
        break;
    }
    if (f->len)
        f->payload = src;
}

static int group_setup(void **state)
{
    cn_test_fill(pool, sizeof(pool), 0xf7a3e);
    uint64_t s = 0x5eed0f7a3e5ull;
    stream_frames = calloc(STREAM_FRAMES, sizeof(*stream_frames));
    if (!stream_frames)
        return -1;
    stream_len = 0;
    for (size_t i = 0; i < STREAM_FRAMES; i++) {
        random_frame(&s, &stream_frames[i]);
        stream_len += cn_frame_size(&stream_frames[i]);
    }
    stream_wire = malloc(stream_len);
    if (!stream_wire)
        return -1;
    size_t off = 0;
    for (size_t i = 0; i < STREAM_FRAMES; i++) {
        int rc = cn_frame_encode(&stream_frames[i], stream_wire + off, stream_len - off);
        if (rc <= 0)
            return -1;
        off += (size_t)rc;
    }
    return off == stream_len ? 0 : -1;
}

static int group_teardown(void **state)
{
    free(stream_frames);
    free(stream_wire);
    return 0;
}

struct split_row {
    const char *name;
    size_t max_chunk; /* chunks of 1..max_chunk bytes; 0: all of it in one call */
    uint64_t seed;
};

static const struct split_row splits[] = {
    {"in one call", 0, 1},
    {"one byte per call", 1, 2},
    {"chunks of 1..13 bytes", 13, 3},
    {"chunks of 1..1500 bytes", 1500, 4},
    {"chunks of 1..70000 bytes", 70000, 5},
    {"chunks of 1..1 MiB", 1u << 20, 6},
};

/* The same frames come out whatever the split; a frame that starts and ends
 * inside one call borrows from the input, any other is gathered. */
static void test_random_stream(void **state)
{
    const struct split_row *row = *state;
    const uint8_t *w = stream_wire;
    const size_t n = stream_len;
    uint64_t s = row->seed;
    size_t off = 0, got = 0, frame_start = 0;
    cn_frame_decoder_t *d = cn_frame_decoder_new();
    assert_non_null(d);
    while (off < n) {
        size_t chunk = row->max_chunk ? 1 + (size_t)(rnd(&s) % row->max_chunk) : n;
        size_t end = chunk < n - off ? off + chunk : n;
        while (off < end) {
            const uint8_t *in = w + off;
            cn_frame_t f;
            size_t used;
            int rc = cn_frame_decode(d, in, end - off, &used, &f);
            assert_true(used <= end - off);
            off += used;
            if (rc == 0) {
                assert_int_equal(off, end);
                break;
            }
            assert_int_equal(rc, 1);
            assert_true(got < STREAM_FRAMES);
            const cn_frame_t *want = &stream_frames[got];
            assert_frame_equal(want, &f);
            assert_int_equal(off - frame_start, cn_frame_size(want));
            if (in == w + frame_start)
                assert_ptr_equal(f.payload, in + CN_FRAME_HEADER);
            else if (f.len)
                assert_true(f.payload < w || f.payload >= w + n);
            frame_start = off;
            got++;
        }
    }
    assert_int_equal(got, STREAM_FRAMES);
    assert_false(cn_frame_decoder_pending(d));
    cn_frame_decoder_free(d);
}

/* ---- CONTROL and JSON ------------------------------------------------------- */

/* A JSON object goes out compact and comes back equal. */
static void test_control_json_round_trip(void **state)
{
    json_t *obj = json_pack("{s:s, s:s, s:i, s:b, s:{s:[i,i]}}", "type", "tunnel.up", "id",
                            "tun_7f3a9c", "port", 8080, "public", 1, "limits", "streams", 64, 128);
    assert_non_null(obj);
    const char compact[] = "{\"type\":\"tunnel.up\",\"id\":\"tun_7f3a9c\",\"port\":8080,"
                           "\"public\":true,\"limits\":{\"streams\":[64,128]}}";
    int n = cn_frame_encode_control(obj, wire, sizeof(wire));
    assert_int_equal(n, CN_FRAME_HEADER + LEN(compact));
    assert_memory_equal(wire + CN_FRAME_HEADER, compact, LEN(compact));

    cn_frame_decoder_t *d = cn_frame_decoder_new();
    assert_non_null(d);
    cn_frame_t f;
    decode_one(wire, (size_t)n, d, &f);
    assert_int_equal(f.type, CN_FRAME_CONTROL);
    assert_int_equal(f.stream, 0);
    json_t *back = NULL;
    assert_int_equal(cn_frame_parse_control(&f, &back), 0);
    assert_non_null(back);
    assert_true(json_equal(obj, back));
    json_decref(back);

    /* The same, gathered one byte at a time. */
    decode_bytewise(wire, (size_t)n, d, &f);
    assert_int_equal(cn_frame_parse_control(&f, &back), 0);
    assert_true(json_equal(obj, back));
    json_decref(back);

    /* An empty object is the smallest CONTROL frame. */
    json_t *empty = json_object();
    assert_int_equal(cn_frame_encode_control(empty, wire, sizeof(wire)), CN_FRAME_HEADER + 2);
    assert_memory_equal(wire + CN_FRAME_HEADER, "{}", 2);
    json_decref(empty);
    json_decref(obj);
    cn_frame_decoder_free(d);
}

/* Only an object is encoded, only when it fits the frame and the buffer. */
static void test_control_encode_errors(void **state)
{
    json_t *arr = json_pack("[i]", 1);
    json_t *str = json_string("hello");
    assert_int_equal(cn_frame_encode_control(NULL, wire, sizeof(wire)), CN_EINVAL);
    assert_int_equal(cn_frame_encode_control(arr, wire, sizeof(wire)), CN_EINVAL);
    assert_int_equal(cn_frame_encode_control(str, wire, sizeof(wire)), CN_EINVAL);
    json_decref(arr);
    json_decref(str);

    json_t *obj = json_pack("{s:s}", "type", "ping");
    int n = cn_frame_encode_control(obj, wire, sizeof(wire));
    assert_true(n > CN_FRAME_HEADER);
    assert_int_equal(cn_frame_encode_control(obj, wire, (size_t)n - 1), CN_EAGAIN);
    assert_int_equal(cn_frame_encode_control(obj, wire, 0), CN_EAGAIN);
    assert_int_equal(cn_frame_encode_control(obj, wire, (size_t)n), n);
    json_decref(obj);

    /* {"k":"..."} is 8 bytes plus the string: one byte over, then exactly at the limit. */
    char *big = malloc(CN_FRAME_MAX_PAYLOAD);
    assert_non_null(big);
    memset(big, 'a', CN_FRAME_MAX_PAYLOAD);
    obj = json_pack("{s:s#}", "k", big, (int)(CN_FRAME_MAX_PAYLOAD - 7));
    assert_int_equal(cn_frame_encode_control(obj, wire, sizeof(wire)), CN_ETOOBIG);
    json_decref(obj);
    obj = json_pack("{s:s#}", "k", big, (int)(CN_FRAME_MAX_PAYLOAD - 8));
    assert_int_equal(cn_frame_encode_control(obj, wire, sizeof(wire)), (int)WIRE_MAX);
    json_decref(obj);
    free(big);
}

struct control_row {
    const char *name;
    const char *bytes; /* the CONTROL payload */
    size_t len;
};

static const struct control_row bad_controls[] = {
    {"an array", BYTES("[1,2]")},
    {"a string", BYTES("\"ok\"")},
    {"a number", BYTES("42")},
    {"true", BYTES("true")},
    {"null", BYTES("null")},
    {"an unterminated object", BYTES("{\"a\":1")},
    {"an object with trailing bytes", BYTES("{\"a\":1}x")},
    {"two objects", BYTES("{}{}")},
    {"a duplicate key", BYTES("{\"a\":1,\"a\":2}")},
    {"invalid UTF-8", BYTES("{\"a\":\"\xff\xfe\"}")},
    {"an escaped NUL", BYTES("{\"a\":\"\\u0000\"}")},
    {"a raw NUL after the object", BYTES("{}\0")},
    {"garbage", BYTES("\x01\x02garbage")},
    {"whitespace only", BYTES(" \n")},
};

/* The decoder accepts any non-empty CONTROL payload; cn_frame_parse_control
 * refuses anything but a single JSON object. */
static void test_control_parse_rejects(void **state)
{
    const struct control_row *row = *state;
    cn_frame_t want = {
        .type = CN_FRAME_CONTROL, .len = (uint32_t)row->len, .payload = U8(row->bytes)};
    int n = cn_frame_encode(&want, wire, sizeof(wire));
    assert_int_equal(n, CN_FRAME_HEADER + row->len);
    cn_frame_decoder_t *d = cn_frame_decoder_new();
    assert_non_null(d);
    cn_frame_t f;
    decode_one(wire, (size_t)n, d, &f);
    assert_frame_equal(&want, &f);
    json_t *obj = json_true(); /* a singleton: the call must clear it */
    assert_int_equal(cn_frame_parse_control(&f, &obj), CN_EPROTO);
    assert_null(obj);
    cn_frame_decoder_free(d);
}

/* Only a CONTROL frame carries JSON. */
static void test_control_parse_needs_control(void **state)
{
    cn_frame_t f = {.type = CN_FRAME_DATA, .stream = 1, .len = 2, .payload = U8("{}")};
    json_t *obj = NULL;
    assert_int_equal(cn_frame_parse_control(&f, &obj), CN_EINVAL);
    assert_null(obj);
}

/* Every type has its log name; anything else is "?". */
static void test_type_names(void **state)
{
    static const char *names[] = {"OPEN", "OPEN_ACK", "DATA",    "WINDOW",   "FIN",   "RST",
                                  "PING", "PONG",     "CONTROL", "DATAGRAM", "GOAWAY"};
    for (uint8_t t = CN_FRAME_OPEN; t <= CN_FRAME_GOAWAY; t++)
        assert_string_equal(cn_frame_type_name(t), names[t - 1]);
    assert_string_equal(cn_frame_type_name(0), "?");
    assert_string_equal(cn_frame_type_name(12), "?");
    assert_string_equal(cn_frame_type_name(255), "?");
}

#define ROWS(table) (sizeof(table) / sizeof((table)[0]))

int main(void)
{
    for (size_t i = 0; i < ROWS(wire_vectors); i++)
        add_case(test_wire_bytes, &wire_vectors[i], "wire bytes: %s", wire_vectors[i].name);
    for (size_t i = 0; i < ROWS(valid_frames); i++)
        add_case(test_round_trip, &valid_frames[i], "round trip: %s", valid_frames[i].name);
    for (size_t i = 0; i < ROWS(valid_frames); i++)
        add_case(test_bytewise_equals_one_shot, &valid_frames[i], "byte at a time: %s",
                 valid_frames[i].name);
    add_case(test_empty_input, NULL, "empty input: (NULL, 0) is no input, in any state");
    add_case(test_zero_copy, NULL, "zero copy: whole frames borrow from the input");
    for (size_t i = 0; i < ROWS(splits); i++)
        add_case(test_random_stream, &splits[i], "random stream of %d frames, %s", STREAM_FRAMES,
                 splits[i].name);
    for (size_t i = 0; i < ROWS(bad_frames); i++)
        add_case(test_reject, &bad_frames[i], "reject %s: %s", code_name(bad_frames[i].want),
                 bad_frames[i].name);
    add_case(test_unknown_types, NULL, "reject CN_EUNKNOWN: every type 0 and 12..255");
    add_case(test_too_big_never_allocates, NULL,
             "reject CN_ETOOBIG: from the header, without allocating");
    for (size_t i = 0; i < ROWS(invalid_frames); i++)
        add_case(test_encoder_rejects, &invalid_frames[i], "encoder refuses: %s",
                 invalid_frames[i].name);
    add_case(test_write_header, NULL, "write_header: validates, matches the encoder");
    add_case(test_pending_reports_truncation, NULL, "pending: reports a truncated frame");
    add_case(test_control_json_round_trip, NULL, "CONTROL: a JSON object round-trips");
    add_case(test_control_encode_errors, NULL, "CONTROL: encoder takes objects that fit");
    for (size_t i = 0; i < ROWS(bad_controls); i++)
        add_case(test_control_parse_rejects, &bad_controls[i], "CONTROL: parse refuses %s",
                 bad_controls[i].name);
    add_case(test_control_parse_needs_control, NULL, "CONTROL: parse needs a CONTROL frame");
    add_case(test_type_names, NULL, "type names");

    int failed = _cmocka_run_group_tests("cn_frame", cases, ncases, group_setup, group_teardown);
    for (size_t i = 0; i < ncases; i++)
        free((void *)(uintptr_t)cases[i].name);
    free(cases);
    return failed;
}
