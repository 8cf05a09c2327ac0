/* cn_mux: two multiplexers wired back to back through the real frame codec.
 * One side's cn_mux_output() bytes are decoded (in random splits) and fed to
 * the other side's cn_mux_input(). A small "application" model per side
 * opens, accepts, writes, reads and verifies streams with SHA-256. */
#include "cn_test.h"

#include "cn_err.h"
#include "cn_frame.h"
#include "cn_mux.h"

#include <jansson.h>
#include <sodium.h>

#define WIRE_MAX (CN_FRAME_HEADER + CN_FRAME_MAX_PAYLOAD + 4096)

/* ---- payloads: stream index i carries payload[i][0] from the opener and
 * payload[i][1] back from the acceptor ---- */

#define MAX_PAYLOADS 1024

typedef struct payload {
    uint8_t *data;
    size_t len;
    uint8_t hash[crypto_hash_sha256_BYTES];
} payload_t;

static payload_t payloads[MAX_PAYLOADS][2];

static void payload_make(int idx, int dir, size_t len)
{
    payload_t *p = &payloads[idx][dir];
    free(p->data);
    p->len = len;
    p->data = malloc(len ? len : 1);
    assert_non_null(p->data);
    cn_test_fill(p->data, len, (uint64_t)idx * 2 + (uint64_t)dir + 1);
    crypto_hash_sha256(p->hash, p->data, len);
}

static void payloads_free(void)
{
    for (int i = 0; i < MAX_PAYLOADS; i++) {
        for (int d = 0; d < 2; d++) {
            free(payloads[i][d].data);
            payloads[i][d].data = NULL;
            payloads[i][d].len = 0;
        }
    }
}

/* ---- the application model ---- */

typedef struct peer peer_t;

typedef struct rec {
    peer_t *p;
    uint32_t id;
    int idx;
    const payload_t *out; /* what we send */
    size_t sent;
    const payload_t *in; /* what we expect */
    crypto_hash_sha256_state h;
    size_t got;
    int eof, shut, closed, resets, accepted, writable_calls;
    uint32_t reset_code;
    char reset_msg[64];
    int stall;           /* never read */
    int reply_after_eof; /* start writing only after the peer's FIN */
    int no_shutdown;     /* never half-close */
} rec_t;

enum accept_mode { ACCEPT_NOW, ACCEPT_DEFER, ACCEPT_REJECT, ACCEPT_ALTERNATE };

struct peer {
    const char *name;
    cn_mux_t *mux;
    cn_frame_decoder_t *dec; /* decodes bytes arriving at this peer */
    uint64_t rng;
    enum accept_mode accept;
    int zero_copy;
    int stall_new;       /* streams opened by the peer are never read */
    int stall_idx;       /* ... nor the one carrying this payload index */
    int reply_after_eof; /* acceptor replies only after EOF */
    int chaos;           /* reset/open streams from inside callbacks */
    int chaos_opens;
    rec_t **recs;
    size_t nrecs, cap_recs;
    uint32_t deferred[4096];
    rec_t *deferred_rec[4096];
    size_t ndeferred;
    int input_err;
    /* counters */
    int opens, closed_user, closed_null, resets_null, pongs, controls, datagrams, goaways;
    uint64_t last_pong;
    json_t *last_control;
    size_t dgram_bytes;
    uint8_t last_dgram[64];
    size_t last_dgram_len;
    uint32_t goaway_code;
};

static uint64_t rnd(peer_t *p)
{
    uint64_t x = p->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    p->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

static rec_t *rec_new(peer_t *p, uint32_t id, int idx, int opener)
{
    rec_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->p = p;
    r->id = id;
    r->idx = idx;
    if (idx >= 0) {
        r->out = &payloads[idx][opener ? 0 : 1];
        r->in = &payloads[idx][opener ? 1 : 0];
    }
    crypto_hash_sha256_init(&r->h);
    if (p->nrecs == p->cap_recs) {
        p->cap_recs = p->cap_recs ? p->cap_recs * 2 : 64;
        p->recs = realloc(p->recs, p->cap_recs * sizeof(*p->recs));
        assert_non_null(p->recs);
    }
    p->recs[p->nrecs++] = r;
    return r;
}

static void pump_write(rec_t *r)
{
    peer_t *p = r->p;
    if (r->closed || !r->out || (r->reply_after_eof && !r->eof))
        return;
    while (r->sent < r->out->len) {
        size_t want = r->out->len - r->sent;
        if (rnd(p) % 4 == 0)
            want = 1 + rnd(p) % want;
        if (p->zero_copy && rnd(p) % 3 == 0) {
            /* Vectored: fill the spans in order as readv() would, k bytes. */
            struct iovec iov[CN_MUX_MAX_IOV];
            size_t space;
            int n =
                cn_mux_write_spacev(p->mux, r->id, iov, 1 + (int)(rnd(p) % CN_MUX_MAX_IOV), &space);
            if (n == CN_EAGAIN)
                return;
            assert_true(n > 0);
            size_t total = 0;
            for (int i = 0; i < n; i++)
                total += iov[i].iov_len;
            assert_int_equal(total, space);
            size_t k = want < space ? want : space, done = 0;
            for (int i = 0; i < n && done < k; i++) {
                size_t c = iov[i].iov_len < k - done ? iov[i].iov_len : k - done;
                memcpy(iov[i].iov_base, r->out->data + r->sent + done, c);
                done += c;
            }
            assert_int_equal(cn_mux_write_commit(p->mux, r->id, k), 0);
            r->sent += k;
        } else if (p->zero_copy && (rnd(p) & 1)) {
            uint8_t *ptr;
            size_t space;
            int rc = cn_mux_write_space(p->mux, r->id, &ptr, &space);
            if (rc == CN_EAGAIN)
                return;
            assert_int_equal(rc, 0);
            assert_true(space > 0);
            size_t k = want < space ? want : space;
            memcpy(ptr, r->out->data + r->sent, k);
            assert_int_equal(cn_mux_write_commit(p->mux, r->id, k), 0);
            r->sent += k;
        } else {
            int n = cn_mux_write(p->mux, r->id, r->out->data + r->sent, want);
            if (n == CN_EAGAIN)
                return;
            assert_true(n > 0);
            r->sent += (size_t)n;
        }
    }
    if (!r->shut && !r->no_shutdown) {
        assert_int_equal(cn_mux_shutdown(p->mux, r->id), 0);
        r->shut = 1;
    }
}

static void check_eof(rec_t *r)
{
    r->eof = 1;
    if (!r->in)
        return;
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&r->h, h);
    assert_int_equal(r->got, r->in->len);
    assert_memory_equal(h, r->in->hash, sizeof(h));
}

static void drain(rec_t *r)
{
    static uint8_t buf[40000];
    peer_t *p = r->p;
    while (!r->stall && !r->eof && !r->closed) {
        int n;
        if (p->zero_copy && rnd(p) % 3 == 0) {
            /* Vectored: use k bytes across the spans, as writev() would. */
            struct iovec iov[CN_MUX_MAX_IOV];
            size_t len;
            n = cn_mux_peekv(p->mux, r->id, iov, 1 + (int)(rnd(p) % CN_MUX_MAX_IOV), &len);
            if (n > 0) {
                size_t total = 0;
                for (int i = 0; i < n; i++) {
                    assert_true(iov[i].iov_len > 0);
                    total += iov[i].iov_len;
                }
                assert_int_equal(total, len);
                size_t k = 1 + rnd(p) % len, done = 0;
                for (int i = 0; i < n && done < k; i++) {
                    size_t c = iov[i].iov_len < k - done ? iov[i].iov_len : k - done;
                    crypto_hash_sha256_update(&r->h, iov[i].iov_base, c);
                    done += c;
                }
                r->got += k;
                assert_int_equal(cn_mux_consume(p->mux, r->id, k), 0);
                continue;
            }
        } else if (p->zero_copy && (rnd(p) & 1)) {
            const uint8_t *ptr;
            size_t len;
            n = cn_mux_peek(p->mux, r->id, &ptr, &len);
            if (n > 0) {
                assert_int_equal((size_t)n, len);
                size_t k = 1 + rnd(p) % len;
                crypto_hash_sha256_update(&r->h, ptr, k);
                r->got += k;
                assert_int_equal(cn_mux_consume(p->mux, r->id, k), 0);
                continue;
            }
        } else {
            size_t cap = 1 + rnd(p) % sizeof(buf);
            n = cn_mux_read(p->mux, r->id, buf, cap);
            if (n > 0) {
                crypto_hash_sha256_update(&r->h, buf, (size_t)n);
                r->got += (size_t)n;
                continue;
            }
        }
        if (n == CN_EAGAIN)
            return;
        assert_int_equal(n, 0);
        check_eof(r);
        pump_write(r); /* reply_after_eof starts here */
    }
}

static rec_t *chaos_pick(peer_t *p)
{
    if (!p->nrecs)
        return NULL;
    rec_t *r = p->recs[rnd(p) % p->nrecs];
    return r->closed ? NULL : r;
}

static void chaos(peer_t *p, rec_t *self)
{
    uint64_t x = rnd(p) % 8;
    if (x == 0 && self && !self->closed) {
        int rc = cn_mux_reset(p->mux, self->id, CN_RST_CANCEL, "chaos self");
        assert_true(rc == 0 || rc == CN_ENOTFOUND || rc == CN_ECLOSED);
    } else if (x == 1) {
        rec_t *o = chaos_pick(p);
        if (o) {
            int rc = cn_mux_reset(p->mux, o->id, CN_RST_CANCEL, "chaos other");
            assert_true(rc == 0 || rc == CN_ENOTFOUND || rc == CN_ECLOSED);
        }
    } else if (x == 2 && p->chaos_opens < 300) {
        uint32_t id;
        int idx = (int)(rnd(p) % 64);
        rec_t *n = rec_new(p, 0, idx, 1);
        if (cn_mux_open(p->mux, CN_KIND_TCP, NULL, 0, (const uint8_t *)&idx, sizeof(idx), n, &id) ==
            0) {
            n->id = id;
            p->chaos_opens++;
            if (rnd(p) & 1)
                assert_int_equal(cn_mux_reset(p->mux, id, CN_RST_CANCEL, "open+reset"), 0);
            else
                pump_write(n);
        } else {
            n->closed = 1; /* never announced */
        }
    }
}

