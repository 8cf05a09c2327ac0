/* Stream multiplexer state machine. Frames in (cn_mux_input), frames out
 * (cn_mux_output), events through callbacks delivered only from those pump
 * calls. Streams live in a keyed hash table (the peer picks ids, so a fixed
 * hash would let it force collisions); stream bytes live in chunk lists so
 * an idle stream holds no buffer and a busy one never reallocs or copies
 * what it already holds. See docs/protocol-mux.md for the rules. */
#include "cn_mux.h"
#include "cn_buf.h"
#include "cn_err.h"
#include "cn_frame.h"

#include <assert.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_SIZE 16384u
#define CHUNK_CACHE 64u           /* free chunks kept for reuse (1 MiB) */
#define MIN_DATA 512u             /* no DATA frame smaller than this to top up a record */
#define QUEUE_SHRINK (64u * 1024) /* an emptied frame queue above this frees its memory */
#define REPLY_SLACK_PER_STREAM 512u
#define REPLY_SLACK (64u * 1024) /* + queue_max: bound on queued frames incl. replies */

enum stream_state {
    ST_OPENING = 1, /* our OPEN queued or sent, no OPEN_ACK yet */
    ST_PENDING,     /* the peer's OPEN announced, the app has not accepted */
    ST_OPEN,        /* both sides agreed; data may flow */
};

enum { EV_READABLE = 1, EV_WRITABLE = 2 };

struct chunk {
    struct chunk *next;
    uint32_t off; /* first unread byte */
    uint32_t end; /* one past the last written byte */
    uint8_t data[CHUNK_SIZE];
};

/* FIFO of bytes in chunks; len is the total unread. */
struct chunkq {
    struct chunk *head, *tail;
    size_t len;
};

struct stream {
    uint32_t id;
    uint8_t state;
    uint8_t ev;              /* EV_* waiting for the pump */
    unsigned in_ev : 1;      /* linked on mux->ev_head */
    unsigned in_ring : 1;    /* linked in the DATA round-robin ring */
    unsigned closing : 1;    /* dead: out of the table, waiting for on_closed */
    unsigned fin_wanted : 1; /* app called shutdown */
    unsigned fin_queued : 1; /* our FIN is written or queued */
    unsigned remote_fin : 1; /* the peer's FIN arrived */
    unsigned eof_read : 1;   /* the app saw EOF (read/peek returned 0) */
    unsigned want_write : 1; /* a write was refused or short: on_writable owed */
    void *user;
    uint32_t rx_window;  /* the window we announced */
    uint32_t rx_credit;  /* bytes the peer may still send */
    uint32_t rx_unacked; /* consumed, not yet returned by WINDOW */
    uint32_t tx_credit;  /* bytes we may still send; tx.len <= tx_credit always */
    uint32_t deficit;    /* round-robin bytes left in this turn */
    struct chunkq rx, tx;
    struct stream *all_prev, *all_next; /* live list; all_next links zombies too */
    struct stream *rr_prev, *rr_next;
    struct stream *ev_next;
};

/* Encoded frames waiting for output, in order. `split_left` is the rest of a
 * head frame that was too big for one output buffer. */
struct frameq {
    cn_buf_t b;
    size_t split_left;
};

struct cn_mux {
    cn_mux_callbacks_t cb;
    void *ctx;
    int initiator;
    uint32_t window, window_update, send_buffer, max_streams, max_stream_id, quantum;
    size_t queue_max;

    uint64_t next_id;      /* our next stream id */
    uint32_t last_peer_id; /* highest id the peer opened */
    uint64_t hash_key;

    struct stream **slots; /* open addressing, linear probing; power of two */
    size_t nslots, nstreams;
    struct stream *all_head;
    struct stream *zombie_head, *zombie_tail; /* closed, on_closed not yet delivered */
    struct stream *ring;                      /* DATA round-robin: head = next to send */
    struct stream *ev_head, *ev_tail;

    struct frameq ctlq; /* everything but DATA and DATAGRAM, in order */
    size_t ctl_app;     /* bytes of OPEN/CONTROL/PING in ctlq (bounded by queue_max) */
    struct frameq dgq;  /* DATAGRAM frames */
    size_t rx_total, tx_total;

    struct chunk *chunk_cache;
    size_t chunk_cached;

    struct stream *resv; /* stream with outstanding cn_mux_write_space() */
    size_t resv_len;
    /* cn_mux_write_spacev(): chunks lent beyond the stream's tail, linked in
     * by the commit as far as it fills them; the rest go back to the cache
     * at the next space call, or at free when the reservation was dropped. */
    struct chunk *resv_extra[CN_MUX_MAX_IOV];
    int resv_nextra;

    int depth; /* > 0 while inside a pump call or callback: defer the pump */
    int fatal; /* sticky link error */
    int dead;  /* cn_mux_abort() was called */
    int goaway_sent, goaway_rcvd;
};

static size_t min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static size_t reason_len(const char *msg)
{
    return msg ? strnlen(msg, CN_FRAME_MAX_REASON) : 0;
}

/* ---- chunks ---- */

static struct chunk *chunk_get(cn_mux_t *m)
{
    struct chunk *c = m->chunk_cache;
    if (c) {
        m->chunk_cache = c->next;
        m->chunk_cached--;
    } else {
        c = malloc(sizeof(*c));
        if (!c)
            return NULL;
    }
    c->next = NULL;
    c->off = c->end = 0;
    return c;
}

static void chunk_put(cn_mux_t *m, struct chunk *c)
{
    if (m->chunk_cached >= CHUNK_CACHE) {
        free(c);
        return;
    }
    c->next = m->chunk_cache;
    m->chunk_cache = c;
    m->chunk_cached++;
}

/* Free space at the tail, adding a chunk when the tail is full. */
static uint8_t *cq_space(cn_mux_t *m, struct chunkq *q, size_t *avail)
{
    struct chunk *t = q->tail;
    if (!t || t->end == CHUNK_SIZE) {
        t = chunk_get(m);
        if (!t)
            return NULL;
        if (q->tail)
            q->tail->next = t;
        else
            q->head = t;
        q->tail = t;
    }
    *avail = CHUNK_SIZE - t->end;
    return t->data + t->end;
}

static void cq_commit(struct chunkq *q, size_t n)
{
    q->tail->end += (uint32_t)n;
    q->len += n;
}

/* Appends up to n bytes; returns how many (fewer only when out of memory). */
static size_t cq_append(cn_mux_t *m, struct chunkq *q, const uint8_t *src, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t avail;
        uint8_t *p = cq_space(m, q, &avail);
        if (!p)
            break;
        size_t k = min_sz(avail, n - done);
        memcpy(p, src + done, k);
        cq_commit(q, k);
        done += k;
    }
    return done;
}

