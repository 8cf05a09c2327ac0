/* cn_link server: the eviction of stale handshakes at a full pending cap.
 *
 * Raw WebSocket clients (plain sockets, in this process) upgrade to the
 * hub-side link server and then send a few channel bytes or none, so their
 * links stay in handshake. The server dates pending handshakes by a clock
 * this file sets (cn_link_server_config_t.clock_ms), so "pending for 250 ms"
 * needs no sleep; its real-time handshake deadlines are set far out of the
 * way. Two vhosts, on 127.0.0.1 and ::1, share one server: two addresses
 * for the per-address cap. A victim is the client whose socket the server
 * closes; every link's on_closed is recorded to check that each goes once,
 * for the right reason, and that the pending counts come back. */
#include "cn_test.h"

#include "cn_chan.h"
#include "cn_err.h"
#include "cn_link.h"
#include "cn_time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/socket.h>

#define MAX_CLIENTS 32
#define MAX_CLOSED 64
#define WAIT_MS 10000u /* real time a step may take on a loaded machine */

/* The server's clock for pending handshakes (see clock_ms). */
static uint64_t fake_now;
static uint64_t fake_clock(void)
{
    return fake_now;
}

typedef struct closed_rec {
    const cn_link_t *link;
    int err;
    cn_link_reason_t reason;
} closed_rec_t;

typedef struct client {
    int fd; /* -1 once closed by this side */
    int v6;
} client_t;

typedef struct ev_world {
    struct lws_context *ctx;
    cn_link_server_t *srv;
    int port4, port6;
    uint8_t hub_pk[32], hub_sk[32];
    closed_rec_t closed[MAX_CLOSED];
    int n_closed;
    int n_established; /* never expected: no client completes a handshake */
    client_t c[MAX_CLIENTS];
    int n;
} ev_world_t;

static int on_established(cn_link_t *l, void *ctx)
{
    (void)l;
    ev_world_t *w = ctx;
    w->n_established++;
    return 0;
}

static void on_closed(cn_link_t *l, void *ctx, int err, const char *why)
{
    (void)why;
    ev_world_t *w = ctx;
    for (int i = 0; i < w->n_closed; i++) /* a link is freed after this: each goes once */
        if (w->closed[i].link == l)
            fail_msg("on_closed twice for one link");
    assert_true(w->n_closed < MAX_CLOSED);
    w->closed[w->n_closed++] = (closed_rec_t){l, err, cn_link_close_reason(l)};
}

static int http_dummy(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static struct lws_protocols protocols[3];

/* lws 4.1 ignores lws_service()'s timeout when no timer is due (with no
 * link left, a service turn slept until lws's own housekeeping): a ticker
 * keeps the loop turning. */
static struct lws_context *tick_ctx;
static lws_sorted_usec_list_t ticker;
static void tick(lws_sorted_usec_list_t *sul)
{
    lws_sul_schedule(tick_ctx, 0, sul, tick, 10 * LWS_US_PER_MS);
}

static int listen_port(ev_world_t *w, const char *name, const char *iface)
{
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof(vi));
    vi.vhost_name = name;
    vi.iface = iface;
    vi.port = 0; /* any free port */
    vi.protocols = protocols;
    struct lws_vhost *vh = lws_create_vhost(w->ctx, &vi);
    assert_non_null(vh);
    int port = lws_get_vhost_listen_port(vh);
    assert_true(port > 0);
    return port;
}

