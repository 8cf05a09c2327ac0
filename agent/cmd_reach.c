/* `connect reach TUNNEL [--port N]`: asks the hub for the reach of a tunnel
 * of the workspace (POST /api/v1/tunnels/{id}/connect: local port,
 * connection string, the exposing agent's key), binds a local port, runs
 * the agent in-process on a link that serves no tunnel, prints the
 * connection string once the hub admitted it, and turns every local
 * connection into an end-to-end encrypted stream to the exposing agent
 * until Ctrl-C. */
#include "cli.h"

#include "cn_api.h"
#include "cn_err.h"
#include "cn_id.h"
#include "cn_log.h"
#include "daemon.h"
#include "reach.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* Everything one `connect reach` holds; released by cmd_reach(). */
typedef struct reach {
    agent_common_t c;
    const char *ref;
    unsigned long port; /* --port, 0 = choose */
    agent_config_t cfg;
    cn_api_t *api;
    agent_reach_info_t info;
} reach_t;

/* Step 1: the options. -1 to go on, else the exit status. */
static int parse_args(reach_t *r, int argc, char **argv)
{
    const cn_opt_t opts[] = {
        {"port", CN_OPT_UINT, &r->port, 1, 65535, "N",
         "local port to bind (default: the target's port + 10000 when free, else any)"},
        AGENT_COMMON_OPTIONS(&r->c),
        CN_OPT_END,
    };
    const cn_args_cmd_t cmd = {
        .prog = "connect",
        .name = "reach",
        .synopsis = "TUNNEL [--port N] [--json]",
        .description =
            "Reaches a tunnel of the workspace (name or id) on a local port: binds\n"
            "127.0.0.1:N, prints the connection string, and carries every local\n"
            "connection to the agent that exposes the tunnel, end-to-end encrypted\n"
            "between the two agents (the hub relays bytes it cannot read), until Ctrl-C.",
        .opts = opts,
        .max_pos = 1,
    };
    const char *pos[1];
    size_t npos = 0;
    int rc = cn_args_front(&cmd, argc, argv, pos, &npos);
    if (rc != CN_ARGS_OK)
        return cn_args_exit(rc);
    if (npos != 1)
        return cli_usage_error("reach", "which tunnel? give its name or id");
    r->ref = pos[0];
    return -1;
}

static void print_ready(const reach_t *r)
{
    const agent_reach_info_t *i = &r->info;
    if (r->c.json) {
        json_t *line = json_pack("{s:i,s:s,s:s,s:s,s:s}", "localPort", i->port, "connectionString",
                                 i->connection_string, "tunnelId", i->tunnel_id, "name", i->name,
                                 "protocol", i->protocol);
        out_json(line);
        json_decref(line);
        return;
    }
    printf("Reaching tunnel %s on %s%s:%d\n", i->name, !strcmp(i->protocol, "udp") ? "UDP " : "",
           AGENT_REACH_HOST, i->port);
    printf("  connection string: %s\n", i->connection_string);
    printf("Forwarding until Ctrl-C (end-to-end encrypted to the exposing agent).\n");
    fflush(stdout);
}

/* Step 4: serve until Ctrl-C. The exit status. */
static int serve(reach_t *r)
{
    char err[512];
    agent_daemon_config_t dc = {
        .hub_url = r->cfg.hub,
        .agent_sk = r->cfg.agent_sk,
        .hub_pk = r->cfg.hub_pk,
        .agent_id = r->cfg.agent_id,
        .serve_none = true, /* this process only reaches */
    };
    agent_daemon_t *d = agent_daemon_new(&dc, err, sizeof(err));
    if (!d)
        return cli_fail("%s", err);
    int status = 0;
    if (agent_reach_open(r->api, d, &r->cfg, r->ref, (int)r->port, &r->info, err, sizeof(err)) < 0)
        status = cli_fail("cannot reach %s: %s", r->ref, err);
    bool printed = false;
    while (status == 0 && !cli_stop) {
        if (agent_daemon_service(d) < 0) {
            status = cli_fail("the event loop failed");
            break;
        }
        if (!printed && agent_daemon_connected(d)) {
            printed = true;
            print_ready(r);
        }
    }
    agent_daemon_shutdown(d, AGENT_DAEMON_DRAIN_MS, &cli_force);
    return status;
}

int cmd_reach(int argc, char **argv)
{
    reach_t r;
    memset(&r, 0, sizeof(r));
    int status = parse_args(&r, argc, argv);
    if (status >= 0)
        return status;
    status = cli_begin(&r.c, AGENT_NEED_AGENT | AGENT_NEED_HUB | AGENT_NEED_TOKEN, &r.cfg, &r.api);
    if (status >= 0)
        return status;
    status = serve(&r);
    cn_api_free(r.api);
    agent_config_wipe(&r.cfg);
    return status;
}
