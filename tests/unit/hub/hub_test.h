/* Helpers shared by the hub's unit tests: scratch directories, file bytes,
 * raw SQL on a database file (to set up what the store would refuse, or to
 * inject failures), a clock the test moves by hand, and a store on a fresh
 * file read by that clock. */
#ifndef HUB_TEST_H
#define HUB_TEST_H

#include "cn_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"

/* Creates a fresh private directory; the caller removes it with
 * hub_test_rmtree(). */
static inline void hub_test_tmpdir(char out[PATH_MAX])
{
    const char *base = getenv("TMPDIR");
    snprintf(out, PATH_MAX, "%s/cn-hubtest-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(out));
}

/* Removes a flat directory made by hub_test_tmpdir() and its files. */
static inline void hub_test_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
    rmdir(dir);
}

/* Whether the file at `path` (absent = false) contains the bytes. */
static inline bool hub_test_file_contains(const char *path, const void *needle, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    bool found = n <= len && memmem(buf, len, needle, n) != NULL;
    free(buf);
    return found;
}

static inline mode_t hub_test_mode(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_mode & 07777;
}

/* Runs `sql` on the database file through a connection of its own. */
static inline void hub_test_sql(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    char *msg = NULL;
    int r = sqlite3_exec(h, sql, NULL, NULL, &msg);
    if (r != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(h);
}

/* A hand-driven clock for hub_clock_fn. */
typedef struct hub_test_clock {
    int64_t now;
} hub_test_clock_t;

static inline int64_t hub_test_clock_read(void *ctx)
{
    return ((hub_test_clock_t *)ctx)->now;
}

/* A store on a fresh database file in a scratch directory, with a key of
 * the test's and the hand-driven clock: the fixture of the store-backed
 * tests. Prepare it with hub_test_store_init(), open it with
 * hub_test_store_open() (or _try_open() where the failure is the point),
 * and end it with hub_test_store_fini(). A copy (`g = *s`) may open a
 * database of its own: the clock it reads is the copy's. */
typedef struct hub_test_store {
    char dir[PATH_MAX];
    char db[PATH_MAX + 16]; /* dir/hub.db */
    uint8_t key[HUB_KEY_BYTES];
    hub_test_clock_t clock;
    hub_store_t *st; /* NULL until opened */
} hub_test_store_t;

/* Makes the directory, names the file in it (not created yet), fills the
 * key from `key_seed` (cn_test_fill) and sets the clock to `now`. */
static inline void hub_test_store_init(hub_test_store_t *s, uint64_t key_seed, int64_t now)
{
    memset(s, 0, sizeof(*s));
    hub_test_tmpdir(s->dir);
    snprintf(s->db, sizeof(s->db), "%s/hub.db", s->dir);
    cn_test_fill(s->key, sizeof(s->key), key_seed);
    s->clock.now = now;
}

/* Opens s->db into s->st with s->key, creating the file when `create`.
 * `opt` (NULL = none) gives the other options; its path, secret_key and
 * create are replaced, and its clock only when it names none (then the
 * store reads s->clock). Returns hub_store_open()'s code; `err` as there. */
static inline int hub_test_store_try_open(hub_test_store_t *s, const hub_store_options_t *opt,
                                          bool create, char *err, size_t errlen)
{
    hub_store_options_t so = opt ? *opt : (hub_store_options_t){0};
    so.path = s->db;
    so.secret_key = s->key;
    so.create = create;
    if (!so.clock) {
        so.clock = hub_test_clock_read;
        so.clock_ctx = &s->clock;
    }
    return hub_store_open(&so, &s->st, err, errlen);
}

/* hub_test_store_try_open() that fails the test with the store's message. */
static inline void hub_test_store_open(hub_test_store_t *s, const hub_store_options_t *opt,
                                       bool create)
{
    char err[256] = "";
    if (hub_test_store_try_open(s, opt, create, err, sizeof(err)) != 0)
        fail_msg("open %s: %s", s->db, err);
}

/* Closes the store (NULL is fine) and removes the directory and its files. */
static inline void hub_test_store_fini(hub_test_store_t *s)
{
    hub_store_close(s->st);
    s->st = NULL;
    hub_test_rmtree(s->dir);
}

#endif
