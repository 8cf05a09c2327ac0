/* cn_pipe: joins one TCP socket and one multiplexed stream of a link.
 *
 * The hub adopts each accepted public connection into a pipe and opens a
 * stream to the exposing agent; the agent dials the tunnel's target into a
 * pipe for each stream the hub opens. Bytes move socket -> stream only while
 * the stream has send credit, and stream -> socket only as fast as the socket
 * takes them, so each direction is bounded by the stream window. Half-close
 * is carried both ways (socket EOF -> FIN, FIN -> shutdown(SHUT_WR)).
 *
 * The socket is an lws raw-file wsi (lws polls, the pipe does recv/send), so
 * EOF, half-close and backpressure are ours to control. A stream that ends
 * without the peer's FIN (reset, refused, link lost, cn_pipe_abort) closes
 * the socket with RST (SO_LINGER 0), so the far end never mistakes a cut
 * transfer for a complete one. Put
 * cn_pipe_protocol() in the vhost's protocols.
 *
 * Stream dispatch: every stream user pointer (cn_mux_open()/cn_mux_accept())
 * in Connect points to a struct whose first member is a `const cn_stream_ops_t
 * *`. cn_stream_dispatch_callbacks() fills the per-stream mux callbacks with
 * functions that forward to those ops; the application supplies the
 * connection-level ones (on_open, on_control, ...). A pipe is such a struct.
 *
 * Ownership: a pipe frees itself once both its socket is closed and its
 * stream is finished (or was never opened); its done callback fires just
 * before. The application must not touch it after that. */
#ifndef CN_PIPE_H
#define CN_PIPE_H

#include "cn_defs.h"

#include <stddef.h>
#include <stdint.h>

#include "cn_link.h"
#include "cn_mux.h"

struct lws_vhost;
struct lws_protocols;
struct cn_e2e_config;

typedef struct cn_stream_ops {
    void (*accepted)(void *self);
    void (*readable)(void *self);
    void (*writable)(void *self);
    void (*reset)(void *self, uint32_t code, const char *msg, size_t len);
    void (*closed)(void *self); /* last call for this stream */
    void (*datagram)(void *self, const uint8_t *data, size_t len);
} cn_stream_ops_t;

/* Sets the per-stream members of `cb` (accepted, readable, writable, reset,
 * closed, datagram) to dispatchers that call the stream user's ops. The mux
 * ctx must be the cn_link_t (cn_link does that). */
void cn_stream_dispatch_callbacks(cn_mux_callbacks_t *cb);

typedef struct cn_pipe cn_pipe_t;

/* Called once when the pipe is finished; `err` is 0 for a clean end (both
 * directions closed normally), else why (CN_EREFUSED: the stream was refused,
 * CN_EIO: socket error, CN_ECLOSED: the link went away, ...). The pipe is
 * freed right after. */
typedef void (*cn_pipe_done_fn)(void *ctx, cn_pipe_t *pipe, int err);

/* How long cn_pipe_open() waits for the agent to accept its stream. */
#define CN_PIPE_OPEN_TIMEOUT_MS 2000u

typedef struct cn_pipe_config {
    cn_pipe_done_fn done; /* optional */
    void *ctx;
    /* cn_pipe_open(): when the peer has not accepted (or refused) the stream
     * within this many ms, the stream is reset and the socket closed with
     * RST (done gets CN_ETIMEOUT), so a frozen agent never holds clients.
     * 0 = CN_PIPE_OPEN_TIMEOUT_MS. */
    uint32_t open_timeout_ms;
    /* Once attached: when no byte moved either way for this many ms, the
     * pipe is aborted (socket RST, stream reset with CN_RST_CANCEL; done
     * gets CN_ETIMEOUT). 0 = never. */
    uint32_t idle_timeout_ms;
    /* Reach streams (CN_KIND_RELAY): the end-to-end layer between the two
     * agents (cn_e2e.h), borrowed for the call; NULL for plain streams. The
     * stream then carries only sealed records: the pipe reads its socket
     * once the handshake is done, passes a FIN on as a clean end only
     * behind the peer's authenticated close, and closes the socket with RST
     * when the handshake or a record fails. */
    const struct cn_e2e_config *e2e;
    /* cn_pipe_dial(): speak TLS to the target (tunnels of protocol https).
     * The stream is accepted only once the handshake verified the target:
     * against the system CA store, or only tls_ca_file when given (PEM),
     * for the name tls_name (NULL: the dialled host; an IP literal is
     * checked against the certificate's addresses). tls_insecure skips
     * verification. A failed handshake refuses the stream with
     * CN_RST_UNREACHABLE and one log line saying why. Strings are copied. */
    bool tls;
    const char *tls_ca_file;
    const char *tls_name;
    bool tls_insecure;
} cn_pipe_config_t;

