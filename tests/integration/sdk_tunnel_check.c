/* A program built against the installed libconnect (pkg-config alone) that
 * drives the embeddable tunnel for test_sdk_tunnel.sh and prints what it
 * sees, one line each, on stdout:
 *   status NAME[: WHY]              every status callback
 *   {"id":...,"url":...,...}        once started (the getters)
 *   start-failed CODE: MESSAGE      when the start fails (exit 2)
 *   ready CODE / stop-in-callback CODE   async mode
 *   stopped CODE[: MESSAGE]         after SIGTERM/SIGINT and cn_tunnel_stop()
 * and with `share` (the REST client's typed share and reach calls, with the
 * config's hub and token):
 *   {"shareUrl":...,"shareId":...}  a GET-only share of the started tunnel
 *   {"localPort":...,...}           a reach of it for the same agent
 *   share-logs N / share-status S / shares N   at SIGTERM: its access log
 *                                   rows, its status once revoked, and the
 *                                   tunnel's shares
 *
 * and, as `sdk_tunnel_check admin` (CONNECT_HUB and an admin CONNECT_TOKEN),
 * the administration calls, one line each: "ok CALL" or "fail CALL: ERROR".
 *
 * usage: sdk_tunnel_check PORT [name=N] [protocol=P] [user=U] [ttl=S]
 *                         [timeout=MS] [config=FILE] [hub=URL] [share] [async] */
#define _POSIX_C_SOURCE 200809L
#include <connect/connect.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, const char *a, const char *b)
{
    pthread_mutex_lock(&out_mu);
    printf(fmt, a, b);
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
}

static void on_status(void *ctx, cn_tunnel_t *t, cn_tunnel_status_t s, const char *why)
{
    (void)ctx;
    (void)t;
    say(why ? "status %s: %s\n" : "status %s%s\n", cn_tunnel_status_name(s), why ? why : "");
}

static void print_json(json_t *o);

static void print_tunnel(cn_tunnel_t *t)
{
    json_t *o = json_pack(
        "{s:s?,s:s?,s:i,s:s?,s:s?,s:s}", "id", cn_tunnel_id(t), "url", cn_tunnel_url(t), "hubPort",
        cn_tunnel_hub_port(t), "connectionString", cn_tunnel_connection_string(t), "httpPassword",
        cn_tunnel_http_password(t), "status", cn_tunnel_status_name(cn_tunnel_status(t)));
    print_json(o);
    json_decref(o);
}

/* Async mode: the outcome arrives here, on the tunnel's thread, where
 * stopping the tunnel must be refused (it would wait for itself). */
static void on_ready(void *ctx, cn_tunnel_t *t, int result, const char *why)
{
    (void)ctx;
    char err[256] = "", code[16];
    snprintf(code, sizeof(code), "%d", result);
    say("ready %s%s\n", code, why ? why : "");
    int rc = cn_tunnel_stop(t, err, sizeof(err));
    say("stop-in-callback %s%s\n", cn_strerror(rc), "");
    if (result == 0)
        print_tunnel(t);
}

static bool flag(int argc, char **argv, const char *name)
{
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], name))
            return true;
    return false;
}

static void print_json(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    say("%s%s\n", s ? s : "{}", "");
    free(s);
}

/* A client with the config's hub and token (the hub of this test). */
static cn_api_t *config_api(const char *path, const char **agent_id, json_t **cfg)
{
    char err[256];
    *cfg = json_load_file(path, 0, NULL);
    const char *hub = json_string_value(json_object_get(*cfg, "hub"));
    const char *token = json_string_value(json_object_get(*cfg, "token"));
    *agent_id = json_string_value(json_object_get(*cfg, "agentId"));
    cn_api_t *api = hub && token ? cn_api_new(hub, token, err, sizeof(err)) : NULL;
    if (!api)
        say("api-failed: %s%s\n", hub ? err : "no hub in the config", "");
    return api;
}

