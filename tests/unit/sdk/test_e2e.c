/* cn_e2e: the end-to-end layer of reach streams as a specification. Two
 * agents talk through a "hub" that records every byte it relays and may
 * misbehave: the relayed bytes never contain the plaintext, a swapped key
 * (either way) or a stream routed to another tunnel fails the handshake, a
 * tampered record fails, and a stream cut without the authenticated close is
 * told apart from a clean end. */
#include "cn_test.h"

#include "cn_chan.h"
#include "cn_e2e.h"
#include "cn_err.h"

#include <sodium.h>

#define TUNNEL "0b7c3a52-8d0e-4c55-9a63-2f1e7f0c9a11"
#define OTHER_TUNNEL "6f1d2c3b-1111-4a2b-8c3d-4e5f60718293"
#define MARKER "PLAINTEXT-MARKER-7f3a9c"

struct keys {
    uint8_t reach_pub[32], reach_priv[32], expose_pub[32], expose_priv[32], rogue_pub[32],
        rogue_priv[32];
};

/* What the hub saw. */
struct tap {
    uint8_t *bytes;
    size_t len, cap;
};

struct world {
    struct keys k;
    cn_e2e_t *e[2];  /* [0] reaching agent (initiator), [1] exposing agent (responder) */
    cn_buf_t got[2]; /* plaintext each side received */
    struct tap tap;
    int tamper_at; /* >= 0: flip the byte at this relayed offset */
};

static void tap_add(struct tap *t, const uint8_t *p, size_t n)
{
    if (t->len + n > t->cap) {
        t->cap = (t->len + n) * 2;
        t->bytes = realloc(t->bytes, t->cap);
        assert_non_null(t->bytes);
    }
    memcpy(t->bytes + t->len, p, n);
    t->len += n;
}

static void world_init(struct world *w)
{
    memset(w, 0, sizeof(*w));
    assert_int_equal(cn_chan_keypair(w->k.reach_pub, w->k.reach_priv), 0);
    assert_int_equal(cn_chan_keypair(w->k.expose_pub, w->k.expose_priv), 0);
    assert_int_equal(cn_chan_keypair(w->k.rogue_pub, w->k.rogue_priv), 0);
    cn_buf_init(&w->got[0], 64u << 20, 0);
    cn_buf_init(&w->got[1], 64u << 20, 0);
    w->tamper_at = -1;
}

/* The hub vouches `to_reacher` as the exposing agent's key and `to_exposer`
 * as the reaching agent's; each side binds the tunnel it believes in. */
static void world_start(struct world *w, const uint8_t *to_reacher, const uint8_t *to_exposer,
                        const char *reacher_tunnel, const char *exposer_tunnel)
{
    cn_e2e_config_t ic = {CN_E2E_INITIATOR, w->k.reach_priv, to_reacher, reacher_tunnel};
    cn_e2e_config_t rc = {CN_E2E_RESPONDER, w->k.expose_priv, to_exposer, exposer_tunnel};
    w->e[0] = cn_e2e_new(&ic, NULL, 0);
    w->e[1] = cn_e2e_new(&rc, NULL, 0);
    assert_non_null(w->e[0]);
    assert_non_null(w->e[1]);
    assert_int_equal(cn_e2e_start(w->e[0]), 0);
    assert_int_equal(cn_e2e_start(w->e[1]), 0); /* responder: nothing to send */
    assert_int_equal(cn_e2e_wire(w->e[1])->len, 0);
}

static void world_free(struct world *w)
{
    cn_e2e_free(w->e[0]);
    cn_e2e_free(w->e[1]);
    cn_buf_free(&w->got[0]);
    cn_buf_free(&w->got[1]);
    free(w->tap.bytes);
}

/* Moves what side `from` has on the wire to the other side through the
 * hub, in odd-sized slices, draining the receiver's plaintext between
 * feeds. Returns the first feed error (0 if none). */
static int relay(struct world *w, int from)
{
    cn_buf_t *wire = cn_e2e_wire(w->e[from]);
    cn_e2e_t *to = w->e[!from];
    int rc = 0;
    while (wire->len && !rc) {
        size_t n = wire->len < 777 ? wire->len : 777;
        uint8_t slice[777];
        memcpy(slice, cn_buf_data(wire), n);
        cn_buf_consume(wire, n);
        if (w->tamper_at >= 0 && (size_t)w->tamper_at >= w->tap.len &&
            (size_t)w->tamper_at < w->tap.len + n)
            slice[w->tamper_at - w->tap.len] ^= 0x40;
        tap_add(&w->tap, slice, n);
        rc = cn_e2e_feed(to, slice, n);
        cn_buf_t *plain = cn_e2e_plain(to);
        assert_int_equal(cn_buf_append(&w->got[!from], cn_buf_data(plain), plain->len), 0);
        cn_buf_consume(plain, plain->len);
    }
    return rc;
}

