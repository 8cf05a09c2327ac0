/* Private to hub/store*.c: the seam between the store's backend-neutral
 * layer (store.c: validation, ids, tokens and their hashes, passwords, the
 * clock, error messages) and a database backend (store_sqlite.c today; a
 * PostgreSQL one later implements the same table of operations).
 *
 * A backend receives inputs that store.c has already validated and
 * normalised (ids generated, JSON re-serialised, secrets hashed, "now"
 * read from the clock), so it only maps domain operations to its database:
 * each operation is atomic (and nests inside an open tx_begin), scoped by
 * workspace where it takes one, and reports errors through
 * hub_store_fail(). */
#ifndef HUB_STORE_BACKEND_H
#define HUB_STORE_BACKEND_H

#include "store.h"

#define HUB_STORE_ERRMSG_SIZE 256

struct hub_store_ops;

/* The part of every backend's handle that store.c owns; backends embed it
 * as their first member. */
struct hub_store {
    const struct hub_store_ops *ops;
    uint8_t secret_key[HUB_KEY_BYTES];
    hub_clock_fn clock;
    void *clock_ctx;
    int64_t release_hold_ms;
    /* hub_store_generation()'s own terms (store.c): rows written by the
     * calls that cannot change a share, tunnel, agent or workspace, and
     * the bumps that keep values read inside a transaction or after a
     * failure from ever being seen again. */
    uint64_t quiet_rows;
    uint64_t gen_bumps;
    bool gen_in_tx;
    unsigned external_check_ms; /* hub_store_options_t */
    uint64_t external_checked_ms, external_version;
    char errmsg[HUB_STORE_ERRMSG_SIZE];
};

struct hub_store_ops {
    const char *name;
    void (*close)(hub_store_t *st);
    int (*db_version)(hub_store_t *st, int *version);
    /* Records `check` (a keyed hash proving which secret key the database
     * is used with) on first use; afterwards CN_EAUTH unless it matches. */
    int (*key_check)(hub_store_t *st, const uint8_t check[static HUB_KEY_BYTES]);

    int (*workspace_insert)(hub_store_t *st, const hub_workspace_t *ws);
    int (*workspace_list)(hub_store_t *st, hub_workspace_list_t *out);
    int (*workspace_get)(hub_store_t *st, const char *id, hub_workspace_t *out);

    /* Inserts ws and its token unless any workspace exists (HUB_ECONFLICT). */
    int (*bootstrap)(hub_store_t *st, const hub_workspace_t *ws, const hub_token_info_t *info,
                     const uint8_t hash[static HUB_KEY_BYTES]);
    int (*token_insert)(hub_store_t *st, const hub_token_info_t *info,
                        const uint8_t hash[static HUB_KEY_BYTES]);
    /* The token whose stored hash equals `hash` (compared in constant time
     * after the indexed lookup). CN_EAUTH if none. */
    int (*token_find)(hub_store_t *st, const uint8_t hash[static HUB_KEY_BYTES],
                      hub_token_info_t *out);
    int (*token_delete)(hub_store_t *st, const char *workspace_id, const char *id);
    int (*token_list)(hub_store_t *st, const char *workspace_id, hub_token_list_t *out);
    int (*token_get)(hub_store_t *st, const char *workspace_id, const char *id,
                     hub_token_info_t *out);
    /* Sets last_used_at = now unless it is already after `stale_before`
     * (a conditional write: concurrent hubs write it once). */
    int (*token_touch)(hub_store_t *st, const char *id, int64_t now, int64_t stale_before);

    /* max_agents: 0 = no cap, else CN_EEXHAUSTED at the cap (atomic). */
    int (*agent_insert)(hub_store_t *st, const hub_agent_t *a, size_t max_agents,
                        const uint8_t enroll_hash[static HUB_KEY_BYTES]);
    int (*agent_list)(hub_store_t *st, const char *workspace_id, hub_agent_list_t *out);
    int (*agent_get)(hub_store_t *st, const char *workspace_id, const char *id, hub_agent_t *out);
    int (*agent_delete)(hub_store_t *st, const char *workspace_id, const char *id, int64_t now);
    int (*agent_enroll)(hub_store_t *st, const uint8_t enroll_hash[static HUB_KEY_BYTES],
                        const uint8_t public_key[static HUB_KEY_BYTES], int64_t now,
                        hub_agent_t *out);
    int (*agent_find_by_key)(hub_store_t *st, const uint8_t public_key[static HUB_KEY_BYTES],
                             hub_agent_t *out);
    int (*agent_set_connected)(hub_store_t *st, const char *workspace_id, const char *id,
                               bool connected, int64_t now);
    int (*agent_reset_connections)(hub_store_t *st, int64_t now, size_t *count);

