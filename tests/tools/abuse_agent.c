/* abuse_agent: an authenticated but hostile agent, for tests/integration/
 * test_abuse.sh. It logs in with a real enrolled agent's identity (the
 * config file `connect enroll` wrote) over the real protocol (cn_wsc
 * framing, cn_chan Noise handshake, cn_frame frames), then misbehaves.
 *
 * usage: abuse_agent flood HOST PORT CONFIG SECONDS
 *   Sends OPEN frames as fast as the hub takes them and never reads a
 *   byte after the handshake (the hub's RST answers pile up on its side).
 *   Stops when the hub drops the connection or after SECONDS. Prints one
 *   JSON line: {"opens":N,"bytes":B,"closed":true|false,"ms":T}, where ms
 *   is when the hub closed (or the run ended). Exit 0 when the run went as
 *   far as the handshake, 1 otherwise.
 *
 * usage: abuse_agent share-open HOST PORT SHARE_TOKEN HUB_KEY TUNNEL_ID...
 *   Logs in as a share redeemer (a fresh key, payload {"share":TOKEN}) and
 *   opens one reach stream (CN_KIND_RELAY) per tunnel id, in turn. Prints
 *   one line per id: "ID open" when the hub relayed it (OPEN_ACK), "ID rst
 *   CODE" when it refused, "ID closed" when the hub dropped the link (it
 *   refused the login: the client's side of Noise_XK completes before the
 *   hub has read the payload). Exit 0 when every stream got an answer, 1
 *   otherwise. */
#define _GNU_SOURCE 1 /* POLLRDHUP */

#include "cn_buf.h"
#include "cn_chan.h"
#include "cn_err.h"
#include "cn_frame.h"
#include "cn_time.h"
#include "cn_wsc.h"

#include <jansson.h>
#include <sodium.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define RBUF (64 * 1024)
#define RECORD_PLAIN (16 * 1024)

typedef struct agent {
    int fd;
    cn_wsc_t *ws;
    cn_chan_t *chan;
    cn_buf_t plain, hs;
    int open;
    int failed;
    /* share-open: the stream waited for and how the hub answered it. */
    cn_frame_decoder_t *dec;
    uint32_t want;
    int acked, rst_code;
} agent_t;

static int die(const char *what)
{
    fprintf(stderr, "abuse_agent: %s\n", what);
    return 1;
}

/* Sends all of buf; 0, or -1 when the peer is gone or time is up. */
static int send_all(int fd, const uint8_t *buf, size_t len, uint64_t deadline)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (cn_time_mono_ms() >= deadline)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/* Masks and sends one binary WebSocket message. */
static int send_ws(agent_t *a, const uint8_t *data, size_t len, uint64_t deadline)
{
    uint8_t *buf = malloc(CN_WSC_MAX_HEADER + len);
    if (!buf)
        return -1;
    memcpy(buf + CN_WSC_MAX_HEADER, data, len);
    uint8_t *frame;
    size_t flen;
    int rc = cn_wsc_wrap(buf + CN_WSC_MAX_HEADER, len, CN_WSC_MAX_HEADER, CN_WSC_OP_BINARY, &frame,
                         &flen);
    if (rc == 0)
        rc = send_all(a->fd, frame, flen, deadline);
    free(buf);
    return rc;
}

static int on_ws(void *user, const cn_wsc_event_t *ev)
{
    agent_t *a = user;
    if (ev->type == CN_WSC_EV_OPEN) {
        a->open = 1;
    } else if (ev->type == CN_WSC_EV_DATA && ev->len) {
        if (cn_chan_feed(a->chan, ev->data, ev->len, &a->plain, &a->hs) < 0)
            a->failed = 1;
        const uint8_t *p = cn_buf_data(&a->plain);
        size_t left = a->plain.len, used = 0;
        cn_frame_t f;
        while (a->dec && left && cn_frame_decode(a->dec, p, left, &used, &f) >= 0) {
            p += used;
            left -= used;
            if (f.stream == a->want && a->want && f.type == CN_FRAME_OPEN_ACK)
                a->acked = 1;
            else if (f.stream == a->want && a->want && f.type == CN_FRAME_RST)
                a->rst_code = (int)f.u.reason.code;
            if (!used)
                break;
        }
        cn_buf_reset(&a->plain);
    } else if (ev->type == CN_WSC_EV_CLOSE) {
        a->failed = 1;
    }
    return 0;
}

static int key_from(const char *s, uint8_t key[32])
{
    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (size_t i = 0; s && i < sizeof(variants) / sizeof(variants[0]); i++) {
        size_t n = 0;
        if (sodium_base642bin(key, 32, s, strlen(s), NULL, &n, NULL, variants[i]) == 0 && n == 32)
            return 0;
    }
    return -1;
}

/* Connects, upgrades and runs the Noise handshake with key `sk`, pinning
 * `hub_pk`, sending `payload` (taken: freed here). */
