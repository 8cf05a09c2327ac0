/* protocol auto: choosing a plugin for a target by its greeting, by probe,
 * then by port (see plugins_choose() in plugins.h). */
#include "plugins.h"
#include "probe.h"

#include "cn_err.h"

#include <stdio.h>
#include <string.h>

#define CHOOSE_WAIT_MS 100

typedef struct greeting {
    const plugins_t *ps;
    const cn_plugin_t *matched;
} greeting_t;

static int greeting_judge(void *ctx, const uint8_t *reply, size_t len, char *why, size_t cap)
{
    greeting_t *g = ctx;
    bool more = false;
    g->matched = plugins_detect(g->ps, reply, len, CN_PLUGIN_FROM_SERVER, &more);
    if (g->matched)
        return CN_PLUGIN_UP;
    if (more)
        return CN_PLUGIN_PARTIAL;
    snprintf(why, cap, "a greeting no plugin knows");
    return CN_PLUGIN_DOWN;
}

typedef struct outcome {
    probe_result_t res; /* reply pointers cleared: they die with the callback */
    bool finished;
} outcome_t;

static void keep_result(void *user, const char *key, const probe_result_t *res)
{
    outcome_t *o = user;
    o->res = *res;
    o->res.reply = NULL;
    o->finished = true;
}

static void run(probe_runner_t *r)
{
    while (probe_runner_active(r))
        probe_runner_step(r, CHOOSE_WAIT_MS);
}

static void by_port(const plugins_t *ps, uint16_t port, plugins_choice_t *out, const char *why)
{
    const cn_plugin_t *p = plugins_by_port(ps, port);
    out->plugin = p ? p : plugins_find(ps, "tcp");
    out->how = p ? "port" : "fallback";
    snprintf(out->why, sizeof(out->why), "%s; %s", why,
             p ? "chosen by the target's port" : "no plugin owns the port");
}

int plugins_choose(const plugins_t *ps, const char *host, uint16_t port, unsigned greeting_ms,
                   unsigned probe_ms, plugins_choice_t *out)
{
    outcome_t greet = {0}, outcomes[64];
    greeting_t g = {.ps = ps};
    size_t n = plugins_count(ps);
    probe_runner_t *r = probe_runner_new();
    memset(out, 0, sizeof(*out));
    if (!r)
        return CN_ENOMEM;

    /* 1. Does the server speak first? */
    int rc = probe_runner_start_raw(r, "greeting", host, port, greeting_ms, NULL, 0, greeting_judge,
                                    &g, keep_result, &greet);
    if (rc == CN_ENOMEM) {
        probe_runner_free(r);
        return rc;
    }
    if (rc) {
        by_port(ps, port, out, "not a target that can be probed");
        goto done;
    }
    run(r);
    if (greet.res.up) {
        out->plugin = g.matched;
        out->how = "greeting";
        snprintf(out->why, sizeof(out->why), "the server greeted as %s", g.matched->name);
        goto done;
    }
    if (!greet.res.connected) {
        char why[CN_PLUGIN_WHY_MAX + 32];
        snprintf(why, sizeof(why), "target down (%s)", greet.res.why);
        by_port(ps, port, out, why);
        goto done;
    }
    if (greet.res.reply_len) {
        by_port(ps, port, out, "the server speaks first, in a protocol no plugin knows");
        goto done;
    }

    /* 2. A silent server: every client-first probe at once. */
    if (n > sizeof(outcomes) / sizeof(outcomes[0]))
        n = sizeof(outcomes) / sizeof(outcomes[0]);
    memset(outcomes, 0, sizeof(outcomes));
    for (size_t i = 0; i < n; i++) {
        const cn_plugin_t *p = plugins_at(ps, i);
        uint8_t req[CN_PLUGIN_REQUEST_MAX];
        size_t req_len = 0;
        cn_plugin_target_t t = {.host = host, .port = port};
        if (p->flags & CN_PLUGIN_SERVER_FIRST ||
            p->probe_request(&t, req, sizeof(req), &req_len) != 0 || req_len == 0)
            continue; /* tcp and server-first plugins prove nothing here */
        if (probe_runner_start(r, p->name, p, host, port, probe_ms, keep_result, &outcomes[i]))
            continue;
    }
    run(r);
    const cn_plugin_t *owner = plugins_by_port(ps, port), *up = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!outcomes[i].finished || !outcomes[i].res.up)
            continue;
        if (plugins_at(ps, i) == owner) {
            up = owner;
            break;
        }
        if (!up)
            up = plugins_at(ps, i);
    }
    if (up) {
        out->plugin = up;
        out->how = "probe";
        snprintf(out->why, sizeof(out->why), "the %s probe is up", up->name);
        goto done;
    }
    /* 3, 4. */
    by_port(ps, port, out, "no probe answered");
done:
    probe_runner_free(r);
    return 0;
}
