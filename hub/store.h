/* The hub's state, in domain terms: workspaces, API tokens, agents, tunnels
 * and events. This header is the only way the rest of the hub reaches its
 * database; SQL lives in hub/store*.c alone. SQLite is the backend today
 * (store_sqlite.c); a PostgreSQL backend plugs in behind the same calls
 * (see store_backend.h).
 *
 * Conventions
 * - Functions return 0, a negative CN_E* code or HUB_ECONFLICT (hub_err.h).
 *   After a failure hub_store_errmsg() says what went wrong in one line,
 *   naming the parameter when an input was refused ("name: ..."). Secrets
 *   never appear in messages.
 * - CN_ENOTFOUND: no such object *in this workspace*. Every call that takes a
 *   workspace_id is scoped by it, so another workspace's ids (and malformed
 *   ids) look exactly like ids that never existed.
 * - HUB_ECONFLICT: a unique name, port or key is taken (the API's 409).
 * - CN_EINVAL: an input the store refuses (length, range, not a JSON object).
 *   The API validates user input first; this is the store's own guard.
 * - Times are int64 ms since the epoch, UTC; HUB_TIME_NONE (0) means "never".
 *   The store reads "now" from the clock given at open, never from its
 *   callers, so one injected clock drives every timestamp and expiry.
 * - Ownership: records are caller-owned structs. Short, bounded fields are
 *   fixed-size arrays inside the record; the few unbounded ones (JSON text,
 *   error text, connection strings) are heap strings owned by the record and
 *   released by its *_clear() function. Lists own their items and are
 *   released by their *_free() function. Zero-initialised records and lists
 *   are valid to clear/free; clearing/freeing twice or NULL is fine. An
 *   output record is overwritten (not cleared) on entry, so clear it before
 *   reusing it. On failure outputs hold nothing that needs freeing.
 * - Input strings are borrowed for the duration of the call.
 * - A change and the event that records it commit together: callers wrap
 *   them in hub_store_tx_begin() / hub_store_tx_end() (below).
 * - One hub_store_t serves one thread at a time (the hub's event loop); it is
 *   not internally locked. Several processes may open the same database.
 *
 * Secrets: API and enroll tokens are generated here, returned once in
 * plaintext, and stored only as keyed BLAKE2b hashes under the hub secret
 * key handed to hub_store_open() (which lives outside the database, see
 * secrets.h). Basic-auth passwords are generated here and stored as Argon2id
 * strings. Webhook secrets, which the hub must use to sign, are stored
 * sealed under a key derived from the hub secret key (see "webhooks"). */
#ifndef HUB_STORE_H
#define HUB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub_err.h"
#include "hub_time.h"
#include "secrets.h"
#include "share_policy.h"

typedef struct hub_store hub_store_t;

/* ---- sizes (bytes, excluding the terminating NUL) ---------------------- */
#define HUB_ID_LEN HUB_UUID_LEN /* lowercase UUID v4 */
#define HUB_ID_SIZE (HUB_ID_LEN + 1)
#define HUB_NAME_MAX 100 /* workspace, agent, tunnel, token names */
#define HUB_NAME_SIZE (HUB_NAME_MAX + 1)
#define HUB_HOST_MAX 253 /* tunnel target host (DNS name or IP) */
#define HUB_HOST_SIZE (HUB_HOST_MAX + 1)
#define HUB_USER_MAX 64 /* basic-auth user */
#define HUB_USER_SIZE (HUB_USER_MAX + 1)
#define HUB_EVENT_TYPE_MAX 64 /* "tunnel.created", [a-z0-9._]+ */
#define HUB_EVENT_TYPE_SIZE (HUB_EVENT_TYPE_MAX + 1)
#define HUB_METADATA_MAX 16384   /* tunnel metadata JSON text */
#define HUB_EVENT_DATA_MAX 16384 /* event data JSON text */
#define HUB_LAST_ERROR_MAX 1024  /* tunnel lastError text */
#define HUB_CONNSTR_MAX 2048     /* tunnel connectionString */
#define HUB_PLUGIN_MAX 31        /* protocol plugin name, [a-z][a-z0-9_-]* (connect/plugin.h) */
#define HUB_PLUGIN_SIZE (HUB_PLUGIN_MAX + 1)
#define HUB_LIST_MAX 10000                           /* most rows any list call returns */
#define HUB_EVENTS_DEFAULT 100                       /* events returned when no limit is given */
#define HUB_EVENTS_MAX 1000                          /* most events one call returns */
#define HUB_ENROLL_TTL_DEFAULT_MS (60LL * 60 * 1000) /* 1 hour */
#define HUB_RELEASE_HOLD_DEFAULT_MS (24LL * 3600 * 1000) /* 24 hours */
/* Tunnels one agent may hold, however they are made: what an agent keeps
 * (AGENT_ALLOWLIST_MAX), so that it serves every tunnel it is given
 * (docs/scaling.md). hub_store_tunnel_create() refuses more. */
#define HUB_TUNNELS_PER_AGENT_MAX 4096