static void cb_open(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t ref_len,
                    const uint8_t *meta, size_t meta_len)
{
    peer_t *p = ctx;
    int idx = -1;
    p->opens++;
    if (meta_len == sizeof(int))
        memcpy(&idx, meta, sizeof(int));
    rec_t *r = rec_new(p, id, idx, 0);
    r->stall = p->stall_new || (idx >= 0 && idx == p->stall_idx);
    r->reply_after_eof = p->reply_after_eof;
    enum accept_mode mode = p->accept;
    if (mode == ACCEPT_ALTERNATE)
        mode = (id / 2) % 2 ? ACCEPT_DEFER : ACCEPT_NOW;
    if (mode == ACCEPT_REJECT) {
        r->closed = -1; /* on_closed(NULL) expected instead */
        assert_int_equal(cn_mux_reject(p->mux, id, CN_RST_REFUSED, "not here"), 0);
        return;
    }
    if (mode == ACCEPT_DEFER) {
        p->deferred[p->ndeferred] = id;
        p->deferred_rec[p->ndeferred++] = r;
        return;
    }
    assert_int_equal(cn_mux_accept(p->mux, id, r), 0);
    r->accepted = 1;
    pump_write(r);
    if (p->chaos)
        chaos(p, r);
}

static void accept_deferred(peer_t *p)
{
    for (size_t i = 0; i < p->ndeferred; i++) {
        rec_t *r = p->deferred_rec[i];
        int rc = cn_mux_accept(p->mux, p->deferred[i], r);
        if (rc == CN_ENOTFOUND) {
            r->closed = -1; /* reset by the peer while pending */
            continue;
        }
        assert_int_equal(rc, 0);
        r->accepted = 1;
        pump_write(r);
    }
    p->ndeferred = 0;
}

static void cb_accepted(void *ctx, uint32_t id, void *user)
{
    rec_t *r = user;
    if (!r)
        return; /* opened without an application record */
    assert_int_equal(r->closed, 0);
    assert_int_equal(r->id, id);
    r->accepted = 1;
    pump_write(r);
}

static void cb_readable(void *ctx, uint32_t id, void *user)
{
    rec_t *r = user;
    if (!r)
        return;
    assert_int_equal(r->closed, 0);
    assert_int_equal(r->id, id);
    drain(r);
    if (r->p->chaos)
        chaos(r->p, r);
}

static void cb_writable(void *ctx, uint32_t id, void *user)
{
    rec_t *r = user;
    if (!r)
        return;
    assert_int_equal(r->closed, 0);
    r->writable_calls++;
    pump_write(r);
}

static void cb_reset(void *ctx, uint32_t id, void *user, uint32_t code, const char *msg, size_t len)
{
    peer_t *p = ctx;
    rec_t *r = user;
    assert_true(len <= CN_FRAME_MAX_REASON);
    if (!r) {
        p->resets_null++;
        return;
    }
    assert_int_equal(r->closed, 0);
    assert_int_equal(r->id, id);
    /* The stream is already dead inside on_reset. */
    uint8_t b;
    int rc = cn_mux_read(p->mux, id, &b, 1);
    assert_true(rc == CN_ENOTFOUND || rc == CN_ECLOSED); /* ECLOSED: abort */
    r->resets++;
    r->reset_code = code;
    size_t n = len < sizeof(r->reset_msg) - 1 ? len : sizeof(r->reset_msg) - 1;
    memcpy(r->reset_msg, msg, n);
    r->reset_msg[n] = 0;
    if (p->chaos)
        chaos(p, NULL);
}

static void cb_closed(void *ctx, uint32_t id, void *user)
{
    peer_t *p = ctx;
    rec_t *r = user;
    if (!r) {
        p->closed_null++;
        return;
    }
    assert_int_equal(r->id, id);
    assert_int_equal(r->closed, 0);
    r->closed = 1;
    p->closed_user++;
    if (p->chaos)
        chaos(p, NULL);
}

static void cb_control(void *ctx, const uint8_t *payload, size_t len)
{
    peer_t *p = ctx;
    json_error_t err;
    p->controls++;
    json_decref(p->last_control);
    p->last_control = json_loadb((const char *)payload, len, 0, &err);
    assert_non_null(p->last_control);
}

static void cb_datagram(void *ctx, uint32_t id, void *user, const uint8_t *data, size_t len)
{
    peer_t *p = ctx;
    rec_t *r = user;
    assert_non_null(r);
    assert_int_equal(r->closed, 0);
    p->datagrams++;
    p->dgram_bytes += len;
    p->last_dgram_len = len < sizeof(p->last_dgram) ? len : sizeof(p->last_dgram);
    memcpy(p->last_dgram, data, p->last_dgram_len);
}

static void cb_pong(void *ctx, uint64_t v)
{
    peer_t *p = ctx;
    p->pongs++;
    p->last_pong = v;
}

static void cb_goaway(void *ctx, uint32_t code, const char *msg, size_t len)
{
    peer_t *p = ctx;
    p->goaways++;
    p->goaway_code = code;
}

static const cn_mux_callbacks_t callbacks = {
    .on_open = cb_open,
    .on_accepted = cb_accepted,
    .on_readable = cb_readable,
    .on_writable = cb_writable,
    .on_reset = cb_reset,
    .on_closed = cb_closed,
    .on_control = cb_control,
    .on_datagram = cb_datagram,
    .on_pong = cb_pong,
    .on_goaway = cb_goaway,
};

/* ---- the wire ---- */

typedef struct pair {
    peer_t a, b; /* a initiates (odd ids) */
    size_t cap_min, cap_max;
    size_t split_max; /* 0: feed whole outputs */
    uint64_t rng;
} pair_t;

static void pair_init(pair_t *w, const cn_mux_config_t *ca, const cn_mux_config_t *cb)
{
    memset(w, 0, sizeof(*w));
    cn_mux_config_t c1 = ca ? *ca : (cn_mux_config_t){0};
    cn_mux_config_t c2 = cb ? *cb : (cn_mux_config_t){0};
    c1.initiator = 1;
    c2.initiator = 0;
    w->a.name = "A";
    w->b.name = "B";
    w->a.stall_idx = w->b.stall_idx = -1;
    w->a.rng = 0x1234567;
    w->b.rng = 0x7654321;
    w->rng = 0xabcdef;
    w->a.mux = cn_mux_new(&c1, &callbacks, &w->a);
    w->b.mux = cn_mux_new(&c2, &callbacks, &w->b);
    assert_non_null(w->a.mux);
    assert_non_null(w->b.mux);
    w->a.dec = cn_frame_decoder_new();
    w->b.dec = cn_frame_decoder_new();
    w->cap_min = w->cap_max = 65536;
}

static void peer_free(peer_t *p)
{
    cn_mux_free(p->mux);
    cn_frame_decoder_free(p->dec);
    for (size_t i = 0; i < p->nrecs; i++)
        free(p->recs[i]);
    free(p->recs);
    json_decref(p->last_control);
}

static void pair_free(pair_t *w)
{
    peer_free(&w->a);
    peer_free(&w->b);
}

static uint64_t wrnd(pair_t *w)
{
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Decodes bytes into `to` and feeds each frame; records an input error. */
static void feed(peer_t *to, const uint8_t *p, size_t n)
{
    while (n) {
        cn_frame_t f;
        size_t used;
        int rc = cn_frame_decode(to->dec, p, n, &used, &f);
        assert_true(rc >= 0);
        p += used;
        n -= used;
        if (rc == 1) {
            int e = cn_mux_input(to->mux, &f);
            if (e < 0 && !to->input_err)
                to->input_err = e;
        }
    }
}

static size_t transfer(pair_t *w, peer_t *from, peer_t *to)
{
    static uint8_t wire[WIRE_MAX];
    size_t cap = w->cap_min;
    if (w->cap_max > w->cap_min)
        cap += wrnd(w) % (w->cap_max - w->cap_min + 1);
    if (cap > sizeof(wire))
        cap = sizeof(wire); /* cap_max may exceed it (70000 in some tests) */
    int n = cn_mux_output(from->mux, wire, cap);
    assert_true(n >= 0);
    assert_true((size_t)n <= cap);
    size_t off = 0;
    while (off < (size_t)n) {
        size_t k = (size_t)n - off;
        if (w->split_max) {
            size_t s = 1 + wrnd(w) % w->split_max;
            if (s < k)
                k = s;
        }
        feed(to, wire + off, k);
        off += k;
    }
    return (size_t)n;
}

/* One round: A's output to B, then B's to A. Returns bytes moved. */
static size_t round_trip(pair_t *w)
{
    size_t n = transfer(w, &w->a, &w->b);
    n += transfer(w, &w->b, &w->a);
    accept_deferred(&w->a);
    accept_deferred(&w->b);
    return n;
}

static int run(pair_t *w, int max_rounds)
{
    int rounds = 0;
    while (cn_mux_has_output(w->a.mux) || cn_mux_has_output(w->b.mux) || w->a.ndeferred ||
           w->b.ndeferred) {
        round_trip(w);
        rounds++;
        assert_true(rounds < max_rounds);
    }
    assert_int_equal(w->a.input_err, 0);
    assert_int_equal(w->b.input_err, 0);
    return rounds;
}

static rec_t *open_rec(peer_t *p, int idx)
{
    uint32_t id;
    rec_t *r = rec_new(p, 0, idx, 1);
    assert_int_equal(cn_mux_open(p->mux, CN_KIND_TCP, (const uint8_t *)"t1", 2,
                                 (const uint8_t *)&idx, sizeof(idx), r, &id),
                     0);
    r->id = id;
    pump_write(r); /* refused before OPEN_ACK: on_accepted / on_writable restart it */
    return r;
}

/* Encodes a hand-built frame and feeds it through a fresh decoder. */
static int inject(cn_mux_t *m, const cn_frame_t *f)
{
    static uint8_t buf[WIRE_MAX];
    int n = cn_frame_encode(f, buf, sizeof(buf));
    assert_true(n > 0);
    cn_frame_decoder_t *d = cn_frame_decoder_new();
    cn_frame_t g;
    size_t used;
    assert_int_equal(cn_frame_decode(d, buf, (size_t)n, &used, &g), 1);
    int rc = cn_mux_input(m, &g);
    cn_frame_decoder_free(d);
    return rc;
}

typedef struct seen {
    uint8_t type;
    uint32_t stream, code, window;
} seen_t;

/* Drains a mux's output into decoded frame summaries. */
static size_t collect(cn_mux_t *m, seen_t *out, size_t max)
{
    static uint8_t buf[WIRE_MAX];
    size_t k = 0;
    cn_frame_decoder_t *d = cn_frame_decoder_new();
    int n;
    while ((n = cn_mux_output(m, buf, 65536)) > 0) {
        const uint8_t *p = buf;
        size_t left = (size_t)n;
        while (left) {
            cn_frame_t f;
            size_t used;
            int rc = cn_frame_decode(d, p, left, &used, &f);
            assert_true(rc >= 0);
            p += used;
            left -= used;
            if (rc == 1 && k < max) {
                out[k].type = f.type;
                out[k].stream = f.stream;
                out[k].code =
                    f.type == CN_FRAME_RST || f.type == CN_FRAME_GOAWAY ? f.u.reason.code : 0;
                out[k].window =
                    f.type == CN_FRAME_WINDOW || f.type == CN_FRAME_OPEN_ACK ? f.u.window : 0;
                k++;
            }
        }
    }
    cn_frame_decoder_free(d);
    return k;
}

static int find_seen(const seen_t *s, size_t n, uint8_t type, uint32_t stream)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].type == type && s[i].stream == stream)
            return (int)i;
    return -1;
}

