/* Frame codec: encode from typed fields, decode incrementally with every
 * length checked before it is used, so hostile input is an error code and
 * never a crash or an unbounded allocation. */
#include "cn_frame.h"
#include "cn_err.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct cn_frame_decoder {
    uint8_t hdr[CN_FRAME_HEADER];
    size_t hdr_have;
    uint8_t *body; /* CN_FRAME_MAX_PAYLOAD bytes once a frame straddles calls */
    uint32_t body_len;
    uint32_t body_have;
    int err; /* sticky */
};

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

const char *cn_frame_type_name(uint8_t type)
{
    static const char *names[] = {"?",   "OPEN", "OPEN_ACK", "DATA",    "WINDOW",   "FIN",
                                  "RST", "PING", "PONG",     "CONTROL", "DATAGRAM", "GOAWAY"};
    return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}

/* Connection-level frames live on stream 0, stream frames never do. */
static int stream_ok(uint8_t type, uint32_t stream)
{
    if (stream > CN_FRAME_MAX_STREAM)
        return 0;
    switch (type) {
    case CN_FRAME_PING:
    case CN_FRAME_PONG:
    case CN_FRAME_CONTROL:
    case CN_FRAME_GOAWAY:
        return stream == 0;
    default:
        return stream != 0;
    }
}

/* Checks a payload against its type's layout and fills the typed fields. */
static int parse_payload(cn_frame_t *f)
{
    const uint8_t *p = f->payload;
    uint32_t n = f->len;
    switch (f->type) {
    case CN_FRAME_OPEN:
        if (n < 6)
            return CN_EPROTO;
        f->u.open.window = get32(p);
        f->u.open.kind = p[4];
        f->u.open.ref_len = p[5];
        if (f->u.open.window > CN_FRAME_MAX_WINDOW || f->u.open.kind == 0 ||
            (uint32_t)f->u.open.ref_len > n - 6)
            return CN_EPROTO;
        f->u.open.ref = p + 6;
        f->u.open.meta = p + 6 + f->u.open.ref_len;
        f->u.open.meta_len = n - 6 - f->u.open.ref_len;
        return 0;
    case CN_FRAME_OPEN_ACK:
    case CN_FRAME_WINDOW:
        if (n != 4)
            return CN_EPROTO;
        f->u.window = get32(p);
        if (f->u.window > CN_FRAME_MAX_WINDOW || (f->type == CN_FRAME_WINDOW && f->u.window == 0))
            return CN_EPROTO;
        return 0;
    case CN_FRAME_DATA:
        return 0;
    case CN_FRAME_FIN:
        return n == 0 ? 0 : CN_EPROTO;
    case CN_FRAME_RST:
    case CN_FRAME_GOAWAY:
        if (n < 4 || n - 4 > CN_FRAME_MAX_REASON)
            return CN_EPROTO;
        f->u.reason.code = get32(p);
        f->u.reason.msg = p + 4;
        f->u.reason.msg_len = n - 4;
        return 0;
    case CN_FRAME_PING:
    case CN_FRAME_PONG:
        if (n != 8)
            return CN_EPROTO;
        f->u.ping = get64(p);
        return 0;
    case CN_FRAME_CONTROL:
        return n > 0 ? 0 : CN_EPROTO;
    case CN_FRAME_DATAGRAM:
        return n <= CN_FRAME_MAX_DATAGRAM ? 0 : CN_ETOOBIG;
    default:
        return CN_EUNKNOWN;
    }
}

