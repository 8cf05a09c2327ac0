/* libFuzzer harness for cn_chan: the input is bytes arriving from the network.
 *
 * Byte 0 picks the victim and the chunking: bit 0 clear = a hub (responder)
 * receiving from an agent, bit 0 set = an agent (initiator) that has sent
 * message 1 and receives the hub's answer; bits 1-7 = chunk size for feeding
 * (0 = all at once). The rest is fed to the channel; must never crash, leak,
 * or break the "failure is final" rule.
 *
 * Randomness is a deterministic stream reset for every input, so the committed
 * seeds (real sessions made with the same stream) get through the handshake
 * and let the fuzzer reach the record layer. To regenerate the seeds:
 *   cc -DFUZZ_GEN -fsanitize=address,undefined -Isdk/src tests/fuzz/fuzz_handshake.c \
 *      build-asan/sdk/libconnect_static.a -lsodium -o /tmp/gen && /tmp/gen
 * tests/fuzz/corpus/handshake
 */
#include "cn_chan.h"
#include "cn_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define BINDING "wss://hub.fuzz/agent"
#define SEED_AGENT 1
#define SEED_HUB 2

static const uint8_t agent_priv[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
static const uint8_t hub_priv[32] = {11, 12, 13, 14, 15, 16, 17, 18, 19, 20};

/* ---- deterministic randombytes ---- */

static uint8_t rng_seed[randombytes_SEEDBYTES];
static uint64_t rng_counter;

static void rng_reset(uint64_t seed)
{
    memset(rng_seed, 0, sizeof(rng_seed));
    memcpy(rng_seed, &seed, sizeof(seed));
    rng_counter = 0;
}

static void rng_buf(void *const buf, const size_t size)
{
    uint8_t in[randombytes_SEEDBYTES + 8], seed[crypto_hash_sha256_BYTES];
    memcpy(in, rng_seed, randombytes_SEEDBYTES);
    memcpy(in + randombytes_SEEDBYTES, &rng_counter, 8);
    rng_counter++;
    crypto_hash_sha256(seed, in, sizeof(in));
    randombytes_buf_deterministic(buf, size, seed);
}

static uint32_t rng_random(void)
{
    uint32_t r;
    rng_buf(&r, sizeof(r));
    return r;
}

static const char *rng_name(void)
{
    return "fuzz-deterministic";
}

static randombytes_implementation rng_impl = {
    .implementation_name = rng_name,
    .random = rng_random,
    .buf = rng_buf,
};

static void setup(void)
{
    randombytes_set_implementation(&rng_impl);
    if (sodium_init() < 0)
        abort();
}

static cn_chan_t *make(int role)
{
    uint8_t hub_pub[32];
    if (cn_chan_public_key(hub_priv, hub_pub) != 0)
        abort();
    static const uint8_t token[] = "enroll-token-for-fuzzing";
    cn_chan_config_t c = {
        .role = role,
        .local_private = role == CN_CHAN_INITIATOR ? agent_priv : hub_priv,
        .remote_public = role == CN_CHAN_INITIATOR ? hub_pub : NULL,
        .binding = BINDING,
        .app_payload = role == CN_CHAN_INITIATOR ? token : NULL,
        .app_payload_len = role == CN_CHAN_INITIATOR ? sizeof(token) : 0,
        .rekey_bytes = 4096, /* so that seeds and mutations meet key updates */
        .now_ms = 1,
    };
    cn_chan_t *ch = cn_chan_new(&c, NULL, 0);
    if (!ch)
        abort();
    return ch;
}

#ifndef FUZZ_GEN

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int role = data[0] & 1 ? CN_CHAN_INITIATOR : CN_CHAN_RESPONDER;
    size_t chunk = data[0] >> 1;
    data++, size--;

    cn_buf_t plain, out;
    cn_buf_init(&plain, 4u << 20, 0);
    cn_buf_init(&out, 1u << 20, 0);
    rng_reset(SEED_AGENT);
    cn_chan_t *ch;
    if (role == CN_CHAN_INITIATOR) {
        ch = make(CN_CHAN_INITIATOR);
        if (cn_chan_start(ch, &out) != 0)
            abort();
        cn_buf_reset(&out); /* message 1 went out */
    } else {
        rng_reset(SEED_HUB);
        ch = make(CN_CHAN_RESPONDER);
    }
    int rc = 0;
    size_t delivered = 0;
    for (size_t i = 0; i < size && rc == 0;) {
        size_t n = chunk && chunk < size - i ? chunk : size - i;
        rc = cn_chan_feed(ch, data + i, n, &plain, &out);
        i += n;
        delivered += plain.len;
        cn_buf_reset(&plain);
        cn_buf_reset(&out);
        /* Exercise the send side too once established. */
        if (rc == 0 && cn_chan_is_established(ch)) {
            uint8_t rec[CN_CHAN_HEADER + 64 + CN_CHAN_TAG] = {0};
            int len = cn_chan_seal(ch, rec, 64);
            if (len != (int)sizeof(rec))
                abort();
        }
    }
    if (delivered > size)
        abort(); /* plaintext never exceeds what came in */
    if (rc == 0)
        rc = cn_chan_eof(ch);
    if (rc != 0) {
        /* Failure is final and reported consistently. */
        if (cn_chan_error(ch) != rc || cn_chan_state(ch) != CN_CHAN_FAILED)
            abort();
        if (cn_chan_feed(ch, data, size, &plain, &out) != rc || plain.len || out.len)
            abort();
    }
    cn_chan_free(ch);
    cn_buf_free(&plain);
    cn_buf_free(&out);
    return 0;
}

