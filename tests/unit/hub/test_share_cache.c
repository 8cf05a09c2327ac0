/* share_cache: the edges' per-request reads of shares and tunnels come from
 * memory, and never a stale record: every kind of change to a share, a
 * tunnel or an agent (through this store handle, inside a transaction that
 * rolls back, or by another process on the same file) is seen by the next
 * lookup; expiry is a time; unknown tokens cost no memory; the bounds hold. */
#include "hub_test.h"

#include "cn_err.h"
#include "router.h"
#include "share_cache.h"
#include "store.h"

#define T0 1795442400000LL /* 2026-11-23T14:00:00.000Z */
#define MINUTE 60000LL
#define HOUR (60 * MINUTE)

typedef struct fx {
    hub_test_store_t s; /* the clock at T0 */
    hub_share_cache_t *c;
    hub_workspace_t ws;
    hub_agent_t agent;
    hub_tunnel_t web; /* public http tunnel "web" */
    hub_share_t share;
    char token[HUB_SHARE_TOKEN_SIZE];
} fx_t;

static void mk_share(fx_t *f, const char *name, int64_t ttl_ms, hub_share_t *out,
                     char token[static HUB_SHARE_TOKEN_SIZE])
{
    hub_share_spec_t ss = {.tunnel_id = f->web.id,
                           .name = name,
                           .description = "",
                           .methods = HUB_GET,
                           .rate_limit = 60,
                           .ttl_ms = ttl_ms};
    char pw[HUB_PASSWORD_SIZE];
    if (hub_store_share_create(f->s.st, f->ws.id, &ss, out, token, pw) != 0)
        fail_msg("share_create: %s", hub_store_errmsg(f->s.st));
}

static int setup_opts(void **state, const hub_share_cache_options_t *opt)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    hub_test_store_init(&f->s, 7, T0);
    hub_test_store_open(&f->s, NULL, true);
    assert_int_equal(hub_store_workspace_create(f->s.st, "ws", &f->ws), 0);
    char tok[HUB_TOKEN_STR_SIZE];
    assert_int_equal(hub_store_agent_create(f->s.st, f->ws.id, "laptop", 0, 0, tok, &f->agent), 0);
    hub_tunnel_spec_t sp = {.name = "web",
                            .agent_id = f->agent.id,
                            .target_host = "127.0.0.1",
                            .target_port = 8080,
                            .protocol = HUB_PROTO_HTTP,
                            .is_public = true,
                            .metadata = "{\"team\":\"a\"}"};
    if (hub_store_tunnel_create(f->s.st, f->ws.id, &sp, &f->web, NULL) != 0)
        fail_msg("tunnel_create: %s", hub_store_errmsg(f->s.st));
    mk_share(f, "s", HOUR, &f->share, f->token);
    f->c = hub_share_cache_new(opt);
    assert_non_null(f->c);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_opts(state, NULL);
}

static int setup_small(void **state)
{
    hub_share_cache_options_t o = {.max_entries = 3};
    return setup_opts(state, &o);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    hub_share_cache_free(f->c);
    hub_tunnel_clear(&f->web);
    hub_test_store_fini(&f->s);
    free(f);
    return 0;
}

static hub_share_cache_stats_t stats(const fx_t *f)
{
    hub_share_cache_stats_t s;
    hub_share_cache_stats(f->c, &s);
    return s;
}

/* Looks the share up by token: the expected result, and whether it came
 * from memory. */
static bool by_token(fx_t *f, const char *token, int want_rc, hub_share_t *out)
{
    uint64_t hits = stats(f).hits;
    assert_int_equal(hub_share_cache_share_by_token(f->c, f->s.st, token, out), want_rc);
    return stats(f).hits > hits;
}

static bool tunnel_by_id(fx_t *f, int want_rc, hub_tunnel_t *out)
{
    uint64_t hits = stats(f).hits;
    assert_int_equal(hub_share_cache_tunnel_get(f->c, f->s.st, f->ws.id, f->web.id, out), want_rc);
    return stats(f).hits > hits;
}