/* A server with these caps (0 = the default) listening on both addresses. */
static void ev_start(ev_world_t *w, unsigned max_pending, unsigned per_addr, unsigned max_links)
{
    memset(w, 0, sizeof(*w));
    for (int i = 0; i < MAX_CLIENTS; i++)
        w->c[i].fd = -1;
    fake_now = 1000;
    assert_int_equal(cn_chan_keypair(w->hub_pk, w->hub_sk), 0);
    cn_link_server_config_t sc = {
        .path = "/agent",
        .binding = "ws://127.0.0.1/agent",
        .static_sk = w->hub_sk,
        .cb = {.on_established = on_established, .on_closed = on_closed},
        .ctx = w,
        .max_pending = max_pending,
        .max_pending_per_addr = per_addr,
        .max_links = max_links,
        /* Only the fake clock may age a handshake here, not a slow machine. */
        .timing = {.handshake_ms = 600000, .handshake_grace_ms = 600000},
        .clock_ms = fake_clock,
    };
    w->srv = cn_link_server_new(&sc, NULL, 0);
    assert_non_null(w->srv);
    memset(protocols, 0, sizeof(protocols));
    protocols[0].name = "http";
    protocols[0].callback = http_dummy;
    protocols[1] = cn_link_server_protocol(w->srv);

    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.pt_serv_buf_size = CN_LINK_LWS_BUF;
    w->ctx = lws_create_context(&info);
    assert_non_null(w->ctx);
    tick_ctx = w->ctx;
    memset(&ticker, 0, sizeof(ticker));
    tick(&ticker);
    w->port4 = listen_port(w, "v4", "127.0.0.1");
    w->port6 = listen_port(w, "v6", "::1");
}

static void ev_stop(ev_world_t *w)
{
    for (int i = 0; i < w->n; i++)
        if (w->c[i].fd >= 0)
            close(w->c[i].fd);
    lws_sul_cancel(&ticker);
    lws_context_destroy(w->ctx);
    cn_link_server_free(w->srv);
}

static void service(ev_world_t *w)
{
    lws_service(w->ctx, 10);
}

/* Whether the server closed client i's connection (EOF or reset). Reads
 * nothing else: a pending link sends nothing after the 101. */
static int peer_closed(ev_world_t *w, int i)
{
    char b[64];
    ssize_t r = recv(w->c[i].fd, b, sizeof(b), MSG_DONTWAIT);
    if (r > 0)
        fail_msg("client %d: %zd unexpected bytes from the server", i, r);
    return r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

static int connect_to(ev_world_t *w, int v6)
{
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int rc;
    if (v6) {
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(w->port6)};
        sa.sin6_addr = in6addr_loopback;
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(w->port4)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    if (rc != 0)
        fail_msg("connect: %s", strerror(errno));
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
    if (r < 0 || (size_t)r != n)
        fail_msg("send: %s", r < 0 ? strerror(errno) : "short");
}

/* A new client (IPv6 when v6) upgrades at fake time `at` and, once in,
 * sends `bytes` (at most 4) channel bytes: the start of a record header,
 * which the channel holds until the rest comes. Returns its index when the
 * server answered 101 (and counted the bytes), -1 when it refused. */
static int client_open(ev_world_t *w, int v6, uint64_t at, unsigned bytes)
{
    static const char req[] = "GET /agent HTTP/1.1\r\n"
                              "Host: 127.0.0.1\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Protocol: " CN_LINK_SUBPROTOCOL "\r\n\r\n";
    assert_true(w->n < MAX_CLIENTS);
    assert_true(bytes <= 4);
    fake_now = at;
    int fd = connect_to(w, v6);
    send_all(fd, req, sizeof(req) - 1);

    char resp[1024];
    size_t got = 0;
    int eof = 0;
    uint64_t end = cn_time_mono_ms() + WAIT_MS;
    while (!eof && cn_time_mono_ms() < end) {
        service(w);
        ssize_t r = recv(fd, resp + got, sizeof(resp) - 1 - got, MSG_DONTWAIT);
        if (r > 0) {
            got += (size_t)r;
            resp[got] = 0;
            if (strstr(resp, "\r\n\r\n"))
                break;
        } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            eof = 1;
        }
    }
    resp[got] = 0;
    if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
        if (!eof && got == 0)
            fail_msg("no answer to the upgrade in %u ms", WAIT_MS);
        close(fd);
        return -1;
    }
    int i = w->n++;
    w->c[i] = (client_t){fd, v6};
    if (bytes) {
        uint64_t rx0;
        cn_link_server_pending(w->srv, &rx0);
        /* A masked binary frame: a handshake record header, cut short. */
        static const uint8_t rec[4] = {CN_CHAN_REC_HANDSHAKE, 0, 0, 48};
        static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
        uint8_t f[2 + 4 + 4] = {0x82, (uint8_t)(0x80 | bytes)};
        memcpy(f + 2, mask, 4);
        for (unsigned k = 0; k < bytes; k++)
            f[6 + k] = rec[k] ^ mask[k];
        send_all(fd, f, 6 + bytes);
        uint64_t rx = rx0;
        while (rx != rx0 + bytes && cn_time_mono_ms() < end) {
            service(w);
            cn_link_server_pending(w->srv, &rx);
        }
        assert_int_equal(rx, rx0 + bytes);
    }
    return i;
}

