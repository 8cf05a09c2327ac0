/* The SQLite backend of the store: schema, migrations and every query.
 *
 * Rules this file keeps:
 * - Statements are constant text with bound parameters; nothing is built
 *   from strings. They are prepared once per handle and reset after use.
 * - Every statement that takes a workspace has it in its WHERE clause.
 * - Read-then-write operations run in BEGIN IMMEDIATE transactions, so two
 *   hubs (or a hub and `init`) on one file cannot interleave them.
 * - Times are INTEGER ms since the epoch (UTC); NULL means "never".
 *
 * Durability: journal_mode=WAL with synchronous=NORMAL. A commit appends
 * the transaction to the -wal file with write() before COMMIT returns, so
 * once a call here has returned 0 its data is in the operating system's
 * hands: killing the process (kill -9, a crash, OOM) loses nothing
 * committed, and the next open replays the WAL. What NORMAL gives up is an
 * fsync per commit: on power loss or a kernel crash the last commits since
 * the previous checkpoint may be lost, though the database stays
 * consistent (never corrupt). hub_store_options_t.sync_full selects
 * synchronous=FULL for deployments that want those too. */
#include "store_backend.h"
#include "store_sqlite_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <sodium.h>

#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_log.h"

/* "CNHB" in the header's application_id: marks a connect-hub database. */
#define APPLICATION_ID 1129203778
#define BUSY_TIMEOUT_MS 5000

/* ---- schema -------------------------------------------------------------
 * migrations[i] takes a database from user_version i to i + 1 and sets it.
 * Steps are only ever appended; a released step is never edited. They run
 * in one transaction with the version bump, so a crash mid-way leaves the
 * old version. docs/store.md describes each. */
static const char *const migrations[] = {
    /* 1: meta, workspaces, API tokens, agents, tunnels, name/port releases,
     *    events */
    "PRAGMA application_id = 1129203778;\n"
    "CREATE TABLE meta (\n"
    "  key TEXT PRIMARY KEY NOT NULL,\n"
    "  value BLOB NOT NULL\n"
    ") STRICT;\n"
    "CREATE TABLE workspaces (\n"
    "  id TEXT PRIMARY KEY NOT NULL,\n"
    "  name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),\n"
    "  created_at INTEGER NOT NULL\n"
    ") STRICT;\n"
    "CREATE TABLE api_tokens (\n"
    "  id TEXT PRIMARY KEY NOT NULL,\n"
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,\n"
    "  name TEXT NOT NULL DEFAULT '',\n"
    "  token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),\n"
    "  admin INTEGER NOT NULL CHECK (admin IN (0, 1)),\n"
    "  created_at INTEGER NOT NULL\n"
    ") STRICT;\n"
    "CREATE INDEX api_tokens_workspace ON api_tokens(workspace_id);\n"
    "CREATE TABLE agents (\n"
    "  id TEXT PRIMARY KEY NOT NULL,\n"
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,\n"
    "  name TEXT,\n"
    "  enroll_hash BLOB UNIQUE CHECK (enroll_hash IS NULL OR length(enroll_hash) = 32),\n"
    "  enroll_expires_at INTEGER,\n"
    "  public_key BLOB UNIQUE CHECK (public_key IS NULL OR length(public_key) = 32),\n"
    "  enrolled_at INTEGER,\n"
    "  connected INTEGER NOT NULL DEFAULT 0 CHECK (connected IN (0, 1)),\n"
    "  connected_at INTEGER,\n"
    "  disconnected_at INTEGER,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL,\n"
    "  UNIQUE (workspace_id, id)\n"
    ") STRICT;\n"
    "CREATE TABLE tunnels (\n"
    "  id TEXT PRIMARY KEY NOT NULL,\n"
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,\n"
    "  agent_id TEXT NOT NULL,\n"
    "  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),\n"
    "  target_host TEXT NOT NULL,\n"
    "  target_port INTEGER NOT NULL CHECK (target_port BETWEEN 1 AND 65535),\n"
    "  protocol TEXT NOT NULL CHECK (protocol IN ('auto', 'tcp', 'udp', 'http', 'https')),\n"
    "  public INTEGER NOT NULL CHECK (public IN (0, 1)),\n"
    "  hub_port INTEGER UNIQUE CHECK (hub_port IS NULL OR hub_port BETWEEN 1 AND 65535),\n"
    "  status TEXT NOT NULL\n"
    "    CHECK (status IN ('connecting', 'active', 'paused', 'error', 'expired')),\n"
    "  metadata TEXT NOT NULL DEFAULT '{}',\n"
    "  connection_string TEXT,\n"
    "  last_error TEXT,\n"
    "  http_user TEXT,\n"
    "  http_password_hash TEXT,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  connected_at INTEGER,\n"
    "  expires_at INTEGER,\n"
    "  updated_at INTEGER NOT NULL,\n"
    "  UNIQUE (workspace_id, name),\n"
    "  FOREIGN KEY (workspace_id, agent_id) REFERENCES agents(workspace_id, id)\n"
    "    ON DELETE CASCADE\n"
    ") STRICT;\n"
    "CREATE INDEX tunnels_agent ON tunnels(workspace_id, agent_id);\n"
    "CREATE UNIQUE INDEX tunnels_public_name ON tunnels(name) WHERE public = 1;\n"
    "CREATE INDEX tunnels_expiry ON tunnels(expires_at) WHERE expires_at IS NOT NULL;\n"
    /* A public name or hub port a workspace let go of stays its own for the
     * release hold, so nobody else can take over a URL people still use. */
    "CREATE TABLE releases (\n"
    "  kind TEXT NOT NULL CHECK (kind IN ('name', 'port')),\n"
    "  value TEXT NOT NULL,\n"
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,\n"
    "  released_at INTEGER NOT NULL,\n"
    "  PRIMARY KEY (kind, value)\n"
    ") STRICT, WITHOUT ROWID;\n"
    "CREATE TABLE events (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,\n"
    "  type TEXT NOT NULL,\n"
    "  tunnel_id TEXT,\n"
    "  agent_id TEXT,\n"
    "  data TEXT NOT NULL DEFAULT '{}',\n"
    "  created_at INTEGER NOT NULL\n"
    ") STRICT;\n"
    "CREATE INDEX events_workspace ON events(workspace_id, id);\n"
    "CREATE INDEX events_tunnel ON events(workspace_id, tunnel_id, id);\n"
    "CREATE INDEX events_created ON events(created_at);\n"
    "PRAGMA user_version = 1;\n",
    /* 2: token scopes (operator, admin, member, agent), agent-bound tokens
     *    that die with their agent, lastUsedAt. The table is rebuilt: the
     *    composite foreign key to agents cannot be added by ALTER TABLE.
     *    Existing tokens: the one `init` made (named "admin", minted in the
     *    first workspace's own transaction, so with its creation time)
     *    becomes operator; other admin tokens become workspace admins;
     *    tokens that enrollment minted ("agent <id>") become agent tokens
     *    of that agent, or are dropped when the agent is gone (they should
     *    have died with it); the rest become members. */
    "CREATE TABLE api_tokens_v2 (\n"
    "  id TEXT PRIMARY KEY NOT NULL,\n"
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,\n"
    "  name TEXT NOT NULL DEFAULT '',\n"
    "  token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),\n"
    "  scope TEXT NOT NULL CHECK (scope IN ('operator', 'admin', 'member', 'agent')),\n"
    "  agent_id TEXT,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  last_used_at INTEGER,\n"
    "  CHECK ((scope = 'agent') = (agent_id IS NOT NULL)),\n"
    "  FOREIGN KEY (workspace_id, agent_id) REFERENCES agents(workspace_id, id)\n"
    "    ON DELETE CASCADE\n"
    ") STRICT;\n"
    "INSERT INTO api_tokens_v2 (id, workspace_id, name, token_hash, scope, agent_id, created_at)\n"
    "  SELECT t.id, t.workspace_id, t.name, t.token_hash,\n"
    "    CASE WHEN t.admin = 1 AND t.name = 'admin' AND t.created_at = w.created_at\n"
    "              AND w.id = (SELECT id FROM workspaces ORDER BY created_at, rowid LIMIT 1)\n"
    "           THEN 'operator'\n"
    "         WHEN t.admin = 1 THEN 'admin'\n"
    "         WHEN a.id IS NOT NULL THEN 'agent'\n"
    "         ELSE 'member' END,\n"
    "    a.id, t.created_at\n"
    "  FROM api_tokens t JOIN workspaces w ON w.id = t.workspace_id\n"
    "  LEFT JOIN agents a ON t.admin = 0 AND a.workspace_id = t.workspace_id\n"
    "    AND t.name = 'agent ' || a.id\n"
    "  WHERE NOT (t.admin = 0 AND a.id IS NULL\n"
    "    AND length(t.name) = 42 AND substr(t.name, 1, 6) = 'agent ');\n"
    "DROP TABLE api_tokens;\n"
    "ALTER TABLE api_tokens_v2 RENAME TO api_tokens;\n"
    "CREATE INDEX api_tokens_workspace ON api_tokens(workspace_id, created_at);\n"
    "CREATE INDEX api_tokens_agent ON api_tokens(workspace_id, agent_id) "
    "WHERE agent_id IS NOT NULL;\n"
    "PRAGMA user_version = 2;\n",
    /* 3: the protocol plugin of a tunnel (protocol auto, plugin names) */
    "ALTER TABLE tunnels ADD COLUMN plugin TEXT\n"
    "  CHECK (plugin IS NULL OR length(plugin) BETWEEN 1 AND 31);\n"
    "PRAGMA user_version = 3;\n",
    /* 4: shares of tunnels and their access log. Tokens are stored as keyed
     *    hashes; a share belongs to a tunnel of its own workspace (the
     *    composite key needs a unique index on tunnels(workspace_id, id)).
     *    expired_event records that share.expired was written. */
    "CREATE UNIQUE INDEX tunnels_workspace_id ON tunnels(workspace_id, id);\n"
    "CREATE TABLE shares (\n"
    "  id TEXT PRIMARY KEY NOT NULL,\n"
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,\n"
    "  tunnel_id TEXT NOT NULL,\n"
    "  token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),\n"
    "  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),\n"
    "  description TEXT NOT NULL DEFAULT '',\n"
    "  allowed_methods TEXT NOT NULL DEFAULT '[]',\n"
    "  allowed_paths TEXT NOT NULL DEFAULT '[]',\n"
    "  rate_limit_per_minute INTEGER NOT NULL\n"
    "    CHECK (rate_limit_per_minute BETWEEN 1 AND 1000),\n"
    "  http_user TEXT,\n"
    "  http_password_hash TEXT,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  expires_at INTEGER,\n"
    "  revoked_at INTEGER,\n"
    "  expired_event INTEGER NOT NULL DEFAULT 0 CHECK (expired_event IN (0, 1)),\n"
    "  FOREIGN KEY (workspace_id, tunnel_id) REFERENCES tunnels(workspace_id, id)\n"
    "    ON DELETE CASCADE\n"
    ") STRICT;\n"
    "CREATE INDEX shares_tunnel ON shares(workspace_id, tunnel_id);\n"
    "CREATE INDEX shares_expiry ON shares(expires_at)\n"
    "  WHERE expires_at IS NOT NULL AND revoked_at IS NULL AND expired_event = 0;\n"
    "CREATE TABLE share_access_log (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  share_id TEXT NOT NULL REFERENCES shares(id) ON DELETE CASCADE,\n"
    "  at INTEGER NOT NULL,\n"
    "  method TEXT NOT NULL,\n"
    "  path TEXT NOT NULL,\n"
    "  status INTEGER NOT NULL,\n"
    "  latency_ms INTEGER NOT NULL,\n"
    "  client TEXT NOT NULL\n"
    ") STRICT;\n"
    "CREATE INDEX share_access_log_share ON share_access_log(share_id, id);\n"
    "CREATE INDEX share_access_log_at ON share_access_log(at);\n"
    "PRAGMA user_version = 4;\n",
    /* 5: webhooks (sealed secrets, event filters, failure state) and their
     *    delivery queue and log. Deliveries name their workspace for the
     *    log's scoping; event ids are not foreign keys (events are pruned,
     *    a delivery whose event is gone is dropped). */
    "CREATE TABLE webhooks (\n"
    "  id TEXT PRIMARY KEY NOT NULL,\n"
    "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,\n"
    "  url TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),\n"
    "  secret BLOB NOT NULL CHECK (length(secret) > 32),\n"
    "  events TEXT NOT NULL DEFAULT '[\"*\"]',\n"
    "  enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),\n"
    "  failures INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),\n"
    "  retry_at INTEGER,\n"
    "  disabled_at INTEGER,\n"
    "  last_error TEXT,\n"
    "  last_success_at INTEGER,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL\n"
    ") STRICT;\n"
    "CREATE INDEX webhooks_workspace ON webhooks(workspace_id, created_at);\n"
    "CREATE TABLE webhook_deliveries (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,\n"
    "  workspace_id TEXT NOT NULL,\n"
    "  event_id INTEGER NOT NULL,\n"
    "  event_type TEXT NOT NULL,\n"
    "  state TEXT NOT NULL DEFAULT 'pending'\n"
    "    CHECK (state IN ('pending', 'delivered', 'dropped')),\n"
    "  attempts INTEGER NOT NULL DEFAULT 0,\n"
    "  last_status INTEGER,\n"
    "  last_error TEXT,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  last_attempt_at INTEGER,\n"
    "  delivered_at INTEGER\n"
    ") STRICT;\n"
    "CREATE INDEX webhook_deliveries_log ON webhook_deliveries(webhook_id, id);\n"
    "CREATE INDEX webhook_deliveries_queue ON webhook_deliveries(webhook_id, id)\n"
    "  WHERE state = 'pending';\n"
    "PRAGMA user_version = 5;\n",
    /* 6: a tunnel's own idle timeout for public TCP connections (NULL: the
     *    hub's --tcp-idle-timeout). */
    "ALTER TABLE tunnels ADD COLUMN idle_timeout INTEGER\n"
    "  CHECK (idle_timeout IS NULL OR idle_timeout BETWEEN 0 AND 604800);\n"
    "PRAGMA user_version = 6;\n",
    /* 7: the share access log moved to a file of its own (PATH-log,
     *    store_sqlite_log.c); migrate() copies the rows there, keeping their
     *    ids, right before this step drops the table. */
    "DROP TABLE share_access_log;\n"
    "DELETE FROM sqlite_sequence WHERE name = 'share_access_log';\n"
    "PRAGMA user_version = 7;\n",
};
/* The step that drops the main file's share_access_log (index into
 * migrations[]): the rows are copied into the log file before it runs. */
#define MIGRATION_LOG_MOVED 6
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* ---- statements -------------------------------------------------------- */

#define A_COLS                                                                                     \
    "id, workspace_id, name, public_key, connected, created_at, enroll_expires_at, enrolled_at, "  \
    "connected_at, disconnected_at, updated_at"
#define T_COLS                                                                                     \
    "id, workspace_id, agent_id, name, target_host, target_port, protocol, public, hub_port, "     \
    "status, metadata, connection_string, last_error, http_user, http_password_hash, created_at, " \
    "connected_at, expires_at, updated_at, plugin, idle_timeout"
#define E_COLS "id, workspace_id, type, tunnel_id, agent_id, data, created_at"
#define K_COLS "id, workspace_id, name, scope, agent_id, created_at, last_used_at"
#define W_COLS                                                                                     \
    "id, workspace_id, url, events, enabled, failures, retry_at, disabled_at, last_error, "        \
    "last_success_at, created_at, updated_at"
