/* End-to-end layer of reach streams: a cn_chan between two agents whose
 * peer key is the one the hub vouched for, with bounded buffers on both
 * sides. */
#include "cn_e2e.h"

#include "cn_chan.h"
#include "cn_err.h"
#include "cn_errmsg.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prologue binding: a name for this use of the channel and the tunnel id,
 * so neither an agent<->hub handshake nor one for another tunnel fits. */
#define BINDING_PREFIX "reach "

/* A handshake message is a few hundred bytes; a record at most
 * CN_CHAN_MAX_RECORD. */
#define WIRE_MAX (CN_CHAN_MAX_RECORD + 8192u)
#define PLAIN_MAX (CN_E2E_MAX_FEED + CN_CHAN_MAX_PLAINTEXT + 4096u)

struct cn_e2e {
    cn_chan_t *chan;
    uint8_t peer[CN_E2E_KEY_LEN];
    cn_buf_t wire, plain;
    size_t resv; /* plaintext space handed out by cn_e2e_seal_space(), 0 if none */
    int err;
    uint64_t sealed, opened;
};

/* Responder: message 3 must carry exactly the key the hub vouched for. */
static int verify_peer(void *arg, const uint8_t remote_static[CN_CHAN_KEY_LEN],
                       const uint8_t *payload, size_t payload_len)
{
    const cn_e2e_t *e = arg;
    (void)payload;
    (void)payload_len;
    return crypto_verify_32(remote_static, e->peer) == 0 ? 0 : CN_EREFUSED;
}

cn_e2e_t *cn_e2e_new(const cn_e2e_config_t *cfg, char *err, size_t errlen)
{
    char binding[sizeof(BINDING_PREFIX) + CN_E2E_MAX_REF];
    if (!cfg || !cfg->local_private || !cfg->peer_public || !cfg->tunnel_id ||
        (cfg->role != CN_E2E_INITIATOR && cfg->role != CN_E2E_RESPONDER) ||
        strnlen(cfg->tunnel_id, CN_E2E_MAX_REF + 1) > CN_E2E_MAX_REF) {
        cn_errf(CN_EINVAL, err, errlen, "end-to-end: bad configuration");
        return NULL;
    }
    cn_e2e_t *e = calloc(1, sizeof(*e));
    if (!e) {
        cn_errf(CN_ENOMEM, err, errlen, "end-to-end: out of memory");
        return NULL;
    }
    memcpy(e->peer, cfg->peer_public, CN_E2E_KEY_LEN);
    cn_buf_init(&e->wire, WIRE_MAX, 0);
    cn_buf_init(&e->plain, PLAIN_MAX, 0);
    snprintf(binding, sizeof(binding), "%s%s", BINDING_PREFIX, cfg->tunnel_id);
    bool initiator = cfg->role == CN_E2E_INITIATOR;
    /* No clock: the keys rotate by volume (1 GiB); a reach stream may live
     * as long as its two links do. */
    cn_chan_config_t cc = {
        .role = initiator ? CN_CHAN_INITIATOR : CN_CHAN_RESPONDER,
        .local_private = cfg->local_private,
        .remote_public = initiator ? cfg->peer_public : NULL,
        .binding = binding,
        .cipher = CN_CHAN_CIPHER_AUTO,
        .verify = initiator ? NULL : verify_peer,
        .verify_arg = initiator ? NULL : e,
    };
    e->chan = cn_chan_new(&cc, err, errlen);
    if (!e->chan) {
        cn_e2e_free(e);
        return NULL;
    }
    return e;
}

void cn_e2e_free(cn_e2e_t *e)
{
    if (!e)
        return;
    cn_chan_free(e->chan);
    cn_buf_free(&e->wire);
    if (e->plain.mem)
        sodium_memzero(e->plain.mem, e->plain.cap);
    cn_buf_free(&e->plain);
    sodium_memzero(e, sizeof(*e));
    free(e);
}

static int fail(cn_e2e_t *e, int rc)
{
    if (!e->err)
        e->err = rc;
    return e->err;
}

int cn_e2e_start(cn_e2e_t *e)
{
    if (e->err)
        return e->err;
    int rc = cn_chan_start(e->chan, &e->wire);
    return rc ? fail(e, rc) : 0;
}

int cn_e2e_feed(cn_e2e_t *e, const uint8_t *in, size_t len)
{
    if (e->err)
        return e->err;
    if (len > CN_E2E_MAX_FEED || e->plain.len)
        return CN_EINVAL;
    size_t before = e->plain.len;
    int rc = cn_chan_feed(e->chan, in, len, &e->plain, &e->wire);
    if (rc)
        return fail(e, rc);
    e->opened += e->plain.len - before;
    return 0;
}

int cn_e2e_eof(cn_e2e_t *e)
{
    if (e->err)
        return e->err;
    int rc = cn_chan_eof(e->chan);
    return rc ? fail(e, rc) : 0;
}

bool cn_e2e_ready(const cn_e2e_t *e)
{
    return !e->err && cn_chan_is_established(e->chan);
}

int cn_e2e_error(const cn_e2e_t *e)
{
    return e->err;
}

uint8_t *cn_e2e_seal_space(cn_e2e_t *e, size_t *cap)
{
    *cap = 0;
    e->resv = 0;
    if (!cn_e2e_ready(e) || e->wire.len)
        return NULL;
    uint8_t *rec = cn_buf_reserve(&e->wire, CN_CHAN_MAX_RECORD, NULL);
    if (!rec)
        return NULL;
    e->resv = CN_E2E_MAX_SEAL;
    *cap = e->resv;
    return rec + CN_CHAN_HEADER;
}

int cn_e2e_seal_commit(cn_e2e_t *e, size_t n)
{
    if (e->err)
        return e->err;
    if (!e->resv || n > e->resv)
        return CN_ESTATE;
    e->resv = 0;
    if (n == 0)
        return 0;
    /* The space sits right after the (empty) wire buffer's data. */
    uint8_t *rec = cn_buf_data(&e->wire) + e->wire.len;
    int len = cn_chan_seal(e->chan, rec, n);
    if (len < 0)
        return fail(e, len);
    cn_buf_commit(&e->wire, (size_t)len);
    e->sealed += n;
    return 0;
}

int cn_e2e_close(cn_e2e_t *e)
{
    if (e->err)
        return e->err;
    e->resv = 0;
    uint8_t *rec = cn_buf_reserve(&e->wire, CN_CHAN_HEADER + CN_CHAN_TAG, NULL);
    if (!rec)
        return fail(e, CN_ETOOBIG);
    int len = cn_chan_seal_close(e->chan, rec);
    if (len < 0)
        return fail(e, len);
    cn_buf_commit(&e->wire, (size_t)len);
    return 0;
}

cn_buf_t *cn_e2e_wire(cn_e2e_t *e)
{
    return &e->wire;
}

cn_buf_t *cn_e2e_plain(cn_e2e_t *e)
{
    return &e->plain;
}

uint64_t cn_e2e_bytes_sealed(const cn_e2e_t *e)
{
    return e->sealed;
}

uint64_t cn_e2e_bytes_opened(const cn_e2e_t *e)
{
    return e->opened;
}
