/* `connect expose HOST:PORT|PORT`: creates a tunnel for this agent
 * (POST /api/v1/tunnels), runs the agent in-process, prints the tunnel
 * once the hub reports it active, stays in the foreground, and deletes the
 * tunnel on Ctrl-C unless --keep. */
#include "cli.h"

#include "cn_api.h"
#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_log.h"
#include "daemon.h"
#include "cn_id.h"
#include "cn_target.h"
#include "plugins.h"

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

/* Everything one `connect expose` holds; released by expose_close(). */
#define IDLE_UNSET ((unsigned long)-1)

typedef struct expose {
    agent_common_t c;
    const char *name, *protocol, *auth, *target, *plugin_dir;
    char chosen[CN_PLUGIN_NAME_MAX + 1]; /* what protocol auto chose */
    plugins_t *plugins;
    bool is_public, keep;
    unsigned long ttl;
    unsigned long idle_timeout; /* IDLE_UNSET: the hub's default */
    char host[CN_TARGET_HOST_SIZE];
    uint16_t port;
    agent_config_t cfg;
    cn_api_t *api;
    json_t *created;
    char tname[128]; /* the tunnel's name, sanitised for messages */
    expose_state_t st;
} expose_t;

/* Step 1: the options and the target. -1 to go on, else the exit status. */
static int parse_args(expose_t *e, int argc, char **argv)
{
    const cn_opt_t opts[] = {
        {"name", CN_OPT_STRING, &e->name, 0, 0, "NAME",
         "tunnel name, 1-100 characters (default: generated)"},
        {"protocol", CN_OPT_STRING, &e->protocol, 0, 0, "P",
         "auto, tcp, udp, http, https or a plugin: postgresql, mysql, redis, mongodb, ... "
         "(default: auto, chosen by probing the target)"},
        {"plugin-dir", CN_OPT_STRING, &e->plugin_dir, 0, 0, "DIR",
         "protocol plugins (*.so) to load (default: the install directory)"},
        {"public", CN_OPT_FLAG, &e->is_public, 0, 0, NULL,
         "reachable from outside: a hub port (tcp) or NAME.DOMAIN (http)"},
        {"ttl", CN_OPT_UINT, &e->ttl, 1, 2592000, "S", "expire the tunnel after S seconds"},
        {"idle-timeout", CN_OPT_UINT | CN_OPT_ONCE, &e->idle_timeout, 0, 604800, "S",
         "reset a public TCP connection idle for S seconds; 0 = never (default: the hub's)"},
        {"auth", CN_OPT_STRING, &e->auth, 0, 0, "USER",
         "basic auth for HTTP tunnels; the password is generated and shown once"},
        {"keep", CN_OPT_FLAG, &e->keep, 0, 0, NULL, "keep the tunnel when this command exits"},
        AGENT_COMMON_OPTIONS(&e->c),
        CN_OPT_END,
    };
    const cn_args_cmd_t cmd = {
        .prog = "connect",
        .name = "expose",
        .synopsis = "HOST:PORT|PORT [--name N] [--protocol P] [--public] [--ttl S] "
                    "[--idle-timeout S] [--auth USER] [--keep] [--json]",
        .description = "Exposes a local service through the hub: creates a tunnel for this\n"
                       "agent, connects to the hub, prints the tunnel (URL or hub port and\n"
                       "connection string) once it is active, and forwards connections until\n"
                       "Ctrl-C, which deletes the tunnel (unless --keep). A bare PORT means\n"
                       "localhost; IPv6 addresses go in brackets: [::1]:5432.",
        .opts = opts,
        .max_pos = 1,
    };
    const char *pos[1];
    size_t npos = 0;
    int rc = cn_args_front(&cmd, argc, argv, pos, &npos);
    if (rc != CN_ARGS_OK)
        return cn_args_exit(rc);
    if (npos != 1)
        return cli_usage_error("expose", "what should be exposed? give HOST:PORT or PORT");
    e->target = pos[0];
    const char *why = NULL;
    if (!cn_target_parse(e->target, CN_TARGET_BARE_PORT, e->host, &e->port, &why))
        return cli_usage_error("expose", "target '%s': %s", e->target, why);
    return -1;
}

/* Whether tunnel object `t` is what this command would have created: this
 * agent's, the same target, the same public flag, and the same protocol
 * (an unset or "auto" protocol accepts the one the hub recorded). NULL, or
 * why not. */
