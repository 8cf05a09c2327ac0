/* Reading the recorded test vectors of tests/unit/plugins/vectors/. */
#ifndef TEST_VECTORS_H
#define TEST_VECTORS_H

#include "cn_test.h"

/* The vector `name` in an exact-size heap block (so that ASan sees any
 * read past it); the caller frees it. Fails the test when it is missing. */
static inline uint8_t *vector_load(const char *name, size_t *len)
{
    const char *src = getenv("CN_SOURCE_DIR");
    char path[1024];
    uint8_t buf[65536];
    snprintf(path, sizeof(path), "%s/tests/unit/plugins/vectors/%s", src ? src : ".", name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (set CN_SOURCE_DIR)", path);
    *len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    uint8_t *p = malloc(*len ? *len : 1);
    if (!p)
        fail_msg("out of memory");
    memcpy(p, buf, *len);
    return p;
}

#endif