/* After the start: a share and a reach through the typed calls. */
static int share_and_reach(cn_api_t *api, const char *agent_id, cn_tunnel_t *t, char *share_id,
                           size_t idlen)
{
    char err[512];
    json_t *spec =
        json_pack("{s:s,s:s,s:[s]}", "name", "check", "expiresIn", "1h", "allowedMethods", "GET");
    json_t *share = NULL, *r = NULL;
    int rc = cn_api_share_create(api, cn_tunnel_id(t), spec, &share, err, sizeof(err));
    json_decref(spec);
    if (rc < 0) {
        say("share-failed: %s%s\n", err, "");
        return rc;
    }
    snprintf(share_id, idlen, "%s", json_string_value(json_object_get(share, "id")));
    json_t *line = json_pack("{s:O?,s:s}", "shareUrl", json_object_get(share, "shareUrl"),
                             "shareId", share_id);
    print_json(line);
    json_decref(line);
    json_decref(share);
    rc = cn_api_tunnel_connect(api, cn_tunnel_id(t), agent_id, 0, &r, err, sizeof(err));
    if (rc < 0) {
        say("reach-failed: %s%s\n", err, "");
        return rc;
    }
    print_json(r);
    json_decref(r);
    return 0;
}

/* At the end: the share's log (written by the hub about once a second),
 * its revocation, and the tunnel's shares. */
static void share_report(cn_api_t *api, cn_tunnel_t *t, const char *share_id)
{
    char err[512], n[24];
    json_t *logs = NULL, *after = NULL, *list = NULL;
    for (int i = 0; i < 50; i++) {
        json_decref(logs);
        logs = NULL;
        if (cn_api_share_logs(api, share_id, &logs, err, sizeof(err)) < 0 ||
            json_array_size(logs) > 0)
            break;
        struct timespec ms100 = {0, 100 * 1000 * 1000};
        nanosleep(&ms100, NULL);
    }
    snprintf(n, sizeof(n), "%zu", json_array_size(logs));
    say("share-logs %s%s\n", n, "");
    if (cn_api_share_revoke(api, share_id, NULL, err, sizeof(err)) < 0 ||
        cn_api_share_get(api, share_id, &after, err, sizeof(err)) < 0 ||
        cn_api_share_list(api, cn_tunnel_id(t), &list, err, sizeof(err)) < 0) {
        say("share-calls-failed: %s%s\n", err, "");
    } else {
        say("share-status %s%s\n", json_string_value(json_object_get(after, "status")), "");
        snprintf(n, sizeof(n), "%zu", json_array_size(list));
        say("shares %s%s\n", n, "");
    }
    json_decref(logs);
    json_decref(after);
    json_decref(list);
}

static const char *opt(int argc, char **argv, const char *key)
{
    size_t n = strlen(key);
    for (int i = 2; i < argc; i++)
        if (!strncmp(argv[i], key, n) && argv[i][n] == '=')
            return argv[i] + n + 1;
    return NULL;
}

static int admin_step(const char *call, int rc, const char *err)
{
    say(rc < 0 ? "fail %s: %s\n" : "ok %s%s\n", call, rc < 0 ? err : "");
    return rc;
}

/* The workspace, token and webhook calls against the hub, with what they
 * must return. The exit status counts the failures. */
