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
#include <stdarg.h>
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

static void usage(FILE *out)
{
    fputs("usage: connect-hub init --db PATH [--json]\n"
          "\n"
          "Creates the hub database at PATH with a first workspace (\"default\") and an\n"
          "operator API token (admin of it, and the only token that may create\n"
          "workspaces), plus two private files beside it: PATH.secret (the key that\n"
          "token hashes are made with) and PATH.key (the hub's key pair for agents).\n"
          "The token is printed once and never stored: keep it. Fails, changing\n"
          "nothing, if PATH already holds a workspace.\n"
          "\n"
          "options:\n"
          "  --db PATH   the database file to create (its directory must exist)\n"
          "  --json      print {\"workspaceId\": ..., \"token\": ...} on one line\n"
          "  -h, --help  show this help\n",
          out);
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("connect-hub init: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return HUB_EXIT_FAIL;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("connect-hub init: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (try 'connect-hub init --help')\n", stderr);
    va_end(ap);
    return HUB_EXIT_USAGE;
}

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
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return HUB_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--db")) {
            if (i + 1 >= argc)
                return usage_error("%s needs a value", a);
            db = argv[++i];
        } else if (!strncmp(a, "--db=", 5)) {
            db = a + 5;
        } else if (a[0] == '-') {
            return usage_error("unknown option '%s'", a);
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
    }
    if (!db || !*db)
        return usage_error("--db PATH is required");

    char secret_path[PATH_BUF], key_path[PATH_BUF], err[PATH_BUF + 256] = "";
    if (hub_secret_path(db, HUB_SECRET_SUFFIX, secret_path, sizeof(secret_path)) < 0 ||
        hub_secret_path(db, HUB_KEYPAIR_SUFFIX, key_path, sizeof(key_path)) < 0)
        return fail("database path is too long");
    if (hub_secrets_init() < 0)
        return fail("cannot initialise libsodium");

    int status = HUB_EXIT_FAIL, rc;
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
        fail("%s", err);
        goto out;
    }

    hub_store_options_t opt = {.path = db, .secret_key = secret, .create = true};
    if (hub_store_open(&opt, &st, err, sizeof(err)) < 0) {
        fail("%s", err);
        goto out;
    }
    hub_workspace_list_t existing;
    if (hub_store_workspace_list(st, &existing) < 0) {
        fail("%s: %s", db, hub_store_errmsg(st));
        goto out;
    }
    size_t n = existing.count;
    hub_workspace_list_free(&existing);
    if (n > 0) {
        fail("%s is already initialised (%zu workspace%s); nothing was changed", db, n,
             n == 1 ? "" : "s");
        goto out;
    }

    rc = file_exists(key_path) ? hub_keypair_load(key_path, &kp, err, sizeof(err))
                               : hub_keypair_create(key_path, &kp, err, sizeof(err));
    if (rc < 0) {
        fail("%s", err);
        goto out;
    }

    rc = hub_store_bootstrap(st, "default", token, &ws);
    if (rc < 0) {
        if (rc == HUB_ECONFLICT)
            fail("%s is already initialised; nothing was changed", db);
        else
            fail("%s: %s", db, hub_store_errmsg(st));
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
        fail("could not write the token to standard output (%s)", strerror(errno));
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