static bool tunnel_public(fx_t *f, const char *name, int want_rc, hub_tunnel_t *out)
{
    uint64_t hits = stats(f).hits;
    assert_int_equal(hub_share_cache_tunnel_public(f->c, f->s.st, name, out), want_rc);
    return stats(f).hits > hits;
}

/* ---- hits and misses ---------------------------------------------------- */

/* A hit copies a share's every field and its npaths path slots, and leaves
 * the slots past them alone (the ~8 KB a share request need not copy). */
static void test_hit_copies_the_used_part_of_a_share(void **state)
{
    fx_t *f = *state;
    const char *paths[] = {"/api/*", "/health"};
    hub_share_spec_t ss = {.tunnel_id = f->web.id,
                           .name = "p",
                           .description = "with paths",
                           .methods = HUB_GET | HUB_POST,
                           .paths = paths,
                           .npaths = 2,
                           .rate_limit = 120,
                           .ttl_ms = HOUR,
                           .http_user = "alice"};
    static hub_share_t created, direct, a, b;
    char token[HUB_SHARE_TOKEN_SIZE], pw[HUB_PASSWORD_SIZE];
    assert_int_equal(hub_store_share_create(f->s.st, f->ws.id, &ss, &created, token, pw), 0);
    assert_int_equal(hub_store_share_find_by_token(f->s.st, token, &direct), 0);
    assert_false(by_token(f, token, 0, &a));
    memset(&b, 0xa5, sizeof(b));
    assert_true(by_token(f, token, 0, &b));
    size_t head = offsetof(hub_share_t, paths), tail = offsetof(hub_share_t, rate_limit);
    assert_memory_equal(&b, &direct, head);
    assert_memory_equal(b.paths, direct.paths, 2 * sizeof(direct.paths[0]));
    assert_memory_equal((char *)&b + tail, (char *)&direct + tail, sizeof(b) - tail);
    assert_int_equal(b.npaths, 2);
    assert_string_equal(b.paths[1], "/health");
    assert_int_equal(b.rate_limit, 120);
    assert_string_equal(b.http_user, "alice");
    assert_true(b.http_password_hash[0] != 0);
    assert_int_equal(b.expires_at, direct.expires_at);
    for (size_t i = 2; i < HUB_SHARE_PATHS_MAX; i++)
        assert_int_equal((unsigned char)b.paths[i][0], 0xa5);
    /* By id too. */
    assert_int_equal(hub_share_cache_share_get(f->c, f->s.st, f->ws.id, created.id, &a), 0);
    uint64_t hits = stats(f).hits;
    memset(&b, 0xa5, sizeof(b));
    assert_int_equal(hub_share_cache_share_get(f->c, f->s.st, f->ws.id, created.id, &b), 0);
    assert_true(stats(f).hits > hits);
    assert_memory_equal(&b, &direct, head);
    assert_memory_equal(b.paths, direct.paths, 2 * sizeof(direct.paths[0]));
    assert_memory_equal((char *)&b + tail, (char *)&direct + tail, sizeof(b) - tail);
}

/* The cache keeps a share compact (its used path slots only): at the
 * default bounds 3,000 shares in use all stay, and a second round over them
 * is all hits. Kept whole (~9 KB each), 16 MiB held ~1,700, and a round
 * robin over more missed every time. */
