/* TCP ping-pong, connection-rate and idle-connection tool for the end-to-end
 * benchmark (bench/tcp_tunnel.sh). Single-threaded, epoll, every mode bounded
 * in time.
 *
 *   bench_pingpong server PORT [--host H] [--secs S]
 *       echo server: sends back every byte it receives, closes on EOF.
 *   bench_pingpong client HOST PORT [--conns N] [--secs T] [--size B] [--warmup W]
 *       N connections, each writes B bytes (default 64), waits for the B bytes
 *       back, and starts again, for W + T seconds; the last T are measured.
 *   bench_pingpong connrate HOST PORT [--secs T] [--par P]
 *       P slots in parallel (default 1), each: connect, 1 byte there and
 *       back, close; for T seconds.
 *   bench_pingpong hold HOST PORT [--conns N] [--secs T]
 *       opens N connections, one 64-byte round trip on each, prints
 *       "ready N", holds them idle until T seconds have passed or SIGTERM.
 *
 * Results are one line of key=value pairs on stdout: req_s (or conn_s),
 * p50_us, p99_us (from a histogram with 1 µs buckets up to 10 ms and 100 µs
 * buckets up to 1 s), errors. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- time and histogram ------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define H_FINE 10000  /* 1 µs buckets: 0 .. 10 ms */
#define H_COARSE 9900 /* 100 µs buckets: 10 ms .. 1 s */
#define H_N (H_FINE + H_COARSE + 1)

typedef struct hist {
    uint64_t b[H_N];
    uint64_t n;
    uint64_t max_us;
} hist_t;

static void hist_add(hist_t *h, uint64_t ns)
{
    uint64_t us = ns / 1000;
    size_t i;
    if (us < H_FINE)
        i = (size_t)us;
    else if (us < H_FINE + (uint64_t)H_COARSE * 100)
        i = H_FINE + (size_t)((us - H_FINE) / 100);
    else
        i = H_N - 1;
    h->b[i]++;
    h->n++;
    if (us > h->max_us)
        h->max_us = us;
}

/* Upper edge of the bucket holding quantile q. */
static uint64_t hist_q(const hist_t *h, double q)
{
    if (!h->n)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->n);
    if (want >= h->n)
        want = h->n - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < H_N; i++) {
        seen += h->b[i];
        if (seen > want) {
            if (i < H_FINE)
                return i + 1;
            if (i < H_N - 1)
                return H_FINE + (i - H_FINE + 1) * 100;
            return h->max_us;
        }
    }
    return h->max_us;
}

/* ---- helpers --------------------------------------------------------------- */

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_pingpong: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static struct sockaddr_in target;

