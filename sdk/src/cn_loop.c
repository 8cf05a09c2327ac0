/* cn_loop: the event loop an lws context runs on (cn_loop.h). */
#include "cn_loop.h"

#include <ev.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cn_err.h"

/* Turns allowed for libuv to close lws's handles at the end. */
#define UV_CLOSE_TURNS 64

/* lws 4.1.6's libev glue (lib/event-libs/libev/libev.c) runs lws's timers
 * (lws_sul: every LWS_TO_KILL_ASYNC close, every zero-delay timer, the
 * edge's deadlines) from an ev_idle watcher, which libev runs only on a
 * turn that brought no I/O, and from one ev_timer, armed when they run,
 * for the earliest timer then pending. A timer scheduled after that waits
 * for it (the hub's 1 s tick, say) for as long as every turn brings I/O:
 * with the hub's loop kept busy by new connections, the sockets it had
 * finished with waited to be closed, up to 3,000 of them, and at its
 * connection limit the edge refused new ones with RST (wrk's socket errors,
 * docs/performance.md). The pace timer is an lws timer that reschedules
 * itself from inside lws's timer run, so the ev_timer armed there is never
 * further away than PACE_BUSY_US while turns bring I/O; on a loop with
 * nothing else to do its interval doubles up to PACE_IDLE_US, which then
 * bounds how late the timers of a sudden burst run. */
#define PACE_BUSY_US 1000
#define PACE_IDLE_US (50 * 1000)

struct cn_loop {
    cn_loop_kind_t kind;
    struct ev_loop *ev; /* epoll */
    uv_loop_t uv;       /* uv */
    bool uv_ready;
    void *foreign[1]; /* what info->foreign_loops points at */
    /* epoll: the pace timer (see PACE_BUSY_US), on the context it runs. */
    lws_sorted_usec_list_t pace;
    struct lws_context *paced;
    /* Turns taken (cn_loop_run_once calls), and their count when the pace
     * timer last ran. Not ev_iteration(): busy polling runs libev many
     * times a turn, which read as a busy loop kept the pace at its fastest
     * on an idle one, and each of its wake-ups began another spin. */
    unsigned turns, pace_turns;
    lws_usec_t pace_us; /* its interval */
    /* epoll: busy polling (cn_loop_set_busy_poll). handled counts the
     * watcher callbacks run, through libev's invoke hook; spin_next says
     * the last turn ran some, so the next one polls before it sleeps. */
    unsigned busy_us;
    uint64_t handled;
    bool spin_next;
    bool pace_ran; /* pace_cb ran in the callbacks count_invoke is running */
    /* lws writes NULL here once a context on a foreign loop is destroyed
     * completely (info.pcontext): with libuv that ends on later turns. */
    struct lws_context *ctx;
};

static const char *const names[] = {"epoll", "poll", "uv"};

bool cn_loop_kind_parse(const char *s, cn_loop_kind_t *out)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (s && !strcmp(s, names[i])) {
            *out = (cn_loop_kind_t)i;
            return true;
        }
    return false;
}

const char *cn_loop_kind_name(cn_loop_kind_t kind)
{
    return (unsigned)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "?";
}

cn_loop_t *cn_loop_new(cn_loop_kind_t kind, struct lws_context_creation_info *info, char *err,
                       size_t errlen)
{
    cn_loop_t *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->kind = kind;
    switch (kind) {
    case CN_LOOP_POLL:
        return l;
    case CN_LOOP_EPOLL:
        l->ev = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
        if (!l->ev) {
            snprintf(err, errlen, "could not create an epoll event loop");
            free(l);
            return NULL;
        }
        l->foreign[0] = l->ev;
        info->options |= LWS_SERVER_OPTION_LIBEV;
        break;
    case CN_LOOP_UV:
        if (uv_loop_init(&l->uv) != 0) {
            snprintf(err, errlen, "could not create a libuv event loop");
            free(l);
            return NULL;
        }
        l->uv_ready = true;
        l->foreign[0] = &l->uv;
        info->options |= LWS_SERVER_OPTION_LIBUV;
        break;
    default:
        snprintf(err, errlen, "unknown event loop");
        free(l);
        return NULL;
    }
    info->foreign_loops = l->foreign;
    l->ctx = (struct lws_context *)l; /* anything but NULL until lws says */
    info->pcontext = &l->ctx;
    return l;
}

const char *cn_loop_hint(const cn_loop_t *l)
{
    switch (l->kind) {
    case CN_LOOP_EPOLL:
        return " (the epoll loop needs lws's libev plugin, package libwebsockets-evlib-ev)";
    case CN_LOOP_UV:
        return " (the uv loop needs lws's libuv plugin, package libwebsockets-evlib-uv)";
    default:
        return "";
    }
}