#define D_COLS                                                                                     \
    "id, webhook_id, workspace_id, event_id, event_type, state, attempts, last_status, "           \
    "last_error, created_at, last_attempt_at, delivered_at"
#define S_COLS                                                                                     \
    "id, workspace_id, tunnel_id, name, description, allowed_methods, allowed_paths, "             \
    "rate_limit_per_minute, http_user, http_password_hash, created_at, expires_at, revoked_at"

enum q {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_SAVEPOINT,
    Q_SAVEPOINT_RELEASE,
    Q_SAVEPOINT_ROLLBACK,
    Q_USER_VERSION,
    Q_DATA_VERSION,
    Q_META_GET,
    Q_META_INIT,
    Q_WS_INSERT,
    Q_WS_LIST,
    Q_WS_GET,
    Q_WS_ANY,
    Q_TOKEN_INSERT,
    Q_TOKEN_FIND,
    Q_TOKEN_DELETE,
    Q_TOKEN_LIST,
    Q_TOKEN_GET,
    Q_TOKEN_TOUCH,
    Q_AGENT_COUNT,
    Q_AGENT_INSERT,
    Q_AGENT_LIST,
    Q_AGENT_GET,
    Q_AGENT_IN_WS,
    Q_AGENT_BY_KEY,
    Q_AGENT_BY_ENROLL,
    Q_AGENT_BURN,
    Q_AGENT_BIND,
    Q_AGENT_DELETE,
    Q_AGENT_UP,
    Q_AGENT_DOWN,
    Q_AGENT_RESET,
    Q_RELEASE_AGENT_NAMES,
    Q_RELEASE_AGENT_PORTS,
    Q_TUN_INSERT,
    Q_TUN_LIST,
    Q_TUN_GET,
    Q_TUN_GET_NAME,
    Q_TUN_PUBLIC,
    Q_TUN_BY_PORT,
    Q_TUN_COUNT,
    Q_TUN_COUNT_AGENT,
    Q_TUN_EXPIRED,
    Q_TUN_UPDATE,
    Q_TUN_DELETE,
    Q_NAME_USED_WS,
    Q_PUBLIC_NAME_USED,
    Q_PORT_USED,
    Q_RELEASE_TUN_NAME,
    Q_RELEASE_TUN_PORT,
    Q_RELEASE_PUT,
    Q_RELEASE_HELD,
    Q_RELEASE_CLAIM,
    Q_RELEASE_PRUNE,
    Q_EV_INSERT,
    Q_EV_FROM,
    Q_EV_FROM_TUNNEL,
    Q_EV_LATEST,
    Q_EV_LATEST_TUNNEL,
    Q_EV_PRUNE,
    Q_WH_COUNT,
    Q_WH_INSERT,
    Q_WH_LIST,
    Q_WH_GET,
    Q_WH_DELETE,
    Q_WH_ENABLE,
    Q_WH_DISABLE,
    Q_WH_SEALED,
    Q_WH_DUE,
    Q_WH_SUCCESS,
    Q_WH_FAILURE,
    Q_DL_INSERT,
    Q_DL_NEXT,
    Q_DL_RECORD,
    Q_DL_LIST,
    Q_DL_PRUNE_LOG,
    Q_DL_PRUNE_PENDING,
    Q_DL_PENDING,
    Q_EV_CAP,
    Q_TUN_IN_WS,
    Q_SHARE_INSERT,
    Q_SHARE_LIST,
    Q_SHARE_LIST_TUNNEL,
    Q_SHARE_GET,
    Q_SHARE_FIND,
    Q_SHARE_REVOKE,
    Q_SHARE_EXPIRED,
    Q_SHARE_MARK,
    Q_SLOG_RUNS,
    Q_SLOG_ROWS,
    Q_COUNT
};

static const char *const sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SAVEPOINT] = "SAVEPOINT cn",
    [Q_SAVEPOINT_RELEASE] = "RELEASE cn",
    [Q_SAVEPOINT_ROLLBACK] = "ROLLBACK TO cn",
    [Q_USER_VERSION] = "PRAGMA user_version",
    /* The main file's only: the access log's commits (alog) are not
     * changes of shares or tunnels. */
    [Q_DATA_VERSION] = "PRAGMA main.data_version",
    [Q_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [Q_META_INIT] = "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",

    [Q_WS_INSERT] = "INSERT INTO workspaces (id, name, created_at) VALUES (?1, ?2, ?3)",
    [Q_WS_LIST] = "SELECT id, name, created_at FROM workspaces ORDER BY created_at, rowid LIMIT ?1",
    [Q_WS_GET] = "SELECT id, name, created_at FROM workspaces WHERE id = ?1",
    [Q_WS_ANY] = "SELECT 1 FROM workspaces LIMIT 1",

    [Q_TOKEN_INSERT] = "INSERT INTO api_tokens (id, workspace_id, name, token_hash, scope, "
                       "agent_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_TOKEN_FIND] = "SELECT " K_COLS ", token_hash FROM api_tokens WHERE token_hash = ?1",
    [Q_TOKEN_DELETE] = "DELETE FROM api_tokens WHERE workspace_id = ?1 AND id = ?2",
    [Q_TOKEN_LIST] = "SELECT " K_COLS " FROM api_tokens WHERE workspace_id = ?1 "
                     "ORDER BY created_at, rowid LIMIT ?2",
    [Q_TOKEN_GET] = "SELECT " K_COLS " FROM api_tokens WHERE workspace_id = ?1 AND id = ?2",
    [Q_TOKEN_TOUCH] = "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1 "
                      "AND (last_used_at IS NULL OR last_used_at <= ?3)",
    [Q_AGENT_COUNT] = "SELECT count(*) FROM agents WHERE workspace_id = ?1",

    [Q_AGENT_INSERT] = "INSERT INTO agents (id, workspace_id, name, enroll_hash, "
                       "enroll_expires_at, created_at, updated_at) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    [Q_AGENT_LIST] = "SELECT " A_COLS " FROM agents WHERE workspace_id = ?1 "
                     "ORDER BY created_at, rowid LIMIT ?2",
    [Q_AGENT_GET] = "SELECT " A_COLS " FROM agents WHERE workspace_id = ?1 AND id = ?2",
    [Q_AGENT_IN_WS] = "SELECT 1 FROM agents WHERE workspace_id = ?1 AND id = ?2",
    [Q_AGENT_BY_KEY] = "SELECT " A_COLS " FROM agents WHERE public_key = ?1",
    [Q_AGENT_BY_ENROLL] = "SELECT " A_COLS ", enroll_hash FROM agents WHERE enroll_hash = ?1",
    [Q_AGENT_BURN] = "UPDATE agents SET enroll_hash = NULL, updated_at = ?2 WHERE id = ?1",
    [Q_AGENT_BIND] = "UPDATE agents SET public_key = ?3, enroll_hash = NULL, "
                     "enroll_expires_at = NULL, enrolled_at = ?4, updated_at = ?4 "
                     "WHERE id = ?1 AND enroll_hash = ?2 AND public_key IS NULL",
    [Q_AGENT_DELETE] = "DELETE FROM agents WHERE workspace_id = ?1 AND id = ?2",
    [Q_AGENT_UP] = "UPDATE agents SET connected = 1, connected_at = ?3, updated_at = ?3 "
                   "WHERE workspace_id = ?1 AND id = ?2",
    [Q_AGENT_DOWN] = "UPDATE agents SET connected = 0, disconnected_at = ?3, updated_at = ?3 "
                     "WHERE workspace_id = ?1 AND id = ?2",
    [Q_AGENT_RESET] = "UPDATE agents SET connected = 0, disconnected_at = ?1, updated_at = ?1 "
                      "WHERE connected = 1",
    [Q_RELEASE_AGENT_NAMES] =
        "INSERT OR REPLACE INTO releases (kind, value, workspace_id, released_at) "
        "SELECT 'name', name, workspace_id, ?3 FROM tunnels "
        "WHERE workspace_id = ?1 AND agent_id = ?2 AND public = 1",
    [Q_RELEASE_AGENT_PORTS] =
        "INSERT OR REPLACE INTO releases (kind, value, workspace_id, released_at) "
        "SELECT 'port', CAST(hub_port AS TEXT), workspace_id, ?3 FROM tunnels "
        "WHERE workspace_id = ?1 AND agent_id = ?2 AND hub_port IS NOT NULL",

    [Q_TUN_INSERT] = "INSERT INTO tunnels (" T_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                     "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
    [Q_TUN_LIST] = "SELECT " T_COLS " FROM tunnels WHERE workspace_id = ?1 "
                   "AND (?2 IS NULL OR agent_id = ?2) AND (?3 IS NULL OR status = ?3) "
                   "ORDER BY created_at, rowid LIMIT ?4",
    [Q_TUN_GET] = "SELECT " T_COLS " FROM tunnels WHERE workspace_id = ?1 AND id = ?2",
    [Q_TUN_GET_NAME] = "SELECT " T_COLS " FROM tunnels WHERE workspace_id = ?1 AND name = ?2",
    [Q_TUN_PUBLIC] = "SELECT " T_COLS " FROM tunnels WHERE name = ?1 AND public = 1",
    [Q_TUN_BY_PORT] = "SELECT " T_COLS " FROM tunnels WHERE hub_port = ?1",
    [Q_TUN_COUNT] = "SELECT count(*) FROM tunnels WHERE workspace_id = ?1",
    [Q_TUN_COUNT_AGENT] = "SELECT count(*) FROM tunnels WHERE workspace_id = ?1 AND agent_id = ?2",
    [Q_TUN_EXPIRED] = "SELECT " T_COLS " FROM tunnels WHERE expires_at IS NOT NULL "
                      "AND expires_at <= ?1 AND status <> 'expired' "
                      "ORDER BY expires_at, rowid LIMIT ?2",
    [Q_TUN_UPDATE] = "UPDATE tunnels SET name = ?3, status = ?4, metadata = ?5, last_error = ?6, "
                     "connected_at = ?7, connection_string = ?8, updated_at = ?9, plugin = ?10, "
                     "idle_timeout = ?11 "
                     "WHERE workspace_id = ?1 AND id = ?2",
    [Q_TUN_DELETE] = "DELETE FROM tunnels WHERE workspace_id = ?1 AND id = ?2",
    [Q_NAME_USED_WS] = "SELECT 1 FROM tunnels WHERE workspace_id = ?1 AND name = ?2 AND id <> ?3",
    [Q_PUBLIC_NAME_USED] = "SELECT 1 FROM tunnels WHERE name = ?1 AND public = 1 AND id <> ?2",
    [Q_PORT_USED] = "SELECT 1 FROM tunnels WHERE hub_port = ?1",
    [Q_RELEASE_TUN_NAME] = "INSERT OR REPLACE INTO releases (kind, value, workspace_id, "
                           "released_at) SELECT 'name', name, workspace_id, ?3 FROM tunnels "
                           "WHERE workspace_id = ?1 AND id = ?2 AND public = 1",
    [Q_RELEASE_TUN_PORT] =
        "INSERT OR REPLACE INTO releases (kind, value, workspace_id, released_at) "
        "SELECT 'port', CAST(hub_port AS TEXT), workspace_id, ?3 FROM tunnels "
        "WHERE workspace_id = ?1 AND id = ?2 AND hub_port IS NOT NULL",
    [Q_RELEASE_PUT] = "INSERT OR REPLACE INTO releases (kind, value, workspace_id, released_at) "
                      "VALUES (?1, ?2, ?3, ?4)",
    [Q_RELEASE_HELD] = "SELECT workspace_id FROM releases WHERE kind = ?1 AND value = ?2 "
                       "AND released_at > ?3",
    [Q_RELEASE_CLAIM] = "DELETE FROM releases WHERE kind = ?1 AND value = ?2",
    [Q_RELEASE_PRUNE] = "DELETE FROM releases WHERE released_at <= ?1",

    [Q_EV_INSERT] = "INSERT INTO events (workspace_id, type, tunnel_id, agent_id, data, "
                    "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_EV_FROM] = "SELECT " E_COLS " FROM events WHERE workspace_id = ?1 AND created_at >= ?2 "
                  "AND id > ?3 ORDER BY id LIMIT ?4",
    [Q_EV_FROM_TUNNEL] = "SELECT " E_COLS " FROM events WHERE workspace_id = ?1 "
                         "AND tunnel_id = ?5 AND created_at >= ?2 AND id > ?3 "
                         "ORDER BY id LIMIT ?4",
    [Q_EV_LATEST] = "SELECT " E_COLS " FROM events WHERE workspace_id = ?1 "
                    "ORDER BY id DESC LIMIT ?4",
    [Q_EV_LATEST_TUNNEL] = "SELECT " E_COLS " FROM events WHERE workspace_id = ?1 "
                           "AND tunnel_id = ?5 ORDER BY id DESC LIMIT ?4",
    [Q_EV_PRUNE] = "DELETE FROM events WHERE created_at < ?1",

    [Q_WH_COUNT] = "SELECT count(*) FROM webhooks WHERE workspace_id = ?1",
    [Q_WH_INSERT] = "INSERT INTO webhooks (id, workspace_id, url, secret, events, created_at, "
                    "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    [Q_WH_LIST] = "SELECT " W_COLS " FROM webhooks WHERE workspace_id = ?1 "
                  "AND (?2 = 0 OR enabled = 1) ORDER BY created_at, rowid LIMIT ?3",
    [Q_WH_GET] = "SELECT " W_COLS " FROM webhooks WHERE workspace_id = ?1 AND id = ?2",
    [Q_WH_DELETE] = "DELETE FROM webhooks WHERE workspace_id = ?1 AND id = ?2",
    [Q_WH_ENABLE] = "UPDATE webhooks SET enabled = 1, failures = 0, retry_at = NULL, "
                    "disabled_at = NULL, updated_at = ?3 WHERE workspace_id = ?1 AND id = ?2",
    [Q_WH_DISABLE] = "UPDATE webhooks SET enabled = 0, disabled_at = coalesce(disabled_at, ?3), "
                     "updated_at = ?3 WHERE workspace_id = ?1 AND id = ?2",
    [Q_WH_SEALED] = "SELECT secret FROM webhooks WHERE workspace_id = ?1 AND id = ?2",
    [Q_WH_DUE] = "SELECT " W_COLS " FROM webhooks w WHERE enabled = 1 "
                 "AND (retry_at IS NULL OR retry_at <= ?1) AND EXISTS (SELECT 1 FROM "
                 "webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'pending') "
                 "ORDER BY coalesce(retry_at, 0), created_at, rowid LIMIT ?2",
    [Q_WH_SUCCESS] = "UPDATE webhooks SET failures = 0, retry_at = NULL, last_success_at = ?2 "
                     "WHERE id = ?1",
    [Q_WH_FAILURE] = "UPDATE webhooks SET failures = failures + 1, retry_at = ?2, last_error = ?3, "
                     "enabled = CASE WHEN ?4 THEN 0 ELSE enabled END, "
                     "disabled_at = CASE WHEN ?4 THEN ?5 ELSE disabled_at END, "
                     "updated_at = CASE WHEN ?4 THEN ?5 ELSE updated_at END WHERE id = ?1",
    [Q_DL_INSERT] = "INSERT INTO webhook_deliveries (webhook_id, workspace_id, event_id, "
                    "event_type, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_DL_NEXT] = "SELECT d.id, d.webhook_id, d.workspace_id, d.event_id, d.event_type, d.state, "
                  "d.attempts, d.last_status, d.last_error, d.created_at, d.last_attempt_at, "
                  "d.delivered_at, e.id, e.workspace_id, e.type, e.tunnel_id, e.agent_id, e.data, "
                  "e.created_at FROM webhook_deliveries d LEFT JOIN events e "
                  "ON e.id = d.event_id AND e.workspace_id = d.workspace_id "
                  "WHERE d.webhook_id = ?1 AND d.state = 'pending' ORDER BY d.id LIMIT 1",
    [Q_DL_RECORD] = "UPDATE webhook_deliveries SET state = ?3, attempts = attempts + ?4, "
                    "last_status = ?5, last_error = ?6, "
                    "last_attempt_at = CASE WHEN ?4 > 0 THEN ?7 ELSE last_attempt_at END, "
                    "delivered_at = CASE WHEN ?3 = 'delivered' THEN ?7 ELSE delivered_at END "
                    "WHERE webhook_id = ?1 AND id = ?2 AND state = 'pending'",
    [Q_DL_LIST] = "SELECT " D_COLS " FROM webhook_deliveries WHERE workspace_id = ?1 "
                  "AND webhook_id = ?2 ORDER BY id DESC LIMIT ?3",
    [Q_DL_PRUNE_LOG] = "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM (SELECT id, "
                       "row_number() OVER (PARTITION BY webhook_id ORDER BY id DESC) AS n "
                       "FROM webhook_deliveries WHERE state <> 'pending') WHERE n > ?1)",
    [Q_DL_PRUNE_PENDING] =
        "UPDATE webhook_deliveries SET state = 'dropped', last_error = 'dropped: the queue of "
        "this webhook was full', last_attempt_at = ?2 WHERE id IN (SELECT id FROM (SELECT id, "
        "row_number() OVER (PARTITION BY webhook_id ORDER BY id DESC) AS n "
        "FROM webhook_deliveries WHERE state = 'pending') WHERE n > ?1)",
    [Q_DL_PENDING] = "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'",
    /* Keeps the newest ?1 of each workspace. */
    [Q_EV_CAP] = "DELETE FROM events WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER "
                 "(PARTITION BY workspace_id ORDER BY id DESC) AS n FROM events) WHERE n > ?1)",

    [Q_TUN_IN_WS] = "SELECT 1 FROM tunnels WHERE workspace_id = ?1 AND id = ?2",
    [Q_SHARE_INSERT] = "INSERT INTO shares (" S_COLS ", token_hash) VALUES (?1, ?2, ?3, ?4, ?5, "
                       "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    [Q_SHARE_LIST] = "SELECT " S_COLS " FROM shares WHERE workspace_id = ?1 "
                     "ORDER BY created_at, rowid LIMIT ?2",
    [Q_SHARE_LIST_TUNNEL] = "SELECT " S_COLS " FROM shares WHERE workspace_id = ?1 "
                            "AND tunnel_id = ?3 ORDER BY created_at, rowid LIMIT ?2",
    [Q_SHARE_GET] = "SELECT " S_COLS " FROM shares WHERE workspace_id = ?1 AND id = ?2",
    [Q_SHARE_FIND] = "SELECT " S_COLS ", token_hash FROM shares WHERE token_hash = ?1",
    [Q_SHARE_REVOKE] = "UPDATE shares SET revoked_at = ?3 WHERE workspace_id = ?1 AND id = ?2 "
                       "AND revoked_at IS NULL",
    [Q_SHARE_EXPIRED] = "SELECT " S_COLS " FROM shares WHERE expires_at IS NOT NULL "
                        "AND expires_at <= ?1 AND revoked_at IS NULL AND expired_event = 0 "
                        "ORDER BY expires_at, rowid LIMIT ?2",
    [Q_SHARE_MARK] = "UPDATE shares SET expired_event = 1 WHERE workspace_id = ?1 AND id = ?2",
    /* alog: the access log file, attached read-only (attach_log). */
    /* A page walks the share's runs from the newest and reads each run's
     * rows by their ids (store_sqlite_log.c, RUNS_TABLE). */
    [Q_SLOG_RUNS] = "SELECT r.first_id, r.last_id FROM alog.share_access_runs r "
                    "JOIN main.shares s ON s.id = r.share_id "
                    "WHERE s.workspace_id = ?1 AND r.share_id = ?2 AND r.first_id < ?3 "
                    "ORDER BY r.first_id DESC",
    [Q_SLOG_ROWS] = "SELECT id, at, method, path, status, latency_ms, client "
                    "FROM alog.share_access_log WHERE id BETWEEN ?1 AND ?2 AND share_id = ?3 "
                    "ORDER BY id DESC LIMIT ?4",
};