#else /* FUZZ_GEN: writes seed inputs made by real sessions */

static void write_seed(const char *dir, const char *name, uint8_t mode, const cn_buf_t *b)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(&mode, 1, 1, f) != 1 ||
        (b->len && fwrite(cn_buf_data(b), 1, b->len, f) != b->len) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void seal_into(cn_chan_t *ch, cn_buf_t *dst, size_t n, uint8_t fill)
{
    uint8_t *rec = cn_buf_reserve(dst, CN_CHAN_HEADER + n + CN_CHAN_TAG, NULL);
    if (!rec)
        abort();
    memset(rec + CN_CHAN_HEADER, fill, n);
    int len = cn_chan_seal(ch, rec, n);
    if (len < 0)
        abort();
    cn_buf_commit(dst, (size_t)len);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    setup();
    cn_buf_t a_out, h_out, plain, to_hub, to_agent;
    cn_buf_init(&a_out, 1u << 20, 0);
    cn_buf_init(&h_out, 1u << 20, 0);
    cn_buf_init(&plain, 4u << 20, 0);
    cn_buf_init(&to_hub, 1u << 20, 0);
    cn_buf_init(&to_agent, 1u << 20, 0);

    /* The same order of randomness draws as the harness: the agent's
     * ephemeral from SEED_AGENT, the hub's from SEED_HUB. */
    rng_reset(SEED_AGENT);
    cn_chan_t *agent = make(CN_CHAN_INITIATOR);
    if (cn_chan_start(agent, &a_out))
        abort();
    rng_reset(SEED_HUB);
    cn_chan_t *hub = make(CN_CHAN_RESPONDER);
    cn_buf_append(&to_hub, cn_buf_data(&a_out), a_out.len); /* message 1 */
    write_seed(argv[1], "msg1", 0, &to_hub);
    if (cn_chan_feed(hub, cn_buf_data(&a_out), a_out.len, &plain, &h_out))
        abort();
    cn_buf_reset(&a_out);
    cn_buf_append(&to_agent, cn_buf_data(&h_out), h_out.len); /* message 2 */
    write_seed(argv[1], "msg2", 1, &to_agent);
    if (cn_chan_feed(agent, cn_buf_data(&h_out), h_out.len, &plain, &a_out))
        abort();
    cn_buf_reset(&h_out);
    cn_buf_append(&to_hub, cn_buf_data(&a_out), a_out.len); /* message 3 */
    write_seed(argv[1], "msg1_msg3", 0, &to_hub);
    if (cn_chan_feed(hub, cn_buf_data(&a_out), a_out.len, &plain, &h_out) ||
        !cn_chan_is_established(hub))
        abort();
    /* Data both ways, enough to cross the 4096-byte rekey threshold. */
    static const size_t sizes[] = {0, 1, 100, 3000, 2000, 16, 5000, 7};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        seal_into(agent, &to_hub, sizes[i], (uint8_t)i);
        seal_into(hub, &to_agent, sizes[i], (uint8_t)(0x80 + i));
    }
    write_seed(argv[1], "session_to_hub", 0, &to_hub);
    write_seed(argv[1], "session_to_hub_chunked", 7 << 1, &to_hub);
    write_seed(argv[1], "session_to_agent", 1, &to_agent);
    uint8_t close_rec[CN_CHAN_HEADER + CN_CHAN_TAG];
    if (cn_chan_seal_close(agent, close_rec) < 0)
        abort();
    cn_buf_append(&to_hub, close_rec, sizeof(close_rec));
    write_seed(argv[1], "session_to_hub_close", 0, &to_hub);
    /* Check the whole session really is accepted by a fresh hub. */
    rng_reset(SEED_HUB);
    cn_chan_t *hub2 = make(CN_CHAN_RESPONDER);
    cn_buf_reset(&plain);
    if (cn_chan_feed(hub2, cn_buf_data(&to_hub), to_hub.len, &plain, &h_out) ||
        cn_chan_eof(hub2) != 0)
        abort();
    printf("seeds written; session delivers %zu bytes\n", plain.len);
    cn_chan_free(hub2);
    cn_chan_free(agent);
    cn_chan_free(hub);
    cn_buf_free(&a_out);
    cn_buf_free(&h_out);
    cn_buf_free(&plain);
    cn_buf_free(&to_hub);
    cn_buf_free(&to_agent);
    return 0;
}

#endif
