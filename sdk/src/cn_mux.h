/* Stream multiplexer: many ordered, flow-controlled byte streams, plus
 * datagrams and connection-level messages, over one frame stream (cn_frame)
 * inside the secure channel.
 *
 * Sans-IO: the glue decodes frames and hands each to cn_mux_input(), asks
 * cn_mux_output() for bytes to put in the next record, and moves bytes
 * between sockets and streams with the read/write calls. No clock, no
 * sockets, no printing. The rules both peers follow (ids, states, windows,
 * scheduling, which violations kill a stream and which kill the link) are in
 * docs/protocol-mux.md.
 *
 * Callbacks and re-entrancy. Callbacks run synchronously, and ONLY from inside
 * cn_mux_input(), cn_mux_output() and cn_mux_abort() (the "pump" calls).
 * Every other call (read, consume, write, shutdown, reset, accept, ...) only
 * changes state; events it causes (a stream finishing after the last read, a
 * reset) are delivered by the next pump call, and cn_mux_has_output() is true
 * while any are pending. So a caller never sees its per-stream object freed
 * under it in the middle of its own call on that stream. Callbacks may call
 * any cn_mux function except cn_mux_free(), including resetting the stream
 * they are about or any other; the mux defers its own frees so nothing is used
 * after free. Pointer arguments of callbacks are borrowed for the duration of
 * the callback only.
 *
 * Stream lifetime. A stream is announced to the application either by a
 * successful cn_mux_open() or by on_open(). From then on on_closed() fires
 * exactly once for it (also for rejected, refused and reset streams, with
 * user NULL when it was never accepted); after on_closed() the id is dead and
 * its user pointer is never used again. The user pointer is borrowed: the mux
 * never frees it.
 *
 * Errors: 0 / non-negative on success, a negative CN_E* code otherwise. A call
 * that fails changes nothing and fires no callback, except where noted. Calls
 * on an id that is unknown, closed or reset return CN_ENOTFOUND. CN_ENOMEM
 * from any call means the link should be dropped. */
#ifndef CN_MUX_H
#define CN_MUX_H

#include "cn_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct json_t;
struct cn_frame;

/* The per-stream receive window: 2 MiB. On a quiet machine (bench/tcp_window.sh,
 * docs/performance.md) 2 MiB beat 512 KiB in every round both ways (iperf3
 * 12.1-13.0 against 9.9-10.8 Gbit/s up, 10.8-12.3 against 9.2-9.8 down) at less
 * CPU per byte: with 512 KiB the hub's loop slept 7-9% of an upload waiting for
 * credit and the machine stayed 19-23% idle. A window is credit, not a buffer:
 * idle streams cost nothing more, and the send buffer keeps its own default. */
#define CN_MUX_DEFAULT_WINDOW_KIB 2048 /* the same in KiB, for help texts */
#define CN_MUX_DEFAULT_WINDOW (CN_MUX_DEFAULT_WINDOW_KIB * 1024u)
/* Queued outgoing bytes per stream beyond what the socket took (512 KiB,
 * the window's old default, unchanged with it). */
#define CN_MUX_DEFAULT_SEND_BUFFER (512u * 1024u)
#define CN_MUX_MIN_WINDOW 1024u                  /* smallest configurable window */
#define CN_MUX_DEFAULT_MAX_STREAMS 4096u         /* concurrent streams, both sides together */
#define CN_MUX_DEFAULT_QUANTUM (16u * 1024u)     /* round-robin DATA bytes per turn */
#define CN_MUX_DEFAULT_QUEUE_MAX (1024u * 1024u) /* CONTROL+OPEN+PING bytes; DATAGRAM bytes */
#define CN_MUX_MIN_OUTPUT 64u                    /* smallest `cap` cn_mux_output() accepts */
#define CN_MUX_MAX_IOV 8                         /* most spans of cn_mux_write_spacev() */

typedef struct cn_mux cn_mux_t;

