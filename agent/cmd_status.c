/* `connect status ID|NAME`: one tunnel's details. */
#include "cli.h"

#include "cn_api.h"
#include "cn_log.h"

#include <jansson.h>

int cmd_status(int argc, char **argv)
{
    agent_common_t c = {0};
    cn_api_t *api;
    json_t *t;
    int status;
    if (!cli_tunnel_command("status",
                            "Shows one tunnel: status, target, public URL or hub port, connection\n"
                            "string, expiry and last error.",
                            argc, argv, &c, &api, &t, &status))
        return status;
    cn_api_free(api);
    if (c.json)
        out_json(t);
    else
        out_tunnel(stdout, t);
    json_decref(t);
    return AGENT_EXIT_OK;
}
