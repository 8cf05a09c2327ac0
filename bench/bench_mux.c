/* bench_mux: in-memory throughput of two muxes back to back. 64 streams
 * carry data A -> B through the real frame codec: the sender fills streams
 * with cn_mux_write_space/commit (as the glue would recv() into them), A's
 * cn_mux_output() records (64 KiB) are decoded and fed to B, B drains with
 * cn_mux_peek/consume (as the glue would write() from them) and its WINDOW
 * frames flow back. Stops after 1 GiB or ~3 s; prints MB/s and CPU s/GB.
 * usage: bench_mux [streams] [MiB] */
#include "bench.h"
#include "cn_err.h"
#include "cn_frame.h"
#include "cn_mux.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORD 65536
#define MAX_STREAMS 1024

typedef struct bench {
    cn_mux_t *a, *b;
    cn_frame_decoder_t *dec_a, *dec_b;
    uint32_t ids[MAX_STREAMS];
    int nstreams;
    uint64_t to_send, queued, received;
    uint64_t frames, records;
    uint32_t sum; /* touch received bytes so the reads are not optimised away */
} bench_t;

static uint8_t source[RECORD];

static double now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill(bench_t *b, uint32_t id)
{
    while (b->queued < b->to_send) {
        uint8_t *p;
        size_t space;
        if (cn_mux_write_space(b->a, id, &p, &space) != 0)
            return; /* on_writable resumes */
        if (space > b->to_send - b->queued)
            space = (size_t)(b->to_send - b->queued);
        memcpy(p, source, space);
        bench_check(cn_mux_write_commit(b->a, id, space), "cn_mux_write_commit");
        b->queued += space;
    }
}

static void a_accepted(void *ctx, uint32_t id, void *user)
{
    fill(ctx, id);
}

static void a_writable(void *ctx, uint32_t id, void *user)
{
    fill(ctx, id);
}

static void b_open(void *ctx, uint32_t id, uint8_t kind, const uint8_t *ref, size_t ref_len,
                   const uint8_t *meta, size_t meta_len)
{
    bench_t *b = ctx;
    bench_check(cn_mux_accept(b->b, id, NULL), "cn_mux_accept");
}

static void b_readable(void *ctx, uint32_t id, void *user)
{
    bench_t *b = ctx;
    const uint8_t *p;
    size_t len;
    while (cn_mux_peek(b->b, id, &p, &len) > 0) {
        b->sum += p[0] + p[len - 1];
        b->received += len;
        bench_check(cn_mux_consume(b->b, id, len), "cn_mux_consume");
    }
}

static void feed(bench_t *b, cn_frame_decoder_t *dec, cn_mux_t *to, const uint8_t *p, size_t n)
{
    while (n) {
        cn_frame_t f;
        size_t used;
        int rc = cn_frame_decode(dec, p, n, &used, &f);
        if (rc < 0) {
            fprintf(stderr, "bench_mux: decode: %s\n", cn_strerror(rc));
            exit(1);
        }
        p += used;
        n -= used;
        if (rc == 1) {
            b->frames += to == b->b;
            rc = cn_mux_input(to, &f);
            if (rc < 0) {
                fprintf(stderr, "bench_mux: input: %s\n", cn_strerror(rc));
                exit(1);
            }
        }
    }
}

int main(int argc, char **argv)
{
    static uint8_t rec[RECORD];
    bench_t b = {0};
    b.nstreams = argc > 1 ? atoi(argv[1]) : 64;
    uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 1024;
    if (b.nstreams < 1 || b.nstreams > MAX_STREAMS || mib == 0) {
        fprintf(stderr, "usage: bench_mux [streams 1..%d] [MiB]\n", MAX_STREAMS);
        return 2;
    }
    b.to_send = mib << 20;
    for (size_t i = 0; i < sizeof(source); i++)
        source[i] = (uint8_t)(i * 31);

    cn_mux_callbacks_t cba = {.on_accepted = a_accepted, .on_writable = a_writable};
    cn_mux_callbacks_t cbb = {.on_open = b_open, .on_readable = b_readable};
    cn_mux_config_t ca = {.initiator = 1}, cb = {0};
    b.a = cn_mux_new(&ca, &cba, &b);
    b.b = cn_mux_new(&cb, &cbb, &b);
    b.dec_a = cn_frame_decoder_new();
    b.dec_b = cn_frame_decoder_new();
    if (!b.a || !b.b || !b.dec_a || !b.dec_b)
        return 1;
    for (int i = 0; i < b.nstreams; i++) {
        if (cn_mux_open(b.a, CN_KIND_TCP, NULL, 0, NULL, 0, NULL, &b.ids[i]) != 0)
            return 1;
    }

    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    double deadline = w0 + 3.0;
    for (;;) {
        int n = cn_mux_output(b.a, rec, sizeof(rec));
        if (n > 0) {
            b.records++;
            feed(&b, b.dec_b, b.b, rec, (size_t)n);
        }
        int m = cn_mux_output(b.b, rec, sizeof(rec));
        if (m > 0)
            feed(&b, b.dec_a, b.a, rec, (size_t)m);
        if (b.received >= b.to_send || (n <= 0 && m <= 0))
            break;
        if ((b.records & 255) == 0 && now(CLOCK_MONOTONIC) > deadline)
            break;
    }
    double wall = now(CLOCK_MONOTONIC) - w0, cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;

    double mb = (double)b.received / 1e6, gb = (double)b.received / 1e9;
    printf("bench_mux: %d streams, %.0f MB in %.3f s wall, %.3f s CPU\n", b.nstreams, mb, wall,
           cpu);
    printf("  throughput %.0f MB/s, %.3f CPU s/GB, %.1f KiB per record, %.1f frames per "
           "record (sum %u)\n",
           mb / wall, cpu / gb, (double)b.received / 1024.0 / (double)b.records,
           (double)b.frames / (double)b.records, b.sum);
    int ok = b.received > 0 && (b.received == b.to_send || wall >= 2.9);
    cn_mux_abort(b.a, CN_RST_GONE);
    cn_mux_abort(b.b, CN_RST_GONE);
    cn_mux_free(b.a);
    cn_mux_free(b.b);
    cn_frame_decoder_free(b.dec_a);
    cn_frame_decoder_free(b.dec_b);
    return ok ? 0 : 1;
}
