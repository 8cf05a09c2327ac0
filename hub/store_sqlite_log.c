/* The share access log's file and its writer (store_sqlite_log.h).
 *
 * Ids: rows have INTEGER PRIMARY KEY ids without AUTOINCREMENT (no
 * sqlite_sequence row to update per insert). SQLite would hand out
 * max(id) + 1, which goes back when retention deletes the newest row (an
 * idle week, a deleted share's rows); a page cursor (`before`) and a
 * client watching for new rows must never see ids go back, so each batch
 * reads the high-water mark once (meta.last_id, or max(id) after an
 * import), numbers its rows after it, and stores the new mark: one read
 * and one write per batch, under the file's write lock, so two hubs on one
 * database still never share an id. */
#include "store_sqlite_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cn_buf.h"
#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_log.h"
#include "cn_time.h"

/* "CNHL" in the header's application_id: a connect-hub access log. */
#define LOG_APPLICATION_ID 1129203788
#define LOG_SCHEMA_VERSION 2
#define BUSY_TIMEOUT_MS 5000
#define DROP_LOG_EVERY_MS 1000
/* The writer connection's page cache (negative: KiB) and WAL checkpoint
 * interval (pages): see hub_slog_open. 16 MiB of pages, a WAL of up to
 * ~16 MiB between checkpoints. */
#define LOG_CACHE_KIB "-16384"
#define LOG_WAL_PAGES "4096"
/* Rows a statement inserts in a batch's whole groups: one step of the
 * VDBE program for 32 rows instead of 32 (the per-statement work was a
 * third of the writer's time per row). 256 parameters. */
#define INSERT_ROWS 32
#define INSERT_COLS 8

/* Runs: a batch is written grouped by share (arrival order kept within a
 * share; the order of the shares does not matter), so each share's rows
 * of a batch have consecutive ids, and one row of share_access_runs finds
 * them. The rows go to the end of the table's B-tree (an append), and the
 * only B-tree entry per share per batch is its run. Before (version 1) every row also went into two
 * indexes, (share_id, id) and (at): with 1,000 shares in use, three B-tree
 * inserts per request, two of them on a page of their own per share; the
 * writer's SQLite work per request went from ~4.3 to ~1.2 us (bench in
 * docs/performance.md). A run's `n` counts its rows (ids in an imported
 * run may have gaps); retention keeps runs exact. */
#define RUNS_TABLE                                                                                 \
    "CREATE TABLE share_access_runs (\n"                                                           \
    "  share_id TEXT NOT NULL,\n"                                                                  \
    "  first_id INTEGER NOT NULL,\n"                                                               \
    "  last_id INTEGER NOT NULL,\n"                                                                \
    "  n INTEGER NOT NULL,\n"                                                                      \
    "  PRIMARY KEY (share_id, first_id)\n"                                                         \
    ") STRICT, WITHOUT ROWID;\n"
/* Runs of the rows already in the table, as islands: rows of one share
 * with no other share's row between them (their global rank minus their
 * rank in the share is constant). */
#define RUNS_FROM_ROWS                                                                             \
    "INSERT INTO share_access_runs (share_id, first_id, last_id, n) "                              \
    "SELECT share_id, min(id), max(id), count(*) FROM (SELECT id, share_id, "                      \
    "row_number() OVER (ORDER BY id) - row_number() OVER (PARTITION BY share_id ORDER BY id) "     \
    "AS g FROM share_access_log) GROUP BY share_id, g;\n"

static const char schema[] = "PRAGMA application_id = 1129203788;\n"
                             "CREATE TABLE share_access_log (\n"
                             "  id INTEGER PRIMARY KEY,\n"
                             "  share_id TEXT NOT NULL,\n"
                             "  at INTEGER NOT NULL,\n"
                             "  method TEXT NOT NULL,\n"
                             "  path TEXT NOT NULL,\n"
                             "  status INTEGER NOT NULL,\n"
                             "  latency_ms INTEGER NOT NULL,\n"
                             "  client TEXT NOT NULL\n"
                             ") STRICT;\n" RUNS_TABLE "CREATE TABLE meta (\n"
                             "  key TEXT PRIMARY KEY NOT NULL,\n"
                             "  value INTEGER NOT NULL\n"
                             ") STRICT;\n"
                             "PRAGMA user_version = 2;\n";

/* Version 1 to 2: the indexes give way to runs. */
static const char migrate_1_2[] = RUNS_TABLE RUNS_FROM_ROWS "DROP INDEX share_access_log_share;\n"
                                                            "DROP INDEX share_access_log_at;\n"
                                                            "PRAGMA user_version = 2;\n";

enum lq {
    L_BEGIN,
    L_COMMIT,
    L_ROLLBACK,
    L_LAST_ID,
    L_SET_LAST_ID,
    L_INSERT,
    L_RUN_INSERT,
    L_AGE_CUT,
    L_PRUNE_AGE,
    L_NEXT_SHARE,
    L_SHARE_EXISTS,
    L_RUNS_AGED,
    L_RUN_TRIM,
    L_RUNS_DESC,
    L_RUN_NTH,
    L_ROWS_RANGE_DEL,
    L_ROWS_BELOW_DEL,
    L_RUNS_BELOW_DEL,
    L_OLDEST,
    L_RUNS_ASC,
    L_COUNT
};

