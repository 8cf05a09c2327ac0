/* The public HTTP edge (docs/http-edge.md): one listening socket; each
 * client connection is read by the hub (raw socket, our sans-IO HTTP/1.1
 * parser in http1.c), routed by Host (NAME.DOMAIN for a public HTTP
 * tunnel, share-TOKEN.DOMAIN for a share), checked (tunnel status, basic
 * auth, the share's policy) on every request, and each request goes on a
 * mux stream to the exposing agent, which dials the target as for TCP.
 *
 * Request boundaries: the hub parses every request head and frames its
 * body (Content-Length or chunked), so requests on a keep-alive connection,
 * pipelined ones included, are routed and checked one by one; it frames
 * each response with the same parser, so it knows where a response ends
 * without the target closing.
 *
 * Upstream keep-alive (docs/http-edge.md): toward the target requests are
 * HTTP/1.1 keep-alive, and a stream whose exchange ended cleanly (framed
 * response, no Connection: close, request sent whole, nothing left over)
 * waits idle in a pool per tunnel and agent link (edge_pool_t, LIFO,
 * bounded by --http-pool and --http-pool-idle) for the next request of the
 * tunnel from any client: no OPEN round trip, no new target connection
 * (that set-up and teardown was most of the CPU before). The agent stays a
 * byte pipe. Only requests that are safe to send twice and carry no body
 * take a pooled stream, so the pool's race (the target closing an idle
 * connection as a request goes out) is met by sending such a request once
 * more on a new stream (retry_fresh). Tunnel changes, pause, delete and the
 * link's end drop the pool. With --http-pool 0 every request carries
 * "Connection: close" and gets its own stream.
 *
 * Bodies stream both ways through the stream's window: the hub reads from
 * a socket only while the stream has credit and gives credit back only as
 * fast as the client takes the bytes, so a slow client never grows a
 * buffer. A 101 answer to an Upgrade request turns the connection into a
 * byte pipe (WebSockets).
 *
 * TLS (serve --tls-cert/--tls-key): a second listening socket, the HTTPS
 * port, whose connections run OpenSSL directly on the non-blocking socket
 * (conn_recv/conn_send are the only places bytes meet the socket, so the
 * rest of the edge does not know). Decrypted bytes OpenSSL still holds make
 * no POLLIN, so whenever reading is (re)enabled with such bytes pending, a
 * zero-delay timer reads them. */
#include "runtime_internal.h"

#include "accept.h"

#include <assert.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "cn_buf.h"
#include "cn_err.h"
#include "cn_frame.h"
#include "cn_log.h"
#include "cn_pipe.h"
#include "cn_time.h"
#include "events.h"
#include "http.h"
#include "http1.h"
#include "inspect.h"
#include "metrics.h"
#include "router.h"
#include "share_cache.h"
#include "share_policy.h"
#include "shares.h"

#define LISTEN_PROTOCOL "hub-http-listen"
#define CONN_PROTOCOL "hub-http-conn"
#define SINK_PROTOCOL "hub-http-replay-sink"
#define ACCEPTS_PER_EVENT 64
#define LISTEN_BACKLOG 4096
#define IN_MAX (HUB_H1_HEAD_MAX + 16384) /* a head plus what came with it */
#define OUT_MAX (HUB_H1_HEAD_MAX + 8192) /* generated heads and error pages */
#define HEAD_TIMEOUT_MS 10000            /* a client has this long to send a head */
#define IDLE_TIMEOUT_MS 60000            /* keep-alive idle */
#define LINGER_MS 10000                  /* a finished stream still open is reset */
#define TICK_MS 1000
#define WINDOWS_PRUNE_AT 1024
#define WINDOW_BUCKETS 1024 /* a power of two */
/* Requests one pooled stream carries before it is closed (nginx's
 * keepalive_requests default): a target's per-connection state, leaks
 * included, does not live for ever. */
#define POOL_MAX_REQUESTS 1000
/* Idle streams on one agent link, all its tunnels together: a quarter of
 * the streams a link may have open (CN_MUX_DEFAULT_MAX_STREAMS), so that
 * idle ones never starve the link of streams for requests. */
#define POOL_LINK_MAX (CN_MUX_DEFAULT_MAX_STREAMS / 4)
/* Requests that may be sent twice (RFC 9110 9.2.2): only these take a
 * pooled stream, so the one retry after the pool's race never repeats a
 * POST or PATCH. */
#define POOL_METHODS (HUB_GET | HUB_HEAD | HUB_PUT | HUB_DELETE | HUB_OPTIONS)
/* Buckets of the pools' two indexes, by tunnel and link and by link: every
 * request looks its pool up and every stream put back counts its link's
 * idle streams (walking every pool took 9% of the hub's CPU with 250
 * tunnels' pools on a link). A power of two. */
#define POOL_BUCKETS 1024

enum conn_state {
    C_HEAD = 0, /* reading a request head */
    C_BODY,     /* streaming a request body to the stream */
    C_WAIT,     /* request sent; waiting for the response to finish */
    C_TUNNEL,   /* upgraded: bytes both ways */
    C_CLOSING,  /* close once `out` is flushed */
};

enum resp_state {
    R_HEAD = 0,
    R_BODY,
    R_TUNNEL,
    R_DONE,
};

typedef struct edge_conn edge_conn_t;
struct edge_pool;

/* One request's stream. Owned by itself: freed when the stream is
 * finished and no connection points at it. */
typedef struct edge_req {
    const cn_stream_ops_t *ops; /* first: stream dispatch */
    edge_conn_t *conn;          /* NULL once detached */
    hub_runtime_t *rt;
    cn_link_t *link;
    cn_mux_t *mux;
    uint32_t id;
    bool opened, accepted, stream_done;
    uint32_t reset_code;
    cn_buf_t pending; /* the rewritten head, until the stream takes it */
    hub_h1_body_t reqbody;
    bool upgrade, head_request;
    enum resp_state rstate;
    cn_buf_t rhead; /* the response head as it arrives */
    hub_h1_body_t rbody;
    bool sent_any;                 /* response bytes went to the client */
    lws_sorted_usec_list_t timer;  /* 504 while waiting; linger once detached */
    char tunnel_id[HUB_ID_SIZE];   /* for the per-tunnel byte counts of /metrics */
    uint64_t bytes_up, bytes_down; /* into the stream (request), out of it (response) */
    /* The upstream keep-alive pool: a stream whose exchange ended cleanly
     * waits idle in its tunnel's pool for the next request. */
    char agent_id[HUB_ID_SIZE];
    int64_t version;                /* the tunnel's updated_at when the request was routed */
    struct edge_pool *pool;         /* non-NULL while idle in a pool */
    struct edge_req *pnext, *pprev; /* the pool's list, newest first */
    lws_usec_t pooled_at;           /* when it went idle (lws_now_usecs) */
    unsigned nreq;                  /* requests this stream carried */
    bool from_pool;                 /* this request went out on a pooled stream */
    bool resp_keep;                 /* the response lets the connection be reused */
    cn_buf_t resend;                /* from_pool: the head, to send it again once */
} edge_req_t;

/* The idle streams of one tunnel on one agent link (a share and its
 * tunnel reach the same target, so they share it). */
typedef struct edge_pool {
    struct edge_pool *next, *prev; /* all pools */
    struct edge_pool *hnext;       /* the index bucket's chain */
    struct edge_link_pools *lp;    /* its link's count */
    hub_runtime_t *rt;
    /* Due when the longest idle stream (the bottom) has been idle for
     * --http-pool-idle: one timer a pool, not one a stream, so putting a
     * stream back inserts nothing into lws's sorted timer list (that
     * insertion walks the list: 8.7% of the hub's CPU with 300 pooled). */
    lws_sorted_usec_list_t idle;
    char tunnel_id[HUB_ID_SIZE];
    char agent_id[HUB_ID_SIZE];
    cn_link_t *link;
    int64_t version;          /* the tunnel's updated_at: a PATCH makes a new pool */
    edge_req_t *top, *bottom; /* newest first; taken from the top (LIFO) */
    size_t n;
} edge_pool_t;

/* The idle streams in all pools of one agent link (POOL_LINK_MAX); lives
 * while the link has a pool. */
typedef struct edge_link_pools {
    struct edge_link_pools *hnext;
    const cn_link_t *link;
    size_t n;      /* idle streams */
    size_t npools; /* pools pointing here */
} edge_link_pools_t;

/* What the access log needs about the request being answered. */
typedef struct req_info {
    char share_id[HUB_ID_SIZE]; /* "" when not a share */
    char share_ws[HUB_ID_SIZE]; /* its workspace */
    char method[24];
    char path[HUB_SHARE_LOG_PATH_MAX + 1];
    int64_t started;
    int status;
} req_info_t;

struct edge_conn {
    edge_conn_t *next;
    hub_runtime_t *rt;
    struct lws *wsi;
    char client[64];    /* "IP:PORT" */
    char client_ip[48]; /* "IP" */
    enum conn_state state;
    bool rx_on, close_after, json_errors;
    bool in_input; /* process_input() is on the stack: it takes the next head */
    bool sent_any; /* bytes went to the client: their ACKs may be on the way */
    bool corked;   /* TCP_CORK set for the last response (conn_send) */
    cn_buf_t in, out;
    edge_req_t *req;
    req_info_t info;
    /* The share of the connection's last request, kept between requests,
     * so that revoking it closes idle keep-alive connections as well. */
    char share_id[HUB_ID_SIZE], share_ws[HUB_ID_SIZE];
    hub_inspect_rec_t *rec;     /* the request being recorded (inspect.h) */
    struct edge_replay *replay; /* owned; set on a replay's connection */
    lws_sorted_usec_list_t sul_write;
    lws_dll2_t deadline;    /* in a deadline queue while armed */
    lws_usec_t due;         /* when, by lws_now_usecs() */
    SSL *ssl;               /* NULL on the plain HTTP port */
    bool ssl_read_on_write; /* a TLS read waits for the socket to take bytes */
    lws_sorted_usec_list_t sul_read;
};

/* What a replay's connection routes to, instead of its Host header. */
typedef struct edge_replay {
    char workspace_id[HUB_ID_SIZE];
    char tunnel_id[HUB_ID_SIZE];
    char share_id[HUB_ID_SIZE];
    uint64_t of, id;
} edge_replay_t;

/* A share's per-minute window, kept in memory by share id, in a hash table
 * (a list walked per request cost O(shares in use) on every share request). */
typedef struct share_window {
    struct share_window *next;
    char share_id[HUB_ID_SIZE];
    hub_share_window_t w;
} share_window_t;

/* The connections whose deadline has one length, in arming order, which
 * is deadline order, and one timer for the first: arming one is O(1). A
 * timer per connection was an insertion into lws's sorted timer list, a
 * walk past every timer due earlier (every other connection's), on every
 * new connection and every request. */
typedef struct deadline_queue {
    lws_dll2_owner_t conns;
    lws_sorted_usec_list_t sul;
    lws_usec_t len_us;
    hub_runtime_t *rt;
} deadline_queue_t;

enum { DEADLINE_HEAD, DEADLINE_IDLE, DEADLINE_QUEUES };

struct hub_edge_http {
    hub_runtime_t *rt;
    deadline_queue_t deadlines[DEADLINE_QUEUES];
    struct lws *listen_wsi;
    int port;
    struct lws *tls_listen_wsi; /* the HTTPS port, when the hub has a certificate */
    int tls_port;
    SSL_CTX *ssl_ctx;
    edge_conn_t *conns;
    share_window_t *windows[WINDOW_BUCKETS];
    size_t nwindows;
    size_t windows_prune_at; /* prune ended windows when nwindows reaches it */
    lws_sorted_usec_list_t tick;
    int64_t last_prune;
    edge_pool_t *pools;
    size_t npooled;                                    /* idle streams in all pools */
    edge_pool_t *pool_index[POOL_BUCKETS];             /* by tunnel and link */
    edge_link_pools_t *link_pools_index[POOL_BUCKETS]; /* by link */
};

static int64_t now_ms(const hub_runtime_t *rt)
{
    return hub_store_now(rt->cfg.store);
}

/* ---- small helpers ------------------------------------------------------ */

