/* Shared helpers for the cmocka unit tests. */
#ifndef CN_TEST_H
#define CN_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Path of a file in ../shared, or NULL when the directory is absent. The
 * caller frees the result. */
static inline char *cn_test_shared_path(const char *name)
{
    const char *dir = getenv("CN_SHARED_DIR");
    if (!dir)
        dir = "../shared";
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p)
        return NULL;
    snprintf(p, n, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) {
        free(p);
        return NULL;
    }
    fclose(f);
    return p;
}

/* Deterministic pseudo-random bytes (xorshift64*) for reproducible payloads. */
static inline void cn_test_fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed ? seed : 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        p[i] = (uint8_t)((x * 0x2545f4914f6cdd1dull) >> 56);
    }
}

#endif
