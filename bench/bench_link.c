/* Loopback WebSocket link throughput: a hub-side link (lws WebSocket server
 * role) in one process and an agent-side link (lws raw client + cn_wsc) in
 * another, moving bytes through the Noise channel and the multiplexer.
 *
 * usage: bench_link [--dir up|down] [--streams N] [--mib M] [--cipher auto|aes|chacha]
 *                   [--tls DIR]
 * up = agent -> hub (the agent masks), down = hub -> agent (the agent parses).
 * --tls: wss, the hub serving DIR/hub.pem + DIR/hub.key, the agent verifying
 * against DIR/ca.pem (certificate for 127.0.0.1): the double layer's cost.
 * Prints wall time, throughput and CPU seconds per GB for each process. */
#include "bench.h"
#include "cn_chan.h"
#include "cn_err.h"
#include "cn_frame.h"
#include "cn_link.h"
#include "cn_mux.h"
#include "cn_tls.h"

#include <libwebsockets.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint8_t pattern[64 * 1024];
static int up = 1;
static int nstreams = 1;
static uint64_t per_stream;
static int cipher = CN_CHAN_CIPHER_AUTO;
static uint32_t window;
static int streams_done;
static int link_closed;
static struct lws_context *ctx;
static cn_link_t *the_link;
static const char *tls_dir;
static char tls_cert[512], tls_key[512], tls_ca[512];

typedef struct st {
    uint32_t id;
    uint64_t sent, recvd;
    int sending, fin, eof;
} st_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void pump(cn_link_t *l, st_t *s)
{
    cn_mux_t *m = cn_link_mux(l);
    while (s->sending && s->sent < per_stream) {
        uint64_t left = per_stream - s->sent;
        size_t n = left < sizeof(pattern) ? (size_t)left : sizeof(pattern);
        int w = cn_mux_write(m, s->id, pattern, n);
        if (w <= 0)
            break;
        s->sent += (uint64_t)w;
    }
    if (!s->fin && (!s->sending || s->sent == per_stream)) {
        s->fin = 1;
        bench_check(cn_mux_shutdown(m, s->id), "cn_mux_shutdown");
    }
    cn_link_flush(l);
}

static void drain(cn_link_t *l, st_t *s)
{
    cn_mux_t *m = cn_link_mux(l);
    for (;;) {
        const uint8_t *p;
        size_t len;
        int rc = cn_mux_peek(m, s->id, &p, &len);
        if (rc <= 0) {
            if (rc == 0)
                s->eof = 1;
            break;
        }
        s->recvd += len;
        bench_check(cn_mux_consume(m, s->id, len), "cn_mux_consume");
    }
    cn_link_flush(l);
}

static void on_open(void *c, uint32_t id, uint8_t kind, const uint8_t *ref, size_t rl,
                    const uint8_t *meta, size_t ml)
{
    st_t *s = calloc(1, sizeof(*s));
    s->id = id;
    s->sending = !up; /* the hub sends when the direction is down */
    bench_check(cn_mux_accept(cn_link_mux(c), id, s), "cn_mux_accept");
    pump(c, s);
}

static void on_accepted(void *c, uint32_t id, void *u)
{
    pump(c, u);
}

static void on_readable(void *c, uint32_t id, void *u)
{
    drain(c, u);
}

static void on_writable(void *c, uint32_t id, void *u)
{
    pump(c, u);
}

static void on_closed(void *c, uint32_t id, void *u)
{
    free(u);
    streams_done++;
}

static const cn_mux_callbacks_t mcb = {
    .on_open = on_open,
    .on_accepted = on_accepted,
    .on_readable = on_readable,
    .on_writable = on_writable,
    .on_closed = on_closed,
};

static int client_est(cn_link_t *l, void *c)
{
    for (int i = 0; i < nstreams; i++) {
        st_t *s = calloc(1, sizeof(*s));
        s->sending = up;
        bench_check(cn_mux_open(cn_link_mux(l), CN_KIND_TCP, NULL, 0, NULL, 0, s, &s->id),
                    "cn_mux_open");
    }
    cn_link_flush(l);
    return 0;
}

static int server_est(cn_link_t *l, void *c)
{
    the_link = l;
    return 0;
}

static void closed(cn_link_t *l, void *c, int err, const char *why)
{
    link_closed = 1;
}

static struct lws_protocols protos[4];

static int http_dummy(struct lws *wsi, enum lws_callback_reasons r, void *u, void *in, size_t len)
{
    return lws_callback_http_dummy(wsi, r, u, in, len);
}

static struct lws_context *make_ctx(int port, cn_link_server_t *srv)
{
    memset(protos, 0, sizeof(protos));
    protos[0].name = "http";
    protos[0].callback = http_dummy;
    if (srv)
        protos[1] = cn_link_server_protocol(srv);
    else
        protos[1] = *cn_link_client_protocol();
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = srv ? port : CONTEXT_PORT_NO_LISTEN;
    info.iface = "127.0.0.1";
    info.protocols = protos;
    info.pt_serv_buf_size = CN_LINK_LWS_BUF;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    if (srv && tls_dir) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = tls_cert;
        info.ssl_private_key_filepath = tls_key;
    }
    lws_set_log_level(LLL_ERR, NULL);
    return lws_create_context(&info);
}