/* Drops n bytes from the front (copying them to dst when not NULL); fully
 * read chunks go back to the cache so an idle queue holds no memory.
 * n <= q->len: every caller bounds it by what the queue holds. */
static void cq_take(cn_mux_t *m, struct chunkq *q, uint8_t *dst, size_t n)
{
    assert(n <= q->len);
    while (n) {
        struct chunk *c = q->head;
        assert(c); /* q->len counts bytes in chunks, so n > 0 means one is left */
        size_t k = min_sz(c->end - c->off, n);
        if (dst) {
            memcpy(dst, c->data + c->off, k);
            dst += k;
        }
        c->off += (uint32_t)k;
        q->len -= k;
        n -= k;
        if (c->off == c->end) {
            q->head = c->next;
            if (!q->head)
                q->tail = NULL;
            chunk_put(m, c);
        }
    }
}

static void cq_clear(cn_mux_t *m, struct chunkq *q)
{
    while (q->head) {
        struct chunk *c = q->head;
        q->head = c->next;
        chunk_put(m, c);
    }
    q->tail = NULL;
    q->len = 0;
}

/* ---- stream table (keyed hash, linear probing, backward-shift delete) ---- */

static size_t slot_of(const cn_mux_t *m, uint32_t id)
{
    /* splitmix64 finaliser over a random key: the peer cannot aim ids at one slot. */
    uint64_t x = id ^ m->hash_key;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x & (m->nslots - 1);
}

static struct stream *table_find(const cn_mux_t *m, uint32_t id)
{
    for (size_t i = slot_of(m, id);; i = (i + 1) & (m->nslots - 1)) {
        struct stream *s = m->slots[i];
        if (!s || s->id == id)
            return s;
    }
}

static int table_grow(cn_mux_t *m)
{
    size_t n = m->nslots * 2;
    struct stream **old = m->slots;
    size_t oldn = m->nslots;
    struct stream **slots = calloc(n, sizeof(struct stream *));
    if (!slots)
        return CN_ENOMEM;
    m->slots = slots;
    m->nslots = n;
    for (size_t i = 0; i < oldn; i++) {
        if (!old[i])
            continue;
        size_t j = slot_of(m, old[i]->id);
        while (slots[j])
            j = (j + 1) & (n - 1);
        slots[j] = old[i];
    }
    free(old);
    return 0;
}

static int table_insert(cn_mux_t *m, struct stream *s)
{
    if ((m->nstreams + 1) * 2 > m->nslots) {
        int rc = table_grow(m);
        if (rc)
            return rc;
    }
    size_t i = slot_of(m, s->id);
    while (m->slots[i])
        i = (i + 1) & (m->nslots - 1);
    m->slots[i] = s;
    m->nstreams++;
    return 0;
}

static void table_remove(cn_mux_t *m, uint32_t id)
{
    size_t mask = m->nslots - 1;
    size_t i = slot_of(m, id);
    while (m->slots[i]->id != id)
        i = (i + 1) & mask;
    /* Shift later members of the probe run back so lookups never stop early. */
    size_t j = i;
    for (;;) {
        m->slots[i] = NULL;
        for (;;) {
            j = (j + 1) & mask;
            if (!m->slots[j]) {
                m->nstreams--;
                return;
            }
            size_t k = slot_of(m, m->slots[j]->id);
            /* Entry j may move to i when its home k is not in (i, j]. */
            if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                continue;
            break;
        }
        m->slots[i] = m->slots[j];
        i = j;
    }
}

/* ---- lists ---- */

static void ring_add(cn_mux_t *m, struct stream *s)
{
    if (s->in_ring)
        return;
    s->in_ring = 1;
    s->deficit = 0;
    if (!m->ring) {
        s->rr_prev = s->rr_next = s;
        m->ring = s;
        return;
    }
    /* Insert before the head: the new stream waits a full round. */
    struct stream *h = m->ring;
    s->rr_next = h;
    s->rr_prev = h->rr_prev;
    h->rr_prev->rr_next = s;
    h->rr_prev = s;
}

static void ring_remove(cn_mux_t *m, struct stream *s)
{
    if (!s->in_ring)
        return;
    s->in_ring = 0;
    s->deficit = 0;
    if (s->rr_next == s) {
        m->ring = NULL;
    } else {
        s->rr_prev->rr_next = s->rr_next;
        s->rr_next->rr_prev = s->rr_prev;
        if (m->ring == s)
            m->ring = s->rr_next;
    }
    s->rr_prev = s->rr_next = NULL;
}

static void mark_event(cn_mux_t *m, struct stream *s, uint8_t ev)
{
    if (s->closing)
        return;
    s->ev |= ev;
    if (s->in_ev)
        return;
    s->in_ev = 1;
    s->ev_next = NULL;
    if (m->ev_tail)
        m->ev_tail->ev_next = s;
    else
        m->ev_head = s;
    m->ev_tail = s;
}

static void all_unlink(cn_mux_t *m, struct stream *s)
{
    if (s->all_prev)
        s->all_prev->all_next = s->all_next;
    else
        m->all_head = s->all_next;
    if (s->all_next)
        s->all_next->all_prev = s->all_prev;
    s->all_prev = s->all_next = NULL;
}

/* ---- frame queues ---- */

static void frameq_init(struct frameq *q)
{
    /* Bounds are enforced by the callers, who know which frames count. */
    cn_buf_init(&q->b, SIZE_MAX / 4, 0);
    q->split_left = 0;
}

static int frameq_push(struct frameq *q, const cn_frame_t *f)
{
    int err = 0;
    size_t n = cn_frame_size(f);
    if (n == 0)
        return CN_EINVAL;
    uint8_t *p = cn_buf_reserve(&q->b, n, &err);
    if (!p)
        return err;
    err = cn_frame_encode(f, p, n);
    if (err < 0)
        return err; /* reserved, not committed: the queue is unchanged */
    cn_buf_commit(&q->b, n);
    return 0;
}

/* Size of the complete frame at the head (its header is always whole). */
static size_t frameq_head_size(const struct frameq *q)
{
    const uint8_t *p = cn_buf_data(&q->b);
    return CN_FRAME_HEADER + get32(p + 8);
}

static void frameq_drop(struct frameq *q, size_t n)
{
    cn_buf_consume(&q->b, n);
    if (q->b.len == 0 && q->b.cap > QUEUE_SHRINK)
        cn_buf_free(&q->b);
}

