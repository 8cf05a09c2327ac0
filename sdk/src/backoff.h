/* Reconnect delays: exponential backoff with jitter, and a cap on how often
 * the agent may reconnect.
 *
 * The ceiling doubles from `base_ms` with each failed attempt up to
 * `cap_ms`; the delay is drawn uniformly from [ceiling/2, ceiling] ("equal
 * jitter"), so agents that lost the hub together do not return together,
 * and no delay is ever shorter than half the ceiling.
 *
 * A link that the hub admitted resets the attempt count (agent_backoff_reset):
 * a link that authenticates and then dies (a noisy path, a hub restart) is
 * retried at once instead of after a long delay. What keeps such a flapping
 * link from hammering the hub is the rate cap: a generic cell rate limiter
 * allows `per_min` attempts a minute on average after a burst of `burst`.
 *
 * Pure: the caller supplies the clock and the random number. */
#ifndef AGENT_BACKOFF_H
#define AGENT_BACKOFF_H

#include <stdint.h>

#define AGENT_BACKOFF_BASE_MS 500u
#define AGENT_BACKOFF_CAP_MS 30000u
/* Connection attempts a minute, on average, after a burst of ... */
#define AGENT_BACKOFF_PER_MIN 20u
#define AGENT_BACKOFF_BURST 6u

/* The ceiling for attempt n (0-based): min(cap, base * 2^n), never 0. */
uint32_t agent_backoff_ceiling(unsigned attempt, uint32_t base_ms, uint32_t cap_ms);

/* The delay before attempt n, using `rnd` for the jitter. */
uint32_t agent_backoff_delay(unsigned attempt, uint32_t base_ms, uint32_t cap_ms, uint32_t rnd);

/* The state of one reconnecting link. Plain data: set it up with
 * agent_backoff_init(); no resources to free. */
typedef struct agent_backoff {
    uint32_t base_ms, cap_ms;
    uint32_t interval_ms; /* 60 s / per_min: the long-run spacing of attempts */
    uint32_t burst;
    unsigned attempt; /* failures since the last reset */
    uint64_t tat_ms;  /* when the limiter's bucket is empty again (0: never used) */
} agent_backoff_t;

/* 0 for any setting takes its default (AGENT_BACKOFF_*). */
void agent_backoff_init(agent_backoff_t *b, uint32_t base_ms, uint32_t cap_ms, uint32_t per_min,
                        uint32_t burst);
/* A connection attempt starts at now_ms: it counts against the rate cap. */
void agent_backoff_started(agent_backoff_t *b, uint64_t now_ms);
/* The hub admitted the link: the next failure retries after the base delay. */
void agent_backoff_reset(agent_backoff_t *b);
/* The link failed at now_ms: the delay before the next attempt (backoff for
 * this attempt, stretched when the rate cap says so). Counts the failure. */
uint32_t agent_backoff_next(agent_backoff_t *b, uint64_t now_ms, uint32_t rnd);

#endif