/* Payload length the typed fields encode to, or -1 when they are invalid. */
static long payload_size(const cn_frame_t *f)
{
    switch (f->type) {
    case CN_FRAME_OPEN:
        if (f->u.open.kind == 0 || f->u.open.window > CN_FRAME_MAX_WINDOW ||
            (f->u.open.ref_len && !f->u.open.ref) || (f->u.open.meta_len && !f->u.open.meta) ||
            f->u.open.meta_len > CN_FRAME_MAX_PAYLOAD - 6 - f->u.open.ref_len)
            return -1;
        return 6L + f->u.open.ref_len + f->u.open.meta_len;
    case CN_FRAME_OPEN_ACK:
    case CN_FRAME_WINDOW:
        if (f->u.window > CN_FRAME_MAX_WINDOW || (f->type == CN_FRAME_WINDOW && f->u.window == 0))
            return -1;
        return 4;
    case CN_FRAME_FIN:
        return 0;
    case CN_FRAME_RST:
    case CN_FRAME_GOAWAY:
        if (f->u.reason.msg_len > CN_FRAME_MAX_REASON || (f->u.reason.msg_len && !f->u.reason.msg))
            return -1;
        return 4L + f->u.reason.msg_len;
    case CN_FRAME_PING:
    case CN_FRAME_PONG:
        return 8;
    case CN_FRAME_DATA:
    case CN_FRAME_CONTROL:
    case CN_FRAME_DATAGRAM:
        if (f->len >
                (f->type == CN_FRAME_DATAGRAM ? CN_FRAME_MAX_DATAGRAM : CN_FRAME_MAX_PAYLOAD) ||
            (f->len && !f->payload) || (f->type == CN_FRAME_CONTROL && f->len == 0))
            return -1;
        return f->len;
    default:
        return -1;
    }
}

size_t cn_frame_size(const cn_frame_t *f)
{
    long n = payload_size(f);
    if (n < 0 || !stream_ok(f->type, f->stream))
        return 0;
    return CN_FRAME_HEADER + (size_t)n;
}

int cn_frame_write_header(uint8_t out[static CN_FRAME_HEADER], uint8_t type, uint32_t stream,
                          uint32_t len)
{
    if (type < CN_FRAME_OPEN || type > CN_FRAME_GOAWAY || !stream_ok(type, stream) ||
        len > CN_FRAME_MAX_PAYLOAD)
        return CN_EINVAL;
    out[0] = CN_FRAME_VERSION;
    out[1] = type;
    out[2] = 0;
    out[3] = 0;
    put32(out + 4, stream);
    put32(out + 8, len);
    return CN_FRAME_HEADER;
}

int cn_frame_encode(const cn_frame_t *f, uint8_t *out, size_t cap)
{
    size_t total = cn_frame_size(f);
    if (total == 0)
        return CN_EINVAL;
    if (total > cap)
        return CN_EAGAIN;
    uint32_t n = (uint32_t)(total - CN_FRAME_HEADER);
    int rc = cn_frame_write_header(out, f->type, f->stream, n);
    if (rc < 0)
        return rc;
    uint8_t *p = out + CN_FRAME_HEADER;
    switch (f->type) {
    case CN_FRAME_OPEN:
        put32(p, f->u.open.window);
        p[4] = f->u.open.kind;
        p[5] = f->u.open.ref_len;
        if (f->u.open.ref_len)
            memcpy(p + 6, f->u.open.ref, f->u.open.ref_len);
        if (f->u.open.meta_len)
            memcpy(p + 6 + f->u.open.ref_len, f->u.open.meta, f->u.open.meta_len);
        break;
    case CN_FRAME_OPEN_ACK:
    case CN_FRAME_WINDOW:
        put32(p, f->u.window);
        break;
    case CN_FRAME_RST:
    case CN_FRAME_GOAWAY:
        put32(p, f->u.reason.code);
        if (f->u.reason.msg_len)
            memcpy(p + 4, f->u.reason.msg, f->u.reason.msg_len);
        break;
    case CN_FRAME_PING:
    case CN_FRAME_PONG:
        put64(p, f->u.ping);
        break;
    case CN_FRAME_FIN:
        break;
    default:
        if (n)
            memcpy(p, f->payload, n);
        break;
    }
    return (int)total;
}

cn_frame_decoder_t *cn_frame_decoder_new(void)
{
    return calloc(1, sizeof(cn_frame_decoder_t));
}

void cn_frame_decoder_free(cn_frame_decoder_t *d)
{
    if (!d)
        return;
    free(d->body);
    free(d);
}

int cn_frame_decoder_pending(const cn_frame_decoder_t *d)
{
    return d->hdr_have > 0;
}

