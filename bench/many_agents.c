/* Many agents on one hub: one process enrolls N agents and then links all of
 * them, each with its own key and its own real Noise handshake over a
 * WebSocket, staggered, and holds the links open (bench/many_agents.sh
 * measures the hub meanwhile).
 *
 * usage: many_agents --port P --tokens FILE [--host 127.0.0.1] [--rate R]
 *                    [--inflight K] [--bucket B] [--secs S]
 *   FILE      one enrollment token ("<secret>.<hubkey>", as POST /api/v1/agents
 *             returns it) per line; N is the number of lines
 *   --rate    links (and enrollments) started per second, 0 = as fast as
 *             --inflight allows (default 0)
 *   --inflight  at most this many links in handshake at once (default 12: the
 *             hub admits 16 pending links per client address)
 *   --bucket  admissions per line of the admission table (default 100)
 *   --secs    hold the links this long once all are up, or until SIGTERM
 *             (default 600)
 *
 * Enrollment is what `connect enroll` does (agent/cmd_enroll.c): a fresh
 * X25519 key pair, the token split into secret and pinned hub key, a link
 * with {"v":1,"enroll":SECRET}, the hub's hello naming the agent. The links
 * are then what `connect agent` opens: {"v":1,"agentId":ID} with that key;
 * an agent is admitted when the hub's hello arrives.
 *
 * Prints, on stdout: "enrolled N in S s", one line per bucket of B
 * admissions ("admit FROM-TO ms=... per_s=... hs_p50_ms=... hs_p99_ms=..."),
 * then "ready n=N secs=... per_s=... hs_p50_ms=... hs_p99_ms=... failed=F",
 * and when it ends "dropped=D" (admitted links lost while holding). */
#include "bench.h"
#include "cn_chan.h"
#include "cn_link.h"
#include "cn_mux.h"
#include "parse.h"

#include <ev.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

enum slot_state { IDLE, ENROLLING, ENROLLED, LINKING, ADMITTED, FAILED };

typedef struct slot {
    enum slot_state state;
    cn_link_t *link;
    char secret[AGENT_ENROLL_SECRET_MAX + 1];
    uint8_t hub_pk[32], sk[32], pk[32];
    char agent_id[64];
    double t_start, t_admit;
} slot_t;

static slot_t *slots;
static size_t nslots;
static const char *host = "127.0.0.1";
static int port;
static double rate;
static unsigned max_inflight = 12;
static size_t bucket = 100;
static double hold_secs = 600;

static struct lws_context *ctx;
static struct lws_vhost *vh;
static struct ev_loop *loop;
static cn_mux_callbacks_t mux_cb;
static unsigned inflight;
static size_t next_slot, done_count, failed, dropped;
static double phase_t0;
static ev_timer tick;
static volatile sig_atomic_t stop;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void on_tick(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents; /* only ends ev_run's wait */
}

static void on_control(void *c, const uint8_t *payload, size_t len)
{
    cn_link_t *link = c;
    slot_t *s = cn_link_user(link);
    json_t *msg = json_loadb((const char *)payload, len, 0, NULL);
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (type && !strcmp(type, "hello")) {
        if (s->state == ENROLLING) {
            const char *aid = json_string_value(json_object_get(msg, "agentId"));
            if (aid && strlen(aid) < sizeof(s->agent_id)) {
                snprintf(s->agent_id, sizeof(s->agent_id), "%s", aid);
                s->state = ENROLLED;
                done_count++;
            }
            /* The apiToken the hello carries is not needed here. */
            cn_link_close(link, "enrolled");
        } else if (s->state == LINKING) {
            s->state = ADMITTED;
            s->t_admit = now_s();
            done_count++;
        }
        inflight--;
    }
    json_decref(msg);
}

static int on_established(cn_link_t *link, void *c)
{
    (void)link;
    (void)c;
    return 0;
}

static void on_closed(cn_link_t *link, void *c, int err, const char *why)
{
    (void)c;
    slot_t *s = cn_link_user(link);
    s->link = NULL;
    if (s->state == ENROLLED)
        return;
    if (s->state == ADMITTED) {
        dropped++;
        fprintf(stderr, "many_agents: agent %s lost its link: %s (%s)\n", s->agent_id, why,
                cn_strerror(err));
        return;
    }
    fprintf(stderr, "many_agents: slot %zu failed before the hello: %s (%s)\n", (size_t)(s - slots),
            why, cn_strerror(err));
    s->state = FAILED;
    failed++;
    inflight--;
}