/* ---- tests ---- */

/* 1,000 streams, 500 opened from each side, every one carrying a distinct
 * payload each way (some empty, some many windows long), random output caps
 * and random record splits, half the accepts deferred; every byte checked by
 * SHA-256 and every stream closed exactly once on both sides. */
static void test_thousand_streams_both_directions(void **state)
{
    pair_t w;
    cn_mux_config_t cfg = {.window = 16384, .quantum = 8192};
    uint64_t seed = 99;
    for (int i = 0; i < 1000; i++) {
        for (int d = 0; d < 2; d++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t len;
            if ((i + d) % 10 == 0)
                len = 0;
            else if (i % 25 == 3)
                len = 70000 + (size_t)((seed >> 33) % 30000); /* > 4 windows */
            else
                len = (size_t)((seed >> 33) % 12000);
            payload_make(i, d, len);
        }
    }
    pair_init(&w, &cfg, &cfg);
    w.cap_min = CN_MUX_MIN_OUTPUT;
    w.cap_max = 70000;
    w.split_max = 5000;
    w.a.zero_copy = w.b.zero_copy = 1;
    w.b.accept = ACCEPT_ALTERNATE;
    for (int i = 0; i < 500; i++) {
        open_rec(&w.a, i);
        open_rec(&w.b, 500 + i);
    }
    assert_int_equal(cn_mux_stream_count(w.a.mux), 500);
    run(&w, 200000);

    peer_t *ps[2] = {&w.a, &w.b};
    for (int k = 0; k < 2; k++) {
        peer_t *p = ps[k];
        assert_int_equal(p->nrecs, 1000);
        for (size_t i = 0; i < p->nrecs; i++) {
            rec_t *r = p->recs[i];
            assert_int_equal(r->closed, 1);
            assert_int_equal(r->resets, 0);
            assert_true(r->eof);
            assert_int_equal(r->sent, r->out->len);
        }
        assert_int_equal(p->closed_user, 1000);
        assert_int_equal(p->closed_null, 0);
        assert_int_equal(cn_mux_stream_count(p->mux), 0);
        assert_int_equal(cn_mux_buffered_bytes(p->mux), 0);
        assert_int_equal(cn_mux_pending_bytes(p->mux), 0);
    }
    pair_free(&w);
    payloads_free();
}

/* Streams with lots to send share the link in equal turns. */
static void test_round_robin_is_fair(void **state)
{
    pair_t w;
    cn_mux_config_t cfg = {.window = 1 << 20, .quantum = 4096};
    pair_init(&w, &cfg, &cfg);
    w.cap_min = w.cap_max = 16384;
    for (int i = 0; i < 3; i++) {
        payload_make(i, 0, 1 << 20);
        payload_make(i, 1, 0);
    }
    rec_t *r[3];
    for (int i = 0; i < 3; i++)
        r[i] = open_rec(&w.a, i);
    for (int round = 0; round < 40; round++) {
        round_trip(&w);
        if (round < 3)
            continue;
        size_t lo = SIZE_MAX, hi = 0;
        for (int i = 0; i < 3; i++) {
            rec_t *b = w.b.recs[i];
            lo = b->got < lo ? b->got : lo;
            hi = b->got > hi ? b->got : hi;
        }
        assert_true(hi - lo <= 2 * 4096);
    }
    run(&w, 10000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w.b.recs[i]->got, 1 << 20);
        assert_int_equal(r[i]->closed, 1);
    }
    pair_free(&w);
    payloads_free();
}

/* Runs 20 streams of 200 KiB A->B, optionally beside one stream B never
 * reads; returns the rounds until the 20 finished. */
static int stalled_run(int with_stall)
{
    pair_t w;
    const uint32_t window = 16384;
    cn_mux_config_t cfg = {.window = window, .send_buffer = window};
    pair_init(&w, &cfg, &cfg);
    w.cap_min = w.cap_max = 32768;
    for (int i = 0; i < 21; i++) {
        payload_make(i, 0, i == 20 ? 1 << 20 : 200 * 1024);
        payload_make(i, 1, 0);
    }
    rec_t *stalled = NULL;
    for (int i = 0; i < 20; i++)
        open_rec(&w.a, i);
    if (with_stall) {
        w.b.stall_idx = 20;
        stalled = open_rec(&w.a, 20);
    }
    int rounds = 0;
    for (;;) {
        int done = 0;
        for (size_t i = 0; i < w.b.nrecs; i++)
            done += w.b.recs[i]->eof;
        if (done == 20)
            break;
        round_trip(&w);
        rounds++;
        assert_true(rounds < 10000);
        if (stalled) {
            size_t rx, tx;
            assert_int_equal(cn_mux_stream_buffered(w.a.mux, stalled->id, &rx, &tx), 0);
            assert_true(tx <= window);
            assert_int_equal(cn_mux_stream_buffered(w.b.mux, stalled->id, &rx, &tx), 0);
            assert_true(rx <= window);
        }
    }
    if (stalled) {
        run(&w, 1000);
        size_t rx, tx;
        assert_int_equal(cn_mux_stream_buffered(w.b.mux, stalled->id, &rx, &tx), 0);
        assert_int_equal(rx, window); /* filled exactly to its window, then stopped */
        assert_int_equal(cn_mux_stream_buffered(w.a.mux, stalled->id, &rx, &tx), 0);
        assert_true(tx <= window);
        assert_int_equal(stalled->sent, window + tx);
        assert_int_equal(cn_mux_stream_count(w.a.mux), 1);
    }
    assert_int_equal(w.a.input_err, 0);
    assert_int_equal(w.b.input_err, 0);
    pair_free(&w);
    payloads_free();
    return rounds;
}

static void test_stalled_reader_does_not_block_others(void **state)
{
    int base = stalled_run(0);
    int stalled = stalled_run(1);
    /* The stalled stream costs at most its one window of link time. */
    assert_true(stalled <= base + 2);
}

/* Half-close: A sends a request and FINs; B sees all of it, then EOF, and
 * only then sends its whole multi-window reply; on_closed fires once per
 * side after both directions finished. */
static void test_half_close(void **state)
{
    pair_t w;
    cn_mux_config_t cfg = {.window = 4096};
    pair_init(&w, &cfg, &cfg);
    w.split_max = 7;
    payload_make(0, 0, 3000);
    payload_make(0, 1, 50000);
    w.b.reply_after_eof = 1;
    rec_t *a = open_rec(&w.a, 0);
    /* Until B's reply is done, neither side may close. */
    for (int i = 0; i < 4; i++)
        round_trip(&w);
    rec_t *b = w.b.recs[0];
    assert_true(b->eof);
    assert_int_equal(b->got, 3000);
    assert_true(a->shut);
    assert_int_equal(a->closed, 0);
    assert_int_equal(b->closed, 0);
    assert_false(a->eof);
    run(&w, 10000);
    assert_true(a->eof);
    assert_int_equal(a->got, 50000);
    assert_int_equal(a->closed, 1);
    assert_int_equal(b->closed, 1);
    assert_int_equal(w.a.closed_user, 1);
    assert_int_equal(w.b.closed_user, 1);
    assert_int_equal(cn_mux_write(w.a.mux, a->id, (const uint8_t *)"x", 1), CN_ENOTFOUND);
    pair_free(&w);
    payloads_free();
}

/* The peer may FIN an OPEN before we accept it: EOF arrives after accept. */
static void test_fin_before_accept(void **state)
{
    pair_t w;
    pair_init(&w, NULL, NULL);
    payload_make(0, 0, 0);
    payload_make(0, 1, 10);
    w.b.accept = ACCEPT_DEFER;
    rec_t *a = open_rec(&w.a, 0);
    assert_true(a->shut); /* empty request: FIN right behind the OPEN */
    transfer(&w, &w.a, &w.b);
    assert_int_equal(w.b.ndeferred, 1);
    uint8_t x;
    assert_int_equal(cn_mux_read(w.b.mux, a->id, &x, 1), CN_ESTATE);
    run(&w, 100);
    assert_true(w.b.recs[0]->eof);
    assert_true(a->eof);
    assert_int_equal(a->closed, 1);
    assert_int_equal(w.b.recs[0]->closed, 1);
    pair_free(&w);
    payloads_free();
}

/* Reset: pending data dropped both sides, on_reset + on_closed once, and
 * frames the peer had in flight for the dead stream are tolerated. */