/* Copies whole frames into out[0..room) while they fit and the budget
 * allows; a frame larger than `cap` (the whole output buffer) can never fit,
 * so it is split. Returns bytes written; *blocked says frames remain. */
/* Frames the application queues, bounded by queue_max in the control queue. */
static int counts_as_app(uint8_t type)
{
    return type == CN_FRAME_OPEN || type == CN_FRAME_CONTROL || type == CN_FRAME_PING;
}

/* Copies whole frames into out[0..room) while they fit and the budget
 * allows; a frame larger than `cap` (the whole output buffer) can never fit,
 * so it is split. Returns bytes written. */
static size_t frameq_drain(cn_mux_t *m, struct frameq *q, uint8_t *out, size_t room, size_t cap,
                           size_t budget)
{
    size_t pos = 0;
    while (q->b.len && pos < room && pos < budget) {
        const uint8_t *p = cn_buf_data(&q->b);
        size_t n;
        if (q->split_left) {
            n = min_sz(q->split_left, room - pos);
            q->split_left -= n;
        } else {
            size_t fsz = frameq_head_size(q);
            if (fsz <= room - pos)
                n = fsz;
            else if (fsz > cap)
                n = room - pos;
            else
                break; /* leads the next buffer */
            q->split_left = fsz - n;
            if (q == &m->ctlq && counts_as_app(p[1]))
                m->ctl_app -= fsz;
        }
        memcpy(out + pos, p, n);
        pos += n;
        frameq_drop(q, n);
    }
    return pos;
}

static int link_fail(cn_mux_t *m, int err, const char *why);

/* Hard bound on the control queue for replies the peer provokes. */
static size_t reply_bound(const cn_mux_t *m)
{
    return m->queue_max + (size_t)m->max_streams * REPLY_SLACK_PER_STREAM + REPLY_SLACK;
}

/* Queues a protocol frame. Every frame the peer can make us send without
 * limit is a reply (PONG; OPEN_ACK and RST answering its OPENs, whether the
 * mux or the application answers; WINDOW returning credit for its DATA; RST
 * punishing its overruns) and is bounded: a peer that keeps provoking
 * replies it does not read fails the link, sticky, with CN_EFLOW, so the
 * glue drops it even when the reply came from an application call outside
 * cn_mux_input(). The glue stops reading well before that
 * (cn_mux_input_blocked()). */
static int ctl_push(cn_mux_t *m, const cn_frame_t *f, int peer_triggered)
{
    if (peer_triggered && m->ctlq.b.len + cn_frame_size(f) > reply_bound(m)) {
        if (!m->fatal) {
            link_fail(m, CN_EFLOW, "too many unread replies");
            m->fatal = CN_EFLOW;
        }
        return CN_EFLOW;
    }
    int rc = frameq_push(&m->ctlq, f);
    if (rc == CN_ENOMEM && !m->fatal)
        m->fatal = CN_ENOMEM; /* the peer would wait forever for this frame */
    return rc;
}

static int push_rst(cn_mux_t *m, uint32_t id, uint32_t code, const char *msg, int peer_triggered)
{
    cn_frame_t f = {.type = CN_FRAME_RST, .stream = id};
    f.u.reason.code = code;
    f.u.reason.msg = (const uint8_t *)msg;
    f.u.reason.msg_len = (uint32_t)reason_len(msg);
    return ctl_push(m, &f, peer_triggered);
}

static int push_simple(cn_mux_t *m, uint8_t type, uint32_t id, uint32_t window, int peer_triggered)
{
    cn_frame_t f = {.type = type, .stream = id};
    f.u.window = window;
    return ctl_push(m, &f, peer_triggered);
}

/* ---- stream lifecycle ---- */

static struct stream *stream_new(cn_mux_t *m, uint32_t id, uint8_t state, void *user)
{
    struct stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->id = id;
    s->state = state;
    s->user = user;
    s->rx_window = s->rx_credit = m->window;
    if (table_insert(m, s)) {
        free(s);
        return NULL;
    }
    s->all_next = m->all_head;
    if (m->all_head)
        m->all_head->all_prev = s;
    m->all_head = s;
    return s;
}

/* Kills a stream: out of the table (its id now reads as "closed"), buffers
 * dropped, on_closed queued. The memory lives until the pump delivers it. */
static void stream_close(cn_mux_t *m, struct stream *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    table_remove(m, s->id);
    ring_remove(m, s);
    all_unlink(m, s);
    m->rx_total -= s->rx.len;
    m->tx_total -= s->tx.len;
    cq_clear(m, &s->rx);
    cq_clear(m, &s->tx);
    if (m->resv == s)
        m->resv = NULL;
    if (m->zombie_tail)
        m->zombie_tail->all_next = s;
    else
        m->zombie_head = s;
    m->zombie_tail = s;
}

static void stream_check_done(cn_mux_t *m, struct stream *s)
{
    if (!s->closing && s->fin_queued && s->remote_fin && s->eof_read)
        stream_close(m, s);
}

static void stream_free(cn_mux_t *m, struct stream *s)
{
    cq_clear(m, &s->rx);
    cq_clear(m, &s->tx);
    free(s);
}

static size_t tx_space(const cn_mux_t *m, const struct stream *s)
{
    size_t lim = min_sz(s->tx_credit, m->send_buffer);
    return lim > s->tx.len ? lim - s->tx.len : 0;
}

/* on_writable is owed once space is back; wait for a useful amount unless
 * nothing is queued (then no later drain would re-check). */
static void writable_check(cn_mux_t *m, struct stream *s)
{
    if (!s->want_write || s->state != ST_OPEN || s->fin_wanted || s->closing)
        return;
    size_t space = tx_space(m, s);
    size_t lowat = min_sz(m->quantum, m->send_buffer / 4);
    if (space > 0 && (space >= lowat || s->tx.len == 0)) {
        s->want_write = 0;
        mark_event(m, s, EV_WRITABLE);
    }
}

/* Delivers deferred events and on_closed, outermost call only, so a
 * callback's own calls never free something a caller up the stack holds. */
