/* store: what the REST API and the agent endpoint rely on. Migrations and
 * restarts keep everything; each workspace sees only its own objects;
 * tokens are single-use or revocable and never stored in plaintext; names
 * and ports cannot be taken over; filters and bounds hold. */
#include "hub_test.h"

#include <signal.h>
#include <sys/wait.h>

#include "cn_err.h"
#include "events.h"
#include "router.h"
#include "store.h"

#define T0 1795442400000LL /* 2026-11-23T14:00:00.000Z */
#define MINUTE 60000LL
#define HOUR (60 * MINUTE)

/* The fixture is hub_test.h's: a store on a fresh file, the clock at T0. */
typedef hub_test_store_t fx_t;

static void fx_reopen(fx_t *f)
{
    hub_store_close(f->st);
    f->st = NULL;
    hub_test_store_open(f, NULL, false);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    hub_test_store_init(f, 7, T0);
    hub_test_store_open(f, NULL, true);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    hub_test_store_fini(f);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static void mk_ws(fx_t *f, const char *name, hub_workspace_t *ws)
{
    assert_int_equal(hub_store_workspace_create(f->st, name, ws), 0);
}

static void mk_agent(fx_t *f, const hub_workspace_t *ws, hub_agent_t *a)
{
    char tok[HUB_TOKEN_STR_SIZE];
    assert_int_equal(hub_store_agent_create(f->st, ws->id, "laptop", 0, 0, tok, a), 0);
}

static hub_tunnel_spec_t spec_for(const char *agent_id, const char *name)
{
    return (hub_tunnel_spec_t){
        .name = name,
        .agent_id = agent_id,
        .target_host = "127.0.0.1",
        .target_port = 5432,
        .protocol = HUB_PROTO_TCP,
    };
}

static void mk_tunnel(fx_t *f, const hub_workspace_t *ws, const hub_agent_t *a, const char *name,
                      hub_tunnel_t *out)
{
    hub_tunnel_spec_t sp = spec_for(a->id, name);
    int rc = hub_store_tunnel_create(f->st, ws->id, &sp, out, NULL);
    if (rc != 0)
        fail_msg("tunnel_create %s: %s", name, hub_store_errmsg(f->st));
}

/* Whether the database or its WAL/SHM files contain the bytes. */
static bool db_files_contain(const fx_t *f, const void *needle, size_t n)
{
    char p[PATH_MAX + 32];
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s%s", f->db, suffix[i]);
        if (hub_test_file_contains(p, needle, n))
            return true;
    }
    return false;
}

/* ---- opening and migrations -------------------------------------------- */

static void test_open_creates_current_schema(void **state)
{
    fx_t *f = *state;
    int v = -1;
    assert_int_equal(hub_store_db_version(f->st, &v), 0);
    assert_int_equal(v, hub_store_schema_version());
    assert_true(v >= 1);
    assert_int_equal(hub_test_mode(f->db), 0600);

    /* WAL is a persistent property of the file; foreign keys are enforced. */
    sqlite3 *h = NULL;
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(h);
    /* SQLite keeps no memory statistics (set before it started): with them
     * every allocation takes a global mutex, the loop's and the log
     * writer's alike. With them on, this is the bytes in use. */
    assert_int_equal(sqlite3_memory_used(), 0);
}

static void test_reopen_up_to_date_is_noop(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    hub_store_close(f->st);
    f->st = NULL;

    /* Closed: the WAL is checkpointed away. Re-opening must not write. */
    FILE *fp = fopen(f->db, "rb");
    assert_non_null(fp);
    static uint8_t before[1 << 16], after[1 << 16];
    size_t n1 = fread(before, 1, sizeof(before), fp);
    fclose(fp);

    fx_reopen(f);
    int v = 0;
    assert_int_equal(hub_store_db_version(f->st, &v), 0);
    assert_int_equal(v, hub_store_schema_version());
    hub_store_close(f->st);
    f->st = NULL;

    fp = fopen(f->db, "rb");
    assert_non_null(fp);
    size_t n2 = fread(after, 1, sizeof(after), fp);
    fclose(fp);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);
    fx_reopen(f);
}

static void test_missing_db_needs_init(void **state)
{
    fx_t *f = *state;
    fx_t g = *f;
    snprintf(g.db, sizeof(g.db), "%s/absent.db", f->dir);
    g.st = NULL;
    char err[256] = "";
    assert_int_equal(hub_test_store_try_open(&g, NULL, false, err, sizeof(err)), CN_ENOTFOUND);
    assert_null(g.st);
    assert_non_null(strstr(err, "connect-hub init"));
    assert_int_equal(access(g.db, F_OK), -1); /* nothing was created */
    snprintf(g.db, sizeof(g.db), ":memory:");
    assert_int_equal(hub_test_store_try_open(&g, NULL, true, err, sizeof(err)), CN_EINVAL);
    assert_int_equal(access(":memory:", F_OK), -1);
}

static void test_newer_schema_refused(void **state)
{
    fx_t *f = *state;
    hub_store_close(f->st);
    f->st = NULL;
    hub_test_sql(f->db, "PRAGMA user_version = 99");
    char err[256] = "";
    assert_int_equal(hub_test_store_try_open(f, NULL, false, err, sizeof(err)), CN_EVERSION);
    assert_null(f->st);
    assert_non_null(strstr(err, "newer"));
    assert_non_null(strstr(err, "99"));
}

static void test_foreign_db_refused(void **state)
{
    fx_t *f = *state;
    fx_t g = *f;
    g.st = NULL;
    char err[256] = "";

    snprintf(g.db, sizeof(g.db), "%s/other.db", f->dir);
    hub_test_sql(g.db, "CREATE TABLE notes (x TEXT)");
    assert_int_equal(hub_test_store_try_open(&g, NULL, true, err, sizeof(err)), CN_EPROTO);
    assert_non_null(strstr(err, "not a connect-hub database"));

    snprintf(g.db, sizeof(g.db), "%s/garbage.db", f->dir);
    FILE *fp = fopen(g.db, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("this is not sqlite ", fp);
    fclose(fp);
    assert_int_equal(hub_test_store_try_open(&g, NULL, false, err, sizeof(err)), CN_EPROTO);
    assert_null(g.st);
}

/* ---- persistence ------------------------------------------------------- */

static void test_restart_keeps_everything(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    hub_agent_t a;
    hub_tunnel_t t;
    char api[HUB_TOKEN_STR_SIZE], enroll[HUB_TOKEN_STR_SIZE];
    uint8_t pk[32];
    cn_test_fill(pk, sizeof(pk), 3);

    mk_ws(f, "default", &ws);
    assert_int_equal(
        hub_store_token_create(f->st, ws.id, "admin", HUB_SCOPE_ADMIN, NULL, api, NULL), 0);
    assert_int_equal(hub_store_agent_create(f->st, ws.id, "db-host", 0, 0, enroll, &a), 0);
    assert_int_equal(hub_store_agent_enroll(f->st, enroll, pk, NULL), 0);
    hub_tunnel_spec_t sp = spec_for(a.id, "orders-db");
    sp.metadata = "{\"team\": \"payments\", \"n\": [1, 2]}";
    sp.hub_port = 20001;
    sp.ttl_ms = HOUR;
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, &t, NULL), 0);
    hub_event_spec_t ev = {.type = "tunnel.created", .tunnel_id = t.id, .data = "{\"a\":1}"};
    int64_t evid = 0;
    assert_int_equal(hub_store_event_append(f->st, ws.id, &ev, &evid), 0);

    fx_reopen(f);

    hub_token_info_t who;
    assert_int_equal(hub_store_token_authenticate(f->st, api, &who), 0);
    assert_string_equal(who.workspace_id, ws.id);
    assert_int_equal(who.scope, HUB_SCOPE_ADMIN);
    hub_agent_t a2;
    assert_int_equal(hub_store_agent_find_by_key(f->st, pk, &a2), 0);
    assert_string_equal(a2.id, a.id);
    assert_string_equal(a2.name, "db-host");
    hub_tunnel_t t2;
    assert_int_equal(hub_store_tunnel_get(f->st, ws.id, t.id, &t2), 0);
    assert_string_equal(t2.name, "orders-db");
    assert_string_equal(t2.metadata, "{\"team\":\"payments\",\"n\":[1,2]}");
    assert_int_equal(t2.hub_port, 20001);
    assert_int_equal(t2.expires_at, T0 + HOUR);
    assert_int_equal(t2.created_at, T0);
    hub_event_list_t el;
    assert_int_equal(hub_store_event_list(f->st, ws.id, NULL, &el), 0);
    assert_int_equal(el.count, 1);
    assert_int_equal(el.items[0].id, evid);
    assert_string_equal(el.items[0].tunnel_id, t.id);
    hub_event_list_free(&el);
    hub_tunnel_clear(&t);
    hub_tunnel_clear(&t2);
}

/* A hub killed with SIGKILL right after a commit loses nothing. */
static void test_kill9_loses_nothing_committed(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    hub_agent_t a;
    mk_agent(f, &ws, &a);
    hub_store_close(f->st);
    f->st = NULL;

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[256];
        if (hub_test_store_try_open(f, NULL, false, err, sizeof(err)) != 0)
            _exit(3);
        hub_tunnel_spec_t sp = spec_for(a.id, "survivor");
        if (hub_store_tunnel_create(f->st, ws.id, &sp, NULL, NULL) != 0)
            _exit(4);
        kill(getpid(), SIGKILL); /* no close, no checkpoint */
        _exit(5);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    fx_reopen(f);
    hub_tunnel_t t;
    assert_int_equal(hub_store_tunnel_get_by_name(f->st, ws.id, "survivor", &t), 0);
    assert_string_equal(t.agent_id, a.id);
    hub_tunnel_clear(&t);
}

/* ---- workspaces and scoping -------------------------------------------- */

static void test_workspaces(void **state)
{
    fx_t *f = *state;
    hub_workspace_t a, b, got;
    mk_ws(f, "default", &a);
    f->clock.now += 1;
    mk_ws(f, "team-b", &b);
    assert_true(hub_uuid_valid(a.id));
    assert_int_equal(hub_store_workspace_create(f->st, "default", NULL), HUB_ECONFLICT);
    assert_non_null(strstr(hub_store_errmsg(f->st), "name"));
    assert_int_equal(hub_store_workspace_create(f->st, "", NULL), CN_EINVAL);
    hub_workspace_list_t l;
    assert_int_equal(hub_store_workspace_list(f->st, &l), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].id, a.id);
    assert_string_equal(l.items[1].name, "team-b");
    hub_workspace_list_free(&l);
    hub_workspace_list_free(&l);
    assert_int_equal(hub_store_workspace_get(f->st, b.id, &got), 0);
    assert_string_equal(got.name, "team-b");
    assert_int_equal(got.created_at, T0 + 1);
    assert_int_equal(hub_store_workspace_get(f->st, "nope", &got), CN_ENOTFOUND);
}