static const char *const lsql[L_COUNT] = {
    [L_BEGIN] = "BEGIN IMMEDIATE",
    [L_COMMIT] = "COMMIT",
    [L_ROLLBACK] = "ROLLBACK",
    [L_LAST_ID] = "SELECT max(coalesce((SELECT value FROM meta WHERE key = 'last_id'), 0), "
                  "coalesce((SELECT max(id) FROM share_access_log), 0))",
    [L_SET_LAST_ID] = "INSERT INTO meta (key, value) VALUES ('last_id', ?1) "
                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [L_INSERT] = "INSERT INTO share_access_log (id, share_id, at, method, path, status, "
                 "latency_ms, client) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [L_RUN_INSERT] = "INSERT INTO share_access_runs (share_id, first_id, last_id, n) "
                     "VALUES (?1, ?2, ?3, ?4)",
    /* Retention by age cuts at the first row young enough, walking from
     * the oldest (ids grow with time): the rows it passes are the ones
     * deleted. A row logged late with an older `at` behind it waits for a
     * later prune. */
    [L_AGE_CUT] = "SELECT id FROM share_access_log WHERE at >= ?1 ORDER BY id LIMIT 1",
    [L_PRUNE_AGE] = "DELETE FROM share_access_log WHERE id < ?1",
    /* Distinct shares by a skip along the runs' key: one seek per share. */
    [L_NEXT_SHARE] = "SELECT share_id FROM share_access_runs WHERE share_id > ?1 "
                     "ORDER BY share_id LIMIT 1",
    [L_SHARE_EXISTS] = "SELECT 1 FROM hub.shares WHERE id = ?1",
    /* ?2: the age cut; the runs wholly below it, then the one across it. */
    [L_RUNS_AGED] = "DELETE FROM share_access_runs WHERE share_id = ?1 AND first_id < ?2 "
                    "AND last_id < ?2",
    [L_RUN_TRIM] = "UPDATE share_access_runs SET first_id = ?2, n = (SELECT count(*) FROM "
                   "share_access_log WHERE id BETWEEN ?2 AND last_id AND share_id = ?1) "
                   "WHERE share_id = ?1 AND first_id < ?2",
    [L_RUNS_DESC] = "SELECT first_id, last_id, n FROM share_access_runs WHERE share_id = ?1 "
                    "ORDER BY first_id DESC",
    /* The ?4-th newest row of the share in [?2, ?3] (0: the newest). */
    [L_RUN_NTH] = "SELECT id FROM share_access_log WHERE id BETWEEN ?2 AND ?3 AND share_id = ?1 "
                  "ORDER BY id DESC LIMIT 1 OFFSET ?4",
    [L_ROWS_RANGE_DEL] = "DELETE FROM share_access_log WHERE id BETWEEN ?2 AND ?3 "
                         "AND share_id = ?1",
    /* The rows of the share's runs that start below ?2 (all: INT64_MAX). */
    [L_ROWS_BELOW_DEL] = "DELETE FROM share_access_log WHERE id IN (SELECT l.id FROM "
                         "share_access_runs r JOIN share_access_log l ON l.id BETWEEN "
                         "r.first_id AND r.last_id WHERE r.share_id = ?1 AND r.first_id < ?2 "
                         "AND l.share_id = ?1)",
    [L_RUNS_BELOW_DEL] = "DELETE FROM share_access_runs WHERE share_id = ?1 AND first_id < ?2",
    [L_OLDEST] = "SELECT min(id) FROM share_access_log",
    /* A share's runs from the oldest, below ?2 (a step's bound). */
    [L_RUNS_ASC] = "SELECT first_id, n FROM share_access_runs WHERE share_id = ?1 "
                   "AND first_id < ?2 ORDER BY first_id",
};

/* One queued row: this header, then the method, path and client bytes
 * (lengths in the header, no NULs). Copied in and out with memcpy: the
 * buffer has no alignment. */
typedef struct rec {
    int64_t at;
    int64_t latency_ms;
    int32_t status;
    uint16_t path_len;
    uint8_t method_len;
    uint8_t client_len;
    char share_id[HUB_ID_LEN];
} rec_t;

/* A retention pass (hub_slog_prune) under way, in steps (prune_step):
 * what was asked, and how far it got. The writer's own. */
typedef struct prune_pass {
    bool active;
    int64_t before;
    size_t keep;
    uint64_t asked;        /* l->prunes_asked when it started */
    bool age_cut_known;    /* the first step found the cut */
    int64_t age_cut;       /* the first id young enough (none: the first id after the pass began) */
    bool age_done;         /* the ids below the cut are gone */
    char cur[HUB_ID_SIZE]; /* the share it is at ("": before the first) */
    bool share_open;       /* `cur` has more to delete */
} prune_pass_t;

/* One share's rows in a batch being grouped (group_batch). */
typedef struct slog_group {
    const char *share; /* its id, in its first row's record */
    uint64_t hash;
    uint32_t end; /* rows counted; then where its rows end in `order` */
} slog_group_t;

struct hub_slog {
    char path[PATH_MAX + 8];
    char main_uri[3 * PATH_MAX + 32]; /* file:MAIN?mode=ro, for ATTACH ... AS hub */
    char uri[3 * PATH_MAX + 48];      /* file:LOG?mode=ro, for the main connection */
    sqlite3 *db;                      /* the writer's connection */
    sqlite3_stmt *stmt[L_COUNT];
    bool threaded;
    size_t half;      /* the front buffer's high watermark: wake the writer */
    size_t step_rows; /* a retention step's budget (HUB_SLOG_PRUNE_STEP_ROWS) */

    /* Under `lock`. */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* to the writer: rows, a prune, a sync, stop */
    pthread_cond_t done; /* to hub_slog_sync(): a turn finished */
    cn_buf_t front;
    size_t front_rows;
    bool urgent, stop;
    uint64_t queued, handled; /* rows accepted into the queue, rows written or lost */
    bool prune_wanted;
    int64_t prune_before;
    size_t prune_keep;
    uint64_t prunes_asked, prunes_done;
    uint64_t dropped;
    hub_slog_stats_t stats;

    /* The writer's own. */
    pthread_t thread;
    bool thread_started;
    prune_pass_t pass;
    cn_buf_t back;
    sqlite3_stmt *ins_many; /* INSERT_ROWS rows a statement (prep_many) */
    /* A batch grouped by share (group_batch); grown as needed, kept. */
    const uint8_t **rowp;  /* the rows in arrival order */
    const uint8_t **order; /* the rows by share */
    uint32_t *gid;         /* each row's group */
    slog_group_t *groups;
    size_t rows_cap, ngroups;
    uint32_t *slots; /* open addressing, group + 1 (0: free) */
    size_t nslots;   /* a power of two, at least twice ngroups */
    uint64_t dropped_logged;
    uint64_t drop_logged_ms;
};

/* A deadline `ms` from now on CLOCK_MONOTONIC, the clock of both
 * condition variables (a wall-clock step must not stretch a wait). */
static struct timespec deadline_in(unsigned ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    return t;
}

/* ---- statements (the writer's connection) --------------------------------- */

static sqlite3_stmt *lprep(hub_slog_t *l, enum lq q)
{
    if (!l->stmt[q] && sqlite3_prepare_v3(l->db, lsql[q], -1, SQLITE_PREPARE_PERSISTENT,
                                          &l->stmt[q], NULL) != SQLITE_OK)
        return NULL;
    return l->stmt[q];
}

/* Runs a statement without rows to the end; SQLITE_DONE or the error. */
static int lrun(sqlite3_stmt *q)
{
    int r = sqlite3_step(q);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return r == SQLITE_ROW ? SQLITE_DONE : r;
}

static int lexec(hub_slog_t *l, enum lq which)
{
    sqlite3_stmt *q = lprep(l, which);
    return q ? lrun(q) : sqlite3_errcode(l->db);
}

/* `file:` URI of a path, for ATTACH with ?mode=ro (RFC 3986 escapes). */
static int path_uri(const char *path, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    const char *pre = "file:";
    for (const char *p = pre; *p; p++)
        out[o++] = *p;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (o + 4 >= size)
            return CN_ETOOBIG;
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("/._~-", *p)) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    static const char ro[] = "?mode=ro";
    if (o + sizeof(ro) > size)
        return CN_ETOOBIG;
    memcpy(out + o, ro, sizeof(ro));
    return 0;
}

/* The main file, read-only, as schema `hub` of the writer's connection,
 * for the import and retention only (a batch then reads nothing there).
 * Reads from this connection never move the main file's data_version. */
