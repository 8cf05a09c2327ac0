/* The agent<->hub wire frames: versioned, length-prefixed, binary.
 *
 * Frames travel as a byte stream inside the secure channel's records (a frame
 * may span records). Layout of every frame, big-endian:
 *
 *   0      1      2..3     4..7        8..11      12..
 *   ver    type   flags    stream id   length     payload[length]
 *
 * ver is CN_FRAME_VERSION; flags are reserved and must be zero; stream ids
 * are 31-bit (top bit zero); length <= CN_FRAME_MAX_PAYLOAD. Connection-level
 * frames (PING, PONG, CONTROL, GOAWAY) use stream 0, all others a non-zero id.
 * Payload layouts are in docs/protocol.md and enforced by the decoder, so a
 * frame handed out by cn_frame_decode() is always well formed. */
#ifndef CN_FRAME_H
#define CN_FRAME_H

#include "cn_defs.h"

#include <stddef.h>
#include <stdint.h>

#define CN_FRAME_VERSION 1
#define CN_FRAME_HEADER 12
#define CN_FRAME_MAX_PAYLOAD 65536u
#define CN_FRAME_MAX_STREAM 0x7fffffffu
#define CN_FRAME_MAX_WINDOW (1u << 30)
#define CN_FRAME_MAX_REASON 256u /* RST / GOAWAY message bytes */
#define CN_FRAME_MAX_DATAGRAM 65535u
#define CN_FRAME_MAX_REF 255u /* OPEN target/tunnel reference bytes */

enum cn_frame_type {
    CN_FRAME_OPEN = 1,      /* open a stream: window, kind, ref, meta */
    CN_FRAME_OPEN_ACK = 2,  /* accept a stream: the acceptor's window */
    CN_FRAME_DATA = 3,      /* stream bytes */
    CN_FRAME_WINDOW = 4,    /* grant more send credit on a stream */
    CN_FRAME_FIN = 5,       /* half-close: the sender will send no more DATA */
    CN_FRAME_RST = 6,       /* abort a stream (or refuse an OPEN) with a reason */
    CN_FRAME_PING = 7,      /* liveness probe, 8 opaque bytes */
    CN_FRAME_PONG = 8,      /* answer to PING, same 8 bytes */
    CN_FRAME_CONTROL = 9,   /* connection-level JSON object (tunnel and health messages) */
    CN_FRAME_DATAGRAM = 10, /* one UDP datagram on a stream */
    CN_FRAME_GOAWAY = 11,   /* the sender is closing the link: code + reason */
};

/* What an OPEN asks for; the acceptor decides whether it allows it. */
enum cn_stream_kind {
    CN_KIND_TCP = 1,   /* a TCP connection to the tunnel's target */
    CN_KIND_HTTP = 2,  /* an HTTP edge request stream */
    CN_KIND_UDP = 3,   /* UDP datagrams to the tunnel's target */
    CN_KIND_RELAY = 4, /* agent-to-agent stream relayed by the hub, end-to-end encrypted */
};

/* RST and GOAWAY reason codes. */
enum cn_reset_code {
    CN_RST_NONE = 0,
    CN_RST_REFUSED = 1,     /* the OPEN is not allowed (unknown tunnel, not exposed here) */
    CN_RST_UNREACHABLE = 2, /* target could not be dialed */
    CN_RST_CANCEL = 3,      /* the application aborted the stream */
    CN_RST_PROTOCOL = 4,    /* the peer broke the protocol on this stream */
    CN_RST_FLOW = 5,        /* the peer exceeded its window */
    CN_RST_LIMIT = 6,       /* too many streams / rate limited */
    CN_RST_PAUSED = 7,      /* tunnel paused */
    CN_RST_GONE = 8,        /* tunnel or agent went away */
    CN_RST_INTERNAL = 9,
};

/* A decoded frame. Pointers borrow from the decoder's input or buffer and stay
 * valid until the next cn_frame_decode() call on the same decoder. */
