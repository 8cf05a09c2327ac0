/* UDP flows over streams (see cn_udp.h): a listening socket demultiplexed
 * by sender into streams, and a connected socket per stream on the target
 * side; datagrams travel as DATAGRAM frames, or as end-to-end records for
 * reach. */
#include "cn_udp.h"

#include "cn_e2e.h"
#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_frame.h"
#include "cn_log.h"
#include "cn_mux.h"
#include "cn_pipe.h"
#include "cn_time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define UDP_PROTOCOL "cn-udp"
#define READS_PER_EVENT 64
#define SWEEP_US (1000 * LWS_US_PER_MS)
/* Datagrams a flow keeps while its end-to-end handshake runs (a DNS
 * query must not be lost to the handshake), in bytes. */
#define PENDING_MAX (64u * 1024u)
#define MSG_HDR 2 /* [u16 length] before each datagram inside end-to-end records */

/* What lws's opaque pointer leads to: listeners and dialed flows alike. */
typedef struct sockh {
    void (*on_rx)(struct sockh *h, struct lws *wsi);
    void (*on_close)(struct sockh *h);
} sockh_t;

#define CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

typedef struct flow flow_t;

struct cn_udp_listener {
    sockh_t h;
    struct lws *wsi;
    struct lws_context *cx;
    int fd;
    uint8_t kind;
    char ref[64];
    char name[128];
    uint32_t idle_ms;
    unsigned max_flows;
    bool has_e2e;
    uint8_t e2e_sk[32], e2e_peer[32];
    cn_link_t *(*route)(void *ctx, const char **why);
    void *ctx;
    flow_t *flows;
    unsigned nflows;
    bool closing, sock_done;
    lws_sorted_usec_list_t sul_sweep;
    uint64_t last_drop_log;
};

struct flow {
    const cn_stream_ops_t *ops; /* first: stream dispatch */
    sockh_t h;                  /* dialed flows: their own socket */
    cn_udp_listener_t *l;       /* listener flows; NULL when dialed */
    flow_t *next;
    struct sockaddr_storage addr; /* listener flows: the sender */
    socklen_t alen;
    cn_link_t *link;
    cn_mux_t *mux;
    uint32_t id;
    struct lws *wsi; /* dialed flows */
    int fd;          /* the socket datagrams go out on */
    cn_e2e_t *e2e;
    cn_buf_t pending; /* [u16 len][datagram]... waiting for the handshake */
    bool open, stream_done, sock_done;
    bool ending; /* reset by us (idle, paused, closing): its closed event follows */
    uint64_t last_ms;
    uint64_t dropped;
    char label[256];
};

static void flow_free(flow_t *f)
{
    cn_e2e_free(f->e2e);
    cn_buf_free(&f->pending);
    free(f);
}

static void listener_maybe_free(cn_udp_listener_t *l)
{
    if (l->closing && l->sock_done && !l->nflows) {
        lws_sul_cancel(&l->sul_sweep);
        free(l);
    }
}

/* ---- sending into the stream ----------------------------------------------- */

/* Moves end-to-end records to the stream as credit allows. True when
 * nothing is left. */
static bool wire_flush(flow_t *f)
{
    cn_buf_t *w = cn_e2e_wire(f->e2e);
    while (w->len && f->open && !f->stream_done) {
        int n = cn_mux_write(f->mux, f->id, cn_buf_data(w), w->len);
        if (n <= 0)
            return false;
        cn_buf_consume(w, (size_t)n);
    }
    return w->len == 0;
}

/* One datagram as one record [u16 len][data]; dropped when the previous
 * record still waits for credit. */
static bool seal_datagram(flow_t *f, const uint8_t *data, size_t len)
{
    size_t cap = 0;
    uint8_t *dst = wire_flush(f) ? cn_e2e_seal_space(f->e2e, &cap) : NULL;
    if (!dst || cap < MSG_HDR + len)
        return false;
    dst[0] = (uint8_t)(len >> 8);
    dst[1] = (uint8_t)len;
    memcpy(dst + MSG_HDR, data, len);
    if (cn_e2e_seal_commit(f->e2e, MSG_HDR + len) < 0)
        return false;
    wire_flush(f);
    return true;
}

