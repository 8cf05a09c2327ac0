/* hub_relay: the hub's stream <-> stream relay for reach, as a
 * specification. Four real muxes through the real frame codec: the reaching
 * agent (A) and the hub's end of its link, the hub's end of the exposing
 * agent's link and that agent (B). Bytes cross both ways intact under small
 * windows, a stalled reader bounds what the hub holds, FIN and RST cross
 * with their codes, a refusal by B refuses A's stream, and aborting (tunnel
 * deleted) resets both. */
#include "cn_test.h"

#include "cn_err.h"
#include "cn_frame.h"
#include "cn_mux.h"
#include "cn_pipe.h"
#include "relay.h"

#include <stdbool.h>

#define WINDOW 4096u
#define TUNNEL "0b7c3a52-8d0e-4c55-9a63-2f1e7f0c9a11"

/* An agent's end of one stream. */
typedef struct app {
    const cn_stream_ops_t *ops; /* first: dispatch */
    struct world *w;
    cn_mux_t *mux;
    uint32_t id;
    bool accepted, eof, closed, reset, shut, stall;
    uint32_t code;
    const uint8_t *out;
    size_t out_len, sent;
    uint8_t *in;
    size_t in_len, in_cap;
} app_t;

typedef struct world {
    cn_mux_t *a, *ha, *hb, *b; /* a<->ha: reacher's link, hb<->b: exposer's link */
    cn_frame_decoder_t *dec[4];
    app_t ra;           /* A's stream */
    app_t rb;           /* B's stream */
    uint32_t b_pending; /* B's announced stream, 0 if none */
    int b_answer;       /* 0: accept, else reject with this code */
    hub_relay_t *relay;
    int relays_done;
    uint32_t done_code;
    size_t hub_peak; /* most bytes the hub's two muxes held at once */
} world_t;

static void app_pump(app_t *s)
{
    while (s->accepted && !s->closed && !s->reset && s->sent < s->out_len) {
        int n = cn_mux_write(s->mux, s->id, s->out + s->sent, s->out_len - s->sent);
        if (n <= 0)
            return;
        s->sent += (size_t)n;
    }
    if (s->accepted && !s->closed && !s->reset && s->out && s->sent == s->out_len && !s->shut) {
        s->shut = true;
        assert_int_equal(cn_mux_shutdown(s->mux, s->id), 0);
    }
}

static void app_drain(app_t *s)
{
    if (s->stall || s->eof || s->closed || s->reset)
        return;
    for (;;) {
        uint8_t buf[3000];
        int n = cn_mux_read(s->mux, s->id, buf, sizeof(buf));
        if (n == 0) {
            s->eof = true;
            return;
        }
        if (n < 0)
            return;
        if (s->in_len + (size_t)n > s->in_cap) {
            s->in_cap = (s->in_len + (size_t)n) * 2;
            s->in = realloc(s->in, s->in_cap);
            assert_non_null(s->in);
        }
        memcpy(s->in + s->in_len, buf, (size_t)n);
        s->in_len += (size_t)n;
    }
}

static void a_accepted(void *self)
{
    app_t *s = self;
    s->accepted = true;
    app_pump(s);
}
static void a_readable(void *self)
{
    app_drain(self);
}
static void a_writable(void *self)
{
    app_pump(self);
}
static void a_reset(void *self, uint32_t code, const char *msg, size_t len)
{
    app_t *s = self;
    s->reset = true;
    s->code = code;
}
static void a_closed(void *self)
{
    app_t *s = self;
    s->closed = true;
}
static const cn_stream_ops_t app_ops = {
    .accepted = a_accepted,
    .readable = a_readable,
    .writable = a_writable,
    .reset = a_reset,
    .closed = a_closed,
};

static void relay_done(void *ctx, hub_relay_t *r, uint32_t code)
{
    world_t *w = ctx;
    w->relays_done++;
    w->done_code = code;
    w->relay = NULL;
}