cn_loop_kind_t cn_loop_kind(const cn_loop_t *l)
{
    return l->kind;
}

static void pace_cb(lws_sorted_usec_list_t *sul)
{
    cn_loop_t *l = lws_container_of(sul, cn_loop_t, pace);
    l->pace_ran = true;
    unsigned it = l->turns;
    /* Busy: more turns since its last run than its own wake-up and the
     * odd other timer of an idle hub or agent (each of those set it back
     * to PACE_BUSY_US: 59 wake-ups a second instead of 9 on an idle hub). */
    bool busy = it - l->pace_turns > 3;
    l->pace_turns = it;
    l->pace_us = busy                            ? PACE_BUSY_US
                 : l->pace_us * 2 > PACE_IDLE_US ? PACE_IDLE_US
                                                 : l->pace_us * 2;
    lws_sul_schedule(l->paced, 0, &l->pace, pace_cb, l->pace_us);
}

static void count_invoke(struct ev_loop *ev)
{
    cn_loop_t *l = ev_userdata(ev);
    unsigned n = ev_pending_count(ev);
    l->pace_ran = false;
    ev_invoke_pending(ev);
    /* lws's timer watcher running our pace timer, alone, is no sign of
     * traffic: counted, each of its wake-ups on an idle loop (every
     * PACE_IDLE_US) began a spin, a fifth of a core at the longest. */
    if (n > 1 || !l->pace_ran)
        l->handled += n;
}

void cn_loop_set_busy_poll(cn_loop_t *l, unsigned usec)
{
    if (l->kind != CN_LOOP_EPOLL)
        return;
    l->busy_us = usec;
    ev_set_userdata(l->ev, l);
    ev_set_invoke_pending_cb(l->ev, usec ? count_invoke : ev_invoke_pending);
}

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Turns that do not sleep, for up to busy_us, each giving the CPU to any
 * other task that wants it: true once one ran a watcher. */
static bool spin(cn_loop_t *l)
{
    uint64_t h0 = l->handled, end = now_us() + l->busy_us;
    do {
        ev_run(l->ev, EVRUN_NOWAIT);
        if (l->handled != h0)
            return true;
        sched_yield();
    } while (now_us() < end);
    return false;
}

int cn_loop_run_once(cn_loop_t *l, struct lws_context *ctx)
{
    switch (l->kind) {
    case CN_LOOP_EPOLL:
        if (!l->paced) { /* it joins lws's timers at their next run */
            l->paced = ctx;
            l->pace_us = PACE_BUSY_US;
            l->pace_turns = l->turns;
            lws_sul_schedule(ctx, 0, &l->pace, pace_cb, l->pace_us);
        }
        l->turns++;
        if (l->busy_us) {
            uint64_t h0 = l->handled;
            if (!l->spin_next || !spin(l))
                ev_run(l->ev, EVRUN_ONCE);
            l->spin_next = l->handled != h0;
            return 0;
        }
        ev_run(l->ev, EVRUN_ONCE);
        return 0;
    case CN_LOOP_UV:
        uv_run(&l->uv, UV_RUN_ONCE);
        return 0;
    default:
        return lws_service(ctx, 0) < 0 ? CN_EIO : 0;
    }
}

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void cn_loop_context_destroy(cn_loop_t *l, struct lws_context *ctx)
{
    if (!ctx)
        return;
    if (l && l->paced == ctx) {
        lws_sul_cancel(&l->pace);
        l->paced = NULL;
    }
    lws_context_destroy(ctx);
    if (!l || !l->uv_ready)
        return;
    /* On a foreign libuv loop lws 4.1.6 destroys in three steps (see its
     * context.c): the call above starts closing its handles; their close
     * callbacks, on later turns, run the second step; when that cannot
     * finish inside the loop it waits for lws_context_destroy() once more.
     * The end is signalled through info.pcontext (l->ctx goes NULL), and
     * ctx may be touched only until then. */
    for (int i = 0; i < UV_CLOSE_TURNS && l->ctx; i++)
        if (uv_run(&l->uv, UV_RUN_NOWAIT) == 0 && l->ctx)
            lws_context_destroy(ctx);
}

void cn_loop_free(cn_loop_t *l)
{
    if (!l)
        return;
    if (l->ev)
        ev_loop_destroy(l->ev);
    if (l->uv_ready) {
        uv_walk(&l->uv, close_handle, NULL);
        uv_run(&l->uv, UV_RUN_DEFAULT);
        uv_loop_close(&l->uv);
    }
    free(l);
}