static void test_reset(void **state)
{
    pair_t w;
    cn_mux_config_t cfg = {.window = 8192};
    pair_init(&w, &cfg, &cfg);
    payload_make(0, 0, 100000);
    payload_make(0, 1, 0);
    payload_make(1, 0, 5000);
    payload_make(1, 1, 5000);
    w.b.stall_new = 1;
    rec_t *a = open_rec(&w.a, 0);
    for (int i = 0; i < 3; i++)
        round_trip(&w);
    rec_t *b = w.b.recs[0];
    size_t rx, tx;
    assert_int_equal(cn_mux_stream_buffered(w.b.mux, b->id, &rx, &tx), 0);
    assert_int_equal(rx, 8192);
    /* Give A credit again so DATA is in flight when the RST crosses it. */
    b->stall = 0;
    drain(b);
    b->stall = 1;
    transfer(&w, &w.b, &w.a); /* WINDOW to A */
    assert_int_equal(cn_mux_reset(w.b.mux, b->id, CN_RST_CANCEL, "bye"), 0);
    assert_int_equal(cn_mux_buffered_bytes(w.b.mux), 0);
    assert_int_equal(cn_mux_stream_count(w.b.mux), 0);
    assert_int_equal(b->closed, 0); /* on_closed waits for the pump */
    assert_true(cn_mux_has_output(w.b.mux));
    assert_int_equal(cn_mux_read(w.b.mux, b->id, (uint8_t *)&rx, 1), CN_ENOTFOUND);
    transfer(&w, &w.a, &w.b); /* late DATA for the reset stream: dropped */
    assert_int_equal(w.b.input_err, 0);
    assert_int_equal(b->closed, 1);
    assert_int_equal(b->resets, 0);
    transfer(&w, &w.b, &w.a); /* the RST */
    assert_int_equal(a->resets, 1);
    assert_int_equal(a->reset_code, CN_RST_CANCEL);
    assert_string_equal(a->reset_msg, "bye");
    assert_int_equal(a->closed, 1);
    assert_int_equal(cn_mux_buffered_bytes(w.a.mux), 0);
    assert_int_equal(cn_mux_pending_bytes(w.a.mux), 0);
    /* More late frames for the dead id, each type: tolerated. */
    cn_frame_t f = {.type = CN_FRAME_DATA, .stream = a->id, .len = 3, .payload = (uint8_t *)"abc"};
    assert_int_equal(inject(w.b.mux, &f), 0);
    f = (cn_frame_t){.type = CN_FRAME_WINDOW, .stream = a->id, .u.window = 100};
    assert_int_equal(inject(w.b.mux, &f), 0);
    f = (cn_frame_t){.type = CN_FRAME_FIN, .stream = a->id};
    assert_int_equal(inject(w.b.mux, &f), 0);
    f = (cn_frame_t){.type = CN_FRAME_RST, .stream = a->id};
    assert_int_equal(inject(w.b.mux, &f), 0);
    f = (cn_frame_t){.type = CN_FRAME_DATAGRAM, .stream = a->id};
    assert_int_equal(inject(w.b.mux, &f), 0);
    f = (cn_frame_t){.type = CN_FRAME_OPEN_ACK, .stream = a->id, .u.window = 10};
    assert_int_equal(inject(w.a.mux, &f), 0); /* our id, already dead */
    /* The link still works. */
    w.b.stall_new = 0;
    rec_t *a2 = open_rec(&w.a, 1);
    run(&w, 1000);
    assert_true(a2->eof);
    assert_int_equal(a2->closed, 1);
    assert_int_equal(w.a.closed_user, 2);
    assert_int_equal(w.b.closed_user, 2);
    pair_free(&w);
    payloads_free();
}

/* A reset of our own stream before the peer ever answered. */
static void test_reset_before_ack(void **state)
{
    pair_t w;
    pair_init(&w, NULL, NULL);
    payload_make(0, 0, 10);
    payload_make(0, 1, 10);
    rec_t *a = open_rec(&w.a, 0);
    assert_int_equal(cn_mux_reset(w.a.mux, a->id, CN_RST_CANCEL, NULL), 0);
    run(&w, 100);
    assert_int_equal(a->closed, 1);
    assert_int_equal(a->resets, 0);
    assert_int_equal(w.b.recs[0]->resets, 1); /* B accepted, then got the RST */
    assert_int_equal(w.b.recs[0]->closed, 1);
    assert_int_equal(cn_mux_stream_count(w.a.mux), 0);
    assert_int_equal(cn_mux_stream_count(w.b.mux), 0);
    pair_free(&w);
    payloads_free();
}

static void test_reject(void **state)
{
    pair_t w;
    pair_init(&w, NULL, NULL);
    payload_make(0, 0, 10);
    payload_make(0, 1, 10);
    w.b.accept = ACCEPT_REJECT;
    rec_t *a = open_rec(&w.a, 0);
    run(&w, 100);
    assert_int_equal(a->resets, 1);
    assert_int_equal(a->reset_code, CN_RST_REFUSED);
    assert_string_equal(a->reset_msg, "not here");
    assert_int_equal(a->closed, 1);
    assert_false(a->accepted);
    assert_int_equal(w.b.closed_null, 1);
    assert_int_equal(w.b.closed_user, 0);

    /* Deferred: accept/reject later, outside the callback. */
    w.b.accept = ACCEPT_DEFER;
    rec_t *a2 = open_rec(&w.a, 0);
    transfer(&w, &w.a, &w.b);
    assert_int_equal(w.b.ndeferred, 1);
    assert_int_equal(cn_mux_stream_count(w.b.mux), 1);
    assert_int_equal(cn_mux_write(w.b.mux, a2->id, (const uint8_t *)"x", 1), CN_ESTATE);
    assert_int_equal(cn_mux_reject(w.b.mux, a2->id, CN_RST_UNREACHABLE, "down"), 0);
    assert_int_equal(cn_mux_reject(w.b.mux, a2->id, CN_RST_UNREACHABLE, "down"), CN_ENOTFOUND);
    w.b.ndeferred = 0;
    run(&w, 100);
    assert_int_equal(a2->reset_code, CN_RST_UNREACHABLE);
    assert_int_equal(a2->closed, 1);
    assert_int_equal(w.b.closed_null, 2);
    /* Accepting an open stream or rejecting our own is a state error. */
    w.b.accept = ACCEPT_NOW;
    rec_t *a3 = open_rec(&w.a, 0);
    transfer(&w, &w.a, &w.b);
    assert_int_equal(cn_mux_accept(w.b.mux, a3->id, NULL), CN_ESTATE);
    assert_int_equal(cn_mux_reject(w.a.mux, a3->id, 1, NULL), CN_ESTATE);
    run(&w, 100);
    pair_free(&w);
    payloads_free();
}

/* An accepted stream on B opened by A; returns its id. */
static uint32_t open_accepted(pair_t *w)
{
    rec_t *a = open_rec(&w->a, -1);
    a->no_shutdown = 1;
    round_trip(w);
    round_trip(w);
    assert_true(a->accepted);
    return a->id;
}

/* DATA beyond the granted window resets that stream (RST_FLOW both ways);
 * the link and other streams carry on. */
static void test_flow_violation_resets_stream(void **state)
{
    static uint8_t big[5000];
    pair_t w;
    cn_mux_config_t cfg = {.window = 4096};
    pair_init(&w, &cfg, &cfg);
    uint32_t id = open_accepted(&w);
    uint32_t other = open_accepted(&w);
    rec_t *b = w.b.recs[0];
    b->stall = 1;
    cn_frame_t f = {.type = CN_FRAME_DATA, .stream = id, .len = 3000, .payload = big};
    assert_int_equal(inject(w.b.mux, &f), 0);
    f.len = 1097; /* 4097 in total: one byte over */
    assert_int_equal(inject(w.b.mux, &f), 0);
    assert_int_equal(b->resets, 1);
    assert_int_equal(b->reset_code, CN_RST_FLOW);
    assert_int_equal(b->closed, 1);
    assert_int_equal(cn_mux_stream_buffered(w.b.mux, id, NULL, NULL), CN_ENOTFOUND);
    seen_t s[16];
    size_t n = collect(w.b.mux, s, 16);
    int i = find_seen(s, n, CN_FRAME_RST, id);
    assert_true(i >= 0);
    assert_int_equal(s[i].code, CN_RST_FLOW);
    /* A single frame larger than the window, on the other stream. */
    f.stream = other;
    f.len = 4097;
    assert_int_equal(inject(w.b.mux, &f), 0);
    assert_int_equal(w.b.recs[1]->reset_code, CN_RST_FLOW);
    /* Later frames for them are tolerated; the link is fine. */
    f.len = 10;
    assert_int_equal(inject(w.b.mux, &f), 0);
    payload_make(0, 0, 20000);
    payload_make(0, 1, 20000);
    rec_t *a3 = open_rec(&w.a, 0);
    run(&w, 1000);
    assert_true(a3->eof);
    assert_int_equal(a3->closed, 1);
    pair_free(&w);
    payloads_free();
}

/* WINDOW that would push our credit beyond the maximum window. */
static void test_window_overflow_resets_stream(void **state)
{
    pair_t w;
    pair_init(&w, NULL, NULL);
    uint32_t id = open_accepted(&w);
    cn_frame_t f = {.type = CN_FRAME_WINDOW, .stream = id, .u.window = CN_FRAME_MAX_WINDOW};
    assert_int_equal(inject(w.a.mux, &f), 0);
    assert_int_equal(w.a.recs[0]->reset_code, CN_RST_FLOW);
    assert_int_equal(w.a.recs[0]->closed, 1);
    pair_free(&w);
}

/* Link-fatal violations: input fails, stays failed, and a GOAWAY is queued. */
static void expect_link_error(cn_mux_t *m, const cn_frame_t *f)
{
    assert_int_equal(inject(m, f), CN_EPROTO);
    cn_frame_t ping = {.type = CN_FRAME_PING};
    assert_int_equal(inject(m, &ping), CN_EPROTO); /* sticky */
    seen_t s[16];
    size_t n = collect(m, s, 16);
    int i = find_seen(s, n, CN_FRAME_GOAWAY, 0);
    assert_true(i >= 0);
    assert_int_equal(s[i].code, CN_RST_PROTOCOL);
    assert_int_equal(cn_mux_goaway(m, 0, NULL), CN_ESTATE);
}

