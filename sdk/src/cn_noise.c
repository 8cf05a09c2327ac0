/* Noise HandshakeState, SymmetricState and CipherState (Noise revision 34),
 * driven by a token table so that every supported pattern shares one reader
 * and one writer. Only libsodium primitives; HKDF is built from HMAC-SHA256
 * exactly as the Noise specification defines it. */
#include "cn_noise.h"
#include "cn_err.h"
#include "cn_errmsg.h"

#include <stdlib.h>
#include <string.h>

enum token { T_END = 0, T_E, T_S, T_EE, T_ES, T_SE, T_SS, T_PSK };

#define MAX_MSGS 3
#define MAX_TOKENS 5 /* longest message (IK 1: e, es, s, ss) plus T_END */

struct pattern {
    bool pre_i_s; /* initiator's static key is a pre-message (known to the responder) */
    bool pre_r_s; /* responder's static key is a pre-message (known to the initiator) */
    bool psk;     /* psk modifier: `e` also calls MixKey */
    uint8_t n_msgs;
    uint8_t msgs[MAX_MSGS][MAX_TOKENS];
};

static const struct pattern patterns[] = {
    [CN_NOISE_NN] = {false, false, false, 2, {{T_E}, {T_E, T_EE}}},
    [CN_NOISE_KK] = {true, true, false, 2, {{T_E, T_ES, T_SS}, {T_E, T_EE, T_SE}}},
    [CN_NOISE_IK] = {false, true, false, 2, {{T_E, T_ES, T_S, T_SS}, {T_E, T_EE, T_SE}}},
    [CN_NOISE_XK] = {false, true, false, 3, {{T_E, T_ES}, {T_E, T_EE}, {T_S, T_SE}}},
    [CN_NOISE_XKPSK3] = {false, true, true, 3, {{T_E, T_ES}, {T_E, T_EE}, {T_S, T_SE, T_PSK}}},
};

static const char *const protocol_names[][2] = {
    [CN_NOISE_NN] = {"Noise_NN_25519_ChaChaPoly_SHA256", "Noise_NN_25519_AESGCM_SHA256"},
    [CN_NOISE_KK] = {"Noise_KK_25519_ChaChaPoly_SHA256", "Noise_KK_25519_AESGCM_SHA256"},
    [CN_NOISE_IK] = {"Noise_IK_25519_ChaChaPoly_SHA256", "Noise_IK_25519_AESGCM_SHA256"},
    [CN_NOISE_XK] = {"Noise_XK_25519_ChaChaPoly_SHA256", "Noise_XK_25519_AESGCM_SHA256"},
    [CN_NOISE_XKPSK3] = {"Noise_XKpsk3_25519_ChaChaPoly_SHA256",
                         "Noise_XKpsk3_25519_AESGCM_SHA256"},
};

struct cn_noise {
    const struct pattern *pat;
    const char *name;
    uint8_t role;
    uint8_t cipher;
    uint8_t msg_i; /* index of the next handshake message */
    bool split_done;
    int err; /* sticky: once set, every call returns it */
    cn_noise_cs_t cs;
    uint8_t ck[CN_NOISE_HASH_LEN];
    uint8_t h[CN_NOISE_HASH_LEN];
    uint8_t s_priv[32], s_pub[32];
    uint8_t e_priv[32], e_pub[32];
    uint8_t rs[32], re[32];
    uint8_t psk[32];
    bool has_s, has_e, has_rs, has_re, has_psk, fixed_e;
};

/* ---- CipherState ---- */

static bool cipher_valid(int cipher)
{
    return cipher == CN_NOISE_CHACHAPOLY || cipher == CN_NOISE_AESGCM;
}

/* Noise nonce encodings: 32 zero bits, then the counter little-endian for
 * ChaChaPoly and big-endian for AESGCM. */
void cn_noise_nonce(int cipher, uint64_t n, uint8_t nonce[CN_NOISE_NONCE_LEN])
{
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++) {
        uint8_t byte = (uint8_t)(n >> (8 * i));
        if (cipher == CN_NOISE_AESGCM)
            nonce[11 - i] = byte;
        else
            nonce[4 + i] = byte;
    }
}

