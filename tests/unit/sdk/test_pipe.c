/* cn_pipe: a hub-side pipe (socket adopted, stream opened to the agent) and an
 * agent-side pipe (stream accepted by dialing a real TCP echo server), over a
 * real loopback link. Checks integrity, half-close, refusal and link loss. */
#include "cn_test.h"

#include "cn_chan.h"
#include "cn_err.h"
#include "cn_frame.h"
#include "cn_link.h"
#include "cn_pipe.h"
#include "cn_time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct world {
    struct lws_context *ctx;
    struct lws_vhost *vh;
    cn_link_server_t *srv;
    cn_link_t *hub_link, *agent_link;
    int agent_closed, hub_closed;
    int port;
    int echo_lfd, echo_fd; /* the agent's "target": accept + echo */
    int target_port;
    uint8_t echo_buf[65536];
    size_t echo_have;
    int echo_eof;
    int echo_err; /* errno of the target socket's failed recv/send, 0 if none */
    int pipes_done, last_err;
    int agent_silent; /* the agent leaves OPENs unanswered (a frozen agent) */
} world_t;

static world_t w;
static uint32_t g_window; /* 0 = default stream windows */
/* Links with flush_after_turn, and service() ends each turn with
 * cn_pipe_flush_turn(), as the hub's and the agent's loops do. */
static int g_turns;
static int g_small_bufs; /* tiny socket buffers: short reads, partial sends */

static void pipe_done(void *ctx, cn_pipe_t *p, int err)
{
    w.pipes_done++;
    if (getenv("CN_TEST_VERBOSE"))
        fprintf(stderr, "pipe done err=%d up=%llu down=%llu\n", err,
                (unsigned long long)cn_pipe_bytes_up(p), (unsigned long long)cn_pipe_bytes_down(p));
    w.last_err = err;
}

static const cn_pipe_config_t pcfg = {.done = pipe_done};

/* Agent: every OPEN dials the target. */
static void agent_on_open(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t rl,
                          const uint8_t *meta, size_t ml)
{
    cn_link_t *l = ctx;
    int err;
    if (w.agent_silent)
        return; /* neither accept nor reject */
    if (!cn_pipe_dial(w.vh, l, id, "127.0.0.1", w.target_port, &pcfg, &err))
        cn_mux_reject(cn_link_mux(l), id, CN_RST_UNREACHABLE, "dial failed");
}

static int hub_est(cn_link_t *l, void *ctx)
{
    w.hub_link = l;
    return 0;
}

static void hub_closed(cn_link_t *l, void *ctx, int err, const char *why)
{
    w.hub_closed = 1;
    w.hub_link = NULL;
}

static int agent_est(cn_link_t *l, void *ctx)
{
    return 0;
}

static void agent_closed(cn_link_t *l, void *ctx, int err, const char *why)
{
    w.agent_closed = 1;
    w.agent_link = NULL;
}

static int http_dummy(struct lws *wsi, enum lws_callback_reasons r, void *u, void *in, size_t len)
{
    return lws_callback_http_dummy(wsi, r, u, in, len);
}

static struct lws_protocols protos[5];

/* lws 4.1 ignores lws_service()'s timeout when no timer is due: a ticker
 * keeps the test loop turning so its deadlines are checked. */
static lws_sorted_usec_list_t ticker;
static void tick(lws_sorted_usec_list_t *sul)
{
    lws_sul_schedule(w.ctx, 0, &ticker, tick, 10 * LWS_US_PER_MS);
}
static cn_mux_callbacks_t hub_cb, agent_cb;

