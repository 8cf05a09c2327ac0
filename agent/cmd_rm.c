/* `connect rm ID|NAME`: deletes a tunnel. */
#include "cli.h"

#include "cn_api.h"
#include "cn_log.h"

#include <jansson.h>

int cmd_rm(int argc, char **argv)
{
    agent_common_t c = {0};
    cn_api_t *api;
    json_t *t;
    int status;
    if (!cli_tunnel_command("rm",
                            "Deletes a tunnel. Its connections are closed; its name and hub port\n"
                            "are held for a while before anyone else may take them.",
                            argc, argv, &c, &api, &t, &status))
        return status;
    char err[512];
    int rc = cn_api_tunnel_delete(api, jstr(t, "id", ""), NULL, err, sizeof(err));
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
