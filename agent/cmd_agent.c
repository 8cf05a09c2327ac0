/* `connect agent` (alias `connect up`): the daemon in the foreground. It
 * holds the link to the hub, reconnecting with backoff, and serves the
 * streams of this agent's tunnels until SIGINT/SIGTERM. */
#include "cli.h"

#include "cn_log.h"
#include "daemon.h"
#include "plugins.h"

#include <jansson.h>
#include <string.h>
#include <time.h>

typedef struct agent_state {
    bool json, printed;
    const agent_config_t *cfg;
} agent_state_t;

static void on_hello(void *ctx, agent_daemon_t *d, const json_t *hello)
{
    agent_state_t *s = ctx;
    if (!s->json || s->printed)
        return;
    s->printed = true;
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I}", "agentId", s->cfg->agent_id, "workspaceId",
                          agent_daemon_workspace(d), "hub", s->cfg->hub, "status", "connected",
                          "tunnels", (json_int_t)agent_daemon_tunnels(d)->count);
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
                     "patterns of the config file (the hub cannot add any). Stops on\n"
                     "Ctrl-C or SIGTERM. With --json, prints one JSON line once connected.",
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
    agent_state_t st = {.json = c.json, .cfg = &cfg};
    /* Health probes of the targets use the protocol plugins. */
    plugins_t *plugins = cli_plugins(plugin_dir);
    agent_daemon_config_t dc = {
        .hub_url = cfg.hub,
        .ca_file = cfg.ca_file,
        .allow_insecure = cfg.allow_insecure,
        .agent_sk = cfg.agent_sk,
        .hub_pk = cfg.hub_pk,
        .agent_id = cfg.agent_id,
        .policy_config = cfg.path,
        .plugins = plugins,
        .on_hello = on_hello,
        .ctx = &st,
    };
    agent_daemon_t *d = agent_daemon_new(&dc, err, sizeof(err));
    if (!d) {
        plugins_free(plugins);
        agent_config_wipe(&cfg);
        return cli_fail("%s", err);
    }
    cn_log_info("agent %.8s: starting (hub %s, config %s)", cfg.agent_id, cfg.hub, cfg.path);
    int status = AGENT_EXIT_OK;
    while (!cli_stop) {
        if (agent_daemon_service(d) < 0) {
            status = cli_fail("the event loop failed");
            break;
        }
    }
    cn_log_info("agent %.8s: stopping (%zu stream%s open)", cfg.agent_id, agent_daemon_streams(d),
                agent_daemon_streams(d) == 1 ? "" : "s");
    agent_daemon_shutdown(d, AGENT_DAEMON_DRAIN_MS, &cli_force);
    plugins_free(plugins);
    agent_config_wipe(&cfg);
    return status;
}