/* A hash of one of the hub's ids (a UUID: its own, not a client's
 * choice), from `seed`: 8 bytes at a time, where a byte-at-a-time FNV-1a
 * over the 36 characters showed in the share path's profile (two per
 * share request: its rate window and the tunnel's pool). */
static uint32_t id_hash(const char *id, uint32_t seed)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ seed;
    size_t n = strnlen(id, HUB_ID_LEN + 1);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, id + i, sizeof(w));
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ (uint8_t)id[i]) * 0x100000001b3ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

static uint32_t ptr_hash(const void *ptr)
{
    uint64_t x = (uint64_t)(uintptr_t)ptr * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(x >> 32);
}

static void conn_want_write_cb(lws_sorted_usec_list_t *sul)
{
    edge_conn_t *c = lws_container_of(sul, edge_conn_t, sul_write);
    if (c->wsi)
        lws_callback_on_writable(c->wsi);
}

/* The raw-file role clears POLLOUT after a writeable callback returns, so
 * a request made inside it is made again from a zero-delay timer. */
static void want_write(edge_conn_t *c)
{
    if (c->wsi)
        lws_sul_schedule(lws_get_context(c->wsi), 0, &c->sul_write, conn_want_write_cb, 1);
}

static void conn_read(edge_conn_t *c);

static void conn_read_cb(lws_sorted_usec_list_t *sul)
{
    edge_conn_t *c = lws_container_of(sul, edge_conn_t, sul_read);
    if (c->wsi && c->rx_on)
        conn_read(c);
}

static void set_rx(edge_conn_t *c, bool on)
{
    /* Bytes OpenSSL already holds make no POLLIN: read them from a timer. */
    if (on && c->wsi && c->ssl && SSL_has_pending(c->ssl))
        lws_sul_schedule(lws_get_context(c->wsi), 0, &c->sul_read, conn_read_cb, 1);
    if (c->rx_on == on || !c->wsi)
        return;
    c->rx_on = on;
    lws_rx_flow_control(c->wsi, on);
}

static void conn_kill(edge_conn_t *c)
{
    if (c->wsi)
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* The last response of a connection is written whole: the FIN goes out
 * now, right behind it, and the socket is closed on a later turn. The
 * server that answered "Connection: close" closes first, as nginx does,
 * so the TIME_WAIT state stays on the edge, not on the client, whose
 * next connect() would otherwise search a port range crowded with them
 * (measured: 12,700 client-side TIME_WAIT sockets under wrk, and the
 * edge's cost per new connection 33-42 us against nginx's 26-29). */
static void conn_finish(edge_conn_t *c)
{
    if (!c->wsi)
        return;
    if (c->ssl)
        SSL_shutdown(c->ssl); /* close_notify; a client that waits for it is not waited for */
    int fd = lws_get_socket_fd(c->wsi);
    if (fd >= 0)
        shutdown(fd, SHUT_WR);
    conn_kill(c);
}

/* Closes the connections of the queue whose deadline passed waiting for
 * a head, and sets the timer for the next. */
static void deadline_cb(lws_sorted_usec_list_t *sul)
{
    deadline_queue_t *q = lws_container_of(sul, deadline_queue_t, sul);
    lws_usec_t now = lws_now_usecs();
    while (q->conns.head) {
        edge_conn_t *c = lws_container_of(q->conns.head, edge_conn_t, deadline);
        if (c->due > now) {
            lws_sul_schedule(q->rt->ctx, 0, &q->sul, deadline_cb, c->due - now);
            return;
        }
        lws_dll2_remove(&c->deadline);
        if (c->state == C_HEAD && !c->req) {
            cn_log_debug("http %s: idle or slow head, closing", c->client);
            conn_kill(c);
        }
    }
}

static void cancel_deadline(edge_conn_t *c)
{
    lws_dll2_remove(&c->deadline); /* the queue's timer finds it gone */
}

/* which: DEADLINE_HEAD or DEADLINE_IDLE, from now. */
static void arm_deadline(edge_conn_t *c, int which)
{
    if (!c->wsi)
        return;
    deadline_queue_t *q = &c->rt->edge->deadlines[which];
    cancel_deadline(c);
    c->due = lws_now_usecs() + q->len_us;
    lws_dll2_add_tail(&c->deadline, &q->conns);
    /* A queue with connections has its timer set, at or before its first
     * one's deadline (deadline_cb sets the next; a removal leaves it). */
    if (q->conns.count == 1)
        lws_sul_schedule(q->rt->ctx, 0, &q->sul, deadline_cb, q->len_us);
}

/* recv(2) and send(2) of the client socket, through TLS on the HTTPS
 * port, with their return and errno conventions (EAGAIN: try again on the
 * next POLLIN or writeable callback; 0 from conn_recv: the client ended). */
static ssize_t tls_result(edge_conn_t *c, int n, bool reading)
{
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (e == SSL_ERROR_WANT_WRITE && reading) {
            c->ssl_read_on_write = true;
            want_write(c);
        }
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL) {
        unsigned long why = ERR_peek_error();
        cn_log_debug("http %s: TLS: %s", c->client,
                     why ? ERR_reason_error_string(why) : "connection closed");
    }
    ERR_clear_error();
    errno = ECONNRESET;
    return -1;
}

static ssize_t conn_recv(edge_conn_t *c, int fd, void *buf, size_t len)
{
    if (!c->ssl)
        return recv(fd, buf, len, 0);
    return tls_result(c, SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len), true);
}

/* `more`: the caller ends the connection right after these bytes
 * (conn_finish), so the kernel may hold the tail of a plaintext send
 * (MSG_MORE) for the FIN to ride on: one segment for the last response and
 * the FIN instead of two, each a wake-up of the client and a trip through
 * both TCP stacks.
 * MSG_MORE holds the tail only for this call: an ACK of earlier bytes,
 * processed as send() releases the socket or before shutdown(), pushes it
 * out alone under TCP_NODELAY, and the FIN follows in a segment of its own
 * (seen on 1 in 9 closing 300 kB responses). So once bytes are in flight,
 * the tail is corked until the FIN (TCP_CORK; shutdown pushes it). A
 * one-send response, the new-connection case, needs no extra call. */
static ssize_t conn_send(edge_conn_t *c, int fd, const void *buf, size_t len, bool more)
{
    if (!c->ssl) {
        if (more && c->sent_any && !c->corked) {
            int on = 1;
            c->corked = setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)) == 0;
        }
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (n > 0)
            c->sent_any = true;
        return n;
    }
    if (!len)
        return 0;
    return tls_result(c, SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len), false);
}

/* Sends what `out` holds; true once it is all sent. `last`: conn_finish
 * follows at once when it is (see conn_send's `more`); a send that stops
 * short is pushed by the next one, which the writeable callback makes
 * without `last`. */
static bool flush_out_as(edge_conn_t *c, bool last)
{
    int fd = lws_get_socket_fd(c->wsi);
    while (c->out.len) {
        ssize_t n = conn_send(c, fd, cn_buf_data(&c->out), c->out.len, last);
        if (n > 0) {
            cn_buf_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want_write(c);
            return false;
        }
        conn_kill(c);
        return false;
    }
    return true;
}

static bool flush_out(edge_conn_t *c)
{
    return flush_out_as(c, false);
}

static void out_printf(edge_conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(edge_conn_t *c, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp) || cn_buf_append(&c->out, tmp, (size_t)n) < 0)
        c->close_after = true; /* cannot happen with our bounds; never send half */
}

static void out_bytes(edge_conn_t *c, const void *p, size_t n)
{
    if (cn_buf_append(&c->out, p, n) < 0)
        c->close_after = true;
}

/* One line of text, escaped for HTML or JSON. */
static void escape(char *dst, size_t cap, const char *src, bool json)
{
    size_t j = 0;
    for (const char *p = src; *p && j + 7 < cap; p++) {
        unsigned char ch = (unsigned char)*p;
        const char *rep = NULL;
        char hex[8];
        if (json && (ch == '"' || ch == '\\')) {
            hex[0] = '\\';
            hex[1] = (char)ch;
            hex[2] = 0;
            rep = hex;
        } else if (ch < 0x20 || ch == 0x7f) {
            snprintf(hex, sizeof(hex), json ? "\\u%04x" : "?", ch);
            rep = hex;
        } else if (!json && ch == '<') {
            rep = "&lt;";
        } else if (!json && ch == '>') {
            rep = "&gt;";
        } else if (!json && ch == '&') {
            rep = "&amp;";
        } else if (!json && ch == '"') {
            rep = "&quot;";
        }
        if (rep) {
            size_t rl = strlen(rep);
            if (j + rl >= cap)
                break;
            memcpy(dst + j, rep, rl);
            j += rl;
        } else {
            dst[j++] = (char)ch;
        }
    }
    dst[j] = '\0';
}

/* Extra headers an error answer may carry. */
typedef struct err_extra {
    const char *allow;          /* 405 */
    uint32_t retry_after;       /* 429 */
    const char *www_auth_realm; /* 401 */
} err_extra_t;

/* A final answer's status went out (interim 1xx excluded): kept for the
 * access log and counted for /metrics, once per answered request. */
static void answered(edge_conn_t *c, int status)
{
    c->info.status = status;
    hub_metrics_http_request(c->rt->cfg.metrics, status);
}

/* Queues a complete error answer: status, one line saying what happened,
 * as JSON or HTML by the request's Accept. */
static void respond_error(edge_conn_t *c, int status, const char *msg, const err_extra_t *x)
{
    char esc[512], body[1024];
    const char *reason = hub_http_reason(status);
    escape(esc, sizeof(esc), msg, c->json_errors);
    int bl;
    if (c->json_errors)
        bl = snprintf(body, sizeof(body), "{\"status\":%d,\"error\":\"%s\",\"message\":\"%s\"}\n",
                      status, reason, esc);
    else
        bl = snprintf(body, sizeof(body),
                      "<!DOCTYPE html><html><head><title>%d %s</title></head><body><h1>%d "
                      "%s</h1><p>%s</p><hr><p>connect-hub</p></body></html>\n",
                      status, reason, status, reason, esc);
    if (bl < 0 || (size_t)bl >= sizeof(body))
        bl = 0;
    out_printf(c,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
               "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
               status, reason, c->json_errors ? "application/json" : "text/html; charset=utf-8",
               bl);
    if (x && x->allow)
        out_printf(c, "Allow: %s\r\n", x->allow);
    if (x && x->retry_after)
        out_printf(c, "Retry-After: %u\r\n", (unsigned)x->retry_after);
    if (x && x->www_auth_realm) {
        char realm[128];
        escape(realm, sizeof(realm), x->www_auth_realm, true);
        out_printf(c, "WWW-Authenticate: Basic realm=\"%s\", charset=\"UTF-8\"\r\n", realm);
    }
    if (c->close_after)
        out_printf(c, "Connection: close\r\n");
    out_printf(c, "\r\n");
    if (strcmp(c->info.method, "HEAD") != 0)
        out_bytes(c, body, (size_t)bl);
    answered(c, status);
}

/* The /metrics label of a share's refusal. */
static enum hub_metrics_share_reject share_reject_reason(enum hub_share_verdict v)
{
    switch (v) {
    case HUB_SHARE_REVOKED:
        return HUB_SHARE_REJ_REVOKED;
    case HUB_SHARE_EXPIRED:
        return HUB_SHARE_REJ_EXPIRED;
    case HUB_SHARE_AUTH:
        return HUB_SHARE_REJ_AUTH;
    case HUB_SHARE_METHOD:
        return HUB_SHARE_REJ_METHOD;
    case HUB_SHARE_PATH:
        return HUB_SHARE_REJ_PATH;
    case HUB_SHARE_LIMIT:
    default:
        return HUB_SHARE_REJ_RATE_LIMIT;
    }
}

/* ---- access log and windows ------------------------------------------------ */

/* The access-log row goes to the store's writer thread: a copy of its
 * few short strings into a queue, no SQLite on the loop. */
static void log_request(edge_conn_t *c)
{
    if (c->rec) { /* the inspection record ends with the access-log line */
        hub_inspect_commit(c->rt->cfg.inspect, c->rec, c->info.status ? c->info.status : 499,
                           now_ms(c->rt));
        c->rec = NULL;
    }
    if (!c->info.share_id[0] || !c->info.status)
        return;
    int64_t now = now_ms(c->rt);
    hub_share_log_row_t row = {.at = c->info.started,
                               .method = c->info.method,
                               .path = c->info.path,
                               .status = c->info.status,
                               .latency_ms = now - c->info.started,
                               .client = c->client};
    /* A full queue is counted by the store (metrics) and logged by its
     * writer at most once a second. */
    (void)hub_store_share_log_append(c->rt->cfg.store, c->info.share_id, &row);
    c->info.share_id[0] = '\0';
}

