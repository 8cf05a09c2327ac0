/* cn_noise: every published vector we support, byte for byte, then the ways a
 * handshake must fail (wrong turn, tampering, truncation, wrong keys, limits). */
#include "cn_test.h"

#include "cn_err.h"
#include "cn_noise.h"

#include <jansson.h>

/* ---- vectors ---- */

/* Decodes a hex string; returns a malloc'd buffer (at least 1 byte) or NULL. */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    if (n % 2)
        return NULL;
    uint8_t *out = malloc(n / 2 + 1);
    assert_non_null(out);
    size_t bin_len = 0;
    assert_int_equal(sodium_hex2bin(out, n / 2 + 1, hex, n, NULL, &bin_len, NULL), 0);
    assert_int_equal(bin_len, n / 2);
    *len = bin_len;
    return out;
}

/* A hex field of a vector, or NULL when absent. */
static uint8_t *field(json_t *v, const char *name, size_t want_len)
{
    json_t *f = json_object_get(v, name);
    if (!f)
        return NULL;
    size_t len = 0;
    uint8_t *b = unhex(json_string_value(f), &len);
    if (want_len)
        assert_int_equal(len, want_len);
    return b;
}

static uint8_t *first_psk(json_t *v, const char *name)
{
    json_t *a = json_object_get(v, name);
    if (!a || json_array_size(a) == 0)
        return NULL;
    assert_int_equal(json_array_size(a), 1); /* our patterns carry one psk */
    size_t len = 0;
    uint8_t *b = unhex(json_string_value(json_array_get(a, 0)), &len);
    assert_int_equal(len, 32);
    return b;
}

static bool parse_name(const char *name, int *pattern, int *cipher)
{
    static const struct {
        const char *s;
        int v;
    } pats[] = {{"NN", CN_NOISE_NN},
                {"KK", CN_NOISE_KK},
                {"IK", CN_NOISE_IK},
                {"XK", CN_NOISE_XK},
                {"XKpsk3", CN_NOISE_XKPSK3}};
    char pat[32], dh[32], ciph[32], hash[32];
    if (sscanf(name, "Noise_%31[^_]_%31[^_]_%31[^_]_%31s", pat, dh, ciph, hash) != 4)
        return false;
    if (strcmp(dh, "25519") || strcmp(hash, "SHA256"))
        return false;
    if (!strcmp(ciph, "ChaChaPoly"))
        *cipher = CN_NOISE_CHACHAPOLY;
    else if (!strcmp(ciph, "AESGCM"))
        *cipher = CN_NOISE_AESGCM;
    else
        return false;
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        if (!strcmp(pat, pats[i].s)) {
            *pattern = pats[i].v;
            return true;
        }
    }
    return false;
}

