/* Exponential backoff with equal jitter (see cn_backoff.h). */
#include "cn_backoff.h"

uint32_t cn_backoff_ceiling(unsigned attempt, uint32_t base_ms, uint32_t cap_ms)
{
    if (base_ms == 0)
        base_ms = 1;
    if (cap_ms < base_ms)
        cap_ms = base_ms;
    uint64_t c = base_ms;
    for (unsigned i = 0; i < attempt && c < cap_ms; i++)
        c *= 2;
    return c > cap_ms ? cap_ms : (uint32_t)c;
}

uint32_t cn_backoff_delay(unsigned attempt, uint32_t base_ms, uint32_t cap_ms, uint32_t rnd)
{
    uint32_t c = cn_backoff_ceiling(attempt, base_ms, cap_ms);
    uint32_t half = c / 2;
    uint32_t span = c - half; /* delay in [half, c] */
    return half + (uint32_t)(rnd % ((uint64_t)span + 1));
}