static hub_share_window_t *share_window(hub_runtime_t *rt, const char *share_id)
{
    struct hub_edge_http *e = rt->edge;
    share_window_t **bucket = &e->windows[id_hash(share_id, 0) & (WINDOW_BUCKETS - 1)];
    for (share_window_t *w = *bucket; w; w = w->next)
        if (!strcmp(w->share_id, share_id))
            return &w->w;
    if (e->nwindows >= e->windows_prune_at) {
        /* Forget windows that ended: their next request starts a new one.
         * When most are live, wait for twice as many before the next walk. */
        int64_t now = now_ms(rt);
        for (size_t b = 0; b < WINDOW_BUCKETS; b++) {
            for (share_window_t **pp = &e->windows[b]; *pp;) {
                share_window_t *w = *pp;
                if (now - w->w.start_ms >= HUB_SHARE_WINDOW_MS) {
                    *pp = w->next;
                    free(w);
                    e->nwindows--;
                } else {
                    pp = &w->next;
                }
            }
        }
        e->windows_prune_at =
            e->nwindows * 2 > WINDOWS_PRUNE_AT ? e->nwindows * 2 : WINDOWS_PRUNE_AT;
    }
    share_window_t *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    snprintf(w->share_id, sizeof(w->share_id), "%s", share_id);
    w->next = *bucket;
    *bucket = w;
    e->nwindows++;
    return &w->w;
}

/* ---- the request's stream ---------------------------------------------------- */

/* The stream's bytes go through these two, so that /metrics counts every
 * byte of a tunnel's HTTP traffic both ways. */
static int req_consume(edge_req_t *r, size_t n)
{
    int rc = cn_mux_consume(r->mux, r->id, n);
    if (rc >= 0)
        r->bytes_down += n;
    return rc;
}
static int req_write(edge_req_t *r, const void *p, size_t n)
{
    int w = cn_mux_write(r->mux, r->id, p, n);
    if (w > 0)
        r->bytes_up += (uint64_t)w;
    return w;
}

static const cn_stream_ops_t req_ops;

/* Adds the request's bytes to its tunnel's counts (once per request: a
 * pooled stream carries many). */
static void req_account(edge_req_t *r)
{
    if (r->tunnel_id[0] && (r->bytes_up || r->bytes_down))
        hub_metrics_tunnel_bytes(r->rt->cfg.metrics, r->tunnel_id, r->bytes_up, r->bytes_down);
    r->bytes_up = r->bytes_down = 0;
}

static void req_free(edge_req_t *r)
{
    req_account(r);
    lws_sul_cancel(&r->timer);
    cn_buf_free(&r->pending);
    cn_buf_free(&r->rhead);
    cn_buf_free(&r->resend);
    free(r);
}

/* A request's stream object, not opened yet, for the tunnel served by
 * session `s`. NULL when out of memory. */
static edge_req_t *req_new(edge_conn_t *c, session_t *s, const char *tunnel_id,
                           const char *agent_id, int64_t version)
{
    edge_req_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->ops = &req_ops;
    r->rt = c->rt;
    r->conn = c;
    r->link = s->link;
    r->mux = cn_link_mux(s->link);
    cn_buf_strcpy(r->tunnel_id, sizeof(r->tunnel_id), tunnel_id, SIZE_MAX);
    cn_buf_strcpy(r->agent_id, sizeof(r->agent_id), agent_id, SIZE_MAX);
    r->version = version;
    r->nreq = 1;
    cn_buf_init(&r->pending, HUB_H1_HEAD_MAX + 1024, 0);
    cn_buf_init(&r->rhead, HUB_H1_HEAD_MAX, 0);
    cn_buf_init(&r->resend, HUB_H1_HEAD_MAX + 1024, 0);
    return r;
}

/* Opens the request's stream to the agent (the agent dials the target as
 * for a TCP tunnel). 0 or the CN_E* of cn_mux_open(). */
static int req_open(edge_req_t *r, const edge_conn_t *c)
{
    char meta[128];
    int mlen = snprintf(meta, sizeof(meta), "{\"client\":\"%s\"}", c->client);
    int rc = cn_mux_open(r->mux, CN_KIND_TCP, (const uint8_t *)r->tunnel_id, strlen(r->tunnel_id),
                         (const uint8_t *)meta, (size_t)mlen, r, &r->id);
    if (rc == 0)
        r->opened = true;
    return rc;
}

/* ---- the upstream keep-alive pool ----------------------------------------------- */

static edge_pool_t **pool_bucket(struct hub_edge_http *e, const char *tunnel_id,
                                 const cn_link_t *link)
{
    return &e->pool_index[id_hash(tunnel_id, ptr_hash(link)) & (POOL_BUCKETS - 1)];
}

static edge_pool_t *pool_find(struct hub_edge_http *e, const char *tunnel_id, const cn_link_t *link)
{
    for (edge_pool_t *p = *pool_bucket(e, tunnel_id, link); p; p = p->hnext)
        if (p->link == link && !strcmp(p->tunnel_id, tunnel_id))
            return p;
    return NULL;
}

/* A new, empty pool of the tunnel on r's link, in the list and both
 * indexes; NULL when out of memory. */
static edge_pool_t *pool_new(struct hub_edge_http *e, const edge_req_t *r)
{
    edge_link_pools_t **lb = &e->link_pools_index[ptr_hash(r->link) & (POOL_BUCKETS - 1)];
    edge_link_pools_t *lp = *lb;
    while (lp && lp->link != r->link)
        lp = lp->hnext;
    edge_pool_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    if (!lp) {
        if (!(lp = calloc(1, sizeof(*lp)))) {
            free(p);
            return NULL;
        }
        lp->link = r->link;
        lp->hnext = *lb;
        *lb = lp;
    }
    lp->npools++;
    p->lp = lp;
    p->rt = r->rt;
    cn_buf_strcpy(p->tunnel_id, sizeof(p->tunnel_id), r->tunnel_id, SIZE_MAX);
    cn_buf_strcpy(p->agent_id, sizeof(p->agent_id), r->agent_id, SIZE_MAX);
    p->link = r->link;
    p->version = r->version;
    p->next = e->pools;
    if (p->next)
        p->next->prev = p;
    e->pools = p;
    edge_pool_t **b = pool_bucket(e, p->tunnel_id, p->link);
    p->hnext = *b;
    *b = p;
    return p;
}

/* Takes an empty pool out of the list and the indexes, and frees it (and
 * its link's count with the link's last pool). */
static void pool_free(struct hub_edge_http *e, edge_pool_t *p)
{
    lws_sul_cancel(&p->idle);
    if (p->prev)
        p->prev->next = p->next;
    else
        e->pools = p->next;
    if (p->next)
        p->next->prev = p->prev;
    for (edge_pool_t **pp = pool_bucket(e, p->tunnel_id, p->link); *pp; pp = &(*pp)->hnext)
        if (*pp == p) {
            *pp = p->hnext;
            break;
        }
    if (!--p->lp->npools) {
        edge_link_pools_t **lb = &e->link_pools_index[ptr_hash(p->link) & (POOL_BUCKETS - 1)];
        for (; *lb; lb = &(*lb)->hnext)
            if (*lb == p->lp) {
                *lb = p->lp->hnext;
                break;
            }
        free(p->lp);
    }
    free(p);
}

/* Takes r out of its pool; frees the pool once it is empty. */
static void pool_unlink(edge_req_t *r)
{
    edge_pool_t *p = r->pool;
    struct hub_edge_http *e = r->rt->edge;
    if (!p)
        return;
    if (r->pprev)
        r->pprev->pnext = r->pnext;
    else
        p->top = r->pnext;
    if (r->pnext)
        r->pnext->pprev = r->pprev;
    else
        p->bottom = r->pprev;
    r->pnext = r->pprev = NULL;
    r->pool = NULL;
    lws_sul_cancel(&r->timer);
    p->n--;
    p->lp->n--;
    e->npooled--;
    if (!p->n)
        pool_free(e, p);
}

/* Ends an idle pooled stream: the agent closes the target connection on
 * the reset, and op_closed frees the object. */
static void pool_discard(edge_req_t *r, const char *why)
{
    cn_log_debug("http: pooled stream %u of tunnel %s closed: %s", (unsigned)r->id, r->tunnel_id,
                 why);
    pool_unlink(r);
    cn_mux_reset(r->mux, r->id, CN_RST_CANCEL, why);
    cn_link_flush(r->link);
}

static void pool_drop(edge_pool_t *p, const char *why)
{
    for (size_t n = p->n; n; n--) /* the last discard frees p */
        pool_discard(p->top, why);
}

/* Closes the streams idle for --http-pool-idle, the longest idle first,
 * and waits for the next one's turn. */
static void pool_idle_cb(lws_sorted_usec_list_t *sul)
{
    edge_pool_t *p = lws_container_of(sul, edge_pool_t, idle);
    lws_usec_t idle = (lws_usec_t)p->rt->cfg.http_pool_idle_ms * LWS_US_PER_MS;
    lws_usec_t now = lws_now_usecs();
    for (size_t n = p->n; n; n--) { /* the last discard frees p */
        if (now - p->bottom->pooled_at < idle) {
            lws_sul_schedule(p->rt->ctx, 0, &p->idle, pool_idle_cb,
                             p->bottom->pooled_at + idle - now);
            return;
        }
        pool_discard(p->bottom, "idle in the pool");
    }
}

/* An idle stream for a request of the tunnel (at `version`) on `link`,
 * out of its pool, or NULL. */
static edge_req_t *pool_take(struct hub_edge_http *e, const char *tunnel_id, const cn_link_t *link,
                             int64_t version)
{
    edge_pool_t *p = pool_find(e, tunnel_id, link);
    if (!p)
        return NULL;
    if (p->version != version) {
        pool_drop(p, "the tunnel changed");
        return NULL;
    }
    edge_req_t *r = p->top;
    pool_unlink(r);
    return r;
}

/* The exchange on c's stream r ended: keeps the stream for the next
 * request when both sides left the connection reusable. The target's
 * connection is reusable when its response ended by its own framing (not
 * by the close), it did not say Connection: close (HTTP/1.1, or 1.0 with
 * keep-alive), the request went out whole, and nothing came after the
 * response. True when r went to the pool (c no longer has it). */
static bool pool_put(edge_conn_t *c, edge_req_t *r)
{
    struct hub_edge_http *e = c->rt->edge;
    unsigned max = c->rt->cfg.http_pool_max;
    const uint8_t *rest;
    size_t restn;
    if (!max || !r->opened || !r->accepted || r->stream_done || r->reset_code || r->upgrade ||
        r->rstate != R_BODY || !r->rbody.done || r->rbody.kind == HUB_H1_BODY_CLOSE ||
        !r->resp_keep || !r->reqbody.done || r->pending.len || c->state != C_WAIT ||
        r->nreq >= POOL_MAX_REQUESTS || cn_mux_peek(r->mux, r->id, &rest, &restn) != CN_EAGAIN)
        return false;
    edge_pool_t *p = pool_find(e, r->tunnel_id, r->link);
    if (p && p->version != r->version) {
        if (p->version > r->version)
            return false; /* routed before the tunnel changed */
        pool_drop(p, "the tunnel changed");
        p = NULL;
    }
    if (!p && !(p = pool_new(e, r)))
        return false;
    req_account(r);
    if (c->req == r)
        c->req = NULL;
    r->conn = NULL;
    lws_sul_cancel(&r->timer);
    r->rstate = R_HEAD;
    cn_buf_reset(&r->rhead);
    memset(&r->rbody, 0, sizeof(r->rbody));
    r->sent_any = r->from_pool = r->resp_keep = false;
    cn_buf_reset(&r->resend);
    r->pool = p;
    r->pprev = NULL;
    r->pnext = p->top;
    if (p->top)
        p->top->pprev = r;
    else
        p->bottom = r;
    p->top = r;
    r->pooled_at = lws_now_usecs();
    if (!p->n++) /* else the bottom, idle longer, is due first */
        lws_sul_schedule(c->rt->ctx, 0, &p->idle, pool_idle_cb,
                         (lws_usec_t)c->rt->cfg.http_pool_idle_ms * LWS_US_PER_MS);
    p->lp->n++;
    e->npooled++;
    if (p->n > max || p->lp->n > POOL_LINK_MAX)
        pool_discard(p->bottom, "the pool is full"); /* the longest idle */
    return true;
}