/* ---- opening ------------------------------------------------------------ */
typedef struct hub_store_options {
    /* SQLite database file. */
    const char *path;
    /* The 32-byte hub secret key (secrets.h) that keys token hashes; copied,
     * and wiped from the store at close. Required. */
    const uint8_t *secret_key;
    /* Create the database file when missing (init). Otherwise a missing file
     * is CN_ENOTFOUND, so `serve` never runs on an empty database by mistake. */
    bool create;
    /* synchronous=FULL instead of NORMAL: also survive power loss / OS crash
     * for the last commits, at the cost of an fsync per commit. */
    bool sync_full;
    /* Checkpoint the WAL from a thread of the store's own (serve): the
     * hub's event-loop connection then never runs one. A checkpoint writes
     * the WAL's pages into the database and fsyncs both, which took
     * 350-480 ms under a busy disk, on the loop, in whichever commit
     * crossed SQLite's 1000-page mark (the share access log's batches,
     * mostly). Without it SQLite checkpoints in those commits, as before. */
    bool checkpoint_thread;
    /* Write the share access log from a thread of its own (serve): the
     * edge's append is then a copy into a queue (see
     * hub_store_share_log_append), not a SQLite write on the event loop. */
    bool log_thread;
    /* The bound of that queue in bytes (0 = HUB_SLOG_QUEUE_BYTES, 8 MiB:
     * store_sqlite_log.h); tests set a small one. */
    size_t log_queue_bytes;
    /* Rows a retention step deletes at most before the writer commits and
     * writes the rows queued meanwhile (0 = HUB_SLOG_PRUNE_STEP_ROWS:
     * store_sqlite_log.h); tests set a small one. */
    size_t log_prune_step_rows;
    /* Ask SQLite whether another process committed (PRAGMA data_version,
     * two fcntl() calls) at most once per this many milliseconds of the
     * monotonic clock when the generation is read; 0 = on every read.
     * `serve` uses 1: the edge reads the generation on every request, and
     * this process's own writes are counted at once either way. */
    unsigned external_check_ms;
    /* Time source; NULL means hub_time_now_ms. */
    hub_clock_fn clock;
    void *clock_ctx;
    /* How long a released public name or hub port stays reserved to the
     * workspace that held it; 0 means HUB_RELEASE_HOLD_DEFAULT_MS. */
    int64_t release_hold_ms;
} hub_store_options_t;

/* Opens (and, with opt->create, creates) the database, applies pending
 * migrations in one transaction, and returns the handle in *out.
 * Errors: CN_ENOTFOUND (no file and !create), CN_EVERSION (the database was
 * written by a newer connect-hub), CN_EPROTO (not a connect-hub database),
 * CN_EAUTH (the secret key is not the one this database was first opened
 * with), CN_EIO, CN_EINVAL (also ":memory:" and "file:" URIs), CN_ENOMEM.
 * `err` (optional) receives one line. */
int hub_store_open(const hub_store_options_t *opt, hub_store_t **out, char *err, size_t errlen);
/* Closes the database and wipes the key. NULL is fine. */
void hub_store_close(hub_store_t *st);
/* The message of the last failed call on `st`; "" if none. Valid until the
 * next call. */
const char *hub_store_errmsg(const hub_store_t *st);
/* The schema version this build writes and the one the database is at. */
int hub_store_schema_version(void);
int hub_store_db_version(hub_store_t *st, int *version);
/* The store's notion of now (its clock). */
int64_t hub_store_now(const hub_store_t *st);

/* ---- transactions ------------------------------------------------------
 * A change and the event that records it are kept together or not at all
 * (a crash between two commits would leave one without the other).
 * hub_store_tx_begin() opens a transaction; every store call until the
 * matching hub_store_tx_end() joins it. hub_store_tx_end(st, rc) commits
 * when rc is 0 and rolls back everything since the begin otherwise; it
 * returns the outcome: rc itself when rc < 0 (hub_store_errmsg() still
 * describes that failure), else 0 or the commit's error.
 * Transactions nest: an inner begin/end pair is a savepoint whose rollback
 * undoes only its own part. The outermost begin takes the database's write
 * lock (BEGIN IMMEDIATE; CN_EAGAIN past the busy timeout), so keep
 * transactions short and never wait inside one. A store call that fails
 * inside a transaction may have lost all of it (SQLite rolls back by itself
 * on I/O errors and a full disk): hand its error to hub_store_tx_end()
 * instead of carrying on. Every tx_begin that returned 0 needs its tx_end. */
int hub_store_tx_begin(hub_store_t *st);
int hub_store_tx_end(hub_store_t *st, int rc);

/* ---- change generation -------------------------------------------------
 * A number that moves whenever what a read of a workspace, agent, tunnel or
 * share returns may have changed: every row written through this handle
 * (committed or later rolled back, in any table, cascades included) except
 * by the few calls that touch none of those (a token's lastUsedAt); every
 * commit of another process to the same database file (SQLite's
 * data_version of the main file: a second hub, an operator's sqlite3); and
 * every call while a transaction is open, and once after it. The share
 * access log is in a file of its own: its commits, by any connection, are
 * none of these.
 * Reads never move it; it never goes back. Caches of store reads
 * (share_cache.h) keep the generation they were filled at and drop
 * everything when it moved, so invalidation needs no hook in any write
 * path, present or future: a new write is loud unless it is made quiet
 * here on purpose. It costs one small statement (no table is read). */
uint64_t hub_store_generation(hub_store_t *st);

/* ---- workspaces -------------------------------------------------------- */
typedef struct hub_workspace {
    char id[HUB_ID_SIZE];
    char name[HUB_NAME_SIZE];
    int64_t created_at;
} hub_workspace_t;

typedef struct hub_workspace_list {
    hub_workspace_t *items;
    size_t count;
} hub_workspace_list_t;
void hub_workspace_list_free(hub_workspace_list_t *l);

/* Creates a workspace; names (1..100 bytes) are unique hub-wide
 * (HUB_ECONFLICT). `out` may be NULL. */
int hub_store_workspace_create(hub_store_t *st, const char *name, hub_workspace_t *out);
/* Every workspace, oldest first (admin view). */
int hub_store_workspace_list(hub_store_t *st, hub_workspace_list_t *out);
int hub_store_workspace_get(hub_store_t *st, const char *id, hub_workspace_t *out);

/* ---- first run --------------------------------------------------------- */
/* `connect-hub init` in one transaction: creates the first workspace
 * (`name`) and an operator API token for it, written once to `token_out`.
 * HUB_ECONFLICT, with nothing changed, when the database already holds a
 * workspace. `ws_out` may be NULL. */
int hub_store_bootstrap(hub_store_t *st, const char *name,
                        char token_out[static HUB_TOKEN_STR_SIZE], hub_workspace_t *ws_out);