static void pump(cn_mux_t *m)
{
    if (m->depth)
        return;
    m->depth++;
    for (;;) {
        struct stream *s = m->ev_head;
        if (s) {
            m->ev_head = s->ev_next;
            if (!m->ev_head)
                m->ev_tail = NULL;
            s->ev_next = NULL;
            s->in_ev = 0;
            uint8_t ev = s->ev;
            s->ev = 0;
            /* s cannot be freed inside these callbacks: only this loop frees. */
            if ((ev & EV_READABLE) && !s->closing && m->cb.on_readable)
                m->cb.on_readable(m->ctx, s->id, s->user);
            if ((ev & EV_WRITABLE) && !s->closing && m->cb.on_writable)
                m->cb.on_writable(m->ctx, s->id, s->user);
            continue;
        }
        /* Events drained, so no zombie is still linked on the event list. */
        s = m->zombie_head;
        if (!s)
            break;
        m->zombie_head = s->all_next;
        if (!m->zombie_head)
            m->zombie_tail = NULL;
        if (m->cb.on_closed)
            m->cb.on_closed(m->ctx, s->id, s->user); /* NULL if never accepted */
        stream_free(m, s);
    }
    m->depth--;
}

/* ---- creation ---- */

bool cn_mux_window_valid(uint64_t window, uint64_t update, const char **why)
{
    _Static_assert(CN_MUX_MIN_WINDOW == 1024u && CN_FRAME_MAX_WINDOW == 1073741824u,
                   "the messages below name the bounds");
    const char *w = NULL;
    uint64_t in_effect = window ? window : CN_MUX_DEFAULT_WINDOW;
    if (window && (window < CN_MUX_MIN_WINDOW || window > CN_FRAME_MAX_WINDOW))
        w = "the stream window must be between 1024 and 1073741824 bytes";
    else if (update > in_effect)
        w = "the window update threshold must not exceed the stream window";
    if (w && why)
        *why = w;
    return !w;
}

cn_mux_t *cn_mux_new(const cn_mux_config_t *cfg, const cn_mux_callbacks_t *cb, void *ctx)
{
    cn_mux_config_t c = {0};
    if (cfg)
        c = *cfg;
    if (!c.window)
        c.window = CN_MUX_DEFAULT_WINDOW;
    if (c.window < CN_MUX_MIN_WINDOW || c.window > CN_FRAME_MAX_WINDOW)
        return NULL;
    if (!c.window_update)
        c.window_update = c.window / 4;
    if (c.window_update > c.window)
        return NULL;
    if (!c.send_buffer)
        c.send_buffer = CN_MUX_DEFAULT_SEND_BUFFER;
    if (!c.max_streams)
        c.max_streams = CN_MUX_DEFAULT_MAX_STREAMS;
    if (!c.max_stream_id)
        c.max_stream_id = CN_FRAME_MAX_STREAM;
    if (c.max_stream_id > CN_FRAME_MAX_STREAM || c.max_streams > (1u << 24))
        return NULL;
    if (!c.quantum)
        c.quantum = CN_MUX_DEFAULT_QUANTUM;
    if (!c.queue_max)
        c.queue_max = CN_MUX_DEFAULT_QUEUE_MAX;
    if (sodium_init() < 0)
        return NULL;

    cn_mux_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    if (cb)
        m->cb = *cb;
    m->ctx = ctx;
    m->initiator = c.initiator != 0;
    m->window = c.window;
    m->window_update = c.window_update;
    m->send_buffer = c.send_buffer;
    m->max_streams = c.max_streams;
    m->max_stream_id = c.max_stream_id;
    m->quantum = c.quantum;
    m->queue_max = c.queue_max;
    m->next_id = m->initiator ? 1 : 2;
    randombytes_buf(&m->hash_key, sizeof(m->hash_key));
    m->nslots = 16;
    m->slots = calloc(m->nslots, sizeof(struct stream *));
    if (!m->slots) {
        free(m);
        return NULL;
    }
    frameq_init(&m->ctlq);
    frameq_init(&m->dgq);
    return m;
}

void cn_mux_free(cn_mux_t *m)
{
    if (!m)
        return;
    while (m->all_head) {
        struct stream *s = m->all_head;
        m->all_head = s->all_next;
        stream_free(m, s);
    }
    while (m->zombie_head) {
        struct stream *s = m->zombie_head;
        m->zombie_head = s->all_next;
        stream_free(m, s);
    }
    while (m->resv_nextra)
        free(m->resv_extra[--m->resv_nextra]);
    while (m->chunk_cache) {
        struct chunk *c = m->chunk_cache;
        m->chunk_cache = c->next;
        free(c);
    }
    cn_buf_free(&m->ctlq.b);
    cn_buf_free(&m->dgq.b);
    free(m->slots);
    free(m);
}

/* ---- input ---- */

static int is_local_id(const cn_mux_t *m, uint32_t id)
{
    return (int)(id & 1u) == m->initiator;
}

/* Link-level failure: remembered, and a GOAWAY tells the peer why. */
static int link_fail(cn_mux_t *m, int err, const char *why)
{
    if (!m->goaway_sent) {
        cn_frame_t f = {.type = CN_FRAME_GOAWAY};
        f.u.reason.code = CN_RST_PROTOCOL;
        f.u.reason.msg = (const uint8_t *)why;
        f.u.reason.msg_len = (uint32_t)reason_len(why);
        if (frameq_push(&m->ctlq, &f) == 0)
            m->goaway_sent = 1;
    }
    return err;
}

/* Stream-level failure: RST to the peer, on_reset + on_closed locally. */
static int stream_fail(cn_mux_t *m, struct stream *s, uint32_t code, const char *why)
{
    uint32_t id = s->id;
    void *user = s->state == ST_PENDING ? NULL : s->user;
    int rc = push_rst(m, id, code, why, 1);
    stream_close(m, s);
    if (m->cb.on_reset)
        m->cb.on_reset(m->ctx, id, user, code, why, strlen(why));
    return rc;
}

static int input_open(cn_mux_t *m, const cn_frame_t *f)
{
    uint32_t id = f->stream;
    const char *why = NULL;
    uint32_t code = 0;
    if (is_local_id(m, id))
        return link_fail(m, CN_EPROTO, "OPEN with the wrong id parity");
    if (id <= m->last_peer_id)
        return link_fail(m, CN_EPROTO, "OPEN id not above the previous one");
    m->last_peer_id = id;

    if (m->goaway_sent) {
        code = CN_RST_GONE;
        why = "going away";
    } else if (m->nstreams >= m->max_streams) {
        code = CN_RST_LIMIT;
        why = "too many streams";
    } else if (!m->cb.on_open) {
        code = CN_RST_REFUSED;
        why = "streams not accepted";
    }
    if (why)
        return push_rst(m, id, code, why, 1);

    struct stream *s = stream_new(m, id, ST_PENDING, NULL);
    if (!s)
        return CN_ENOMEM;
    s->tx_credit = f->u.open.window;
    m->cb.on_open(m->ctx, id, f->u.open.kind, f->u.open.ref, f->u.open.ref_len, f->u.open.meta,
                  f->u.open.meta_len);
    return 0;
}