static void run_vector(json_t *v, int pattern, int cipher)
{
    const char *name = json_string_value(json_object_get(v, "protocol_name"));
    size_t ip_len = 0, rp_len = 0, hh_len = 0;
    uint8_t *ip = unhex(json_string_value(json_object_get(v, "init_prologue")), &ip_len);
    uint8_t *rp = unhex(json_string_value(json_object_get(v, "resp_prologue")), &rp_len);
    uint8_t *hh = unhex(json_string_value(json_object_get(v, "handshake_hash")), &hh_len);
    uint8_t *is = field(v, "init_static", 32), *ie = field(v, "init_ephemeral", 32);
    uint8_t *irs = field(v, "init_remote_static", 32), *ipsk = first_psk(v, "init_psks");
    uint8_t *rs = field(v, "resp_static", 32), *re = field(v, "resp_ephemeral", 32);
    uint8_t *rrs = field(v, "resp_remote_static", 32), *rpsk = first_psk(v, "resp_psks");

    cn_noise_config_t ic = {.role = CN_NOISE_INITIATOR,
                            .pattern = pattern,
                            .cipher = cipher,
                            .prologue = ip,
                            .prologue_len = ip_len,
                            .local_private = is,
                            .remote_public = irs,
                            .psk = ipsk,
                            .fixed_ephemeral = ie};
    cn_noise_config_t rc = {.role = CN_NOISE_RESPONDER,
                            .pattern = pattern,
                            .cipher = cipher,
                            .prologue = rp,
                            .prologue_len = rp_len,
                            .local_private = rs,
                            .remote_public = rrs,
                            .psk = rpsk,
                            .fixed_ephemeral = re};
    cn_noise_t *hi = cn_noise_new(&ic, NULL, 0);
    assert_non_null(hi);
    cn_noise_t *hr = cn_noise_new(&rc, NULL, 0);
    assert_non_null(hr);
    assert_string_equal(cn_noise_protocol_name(hi), name);

    cn_noise_cs_t send[2], recv[2]; /* [0] initiator, [1] responder */
    json_t *msgs = json_object_get(v, "messages");
    bool split = false;
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        size_t pl_len = 0, ct_len = 0;
        uint8_t *pl = unhex(json_string_value(json_object_get(m, "payload")), &pl_len);
        uint8_t *ct = unhex(json_string_value(json_object_get(m, "ciphertext")), &ct_len);
        int from = (int)(i % 2); /* messages alternate, initiator first */
        cn_noise_t *w = from ? hr : hi, *r = from ? hi : hr;
        uint8_t out[1024], back[1024];
        size_t out_len = 0, back_len = 0;
        assert_true(pl_len + 64 <= sizeof(out));
        if (!split) {
            assert_true(cn_noise_is_my_turn(w));
            assert_int_equal(cn_noise_write_message(w, pl, pl_len, out, sizeof(out), &out_len), 0);
            assert_int_equal(out_len, ct_len);
            assert_memory_equal(out, ct, ct_len);
            assert_int_equal(cn_noise_read_message(r, out, out_len, back, sizeof(back), &back_len),
                             0);
            assert_int_equal(back_len, pl_len);
            assert_memory_equal(back, pl, pl_len);
            if (cn_noise_is_complete(hi) && cn_noise_is_complete(hr)) {
                assert_memory_equal(cn_noise_handshake_hash(hi), hh, 32);
                assert_memory_equal(cn_noise_handshake_hash(hr), hh, 32);
                assert_int_equal(cn_noise_split(hi, cipher, &send[0], &recv[0]), 0);
                assert_int_equal(cn_noise_split(hr, cipher, &send[1], &recv[1]), 0);
                split = true;
            }
        } else {
            memcpy(out, pl, pl_len);
            assert_int_equal(cn_noise_cs_encrypt(&send[from], NULL, 0, out, pl_len), 0);
            assert_int_equal(pl_len + CN_NOISE_TAG_LEN, ct_len);
            assert_memory_equal(out, ct, ct_len);
            assert_int_equal(cn_noise_cs_decrypt(&recv[1 - from], NULL, 0, out, ct_len, back), 0);
            assert_memory_equal(back, pl, pl_len);
        }
        free(pl);
        free(ct);
    }
    assert_true(split);
    /* The remote static key each side learned or was given is the peer's. */
    if (rs) {
        uint8_t pub[32];
        crypto_scalarmult_curve25519_base(pub, rs);
        assert_memory_equal(cn_noise_remote_static(hi), pub, 32);
    }
    if (is) {
        uint8_t pub[32];
        crypto_scalarmult_curve25519_base(pub, is);
        assert_memory_equal(cn_noise_remote_static(hr), pub, 32);
    }
    for (int k = 0; k < 2; k++) {
        cn_noise_cs_wipe(&send[k]);
        cn_noise_cs_wipe(&recv[k]);
    }
    cn_noise_free(hi);
    cn_noise_free(hr);
    free(ip), free(rp), free(hh), free(is), free(ie), free(irs), free(ipsk);
    free(rs), free(re), free(rrs), free(rpsk);
}