/* ---- API tokens -------------------------------------------------------- */
/* What a token may do (docs/security.md has the full table):
 * - operator: the token `connect-hub init` prints. Admin of its workspace,
 *   and the only scope that may create and list workspaces and mint tokens
 *   in any workspace. Never minted through the API.
 * - admin: everything inside its workspace (agents, tokens, tunnels).
 * - member: the workspace's tunnels, events and agents (read); no agent or
 *   token administration.
 * - agent: bound to one agent (agent_id) and revoked with it: reads the
 *   workspace's tunnels and events, manages only its own agent's tunnels. */
enum hub_token_scope {
    HUB_SCOPE_MEMBER = 0,
    HUB_SCOPE_AGENT,
    HUB_SCOPE_ADMIN,
    HUB_SCOPE_OPERATOR,
};
/* "member", "agent", "admin", "operator"; *_name() never returns NULL ("?"
 * out of range); *_parse() returns 0 or CN_EINVAL. */
const char *hub_token_scope_name(int scope);
int hub_token_scope_parse(const char *s, enum hub_token_scope *out);

/* lastUsedAt is written at most once per this interval per token, so
 * authentication does not cost a database write per request. */
#define HUB_TOKEN_LAST_USED_EVERY_MS (60LL * 1000)

typedef struct hub_token_info {
    char id[HUB_ID_SIZE]; /* the token's id (for revocation), not the secret */
    char workspace_id[HUB_ID_SIZE];
    char name[HUB_NAME_SIZE];
    enum hub_token_scope scope;
    char agent_id[HUB_ID_SIZE]; /* scope agent: the agent it is bound to; else "" */
    int64_t created_at;
    int64_t last_used_at; /* NONE until first used; at most a minute stale */
} hub_token_info_t;

typedef struct hub_token_list {
    hub_token_info_t *items;
    size_t count;
} hub_token_list_t;
void hub_token_list_free(hub_token_list_t *l);

/* Mints an API token for a workspace: `name` is a label (may be NULL or "");
 * `scope` says what it may do; `agent_id` names the agent of this workspace
 * an agent-scoped token is bound to (required for HUB_SCOPE_AGENT, NULL
 * otherwise). The token is deleted with its agent (same transaction). The
 * plaintext ("cnt_...") is written to `token_out` and exists nowhere else:
 * show it once, then wipe it. `info` may be NULL. CN_ENOTFOUND if the
 * workspace (or the agent) does not exist; CN_EINVAL for a bad scope/agent
 * combination. */
int hub_store_token_create(hub_store_t *st, const char *workspace_id, const char *name,
                           enum hub_token_scope scope, const char *agent_id,
                           char token_out[static HUB_TOKEN_STR_SIZE], hub_token_info_t *info);
/* Resolves a presented bearer token to its workspace, scope and agent, and
 * records its use (last_used_at, at most once per
 * HUB_TOKEN_LAST_USED_EVERY_MS). CN_EAUTH for anything that is not a live
 * token (malformed, unknown, revoked, its agent deleted); the comparison is
 * by keyed hash and crypto_verify_32. */
int hub_store_token_authenticate(hub_store_t *st, const char *token, hub_token_info_t *out);
/* The workspace's tokens, oldest first (never their secrets). */
int hub_store_token_list(hub_store_t *st, const char *workspace_id, hub_token_list_t *out);
int hub_store_token_get(hub_store_t *st, const char *workspace_id, const char *token_id,
                        hub_token_info_t *out);
/* Revokes a token of the workspace. */
int hub_store_token_delete(hub_store_t *st, const char *workspace_id, const char *token_id);

/* ---- agents ------------------------------------------------------------ */
typedef struct hub_agent {
    char id[HUB_ID_SIZE];
    char workspace_id[HUB_ID_SIZE];
    char name[HUB_NAME_SIZE]; /* "" when none was given */
    bool enrolled;            /* public_key is bound */
    uint8_t public_key[32];   /* X25519 static key; zero until enrolled */
    bool connected;
    int64_t created_at;
    int64_t enroll_expires_at; /* NONE once enrolled */
    int64_t enrolled_at;
    int64_t connected_at;    /* last connect; NONE if never */
    int64_t disconnected_at; /* last disconnect; NONE if never */
    int64_t updated_at;
} hub_agent_t;

typedef struct hub_agent_list {
    hub_agent_t *items;
    size_t count;
} hub_agent_list_t;
void hub_agent_list_free(hub_agent_list_t *l);

/* Registers an agent (UUID v4 id; `name` optional, NULL or "" for none, not
 * unique) and mints its single-use enroll token ("cne_..."), valid for
 * `enroll_ttl_ms` (0 means HUB_ENROLL_TTL_DEFAULT_MS). The plaintext goes to
 * `enroll_token_out` only. `max_agents` caps the workspace's agents,
 * checked atomically with the insert (CN_EEXHAUSTED when it already has
 * that many); 0 = no cap. `out` may be NULL. */
int hub_store_agent_create(hub_store_t *st, const char *workspace_id, const char *name,
                           int64_t enroll_ttl_ms, size_t max_agents,
                           char enroll_token_out[static HUB_TOKEN_STR_SIZE], hub_agent_t *out);
/* Agents of a workspace, oldest first. */
int hub_store_agent_list(hub_store_t *st, const char *workspace_id, hub_agent_list_t *out);
int hub_store_agent_get(hub_store_t *st, const char *workspace_id, const char *id,
                        hub_agent_t *out);
/* Deletes an agent and, with it, its tunnels (their public names and hub
 * ports are held for the workspace as on tunnel delete) and its
 * agent-scoped API tokens, in one transaction. Callers that owe events or
 * listeners for those tunnels list them first. */
