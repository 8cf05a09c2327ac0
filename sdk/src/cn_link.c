/* The agent<->hub link: lws event glue around cn_wsc (client framing),
 * cn_chan (records) and cn_mux (streams). No protocol logic lives here: it
 * moves bytes between lws and the sans-IO cores, keeps the timers, and
 * enforces the buffer bounds the cores report. */
#include "cn_link.h"

#include "cn_buf.h"
#include "cn_err.h"
#include "cn_frame.h"
#include "cn_log.h"
#include "cn_wsc.h"
#include "cn_time.h"
#include "cn_tls.h"
#include "cn_errmsg.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEF_PING_MS 1000u
#define DEF_PROBE_MS 500u
#define DEF_DEAD_MS 3000u
#define DEF_HANDSHAKE_MS 5000u
#define DEF_HS_GRACE_MS 2000u
#define DEF_HS_MIN_RATE 32u
/* A handshake pending this long has had time for a real peer's first
 * message many times over (one round trip after the upgrade): at a full
 * handshake cap it yields its slot to a newcomer (see evict_stale()). */
#define HS_STALE_MS 250u
#define DEF_STALL_MS 10000u
#define STALL_QUIET_FACTOR 6u /* see cn_link_timing_t.stall_ms */
#define DEF_MAX_LINKS 1024u
/* Above this many bytes buffered in the mux (received, not yet read by the
 * application) stop reading the WebSocket; resume below half of it. Stream
 * windows already bound each stream; this bounds their sum per link. */
#define RX_HIGH_WATER (64u * 1024 * 1024)
/* Headroom in the tx buffer: lws's own, then room for our WebSocket header. */
#define TX_HEAD (LWS_PRE + CN_WSC_MAX_HEADER)
/* Over TLS, plaintext per write is this much smaller than CN_LINK_TX_MAX so
 * that its records (at most ~30 bytes of framing per 16 KiB) still fit one
 * lws_write of CN_LINK_TX_MAX. */
#define TLS_ROOM 4096u
/* Plaintext decrypted per SSL_read on the receive path. */
#define TLS_RX_CHUNK (64u * 1024)

enum link_state {
    LINK_CONNECTING, /* client: TCP connect pending */
    LINK_UPGRADING,  /* client: upgrade sent, waiting for 101 */
    LINK_HANDSHAKE,  /* channel handshake in progress */
    LINK_ESTABLISHED,
    LINK_CLOSING, /* cn_link_close() or a fatal error: waiting for lws to close */
};

/* Links still in handshake from one address (pre-authentication cap). */
typedef struct pending_addr {
    char addr[64];
    unsigned count;
} pending_addr_t;

struct cn_link_server {
    cn_link_server_config_t cfg;
    pending_addr_t *by_addr; /* cfg.max_pending slots */
    char *path, *binding;
    uint8_t sk[32];
    cn_mux_callbacks_t mux_cb;
    unsigned links;
    unsigned pending;
    cn_link_t *pending_head; /* the links counted in `pending` */
};

struct cn_link {
    int is_client;
    int state;
    struct lws *wsi;
    struct lws_context *context;
    cn_link_server_t *srv; /* server links */
    cn_link_callbacks_t cb;
    void *ctx;
    void *user;
    cn_link_timing_t timing;

    cn_wsc_t *wsc; /* client links */
    int upgrade_sent;
    cn_chan_t *chan;
    cn_mux_t *mux;
    cn_mux_callbacks_t mux_cb;
    cn_frame_decoder_t *dec;
    cn_buf_t plain;  /* decrypted bytes not yet decoded into frames */
    cn_buf_t hs_out; /* handshake records waiting to be written */
    uint8_t *tx;     /* TX_HEAD + CN_LINK_TX_MAX */

    int rx_paused;
    int connecting_sync; /* inside lws_client_connect_via_info() */
    int sync_failed;     /* ... and it reported a connection error */
    int counted_pending;
    cn_link_t *pend_prev, *pend_next; /* on srv->pending_head while counted_pending */
    char peer[CN_LINK_ADDR_KEY_SIZE]; /* server links: the peer's address key (IPv6: /64) */
    int close_err;
    cn_link_reason_t close_reason;
    const char *close_why; /* cn_link_close()'s text, else the reason's name */
    cn_tls_ctx_t *tls_ctx; /* client links over TLS: the trust configuration (borrowed) */
    cn_tls_t *tls;         /* ... and the session, from TCP connect on */
    uint8_t *tls_buf;      /* LWS_PRE + CN_LINK_TX_MAX: ciphertext out, plaintext in */
    char host[256];        /* client links: the hub's name, for TLS */
    char tls_why[256];     /* the TLS failure line close_why points to */
    int closed_reported;
    uint64_t last_rx_ms, last_tx_ms, last_ping_ms;
    uint64_t started_ms;  /* creation: the handshake deadline counts from here */
    uint64_t pending_ms;  /* server links: when counted pending, on the server's clock */
    uint64_t hs_rx_bytes; /* channel bytes received before the handshake completed */
    uint64_t bytes_in, bytes_out;
    uint64_t ping_seq;

    /* The context's ticker (see below) and this link's place in its list. */
    struct link_ticker *ticker;
    struct cn_link *tick_prev, *tick_next;

    int flush_after_turn; /* the config's flag: see cn_link_flush_turn() */
    int turn_queued;      /* on this thread's turn list */
    cn_link_t *turn_next;
};

/* Links whose output waits for the end of this thread's loop turn
 * (cn_link_flush_turn()). A link lives on the thread of its lws context, so
 * the list is per thread; it is short (the links that got output this turn). */
static _Thread_local cn_link_t *turn_head;

static void timing_defaults(cn_link_timing_t *t)
{
    if (!t->ping_interval_ms)
        t->ping_interval_ms = DEF_PING_MS;
    if (!t->probe_interval_ms)
        t->probe_interval_ms = DEF_PROBE_MS;
    if (!t->dead_after_ms)
        t->dead_after_ms = DEF_DEAD_MS;
    if (!t->handshake_ms)
        t->handshake_ms = DEF_HANDSHAKE_MS;
    if (!t->handshake_grace_ms)
        t->handshake_grace_ms = DEF_HS_GRACE_MS;
    if (!t->handshake_min_rate)
        t->handshake_min_rate = DEF_HS_MIN_RATE;
    if (!t->stall_ms)
        t->stall_ms = DEF_STALL_MS;
}

/* ---- lifecycle --------------------------------------------------------- */

