/* `connect reach TUNNEL [--port N]`: asks the hub for the reach of a tunnel
 * of the workspace (POST /api/v1/tunnels/{id}/connect: local port,
 * connection string, the exposing agent's key), binds a local port, runs
 * the agent in-process on a link that serves no tunnel, prints the
 * connection string once the hub admitted it, and turns every local
 * connection into an end-to-end encrypted stream to the exposing agent
 * until Ctrl-C.
 *
 * `connect reach HUB/share/TOKEN` redeems a TCP share instead: no config,
 * enrollment or workspace token; the share token buys the same answer
 * (POST /api/v1/share-redemptions, with the hub's key) and a link made
 * with a fresh key of this process that may reach only the shared tunnel
 * (docs/security.md). When the share is revoked or expires the hub closes
 * that link; the process then exits non-zero with the hub's words, while a
 * link merely lost (a hub restart, the network) is reconnected as ever. */
#include "cli.h"

#include "cn_api.h"
#include "cn_chan.h"
#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_id.h"
#include "cn_log.h"
#include "daemon.h"
#include "reach.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* Everything one `connect reach` holds; released by cmd_reach(). */
typedef struct reach {
    agent_common_t c;
    const char *ref;
    unsigned long port; /* --port, 0 = choose */
    agent_config_t cfg;
    cn_api_t *api;
    agent_reach_info_t info;
    /* A share URL: the hub's URL, the token, a fresh key of this process. */
    bool share;
    char token[128];
    uint8_t share_sk[32];
    /* The share's link went down in a way the hub may have chosen (not a
     * failed connect): ask the hub whether the share still lives. */
    bool share_check;
} reach_t;

/* Step 1: the options. -1 to go on, else the exit status. */
static int parse_args(reach_t *r, int argc, char **argv)
{
    const cn_opt_t opts[] = {
        {"port", CN_OPT_UINT, &r->port, 1, 65535, "N",
         "local port to bind (default: the target's port + 10000 when free, else any)"},
        AGENT_COMMON_OPTIONS(&r->c),
        CN_OPT_END,
    };
    const cn_args_cmd_t cmd = {
        .prog = "connect",
        .name = "reach",
        .synopsis = "TUNNEL|SHARE_URL [--port N] [--json]",
        .description =
            "Reaches a tunnel of the workspace (name or id) on a local port: binds\n"
            "127.0.0.1:N, prints the connection string, and carries every local\n"
            "connection to the agent that exposes the tunnel, end-to-end encrypted\n"
            "between the two agents (the hub relays bytes it cannot read), until Ctrl-C.\n"
            "A SHARE_URL (HUB/share/TOKEN, from `connect share` of a TCP tunnel) needs\n"
            "no enrollment or token: the share alone admits this process.",
        .opts = opts,
        .max_pos = 1,
    };
    const char *pos[1];
    size_t npos = 0;
    int rc = cn_args_front(&cmd, argc, argv, pos, &npos);
    if (rc != CN_ARGS_OK)
        return cn_args_exit(rc);
    if (npos != 1)
        return cli_usage_error("reach", "which tunnel? give its name or id");
    r->ref = pos[0];
    return -1;
}

/* Splits HUB/share/TOKEN into the hub's URL (cfg->hub) and the token.
 * False when `ref` is not a share URL (then it names a tunnel). */
static bool parse_share_url(reach_t *r)
{
    const char *u = r->ref;
    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
        return false;
    const char *at = strstr(u, "/share/");
    if (!at)
        return false;
    size_t base = (size_t)(at - u), tlen = strlen(at + 7);
    while (tlen && at[7 + tlen - 1] == '/')
        tlen--;
    if (!tlen || tlen >= sizeof(r->token) || base >= sizeof(r->cfg.hub))
        return false;
    memcpy(r->cfg.hub, u, base);
    r->cfg.hub[base] = '\0';
    memcpy(r->token, at + 7, tlen);
    r->token[tlen] = '\0';
    return true;
}

/* The share's answer: what agent_reach_open() gets from the tunnel's
 * reach, plus the hub's key for the link. */