/* The WAL checkpointer (hub_store_options_t.checkpoint_thread): a thread
 * with a connection of its own that runs a PASSIVE checkpoint (it never
 * waits for, nor blocks, the hub's connection) every CKPT_PERIOD_MS. */
#define CKPT_PERIOD_MS 500

typedef struct checkpointer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    sqlite3 *db;
    uint64_t runs, frames; /* checkpoints run, WAL frames copied (tests) */
} checkpointer_t;

typedef struct sqlite_store {
    hub_store_t base; /* first: the handle callers hold */
    sqlite3 *db;
    sqlite3_stmt *stmt[Q_COUNT];
    unsigned depth; /* open transaction levels: BEGIN, then savepoints */
    checkpointer_t *ckpt;
    hub_slog_t *slog;            /* the access log file and its writer */
    hub_slog_options_t slog_opt; /* main_path borrowed for the open only */
} sqlite_store_t;

static sqlite_store_t *S(hub_store_t *st)
{
    return (sqlite_store_t *)st;
}

/* ---- errors ------------------------------------------------------------ */

static int map_rc(int r)
{
    switch (r & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return CN_EAGAIN;
    case SQLITE_NOMEM:
        return CN_ENOMEM;
    case SQLITE_TOOBIG:
        return CN_ETOOBIG;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return CN_EPROTO;
    case SQLITE_CONSTRAINT:
        switch (r) {
        case SQLITE_CONSTRAINT_UNIQUE:
        case SQLITE_CONSTRAINT_PRIMARYKEY:
            return HUB_ECONFLICT;
        case SQLITE_CONSTRAINT_FOREIGNKEY:
            return CN_ENOTFOUND;
        default:
            return CN_EINVAL;
        }
    default:
        return CN_EIO;
    }
}

/* Records SQLite's own message (table/column names, never bound values). */
static int db_fail(sqlite_store_t *s, int r)
{
    return hub_store_fail(&s->base, map_rc(r), "database: %s", sqlite3_errmsg(s->db));
}

/* ---- statement helpers ------------------------------------------------- */

static sqlite3_stmt *prep(sqlite_store_t *s, enum q q, int *rc)
{
    if (!s->stmt[q]) {
        int r = sqlite3_prepare_v3(s->db, sql[q], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[q], NULL);
        if (r != SQLITE_OK) {
            *rc = db_fail(s, r);
            return NULL;
        }
    }
    return s->stmt[q];
}

static void done(sqlite3_stmt *q)
{
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
}

/* Binders accumulate the first failure in *r (SQLITE_OK so far). Strings
 * and blobs are SQLITE_STATIC: they outlive the statement's use. */
static void b_text(sqlite3_stmt *q, int i, const char *v, int *r)
{
    if (*r == SQLITE_OK)
        *r = v && *v ? sqlite3_bind_text(q, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(q, i);
}
/* Like b_text but binds "" as "" (columns where empty is a value). */
static void b_text0(sqlite3_stmt *q, int i, const char *v, int *r)
{
    if (*r == SQLITE_OK)
        *r = sqlite3_bind_text(q, i, v ? v : "", -1, SQLITE_STATIC);
}
static void b_int(sqlite3_stmt *q, int i, int64_t v, int *r)
{
    if (*r == SQLITE_OK)
        *r = sqlite3_bind_int64(q, i, v);
}
/* A timestamp: HUB_TIME_NONE binds NULL. */
static void b_time(sqlite3_stmt *q, int i, int64_t v, int *r)
{
    if (*r == SQLITE_OK)
        *r = v == HUB_TIME_NONE ? sqlite3_bind_null(q, i) : sqlite3_bind_int64(q, i, v);
}
static void b_key(sqlite3_stmt *q, int i, const uint8_t *k, int *r)
{
    if (*r == SQLITE_OK)
        *r = sqlite3_bind_blob(q, i, k, HUB_KEY_BYTES, SQLITE_STATIC);
}

/* Runs a statement that returns no rows; resets it. 0 or an error. */
static int run(sqlite_store_t *s, sqlite3_stmt *q, int bind_rc)
{
    int rc = 0;
    if (bind_rc != SQLITE_OK) {
        rc = db_fail(s, bind_rc);
    } else {
        int r = sqlite3_step(q);
        if (r != SQLITE_DONE && r != SQLITE_ROW)
            rc = db_fail(s, r);
    }
    done(q);
    return rc;
}

/* Steps a query expected to give at most one row: 1 = row (statement left
 * positioned on it; caller calls done()), 0 = none (reset), <0 = error
 * (reset). */
static int step_one(sqlite_store_t *s, sqlite3_stmt *q, int bind_rc)
{
    if (bind_rc != SQLITE_OK) {
        int rc = db_fail(s, bind_rc);
        done(q);
        return rc;
    }
    int r = sqlite3_step(q);
    if (r == SQLITE_ROW)
        return 1;
    int rc = r == SQLITE_DONE ? 0 : db_fail(s, r);
    done(q);
    return rc;
}

/* 1 when a bound existence query yields a row, 0 when not, <0 on error. */
static int exists(sqlite_store_t *s, sqlite3_stmt *q, int b)
{
    int one = step_one(s, q, b);
    if (one > 0)
        done(q);
    return one;
}

/* Transactions nest. The outermost level is BEGIN IMMEDIATE ... COMMIT;
 * inner ones (an operation inside hub_store_tx_begin(), or one operation
 * inside another) are savepoints, so a failed inner step undoes only
 * itself and its caller decides about the rest. */
static int tx_begin(sqlite_store_t *s)
{
    int rc = 0;
    /* SQLite rolls the whole transaction back by itself after some errors
     * (full disk, I/O): never carry on outside it as if it were open. */
    if (s->depth && sqlite3_get_autocommit(s->db))
        return hub_store_fail(&s->base, CN_EIO, "database: the transaction was rolled back");
    sqlite3_stmt *q = prep(s, s->depth ? Q_SAVEPOINT : Q_BEGIN, &rc);
    if (q)
        rc = run(s, q, SQLITE_OK);
    if (rc == 0)
        s->depth++;
    return rc;
}

static void step_keep_msg(sqlite_store_t *s, enum q which)
{
    int rc = 0;
    sqlite3_stmt *q = prep(s, which, &rc);
    if (q) {
        sqlite3_step(q);
        done(q);
    }
}

/* Rolls back the innermost level, keeping the failure's message. */
static void tx_rollback(sqlite_store_t *s)
{
    if (!s->depth)
        return;
    s->depth--;
    if (sqlite3_get_autocommit(s->db))
        return; /* SQLite already rolled everything back */
    if (s->depth) {
        step_keep_msg(s, Q_SAVEPOINT_ROLLBACK);
        step_keep_msg(s, Q_SAVEPOINT_RELEASE);
    } else {
        step_keep_msg(s, Q_ROLLBACK);
    }
}

static int tx_commit(sqlite_store_t *s)
{
    int rc = 0;
    if (s->depth && sqlite3_get_autocommit(s->db)) {
        rc = hub_store_fail(&s->base, CN_EIO, "database: the transaction was rolled back");
    } else {
        sqlite3_stmt *q = prep(s, s->depth > 1 ? Q_SAVEPOINT_RELEASE : Q_COMMIT, &rc);
        if (q)
            rc = run(s, q, SQLITE_OK);
    }
    if (rc < 0) {
        tx_rollback(s);
        return rc;
    }
    s->depth--;
    return 0;
}

/* Commits on rc == 0, rolls back otherwise; returns the outcome. */
static int tx_end(sqlite_store_t *s, int rc)
{
    if (rc == 0)
        return tx_commit(s);
    tx_rollback(s);
    return rc;
}

static int sqlite_tx_begin(hub_store_t *st)
{
    return tx_begin(S(st));
}

/* Every row an INSERT, UPDATE or DELETE of this connection touched, in any
 * table (foreign-key cascades follow from a counted DELETE of their parent);
 * no rollback lowers it. */
static uint64_t sqlite_rows_written(const hub_store_t *st)
{
    return (uint64_t)sqlite3_total_changes64(((const sqlite_store_t *)st)->db);
}

/* The integer a statement of the table answers (0 without a row). */
static int stmt_int(sqlite_store_t *s, enum q which, int64_t *out)
{
    int rc = 0;
    sqlite3_stmt *q = prep(s, which, &rc);
    if (!q)
        return rc;
    int one = step_one(s, q, SQLITE_OK);
    if (one < 0)
        return one;
    *out = one ? sqlite3_column_int64(q, 0) : 0;
    done(q);
    return 0;
}

/* Moves when another connection (another process) has committed. */
static int sqlite_data_version(hub_store_t *st, uint64_t *out)
{
    int64_t v = 0;
    int rc = stmt_int(S(st), Q_DATA_VERSION, &v);
    *out = (uint64_t)v;
    return rc;
}

static bool sqlite_in_tx(const hub_store_t *st)
{
    return !sqlite3_get_autocommit(((const sqlite_store_t *)st)->db);
}

static int sqlite_tx_end(hub_store_t *st, int rc)
{
    sqlite_store_t *s = S(st);
    if (!s->depth)
        return hub_store_fail(st, CN_EINVAL, "no transaction is open");
    return tx_end(s, rc);
}

/* ---- column readers ---------------------------------------------------- */

static int corrupt(sqlite_store_t *s, const char *what)
{
    return hub_store_fail(&s->base, CN_EPROTO, "database: malformed %s row", what);
}

/* Copies a TEXT column (NULL -> "") into a fixed field. */
static bool col_str(sqlite3_stmt *q, int i, char *dst, size_t size)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    size_t n = (size_t)sqlite3_column_bytes(q, i);
    dst[0] = '\0';
    if (!t)
        return sqlite3_column_type(q, i) == SQLITE_NULL;
    if (n >= size || memchr(t, '\0', n))
        return false;
    memcpy(dst, t, n);
    dst[n] = '\0';
    return true;
}

/* Heap copy of a TEXT column; NULL stays NULL. false only on OOM. */
static bool col_dup(sqlite3_stmt *q, int i, char **dst)
{
    *dst = NULL;
    const unsigned char *t = sqlite3_column_text(q, i);
    if (!t)
        return sqlite3_column_type(q, i) == SQLITE_NULL;
    *dst = strdup((const char *)t);
    return *dst != NULL;
}

static int64_t col_time(sqlite3_stmt *q, int i)
{
    return sqlite3_column_type(q, i) == SQLITE_NULL ? HUB_TIME_NONE : sqlite3_column_int64(q, i);
}

/* A 32-byte BLOB column: true with *present when set, true without when
 * NULL, false when malformed. */