static void test_other_workspace_ids_not_found(void **state)
{
    fx_t *f = *state;
    hub_workspace_t A, B;
    mk_ws(f, "a", &A);
    mk_ws(f, "b", &B);
    hub_agent_t ag;
    mk_agent(f, &A, &ag);
    hub_tunnel_t t;
    mk_tunnel(f, &A, &ag, "web", &t);
    hub_token_info_t tok;
    char secret[HUB_TOKEN_STR_SIZE];
    assert_int_equal(
        hub_store_token_create(f->st, A.id, "ci", HUB_SCOPE_MEMBER, NULL, secret, &tok), 0);
    assert_int_equal(hub_store_event_append(
                         f->st, A.id, &(hub_event_spec_t){.type = "x", .tunnel_id = t.id}, NULL),
                     0);

    hub_agent_t a2;
    hub_tunnel_t t2;
    assert_int_equal(hub_store_agent_get(f->st, B.id, ag.id, &a2), CN_ENOTFOUND);
    assert_int_equal(hub_store_agent_delete(f->st, B.id, ag.id), CN_ENOTFOUND);
    assert_int_equal(hub_store_agent_set_connected(f->st, B.id, ag.id, true), CN_ENOTFOUND);
    assert_int_equal(hub_store_tunnel_get(f->st, B.id, t.id, &t2), CN_ENOTFOUND);
    assert_int_equal(hub_store_tunnel_get_by_name(f->st, B.id, "web", &t2), CN_ENOTFOUND);
    hub_tunnel_update_t up = {.fields = HUB_TUNNEL_SET_STATUS, .status = HUB_TUNNEL_PAUSED};
    assert_int_equal(hub_store_tunnel_update(f->st, B.id, t.id, &up, NULL), CN_ENOTFOUND);
    assert_int_equal(hub_store_tunnel_delete(f->st, B.id, t.id), CN_ENOTFOUND);
    assert_int_equal(hub_store_token_delete(f->st, B.id, tok.id), CN_ENOTFOUND);
    /* B cannot point a tunnel at A's agent. */
    hub_tunnel_spec_t sp = spec_for(ag.id, "steal");
    assert_int_equal(hub_store_tunnel_create(f->st, B.id, &sp, NULL, NULL), CN_ENOTFOUND);
    assert_non_null(strstr(hub_store_errmsg(f->st), "agentId"));

    hub_agent_list_t al;
    hub_tunnel_list_t tl;
    hub_event_list_t el;
    size_t n = 99;
    assert_int_equal(hub_store_agent_list(f->st, B.id, &al), 0);
    assert_int_equal(al.count, 0);
    assert_int_equal(hub_store_tunnel_list(f->st, B.id, NULL, &tl), 0);
    assert_int_equal(tl.count, 0);
    assert_int_equal(hub_store_tunnel_count(f->st, B.id, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(hub_store_event_list(f->st, B.id, NULL, &el), 0);
    assert_int_equal(el.count, 0);
    hub_event_filter_t ef = {.tunnel_id = t.id};
    assert_int_equal(hub_store_event_list(f->st, B.id, &ef, &el), 0);
    assert_int_equal(el.count, 0);

    /* Malformed ids are just "not found". */
    assert_int_equal(hub_store_tunnel_get(f->st, A.id, "' OR 1=1 --", &t2), CN_ENOTFOUND);
    assert_int_equal(hub_store_agent_get(f->st, "x", ag.id, &a2), CN_ENOTFOUND);

    /* A still sees its own. */
    assert_int_equal(hub_store_tunnel_get(f->st, A.id, t.id, &t2), 0);
    hub_tunnel_clear(&t2);
    hub_tunnel_clear(&t);
}

/* ---- first run --------------------------------------------------------- */

static void test_bootstrap_once(void **state)
{
    fx_t *f = *state;
    char token[HUB_TOKEN_STR_SIZE];
    hub_workspace_t ws;
    assert_int_equal(hub_store_bootstrap(f->st, "default", token, &ws), 0);
    assert_string_equal(ws.name, "default");
    hub_token_info_t who;
    assert_int_equal(hub_store_token_authenticate(f->st, token, &who), 0);
    assert_string_equal(who.workspace_id, ws.id);
    assert_int_equal(who.scope, HUB_SCOPE_OPERATOR);

    char again[HUB_TOKEN_STR_SIZE];
    assert_int_equal(hub_store_bootstrap(f->st, "other", again, NULL), HUB_ECONFLICT);
    assert_string_equal(again, "");
    assert_non_null(strstr(hub_store_errmsg(f->st), "already initialised"));
    hub_workspace_list_t l;
    assert_int_equal(hub_store_workspace_list(f->st, &l), 0);
    assert_int_equal(l.count, 1);
    hub_workspace_list_free(&l);
}

/* ---- API tokens -------------------------------------------------------- */

static void test_api_token_hashing(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    char token[HUB_TOKEN_STR_SIZE], other[HUB_TOKEN_STR_SIZE];
    hub_token_info_t info, who;
    assert_int_equal(
        hub_store_token_create(f->st, ws.id, "admin", HUB_SCOPE_ADMIN, NULL, token, &info), 0);
    assert_true(hub_token_well_formed(HUB_TOKEN_PREFIX_API, token));
    assert_int_equal(
        hub_store_token_create(f->st, ws.id, NULL, HUB_SCOPE_MEMBER, NULL, other, NULL), 0);

    assert_int_equal(hub_store_token_authenticate(f->st, token, &who), 0);
    assert_string_equal(who.id, info.id);
    assert_string_equal(who.workspace_id, ws.id);
    assert_int_equal(who.scope, HUB_SCOPE_ADMIN);
    assert_int_equal(hub_store_token_authenticate(f->st, other, &who), 0);
    assert_int_equal(who.scope, HUB_SCOPE_MEMBER);

    /* Wrong, altered, foreign-prefixed, malformed tokens: all CN_EAUTH. */
    char wrong[HUB_TOKEN_STR_SIZE];
    assert_int_equal(hub_token_generate(HUB_TOKEN_PREFIX_API, wrong), 0);
    assert_int_equal(hub_store_token_authenticate(f->st, wrong, &who), CN_EAUTH);
    char altered[HUB_TOKEN_STR_SIZE];
    memcpy(altered, token, sizeof(altered));
    altered[10] = altered[10] == 'A' ? 'B' : 'A';
    assert_int_equal(hub_store_token_authenticate(f->st, altered, &who), CN_EAUTH);
    memcpy(altered, token, sizeof(altered));
    memcpy(altered, "cne_", 4);
    assert_int_equal(hub_store_token_authenticate(f->st, altered, &who), CN_EAUTH);
    assert_int_equal(hub_store_token_authenticate(f->st, "", &who), CN_EAUTH);
    assert_int_equal(hub_store_token_authenticate(f->st, NULL, &who), CN_EAUTH);
    assert_null(strstr(hub_store_errmsg(f->st), "cnt_"));

    /* The database refuses to be opened with another secret key (which
     * could not confirm any token anyway). */
    hub_store_close(f->st);
    f->st = NULL;
    f->key[0] ^= 1;
    char err[256] = "";
    assert_int_equal(hub_test_store_try_open(f, NULL, false, err, sizeof(err)), CN_EAUTH);
    assert_null(f->st);
    assert_non_null(strstr(err, "secret key"));
    f->key[0] ^= 1;
    fx_reopen(f);
    assert_int_equal(hub_store_token_authenticate(f->st, token, &who), 0);

    /* Neither the token nor its random part is in any database file, open
     * (WAL) or closed (checkpointed). */
    assert_false(db_files_contain(f, token, strlen(token)));
    assert_false(db_files_contain(f, token + 4, strlen(token) - 4));
    hub_store_close(f->st);
    f->st = NULL;
    assert_false(db_files_contain(f, token + 4, strlen(token) - 4));
    assert_false(db_files_contain(f, other + 4, strlen(other) - 4));
    assert_true(db_files_contain(f, "admin", 5)); /* the check can see content */
    fx_reopen(f);

    /* Revocation. */
    assert_int_equal(hub_store_token_delete(f->st, ws.id, info.id), 0);
    assert_int_equal(hub_store_token_authenticate(f->st, token, &who), CN_EAUTH);
    assert_int_equal(hub_store_token_delete(f->st, ws.id, info.id), CN_ENOTFOUND);
    assert_int_equal(hub_store_token_create(f->st, "00000000-0000-4000-8000-000000000000", NULL,
                                            HUB_SCOPE_MEMBER, NULL, token, NULL),
                     CN_ENOTFOUND);
    assert_string_equal(token, "");
}

/* ---- agents ------------------------------------------------------------ */

static void test_enroll_single_use(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    char tok[HUB_TOKEN_STR_SIZE];
    hub_agent_t a, got;
    assert_int_equal(hub_store_agent_create(f->st, ws.id, NULL, 10 * MINUTE, 0, tok, &a), 0);
    assert_true(hub_uuid_valid(a.id));
    assert_int_equal(a.id[14], '4');
    assert_string_equal(a.name, "");
    assert_false(a.enrolled);
    assert_int_equal(a.enroll_expires_at, T0 + 10 * MINUTE);
    assert_true(hub_token_well_formed(HUB_TOKEN_PREFIX_ENROLL, tok));
    assert_false(db_files_contain(f, tok + 4, strlen(tok) - 4));

    uint8_t pk[32], pk2[32];
    cn_test_fill(pk, 32, 11);
    cn_test_fill(pk2, 32, 12);
    char wrong[HUB_TOKEN_STR_SIZE];
    assert_int_equal(hub_token_generate(HUB_TOKEN_PREFIX_ENROLL, wrong), 0);
    assert_int_equal(hub_store_agent_enroll(f->st, wrong, pk, &got), CN_EAUTH);
    assert_int_equal(hub_store_agent_find_by_key(f->st, pk, &got), CN_ENOTFOUND);

    f->clock.now += 9 * MINUTE;
    assert_int_equal(hub_store_agent_enroll(f->st, tok, pk, &got), 0);
    assert_string_equal(got.id, a.id);
    assert_string_equal(got.workspace_id, ws.id);
    assert_true(got.enrolled);
    assert_memory_equal(got.public_key, pk, 32);
    assert_int_equal(got.enrolled_at, T0 + 9 * MINUTE);
    assert_int_equal(got.enroll_expires_at, HUB_TIME_NONE);

    /* Used once: gone, even with another key. */
    assert_int_equal(hub_store_agent_enroll(f->st, tok, pk2, &got), CN_EAUTH);
    assert_int_equal(hub_store_agent_find_by_key(f->st, pk, &got), 0);
    assert_string_equal(got.id, a.id);
    assert_int_equal(hub_store_agent_find_by_key(f->st, pk2, &got), CN_ENOTFOUND);

    /* A key bound to one agent cannot be bound to another; the token
     * survives that refusal. */
    char tok2[HUB_TOKEN_STR_SIZE];
    hub_agent_t b;
    assert_int_equal(hub_store_agent_create(f->st, ws.id, "b", 0, 0, tok2, &b), 0);
    assert_int_equal(hub_store_agent_enroll(f->st, tok2, pk, &got), HUB_ECONFLICT);
    assert_int_equal(hub_store_agent_enroll(f->st, tok2, pk2, &got), 0);
    assert_string_equal(got.id, b.id);
    uint8_t zero[32] = {0};
    assert_int_equal(hub_store_agent_enroll(f->st, tok2, zero, &got), CN_EINVAL);
}

static void test_enroll_expiry(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    char tok[HUB_TOKEN_STR_SIZE];
    hub_agent_t a, got;
    assert_int_equal(hub_store_agent_create(f->st, ws.id, "late", 10 * MINUTE, 0, tok, &a), 0);
    uint8_t pk[32];
    cn_test_fill(pk, 32, 21);

    f->clock.now = T0 + 10 * MINUTE; /* the expiry instant itself is too late */
    assert_int_equal(hub_store_agent_enroll(f->st, tok, pk, &got), CN_ETIMEOUT);
    assert_non_null(strstr(hub_store_errmsg(f->st), "expired"));
    /* Burnt: turning the clock back does not revive it. */
    f->clock.now = T0;
    assert_int_equal(hub_store_agent_enroll(f->st, tok, pk, &got), CN_EAUTH);
    assert_int_equal(hub_store_agent_get(f->st, ws.id, a.id, &got), 0);
    assert_false(got.enrolled);

    /* The default lifetime is an hour. */
    assert_int_equal(hub_store_agent_create(f->st, ws.id, NULL, 0, 0, tok, &a), 0);
    assert_int_equal(a.enroll_expires_at, T0 + HUB_ENROLL_TTL_DEFAULT_MS);
    assert_int_equal(hub_store_agent_create(f->st, ws.id, NULL, -1, 0, tok, &a), CN_EINVAL);
}

static void test_agent_connections_and_list(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    hub_agent_t a, b, got;
    mk_agent(f, &ws, &a);
    f->clock.now += 5;
    mk_agent(f, &ws, &b);

    f->clock.now = T0 + MINUTE;
    assert_int_equal(hub_store_agent_set_connected(f->st, ws.id, a.id, true), 0);
    assert_int_equal(hub_store_agent_get(f->st, ws.id, a.id, &got), 0);
    assert_true(got.connected);
    assert_int_equal(got.connected_at, T0 + MINUTE);
    assert_int_equal(got.disconnected_at, HUB_TIME_NONE);

    f->clock.now = T0 + 2 * MINUTE;
    assert_int_equal(hub_store_agent_set_connected(f->st, ws.id, a.id, false), 0);
    assert_int_equal(hub_store_agent_get(f->st, ws.id, a.id, &got), 0);
    assert_false(got.connected);
    assert_int_equal(got.connected_at, T0 + MINUTE);
    assert_int_equal(got.disconnected_at, T0 + 2 * MINUTE);

    assert_int_equal(hub_store_agent_set_connected(f->st, ws.id, a.id, true), 0);
    assert_int_equal(hub_store_agent_set_connected(f->st, ws.id, b.id, true), 0);
    size_t n = 0;
    f->clock.now = T0 + 3 * MINUTE;
    assert_int_equal(hub_store_agent_reset_connections(f->st, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(hub_store_agent_get(f->st, ws.id, b.id, &got), 0);
    assert_false(got.connected);
    assert_int_equal(got.disconnected_at, T0 + 3 * MINUTE);

    hub_agent_list_t l;
    assert_int_equal(hub_store_agent_list(f->st, ws.id, &l), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].id, a.id);
    assert_string_equal(l.items[1].id, b.id);
    hub_agent_list_free(&l);
}

static void test_agent_delete_takes_its_tunnels(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    hub_agent_t a, b;
    mk_agent(f, &ws, &a);
    mk_agent(f, &ws, &b);
    hub_tunnel_t t1, t2, got;
    mk_tunnel(f, &ws, &a, "one", &t1);
    mk_tunnel(f, &ws, &b, "two", &t2);
    assert_int_equal(hub_store_agent_delete(f->st, ws.id, a.id), 0);
    assert_int_equal(hub_store_agent_get(f->st, ws.id, a.id, &(hub_agent_t){0}), CN_ENOTFOUND);
    assert_int_equal(hub_store_tunnel_get(f->st, ws.id, t1.id, &got), CN_ENOTFOUND);
    assert_int_equal(hub_store_tunnel_get(f->st, ws.id, t2.id, &got), 0);
    hub_tunnel_clear(&got);
    size_t n = 0;
    assert_int_equal(hub_store_tunnel_count(f->st, ws.id, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(hub_store_agent_delete(f->st, ws.id, a.id), CN_ENOTFOUND);
    hub_tunnel_clear(&t1);
    hub_tunnel_clear(&t2);
}

/* ---- token scopes, lifetime, caps ---------------------------------------- */

/* The hex of the keyed hash the store keeps for `token` (for hand-written
 * rows of an older schema). */
static void token_hash_hex(const fx_t *f, const char *token, char hex[65])
{
    uint8_t h[HUB_KEY_BYTES];
    assert_int_equal(hub_token_hash(f->key, token, h), 0);
    for (int i = 0; i < HUB_KEY_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
}

/* A token by id in the workspace's list (fails the test when absent). */
static hub_token_info_t find_token(fx_t *f, const char *ws, const char *id, bool *present)
{
    hub_token_list_t l = {0};
    hub_token_info_t out = {0};
    assert_int_equal(hub_store_token_list(f->st, ws, &l), 0);
    *present = false;
    for (size_t i = 0; i < l.count; i++)
        if (!strcmp(l.items[i].id, id)) {
            out = l.items[i];
            *present = true;
        }
    hub_token_list_free(&l);
    return out;
}

#define WS1 "11111111-1111-4111-8111-111111111111"
#define WS2 "22222222-2222-4222-8222-222222222222"
#define AG1 "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define GONE "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
#define TOK(n) "0000000" n "-0000-4000-8000-000000000000"

static void test_migration_to_token_scopes(void **state)
{
    fx_t *f = *state;
    hub_store_close(f->st);
    f->st = NULL;
    hub_test_rmtree(f->dir);
    assert_int_equal(mkdir(f->dir, 0700), 0);
    /* A version-1 database as the previous release wrote it (its tables,
     * less some CHECKs and indexes), with the rows each rule is about. */
    char init_tok[HUB_TOKEN_STR_SIZE], agent_tok[HUB_TOKEN_STR_SIZE];
    assert_int_equal(hub_token_generate(HUB_TOKEN_PREFIX_API, init_tok), 0);
    assert_int_equal(hub_token_generate(HUB_TOKEN_PREFIX_API, agent_tok), 0);
    char h_init[65], h_agent[65];
    token_hash_hex(f, init_tok, h_init);
    token_hash_hex(f, agent_tok, h_agent);
    char sql[16384];
    snprintf(
        sql, sizeof(sql),
        "PRAGMA application_id = 1129203778;"
        "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) STRICT;"
        "CREATE TABLE workspaces (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL UNIQUE "
        "  CHECK (length(name) BETWEEN 1 AND 100), created_at INTEGER NOT NULL) STRICT;"
        "CREATE TABLE api_tokens (id TEXT PRIMARY KEY NOT NULL,"
        "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,"
        "  name TEXT NOT NULL DEFAULT '',"
        "  token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),"
        "  admin INTEGER NOT NULL CHECK (admin IN (0, 1)), created_at INTEGER NOT NULL) STRICT;"
        "CREATE INDEX api_tokens_workspace ON api_tokens(workspace_id);"
        "CREATE TABLE agents (id TEXT PRIMARY KEY NOT NULL,"
        "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE, name TEXT,"
        "  enroll_hash BLOB UNIQUE, enroll_expires_at INTEGER, public_key BLOB UNIQUE,"
        "  enrolled_at INTEGER, connected INTEGER NOT NULL DEFAULT 0, connected_at INTEGER,"
        "  disconnected_at INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
        "  UNIQUE (workspace_id, id)) STRICT;"
        "CREATE TABLE tunnels (id TEXT PRIMARY KEY NOT NULL,"
        "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,"
        "  agent_id TEXT NOT NULL, name TEXT NOT NULL, target_host TEXT NOT NULL,"
        "  target_port INTEGER NOT NULL, protocol TEXT NOT NULL, public INTEGER NOT NULL,"
        "  hub_port INTEGER UNIQUE, status TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}',"
        "  connection_string TEXT, last_error TEXT, http_user TEXT, http_password_hash TEXT,"
        "  created_at INTEGER NOT NULL, connected_at INTEGER, expires_at INTEGER,"
        "  updated_at INTEGER NOT NULL, UNIQUE (workspace_id, name),"
        "  FOREIGN KEY (workspace_id, agent_id) REFERENCES agents(workspace_id, id)"
        "    ON DELETE CASCADE) STRICT;"
        "CREATE TABLE releases (kind TEXT NOT NULL, value TEXT NOT NULL,"
        "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,"
        "  released_at INTEGER NOT NULL, PRIMARY KEY (kind, value)) STRICT, WITHOUT ROWID;"
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,"
        "  type TEXT NOT NULL, tunnel_id TEXT, agent_id TEXT, data TEXT NOT NULL DEFAULT '{}',"
        "  created_at INTEGER NOT NULL) STRICT;"
        "INSERT INTO workspaces VALUES ('" WS1 "', 'default', 1000), ('" WS2 "', 'two', 1500);"
        "INSERT INTO agents (id, workspace_id, created_at, updated_at) "
        "  VALUES ('" AG1 "', '" WS1 "', 1100, 1100);"
        "INSERT INTO api_tokens VALUES "
        /* init's token: named admin, same instant as the first workspace */
        "  ('" TOK(
            "1") "', '" WS1 "', 'admin', X'%s', 1, 1000),"
                 /* a later admin token of the first workspace */
                 "  ('" TOK(
                     "2") "', '" WS1 "', 'admin', X'%064d', 1, 2000),"
                          /* an admin token minted with its workspace's creation time elsewhere */
                          "  ('" TOK(
                              "3") "', '" WS2 "', 'admin', X'%063d1', 1, 1500),"
                                   /* enrollment's token of a live agent, and of a deleted one */
                                   "  ('" TOK(
                                       "4") "', '" WS1 "', 'agent " AG1 "', X'%s', 0, 1200),"
                                            "  ('" TOK(
                                                "5") "', '" WS1 "', 'agent " GONE
                                                     "', X'%063d2', 0, 1300),"
                                                     /* plain tokens, one named like an agent token
                                                        but not one */
                                                     "  ('" TOK(
                                                         "6") "', '" WS1
                                                              "', 'ci', X'%063d3', 0, 1400),"
                                                              "  ('" TOK(
                                                                  "7") "', '" WS1
                                                                       "', 'agent smith', "
                                                                       "X'%063d4', 0, 1400);"
                                                                       "PRAGMA user_version = 1;",
        h_init, 0, 0, h_agent, 0, 0, 0);
    hub_test_sql(f->db, sql);
    chmod(f->db, 0600);

    fx_reopen(f);
    int v = 0;
    assert_int_equal(hub_store_db_version(f->st, &v), 0);
    assert_int_equal(v, hub_store_schema_version());

    static const struct {
        const char *ws, *id;
        bool kept;
        enum hub_token_scope scope;
        const char *agent;
    } want[] = {
        {WS1, TOK("1"), true, HUB_SCOPE_OPERATOR, ""}, {WS1, TOK("2"), true, HUB_SCOPE_ADMIN, ""},
        {WS2, TOK("3"), true, HUB_SCOPE_ADMIN, ""},    {WS1, TOK("4"), true, HUB_SCOPE_AGENT, AG1},
        {WS1, TOK("5"), false, HUB_SCOPE_MEMBER, ""},  {WS1, TOK("6"), true, HUB_SCOPE_MEMBER, ""},
        {WS1, TOK("7"), true, HUB_SCOPE_MEMBER, ""},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        bool present = false;
        hub_token_info_t t = find_token(f, want[i].ws, want[i].id, &present);
        if (present != want[i].kept)
            fail_msg("token %zu: %s after migration", i, present ? "kept" : "dropped");
        if (!present)
            continue;
        if (t.scope != want[i].scope || strcmp(t.agent_id, want[i].agent))
            fail_msg("token %zu: scope %s agent '%s'", i, hub_token_scope_name(t.scope),
                     t.agent_id);
        assert_int_equal(t.last_used_at, HUB_TIME_NONE);
    }
    /* The migrated secrets still authenticate, with their new scopes. */
    hub_token_info_t who;
    assert_int_equal(hub_store_token_authenticate(f->st, init_tok, &who), 0);
    assert_int_equal(who.scope, HUB_SCOPE_OPERATOR);
    assert_int_equal(hub_store_token_authenticate(f->st, agent_tok, &who), 0);
    assert_int_equal(who.scope, HUB_SCOPE_AGENT);
    assert_string_equal(who.agent_id, AG1);
    /* ... and the migrated agent token now dies with its agent. */
    assert_int_equal(hub_store_agent_delete(f->st, WS1, AG1), 0);
    assert_int_equal(hub_store_token_authenticate(f->st, agent_tok, &who), CN_EAUTH);
}

static void test_agent_token_dies_with_its_agent(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws, other;
    mk_ws(f, "default", &ws);
    mk_ws(f, "other", &other);
    hub_agent_t a, b;
    mk_agent(f, &ws, &a);
    mk_agent(f, &ws, &b);
    char ta[HUB_TOKEN_STR_SIZE], tb[HUB_TOKEN_STR_SIZE], tx[HUB_TOKEN_STR_SIZE];
    hub_token_info_t ia, who;
    assert_int_equal(
        hub_store_token_create(f->st, ws.id, "agent a", HUB_SCOPE_AGENT, a.id, ta, &ia), 0);
    assert_int_equal(hub_store_token_create(f->st, ws.id, NULL, HUB_SCOPE_AGENT, b.id, tb, NULL),
                     0);
    assert_int_equal(hub_store_token_authenticate(f->st, ta, &who), 0);
    assert_int_equal(who.scope, HUB_SCOPE_AGENT);
    assert_string_equal(who.agent_id, a.id);
    /* An agent token needs an agent of the same workspace, and only agent
     * tokens name one. */
    assert_int_equal(hub_store_token_create(f->st, other.id, NULL, HUB_SCOPE_AGENT, a.id, tx, NULL),
                     CN_ENOTFOUND);
    assert_non_null(strstr(hub_store_errmsg(f->st), "agentId"));
    assert_int_equal(hub_store_token_create(f->st, ws.id, NULL, HUB_SCOPE_AGENT, NULL, tx, NULL),
                     CN_EINVAL);
    assert_int_equal(hub_store_token_create(f->st, ws.id, NULL, HUB_SCOPE_ADMIN, a.id, tx, NULL),
                     CN_EINVAL);
    assert_int_equal(
        hub_store_token_create(f->st, ws.id, NULL, (enum hub_token_scope)9, NULL, tx, NULL),
        CN_EINVAL);

    /* Deleting the agent revokes its token in the same transaction; the
     * other agent's token lives on. */
    assert_int_equal(hub_store_agent_delete(f->st, ws.id, a.id), 0);
    assert_int_equal(hub_store_token_authenticate(f->st, ta, &who), CN_EAUTH);
    bool present = true;
    find_token(f, ws.id, ia.id, &present);
    assert_false(present);
    assert_int_equal(hub_store_token_authenticate(f->st, tb, &who), 0);
    fx_reopen(f);
    assert_int_equal(hub_store_token_authenticate(f->st, ta, &who), CN_EAUTH);
    assert_int_equal(hub_store_token_authenticate(f->st, tb, &who), 0);
}

static void test_token_list_get_and_last_used(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws, other;
    mk_ws(f, "default", &ws);
    mk_ws(f, "other", &other);
    char t1[HUB_TOKEN_STR_SIZE], t2[HUB_TOKEN_STR_SIZE], t3[HUB_TOKEN_STR_SIZE];
    hub_token_info_t i1, i2, i3, who;
    assert_int_equal(hub_store_token_create(f->st, ws.id, "ci", HUB_SCOPE_MEMBER, NULL, t1, &i1),
                     0);
    f->clock.now += 1;
    assert_int_equal(hub_store_token_create(f->st, ws.id, "ops", HUB_SCOPE_ADMIN, NULL, t2, &i2),
                     0);
    assert_int_equal(hub_store_token_create(f->st, other.id, "x", HUB_SCOPE_ADMIN, NULL, t3, &i3),
                     0);

    hub_token_list_t l = {0};
    assert_int_equal(hub_store_token_list(f->st, ws.id, &l), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].id, i1.id); /* oldest first */
    assert_string_equal(l.items[0].name, "ci");
    assert_int_equal(l.items[0].scope, HUB_SCOPE_MEMBER);
    assert_int_equal(l.items[1].scope, HUB_SCOPE_ADMIN);
    assert_int_equal(l.items[0].last_used_at, HUB_TIME_NONE);
    hub_token_list_free(&l);
    hub_token_info_t got;
    assert_int_equal(hub_store_token_get(f->st, ws.id, i2.id, &got), 0);
    assert_string_equal(got.name, "ops");
    assert_int_equal(hub_store_token_get(f->st, ws.id, i3.id, &got), CN_ENOTFOUND);
    assert_int_equal(hub_store_token_get(f->st, ws.id, "nope", &got), CN_ENOTFOUND);
    assert_int_equal(hub_store_token_list(f->st, "nope", &l), 0);
    assert_int_equal(l.count, 0);

    /* lastUsedAt: set on first use, then written at most once a minute. */
    int64_t first = f->clock.now;
    assert_int_equal(hub_store_token_authenticate(f->st, t1, &who), 0);
    assert_int_equal(who.last_used_at, first);
    f->clock.now += 59 * 1000;
    assert_int_equal(hub_store_token_authenticate(f->st, t1, &who), 0);
    assert_int_equal(who.last_used_at, first);
    fx_reopen(f); /* what the database holds, not a cached value */
    bool present = false;
    assert_int_equal(find_token(f, ws.id, i1.id, &present).last_used_at, first);
    f->clock.now += 1000; /* a full minute after the recorded use */
    assert_int_equal(hub_store_token_authenticate(f->st, t1, &who), 0);
    assert_int_equal(who.last_used_at, f->clock.now);
    assert_int_equal(find_token(f, ws.id, i1.id, &present).last_used_at, f->clock.now);
    assert_int_equal(find_token(f, ws.id, i2.id, &present).last_used_at, HUB_TIME_NONE);
}

static void test_agent_cap(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws, other;
    mk_ws(f, "default", &ws);
    mk_ws(f, "other", &other);
    char tok[HUB_TOKEN_STR_SIZE];
    hub_agent_t a, b;
    assert_int_equal(hub_store_agent_create(f->st, ws.id, "a", 0, 2, tok, &a), 0);
    assert_int_equal(hub_store_agent_create(f->st, ws.id, "b", 0, 2, tok, &b), 0);
    assert_int_equal(hub_store_agent_create(f->st, ws.id, "c", 0, 2, tok, NULL), CN_EEXHAUSTED);
    assert_string_equal(tok, "");
    assert_non_null(strstr(hub_store_errmsg(f->st), "agents"));
    /* Per workspace, and freed by a delete; 0 means no cap. */
    assert_int_equal(hub_store_agent_create(f->st, other.id, "c", 0, 2, tok, NULL), 0);
    assert_int_equal(hub_store_agent_delete(f->st, ws.id, a.id), 0);
    assert_int_equal(hub_store_agent_create(f->st, ws.id, "c", 0, 2, tok, NULL), 0);
    assert_int_equal(hub_store_agent_create(f->st, ws.id, "d", 0, 0, tok, NULL), 0);
    hub_agent_list_t l = {0};
    assert_int_equal(hub_store_agent_list(f->st, ws.id, &l), 0);
    assert_int_equal(l.count, 3);
    hub_agent_list_free(&l);
}

/* ---- tunnels ----------------------------------------------------------- */

static void test_tunnel_create_all_fields(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    hub_agent_t a;
    mk_agent(f, &ws, &a);
    hub_tunnel_spec_t sp = {
        .name = "shop",
        .agent_id = a.id,
        .target_host = "localhost",
        .target_port = 8080,
        .protocol = HUB_PROTO_HTTP,
        .is_public = true,
        .hub_port = 0,
        .ttl_ms = 30 * MINUTE,
        .metadata = " { \"env\" : \"staging\" } ",
        .connection_string = "http://127.0.0.1:18080/",
        .http_user = "tester",
    };
    hub_tunnel_t t;
    char pw[HUB_PASSWORD_SIZE];
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, &t, pw), 0);
    assert_true(hub_uuid_valid(t.id));
    assert_string_equal(t.workspace_id, ws.id);
    assert_string_equal(t.agent_id, a.id);
    assert_string_equal(t.name, "shop");
    assert_string_equal(t.target_host, "localhost");
    assert_int_equal(t.target_port, 8080);
    assert_int_equal(t.protocol, HUB_PROTO_HTTP);
    assert_true(t.is_public);
    assert_int_equal(t.hub_port, 0);
    assert_int_equal(t.status, HUB_TUNNEL_CONNECTING);
    assert_string_equal(t.metadata, "{\"env\":\"staging\"}");
    assert_string_equal(t.connection_string, "http://127.0.0.1:18080/");
    assert_null(t.last_error);
    assert_string_equal(t.http_user, "tester");
    assert_int_equal(strlen(pw), HUB_PASSWORD_LEN);
    /* High-entropy generated passwords: a keyed BLAKE2b hash, one hash per
     * check (no slow hash on the event loop). */
    assert_memory_equal(t.http_password_hash, "b2k$", 4);
    assert_int_equal(hub_store_password_check(f->st, t.http_password_hash, pw), 0);
    assert_int_equal(hub_store_password_check(f->st, t.http_password_hash, "guess"), CN_EAUTH);
    assert_int_equal(hub_store_password_check(f->st, "$argon2id$v=19$x", pw), CN_EAUTH);
    assert_int_equal(t.created_at, T0);
    assert_int_equal(t.updated_at, T0);
    assert_int_equal(t.connected_at, HUB_TIME_NONE);
    assert_int_equal(t.expires_at, T0 + 30 * MINUTE);
    assert_false(db_files_contain(f, pw, strlen(pw)));

    /* Read back the same. */
    hub_tunnel_t g;
    assert_int_equal(hub_store_tunnel_get(f->st, ws.id, t.id, &g), 0);
    assert_string_equal(g.http_password_hash, t.http_password_hash);
    assert_string_equal(g.metadata, t.metadata);
    assert_int_equal(g.expires_at, t.expires_at);
    assert_int_equal(g.protocol, HUB_PROTO_HTTP);
    hub_tunnel_clear(&g);

    /* Defaults: no metadata is {}, no auth, no password. */
    hub_tunnel_spec_t plain = spec_for(a.id, "plain");
    pw[0] = 'x';
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &plain, &g, pw), 0);
    assert_string_equal(g.metadata, "{}");
    assert_string_equal(g.http_user, "");
    assert_string_equal(g.http_password_hash, "");
    assert_null(g.connection_string);
    assert_int_equal(g.expires_at, HUB_TIME_NONE);
    assert_string_equal(pw, "");
    hub_tunnel_clear(&g);
    hub_tunnel_clear(&t);
    hub_tunnel_clear(&t);
    hub_tunnel_clear(NULL);
}

static void test_tunnel_rejects_bad_input(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    hub_agent_t a;
    mk_agent(f, &ws, &a);
    char pw[HUB_PASSWORD_SIZE];
    char longname[HUB_NAME_MAX + 2];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';

    static const struct {
        const char *what;
        const char *name, *host, *metadata, *user;
        uint16_t port;
        int protocol, rc;
    } cases[] = {
        {"empty name", "", "h", NULL, NULL, 1, HUB_PROTO_TCP, CN_EINVAL},
        {"long name", NULL, "h", NULL, NULL, 1, HUB_PROTO_TCP, CN_EINVAL},
        {"control char", "a\nb", "h", NULL, NULL, 1, HUB_PROTO_TCP, CN_EINVAL},
        {"bad utf-8", "a\xc0\xafz", "h", NULL, NULL, 1, HUB_PROTO_TCP, CN_EINVAL},
        {"no host", "n", "", NULL, NULL, 1, HUB_PROTO_TCP, CN_EINVAL},
        {"space in host", "n", "a b", NULL, NULL, 1, HUB_PROTO_TCP, CN_EINVAL},
        {"port 0", "n", "h", NULL, NULL, 0, HUB_PROTO_TCP, CN_EINVAL},
        {"protocol", "n", "h", NULL, NULL, 1, 9, CN_EINVAL},
        {"metadata array", "n", "h", "[1]", NULL, 1, HUB_PROTO_TCP, CN_EINVAL},
        {"metadata junk", "n", "h", "{", NULL, 1, HUB_PROTO_TCP, CN_EINVAL},
        {"metadata trailing", "n", "h", "{} x", NULL, 1, HUB_PROTO_TCP, CN_EINVAL},
        {"metadata dup keys", "n", "h", "{\"a\":1,\"a\":2}", NULL, 1, HUB_PROTO_TCP, CN_EINVAL},
        {"user with colon", "n", "h", NULL, "a:b", 1, HUB_PROTO_HTTP, CN_EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hub_tunnel_spec_t sp = spec_for(a.id, cases[i].name ? cases[i].name : longname);
        sp.target_host = cases[i].host;
        sp.metadata = cases[i].metadata;
        sp.http_user = cases[i].user;
        sp.target_port = cases[i].port;
        sp.protocol = (enum hub_protocol)cases[i].protocol;
        int rc = hub_store_tunnel_create(f->st, ws.id, &sp, NULL, pw);
        if (rc != cases[i].rc)
            fail_msg("%s: got %d (%s)", cases[i].what, rc, hub_store_errmsg(f->st));
        assert_true(strlen(hub_store_errmsg(f->st)) > 0);
    }
    hub_tunnel_spec_t sp = spec_for("00000000-0000-4000-8000-000000000000", "n");
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, NULL, NULL), CN_ENOTFOUND);
    sp = spec_for(a.id, "n");
    sp.http_user = "u";
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, NULL, NULL), CN_EINVAL);

    /* A 100-byte name and a 100-byte UTF-8 name fit. */
    longname[HUB_NAME_MAX] = '\0';
    sp = spec_for(a.id, longname);
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, NULL, NULL), 0);
    sp = spec_for(a.id, "caf\xc3\xa9");
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, NULL, NULL), 0);
    size_t n = 0;
    assert_int_equal(hub_store_tunnel_count(f->st, ws.id, &n), 0);
    assert_int_equal(n, 2);
}

