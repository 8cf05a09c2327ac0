/* wsc_interop: cn_wsc over a plain blocking socket against an independent
 * RFC 6455 server (tests/integration/test_wsc_interop.sh runs python3-websockets).
 *
 * usage: wsc_interop PORT
 * Upgrades with subprotocol connect.v1 on 127.0.0.1:PORT; answers the
 * server's opening ping and expects "pong-ok" back (the server only sends it
 * once our pong matched); sends binary messages of 0 B .. 8 MiB (some framed
 * with cn_wsc_wrap(), some masked in uneven pieces) and checks each echo by
 * length and SHA-256, whether or not the server fragments it; pings and
 * expects the matching pong; closes with 1000 and expects the server's close
 * and then EOF. Exits 0 only if every step passed. */
#include "cn_err.h"
#include "cn_wsc.h"

#include <sodium.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define READ_BUF (256 * 1024)

struct peer {
    int fd;
    cn_wsc_t *ws;
    uint8_t *rbuf;
    /* The message being received. */
    crypto_hash_sha256_state sha;
    size_t cur_len;
    uint8_t head[64]; /* its first bytes, for short text-like checks */
    /* The last complete message. */
    size_t msgs;
    size_t msg_len;
    uint8_t msg_sha[crypto_hash_sha256_BYTES];
    uint8_t msg_head[64];
    size_t pings, pongs;
    uint8_t pong[125];
    size_t pong_len;
    bool closed;
    uint16_t close_code;
    bool eof;
};

static int on_event(void *user, const cn_wsc_event_t *ev)
{
    struct peer *p = user;
    switch (ev->type) {
    case CN_WSC_EV_DATA:
        if (ev->first) {
            crypto_hash_sha256_init(&p->sha);
            p->cur_len = 0;
        }
        if (p->cur_len < sizeof(p->head)) {
            size_t k = sizeof(p->head) - p->cur_len;
            memcpy(p->head + p->cur_len, ev->data, ev->len < k ? ev->len : k);
        }
        crypto_hash_sha256_update(&p->sha, ev->data, ev->len);
        p->cur_len += ev->len;
        if (ev->fin) {
            crypto_hash_sha256_final(&p->sha, p->msg_sha);
            p->msg_len = p->cur_len;
            memcpy(p->msg_head, p->head, sizeof(p->head));
            p->msgs++;
        }
        break;
    case CN_WSC_EV_PING:
        p->pings++;
        break;
    case CN_WSC_EV_PONG:
        p->pongs++;
        memcpy(p->pong, ev->data, ev->len);
        p->pong_len = ev->len;
        break;
    case CN_WSC_EV_CLOSE:
        p->closed = true;
        p->close_code = ev->close_code;
        break;
    default:
        break;
    }
    return 0;
}

static int send_all(int fd, const uint8_t *b, size_t n)
{
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "wsc_interop: send: %s\n", strerror(errno));
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes pending control frames, as the lws glue will on WRITEABLE. */
static int flush_pending(struct peer *p)
{
    uint8_t out[CN_WSC_MAX_PENDING];
    size_t n = cn_wsc_take_pending(p->ws, out, sizeof(out));
    return n ? send_all(p->fd, out, n) : 0;
}

/* One read, fed to the client, then pending frames flushed. */
static int pump_once(struct peer *p)
{
    ssize_t r;
    do {
        r = recv(p->fd, p->rbuf, READ_BUF, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        fprintf(stderr, "wsc_interop: recv: %s\n", strerror(errno));
        return -1;
    }
    if (r == 0) {
        p->eof = true;
        return 0;
    }
    int rc = cn_wsc_feed(p->ws, p->rbuf, (size_t)r, on_event, p);
    if (rc) {
        fprintf(stderr, "wsc_interop: feed: %s (%s, HTTP status %d)\n", cn_strerror(rc),
                cn_wsc_error_detail(p->ws), cn_wsc_http_status(p->ws));
        return -1;
    }
    return flush_pending(p);
}

/* Reads until the message count reaches `want`. */
static int wait_message(struct peer *p, size_t want)
{
    while (p->msgs < want) {
        if (p->eof) {
            fprintf(stderr, "wsc_interop: EOF while waiting for message %zu\n", want);
            return -1;
        }
        if (pump_once(p))
            return -1;
    }
    return 0;
}

static void fill(uint8_t *b, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)x;
    }
}

/* Sends one binary message of `len` bytes and checks its echo. Odd rounds
 * mask by hand in uneven pieces; even rounds use cn_wsc_wrap(). */