/* Services until `n` links reported on_closed (or the wait ends), then
 * a few turns more so that an extra close would show. */
static void wait_closed(ev_world_t *w, int n)
{
    uint64_t end = cn_time_mono_ms() + WAIT_MS;
    while (w->n_closed < n && cn_time_mono_ms() < end)
        service(w);
    for (int k = 0; k < 5; k++)
        service(w);
    assert_int_equal(w->n_closed, n);
}

/* Client i's connection was closed by the server (it was the victim). */
static void assert_evicted(ev_world_t *w, int i)
{
    uint64_t end = cn_time_mono_ms() + WAIT_MS;
    while (!peer_closed(w, i) && cn_time_mono_ms() < end)
        service(w);
    if (!peer_closed(w, i))
        fail_msg("client %d is still connected", i);
    close(w->c[i].fd);
    w->c[i].fd = -1;
}

/* Every client this side did not close is still connected. */
static void assert_open(ev_world_t *w)
{
    for (int i = 0; i < w->n; i++)
        if (w->c[i].fd >= 0 && peer_closed(w, i))
            fail_msg("client %d was closed by the server", i);
}

static void assert_pending(ev_world_t *w, unsigned n)
{
    assert_int_equal(cn_link_server_pending(w->srv, NULL), n);
}

/* The last on_closed was an eviction: a handshake too slow. */
static void assert_last_evicted(ev_world_t *w)
{
    assert_true(w->n_closed > 0);
    closed_rec_t *r = &w->closed[w->n_closed - 1];
    assert_int_equal(r->err, CN_ETIMEOUT);
    assert_int_equal(r->reason, CN_LINK_HANDSHAKE_TOO_SLOW);
}

/* This side closes every client still open; each link goes once, as lost,
 * and the server's counts come back to zero. */
static void close_all(ev_world_t *w)
{
    int evicted = w->n_closed, open = 0;
    for (int i = 0; i < w->n; i++)
        if (w->c[i].fd >= 0) {
            close(w->c[i].fd);
            w->c[i].fd = -1;
            open++;
        }
    wait_closed(w, evicted + open);
    for (int k = evicted; k < w->n_closed; k++)
        assert_int_equal(w->closed[k].reason, CN_LINK_LOST);
    assert_int_equal(w->n_closed, w->n); /* every admitted link, once */
    assert_int_equal(cn_link_server_count(w->srv), 0);
    assert_pending(w, 0);
    assert_int_equal(w->n_established, 0);
}

/* A newcomer at fake time `at` gets in and `victim` alone goes, as too slow;
 * the pending count is what it was (one in, one out) and nobody else is
 * closed. */
static void admit_evicting(ev_world_t *w, int v6, uint64_t at, int victim)
{
    unsigned pending = cn_link_server_pending(w->srv, NULL);
    int closed = w->n_closed;
    assert_true(client_open(w, v6, at, 0) >= 0);
    assert_evicted(w, victim);
    wait_closed(w, closed + 1);
    assert_last_evicted(w);
    assert_pending(w, pending);
    assert_open(w);
}

/* A newcomer at fake time `at` is refused (admitted = 0) or let in without
 * an eviction (admitted = 1); either way nobody else is closed. */
static void admit_alone(ev_world_t *w, int v6, uint64_t at, int admitted)
{
    unsigned pending = cn_link_server_pending(w->srv, NULL);
    int closed = w->n_closed;
    assert_int_equal(client_open(w, v6, at, 0) >= 0, admitted);
    wait_closed(w, closed);
    assert_pending(w, pending + (unsigned)admitted);
    assert_open(w);
}

/* At the total cap a newcomer takes the slot of the stale handshake with the
 * fewest bytes received, the oldest of equals; one pending under 250 ms is
 * never taken, however few its bytes; with none stale the newcomer is
 * refused and nothing is dropped. */
