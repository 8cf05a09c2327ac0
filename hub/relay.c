/* Stream <-> stream relay for reach (see relay.h): credit-driven copying
 * between two muxes, FIN and RST passed through. */
#include "relay.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cn_err.h"
#include "cn_frame.h"
#include "cn_pipe.h"

enum { FROM = 0, TO = 1 };

/* One stream's user pointer: dispatches through `ops` (cn_pipe.h). */
struct end {
    const cn_stream_ops_t *ops;
    hub_relay_t *r;
    int side;
};

struct hub_relay {
    struct end end[2];
    hub_relay_side_t link[2];
    uint32_t id[2];
    bool open[2];    /* the stream is accepted both ways (bytes may flow) */
    bool closed[2];  /* its closed event came (or it was refused and never announced to us) */
    bool fin_fwd[2]; /* EOF read on this side and passed on as FIN */
    bool aborted;
    uint32_t code;     /* the RST code that ended the relay, 0 if none */
    uint64_t moved[2]; /* bytes read from this side and written to the other */
    hub_relay_done_fn done;
    void (*tap)(void *ctx, int dir, const uint8_t *bytes, size_t len);
    void *ctx;
};

static void flush(hub_relay_t *r, int side)
{
    if (r->link[side].flush)
        r->link[side].flush(r->link[side].link);
}

static void maybe_free(hub_relay_t *r)
{
    if (!r->closed[FROM] || !r->closed[TO])
        return;
    if (r->done)
        r->done(r->ctx, r, r->code);
    free(r);
}

/* Copies what side `s` received into side `o` while `o` has credit.
 * Credit goes back to `s` only for what `o` took, so nothing piles up
 * here. When the muxes are one (an agent reaching its own tunnel over one
 * link), the bytes go through a small buffer: a peeked pointer is only
 * good until the next call on its mux. */
static void pump(hub_relay_t *r, int s)
{
    int o = !s;
    cn_mux_t *ms = r->link[s].mux, *mo = r->link[o].mux;
    if (!r->open[FROM] || !r->open[TO] || r->fin_fwd[s] || r->closed[s] || r->closed[o])
        return;
    bool moved = false;
    for (;;) {
        const uint8_t *ptr;
        size_t len;
        int rc = cn_mux_peek(ms, r->id[s], &ptr, &len);
        if (rc == 0) {
            r->fin_fwd[s] = true;
            if (cn_mux_shutdown(mo, r->id[o]) < 0) {
                hub_relay_abort(r, CN_RST_INTERNAL); /* the FIN cannot pass: end both */
                return;
            }
            moved = true;
            break;
        }
        if (rc < 0)
            break;
        uint8_t bounce[16384];
        const uint8_t *src = ptr;
        if (ms == mo) {
            if (len > sizeof(bounce))
                len = sizeof(bounce);
            memcpy(bounce, ptr, len);
            src = bounce;
        }
        int n = cn_mux_write(mo, r->id[o], src, len);
        if (n <= 0)
            break; /* no credit on `o`: its writable event resumes */
        if (r->tap)
            r->tap(r->ctx, s, src, (size_t)n);
        if (cn_mux_consume(ms, r->id[s], (size_t)n) < 0) {
            hub_relay_abort(r, CN_RST_INTERNAL); /* credit cannot go back: end both */
            return;
        }
        r->moved[s] += (uint64_t)n;
        moved = true;
    }
    if (moved) {
        flush(r, o);
        flush(r, s);
    }
}

/* ---- stream events ------------------------------------------------------- */

static void op_accepted(void *self)
{
    struct end *e = self;
    hub_relay_t *r = e->r;
    if (e->side != TO)
        return;
    /* The exposing agent took the stream: now answer the reaching one. */
    if (cn_mux_accept(r->link[FROM].mux, r->id[FROM], &r->end[FROM]) < 0) {
        /* It gave up meanwhile (its open timed out, or its link died). */
        r->closed[FROM] = true;
        r->code = CN_RST_CANCEL;
        cn_mux_reset(r->link[TO].mux, r->id[TO], CN_RST_CANCEL, "reaching side gone");
        flush(r, TO);
        return;
    }
    r->open[FROM] = r->open[TO] = true;
    flush(r, FROM);
    pump(r, FROM);
    pump(r, TO);
}

