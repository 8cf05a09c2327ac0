/* cn_wsc: sans-IO RFC 6455 client (see cn_wsc.h for why it exists).
 *
 * Three parts: the upgrade request and a strict check of the 101 answer; the
 * send side (header writer and a word-at-a-time masker); the receive side, a
 * frame parser that buffers only frame headers and control payloads and hands
 * data payload over as slices of the caller's input. */
#include "cn_wsc.h"
#include "cn_err.h"
#include "cn_utf8.h"
#include "cn_errmsg.h"

#include <libwebsockets.h>
#include <sodium.h>

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define KEY_B64_LEN 24    /* base64 of 16 bytes */
#define ACCEPT_B64_LEN 28 /* base64 of a 20-byte SHA-1 */
#define MAX_CONTROL_PAYLOAD 125
#define MAX_CLOSE_REASON 123

enum rx_state {
    RX_HEADER,  /* collecting a frame header into hdr[] */
    RX_DATA,    /* delivering `left` payload bytes of a data frame */
    RX_CONTROL, /* collecting a control payload into ctrl[] */
};

/* One queued control frame. At most one of each kind is ever queued (a newer
 * ping's pong replaces an unsent one, as RFC 6455 5.5.3 allows), so three
 * slots bound the queue. */
struct out_frame {
    uint8_t op;
    uint8_t len;
    uint8_t bytes[CN_WSC_MAX_CONTROL];
};

struct cn_wsc {
    int state;
    int err; /* sticky once FAILED */
    const char *detail;
    int http_status;
    bool fed;
    uint64_t max_message;

    /* Handshake. */
    char *req;
    size_t req_len;
    size_t key_off; /* where the 24 key characters sit in req */
    char *subprotocol;
    char accept[ACCEPT_B64_LEN + 1];
    char head[CN_WSC_MAX_RESPONSE_HEAD];
    size_t head_len;

    /* Frame parser. */
    int rx;
    uint8_t hdr[CN_WSC_MAX_HEADER];
    size_t hdr_have;
    size_t hdr_need;
    int opcode;
    bool frame_fin;
    uint64_t left;      /* payload bytes still to come in this frame */
    bool in_message;    /* a fragmented data message awaits continuations */
    bool first_pending; /* the message's first slice is not yet delivered */
    uint64_t msg_len;
    uint8_t ctrl[MAX_CONTROL_PAYLOAD];
    size_t ctrl_have;
    size_t ctrl_need;

    /* Control frames to send. */
    struct out_frame out[3];
    size_t n_out;
    bool close_queued;
};

/* ---- small helpers ---------------------------------------------------- */

static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

/* Visible ASCII, no spaces: what a Host value or request target may hold. */
static bool is_visible(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* A field value may hold HTAB, SP, VCHAR and obs-text; no other control. */
static bool is_field_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* s[0..n) equals the lowercase literal `lit`, ignoring ASCII case. */
static bool ci_equal(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != lit[i])
            return false;
    return true;
}

