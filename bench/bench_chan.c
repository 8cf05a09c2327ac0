/* Seal + open throughput of cn_chan records, per transport cipher and record
 * size: one side seals in place, the other authenticates and decrypts into its
 * plaintext buffer, both on this thread. Prints MB/s of plaintext and CPU
 * seconds per GB (CLOCK_PROCESS_CPUTIME_ID). Each case runs for ~2 s.
 * usage: bench_chan [seconds_per_case] */
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

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_chan: %s: %s\n", what, cn_strerror(rc));
    exit(1);
}

/* Two channels that completed a handshake with `cipher` on both sides. */
static void connect_pair(int cipher, cn_chan_t **agent, cn_chan_t **hub)
{
    uint8_t apub[32], apriv[32], hpub[32], hpriv[32];
    if (cn_chan_keypair(apub, apriv) || cn_chan_keypair(hpub, hpriv))
        die("keypair", CN_ECRYPTO);
    cn_chan_config_t ac = {.role = CN_CHAN_INITIATOR,
                           .local_private = apriv,
                           .remote_public = hpub,
                           .binding = "bench",
                           .cipher = cipher};
    cn_chan_config_t hc = {
        .role = CN_CHAN_RESPONDER, .local_private = hpriv, .binding = "bench", .cipher = cipher};
    int rc = 0;
    *agent = cn_chan_new(&ac, NULL, 0);
    if (!*agent)
        die("new", CN_EINVAL);
    *hub = cn_chan_new(&hc, NULL, 0);
    if (!*hub)
        die("new", CN_EINVAL);
    cn_buf_t a, h, plain;
    cn_buf_init(&a, 1 << 16, 0);
    cn_buf_init(&h, 1 << 16, 0);
    cn_buf_init(&plain, 1 << 16, 0);
    rc = cn_chan_start(*agent, &a);
    for (int i = 0; rc == 0 && i < 3; i++) {
        cn_buf_t *from = i % 2 ? &h : &a, *to = i % 2 ? &a : &h;
        cn_chan_t *dst = i % 2 ? *agent : *hub;
        rc = cn_chan_feed(dst, cn_buf_data(from), from->len, &plain, to);
        cn_buf_reset(from);
    }
    if (rc || !cn_chan_is_established(*hub))
        die("handshake", rc ? rc : CN_ESTATE);
    cn_buf_free(&a);
    cn_buf_free(&h);
    cn_buf_free(&plain);
}

static void run_case(int cipher, size_t record, double seconds)
{
    cn_chan_t *agent, *hub;
    connect_pair(cipher, &agent, &hub);
    uint8_t *rec = malloc(CN_CHAN_HEADER + record + CN_CHAN_TAG);
    cn_buf_t plain;
    cn_buf_init(&plain, CN_CHAN_MAX_RECORD * 2, 0);
    cn_buf_t none;
    cn_buf_init(&none, 1, 0);
    if (!rec)
        die("malloc", CN_ENOMEM);
    memset(rec, 0x5a, CN_CHAN_HEADER + record + CN_CHAN_TAG);

    uint64_t bytes = 0;
    double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID), w1;
    do {
        for (int i = 0; i < 16; i++) {
            int len = cn_chan_seal(agent, rec, record);
            if (len < 0)
                die("seal", len);
            int rc = cn_chan_feed(hub, rec, (size_t)len, &plain, &none);
            if (rc)
                die("feed", rc);
            cn_buf_reset(&plain);
            bytes += record;
        }
        w1 = now_s(CLOCK_MONOTONIC);
    } while (w1 - w0 < seconds);
    double cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    double gb = (double)bytes / 1e9;
    printf("| %-17s | %6zu KiB | %9.0f | %12.3f |\n", cn_chan_cipher_name(agent), record / 1024,
           (double)bytes / 1e6 / (w1 - w0), cpu / gb);
    cn_buf_free(&plain);
    cn_buf_free(&none);
    free(rec);
    cn_chan_free(agent);
    cn_chan_free(hub);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    if (sodium_init() < 0)
        die("sodium_init", CN_ECRYPTO);
    static const size_t sizes[] = {16 * 1024, 64 * 1024};
    printf("cn_chan seal+open, one thread, %.1f s per case\n\n", seconds);
    printf("| cipher            | record     |  MB/s     | CPU s per GB |\n");
    printf("| ----------------- | ---------- | --------- | ------------ |\n");
    for (size_t i = 0; i < 2; i++) {
        run_case(CN_CHAN_CIPHER_CHACHA20POLY1305, sizes[i], seconds);
        if (crypto_aead_aes256gcm_is_available())
            run_case(CN_CHAN_CIPHER_AES256GCM, sizes[i], seconds);
        else
            printf("| AES-256-GCM       | %6zu KiB | (no AES-NI on this CPU)  |\n",
                   sizes[i] / 1024);
    }
    return 0;
}