static void send_pending(flow_t *f)
{
    cn_buf_t *p = &f->pending;
    while (p->len >= MSG_HDR) {
        const uint8_t *d = cn_buf_data(p);
        size_t n = ((size_t)d[0] << 8) | d[1];
        if (!seal_datagram(f, d + MSG_HDR, n))
            return;
        cn_buf_consume(p, MSG_HDR + n);
    }
}

/* A datagram from the local side (client or target) into the stream. */
static void flow_send(flow_t *f, const uint8_t *data, size_t len)
{
    bool ok;
    f->last_ms = cn_time_mono_ms();
    if (!f->e2e) {
        ok = cn_mux_send_datagram(f->mux, f->id, data, len) == 0;
    } else if (!f->open || !cn_e2e_ready(f->e2e) || f->pending.len) {
        /* Handshaking: keep it (bounded) for when the keys are there. */
        uint8_t hdr[MSG_HDR] = {(uint8_t)(len >> 8), (uint8_t)len};
        ok = f->pending.len + MSG_HDR + len <= PENDING_MAX &&
             cn_buf_append(&f->pending, hdr, MSG_HDR) == 0 &&
             cn_buf_append(&f->pending, data, len) == 0;
        if (f->open && cn_e2e_ready(f->e2e))
            send_pending(f);
    } else {
        ok = seal_datagram(f, data, len);
    }
    if (!ok && f->dropped++ == 0)
        cn_log_info("%s: datagram dropped (stream busy); further drops are counted", f->label);
    cn_link_flush(f->link);
}

/* ---- receiving from the stream ----------------------------------------------- */

static void deliver(flow_t *f, const uint8_t *data, size_t len)
{
    ssize_t n;
    f->last_ms = cn_time_mono_ms();
    if (f->l)
        n = sendto(f->fd, data, len, MSG_DONTWAIT, (const struct sockaddr *)&f->addr, f->alen);
    else
        n = send(f->fd, data, len, MSG_DONTWAIT);
    if (n < 0 && f->dropped++ == 0)
        cn_log_info("%s: datagram not delivered: %s", f->label, strerror(errno));
}

/* A mux call that must succeed did not: the flow ends (its closed event
 * frees it). */
static void flow_end(flow_t *f, int rc)
{
    cn_log_debug("%s: stream call failed (%s): flow ended", f->label, cn_strerror(rc));
    f->ending = true;
    cn_mux_reset(f->mux, f->id, CN_RST_INTERNAL, "stream failure");
    cn_link_flush(f->link);
}

static void flow_fail(flow_t *f, int rc)
{
    cn_log_warn("%s: end-to-end %s failed (%s): flow closed", f->label,
                cn_e2e_ready(f->e2e) ? "channel" : "handshake", cn_strerror(rc));
    cn_mux_reset(f->mux, f->id, CN_RST_PROTOCOL, "end-to-end authentication failed");
    cn_link_flush(f->link);
}

/* End-to-end flows: records off the stream, datagrams out of them. */
static void e2e_pump(flow_t *f)
{
    cn_buf_t *plain = cn_e2e_plain(f->e2e);
    while (f->open && !f->stream_done && !cn_e2e_error(f->e2e)) {
        const uint8_t *src;
        size_t len;
        int rc = cn_mux_peek(f->mux, f->id, &src, &len);
        if (rc == 0) {
            rc = cn_mux_shutdown(f->mux, f->id); /* the peer ended the flow */
            if (rc < 0)
                flow_end(f, rc);
            break;
        }
        if (rc < 0)
            break;
        if (len > CN_E2E_MAX_FEED)
            len = CN_E2E_MAX_FEED;
        rc = cn_e2e_feed(f->e2e, src, len);
        if (rc) {
            flow_fail(f, rc);
            return;
        }
        rc = cn_mux_consume(f->mux, f->id, len);
        if (rc < 0) {
            flow_end(f, rc);
            return;
        }
        while (plain->len >= MSG_HDR) {
            const uint8_t *d = cn_buf_data(plain);
            size_t n = ((size_t)d[0] << 8) | d[1];
            if (plain->len < MSG_HDR + n)
                break; /* cannot happen: one record holds whole datagrams */
            deliver(f, d + MSG_HDR, n);
            cn_buf_consume(plain, MSG_HDR + n);
        }
        if (plain->len) {
            flow_fail(f, CN_EPROTO);
            return;
        }
        wire_flush(f); /* handshake answers */
        if (cn_e2e_ready(f->e2e))
            send_pending(f);
    }
    cn_link_flush(f->link);
}

