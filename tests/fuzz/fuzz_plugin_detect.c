/* libFuzzer harness for the built-in plugins' parsers: detect() in both
 * directions and probe_reply(), on an exact-size heap copy so that any read
 * past the input shows under ASan. Invariants that must hold for any input
 * abort the run:
 * - verdicts are only the documented constants;
 * - a MATCH is never contradicted by a prefix: no prefix of a matching
 *   input says NO (what detection relies on when bytes arrive in pieces);
 * - an UP or DOWN probe verdict on a prefix is final: the full reply gives
 *   the same verdict, except that extra bytes after a one-byte PostgreSQL
 *   answer mean another protocol;
 * - a DOWN reason is NUL-terminated inside its buffer and printable. */
#include "plugins.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const cn_plugin_t *const all[] = {&cn_plugin_postgresql, &cn_plugin_mysql, &cn_plugin_redis,
                                         &cn_plugin_mongodb,    &cn_plugin_http,  &cn_plugin_tcp};

static int detect(const cn_plugin_t *p, const uint8_t *data, size_t len, int from)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    if (len)
        memcpy(copy, data, len);
    int v = p->detect(copy, len, from);
    free(copy);
    if (v != CN_PLUGIN_NO && v != CN_PLUGIN_MATCH && v != CN_PLUGIN_MORE)
        abort();
    return v;
}

static int reply(const cn_plugin_t *p, const uint8_t *data, size_t len)
{
    char why[40]; /* small: reasons must be cut, not overflow */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    if (len)
        memcpy(copy, data, len);
    memset(why, 0x7f, sizeof(why));
    int v = p->probe_reply(copy, len, why, sizeof(why));
    free(copy);
    if (v != CN_PLUGIN_UP && v != CN_PLUGIN_DOWN && v != CN_PLUGIN_PARTIAL)
        abort();
    if (v == CN_PLUGIN_DOWN) {
        size_t n = strnlen(why, sizeof(why));
        if (n == sizeof(why))
            abort();
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)why[i] < 0x20 || (unsigned char)why[i] >= 0x7f)
                abort();
    }
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > CN_PLUGIN_REPLY_MAX)
        return 0;
    for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
        const cn_plugin_t *p = all[k];
        for (int from = CN_PLUGIN_FROM_CLIENT; from <= CN_PLUGIN_FROM_SERVER; from++) {
            if (!p->detect)
                continue;
            if (detect(p, data, size, from) != CN_PLUGIN_MATCH)
                continue;
            /* Prefixes: all of them for short inputs, a sample otherwise. */
            size_t step = size <= 256 ? 1 : size / 64;
            for (size_t n = 0; n < size; n += step)
                if (detect(p, data, n, from) == CN_PLUGIN_NO)
                    abort();
        }
        int full = reply(p, data, size);
        size_t step = size <= 256 ? 1 : size / 64;
        for (size_t n = 0; n < size; n += step) {
            int v = reply(p, data, n);
            if (v == CN_PLUGIN_PARTIAL)
                continue;
            if (p == &cn_plugin_postgresql && v == CN_PLUGIN_UP && n == 1)
                continue;
            if (v != full)
                abort();
        }
    }
    return 0;
}