static bool col_key(sqlite3_stmt *q, int i, uint8_t out[static HUB_KEY_BYTES], bool *present)
{
    *present = false;
    memset(out, 0, HUB_KEY_BYTES);
    if (sqlite3_column_type(q, i) == SQLITE_NULL)
        return true;
    const void *b = sqlite3_column_blob(q, i);
    if (!b || sqlite3_column_bytes(q, i) != HUB_KEY_BYTES)
        return false;
    memcpy(out, b, HUB_KEY_BYTES);
    *present = true;
    return true;
}

static int read_workspace(sqlite_store_t *s, sqlite3_stmt *q, hub_workspace_t *w)
{
    memset(w, 0, sizeof(*w));
    if (!col_str(q, 0, w->id, sizeof(w->id)) || !col_str(q, 1, w->name, sizeof(w->name)))
        return corrupt(s, "workspace");
    w->created_at = col_time(q, 2);
    return 0;
}

static int read_agent(sqlite_store_t *s, sqlite3_stmt *q, hub_agent_t *a)
{
    memset(a, 0, sizeof(*a));
    if (!col_str(q, 0, a->id, sizeof(a->id)) ||
        !col_str(q, 1, a->workspace_id, sizeof(a->workspace_id)) ||
        !col_str(q, 2, a->name, sizeof(a->name)) || !col_key(q, 3, a->public_key, &a->enrolled))
        return corrupt(s, "agent");
    a->connected = sqlite3_column_int(q, 4) != 0;
    a->created_at = col_time(q, 5);
    a->enroll_expires_at = col_time(q, 6);
    a->enrolled_at = col_time(q, 7);
    a->connected_at = col_time(q, 8);
    a->disconnected_at = col_time(q, 9);
    a->updated_at = col_time(q, 10);
    return 0;
}

static int read_tunnel(sqlite_store_t *s, sqlite3_stmt *q, hub_tunnel_t *t)
{
    memset(t, 0, sizeof(*t));
    char proto[8], status[16];
    enum hub_protocol p;
    enum hub_tunnel_status stt;
    int64_t port = sqlite3_column_int64(q, 5), hub_port = sqlite3_column_int64(q, 8);
    if (!col_str(q, 0, t->id, sizeof(t->id)) ||
        !col_str(q, 1, t->workspace_id, sizeof(t->workspace_id)) ||
        !col_str(q, 2, t->agent_id, sizeof(t->agent_id)) ||
        !col_str(q, 3, t->name, sizeof(t->name)) ||
        !col_str(q, 4, t->target_host, sizeof(t->target_host)) ||
        !col_str(q, 6, proto, sizeof(proto)) || hub_protocol_parse(proto, &p) < 0 ||
        !col_str(q, 9, status, sizeof(status)) || hub_tunnel_status_parse(status, &stt) < 0 ||
        !col_str(q, 13, t->http_user, sizeof(t->http_user)) ||
        !col_str(q, 14, t->http_password_hash, sizeof(t->http_password_hash)) || port < 1 ||
        port > 65535 || hub_port < 0 || hub_port > 65535) {
        hub_tunnel_clear(t);
        return corrupt(s, "tunnel");
    }
    t->target_port = (uint16_t)port;
    t->protocol = p;
    t->is_public = sqlite3_column_int(q, 7) != 0;
    t->hub_port = (uint16_t)hub_port;
    t->status = stt;
    if (!col_dup(q, 10, &t->metadata) || !col_dup(q, 11, &t->connection_string) ||
        !col_dup(q, 12, &t->last_error)) {
        hub_tunnel_clear(t);
        return hub_store_fail(&s->base, CN_ENOMEM, "out of memory");
    }
    if (!t->metadata && !(t->metadata = strdup("{}"))) {
        hub_tunnel_clear(t);
        return hub_store_fail(&s->base, CN_ENOMEM, "out of memory");
    }
    t->created_at = col_time(q, 15);
    t->connected_at = col_time(q, 16);
    t->expires_at = col_time(q, 17);
    t->updated_at = col_time(q, 18);
    if (!col_str(q, 19, t->plugin, sizeof(t->plugin))) {
        hub_tunnel_clear(t);
        return corrupt(s, "tunnel");
    }
    t->idle_timeout_s = HUB_IDLE_TIMEOUT_DEFAULT;
    if (sqlite3_column_type(q, 20) != SQLITE_NULL) {
        sqlite3_int64 idle = sqlite3_column_int64(q, 20);
        if (idle < 0 || idle > HUB_IDLE_TIMEOUT_MAX) {
            hub_tunnel_clear(t);
            return corrupt(s, "tunnel");
        }
        t->idle_timeout_s = (int32_t)idle;
    }
    return 0;
}

static int read_event(sqlite_store_t *s, sqlite3_stmt *q, hub_event_t *e)
{
    memset(e, 0, sizeof(*e));
    e->id = sqlite3_column_int64(q, 0);
    if (!col_str(q, 1, e->workspace_id, sizeof(e->workspace_id)) ||
        !col_str(q, 2, e->type, sizeof(e->type)) ||
        !col_str(q, 3, e->tunnel_id, sizeof(e->tunnel_id)) ||
        !col_str(q, 4, e->agent_id, sizeof(e->agent_id)))
        return corrupt(s, "event");
    if (!col_dup(q, 5, &e->data))
        return hub_store_fail(&s->base, CN_ENOMEM, "out of memory");
    e->created_at = col_time(q, 6);
    return 0;
}

/* Grows a list's item array to hold one more element. */
static int grow(sqlite_store_t *s, void **items, size_t *cap, size_t count, size_t elem)
{
    if (count < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, ncap * elem);
    if (!p)
        return hub_store_fail(&s->base, CN_ENOMEM, "out of memory");
    *items = p;
    *cap = ncap;
    return 0;
}

/* Steps a bound query and collects its rows into `list` (items, count),
 * `read` filling one item; sets `rc`. On failure the list is left empty,
 * `clear` releasing the items read so far. A macro because the lists'
 * item types differ. */
#define COLLECT(rc, s, q, brc, list, type, read, clear)                                            \
    do {                                                                                           \
        size_t cap_ = 0;                                                                           \
        int r_ = SQLITE_DONE;                                                                      \
        (rc) = (brc) == SQLITE_OK ? 0 : db_fail((s), (brc));                                       \
        while ((rc) == 0 && (r_ = sqlite3_step(q)) == SQLITE_ROW) {                                \
            (rc) = grow((s), (void **)&(list)->items, &cap_, (list)->count, sizeof(type));         \
            if ((rc) == 0)                                                                         \
                (rc) = read((s), (q), &(list)->items[(list)->count]);                              \
            if ((rc) == 0)                                                                         \
                (list)->count++;                                                                   \
        }                                                                                          \
        if ((rc) == 0 && r_ != SQLITE_DONE)                                                        \
            (rc) = db_fail((s), r_);                                                               \
        done(q);                                                                                   \
        if ((rc) < 0) {                                                                            \
            for (size_t i_ = 0; i_ < (list)->count; i_++)                                          \
                clear(&(list)->items[i_]);                                                         \
            free((list)->items);                                                                   \
            (list)->items = NULL;                                                                  \
            (list)->count = 0;                                                                     \
        }                                                                                          \
    } while (0)

static void no_clear(void *p)
{
    (void)p;
}

/* ---- opening and migrations -------------------------------------------- */

static int pragma_int(sqlite3 *db, const char *pragma, int *out)
{
    sqlite3_stmt *q = NULL;
    int r = sqlite3_prepare_v2(db, pragma, -1, &q, NULL);
    if (r == SQLITE_OK) {
        r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            *out = sqlite3_column_int(q, 0);
            r = SQLITE_OK;
        }
    }
    sqlite3_finalize(q);
    return r;
}

static int pragma_text(sqlite3 *db, const char *pragma, char *out, size_t size)
{
    sqlite3_stmt *q = NULL;
    int r = sqlite3_prepare_v2(db, pragma, -1, &q, NULL);
    out[0] = '\0';
    if (r == SQLITE_OK) {
        r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(q, 0);
            snprintf(out, size, "%s", t ? (const char *)t : "");
            r = SQLITE_OK;
        }
    }
    sqlite3_finalize(q);
    return r;
}

static int open_fail(sqlite_store_t *s, int r, const char *what)
{
    return hub_store_fail(&s->base, map_rc(r), "%s: %s", what, sqlite3_errmsg(s->db));
}

/* Checks the header of a database at `version` (read inside the migration
 * transaction when version < SCHEMA_VERSION). */
static int check_identity(sqlite_store_t *s, int version)
{
    int app = 0, tables = 0, r;
    if ((r = pragma_int(s->db, "PRAGMA application_id", &app)) != SQLITE_OK)
        return open_fail(s, r, "cannot read the database header");
    if (version > SCHEMA_VERSION)
        return hub_store_fail(&s->base, CN_EVERSION,
                              "database schema version %d is newer than this connect-hub "
                              "supports (%d); upgrade connect-hub",
                              version, SCHEMA_VERSION);
    if (version > 0 && app != APPLICATION_ID)
        return hub_store_fail(&s->base, CN_EPROTO, "not a connect-hub database");
    if (version == 0) {
        if ((r = pragma_int(s->db, "SELECT count(*) FROM sqlite_master", &tables)) != SQLITE_OK)
            return open_fail(s, r, "cannot read the database schema");
        if (tables > 0 || (app != 0 && app != APPLICATION_ID))
            return hub_store_fail(&s->base, CN_EPROTO,
                                  "not a connect-hub database (it has other tables)");
    }
    return 0;
}

/* Opens the access log file (once) and, with `import`, copies the main
 * file's old share_access_log rows into it. */
static int open_log(sqlite_store_t *s, bool import)
{
    char err[HUB_STORE_ERRMSG_SIZE] = "";
    int rc = 0;
    if (!s->slog && (rc = hub_slog_open(&s->slog_opt, &s->slog, err, sizeof(err))) < 0)
        return hub_store_fail(&s->base, rc, "%s", err);
    if (import && (rc = hub_slog_import(s->slog, err, sizeof(err))) < 0)
        return hub_store_fail(&s->base, rc, "%s", err);
    return 0;
}

static int migrate(sqlite_store_t *s)
{
    int version = 0, r, rc;
    if ((r = pragma_int(s->db, "PRAGMA user_version", &version)) != SQLITE_OK)
        return open_fail(s, r, "cannot read the database");
    if (version == SCHEMA_VERSION)
        return check_identity(s, version); /* up to date: nothing is written */
    if (version > SCHEMA_VERSION)
        return check_identity(s, version);

    if ((rc = tx_begin(s)) < 0)
        return rc;
    /* Another process may have migrated while we waited for the lock. */
    if ((r = pragma_int(s->db, "PRAGMA user_version", &version)) != SQLITE_OK) {
        rc = open_fail(s, r, "cannot read the database");
        goto out;
    }
    if ((rc = check_identity(s, version)) < 0)
        goto out;
    for (int v = version; v < SCHEMA_VERSION; v++) {
        char *msg = NULL;
        /* The log's rows first: while this transaction holds the main
         * file's write lock, no old hub can add any after the copy. A crash
         * after the copy repeats it, which changes nothing (same ids). */
        if (v == MIGRATION_LOG_MOVED && (rc = open_log(s, true)) < 0)
            goto out;
        r = sqlite3_exec(s->db, migrations[v], NULL, NULL, &msg);
        if (r != SQLITE_OK) {
            rc = hub_store_fail(&s->base, map_rc(r), "migration to schema version %d failed: %s",
                                v + 1, msg ? msg : sqlite3_errstr(r));
            sqlite3_free(msg);
            goto out;
        }
        int now_at = 0;
        if (pragma_int(s->db, "PRAGMA user_version", &now_at) != SQLITE_OK || now_at != v + 1) {
            rc = hub_store_fail(&s->base, CN_EPROTO, "migration %d did not set its version", v + 1);
            goto out;
        }
    }
    /* Steps that rebuild tables must leave every reference intact. */
    int dangling = 0;
    r = pragma_int(s->db, "SELECT count(*) FROM pragma_foreign_key_check", &dangling);
    if (r != SQLITE_OK || dangling != 0) {
        rc = hub_store_fail(&s->base, CN_EPROTO, "migration left %d dangling references", dangling);
        goto out;
    }
out:
    return tx_end(s, rc);
}

static void *checkpoint_main(void *arg)
{
    checkpointer_t *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)CKPT_PERIOD_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&c->wake, &c->lock, &until);
        if (c->stop)
            break;
        pthread_mutex_unlock(&c->lock);
        int log = 0, done = 0;
        /* BUSY (a checkpoint elsewhere) or a partial copy (a reader holds
         * old pages) are tried again next period. */
        int r = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        pthread_mutex_lock(&c->lock);
        c->runs++;
        if (r == SQLITE_OK && done > 0)
            c->frames += (uint64_t)done;
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static void checkpointer_stop(sqlite_store_t *s)
{
    checkpointer_t *c = s->ckpt;
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    sqlite3_close(c->db);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
    s->ckpt = NULL;
}

/* Turns off SQLite's checkpoints in the hub's commits and starts the
 * thread that does them instead. */
static int checkpointer_start(sqlite_store_t *s, const char *path)
{
    checkpointer_t *c = calloc(1, sizeof(*c));
    if (!c)
        return hub_store_fail(&s->base, CN_ENOMEM, "out of memory");
    int r = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (r != SQLITE_OK) {
        sqlite3_close(c->db);
        free(c);
        return open_fail(s, r, "cannot open the database for checkpoints");
    }
    sqlite3_busy_timeout(c->db, 0);
    /* A connection learns the journal mode on its first read; until then
     * a checkpoint finds no WAL. */
    char mode[16];
    if ((r = pragma_text(c->db, "PRAGMA journal_mode", mode, sizeof(mode))) != SQLITE_OK ||
        strcmp(mode, "wal") != 0) {
        sqlite3_close(c->db);
        free(c);
        return open_fail(s, r, "cannot open the database for checkpoints");
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    if (pthread_create(&c->thread, NULL, checkpoint_main, c) != 0) {
        sqlite3_close(c->db);
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return hub_store_fail(&s->base, CN_EIO, "cannot start the checkpoint thread");
    }
    s->ckpt = c;
    if ((r = sqlite3_exec(s->db, "PRAGMA wal_autocheckpoint = 0", NULL, NULL, NULL)) != SQLITE_OK)
        return open_fail(s, r, "cannot open database");
    return 0;
}

uint64_t hub_store_sqlite_checkpoints(hub_store_t *st, uint64_t *frames)
{
    checkpointer_t *c = S(st)->ckpt;
    uint64_t runs = 0;
    *frames = 0;
    if (c) {
        pthread_mutex_lock(&c->lock);
        runs = c->runs;
        *frames = c->frames;
        pthread_mutex_unlock(&c->lock);
    }
    return runs;
}

static void sqlite_close(hub_store_t *st)
{
    sqlite_store_t *s = S(st);
    checkpointer_stop(s);
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    /* The last connection to close a file checkpoints its WAL into it: the
     * writer's for the log (so it goes before), ours for the main file. */
    if (s->db)
        sqlite3_exec(s->db, "DETACH DATABASE alog", NULL, NULL, NULL);
    hub_slog_close(s->slog);
    sqlite3_close(s->db);
    free(s);
}

static const struct hub_store_ops sqlite_ops;

/* The log file as schema `alog` of the hub's connection, read-only: the
 * list reads it joined with main.shares; BEGIN IMMEDIATE takes write locks
 * on every attached database that is not read-only. */
static int attach_log(sqlite_store_t *s)
{
    sqlite3_stmt *q = NULL;
    int r = sqlite3_prepare_v2(s->db, "ATTACH DATABASE ?1 AS alog", -1, &q, NULL);
    if (r == SQLITE_OK)
        r = sqlite3_bind_text(q, 1, hub_slog_ro_uri(s->slog), -1, SQLITE_STATIC);
    if (r == SQLITE_OK)
        r = sqlite3_step(q);
    sqlite3_finalize(q);
    if (r != SQLITE_DONE)
        return open_fail(s, r, "cannot attach the access log");
    return 0;
}

int hub_store_sqlite_schema_version(void)
{
    return SCHEMA_VERSION;
}

/* Once per process, before SQLite starts: no memory statistics. With them
 * on (the default) every allocation of every connection takes one global
 * mutex, which the loop and the access log's writer would contend for on
 * every request; nothing here reads them. */
static pthread_once_t sqlite_setup_once = PTHREAD_ONCE_INIT;

static void sqlite_setup(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); /* MISUSE when started: harmless */
}

