/* Health probes that never block: each probe is a non-blocking TCP connect
 * to a target, the plugin's request bytes, and its verdict on the reply,
 * bounded by a per-probe timeout and by CN_PLUGIN_REPLY_MAX bytes. The
 * runner owns the sockets; the caller drives it with probe_runner_step(),
 * either from an event loop's timer with wait_ms 0 (the agent) or in a loop
 * with a wait (command-line tools, tests). At most one probe per key is in
 * flight: the key names the target (e.g. a tunnel id).
 *
 * Conventions
 * - Functions return 0 (or a count) or a negative CN_E* code. A start that
 *   fails never calls its callback; every probe that started calls it
 *   exactly once, from probe_runner_step(), unless it is cancelled or the
 *   runner freed first.
 * - IP literals are used at once; names are resolved by cn_resolve's
 *   threads and the answer is collected by probe_runner_step(), so a slow
 *   DNS server never blocks the caller (the agent's event loop).
 * - One thread uses a runner at a time. Inside a callback the caller may
 *   start or cancel probes but not free the runner.
 * - Strings passed in are copied; the plugin vtable is borrowed and must
 *   outlive the probe. */
#ifndef PROBE_H
#define PROBE_H

#include <connect/plugin.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct probe_runner probe_runner_t;

/* The plugin registry (plugins/plugins.h) as the SDK sees it. The registry
 * lives in plugins/, which the SDK may not know (layers point one way), yet
 * the agent daemon here probes targets with the registry's plugins. So
 * struct plugins begins with this member (plugins.c checks it at compile
 * time), and a pointer to a registry is, converted, a pointer to its lookup
 * (C11 6.7.2.1p15): callers keep passing a plugins_t. */
struct plugins;
typedef struct probe_registry {
    /* A plugin by name, NULL when none has it; plugins_find(). */
    const cn_plugin_t *(*find)(const struct plugins *ps, const char *name);
} probe_registry_t;

/* The lookup of registry `ps` (borrowed). */
static inline const cn_plugin_t *probe_registry_find(const struct plugins *ps, const char *name)
{
    const probe_registry_t *r = (const probe_registry_t *)(const void *)ps;
    return r->find(ps, name);
}

#define PROBE_KEY_MAX 63

typedef struct probe_result {
    bool up;
    /* 0 when up; otherwise CN_EREFUSED (connection refused or reset),
     * CN_ETIMEOUT, CN_ECLOSED (closed before a verdict), CN_EPROTO (the
     * plugin said down), CN_ETOOBIG (reply too long), CN_EINVAL (the host
     * does not resolve), CN_EIO. */
    int err;
    bool connected;              /* the TCP connection opened */
    char why[CN_PLUGIN_WHY_MAX]; /* one line when down, "" when up */
    unsigned elapsed_ms;
    /* Every byte received, valid during the callback only. */
    const uint8_t *reply;
    size_t reply_len;
} probe_result_t;

typedef void (*probe_done_fn)(void *user, const char *key, const probe_result_t *res);

/* A verdict on the reply so far, for probes that are not a plugin's own
 * (e.g. watching for a greeting): returns CN_PLUGIN_UP, CN_PLUGIN_DOWN
 * (with why) or CN_PLUGIN_PARTIAL, like cn_plugin_t.probe_reply. */
typedef int (*probe_judge_fn)(void *ctx, const uint8_t *reply, size_t len, char *why,
                              size_t why_cap);

probe_runner_t *probe_runner_new(void);
/* Closes every socket; probes in flight end without a callback. NULL ok. */
void probe_runner_free(probe_runner_t *r);

/* Starts plugin `p`'s probe of host:port under `key`, ending within
 * timeout_ms. A plugin whose request is empty and that is not
 * CN_PLUGIN_SERVER_FIRST is up once the connection opens. Returns 0,
 * CN_EAGAIN (a probe for `key` is in flight), CN_EINVAL or CN_ENOMEM. */
int probe_runner_start(probe_runner_t *r, const char *key, const cn_plugin_t *p, const char *host,
                       uint16_t port, unsigned timeout_ms, probe_done_fn done, void *user);

/* The same with explicit request bytes (copied, at most
 * CN_PLUGIN_REQUEST_MAX) and a judge; with no request and `judge` NULL the
 * probe is up once the connection opens. */
int probe_runner_start_raw(probe_runner_t *r, const char *key, const char *host, uint16_t port,
                           unsigned timeout_ms, const uint8_t *request, size_t request_len,
                           probe_judge_fn judge, void *judge_ctx, probe_done_fn done, void *user);

/* Is a probe for `key` in flight? */
bool probe_runner_busy(const probe_runner_t *r, const char *key);
/* Ends the probe for `key` without a callback; unknown keys are fine. */
void probe_runner_cancel(probe_runner_t *r, const char *key);
/* Probes in flight. */
size_t probe_runner_active(const probe_runner_t *r);
/* Milliseconds until the nearest deadline (0 when one passed), -1 when idle. */
int probe_runner_next_ms(const probe_runner_t *r);

/* Waits up to wait_ms (0: never blocks) for socket activity, advances every
 * probe, ends those that finished or timed out and calls their callbacks.
 * Returns how many are still in flight. */
size_t probe_runner_step(probe_runner_t *r, int wait_ms);

#endif