static void test_tunnel_names_unique(void **state)
{
    fx_t *f = *state;
    hub_workspace_t A, B;
    mk_ws(f, "a", &A);
    mk_ws(f, "b", &B);
    hub_agent_t aa, bb;
    mk_agent(f, &A, &aa);
    mk_agent(f, &B, &bb);

    hub_tunnel_spec_t sp = spec_for(aa.id, "db");
    assert_int_equal(hub_store_tunnel_create(f->st, A.id, &sp, NULL, NULL), 0);
    assert_int_equal(hub_store_tunnel_create(f->st, A.id, &sp, NULL, NULL), HUB_ECONFLICT);
    assert_non_null(strstr(hub_store_errmsg(f->st), "name"));
    /* Private names are per workspace. */
    sp = spec_for(bb.id, "db");
    assert_int_equal(hub_store_tunnel_create(f->st, B.id, &sp, NULL, NULL), 0);

    /* Public names are hub-wide: they are NAME.DOMAIN. */
    sp = spec_for(aa.id, "web");
    sp.is_public = true;
    assert_int_equal(hub_store_tunnel_create(f->st, A.id, &sp, NULL, NULL), 0);
    sp = spec_for(bb.id, "web");
    sp.is_public = true;
    assert_int_equal(hub_store_tunnel_create(f->st, B.id, &sp, NULL, NULL), HUB_ECONFLICT);
    assert_non_null(strstr(hub_store_errmsg(f->st), "public name"));
    sp.is_public = false;
    assert_int_equal(hub_store_tunnel_create(f->st, B.id, &sp, NULL, NULL), 0);

    /* Hub ports are hub-wide. */
    sp = spec_for(aa.id, "p1");
    sp.hub_port = 20000;
    assert_int_equal(hub_store_tunnel_create(f->st, A.id, &sp, NULL, NULL), 0);
    sp = spec_for(bb.id, "p2");
    sp.hub_port = 20000;
    assert_int_equal(hub_store_tunnel_create(f->st, B.id, &sp, NULL, NULL), HUB_ECONFLICT);
    assert_non_null(strstr(hub_store_errmsg(f->st), "hubPort"));
    bool avail = true;
    assert_int_equal(hub_store_hub_port_available(f->st, B.id, 20000, &avail), 0);
    assert_false(avail);
    assert_int_equal(hub_store_hub_port_available(f->st, B.id, 20001, &avail), 0);
    assert_true(avail);

    /* Renaming into a taken name conflicts. */
    hub_tunnel_t other;
    mk_tunnel(f, &A, &aa, "other", &other);
    hub_tunnel_update_t up = {.fields = HUB_TUNNEL_SET_NAME, .name = "db"};
    assert_int_equal(hub_store_tunnel_update(f->st, A.id, other.id, &up, NULL), HUB_ECONFLICT);
    up.name = "other"; /* its own name is fine */
    assert_int_equal(hub_store_tunnel_update(f->st, A.id, other.id, &up, NULL), 0);
    hub_tunnel_clear(&other);
}