static const char *adoption_mismatch(const expose_t *e, const json_t *t)
{
    char host[CN_TARGET_HOST_SIZE];
    uint16_t port = 0;
    const char *why = NULL;
    if (strcmp(jstr(t, "agentId", ""), e->cfg.agent_id) != 0)
        return "it belongs to another agent";
    if (!cn_target_parse(jstr(t, "target", ""), 0, host, &port, &why) || strcmp(host, e->host) ||
        port != e->port)
        return "its target differs";
    if (json_is_true(json_object_get(t, "public")) != e->is_public)
        return e->is_public ? "it is not public" : "it is public";
    if (e->protocol && strcmp(e->protocol, "auto") && !e->chosen[0] &&
        strcmp(e->protocol, jstr(t, "protocol", "")))
        return "its protocol differs";
    if (!strcmp(jstr(t, "status", ""), "expired"))
        return "it has expired";
    return NULL;
}

/* The name is taken: adopt the tunnel when it is the one this command
 * would create (a re-run after a crash keeps its id and hub port), else
 * refuse with one line saying what differs. 0 or a CN_E* code. */
static int adopt_tunnel(expose_t *e, char *err, size_t errlen)
{
    json_t *t = NULL;
    int rc = cli_find_tunnel(e->api, e->name, &t, err, errlen);
    if (rc < 0)
        return rc;
    const char *why = adoption_mismatch(e, t);
    if (why) {
        char safe[128], target[160];
        out_sanitize(e->name, safe, sizeof(safe), 100);
        out_sanitize(jstr(t, "target", "?"), target, sizeof(target), 150);
        rc = cn_errf(CN_ESTATE, err, errlen,
                     "a tunnel named '%s' already exists (%s %s, %s): %s; "
                     "choose another --name or remove it with 'connect rm %s'",
                     safe, jstr(t, "protocol", "?"), target, jstr(t, "status", "?"), why, safe);
        json_decref(t);
        return rc;
    }
    cn_log_info("tunnel '%s' exists with this target: adopting it (%s)", e->name,
                jstr(t, "id", ""));
    e->created = t;
    return 0;
}

/* Step 2: the protocol plugins (for protocol auto and health probes), and
 * protocol auto itself: probes the target before anything runs (bounded:
 * half a second for a greeting, two for the probes) and names the plugin it
 * found, which becomes the tunnel's protocol: "http" makes an HTTP tunnel,
 * served by name on the hub's HTTP edge. 0, or the exit status. */
static int choose_protocol(expose_t *e)
{
    e->plugins = cli_plugins(e->plugin_dir);
    if (!e->plugins)
        return cli_fail("out of memory");
    if (e->protocol && strcmp(e->protocol, "auto") != 0)
        return 0;
    plugins_choice_t c;
    int rc = plugins_choose(e->plugins, e->host, e->port, 500, 2000, &c);
    if (rc < 0)
        return cli_fail("protocol auto: %s", cn_strerror(rc));
    cn_log_info("protocol auto: %s (%s: %s)", c.plugin->name, c.how, c.why);
    snprintf(e->chosen, sizeof(e->chosen), "%s", c.plugin->name);
    e->protocol = e->chosen;
    return 0;
}

/* Step 3: record the target as this machine's, then POST /api/v1/tunnels
 * for this agent. 0, or the exit status. */
static int create_tunnel(expose_t *e)
{
    char err[512];
    /* This machine names the target: record it, so that this agent (here
     * or in a `connect agent`) may dial it whatever the hub says. */
    if (agent_config_record_exposed(e->cfg.path, e->host, e->port, err, sizeof(err)) < 0)
        return cli_fail("%s", err);
    json_t *spec = json_pack("{s:{s:s,s:i},s:s,s:b}", "target", "host", e->host, "port",
                             (int)e->port, "agentId", e->cfg.agent_id, "public", e->is_public);
    if (!spec)
        return cli_fail("out of memory");
    if (e->name)
        json_object_set_new(spec, "name", json_string(e->name));
    if (e->protocol)
        json_object_set_new(spec, "protocol", json_string(e->protocol));
    if (e->ttl)
        json_object_set_new(spec, "ttl", json_integer((json_int_t)e->ttl));
    if (e->idle_timeout != IDLE_UNSET)
        json_object_set_new(spec, "idleTimeout", json_integer((json_int_t)e->idle_timeout));
    if (e->auth)
        json_object_set_new(spec, "httpUser", json_string(e->auth));
    int rc = cn_api_tunnel_create(e->api, spec, &e->created, err, sizeof(err));
    json_decref(spec);
    if (rc == CN_ESTATE && e->name) {
        /* 409: the name is taken. After a crash it is our own tunnel. */
        rc = adopt_tunnel(e, err, sizeof(err));
        if (rc < 0)
            return cli_fail("%s", err);
    } else if (rc < 0) {
        return cli_fail("cannot create the tunnel: %s", err);
    }
    const char *id = jstr(e->created, "id", "");
    if (!cn_id_is_uuid(id))
        return cli_fail("the hub answered the tunnel creation without an id");
    snprintf(e->st.id, sizeof(e->st.id), "%s", id);
    out_sanitize(jstr(e->created, "name", id), e->tname, sizeof(e->tname), 100);
    cn_log_info("tunnel %s (%s) created for %s", e->tname, e->st.id, e->target);
    return 0;
}

