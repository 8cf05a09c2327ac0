/* cn_chan: the agent <-> hub channel as a specification. Handshake and cipher
 * negotiation, delivery in any split, the pinned hub key, tampering, replay,
 * reordering and truncation, rekeying, session age and the size limits; and
 * AES-256-GCM records sealed by libsodium and opened by OpenSSL, and back. */
#include "cn_test.h"

#include "cn_aead.h"
#include "cn_chan.h"
#include "cn_err.h"

#include <stdlib.h>

#include <sodium.h>

#define PLAIN_MAX (8u << 20)
#define HUB_URL "wss://hub.example:8443/agent"

struct keys {
    uint8_t agent_pub[32], agent_priv[32], hub_pub[32], hub_priv[32];
};

struct opts {
    int agent_cipher, hub_cipher;
    int agent_aes, hub_aes; /* enum cn_chan_aes_impl */
    const uint8_t *pin;     /* NULL: the real hub key */
    const char *agent_binding, *hub_binding;
    uint64_t rekey_bytes;
    uint32_t rekey_seconds, max_age_seconds;
    cn_chan_verify_fn verify;
    void *verify_arg;
};

struct side {
    cn_chan_t *c;
    cn_buf_t out;   /* records this side must send */
    cn_buf_t plain; /* plaintext this side received */
};

struct pair {
    struct keys k;
    struct side s[2]; /* [0] agent (initiator), [1] hub (responder) */
};

static const uint8_t app_payload[] = "enroll:0123456789abcdef";

static void keys_new(struct keys *k)
{
    assert_int_equal(cn_chan_keypair(k->agent_pub, k->agent_priv), 0);
    assert_int_equal(cn_chan_keypair(k->hub_pub, k->hub_priv), 0);
}

static cn_chan_t *side_new(struct side *s, int role, const struct keys *k, const struct opts *o)
{
    static const struct opts none;
    if (!o)
        o = &none;
    cn_chan_config_t cfg = {
        .role = role,
        .local_private = role == CN_CHAN_INITIATOR ? k->agent_priv : k->hub_priv,
        .remote_public = role == CN_CHAN_INITIATOR ? (o->pin ? o->pin : k->hub_pub) : NULL,
        .binding = role == CN_CHAN_INITIATOR ? (o->agent_binding ? o->agent_binding : HUB_URL)
                                             : (o->hub_binding ? o->hub_binding : HUB_URL),
        .app_payload = role == CN_CHAN_INITIATOR ? app_payload : NULL,
        .app_payload_len = role == CN_CHAN_INITIATOR ? sizeof(app_payload) : 0,
        .cipher = role == CN_CHAN_INITIATOR ? o->agent_cipher : o->hub_cipher,
        .aes_impl = role == CN_CHAN_INITIATOR ? o->agent_aes : o->hub_aes,
        .rekey_bytes = o->rekey_bytes,
        .rekey_seconds = o->rekey_seconds,
        .max_age_seconds = o->max_age_seconds,
        .now_ms = 1000000,
        .verify = role == CN_CHAN_RESPONDER ? o->verify : NULL,
        .verify_arg = o->verify_arg,
    };
    char err[128] = "";
    s->c = cn_chan_new(&cfg, err, sizeof(err));
    if (!s->c)
        fail_msg("cn_chan_new: %s", err);
    cn_buf_init(&s->out, 1u << 20, 0);
    cn_buf_init(&s->plain, PLAIN_MAX, 0);
    return s->c;
}

static void pair_new(struct pair *p, const struct opts *o)
{
    memset(p, 0, sizeof(*p));
    keys_new(&p->k);
    side_new(&p->s[0], CN_CHAN_INITIATOR, &p->k, o);
    side_new(&p->s[1], CN_CHAN_RESPONDER, &p->k, o);
}

static void side_free(struct side *s)
{
    cn_chan_free(s->c);
    cn_buf_free(&s->out);
    cn_buf_free(&s->plain);
    s->c = NULL;
}

static void pair_free(struct pair *p)
{
    side_free(&p->s[0]);
    side_free(&p->s[1]);
}

static int deliver(struct pair *p, int to, const uint8_t *b, size_t n)
{
    struct side *s = &p->s[to];
    return cn_chan_feed(s->c, b, n, &s->plain, &s->out);
}

/* Moves everything `from` has to send to its peer, in one piece or byte by byte. */
static int move(struct pair *p, int from, bool bytewise)
{
    cn_buf_t *out = &p->s[from].out;
    int rc = 0;
    if (!bytewise) {
        rc = deliver(p, 1 - from, cn_buf_data(out), out->len);
    } else {
        for (size_t i = 0; i < out->len && rc == 0; i++)
            rc = deliver(p, 1 - from, cn_buf_data(out) + i, 1);
    }
    cn_buf_reset(out);
    return rc;
}

/* Runs the handshake; returns the first error. */
static int handshake(struct pair *p, bool bytewise)
{
    int rc = cn_chan_start(p->s[0].c, &p->s[0].out);
    assert_int_equal(cn_chan_start(p->s[1].c, &p->s[1].out), 0); /* no-op for the hub */
    for (int from = 0; rc == 0 && (p->s[0].out.len || p->s[1].out.len); from = 1 - from)
        rc = move(p, from, bytewise);
    return rc;
}

static void established_pair(struct pair *p, const struct opts *o)
{
    pair_new(p, o);
    assert_int_equal(handshake(p, false), 0);
    assert_true(cn_chan_is_established(p->s[0].c));
    assert_true(cn_chan_is_established(p->s[1].c));
}

/* Seals `n` bytes of pattern `seed` from side `from` and appends the record
 * to its out buffer; returns the record length. */
static size_t send_data(struct pair *p, int from, size_t n, uint64_t seed)
{
    int err = 0;
    uint8_t *rec = cn_buf_reserve(&p->s[from].out, n + CN_CHAN_HEADER + CN_CHAN_TAG, &err);
    assert_non_null(rec);
    cn_test_fill(rec + CN_CHAN_HEADER, n, seed);
    int len = cn_chan_seal(p->s[from].c, rec, n);
    assert_int_equal(len, (int)(n + CN_CHAN_HEADER + CN_CHAN_TAG));
    cn_buf_commit(&p->s[from].out, (size_t)len);
    return (size_t)len;
}

static void expect_plain(const cn_buf_t *b, size_t off, size_t n, uint64_t seed)
{
    uint8_t *want = malloc(n ? n : 1);
    assert_non_null(want);
    cn_test_fill(want, n, seed);
    assert_true(b->len >= off + n);
    assert_memory_equal(cn_buf_data(b) + off, want, n);
    free(want);
}

/* ---- handshake and negotiation ---- */

