/* Health probes of the targets an agent serves: every interval each open
 * tunnel's target gets its plugin's probe (tcp when the protocol names no
 * plugin), at most one in flight per tunnel, each bounded by a timeout. A
 * change is reported to the caller (who tells the hub: CONTROL
 * "tunnel_health", docs/agent-protocol.md). Driven from the event loop's
 * timer: agent_health_tick() never blocks.
 *
 * Conventions: one thread; the tunnel list is borrowed for the call;
 * strings given to the report callback live for the call only. */
#ifndef AGENT_HEALTH_H
#define AGENT_HEALTH_H

#include "allowlist.h"

#include <stdbool.h>
#include <stdint.h>

struct plugins;
typedef struct agent_health agent_health_t;

#define AGENT_HEALTH_INTERVAL_DEFAULT_MS 10000
#define AGENT_HEALTH_TIMEOUT_MAX_MS 3000

/* Whether a tunnel is to be probed (served by this link, open, allowed). */
typedef bool (*agent_health_wanted_fn)(void *ctx, const agent_tunnel_t *t);
/* A result the hub should hear: ok, or not with `why`. */
typedef void (*agent_health_report_fn)(void *ctx, const agent_tunnel_t *t, bool ok,
                                       const char *why);

/* interval_ms 0: AGENT_HEALTH_INTERVAL_DEFAULT_MS; each probe's timeout is
 * the interval, kept between 1 s and AGENT_HEALTH_TIMEOUT_MAX_MS (a probe
 * still in flight when the next is due delays it). `plugins` is
 * borrowed and outlives the prober. NULL when out of memory. */
agent_health_t *agent_health_new(const struct plugins *plugins, unsigned interval_ms);
/* Cancels probes in flight (no report). NULL is fine. */
void agent_health_free(agent_health_t *h);

/* Starts the probes that are due, advances those in flight and reports what
 * the hub should hear: a target that went down (until the hub lists the
 * tunnel in error), or one that is up while the hub lists it in error. */
void agent_health_tick(agent_health_t *h, const agent_tunnel_t *tunnels, size_t n,
                       agent_health_wanted_fn wanted, agent_health_report_fn report, void *ctx);

/* Whether probes are in flight (the caller ticks more often then). */
bool agent_health_busy(const agent_health_t *h);

/* Forgets what was reported (a new link): results are reported afresh. */
void agent_health_reset(agent_health_t *h);

/* The interval from CONNECT_HEALTH_INTERVAL_MS (200 ms at least), else 0. */
unsigned agent_health_interval_from_env(void);

#endif