static int cs_seal(cn_noise_cs_t *cs, uint64_t n, const uint8_t *ad, size_t ad_len, uint8_t *buf,
                   size_t len)
{
    uint8_t nonce[12];
    int rc;
    cn_noise_nonce(cs->cipher, n, nonce);
    if (cs->cipher == CN_NOISE_AESGCM)
        rc = crypto_aead_aes256gcm_encrypt_detached_afternm(buf, buf + len, NULL, buf, len, ad,
                                                            ad_len, NULL, nonce, &cs->aes);
    else
        rc = crypto_aead_chacha20poly1305_ietf_encrypt_detached(buf, buf + len, NULL, buf, len, ad,
                                                                ad_len, NULL, nonce, cs->key);
    return rc == 0 ? 0 : CN_ECRYPTO;
}

int cn_noise_cs_init(cn_noise_cs_t *cs, int cipher, const uint8_t key[CN_NOISE_KEY_LEN])
{
    if (!cs || !key || !cipher_valid(cipher))
        return CN_EINVAL;
    uint8_t k[CN_NOISE_KEY_LEN];
    memcpy(k, key, sizeof(k)); /* key may point into cs */
    cn_noise_cs_wipe(cs);
    if (cipher == CN_NOISE_AESGCM) {
        if (!crypto_aead_aes256gcm_is_available() || crypto_aead_aes256gcm_beforenm(&cs->aes, k)) {
            sodium_memzero(k, sizeof(k));
            return CN_ECRYPTO;
        }
    }
    memcpy(cs->key, k, sizeof(k));
    sodium_memzero(k, sizeof(k));
    cs->cipher = (uint8_t)cipher;
    cs->n = 0;
    cs->has_key = 1;
    return 0;
}

int cn_noise_cs_encrypt(cn_noise_cs_t *cs, const uint8_t *ad, size_t ad_len, uint8_t *buf,
                        size_t len)
{
    if (!cs || !buf || (!ad && ad_len))
        return CN_EINVAL;
    if (!cs->has_key)
        return CN_ESTATE;
    if (cs->n == UINT64_MAX)
        return CN_EEXHAUSTED;
    if (len > CN_NOISE_MAX_MSG * (size_t)1024) /* far below both AEADs' limits */
        return CN_ETOOBIG;
    int rc = cs_seal(cs, cs->n, ad, ad_len, buf, len);
    if (rc == 0)
        cs->n++;
    return rc;
}

int cn_noise_cs_decrypt(cn_noise_cs_t *cs, const uint8_t *ad, size_t ad_len, const uint8_t *in,
                        size_t in_len, uint8_t *out)
{
    if (!cs || !in || !out || (!ad && ad_len))
        return CN_EINVAL;
    if (!cs->has_key)
        return CN_ESTATE;
    if (in_len < CN_NOISE_TAG_LEN)
        return CN_EPROTO;
    if (cs->n == UINT64_MAX)
        return CN_EEXHAUSTED;
    size_t clen = in_len - CN_NOISE_TAG_LEN;
    if (clen > CN_NOISE_MAX_MSG * (size_t)1024)
        return CN_ETOOBIG;
    uint8_t nonce[12];
    int rc;
    cn_noise_nonce(cs->cipher, cs->n, nonce);
    if (cs->cipher == CN_NOISE_AESGCM)
        rc = crypto_aead_aes256gcm_decrypt_detached_afternm(out, NULL, in, clen, in + clen, ad,
                                                            ad_len, nonce, &cs->aes);
    else
        rc = crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, NULL, in, clen, in + clen, ad,
                                                                ad_len, nonce, cs->key);
    if (rc != 0)
        return CN_EAUTH;
    cs->n++;
    return 0;
}

int cn_noise_cs_rekey(cn_noise_cs_t *cs)
{
    if (!cs)
        return CN_EINVAL;
    if (!cs->has_key)
        return CN_ESTATE;
    uint8_t buf[CN_NOISE_KEY_LEN + CN_NOISE_TAG_LEN] = {0};
    uint64_t n = cs->n;
    int rc = cs_seal(cs, UINT64_MAX, NULL, 0, buf, CN_NOISE_KEY_LEN);
    if (rc == 0)
        rc = cn_noise_cs_init(cs, cs->cipher, buf);
    cs->n = n;
    sodium_memzero(buf, sizeof(buf));
    return rc;
}

void cn_noise_cs_wipe(cn_noise_cs_t *cs)
{
    if (cs)
        sodium_memzero(cs, sizeof(*cs));
}

