/* cn_link: an agent-side link and a hub-side link talking over a real
 * loopback WebSocket (lws server role on one side, lws raw client + cn_wsc on
 * the other), through the Noise channel and the multiplexer. */
#include "cn_test.h"

#include "cn_chan.h"
#include "cn_err.h"
#include "cn_frame.h"
#include "cn_link.h"
#include "cn_mux.h"
#include "cn_time.h"

#include <libwebsockets.h>
#include <sodium.h>
#include <time.h>

#define CHUNK (64 * 1024)

typedef struct side side_t;

typedef struct xfer {
    side_t *side;
    uint32_t id;
    uint64_t to_send, sent;
    uint64_t rng;
    uint8_t *pend; /* generated, not yet accepted by the mux */
    size_t pend_off, pend_len;
    int fin_sent, eof, closed, reset;
    uint64_t received;
    crypto_hash_sha256_state tx_hash, rx_hash;
    uint8_t tx_digest[32], rx_digest[32];
} xfer_t;

struct side {
    const char *name;
    cn_link_t *link;
    int established, closed;
    int close_err;
    cn_link_reason_t reason;
    char why[80];
    xfer_t *x[256];
    int nx;
    int n_closed;
    uint64_t per_stream;
};

typedef struct world {
    side_t client, server;
    int nstreams;
    uint64_t per_stream;
    int refuse;  /* server refuses every agent */
    int bad_pin; /* client pins the wrong key */
    struct lws_context *ctx;
    struct lws_vhost *vh;
    cn_link_server_t *srv;
    int port;
    uint8_t hub_pk[32], hub_sk[32], agent_pk[32], agent_sk[32];
} world_t;

static world_t *W;

static side_t *side_of(cn_link_t *l)
{
    return cn_link_user(l);
}

static xfer_t *xfer_new(side_t *s, uint32_t id, uint64_t seed)
{
    xfer_t *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->side = s;
    x->id = id;
    x->to_send = s->per_stream + (seed % 7) * 1000; /* uneven sizes */
    x->rng = seed * 0x9e3779b97f4a7c15ull + 1;
    x->pend = malloc(CHUNK);
    assert_non_null(x->pend);
    crypto_hash_sha256_init(&x->tx_hash);
    crypto_hash_sha256_init(&x->rx_hash);
    s->x[s->nx++] = x;
    return x;
}

static void pump_send(cn_link_t *l, xfer_t *x)
{
    cn_mux_t *m = cn_link_mux(l);
    for (;;) {
        if (x->pend_off == x->pend_len) {
            if (x->sent == x->to_send) {
                if (!x->fin_sent) {
                    x->fin_sent = 1;
                    assert_int_equal(cn_mux_shutdown(m, x->id), 0);
                }
                break;
            }
            size_t n = CHUNK;
            if (x->to_send - x->sent < n)
                n = (size_t)(x->to_send - x->sent);
            cn_test_fill(x->pend, n, x->rng++);
            crypto_hash_sha256_update(&x->tx_hash, x->pend, n);
            x->sent += n;
            x->pend_off = 0;
            x->pend_len = n;
        }
        int n = cn_mux_write(m, x->id, x->pend + x->pend_off, x->pend_len - x->pend_off);
        if (n == CN_EAGAIN || n == 0)
            break;
        assert_true(n > 0);
        x->pend_off += (size_t)n;
    }
    cn_link_flush(l);
}

static void pump_recv(cn_link_t *l, xfer_t *x)
{
    cn_mux_t *m = cn_link_mux(l);
    for (;;) {
        const uint8_t *p;
        size_t len;
        int rc = cn_mux_peek(m, x->id, &p, &len);
        if (rc == CN_EAGAIN)
            break;
        assert_true(rc >= 0);
        if (rc == 0) {
            x->eof = 1;
            break;
        }
        crypto_hash_sha256_update(&x->rx_hash, p, len);
        x->received += len;
        assert_int_equal(cn_mux_consume(m, x->id, len), 0);
    }
    cn_link_flush(l);
}

/* ---- mux callbacks (ctx is the link) ---- */

