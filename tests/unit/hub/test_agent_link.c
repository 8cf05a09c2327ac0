/* The hub's agent links (agents.c) against an agent that holds the
 * allow-list the way `connect agent` does (sdk/src/allowlist.c, its
 * 4,096-tunnel bound, and the daemon's rule: an upsert over that bound
 * closes the link). The real runtime, store and cn_link on a loopback
 * WebSocket, in one thread: the test decides when the loop turns, so it
 * fills the hub's queue to the agent exactly, without sockets' buffers or
 * timing in the way.
 *
 * Story: an agent at the cap (4,096 tunnels) whose tunnel_remove was lost
 * to a full queue gets the next new tunnel without closing its link: the
 * hub, knowing a message was lost, sends the whole list at once instead
 * of the entry; once that list went, deltas go as entries again. */
#include "hub_test.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <sodium.h>
#include <time.h>

#include "allowlist.h"
#include "cn_chan.h"
#include "cn_ctlpage.h"
#include "cn_err.h"
#include "cn_link.h"
#include "cn_log.h"
#include "cn_mux.h"
#include "cn_time.h"
#include "runtime.h"
#include "runtime_internal.h"
#include "tunnels.h"

/* ---- the agent's side --------------------------------------------------- */

typedef struct agent {
    cn_link_t *link;
    int hello, closed;
    char why[120];
    agent_allowlist_t list;
    cn_ctlpage_t pages;
    /* Messages received, by kind. */
    unsigned lists, upserts, removes, pads, marks;
    int too_big; /* an upsert went over AGENT_ALLOWLIST_MAX */
} agent_t;

static void take_list(agent_t *a, const json_t *arr)
{
    agent_allowlist_t nl = {0};
    assert_int_equal(agent_allowlist_parse(arr, &nl, NULL), 0);
    agent_allowlist_free(&a->list);
    a->list = nl;
    a->lists++;
}

/* As the daemon's on_control (sdk/src/daemon.c) for what this test sends;
 * an upsert over the bound closes the link there ("too many tunnels with
 * an upsert ... reconnecting"), cutting its streams: here too. */
static void agent_control(void *ctx, const uint8_t *payload, size_t len)
{
    cn_link_t *link = ctx;
    agent_t *a = cn_link_user(link);
    json_t *msg = json_loadb((const char *)payload, len, 0, NULL);
    const char *type = json_string_value(json_object_get(msg, "type"));
    assert_non_null(type);
    if (!strcmp(type, "hello")) {
        a->hello = 1;
        if (!json_is_true(json_object_get(msg, "tunnelsPaged")))
            take_list(a, json_object_get(msg, "tunnels"));
    } else if (!strcmp(type, "tunnels")) {
        take_list(a, json_object_get(msg, "tunnels"));
    } else if (!strcmp(type, "tunnels_page")) {
        json_t *whole = NULL;
        int rc = cn_ctlpage_add(&a->pages, msg, &whole);
        assert_true(rc >= 0);
        if (rc == 1) {
            take_list(a, whole);
            json_decref(whole);
        }
    } else if (!strcmp(type, "tunnel_status")) {
        const char *id = json_string_value(json_object_get(msg, "tunnelId"));
        const char *st = json_string_value(json_object_get(msg, "status"));
        assert_true(agent_allowlist_set_status(&a->list, id, st) >= 0);
    } else if (!strcmp(type, "tunnel_upsert")) {
        a->upserts++;
        int rc = agent_allowlist_upsert(&a->list, json_object_get(msg, "tunnel"));
        if (rc == CN_ETOOBIG) {
            a->too_big = 1;
            cn_link_close(link, "tunnel list too long");
        } else {
            assert_true(rc >= 0);
        }
    } else if (!strcmp(type, "tunnel_remove")) {
        a->removes++;
        const char *id = json_string_value(json_object_get(msg, "tunnelId"));
        assert_true(agent_allowlist_remove(&a->list, id) >= 0);
    } else if (!strcmp(type, "test_pad")) {
        a->pads++;
    } else if (!strcmp(type, "test_mark")) {
        a->marks++;
    }
    json_decref(msg);
}