/* Zero-initialise and set what you need: every 0 field takes its default. */
typedef struct cn_mux_config {
    int initiator;          /* nonzero: our stream ids are odd (1, 3, ...); else even (2, 4, ...).
                             * The two ends of a link must differ (the agent initiates). */
    uint32_t window;        /* per-stream receive window we grant the peer; default
                             * CN_MUX_DEFAULT_WINDOW, range CN_MUX_MIN_WINDOW..CN_FRAME_MAX_WINDOW */
    uint32_t window_update; /* return credit (WINDOW frame) once this many bytes were consumed;
                             * default window / 4, at most window */
    uint32_t send_buffer;   /* per-stream cap on queued outgoing bytes, on top of the peer's
                             * credit (a peer granting 1 GiB cannot make us buffer 1 GiB);
                             * default CN_MUX_DEFAULT_SEND_BUFFER */
    uint32_t max_streams;   /* live streams, ours and the peer's together; default 4096 */
    uint32_t max_stream_id; /* highest id we may use; default CN_FRAME_MAX_STREAM */
    uint32_t quantum;       /* DATA bytes a stream sends per round-robin turn; default 16 KiB */
    size_t queue_max;       /* bound on queued CONTROL+OPEN+PING bytes, and separately on queued
                             * DATAGRAM bytes; default CN_MUX_DEFAULT_QUEUE_MAX */
} cn_mux_config_t;

/* Event callbacks; any may be NULL (an incoming OPEN is then refused with
 * CN_RST_REFUSED when on_open is NULL). `ctx` is the pointer given to
 * cn_mux_new(). */
typedef struct cn_mux_callbacks {
    /* The peer opened stream `id`. Call cn_mux_accept() or cn_mux_reject(),
     * here or later; until then the stream counts against max_streams. */
    void (*on_open)(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t ref_len,
                    const uint8_t *meta, size_t meta_len);
    /* The peer accepted our stream (OPEN_ACK): writes are possible now. */
    void (*on_accepted)(void *ctx, uint32_t id, void *user);
    /* New bytes, or EOF, arrived on the stream (edge-triggered: read until
     * CN_EAGAIN or remember that data is left). */
    void (*on_readable)(void *ctx, uint32_t id, void *user);
    /* Send space reappeared after a write, write_space or pre-accept write
     * was refused or short. */
    void (*on_writable)(void *ctx, uint32_t id, void *user);
    /* The stream died abnormally: the peer reset or refused it, the mux reset
     * it because the peer broke its rules (CN_RST_FLOW), or cn_mux_abort().
     * The stream is already dead here (calls on it return CN_ENOTFOUND);
     * on_closed follows. msg is not NUL-terminated. */
    void (*on_reset)(void *ctx, uint32_t id, void *user, uint32_t code, const char *msg,
                     size_t msg_len);
    /* Exactly once per announced stream, last: both directions finished
     * (our FIN sent, the peer's FIN read as EOF) or the stream was reset. */
    void (*on_closed)(void *ctx, uint32_t id, void *user);
    /* A CONTROL frame: one JSON object (not validated here; parse it with
     * json_loadb and treat a failure as a link error). */
    void (*on_control)(void *ctx, const uint8_t *payload, size_t len);
    /* A datagram on an accepted stream (dropped while the stream is still
     * pending our accept or our OPEN is unanswered). */
    void (*on_datagram)(void *ctx, uint32_t id, void *user, const uint8_t *data, size_t len);
    /* The answer to one of our cn_mux_ping() calls. */
    void (*on_pong)(void *ctx, uint64_t value);
    /* The peer is closing the link: cn_mux_open() fails from now on. */
    void (*on_goaway)(void *ctx, uint32_t code, const char *msg, size_t msg_len);
} cn_mux_callbacks_t;

/* Checks a stream window and its update threshold as a user gives them
 * (`connect-hub serve --stream-window/--window-update`, the agent's
 * CONNECT_STREAM_WINDOW/CONNECT_WINDOW_UPDATE), with cn_mux_new()'s rules:
 * window 0 (default) or CN_MUX_MIN_WINDOW..CN_FRAME_MAX_WINDOW; update 0
 * (window / 4) or 1..the window in effect. False with *why (static text)
 * naming the fault. */