/* Runs the handshake to the end or the first failure. */
static int handshake(struct world *w)
{
    for (int round = 0; round < 4; round++) {
        int rc = relay(w, 0);
        if (rc)
            return rc;
        rc = relay(w, 1);
        if (rc)
            return rc;
    }
    return 0;
}

/* Seals `len` bytes of `p` on side `from` in records, relaying as it goes. */
static int send_plain(struct world *w, int from, const uint8_t *p, size_t len)
{
    while (len) {
        size_t cap = 0;
        uint8_t *dst = cn_e2e_seal_space(w->e[from], &cap);
        if (!dst)
            return CN_ESTATE;
        size_t n = len < cap ? len : cap;
        memcpy(dst, p, n);
        int rc = cn_e2e_seal_commit(w->e[from], n);
        if (rc)
            return rc;
        p += n, len -= n;
        rc = relay(w, from);
        if (rc)
            return rc;
    }
    return 0;
}

static bool tap_contains(const struct tap *t, const char *needle)
{
    return t->len && memmem(t->bytes, t->len, needle, strlen(needle)) != NULL;
}

static void relayed_bytes_never_hold_the_plaintext(void **state)
{
    (void)state;
    struct world w;
    world_init(&w);
    world_start(&w, w.k.expose_pub, w.k.reach_pub, TUNNEL, TUNNEL);
    assert_int_equal(handshake(&w), 0);
    assert_true(cn_e2e_ready(w.e[0]));
    assert_true(cn_e2e_ready(w.e[1]));

    /* 1 MiB of a repeated marker each way, and a short query. */
    size_t big = 1u << 20;
    uint8_t *up = malloc(big);
    assert_non_null(up);
    for (size_t i = 0; i < big; i++)
        up[i] = (uint8_t)MARKER[i % strlen(MARKER)];
    const char query[] = "SELECT '" MARKER "' AS secret;";
    assert_int_equal(send_plain(&w, 0, (const uint8_t *)query, strlen(query)), 0);
    assert_int_equal(send_plain(&w, 0, up, big), 0);
    assert_int_equal(send_plain(&w, 1, up, big), 0);

    assert_int_equal(w.got[1].len, strlen(query) + big);
    assert_memory_equal(cn_buf_data(&w.got[1]), query, strlen(query));
    assert_memory_equal(cn_buf_data(&w.got[1]) + strlen(query), up, big);
    assert_int_equal(w.got[0].len, big);
    assert_memory_equal(cn_buf_data(&w.got[0]), up, big);
    assert_int_equal(cn_e2e_bytes_sealed(w.e[0]), strlen(query) + big);
    assert_int_equal(cn_e2e_bytes_opened(w.e[1]), strlen(query) + big);

    /* The hub relayed at least as many bytes as were sent, none readable. */
    assert_true(w.tap.len > 2 * big);
    assert_false(tap_contains(&w.tap, MARKER));
    assert_false(tap_contains(&w.tap, "SELECT"));
    /* The check itself can fail: the marker is in what the agents got. */
    struct tap plain = {cn_buf_data(&w.got[1]), w.got[1].len, w.got[1].len};
    assert_true(tap_contains(&plain, MARKER));
    free(up);
    world_free(&w);
}

static void hub_swapping_the_exposers_key_fails_the_handshake(void **state)
{
    (void)state;
    struct world w;
    world_init(&w);
    /* The hub tells the reaching agent a key of its own for the exposer. */
    world_start(&w, w.k.rogue_pub, w.k.reach_pub, TUNNEL, TUNNEL);
    assert_int_equal(handshake(&w), CN_EAUTH);
    assert_false(cn_e2e_ready(w.e[1]));
    assert_false(cn_e2e_ready(w.e[0]));
    assert_int_equal(cn_e2e_error(w.e[1]), CN_EAUTH);
    /* Nothing can be sealed on either side. */
    size_t cap = 1;
    assert_null(cn_e2e_seal_space(w.e[0], &cap));
    assert_int_equal(cap, 0);
    assert_int_equal(w.got[0].len + w.got[1].len, 0);
    world_free(&w);
}

