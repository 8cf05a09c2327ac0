/* `connect-hub init --db PATH [--json]`: creates the database, the hub
 * secret key (PATH.secret), the hub key pair (PATH.key), a first workspace
 * "default" and the operator API token (docs/security.md), which is printed once and stored only
 * as a keyed hash.
 *
 * Not idempotent, on purpose: on a database that already holds a workspace
 * it changes nothing and fails. The token cannot be shown again (it is not
 * stored), and minting a fresh admin token on every re-run of a
 * provisioning script would quietly multiply admin credentials. A run
 * that failed half-way (files created, no workspace yet) can simply be
 * repeated: existing key files are reused, and the workspace and token are
 * created in one transaction. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "cmd.h"
#include "cn_err.h"
#include "secrets.h"
#include "store.h"

#define PATH_BUF (PATH_MAX + 16)

static bool file_exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static bool file_nonempty(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && sb.st_size > 0;
}

int hub_cmd_init(int argc, char **argv)
{
    const char *db = NULL;
    bool json = false;
    int log_level = 0;
    const cn_opt_t opts[] = {
        {"db", CN_OPT_STRING | CN_OPT_ONCE, &db, 0, 0, "PATH",
         "the database file to create (its directory must exist)"},
        {"json", CN_OPT_FLAG, &json, 0, 0, NULL,
         "print {\"workspaceId\": ..., \"token\": ...} on one line"},
        {"log-level", CN_OPT_CHOICE, &log_level, 0, 0, HUB_LOG_LEVELS,
         "log threshold on stderr (default: $CONNECT_LOG, else info)"},
        CN_OPT_END,
    };
    const cn_args_cmd_t cmd = {
        .prog = "connect-hub",
        .name = "init",
        .synopsis = "--db PATH [--json]",
        .description =
            "Creates the hub database at PATH with a first workspace (\"default\") and an\n"
            "operator API token (admin of it, and the only token that may create\n"
            "workspaces), plus two private files beside it: PATH.secret (the key that\n"
            "token hashes are made with) and PATH.key (the hub's key pair for agents).\n"
            "The token is printed once and never stored: keep it. Fails, changing\n"
            "nothing, if PATH already holds a workspace.",
        .opts = opts,
    };
    int rc = cn_args_front(&cmd, argc, argv, NULL, NULL);
    if (rc != CN_ARGS_OK)
        return cn_args_exit(rc);
    if (!db)
        return cn_args_usage_error("connect-hub", "init", "--db PATH is required");
    hub_cmd_logging(log_level);

    char secret_path[PATH_BUF], key_path[PATH_BUF], err[PATH_BUF + 256] = "";
    if (hub_secret_path(db, HUB_SECRET_SUFFIX, secret_path, sizeof(secret_path)) < 0 ||
        hub_secret_path(db, HUB_KEYPAIR_SUFFIX, key_path, sizeof(key_path)) < 0)
        return hub_cmd_fail("init", "database path is too long");
    if (hub_secrets_init() < 0)
        return hub_cmd_fail("init", "cannot initialise libsodium");

    int status = HUB_EXIT_FAIL;
    uint8_t secret[HUB_KEY_BYTES];
    hub_keypair_t kp = {0};
    hub_store_t *st = NULL;
    char token[HUB_TOKEN_STR_SIZE] = "";
    hub_workspace_t ws;

    /* The secret key is created before the database and never recreated
     * for an existing one: a new key would silently invalidate every token
     * hashed with the old one. */
    if (file_exists(secret_path)) {
        rc = hub_secret_key_load(secret_path, secret, err, sizeof(err));
    } else if (file_nonempty(db)) {
        snprintf(err, sizeof(err),
                 "%s exists but its secret key %s is missing; refusing to make a new one", db,
                 secret_path);
        rc = CN_ENOTFOUND;
    } else {
        rc = hub_secret_key_create(secret_path, secret, err, sizeof(err));
    }
    if (rc < 0) {
        hub_cmd_fail("init", "%s", err);
        goto out;
    }

    hub_store_options_t opt = {.path = db, .secret_key = secret, .create = true};
    if (hub_store_open(&opt, &st, err, sizeof(err)) < 0) {
        hub_cmd_fail("init", "%s", err);
        goto out;
    }
    hub_workspace_list_t existing;
    if (hub_store_workspace_list(st, &existing) < 0) {
        hub_cmd_fail("init", "%s: %s", db, hub_store_errmsg(st));
        goto out;
    }
    size_t n = existing.count;
    hub_workspace_list_free(&existing);
    if (n > 0) {
        hub_cmd_fail("init", "%s is already initialised (%zu workspace%s); nothing was changed", db,
                     n, n == 1 ? "" : "s");
        goto out;
    }

    rc = file_exists(key_path) ? hub_keypair_load(key_path, &kp, err, sizeof(err))
                               : hub_keypair_create(key_path, &kp, err, sizeof(err));
    if (rc < 0) {
        hub_cmd_fail("init", "%s", err);
        goto out;
    }

    rc = hub_store_bootstrap(st, "default", token, &ws);
    if (rc < 0) {
        if (rc == HUB_ECONFLICT)
            hub_cmd_fail("init", "%s is already initialised; nothing was changed", db);
        else
            hub_cmd_fail("init", "%s: %s", db, hub_store_errmsg(st));
        goto out;
    }

    /* Both values are plain [0-9a-f-] and base64url: no JSON escaping is
     * needed, and no library keeps an unwiped copy of the token. */
    if (json) {
        printf("{\"workspaceId\":\"%s\",\"token\":\"%s\"}\n", ws.id, token);
    } else {
        char pub[HUB_KEY_B64_SIZE];
        hub_key_to_b64(kp.public_key, pub);
        printf("Initialised the hub database %s\n"
               "\n"
               "  workspace      %s (%s)\n"
               "  operator token %s\n"
               "  hub key        %s\n"
               "\n"
               "The operator token is shown only this once and is not stored: keep it now.\n"
               "Secret files (keep them with the database, mode 0600): %s, %s\n",
               db, ws.name, ws.id, token, pub, secret_path, key_path);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        hub_cmd_fail("init", "could not write the token to standard output (%s)", strerror(errno));
        goto out;
    }
    status = HUB_EXIT_OK;
out:
    sodium_memzero(token, sizeof(token));
    sodium_memzero(secret, sizeof(secret));
    hub_keypair_wipe(&kp);
    hub_store_close(st);
    return status;
}
