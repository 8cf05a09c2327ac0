/* The agent's config file (JSON, mode 0600) and where settings come from.
 *
 *   {"version":1, "hub":"http://127.0.0.1:8080", "agentId":"<uuid>",
 *    "workspaceId":"<uuid>", "token":"cnt_...",
 *    "agentKey":"<X25519 private key, base64>",
 *    "hubKey":"<hub X25519 public key, base64url without padding>",
 *    "caFile":"/path/ca.pem", "allowInsecure":false}
 *
 * Path: --config FILE, else $CONNECT_CONFIG, else
 * ~/.config/connect/config.json. A file readable or writable by group or
 * others, or owned by another user, is refused. Hub URL and API token may
 * also come from --hub/--token and CONNECT_HUB/CONNECT_TOKEN, the CA file
 * from --ca-file and CONNECT_CA_FILE: flags win over the environment, the
 * environment over the file.
 *
 * What the file holds for its hub (token, caFile, allowInsecure) is bound
 * to the hub URL it was written with: when --hub or CONNECT_HUB names
 * another hub, none of it is used, so the stored token is never sent
 * anywhere else.
 *
 * The agent-local target policy (allowlist.h) comes from two places beside
 * it, never from the hub:
 * - "allow": ["10.0.0.0/8:5432", "db.internal:5432", ...] in the file,
 *   written by hand (`connect enroll --force` writes a fresh file);
 * - FILE.exposed, one "HOST:PORT" per line: every target a `connect expose`
 *   with this config named, appended before its tunnel is created, so a
 *   `connect agent` with the same identity may serve it too. Same safety
 *   rules as the config (0600, owner, no symlink). Delete a line to forget
 *   a target. */
#ifndef AGENT_CONFIG_H
#define AGENT_CONFIG_H

#include "cn_defs.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "args.h"

#define AGENT_URL_MAX 511
#define AGENT_ID_MAX 63
#define AGENT_TOKEN_MAX 511
#define AGENT_CONFIG_MAX_BYTES (64 * 1024)

typedef struct agent_config {
    char path[PATH_MAX];
    bool loaded; /* the file was read */
    char hub[AGENT_URL_MAX + 1];
    char agent_id[AGENT_ID_MAX + 1];
    char workspace_id[AGENT_ID_MAX + 1];
    char token[AGENT_TOKEN_MAX + 1];
    bool have_keys;
    uint8_t agent_sk[32];
    uint8_t hub_pk[32];
    char ca_file[PATH_MAX]; /* "" = the system CA store */
    bool allow_insecure;    /* plain http:// to a hub that is not loopback */
    /* resolve: the file's hub when its token (and TLS settings) were left
     * out because another hub was named, else "" */
    char other_hub[AGENT_URL_MAX + 1];
} agent_config_t;

/* What a command needs resolved. */
enum {
    AGENT_NEED_HUB = 1,
    AGENT_NEED_TOKEN = 2,
    AGENT_NEED_AGENT = 4, /* agent id and keys: only the config file has them */
};

/* The config path: flag, else $CONNECT_CONFIG, else $HOME/.config/connect/
 * config.json. 0 or CN_EINVAL with err. */
CN_WARN_UNUSED int agent_config_path(const char *flag, char *out, size_t outlen, char *err,
                                     size_t errlen);

/* Reads and checks the file. CN_ENOTFOUND when it does not exist; CN_EAUTH
 * when its permissions or owner are unsafe; CN_EINVAL when it does not
 * parse or a value is malformed (err says which). */
CN_WARN_UNUSED int agent_config_load(const char *path, agent_config_t *cfg, char *err,
                                     size_t errlen);

/* Writes the file atomically with mode 0600 (temporary file + rename),
 * creating missing parent directories with mode 0700. */
CN_WARN_UNUSED int agent_config_save(const char *path, const agent_config_t *cfg, char *err,
                                     size_t errlen);

/* Fills cfg from flags, environment and (when something is still missing,
 * or AGENT_NEED_AGENT) the file, and checks that everything in `need` is
 * there; err says how to provide what is missing. */
CN_WARN_UNUSED int agent_config_resolve(const agent_common_t *c, unsigned need, agent_config_t *cfg,
                                        char *err, size_t errlen);

/* Reads a secret (token) from the first line of `path`, or of stdin when
 * path is "-": surrounding blanks and the line end dropped, at most
 * outlen - 1 bytes, printable ASCII only. 0, or CN_EINVAL/CN_EIO with err
 * ("... is empty", "cannot read ..."). */
int agent_read_secret(const char *path, char *out, size_t outlen, char *err, size_t errlen);

/* True when two hub URLs name the same hub: scheme, host (any case), port
 * (defaults included) and base path. False when either does not parse. */
bool agent_config_same_hub(const char *a, const char *b);

/* Wipes the secrets. */
void agent_config_wipe(agent_config_t *cfg);

struct agent_policy;
/* FILE.exposed for the config at `config_path`. */
int agent_config_exposed_path(const char *config_path, char *out, size_t outlen);
/* Appends HOST:PORT to FILE.exposed (created 0600) unless it is there. */
int agent_config_record_exposed(const char *config_path, const char *host, uint16_t port, char *err,
                                size_t errlen);
/* Builds the policy from the config's "allow" list and FILE.exposed
 * (either may be missing: then it adds nothing). A bad "allow" entry is
 * CN_EINVAL naming it; a bad line of FILE.exposed is skipped and counted in
 * *skipped (optional). `out` is replaced only on success. */
int agent_config_load_policy(const char *config_path, struct agent_policy *out, size_t *skipped,
                             char *err, size_t errlen);

#endif
