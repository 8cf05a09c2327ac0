/* The agent <-> hub channel: an XK handshake carried in HANDSHAKE records,
 * then AEAD records with implicit per-direction nonces. Records are decrypted
 * straight from the caller's input when whole; only a record split across
 * calls is copied, into one buffer bounded by the largest legal record. */
#include "cn_chan.h"
#include "cn_aead.h"
#include "cn_err.h"
#include "cn_noise.h"
#include "cn_errmsg.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* Largest handshake body: message 3 (encrypted static key, payload, tag).
 * Pre-authentication input is bounded by this, not by the data limit. */
#define HS_MAX_BODY (32 + CN_NOISE_TAG_LEN + CN_CHAN_MAX_APP_PAYLOAD + CN_NOISE_TAG_LEN)
#define MAX_BODY (CN_CHAN_MAX_PLAINTEXT + CN_CHAN_TAG)

static const char prologue_prefix[] = "connect/1"; /* sent with its NUL */

#define MASK(cipher) (1u << (cipher))

_Static_assert((int)CN_CHAN_AES_DEFAULT == (int)CN_AEAD_IMPL_DEFAULT &&
                   (int)CN_CHAN_AES_SODIUM == (int)CN_AEAD_IMPL_SODIUM &&
                   (int)CN_CHAN_AES_EVP == (int)CN_AEAD_IMPL_EVP,
               "cn_chan_aes_impl values are cn_aead_impl values");

struct cn_chan {
    cn_aead_t tx, rx; /* transport keys and engines, one per direction */
    cn_noise_t *hs;   /* freed once established */
    uint8_t role;
    uint8_t offer;    /* mask of ciphers this side accepts */
    uint8_t cipher;   /* negotiated cipher, 0 until then */
    uint8_t aes_impl; /* enum cn_aead_impl for AES-256-GCM records, resolved */
    bool established, peer_closed, sent_close, ended;
    int err;
    /* initiator: payload to send in message 3; responder: payload received */
    uint8_t app[CN_CHAN_MAX_APP_PAYLOAD];
    size_t app_len;
    bool has_app;
    uint8_t rs[CN_CHAN_KEY_LEN];
    bool has_rs;
    uint8_t hh[CN_CHAN_HASH_LEN];
    /* reassembly of one record split across cn_chan_feed() calls */
    cn_buf_t partial;
    size_t partial_body; /* body length once the header is in */
    /* clock and rekeying */
    uint64_t now_ms, established_ms, tx_rekey_ms, tx_since_rekey;
    uint64_t rekey_bytes, rekey_ms, max_age_ms;
    cn_chan_verify_fn verify;
    void *verify_arg;
    cn_chan_stats_t stats;
};

static int fail(cn_chan_t *c, int err)
{
    if (!c->err) {
        c->err = err;
        cn_aead_wipe(&c->tx);
        cn_aead_wipe(&c->rx);
        cn_noise_free(c->hs);
        c->hs = NULL;
        cn_buf_free(&c->partial);
        sodium_memzero(c->app, sizeof(c->app)); /* may hold an enrollment token */
        c->app_len = 0;
        c->has_app = false;
    }
    return c->err;
}

static uint64_t elapsed_ms(const cn_chan_t *c, uint64_t since)
{
    return c->now_ms > since ? c->now_ms - since : 0; /* a clock going back counts as 0 */
}

/* The session age limit forces a fresh handshake (fresh keys, a re-check of
 * the peer's key) at least this often. */
static int check_age(cn_chan_t *c)
{
    if (c->established && elapsed_ms(c, c->established_ms) >= c->max_age_ms)
        return fail(c, CN_EEXHAUSTED);
    return 0;
}

static void put_header(uint8_t *rec, int type, size_t body_len)
{
    rec[0] = (uint8_t)type;
    rec[1] = (uint8_t)(body_len >> 16);
    rec[2] = (uint8_t)(body_len >> 8);
    rec[3] = (uint8_t)body_len;
}

/* ---- configuration ---- */

static bool aes_available(void)
{
    return crypto_aead_aes256gcm_is_available() != 0;
}