int hub_store_sqlite_open(const hub_store_options_t *opt, hub_store_t **out, char *err,
                          size_t errlen)
{
    const char *path = opt->path;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        if (e != ENOENT) {
            return cn_errf(CN_EIO, err, errlen, "cannot open database %s: %s", path, strerror(e));
        }
        if (!opt->create) {
            snprintf(err ? err : (char[1]){0}, err ? errlen : 1,
                     "database %s does not exist (create it with: connect-hub init --db %s)", path,
                     path);
            return CN_ENOTFOUND;
        }
        /* Create it 0600 ourselves: SQLite would use 0644, and its -wal and
         * -shm files copy the database's mode. */
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) {
            e = errno;
            return cn_errf(CN_EIO, err, errlen, "cannot create database %s: %s", path, strerror(e));
        }
        if (fd >= 0)
            close(fd);
    } else if (!S_ISREG(sb.st_mode)) {
        snprintf(err ? err : (char[1]){0}, err ? errlen : 1, "database %s is not a regular file",
                 path);
        return CN_EINVAL;
    }

    pthread_once(&sqlite_setup_once, sqlite_setup);
    sqlite_store_t *s = calloc(1, sizeof(*s));
    if (!s) {
        return cn_errf(CN_ENOMEM, err, errlen, "out of memory");
    }
    hub_store_base_init(&s->base, &sqlite_ops, opt);
    int rc = 0, r;
    char mode[16];
    /* URI names for ATTACH of the log read-only; `path` is never one
     * (hub_store_open refuses "file:"). */
    r = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
                        NULL);
    if (r != SQLITE_OK) {
        rc = s->db ? open_fail(s, r, "cannot open database")
                   : hub_store_fail(&s->base, CN_ENOMEM, "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    /* Per connection, and only outside a transaction. */
    int fk = 0;
    if ((r = sqlite3_exec(s->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL)) != SQLITE_OK ||
        (r = pragma_int(s->db, "PRAGMA foreign_keys", &fk)) != SQLITE_OK) {
        rc = open_fail(s, r, "cannot open database");
        goto fail;
    }
    if (fk != 1) {
        rc = hub_store_fail(&s->base, CN_EINVAL, "this SQLite has no foreign key support");
        goto fail;
    }
    if ((r = pragma_text(s->db, "PRAGMA journal_mode = WAL", mode, sizeof(mode))) != SQLITE_OK) {
        rc = open_fail(s, r, "cannot open database");
        goto fail;
    }
    if (strcmp(mode, "wal") != 0) {
        rc = hub_store_fail(&s->base, CN_EIO, "cannot switch the database to WAL mode (%s)", mode);
        goto fail;
    }
    r = sqlite3_exec(s->db,
                     opt->sync_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                     NULL, NULL, NULL);
    if (r != SQLITE_OK) {
        rc = open_fail(s, r, "cannot open database");
        goto fail;
    }
    s->slog_opt = (hub_slog_options_t){.main_path = path,
                                       .thread = opt->log_thread,
                                       .queue_bytes = opt->log_queue_bytes,
                                       .prune_step_rows = opt->log_prune_step_rows};
    if ((rc = migrate(s)) < 0 || (rc = open_log(s, false)) < 0 || (rc = attach_log(s)) < 0)
        goto fail;
    if (opt->checkpoint_thread && (rc = checkpointer_start(s, path)) < 0)
        goto fail;
    *out = &s->base;
    return 0;
fail:
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", path, s->base.errmsg);
    hub_store_close(&s->base);
    return rc;
}

static int sqlite_db_version(hub_store_t *st, int *version)
{
    int64_t v = 0;
    int rc = stmt_int(S(st), Q_USER_VERSION, &v);
    if (rc == 0)
        *version = (int)v;
    return rc;
}

static int sqlite_key_check(hub_store_t *st, const uint8_t check[static HUB_KEY_BYTES])
{
    sqlite_store_t *s = S(st);
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = 0, b = SQLITE_OK;
        sqlite3_stmt *q = prep(s, Q_META_GET, &rc);
        if (!q)
            return rc;
        b_text0(q, 1, "key_check", &b);
        int one = step_one(s, q, b);
        if (one < 0)
            return one;
        if (one) {
            uint8_t stored[HUB_KEY_BYTES];
            bool present = false;
            bool ok = col_key(q, 0, stored, &present) && present;
            done(q);
            if (!ok)
                return corrupt(s, "meta");
            return hub_hash_equal(stored, check)
                       ? 0
                       : hub_store_fail(st, CN_EAUTH,
                                        "the secret key file does not belong to this database");
        }
        /* First open: record it (a concurrent first open may win; re-read). */
        q = prep(s, Q_META_INIT, &rc);
        if (!q)
            return rc;
        b_text0(q, 1, "key_check", &b);
        b_key(q, 2, check, &b);
        if ((rc = run(s, q, b)) < 0)
            return rc;
    }
    return hub_store_fail(st, CN_EIO, "cannot record the secret key check");
}

/* ---- workspaces -------------------------------------------------------- */

static int sqlite_workspace_insert(hub_store_t *st, const hub_workspace_t *w)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_WS_INSERT, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, w->id, &b);
    b_text0(q, 2, w->name, &b);
    b_int(q, 3, w->created_at, &b);
    rc = run(s, q, b);
    if (rc == HUB_ECONFLICT)
        hub_store_fail(st, rc, "name: a workspace with this name already exists");
    return rc;
}

static int sqlite_workspace_list(hub_store_t *st, hub_workspace_list_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_WS_LIST, &rc);
    if (!q)
        return rc;
    b_int(q, 1, HUB_LIST_MAX, &b);
    COLLECT(rc, s, q, b, out, hub_workspace_t, read_workspace, no_clear);
    return rc;
}

static int sqlite_workspace_get(hub_store_t *st, const char *id, hub_workspace_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_WS_GET, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, id, &b);
    int one = step_one(s, q, b);
    if (one <= 0)
        return one < 0 ? one : hub_store_fail(st, CN_ENOTFOUND, "workspace not found");
    rc = read_workspace(s, q, out);
    done(q);
    return rc;
}

/* ---- tokens ------------------------------------------------------------ */

static int sqlite_token_insert(hub_store_t *st, const hub_token_info_t *ti,
                               const uint8_t hash[static HUB_KEY_BYTES])
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_TOKEN_INSERT, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ti->id, &b);
    b_text0(q, 2, ti->workspace_id, &b);
    b_text0(q, 3, ti->name, &b);
    b_key(q, 4, hash, &b);
    b_text0(q, 5, hub_token_scope_name(ti->scope), &b);
    b_text(q, 6, ti->agent_id, &b);
    b_int(q, 7, ti->created_at, &b);
    rc = run(s, q, b);
    if (rc == CN_ENOTFOUND)
        hub_store_fail(st, rc,
                       ti->agent_id[0] ? "agentId: agent not found" : "workspace not found");
    return rc;
}

/* One K_COLS row. */
static int read_token(sqlite_store_t *s, sqlite3_stmt *q, hub_token_info_t *t)
{
    memset(t, 0, sizeof(*t));
    char scope[16];
    enum hub_token_scope sc;
    if (!col_str(q, 0, t->id, sizeof(t->id)) ||
        !col_str(q, 1, t->workspace_id, sizeof(t->workspace_id)) ||
        !col_str(q, 2, t->name, sizeof(t->name)) || !col_str(q, 3, scope, sizeof(scope)) ||
        hub_token_scope_parse(scope, &sc) < 0 || !col_str(q, 4, t->agent_id, sizeof(t->agent_id)))
        return corrupt(s, "token");
    t->scope = sc;
    t->created_at = col_time(q, 5);
    t->last_used_at = col_time(q, 6);
    return 0;
}

static int sqlite_token_find(hub_store_t *st, const uint8_t hash[static HUB_KEY_BYTES],
                             hub_token_info_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_TOKEN_FIND, &rc);
    if (!q)
        return rc;
    b_key(q, 1, hash, &b);
    int one = step_one(s, q, b);
    if (one <= 0)
        return one < 0 ? one : CN_EAUTH;
    /* The index found the row by hash; confirm in constant time anyway so
     * no comparison of secret-derived bytes depends on SQLite's memcmp. */
    uint8_t stored[HUB_KEY_BYTES];
    bool present = false;
    hub_token_info_t ti;
    if (!col_key(q, 7, stored, &present) || !present || !hub_hash_equal(stored, hash))
        rc = CN_EAUTH;
    else if ((rc = read_token(s, q, &ti)) == 0)
        *out = ti;
    done(q);
    return rc;
}

static int sqlite_token_delete(hub_store_t *st, const char *ws, const char *id)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_TOKEN_DELETE, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, id, &b);
    rc = run(s, q, b);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = hub_store_fail(st, CN_ENOTFOUND, "token not found");
    return rc;
}

static int sqlite_token_list(hub_store_t *st, const char *ws, hub_token_list_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_TOKEN_LIST, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_int(q, 2, HUB_LIST_MAX, &b);
    COLLECT(rc, s, q, b, out, hub_token_info_t, read_token, no_clear);
    return rc;
}

static int sqlite_token_get(hub_store_t *st, const char *ws, const char *id, hub_token_info_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_TOKEN_GET, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, id, &b);
    int one = step_one(s, q, b);
    if (one <= 0)
        return one < 0 ? one : hub_store_fail(st, CN_ENOTFOUND, "token not found");
    rc = read_token(s, q, out);
    done(q);
    return rc;
}

static int sqlite_token_touch(hub_store_t *st, const char *id, int64_t now, int64_t stale_before)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_TOKEN_TOUCH, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, id, &b);
    b_int(q, 2, now, &b);
    b_int(q, 3, stale_before, &b);
    return run(s, q, b);
}

static int sqlite_bootstrap(hub_store_t *st, const hub_workspace_t *ws, const hub_token_info_t *ti,
                            const uint8_t hash[static HUB_KEY_BYTES])
{
    sqlite_store_t *s = S(st);
    int rc = tx_begin(s), b = SQLITE_OK;
    if (rc < 0)
        return rc;
    sqlite3_stmt *q = prep(s, Q_WS_ANY, &rc);
    if (!q)
        return tx_end(s, rc);
    int any = exists(s, q, b);
    if (any != 0)
        return tx_end(s, any < 0 ? any
                                 : hub_store_fail(st, HUB_ECONFLICT,
                                                  "the database is already initialised "
                                                  "(it holds a workspace)"));
    if ((rc = sqlite_workspace_insert(st, ws)) == 0)
        rc = sqlite_token_insert(st, ti, hash);
    return tx_end(s, rc);
}

/* ---- agents ------------------------------------------------------------ */

/* A per-workspace cap (0 = none), counted with `count_q` (bound to the
 * workspace). Call it inside the creating transaction, so two creates
 * cannot both slip under. CN_EEXHAUSTED names `what` ("agents"). */
static int workspace_cap(sqlite_store_t *s, enum q count_q, const char *ws, size_t max,
                         const char *what)
{
    int rc = 0, b = SQLITE_OK;
    if (!max)
        return 0;
    sqlite3_stmt *q = prep(s, count_q, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    int one = step_one(s, q, b);
    if (one < 0)
        return one;
    size_t n = one ? (size_t)sqlite3_column_int64(q, 0) : 0;
    if (one)
        done(q);
    if (n >= max)
        return hub_store_fail(&s->base, CN_EEXHAUSTED,
                              "%s: this workspace already has the maximum of %zu %s", what, max,
                              what);
    return 0;
}

static int sqlite_agent_insert(hub_store_t *st, const hub_agent_t *a, size_t max_agents,
                               const uint8_t enroll_hash[static HUB_KEY_BYTES])
{
    sqlite_store_t *s = S(st);
    int rc = tx_begin(s), b = SQLITE_OK;
    if (rc < 0)
        return rc;
    sqlite3_stmt *q;
    rc = workspace_cap(s, Q_AGENT_COUNT, a->workspace_id, max_agents, "agents");
    if (rc < 0)
        goto out;
    if (!(q = prep(s, Q_AGENT_INSERT, &rc)))
        goto out;
    b = SQLITE_OK;
    b_text0(q, 1, a->id, &b);
    b_text0(q, 2, a->workspace_id, &b);
    b_text(q, 3, a->name, &b);
    b_key(q, 4, enroll_hash, &b);
    b_time(q, 5, a->enroll_expires_at, &b);
    b_int(q, 6, a->created_at, &b);
    rc = run(s, q, b);
    if (rc == CN_ENOTFOUND)
        hub_store_fail(st, rc, "workspace not found");
out:
    return tx_end(s, rc);
}

static int sqlite_agent_list(hub_store_t *st, const char *ws, hub_agent_list_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_AGENT_LIST, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_int(q, 2, HUB_LIST_MAX, &b);
    COLLECT(rc, s, q, b, out, hub_agent_t, read_agent, no_clear);
    return rc;
}

/* Reads the single agent row a bound query yields. */
static int fetch_agent(sqlite_store_t *s, sqlite3_stmt *q, int b, hub_agent_t *out)
{
    int one = step_one(s, q, b);
    if (one <= 0)
        return one < 0 ? one : hub_store_fail(&s->base, CN_ENOTFOUND, "agent not found");
    int rc = read_agent(s, q, out);
    done(q);
    return rc;
}

static int get_agent(sqlite_store_t *s, const char *ws, const char *id, hub_agent_t *out)
{
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_AGENT_GET, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, id, &b);
    return fetch_agent(s, q, b, out);
}

static int sqlite_agent_get(hub_store_t *st, const char *ws, const char *id, hub_agent_t *out)
{
    return get_agent(S(st), ws, id, out);
}

/* Runs one of the statements bound as (?1 workspace, ?2 id, ?3 time). */
static int run_ws_id_time(sqlite_store_t *s, enum q which, const char *ws, const char *id,
                          int64_t t)
{
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, which, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, id, &b);
    b_int(q, 3, t, &b);
    return run(s, q, b);
}

static int sqlite_agent_delete(hub_store_t *st, const char *ws, const char *id, int64_t now)
{
    sqlite_store_t *s = S(st);
    int rc = tx_begin(s);
    if (rc < 0)
        return rc;
    /* Its tunnels go with it (ON DELETE CASCADE); their public names and
     * ports are held for the workspace first. */
    if ((rc = run_ws_id_time(s, Q_RELEASE_AGENT_NAMES, ws, id, now)) < 0 ||
        (rc = run_ws_id_time(s, Q_RELEASE_AGENT_PORTS, ws, id, now)) < 0)
        return tx_end(s, rc);
    int b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_AGENT_DELETE, &rc);
    if (q) {
        b_text0(q, 1, ws, &b);
        b_text0(q, 2, id, &b);
        rc = run(s, q, b);
        if (rc == 0 && sqlite3_changes(s->db) == 0)
            rc = hub_store_fail(st, CN_ENOTFOUND, "agent not found");
    }
    return tx_end(s, rc);
}

