/* cn_chan: the agent <-> hub secure channel, sans-IO.
 *
 * A Noise_XK_25519_ChaChaPoly_SHA256 handshake (agent = initiator, pins the
 * hub's static key; hub = responder, learns the agent's key in message 3)
 * followed by a record layer whose AEAD (AES-256-GCM or ChaCha20-Poly1305) is
 * negotiated inside the handshake. The caller moves bytes: feed whatever the
 * WebSocket delivered, send whatever lands in send_out, seal records in place.
 * The wire format is in docs/protocol-channel.md.
 *
 * Failure is final: after any authentication failure or protocol error every
 * call returns the same negative code and cn_chan_error() says which. The glue
 * then closes the connection and reconnects with a fresh handshake.
 *
 * Not thread-safe: one channel belongs to one event loop. */
#ifndef CN_CHAN_H
#define CN_CHAN_H

#include "cn_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cn_buf.h"

#define CN_CHAN_HEADER 4            /* [u8 type][u24 big-endian body length] */
#define CN_CHAN_TAG 16              /* AEAD tag after each data record's ciphertext */
#define CN_CHAN_MAX_PLAINTEXT 65536 /* largest plaintext of one record */
#define CN_CHAN_MAX_RECORD (CN_CHAN_HEADER + CN_CHAN_MAX_PLAINTEXT + CN_CHAN_TAG)
#define CN_CHAN_MAX_APP_PAYLOAD 4096 /* the initiator's payload in handshake message 3 */
#define CN_CHAN_MAX_BINDING 2048     /* bytes of the binding string (hub URL) */
#define CN_CHAN_KEY_LEN 32
#define CN_CHAN_HASH_LEN 32
#define CN_CHAN_FINGERPRINT_SIZE 23 /* 22 base64url characters and a NUL */
#define CN_CHAN_VERSION 1

#define CN_CHAN_DEFAULT_REKEY_BYTES (1ull << 30)
#define CN_CHAN_DEFAULT_REKEY_SECONDS 600u
#define CN_CHAN_DEFAULT_MAX_AGE_SECONDS 86400u

enum cn_chan_role { CN_CHAN_INITIATOR = 0, CN_CHAN_RESPONDER = 1 };

enum cn_chan_record_type {
    CN_CHAN_REC_HANDSHAKE = 1,       /* body: one Noise handshake message */
    CN_CHAN_REC_DATA = 2,            /* body: ciphertext + tag */
    CN_CHAN_REC_DATA_KEY_UPDATE = 3, /* as DATA; then both sides rekey this direction */
    CN_CHAN_REC_CLOSE = 4,           /* body: tag of an empty plaintext */
};

/* Transport ciphers; the values are also their wire identifiers. */
enum cn_chan_cipher {
    CN_CHAN_CIPHER_AUTO = 0,             /* offer AES-256-GCM when the CPU has it, and ChaCha20 */
    CN_CHAN_CIPHER_CHACHA20POLY1305 = 1, /* offer only ChaCha20-Poly1305 */
    CN_CHAN_CIPHER_AES256GCM = 2,        /* offer only AES-256-GCM (needs CPU support) */
};

/* Which implementation seals and opens AES-256-GCM records (the wire format is
 * the same: either side may use either). ChaCha20-Poly1305 is always libsodium. */
enum cn_chan_aes_impl {
    CN_CHAN_AES_DEFAULT = 0, /* OpenSSL EVP, or what env CN_CHAN_AES=sodium|evp says */
    CN_CHAN_AES_SODIUM = 1,  /* libsodium (the fallback, and the reference) */
    CN_CHAN_AES_EVP = 2,     /* OpenSSL libcrypto's EVP AES-256-GCM (faster) */
};

enum cn_chan_state {
    CN_CHAN_HANDSHAKING = 0,
    CN_CHAN_ESTABLISHED = 1,
    CN_CHAN_CLOSED = 2, /* the peer sent an authenticated CLOSE */
    CN_CHAN_FAILED = 3, /* see cn_chan_error() */
};