#define MANY_SHARES 3000
static void test_thousands_of_shares_stay(void **state)
{
    fx_t *f = *state;
    static char tokens[MANY_SHARES][HUB_SHARE_TOKEN_SIZE];
    static hub_share_t s;
    assert_int_equal(hub_store_tx_begin(f->s.st), 0);
    for (int i = 0; i < MANY_SHARES; i++)
        mk_share(f, "many", HOUR, &s, tokens[i]);
    assert_int_equal(hub_store_tx_end(f->s.st, 0), 0);
    for (int i = 0; i < MANY_SHARES; i++)
        assert_false(by_token(f, tokens[i], 0, &s));
    hub_share_cache_stats_t a = stats(f);
    assert_int_equal(a.entries, MANY_SHARES);
    assert_int_equal(a.evictions, 0);
    assert_true(a.bytes <= HUB_SHARE_CACHE_BYTES_DEFAULT);
    assert_true(a.bytes / MANY_SHARES < 2048);
    for (int i = 0; i < MANY_SHARES; i++)
        assert_true(by_token(f, tokens[i], 0, &s));
    assert_int_equal(stats(f).misses, a.misses);
}

static void test_hit_returns_what_the_store_returns(void **state)
{
    fx_t *f = *state;
    static hub_share_t a, b, direct;
    assert_false(by_token(f, f->token, 0, &a)); /* first: read from the store */
    assert_true(by_token(f, f->token, 0, &b));  /* then from memory */
    assert_int_equal(hub_store_share_find_by_token(f->s.st, f->token, &direct), 0);
    assert_memory_equal(&a, &direct, sizeof(direct));
    assert_memory_equal(&b, &direct, sizeof(direct));

    static hub_share_t byid;
    assert_int_equal(hub_share_cache_share_get(f->c, f->s.st, f->ws.id, f->share.id, &byid), 0);
    assert_int_equal(hub_share_cache_share_get(f->c, f->s.st, f->ws.id, f->share.id, &byid), 0);
    assert_memory_equal(&byid, &direct, sizeof(direct));

    hub_tunnel_t t1 = {0}, t2 = {0};
    assert_false(tunnel_by_id(f, 0, &t1));
    assert_true(tunnel_by_id(f, 0, &t2));
    assert_true(tunnel_public(f, "web", 0, &t1) == false);
    assert_true(tunnel_public(f, "web", 0, &t2));
    assert_string_equal(t2.id, f->web.id);
    assert_string_equal(t2.name, "web");
    assert_int_equal(t2.status, f->web.status);
    /* Without its heap strings, on a miss as on a hit. */
    assert_null(t1.metadata);
    assert_null(t2.metadata);
    hub_tunnel_clear(&t1);
    hub_tunnel_clear(&t2);
    assert_int_equal(stats(f).entries, 4);
}

static void test_miss_is_not_cached(void **state)
{
    fx_t *f = *state;
    static hub_share_t s;
    char tok[HUB_SHARE_TOKEN_SIZE];
    /* A flood of unknown, well-formed tokens: each one a store read, none
     * kept. */
    for (int i = 0; i < 200; i++) {
        snprintf(tok, sizeof(tok), "%032d", i);
        for (size_t k = 0; k < HUB_SHARE_TOKEN_LEN; k++)
            tok[k] = (char)('a' + (tok[k] - '0'));
        assert_false(by_token(f, tok, CN_ENOTFOUND, &s));
    }
    assert_false(by_token(f, "not a token", CN_ENOTFOUND, &s));
    hub_tunnel_t t = {0};
    assert_false(tunnel_public(f, "nosuch", CN_ENOTFOUND, &t));
    assert_false(tunnel_public(f, "nosuch", CN_ENOTFOUND, &t));
    assert_int_equal(stats(f).entries, 0);
    assert_int_equal(stats(f).bytes, 0);
    assert_int_equal(stats(f).hits, 0);
}

