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

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define REACH_HOST "127.0.0.1"

/* Everything one `connect reach` holds; released by reach_close(). */
typedef struct reach {
    agent_common_t c;
    const char *ref;
    unsigned long port; /* --port, 0 = choose */
    agent_config_t cfg;
    cn_api_t *api;
    json_t *tunnel; /* GET answer */
    json_t *answer; /* POST .../connect answer for the bound port */
    char name[128]; /* the tunnel's name, sanitised */
    uint8_t peer_key[32];
    int bound;
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

/* POST /api/v1/tunnels/{id}/connect for this agent and `port` (0: let the
 * hub suggest one). Replaces r->answer. 0 or the exit status. */
static int ask_hub(reach_t *r, int port)
{
    char err[512], path[128];
    const char *id = jstr(r->tunnel, "id", "");
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s/connect", id);
    json_t *body = json_pack("{s:s}", "agentId", r->cfg.agent_id);
    if (body && port)
        json_object_set_new(body, "localPort", json_integer(port));
    json_t *out = NULL;
    int rc = cn_api_call(r->api, "POST", path, body, NULL, &out, err, sizeof(err));
    json_decref(body);
    if (rc < 0) {
        json_decref(out);
        return cli_fail("cannot reach tunnel %s: %s", r->name, err);
    }
    json_decref(r->answer);
    r->answer = out;
    const char *key = jstr(out, "peerKey", "");
    if (cn_id_key_from_b64url(key, r->peer_key) < 0)
        return cli_fail("the hub answered without the exposing agent's key");
    return 0;
}

/* Step 2: find the tunnel and ask the hub for its reach. */
static int lookup(reach_t *r)
{
    char err[512];
    if (cli_find_tunnel(r->api, r->ref, &r->tunnel, err, sizeof(err)) < 0)
        return cli_fail("%s", err);
    out_sanitize(jstr(r->tunnel, "name", r->ref), r->name, sizeof(r->name), 100);
    return ask_hub(r, (int)r->port);
}

/* Step 3: the local port: --port exactly, else the hub's suggestion when
 * free, else any free port (and say so). */
static int bind_port(reach_t *r, agent_daemon_t *d)
{
    char err[256];
    json_int_t want = json_integer_value(json_object_get(r->answer, "localPort"));
    agent_reach_config_t rc = {
        .tunnel_id = jstr(r->tunnel, "id", ""),
        .name = r->name,
        .peer_key = r->peer_key,
        .host = REACH_HOST,
        .port = r->port ? (int)r->port : (int)want,
        .udp = !strcmp(jstr(r->answer, "protocol", ""), "udp"),
    };
    if (agent_daemon_reach(d, &rc, &r->bound, err, sizeof(err)) == 0)
        return 0;
    if (r->port || !want)
        return cli_fail("%s", err);
    rc.port = 0;
    if (agent_daemon_reach(d, &rc, &r->bound, err, sizeof(err)) < 0)
        return cli_fail("%s", err);
    cn_log_warn("%s:%d is taken; reaching %s on %s:%d instead", REACH_HOST, (int)want, r->name,
                REACH_HOST, r->bound);
    /* The connection string names the port: ask again for this one. */
    return ask_hub(r, r->bound);
}

static void print_ready(const reach_t *r)
{
    const char *cs = jstr(r->answer, "connectionString", "");
    if (r->c.json) {
        json_t *line = json_pack("{s:i,s:s,s:s,s:s,s:s}", "localPort", r->bound, "connectionString",
                                 cs, "tunnelId", jstr(r->tunnel, "id", ""), "name", r->name,
                                 "protocol", jstr(r->answer, "protocol", "tcp"));
        out_json(line);
        json_decref(line);
        return;
    }
    char safe[256];
    out_sanitize(cs, safe, sizeof(safe), 200);
    printf("Reaching tunnel %s on %s%s:%d\n", r->name,
           !strcmp(jstr(r->answer, "protocol", ""), "udp") ? "UDP " : "", REACH_HOST, r->bound);
    printf("  connection string: %s\n", safe);
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
    int status = bind_port(r, d);
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
    cli_logging(r.c.log_level, CN_LOG_INFO);
    cli_signals();
    char err[512];
    if (agent_config_resolve(&r.c, AGENT_NEED_AGENT | AGENT_NEED_HUB | AGENT_NEED_TOKEN, &r.cfg,
                             err, sizeof(err)) < 0)
        return cli_fail("%s", err);
    r.api = cli_api(&r.cfg, true);
    status = r.api ? lookup(&r) : AGENT_EXIT_FAIL;
    if (status == 0)
        status = serve(&r);
    cn_api_free(r.api);
    json_decref(r.tunnel);
    json_decref(r.answer);
    agent_config_wipe(&r.cfg);
    return status;
}