static void test_released_names_and_ports_are_held(void **state)
{
    fx_t *f = *state;
    hub_workspace_t A, B;
    mk_ws(f, "a", &A);
    mk_ws(f, "b", &B);
    hub_agent_t aa, bb;
    mk_agent(f, &A, &aa);
    mk_agent(f, &B, &bb);
    hub_tunnel_spec_t sa = spec_for(aa.id, "web");
    sa.is_public = true;
    sa.hub_port = 20080;
    hub_tunnel_spec_t sb = spec_for(bb.id, "web");
    sb.is_public = true;
    hub_tunnel_spec_t sbp = spec_for(bb.id, "port");
    sbp.hub_port = 20080;

    hub_tunnel_t t;
    assert_int_equal(hub_store_tunnel_create(f->st, A.id, &sa, &t, NULL), 0);
    f->clock.now += MINUTE;
    assert_int_equal(hub_store_tunnel_delete(f->st, A.id, t.id), 0);
    hub_tunnel_clear(&t);

    /* Right after release, B cannot take A's URL or port... */
    f->clock.now += HOUR;
    assert_int_equal(hub_store_tunnel_create(f->st, B.id, &sb, NULL, NULL), HUB_ECONFLICT);
    assert_non_null(strstr(hub_store_errmsg(f->st), "released recently"));
    assert_int_equal(hub_store_tunnel_create(f->st, B.id, &sbp, NULL, NULL), HUB_ECONFLICT);
    bool avail = true;
    assert_int_equal(hub_store_hub_port_available(f->st, B.id, 20080, &avail), 0);
    assert_false(avail);
    assert_int_equal(hub_store_hub_port_available(f->st, A.id, 20080, &avail), 0);
    assert_true(avail);
    /* ...but A can, at once. */
    assert_int_equal(hub_store_tunnel_create(f->st, A.id, &sa, &t, NULL), 0);

    /* Renaming a public tunnel releases its old name to A as well. */
    hub_tunnel_update_t up = {.fields = HUB_TUNNEL_SET_NAME, .name = "web2"};
    assert_int_equal(hub_store_tunnel_update(f->st, A.id, t.id, &up, NULL), 0);
    assert_int_equal(hub_store_tunnel_create(f->st, B.id, &sb, NULL, NULL), HUB_ECONFLICT);
    hub_tunnel_t found;
    assert_int_equal(hub_store_tunnel_find_public(f->st, "web2", &found), 0);
    assert_string_equal(found.id, t.id);
    hub_tunnel_clear(&found);
    assert_int_equal(hub_store_tunnel_find_public(f->st, "web", &found), CN_ENOTFOUND);

    /* Deleting the agent releases its tunnels' names and ports too. */
    assert_int_equal(hub_store_agent_delete(f->st, A.id, aa.id), 0);
    assert_int_equal(hub_store_tunnel_create(f->st, B.id, &sbp, NULL, NULL), HUB_ECONFLICT);

    /* After the hold, they are free for anyone. */
    f->clock.now += HUB_RELEASE_HOLD_DEFAULT_MS + 1;
    assert_int_equal(hub_store_tunnel_create(f->st, B.id, &sb, NULL, NULL), 0);
    assert_int_equal(hub_store_tunnel_create(f->st, B.id, &sbp, NULL, NULL), 0);
    hub_tunnel_clear(&t);
}

static void test_tunnel_cap(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    hub_agent_t a;
    mk_agent(f, &ws, &a);
    const char *names[] = {"t1", "t2", "t3"};
    for (int i = 0; i < 3; i++) {
        hub_tunnel_spec_t sp = spec_for(a.id, names[i]);
        sp.max_tunnels = 2;
        assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, NULL, NULL),
                         i < 2 ? 0 : CN_EEXHAUSTED);
    }
    assert_string_equal(hub_store_errmsg(f->st),
                        "tunnels: this workspace already has the maximum of 2 tunnels");
    size_t n = 0;
    assert_int_equal(hub_store_tunnel_count(f->st, ws.id, &n), 0);
    assert_int_equal(n, 2);
}

/* An agent holds at most HUB_TUNNELS_PER_AGENT_MAX tunnels, whoever makes
 * them: the store counts them in the insert's own transaction, so no caller
 * (the API, another hub on the database, a future import) gets past it, and
 * a caller's max_per_agent can lower the cap but never lift it. */