/* Responder only: decides whether an initiator may use the channel, before any
 * of its data is delivered. Gets the initiator's static public key and its
 * message 3 payload (borrowed for the call). Returns 0 to accept or a negative
 * CN_E* code (the channel fails with it; a positive value means CN_EREFUSED). */
typedef int (*cn_chan_verify_fn)(void *arg, const uint8_t remote_static[CN_CHAN_KEY_LEN],
                                 const uint8_t *payload, size_t payload_len);

/* Everything cn_chan_new() copies; pointers are borrowed for the call only. */
typedef struct cn_chan_config {
    /* enum cn_chan_role */
    int role;
    /* This side's static X25519 private key (32 bytes), required. */
    const uint8_t *local_private;
    /* Initiator: the hub's pinned public key (32 bytes), required. Responder: NULL. */
    const uint8_t *remote_public;
    /* NUL-terminated, e.g. the hub URL; both sides must use the same string. NULL = "". */
    const char *binding;
    /* Initiator only: sent in message 3 (e.g. an enrollment token); the copy is wiped once sent. */
    const uint8_t *app_payload;
    size_t app_payload_len;   /* <= CN_CHAN_MAX_APP_PAYLOAD */
    int cipher;               /* enum cn_chan_cipher */
    int aes_impl;             /* enum cn_chan_aes_impl */
    uint64_t rekey_bytes;     /* rekey after this many sent plaintext bytes; 0 = 1 GiB */
    uint32_t rekey_seconds;   /* rekey the sending key after this long; 0 = 600 */
    uint32_t max_age_seconds; /* session lifetime after establishment; 0 = 24 h */
    uint64_t now_ms;          /* the caller's clock now (any epoch, milliseconds) */
    cn_chan_verify_fn verify; /* responder, optional (see above) */
    void *verify_arg;
} cn_chan_config_t;

/* Counters for metrics and tests (data records and plaintext bytes only). */
typedef struct cn_chan_stats {
    uint64_t tx_records, rx_records;
    uint64_t tx_bytes, rx_bytes;
    uint64_t tx_rekeys, rx_rekeys;
} cn_chan_stats_t;

typedef struct cn_chan cn_chan_t;

/* Creates a channel, or returns NULL with one line in err (optional) naming
 * the cause: cn_strerror() of CN_EINVAL for a bad config (missing key,
 * payload or binding too long, AES-256-GCM required but not available),
 * CN_ECRYPTO, CN_ENOMEM. */
CN_WARN_UNUSED cn_chan_t *cn_chan_new(const cn_chan_config_t *cfg, char *err, size_t errlen);
/* Wipes keys and frees; NULL is fine. */
void cn_chan_free(cn_chan_t *chan);

/* Initiator: appends handshake message 1 (a HANDSHAKE record) to send_out.
 * Responder: does nothing. Call once, before the first cn_chan_feed().
 * 0, CN_ESTATE when called twice, or an error that fails the channel. */
CN_WARN_UNUSED int cn_chan_start(cn_chan_t *chan, cn_buf_t *send_out);

/* Consumes all `len` bytes received from the peer, split anywhere. Handshake
 * records advance the handshake and may append the next handshake record to
 * send_out; DATA records are authenticated and their plaintext appended to
 * plain_out (decrypted straight from `in` when whole, else through an internal
 * buffer of at most one record). Incomplete records are kept for the next call.
 * plain_out must be able to grow by len + CN_CHAN_MAX_PLAINTEXT bytes (drain it
 * between calls); send_out by one handshake record (~4.2 KiB).
 * Returns 0, or a negative code that has failed the channel: CN_EAUTH (bad
 * tag: tampered, reordered, replayed, dropped, or the wrong peer key),
 * CN_EPROTO (a record not valid here), CN_EUNKNOWN (record type), CN_ETOOBIG
 * (length header above the limit, refused before reading the body, or
 * plain_out full), CN_EVERSION, CN_EREFUSED (no common cipher, or the verify
 * callback said no), CN_EEXHAUSTED (session too old), CN_ECLOSED (after eof). */
CN_WARN_UNUSED int cn_chan_feed(cn_chan_t *chan, const uint8_t *in, size_t len, cn_buf_t *plain_out,
                                cn_buf_t *send_out);