bool cn_mux_window_valid(uint64_t window, uint64_t update, const char **why);

/* Creates a multiplexer. cfg may be NULL (defaults, responder); cb is copied
 * and may be NULL. Returns NULL on an invalid configuration or no memory. */
CN_WARN_UNUSED cn_mux_t *cn_mux_new(const cn_mux_config_t *cfg, const cn_mux_callbacks_t *cb,
                                    void *ctx);
/* Frees the mux and every stream and buffer, WITHOUT callbacks (call
 * cn_mux_abort() first when user pointers own resources). NULL is fine. Never
 * from inside a callback. */
void cn_mux_free(cn_mux_t *mux);

/* ---- frames in, bytes out ---- */

/* Feeds one decoded frame (borrowed; only read during the call). Returns 0,
 * or a link-fatal error: CN_EPROTO when the peer broke the protocol (see
 * docs/protocol-mux.md), CN_EFLOW when the peer makes us queue more replies
 * (PONG, OPEN_ACK, RST, WINDOW: also those the callbacks queue) than the
 * bound allows without reading them, CN_ENOMEM. Link
 * errors are sticky (every later call returns the same code) and queue a
 * GOAWAY(CN_RST_PROTOCOL) for the glue to flush before it closes the link.
 * CN_ECLOSED after cn_mux_abort(). Stream-level violations reset just that
 * stream and return 0. */
CN_WARN_UNUSED int cn_mux_input(cn_mux_t *mux, const struct cn_frame *f);
/* Fills out[0..cap) with whole encoded frames: first the queued control
 * frames in order (OPEN, OPEN_ACK, WINDOW, RST, FIN without data, PING, PONG,
 * CONTROL, GOAWAY), then datagrams, then DATA from streams in round-robin,
 * `quantum` bytes per turn, each frame sized to fit. A single queued frame
 * larger than cap is split across calls (frames are a byte stream; the peer's
 * decoder reassembles). Returns bytes written, 0 when there is nothing to
 * send, CN_EINVAL when cap < CN_MUX_MIN_OUTPUT. Also delivers deferred
 * events. */
CN_WARN_UNUSED int cn_mux_output(cn_mux_t *mux, uint8_t *out, size_t cap);
/* Nonzero when cn_mux_output() would write bytes or deliver deferred events:
 * the glue asks for a writeable callback when this is true. */
int cn_mux_has_output(const cn_mux_t *mux);
/* The link is gone: every live stream gets on_reset(code, "link closed") and
 * on_closed, queued frames are dropped, and every later call fails with
 * CN_ECLOSED (cn_mux_output returns 0). Idempotent. */
void cn_mux_abort(cn_mux_t *mux, uint32_t code);

/* ---- streams ---- */

/* Opens a stream: queues an OPEN carrying our receive window, kind (enum
 * cn_stream_kind, nonzero), ref (<= CN_FRAME_MAX_REF bytes) and meta (opaque,
 * the frame must fit CN_FRAME_MAX_PAYLOAD). `user` is borrowed and handed
 * back in callbacks. Sets *id. No DATA leaves before the peer's OPEN_ACK
 * (on_accepted); writes before it return CN_EAGAIN and on_writable follows.
 * Errors: CN_EEXHAUSTED (ids used up: reconnect), CN_EAGAIN (max_streams
 * live, or the control queue is full), CN_ECLOSED (GOAWAY sent or received,
 * link failed or aborted), CN_EINVAL, CN_ENOMEM. */
CN_WARN_UNUSED int cn_mux_open(cn_mux_t *mux, uint8_t kind, const uint8_t *ref, size_t ref_len,
                               const uint8_t *meta, size_t meta_len, void *user, uint32_t *id);
/* Accepts a stream announced by on_open (queues OPEN_ACK with our window).
 * `user` is borrowed. CN_ESTATE when it is not pending. */