cn_chan_t *cn_chan_new(const cn_chan_config_t *cfg, char *err, size_t errlen)
{
    int rc = CN_EINVAL;
    cn_chan_t *c = NULL;
    uint8_t prologue[sizeof(prologue_prefix) + CN_CHAN_MAX_BINDING];
    if (!cfg || (cfg->role != CN_CHAN_INITIATOR && cfg->role != CN_CHAN_RESPONDER) ||
        !cfg->local_private || (!cfg->app_payload && cfg->app_payload_len) ||
        cfg->app_payload_len > CN_CHAN_MAX_APP_PAYLOAD ||
        (cfg->role == CN_CHAN_RESPONDER && (cfg->app_payload || cfg->remote_public)) ||
        (cfg->role == CN_CHAN_INITIATOR && (!cfg->remote_public || cfg->verify)))
        goto fail;
    const char *binding = cfg->binding ? cfg->binding : "";
    size_t binding_len = strnlen(binding, CN_CHAN_MAX_BINDING + 1);
    if (binding_len > CN_CHAN_MAX_BINDING)
        goto fail;
    rc = CN_ECRYPTO;
    if (sodium_init() < 0)
        goto fail;
    rc = CN_EINVAL;
    unsigned offer;
    switch (cfg->cipher) {
    case CN_CHAN_CIPHER_AUTO:
        offer = MASK(CN_CHAN_CIPHER_CHACHA20POLY1305) |
                (aes_available() ? MASK(CN_CHAN_CIPHER_AES256GCM) : 0);
        break;
    case CN_CHAN_CIPHER_CHACHA20POLY1305:
        offer = MASK(CN_CHAN_CIPHER_CHACHA20POLY1305);
        break;
    case CN_CHAN_CIPHER_AES256GCM:
        if (!aes_available())
            goto fail;
        offer = MASK(CN_CHAN_CIPHER_AES256GCM);
        break;
    default:
        goto fail;
    }
    if (cfg->aes_impl != CN_CHAN_AES_DEFAULT && cfg->aes_impl != CN_CHAN_AES_SODIUM &&
        cfg->aes_impl != CN_CHAN_AES_EVP)
        goto fail;
    rc = CN_ENOMEM;
    c = calloc(1, sizeof(*c));
    if (!c)
        goto fail;
    c->role = (uint8_t)cfg->role;
    c->offer = (uint8_t)offer;
    c->aes_impl = (uint8_t)cn_aead_impl_resolve(cfg->aes_impl);
    c->now_ms = cfg->now_ms;
    c->rekey_bytes = cfg->rekey_bytes ? cfg->rekey_bytes : CN_CHAN_DEFAULT_REKEY_BYTES;
    c->rekey_ms =
        1000ull * (cfg->rekey_seconds ? cfg->rekey_seconds : CN_CHAN_DEFAULT_REKEY_SECONDS);
    c->max_age_ms =
        1000ull * (cfg->max_age_seconds ? cfg->max_age_seconds : CN_CHAN_DEFAULT_MAX_AGE_SECONDS);
    c->verify = cfg->verify;
    c->verify_arg = cfg->verify_arg;
    cn_buf_init(&c->partial, CN_CHAN_MAX_RECORD, 0);
    if (cfg->app_payload_len)
        memcpy(c->app, cfg->app_payload, cfg->app_payload_len);
    c->app_len = cfg->app_payload_len;

    /* Prologue: version and binding (hub URL) enter the transcript, so a
     * peer speaking another version or dialled under another URL fails. */
    memcpy(prologue, prologue_prefix, sizeof(prologue_prefix));
    memcpy(prologue + sizeof(prologue_prefix), binding, binding_len);
    cn_noise_config_t nc = {
        .role = cfg->role == CN_CHAN_INITIATOR ? CN_NOISE_INITIATOR : CN_NOISE_RESPONDER,
        .pattern = CN_NOISE_XK,
        .cipher = CN_NOISE_CHACHAPOLY,
        .prologue = prologue,
        .prologue_len = sizeof(prologue_prefix) + binding_len,
        .local_private = cfg->local_private,
        .remote_public = cfg->remote_public,
    };
    rc = CN_EINVAL; /* the configuration checked above leaves no other cause */
    c->hs = cn_noise_new(&nc, NULL, 0);
    if (!c->hs)
        goto fail;
    if (cfg->remote_public) {
        memcpy(c->rs, cfg->remote_public, CN_CHAN_KEY_LEN);
        c->has_rs = true;
    }
    return c;

fail:
    cn_errf(rc, err, errlen, "secure channel: %s", cn_strerror(rc));
    cn_chan_free(c);
    return NULL;
}

void cn_chan_free(cn_chan_t *c)
{
    if (!c)
        return;
    cn_noise_free(c->hs);
    cn_buf_free(&c->partial);
    cn_aead_wipe(&c->tx);
    cn_aead_wipe(&c->rx);
    sodium_memzero(c, sizeof(*c));
    free(c);
}