static void test_handshake_and_negotiation(void **state)
{
    bool aes = sodium_init() >= 0 && crypto_aead_aes256gcm_is_available();
    const char *chacha = "ChaCha20-Poly1305", *gcm = "AES-256-GCM";
    struct {
        int agent, hub;
        const char *want; /* NULL: no common cipher */
        bool needs_aes;
    } cases[] = {
        {CN_CHAN_CIPHER_AUTO, CN_CHAN_CIPHER_AUTO, aes ? gcm : chacha, false},
        {CN_CHAN_CIPHER_CHACHA20POLY1305, CN_CHAN_CIPHER_AUTO, chacha, false},
        {CN_CHAN_CIPHER_AUTO, CN_CHAN_CIPHER_CHACHA20POLY1305, chacha, false},
        {CN_CHAN_CIPHER_CHACHA20POLY1305, CN_CHAN_CIPHER_CHACHA20POLY1305, chacha, false},
        {CN_CHAN_CIPHER_AES256GCM, CN_CHAN_CIPHER_AUTO, gcm, true},
        {CN_CHAN_CIPHER_AUTO, CN_CHAN_CIPHER_AES256GCM, gcm, true},
        {CN_CHAN_CIPHER_AES256GCM, CN_CHAN_CIPHER_CHACHA20POLY1305, NULL, true},
    };
    if (!aes)
        print_message("this CPU has no AES-GCM: only ChaCha20-Poly1305 cases run\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].needs_aes && !aes)
            continue;
        struct opts o = {.agent_cipher = cases[i].agent, .hub_cipher = cases[i].hub};
        struct pair p;
        pair_new(&p, &o);
        assert_int_equal(cn_chan_state(p.s[0].c), CN_CHAN_HANDSHAKING);
        assert_null(cn_chan_handshake_hash(p.s[0].c));
        int rc = handshake(&p, false);
        if (!cases[i].want) {
            assert_int_equal(rc, CN_EREFUSED);
            assert_int_equal(cn_chan_error(p.s[1].c), CN_EREFUSED);
            assert_false(cn_chan_is_established(p.s[0].c));
            pair_free(&p);
            continue;
        }
        assert_int_equal(rc, 0);
        for (int s = 0; s < 2; s++) {
            assert_int_equal(cn_chan_state(p.s[s].c), CN_CHAN_ESTABLISHED);
            assert_string_equal(cn_chan_cipher_name(p.s[s].c), cases[i].want);
            assert_int_equal(cn_chan_role(p.s[s].c), s);
        }
        assert_memory_equal(cn_chan_handshake_hash(p.s[0].c), cn_chan_handshake_hash(p.s[1].c),
                            CN_CHAN_HASH_LEN);
        assert_memory_equal(cn_chan_remote_static(p.s[0].c), p.k.hub_pub, 32);
        assert_memory_equal(cn_chan_remote_static(p.s[1].c), p.k.agent_pub, 32);
        size_t alen = 0;
        const uint8_t *a = cn_chan_app_payload(p.s[1].c, &alen);
        assert_int_equal(alen, sizeof(app_payload));
        assert_memory_equal(a, app_payload, alen);
        assert_null(cn_chan_app_payload(p.s[0].c, &alen));
        /* Data both ways. */
        send_data(&p, 0, 1000, 11);
        send_data(&p, 1, 2000, 12);
        assert_int_equal(move(&p, 0, false), 0);
        assert_int_equal(move(&p, 1, false), 0);
        expect_plain(&p.s[1].plain, 0, 1000, 11);
        expect_plain(&p.s[0].plain, 0, 2000, 12);
        pair_free(&p);
    }
}

static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 4096, 16384, 65536, 3, 40000};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/* Seals every size from `from` into its out buffer. */
static size_t send_sizes(struct pair *p, int from, uint64_t seed)
{
    size_t total = 0;
    for (size_t i = 0; i < NSIZES; i++) {
        send_data(p, from, sizes[i], seed + i);
        total += sizes[i];
    }
    return total;
}

static void expect_sizes(const cn_buf_t *b, size_t off, uint64_t seed)
{
    for (size_t i = 0; i < NSIZES; i++) {
        expect_plain(b, off, sizes[i], seed + i);
        off += sizes[i];
    }
}

static void test_any_split(void **state)
{
    struct pair p;
    pair_new(&p, NULL);
    assert_int_equal(handshake(&p, true), 0); /* handshake byte by byte */
    /* The same records delivered whole, byte by byte, and in random chunks. */
    size_t off = 0;
    for (int mode = 0; mode < 3; mode++) {
        uint64_t seed = 100 * (uint64_t)(mode + 1);
        size_t total = send_sizes(&p, 0, seed);
        cn_buf_t *out = &p.s[0].out;
        if (mode == 0) {
            assert_int_equal(move(&p, 0, false), 0);
        } else if (mode == 1) {
            assert_int_equal(move(&p, 0, true), 0);
        } else {
            uint64_t x = 7;
            for (size_t i = 0; i < out->len;) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                size_t n = (size_t)(x >> 33) % 70000 + 1;
                if (n > out->len - i)
                    n = out->len - i;
                assert_int_equal(deliver(&p, 1, cn_buf_data(out) + i, n), 0);
                i += n;
            }
            cn_buf_reset(out);
        }
        assert_int_equal(p.s[1].plain.len, off + total);
        expect_sizes(&p.s[1].plain, off, seed);
        off += total;
    }
    assert_int_equal(cn_chan_eof(p.s[1].c), CN_ECLOSED); /* no CLOSE was sent */
    pair_free(&p);

    /* The agent's first data travels in the same read as message 3. */
    pair_new(&p, NULL);
    assert_int_equal(cn_chan_start(p.s[0].c, &p.s[0].out), 0);
    assert_int_equal(move(&p, 0, false), 0);
    assert_int_equal(move(&p, 1, false), 0);
    assert_true(cn_chan_is_established(p.s[0].c));
    assert_false(cn_chan_is_established(p.s[1].c));
    send_data(&p, 0, 300, 5);
    assert_int_equal(move(&p, 0, false), 0);
    assert_true(cn_chan_is_established(p.s[1].c));
    expect_plain(&p.s[1].plain, 0, 300, 5);
    pair_free(&p);
}

/* ---- authentication ---- */

