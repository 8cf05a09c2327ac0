/* fuzz_mux: the input is the byte stream a hostile peer sends. It is decoded
 * with cn_frame_decoder (in input-chosen splits) and every frame goes to a
 * mux whose application accepts, defers, rejects, reads, writes, shuts down
 * and resets pseudo-randomly from inside its callbacks, while cn_mux_output()
 * drains it with varying buffer sizes. Every user pointer is a heap object
 * freed in on_closed, so a missing, doubled or late on_closed shows up as a
 * leak, double free or use after free. Everything the mux sends must decode.
 *
 * The application's calls may fail in any way (that is the point): the
 * harness checks the mux's invariants, not their results, so it discards
 * them with (void), which clang, the harnesses' compiler, accepts.
 *
 * Seeds: tests/fuzz/corpus/mux (written by tests/tools/mux_seeds.c). */
#include "cn_err.h"
#include "cn_frame.h"
#include "cn_mux.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define OUT_CAP (CN_FRAME_HEADER + CN_FRAME_MAX_PAYLOAD)
#define MAX_DEFERRED 8

typedef struct app_stream {
    uint32_t id;
    uint32_t magic;
} app_stream_t;

#define MAGIC 0x5eed5eedu

typedef struct fuzz {
    cn_mux_t *mux;
    cn_frame_decoder_t *check; /* decodes what the mux sends */
    uint64_t rng;
    uint32_t deferred[MAX_DEFERRED];
    size_t ndeferred;
    int depth;
} fuzz_t;

static uint8_t out_buf[OUT_CAP];
static uint8_t scratch[70000];

static uint32_t rnd(fuzz_t *z, uint32_t n)
{
    uint64_t x = z->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    z->rng = x;
    return n ? (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 33) % n : 0;
}

static app_stream_t *user_new(uint32_t id)
{
    app_stream_t *u = malloc(sizeof(*u));
    if (!u)
        abort();
    u->id = id;
    u->magic = MAGIC;
    return u;
}

static void user_check(const app_stream_t *u, uint32_t id)
{
    if (u && (u->magic != MAGIC || u->id != id))
        abort();
}

/* Everything the mux emits must be valid frames. */
static void drain_output(fuzz_t *z, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        size_t cap = CN_MUX_MIN_OUTPUT + rnd(z, OUT_CAP - CN_MUX_MIN_OUTPUT + 1);
        int n = cn_mux_output(z->mux, out_buf, cap);
        if (n < 0 || (size_t)n > cap)
            abort();
        if (n == 0)
            return;
        const uint8_t *p = out_buf;
        size_t left = (size_t)n;
        while (left) {
            cn_frame_t f;
            size_t used;
            int rc = cn_frame_decode(z->check, p, left, &used, &f);
            if (rc < 0)
                abort();
            p += used;
            left -= used;
        }
    }
}

static void act_write(fuzz_t *z, uint32_t id)
{
    switch (rnd(z, 4)) {
    case 0: {
        uint8_t *ptr;
        size_t space;
        if (cn_mux_write_space(z->mux, id, &ptr, &space) == 0) {
            size_t n = rnd(z, (uint32_t)space + 1);
            memset(ptr, 'w', n);
            if (cn_mux_write_commit(z->mux, id, n) != 0)
                abort();
        }
        break;
    }
    case 1:
        (void)cn_mux_shutdown(z->mux, id);
        break;
    default:
        (void)cn_mux_write(z->mux, id, scratch, rnd(z, 20000));
        break;
    }
}

static void act_read(fuzz_t *z, uint32_t id)
{
    const uint8_t *ptr;
    size_t len;
    for (int i = 0; i < 4; i++) {
        if (rnd(z, 2)) {
            int n = cn_mux_peek(z->mux, id, &ptr, &len);
            if (n <= 0)
                return;
            if (cn_mux_consume(z->mux, id, rnd(z, (uint32_t)len) + 1) != 0)
                abort();
        } else if (cn_mux_read(z->mux, id, scratch, 1 + rnd(z, 9000)) <= 0) {
            return;
        }
    }
}

/* Something random to any stream, from inside a callback or between frames. */
static void act(fuzz_t *z, uint32_t id)
{
    switch (rnd(z, 10)) {
    case 0:
        cn_mux_reset(z->mux, id, CN_RST_CANCEL, "fuzz");
        break;
    case 1:
        act_write(z, id);
        break;
    case 2:
        act_read(z, id);
        break;
    case 3: {
        uint32_t nid;
        app_stream_t *u = user_new(0);
        if (cn_mux_open(z->mux, CN_KIND_TCP, (const uint8_t *)"r", 1, NULL, 0, u, &nid) == 0)
            u->id = nid;
        else
            free(u);
        break;
    }
    case 4:
        (void)cn_mux_send_datagram(z->mux, id, scratch, rnd(z, 2000));
        break;
    case 5:
        if (z->ndeferred) {
            uint32_t d = z->deferred[--z->ndeferred];
            app_stream_t *u = user_new(d);
            if (rnd(z, 3) == 0 || cn_mux_accept(z->mux, d, u) != 0) {
                free(u);
                cn_mux_reject(z->mux, d, CN_RST_REFUSED, "no");
            }
        }
        break;
    default:
        break;
    }
}

static void on_open(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t ref_len,
                    const uint8_t *meta, size_t meta_len)
{
    fuzz_t *z = ctx;
    switch (rnd(z, 4)) {
    case 0:
        cn_mux_reject(z->mux, id, CN_RST_REFUSED, "fuzz says no");
        break;
    case 1:
        if (z->ndeferred < MAX_DEFERRED) {
            z->deferred[z->ndeferred++] = id;
            break;
        }
        /* fall through */
    default: {
        app_stream_t *u = user_new(id);
        if (cn_mux_accept(z->mux, id, u) != 0)
            abort(); /* it was announced just now */
        act(z, id);
        break;
    }
    }
}