static void test_unknown_stream_ids(void **state)
{
    const uint8_t types[] = {CN_FRAME_DATA, CN_FRAME_WINDOW, CN_FRAME_FIN, CN_FRAME_RST,
                             CN_FRAME_DATAGRAM};
    for (size_t t = 0; t < sizeof(types); t++) {
        for (int ours = 0; ours < 2; ours++) {
            /* B is the responder: its ids are even, the peer's odd. */
            cn_mux_t *b = cn_mux_new(NULL, &callbacks, NULL);
            assert_non_null(b);
            cn_frame_t f = {.type = types[t], .stream = ours ? 2 : 1};
            if (f.type == CN_FRAME_WINDOW)
                f.u.window = 1;
            expect_link_error(b, &f);
            cn_mux_free(b);
        }
    }
    /* OPEN_ACK for an id the peer owns is never right. */
    cn_mux_t *b = cn_mux_new(NULL, &callbacks, NULL);
    cn_frame_t f = {.type = CN_FRAME_OPEN_ACK, .stream = 7};
    expect_link_error(b, &f);
    cn_mux_free(b);
}

static void test_open_violations(void **state)
{
    peer_t p = {0};
    p.rng = 1;
    cn_mux_config_t cfg = {0};
    cn_frame_t f = {.type = CN_FRAME_OPEN, .stream = 2};
    f.u.open.kind = CN_KIND_TCP;
    f.u.open.window = 1000;

    /* Wrong parity: the responder's own (even) id. */
    p.mux = cn_mux_new(&cfg, &callbacks, &p);
    expect_link_error(p.mux, &f);
    peer_free(&p);

    /* Duplicate id. */
    memset(&p, 0, sizeof(p));
    p.rng = 1;
    p.mux = cn_mux_new(&cfg, &callbacks, &p);
    f.stream = 5;
    assert_int_equal(inject(p.mux, &f), 0);
    assert_int_equal(p.opens, 1);
    expect_link_error(p.mux, &f);
    peer_free(&p);

    /* Not above the last one (gaps are fine). */
    memset(&p, 0, sizeof(p));
    p.rng = 1;
    p.mux = cn_mux_new(&cfg, &callbacks, &p);
    f.stream = 9;
    assert_int_equal(inject(p.mux, &f), 0);
    f.stream = 7;
    expect_link_error(p.mux, &f);
    peer_free(&p);
}

static void test_state_violations(void **state)
{
    cn_frame_t fin = {.type = CN_FRAME_FIN};
    cn_frame_t data = {.type = CN_FRAME_DATA, .len = 1, .payload = (const uint8_t *)"x"};
    cn_frame_t ack = {.type = CN_FRAME_OPEN_ACK, .u.window = 100};

    /* Second FIN. */
    pair_t w;
    pair_init(&w, NULL, NULL);
    uint32_t id = open_accepted(&w);
    fin.stream = id;
    assert_int_equal(inject(w.b.mux, &fin), 0);
    expect_link_error(w.b.mux, &fin);
    pair_free(&w);

    /* DATA after FIN. */
    pair_init(&w, NULL, NULL);
    id = open_accepted(&w);
    fin.stream = data.stream = id;
    w.b.recs[0]->stall = 1;
    assert_int_equal(inject(w.b.mux, &fin), 0);
    expect_link_error(w.b.mux, &data);
    pair_free(&w);

    /* Duplicate OPEN_ACK. */
    pair_init(&w, NULL, NULL);
    ack.stream = open_accepted(&w);
    expect_link_error(w.a.mux, &ack);
    pair_free(&w);

    /* DATA before OPEN_ACK, and on a stream not yet accepted. */
    pair_init(&w, NULL, NULL);
    w.b.accept = ACCEPT_DEFER;
    rec_t *a = open_rec(&w.a, -1);
    transfer(&w, &w.a, &w.b);
    data.stream = a->id;
    expect_link_error(w.a.mux, &data);
    expect_link_error(w.b.mux, &data);
    w.b.ndeferred = 0;
    pair_free(&w);
}

static void test_id_exhaustion(void **state)
{
    pair_t w;
    cn_mux_config_t ca = {.max_stream_id = 7};
    cn_mux_config_t cb = {.max_stream_id = 8};
    pair_init(&w, &ca, &cb);
    uint32_t id;
    for (uint32_t want = 1; want <= 7; want += 2) {
        assert_int_equal(cn_mux_open(w.a.mux, CN_KIND_TCP, NULL, 0, NULL, 0, NULL, &id), 0);
        assert_int_equal(id, want);
    }
    assert_int_equal(cn_mux_open(w.a.mux, CN_KIND_TCP, NULL, 0, NULL, 0, NULL, &id), CN_EEXHAUSTED);
    /* Closing streams does not give ids back. */
    assert_int_equal(cn_mux_reset(w.a.mux, 1, CN_RST_CANCEL, NULL), 0);
    assert_int_equal(cn_mux_open(w.a.mux, CN_KIND_TCP, NULL, 0, NULL, 0, NULL, &id), CN_EEXHAUSTED);
    for (uint32_t want = 2; want <= 8; want += 2) {
        assert_int_equal(cn_mux_open(w.b.mux, CN_KIND_TCP, NULL, 0, NULL, 0, NULL, &id), 0);
        assert_int_equal(id, want);
    }
    assert_int_equal(cn_mux_open(w.b.mux, CN_KIND_TCP, NULL, 0, NULL, 0, NULL, &id), CN_EEXHAUSTED);
    run(&w, 100);
    pair_free(&w);
}

static void test_max_streams_both_sides(void **state)
{
    pair_t w;
    cn_mux_config_t ca = {.max_streams = 4};
    cn_mux_config_t cb = {.max_streams = 2};
    pair_init(&w, &ca, &cb);
    rec_t *r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = open_rec(&w.a, -1);
        r[i]->no_shutdown = 1;
    }
    uint32_t id;
    assert_int_equal(cn_mux_open(w.a.mux, CN_KIND_TCP, NULL, 0, NULL, 0, NULL, &id), CN_EAGAIN);
    run(&w, 100);
    /* B took two and refused two with CN_RST_LIMIT. */
    int refused = 0;
    for (int i = 0; i < 4; i++) {
        if (r[i]->resets) {
            assert_int_equal(r[i]->reset_code, CN_RST_LIMIT);
            assert_int_equal(r[i]->closed, 1);
            refused++;
        } else {
            assert_true(r[i]->accepted);
        }
    }
    assert_int_equal(refused, 2);
    assert_int_equal(cn_mux_stream_count(w.b.mux), 2);
    assert_int_equal(cn_mux_stream_count(w.a.mux), 2);
    /* B is full for its own opens too. */
    assert_int_equal(cn_mux_open(w.b.mux, CN_KIND_TCP, NULL, 0, NULL, 0, NULL, &id), CN_EAGAIN);
    /* A slot freed on A can be reused. */
    assert_int_equal(cn_mux_open(w.a.mux, CN_KIND_TCP, NULL, 0, NULL, 0, NULL, &id), 0);
    pair_free(&w);
}

/* Callbacks reset this and other streams, open and reset new ones, from
 * inside every callback; ASan proves nothing is used after free, and every
 * announced stream still gets exactly one on_closed. */
static void test_chaos_callbacks(void **state)
{
    for (uint64_t seed = 1; seed <= 6; seed++) {
        pair_t w;
        cn_mux_config_t cfg = {.window = 4096, .quantum = 1024};
        pair_init(&w, &cfg, &cfg);
        for (int i = 0; i < 64; i++)
            for (int d = 0; d < 2; d++)
                payload_make(i, d, (size_t)(i * 397 % 9000));
        w.a.rng ^= seed * 0x9e3779b97f4a7c15ull;
        w.b.rng ^= seed * 0xc2b2ae3d27d4eb4full;
        w.rng ^= seed;
        w.a.chaos = w.b.chaos = 1;
        w.a.zero_copy = w.b.zero_copy = 1;
        w.b.accept = ACCEPT_ALTERNATE;
        w.cap_min = 64;
        w.cap_max = 9000;
        w.split_max = 300;
        for (int i = 0; i < 40; i++) {
            open_rec(&w.a, i);
            open_rec(&w.b, i + 1);
        }
        int rounds = 0;
        while (rounds < 5000 && (cn_mux_has_output(w.a.mux) || cn_mux_has_output(w.b.mux) ||
                                 w.a.ndeferred || w.b.ndeferred)) {
            round_trip(&w);
            rounds++;
        }
        assert_true(rounds < 5000);
        assert_int_equal(w.a.input_err, 0);
        assert_int_equal(w.b.input_err, 0);
        /* Whatever is still open gets closed by an abort. */
        cn_mux_abort(w.a.mux, CN_RST_GONE);
        cn_mux_abort(w.b.mux, CN_RST_GONE);
        peer_t *ps[2] = {&w.a, &w.b};
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < ps[k]->nrecs; i++)
                assert_int_not_equal(ps[k]->recs[i]->closed, 0);
        pair_free(&w);
        payloads_free();
    }
}

static void test_ping_pong(void **state)
{
    pair_t w;
    pair_init(&w, NULL, NULL);
    assert_int_equal(cn_mux_ping(w.a.mux, 0x1122334455667788ull), 0);
    assert_int_equal(cn_mux_ping(w.b.mux, 42), 0);
    run(&w, 10);
    assert_int_equal(w.a.pongs, 1);
    assert_int_equal(w.a.last_pong, 0x1122334455667788ull);
    assert_int_equal(w.b.pongs, 1);
    assert_int_equal(w.b.last_pong, 42);
    pair_free(&w);
}

