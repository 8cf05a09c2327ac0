/* `connect enroll --hub URL --token ENROLL`: makes this machine an agent.
 *
 * Generates the agent's static key pair, splits the enrollment token into
 * its single-use secret and the hub's public key (docs/agent-protocol.md),
 * opens a link to the hub pinning that key with {"v":1,"enroll":SECRET} in
 * the handshake, waits for the hub's hello (agent id, workspace, API
 * token), and writes the config file (0600). The secret travels only inside
 * the encrypted handshake, never in a URL or header. */
#include "cli.h"

#include "cn_api.h"
#include "cn_chan.h"
#include "cn_err.h"
#include "cn_log.h"
#include "daemon.h"
#include "parse.h"

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct enroll_state {
    bool done, down;
    int err;
    char why[160];
    bool established;
    char agent_id[AGENT_ID_MAX + 1];
    char workspace_id[AGENT_ID_MAX + 1];
    char token[AGENT_TOKEN_MAX + 1];
    bool bad_hello;
} enroll_state_t;

static void on_hello(void *ctx, agent_daemon_t *d, const json_t *hello)
{
    enroll_state_t *s = ctx;
    const char *id = jstr(hello, "agentId", NULL);
    const char *ws = jstr(hello, "workspaceId", "");
    const char *tok = jstr(hello, "apiToken", "");
    if (!id || !agent_is_uuid(id) || strlen(ws) > AGENT_ID_MAX || strlen(tok) > AGENT_TOKEN_MAX) {
        s->bad_hello = true;
        s->done = true;
        return;
    }
    snprintf(s->agent_id, sizeof(s->agent_id), "%s", id);
    snprintf(s->workspace_id, sizeof(s->workspace_id), "%s", ws);
    snprintf(s->token, sizeof(s->token), "%s", tok);
    s->done = true;
}