static void on_accepted(void *ctx, uint32_t id, void *user)
{
    user_check(user, id);
    act_write(ctx, id);
}

static void on_readable(void *ctx, uint32_t id, void *user)
{
    fuzz_t *z = ctx;
    user_check(user, id);
    act_read(z, id);
    act(z, id);
}

static void on_writable(void *ctx, uint32_t id, void *user)
{
    user_check(user, id);
    act_write(ctx, id);
}

static void on_reset(void *ctx, uint32_t id, void *user, uint32_t code, const char *msg, size_t len)
{
    fuzz_t *z = ctx;
    user_check(user, id);
    if (len > CN_FRAME_MAX_REASON)
        abort();
    act(z, id + 2 * rnd(z, 3)); /* likely a neighbour */
}

static void on_closed(void *ctx, uint32_t id, void *user)
{
    fuzz_t *z = ctx;
    user_check(user, id);
    free(user);
    for (size_t i = 0; i < z->ndeferred; i++)
        if (z->deferred[i] == id)
            z->deferred[i] = z->deferred[--z->ndeferred];
    if (rnd(z, 4) == 0)
        act(z, id + 2); /* act on another stream from inside on_closed */
}

static void on_control(void *ctx, const uint8_t *payload, size_t len)
{
    fuzz_t *z = ctx;
    json_error_t err;
    json_t *obj = json_loadb((const char *)payload, len, 0, &err);
    if (obj && json_is_object(obj) && rnd(z, 2))
        (void)cn_mux_send_control(z->mux, obj);
    json_decref(obj);
}

static void on_datagram(void *ctx, uint32_t id, void *user, const uint8_t *data, size_t len)
{
    fuzz_t *z = ctx;
    user_check(user, id);
    if (rnd(z, 2))
        (void)cn_mux_send_datagram(z->mux, id, data, len);
}

static void on_pong(void *ctx, uint64_t v)
{
    fuzz_t *z = ctx;
    if (rnd(z, 4) == 0)
        (void)cn_mux_ping(z->mux, v + 1);
}

static void on_goaway(void *ctx, uint32_t code, const char *msg, size_t len)
{
    fuzz_t *z = ctx;
    if (rnd(z, 2))
        cn_mux_goaway(z->mux, CN_RST_GONE, "bye");
}

static const cn_mux_callbacks_t callbacks = {
    .on_open = on_open,
    .on_accepted = on_accepted,
    .on_readable = on_readable,
    .on_writable = on_writable,
    .on_reset = on_reset,
    .on_closed = on_closed,
    .on_control = on_control,
    .on_datagram = on_datagram,
    .on_pong = on_pong,
    .on_goaway = on_goaway,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_t z = {0};
    /* Decisions follow the input, so every run is reproducible. */
    z.rng = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < size && i < 64; i++)
        z.rng = (z.rng ^ data[i]) * 0x100000001b3ull;
    z.rng |= 1;

    /* Small limits so windows, queues and ids run out within one input. */
    cn_mux_config_t cfg = {.initiator = 1,
                           .window = 4096,
                           .window_update = 1024,
                           .send_buffer = 8192,
                           .max_streams = 32,
                           .max_stream_id = 201,
                           .quantum = 2048,
                           .queue_max = 32768};
    z.mux = cn_mux_new(&cfg, &callbacks, &z);
    z.check = cn_frame_decoder_new();
    cn_frame_decoder_t *dec = cn_frame_decoder_new();
    if (!z.mux || !z.check || !dec)
        abort();

    /* Our streams 1, 3, 5 so the input's OPEN_ACKs have something to hit. */
    for (int i = 0; i < 3; i++) {
        uint32_t id;
        app_stream_t *u = user_new(0);
        if (cn_mux_open(z.mux, CN_KIND_TCP, NULL, 0, NULL, 0, u, &id) != 0)
            abort();
        u->id = id;
    }
    drain_output(&z, 1);

    size_t off = 0;
    int failed = 0;
    while (off < size && !failed) {
        size_t k = 1 + rnd(&z, 256);
        if (k > size - off)
            k = size - off;
        const uint8_t *p = data + off;
        size_t left = k;
        off += k;
        while (left) {
            cn_frame_t f;
            size_t used;
            int rc = cn_frame_decode(dec, p, left, &used, &f);
            if (rc < 0) {
                failed = 1; /* the glue would drop the link */
                break;
            }
            p += used;
            left -= used;
            if (rc == 0)
                break;
            rc = cn_mux_input(z.mux, &f);
            if (rc < 0) {
                if (cn_mux_input(z.mux, &f) != rc)
                    abort(); /* link errors are sticky */
                failed = 1;
                break;
            }
            if (cn_mux_stream_count(z.mux) > cfg.max_streams)
                abort();
            if (rnd(&z, 4) == 0)
                act(&z, 1 + rnd(&z, 40));
            if (rnd(&z, 3) == 0)
                drain_output(&z, 1 + (int)rnd(&z, 3));
        }
    }
    drain_output(&z, 64);
    cn_mux_abort(z.mux, CN_RST_GONE); /* fires on_closed for the rest: no leaks */
    if (cn_mux_stream_count(z.mux) != 0)
        abort();
    cn_mux_free(z.mux);
    cn_frame_decoder_free(dec);
    cn_frame_decoder_free(z.check);
    return 0;
}