/* The byte stream from the peer has ended. Returns 0 when the peer had sent
 * an authenticated CLOSE; otherwise fails the channel and returns CN_EPROTO
 * (a record was cut short) or CN_ECLOSED (ended without CLOSE). */
CN_WARN_UNUSED int cn_chan_eof(cn_chan_t *chan);

/* Sets the caller's clock (milliseconds, same epoch as config.now_ms). Rekey
 * by time and the session age are measured with it; nothing else reads time. */
void cn_chan_set_now(cn_chan_t *chan, uint64_t now_ms);

/* Seals one DATA record in place. The caller owns
 * rec[0 .. CN_CHAN_HEADER + plain_len + CN_CHAN_TAG) with the plaintext at
 * rec + CN_CHAN_HEADER; the header is written before it and the tag after.
 * Returns the record length, or: CN_ESTATE (not established yet, or after
 * cn_chan_seal_close()), CN_ETOOBIG (plain_len > CN_CHAN_MAX_PLAINTEXT; the
 * channel stays usable), CN_EEXHAUSTED (session older than max_age_seconds or
 * nonces used up: reconnect), or the channel's failure code. When a rekey
 * threshold has passed the record goes out as DATA_KEY_UPDATE. */
CN_WARN_UNUSED int cn_chan_seal(cn_chan_t *chan, uint8_t *rec, size_t plain_len);
/* Seals an authenticated CLOSE record into rec[0..CN_CHAN_HEADER + CN_CHAN_TAG)
 * and returns its length; nothing can be sealed after it. */
CN_WARN_UNUSED int cn_chan_seal_close(cn_chan_t *chan, uint8_t *rec);

int cn_chan_state(const cn_chan_t *chan);           /* enum cn_chan_state */
int cn_chan_error(const cn_chan_t *chan);           /* why it failed, or 0 */
bool cn_chan_is_established(const cn_chan_t *chan); /* keys in place, not failed */
int cn_chan_role(const cn_chan_t *chan);            /* enum cn_chan_role */
/* The peer's static public key (the hub's key on the initiator, the agent's
 * on the responder once message 3 is read), or NULL. Owned by the channel. */
const uint8_t *cn_chan_remote_static(const cn_chan_t *chan);
/* Responder, once established: the initiator's message 3 payload (owned by
 * the channel, wiped on failure and on free; *len may be 0). NULL before, and
 * on the initiator. */
const uint8_t *cn_chan_app_payload(const cn_chan_t *chan, size_t *len);
/* "AES-256-GCM" or "ChaCha20-Poly1305" once negotiated, else NULL. */
const char *cn_chan_cipher_name(const cn_chan_t *chan);
/* "OpenSSL" or "libsodium": what seals and opens this channel's records,
 * once established (else NULL). */
const char *cn_chan_cipher_impl(const cn_chan_t *chan);
/* The Noise handshake hash (CN_CHAN_HASH_LEN bytes) for channel binding, or
 * NULL until established. Owned by the channel. */
const uint8_t *cn_chan_handshake_hash(const cn_chan_t *chan);
void cn_chan_get_stats(const cn_chan_t *chan, cn_chan_stats_t *out);

/* Key helpers. A fresh static key pair: 0 or CN_ECRYPTO. */
CN_WARN_UNUSED int cn_chan_keypair(uint8_t pub[CN_CHAN_KEY_LEN], uint8_t priv[CN_CHAN_KEY_LEN]);
/* The public key of a private key: 0 or CN_ECRYPTO. */
CN_WARN_UNUSED int cn_chan_public_key(const uint8_t priv[CN_CHAN_KEY_LEN],
                                      uint8_t pub[CN_CHAN_KEY_LEN]);
/* A short printable name of a public key for logs: base64url (no padding) of
 * the first 16 bytes of SHA-256(pub). 0 or CN_EINVAL. */
int cn_chan_fingerprint(const uint8_t pub[CN_CHAN_KEY_LEN], char out[CN_CHAN_FINGERPRINT_SIZE]);

#endif