static void agent_open(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t ref_len,
                       const uint8_t *meta, size_t meta_len)
{
    (void)kind, (void)ref, (void)ref_len, (void)meta, (void)meta_len;
    cn_mux_reject(cn_link_mux(ctx), id, CN_RST_REFUSED, "not in this test");
    cn_link_flush(ctx);
}

static int agent_established(cn_link_t *link, void *ctx)
{
    (void)link, (void)ctx;
    return 0;
}

static void agent_closed(cn_link_t *link, void *ctx, int err, const char *why)
{
    (void)link, (void)err;
    agent_t *a = ctx;
    a->closed = 1;
    a->link = NULL;
    snprintf(a->why, sizeof(a->why), "%s", why ? why : "");
}

static const cn_mux_callbacks_t agent_mux_cb = {.on_open = agent_open, .on_control = agent_control};

/* ---- the hub ------------------------------------------------------------ */

/* CONTROL messages of the test's own queued on the hub's side. */
static unsigned marks_sent, pads_sent;

typedef struct world {
    hub_test_store_t s;
    hub_workspace_t ws;
    hub_agent_t ag;
    hub_keypair_t kp;
    uint8_t agent_pk[32], agent_sk[32];
    hub_runtime_t *rt;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct lws_protocols protocols[12];
    agent_t a;
    char payload[200];
} world_t;