/* ---- stream events ------------------------------------------------------------- */

static void op_accepted(void *self)
{
    flow_t *f = self;
    f->open = true;
    if (f->e2e) {
        if (cn_e2e_start(f->e2e) < 0) {
            flow_fail(f, cn_e2e_error(f->e2e));
            return;
        }
        wire_flush(f);
        cn_link_flush(f->link);
    }
}

static void op_readable(void *self)
{
    flow_t *f = self;
    if (f->e2e) {
        e2e_pump(f);
        return;
    }
    /* Plain flows carry no DATA: drain whatever a peer sent anyway. */
    const uint8_t *src;
    size_t len;
    int rc;
    while ((rc = cn_mux_peek(f->mux, f->id, &src, &len)) > 0) {
        rc = cn_mux_consume(f->mux, f->id, len);
        if (rc < 0) {
            flow_end(f, rc);
            return;
        }
    }
    if (rc == 0 && (rc = cn_mux_shutdown(f->mux, f->id)) < 0)
        flow_end(f, rc);
}

static void op_writable(void *self)
{
    flow_t *f = self;
    if (f->e2e && wire_flush(f) && cn_e2e_ready(f->e2e))
        send_pending(f);
    cn_link_flush(f->link);
}

static void op_datagram(void *self, const uint8_t *data, size_t len)
{
    flow_t *f = self;
    if (!f->e2e)
        deliver(f, data, len);
}

static void op_reset(void *self, uint32_t code, const char *msg, size_t len)
{
    flow_t *f = self;
    cn_log_debug("%s: reset (%u: %.*s)", f->label, (unsigned)code, (int)(len > 100 ? 100 : len),
                 msg ? msg : "");
}

static void op_closed(void *self)
{
    flow_t *f = self;
    f->stream_done = true;
    if (f->dropped)
        cn_log_info("%s: flow ended, %llu datagrams dropped", f->label,
                    (unsigned long long)f->dropped);
    cn_udp_listener_t *l = f->l;
    if (l) {
        for (flow_t **pp = &l->flows; *pp; pp = &(*pp)->next)
            if (*pp == f) {
                *pp = f->next;
                break;
            }
        l->nflows--;
        flow_free(f);
        listener_maybe_free(l);
        return;
    }
    if (!f->sock_done && f->wsi) {
        lws_set_timeout(f->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return; /* freed when lws reports the socket closed */
    }
    flow_free(f);
}

static const cn_stream_ops_t flow_ops = {
    .accepted = op_accepted,
    .readable = op_readable,
    .writable = op_writable,
    .reset = op_reset,
    .closed = op_closed,
    .datagram = op_datagram,
};

/* ---- the lws protocol ---------------------------------------------------------- */

static int udp_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    sockh_t *h = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (h)
            h->on_rx(h, wsi);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (h) {
            lws_set_opaque_user_data(wsi, NULL);
            h->on_close(h);
        }
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols udp_protocol = {
    .name = UDP_PROTOCOL,
    .callback = udp_callback,
};

const struct lws_protocols *cn_udp_protocol(void)
{
    return &udp_protocol;
}

static struct lws *adopt(struct lws_vhost *vh, int fd, sockh_t *h)
{
    lws_sock_file_fd_type u;
    u.filefd = fd;
    struct lws *wsi =
        lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, u, UDP_PROTOCOL, NULL);
    if (wsi)
        lws_set_opaque_user_data(wsi, h);
    return wsi;
}