static void test_tunnel_cap_per_agent(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    hub_agent_t a, b;
    mk_agent(f, &ws, &a);
    mk_agent(f, &ws, &b);
    assert_int_equal(hub_store_tx_begin(f->st), 0);
    int rc = 0;
    for (int i = 0; rc == 0 && i < HUB_TUNNELS_PER_AGENT_MAX; i++) {
        char name[16];
        snprintf(name, sizeof(name), "t%d", i);
        hub_tunnel_spec_t sp = spec_for(a.id, name);
        rc = hub_store_tunnel_create(f->st, ws.id, &sp, NULL, NULL);
    }
    assert_int_equal(hub_store_tx_end(f->st, rc), 0);
    size_t n = 0;
    assert_int_equal(hub_store_tunnel_count_agent(f->st, ws.id, a.id, &n), 0);
    assert_int_equal(n, HUB_TUNNELS_PER_AGENT_MAX);

    hub_tunnel_spec_t sp = spec_for(a.id, "one-more");
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, NULL, NULL), CN_EEXHAUSTED);
    char want[96];
    snprintf(want, sizeof(want), "agentId: this agent already has the maximum of %d tunnels",
             HUB_TUNNELS_PER_AGENT_MAX);
    assert_string_equal(hub_store_errmsg(f->st), want);
    sp.max_per_agent = 2 * HUB_TUNNELS_PER_AGENT_MAX; /* cannot lift it */
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, NULL, NULL), CN_EEXHAUSTED);
    assert_int_equal(hub_store_tunnel_count_agent(f->st, ws.id, a.id, &n), 0);
    assert_int_equal(n, HUB_TUNNELS_PER_AGENT_MAX);

    /* Another agent of the workspace is counted on its own; a lower cap
     * holds for it. */
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "b%d", i);
        hub_tunnel_spec_t bs = spec_for(b.id, name);
        bs.max_per_agent = 2;
        assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &bs, NULL, NULL),
                         i < 2 ? 0 : CN_EEXHAUSTED);
    }
    assert_int_equal(hub_store_tunnel_count_agent(f->st, ws.id, b.id, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(hub_store_tunnel_count_agent(f->st, ws.id, "not-a-uuid", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(hub_store_tunnel_count(f->st, ws.id, &n), 0);
    assert_int_equal(n, HUB_TUNNELS_PER_AGENT_MAX + 2);
}

static void test_tunnel_list_filters(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    hub_agent_t x, y;
    mk_agent(f, &ws, &x);
    mk_agent(f, &ws, &y);
    hub_tunnel_t t1, t2, t3;
    mk_tunnel(f, &ws, &x, "t1", &t1);
    f->clock.now += 1;
    mk_tunnel(f, &ws, &x, "t2", &t2);
    f->clock.now += 1;
    mk_tunnel(f, &ws, &y, "t3", &t3);
    hub_tunnel_update_t up = {.fields = HUB_TUNNEL_SET_STATUS, .status = HUB_TUNNEL_ACTIVE};
    assert_int_equal(hub_store_tunnel_update(f->st, ws.id, t2.id, &up, NULL), 0);
    assert_int_equal(hub_store_tunnel_update(f->st, ws.id, t3.id, &up, NULL), 0);

    static const struct {
        bool by_agent_x, by_agent_y, by_status;
        enum hub_tunnel_status status;
        const char *expect; /* names in order */
    } cases[] = {
        {false, false, false, 0, "t1,t2,t3"},
        {true, false, false, 0, "t1,t2"},
        {false, true, false, 0, "t3"},
        {false, false, true, HUB_TUNNEL_ACTIVE, "t2,t3"},
        {false, false, true, HUB_TUNNEL_CONNECTING, "t1"},
        {true, false, true, HUB_TUNNEL_ACTIVE, "t2"},
        {false, true, true, HUB_TUNNEL_PAUSED, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hub_tunnel_filter_t fl = {
            .agent_id = cases[i].by_agent_x   ? x.id
                        : cases[i].by_agent_y ? y.id
                                              : NULL,
            .by_status = cases[i].by_status,
            .status = cases[i].status,
        };
        hub_tunnel_list_t l;
        assert_int_equal(hub_store_tunnel_list(f->st, ws.id, &fl, &l), 0);
        char got[64] = "";
        for (size_t j = 0; j < l.count; j++) {
            if (j)
                strcat(got, ",");
            strcat(got, l.items[j].name);
        }
        assert_string_equal(got, cases[i].expect);
        hub_tunnel_list_free(&l);
    }
    hub_tunnel_filter_t unknown = {.agent_id = "00000000-0000-4000-8000-000000000000"};
    hub_tunnel_list_t l;
    assert_int_equal(hub_store_tunnel_list(f->st, ws.id, &unknown, &l), 0);
    assert_int_equal(l.count, 0);
    hub_tunnel_filter_t bad = {.by_status = true, .status = (enum hub_tunnel_status)42};
    assert_int_equal(hub_store_tunnel_list(f->st, ws.id, &bad, &l), CN_EINVAL);
    hub_tunnel_clear(&t1);
    hub_tunnel_clear(&t2);
    hub_tunnel_clear(&t3);
}

static void test_tunnel_update_fields(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    hub_agent_t a;
    mk_agent(f, &ws, &a);
    hub_tunnel_t t, u;
    mk_tunnel(f, &ws, &a, "before", &t);

    f->clock.now = T0 + MINUTE;
    hub_tunnel_update_t up = {
        .fields = HUB_TUNNEL_SET_NAME | HUB_TUNNEL_SET_STATUS | HUB_TUNNEL_SET_METADATA |
                  HUB_TUNNEL_SET_LAST_ERROR | HUB_TUNNEL_SET_CONNECTED_AT |
                  HUB_TUNNEL_SET_CONNECTION_STRING,
        .name = "after",
        .status = HUB_TUNNEL_ERROR,
        .metadata = "{\"owner\": \"ana\", \"tags\": [\"x\"]}",
        .last_error = "dial 127.0.0.1:5432:\tconnection refused\n\x01",
        .connected_at = T0 + 30000,
        .connection_string = "postgresql://127.0.0.1:15432/postgres",
    };
    assert_int_equal(hub_store_tunnel_update(f->st, ws.id, t.id, &up, &u), 0);
    assert_string_equal(u.name, "after");
    assert_int_equal(u.status, HUB_TUNNEL_ERROR);
    assert_string_equal(u.metadata, "{\"owner\":\"ana\",\"tags\":[\"x\"]}");
    assert_string_equal(u.last_error, "dial 127.0.0.1:5432: connection refused  ");
    assert_int_equal(u.connected_at, T0 + 30000);
    assert_string_equal(u.connection_string, "postgresql://127.0.0.1:15432/postgres");
    assert_int_equal(u.updated_at, T0 + MINUTE);
    assert_int_equal(u.created_at, T0);
    assert_string_equal(u.target_host, "127.0.0.1"); /* untouched */
    hub_tunnel_clear(&u);

    hub_tunnel_t g;
    assert_int_equal(hub_store_tunnel_get_by_name(f->st, ws.id, "after", &g), 0);
    assert_string_equal(g.id, t.id);
    assert_string_equal(g.last_error, "dial 127.0.0.1:5432: connection refused  ");
    hub_tunnel_clear(&g);
    assert_int_equal(hub_store_tunnel_get_by_name(f->st, ws.id, "before", &g), CN_ENOTFOUND);

    /* Only the selected fields change; NULL clears lastError. */
    f->clock.now = T0 + 2 * MINUTE;
    hub_tunnel_update_t up2 = {.fields = HUB_TUNNEL_SET_STATUS | HUB_TUNNEL_SET_LAST_ERROR,
                               .status = HUB_TUNNEL_ACTIVE};
    assert_int_equal(hub_store_tunnel_update(f->st, ws.id, t.id, &up2, &u), 0);
    assert_int_equal(u.status, HUB_TUNNEL_ACTIVE);
    assert_null(u.last_error);
    assert_string_equal(u.name, "after");
    assert_string_equal(u.metadata, "{\"owner\":\"ana\",\"tags\":[\"x\"]}");
    assert_int_equal(u.updated_at, T0 + 2 * MINUTE);
    hub_tunnel_clear(&u);

    /* Long lastError is cut on a character boundary. */
    char big[HUB_LAST_ERROR_MAX + 10];
    memset(big, 'e', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big + HUB_LAST_ERROR_MAX - 1, "\xc3\xa9", 2);
    hub_tunnel_update_t up3 = {.fields = HUB_TUNNEL_SET_LAST_ERROR, .last_error = big};
    assert_int_equal(hub_store_tunnel_update(f->st, ws.id, t.id, &up3, &u), 0);
    assert_int_equal(strlen(u.last_error), HUB_LAST_ERROR_MAX - 1);
    hub_tunnel_clear(&u);

    hub_tunnel_update_t bad = {.fields = HUB_TUNNEL_SET_METADATA, .metadata = "\"str\""};
    assert_int_equal(hub_store_tunnel_update(f->st, ws.id, t.id, &bad, NULL), CN_EINVAL);
    assert_non_null(strstr(hub_store_errmsg(f->st), "metadata"));
    hub_tunnel_update_t bad2 = {.fields = HUB_TUNNEL_SET_STATUS, .status = 17};
    assert_int_equal(hub_store_tunnel_update(f->st, ws.id, t.id, &bad2, NULL), CN_EINVAL);

    assert_int_equal(hub_store_tunnel_delete(f->st, ws.id, t.id), 0);
    assert_int_equal(hub_store_tunnel_delete(f->st, ws.id, t.id), CN_ENOTFOUND);
    assert_int_equal(hub_store_tunnel_update(f->st, ws.id, t.id, &up2, NULL), CN_ENOTFOUND);
    hub_tunnel_clear(&t);
}

static void test_tunnels_due_to_expire(void **state)
{
    fx_t *f = *state;
    hub_workspace_t A, B;
    mk_ws(f, "a", &A);
    mk_ws(f, "b", &B);
    hub_agent_t aa, bb;
    mk_agent(f, &A, &aa);
    mk_agent(f, &B, &bb);
    hub_tunnel_spec_t s1 = spec_for(aa.id, "short");
    s1.ttl_ms = MINUTE;
    hub_tunnel_spec_t s2 = spec_for(bb.id, "longer");
    s2.ttl_ms = 2 * MINUTE;
    hub_tunnel_spec_t s3 = spec_for(aa.id, "forever");
    hub_tunnel_t t1, t2;
    assert_int_equal(hub_store_tunnel_create(f->st, A.id, &s1, &t1, NULL), 0);
    assert_int_equal(hub_store_tunnel_create(f->st, B.id, &s2, &t2, NULL), 0);
    assert_int_equal(hub_store_tunnel_create(f->st, A.id, &s3, NULL, NULL), 0);

    hub_tunnel_list_t l;
    assert_int_equal(hub_store_tunnel_list_expired(f->st, 0, &l), 0);
    assert_int_equal(l.count, 0);
    f->clock.now = T0 + 90000;
    assert_int_equal(hub_store_tunnel_list_expired(f->st, 0, &l), 0);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].id, t1.id);
    hub_tunnel_list_free(&l);

    hub_tunnel_update_t up = {.fields = HUB_TUNNEL_SET_STATUS, .status = HUB_TUNNEL_EXPIRED};
    assert_int_equal(hub_store_tunnel_update(f->st, A.id, t1.id, &up, NULL), 0);
    assert_int_equal(hub_store_tunnel_list_expired(f->st, 0, &l), 0);
    assert_int_equal(l.count, 0);

    f->clock.now = T0 + 10 * MINUTE;
    assert_int_equal(hub_store_tunnel_list_expired(f->st, 0, &l), 0);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].workspace_id, B.id); /* hub-wide */
    hub_tunnel_list_free(&l);
    hub_tunnel_list_free(&l);
    hub_tunnel_clear(&t1);
    hub_tunnel_clear(&t2);
}

static void test_edge_lookups(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    hub_agent_t a;
    mk_agent(f, &ws, &a);
    hub_tunnel_spec_t pub = spec_for(a.id, "site");
    pub.is_public = true;
    pub.protocol = HUB_PROTO_HTTP;
    hub_tunnel_spec_t tcp = spec_for(a.id, "pg");
    tcp.is_public = true;
    tcp.hub_port = 21000;
    hub_tunnel_spec_t priv = spec_for(a.id, "private");
    hub_tunnel_t t1, t2, g;
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &pub, &t1, NULL), 0);
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &tcp, &t2, NULL), 0);
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &priv, NULL, NULL), 0);

    assert_int_equal(hub_store_tunnel_find_public(f->st, "site", &g), 0);
    assert_string_equal(g.id, t1.id);
    hub_tunnel_clear(&g);
    assert_int_equal(hub_store_tunnel_find_public(f->st, "private", &g), CN_ENOTFOUND);
    assert_int_equal(hub_store_tunnel_find_public(f->st, "nope", &g), CN_ENOTFOUND);
    assert_int_equal(hub_store_tunnel_find_by_hub_port(f->st, 21000, &g), 0);
    assert_string_equal(g.id, t2.id);
    hub_tunnel_clear(&g);
    assert_int_equal(hub_store_tunnel_find_by_hub_port(f->st, 21001, &g), CN_ENOTFOUND);
    assert_int_equal(hub_store_tunnel_find_by_hub_port(f->st, 0, &g), CN_ENOTFOUND);
    hub_tunnel_clear(&t1);
    hub_tunnel_clear(&t2);
}

/* ---- events ------------------------------------------------------------ */

static void test_events_filters(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws, other;
    mk_ws(f, "default", &ws);
    mk_ws(f, "other", &other);
    const char *t1 = "11111111-1111-4111-8111-111111111111";
    const char *t2 = "22222222-2222-4222-8222-222222222222";
    const char *ag = "33333333-3333-4333-8333-333333333333";
    struct {
        int64_t at;
        const char *type, *tunnel, *agent;
    } evs[] = {
        {T0, "agent.connected", NULL, ag},       {T0 + 1000, "tunnel.created", t1, ag},
        {T0 + 2000, "tunnel.created", t2, ag},   {T0 + 3000, "tunnel.status_changed", t1, NULL},
        {T0 + 4000, "tunnel.deleted", t2, NULL},
    };
    int64_t ids[5];
    for (int i = 0; i < 5; i++) {
        f->clock.now = evs[i].at;
        hub_event_spec_t sp = {.type = evs[i].type,
                               .tunnel_id = evs[i].tunnel,
                               .agent_id = evs[i].agent,
                               .data = "{\"i\": 1}"};
        assert_int_equal(hub_store_event_append(f->st, ws.id, &sp, &ids[i]), 0);
        if (i)
            assert_true(ids[i] > ids[i - 1]);
    }
    f->clock.now = T0 + 500;
    assert_int_equal(hub_store_event_append(f->st, other.id,
                                            &(hub_event_spec_t){.type = "agent.connected"}, NULL),
                     0);

    hub_event_list_t l;
    assert_int_equal(hub_store_event_list(f->st, ws.id, NULL, &l), 0);
    assert_int_equal(l.count, 5);
    assert_int_equal(l.items[0].id, ids[0]);
    assert_string_equal(l.items[0].type, "agent.connected");
    assert_string_equal(l.items[0].tunnel_id, "");
    assert_string_equal(l.items[0].agent_id, ag);
    assert_string_equal(l.items[1].data, "{\"i\":1}");
    assert_int_equal(l.items[4].created_at, T0 + 4000);
    hub_event_list_free(&l);

    hub_event_filter_t by_tunnel = {.tunnel_id = t1};
    assert_int_equal(hub_store_event_list(f->st, ws.id, &by_tunnel, &l), 0);
    assert_int_equal(l.count, 2);
    assert_int_equal(l.items[0].id, ids[1]);
    assert_int_equal(l.items[1].id, ids[3]);
    hub_event_list_free(&l);

    hub_event_filter_t since = {.since = T0 + 2000};
    assert_int_equal(hub_store_event_list(f->st, ws.id, &since, &l), 0);
    assert_int_equal(l.count, 3);
    assert_int_equal(l.items[0].id, ids[2]);
    hub_event_list_free(&l);

    hub_event_filter_t both = {.tunnel_id = t2, .since = T0 + 2500};
    assert_int_equal(hub_store_event_list(f->st, ws.id, &both, &l), 0);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].type, "tunnel.deleted");
    hub_event_list_free(&l);

    hub_event_filter_t after = {.has_after = true, .after_id = ids[3]};
    assert_int_equal(hub_store_event_list(f->st, ws.id, &after, &l), 0);
    assert_int_equal(l.count, 1);
    assert_int_equal(l.items[0].id, ids[4]);
    hub_event_list_free(&l);

    /* A cursor of 0 is a cursor: the first events, not the latest. */
    hub_event_filter_t from_start = {.has_after = true, .after_id = 0, .limit = 2};
    assert_int_equal(hub_store_event_list(f->st, ws.id, &from_start, &l), 0);
    assert_int_equal(l.count, 2);
    assert_int_equal(l.items[0].id, ids[0]);
    assert_int_equal(l.items[1].id, ids[1]);
    hub_event_list_free(&l);

    /* Without a cursor, a limit gives the latest N, oldest first; with one,
     * the first N from there. */
    hub_event_filter_t latest = {.limit = 2};
    assert_int_equal(hub_store_event_list(f->st, ws.id, &latest, &l), 0);
    assert_int_equal(l.count, 2);
    assert_int_equal(l.items[0].id, ids[3]);
    assert_int_equal(l.items[1].id, ids[4]);
    hub_event_list_free(&l);
    hub_event_filter_t first = {.since = T0, .limit = 2};
    assert_int_equal(hub_store_event_list(f->st, ws.id, &first, &l), 0);
    assert_int_equal(l.count, 2);
    assert_int_equal(l.items[0].id, ids[0]);
    hub_event_list_free(&l);

    size_t pruned = 0;
    assert_int_equal(hub_store_event_prune(f->st, T0 + 2000, &pruned), 0);
    assert_int_equal(pruned, 3); /* two of ws, one of other */
    assert_int_equal(hub_store_event_list(f->st, ws.id, NULL, &l), 0);
    assert_int_equal(l.count, 3);
    hub_event_list_free(&l);
}

/* Retention, on the store's (fake) clock: events past the age go, then
 * each workspace keeps its newest max_per_ws, so a reconnect loop that
 * writes an event per attempt cannot fill the disk. */