static void test_total_cap_victim(void **state)
{
    (void)state;
    ev_world_t w;
    ev_start(&w, 5, 16, 0);
    int a = client_open(&w, 0, 1000, 2); /* the oldest, the most bytes */
    int b = client_open(&w, 0, 1010, 0);
    int e = client_open(&w, 0, 1020, 0);
    int c = client_open(&w, 0, 1030, 1); /* the newest stale: fewer bytes than a only */
    int d = client_open(&w, 0, 1400, 0); /* no bytes, but young */
    assert_true(a >= 0 && b >= 0 && c >= 0 && e >= 0 && d >= 0);
    assert_pending(&w, 5);
    assert_int_equal(w.n_closed, 0);

    /* At 1500 all but d are stale: they go by bytes, then age, then no more. */
    const int order[] = {b, e, c, a};
    for (int k = 0; k < 4; k++)
        admit_evicting(&w, 0, 1500, order[k]);

    /* At 1649 the oldest left (d) is 249 ms pending: the newcomer is refused. */
    admit_alone(&w, 0, 1649, 0);
    /* At 1650 d is 250 ms pending and goes. */
    admit_evicting(&w, 0, 1650, d);
    assert_pending(&w, 5);

    close_all(&w);
    ev_stop(&w);
}

/* At an address's cap the victim is that address's: an older handshake with
 * as few bytes from another address stays. Below both caps nobody goes. After
 * all close, the address's count is back to zero: exactly `per_addr` get in
 * again, and the next (none stale) is refused. */
static void test_per_address_cap(void **state)
{
    (void)state;
    ev_world_t w;
    ev_start(&w, 8, 3, 0);
    int x = client_open(&w, 1, 1000, 0);
    int a = client_open(&w, 0, 1005, 1);
    int b = client_open(&w, 0, 1010, 0);
    int c = client_open(&w, 0, 1015, 0);
    assert_true(x >= 0 && a >= 0 && b >= 0 && c >= 0);
    assert_pending(&w, 4);

    /* None of 127.0.0.1's is 250 ms pending yet: refused. */
    admit_alone(&w, 0, 1100, 0);
    /* b goes; x, the oldest with no bytes, stays: it is from ::1. */
    admit_evicting(&w, 0, 1300, b);
    /* ::1 is below its cap and the total below its own: no eviction. */
    admit_alone(&w, 1, 1300, 1);
    admit_evicting(&w, 0, 1300, c);
    assert_pending(&w, 5);
    close_all(&w);

    /* The counts are back where they started: three in, the fourth out. */
    for (int i = 0; i < 3; i++)
        admit_alone(&w, 0, 5000, 1);
    admit_alone(&w, 0, 5000, 0);
    assert_pending(&w, 3);
    close_all(&w);
    ev_stop(&w);
}

/* Both caps full at once, the newcomer's address being the one at its cap:
 * one handshake yields, that address's, and the total stays at its cap. */
static void test_both_caps_one_victim(void **state)
{
    (void)state;
    ev_world_t w;
    ev_start(&w, 4, 3, 0);
    int x = client_open(&w, 1, 1000, 0); /* the fewest bytes and the oldest of all */
    int a = client_open(&w, 0, 1005, 1);
    int b = client_open(&w, 0, 1010, 1);
    int c = client_open(&w, 0, 1015, 1);
    assert_true(x >= 0 && a >= 0 && b >= 0 && c >= 0);
    assert_pending(&w, 4);

    admit_evicting(&w, 0, 1500, a);
    assert_pending(&w, 4);
    close_all(&w);
    ev_stop(&w);
}

/* At the cap of links a newcomer is refused whatever is pending: dropping a
 * stale handshake would not let it in. */
static void test_links_cap_evicts_nobody(void **state)
{
    (void)state;
    ev_world_t w;
    ev_start(&w, 3, 3, 3);
    for (int i = 0; i < 3; i++)
        admit_alone(&w, 0, 1000, 1);
    admit_alone(&w, 0, 2000, 0); /* all three stale, none dropped */
    close_all(&w);
    ev_stop(&w);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_total_cap_victim),
        cmocka_unit_test(test_per_address_cap),
        cmocka_unit_test(test_both_caps_one_victim),
        cmocka_unit_test(test_links_cap_evicts_nobody),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