static int start_link(slot_t *s, int enroll)
{
    char payload[512], err[160];
    int n = enroll
                ? snprintf(payload, sizeof(payload), "{\"v\":1,\"enroll\":\"%s\"}", s->secret)
                : snprintf(payload, sizeof(payload), "{\"v\":1,\"agentId\":\"%s\"}", s->agent_id);
    char hosthdr[300];
    snprintf(hosthdr, sizeof(hosthdr), "%s:%d", host, port);
    cn_link_client_config_t cc = {
        .host = host,
        .port = port,
        .host_header = hosthdr,
        .path = "/agent",
        .binding = "",
        .static_sk = s->sk,
        .hub_pk = s->hub_pk,
        .payload = (const uint8_t *)payload,
        .payload_len = (size_t)n,
        .mux_cb = &mux_cb,
        .cb = {.on_established = on_established, .on_closed = on_closed},
        .user = s,
    };
    s->state = enroll ? ENROLLING : LINKING;
    s->t_start = now_s();
    inflight++;
    s->link = cn_link_connect(ctx, vh, &cc, err, sizeof(err));
    sodium_memzero(payload, sizeof(payload));
    if (!s->link) {
        fprintf(stderr, "many_agents: cannot connect: %s\n", err);
        s->state = FAILED;
        failed++;
        inflight--;
        return -1;
    }
    return 0;
}

/* Starts what the schedule allows: the rate (links per second since the
 * phase began) and the cap on handshakes in flight. */