/* ---- SymmetricState ---- */

static void hmac_sha256(const uint8_t key[32], const uint8_t *a, size_t a_len, const uint8_t *b,
                        size_t b_len, uint8_t out[32])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, 32);
    if (a_len)
        crypto_auth_hmacsha256_update(&st, a, a_len);
    if (b_len)
        crypto_auth_hmacsha256_update(&st, b, b_len);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

/* Noise HKDF(ck, ikm, 2 or 3): outputs may alias ck. */
static void hkdf(const uint8_t ck[32], const uint8_t *ikm, size_t ikm_len, uint8_t *out1,
                 uint8_t *out2, uint8_t *out3)
{
    static const uint8_t one = 1, two = 2, three = 3;
    uint8_t temp[32], o1[32], o2[32];
    hmac_sha256(ck, ikm, ikm_len, NULL, 0, temp);
    hmac_sha256(temp, &one, 1, NULL, 0, o1);
    hmac_sha256(temp, o1, 32, &two, 1, o2);
    if (out3)
        hmac_sha256(temp, o2, 32, &three, 1, out3);
    memcpy(out1, o1, 32);
    memcpy(out2, o2, 32);
    sodium_memzero(temp, sizeof(temp));
    sodium_memzero(o1, sizeof(o1));
    sodium_memzero(o2, sizeof(o2));
}

static void hash2(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len, uint8_t out[32])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    if (a_len)
        crypto_hash_sha256_update(&st, a, a_len);
    if (b_len)
        crypto_hash_sha256_update(&st, b, b_len);
    crypto_hash_sha256_final(&st, out);
}

static void mix_hash(cn_noise_t *hs, const uint8_t *data, size_t len)
{
    hash2(hs->h, sizeof(hs->h), data, len, hs->h);
}

static int mix_key(cn_noise_t *hs, const uint8_t ikm[32])
{
    uint8_t k[32];
    hkdf(hs->ck, ikm, 32, hs->ck, k, NULL);
    int rc = cn_noise_cs_init(&hs->cs, hs->cipher, k);
    sodium_memzero(k, sizeof(k));
    return rc;
}

static int mix_key_and_hash(cn_noise_t *hs, const uint8_t ikm[32])
{
    uint8_t th[32], k[32];
    hkdf(hs->ck, ikm, 32, hs->ck, th, k);
    mix_hash(hs, th, sizeof(th));
    int rc = cn_noise_cs_init(&hs->cs, hs->cipher, k);
    sodium_memzero(k, sizeof(k));
    return rc;
}

/* Writes len (+ tag once a key is set) bytes at out; plain may overlap out. */
static int encrypt_and_hash(cn_noise_t *hs, const uint8_t *plain, size_t len, uint8_t *out)
{
    if (len)
        memmove(out, plain, len);
    if (hs->cs.has_key) {
        int rc = cn_noise_cs_encrypt(&hs->cs, hs->h, sizeof(hs->h), out, len);
        if (rc)
            return rc;
        len += CN_NOISE_TAG_LEN;
    }
    mix_hash(hs, out, len);
    return 0;
}

/* Reads in_len bytes (tag included once a key is set) into out. The next h is
 * computed first so that out may overlap in. */
static int decrypt_and_hash(cn_noise_t *hs, const uint8_t *in, size_t in_len, uint8_t *out)
{
    uint8_t next_h[32];
    hash2(hs->h, sizeof(hs->h), in, in_len, next_h);
    if (hs->cs.has_key) {
        int rc = cn_noise_cs_decrypt(&hs->cs, hs->h, sizeof(hs->h), in, in_len, out);
        if (rc)
            return rc;
    } else if (in_len) {
        memmove(out, in, in_len);
    }
    memcpy(hs->h, next_h, sizeof(hs->h));
    return 0;
}

/* ---- HandshakeState ---- */

static bool pattern_has(const struct pattern *p, int who, int token)
{
    for (int m = who; m < p->n_msgs; m += 2)
        for (int t = 0; p->msgs[m][t] != T_END; t++)
            if (p->msgs[m][t] == token)
                return true;
    return false;
}