static int input_stream(cn_mux_t *m, const cn_frame_t *f)
{
    uint32_t id = f->stream;
    int local = is_local_id(m, id);
    struct stream *s = table_find(m, id);

    if (f->type == CN_FRAME_OPEN_ACK && !local)
        return link_fail(m, CN_EPROTO, "OPEN_ACK for a stream the peer opened");
    if (!s) {
        int used = local ? id < m->next_id : id <= m->last_peer_id;
        if (!used)
            return link_fail(m, CN_EPROTO, "frame for a stream never opened");
        return 0; /* closed here; the peer had it in flight */
    }

    switch (f->type) {
    case CN_FRAME_OPEN_ACK:
        if (s->state != ST_OPENING)
            return link_fail(m, CN_EPROTO, "duplicate OPEN_ACK");
        s->state = ST_OPEN;
        s->tx_credit = f->u.window;
        if (m->cb.on_accepted)
            m->cb.on_accepted(m->ctx, id, s->user);
        writable_check(m, s); /* s is still allocated: frees wait for the pump */
        return 0;

    case CN_FRAME_DATA:
        if (s->state == ST_OPENING)
            return link_fail(m, CN_EPROTO, "DATA before OPEN_ACK");
        if (s->state == ST_PENDING)
            return link_fail(m, CN_EPROTO, "DATA before the stream was accepted");
        if (s->remote_fin)
            return link_fail(m, CN_EPROTO, "DATA after FIN");
        if (f->len > s->rx_credit)
            return stream_fail(m, s, CN_RST_FLOW, "window exceeded");
        if (f->len == 0)
            return 0;
        size_t got = cq_append(m, &s->rx, f->payload, f->len);
        s->rx_credit -= (uint32_t)got;
        m->rx_total += got;
        mark_event(m, s, EV_READABLE);
        return got == f->len ? 0 : CN_ENOMEM;

    case CN_FRAME_WINDOW:
        if (s->state == ST_OPENING)
            return link_fail(m, CN_EPROTO, "WINDOW before OPEN_ACK");
        if (s->fin_queued)
            return 0; /* we send nothing more; credit is moot */
        if (f->u.window > CN_FRAME_MAX_WINDOW - s->tx_credit)
            return stream_fail(m, s, CN_RST_FLOW, "credit above the maximum window");
        s->tx_credit += f->u.window;
        writable_check(m, s);
        return 0;

    case CN_FRAME_FIN:
        if (s->state == ST_OPENING)
            return link_fail(m, CN_EPROTO, "FIN before OPEN_ACK");
        if (s->remote_fin)
            return link_fail(m, CN_EPROTO, "second FIN");
        s->remote_fin = 1;
        if (s->state == ST_OPEN)
            mark_event(m, s, EV_READABLE); /* pending streams: on accept */
        return 0;

    case CN_FRAME_RST: {
        void *user = s->state == ST_PENDING ? NULL : s->user;
        stream_close(m, s); /* dead before the callback: calls on it are refused */
        if (m->cb.on_reset)
            m->cb.on_reset(m->ctx, id, user, f->u.reason.code, (const char *)f->u.reason.msg,
                           f->u.reason.msg_len);
        return 0;
    }

    case CN_FRAME_DATAGRAM:
        if (s->state == ST_OPEN && m->cb.on_datagram)
            m->cb.on_datagram(m->ctx, id, s->user, f->payload, f->len);
        return 0;

    default:
        return link_fail(m, CN_EPROTO, "unexpected frame type");
    }
}

static int input_frame(cn_mux_t *m, const cn_frame_t *f)
{
    switch (f->type) {
    case CN_FRAME_PING: {
        cn_frame_t pong = {.type = CN_FRAME_PONG};
        pong.u.ping = f->u.ping;
        return ctl_push(m, &pong, 1);
    }
    case CN_FRAME_PONG:
        if (m->cb.on_pong)
            m->cb.on_pong(m->ctx, f->u.ping);
        return 0;
    case CN_FRAME_CONTROL:
        if (m->cb.on_control)
            m->cb.on_control(m->ctx, f->payload, f->len);
        return 0;
    case CN_FRAME_GOAWAY:
        m->goaway_rcvd = 1;
        if (m->cb.on_goaway)
            m->cb.on_goaway(m->ctx, f->u.reason.code, (const char *)f->u.reason.msg,
                            f->u.reason.msg_len);
        return 0;
    case CN_FRAME_OPEN:
        return input_open(m, f);
    default:
        return input_stream(m, f);
    }
}

int cn_mux_input(cn_mux_t *m, const cn_frame_t *f)
{
    if (m->dead)
        return CN_ECLOSED;
    if (m->fatal)
        return m->fatal;
    if (!f || f->type < CN_FRAME_OPEN || f->type > CN_FRAME_GOAWAY ||
        f->stream > CN_FRAME_MAX_STREAM)
        return CN_EINVAL;
    int conn = f->type == CN_FRAME_PING || f->type == CN_FRAME_PONG ||
               f->type == CN_FRAME_CONTROL || f->type == CN_FRAME_GOAWAY;
    if (conn != (f->stream == 0))
        return CN_EINVAL;
    m->resv = NULL;
    m->depth++;
    int rc = input_frame(m, f);
    m->depth--;
    if (rc < 0 && !m->fatal)
        m->fatal = rc;
    pump(m);
    /* A callback's reply may have failed the link (see ctl_push()). */
    return m->fatal ? m->fatal : rc < 0 ? rc : 0;
}

/* ---- output ---- */

/* Our FIN goes right after the stream's last DATA (inline when it fits,
 * else first in the next call through the control queue). */
static size_t emit_fin(cn_mux_t *m, struct stream *s, uint8_t *out, size_t room)
{
    size_t n = 0;
    if (room >= CN_FRAME_HEADER)
        n = (size_t)cn_frame_write_header(out, CN_FRAME_FIN, s->id, 0);
    else
        push_simple(m, CN_FRAME_FIN, s->id, 0, 0);
    s->fin_queued = 1;
    return n;
}

/* Deficit round robin over streams with queued bytes (which always have
 * credit: writes never queue beyond it). Each turn sends up to `quantum`;
 * a turn cut short by the buffer resumes in the next call. */