/* Step 4: serve the tunnel in-process until Ctrl-C, expiry or deletion,
 * printing it once active and reporting status changes. The exit status. */
static int serve_tunnel(expose_t *e)
{
    char err[512];
    expose_state_t *st = &e->st;
    /* This link serves only this tunnel, so a `connect agent` running with
     * the same identity keeps serving the others. */
    const char *serve[1] = {st->id};
    agent_daemon_config_t dc;
    agent_daemon_config_from(&dc, &e->cfg);
    dc.serve = serve;
    dc.nserve = 1;
    dc.plugins = e->plugins;
    dc.on_tunnels = on_tunnels;
    dc.ctx = st;
    agent_daemon_t *d = agent_daemon_new(&dc, err, sizeof(err));
    if (!d)
        return cli_fail("%s", err);
    bool printed = false;
    int status = AGENT_EXIT_OK;
    while (!cli_stop) {
        if (agent_daemon_service(d) < 0) {
            status = cli_fail("the event loop failed");
            break;
        }
        if (st->active && !printed) {
            printed = true;
            snprintf(st->reported, sizeof(st->reported), "active");
            print_tunnel(e->api, e->created, e->c.json, e->keep);
        }
        if (printed && strcmp(st->status, st->reported) != 0) {
            /* Status changes after the tunnel was printed, or an error
             * before it could be: say so on stderr. */
            snprintf(st->reported, sizeof(st->reported), "%s", st->status);
            if (strcmp(st->status, "active") != 0)
                report_status(e->api, st, e->tname);
            else
                cn_log_info("tunnel %s is active again", e->tname);
        } else if (!printed && !strcmp(st->status, "error") && strcmp(st->reported, "error") != 0) {
            snprintf(st->reported, sizeof(st->reported), "%s", st->status);
            report_status(e->api, st, e->tname);
        }
        if (st->gone) {
            status = cli_fail("tunnel %s was deleted", e->tname);
            e->keep = true; /* nothing left to delete */
            break;
        }
        if (st->expired) {
            cn_log_info("tunnel %s expired", e->tname);
            break;
        }
    }
    agent_daemon_shutdown(d, AGENT_DAEMON_DRAIN_MS, &cli_force);
    return status;
}

/* Step 5: delete the tunnel unless --keep (or it is gone). The exit
 * status, given the one serving ended with. */
static int remove_tunnel(expose_t *e, int status)
{
    char err[512];
    if (e->keep) {
        if (status == AGENT_EXIT_OK)
            cn_log_info("tunnel %s kept (remove it with 'connect rm %s')", e->tname, e->st.id);
        return status;
    }
    /* A first Ctrl-C got us here; a second one cancels the delete. */
    cn_api_set_cancel(e->api, cli_force_raised, NULL);
    int rc = cn_api_tunnel_delete(e->api, e->st.id, NULL, err, sizeof(err));
    if (rc < 0 && rc != CN_ENOTFOUND)
        return cli_fail("could not delete tunnel %s: %s (remove it with 'connect rm %s')", e->tname,
                        err, e->st.id);
    cn_log_info("tunnel %s deleted", e->tname);
    return status;
}

static void expose_close(expose_t *e)
{
    cn_api_free(e->api);
    json_decref(e->created);
    plugins_free(e->plugins); /* after the daemon that borrowed it */
    agent_config_wipe(&e->cfg);
}

int cmd_expose(int argc, char **argv)
{
    expose_t e;
    memset(&e, 0, sizeof(e));
    e.idle_timeout = IDLE_UNSET;
    int status = parse_args(&e, argc, argv);
    if (status >= 0)
        return status;
    status = cli_begin(&e.c, AGENT_NEED_AGENT | AGENT_NEED_HUB | AGENT_NEED_TOKEN, &e.cfg, &e.api);
    if (status >= 0)
        return status;
    char err[160];
    if (agent_daemon_check_env(err, sizeof(err)) < 0)
        status = cli_fail("%s", err);
    else
        status = choose_protocol(&e);
    if (status == 0)
        status = create_tunnel(&e);
    if (status == 0)
        status = remove_tunnel(&e, serve_tunnel(&e));
    expose_close(&e);
    return status;
}