/* Timers. Every link needs a tick (pings, probes, the dead-peer check, the
 * handshake deadline), but not a timer of its own: lws 4.1 keeps timers in
 * one sorted list per context and inserts by walking it from the head, and a
 * periodic timer always goes to the end, so N links with their own timers
 * cost O(N) per tick and O(N^2) a second. At 4,000-5,000 links that was the
 * whole event loop: admission slowed from 40 ms per 100 agents to 1-15 s and
 * links died of missed pings (docs/scaling.md). So the links of a context
 * share one timer, a ticker, that walks them: O(N) a tick.
 *
 * Tickers are found by context in a short global list (one per lws
 * context; a process with tunnels on several threads has several), under a
 * lock; a ticker's own list is only touched on its context's service
 * thread. */
typedef struct link_ticker {
    struct lws_context *context;
    lws_sorted_usec_list_t sul;
    cn_link_t *head;
    cn_link_t *walk_next; /* the walk's next link; tick_leave() moves it on */
    int walking;
    uint32_t every_ms;
    uint64_t last_ms; /* when it last ran or was scheduled (cn_time_mono_ms) */
    bool skipped;     /* its last run judged no peer (see ticker_cb) */
    struct link_ticker *next;
} link_ticker_t;

static pthread_mutex_t tickers_lock = PTHREAD_MUTEX_INITIALIZER;
static link_ticker_t *tickers;

static void link_tick(cn_link_t *l, bool judge);

