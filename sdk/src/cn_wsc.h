/* cn_wsc: the client side of RFC 6455 WebSocket, sans-IO.
 *
 * Why it exists: lws 4.1.6's WebSocket *client* role masks and parses one byte
 * at a time (about 3 Gbit/s up, 1.8 down on our machines), while its raw-socket
 * role is cheap. The agent therefore opens a raw lws connection and frames
 * WebSocket itself through this module: masking a machine word at a time and
 * handing received payload over as slices of the caller's input (zero copy).
 * The hub keeps the lws WebSocket server role. See docs/protocol-websocket.md.
 *
 * The module does no I/O and keeps no clock. The glue:
 *   1. cn_wsc_new(), then writes cn_wsc_request() once the TCP (or TLS)
 *      connection is up;
 *   2. passes everything it reads to cn_wsc_feed(), which checks the 101
 *      response and then parses server frames, reporting events through a
 *      callback (the bytes after the response head go straight to the frame
 *      parser);
 *   3. after each feed (and after cn_wsc_ping()/cn_wsc_close()) asks
 *      cn_wsc_pending_len() and, when non-zero, writes cn_wsc_take_pending()
 *      output before its next data frame (never inside one);
 *   4. sends data with cn_wsc_wrap() over a buffer that has up to
 *      CN_WSC_MAX_HEADER bytes reserved in front of the payload.
 *
 * Only binary messages are spoken ("connect.v1" carries binary records): a
 * text frame is a protocol error. No extension is offered or accepted. */
#ifndef CN_WSC_H
#define CN_WSC_H

#include "cn_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cn_wsc cn_wsc_t;

enum cn_wsc_opcode {
    CN_WSC_OP_CONT = 0x0,
    CN_WSC_OP_TEXT = 0x1,
    CN_WSC_OP_BINARY = 0x2,
    CN_WSC_OP_CLOSE = 0x8,
    CN_WSC_OP_PING = 0x9,
    CN_WSC_OP_PONG = 0xa,
};

/* Longest client frame header: 2 bytes + 8-byte length + 4-byte mask. */
#define CN_WSC_MAX_HEADER 14
/* Longest masked control frame: 2 + 4 + 125. */
#define CN_WSC_MAX_CONTROL 131
/* Most bytes cn_wsc_take_pending() can ever hold: one pong, one ping, one close. */
#define CN_WSC_MAX_PENDING (3 * CN_WSC_MAX_CONTROL)
/* Longest accepted HTTP response head, status line to blank line inclusive. */
#define CN_WSC_MAX_RESPONSE_HEAD 8192
/* Longest request cn_wsc_new() builds. */
#define CN_WSC_MAX_REQUEST 8192
/* Default bound on one received data message (a frame, or the sum of a
 * fragmented message's frames). The payload is never buffered here, so this
 * protects the consumer's reassembly, not this module: 16 MiB is far above a
 * connect.v1 record and far below anything that could hurt. */
#define CN_WSC_DEFAULT_MAX_MESSAGE (16u * 1024 * 1024)

typedef struct cn_wsc_config {
    /* Host header value, e.g. "hub.example.com" or "127.0.0.1:8443";
     * required, visible ASCII without spaces. */
    const char *host;
    /* Request target, e.g. "/v1/agent"; required, starts with '/', visible
     * ASCII without spaces. */
    const char *path;
    /* Subprotocol to request ("connect.v1"), or NULL for none. When set, the
     * server must answer with exactly this value. An HTTP token. */
    const char *subprotocol;
    /* Extra header lines, each "Name: value" without CR/LF (e.g. an
     * Authorization header). Lines with control characters, a malformed name,
     * or a name this module sets or that would change the request's framing
     * (Host, Upgrade, Connection, Content-Length, Transfer-Encoding,
     * Sec-WebSocket-*) are refused with CN_EINVAL. Borrowed: copied into the
     * request by cn_wsc_new(). */
    const char *const *headers;
    size_t n_headers;
    /* Bound on one received data message; 0 means
     * CN_WSC_DEFAULT_MAX_MESSAGE. Larger messages fail with CN_ETOOBIG. */
    uint64_t max_message;
} cn_wsc_config_t;