/* Whether `role` ever uses its own static key in pattern p. */
static bool uses_local_static(const struct pattern *p, int role)
{
    if (role == CN_NOISE_INITIATOR)
        return p->pre_i_s || pattern_has(p, 0, T_S) || pattern_has(p, 0, T_SE) ||
               pattern_has(p, 1, T_SE) || pattern_has(p, 0, T_SS);
    return p->pre_r_s || pattern_has(p, 1, T_S) || pattern_has(p, 0, T_ES) ||
           pattern_has(p, 1, T_ES) || pattern_has(p, 0, T_SS);
}

static void wipe_secrets(cn_noise_t *hs)
{
    sodium_memzero(hs->ck, sizeof(hs->ck));
    cn_noise_cs_wipe(&hs->cs);
    sodium_memzero(hs->s_priv, sizeof(hs->s_priv));
    sodium_memzero(hs->e_priv, sizeof(hs->e_priv));
    sodium_memzero(hs->psk, sizeof(hs->psk));
}

static int fail(cn_noise_t *hs, int err)
{
    hs->err = err;
    wipe_secrets(hs);
    return err;
}

cn_noise_t *cn_noise_new(const cn_noise_config_t *cfg, char *err, size_t errlen)
{
    int rc = CN_EINVAL;
    cn_noise_t *hs = NULL;
    if (!cfg || cfg->pattern < 0 || cfg->pattern > CN_NOISE_XKPSK3 || !cipher_valid(cfg->cipher) ||
        (cfg->role != CN_NOISE_INITIATOR && cfg->role != CN_NOISE_RESPONDER) ||
        (!cfg->prologue && cfg->prologue_len))
        goto fail;
    const struct pattern *p = &patterns[cfg->pattern];
    bool initiator = cfg->role == CN_NOISE_INITIATOR;
    bool want_rs = initiator ? p->pre_r_s : p->pre_i_s;
    /* A key the pattern does not use is refused rather than ignored: a caller
     * passing one probably believes it is checked. */
    if (!cfg->local_private != !uses_local_static(p, cfg->role) ||
        !cfg->remote_public != !want_rs || !cfg->psk != !p->psk)
        goto fail;
    rc = CN_ECRYPTO;
    if (sodium_init() < 0 ||
        (cfg->cipher == CN_NOISE_AESGCM && !crypto_aead_aes256gcm_is_available()))
        goto fail;
    rc = CN_ENOMEM;
    hs = calloc(1, sizeof(*hs));
    if (!hs)
        goto fail;
    hs->pat = p;
    hs->name = protocol_names[cfg->pattern][cfg->cipher];
    hs->role = (uint8_t)cfg->role;
    hs->cipher = (uint8_t)cfg->cipher;
    rc = CN_EINVAL;
    if (cfg->local_private) {
        memcpy(hs->s_priv, cfg->local_private, 32);
        if (crypto_scalarmult_curve25519_base(hs->s_pub, hs->s_priv) != 0)
            goto fail;
        hs->has_s = true;
    }
    if (cfg->remote_public) {
        memcpy(hs->rs, cfg->remote_public, 32);
        hs->has_rs = true;
    }
    if (cfg->psk) {
        memcpy(hs->psk, cfg->psk, 32);
        hs->has_psk = true;
    }
    if (cfg->fixed_ephemeral) {
        memcpy(hs->e_priv, cfg->fixed_ephemeral, 32);
        if (crypto_scalarmult_curve25519_base(hs->e_pub, hs->e_priv) != 0)
            goto fail;
        hs->fixed_e = true;
    }

    /* InitializeSymmetric(): a name of at most 32 bytes is zero-padded, a longer
     * one (the psk patterns) is hashed. */
    size_t name_len = strlen(hs->name);
    if (name_len <= sizeof(hs->h))
        memcpy(hs->h, hs->name, name_len);
    else
        crypto_hash_sha256(hs->h, (const uint8_t *)hs->name, name_len);
    memcpy(hs->ck, hs->h, sizeof(hs->ck));
    mix_hash(hs, cfg->prologue, cfg->prologue_len);
    /* Pre-messages: the initiator's first, then the responder's. */
    if (p->pre_i_s)
        mix_hash(hs, initiator ? hs->s_pub : hs->rs, 32);
    if (p->pre_r_s)
        mix_hash(hs, initiator ? hs->rs : hs->s_pub, 32);
    return hs;

fail:
    cn_errf(rc, err, errlen, "Noise handshake: %s", cn_strerror(rc));
    cn_noise_free(hs);
    return NULL;
}

