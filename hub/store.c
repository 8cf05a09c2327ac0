/* The backend-neutral half of the store: validates and normalises inputs,
 * generates ids, tokens and passwords, hashes secrets, reads the clock, and
 * hands the result to the backend (store_backend.h). Nothing here speaks
 * SQL, so a second backend reuses all of it. */
#include "store_backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_time.h"
#include "cn_utf8.h"
#include "webhook_core.h"
#include "router.h"

/* ---- handle ------------------------------------------------------------ */

void hub_store_base_init(hub_store_t *st, const struct hub_store_ops *ops,
                         const hub_store_options_t *opt)
{
    st->ops = ops;
    memcpy(st->secret_key, opt->secret_key, HUB_KEY_BYTES);
    st->clock = opt->clock ? opt->clock : hub_time_now_ms;
    st->clock_ctx = opt->clock ? opt->clock_ctx : NULL;
    st->release_hold_ms =
        opt->release_hold_ms > 0 ? opt->release_hold_ms : HUB_RELEASE_HOLD_DEFAULT_MS;
    st->errmsg[0] = '\0';
    st->external_check_ms = opt->external_check_ms;
}

int hub_store_fail(hub_store_t *st, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc = cn_verrf(rc, st->errmsg, sizeof(st->errmsg), fmt, ap);
    va_end(ap);
    return rc;
}