enum cn_wsc_state {
    CN_WSC_CONNECTING = 0, /* request built, waiting for the 101 */
    CN_WSC_OPEN,           /* handshake done, frames flow both ways */
    CN_WSC_CLOSING,        /* we queued a close, waiting for the server's */
    CN_WSC_CLOSED,         /* the server's close arrived; flush pending, drop TCP */
    CN_WSC_FAILED,         /* an error; every later feed returns it again */
};

enum cn_wsc_event_type {
    CN_WSC_EV_OPEN = 1, /* the server accepted the upgrade */
    CN_WSC_EV_DATA,     /* a slice of a binary message */
    CN_WSC_EV_PING,     /* a ping arrived; its pong is already pending */
    CN_WSC_EV_PONG,     /* a pong arrived (payload in data/len) */
    CN_WSC_EV_CLOSE,    /* the server's close arrived; our answer is pending */
};

typedef struct cn_wsc_event {
    int type; /* enum cn_wsc_event_type */
    /* DATA: payload bytes, pointing into the buffer given to cn_wsc_feed()
     * (zero copy, already unmasked since servers do not mask).
     * PING/PONG: the control payload. CLOSE: the reason (UTF-8, not NUL
     * terminated). Borrowed: valid only during the callback. */
    const uint8_t *data;
    size_t len;
    /* DATA: this slice starts a message / ends it. Each message yields exactly
     * one slice with `first` and one with `fin` (the same one for a message
     * that fits one slice); a slice has len 0 only to carry these flags. */
    bool first;
    bool fin;
    /* CLOSE: the status code, 1005 when the server sent none. */
    uint16_t close_code;
} cn_wsc_event_t;

/* Receives events from cn_wsc_feed(). Returns 0 to go on, or a negative CN_E*
 * code: cn_wsc_feed() then stops, fails the parser and returns that code.
 * It may call cn_wsc_close(), cn_wsc_ping() and the pending functions, but
 * must not free ws. */
typedef int (*cn_wsc_event_cb)(void *user, const cn_wsc_event_t *ev);

/* Creates a client and builds its upgrade request with a fresh random
 * Sec-WebSocket-Key (libsodium). Returns NULL on failure with one line in err
 * (optional) naming the cause: cn_strerror() of CN_EINVAL for a bad config,
 * CN_ETOOBIG for a request longer than CN_WSC_MAX_REQUEST, CN_ENOMEM,
 * CN_ECRYPTO. The config is borrowed. */
CN_WARN_UNUSED cn_wsc_t *cn_wsc_new(const cn_wsc_config_t *cfg, char *err, size_t errlen);
/* Frees the client; NULL is fine. */
void cn_wsc_free(cn_wsc_t *ws);

/* The upgrade request to write once connected. Owned by ws, valid until
 * cn_wsc_free(). Not NUL terminated. */
const uint8_t *cn_wsc_request(const cn_wsc_t *ws, size_t *len);

/* Feeds bytes read from the server, split anywhere. In CONNECTING the bytes
 * are the response head (checked strictly; the callback gets EV_OPEN when it
 * passes) and any bytes after it are parsed as frames in the same call. `in`
 * is borrowed and may be reused as soon as this returns.
 * Returns 0, or a negative code after which the client stays FAILED:
 *   handshake: CN_EREFUSED (status not 101; see cn_wsc_http_status()),
 *     CN_EPROTO (anything else wrong), CN_ETOOBIG (head too long);
 *   frames: CN_EPROTO (masked/RSV/text/bad fragmentation/bad control frame),
 *     CN_EUNKNOWN (reserved opcode), CN_ETOOBIG (message above max_message);
 *   or the callback's error.
 * cn_wsc_error_detail() says what exactly was wrong. On a frame-level error a
 * close frame (1002, 1009 or 1011) is queued that the glue may flush before
 * dropping the connection. Bytes after the server's close are discarded. */
CN_WARN_UNUSED int cn_wsc_feed(cn_wsc_t *ws, const uint8_t *in, size_t len, cn_wsc_event_cb cb,
                               void *user);

