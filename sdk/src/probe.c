/* Non-blocking health probes (see probe.h). Each probe walks CONNECTING ->
 * SENDING -> READING -> done; probe_runner_step() polls every socket once
 * and collects finished probes before calling back, so a callback may start
 * the next probe for the same key. */
#include "probe.h"

#include "cn_buf.h"
#include "cn_err.h"
#include "cn_resolve.h"
#include "cn_time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum probe_state { P_RESOLVING, P_CONNECTING, P_SENDING, P_READING, P_DONE };

typedef struct probe {
    char key[PROBE_KEY_MAX + 1];
    enum probe_state st;
    int fd;
    struct addrinfo *addrs, *next_addr; /* addresses still to try */
    cn_resolve_req_t *resolving;        /* a name being resolved off the thread */
    char host[256];
    uint8_t req[CN_PLUGIN_REQUEST_MAX];
    size_t req_len, req_off;
    cn_buf_t reply;
    const cn_plugin_t *plugin; /* judge with plugin->probe_reply when set */
    probe_judge_fn judge;
    void *judge_ctx;
    bool wait_reply; /* read and judge even when nothing was sent */
    uint64_t started, deadline;
    unsigned timeout_ms;
    probe_done_fn done;
    void *user;
    probe_result_t res;
} probe_t;

struct probe_runner {
    probe_t **v;
    size_t n, cap;
};

probe_runner_t *probe_runner_new(void)
{
    return calloc(1, sizeof(probe_runner_t));
}

static void probe_free(probe_t *p)
{
    cn_resolve_cancel(p->resolving);
    if (p->fd >= 0)
        close(p->fd);
    if (p->addrs)
        freeaddrinfo(p->addrs);
    cn_buf_free(&p->reply);
    free(p);
}

void probe_runner_free(probe_runner_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        probe_free(r->v[i]);
    free(r->v);
    free(r);
}

static ssize_t find(const probe_runner_t *r, const char *key)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i]->key, key))
            return (ssize_t)i;
    return -1;
}

bool probe_runner_busy(const probe_runner_t *r, const char *key)
{
    return key && find(r, key) >= 0;
}

size_t probe_runner_active(const probe_runner_t *r)
{
    return r->n;
}

static void finish(probe_t *p, bool up, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void finish(probe_t *p, bool up, int err, const char *fmt, ...)
{
    p->st = P_DONE;
    p->res.up = up;
    p->res.err = up ? 0 : err;
    p->res.why[0] = '\0';
    if (!up && fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->res.why, sizeof(p->res.why), fmt, ap);
        va_end(ap);
    }
}

/* Opens a socket to the next address that accepts a connect() attempt. */
static void connect_next(probe_t *p)
{
    int last = ECONNREFUSED;
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    while (p->next_addr) {
        struct addrinfo *ai = p->next_addr;
        p->next_addr = ai->ai_next;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            p->fd = fd;
            p->st = P_CONNECTING;
            return;
        }
        last = errno;
        close(fd);
    }
    finish(p, false, last == ECONNREFUSED ? CN_EREFUSED : CN_EIO, "connect: %s", strerror(last));
}

/* The resolver threads answered (from probe_runner_step()). */
static void resolved(void *arg, int err, struct addrinfo *res)
{
    probe_t *p = arg;
    p->resolving = NULL;
    if (p->st != P_RESOLVING) { /* timed out meanwhile */
        if (res)
            freeaddrinfo(res);
        return;
    }
    if (err || !res) {
        finish(p, false, CN_EINVAL, "cannot resolve %s", p->host);
        return;
    }
    p->addrs = p->next_addr = res;
    connect_next(p);
}