static void linger_cb(lws_sorted_usec_list_t *sul)
{
    edge_req_t *r = lws_container_of(sul, edge_req_t, timer);
    if (!r->conn && !r->stream_done) {
        cn_mux_reset(r->mux, r->id, CN_RST_CANCEL, "response finished");
        cn_link_flush(r->link);
    }
}

/* Drops what the target still sends on a stream no client reads any more,
 * so that its window stays open; a stream whose credit cannot be returned
 * would stall the target, so it is reset instead. */
static void drain_stream(edge_req_t *r)
{
    const uint8_t *p;
    size_t n;
    while (cn_mux_peek(r->mux, r->id, &p, &n) > 0) {
        if (req_consume(r, n) < 0) {
            cn_mux_reset(r->mux, r->id, CN_RST_CANCEL, "credit not returned");
            return;
        }
    }
}

/* The connection is done with its request: the stream finishes on its own
 * (our FIN; the target closes after its response) or is reset when the
 * request did not finish. */
static void req_detach(edge_req_t *r, bool abort_stream)
{
    if (!r)
        return;
    if (r->conn && r->conn->req == r)
        r->conn->req = NULL;
    r->conn = NULL;
    lws_sul_cancel(&r->timer);
    if (!r->opened || r->stream_done) {
        req_free(r);
        return;
    }
    /* Without our FIN the target would wait for more request: reset. */
    if (abort_stream || !r->accepted || cn_mux_shutdown(r->mux, r->id) < 0) {
        cn_mux_reset(r->mux, r->id, CN_RST_CANCEL, "client done");
    } else {
        drain_stream(r);
        lws_sul_schedule(r->rt->ctx, 0, &r->timer, linger_cb,
                         (lws_usec_t)LINGER_MS * LWS_US_PER_MS);
    }
    cn_link_flush(r->link);
}

/* The connection closes once its request in flight is finished. */
static bool ends_after_request(const edge_conn_t *c)
{
    return c->close_after || c->state == C_TUNNEL || c->state == C_CLOSING;
}

static void process_input(edge_conn_t *c);
static void pump_response(edge_conn_t *c);
static void pump_request(edge_conn_t *c);

/* The response is complete (or the request ended with an error answer):
 * log it, let the stream go, and read the next request. */
static void request_finished(edge_conn_t *c, bool abort_stream)
{
    log_request(c);
    if (c->req && (abort_stream || !pool_put(c, c->req)))
        req_detach(c->req, abort_stream);
    c->req = NULL;
    memset(&c->info, 0, sizeof(c->info));
    if (ends_after_request(c)) {
        c->state = C_CLOSING;
        set_rx(c, false);
        if (flush_out_as(c, true))
            conn_finish(c);
        return;
    }
    c->state = C_HEAD;
    arm_deadline(c, DEADLINE_IDLE);
    set_rx(c, true);
    if (c->out.len && !flush_out(c))
        return; /* the rest once the client reads; conn_writable goes on */
    /* Inside process_input() (a request answered at once), its loop takes
     * the next head: calling it again here nested a frame of
     * handle_request() per pipelined request, and 300 of them in one read
     * overflowed the stack. */
    if (c->in.len && !c->in_input)
        process_input(c);
}

/* Answers an error for the request in flight (before any response byte
 * went out) and ends it; a request whose body was not read to its end
 * leaves the connection closing. */
static void fail_request(edge_conn_t *c, int status, const char *msg)
{
    edge_req_t *r = c->req;
    if (r && r->sent_any) {
        c->close_after = true;
        request_finished(c, true);
        return;
    }
    if (c->state != C_WAIT)
        c->close_after = true; /* the request body is not all read */
    respond_error(c, status, msg, NULL);
    request_finished(c, true);
}

static void req_timeout_cb(lws_sorted_usec_list_t *sul)
{
    edge_req_t *r = lws_container_of(sul, edge_req_t, timer);
    edge_conn_t *c = r->conn;
    if (!c || r->rstate != R_HEAD)
        return;
    cn_log_info("http %s: target of tunnel timed out", c->client);
    c->close_after = true;
    fail_request(c, 504, "the target did not answer in time");
}

/* The target's time to answer runs from the end of the request: an upload
 * takes as long as the client takes. */
static void arm_response_timer(edge_conn_t *c)
{
    edge_req_t *r = c->req;
    if (r && c->wsi)
        lws_sul_schedule(lws_get_context(c->wsi), 0, &r->timer, req_timeout_cb,
                         (lws_usec_t)c->rt->cfg.http_timeout_ms * LWS_US_PER_MS);
}

/* The race every keep-alive pool has: the target closed an idle
 * connection just as a request went out on it. A request sent on a pooled
 * stream that ended (FIN or reset) before any response byte is sent once
 * more on a new stream; only requests that are safe to repeat, with no
 * body, take pooled streams (POOL_METHODS), so this never runs a POST
 * twice (nginx's proxy_next_upstream retries the same way, and never
 * non-idempotent requests). True when the request was restarted. */
static bool retry_fresh(edge_conn_t *c)
{
    edge_req_t *old = c->req;
    if (!old || !old->from_pool || old->rstate != R_HEAD || old->rhead.len || !old->resend.len ||
        c->state != C_WAIT)
        return false;
    session_t *s = hub_agents_route(c->rt, old->agent_id, old->tunnel_id);
    if (!s)
        return false;
    edge_req_t *r = req_new(c, s, old->tunnel_id, old->agent_id, old->version);
    if (!r)
        return false;
    r->reqbody = old->reqbody;
    r->head_request = old->head_request;
    if (cn_buf_append(&r->pending, cn_buf_data(&old->resend), old->resend.len) < 0 ||
        req_open(r, c) < 0) {
        req_free(r);
        return false;
    }
    cn_log_debug("http %s: the target closed a pooled connection of tunnel %s as the request "
                 "went out; sending it again on a new one",
                 c->client, old->tunnel_id);
    req_detach(old, true);
    c->req = r;
    arm_response_timer(c);
    cn_link_flush(r->link);
    return true;
}

static void op_accepted(void *self)
{
    edge_req_t *r = self;
    r->accepted = true;
    edge_conn_t *c = r->conn;
    if (!c)
        return;
    if (c->state == C_BODY || c->state == C_WAIT)
        pump_request(c);
}

static void op_readable(void *self)
{
    edge_req_t *r = self;
    if (r->pool) { /* an idle target says something: it closed, or talks out of turn */
        pool_discard(r, "the target closed its idle connection");
        return;
    }
    if (!r->conn) {
        drain_stream(r);
        cn_link_flush(r->link);
        return;
    }
    pump_response(r->conn);
}

static void op_writable(void *self)
{
    edge_req_t *r = self;
    if (r->conn)
        pump_request(r->conn);
}

static void op_reset(void *self, uint32_t code, const char *msg, size_t len)
{
    edge_req_t *r = self;
    if (!r->reset_code)
        r->reset_code = code ? code : CN_RST_INTERNAL;
}

static void op_closed(void *self)
{
    edge_req_t *r = self;
    r->stream_done = true;
    if (r->pool)
        pool_unlink(r);
    edge_conn_t *c = r->conn;
    if (!c) {
        req_free(r);
        return;
    }
    /* The stream ended before the response did. */
    /* CN_RST_GONE: the link to the agent ended (cn_link aborts its streams
     * so), which a request routed just before the hub saw the link close
     * meets instead of the "offline" answer of the next one. */
    if (!r->accepted) {
        const char *why =
            r->reset_code == CN_RST_UNREACHABLE ? "the target refused the connection"
            : r->reset_code == CN_RST_REFUSED   ? "the agent refused to serve this tunnel"
            : r->reset_code == CN_RST_GONE      ? "the agent serving this tunnel went offline"
                                           : "the agent did not open a connection to the target";
        fail_request(c, 502, why);
    } else if (r->rstate == R_HEAD) {
        if (retry_fresh(c))
            return;
        fail_request(c, 502,
                     r->reset_code == CN_RST_GONE
                         ? "the agent serving this tunnel went offline before the target answered"
                     : r->rhead.len ? "the target sent an incomplete response"
                                    : "the connection to the target was lost");
    } else if (r->rstate == R_BODY && r->rbody.done) {
        request_finished(c, false);
    } else {
        /* A body framed by the end of the stream, a truncated body, or the
         * end of an upgraded connection: the client connection ends too. */
        c->close_after = true;
        request_finished(c, false);
    }
}

static const cn_stream_ops_t req_ops = {
    .accepted = op_accepted,
    .readable = op_readable,
    .writable = op_writable,
    .reset = op_reset,
    .closed = op_closed,
};

/* ---- client -> stream ------------------------------------------------------------ */

/* Moves the rewritten head into the stream; false while it does not fit. */
static bool push_pending(edge_req_t *r)
{
    while (r->pending.len) {
        int n = req_write(r, cn_buf_data(&r->pending), r->pending.len);
        if (n <= 0)
            return false;
        cn_buf_consume(&r->pending, (size_t)n);
    }
    return true;
}

/* Body bytes the request still has in c->in go first. */
static bool push_buffered_body(edge_conn_t *c)
{
    edge_req_t *r = c->req;
    while (c->in.len && (c->state == C_TUNNEL || !r->reqbody.done)) {
        size_t used = c->in.len;
        if (c->state != C_TUNNEL) {
            hub_h1_body_t trial = r->reqbody;
            if (hub_h1_body_feed(&trial, cn_buf_data(&c->in), c->in.len, &used) < 0)
                return false;
        }
        if (!used)
            break;
        int n = req_write(r, cn_buf_data(&c->in), used);
        if (n <= 0)
            return true; /* no credit: on_writable resumes */
        size_t u2 = 0;
        if (c->state != C_TUNNEL) {
            hub_h1_body_feed(&r->reqbody, cn_buf_data(&c->in), (size_t)n, &u2);
            hub_inspect_body(c->rec, HUB_INSPECT_REQ, cn_buf_data(&c->in), (size_t)n);
        }
        cn_buf_consume(&c->in, (size_t)n);
    }
    return true;
}

/* Gives back the send space cn_mux_write_space() lent when nothing goes
 * into it. Abandoning an outstanding space cannot fail (cn_mux.h). */
static void abandon_space(edge_req_t *r)
{
    int rc = cn_mux_write_commit(r->mux, r->id, 0);
    assert(rc == 0);
    (void)rc;
}