static int echo_round(struct peer *p, size_t len, unsigned round)
{
    uint8_t *buf = malloc(CN_WSC_MAX_HEADER + len + 1);
    if (!buf)
        return -1;
    uint8_t *payload = buf + CN_WSC_MAX_HEADER;
    uint8_t want[crypto_hash_sha256_BYTES];
    fill(payload, len, round + 1);
    crypto_hash_sha256(want, payload, len);

    uint8_t *frame;
    size_t frame_len;
    if (round % 2 == 0) {
        if (cn_wsc_wrap(payload, len, CN_WSC_MAX_HEADER, CN_WSC_OP_BINARY, &frame, &frame_len)) {
            free(buf);
            return -1;
        }
    } else {
        uint8_t hdr[CN_WSC_MAX_HEADER], mask[4];
        randombytes_buf(mask, sizeof(mask));
        size_t hl = cn_wsc_frame_header(hdr, CN_WSC_OP_BINARY, len, mask);
        /* Pieces of 1, 7, 4093, then a third of what is left, ...: every
         * offset phase and alignment gets used. */
        static const size_t first_pieces[] = {1, 7, 4093};
        size_t done = 0;
        for (unsigned i = 0; done < len; i++) {
            size_t k = i < 3 ? first_pieces[i] : (len - done) / 3 + 1;
            if (k > len - done)
                k = len - done;
            cn_wsc_mask(payload + done, k, mask, done);
            done += k;
        }
        frame = payload - hl;
        memcpy(frame, hdr, hl);
        frame_len = hl + len;
    }
    size_t before = p->msgs;
    int rc = send_all(p->fd, frame, frame_len);
    free(buf);
    if (rc || wait_message(p, before + 1))
        return -1;
    if (p->msg_len != len || memcmp(p->msg_sha, want, sizeof(want)) != 0) {
        fprintf(stderr, "wsc_interop: echo of %zu bytes came back as %zu bytes / other digest\n",
                len, p->msg_len);
        return -1;
    }
    return 0;
}

static int run(struct peer *p, int port)
{
    char host[32];
    snprintf(host, sizeof(host), "127.0.0.1:%d", port);
    cn_wsc_config_t cfg = {.host = host, .path = "/echo", .subprotocol = "connect.v1"};
    char err[128] = "";
    p->ws = cn_wsc_new(&cfg, err, sizeof(err));
    if (!p->ws) {
        fprintf(stderr, "wsc_interop: %s\n", err);
        return -1;
    }
    size_t req_len;
    const uint8_t *req = cn_wsc_request(p->ws, &req_len);
    if (send_all(p->fd, req, req_len))
        return -1;

    /* The server pings first and says "pong-ok" once our pong matched. */
    if (wait_message(p, 1))
        return -1;
    if (p->pings < 1 || p->msg_len != 7 || memcmp(p->msg_head, "pong-ok", 7) != 0) {
        fprintf(stderr, "wsc_interop: no pong-ok after the server's ping\n");
        return -1;
    }
    printf("wsc_interop: upgraded, answered the server's ping\n");

    static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 1u << 20, 8u << 20};
    for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        if (echo_round(p, sizes[i], i))
            return -1;
        printf("wsc_interop: echo of %zu bytes ok\n", sizes[i]);
    }

    static const uint8_t ping[] = "interop-ping";
    if (cn_wsc_ping(p->ws, ping, sizeof(ping) - 1) || flush_pending(p))
        return -1;
    while (p->pongs == 0) {
        if (p->eof || pump_once(p))
            return -1;
    }
    if (p->pong_len != sizeof(ping) - 1 || memcmp(p->pong, ping, p->pong_len) != 0) {
        fprintf(stderr, "wsc_interop: pong does not echo our ping\n");
        return -1;
    }
    printf("wsc_interop: our ping answered\n");

    if (cn_wsc_close(p->ws, 1000, "done", 4) || flush_pending(p))
        return -1;
    while (!p->closed) {
        if (p->eof) {
            fprintf(stderr, "wsc_interop: EOF before the server's close\n");
            return -1;
        }
        if (pump_once(p))
            return -1;
    }
    if (p->close_code != 1000 || cn_wsc_state(p->ws) != CN_WSC_CLOSED) {
        fprintf(stderr, "wsc_interop: server closed with %u\n", p->close_code);
        return -1;
    }
    /* RFC 6455 7.1.1: the server closes TCP first. */
    while (!p->eof) {
        if (pump_once(p))
            return -1;
    }
    printf("wsc_interop: closed cleanly with 1000\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: wsc_interop PORT\n");
        return 2;
    }
    int port = atoi(argv[1]);
    if (port <= 0 || port > 65535 || sodium_init() < 0)
        return 2;
    struct peer p = {.fd = -1};
    int rc = 1;
    p.rbuf = malloc(READ_BUF);
    p.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (!p.rbuf || p.fd < 0)
        goto out;
    struct timeval tv = {.tv_sec = 30};
    int one = 1;
    setsockopt(p.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(p.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(p.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(p.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "wsc_interop: connect: %s\n", strerror(errno));
        goto out;
    }
    if (run(&p, port) == 0)
        rc = 0;
out:
    if (p.fd >= 0)
        close(p.fd);
    cn_wsc_free(p.ws);
    free(p.rbuf);
    printf("wsc_interop: %s\n", rc ? "FAILED" : "passed");
    return rc;
}