static void test_share_route_reads_both(void **state)
{
    fx_t *f = *state;
    static hub_share_t s;
    hub_tunnel_t t = {0};
    int trc = -1;
    assert_int_equal(hub_share_cache_share_route(f->c, f->s.st, f->token, &s, &t, &trc), 0);
    assert_int_equal(trc, 0);
    assert_string_equal(s.id, f->share.id);
    assert_string_equal(t.id, f->web.id);
    uint64_t hits = stats(f).hits, misses = stats(f).misses;
    memset(&t, 0, sizeof(t));
    memset(&s, 0, sizeof(s));
    assert_int_equal(hub_share_cache_share_route(f->c, f->s.st, f->token, &s, &t, &trc), 0);
    /* Both from memory, from one entry. */
    assert_int_equal(stats(f).hits, hits + 1);
    assert_int_equal(stats(f).misses, misses);
    assert_int_equal(trc, 0);
    assert_string_equal(s.id, f->share.id);
    assert_int_equal(s.rate_limit, f->share.rate_limit);
    assert_int_equal(s.expires_at, f->share.expires_at);
    assert_string_equal(t.id, f->web.id);
    assert_string_equal(t.name, "web");
    assert_int_equal(t.updated_at, f->web.updated_at);
    /* A change to the tunnel is seen through the share at once. */
    hub_tunnel_update_t u = {.fields = HUB_TUNNEL_SET_STATUS, .status = HUB_TUNNEL_PAUSED};
    assert_int_equal(hub_store_tunnel_update(f->s.st, f->ws.id, f->web.id, &u, NULL), 0);
    assert_int_equal(hub_share_cache_share_route(f->c, f->s.st, f->token, &s, &t, &trc), 0);
    assert_int_equal(trc, 0);
    assert_int_equal(t.status, HUB_TUNNEL_PAUSED);
    /* And a change to the share. */
    assert_int_equal(s.revoked_at, HUB_TIME_NONE);
    assert_int_equal(hub_store_share_revoke(f->s.st, f->ws.id, f->share.id, NULL, NULL), 0);
    assert_int_equal(hub_share_cache_share_route(f->c, f->s.st, f->token, &s, &t, &trc), 0);
    assert_int_not_equal(s.revoked_at, HUB_TIME_NONE);
    assert_int_equal(t.status, HUB_TUNNEL_PAUSED);
    /* An unknown token: the share's error, the tunnel untouched. */
    trc = 42;
    assert_int_equal(hub_share_cache_share_route(f->c, f->s.st, "nope", &s, &t, &trc),
                     CN_ENOTFOUND);
    assert_int_equal(trc, 42);
    /* Without a cache: the store, the same answers. */
    assert_int_equal(hub_share_cache_share_route(NULL, f->s.st, f->token, &s, &t, &trc), 0);
    assert_int_equal(trc, 0);
    assert_int_equal(t.status, HUB_TUNNEL_PAUSED);
    assert_null(t.metadata);
    hub_tunnel_clear(&t);
}

static void test_null_cache_reads_the_store(void **state)
{
    fx_t *f = *state;
    static hub_share_t s;
    hub_tunnel_t t = {0};
    assert_int_equal(hub_share_cache_share_by_token(NULL, f->s.st, f->token, &s), 0);
    assert_string_equal(s.id, f->share.id);
    assert_int_equal(hub_share_cache_tunnel_public(NULL, f->s.st, "web", &t), 0);
    assert_null(t.metadata);
    hub_tunnel_clear(&t);
    hub_share_cache_stats_t z;
    hub_share_cache_stats(NULL, &z);
    assert_int_equal(z.entries + z.hits + z.misses, 0);
    hub_share_cache_free(NULL);
}

/* ---- invalidation: every kind of change is seen at once ------------------ */

static void test_share_revoke_is_seen(void **state)
{
    fx_t *f = *state;
    static hub_share_t s;
    by_token(f, f->token, 0, &s);
    assert_true(by_token(f, f->token, 0, &s));
    assert_int_equal(s.revoked_at, HUB_TIME_NONE);
    assert_int_equal(hub_store_share_revoke(f->s.st, f->ws.id, f->share.id, NULL, NULL), 0);
    assert_false(by_token(f, f->token, 0, &s));
    assert_int_not_equal(s.revoked_at, HUB_TIME_NONE);
    assert_int_equal(hub_share_cache_share_get(f->c, f->s.st, f->ws.id, f->share.id, &s), 0);
    assert_int_not_equal(s.revoked_at, HUB_TIME_NONE);
}