static void pump_request(edge_conn_t *c)
{
    edge_req_t *r = c->req;
    if (!r || !r->accepted || r->stream_done)
        return;
    if (!push_pending(r)) {
        cn_link_flush(r->link);
        return;
    }
    if (r->upgrade && c->state == C_WAIT) {
        cn_link_flush(r->link);
        return; /* nothing more until the 101 */
    }
    if (!push_buffered_body(c)) {
        cn_link_flush(r->link);
        fail_request(c, 400, "malformed chunked request body");
        return;
    }
    if (c->state == C_BODY && r->reqbody.done) {
        c->state = C_WAIT;
        set_rx(c, false);
        arm_response_timer(c);
    }
    if (c->state != C_BODY && c->state != C_TUNNEL) {
        cn_link_flush(r->link);
        return;
    }
    if (c->in.len) {
        set_rx(c, false); /* still buffered bytes: no credit for more */
        cn_link_flush(r->link);
        return;
    }
    int fd = lws_get_socket_fd(c->wsi);
    int i;
    for (i = 0; i < 8; i++) {
        uint8_t *dst;
        size_t space = 0;
        if (cn_mux_write_space(r->mux, r->id, &dst, &space) < 0 || !space) {
            set_rx(c, false); /* resumed by on_writable */
            break;
        }
        if (c->state == C_BODY && r->reqbody.kind == HUB_H1_BODY_LENGTH && space > r->reqbody.left)
            space = (size_t)r->reqbody.left;
        ssize_t n = conn_recv(c, fd, dst, space);
        if (n <= 0)
            abandon_space(r);
        if (n == 0) {
            if (c->state == C_TUNNEL) {
                set_rx(c, false);
                if (cn_mux_shutdown(r->mux, r->id) < 0) { /* the target would wait forever */
                    c->close_after = true;
                    cn_link_flush(r->link);
                    request_finished(c, true);
                    return;
                }
                break;
            }
            c->close_after = true;
            cn_link_flush(r->link);
            request_finished(c, true);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                c->close_after = true;
                cn_link_flush(r->link);
                request_finished(c, true);
                return;
            }
            set_rx(c, true);
            break;
        }
        size_t used = (size_t)n;
        if (c->state == C_BODY) {
            hub_h1_body_t trial = r->reqbody;
            if (hub_h1_body_feed(&trial, dst, (size_t)n, &used) < 0) {
                abandon_space(r);
                cn_link_flush(r->link);
                fail_request(c, 400, "malformed chunked request body");
                return;
            }
            /* The next request, pipelined; more than the input buffer
             * holds is dropped and the connection closes after this
             * response (a pipelining client retries what was not answered). */
            if (used < (size_t)n && cn_buf_append(&c->in, dst + used, (size_t)n - used) < 0) {
                cn_log_info("http %s: pipelined requests beyond %u bytes dropped", c->client,
                            (unsigned)IN_MAX);
                c->close_after = true;
            }
            r->reqbody = trial;
            hub_inspect_body(c->rec, HUB_INSPECT_REQ, dst, used);
        }
        if (cn_mux_write_commit(r->mux, r->id, used) < 0) {
            cn_link_flush(r->link);
            fail_request(c, 502, "the connection to the target was lost");
            return;
        }
        r->bytes_up += used;
        if (c->state == C_BODY && r->reqbody.done) {
            c->state = C_WAIT;
            set_rx(c, false);
            arm_response_timer(c);
            break;
        }
        if ((size_t)n < space) {
            set_rx(c, true); /* drained for now: POLLIN says when there is more */
            break;
        }
    }
    if (i == 8)
        set_rx(c, true); /* more to read: yield to other sockets, come back on POLLIN */
    cn_link_flush(r->link);
}

/* ---- stream -> client --------------------------------------------------------------- */

static bool hop_or_forwarded(const hub_h1_head_t *h, const hub_h1_header_t *hd)
{
    return hub_h1_hop_by_hop(hd) || hub_h1_connection_names(h, hd);
}

/* The target's head is complete: pass it on (rewritten), or swallow an
 * interim 1xx. Returns false when the request was failed. */
static bool response_head(edge_conn_t *c, const hub_h1_head_t *h)
{
    edge_req_t *r = c->req;
    const char *raw = (const char *)cn_buf_data(&r->rhead);
    if (h->status == 101 && r->upgrade) {
        out_bytes(c, raw, h->head_len);
        r->rstate = R_TUNNEL;
        c->state = C_TUNNEL;
        answered(c, 101);
        hub_inspect_response(c->rec, h, now_ms(c->rt));
        lws_sul_cancel(&r->timer);
        set_rx(c, true); /* bytes both ways from now on */
        return true;
    }
    if (h->status < 200)
        return true; /* interim (we answered 100 Continue ourselves) */
    lws_sul_cancel(&r->timer);
    if (hub_h1_response_body(h, r->head_request, &r->rbody) < 0) {
        fail_request(c, 502, "the target sent a response with a malformed length");
        return false;
    }
    if (r->rbody.kind == HUB_H1_BODY_CLOSE || r->upgrade)
        c->close_after = true;
    r->resp_keep = h->minor >= 1 ? !hub_h1_has_token(h, "connection", "close")
                                 : hub_h1_has_token(h, "connection", "keep-alive");
    const char *eol = memchr(raw, '\r', h->head_len);
    out_printf(c, "HTTP/1.1 %.*s\r\n", (int)(eol - raw - 9), raw + 9);
    for (size_t i = 0; i < h->nheaders; i++) {
        const hub_h1_header_t *hd = &h->headers[i];
        if (hop_or_forwarded(h, hd))
            continue;
        out_bytes(c, hd->name, hd->name_len);
        out_bytes(c, ": ", 2);
        out_bytes(c, hd->value, hd->value_len);
        out_bytes(c, "\r\n", 2);
    }
    if (c->close_after)
        out_printf(c, "Connection: close\r\n");
    out_bytes(c, "\r\n", 2);
    answered(c, h->status);
    hub_inspect_response(c->rec, h, now_ms(c->rt));
    r->rstate = R_BODY;
    return true;
}

/* Feeds bytes of the response head; false when the request ended. */
static bool response_head_bytes(edge_conn_t *c, const uint8_t *p, size_t n)
{
    edge_req_t *r = c->req;
    /* Copied before the stream's bytes are consumed: p lives until then. */
    if (cn_buf_append(&r->rhead, p, n) < 0) {
        fail_request(c, 502, "the target sent a response head that is too large");
        return false;
    }
    if (req_consume(r, n) < 0) {
        fail_request(c, 502, "the connection to the target was lost");
        return false;
    }
    for (;;) {
        hub_h1_head_t *h = malloc(sizeof(*h));
        if (!h) {
            fail_request(c, 502, "out of memory");
            return false;
        }
        int rc = hub_h1_parse_response((const char *)cn_buf_data(&r->rhead), r->rhead.len, h);
        if (rc == 0) {
            free(h);
            return true;
        }
        if (rc < 0) {
            free(h);
            fail_request(c, 502, "the target sent a malformed response");
            return false;
        }
        size_t hl = h->head_len;
        bool ok = response_head(c, h);
        free(h);
        if (!ok)
            return false;
        cn_buf_consume(&r->rhead, hl);
        if (r->rstate == R_HEAD)
            continue; /* after an interim response */
        /* Body bytes that came with the head. */
        size_t rest = r->rhead.len, used = rest;
        if (r->rstate == R_BODY && rest) {
            if (hub_h1_body_feed(&r->rbody, cn_buf_data(&r->rhead), rest, &used) < 0) {
                c->close_after = true;
                request_finished(c, true);
                return false;
            }
        }
        out_bytes(c, cn_buf_data(&r->rhead), used);
        if (r->rstate == R_BODY)
            hub_inspect_body(c->rec, HUB_INSPECT_RESP, cn_buf_data(&r->rhead), used);
        cn_buf_reset(&r->rhead);
        r->sent_any = true;
        return true;
    }
}

static void pump_response(edge_conn_t *c)
{
    edge_req_t *r = c->req;
    if (!r)
        return;
    int fd = lws_get_socket_fd(c->wsi);
    for (;;) {
        bool done = r->rstate == R_BODY && r->rbody.done;
        /* A whole response on a closing connection goes out with the FIN
         * (request_finished). */
        if (c->out.len && !(done && ends_after_request(c)) && !flush_out(c))
            break;
        if (done) {
            request_finished(c, false);
            return;
        }
        const uint8_t *src;
        size_t len = 0;
        int rc = cn_mux_peek(r->mux, r->id, &src, &len);
        if (rc == 0) {
            /* The target's FIN. */
            if (r->rstate == R_HEAD) {
                if (retry_fresh(c))
                    return;
                fail_request(c, 502,
                             r->rhead.len ? "the target sent an incomplete response"
                                          : "the target closed the connection without "
                                            "answering");
                return;
            }
            if (r->rstate == R_TUNNEL) {
                c->close_after = true;
                request_finished(c, false);
                return;
            }
            if (r->rbody.kind != HUB_H1_BODY_CLOSE)
                cn_log_debug("http %s: response truncated by the target", c->client);
            c->close_after = true;
            request_finished(c, false);
            return;
        }
        if (rc < 0)
            break;
        if (r->rstate == R_HEAD) {
            if (!response_head_bytes(c, src, len))
                return;
            continue;
        }
        size_t want = len;
        bool last = false; /* the body's end on a closing connection: the FIN follows */
        if (r->rstate == R_BODY) {
            hub_h1_body_t trial = r->rbody;
            if (hub_h1_body_feed(&trial, src, len, &want) < 0) {
                c->close_after = true;
                request_finished(c, true);
                return;
            }
            if (!want) { /* bytes after the body */
                if (req_consume(r, len) < 0)
                    goto lost;
                continue;
            }
            last = trial.done && ends_after_request(c);
        }
        ssize_t n = conn_send(c, fd, src, want, last);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want_write(c);
            break;
        }
        if (n <= 0) {
            conn_kill(c);
            break;
        }
        r->sent_any = true;
        if (r->rstate == R_BODY) {
            size_t u = 0;
            hub_h1_body_feed(&r->rbody, src, (size_t)n, &u);
            hub_inspect_body(c->rec, HUB_INSPECT_RESP, src, (size_t)n);
        }
        if (req_consume(r, (size_t)n) < 0)
            goto lost;
        if ((size_t)n < want) {
            want_write(c);
            break;
        }
    }
    if (c->req)
        cn_link_flush(c->req->link);
    return;
lost: /* the credit cannot go back, so the target would stall: end it */
    c->close_after = true;
    request_finished(c, true);
}

/* ---- routing and policy ------------------------------------------------------------- */

/* Basic credentials "user:password" from an Authorization header. */
static bool basic_credentials(const hub_h1_head_t *h, char *user, size_t ulen, char *pass,
                              size_t plen)
{
    const hub_h1_header_t *a = hub_h1_find(h, "authorization");
    if (!a || a->value_len < 7 || strncasecmp(a->value, "basic ", 6) != 0)
        return false;
    const char *b64 = a->value + 6;
    size_t bl = a->value_len - 6;
    while (bl && *b64 == ' ') {
        b64++;
        bl--;
    }
    unsigned char dec[256];
    size_t dl = 0;
    if (bl > 340 || sodium_base642bin(dec, sizeof(dec) - 1, b64, bl, NULL, &dl, NULL,
                                      sodium_base64_VARIANT_ORIGINAL) != 0)
        return false;
    dec[dl] = 0;
    unsigned char *colon = memchr(dec, ':', dl);
    if (!colon || (size_t)(colon - dec) >= ulen || dl - (size_t)(colon - dec) - 1 >= plen) {
        sodium_memzero(dec, sizeof(dec));
        return false;
    }
    memcpy(user, dec, (size_t)(colon - dec));
    user[colon - dec] = 0;
    memcpy(pass, colon + 1, dl - (size_t)(colon - dec) - 1);
    pass[dl - (size_t)(colon - dec) - 1] = 0;
    sodium_memzero(dec, sizeof(dec));
    return true;
}

static bool auth_ok(hub_runtime_t *rt, const hub_h1_head_t *h, const char *want_user,
                    const char *hash)
{
    char user[HUB_USER_SIZE + 1], pass[256];
    if (!basic_credentials(h, user, sizeof(user), pass, sizeof(pass)))
        return false;
    bool ok = !strcmp(user, want_user) && hub_store_password_check(rt->cfg.store, hash, pass) == 0;
    sodium_memzero(pass, sizeof(pass));
    return ok;
}

/* The Host header's name, lowercase, without port; false if unusable. */
static bool host_name(const hub_h1_head_t *h, char *out, size_t cap)
{
    const hub_h1_header_t *hd = hub_h1_find(h, "host");
    if (!hd || !hd->value_len || hd->value_len >= cap)
        return false;
    size_t n = hd->value_len;
    const char *colon = memchr(hd->value, ':', n);
    if (colon)
        n = (size_t)(colon - hd->value);
    /* A table: a share's Host is ~50 bytes, and three tests a byte showed
     * in its profile. */
    static const char name_char[256] = {
        ['-'] = '-', ['.'] = '.', ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4',
        ['5'] = '5', ['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9', ['a'] = 'a', ['b'] = 'b',
        ['c'] = 'c', ['d'] = 'd', ['e'] = 'e', ['f'] = 'f', ['g'] = 'g', ['h'] = 'h', ['i'] = 'i',
        ['j'] = 'j', ['k'] = 'k', ['l'] = 'l', ['m'] = 'm', ['n'] = 'n', ['o'] = 'o', ['p'] = 'p',
        ['q'] = 'q', ['r'] = 'r', ['s'] = 's', ['t'] = 't', ['u'] = 'u', ['v'] = 'v', ['w'] = 'w',
        ['x'] = 'x', ['y'] = 'y', ['z'] = 'z', ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd',
        ['E'] = 'e', ['F'] = 'f', ['G'] = 'g', ['H'] = 'h', ['I'] = 'i', ['J'] = 'j', ['K'] = 'k',
        ['L'] = 'l', ['M'] = 'm', ['N'] = 'n', ['O'] = 'o', ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r',
        ['S'] = 's', ['T'] = 't', ['U'] = 'u', ['V'] = 'v', ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y',
        ['Z'] = 'z'};
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name_char[(uint8_t)hd->value[i]];
        bad |= ch == 0;
        out[i] = ch;
    }
    if (bad)
        return false;
    out[n] = 0;
    return n > 0;
}