    /* `held_after`: releases at or before it are stale (now - hold). */
    /* Refuses with CN_EEXHAUSTED, in the insert's own transaction, a tunnel
     * past `max_tunnels` in the workspace (0 = no cap) or `max_per_agent`
     * of its agent (always > 0). */
    int (*tunnel_insert)(hub_store_t *st, const hub_tunnel_t *t, size_t max_tunnels,
                         size_t max_per_agent, int64_t held_after);
    int (*tunnel_list)(hub_store_t *st, const char *workspace_id, const hub_tunnel_filter_t *f,
                       hub_tunnel_list_t *out);
    int (*tunnel_get)(hub_store_t *st, const char *workspace_id, const char *id, hub_tunnel_t *out);
    int (*tunnel_get_by_name)(hub_store_t *st, const char *workspace_id, const char *name,
                              hub_tunnel_t *out);
    /* Every field selected in p->fields is valid; metadata is compact JSON,
     * last_error sanitised. */
    int (*tunnel_update)(hub_store_t *st, const char *workspace_id, const char *id,
                         const hub_tunnel_update_t *p, int64_t now, int64_t held_after,
                         hub_tunnel_t *out);
    int (*tunnel_delete)(hub_store_t *st, const char *workspace_id, const char *id, int64_t now);
    /* agent_id NULL: the whole workspace. */
    int (*tunnel_count)(hub_store_t *st, const char *workspace_id, const char *agent_id,
                        size_t *count);
    int (*tunnel_list_expired)(hub_store_t *st, int64_t now, size_t limit, hub_tunnel_list_t *out);
    int (*hub_port_available)(hub_store_t *st, const char *workspace_id, uint16_t port,
                              int64_t held_after, bool *available);
    int (*tunnel_find_public)(hub_store_t *st, const char *name, hub_tunnel_t *out);
    int (*tunnel_find_by_hub_port)(hub_store_t *st, uint16_t port, hub_tunnel_t *out);

    /* Checks that the tunnel is in the workspace, then inserts; methods
     * and paths arrive as JSON array text. */
    int (*share_insert)(hub_store_t *st, const hub_share_t *s, const char *methods_json,
                        const char *paths_json, const uint8_t token_hash[static HUB_KEY_BYTES]);
    int (*share_list)(hub_store_t *st, const char *workspace_id, const char *tunnel_id,
                      hub_share_list_t *out);
    int (*share_get)(hub_store_t *st, const char *workspace_id, const char *id, hub_share_t *out);
    int (*share_find)(hub_store_t *st, const uint8_t token_hash[static HUB_KEY_BYTES],
                      hub_share_t *out);
    int (*share_revoke)(hub_store_t *st, const char *workspace_id, const char *id, int64_t now,
                        bool *changed);
    int (*share_list_expired)(hub_store_t *st, int64_t now, size_t limit, hub_share_list_t *out);
    int (*share_mark_expired)(hub_store_t *st, const char *workspace_id, const char *id);
    /* The access log (store_sqlite_log.h for SQLite): rows of shares that
     * no longer exist may be written; the list never shows them (it joins
     * the shares) and the prune removes them. */
    int (*share_log_append)(hub_store_t *st, const char *share_id, const hub_share_log_row_t *r);
    /* Newest first, id < before. */
    int (*share_log_list)(hub_store_t *st, const char *workspace_id, const char *share_id,
                          int64_t before, size_t limit, hub_share_log_list_t *out);
    int (*share_log_prune)(hub_store_t *st, int64_t before, size_t keep, size_t *count);
    void (*share_log_sync)(hub_store_t *st);
    uint64_t (*share_log_dropped)(hub_store_t *st);

    int (*event_insert)(hub_store_t *st, const hub_event_t *e, int64_t *id_out);
    /* q->limit is in 1..HUB_EVENTS_MAX. */
    int (*event_list)(hub_store_t *st, const char *workspace_id, const hub_event_filter_t *q,
                      hub_event_list_t *out);
    int (*event_prune)(hub_store_t *st, int64_t before, size_t *count);
    int (*event_cap)(hub_store_t *st, size_t keep, size_t *count);

