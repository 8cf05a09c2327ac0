/* `connect rm ID|NAME`: deletes a tunnel. */
#include "cli.h"

#include "cn_api.h"
#include "cn_log.h"

#include <jansson.h>

int cmd_rm(int argc, char **argv)
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
        agent_args_help(stdout, "rm", "ID|NAME [--json]",
                        "Deletes a tunnel. Its connections are closed; its name and hub port\n"
                        "are held for a while before anyone else may take them.",
                        opts);
        return AGENT_EXIT_OK;
    }
    if (rc < 0)
        return cli_usage_error("rm", "%s", err);
    if (npos != 1)
        return cli_usage_error("rm", "which tunnel? give its id or name");
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
    if (rc == 0)
        rc = cn_api_tunnel_delete(api, jstr(t, "id", ""), NULL, err, sizeof(err));
    cn_api_free(api);
    if (rc < 0) {
        json_decref(t);
        return cli_fail("%s", err);
    }
    if (c.json) {
        json_t *o = json_pack("{s:s,s:s,s:b}", "id", jstr(t, "id", ""), "name", jstr(t, "name", ""),
                              "deleted", 1);
        out_json(o);
        json_decref(o);
    } else {
        char name[128];
        out_sanitize(jstr(t, "name", "?"), name, sizeof(name), 100);
        printf("deleted tunnel %s (%s)\n", name, jstr(t, "id", "?"));
    }
    json_decref(t);
    return AGENT_EXIT_OK;
}