static void test_wrong_hub_key_refused(void **state)
{
    uint8_t other_pub[32], other_priv[32];
    assert_int_equal(cn_chan_keypair(other_pub, other_priv), 0);
    struct opts o = {.pin = other_pub};
    struct pair p;
    pair_new(&p, &o);
    assert_int_equal(handshake(&p, false), CN_EAUTH);
    assert_int_equal(cn_chan_error(p.s[1].c), CN_EAUTH);
    assert_int_equal(p.s[1].out.len, 0); /* the hub never answered */
    assert_false(cn_chan_is_established(p.s[0].c));
    /* Nothing is accepted afterwards: no data, no handshake. */
    uint8_t rec[64] = {CN_CHAN_REC_DATA, 0, 0, 16};
    assert_int_equal(deliver(&p, 1, rec, 20), CN_EAUTH);
    assert_int_equal(p.s[1].plain.len, 0);
    pair_free(&p);

    /* A hub URL (binding) the hub does not share fails the same way. */
    struct opts b = {.agent_binding = "wss://evil.example/agent"};
    pair_new(&p, &b);
    assert_int_equal(handshake(&p, false), CN_EAUTH);
    pair_free(&p);

    /* The agent cannot read a message 2 answering someone else's message 1. */
    struct pair p1, p2;
    pair_new(&p1, NULL);
    pair_new(&p2, NULL);
    assert_int_equal(cn_chan_start(p1.s[0].c, &p1.s[0].out), 0);
    assert_int_equal(cn_chan_start(p2.s[0].c, &p2.s[0].out), 0);
    assert_int_equal(move(&p1, 0, false), 0);
    assert_int_equal(deliver(&p2, 0, cn_buf_data(&p1.s[1].out), p1.s[1].out.len), CN_EAUTH);
    pair_free(&p1);
    pair_free(&p2);
}

static int refuse(void *arg, const uint8_t remote_static[32], const uint8_t *payload, size_t len)
{
    int *calls = arg;
    (*calls)++;
    assert_int_equal(len, sizeof(app_payload));
    assert_memory_equal(payload, app_payload, len);
    return CN_EREFUSED;
}

static void test_verify_refuses_before_data(void **state)
{
    int calls = 0;
    struct opts o = {.verify = refuse, .verify_arg = &calls};
    struct pair p;
    pair_new(&p, &o);
    assert_int_equal(cn_chan_start(p.s[0].c, &p.s[0].out), 0);
    assert_int_equal(move(&p, 0, false), 0);
    assert_int_equal(move(&p, 1, false), 0);
    send_data(&p, 0, 100, 1); /* rides with message 3 */
    assert_int_equal(move(&p, 0, false), CN_EREFUSED);
    assert_int_equal(calls, 1);
    assert_int_equal(p.s[1].plain.len, 0);
    assert_null(cn_chan_remote_static(p.s[1].c));
    pair_free(&p);
}

/* Delivers `len` bytes and then whatever `more` holds, then ends the stream;
 * the receiver must fail at some point without delivering anything new. */
static void expect_detected(struct pair *p, int to, const uint8_t *bytes, size_t len,
                            const cn_buf_t *more)
{
    size_t before = p->s[to].plain.len;
    int rc = deliver(p, to, bytes, len);
    if (rc == 0 && more && more->len)
        rc = deliver(p, to, cn_buf_data(more), more->len);
    if (rc == 0)
        rc = cn_chan_eof(p->s[to].c);
    assert_true(rc < 0);
    assert_int_equal(cn_chan_state(p->s[to].c), CN_CHAN_FAILED);
    assert_int_equal(cn_chan_error(p->s[to].c), rc);
    assert_int_equal(p->s[to].plain.len, before);
    /* Failure is final. */
    assert_int_equal(deliver(p, to, bytes, len), rc);
    uint8_t rec[CN_CHAN_HEADER + 8 + CN_CHAN_TAG];
    assert_int_equal(cn_chan_seal(p->s[to].c, rec, 8), rc);
}

/* One scripted session of 64 records: 0-2 are the handshake, then data in
 * alternating directions, with rekeying every couple of records. Record
 * `victim` gets one bit flipped in byte class `cls` (0 header, 1 ciphertext
 * or handshake body, 2 tag / last byte). */
static void flip_session(int victim, int cls, int agent_aes, int hub_aes)
{
    struct opts o = {.rekey_bytes = 1500, .agent_aes = agent_aes, .hub_aes = hub_aes};
    struct pair p;
    pair_new(&p, &o);
    assert_int_equal(cn_chan_start(p.s[0].c, &p.s[0].out), 0);
    uint8_t mask = (uint8_t)(1u << (victim % 8));
    for (int rec = 0; rec < 64; rec++) {
        int from = rec < 3 ? rec % 2 : rec % 2 == 1 ? 0 : 1;
        if (rec >= 3)
            send_data(&p, from, (size_t)(rec * 97) % 1200, (uint64_t)rec);
        cn_buf_t *out = &p.s[from].out;
        assert_true(out->len > CN_CHAN_HEADER);
        if (rec < victim) {
            assert_int_equal(move(&p, from, false), 0);
            continue;
        }
        uint8_t *b = cn_buf_data(out);
        size_t body = out->len - CN_CHAN_HEADER, pos;
        if (cls == 0)
            pos = (size_t)victim % CN_CHAN_HEADER;
        else if (cls == 1 && body > CN_CHAN_TAG)
            pos = CN_CHAN_HEADER + (body - CN_CHAN_TAG) / 2;
        else
            pos = out->len - 1 - (size_t)victim % CN_CHAN_TAG;
        b[pos] ^= mask;
        /* After the flipped record, the sender's next records (if it can
         * still send) arrive too, so a lengthened record is completed. */
        cn_buf_t more;
        cn_buf_init(&more, 1u << 20, 0);
        if (cn_chan_is_established(p.s[from].c)) {
            cn_buf_t saved = p.s[from].out;
            cn_buf_init(&p.s[from].out, 1u << 20, 0);
            for (int i = 0; i < 3; i++)
                send_data(&p, from, 1000, 999);
            assert_int_equal(cn_buf_append(&more, cn_buf_data(&p.s[from].out), p.s[from].out.len),
                             0);
            cn_buf_free(&p.s[from].out);
            p.s[from].out = saved;
        }
        expect_detected(&p, 1 - from, cn_buf_data(out), out->len, &more);
        if (rec < 3)
            assert_false(cn_chan_is_established(p.s[1 - from].c));
        cn_buf_free(&more);
        break;
    }
    pair_free(&p);
}

/* Every pair of AES-256-GCM engines (agent, hub) when the CPU has AES-GCM;
 * the default pair is OpenSSL on both sides. */
static const int engines[][2] = {
    {CN_CHAN_AES_DEFAULT, CN_CHAN_AES_DEFAULT},
    {CN_CHAN_AES_SODIUM, CN_CHAN_AES_EVP},
    {CN_CHAN_AES_EVP, CN_CHAN_AES_SODIUM},
    {CN_CHAN_AES_SODIUM, CN_CHAN_AES_SODIUM},
};
#define NENGINES (sizeof(engines) / sizeof(engines[0]))

static size_t engine_pairs(void)
{
    return sodium_init() >= 0 && crypto_aead_aes256gcm_is_available() ? NENGINES : 1;
}