static bool ci_prefix(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n >= m && ci_equal(s, m, lit);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void trim_ows(const char **s, size_t *n)
{
    while (*n && is_ows(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_ows((*s)[*n - 1]))
        (*n)--;
}

/* The first "\r\n" (crlfs = 1) or "\r\n\r\n" (crlfs = 2) in s[0..n), or
 * NULL. Local rather than memmem(), which is a GNU extension. */
static const char *find_crlf(const char *s, size_t n, int crlfs)
{
    size_t need = crlfs == 2 ? 4 : 2;
    for (const char *p = s; (size_t)(s + n - p) >= need;) {
        p = memchr(p, '\r', (size_t)(s + n - p) - (need - 1));
        if (!p)
            return NULL;
        if (p[1] == '\n' && (need == 2 || (p[2] == '\r' && p[3] == '\n')))
            return p;
        p++;
    }
    return NULL;
}

/* Codes an endpoint may put on the wire (RFC 6455 7.4 and the IANA registry):
 * 1004-1006 and 1015 are reserved for local use, 1016-2999 unassigned. */
static bool close_code_valid(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* ---- send side -------------------------------------------------------- */

static bool opcode_sendable(int opcode)
{
    return opcode == CN_WSC_OP_BINARY || opcode == CN_WSC_OP_CLOSE || opcode == CN_WSC_OP_PING ||
           opcode == CN_WSC_OP_PONG;
}

size_t cn_wsc_frame_header(uint8_t out[static CN_WSC_MAX_HEADER], int opcode, uint64_t payload_len,
                           const uint8_t mask[static 4])
{
    if (!opcode_sendable(opcode) || payload_len >> 63)
        return 0;
    if (opcode >= CN_WSC_OP_CLOSE && payload_len > MAX_CONTROL_PAYLOAD)
        return 0;
    size_t n = 2;
    out[0] = (uint8_t)(0x80 | opcode);
    if (payload_len < 126) {
        out[1] = (uint8_t)(0x80 | payload_len);
    } else if (payload_len <= 0xffff) {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        n = 4;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
        n = 10;
    }
    memcpy(out + n, mask, 4);
    return n + 4;
}

void cn_wsc_mask(uint8_t *p, size_t len, const uint8_t mask[static 4], size_t offset)
{
    /* m[k] masks the byte k positions after p (mod 4). */
    uint8_t m[4];
    for (size_t k = 0; k < 4; k++)
        m[k] = mask[(offset + k) & 3];

    /* Bytes up to the first 8-byte boundary, so the word loop runs aligned. */
    size_t i = 0;
    size_t head = (size_t)((8 - ((uintptr_t)p & 7)) & 7);
    if (head > len)
        head = len;
    for (; i < head; i++)
        p[i] ^= m[i & 3];

    /* A word whose bytes line up with the mask phase at i; since 8 is a
     * multiple of 4, the phase stays put from word to word. memcpy keeps this
     * free of aliasing and alignment UB and compiles to plain loads/stores. */
    uint8_t wb[8];
    for (size_t k = 0; k < 8; k++)
        wb[k] = m[(i + k) & 3];
    uint64_t w;
    memcpy(&w, wb, 8);
    for (; len - i >= 32; i += 32) {
        uint64_t a, b, c, d;
        memcpy(&a, p + i, 8);
        memcpy(&b, p + i + 8, 8);
        memcpy(&c, p + i + 16, 8);
        memcpy(&d, p + i + 24, 8);
        a ^= w;
        b ^= w;
        c ^= w;
        d ^= w;
        memcpy(p + i, &a, 8);
        memcpy(p + i + 8, &b, 8);
        memcpy(p + i + 16, &c, 8);
        memcpy(p + i + 24, &d, 8);
    }
    for (; len - i >= 8; i += 8) {
        uint64_t a;
        memcpy(&a, p + i, 8);
        a ^= w;
        memcpy(p + i, &a, 8);
    }
    for (; i < len; i++)
        p[i] ^= m[i & 3];
}

/* Mask keys come from a per-thread pool refilled from libsodium every
 * MASK_POOL frames: libsodium 1.0.18 makes one getrandom() call per
 * randombytes_buf(), 266 ns for 4 bytes here, against ~10 ns a mask drawn in
 * bulk. Masks must be unpredictable to the peer and the path (RFC 6455 5.3),
 * which every one still is: each is fresh CSPRNG output, only fetched ahead.
 * A forked child drops the pool it inherited so it never sends its parent's
 * next masks. Per thread rather than per connection, so no caller changes. */
#define MASK_POOL 256

static _Thread_local struct {
    uint8_t bytes[4 * MASK_POOL];
    unsigned left; /* masks not yet used, taken from the end */
} mask_pool;
static pthread_once_t mask_pool_once = PTHREAD_ONCE_INIT;

static void mask_pool_forget(void)
{
    sodium_memzero(&mask_pool, sizeof(mask_pool));
}

static void mask_pool_register(void)
{
    /* If registering fails the pool still works; only a forked child could
     * then repeat masks, and nothing in Connect forks. */
    (void)pthread_atfork(NULL, NULL, mask_pool_forget);
}

static void next_mask(uint8_t mask[static 4])
{
    if (!mask_pool.left) {
        (void)pthread_once(&mask_pool_once, mask_pool_register);
        randombytes_buf(mask_pool.bytes, sizeof(mask_pool.bytes));
        mask_pool.left = MASK_POOL;
    }
    mask_pool.left--;
    memcpy(mask, mask_pool.bytes + 4 * mask_pool.left, 4);
}

int cn_wsc_wrap(uint8_t *payload, size_t len, size_t headroom, int opcode, uint8_t **frame,
                size_t *frame_len)
{
    uint8_t hdr[CN_WSC_MAX_HEADER];
    uint8_t mask[4];
    next_mask(mask);
    size_t hl = cn_wsc_frame_header(hdr, opcode, len, mask);
    if (hl == 0 || headroom < hl)
        return CN_EINVAL;
    uint8_t *start = payload - hl;
    memcpy(start, hdr, hl);
    cn_wsc_mask(payload, len, mask, 0);
    *frame = start;
    *frame_len = hl + len;
    return 0;
}

/* A whole masked control frame; 0 when the payload is too long. */
static size_t control_frame(uint8_t out[static CN_WSC_MAX_CONTROL], int opcode,
                            const uint8_t *payload, size_t len)
{
    uint8_t mask[4];
    next_mask(mask);
    size_t hl = cn_wsc_frame_header(out, opcode, len, mask);
    if (hl == 0)
        return 0;
    if (len)
        memcpy(out + hl, payload, len);
    cn_wsc_mask(out + hl, len, mask, 0);
    return hl + len;
}

size_t cn_wsc_pong_frame(uint8_t out[static CN_WSC_MAX_CONTROL], const uint8_t *payload, size_t len)
{
    return control_frame(out, CN_WSC_OP_PONG, payload, len);
}

size_t cn_wsc_close_frame(uint8_t out[static CN_WSC_MAX_CONTROL], uint16_t code, const char *reason,
                          size_t reason_len)
{
    uint8_t body[2 + MAX_CLOSE_REASON];
    if (code == 0)
        return reason_len ? 0 : control_frame(out, CN_WSC_OP_CLOSE, NULL, 0);
    if (!close_code_valid(code) || reason_len > MAX_CLOSE_REASON)
        return 0;
    if (reason_len && (!reason || !cn_utf8_valid(reason, reason_len)))
        return 0;
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)code;
    if (reason_len)
        memcpy(body + 2, reason, reason_len);
    return control_frame(out, CN_WSC_OP_CLOSE, body, 2 + reason_len);
}

/* ---- pending control frames ------------------------------------------- */

static struct out_frame *find_out(cn_wsc_t *ws, int op)
{
    for (size_t i = 0; i < ws->n_out; i++)
        if (ws->out[i].op == op)
            return &ws->out[i];
    return NULL;
}

/* Queues (or, for a pong, replaces) a control frame. Nothing may follow our
 * close, so once it is queued everything else is dropped. */
static int queue_control(cn_wsc_t *ws, int op, const uint8_t *payload, size_t len, uint16_t code)
{
    if (ws->close_queued)
        return CN_ESTATE;
    struct out_frame *f = find_out(ws, op);
    if (f && op != CN_WSC_OP_PONG)
        return CN_EAGAIN;
    if (!f) {
        /* One slot per kind (pong, ping, close): cannot overflow. */
        assert(ws->n_out < sizeof(ws->out) / sizeof(ws->out[0]));
        f = &ws->out[ws->n_out];
    }
    size_t n;
    if (op == CN_WSC_OP_CLOSE)
        n = cn_wsc_close_frame(f->bytes, code, (const char *)payload, len);
    else
        n = control_frame(f->bytes, op, payload, len);
    if (n == 0)
        return CN_EINVAL;
    if (f == &ws->out[ws->n_out])
        ws->n_out++;
    f->op = (uint8_t)op;
    f->len = (uint8_t)n;
    if (op == CN_WSC_OP_CLOSE)
        ws->close_queued = true;
    return 0;
}

size_t cn_wsc_pending_len(const cn_wsc_t *ws)
{
    size_t n = 0;
    for (size_t i = 0; i < ws->n_out; i++)
        n += ws->out[i].len;
    return n;
}

size_t cn_wsc_take_pending(cn_wsc_t *ws, uint8_t *out, size_t cap)
{
    size_t used = 0;
    size_t taken = 0;
    while (taken < ws->n_out && cap - used >= ws->out[taken].len) {
        memcpy(out + used, ws->out[taken].bytes, ws->out[taken].len);
        used += ws->out[taken].len;
        taken++;
    }
    memmove(ws->out, ws->out + taken, (ws->n_out - taken) * sizeof(ws->out[0]));
    ws->n_out -= taken;
    return used;
}

int cn_wsc_ping(cn_wsc_t *ws, const uint8_t *payload, size_t len)
{
    if (ws->state != CN_WSC_OPEN)
        return CN_ESTATE;
    if (len > MAX_CONTROL_PAYLOAD || (len && !payload))
        return CN_EINVAL;
    return queue_control(ws, CN_WSC_OP_PING, payload, len, 0);
}

int cn_wsc_close(cn_wsc_t *ws, uint16_t code, const char *reason, size_t reason_len)
{
    if (ws->state != CN_WSC_OPEN)
        return CN_ESTATE;
    int rc = queue_control(ws, CN_WSC_OP_CLOSE, (const uint8_t *)reason, reason_len, code);
    if (rc == 0)
        ws->state = CN_WSC_CLOSING;
    return rc;
}

/* ---- handshake -------------------------------------------------------- */

/* lws_b64_encode_string() wants a little more room than the output it
 * writes (it refuses unless out_size >= encoded length + 2). */
#define B64_SLACK 4

static int compute_accept(const char key_b64[KEY_B64_LEN], char out[ACCEPT_B64_LEN + 1])
{
    unsigned char cat[KEY_B64_LEN + sizeof(WS_GUID) - 1];
    unsigned char sha[20];
    char b64[ACCEPT_B64_LEN + B64_SLACK];
    memcpy(cat, key_b64, KEY_B64_LEN);
    memcpy(cat + KEY_B64_LEN, WS_GUID, sizeof(WS_GUID) - 1);
    lws_SHA1(cat, sizeof(cat), sha);
    if (lws_b64_encode_string((const char *)sha, (int)sizeof(sha), b64, (int)sizeof(b64)) !=
        ACCEPT_B64_LEN)
        return CN_ECRYPTO;
    memcpy(out, b64, ACCEPT_B64_LEN);
    out[ACCEPT_B64_LEN] = 0;
    return 0;
}

/* Writes the base64 key into the request and derives the expected accept. */
static int install_key(cn_wsc_t *ws, const uint8_t key[16])
{
    char b64[KEY_B64_LEN + B64_SLACK];
    if (lws_b64_encode_string((const char *)key, 16, b64, (int)sizeof(b64)) != KEY_B64_LEN)
        return CN_ECRYPTO;
    memcpy(ws->req + ws->key_off, b64, KEY_B64_LEN);
    return compute_accept(b64, ws->accept);
}

/* Names the caller may not set: ours, and those that would give the GET a
 * body and so desynchronise the stream. */
static bool header_name_reserved(const char *name, size_t n)
{
    return ci_equal(name, n, "host") || ci_equal(name, n, "upgrade") ||
           ci_equal(name, n, "connection") || ci_equal(name, n, "content-length") ||
           ci_equal(name, n, "transfer-encoding") || ci_prefix(name, n, "sec-websocket-");
}

static bool extra_header_valid(const char *line)
{
    const char *colon = strchr(line, ':');
    if (!colon || !is_token(line, (size_t)(colon - line)))
        return false;
    if (header_name_reserved(line, (size_t)(colon - line)))
        return false;
    return is_field_value(colon + 1, strlen(colon + 1));
}

/* Appends s to dst at *off; with dst NULL only counts, so one routine both
 * sizes and writes the request. */
static void put(char *dst, size_t *off, const char *s)
{
    size_t n = strlen(s);
    /* The request is bytes with a length, never read as a C string: no NUL. */
    if (dst)
        memcpy(dst + *off, s, n); /* NOLINT(bugprone-not-null-terminated-result) */
    *off += n;
}

/* Writes (or with dst NULL, sizes) the request; *key_off gets the offset of
 * the placeholder key that install_key() overwrites. */
static size_t write_request(char *dst, const cn_wsc_config_t *cfg, size_t *key_off)
{
    size_t off = 0;
    put(dst, &off, "GET ");
    put(dst, &off, cfg->path);
    put(dst, &off, " HTTP/1.1\r\nHost: ");
    put(dst, &off, cfg->host);
    put(dst, &off, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    *key_off = off;
    put(dst, &off, "AAAAAAAAAAAAAAAAAAAAAA==");
    put(dst, &off, "\r\nSec-WebSocket-Version: 13\r\n");
    if (cfg->subprotocol) {
        put(dst, &off, "Sec-WebSocket-Protocol: ");
        put(dst, &off, cfg->subprotocol);
        put(dst, &off, "\r\n");
    }
    for (size_t i = 0; i < cfg->n_headers; i++) {
        put(dst, &off, cfg->headers[i]);
        put(dst, &off, "\r\n");
    }
    put(dst, &off, "\r\n");
    return off;
}

static int build_request(cn_wsc_t *ws, const cn_wsc_config_t *cfg)
{
    size_t total = write_request(NULL, cfg, &ws->key_off);
    if (total > CN_WSC_MAX_REQUEST)
        return CN_ETOOBIG;
    ws->req = malloc(total);
    if (!ws->req)
        return CN_ENOMEM;
    ws->req_len = write_request(ws->req, cfg, &ws->key_off);
    return 0;
}

static int check_config(const cn_wsc_config_t *cfg)
{
    if (!cfg || !cfg->host || !cfg->path || !is_visible(cfg->host) || cfg->path[0] != '/' ||
        !is_visible(cfg->path))
        return CN_EINVAL;
    if (cfg->subprotocol && !is_token(cfg->subprotocol, strlen(cfg->subprotocol)))
        return CN_EINVAL;
    if (cfg->n_headers && !cfg->headers)
        return CN_EINVAL;
    for (size_t i = 0; i < cfg->n_headers; i++)
        if (!cfg->headers[i] || !extra_header_valid(cfg->headers[i]))
            return CN_EINVAL;
    return 0;
}

cn_wsc_t *cn_wsc_new(const cn_wsc_config_t *cfg, char *err, size_t errlen)
{
    int rc = check_config(cfg);
    cn_wsc_t *ws = NULL;
    uint8_t key[16];
    if (rc)
        goto fail;
    if (sodium_init() < 0) {
        rc = CN_ECRYPTO;
        goto fail;
    }
    ws = calloc(1, sizeof(*ws));
    if (!ws) {
        rc = CN_ENOMEM;
        goto fail;
    }
    ws->state = CN_WSC_CONNECTING;
    ws->detail = "no error";
    ws->max_message = cfg->max_message ? cfg->max_message : CN_WSC_DEFAULT_MAX_MESSAGE;
    ws->rx = RX_HEADER;
    ws->hdr_need = 2;
    if (cfg->subprotocol) {
        size_t n = strlen(cfg->subprotocol) + 1;
        ws->subprotocol = malloc(n);
        if (!ws->subprotocol) {
            rc = CN_ENOMEM;
            goto fail;
        }
        memcpy(ws->subprotocol, cfg->subprotocol, n);
    }
    rc = build_request(ws, cfg);
    if (rc)
        goto fail;
    randombytes_buf(key, sizeof(key));
    rc = install_key(ws, key);
    sodium_memzero(key, sizeof(key));
    if (rc)
        goto fail;
    return ws;
fail:
    cn_wsc_free(ws);
    cn_errf(rc, err, errlen, "WebSocket client: %s", cn_strerror(rc));
    return NULL;
}

void cn_wsc_free(cn_wsc_t *ws)
{
    if (!ws)
        return;
    free(ws->req);
    free(ws->subprotocol);
    free(ws);
}

int cn_wsc_set_key_for_test(cn_wsc_t *ws, const uint8_t key[static 16])
{
    if (ws->fed || ws->state != CN_WSC_CONNECTING)
        return CN_ESTATE;
    return install_key(ws, key);
}

const uint8_t *cn_wsc_request(const cn_wsc_t *ws, size_t *len)
{
    *len = ws->req_len;
    return (const uint8_t *)ws->req;
}

int cn_wsc_state(const cn_wsc_t *ws)
{
    return ws->state;
}

int cn_wsc_http_status(const cn_wsc_t *ws)
{
    return ws->http_status;
}

const char *cn_wsc_error_detail(const cn_wsc_t *ws)
{
    return ws->detail;
}

/* Moves to FAILED. A frame-level failure also queues a close carrying
 * `close_code` (0: none) for the glue to flush if it wants to be polite. */
static int fail(cn_wsc_t *ws, int err, const char *detail, uint16_t close_code)
{
    if (close_code && (ws->state == CN_WSC_OPEN || ws->state == CN_WSC_CLOSING))
        (void)queue_control(ws, CN_WSC_OP_CLOSE, NULL, 0, close_code);
    ws->state = CN_WSC_FAILED;
    ws->err = err;
    ws->detail = detail;
    return err;
}

/* "HTTP/1.1 101 Switching Protocols": a 3-digit code after "HTTP/d.d ",
 * then a space or the end of the line. */
static int parse_status_line(cn_wsc_t *ws, const char *s, size_t n)
{
    if (n < 12 || memcmp(s, "HTTP/", 5) != 0 || s[5] < '0' || s[5] > '9' || s[6] != '.' ||
        s[7] < '0' || s[7] > '9' || s[8] != ' ')
        return fail(ws, CN_EPROTO, "malformed status line", 0);
    int status = 0;
    for (size_t i = 9; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9')
            return fail(ws, CN_EPROTO, "malformed status line", 0);
        status = status * 10 + (s[i] - '0');
    }
    if (n > 12 && s[12] != ' ')
        return fail(ws, CN_EPROTO, "malformed status line", 0);
    ws->http_status = status;
    if (status != 101)
        return fail(ws, CN_EREFUSED, "server answered with a status other than 101", 0);
    if (s[5] != '1' || s[7] != '1')
        return fail(ws, CN_EPROTO, "response is not HTTP/1.1", 0);
    return 0;
}

/* Checks the complete head (status line to the blank line, CRLFs included). */
static int parse_head(cn_wsc_t *ws)
{
    const char *h = ws->head;
    size_t n = ws->head_len;
    size_t pos = 0;
    int n_upgrade = 0, n_accept = 0, n_proto = 0;
    bool upgrade_ok = false, conn_ok = false, accept_ok = false, proto_ok = false;

    for (bool first = true;; first = false) {
        const char *eol = find_crlf(h + pos, n - pos, 1);
        /* The head ends in CRLFCRLF, so every line has its CRLF. */
        size_t len = (size_t)(eol - (h + pos));
        const char *line = h + pos;
        pos += len + 2;
        if (memchr(line, '\r', len) || memchr(line, '\n', len) || memchr(line, '\0', len))
            return fail(ws, CN_EPROTO, "stray CR, LF or NUL in response head", 0);
        if (first) {
            int rc = parse_status_line(ws, line, len);
            if (rc)
                return rc;
            continue;
        }
        if (len == 0)
            break;
        const char *colon = memchr(line, ':', len);
        if (!colon || !is_token(line, (size_t)(colon - line)))
            return fail(ws, CN_EPROTO, "malformed header line in response", 0);
        size_t nlen = (size_t)(colon - line);
        const char *v = colon + 1;
        size_t vlen = len - nlen - 1;
        trim_ows(&v, &vlen);
        if (!is_field_value(v, vlen))
            return fail(ws, CN_EPROTO, "control character in response header value", 0);

        if (ci_equal(line, nlen, "upgrade")) {
            n_upgrade++;
            upgrade_ok = ci_equal(v, vlen, "websocket");
        } else if (ci_equal(line, nlen, "connection")) {
            /* A comma-separated list of tokens; "upgrade" must be one. */
            size_t i = 0;
            while (i <= vlen) {
                size_t j = i;
                while (j < vlen && v[j] != ',')
                    j++;
                const char *tok = v + i;
                size_t tlen = j - i;
                trim_ows(&tok, &tlen);
                if (ci_equal(tok, tlen, "upgrade"))
                    conn_ok = true;
                i = j + 1;
            }
        } else if (ci_equal(line, nlen, "sec-websocket-accept")) {
            n_accept++;
            accept_ok = vlen == ACCEPT_B64_LEN && memcmp(v, ws->accept, ACCEPT_B64_LEN) == 0;
        } else if (ci_equal(line, nlen, "sec-websocket-protocol")) {
            n_proto++;
            proto_ok = ws->subprotocol && vlen == strlen(ws->subprotocol) &&
                       memcmp(v, ws->subprotocol, vlen) == 0;
        } else if (ci_equal(line, nlen, "sec-websocket-extensions")) {
            return fail(ws, CN_EPROTO, "server selected an extension we did not offer", 0);
        }
    }

    if (n_upgrade != 1 || !upgrade_ok)
        return fail(ws, CN_EPROTO, "missing or wrong Upgrade header", 0);
    if (!conn_ok)
        return fail(ws, CN_EPROTO, "Connection header lacks the upgrade token", 0);
    if (n_accept != 1)
        return fail(ws, CN_EPROTO, "missing or repeated Sec-WebSocket-Accept", 0);
    if (!accept_ok)
        return fail(ws, CN_EPROTO, "Sec-WebSocket-Accept does not match our key", 0);
    if (ws->subprotocol && (n_proto != 1 || !proto_ok))
        return fail(ws, CN_EPROTO, "server did not agree to our subprotocol", 0);
    if (!ws->subprotocol && n_proto)
        return fail(ws, CN_EPROTO, "server chose a subprotocol we did not request", 0);
    return 0;
}

/* Collects the response head. Returns the bytes of `in` it used (the rest
 * belongs to the frame parser) or a negative code; sets *done when the head
 * is complete and valid. */
static long feed_head(cn_wsc_t *ws, const uint8_t *in, size_t len, bool *done)
{
    size_t old = ws->head_len;
    size_t room = CN_WSC_MAX_RESPONSE_HEAD - old;
    size_t take = len < room ? len : room;
    memcpy(ws->head + old, in, take);
    ws->head_len = old + take;
    /* Search only where the terminator can newly appear. */
    size_t from = old >= 3 ? old - 3 : 0;
    const char *end = find_crlf(ws->head + from, ws->head_len - from, 2);
    if (!end) {
        if (ws->head_len == CN_WSC_MAX_RESPONSE_HEAD)
            return fail(ws, CN_ETOOBIG, "response head too long", 0);
        *done = false;
        return (long)take;
    }
    ws->head_len = (size_t)(end - ws->head) + 4;
    int rc = parse_head(ws);
    if (rc)
        return rc;
    *done = true;
    return (long)(ws->head_len - old);
}

/* ---- receive side ----------------------------------------------------- */

static int emit(cn_wsc_t *ws, cn_wsc_event_cb cb, void *user, const cn_wsc_event_t *ev)
{
    int rc = cb ? cb(user, ev) : 0;
    if (rc)
        return fail(ws, rc < 0 ? rc : CN_EINVAL, "event callback failed", 1011);
    return 0;
}

static int on_close(cn_wsc_t *ws, cn_wsc_event_cb cb, void *user)
{
    cn_wsc_event_t ev = {.type = CN_WSC_EV_CLOSE, .data = ws->ctrl, .close_code = 1005};
    if (ws->ctrl_have == 1)
        return fail(ws, CN_EPROTO, "close frame with a 1-byte body", 1002);
    if (ws->ctrl_have >= 2) {
        ev.close_code = (uint16_t)(ws->ctrl[0] << 8 | ws->ctrl[1]);
        if (!close_code_valid(ev.close_code))
            return fail(ws, CN_EPROTO, "close frame with an invalid code", 1002);
        ev.data = ws->ctrl + 2;
        ev.len = ws->ctrl_have - 2;
        if (!cn_utf8_valid(ev.data, ev.len))
            return fail(ws, CN_EPROTO, "close reason is not UTF-8", 1002);
    }
    /* Echo the code (RFC 6455 5.5.1) unless our close already went out. */
    if (!ws->close_queued)
        (void)queue_control(ws, CN_WSC_OP_CLOSE, NULL, 0,
                            ev.close_code == 1005 ? 0 : ev.close_code);
    ws->state = CN_WSC_CLOSED;
    return emit(ws, cb, user, &ev);
}

static int on_control(cn_wsc_t *ws, cn_wsc_event_cb cb, void *user)
{
    cn_wsc_event_t ev = {.data = ws->ctrl, .len = ws->ctrl_have};
    switch (ws->opcode) {
    case CN_WSC_OP_PING:
        /* Fails only after our close, when no pong is owed any more. */
        (void)queue_control(ws, CN_WSC_OP_PONG, ws->ctrl, ws->ctrl_have, 0);
        ev.type = CN_WSC_EV_PING;
        return emit(ws, cb, user, &ev);
    case CN_WSC_OP_PONG:
        ev.type = CN_WSC_EV_PONG;
        return emit(ws, cb, user, &ev);
    default:
        return on_close(ws, cb, user);
    }
}

/* The first two header bytes: everything that can be rejected before the
 * extended length arrives is rejected here. */
static int check_header_start(cn_wsc_t *ws)
{
    uint8_t b0 = ws->hdr[0], b1 = ws->hdr[1];
    ws->frame_fin = (b0 & 0x80) != 0;
    ws->opcode = b0 & 0x0f;
    uint8_t len7 = b1 & 0x7f;
    if (b0 & 0x70)
        return fail(ws, CN_EPROTO, "RSV bit set without a negotiated extension", 1002);
    if (b1 & 0x80)
        return fail(ws, CN_EPROTO, "server frame is masked", 1002);
    switch (ws->opcode) {
    case CN_WSC_OP_CONT:
        if (!ws->in_message)
            return fail(ws, CN_EPROTO, "continuation frame outside a message", 1002);
        break;
    case CN_WSC_OP_BINARY:
        if (ws->in_message)
            return fail(ws, CN_EPROTO, "new message inside a fragmented one", 1002);
        break;
    case CN_WSC_OP_TEXT:
        /* connect.v1 carries binary records only. */
        return fail(ws, CN_EPROTO, "text frame on a binary-only connection", 1003);
    case CN_WSC_OP_CLOSE:
    case CN_WSC_OP_PING:
    case CN_WSC_OP_PONG:
        if (!ws->frame_fin)
            return fail(ws, CN_EPROTO, "fragmented control frame", 1002);
        if (len7 > MAX_CONTROL_PAYLOAD)
            return fail(ws, CN_EPROTO, "control frame longer than 125 bytes", 1002);
        break;
    default:
        return fail(ws, CN_EUNKNOWN, "reserved opcode", 1002);
    }
    ws->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
    return 0;
}

/* The complete header: decode the length and pick the next state. */
static int check_header_end(cn_wsc_t *ws, cn_wsc_event_cb cb, void *user)
{
    uint8_t len7 = ws->hdr[1] & 0x7f;
    uint64_t plen = len7;
    if (len7 == 126) {
        plen = (uint64_t)ws->hdr[2] << 8 | ws->hdr[3];
        if (plen < 126)
            return fail(ws, CN_EPROTO, "length not minimally encoded", 1002);
    } else if (len7 == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | ws->hdr[2 + i];
        if (plen >> 63)
            return fail(ws, CN_EPROTO, "64-bit length with the top bit set", 1002);
        if (plen <= 0xffff)
            return fail(ws, CN_EPROTO, "length not minimally encoded", 1002);
    }
    ws->hdr_have = 0;
    ws->hdr_need = 2;

    if (ws->opcode >= CN_WSC_OP_CLOSE) {
        ws->ctrl_have = 0;
        ws->ctrl_need = (size_t)plen;
        if (ws->ctrl_need) {
            ws->rx = RX_CONTROL;
            return 0;
        }
        return on_control(ws, cb, user);
    }

    if (ws->opcode == CN_WSC_OP_BINARY) {
        ws->msg_len = 0;
        ws->first_pending = true;
    }
    ws->in_message = !ws->frame_fin;
    if (plen > ws->max_message - ws->msg_len)
        return fail(ws, CN_ETOOBIG, "message longer than the configured maximum", 1009);
    ws->msg_len += plen;
    ws->left = plen;
    ws->rx = RX_DATA;
    if (plen == 0) {
        ws->rx = RX_HEADER;
        /* An empty frame still has to carry the message's first/fin marks. */
        if (ws->first_pending || ws->frame_fin) {
            cn_wsc_event_t ev = {.type = CN_WSC_EV_DATA,
                                 .data = ws->hdr,
                                 .len = 0,
                                 .first = ws->first_pending,
                                 .fin = ws->frame_fin};
            ws->first_pending = false;
            return emit(ws, cb, user, &ev);
        }
    }
    return 0;
}

static int feed_frames(cn_wsc_t *ws, const uint8_t *p, size_t n, cn_wsc_event_cb cb, void *user)
{
    while (n && (ws->state == CN_WSC_OPEN || ws->state == CN_WSC_CLOSING)) {
        int rc = 0;
        if (ws->rx == RX_HEADER) {
            size_t take = ws->hdr_need - ws->hdr_have;
            if (take > n)
                take = n;
            memcpy(ws->hdr + ws->hdr_have, p, take);
            ws->hdr_have += take;
            p += take;
            n -= take;
            if (ws->hdr_have == 2 && ws->hdr_need == 2) {
                rc = check_header_start(ws);
                if (rc)
                    return rc;
            }
            if (ws->hdr_have == ws->hdr_need)
                rc = check_header_end(ws, cb, user);
        } else if (ws->rx == RX_DATA) {
            size_t take = ws->left < n ? (size_t)ws->left : n;
            ws->left -= take;
            cn_wsc_event_t ev = {.type = CN_WSC_EV_DATA,
                                 .data = p,
                                 .len = take,
                                 .first = ws->first_pending,
                                 .fin = ws->frame_fin && ws->left == 0};
            ws->first_pending = false;
            p += take;
            n -= take;
            if (ws->left == 0)
                ws->rx = RX_HEADER;
            rc = emit(ws, cb, user, &ev);
        } else {
            size_t take = ws->ctrl_need - ws->ctrl_have;
            if (take > n)
                take = n;
            memcpy(ws->ctrl + ws->ctrl_have, p, take);
            ws->ctrl_have += take;
            p += take;
            n -= take;
            if (ws->ctrl_have == ws->ctrl_need) {
                ws->rx = RX_HEADER;
                rc = on_control(ws, cb, user);
            }
        }
        if (rc)
            return rc;
    }
    return 0;
}

int cn_wsc_feed(cn_wsc_t *ws, const uint8_t *in, size_t len, cn_wsc_event_cb cb, void *user)
{
    if (ws->state == CN_WSC_FAILED)
        return ws->err;
    if (ws->state == CN_WSC_CLOSED || len == 0)
        return 0;
    ws->fed = true;
    if (ws->state == CN_WSC_CONNECTING) {
        bool done = false;
        long used = feed_head(ws, in, len, &done);
        if (used < 0)
            return (int)used;
        if (!done)
            return 0;
        ws->state = CN_WSC_OPEN;
        cn_wsc_event_t ev = {.type = CN_WSC_EV_OPEN};
        int rc = emit(ws, cb, user, &ev);
        if (rc)
            return rc;
        in += used;
        len -= (size_t)used;
    }
    return feed_frames(ws, in, len, cb, user);
}