static size_t output_data(cn_mux_t *m, uint8_t *out, size_t room, size_t written)
{
    size_t pos = 0;
    while (m->ring && room - pos > CN_FRAME_HEADER) {
        struct stream *s = m->ring;
        if (s->deficit == 0)
            s->deficit = m->quantum;
        size_t want = min_sz(min_sz(s->tx.len, s->deficit), CN_FRAME_MAX_PAYLOAD);
        size_t n = min_sz(want, room - pos - CN_FRAME_HEADER);
        if (n < want && n < MIN_DATA && written + pos > 0)
            break; /* no runt frame to top up a record; it leads the next one */
        if (cn_frame_write_header(out + pos, CN_FRAME_DATA, s->id, (uint32_t)n) < 0)
            break; /* not reached: n <= CN_FRAME_MAX_PAYLOAD and s->id != 0 */
        cq_take(m, &s->tx, out + pos + CN_FRAME_HEADER, n);
        pos += CN_FRAME_HEADER + n;
        s->tx_credit -= (uint32_t)n;
        s->deficit -= (uint32_t)n;
        m->tx_total -= n;
        if (s->tx.len == 0) {
            ring_remove(m, s);
            if (s->fin_wanted && !s->fin_queued)
                pos += emit_fin(m, s, out + pos, room - pos);
            writable_check(m, s);
            stream_check_done(m, s);
        } else {
            writable_check(m, s);
            if (s->deficit)
                break; /* buffer full mid-turn */
            m->ring = s->rr_next;
        }
    }
    return pos;
}

int cn_mux_output(cn_mux_t *m, uint8_t *out, size_t cap)
{
    if (m->dead)
        return 0;
    if (!out || cap < CN_MUX_MIN_OUTPUT)
        return CN_EINVAL;
    if (cap > (1u << 30))
        cap = 1u << 30;
    m->resv = NULL;
    pump(m); /* callbacks may queue more to send in this very call */
    m->depth++;
    size_t pos = 0;
    /* A frame split by the previous call must be finished before any other
     * byte, or the peer would parse the interloper as its payload. (A split
     * control frame needs no care here: the control queue goes first.) */
    if (m->dgq.split_left)
        pos = frameq_drain(m, &m->dgq, out, cap, cap, 1);
    if (m->dgq.split_left == 0)
        pos += frameq_drain(m, &m->ctlq, out + pos, cap - pos, cap, SIZE_MAX);
    /* Nothing may overtake a queued control frame: an OPEN_ACK must precede
     * the stream's DATA, an OPEN its DATAGRAMs. */
    if (m->ctlq.b.len == 0 && m->dgq.split_left == 0) {
        /* Datagrams get one quantum per call while streams wait, so a flood
         * of them cannot starve the streams (nor the reverse). */
        size_t budget = m->ring ? m->quantum : SIZE_MAX;
        pos += frameq_drain(m, &m->dgq, out + pos, cap - pos, cap, budget);
        if (m->dgq.split_left == 0)
            pos += output_data(m, out + pos, cap - pos, pos);
    }
    m->depth--;
    pump(m);
    return (int)pos;
}

int cn_mux_has_output(const cn_mux_t *m)
{
    if (m->dead)
        return 0;
    return m->ctlq.b.len || m->dgq.b.len || m->ring || m->ev_head || m->zombie_head;
}

void cn_mux_abort(cn_mux_t *m, uint32_t code)
{
    static const char why[] = "link closed";
    if (m->dead)
        return;
    m->dead = 1;
    m->resv = NULL;
    m->depth++;
    while (m->all_head) {
        struct stream *s = m->all_head;
        uint32_t id = s->id;
        void *user = s->state == ST_PENDING ? NULL : s->user;
        stream_close(m, s);
        if (m->cb.on_reset)
            m->cb.on_reset(m->ctx, id, user, code, why, sizeof(why) - 1);
    }
    cn_buf_free(&m->ctlq.b);
    cn_buf_free(&m->dgq.b);
    m->ctlq.split_left = m->dgq.split_left = 0;
    m->ctl_app = 0;
    m->depth--;
    pump(m);
}

/* ---- stream calls ---- */

static struct stream *lookup(cn_mux_t *m, uint32_t id, int *rc)
{
    struct stream *s = NULL;
    if (m->dead)
        *rc = CN_ECLOSED;
    else if (id == 0 || id > CN_FRAME_MAX_STREAM || !(s = table_find(m, id)))
        *rc = CN_ENOTFOUND;
    else if (s->state == ST_PENDING) {
        *rc = CN_ESTATE;
        s = NULL;
    }
    return s;
}

int cn_mux_open(cn_mux_t *m, uint8_t kind, const uint8_t *ref, size_t ref_len, const uint8_t *meta,
                size_t meta_len, void *user, uint32_t *id)
{
    if (m->dead || m->fatal || m->goaway_sent || m->goaway_rcvd)
        return CN_ECLOSED;
    if (!id || kind == 0 || ref_len > CN_FRAME_MAX_REF || (ref_len && !ref) ||
        (meta_len && !meta) || meta_len > CN_FRAME_MAX_PAYLOAD)
        return CN_EINVAL;
    if (m->next_id > m->max_stream_id)
        return CN_EEXHAUSTED;
    if (m->nstreams >= m->max_streams)
        return CN_EAGAIN;
    cn_frame_t f = {.type = CN_FRAME_OPEN, .stream = (uint32_t)m->next_id};
    f.u.open.window = m->window;
    f.u.open.kind = kind;
    f.u.open.ref = ref;
    f.u.open.ref_len = (uint8_t)ref_len;
    f.u.open.meta = meta;
    f.u.open.meta_len = (uint32_t)meta_len;
    size_t fsz = cn_frame_size(&f);
    if (fsz == 0)
        return CN_EINVAL;
    if (m->ctl_app + fsz > m->queue_max)
        return CN_EAGAIN;
    struct stream *s = stream_new(m, f.stream, ST_OPENING, user);
    if (!s)
        return CN_ENOMEM;
    int rc = frameq_push(&m->ctlq, &f);
    if (rc) {
        all_unlink(m, s);
        table_remove(m, s->id);
        free(s);
        return rc;
    }
    m->ctl_app += fsz;
    m->next_id += 2;
    *id = f.stream;
    return 0;
}

int cn_mux_accept(cn_mux_t *m, uint32_t id, void *user)
{
    if (m->dead)
        return CN_ECLOSED;
    struct stream *s = table_find(m, id);
    if (!s || id == 0)
        return CN_ENOTFOUND;
    if (s->state != ST_PENDING)
        return CN_ESTATE;
    int rc = push_simple(m, CN_FRAME_OPEN_ACK, id, s->rx_window, 1);
    if (rc)
        return rc;
    s->state = ST_OPEN;
    s->user = user;
    if (s->remote_fin)
        mark_event(m, s, EV_READABLE); /* EOF arrived before the accept */
    return 0;
}

