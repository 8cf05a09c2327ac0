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
    cn_api_t *api;
    json_t *t, *upd = NULL;
    int exit_status;
    if (!cli_tunnel_command(cmd,
                            !strcmp(status, "paused")
                                ? "Pauses a tunnel: the hub stops accepting connections for it\n"
                                  "until it is resumed. Its name and hub port are kept."
                                : "Resumes a paused tunnel.",
                            argc, argv, &c, &api, &t, &exit_status))
        return exit_status;
    char err[512];
    json_t *body = json_pack("{s:s}", "status", status);
    int rc = cn_api_tunnel_patch(api, jstr(t, "id", ""), body, &upd, err, sizeof(err));
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