static void set_target(const char *host, const char *port)
{
    memset(&target, 0, sizeof(target));
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &target.sin_addr) != 1) {
        fprintf(stderr, "bench_pingpong: %s: not an IPv4 address\n", host);
        exit(2);
    }
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A non-blocking connect to the target; returns the fd or -1 (errno set). */
static int start_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    nodelay(fd);
    if (connect(fd, (struct sockaddr *)&target, sizeof(target)) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

/* ---- server ---------------------------------------------------------------- */

#define SRV_BUF 65536

typedef struct sconn {
    int fd;
    size_t pend_off, pend_len; /* bytes read but not yet written back */
    uint8_t *pend;
} sconn_t;

static int run_server(const char *host, int port, int secs)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "bench_pingpong: %s: not an IPv4 address\n", host);
        return 2;
    }
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0)
        die("bind");
    if (listen(lfd, 4096) < 0)
        die("listen");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    printf("listening %d\n", port);
    fflush(stdout);

    static uint8_t buf[SRV_BUF];
    struct epoll_event evs[256];
    uint64_t end = now_ns() + (uint64_t)secs * 1000000000ull;
    while (!stop_flag && now_ns() < end) {
        int n = epoll_wait(ep, evs, 256, 200);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            sconn_t *c = evs[i].data.ptr;
            if (!c) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    nodelay(fd);
                    c = calloc(1, sizeof(*c));
                    if (!c) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            int closeit = 0;
            if (c->pend_len) { /* waiting for room to write the rest */
                ssize_t w = write(c->fd, c->pend + c->pend_off, c->pend_len);
                if (w < 0 && errno != EAGAIN)
                    closeit = 1;
                else if (w > 0) {
                    c->pend_off += (size_t)w;
                    c->pend_len -= (size_t)w;
                }
                if (!closeit && !c->pend_len) {
                    struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                }
            } else {
                for (;;) {
                    ssize_t r = read(c->fd, buf, sizeof(buf));
                    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                        closeit = 1;
                        break;
                    }
                    if (r < 0)
                        break;
                    ssize_t w = write(c->fd, buf, (size_t)r);
                    if (w < 0 && errno != EAGAIN) {
                        closeit = 1;
                        break;
                    }
                    if (w < 0)
                        w = 0;
                    if (w < r) {
                        free(c->pend);
                        c->pend = malloc((size_t)(r - w));
                        if (!c->pend) {
                            closeit = 1;
                            break;
                        }
                        memcpy(c->pend, buf + w, (size_t)(r - w));
                        c->pend_off = 0;
                        c->pend_len = (size_t)(r - w);
                        struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
                        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                        break;
                    }
                    if ((size_t)r < sizeof(buf))
                        break;
                }
            }
            if (closeit) {
                close(c->fd); /* also leaves the epoll set */
                free(c->pend);
                free(c);
            }
        }
    }
    return 0;
}

/* ---- client: ping-pong ------------------------------------------------------ */

typedef struct cconn {
    int fd;
    int connected, dead;
    size_t got;
    uint64_t t0;
} cconn_t;

static int run_client(int nconns, int secs, double warmup, size_t size)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    cconn_t *cs = calloc((size_t)nconns, sizeof(*cs));
    uint8_t *req = malloc(size), *rbuf = malloc(size > 65536 ? size : 65536);
    hist_t *h = calloc(1, sizeof(*h));
    if (!cs || !req || !rbuf || !h)
        die("calloc");
    for (size_t i = 0; i < size; i++)
        req[i] = (uint8_t)('a' + i % 26);
    uint64_t errors = 0;
    int alive = 0;
    for (int i = 0; i < nconns; i++) {
        cs[i].fd = start_connect();
        if (cs[i].fd < 0) {
            errors++;
            cs[i].dead = 1;
            continue;
        }
        alive++;
        struct epoll_event e = {.events = EPOLLOUT, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e);
    }
    uint64_t start = now_ns();
    uint64_t mstart = start + (uint64_t)(warmup * 1e9);
    uint64_t end = mstart + (uint64_t)secs * 1000000000ull;
    uint64_t done = 0;
    struct epoll_event evs[256];
    uint64_t t;
    while (!stop_flag && alive > 0 && (t = now_ns()) < end) {
        int n = epoll_wait(ep, evs, 256, 50);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            cconn_t *c = evs[i].data.ptr;
            int bad = 0;
            if (!c->connected) {
                if (sock_error(c->fd)) {
                    bad = 1;
                } else {
                    c->connected = 1;
                    struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                    c->t0 = now_ns();
                    if (write(c->fd, req, size) != (ssize_t)size)
                        bad = 1;
                }
            } else {
                ssize_t r = read(c->fd, rbuf, size - c->got);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                    bad = 1;
                else if (r > 0) {
                    c->got += (size_t)r;
                    if (c->got == size) {
                        uint64_t t1 = now_ns();
                        if (c->t0 >= mstart) {
                            hist_add(h, t1 - c->t0);
                            done++;
                        }
                        c->got = 0;
                        c->t0 = t1;
                        if (write(c->fd, req, size) != (ssize_t)size)
                            bad = 1;
                    }
                }
            }
            if (bad) {
                errors++;
                c->dead = 1;
                close(c->fd);
                alive--;
            }
        }
    }
    uint64_t stop = now_ns();
    double measured = stop > mstart ? (double)(stop - mstart) / 1e9 : 0;
    printf("mode=client conns=%d size=%zu secs=%.2f reqs=%llu req_s=%.0f p50_us=%llu p99_us=%llu "
           "max_us=%llu errors=%llu\n",
           nconns, size, measured, (unsigned long long)done,
           measured > 0 ? (double)done / measured : 0, (unsigned long long)hist_q(h, 0.50),
           (unsigned long long)hist_q(h, 0.99), (unsigned long long)h->max_us,
           (unsigned long long)errors);
    for (int i = 0; i < nconns; i++)
        if (!cs[i].dead)
            close(cs[i].fd);
    return errors && !done ? 1 : 0;
}

