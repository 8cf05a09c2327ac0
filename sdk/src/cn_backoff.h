/* Retry delays: exponential backoff with equal jitter, shared by everything
 * in Connect that retries (the agent's reconnects, the hub's webhook
 * deliveries).
 *
 * The ceiling doubles from `base_ms` with each failed attempt up to
 * `cap_ms`; the delay is drawn uniformly from [ceiling/2, ceiling], so
 * clients that failed together do not come back together, and no delay is
 * shorter than half the ceiling. Pure: the caller supplies the random
 * number. */
#ifndef CN_BACKOFF_H
#define CN_BACKOFF_H

#include <stdint.h>

/* The ceiling for attempt n (0-based): min(cap, base * 2^n), never 0. A cap
 * below the base is raised to the base. */
uint32_t cn_backoff_ceiling(unsigned attempt, uint32_t base_ms, uint32_t cap_ms);

/* The delay before attempt n, in [ceiling/2, ceiling], using `rnd` for the
 * jitter. */
uint32_t cn_backoff_delay(unsigned attempt, uint32_t base_ms, uint32_t cap_ms, uint32_t rnd);

#endif
