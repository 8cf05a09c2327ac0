/* `connect inspect TUNNEL [--follow] [--limit N] [--interval S]`: the HTTP requests the hub
 * recorded for a tunnel (and its shares), one line each, oldest first;
 * --follow polls with the `after` cursor and prints each request once.
 * `connect replay RID`: sends a recorded request again through the hub's
 * edge and waits for the replay's answer. */
#include "cli.h"

#include "cn_api.h"
#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_request(const json_t *r, bool json)
{
    if (json) {
        out_json(r);
        return;
    }
    char status[16] = "-", line[1024], safe[1024];
    json_t *st = json_object_get(r, "status");
    if (json_is_integer(st))
        snprintf(status, sizeof(status), "%d", (int)json_integer_value(st));
    json_t *rep = json_object_get(r, "replayOf");
    char note[40] = "";
    if (json_is_integer(rep))
        snprintf(note, sizeof(note), " (replay of #%lld)", (long long)json_integer_value(rep));
    snprintf(line, sizeof(line), "#%-6lld %-24s %-7s %-40s %3s %6lldms%s",
             (long long)json_integer_value(json_object_get(r, "id")), jstr(r, "time", "-"),
             jstr(r, "method", "-"), jstr(r, "path", "-"), status,
             (long long)json_integer_value(json_object_get(r, "durationMs")), note);
    out_sanitize(line, safe, sizeof(safe), 300);
    puts(safe);
}

/* One page of GET /api/v1/tunnels/ID/requests into *out (the object). */
static int list_page(cn_api_t *api, const char *tid, unsigned long limit, long long after,
                     json_t **out, char *err, size_t errlen)
{
    char path[256];
    if (after >= 0)
        snprintf(path, sizeof(path), "/api/v1/tunnels/%s/requests?limit=%lu&after=%lld", tid, limit,
                 after);
    else
        snprintf(path, sizeof(path), "/api/v1/tunnels/%s/requests?limit=%lu", tid, limit);
    *out = NULL;
    int rc = cn_api_call(api, "GET", path, NULL, NULL, out, err, errlen);
    if (rc < 0) {
        json_decref(*out);
        *out = NULL;
        return rc;
    }
    if (!json_is_array(json_object_get(*out, "requests"))) {
        json_decref(*out);
        *out = NULL;
        return cn_errf(CN_EPROTO, err, errlen, "unexpected answer from the hub");
    }
    return rc;
}

int cmd_inspect(int argc, char **argv)
{
    agent_common_t c = {0};
    bool follow = false;
    unsigned long interval = 1, limit = 20;
    const cn_opt_t opts[] = {
        {"follow", CN_OPT_FLAG, &follow, 0, 0, NULL,
         "keep polling for new requests until interrupted"},
        {"limit", CN_OPT_UINT, &limit, 1, 1000, "N", "the newest N requests first (default 20)"},
        {"interval", CN_OPT_UINT, &interval, 1, 60, "S", "seconds between polls (default 1)"},
        AGENT_COMMON_OPTIONS(&c),
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    const char *pos[1];
    size_t npos = 0;
    char err[512];
    int rc = cn_args_parse(opts, argc, argv, pos, 0, 1, &npos, err, sizeof(err));
    if (rc == CN_ARGS_HELP) {
        cn_args_help(stdout, "connect", "inspect",
                     "TUNNEL [--follow] [--limit N] [--interval S] [--json]",
                     "Lists the HTTP requests the hub recorded for a tunnel and its shares,\n"
                     "oldest first: id, time, method, path, status, duration. Secrets in\n"
                     "Authorization and cookies are masked by the hub. Details of one:\n"
                     "GET /api/v1/requests/ID; send one again: connect replay ID. With\n"
                     "--json, one JSON object per line.",
                     opts);
        return AGENT_EXIT_OK;
    }
    if (rc < 0)
        return cli_usage_error("inspect", "%s", err);
    if (npos != 1)
        return cli_usage_error("inspect", "which tunnel? give its id or name");
    agent_config_t cfg;
    cn_api_t *api = NULL;
    rc = cli_begin(&c, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &cfg, &api);
    if (rc >= 0)
        return rc;
    agent_config_wipe(&cfg);
    json_t *t = NULL;
    if (cli_find_tunnel(api, pos[0], &t, err, sizeof(err)) < 0) {
        cn_api_free(api);
        return cli_fail("%s", err);
    }
    char tid[64];
    snprintf(tid, sizeof(tid), "%s", jstr(t, "id", ""));
    json_decref(t);

    /* The newest `limit`, printed oldest first; then forward from there. */
    json_t *page = NULL;
    int status = AGENT_EXIT_OK;
    long long last = 0;
    size_t printed = 0;
    rc = list_page(api, tid, limit, -1, &page, err, sizeof(err));
    if (rc < 0) {
        cn_api_free(api);
        return cli_fail("%s", err);
    }
    json_t *arr = json_object_get(page, "requests");
    for (size_t i = json_array_size(arr); i-- > 0;) {
        json_t *r = json_array_get(arr, i);
        long long id = (long long)json_integer_value(json_object_get(r, "id"));
        if (id > last)
            last = id;
        print_request(r, c.json);
        printed++;
    }
    json_t *rec = json_object_get(page, "recording");
    if (!follow && !printed && !c.json)
        puts(json_is_false(rec) ? "no requests (this hub records none: serve --inspect off)"
                                : "no requests recorded");
    json_decref(page);
    fflush(stdout);
    while (follow && !cli_stop) {
        cli_nap((unsigned)interval * 1000);
        if (cli_stop)
            break;
        rc = list_page(api, tid, 1000, last, &page, err, sizeof(err));
        if (rc < 0) {
            if (rc == CN_EIO || rc == CN_ETIMEOUT || rc == CN_EAGAIN) {
                cn_log_warn("inspect: %s", err);
                continue;
            }
            status = cli_fail("%s", err);
            break;
        }
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(page, "requests"), i, r)
        {
            long long id = (long long)json_integer_value(json_object_get(r, "id"));
            if (id <= last)
                continue;
            last = id;
            print_request(r, c.json);
        }
        json_decref(page);
        fflush(stdout);
    }
    cn_api_free(api);
    return status;
}