int hub_store_agent_delete(hub_store_t *st, const char *workspace_id, const char *id);
/* Redeems an enroll token: atomically binds `public_key` to the agent and
 * burns the token. Not workspace-scoped (the token is the credential); the
 * agent, with its workspace, is returned in `out` (may be NULL).
 * CN_EAUTH: malformed, unknown or already used; CN_ETIMEOUT: expired (the
 * token is burnt as well); HUB_ECONFLICT: the key belongs to another agent. */
int hub_store_agent_enroll(hub_store_t *st, const char *enroll_token,
                           const uint8_t public_key[static 32], hub_agent_t *out);
/* The enrolled agent whose static key this is (the channel's authenticated
 * peer key). CN_ENOTFOUND if none. Not workspace-scoped, by nature. */
int hub_store_agent_find_by_key(hub_store_t *st, const uint8_t public_key[static 32],
                                hub_agent_t *out);
/* Records a link coming up (connected_at = now) or going down
 * (disconnected_at = now). */
int hub_store_agent_set_connected(hub_store_t *st, const char *workspace_id, const char *id,
                                  bool connected);
/* Marks every agent disconnected (at now) — for hub start-up, since links
 * do not survive a restart. `count` (may be NULL) gets how many changed. */
int hub_store_agent_reset_connections(hub_store_t *st, size_t *count);

/* ---- tunnels ----------------------------------------------------------- */
enum hub_protocol {
    HUB_PROTO_AUTO = 0,
    HUB_PROTO_TCP,
    HUB_PROTO_UDP,
    HUB_PROTO_HTTP,
    HUB_PROTO_HTTPS,
};
enum hub_tunnel_status {
    HUB_TUNNEL_CONNECTING = 0,
    HUB_TUNNEL_ACTIVE,
    HUB_TUNNEL_PAUSED,
    HUB_TUNNEL_ERROR,
    HUB_TUNNEL_EXPIRED,
};
/* Contract spellings ("auto", "tcp", ...; "connecting", "active", ...).
 * *_name() never returns NULL ("?" for out-of-range); *_parse() returns 0 or
 * CN_EINVAL. */
const char *hub_protocol_name(int protocol);
int hub_protocol_parse(const char *s, enum hub_protocol *out);
/* Whether tunnels of this protocol live on the HTTP edge (http, https):
 * public ones are reached by name (NAME.DOMAIN) instead of a hub port, and
 * only they can be shared. The one rule the API (publicUrl, hub ports,
 * shares) and the edge (which tunnels it serves) both ask. A plugin's name
 * given as the protocol ("postgresql", ...) is stored as a tcp tunnel with
 * that plugin; "http" always parses as the protocol, never as a plugin. */
bool hub_protocol_on_http_edge(int protocol);
const char *hub_tunnel_status_name(int status);
int hub_tunnel_status_parse(const char *s, enum hub_tunnel_status *out);

typedef struct hub_tunnel {
    char id[HUB_ID_SIZE];
    char workspace_id[HUB_ID_SIZE];
    char agent_id[HUB_ID_SIZE];
    char name[HUB_NAME_SIZE];
    char target_host[HUB_HOST_SIZE];
    uint16_t target_port;
    enum hub_protocol protocol;
    bool is_public;
    uint16_t hub_port; /* 0 = none */
    enum hub_tunnel_status status;
    char *metadata;          /* owned; JSON object text, "{}" by default */
    char *connection_string; /* owned; NULL until known */
    char *last_error;        /* owned; NULL unless set */
    /* The protocol plugin behind the tunnel ("postgresql", ...), named at
     * creation or reported by the agent for protocol auto; "" = none. */
    char plugin[HUB_PLUGIN_SIZE];
    char http_user[HUB_USER_SIZE]; /* "" = no basic auth */
    /* Argon2id string for http_user's password ("" if none). For the edge's
     * check (hub_password_verify) only: never serialise it. */
    char http_password_hash[HUB_PASSWORD_HASH_SIZE];
    int64_t created_at;
    int64_t connected_at; /* NONE until first active */
    int64_t expires_at;   /* NONE = no TTL */
    int64_t updated_at;
    /* Seconds a public TCP connection of this tunnel may stay idle before
     * the edge resets it; HUB_IDLE_TIMEOUT_DEFAULT = the hub's
     * --tcp-idle-timeout; 0 = never. */
    int32_t idle_timeout_s;
} hub_tunnel_t;
/* Frees the owned strings and zeroes the record. NULL is fine. */
void hub_tunnel_clear(hub_tunnel_t *t);

typedef struct hub_tunnel_list {
    hub_tunnel_t *items;
    size_t count;
} hub_tunnel_list_t;
void hub_tunnel_list_free(hub_tunnel_list_t *l);

/* A tunnel's idle timeout: the hub's default, or 0..HUB_IDLE_TIMEOUT_MAX s. */
#define HUB_IDLE_TIMEOUT_DEFAULT (-1)
#define HUB_IDLE_TIMEOUT_MAX (7 * 24 * 3600)

typedef struct hub_tunnel_spec {
    const char *name;     /* required, 1..100 bytes; unique per workspace */
    const char *agent_id; /* an agent of the same workspace */
    const char *target_host;
    uint16_t target_port; /* 1..65535 */
    enum hub_protocol protocol;
    bool is_public;
    uint16_t hub_port;             /* 0 = none; else unique hub-wide */
    int64_t ttl_ms;                /* 0 = none; else expires_at = now + ttl_ms */
    const char *metadata;          /* JSON object text; NULL = "{}" */
    const char *connection_string; /* NULL = unknown yet */
    const char *plugin;            /* NULL/"" = none */
    const char *http_user;         /* NULL/"" = no basic auth; else a password is generated */
    /* The idle timeout in seconds when idle_timeout_set (0 = never), else
     * the hub's default. */
    bool idle_timeout_set;
    uint32_t idle_timeout_s;
    /* Per-workspace tunnel cap, checked atomically with the insert
     * (CN_EEXHAUSTED when the workspace already has this many); 0 = none. */
    size_t max_tunnels;
    /* Per-agent cap, checked the same way: 0 or anything above
     * HUB_TUNNELS_PER_AGENT_MAX is HUB_TUNNELS_PER_AGENT_MAX, which no
     * caller can lift. */
    size_t max_per_agent;
} hub_tunnel_spec_t;

