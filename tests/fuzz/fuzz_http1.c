/* fuzz_http1: the input is [mode][seed] then the bytes a hostile client
 * (mode bit 0 clear) or target (set) sends. The head is parsed from a
 * growing prefix, as the edge does while bytes arrive: a complete parse
 * must never turn incomplete or change its length as more bytes come, and
 * every pointer must stay inside the input. The body after the head is
 * framed twice, whole and in seed-chosen pieces (differential): both must
 * agree on how many bytes are body and on where it ends.
 *
 * Seeds: tests/fuzz/corpus/http1. */
#include "http1.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int parse(bool response, const char *b, size_t n, hub_h1_head_t *h)
{
    return response ? hub_h1_parse_response(b, n, h) : hub_h1_parse_request(b, n, h);
}

static void inside(const char *lo, size_t n, const char *p, size_t len)
{
    if (len && (p < lo || p + len > lo + n))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    bool response = data[0] & 1;
    bool head_req = data[0] & 2;
    uint32_t seed = data[1] * 2654435761u + 1;
    const char *in = (const char *)data + 2;
    size_t n = size - 2;
    static hub_h1_head_t h, h2;
    int rc = parse(response, in, n, &h);
    if (rc != 1)
        return 0;
    if (h.head_len > n || h.nheaders > HUB_H1_MAX_HEADERS)
        abort();
    for (size_t i = 0; i < h.nheaders; i++) {
        inside(in, h.head_len, h.headers[i].name, h.headers[i].name_len);
        inside(in, h.head_len, h.headers[i].value, h.headers[i].value_len);
        if (!h.headers[i].name_len)
            abort();
    }
    if (!response) {
        inside(in, h.head_len, h.method, h.method_len);
        inside(in, h.head_len, h.target, h.target_len);
    }
    /* The same head from exactly its bytes, and a shorter prefix is never
     * complete. */
    if (parse(response, in, h.head_len, &h2) != 1 || h2.head_len != h.head_len)
        abort();
    if (h.head_len > 0 && parse(response, in, h.head_len - 1, &h2) == 1)
        abort();

    hub_h1_body_t whole, pieces;
    rc = response ? hub_h1_response_body(&h, head_req, &whole) : hub_h1_request_body(&h, &whole);
    if (rc < 0)
        return 0;
    pieces = whole;
    const uint8_t *body = data + 2 + h.head_len;
    size_t blen = n - h.head_len, used_whole = 0;
    int rw = hub_h1_body_feed(&whole, body, blen, &used_whole);
    size_t off = 0;
    int rp = 0;
    while (off < blen && !pieces.done) {
        seed = seed * 1103515245u + 12345u;
        size_t k = 1 + (seed >> 16) % 64;
        if (k > blen - off)
            k = blen - off;
        size_t u = 0;
        rp = hub_h1_body_feed(&pieces, body + off, k, &u);
        if (rp < 0)
            break;
        if (u > k || (u < k && !pieces.done))
            abort(); /* a framer stops early only at the body's end */
        off += u;
        if (u < k)
            break;
    }
    if ((rw < 0) != (rp < 0))
        abort();
    if (rw == 0 && (used_whole != off || whole.done != pieces.done))
        abort();
    return 0;
}