/* The hub: A opened a reach stream; relay it to B. */
static void ha_open(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t ref_len,
                    const uint8_t *meta, size_t meta_len)
{
    world_t *w = ctx;
    assert_int_equal(kind, CN_KIND_RELAY);
    hub_relay_config_t rc = {
        .from = {.mux = w->ha},
        .from_id = id,
        .to = {.mux = w->hb},
        .kind = CN_KIND_RELAY,
        .ref = ref,
        .ref_len = ref_len,
        .meta = (const uint8_t *)"{}",
        .meta_len = 2,
        .done = relay_done,
        .ctx = w,
    };
    int err = 0;
    w->relay = hub_relay_start(&rc, &err);
    assert_non_null(w->relay);
}

/* B: remember the stream; the test answers it. */
static void b_open(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t ref_len,
                   const uint8_t *meta, size_t meta_len)
{
    world_t *w = ctx;
    assert_int_equal(kind, CN_KIND_RELAY);
    assert_int_equal(ref_len, strlen(TUNNEL));
    assert_memory_equal(ref, TUNNEL, ref_len);
    w->b_pending = id;
}

static cn_mux_t *mux_new(world_t *w, int initiator,
                         void (*on_open)(void *, uint32_t, uint8_t, const uint8_t *, size_t,
                                         const uint8_t *, size_t))
{
    cn_mux_callbacks_t cb = {0};
    cn_stream_dispatch_callbacks(&cb);
    cb.on_open = on_open;
    cn_mux_config_t cfg = {.initiator = initiator, .window = WINDOW, .send_buffer = WINDOW};
    cn_mux_t *m = cn_mux_new(&cfg, &cb, w);
    assert_non_null(m);
    return m;
}

static void world_init(world_t *w)
{
    memset(w, 0, sizeof(*w));
    w->a = mux_new(w, 1, NULL);
    w->ha = mux_new(w, 0, ha_open);
    w->hb = mux_new(w, 0, NULL);
    w->b = mux_new(w, 1, b_open);
    for (int i = 0; i < 4; i++) {
        w->dec[i] = cn_frame_decoder_new();
        assert_non_null(w->dec[i]);
    }
    w->ra = (app_t){.ops = &app_ops, .w = w, .mux = w->a};
    w->rb = (app_t){.ops = &app_ops, .w = w, .mux = w->b};
}

static void world_free(world_t *w)
{
    cn_mux_t *m[4] = {w->a, w->ha, w->hb, w->b};
    for (int i = 0; i < 4; i++) {
        cn_mux_abort(m[i], CN_RST_GONE);
        cn_mux_free(m[i]);
        cn_frame_decoder_free(w->dec[i]);
    }
    free(w->ra.in);
    free(w->rb.in);
}

/* Moves everything src has to send into dst (small records, any split). */
static bool wire(cn_mux_t *src, cn_mux_t *dst, cn_frame_decoder_t *dec)
{
    bool any = false;
    uint8_t rec[1500];
    int n;
    while ((n = cn_mux_output(src, rec, sizeof(rec))) > 0) {
        any = true;
        size_t off = 0;
        while (off < (size_t)n) {
            size_t used = 0;
            cn_frame_t f;
            int rc = cn_frame_decode(dec, rec + off, (size_t)n - off, &used, &f);
            assert_true(rc >= 0);
            off += used;
            if (rc == 1)
                assert_int_equal(cn_mux_input(dst, &f), 0);
        }
    }
    return any;
}

static void settle(world_t *w)
{
    for (int round = 0; round < 100000; round++) {
        bool any = wire(w->a, w->ha, w->dec[0]);
        any |= wire(w->ha, w->a, w->dec[1]);
        any |= wire(w->hb, w->b, w->dec[2]);
        any |= wire(w->b, w->hb, w->dec[3]);
        size_t held = cn_mux_buffered_bytes(w->ha) + cn_mux_buffered_bytes(w->hb);
        if (held > w->hub_peak)
            w->hub_peak = held;
        if (w->b_pending && !w->rb.id) {
            w->rb.id = w->b_pending;
            if (w->b_answer) {
                assert_int_equal(cn_mux_reject(w->b, w->b_pending, (uint32_t)w->b_answer, "no"), 0);
            } else {
                assert_int_equal(cn_mux_accept(w->b, w->b_pending, &w->rb), 0);
                w->rb.accepted = true;
                app_pump(&w->rb);
            }
            any = true;
        }
        app_pump(&w->ra);
        app_pump(&w->rb);
        app_drain(&w->ra);
        app_drain(&w->rb);
        if (!any && !cn_mux_has_output(w->a) && !cn_mux_has_output(w->b) &&
            !cn_mux_has_output(w->ha) && !cn_mux_has_output(w->hb))
            return;
    }
    fail_msg("the relay did not settle");
}