CN_WARN_UNUSED int cn_mux_accept(cn_mux_t *mux, uint32_t id, void *user);
/* Refuses a stream announced by on_open: RST with `code` (e.g.
 * CN_RST_REFUSED) and msg (NUL-terminated or NULL, truncated to
 * CN_FRAME_MAX_REASON). on_closed(id, NULL) follows. CN_ESTATE when it is
 * not pending. The RST is a reply the peer provoked: CN_EFLOW (the stream is
 * closed all the same) when the peer left too many replies unread, which
 * fails the link (cn_mux_error()); cn_mux_accept() likewise. */
int cn_mux_reject(cn_mux_t *mux, uint32_t id, uint32_t code, const char *msg);

/* Copies up to cap received bytes into buf. Returns the count, 0 at EOF (the
 * peer's FIN, after all its data), CN_EAGAIN when nothing is buffered,
 * CN_ESTATE before accept. Consuming returns credit to the peer. */
CN_WARN_UNUSED int cn_mux_read(cn_mux_t *mux, uint32_t id, uint8_t *buf, size_t cap);
/* Zero-copy read: points *ptr at the next contiguous received bytes (valid
 * until the next call on this mux) and sets *len. Returns *len (> 0), 0 at
 * EOF, or the errors of cn_mux_read(). Follow with cn_mux_consume(). */
CN_WARN_UNUSED int cn_mux_peek(cn_mux_t *mux, uint32_t id, const uint8_t **ptr, size_t *len);
/* Vectored zero-copy read, for readv()/writev(): points iov[0..n) at the
 * received bytes in order (one span per buffer chunk, at most max spans) and
 * sets *len to their total. Returns n (> 0), 0 at EOF, CN_EINVAL when max
 * <= 0, or the errors of cn_mux_read(). Valid until the next call on this
 * mux; follow with cn_mux_consume() of what was used. */
CN_WARN_UNUSED int cn_mux_peekv(cn_mux_t *mux, uint32_t id, struct iovec *iov, int max,
                                size_t *len);
/* Drops n received bytes (n <= what is buffered, else CN_EINVAL). */
CN_WARN_UNUSED int cn_mux_consume(cn_mux_t *mux, uint32_t id, size_t n);

/* Queues up to len bytes for sending. Accepts at most the peer's remaining
 * credit minus what is already queued (and at most send_buffer queued), so
 * buffering is bounded by windows. Returns the count accepted (> 0; 0 when
 * len is 0), CN_EAGAIN when nothing fits (on_writable follows), CN_ECLOSED
 * after cn_mux_shutdown(), CN_ESTATE before accept. */
CN_WARN_UNUSED int cn_mux_write(cn_mux_t *mux, uint32_t id, const uint8_t *data, size_t len);
/* Zero-copy write: points *ptr at free send space of *space bytes (> 0) that
 * the caller fills (e.g. recv() into it) and then commits. Errors as
 * cn_mux_write(). The space is valid only until the next call on this mux
 * other than cn_mux_write_commit(). */
CN_WARN_UNUSED int cn_mux_write_space(cn_mux_t *mux, uint32_t id, uint8_t **ptr, size_t *space);
/* Vectored cn_mux_write_space(), for readv(): points iov[0..n) at free send
 * space, up to the stream's whole send space in at most max spans (max <=
 * CN_MUX_MAX_IOV, else CN_EINVAL), sets *space to their total and returns n
 * (> 0). The caller fills the spans in order (as readv() does) and commits
 * the total with cn_mux_write_commit(); spans past the committed bytes are
 * given back. Errors and validity as cn_mux_write_space(). */
CN_WARN_UNUSED int cn_mux_write_spacev(cn_mux_t *mux, uint32_t id, struct iovec *iov, int max,
                                       size_t *space);
/* Queues n bytes written into the space from cn_mux_write_space[v](). CN_EINVAL
 * when n exceeds it, CN_ESTATE when no space is outstanding (another call
 * intervened). n = 0 abandons the space. */
CN_WARN_UNUSED int cn_mux_write_commit(cn_mux_t *mux, uint32_t id, size_t n);
/* Half-close: a FIN follows the queued data; the other direction keeps
 * working. Idempotent. CN_ESTATE before accept. */