/* Writes the request as the target gets it into r->pending: HTTP/1.1
 * keep-alive when the edge pools streams, else with Connection: close. */
static int build_head(edge_conn_t *c, const hub_h1_head_t *h, edge_req_t *r, const char *host,
                      const char *target, size_t target_len, bool strip_auth)
{
    cn_buf_t *b = &r->pending;
    char line[512];
    int rc = 0;
#define PUT(p, n)                                                                                  \
    do {                                                                                           \
        if (rc == 0)                                                                               \
            rc = cn_buf_append(b, (p), (n));                                                       \
    } while (0)
#define PUTS(s) PUT((s), strlen(s))
    PUT(h->method, h->method_len);
    PUTS(" ");
    PUT(target, target_len);
    PUTS(" HTTP/1.1\r\n");
    for (size_t i = 0; i < h->nheaders; i++) {
        const hub_h1_header_t *hd = &h->headers[i];
        if (hop_or_forwarded(h, hd) || hub_h1_header_is(hd, "x-forwarded-for") ||
            hub_h1_header_is(hd, "x-forwarded-proto") || hub_h1_header_is(hd, "x-forwarded-host") ||
            hub_h1_header_is(hd, "forwarded") || hub_h1_header_is(hd, "x-real-ip") ||
            hub_h1_header_is(hd, "expect") || (strip_auth && hub_h1_header_is(hd, "authorization")))
            continue;
        PUT(hd->name, hd->name_len);
        PUTS(": ");
        PUT(hd->value, hd->value_len);
        PUTS("\r\n");
    }
    const hub_h1_header_t *hosthd = hub_h1_find(h, "host");
    snprintf(line, sizeof(line), "X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\n", c->client_ip,
             c->ssl ? "https" : "http");
    PUTS(line);
    PUTS("X-Forwarded-Host: ");
    if (hosthd)
        PUT(hosthd->value, hosthd->value_len);
    else
        PUTS(host);
    PUTS("\r\n");
    if (r->upgrade) {
        const hub_h1_header_t *up = hub_h1_find(h, "upgrade");
        PUTS("Connection: Upgrade\r\nUpgrade: ");
        PUT(up->value, up->value_len);
        PUTS("\r\n\r\n");
    } else if (c->rt->cfg.http_pool_max) {
        PUTS("\r\n");
    } else {
        PUTS("Connection: close\r\n\r\n");
    }
#undef PUT
#undef PUTS
    return rc;
}

/* Routes one complete request head (in c->in) and starts it, or answers
 * it. The head's bytes are consumed here. */
static void handle_request(edge_conn_t *c, const hub_h1_head_t *h)
{
    hub_runtime_t *rt = c->rt;
    hub_store_t *st = rt->cfg.store;
    size_t head_len = h->head_len;
    hub_tunnel_t t = {0};
    /* Not zeroed (~9 KB, its 32 path slots): a found share is copied over
     * all of it but its unused path slots, which nothing reads, and nothing
     * reads it when none was found. On the stack: a malloc() and free() per
     * share request showed in its profile. */
    hub_share_t share_rec;
    hub_share_t *share = NULL;
    edge_req_t *r = NULL;
    char host[256], norm[HUB_PATH_MAX + 1], enc[HUB_PATH_MAX + 1];
    size_t nlen = 0;
    int status = 0;
    const char *msg = NULL;
    err_extra_t extra = {0};
    char allow[96] = "", realm[HUB_NAME_SIZE] = ""; /* outlive t and share */

    memset(&c->info, 0, sizeof(c->info));
    c->info.started = now_ms(rt);
    cn_buf_strcpy(c->info.method, sizeof(c->info.method), h->method,
                  h->method_len < 20 ? h->method_len : 20);
    const hub_h1_header_t *acc = hub_h1_find(h, "accept");
    c->json_errors = acc && (memmem(acc->value, acc->value_len, "json", 4) != NULL) &&
                     !memmem(acc->value, acc->value_len, "text/html", 9);
    bool keep = h->minor >= 1 ? !hub_h1_has_token(h, "connection", "close")
                              : hub_h1_has_token(h, "connection", "keep-alive");
    if (!keep || c->replay)
        c->close_after = true; /* a replay's connection carries one request */
    unsigned method = hub_method_parse(h->method, h->method_len);

    hub_h1_body_t body;
    if (hub_h1_request_body(h, &body) < 0) {
        c->close_after = true;
        status = 400;
        msg = "the request's length is ambiguous or malformed";
        goto answer;
    }

    size_t plen = h->target_len;
    const char *q = memchr(h->target, '?', plen);
    if (q)
        plen = (size_t)(q - h->target);
    if (h->target[0] != '/') {
        status = 400;
        msg = "only origin-form request targets (/path) are served";
        goto refuse_body;
    }
    cn_buf_strcpy(c->info.path, sizeof(c->info.path), h->target, plen < 512 ? plen : 512);
    if (!host_name(h, host, sizeof(host))) {
        status = 400;
        msg = "a Host header naming the tunnel is required";
        goto refuse_body;
    }
    size_t hl = strlen(host), dl = strlen(rt->cfg.public_domain);
    if (hl <= dl + 1 || host[hl - dl - 1] != '.' || strcmp(host + hl - dl, rt->cfg.public_domain)) {
        status = 404;
        msg = "this hub serves no such host";
        goto refuse_body;
    }
    host[hl - dl - 1] = 0; /* the label */
    if (strchr(host, '.')) {
        status = 404;
        msg = "this hub serves no such host";
        goto refuse_body;
    }
    if (!strncmp(host, "share-", 6)) {
        share = &share_rec;
        /* A replay names its share by id: its token is not kept. The share
         * and its tunnel come from the cache, which every change to either
         * empties (share_cache.h). */
        int rc, trc = CN_ENOTFOUND;
        if (c->replay) {
            rc = hub_share_cache_share_get(rt->cache, st, c->replay->workspace_id,
                                           c->replay->share_id, share);
            if (rc == 0)
                trc = hub_share_cache_tunnel_get(rt->cache, st, share->workspace_id,
                                                 share->tunnel_id, &t);
        } else {
            rc = hub_share_cache_share_route(rt->cache, st, host + 6, share, &t, &trc);
        }
        if (rc < 0) {
            status = rc == CN_ENOTFOUND ? 404 : 503;
            msg = rc == CN_ENOTFOUND ? "no such share" : "the hub cannot read its database";
            goto refuse_body;
        }
        /* Ids of the same fixed size (a memcpy: snprintf showed per request). */
        memcpy(c->info.share_id, share->id, sizeof(c->info.share_id));
        memcpy(c->info.share_ws, share->workspace_id, sizeof(c->info.share_ws));
        memcpy(c->share_id, c->info.share_id, sizeof(c->share_id));
        memcpy(c->share_ws, c->info.share_ws, sizeof(c->share_ws));
        if (trc < 0) {
            status = trc == CN_ENOTFOUND ? 404 : 503;
            msg = "the shared tunnel no longer exists";
            goto refuse_body;
        }
    } else {
        c->share_id[0] = '\0'; /* this connection no longer follows a share */
        int rc = hub_share_cache_tunnel_public(rt->cache, st, host, &t);
        if (rc == 0 && !hub_protocol_on_http_edge(t.protocol))
            rc = CN_ENOTFOUND;
        if (rc < 0) {
            status = rc == CN_ENOTFOUND ? 404 : 503;
            msg = rc == CN_ENOTFOUND ? "no public HTTP tunnel has this name"
                                     : "the hub cannot read its database";
            goto refuse_body;
        }
    }

    if (c->replay && strcmp(t.id, c->replay->tunnel_id)) {
        status = 404;
        msg = "the replayed request's tunnel no longer answers on the HTTP edge";
        goto refuse_body;
    }
    c->rec = hub_inspect_begin(rt->cfg.inspect, h, t.workspace_id, t.id, share ? share->id : "",
                               c->client, c->info.started);
    if (c->replay)
        hub_inspect_set_replay(c->rec, c->replay->of, c->replay->id);

    int nrc = hub_path_normalize(h->target, plen, norm, sizeof(norm), &nlen);
    if (nrc < 0) {
        status = nrc == CN_ETOOBIG ? 414 : 400;
        msg = "malformed request path";
        goto refuse_body;
    }
    /* Normalised after routing, so that a share logs malformed paths. */
    cn_buf_strcpy(c->info.path, sizeof(c->info.path), norm, nlen < 512 ? nlen : 512);
    /* Who asks, and for what: a share's policy, or the tunnel's own
     * basic auth. */
    if (share) {
        const char *paths[HUB_SHARE_PATHS_MAX];
        for (size_t i = 0; i < share->npaths; i++)
            paths[i] = share->paths[i];
        hub_share_rules_t rules = {
            .methods = share->methods,
            .paths = paths,
            .npaths = share->npaths,
            .rate_limit = share->rate_limit,
            .expires_at = share->expires_at,
            .revoked = share->revoked_at != HUB_TIME_NONE,
            .needs_auth = share->http_user[0] != 0,
        };
        hub_share_request_t sq = {.method = method, .path = norm, .path_len = nlen};
        /* A replay was asked for by an API token of the workspace, and the
         * recorded credentials were masked: the rest of the policy holds. */
        sq.auth_ok = !rules.needs_auth || c->replay ||
                     auth_ok(rt, h, share->http_user, share->http_password_hash);
        hub_share_window_t *w = share_window(rt, share->id);
        hub_share_window_t scratch = {0};
        hub_share_decision_t d = hub_share_decide(&rules, w ? w : &scratch, &sq, c->info.started);
        if (d.verdict != HUB_SHARE_ALLOW) {
            status = d.status;
            hub_metrics_share_rejection(rt->cfg.metrics, share_reject_reason(d.verdict));
            switch (d.verdict) {
            case HUB_SHARE_REVOKED:
                msg = "this share link was revoked";
                break;
            case HUB_SHARE_EXPIRED:
                msg = "this share link has expired";
                break;
            case HUB_SHARE_AUTH:
                msg = "this share needs a user name and password";
                snprintf(realm, sizeof(realm), "%s", share->name);
                extra.www_auth_realm = realm;
                break;
            case HUB_SHARE_METHOD:
                msg = "this share does not allow this method";
                hub_allow_format(hub_share_allowed_mask(&rules), allow, sizeof(allow));
                extra.allow = allow;
                break;
            case HUB_SHARE_PATH:
                msg = "this share does not allow this path";
                break;
            case HUB_SHARE_LIMIT:
                msg = "this share's rate limit is reached; retry later";
                extra.retry_after = d.retry_after_s;
                break;
            default:
                msg = "refused";
            }
            goto refuse_body;
        }
    } else if (t.http_user[0] && !c->replay && !auth_ok(rt, h, t.http_user, t.http_password_hash)) {
        status = 401;
        msg = "this tunnel needs a user name and password";
        snprintf(realm, sizeof(realm), "%s", t.name);
        extra.www_auth_realm = realm;
        goto refuse_body;
    }

    if (t.status == HUB_TUNNEL_PAUSED) {
        status = 503;
        msg = "this tunnel is paused";
        goto refuse_body;
    }
    if (t.status == HUB_TUNNEL_EXPIRED) {
        status = 410;
        msg = "this tunnel has expired";
        goto refuse_body;
    }
    /* A tunnel in error (its target failed a health probe, say) is still
     * tried while a link serves it, as the TCP edge's listeners do: the
     * answer then says what happens now (the target refusing: 502), and a
     * target that is back is served before the next probe notices. */
    session_t *s = hub_agents_route(rt, t.agent_id, t.id);
    if (!s) {
        status = 502;
        msg = "the agent serving this tunnel is offline";
        goto refuse_body;
    }
    if (rt->conns > rt->cfg.max_conns) {
        status = 503;
        msg = "the hub is at its connection limit";
        goto refuse_body;
    }

    /* Start the request: its head, rewritten, goes first on a stream. */
    r = req_new(c, s, t.id, t.agent_id, t.updated_at);
    if (!r) {
        status = 503;
        msg = "out of memory";
        goto refuse_body;
    }
    r->reqbody = body;
    r->head_request = method == HUB_HEAD;
    r->upgrade = hub_h1_find(h, "upgrade") && hub_h1_has_token(h, "connection", "upgrade");
    const char *target = h->target;
    size_t target_len = h->target_len;
    if (share && share->npaths) {
        /* What was checked is what the target gets. */
        size_t el = 0;
        if (hub_path_encode(norm, nlen, enc, sizeof(enc), &el) < 0) {
            status = 414;
            msg = "malformed request path";
            goto refuse_body;
        }
        if (q && el + (h->target_len - plen) >= sizeof(enc)) {
            /* Never forward the path without its query. */
            status = 414;
            msg = "request target too long once re-encoded";
            goto refuse_body;
        }
        if (q) {
            memcpy(enc + el, q, h->target_len - plen);
            el += h->target_len - plen;
        }
        target = enc;
        target_len = el;
    }
    bool strip_auth = share ? share->http_user[0] != 0 : t.http_user[0] != 0;
    if (build_head(c, h, r, host, target, target_len, strip_auth) < 0) {
        status = 431;
        msg = "the request head is too large";
        goto refuse_body;
    }
    bool expect = hub_h1_has_token(h, "expect", "100-continue");
    /* A request that is safe to send twice and has no body takes an idle
     * stream of the tunnel's pool, when there is one: no OPEN round trip,
     * no new target connection. */
    edge_req_t *pooled = NULL;
    if (rt->cfg.http_pool_max && body.done && !r->upgrade && (method & POOL_METHODS))
        pooled = pool_take(rt->edge, t.id, s->link, t.updated_at);
    if (pooled && cn_buf_append(&pooled->resend, cn_buf_data(&r->pending), r->pending.len) == 0) {
        cn_buf_t fresh = r->pending;
        r->pending = pooled->pending;
        pooled->pending = fresh;
        pooled->conn = c;
        pooled->reqbody = body;
        pooled->head_request = r->head_request;
        pooled->version = t.updated_at;
        pooled->from_pool = true;
        pooled->nreq++;
        req_free(r);
        r = pooled;
        cn_buf_consume(&c->in, head_len);
        c->req = r;
        c->state = C_WAIT;
        /* Reading stays on: a client waiting for its answer sends nothing,
         * and conn_read turns it off if it does (pipelining); toggling it
         * costs an epoll_ctl per request. */
        cancel_deadline(c);
        arm_response_timer(c);
        pump_request(c);
        hub_tunnel_clear(&t);
        return;
    }
    if (pooled) { /* out of memory for the copy: a new stream instead */
        pooled->conn = NULL;
        cn_buf_reset(&pooled->resend);
        cn_mux_reset(pooled->mux, pooled->id, CN_RST_CANCEL, "out of memory");
    }
    int rc = req_open(r, c);
    if (rc < 0) {
        status = 503;
        msg = "the agent's link cannot take another request now";
        goto refuse_body;
    }
    cn_buf_consume(&c->in, head_len);
    c->req = r;
    c->state = body.done ? C_WAIT : C_BODY;
    if (!body.done)
        set_rx(c, false); /* until the agent accepts the stream (else as above) */
    cancel_deadline(c);
    if (expect && !body.done && h->minor >= 1)
        out_printf(c, "HTTP/1.1 100 Continue\r\n\r\n"); /* we checked; send the body */
    if (body.done)
        arm_response_timer(c);
    cn_link_flush(r->link);
    if (c->out.len)
        flush_out(c);
    hub_tunnel_clear(&t);
    return;

refuse_body:
    /* An unread body would be taken for the next request. */
    if (body.kind != HUB_H1_BODY_NONE && !body.done)
        c->close_after = true;
answer:
    if (r)
        req_free(r);
    cn_buf_consume(&c->in, head_len);
    hub_tunnel_clear(&t);
    cn_log_debug("http %s: %d %s", c->client, status, msg);
    respond_error(c, status, msg, &extra);
    request_finished(c, false);
}

