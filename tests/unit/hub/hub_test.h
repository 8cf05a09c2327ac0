/* Helpers shared by the hub's unit tests: scratch directories, file bytes,
 * raw SQL on a database file (to set up what the store would refuse, or to
 * inject failures), and a clock the test moves by hand. */
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

#endif
