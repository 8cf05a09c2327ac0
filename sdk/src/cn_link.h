/* cn_link: one agent<->hub link on libwebsockets — the thin glue that joins
 * the WebSocket transport, the secure channel (cn_chan) and the stream
 * multiplexer (cn_mux).
 *
 *   agent (client)                                hub (server)
 *   lws raw client + cn_wsc (RFC 6455 by hand)    lws WebSocket server role
 *        \__ records of cn_chan (Noise_XK) carrying cn_frame frames __/
 *                         cn_mux streams on both ends
 *
 * The WebSocket is used as a byte stream of channel records: message
 * boundaries carry no meaning, so proxies may re-fragment freely.
 *
 * Everything runs on the lws service thread of the context that owns the
 * link. The application drives streams through cn_link_mux() and must call
 * cn_link_flush() after it queued anything (writes, reads that return
 * credit, opens, resets) so the link asks lws for a writeable callback.
 *
 * Ownership: a link is owned by lws's connection. It is freed right after
 * its on_closed callback returns; the application drops every pointer to it
 * (and to its mux) there. */
#ifndef CN_LINK_H
#define CN_LINK_H

#include "cn_defs.h"

#include <stddef.h>
#include <stdint.h>

#include "cn_chan.h"
#include "cn_mux.h"

struct lws;
struct lws_context;
struct lws_vhost;
struct lws_protocols;

typedef struct cn_link cn_link_t;
typedef struct cn_link_server cn_link_server_t;

/* Subprotocol and lws protocol names. */
#define CN_LINK_SUBPROTOCOL "connect.v1"
#define CN_LINK_CLIENT_PROTOCOL "cn-link-client"
/* Bytes handed to one lws_write(): several records per WebSocket frame. */
#define CN_LINK_TX_MAX (256u * 1024)
/* lws buffer size to configure (pt_serv_buf_size, rx_buffer_size, tx_packet_size). */
#define CN_LINK_LWS_BUF (CN_LINK_TX_MAX + 64)

/* Why a link closed, as a value a caller can branch on (on_closed's `why`
 * is cn_link_reason_name() of it, or cn_link_close()'s text). */
typedef enum cn_link_reason {
    CN_LINK_CLOSED_LOCALLY = 0, /* cn_link_close() (err 0) */
    CN_LINK_CONNECT_FAILED,     /* no TCP connection to the hub (CN_EIO) */
    CN_LINK_LOST,               /* the TCP connection dropped (CN_EIO) */
    CN_LINK_PEER_CLOSED,        /* the peer closed the WebSocket (CN_ECLOSED) */
    CN_LINK_WEBSOCKET_FAILED,   /* upgrade refused (CN_EREFUSED) or bad framing (CN_EPROTO) */
    CN_LINK_HANDSHAKE_TIMEOUT,  /* upgrade + channel handshake too slow (CN_ETIMEOUT) */
    CN_LINK_PEER_SILENT,        /* nothing received for dead_after_ms (CN_ETIMEOUT) */
    CN_LINK_CHANNEL_FAILED,     /* Noise handshake or record failure (CN_EAUTH, CN_EPROTO) */
    CN_LINK_SESSION_EXHAUSTED,  /* the channel's nonces ran out: reconnect (CN_EEXHAUSTED) */
    CN_LINK_BAD_FRAME,          /* a frame that does not decode (CN_EPROTO) */
    CN_LINK_STREAM_VIOLATION,   /* the peer broke the stream protocol (CN_EPROTO) */
    CN_LINK_REFUSED,            /* on_established refused the peer (CN_EREFUSED) */
    CN_LINK_TLS_FAILED,         /* the hub's certificate failed verification, or the TLS
                                 * handshake did (CN_EAUTH); on_closed's `why` is cn_tls's
                                 * line naming the check */
    CN_LINK_HANDSHAKE_TOO_SLOW, /* server: below the handshake's minimum rate (CN_ETIMEOUT) */
    CN_LINK_PEER_NOT_READING,   /* output waited stall_ms with nothing written (CN_ETIMEOUT) */
    CN_LINK_REPLIES_UNREAD,     /* the peer provoked more replies than the bound (CN_EFLOW) */
} cn_link_reason_t;

/* A short static description ("could not connect to the hub"); never NULL. */
const char *cn_link_reason_name(cn_link_reason_t reason);