/* Creates a tunnel in state "connecting". With spec->http_user a password is
 * generated, stored as Argon2id, and written once to `password_out` (which
 * must then be non-NULL). `out` may be NULL.
 * Errors: CN_ENOTFOUND (agent not in this workspace), HUB_ECONFLICT (name
 * taken in the workspace; public name or hub port in use or held by another
 * workspace), CN_EEXHAUSTED (a cap: the message names the workspace's,
 * "tunnels: ...", or the agent's, "agentId: ..."), CN_EINVAL. */
int hub_store_tunnel_create(hub_store_t *st, const char *workspace_id,
                            const hub_tunnel_spec_t *spec, hub_tunnel_t *out,
                            char password_out[HUB_PASSWORD_SIZE]);

/* Filter for hub_store_tunnel_list(); zero-initialise, then set. */
typedef struct hub_tunnel_filter {
    const char *agent_id; /* NULL = any (this is also "the tunnels of an agent") */
    bool by_status;
    enum hub_tunnel_status status;
} hub_tunnel_filter_t;
/* Tunnels of a workspace, oldest first. `filter` may be NULL. */
int hub_store_tunnel_list(hub_store_t *st, const char *workspace_id,
                          const hub_tunnel_filter_t *filter, hub_tunnel_list_t *out);
int hub_store_tunnel_get(hub_store_t *st, const char *workspace_id, const char *id,
                         hub_tunnel_t *out);
int hub_store_tunnel_get_by_name(hub_store_t *st, const char *workspace_id, const char *name,
                                 hub_tunnel_t *out);

/* Which fields hub_store_tunnel_update() writes. */
enum {
    HUB_TUNNEL_SET_NAME = 1u << 0,
    HUB_TUNNEL_SET_STATUS = 1u << 1,
    HUB_TUNNEL_SET_METADATA = 1u << 2,   /* replaces the whole object */
    HUB_TUNNEL_SET_LAST_ERROR = 1u << 3, /* NULL clears */
    HUB_TUNNEL_SET_CONNECTED_AT = 1u << 4,
    HUB_TUNNEL_SET_CONNECTION_STRING = 1u << 5, /* NULL clears */
    HUB_TUNNEL_SET_PLUGIN = 1u << 6,            /* NULL or "" clears */
    HUB_TUNNEL_SET_IDLE_TIMEOUT = 1u << 7,      /* HUB_IDLE_TIMEOUT_DEFAULT: the hub's */
};
typedef struct hub_tunnel_update {
    unsigned fields; /* HUB_TUNNEL_SET_* */
    const char *name;
    enum hub_tunnel_status status;
    const char *metadata;
    const char *last_error;
    int64_t connected_at;
    const char *connection_string;
    const char *plugin;
    int32_t idle_timeout_s;
} hub_tunnel_update_t;
/* Applies the selected fields and sets updated_at = now, in one transaction.
 * Renaming a public tunnel releases its old public name (held for the
 * workspace) and claims the new one. `out` (may be NULL) gets the result. */
int hub_store_tunnel_update(hub_store_t *st, const char *workspace_id, const char *id,
                            const hub_tunnel_update_t *upd, hub_tunnel_t *out);
/* Deletes a tunnel; its public name and hub port stay reserved to the
 * workspace for the release hold. */
int hub_store_tunnel_delete(hub_store_t *st, const char *workspace_id, const char *id);
/* Number of tunnels in a workspace (for the cap and metrics). */
int hub_store_tunnel_count(hub_store_t *st, const char *workspace_id, size_t *count);
/* Number of tunnels of one agent of a workspace (0 for an unknown one). */
int hub_store_tunnel_count_agent(hub_store_t *st, const char *workspace_id, const char *agent_id,
                                 size_t *count);
/* Tunnels of every workspace whose expires_at <= now and whose status is
 * not yet "expired", soonest first, at most `limit` (0 = HUB_LIST_MAX): the
 * reaper's work list. */
int hub_store_tunnel_list_expired(hub_store_t *st, size_t limit, hub_tunnel_list_t *out);
/* Whether `workspace_id` may use `hub_port` now: no tunnel holds it and no
 * other workspace released it within the hold. */
int hub_store_hub_port_available(hub_store_t *st, const char *workspace_id, uint16_t hub_port,
                                 bool *available);
/* Edge routing, hub-wide by nature: the public tunnel named `name`
 * (NAME.DOMAIN) or the tunnel listening on `hub_port`. */
int hub_store_tunnel_find_public(hub_store_t *st, const char *name, hub_tunnel_t *out);
int hub_store_tunnel_find_by_hub_port(hub_store_t *st, uint16_t hub_port, hub_tunnel_t *out);

/* ---- basic-auth passwords ---------------------------------------------- */
/* Generated basic-auth passwords (tunnels' httpUser, shares' httpUser) are
 * high-entropy (HUB_PASSWORD_LEN random characters), so they are stored
 * like tokens: "b2k$" + hex(BLAKE2b-256 keyed with the hub secret key),
 * and checked with one keyed hash, never a slow hash on the event loop.
 * 0 when `password` matches `stored`, else CN_EAUTH (also for the Argon2id
 * strings of tunnels created before schema 3, which the edge refuses: give
 * such a tunnel a new httpUser by recreating it). */
int hub_store_password_check(hub_store_t *st, const char *stored, const char *password);

/* ---- shares ------------------------------------------------------------ */
/* A share token is HUB_SHARE_TOKEN_LEN characters of lowercase base32
 * (160 random bits), a valid DNS label part so that the share answers at
 * share-TOKEN.DOMAIN; only its keyed hash is stored. */