static int sqlite_agent_enroll(hub_store_t *st, const uint8_t hash[static HUB_KEY_BYTES],
                               const uint8_t pk[static HUB_KEY_BYTES], int64_t now,
                               hub_agent_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = tx_begin(s), b = SQLITE_OK;
    if (rc < 0)
        return rc;
    hub_agent_t a;
    uint8_t stored[HUB_KEY_BYTES];
    bool present = false;
    sqlite3_stmt *q = prep(s, Q_AGENT_BY_ENROLL, &rc);
    if (!q)
        return tx_end(s, rc);
    b_key(q, 1, hash, &b);
    int one = step_one(s, q, b);
    if (one <= 0)
        return tx_end(s, one < 0 ? one : hub_store_fail(st, CN_EAUTH, "invalid enroll token"));
    rc = read_agent(s, q, &a);
    if (rc == 0 && (!col_key(q, 11, stored, &present) || !present || !hub_hash_equal(stored, hash)))
        rc = hub_store_fail(st, CN_EAUTH, "invalid enroll token");
    done(q);
    if (rc < 0)
        return tx_end(s, rc);
    if (a.enrolled)
        return tx_end(s, hub_store_fail(st, CN_EAUTH, "invalid enroll token"));

    if (a.enroll_expires_at <= now) {
        /* Burn it: an expired token never becomes valid again. */
        q = prep(s, Q_AGENT_BURN, &rc);
        if (!q)
            return tx_end(s, rc);
        b_text0(q, 1, a.id, &b);
        b_int(q, 2, now, &b);
        if ((rc = run(s, q, b)) < 0)
            return tx_end(s, rc);
        if ((rc = tx_commit(s)) < 0)
            return rc;
        return hub_store_fail(st, CN_ETIMEOUT, "enroll token expired");
    }

    q = prep(s, Q_AGENT_BIND, &rc);
    if (!q)
        return tx_end(s, rc);
    b_text0(q, 1, a.id, &b);
    b_key(q, 2, hash, &b);
    b_key(q, 3, pk, &b);
    b_int(q, 4, now, &b);
    rc = run(s, q, b);
    if (rc == HUB_ECONFLICT)
        rc = hub_store_fail(st, rc, "public key already belongs to another agent");
    else if (rc == 0 && sqlite3_changes(s->db) != 1)
        rc = hub_store_fail(st, CN_EAUTH, "invalid enroll token");
    if (rc == 0)
        rc = get_agent(s, a.workspace_id, a.id, out);
    return tx_end(s, rc);
}

static int sqlite_agent_find_by_key(hub_store_t *st, const uint8_t pk[static HUB_KEY_BYTES],
                                    hub_agent_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_AGENT_BY_KEY, &rc);
    if (!q)
        return rc;
    b_key(q, 1, pk, &b);
    return fetch_agent(s, q, b, out);
}

static int sqlite_agent_set_connected(hub_store_t *st, const char *ws, const char *id,
                                      bool connected, int64_t now)
{
    sqlite_store_t *s = S(st);
    int rc = run_ws_id_time(s, connected ? Q_AGENT_UP : Q_AGENT_DOWN, ws, id, now);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = hub_store_fail(st, CN_ENOTFOUND, "agent not found");
    return rc;
}

/* Runs statement `which` with one integer parameter; *count gets the rows
 * it changed. */
static int run_int_count(sqlite_store_t *s, enum q which, int64_t v, size_t *count)
{
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, which, &rc);
    if (!q)
        return rc;
    b_int(q, 1, v, &b);
    rc = run(s, q, b);
    *count = rc == 0 ? (size_t)sqlite3_changes(s->db) : 0;
    return rc;
}

static int sqlite_agent_reset_connections(hub_store_t *st, int64_t now, size_t *count)
{
    return run_int_count(S(st), Q_AGENT_RESET, now, count);
}

/* ---- tunnels ----------------------------------------------------------- */

static int fetch_tunnel(sqlite_store_t *s, sqlite3_stmt *q, int b, hub_tunnel_t *out)
{
    int one = step_one(s, q, b);
    if (one <= 0)
        return one < 0 ? one : hub_store_fail(&s->base, CN_ENOTFOUND, "tunnel not found");
    int rc = read_tunnel(s, q, out);
    done(q);
    return rc;
}

static int get_tunnel(sqlite_store_t *s, const char *ws, const char *id, hub_tunnel_t *out)
{
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_TUN_GET, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, id, &b);
    return fetch_tunnel(s, q, b, out);
}

/* The tunnels of a workspace, or of one of its agents (agent_id not
 * NULL; the tunnels_agent index answers both). */
static int count_tunnels(sqlite_store_t *s, const char *ws, const char *agent_id, size_t *count)
{
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, agent_id ? Q_TUN_COUNT_AGENT : Q_TUN_COUNT, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    if (agent_id)
        b_text0(q, 2, agent_id, &b);
    int one = step_one(s, q, b);
    if (one < 0)
        return one;
    *count = one ? (size_t)sqlite3_column_int64(q, 0) : 0;
    if (one)
        done(q);
    return 0;
}

/* Whether `ws` may take (kind, value) given recent releases: another
 * workspace's release newer than `held_after` blocks it. 1 = may, 0 = held
 * by another, <0 = error. */
static int release_allows(sqlite_store_t *s, const char *kind, const char *value, const char *ws,
                          int64_t held_after)
{
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_RELEASE_HELD, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, kind, &b);
    b_text0(q, 2, value, &b);
    b_int(q, 3, held_after, &b);
    int one = step_one(s, q, b);
    if (one <= 0)
        return one < 0 ? one : 1;
    char holder[HUB_ID_SIZE];
    bool ok = col_str(q, 0, holder, sizeof(holder));
    done(q);
    if (!ok)
        return corrupt(s, "release");
    return strcmp(holder, ws) == 0 ? 1 : 0;
}

/* Checks and claims (kind, value) for `ws`: drops its release row. */
static int release_claim(sqlite_store_t *s, const char *kind, const char *value, const char *ws,
                         int64_t held_after, const char *msg)
{
    int ok = release_allows(s, kind, value, ws, held_after);
    if (ok < 0)
        return ok;
    if (ok == 0)
        return hub_store_fail(&s->base, HUB_ECONFLICT, "%s", msg);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_RELEASE_CLAIM, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, kind, &b);
    b_text0(q, 2, value, &b);
    return run(s, q, b);
}

static int check_public_name(sqlite_store_t *s, const char *name, const char *self_id,
                             const char *ws, int64_t held_after)
{
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_PUBLIC_NAME_USED, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, name, &b);
    b_text0(q, 2, self_id, &b);
    int used = exists(s, q, b);
    if (used < 0)
        return used;
    if (used)
        return hub_store_fail(&s->base, HUB_ECONFLICT, "name: this public name is in use");
    return release_claim(s, "name", name, ws, held_after,
                         "name: this public name was released recently by another workspace");
}

static int check_name_in_ws(sqlite_store_t *s, const char *ws, const char *name,
                            const char *self_id)
{
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_NAME_USED_WS, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, name, &b);
    b_text0(q, 3, self_id, &b);
    int used = exists(s, q, b);
    if (used < 0)
        return used;
    return used ? hub_store_fail(&s->base, HUB_ECONFLICT,
                                 "name: a tunnel with this name already exists")
                : 0;
}

static int port_in_use(sqlite_store_t *s, uint16_t port)
{
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_PORT_USED, &rc);
    if (!q)
        return rc;
    b_int(q, 1, port, &b);
    return exists(s, q, b);
}

static int insert_tunnel_row(sqlite_store_t *s, const hub_tunnel_t *t)
{
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_TUN_INSERT, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, t->id, &b);
    b_text0(q, 2, t->workspace_id, &b);
    b_text0(q, 3, t->agent_id, &b);
    b_text0(q, 4, t->name, &b);
    b_text0(q, 5, t->target_host, &b);
    b_int(q, 6, t->target_port, &b);
    b_text0(q, 7, hub_protocol_name(t->protocol), &b);
    b_int(q, 8, t->is_public ? 1 : 0, &b);
    if (t->hub_port)
        b_int(q, 9, t->hub_port, &b);
    b_text0(q, 10, hub_tunnel_status_name(t->status), &b);
    b_text0(q, 11, t->metadata ? t->metadata : "{}", &b);
    b_text(q, 12, t->connection_string, &b);
    b_text(q, 13, t->last_error, &b);
    b_text(q, 14, t->http_user, &b);
    b_text(q, 15, t->http_password_hash, &b);
    b_int(q, 16, t->created_at, &b);
    b_time(q, 17, t->connected_at, &b);
    b_time(q, 18, t->expires_at, &b);
    b_int(q, 19, t->updated_at, &b);
    b_text(q, 20, t->plugin, &b);
    if (t->idle_timeout_s >= 0)
        b_int(q, 21, t->idle_timeout_s, &b);
    return run(s, q, b);
}

static int sqlite_tunnel_insert(hub_store_t *st, const hub_tunnel_t *t, size_t max_tunnels,
                                size_t max_per_agent, int64_t held_after)
{
    sqlite_store_t *s = S(st);
    int rc = tx_begin(s), b = SQLITE_OK;
    if (rc < 0)
        return rc;
    sqlite3_stmt *q = prep(s, Q_AGENT_IN_WS, &rc);
    if (!q)
        goto out;
    b_text0(q, 1, t->workspace_id, &b);
    b_text0(q, 2, t->agent_id, &b);
    if ((rc = exists(s, q, b)) <= 0) {
        if (rc == 0)
            rc = hub_store_fail(st, CN_ENOTFOUND, "agentId: agent not found");
        goto out;
    }
    rc = 0;
    if (max_tunnels) {
        size_t n = 0;
        if ((rc = count_tunnels(s, t->workspace_id, NULL, &n)) < 0)
            goto out;
        if (n >= max_tunnels) {
            rc = hub_store_fail(st, CN_EEXHAUSTED,
                                "tunnels: this workspace already has the maximum of %zu tunnels",
                                max_tunnels);
            goto out;
        }
    }
    /* Counted in the insert's transaction, so the cap holds exactly
     * whoever inserts (another hub on the same database included). */
    size_t mine = 0;
    if ((rc = count_tunnels(s, t->workspace_id, t->agent_id, &mine)) < 0)
        goto out;
    if (mine >= max_per_agent) {
        rc = hub_store_fail(st, CN_EEXHAUSTED,
                            "agentId: this agent already has the maximum of %zu tunnels",
                            max_per_agent);
        goto out;
    }
    if ((rc = check_name_in_ws(s, t->workspace_id, t->name, "")) < 0)
        goto out;
    if (t->is_public && (rc = check_public_name(s, t->name, "", t->workspace_id, held_after)) < 0)
        goto out;
    if (t->hub_port) {
        char port[8];
        snprintf(port, sizeof(port), "%u", (unsigned)t->hub_port);
        if ((rc = port_in_use(s, t->hub_port)) != 0) {
            if (rc > 0)
                rc = hub_store_fail(st, HUB_ECONFLICT, "hubPort: port %s is in use", port);
            goto out;
        }
        rc = release_claim(s, "port", port, t->workspace_id, held_after,
                           "hubPort: this port was released recently by another workspace");
        if (rc < 0)
            goto out;
    }
    q = prep(s, Q_RELEASE_PRUNE, &rc);
    if (!q)
        goto out;
    b = SQLITE_OK;
    b_int(q, 1, held_after, &b);
    if ((rc = run(s, q, b)) < 0)
        goto out;
    rc = insert_tunnel_row(s, t);
    if (rc == HUB_ECONFLICT) /* a backstop: the checks above name the field */
        hub_store_fail(st, rc, "tunnel conflicts with an existing one");
out:
    return tx_end(s, rc);
}

static int sqlite_tunnel_list(hub_store_t *st, const char *ws, const hub_tunnel_filter_t *f,
                              hub_tunnel_list_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_TUN_LIST, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text(q, 2, f->agent_id, &b);
    b_text(q, 3, f->by_status ? hub_tunnel_status_name(f->status) : NULL, &b);
    b_int(q, 4, HUB_LIST_MAX, &b);
    COLLECT(rc, s, q, b, out, hub_tunnel_t, read_tunnel, hub_tunnel_clear);
    return rc;
}

static int sqlite_tunnel_get(hub_store_t *st, const char *ws, const char *id, hub_tunnel_t *out)
{
    return get_tunnel(S(st), ws, id, out);
}

static int sqlite_tunnel_get_by_name(hub_store_t *st, const char *ws, const char *name,
                                     hub_tunnel_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_TUN_GET_NAME, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, name, &b);
    return fetch_tunnel(s, q, b, out);
}

/* Replaces a heap string field with a copy of v (NULL allowed). */
static int set_dup(sqlite_store_t *s, char **field, const char *v)
{
    char *c = NULL;
    if (v && !(c = strdup(v)))
        return hub_store_fail(&s->base, CN_ENOMEM, "out of memory");
    free(*field);
    *field = c;
    return 0;
}

static int sqlite_tunnel_update(hub_store_t *st, const char *ws, const char *id,
                                const hub_tunnel_update_t *p, int64_t now, int64_t held_after,
                                hub_tunnel_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = tx_begin(s), b = SQLITE_OK;
    if (rc < 0)
        return rc;
    hub_tunnel_t t = {0};
    if ((rc = get_tunnel(s, ws, id, &t)) < 0)
        goto out;
    if ((p->fields & HUB_TUNNEL_SET_NAME) && strcmp(p->name, t.name) != 0) {
        if ((rc = check_name_in_ws(s, ws, p->name, id)) < 0)
            goto out;
        if (t.is_public) {
            if ((rc = check_public_name(s, p->name, id, ws, held_after)) < 0)
                goto out;
            sqlite3_stmt *q = prep(s, Q_RELEASE_PUT, &rc);
            if (!q)
                goto out;
            b_text0(q, 1, "name", &b);
            b_text0(q, 2, t.name, &b);
            b_text0(q, 3, ws, &b);
            b_int(q, 4, now, &b);
            if ((rc = run(s, q, b)) < 0)
                goto out;
        }
        snprintf(t.name, sizeof(t.name), "%s", p->name);
    }
    if (p->fields & HUB_TUNNEL_SET_STATUS)
        t.status = p->status;
    if (p->fields & HUB_TUNNEL_SET_CONNECTED_AT)
        t.connected_at = p->connected_at;
    if (((p->fields & HUB_TUNNEL_SET_METADATA) &&
         (rc = set_dup(s, &t.metadata, p->metadata)) < 0) ||
        ((p->fields & HUB_TUNNEL_SET_LAST_ERROR) &&
         (rc = set_dup(s, &t.last_error, p->last_error)) < 0) ||
        ((p->fields & HUB_TUNNEL_SET_CONNECTION_STRING) &&
         (rc = set_dup(s, &t.connection_string, p->connection_string)) < 0))
        goto out;
    if (p->fields & HUB_TUNNEL_SET_PLUGIN)
        snprintf(t.plugin, sizeof(t.plugin), "%s", p->plugin ? p->plugin : "");
    if (p->fields & HUB_TUNNEL_SET_IDLE_TIMEOUT)
        t.idle_timeout_s = p->idle_timeout_s;
    t.updated_at = now;

    sqlite3_stmt *q = prep(s, Q_TUN_UPDATE, &rc);
    if (!q)
        goto out;
    b = SQLITE_OK;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, id, &b);
    b_text0(q, 3, t.name, &b);
    b_text0(q, 4, hub_tunnel_status_name(t.status), &b);
    b_text0(q, 5, t.metadata ? t.metadata : "{}", &b);
    b_text(q, 6, t.last_error, &b);
    b_time(q, 7, t.connected_at, &b);
    b_text(q, 8, t.connection_string, &b);
    b_int(q, 9, now, &b);
    b_text(q, 10, t.plugin, &b);
    if (t.idle_timeout_s >= 0)
        b_int(q, 11, t.idle_timeout_s, &b);
    rc = run(s, q, b);
    if (rc == HUB_ECONFLICT)
        hub_store_fail(st, rc, "name: a tunnel with this name already exists");
