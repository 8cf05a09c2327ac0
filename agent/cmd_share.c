/* `connect share TUNNEL [options]` (alias `connect link`): creates a share
 * link for an HTTP tunnel and prints it once; the hub enforces its rules
 * (expiry, methods, paths, per-minute limit, basic auth) on every request.
 * A TCP tunnel's link is redeemed with `connect reach SHARE_URL`.
 * The link's token exists only in this output: the hub keeps its hash. */
#include "cli.h"

#include "cn_api.h"
#include "cn_log.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* "GET,POST" or "/api/STAR,/health" (STAR being the wildcard) into a JSON array of strings. */
static json_t *comma_list(const char *s)
{
    json_t *a = json_array();
    while (a && s && *s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        while (n && s[0] == ' ') {
            s++;
            n--;
        }
        while (n && s[n - 1] == ' ')
            n--;
        if (n)
            json_array_append_new(a, json_stringn(s, n));
        s = e ? e + 1 : NULL;
    }
    return a;
}

int cmd_share(int argc, char **argv)
{
    agent_common_t c = {0};
    const char *expires = NULL, *methods = NULL, *paths = NULL, *auth = NULL, *name = NULL,
               *description = NULL;
    unsigned long rate = 0;
    const cn_opt_t opts[] = {
        {"expires", CN_OPT_STRING, &expires, 0, 0, "1h|24h|7d|30d|never",
         "when the link stops working (default 24h)"},
        {"methods", CN_OPT_STRING, &methods, 0, 0, "GET,POST",
         "the HTTP methods allowed (default: all)"},
        {"paths", CN_OPT_STRING, &paths, 0, 0, "/api/*,...",
         "path prefixes allowed, '*' within a segment (default: all)"},
        {"rate-limit", CN_OPT_UINT, &rate, 1, 1000, "N", "requests per minute (default 60)"},
        {"auth", CN_OPT_STRING, &auth, 0, 0, "USER",
         "basic auth; the password is generated and shown once"},
        {"name", CN_OPT_STRING, &name, 0, 0, "NAME", "a label for the share"},
        {"description", CN_OPT_STRING, &description, 0, 0, "TEXT", "up to 500 characters"},
        AGENT_COMMON_OPTIONS(&c),
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    const char *pos[1];
    size_t npos = 0;
    char err[512];
    const char *cmd = argv[0];
    int rc = cn_args_parse(opts, argc, argv, pos, 0, 1, &npos, err, sizeof(err));
    if (rc == CN_ARGS_HELP) {
        cn_args_help(stdout, "connect", cmd,
                     "TUNNEL [--expires 1h|24h|7d|30d|never] [--methods GET,POST] "
                     "[--paths /api/*] [--rate-limit N] [--auth USER] [--name N] "
                     "[--description T] [--json]",
                     "Creates a share link for an HTTP tunnel (given by id or name) and\n"
                     "prints it. The hub checks every request against the share's rules:\n"
                     "410 after expiry or revocation, 405 for other methods, 403 for other\n"
                     "paths, 429 over the per-minute limit, 401 without the password.\n"
                     "A TCP tunnel's link (HUB/share/TOKEN) is redeemed with 'connect reach\n"
                     "SHARE_URL', no enrollment needed; its limit counts new connections.\n"
                     "The link is shown once; revoke it with the API (DELETE\n"
                     "/api/v1/shares/ID). 'connect link' is the same command.",
                     opts);
        return AGENT_EXIT_OK;
    }
    if (rc < 0)
        return cli_usage_error(cmd, "%s", err);
    if (npos != 1)
        return cli_usage_error(cmd, "which tunnel? give its id or name");
    cli_logging(c.log_level, CN_LOG_WARN);
    int fail_status;
    cn_api_t *api = cli_hub_api(&c, &fail_status);
    if (!api)
        return fail_status;
    json_t *t = NULL, *out = NULL;
    if (cli_find_tunnel(api, pos[0], &t, err, sizeof(err)) < 0) {
        cn_api_free(api);
        return cli_fail("%s", err);
    }
    json_t *body = json_object();
    if (expires)
        json_object_set_new(body, "expiresIn", json_string(expires));
    if (methods)
        json_object_set_new(body, "allowedMethods", comma_list(methods));
    if (paths)
        json_object_set_new(body, "allowedPaths", comma_list(paths));
    if (rate)
        json_object_set_new(body, "rateLimitPerMinute", json_integer((json_int_t)rate));
    if (auth)
        json_object_set_new(body, "httpUser", json_string(auth));
    if (name)
        json_object_set_new(body, "name", json_string(name));
    if (description)
        json_object_set_new(body, "description", json_string(description));
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s/shares", jstr(t, "id", ""));
    rc = cn_api_call(api, "POST", path, body, NULL, &out, err, sizeof(err));
    json_decref(body);
    json_decref(t);
    cn_api_free(api);
    if (rc < 0) {
        json_decref(out);
        return cli_fail("%s", err);
    }
    if (c.json) {
        out_json(out);
    } else {
        printf("share link  %s\n", jstr(out, "shareUrl", "?"));
        printf("id          %s\n", jstr(out, "id", "?"));
        printf("expires     %s\n", jstr(out, "expiresAt", "never"));
        if (json_is_string(json_object_get(out, "httpPassword")))
            printf("basic auth  %s / %s (shown once)\n", jstr(out, "httpUser", "?"),
                   jstr(out, "httpPassword", "?"));
    }
    json_t *pw = json_object_get(out, "httpPassword");
    if (json_is_string(pw))
        sodium_memzero((void *)json_string_value(pw), json_string_length(pw));
    json_decref(out);
    return AGENT_EXIT_OK;
}