#define HUB_SHARE_TOKEN_LEN 32
#define HUB_SHARE_TOKEN_SIZE (HUB_SHARE_TOKEN_LEN + 1)
#define HUB_DESCRIPTION_MAX 500
#define HUB_SHARE_LOG_PATH_MAX 512 /* longer logged paths are cut */
#define HUB_SHARE_LOG_KEEP 10000   /* newest access-log rows kept per share */
#define HUB_SHARE_LOG_RETENTION_MS (7LL * 24 * 3600 * 1000)
#define HUB_SHARE_LOG_PAGE_MAX 1000

typedef struct hub_share {
    char id[HUB_ID_SIZE];
    char workspace_id[HUB_ID_SIZE];
    char tunnel_id[HUB_ID_SIZE];
    char name[HUB_NAME_SIZE];
    char description[HUB_DESCRIPTION_MAX + 1];
    unsigned methods; /* router.h HUB_* mask; 0 = any */
    size_t npaths;    /* 0 = any path */
    char paths[HUB_SHARE_PATHS_MAX][HUB_SHARE_PATTERN_MAX + 1];
    uint32_t rate_limit; /* per minute, 1..1000 */
    char http_user[HUB_USER_SIZE];
    char http_password_hash[HUB_PASSWORD_HASH_SIZE]; /* never serialise */
    int64_t created_at;
    int64_t expires_at; /* NONE = never */
    int64_t revoked_at; /* NONE = live */
} hub_share_t;

typedef struct hub_share_list {
    hub_share_t *items;
    size_t count;
} hub_share_list_t;
void hub_share_list_free(hub_share_list_t *l);

typedef struct hub_share_spec {
    const char *tunnel_id; /* a tunnel of the workspace */
    const char *name;      /* 1..100 bytes */
    const char *description;
    unsigned methods;
    const char *const *paths; /* valid patterns (hub_path_pattern_valid) */
    size_t npaths;
    uint32_t rate_limit;
    int64_t ttl_ms;        /* 0 = never expires */
    const char *http_user; /* NULL/"" = none; else a password is generated */
} hub_share_spec_t;

/* Creates a share; its token goes to `token_out` and, with http_user, its
 * password to `password_out` (required then), both shown once. `out` may
 * be NULL. CN_ENOTFOUND (tunnel not in the workspace), CN_EINVAL. */
int hub_store_share_create(hub_store_t *st, const char *workspace_id, const hub_share_spec_t *spec,
                           hub_share_t *out, char token_out[static HUB_SHARE_TOKEN_SIZE],
                           char password_out[HUB_PASSWORD_SIZE]);
/* Shares of a workspace (of one tunnel when tunnel_id is not NULL),
 * revoked ones included, oldest first. */
int hub_store_share_list(hub_store_t *st, const char *workspace_id, const char *tunnel_id,
                         hub_share_list_t *out);
int hub_store_share_get(hub_store_t *st, const char *workspace_id, const char *id,
                        hub_share_t *out);
/* Revokes a share (revoked_at = now; the row and its log stay). *changed
 * (may be NULL) says whether it was live. */
int hub_store_share_revoke(hub_store_t *st, const char *workspace_id, const char *id,
                           hub_share_t *out, bool *changed);
/* Edge routing, hub-wide by nature: the share whose token this is (revoked
 * and expired ones too: the edge answers 410 for them). CN_ENOTFOUND. */
int hub_store_share_find_by_token(hub_store_t *st, const char *token, hub_share_t *out);
/* Live shares whose expiry passed and whose share.expired event is not yet
 * recorded, at most `limit` (0 = HUB_LIST_MAX); and the mark that it is. */
int hub_store_share_list_expired(hub_store_t *st, size_t limit, hub_share_list_t *out);
int hub_store_share_mark_expired(hub_store_t *st, const char *workspace_id, const char *id);

#define HUB_SHARE_LOG_METHOD_MAX 23 /* longer logged methods are cut */
#define HUB_SHARE_LOG_CLIENT_MAX 63 /* "ADDRESS:PORT" */

typedef struct hub_share_log_entry {
    int64_t id;
    int64_t at;
    char method[HUB_SHARE_LOG_METHOD_MAX + 1];
    char path[HUB_SHARE_LOG_PATH_MAX + 1];
    int status;
    int64_t latency_ms;
    char client[HUB_SHARE_LOG_CLIENT_MAX + 1];
} hub_share_log_entry_t;

typedef struct hub_share_log_list {
    hub_share_log_entry_t *items;
    size_t count;
} hub_share_log_list_t;
void hub_share_log_list_free(hub_share_log_list_t *l);

/* One request to log, as the edge has it: strings are borrowed for the
 * call (NULL = "") and cut at their maxima. */
typedef struct hub_share_log_row {
    int64_t at; /* the request's start */
    const char *method;
    const char *path;
    int status;
    int64_t latency_ms;
    const char *client;
} hub_share_log_row_t;

/* The share access log lives in a database file of its own beside the main
 * one (PATH-log; docs/store.md says why), written by a thread of its own
 * with hub_store_options_t.log_thread, else at once by the caller. */

/* Appends one access-log row for a share (hub-wide: the edge's requests).
 * With log_thread it is a copy of the row into a bounded queue (the writer
 * commits within HUB_SLOG_FLUSH_MS, ~1 s, or sooner when the list asks); a
 * full queue drops the row and counts it (hub_store_share_log_dropped) with
 * CN_EEXHAUSTED. The row of a share deleted meanwhile is removed by the
 * next prune. */
int hub_store_share_log_append(hub_store_t *st, const char *share_id, const hub_share_log_row_t *r);
/* A share's log, newest first: rows with id < before (0 = from the newest),
 * at most `limit` (1..HUB_SHARE_LOG_PAGE_MAX). Ids only ever grow. With
 * log_thread it first has the writer commit the rows appended before the
 * call, waiting for that at most HUB_SLOG_READ_WAIT_MS (250 ms; a writer
 * further behind shows them in a later list). */
