/* `connect events [--follow] [--tunnel ID|NAME] [--since TIME]`: lifecycle
 * events, oldest first; --follow polls with `since` and prints each event
 * once (events carry increasing ids). */
#include "cli.h"

#include "cn_api.h"
#include "cn_err.h"
#include "cn_log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* "k=v k=v" from an event's data object. */
static void details(const json_t *data, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)data, key, v)
    {
        char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        const char *val = json_is_string(v) ? json_string_value(v) : (text ? text : "?");
        int n = snprintf(out + o, outlen - o, "%s%s=%s", o ? " " : "", key, val);
        free(text);
        if (n < 0 || (size_t)n >= outlen - o) {
            out[outlen - 1] = '\0';
            return;
        }
        o += (size_t)n;
    }
}

static void print_event(const json_t *e, bool json)
{
    if (json) {
        out_json(e);
        return;
    }
    char who[128], what[512], line[1024];
    const json_t *data = json_object_get(e, "data");
    const char *name = jstr(data, "name", NULL);
    const char *tid = jstr(e, "tunnelId", NULL);
    const char *aid = jstr(e, "agentId", NULL);
    if (tid)
        snprintf(who, sizeof(who), "tunnel %.*s", name ? 100 : 8, name ? name : tid);
    else if (aid)
        snprintf(who, sizeof(who), "agent %.8s", aid);
    else
        snprintf(who, sizeof(who), "-");
    details(json_is_object(data) ? data : NULL, what, sizeof(what));
    snprintf(line, sizeof(line), "%-24s %-24s %-28s %s", jstr(e, "createdAt", "-"),
             jstr(e, "type", "-"), who, what);
    char safe[1024];
    out_sanitize(line, safe, sizeof(safe), 300);
    puts(safe);
}

int cmd_events(int argc, char **argv)
{
    agent_common_t c = {0};
    const char *tunnel = NULL, *since = NULL;
    bool follow = false;
    unsigned long interval = 2;
    const cn_opt_t opts[] = {
        {"tunnel", CN_OPT_STRING, &tunnel, 0, 0, "ID|NAME", "only this tunnel's events"},
        {"since", CN_OPT_STRING, &since, 0, 0, "TIME",
         "only events at or after this RFC 3339 time"},
        {"follow", CN_OPT_FLAG, &follow, 0, 0, NULL,
         "keep polling for new events until interrupted"},
        {"interval", CN_OPT_UINT, &interval, 1, 60, "S", "seconds between polls (default 2)"},
        AGENT_COMMON_OPTIONS(&c),
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    char err[512];
    int rc = cn_args_parse(opts, argc, argv, NULL, 0, 0, NULL, err, sizeof(err));
    if (rc == CN_ARGS_HELP) {
        cn_args_help(stdout, "connect", "events",
                     "[--follow] [--tunnel ID|NAME] [--since TIME] [--json]",
                     "Lists lifecycle events (tunnels created, deleted, paused; agents\n"
                     "connected and disconnected; ...), oldest first. With --json, one JSON\n"
                     "object per line.",
                     opts);
        return AGENT_EXIT_OK;
    }
    if (rc < 0)
        return cli_usage_error("events", "%s", err);
    cli_logging(c.log_level, CN_LOG_WARN);
    cli_signals();

    int fail_status;
    cn_api_t *api = cli_hub_api(&c, &fail_status);
    if (!api)
        return fail_status;

    char tunnel_id[64] = "";
    if (tunnel) {
        json_t *t = NULL;
        rc = cli_find_tunnel(api, tunnel, &t, err, sizeof(err));
        if (rc < 0) {
            cn_api_free(api);
            return cli_fail("%s", err);
        }
        snprintf(tunnel_id, sizeof(tunnel_id), "%s", jstr(t, "id", ""));
        json_decref(t);
    }
    char last_time[64] = "";
    if (since)
        snprintf(last_time, sizeof(last_time), "%s", since);
    json_int_t last_id = -1;
    int status = AGENT_EXIT_OK;
    size_t printed = 0;
    for (;;) {
        json_t *list = NULL;
        rc = cn_api_events_list(api, tunnel_id[0] ? tunnel_id : NULL,
                                last_time[0] ? last_time : NULL, &list, err, sizeof(err));
        if (rc == CN_ECLOSED)
            break;
        if (rc < 0) {
            /* A hub that went away while following: say so and keep trying. */
            if (follow && (rc == CN_EIO || rc == CN_ETIMEOUT || rc == CN_EAGAIN)) {
                cn_log_warn("events: %s", err);
                cli_nap((unsigned)interval * 1000);
                if (cli_stop)
                    break;
                continue;
            }
            status = cli_fail("%s", err);
            break;
        }
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e)
        {
            json_t *idv = json_object_get(e, "id");
            const char *at = jstr(e, "createdAt", "");
            if (json_is_integer(idv)) {
                if (json_integer_value(idv) <= last_id)
                    continue;
                last_id = json_integer_value(idv);
            } else if (follow && last_time[0] && strcmp(at, last_time) <= 0) {
                continue;
            }
            if (*at && strlen(at) < sizeof(last_time))
                snprintf(last_time, sizeof(last_time), "%s", at);
            print_event(e, c.json);
            printed++;
        }
        json_decref(list);
        fflush(stdout);
        if (!follow || cli_stop)
            break;
        cli_nap((unsigned)interval * 1000);
        if (cli_stop)
            break;
    }
    if (!follow && !printed && !c.json && status == AGENT_EXIT_OK)
        puts("no events");
    cn_api_free(api);
    return status;
}