CN_WARN_UNUSED int cn_mux_shutdown(cn_mux_t *mux, uint32_t id);
/* Aborts the stream: queues RST(code, msg) at once, drops both buffers; the
 * id is dead on return and on_closed fires from the next pump call. msg as
 * in cn_mux_reject(). On a stream pending accept this is cn_mux_reject().
 * Neither is must-check (CN_WARN_UNUSED): the stream is closed on return
 * whatever the result, which only says whether the RST could be queued, and
 * a caller tearing a stream down has nothing else to do. */
int cn_mux_reset(cn_mux_t *mux, uint32_t id, uint32_t code, const char *msg);

/* ---- connection level ---- */

/* Queues a CONTROL frame with `obj` (a JSON object, borrowed). CN_EAGAIN when
 * the control queue is full, CN_ETOOBIG above the payload limit, CN_EINVAL
 * when obj is not an object. */
CN_WARN_UNUSED int cn_mux_send_control(cn_mux_t *mux, const struct json_t *obj);
/* Queues one datagram on a stream (accepted or opened by us). Like UDP, it
 * is dropped with CN_EAGAIN when the datagram queue is full. CN_ETOOBIG above
 * CN_FRAME_MAX_DATAGRAM. */
CN_WARN_UNUSED int cn_mux_send_datagram(cn_mux_t *mux, uint32_t id, const uint8_t *data,
                                        size_t len);
/* Queues a PING carrying `value` (e.g. the caller's now_ms); on_pong returns
 * it. The peer's PINGs are answered automatically. CN_EAGAIN when full. */
CN_WARN_UNUSED int cn_mux_ping(cn_mux_t *mux, uint64_t value);
/* Queues GOAWAY(code, msg): no new streams either way from now on (our
 * cn_mux_open fails, the peer's OPENs are refused with CN_RST_GONE); live
 * streams continue. CN_ESTATE when already sent. Not must-check: a courtesy
 * on the way out, the link closes after it whatever it returns. */
int cn_mux_goaway(cn_mux_t *mux, uint32_t code, const char *msg);

/* ---- stats ---- */

/* Live streams (opening, pending accept, or open). */
size_t cn_mux_stream_count(const cn_mux_t *mux);
/* Bytes held in stream buffers, received (unread) plus queued to send. */
size_t cn_mux_buffered_bytes(const cn_mux_t *mux);
/* One stream's unread received bytes and queued send bytes (NULLs allowed).
 * CN_ENOTFOUND for a dead id. */
CN_WARN_UNUSED int cn_mux_stream_buffered(const cn_mux_t *mux, uint32_t id, size_t *rx, size_t *tx);
/* The bytes stream `id` may still send before the peer returns credit:
 * right after its OPEN or OPEN_ACK, the window the peer announced.
 * CN_ENOTFOUND for an unknown id. */
CN_WARN_UNUSED int cn_mux_stream_credit(const cn_mux_t *mux, uint32_t id, size_t *credit);
/* Bytes waiting for cn_mux_output(): queued frames plus queued stream data. */
size_t cn_mux_pending_bytes(const cn_mux_t *mux);
/* Bytes of queued replies the peer provoked (PONG, OPEN_ACK, RST, WINDOW)
 * not yet output. A peer that sends OPENs or PINGs and never reads makes
 * this grow; the glue stops reading the link above cn_mux_reply_high()
 * (queue_max / 4) so that it never reaches the hard bound, past which the
 * link fails with CN_EFLOW. */
size_t cn_mux_reply_bytes(const cn_mux_t *mux);
size_t cn_mux_reply_high(const cn_mux_t *mux);
/* The sticky link error (CN_EFLOW, CN_EPROTO, CN_ENOMEM), CN_ECLOSED after
 * cn_mux_abort(), else 0. An application call that queues a reply (reject,
 * accept, a read returning credit) can fail the link outside
 * cn_mux_input(): the glue checks this after such calls. */
int cn_mux_error(const cn_mux_t *mux);

#endif