/* ---- handshake ---- */

/* Writes the next handshake message as one HANDSHAKE record into send_out. */
static int send_handshake(cn_chan_t *c, const uint8_t *payload, size_t payload_len,
                          cn_buf_t *send_out)
{
    uint8_t msg[HS_MAX_BODY];
    size_t n = 0;
    int rc = cn_noise_write_message(c->hs, payload, payload_len, msg, sizeof(msg), &n);
    if (rc)
        return rc;
    uint8_t *rec = cn_buf_reserve(send_out, CN_CHAN_HEADER + n, &rc);
    if (!rec)
        return rc;
    put_header(rec, CN_CHAN_REC_HANDSHAKE, n);
    memcpy(rec + CN_CHAN_HEADER, msg, n);
    cn_buf_commit(send_out, CN_CHAN_HEADER + n);
    return 0;
}

static int noise_cipher(int cipher)
{
    return cipher == CN_CHAN_CIPHER_AES256GCM ? CN_NOISE_AESGCM : CN_NOISE_CHACHAPOLY;
}

/* OpenSSL for AES-256-GCM records unless told otherwise; should libcrypto
 * refuse the cipher, libsodium (which negotiated AES-256-GCM) does them. */
static int setup_engines(cn_chan_t *c)
{
    int rc = cn_aead_setup(&c->tx, CN_AEAD_SEAL, c->aes_impl);
    if (rc == 0)
        rc = cn_aead_setup(&c->rx, CN_AEAD_OPEN, c->aes_impl);
    if (rc == CN_ECRYPTO) {
        cn_aead_use_sodium(&c->tx);
        cn_aead_use_sodium(&c->rx);
        c->aes_impl = CN_AEAD_IMPL_SODIUM;
        rc = 0;
    }
    return rc;
}

static int establish(cn_chan_t *c)
{
    int rc = cn_noise_split(c->hs, noise_cipher(c->cipher), &c->tx.cs, &c->rx.cs);
    if (rc == 0)
        rc = setup_engines(c);
    if (rc)
        return rc;
    memcpy(c->hh, cn_noise_handshake_hash(c->hs), CN_CHAN_HASH_LEN);
    cn_noise_free(c->hs); /* wipes what remains of the handshake */
    c->hs = NULL;
    c->established = true;
    c->established_ms = c->tx_rekey_ms = c->now_ms;
    return 0;
}

int cn_chan_start(cn_chan_t *c, cn_buf_t *send_out)
{
    if (!c || !send_out)
        return CN_EINVAL;
    if (c->err)
        return c->err;
    if (c->role == CN_CHAN_RESPONDER)
        return 0;
    if (!c->hs || !cn_noise_is_my_turn(c->hs))
        return CN_ESTATE;
    /* Message 1 payload: version, then the offered ciphers, preferred first. */
    uint8_t p[4];
    size_t n = 2;
    p[0] = CN_CHAN_VERSION;
    if (c->offer & MASK(CN_CHAN_CIPHER_AES256GCM))
        p[n++] = CN_CHAN_CIPHER_AES256GCM;
    if (c->offer & MASK(CN_CHAN_CIPHER_CHACHA20POLY1305))
        p[n++] = CN_CHAN_CIPHER_CHACHA20POLY1305;
    p[1] = (uint8_t)(n - 2);
    int rc = send_handshake(c, p, n, send_out);
    return rc ? fail(c, rc) : 0;
}

/* Responder, message 1: check the version and choose the cipher. AES-256-GCM
 * wins where both sides offer it. */
static int on_msg1(cn_chan_t *c, const uint8_t *p, size_t n, cn_buf_t *send_out)
{
    if (n < 2)
        return CN_EPROTO;
    if (p[0] != CN_CHAN_VERSION)
        return CN_EVERSION;
    if (p[1] == 0 || n != 2 + (size_t)p[1])
        return CN_EPROTO;
    unsigned theirs = 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 8)
            theirs |= MASK(p[i]); /* unknown identifiers are ignored */
    unsigned common = theirs & c->offer;
    if (common & MASK(CN_CHAN_CIPHER_AES256GCM))
        c->cipher = CN_CHAN_CIPHER_AES256GCM;
    else if (common & MASK(CN_CHAN_CIPHER_CHACHA20POLY1305))
        c->cipher = CN_CHAN_CIPHER_CHACHA20POLY1305;
    else
        return CN_EREFUSED;
    uint8_t reply[2] = {CN_CHAN_VERSION, c->cipher};
    return send_handshake(c, reply, sizeof(reply), send_out);
}

