/* `connect pause ID|NAME` and `connect resume ID|NAME`: PATCH the tunnel's
 * status. A paused tunnel keeps its name and port; the hub stops serving
 * it and the agent refuses its streams. */
#include "cli.h"

#include "cn_api.h"
#include "cn_log.h"

#include <jansson.h>
#include <string.h>

static int set_status(const char *cmd, const char *status, int argc, char **argv)
{
    agent_common_t c = {0};
    const agent_opt_t opts[] = {
        AGENT_COMMON_OPTIONS(&c),
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    const char *pos[1];
    size_t npos = 0;
    char err[512];
    int rc = agent_args_parse(opts, argc, argv, pos, 0, 1, &npos, err, sizeof(err));
    if (rc == AGENT_ARGS_HELP) {
        agent_args_help(stdout, cmd, "ID|NAME [--json]",
                        !strcmp(status, "paused")
                            ? "Pauses a tunnel: the hub stops accepting connections for it\n"
                              "until it is resumed. Its name and hub port are kept."
                            : "Resumes a paused tunnel.",
                        opts);
        return AGENT_EXIT_OK;
    }
    if (rc < 0)
        return cli_usage_error(cmd, "%s", err);
    if (npos != 1)
        return cli_usage_error(cmd, "which tunnel? give its id or name");
    cli_logging(CN_LOG_WARN);

    agent_config_t cfg;
    if (agent_config_resolve(&c, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &cfg, err, sizeof(err)) < 0)
        return cli_fail("%s", err);
    cn_api_t *api = cli_api(&cfg, true);
    agent_config_wipe(&cfg);
    if (!api)
        return AGENT_EXIT_FAIL;
    json_t *t = NULL, *upd = NULL, *body = NULL;
    rc = cli_find_tunnel(api, pos[0], &t, err, sizeof(err));
    if (rc == 0) {
        body = json_pack("{s:s}", "status", status);
        rc = cn_api_tunnel_patch(api, jstr(t, "id", ""), body, &upd, err, sizeof(err));
    }
    cn_api_free(api);
    json_decref(body);
    json_decref(t);
    if (rc < 0)
        return cli_fail("%s", err);
    if (c.json) {
        out_json(upd);
    } else {
        char name[128];
        out_sanitize(jstr(upd, "name", "?"), name, sizeof(name), 100);
        printf("tunnel %s is %s\n", name, jstr(upd, "status", status));
    }
    json_decref(upd);
    return AGENT_EXIT_OK;
}

int cmd_pause(int argc, char **argv)
{
    return set_status("pause", "paused", argc, argv);
}

int cmd_resume(int argc, char **argv)
{
    return set_status("resume", "active", argc, argv);
}
