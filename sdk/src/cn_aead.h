/* cn_aead: one direction of a record layer's AEAD after a Noise Split().
 *
 * The Noise CipherState (cn_noise_cs_t, libsodium) stays the reference: it
 * holds the key and the nonce counter, and it does rekeying. For AES-256-GCM
 * an OpenSSL EVP context can seal and open the records instead: the same
 * AEAD, the same nonces (cn_noise_nonce), the same header-as-AD, the same
 * ciphertext and tag layout, so a peer using either engine reads the other's
 * records byte for byte. libcrypto is linked for TLS anyway, and on this
 * project's CPUs its AES-GCM is ~2.5x libsodium 1.0.18's (docs/performance.md).
 * ChaCha20-Poly1305 always uses libsodium, and so do AES-256-GCM records
 * under CN_AEAD_EVP_MIN bytes, where libsodium measured faster (EVP's
 * per-call dispatch costs more than its faster bulk path saves).
 *
 * Conventions: functions return 0 or a negative CN_E* code; cn_aead_t is plain
 * data owned by its embedder, which must call cn_aead_wipe() before dropping it
 * (it frees the EVP context). Not thread-safe. */
#ifndef CN_AEAD_H
#define CN_AEAD_H

#include "cn_defs.h"
#include "cn_noise.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evp_cipher_ctx_st; /* OpenSSL's EVP_CIPHER_CTX */

/* Plaintext bytes from which OpenSSL does a record once it is set up:
 * bench_chan, AES-NI EPYC, per record seal / open: 256 B libsodium 172/203 ns,
 * OpenSSL 203/206; 512 B 274/329 vs 312/306; 1 KiB 739/847 vs 729/622. */
#define CN_AEAD_EVP_MIN 512

/* Which implementation seals and opens AES-256-GCM records. */
enum cn_aead_impl {
    CN_AEAD_IMPL_DEFAULT = 0, /* OpenSSL EVP, unless env CN_CHAN_AES=sodium */
    CN_AEAD_IMPL_SODIUM = 1,  /* libsodium crypto_aead_aes256gcm (the fallback) */
    CN_AEAD_IMPL_EVP = 2,     /* OpenSSL EVP_aes_256_gcm */
};

/* Seals or opens: an EVP context is made for one direction. */
enum cn_aead_dir { CN_AEAD_SEAL = 0, CN_AEAD_OPEN = 1 };

typedef struct cn_aead {
    cn_noise_cs_t cs;              /* key, counter, cipher; what cn_noise_split() fills */
    struct evp_cipher_ctx_st *evp; /* NULL: libsodium does the records */
    uint8_t dir;                   /* enum cn_aead_dir */
    uint64_t evp_records;          /* records OpenSSL sealed or opened (tests, stats) */
} cn_aead_t;

/* CN_AEAD_IMPL_DEFAULT resolved: env CN_CHAN_AES "sodium" or "evp" (other
 * values are ignored), else EVP. Other values pass through. */
int cn_aead_impl_resolve(int impl);

/* Chooses the engine once a->cs holds its key (after cn_noise_split or
 * cn_noise_cs_init): for AESGCM and impl EVP (after resolve) it creates the
 * EVP context with the key, once; otherwise libsodium stays. 0, CN_EINVAL,
 * CN_ESTATE (no key), CN_ENOMEM or CN_ECRYPTO (OpenSSL refused; a->cs is
 * untouched, so the caller may fall back to libsodium). */
CN_WARN_UNUSED int cn_aead_setup(cn_aead_t *a, int dir, int impl);

/* Drops the EVP context, if any; libsodium goes on with the same key and
 * counter (records stay compatible). NULL is fine. */
void cn_aead_use_sodium(cn_aead_t *a);

/* True when OpenSSL seals/opens this direction's records. */
bool cn_aead_uses_evp(const cn_aead_t *a);

/* As cn_noise_cs_encrypt(): buf[0..len) in place, tag at buf[len..len+16),
 * the counter advances. Only on a CN_AEAD_SEAL direction when EVP is used. */
CN_WARN_UNUSED int cn_aead_encrypt(cn_aead_t *a, const uint8_t *ad, size_t ad_len, uint8_t *buf,
                                   size_t len);
/* As cn_noise_cs_decrypt(): out may equal in. On CN_EAUTH the counter stays
 * and out[0..in_len-16) is zeroed (nothing unauthenticated is left there). */
CN_WARN_UNUSED int cn_aead_decrypt(cn_aead_t *a, const uint8_t *ad, size_t ad_len,
                                   const uint8_t *in, size_t in_len, uint8_t *out);
/* Noise Rekey() of the key, into whichever engine is in use. */
CN_WARN_UNUSED int cn_aead_rekey(cn_aead_t *a);
/* Frees the EVP context (OpenSSL clears its key schedule) and wipes the key;
 * the engine choice is forgotten. NULL and repeated calls are fine. */
void cn_aead_wipe(cn_aead_t *a);

#endif