/* Parses what c->in holds while the connection waits for a head. */
static void process_heads(edge_conn_t *c)
{
    while (c->state == C_HEAD && c->in.len) {
        if (c->out.len > OUT_MAX / 2) {
            set_rx(c, false); /* many pipelined answers: let the client read */
            want_write(c);
            return;
        }
        hub_h1_head_t *h = malloc(sizeof(*h));
        if (!h) {
            conn_kill(c);
            return;
        }
        int rc = hub_h1_parse_request((const char *)cn_buf_data(&c->in), c->in.len, h);
        if (rc == 0) {
            free(h);
            if (c->in.len >= HUB_H1_HEAD_MAX) {
                c->close_after = true;
                respond_error(c, 431, "the request head is too large", NULL);
                request_finished(c, false);
            }
            return;
        }
        if (rc < 0) {
            free(h);
            c->close_after = true;
            memset(&c->info, 0, sizeof(c->info));
            respond_error(c, rc == CN_ETOOBIG ? 431 : 400,
                          rc == CN_ETOOBIG ? "the request head is too large"
                                           : "malformed HTTP request",
                          NULL);
            request_finished(c, false);
            return;
        }
        handle_request(c, h);
        free(h);
        if (c->state == C_BODY || c->state == C_WAIT)
            return;
    }
}

static void process_input(edge_conn_t *c)
{
    bool nested = c->in_input;
    c->in_input = true;
    process_heads(c);
    c->in_input = nested;
}

/* ---- the client socket -------------------------------------------------------------- */

static void conn_read(edge_conn_t *c)
{
    if (c->state == C_BODY || c->state == C_TUNNEL) {
        pump_request(c);
        return;
    }
    if (c->state != C_HEAD) {
        set_rx(c, false);
        return;
    }
    int fd = lws_get_socket_fd(c->wsi);
    for (;;) {
        int err = 0;
        size_t room = IN_MAX - c->in.len;
        if (!room) {
            set_rx(c, false);
            break;
        }
        uint8_t *dst = cn_buf_reserve(&c->in, room > 16384 ? 16384 : room, &err);
        if (!dst) {
            conn_kill(c);
            return;
        }
        ssize_t n = conn_recv(c, fd, dst, room > 16384 ? 16384 : room);
        if (n > 0) {
            cn_buf_commit(&c->in, (size_t)n);
            process_input(c);
            if (c->state != C_HEAD)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_kill(c); /* EOF or error between requests */
        return;
    }
}

static void conn_writable(edge_conn_t *c)
{
    if (c->ssl_read_on_write) { /* a TLS handshake step could not be sent */
        c->ssl_read_on_write = false;
        lws_sul_schedule(lws_get_context(c->wsi), 0, &c->sul_read, conn_read_cb, 1);
    }
    if (c->out.len && !flush_out_as(c, c->state == C_CLOSING))
        return;
    if (c->state == C_CLOSING) {
        conn_finish(c);
        return;
    }
    if (c->req && c->req->rstate != R_HEAD)
        pump_response(c);
    else if (c->state == C_HEAD) {
        set_rx(c, true);
        if (c->in.len)
            process_input(c);
    }
}

static void conn_closed(edge_conn_t *c)
{
    hub_runtime_t *rt = c->rt;
    struct hub_edge_http *e = rt->edge;
    lws_sul_cancel(&c->sul_write);
    cancel_deadline(c);
    lws_sul_cancel(&c->sul_read);
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->wsi = NULL;
    if (c->req) {
        if (!c->info.status)
            c->info.status = 499; /* the client went away first */
        log_request(c);
        req_detach(c->req, true);
    }
    hub_inspect_rec_free(c->rec);
    free(c->replay);
    for (edge_conn_t **pp = &e->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    cn_buf_free(&c->in);
    cn_buf_free(&c->out);
    rt->conns--;
    free(c);
}

static int conn_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    edge_conn_t *c = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (c)
            conn_read(c);
        return 0;
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        if (c)
            conn_writable(c);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (c) {
            lws_set_opaque_user_data(wsi, NULL);
            conn_closed(c);
        }
        return 0;
    default:
        return 0;
    }
}

/* A client connection on non-blocking socket `fd`, which it takes (closed
 * on failure); with `tls`, the TLS handshake runs inside its first reads.
 * NULL on failure. */
static edge_conn_t *conn_adopt(hub_runtime_t *rt, int fd, const char *ip, const char *client,
                               bool tls)
{
    struct hub_edge_http *e = rt->edge;
    edge_conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return NULL;
    }
    c->rt = rt;
    cn_buf_strcpy(c->client_ip, sizeof(c->client_ip), ip, SIZE_MAX);
    cn_buf_strcpy(c->client, sizeof(c->client), client, SIZE_MAX);
    cn_buf_init(&c->in, IN_MAX, 0);
    cn_buf_init(&c->out, OUT_MAX, 0);
    /* The handshake runs inside the first reads, under the head deadline. */
    if (tls && (!(c->ssl = SSL_new(e->ssl_ctx)) || SSL_set_fd(c->ssl, fd) != 1)) {
        SSL_free(c->ssl);
        hub_edge_refuse(fd);
        cn_buf_free(&c->in);
        cn_buf_free(&c->out);
        free(c);
        return NULL;
    }
    if (tls)
        SSL_set_accept_state(c->ssl);
    lws_sock_file_fd_type u;
    u.filefd = fd;
    c->wsi = lws_adopt_descriptor_vhost(rt->vh, LWS_ADOPT_RAW_FILE_DESC, u, CONN_PROTOCOL, NULL);
    if (!c->wsi) {
        SSL_free(c->ssl);
        close(fd);
        cn_buf_free(&c->in);
        cn_buf_free(&c->out);
        free(c);
        return NULL;
    }
    lws_set_opaque_user_data(c->wsi, c);
    c->rx_on = true;
    c->next = e->conns;
    e->conns = c;
    rt->conns++;
    arm_deadline(c, DEADLINE_HEAD);
    return c;
}

static void accept_one(hub_runtime_t *rt, int fd, const struct sockaddr_storage *ss, bool tls)
{
    /* Nothing to set: hub_accept made it non-blocking and close-on-exec,
     * and it has TCP_NODELAY from the listener (cn_sock_listen). */
    char addr[INET6_ADDRSTRLEN], client[64];
    int port = 0;
    hub_edge_peer(ss, addr, sizeof(addr), &port);
    snprintf(client, sizeof(client), "%s:%d", addr, port);
    if (rt->conns >= rt->cfg.max_conns) {
        hub_edge_refuse_counted(rt, fd, HUB_REF_HUB_LIMIT, "http edge", client);
        return;
    }
    conn_adopt(rt, fd, addr, client, tls);
}

/* ---- replay: a recorded request sent again through the edge ------------------------- */

/* The replay's client end: reads and drops the answer (the record has
 * it), and closes once the edge's end closes. */
static int sink_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    if (reason != LWS_CALLBACK_RAW_RX_FILE)
        return 0;
    int fd = lws_get_socket_fd(wsi);
    char buf[16384];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return 0;
    }
}

const struct lws_protocols hub_edge_http_sink_protocol = {
    .name = SINK_PROTOCOL,
    .callback = sink_callback,
};

