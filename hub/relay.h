/* hub_relay: joins two streams on two agent links, for reach.
 *
 * The reaching agent opens a stream (CN_KIND_RELAY) on its link; the hub
 * opens one on the exposing agent's link and copies bytes between the two.
 * What travels is the agents' end-to-end records (cn_e2e.h): the relay
 * never looks inside. It is sans-IO over cn_mux: bytes move only as the
 * receiving stream grants credit (peek on one side, write on the other,
 * consume only what was written), so the hub holds at most the two streams'
 * windows and one slow side stalls only this relay. FIN is passed on as
 * FIN, RST as RST with its code, and a refusal of the exposing agent's
 * stream becomes the refusal of the reaching agent's.
 *
 * The stream user pointers are the relay's (cn_stream_ops_t dispatch, see
 * cn_pipe.h): install cn_stream_dispatch_callbacks() on both muxes.
 *
 * Ownership: the relay frees itself once both streams are closed (or the
 * first was never accepted); `done` fires just before. Callers must not
 * touch it afterwards. */
#ifndef HUB_RELAY_H
#define HUB_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "cn_mux.h"

typedef struct hub_relay hub_relay_t;

/* One link: its mux and how to ask its glue to send what was queued. */
typedef struct hub_relay_side {
    cn_mux_t *mux;
    void (*flush)(void *link); /* optional; called after queuing frames */
    void *link;
} hub_relay_side_t;

/* Called once, last; `code` is 0 for a clean end, else the CN_RST_* code
 * that ended it. */
typedef void (*hub_relay_done_fn)(void *ctx, hub_relay_t *relay, uint32_t code);

typedef struct hub_relay_config {
    hub_relay_side_t from;     /* the reaching agent's link */
    uint32_t from_id;          /* its stream, announced by on_open and not yet answered */
    hub_relay_side_t to;       /* the exposing agent's link */
    uint8_t kind;              /* of the stream opened on `to` */
    const uint8_t *ref, *meta; /* its OPEN reference and metadata (copied by the mux) */
    size_t ref_len, meta_len;
    hub_relay_done_fn done; /* optional */
    /* Optional, for tests and debugging: sees every byte relayed (dir 0:
     * reaching -> exposing agent, 1: back), borrowed for the call. */
    void (*tap)(void *ctx, int dir, const uint8_t *bytes, size_t len);
    void *ctx;
} hub_relay_config_t;

/* Opens the stream on `to`. The `from` stream is accepted when the
 * exposing agent accepts, or refused with its code. Returns NULL with *err
 * when the stream cannot even be opened (then the caller refuses `from`;
 * no callback fires). */
hub_relay_t *hub_relay_start(const hub_relay_config_t *cfg, int *err);

/* Resets both streams with `code` (e.g. CN_RST_GONE: the tunnel was
 * deleted). done follows from the muxes' closed events. Idempotent. */
void hub_relay_abort(hub_relay_t *r, uint32_t code);

/* The link of `mux` is going away (call it from the link's closed event,
 * while the mux still exists). Streams already announced to the relay
 * learnt it from the mux; this covers the reaching agent's stream while it
 * still waits for the exposing agent, which the mux cannot tell the relay
 * about: the relay forgets it and resets the other stream. May free the
 * relay (done fires). */
void hub_relay_mux_gone(hub_relay_t *r, const cn_mux_t *mux);

/* Bytes moved from the reaching agent to the exposing one, and back. */
uint64_t hub_relay_bytes_up(const hub_relay_t *r);
uint64_t hub_relay_bytes_down(const hub_relay_t *r);

#endif