static void test_event_retention(void **state)
{
    fx_t *f = *state;
    hub_workspace_t a, b;
    mk_ws(f, "a", &a);
    mk_ws(f, "b", &b);
    const hub_event_spec_t ev = {.type = "agent.connected"};
    for (int i = 0; i < 3; i++) /* old: 3 in a */
        assert_int_equal(hub_store_event_append(f->st, a.id, &ev, NULL), 0);
    f->clock.now = T0 + 31LL * 24 * HOUR;
    int64_t newest = 0;
    for (int i = 0; i < 5; i++) /* recent: 5 in a, 2 in b */
        assert_int_equal(hub_store_event_append(f->st, a.id, &ev, &newest), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(hub_store_event_append(f->st, b.id, &ev, NULL), 0);

    size_t pruned = 99;
    hub_event_retention_t keep_all = {0};
    assert_int_equal(hub_event_retain(f->st, &keep_all, &pruned), 0);
    assert_int_equal(pruned, 0);
    hub_event_retention_t r = {.days = 30, .max_per_ws = 3};
    assert_int_equal(hub_event_retain(f->st, &r, &pruned), 0);
    assert_int_equal(pruned, 3 + 2); /* the 3 old ones, then 2 over the cap in a */
    hub_event_list_t l;
    assert_int_equal(hub_store_event_list(f->st, a.id, NULL, &l), 0);
    assert_int_equal(l.count, 3);
    assert_int_equal(l.items[2].id, newest); /* the newest are the ones kept */
    for (size_t i = 0; i < l.count; i++)
        assert_true(l.items[i].created_at == T0 + 31LL * 24 * HOUR);
    hub_event_list_free(&l);
    assert_int_equal(hub_store_event_list(f->st, b.id, NULL, &l), 0);
    assert_int_equal(l.count, 2); /* under the cap: untouched */
    hub_event_list_free(&l);
    /* Idempotent. */
    assert_int_equal(hub_event_retain(f->st, &r, &pruned), 0);
    assert_int_equal(pruned, 0);
    assert_int_equal(hub_store_event_cap(f->st, 0, NULL), CN_EINVAL);
}

static void test_events_bounded_and_validated(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    mk_ws(f, "default", &ws);
    for (int i = 0; i < HUB_EVENTS_MAX + 50; i++)
        assert_int_equal(hub_store_event_append(
                             f->st, ws.id, &(hub_event_spec_t){.type = "tunnel.created"}, NULL),
                         0);
    hub_event_list_t l;
    hub_event_filter_t big = {.limit = 1000000};
    assert_int_equal(hub_store_event_list(f->st, ws.id, &big, &l), 0);
    assert_int_equal(l.count, HUB_EVENTS_MAX);
    hub_event_list_free(&l);
    assert_int_equal(hub_store_event_list(f->st, ws.id, NULL, &l), 0);
    assert_int_equal(l.count, HUB_EVENTS_DEFAULT);
    assert_string_equal(l.items[0].data, "{}");
    hub_event_list_free(&l);

    static const hub_event_spec_t bad[] = {
        {.type = ""},
        {.type = "Tunnel.Created"},
        {.type = "a b"},
        {.type = "x", .data = "[]"},
        {.type = "x", .data = "{"},
        {.type = "x", .tunnel_id = "not-a-uuid"},
        {.type = "x", .agent_id = "not-a-uuid"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hub_store_event_append(f->st, ws.id, &bad[i], NULL), CN_EINVAL);
    assert_int_equal(hub_store_event_append(f->st, "00000000-0000-4000-8000-000000000000",
                                            &(hub_event_spec_t){.type = "x"}, NULL),
                     CN_ENOTFOUND);
}

/* ---- transactions ------------------------------------------------------- */

/* Makes every event insert fail inside the database, as a full disk or an
 * I/O error would, between a change and its event. */
#define FAIL_EVENTS                                                                                \
    "CREATE TRIGGER test_fail_events BEFORE INSERT ON events "                                     \
    "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"

static size_t count_events(fx_t *f, const hub_workspace_t *ws)
{
    hub_event_list_t el = {0};
    assert_int_equal(hub_store_event_list(f->st, ws->id, NULL, &el), 0);
    size_t n = el.count;
    hub_event_list_free(&el);
    return n;
}

static int change_and_event(fx_t *f, const hub_workspace_t *ws, const hub_agent_t *a,
                            const char *name)
{
    int rc = hub_store_tx_begin(f->st);
    if (rc < 0)
        return rc;
    hub_tunnel_spec_t sp = spec_for(a->id, name);
    hub_tunnel_t t = {0};
    rc = hub_store_tunnel_create(f->st, ws->id, &sp, &t, NULL);
    if (rc == 0)
        rc = hub_store_event_append(
            f->st, ws->id, &(hub_event_spec_t){.type = "tunnel.created", .tunnel_id = t.id}, NULL);
    hub_tunnel_clear(&t);
    return hub_store_tx_end(f->st, rc);
}

static void test_change_and_event_commit_together(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    hub_agent_t a;
    hub_tunnel_t t = {0};
    mk_ws(f, "w", &ws);
    mk_agent(f, &ws, &a);

    /* Both kept, across a restart. */
    assert_int_equal(change_and_event(f, &ws, &a, "kept"), 0);
    fx_reopen(f);
    assert_int_equal(hub_store_tunnel_get_by_name(f->st, ws.id, "kept", &t), 0);
    hub_tunnel_clear(&t);
    assert_int_equal(count_events(f, &ws), 1);

    /* The event fails in the database: the tunnel goes with it, and the
     * failure's message survives the rollback. */
    hub_test_sql(f->db, FAIL_EVENTS);
    assert_int_not_equal(change_and_event(f, &ws, &a, "lost"), 0);
    assert_non_null(strstr(hub_store_errmsg(f->st), "injected failure"));
    assert_int_equal(hub_store_tunnel_get_by_name(f->st, ws.id, "lost", &t), CN_ENOTFOUND);
    fx_reopen(f);
    assert_int_equal(hub_store_tunnel_get_by_name(f->st, ws.id, "lost", &t), CN_ENOTFOUND);
    assert_int_equal(count_events(f, &ws), 1);

    /* Writes after a rollback are not stuck in a dead transaction. */
    hub_test_sql(f->db, "DROP TRIGGER test_fail_events");
    assert_int_equal(change_and_event(f, &ws, &a, "after"), 0);
    fx_reopen(f);
    assert_int_equal(hub_store_tunnel_get_by_name(f->st, ws.id, "after", &t), 0);
    hub_tunnel_clear(&t);
    assert_int_equal(count_events(f, &ws), 2);
}

static void test_transactions_nest(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    hub_agent_t a;
    hub_tunnel_t t = {0};
    mk_ws(f, "w", &ws);
    mk_agent(f, &ws, &a);

    /* An inner level that fails undoes only itself; the outer commits. */
    assert_int_equal(hub_store_tx_begin(f->st), 0);
    mk_tunnel(f, &ws, &a, "outer", &t);
    hub_tunnel_clear(&t);
    assert_int_equal(hub_store_tx_begin(f->st), 0);
    mk_tunnel(f, &ws, &a, "inner", &t);
    hub_tunnel_clear(&t);
    assert_int_equal(hub_store_tx_end(f->st, CN_EINVAL), CN_EINVAL);
    assert_int_equal(hub_store_tx_end(f->st, 0), 0);
    fx_reopen(f);
    assert_int_equal(hub_store_tunnel_get_by_name(f->st, ws.id, "outer", &t), 0);
    hub_tunnel_clear(&t);
    assert_int_equal(hub_store_tunnel_get_by_name(f->st, ws.id, "inner", &t), CN_ENOTFOUND);

    /* A committed inner level is still undone by the outer rollback; a
     * store call's own failure (a taken name) inside leaves the rest. */
    assert_int_equal(hub_store_tx_begin(f->st), 0);
    assert_int_equal(hub_store_tx_begin(f->st), 0);
    mk_tunnel(f, &ws, &a, "inner2", &t);
    hub_tunnel_clear(&t);
    assert_int_equal(hub_store_tx_end(f->st, 0), 0);
    hub_tunnel_spec_t dup = spec_for(a.id, "outer");
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &dup, NULL, NULL), HUB_ECONFLICT);
    assert_int_equal(hub_store_tunnel_get_by_name(f->st, ws.id, "inner2", &t), 0);
    hub_tunnel_clear(&t);
    assert_int_equal(hub_store_tx_end(f->st, CN_EIO), CN_EIO);
    assert_int_equal(hub_store_tunnel_get_by_name(f->st, ws.id, "inner2", &t), CN_ENOTFOUND);

    /* An end without a begin is a caller's bug, refused. */
    assert_int_equal(hub_store_tx_end(f->st, 0), CN_EINVAL);
}

/* The protocol plugin of a tunnel: set at creation, reported later
 * (protocol auto), cleared, kept across a reopen; bad names refused. */
static void test_tunnel_plugin(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    hub_agent_t a;
    hub_tunnel_t t = {0};
    mk_ws(f, "plugins", &ws);
    mk_agent(f, &ws, &a);
    hub_tunnel_spec_t sp = spec_for(a.id, "db");
    sp.plugin = "postgresql";
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, &t, NULL), 0);
    assert_string_equal(t.plugin, "postgresql");
    char id[HUB_ID_SIZE];
    memcpy(id, t.id, sizeof(id));
    hub_tunnel_clear(&t);

    mk_tunnel(f, &ws, &a, "auto", &t);
    assert_string_equal(t.plugin, "");
    hub_tunnel_update_t u = {.fields = HUB_TUNNEL_SET_PLUGIN, .plugin = "my_proto-2"};
    char auto_id[HUB_ID_SIZE];
    memcpy(auto_id, t.id, sizeof(auto_id));
    hub_tunnel_clear(&t);
    assert_int_equal(hub_store_tunnel_update(f->st, ws.id, auto_id, &u, &t), 0);
    assert_string_equal(t.plugin, "my_proto-2");
    hub_tunnel_clear(&t);

    const char *bad[] = {"Postgres", "1x", "a b", "abcdefghijklmnopqrstuvwxyz0123456"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        u.plugin = bad[i];
        assert_int_equal(hub_store_tunnel_update(f->st, ws.id, auto_id, &u, NULL), CN_EINVAL);
        sp.name = "bad";
        sp.plugin = bad[i];
        assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, NULL, NULL), CN_EINVAL);
    }
    fx_reopen(f);
    assert_int_equal(hub_store_tunnel_get(f->st, ws.id, id, &t), 0);
    assert_string_equal(t.plugin, "postgresql");
    hub_tunnel_clear(&t);
    u.plugin = NULL;
    assert_int_equal(hub_store_tunnel_update(f->st, ws.id, auto_id, &u, &t), 0);
    assert_string_equal(t.plugin, "");
    hub_tunnel_clear(&t);
}

/* ---- webhooks ------------------------------------------------------------ */

static void mk_webhook(fx_t *f, const hub_workspace_t *ws, const char *events, hub_webhook_t *w,
                       char secret[static HUB_WEBHOOK_SECRET_SIZE])
{
    int rc =
        hub_store_webhook_create(f->st, ws->id, "http://127.0.0.1:9/hook", events, 0, secret, w);
    if (rc != 0)
        fail_msg("webhook_create: %s", hub_store_errmsg(f->st));
}

static void event(fx_t *f, const hub_workspace_t *ws, const char *type)
{
    hub_event_spec_t sp = {.type = type};
    assert_int_equal(hub_store_event_append(f->st, ws->id, &sp, NULL), 0);
}

static size_t log_count(fx_t *f, const hub_workspace_t *ws, const hub_webhook_t *w,
                        enum hub_delivery_state state)
{
    hub_delivery_list_t l = {0};
    assert_int_equal(hub_store_delivery_list(f->st, ws->id, w->id, HUB_EVENTS_MAX, &l), 0);
    size_t n = 0;
    for (size_t i = 0; i < l.count; i++)
        n += l.items[i].state == state;
    hub_delivery_list_free(&l);
    return n;
}

/* The secret is shown once, stored sealed (not in plaintext anywhere in the
 * files), opens with the hub key, and does not open in another row. */
static void test_webhook_secret_sealed(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    hub_webhook_t a, b;
    char sa[HUB_WEBHOOK_SECRET_SIZE], sb[HUB_WEBHOOK_SECRET_SIZE], out[HUB_WEBHOOK_SECRET_SIZE];
    mk_ws(f, "w", &ws);
    mk_webhook(f, &ws, NULL, &a, sa);
    mk_webhook(f, &ws, NULL, &b, sb);
    assert_int_equal(strlen(sa), HUB_WEBHOOK_SECRET_LEN);
    assert_int_equal(strncmp(sa, HUB_WEBHOOK_SECRET_PREFIX, 6), 0);
    assert_string_not_equal(sa, sb);
    assert_string_equal(a.events, "[\"*\"]");
    assert_true(a.enabled);

    fx_reopen(f);
    assert_int_equal(hub_store_webhook_secret(f->st, ws.id, a.id, out), 0);
    assert_string_equal(out, sa);
    assert_false(db_files_contain(f, sa + 6, 43));
    assert_false(db_files_contain(f, sb + 6, 43));

    /* A sealed secret copied into another row does not open there. */
    char sql[512];
    snprintf(sql, sizeof(sql),
             "UPDATE webhooks SET secret = (SELECT secret FROM webhooks WHERE id = '%s') "
             "WHERE id = '%s'",
             a.id, b.id);
    hub_test_sql(f->db, sql);
    assert_int_equal(hub_store_webhook_secret(f->st, ws.id, b.id, out), CN_EAUTH);
    assert_string_equal(out, "");

    /* Another workspace sees none of it. */
    hub_workspace_t other;
    hub_webhook_t w;
    mk_ws(f, "other", &other);
    assert_int_equal(hub_store_webhook_secret(f->st, other.id, a.id, out), CN_ENOTFOUND);
    assert_int_equal(hub_store_webhook_get(f->st, other.id, a.id, &w), CN_ENOTFOUND);
    assert_int_equal(hub_store_webhook_delete(f->st, other.id, a.id), CN_ENOTFOUND);
    hub_webhook_list_t l = {0};
    assert_int_equal(hub_store_webhook_list(f->st, other.id, &l), 0);
    assert_int_equal(l.count, 0);
    assert_int_equal(hub_store_webhook_list(f->st, ws.id, &l), 0);
    assert_int_equal(l.count, 2);
    hub_webhook_list_free(&l);
}

/* Each event queues one delivery per enabled webhook whose filter selects
 * it, in the event's transaction: a rolled-back event queues nothing. */