static int redeem(reach_t *r, int port, json_t **out, uint8_t key[32], char *err, size_t errlen)
{
    json_t *body = json_pack("{s:s}", "token", r->token);
    if (body && port)
        json_object_set_new(body, "localPort", json_integer(port));
    *out = NULL;
    int rc = cn_api_call(r->api, "POST", "/api/v1/share-redemptions", body, NULL, out, err, errlen);
    json_decref(body);
    if (rc == 0 && (cn_id_key_from_b64url(jstr(*out, "peerKey", ""), key) < 0 ||
                    cn_id_key_from_b64url(jstr(*out, "hubPublicKey", ""), r->cfg.hub_pk) < 0))
        rc = cn_errf(CN_EPROTO, err, errlen, "the hub answered without the keys");
    if (rc < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static void fill_share_info(reach_t *r, const json_t *a, int port)
{
    agent_reach_info_t *i = &r->info;
    i->port = port;
    snprintf(i->tunnel_id, sizeof(i->tunnel_id), "%s", jstr(a, "tunnelId", ""));
    out_sanitize(jstr(a, "name", "share"), i->name, sizeof(i->name), 100);
    snprintf(i->protocol, sizeof(i->protocol), "%s", jstr(a, "protocol", "tcp"));
    out_sanitize(jstr(a, "connectionString", ""), i->connection_string,
                 sizeof(i->connection_string), 200);
}

/* The link of a share went down. The hub closes it when the share is
 * revoked or expires, and refuses a reconnect then; a lost connection or a
 * hub restart looks the same from here, so the answer comes from asking
 * (share_gone()). A connect that failed says nothing: retry quietly. */
static void share_down(void *ctx, agent_daemon_t *d, const agent_down_t *down)
{
    (void)d;
    reach_t *r = ctx;
    if (down->reason != CN_LINK_CONNECT_FAILED && down->reason != CN_LINK_CLOSED_LOCALLY)
        r->share_check = true;
}

/* Whether the hub says the share is gone (404: no such share any more,
 * 410: revoked or expired; both CN_ENOTFOUND), with its words in `why`.
 * Anything else (the hub unreachable, restarting, busy) is no answer: the
 * daemon keeps reconnecting. */
static bool share_gone(reach_t *r, char *why, size_t whylen)
{
    json_t *resp = NULL;
    int rc = cn_api_share_redeem(r->api, r->token, 0, &resp, why, whylen);
    json_decref(resp);
    return rc == CN_ENOTFOUND;
}

/* Redeems the share and binds its local port in a fresh daemon. */
static int share_open(reach_t *r, agent_daemon_t **dp, char *err, size_t errlen)
{
    json_t *a = NULL;
    uint8_t key[32], pub[32];
    agent_daemon_t *d = NULL;
    int rc = redeem(r, (int)r->port, &a, key, err, errlen);
    if (rc < 0)
        return rc;
    rc = cn_chan_keypair(pub, r->share_sk);
    if (rc < 0) {
        snprintf(err, errlen, "cannot make a key");
        goto out;
    }
    agent_daemon_config_t dc = {
        .hub_url = r->cfg.hub,
        .ca_file = r->cfg.ca_file[0] ? r->cfg.ca_file : NULL,
        .allow_insecure = r->cfg.allow_insecure,
        .agent_sk = r->share_sk,
        .hub_pk = r->cfg.hub_pk,
        .share = r->token,
        .on_down = share_down,
        .ctx = r,
    };
    d = agent_daemon_new(&dc, err, errlen);
    if (!d) {
        rc = CN_EIO;
        goto out;
    }
    int want = (int)json_integer_value(json_object_get(a, "localPort"));
    fill_share_info(r, a, 0);
    agent_reach_config_t rcfg = {
        .tunnel_id = r->info.tunnel_id,
        .name = r->info.name,
        .peer_key = key,
        .host = AGENT_REACH_HOST,
        .port = r->port ? (int)r->port : want,
    };
    int bound = 0;
    rc = agent_daemon_reach(d, &rcfg, &bound, err, errlen);
    if (rc < 0 && !r->port && want) {
        rcfg.port = 0; /* the suggestion is taken: any free port */
        rc = agent_daemon_reach(d, &rcfg, &bound, err, errlen);
    }
    if (rc == 0 && bound != want) {
        /* The connection string names the port: ask again for this one. */
        json_decref(a);
        rc = redeem(r, bound, &a, key, err, errlen);
    }
    if (rc == 0)
        fill_share_info(r, a, bound);
out:
    json_decref(a);
    if (rc < 0) {
        agent_daemon_free(d);
        d = NULL;
    }
    *dp = d;
    return rc;
}

static void print_ready(const reach_t *r)
{
    const agent_reach_info_t *i = &r->info;
    if (r->c.json) {
        json_t *line = json_pack("{s:i,s:s,s:s,s:s,s:s}", "localPort", i->port, "connectionString",
                                 i->connection_string, "tunnelId", i->tunnel_id, "name", i->name,
                                 "protocol", i->protocol);
        out_json(line);
        json_decref(line);
        return;
    }
    printf("Reaching tunnel %s on %s%s:%d\n", i->name, !strcmp(i->protocol, "udp") ? "UDP " : "",
           AGENT_REACH_HOST, i->port);
    printf("  connection string: %s\n", i->connection_string);
    printf("Forwarding until Ctrl-C (end-to-end encrypted to the exposing agent).\n");
    fflush(stdout);
}

/* Step 4: serve until Ctrl-C. The exit status. */
static int serve(reach_t *r)
{
    char err[512];
    int status = 0;
    agent_daemon_t *d = NULL;
    if (r->share) {
        if (share_open(r, &d, err, sizeof(err)) < 0)
            return cli_fail("cannot redeem the share: %s", err);
        goto run;
    }
    agent_daemon_config_t dc;
    agent_daemon_config_from(&dc, &r->cfg);
    dc.policy_config = NULL; /* serves nothing, dials nothing */
    dc.serve_none = true;    /* this process only reaches */
    d = agent_daemon_new(&dc, err, sizeof(err));
    if (!d)
        return cli_fail("%s", err);
    if (agent_reach_open(r->api, d, &r->cfg, r->ref, (int)r->port, &r->info, err, sizeof(err)) < 0)
        status = cli_fail("cannot reach %s: %s", r->ref, err);
run:;
    bool printed = false;
    while (status == 0 && !cli_stop) {
        if (agent_daemon_service(d) < 0) {
            status = cli_fail("the event loop failed");
            break;
        }
        if (!printed && agent_daemon_connected(d)) {
            printed = true;
            print_ready(r);
        }
        if (r->share_check) {
            r->share_check = false;
            if (share_gone(r, err, sizeof(err))) {
                status = cli_fail("the share is no longer valid: %s", err);
                break;
            }
        }
    }
    agent_daemon_shutdown(d, AGENT_DAEMON_DRAIN_MS, &cli_force);
    return status;
}

int cmd_reach(int argc, char **argv)
{
    reach_t r;
    memset(&r, 0, sizeof(r));
    int status = parse_args(&r, argc, argv);
    if (status >= 0)
        return status;
    r.share = strncmp(r.ref, "http://", 7) == 0 || strncmp(r.ref, "https://", 8) == 0;
    if (r.share) {
        /* Nothing from a config is needed, and no workspace token may go
         * along: only TLS settings. */
        char err[512];
        cli_logging(r.c.log_level, CN_LOG_INFO);
        cli_signals();
        if (agent_config_resolve(&r.c, 0, &r.cfg, err, sizeof(err)) < 0)
            return cli_fail("%s", err);
        if (!parse_share_url(&r)) {
            agent_config_wipe(&r.cfg);
            return cli_usage_error("reach", "a share URL looks like HUB/share/TOKEN");
        }
        sodium_memzero(r.cfg.token, sizeof(r.cfg.token));
        r.api = cli_api(&r.cfg, true);
        if (!r.api) {
            agent_config_wipe(&r.cfg);
            return AGENT_EXIT_FAIL;
        }
    } else {
        status =
            cli_begin(&r.c, AGENT_NEED_AGENT | AGENT_NEED_HUB | AGENT_NEED_TOKEN, &r.cfg, &r.api);
        if (status >= 0)
            return status;
    }
    status = serve(&r);
    cn_api_free(r.api);
    agent_config_wipe(&r.cfg);
    sodium_memzero(r.token, sizeof(r.token));
    sodium_memzero(r.share_sk, sizeof(r.share_sk));
    return status;
}
