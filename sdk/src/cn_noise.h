/* cn_noise: a sans-IO Noise Protocol Framework HandshakeState (revision 34).
 *
 * Patterns NN, KK, IK, XK and XKpsk3; DH 25519; hash SHA256; cipher ChaChaPoly
 * or AESGCM. Bytes in, bytes out: the caller moves messages. Any failure makes
 * the handshake unusable (every later call returns the same error), so a
 * caller never has to reason about half-processed messages.
 *
 * Ownership: cn_noise_new() copies every key and the prologue; nothing passed
 * in is kept. Secrets are wiped with sodium_memzero() on free and after split. */
#ifndef CN_NOISE_H
#define CN_NOISE_H

#include "cn_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#define CN_NOISE_KEY_LEN 32    /* X25519 keys, cipher keys, psk */
#define CN_NOISE_HASH_LEN 32   /* SHA256 */
#define CN_NOISE_TAG_LEN 16    /* AEAD tag */
#define CN_NOISE_NONCE_LEN 12  /* AEAD nonce */
#define CN_NOISE_MAX_MSG 65535 /* Noise's limit on one message, tags included */

enum cn_noise_role { CN_NOISE_INITIATOR = 0, CN_NOISE_RESPONDER = 1 };

enum cn_noise_pattern {
    CN_NOISE_NN = 0,
    CN_NOISE_KK = 1,
    CN_NOISE_IK = 2,
    CN_NOISE_XK = 3,
    CN_NOISE_XKPSK3 = 4,
};

enum cn_noise_cipher { CN_NOISE_CHACHAPOLY = 0, CN_NOISE_AESGCM = 1 };

/* What cn_noise_new() needs. Pointers are borrowed for the call only. */
typedef struct cn_noise_config {
    int role;    /* enum cn_noise_role */
    int pattern; /* enum cn_noise_pattern */
    int cipher;  /* enum cn_noise_cipher; AESGCM needs crypto_aead_aes256gcm_is_available() */
    const uint8_t *prologue;
    size_t prologue_len;
    /* This side's static X25519 private key (32 bytes); required exactly when the
     * pattern uses a local static key. The public key is derived from it. */
    const uint8_t *local_private;
    /* The peer's static public key (32 bytes) when the pattern has it as a
     * pre-message (KK both sides, IK and XK initiator); NULL otherwise. */
    const uint8_t *remote_public;
    const uint8_t *psk; /* 32 bytes, required exactly for psk patterns */
    /* TEST VECTORS ONLY: a fixed ephemeral private key instead of a random one.
     * Reusing an ephemeral key destroys the handshake's security. */
    const uint8_t *fixed_ephemeral;
} cn_noise_config_t;

typedef struct cn_noise cn_noise_t;

/* One direction's transport key after Split(): key, nonce counter, cipher.
 * Plain data so that a record layer can embed it; use only the functions below
 * on it. `n` counts messages; nonce 2^64-1 is reserved (never used). */
typedef struct cn_noise_cs {
    crypto_aead_aes256gcm_state aes; /* expanded key, when cipher == AESGCM */
    uint8_t key[CN_NOISE_KEY_LEN];
    uint64_t n;
    uint8_t cipher;  /* enum cn_noise_cipher */
    uint8_t has_key; /* 0 until a key is set */
} cn_noise_cs_t;

/* Creates a handshake, or returns NULL with one line in err (optional) naming
 * the cause: cn_strerror() of CN_EINVAL for a missing/superfluous key or
 * unknown pattern/cipher/role, CN_ECRYPTO when libsodium cannot start or
 * AESGCM is unavailable, CN_ENOMEM. */
CN_WARN_UNUSED cn_noise_t *cn_noise_new(const cn_noise_config_t *cfg, char *err, size_t errlen);
/* Wipes and frees; NULL is fine. */
void cn_noise_free(cn_noise_t *hs);

/* The protocol name, e.g. "Noise_XK_25519_ChaChaPoly_SHA256" (static storage). */
const char *cn_noise_protocol_name(const cn_noise_t *hs);

/* True when this side must write the next handshake message. */
bool cn_noise_is_my_turn(const cn_noise_t *hs);
/* True once every handshake message has been written or read. */
bool cn_noise_is_complete(const cn_noise_t *hs);

