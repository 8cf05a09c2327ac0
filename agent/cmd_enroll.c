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
#include "cn_time.h"
#include "cn_id.h"

#include <jansson.h>
#include <sodium.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct enroll_state {
    bool done, down;
    int err;
    cn_link_reason_t reason;
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
    if (!id || !cn_id_is_uuid(id) || strlen(ws) > AGENT_ID_MAX || strlen(tok) > AGENT_TOKEN_MAX) {
        s->bad_hello = true;
        s->done = true;
        return;
    }
    snprintf(s->agent_id, sizeof(s->agent_id), "%s", id);
    snprintf(s->workspace_id, sizeof(s->workspace_id), "%s", ws);
    snprintf(s->token, sizeof(s->token), "%s", tok);
    s->done = true;
}

static void on_down(void *ctx, agent_daemon_t *d, const agent_down_t *down)
{
    enroll_state_t *s = ctx;
    if (s->done)
        return;
    s->down = true;
    s->established = down->established;
    s->err = down->err;
    s->reason = down->reason;
    snprintf(s->why, sizeof(s->why), "%s", down->why ? down->why : "connection closed");
}

/* Everything one enrollment holds; wiped by enroll_close(). */
typedef struct enroll {
    /* options */
    const char *config, *hub, *token, *token_file, *hub_key, *ca_file;
    bool json, force, allow_insecure;
    unsigned long timeout;
    int log_level;
    /* inputs, checked */
    char token_buf[AGENT_ENROLL_SECRET_MAX + 64];
    char joined[AGENT_ENROLL_SECRET_MAX + 64];
    char secret[AGENT_ENROLL_SECRET_MAX + 1];
    cn_api_url_t url;
    uint8_t hub_pk[32], agent_pk[32];
    agent_config_t cfg, old;
    /* the redemption */
    agent_daemon_t *d;
    enroll_state_t st;
} enroll_t;

/* Step 1: the options. -1 to go on, else the exit status. */
static int parse_args(enroll_t *e, int argc, char **argv)
{
    const cn_opt_t opts[] = {
        {"hub", CN_OPT_STRING, &e->hub, 0, 0, "URL", "the hub, e.g. http://127.0.0.1:8080"},
        {"token", CN_OPT_STRING | CN_OPT_SECRET, &e->token, 0, 0, "ENROLL",
         "the enrollment token from POST /api/v1/agents ('-': read it from stdin; default: "
         "$CONNECT_ENROLL_TOKEN)"},
        {"token-file", CN_OPT_STRING, &e->token_file, 0, 0, "FILE",
         "read the enrollment token from the first line of FILE"},
        {"hub-key", CN_OPT_STRING, &e->hub_key, 0, 0, "KEY",
         "the hub's public key (base64url), for a token without '.KEY' at its end"},
        {"config", CN_OPT_STRING, &e->config, 0, 0, "FILE",
         "config file to write (default: $CONNECT_CONFIG, else ~/.config/connect/config.json)"},
        {"ca-file", CN_OPT_STRING, &e->ca_file, 0, 0, "FILE",
         "verify an https hub against these CA certificates (PEM) instead of the system's, "
         "and remember it in the config (default: $CONNECT_CA_FILE)"},
        {"allow-insecure", CN_OPT_FLAG, &e->allow_insecure, 0, 0, NULL,
         "permit a plain http:// hub that is not on loopback, and remember it in the config"},
        {"force", CN_OPT_FLAG, &e->force, 0, 0, NULL, "replace a config that holds another agent"},
        {"timeout", CN_OPT_UINT, &e->timeout, 1, 300, "S",
         "give up after this many seconds (default 15)"},
        {"json", CN_OPT_FLAG, &e->json, 0, 0, NULL,
         "print {\"agentId\",\"workspaceId\",\"hub\",\"config\"} on one line"},
        {"log-level", CN_OPT_CHOICE, &e->log_level, 0, 0, AGENT_LOG_LEVELS,
         "log threshold on stderr (default: $CONNECT_LOG, else error)"},
        CN_OPT_END,
    };
    const cn_args_cmd_t cmd = {
        .prog = "connect",
        .name = "enroll",
        .synopsis = "--hub URL --token ENROLL [--config FILE] [--json]",
        .description = "Enrolls this machine as an agent of the hub: makes a key pair, redeems\n"
                       "the single-use enrollment token over the encrypted agent link, and\n"
                       "writes the agent's id, keys and an API token to the config file\n"
                       "(mode 0600). The token is 'cne_...' followed by '.' and the hub's key.",
        .opts = opts,
    };
    int rc = cn_args_front(&cmd, argc, argv, NULL, NULL);
    return rc == CN_ARGS_OK ? -1 : cn_args_exit(rc);
}