static void op_readable(void *self)
{
    struct end *e = self;
    pump(e->r, e->side);
}

static void op_writable(void *self)
{
    struct end *e = self;
    pump(e->r, !e->side);
}

static void op_reset(void *self, uint32_t code, const char *msg, size_t len)
{
    struct end *e = self;
    hub_relay_t *r = e->r;
    int o = !e->side;
    char why[CN_FRAME_MAX_REASON + 1];
    if (len > CN_FRAME_MAX_REASON)
        len = CN_FRAME_MAX_REASON;
    memcpy(why, msg ? msg : "", msg ? len : 0);
    why[msg ? len : 0] = '\0';
    if (!r->code)
        r->code = code ? code : CN_RST_CANCEL;
    if (r->closed[o])
        return;
    if (e->side == TO && !r->open[FROM]) {
        /* Refused (or reset) before the reaching side was answered: its
         * stream is refused with the same code, and the mux will not tell
         * us about it again (it was never ours). */
        cn_mux_reject(r->link[FROM].mux, r->id[FROM], code, why);
        r->closed[FROM] = true;
    } else {
        cn_mux_reset(r->link[o].mux, r->id[o], code, why);
    }
    flush(r, o);
}

static void op_closed(void *self)
{
    struct end *e = self;
    hub_relay_t *r = e->r;
    r->closed[e->side] = true;
    maybe_free(r);
}

static const cn_stream_ops_t relay_ops = {
    .accepted = op_accepted,
    .readable = op_readable,
    .writable = op_writable,
    .reset = op_reset,
    .closed = op_closed,
};

/* ---- public -------------------------------------------------------------- */

hub_relay_t *hub_relay_start(const hub_relay_config_t *cfg, int *err)
{
    hub_relay_t *r = calloc(1, sizeof(*r));
    if (!r) {
        if (err)
            *err = CN_ENOMEM;
        return NULL;
    }
    for (int i = 0; i < 2; i++)
        r->end[i] = (struct end){.ops = &relay_ops, .r = r, .side = i};
    r->link[FROM] = cfg->from;
    r->link[TO] = cfg->to;
    r->id[FROM] = cfg->from_id;
    r->done = cfg->done;
    r->tap = cfg->tap;
    r->ctx = cfg->ctx;
    int rc = cn_mux_open(cfg->to.mux, cfg->kind, cfg->ref, cfg->ref_len, cfg->meta, cfg->meta_len,
                         &r->end[TO], &r->id[TO]);
    if (rc < 0) {
        free(r);
        if (err)
            *err = rc;
        return NULL;
    }
    flush(r, TO);
    return r;
}

void hub_relay_abort(hub_relay_t *r, uint32_t code)
{
    if (!r || r->aborted)
        return;
    r->aborted = true;
    if (!r->code)
        r->code = code;
    if (!r->open[FROM] && !r->closed[FROM]) {
        cn_mux_reject(r->link[FROM].mux, r->id[FROM], code, "aborted");
        r->closed[FROM] = true;
        flush(r, FROM);
    } else if (!r->closed[FROM]) {
        cn_mux_reset(r->link[FROM].mux, r->id[FROM], code, "aborted");
        flush(r, FROM);
    }
    if (!r->closed[TO]) {
        cn_mux_reset(r->link[TO].mux, r->id[TO], code, "aborted");
        flush(r, TO);
    }
    /* The closed events free r (from the next pump calls). */
}

void hub_relay_mux_gone(hub_relay_t *r, const cn_mux_t *mux)
{
    if (!r || r->open[FROM] || r->closed[FROM] || r->link[FROM].mux != mux)
        return;
    /* Pending: the mux dropped it without telling anyone. */
    r->closed[FROM] = true;
    if (!r->code)
        r->code = CN_RST_GONE;
    if (!r->closed[TO]) {
        cn_mux_reset(r->link[TO].mux, r->id[TO], CN_RST_GONE, "reaching agent gone");
        flush(r, TO);
        return; /* TO's closed event frees r */
    }
    maybe_free(r);
}

uint64_t hub_relay_bytes_up(const hub_relay_t *r)
{
    return r->moved[FROM];
}

uint64_t hub_relay_bytes_down(const hub_relay_t *r)
{
    return r->moved[TO];
}