int hub_store_open(const hub_store_options_t *opt, hub_store_t **out, char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (!opt || !out || !opt->path || !*opt->path || !opt->secret_key) {
        return cn_errf(CN_EINVAL, err, errlen, "hub_store_open: path and secret key are required");
    }
    if (hub_secrets_init() < 0) {
        return cn_errf(CN_ECRYPTO, err, errlen, "cannot initialise libsodium");
    }
    if (!strncmp(opt->path, "postgres://", 11) || !strncmp(opt->path, "postgresql://", 13)) {
        return cn_errf(CN_EUNKNOWN, err, errlen,
                       "PostgreSQL is not supported by this build; use a SQLite file path");
    }
    if (!strcmp(opt->path, ":memory:") || !strncmp(opt->path, "file:", 5)) {
        return cn_errf(CN_EINVAL, err, errlen, "the hub database must be a plain file path");
    }
    hub_store_t *st = NULL;
    int rc = hub_store_sqlite_open(opt, &st, err, errlen);
    if (rc < 0)
        return rc;
    /* Refuse a secret key that is not this database's: with the wrong
     * PATH.secret every token would just fail, one 401 at a time. The
     * database keeps a keyed hash of a fixed label (no use to an attacker
     * without the key); the first open records it. */
    uint8_t check[HUB_KEY_BYTES];
    rc = hub_token_hash(st->secret_key, "connect-hub secret key check", check);
    if (rc == 0)
        rc = st->ops->key_check(st, check);
    sodium_memzero(check, sizeof(check));
    if (rc < 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", opt->path, st->errmsg);
        hub_store_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void hub_store_close(hub_store_t *st)
{
    if (!st)
        return;
    sodium_memzero(st->secret_key, sizeof(st->secret_key));
    st->ops->close(st);
}

const char *hub_store_errmsg(const hub_store_t *st)
{
    return st ? st->errmsg : "no store";
}

int hub_store_schema_version(void)
{
    return hub_store_sqlite_schema_version();
}

int hub_store_db_version(hub_store_t *st, int *version)
{
    if (!st || !version)
        return CN_EINVAL;
    st->errmsg[0] = '\0';
    return st->ops->db_version(st, version);
}

int64_t hub_store_now(const hub_store_t *st)
{
    return st->clock(st->clock_ctx);
}

/* ---- validation helpers ----------------------------------------------- */

/* Valid UTF-8, min..max bytes, no control characters. */
static bool text_ok(const char *s, size_t min, size_t max)
{
    if (!s)
        return min == 0;
    size_t len = strnlen(s, max + 1);
    if (len < min || len > max)
        return false;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return false;
        size_t n = cn_utf8_seq(p + i, len - i);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

/* Printable ASCII without spaces (hosts, users), min..max bytes. */
static bool ascii_ok(const char *s, size_t min, size_t max, const char *forbidden)
{
    if (!s)
        return min == 0;
    size_t len = strnlen(s, max + 1);
    if (len < min || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] <= 0x20 || s[i] >= 0x7f || (forbidden && strchr(forbidden, s[i])))
            return false;
    }
    return true;
}

static bool empty(const char *s)
{
    return !s || !*s;
}

/* Copy of free text with control characters turned into spaces, invalid
 * UTF-8 into '?', cut at `max` bytes on a character boundary. Diagnostic
 * text (lastError) comes from agents and error paths; it is cleaned, not
 * refused. NULL when s is NULL or on allocation failure (*oom set). */
static char *sanitize_text(const char *s, size_t max, bool *oom)
{
    *oom = false;
    if (!s)
        return NULL;
    size_t len = strnlen(s, max + 4);
    char *out = malloc((len < max ? len : max) + 1);
    if (!out) {
        *oom = true;
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = cn_utf8_seq(p + i, len - i);
        if (n == 0 || (n == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
            if (o + 1 > max)
                break;
            out[o++] = n == 0 ? '?' : ' ';
            i++;
            continue;
        }
        if (o + n > max)
            break;
        memcpy(out + o, p + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return out;
}

/* Parses `text` as a JSON object and returns it re-serialised compactly
 * (one spelling per value; duplicate keys refused), or NULL with *rc set. */
static char *normalize_object(const char *text, size_t max, int *rc)
{
    json_error_t jerr;
    *rc = CN_EINVAL;
    if (!text)
        text = "{}";
    if (strnlen(text, max + 1) > max) {
        *rc = CN_ETOOBIG;
        return NULL;
    }
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        return NULL;
    char *out = NULL;
    if (json_is_object(j)) {
        out = json_dumps(j, JSON_COMPACT);
        *rc = out ? 0 : CN_ENOMEM;
        if (out && strlen(out) > max) {
            free(out);
            out = NULL;
            *rc = CN_ETOOBIG;
        }
    }
    json_decref(j);
    return out;
}

static bool event_type_ok(const char *s)
{
    if (!s)
        return false;
    size_t len = strnlen(s, HUB_EVENT_TYPE_MAX + 1);
    if (len == 0 || len > HUB_EVENT_TYPE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_'))
            return false;
    }
    return true;
}

/* Ids that are not canonical UUIDs cannot exist: answer "not found" without
 * asking the database. */
#define CHECK_ID(st, id, what)                                                                     \
    do {                                                                                           \
        if (!hub_uuid_valid(id))                                                                   \
            return hub_store_fail((st), CN_ENOTFOUND, "%s not found", (what));                     \
    } while (0)

#define CHECK_ST(st)                                                                               \
    do {                                                                                           \
        if (!(st))                                                                                 \
            return CN_EINVAL;                                                                      \
        (st)->errmsg[0] = '\0';                                                                    \
    } while (0)

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* ---- enum names ------------------------------------------------------- */

static const char *const protocol_names[] = {"auto", "tcp", "udp", "http", "https"};
static const char *const status_names[] = {"connecting", "active", "paused", "error", "expired"};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *hub_protocol_name(int protocol)
{
    return protocol >= 0 && (size_t)protocol < COUNT(protocol_names) ? protocol_names[protocol]
                                                                     : "?";
}

bool hub_protocol_on_http_edge(int protocol)
{
    return protocol == HUB_PROTO_HTTP || protocol == HUB_PROTO_HTTPS;
}

int hub_protocol_parse(const char *s, enum hub_protocol *out)
{
    for (size_t i = 0; s && i < COUNT(protocol_names); i++) {
        if (!strcmp(s, protocol_names[i])) {
            *out = (enum hub_protocol)i;
            return 0;
        }
    }
    return CN_EINVAL;
}

static const char *const scope_names[] = {"member", "agent", "admin", "operator"};

const char *hub_token_scope_name(int scope)
{
    return scope >= 0 && (size_t)scope < COUNT(scope_names) ? scope_names[scope] : "?";
}

int hub_token_scope_parse(const char *s, enum hub_token_scope *out)
{
    for (size_t i = 0; s && i < COUNT(scope_names); i++) {
        if (!strcmp(s, scope_names[i])) {
            *out = (enum hub_token_scope)i;
            return 0;
        }
    }
    return CN_EINVAL;
}

const char *hub_tunnel_status_name(int status)
{
    return status >= 0 && (size_t)status < COUNT(status_names) ? status_names[status] : "?";
}

int hub_tunnel_status_parse(const char *s, enum hub_tunnel_status *out)
{
    for (size_t i = 0; s && i < COUNT(status_names); i++) {
        if (!strcmp(s, status_names[i])) {
            *out = (enum hub_tunnel_status)i;
            return 0;
        }
    }
    return CN_EINVAL;
}

/* ---- records ------------------------------------------------------------ */

void hub_workspace_list_free(hub_workspace_list_t *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void hub_token_list_free(hub_token_list_t *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void hub_agent_list_free(hub_agent_list_t *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void hub_tunnel_clear(hub_tunnel_t *t)
{
    if (!t)
        return;
    free(t->metadata);
    free(t->connection_string);
    free(t->last_error);
    sodium_memzero(t, sizeof(*t)); /* also the password hash */
}

void hub_tunnel_list_free(hub_tunnel_list_t *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        hub_tunnel_clear(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void hub_event_clear(hub_event_t *e)
{
    if (!e)
        return;
    free(e->data);
    memset(e, 0, sizeof(*e));
}

void hub_event_list_free(hub_event_list_t *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        hub_event_clear(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

/* ---- transactions ------------------------------------------------------ */

int hub_store_tx_begin(hub_store_t *st)
{
    CHECK_ST(st);
    return st->ops->tx_begin(st);
}

int hub_store_tx_end(hub_store_t *st, int rc)
{
    if (!st)
        return CN_EINVAL;
    /* Not CHECK_ST: a rollback keeps the message of the failure that
     * caused it. */
    if (rc == 0)
        st->errmsg[0] = '\0';
    return st->ops->tx_end(st, rc);
}

uint64_t hub_store_generation(hub_store_t *st)
{
    if (!st)
        return 0;
    uint64_t others = st->external_version;
    uint64_t now = st->external_check_ms ? cn_time_mono_ms() : 0;
    bool ask = !st->external_check_ms || st->ops->in_tx(st) || st->gen_in_tx ||
               now - st->external_checked_ms >= st->external_check_ms;
    if (ask && st->ops->data_version(st, &others) < 0) {
        /* A cache then reads the store, which reports the trouble, rather
         * than trusting itself: the value is new every time. */
        st->gen_bumps++;
    } else if (st->ops->in_tx(st)) {
        /* What is read now may be rolled back: a new value on every call,
         * and once more after the transaction, so that nothing filled
         * inside it is trusted afterwards. */
        st->gen_bumps++;
        st->gen_in_tx = true;
    } else if (st->gen_in_tx) {
        st->gen_bumps++;
        st->gen_in_tx = false;
    }
    if (ask) {
        st->external_version = others;
        st->external_checked_ms = now;
    }
    /* Every term only grows (quiet_rows never passes rows_written), so the
     * sum moves whenever one does. */
    return st->ops->rows_written(st) - st->quiet_rows + others + st->gen_bumps;
}

/* Makes the rows written since `before` (rows_written() then) quiet: the
 * writes that change no share, tunnel, agent or workspace (a token's
 * lastUsedAt) do not move the generation, so that they do not empty the
 * caches that rely on it. */
static void quiet_since(hub_store_t *st, uint64_t before)
{
    st->quiet_rows += st->ops->rows_written(st) - before;
}

/* ---- workspaces --------------------------------------------------------- */

int hub_store_workspace_create(hub_store_t *st, const char *name, hub_workspace_t *out)
{
    CHECK_ST(st);
    if (!text_ok(name, 1, HUB_NAME_MAX))
        return hub_store_fail(st, CN_EINVAL, "name: must be 1-%d bytes of text", HUB_NAME_MAX);
    hub_workspace_t ws = {0};
    hub_uuid_v4(ws.id);
    copy_str(ws.name, sizeof(ws.name), name);
    ws.created_at = hub_store_now(st);
    int rc = st->ops->workspace_insert(st, &ws);
    if (rc == 0 && out)
        *out = ws;
    return rc;
}

int hub_store_workspace_list(hub_store_t *st, hub_workspace_list_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    *out = (hub_workspace_list_t){0};
    return st->ops->workspace_list(st, out);
}

int hub_store_workspace_get(hub_store_t *st, const char *id, hub_workspace_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    CHECK_ID(st, id, "workspace");
    return st->ops->workspace_get(st, id, out);
}
/* A fresh secret token (shown once) and its keyed hash (stored). The caller
 * wipes both. */
static int mint_token(hub_store_t *st, const char *prefix, const char *what,
                      char token[static HUB_TOKEN_STR_SIZE], uint8_t hash[static HUB_KEY_BYTES])
{
    int rc = hub_token_generate(prefix, token);
    if (rc == 0)
        rc = hub_token_hash(st->secret_key, token, hash);
    if (rc < 0)
        hub_store_fail(st, rc, "%s", what);
    return rc;
}

/* ---- first run --------------------------------------------------------- */

int hub_store_bootstrap(hub_store_t *st, const char *name,
                        char token_out[static HUB_TOKEN_STR_SIZE], hub_workspace_t *ws_out)
{
    CHECK_ST(st);
    token_out[0] = '\0';
    if (!text_ok(name, 1, HUB_NAME_MAX))
        return hub_store_fail(st, CN_EINVAL, "name: must be 1-%d bytes of text", HUB_NAME_MAX);
    hub_workspace_t ws = {0};
    hub_uuid_v4(ws.id);
    copy_str(ws.name, sizeof(ws.name), name);
    ws.created_at = hub_store_now(st);
    hub_token_info_t ti = {0};
    hub_uuid_v4(ti.id);
    copy_str(ti.workspace_id, sizeof(ti.workspace_id), ws.id);
    copy_str(ti.name, sizeof(ti.name), "operator");
    ti.scope = HUB_SCOPE_OPERATOR;
    ti.created_at = ws.created_at;

    char token[HUB_TOKEN_STR_SIZE];
    uint8_t hash[HUB_KEY_BYTES];
    int rc = mint_token(st, HUB_TOKEN_PREFIX_API, "cannot generate a token", token, hash);
    if (rc < 0)
        goto done;
    rc = st->ops->bootstrap(st, &ws, &ti, hash);
    if (rc == 0) {
        memcpy(token_out, token, HUB_TOKEN_STR_SIZE);
        if (ws_out)
            *ws_out = ws;
    }
done:
    sodium_memzero(token, sizeof(token));
    sodium_memzero(hash, sizeof(hash));
    return rc;
}

/* ---- API tokens -------------------------------------------------------- */

int hub_store_token_create(hub_store_t *st, const char *workspace_id, const char *name,
                           enum hub_token_scope scope, const char *agent_id,
                           char token_out[static HUB_TOKEN_STR_SIZE], hub_token_info_t *info)
{
    CHECK_ST(st);
    token_out[0] = '\0';
    CHECK_ID(st, workspace_id, "workspace");
    if (!text_ok(name, 0, HUB_NAME_MAX))
        return hub_store_fail(st, CN_EINVAL, "name: must be at most %d bytes of text",
                              HUB_NAME_MAX);
    if ((unsigned)scope >= COUNT(scope_names))
        return hub_store_fail(st, CN_EINVAL, "scope: unknown");
    if ((scope == HUB_SCOPE_AGENT) != !empty(agent_id))
        return hub_store_fail(st, CN_EINVAL,
                              "agentId: an agent token needs its agent, and only it");
    if (scope == HUB_SCOPE_AGENT && !hub_uuid_valid(agent_id))
        return hub_store_fail(st, CN_ENOTFOUND, "agentId: agent not found");
    hub_token_info_t ti = {0};
    hub_uuid_v4(ti.id);
    copy_str(ti.workspace_id, sizeof(ti.workspace_id), workspace_id);
    copy_str(ti.name, sizeof(ti.name), name);
    ti.scope = scope;
    copy_str(ti.agent_id, sizeof(ti.agent_id), agent_id);
    ti.created_at = hub_store_now(st);

    char token[HUB_TOKEN_STR_SIZE];
    uint8_t hash[HUB_KEY_BYTES];
    int rc = mint_token(st, HUB_TOKEN_PREFIX_API, "cannot generate a token", token, hash);
    if (rc < 0)
        goto done;
    rc = st->ops->token_insert(st, &ti, hash);
    if (rc == 0) {
        memcpy(token_out, token, HUB_TOKEN_STR_SIZE);
        if (info)
            *info = ti;
    }
done:
    sodium_memzero(token, sizeof(token));
    sodium_memzero(hash, sizeof(hash));
    return rc;
}

int hub_store_token_authenticate(hub_store_t *st, const char *token, hub_token_info_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    if (!hub_token_well_formed(HUB_TOKEN_PREFIX_API, token))
        return hub_store_fail(st, CN_EAUTH, "invalid token");
    uint8_t hash[HUB_KEY_BYTES];
    int rc = hub_token_hash(st->secret_key, token, hash);
    if (rc == 0)
        rc = st->ops->token_find(st, hash, out);
    sodium_memzero(hash, sizeof(hash));
    if (rc == CN_ENOTFOUND || rc == CN_EAUTH)
        return hub_store_fail(st, CN_EAUTH, "invalid token");
    if (rc < 0)
        return rc;
    /* Record the use, but at most once a minute per token: a write per
     * request would make every API call a database write. */
    int64_t now = hub_store_now(st);
    int64_t stale_before = now - HUB_TOKEN_LAST_USED_EVERY_MS;
    if (out->last_used_at == HUB_TIME_NONE || out->last_used_at <= stale_before) {
        uint64_t before = st->ops->rows_written(st);
        rc = st->ops->token_touch(st, out->id, now, stale_before);
        quiet_since(st, before);
        if (rc < 0)
            return rc;
        out->last_used_at = now;
    }
    return 0;
}

int hub_store_token_list(hub_store_t *st, const char *workspace_id, hub_token_list_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    *out = (hub_token_list_t){0};
    if (!hub_uuid_valid(workspace_id))
        return 0;
    return st->ops->token_list(st, workspace_id, out);
}

int hub_store_token_get(hub_store_t *st, const char *workspace_id, const char *token_id,
                        hub_token_info_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    CHECK_ID(st, workspace_id, "token");
    CHECK_ID(st, token_id, "token");
    return st->ops->token_get(st, workspace_id, token_id, out);
}

int hub_store_token_delete(hub_store_t *st, const char *workspace_id, const char *token_id)
{
    CHECK_ST(st);
    CHECK_ID(st, workspace_id, "token");
    CHECK_ID(st, token_id, "token");
    return st->ops->token_delete(st, workspace_id, token_id);
}

/* ---- agents ------------------------------------------------------------ */

int hub_store_agent_create(hub_store_t *st, const char *workspace_id, const char *name,
                           int64_t enroll_ttl_ms, size_t max_agents,
                           char enroll_token_out[static HUB_TOKEN_STR_SIZE], hub_agent_t *out)
{
    CHECK_ST(st);
    enroll_token_out[0] = '\0';
    CHECK_ID(st, workspace_id, "workspace");
    if (!text_ok(name, 0, HUB_NAME_MAX))
        return hub_store_fail(st, CN_EINVAL, "name: must be at most %d bytes of text",
                              HUB_NAME_MAX);
    if (enroll_ttl_ms < 0 || enroll_ttl_ms > 366LL * 86400 * 1000)
        return hub_store_fail(st, CN_EINVAL, "enroll token lifetime must be 0..366 days");
    hub_agent_t a = {0};
    hub_uuid_v4(a.id);
    copy_str(a.workspace_id, sizeof(a.workspace_id), workspace_id);
    copy_str(a.name, sizeof(a.name), name);
    a.created_at = a.updated_at = hub_store_now(st);
    a.enroll_expires_at =
        a.created_at + (enroll_ttl_ms ? enroll_ttl_ms : HUB_ENROLL_TTL_DEFAULT_MS);

    char token[HUB_TOKEN_STR_SIZE];
    uint8_t hash[HUB_KEY_BYTES];
    int rc =
        mint_token(st, HUB_TOKEN_PREFIX_ENROLL, "cannot generate an enroll token", token, hash);
    if (rc < 0)
        goto done;
    rc = st->ops->agent_insert(st, &a, max_agents, hash);
    if (rc == 0) {
        memcpy(enroll_token_out, token, HUB_TOKEN_STR_SIZE);
        if (out)
            *out = a;
    }
done:
    sodium_memzero(token, sizeof(token));
    sodium_memzero(hash, sizeof(hash));
    return rc;
}

int hub_store_agent_list(hub_store_t *st, const char *workspace_id, hub_agent_list_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    *out = (hub_agent_list_t){0};
    if (!hub_uuid_valid(workspace_id))
        return 0; /* an unknown workspace has no agents */
    return st->ops->agent_list(st, workspace_id, out);
}

int hub_store_agent_get(hub_store_t *st, const char *workspace_id, const char *id, hub_agent_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    CHECK_ID(st, workspace_id, "agent");
    CHECK_ID(st, id, "agent");
    return st->ops->agent_get(st, workspace_id, id, out);
}

int hub_store_agent_delete(hub_store_t *st, const char *workspace_id, const char *id)
{
    CHECK_ST(st);
    CHECK_ID(st, workspace_id, "agent");
    CHECK_ID(st, id, "agent");
    return st->ops->agent_delete(st, workspace_id, id, hub_store_now(st));
}

int hub_store_agent_enroll(hub_store_t *st, const char *enroll_token,
                           const uint8_t public_key[static 32], hub_agent_t *out)
{
    CHECK_ST(st);
    if (!hub_token_well_formed(HUB_TOKEN_PREFIX_ENROLL, enroll_token))
        return hub_store_fail(st, CN_EAUTH, "invalid enroll token");
    static const uint8_t zero[HUB_KEY_BYTES];
    if (hub_hash_equal(public_key, zero))
        return hub_store_fail(st, CN_EINVAL, "public key: all zero");
    uint8_t hash[HUB_KEY_BYTES];
    hub_agent_t a = {0};
    int rc = hub_token_hash(st->secret_key, enroll_token, hash);
    if (rc == 0)
        rc = st->ops->agent_enroll(st, hash, public_key, hub_store_now(st), &a);
    sodium_memzero(hash, sizeof(hash));
    if (rc == 0 && out)
        *out = a;
    return rc;
}

int hub_store_agent_find_by_key(hub_store_t *st, const uint8_t public_key[static 32],
                                hub_agent_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    return st->ops->agent_find_by_key(st, public_key, out);
}

int hub_store_agent_set_connected(hub_store_t *st, const char *workspace_id, const char *id,
                                  bool connected)
{
    CHECK_ST(st);
    CHECK_ID(st, workspace_id, "agent");
    CHECK_ID(st, id, "agent");
    return st->ops->agent_set_connected(st, workspace_id, id, connected, hub_store_now(st));
}

int hub_store_agent_reset_connections(hub_store_t *st, size_t *count)
{
    CHECK_ST(st);
    size_t n = 0;
    int rc = st->ops->agent_reset_connections(st, hub_store_now(st), &n);
    if (count)
        *count = rc == 0 ? n : 0;
    return rc;
}

/* ---- basic-auth passwords ------------------------------------------------ */

#define KEYED_PREFIX "b2k$"

/* "b2k$" + hex(BLAKE2b-256 keyed with the hub secret key): generated
 * passwords carry ~142 bits, so a slow hash buys nothing and would stall
 * the event loop on every request. */
static int keyed_password_hash(hub_store_t *st, const char *password,
                               char out[static HUB_PASSWORD_HASH_SIZE])
{
    uint8_t h[HUB_KEY_BYTES];
    int rc = hub_token_hash(st->secret_key, password, h);
    if (rc < 0)
        return rc;
    char hex[2 * HUB_KEY_BYTES + 1];
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    snprintf(out, HUB_PASSWORD_HASH_SIZE, KEYED_PREFIX "%s", hex);
    sodium_memzero(h, sizeof(h));
    sodium_memzero(hex, sizeof(hex));
    return 0;
}

int hub_store_password_check(hub_store_t *st, const char *stored, const char *password)
{
    if (!st || !stored || !password || strncmp(stored, KEYED_PREFIX, 4) != 0 ||
        strlen(stored) != 4 + 2 * HUB_KEY_BYTES || strlen(password) > 1024)
        return CN_EAUTH;
    uint8_t want[HUB_KEY_BYTES], got[HUB_KEY_BYTES];
    if (sodium_hex2bin(want, sizeof(want), stored + 4, 2 * HUB_KEY_BYTES, NULL, NULL, NULL) != 0 ||
        hub_token_hash(st->secret_key, password, got) < 0)
        return CN_EAUTH;
    bool ok = hub_hash_equal(want, got);
    sodium_memzero(got, sizeof(got));
    return ok ? 0 : CN_EAUTH;
}

/* ---- tunnels ----------------------------------------------------------- */

static int64_t held_after(hub_store_t *st, int64_t now)
{
    return now - st->release_hold_ms;
}

/* A plugin name as connect/plugin.h defines it: [a-z][a-z0-9_-]{0,30}. */
static bool plugin_name_ok(const char *s)
{
    size_t n = 0;
    if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (; s[n]; n++)
        if (n >= HUB_PLUGIN_MAX || !((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') ||
                                     s[n] == '_' || s[n] == '-'))
            return false;
    return true;
}

int hub_store_tunnel_create(hub_store_t *st, const char *workspace_id,
                            const hub_tunnel_spec_t *spec, hub_tunnel_t *out,
                            char password_out[HUB_PASSWORD_SIZE])
{
    CHECK_ST(st);
    if (!spec)
        return CN_EINVAL;
    if (password_out)
        password_out[0] = '\0';
    CHECK_ID(st, workspace_id, "workspace");
    if (!text_ok(spec->name, 1, HUB_NAME_MAX))
        return hub_store_fail(st, CN_EINVAL, "name: must be 1-%d bytes of text", HUB_NAME_MAX);
    if (!hub_uuid_valid(spec->agent_id))
        return hub_store_fail(st, CN_ENOTFOUND, "agentId: agent not found");
    if (!ascii_ok(spec->target_host, 1, HUB_HOST_MAX, NULL))
        return hub_store_fail(st, CN_EINVAL, "target: host must be 1-%d printable characters",
                              HUB_HOST_MAX);
    if (spec->target_port == 0)
        return hub_store_fail(st, CN_EINVAL, "target: port must be between 1 and 65535");
    if ((unsigned)spec->protocol >= COUNT(protocol_names))
        return hub_store_fail(st, CN_EINVAL, "protocol: unknown");
    if (spec->ttl_ms < 0 || spec->ttl_ms > 100LL * 366 * 86400 * 1000)
        return hub_store_fail(st, CN_EINVAL, "ttl: out of range");
    if (!text_ok(spec->connection_string, 0, HUB_CONNSTR_MAX))
        return hub_store_fail(st, CN_EINVAL, "connectionString: at most %d bytes of text",
                              HUB_CONNSTR_MAX);
    if (!empty(spec->plugin) && !plugin_name_ok(spec->plugin))
        return hub_store_fail(st, CN_EINVAL, "protocol: not a plugin name");
    if (spec->idle_timeout_set && spec->idle_timeout_s > HUB_IDLE_TIMEOUT_MAX)
        return hub_store_fail(st, CN_EINVAL, "idleTimeout: out of range");
    bool with_auth = !empty(spec->http_user);
    if (with_auth && !ascii_ok(spec->http_user, 1, HUB_USER_MAX, ":"))
        return hub_store_fail(
            st, CN_EINVAL, "httpUser: must be 1-%d printable characters without ':'", HUB_USER_MAX);
    if (with_auth && !password_out)
        return hub_store_fail(st, CN_EINVAL, "httpUser: no place to return the password");

    int rc;
    hub_tunnel_t t = {0};
    char password[HUB_PASSWORD_SIZE] = "";
    t.metadata = normalize_object(spec->metadata, HUB_METADATA_MAX, &rc);
    if (!t.metadata) {
        hub_store_fail(st, rc, "metadata: must be a JSON object of at most %d bytes",
                       HUB_METADATA_MAX);
        goto done;
    }
    if (!empty(spec->connection_string) &&
        !(t.connection_string = strdup(spec->connection_string))) {
        rc = hub_store_fail(st, CN_ENOMEM, "out of memory");
        goto done;
    }
    hub_uuid_v4(t.id);
    copy_str(t.workspace_id, sizeof(t.workspace_id), workspace_id);
    copy_str(t.agent_id, sizeof(t.agent_id), spec->agent_id);
    copy_str(t.name, sizeof(t.name), spec->name);
    copy_str(t.target_host, sizeof(t.target_host), spec->target_host);
    copy_str(t.plugin, sizeof(t.plugin), spec->plugin ? spec->plugin : "");
    t.target_port = spec->target_port;
    t.protocol = spec->protocol;
    t.is_public = spec->is_public;
    t.hub_port = spec->hub_port;
    t.status = HUB_TUNNEL_CONNECTING;
    t.idle_timeout_s =
        spec->idle_timeout_set ? (int32_t)spec->idle_timeout_s : HUB_IDLE_TIMEOUT_DEFAULT;
    if (with_auth) {
        copy_str(t.http_user, sizeof(t.http_user), spec->http_user);
        rc = hub_password_generate(password);
        if (rc == 0)
            rc = keyed_password_hash(st, password, t.http_password_hash);
        if (rc < 0) {
            hub_store_fail(st, rc, "cannot hash the basic-auth password");
            goto done;
        }
    }
    int64_t now = hub_store_now(st);
    t.created_at = t.updated_at = now;
    t.expires_at = spec->ttl_ms ? now + spec->ttl_ms : HUB_TIME_NONE;

    size_t per_agent = spec->max_per_agent && spec->max_per_agent < HUB_TUNNELS_PER_AGENT_MAX
                           ? spec->max_per_agent
                           : HUB_TUNNELS_PER_AGENT_MAX;
    rc = st->ops->tunnel_insert(st, &t, spec->max_tunnels, per_agent, held_after(st, now));
    if (rc == 0) {
        if (with_auth)
            memcpy(password_out, password, HUB_PASSWORD_SIZE);
        if (out) {
            *out = t;
            t = (hub_tunnel_t){0};
        }
    }
done:
    sodium_memzero(password, sizeof(password));
    hub_tunnel_clear(&t);
    return rc;
}

int hub_store_tunnel_list(hub_store_t *st, const char *workspace_id,
                          const hub_tunnel_filter_t *filter, hub_tunnel_list_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    *out = (hub_tunnel_list_t){0};
    hub_tunnel_filter_t f = {0};
    if (filter)
        f = *filter;
    if (f.agent_id && !*f.agent_id)
        f.agent_id = NULL;
    if (f.by_status && (unsigned)f.status >= COUNT(status_names))
        return hub_store_fail(st, CN_EINVAL, "status: unknown");
    if (!hub_uuid_valid(workspace_id) || (f.agent_id && !hub_uuid_valid(f.agent_id)))
        return 0; /* nothing can match */
    return st->ops->tunnel_list(st, workspace_id, &f, out);
}

int hub_store_tunnel_get(hub_store_t *st, const char *workspace_id, const char *id,
                         hub_tunnel_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    CHECK_ID(st, workspace_id, "tunnel");
    CHECK_ID(st, id, "tunnel");
    return st->ops->tunnel_get(st, workspace_id, id, out);
}

int hub_store_tunnel_get_by_name(hub_store_t *st, const char *workspace_id, const char *name,
                                 hub_tunnel_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    CHECK_ID(st, workspace_id, "tunnel");
    if (!text_ok(name, 1, HUB_NAME_MAX))
        return hub_store_fail(st, CN_ENOTFOUND, "tunnel not found");
    return st->ops->tunnel_get_by_name(st, workspace_id, name, out);
}

int hub_store_tunnel_update(hub_store_t *st, const char *workspace_id, const char *id,
                            const hub_tunnel_update_t *upd, hub_tunnel_t *out)
{
    CHECK_ST(st);
    if (!upd)
        return CN_EINVAL;
    CHECK_ID(st, workspace_id, "tunnel");
    CHECK_ID(st, id, "tunnel");
    hub_tunnel_update_t p = *upd;
    char *metadata = NULL, *last_error = NULL;
    int rc = 0;
    if ((p.fields & HUB_TUNNEL_SET_NAME) && !text_ok(p.name, 1, HUB_NAME_MAX))
        return hub_store_fail(st, CN_EINVAL, "name: must be 1-%d bytes of text", HUB_NAME_MAX);
    if ((p.fields & HUB_TUNNEL_SET_STATUS) && (unsigned)p.status >= COUNT(status_names))
        return hub_store_fail(st, CN_EINVAL, "status: unknown");
    if ((p.fields & HUB_TUNNEL_SET_CONNECTION_STRING) &&
        !text_ok(p.connection_string, 0, HUB_CONNSTR_MAX))
        return hub_store_fail(st, CN_EINVAL, "connectionString: at most %d bytes of text",
                              HUB_CONNSTR_MAX);
    if ((p.fields & HUB_TUNNEL_SET_CONNECTED_AT) && p.connected_at < 0)
        return hub_store_fail(st, CN_EINVAL, "connectedAt: out of range");
    if ((p.fields & HUB_TUNNEL_SET_PLUGIN) && !empty(p.plugin) && !plugin_name_ok(p.plugin))
        return hub_store_fail(st, CN_EINVAL, "protocol: not a plugin name");
    if ((p.fields & HUB_TUNNEL_SET_IDLE_TIMEOUT) &&
        (p.idle_timeout_s < HUB_IDLE_TIMEOUT_DEFAULT || p.idle_timeout_s > HUB_IDLE_TIMEOUT_MAX))
        return hub_store_fail(st, CN_EINVAL, "idleTimeout: out of range");
    if ((p.fields & HUB_TUNNEL_SET_CONNECTION_STRING) && empty(p.connection_string))
        p.connection_string = NULL;
    if (p.fields & HUB_TUNNEL_SET_METADATA) {
        metadata = normalize_object(p.metadata ? p.metadata : "{}", HUB_METADATA_MAX, &rc);
        if (!metadata)
            return hub_store_fail(st, rc, "metadata: must be a JSON object of at most %d bytes",
                                  HUB_METADATA_MAX);
        p.metadata = metadata;
    }
    if ((p.fields & HUB_TUNNEL_SET_LAST_ERROR) && !empty(p.last_error)) {
        bool oom;
        last_error = sanitize_text(p.last_error, HUB_LAST_ERROR_MAX, &oom);
        if (oom) {
            free(metadata);
            return hub_store_fail(st, CN_ENOMEM, "out of memory");
        }
        p.last_error = last_error;
    } else if (p.fields & HUB_TUNNEL_SET_LAST_ERROR) {
        p.last_error = NULL;
    }
    int64_t now = hub_store_now(st);
    hub_tunnel_t t = {0};
    rc = st->ops->tunnel_update(st, workspace_id, id, &p, now, held_after(st, now), &t);
    free(metadata);
    free(last_error);
    if (rc == 0 && out)
        *out = t;
    else
        hub_tunnel_clear(&t);
    return rc;
}

int hub_store_tunnel_delete(hub_store_t *st, const char *workspace_id, const char *id)
{
    CHECK_ST(st);
    CHECK_ID(st, workspace_id, "tunnel");
    CHECK_ID(st, id, "tunnel");
    return st->ops->tunnel_delete(st, workspace_id, id, hub_store_now(st));
}

int hub_store_tunnel_count(hub_store_t *st, const char *workspace_id, size_t *count)
{
    CHECK_ST(st);
    if (!count)
        return CN_EINVAL;
    *count = 0;
    if (!hub_uuid_valid(workspace_id))
        return 0;
    return st->ops->tunnel_count(st, workspace_id, NULL, count);
}

int hub_store_tunnel_count_agent(hub_store_t *st, const char *workspace_id, const char *agent_id,
                                 size_t *count)
{
    CHECK_ST(st);
    if (!count)
        return CN_EINVAL;
    *count = 0;
    if (!hub_uuid_valid(workspace_id) || !hub_uuid_valid(agent_id))
        return 0;
    return st->ops->tunnel_count(st, workspace_id, agent_id, count);
}

int hub_store_tunnel_list_expired(hub_store_t *st, size_t limit, hub_tunnel_list_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    *out = (hub_tunnel_list_t){0};
    if (limit == 0 || limit > HUB_LIST_MAX)
        limit = HUB_LIST_MAX;
    return st->ops->tunnel_list_expired(st, hub_store_now(st), limit, out);
}

int hub_store_hub_port_available(hub_store_t *st, const char *workspace_id, uint16_t hub_port,
                                 bool *available)
{
    CHECK_ST(st);
    if (!available)
        return CN_EINVAL;
    *available = false;
    if (hub_port == 0)
        return hub_store_fail(st, CN_EINVAL, "hubPort: must be between 1 and 65535");
    CHECK_ID(st, workspace_id, "workspace");
    return st->ops->hub_port_available(st, workspace_id, hub_port,
                                       held_after(st, hub_store_now(st)), available);
}

int hub_store_tunnel_find_public(hub_store_t *st, const char *name, hub_tunnel_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    if (!text_ok(name, 1, HUB_NAME_MAX))
        return hub_store_fail(st, CN_ENOTFOUND, "tunnel not found");
    return st->ops->tunnel_find_public(st, name, out);
}

int hub_store_tunnel_find_by_hub_port(hub_store_t *st, uint16_t hub_port, hub_tunnel_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    if (hub_port == 0)
        return hub_store_fail(st, CN_ENOTFOUND, "tunnel not found");
    return st->ops->tunnel_find_by_hub_port(st, hub_port, out);
}

/* ---- events ------------------------------------------------------------ */

/* One pending delivery per enabled webhook of the event's workspace whose
 * filter selects it. */
static int enqueue_deliveries(hub_store_t *st, const hub_event_t *e, int64_t event_id)
{
    hub_webhook_list_t l = {0};
    int rc = st->ops->webhook_list(st, e->workspace_id, true, &l);
    for (size_t i = 0; rc == 0 && i < l.count; i++)
        if (hub_webhook_events_match(l.items[i].events, e->type))
            rc = st->ops->delivery_insert(st, l.items[i].id, e, event_id);
    hub_webhook_list_free(&l);
    return rc;
}

int hub_store_event_append(hub_store_t *st, const char *workspace_id, const hub_event_spec_t *spec,
                           int64_t *id_out)
{
    CHECK_ST(st);
    if (!spec)
        return CN_EINVAL;
    CHECK_ID(st, workspace_id, "workspace");
    if (!event_type_ok(spec->type))
        return hub_store_fail(st, CN_EINVAL, "type: must be 1-%d of [a-z0-9._]",
                              HUB_EVENT_TYPE_MAX);
    if (!empty(spec->tunnel_id) && !hub_uuid_valid(spec->tunnel_id))
        return hub_store_fail(st, CN_EINVAL, "tunnelId: not a UUID");
    if (!empty(spec->agent_id) && !hub_uuid_valid(spec->agent_id))
        return hub_store_fail(st, CN_EINVAL, "agentId: not a UUID");
    int rc;
    hub_event_t e = {0};
    e.data = normalize_object(spec->data, HUB_EVENT_DATA_MAX, &rc);
    if (!e.data)
        return hub_store_fail(st, rc, "data: must be a JSON object of at most %d bytes",
                              HUB_EVENT_DATA_MAX);
    copy_str(e.workspace_id, sizeof(e.workspace_id), workspace_id);
    copy_str(e.type, sizeof(e.type), spec->type);
    copy_str(e.tunnel_id, sizeof(e.tunnel_id), spec->tunnel_id);
    copy_str(e.agent_id, sizeof(e.agent_id), spec->agent_id);
    e.created_at = hub_store_now(st);
    int64_t id = 0;
    /* The event and its webhook deliveries commit together. */
    rc = hub_store_tx_begin(st);
    if (rc == 0) {
        rc = st->ops->event_insert(st, &e, &id);
        if (rc == 0)
            rc = enqueue_deliveries(st, &e, id);
        rc = hub_store_tx_end(st, rc);
    }
    hub_event_clear(&e);
    if (rc == 0 && id_out)
        *id_out = id;
    return rc;
}

int hub_store_event_list(hub_store_t *st, const char *workspace_id,
                         const hub_event_filter_t *filter, hub_event_list_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    *out = (hub_event_list_t){0};
    hub_event_filter_t q = {0};
    if (filter)
        q = *filter;
    if (q.tunnel_id && !*q.tunnel_id)
        q.tunnel_id = NULL;
    if (q.limit == 0)
        q.limit = HUB_EVENTS_DEFAULT;
    if (q.limit > HUB_EVENTS_MAX)
        q.limit = HUB_EVENTS_MAX;
    if (q.since < 0 || q.after_id < 0)
        return hub_store_fail(st, CN_EINVAL, "since: out of range");
    if (!hub_uuid_valid(workspace_id) || (q.tunnel_id && !hub_uuid_valid(q.tunnel_id)))
        return 0;
    return st->ops->event_list(st, workspace_id, &q, out);
}

int hub_store_event_cap(hub_store_t *st, size_t keep, size_t *count)
{
    CHECK_ST(st);
    size_t n = 0;
    int rc = keep ? st->ops->event_cap(st, keep, &n) : CN_EINVAL;
    if (count)
        *count = rc == 0 ? n : 0;
    return rc;
}

int hub_store_event_prune(hub_store_t *st, int64_t before, size_t *count)
{
    CHECK_ST(st);
    size_t n = 0;
    int rc = st->ops->event_prune(st, before, &n);
    if (count)
        *count = rc == 0 ? n : 0;
    return rc;
}

/* ---- webhooks ---------------------------------------------------------- */

/* Sealed secret: nonce || XChaCha20-Poly1305(secret), associated data the
 * webhook id, under a key derived from the hub secret key for this one
 * purpose (so it is never the key that hashes tokens). */
#define SEAL_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_SIZE (SEAL_NONCE + HUB_WEBHOOK_SECRET_LEN + crypto_aead_xchacha20poly1305_ietf_ABYTES)
#define SEAL_KDF_CONTEXT "cnwhsec1" /* 8 bytes, crypto_kdf_CONTEXTBYTES */
#define SEAL_KDF_ID 1

static int seal_key(const hub_store_t *st, uint8_t key[static HUB_KEY_BYTES])
{
    return crypto_kdf_derive_from_key(key, HUB_KEY_BYTES, SEAL_KDF_ID, SEAL_KDF_CONTEXT,
                                      st->secret_key) == 0
               ? 0
               : CN_ECRYPTO;
}

static int seal_secret(const hub_store_t *st, const char *id, const char *secret,
                       uint8_t out[static SEAL_SIZE])
{
    uint8_t key[HUB_KEY_BYTES];
    int rc = seal_key(st, key);
    if (rc == 0) {
        randombytes_buf(out, SEAL_NONCE);
        unsigned long long clen = 0;
        if (crypto_aead_xchacha20poly1305_ietf_encrypt(
                out + SEAL_NONCE, &clen, (const uint8_t *)secret, HUB_WEBHOOK_SECRET_LEN,
                (const uint8_t *)id, strlen(id), NULL, out, key) != 0 ||
            clen != SEAL_SIZE - SEAL_NONCE)
            rc = CN_ECRYPTO;
    }
    sodium_memzero(key, sizeof(key));
    return rc;
}

static int open_secret(const hub_store_t *st, const char *id, const uint8_t *sealed, size_t len,
                       char out[static HUB_WEBHOOK_SECRET_SIZE])
{
    uint8_t key[HUB_KEY_BYTES];
    out[0] = '\0';
    if (len != SEAL_SIZE)
        return CN_EAUTH;
    int rc = seal_key(st, key);
    unsigned long long mlen = 0;
    if (rc == 0 && (crypto_aead_xchacha20poly1305_ietf_decrypt(
                        (uint8_t *)out, &mlen, NULL, sealed + SEAL_NONCE, len - SEAL_NONCE,
                        (const uint8_t *)id, strlen(id), sealed, key) != 0 ||
                    mlen != HUB_WEBHOOK_SECRET_LEN))
        rc = CN_EAUTH;
    out[rc == 0 ? HUB_WEBHOOK_SECRET_LEN : 0] = '\0';
    sodium_memzero(key, sizeof(key));
    return rc;
}

/* "whsec_" + base64url(32 random bytes). */
static int make_secret(char out[static HUB_WEBHOOK_SECRET_SIZE])
{
    uint8_t raw[32];
    randombytes_buf(raw, sizeof(raw));
    snprintf(out, HUB_WEBHOOK_SECRET_SIZE, "%s", HUB_WEBHOOK_SECRET_PREFIX);
    sodium_bin2base64(out + 6, HUB_WEBHOOK_SECRET_SIZE - 6, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    return strlen(out) == HUB_WEBHOOK_SECRET_LEN ? 0 : CN_ECRYPTO;
}

/* The filter re-serialised compactly; NULL = ["*"]. */
static int normalize_events(const char *text, char out[static HUB_WEBHOOK_EVENTS_SIZE])
{
    json_t *j = json_loads(text ? text : "[\"*\"]", JSON_REJECT_DUPLICATES, NULL);
    int rc = CN_EINVAL;
    if (hub_webhook_events_valid(j, NULL)) {
        char *c = json_dumps(j, JSON_COMPACT);
        rc = !c ? CN_ENOMEM : strlen(c) > HUB_WEBHOOK_EVENTS_MAX ? CN_ETOOBIG : 0;
        if (rc == 0)
            memcpy(out, c, strlen(c) + 1);
        free(c);
    }
    json_decref(j);
    return rc;
}

void hub_webhook_list_free(hub_webhook_list_t *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void hub_delivery_list_free(hub_delivery_list_t *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

const char *hub_delivery_state_name(int state)
{
    static const char *const names[] = {"pending", "delivered", "dropped"};
    return state >= 0 && (size_t)state < COUNT(names) ? names[state] : "?";
}

int hub_store_webhook_create(hub_store_t *st, const char *workspace_id, const char *url,
                             const char *events, size_t max_webhooks,
                             char secret_out[static HUB_WEBHOOK_SECRET_SIZE], hub_webhook_t *out)
{
    CHECK_ST(st);
    secret_out[0] = '\0';
    CHECK_ID(st, workspace_id, "workspace");
    if (!ascii_ok(url, 1, HUB_WEBHOOK_URL_MAX, NULL))
        return hub_store_fail(st, CN_EINVAL, "url: must be 1-%d printable characters",
                              HUB_WEBHOOK_URL_MAX);
    hub_webhook_t w = {0};
    int rc = normalize_events(events, w.events);
    if (rc < 0)
        return hub_store_fail(st, rc, "events: must be an array of known event patterns");
    hub_uuid_v4(w.id);
    copy_str(w.workspace_id, sizeof(w.workspace_id), workspace_id);
    copy_str(w.url, sizeof(w.url), url);
    w.enabled = true;
    w.created_at = w.updated_at = hub_store_now(st);

    char secret[HUB_WEBHOOK_SECRET_SIZE];
    uint8_t sealed[SEAL_SIZE];
    rc = make_secret(secret);
    if (rc == 0)
        rc = seal_secret(st, w.id, secret, sealed);
    if (rc < 0) {
        rc = hub_store_fail(st, rc, "cannot generate a webhook secret");
        goto done;
    }
    rc = st->ops->webhook_insert(st, &w, sealed, sizeof(sealed), max_webhooks);
    if (rc == 0) {
        memcpy(secret_out, secret, HUB_WEBHOOK_SECRET_SIZE);
        if (out)
            *out = w;
    }
done:
    sodium_memzero(secret, sizeof(secret));
    return rc;
}

int hub_store_webhook_list(hub_store_t *st, const char *workspace_id, hub_webhook_list_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    *out = (hub_webhook_list_t){0};
    if (!hub_uuid_valid(workspace_id))
        return 0;
    return st->ops->webhook_list(st, workspace_id, false, out);
}

int hub_store_webhook_get(hub_store_t *st, const char *workspace_id, const char *id,
                          hub_webhook_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    CHECK_ID(st, workspace_id, "webhook");
    CHECK_ID(st, id, "webhook");
    return st->ops->webhook_get(st, workspace_id, id, out);
}

int hub_store_webhook_delete(hub_store_t *st, const char *workspace_id, const char *id)
{
    CHECK_ST(st);
    CHECK_ID(st, workspace_id, "webhook");
    CHECK_ID(st, id, "webhook");
    return st->ops->webhook_delete(st, workspace_id, id);
}

int hub_store_webhook_set_enabled(hub_store_t *st, const char *workspace_id, const char *id,
                                  bool enabled, hub_webhook_t *out)
{
    CHECK_ST(st);
    CHECK_ID(st, workspace_id, "webhook");
    CHECK_ID(st, id, "webhook");
    int rc = st->ops->webhook_set_enabled(st, workspace_id, id, enabled, hub_store_now(st));
    if (rc == 0 && out)
        rc = st->ops->webhook_get(st, workspace_id, id, out);
    return rc;
}

int hub_store_webhook_secret(hub_store_t *st, const char *workspace_id, const char *id,
                             char out[static HUB_WEBHOOK_SECRET_SIZE])
{
    CHECK_ST(st);
    out[0] = '\0';
    CHECK_ID(st, workspace_id, "webhook");
    CHECK_ID(st, id, "webhook");
    uint8_t sealed[SEAL_SIZE + 16];
    size_t len = 0;
    int rc = st->ops->webhook_sealed(st, workspace_id, id, sealed, sizeof(sealed), &len);
    if (rc == 0 && open_secret(st, id, sealed, len, out) < 0)
        rc = hub_store_fail(st, CN_EAUTH, "webhook secret does not open with this hub's key");
    return rc;
}

int hub_store_delivery_list(hub_store_t *st, const char *workspace_id, const char *webhook_id,
                            size_t limit, hub_delivery_list_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    *out = (hub_delivery_list_t){0};
    CHECK_ID(st, workspace_id, "webhook");
    CHECK_ID(st, webhook_id, "webhook");
    if (limit == 0)
        limit = HUB_EVENTS_DEFAULT;
    if (limit > HUB_EVENTS_MAX)
        limit = HUB_EVENTS_MAX;
    hub_webhook_t w;
    int rc = st->ops->webhook_get(st, workspace_id, webhook_id, &w);
    if (rc == 0)
        rc = st->ops->delivery_list(st, workspace_id, webhook_id, limit, out);
    return rc;
}

int hub_store_webhook_due(hub_store_t *st, size_t limit, hub_webhook_list_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    *out = (hub_webhook_list_t){0};
    return st->ops->webhook_due(st, hub_store_now(st), limit ? limit : HUB_LIST_MAX, out);
}

int hub_store_delivery_next(hub_store_t *st, const char *webhook_id, hub_delivery_t *out,
                            hub_event_t *event)
{
    CHECK_ST(st);
    if (!out || !event)
        return CN_EINVAL;
    *event = (hub_event_t){0};
    *out = (hub_delivery_t){0};
    CHECK_ID(st, webhook_id, "webhook");
    return st->ops->delivery_next(st, webhook_id, out, event);
}

int hub_store_delivery_record(hub_store_t *st, const char *webhook_id, int64_t delivery_id,
                              const hub_delivery_outcome_t *o)
{
    CHECK_ST(st);
    if (!o || (unsigned)o->state > HUB_DELIVERY_DROPPED || delivery_id <= 0)
        return CN_EINVAL;
    CHECK_ID(st, webhook_id, "webhook");
    bool oom = false;
    char *err = sanitize_text(o->error, HUB_DELIVERY_ERROR_MAX, &oom);
    if (oom)
        return CN_ENOMEM;
    hub_delivery_outcome_t clean = *o;
    clean.error = err;
    int rc = st->ops->delivery_record(st, webhook_id, delivery_id, &clean, hub_store_now(st));
    free(err);
    return rc;
}

int hub_store_delivery_prune(hub_store_t *st, size_t keep_log, size_t max_pending, size_t *dropped)
{
    CHECK_ST(st);
    size_t n = 0;
    int rc = st->ops->delivery_prune(st, keep_log, max_pending, hub_store_now(st), &n);
    if (dropped)
        *dropped = rc == 0 ? n : 0;
    return rc;
}

int hub_store_delivery_pending_count(hub_store_t *st, size_t *count)
{
    CHECK_ST(st);
    if (!count)
        return CN_EINVAL;
    return st->ops->delivery_pending_count(st, count);
}

/* ---- shares ------------------------------------------------------------ */

void hub_share_list_free(hub_share_list_t *l)
{
    if (!l)
        return;
    if (l->items)
        sodium_memzero(l->items, l->count * sizeof(*l->items));
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void hub_share_log_list_free(hub_share_log_list_t *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static const char *const share_methods[] = {"GET",   "HEAD",   "POST",   "PUT",
                                            "PATCH", "DELETE", "OPTIONS"};

char *hub_store_share_methods_json(unsigned mask)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < COUNT(share_methods); i++) {
        unsigned bit = hub_method_parse(share_methods[i], strlen(share_methods[i]));
        if (mask & bit)
            json_array_append_new(a, json_string(share_methods[i]));
    }
    char *t = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return t;
}

char *hub_store_share_paths_json(const char *const *paths, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(paths[i]));
    char *t = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return t;
}

int hub_store_share_rules_from_json(hub_share_t *s, const char *methods, const char *paths)
{
    json_t *m = json_loads(methods ? methods : "[]", 0, NULL);
    json_t *p = json_loads(paths ? paths : "[]", 0, NULL);
    int rc = json_is_array(m) && json_is_array(p) ? 0 : CN_EPROTO;
    size_t i;
    json_t *v;
    s->methods = 0;
    s->npaths = 0;
    json_array_foreach(m, i, v)
    {
        const char *name = json_string_value(v);
        unsigned bit = name ? hub_method_parse(name, strlen(name)) : 0;
        if (!bit)
            rc = CN_EPROTO;
        s->methods |= bit;
    }
    json_array_foreach(p, i, v)
    {
        const char *pat = json_string_value(v);
        if (!pat || i >= HUB_SHARE_PATHS_MAX || strlen(pat) > HUB_SHARE_PATTERN_MAX) {
            rc = CN_EPROTO;
            break;
        }
        copy_str(s->paths[s->npaths++], sizeof(s->paths[0]), pat);
    }
    json_decref(m);
    json_decref(p);
    return rc;
}

/* 20 random bytes in lowercase base32 (RFC 4648 alphabet): a DNS label. */
static void share_token(char out[static HUB_SHARE_TOKEN_SIZE])
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz234567";
    uint8_t raw[20];
    randombytes_buf(raw, sizeof(raw));
    for (size_t i = 0; i < HUB_SHARE_TOKEN_LEN; i++) {
        size_t bit = i * 5, byte = bit / 8, off = bit % 8;
        unsigned v = (unsigned)raw[byte] << 8 | (byte + 1 < sizeof(raw) ? raw[byte + 1] : 0);
        out[i] = alpha[(v >> (11 - off)) & 31];
    }
    out[HUB_SHARE_TOKEN_LEN] = '\0';
    sodium_memzero(raw, sizeof(raw));
}

static bool share_token_well_formed(const char *t)
{
    if (!t || strnlen(t, HUB_SHARE_TOKEN_LEN + 1) != HUB_SHARE_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < HUB_SHARE_TOKEN_LEN; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '2' && t[i] <= '7')))
            return false;
    return true;
}

int hub_store_share_create(hub_store_t *st, const char *workspace_id, const hub_share_spec_t *spec,
                           hub_share_t *out, char token_out[static HUB_SHARE_TOKEN_SIZE],
                           char password_out[HUB_PASSWORD_SIZE])
{
    CHECK_ST(st);
    if (!spec || !token_out)
        return CN_EINVAL;
    token_out[0] = '\0';
    if (password_out)
        password_out[0] = '\0';
    CHECK_ID(st, workspace_id, "workspace");
    if (!hub_uuid_valid(spec->tunnel_id))
        return hub_store_fail(st, CN_ENOTFOUND, "tunnel not found");
    if (!text_ok(spec->name, 1, HUB_NAME_MAX))
        return hub_store_fail(st, CN_EINVAL, "name: must be 1-%d bytes of text", HUB_NAME_MAX);
    if (!text_ok(spec->description, 0, HUB_DESCRIPTION_MAX))
        return hub_store_fail(st, CN_EINVAL, "description: at most %d bytes of text",
                              HUB_DESCRIPTION_MAX);
    if (spec->rate_limit < HUB_SHARE_RATE_MIN || spec->rate_limit > HUB_SHARE_RATE_MAX)
        return hub_store_fail(st, CN_EINVAL, "rateLimitPerMinute: must be 1-1000");
    if (spec->npaths > HUB_SHARE_PATHS_MAX)
        return hub_store_fail(st, CN_EINVAL, "allowedPaths: at most %d", HUB_SHARE_PATHS_MAX);
    for (size_t i = 0; i < spec->npaths; i++)
        if (!hub_path_pattern_valid(spec->paths[i], NULL))
            return hub_store_fail(st, CN_EINVAL, "allowedPaths: invalid pattern");
    if (spec->ttl_ms < 0 || spec->ttl_ms > 100LL * 366 * 86400 * 1000)
        return hub_store_fail(st, CN_EINVAL, "expiresIn: out of range");
    bool with_auth = !empty(spec->http_user);
    if (with_auth && (!ascii_ok(spec->http_user, 1, HUB_USER_MAX, ":") || !password_out))
        return hub_store_fail(
            st, CN_EINVAL, "httpUser: must be 1-%d printable characters without ':'", HUB_USER_MAX);

    hub_share_t *sh = calloc(1, sizeof(*sh));
    char token[HUB_SHARE_TOKEN_SIZE], password[HUB_PASSWORD_SIZE] = "";
    uint8_t hash[HUB_KEY_BYTES];
    char *mj = hub_store_share_methods_json(spec->methods);
    char *pj = hub_store_share_paths_json(spec->paths, spec->npaths);
    int rc = 0;
    if (!sh || !mj || !pj) {
        rc = hub_store_fail(st, CN_ENOMEM, "out of memory");
        goto done;
    }
    hub_uuid_v4(sh->id);
    copy_str(sh->workspace_id, sizeof(sh->workspace_id), workspace_id);
    copy_str(sh->tunnel_id, sizeof(sh->tunnel_id), spec->tunnel_id);
    copy_str(sh->name, sizeof(sh->name), spec->name);
    copy_str(sh->description, sizeof(sh->description), spec->description);
    sh->methods = spec->methods;
    sh->npaths = spec->npaths;
    for (size_t i = 0; i < spec->npaths; i++)
        copy_str(sh->paths[i], sizeof(sh->paths[i]), spec->paths[i]);
    sh->rate_limit = spec->rate_limit;
    if (with_auth) {
        copy_str(sh->http_user, sizeof(sh->http_user), spec->http_user);
        rc = hub_password_generate(password);
        if (rc == 0)
            rc = keyed_password_hash(st, password, sh->http_password_hash);
        if (rc < 0) {
            hub_store_fail(st, rc, "cannot hash the basic-auth password");
            goto done;
        }
    }
    share_token(token);
    rc = hub_token_hash(st->secret_key, token, hash);
    if (rc < 0) {
        hub_store_fail(st, rc, "cannot hash the share token");
        goto done;
    }
    int64_t now = hub_store_now(st);
    sh->created_at = now;
    sh->expires_at = spec->ttl_ms ? now + spec->ttl_ms : HUB_TIME_NONE;
    rc = st->ops->share_insert(st, sh, mj, pj, hash);
    if (rc == 0) {
        memcpy(token_out, token, HUB_SHARE_TOKEN_SIZE);
        if (with_auth)
            memcpy(password_out, password, HUB_PASSWORD_SIZE);
        if (out)
            *out = *sh;
    }
done:
    sodium_memzero(token, sizeof(token));
    sodium_memzero(password, sizeof(password));
    sodium_memzero(hash, sizeof(hash));
    if (sh)
        sodium_memzero(sh, sizeof(*sh));
    free(sh);
    free(mj);
    free(pj);
    return rc;
}

int hub_store_share_list(hub_store_t *st, const char *workspace_id, const char *tunnel_id,
                         hub_share_list_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    *out = (hub_share_list_t){0};
    if (!hub_uuid_valid(workspace_id) || (tunnel_id && !hub_uuid_valid(tunnel_id)))
        return 0;
    return st->ops->share_list(st, workspace_id, tunnel_id, out);
}

int hub_store_share_get(hub_store_t *st, const char *workspace_id, const char *id, hub_share_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    CHECK_ID(st, workspace_id, "share");
    CHECK_ID(st, id, "share");
    return st->ops->share_get(st, workspace_id, id, out);
}

int hub_store_share_revoke(hub_store_t *st, const char *workspace_id, const char *id,
                           hub_share_t *out, bool *changed)
{
    CHECK_ST(st);
    CHECK_ID(st, workspace_id, "share");
    CHECK_ID(st, id, "share");
    bool ch = false;
    int rc = st->ops->share_revoke(st, workspace_id, id, hub_store_now(st), &ch);
    if (rc == 0 && out)
        rc = st->ops->share_get(st, workspace_id, id, out);
    if (changed)
        *changed = rc == 0 && ch;
    return rc;
}

int hub_store_share_find_by_token(hub_store_t *st, const char *token, hub_share_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    if (!share_token_well_formed(token))
        return hub_store_fail(st, CN_ENOTFOUND, "share not found");
    uint8_t hash[HUB_KEY_BYTES];
    int rc = hub_token_hash(st->secret_key, token, hash);
    if (rc == 0)
        rc = st->ops->share_find(st, hash, out);
    sodium_memzero(hash, sizeof(hash));
    return rc;
}

int hub_store_share_list_expired(hub_store_t *st, size_t limit, hub_share_list_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    *out = (hub_share_list_t){0};
    if (!limit || limit > HUB_LIST_MAX)
        limit = HUB_LIST_MAX;
    return st->ops->share_list_expired(st, hub_store_now(st), limit, out);
}

int hub_store_share_mark_expired(hub_store_t *st, const char *workspace_id, const char *id)
{
    CHECK_ST(st);
    CHECK_ID(st, workspace_id, "share");
    CHECK_ID(st, id, "share");
    return st->ops->share_mark_expired(st, workspace_id, id);
}

int hub_store_share_log_append(hub_store_t *st, const char *share_id, const hub_share_log_row_t *r)
{
    CHECK_ST(st);
    if (!r)
        return CN_EINVAL;
    CHECK_ID(st, share_id, "share");
    return st->ops->share_log_append(st, share_id, r);
}

int hub_store_share_log_list(hub_store_t *st, const char *workspace_id, const char *share_id,
                             int64_t before, size_t limit, hub_share_log_list_t *out)
{
    CHECK_ST(st);
    if (!out)
        return CN_EINVAL;
    *out = (hub_share_log_list_t){0};
    CHECK_ID(st, workspace_id, "share");
    CHECK_ID(st, share_id, "share");
    if (!limit || limit > HUB_SHARE_LOG_PAGE_MAX)
        limit = HUB_SHARE_LOG_PAGE_MAX;
    return st->ops->share_log_list(st, workspace_id, share_id, before > 0 ? before : INT64_MAX,
                                   limit, out);
}

int hub_store_share_log_prune(hub_store_t *st, int64_t before, size_t *count)
{
    CHECK_ST(st);
    size_t n = 0;
    int rc = st->ops->share_log_prune(st, before, HUB_SHARE_LOG_KEEP, &n);
    if (count)
        *count = rc == 0 ? n : 0;
    return rc;
}

void hub_store_share_log_sync(hub_store_t *st)
{
    if (st)
        st->ops->share_log_sync(st);
}

uint64_t hub_store_share_log_dropped(hub_store_t *st)
{
    return st ? st->ops->share_log_dropped(st) : 0;
}
