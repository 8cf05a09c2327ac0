/* What the in-process benchmarks share: a check for calls that must not fail.
 * A benchmark whose set-up or data path fails measures nothing, so it stops
 * with one line naming the call. */
#ifndef CN_BENCH_H
#define CN_BENCH_H

#include "cn_err.h"

#include <stdio.h>
#include <stdlib.h>

/* Returns rc when it is not negative; otherwise prints "bench: WHAT: error"
 * and exits with status 1. */
static inline int bench_check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "bench: %s: %s\n", what, cn_strerror(rc));
        exit(1);
    }
    return rc;
}

#endif
