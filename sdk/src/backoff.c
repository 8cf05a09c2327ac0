/* Exponential backoff with equal jitter (cn_backoff), and a rate cap (GCRA). */
#include "backoff.h"

#include "cn_backoff.h"

uint32_t agent_backoff_ceiling(unsigned attempt, uint32_t base_ms, uint32_t cap_ms)
{
    return cn_backoff_ceiling(attempt, base_ms, cap_ms);
}

uint32_t agent_backoff_delay(unsigned attempt, uint32_t base_ms, uint32_t cap_ms, uint32_t rnd)
{
    return cn_backoff_delay(attempt, base_ms, cap_ms, rnd);
}

void agent_backoff_init(agent_backoff_t *b, uint32_t base_ms, uint32_t cap_ms, uint32_t per_min,
                        uint32_t burst)
{
    b->base_ms = base_ms ? base_ms : AGENT_BACKOFF_BASE_MS;
    b->cap_ms = cap_ms ? cap_ms : AGENT_BACKOFF_CAP_MS;
    per_min = per_min ? per_min : AGENT_BACKOFF_PER_MIN;
    b->interval_ms = 60000u / per_min ? 60000u / per_min : 1;
    b->burst = burst ? burst : AGENT_BACKOFF_BURST;
    b->attempt = 0;
    b->tat_ms = 0;
}

/* GCRA: every attempt moves the "theoretical arrival time" one interval on;
 * an attempt may start once now >= tat - (burst - 1) * interval, so `burst`
 * attempts may start at once and then one per interval. */
void agent_backoff_started(agent_backoff_t *b, uint64_t now_ms)
{
    uint64_t tat = b->tat_ms > now_ms ? b->tat_ms : now_ms;
    b->tat_ms = tat + b->interval_ms;
}

void agent_backoff_reset(agent_backoff_t *b)
{
    b->attempt = 0;
}

uint32_t agent_backoff_next(agent_backoff_t *b, uint64_t now_ms, uint32_t rnd)
{
    uint64_t delay = agent_backoff_delay(b->attempt, b->base_ms, b->cap_ms, rnd);
    if (b->attempt < 64)
        b->attempt++;
    uint64_t allowance = (uint64_t)(b->burst - 1) * b->interval_ms;
    if (b->tat_ms > allowance) {
        uint64_t earliest = b->tat_ms - allowance;
        if (now_ms + delay < earliest)
            delay = earliest - now_ms;
    }
    return delay > UINT32_MAX ? UINT32_MAX : (uint32_t)delay;
}