static void on_open(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t ref_len,
                    const uint8_t *meta, size_t meta_len)
{
    cn_link_t *l = ctx;
    side_t *s = side_of(l);
    assert_int_equal(kind, CN_KIND_TCP);
    assert_int_equal(ref_len, 6);
    assert_memory_equal(ref, "tunnel", 6);
    xfer_t *x = xfer_new(s, id, 1000 + id);
    assert_int_equal(cn_mux_accept(cn_link_mux(l), id, x), 0);
    pump_send(l, x);
}

static void on_accepted(void *ctx, uint32_t id, void *user)
{
    pump_send(ctx, user);
}

static void on_readable(void *ctx, uint32_t id, void *user)
{
    pump_recv(ctx, user);
}

static void on_writable(void *ctx, uint32_t id, void *user)
{
    pump_send(ctx, user);
}

static void on_reset(void *ctx, uint32_t id, void *user, uint32_t code, const char *msg,
                     size_t msg_len)
{
    xfer_t *x = user;
    x->reset = 1;
}

static void on_closed(void *ctx, uint32_t id, void *user)
{
    xfer_t *x = user;
    x->closed = 1;
    x->side->n_closed++;
}

static const cn_mux_callbacks_t mux_cb = {
    .on_open = on_open,
    .on_accepted = on_accepted,
    .on_readable = on_readable,
    .on_writable = on_writable,
    .on_reset = on_reset,
    .on_closed = on_closed,
};

/* ---- link callbacks ---- */

static int server_established(cn_link_t *l, void *ctx)
{
    world_t *w = ctx;
    cn_link_set_user(l, &w->server);
    w->server.link = l;
    const uint8_t *peer = cn_link_peer_key(l);
    assert_non_null(peer);
    assert_memory_equal(peer, w->agent_pk, 32);
    size_t plen;
    const uint8_t *payload = cn_link_peer_payload(l, &plen);
    assert_int_equal(plen, 5);
    assert_memory_equal(payload, "hello", 5);
    if (w->refuse)
        return CN_EREFUSED;
    w->server.established = 1;
    return 0;
}

static void server_closed(cn_link_t *l, void *ctx, int err, const char *why)
{
    world_t *w = ctx;
    w->server.closed = 1;
    w->server.close_err = err;
    w->server.reason = cn_link_close_reason(l);
    snprintf(w->server.why, sizeof(w->server.why), "%s", why);
    w->server.link = NULL;
}

static int client_established(cn_link_t *l, void *ctx)
{
    world_t *w = ctx;
    side_t *s = &w->client;
    s->established = 1;
    for (int i = 0; i < w->nstreams; i++) {
        uint32_t id;
        xfer_t *x = xfer_new(s, 0, 0);
        assert_int_equal(
            cn_mux_open(cn_link_mux(l), CN_KIND_TCP, (const uint8_t *)"tunnel", 6, NULL, 0, x, &id),
            0);
        x->id = id;
        x->rng = (uint64_t)id * 0x9e3779b97f4a7c15ull + 1;
        x->to_send = s->per_stream + (id % 7) * 1000;
    }
    cn_link_flush(l);
    return 0;
}

static void client_closed(cn_link_t *l, void *ctx, int err, const char *why)
{
    world_t *w = ctx;
    w->client.closed = 1;
    w->client.close_err = err;
    w->client.reason = cn_link_close_reason(l);
    snprintf(w->client.why, sizeof(w->client.why), "%s", why);
    w->client.link = NULL;
}