/* Writes the next handshake message carrying `payload` into out[0..out_cap).
 * *out_len gets its length. Errors: CN_ESTATE (not our turn, complete or
 * failed before), CN_ETOOBIG (message above CN_NOISE_MAX_MSG or above out_cap),
 * CN_ECRYPTO. Every error fails the handshake. */
CN_WARN_UNUSED int cn_noise_write_message(cn_noise_t *hs, const uint8_t *payload,
                                          size_t payload_len, uint8_t *out, size_t out_cap,
                                          size_t *out_len);
/* Reads the peer's next handshake message; its decrypted payload goes to
 * payload_out[0..payload_cap) and its length to *payload_len. Errors: CN_ESTATE,
 * CN_EPROTO (malformed or short), CN_ETOOBIG (above CN_NOISE_MAX_MSG or
 * payload_cap), CN_EAUTH (bad tag or invalid public key). Every error fails the
 * handshake. */
CN_WARN_UNUSED int cn_noise_read_message(cn_noise_t *hs, const uint8_t *in, size_t in_len,
                                         uint8_t *payload_out, size_t payload_cap,
                                         size_t *payload_len);

/* After completion, once: derives this side's sending and receiving transport
 * states (Noise Split(), ordered by role) and wipes the chaining key, cipher key
 * and private keys. `transport_cipher` is normally the handshake's cipher; a
 * protocol that negotiates its transport cipher inside the (authenticated)
 * handshake passes the chosen one. Errors: CN_ESTATE, CN_EINVAL, CN_ECRYPTO. */
CN_WARN_UNUSED int cn_noise_split(cn_noise_t *hs, int transport_cipher, cn_noise_cs_t *send,
                                  cn_noise_cs_t *recv);

/* The handshake hash h (32 bytes, for channel binding), or NULL until complete. */
const uint8_t *cn_noise_handshake_hash(const cn_noise_t *hs);
/* The peer's static public key (32 bytes), or NULL while it is unknown. */
const uint8_t *cn_noise_remote_static(const cn_noise_t *hs);

/* Transport cipher states. */
/* Sets key and cipher and resets the nonce (Noise InitializeKey). 0 or CN_EINVAL/CN_ECRYPTO. */
CN_WARN_UNUSED int cn_noise_cs_init(cn_noise_cs_t *cs, int cipher,
                                    const uint8_t key[CN_NOISE_KEY_LEN]);
/* Encrypts buf[0..len) in place with associated data `ad` and writes the tag at
 * buf[len..len+16); the caller owns len + CN_NOISE_TAG_LEN bytes at buf.
 * CN_EEXHAUSTED once the nonce would reach 2^64-1; CN_ESTATE without a key. */
CN_WARN_UNUSED int cn_noise_cs_encrypt(cn_noise_cs_t *cs, const uint8_t *ad, size_t ad_len,
                                       uint8_t *buf, size_t len);
/* Authenticates and decrypts in[0..in_len) (ciphertext then tag) into
 * out[0..in_len-16); out may equal in. CN_EAUTH on a bad tag (nonce not
 * advanced), CN_EPROTO when in_len < 16, CN_EEXHAUSTED, CN_ESTATE. */
CN_WARN_UNUSED int cn_noise_cs_decrypt(cn_noise_cs_t *cs, const uint8_t *ad, size_t ad_len,
                                       const uint8_t *in, size_t in_len, uint8_t *out);
/* Noise Rekey(): the key becomes the first 32 bytes of ENCRYPT(k, 2^64-1, "", 0^32);
 * the nonce counter is kept. 0, CN_ESTATE or CN_ECRYPTO. */
CN_WARN_UNUSED int cn_noise_cs_rekey(cn_noise_cs_t *cs);
/* Wipes the key material; NULL is fine. */
void cn_noise_cs_wipe(cn_noise_cs_t *cs);
/* The 12-byte AEAD nonce of message counter n: 4 zero bytes, then n little-endian
 * (ChaChaPoly) or big-endian (AESGCM). For a record layer that drives another
 * implementation of the same cipher (cn_aead). */
void cn_noise_nonce(int cipher, uint64_t n, uint8_t nonce[CN_NOISE_NONCE_LEN]);

#endif