static int start(probe_runner_t *r, probe_t *p, const char *key, const char *host, uint16_t port,
                 unsigned timeout_ms)
{
    struct addrinfo hints;
    char portstr[8];
    int gai;
    if (strlen(key) > PROBE_KEY_MAX || !key[0] || !host || !host[0] || !port || !timeout_ms) {
        free(p);
        return CN_EINVAL;
    }
    if (find(r, key) >= 0) {
        free(p);
        return CN_EAGAIN;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        /* An array of pointers to probes (they stay put while it grows). */
        probe_t **v = realloc(r->v, cap * sizeof(probe_t *)); // NOLINT(bugprone-sizeof-expression)
        if (!v) {
            free(p);
            return CN_ENOMEM;
        }
        r->v = v;
        r->cap = cap;
    }
    snprintf(p->key, sizeof(p->key), "%s", key);
    p->fd = -1;
    p->timeout_ms = timeout_ms;
    p->started = cn_time_mono_ms();
    p->deadline = p->started + timeout_ms;
    cn_buf_init(&p->reply, CN_PLUGIN_REPLY_MAX, 0);
    r->v[r->n++] = p;

    snprintf(p->host, sizeof(p->host), "%s", host);
    uint8_t lit[16];
    if (inet_pton(AF_INET, host, lit) != 1 && inet_pton(AF_INET6, host, lit) != 1) {
        /* A name: resolved by the resolver threads, never here (a slow DNS
         * answer would stall the agent's loop); polled from step(). */
        int err = 0;
        p->st = P_RESOLVING;
        p->resolving = cn_resolve_start(NULL, host, port, resolved, p, &err);
        if (!p->resolving)
            finish(p, false, err == CN_EAGAIN ? CN_ETIMEOUT : CN_EIO, "cannot resolve %s now: %s",
                   host, cn_strerror(err));
        return 0;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    gai = getaddrinfo(host, portstr, &hints, &p->addrs);
    if (gai != 0) {
        p->addrs = NULL;
        finish(p, false, CN_EINVAL, "cannot resolve %s: %s", host, gai_strerror(gai));
        return 0;
    }
    p->next_addr = p->addrs;
    connect_next(p);
    return 0;
}

int probe_runner_start(probe_runner_t *r, const char *key, const cn_plugin_t *plugin,
                       const char *host, uint16_t port, unsigned timeout_ms, probe_done_fn done,
                       void *user)
{
    if (!r || !key || !plugin || !done)
        return CN_EINVAL;
    probe_t *p = calloc(1, sizeof(*p));
    if (!p)
        return CN_ENOMEM;
    cn_plugin_target_t t = {.host = host, .port = port};
    if (!host || plugin->probe_request(&t, p->req, sizeof(p->req), &p->req_len) != 0 ||
        p->req_len > sizeof(p->req)) {
        free(p);
        return CN_EINVAL;
    }
    p->plugin = plugin;
    p->wait_reply = p->req_len > 0 || (plugin->flags & CN_PLUGIN_SERVER_FIRST);
    p->done = done;
    p->user = user;
    return start(r, p, key, host, port, timeout_ms);
}

int probe_runner_start_raw(probe_runner_t *r, const char *key, const char *host, uint16_t port,
                           unsigned timeout_ms, const uint8_t *request, size_t request_len,
                           probe_judge_fn judge, void *judge_ctx, probe_done_fn done, void *user)
{
    if (!r || !key || !done || request_len > CN_PLUGIN_REQUEST_MAX || (request_len && !request))
        return CN_EINVAL;
    probe_t *p = calloc(1, sizeof(*p));
    if (!p)
        return CN_ENOMEM;
    if (request_len)
        memcpy(p->req, request, request_len);
    p->req_len = request_len;
    p->judge = judge;
    p->judge_ctx = judge_ctx;
    p->wait_reply = judge != NULL;
    p->done = done;
    p->user = user;
    return start(r, p, key, host, port, timeout_ms);
}

void probe_runner_cancel(probe_runner_t *r, const char *key)
{
    ssize_t i = key ? find(r, key) : -1;
    if (i < 0)
        return;
    probe_free(r->v[i]);
    r->v[i] = r->v[--r->n];
}

int probe_runner_next_ms(const probe_runner_t *r)
{
    uint64_t now = cn_time_mono_ms(), best = UINT64_MAX;
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i]->st == P_DONE)
            return 0;
        if (r->v[i]->deadline < best)
            best = r->v[i]->deadline;
    }
    if (best == UINT64_MAX)
        return -1;
    return best <= now ? 0 : (int)(best - now);
}

static int judge(probe_t *p, char *why, size_t cap)
{
    const uint8_t *data = cn_buf_data(&p->reply);
    size_t len = p->reply.len;
    if (p->plugin)
        return p->plugin->probe_reply(data, len, why, cap);
    return p->judge(p->judge_ctx, data, len, why, cap);
}

static void on_connected(probe_t *p)
{
    p->res.connected = true;
    if (p->req_len)
        p->st = P_SENDING;
    else if (p->wait_reply)
        p->st = P_READING;
    else
        finish(p, true, 0, NULL);
}

static void do_send(probe_t *p);

static void do_connect(probe_t *p)
{
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        soerr = errno;
    if (soerr == 0) {
        on_connected(p);
        if (p->st == P_SENDING)
            do_send(p); /* the socket is writable now: no need to wait a step */
        return;
    }
    if (p->next_addr) {
        connect_next(p);
        return;
    }
    finish(p, false, soerr == ECONNREFUSED ? CN_EREFUSED : CN_EIO, "connect: %s", strerror(soerr));
}

static void do_send(probe_t *p)
{
    ssize_t n = send(p->fd, p->req + p->req_off, p->req_len - p->req_off, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        finish(p, false, errno == ECONNRESET || errno == EPIPE ? CN_EREFUSED : CN_EIO, "send: %s",
               strerror(errno));
        return;
    }
    p->req_off += (size_t)n;
    if (p->req_off == p->req_len)
        p->st = P_READING;
}