/* ---- client: connection rate -------------------------------------------------- */

typedef struct rslot {
    int fd;
    int state; /* 0 idle, 1 connecting, 2 waiting for the byte */
    uint64_t t0;
} rslot_t;

#define SLOT_TIMEOUT_NS (5ull * 1000000000ull)

static int run_connrate(int par, int secs)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    rslot_t *s = calloc((size_t)par, sizeof(*s));
    hist_t *h = calloc(1, sizeof(*h));
    if (!s || !h)
        die("calloc");
    uint64_t start = now_ns(), end = start + (uint64_t)secs * 1000000000ull;
    uint64_t done = 0, errors = 0;
    int err_first = 0;
    struct epoll_event evs[256];
    for (;;) {
        uint64_t t = now_ns();
        int busy = 0;
        for (int i = 0; i < par; i++) {
            if (s[i].state && t - s[i].t0 > SLOT_TIMEOUT_NS) { /* stuck: give up on it */
                close(s[i].fd);
                s[i].state = 0;
                errors++;
            }
            if (!s[i].state && t < end && !stop_flag) {
                s[i].fd = start_connect();
                if (s[i].fd < 0) {
                    if (!err_first)
                        err_first = errno;
                    errors++;
                    continue;
                }
                s[i].state = 1;
                s[i].t0 = t;
                struct epoll_event e = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
                epoll_ctl(ep, EPOLL_CTL_ADD, s[i].fd, &e);
            }
            busy += s[i].state != 0;
        }
        if (!busy)
            break;
        int n = epoll_wait(ep, evs, 256, 10);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            rslot_t *c = &s[evs[k].data.u32];
            int bad = 0, fin = 0;
            if (c->state == 1) {
                int e = sock_error(c->fd);
                if (e) {
                    if (!err_first)
                        err_first = e;
                    bad = 1;
                } else {
                    struct epoll_event e2 = {.events = EPOLLIN | EPOLLRDHUP, .data = evs[k].data};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e2);
                    if (write(c->fd, "x", 1) != 1)
                        bad = 1;
                    else
                        c->state = 2;
                }
            } else if (c->state == 2) {
                char b;
                ssize_t r = read(c->fd, &b, 1);
                if (r == 1)
                    fin = 1;
                else if (r == 0 || (errno != EAGAIN && errno != EINTR))
                    bad = 1;
            }
            if (bad || fin) {
                close(c->fd);
                c->state = 0;
                if (bad)
                    errors++;
                else {
                    hist_add(h, now_ns() - c->t0);
                    done++;
                }
            }
        }
    }
    double measured = (double)(now_ns() - start) / 1e9;
    printf("mode=connrate par=%d secs=%.2f conns=%llu conn_s=%.0f p50_us=%llu p99_us=%llu "
           "max_us=%llu errors=%llu%s%s\n",
           par, measured, (unsigned long long)done, measured > 0 ? (double)done / measured : 0,
           (unsigned long long)hist_q(h, 0.50), (unsigned long long)hist_q(h, 0.99),
           (unsigned long long)h->max_us, (unsigned long long)errors,
           err_first ? " first_error=" : "", err_first ? strerror(err_first) : "");
    return errors && !done ? 1 : 0;
}