static int attach_main(hub_slog_t *l)
{
    sqlite3_stmt *q = NULL;
    int r = sqlite3_prepare_v2(l->db, "ATTACH DATABASE ?1 AS hub", -1, &q, NULL);
    if (r == SQLITE_OK)
        r = sqlite3_bind_text(q, 1, l->main_uri, -1, SQLITE_STATIC);
    if (r == SQLITE_OK)
        r = sqlite3_step(q);
    sqlite3_finalize(q);
    return r == SQLITE_DONE ? SQLITE_OK : r;
}

static void detach_main(hub_slog_t *l)
{
    /* Statements that read `hub` hold it until finalized. */
    sqlite3_finalize(l->stmt[L_SHARE_EXISTS]);
    l->stmt[L_SHARE_EXISTS] = NULL;
    sqlite3_exec(l->db, "DETACH DATABASE hub", NULL, NULL, NULL);
}

/* ---- writing ----------------------------------------------------------------- */

/* A share id's hash for the grouping table: the ids are UUIDs the hub
 * made (random bits), so folding their words is enough. */
static uint64_t id_hash(const char *id)
{
    uint64_t h = 0x9e3779b97f4a7c15u;
    size_t i = 0;
    for (; i + 8 <= HUB_ID_LEN; i += 8) {
        uint64_t w;
        memcpy(&w, id + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
    }
    for (; i < HUB_ID_LEN; i++)
        h = (h ^ (uint8_t)id[i]) * 0x100000001b3u;
    return h ^ (h >> 32);
}

/* The slot of `share` in the table: its group's, or the free one where it
 * would go. */
static uint32_t *slot_of(const hub_slog_t *l, const char *share, uint64_t h)
{
    size_t mask = l->nslots - 1;
    for (size_t s = (size_t)h & mask;; s = (s + 1) & mask) {
        uint32_t g = l->slots[s];
        if (!g ||
            (l->groups[g - 1].hash == h && memcmp(l->groups[g - 1].share, share, HUB_ID_LEN) == 0))
            return &l->slots[s];
    }
}

/* Doubles the table (a new group would fill it past half); false when it
 * cannot grow. */
static bool slots_grow(hub_slog_t *l)
{
    size_t n = l->nslots ? l->nslots * 2 : 256;
    uint32_t *t = calloc(n, sizeof(*t));
    if (!t)
        return false;
    free(l->slots);
    l->slots = t;
    l->nslots = n;
    for (size_t g = 0; g < l->ngroups; g++)
        *slot_of(l, l->groups[g].share, l->groups[g].hash) = (uint32_t)g + 1;
    return true;
}

/* Groups the batch's rows by share in l->order (see RUNS_TABLE), arrival
 * order kept within a share, the shares in order of their first row; the
 * rows of group g end at l->groups[g].end. A pass to find each row's
 * group (a hash table of the batch's shares) and a counting pass to place
 * it: O(rows), where a sort compared ids ~log2(rows) times a row (17% of
 * the writer's samples). False when an array cannot grow. */
static bool group_batch(hub_slog_t *l, const cn_buf_t *b, size_t rows)
{
    if (rows >= UINT32_MAX)
        return false;
    if (rows > l->rows_cap) {
        const uint8_t **rp = realloc(l->rowp, rows * sizeof(*rp));
        if (rp)
            l->rowp = rp;
        const uint8_t **o = realloc(l->order, rows * sizeof(*o));
        if (o)
            l->order = o;
        uint32_t *gi = realloc(l->gid, rows * sizeof(*gi));
        if (gi)
            l->gid = gi;
        slog_group_t *gs = realloc(l->groups, rows * sizeof(*gs));
        if (gs)
            l->groups = gs;
        if (!rp || !o || !gi || !gs)
            return false;
        l->rows_cap = rows;
    }
    l->ngroups = 0;
    if (l->nslots)
        memset(l->slots, 0, l->nslots * sizeof(*l->slots));
    else if (!slots_grow(l))
        return false;
    const uint8_t *p = cn_buf_data(b), *end = p + b->len;
    size_t i = 0;
    for (; p < end && i < rows; i++) {
        rec_t h;
        memcpy(&h, p, sizeof(h));
        const char *share = (const char *)p + offsetof(rec_t, share_id);
        uint64_t hash = id_hash(share);
        uint32_t *s = slot_of(l, share, hash);
        if (!*s) {
            if (2 * (l->ngroups + 1) > l->nslots) {
                if (!slots_grow(l))
                    return false;
                s = slot_of(l, share, hash);
            }
            l->groups[l->ngroups] = (slog_group_t){.share = share, .hash = hash};
            *s = (uint32_t)++l->ngroups;
        }
        l->gid[i] = *s - 1;
        l->groups[*s - 1].end++;
        l->rowp[i] = p;
        p += sizeof(h) + h.method_len + h.path_len + h.client_len;
    }
    if (i != rows)
        return false;
    uint32_t at = 0; /* each group's start, then its end */
    for (size_t g = 0; g < l->ngroups; g++) {
        uint32_t n = l->groups[g].end;
        l->groups[g].end = at;
        at += n;
    }
    for (i = 0; i < rows; i++)
        l->order[l->groups[l->gid[i]].end++] = l->rowp[i];
    return true;
}

/* One row's eight values into `q` from parameter `base` + 1 on. The text
 * is the batch buffer's, which outlives the statement's step. An id of 0
 * goes as NULL: SQLite takes max(rowid) + 1 from the cursor at the end of
 * the table, where an explicit id costs a search of the B-tree from its
 * root per row (its check that the id is free: 11% of the writer's time),
 * so only a batch's first row carries its id (write_batch). */
static void bind_row(sqlite3_stmt *q, int base, const uint8_t *p, int64_t id)
{
    rec_t h;
    memcpy(&h, p, sizeof(h));
    const char *share = (const char *)p + offsetof(rec_t, share_id);
    const char *m = (const char *)p + sizeof(h), *path = m + h.method_len,
               *client = path + h.path_len;
    if (id)
        sqlite3_bind_int64(q, base + 1, id);
    else
        sqlite3_bind_null(q, base + 1);
    sqlite3_bind_text(q, base + 2, share, HUB_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(q, base + 3, h.at);
    sqlite3_bind_text(q, base + 4, m, h.method_len, SQLITE_STATIC);
    sqlite3_bind_text(q, base + 5, path, h.path_len, SQLITE_STATIC);
    sqlite3_bind_int(q, base + 6, h.status);
    sqlite3_bind_int64(q, base + 7, h.latency_ms);
    sqlite3_bind_text(q, base + 8, client, h.client_len, SQLITE_STATIC);
}

/* The INSERT of INSERT_ROWS rows, prepared on first use; NULL if it
 * cannot be (the rows then go one by one). */
static sqlite3_stmt *prep_many(hub_slog_t *l)
{
    if (l->ins_many)
        return l->ins_many;
    static const char head[] = "INSERT INTO share_access_log (id, share_id, at, method, path, "
                               "status, latency_ms, client) VALUES ";
    static const char group[] = "(?,?,?,?,?,?,?,?),";
    char sql[sizeof(head) + INSERT_ROWS * (sizeof(group) - 1)];
    memcpy(sql, head, sizeof(head) - 1);
    size_t n = sizeof(head) - 1;
    for (int i = 0; i < INSERT_ROWS; i++, n += sizeof(group) - 1)
        memcpy(sql + n, group, sizeof(group) - 1);
    sql[n - 1] = '\0'; /* the last comma */
    if (sqlite3_prepare_v3(l->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &l->ins_many, NULL) !=
        SQLITE_OK)
        l->ins_many = NULL;
    return l->ins_many;
}

static int insert_run(hub_slog_t *l, const char *share_id, int64_t first, int64_t last)
{
    sqlite3_stmt *q = lprep(l, L_RUN_INSERT);
    if (!q)
        return sqlite3_errcode(l->db);
    sqlite3_bind_text(q, 1, share_id, HUB_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, first);
    sqlite3_bind_int64(q, 3, last);
    sqlite3_bind_int64(q, 4, last - first + 1);
    return lrun(q);
}

/* Writes the queued rows of `b` (rows of rec_t + strings) in one
 * transaction, by share, with a run per share. Rows are lost (and counted
 * as such in the log line) when it fails: the hub keeps serving. */
static void write_batch(hub_slog_t *l, const cn_buf_t *b, size_t rows)
{
    if (!rows)
        return;
    int64_t id = 0;
    int r = group_batch(l, b, rows) ? lexec(l, L_BEGIN) : SQLITE_NOMEM;
    if (r == SQLITE_DONE) {
        sqlite3_stmt *q = lprep(l, L_LAST_ID);
        r = q ? sqlite3_step(q) : sqlite3_errcode(l->db);
        if (r == SQLITE_ROW) {
            id = sqlite3_column_int64(q, 0);
            r = SQLITE_DONE;
        }
        if (q)
            sqlite3_reset(q);
    }
    sqlite3_stmt *ins = r == SQLITE_DONE ? lprep(l, L_INSERT) : NULL;
    if (r == SQLITE_DONE && !ins)
        r = sqlite3_errcode(l->db);
    /* Whole groups of INSERT_ROWS rows go in one statement each. */
    sqlite3_stmt *many = r == SQLITE_DONE && rows >= INSERT_ROWS ? prep_many(l) : NULL;
    /* The first row takes the id after the high-water mark, which is at
     * least max(id); the others get max(rowid) + 1 (bind_row), so the same
     * consecutive ids. Checked after each statement all the same: the runs
     * count on them. */
    int64_t first = id + 1;
    size_t i = 0, g = 0;
    const char *why = NULL;
    while (r == SQLITE_DONE && i < rows) {
        size_t n = many && rows - i >= INSERT_ROWS ? INSERT_ROWS : 1;
        sqlite3_stmt *q = n > 1 ? many : ins;
        for (size_t k = 0; k < n && r == SQLITE_DONE; k++, i++) {
            bind_row(q, (int)(k * INSERT_COLS), l->order[i], i ? 0 : id + 1);
            id++;
            if (i + 1 == l->groups[g].end) { /* the share's run ends */
                r = insert_run(l, l->groups[g].share, first, id);
                first = id + 1;
                g++;
            }
        }
        if (r == SQLITE_DONE)
            r = lrun(q);
        /* Inserts into share_access_runs (WITHOUT ROWID) leave it alone. */
        if (r == SQLITE_DONE && sqlite3_last_insert_rowid(l->db) != id) {
            r = SQLITE_CORRUPT;
            why = "ids out of step";
        }
    }
    if (r == SQLITE_DONE) {
        sqlite3_stmt *q = lprep(l, L_SET_LAST_ID);
        if (q) {
            sqlite3_bind_int64(q, 1, id);
            r = lrun(q);
        } else {
            r = sqlite3_errcode(l->db);
        }
    }
    if (r == SQLITE_DONE)
        r = lexec(l, L_COMMIT);
    if (r != SQLITE_DONE) {
        if (!why)
            why = r == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(l->db);
        cn_log_warn("share access log: %zu rows lost: %s", rows, why);
        if (!sqlite3_get_autocommit(l->db))
            lexec(l, L_ROLLBACK);
    }
}

/* Steps statement `w` with the share in ?1 and up to three integers in
 * ?2.. (nargs of them); SQLITE_DONE or the error. A row's first column
 * goes to *col0 (when not NULL; *row says whether there was one). Leaves
 * the statement reset. Deleted rows of the log table add to *deleted. */
static int pstep(hub_slog_t *l, enum lq w, const char *share, const int64_t *args, int nargs,
                 bool *row, int64_t *col0, size_t *deleted)
{
    sqlite3_stmt *q = lprep(l, w);
    if (!q)
        return sqlite3_errcode(l->db);
    sqlite3_bind_text(q, 1, share, -1, SQLITE_STATIC);
    for (int i = 0; i < nargs; i++)
        sqlite3_bind_int64(q, 2 + i, args[i]);
    int r = sqlite3_step(q);
    bool got = r == SQLITE_ROW;
    if (row)
        *row = got;
    if (got && col0)
        *col0 = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (r == SQLITE_ROW)
        r = SQLITE_DONE;
    if (r == SQLITE_DONE && deleted && (w == L_ROWS_RANGE_DEL || w == L_ROWS_BELOW_DEL))
        *deleted += (size_t)sqlite3_changes(l->db);
    return r;
}

/* The bound below which a step deletes `share`'s runs: walking its runs
 * from the oldest that start below `limit`, the first_id of the first run
 * that would take the count past `budget`, or `limit` when all of them
 * fit (*rows: the rows below the bound). With `one_over` the first run
 * goes even when it alone is larger (a step with nothing deleted yet
 * must move on). */
static int older_bound(hub_slog_t *l, const char *share, int64_t limit, size_t budget,
                       bool one_over, int64_t *bound, size_t *rows)
{
    sqlite3_stmt *q = lprep(l, L_RUNS_ASC);
    if (!q)
        return sqlite3_errcode(l->db);
    sqlite3_bind_text(q, 1, share, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, limit);
    *bound = limit;
    int64_t sum = 0;
    int r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t first = sqlite3_column_int64(q, 0), n = sqlite3_column_int64(q, 1);
        if (sum + n > (int64_t)budget && !(one_over && sum == 0)) {
            *bound = first;
            break;
        }
        sum += n;
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    *rows = (size_t)sum;
    return r == SQLITE_ROW || r == SQLITE_DONE ? SQLITE_DONE : r;
}

/* Deletes `share`'s runs that start below `bound`, and their rows. */
static int drop_runs_below(hub_slog_t *l, const char *share, int64_t bound, size_t *deleted)
{
    int64_t b[1] = {bound};
    int r = pstep(l, L_ROWS_BELOW_DEL, share, b, 1, NULL, NULL, deleted);
    if (r == SQLITE_DONE)
        r = pstep(l, L_RUNS_BELOW_DEL, share, b, 1, NULL, NULL, NULL);
    return r;
}

/* Keeps the newest `keep` rows of one share: walks its runs from the
 * newest, and cuts in the run where the count passes `keep`: its older
 * rows go, and all older runs. At most `budget` rows a call (one run
 * more when `one_over`, see older_bound), oldest first: *done says
 * whether the share is done (false: the budget is spent, the step ends
 * and the next one goes on). */
static int prune_keep(hub_slog_t *l, const char *share, size_t keep, size_t budget, bool one_over,
                      size_t *deleted, bool *done)
{
    *done = true;
    sqlite3_stmt *q = lprep(l, L_RUNS_DESC);
    if (!q)
        return sqlite3_errcode(l->db);
    sqlite3_bind_text(q, 1, share, -1, SQLITE_STATIC);
    int64_t seen = 0, first = 0, last = 0, n = 0;
    bool cut = false;
    int r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        first = sqlite3_column_int64(q, 0);
        last = sqlite3_column_int64(q, 1);
        n = sqlite3_column_int64(q, 2);
        if (seen + n > (int64_t)keep) {
            cut = true;
            break;
        }
        seen += n;
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (r != SQLITE_ROW && r != SQLITE_DONE)
        return r;
    if (!cut)
        return SQLITE_DONE;
    int64_t k = (int64_t)keep - seen; /* rows of this run kept: 0 <= k < n */
    /* The runs that go whole: the older ones, and this one when none of
     * it is kept. */
    int64_t whole = k > 0 ? first : first + 1, bound = whole;
    size_t older = 0;
    r = older_bound(l, share, whole, budget, one_over, &bound, &older);
    /* This run's part waits for the next step too when it would take
     * the step past its budget (unless it is the step's first work). */
    bool part_waits = k > 0 && older + (size_t)(n - k) > budget && (older > 0 || !one_over);
    if (r == SQLITE_DONE && (bound < whole || part_waits)) {
        *done = false;
        return drop_runs_below(l, share, bound, deleted);
    }
    int64_t oldest = 0;
    if (r == SQLITE_DONE && k > 0) {
        int64_t a[3] = {first, last, k - 1};
        bool row = false;
        r = pstep(l, L_RUN_NTH, share, a, 3, &row, &oldest, NULL);
        if (r == SQLITE_DONE && !row)
            return SQLITE_CORRUPT; /* the run counts rows that are not there */
        int64_t d[2] = {first, oldest - 1};
        if (r == SQLITE_DONE)
            r = pstep(l, L_ROWS_RANGE_DEL, share, d, 2, NULL, NULL, deleted);
    }
    /* The older runs go first: the trim below moves this run's key, and
     * must find no other run under it. */
    if (r == SQLITE_DONE)
        r = drop_runs_below(l, share, whole, deleted);
    int64_t t[1] = {oldest};
    if (r == SQLITE_DONE && k > 0) /* it starts at its oldest kept row now */
        r = pstep(l, L_RUN_TRIM, share, t, 1, NULL, NULL, NULL);
    return r;
}

/* The next share along the runs' key after l->pass.cur into it; *found
 * false at the end. */
static int next_share(hub_slog_t *l, bool *found)
{
    *found = false;
    sqlite3_stmt *nx = lprep(l, L_NEXT_SHARE);
    if (!nx)
        return sqlite3_errcode(l->db);
    sqlite3_bind_text(nx, 1, l->pass.cur, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(nx);
    if (r == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(nx, 0);
        snprintf(l->pass.cur, sizeof(l->pass.cur), "%s", t ? (const char *)t : "");
        *found = true;
        r = SQLITE_DONE;
    }
    sqlite3_reset(nx);
    sqlite3_clear_bindings(nx);
    return r;
}

/* The pass's age phase, a step of it: the cut (the first row young enough,
 * once a pass), then the ids below it from the oldest, `budget` ids at
 * most (so rows at most). */
static int prune_age(hub_slog_t *l, size_t budget, size_t *deleted)
{
    prune_pass_t *p = &l->pass;
    sqlite3_stmt *q = NULL;
    int r = SQLITE_DONE;
    if (!p->age_cut_known) {
        if (!(q = lprep(l, L_AGE_CUT)))
            return sqlite3_errcode(l->db);
        sqlite3_bind_int64(q, 1, p->before);
        r = sqlite3_step(q);
        bool young = r == SQLITE_ROW;
        p->age_cut = young ? sqlite3_column_int64(q, 0) : 0;
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        if (r != SQLITE_ROW && r != SQLITE_DONE)
            return r;
        /* None young enough: every row there is now goes, and not the
         * ones the batches between the steps add. */
        if (!young && (q = lprep(l, L_LAST_ID)) != NULL) {
            r = sqlite3_step(q);
            p->age_cut = r == SQLITE_ROW ? sqlite3_column_int64(q, 0) + 1 : 0;
            sqlite3_reset(q);
            if (r != SQLITE_ROW)
                return r == SQLITE_DONE ? SQLITE_ERROR : r;
        } else if (!young) {
            return sqlite3_errcode(l->db);
        }
        p->age_cut_known = true;
    }
    if (!(q = lprep(l, L_OLDEST)))
        return sqlite3_errcode(l->db);
    r = sqlite3_step(q);
    bool any = r == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL;
    int64_t lo = any ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    if (r != SQLITE_ROW && r != SQLITE_DONE)
        return r;
    int64_t to = p->age_cut;
    if (!any || lo >= p->age_cut) {
        p->age_done = true;
        return SQLITE_DONE;
    }
    if (p->age_cut - lo > (int64_t)budget)
        to = lo + (int64_t)budget;
    else
        p->age_done = true;
    if (!(q = lprep(l, L_PRUNE_AGE)))
        return sqlite3_errcode(l->db);
    sqlite3_bind_int64(q, 1, to);
    if ((r = lrun(q)) == SQLITE_DONE)
        *deleted += (size_t)sqlite3_changes(l->db);
    return r;
}

/* One step of the retention pass in l->pass (see hub_slog_prune), in a
 * transaction of its own: the rows older than `before` (one range of ids,
 * from the oldest), then share by share along the runs: a share that is
 * gone loses all, the others their runs below the age cut and all but
 * their newest `keep` rows. It stops after the share that takes the
 * step's deletions to `budget` rows (a share with more to delete than
 * that goes on in the next step), so a step deletes at most about
 * `budget` rows, or one run when a run alone is larger. *finished: the
 * pass is over (or failed). */
static int prune_step(hub_slog_t *l, size_t budget, size_t *count, bool *finished)
{
    prune_pass_t *p = &l->pass;
    size_t n = 0;
    *finished = false;
    int r = attach_main(l);
    if (r == SQLITE_OK)
        r = lexec(l, L_BEGIN);
    else
        r = r == SQLITE_DONE ? SQLITE_ERROR : r;
    if (r == SQLITE_DONE && !p->age_done)
        r = prune_age(l, budget, &n);
    while (r == SQLITE_DONE && p->age_done && n < budget) {
        bool found = true, exists = false;
        if (!p->share_open)
            r = next_share(l, &found);
        if (r != SQLITE_DONE)
            break;
        if (!found) {
            *finished = true;
            break;
        }
        r = pstep(l, L_SHARE_EXISTS, p->cur, NULL, 0, &exists, NULL, NULL);
        if (r != SQLITE_DONE)
            break;
        bool done = true;
        if (!exists) { /* a share that is gone (revoked ones stay) takes its rows along */
            int64_t bound = INT64_MAX;
            size_t rows = 0;
            r = older_bound(l, p->cur, INT64_MAX, budget - n, n == 0, &bound, &rows);
            if (r == SQLITE_DONE)
                r = drop_runs_below(l, p->cur, bound, &n);
            done = bound == INT64_MAX;
        } else {
            /* Runs wholly below the age cut go; the one across it (runs do
             * not overlap: one at most) starts at the cut. Again in a
             * later step of the same share: nothing is left to do then. */
            int64_t a[1] = {p->age_cut};
            r = pstep(l, L_RUNS_AGED, p->cur, a, 1, NULL, NULL, NULL);
            if (r == SQLITE_DONE)
                r = pstep(l, L_RUN_TRIM, p->cur, a, 1, NULL, NULL, NULL);
            if (r == SQLITE_DONE)
                r = prune_keep(l, p->cur, p->keep, budget - n, n == 0, &n, &done);
        }
        p->share_open = !done;
        if (!done) /* the budget is spent */
            break;
    }
    if (r == SQLITE_DONE)
        r = lexec(l, L_COMMIT);
    if (r != SQLITE_DONE && !sqlite3_get_autocommit(l->db))
        lexec(l, L_ROLLBACK);
    detach_main(l);
    if (r != SQLITE_DONE) {
        *finished = true; /* the next pass starts over */
        n = 0;
    }
    *count = n;
    return r == SQLITE_DONE ? 0 : CN_EIO;
}

/* A whole pass at once (without the thread). */
static int run_prune(hub_slog_t *l, int64_t before, size_t keep, size_t *count)
{
    l->pass = (prune_pass_t){.active = true, .before = before, .keep = keep};
    bool finished = false;
    int rc = 0;
    while (rc == 0 && !finished) {
        size_t n = 0;
        rc = prune_step(l, l->step_rows, &n, &finished);
        *count += n;
    }
    l->pass.active = false;
    return rc;
}

/* ---- the writer thread --------------------------------------------------------- */

static void log_drops(hub_slog_t *l, uint64_t dropped)
{
    uint64_t now = cn_time_mono_ms();
    if (dropped == l->dropped_logged || now - l->drop_logged_ms < DROP_LOG_EVERY_MS)
        return;
    cn_log_warn("share access log: %llu rows dropped (queue full; %llu since the start)",
                (unsigned long long)(dropped - l->dropped_logged), (unsigned long long)dropped);
    l->dropped_logged = dropped;
    l->drop_logged_ms = now;
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The page cache misses of the writer's connection since the last call. */
static uint64_t pages_read(hub_slog_t *l)
{
    int cur = 0, hi = 0;
    sqlite3_db_status(l->db, SQLITE_DBSTATUS_CACHE_MISS, &cur, &hi, 1);
    return cur > 0 ? (uint64_t)cur : 0;
}

/* A step of a turn measured (hub_slog_cost_t): the writer's CPU, the
 * wall time and the pages read since the mark. */
typedef struct step_mark {
    uint64_t cpu, wall;
} step_mark_t;

static step_mark_t step_begin(hub_slog_t *l)
{
    (void)pages_read(l);
    return (step_mark_t){clock_ns(CLOCK_THREAD_CPUTIME_ID), clock_ns(CLOCK_MONOTONIC)};
}

static void step_end(hub_slog_t *l, step_mark_t m, hub_slog_cost_t *c)
{
    uint64_t w = clock_ns(CLOCK_MONOTONIC) - m.wall;
    c->n++;
    c->cpu_ns += clock_ns(CLOCK_THREAD_CPUTIME_ID) - m.cpu;
    c->wall_ns += w;
    c->wall_max_ns = w > c->wall_max_ns ? w : c->wall_max_ns;
    c->pages_read += pages_read(l);
}

static void cost_add(hub_slog_cost_t *sum, const hub_slog_cost_t *c)
{
    sum->n += c->n;
    sum->cpu_ns += c->cpu_ns;
    sum->wall_ns += c->wall_ns;
    sum->wall_max_ns = c->wall_max_ns > sum->wall_max_ns ? c->wall_max_ns : sum->wall_max_ns;
    sum->pages_read += c->pages_read;
}

/* One turn: takes the front buffer when `take` and starts the retention
 * pass asked for when none runs (l->lock held on entry and exit), writes
 * the rows and a step of the pass without the lock, and reports. */
static void turn(hub_slog_t *l, bool take)
{
    size_t rows = 0;
    if (take) {
        cn_buf_t t = l->front;
        l->front = l->back;
        l->back = t;
        rows = l->front_rows;
        l->front_rows = 0;
        l->urgent = false;
    }
    if (!l->pass.active && l->prune_wanted) {
        l->pass = (prune_pass_t){.active = true,
                                 .before = l->prune_before,
                                 .keep = l->prune_keep,
                                 .asked = l->prunes_asked};
        l->prune_wanted = false;
    }
    bool pruning = l->pass.active;
    pthread_mutex_unlock(&l->lock);

    /* Counted here, added to l->stats under the lock below. */
    hub_slog_stats_t d = {0};
    if (rows) {
        step_mark_t m = step_begin(l);
        write_batch(l, &l->back, rows);
        step_end(l, m, &d.commits);
        d.rows = rows;
    }
    cn_buf_reset(&l->back);
    bool finished = false;
    if (pruning) {
        size_t n = 0;
        step_mark_t m = step_begin(l);
        if (prune_step(l, l->step_rows, &n, &finished) < 0)
            cn_log_warn("share access log: retention failed: %s", sqlite3_errmsg(l->db));
        step_end(l, m, &d.prune_steps);
        d.pruned = n;
    }

    pthread_mutex_lock(&l->lock);
    hub_slog_stats_t *sum = &l->stats;
    cost_add(&sum->commits, &d.commits);
    sum->rows += d.rows;
    cost_add(&sum->prune_steps, &d.prune_steps);
    sum->prunes += finished;
    sum->pruned += d.pruned;
    if (d.pruned > sum->prune_step_rows_max)
        sum->prune_step_rows_max = d.pruned;
    l->handled += rows;
    if (finished) {
        l->pass.active = false;
        l->prunes_done = l->pass.asked;
    }
    pthread_cond_broadcast(&l->done);
}

static void *writer_main(void *arg)
{
    hub_slog_t *l = arg;
    uint64_t last_take = cn_time_mono_ms();
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (!l->stop && !l->urgent && !l->front_rows && !l->prune_wanted && !l->pass.active)
            pthread_cond_wait(&l->wake, &l->lock);
        /* Gather for a while: a transaction per HUB_SLOG_FLUSH_MS, not per
         * row, unless the buffer fills, a caller waits, or we stop. While
         * a retention pass runs, its steps fill that time instead, and the
         * rows go between two steps on the same terms. */
        if (!l->stop && !l->urgent && !l->pass.active) {
            struct timespec until = deadline_in(HUB_SLOG_FLUSH_MS);
            while (!l->stop && !l->urgent && l->front.len < l->half)
                if (pthread_cond_timedwait(&l->wake, &l->lock, &until) == ETIMEDOUT)
                    break;
        }
        uint64_t now = cn_time_mono_ms();
        bool take = !l->pass.active || l->stop || l->urgent || l->front.len >= l->half ||
                    now - last_take >= HUB_SLOG_FLUSH_MS;
        if (take)
            last_take = now;
        bool stopping = l->stop;
        if (stopping && (l->pass.active || l->prune_wanted)) {
            /* Closing: the queued rows are written, a retention pass is
             * left where it is (each step it took is committed). It could
             * hold the hub's exit for a whole pass, about 19 s at 10 M rows
             * (docs/performance.md); the first sweep after the next start
             * (edge_http.c's tick) runs it again, on what is left. */
            l->pass.active = false;
            l->prune_wanted = false;
            l->prunes_done = l->prunes_asked;
        }
        turn(l, take);
        log_drops(l, l->dropped);
        if (stopping && !l->front_rows && !l->prune_wanted && !l->pass.active)
            break;
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* ---- the interface -------------------------------------------------------------- */

int hub_slog_append(hub_slog_t *l, const char *share_id, const hub_share_log_row_t *r)
{
    const char *m = r->method ? r->method : "", *p = r->path ? r->path : "",
               *c = r->client ? r->client : "";
    rec_t h = {
        .at = r->at,
        .latency_ms = r->latency_ms,
        .status = r->status,
        .method_len = (uint8_t)strnlen(m, HUB_SHARE_LOG_METHOD_MAX),
        .path_len = (uint16_t)strnlen(p, HUB_SHARE_LOG_PATH_MAX),
        .client_len = (uint8_t)strnlen(c, HUB_SHARE_LOG_CLIENT_MAX),
    };
    memcpy(h.share_id, share_id, HUB_ID_LEN);
    size_t n = sizeof(h) + h.method_len + h.path_len + h.client_len;
    int rc = 0;
    pthread_mutex_lock(&l->lock);
    uint8_t *dst = cn_buf_reserve(&l->front, n, &rc);
    if (!dst) {
        l->dropped++;
        pthread_mutex_unlock(&l->lock);
        return CN_EEXHAUSTED;
    }
    memcpy(dst, &h, sizeof(h));
    memcpy(dst + sizeof(h), m, h.method_len);
    memcpy(dst + sizeof(h) + h.method_len, p, h.path_len);
    memcpy(dst + sizeof(h) + h.method_len + h.path_len, c, h.client_len);
    cn_buf_commit(&l->front, n);
    l->queued++;
    /* Wake the writer for the first row (it then gathers) and when the
     * buffer crosses its watermark; not for every row. */
    bool wake = ++l->front_rows == 1 || (l->front.len >= l->half && l->front.len - n < l->half);
    if (l->threaded) {
        if (wake)
            pthread_cond_signal(&l->wake);
    } else {
        turn(l, true);
    }
    pthread_mutex_unlock(&l->lock);
    return 0;
}

int hub_slog_prune(hub_slog_t *l, int64_t before, size_t keep, size_t *count)
{
    *count = 0;
    if (!l->threaded)
        return run_prune(l, before, keep, count);
    pthread_mutex_lock(&l->lock);
    l->prune_wanted = true;
    l->prune_before = before;
    l->prune_keep = keep;
    l->prunes_asked++;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
    return 0;
}

int hub_slog_flush(hub_slog_t *l, unsigned timeout_ms)
{
    if (!l || !l->threaded)
        return 0;
    struct timespec until = deadline_in(timeout_ms);
    pthread_mutex_lock(&l->lock);
    uint64_t rows = l->queued;
    if (l->handled < rows) {
        /* The writer skips the rest of its gathering (or, mid-turn, starts
         * the next turn at once). */
        l->urgent = true;
        pthread_cond_signal(&l->wake);
    }
    while (l->handled < rows)
        if (pthread_cond_timedwait(&l->done, &l->lock, &until) == ETIMEDOUT)
            break;
    int rc = l->handled < rows ? CN_ETIMEOUT : 0;
    pthread_mutex_unlock(&l->lock);
    return rc;
}

void hub_slog_sync(hub_slog_t *l)
{
    if (!l || !l->threaded)
        return;
    pthread_mutex_lock(&l->lock);
    uint64_t rows = l->queued, prunes = l->prunes_asked;
    l->urgent = true;
    pthread_cond_signal(&l->wake);
    while (l->handled < rows || l->prunes_done < prunes)
        pthread_cond_wait(&l->done, &l->lock);
    pthread_mutex_unlock(&l->lock);
}

uint64_t hub_slog_dropped(hub_slog_t *l)
{
    if (!l)
        return 0;
    pthread_mutex_lock(&l->lock);
    uint64_t n = l->dropped;
    pthread_mutex_unlock(&l->lock);
    return n;
}

void hub_slog_stats(hub_slog_t *l, hub_slog_stats_t *out)
{
    pthread_mutex_lock(&l->lock);
    *out = l->stats;
    pthread_mutex_unlock(&l->lock);
}

const char *hub_slog_path(const hub_slog_t *l)
{
    return l->path;
}

const char *hub_slog_ro_uri(const hub_slog_t *l)
{
    return l->uri;
}

int hub_slog_import(hub_slog_t *l, char *err, size_t errlen)
{
    int tables = 0;
    int r = attach_main(l);
    sqlite3_stmt *q = NULL;
    if (r == SQLITE_OK)
        r = sqlite3_prepare_v2(l->db,
                               "SELECT count(*) FROM hub.sqlite_master WHERE type = 'table' "
                               "AND name = 'share_access_log'",
                               -1, &q, NULL);
    if (r == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        tables = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (r == SQLITE_OK && tables == 1)
        r = sqlite3_exec(l->db,
                         "BEGIN IMMEDIATE;"
                         "INSERT OR IGNORE INTO share_access_log (id, share_id, at, method, path, "
                         "status, latency_ms, client) SELECT id, share_id, at, method, path, "
                         "status, latency_ms, client FROM hub.share_access_log;"
                         /* Runs over every row (the imported ones have
                          * ids of their own order). */
                         "DELETE FROM share_access_runs;" RUNS_FROM_ROWS
                         /* AUTOINCREMENT's mark too: ids above the newest
                          * row may have been handed out already. */
                         "INSERT INTO meta (key, value) SELECT 'last_id', "
                         "max(coalesce((SELECT max(id) FROM share_access_log), 0), "
                         "coalesce((SELECT seq FROM hub.sqlite_sequence "
                         "WHERE name = 'share_access_log'), 0)) WHERE true "
                         "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value);"
                         "COMMIT;",
                         NULL, NULL, NULL);
    int rc = r == SQLITE_OK ? 0
                            : cn_errf(CN_EIO, err, errlen, "copying the access log into %s: %s",
                                      l->path, sqlite3_errmsg(l->db));
    if (!sqlite3_get_autocommit(l->db))
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    detach_main(l);
    return rc;
}

/* Checks the file's header and creates the schema on first use. */
static int check_schema(hub_slog_t *l, char *err, size_t errlen)
{
    int app = 0, version = 0, tables = 0, rc = 0;
    sqlite3_stmt *q = NULL;
    int r = sqlite3_exec(l->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    static const char *const reads[] = {"PRAGMA application_id", "PRAGMA user_version",
                                        "SELECT count(*) FROM sqlite_master"};
    int *outs[] = {&app, &version, &tables};
    for (int i = 0; i < 3 && r == SQLITE_OK; i++) {
        r = sqlite3_prepare_v2(l->db, reads[i], -1, &q, NULL);
        if (r == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
            *outs[i] = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
        q = NULL;
    }
    bool foreign = (version > 0 && app != LOG_APPLICATION_ID) ||
                   (version == 0 && (tables > 0 || (app != 0 && app != LOG_APPLICATION_ID)));
    if (r == SQLITE_OK && version == 0 && !foreign)
        r = sqlite3_exec(l->db, schema, NULL, NULL, NULL);
    else if (r == SQLITE_OK && version == 1 && !foreign)
        r = sqlite3_exec(l->db, migrate_1_2, NULL, NULL, NULL);
    if (r != SQLITE_OK)
        rc = cn_errf(CN_EIO, err, errlen, "%s: %s", l->path, sqlite3_errmsg(l->db));
    else if (version > LOG_SCHEMA_VERSION)
        rc = cn_errf(CN_EVERSION, err, errlen,
                     "%s: access log schema version %d is newer than this connect-hub supports",
                     l->path, version);
    else if (foreign)
        rc = cn_errf(CN_EPROTO, err, errlen, "%s: not a connect-hub access log", l->path);
    if (rc == 0 && sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = cn_errf(CN_EIO, err, errlen, "%s: %s", l->path, sqlite3_errmsg(l->db));
    if (!sqlite3_get_autocommit(l->db))
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int hub_slog_open(const hub_slog_options_t *opt, hub_slog_t **out, char *err, size_t errlen)
{
    *out = NULL;
    hub_slog_t *l = calloc(1, sizeof(*l));
    if (!l)
        return cn_errf(CN_ENOMEM, err, errlen, "out of memory");
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->wake, &ca);
    pthread_cond_init(&l->done, &ca);
    pthread_condattr_destroy(&ca);
    size_t cap = opt->queue_bytes ? opt->queue_bytes : HUB_SLOG_QUEUE_BYTES;
    cn_buf_init(&l->front, cap, 0);
    cn_buf_init(&l->back, cap, 0);
    l->half = cap / 2;
    l->step_rows = opt->prune_step_rows ? opt->prune_step_rows : HUB_SLOG_PRUNE_STEP_ROWS;
    int rc = 0;
    if ((size_t)snprintf(l->path, sizeof(l->path), "%s-log", opt->main_path) >= sizeof(l->path) ||
        path_uri(opt->main_path, l->main_uri, sizeof(l->main_uri)) < 0 ||
        path_uri(l->path, l->uri, sizeof(l->uri)) < 0) {
        rc = cn_errf(CN_EINVAL, err, errlen, "%s: path too long", opt->main_path);
        goto fail;
    }
    /* 0600 like the main file (SQLite would use 0644; -wal and -shm copy
     * the file's mode): it holds client addresses and paths. */
    int fd = open(l->path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = cn_errf(CN_EIO, err, errlen, "cannot create %s: %s", l->path, strerror(errno));
        goto fail;
    }
    close(fd);
    int r = sqlite3_open_v2(l->path, &l->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, NULL);
    char mode[16] = "";
    sqlite3_stmt *q = NULL;
    if (r == SQLITE_OK) {
        sqlite3_busy_timeout(l->db, BUSY_TIMEOUT_MS);
        r = sqlite3_prepare_v2(l->db, "PRAGMA journal_mode = WAL", -1, &q, NULL);
    }
    if (r == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        snprintf(mode, sizeof(mode), "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    /* NORMAL even when the main file runs FULL (sync_full): a crash already
     * loses the rows still queued (up to HUB_SLOG_FLUSH_MS of them), and an
     * fsync per commit would protect the committed ones only against a
     * power cut, at a disk flush a second for an access log (docs/store.md).
     * The page cache holds the index pages that each commit changes (about
     * one per share in use: thousands on a busy edge; SQLite's default of
     * 2 MiB made every commit read them again), and the WAL checkpoints
     * every LOG_WAL_PAGES pages rather than 1,000: a checkpoint copies each
     * page once however often the commits since the last one changed it,
     * and with one commit ~1,000 pages the default checkpointed (and
     * fsynced) on almost every commit. */
    if (r == SQLITE_OK)
        r = sqlite3_exec(l->db,
                         "PRAGMA synchronous = NORMAL; PRAGMA cache_size = " LOG_CACHE_KIB
                         "; PRAGMA wal_autocheckpoint = " LOG_WAL_PAGES,
                         NULL, NULL, NULL);
    if (r != SQLITE_OK || strcmp(mode, "wal") != 0) {
        rc = cn_errf(CN_EIO, err, errlen, "cannot open %s: %s", l->path,
                     l->db ? sqlite3_errmsg(l->db) : "out of memory");
        goto fail;
    }
    if ((rc = check_schema(l, err, errlen)) < 0)
        goto fail;
    if (opt->thread) {
        l->threaded = true;
        if (pthread_create(&l->thread, NULL, writer_main, l) != 0) {
            l->threaded = false;
            rc = cn_errf(CN_EIO, err, errlen, "cannot start the access log thread");
            goto fail;
        }
        l->thread_started = true;
    }
    *out = l;
    return 0;
fail:
    hub_slog_close(l);
    return rc;
}

void hub_slog_close(hub_slog_t *l)
{
    if (!l)
        return;
    if (l->thread_started) {
        pthread_mutex_lock(&l->lock);
        l->stop = true;
        pthread_cond_signal(&l->wake);
        pthread_mutex_unlock(&l->lock);
        pthread_join(l->thread, NULL);
    }
    if (l->dropped != l->dropped_logged)
        cn_log_warn("share access log: %llu rows dropped (queue full)",
                    (unsigned long long)(l->dropped - l->dropped_logged));
    for (int i = 0; i < L_COUNT; i++)
        sqlite3_finalize(l->stmt[i]);
    sqlite3_finalize(l->ins_many);
    sqlite3_close(l->db);
    cn_buf_free(&l->front);
    cn_buf_free(&l->back);
    free(l->rowp);
    free(l->order);
    free(l->gid);
    free(l->groups);
    free(l->slots);
    pthread_cond_destroy(&l->done);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