static void start_due(int enroll)
{
    double now = now_s();
    while (next_slot < nslots && inflight < max_inflight &&
           (rate <= 0 || (double)next_slot <= (now - phase_t0) * rate)) {
        slot_t *s = &slots[next_slot++];
        if (enroll ? s->state == IDLE : s->state == ENROLLED)
            start_link(s, enroll);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* Runs one phase: starts every slot, waits until each is done or failed. */
static void run_phase(int enroll)
{
    next_slot = done_count = 0;
    failed = 0;
    phase_t0 = now_s();
    size_t target = 0;
    for (size_t i = 0; i < nslots; i++)
        target += enroll ? slots[i].state == IDLE : slots[i].state == ENROLLED;
    while (!stop && done_count + failed < target) {
        start_due(enroll);
        /* Woken by the sockets or the 1 ms tick (the next start). */
        ev_run(loop, EVRUN_ONCE);
        if (now_s() - phase_t0 > 600) {
            fprintf(stderr, "many_agents: phase timed out\n");
            break;
        }
    }
}

static void report_admission(void)
{
    size_t n = 0;
    double *t = calloc(nslots, sizeof(*t)), *hs = calloc(nslots, sizeof(*hs));
    if (!t || !hs)
        exit(1);
    for (size_t i = 0; i < nslots; i++)
        if (slots[i].state == ADMITTED) {
            t[n] = slots[i].t_admit;
            hs[n++] = (slots[i].t_admit - slots[i].t_start) * 1000;
        }
    if (!n) {
        printf("ready n=0 failed=%zu\n", failed);
        free(t);
        free(hs);
        return;
    }
    /* The admission table, in admission order; hs[] stays with its slot. */
    size_t *order = calloc(n, sizeof(*order));
    if (!order)
        exit(1);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 1; i < n; i++) { /* insertion sort by admit time: near-sorted */
        size_t k = order[i], j = i;
        while (j > 0 && t[order[j - 1]] > t[k]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = k;
    }
    double *b = calloc(bucket, sizeof(*b));
    if (!b)
        exit(1);
    double prev = phase_t0;
    for (size_t from = 0; from < n; from += bucket) {
        size_t to = from + bucket < n ? from + bucket : n, m = 0;
        for (size_t i = from; i < to; i++)
            b[m++] = hs[order[i]];
        double end = t[order[to - 1]], ms = (end - prev) * 1000;
        printf("admit %zu-%zu ms=%.1f per_s=%.0f hs_p50_ms=%.2f hs_p99_ms=%.2f\n", from + 1, to, ms,
               ms > 0 ? (double)(to - from) / (ms / 1000) : 0.0, pct(b, m, 0.5), pct(b, m, 0.99));
        prev = end;
    }
    double last = t[order[n - 1]];
    double secs = last - phase_t0;
    double p50 = pct(hs, n, 0.5), p99 = pct(hs, n, 0.99), mx = pct(hs, n, 1.0);
    printf("ready n=%zu secs=%.2f per_s=%.0f hs_p50_ms=%.2f hs_p99_ms=%.2f hs_max_ms=%.2f "
           "failed=%zu\n",
           n, secs, secs > 0 ? (double)n / secs : 0.0, p50, p99, mx, failed);
    fflush(stdout);
    free(b);
    free(order);
    free(t);
    free(hs);
}

static int load_tokens(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[1024];
    size_t cap = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0])
            continue;
        if (nslots == cap) {
            cap = cap ? cap * 2 : 256;
            slot_t *ns = realloc(slots, cap * sizeof(*slots));
            if (!ns)
                exit(1);
            slots = ns;
        }
        slot_t *s = &slots[nslots];
        memset(s, 0, sizeof(*s));
        char err[200];
        if (agent_split_enroll_token(line, s->secret, s->hub_pk, err, sizeof(err)) < 0) {
            fprintf(stderr, "many_agents: token %zu: %s\n", nslots + 1, err);
            fclose(f);
            return -1;
        }
        bench_check(cn_chan_keypair(s->pk, s->sk), "cn_chan_keypair");
        nslots++;
    }
    sodium_memzero(line, sizeof(line));
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    const char *tokens = NULL;
    /* Options come in pairs: --name value. */
    if (argc % 2 == 0)
        goto usage;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--tokens"))
            tokens = v;
        else if (!strcmp(a, "--rate"))
            rate = atof(v);
        else if (!strcmp(a, "--inflight"))
            max_inflight = (unsigned)atoi(v);
        else if (!strcmp(a, "--bucket"))
            bucket = (size_t)atol(v);
        else if (!strcmp(a, "--secs"))
            hold_secs = atof(v);
        else
            goto usage;
    }
    if (!tokens || port <= 0 || !max_inflight || !bucket)
        goto usage;
    bench_check(sodium_init() < 0 ? CN_EIO : 0, "sodium_init");
    if (load_tokens(tokens) < 0 || !nslots)
        return 1;

    /* One fd per link: lift the soft limit to the hard one (lws sizes its
     * fd table from it, so raise it before the context). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < nslots + 64) {
        fprintf(stderr, "many_agents: %zu links need more than the fd limit %lu\n", nslots,
                (unsigned long)rl.rlim_cur);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, NULL);

    mux_cb.on_control = on_control;
    struct lws_protocols protos[3];
    memset(protos, 0, sizeof(protos));
    protos[0].name = "http";
    protos[0].callback = lws_callback_http_dummy;
    protos[1] = *cn_link_client_protocol();
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protos;
    info.pt_serv_buf_size = CN_LINK_LWS_BUF;
    /* epoll (as the agent daemon): poll() over thousands of links would be
     * this process's cost, not the hub's, but it slows the pings. */
    loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    void *loops[1] = {loop};
    info.options |= LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = loops;
    ctx = lws_create_context(&info);
    if (!loop || !ctx) {
        fprintf(stderr, "many_agents: cannot create the lws context (libev plugin?)\n");
        return 1;
    }
    vh = lws_get_vhost_by_name(ctx, "default");
    if (!vh)
        return 1;

    ev_timer_init(&tick, on_tick, 0.001, 0.001);
    ev_timer_start(loop, &tick);
    double t0 = now_s();
    run_phase(1);
    size_t enrolled = 0;
    for (size_t i = 0; i < nslots; i++) {
        enrolled += slots[i].state == ENROLLED;
        sodium_memzero(slots[i].secret, sizeof(slots[i].secret));
    }
    printf("enrolled %zu in %.2f s (failed %zu)\n", enrolled, now_s() - t0, failed);
    fflush(stdout);
    /* Let the enrollment links finish closing before the clock starts. */
    for (double e1 = now_s() + 1; now_s() < e1;)
        ev_run(loop, EVRUN_ONCE);

    run_phase(0);
    ev_timer_stop(loop, &tick);
    report_admission();
    double end = now_s() + hold_secs;
    while (!stop && now_s() < end)
        ev_run(loop, EVRUN_ONCE); /* the links' pings wake it every second */
    printf("dropped=%zu\n", dropped);
    fflush(stdout);
    for (size_t i = 0; i < nslots; i++)
        if (slots[i].link)
            cn_link_close(slots[i].link, "bench done");
    ev_timer_start(loop, &tick);
    for (double e2 = now_s() + 2; now_s() < e2;)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &tick);
    lws_context_destroy(ctx);
    ev_loop_destroy(loop);
    for (size_t i = 0; i < nslots; i++)
        sodium_memzero(slots[i].sk, sizeof(slots[i].sk));
    free(slots);
    return 0;
usage:
    fprintf(stderr, "usage: many_agents --port P --tokens FILE [--host H] [--rate R] "
                    "[--inflight K] [--bucket B] [--secs S]\n");
    return 2;
}