/* The echo target: accepts one connection, echoes, half-closes on EOF. */
static void echo_service(void)
{
    if (w.echo_fd < 0 && w.echo_lfd >= 0) {
        int fd = accept(w.echo_lfd, NULL, NULL);
        if (fd >= 0) {
            assert_int_equal(cn_sock_tune(fd), 0);
            w.echo_fd = fd;
        }
    }
    if (w.echo_fd < 0)
        return;
    for (;;) {
        if (w.echo_have) {
            ssize_t n = send(w.echo_fd, w.echo_buf, w.echo_have, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            memmove(w.echo_buf, w.echo_buf + n, w.echo_have - (size_t)n);
            w.echo_have -= (size_t)n;
            continue;
        }
        if (w.echo_eof)
            break;
        ssize_t n = recv(w.echo_fd, w.echo_buf, sizeof(w.echo_buf), 0);
        if (n > 0) {
            w.echo_have = (size_t)n;
            continue;
        }
        if (n == 0) {
            w.echo_eof = 1;
            shutdown(w.echo_fd, SHUT_WR);
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            w.echo_err = errno;
        break;
    }
}

static void service(void)
{
    lws_service(w.ctx, 5);
    if (g_turns)
        cn_pipe_flush_turn();
    echo_service();
}

static void world_start(void)
{
    uint8_t hpk[32], hsk[32], apk[32], ask[32];
    memset(&w, 0, sizeof(w));
    w.echo_fd = -1;
    assert_int_equal(cn_chan_keypair(hpk, hsk), 0);
    assert_int_equal(cn_chan_keypair(apk, ask), 0);
    memset(&hub_cb, 0, sizeof(hub_cb));
    memset(&agent_cb, 0, sizeof(agent_cb));
    cn_stream_dispatch_callbacks(&hub_cb);
    cn_stream_dispatch_callbacks(&agent_cb);
    agent_cb.on_open = agent_on_open;
    cn_link_server_config_t sc = {.path = "/agent",
                                  .static_sk = hsk,
                                  .mux_cb = &hub_cb,
                                  .mux = {.window = g_window},
                                  .cb = {.on_established = hub_est, .on_closed = hub_closed},
                                  .flush_after_turn = g_turns};
    w.srv = cn_link_server_new(&sc, NULL, 0);
    assert_non_null(w.srv);
    memset(protos, 0, sizeof(protos));
    protos[0].name = "http";
    protos[0].callback = http_dummy;
    protos[1] = cn_link_server_protocol(w.srv);
    protos[2] = *cn_link_client_protocol();
    protos[3] = *cn_pipe_protocol();
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = 0;
    info.iface = "127.0.0.1";
    info.protocols = protos;
    info.pt_serv_buf_size = CN_LINK_LWS_BUF;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    lws_set_log_level(LLL_ERR, NULL);
    w.ctx = lws_create_context(&info);
    assert_non_null(w.ctx);
    memset(&ticker, 0, sizeof(ticker));
    tick(&ticker);
    w.vh = lws_get_vhost_by_name(w.ctx, "default");
    w.port = lws_get_vhost_listen_port(w.vh);
    w.echo_lfd = cn_sock_listen("127.0.0.1", 0, 16, &w.target_port);
    assert_true(w.echo_lfd >= 0);
    if (g_small_bufs) {
        /* The agent's sendmsg() stops mid-iovec. On the listener, so that
         * the accepted socket has it from its SYN on: shrunk later, TCP
         * stalls in retransmission backoff. */
        int sz = 4096;
        setsockopt(w.echo_lfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }

    cn_link_client_config_t cc = {.host = "127.0.0.1",
                                  .port = w.port,
                                  .path = "/agent",
                                  .static_sk = ask,
                                  .hub_pk = hpk,
                                  .mux_cb = &agent_cb,
                                  .mux = {.window = g_window},
                                  .cb = {.on_established = agent_est, .on_closed = agent_closed},
                                  .flush_after_turn = g_turns};
    w.agent_link = cn_link_connect(w.ctx, w.vh, &cc, NULL, 0);
    assert_non_null(w.agent_link);
    uint64_t end = cn_time_mono_ms() + 10000;
    while (!(w.hub_link && cn_link_is_established(w.agent_link)) && cn_time_mono_ms() < end)
        service();
    assert_non_null(w.hub_link);
}

static void world_stop(void)
{
    if (w.agent_link)
        cn_link_close(w.agent_link, "test over");
    uint64_t end = cn_time_mono_ms() + 5000;
    while ((!w.agent_closed || !w.hub_closed) && cn_time_mono_ms() < end)
        service();
    lws_sul_cancel(&ticker);
    lws_context_destroy(w.ctx);
    cn_link_server_free(w.srv);
    if (w.echo_fd >= 0)
        close(w.echo_fd);
    if (w.echo_lfd >= 0)
        close(w.echo_lfd);
}

/* Sends `msg` on the client socket and services the loop until its echo
 * is back (or 5 s pass): the stream is up end to end. */
static void echo_roundtrip(int fd, const char *msg)
{
    size_t len = strlen(msg), got = 0;
    char b[64];
    assert_true(len <= sizeof(b));
    send(fd, msg, len, MSG_NOSIGNAL);
    uint64_t end = cn_time_mono_ms() + 5000;
    while (got < len && cn_time_mono_ms() < end) {
        ssize_t n = recv(fd, b + got, sizeof(b) - got, 0);
        if (n > 0)
            got += (size_t)n;
        service();
    }
    assert_int_equal(got, len);
    assert_memory_equal(b, msg, len);
}

/* A client on the hub side sends 8 MiB, half-closes, and gets every byte back
 * followed by EOF: integrity and half-close through both pipes. */
static void tcp_pair(int *client, int *server);

static void echo_half_close(void)
{
    world_start();
    int sv[2];
    if (g_small_bufs) {
        /* TCP with small buffers and a slow reader: the hub's sendmsg()
         * fills the socket and stops in the middle of its iovec, and the
         * stream's unsent bytes span several chunks. */
        tcp_pair(&sv[1], &sv[0]);
        int sz = 4096;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    } else {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    }
    int err = 0;
    cn_pipe_t *p = cn_pipe_open(w.vh, sv[0], w.hub_link, CN_KIND_TCP, (const uint8_t *)"t", 1, NULL,
                                0, &pcfg, &err);
    assert_non_null(p);

    const size_t total = 8u << 20;
    uint8_t *out = malloc(total), *in = malloc(total);
    cn_test_fill(out, total, 42);
    size_t sent = 0, got = 0;
    int shut = 0, eof = 0;
    uint64_t end = cn_time_mono_ms() + 60000;
    uint64_t rng = 7;
    while (!eof && cn_time_mono_ms() < end) {
        if (sent < total) {
            size_t want = total - sent;
            if (g_small_bufs) { /* odd sizes: reads end anywhere inside a chunk */
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                size_t k = 1 + (size_t)(rng >> 33) % 70000;
                want = k < want ? k : want;
            }
            ssize_t n = send(sv[1], out + sent, want, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
        } else if (!shut) {
            shutdown(sv[1], SHUT_WR);
            shut = 1;
        }
        for (;;) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            if (g_small_bufs && (rng >> 40) % 4)
                break; /* a slow reader: reads one turn in four */
            ssize_t n = recv(sv[1], in + got, total - got, 0);
            if (n > 0) {
                got += (size_t)n;
                continue;
            }
            if (n == 0)
                eof = 1;
            break;
        }
        service();
    }
    assert_true(eof);
    assert_int_equal(got, total);
    assert_memory_equal(in, out, total);
    /* Both pipes finish cleanly once both directions are closed. */
    end = cn_time_mono_ms() + 5000;
    while (w.pipes_done < 2 && cn_time_mono_ms() < end)
        service();
    assert_int_equal(w.pipes_done, 2);
    assert_int_equal(w.last_err, 0);
    close(sv[1]);
    free(out);
    free(in);
    world_stop();
}

static void test_echo_half_close(void **state)
{
    echo_half_close();
}

/* The same through the hub's and the agent's way of running: sockets
 * written at the end of each loop turn (cn_pipe_flush_turn()), with socket
 * buffers so small that every readv() is short and sendmsg() stops in the
 * middle of its iovec (and of a chunk), and small windows so that the turn
 * often ends with a stream out of credit. Every byte must arrive in order. */
static void test_echo_vectored_turns(void **state)
{
    g_turns = 1;
    g_small_bufs = 1;
    g_window = 48 * 1024;
    echo_half_close();
    g_window = 0;
    g_small_bufs = 0;
    g_turns = 0;
}

/* The client half-closes and reads nothing until the target has echoed
 * everything and shut down: the agent's pipe is paused (no credit) when the
 * target's FIN arrives, so the socket reports POLLHUP without POLLIN. Every
 * byte must still arrive, then EOF. */
static void test_hup_while_paused(void **state)
{
    g_window = 16 * 1024; /* the agent's pipe runs out of credit early */
    world_start();
    g_window = 0;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    int err = 0;
    cn_pipe_t *hp = cn_pipe_open(w.vh, sv[0], w.hub_link, CN_KIND_TCP, (const uint8_t *)"t", 1,
                                 NULL, 0, &pcfg, &err);
    assert_non_null(hp);
    const size_t total = 512u << 10; /* fits the kernel's socket buffers */
    uint8_t *out = malloc(total), *in = malloc(total);
    cn_test_fill(out, total, 7);
    size_t sent = 0, got = 0;
    uint64_t end = cn_time_mono_ms() + 30000;
    while (sent < total && cn_time_mono_ms() < end) {
        ssize_t n = send(sv[1], out + sent, total - sent, MSG_NOSIGNAL);
        if (n > 0)
            sent += (size_t)n;
        else
            service(); /* the client reads nothing yet */
    }
    shutdown(sv[1], SHUT_WR);
    /* Let the target echo all it can and shut down while nobody reads. */
    while (!(w.echo_eof && w.echo_have == 0) && cn_time_mono_ms() < end)
        service();
    assert_true(w.echo_eof);
    for (int i = 0; i < 50; i++)
        service();
    int eof = 0;
    end = cn_time_mono_ms() + 30000;
    while (!eof && cn_time_mono_ms() < end) {
        ssize_t n = recv(sv[1], in + got, total - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0)
            eof = 1;
        service();
    }
    if (!eof)
        fprintf(stderr, "got %zu of %zu, echo_have %zu, pipes done %d, hub pipe down %llu\n", got,
                total, w.echo_have, w.pipes_done, (unsigned long long)cn_pipe_bytes_down(hp));
    assert_true(eof);
    assert_int_equal(got, total);
    assert_memory_equal(in, out, total);
    close(sv[1]);
    free(out);
    free(in);
    world_stop();
}

/* The agent cannot reach the target: the hub-side pipe ends, its socket
 * closes at once (no hang), and done reports the refusal. */
static void test_target_refused(void **state)
{
    world_start();
    close(w.echo_lfd);
    w.echo_lfd = -1;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    int err = 0;
    assert_non_null(cn_pipe_open(w.vh, sv[0], w.hub_link, CN_KIND_TCP, (const uint8_t *)"t", 1,
                                 NULL, 0, &pcfg, &err));
    uint64_t end = cn_time_mono_ms() + 10000;
    int eof = 0;
    while (!eof && cn_time_mono_ms() < end) {
        char b[16];
        ssize_t n = recv(sv[1], b, sizeof(b), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            eof = 1;
        service();
    }
    assert_true(eof);
    end = cn_time_mono_ms() + 5000;
    while (w.pipes_done < 2 && cn_time_mono_ms() < end)
        service();
    /* The agent's dial pipe and the hub's pipe both report the refusal. */
    assert_int_equal(w.pipes_done, 2);
    assert_int_equal(w.last_err, CN_EREFUSED);
    close(sv[1]);
    world_stop();
}

/* The link dies while a connection is open: both pipes end and their
 * sockets close; nothing leaks. */
static void test_link_loss(void **state)
{
    world_start();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_non_null(cn_pipe_open(w.vh, sv[0], w.hub_link, CN_KIND_TCP, (const uint8_t *)"t", 1,
                                 NULL, 0, &pcfg, NULL));
    echo_roundtrip(sv[1], "ping");
    char b[8];
    cn_link_close(w.agent_link, "simulated loss");
    uint64_t end = cn_time_mono_ms() + 5000;
    while (w.pipes_done < 2 && cn_time_mono_ms() < end)
        service();
    assert_int_equal(w.pipes_done, 2);
    int eof = 0;
    end = cn_time_mono_ms() + 2000;
    while (!eof && cn_time_mono_ms() < end) {
        ssize_t n = recv(sv[1], b, sizeof(b), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            eof = 1;
        service();
    }
    assert_true(eof);
    close(sv[1]);
    world_stop();
}

/* A connected TCP pair on loopback (SO_LINGER, unlike a socketpair, turns
 * a close into a real RST): *client is ours, *server goes into a pipe. */
static void tcp_pair(int *client, int *server)
{
    int port = 0;
    int lfd = cn_sock_listen("127.0.0.1", 0, 4, &port);
    assert_true(lfd >= 0);
    *client = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(*client, (struct sockaddr *)&sa, sizeof(sa)), 0);
    uint64_t end = cn_time_mono_ms() + 2000;
    do
        *server = accept(lfd, NULL, NULL);
    while (*server < 0 && errno == EAGAIN && cn_time_mono_ms() < end);
    assert_true(*server >= 0);
    close(lfd);
    assert_int_equal(cn_sock_tune(*client), 0);
}

/* A server that accepts from cn_sock_listen() need not set TCP_NODELAY on
 * each connection (the HTTP edge does not): the listener's is inherited. */
static void test_listener_gives_nodelay(void **state)
{
    (void)state;
    int client = -1, server = -1, on = 0;
    socklen_t len = sizeof(on);
    int port = 0;
    int lfd = cn_sock_listen("127.0.0.1", 0, 4, &port);
    assert_true(lfd >= 0);
    client = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(client, (struct sockaddr *)&sa, sizeof(sa)), 0);
    uint64_t end = cn_time_mono_ms() + 2000;
    do
        server = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    while (server < 0 && errno == EAGAIN && cn_time_mono_ms() < end);
    assert_true(server >= 0);
    assert_int_equal(getsockopt(server, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
    assert_int_equal(on, 1);
    close(server);
    close(client);
    close(lfd);
}

/* Reads the client socket until it ends; returns 0 for a clean EOF, else
 * the errno it failed with (-1: still open at the deadline). */
static int client_end(int fd, uint64_t ms)
{
    uint64_t end = cn_time_mono_ms() + ms;
    char b[65536];
    while (cn_time_mono_ms() < end) {
        ssize_t n = recv(fd, b, sizeof(b), 0);
        if (n == 0)
            return 0;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return errno;
        service();
    }
    return -1;
}

/* The link dies in the middle of a transfer: the client must not see a
 * clean EOF (that would make a truncated download look complete), and
 * neither must the target: both sockets end with RST. */
static void test_link_loss_resets_both_sockets(void **state)
{
    world_start();
    int c, sfd;
    tcp_pair(&c, &sfd);
    assert_non_null(cn_pipe_open(w.vh, sfd, w.hub_link, CN_KIND_TCP, (const uint8_t *)"t", 1, NULL,
                                 0, &pcfg, NULL));
    /* Some bytes go both ways, and the target keeps its side open. */
    echo_roundtrip(c, "ping");
    assert_true(w.echo_fd >= 0);

    cn_link_close(w.hub_link, "simulated hub death");
    uint64_t end = cn_time_mono_ms() + 5000;
    while (w.pipes_done < 2 && cn_time_mono_ms() < end)
        service();
    assert_int_equal(w.pipes_done, 2);
    assert_int_equal(client_end(c, 3000), ECONNRESET);
    end = cn_time_mono_ms() + 3000;
    while (!w.echo_err && !w.echo_eof && cn_time_mono_ms() < end)
        service();
    assert_false(w.echo_eof);
    assert_int_equal(w.echo_err, ECONNRESET);
    close(c);
    world_stop();
}

/* The clean counterpart: the target ends with its own FIN, the client gets
 * every byte and a plain EOF, no reset. */
static void test_clean_end_is_fin(void **state)
{
    world_start();
    int c, sfd;
    tcp_pair(&c, &sfd);
    assert_non_null(cn_pipe_open(w.vh, sfd, w.hub_link, CN_KIND_TCP, (const uint8_t *)"t", 1, NULL,
                                 0, &pcfg, NULL));
    send(c, "hello", 5, MSG_NOSIGNAL);
    shutdown(c, SHUT_WR);
    uint64_t end = cn_time_mono_ms() + 5000;
    char b[16];
    size_t got = 0;
    int rc = -1;
    while (cn_time_mono_ms() < end) {
        ssize_t n = recv(c, b + got, sizeof(b) - got, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0 || errno != EAGAIN) {
            rc = n == 0 ? 0 : errno;
            break;
        }
        service();
    }
    assert_int_equal(rc, 0);
    assert_int_equal(got, 5);
    end = cn_time_mono_ms() + 5000;
    while (w.pipes_done < 2 && cn_time_mono_ms() < end)
        service();
    assert_int_equal(w.last_err, 0);
    assert_int_equal(w.echo_err, 0);
    close(c);
    world_stop();
}

/* The agent never answers an OPEN (frozen, or its link half dead): the
 * client is refused with RST once the open deadline passes, instead of
 * hanging until pings declare the link dead; the link itself stays up. */
static void test_unanswered_open_is_refused(void **state)
{
    world_start();
    w.agent_silent = 1;
    int c, sfd;
    tcp_pair(&c, &sfd);
    cn_pipe_config_t quick = {.done = pipe_done, .open_timeout_ms = 300};
    uint64_t t0 = cn_time_mono_ms();
    assert_non_null(cn_pipe_open(w.vh, sfd, w.hub_link, CN_KIND_TCP, (const uint8_t *)"t", 1, NULL,
                                 0, &quick, NULL));
    send(c, "waiting", 7, MSG_NOSIGNAL);
    assert_int_equal(client_end(c, 5000), ECONNRESET);
    uint64_t took = cn_time_mono_ms() - t0;
    assert_true(took >= 250);
    assert_true(took < 2000);
    uint64_t end = cn_time_mono_ms() + 2000;
    while (w.pipes_done < 1 && cn_time_mono_ms() < end)
        service();
    assert_int_equal(w.pipes_done, 1);
    assert_int_equal(w.last_err, CN_ETIMEOUT);
    assert_non_null(w.hub_link);
    assert_true(cn_link_is_established(w.agent_link));
    close(c);
    world_stop();
}

/* An answered open does not trip the deadline, however long the transfer. */
static void test_open_deadline_only_until_accept(void **state)
{
    world_start();
    int c, sfd;
    tcp_pair(&c, &sfd);
    cn_pipe_config_t quick = {.done = pipe_done, .open_timeout_ms = 200};
    assert_non_null(cn_pipe_open(w.vh, sfd, w.hub_link, CN_KIND_TCP, (const uint8_t *)"t", 1, NULL,
                                 0, &quick, NULL));
    echo_roundtrip(c, "ping");
    uint64_t end = cn_time_mono_ms() + 600; /* well past the deadline */
    while (cn_time_mono_ms() < end)
        service();
    assert_int_equal(w.pipes_done, 0);
    echo_roundtrip(c, "pong");
    close(c);
    world_stop();
}

/* Link loss and a clean end behave the same with the turn lists in use. */
static void test_ends_with_turns(void **state)
{
    g_turns = 1;
    test_link_loss(state);
    test_link_loss_resets_both_sockets(state);
    test_clean_end_is_fin(state);
    g_turns = 0;
}

/* A link queued for the end of the turn and freed before it (its context
 * destroyed) must leave the list: the next cn_link_flush_turn() would use
 * it after free (ASan). */
static void test_link_freed_while_queued(void **state)
{
    g_turns = 1;
    world_start();
    assert_int_equal(cn_mux_ping(cn_link_mux(w.hub_link), 1), 0);
    assert_int_equal(cn_mux_ping(cn_link_mux(w.agent_link), 2), 0);
    cn_link_flush(w.hub_link);
    cn_link_flush(w.agent_link);
    lws_sul_cancel(&ticker);
    lws_context_destroy(w.ctx); /* frees both links, queued */
    cn_link_flush_turn();       /* must find nothing */
    cn_link_server_free(w.srv);
    close(w.echo_lfd);
    g_turns = 0;
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_half_close),
        cmocka_unit_test(test_echo_vectored_turns),
        cmocka_unit_test(test_hup_while_paused),
        cmocka_unit_test(test_target_refused),
        cmocka_unit_test(test_link_loss),
        cmocka_unit_test(test_link_loss_resets_both_sockets),
        cmocka_unit_test(test_clean_end_is_fin),
        cmocka_unit_test(test_unanswered_open_is_refused),
        cmocka_unit_test(test_open_deadline_only_until_accept),
        cmocka_unit_test(test_ends_with_turns),
        cmocka_unit_test(test_link_freed_while_queued),
        cmocka_unit_test(test_listener_gives_nodelay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