static void test_webhook_fanout(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws, other;
    hub_webhook_t all, tunnels, one, off, elsewhere;
    char s[HUB_WEBHOOK_SECRET_SIZE];
    mk_ws(f, "w", &ws);
    mk_ws(f, "other", &other);
    mk_webhook(f, &ws, "[\"*\"]", &all, s);
    mk_webhook(f, &ws, "[\"tunnel.*\"]", &tunnels, s);
    mk_webhook(f, &ws, "[\"agent.connected\", \"tunnel.deleted\"]", &one, s);
    mk_webhook(f, &ws, NULL, &off, s);
    mk_webhook(f, &other, NULL, &elsewhere, s);
    assert_int_equal(hub_store_webhook_set_enabled(f->st, ws.id, off.id, false, &off), 0);
    assert_false(off.enabled);
    assert_true(off.disabled_at > 0);

    event(f, &ws, "tunnel.created");
    event(f, &ws, "agent.connected");
    event(f, &ws, "agent.created");
    event(f, &ws, "tunnel.deleted");
    /* Rolled back with its caller's transaction: no deliveries either. */
    assert_int_equal(hub_store_tx_begin(f->st), 0);
    event(f, &ws, "tunnel.updated");
    assert_int_equal(hub_store_tx_end(f->st, CN_EIO), CN_EIO);

    assert_int_equal(log_count(f, &ws, &all, HUB_DELIVERY_PENDING), 4);
    assert_int_equal(log_count(f, &ws, &tunnels, HUB_DELIVERY_PENDING), 2);
    assert_int_equal(log_count(f, &ws, &one, HUB_DELIVERY_PENDING), 2);
    assert_int_equal(log_count(f, &ws, &off, HUB_DELIVERY_PENDING), 0);
    assert_int_equal(log_count(f, &other, &elsewhere, HUB_DELIVERY_PENDING), 0);
    size_t pending = 0;
    assert_int_equal(hub_store_delivery_pending_count(f->st, &pending), 0);
    assert_int_equal(pending, 8);
    hub_delivery_list_t l = {0};
    assert_int_equal(hub_store_delivery_list(f->st, other.id, all.id, 0, &l), CN_ENOTFOUND);

    /* The queue survives a restart; oldest first, with its event. */
    fx_reopen(f);
    hub_delivery_t d;
    hub_event_t e = {0};
    assert_int_equal(hub_store_delivery_next(f->st, tunnels.id, &d, &e), 0);
    assert_string_equal(d.event_type, "tunnel.created");
    assert_string_equal(e.type, "tunnel.created");
    assert_int_equal(e.id, d.event_id);
    assert_string_equal(e.workspace_id, ws.id);
    assert_non_null(e.data);
    hub_event_clear(&e);

    /* Deleting a webhook takes its queue and log. */
    assert_int_equal(hub_store_webhook_delete(f->st, ws.id, one.id), 0);
    assert_int_equal(hub_store_delivery_pending_count(f->st, &pending), 0);
    assert_int_equal(pending, 6);
    assert_int_equal(hub_store_webhook_get(f->st, ws.id, one.id, &one), CN_ENOTFOUND);
}

/* The worker's cycle: due webhooks, the next delivery, outcomes; failures
 * delay the webhook and can disable it; a success resets it; re-enabling
 * clears the failures. */
static void test_webhook_delivery_cycle(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    hub_webhook_t w, got;
    char s[HUB_WEBHOOK_SECRET_SIZE];
    mk_ws(f, "w", &ws);
    mk_webhook(f, &ws, NULL, &w, s);
    hub_webhook_list_t due = {0};
    assert_int_equal(hub_store_webhook_due(f->st, 0, &due), 0);
    assert_int_equal(due.count, 0); /* nothing queued */
    event(f, &ws, "tunnel.created");
    event(f, &ws, "tunnel.deleted");
    assert_int_equal(hub_store_webhook_due(f->st, 0, &due), 0);
    assert_int_equal(due.count, 1);
    assert_string_equal(due.items[0].id, w.id);
    hub_webhook_list_free(&due);

    hub_delivery_t d;
    hub_event_t e = {0};
    assert_int_equal(hub_store_delivery_next(f->st, w.id, &d, &e), 0);
    hub_event_clear(&e);
    hub_delivery_outcome_t fail = {.state = HUB_DELIVERY_PENDING,
                                   .status = 503,
                                   .error = "HTTP 503\nfrom receiver",
                                   .attempted = true,
                                   .retry_at = T0 + MINUTE};
    assert_int_equal(hub_store_delivery_record(f->st, w.id, d.id, &fail), 0);
    assert_int_equal(hub_store_webhook_get(f->st, ws.id, w.id, &got), 0);
    assert_int_equal(got.failures, 1);
    assert_int_equal(got.retry_at, T0 + MINUTE);
    assert_string_equal(got.last_error, "HTTP 503 from receiver");
    assert_true(got.enabled);
    /* Not due before retry_at, due after. */
    assert_int_equal(hub_store_webhook_due(f->st, 0, &due), 0);
    assert_int_equal(due.count, 0);
    f->clock.now = T0 + MINUTE;
    assert_int_equal(hub_store_webhook_due(f->st, 0, &due), 0);
    assert_int_equal(due.count, 1);
    hub_webhook_list_free(&due);

    /* The same delivery comes next again (order is kept). */
    hub_delivery_t d2;
    assert_int_equal(hub_store_delivery_next(f->st, w.id, &d2, &e), 0);
    hub_event_clear(&e);
    assert_int_equal(d2.id, d.id);
    assert_int_equal(d2.attempts, 1);
    assert_int_equal(d2.last_status, 503);
    hub_delivery_outcome_t ok = {.state = HUB_DELIVERY_SENT, .status = 200, .attempted = true};
    assert_int_equal(hub_store_delivery_record(f->st, w.id, d.id, &ok), 0);
    assert_int_equal(hub_store_webhook_get(f->st, ws.id, w.id, &got), 0);
    assert_int_equal(got.failures, 0);
    assert_int_equal(got.retry_at, HUB_TIME_NONE);
    assert_int_equal(got.last_success_at, T0 + MINUTE);
    /* A finished delivery cannot be recorded again. */
    assert_int_equal(hub_store_delivery_record(f->st, w.id, d.id, &ok), CN_ENOTFOUND);

    /* The second one fails and disables the webhook: nothing is due, new
     * events are not queued, the queued one waits. */
    assert_int_equal(hub_store_delivery_next(f->st, w.id, &d, &e), 0);
    hub_event_clear(&e);
    fail.disable = true;
    fail.status = 0;
    fail.error = "connection refused";
    assert_int_equal(hub_store_delivery_record(f->st, w.id, d.id, &fail), 0);
    assert_int_equal(hub_store_webhook_get(f->st, ws.id, w.id, &got), 0);
    assert_false(got.enabled);
    assert_int_equal(got.disabled_at, T0 + MINUTE);
    event(f, &ws, "tunnel.updated");
    f->clock.now = T0 + HOUR;
    assert_int_equal(hub_store_webhook_due(f->st, 0, &due), 0);
    assert_int_equal(due.count, 0);
    assert_int_equal(log_count(f, &ws, &w, HUB_DELIVERY_PENDING), 1);
    assert_int_equal(log_count(f, &ws, &w, HUB_DELIVERY_SENT), 1);

    /* Enabled again: due at once, failures cleared. */
    assert_int_equal(hub_store_webhook_set_enabled(f->st, ws.id, w.id, true, &got), 0);
    assert_true(got.enabled);
    assert_int_equal(got.failures, 0);
    assert_int_equal(got.disabled_at, HUB_TIME_NONE);
    assert_int_equal(hub_store_webhook_due(f->st, 0, &due), 0);
    assert_int_equal(due.count, 1);
    hub_webhook_list_free(&due);

    /* A delivery whose event was pruned comes with no event and is dropped
     * without counting as an attempt. */
    hub_test_sql(f->db, "DELETE FROM events");
    assert_int_equal(hub_store_delivery_next(f->st, w.id, &d, &e), 0);
    assert_int_equal(e.id, 0);
    assert_null(e.data);
    hub_delivery_outcome_t drop = {.state = HUB_DELIVERY_DROPPED, .error = "event gone"};
    assert_int_equal(hub_store_delivery_record(f->st, w.id, d.id, &drop), 0);
    assert_int_equal(hub_store_delivery_next(f->st, w.id, &d, &e), CN_ENOTFOUND);
    hub_delivery_list_t l = {0};
    assert_int_equal(hub_store_delivery_list(f->st, ws.id, w.id, 1, &l), 0);
    assert_int_equal(l.count, 1); /* newest first, bounded by the limit */
    assert_int_equal(l.items[0].state, HUB_DELIVERY_DROPPED);
    assert_int_equal(l.items[0].attempts, 1); /* the failure before, not the drop */
    assert_string_equal(l.items[0].last_error, "event gone");
    hub_delivery_list_free(&l);
}

/* Bounds: a cap per workspace, invalid filters refused, a queue that
 * cannot grow without bound, a log that keeps only the newest rows. */
static void test_webhook_bounds(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    hub_webhook_t w;
    char s[HUB_WEBHOOK_SECRET_SIZE];
    mk_ws(f, "w", &ws);
    assert_int_equal(hub_store_webhook_create(f->st, ws.id, "http://h/", "[\"nope\"]", 0, s, &w),
                     CN_EINVAL);
    assert_string_equal(s, "");
    assert_int_equal(hub_store_webhook_create(f->st, ws.id, "http://h/", "{}", 0, s, &w),
                     CN_EINVAL);
    assert_int_equal(hub_store_webhook_create(f->st, ws.id, "", NULL, 0, s, &w), CN_EINVAL);
    assert_int_equal(hub_store_webhook_create(f->st, ws.id, "http://h/", NULL, 2, s, &w), 0);
    assert_int_equal(hub_store_webhook_create(f->st, ws.id, "http://h/", NULL, 2, s, NULL), 0);
    assert_int_equal(hub_store_webhook_create(f->st, ws.id, "http://h/", NULL, 2, s, NULL),
                     CN_EEXHAUSTED);

    for (int i = 0; i < 10; i++)
        event(f, &ws, "tunnel.created");
    size_t dropped = 0, pending = 0;
    /* Per webhook: the newest 4 pending stay, the 6 older are dropped. */
    assert_int_equal(hub_store_delivery_prune(f->st, 100, 4, &dropped), 0);
    assert_int_equal(dropped, 12);
    assert_int_equal(hub_store_delivery_pending_count(f->st, &pending), 0);
    assert_int_equal(pending, 8);
    assert_int_equal(log_count(f, &ws, &w, HUB_DELIVERY_DROPPED), 6);
    /* The log keeps the newest 2 finished rows per webhook. */
    assert_int_equal(hub_store_delivery_prune(f->st, 2, 4, &dropped), 0);
    assert_int_equal(dropped, 0);
    assert_int_equal(log_count(f, &ws, &w, HUB_DELIVERY_DROPPED), 2);
    assert_int_equal(log_count(f, &ws, &w, HUB_DELIVERY_PENDING), 4);
}

/* The main file's share_access_log as migration 4 created it (migration 7
 * moved the log into a file of its own), for the fixtures of versions 4-6. */
#define OLD_LOG_TABLE                                                                              \
    "CREATE TABLE share_access_log (id INTEGER PRIMARY KEY AUTOINCREMENT,"                         \
    " share_id TEXT NOT NULL REFERENCES shares(id) ON DELETE CASCADE, at INTEGER NOT NULL,"        \
    " method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL,"                          \
    " latency_ms INTEGER NOT NULL, client TEXT NOT NULL) STRICT;"                                  \
    "CREATE INDEX share_access_log_share ON share_access_log(share_id, id);"                       \
    "CREATE INDEX share_access_log_at ON share_access_log(at);"

/* A database of schema 3 (tunnels.plugin, before shares) migrates through 4
 * and 5: its tunnels keep their plugin, and they can be shared. The
 * version-3 file is this build's database with migrations 4 and 5's objects
 * taken out again. */
