/* Socket <-> stream bridge. lws only polls the socket (raw-file role); this
 * file does recv()/send()/shutdown() itself so that EOF becomes FIN, FIN
 * becomes a half-close, and reading stops whenever the stream has no credit.
 * Bytes are received straight into the mux's send queue and sent straight
 * from its receive buffer: no copy here. */
#include "cn_pipe.h"

#include "cn_e2e.h"
#include "cn_err.h"
#include "cn_frame.h"
#include "cn_log.h"
#include "cn_resolve.h"
#include "cn_time.h"

#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define PIPE_PROTOCOL "cn-pipe"
/* recv() calls per readable callback before yielding to other sockets. */
#define READS_PER_EVENT 8

struct cn_pipe {
    const cn_stream_ops_t *ops; /* first: the stream user pointer dispatches through it */
    struct lws *wsi;
    cn_link_t *link;
    cn_mux_t *mux;
    uint32_t id;
    cn_pipe_config_t cfg;
    int dialing;                      /* agent: connect() in progress, stream not yet accepted */
    struct lws_vhost *vh;             /* agent: where the dialled socket is adopted */
    cn_resolve_req_t *resolving;      /* agent: the target's name is being resolved */
    int attached;                     /* the stream is open both ways: bytes may flow */
    int stream_done;                  /* the stream is finished (or never was): no more mux calls */
    int sock_done;                    /* the socket wsi is closed */
    int rd_eof;                       /* socket EOF seen and FIN queued */
    int wr_shut;                      /* stream EOF seen and shutdown(SHUT_WR) done */
    int rx_on;                        /* POLLIN wanted */
    int drain_fd;                     /* >= 0: lws dropped the socket on POLLHUP, we drain it */
    int aborted;                      /* the stream ended without the peer's FIN: RST the socket */
    lws_sorted_usec_list_t sul_write; /* deferred writable request, see want_write() */
    lws_sorted_usec_list_t sul_open;  /* hub: deadline for the peer's answer to our OPEN */
    lws_sorted_usec_list_t sul_idle;  /* idle timeout, see cn_pipe_config_t */
    bool idle_started;                /* the idle clock runs (bytes may flow) */
    uint64_t last_active_ms;          /* last byte moved either way */
    int err;
    uint64_t up, down;
    /* Reach streams: the end-to-end layer between the two agents (NULL
     * otherwise). Socket bytes are sealed into records and records opened
     * back into bytes; the stream carries only records. */
    cn_e2e_t *e2e;
    int e2e_fin;         /* socket EOF: CLOSE record queued, FIN follows the wire */
    int e2e_fin_sent;    /* that FIN is queued on the stream */
    uint32_t reset_code; /* the peer's RST code, 0 if none came */
    /* Agent, protocol https: TLS to the target on the socket itself. */
    SSL_CTX *ssl_ctx;
    SSL *ssl;
    int tls_hs;                      /* handshake under way: the stream waits */
    char *tls_name;                  /* the name verified (NULL = none); owned */
    lws_sorted_usec_list_t sul_read; /* decrypted bytes pending: read them */
    int turn_queued;                 /* on this thread's turn list: see cn_pipe_flush_turn() */
    cn_pipe_t *turn_next;
};

/* Pipes with stream bytes for their socket, written at the end of the loop
 * turn (cn_pipe_flush_turn()): one link read brings many DATA frames for a
 * stream, and each would otherwise cost its own send(). Per thread, as the
 * links are (cn_link_flush_turn()). */
static _Thread_local cn_pipe_t *turn_head;

static void turn_remove(cn_pipe_t *p)
{
    for (cn_pipe_t **pp = &turn_head; *pp; pp = &(*pp)->turn_next) {
        if (*pp == p) {
            *pp = p->turn_next;
            break;
        }
    }
    p->turn_queued = 0;
    p->turn_next = NULL;
}

/* ---- lifetime ---------------------------------------------------------- */

static void maybe_free(cn_pipe_t *p)
{
    if (!p->stream_done || !p->sock_done)
        return;
    lws_sul_cancel(&p->sul_write);
    lws_sul_cancel(&p->sul_open);
    lws_sul_cancel(&p->sul_idle);
    lws_sul_cancel(&p->sul_read);
    if (p->turn_queued)
        turn_remove(p);
    if (p->cfg.done)
        p->cfg.done(p->cfg.ctx, p, p->err);
    cn_e2e_free(p->e2e);
    SSL_free(p->ssl);
    SSL_CTX_free(p->ssl_ctx);
    free(p->tls_name);
    free(p);
}

static void idle_check(lws_sorted_usec_list_t *sul)
{
    cn_pipe_t *p = lws_container_of(sul, cn_pipe_t, sul_idle);
    if (p->stream_done || p->sock_done || !p->wsi)
        return;
    uint64_t idle = cn_time_mono_ms() - p->last_active_ms;
    if (idle < p->cfg.idle_timeout_ms) {
        lws_sul_schedule(lws_get_context(p->wsi), 0, &p->sul_idle, idle_check,
                         (lws_usec_t)(p->cfg.idle_timeout_ms - idle) * LWS_US_PER_MS);
        return;
    }
    cn_log_info("pipe %u: idle for %llu ms, closed", p->id, (unsigned long long)idle);
    p->err = CN_ETIMEOUT;
    cn_pipe_abort(p, CN_RST_CANCEL);
}

/* Starts the idle clock once bytes may flow. */
static void idle_start(cn_pipe_t *p)
{
    p->idle_started = true;
    p->last_active_ms = cn_time_mono_ms();
    if (p->cfg.idle_timeout_ms && p->wsi)
        lws_sul_schedule(lws_get_context(p->wsi), 0, &p->sul_idle, idle_check,
                         (lws_usec_t)p->cfg.idle_timeout_ms * LWS_US_PER_MS);
}