/* The lws protocol entry for pipe sockets (raw-file role). */
const struct lws_protocols *cn_pipe_protocol(void);

/* Hub side: takes ownership of a connected socket `fd` (closed on failure
 * too), opens a stream of `kind` with reference `ref` and metadata `meta` on
 * `link`, and starts moving bytes once the agent accepts. Reading from the
 * socket waits until then, at most cfg->open_timeout_ms. Returns NULL with
 * *err on failure (no callback). */
CN_WARN_UNUSED cn_pipe_t *cn_pipe_open(struct lws_vhost *vh, int fd, cn_link_t *link, uint8_t kind,
                                       const uint8_t *ref, size_t ref_len, const uint8_t *meta,
                                       size_t meta_len, const cn_pipe_config_t *cfg, int *err);

/* Agent side: for a stream `id` the peer opened (announced by on_open and
 * not yet accepted), connects to host:port (an IP literal at once; a name
 * after resolver threads answered, never blocking the loop: cn_resolve.h),
 * then accepts the stream on success or rejects it with CN_RST_UNREACHABLE
 * (done follows, possibly from inside cn_pipe_abort()). Returns NULL with
 * *err when it cannot even start (then the caller rejects the stream):
 * CN_EAGAIN when the resolver's queue is full. While it dials, the
 * stream is pending and the mux cannot reach the pipe: when the link closes
 * first, the caller must cn_pipe_abort() it from the link's on_closed. */
CN_WARN_UNUSED cn_pipe_t *cn_pipe_dial(struct lws_vhost *vh, cn_link_t *link, uint32_t id,
                                       const char *host, int port, const cn_pipe_config_t *cfg,
                                       int *err);

/* Closes the socket and resets the stream (code, e.g. CN_RST_PAUSED or
 * CN_RST_GONE). Safe to call more than once; done follows. */
void cn_pipe_abort(cn_pipe_t *pipe, uint32_t code);
/* End of a loop turn, for loop owners whose links were created with
 * flush_after_turn: sends the stream bytes that arrived this turn to the
 * sockets of their pipes (one send for all the DATA frames of a link read,
 * not one each), then cn_link_flush_turn(). Pipes of other links write at
 * once. */
void cn_pipe_flush_turn(void);

/* Bytes moved socket->stream and stream->socket. */
/* Changes the idle timeout of a live pipe (0 = never), measured from its
 * last byte: a pipe already idle for longer is aborted on the next turn. */
void cn_pipe_set_idle_timeout(cn_pipe_t *pipe, uint32_t ms);
uint64_t cn_pipe_bytes_up(const cn_pipe_t *pipe);
uint64_t cn_pipe_bytes_down(const cn_pipe_t *pipe);
/* The code of the RST that refused or ended the stream (CN_RST_*), 0 when
 * none came: for the done callback's log line. */
uint32_t cn_pipe_reset_code(const cn_pipe_t *pipe);

/* Socket helpers shared by listeners: non-blocking, close-on-exec,
 * TCP_NODELAY. 0 or CN_EIO. */
CN_WARN_UNUSED int cn_sock_tune(int fd);
/* TCP_NODELAY alone, for a socket created non-blocking and close-on-exec
 * (accept4 or socket with SOCK_NONBLOCK | SOCK_CLOEXEC): the three fcntl
 * calls of cn_sock_tune() are saved on every new connection. */
void cn_sock_nodelay(int fd);
/* Closes fd with RST (SO_LINGER 0): a refused client learns at once and
 * no TIME_WAIT or half-open state stays behind. */
void cn_sock_reset(int fd);
/* A non-blocking listening TCP socket on host:port (port 0 = any) with
 * SO_REUSEADDR, TCP_NODELAY (which the sockets it accepts inherit on Linux)
 * and the given backlog, bound to exactly that address (an
 * IPv6 address with IPV6_V6ONLY); returns the fd or a negative CN_E*
 * (CN_EINVAL: not an address; CN_EIO: errno says why).
 * *bound_port (optional) receives the actual port. */
CN_WARN_UNUSED int cn_sock_listen(const char *host, int port, int backlog, int *bound_port);
/* The local port a bound socket (TCP or UDP) has, or CN_EIO. */
int cn_sock_bound_port(int fd);

#endif