    /* Webhooks. `sealed` is the secret as store.c sealed it (opaque here).
     * max_webhooks: 0 = no cap, else CN_EEXHAUSTED at the cap (atomic). */
    int (*webhook_insert)(hub_store_t *st, const hub_webhook_t *w, const uint8_t *sealed,
                          size_t sealed_len, size_t max_webhooks);
    int (*webhook_list)(hub_store_t *st, const char *workspace_id, bool enabled_only,
                        hub_webhook_list_t *out);
    int (*webhook_get)(hub_store_t *st, const char *workspace_id, const char *id,
                       hub_webhook_t *out);
    int (*webhook_delete)(hub_store_t *st, const char *workspace_id, const char *id);
    int (*webhook_set_enabled)(hub_store_t *st, const char *workspace_id, const char *id,
                               bool enabled, int64_t now);
    /* Copies the sealed secret into buf (at most cap bytes); *len gets its
     * length. */
    int (*webhook_sealed)(hub_store_t *st, const char *workspace_id, const char *id, uint8_t *buf,
                          size_t cap, size_t *len);
    int (*webhook_due)(hub_store_t *st, int64_t now, size_t limit, hub_webhook_list_t *out);
    /* Queues one pending delivery of event `e` for webhook `webhook_id`. */
    int (*delivery_insert)(hub_store_t *st, const char *webhook_id, const hub_event_t *e,
                           int64_t event_id);
    int (*delivery_next)(hub_store_t *st, const char *webhook_id, hub_delivery_t *out,
                         hub_event_t *event);
    /* o->error is sanitised, at most HUB_DELIVERY_ERROR_MAX bytes. */
    int (*delivery_record)(hub_store_t *st, const char *webhook_id, int64_t delivery_id,
                           const hub_delivery_outcome_t *o, int64_t now);
    /* limit is in 1..HUB_EVENTS_MAX. */
    int (*delivery_list)(hub_store_t *st, const char *workspace_id, const char *webhook_id,
                         size_t limit, hub_delivery_list_t *out);
    int (*delivery_prune)(hub_store_t *st, size_t keep_log, size_t max_pending, int64_t now,
                          size_t *dropped);
    int (*delivery_pending_count)(hub_store_t *st, size_t *count);

    /* hub_store_tx_begin/end (store.h): nesting levels; every operation
     * above joins the open transaction. tx_end commits the innermost level
     * when rc == 0, else rolls it back, and returns the outcome. */
    int (*tx_begin)(hub_store_t *st);
    int (*tx_end)(hub_store_t *st, int rc);
    /* The terms of hub_store_generation(). rows_written: rows inserted,
     * updated or deleted through this handle since it opened, rolled back
     * or not (never goes down). data_version: a number that moves when
     * another connection to the database has committed. in_tx: whether a
     * transaction is open on the handle. */
    uint64_t (*rows_written)(const hub_store_t *st);
    int (*data_version)(hub_store_t *st, uint64_t *out);
    bool (*in_tx)(const hub_store_t *st);
};

/* Fills the common part of a backend's handle. */
void hub_store_base_init(hub_store_t *st, const struct hub_store_ops *ops,
                         const hub_store_options_t *opt);
/* Records a one-line message for hub_store_errmsg() and returns `rc`. */
int hub_store_fail(hub_store_t *st, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A share's methods and paths as JSON array text (malloc'd; NULL when out
 * of memory), and back into a record (CN_EPROTO for anything unexpected). */
char *hub_store_share_methods_json(unsigned mask);
char *hub_store_share_paths_json(const char *const *paths, size_t n);
int hub_store_share_rules_from_json(hub_share_t *s, const char *methods, const char *paths);

/* Backends. */
int hub_store_sqlite_open(const hub_store_options_t *opt, hub_store_t **out, char *err,
                          size_t errlen);
int hub_store_sqlite_schema_version(void);

/* With hub_store_options_t.checkpoint_thread: how many checkpoints the
 * thread has run, and in *frames how many WAL frames they copied (tests). */
uint64_t hub_store_sqlite_checkpoints(hub_store_t *st, uint64_t *frames);

#endif
