/* Reconnect delays: exponential backoff with jitter.
 *
 * The ceiling doubles from `base_ms` with each failed attempt up to
 * `cap_ms`; the delay is drawn uniformly from [ceiling/2, ceiling] ("equal
 * jitter"), so agents that lost the hub together do not return together,
 * and no delay is ever shorter than half the ceiling. Pure: the caller
 * supplies the random number. */
#ifndef AGENT_BACKOFF_H
#define AGENT_BACKOFF_H

#include <stdint.h>

#define AGENT_BACKOFF_BASE_MS 500u
#define AGENT_BACKOFF_CAP_MS 30000u
/* A connection that stayed up this long resets the attempt count. */
#define AGENT_BACKOFF_STABLE_MS 10000u

/* The ceiling for attempt n (0-based): min(cap, base * 2^n), never 0. */
uint32_t agent_backoff_ceiling(unsigned attempt, uint32_t base_ms, uint32_t cap_ms);

/* The delay before attempt n, using `rnd` for the jitter. */
uint32_t agent_backoff_delay(unsigned attempt, uint32_t base_ms, uint32_t cap_ms, uint32_t rnd);

#endif