/* ---- listener ------------------------------------------------------------------ */

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
    }
    snprintf(out, len, ss->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
}

static void drop_log(cn_udp_listener_t *l, const char *from, const char *why)
{
    uint64_t now = cn_time_mono_ms();
    if (now - l->last_drop_log < 1000)
        return; /* one line a second at most */
    l->last_drop_log = now;
    cn_log_warn("udp %s: datagram from %s dropped: %s", l->name, from, why);
}

static flow_t *flow_find(cn_udp_listener_t *l, const struct sockaddr_storage *ss, socklen_t alen)
{
    for (flow_t *f = l->flows; f; f = f->next)
        if (!f->ending && !f->stream_done && f->alen == alen && !memcmp(&f->addr, ss, alen))
            return f;
    return NULL;
}

static flow_t *flow_open(cn_udp_listener_t *l, const struct sockaddr_storage *ss, socklen_t alen,
                         const char *from)
{
    const char *why = "no route";
    if (l->nflows >= l->max_flows) {
        drop_log(l, from, "too many flows");
        return NULL;
    }
    cn_link_t *link = l->route(l->ctx, &why);
    if (!link) {
        drop_log(l, from, why ? why : "no route");
        return NULL;
    }
    flow_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->ops = &flow_ops;
    f->l = l;
    memcpy(&f->addr, ss, alen);
    f->alen = alen;
    f->link = link;
    f->mux = cn_link_mux(link);
    f->fd = l->fd;
    f->last_ms = cn_time_mono_ms();
    cn_buf_init(&f->pending, PENDING_MAX, 0);
    snprintf(f->label, sizeof(f->label), "udp %s flow %s", l->name, from);
    if (l->has_e2e) {
        cn_e2e_config_t ec = {CN_E2E_INITIATOR, l->e2e_sk, l->e2e_peer, l->ref};
        f->e2e = cn_e2e_new(&ec, NULL, 0);
        if (!f->e2e) {
            flow_free(f);
            return NULL;
        }
    }
    char meta[96];
    int mlen = snprintf(meta, sizeof(meta), "{\"client\":\"%s\"}", from);
    int rc = cn_mux_open(f->mux, l->kind, (const uint8_t *)l->ref, strlen(l->ref),
                         l->has_e2e ? NULL : (const uint8_t *)meta, l->has_e2e ? 0 : (size_t)mlen,
                         f, &f->id);
    if (rc < 0) {
        drop_log(l, from, cn_strerror(rc));
        flow_free(f);
        return NULL;
    }
    f->next = l->flows;
    l->flows = f;
    l->nflows++;
    cn_log_info("%s: opened", f->label);
    return f;
}

static void listener_rx(sockh_t *h, struct lws *wsi)
{
    cn_udp_listener_t *l = CONTAINER(h, cn_udp_listener_t, h);
    static uint8_t buf[65536];
    for (int i = 0; i < READS_PER_EVENT; i++) {
        struct sockaddr_storage ss = {0};
        socklen_t alen = sizeof(ss);
        ssize_t n = recvfrom(l->fd, buf, sizeof(buf), MSG_TRUNC | MSG_DONTWAIT,
                             (struct sockaddr *)&ss, &alen);
        if (n < 0)
            break;
        if (l->closing)
            continue;
        char from[INET6_ADDRSTRLEN + 16];
        addr_text(&ss, from, sizeof(from));
        if ((size_t)n > CN_UDP_MAX_DATAGRAM) {
            cn_log_debug("udp %s: datagram of %zd bytes from %s above the limit, dropped", l->name,
                         n, from);
            continue;
        }
        flow_t *f = flow_find(l, &ss, alen);
        if (!f)
            f = flow_open(l, &ss, alen, from);
        if (f)
            flow_send(f, buf, (size_t)n);
    }
}

