/* The two clocks every part of Connect reads, in milliseconds: a monotonic
 * one for deadlines, timeouts and durations (never jumps with the wall
 * clock), and the wall clock for timestamps that leave the process. Pure
 * state machines (cn_chan, cn_mux) take "now" as an argument instead; only
 * the glue calls these. */
#ifndef CN_TIME_H
#define CN_TIME_H

#include <stdint.h>

/* CLOCK_MONOTONIC in ms since an arbitrary start (boot). */
uint64_t cn_time_mono_ms(void);

/* CLOCK_REALTIME in ms since the Unix epoch (UTC). */
int64_t cn_time_wall_ms(void);

#endif