/* Bytes of control frames (pongs, our ping, our close) waiting to be written. */
size_t cn_wsc_pending_len(const cn_wsc_t *ws);
/* Moves whole pending frames, oldest first, into out while they fit, and
 * returns the bytes written. cap >= CN_WSC_MAX_PENDING always takes them all.
 * Write them before the next data frame, never inside one. */
size_t cn_wsc_take_pending(cn_wsc_t *ws, uint8_t *out, size_t cap);

/* Queues a masked ping (payload <= 125 bytes; borrowed), e.g. as a keepalive.
 * CN_ESTATE unless OPEN, CN_EAGAIN while an earlier ping is still pending,
 * CN_EINVAL for a long payload. */
CN_WARN_UNUSED int cn_wsc_ping(cn_wsc_t *ws, const uint8_t *payload, size_t len);
/* Queues our close (code 1000-1003, 1007-1014 or 3000-4999, or 0 for an empty
 * body; reason UTF-8, <= 123 bytes, may be NULL) and moves OPEN to CLOSING. No data frame may be
 * sent after it. CN_ESTATE unless OPEN, CN_EINVAL for a bad code or reason. */
CN_WARN_UNUSED int cn_wsc_close(cn_wsc_t *ws, uint16_t code, const char *reason, size_t reason_len);

int cn_wsc_state(const cn_wsc_t *ws);
/* The status code of the response, 0 before one was parsed. */
int cn_wsc_http_status(const cn_wsc_t *ws);
/* What made the client fail, for a log line; a static string, never NULL. */
const char *cn_wsc_error_detail(const cn_wsc_t *ws);

/* Writes a client frame header: FIN set (we never fragment what we send),
 * the opcode, the MASK bit, the 7/16/64-bit length and the mask key. Returns
 * its length (6, 8 or 14), or 0 for an unknown opcode, a control frame longer
 * than 125 bytes or a length >= 2^63. Pure: the caller supplies the mask and
 * must draw a fresh unpredictable one per frame. */
size_t cn_wsc_frame_header(uint8_t out[static CN_WSC_MAX_HEADER], int opcode, uint64_t payload_len,
                           const uint8_t mask[static 4]);

/* XORs p[0..len) in place with the mask, as if p started `offset` bytes into
 * the payload, so a payload may be masked in pieces of any size: piece k is
 * masked with offset = bytes masked before it. Works a 64-bit word at a time;
 * p needs no alignment. Unmasking is the same call. */
void cn_wsc_mask(uint8_t *p, size_t len, const uint8_t mask[static 4], size_t offset);

/* Frames a payload in place for one lws_write(LWS_WRITE_RAW): takes a fresh
 * random mask (libsodium output, fetched 256 masks at a time per thread),
 * writes the header into the `headroom` bytes just before `payload`, masks
 * the payload and sets *frame / *frame_len to the whole frame. `headroom` >=
 * CN_WSC_MAX_HEADER always suffices (fewer is fine when the header is shorter).
 * CN_EINVAL for a bad opcode/length or too little headroom, with nothing
 * changed. */
CN_WARN_UNUSED int cn_wsc_wrap(uint8_t *payload, size_t len, size_t headroom, int opcode,
                               uint8_t **frame, size_t *frame_len);

/* A masked pong echoing a ping's payload (<= 125 bytes); returns its length,
 * or 0 when the payload is too long. Fresh random mask. */
size_t cn_wsc_pong_frame(uint8_t out[static CN_WSC_MAX_CONTROL], const uint8_t *payload,
                         size_t len);
/* A masked close frame with a code and a UTF-8 reason (<= 123 bytes, may be
 * NULL); code 0 means an empty close body. Returns its length, or 0 for a code
 * that may not be sent or a bad reason. Fresh random mask. */
size_t cn_wsc_close_frame(uint8_t out[static CN_WSC_MAX_CONTROL], uint16_t code, const char *reason,
                          size_t reason_len);

/* Test hook: replaces the random Sec-WebSocket-Key (16 raw bytes) and rebuilds
 * the request. CN_ESTATE once feeding has started. Not for production use. */
CN_WARN_UNUSED int cn_wsc_set_key_for_test(cn_wsc_t *ws, const uint8_t key[static 16]);

#endif