void cn_noise_free(cn_noise_t *hs)
{
    if (!hs)
        return;
    sodium_memzero(hs, sizeof(*hs));
    free(hs);
}

const char *cn_noise_protocol_name(const cn_noise_t *hs)
{
    return hs ? hs->name : NULL;
}

bool cn_noise_is_complete(const cn_noise_t *hs)
{
    return hs && !hs->err && hs->msg_i >= hs->pat->n_msgs;
}

bool cn_noise_is_my_turn(const cn_noise_t *hs)
{
    return hs && !hs->err && hs->msg_i < hs->pat->n_msgs && (hs->msg_i & 1) == hs->role;
}

static int dh(cn_noise_t *hs, int token, uint8_t out[32])
{
    bool initiator = hs->role == CN_NOISE_INITIATOR;
    const uint8_t *priv, *pub;
    bool ok;
    switch (token) {
    case T_EE:
        priv = hs->e_priv, pub = hs->re, ok = hs->has_e && hs->has_re;
        break;
    case T_ES: /* initiator's ephemeral with responder's static */
        priv = initiator ? hs->e_priv : hs->s_priv;
        pub = initiator ? hs->rs : hs->re;
        ok = initiator ? hs->has_e && hs->has_rs : hs->has_s && hs->has_re;
        break;
    case T_SE: /* initiator's static with responder's ephemeral */
        priv = initiator ? hs->s_priv : hs->e_priv;
        pub = initiator ? hs->re : hs->rs;
        ok = initiator ? hs->has_s && hs->has_re : hs->has_e && hs->has_rs;
        break;
    default: /* T_SS */
        priv = hs->s_priv, pub = hs->rs, ok = hs->has_s && hs->has_rs;
        break;
    }
    if (!ok)
        return CN_ESTATE;
    /* libsodium refuses low-order points (an all-zero shared secret). */
    if (crypto_scalarmult_curve25519(out, priv, pub) != 0)
        return CN_EAUTH;
    return 0;
}

/* Runs a DH or psk token (the part shared by reading and writing). */
static int mix_token(cn_noise_t *hs, int token)
{
    if (token == T_PSK)
        return hs->has_psk ? mix_key_and_hash(hs, hs->psk) : CN_ESTATE;
    uint8_t shared[32];
    int rc = dh(hs, token, shared);
    if (rc == 0)
        rc = mix_key(hs, shared);
    sodium_memzero(shared, sizeof(shared));
    return rc;
}

static size_t tag_len(const cn_noise_t *hs)
{
    return hs->cs.has_key ? CN_NOISE_TAG_LEN : 0;
}

int cn_noise_write_message(cn_noise_t *hs, const uint8_t *payload, size_t payload_len, uint8_t *out,
                           size_t out_cap, size_t *out_len)
{
    if (out_len)
        *out_len = 0;
    if (!hs)
        return CN_EINVAL;
    if (hs->err)
        return hs->err;
    if (!out_len || !out || (!payload && payload_len))
        return fail(hs, CN_EINVAL);
    if (!cn_noise_is_my_turn(hs))
        return fail(hs, CN_ESTATE);
    if (payload_len > CN_NOISE_MAX_MSG)
        return fail(hs, CN_ETOOBIG);
    size_t cap = out_cap < CN_NOISE_MAX_MSG ? out_cap : CN_NOISE_MAX_MSG;
    size_t pos = 0;
    int rc = 0;
    for (const uint8_t *t = hs->pat->msgs[hs->msg_i]; *t != T_END && rc == 0; t++) {
        switch (*t) {
        case T_E:
            if (cap - pos < 32)
                return fail(hs, CN_ETOOBIG);
            if (!hs->fixed_e) {
                randombytes_buf(hs->e_priv, sizeof(hs->e_priv));
                if (crypto_scalarmult_curve25519_base(hs->e_pub, hs->e_priv) != 0)
                    return fail(hs, CN_ECRYPTO);
            }
            hs->has_e = true;
            memcpy(out + pos, hs->e_pub, 32);
            pos += 32;
            mix_hash(hs, hs->e_pub, 32);
            if (hs->pat->psk)
                rc = mix_key(hs, hs->e_pub);
            break;
        case T_S: {
            size_t n = 32 + tag_len(hs);
            if (!hs->has_s)
                return fail(hs, CN_ESTATE);
            if (cap - pos < n)
                return fail(hs, CN_ETOOBIG);
            rc = encrypt_and_hash(hs, hs->s_pub, 32, out + pos);
            pos += n;
            break;
        }
        default:
            rc = mix_token(hs, *t);
            break;
        }
    }
    if (rc)
        return fail(hs, rc);
    if (cap - pos < tag_len(hs) || cap - pos - tag_len(hs) < payload_len)
        return fail(hs, CN_ETOOBIG);
    rc = encrypt_and_hash(hs, payload, payload_len, out + pos);
    if (rc)
        return fail(hs, rc);
    pos += payload_len + tag_len(hs);
    hs->msg_i++;
    *out_len = pos;
    return 0;
}