out:
    rc = tx_end(s, rc);
    if (rc == 0)
        *out = t;
    else
        hub_tunnel_clear(&t);
    return rc;
}

static int sqlite_tunnel_delete(hub_store_t *st, const char *ws, const char *id, int64_t now)
{
    sqlite_store_t *s = S(st);
    int rc = tx_begin(s), b = SQLITE_OK;
    if (rc < 0)
        return rc;
    if ((rc = run_ws_id_time(s, Q_RELEASE_TUN_NAME, ws, id, now)) < 0 ||
        (rc = run_ws_id_time(s, Q_RELEASE_TUN_PORT, ws, id, now)) < 0)
        return tx_end(s, rc);
    sqlite3_stmt *q = prep(s, Q_TUN_DELETE, &rc);
    if (q) {
        b_text0(q, 1, ws, &b);
        b_text0(q, 2, id, &b);
        rc = run(s, q, b);
        if (rc == 0 && sqlite3_changes(s->db) == 0)
            rc = hub_store_fail(st, CN_ENOTFOUND, "tunnel not found");
    }
    return tx_end(s, rc);
}

static int sqlite_tunnel_count(hub_store_t *st, const char *ws, const char *agent_id, size_t *count)
{
    return count_tunnels(S(st), ws, agent_id, count);
}

static int sqlite_tunnel_list_expired(hub_store_t *st, int64_t now, size_t limit,
                                      hub_tunnel_list_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_TUN_EXPIRED, &rc);
    if (!q)
        return rc;
    b_int(q, 1, now, &b);
    b_int(q, 2, (int64_t)limit, &b);
    COLLECT(rc, s, q, b, out, hub_tunnel_t, read_tunnel, hub_tunnel_clear);
    return rc;
}

static int sqlite_hub_port_available(hub_store_t *st, const char *ws, uint16_t port,
                                     int64_t held_after, bool *available)
{
    sqlite_store_t *s = S(st);
    int used = port_in_use(s, port);
    if (used < 0)
        return used;
    if (used) {
        *available = false;
        return 0;
    }
    char value[8];
    snprintf(value, sizeof(value), "%u", (unsigned)port);
    int ok = release_allows(s, "port", value, ws, held_after);
    if (ok < 0)
        return ok;
    *available = ok == 1;
    return 0;
}

static int sqlite_tunnel_find_public(hub_store_t *st, const char *name, hub_tunnel_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_TUN_PUBLIC, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, name, &b);
    return fetch_tunnel(s, q, b, out);
}

static int sqlite_tunnel_find_by_hub_port(hub_store_t *st, uint16_t port, hub_tunnel_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_TUN_BY_PORT, &rc);
    if (!q)
        return rc;
    b_int(q, 1, port, &b);
    return fetch_tunnel(s, q, b, out);
}

/* ---- events ------------------------------------------------------------ */

static int sqlite_event_insert(hub_store_t *st, const hub_event_t *e, int64_t *id_out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_EV_INSERT, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, e->workspace_id, &b);
    b_text0(q, 2, e->type, &b);
    b_text(q, 3, e->tunnel_id, &b);
    b_text(q, 4, e->agent_id, &b);
    b_text0(q, 5, e->data ? e->data : "{}", &b);
    b_int(q, 6, e->created_at, &b);
    rc = run(s, q, b);
    if (rc == CN_ENOTFOUND)
        hub_store_fail(st, rc, "workspace not found");
    if (rc == 0)
        *id_out = sqlite3_last_insert_rowid(s->db);
    return rc;
}

static int sqlite_event_list(hub_store_t *st, const char *ws, const hub_event_filter_t *f,
                             hub_event_list_t *out)
{
    sqlite_store_t *s = S(st);
    bool from = f->since != HUB_TIME_NONE || f->has_after;
    enum q which = from ? (f->tunnel_id ? Q_EV_FROM_TUNNEL : Q_EV_FROM)
                        : (f->tunnel_id ? Q_EV_LATEST_TUNNEL : Q_EV_LATEST);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, which, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    if (from) {
        b_int(q, 2, f->since, &b);
        b_int(q, 3, f->after_id, &b);
    }
    b_int(q, 4, (int64_t)f->limit, &b);
    if (f->tunnel_id)
        b_text0(q, 5, f->tunnel_id, &b);
    COLLECT(rc, s, q, b, out, hub_event_t, read_event, hub_event_clear);
    if (rc == 0 && !from) {
        /* Latest-N came newest first; hand them out in id order. */
        for (size_t i = 0, j = out->count; i + 1 < j; i++, j--) {
            hub_event_t tmp = out->items[i];
            out->items[i] = out->items[j - 1];
            out->items[j - 1] = tmp;
        }
    }
    return rc;
}

static int sqlite_event_prune(hub_store_t *st, int64_t before, size_t *count)
{
    return run_int_count(S(st), Q_EV_PRUNE, before, count);
}

static int sqlite_event_cap(hub_store_t *st, size_t keep, size_t *count)
{
    return run_int_count(S(st), Q_EV_CAP, (int64_t)keep, count);
}

/* ---- shares -------------------------------------------------------------- */

static int read_share(sqlite_store_t *s, sqlite3_stmt *q, hub_share_t *sh)
{
    memset(sh, 0, sizeof(*sh));
    int64_t rate = sqlite3_column_int64(q, 7);
    if (!col_str(q, 0, sh->id, sizeof(sh->id)) ||
        !col_str(q, 1, sh->workspace_id, sizeof(sh->workspace_id)) ||
        !col_str(q, 2, sh->tunnel_id, sizeof(sh->tunnel_id)) ||
        !col_str(q, 3, sh->name, sizeof(sh->name)) ||
        !col_str(q, 4, sh->description, sizeof(sh->description)) ||
        !col_str(q, 8, sh->http_user, sizeof(sh->http_user)) ||
        !col_str(q, 9, sh->http_password_hash, sizeof(sh->http_password_hash)) || rate < 1 ||
        rate > 1000 ||
        hub_store_share_rules_from_json(sh, (const char *)sqlite3_column_text(q, 5),
                                        (const char *)sqlite3_column_text(q, 6)) < 0)
        return corrupt(s, "share");
    sh->rate_limit = (uint32_t)rate;
    sh->created_at = col_time(q, 10);
    sh->expires_at = col_time(q, 11);
    sh->revoked_at = col_time(q, 12);
    return 0;
}

static void share_clear(hub_share_t *sh)
{
    sodium_memzero(sh, sizeof(*sh));
}

static int fetch_share(sqlite_store_t *s, sqlite3_stmt *q, int b, hub_share_t *out)
{
    int one = step_one(s, q, b);
    if (one <= 0)
        return one < 0 ? one : hub_store_fail(&s->base, CN_ENOTFOUND, "share not found");
    int rc = read_share(s, q, out);
    done(q);
    return rc;
}

static int sqlite_share_insert(hub_store_t *st, const hub_share_t *sh, const char *mj,
                               const char *pj, const uint8_t hash[static HUB_KEY_BYTES])
{
    sqlite_store_t *s = S(st);
    int rc = tx_begin(s), b = SQLITE_OK;
    if (rc < 0)
        return rc;
    sqlite3_stmt *q = prep(s, Q_TUN_IN_WS, &rc);
    if (!q)
        goto out;
    b_text0(q, 1, sh->workspace_id, &b);
    b_text0(q, 2, sh->tunnel_id, &b);
    if ((rc = exists(s, q, b)) <= 0) {
        if (rc == 0)
            rc = hub_store_fail(st, CN_ENOTFOUND, "tunnel not found");
        goto out;
    }
    rc = 0;
    b = SQLITE_OK;
    if (!(q = prep(s, Q_SHARE_INSERT, &rc)))
        goto out;
    b_text0(q, 1, sh->id, &b);
    b_text0(q, 2, sh->workspace_id, &b);
    b_text0(q, 3, sh->tunnel_id, &b);
    b_text0(q, 4, sh->name, &b);
    b_text0(q, 5, sh->description, &b);
    b_text0(q, 6, mj, &b);
    b_text0(q, 7, pj, &b);
    b_int(q, 8, sh->rate_limit, &b);
    b_text(q, 9, sh->http_user, &b);
    b_text(q, 10, sh->http_password_hash, &b);
    b_int(q, 11, sh->created_at, &b);
    b_time(q, 12, sh->expires_at, &b);
    b_time(q, 13, sh->revoked_at, &b);
    b_key(q, 14, hash, &b);
    rc = run(s, q, b);
out:
    return tx_end(s, rc);
}

static int sqlite_share_list(hub_store_t *st, const char *ws, const char *tunnel_id,
                             hub_share_list_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, tunnel_id ? Q_SHARE_LIST_TUNNEL : Q_SHARE_LIST, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_int(q, 2, HUB_LIST_MAX, &b);
    if (tunnel_id)
        b_text0(q, 3, tunnel_id, &b);
    COLLECT(rc, s, q, b, out, hub_share_t, read_share, share_clear);
    return rc;
}

static int sqlite_share_get(hub_store_t *st, const char *ws, const char *id, hub_share_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_SHARE_GET, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, id, &b);
    return fetch_share(s, q, b, out);
}

static int sqlite_share_find(hub_store_t *st, const uint8_t hash[static HUB_KEY_BYTES],
                             hub_share_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_SHARE_FIND, &rc);
    if (!q)
        return rc;
    b_key(q, 1, hash, &b);
    int one = step_one(s, q, b);
    if (one <= 0)
        return one < 0 ? one : hub_store_fail(st, CN_ENOTFOUND, "share not found");
    uint8_t stored[HUB_KEY_BYTES];
    bool present = false;
    rc = read_share(s, q, out);
    if (rc == 0 && (!col_key(q, 13, stored, &present) || !present || !hub_hash_equal(stored, hash)))
        rc = hub_store_fail(st, CN_ENOTFOUND, "share not found");
    done(q);
    return rc;
}

static int sqlite_share_revoke(hub_store_t *st, const char *ws, const char *id, int64_t now,
                               bool *changed)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_SHARE_GET, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, id, &b);
    if ((rc = exists(s, q, b)) <= 0)
        return rc < 0 ? rc : hub_store_fail(st, CN_ENOTFOUND, "share not found");
    b = SQLITE_OK;
    rc = 0;
    if (!(q = prep(s, Q_SHARE_REVOKE, &rc)))
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, id, &b);
    b_int(q, 3, now, &b);
    rc = run(s, q, b);
    *changed = rc == 0 && sqlite3_changes(s->db) > 0;
    return rc;
}

static int sqlite_share_list_expired(hub_store_t *st, int64_t now, size_t limit,
                                     hub_share_list_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_SHARE_EXPIRED, &rc);
    if (!q)
        return rc;
    b_int(q, 1, now, &b);
    b_int(q, 2, (int64_t)limit, &b);
    COLLECT(rc, s, q, b, out, hub_share_t, read_share, share_clear);
    return rc;
}

static int sqlite_share_mark_expired(hub_store_t *st, const char *ws, const char *id)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_SHARE_MARK, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, id, &b);
    return run(s, q, b);
}

static int sqlite_share_log_append(hub_store_t *st, const char *share_id,
                                   const hub_share_log_row_t *r)
{
    int rc = hub_slog_append(S(st)->slog, share_id, r);
    if (rc == CN_EEXHAUSTED)
        hub_store_fail(st, rc, "share access log: the queue is full, the row is dropped");
    return rc;
}

static int read_log(sqlite_store_t *s, sqlite3_stmt *q, hub_share_log_entry_t *e)
{
    memset(e, 0, sizeof(*e));
    e->id = sqlite3_column_int64(q, 0);
    e->at = sqlite3_column_int64(q, 1);
    e->status = sqlite3_column_int(q, 4);
    e->latency_ms = sqlite3_column_int64(q, 5);
    if (!col_str(q, 2, e->method, sizeof(e->method)) || !col_str(q, 3, e->path, sizeof(e->path)) ||
        !col_str(q, 6, e->client, sizeof(e->client)))
        return corrupt(s, "share access log");
    return 0;
}

static int sqlite_share_log_list(hub_store_t *st, const char *ws, const char *share_id,
                                 int64_t before, size_t limit, hub_share_log_list_t *out)
{
    sqlite_store_t *s = S(st);
    /* The writer commits about once a second under load: rows queued before
     * this read are committed first, so the API shows every request made
     * before it. Bounded (this runs on the event loop): past the deadline
     * the list shows what is committed and the rest follows. */
    if (hub_slog_flush(s->slog, HUB_SLOG_READ_WAIT_MS) == CN_ETIMEOUT)
        cn_log_debug("share access log: the writer is behind; the list may miss the newest rows");
    int rc = 0, b = SQLITE_OK, r = SQLITE_DONE;
    sqlite3_stmt *runs = prep(s, Q_SLOG_RUNS, &rc);
    sqlite3_stmt *rows = runs ? prep(s, Q_SLOG_ROWS, &rc) : NULL;
    if (!rows)
        return rc;
    b_text0(runs, 1, ws, &b);
    b_text0(runs, 2, share_id, &b);
    b_int(runs, 3, before, &b);
    rc = b == SQLITE_OK ? 0 : db_fail(s, b);
    size_t cap = 0;
    /* Both statements read in one snapshot: the runs' stays open. */
    while (rc == 0 && out->count < limit && (r = sqlite3_step(runs)) == SQLITE_ROW) {
        int64_t last = sqlite3_column_int64(runs, 1);
        b_int(rows, 1, sqlite3_column_int64(runs, 0), &b);
        b_int(rows, 2, last < before ? last : before - 1, &b);
        b_text0(rows, 3, share_id, &b);
        b_int(rows, 4, (int64_t)(limit - out->count), &b);
        if (b != SQLITE_OK) {
            rc = db_fail(s, b);
            break;
        }
        while (rc == 0 && (r = sqlite3_step(rows)) == SQLITE_ROW) {
            rc = grow(s, (void **)&out->items, &cap, out->count, sizeof(*out->items));
            if (rc == 0)
                rc = read_log(s, rows, &out->items[out->count]);
            if (rc == 0)
                out->count++;
        }
        if (rc == 0 && r != SQLITE_DONE)
            rc = db_fail(s, r);
        done(rows);
        r = SQLITE_DONE;
    }
    if (rc == 0 && r != SQLITE_DONE && r != SQLITE_ROW)
        rc = db_fail(s, r);
    done(runs);
    if (rc < 0) {
        free(out->items);
        out->items = NULL;
        out->count = 0;
    }
    return rc;
}

