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
#include <unistd.h>

/* The shared directory (noise vectors): $CN_SHARED_DIR, else ../shared. */
static inline const char *cn_test_shared_dir(void)
{
    const char *dir = getenv("CN_SHARED_DIR");
    return dir ? dir : "../shared";
}

/* True when running under CI ($CI set, non-empty, not "0" or "false"), where
 * a test must not skip for want of an input file. */
static inline int cn_test_in_ci(void)
{
    const char *ci = getenv("CI");
    return ci && ci[0] && strcmp(ci, "0") != 0 && strcmp(ci, "false") != 0;
}

/* Path of a file in the shared directory, or NULL when it is absent. The
 * caller frees the result. */
static inline char *cn_test_shared_path(const char *name)
{
    const char *dir = cn_test_shared_dir();
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

/* Sends stdout and stderr to temporary files until cn_test_capture_end(),
 * which restores them and hands back what each received (NUL-terminated,
 * cut to the buffer; a NULL buffer discards). For commands that print. */
typedef struct cn_test_capture {
    int saved_out, saved_err;
    FILE *out, *err;
} cn_test_capture_t;

static inline void cn_test_capture_begin(cn_test_capture_t *c)
{
    fflush(stdout);
    fflush(stderr);
    c->saved_out = dup(1);
    c->saved_err = dup(2);
    c->out = tmpfile();
    c->err = tmpfile();
    if (c->saved_out < 0 || c->saved_err < 0 || !c->out || !c->err)
        fail_msg("cannot capture stdout/stderr");
    dup2(fileno(c->out), 1);
    dup2(fileno(c->err), 2);
}

static inline void cn_test_capture_read(FILE *f, char *buf, size_t len)
{
    if (buf && len) {
        rewind(f);
        buf[fread(buf, 1, len - 1, f)] = '\0';
    }
    fclose(f);
}

static inline void cn_test_capture_end(cn_test_capture_t *c, char *out, size_t outlen, char *err,
                                       size_t errlen)
{
    fflush(stdout);
    fflush(stderr);
    dup2(c->saved_out, 1);
    dup2(c->saved_err, 2);
    close(c->saved_out);
    close(c->saved_err);
    cn_test_capture_read(c->out, out, outlen);
    cn_test_capture_read(c->err, err, errlen);
}

#endif