int cmd_replay(int argc, char **argv)
{
    agent_common_t c = {0};
    unsigned long wait_s = 30;
    const cn_opt_t opts[] = {
        {"wait", CN_OPT_UINT, &wait_s, 0, 3600, "S",
         "seconds to wait for the replay's answer, 0 = do not wait (default 30)"},
        AGENT_COMMON_OPTIONS(&c),
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    const char *pos[1];
    size_t npos = 0;
    char err[512];
    int rc = cn_args_parse(opts, argc, argv, pos, 0, 1, &npos, err, sizeof(err));
    if (rc == CN_ARGS_HELP) {
        cn_args_help(stdout, "connect", "replay", "RID [--wait S] [--json]",
                     "Sends a recorded request (an id from 'connect inspect') again through\n"
                     "the hub's HTTP edge, under the same rules: a share's methods, paths,\n"
                     "expiry, revocation and rate limit still apply. Masked headers\n"
                     "(Authorization, Cookie) are left out. Prints the replay's line once\n"
                     "its response is complete.",
                     opts);
        return AGENT_EXIT_OK;
    }
    if (rc < 0)
        return cli_usage_error("replay", "%s", err);
    char *end = NULL;
    long long rid = npos == 1 ? strtoll(pos[0], &end, 10) : 0;
    if (npos != 1 || rid < 1 || !end || *end)
        return cli_usage_error("replay", "give the id of a recorded request (connect inspect)");
    agent_config_t cfg;
    cn_api_t *api = NULL;
    rc = cli_begin(&c, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &cfg, &api);
    if (rc >= 0)
        return rc;
    agent_config_wipe(&cfg);
    char path[128];
    json_t *out = NULL;
    snprintf(path, sizeof(path), "/api/v1/requests/%lld/replay", rid);
    json_t *body = json_object();
    rc = cn_api_call(api, "POST", path, body, NULL, &out, err, sizeof(err));
    json_decref(body);
    if (rc < 0) {
        json_decref(out);
        cn_api_free(api);
        return cli_fail("%s", err);
    }
    long long nid = (long long)json_integer_value(json_object_get(out, "id"));
    json_decref(out);
    out = NULL;
    /* The replay's record appears once its response is complete. */
    snprintf(path, sizeof(path), "/api/v1/requests/%lld", nid);
    int status = AGENT_EXIT_OK;
    for (unsigned long waited = 0;; waited += 200) {
        out = NULL;
        rc = cn_api_call(api, "GET", path, NULL, NULL, &out, err, sizeof(err));
        if (rc == 0)
            break;
        json_decref(out);
        if (rc != CN_ENOTFOUND || waited >= wait_s * 1000 || cli_stop) {
            if (rc == CN_ENOTFOUND)
                printf("replay sent as request #%lld; no answer yet\n", nid);
            else
                status = cli_fail("%s", err);
            out = NULL;
            break;
        }
        cli_nap(200);
    }
    if (out)
        print_request(out, c.json);
    json_decref(out);
    cn_api_free(api);
    return status;
}