static void do_read(probe_t *p)
{
    char why[CN_PLUGIN_WHY_MAX];
    int err = 0;
    size_t want = CN_PLUGIN_REPLY_MAX - p->reply.len;
    if (want > 4096)
        want = 4096;
    uint8_t *room = want ? cn_buf_reserve(&p->reply, want, &err) : NULL;
    if (!room) {
        finish(p, false, err == CN_ENOMEM ? CN_ENOMEM : CN_ETOOBIG,
               "no verdict within %d bytes of reply", CN_PLUGIN_REPLY_MAX);
        return;
    }
    ssize_t n = recv(p->fd, room, want, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        finish(p, false, errno == ECONNRESET ? CN_EREFUSED : CN_EIO, "recv: %s", strerror(errno));
        return;
    }
    if (n == 0) {
        if (p->reply.len)
            finish(p, false, CN_ECLOSED,
                   "closed by the server before a complete answer (%zu bytes)", p->reply.len);
        else
            finish(p, false, CN_ECLOSED, "closed by the server without answering");
        return;
    }
    cn_buf_commit(&p->reply, (size_t)n);
    why[0] = '\0';
    int v = judge(p, why, sizeof(why));
    if (v == CN_PLUGIN_UP)
        finish(p, true, 0, NULL);
    else if (v == CN_PLUGIN_DOWN)
        finish(p, false, CN_EPROTO, "%s", why[0] ? why : "the plugin judged the reply bad");
    else if (v != CN_PLUGIN_PARTIAL)
        finish(p, false, CN_EPROTO, "the plugin gave an unknown verdict %d", v);
    else if (p->reply.len >= CN_PLUGIN_REPLY_MAX)
        finish(p, false, CN_ETOOBIG, "no verdict within %d bytes of reply", CN_PLUGIN_REPLY_MAX);
}

size_t probe_runner_step(probe_runner_t *r, int wait_ms)
{
    struct pollfd *fds = NULL;
    size_t n = r->n, nf = 0;
    if (!n)
        return 0;
    /* Answers of the resolver threads (names being resolved). */
    cn_resolve_dispatch(NULL);
    n = r->n;
    fds = calloc(n, sizeof(*fds));
    if (!fds)
        return r->n; /* try again at the next step; deadlines still hold */
    int next = probe_runner_next_ms(r);
    if (next >= 0 && (wait_ms < 0 || next < wait_ms))
        wait_ms = next;
    for (size_t i = 0; i < n; i++) {
        probe_t *p = r->v[i];
        fds[i].fd = p->st == P_DONE ? -1 : p->fd;
        fds[i].events = p->st == P_CONNECTING ? POLLOUT
                        : p->st == P_SENDING  ? (POLLOUT | POLLIN)
                                              : POLLIN;
        if (fds[i].fd >= 0)
            nf++;
    }
    if (nf && poll(fds, n, wait_ms) < 0 && errno != EINTR) {
        free(fds);
        return r->n;
    }
    if (!nf && wait_ms > 0)
        usleep((useconds_t)(wait_ms < 10 ? wait_ms : 10) * 1000); /* only names resolving */
    uint64_t now = cn_time_mono_ms();
    for (size_t i = 0; i < n; i++) {
        probe_t *p = r->v[i];
        short ev = fds[i].revents;
        if (p->st != P_DONE && fds[i].fd >= 0 && ev) {
            if (p->st == P_CONNECTING)
                do_connect(p);
            else {
                if (p->st == P_SENDING && (ev & (POLLOUT | POLLERR)))
                    do_send(p);
                if (p->st != P_DONE && (ev & (POLLIN | POLLHUP | POLLERR)))
                    do_read(p);
            }
        }
        if (p->st != P_DONE && now >= p->deadline)
            finish(p, false, CN_ETIMEOUT, "%s within %u ms",
                   p->res.connected ? "no answer" : "no connection", p->timeout_ms);
    }
    free(fds);

    /* Take the finished probes out first: a callback may start another. */
    probe_t *done[64];
    size_t nd = 0;
    for (size_t i = 0; i < r->n && nd < 64;) {
        if (r->v[i]->st == P_DONE) {
            done[nd++] = r->v[i];
            r->v[i] = r->v[--r->n];
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < nd; i++) {
        probe_t *p = done[i];
        p->res.elapsed_ms = (unsigned)(now - p->started);
        p->res.reply = cn_buf_data(&p->reply);
        p->res.reply_len = p->reply.len;
        p->done(p->user, p->key, &p->res);
        probe_free(p);
    }
    return r->n;
}