static void test_any_flip_in_first_64_records(void **state)
{
    for (size_t e = 0; e < engine_pairs(); e++)
        for (int victim = 0; victim < 64; victim++)
            for (int cls = 0; cls < 3; cls++)
                flip_session(victim, cls, engines[e][0], engines[e][1]);
}

static void test_replay_to_new_responder(void **state)
{
    /* Record everything the agent sends: message 1, message 3, data. */
    struct pair p;
    cn_buf_t wire;
    cn_buf_init(&wire, 1u << 20, 0);
    pair_new(&p, NULL);
    assert_int_equal(cn_chan_start(p.s[0].c, &p.s[0].out), 0);
    for (int from = 0; p.s[0].out.len || p.s[1].out.len; from = 1 - from) {
        if (from == 0)
            assert_int_equal(cn_buf_append(&wire, cn_buf_data(&p.s[0].out), p.s[0].out.len), 0);
        assert_int_equal(move(&p, from, false), 0);
    }
    for (int i = 0; i < 5; i++)
        send_data(&p, 0, 500, (uint64_t)i);
    assert_int_equal(cn_buf_append(&wire, cn_buf_data(&p.s[0].out), p.s[0].out.len), 0);
    assert_int_equal(move(&p, 0, false), 0);
    assert_int_equal(p.s[1].plain.len, 2500);

    /* A new hub instance with the same static key: message 1 is accepted (it
     * answers with a fresh ephemeral), message 3 cannot be, data never is. */
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct side r;
        side_new(&r, CN_CHAN_RESPONDER, &p.k, NULL);
        int rc = 0;
        for (size_t i = 0; i < wire.len && rc == 0;) {
            size_t n = bytewise ? 1 : wire.len;
            rc = cn_chan_feed(r.c, cn_buf_data(&wire) + i, n, &r.plain, &r.out);
            i += n;
        }
        assert_int_equal(rc, CN_EAUTH);
        assert_true(r.out.len > 0); /* its message 2, which nobody can use */
        assert_false(cn_chan_is_established(r.c));
        assert_int_equal(r.plain.len, 0);
        assert_null(cn_chan_remote_static(r.c));
        side_free(&r);
    }
    cn_buf_free(&wire);
    pair_free(&p);
}

/* ---- ordering and truncation ---- */

struct three {
    struct pair p;
    uint8_t *rec[3];
    size_t len[3];
};

/* An established pair and three sealed agent records, not yet delivered. */
static void three_new(struct three *t)
{
    established_pair(&t->p, NULL);
    for (int i = 0; i < 3; i++) {
        t->len[i] = send_data(&t->p, 0, 200 + (size_t)i, (uint64_t)i + 1);
        t->rec[i] = malloc(t->len[i]);
        assert_non_null(t->rec[i]);
        memcpy(t->rec[i], cn_buf_data(&t->p.s[0].out), t->len[i]);
        cn_buf_reset(&t->p.s[0].out);
    }
}

static void three_free(struct three *t)
{
    for (int i = 0; i < 3; i++)
        free(t->rec[i]);
    pair_free(&t->p);
}

static void test_reorder_duplicate_drop_truncate(void **state)
{
    struct three t;
    cn_buf_t next;
    cn_buf_init(&next, 1u << 20, 0);

    three_new(&t); /* reordered */
    assert_int_equal(deliver(&t.p, 1, t.rec[1], t.len[1]), CN_EAUTH);
    assert_int_equal(t.p.s[1].plain.len, 0);
    three_free(&t);

    three_new(&t); /* duplicated */
    assert_int_equal(deliver(&t.p, 1, t.rec[0], t.len[0]), 0);
    expect_detected(&t.p, 1, t.rec[0], t.len[0], NULL);
    assert_int_equal(t.p.s[1].plain.len, 200);
    three_free(&t);

    three_new(&t); /* dropped */
    assert_int_equal(deliver(&t.p, 1, t.rec[0], t.len[0]), 0);
    expect_detected(&t.p, 1, t.rec[2], t.len[2], NULL);
    three_free(&t);

    /* Cut short at every length, then the stream ends or the next record
     * begins. */
    for (size_t cut = 1; cut < t.len[1]; cut += 7) {
        for (int then_next = 0; then_next < 2; then_next++) {
            three_new(&t);
            assert_int_equal(deliver(&t.p, 1, t.rec[0], t.len[0]), 0);
            cn_buf_reset(&next);
            if (then_next)
                assert_int_equal(cn_buf_append(&next, t.rec[2], t.len[2]), 0);
            expect_detected(&t.p, 1, t.rec[1], cut, &next);
            assert_int_equal(t.p.s[1].plain.len, 200);
            three_free(&t);
        }
    }
    cn_buf_free(&next);
}

static void test_protocol_errors(void **state)
{
    struct pair p;
    uint8_t rec[64] = {0};

    /* Data before the handshake. */
    pair_new(&p, NULL);
    rec[0] = CN_CHAN_REC_DATA, rec[3] = 16;
    assert_int_equal(deliver(&p, 1, rec, 20), CN_EPROTO);
    pair_free(&p);

    /* Handshake record after establishment, on both sides. */
    established_pair(&p, NULL);
    memset(rec, 0, sizeof(rec));
    rec[0] = CN_CHAN_REC_HANDSHAKE, rec[3] = 48;
    assert_int_equal(deliver(&p, 1, rec, 4), CN_EPROTO);
    assert_int_equal(deliver(&p, 0, rec, 4), CN_EPROTO);
    pair_free(&p);

    /* A handshake record while it is our turn to write. */
    pair_new(&p, NULL);
    assert_int_equal(deliver(&p, 0, rec, 4), CN_EPROTO);
    pair_free(&p);

    /* Unknown types, and a DATA body too short to hold a tag. */
    static const uint8_t types[] = {0, 5, 0x80, 0xff};
    for (size_t i = 0; i < sizeof(types); i++) {
        established_pair(&p, NULL);
        rec[0] = types[i], rec[3] = 16;
        assert_int_equal(deliver(&p, 1, rec, 1 + i), i < 3 ? 0 : CN_EUNKNOWN);
        if (i < 3)
            assert_int_equal(deliver(&p, 1, rec + 1 + i, 3 - i), CN_EUNKNOWN);
        pair_free(&p);
    }
    established_pair(&p, NULL);
    rec[0] = CN_CHAN_REC_DATA, rec[3] = 15;
    assert_int_equal(deliver(&p, 1, rec, 19), CN_EPROTO);
    pair_free(&p);

    /* Sealing before establishment is refused without failing. */
    pair_new(&p, NULL);
    assert_int_equal(cn_chan_seal(p.s[0].c, rec, 4), CN_ESTATE);
    assert_int_equal(cn_chan_start(p.s[0].c, &p.s[0].out), 0);
    assert_int_equal(cn_chan_start(p.s[0].c, &p.s[0].out), CN_ESTATE);
    for (int from = 0; from < 3; from++)
        assert_int_equal(move(&p, from % 2, false), 0);
    assert_true(cn_chan_is_established(p.s[1].c));
    pair_free(&p);
}