int cn_mux_reject(cn_mux_t *m, uint32_t id, uint32_t code, const char *msg)
{
    if (m->dead)
        return CN_ECLOSED;
    struct stream *s = table_find(m, id);
    if (!s || id == 0)
        return CN_ENOTFOUND;
    if (s->state != ST_PENDING)
        return CN_ESTATE;
    /* The answer to the peer's OPEN: bounded like every reply. */
    int rc = push_rst(m, id, code, msg, 1);
    stream_close(m, s);
    return rc;
}

int cn_mux_reset(cn_mux_t *m, uint32_t id, uint32_t code, const char *msg)
{
    if (m->dead)
        return CN_ECLOSED;
    struct stream *s = id ? table_find(m, id) : NULL;
    if (!s)
        return CN_ENOTFOUND;
    int rc = push_rst(m, id, code, msg, 0);
    stream_close(m, s);
    return rc;
}

/* Returns consumed credit to the peer in batches of window_update bytes. */
static int rx_consumed(cn_mux_t *m, struct stream *s, size_t n)
{
    m->rx_total -= n;
    s->rx_unacked += (uint32_t)n;
    if (s->remote_fin || s->rx_unacked < m->window_update)
        return 0;
    int rc = push_simple(m, CN_FRAME_WINDOW, s->id, s->rx_unacked, 1);
    if (rc)
        return rc;
    s->rx_credit += s->rx_unacked;
    s->rx_unacked = 0;
    return 0;
}

static int rx_empty(cn_mux_t *m, struct stream *s)
{
    if (!s->remote_fin)
        return CN_EAGAIN;
    s->eof_read = 1;
    stream_check_done(m, s); /* on_closed waits for the next pump */
    return 0;
}

int cn_mux_read(cn_mux_t *m, uint32_t id, uint8_t *buf, size_t cap)
{
    int rc;
    struct stream *s = lookup(m, id, &rc);
    if (!s)
        return rc;
    if (s->rx.len == 0)
        return rx_empty(m, s);
    if (cap > INT32_MAX)
        cap = INT32_MAX;
    size_t n = min_sz(cap, s->rx.len);
    if (n == 0)
        return CN_EINVAL;
    cq_take(m, &s->rx, buf, n);
    rc = rx_consumed(m, s, n);
    return rc ? rc : (int)n;
}

int cn_mux_peek(cn_mux_t *m, uint32_t id, const uint8_t **ptr, size_t *len)
{
    int rc;
    struct stream *s = lookup(m, id, &rc);
    *ptr = NULL;
    *len = 0;
    if (!s)
        return rc;
    if (s->rx.len == 0)
        return rx_empty(m, s);
    struct chunk *c = s->rx.head;
    *ptr = c->data + c->off;
    *len = c->end - c->off;
    return (int)*len;
}

int cn_mux_peekv(cn_mux_t *m, uint32_t id, struct iovec *iov, int max, size_t *len)
{
    int rc;
    struct stream *s = lookup(m, id, &rc);
    *len = 0;
    if (!s)
        return rc;
    if (max <= 0)
        return CN_EINVAL;
    if (s->rx.len == 0)
        return rx_empty(m, s);
    int n = 0;
    for (struct chunk *c = s->rx.head; c && n < max; c = c->next) {
        if (c->end == c->off)
            continue;
        iov[n].iov_base = c->data + c->off;
        iov[n].iov_len = c->end - c->off;
        *len += iov[n].iov_len;
        n++;
    }
    return n;
}

int cn_mux_consume(cn_mux_t *m, uint32_t id, size_t n)
{
    int rc;
    struct stream *s = lookup(m, id, &rc);
    if (!s)
        return rc;
    if (n > s->rx.len)
        return CN_EINVAL;
    if (n == 0)
        return 0;
    cq_take(m, &s->rx, NULL, n);
    return rx_consumed(m, s, n);
}

/* The stream and its send space, or an error (setting want_write when the
 * answer is "not now", so on_writable follows). */
static struct stream *send_target(cn_mux_t *m, uint32_t id, size_t *space, int *rc)
{
    struct stream *s = lookup(m, id, rc);
    if (!s)
        return NULL;
    if (s->fin_wanted) {
        *rc = CN_ECLOSED;
        return NULL;
    }
    *space = s->state == ST_OPEN ? tx_space(m, s) : 0;
    if (*space == 0) {
        s->want_write = 1;
        *rc = CN_EAGAIN;
        return NULL;
    }
    return s;
}

static void tx_queued(cn_mux_t *m, struct stream *s, size_t n)
{
    m->tx_total += n;
    if (n)
        ring_add(m, s);
}

int cn_mux_write(cn_mux_t *m, uint32_t id, const uint8_t *data, size_t len)
{
    int rc;
    size_t space;
    if (len == 0) {
        struct stream *s = lookup(m, id, &rc);
        return s ? 0 : rc;
    }
    struct stream *s = send_target(m, id, &space, &rc);
    if (!s)
        return rc;
    size_t n = min_sz(min_sz(space, len), INT32_MAX);
    if (n < len)
        s->want_write = 1;
    m->resv = NULL;
    size_t got = cq_append(m, &s->tx, data, n);
    tx_queued(m, s, got);
    return got ? (int)got : CN_ENOMEM;
}

/* Chunks lent by an earlier cn_mux_write_spacev() and not committed. */
static void resv_release(cn_mux_t *m)
{
    while (m->resv_nextra)
        chunk_put(m, m->resv_extra[--m->resv_nextra]);
}

int cn_mux_write_spacev(cn_mux_t *m, uint32_t id, struct iovec *iov, int max, size_t *space)
{
    int rc;
    size_t lim;
    *space = 0;
    if (max <= 0 || max > CN_MUX_MAX_IOV)
        return CN_EINVAL;
    resv_release(m);
    struct stream *s = send_target(m, id, &lim, &rc);
    if (!s)
        return rc;
    size_t avail;
    uint8_t *p = cq_space(m, &s->tx, &avail);
    if (!p)
        return CN_ENOMEM;
    size_t total = min_sz(lim, avail);
    iov[0].iov_base = p;
    iov[0].iov_len = total;
    int n = 1;
    while (total < lim && n < max) {
        struct chunk *c = chunk_get(m);
        if (!c)
            break; /* what there is will do */
        m->resv_extra[m->resv_nextra++] = c;
        iov[n].iov_base = c->data;
        iov[n].iov_len = min_sz(lim - total, CHUNK_SIZE);
        total += iov[n].iov_len;
        n++;
    }
    m->resv = s;
    m->resv_len = total;
    *space = total;
    return n;
}

