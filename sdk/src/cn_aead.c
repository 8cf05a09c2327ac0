/* Record AEAD engines: libsodium through cn_noise_cs, or OpenSSL EVP for
 * AES-256-GCM. One EVP context per direction, keyed once (and again on
 * rekey); each record only sets its IV, so the AES key schedule and the GHASH
 * tables are computed once, not per record. */
#include "cn_aead.h"
#include "cn_err.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>

/* The same bound cn_noise_cs_encrypt() applies, far below GCM's and int's. */
#define MAX_LEN (CN_NOISE_MAX_MSG * (size_t)1024)

int cn_aead_impl_resolve(int impl)
{
    if (impl != CN_AEAD_IMPL_DEFAULT)
        return impl;
    const char *env = getenv("CN_CHAN_AES");
    if (env && strcmp(env, "sodium") == 0)
        return CN_AEAD_IMPL_SODIUM;
    return CN_AEAD_IMPL_EVP;
}

/* (Re)keys the EVP context from a->cs.key; the IV comes per record. */
static int evp_key(cn_aead_t *a)
{
    int enc = a->dir == CN_AEAD_SEAL;
    return EVP_CipherInit_ex(a->evp, NULL, NULL, a->cs.key, NULL, enc) == 1 ? 0 : CN_ECRYPTO;
}

int cn_aead_setup(cn_aead_t *a, int dir, int impl)
{
    if (!a || (dir != CN_AEAD_SEAL && dir != CN_AEAD_OPEN))
        return CN_EINVAL;
    if (!a->cs.has_key)
        return CN_ESTATE;
    a->dir = (uint8_t)dir;
    if (a->evp || a->cs.cipher != CN_NOISE_AESGCM || cn_aead_impl_resolve(impl) != CN_AEAD_IMPL_EVP)
        return 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return CN_ENOMEM;
    /* GCM's default IV length is the 12 bytes Noise uses. */
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, dir == CN_AEAD_SEAL) != 1 ||
        EVP_CIPHER_CTX_get_iv_length(ctx) != CN_NOISE_NONCE_LEN) {
        EVP_CIPHER_CTX_free(ctx);
        return CN_ECRYPTO;
    }
    a->evp = ctx;
    int rc = evp_key(a);
    if (rc) {
        EVP_CIPHER_CTX_free(ctx);
        a->evp = NULL;
    }
    return rc;
}

void cn_aead_use_sodium(cn_aead_t *a)
{
    if (!a)
        return;
    EVP_CIPHER_CTX_free(a->evp); /* the provider clears its context on free */
    a->evp = NULL;
}

bool cn_aead_uses_evp(const cn_aead_t *a)
{
    return a && a->evp;
}

/* What both cn_noise_cs calls check first, in the same order. */
static int check(const cn_aead_t *a, size_t len)
{
    if (!a->cs.has_key)
        return CN_ESTATE;
    if (a->cs.n == UINT64_MAX)
        return CN_EEXHAUSTED;
    if (len > MAX_LEN)
        return CN_ETOOBIG;
    return 0;
}

/* The tag moves through OSSL_PARAMs: EVP_CIPHER_CTX_ctrl() would translate
 * to the same call, and that translation costs ~50 ns, a third of a 64-byte
 * record's whole seal. */
static int evp_tag(EVP_CIPHER_CTX *ctx, uint8_t tag[CN_NOISE_TAG_LEN], bool set)
{
    OSSL_PARAM p[2] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, CN_NOISE_TAG_LEN),
        OSSL_PARAM_construct_end(),
    };
    return (set ? EVP_CIPHER_CTX_set_params(ctx, p) : EVP_CIPHER_CTX_get_params(ctx, p)) == 1;
}

int cn_aead_encrypt(cn_aead_t *a, const uint8_t *ad, size_t ad_len, uint8_t *buf, size_t len)
{
    if (!a || !a->evp || len < CN_AEAD_EVP_MIN)
        return cn_noise_cs_encrypt(a ? &a->cs : NULL, ad, ad_len, buf, len);
    if (!buf || (!ad && ad_len) || a->dir != CN_AEAD_SEAL)
        return CN_EINVAL;
    int rc = check(a, len);
    if (rc)
        return rc;
    uint8_t nonce[CN_NOISE_NONCE_LEN];
    int n;
    cn_noise_nonce(CN_NOISE_AESGCM, a->cs.n, nonce);
    /* In place: OpenSSL allows out == in exactly. */
    if (EVP_CipherInit_ex2(a->evp, NULL, NULL, nonce, 1, NULL) != 1 ||
        (ad_len && EVP_EncryptUpdate(a->evp, NULL, &n, ad, (int)ad_len) != 1) ||
        (len && EVP_EncryptUpdate(a->evp, buf, &n, buf, (int)len) != 1) ||
        EVP_EncryptFinal_ex(a->evp, buf + len, &n) != 1 || !evp_tag(a->evp, buf + len, false))
        return CN_ECRYPTO;
    a->cs.n++;
    a->evp_records++;
    return 0;
}

int cn_aead_decrypt(cn_aead_t *a, const uint8_t *ad, size_t ad_len, const uint8_t *in,
                    size_t in_len, uint8_t *out)
{
    if (!a || !a->evp || in_len < CN_NOISE_TAG_LEN + CN_AEAD_EVP_MIN)
        return cn_noise_cs_decrypt(a ? &a->cs : NULL, ad, ad_len, in, in_len, out);
    if (!in || !out || (!ad && ad_len) || a->dir != CN_AEAD_OPEN)
        return CN_EINVAL;
    if (!a->cs.has_key)
        return CN_ESTATE;
    if (in_len < CN_NOISE_TAG_LEN)
        return CN_EPROTO;
    size_t clen = in_len - CN_NOISE_TAG_LEN;
    int rc = check(a, clen);
    if (rc)
        return rc;
    uint8_t nonce[CN_NOISE_NONCE_LEN];
    int n;
    cn_noise_nonce(CN_NOISE_AESGCM, a->cs.n, nonce);
    /* The tag is taken (copied) before decrypting, so out == in is safe.
     * OpenSSL compares it in constant time in EVP_DecryptFinal_ex. */
    if (EVP_CipherInit_ex2(a->evp, NULL, NULL, nonce, 0, NULL) != 1 ||
        !evp_tag(a->evp, (uint8_t *)(uintptr_t)(in + clen), true) ||
        (ad_len && EVP_DecryptUpdate(a->evp, NULL, &n, ad, (int)ad_len) != 1) ||
        (clen && EVP_DecryptUpdate(a->evp, out, &n, in, (int)clen) != 1))
        rc = CN_ECRYPTO;
    else if (EVP_DecryptFinal_ex(a->evp, out + clen, &n) != 1)
        rc = CN_EAUTH;
    if (rc) {
        /* EVP decrypts before it verifies; like libsodium, leave nothing of a
         * forged record behind. */
        sodium_memzero(out, clen);
        return rc;
    }
    a->cs.n++;
    a->evp_records++;
    return 0;
}

int cn_aead_rekey(cn_aead_t *a)
{
    if (!a)
        return CN_EINVAL;
    /* libsodium derives the new key (rekeying is rare: every GiB or 10 min);
     * the EVP context then takes it. */
    int rc = cn_noise_cs_rekey(&a->cs);
    if (rc == 0 && a->evp)
        rc = evp_key(a);
    return rc;
}

void cn_aead_wipe(cn_aead_t *a)
{
    if (!a)
        return;
    cn_aead_use_sodium(a);
    cn_noise_cs_wipe(&a->cs);
    a->dir = 0;
    a->evp_records = 0;
}