typedef struct cn_link_callbacks {
    /* The channel handshake completed. On the server, inspect
     * cn_link_peer_key() / cn_link_peer_payload() and return 0 to admit the
     * agent or a negative CN_E* code to refuse it (the link then closes and
     * no stream is ever served). On the client, return 0. */
    int (*on_established)(cn_link_t *link, void *ctx);
    /* The link is gone. `err` is 0 after cn_link_close(), else why it died
     * (CN_ETIMEOUT for a dead peer, CN_EAUTH, CN_EPROTO, CN_EIO, ...), with a
     * short static description; cn_link_close_reason() gives the reason as
     * an enum, for callers that branch on it. Before this call every open stream got
     * on_reset (CN_RST_GONE) and on_closed through the mux callbacks; the mux
     * is freed after it returns. */
    void (*on_closed)(cn_link_t *link, void *ctx, int err, const char *why);
} cn_link_callbacks_t;

/* Settings shared by both roles. Zero means "default".
 *
 * Liveness: each side sends a PING when it has sent nothing for
 * ping_interval_ms, so a live peer is never silent much longer than that.
 * Once nothing was received for ping_interval_ms ("missed traffic"), probes
 * (PINGs) go out every probe_interval_ms; a peer silent for dead_after_ms
 * while probed is declared dead. Any received byte counts as life, so a
 * busy link whose PONGs queue behind data is never dropped; nor is one we
 * stopped reading ourselves (backpressure). */
typedef struct cn_link_timing {
    uint32_t ping_interval_ms;   /* default 1000: a PING when nothing was sent for this long */
    uint32_t probe_interval_ms;  /* default 500: PINGs this often while the peer is silent */
    uint32_t dead_after_ms;      /* default 3000: close when nothing was received for this long */
    uint32_t handshake_ms;       /* default 5000: absolute deadline for upgrade + channel
                                  * handshake, from the link's creation (a trickle of bytes
                                  * does not extend it) */
    uint32_t handshake_grace_ms; /* default 2000: server links, then the minimum rate applies */
    uint32_t handshake_min_rate; /* default 32 bytes/s: a server link in handshake must have
                                  * received this many bytes per second of its age once the
                                  * grace is over (a whole handshake is ~200 bytes, sent at
                                  * once); a slowloris is dropped at the grace */
    uint32_t stall_ms;           /* default 10000: close when output is waiting, nothing could
                                  * be written for this long and the peer left more replies
                                  * unread than cn_mux_reply_high() (it provokes and does not
                                  * read: the OPEN-flood signature); 6x as long when the
                                  * replies are few (a peer that paused reading because its
                                  * own targets are slow gets time to drain them) */
} cn_link_timing_t;

/* What the liveness timer should do now (sans-IO, see cn_link_liveness()). */
enum cn_link_liveness {
    CN_LINK_ALIVE = 0, /* nothing to do */
    CN_LINK_PING = 1,  /* send a PING (keepalive or probe) */
    CN_LINK_DEAD = 2,  /* close: the peer is presumed dead */
};

/* The liveness rule for an established link, given the last time anything
 * was received, sent, and the last PING sent (0 = none), all in ms on one
 * monotonic clock, and whether we paused reading. Timing fields left 0 take
 * their defaults. Pure: exposed for tests. */
enum cn_link_liveness cn_link_liveness(const cn_link_timing_t *t, uint64_t now_ms,
                                       uint64_t last_rx_ms, uint64_t last_tx_ms,
                                       uint64_t last_ping_ms, int rx_paused);

/* The handshake rule (sans-IO, see cn_link_handshake_check()). */
enum cn_link_handshake {
    CN_LINK_HS_OK = 0,       /* still within its time and rate */
    CN_LINK_HS_DEADLINE = 1, /* the absolute deadline passed */
    CN_LINK_HS_TOO_SLOW = 2, /* below the minimum rate after the grace (server links) */
};

/* Whether a link still in handshake may go on, given when it was created,
 * now and the bytes received from the peer since; `server` applies the
 * minimum rate. Pure: exposed for tests. */
enum cn_link_handshake cn_link_handshake_check(const cn_link_timing_t *t, uint64_t now_ms,
                                               uint64_t started_ms, uint64_t rx_bytes, int server);