static void test_share_expiry_mark_is_seen(void **state)
{
    fx_t *f = *state;
    static hub_share_t s;
    by_token(f, f->token, 0, &s);
    assert_true(by_token(f, f->token, 0, &s));
    uint64_t flushes = stats(f).flushes;
    assert_int_equal(hub_store_share_mark_expired(f->s.st, f->ws.id, f->share.id), 0);
    assert_false(by_token(f, f->token, 0, &s));
    assert_int_equal(stats(f).flushes, flushes + 1);
}

static void test_tunnel_pause_rename_patch_are_seen(void **state)
{
    fx_t *f = *state;
    hub_tunnel_t t = {0};
    tunnel_by_id(f, 0, &t);
    tunnel_public(f, "web", 0, &t);
    assert_true(tunnel_by_id(f, 0, &t));

    /* pause */
    hub_tunnel_update_t u = {.fields = HUB_TUNNEL_SET_STATUS, .status = HUB_TUNNEL_PAUSED};
    assert_int_equal(hub_store_tunnel_update(f->s.st, f->ws.id, f->web.id, &u, NULL), 0);
    assert_false(tunnel_by_id(f, 0, &t));
    assert_int_equal(t.status, HUB_TUNNEL_PAUSED);
    assert_false(tunnel_public(f, "web", 0, &t));
    assert_int_equal(t.status, HUB_TUNNEL_PAUSED);
    assert_true(tunnel_public(f, "web", 0, &t));

    /* rename: the old name answers no more, the new one does */
    u = (hub_tunnel_update_t){.fields = HUB_TUNNEL_SET_NAME, .name = "web2"};
    assert_int_equal(hub_store_tunnel_update(f->s.st, f->ws.id, f->web.id, &u, NULL), 0);
    assert_false(tunnel_public(f, "web", CN_ENOTFOUND, &t));
    assert_false(tunnel_public(f, "web2", 0, &t));
    assert_false(tunnel_by_id(f, 0, &t)); /* flushed with the rest */
    assert_string_equal(t.name, "web2");

    /* PATCH (metadata, idle timeout): updated_at moves */
    int64_t before = t.updated_at;
    f->s.clock.now += 5;
    u = (hub_tunnel_update_t){.fields = HUB_TUNNEL_SET_METADATA | HUB_TUNNEL_SET_IDLE_TIMEOUT,
                              .metadata = "{\"team\":\"b\"}",
                              .idle_timeout_s = 9};
    assert_int_equal(hub_store_tunnel_update(f->s.st, f->ws.id, f->web.id, &u, NULL), 0);
    assert_false(tunnel_by_id(f, 0, &t));
    assert_int_equal(t.idle_timeout_s, 9);
    assert_true(t.updated_at > before);
    hub_tunnel_clear(&t);
}

static void test_tunnel_delete_is_seen(void **state)
{
    fx_t *f = *state;
    static hub_share_t s;
    hub_tunnel_t t = {0};
    by_token(f, f->token, 0, &s);
    tunnel_by_id(f, 0, &t);
    tunnel_public(f, "web", 0, &t);
    assert_true(by_token(f, f->token, 0, &s));
    assert_int_equal(hub_store_tunnel_delete(f->s.st, f->ws.id, f->web.id), 0);
    /* Its shares go with it (a cascade in the database). */
    assert_false(by_token(f, f->token, CN_ENOTFOUND, &s));
    assert_false(tunnel_by_id(f, CN_ENOTFOUND, &t));
    assert_false(tunnel_public(f, "web", CN_ENOTFOUND, &t));
}

static void test_agent_delete_is_seen(void **state)
{
    fx_t *f = *state;
    static hub_share_t s;
    hub_tunnel_t t = {0};
    by_token(f, f->token, 0, &s);
    tunnel_public(f, "web", 0, &t);
    assert_true(tunnel_public(f, "web", 0, &t));
    assert_int_equal(hub_store_agent_delete(f->s.st, f->ws.id, f->agent.id), 0);
    assert_false(tunnel_public(f, "web", CN_ENOTFOUND, &t));
    assert_false(by_token(f, f->token, CN_ENOTFOUND, &s));
}