/* Only the exposing agent's link (the reaching one is gone). */
static void settle_b(world_t *w)
{
    for (int round = 0; round < 1000; round++) {
        bool any = wire(w->hb, w->b, w->dec[2]);
        any |= wire(w->b, w->hb, w->dec[3]);
        if (!any && !cn_mux_has_output(w->b) && !cn_mux_has_output(w->hb))
            return;
    }
    fail_msg("the exposing side did not settle");
}

static void open_a(world_t *w)
{
    assert_int_equal(cn_mux_open(w->a, CN_KIND_RELAY, (const uint8_t *)TUNNEL, strlen(TUNNEL), NULL,
                                 0, &w->ra, &w->ra.id),
                     0);
}

static uint8_t *pattern(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    cn_test_fill(p, n, seed);
    return p;
}

static void bytes_cross_both_ways_and_fin_ends_both_streams(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    size_t up_len = 300000, down_len = 200001;
    uint8_t *up = pattern(up_len, 1), *down = pattern(down_len, 2);
    w.ra.out = up, w.ra.out_len = up_len;
    w.rb.out = down, w.rb.out_len = down_len;
    open_a(&w);
    settle(&w);
    assert_true(w.ra.accepted);
    assert_int_equal(w.rb.in_len, up_len);
    assert_memory_equal(w.rb.in, up, up_len);
    assert_int_equal(w.ra.in_len, down_len);
    assert_memory_equal(w.ra.in, down, down_len);
    assert_true(w.ra.eof && w.rb.eof);
    assert_true(w.ra.closed && w.rb.closed);
    assert_false(w.ra.reset || w.rb.reset);
    assert_int_equal(w.relays_done, 1);
    assert_int_equal(w.done_code, 0);
    /* The hub never held more than the two streams' windows and queues. */
    assert_true(w.hub_peak <= 4 * WINDOW);
    free(up);
    free(down);
    world_free(&w);
}

static void a_stalled_reader_bounds_what_the_hub_holds(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    size_t up_len = 1u << 20;
    uint8_t *up = pattern(up_len, 3);
    w.ra.out = up, w.ra.out_len = up_len;
    w.rb.stall = true;
    open_a(&w);
    settle(&w);
    /* B reads nothing: A could send only what the windows hold. */
    assert_true(w.ra.sent < 5 * WINDOW);
    assert_true(w.hub_peak <= 4 * WINDOW);
    /* B reads: everything arrives. */
    w.rb.stall = false;
    app_drain(&w.rb);
    settle(&w);
    assert_int_equal(w.rb.in_len, up_len);
    assert_memory_equal(w.rb.in, up, up_len);
    free(up);
    world_free(&w);
}

static void a_refusal_by_the_exposing_agent_refuses_the_reaching_stream(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    w.b_answer = CN_RST_UNREACHABLE;
    open_a(&w);
    settle(&w);
    assert_false(w.ra.accepted);
    assert_true(w.ra.reset);
    assert_int_equal(w.ra.code, CN_RST_UNREACHABLE);
    assert_true(w.ra.closed);
    assert_int_equal(w.relays_done, 1);
    assert_int_equal(w.done_code, CN_RST_UNREACHABLE);
    world_free(&w);
}

static void a_reset_crosses_with_its_code(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    w.rb.stall = true; /* keep B's stream open */
    open_a(&w);
    settle(&w);
    assert_true(w.ra.accepted);
    assert_int_equal(cn_mux_reset(w.a, w.ra.id, CN_RST_CANCEL, "client gone"), 0);
    w.ra.reset = true;
    settle(&w);
    assert_true(w.rb.reset);
    assert_int_equal(w.rb.code, CN_RST_CANCEL);
    assert_true(w.rb.closed);
    assert_int_equal(w.relays_done, 1);
    world_free(&w);
}