/* Initiator, message 2: the responder's choice must be one we offered. It is
 * authenticated by this message's tag, which covers message 1 as we sent it,
 * so an attacker cannot strip AES-256-GCM from our offer. */
static int on_msg2(cn_chan_t *c, const uint8_t *p, size_t n, cn_buf_t *send_out)
{
    if (n != 2)
        return CN_EPROTO;
    if (p[0] != CN_CHAN_VERSION)
        return CN_EVERSION;
    if (p[1] >= 8 || !(c->offer & MASK(p[1])))
        return CN_EPROTO;
    c->cipher = p[1];
    int rc = send_handshake(c, c->app, c->app_len, send_out);
    sodium_memzero(c->app, sizeof(c->app)); /* e.g. an enrollment token: sent, not needed */
    c->app_len = 0;
    return rc ? rc : establish(c);
}

/* Responder, message 3: the initiator's static key and payload. */
static int on_msg3(cn_chan_t *c, const uint8_t *p, size_t n)
{
    memcpy(c->rs, cn_noise_remote_static(c->hs), CN_CHAN_KEY_LEN);
    c->has_rs = true;
    memcpy(c->app, p, n);
    c->app_len = n;
    c->has_app = true;
    if (c->verify) {
        int rc = c->verify(c->verify_arg, c->rs, c->app, c->app_len);
        if (rc)
            return rc < 0 ? rc : CN_EREFUSED;
    }
    return establish(c);
}

static int on_handshake(cn_chan_t *c, const uint8_t *body, size_t len, cn_buf_t *send_out)
{
    uint8_t payload[CN_CHAN_MAX_APP_PAYLOAD];
    size_t n = 0;
    bool first = c->role == CN_CHAN_RESPONDER && !c->cipher;
    int rc = cn_noise_read_message(c->hs, body, len, payload, sizeof(payload), &n);
    if (rc == 0) {
        if (first)
            rc = on_msg1(c, payload, n, send_out);
        else if (c->role == CN_CHAN_INITIATOR)
            rc = on_msg2(c, payload, n, send_out);
        else
            rc = on_msg3(c, payload, n);
    }
    sodium_memzero(payload, n);
    return rc;
}

/* ---- records ---- */

/* Validates a header against the current state before its body is read, so a
 * bogus length is refused without buffering anything for it. */