static void test_another_process_is_seen(void **state)
{
    fx_t *f = *state;
    static hub_share_t s;
    by_token(f, f->token, 0, &s);
    assert_true(by_token(f, f->token, 0, &s));
    /* A second writer on the WAL file, as a second hub or sqlite3 would be. */
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE shares SET revoked_at = 5 WHERE id = '%s'", f->share.id);
    hub_test_sql(f->s.db, sql);
    assert_false(by_token(f, f->token, 0, &s));
    assert_int_equal(s.revoked_at, 5);
}

static void test_rolled_back_reads_are_not_kept(void **state)
{
    fx_t *f = *state;
    static hub_share_t s;
    by_token(f, f->token, 0, &s);
    assert_int_equal(hub_store_tx_begin(f->s.st), 0);
    assert_int_equal(hub_store_share_revoke(f->s.st, f->ws.id, f->share.id, NULL, NULL), 0);
    assert_false(by_token(f, f->token, 0, &s)); /* inside: the uncommitted row */
    assert_int_not_equal(s.revoked_at, HUB_TIME_NONE);
    assert_false(by_token(f, f->token, 0, &s));                  /* never trusted inside */
    assert_int_equal(hub_store_tx_end(f->s.st, CN_EIO), CN_EIO); /* rolled back */
    assert_false(by_token(f, f->token, 0, &s));
    assert_int_equal(s.revoked_at, HUB_TIME_NONE);
    assert_true(by_token(f, f->token, 0, &s));
}