/* Validates a complete header; fills type, stream and len. */
static int parse_header(const uint8_t *h, cn_frame_t *f)
{
    if (h[0] != CN_FRAME_VERSION)
        return CN_EVERSION;
    if (h[1] < CN_FRAME_OPEN || h[1] > CN_FRAME_GOAWAY)
        return CN_EUNKNOWN;
    if (h[2] || h[3])
        return CN_EPROTO; /* reserved flags */
    f->type = h[1];
    f->stream = get32(h + 4);
    f->len = get32(h + 8);
    if (f->len > CN_FRAME_MAX_PAYLOAD)
        return CN_ETOOBIG;
    if (!stream_ok(f->type, f->stream))
        return CN_EPROTO;
    return 0;
}

static int fail(cn_frame_decoder_t *d, int err)
{
    d->err = err;
    return err;
}

int cn_frame_decode(cn_frame_decoder_t *d, const uint8_t *in, size_t len, size_t *used,
                    cn_frame_t *out)
{
    size_t off = 0;
    int rc;
    *used = 0;
    if (d->err)
        return d->err;
    memset(out, 0, sizeof(*out));

    /* Fast path: idle decoder and a whole frame in the input, no copy. */
    if (d->hdr_have == 0 && len >= CN_FRAME_HEADER) {
        rc = parse_header(in, out);
        if (rc)
            return fail(d, rc);
        if (len - CN_FRAME_HEADER >= out->len) {
            out->payload = in + CN_FRAME_HEADER;
            rc = parse_payload(out);
            if (rc)
                return fail(d, rc);
            *used = CN_FRAME_HEADER + out->len;
            return 1;
        }
    }

    if (d->hdr_have < CN_FRAME_HEADER) {
        size_t take = CN_FRAME_HEADER - d->hdr_have;
        if (take > len)
            take = len;
        if (take) /* in may be NULL when len is 0 (an empty cn_buf) */
            memcpy(d->hdr + d->hdr_have, in, take);
        d->hdr_have += take;
        off += take;
        if (d->hdr_have < CN_FRAME_HEADER) {
            *used = off;
            return 0;
        }
        rc = parse_header(d->hdr, out);
        if (rc)
            return fail(d, rc);
        d->body_len = out->len;
        d->body_have = 0;
        if (d->body_len && !d->body) {
            d->body = malloc(CN_FRAME_MAX_PAYLOAD);
            if (!d->body)
                return fail(d, CN_ENOMEM);
        }
    }

    size_t take = d->body_len - d->body_have;
    if (take > len - off)
        take = len - off;
    if (take)
        memcpy(d->body + d->body_have, in + off, take);
    d->body_have += (uint32_t)take;
    off += take;
    *used = off;
    if (d->body_have < d->body_len)
        return 0;

    rc = parse_header(d->hdr, out);
    if (rc)
        return fail(d, rc);
    out->payload = d->body;
    d->hdr_have = 0;
    rc = parse_payload(out);
    if (rc)
        return fail(d, rc);
    return 1;
}

int cn_frame_encode_control(const struct json_t *obj, uint8_t *out, size_t cap)
{
    if (!obj || !json_is_object(obj))
        return CN_EINVAL;
    size_t n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
    if (n == 0 || n > CN_FRAME_MAX_PAYLOAD)
        return n ? CN_ETOOBIG : CN_EINVAL;
    if (cap < CN_FRAME_HEADER + n)
        return CN_EAGAIN;
    if (json_dumpb(obj, (char *)out + CN_FRAME_HEADER, n, JSON_COMPACT) != n)
        return CN_EINVAL;
    int rc = cn_frame_write_header(out, CN_FRAME_CONTROL, 0, (uint32_t)n);
    if (rc < 0)
        return rc;
    return (int)(CN_FRAME_HEADER + n);
}

int cn_frame_parse_control(const cn_frame_t *f, struct json_t **obj)
{
    json_error_t jerr;
    *obj = NULL;
    if (f->type != CN_FRAME_CONTROL)
        return CN_EINVAL;
    json_t *v = json_loadb((const char *)f->payload, f->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        return CN_EPROTO;
    if (!json_is_object(v)) {
        json_decref(v);
        return CN_EPROTO;
    }
    *obj = v;
    return 0;
}