void cn_pipe_set_idle_timeout(cn_pipe_t *p, uint32_t ms)
{
    if (!p || p->cfg.idle_timeout_ms == ms)
        return;
    p->cfg.idle_timeout_ms = ms;
    if (!p->idle_started || !p->wsi)
        return;
    lws_sul_cancel(&p->sul_idle);
    if (ms) /* idle_check measures from the last byte and re-arms itself */
        lws_sul_schedule(lws_get_context(p->wsi), 0, &p->sul_idle, idle_check, LWS_US_PER_MS);
}

/* Makes the next close() of fd send RST instead of FIN. */
static void sock_linger0(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* Closes the socket through lws. A stream that did not end with the peer's
 * own FIN (reset, refused, link lost, aborted) closes it with RST, so the
 * client (or the target) sees ECONNRESET and never mistakes a truncated
 * transfer for a complete one. */
static void close_socket(cn_pipe_t *p)
{
    if (p->wsi && !p->sock_done) {
        if (p->aborted)
            sock_linger0(lws_get_socket_fd(p->wsi));
        lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

static int pipe_read(cn_pipe_t *p);

static void read_again(lws_sorted_usec_list_t *sul)
{
    cn_pipe_t *p = lws_container_of(sul, cn_pipe_t, sul_read);
    if (p->wsi && !p->sock_done && p->rx_on && pipe_read(p) < 0)
        lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void set_rx(cn_pipe_t *p, int on)
{
    /* Bytes OpenSSL already decrypted make no POLLIN: read them from a
     * zero-delay timer. */
    if (on && p->ssl && !p->tls_hs && p->wsi && !p->sock_done && SSL_has_pending(p->ssl))
        lws_sul_schedule(lws_get_context(p->wsi), 0, &p->sul_read, read_again, 1);
    if (p->rx_on == on || !p->wsi || p->sock_done)
        return;
    p->rx_on = on;
    lws_rx_flow_control(p->wsi, on);
}

static void write_again(lws_sorted_usec_list_t *sul)
{
    cn_pipe_t *p = lws_container_of(sul, cn_pipe_t, sul_write);
    if (p->wsi && !p->sock_done)
        lws_callback_on_writable(p->wsi);
}

/* Asks for another writeable callback. lws's raw-file role clears POLLOUT
 * after the writeable callback returns, which would cancel a request made
 * inside it; a zero-delay timer makes the request after that. */
static void want_write(cn_pipe_t *p)
{
    if (p->wsi && !p->sock_done)
        lws_sul_schedule(lws_get_context(p->wsi), 0, &p->sul_write, write_again, 1);
}

/* ---- socket -> stream -------------------------------------------------- */

static int pipe_fd(const cn_pipe_t *p)
{
    return p->drain_fd >= 0 ? p->drain_fd : lws_get_socket_fd(p->wsi);
}

static void drain_done(cn_pipe_t *p)
{
    close(p->drain_fd);
    p->drain_fd = -1;
    p->sock_done = 1;
}

/* A drained socket failed: give it up and abort the stream (its closed
 * event frees the pipe). */
static void drain_fail(cn_pipe_t *p)
{
    cn_link_t *link = p->link;
    drain_done(p);
    cn_mux_reset(p->mux, p->id, CN_RST_CANCEL, "connection closed");
    cn_link_flush(link);
}

/* ---- the socket, through TLS for https targets --------------------------- */

/* recv(2)/send(2) on the socket, or SSL_read/SSL_write with the same
 * conventions: -1 with errno EAGAIN when nothing can move now, 0 from
 * sock_recv at the end (a close_notify, or a plain EOF: many servers skip
 * the close_notify, and the HTTP edge frames responses itself). */
static ssize_t tls_result(cn_pipe_t *p, int n)
{
    if (n > 0)
        return n;
    int e = SSL_get_error(p->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (e == SSL_ERROR_WANT_WRITE)
            want_write(p);
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    unsigned long why = ERR_get_error();
    ERR_clear_error();
    cn_log_debug("pipe %u: TLS: %s", p->id, why ? ERR_reason_error_string(why) : "I/O error");
    errno = ECONNRESET;
    return -1;
}

static ssize_t sock_recv(cn_pipe_t *p, int fd, void *buf, size_t len)
{
    if (!p->ssl)
        return recv(fd, buf, len, 0);
    return tls_result(p, SSL_read(p->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len));
}

static ssize_t sock_write(cn_pipe_t *p, int fd, const void *buf, size_t len)
{
    if (!p->ssl)
        return send(fd, buf, len, MSG_NOSIGNAL);
    return tls_result(p, SSL_write(p->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len));
}

/* The stream's FIN: half-close the socket (after a close_notify on TLS). */
static void sock_shut_wr(cn_pipe_t *p, int fd)
{
    if (p->ssl)
        SSL_shutdown(p->ssl);
    shutdown(fd, SHUT_WR);
}

/* ---- sending to the socket ----------------------------------------------- */

/* Sends what the socket takes of iov[0..k) (len bytes in all; one span
 * through TLS): 1 when all of it went, 0 when the socket is full (a
 * writeable callback is asked for), -1 on an error (p->err set). *sent says
 * how much went. */
static int sock_sendv(cn_pipe_t *p, int fd, struct iovec *iov, int k, size_t len, size_t *sent)
{
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)k};
    *sent = 0;
    for (;;) {
        ssize_t n = p->ssl ? sock_write(p, fd, iov[0].iov_base, iov[0].iov_len)
                           : sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n > 0) {
            p->down += (uint64_t)n;
            *sent = (size_t)n;
            if ((size_t)n == len)
                return 1;
            want_write(p);
            return 0;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want_write(p);
            return 0;
        }
        cn_log_debug("pipe %u: send: %s", p->id, n < 0 ? strerror(errno) : "wrote nothing");
        p->err = CN_EIO;
        return -1;
    }
}

static int sock_send(cn_pipe_t *p, int fd, const uint8_t *src, size_t len, size_t *sent)
{
    struct iovec iov = {.iov_base = (void *)src, .iov_len = len};
    return sock_sendv(p, fd, &iov, 1, len, sent);
}

/* ---- end-to-end layer (reach streams) ----------------------------------- */

static void stream_fail(cn_pipe_t *p, int rc);

/* Moves what the layer holds for the stream (records, handshake messages)
 * into it as far as credit allows, then the FIN that waits behind them.
 * True when nothing is left. */
static bool e2e_flush(cn_pipe_t *p)
{
    cn_buf_t *w = cn_e2e_wire(p->e2e);
    if (!p->attached || p->stream_done)
        return false;
    while (w->len) {
        int n = cn_mux_write(p->mux, p->id, cn_buf_data(w), w->len);
        if (n <= 0)
            return false; /* no credit: on_writable brings us back */
        cn_buf_consume(w, (size_t)n);
    }
    if (p->e2e_fin && !p->e2e_fin_sent) {
        p->e2e_fin_sent = 1;
        int rc = cn_mux_shutdown(p->mux, p->id);
        if (rc < 0) {
            stream_fail(p, rc);
            return false;
        }
    }
    return true;
}

/* The other agent (or a hub in the middle) failed the handshake or a
 * record: nothing more is trusted. The stream is reset and the socket closed
 * with RST, so the client never takes a cut stream for a clean end. */
static void e2e_fail(cn_pipe_t *p, int rc)
{
    cn_log_warn("pipe %u: end-to-end %s failed (%s): connection closed", p->id,
                cn_e2e_ready(p->e2e) ? "channel" : "handshake", cn_strerror(rc));
    if (!p->err)
        p->err = rc;
    p->aborted = 1;
    set_rx(p, 0);
    cn_mux_reset(p->mux, p->id, CN_RST_PROTOCOL, "end-to-end authentication failed");
    cn_link_flush(p->link);
}

/* A mux call that must succeed did not (the FIN or returned credit could
 * not be queued): the peer would wait forever, so the stream is reset and
 * the socket closed with RST. */
static void stream_fail(cn_pipe_t *p, int rc)
{
    cn_log_debug("pipe %u: stream call failed (%s): connection closed", p->id, cn_strerror(rc));
    if (!p->err)
        p->err = rc;
    p->aborted = 1;
    set_rx(p, 0);
    cn_mux_reset(p->mux, p->id, CN_RST_INTERNAL, "stream failure");
    cn_link_flush(p->link);
}

/* Where the next recv() goes: straight into the stream's send queue, or
 * (reach) into the record being built, sealed in place after the recv. One
 * record waits at most: no space until it is on the stream. NULL when
 * there is no room (the stream's writable event resumes reading). */
static uint8_t *read_space(cn_pipe_t *p, size_t *cap)
{
    uint8_t *dst = NULL;
    *cap = 0;
    if (p->e2e)
        return e2e_flush(p) ? cn_e2e_seal_space(p->e2e, cap) : NULL;
    if (cn_mux_write_space(p->mux, p->id, &dst, cap) < 0 || *cap == 0)
        return NULL;
    return dst;
}

/* Queues the n bytes recv() put into the space (0: it put none). 0, or the
 * end-to-end layer's failure. */
static int read_commit(cn_pipe_t *p, size_t n)
{
    if (!p->e2e)
        return cn_mux_write_commit(p->mux, p->id, n);
    int rc = cn_e2e_seal_commit(p->e2e, n);
    if (rc == 0 && n)
        e2e_flush(p);
    return rc;
}

/* The socket's EOF becomes the stream's FIN; for reach, behind the
 * authenticated close record, which the peer needs to tell it from a cut. */
static int read_eof(cn_pipe_t *p)
{
    if (!p->e2e)
        return cn_mux_shutdown(p->mux, p->id);
    int rc = cn_e2e_close(p->e2e);
    if (rc)
        return rc;
    p->e2e_fin = 1;
    e2e_flush(p);
    return 0;
}

/* One receive into the stream's send space: readv() over all of it (up to
 * CN_MUX_MAX_IOV chunks) for a plain socket, else one recv() into one
 * contiguous space (TLS reads one record at a time anyway; reach seals one
 * record per space). Returns what the socket call returned (errno set on
 * -1), or -2 with *rc set when no space was given (*rc == 0: none left, or
 * the queueing failed). *space says how much was offered. */
static ssize_t read_into_stream(cn_pipe_t *p, int fd, size_t *space, int *rc)
{
    *rc = 0;
    if (p->e2e || p->ssl) {
        uint8_t *dst = read_space(p, space);
        if (!dst)
            return -2;
        ssize_t n = sock_recv(p, fd, dst, *space);
        int err = errno;
        *rc = read_commit(p, n > 0 ? (size_t)n : 0);
        errno = err;
        return n;
    }
    struct iovec iov[CN_MUX_MAX_IOV];
    int k = cn_mux_write_spacev(p->mux, p->id, iov, CN_MUX_MAX_IOV, space);
    if (k <= 0 || *space == 0)
        return -2;
    ssize_t n = readv(fd, iov, k);
    int err = errno;
    *rc = cn_mux_write_commit(p->mux, p->id, n > 0 ? (size_t)n : 0);
    errno = err;
    return n;
}

static int pipe_read(cn_pipe_t *p)
{
    if (!p->attached || p->stream_done || p->rd_eof || (p->e2e && !cn_e2e_ready(p->e2e))) {
        set_rx(p, 0);
        return 0;
    }
    int fd = pipe_fd(p);
    /* Polled sockets yield after a few reads; a drained one is never polled
     * again, so it reads until EOF or until the stream has no credit. */
    for (int i = 0; p->drain_fd >= 0 || i < READS_PER_EVENT; i++) {
        size_t space;
        int rc;
        ssize_t n = read_into_stream(p, fd, &space, &rc);
        int err = errno;
        if (n == -2) {
            set_rx(p, 0); /* resumed by the stream's writable event */
            break;
        }
        if (rc == 0 && n == 0) {
            p->rd_eof = 1;
            set_rx(p, 0);
            rc = read_eof(p);
        }
        if (rc && p->e2e) {
            e2e_fail(p, rc);
            return 0;
        }
        if (rc) { /* not queued (data or FIN): the peer would wait forever */
            p->err = rc;
            return -1;
        }
        if (n > 0) {
            p->up += (uint64_t)n;
            p->last_active_ms = cn_time_mono_ms();
            if ((size_t)n < space && p->drain_fd < 0 && !(p->ssl && SSL_has_pending(p->ssl)))
                break; /* drained for now; POLLIN says when there is more */
            continue;
        }
        if (n == 0) {
            if (p->drain_fd >= 0)
                drain_done(p); /* freed once the stream finishes */
            break;
        }
        if (err == EINTR)
            continue;
        if (err == EAGAIN || err == EWOULDBLOCK)
            break;
        cn_log_debug("pipe %u: recv: %s", p->id, strerror(err));
        p->err = CN_EIO;
        cn_link_flush(p->link);
        return -1;
    }
    cn_link_flush(p->link);
    return 0;
}

/* ---- stream -> socket -------------------------------------------------- */

/* Stream -> socket through the layer: records are opened into the plain
 * buffer, which is sent before more of the stream is read, so it holds at
 * most one slice's worth. Handshake messages are answered on the way, and
 * once the handshake is done the socket may be read. */
static int pipe_write_e2e(cn_pipe_t *p)
{
    int fd = lws_get_socket_fd(p->wsi);
    cn_buf_t *plain = cn_e2e_plain(p->e2e);
    int ret = 0;
    while (!p->stream_done && !p->wr_shut && p->attached && !cn_e2e_error(p->e2e)) {
        if (plain->len) {
            size_t sent;
            int r = sock_send(p, fd, cn_buf_data(plain), plain->len, &sent);
            cn_buf_consume(plain, sent);
            if (r > 0)
                continue;
            ret = r;
            break;
        }
        const uint8_t *src;
        size_t len;
        int rc = cn_mux_peek(p->mux, p->id, &src, &len);
        if (rc == 0) {
            /* The FIN: a clean end only behind the peer's authenticated
             * close; otherwise someone cut the stream. */
            rc = cn_e2e_eof(p->e2e);
            if (rc) {
                e2e_fail(p, rc);
                break;
            }
            p->wr_shut = 1;
            sock_shut_wr(p, fd);
            break;
        }
        if (rc < 0)
            break;
        if (len > CN_E2E_MAX_FEED)
            len = CN_E2E_MAX_FEED;
        rc = cn_e2e_feed(p->e2e, src, len);
        if (rc) {
            e2e_fail(p, rc);
            break;
        }
        rc = cn_mux_consume(p->mux, p->id, len);
        if (rc < 0) {
            stream_fail(p, rc);
            break;
        }
        e2e_flush(p); /* a handshake answer, if any */
        if (cn_e2e_ready(p->e2e) && !p->rd_eof)
            set_rx(p, 1);
    }
    if (!p->stream_done)
        cn_link_flush(p->link);
    return ret;
}

/* Sends what the socket takes of the stream's received bytes: sendmsg()
 * over all of its chunks (up to CN_MUX_MAX_IOV) for a plain socket, one
 * chunk through TLS. Returns as sock_sendv(), or 2 when the stream has
 * nothing to send (*eof set at its end). */
static int send_from_stream(cn_pipe_t *p, int fd, size_t *sent, int *eof)
{
    struct iovec iov[CN_MUX_MAX_IOV];
    size_t len;
    *sent = 0;
    int k = cn_mux_peekv(p->mux, p->id, iov, p->ssl ? 1 : CN_MUX_MAX_IOV, &len);
    *eof = k == 0;
    if (k <= 0)
        return 2;
    return sock_sendv(p, fd, iov, k, len, sent);
}

static int pipe_write(cn_pipe_t *p)
{
    if (p->e2e)
        return pipe_write_e2e(p);
    int fd = lws_get_socket_fd(p->wsi);
    int ret = 0;
    while (!p->stream_done && !p->wr_shut && p->attached) {
        size_t sent;
        int eof;
        int r = send_from_stream(p, fd, &sent, &eof);
        if (r == 2) {
            if (eof) {
                /* The peer's FIN, after all its data: pass the half-close on. */
                p->wr_shut = 1;
                sock_shut_wr(p, fd);
            }
            break;
        }
        int rc;
        if (sent) {
            p->last_active_ms = cn_time_mono_ms();
            rc = cn_mux_consume(p->mux, p->id, sent);
            if (rc < 0) { /* credit not returned: the peer would stall */
                p->err = rc;
                ret = -1;
                break;
            }
        }
        if (r > 0)
            continue;
        ret = r;
        break;
    }
    if (!p->stream_done)
        cn_link_flush(p->link); /* credit went back to the peer */
    return ret;
}

/* Agent: the target cannot be used (refused, TLS failed): the stream is
 * refused and the socket closed. -1 for the lws callback. */
static int dial_refuse(cn_pipe_t *p, int err, const char *why)
{
    p->err = err;
    cn_mux_reject(p->mux, p->id, CN_RST_UNREACHABLE, why);
    p->stream_done = 1;
    cn_link_flush(p->link);
    return -1;
}

static int stream_accept(cn_pipe_t *p);

/* Agent, https target: one step of the TLS handshake; the stream is
 * accepted once it verified the target. 0 to go on, -1 when refused. */
static int tls_step(cn_pipe_t *p)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(p->ssl);
    if (rc == 1) {
        p->tls_hs = 0;
        set_rx(p, 0);
        cn_log_debug("pipe %u: TLS to the target (%s)", p->id, SSL_get_version(p->ssl));
        return stream_accept(p);
    }
    int e = SSL_get_error(p->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        set_rx(p, 1);
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        want_write(p);
        return 0;
    }
    long v = SSL_get_verify_result(p->ssl);
    unsigned long why = ERR_get_error();
    ERR_clear_error();
    cn_log_warn("pipe %u: TLS to the target %s failed: %s", p->id,
                p->tls_name ? p->tls_name : "(not verified)",
                v != X509_V_OK ? X509_verify_cert_error_string(v)
                : why          ? ERR_reason_error_string(why)
                               : "the connection closed");
    return dial_refuse(p, CN_EAUTH, "target TLS handshake failed");
}

/* Agent, https target: a TLS session on the connected socket, verifying
 * the target's name (an IP literal: its address). */
static int tls_begin(cn_pipe_t *p)
{
    struct in6_addr a6;
    struct in_addr a4;
    p->ssl = SSL_new(p->ssl_ctx);
    if (!p->ssl || SSL_set_fd(p->ssl, lws_get_socket_fd(p->wsi)) != 1)
        return dial_refuse(p, CN_ENOMEM, "out of memory");
    SSL_set_connect_state(p->ssl);
    if (p->tls_name) {
        bool ip =
            inet_pton(AF_INET, p->tls_name, &a4) == 1 || inet_pton(AF_INET6, p->tls_name, &a6) == 1;
        X509_VERIFY_PARAM *vp = SSL_get0_param(p->ssl);
        if ((ip && X509_VERIFY_PARAM_set1_ip_asc(vp, p->tls_name) != 1) ||
            (!ip && (SSL_set1_host(p->ssl, p->tls_name) != 1 ||
                     SSL_set_tlsext_host_name(p->ssl, p->tls_name) != 1)))
            return dial_refuse(p, CN_EINVAL, "bad TLS name for the target");
    }
    p->tls_hs = 1;
    return tls_step(p);
}

/* Agent: the non-blocking connect() finished one way or the other. */
static int dial_finished(cn_pipe_t *p)
{
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    p->dialing = 0;
    if (getsockopt(lws_get_socket_fd(p->wsi), SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr)
        return dial_refuse(p, CN_EREFUSED, "target refused the connection");
    if (p->ssl_ctx)
        return tls_begin(p);
    return stream_accept(p);
}

/* Agent: the target is connected (and verified): bytes may flow. */
static int stream_accept(cn_pipe_t *p)
{
    if (cn_mux_accept(p->mux, p->id, p) < 0) {
        p->stream_done = 1;
        p->err = CN_ECLOSED;
        return -1;
    }
    p->attached = 1;
    idle_start(p);
    /* A reach stream reads its socket only once the handshake is done. */
    set_rx(p, !p->e2e);
    cn_link_flush(p->link);
    return 0;
}

static int pipe_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    cn_pipe_t *p = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        /* A resolver thread woke the loop (and, broadcast, other things). */
        cn_resolve_dispatch(lws_get_context(wsi));
        return 0;
    case LWS_CALLBACK_RAW_RX_FILE:
        if (!p)
            return -1;
        if (p->tls_hs)
            return tls_step(p);
        return pipe_read(p);
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        if (!p)
            return -1;
        if (p->dialing && dial_finished(p) < 0)
            return -1;
        if (p->tls_hs)
            return tls_step(p);
        return pipe_write(p);
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (!p)
            return 0;
        lws_set_opaque_user_data(wsi, NULL);
        lws_sul_cancel(&p->sul_write);
        lws_sul_cancel(&p->sul_open);
        lws_sul_cancel(&p->sul_idle);
        p->wsi = NULL;
        if (!p->stream_done && p->attached && p->wr_shut && !p->rd_eof && !p->err) {
            /* POLLHUP while we were not reading (no stream credit): both
             * sides have shut down, so everything the peer sent is already in
             * our receive buffer, and lws (raw-file role) closes on a HUP
             * without POLLIN. Keep a copy of the descriptor and drain it as
             * credit comes back; no polling is needed any more. */
            int fd = dup(lws_get_socket_fd(wsi));
            cn_log_debug("pipe %u: hang-up while paused, draining the socket", p->id);
            if (fd >= 0 && (!p->ssl || SSL_set_fd(p->ssl, fd) == 1)) {
                p->drain_fd = fd;
                if (pipe_read(p) < 0)
                    drain_fail(p);
                return 0;
            }
        }
        p->sock_done = 1;
        if (!p->stream_done && p->rd_eof && p->wr_shut && !p->err) {
            /* Both directions ended cleanly on the socket; what is still
             * queued (data, FIN) goes to the peer and the stream finishes on
             * its own. Its closed event frees the pipe. */
            return 0;
        }
        if (!p->stream_done) {
            /* The socket died first: abort the stream. Its closed event
             * frees the pipe, so p is not touched after this. */
            if (!p->err)
                p->err = CN_EIO;
            if (p->dialing || p->tls_hs) {
                p->stream_done = 1;
                cn_mux_reject(p->mux, p->id, CN_RST_UNREACHABLE, "target connection failed");
                cn_link_flush(p->link);
                maybe_free(p);
            } else {
                cn_link_t *link = p->link;
                cn_mux_reset(p->mux, p->id, CN_RST_CANCEL, "connection closed");
                cn_link_flush(link);
            }
            return 0;
        }
        maybe_free(p);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols pipe_protocol = {
    .name = PIPE_PROTOCOL,
    .callback = pipe_callback,
};

const struct lws_protocols *cn_pipe_protocol(void)
{
    return &pipe_protocol;
}

/* ---- stream events ----------------------------------------------------- */

static void op_accepted(void *self)
{
    cn_pipe_t *p = self;
    lws_sul_cancel(&p->sul_open);
    p->attached = 1;
    idle_start(p);
    if (!p->e2e) {
        set_rx(p, 1);
        return;
    }
    /* Reach: the first handshake message; the socket waits for the last. */
    int rc = cn_e2e_start(p->e2e);
    if (rc) {
        e2e_fail(p, rc);
        return;
    }
    e2e_flush(p);
}

static void op_readable(void *self)
{
    cn_pipe_t *p = self;
    if (!p->wsi || p->sock_done)
        return;
    if (!p->attached)
        return;
    /* Write in this loop turn: waiting for a POLLOUT round would add a poll()
     * per hop to every request. When the loop owner flushes turns, at its
     * end, so that all the frames one link read brought go in one send;
     * else at once. pipe_write() asks for POLLOUT itself when the socket is
     * full; a failed socket is closed through lws. */
    if (cn_link_flushes_after_turn(p->link)) {
        if (!p->turn_queued) {
            p->turn_queued = 1;
            p->turn_next = turn_head;
            turn_head = p;
        }
        return;
    }
    if (pipe_write(p) < 0)
        lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void cn_pipe_flush_turn(void)
{
    while (turn_head) {
        cn_pipe_t *p = turn_head;
        turn_head = p->turn_next;
        p->turn_queued = 0;
        p->turn_next = NULL;
        if (p->wsi && !p->sock_done && p->attached && pipe_write(p) < 0)
            lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    cn_link_flush_turn(); /* the credit and replies the writes queued */
}

static void op_writable(void *self)
{
    cn_pipe_t *p = self;
    if (p->e2e && !e2e_flush(p))
        return; /* a record still waits for credit: reading stays off */
    if (p->e2e && !cn_e2e_ready(p->e2e))
        return;
    if (p->drain_fd >= 0) {
        if (pipe_read(p) < 0)
            drain_fail(p);
        return;
    }
    if (!p->rd_eof && p->attached)
        set_rx(p, 1);
}

static void op_reset(void *self, uint32_t code, const char *msg, size_t len)
{
    cn_pipe_t *p = self;
    p->aborted = 1;
    if (!p->reset_code)
        p->reset_code = code ? code : CN_RST_CANCEL;
    if (!p->err)
        p->err = p->attached ? CN_ECLOSED : CN_EREFUSED;
}

static void op_closed(void *self)
{
    cn_pipe_t *p = self;
    lws_sul_cancel(&p->sul_open);
    p->stream_done = 1;
    if (p->drain_fd >= 0) {
        if (p->aborted)
            sock_linger0(p->drain_fd);
        drain_done(p);
    }
    if (!p->sock_done) {
        close_socket(p);
        return; /* freed when lws reports the socket closed */
    }
    maybe_free(p);
}

static const cn_stream_ops_t pipe_ops = {
    .accepted = op_accepted,
    .readable = op_readable,
    .writable = op_writable,
    .reset = op_reset,
    .closed = op_closed,
};

/* ---- stream dispatch --------------------------------------------------- */

#define OPS(user) (*(const cn_stream_ops_t *const *)(user))

static void d_accepted(void *ctx, uint32_t id, void *user)
{
    if (user && OPS(user)->accepted)
        OPS(user)->accepted(user);
}

static void d_readable(void *ctx, uint32_t id, void *user)
{
    if (user && OPS(user)->readable)
        OPS(user)->readable(user);
}

static void d_writable(void *ctx, uint32_t id, void *user)
{
    if (user && OPS(user)->writable)
        OPS(user)->writable(user);
}

static void d_reset(void *ctx, uint32_t id, void *user, uint32_t code, const char *msg, size_t len)
{
    if (user && OPS(user)->reset)
        OPS(user)->reset(user, code, msg, len);
}

static void d_closed(void *ctx, uint32_t id, void *user)
{
    if (user && OPS(user)->closed)
        OPS(user)->closed(user);
}

static void d_datagram(void *ctx, uint32_t id, void *user, const uint8_t *data, size_t len)
{
    if (user && OPS(user)->datagram)
        OPS(user)->datagram(user, data, len);
}

void cn_stream_dispatch_callbacks(cn_mux_callbacks_t *cb)
{
    cb->on_accepted = d_accepted;
    cb->on_readable = d_readable;
    cb->on_writable = d_writable;
    cb->on_reset = d_reset;
    cb->on_closed = d_closed;
    cb->on_datagram = d_datagram;
}

/* ---- construction ------------------------------------------------------ */

static cn_pipe_t *pipe_new(cn_link_t *link, const cn_pipe_config_t *cfg)
{
    cn_pipe_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    if (cfg && cfg->e2e) {
        char why[128];
        p->e2e = cn_e2e_new(cfg->e2e, why, sizeof(why));
        if (!p->e2e) {
            cn_log_warn("pipe: %s", why);
            free(p);
            return NULL;
        }
    }
    p->ops = &pipe_ops;
    p->link = link;
    p->mux = cn_link_mux(link);
    if (cfg)
        p->cfg = *cfg;
    p->cfg.e2e = NULL;         /* borrowed for the call only; the layer holds copies */
    p->cfg.tls_ca_file = NULL; /* likewise: read by tls_config() during the call */
    p->cfg.tls_name = NULL;
    p->rx_on = 1; /* lws starts with POLLIN on */
    p->drain_fd = -1;
    return p;
}

static struct lws *adopt(struct lws_vhost *vh, int fd, cn_pipe_t *p)
{
    lws_sock_file_fd_type u;
    u.filefd = fd;
    struct lws *wsi =
        lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, u, PIPE_PROTOCOL, NULL);
    if (!wsi)
        return NULL;
    lws_set_opaque_user_data(wsi, p);
    p->wsi = wsi;
    return wsi;
}

void cn_sock_reset(int fd)
{
    sock_linger0(fd);
    close(fd);
}

int cn_sock_tune(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return CN_EIO;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return CN_EIO;
    cn_sock_nodelay(fd);
    return 0;
}

void cn_sock_nodelay(int fd)
{
    int one = 1;
    /* Not an error on non-TCP sockets (Unix sockets in tests). */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Hub: the agent neither accepted nor refused our OPEN in time (frozen,
 * overloaded, or its link is dying): refuse the client with RST now rather
 * than let it hang until pings declare the link dead. The stream is reset
 * so the agent, if it wakes up, drops it too. */
static void open_timeout(lws_sorted_usec_list_t *sul)
{
    cn_pipe_t *p = lws_container_of(sul, cn_pipe_t, sul_open);
    if (p->attached || p->stream_done || p->sock_done)
        return;
    cn_log_warn("pipe %u: no answer from the agent within %u ms, connection refused", p->id,
                p->cfg.open_timeout_ms);
    p->err = CN_ETIMEOUT;
    p->aborted = 1;
    cn_link_t *link = p->link;
    cn_mux_reset(p->mux, p->id, CN_RST_CANCEL, "no answer to open");
    close_socket(p); /* now: the link may be too congested to deliver the close event soon */
    cn_link_flush(link);
}

cn_pipe_t *cn_pipe_open(struct lws_vhost *vh, int fd, cn_link_t *link, uint8_t kind,
                        const uint8_t *ref, size_t ref_len, const uint8_t *meta, size_t meta_len,
                        const cn_pipe_config_t *cfg, int *err)
{
    int rc = CN_EINVAL;
    cn_pipe_t *p = NULL;
    if (!vh || fd < 0 || !link || !cn_link_is_established(link))
        goto fail;
    rc = CN_ENOMEM;
    p = pipe_new(link, cfg);
    if (!p)
        goto fail;
    if (cn_sock_tune(fd) < 0) {
        rc = CN_EIO;
        goto fail;
    }
    rc = cn_mux_open(p->mux, kind, ref, ref_len, meta, meta_len, p, &p->id);
    if (rc < 0)
        goto fail;
    if (!adopt(vh, fd, p)) {
        /* The stream exists: reset it; its closed event frees p. */
        p->sock_done = 1;
        p->cfg.done = NULL;
        cn_mux_reset(p->mux, p->id, CN_RST_INTERNAL, "socket adoption failed");
        close(fd);
        if (err)
            *err = CN_ENOMEM;
        return NULL;
    }
    /* Nothing is read until the agent accepts: its window is unknown. */
    set_rx(p, 0);
    if (!p->cfg.open_timeout_ms)
        p->cfg.open_timeout_ms = CN_PIPE_OPEN_TIMEOUT_MS;
    lws_sul_schedule(lws_get_context(p->wsi), 0, &p->sul_open, open_timeout,
                     (lws_usec_t)p->cfg.open_timeout_ms * LWS_US_PER_MS);
    cn_link_flush(link);
    return p;
fail:
    if (p)
        cn_e2e_free(p->e2e);
    free(p);
    close(fd);
    if (err)
        *err = rc;
    return NULL;
}

/* Agent: connects to the first address that takes a non-blocking
 * connect(); the socket or a negative CN_E*. */
static int connect_any(const struct addrinfo *res)
{
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        cn_sock_nodelay(fd);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
            return fd;
        close(fd);
    }
    return CN_EREFUSED;
}

/* Agent: the stream cannot be dialled (no address, no socket): refused,
 * and the pipe (which never had a socket) finishes at once. */
static void dial_failed(cn_pipe_t *p, int err, const char *why)
{
    p->dialing = 0;
    p->err = err;
    p->stream_done = 1;
    p->sock_done = 1;
    cn_mux_reject(p->mux, p->id, CN_RST_UNREACHABLE, why);
    cn_link_flush(p->link);
    maybe_free(p);
}

/* Agent: a socket is connecting; lws polls it from here. */
static int dial_started(struct lws_vhost *vh, cn_pipe_t *p, int fd)
{
    if (!adopt(vh, fd, p)) {
        close(fd);
        return CN_ENOMEM;
    }
    set_rx(p, 0);
    lws_callback_on_writable(p->wsi); /* POLLOUT = connect() finished */
    return 0;
}

/* Agent: the resolver thread answered (on the loop thread). */
static void dial_resolved(void *arg, int err, struct addrinfo *res)
{
    cn_pipe_t *p = arg;
    p->resolving = NULL;
    int fd = err ? err : connect_any(res);
    if (res)
        freeaddrinfo(res);
    if (fd < 0) {
        dial_failed(p, CN_EREFUSED,
                    err ? "target name does not resolve" : "target refused the connection");
        return;
    }
    int rc = dial_started(p->vh, p, fd);
    if (rc < 0)
        dial_failed(p, rc, "out of memory");
}

/* The TLS client configuration of an https target: TLS 1.2 or later, the
 * chain verified (system store, or only the given CA file) unless told
 * not to, the name to check. 0, or CN_EINVAL (logged) for an unreadable
 * CA file, CN_ENOMEM. */
static int tls_config(cn_pipe_t *p, const cn_pipe_config_t *cfg, const char *host)
{
    p->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!p->ssl_ctx || !SSL_CTX_set_min_proto_version(p->ssl_ctx, TLS1_2_VERSION))
        return CN_ENOMEM;
    SSL_CTX_set_mode(p->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                     SSL_MODE_RELEASE_BUFFERS);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* A target that closes without close_notify ends its response: the
     * edge frames HTTP responses itself, as it does for plain targets. */
    SSL_CTX_set_options(p->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    if (cfg->tls_insecure) {
        SSL_CTX_set_verify(p->ssl_ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    SSL_CTX_set_verify(p->ssl_ctx, SSL_VERIFY_PEER, NULL);
    int ok = cfg->tls_ca_file && *cfg->tls_ca_file
                 ? SSL_CTX_load_verify_locations(p->ssl_ctx, cfg->tls_ca_file, NULL)
                 : SSL_CTX_set_default_verify_paths(p->ssl_ctx);
    if (ok != 1) {
        ERR_clear_error();
        cn_log_warn("pipe: cannot load the target's CA file %s", cfg->tls_ca_file);
        return CN_EINVAL;
    }
    const char *name = cfg->tls_name && *cfg->tls_name ? cfg->tls_name : host;
    /* Allocated: a char[256] in every pipe cost 256 bytes per connection
     * on the hub and the agent for the few that speak TLS to the target. */
    if (*name && !(p->tls_name = strdup(name)))
        return CN_ENOMEM;
    return 0;
}

cn_pipe_t *cn_pipe_dial(struct lws_vhost *vh, cn_link_t *link, uint32_t id, const char *host,
                        int port, const cn_pipe_config_t *cfg, int *err)
{
    int rc = CN_EINVAL;
    cn_pipe_t *p = NULL;
    struct addrinfo hints, *res = NULL;
    uint8_t probe[16];
    if (!vh || !link || !host || port <= 0 || port > 65535)
        goto fail;
    rc = CN_ENOMEM;
    p = pipe_new(link, cfg);
    if (!p)
        goto fail;
    if (cfg && cfg->tls) {
        rc = tls_config(p, cfg, host);
        if (rc < 0)
            goto fail;
    }
    p->id = id;
    p->vh = vh;
    p->dialing = 1;
    if (inet_pton(AF_INET, host, probe) != 1 && inet_pton(AF_INET6, host, probe) != 1) {
        /* A name: resolved off the loop (cn_resolve.h); the stream stays
         * pending meanwhile, and the hub's open deadline bounds the wait. */
        p->resolving = cn_resolve_start(cn_link_context(link), host, port, dial_resolved, p, &rc);
        if (!p->resolving)
            goto fail;
        return p;
    }
    /* An address literal: getaddrinfo() does not block. */
    char portstr[8];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = CN_EREFUSED;
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res)
        goto fail;
    int fd = connect_any(res);
    freeaddrinfo(res);
    if (fd < 0)
        goto fail;
    rc = dial_started(vh, p, fd);
    if (rc < 0)
        goto fail;
    return p;
fail:
    if (p) {
        cn_e2e_free(p->e2e);
        SSL_CTX_free(p->ssl_ctx);
        free(p->tls_name);
    }
    free(p);
    if (err)
        *err = rc;
    return NULL;
}

void cn_pipe_abort(cn_pipe_t *p, uint32_t code)
{
    if (!p)
        return;
    if (!p->err)
        p->err = CN_ECLOSED;
    p->aborted = 1;
    if (p->stream_done) {
        close_socket(p);
        return;
    }
    if (p->resolving) {
        /* The name's answer no longer matters: it will never arrive here. */
        cn_resolve_cancel(p->resolving);
        p->resolving = NULL;
        dial_failed(p, p->err, "aborted");
        return;
    }
    if (p->dialing) {
        /* The connect() result no longer matters: a writeable callback
         * before lws closes the socket must not accept the stream. */
        p->dialing = 0;
        p->stream_done = 1;
        cn_mux_reject(p->mux, p->id, code, "aborted");
        cn_link_flush(p->link);
        close_socket(p);
        return;
    }
    /* op_closed closes the socket, or frees p when the socket is gone. */
    cn_link_t *link = p->link;
    cn_mux_reset(p->mux, p->id, code, "aborted");
    cn_link_flush(link);
}

uint64_t cn_pipe_bytes_up(const cn_pipe_t *p)
{
    return p->up;
}

uint64_t cn_pipe_bytes_down(const cn_pipe_t *p)
{
    return p->down;
}

uint32_t cn_pipe_reset_code(const cn_pipe_t *p)
{
    return p->reset_code;
}

int cn_sock_bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return CN_EIO;
    /* getsockname() filled ss; the analyser does not model it. */
    /* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
    return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int cn_sock_listen(const char *host, int port, int backlog, int *bound_port)
{
    struct addrinfo hints, *res = NULL;
    char portstr[8];
    int fd = -1, one = 1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (port < 0 || port > 65535 || getaddrinfo(host, portstr, &hints, &res) != 0 || !res)
        return CN_EINVAL;
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Exactly the address asked for: "::" or "::1" must not also take IPv4. */
    if (res->ai_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, backlog) < 0)
        goto fail;
    /* Linux gives every accepted socket the listener's TCP_NODELAY (the new
     * socket is a copy of it): set here once, it saves an accepting server
     * a setsockopt() per connection. */
    cn_sock_nodelay(fd);
    if (bound_port) {
        *bound_port = cn_sock_bound_port(fd);
        if (*bound_port < 0)
            goto fail;
    }
    freeaddrinfo(res);
    return fd;
fail:
    freeaddrinfo(res);
    if (fd >= 0) {
        int e = errno; /* for the caller's message */
        close(fd);
        errno = e;
    }
    return CN_EIO;
}
