/* Wall-clock time for the hub's records: integer milliseconds since the Unix
 * epoch (UTC) everywhere inside, ISO-8601 with milliseconds at the edges
 * ("2026-11-23T14:00:00.000Z"). Components that need "now" take a clock
 * callback so tests can move time by hand. */
#ifndef HUB_TIME_H
#define HUB_TIME_H

#include "cn_defs.h"

#include <stdint.h>

/* "Never" / "not set" in timestamp fields. Real clocks never return it. */
#define HUB_TIME_NONE ((int64_t)0)

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" plus NUL. */
#define HUB_TIME_ISO_SIZE 25

/* Returns the current time in ms; `ctx` is the pointer given with it. */
typedef int64_t (*hub_clock_fn)(void *ctx);

/* CLOCK_REALTIME in ms; usable as a hub_clock_fn (ctx ignored). */
int64_t hub_time_now_ms(void *ctx);

/* Formats `ms` (1970-01-01 .. 9999-12-31) as ISO-8601 UTC with milliseconds.
 * 0 or CN_EINVAL when out of range (out is then ""). */
int hub_time_format(int64_t ms, char out[static HUB_TIME_ISO_SIZE]);

/* Parses RFC 3339 / ISO-8601 "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"
 * (fraction truncated to ms). 0 or CN_EINVAL; *ms untouched on error. */
CN_WARN_UNUSED int hub_time_parse(const char *s, int64_t *ms);

#endif