static void on_down(void *ctx, agent_daemon_t *d, int err, const char *why, bool established,
                    bool admitted)
{
    enroll_state_t *s = ctx;
    if (s->done)
        return;
    s->down = true;
    s->established = established;
    s->err = err;
    snprintf(s->why, sizeof(s->why), "%s", why ? why : "connection closed");
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads the token from stdin ("--token -"): one line, at most what fits. */
static bool read_token_stdin(char *out, size_t outlen)
{
    if (!fgets(out, (int)outlen, stdin))
        return false;
    out[strcspn(out, "\r\n")] = '\0';
    return out[0] != '\0';
}

int cmd_enroll(int argc, char **argv)
{
    const char *config = NULL, *hub = NULL, *token = NULL, *hub_key = NULL;
    bool json = false, force = false;
    unsigned long timeout = 15;
    const agent_opt_t opts[] = {
        {"hub", AGENT_OPT_STRING, &hub, 0, 0, "URL", "the hub, e.g. http://127.0.0.1:8080"},
        {"token", AGENT_OPT_STRING, &token, 0, 0, "ENROLL",
         "the enrollment token from POST /api/v1/agents ('-': read it from stdin; default: "
         "$CONNECT_ENROLL_TOKEN)"},
        {"hub-key", AGENT_OPT_STRING, &hub_key, 0, 0, "KEY",
         "the hub's public key (base64url), for a token without '.KEY' at its end"},
        {"config", AGENT_OPT_STRING, &config, 0, 0, "FILE",
         "config file to write (default: $CONNECT_CONFIG, else ~/.config/connect/config.json)"},
        {"force", AGENT_OPT_FLAG, &force, 0, 0, NULL, "replace a config that holds another agent"},
        {"timeout", AGENT_OPT_UINT, &timeout, 1, 300, "S",
         "give up after this many seconds (default 15)"},
        {"json", AGENT_OPT_FLAG, &json, 0, 0, NULL,
         "print {\"agentId\",\"workspaceId\",\"hub\",\"config\"} on one line"},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    char err[512];
    int rc = agent_args_parse(opts, argc, argv, NULL, 0, 0, NULL, err, sizeof(err));
    if (rc == AGENT_ARGS_HELP) {
        agent_args_help(stdout, "enroll", "--hub URL --token ENROLL [--config FILE] [--json]",
                        "Enrolls this machine as an agent of the hub: makes a key pair, redeems\n"
                        "the single-use enrollment token over the encrypted agent link, and\n"
                        "writes the agent's id, keys and an API token to the config file\n"
                        "(mode 0600). The token is 'cne_...' followed by '.' and the hub's key.",
                        opts);
        return AGENT_EXIT_OK;
    }
    if (rc < 0)
        return cli_usage_error("enroll", "%s", err);
    const char *env_hub = getenv("CONNECT_HUB");
    if (!hub && env_hub && *env_hub)
        hub = env_hub;
    if (!hub)
        return cli_usage_error("enroll", "--hub URL is required");
    char token_buf[AGENT_ENROLL_SECRET_MAX + 64] = "";
    char joined[AGENT_ENROLL_SECRET_MAX + 64] = "";
    if (token && !strcmp(token, "-")) {
        if (!read_token_stdin(token_buf, sizeof(token_buf)))
            return cli_fail("no enrollment token on standard input");
        token = token_buf;
    }
    const char *env_token = getenv("CONNECT_ENROLL_TOKEN");
    if (!token && env_token && *env_token)
        token = env_token;
    if (!token)
        return cli_usage_error("enroll", "--token ENROLL is required");
    cli_logging(CN_LOG_ERROR);
    cli_signals();

    int status = AGENT_EXIT_FAIL;
    agent_daemon_t *d = NULL;
    enroll_state_t st;
    memset(&st, 0, sizeof(st));
    agent_config_t cfg, old;
    memset(&cfg, 0, sizeof(cfg));
    memset(&old, 0, sizeof(old));
    char secret[AGENT_ENROLL_SECRET_MAX + 1] = "";
    uint8_t hub_pk[32], agent_pk[32];

    cn_api_url_t u;
    if (cn_api_parse_url(hub, &u, err, sizeof(err)) < 0) {
        cli_fail("%s", err);
        goto out;
    }
    if (strlen(hub) > AGENT_URL_MAX) {
        cli_fail("the hub URL is too long");
        goto out;
    }
    if (hub_key) {
        /* A bare secret plus the key given apart (the hub's hubPublicKey):
         * the same checks apply to the two joined. */
        if (strchr(token, '.')) {
            cli_fail("give the hub key either in the token or with --hub-key, not both");
            goto out;
        }
        if ((size_t)snprintf(joined, sizeof(joined), "%s.%s", token, hub_key) >= sizeof(joined)) {
            cli_fail("the enrollment token is too long");
            goto out;
        }
        token = joined;
    }
    if (agent_split_enroll_token(token, secret, hub_pk, err, sizeof(err)) < 0) {
        cli_fail("%s", err);
        goto out;
    }
    if (agent_config_path(config, cfg.path, sizeof(cfg.path), err, sizeof(err)) < 0) {
        cli_fail("%s", err);
        goto out;
    }
    rc = agent_config_load(cfg.path, &old, err, sizeof(err));
    if (rc < 0 && rc != CN_ENOTFOUND) {
        cli_fail("%s", err);
        goto out;
    }
    if (rc == 0 && old.agent_id[0] && !force) {
        cli_fail("%s already holds agent %s; use --config FILE for another agent, or --force "
                 "to replace it",
                 cfg.path, old.agent_id);
        goto out;
    }
    if (cn_chan_keypair(agent_pk, cfg.agent_sk) < 0) {
        cli_fail("cannot generate a key pair");
        goto out;
    }
    memcpy(cfg.hub_pk, hub_pk, 32);
    cfg.have_keys = true;
    snprintf(cfg.hub, sizeof(cfg.hub), "%s", hub);

    agent_daemon_config_t dc = {
        .hub_url = hub,
        .agent_sk = cfg.agent_sk,
        .hub_pk = hub_pk,
        .enroll = secret,
        .on_hello = on_hello,
        .on_down = on_down,
        .ctx = &st,
    };
    dc.timing.handshake_ms = (uint32_t)(timeout * 1000);
    d = agent_daemon_new(&dc, err, sizeof(err));
    sodium_memzero(secret, sizeof(secret));
    if (!d) {
        cli_fail("%s", err);
        goto out;
    }
    uint64_t deadline = mono_ms() + timeout * 1000;
    while (!st.done && !st.down && !cli_stop && mono_ms() < deadline)
        if (agent_daemon_service(d) < 0)
            break;

    if (st.done && !st.bad_hello) {
        snprintf(cfg.agent_id, sizeof(cfg.agent_id), "%s", st.agent_id);
        snprintf(cfg.workspace_id, sizeof(cfg.workspace_id), "%s", st.workspace_id);
        snprintf(cfg.token, sizeof(cfg.token), "%s", st.token);
        if (agent_config_save(cfg.path, &cfg, err, sizeof(err)) < 0) {
            /* The secret is spent: say what the agent is so it can be
             * deleted or the config rebuilt by hand. */
            cli_fail("enrolled as agent %s but %s", st.agent_id, err);
            goto out;
        }
        if (json) {
            json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "agentId", cfg.agent_id, "workspaceId",
                                  cfg.workspace_id, "hub", cfg.hub, "config", cfg.path);
            out_json(o);
            json_decref(o);
        } else {
            char fp[CN_CHAN_FINGERPRINT_SIZE];
            cn_chan_fingerprint(agent_pk, fp);
            printf("Enrolled agent %s (key %s) in workspace %s\n"
                   "Config written to %s (keep it private: it holds the agent's key and an API "
                   "token)\n",
                   cfg.agent_id, fp, cfg.workspace_id[0] ? cfg.workspace_id : "?", cfg.path);
            if (!st.token[0])
                printf("The hub sent no API token: pass --token or CONNECT_TOKEN to 'connect ls' "
                       "and friends.\n");
        }
        status = AGENT_EXIT_OK;
    } else if (st.bad_hello) {
        cli_fail("the hub at %s sent a malformed hello", hub);
    } else if (cli_stop) {
        cli_fail("interrupted");
    } else if (st.down) {
        if (!strcmp(st.why, "could not connect to the hub") ||
            !strcmp(st.why, "could not start connecting"))
            cli_fail("cannot reach the hub at %s", hub);
        else if (!st.established && st.err == CN_ETIMEOUT)
            cli_fail("the hub at %s did not complete the handshake in time", hub);
        else if (!st.established)
            cli_fail("the hub at %s did not accept the agent connection: it has no agent "
                     "endpoint at %s/agent, or its key is not the one in the token (%s)",
                     hub, u.base, st.why);
        else
            cli_fail("the hub at %s refused the enrollment: the token is unknown, used or "
                     "expired, or was made by another hub (%s)",
                     hub, st.why);
    } else {
        cli_fail("the hub at %s did not answer within %lu s", hub, timeout);
    }
out:
    if (d) {
        agent_daemon_stop(d);
        uint64_t until = mono_ms() + 2000;
        while (!agent_daemon_idle(d) && mono_ms() < until)
            agent_daemon_service(d);
        agent_daemon_free(d);
    }
    sodium_memzero(secret, sizeof(secret));
    sodium_memzero(token_buf, sizeof(token_buf));
    sodium_memzero(joined, sizeof(joined));
    sodium_memzero(&st, sizeof(st));
    agent_config_wipe(&cfg);
    agent_config_wipe(&old);
    return status;
}
