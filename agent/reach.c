/* One reach set up from the hub's answer (see reach.h). */
#include "reach.h"

#include "cli.h"
#include "cn_api.h"
#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_id.h"
#include "cn_log.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* POST /api/v1/tunnels/{id}/connect for this agent and `port` (0: let the
 * hub suggest one). *out is the answer; key its exposing agent's key. */
static int ask_hub(struct cn_api *api, const agent_config_t *cfg, const char *id, int port,
                   json_t **out, uint8_t key[32], char *err, size_t errlen)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s/connect", id);
    json_t *body = json_pack("{s:s}", "agentId", cfg->agent_id);
    if (body && port)
        json_object_set_new(body, "localPort", json_integer(port));
    *out = NULL;
    int rc = cn_api_call(api, "POST", path, body, NULL, out, err, errlen);
    json_decref(body);
    if (rc == 0 && cn_id_key_from_b64url(jstr(*out, "peerKey", ""), key) < 0)
        rc = cn_errf(CN_EPROTO, err, errlen, "the hub answered without the exposing agent's key");
    if (rc < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static void fill_info(agent_reach_info_t *info, const json_t *answer, int port)
{
    info->port = port;
    snprintf(info->protocol, sizeof(info->protocol), "%s", jstr(answer, "protocol", "tcp"));
    out_sanitize(jstr(answer, "connectionString", ""), info->connection_string,
                 sizeof(info->connection_string), 200);
}

int agent_reach_open(struct cn_api *api, agent_daemon_t *d, const agent_config_t *cfg,
                     const char *ref, int port, agent_reach_info_t *info, char *err, size_t errlen)
{
    json_t *tunnel = NULL, *answer = NULL;
    uint8_t key[32];
    memset(info, 0, sizeof(*info));
    int rc = cli_find_tunnel(api, ref, &tunnel, err, errlen);
    if (rc < 0)
        return rc;
    snprintf(info->tunnel_id, sizeof(info->tunnel_id), "%s", jstr(tunnel, "id", ""));
    out_sanitize(jstr(tunnel, "name", ref), info->name, sizeof(info->name), 100);
    json_decref(tunnel);
    rc = ask_hub(api, cfg, info->tunnel_id, port, &answer, key, err, errlen);
    if (rc < 0)
        goto out;
    json_int_t want = json_integer_value(json_object_get(answer, "localPort"));
    agent_reach_config_t rcfg = {
        .tunnel_id = info->tunnel_id,
        .name = info->name,
        .peer_key = key,
        .host = AGENT_REACH_HOST,
        .port = port ? port : (int)want,
        .udp = !strcmp(jstr(answer, "protocol", ""), "udp"),
    };
    int bound = 0;
    rc = agent_daemon_reach(d, &rcfg, &bound, err, errlen);
    if (rc < 0 && !port && want) {
        /* The suggestion is taken: any free port, and say which. */
        rcfg.port = 0;
        rc = agent_daemon_reach(d, &rcfg, &bound, err, errlen);
        if (rc == 0)
            cn_log_warn("%s:%d is taken; reaching %s on %s:%d instead", AGENT_REACH_HOST, (int)want,
                        info->name, AGENT_REACH_HOST, bound);
    }
    if (rc == 0 && bound != rcfg.port && bound != want) {
        /* Any free port (taken or out-of-range suggestion): the connection
         * string names the port, so ask again for this one. */
        json_decref(answer);
        rc = ask_hub(api, cfg, info->tunnel_id, bound, &answer, key, err, errlen);
    }
    if (rc == 0)
        fill_info(info, answer, bound);
out:
    json_decref(answer);
    return rc;
}

int agent_reach_list_load(const char *path, agent_reach_entry_t *out, size_t cap, size_t *n,
                          char *err, size_t errlen)
{
    *n = 0;
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return cn_errf(CN_EINVAL, err, errlen, "%s: %s", path, jerr.text);
    json_t *list = json_object_get(doc, "reach");
    int rc = 0;
    if (list && !json_is_array(list)) {
        rc = cn_errf(CN_EINVAL, err, errlen, "%s: \"reach\" must be a list", path);
        goto out;
    }
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *t = json_string_value(json_object_get(e, "tunnel"));
        json_t *p = json_object_get(e, "port");
        if (*n >= cap) {
            rc = cn_errf(CN_EINVAL, err, errlen, "%s: more than %zu reach entries", path, cap);
            goto out;
        }
        if (!t || !*t || strlen(t) >= sizeof(out[0].tunnel) ||
            (p &&
             (!json_is_integer(p) || json_integer_value(p) < 1 || json_integer_value(p) > 65535))) {
            rc = cn_errf(CN_EINVAL, err, errlen,
                         "%s: reach entry %zu: needs \"tunnel\" (name or id) and an optional "
                         "\"port\" 1-65535",
                         path, i + 1);
            goto out;
        }
        snprintf(out[*n].tunnel, sizeof(out[*n].tunnel), "%s", t);
        out[*n].port = p ? (int)json_integer_value(p) : 0;
        (*n)++;
    }
out:
    json_decref(doc);
    return rc;
}