static int http_dummy(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* lws 4.1 ignores lws_service()'s timeout when no timer is due: a ticker
 * keeps the test loop turning so its deadlines are checked. */
static lws_sorted_usec_list_t ticker;
static struct lws_context *ticker_ctx;
static void tick(lws_sorted_usec_list_t *sul)
{
    lws_sul_schedule(ticker_ctx, 0, sul, tick, 10 * LWS_US_PER_MS);
}

/* One turn of the loop, as hub_server_run() makes it (the hub's links
 * write after the turn). */
static void turn(world_t *w)
{
    lws_service(w->ctx, 10);
    cn_link_flush_turn();
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int run_until(world_t *w, int (*done)(world_t *), uint64_t ms)
{
    uint64_t end = cn_time_mono_ms() + ms;
    while (!done(w) && cn_time_mono_ms() < end)
        turn(w);
    return done(w);
}

/* The hub's one session (the agent's only link). */
static session_t *session(world_t *w)
{
    assert_non_null(w->rt->sessions);
    assert_null(w->rt->sessions->next);
    return w->rt->sessions;
}

static void make_tunnel(world_t *w, int i, hub_tunnel_t *out)
{
    char name[16];
    snprintf(name, sizeof(name), "t%d", i);
    hub_tunnel_spec_t spec = {.name = name,
                              .agent_id = w->ag.id,
                              .target_host = "127.0.0.1",
                              .target_port = 9,
                              .protocol = HUB_PROTO_TCP};
    int rc = hub_store_tunnel_create(w->s.st, w->ws.id, &spec, out, NULL);
    if (rc < 0)
        fail_msg("tunnel %d: %s", i, hub_store_errmsg(w->s.st));
}

/* A store with one workspace and one enrolled agent holding `n` tunnels, a
 * runtime on a loopback vhost, and the agent's link up with its list. */
static void world_start(world_t *w, size_t n)
{
    memset(w, 0, sizeof(*w));
    marks_sent = pads_sent = 0;
    hub_test_store_init(&w->s, 77, 1700000000000);
    hub_test_store_open(&w->s, NULL, true);
    assert_int_equal(hub_store_workspace_create(w->s.st, "w", &w->ws), 0);
    char tok[HUB_TOKEN_STR_SIZE];
    assert_int_equal(hub_store_agent_create(w->s.st, w->ws.id, "a", 0, 0, tok, NULL), 0);
    assert_int_equal(cn_chan_keypair(w->agent_pk, w->agent_sk), 0);
    assert_int_equal(hub_store_agent_enroll(w->s.st, tok, w->agent_pk, &w->ag), 0);
    assert_int_equal(hub_store_tx_begin(w->s.st), 0);
    for (size_t i = 0; i < n; i++)
        make_tunnel(w, (int)i, NULL);
    assert_int_equal(hub_store_tx_end(w->s.st, 0), 0);

    assert_int_equal(cn_chan_keypair(w->kp.public_key, w->kp.secret_key), 0);
    hub_runtime_config_t rc = {.store = w->s.st,
                               .keypair = &w->kp,
                               .tcp_host = "127.0.0.1",
                               .http_port = -1,
                               .https_port = -1};
    char err[200] = "";
    w->rt = hub_runtime_new(&rc, err, sizeof(err));
    if (!w->rt)
        fail_msg("hub_runtime_new: %s", err);
    size_t np = 0;
    w->protocols[np].name = "http";
    w->protocols[np++].callback = http_dummy;
    assert_int_equal(hub_runtime_protocols(w->rt, w->protocols, &np, 10), 0);
    w->protocols[np++] = *cn_link_client_protocol();

    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = 0;
    info.iface = "127.0.0.1";
    info.protocols = w->protocols;
    info.pt_serv_buf_size = CN_LINK_LWS_BUF;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    w->ctx = lws_create_context(&info);
    assert_non_null(w->ctx);
    ticker_ctx = w->ctx;
    memset(&ticker, 0, sizeof(ticker));
    tick(&ticker);
    w->vh = lws_get_vhost_by_name(w->ctx, "default");
    assert_non_null(w->vh);
    assert_int_equal(hub_runtime_start(w->rt, w->ctx, w->vh), 0);

    /* The handshake of `connect agent` (docs/agent-protocol.md). */
    snprintf(w->payload, sizeof(w->payload),
             "{\"agentId\":\"%s\",\"tunnelStatus\":true,\"tunnelDelta\":true}", w->ag.id);
    w->a.pages.max_items = AGENT_ALLOWLIST_MAX;
    cn_link_client_config_t cc = {
        .host = "127.0.0.1",
        .port = lws_get_vhost_listen_port(w->vh),
        .path = "/agent",
        .binding = "",
        .static_sk = w->agent_sk,
        .hub_pk = w->kp.public_key,
        .payload = (const uint8_t *)w->payload,
        .payload_len = strlen(w->payload),
        .mux_cb = &agent_mux_cb,
        .cb = {.on_established = agent_established, .on_closed = agent_closed},
        .ctx = &w->a,
        .user = &w->a,
    };
    w->a.link = cn_link_connect(w->ctx, w->vh, &cc, err, sizeof(err));
    if (!w->a.link)
        fail_msg("cn_link_connect: %s", err);
}

static void world_stop(world_t *w)
{
    hub_runtime_stop(w->rt);
    lws_sul_cancel(&ticker);
    lws_context_destroy(w->ctx);
    hub_runtime_free(w->rt);
    agent_allowlist_free(&w->a.list);
    cn_ctlpage_reset(&w->a.pages);
    hub_test_store_fini(&w->s);
}

static size_t want_count;
static int has_list(world_t *w)
{
    return w->a.closed || (w->a.hello && w->a.list.count == want_count);
}

/* Queues a CONTROL message on the hub's side of the link, as agents.c
 * would (an unknown type: the agent ignores it). */
static int hub_queue(world_t *w, const char *type, size_t pad)
{
    static char buf[2048];
    assert_true(pad < sizeof(buf));
    memset(buf, 'x', pad);
    buf[pad] = '\0';
    json_t *m =
        pad ? json_pack("{s:s,s:s}", "type", type, "pad", buf) : json_pack("{s:s}", "type", type);
    int rc = cn_mux_send_control(cn_link_mux(session(w)->link), m);
    json_decref(m);
    return rc;
}

static int marked(world_t *w)
{
    return w->a.closed || w->a.marks == marks_sent;
}

/* Everything the hub queued so far has reached the agent (CONTROL is one
 * ordered stream: a mark queued last arrives last). */
static void settle(world_t *w)
{
    assert_int_equal(hub_queue(w, "test_mark", 0), 0);
    marks_sent++;
    cn_link_flush(session(w)->link);
    assert_true(run_until(w, marked, 30000));
    assert_false(w->a.closed);
}

static int padded(world_t *w)
{
    return w->a.closed || w->a.pads == pads_sent;
}

/* Fills the hub's queue to the agent up to the last few bytes (less than
 * the smallest message, so a tunnel_remove cannot go), without a turn of
 * the loop: nothing leaves meanwhile. */
static void fill_queue(world_t *w)
{
    int rc;
    while ((rc = hub_queue(w, "test_pad", 1000)) == 0)
        pads_sent++;
    assert_int_equal(rc, CN_EAGAIN);
    while ((rc = hub_queue(w, "test_pad", 0)) == 0)
        pads_sent++;
    assert_int_equal(rc, CN_EAGAIN);
}

/* Whether the agent's allow-list holds exactly the hub's tunnels. */
static void assert_same_as_store(world_t *w)
{
    hub_tunnel_filter_t f = {.agent_id = w->ag.id};
    hub_tunnel_list_t l = {0};
    assert_int_equal(hub_store_tunnel_list(w->s.st, w->ws.id, &f, &l), 0);
    assert_int_equal(w->a.list.count, l.count);
    for (size_t i = 0; i < l.count; i++)
        if (!agent_allowlist_find(&w->a.list, l.items[i].id, strlen(l.items[i].id)))
            fail_msg("the agent lacks tunnel %s", l.items[i].name);
    hub_tunnel_list_free(&l);
}

static const char *gone_id;
static const char *new_id;
static int caught_up(world_t *w)
{
    return w->a.closed || (!agent_allowlist_find(&w->a.list, gone_id, strlen(gone_id)) &&
                           agent_allowlist_find(&w->a.list, new_id, strlen(new_id)));
}

/* A world whose agent holds its `n` tunnels, everything sent so far
 * received. */
static world_t *world_ready(size_t n, hub_live_t *live)
{
    world_t *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    world_start(w, n);
    want_count = n;
    assert_true(run_until(w, has_list, 60000));
    assert_false(w->a.closed);
    settle(w);
    hub_runtime_live(w->rt, live);
    return w;
}

/* The agent stops reading for a while: its queue fills, and the delete of
 * its tunnel `idx` (in *gone) finds no room for its tunnel_remove. Then it
 * reads again: the queue drains, the tunnel is still listed. */
static void lose_remove(world_t *w, const hub_live_t *live, size_t idx, hub_tunnel_t *gone)
{
    fill_queue(w);
    unsigned removes = w->a.removes;
    assert_int_equal(hub_store_tunnel_get(w->s.st, w->ws.id, w->a.list.items[idx].id, gone), 0);
    assert_int_equal(hub_store_tunnel_delete(w->s.st, w->ws.id, gone->id), 0);
    hub_live_tunnel_changed(live, w->ws.id, w->ag.id, gone->id, NULL);
    session_t *s = session(w);
    assert_true(s->list_due); /* lost: the whole list is due in 250 ms */
    /* Hold that list back, as on a machine where the next change comes
     * before it (the queue drains in far less than 250 ms): the test then
     * does not depend on how fast this one drains. */
    lws_sul_schedule(w->ctx, 0, &s->sul_list, s->sul_list.cb, 120 * LWS_US_PER_SEC);
    cn_link_flush(s->link);
    assert_true(run_until(w, padded, 30000));
    assert_false(w->a.closed);
    assert_int_equal(w->a.removes, removes);
    assert_non_null(agent_allowlist_find(&w->a.list, gone->id, strlen(gone->id)));
}

static void test_lost_remove_at_the_cap(void **state)
{
    (void)state;
    hub_live_t live;
    world_t *w = world_ready(AGENT_ALLOWLIST_MAX, &live);
    hub_tunnel_t gone = {0};
    lose_remove(w, &live, 0, &gone);
    assert_int_equal(w->a.list.count, AGENT_ALLOWLIST_MAX);

    /* A new tunnel (the store is back at the cap): it reaches the agent
     * at once, and the agent never holds more than its bound. */
    hub_tunnel_t t = {0};
    make_tunnel(w, 99999, &t);
    unsigned lists = w->a.lists;
    uint64_t t0 = mono_us();
    hub_live_tunnel_changed(&live, w->ws.id, w->ag.id, t.id, &t);
    uint64_t hub_us = mono_us() - t0; /* the hub's part, on its loop */
    gone_id = gone.id;
    new_id = t.id;
    assert_true(run_until(w, caught_up, 30000));
    /* What it costs the new tunnel's first connection, which comes behind
     * the list: its transit (read, encoded, sent, parsed), against up to
     * 250 ms of refused connections had the hub held the entry back. */
    uint64_t list_us = mono_us() - t0;
    if (w->a.closed)
        fail_msg("the agent closed its link (%s): %s", w->a.why,
                 w->a.too_big ? "an upsert took it over 4,096 tunnels" : "?");
    assert_same_as_store(w);
    /* The whole list went for it, in place of the one due later. */
    assert_int_equal(w->a.lists, lists + 1);
    assert_false(session(w)->list_due);

    /* Caught up: the next change goes as one entry again. */
    unsigned upserts = w->a.upserts, removes = w->a.removes;
    assert_int_equal(hub_store_tunnel_delete(w->s.st, w->ws.id, t.id), 0);
    hub_live_tunnel_changed(&live, w->ws.id, w->ag.id, t.id, NULL);
    hub_tunnel_t t2 = {0};
    make_tunnel(w, 100000, &t2);
    t0 = mono_us();
    hub_live_tunnel_changed(&live, w->ws.id, w->ag.id, t2.id, &t2);
    settle(w);
    uint64_t entry_us = mono_us() - t0;
    print_message(
        "   a new tunnel reached the agent %.1f ms after a lost remove (the whole list of "
        "%d; %.1f ms of it on the hub's loop), %.1f ms as one entry\n",
        (double)list_us / 1000, AGENT_ALLOWLIST_MAX, (double)hub_us / 1000,
        (double)entry_us / 1000);
    assert_false(w->a.closed);
    assert_int_equal(w->a.lists, lists + 1);
    assert_int_equal(w->a.removes, removes + 1);
    assert_int_equal(w->a.upserts, upserts + 1);
    assert_same_as_store(w);

    hub_tunnel_clear(&gone);
    hub_tunnel_clear(&t);
    hub_tunnel_clear(&t2);
    world_stop(w);
    free(w);
}

/* Behind, a remove still goes as itself (it only shrinks what the agent
 * holds) and the list stays due; the next upsert is the list. */
static void test_remove_while_behind(void **state)
{
    (void)state;
    hub_live_t live;
    world_t *w = world_ready(10, &live);
    hub_tunnel_t gone = {0}, gone2 = {0}, t = {0};
    lose_remove(w, &live, 0, &gone);
    unsigned lists = w->a.lists, removes = w->a.removes;
    assert_int_equal(hub_store_tunnel_get(w->s.st, w->ws.id, w->a.list.items[1].id, &gone2), 0);
    assert_int_equal(hub_store_tunnel_delete(w->s.st, w->ws.id, gone2.id), 0);
    hub_live_tunnel_changed(&live, w->ws.id, w->ag.id, gone2.id, NULL);
    settle(w);
    assert_int_equal(w->a.removes, removes + 1);
    assert_int_equal(w->a.lists, lists);
    assert_true(session(w)->list_due);
    assert_int_equal(w->a.list.count, 9); /* the lost one is still there */

    make_tunnel(w, 10, &t);
    unsigned upserts = w->a.upserts;
    hub_live_tunnel_changed(&live, w->ws.id, w->ag.id, t.id, &t);
    settle(w);
    assert_int_equal(w->a.lists, lists + 1);
    assert_int_equal(w->a.upserts, upserts);
    assert_false(session(w)->list_due);
    assert_same_as_store(w);

    hub_tunnel_clear(&gone);
    hub_tunnel_clear(&gone2);
    hub_tunnel_clear(&t);
    world_stop(w);
    free(w);
}

int main(void)
{
    cn_log_set_level(CN_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lost_remove_at_the_cap),
        cmocka_unit_test(test_remove_while_behind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