static void test_vectors(void **state)
{
    char *path = cn_test_shared_path("noise-vectors.json");
    if (!path) {
        /* The known-answer test is what ties our Noise to the spec: it may
         * not pass by running nothing. Under CI its absence fails; elsewhere
         * it skips with one line nobody can miss. */
        if (cn_test_in_ci())
            fail_msg("noise vectors absent (%s/noise-vectors.json) and CI is set: the Noise "
                     "known-answer test must run",
                     cn_test_shared_dir());
        fprintf(stderr,
                "SKIP test_noise: noise vectors absent (%s/noise-vectors.json): the Noise "
                "known-answer test did NOT run\n",
                cn_test_shared_dir());
        skip();
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    free(path);
    assert_non_null(root);
    json_t *vectors = json_object_get(root, "vectors");
    assert_true(json_is_array(vectors));
    int ran = 0, skipped = 0;
    for (size_t i = 0; i < json_array_size(vectors); i++) {
        json_t *v = json_array_get(vectors, i);
        const char *name = json_string_value(json_object_get(v, "protocol_name"));
        int pattern, cipher;
        if (!name || !parse_name(name, &pattern, &cipher)) {
            skipped++;
            continue;
        }
        if (cipher == CN_NOISE_AESGCM && !crypto_aead_aes256gcm_is_available()) {
            print_message("skipping %s: this CPU has no AES-GCM\n", name);
            skipped++;
            continue;
        }
        run_vector(v, pattern, cipher);
        ran++;
    }
    print_message("noise vectors: %d run, %d skipped\n", ran, skipped);
    assert_true(ran > 0);
    json_decref(root);
}

/* ---- negative tests ---- */

struct keys {
    uint8_t i_priv[32], i_pub[32], r_priv[32], r_pub[32];
};

static void make_keys(struct keys *k)
{
    assert_true(sodium_init() >= 0);
    randombytes_buf(k->i_priv, 32);
    randombytes_buf(k->r_priv, 32);
    assert_int_equal(crypto_scalarmult_curve25519_base(k->i_pub, k->i_priv), 0);
    assert_int_equal(crypto_scalarmult_curve25519_base(k->r_pub, k->r_priv), 0);
}

static cn_noise_t *xk(int role, const struct keys *k, const uint8_t *pinned)
{
    static const uint8_t prologue[] = "test";
    cn_noise_config_t c = {.role = role,
                           .pattern = CN_NOISE_XK,
                           .cipher = CN_NOISE_CHACHAPOLY,
                           .prologue = prologue,
                           .prologue_len = sizeof(prologue),
                           .local_private = role == CN_NOISE_INITIATOR ? k->i_priv : k->r_priv,
                           .remote_public = role == CN_NOISE_INITIATOR ? pinned : NULL};
    char err[128] = "";
    cn_noise_t *hs = cn_noise_new(&c, err, sizeof(err));
    if (!hs)
        fail_msg("cn_noise_new: %s", err);
    return hs;
}

static void test_config_refused(void **state)
{
    struct keys k;
    make_keys(&k);
    char err[128] = "";
    cn_noise_config_t c = {.role = CN_NOISE_INITIATOR, .pattern = CN_NOISE_XK, .cipher = 0};
    c.local_private = k.i_priv; /* XK initiator without the responder's key */
    assert_null(cn_noise_new(&c, err, sizeof(err)));
    assert_string_equal(err, "Noise handshake: invalid argument or malformed input");
    c.remote_public = k.r_pub;
    c.psk = k.r_priv; /* psk on a pattern without one */
    assert_null(cn_noise_new(&c, err, sizeof(err)));
    assert_string_equal(err, "Noise handshake: invalid argument or malformed input");
    c.psk = NULL;
    c.pattern = 99;
    assert_null(cn_noise_new(&c, err, sizeof(err)));
    c.pattern = CN_NOISE_NN; /* NN uses no static keys */
    assert_null(cn_noise_new(&c, err, sizeof(err)));
    c.pattern = CN_NOISE_XK;
    c.cipher = 7;
    assert_null(cn_noise_new(&c, err, sizeof(err)));
    assert_string_equal(err, "Noise handshake: invalid argument or malformed input");
    assert_null(cn_noise_new(NULL, NULL, 0));
    cn_noise_free(NULL);
}

static void test_wrong_turn_is_sticky(void **state)
{
    struct keys k;
    make_keys(&k);
    cn_noise_t *r = xk(CN_NOISE_RESPONDER, &k, NULL);
    uint8_t out[256];
    size_t n = 0;
    assert_false(cn_noise_is_my_turn(r));
    assert_int_equal(cn_noise_write_message(r, NULL, 0, out, sizeof(out), &n), CN_ESTATE);
    /* Failed for good: even a legal call now returns the same error. */
    assert_int_equal(cn_noise_read_message(r, out, 48, out, sizeof(out), &n), CN_ESTATE);
    cn_noise_t *i = xk(CN_NOISE_INITIATOR, &k, k.r_pub);
    uint8_t tmp[32];
    size_t tn;
    assert_int_equal(cn_noise_read_message(i, out, 48, tmp, sizeof(tmp), &tn), CN_ESTATE);
    cn_noise_cs_t a, b;
    assert_int_equal(cn_noise_split(i, 0, &a, &b), CN_ESTATE);
    cn_noise_free(r);
    cn_noise_free(i);
}

/* Runs a full XK handshake, optionally corrupting message `bad` with `mutate`. */
static int run_xk(const struct keys *k, const uint8_t *pinned, int bad,
                  size_t (*mutate)(uint8_t *, size_t))
{
    cn_noise_t *hs[2] = {xk(CN_NOISE_INITIATOR, k, pinned), xk(CN_NOISE_RESPONDER, k, NULL)};
    int rc = 0;
    for (int m = 0; m < 3 && rc == 0; m++) {
        uint8_t msg[256], pl[256];
        size_t n = 0, pn = 0;
        assert_int_equal(
            cn_noise_write_message(hs[m % 2], (const uint8_t *)"hi", 2, msg, sizeof(msg), &n), 0);
        if (m == bad)
            n = mutate(msg, n);
        rc = cn_noise_read_message(hs[1 - m % 2], msg, n, pl, sizeof(pl), &pn);
        if (rc == 0) {
            assert_int_equal(pn, 2);
        } else {
            /* A failed handshake exposes nothing and stays failed. */
            assert_null(cn_noise_handshake_hash(hs[1 - m % 2]));
            assert_int_equal(cn_noise_read_message(hs[1 - m % 2], msg, n, pl, sizeof(pl), &pn), rc);
        }
    }
    if (rc == 0) {
        assert_true(cn_noise_is_complete(hs[0]) && cn_noise_is_complete(hs[1]));
        assert_memory_equal(cn_noise_handshake_hash(hs[0]), cn_noise_handshake_hash(hs[1]), 32);
        assert_memory_equal(cn_noise_remote_static(hs[1]), k->i_pub, 32);
    }
    cn_noise_free(hs[0]);
    cn_noise_free(hs[1]);
    return rc;
}

static size_t flip_first(uint8_t *m, size_t n)
{
    m[0] ^= 1;
    return n;
}
static size_t flip_last(uint8_t *m, size_t n)
{
    m[n - 1] ^= 0x80;
    return n;
}
static size_t cut_one(uint8_t *m, size_t n)
{
    return n - 1;
}
static size_t cut_short(uint8_t *m, size_t n)
{
    return 10;
}
static size_t zero_key(uint8_t *m, size_t n)
{
    memset(m, 0, 32); /* a low-order point as the ephemeral key */
    return n;
}
static size_t no_change(uint8_t *m, size_t n)
{
    return n;
}

static void test_tampering_detected(void **state)
{
    struct keys k;
    make_keys(&k);
    assert_int_equal(run_xk(&k, k.r_pub, -1, no_change), 0);
    for (int m = 0; m < 3; m++) {
        assert_int_equal(run_xk(&k, k.r_pub, m, flip_first), CN_EAUTH);
        assert_int_equal(run_xk(&k, k.r_pub, m, flip_last), CN_EAUTH);
        assert_int_equal(run_xk(&k, k.r_pub, m, cut_one), CN_EAUTH);
        assert_int_equal(run_xk(&k, k.r_pub, m, cut_short), CN_EPROTO);
    }
    assert_int_equal(run_xk(&k, k.r_pub, 0, zero_key), CN_EAUTH);
    /* An initiator pinning another key: the responder cannot read message 1. */
    assert_int_equal(run_xk(&k, k.i_pub, -1, no_change), CN_EAUTH);
}

static void test_psk_mismatch(void **state)
{
    struct keys k;
    make_keys(&k);
    uint8_t psk1[32], psk2[32];
    randombytes_buf(psk1, 32);
    memcpy(psk2, psk1, 32);
    psk2[31] ^= 1;
    cn_noise_config_t ic = {.role = CN_NOISE_INITIATOR,
                            .pattern = CN_NOISE_XKPSK3,
                            .local_private = k.i_priv,
                            .remote_public = k.r_pub,
                            .psk = psk1};
    cn_noise_config_t rc = {.role = CN_NOISE_RESPONDER,
                            .pattern = CN_NOISE_XKPSK3,
                            .local_private = k.r_priv,
                            .psk = psk2};
    cn_noise_t *hs[2] = {cn_noise_new(&ic, NULL, 0), cn_noise_new(&rc, NULL, 0)};
    assert_non_null(hs[0]);
    assert_non_null(hs[1]);
    uint8_t msg[256], pl[16];
    size_t n, pn;
    for (int m = 0; m < 3; m++) {
        assert_int_equal(cn_noise_write_message(hs[m % 2], NULL, 0, msg, sizeof(msg), &n), 0);
        int want = m == 2 ? CN_EAUTH : 0;
        assert_int_equal(cn_noise_read_message(hs[1 - m % 2], msg, n, pl, sizeof(pl), &pn), want);
    }
    cn_noise_free(hs[0]);
    cn_noise_free(hs[1]);
}

static void test_limits(void **state)
{
    struct keys k;
    make_keys(&k);
    static uint8_t big[CN_NOISE_MAX_MSG + 64];
    uint8_t pl[64];
    size_t n, pn;
    /* Output buffer too small. */
    cn_noise_t *i = xk(CN_NOISE_INITIATOR, &k, k.r_pub);
    assert_int_equal(cn_noise_write_message(i, pl, 17, big, 32 + 16 + 16, &n), CN_ETOOBIG);
    assert_int_equal(n, 0);
    cn_noise_free(i);
    /* Payload that would push the message past 65535 bytes. */
    i = xk(CN_NOISE_INITIATOR, &k, k.r_pub);
    assert_int_equal(
        cn_noise_write_message(i, big, CN_NOISE_MAX_MSG - 48 + 1, big, sizeof(big), &n),
        CN_ETOOBIG);
    cn_noise_free(i);
    /* The largest legal message passes. */
    i = xk(CN_NOISE_INITIATOR, &k, k.r_pub);
    cn_noise_t *r = xk(CN_NOISE_RESPONDER, &k, NULL);
    static uint8_t msg[CN_NOISE_MAX_MSG + 64], back[CN_NOISE_MAX_MSG];
    assert_int_equal(cn_noise_write_message(i, big, CN_NOISE_MAX_MSG - 48, msg, sizeof(msg), &n),
                     0);
    assert_int_equal(n, CN_NOISE_MAX_MSG);
    /* ... but not into a payload buffer that is too small, */
    cn_noise_t *r2 = xk(CN_NOISE_RESPONDER, &k, NULL);
    assert_int_equal(cn_noise_read_message(r2, msg, n, pl, sizeof(pl), &pn), CN_ETOOBIG);
    cn_noise_free(r2);
    assert_int_equal(cn_noise_read_message(r, msg, n, back, sizeof(back), &pn), 0);
    assert_int_equal(pn, CN_NOISE_MAX_MSG - 48);
    cn_noise_free(r);
    /* and never an input above the limit. */
    r = xk(CN_NOISE_RESPONDER, &k, NULL);
    assert_int_equal(cn_noise_read_message(r, msg, CN_NOISE_MAX_MSG + 1, back, sizeof(back), &pn),
                     CN_ETOOBIG);
    cn_noise_free(r);
    cn_noise_free(i);
}

static void test_cipher_state(void **state)
{
    assert_true(sodium_init() >= 0);
    for (int cipher = 0; cipher < 2; cipher++) {
        if (cipher == CN_NOISE_AESGCM && !crypto_aead_aes256gcm_is_available())
            continue;
        uint8_t key[32], buf[64 + 16], out[64];
        randombytes_buf(key, sizeof(key));
        cn_noise_cs_t a, b, stale;
        assert_int_equal(cn_noise_cs_init(&a, cipher, key), 0);
        assert_int_equal(cn_noise_cs_init(&b, cipher, key), 0);
        /* Rekey changes the key; a peer that did not rekey cannot read. */
        assert_int_equal(cn_noise_cs_rekey(&a), 0);
        assert_memory_not_equal(a.key, key, 32);
        stale = b;
        assert_int_equal(cn_noise_cs_rekey(&b), 0);
        assert_memory_equal(a.key, b.key, 32);
        cn_test_fill(buf, 64, 3);
        assert_int_equal(cn_noise_cs_encrypt(&a, (const uint8_t *)"ad", 2, buf, 64), 0);
        assert_int_equal(cn_noise_cs_decrypt(&stale, (const uint8_t *)"ad", 2, buf, 80, out),
                         CN_EAUTH);
        assert_int_equal(cn_noise_cs_decrypt(&b, (const uint8_t *)"xx", 2, buf, 80, out), CN_EAUTH);
        assert_int_equal(b.n, 0); /* a failed decrypt does not use up the nonce */
        assert_int_equal(cn_noise_cs_decrypt(&b, (const uint8_t *)"ad", 2, buf, 80, out), 0);
        /* In-place decryption. */
        cn_test_fill(buf, 64, 4);
        memcpy(out, buf, 64);
        assert_int_equal(cn_noise_cs_encrypt(&a, NULL, 0, buf, 64), 0);
        assert_int_equal(cn_noise_cs_decrypt(&b, NULL, 0, buf, 80, buf), 0);
        assert_memory_equal(buf, out, 64);
        assert_int_equal(cn_noise_cs_decrypt(&b, NULL, 0, buf, 15, buf), CN_EPROTO);
        /* Nonce 2^64-1 is never used. */
        a.n = UINT64_MAX - 1;
        assert_int_equal(cn_noise_cs_encrypt(&a, NULL, 0, buf, 8), 0);
        assert_int_equal(cn_noise_cs_encrypt(&a, NULL, 0, buf, 8), CN_EEXHAUSTED);
        assert_int_equal(cn_noise_cs_rekey(&a), 0); /* rekey keeps the counter */
        assert_int_equal(a.n, UINT64_MAX);
        cn_noise_cs_t empty = {0};
        assert_int_equal(cn_noise_cs_encrypt(&empty, NULL, 0, buf, 8), CN_ESTATE);
        cn_noise_cs_wipe(&a);
        cn_noise_cs_wipe(&b);
        cn_noise_cs_wipe(&stale);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_config_refused),
        cmocka_unit_test(test_wrong_turn_is_sticky),
        cmocka_unit_test(test_tampering_detected),
        cmocka_unit_test(test_psk_mismatch),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_cipher_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
