/* `connect ls`: the workspace's tunnels as a table, or a JSON array. */
#include "cli.h"

#include "cn_api.h"
#include "cn_log.h"

#include <jansson.h>
#include <string.h>

int cmd_ls(int argc, char **argv)
{
    agent_common_t c = {0};
    const char *agent = NULL, *status = NULL;
    const cn_opt_t opts[] = {
        {"agent", CN_OPT_STRING, &agent, 0, 0, "ID", "only the tunnels of this agent"},
        {"status", CN_OPT_STRING, &status, 0, 0, "STATUS",
         "only tunnels in this status (connecting, active, paused, error, expired)"},
        AGENT_COMMON_OPTIONS(&c),
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    char err[512];
    int rc = cn_args_parse(opts, argc, argv, NULL, 0, 0, NULL, err, sizeof(err));
    if (rc == CN_ARGS_HELP) {
        cn_args_help(stdout, "connect", "ls", "[--agent ID] [--status STATUS] [--json]",
                     "Lists the tunnels of the workspace the API token belongs to.", opts);
        return AGENT_EXIT_OK;
    }
    if (rc < 0)
        return cli_usage_error("ls", "%s", err);
    cli_logging(c.log_level, CN_LOG_WARN);

    int fail_status;
    cn_api_t *api = cli_hub_api(&c, &fail_status);
    if (!api)
        return fail_status;
    json_t *list = NULL;
    rc = cn_api_tunnel_list(api, agent, status, &list, err, sizeof(err));
    cn_api_free(api);
    if (rc < 0)
        return cli_fail("%s", err);
    if (c.json) {
        out_json(list);
    } else if (json_array_size(list) == 0) {
        puts("no tunnels");
    } else {
        static const char *const head[] = {"NAME",     "ID",     "STATUS",
                                           "PROTOCOL", "TARGET", "ENDPOINT"};
        out_table_t t;
        out_table_init(&t, 6, head);
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e)
        {
            char endpoint[256];
            out_endpoint(e, endpoint, sizeof(endpoint));
            const char *row[] = {jstr(e, "name", "-"),   jstr(e, "id", "-"),
                                 jstr(e, "status", "-"), jstr(e, "protocol", "-"),
                                 jstr(e, "target", "-"), endpoint};
            out_table_add(&t, row);
        }
        out_table_print(stdout, &t);
        out_table_free(&t);
    }
    json_decref(list);
    return AGENT_EXIT_OK;
}
