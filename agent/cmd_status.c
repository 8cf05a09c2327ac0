/* `connect status ID|NAME`: one tunnel's details. */
#include "cli.h"

#include "cn_api.h"
#include "cn_log.h"

#include <jansson.h>

int cmd_status(int argc, char **argv)
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
        agent_args_help(stdout, "status", "ID|NAME [--json]",
                        "Shows one tunnel: status, target, public URL or hub port, connection\n"
                        "string, expiry and last error.",
                        opts);
        return AGENT_EXIT_OK;
    }
    if (rc < 0)
        return cli_usage_error("status", "%s", err);
    if (npos != 1)
        return cli_usage_error("status", "which tunnel? give its id or name");
    cli_logging(CN_LOG_WARN);

    agent_config_t cfg;
    if (agent_config_resolve(&c, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &cfg, err, sizeof(err)) < 0)
        return cli_fail("%s", err);
    cn_api_t *api = cli_api(&cfg, true);
    agent_config_wipe(&cfg);
    if (!api)
        return AGENT_EXIT_FAIL;
    json_t *t = NULL;
    rc = cli_find_tunnel(api, pos[0], &t, err, sizeof(err));
    cn_api_free(api);
    if (rc < 0)
        return cli_fail("%s", err);
    if (c.json)
        out_json(t);
    else
        out_tunnel(stdout, t);
    json_decref(t);
    return AGENT_EXIT_OK;
}