/* Step 2: the hub and the token, from flags, the environment or stdin.
 * -1 to go on, else the exit status. */
static int resolve_inputs(enroll_t *e)
{
    const char *env_hub = getenv("CONNECT_HUB");
    if (!e->hub && env_hub && *env_hub)
        e->hub = env_hub;
    if (!e->hub)
        return cli_usage_error("enroll", "--hub URL is required");
    if (e->token && e->token_file)
        return cli_usage_error("enroll", "give --token or --token-file, not both");
    if (e->token_file || (e->token && !strcmp(e->token, "-"))) {
        char err[512];
        if (agent_read_secret(e->token_file ? e->token_file : "-", e->token_buf,
                              sizeof(e->token_buf), err, sizeof(err)) < 0)
            return cli_fail("%s", err);
        e->token = e->token_buf;
    }
    const char *env_token = getenv("CONNECT_ENROLL_TOKEN");
    if (!e->token && env_token && *env_token)
        e->token = env_token;
    if (!e->token)
        return cli_usage_error("enroll", "--token ENROLL is required");
    const char *env_ca = getenv("CONNECT_CA_FILE");
    if (!e->ca_file && env_ca && *env_ca)
        e->ca_file = env_ca;
    return -1;
}

/* Step 3: check the URL and the token, refuse to overwrite another agent's
 * config, and make the key pair. 0, or the exit status after the message. */
static int check_inputs(enroll_t *e)
{
    char err[512];
    if (cn_api_parse_url(e->hub, &e->url, err, sizeof(err)) < 0)
        return cli_fail("%s", err);
    if (strlen(e->hub) > AGENT_URL_MAX)
        return cli_fail("the hub URL is too long");
    if (e->hub_key) {
        /* A bare secret plus the key given apart (the hub's hubPublicKey):
         * the same checks apply to the two joined. */
        if (strchr(e->token, '.'))
            return cli_fail("give the hub key either in the token or with --hub-key, not both");
        if ((size_t)snprintf(e->joined, sizeof(e->joined), "%s.%s", e->token, e->hub_key) >=
            sizeof(e->joined))
            return cli_fail("the enrollment token is too long");
        e->token = e->joined;
    }
    if (agent_split_enroll_token(e->token, e->secret, e->hub_pk, err, sizeof(err)) < 0)
        return cli_fail("%s", err);
    if (agent_config_path(e->config, e->cfg.path, sizeof(e->cfg.path), err, sizeof(err)) < 0)
        return cli_fail("%s", err);
    int rc = agent_config_load(e->cfg.path, &e->old, err, sizeof(err));
    if (rc < 0 && rc != CN_ENOTFOUND)
        return cli_fail("%s", err);
    if (rc == 0 && e->old.agent_id[0] && !e->force)
        return cli_fail("%s already holds agent %s; use --config FILE for another agent, or "
                        "--force to replace it",
                        e->cfg.path, e->old.agent_id);
    if (cn_chan_keypair(e->agent_pk, e->cfg.agent_sk) < 0)
        return cli_fail("cannot generate a key pair");
    memcpy(e->cfg.hub_pk, e->hub_pk, 32);
    e->cfg.have_keys = true;
    snprintf(e->cfg.hub, sizeof(e->cfg.hub), "%s", e->hub);
    if (e->ca_file) {
        /* Stored absolute, so the agent finds it from any directory. */
        if (!realpath(e->ca_file, e->cfg.ca_file))
            return cli_fail("cannot read the CA file %s", e->ca_file);
    }
    e->cfg.allow_insecure = e->allow_insecure;
    return 0;
}

/* Step 4: redeem the secret over the encrypted link and wait for the hub's
 * hello (or a close, Ctrl-C or the timeout). 0, or the exit status. */