static int admin(void)
{
    char err[512] = "";
    cn_api_t *api = cn_api_new(getenv("CONNECT_HUB"), getenv("CONNECT_TOKEN"), err, sizeof(err));
    if (!api)
        return admin_step("new", CN_EINVAL, err) < 0;
    int bad = 0, rc;
    json_t *v = NULL, *hook = NULL, *tok = NULL;
    rc = cn_api_workspace_list(api, &v, err, sizeof(err));
    bad += admin_step("workspace_list", rc == 0 && json_array_size(v) >= 1 ? 0 : -1, err) < 0;
    const char *ws = json_string_value(json_object_get(json_array_get(v, 0), "id"));
    json_t *spec = json_pack("{s:s}", "name", "sdk-check");
    rc = cn_api_token_create(api, ws ? ws : "", spec, &tok, err, sizeof(err));
    json_decref(spec);
    const char *tok_id = json_string_value(json_object_get(tok, "id"));
    bad += admin_step("token_create", rc == 0 && tok_id ? 0 : -1, err) < 0;
    json_decref(v);
    v = NULL;
    rc = cn_api_token_list(api, &v, err, sizeof(err));
    bad += admin_step("token_list", rc == 0 && json_array_size(v) >= 2 ? 0 : -1, err) < 0;
    rc = cn_api_token_delete(api, tok_id ? tok_id : "", NULL, err, sizeof(err));
    bad += admin_step("token_delete", rc, err) < 0;
    spec = json_pack("{s:s,s:[s]}", "url", "http://127.0.0.1:9/hook", "events", "tunnel.*");
    rc = cn_api_webhook_create(api, spec, &hook, err, sizeof(err));
    json_decref(spec);
    const char *hook_id = json_string_value(json_object_get(hook, "id"));
    bad += admin_step("webhook_create", rc == 0 && hook_id ? 0 : -1, err) < 0;
    hook_id = hook_id ? hook_id : "";
    json_decref(v);
    v = NULL;
    rc = cn_api_webhook_get(api, hook_id, &v, err, sizeof(err));
    bad += admin_step("webhook_get", rc == 0 && json_object_get(v, "secret") == NULL ? 0 : -1,
                      err) < 0;
    json_decref(v);
    v = NULL;
    spec = json_pack("{s:b}", "enabled", 0);
    rc = cn_api_webhook_patch(api, hook_id, spec, &v, err, sizeof(err));
    json_decref(spec);
    bad += admin_step("webhook_patch",
                      rc == 0 && json_is_false(json_object_get(v, "enabled")) ? 0 : -1, err) < 0;
    json_decref(v);
    v = NULL;
    rc = cn_api_webhook_list(api, &v, err, sizeof(err));
    bad += admin_step("webhook_list", rc == 0 && json_array_size(v) == 1 ? 0 : -1, err) < 0;
    json_decref(v);
    v = NULL;
    rc = cn_api_webhook_deliveries(api, hook_id, &v, err, sizeof(err));
    bad += admin_step("webhook_deliveries", rc == 0 && json_is_array(v) ? 0 : -1, err) < 0;
    rc = cn_api_webhook_delete(api, hook_id, NULL, err, sizeof(err));
    bad += admin_step("webhook_delete", rc, err) < 0;
    rc = cn_api_webhook_get(api, hook_id, NULL, err, sizeof(err));
    bad += admin_step("webhook_gone", rc == CN_ENOTFOUND ? 0 : -1, err) < 0;
    json_decref(v);
    json_decref(hook);
    json_decref(tok);
    cn_api_free(api);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "admin"))
        return admin();
    if (argc < 2) {
        fprintf(stderr, "usage: sdk_tunnel_check PORT [key=value...] [async]\n");
        return 64;
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    cn_tunnel_options_t o = {
        .local_port = atoi(argv[1]),
        .name = opt(argc, argv, "name"),
        .protocol = opt(argc, argv, "protocol"),
        .http_user = opt(argc, argv, "user"),
        .ttl = opt(argc, argv, "ttl") ? (unsigned)atoi(opt(argc, argv, "ttl")) : 0,
        .config_path = opt(argc, argv, "config"),
        .hub_url = opt(argc, argv, "hub"),
        .on_status = on_status,
    };
    bool async = !strcmp(argv[argc - 1], "async");
    unsigned timeout = opt(argc, argv, "timeout") ? (unsigned)atoi(opt(argc, argv, "timeout")) : 0;
    char err[512] = "", code[16];
    cn_tunnel_t *t = cn_tunnel_new(&o, err, sizeof(err));
    if (!t) {
        say("new-failed: %s%s\n", err, "");
        return 2;
    }
    int rc = async ? cn_tunnel_start_async(t, on_ready, NULL)
                   : cn_tunnel_start(t, timeout, err, sizeof(err));
    if (rc < 0) {
        say("start-failed %s: %s\n", cn_strerror(rc), err);
        say("status-after-failure %s%s\n", cn_tunnel_status_name(cn_tunnel_status(t)), "");
        cn_tunnel_free(t);
        return 2;
    }
    if (!async)
        print_tunnel(t);
    cn_api_t *api = NULL;
    json_t *cfg = NULL;
    char share_id[64] = "";
    if (!async && flag(argc, argv, "share")) {
        const char *agent_id = NULL;
        api = config_api(o.config_path ? o.config_path : getenv("CONNECT_CONFIG"), &agent_id, &cfg);
        if (!api || share_and_reach(api, agent_id, t, share_id, sizeof(share_id)) < 0)
            share_id[0] = '\0';
    }
    int sig;
    sigwait(&stop, &sig);
    if (api && share_id[0])
        share_report(api, t, share_id);
    cn_api_free(api);
    json_decref(cfg);
    rc = cn_tunnel_stop(t, err, sizeof(err));
    snprintf(code, sizeof(code), "%d", rc);
    say(rc < 0 ? "stopped %s: %s\n" : "stopped %s%s\n", code, rc < 0 ? err : "");
    /* Stop is idempotent. */
    if (cn_tunnel_stop(t, err, sizeof(err)) != 0)
        say("second-stop-failed%s%s\n", "", "");
    cn_tunnel_free(t);
    return rc < 0 ? 1 : 0;
}