int hub_store_share_log_list(hub_store_t *st, const char *workspace_id, const char *share_id,
                             int64_t before, size_t limit, hub_share_log_list_t *out);
/* Retention: drops rows older than `before`, all but the newest
 * HUB_SHARE_LOG_KEEP of each share, and the rows of shares that no longer
 * exist. With log_thread it runs on the writer thread (queued; `count`
 * gets 0), else at once (`count`, may be NULL, gets how many rows). */
int hub_store_share_log_prune(hub_store_t *st, int64_t before, size_t *count);
/* Returns once every row appended and every prune asked for before the call
 * is handled (written or lost). At once without log_thread. */
void hub_store_share_log_sync(hub_store_t *st);
/* Rows dropped because the queue was full since the store opened. */
uint64_t hub_store_share_log_dropped(hub_store_t *st);

/* ---- events ------------------------------------------------------------ */
typedef struct hub_event {
    int64_t id; /* increasing; a cursor for "after" */
    char workspace_id[HUB_ID_SIZE];
    char type[HUB_EVENT_TYPE_SIZE];
    char tunnel_id[HUB_ID_SIZE]; /* "" when not about a tunnel */
    char agent_id[HUB_ID_SIZE];  /* "" when not about an agent */
    char *data;                  /* owned; JSON object text */
    int64_t created_at;
} hub_event_t;
void hub_event_clear(hub_event_t *e);

typedef struct hub_event_list {
    hub_event_t *items;
    size_t count;
} hub_event_list_t;
void hub_event_list_free(hub_event_list_t *l);

typedef struct hub_event_spec {
    const char *type;      /* [a-z0-9._], 1..64 bytes, e.g. "tunnel.created" */
    const char *tunnel_id; /* NULL/"" = none */
    const char *agent_id;  /* NULL/"" = none */
    const char *data;      /* JSON object text; NULL = "{}" */
} hub_event_spec_t;
/* Appends an event stamped now. `id_out` may be NULL. The ids are not
 * checked against tunnels/agents: events outlive what they describe. */
int hub_store_event_append(hub_store_t *st, const char *workspace_id, const hub_event_spec_t *spec,
                           int64_t *id_out);

typedef struct hub_event_filter {
    const char *tunnel_id; /* NULL = any */
    int64_t since;         /* created_at >= since; NONE = no bound */
    bool has_after;        /* apply after_id; false = no cursor */
    int64_t after_id;      /* id > after_id (follow cursor); 0 = from the first event */
    size_t limit;          /* 0 = HUB_EVENTS_DEFAULT; capped at HUB_EVENTS_MAX */
} hub_event_filter_t;
/* Events of a workspace in increasing id order. With `since` or a cursor
 * (`has_after`, even `after_id` 0) the first `limit` matches from there;
 * with neither, the latest `limit`.
 * `filter` may be NULL. */
int hub_store_event_list(hub_store_t *st, const char *workspace_id,
                         const hub_event_filter_t *filter, hub_event_list_t *out);
/* Drops events older than `before` (retention), every workspace. `count`
 * (may be NULL) gets how many. */
int hub_store_event_prune(hub_store_t *st, int64_t before, size_t *count);
/* Keeps only the newest `keep` events of each workspace (keep > 0), so a
 * reconnect loop cannot fill the disk. `count` (optional) gets how many
 * were dropped. */
int hub_store_event_cap(hub_store_t *st, size_t keep, size_t *count);

/* ---- webhooks ----------------------------------------------------------
 * A webhook is a URL of a workspace that receives the workspace's events
 * matching its filter as signed POSTs (docs/api.md#webhooks). Its secret is
 * the HMAC key: the hub must use it on every delivery, so unlike tokens it
 * cannot be hashed. It is stored sealed (XChaCha20-Poly1305 under a key
 * derived from the hub secret key, with the webhook id as associated data),
 * so a copy of the database without PATH.secret does not reveal it, and a
 * sealed secret moved to another row does not open.
 *
 * The delivery queue lives in the store: hub_store_event_append() enqueues
 * one delivery per enabled webhook of the workspace whose filter matches,
 * in the event's own transaction, so an event is never recorded without
 * its deliveries (and a crash loses neither). Deliveries of one webhook go
 * out oldest first, one at a time; a failure delays the webhook's whole
 * queue by its backoff (retry_at), so a receiver that is down costs one
 * attempt per backoff step, not one per queued event, and receives events
 * in order once it is back. */
#define HUB_WEBHOOK_URL_MAX 2048
#define HUB_WEBHOOK_URL_SIZE (HUB_WEBHOOK_URL_MAX + 1)
#define HUB_WEBHOOK_EVENTS_MAX 2048 /* the filter as JSON text */
#define HUB_WEBHOOK_EVENTS_SIZE (HUB_WEBHOOK_EVENTS_MAX + 1)
#define HUB_WEBHOOK_SECRET_PREFIX "whsec_"
#define HUB_WEBHOOK_SECRET_LEN (6 + 43) /* prefix + base64url(32 random bytes) */
#define HUB_WEBHOOK_SECRET_SIZE (HUB_WEBHOOK_SECRET_LEN + 1)
#define HUB_DELIVERY_ERROR_MAX 255
#define HUB_DELIVERY_ERROR_SIZE (HUB_DELIVERY_ERROR_MAX + 1)

typedef struct hub_webhook {
    char id[HUB_ID_SIZE];
    char workspace_id[HUB_ID_SIZE];
    char url[HUB_WEBHOOK_URL_SIZE];
    char events[HUB_WEBHOOK_EVENTS_SIZE]; /* JSON array of patterns (webhook_core.h) */
    bool enabled;
    unsigned failures; /* consecutive failed attempts; 0 after a success */
    int64_t retry_at;  /* no attempt before this; NONE = at once */
    int64_t disabled_at;
    char last_error[HUB_DELIVERY_ERROR_SIZE]; /* of the last failed attempt, "" if none */
    int64_t last_success_at;
    int64_t created_at;
    int64_t updated_at;
} hub_webhook_t;