static void test_control_round_trip(void **state)
{
    pair_t w;
    pair_init(&w, NULL, NULL);
    json_t *obj = json_pack("{s:s, s:i, s:[i,i]}", "type", "tunnel.add", "port", 5432, "ids", 1, 2);
    assert_int_equal(cn_mux_send_control(w.a.mux, obj), 0);
    run(&w, 10);
    assert_int_equal(w.b.controls, 1);
    assert_true(json_equal(obj, w.b.last_control));
    json_t *arr = json_array();
    assert_int_equal(cn_mux_send_control(w.a.mux, arr), CN_EINVAL);
    json_decref(arr);

    /* A CONTROL bigger than the output buffer is split across records. */
    char *big = malloc(60000);
    memset(big, 'q', 59999);
    big[59999] = 0;
    json_object_set_new(obj, "blob", json_string(big));
    free(big);
    assert_int_equal(cn_mux_send_control(w.b.mux, obj), 0);
    w.cap_min = w.cap_max = 100;
    run(&w, 1000);
    assert_int_equal(w.a.controls, 1);
    assert_true(json_equal(obj, w.a.last_control));
    json_decref(obj);
    pair_free(&w);
}

static void test_control_queue_bound(void **state)
{
    pair_t w;
    cn_mux_config_t cfg = {.queue_max = 4096};
    pair_init(&w, &cfg, &cfg);
    json_t *obj = json_pack("{s:s}", "pad", "0123456789012345678901234567890123456789");
    int queued = 0;
    while (cn_mux_send_control(w.a.mux, obj) == 0)
        queued++;
    assert_true(queued > 10 && queued < 100);
    assert_int_equal(cn_mux_send_control(w.a.mux, obj), CN_EAGAIN);
    assert_int_equal(cn_mux_ping(w.a.mux, 1), CN_EAGAIN);
    uint32_t id;
    assert_int_equal(cn_mux_open(w.a.mux, CN_KIND_TCP, NULL, 0, NULL, 0, NULL, &id), CN_EAGAIN);
    run(&w, 100);
    assert_int_equal(w.b.controls, queued);
    assert_int_equal(cn_mux_send_control(w.a.mux, obj), 0); /* room again */
    json_decref(obj);
    run(&w, 100);
    pair_free(&w);
}

static void test_datagrams(void **state)
{
    pair_t w;
    cn_mux_config_t cfg = {.queue_max = 4096};
    pair_init(&w, &cfg, &cfg);
    uint32_t id;
    rec_t *r = rec_new(&w.a, 0, -1, 1);
    assert_int_equal(cn_mux_open(w.a.mux, CN_KIND_UDP, NULL, 0, NULL, 0, r, &id), 0);
    r->id = id;
    r->no_shutdown = 1;
    run(&w, 10);
    assert_true(r->accepted);
    w.b.recs[0]->no_shutdown = 1;
    assert_int_equal(cn_mux_send_datagram(w.a.mux, id, (const uint8_t *)"hello", 5), 0);
    assert_int_equal(cn_mux_send_datagram(w.a.mux, id, (const uint8_t *)"", 0), 0);
    assert_int_equal(cn_mux_send_datagram(w.b.mux, id, (const uint8_t *)"back", 4), 0);
    run(&w, 10);
    assert_int_equal(w.b.datagrams, 2);
    assert_int_equal(w.b.dgram_bytes, 5);
    assert_int_equal(w.a.datagrams, 1);
    assert_memory_equal(w.a.last_dgram, "back", 4);

    /* Full queue: dropped with CN_EAGAIN, like UDP. */
    static uint8_t d[1000];
    int queued = 0, dropped = 0;
    for (int i = 0; i < 10; i++) {
        int rc = cn_mux_send_datagram(w.a.mux, id, d, sizeof(d));
        if (rc == 0)
            queued++;
        else if (rc == CN_EAGAIN)
            dropped++;
        else
            fail();
    }
    assert_int_equal(queued, 4);
    assert_int_equal(dropped, 6);
    assert_int_equal(cn_mux_send_datagram(w.a.mux, id, d, CN_FRAME_MAX_DATAGRAM + 1), CN_ETOOBIG);
    assert_int_equal(cn_mux_send_datagram(w.a.mux, 999, d, 1), CN_ENOTFOUND);
    run(&w, 10);
    assert_int_equal(w.b.datagrams, 2 + 4);
    pair_free(&w);
}

/* A datagram larger than the output buffer is split across calls, and
 * control frames queued meanwhile wait until it is finished. */
static void test_split_datagram_is_not_interleaved(void **state)
{
    pair_t w;
    pair_init(&w, NULL, NULL);
    uint32_t id = open_accepted(&w);
    static uint8_t d[3000];
    cn_test_fill(d, sizeof(d), 5);
    assert_int_equal(cn_mux_send_datagram(w.a.mux, id, d, sizeof(d)), 0);
    w.cap_min = w.cap_max = 100;
    transfer(&w, &w.a, &w.b); /* the first 100 bytes */
    assert_int_equal(cn_mux_ping(w.a.mux, 9), 0);
    json_t *obj = json_pack("{s:i}", "n", 1);
    assert_int_equal(cn_mux_send_control(w.a.mux, obj), 0);
    json_decref(obj);
    run(&w, 100);
    assert_int_equal(w.b.datagrams, 1);
    assert_memory_equal(w.b.last_dgram, d, sizeof(w.b.last_dgram));
    assert_int_equal(w.b.dgram_bytes, sizeof(d));
    assert_int_equal(w.b.controls, 1);
    assert_int_equal(w.a.pongs, 1);
    pair_free(&w);
}

/* Datagrams share the link with streams but get a quantum per record. */
static void test_datagrams_do_not_starve_streams(void **state)
{
    pair_t w;
    cn_mux_config_t cfg = {.queue_max = 1 << 20, .quantum = 4096};
    pair_init(&w, &cfg, &cfg);
    w.cap_min = w.cap_max = 16384;
    payload_make(0, 0, 200000);
    payload_make(0, 1, 0);
    w.b.stall_idx = -1;
    rec_t *r = open_rec(&w.a, 0);
    /* Datagrams are not ordered with DATA/FIN: keep the stream open so none
     * arrives after it closed (those would be dropped, like UDP). */
    r->no_shutdown = 1;
    round_trip(&w);
    round_trip(&w);
    assert_true(r->accepted);
    static uint8_t d[1000];
    for (int i = 0; i < 500; i++)
        assert_int_equal(cn_mux_send_datagram(w.a.mux, r->id, d, sizeof(d)), 0);
    size_t before = w.b.recs[0]->got;
    round_trip(&w);
    round_trip(&w);
    assert_true(w.b.recs[0]->got - before >= 2 * 8000);
    run(&w, 1000);
    assert_int_equal(w.b.datagrams, 500);
    assert_int_equal(w.b.recs[0]->got, 200000);
    pair_free(&w);
    payloads_free();
}

static void test_goaway(void **state)
{
    pair_t w;
    pair_init(&w, NULL, NULL);
    uint32_t live = open_accepted(&w);
    assert_int_equal(cn_mux_goaway(w.a.mux, CN_RST_GONE, "maintenance"), 0);
    uint32_t id;
    assert_int_equal(cn_mux_open(w.a.mux, CN_KIND_TCP, NULL, 0, NULL, 0, NULL, &id), CN_ECLOSED);
    run(&w, 10);
    assert_int_equal(w.b.goaways, 1);
    assert_int_equal(w.b.goaway_code, CN_RST_GONE);
    assert_int_equal(cn_mux_open(w.b.mux, CN_KIND_TCP, NULL, 0, NULL, 0, NULL, &id), CN_ECLOSED);
    /* An OPEN crossing our GOAWAY is refused with CN_RST_GONE. */
    cn_frame_t f = {.type = CN_FRAME_OPEN, .stream = 100};
    f.u.open.kind = CN_KIND_TCP;
    assert_int_equal(inject(w.a.mux, &f), 0);
    seen_t s[8];
    size_t n = collect(w.a.mux, s, 8);
    int i = find_seen(s, n, CN_FRAME_RST, 100);
    assert_true(i >= 0);
    assert_int_equal(s[i].code, CN_RST_GONE);
    /* Live streams keep working. */
    assert_int_equal(cn_mux_write(w.a.mux, live, (const uint8_t *)"still", 5), 5);
    run(&w, 10);
    assert_int_equal(w.b.recs[0]->got, 5);
    pair_free(&w);
}

static void test_abort(void **state)
{
    pair_t w;
    pair_init(&w, NULL, NULL);
    w.b.accept = ACCEPT_DEFER;
    rec_t *r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = open_rec(&w.a, -1);
        r[i]->no_shutdown = 1;
    }
    transfer(&w, &w.a, &w.b);
    cn_mux_abort(w.a.mux, CN_RST_GONE);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i]->resets, 1);
        assert_int_equal(r[i]->reset_code, CN_RST_GONE);
        assert_int_equal(r[i]->closed, 1);
    }
    cn_mux_abort(w.a.mux, CN_RST_GONE); /* idempotent */
    uint32_t id;
    assert_int_equal(cn_mux_open(w.a.mux, CN_KIND_TCP, NULL, 0, NULL, 0, NULL, &id), CN_ECLOSED);
    assert_false(cn_mux_has_output(w.a.mux));
    cn_frame_t ping = {.type = CN_FRAME_PING};
    assert_int_equal(inject(w.a.mux, &ping), CN_ECLOSED);
    /* Streams still pending accept are announced with user NULL. */
    cn_mux_abort(w.b.mux, CN_RST_GONE);
    assert_int_equal(w.b.resets_null, 3);
    assert_int_equal(w.b.closed_null, 3);
    w.b.ndeferred = 0;
    pair_free(&w);
}

/* Writes before OPEN_ACK are refused and on_writable fires once open; a
 * full window makes writes short and on_writable comes back with credit. */