static void test_access_log_does_not_empty_it(void **state)
{
    fx_t *f = *state;
    static hub_share_t s;
    by_token(f, f->token, 0, &s);
    /* The edge's batch: a transaction of access-log rows, then retention. */
    hub_share_log_row_t e = {.at = T0, .method = "GET", .path = "/", .status = 200};
    assert_int_equal(hub_store_tx_begin(f->s.st), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(hub_store_share_log_append(f->s.st, f->share.id, &e), 0);
    assert_int_equal(hub_store_tx_end(f->s.st, 0), 0);
    assert_int_equal(hub_store_share_log_prune(f->s.st, T0 + 1, NULL), 0);
    assert_true(by_token(f, f->token, 0, &s));
    /* A share created meanwhile is a write that counts. */
    static hub_share_t s2;
    char tok2[HUB_SHARE_TOKEN_SIZE];
    mk_share(f, "other", 0, &s2, tok2);
    assert_false(by_token(f, f->token, 0, &s));
    assert_false(by_token(f, tok2, 0, &s));
    assert_string_equal(s.id, s2.id);
}

/* ---- time ------------------------------------------------------------------ */

static void test_expiry_is_a_time_checked_by_the_caller(void **state)
{
    fx_t *f = *state;
    static hub_share_t s;
    by_token(f, f->token, 0, &s);
    assert_int_equal(s.expires_at, T0 + HOUR);
    /* Past its expiry, no write happened: the record still says when it
     * expired, so the edge's per-request check refuses it (410). */
    f->s.clock.now = T0 + HOUR + 1;
    assert_false(by_token(f, f->token, 0, &s)); /* and entries age out */
    assert_int_equal(s.expires_at, T0 + HOUR);
    assert_true(f->s.clock.now >= s.expires_at);
}

static void test_entries_age_out(void **state)
{
    fx_t *f = *state;
    static hub_share_t s;
    by_token(f, f->token, 0, &s);
    f->s.clock.now += HUB_SHARE_CACHE_AGE_DEFAULT_MS - 1;
    assert_true(by_token(f, f->token, 0, &s));
    f->s.clock.now += 1;
    uint64_t ev = stats(f).evictions;
    assert_false(by_token(f, f->token, 0, &s));
    assert_int_equal(stats(f).evictions, ev + 1);
    assert_true(by_token(f, f->token, 0, &s));
}

/* ---- bounds ---------------------------------------------------------------- */

static void test_bounded_by_entries_lru(void **state)
{
    fx_t *f = *state; /* max_entries 3 */
    static hub_share_t s[5];
    char tok[5][HUB_SHARE_TOKEN_SIZE];
    for (int i = 0; i < 5; i++) {
        char name[8];
        snprintf(name, sizeof(name), "s%d", i);
        mk_share(f, name, 0, &s[i], tok[i]);
    }
    static hub_share_t got;
    for (int i = 0; i < 3; i++)
        assert_false(by_token(f, tok[i], 0, &got));
    assert_true(by_token(f, tok[0], 0, &got));  /* 0 is now the most recent */
    assert_false(by_token(f, tok[3], 0, &got)); /* evicts 1, the least recent */
    assert_int_equal(stats(f).entries, 3);
    assert_int_equal(stats(f).evictions, 1);
    assert_true(by_token(f, tok[0], 0, &got));
    assert_true(by_token(f, tok[2], 0, &got));
    assert_true(by_token(f, tok[3], 0, &got));
    assert_false(by_token(f, tok[1], 0, &got));
    assert_string_equal(got.id, s[1].id);
    for (int i = 0; i < 5; i++)
        by_token(f, tok[i], 0, &got);
    assert_true(stats(f).entries <= 3);
}

static void test_bounded_by_bytes(void **state)
{
    fx_t *f = *state;
    static hub_share_t s[3], got;
    char tok[3][HUB_SHARE_TOKEN_SIZE];
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof(name), "b%d", i);
        mk_share(f, name, 0, &s[i], tok[i]);
    }
    /* What one share's entry costs (they are alike: no paths; kept compact,
     * far below a whole hub_share_t). */
    assert_false(by_token(f, tok[0], 0, &got));
    size_t per = stats(f).bytes;
    assert_true(per > 0 && per < sizeof(hub_share_t) / 4);
    hub_share_cache_free(f->c);
    /* Room for two shares' entries, not three. */
    hub_share_cache_options_t o = {.max_bytes = 2 * per + per / 2};
    f->c = hub_share_cache_new(&o);
    assert_non_null(f->c);
    for (int i = 0; i < 3; i++) {
        assert_false(by_token(f, tok[i], 0, &got));
        assert_string_equal(got.id, s[i].id);
        assert_true(stats(f).bytes <= o.max_bytes);
    }
    assert_int_equal(stats(f).entries, 2);
    assert_int_equal(stats(f).bytes, 2 * per);
    /* A cache too small for one record keeps nothing and still answers. */
    hub_share_cache_free(f->c);
    o.max_bytes = 100;
    f->c = hub_share_cache_new(&o);
    assert_false(by_token(f, tok[0], 0, &got));
    assert_false(by_token(f, tok[0], 0, &got));
    assert_int_equal(stats(f).entries, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_hit_copies_the_used_part_of_a_share),
        T(test_hit_returns_what_the_store_returns),
        T(test_thousands_of_shares_stay),
        T(test_miss_is_not_cached),
        T(test_share_route_reads_both),
        T(test_null_cache_reads_the_store),
        T(test_share_revoke_is_seen),
        T(test_share_expiry_mark_is_seen),
        T(test_tunnel_pause_rename_patch_are_seen),
        T(test_tunnel_delete_is_seen),
        T(test_agent_delete_is_seen),
        T(test_another_process_is_seen),
        T(test_rolled_back_reads_are_not_kept),
        T(test_access_log_does_not_empty_it),
        T(test_expiry_is_a_time_checked_by_the_caller),
        T(test_entries_age_out),
        cmocka_unit_test_setup_teardown(test_bounded_by_entries_lru, setup_small, teardown),
        T(test_bounded_by_bytes),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
