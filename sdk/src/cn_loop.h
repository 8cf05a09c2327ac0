/* cn_loop: the event loop an lws context runs on, shared by the hub and the
 * agent daemon.
 *
 *   poll   lws's own loop: poll() over every descriptor on every turn, so
 *          each idle connection taxes the busy ones (docs/performance.md).
 *   epoll  (default) a libev loop with the epoll backend, ours, handed to
 *          lws as a foreign loop through its libwebsockets-evlib-ev plugin;
 *          a pace timer of ours keeps lws's timers running on it while
 *          every turn brings I/O (cn_loop.c, PACE_BUSY_US).
 *   uv     the same with libuv (libwebsockets-evlib-uv), measured beside
 *          the others (bench/event_loop.sh); lws 4.1.6's libuv teardown is
 *          the fragile one (../shared/lws-notes.md), hence not the default.
 *
 * Use: cn_loop_new() before lws_create_context() (it sets the options and
 * the foreign loop in the creation info), cn_loop_run_once() in place of
 * lws_service(), cn_loop_context_destroy() in place of lws_context_destroy()
 * and cn_loop_free() after it. A turn
 * returns after the events it waited for; lws_cancel_service() or a signal
 * ends the wait, as with lws_service(). */
#ifndef CN_LOOP_H
#define CN_LOOP_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum cn_loop_kind {
    CN_LOOP_EPOLL = 0,
    CN_LOOP_POLL,
    CN_LOOP_UV,
} cn_loop_kind_t;

#define CN_LOOP_CHOICES "epoll|poll|uv" /* in cn_loop_kind_t order */

typedef struct cn_loop cn_loop_t;

/* "epoll", "poll" or "uv": true with *out set. */
bool cn_loop_kind_parse(const char *s, cn_loop_kind_t *out);
const char *cn_loop_kind_name(cn_loop_kind_t kind);

/* Creates the loop and points info at it (options, foreign_loops; info
 * keeps a pointer into the loop, so create the context before freeing it).
 * NULL with one line in err. */
cn_loop_t *cn_loop_new(cn_loop_kind_t kind, struct lws_context_creation_info *info, char *err,
                       size_t errlen);

/* What to add to "could not create the context" when lws refuses the loop:
 * the plugin package it needs, or "". */
const char *cn_loop_hint(const cn_loop_t *l);

cn_loop_kind_t cn_loop_kind(const cn_loop_t *l);

/* Busy polling, on the epoll loop (others ignore it): after a turn that
 * ran callbacks, the next one checks for events without sleeping, for up
 * to usec microseconds, yielding the CPU between checks, before it waits.
 * Trades CPU for latency where a sleeping process wakes slowly (a VM's
 * idle vCPU). 0, the default, never spins. */
void cn_loop_set_busy_poll(cn_loop_t *l, unsigned usec);

/* The most a busy poll is allowed, in microseconds, where it is set from
 * outside (serve --busy-poll, CONNECT_BUSY_POLL). */
#define CN_LOOP_BUSY_POLL_MAX 10000

/* One turn of the loop that runs ctx. 0, or a negative CN_E* code when the
 * loop failed. */
int cn_loop_run_once(cn_loop_t *l, struct lws_context *ctx);

/* Destroys ctx, which runs on l, in place of lws_context_destroy(): on
 * libuv that takes turns of the loop (closes are asynchronous). */
void cn_loop_context_destroy(cn_loop_t *l, struct lws_context *ctx);

/* After cn_loop_context_destroy(): closes what is left on the loop and
 * frees it. NULL is a no-op. */
void cn_loop_free(cn_loop_t *l);

#endif