typedef struct hub_webhook_list {
    hub_webhook_t *items;
    size_t count;
} hub_webhook_list_t;
void hub_webhook_list_free(hub_webhook_list_t *l);

/* Registers a webhook for `url` (validated by the caller, 1..2048 bytes)
 * with the filter `events` (a JSON array of strings, normalised; NULL =
 * ["*"]). A secret is generated, stored sealed, and written once to
 * `secret_out`: show it once, then wipe it. `max_webhooks` caps the
 * workspace's webhooks atomically (CN_EEXHAUSTED); 0 = no cap. `out` may
 * be NULL. */
int hub_store_webhook_create(hub_store_t *st, const char *workspace_id, const char *url,
                             const char *events, size_t max_webhooks,
                             char secret_out[static HUB_WEBHOOK_SECRET_SIZE], hub_webhook_t *out);
/* The workspace's webhooks, oldest first. */
int hub_store_webhook_list(hub_store_t *st, const char *workspace_id, hub_webhook_list_t *out);
int hub_store_webhook_get(hub_store_t *st, const char *workspace_id, const char *id,
                          hub_webhook_t *out);
/* Deletes a webhook with its queue and delivery log. */
int hub_store_webhook_delete(hub_store_t *st, const char *workspace_id, const char *id);
/* Disables a webhook (no new deliveries are queued for it; the queued ones
 * wait) or enables it again (failures and retry_at reset, so its queue goes
 * out at once). `out` may be NULL. */
int hub_store_webhook_set_enabled(hub_store_t *st, const char *workspace_id, const char *id,
                                  bool enabled, hub_webhook_t *out);
/* Opens the webhook's sealed secret into `out` (wipe it after use).
 * CN_EAUTH when it does not open (a different hub secret key, a row
 * tampered with). */
int hub_store_webhook_secret(hub_store_t *st, const char *workspace_id, const char *id,
                             char out[static HUB_WEBHOOK_SECRET_SIZE]);

enum hub_delivery_state {
    HUB_DELIVERY_PENDING = 0, /* queued, or being retried */
    HUB_DELIVERY_SENT,        /* the receiver answered 2xx */
    HUB_DELIVERY_DROPPED,     /* given up: its event is gone, or the queue overflowed */
};
/* "pending", "delivered", "dropped"; never NULL. */
const char *hub_delivery_state_name(int state);

typedef struct hub_delivery {
    int64_t id; /* increasing; the X-Connect-Delivery header */
    char webhook_id[HUB_ID_SIZE];
    char workspace_id[HUB_ID_SIZE];
    int64_t event_id;
    char event_type[HUB_EVENT_TYPE_SIZE];
    enum hub_delivery_state state;
    unsigned attempts;
    int last_status; /* HTTP status of the last attempt; 0 = none (no answer) */
    char last_error[HUB_DELIVERY_ERROR_SIZE];
    int64_t created_at;
    int64_t last_attempt_at;
    int64_t delivered_at;
} hub_delivery_t;

typedef struct hub_delivery_list {
    hub_delivery_t *items;
    size_t count;
} hub_delivery_list_t;
void hub_delivery_list_free(hub_delivery_list_t *l);

/* The delivery log of a webhook, newest first, at most `limit` (0 =
 * HUB_EVENTS_DEFAULT, capped at HUB_EVENTS_MAX). CN_ENOTFOUND when the
 * webhook is not in the workspace. */
int hub_store_delivery_list(hub_store_t *st, const char *workspace_id, const char *webhook_id,
                            size_t limit, hub_delivery_list_t *out);

/* The delivery worker's calls; hub-wide by nature. */
/* Enabled webhooks with a pending delivery whose retry_at has passed, at
 * most `limit` (0 = HUB_LIST_MAX), longest waiting first. */
int hub_store_webhook_due(hub_store_t *st, size_t limit, hub_webhook_list_t *out);
/* The oldest pending delivery of the webhook and its event (both outputs
 * are overwritten; release the event with hub_event_clear()). The event's
 * id is 0 when it no longer exists (pruned). CN_ENOTFOUND when nothing is
 * pending. */
int hub_store_delivery_next(hub_store_t *st, const char *webhook_id, hub_delivery_t *out,
                            hub_event_t *event);

/* What became of one attempt (or of a delivery given up unsent). */
typedef struct hub_delivery_outcome {
    enum hub_delivery_state state; /* SENT, DROPPED, or PENDING: failed, to be retried */
    int status;                    /* HTTP status, 0 = no answer */
    const char *error;             /* NULL/"" = none; cut at HUB_DELIVERY_ERROR_MAX */
    bool attempted;                /* counts as an attempt (false for a drop unsent) */
    /* PENDING only: when the webhook may try again, and whether this failure
     * disables it. */
    int64_t retry_at;
    bool disable;
} hub_delivery_outcome_t;
/* Records the outcome on the delivery and its webhook in one transaction:
 * SENT resets the webhook's failures and retry_at; PENDING counts a
 * failure and sets retry_at (and disables the webhook when asked). */
int hub_store_delivery_record(hub_store_t *st, const char *webhook_id, int64_t delivery_id,
                              const hub_delivery_outcome_t *o);
/* Housekeeping, hub-wide: keeps the newest `keep_log` finished deliveries
 * of each webhook, and drops pending ones beyond the newest `max_pending`
 * per webhook (a receiver down for long must not grow the queue without
 * bound). `dropped` (may be NULL) gets how many pending ones were dropped. */
int hub_store_delivery_prune(hub_store_t *st, size_t keep_log, size_t max_pending, size_t *dropped);
/* Pending deliveries, hub-wide (metrics). */
int hub_store_delivery_pending_count(hub_store_t *st, size_t *count);

#endif