static void listener_closed(sockh_t *h)
{
    cn_udp_listener_t *l = CONTAINER(h, cn_udp_listener_t, h);
    l->sock_done = true;
    l->wsi = NULL;
    if (!l->closing) {
        /* lws dropped the socket (context going away): end the flows. */
        cn_udp_listener_close(l, CN_RST_GONE);
        return;
    }
    listener_maybe_free(l);
}

/* Flows idle for idle_ms end; the next datagram of the sender opens a new
 * one. */
static void sweep(lws_sorted_usec_list_t *sul)
{
    cn_udp_listener_t *l = lws_container_of(sul, cn_udp_listener_t, sul_sweep);
    uint64_t now = cn_time_mono_ms();
    for (flow_t *f = l->flows; f; f = f->next)
        if (!f->stream_done && !f->ending && now - f->last_ms >= l->idle_ms) {
            cn_log_info("%s: idle for %u s, closed", f->label, (unsigned)(l->idle_ms / 1000));
            f->ending = true;
            cn_mux_reset(f->mux, f->id, CN_RST_CANCEL, "idle");
            cn_link_flush(f->link);
        }
    if (!l->closing)
        lws_sul_schedule(l->cx, 0, &l->sul_sweep, sweep, SWEEP_US);
}

cn_udp_listener_t *cn_udp_listen(struct lws_vhost *vh, const char *host, int port,
                                 const cn_udp_listener_config_t *cfg, int *bound_port, char *err,
                                 size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char portstr[8];
    int fd = -1, one = 1;
    if (!vh || !host || !cfg || !cfg->ref || !cfg->route || port < 0 || port > 65535 ||
        strlen(cfg->ref) >= sizeof(((cn_udp_listener_t *)0)->ref)) {
        cn_errf(CN_EINVAL, err, errlen, "udp: bad configuration");
        return NULL;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE | AI_NUMERICHOST;
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res) {
        cn_errf(CN_EINVAL, err, errlen, "udp: %s is not an address", host);
        return NULL;
    }
    fd = socket(res->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        int e = errno;
        freeaddrinfo(res);
        if (fd >= 0)
            close(fd);
        cn_errf(CN_EIO, err, errlen, "cannot bind UDP %s:%d: %s", host, port, strerror(e));
        return NULL;
    }
    freeaddrinfo(res);
    /* Bursts (a DNS client's retries, a benchmark) wait in the kernel. */
    int rcv = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    int bound = cn_sock_bound_port(fd);
    if (bound < 0) {
        close(fd);
        cn_errf(CN_EIO, err, errlen, "cannot read the UDP socket's port: %s", strerror(errno));
        return NULL;
    }
    if (bound_port)
        *bound_port = bound;
    cn_udp_listener_t *l = calloc(1, sizeof(*l));
    if (!l) {
        close(fd);
        cn_errf(CN_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    l->h = (sockh_t){listener_rx, listener_closed};
    l->fd = fd;
    l->kind = cfg->kind;
    snprintf(l->ref, sizeof(l->ref), "%s", cfg->ref);
    snprintf(l->name, sizeof(l->name), "%s", cfg->name ? cfg->name : cfg->ref);
    l->idle_ms = cfg->idle_ms ? cfg->idle_ms : CN_UDP_DEFAULT_IDLE_MS;
    l->max_flows = cfg->max_flows ? cfg->max_flows : CN_UDP_DEFAULT_MAX_FLOWS;
    l->route = cfg->route;
    l->ctx = cfg->ctx;
    if (cfg->e2e) {
        l->has_e2e = true;
        memcpy(l->e2e_sk, cfg->e2e->local_private, 32);
        memcpy(l->e2e_peer, cfg->e2e->peer_public, 32);
    }
    l->wsi = adopt(vh, fd, &l->h);
    if (!l->wsi) {
        close(fd);
        free(l);
        cn_errf(CN_EIO, err, errlen, "cannot watch the UDP socket");
        return NULL;
    }
    l->cx = lws_get_context(l->wsi);
    lws_sul_schedule(l->cx, 0, &l->sul_sweep, sweep, SWEEP_US);
    return l;
}

void cn_udp_listener_close(cn_udp_listener_t *l, uint32_t code)
{
    if (!l || l->closing)
        return;
    l->closing = true;
    lws_sul_cancel(&l->sul_sweep);
    for (flow_t *f = l->flows; f; f = f->next)
        if (!f->stream_done) {
            cn_mux_reset(f->mux, f->id, code, "closed");
            cn_link_flush(f->link);
        }
    if (l->wsi && !l->sock_done)
        lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    listener_maybe_free(l);
}

void cn_udp_listener_reset_flows(cn_udp_listener_t *l, uint32_t code)
{
    if (!l)
        return;
    for (flow_t *f = l->flows; f; f = f->next)
        if (!f->stream_done && !f->ending) {
            f->ending = true;
            cn_mux_reset(f->mux, f->id, code, "flow ended by the hub");
            cn_link_flush(f->link);
        }
}

unsigned cn_udp_listener_flows(const cn_udp_listener_t *l)
{
    return l ? l->nflows : 0;
}

/* ---- dialed flows (target side) ------------------------------------------------ */

static void dialed_rx(sockh_t *h, struct lws *wsi)
{
    flow_t *f = CONTAINER(h, flow_t, h);
    static uint8_t buf[65536];
    for (int i = 0; i < READS_PER_EVENT && !f->stream_done; i++) {
        ssize_t n = recv(f->fd, buf, sizeof(buf), MSG_TRUNC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            continue; /* ECONNREFUSED from an earlier send: UDP carries on */
        }
        if ((size_t)n > CN_UDP_MAX_DATAGRAM)
            continue;
        flow_send(f, buf, (size_t)n);
    }
}

static void dialed_closed(sockh_t *h)
{
    flow_t *f = CONTAINER(h, flow_t, h);
    f->sock_done = true;
    f->wsi = NULL;
    if (f->stream_done) {
        flow_free(f);
        return;
    }
    /* The socket went first: end the stream; its closed event frees f. */
    f->wsi = NULL;
    cn_mux_reset(f->mux, f->id, CN_RST_CANCEL, "target socket closed");
    cn_link_flush(f->link);
}

int cn_udp_dial(struct lws_vhost *vh, cn_link_t *link, uint32_t id, const char *host, int port,
                const struct cn_e2e_config *e2e, const char *label)
{
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[8];
    int fd = -1;
    if (!vh || !link || !host || port <= 0 || port > 65535)
        return CN_EINVAL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res)
        return CN_EREFUSED;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return CN_EREFUSED;
    flow_t *f = calloc(1, sizeof(*f));
    if (!f) {
        close(fd);
        return CN_ENOMEM;
    }
    f->ops = &flow_ops;
    f->h = (sockh_t){dialed_rx, dialed_closed};
    f->link = link;
    f->mux = cn_link_mux(link);
    f->id = id;
    f->fd = fd;
    f->last_ms = cn_time_mono_ms();
    cn_buf_init(&f->pending, PENDING_MAX, 0);
    snprintf(f->label, sizeof(f->label), "%s", label ? label : "udp flow");
    if (e2e) {
        f->e2e = cn_e2e_new(e2e, NULL, 0);
        if (!f->e2e) {
            close(fd);
            flow_free(f);
            return CN_EINVAL;
        }
    }
    f->wsi = adopt(vh, fd, &f->h);
    if (!f->wsi) {
        close(fd);
        flow_free(f);
        return CN_ENOMEM;
    }
    /* Accept at once: datagrams right behind the OPEN must not be lost. */
    if (cn_mux_accept(f->mux, id, f) < 0) {
        f->stream_done = true; /* the socket's close frees f */
        lws_set_timeout(f->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return CN_ESTATE;
    }
    f->open = true;
    cn_link_flush(link);
    return 0;
}