static void test_authenticated_close(void **state)
{
    struct pair p;
    established_pair(&p, NULL);
    send_data(&p, 0, 10, 1);
    uint8_t close_rec[CN_CHAN_HEADER + CN_CHAN_TAG];
    assert_int_equal(cn_chan_seal_close(p.s[0].c, close_rec), (int)sizeof(close_rec));
    assert_int_equal(cn_chan_seal(p.s[0].c, close_rec, 0), CN_ESTATE);
    assert_int_equal(cn_buf_append(&p.s[0].out, close_rec, sizeof(close_rec)), 0);
    assert_int_equal(move(&p, 0, false), 0);
    assert_int_equal(cn_chan_state(p.s[1].c), CN_CHAN_CLOSED);
    assert_int_equal(cn_chan_eof(p.s[1].c), 0);
    assert_int_equal(deliver(&p, 1, close_rec, 1), CN_ECLOSED);
    pair_free(&p);

    /* Nothing may follow CLOSE; a forged CLOSE type on a DATA record fails. */
    established_pair(&p, NULL);
    assert_int_equal(cn_chan_seal_close(p.s[0].c, close_rec), (int)sizeof(close_rec));
    assert_int_equal(cn_buf_append(&p.s[0].out, close_rec, sizeof(close_rec)), 0);
    assert_int_equal(cn_buf_append(&p.s[0].out, close_rec, 2), 0);
    assert_int_equal(move(&p, 0, false), CN_EPROTO);
    pair_free(&p);
    established_pair(&p, NULL);
    send_data(&p, 0, 0, 1);
    cn_buf_data(&p.s[0].out)[0] = CN_CHAN_REC_CLOSE;
    assert_int_equal(move(&p, 0, false), CN_EAUTH);
    pair_free(&p);
}

/* ---- rekeying and lifetime ---- */

static int count_type(const cn_buf_t *stream, int type)
{
    int n = 0;
    const uint8_t *b = cn_buf_data(stream);
    for (size_t i = 0; i + CN_CHAN_HEADER <= stream->len;) {
        size_t len = (size_t)b[i + 1] << 16 | (size_t)b[i + 2] << 8 | b[i + 3];
        n += b[i] == type;
        i += CN_CHAN_HEADER + len;
    }
    return n;
}

static void test_rekey_by_volume(void **state)
{
    for (int cipher = 1; cipher <= 2; cipher++) {
        if (cipher == CN_CHAN_CIPHER_AES256GCM && !crypto_aead_aes256gcm_is_available())
            continue;
        struct opts o = {.agent_cipher = cipher, .hub_cipher = cipher, .rekey_bytes = 1000};
        struct pair p;
        established_pair(&p, &o);
        for (int i = 0; i < 200; i++)
            send_data(&p, 0, 300, (uint64_t)i);
        /* 300-byte records, rekey once 1000 bytes went out: every 5th record
         * (after 4 records, 1200 bytes, the 5th is a key update). */
        int updates = count_type(&p.s[0].out, CN_CHAN_REC_DATA_KEY_UPDATE);
        assert_int_equal(updates, 40);
        assert_int_equal(move(&p, 0, false), 0);
        for (int i = 0; i < 200; i++)
            expect_plain(&p.s[1].plain, 300 * (size_t)i, 300, (uint64_t)i);
        cn_chan_stats_t a, b;
        cn_chan_get_stats(p.s[0].c, &a);
        cn_chan_get_stats(p.s[1].c, &b);
        assert_int_equal(a.tx_rekeys, 40);
        assert_int_equal(b.rx_rekeys, 40);
        assert_int_equal(a.tx_records, 200);
        assert_int_equal(b.rx_records, 200);
        assert_int_equal(b.rx_bytes, 60000);
        /* A key update whose type is rewritten to DATA is not accepted. */
        for (int i = 0; i < 5; i++)
            send_data(&p, 0, 300, 1);
        size_t last = p.s[0].out.len - (300 + CN_CHAN_HEADER + CN_CHAN_TAG);
        assert_int_equal(cn_buf_data(&p.s[0].out)[last], CN_CHAN_REC_DATA_KEY_UPDATE);
        cn_buf_data(&p.s[0].out)[last] = CN_CHAN_REC_DATA;
        assert_int_equal(move(&p, 0, false), CN_EAUTH);
        assert_int_equal(p.s[1].plain.len, 60000 + 1200);
        pair_free(&p);
    }
}

static void test_rekey_by_time_and_max_age(void **state)
{
    struct opts o = {.rekey_seconds = 10, .max_age_seconds = 60};
    struct pair p;
    established_pair(&p, &o);
    uint64_t now = 1000000;
    send_data(&p, 0, 10, 1);
    cn_chan_set_now(p.s[0].c, now += 9999);
    send_data(&p, 0, 10, 2);
    assert_int_equal(count_type(&p.s[0].out, CN_CHAN_REC_DATA_KEY_UPDATE), 0);
    cn_chan_set_now(p.s[0].c, now += 1);
    send_data(&p, 0, 10, 3); /* 10 s since the keys were made */
    send_data(&p, 0, 10, 4);
    assert_int_equal(count_type(&p.s[0].out, CN_CHAN_REC_DATA_KEY_UPDATE), 1);
    cn_chan_set_now(p.s[0].c, now += 10000);
    send_data(&p, 0, 10, 5);
    assert_int_equal(count_type(&p.s[0].out, CN_CHAN_REC_DATA_KEY_UPDATE), 2);
    cn_chan_set_now(p.s[0].c, now -= 5000); /* a clock stepping back does no harm */
    send_data(&p, 0, 10, 6);
    assert_int_equal(move(&p, 0, false), 0);
    for (int i = 0; i < 6; i++)
        expect_plain(&p.s[1].plain, 10 * (size_t)i, 10, (uint64_t)i + 1);
    cn_chan_stats_t st;
    cn_chan_get_stats(p.s[1].c, &st);
    assert_int_equal(st.rx_rekeys, 2);

    /* After max_age the sender refuses with a distinct error, and so does the
     * receiver: time to reconnect. */
    uint8_t rec[CN_CHAN_HEADER + 10 + CN_CHAN_TAG];
    cn_chan_set_now(p.s[0].c, 1000000 + 59999);
    assert_int_equal(cn_chan_seal(p.s[0].c, rec, 10), (int)sizeof(rec));
    cn_chan_set_now(p.s[0].c, 1000000 + 60000);
    assert_int_equal(cn_chan_seal(p.s[0].c, rec, 10), CN_EEXHAUSTED);
    assert_int_equal(cn_chan_error(p.s[0].c), CN_EEXHAUSTED);
    cn_chan_set_now(p.s[1].c, 1000000 + 60000);
    assert_int_equal(deliver(&p, 1, rec, 1), CN_EEXHAUSTED);
    pair_free(&p);
}

