/* A program built against the installed libconnect (pkg-config alone) that
 * drives the embeddable tunnel for test_sdk_tunnel.sh and prints what it
 * sees, one line each, on stdout:
 *   status NAME[: WHY]              every status callback
 *   {"id":...,"url":...,...}        once started (the getters)
 *   start-failed CODE: MESSAGE      when the start fails (exit 2)
 *   ready CODE / stop-in-callback CODE   async mode
 *   stopped CODE[: MESSAGE]         after SIGTERM/SIGINT and cn_tunnel_stop()
 *
 * usage: sdk_tunnel_check PORT [name=N] [protocol=P] [user=U] [ttl=S]
 *                         [timeout=MS] [config=FILE] [hub=URL] [async] */
#define _POSIX_C_SOURCE 200809L
#include <connect/connect.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void print_tunnel(cn_tunnel_t *t)
{
    json_t *o = json_pack(
        "{s:s?,s:s?,s:i,s:s?,s:s?,s:s}", "id", cn_tunnel_id(t), "url", cn_tunnel_url(t), "hubPort",
        cn_tunnel_hub_port(t), "connectionString", cn_tunnel_connection_string(t), "httpPassword",
        cn_tunnel_http_password(t), "status", cn_tunnel_status_name(cn_tunnel_status(t)));
    char *s = json_dumps(o, JSON_COMPACT);
    say("%s%s\n", s ? s : "{}", "");
    free(s);
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

static const char *opt(int argc, char **argv, const char *key)
{
    size_t n = strlen(key);
    for (int i = 2; i < argc; i++)
        if (!strncmp(argv[i], key, n) && argv[i][n] == '=')
            return argv[i] + n + 1;
    return NULL;
}

int main(int argc, char **argv)
{
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
    int sig;
    sigwait(&stop, &sig);
    rc = cn_tunnel_stop(t, err, sizeof(err));
    snprintf(code, sizeof(code), "%d", rc);
    say(rc < 0 ? "stopped %s: %s\n" : "stopped %s%s\n", code, rc < 0 ? err : "");
    /* Stop is idempotent. */
    if (cn_tunnel_stop(t, err, sizeof(err)) != 0)
        say("second-stop-failed%s%s\n", "", "");
    cn_tunnel_free(t);
    return rc < 0 ? 1 : 0;
}
