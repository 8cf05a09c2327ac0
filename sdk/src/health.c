/* Health probes of served targets (see health.h), on the non-blocking probe
 * runner (probe.h), with the plugins of the caller's registry. */
#include "health.h"

#include "cn_time.h"
#include "probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { H_UNKNOWN, H_UP, H_DOWN };

typedef struct entry {
    char id[AGENT_TUNNEL_ID_LEN + 1];
    uint64_t due; /* next probe, monotonic ms */
    int reported; /* what the hub was last told: H_* */
    int result;   /* the last finished probe: H_* */
    char why[CN_PLUGIN_WHY_MAX];
    bool fresh; /* result not yet looked at */
    bool seen;  /* still listed (mark and sweep per tick) */
} entry_t;

struct agent_health {
    const struct plugins *plugins;
    probe_runner_t *runner;
    unsigned interval_ms, timeout_ms;
    entry_t *e;
    size_t n, cap;
};

agent_health_t *agent_health_new(const struct plugins *plugins, unsigned interval_ms)
{
    agent_health_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->runner = probe_runner_new();
    if (!h->runner) {
        free(h);
        return NULL;
    }
    h->plugins = plugins;
    h->interval_ms = interval_ms ? interval_ms : AGENT_HEALTH_INTERVAL_DEFAULT_MS;
    h->timeout_ms = h->interval_ms < 1000 ? 1000 : h->interval_ms;
    if (h->timeout_ms > AGENT_HEALTH_TIMEOUT_MAX_MS)
        h->timeout_ms = AGENT_HEALTH_TIMEOUT_MAX_MS;
    return h;
}

void agent_health_free(agent_health_t *h)
{
    if (!h)
        return;
    probe_runner_free(h->runner);
    free(h->e);
    free(h);
}

bool agent_health_busy(const agent_health_t *h)
{
    return probe_runner_active(h->runner) > 0;
}

void agent_health_reset(agent_health_t *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->e[i].reported = H_UNKNOWN;
}

unsigned agent_health_interval_from_env(void)
{
    const char *s = getenv("CONNECT_HEALTH_INTERVAL_MS");
    long v = s ? strtol(s, NULL, 10) : 0;
    if (v <= 0)
        return 0;
    return v < 200 ? 200 : (unsigned)(v > 86400000 ? 86400000 : v);
}

static entry_t *entry_for(agent_health_t *h, const char *id)
{
    for (size_t i = 0; i < h->n; i++)
        if (!strcmp(h->e[i].id, id))
            return &h->e[i];
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        entry_t *e = realloc(h->e, cap * sizeof(*e));
        if (!e)
            return NULL;
        h->e = e;
        h->cap = cap;
    }
    entry_t *e = &h->e[h->n++];
    memset(e, 0, sizeof(*e));
    memcpy(e->id, id, sizeof(e->id));
    return e;
}

static void on_result(void *user, const char *key, const probe_result_t *res)
{
    agent_health_t *h = user;
    for (size_t i = 0; i < h->n; i++) {
        entry_t *e = &h->e[i];
        if (strcmp(e->id, key) != 0)
            continue;
        e->result = res->up ? H_UP : H_DOWN;
        snprintf(e->why, sizeof(e->why), "%s", res->up ? "" : res->why);
        e->fresh = true;
        return;
    }
}

/* The plugin that probes a tunnel of `protocol`: its own, http for http,
 * tcp otherwise (https and unknown names: the connection is the test);
 * none for udp. */
static const cn_plugin_t *plugin_for(const agent_health_t *h, const char *protocol)
{
    if (!strcmp(protocol, "udp"))
        return NULL;
    const cn_plugin_t *p =
        strcmp(protocol, "https") ? probe_registry_find(h->plugins, protocol) : NULL;
    return p ? p : probe_registry_find(h->plugins, "tcp");
}

void agent_health_tick(agent_health_t *h, const agent_tunnel_t *tunnels, size_t n,
                       agent_health_wanted_fn wanted, agent_health_report_fn report, void *ctx)
{
    uint64_t now = cn_time_mono_ms();
    probe_runner_step(h->runner, 0);
    for (size_t i = 0; i < h->n; i++)
        h->e[i].seen = false;
    for (size_t i = 0; i < n; i++) {
        const agent_tunnel_t *t = &tunnels[i];
        const cn_plugin_t *p = plugin_for(h, t->protocol);
        if (!p || !wanted(ctx, t))
            continue;
        entry_t *e = entry_for(h, t->id);
        if (!e)
            continue;
        e->seen = true;
        bool in_error = !strcmp(t->status, "error");
        if (e->fresh) {
            e->fresh = false;
            if (e->result == H_DOWN && (e->reported != H_DOWN || !in_error)) {
                report(ctx, t, false, e->why);
                e->reported = H_DOWN;
            } else if (e->result == H_UP && (e->reported == H_DOWN || in_error)) {
                report(ctx, t, true, NULL);
                e->reported = H_UP;
            }
        }
        if (now >= e->due && !probe_runner_busy(h->runner, t->id)) {
            e->due = now + h->interval_ms;
            probe_runner_start(h->runner, t->id, p, t->host, t->port, h->timeout_ms, on_result, h);
        }
    }
    /* Tunnels that left the list, or are no longer wanted. */
    for (size_t i = 0; i < h->n;) {
        if (h->e[i].seen) {
            i++;
            continue;
        }
        probe_runner_cancel(h->runner, h->e[i].id);
        h->e[i] = h->e[--h->n];
    }
}