static void test_write_backpressure(void **state)
{
    pair_t w;
    cn_mux_config_t cfg = {.window = 4096, .send_buffer = 1 << 20};
    pair_init(&w, &cfg, &cfg);
    w.b.accept = ACCEPT_DEFER;
    uint32_t id;
    rec_t *r = rec_new(&w.a, 0, -1, 1);
    assert_int_equal(cn_mux_open(w.a.mux, CN_KIND_TCP, NULL, 0, NULL, 0, r, &id), 0);
    r->id = id;
    static uint8_t d[10000];
    assert_int_equal(cn_mux_write(w.a.mux, id, d, 10), CN_EAGAIN);
    uint8_t *ptr;
    size_t space;
    assert_int_equal(cn_mux_write_space(w.a.mux, id, &ptr, &space), CN_EAGAIN);
    run(&w, 10);
    assert_true(r->accepted);
    assert_int_equal(r->writable_calls, 1);
    assert_int_equal(cn_mux_write(w.a.mux, id, d, sizeof(d)), 4096); /* the peer's window */
    assert_int_equal(cn_mux_write(w.a.mux, id, d, 1), CN_EAGAIN);
    assert_int_equal(cn_mux_write_commit(w.a.mux, id, 1), CN_ESTATE);
    w.b.recs[0]->no_shutdown = 1;
    run(&w, 10);
    assert_int_equal(w.b.recs[0]->got, 4096);
    assert_int_equal(r->writable_calls, 2);
    assert_int_equal(cn_mux_write_space(w.a.mux, id, &ptr, &space), 0);
    assert_int_equal(space, 4096);
    assert_int_equal(cn_mux_write_commit(w.a.mux, id, space + 1), CN_EINVAL);
    assert_int_equal(cn_mux_write_commit(w.a.mux, id, 100), 0);
    assert_int_equal(cn_mux_shutdown(w.a.mux, id), 0);
    assert_int_equal(cn_mux_shutdown(w.a.mux, id), 0);
    assert_int_equal(cn_mux_write(w.a.mux, id, d, 1), CN_ECLOSED);
    run(&w, 10);
    assert_true(w.b.recs[0]->eof);
    assert_int_equal(w.b.recs[0]->got, 4196);
    pair_free(&w);
}

/* Vectored space and peek: spans cover exactly the send space (chunk by
 * chunk, at most max of them), a commit that ends inside the third span
 * queues exactly those bytes in order, unused and abandoned spans are given
 * back (ASan's leak check), and peekv returns the received bytes span by
 * span. */
