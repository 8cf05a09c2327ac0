/* Seal and open throughput of cn_chan records, per transport cipher, AES-256-GCM
 * engine (libsodium or OpenSSL EVP) and record size, on one thread: one side
 * seals a batch of records in place (~256 KiB, so the batch stays in cache),
 * the other authenticates and decrypts the batch into its plaintext buffer.
 * Seal and open are timed apart, so each column is one direction's cost on one
 * core. Prints MB/s of plaintext, ns per record and CPU seconds per GB of
 * seal + open (CLOCK_PROCESS_CPUTIME_ID). Each case runs for `seconds`.
 * usage: bench_chan [seconds_per_case [record_bytes...]]   (default 64 1024 16384 65536) */
#include "bench.h"
#include "cn_buf.h"
#include "cn_chan.h"
#include "cn_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

static double now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Two channels that completed a handshake with `cipher` on both sides, each
 * sealing and opening AES-256-GCM with `aes_impl`. */
static void connect_pair(int cipher, int aes_impl, cn_chan_t **agent, cn_chan_t **hub)
{
    uint8_t apub[32], apriv[32], hpub[32], hpriv[32];
    bench_check(cn_chan_keypair(apub, apriv), "keypair");
    bench_check(cn_chan_keypair(hpub, hpriv), "keypair");
    cn_chan_config_t ac = {.role = CN_CHAN_INITIATOR,
                           .local_private = apriv,
                           .remote_public = hpub,
                           .binding = "bench",
                           .cipher = cipher,
                           .aes_impl = aes_impl};
    cn_chan_config_t hc = {.role = CN_CHAN_RESPONDER,
                           .local_private = hpriv,
                           .binding = "bench",
                           .cipher = cipher,
                           .aes_impl = aes_impl};
    char err[128] = "";
    *agent = cn_chan_new(&ac, err, sizeof(err));
    *hub = *agent ? cn_chan_new(&hc, err, sizeof(err)) : NULL;
    if (!*hub) {
        fprintf(stderr, "bench_chan: %s\n", err);
        exit(1);
    }
    cn_buf_t a, h, plain;
    cn_buf_init(&a, 1 << 16, 0);
    cn_buf_init(&h, 1 << 16, 0);
    cn_buf_init(&plain, 1 << 16, 0);
    bench_check(cn_chan_start(*agent, &a), "start");
    for (int i = 0; i < 3; i++) {
        cn_buf_t *from = i % 2 ? &h : &a, *to = i % 2 ? &a : &h;
        cn_chan_t *dst = i % 2 ? *agent : *hub;
        bench_check(cn_chan_feed(dst, cn_buf_data(from), from->len, &plain, to), "handshake");
        cn_buf_reset(from);
    }
    if (!cn_chan_is_established(*hub))
        bench_check(CN_ESTATE, "handshake");
    cn_buf_free(&a);
    cn_buf_free(&h);
    cn_buf_free(&plain);
}

static void run_case(int cipher, int aes_impl, size_t record, double seconds)
{
    cn_chan_t *agent, *hub;
    connect_pair(cipher, aes_impl, &agent, &hub);
    size_t rec_len = CN_CHAN_HEADER + record + CN_CHAN_TAG;
    size_t batch = (256 * 1024) / rec_len;
    if (batch < 4)
        batch = 4;
    uint8_t *recs = malloc(batch * rec_len);
    cn_buf_t plain, none;
    cn_buf_init(&plain, batch * record + CN_CHAN_MAX_RECORD * 2, 0);
    cn_buf_init(&none, 1, 0);
    if (!recs)
        bench_check(CN_ENOMEM, "malloc");
    memset(recs, 0x5a, batch * rec_len);

    uint64_t records = 0;
    double seal_s = 0, open_s = 0;
    double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID), w1;
    do {
        double t0 = now_s(CLOCK_MONOTONIC);
        for (size_t i = 0; i < batch; i++)
            bench_check(cn_chan_seal(agent, recs + i * rec_len, record), "seal");
        double t1 = now_s(CLOCK_MONOTONIC);
        bench_check(cn_chan_feed(hub, recs, batch * rec_len, &plain, &none), "feed");
        w1 = now_s(CLOCK_MONOTONIC);
        cn_buf_reset(&plain);
        seal_s += t1 - t0;
        open_s += w1 - t1;
        records += batch;
    } while (w1 - w0 < seconds);
    double cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    double mb = (double)(records * record) / 1e6;
    char size[32];
    if (record >= 1024)
        snprintf(size, sizeof(size), "%zu KiB", record / 1024);
    else
        snprintf(size, sizeof(size), "%zu B", record);
    printf("| %-17s | %-9s | %7s | %9.0f | %9.0f | %8.0f | %8.0f | %8.3f |\n",
           cn_chan_cipher_name(agent), cn_chan_cipher_impl(agent), size, mb / seal_s, mb / open_s,
           seal_s * 1e9 / (double)records, open_s * 1e9 / (double)records, cpu / (mb / 1e3));
    fflush(stdout);
    cn_buf_free(&plain);
    cn_buf_free(&none);
    free(recs);
    cn_chan_free(agent);
    cn_chan_free(hub);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 2.0;
    if (!(seconds > 0))
        seconds = 2.0;
    if (sodium_init() < 0)
        bench_check(CN_ECRYPTO, "sodium_init");
    size_t sizes[16] = {64, 1024, 16 * 1024, 64 * 1024}, nsizes = 4;
    if (argc > 2) {
        nsizes = 0;
        for (int i = 2; i < argc && nsizes < 16; i++) {
            long v = strtol(argv[i], NULL, 10);
            if (v < 0 || v > CN_CHAN_MAX_PLAINTEXT) {
                fprintf(stderr, "bench_chan: record sizes are 0..%d bytes\n",
                        CN_CHAN_MAX_PLAINTEXT);
                return 2;
            }
            sizes[nsizes++] = (size_t)v;
        }
    }
    bool aes = crypto_aead_aes256gcm_is_available() != 0;
    printf("cn_chan seal and open, one thread, %.1f s per case, batches of ~256 KiB\n\n", seconds);
    printf(
        "| cipher            | engine    | record  | seal MB/s | open MB/s | seal ns  | open ns  "
        "| CPU s/GB |\n");
    printf(
        "| ----------------- | --------- | ------- | --------- | --------- | -------- | -------- "
        "| -------- |\n");
    for (size_t i = 0; i < nsizes; i++) {
        if (aes) {
            run_case(CN_CHAN_CIPHER_AES256GCM, CN_CHAN_AES_SODIUM, sizes[i], seconds);
            run_case(CN_CHAN_CIPHER_AES256GCM, CN_CHAN_AES_EVP, sizes[i], seconds);
        } else {
            printf("| AES-256-GCM       | (no AES-NI on this CPU) |\n");
        }
        run_case(CN_CHAN_CIPHER_CHACHA20POLY1305, CN_CHAN_AES_DEFAULT, sizes[i], seconds);
    }
    printf("\nCPU s/GB counts seal + open of each byte (both directions' cost).\n");
    return 0;
}
