/* `connect agent` (alias `connect up`): the daemon in the foreground. It
 * holds the link to the hub, reconnecting with backoff, serves the streams
 * of this agent's tunnels, and keeps the config's "reach" list bound on
 * local ports (reach.h) until SIGINT/SIGTERM. */
#include "cli.h"

#include "cn_api.h"
#include "cn_log.h"
#include "cn_time.h"
#include "daemon.h"
#include "plugins.h"
#include "reach.h"

/* A reach of the list the hub could not answer yet is tried again. */
#define REACH_RETRY_MS 10000

#include <jansson.h>
#include <string.h>
#include <time.h>

typedef struct agent_state {
    bool json, printed;
    const agent_config_t *cfg;
    agent_reach_entry_t reach[AGENT_REACH_MAX];
    agent_reach_info_t bound[AGENT_REACH_MAX];
    bool done[AGENT_REACH_MAX];
    size_t nreach;
} agent_state_t;

/* The reaches of the list not bound yet: each found, asked and bound, or
 * left for the next round with one line saying why. */
static void open_reaches(agent_state_t *s, cn_api_t *api, agent_daemon_t *d)
{
    char err[512];
    for (size_t i = 0; i < s->nreach; i++) {
        if (s->done[i])
            continue;
        if (agent_reach_open(api, d, s->cfg, s->reach[i].tunnel, s->reach[i].port, &s->bound[i],
                             err, sizeof(err)) < 0) {
            char safe[128];
            out_sanitize(s->reach[i].tunnel, safe, sizeof(safe), 100);
            cn_log_warn("reach %s: %s (trying again in %d s)", safe, err, REACH_RETRY_MS / 1000);
            continue;
        }
        s->done[i] = true;
        cn_log_info("reach %s: %s on %s:%d", s->bound[i].name, s->bound[i].connection_string,
                    AGENT_REACH_HOST, s->bound[i].port);
    }
}

static json_t *reaches_json(const agent_state_t *s)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < s->nreach; i++)
        if (s->done[i])
            json_array_append_new(arr,
                                  json_pack("{s:s,s:s,s:i,s:s}", "tunnelId", s->bound[i].tunnel_id,
                                            "name", s->bound[i].name, "localPort", s->bound[i].port,
                                            "connectionString", s->bound[i].connection_string));
    return arr;
}

static void on_hello(void *ctx, agent_daemon_t *d, const json_t *hello)
{
    agent_state_t *s = ctx;
    if (!s->json || s->printed)
        return;
    s->printed = true;
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I}", "agentId", s->cfg->agent_id, "workspaceId",
                          agent_daemon_workspace(d), "hub", s->cfg->hub, "status", "connected",
                          "tunnels", (json_int_t)agent_daemon_tunnels(d)->count);
    if (o && s->nreach)
        json_object_set_new(o, "reach", reaches_json(s));
    out_json(o);
    json_decref(o);
}

int cmd_agent(int argc, char **argv)
{
    agent_common_t c = {0};
    const char *plugin_dir = NULL;
    const cn_opt_t opts[] = {
        {"plugin-dir", CN_OPT_STRING, &plugin_dir, 0, 0, "DIR",
         "protocol plugins (*.so) for health probes (default: the install directory)"},
        AGENT_COMMON_OPTIONS(&c),
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    char err[512];
    const char *name = argv[0];
    int rc = cn_args_parse(opts, argc, argv, NULL, 0, 0, NULL, err, sizeof(err));
    if (rc == CN_ARGS_HELP) {
        cn_args_help(stdout, "connect", name, "[--config FILE] [--hub URL] [--json]",
                     "Runs the agent in the foreground: keeps the encrypted link to the hub\n"
                     "up (reconnecting with backoff) and serves the connections of this\n"
                     "agent's tunnels, dialing only their targets, and only targets this\n"
                     "machine allows: those a 'connect expose' here named and the \"allow\"\n"
                     "patterns of the config file (the hub cannot add any). It also keeps\n"
                     "the config's \"reach\" list bound on local ports, as 'connect reach'\n"
                     "would. Stops on Ctrl-C or SIGTERM. With --json, prints one JSON line\n"
                     "once connected.",
                     opts);
        return AGENT_EXIT_OK;
    }
    if (rc < 0)
        return cli_usage_error(name, "%s", err);
    cli_logging(c.log_level, CN_LOG_INFO);
    cli_signals();

    agent_config_t cfg;
    if (agent_config_resolve(&c, AGENT_NEED_AGENT | AGENT_NEED_HUB, &cfg, err, sizeof(err)) < 0)
        return cli_fail("%s", err);
    static agent_state_t st;
    memset(&st, 0, sizeof(st));
    st.json = c.json;
    st.cfg = &cfg;
    cn_api_t *api = NULL;
    if (agent_reach_list_load(cfg.path, st.reach, AGENT_REACH_MAX, &st.nreach, err, sizeof(err)) <
        0) {
        agent_config_wipe(&cfg);
        return cli_fail("%s", err);
    }
    if (st.nreach) {
        /* Reaching asks the REST API: the agent's token is needed. */
        if (agent_config_resolve(&c, AGENT_NEED_AGENT | AGENT_NEED_HUB | AGENT_NEED_TOKEN, &cfg,
                                 err, sizeof(err)) < 0)
            return cli_fail("the \"reach\" list: %s", err);
        api = cli_api(&cfg, true);
        if (!api) {
            agent_config_wipe(&cfg);
            return AGENT_EXIT_FAIL;
        }
    }
    /* Health probes of the targets use the protocol plugins. */
    plugins_t *plugins = cli_plugins(plugin_dir);
    agent_daemon_config_t dc;
    agent_daemon_config_from(&dc, &cfg);
    dc.plugins = plugins;
    dc.on_hello = on_hello;
    dc.ctx = &st;
    agent_daemon_t *d = agent_daemon_new(&dc, err, sizeof(err));
    if (!d) {
        cn_api_free(api);
        plugins_free(plugins);
        agent_config_wipe(&cfg);
        return cli_fail("%s", err);
    }
    cn_log_info("agent %.8s: starting (hub %s, config %s)", cfg.agent_id, cfg.hub, cfg.path);
    open_reaches(&st, api, d);
    uint64_t retry_at = cn_time_mono_ms() + REACH_RETRY_MS;
    int status = AGENT_EXIT_OK;
    while (!cli_stop) {
        if (agent_daemon_service(d) < 0) {
            status = cli_fail("the event loop failed");
            break;
        }
        if (api && cn_time_mono_ms() >= retry_at) {
            open_reaches(&st, api, d);
            retry_at = cn_time_mono_ms() + REACH_RETRY_MS;
        }
    }
    cn_log_info("agent %.8s: stopping (%zu stream%s open)", cfg.agent_id, agent_daemon_streams(d),
                agent_daemon_streams(d) == 1 ? "" : "s");
    agent_daemon_shutdown(d, AGENT_DAEMON_DRAIN_MS, &cli_force);
    cn_api_free(api);
    plugins_free(plugins);
    agent_config_wipe(&cfg);
    return status;
}
