/* Writes seed inputs for tests/fuzz/fuzz_mux: short, valid frame streams as
 * a peer (even stream ids) would send them to the fuzzed mux (odd ids).
 * usage: mux_seeds DIR   (the committed seeds are in tests/fuzz/corpus/mux) */
#include "cn_frame.h"

#include <stdio.h>
#include <string.h>

static uint8_t buf[1 << 20];
static size_t len;
static uint8_t fill[CN_FRAME_MAX_PAYLOAD];

static void put(uint8_t type, uint32_t stream, uint32_t v, const void *p, uint32_t n)
{
    cn_frame_t f = {.type = type, .stream = stream, .len = n, .payload = p};
    switch (type) {
    case CN_FRAME_OPEN:
        f.u.open.window = v;
        f.u.open.kind = CN_KIND_TCP;
        f.u.open.ref = (const uint8_t *)"tun";
        f.u.open.ref_len = 3;
        f.u.open.meta = p;
        f.u.open.meta_len = n;
        break;
    case CN_FRAME_OPEN_ACK:
    case CN_FRAME_WINDOW:
        f.u.window = v;
        break;
    case CN_FRAME_RST:
    case CN_FRAME_GOAWAY:
        f.u.reason.code = v;
        f.u.reason.msg = p;
        f.u.reason.msg_len = n;
        break;
    case CN_FRAME_PING:
    case CN_FRAME_PONG:
        f.u.ping = v;
        break;
    default:
        break;
    }
    int rc = cn_frame_encode(&f, buf + len, sizeof(buf) - len);
    if (rc < 0) {
        fprintf(stderr, "mux_seeds: cannot encode %s\n", cn_frame_type_name(type));
        return;
    }
    len += (size_t)rc;
}

static int save(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    len = 0;
    return 0;
}

int main(int argc, char **argv)
{
    int err = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: mux_seeds DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    memset(fill, 'd', sizeof(fill));

    /* The peer opens a stream, sends a request, half-closes, pings, talks. */
    put(CN_FRAME_OPEN, 2, 65536, "{\"client\":\"1.2.3.4\"}", 20);
    put(CN_FRAME_DATA, 2, 0, "GET / HTTP/1.1\r\n\r\n", 18);
    put(CN_FRAME_FIN, 2, 0, NULL, 0);
    put(CN_FRAME_PING, 0, 7, NULL, 0);
    put(CN_FRAME_CONTROL, 0, 0, "{\"type\":\"hello\"}", 16);
    put(CN_FRAME_WINDOW, 2, 4096, NULL, 0);
    err |= save(dir, "open_data_fin");

    /* Answers to our streams 1, 3, 5: accept, credit, data, FIN, reset. */
    put(CN_FRAME_OPEN_ACK, 1, 8192, NULL, 0);
    put(CN_FRAME_OPEN_ACK, 3, 100, NULL, 0);
    put(CN_FRAME_WINDOW, 1, 4096, NULL, 0);
    put(CN_FRAME_DATA, 1, 0, fill, 3000);
    put(CN_FRAME_FIN, 1, 0, NULL, 0);
    put(CN_FRAME_DATA, 3, 0, fill, 1000);
    put(CN_FRAME_RST, 5, CN_RST_REFUSED, "no", 2);
    put(CN_FRAME_PONG, 0, 1, NULL, 0);
    err |= save(dir, "answers");

    /* Datagrams on a UDP-ish stream, then a reset. */
    put(CN_FRAME_OPEN, 2, 4096, NULL, 0);
    for (int i = 0; i < 4; i++)
        put(CN_FRAME_DATAGRAM, 2, 0, fill, 100u * (uint32_t)i);
    put(CN_FRAME_RST, 2, CN_RST_CANCEL, "done", 4);
    put(CN_FRAME_DATAGRAM, 2, 0, fill, 10); /* late: tolerated */
    err |= save(dir, "datagrams");

    /* DATA beyond the 4 KiB window the fuzzed mux grants. */
    put(CN_FRAME_OPEN, 2, 4096, NULL, 0);
    put(CN_FRAME_DATA, 2, 0, fill, 4000);
    put(CN_FRAME_DATA, 2, 0, fill, 200);
    put(CN_FRAME_WINDOW, 2, 1, NULL, 0);
    err |= save(dir, "flow_violation");

    /* Many streams, some reset, then GOAWAY and an OPEN crossing it. */
    for (uint32_t id = 2; id <= 80; id += 2) {
        put(CN_FRAME_OPEN, id, 4096, NULL, 0);
        put(CN_FRAME_DATA, id, 0, fill, id * 10);
        if (id % 6 == 0)
            put(CN_FRAME_RST, id, CN_RST_CANCEL, NULL, 0);
        else
            put(CN_FRAME_FIN, id, 0, NULL, 0);
    }
    put(CN_FRAME_GOAWAY, 0, CN_RST_GONE, "maintenance", 11);
    put(CN_FRAME_OPEN, 82, 4096, NULL, 0);
    err |= save(dir, "many_streams_goaway");

    /* Link errors: a second FIN, then our parity in an OPEN. */
    put(CN_FRAME_OPEN, 2, 4096, NULL, 0);
    put(CN_FRAME_FIN, 2, 0, NULL, 0);
    put(CN_FRAME_FIN, 2, 0, NULL, 0);
    err |= save(dir, "second_fin");
    put(CN_FRAME_OPEN, 7, 4096, NULL, 0);
    err |= save(dir, "wrong_parity");

    /* One large CONTROL and a large DATA frame split over many records. */
    {
        static char json[60000];
        memset(json, ' ', sizeof(json));
        memcpy(json, "{\"k\":\"", 6);
        memset(json + 6, 'v', sizeof(json) - 8);
        memcpy(json + sizeof(json) - 2, "\"}", 2);
        put(CN_FRAME_CONTROL, 0, 0, json, sizeof(json));
        put(CN_FRAME_OPEN_ACK, 1, CN_FRAME_MAX_WINDOW, NULL, 0);
        put(CN_FRAME_DATA, 1, 0, fill, 4096);
    }
    err |= save(dir, "large_frames");
    return err;
}
