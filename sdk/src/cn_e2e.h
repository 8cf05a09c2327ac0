/* cn_e2e: the end-to-end layer of reach streams, sans-IO.
 *
 * A reach stream runs from the reaching agent through the hub to the
 * exposing agent. Inside it the two agents run their own secure channel
 * (cn_chan: Noise_XK with fresh ephemerals on both sides, then AEAD
 * records), so the hub relays records it cannot read. The reaching agent is
 * the initiator and pins the exposing agent's static key; the exposing agent
 * learns the initiator's key in message 3 and accepts only the key the hub
 * vouched for when it opened the stream. Both sides bind the tunnel id they
 * believe the stream is for into the prologue, so a hub that routes a stream
 * to another tunnel (or swaps a key) makes the handshake fail.
 * docs/protocol.md ("End-to-end encryption of reach streams") has the design.
 *
 * The caller moves bytes: what arrives on the stream goes to cn_e2e_feed(),
 * the decrypted bytes wait in cn_e2e_plain() for the socket; records and
 * handshake messages wait in cn_e2e_wire() for stream credit. Both buffers
 * are bounded (about one record each). Any failure is final (every later
 * call returns the same code).
 *
 * Ownership: cn_e2e_new() copies the keys and the tunnel id. Not
 * thread-safe. */
#ifndef CN_E2E_H
#define CN_E2E_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cn_buf.h"

#define CN_E2E_KEY_LEN 32
#define CN_E2E_MAX_REF 64 /* bytes of the tunnel id bound into the prologue */
/* The largest plaintext one cn_e2e_seal_space() offers (one record). */
#define CN_E2E_MAX_SEAL 65536u
/* The most stream bytes one cn_e2e_feed() takes (the caller feeds in slices). */
#define CN_E2E_MAX_FEED 65536u

enum cn_e2e_role {
    CN_E2E_INITIATOR = 0, /* the reaching agent */
    CN_E2E_RESPONDER = 1, /* the exposing agent */
};

typedef struct cn_e2e_config {
    int role;                     /* enum cn_e2e_role */
    const uint8_t *local_private; /* this agent's static X25519 private key (32 bytes) */
    /* The peer's static public key as the hub vouched for it: the exposing
     * agent's (initiator; pinned) or the reaching agent's (responder; the
     * only key message 3 may carry). 32 bytes, required. */
    const uint8_t *peer_public;
    const char *tunnel_id; /* the tunnel this side believes the stream is for */
} cn_e2e_config_t;

typedef struct cn_e2e cn_e2e_t;

/* NULL with one line in err (optional) on a bad configuration or no memory. */
cn_e2e_t *cn_e2e_new(const cn_e2e_config_t *cfg, char *err, size_t errlen);
/* Wipes keys and frees; NULL is fine. */
void cn_e2e_free(cn_e2e_t *e);

/* Initiator: queues handshake message 1 in the wire buffer (call once the
 * stream is open). Responder: nothing. 0 or a failure code. */
int cn_e2e_start(cn_e2e_t *e);
/* Takes up to CN_E2E_MAX_FEED stream bytes (split anywhere). Handshake
 * replies go to the wire buffer, decrypted bytes to the plain buffer. Call
 * it only while the plain buffer is empty (that is what bounds it).
 * 0, or: CN_EAUTH (a bad tag or a peer key other than the vouched one's
 * handshake: a swapped key or tunnel), CN_EREFUSED (the initiator's key is
 * not the vouched one), CN_EPROTO, CN_ETOOBIG, ... */
int cn_e2e_feed(cn_e2e_t *e, const uint8_t *in, size_t len);
/* The stream's FIN arrived. 0 when the peer had sent its authenticated
 * close (a clean end), else CN_EPROTO/CN_ECLOSED: the stream was cut, and
 * the caller must not pass it on as a clean EOF. */
int cn_e2e_eof(cn_e2e_t *e);
/* True once the handshake is done on this side: data may be sealed. */
bool cn_e2e_ready(const cn_e2e_t *e);
/* The failure code, or 0. */
int cn_e2e_error(const cn_e2e_t *e);

/* Sealing without a copy: space for up to *cap plaintext bytes inside the
 * wire buffer (recv() into it), then cn_e2e_seal_commit(n) seals them as one
 * record. NULL with *cap 0 when not ready or when the wire buffer still
 * holds bytes (drain it to the stream first: that bounds it). */
uint8_t *cn_e2e_seal_space(cn_e2e_t *e, size_t *cap);
/* Seals n (<= cap) bytes written into the space: 0 or a failure code. */
int cn_e2e_seal_commit(cn_e2e_t *e, size_t n);
/* Queues the authenticated CLOSE record (this side sends no more). */
int cn_e2e_close(cn_e2e_t *e);

/* Bytes waiting to go onto the stream (records, handshake messages);
 * consume them with cn_buf_consume() as the stream accepts them. */
cn_buf_t *cn_e2e_wire(cn_e2e_t *e);
/* Decrypted bytes waiting for the socket; consume as they are sent. */
cn_buf_t *cn_e2e_plain(cn_e2e_t *e);

/* Plaintext bytes sealed and opened so far. */
uint64_t cn_e2e_bytes_sealed(const cn_e2e_t *e);
uint64_t cn_e2e_bytes_opened(const cn_e2e_t *e);

#endif