static int redeem(enroll_t *e)
{
    char err[512];
    agent_daemon_config_t dc = {
        .hub_url = e->hub,
        .ca_file = e->cfg.ca_file,
        .allow_insecure = e->allow_insecure,
        .agent_sk = e->cfg.agent_sk,
        .hub_pk = e->hub_pk,
        .enroll = e->secret,
        .on_hello = on_hello,
        .on_down = on_down,
        .ctx = &e->st,
    };
    dc.timing.handshake_ms = (uint32_t)(e->timeout * 1000);
    e->d = agent_daemon_new(&dc, err, sizeof(err));
    sodium_memzero(e->secret, sizeof(e->secret));
    if (!e->d)
        return cli_fail("%s", err);
    uint64_t deadline = cn_time_mono_ms() + e->timeout * 1000;
    while (!e->st.done && !e->st.down && !cli_stop && cn_time_mono_ms() < deadline)
        if (agent_daemon_service(e->d) < 0)
            break;
    return 0;
}

/* Step 5a: the hub admitted us: write the config and say so. */
static int save_and_report(enroll_t *e)
{
    char err[512];
    agent_config_t *cfg = &e->cfg;
    snprintf(cfg->agent_id, sizeof(cfg->agent_id), "%s", e->st.agent_id);
    snprintf(cfg->workspace_id, sizeof(cfg->workspace_id), "%s", e->st.workspace_id);
    snprintf(cfg->token, sizeof(cfg->token), "%s", e->st.token);
    if (agent_config_save(cfg->path, cfg, err, sizeof(err)) < 0)
        /* The secret is spent: say what the agent is so it can be deleted
         * or the config rebuilt by hand. */
        return cli_fail("enrolled as agent %s but %s", e->st.agent_id, err);
    if (e->json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "agentId", cfg->agent_id, "workspaceId",
                              cfg->workspace_id, "hub", cfg->hub, "config", cfg->path);
        out_json(o);
        json_decref(o);
        return AGENT_EXIT_OK;
    }
    char fp[CN_CHAN_FINGERPRINT_SIZE];
    cn_chan_fingerprint(e->agent_pk, fp);
    printf("Enrolled agent %s (key %s) in workspace %s\n"
           "Config written to %s (keep it private: it holds the agent's key and an API "
           "token)\n",
           cfg->agent_id, fp, cfg->workspace_id[0] ? cfg->workspace_id : "?", cfg->path);
    if (!e->st.token[0])
        printf("The hub sent no API token: pass --token or CONNECT_TOKEN to 'connect ls' "
               "and friends.\n");
    return AGENT_EXIT_OK;
}

/* Step 5b: it did not work: one line saying which way, classified by the
 * link's close reason (an enum), never by its words. */
static int explain_failure(const enroll_t *e)
{
    const enroll_state_t *st = &e->st;
    if (st->bad_hello)
        return cli_fail("the hub at %s sent a malformed hello", e->hub);
    if (cli_stop)
        return cli_fail("interrupted");
    if (!st->down)
        return cli_fail("the hub at %s did not answer within %lu s", e->hub, e->timeout);
    if (st->reason == CN_LINK_CONNECT_FAILED)
        return cli_fail("cannot reach the hub at %s", e->hub);
    if (st->reason == CN_LINK_TLS_FAILED)
        return cli_fail("cannot reach the hub at %s: %s", e->hub, st->why);
    if (!st->established && st->err == CN_ETIMEOUT)
        return cli_fail("the hub at %s did not complete the handshake in time", e->hub);
    if (!st->established)
        return cli_fail("the hub at %s did not accept the agent connection: it has no agent "
                        "endpoint at %s/agent, or its key is not the one in the token (%s)",
                        e->hub, e->url.base, st->why);
    return cli_fail("the hub at %s refused the enrollment: the token is unknown, used or "
                    "expired, or was made by another hub (%s)",
                    e->hub, st->why);
}

static void enroll_close(enroll_t *e)
{
    agent_daemon_shutdown(e->d, AGENT_DAEMON_DRAIN_MS, &cli_force);
    agent_config_wipe(&e->cfg);
    agent_config_wipe(&e->old);
    sodium_memzero(e, sizeof(*e));
}

int cmd_enroll(int argc, char **argv)
{
    enroll_t *e = calloc(1, sizeof(*e)); /* two configs: too big for the stack's comfort */
    if (!e)
        return cli_fail("out of memory");
    e->timeout = 15;
    int status = parse_args(e, argc, argv);
    if (status < 0)
        status = resolve_inputs(e);
    if (status < 0) {
        cli_logging(e->log_level, CN_LOG_ERROR);
        cli_signals();
        status = check_inputs(e);
        if (status == 0)
            status = redeem(e);
        if (status == 0)
            status = e->st.done && !e->st.bad_hello ? save_and_report(e) : explain_failure(e);
    }
    enroll_close(e);
    free(e);
    return status;
}