static void aborting_resets_both_streams(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    w.rb.stall = true;
    w.ra.stall = true;
    open_a(&w);
    settle(&w);
    assert_non_null(w.relay);
    hub_relay_abort(w.relay, CN_RST_GONE);
    hub_relay_abort(w.relay, CN_RST_GONE); /* idempotent */
    settle(&w);
    assert_true(w.ra.reset && w.rb.reset);
    assert_int_equal(w.ra.code, CN_RST_GONE);
    assert_int_equal(w.rb.code, CN_RST_GONE);
    assert_int_equal(w.relays_done, 1);
    assert_int_equal(w.done_code, CN_RST_GONE);
    world_free(&w);
}

static void aborting_before_the_exposer_answers_refuses_the_reacher(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    open_a(&w);
    /* Deliver A's OPEN to the hub and the hub's OPEN to B, but let B not
     * answer yet. */
    wire(w.a, w.ha, w.dec[0]);
    wire(w.hb, w.b, w.dec[2]);
    assert_non_null(w.relay);
    hub_relay_abort(w.relay, CN_RST_GONE);
    w.b_pending = 0; /* B never answers: the reset reaches it first */
    settle(&w);
    assert_true(w.ra.reset);
    assert_int_equal(w.ra.code, CN_RST_GONE);
    assert_int_equal(w.relays_done, 1);
    world_free(&w);
}

static void a_reacher_that_gave_up_resets_the_exposers_stream(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    w.rb.stall = true;
    open_a(&w);
    wire(w.a, w.ha, w.dec[0]);
    wire(w.hb, w.b, w.dec[2]);
    /* A gives up (its open deadline) before B answered. */
    assert_int_equal(cn_mux_reset(w.a, w.ra.id, CN_RST_CANCEL, "no answer to open"), 0);
    w.ra.reset = true;
    settle(&w);
    assert_true(w.rb.accepted);
    assert_true(w.rb.reset);
    assert_int_equal(w.rb.code, CN_RST_CANCEL);
    assert_int_equal(w.relays_done, 1);
    world_free(&w);
}

static void the_reachers_link_dying_before_the_answer_is_let_go(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    w.rb.stall = true;
    open_a(&w);
    wire(w.a, w.ha, w.dec[0]);
    wire(w.hb, w.b, w.dec[2]);
    assert_non_null(w.relay);
    /* The reaching agent's link dies: its mux aborts (the pending stream is
     * not the relay's yet, so nothing reaches it), the glue says so, and
     * the mux is freed. The relay must never touch it again. */
    cn_mux_abort(w.ha, CN_RST_GONE);
    hub_relay_mux_gone(w.relay, w.hb); /* another link: nothing happens */
    assert_non_null(w.relay);
    hub_relay_mux_gone(w.relay, w.ha);
    cn_mux_free(w.ha);
    w.ha = mux_new(&w, 0, ha_open); /* a fresh link for world_free */
    cn_mux_abort(w.a, CN_RST_GONE);
    /* The exposing agent answers now, unless the relay's reset came first. */
    wire(w.hb, w.b, w.dec[2]);
    if (cn_mux_accept(w.b, w.b_pending, &w.rb) == 0)
        w.rb.accepted = true;
    settle_b(&w);
    /* The exposing agent's pending stream was reset before it answered,
     * and the relay is done. */
    assert_int_equal(cn_mux_stream_count(w.hb), 0);
    assert_int_equal(cn_mux_stream_count(w.b), 0);
    assert_int_equal(w.relays_done, 1);
    assert_int_equal(w.done_code, CN_RST_GONE);
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bytes_cross_both_ways_and_fin_ends_both_streams),
        cmocka_unit_test(a_stalled_reader_bounds_what_the_hub_holds),
        cmocka_unit_test(a_refusal_by_the_exposing_agent_refuses_the_reaching_stream),
        cmocka_unit_test(a_reset_crosses_with_its_code),
        cmocka_unit_test(aborting_resets_both_streams),
        cmocka_unit_test(aborting_before_the_exposer_answers_refuses_the_reacher),
        cmocka_unit_test(a_reacher_that_gave_up_resets_the_exposers_stream),
        cmocka_unit_test(the_reachers_link_dying_before_the_answer_is_let_go),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