static void hub_swapping_the_reachers_key_is_refused(void **state)
{
    (void)state;
    struct world w;
    world_init(&w);
    /* The exposer is told another key for the reaching agent than the one
     * message 3 proves. */
    world_start(&w, w.k.expose_pub, w.k.rogue_pub, TUNNEL, TUNNEL);
    assert_int_equal(handshake(&w), CN_EREFUSED);
    assert_false(cn_e2e_ready(w.e[1]));
    /* The exposer never accepts data. */
    assert_int_equal(w.got[1].len, 0);
    world_free(&w);
}

static void a_hub_impersonating_the_exposer_is_caught_by_its_pinned_key(void **state)
{
    (void)state;
    /* The hub answers the handshake itself with its own key, while the
     * reaching agent pins the exposer's real key: message 1 was sealed for
     * the real key, so the rogue cannot even read it. */
    struct world w;
    world_init(&w);
    cn_e2e_config_t ic = {CN_E2E_INITIATOR, w.k.reach_priv, w.k.expose_pub, TUNNEL};
    cn_e2e_config_t rogue = {CN_E2E_RESPONDER, w.k.rogue_priv, w.k.reach_pub, TUNNEL};
    w.e[0] = cn_e2e_new(&ic, NULL, 0);
    w.e[1] = cn_e2e_new(&rogue, NULL, 0);
    assert_int_equal(cn_e2e_start(w.e[0]), 0);
    assert_int_equal(handshake(&w), CN_EAUTH);
    assert_false(cn_e2e_ready(w.e[0]));
    world_free(&w);
}

static void a_stream_routed_to_another_tunnel_fails(void **state)
{
    (void)state;
    struct world w;
    world_init(&w);
    world_start(&w, w.k.expose_pub, w.k.reach_pub, TUNNEL, OTHER_TUNNEL);
    assert_int_equal(handshake(&w), CN_EAUTH);
    assert_false(cn_e2e_ready(w.e[1]));
    world_free(&w);
}

static void a_tampered_record_fails(void **state)
{
    (void)state;
    struct world w;
    world_init(&w);
    world_start(&w, w.k.expose_pub, w.k.reach_pub, TUNNEL, TUNNEL);
    assert_int_equal(handshake(&w), 0);
    w.tamper_at = (int)w.tap.len + 10; /* inside the next record's ciphertext */
    const char msg[] = "transfer 100 to alice";
    assert_int_equal(send_plain(&w, 0, (const uint8_t *)msg, strlen(msg)), CN_EAUTH);
    assert_int_equal(w.got[1].len, 0);
    world_free(&w);
}

static void clean_end_and_cut_stream_are_told_apart(void **state)
{
    (void)state;
    struct world w;
    world_init(&w);
    world_start(&w, w.k.expose_pub, w.k.reach_pub, TUNNEL, TUNNEL);
    assert_int_equal(handshake(&w), 0);
    /* Half-close: the reacher closes, the exposer still answers. */
    assert_int_equal(send_plain(&w, 0, (const uint8_t *)"req", 3), 0);
    assert_int_equal(cn_e2e_close(w.e[0]), 0);
    assert_int_equal(relay(&w, 0), 0);
    assert_int_equal(cn_e2e_eof(w.e[1]), 0);
    assert_int_equal(send_plain(&w, 1, (const uint8_t *)"reply", 5), 0);
    assert_int_equal(w.got[0].len, 5);
    /* The hub cuts the other direction with a FIN but no close record. */
    assert_int_equal(cn_e2e_eof(w.e[0]), CN_ECLOSED);
    world_free(&w);
}

static void bad_configurations_are_refused(void **state)
{
    (void)state;
    uint8_t k[32] = {1};
    char err[128] = "";
    cn_e2e_config_t c = {CN_E2E_INITIATOR, k, NULL, TUNNEL};
    assert_null(cn_e2e_new(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "end-to-end"));
    c.peer_public = k;
    c.tunnel_id = NULL;
    assert_null(cn_e2e_new(&c, NULL, 0));
    c.tunnel_id = TUNNEL;
    c.role = 7;
    assert_null(cn_e2e_new(&c, NULL, 0));
    assert_null(cn_e2e_new(NULL, NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(relayed_bytes_never_hold_the_plaintext),
        cmocka_unit_test(hub_swapping_the_exposers_key_fails_the_handshake),
        cmocka_unit_test(hub_swapping_the_reachers_key_is_refused),
        cmocka_unit_test(a_hub_impersonating_the_exposer_is_caught_by_its_pinned_key),
        cmocka_unit_test(a_stream_routed_to_another_tunnel_fails),
        cmocka_unit_test(a_tampered_record_fails),
        cmocka_unit_test(clean_end_and_cut_stream_are_told_apart),
        cmocka_unit_test(bad_configurations_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