static void ticker_free(link_ticker_t *t)
{
    lws_sul_cancel(&t->sul);
    pthread_mutex_lock(&tickers_lock);
    for (link_ticker_t **pp = &tickers; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    pthread_mutex_unlock(&tickers_lock);
    free(t);
}

static void ticker_cb(lws_sorted_usec_list_t *sul)
{
    link_ticker_t *t = lws_container_of(sul, link_ticker_t, sul);
    /* A tick far later than asked for means this process did not run: its
     * loop blocked, the machine starved it, a stop signal. What the peers
     * sent meanwhile waits unread in the sockets, behind this timer (a loop
     * runs the timers it finds due before that turn's reads), so silence
     * and stalls are not judged on this tick, only on the next, after the
     * reads; pings go out as usual. One tick at most: a loop that stays
     * that late still judges every other tick. Measured: under 15-20x
     * overload links of the unit tests were pronounced silent for 1-12 s. */
    uint64_t now = cn_time_mono_ms();
    bool late = t->last_ms && now - t->last_ms > 2 * (uint64_t)t->every_ms + 250 && !t->skipped;
    t->skipped = late;
    t->last_ms = now;
    t->walking = 1;
    for (cn_link_t *l = t->head; l; l = t->walk_next) {
        t->walk_next = l->tick_next;
        link_tick(l, !late);
    }
    t->walking = 0;
    t->walk_next = NULL;
    if (!t->head)
        ticker_free(t);
    else
        lws_sul_schedule(t->context, 0, &t->sul, ticker_cb, (lws_usec_t)t->every_ms * 1000);
}

/* Puts the link on its context's ticker (once; later calls do nothing). */
static void schedule_tick(cn_link_t *l)
{
    if (l->ticker)
        return;
    /* Half the shorter interval keeps pings, probes and deadlines accurate
     * enough; the ticker runs at the shortest of its links. */
    uint32_t every =
        (l->timing.probe_interval_ms < l->timing.ping_interval_ms ? l->timing.probe_interval_ms
                                                                  : l->timing.ping_interval_ms) /
        2;
    if (!every)
        every = 1;
    pthread_mutex_lock(&tickers_lock);
    link_ticker_t *t = tickers;
    while (t && t->context != l->context)
        t = t->next;
    if (!t && (t = calloc(1, sizeof(*t)))) {
        t->context = l->context;
        t->next = tickers;
        tickers = t;
    }
    pthread_mutex_unlock(&tickers_lock);
    if (!t) {
        cn_log_warn("link: out of memory for its timer");
        return;
    }
    l->ticker = t;
    l->tick_prev = NULL;
    l->tick_next = t->head;
    if (t->head)
        t->head->tick_prev = l;
    t->head = l;
    if (!t->every_ms || every < t->every_ms) {
        t->every_ms = every;
        if (!t->walking) {
            t->last_ms = cn_time_mono_ms(); /* the lateness of its first run counts from here */
            lws_sul_schedule(t->context, 0, &t->sul, ticker_cb, (lws_usec_t)every * 1000);
        }
    }
}

size_t cn_link_timer_count(const struct lws_context *context)
{
    size_t n = 0;
    pthread_mutex_lock(&tickers_lock);
    for (const link_ticker_t *t = tickers; t; t = t->next)
        n += t->context == context && t->head;
    pthread_mutex_unlock(&tickers_lock);
    return n;
}

/* Takes the link off its ticker; the last link out frees the ticker. */
static void tick_leave(cn_link_t *l)
{
    link_ticker_t *t = l->ticker;
    if (!t)
        return;
    if (t->walk_next == l)
        t->walk_next = l->tick_next;
    if (l->tick_prev)
        l->tick_prev->tick_next = l->tick_next;
    else
        t->head = l->tick_next;
    if (l->tick_next)
        l->tick_next->tick_prev = l->tick_prev;
    l->ticker = NULL;
    l->tick_prev = l->tick_next = NULL;
    if (!t->head && !t->walking)
        ticker_free(t);
}

static cn_link_t *link_new(struct lws_context *context, int is_client)
{
    cn_link_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->is_client = is_client;
    l->context = context;
    l->tx = malloc(TX_HEAD + CN_LINK_TX_MAX);
    l->dec = cn_frame_decoder_new();
    /* A feed of one lws read (<= CN_LINK_LWS_BUF) never yields more
     * plaintext than it carried; the frame remainder is below one frame. */
    cn_buf_init(&l->plain, CN_LINK_LWS_BUF + CN_FRAME_HEADER + CN_FRAME_MAX_PAYLOAD, 0);
    cn_buf_init(&l->hs_out, 16 * 1024, 0);
    l->last_rx_ms = l->last_tx_ms = l->started_ms = cn_time_mono_ms();
    if (!l->tx || !l->dec) {
        free(l->tx);
        cn_frame_decoder_free(l->dec);
        free(l);
        return NULL;
    }
    return l;
}

static void turn_remove(cn_link_t *l)
{
    for (cn_link_t **pp = &turn_head; *pp; pp = &(*pp)->turn_next) {
        if (*pp == l) {
            *pp = l->turn_next;
            break;
        }
    }
    l->turn_queued = 0;
    l->turn_next = NULL;
}

static void link_free(cn_link_t *l)
{
    tick_leave(l);
    if (l->turn_queued)
        turn_remove(l);
    cn_wsc_free(l->wsc);
    cn_tls_free(l->tls);
    free(l->tls_buf);
    cn_chan_free(l->chan);
    cn_mux_free(l->mux);
    cn_frame_decoder_free(l->dec);
    cn_buf_free(&l->plain);
    cn_buf_free(&l->hs_out);
    free(l->tx);
    free(l);
}

static void pending_done(cn_link_t *l);

/* Reports the close once, then frees. Called from lws's close callbacks. */
static void link_finish(cn_link_t *l)
{
    /* Streams learn first, so their owners (sockets, relays) can let go. */
    if (l->mux)
        cn_mux_abort(l->mux, CN_RST_GONE);
    if (l->srv) {
        l->srv->links--;
        pending_done(l);
    }
    if (!l->closed_reported && l->cb.on_closed) {
        l->closed_reported = 1;
        l->cb.on_closed(l, l->ctx, l->close_err, l->close_why ? l->close_why : "connection closed");
    }
    link_free(l);
}

const char *cn_link_reason_name(cn_link_reason_t reason)
{
    switch (reason) {
    case CN_LINK_CLOSED_LOCALLY:
        return "closed locally";
    case CN_LINK_CONNECT_FAILED:
        return "could not connect to the hub";
    case CN_LINK_LOST:
        return "connection lost";
    case CN_LINK_PEER_CLOSED:
        return "the peer closed the WebSocket";
    case CN_LINK_WEBSOCKET_FAILED:
        return "WebSocket failure";
    case CN_LINK_HANDSHAKE_TIMEOUT:
        return "handshake deadline passed";
    case CN_LINK_PEER_SILENT:
        return "peer silent, link presumed dead";
    case CN_LINK_CHANNEL_FAILED:
        return "secure channel failure";
    case CN_LINK_SESSION_EXHAUSTED:
        return "session too old, reconnecting";
    case CN_LINK_BAD_FRAME:
        return "malformed frame";
    case CN_LINK_STREAM_VIOLATION:
        return "stream protocol violation";
    case CN_LINK_HANDSHAKE_TOO_SLOW:
        return "handshake too slow";
    case CN_LINK_PEER_NOT_READING:
        return "peer stopped reading";
    case CN_LINK_REPLIES_UNREAD:
        return "peer does not read its replies";
    case CN_LINK_REFUSED:
        return "refused by application";
    case CN_LINK_TLS_FAILED:
        return "TLS verification of the hub failed";
    }
    return "closed";
}

cn_link_reason_t cn_link_close_reason(const cn_link_t *link)
{
    return link->close_reason;
}

/* Records why the link ends: the code, the reason and its words. */
static void set_reason(cn_link_t *l, int err, cn_link_reason_t reason)
{
    l->close_err = err;
    l->close_reason = reason;
    l->close_why = cn_link_reason_name(reason);
}

/* Marks the link failed and asks lws to close it from the event loop. */
static void link_fail(cn_link_t *l, int err, cn_link_reason_t reason)
{
    if (l->state == LINK_CLOSING)
        return;
    l->state = LINK_CLOSING;
    set_reason(l, err, reason);
    if (l->wsi)
        lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void cn_link_close(cn_link_t *link, const char *why)
{
    if (!link || link->state == LINK_CLOSING)
        return;
    if (link->state == LINK_ESTABLISHED && link->mux) {
        cn_mux_goaway(link->mux, CN_RST_NONE, "closing");
    }
    link_fail(link, 0, CN_LINK_CLOSED_LOCALLY);
    if (why) /* link_fail() just set the reason; the caller's words name it */
        link->close_why = why;
}

static pending_addr_t *addr_slot(cn_link_server_t *srv, const char *addr, int create)
{
    pending_addr_t *free_slot = NULL;
    for (unsigned i = 0; i < srv->cfg.max_pending; i++) {
        pending_addr_t *p = &srv->by_addr[i];
        if (p->count && !strcmp(p->addr, addr))
            return p;
        if (!p->count && !free_slot)
            free_slot = p;
    }
    if (create && free_slot)
        snprintf(free_slot->addr, sizeof(free_slot->addr), "%s", addr);
    return create ? free_slot : NULL;
}

static void pending_done(cn_link_t *l)
{
    if (l->srv && l->counted_pending) {
        l->counted_pending = 0;
        l->srv->pending--;
        pending_addr_t *p = addr_slot(l->srv, l->peer, 0);
        if (p && p->count)
            p->count--;
        if (l->pend_prev)
            l->pend_prev->pend_next = l->pend_next;
        else
            l->srv->pending_head = l->pend_next;
        if (l->pend_next)
            l->pend_next->pend_prev = l->pend_prev;
        l->pend_prev = l->pend_next = NULL;
    }
}

/* The clock the eviction of stale handshakes reads (cfg.clock_ms: tests). */
static uint64_t server_now(const cn_link_server_t *srv)
{
    return srv->cfg.clock_ms ? srv->cfg.clock_ms() : cn_time_mono_ms();
}

static void pending_add(cn_link_server_t *srv, cn_link_t *l)
{
    srv->pending++;
    l->counted_pending = 1;
    l->pending_ms = server_now(srv);
    pending_addr_t *pa = addr_slot(srv, l->peer, 1);
    if (pa)
        pa->count++;
    l->pend_prev = NULL;
    l->pend_next = srv->pending_head;
    if (srv->pending_head)
        srv->pending_head->pend_prev = l;
    srv->pending_head = l;
}

/* A handshake cap is full (the one of address `peer`, or the total when
 * `peer` is NULL): drops the pending handshake there that is stale (older
 * than HS_STALE_MS) with the fewest bytes received, the oldest of those,
 * so that the newcomer takes its slot. Refusing the newcomer instead let
 * slowloris handshakes sharing a real agent's address (a NAT) lock it out
 * until they were cut at 2 s, and then its backoff added seconds more.
 * A real handshake is done within a round trip or two and is never stale;
 * a burst of real ones is refused as before. Returns whether one went. */
static bool evict_stale(cn_link_server_t *srv, const char *peer)
{
    uint64_t now = server_now(srv);
    cn_link_t *victim = NULL;
    for (cn_link_t *l = srv->pending_head; l; l = l->pend_next) {
        if (l->state == LINK_CLOSING || now - l->pending_ms < HS_STALE_MS ||
            (peer && strcmp(l->peer, peer)))
            continue;
        if (!victim || l->hs_rx_bytes < victim->hs_rx_bytes ||
            (l->hs_rx_bytes == victim->hs_rx_bytes && l->pending_ms < victim->pending_ms))
            victim = l;
    }
    if (!victim)
        return false;
    cn_log_info("link: handshake from %s dropped after %llu ms (%llu bytes) for a new "
                "connection%s, at the cap of pending handshakes",
                victim->peer, (unsigned long long)(now - victim->pending_ms),
                (unsigned long long)victim->hs_rx_bytes, peer ? " from there" : "");
    link_fail(victim, CN_ETIMEOUT, CN_LINK_HANDSHAKE_TOO_SLOW);
    pending_done(victim); /* its slot is the newcomer's now, not when lws closes it */
    return true;
}

static void set_nodelay(struct lws *wsi)
{
    int one = 1;
    setsockopt(lws_get_socket_fd(wsi), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- receive path ------------------------------------------------------ */

/* Feeds decrypted plaintext to the frame decoder and the mux. */
static int pump_frames(cn_link_t *l)
{
    const uint8_t *p = cn_buf_data(&l->plain);
    size_t left = l->plain.len;
    while (left && l->state == LINK_ESTABLISHED) {
        cn_frame_t f;
        size_t used = 0;
        int rc = cn_frame_decode(l->dec, p, left, &used, &f);
        p += used;
        left -= used;
        if (rc < 0) {
            cn_log_warn("link: bad frame from peer: %s", cn_strerror(rc));
            link_fail(l, CN_EPROTO, CN_LINK_BAD_FRAME);
            return rc;
        }
        if (rc == 0)
            break;
        rc = cn_mux_input(l->mux, &f);
        if (rc == CN_EFLOW) {
            cn_log_warn("link: peer leaves its replies unread (%s frame), closing",
                        cn_frame_type_name(f.type));
            link_fail(l, CN_EFLOW, CN_LINK_REPLIES_UNREAD);
            return rc;
        }
        if (rc < 0) {
            cn_log_warn("link: peer broke the stream protocol (%s frame): %s",
                        cn_frame_type_name(f.type), cn_strerror(rc));
            link_fail(l, CN_EPROTO, CN_LINK_STREAM_VIOLATION);
            return rc;
        }
    }
    cn_buf_reset(&l->plain);
    return 0;
}

static void became_established(cn_link_t *l)
{
    l->state = LINK_ESTABLISHED;
    pending_done(l);
    if (l->cb.on_established && l->cb.on_established(l, l->ctx) < 0) {
        link_fail(l, CN_EREFUSED, CN_LINK_REFUSED);
        return;
    }
    cn_link_flush(l);
}

/* Bytes of the channel's byte stream (a WebSocket payload slice). */
static int link_rx(cn_link_t *l, const uint8_t *in, size_t len)
{
    if (l->state != LINK_HANDSHAKE && l->state != LINK_ESTABLISHED)
        return 0;
    l->last_rx_ms = cn_time_mono_ms();
    if (l->state == LINK_HANDSHAKE)
        l->hs_rx_bytes += len;
    size_t before = l->plain.len;
    cn_chan_set_now(l->chan, l->last_rx_ms);
    int rc = cn_chan_feed(l->chan, in, len, &l->plain, &l->hs_out);
    if (rc < 0) {
        cn_log_warn("link: channel failure: %s", cn_strerror(rc));
        link_fail(l, rc == CN_EAUTH ? CN_EAUTH : CN_EPROTO, CN_LINK_CHANNEL_FAILED);
        return rc;
    }
    l->bytes_in += l->plain.len - before;
    if (l->hs_out.len)
        lws_callback_on_writable(l->wsi);
    if (l->state == LINK_HANDSHAKE && cn_chan_is_established(l->chan)) {
        became_established(l);
        if (l->state != LINK_ESTABLISHED)
            return 0;
    }
    if (l->state == LINK_ESTABLISHED && l->plain.len) {
        rc = pump_frames(l);
        if (rc < 0)
            return rc;
        cn_link_flush(l);
    }
    return 0;
}

static int start_handshake(cn_link_t *l)
{
    l->state = LINK_HANDSHAKE;
    if (l->is_client) {
        int rc = cn_chan_start(l->chan, &l->hs_out);
        if (rc < 0)
            return rc;
        lws_callback_on_writable(l->wsi);
    }
    return 0;
}

static int wsc_event(void *user, const cn_wsc_event_t *ev)
{
    cn_link_t *l = user;
    switch (ev->type) {
    case CN_WSC_EV_OPEN:
        return start_handshake(l);
    case CN_WSC_EV_DATA:
        return ev->len ? link_rx(l, ev->data, ev->len) : 0;
    case CN_WSC_EV_PING:
    case CN_WSC_EV_PONG:
        l->last_rx_ms = cn_time_mono_ms();
        return 0;
    case CN_WSC_EV_CLOSE:
        link_fail(l, CN_ECLOSED, CN_LINK_PEER_CLOSED);
        return 0;
    }
    return 0;
}

/* ---- transmit path ----------------------------------------------------- */

/* Fills tx payload space at `out` (cap bytes) with handshake records or
 * sealed data records. Returns bytes produced. */
static size_t fill_records(cn_link_t *l, uint8_t *out, size_t cap)
{
    size_t off = 0;
    if (l->hs_out.len) {
        size_t n = l->hs_out.len < cap ? l->hs_out.len : cap;
        memcpy(out, cn_buf_data(&l->hs_out), n);
        cn_buf_consume(&l->hs_out, n);
        return n;
    }
    if (l->state != LINK_ESTABLISHED)
        return 0;
    cn_chan_set_now(l->chan, cn_time_mono_ms());
    while (cap - off > CN_CHAN_HEADER + CN_CHAN_TAG + CN_FRAME_HEADER + 64) {
        size_t room = cap - off - CN_CHAN_HEADER - CN_CHAN_TAG;
        if (room > CN_CHAN_MAX_PLAINTEXT)
            room = CN_CHAN_MAX_PLAINTEXT;
        int n = cn_mux_output(l->mux, out + off + CN_CHAN_HEADER, room);
        if (n <= 0)
            break;
        int rec = cn_chan_seal(l->chan, out + off, (size_t)n);
        if (rec < 0) {
            link_fail(l, rec,
                      rec == CN_EEXHAUSTED ? CN_LINK_SESSION_EXHAUSTED : CN_LINK_CHANNEL_FAILED);
            return 0;
        }
        l->bytes_out += (uint64_t)n;
        off += (size_t)rec;
    }
    return off;
}

/* Client over TLS: sends one lws_write of the ciphertext waiting, if any.
 * 1 when it wrote (the caller's turn is over), 0 when none waits, -1 on a
 * write failure. */
static int tls_flush(cn_link_t *l)
{
    if (!cn_tls_pending(l->tls))
        return 0;
    size_t n = cn_tls_take(l->tls, l->tls_buf + LWS_PRE, CN_LINK_TX_MAX);
    if (lws_write(l->wsi, l->tls_buf + LWS_PRE, n, LWS_WRITE_RAW) < (int)n)
        return -1;
    l->last_tx_ms = cn_time_mono_ms();
    lws_callback_on_writable(l->wsi);
    return 1;
}

/* Client: n bytes of the WebSocket byte stream at buf (LWS_PRE headroom
 * before it) onto the socket, through TLS when the link has it. */
static int client_write(cn_link_t *l, uint8_t *buf, size_t n)
{
    l->last_tx_ms = cn_time_mono_ms();
    if (!l->tls)
        return lws_write(l->wsi, buf, n, LWS_WRITE_RAW) < (int)n ? -1 : 0;
    if (cn_tls_write(l->tls, buf, n) < 0)
        return -1;
    return tls_flush(l) < 0 ? -1 : 0;
}

static void update_rx_pause(cn_link_t *l);

static int link_writeable(cn_link_t *l)
{
    if (l->state == LINK_CLOSING)
        return -1;
    if (lws_partial_buffered(l->wsi)) {
        lws_callback_on_writable(l->wsi);
        return 0;
    }
    uint8_t *payload = l->tx + TX_HEAD;
    if (l->is_client) {
        if (l->tls) {
            /* TLS handshake records first, and ciphertext left over. */
            int rc = tls_flush(l);
            if (rc)
                return rc < 0 ? -1 : 0;
            if (!cn_tls_ready(l->tls))
                return 0;
        }
        if (l->state == LINK_UPGRADING && !l->upgrade_sent) {
            size_t n;
            const uint8_t *req = cn_wsc_request(l->wsc, &n);
            memcpy(l->tx + LWS_PRE, req, n);
            l->upgrade_sent = 1;
            return client_write(l, l->tx + LWS_PRE, n);
        }
        if (cn_wsc_pending_len(l->wsc)) {
            /* Control frames go alone, never inside a data frame. */
            size_t n = cn_wsc_take_pending(l->wsc, l->tx + LWS_PRE, CN_LINK_TX_MAX);
            if (client_write(l, l->tx + LWS_PRE, n) < 0)
                return -1;
            lws_callback_on_writable(l->wsi);
            return 0;
        }
    }
    size_t n = fill_records(l, payload, l->tls ? CN_LINK_TX_MAX - TLS_ROOM : CN_LINK_TX_MAX);
    if (l->state == LINK_CLOSING)
        return -1;
    if (n) {
        int rc;
        if (l->is_client) {
            uint8_t *frame;
            size_t flen;
            if (cn_wsc_wrap(payload, n, CN_WSC_MAX_HEADER, CN_WSC_OP_BINARY, &frame, &flen) < 0)
                return -1;
            rc = client_write(l, frame, flen);
        } else {
            rc = lws_write(l->wsi, payload, n, LWS_WRITE_BINARY) < (int)n ? -1 : 0;
        }
        if (rc < 0)
            return -1;
        l->last_tx_ms = cn_time_mono_ms();
    }
    if (l->hs_out.len || (l->state == LINK_ESTABLISHED && cn_mux_has_output(l->mux)))
        lws_callback_on_writable(l->wsi);
    if (l->state == LINK_ESTABLISHED && l->rx_paused)
        update_rx_pause(l); /* replies went out: read again */
    return 0;
}

int cn_link_rx_pause(int paused, size_t rx_buffered, size_t rx_high, size_t replies,
                     size_t reply_high)
{
    if (!paused)
        return rx_buffered > rx_high || replies > reply_high;
    return !(rx_buffered < rx_high / 2 && replies < reply_high / 2);
}

/* Pauses or resumes reading the WebSocket: unread stream bytes and unread
 * replies (a peer flooding OPENs or PINGs without reading) both count. */
static void update_rx_pause(cn_link_t *l)
{
    int want = cn_link_rx_pause(l->rx_paused, cn_mux_buffered_bytes(l->mux), RX_HIGH_WATER,
                                cn_mux_reply_bytes(l->mux), cn_mux_reply_high(l->mux));
    if (want != l->rx_paused) {
        l->rx_paused = want;
        lws_rx_flow_control(l->wsi, !want);
    }
}

void cn_link_flush(cn_link_t *link)
{
    if (!link || link->state != LINK_ESTABLISHED || !link->wsi)
        return;
    int err = cn_mux_error(link->mux);
    if (err == CN_EFLOW) {
        /* An application call (reject, accept, read) queued a reply past the
         * bound: the peer does not read what it provokes. */
        cn_log_warn("link: peer leaves its replies unread, closing");
        link_fail(link, err, CN_LINK_REPLIES_UNREAD);
        return;
    }
    if (err && err != CN_ECLOSED) {
        link_fail(link, err, CN_LINK_STREAM_VIOLATION); /* out of memory for a reply */
        return;
    }
    if (cn_mux_has_output(link->mux)) {
        if (link->flush_after_turn && !link->tls) {
            /* Written at the end of this loop turn (cn_link_flush_turn()),
             * with whatever else the turn queued: no POLLOUT round. */
            if (!link->turn_queued) {
                link->turn_queued = 1;
                link->turn_next = turn_head;
                turn_head = link;
            }
        } else {
            lws_callback_on_writable(link->wsi);
        }
    }
    update_rx_pause(link);
}

int cn_link_flushes_after_turn(const cn_link_t *link)
{
    return link && link->flush_after_turn;
}

void cn_link_flush_turn(void)
{
    while (turn_head) {
        cn_link_t *l = turn_head;
        turn_head = l->turn_next;
        l->turn_queued = 0;
        l->turn_next = NULL;
        if (l->state != LINK_ESTABLISHED || !l->wsi || !cn_mux_has_output(l->mux))
            continue;
        /* lws_write() outside the writeable callback is safe while nothing
         * of ours is buffered in lws (a partial write): then wait for POLLOUT
         * as usual. link_writeable() asks for POLLOUT itself when more
         * output is left than one write takes. */
        if (lws_partial_buffered(l->wsi)) {
            lws_callback_on_writable(l->wsi);
            continue;
        }
        if (link_writeable(l) < 0)
            link_fail(l, CN_EIO, CN_LINK_LOST);
    }
}

/* ---- timers ------------------------------------------------------------- */

/* One tick of one link, from its ticker. */
static void link_tick(cn_link_t *l, bool judge)
{
    uint64_t now = cn_time_mono_ms();
    if (l->state == LINK_CLOSING)
        return;
    if (l->state != LINK_ESTABLISHED) {
        if (!judge)
            return;
        switch (cn_link_handshake_check(&l->timing, now, l->started_ms, l->hs_rx_bytes,
                                        !l->is_client)) {
        case CN_LINK_HS_DEADLINE:
            if (!l->is_client)
                cn_log_info("link: handshake from %s not done within %u ms, dropped", l->peer,
                            l->timing.handshake_ms);
            link_fail(l, CN_ETIMEOUT, CN_LINK_HANDSHAKE_TIMEOUT);
            return;
        case CN_LINK_HS_TOO_SLOW:
            cn_log_info("link: handshake from %s too slow (%llu bytes in %llu ms), dropped",
                        l->peer, (unsigned long long)l->hs_rx_bytes,
                        (unsigned long long)(now - l->started_ms));
            link_fail(l, CN_ETIMEOUT, CN_LINK_HANDSHAKE_TOO_SLOW);
            return;
        case CN_LINK_HS_OK:
            break;
        }
    } else {
        int waiting = cn_mux_has_output(l->mux) || (l->wsi && lws_partial_buffered(l->wsi));
        int piling = cn_mux_reply_bytes(l->mux) > cn_mux_reply_high(l->mux);
        if (judge && cn_link_stalled(&l->timing, now, l->last_tx_ms, waiting, piling)) {
            cn_log_warn("link: peer read nothing for %llu ms with %zu bytes waiting, closing",
                        (unsigned long long)(now - l->last_tx_ms), cn_mux_pending_bytes(l->mux));
            link_fail(l, CN_ETIMEOUT, CN_LINK_PEER_NOT_READING);
            return;
        }
        switch (cn_link_liveness(&l->timing, now, l->last_rx_ms, l->last_tx_ms, l->last_ping_ms,
                                 l->rx_paused)) {
        case CN_LINK_DEAD:
            if (!judge) { /* a late tick: ping (below), judge on the next */
                if (cn_mux_ping(l->mux, ++l->ping_seq) == 0)
                    l->last_ping_ms = now;
                lws_callback_on_writable(l->wsi);
                break;
            }
            cn_log_warn("link: peer silent for %llu ms, link presumed dead",
                        (unsigned long long)(now - l->last_rx_ms));
            link_fail(l, CN_ETIMEOUT, CN_LINK_PEER_SILENT);
            return;
        case CN_LINK_PING:
            if (cn_mux_ping(l->mux, ++l->ping_seq) == 0)
                l->last_ping_ms = now;
            lws_callback_on_writable(l->wsi);
            break;
        case CN_LINK_ALIVE:
            break;
        }
    }
}

enum cn_link_handshake cn_link_handshake_check(const cn_link_timing_t *timing, uint64_t now,
                                               uint64_t started, uint64_t rx_bytes, int server)
{
    cn_link_timing_t t = *timing;
    timing_defaults(&t);
    uint64_t age = now > started ? now - started : 0;
    if (age > t.handshake_ms)
        return CN_LINK_HS_DEADLINE;
    if (server && age > t.handshake_grace_ms &&
        rx_bytes * 1000 < (uint64_t)t.handshake_min_rate * age)
        return CN_LINK_HS_TOO_SLOW;
    return CN_LINK_HS_OK;
}

int cn_link_stalled(const cn_link_timing_t *timing, uint64_t now, uint64_t last_tx, int tx_waiting,
                    int replies_piling)
{
    cn_link_timing_t t = *timing;
    timing_defaults(&t);
    uint64_t limit = (uint64_t)t.stall_ms * (replies_piling ? 1u : STALL_QUIET_FACTOR);
    return tx_waiting && now > last_tx && now - last_tx > limit;
}

void cn_link_addr_key(const char *addr, char out[static CN_LINK_ADDR_KEY_SIZE])
{
    struct in6_addr a6;
    const char *a = addr ? addr : "";
    /* lws may hand out IPv4 peers as IPv4-mapped IPv6 ("::ffff:1.2.3.4"). */
    if (!strncasecmp(a, "::ffff:", 7) && strchr(a + 7, '.'))
        a += 7;
    if (strchr(a, ':') && inet_pton(AF_INET6, a, &a6) == 1) {
        memset(a6.s6_addr + 8, 0, 8);
        char txt[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &a6, txt, sizeof(txt));
        snprintf(out, CN_LINK_ADDR_KEY_SIZE, "%s/64", txt);
        return;
    }
    snprintf(out, CN_LINK_ADDR_KEY_SIZE, "%s", a);
}

enum cn_link_liveness cn_link_liveness(const cn_link_timing_t *timing, uint64_t now,
                                       uint64_t last_rx, uint64_t last_tx, uint64_t last_ping,
                                       int rx_paused)
{
    cn_link_timing_t t = *timing;
    timing_defaults(&t);
    uint64_t silent = now > last_rx ? now - last_rx : 0;
    /* We stopped reading (the application is slow): the peer's silence is
     * ours, not its death. Keep the keepalive going only. */
    if (!rx_paused) {
        if (silent > t.dead_after_ms)
            return CN_LINK_DEAD;
        /* Missed traffic: a live peer would have sent something by now
         * (its own keepalive). Probe it, tightly, until it answers. */
        if (silent >= t.ping_interval_ms && (!last_ping || now - last_ping >= t.probe_interval_ms))
            return CN_LINK_PING;
    }
    if (now - last_tx >= t.ping_interval_ms)
        return CN_LINK_PING;
    return CN_LINK_ALIVE;
}

/* ---- client ------------------------------------------------------------ */

/* WebSocket bytes from the hub (after TLS, when there is TLS). */
static void client_ws_rx(cn_link_t *l, const uint8_t *in, size_t len)
{
    if (cn_wsc_feed(l->wsc, in, len, wsc_event, l) < 0) {
        cn_log_warn("link: WebSocket failure: %s", cn_wsc_error_detail(l->wsc));
        link_fail(l,
                  cn_wsc_state(l->wsc) == CN_WSC_FAILED && l->state == LINK_UPGRADING ? CN_EREFUSED
                                                                                      : CN_EPROTO,
                  CN_LINK_WEBSOCKET_FAILED);
        return;
    }
    if (cn_wsc_pending_len(l->wsc))
        lws_callback_on_writable(l->wsi);
}

/* The TLS session failed: the reason, with cn_tls's line as its words. */
static void tls_failed(cn_link_t *l)
{
    if (l->state == LINK_CLOSING)
        return;
    cn_tls_failure(l->tls, l->tls_why, sizeof(l->tls_why));
    link_fail(l, CN_EAUTH, CN_LINK_TLS_FAILED);
    l->close_why = l->tls_why;
}

/* Ciphertext from the hub: advance the handshake, then hand what decrypts
 * to the WebSocket parser, a buffer at a time. */
static void client_tls_rx(cn_link_t *l, const uint8_t *in, size_t len)
{
    bool was_ready = cn_tls_ready(l->tls);
    l->last_rx_ms = cn_time_mono_ms();
    if (cn_tls_feed(l->tls, in, len) < 0) {
        link_fail(l, CN_ENOMEM, CN_LINK_LOST);
        return;
    }
    while (l->state != LINK_CLOSING) {
        int n = cn_tls_read(l->tls, l->tls_buf, CN_LINK_TX_MAX);
        if (n == CN_ECLOSED) {
            link_fail(l, CN_ECLOSED, CN_LINK_PEER_CLOSED);
            return;
        }
        if (n < 0) {
            tls_failed(l);
            return;
        }
        if (!was_ready && cn_tls_ready(l->tls)) {
            was_ready = true; /* verified: the upgrade request may go */
            lws_callback_on_writable(l->wsi);
        }
        if (n == 0)
            break;
        client_ws_rx(l, l->tls_buf, (size_t)n);
    }
    if (cn_tls_pending(l->tls))
        lws_callback_on_writable(l->wsi);
}

static int client_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    cn_link_t *l = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (!l)
            return 0;
        lws_set_opaque_user_data(wsi, NULL);
        if (l->connecting_sync) {
            /* cn_link_connect() reports this one itself. */
            l->sync_failed = 1;
            return 0;
        }
        if (!l->close_err)
            set_reason(l, CN_EIO, CN_LINK_CONNECT_FAILED);
        l->wsi = NULL;
        link_finish(l);
        return 0;
    case LWS_CALLBACK_RAW_CONNECTED:
    case LWS_CALLBACK_RAW_ADOPT:
        if (!l)
            return -1;
        set_nodelay(wsi);
        l->state = LINK_UPGRADING;
        l->last_rx_ms = l->last_tx_ms = cn_time_mono_ms();
        /* Over TLS the handshake goes first; the upgrade waits for it. */
        if (l->tls_ctx && !l->tls && !(l->tls = cn_tls_new(l->tls_ctx, l->host))) {
            link_fail(l, CN_ENOMEM, CN_LINK_CONNECT_FAILED);
            return 0;
        }
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_RAW_RX:
        if (!l || l->state == LINK_CLOSING)
            return 0;
        if (l->tls)
            client_tls_rx(l, in, len);
        else
            client_ws_rx(l, in, len);
        return 0;
    case LWS_CALLBACK_RAW_WRITEABLE:
        if (!l)
            return -1;
        return link_writeable(l);
    case LWS_CALLBACK_RAW_CLOSE:
        if (!l)
            return 0;
        lws_set_opaque_user_data(wsi, NULL);
        if (!l->close_err && l->state != LINK_CLOSING && l->tls && !cn_tls_ready(l->tls)) {
            /* Closed in the middle of the TLS handshake: a plain-HTTP
             * port, or a peer that refused our hello. */
            cn_tls_failure_line(CN_TLS_HANDSHAKE, l->host, NULL, l->tls_why, sizeof(l->tls_why));
            set_reason(l, CN_EAUTH, CN_LINK_TLS_FAILED);
            l->close_why = l->tls_why;
        }
        if (!l->close_err && l->state != LINK_CLOSING)
            set_reason(l, CN_EIO, CN_LINK_LOST);
        l->wsi = NULL;
        link_finish(l);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols client_protocol = {
    .name = CN_LINK_CLIENT_PROTOCOL,
    .callback = client_callback,
    .per_session_data_size = 0,
    .rx_buffer_size = CN_LINK_LWS_BUF,
    .tx_packet_size = CN_LINK_LWS_BUF,
};

const struct lws_protocols *cn_link_client_protocol(void)
{
    return &client_protocol;
}

cn_link_t *cn_link_connect(struct lws_context *context, struct lws_vhost *vh,
                           const cn_link_client_config_t *cfg, char *err, size_t errlen)
{
    int rc = CN_EINVAL;
    const char *why = "invalid configuration";
    char hostport[300];
    cn_link_t *l = NULL;
    if (!context || !vh || !cfg || !cfg->host || !cfg->path || cfg->port <= 0 ||
        cfg->port > 65535 || !cfg->static_sk || !cfg->hub_pk)
        goto fail;
    rc = CN_ENOMEM;
    why = "out of memory";
    l = link_new(context, 1);
    if (!l)
        goto fail;
    l->cb = cfg->cb;
    l->ctx = cfg->ctx;
    l->user = cfg->user;
    l->timing = cfg->timing;
    l->flush_after_turn = cfg->flush_after_turn;
    timing_defaults(&l->timing);
    l->tls_ctx = cfg->tls;
    snprintf(l->host, sizeof(l->host), "%s", cfg->host);
    if (l->tls_ctx && !(l->tls_buf = malloc(LWS_PRE + CN_LINK_TX_MAX)))
        goto fail;

    snprintf(hostport, sizeof(hostport), "%s:%d", cfg->host, cfg->port);
    cn_wsc_config_t wc = {
        .host = cfg->host_header ? cfg->host_header : hostport,
        .path = cfg->path,
        .subprotocol = CN_LINK_SUBPROTOCOL,
    };
    l->wsc = cn_wsc_new(&wc, err, errlen);
    if (!l->wsc)
        goto fail_reported;

    cn_chan_config_t cc = {
        .role = CN_CHAN_INITIATOR,
        .local_private = cfg->static_sk,
        .remote_public = cfg->hub_pk,
        .binding = cfg->binding,
        .app_payload = cfg->payload,
        .app_payload_len = cfg->payload_len,
        .cipher = cfg->cipher,
        .rekey_bytes = cfg->rekey_bytes,
        .rekey_seconds = cfg->rekey_seconds,
        .now_ms = cn_time_mono_ms(),
    };
    l->chan = cn_chan_new(&cc, err, errlen);
    if (!l->chan)
        goto fail_reported;

    cn_mux_config_t mc = cfg->mux;
    mc.initiator = 1;
    if (cfg->mux_cb)
        l->mux_cb = *cfg->mux_cb;
    why = "invalid multiplexer configuration";
    l->mux = cn_mux_new(&mc, &l->mux_cb, l);
    if (!l->mux)
        goto fail;

    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = l->context;
    ci.vhost = vh;
    ci.address = cfg->host;
    ci.port = cfg->port;
    ci.host = wc.host;
    ci.origin = wc.host;
    ci.method = "RAW";
    ci.local_protocol_name = CN_LINK_CLIENT_PROTOCOL;
    ci.opaque_user_data = l;
    ci.pwsi = &l->wsi;
    l->state = LINK_CONNECTING;
    schedule_tick(l);
    /* An early failure may or may not come through CLIENT_CONNECTION_ERROR
     * (lws-notes.md); either way it is reported here, not as on_closed. */
    l->connecting_sync = 1;
    struct lws *w = lws_client_connect_via_info(&ci);
    l->connecting_sync = 0;
    if (!w || l->sync_failed) {
        why = cn_link_reason_name(CN_LINK_CONNECT_FAILED);
        goto fail;
    }
    return l;
fail:
    cn_errf(rc, err, errlen, "link: %s", why);
fail_reported:
    if (l)
        link_free(l);
    return NULL;
}

/* ---- server ------------------------------------------------------------ */

static int server_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    cn_link_t **slot = user;
    cn_link_t *l = slot ? *slot : NULL;
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    cn_link_server_t *srv = proto ? proto->user : NULL;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[128];
        if (!srv)
            return -1;
        if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 || strcmp(uri, srv->path))
            return -1; /* not our endpoint */
        /* The link cap first: a handshake evicted below would still hold
         * its link until lws closes it, so the newcomer would be refused
         * anyway, for nothing. */
        if (srv->links >= srv->cfg.max_links) {
            cn_log_warn("link: refusing agent connection, %u links open", srv->links);
            return -1;
        }
        char addr[64] = "?", peer[CN_LINK_ADDR_KEY_SIZE];
        lws_get_peer_simple(wsi, addr, sizeof(addr));
        cn_link_addr_key(addr, peer);
        /* Then the address's cap: its victim also frees a slot of the
         * total, so one newcomer costs one handshake, one from its own
         * address (checking the total first dropped a stale handshake of
         * another address, then one of this address as well). */
        pending_addr_t *p = addr_slot(srv, peer, 0);
        if (p && p->count >= srv->cfg.max_pending_per_addr && !evict_stale(srv, peer)) {
            cn_log_warn("link: refusing agent connection from %s, %u handshakes pending there",
                        peer, p->count);
            return -1;
        }
        if (srv->pending >= srv->cfg.max_pending && !evict_stale(srv, NULL)) {
            cn_log_warn("link: refusing agent connection, %u handshakes pending", srv->pending);
            return -1;
        }
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED: {
        if (!srv || !slot)
            return -1;
        l = link_new(lws_get_context(wsi), 0);
        if (!l)
            return -1;
        l->srv = srv;
        l->wsi = wsi;
        l->cb = srv->cfg.cb;
        l->ctx = srv->cfg.ctx;
        l->timing = srv->cfg.timing;
        l->flush_after_turn = srv->cfg.flush_after_turn;
        timing_defaults(&l->timing);
        cn_chan_config_t cc = {
            .role = CN_CHAN_RESPONDER,
            .local_private = srv->sk,
            .binding = srv->binding,
            .cipher = srv->cfg.cipher,
            .now_ms = cn_time_mono_ms(),
        };
        l->chan = cn_chan_new(&cc, NULL, 0);
        cn_mux_config_t mc = srv->cfg.mux;
        mc.initiator = 0;
        l->mux_cb = srv->mux_cb;
        if (l->chan)
            l->mux = cn_mux_new(&mc, &l->mux_cb, l);
        if (!l->chan || !l->mux) {
            link_free(l);
            return -1;
        }
        *slot = l;
        srv->links++;
        char addr[64] = "?";
        lws_get_peer_simple(wsi, addr, sizeof(addr));
        cn_link_addr_key(addr, l->peer);
        pending_add(srv, l);
        set_nodelay(wsi);
        l->state = LINK_HANDSHAKE;
        schedule_tick(l);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        if (!l || l->state == LINK_CLOSING)
            return 0;
        link_rx(l, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!l)
            return -1;
        return link_writeable(l);
    case LWS_CALLBACK_CLOSED:
        if (!l)
            return 0;
        *slot = NULL;
        if (!l->close_err && l->state != LINK_CLOSING)
            set_reason(l, CN_EIO, CN_LINK_LOST);
        l->wsi = NULL;
        link_finish(l);
        return 0;
    default:
        return 0;
    }
}

cn_link_server_t *cn_link_server_new(const cn_link_server_config_t *cfg, char *err, size_t errlen)
{
    cn_link_server_t *s = NULL;
    int rc = CN_EINVAL;
    if (!cfg || !cfg->static_sk)
        goto fail;
    rc = CN_ENOMEM;
    s = calloc(1, sizeof(*s));
    if (!s)
        goto fail;
    s->cfg = *cfg;
    s->path = strdup(cfg->path ? cfg->path : "/agent");
    s->binding = strdup(cfg->binding ? cfg->binding : "");
    if (!s->path || !s->binding)
        goto fail;
    memcpy(s->sk, cfg->static_sk, 32);
    if (cfg->mux_cb)
        s->mux_cb = *cfg->mux_cb;
    s->cfg.path = s->path;
    s->cfg.binding = s->binding;
    s->cfg.static_sk = s->sk;
    s->cfg.mux_cb = &s->mux_cb;
    if (!s->cfg.max_pending)
        s->cfg.max_pending = 256;
    if (!s->cfg.max_pending_per_addr)
        s->cfg.max_pending_per_addr = 16;
    if (!s->cfg.max_links)
        s->cfg.max_links = DEF_MAX_LINKS;
    s->by_addr = calloc(s->cfg.max_pending, sizeof(*s->by_addr));
    if (!s->by_addr)
        goto fail;
    return s;
fail:
    cn_link_server_free(s);
    cn_errf(rc, err, errlen, "link server: %s", cn_strerror(rc));
    return NULL;
}

void cn_link_server_free(cn_link_server_t *srv)
{
    if (!srv)
        return;
    free(srv->path);
    free(srv->binding);
    free(srv->by_addr);
    sodium_memzero(srv->sk, sizeof(srv->sk));
    free(srv);
}

struct lws_protocols cn_link_server_protocol(cn_link_server_t *srv)
{
    struct lws_protocols p;
    memset(&p, 0, sizeof(p));
    p.name = CN_LINK_SUBPROTOCOL;
    p.callback = server_callback;
    p.per_session_data_size = sizeof(cn_link_t *);
    p.rx_buffer_size = CN_LINK_LWS_BUF;
    p.tx_packet_size = CN_LINK_LWS_BUF;
    p.user = srv;
    return p;
}

unsigned cn_link_server_count(const cn_link_server_t *srv)
{
    return srv ? srv->links : 0;
}

unsigned cn_link_server_pending(const cn_link_server_t *srv, uint64_t *rx_bytes)
{
    uint64_t sum = 0;
    for (const cn_link_t *l = srv ? srv->pending_head : NULL; l; l = l->pend_next)
        sum += l->hs_rx_bytes;
    if (rx_bytes)
        *rx_bytes = sum;
    return srv ? srv->pending : 0;
}

/* ---- accessors ----------------------------------------------------------- */

struct lws_context *cn_link_context(const cn_link_t *link)
{
    return link->context;
}

cn_mux_t *cn_link_mux(cn_link_t *link)
{
    return link->mux;
}

int cn_link_is_established(const cn_link_t *link)
{
    return link && link->state == LINK_ESTABLISHED;
}

const uint8_t *cn_link_peer_key(const cn_link_t *link)
{
    return link->chan && cn_chan_is_established(link->chan) ? cn_chan_remote_static(link->chan)
                                                            : NULL;
}

const uint8_t *cn_link_peer_payload(const cn_link_t *link, size_t *len)
{
    if (!link->chan || link->is_client || !cn_chan_is_established(link->chan)) {
        *len = 0;
        return NULL;
    }
    return cn_chan_app_payload(link->chan, len);
}

const char *cn_link_cipher(const cn_link_t *link)
{
    return link->chan ? cn_chan_cipher_name(link->chan) : "none";
}

void *cn_link_user(const cn_link_t *link)
{
    return link->user;
}

void cn_link_set_user(cn_link_t *link, void *user)
{
    link->user = user;
}

uint64_t cn_link_bytes_in(const cn_link_t *link)
{
    return link->bytes_in;
}

uint64_t cn_link_bytes_out(const cn_link_t *link)
{
    return link->bytes_out;
}