static void test_migration_3_to_shares(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    hub_agent_t a;
    hub_tunnel_t t = {0};
    mk_ws(f, "old", &ws);
    mk_agent(f, &ws, &a);
    hub_tunnel_spec_t sp = spec_for(a.id, "db");
    sp.plugin = "postgresql";
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, &t, NULL), 0);
    char id[HUB_ID_SIZE];
    memcpy(id, t.id, sizeof(id));
    hub_tunnel_clear(&t);
    hub_store_close(f->st);
    f->st = NULL;
    hub_test_sql(f->db, "DROP TABLE webhook_deliveries; DROP TABLE webhooks;"
                        "DROP TABLE shares;"
                        "DROP INDEX tunnels_workspace_id;"
                        "ALTER TABLE tunnels DROP COLUMN idle_timeout; PRAGMA user_version = 3;");

    fx_reopen(f);
    int v = 0;
    assert_int_equal(hub_store_db_version(f->st, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(hub_store_schema_version(), 7);
    assert_int_equal(hub_store_tunnel_get(f->st, ws.id, id, &t), 0);
    assert_string_equal(t.plugin, "postgresql");
    hub_tunnel_clear(&t);
    hub_share_spec_t ss = {.tunnel_id = id, .name = "s", .description = "", .rate_limit = 10};
    static hub_share_t sh;
    char token[HUB_SHARE_TOKEN_SIZE], pw[HUB_PASSWORD_SIZE];
    assert_int_equal(hub_store_share_create(f->st, ws.id, &ss, &sh, token, pw), 0);
    assert_string_equal(sh.tunnel_id, id);
}

/* A database of schema 4 (shares, before webhooks) migrates to 5: its
 * shares and their access log stay, and a new webhook receives the share
 * events that follow. The version-4 file is this build's database with
 * migration 5's tables taken out again. */
static void test_migration_4_to_webhooks(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    hub_agent_t a;
    hub_tunnel_t t = {0};
    mk_ws(f, "old", &ws);
    mk_agent(f, &ws, &a);
    hub_tunnel_spec_t sp = spec_for(a.id, "web");
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, &t, NULL), 0);
    hub_share_spec_t ss = {.tunnel_id = t.id, .name = "s", .description = "", .rate_limit = 10};
    static hub_share_t sh, found;
    char token[HUB_SHARE_TOKEN_SIZE], pw[HUB_PASSWORD_SIZE];
    assert_int_equal(hub_store_share_create(f->st, ws.id, &ss, &sh, token, pw), 0);
    hub_tunnel_clear(&t);
    hub_store_close(f->st);
    f->st = NULL;
    hub_test_sql(f->db, "DROP TABLE webhook_deliveries; DROP TABLE webhooks;" OLD_LOG_TABLE
                        "ALTER TABLE tunnels DROP COLUMN idle_timeout; PRAGMA user_version = 4;");

    fx_reopen(f);
    int v = 0;
    assert_int_equal(hub_store_db_version(f->st, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(hub_store_share_get(f->st, ws.id, sh.id, &found), 0);
    assert_string_equal(found.name, "s");

    hub_webhook_t w;
    char secret[HUB_WEBHOOK_SECRET_SIZE];
    mk_webhook(f, &ws, "[\"share.*\"]", &w, secret);
    event(f, &ws, "tunnel.updated");
    event(f, &ws, "share.revoked");
    hub_delivery_t d;
    hub_event_t e = {0};
    assert_int_equal(hub_store_delivery_next(f->st, w.id, &d, &e), 0);
    assert_string_equal(d.event_type, "share.revoked");
    hub_event_clear(&e);
}

/* Migration 6: tunnels of a version-5 database keep the hub's idle timeout
 * (NULL), and take one of their own afterwards; out-of-range values are
 * refused by the store and by the column's CHECK. */
static void test_migration_5_to_idle_timeout(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    hub_agent_t a;
    hub_tunnel_t t = {0};
    mk_ws(f, "old", &ws);
    mk_agent(f, &ws, &a);
    hub_tunnel_spec_t sp = spec_for(a.id, "db");
    sp.idle_timeout_set = true;
    sp.idle_timeout_s = HUB_IDLE_TIMEOUT_MAX + 1;
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, &t, NULL), CN_EINVAL);
    sp.idle_timeout_set = false;
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, &t, NULL), 0);
    assert_int_equal(t.idle_timeout_s, HUB_IDLE_TIMEOUT_DEFAULT);
    char id[HUB_ID_SIZE];
    memcpy(id, t.id, sizeof(id));
    hub_tunnel_clear(&t);
    hub_store_close(f->st);
    f->st = NULL;
    hub_test_sql(f->db, OLD_LOG_TABLE "ALTER TABLE tunnels DROP COLUMN idle_timeout;"
                                      "PRAGMA user_version = 5;");

    fx_reopen(f);
    int v = 0;
    assert_int_equal(hub_store_db_version(f->st, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(hub_store_tunnel_get(f->st, ws.id, id, &t), 0);
    assert_int_equal(t.idle_timeout_s, HUB_IDLE_TIMEOUT_DEFAULT);
    hub_tunnel_clear(&t);
    hub_tunnel_update_t upd = {.fields = HUB_TUNNEL_SET_IDLE_TIMEOUT, .idle_timeout_s = 30};
    assert_int_equal(hub_store_tunnel_update(f->st, ws.id, id, &upd, &t), 0);
    assert_int_equal(t.idle_timeout_s, 30);
    hub_tunnel_clear(&t);
    fx_reopen(f);
    assert_int_equal(hub_store_tunnel_get(f->st, ws.id, id, &t), 0);
    assert_int_equal(t.idle_timeout_s, 30);
    hub_tunnel_clear(&t);
    upd.idle_timeout_s = -2;
    assert_int_equal(hub_store_tunnel_update(f->st, ws.id, id, &upd, &t), CN_EINVAL);
    upd.idle_timeout_s = HUB_IDLE_TIMEOUT_DEFAULT;
    assert_int_equal(hub_store_tunnel_update(f->st, ws.id, id, &upd, &t), 0);
    assert_int_equal(t.idle_timeout_s, HUB_IDLE_TIMEOUT_DEFAULT);
    hub_tunnel_clear(&t);
}

/* Whether the main file has a table of that name. */
static bool main_has_table(const fx_t *f, const char *name)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(h, "SELECT count(*) FROM sqlite_master WHERE name = ?1", -1, &q, NULL),
        SQLITE_OK);
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    bool has = sqlite3_column_int(q, 0) > 0;
    sqlite3_finalize(q);
    sqlite3_close(h);
    return has;
}

/* Migration 7: the access log of a version-6 database moves into PATH-log
 * with its ids (pages and cursors stay right), the main file's table goes;
 * a copy repeated (a crash between the copy and the drop) adds nothing;
 * new rows are numbered after every id the old table handed out. */
static void test_migration_6_to_log_file(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws;
    hub_agent_t a;
    hub_tunnel_t t = {0};
    mk_ws(f, "old", &ws);
    mk_agent(f, &ws, &a);
    hub_tunnel_spec_t sp = spec_for(a.id, "web");
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, &t, NULL), 0);
    hub_share_spec_t ss = {.tunnel_id = t.id, .name = "s", .description = "", .rate_limit = 10};
    static hub_share_t sh;
    char token[HUB_SHARE_TOKEN_SIZE], pw[HUB_PASSWORD_SIZE];
    assert_int_equal(hub_store_share_create(f->st, ws.id, &ss, &sh, token, pw), 0);
    hub_tunnel_clear(&t);
    hub_store_close(f->st);
    f->st = NULL;
    char old[1024], logf[PATH_MAX + 32];
    snprintf(old, sizeof(old),
             OLD_LOG_TABLE "INSERT INTO share_access_log VALUES (5, '%s', %lld, 'GET', '/a', 200, "
                           "1, '10.0.0.1:1'), (9, '%s', %lld, 'POST', '/b', 201, 2, '10.0.0.2:2');"
                           "UPDATE sqlite_sequence SET seq = 12 WHERE name = 'share_access_log';"
                           "PRAGMA user_version = 6;",
             sh.id, (long long)T0, sh.id, (long long)T0 + 1);
    snprintf(logf, sizeof(logf), "%s-log", f->db);
    for (int round = 0; round < 2; round++) {
        /* Round 1: the copy already happened, the drop did not. */
        hub_test_sql(f->db, old);
        if (round == 0)
            assert_int_equal(unlink(logf), 0);
        fx_reopen(f);
        int v = 0;
        assert_int_equal(hub_store_db_version(f->st, &v), 0);
        assert_int_equal(v, 7);
        assert_false(main_has_table(f, "share_access_log"));
        assert_int_equal(hub_test_mode(logf), 0600);
        hub_share_log_list_t lg = {0};
        assert_int_equal(hub_store_share_log_list(f->st, ws.id, sh.id, 0, 10, &lg), 0);
        assert_int_equal(lg.count, 2);
        assert_int_equal(lg.items[0].id, 9);
        assert_string_equal(lg.items[0].path, "/b");
        assert_string_equal(lg.items[0].client, "10.0.0.2:2");
        assert_int_equal(lg.items[1].id, 5);
        assert_int_equal(lg.items[1].at, T0);
        hub_share_log_list_free(&lg);
        hub_store_close(f->st);
        f->st = NULL;
    }
    fx_reopen(f);
    hub_share_log_row_t r = {.at = T0 + 2, .method = "GET", .path = "/c", .status = 204};
    assert_int_equal(hub_store_share_log_append(f->st, sh.id, &r), 0);
    hub_share_log_list_t lg = {0};
    assert_int_equal(hub_store_share_log_list(f->st, ws.id, sh.id, 0, 10, &lg), 0);
    assert_int_equal(lg.count, 3);
    assert_int_equal(lg.items[0].id, 13); /* after AUTOINCREMENT's mark, 12 */
    hub_share_log_list_free(&lg);
}

/* Shares: the token is shown once and found by its keyed hash only; other
 * workspaces see nothing; revocation and expiry are recorded; the access
 * log pages newest first and is kept bounded. */
static void test_shares(void **state)
{
    fx_t *f = *state;
    hub_workspace_t ws, other;
    mk_ws(f, "default", &ws);
    mk_ws(f, "other", &other);
    hub_agent_t a;
    mk_agent(f, &ws, &a);
    hub_tunnel_spec_t sp = {.name = "web",
                            .agent_id = a.id,
                            .target_host = "127.0.0.1",
                            .target_port = 8080,
                            .protocol = HUB_PROTO_HTTP,
                            .is_public = true};
    hub_tunnel_t t;
    assert_int_equal(hub_store_tunnel_create(f->st, ws.id, &sp, &t, NULL), 0);

    const char *paths[] = {"/api/*", "/health"};
    hub_share_spec_t ss = {.tunnel_id = t.id,
                           .name = "tester",
                           .description = "d",
                           .methods = HUB_GET | HUB_POST,
                           .paths = paths,
                           .npaths = 2,
                           .rate_limit = 60,
                           .ttl_ms = HOUR,
                           .http_user = "bob"};
    static hub_share_t s, g;
    char token[HUB_SHARE_TOKEN_SIZE], pw[HUB_PASSWORD_SIZE];
    assert_int_equal(hub_store_share_create(f->st, ws.id, &ss, &s, token, pw), 0);
    assert_int_equal(strlen(token), HUB_SHARE_TOKEN_LEN);
    assert_int_equal(strspn(token, "abcdefghijklmnopqrstuvwxyz234567"), HUB_SHARE_TOKEN_LEN);
    assert_int_equal(s.expires_at, T0 + HOUR);
    assert_false(db_files_contain(f, token, strlen(token)));
    assert_false(db_files_contain(f, pw, strlen(pw)));
    assert_int_equal(hub_store_password_check(f->st, s.http_password_hash, pw), 0);

    assert_int_equal(hub_store_share_find_by_token(f->st, token, &g), 0);
    assert_string_equal(g.id, s.id);
    assert_int_equal(g.methods, HUB_GET | HUB_POST);
    assert_int_equal(g.npaths, 2);
    assert_string_equal(g.paths[1], "/health");
    token[0] = token[0] == 'a' ? 'b' : 'a';
    assert_int_equal(hub_store_share_find_by_token(f->st, token, &g), CN_ENOTFOUND);
    assert_int_equal(hub_store_share_find_by_token(f->st, "short", &g), CN_ENOTFOUND);
    assert_int_equal(hub_store_share_get(f->st, other.id, s.id, &g), CN_ENOTFOUND);
    hub_share_list_t l = {0};
    assert_int_equal(hub_store_share_list(f->st, other.id, NULL, &l), 0);
    assert_int_equal(l.count, 0);
    assert_int_equal(hub_store_share_list(f->st, ws.id, t.id, &l), 0);
    assert_int_equal(l.count, 1);
    hub_share_list_free(&l);

    /* A share of another workspace's tunnel cannot be made. */
    assert_int_equal(hub_store_share_create(f->st, other.id, &ss, NULL, token, pw), CN_ENOTFOUND);
    /* Bad patterns and limits are refused. */
    const char *bad[] = {"/api/../x"};
    hub_share_spec_t sb = ss;
    sb.paths = bad;
    sb.npaths = 1;
    assert_int_equal(hub_store_share_create(f->st, ws.id, &sb, NULL, token, pw), CN_EINVAL);
    sb = ss;
    sb.rate_limit = 1001;
    assert_int_equal(hub_store_share_create(f->st, ws.id, &sb, NULL, token, pw), CN_EINVAL);

    /* Expiry: listed once, until marked. */
    f->clock.now = T0 + HOUR;
    assert_int_equal(hub_store_share_list_expired(f->st, 0, &l), 0);
    assert_int_equal(l.count, 1);
    hub_share_list_free(&l);
    assert_int_equal(hub_store_share_mark_expired(f->st, ws.id, s.id), 0);
    assert_int_equal(hub_store_share_list_expired(f->st, 0, &l), 0);
    assert_int_equal(l.count, 0);

    /* Revocation, once. */
    bool changed = false;
    assert_int_equal(hub_store_share_revoke(f->st, ws.id, s.id, &g, &changed), 0);
    assert_true(changed);
    assert_int_equal(g.revoked_at, T0 + HOUR);
    assert_int_equal(hub_store_share_revoke(f->st, ws.id, s.id, NULL, &changed), 0);
    assert_false(changed);
    assert_int_equal(hub_store_share_revoke(f->st, other.id, s.id, NULL, &changed), CN_ENOTFOUND);

    /* The access log: newest first, paged by id, workspace-scoped. */
    for (int i = 0; i < 5; i++) {
        char path[32], client[32];
        snprintf(path, sizeof(path), "/api/%d", i);
        snprintf(client, sizeof(client), "127.0.0.1:%d", 1000 + i);
        hub_share_log_row_t e = {.at = T0 + i,
                                 .method = "GET",
                                 .path = path,
                                 .status = 200 + i,
                                 .latency_ms = i,
                                 .client = client};
        assert_int_equal(hub_store_share_log_append(f->st, s.id, &e), 0);
    }
    hub_share_log_list_t lg = {0};
    assert_int_equal(hub_store_share_log_list(f->st, ws.id, s.id, 0, 2, &lg), 0);
    assert_int_equal(lg.count, 2);
    assert_int_equal(lg.items[0].status, 204);
    assert_string_equal(lg.items[1].path, "/api/3");
    int64_t before = lg.items[1].id;
    hub_share_log_list_free(&lg);
    assert_int_equal(hub_store_share_log_list(f->st, ws.id, s.id, before, 10, &lg), 0);
    assert_int_equal(lg.count, 3);
    assert_string_equal(lg.items[2].client, "127.0.0.1:1000");
    hub_share_log_list_free(&lg);
    assert_int_equal(hub_store_share_log_list(f->st, other.id, s.id, 0, 10, &lg), 0);
    assert_int_equal(lg.count, 0);
    /* Retention by age. */
    size_t pruned = 0;
    assert_int_equal(hub_store_share_log_prune(f->st, T0 + 2, &pruned), 0);
    assert_int_equal(pruned, 2);
    /* The share goes with its tunnel, its log with it. */
    assert_int_equal(hub_store_tunnel_delete(f->st, ws.id, t.id), 0);
    assert_int_equal(hub_store_share_get(f->st, ws.id, s.id, &g), CN_ENOTFOUND);
    hub_tunnel_clear(&t);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_creates_current_schema),
        T(test_reopen_up_to_date_is_noop),
        T(test_missing_db_needs_init),
        T(test_newer_schema_refused),
        T(test_foreign_db_refused),
        T(test_restart_keeps_everything),
        T(test_kill9_loses_nothing_committed),
        T(test_workspaces),
        T(test_other_workspace_ids_not_found),
        T(test_bootstrap_once),
        T(test_api_token_hashing),
        T(test_enroll_single_use),
        T(test_enroll_expiry),
        T(test_agent_connections_and_list),
        T(test_agent_delete_takes_its_tunnels),
        T(test_migration_to_token_scopes),
        T(test_agent_token_dies_with_its_agent),
        T(test_token_list_get_and_last_used),
        T(test_agent_cap),
        T(test_tunnel_create_all_fields),
        T(test_tunnel_rejects_bad_input),
        T(test_tunnel_names_unique),
        T(test_released_names_and_ports_are_held),
        T(test_tunnel_cap),
        T(test_tunnel_cap_per_agent),
        T(test_tunnel_list_filters),
        T(test_tunnel_update_fields),
        T(test_tunnel_plugin),
        T(test_tunnels_due_to_expire),
        T(test_edge_lookups),
        T(test_events_filters),
        T(test_events_bounded_and_validated),
        T(test_event_retention),
        T(test_change_and_event_commit_together),
        T(test_transactions_nest),
        T(test_webhook_secret_sealed),
        T(test_webhook_fanout),
        T(test_webhook_delivery_cycle),
        T(test_webhook_bounds),
        T(test_shares),
        T(test_migration_3_to_shares),
        T(test_migration_4_to_webhooks),
        T(test_migration_5_to_idle_timeout),
        T(test_migration_6_to_log_file),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