static void test_vectored_spans(void **state)
{
    pair_t w;
    cn_mux_config_t cfg = {.window = 256 * 1024, .send_buffer = 256 * 1024};
    pair_init(&w, &cfg, &cfg);
    uint32_t id;
    rec_t *r = rec_new(&w.a, 0, -1, 1);
    assert_int_equal(cn_mux_open(w.a.mux, CN_KIND_TCP, NULL, 0, NULL, 0, r, &id), 0);
    r->id = id;
    run(&w, 10);
    assert_true(r->accepted);
    rec_t *rb = w.b.recs[0];
    rb->stall = 1; /* we read b's side by hand */
    rb->no_shutdown = 1;

    struct iovec iov[CN_MUX_MAX_IOV + 1];
    size_t space;
    assert_int_equal(cn_mux_write_spacev(w.a.mux, id, iov, 0, &space), CN_EINVAL);
    assert_int_equal(cn_mux_write_spacev(w.a.mux, id, iov, CN_MUX_MAX_IOV + 1, &space), CN_EINVAL);
    /* 100 bytes first, so the spans start inside a chunk. */
    static uint8_t src[200000];
    cn_test_fill(src, sizeof(src), 7);
    assert_int_equal(cn_mux_write(w.a.mux, id, src, 100), 100);

    int n = cn_mux_write_spacev(w.a.mux, id, iov, CN_MUX_MAX_IOV, &space);
    assert_int_equal(n, CN_MUX_MAX_IOV); /* 256 KiB - 100 needs 17 chunks: capped at 8 */
    assert_int_equal(iov[0].iov_len, 16384 - 100);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (i)
            assert_int_equal(iov[i].iov_len, 16384);
        total += iov[i].iov_len;
    }
    assert_int_equal(total, space);
    /* Abandoned by another call: the lent chunks must not leak or count. */
    size_t before = cn_mux_buffered_bytes(w.a.mux);
    assert_int_equal(cn_mux_write(w.a.mux, id, src + 100, 10), 10);
    assert_int_equal(cn_mux_write_commit(w.a.mux, id, 5), CN_ESTATE);
    assert_int_equal(cn_mux_buffered_bytes(w.a.mux), before + 10);

    /* Now 110 queued; fill 2.5 spans in order and commit that much. */
    n = cn_mux_write_spacev(w.a.mux, id, iov, 4, &space);
    assert_int_equal(n, 4);
    assert_int_equal(space, (16384 - 110) + 3 * 16384);
    size_t k = (16384 - 110) + 16384 + 8000, off = 110;
    for (int i = 0; i < n && off < 110 + k; i++) {
        size_t c = iov[i].iov_len < 110 + k - off ? iov[i].iov_len : 110 + k - off;
        memcpy(iov[i].iov_base, src + off, c);
        off += c;
    }
    assert_int_equal(cn_mux_write_commit(w.a.mux, id, space + 1), CN_EINVAL);
    assert_int_equal(cn_mux_write_commit(w.a.mux, id, k), 0);
    size_t tx;
    assert_int_equal(cn_mux_stream_buffered(w.a.mux, id, NULL, &tx), 0);
    assert_int_equal(tx, 110 + k);
    /* A space offered then abandoned with commit(0) queues nothing. */
    n = cn_mux_write_spacev(w.a.mux, id, iov, 3, &space);
    assert_true(n > 1);
    assert_int_equal(cn_mux_write_commit(w.a.mux, id, 0), 0);
    assert_int_equal(cn_mux_stream_buffered(w.a.mux, id, NULL, &tx), 0);
    assert_int_equal(tx, 110 + k);
    run(&w, 50);

    /* The receiver's view: spans in order, the bytes as sent. */
    size_t len;
    n = cn_mux_peekv(w.b.mux, rb->id, iov, 0, &len);
    assert_int_equal(n, CN_EINVAL);
    n = cn_mux_peekv(w.b.mux, rb->id, iov, 2, &len);
    assert_int_equal(n, 2);
    assert_int_equal(len, iov[0].iov_len + iov[1].iov_len);
    n = cn_mux_peekv(w.b.mux, rb->id, iov, CN_MUX_MAX_IOV, &len);
    assert_true(n >= 3);
    assert_int_equal(len, 110 + k);
    off = 0;
    for (int i = 0; i < n; i++) {
        assert_memory_equal(iov[i].iov_base, src + off, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    /* Consume across a span boundary; the next peekv starts there. */
    size_t first = iov[0].iov_len;
    assert_int_equal(cn_mux_consume(w.b.mux, rb->id, first + 5), 0);
    n = cn_mux_peekv(w.b.mux, rb->id, iov, CN_MUX_MAX_IOV, &len);
    assert_true(n > 0);
    assert_int_equal(len, 110 + k - first - 5);
    assert_memory_equal(iov[0].iov_base, src + first + 5, iov[0].iov_len);
    assert_int_equal(cn_mux_consume(w.b.mux, rb->id, len), 0);
    assert_int_equal(cn_mux_peekv(w.b.mux, rb->id, iov, CN_MUX_MAX_IOV, &len), CN_EAGAIN);
    assert_int_equal(len, 0);
    pair_free(&w);
}

/* WINDOW frames batch: none until a quarter of the window was consumed. */
static void test_window_updates_batch(void **state)
{
    pair_t w;
    cn_mux_config_t cfg = {.window = 65536};
    pair_init(&w, &cfg, &cfg);
    uint32_t id = open_accepted(&w);
    rec_t *b = w.b.recs[0];
    b->stall = 1;
    static uint8_t d[65536];
    assert_int_equal(cn_mux_write(w.a.mux, id, d, sizeof(d)), 65536);
    transfer(&w, &w.a, &w.b);
    uint8_t buf[1000];
    for (int i = 0; i < 16; i++)
        assert_int_equal(cn_mux_read(w.b.mux, id, buf, 1000), 1000);
    assert_false(cn_mux_has_output(w.b.mux));
    assert_int_equal(cn_mux_read(w.b.mux, id, buf, 500), 500); /* 16500 >= 16384 */
    seen_t s[8];
    size_t n = collect(w.b.mux, s, 8);
    assert_int_equal(n, 1);
    assert_int_equal(s[0].type, CN_FRAME_WINDOW);
    assert_int_equal(s[0].window, 16500);
    pair_free(&w);
}

/* The user-facing check of a window setting agrees with cn_mux_new() on
 * every case, and says what is wrong. */
static void test_window_valid(void **state)
{
    static const struct {
        uint64_t window, update;
        bool ok;
        const char *why;
    } v[] = {
        {0, 0, true, NULL},
        {CN_MUX_MIN_WINDOW, 0, true, NULL},
        {CN_MUX_MIN_WINDOW, CN_MUX_MIN_WINDOW, true, NULL},
        {CN_FRAME_MAX_WINDOW, CN_FRAME_MAX_WINDOW, true, NULL},
        {0, CN_MUX_DEFAULT_WINDOW, true, NULL},
        {4u << 20, 1, true, NULL},
        {CN_MUX_MIN_WINDOW - 1, 0, false, "between 1024 and 1073741824"},
        {(uint64_t)CN_FRAME_MAX_WINDOW + 1, 0, false, "between 1024 and 1073741824"},
        {1ull << 40, 0, false, "between"},
        {0, CN_MUX_DEFAULT_WINDOW + 1, false, "must not exceed"},
        {4096, 4097, false, "must not exceed"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        const char *why = NULL;
        bool ok = cn_mux_window_valid(v[i].window, v[i].update, &why);
        if (ok != v[i].ok)
            fail_msg("case %zu: %s", i, ok ? "accepted" : why);
        if (!ok && !strstr(why, v[i].why))
            fail_msg("case %zu: '%s' does not say '%s'", i, why, v[i].why);
        if (v[i].window > UINT32_MAX || v[i].update > UINT32_MAX)
            continue;
        cn_mux_config_t c = {.window = (uint32_t)v[i].window,
                             .window_update = (uint32_t)v[i].update};
        cn_mux_t *m = cn_mux_new(&c, NULL, NULL);
        if (!m != !ok)
            fail_msg("case %zu: cn_mux_new() disagrees", i);
        cn_mux_free(m);
    }
    assert_false(cn_mux_window_valid(100, 0, NULL)); /* why may be NULL */
}

/* A stream's credit, as the agent logs it: the window its peer announced
 * in the OPEN, until bytes are sent. */
static void test_stream_credit(void **state)
{
    pair_t w;
    cn_mux_config_t ca = {.window = 8192}, cb = {.window = 20000};
    pair_init(&w, &ca, &cb);
    w.b.accept = ACCEPT_DEFER;
    payload_make(0, 0, 0);
    payload_make(0, 1, 0);
    rec_t *r = open_rec(&w.a, 0);
    round_trip(&w);
    assert_int_equal(w.b.opens, 1);
    size_t credit = 0;
    assert_int_equal(cn_mux_stream_credit(w.b.mux, r->id, &credit), 0);
    assert_int_equal(credit, 8192);
    assert_int_equal(cn_mux_stream_credit(w.b.mux, r->id + 2, &credit), CN_ENOTFOUND);
    assert_int_equal(cn_mux_stream_credit(w.b.mux, 0, &credit), CN_ENOTFOUND);
    pair_free(&w);
}

static void test_config_and_args(void **state)
{
    cn_mux_config_t c = {.window = 100};
    assert_null(cn_mux_new(&c, NULL, NULL));
    c = (cn_mux_config_t){.window = CN_FRAME_MAX_WINDOW + 1};
    assert_null(cn_mux_new(&c, NULL, NULL));
    c = (cn_mux_config_t){.window = 4096, .window_update = 5000};
    assert_null(cn_mux_new(&c, NULL, NULL));
    cn_mux_t *m = cn_mux_new(NULL, NULL, NULL);
    assert_non_null(m);
    uint8_t out[64];
    assert_int_equal(cn_mux_output(m, out, 63), CN_EINVAL);
    assert_int_equal(cn_mux_output(m, out, 64), 0);
    assert_false(cn_mux_has_output(m));
    uint32_t id;
    assert_int_equal(cn_mux_open(m, 0, NULL, 0, NULL, 0, NULL, &id), CN_EINVAL);
    assert_int_equal(cn_mux_open(m, 1, NULL, 256, NULL, 0, NULL, &id), CN_EINVAL);
    static uint8_t meta[CN_FRAME_MAX_PAYLOAD];
    assert_int_equal(cn_mux_open(m, 1, NULL, 0, meta, sizeof(meta), NULL, &id), CN_EINVAL);
    assert_int_equal(cn_mux_open(m, 1, NULL, 0, meta, CN_FRAME_MAX_PAYLOAD - 6, NULL, &id), 0);
    assert_int_equal(id, 2);
    assert_int_equal(cn_mux_read(m, 4, out, 1), CN_ENOTFOUND);
    assert_int_equal(cn_mux_read(m, id, out, 1), CN_EAGAIN);
    /* The 64 KiB OPEN leaves in 64-byte pieces. */
    size_t total = 0;
    int n;
    while ((n = cn_mux_output(m, out, sizeof(out))) > 0)
        total += (size_t)n;
    assert_int_equal(total, CN_FRAME_HEADER + CN_FRAME_MAX_PAYLOAD);
    /* An incoming OPEN with no on_open callback is refused. */
    cn_frame_t f = {.type = CN_FRAME_OPEN, .stream = 1};
    f.u.open.kind = CN_KIND_TCP;
    assert_int_equal(inject(m, &f), 0);
    seen_t s[4];
    assert_int_equal(collect(m, s, 4), 1);
    assert_int_equal(s[0].type, CN_FRAME_RST);
    assert_int_equal(s[0].code, CN_RST_REFUSED);
    cn_mux_free(m);
    cn_mux_free(NULL);
}

/* A peer that pings without ever reading our PONGs fails the link. */
static void test_reply_flood_fails_link(void **state)
{
    cn_mux_config_t c = {.queue_max = 4096, .max_streams = 1};
    cn_mux_t *m = cn_mux_new(&c, NULL, NULL);
    cn_frame_t ping = {.type = CN_FRAME_PING};
    int rc = 0, i;
    for (i = 0; i < 100000 && rc == 0; i++)
        rc = inject(m, &ping);
    assert_int_equal(rc, CN_EFLOW);
    assert_true(i > 1000);
    cn_mux_free(m);
}

/* What the application's last answer to an OPEN returned. */
static int app_rc;

/* The hub's answer to an agent's OPEN: refused by the application. */
static void reject_open(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t ref_len,
                        const uint8_t *meta, size_t meta_len)
{
    app_rc = cn_mux_reject(*(cn_mux_t **)ctx, id, CN_RST_REFUSED, "not supported");
}

static void accept_open(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t ref_len,
                        const uint8_t *meta, size_t meta_len)
{
    app_rc = cn_mux_accept(*(cn_mux_t **)ctx, id, NULL);
}

/* OPEN flood: a peer that opens stream after stream and never reads the
 * answers. Whether the mux or the application answers (reject here, as the
 * hub does, or accept), the replies are bounded: the glue is told to stop
 * reading early (reply_bytes > reply_high) and, if it went on, the link
 * fails with CN_EFLOW long before memory grows without limit. */
static void open_flood(void (*on_open)(void *, uint32_t, uint8_t, const uint8_t *, size_t,
                                       const uint8_t *, size_t),
                       int want_app_rc)
{
    app_rc = 0;
    cn_mux_config_t c = {.queue_max = 64 * 1024, .max_streams = 1024};
    cn_mux_callbacks_t cb = {.on_open = on_open};
    cn_mux_t *m = NULL;
    m = cn_mux_new(&c, &cb, &m);
    assert_non_null(m);
    cn_frame_t f = {.type = CN_FRAME_OPEN};
    f.u.open.kind = CN_KIND_TCP;
    f.u.open.window = 65536;
    int rc = 0;
    uint32_t id, blocked_at = 0;
    for (id = 1; id < 4000001 && rc == 0; id += 2) {
        f.stream = id;
        rc = inject(m, &f);
        if (!blocked_at && cn_mux_reply_bytes(m) > cn_mux_reply_high(m))
            blocked_at = id;
    }
    assert_int_equal(rc, CN_EFLOW);
    assert_int_equal(cn_mux_error(m), CN_EFLOW);
    assert_true(blocked_at > 0 && blocked_at < id);
    /* Rejects tip the bound themselves (the stream count stays 0); accepted
     * streams reach max_streams first and the mux's own refusals tip it. */
    assert_int_equal(app_rc, want_app_rc);
    /* Bounded by queue_max + max_streams * 512 + 64 KiB, never by the flood. */
    size_t bound = c.queue_max + (size_t)c.max_streams * 512 + 64 * 1024;
    assert_true(cn_mux_pending_bytes(m) <= bound + 256);
    /* Sticky: later frames and replies fail too. */
    f.stream = id + 2;
    assert_int_equal(inject(m, &f), CN_EFLOW);
    cn_mux_free(m);
}

static void test_open_flood_rejected_by_app_fails_link(void **state)
{
    open_flood(reject_open, CN_EFLOW);
}

static void test_open_flood_accepted_by_app_fails_link(void **state)
{
    open_flood(accept_open, 0);
}

/* The hard bound is counted per reply byte, not per frame: with a small
 * stream cap it trips after few replies, and the reply counter sees them. */
static void test_reply_bytes_counts_replies_only(void **state)
{
    cn_mux_config_t c = {.queue_max = 4096, .max_streams = 4};
    cn_mux_callbacks_t cb = {.on_open = reject_open};
    cn_mux_t *m = NULL;
    m = cn_mux_new(&c, &cb, &m);
    assert_int_equal(cn_mux_reply_bytes(m), 0);
    assert_int_equal(cn_mux_reply_high(m), 1024);
    json_t *obj = json_pack("{s:s}", "type", "hello");
    assert_int_equal(cn_mux_send_control(m, obj), 0);
    json_decref(obj);
    assert_int_equal(cn_mux_reply_bytes(m), 0); /* our own CONTROL is no reply */
    cn_frame_t ping = {.type = CN_FRAME_PING};
    assert_int_equal(inject(m, &ping), 0);
    assert_int_equal(cn_mux_reply_bytes(m), CN_FRAME_HEADER + 8);
    seen_t seen[4];
    assert_int_equal(collect(m, seen, 4), 2);
    assert_int_equal(cn_mux_reply_bytes(m), 0);
    assert_int_equal(cn_mux_error(m), 0);
    cn_mux_free(m);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thousand_streams_both_directions),
        cmocka_unit_test(test_round_robin_is_fair),
        cmocka_unit_test(test_stalled_reader_does_not_block_others),
        cmocka_unit_test(test_half_close),
        cmocka_unit_test(test_fin_before_accept),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_reset_before_ack),
        cmocka_unit_test(test_reject),
        cmocka_unit_test(test_flow_violation_resets_stream),
        cmocka_unit_test(test_window_overflow_resets_stream),
        cmocka_unit_test(test_unknown_stream_ids),
        cmocka_unit_test(test_open_violations),
        cmocka_unit_test(test_state_violations),
        cmocka_unit_test(test_id_exhaustion),
        cmocka_unit_test(test_max_streams_both_sides),
        cmocka_unit_test(test_chaos_callbacks),
        cmocka_unit_test(test_ping_pong),
        cmocka_unit_test(test_control_round_trip),
        cmocka_unit_test(test_control_queue_bound),
        cmocka_unit_test(test_datagrams),
        cmocka_unit_test(test_split_datagram_is_not_interleaved),
        cmocka_unit_test(test_datagrams_do_not_starve_streams),
        cmocka_unit_test(test_goaway),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_write_backpressure),
        cmocka_unit_test(test_window_updates_batch),
        cmocka_unit_test(test_vectored_spans),
        cmocka_unit_test(test_window_valid),
        cmocka_unit_test(test_stream_credit),
        cmocka_unit_test(test_config_and_args),
        cmocka_unit_test(test_reply_flood_fails_link),
        cmocka_unit_test(test_open_flood_rejected_by_app_fails_link),
        cmocka_unit_test(test_open_flood_accepted_by_app_fails_link),
        cmocka_unit_test(test_reply_bytes_counts_replies_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