/* ---- limits ---- */

static void test_limits(void **state)
{
    struct pair p;
    established_pair(&p, NULL);
    static uint8_t rec[CN_CHAN_MAX_RECORD + 1];
    assert_int_equal(cn_chan_seal(p.s[0].c, rec, CN_CHAN_MAX_PLAINTEXT + 1), CN_ETOOBIG);
    assert_true(cn_chan_is_established(p.s[0].c)); /* a caller error, not a failure */
    send_data(&p, 0, CN_CHAN_MAX_PLAINTEXT, 9);
    assert_int_equal(move(&p, 0, false), 0);
    expect_plain(&p.s[1].plain, 0, CN_CHAN_MAX_PLAINTEXT, 9);

    /* An oversize length is refused from the 4-byte header alone, before any
     * body is read or buffered. */
    static const uint8_t huge[][4] = {
        {CN_CHAN_REC_DATA, 0x01, 0x00, 0x11}, /* 65553 = max body + 1 */
        {CN_CHAN_REC_DATA_KEY_UPDATE, 0xff, 0xff, 0xff},
        {CN_CHAN_REC_DATA, 0x80, 0x00, 0x00},
    };
    for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
        assert_int_equal(deliver(&p, 1, huge[i], 4), CN_ETOOBIG);
        pair_free(&p);
        established_pair(&p, NULL);
    }
    /* The largest legal length is waited for, not refused. */
    static const uint8_t max_hdr[4] = {CN_CHAN_REC_DATA, 0x01, 0x00, 0x10};
    assert_int_equal(deliver(&p, 1, max_hdr, 4), 0);
    assert_int_equal(cn_chan_eof(p.s[1].c), CN_EPROTO);
    pair_free(&p);

    /* Before authentication the bound is a handshake message, not a record. */
    pair_new(&p, NULL);
    static const uint8_t hs_hdr[4] = {CN_CHAN_REC_HANDSHAKE, 0x00, 0x20, 0x00};
    assert_int_equal(deliver(&p, 1, hs_hdr, 4), CN_ETOOBIG);
    pair_free(&p);

    /* Config limits. */
    struct keys k;
    keys_new(&k);
    static uint8_t big[CN_CHAN_MAX_APP_PAYLOAD + 1];
    cn_chan_config_t c = {.role = CN_CHAN_INITIATOR,
                          .local_private = k.agent_priv,
                          .remote_public = k.hub_pub,
                          .app_payload = big,
                          .app_payload_len = sizeof(big)};
    char err[128] = "";
    assert_null(cn_chan_new(&c, err, sizeof(err)));
    assert_string_equal(err, "secure channel: invalid argument or malformed input");
    c.app_payload_len = CN_CHAN_MAX_APP_PAYLOAD;
    cn_chan_t *ch = cn_chan_new(&c, err, sizeof(err));
    assert_non_null(ch);
    cn_chan_free(ch);
    c.remote_public = NULL; /* the agent must pin the hub */
    assert_null(cn_chan_new(&c, NULL, 0));
    c.remote_public = k.hub_pub;
    c.cipher = 3;
    assert_null(cn_chan_new(&c, NULL, 0));
    cn_chan_free(NULL);
}

static void test_app_payload_max(void **state)
{
    struct keys k;
    keys_new(&k);
    static uint8_t big[CN_CHAN_MAX_APP_PAYLOAD];
    cn_test_fill(big, sizeof(big), 77);
    cn_chan_config_t ic = {.role = CN_CHAN_INITIATOR,
                           .local_private = k.agent_priv,
                           .remote_public = k.hub_pub,
                           .app_payload = big,
                           .app_payload_len = sizeof(big)};
    cn_chan_config_t rc = {.role = CN_CHAN_RESPONDER, .local_private = k.hub_priv};
    struct pair p;
    memset(&p, 0, sizeof(p));
    p.k = k;
    p.s[0].c = cn_chan_new(&ic, NULL, 0);
    p.s[1].c = cn_chan_new(&rc, NULL, 0);
    for (int s = 0; s < 2; s++) {
        assert_non_null(p.s[s].c);
        cn_buf_init(&p.s[s].out, 1u << 20, 0);
        cn_buf_init(&p.s[s].plain, PLAIN_MAX, 0);
    }
    assert_int_equal(handshake(&p, false), 0);
    size_t n = 0;
    const uint8_t *got = cn_chan_app_payload(p.s[1].c, &n);
    assert_int_equal(n, sizeof(big));
    assert_memory_equal(got, big, n);
    pair_free(&p);
}

/* ---- AES-256-GCM engines: libsodium and OpenSSL ---- */

/* The engine cases are what prove that a libsodium peer and an OpenSSL peer
 * share one wire format: they may not pass by running nothing. On a CPU
 * without AES-GCM they fail under CI and elsewhere skip with one line
 * nobody can miss. */
static void require_aes(void)
{
    if (sodium_init() >= 0 && crypto_aead_aes256gcm_is_available())
        return;
    if (cn_test_in_ci())
        fail_msg("this CPU has no AES-GCM and CI is set: the AES engine cases must run");
    fprintf(stderr, "SKIP test_chan: this CPU has no AES-GCM: the AES engine cases did NOT run\n");
    skip();
}

/* A libsodium side and an OpenSSL side (and the same-engine pairs) exchange
 * every record size both ways, through key updates, and each opens exactly
 * what the other sealed. Each side must report the engine it was given, so
 * a silent fall back to one engine on both sides cannot pass as a cross test. */