/* ---- client: idle connections --------------------------------------------------- */

static int run_hold(int nconns, int secs)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    cconn_t *cs = calloc((size_t)nconns, sizeof(*cs));
    if (!cs)
        die("calloc");
    uint8_t req[64], rbuf[64];
    memset(req, 'h', sizeof(req));
    uint64_t start = now_ns(), end = start + (uint64_t)secs * 1000000000ull;
    int next = 0, pending = 0, ready = 0, errors = 0;
    const int max_pending = 64;
    struct epoll_event evs[256];
    while (!stop_flag && now_ns() < end && ready + errors < nconns) {
        while (next < nconns && pending < max_pending) {
            cconn_t *c = &cs[next++];
            c->fd = start_connect();
            if (c->fd < 0) {
                c->dead = 1;
                errors++;
                continue;
            }
            pending++;
            struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
        }
        int n = epoll_wait(ep, evs, 256, 50);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            cconn_t *c = evs[i].data.ptr;
            int bad = 0;
            if (!c->connected) {
                if (sock_error(c->fd)) {
                    bad = 1;
                } else {
                    c->connected = 1;
                    struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                    if (write(c->fd, req, sizeof(req)) != (ssize_t)sizeof(req))
                        bad = 1;
                }
            } else {
                ssize_t r = read(c->fd, rbuf, sizeof(rbuf) - c->got);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                    bad = 1;
                else if (r > 0 && (c->got += (size_t)r) == sizeof(req)) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    pending--;
                    ready++;
                }
            }
            if (bad) {
                close(c->fd);
                c->dead = 1;
                pending--;
                errors++;
            }
        }
    }
    printf("ready %d errors=%d\n", ready, errors);
    fflush(stdout);
    while (!stop_flag && now_ns() < end)
        usleep(50000);
    for (int i = 0; i < nconns; i++)
        if (cs[i].fd > 0 && !cs[i].dead)
            close(cs[i].fd);
    return ready == nconns ? 0 : 1;
}

/* ---- main ------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(
        stderr,
        "usage: bench_pingpong server PORT [--host H] [--secs S]\n"
        "       bench_pingpong client HOST PORT [--conns N] [--secs T] [--size B] [--warmup W]\n"
        "       bench_pingpong connrate HOST PORT [--secs T] [--par P]\n"
        "       bench_pingpong hold HOST PORT [--conns N] [--secs T]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    const char *mode = argv[1];
    const char *host = "127.0.0.1";
    int conns = 1, secs = 0, par = 1;
    size_t size = 64;
    double warmup = 1.0;
    int srv = !strcmp(mode, "server");
    int npos = srv ? 1 : 2;
    if (argc < 2 + npos)
        usage();
    for (int i = 2 + npos; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        const char *k = argv[i], *v = argv[++i];
        if (!strcmp(k, "--host"))
            host = v;
        else if (!strcmp(k, "--conns"))
            conns = atoi(v);
        else if (!strcmp(k, "--secs"))
            secs = atoi(v);
        else if (!strcmp(k, "--par"))
            par = atoi(v);
        else if (!strcmp(k, "--size"))
            size = (size_t)atol(v);
        else if (!strcmp(k, "--warmup"))
            warmup = atof(v);
        else
            usage();
    }
    if (conns < 1 || conns > 100000 || par < 1 || par > 10000 || secs < 0 || secs > 86400 ||
        size < 1 || size > (1u << 20) || warmup < 0 || warmup > 60)
        usage();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    raise_nofile();
    if (!secs)
        secs = srv ? 3600 : 10;
    if (srv)
        return run_server(host, atoi(argv[2]), secs);
    set_target(argv[2], argv[3]);
    if (!strcmp(mode, "client"))
        return run_client(conns, secs, warmup, size);
    if (!strcmp(mode, "connrate"))
        return run_connrate(par, secs);
    if (!strcmp(mode, "hold"))
        return run_hold(conns, secs);
    usage();
    return 2;
}