static int check_header(const cn_chan_t *c, const uint8_t *h, size_t *body_len)
{
    size_t len = (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    switch (h[0]) {
    case CN_CHAN_REC_HANDSHAKE:
        if (c->established || !c->hs || cn_noise_is_my_turn(c->hs))
            return CN_EPROTO;
        if (len > HS_MAX_BODY)
            return CN_ETOOBIG;
        break;
    case CN_CHAN_REC_DATA:
    case CN_CHAN_REC_DATA_KEY_UPDATE:
        if (!c->established)
            return CN_EPROTO;
        if (len > MAX_BODY)
            return CN_ETOOBIG;
        if (len < CN_CHAN_TAG)
            return CN_EPROTO;
        break;
    case CN_CHAN_REC_CLOSE:
        if (!c->established)
            return CN_EPROTO;
        if (len != CN_CHAN_TAG)
            return CN_EPROTO;
        break;
    default:
        return CN_EUNKNOWN;
    }
    *body_len = len;
    return 0;
}

/* Processes one whole record whose header check_header() accepted. */
static int on_record(cn_chan_t *c, const uint8_t *rec, size_t body_len, cn_buf_t *plain_out,
                     cn_buf_t *send_out)
{
    const uint8_t *body = rec + CN_CHAN_HEADER;
    if (rec[0] == CN_CHAN_REC_HANDSHAKE)
        return on_handshake(c, body, body_len, send_out);
    size_t plain_len = body_len - CN_CHAN_TAG;
    uint8_t empty[1];
    uint8_t *dst = empty;
    int rc;
    if (plain_len) {
        dst = cn_buf_reserve(plain_out, plain_len, &rc);
        if (!dst)
            return rc;
    }
    /* The header is the associated data: type and length are authenticated. */
    rc = cn_aead_decrypt(&c->rx, rec, CN_CHAN_HEADER, body, body_len, dst);
    if (rc)
        return rc;
    if (rec[0] == CN_CHAN_REC_CLOSE) {
        c->peer_closed = true;
        return 0;
    }
    cn_buf_commit(plain_out, plain_len);
    c->stats.rx_records++;
    c->stats.rx_bytes += plain_len;
    if (rec[0] == CN_CHAN_REC_DATA_KEY_UPDATE) {
        rc = cn_aead_rekey(&c->rx);
        c->stats.rx_rekeys++;
    }
    return rc;
}

/* Moves input into the partial record; processes it once complete. */
static int feed_partial(cn_chan_t *c, const uint8_t **in, size_t *len, cn_buf_t *plain_out,
                        cn_buf_t *send_out)
{
    cn_buf_t *b = &c->partial;
    int rc;
    if (b->len < CN_CHAN_HEADER) {
        size_t take = CN_CHAN_HEADER - b->len < *len ? CN_CHAN_HEADER - b->len : *len;
        rc = cn_buf_append(b, *in, take);
        if (rc)
            return rc;
        *in += take, *len -= take;
        if (b->len < CN_CHAN_HEADER)
            return 0;
        rc = check_header(c, cn_buf_data(b), &c->partial_body);
        if (rc)
            return rc;
    }
    size_t want = CN_CHAN_HEADER + c->partial_body - b->len;
    size_t take = want < *len ? want : *len;
    rc = cn_buf_append(b, *in, take);
    if (rc)
        return rc;
    *in += take, *len -= take;
    if (b->len < CN_CHAN_HEADER + c->partial_body)
        return 0;
    rc = on_record(c, cn_buf_data(b), c->partial_body, plain_out, send_out);
    cn_buf_reset(b);
    return rc;
}

static int feed(cn_chan_t *c, const uint8_t *in, size_t len, cn_buf_t *plain_out,
                cn_buf_t *send_out)
{
    int rc;
    while (len && c->partial.len) {
        if (c->peer_closed)
            return CN_EPROTO;
        rc = feed_partial(c, &in, &len, plain_out, send_out);
        if (rc)
            return rc;
    }
    while (len >= CN_CHAN_HEADER) {
        size_t body_len;
        if (c->peer_closed) /* nothing may follow CLOSE */
            return CN_EPROTO;
        rc = check_header(c, in, &body_len);
        if (rc)
            return rc;
        if (len - CN_CHAN_HEADER < body_len)
            break;
        rc = on_record(c, in, body_len, plain_out, send_out);
        if (rc)
            return rc;
        in += CN_CHAN_HEADER + body_len;
        len -= CN_CHAN_HEADER + body_len;
    }
    if (len) {
        if (c->peer_closed)
            return CN_EPROTO;
        /* Less than one record (its header, if complete, already checked). */
        return feed_partial(c, &in, &len, plain_out, send_out);
    }
    return 0;
}

int cn_chan_feed(cn_chan_t *c, const uint8_t *in, size_t len, cn_buf_t *plain_out,
                 cn_buf_t *send_out)
{
    if (!c)
        return CN_EINVAL;
    if (c->err)
        return c->err;
    if (c->ended)
        return CN_ECLOSED;
    if ((!in && len) || !plain_out || !send_out)
        return CN_EINVAL;
    int rc = check_age(c);
    if (rc == 0)
        rc = feed(c, in, len, plain_out, send_out);
    return rc ? fail(c, rc) : 0;
}

int cn_chan_eof(cn_chan_t *c)
{
    if (!c)
        return CN_EINVAL;
    if (c->err)
        return c->err;
    c->ended = true;
    if (c->partial.len)
        return fail(c, CN_EPROTO);
    if (!c->peer_closed)
        return fail(c, CN_ECLOSED);
    return 0;
}

void cn_chan_set_now(cn_chan_t *c, uint64_t now_ms)
{
    if (c)
        c->now_ms = now_ms;
}

static int seal(cn_chan_t *c, int type, uint8_t *rec, size_t plain_len)
{
    if (!c || !rec)
        return CN_EINVAL;
    if (c->err)
        return c->err;
    if (!c->established || c->sent_close)
        return CN_ESTATE;
    if (plain_len > CN_CHAN_MAX_PLAINTEXT)
        return CN_ETOOBIG;
    int rc = check_age(c);
    if (rc)
        return rc;
    bool rekey = type == CN_CHAN_REC_DATA && (c->tx_since_rekey >= c->rekey_bytes ||
                                              elapsed_ms(c, c->tx_rekey_ms) >= c->rekey_ms);
    if (rekey)
        type = CN_CHAN_REC_DATA_KEY_UPDATE;
    put_header(rec, type, plain_len + CN_CHAN_TAG);
    rc = cn_aead_encrypt(&c->tx, rec, CN_CHAN_HEADER, rec + CN_CHAN_HEADER, plain_len);
    if (rc == 0 && rekey)
        rc = cn_aead_rekey(&c->tx);
    if (rc)
        return fail(c, rc);
    if (type == CN_CHAN_REC_CLOSE) {
        c->sent_close = true;
    } else {
        c->stats.tx_records++;
        c->stats.tx_bytes += plain_len;
        c->tx_since_rekey += plain_len;
    }
    if (rekey) {
        c->stats.tx_rekeys++;
        c->tx_since_rekey = 0;
        c->tx_rekey_ms = c->now_ms;
    }
    return (int)(CN_CHAN_HEADER + plain_len + CN_CHAN_TAG);
}

int cn_chan_seal(cn_chan_t *c, uint8_t *rec, size_t plain_len)
{
    return seal(c, CN_CHAN_REC_DATA, rec, plain_len);
}

int cn_chan_seal_close(cn_chan_t *c, uint8_t *rec)
{
    return seal(c, CN_CHAN_REC_CLOSE, rec, 0);
}

/* ---- accessors ---- */

int cn_chan_state(const cn_chan_t *c)
{
    if (!c || c->err)
        return CN_CHAN_FAILED;
    if (c->peer_closed)
        return CN_CHAN_CLOSED;
    return c->established ? CN_CHAN_ESTABLISHED : CN_CHAN_HANDSHAKING;
}

int cn_chan_error(const cn_chan_t *c)
{
    return c ? c->err : CN_EINVAL;
}

bool cn_chan_is_established(const cn_chan_t *c)
{
    return c && !c->err && c->established;
}

int cn_chan_role(const cn_chan_t *c)
{
    return c ? c->role : CN_EINVAL;
}

const uint8_t *cn_chan_remote_static(const cn_chan_t *c)
{
    return c && !c->err && c->has_rs ? c->rs : NULL;
}

const uint8_t *cn_chan_app_payload(const cn_chan_t *c, size_t *len)
{
    if (len)
        *len = 0;
    if (!cn_chan_is_established(c) || !c->has_app)
        return NULL;
    if (len)
        *len = c->app_len;
    return c->app;
}

const char *cn_chan_cipher_name(const cn_chan_t *c)
{
    if (!c || c->err)
        return NULL;
    switch (c->cipher) {
    case CN_CHAN_CIPHER_AES256GCM:
        return "AES-256-GCM";
    case CN_CHAN_CIPHER_CHACHA20POLY1305:
        return "ChaCha20-Poly1305";
    }
    return NULL;
}

const char *cn_chan_cipher_impl(const cn_chan_t *c)
{
    if (!cn_chan_is_established(c))
        return NULL;
    return cn_aead_uses_evp(&c->tx) ? "OpenSSL" : "libsodium";
}

const uint8_t *cn_chan_handshake_hash(const cn_chan_t *c)
{
    return cn_chan_is_established(c) ? c->hh : NULL;
}

void cn_chan_get_stats(const cn_chan_t *c, cn_chan_stats_t *out)
{
    if (!out)
        return;
    if (c)
        *out = c->stats;
    else
        memset(out, 0, sizeof(*out));
}

/* ---- keys ---- */

int cn_chan_keypair(uint8_t pub[CN_CHAN_KEY_LEN], uint8_t priv[CN_CHAN_KEY_LEN])
{
    if (!pub || !priv)
        return CN_EINVAL;
    if (sodium_init() < 0)
        return CN_ECRYPTO;
    randombytes_buf(priv, CN_CHAN_KEY_LEN);
    return cn_chan_public_key(priv, pub);
}

int cn_chan_public_key(const uint8_t priv[CN_CHAN_KEY_LEN], uint8_t pub[CN_CHAN_KEY_LEN])
{
    if (!pub || !priv)
        return CN_EINVAL;
    if (sodium_init() < 0 || crypto_scalarmult_curve25519_base(pub, priv) != 0)
        return CN_ECRYPTO;
    return 0;
}

int cn_chan_fingerprint(const uint8_t pub[CN_CHAN_KEY_LEN], char out[CN_CHAN_FINGERPRINT_SIZE])
{
    if (!pub || !out)
        return CN_EINVAL;
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, pub, CN_CHAN_KEY_LEN);
    sodium_bin2base64(out, CN_CHAN_FINGERPRINT_SIZE, digest, 16,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}