int hub_runtime_replay(void *ctx, const char *workspace_id, uint64_t rid, uint64_t *new_id,
                       const char **why)
{
    hub_runtime_t *rt = ctx;
    hub_inspect_t *in = rt->cfg.inspect;
    const hub_inspect_rec_t *rec = hub_inspect_get(in, workspace_id, rid);
    char host[HUB_NAME_SIZE + 256], *req = NULL;
    size_t len = 0;
    int sv[2] = {-1, -1}, rc;
    if (!rec) {
        *why = "no such request (records are kept in memory for a while, see docs/guide.md)";
        return CN_ENOTFOUND;
    }
    if (!rt->edge || rt->edge->port < 0 || !rt->vh) {
        *why = "this hub runs no HTTP edge";
        return CN_EIO;
    }
    if (rec->share_id[0]) {
        snprintf(host, sizeof(host), "share-replay.%s", rt->cfg.public_domain);
    } else {
        hub_tunnel_t t = {0};
        rc = hub_store_tunnel_get(rt->cfg.store, workspace_id, rec->tunnel_id, &t);
        if (rc == 0)
            snprintf(host, sizeof(host), "%s.%s", t.name, rt->cfg.public_domain);
        hub_tunnel_clear(&t);
        if (rc < 0) {
            *why = "the request's tunnel no longer exists";
            return rc;
        }
    }
    rc = hub_inspect_replay_request(rec, host, &req, &len, why);
    if (rc < 0)
        return rc;
    edge_replay_t *rp = calloc(1, sizeof(*rp));
    rc = CN_EIO;
    *why = "the hub cannot open a connection to its own edge";
    if (!rp || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        goto fail;
    /* The request goes in whole before the edge reads it: a socket's
     * buffer holds a head and a body of at most HUB_INSPECT_BODY_MAX_LIMIT. */
    if (send(sv[1], req, len, MSG_NOSIGNAL) != (ssize_t)len)
        goto fail;
    lws_sock_file_fd_type u;
    u.filefd = sv[1];
    struct lws *sink =
        lws_adopt_descriptor_vhost(rt->vh, LWS_ADOPT_RAW_FILE_DESC, u, SINK_PROTOCOL, NULL);
    if (!sink)
        goto fail;
    sv[1] = -1; /* lws's now */
    snprintf(rp->workspace_id, sizeof(rp->workspace_id), "%s", workspace_id);
    snprintf(rp->tunnel_id, sizeof(rp->tunnel_id), "%s", rec->tunnel_id);
    snprintf(rp->share_id, sizeof(rp->share_id), "%s", rec->share_id);
    rp->of = rec->id;
    rp->id = hub_inspect_reserve(in);
    edge_conn_t *c = conn_adopt(rt, sv[0], "127.0.0.1", "replay", false);
    sv[0] = -1; /* conn_adopt took it */
    if (!c) {
        lws_set_timeout(sink, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        goto fail;
    }
    c->replay = rp;
    *new_id = rp->id;
    free(req);
    /* The bytes are already there: POLLIN says so on the next turn. */
    return 0;
fail:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    free(rp);
    free(req);
    return rc;
}

static int listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    hub_runtime_t *rt = lws_get_opaque_user_data(wsi);
    if (reason != LWS_CALLBACK_RAW_RX_FILE || !rt)
        return 0;
    bool tls = wsi == rt->edge->tls_listen_wsi;
    int lfd = lws_get_socket_fd(wsi);
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = hub_accept(lfd, &ss, &sl, "http edge");
        if (fd < 0)
            break;
        accept_one(rt, fd, &ss, tls);
    }
    return 0;
}

const struct lws_protocols hub_edge_http_listen_protocol = {
    .name = LISTEN_PROTOCOL,
    .callback = listen_callback,
};
const struct lws_protocols hub_edge_http_conn_protocol = {
    .name = CONN_PROTOCOL,
    .callback = conn_callback,
};

/* ---- the periodic work: the access log, share expiry -------------------------------- */

/* Revocation and expiry end a share's requests in flight too (a long
 * download, an upgraded WebSocket), not only the next request: once a
 * second each share in use is read again, and the connections of one that
 * is gone are reset (RST: the client must not take a cut response for a
 * whole one); its idle keep-alive connections are closed. */
static void cut_dead_shares(struct hub_edge_http *e, int64_t now)
{
    hub_share_t *sh = NULL;
    for (edge_conn_t *c = e->conns; c; c = c->next) {
        if (!c->share_id[0] || !c->wsi || c->state == C_CLOSING)
            continue;
        if (!sh && !(sh = malloc(sizeof(*sh))))
            return;
        int rc =
            hub_share_cache_share_get(e->rt->cache, e->rt->cfg.store, c->share_ws, c->share_id, sh);
        if (rc < 0 && rc != CN_ENOTFOUND)
            continue; /* a store error is not a revocation */
        if (rc == 0 && sh->revoked_at == HUB_TIME_NONE &&
            (sh->expires_at == HUB_TIME_NONE || sh->expires_at > now))
            continue;
        const char *why = rc < 0 || sh->revoked_at != HUB_TIME_NONE ? "revoked" : "expired";
        if (c->req) {
            cn_log_info("http %s: share %s %s, its request in flight is cut", c->client,
                        c->share_id, why);
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            int fd = lws_get_socket_fd(c->wsi);
            if (fd >= 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            c->info.status = 410;
        } else {
            cn_log_debug("http %s: share %s %s, its idle connection is closed", c->client,
                         c->share_id, why);
        }
        c->share_id[0] = '\0';
        conn_kill(c);
    }
    free(sh);
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    struct hub_edge_http *e = lws_container_of(sul, struct hub_edge_http, tick);
    hub_store_t *st = e->rt->cfg.store;
    size_t n = 0;
    hub_shares_expire_due(st, &n);
    hub_reach_share_sweep(e->rt); /* TCP shares end within a tick too */
    int64_t now = now_ms(e->rt);
    cut_dead_shares(e, now);
    hub_inspect_sweep(e->rt->cfg.inspect, now);
    if (now - e->last_prune > 60000) {
        e->last_prune = now;
        hub_store_share_log_prune(st, now - HUB_SHARE_LOG_RETENTION_MS, NULL);
    }
    lws_sul_schedule(e->rt->ctx, 0, &e->tick, tick_cb, (lws_usec_t)TICK_MS * LWS_US_PER_MS);
}

/* ---- lifecycle ------------------------------------------------------------------------- */

int hub_edge_http_init(hub_runtime_t *rt)
{
    struct hub_edge_http *e = calloc(1, sizeof(*e));
    if (!e)
        return CN_ENOMEM;
    e->rt = rt;
    e->port = -1;
    e->deadlines[DEADLINE_HEAD].len_us = (lws_usec_t)HEAD_TIMEOUT_MS * LWS_US_PER_MS;
    e->deadlines[DEADLINE_IDLE].len_us = (lws_usec_t)IDLE_TIMEOUT_MS * LWS_US_PER_MS;
    for (int i = 0; i < DEADLINE_QUEUES; i++)
        e->deadlines[i].rt = rt;
    e->windows_prune_at = WINDOWS_PRUNE_AT;
    rt->edge = e;
    return 0;
}

/* The HTTPS port's TLS configuration: TLS 1.2 or later, the certificate
 * chain and key serve --tls-cert/--tls-key name (the API's own), writes
 * that may return early and move between calls, as send(2) does. */
static SSL_CTX *server_ssl_ctx(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        unsigned long why = ERR_get_error();
        cn_log_error("https edge: cannot load the certificate and key: %s",
                     why ? ERR_reason_error_string(why) : "out of memory");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    return ctx;
}

/* Opens one listening socket of the edge (the HTTP or the HTTPS port). */
static int open_listener(hub_runtime_t *rt, const char *what, int want, bool fallback,
                         struct lws **wsi, int *port)
{
    int bound = 0;
    int fd = cn_sock_listen(rt->tcp_host, want, LISTEN_BACKLOG, &bound);
    if (fd < 0 && fallback && want) {
        cn_log_warn("%s edge: port %d is taken; letting the kernel pick one", what, want);
        fd = cn_sock_listen(rt->tcp_host, 0, LISTEN_BACKLOG, &bound);
    }
    if (fd < 0) {
        cn_log_error("%s edge: cannot listen on %s:%d: %s", what, rt->tcp_host, want,
                     strerror(errno));
        return CN_EIO;
    }
    lws_sock_file_fd_type u;
    u.filefd = fd;
    *wsi = lws_adopt_descriptor_vhost(rt->vh, LWS_ADOPT_RAW_FILE_DESC, u, LISTEN_PROTOCOL, NULL);
    if (!*wsi) {
        close(fd);
        return CN_ENOMEM;
    }
    lws_set_opaque_user_data(*wsi, rt);
    *port = bound;
    cn_log_info("%s edge: listening on %s:%d for *.%s", what, rt->tcp_host, bound,
                rt->cfg.public_domain);
    return 0;
}

int hub_edge_http_start(hub_runtime_t *rt)
{
    struct hub_edge_http *e = rt->edge;
    lws_sul_schedule(rt->ctx, 0, &e->tick, tick_cb, (lws_usec_t)TICK_MS * LWS_US_PER_MS);
    if (rt->cfg.http_port < 0)
        return 0;
    int rc = open_listener(rt, "http", rt->cfg.http_port, rt->cfg.http_port_fallback,
                           &e->listen_wsi, &e->port);
    if (rc < 0 || !rt->cfg.tls_cert || rt->cfg.https_port < 0)
        return rc;
    e->ssl_ctx = server_ssl_ctx(rt->cfg.tls_cert, rt->cfg.tls_key);
    if (!e->ssl_ctx)
        return CN_EIO;
    return open_listener(rt, "https", rt->cfg.https_port, rt->cfg.https_port_fallback,
                         &e->tls_listen_wsi, &e->tls_port);
}

int hub_edge_http_tls_port(const hub_runtime_t *rt)
{
    return rt && rt->edge && rt->edge->tls_listen_wsi ? rt->edge->tls_port : -1;
}

int hub_edge_http_port(const hub_runtime_t *rt)
{
    return rt && rt->edge ? rt->edge->port : -1;
}

void hub_edge_http_sync_agent(hub_runtime_t *rt, const char *agent_id,
                              const hub_tunnel_list_t *list, const char *only)
{
    struct hub_edge_http *e = rt->edge;
    if (!e)
        return;
    for (edge_pool_t *p = e->pools, *next; p; p = next) {
        next = p->next; /* pool_drop frees p */
        if (strcmp(p->agent_id, agent_id) || (only && strcmp(p->tunnel_id, only)))
            continue;
        const hub_tunnel_t *t = hub_tunnel_list_find(list, p->tunnel_id);
        if (t && t->status != HUB_TUNNEL_PAUSED && t->status != HUB_TUNNEL_EXPIRED &&
            t->updated_at == p->version)
            continue;
        pool_drop(p, !t                                ? "the tunnel was deleted"
                     : t->status == HUB_TUNNEL_PAUSED  ? "the tunnel was paused"
                     : t->status == HUB_TUNNEL_EXPIRED ? "the tunnel expired"
                                                       : "the tunnel changed");
    }
}

size_t hub_edge_http_pooled(const hub_runtime_t *rt)
{
    return rt && rt->edge ? rt->edge->npooled : 0;
}

void hub_edge_http_close_all(hub_runtime_t *rt)
{
    struct hub_edge_http *e = rt->edge;
    if (!e)
        return;
    while (e->pools)
        pool_drop(e->pools, "the hub is stopping");
    lws_sul_cancel(&e->tick);
    for (int i = 0; i < DEADLINE_QUEUES; i++)
        lws_sul_cancel(&e->deadlines[i].sul);
    if (e->listen_wsi) {
        lws_set_opaque_user_data(e->listen_wsi, NULL);
        lws_set_timeout(e->listen_wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    if (e->tls_listen_wsi) {
        lws_set_opaque_user_data(e->tls_listen_wsi, NULL);
        lws_set_timeout(e->tls_listen_wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    for (edge_conn_t *c = e->conns; c; c = c->next)
        conn_kill(c);
}

void hub_edge_http_free(hub_runtime_t *rt)
{
    struct hub_edge_http *e = rt->edge;
    if (!e)
        return;
    while (e->conns) {
        edge_conn_t *c = e->conns;
        e->conns = c->next;
        SSL_free(c->ssl);
        cn_buf_free(&c->in);
        cn_buf_free(&c->out);
        hub_inspect_rec_free(c->rec);
        free(c->replay);
        free(c);
    }
    for (size_t b = 0; b < WINDOW_BUCKETS; b++)
        while (e->windows[b]) {
            share_window_t *w = e->windows[b];
            e->windows[b] = w->next;
            free(w);
        }
    while (e->pools) /* close_all emptied them; their streams are the links' */
        pool_free(e, e->pools);
    SSL_CTX_free(e->ssl_ctx);
    free(e);
    rt->edge = NULL;
}