int main(int argc, char **argv)
{
    uint64_t mib = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir"))
            up = strcmp(argv[i + 1], "down") != 0;
        else if (!strcmp(argv[i], "--streams"))
            nstreams = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mib"))
            mib = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--window-kib"))
            window = (uint32_t)strtoul(argv[i + 1], NULL, 10) * 1024;
        else if (!strcmp(argv[i], "--cipher"))
            cipher = !strcmp(argv[i + 1], "aes")      ? CN_CHAN_CIPHER_AES256GCM
                     : !strcmp(argv[i + 1], "chacha") ? CN_CHAN_CIPHER_CHACHA20POLY1305
                                                      : CN_CHAN_CIPHER_AUTO;
        else if (!strcmp(argv[i], "--tls"))
            tls_dir = argv[i + 1];
    }
    if (tls_dir) {
        snprintf(tls_cert, sizeof(tls_cert), "%s/hub.pem", tls_dir);
        snprintf(tls_key, sizeof(tls_key), "%s/hub.key", tls_dir);
        snprintf(tls_ca, sizeof(tls_ca), "%s/ca.pem", tls_dir);
    }
    if (nstreams < 1 || nstreams > 4000 || mib < 1) {
        fprintf(stderr, "usage: bench_link [--dir up|down] [--streams N] [--mib M] "
                        "[--cipher auto|aes|chacha] [--window-kib K] [--tls DIR]\n");
        return 2;
    }
    if (sodium_init() < 0)
        return 1;
    per_stream = mib * 1024 * 1024 / (uint64_t)nstreams;
    uint8_t hpk[32], hsk[32], apk[32], ask[32];
    bench_check(cn_chan_keypair(hpk, hsk), "cn_chan_keypair");
    bench_check(cn_chan_keypair(apk, ask), "cn_chan_keypair");

    /* Hub side: listen first, learn the port, then fork the agent. */
    cn_link_server_config_t sc = {.path = "/agent",
                                  .binding = "bench",
                                  .static_sk = hsk,
                                  .cipher = cipher,
                                  .mux = {.window = window},
                                  .mux_cb = &mcb,
                                  .cb = {.on_established = server_est, .on_closed = closed}};
    cn_link_server_t *srv = cn_link_server_new(&sc, NULL, 0);
    ctx = make_ctx(0, srv);
    if (!ctx)
        return 1;
    int port = lws_get_vhost_listen_port(lws_get_vhost_by_name(ctx, "default"));
    int res[2];
    if (pipe(res))
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        /* The agent process: its own context. */
        lws_context_destroy(ctx);
        cn_link_server_free(srv);
        streams_done = 0;
        ctx = make_ctx(0, NULL);
        char terr[256] = "";
        cn_tls_ctx_t *tls = tls_dir ? cn_tls_ctx_new(tls_ca, terr, sizeof(terr)) : NULL;
        if (tls_dir && !tls) {
            fprintf(stderr, "bench_link: %s\n", terr);
            _exit(1);
        }
        cn_link_client_config_t cc = {.host = "127.0.0.1",
                                      .tls = tls,
                                      .port = port,
                                      .path = "/agent",
                                      .binding = "bench",
                                      .static_sk = ask,
                                      .hub_pk = hpk,
                                      .cipher = cipher,
                                      .mux = {.window = window},
                                      .mux_cb = &mcb,
                                      .cb = {.on_established = client_est, .on_closed = closed}};
        cn_link_t *l = cn_link_connect(ctx, lws_get_vhost_by_name(ctx, "default"), &cc, NULL, 0);
        if (!l)
            _exit(1);
        double t0 = now_s(), c0 = cpu_s();
        while (streams_done < nstreams && !link_closed && now_s() - t0 < 300)
            lws_service(ctx, 100);
        double wall = now_s() - t0, cpu = cpu_s() - c0;
        const char *cname = cn_link_cipher(l);
        printf("%-5s %s%-18s streams=%-4d %6.2f GiB in %6.2f s: %7.1f MB/s %6.2f Gbit/s | "
               "agent CPU %.2f s/GB",
               up ? "up" : "down", tls ? "wss+" : "ws+", cname ? cname : "?", nstreams,
               (double)(per_stream * (uint64_t)nstreams) / (1 << 30), wall,
               (double)(per_stream * (uint64_t)nstreams) / wall / 1e6,
               (double)(per_stream * (uint64_t)nstreams) * 8 / wall / 1e9,
               cpu / ((double)(per_stream * (uint64_t)nstreams) / 1e9));
        fflush(stdout);
        cn_link_close(l, "done");
        for (int i = 0; i < 20 && !link_closed; i++)
            lws_service(ctx, 50);
        lws_context_destroy(ctx);
        cn_tls_ctx_free(tls);
        _exit(streams_done == nstreams ? 0 : 1);
    }
    double c0 = cpu_s();
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0)
        lws_service(ctx, 100);
    double cpu = cpu_s() - c0;
    printf(" | hub CPU %.2f s/GB\n", cpu / ((double)(per_stream * (uint64_t)nstreams) / 1e9));
    lws_context_destroy(ctx);
    cn_link_server_free(srv);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
