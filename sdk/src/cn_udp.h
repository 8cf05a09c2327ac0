/* cn_udp: UDP tunnels over streams.
 *
 * A flow is one client address and port; each flow is one stream. On the
 * listening side (the hub's public UDP port, or the reaching agent's local
 * UDP port) a bound socket demultiplexes datagrams by sender into flows,
 * opening a stream for each new sender on the link that `route` names; on
 * the target side (the exposing agent) each stream gets its own connected
 * socket to the target (cn_udp_dial). Flows end after `idle_ms` without a
 * datagram either way, when the link dies, or when the listener closes.
 *
 * Two carriages:
 *  - plain (public UDP tunnels, CN_KIND_UDP): each datagram is one DATAGRAM
 *    frame; the mux drops it (like UDP) when its datagram queue is full.
 *  - end-to-end (reach, CN_KIND_RELAY with `e2e`): each datagram is one
 *    cn_e2e record holding [u16 length][datagram], on the stream's reliable
 *    byte stream (the hub only relays bytes). A datagram that arrives while
 *    the previous record still waits for stream credit is dropped.
 * Limits (docs/protocol.md, "UDP tunnels"): datagrams up to
 * CN_UDP_MAX_DATAGRAM bytes (a larger one cannot be received whole and is
 * dropped with a debug line); at most `max_flows` flows per listener (a
 * datagram from a new sender beyond that is dropped and logged once per
 * second).
 *
 * Every call runs on the lws service thread. Ownership: a listener frees
 * itself after cn_udp_listener_close() once its socket and flows are gone;
 * a dialed flow frees itself when its stream closes. */
#ifndef CN_UDP_H
#define CN_UDP_H

#include <stddef.h>
#include <stdint.h>

#include "cn_link.h"

struct lws_vhost;
struct lws_protocols;
struct cn_e2e_config;

#define CN_UDP_MAX_DATAGRAM 65507u /* the largest IPv4 UDP payload */
#define CN_UDP_DEFAULT_IDLE_MS 60000u
#define CN_UDP_DEFAULT_MAX_FLOWS 1024u

typedef struct cn_udp_listener cn_udp_listener_t;

typedef struct cn_udp_listener_config {
    uint8_t kind;       /* CN_KIND_UDP (public) or CN_KIND_RELAY (reach) */
    const char *ref;    /* the tunnel id, sent as each stream's OPEN ref (copied) */
    uint32_t idle_ms;   /* 0 = CN_UDP_DEFAULT_IDLE_MS */
    unsigned max_flows; /* 0 = CN_UDP_DEFAULT_MAX_FLOWS */
    const char *name;   /* for log lines (copied); NULL = ref */
    /* Reach: the end-to-end layer of every flow (borrowed for the call;
     * copied). NULL for plain flows. */
    const struct cn_e2e_config *e2e;
    /* The link a new flow goes out on, or NULL (then the datagram is
     * dropped, and `why` names the reason for the log line). */
    cn_link_t *(*route)(void *ctx, const char **why);
    void *ctx;
} cn_udp_listener_config_t;

/* The lws protocol for UDP sockets (listeners and dialed flows). */
const struct lws_protocols *cn_udp_protocol(void);

/* Binds a UDP socket on host:port (0 = any) and starts serving it. NULL
 * with err on failure (nothing to free). *bound_port (optional) gets the
 * port. */
cn_udp_listener_t *cn_udp_listen(struct lws_vhost *vh, const char *host, int port,
                                 const cn_udp_listener_config_t *cfg, int *bound_port, char *err,
                                 size_t errlen);
/* Resets every flow (code, e.g. CN_RST_GONE) and closes the socket. NULL
 * is fine. The listener must not be used afterwards. */
void cn_udp_listener_close(cn_udp_listener_t *l, uint32_t code);
/* Live flows. */
unsigned cn_udp_listener_flows(const cn_udp_listener_t *l);
/* Resets every flow (e.g. CN_RST_PAUSED) without closing the listener:
 * the next datagram of each sender asks `route` again. */
void cn_udp_listener_reset_flows(cn_udp_listener_t *l, uint32_t code);

/* Target side: for a stream `id` the peer opened (pending), connects a
 * UDP socket to host:port (IP literal or name, blocking getaddrinfo) and
 * accepts the stream, carrying datagrams both ways until the stream ends.
 * `e2e` (optional, borrowed) makes it the responder of an end-to-end flow.
 * 0, or a CN_E* code (then the caller rejects the stream). */
int cn_udp_dial(struct lws_vhost *vh, cn_link_t *link, uint32_t id, const char *host, int port,
                const struct cn_e2e_config *e2e, const char *label);

#endif