int cn_mux_write_space(cn_mux_t *m, uint32_t id, uint8_t **ptr, size_t *space)
{
    struct iovec v;
    *ptr = NULL;
    int n = cn_mux_write_spacev(m, id, &v, 1, space);
    if (n < 0)
        return n;
    *ptr = v.iov_base;
    return 0;
}

int cn_mux_write_commit(cn_mux_t *m, uint32_t id, size_t n)
{
    if (m->dead)
        return CN_ECLOSED;
    struct stream *s = m->resv;
    if (!s || s->id != id)
        return CN_ESTATE;
    if (n > m->resv_len)
        return CN_EINVAL;
    m->resv = NULL;
    if (n == 0) {
        struct chunk *c = s->tx.tail;
        if (c && c == s->tx.head && c->off == c->end) {
            s->tx.head = s->tx.tail = NULL; /* abandoned: idle streams hold no chunk */
            chunk_put(m, c);
        }
        resv_release(m);
        return 0;
    }
    /* The tail's space first, then the lent chunks in order, each linked
     * only when bytes landed in it. */
    size_t first = min_sz(n, CHUNK_SIZE - s->tx.tail->end);
    cq_commit(&s->tx, first);
    size_t rest = n - first;
    int used = 0;
    while (rest) {
        assert(used < m->resv_nextra); /* n <= resv_len covers the lent chunks */
        struct chunk *c = m->resv_extra[used++];
        size_t k = min_sz(rest, CHUNK_SIZE);
        s->tx.tail->next = c;
        s->tx.tail = c;
        cq_commit(&s->tx, k);
        rest -= k;
    }
    for (int i = used; i < m->resv_nextra; i++)
        chunk_put(m, m->resv_extra[i]);
    m->resv_nextra = 0;
    tx_queued(m, s, n);
    return 0;
}

int cn_mux_shutdown(cn_mux_t *m, uint32_t id)
{
    int rc;
    struct stream *s = lookup(m, id, &rc);
    if (!s)
        return rc;
    if (s->fin_wanted)
        return 0;
    if (m->resv == s)
        m->resv = NULL; /* no data may be committed behind the FIN */
    if (s->tx.len == 0) {
        rc = push_simple(m, CN_FRAME_FIN, id, 0, 0);
        if (rc)
            return rc;
        s->fin_queued = 1;
    }
    s->fin_wanted = 1;
    s->want_write = 0;
    stream_check_done(m, s);
    return 0;
}

/* ---- connection level ---- */

int cn_mux_send_control(cn_mux_t *m, const json_t *obj)
{
    int err = 0;
    if (m->dead)
        return CN_ECLOSED;
    if (!obj || !json_is_object(obj))
        return CN_EINVAL;
    size_t n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
    if (n == 0)
        return CN_EINVAL;
    if (n > CN_FRAME_MAX_PAYLOAD)
        return CN_ETOOBIG;
    n += CN_FRAME_HEADER;
    if (m->ctl_app + n > m->queue_max)
        return CN_EAGAIN;
    uint8_t *p = cn_buf_reserve(&m->ctlq.b, n, &err);
    if (!p)
        return err;
    int rc = cn_frame_encode_control(obj, p, n);
    if (rc < 0)
        return rc;
    cn_buf_commit(&m->ctlq.b, (size_t)rc);
    m->ctl_app += (size_t)rc;
    return 0;
}

int cn_mux_send_datagram(cn_mux_t *m, uint32_t id, const uint8_t *data, size_t len)
{
    int rc;
    struct stream *s = lookup(m, id, &rc);
    if (!s)
        return rc;
    if (len > CN_FRAME_MAX_DATAGRAM)
        return CN_ETOOBIG;
    if (len && !data)
        return CN_EINVAL;
    if (m->dgq.b.len + CN_FRAME_HEADER + len > m->queue_max)
        return CN_EAGAIN;
    cn_frame_t f = {.type = CN_FRAME_DATAGRAM, .stream = id, .len = (uint32_t)len};
    f.payload = data;
    return frameq_push(&m->dgq, &f);
}

int cn_mux_ping(cn_mux_t *m, uint64_t value)
{
    if (m->dead)
        return CN_ECLOSED;
    cn_frame_t f = {.type = CN_FRAME_PING};
    f.u.ping = value;
    size_t n = cn_frame_size(&f);
    if (m->ctl_app + n > m->queue_max)
        return CN_EAGAIN;
    int rc = frameq_push(&m->ctlq, &f);
    if (rc)
        return rc;
    m->ctl_app += n;
    return 0;
}

int cn_mux_goaway(cn_mux_t *m, uint32_t code, const char *msg)
{
    if (m->dead)
        return CN_ECLOSED;
    if (m->goaway_sent)
        return CN_ESTATE;
    cn_frame_t f = {.type = CN_FRAME_GOAWAY};
    f.u.reason.code = code;
    f.u.reason.msg = (const uint8_t *)msg;
    f.u.reason.msg_len = (uint32_t)reason_len(msg);
    int rc = frameq_push(&m->ctlq, &f);
    if (rc)
        return rc;
    m->goaway_sent = 1;
    return 0;
}

/* ---- stats ---- */

size_t cn_mux_stream_count(const cn_mux_t *m)
{
    return m->nstreams;
}

size_t cn_mux_buffered_bytes(const cn_mux_t *m)
{
    return m->rx_total + m->tx_total;
}

int cn_mux_stream_buffered(const cn_mux_t *m, uint32_t id, size_t *rx, size_t *tx)
{
    const struct stream *s = id ? table_find(m, id) : NULL;
    if (!s)
        return CN_ENOTFOUND;
    if (rx)
        *rx = s->rx.len;
    if (tx)
        *tx = s->tx.len;
    return 0;
}

int cn_mux_stream_credit(const cn_mux_t *m, uint32_t id, size_t *credit)
{
    const struct stream *s = id ? table_find(m, id) : NULL;
    if (!s)
        return CN_ENOTFOUND;
    *credit = s->tx_credit;
    return 0;
}

size_t cn_mux_reply_bytes(const cn_mux_t *m)
{
    return m->ctlq.b.len > m->ctl_app ? m->ctlq.b.len - m->ctl_app : 0;
}

size_t cn_mux_reply_high(const cn_mux_t *m)
{
    return m->queue_max / 4;
}

int cn_mux_error(const cn_mux_t *m)
{
    return m->dead ? CN_ECLOSED : m->fatal;
}

size_t cn_mux_pending_bytes(const cn_mux_t *m)
{
    return m->ctlq.b.len + m->dgq.b.len + m->tx_total;
}