static void test_aes_engines_interoperate(void **state)
{
    require_aes();
    static const char *names[] = {"OpenSSL", "libsodium", "OpenSSL"}; /* by cn_chan_aes_impl */
    unsetenv("CN_CHAN_AES");
    for (size_t e = 0; e < NENGINES; e++) {
        struct opts o = {.agent_cipher = CN_CHAN_CIPHER_AES256GCM,
                         .hub_cipher = CN_CHAN_CIPHER_AES256GCM,
                         .agent_aes = engines[e][0],
                         .hub_aes = engines[e][1],
                         .rekey_bytes = 50000};
        struct pair p;
        established_pair(&p, &o);
        for (int s = 0; s < 2; s++) {
            assert_string_equal(cn_chan_cipher_name(p.s[s].c), "AES-256-GCM");
            assert_string_equal(cn_chan_cipher_impl(p.s[s].c), names[engines[e][s]]);
        }
        for (int round = 0; round < 3; round++) {
            for (int from = 0; from < 2; from++) {
                size_t before = p.s[1 - from].plain.len;
                send_sizes(&p, from, (uint64_t)(100 * round + 10 * from + 1));
                assert_int_equal(move(&p, from, round == 1 && from == 1), 0);
                expect_sizes(&p.s[1 - from].plain, before, (uint64_t)(100 * round + 10 * from + 1));
            }
        }
        cn_chan_stats_t a, b;
        cn_chan_get_stats(p.s[0].c, &a);
        cn_chan_get_stats(p.s[1].c, &b);
        assert_true(a.tx_rekeys >= 3); /* 132 KiB per round, a key update every ~50 KB */
        assert_int_equal(a.tx_rekeys, b.rx_rekeys);
        assert_int_equal(b.tx_rekeys, a.rx_rekeys);
        assert_int_equal(a.tx_records, 3 * NSIZES);
        assert_int_equal(b.rx_records, 3 * NSIZES);
        /* CLOSE, sealed by one engine and opened by the other. */
        uint8_t rec[CN_CHAN_HEADER + CN_CHAN_TAG];
        assert_int_equal(cn_chan_seal_close(p.s[1].c, rec), (int)sizeof(rec));
        assert_int_equal(deliver(&p, 0, rec, sizeof(rec)), 0);
        assert_int_equal(cn_chan_state(p.s[0].c), CN_CHAN_CLOSED);
        assert_int_equal(cn_chan_eof(p.s[0].c), 0);
        pair_free(&p);
    }
    /* The default is OpenSSL; CN_CHAN_AES=sodium switches it, an explicit
     * choice in the config wins over the environment. */
    for (int env = 0; env < 3; env++) {
        if (env == 1)
            setenv("CN_CHAN_AES", "sodium", 1);
        if (env == 2)
            setenv("CN_CHAN_AES", "bogus", 1);
        struct opts o = {.hub_aes = CN_CHAN_AES_EVP};
        struct pair p;
        established_pair(&p, &o);
        assert_string_equal(cn_chan_cipher_impl(p.s[0].c), env == 1 ? "libsodium" : "OpenSSL");
        assert_string_equal(cn_chan_cipher_impl(p.s[1].c), "OpenSSL");
        pair_free(&p);
    }
    unsetenv("CN_CHAN_AES");
    /* ChaCha20-Poly1305 is libsodium whatever is asked for AES. */
    struct opts o = {.agent_cipher = CN_CHAN_CIPHER_CHACHA20POLY1305,
                     .agent_aes = CN_CHAN_AES_EVP,
                     .hub_aes = CN_CHAN_AES_EVP};
    struct pair p;
    established_pair(&p, &o);
    assert_string_equal(cn_chan_cipher_impl(p.s[0].c), "libsodium");
    pair_free(&p);
    /* An engine that is not one of the three is a bad config. */
    cn_chan_config_t bad = {
        .role = CN_CHAN_RESPONDER, .local_private = p.k.hub_priv, .aes_impl = 3};
    assert_null(cn_chan_new(&bad, NULL, 0));
}

/* Two engines on the same key, as a sealer and an opener each. */
struct engines {
    cn_aead_t seal[2], open[2]; /* [0] libsodium, [1] OpenSSL */
};

static void engines_new(struct engines *g, const uint8_t key[32], uint64_t n)
{
    for (int i = 0; i < 2; i++) {
        int impl = i ? CN_AEAD_IMPL_EVP : CN_AEAD_IMPL_SODIUM;
        cn_aead_t *both[2] = {&g->seal[i], &g->open[i]};
        for (int d = 0; d < 2; d++) {
            memset(both[d], 0, sizeof(*both[d]));
            assert_int_equal(cn_noise_cs_init(&both[d]->cs, CN_NOISE_AESGCM, key), 0);
            both[d]->cs.n = n;
            assert_int_equal(cn_aead_setup(both[d], d ? CN_AEAD_OPEN : CN_AEAD_SEAL, impl), 0);
            assert_int_equal(cn_aead_uses_evp(both[d]), i == 1);
        }
    }
}

static void engines_free(struct engines *g)
{
    for (int i = 0; i < 2; i++) {
        cn_aead_wipe(&g->seal[i]);
        cn_aead_wipe(&g->open[i]);
    }
}

/* The strongest form of "the wire format stays identical": for the same key
 * and counter both engines produce the same bytes, record after record,
 * through rekeys and at counters whose nonce uses every byte (the big-endian
 * AESGCM encoding), up to the last usable counter. The OpenSSL side hands
 * records under CN_AEAD_EVP_MIN to libsodium and does the rest itself,
 * counted, so the comparison is really between the two libraries. */
static void test_aes_engines_same_bytes(void **state)
{
    require_aes();
    static const uint64_t starts[] = {0,
                                      250,
                                      65530,
                                      0xfffffffaull,
                                      0x00fffffffffffffaull,
                                      0x0123456789abcdefull,
                                      UINT64_MAX - 30};
    static const size_t lens[] = {0,   1,   15,  16,   17,   31,    64,   100,
                                  511, 512, 513, 1024, 4096, 16384, 65536};
    const size_t nlens = sizeof(lens) / sizeof(lens[0]);
    uint8_t key[32];
    uint8_t *buf[2], *back = malloc(65536 + 16);
    buf[0] = malloc(CN_CHAN_HEADER + 65536 + 16);
    buf[1] = malloc(CN_CHAN_HEADER + 65536 + 16);
    assert_true(buf[0] && buf[1] && back);
    for (size_t si = 0; si < sizeof(starts) / sizeof(starts[0]); si++) {
        cn_test_fill(key, sizeof(key), 77 + si);
        struct engines g;
        engines_new(&g, key, starts[si]);
        uint64_t large = 0; /* records OpenSSL must have done */
        for (size_t r = 0; r < 3 * nlens && g.seal[0].cs.n < UINT64_MAX; r++) {
            size_t len = lens[r % nlens];
            large += len >= CN_AEAD_EVP_MIN;
            uint8_t ad[CN_CHAN_HEADER] = {CN_CHAN_REC_DATA, (uint8_t)(len >> 16),
                                          (uint8_t)(len >> 8), (uint8_t)len};
            for (int i = 0; i < 2; i++) {
                cn_test_fill(buf[i], len, r + 1);
                assert_int_equal(cn_aead_encrypt(&g.seal[i], ad, sizeof(ad), buf[i], len), 0);
            }
            assert_memory_equal(buf[0], buf[1], len + 16);
            assert_int_equal(g.seal[0].cs.n, g.seal[1].cs.n);
            /* Each opener opens the other engine's record (into a separate
             * buffer or in place). */
            for (int i = 0; i < 2; i++) {
                uint8_t *out = i ? buf[1 - i] : back;
                assert_int_equal(
                    cn_aead_decrypt(&g.open[i], ad, sizeof(ad), buf[1 - i], len + 16, out), 0);
                uint8_t *want = malloc(len ? len : 1);
                assert_non_null(want);
                cn_test_fill(want, len, r + 1);
                assert_memory_equal(out, want, len);
                free(want);
            }
            if (r % 5 == 4) {
                for (int i = 0; i < 2; i++) {
                    assert_int_equal(cn_aead_rekey(&g.seal[i]), 0);
                    assert_int_equal(cn_aead_rekey(&g.open[i]), 0);
                }
                assert_memory_equal(g.seal[0].cs.key, g.seal[1].cs.key, 32);
            }
        }
        assert_true(large > 0);
        assert_int_equal(g.seal[1].evp_records, large);
        assert_int_equal(g.open[1].evp_records, large);
        assert_int_equal(g.seal[0].evp_records + g.open[0].evp_records, 0);
        if (starts[si] == UINT64_MAX - 30) { /* both stop at the same counter */
            assert_int_equal(g.seal[0].cs.n, UINT64_MAX);
            for (int i = 0; i < 2; i++) {
                for (size_t len = 8; len < 2 * CN_AEAD_EVP_MIN; len += CN_AEAD_EVP_MIN) {
                    assert_int_equal(cn_aead_encrypt(&g.seal[i], NULL, 0, buf[i], len),
                                     CN_EEXHAUSTED);
                    assert_int_equal(cn_aead_decrypt(&g.open[i], NULL, 0, buf[i], len + 16, buf[i]),
                                     CN_EEXHAUSTED);
                }
            }
        }
        engines_free(&g);
    }
    free(buf[0]);
    free(buf[1]);
    free(back);
}