static int sqlite_share_log_prune(hub_store_t *st, int64_t before, size_t keep, size_t *count)
{
    int rc = hub_slog_prune(S(st)->slog, before, keep, count);
    if (rc < 0)
        hub_store_fail(st, rc, "share access log: retention failed");
    return rc;
}

static void sqlite_share_log_sync(hub_store_t *st)
{
    hub_slog_sync(S(st)->slog);
}

static uint64_t sqlite_share_log_dropped(hub_store_t *st)
{
    return hub_slog_dropped(S(st)->slog);
}

/* ---- webhooks ----------------------------------------------------------- */

static int read_webhook(sqlite_store_t *s, sqlite3_stmt *q, hub_webhook_t *w)
{
    memset(w, 0, sizeof(*w));
    if (!col_str(q, 0, w->id, sizeof(w->id)) ||
        !col_str(q, 1, w->workspace_id, sizeof(w->workspace_id)) ||
        !col_str(q, 2, w->url, sizeof(w->url)) || !col_str(q, 3, w->events, sizeof(w->events)) ||
        !col_str(q, 8, w->last_error, sizeof(w->last_error)))
        return corrupt(s, "webhook");
    w->enabled = sqlite3_column_int(q, 4) != 0;
    w->failures = (unsigned)sqlite3_column_int(q, 5);
    w->retry_at = col_time(q, 6);
    w->disabled_at = col_time(q, 7);
    w->last_success_at = col_time(q, 9);
    w->created_at = col_time(q, 10);
    w->updated_at = col_time(q, 11);
    return 0;
}

static int read_delivery(sqlite_store_t *s, sqlite3_stmt *q, hub_delivery_t *d)
{
    memset(d, 0, sizeof(*d));
    char state[16];
    d->id = sqlite3_column_int64(q, 0);
    if (!col_str(q, 1, d->webhook_id, sizeof(d->webhook_id)) ||
        !col_str(q, 2, d->workspace_id, sizeof(d->workspace_id)) ||
        !col_str(q, 4, d->event_type, sizeof(d->event_type)) ||
        !col_str(q, 5, state, sizeof(state)) ||
        !col_str(q, 8, d->last_error, sizeof(d->last_error)))
        return corrupt(s, "delivery");
    d->event_id = sqlite3_column_int64(q, 3);
    d->state = !strcmp(state, "delivered") ? HUB_DELIVERY_SENT
               : !strcmp(state, "dropped") ? HUB_DELIVERY_DROPPED
                                           : HUB_DELIVERY_PENDING;
    d->attempts = (unsigned)sqlite3_column_int(q, 6);
    d->last_status = sqlite3_column_int(q, 7);
    d->created_at = col_time(q, 9);
    d->last_attempt_at = col_time(q, 10);
    d->delivered_at = col_time(q, 11);
    return 0;
}

static int sqlite_webhook_insert(hub_store_t *st, const hub_webhook_t *w, const uint8_t *sealed,
                                 size_t sealed_len, size_t max_webhooks)
{
    sqlite_store_t *s = S(st);
    int rc = tx_begin(s), b = SQLITE_OK;
    if (rc < 0)
        return rc;
    sqlite3_stmt *q;
    rc = workspace_cap(s, Q_WH_COUNT, w->workspace_id, max_webhooks, "webhooks");
    if (rc < 0)
        goto out;
    if (!(q = prep(s, Q_WH_INSERT, &rc)))
        goto out;
    b_text0(q, 1, w->id, &b);
    b_text0(q, 2, w->workspace_id, &b);
    b_text0(q, 3, w->url, &b);
    if (b == SQLITE_OK)
        b = sqlite3_bind_blob(q, 4, sealed, (int)sealed_len, SQLITE_STATIC);
    b_text0(q, 5, w->events, &b);
    b_int(q, 6, w->created_at, &b);
    rc = run(s, q, b);
    if (rc == CN_ENOTFOUND)
        hub_store_fail(st, rc, "workspace not found");
out:
    return tx_end(s, rc);
}

static int sqlite_webhook_list(hub_store_t *st, const char *ws, bool enabled_only,
                               hub_webhook_list_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_WH_LIST, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_int(q, 2, enabled_only, &b);
    b_int(q, 3, HUB_LIST_MAX, &b);
    COLLECT(rc, s, q, b, out, hub_webhook_t, read_webhook, no_clear);
    return rc;
}

static int sqlite_webhook_get(hub_store_t *st, const char *ws, const char *id, hub_webhook_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_WH_GET, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, id, &b);
    int one = step_one(s, q, b);
    if (one <= 0)
        return one < 0 ? one : hub_store_fail(st, CN_ENOTFOUND, "webhook not found");
    rc = read_webhook(s, q, out);
    done(q);
    return rc;
}

/* Runs a statement bound (ws, id[, now]) that must change one row. */
static int change_webhook(sqlite_store_t *s, enum q which, const char *ws, const char *id,
                          int64_t now, bool with_now)
{
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, which, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, id, &b);
    if (with_now)
        b_int(q, 3, now, &b);
    rc = run(s, q, b);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = hub_store_fail(&s->base, CN_ENOTFOUND, "webhook not found");
    return rc;
}

static int sqlite_webhook_delete(hub_store_t *st, const char *ws, const char *id)
{
    return change_webhook(S(st), Q_WH_DELETE, ws, id, 0, false);
}

static int sqlite_webhook_set_enabled(hub_store_t *st, const char *ws, const char *id, bool enabled,
                                      int64_t now)
{
    return change_webhook(S(st), enabled ? Q_WH_ENABLE : Q_WH_DISABLE, ws, id, now, true);
}

static int sqlite_webhook_sealed(hub_store_t *st, const char *ws, const char *id, uint8_t *buf,
                                 size_t cap, size_t *len)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_WH_SEALED, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, id, &b);
    int one = step_one(s, q, b);
    if (one <= 0)
        return one < 0 ? one : hub_store_fail(st, CN_ENOTFOUND, "webhook not found");
    const void *blob = sqlite3_column_blob(q, 0);
    size_t n = (size_t)sqlite3_column_bytes(q, 0);
    if (!blob || n > cap) {
        rc = corrupt(s, "webhook");
    } else {
        memcpy(buf, blob, n);
        *len = n;
    }
    done(q);
    return rc;
}

static int sqlite_webhook_due(hub_store_t *st, int64_t now, size_t limit, hub_webhook_list_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_WH_DUE, &rc);
    if (!q)
        return rc;
    b_int(q, 1, now, &b);
    b_int(q, 2, (int64_t)limit, &b);
    COLLECT(rc, s, q, b, out, hub_webhook_t, read_webhook, no_clear);
    return rc;
}

static int sqlite_delivery_insert(hub_store_t *st, const char *webhook_id, const hub_event_t *e,
                                  int64_t event_id)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_DL_INSERT, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, webhook_id, &b);
    b_text0(q, 2, e->workspace_id, &b);
    b_int(q, 3, event_id, &b);
    b_text0(q, 4, e->type, &b);
    b_int(q, 5, e->created_at, &b);
    return run(s, q, b);
}

static int sqlite_delivery_next(hub_store_t *st, const char *webhook_id, hub_delivery_t *out,
                                hub_event_t *event)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_DL_NEXT, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, webhook_id, &b);
    int one = step_one(s, q, b);
    if (one <= 0)
        return one < 0 ? one : hub_store_fail(st, CN_ENOTFOUND, "no pending delivery");
    rc = read_delivery(s, q, out);
    if (rc == 0 && sqlite3_column_type(q, 12) != SQLITE_NULL) {
        event->id = sqlite3_column_int64(q, 12);
        if (!col_str(q, 13, event->workspace_id, sizeof(event->workspace_id)) ||
            !col_str(q, 14, event->type, sizeof(event->type)) ||
            !col_str(q, 15, event->tunnel_id, sizeof(event->tunnel_id)) ||
            !col_str(q, 16, event->agent_id, sizeof(event->agent_id)))
            rc = corrupt(s, "event");
        else if (!col_dup(q, 17, &event->data))
            rc = hub_store_fail(st, CN_ENOMEM, "out of memory");
        event->created_at = col_time(q, 18);
        if (rc < 0)
            hub_event_clear(event);
    }
    done(q);
    return rc;
}

static int sqlite_delivery_record(hub_store_t *st, const char *webhook_id, int64_t delivery_id,
                                  const hub_delivery_outcome_t *o, int64_t now)
{
    sqlite_store_t *s = S(st);
    int rc = tx_begin(s), b = SQLITE_OK;
    if (rc < 0)
        return rc;
    sqlite3_stmt *q = prep(s, Q_DL_RECORD, &rc);
    if (!q)
        goto out;
    b_text0(q, 1, webhook_id, &b);
    b_int(q, 2, delivery_id, &b);
    b_text0(q, 3, hub_delivery_state_name(o->state), &b);
    b_int(q, 4, o->attempted ? 1 : 0, &b);
    if (b == SQLITE_OK)
        b = o->status ? sqlite3_bind_int(q, 5, o->status) : sqlite3_bind_null(q, 5);
    b_text(q, 6, o->error, &b);
    b_int(q, 7, now, &b);
    rc = run(s, q, b);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = hub_store_fail(st, CN_ENOTFOUND, "no such pending delivery");
    if (rc < 0 || !o->attempted)
        goto out;
    b = SQLITE_OK;
    if (o->state == HUB_DELIVERY_SENT) {
        if (!(q = prep(s, Q_WH_SUCCESS, &rc)))
            goto out;
        b_text0(q, 1, webhook_id, &b);
        b_int(q, 2, now, &b);
    } else {
        if (!(q = prep(s, Q_WH_FAILURE, &rc)))
            goto out;
        b_text0(q, 1, webhook_id, &b);
        b_time(q, 2, o->retry_at, &b);
        b_text(q, 3, o->error, &b);
        b_int(q, 4, o->disable ? 1 : 0, &b);
        b_int(q, 5, now, &b);
    }
    rc = run(s, q, b);
out:
    return tx_end(s, rc);
}

static int sqlite_delivery_list(hub_store_t *st, const char *ws, const char *webhook_id,
                                size_t limit, hub_delivery_list_t *out)
{
    sqlite_store_t *s = S(st);
    int rc = 0, b = SQLITE_OK;
    sqlite3_stmt *q = prep(s, Q_DL_LIST, &rc);
    if (!q)
        return rc;
    b_text0(q, 1, ws, &b);
    b_text0(q, 2, webhook_id, &b);
    b_int(q, 3, (int64_t)limit, &b);
    COLLECT(rc, s, q, b, out, hub_delivery_t, read_delivery, no_clear);
    return rc;
}

static int sqlite_delivery_prune(hub_store_t *st, size_t keep_log, size_t max_pending, int64_t now,
                                 size_t *dropped)
{
    sqlite_store_t *s = S(st);
    int rc = tx_begin(s), b = SQLITE_OK;
    if (rc < 0)
        return rc;
    sqlite3_stmt *q = prep(s, Q_DL_PRUNE_PENDING, &rc);
    if (!q)
        goto out;
    b_int(q, 1, (int64_t)max_pending, &b);
    b_int(q, 2, now, &b);
    rc = run(s, q, b);
    if (rc < 0)
        goto out;
    *dropped = (size_t)sqlite3_changes(s->db);
    if (!(q = prep(s, Q_DL_PRUNE_LOG, &rc)))
        goto out;
    b = SQLITE_OK;
    b_int(q, 1, (int64_t)keep_log, &b);
    rc = run(s, q, b);
out:
    return tx_end(s, rc);
}

static int sqlite_delivery_pending_count(hub_store_t *st, size_t *count)
{
    sqlite_store_t *s = S(st);
    int rc = 0;
    sqlite3_stmt *q = prep(s, Q_DL_PENDING, &rc);
    if (!q)
        return rc;
    int one = step_one(s, q, SQLITE_OK);
    if (one < 0)
        return one;
    *count = one ? (size_t)sqlite3_column_int64(q, 0) : 0;
    if (one)
        done(q);
    return 0;
}

static const struct hub_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sqlite_close,
    .db_version = sqlite_db_version,
    .key_check = sqlite_key_check,
    .workspace_insert = sqlite_workspace_insert,
    .workspace_list = sqlite_workspace_list,
    .workspace_get = sqlite_workspace_get,
    .bootstrap = sqlite_bootstrap,
    .token_insert = sqlite_token_insert,
    .token_find = sqlite_token_find,
    .token_delete = sqlite_token_delete,
    .token_list = sqlite_token_list,
    .token_get = sqlite_token_get,
    .token_touch = sqlite_token_touch,
    .agent_insert = sqlite_agent_insert,
    .agent_list = sqlite_agent_list,
    .agent_get = sqlite_agent_get,
    .agent_delete = sqlite_agent_delete,
    .agent_enroll = sqlite_agent_enroll,
    .agent_find_by_key = sqlite_agent_find_by_key,
    .agent_set_connected = sqlite_agent_set_connected,
    .agent_reset_connections = sqlite_agent_reset_connections,
    .tunnel_insert = sqlite_tunnel_insert,
    .tunnel_list = sqlite_tunnel_list,
    .tunnel_get = sqlite_tunnel_get,
    .tunnel_get_by_name = sqlite_tunnel_get_by_name,
    .tunnel_update = sqlite_tunnel_update,
    .tunnel_delete = sqlite_tunnel_delete,
    .tunnel_count = sqlite_tunnel_count,
    .tunnel_list_expired = sqlite_tunnel_list_expired,
    .hub_port_available = sqlite_hub_port_available,
    .tunnel_find_public = sqlite_tunnel_find_public,
    .tunnel_find_by_hub_port = sqlite_tunnel_find_by_hub_port,
    .share_insert = sqlite_share_insert,
    .share_list = sqlite_share_list,
    .share_get = sqlite_share_get,
    .share_find = sqlite_share_find,
    .share_revoke = sqlite_share_revoke,
    .share_list_expired = sqlite_share_list_expired,
    .share_mark_expired = sqlite_share_mark_expired,
    .share_log_append = sqlite_share_log_append,
    .share_log_list = sqlite_share_log_list,
    .share_log_prune = sqlite_share_log_prune,
    .share_log_sync = sqlite_share_log_sync,
    .share_log_dropped = sqlite_share_log_dropped,
    .event_insert = sqlite_event_insert,
    .event_list = sqlite_event_list,
    .event_prune = sqlite_event_prune,
    .webhook_insert = sqlite_webhook_insert,
    .webhook_list = sqlite_webhook_list,
    .webhook_get = sqlite_webhook_get,
    .webhook_delete = sqlite_webhook_delete,
    .webhook_set_enabled = sqlite_webhook_set_enabled,
    .webhook_sealed = sqlite_webhook_sealed,
    .webhook_due = sqlite_webhook_due,
    .delivery_insert = sqlite_delivery_insert,
    .delivery_next = sqlite_delivery_next,
    .delivery_record = sqlite_delivery_record,
    .delivery_list = sqlite_delivery_list,
    .delivery_prune = sqlite_delivery_prune,
    .delivery_pending_count = sqlite_delivery_pending_count,
    .event_cap = sqlite_event_cap,
    .tx_begin = sqlite_tx_begin,
    .tx_end = sqlite_tx_end,
    .rows_written = sqlite_rows_written,
    .data_version = sqlite_data_version,
    .in_tx = sqlite_in_tx,
};