int cn_noise_read_message(cn_noise_t *hs, const uint8_t *in, size_t in_len, uint8_t *payload_out,
                          size_t payload_cap, size_t *payload_len)
{
    if (payload_len)
        *payload_len = 0;
    if (!hs)
        return CN_EINVAL;
    if (hs->err)
        return hs->err;
    if (!payload_len || (!in && in_len) || (!payload_out && payload_cap))
        return fail(hs, CN_EINVAL);
    if (hs->msg_i >= hs->pat->n_msgs || (hs->msg_i & 1) == hs->role)
        return fail(hs, CN_ESTATE);
    if (in_len > CN_NOISE_MAX_MSG)
        return fail(hs, CN_ETOOBIG);
    size_t pos = 0;
    int rc = 0;
    for (const uint8_t *t = hs->pat->msgs[hs->msg_i]; *t != T_END && rc == 0; t++) {
        switch (*t) {
        case T_E:
            if (in_len - pos < 32)
                return fail(hs, CN_EPROTO);
            memcpy(hs->re, in + pos, 32);
            hs->has_re = true;
            pos += 32;
            mix_hash(hs, hs->re, 32);
            if (hs->pat->psk)
                rc = mix_key(hs, hs->re);
            break;
        case T_S: {
            size_t n = 32 + tag_len(hs);
            if (in_len - pos < n)
                return fail(hs, CN_EPROTO);
            rc = decrypt_and_hash(hs, in + pos, n, hs->rs);
            hs->has_rs = rc == 0;
            pos += n;
            break;
        }
        default:
            rc = mix_token(hs, *t);
            break;
        }
    }
    if (rc)
        return fail(hs, rc);
    size_t rest = in_len - pos;
    if (rest < tag_len(hs))
        return fail(hs, CN_EPROTO);
    size_t plain = rest - tag_len(hs);
    if (plain > payload_cap)
        return fail(hs, CN_ETOOBIG);
    uint8_t dummy;
    rc = decrypt_and_hash(hs, in ? in + pos : &dummy, rest, payload_out ? payload_out : &dummy);
    if (rc)
        return fail(hs, rc);
    hs->msg_i++;
    *payload_len = plain;
    return 0;
}

int cn_noise_split(cn_noise_t *hs, int transport_cipher, cn_noise_cs_t *send, cn_noise_cs_t *recv)
{
    if (!hs || !send || !recv || send == recv || !cipher_valid(transport_cipher))
        return CN_EINVAL;
    if (hs->err)
        return hs->err;
    if (!cn_noise_is_complete(hs) || hs->split_done)
        return CN_ESTATE;
    uint8_t k1[32], k2[32];
    hkdf(hs->ck, NULL, 0, k1, k2, NULL);
    bool initiator = hs->role == CN_NOISE_INITIATOR;
    int rc = cn_noise_cs_init(send, transport_cipher, initiator ? k1 : k2);
    if (rc == 0)
        rc = cn_noise_cs_init(recv, transport_cipher, initiator ? k2 : k1);
    sodium_memzero(k1, sizeof(k1));
    sodium_memzero(k2, sizeof(k2));
    if (rc) {
        cn_noise_cs_wipe(send);
        cn_noise_cs_wipe(recv);
        return fail(hs, rc);
    }
    hs->split_done = true;
    wipe_secrets(hs);
    return 0;
}

const uint8_t *cn_noise_handshake_hash(const cn_noise_t *hs)
{
    return cn_noise_is_complete(hs) ? hs->h : NULL;
}

const uint8_t *cn_noise_remote_static(const cn_noise_t *hs)
{
    return hs && !hs->err && hs->has_rs ? hs->rs : NULL;
}