/* A flipped bit anywhere in the ciphertext, the tag or the associated data
 * (the header) is refused by both engines, whichever engine sealed: the
 * counter stays, nothing of the forgery is left in the output, and the
 * genuine record still opens afterwards. */
static void test_aes_engines_refuse_tampering(void **state)
{
    require_aes();
    uint8_t key[32];
    cn_test_fill(key, sizeof(key), 5);
    enum { MAXLEN = CN_AEAD_EVP_MIN + 88 };
    /* Under and over CN_AEAD_EVP_MIN: the OpenSSL engine's own checks. */
    static const size_t lens[] = {40, MAXLEN};
    uint8_t rec[MAXLEN + 16], bad[MAXLEN + 16], out[MAXLEN + 16], want[MAXLEN];
    for (size_t li = 0; li < 2; li++) {
        size_t len = lens[li], rlen = len + 16;
        for (int sealer = 0; sealer < 2; sealer++) {
            for (int opener = 0; opener < 2; opener++) {
                struct engines g;
                engines_new(&g, key, 7);
                uint8_t ad[CN_CHAN_HEADER] = {CN_CHAN_REC_DATA, 0, (uint8_t)(rlen >> 8),
                                              (uint8_t)rlen};
                cn_test_fill(rec, len, 9);
                assert_int_equal(cn_aead_encrypt(&g.seal[sealer], ad, sizeof(ad), rec, len), 0);
                for (size_t bit = 0; bit < 8 * (rlen + sizeof(ad)); bit++) {
                    uint8_t ad2[CN_CHAN_HEADER];
                    memcpy(bad, rec, rlen);
                    memcpy(ad2, ad, sizeof(ad));
                    uint8_t *b = bit / 8 < rlen ? &bad[bit / 8] : &ad2[bit / 8 - rlen];
                    *b ^= (uint8_t)(1u << (bit % 8));
                    memset(out, 0xee, sizeof(out));
                    assert_int_equal(
                        cn_aead_decrypt(&g.open[opener], ad2, sizeof(ad2), bad, rlen, out),
                        CN_EAUTH);
                    for (size_t k = 0; k < len; k++)
                        assert_int_equal(out[k], 0);
                    assert_int_equal(g.open[opener].cs.n, 7);
                }
                /* The right record under another counter (a replay). */
                g.open[opener].cs.n = 8;
                assert_int_equal(cn_aead_decrypt(&g.open[opener], ad, sizeof(ad), rec, rlen, out),
                                 CN_EAUTH);
                g.open[opener].cs.n = 7;
                assert_int_equal(cn_aead_decrypt(&g.open[opener], ad, sizeof(ad), rec, rlen, out),
                                 0);
                cn_test_fill(want, len, 9);
                assert_memory_equal(out, want, len);
                bool evp_sized = len >= CN_AEAD_EVP_MIN;
                assert_int_equal(g.seal[sealer].evp_records, sealer == 1 && evp_sized);
                assert_int_equal(g.open[opener].evp_records, opener == 1 && evp_sized);
                engines_free(&g);
            }
        }
    }
}

static void test_keys_and_fingerprint(void **state)
{
    uint8_t pub[32], priv[32], pub2[32];
    char fp[CN_CHAN_FINGERPRINT_SIZE], fp2[CN_CHAN_FINGERPRINT_SIZE];
    assert_int_equal(cn_chan_keypair(pub, priv), 0);
    assert_int_equal(cn_chan_public_key(priv, pub2), 0);
    assert_memory_equal(pub, pub2, 32);
    assert_int_equal(cn_chan_fingerprint(pub, fp), 0);
    assert_int_equal(strlen(fp), 22);
    assert_int_equal(strspn(fp, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     22);
    assert_int_equal(cn_chan_fingerprint(pub2, fp2), 0);
    assert_string_equal(fp, fp2);
    pub2[0] ^= 1;
    assert_int_equal(cn_chan_fingerprint(pub2, fp2), 0);
    assert_string_not_equal(fp, fp2);
    /* A known answer: SHA-256 of 32 zero bytes starts 66687aadf862bd77... */
    uint8_t zero[32] = {0};
    assert_int_equal(cn_chan_fingerprint(zero, fp), 0);
    assert_string_equal(fp, "Zmh6rfhivXdsj8GLjp-OIA");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_negotiation),
        cmocka_unit_test(test_any_split),
        cmocka_unit_test(test_wrong_hub_key_refused),
        cmocka_unit_test(test_verify_refuses_before_data),
        cmocka_unit_test(test_any_flip_in_first_64_records),
        cmocka_unit_test(test_replay_to_new_responder),
        cmocka_unit_test(test_reorder_duplicate_drop_truncate),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_authenticated_close),
        cmocka_unit_test(test_rekey_by_volume),
        cmocka_unit_test(test_rekey_by_time_and_max_age),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_app_payload_max),
        cmocka_unit_test(test_aes_engines_interoperate),
        cmocka_unit_test(test_aes_engines_same_bytes),
        cmocka_unit_test(test_aes_engines_refuse_tampering),
        cmocka_unit_test(test_keys_and_fingerprint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