typedef struct cn_frame {
    uint8_t type;
    uint32_t stream;
    uint32_t len;           /* payload length */
    const uint8_t *payload; /* raw payload (DATA, DATAGRAM, CONTROL: the bytes) */
    union {
        struct {
            uint32_t window; /* opener's receive window */
            uint8_t kind;    /* enum cn_stream_kind */
            uint8_t ref_len;
            const uint8_t *ref; /* tunnel id or other reference */
            uint32_t meta_len;
            const uint8_t *meta; /* opaque metadata (e.g. JSON: client address) */
        } open;
        uint32_t window; /* OPEN_ACK: acceptor's window; WINDOW: increment */
        struct {
            uint32_t code; /* enum cn_reset_code */
            uint32_t msg_len;
            const uint8_t *msg;
        } reason;      /* RST, GOAWAY */
        uint64_t ping; /* PING, PONG */
    } u;
} cn_frame_t;

/* Encoded size of `f`, or 0 when `f` is not a valid frame. */
size_t cn_frame_size(const cn_frame_t *f);
/* Encodes `f` into out[0..cap). Returns the byte count, or CN_EINVAL for an
 * invalid frame, CN_EAGAIN when cap is too small. Uses the type-specific
 * fields (u.open, u.window, u.reason, u.ping) or payload/len for DATA,
 * DATAGRAM and CONTROL. */
CN_WARN_UNUSED int cn_frame_encode(const cn_frame_t *f, uint8_t *out, size_t cap);
/* Writes just a header, for frames whose payload the caller places right after
 * it (DATA built in place). Returns CN_FRAME_HEADER or CN_EINVAL. */
CN_WARN_UNUSED int cn_frame_write_header(uint8_t out[static CN_FRAME_HEADER], uint8_t type,
                                         uint32_t stream, uint32_t len);

/* Incremental decoder. Feed any split of the byte stream; frames come out
 * whole. At most one maximum payload is buffered (allocated once, lazily). */
typedef struct cn_frame_decoder cn_frame_decoder_t;

CN_WARN_UNUSED cn_frame_decoder_t *cn_frame_decoder_new(void);
void cn_frame_decoder_free(cn_frame_decoder_t *d);
/* Consumes bytes from in[0..len) and sets *used to how many. Returns 1 when
 * *out holds a frame (call again with the rest of the input), 0 when all of
 * the input was consumed without completing a frame, or a negative CN_E*:
 * CN_EVERSION, CN_EUNKNOWN (frame type), CN_ETOOBIG, CN_EPROTO (bad flags,
 * stream id or payload layout), CN_ENOMEM. Errors are sticky. Zero copy when
 * a whole frame is inside `in`. */
CN_WARN_UNUSED int cn_frame_decode(cn_frame_decoder_t *d, const uint8_t *in, size_t len,
                                   size_t *used, cn_frame_t *out);
/* True when the decoder holds a partial frame (a stream ending here is truncated). */
int cn_frame_decoder_pending(const cn_frame_decoder_t *d);

/* CONTROL frames carry one JSON object (jansson). Encodes `obj` compactly as
 * a CONTROL frame into out[0..cap); returns bytes, CN_EINVAL when `obj` is not
 * an object, CN_ETOOBIG above the payload limit, CN_EAGAIN when cap is short. */
struct json_t;
CN_WARN_UNUSED int cn_frame_encode_control(const struct json_t *obj, uint8_t *out, size_t cap);
/* Parses a CONTROL frame's payload; *obj is a new reference the caller
 * releases with json_decref(). CN_EPROTO unless it is a JSON object. */
CN_WARN_UNUSED int cn_frame_parse_control(const cn_frame_t *f, struct json_t **obj);

/* Name of a frame type for logs, "?" when unknown. */
const char *cn_frame_type_name(uint8_t type);

#endif