/* Whether an established link's peer stopped reading: output is waiting
 * (`tx_waiting`) and nothing was written since last_tx_ms for stall_ms when
 * `replies_piling` (unread replies above the high mark), else for
 * 6 x stall_ms. Such a link is closed: its queues would otherwise hold memory
 * for ever. Pure. */
int cn_link_stalled(const cn_link_timing_t *t, uint64_t now_ms, uint64_t last_tx_ms, int tx_waiting,
                    int replies_piling);

/* The read-pause rule: stop reading the link when the application left more
 * than rx_high bytes unread, or when the replies the peer provoked and did
 * not read exceed reply_high (cn_mux_reply_bytes()); resume below half of
 * both. Returns the new state given the current one. Pure. */
int cn_link_rx_pause(int paused, size_t rx_buffered, size_t rx_high, size_t replies,
                     size_t reply_high);

/* The key per-address accounting uses for a peer address (text form, IPv4
 * or IPv6, or an IPv4-mapped IPv6): an IPv4 address as itself, an IPv6
 * address as its /64 prefix ("2001:db8:1:2::/64"), since one IPv6 host
 * usually holds a whole /64. Anything else is kept as given (truncated).
 * Writes a NUL-terminated string of at most CN_LINK_ADDR_KEY_SIZE bytes. */
#define CN_LINK_ADDR_KEY_SIZE 64
void cn_link_addr_key(const char *addr, char out[static CN_LINK_ADDR_KEY_SIZE]);

/* Client (agent) side. Strings and keys are copied. */
typedef struct cn_link_client_config {
    const char *host; /* address to connect to (IP literal or name) */
    int port;
    const char *host_header;  /* Host header; NULL = "host:port" */
    const char *path;         /* WebSocket path, e.g. "/agent" */
    struct cn_tls_ctx *tls;   /* wss://: TLS under the WebSocket, verified with this trust
                               * configuration (borrowed; outlives the link) and `host` as
                               * the name; NULL = plain ws://. The Noise channel runs inside
                               * either way. */
    const char *binding;      /* hub URL bound into the channel prologue */
    const uint8_t *static_sk; /* the agent's X25519 private key (32 bytes) */
    const uint8_t *hub_pk;    /* pinned hub public key (32 bytes) */
    const uint8_t *payload;   /* handshake payload for the hub (agent id, enroll token) */
    size_t payload_len;
    int cipher;                       /* CN_CHAN_CIPHER_* preference, 0 = auto */
    uint64_t rekey_bytes;             /* 0 = channel default */
    uint32_t rekey_seconds;           /* 0 = channel default */
    cn_mux_config_t mux;              /* initiator is forced on */
    const cn_mux_callbacks_t *mux_cb; /* ctx passed to them is the cn_link_t */
    cn_link_callbacks_t cb;
    void *ctx;  /* for cb */
    void *user; /* initial cn_link_user() */
    cn_link_timing_t timing;
    int flush_after_turn; /* nonzero: the loop owner calls cn_link_flush_turn() after
                           * every service turn (see there) */
} cn_link_client_config_t;

/* Server (hub) side: one per vhost. Strings and keys are copied. */
typedef struct cn_link_server_config {
    const char *path;                 /* accepted WebSocket path, e.g. "/agent" */
    const char *binding;              /* the hub URL agents bind (must match theirs) */
    const uint8_t *static_sk;         /* the hub's X25519 private key (32 bytes) */
    int cipher;                       /* CN_CHAN_CIPHER_* preference, 0 = auto */
    unsigned max_pending;             /* links still in handshake, default 256 */
    unsigned max_pending_per_addr;    /* ... from one address (an IPv6 /64), default 16; at
                                       * either cap a handshake pending 250 ms yields its
                                       * slot to a newcomer, else the newcomer is refused */
    unsigned max_links;               /* links in any state, default 1024; each holds two
                                       * 256 KiB buffers (ours and lws's) plus its queues */
    cn_mux_config_t mux;              /* initiator is forced off */
    const cn_mux_callbacks_t *mux_cb; /* ctx passed to them is the cn_link_t */
    cn_link_callbacks_t cb;
    void *ctx;
    cn_link_timing_t timing;
    int flush_after_turn;       /* as in cn_link_client_config_t */
    uint64_t (*clock_ms)(void); /* the monotonic ms clock that dates pending handshakes for
                                 * the eviction above; NULL = cn_time_mono_ms(). For tests:
                                 * the 250 ms age without sleeping */
} cn_link_server_config_t;