static int http_dummy(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static struct lws_protocols protocols[4];

/* lws 4.1 ignores lws_service()'s timeout when no timer is due: a ticker
 * keeps the test loop turning so its deadlines are checked. */
static lws_sorted_usec_list_t ticker;
static void tick(lws_sorted_usec_list_t *sul)
{
    lws_sul_schedule(W->ctx, 0, &ticker, tick, 10 * LWS_US_PER_MS);
}

/* Starts a world: keys, the hub-side server (`custom`, else this file's
 * callbacks), the context listening on a free port. */
static void world_start_with(world_t *w, int nstreams, uint64_t per_stream,
                             const cn_link_server_config_t *custom)
{
    memset(w, 0, sizeof(*w));
    W = w;
    w->nstreams = nstreams;
    w->per_stream = per_stream;
    w->client.per_stream = w->server.per_stream = per_stream;
    w->client.name = "agent";
    w->server.name = "hub";
    assert_int_equal(cn_chan_keypair(w->hub_pk, w->hub_sk), 0);
    assert_int_equal(cn_chan_keypair(w->agent_pk, w->agent_sk), 0);

    cn_link_server_config_t sc = {
        .path = "/agent",
        .binding = "ws://127.0.0.1/agent",
        .static_sk = w->hub_sk,
        .mux_cb = &mux_cb,
        .cb = {.on_established = server_established, .on_closed = server_closed},
        .ctx = w,
    };
    if (custom) {
        sc = *custom;
        sc.static_sk = w->hub_sk;
    }
    w->srv = cn_link_server_new(&sc, NULL, 0);
    assert_non_null(w->srv);

    memset(protocols, 0, sizeof(protocols));
    protocols[0].name = "http";
    protocols[0].callback = http_dummy;
    protocols[1] = cn_link_server_protocol(w->srv);
    protocols[2] = *cn_link_client_protocol();

    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = 0;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.pt_serv_buf_size = CN_LINK_LWS_BUF;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    w->ctx = lws_create_context(&info);
    assert_non_null(w->ctx);
    memset(&ticker, 0, sizeof(ticker));
    tick(&ticker);
    w->vh = lws_get_vhost_by_name(w->ctx, "default");
    assert_non_null(w->vh);
    w->port = lws_get_vhost_listen_port(w->vh);
    assert_true(w->port > 0);
}

static void world_start(world_t *w, int nstreams, uint64_t per_stream)
{
    world_start_with(w, nstreams, per_stream, NULL);
}

/* The agent side's config for this world (wrong_pk: the pin when bad_pin). */
static cn_link_client_config_t client_config(world_t *w, const uint8_t *wrong_pk)
{
    cn_link_client_config_t cc = {
        .host = "127.0.0.1",
        .port = w->port,
        .path = "/agent",
        .binding = "ws://127.0.0.1/agent",
        .static_sk = w->agent_sk,
        .hub_pk = w->bad_pin ? wrong_pk : w->hub_pk,
        .payload = (const uint8_t *)"hello",
        .payload_len = 5,
        .mux_cb = &mux_cb,
        .cb = {.on_established = client_established, .on_closed = client_closed},
        .ctx = w,
        .user = &w->client,
    };
    return cc;
}

static void world_connect(world_t *w)
{
    uint8_t wrong_pk[32], wrong_sk[32];
    assert_int_equal(cn_chan_keypair(wrong_pk, wrong_sk), 0);
    cn_link_client_config_t cc = client_config(w, wrong_pk);
    char err[160] = "";
    w->client.link = cn_link_connect(w->ctx, w->vh, &cc, err, sizeof(err));
    if (!w->client.link)
        fail_msg("cn_link_connect: %s", err);
}

/* Services the loop until done() or the deadline; returns done(). */
static int run_until(world_t *w, int (*done)(world_t *), uint64_t ms)
{
    uint64_t end = cn_time_mono_ms() + ms;
    while (!done(w) && cn_time_mono_ms() < end)
        lws_service(w->ctx, 50);
    return done(w);
}

static void world_stop(world_t *w)
{
    lws_sul_cancel(&ticker);
    lws_context_destroy(w->ctx);
    cn_link_server_free(w->srv);
    for (int i = 0; i < w->client.nx; i++) {
        free(w->client.x[i]->pend);
        free(w->client.x[i]);
    }
    for (int i = 0; i < w->server.nx; i++) {
        free(w->server.x[i]->pend);
        free(w->server.x[i]);
    }
}

static int all_closed(world_t *w)
{
    return w->client.n_closed == w->nstreams && w->server.n_closed == w->nstreams;
}

static int links_gone(world_t *w)
{
    return w->client.closed && w->server.closed;
}

static int client_gone(world_t *w)
{
    return w->client.closed;
}

static void check_pairs(world_t *w)
{
    for (int i = 0; i < w->client.nx; i++) {
        xfer_t *c = w->client.x[i];
        xfer_t *s = NULL;
        for (int j = 0; j < w->server.nx; j++)
            if (w->server.x[j]->id == c->id)
                s = w->server.x[j];
        assert_non_null(s);
        assert_false(c->reset);
        assert_false(s->reset);
        assert_true(c->eof && s->eof);
        assert_int_equal(c->sent, s->received);
        assert_int_equal(s->sent, c->received);
        crypto_hash_sha256_final(&c->tx_hash, c->tx_digest);
        crypto_hash_sha256_final(&c->rx_hash, c->rx_digest);
        crypto_hash_sha256_final(&s->tx_hash, s->tx_digest);
        crypto_hash_sha256_final(&s->rx_hash, s->rx_digest);
        assert_memory_equal(c->tx_digest, s->rx_digest, 32);
        assert_memory_equal(s->tx_digest, c->rx_digest, 32);
    }
}

/* 100 MiB in all: 50 MiB each way over 64 streams, SHA-256 checked. */
static void test_100mib_64_streams(void **state)
{
    world_t w;
    world_start(&w, 64, 800 * 1024);
    world_connect(&w);
    assert_true(run_until(&w, all_closed, 240000));
    check_pairs(&w);
    uint64_t total = 0;
    for (int i = 0; i < w.client.nx; i++)
        total += w.client.x[i]->sent + w.client.x[i]->received;
    assert_true(total >= 100ull * 1024 * 1024);
    assert_true(w.client.established && w.server.established);
    cn_link_close(w.client.link, "done");
    assert_true(run_until(&w, links_gone, 10000));
    assert_int_equal(w.client.close_err, 0);
    assert_int_equal(w.client.reason, CN_LINK_CLOSED_LOCALLY);
    assert_string_equal(w.client.why, "done"); /* the caller's words */
    world_stop(&w);
}

/* The hub refuses an agent after the handshake: no stream is served. */
static void test_refused_agent(void **state)
{
    world_t w;
    world_start(&w, 1, 1024);
    w.refuse = 1;
    world_connect(&w);
    assert_true(run_until(&w, client_gone, 10000));
    assert_int_equal(w.server.n_closed, 0);
    assert_int_equal(w.server.nx, 0);
    world_stop(&w);
}

/* A wrong pinned hub key never gets a channel. */
static void test_wrong_pin(void **state)
{
    world_t w;
    world_start(&w, 1, 1024);
    w.bad_pin = 1;
    world_connect(&w);
    assert_true(run_until(&w, client_gone, 10000));
    assert_false(w.client.established);
    assert_false(w.server.established);
    assert_int_not_equal(w.client.close_err, 0);
    assert_int_equal(w.server.reason, CN_LINK_CHANNEL_FAILED);
    world_stop(&w);
}

/* Connecting to a closed port reports on_closed, not a crash or a hang. */
static void test_connect_refused(void **state)
{
    world_t w;
    world_start(&w, 1, 1024);
    int port = w.port;
    /* A port nobody listens on: bind and close one. */
    w.port = port == 65535 ? port - 1 : port + 1;
    world_connect(&w);
    assert_true(run_until(&w, client_gone, 10000));
    assert_int_equal(w.client.close_err, CN_EIO);
    assert_int_equal(w.client.reason, CN_LINK_CONNECT_FAILED);
    assert_string_equal(w.client.why, "could not connect to the hub");
    world_stop(&w);
}

/* Many links in one context: one lws timer for all of them (not one each,
 * which cost O(N^2) a second in lws's sorted timer list), and every link
 * still gets its ticks: pings flow and nobody is declared dead. */
#define MANY 150
static int many_up, many_down, many_server_up;
static int many_server_established(cn_link_t *l, void *ctx)
{
    (void)l;
    (void)ctx;
    many_server_up++;
    return 0;
}
static int many_client_established(cn_link_t *l, void *ctx)
{
    (void)l;
    (void)ctx;
    many_up++;
    return 0;
}
static void many_closed(cn_link_t *l, void *ctx, int err, const char *why)
{
    (void)l;
    (void)ctx;
    (void)err;
    (void)why;
    many_down++;
}
static int many_established(world_t *w)
{
    (void)w;
    return many_up == MANY && many_server_up == MANY;
}
static int many_gone(world_t *w)
{
    (void)w;
    return many_down == 2 * MANY;
}
/* The links connected so far are up at both ends. */
static int many_want;
static int wave_established(world_t *w)
{
    (void)w;
    return many_up >= many_want && many_server_up >= many_want;
}

static void test_many_links_one_timer(void **state)
{
    (void)state;
    world_t w;
    many_up = many_down = many_server_up = 0;
    /* Counting callbacks; short intervals make the ticks matter within the
     * test. */
    cn_link_timing_t fast = {
        .ping_interval_ms = 100, .probe_interval_ms = 50, .dead_after_ms = 400};
    cn_link_server_config_t sc = {
        .path = "/agent",
        .binding = "ws://127.0.0.1/agent",
        .mux_cb = &mux_cb,
        .cb = {.on_established = many_server_established, .on_closed = many_closed},
        .timing = fast,
    };
    world_start_with(&w, 0, 0, &sc);
    assert_int_equal(cn_link_timer_count(w.ctx), 0);

    cn_link_t *links[MANY];
    for (int i = 0; i < MANY; i++) {
        cn_link_client_config_t cc = client_config(&w, w.hub_pk);
        cc.cb = (cn_link_callbacks_t){.on_established = many_client_established,
                                      .on_closed = many_closed};
        cc.user = NULL;
        cc.timing = fast;
        links[i] = cn_link_connect(w.ctx, w.vh, &cc, NULL, 0);
        assert_non_null(links[i]);
        /* The pending-handshake cap (16 per address) admits them in waves:
         * each wave of 8 is up before the next starts (a fixed 20 ms a wave
         * let a loaded machine pile up more than 16 and be refused). */
        if (i % 8 == 7) {
            many_want = i + 1;
            assert_true(run_until(&w, wave_established, 20000));
        }
    }
    assert_true(run_until(&w, many_established, 20000));
    /* 2 x MANY links, one timer. */
    assert_int_equal(cn_link_timer_count(w.ctx), 1);
    /* Ten dead-after periods: links that missed their ticks would neither
     * ping nor be pinged, and die as silent. */
    uint64_t in0 = cn_link_bytes_in(links[0]);
    uint64_t end = cn_time_mono_ms() + 4000;
    while (cn_time_mono_ms() < end)
        lws_service(w.ctx, 50);
    assert_int_equal(many_down, 0);
    assert_true(cn_link_bytes_in(links[0]) > in0); /* the hub's pings arrived */
    for (int i = 0; i < MANY; i++)
        cn_link_close(links[i], "done");
    assert_true(run_until(&w, many_gone, 10000));
    assert_int_equal(cn_link_timer_count(w.ctx), 0);
    world_stop(&w);
}

static int both_up(world_t *w)
{
    return w->client.established && w->server.established;
}

/* A stall of this process (its loop blocked for three dead-after periods:
 * a starved machine, a stop signal) is not the peers' silence: the tick
 * that comes late judges no link and pings, the next one judges, after the
 * reads. Both ends are in this process, so each one's pings of the late
 * tick reach the other before the next. Without that the first tick after
 * the stall pronounced both peers silent. */
static void test_own_stall_is_not_peer_silence(void **state)
{
    (void)state;
    world_t w;
    cn_link_timing_t t = {.ping_interval_ms = 400, .probe_interval_ms = 200, .dead_after_ms = 1000};
    cn_link_server_config_t sc = {
        .path = "/agent",
        .binding = "ws://127.0.0.1/agent",
        .mux_cb = &mux_cb,
        .cb = {.on_established = server_established, .on_closed = server_closed},
        .ctx = &w,
        .timing = t,
    };
    world_start_with(&w, 0, 0, &sc);
    cn_link_client_config_t cc = client_config(&w, w.hub_pk);
    cc.timing = t;
    w.client.link = cn_link_connect(w.ctx, w.vh, &cc, NULL, 0);
    assert_non_null(w.client.link);
    assert_true(run_until(&w, both_up, 10000));
    for (int round = 0; round < 2; round++) {
        usleep(3000 * 1000); /* the stall: no service at all */
        uint64_t end = cn_time_mono_ms() + 1500;
        while (cn_time_mono_ms() < end)
            lws_service(w.ctx, 50);
        if (w.client.closed || w.server.closed)
            fail_msg("round %d: agent: %s; hub: %s", round, w.client.why, w.server.why);
    }
    cn_link_close(w.client.link, "done");
    assert_true(run_until(&w, links_gone, 10000));
    world_stop(&w);
}

/* Every reason has its own words. */
static void test_reason_names(void **state)
{
    for (int a = CN_LINK_CLOSED_LOCALLY; a <= CN_LINK_REPLIES_UNREAD; a++) {
        const char *na = cn_link_reason_name((cn_link_reason_t)a);
        assert_non_null(na);
        assert_string_not_equal(na, "closed");
        for (int b = a + 1; b <= CN_LINK_REPLIES_UNREAD; b++)
            assert_string_not_equal(na, cn_link_reason_name((cn_link_reason_t)b));
    }
}

/* ---- liveness rule (sans-IO) ---- */

/* Simulates the link's timer (every 250 ms) against a peer described by
 * `rx_at(now)`: the last time anything arrived. Returns when the rule
 * declares the peer dead (its time), or 0 if it never did within `ms`.
 * Counts the PINGs sent; we send nothing else. */
typedef uint64_t (*rx_model_fn)(uint64_t now, uint64_t last_ping);

static uint64_t simulate(rx_model_fn rx_at, uint64_t ms, int *pings)
{
    const cn_link_timing_t t = {0}; /* the defaults */
    uint64_t t0 = 1000000, last_tx = t0, last_ping = 0;
    *pings = 0;
    for (uint64_t now = t0; now <= t0 + ms; now += 250) {
        uint64_t last_rx = rx_at(now - t0, last_ping ? last_ping - t0 : 0) + t0;
        switch (cn_link_liveness(&t, now, last_rx, last_tx, last_ping, 0)) {
        case CN_LINK_DEAD:
            return now - t0;
        case CN_LINK_PING:
            (*pings)++;
            last_ping = last_tx = now;
            break;
        case CN_LINK_ALIVE:
            break;
        }
    }
    return 0;
}

/* Frozen at 0 (kill -STOP): nothing ever arrives again. */
static uint64_t rx_frozen(uint64_t now, uint64_t last_ping)
{
    return 0;
}

/* A busy peer: records every 300 ms, and it never answers a PING (its
 * PONGs are stuck behind data). */
static uint64_t rx_busy(uint64_t now, uint64_t last_ping)
{
    return now - now % 300;
}

/* An idle live peer: its keepalive every 1.25 s (1 s plus timer slack),
 * and a PONG 50 ms after each of our PINGs. */
static uint64_t rx_idle(uint64_t now, uint64_t last_ping)
{
    uint64_t keepalive = now - now % 1250;
    uint64_t pong = last_ping && now >= last_ping + 50 ? last_ping + 50 : 0;
    return pong > keepalive ? pong : keepalive;
}

/* A frozen peer is declared dead within about 3 s of its last byte, after
 * tight probes; a busy or idle live peer is never dropped. */
static void test_liveness_rule(void **state)
{
    int pings = 0;
    uint64_t dead = simulate(rx_frozen, 20000, &pings);
    assert_true(dead > 3000);
    assert_true(dead <= 3500);
    assert_true(pings >= 4); /* probes every 0.5 s from 1 s of silence */
    assert_int_equal(simulate(rx_busy, 120000, &pings), 0);
    assert_int_equal(simulate(rx_idle, 120000, &pings), 0);
    assert_true(pings <= 120 * 2 + 1); /* idle cost: about one PING a second each way */

    /* Table: now 10000 and the last byte `silent` ms ago. */
    const cn_link_timing_t t = {0};
    const struct {
        uint64_t silent, since_tx, since_ping; /* since_ping 0: never pinged */
        int rx_paused;
        enum cn_link_liveness want;
    } v[] = {
        {100, 100, 0, 0, CN_LINK_ALIVE},     /* traffic both ways */
        {100, 1000, 0, 0, CN_LINK_PING},     /* keepalive: we sent nothing for 1 s */
        {999, 100, 0, 0, CN_LINK_ALIVE},     /* not yet missed */
        {1000, 100, 0, 0, CN_LINK_PING},     /* missed traffic: first probe */
        {1400, 100, 400, 0, CN_LINK_ALIVE},  /* probed 400 ms ago */
        {1500, 100, 500, 0, CN_LINK_PING},   /* the next probe */
        {3000, 100, 100, 0, CN_LINK_ALIVE},  /* at the bound: not yet */
        {3001, 100, 100, 0, CN_LINK_DEAD},   /* past it */
        {60000, 100, 100, 1, CN_LINK_ALIVE}, /* we stopped reading: never dead */
        {60000, 1000, 100, 1, CN_LINK_PING}, /* ... but keepalive goes on */
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint64_t now = 10000;
        enum cn_link_liveness got =
            cn_link_liveness(&t, now, now - v[i].silent, now - v[i].since_tx,
                             v[i].since_ping ? now - v[i].since_ping : 0, v[i].rx_paused);
        if (got != v[i].want)
            fail_msg("case %zu: got %d, want %d", i, (int)got, (int)v[i].want);
    }
    /* Configured timings are honoured. */
    const cn_link_timing_t slow = {.ping_interval_ms = 5000, .dead_after_ms = 20000};
    assert_int_equal(cn_link_liveness(&slow, 100000, 100000 - 4000, 100000 - 100, 0, 0),
                     CN_LINK_ALIVE);
    assert_int_equal(cn_link_liveness(&slow, 100000, 100000 - 19000, 100000 - 100, 0, 0),
                     CN_LINK_PING);
    assert_int_equal(cn_link_liveness(&slow, 100000, 100000 - 20001, 100000 - 100, 0, 0),
                     CN_LINK_DEAD);
}

/* The handshake deadline is absolute: a trickle of bytes (slowloris: one
 * byte every 4 s) never extends it, and on the server a link below the
 * minimum rate is dropped once the grace is over. A real handshake sends
 * its ~200 bytes at once and passes. */
static void test_handshake_rule(void **state)
{
    const cn_link_timing_t t = {0}; /* 5 s deadline, 2 s grace, 32 B/s */
    const struct {
        uint64_t age, rx;
        int server;
        enum cn_link_handshake want;
    } v[] = {
        {0, 0, 1, CN_LINK_HS_OK},
        {2000, 0, 1, CN_LINK_HS_OK},            /* within the grace */
        {2001, 0, 1, CN_LINK_HS_TOO_SLOW},      /* silent past the grace */
        {2001, 1, 1, CN_LINK_HS_TOO_SLOW},      /* one byte in 4 s */
        {2001, 0, 0, CN_LINK_HS_OK},            /* clients: deadline only */
        {4999, 200, 1, CN_LINK_HS_OK},          /* a real handshake's bytes */
        {5000, 200, 1, CN_LINK_HS_OK},          /* at the deadline */
        {5001, 100000, 1, CN_LINK_HS_DEADLINE}, /* fast bytes do not extend it */
        {5001, 0, 0, CN_LINK_HS_DEADLINE},
        {3000, 95, 1, CN_LINK_HS_TOO_SLOW}, /* 32 B/s * 3 s = 96 */
        {3000, 96, 1, CN_LINK_HS_OK},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint64_t start = 50000;
        enum cn_link_handshake got =
            cn_link_handshake_check(&t, start + v[i].age, start, v[i].rx, v[i].server);
        if (got != v[i].want)
            fail_msg("case %zu: got %d, want %d", i, (int)got, (int)v[i].want);
    }
    /* One byte every 4 s (the old idle timer's blind spot) on a client with
     * only the deadline: cut at 5 s all the same. */
    uint64_t rx = 0, now;
    for (now = 0; now < 60000; now += 250) {
        if (now % 4000 == 0)
            rx++;
        if (cn_link_handshake_check(&t, now, 0, rx, 0) != CN_LINK_HS_OK)
            break;
    }
    assert_int_equal(now, 5250);
    const cn_link_timing_t custom = {
        .handshake_ms = 1000, .handshake_grace_ms = 100, .handshake_min_rate = 1000};
    assert_int_equal(cn_link_handshake_check(&custom, 200, 0, 150, 1), CN_LINK_HS_TOO_SLOW);
    assert_int_equal(cn_link_handshake_check(&custom, 200, 0, 200, 1), CN_LINK_HS_OK);
    assert_int_equal(cn_link_handshake_check(&custom, 1001, 0, 5000, 1), CN_LINK_HS_DEADLINE);
}

/* A link whose peer reads nothing while we have output is closed after
 * stall_ms; an idle link (nothing waiting) never is. */
/* A link whose peer reads nothing while we have output is closed: after
 * stall_ms when its unread replies pile up (it provokes and does not read),
 * after 6 x stall_ms otherwise (a peer draining slow targets of its own);
 * an idle link (nothing waiting) never is. */
static void test_stall_rule(void **state)
{
    const cn_link_timing_t t = {0};
    assert_false(cn_link_stalled(&t, 100000, 100000 - 10000, 1, 1));
    assert_true(cn_link_stalled(&t, 100000, 100000 - 10001, 1, 1));
    assert_false(cn_link_stalled(&t, 100000, 100000 - 10001, 1, 0));
    assert_false(cn_link_stalled(&t, 100000, 100000 - 60000, 1, 0));
    assert_true(cn_link_stalled(&t, 100000, 100000 - 60001, 1, 0));
    assert_false(cn_link_stalled(&t, 100000, 0, 0, 1)); /* idle for ever: fine */
    assert_false(cn_link_stalled(&t, 100000, 100000, 1, 1));
    const cn_link_timing_t quick = {.stall_ms = 500};
    assert_true(cn_link_stalled(&quick, 1000, 499, 1, 1));
}

/* Reading stops when the application is behind OR when the peer leaves its
 * replies unread, and resumes only once both are below half. */
static void test_rx_pause_rule(void **state)
{
    const size_t H = 1000, R = 100;
    assert_false(cn_link_rx_pause(0, 1000, H, 100, R));
    assert_true(cn_link_rx_pause(0, 1001, H, 0, R));
    assert_true(cn_link_rx_pause(0, 0, H, 101, R)); /* an OPEN flood, unread */
    assert_true(cn_link_rx_pause(1, 0, H, 50, R));  /* not yet below half */
    assert_true(cn_link_rx_pause(1, 500, H, 0, R));
    assert_false(cn_link_rx_pause(1, 499, H, 49, R));
}

static void test_addr_key(void **state)
{
    const struct {
        const char *in, *want;
    } v[] = {
        {"192.0.2.7", "192.0.2.7"},
        {"::ffff:192.0.2.7", "192.0.2.7"},
        {"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
        {"2001:db8:1:2::99", "2001:db8:1:2::/64"},
        {"2001:DB8:1:2:ffff::1", "2001:db8:1:2::/64"},
        {"::1", "::/64"},
        {"?", "?"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char out[CN_LINK_ADDR_KEY_SIZE];
        cn_link_addr_key(v[i].in, out);
        assert_string_equal(out, v[i].want);
    }
    /* Two hosts of one /64 share a key; another /64 does not. */
    char a[CN_LINK_ADDR_KEY_SIZE], b[CN_LINK_ADDR_KEY_SIZE], c[CN_LINK_ADDR_KEY_SIZE];
    cn_link_addr_key("2001:db8::1", a);
    cn_link_addr_key("2001:db8::ffff:2", b);
    cn_link_addr_key("2001:db8:0:1::1", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_liveness_rule),
        cmocka_unit_test(test_100mib_64_streams),
        cmocka_unit_test(test_refused_agent),
        cmocka_unit_test(test_wrong_pin),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_handshake_rule),
        cmocka_unit_test(test_stall_rule),
        cmocka_unit_test(test_rx_pause_rule),
        cmocka_unit_test(test_addr_key),
        cmocka_unit_test(test_many_links_one_timer),
        cmocka_unit_test(test_own_stall_is_not_peer_silence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
