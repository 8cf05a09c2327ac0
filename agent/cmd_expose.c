/* `connect expose HOST:PORT|PORT`: creates a tunnel for this agent
 * (POST /api/v1/tunnels), runs the agent in-process, prints the tunnel
 * once the hub reports it active, stays in the foreground, and deletes the
 * tunnel on Ctrl-C unless --keep. */
#include "cli.h"

#include "cn_api.h"
#include "cn_err.h"
#include "cn_log.h"
#include "daemon.h"
#include "parse.h"

#include <jansson.h>
#include <string.h>
#include <time.h>

typedef struct expose_state {
    char id[AGENT_TUNNEL_ID_LEN + 1];
    char status[16];   /* as the hub last reported it */
    char reported[16]; /* the last status we told the user about */
    bool seen;         /* our tunnel was in a list from the hub */
    bool active;       /* ... with status active: time to print */
    bool gone;         /* ... and then left the list: deleted elsewhere */
    bool expired;
} expose_state_t;

static void on_tunnels(void *ctx, agent_daemon_t *d)
{
    expose_state_t *s = ctx;
    const agent_tunnel_t *t = agent_allowlist_find(agent_daemon_tunnels(d), s->id, strlen(s->id));
    if (!t) {
        if (s->seen)
            s->gone = true;
        return;
    }
    s->seen = true;
    snprintf(s->status, sizeof(s->status), "%s", t->status);
    if (!strcmp(t->status, "active"))
        s->active = true;
    else if (!strcmp(t->status, "expired"))
        s->expired = true;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Prints the tunnel as the hub now describes it (falling back to what the
 * create call returned), keeping the show-once password from the create. */
static void print_tunnel(cn_api_t *api, const json_t *created, bool json, bool keep)
{
    char err[256];
    json_t *now = NULL;
    if (cn_api_tunnel_get(api, jstr(created, "id", ""), &now, err, sizeof(err)) < 0) {
        cn_log_warn("could not refresh the tunnel: %s", err);
        now = json_deep_copy(created);
        json_object_set_new(now, "status", json_string("active"));
    }
    const char *pw = jstr(created, "httpPassword", NULL);
    if (pw)
        json_object_set_new(now, "httpPassword", json_string(pw));
    if (json) {
        out_json(now);
    } else {
        out_tunnel(stdout, now);
        printf(keep ? "Forwarding until Ctrl-C (the tunnel is kept afterwards).\n"
                    : "Forwarding until Ctrl-C, which deletes the tunnel.\n");
        fflush(stdout);
    }
    json_decref(now);
}

/* Tells the user why the tunnel is not active, with the hub's lastError. */
static void report_status(cn_api_t *api, const expose_state_t *s, const char *tname)
{
    char err[256];
    json_t *t = NULL;
    const char *why = NULL;
    if (cn_api_tunnel_get(api, s->id, &t, err, sizeof(err)) == 0)
        why = jstr(t, "lastError", NULL);
    char safe[256];
    out_sanitize(why ? why : "", safe, sizeof(safe), 200);
    if (!strcmp(s->status, "error"))
        cn_log_warn("tunnel %s is in error%s%s", tname, *safe ? ": " : "", safe);
    else
        cn_log_info("tunnel %s is %s%s%s", tname, s->status, *safe ? ": " : "", safe);
    json_decref(t);
}

int cmd_expose(int argc, char **argv)
{
    agent_common_t c = {0};
    const char *name = NULL, *protocol = NULL, *auth = NULL;
    bool is_public = false, keep = false;
    unsigned long ttl = 0;
    const agent_opt_t opts[] = {
        {"name", AGENT_OPT_STRING, &name, 0, 0, "NAME",
         "tunnel name, 1-100 characters (default: generated)"},
        {"protocol", AGENT_OPT_STRING, &protocol, 0, 0, "P",
         "auto, tcp, udp, http or https (default: auto)"},
        {"public", AGENT_OPT_FLAG, &is_public, 0, 0, NULL,
         "reachable from outside: a hub port (tcp) or NAME.DOMAIN (http)"},
        {"ttl", AGENT_OPT_UINT, &ttl, 1, 2592000, "S", "expire the tunnel after S seconds"},
        {"auth", AGENT_OPT_STRING, &auth, 0, 0, "USER",
         "basic auth for HTTP tunnels; the password is generated and shown once"},
        {"keep", AGENT_OPT_FLAG, &keep, 0, 0, NULL, "keep the tunnel when this command exits"},
        AGENT_COMMON_OPTIONS(&c),
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    const char *pos[1];
    size_t npos = 0;
    char err[512];
    int rc = agent_args_parse(opts, argc, argv, pos, 0, 1, &npos, err, sizeof(err));
    if (rc == AGENT_ARGS_HELP) {
        agent_args_help(stdout, "expose",
                        "HOST:PORT|PORT [--name N] [--protocol P] [--public] [--ttl S] "
                        "[--auth USER] [--keep] [--json]",
                        "Exposes a local service through the hub: creates a tunnel for this\n"
                        "agent, connects to the hub, prints the tunnel (URL or hub port and\n"
                        "connection string) once it is active, and forwards connections until\n"
                        "Ctrl-C, which deletes the tunnel (unless --keep). A bare PORT means\n"
                        "localhost; IPv6 addresses go in brackets: [::1]:5432.",
                        opts);
        return AGENT_EXIT_OK;
    }
    if (rc < 0)
        return cli_usage_error("expose", "%s", err);
    if (npos != 1)
        return cli_usage_error("expose", "what should be exposed? give HOST:PORT or PORT");
    char host[AGENT_HOST_MAX + 1];
    uint16_t port = 0;
    if (agent_parse_target(pos[0], host, &port, err, sizeof(err)) < 0)
        return cli_usage_error("expose", "target '%s': %s", pos[0], err);
    cli_logging(CN_LOG_INFO);
    cli_signals();

    agent_config_t cfg;
    if (agent_config_resolve(&c, AGENT_NEED_AGENT | AGENT_NEED_HUB | AGENT_NEED_TOKEN, &cfg, err,
                             sizeof(err)) < 0)
        return cli_fail("%s", err);
    int status = AGENT_EXIT_FAIL;
    agent_daemon_t *d = NULL;
    json_t *spec = NULL, *created = NULL;
    expose_state_t st;
    memset(&st, 0, sizeof(st));
    cn_api_t *api = cli_api(&cfg, true);
    if (!api)
        goto out;

    /* This machine names the target: record it, so that this agent (here
     * or in a `connect agent`) may dial it whatever the hub says. */
    if (agent_config_record_exposed(cfg.path, host, port, err, sizeof(err)) < 0) {
        cli_fail("%s", err);
        goto out;
    }
    spec = json_pack("{s:{s:s,s:i},s:s,s:b}", "target", "host", host, "port", (int)port, "agentId",
                     cfg.agent_id, "public", is_public);
    if (!spec) {
        cli_fail("out of memory");
        goto out;
    }
    if (name)
        json_object_set_new(spec, "name", json_string(name));
    if (protocol)
        json_object_set_new(spec, "protocol", json_string(protocol));
    if (ttl)
        json_object_set_new(spec, "ttl", json_integer((json_int_t)ttl));
    if (auth)
        json_object_set_new(spec, "httpUser", json_string(auth));
    rc = cn_api_tunnel_create(api, spec, &created, err, sizeof(err));
    if (rc < 0) {
        cli_fail("cannot create the tunnel: %s", err);
        goto out;
    }
    const char *id = jstr(created, "id", "");
    if (!agent_is_uuid(id)) {
        cli_fail("the hub answered the tunnel creation without an id");
        goto out;
    }
    snprintf(st.id, sizeof(st.id), "%s", id);
    char tname[128];
    out_sanitize(jstr(created, "name", id), tname, sizeof(tname), 100);
    cn_log_info("tunnel %s (%s) created for %s", tname, st.id, pos[0]);

    /* This link serves only this tunnel, so a `connect agent` running with
     * the same identity keeps serving the others. */
    const char *serve[1] = {st.id};
    agent_daemon_config_t dc = {
        .hub_url = cfg.hub,
        .agent_sk = cfg.agent_sk,
        .hub_pk = cfg.hub_pk,
        .agent_id = cfg.agent_id,
        .serve = serve,
        .nserve = 1,
        .policy_config = cfg.path,
        .on_tunnels = on_tunnels,
        .ctx = &st,
    };
    d = agent_daemon_new(&dc, err, sizeof(err));
    if (!d) {
        cli_fail("%s", err);
        goto cleanup;
    }
    bool printed = false;
    status = AGENT_EXIT_OK;
    while (!cli_stop) {
        if (agent_daemon_service(d) < 0) {
            status = cli_fail("the event loop failed");
            break;
        }
        if (st.active && !printed) {
            printed = true;
            snprintf(st.reported, sizeof(st.reported), "active");
            print_tunnel(api, created, c.json, keep);
        }
        if (printed && strcmp(st.status, st.reported) != 0) {
            /* Status changes after the tunnel was printed, or an error
             * before it could be: say so on stderr. */
            snprintf(st.reported, sizeof(st.reported), "%s", st.status);
            if (strcmp(st.status, "active") != 0)
                report_status(api, &st, tname);
            else
                cn_log_info("tunnel %s is active again", tname);
        } else if (!printed && !strcmp(st.status, "error") && strcmp(st.reported, "error") != 0) {
            snprintf(st.reported, sizeof(st.reported), "%s", st.status);
            report_status(api, &st, tname);
        }
        if (st.gone) {
            status = cli_fail("tunnel %s was deleted", tname);
            keep = true; /* nothing left to delete */
            break;
        }
        if (st.expired) {
            cn_log_info("tunnel %s expired", tname);
            break;
        }
    }
cleanup:
    if (d) {
        agent_daemon_stop(d);
        uint64_t until = mono_ms() + 3000;
        while (!agent_daemon_idle(d) && mono_ms() < until && !cli_force)
            agent_daemon_service(d);
        agent_daemon_free(d);
        d = NULL;
    }
    if (!keep) {
        /* A first Ctrl-C got us here; a second one cancels the delete. */
        cn_api_set_cancel(api, cli_force_raised, NULL);
        rc = cn_api_tunnel_delete(api, st.id, NULL, err, sizeof(err));
        if (rc < 0 && rc != CN_ENOTFOUND)
            status = cli_fail("could not delete tunnel %s: %s (remove it with 'connect rm %s')",
                              tname, err, st.id);
        else
            cn_log_info("tunnel %s deleted", tname);
    } else if (status == AGENT_EXIT_OK) {
        cn_log_info("tunnel %s kept (remove it with 'connect rm %s')", tname, st.id);
    }
out:
    agent_daemon_free(d);
    cn_api_free(api);
    json_decref(spec);
    json_decref(created);
    agent_config_wipe(&cfg);
    return status;
}