/* The lws protocol entry for the raw client role; put a copy in the
 * protocols array of the vhost passed to cn_link_connect(). */
const struct lws_protocols *cn_link_client_protocol(void);

/* Starts connecting. Returns the link (owned by lws: see above) or NULL with
 * one line in err (optional); on NULL no callback fires. Failures after this
 * call arrive as on_closed. */
CN_WARN_UNUSED cn_link_t *cn_link_connect(struct lws_context *context, struct lws_vhost *vh,
                                          const cn_link_client_config_t *cfg, char *err,
                                          size_t errlen);

/* Server: creates the state behind the lws WebSocket protocol entry, or
 * NULL with one line in err (optional). */
CN_WARN_UNUSED cn_link_server_t *cn_link_server_new(const cn_link_server_config_t *cfg, char *err,
                                                    size_t errlen);
/* Frees the server; call after the lws context is destroyed. NULL is fine. */
void cn_link_server_free(cn_link_server_t *srv);
/* The lws protocol entry (name CN_LINK_SUBPROTOCOL) for this server; copy it
 * into the vhost's protocols array. */
struct lws_protocols cn_link_server_protocol(cn_link_server_t *srv);
/* Links currently open on this server (any state). */
unsigned cn_link_server_count(const cn_link_server_t *srv);
/* Links in handshake counted against the pending caps, and (rx_bytes, optional) the
 * channel bytes received from them so far. For tests. */
unsigned cn_link_server_pending(const cn_link_server_t *srv, uint64_t *rx_bytes);

/* lws timers the links of `context` hold: 1 while any link exists there
 * (they share one ticker, whatever their number: lws 4.1 inserts timers in
 * O(timers), so one timer per link made N links cost O(N^2) a second), 0
 * when none does. For tests. */
size_t cn_link_timer_count(const struct lws_context *context);

/* The lws context the link runs on. */
struct lws_context *cn_link_context(const cn_link_t *link);
/* The link's multiplexer (valid from creation until on_closed returns). */
cn_mux_t *cn_link_mux(cn_link_t *link);
/* Asks for a writeable callback when the mux has output, and resumes reading
 * when the application drained enough buffered data. Cheap; call freely. */
void cn_link_flush(cn_link_t *link);
/* Writes the output of the links created with flush_after_turn that
 * cn_link_flush() queued on this thread since the last call, each link's
 * records in one write, and asks for a writeable callback only for what
 * does not fit or cannot go now. The loop owner calls it after every
 * service turn (lws_service(), ev_run(EVRUN_ONCE)): a round trip then
 * costs no POLLOUT round (an epoll_ctl pair and a wake-up per hop) while
 * the streams that became ready in one turn still share records. A link
 * that fails here is closed through lws as from a callback. */
void cn_link_flush_turn(void);
/* Nonzero for a link created with flush_after_turn (its loop owner ends
 * every turn with cn_link_flush_turn()). */
int cn_link_flushes_after_turn(const cn_link_t *link);
/* Closes the link (GOAWAY is attempted when established); on_closed follows
 * from the event loop with err 0. Safe inside any callback, idempotent. */
void cn_link_close(cn_link_t *link, const char *why);

/* Why the link closed: valid inside on_closed (CN_LINK_CLOSED_LOCALLY
 * before). */
cn_link_reason_t cn_link_close_reason(const cn_link_t *link);

int cn_link_is_established(const cn_link_t *link);
/* The peer's static public key (32 bytes) once established, else NULL. */
const uint8_t *cn_link_peer_key(const cn_link_t *link);
/* The agent's handshake payload as seen by the server, else NULL/0. */
const uint8_t *cn_link_peer_payload(const cn_link_t *link, size_t *len);
/* Negotiated transport cipher name ("aes256gcm", "chacha20poly1305"). */
const char *cn_link_cipher(const cn_link_t *link);
/* Application pointer carried by the link. */
void *cn_link_user(const cn_link_t *link);
void cn_link_set_user(cn_link_t *link, void *user);
/* Bytes moved through the channel (plaintext) since the link was created. */
uint64_t cn_link_bytes_in(const cn_link_t *link);
uint64_t cn_link_bytes_out(const cn_link_t *link);

#endif