static int login_with(agent_t *a, const char *host, int port, uint8_t sk[32],
                      const uint8_t hub_pk[32], char *payload)
{
    a->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(a->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(a->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(a->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        free(payload);
        return die("cannot connect");
    }
    char hostport[80];
    snprintf(hostport, sizeof(hostport), "%s:%d", host, port);
    cn_wsc_config_t wc = {.host = hostport, .path = "/agent", .subprotocol = "connect.v1"};
    char why[128];
    a->ws = cn_wsc_new(&wc, why, sizeof(why));
    cn_chan_config_t cc = {
        .role = CN_CHAN_INITIATOR,
        .local_private = sk,
        .remote_public = hub_pk,
        .binding = "",
        .app_payload = (const uint8_t *)payload,
        .app_payload_len = strlen(payload),
        .now_ms = cn_time_mono_ms(),
    };
    a->chan = cn_chan_new(&cc, why, sizeof(why));
    sodium_memzero(sk, 32);
    free(payload);
    if (!a->ws || !a->chan)
        return die("cannot set up the client");
    cn_buf_init(&a->plain, 4u << 20, 0);
    cn_buf_init(&a->hs, 64 * 1024, 0);

    uint64_t deadline = cn_time_mono_ms() + 5000;
    size_t rlen;
    const uint8_t *req = cn_wsc_request(a->ws, &rlen);
    if (send_all(a->fd, req, rlen, deadline) < 0)
        return die("cannot send the upgrade");
    uint8_t *rbuf = malloc(RBUF);
    int started = 0;
    while (!cn_chan_is_established(a->chan) && !a->failed && cn_time_mono_ms() < deadline) {
        if (a->open && !started) {
            started = 1;
            if (cn_chan_start(a->chan, &a->hs) < 0)
                break;
        }
        if (a->hs.len) {
            if (send_ws(a, cn_buf_data(&a->hs), a->hs.len, deadline) < 0)
                break;
            cn_buf_reset(&a->hs);
            continue;
        }
        ssize_t n = recv(a->fd, rbuf, RBUF, 0);
        if (n == 0)
            break;
        if (n > 0 && cn_wsc_feed(a->ws, rbuf, (size_t)n, on_ws, a) < 0)
            break;
    }
    free(rbuf);
    /* Message 3 may still be queued once the keys are in place. */
    if (a->hs.len && send_ws(a, cn_buf_data(&a->hs), a->hs.len, deadline) == 0)
        cn_buf_reset(&a->hs);
    if (!cn_chan_is_established(a->chan))
        return die("handshake failed");
    return 0;
}

/* Logs in as the config's agent. */
static int login(agent_t *a, const char *host, int port, const char *config)
{
    json_error_t jerr;
    json_t *cfg = json_load_file(config, 0, &jerr);
    uint8_t sk[32], hub_pk[32];
    if (!cfg || key_from(json_string_value(json_object_get(cfg, "agentKey")), sk) < 0 ||
        key_from(json_string_value(json_object_get(cfg, "hubKey")), hub_pk) < 0) {
        json_decref(cfg);
        return die("cannot read the agent config");
    }
    json_t *hello = json_pack("{s:i,s:s}", "v", 1, "agentId",
                              json_string_value(json_object_get(cfg, "agentId")));
    char *payload = json_dumps(hello, JSON_COMPACT);
    json_decref(hello);
    json_decref(cfg);
    return login_with(a, host, port, sk, hub_pk, payload);
}

/* Logs in as a share redeemer: a fresh key, the share token as payload. */
static int login_share(agent_t *a, const char *host, int port, const char *token,
                       const char *hub_key)
{
    uint8_t sk[32], pk[32], hub_pk[32];
    if (key_from(hub_key, hub_pk) < 0 || cn_chan_keypair(pk, sk) < 0)
        return die("bad hub key");
    json_t *hello = json_pack("{s:i,s:s}", "v", 1, "share", token);
    char *payload = json_dumps(hello, JSON_COMPACT);
    json_decref(hello);
    return login_with(a, host, port, sk, hub_pk, payload);
}

/* One reach stream per tunnel id; prints how the hub answered each. */
static int share_open(agent_t *a, char **ids, int n)
{
    uint8_t rec[CN_CHAN_HEADER + 4096 + CN_CHAN_TAG], rbuf[RBUF];
    a->dec = cn_frame_decoder_new();
    if (!a->dec)
        return die("out of memory");
    for (int i = 0; i < n; i++) {
        a->want = (uint32_t)(2 * i + 1);
        a->acked = 0;
        a->rst_code = -1;
        cn_frame_t f = {.type = CN_FRAME_OPEN, .stream = a->want};
        f.u.open.kind = CN_KIND_RELAY;
        f.u.open.window = 65536;
        f.u.open.ref = (const uint8_t *)ids[i];
        f.u.open.ref_len = strlen(ids[i]);
        int len = cn_frame_encode(&f, rec + CN_CHAN_HEADER, 4096);
        uint64_t deadline = cn_time_mono_ms() + 5000;
        cn_chan_set_now(a->chan, cn_time_mono_ms());
        int rlen = len > 0 ? cn_chan_seal(a->chan, rec, (size_t)len) : -1;
        if (rlen < 0 || send_ws(a, rec, (size_t)rlen, deadline) < 0) {
            a->failed = 1;
            break;
        }
        while (!a->acked && a->rst_code < 0 && !a->failed && cn_time_mono_ms() < deadline) {
            ssize_t r = recv(a->fd, rbuf, sizeof(rbuf), 0);
            if (r == 0)
                a->failed = 1;
            if (r > 0 && cn_wsc_feed(a->ws, rbuf, (size_t)r, on_ws, a) < 0)
                a->failed = 1;
        }
        if (a->acked)
            printf("%s open\n", ids[i]);
        else if (a->rst_code >= 0)
            printf("%s rst %d\n", ids[i], a->rst_code);
        else
            printf("%s %s\n", ids[i], a->failed ? "closed" : "none");
        fflush(stdout);
        if (a->failed)
            break;
    }
    cn_frame_decoder_free(a->dec);
    a->dec = NULL;
    return a->failed ? die("the hub closed the link") : 0;
}

/* OPEN frames, never reading: one record of them at a time. */
static int flood(agent_t *a, int seconds)
{
    uint64_t start = cn_time_mono_ms(), deadline = start + (uint64_t)seconds * 1000u;
    uint8_t *rec = malloc(CN_CHAN_HEADER + RECORD_PLAIN + CN_CHAN_TAG);
    uint32_t id = 1;
    uint64_t opens = 0, bytes = 0;
    int closed = 0;
    while (cn_time_mono_ms() < deadline && id < CN_FRAME_MAX_STREAM - 4096) {
        size_t off = 0;
        for (;;) {
            cn_frame_t f = {.type = CN_FRAME_OPEN, .stream = id};
            f.u.open.kind = CN_KIND_TCP;
            f.u.open.window = 65536;
            f.u.open.ref = (const uint8_t *)"flood";
            f.u.open.ref_len = 5;
            int n = cn_frame_encode(&f, rec + CN_CHAN_HEADER + off, RECORD_PLAIN - off);
            if (n <= 0)
                break;
            off += (size_t)n;
            id += 2;
            opens++;
        }
        cn_chan_set_now(a->chan, cn_time_mono_ms());
        int rlen = cn_chan_seal(a->chan, rec, off);
        if (rlen < 0 || send_ws(a, rec, (size_t)rlen, deadline) < 0) {
            /* Time up (blocked: the hub stopped reading) or the hub is gone. */
            int e = errno;
            closed = !(e == EAGAIN || e == EWOULDBLOCK || e == EINTR);
            break;
        }
        bytes += (uint64_t)rlen;
    }
    /* Blocked: wait, still reading nothing, until the hub drops us (RST or
     * FIN show as POLLERR/POLLHUP/POLLRDHUP without reading). */
    while (!closed && cn_time_mono_ms() < deadline) {
        struct pollfd pfd = {.fd = a->fd, .events = POLLRDHUP};
        if (poll(&pfd, 1, 100) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)))
            closed = 1;
    }
    printf("{\"opens\":%llu,\"bytes\":%llu,\"closed\":%s,\"ms\":%llu}\n", (unsigned long long)opens,
           (unsigned long long)bytes, closed ? "true" : "false",
           (unsigned long long)(cn_time_mono_ms() - start));
    fflush(stdout);
    free(rec);
    return 0;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    bool share = argc >= 7 && !strcmp(argv[1], "share-open");
    if (!share && (argc != 6 || strcmp(argv[1], "flood"))) {
        fprintf(stderr,
                "usage: abuse_agent flood HOST PORT CONFIG SECONDS\n"
                "       abuse_agent share-open HOST PORT SHARE_TOKEN HUB_KEY TUNNEL_ID...\n");
        return 2;
    }
    agent_t a = {.fd = -1};
    int rc;
    if (share) {
        rc = login_share(&a, argv[2], atoi(argv[3]), argv[4], argv[5]);
        if (rc == 0)
            rc = share_open(&a, argv + 6, argc - 6);
    } else {
        rc = login(&a, argv[2], atoi(argv[3]), argv[4]);
        if (rc == 0)
            rc = flood(&a, atoi(argv[5]));
    }
    if (a.fd >= 0)
        close(a.fd);
    cn_wsc_free(a.ws);
    cn_chan_free(a.chan);
    cn_buf_free(&a.plain);
    cn_buf_free(&a.hs);
    return rc;
}
