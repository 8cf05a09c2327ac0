/* Private to hub/store_sqlite*.c: the share access log in a SQLite file of
 * its own (`<database>-log`), written by a thread of its own.
 *
 * Why a second file: every share request appends a row. Written into the
 * main database on the event loop (as before), the rows cost the loop a
 * SQLite transaction per few hundred requests (10% of a share run's
 * samples); written by another connection to the main file, each commit
 * would take the main file's write lock (the loop's API writes would wait)
 * and move its PRAGMA data_version (the share cache empties when it moves).
 * Commits to another file do neither. docs/store.md has the schema.
 *
 * Conventions
 * - The handle is used by the thread that owns the hub_store_t; the writer
 *   thread (log_thread) has its own connection, which no other thread
 *   touches once it runs. The queue between them is two byte buffers under
 *   one mutex: an append copies one compact record into the front buffer;
 *   the writer swaps the buffers (O(1)) and writes the back one in one
 *   transaction without holding the mutex.
 * - Without the thread, every call writes at once on the caller's thread
 *   (tools, unit tests): one code path either way.
 * - Functions return 0 or a negative CN_E* code; `err` gets one line. */
#ifndef HUB_STORE_SQLITE_LOG_H
#define HUB_STORE_SQLITE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Bytes of queued rows the front buffer holds at most (a row is 64 bytes
 * plus its method, path and client: 100-150 bytes for most requests, 670
 * at most), so at most twice this is queued in memory (the buffers grow
 * to it only under such a load); rows beyond it are dropped and counted.
 * 8 MiB is 12,000 of the longest rows, ~70,000 typical ones: about two
 * seconds of a busy hub's share requests (40,000-50,000 a second on two
 * cores). The writer takes the buffer when it is half full if its second
 * is not over, so a turn has the other half's time to write, and a busy
 * edge still commits about once a second: each commit dirties about a
 * page per share in use (its newest run), and with 4 MiB such an edge
 * committed twice a second (1,000 shares: 0.66-0.71 us of writer CPU a
 * row over 40 s against 0.51-0.54, docs/performance.md). */
#define HUB_SLOG_QUEUE_BYTES (8u << 20)
/* A row waits at most about this long before the writer commits it (less
 * when the front buffer passes half full, a reader asks with
 * hub_slog_flush(), or the log closes). Each commit dirties about one
 * page per share in use (its run; an index page in schema version 1), so
 * the interval sets the writer's page I/O on a busy edge: with 1,000 shares
 * in use, 100 ms cost a share request ~3 us of CPU more than 1 s in
 * version 1 (docs/performance.md), and a longer batch makes longer runs.
 * Visibility does not depend on it: the list asks the writer to commit
 * first. */
#define HUB_SLOG_FLUSH_MS 1000
/* How long a read of the log (the list, on the event loop) waits at most
 * for the writer to commit the rows queued before it. */
#define HUB_SLOG_READ_WAIT_MS 250

/* Rows a retention step deletes at most (or one run, a share's rows of
 * one batch, when that alone is larger) before its transaction commits. A pass of
 * retention is a series of such steps, and the writer commits the rows
 * queued meanwhile between them about once a HUB_SLOG_FLUSH_MS as
 * usual. In one transaction a pass held the writer for as long as it
 * took: with 1,000 shares at 10,000 rows each (10 M) and 40,000 share
 * requests a second, the minute's pass deleted 2.3 M rows in 6.4 s, the
 * queue filled after ~2 s and 180,000 rows a minute were dropped (and
 * the WAL grew to 260 MB for the one transaction: docs/performance.md).
 * A row deleted costs the writer about as much as one written (~1.4 us
 * of CPU, ~2.7 us in all), so a step is ~50 ms. */
#define HUB_SLOG_PRUNE_STEP_ROWS 20000

typedef struct hub_slog hub_slog_t;

typedef struct hub_slog_options {
    const char *main_path;  /* the main database; the log is main_path + "-log" */
    bool thread;            /* a writer thread (serve) */
    size_t queue_bytes;     /* 0 = HUB_SLOG_QUEUE_BYTES */
    size_t prune_step_rows; /* 0 = HUB_SLOG_PRUNE_STEP_ROWS */
} hub_slog_options_t;

/* Opens (creating it 0600 when missing) the log file, creates its schema,
 * attaches the main file read-only (for import and retention). */
int hub_slog_open(const hub_slog_options_t *opt, hub_slog_t **out, char *err, size_t errlen);
/* Copies the rows of the main file's old share_access_log table, when it
 * has one, into the log file, keeping their ids (again: nothing happens
 * twice). Called by the main migration right before the step that drops
 * that table, while it holds the main file's write lock. */
int hub_slog_import(hub_slog_t *l, char *err, size_t errlen);
/* Queues one row (with the thread) or writes it at once. CN_EEXHAUSTED
 * when the queue is full (the row is dropped and counted). */
int hub_slog_append(hub_slog_t *l, const char *share_id, const hub_share_log_row_t *r);
/* Retention, on the writer's connection: drops rows older than `before`,
 * all but the newest `keep` of each share, and every row of a share that
 * is no longer in the main file's shares, in steps of at most about
 * HUB_SLOG_PRUNE_STEP_ROWS rows, each its own transaction. With the
 * thread it is queued (the writer runs the steps between its batches;
 * asked again while a pass runs, the next pass follows it) and *count
 * gets 0; hub_slog_close() writes the queued rows but does not finish a
 * pass (the steps taken stay done). */
int hub_slog_prune(hub_slog_t *l, int64_t before, size_t keep, size_t *count);
/* Returns once every row appended and every prune asked for before the
 * call has been handled. */
void hub_slog_sync(hub_slog_t *l);
/* Asks the writer to commit the rows appended before the call now, and
 * waits for that at most timeout_ms (prunes are not waited for): 0 when
 * they are handled (written or lost), CN_ETIMEOUT when some were still
 * queued at the deadline (they follow in the writer's next turns). At once
 * without the thread or with NULL. */
int hub_slog_flush(hub_slog_t *l, unsigned timeout_ms);
/* Rows dropped because the queue was full, since open. */
uint64_t hub_slog_dropped(hub_slog_t *l);

/* What the writer's turns cost since open (bench/bench_share_log.c reads
 * them: a commit's time and the pages it had to read are what grows with
 * the size of the file, docs/performance.md). CPU is the writer thread's
 * own (CLOCK_THREAD_CPUTIME_ID); pages read are its connection's page
 * cache misses (SQLITE_DBSTATUS_CACHE_MISS): reads from the file or its
 * WAL, from the kernel's page cache or the disk. */
typedef struct hub_slog_cost {
    uint64_t n;                    /* how many */
    uint64_t cpu_ns;               /* the writer's CPU in them */
    uint64_t wall_ns, wall_max_ns; /* their time, and the longest */
    uint64_t pages_read;           /* page cache misses in them */
} hub_slog_cost_t;
typedef struct hub_slog_stats {
    hub_slog_cost_t commits;     /* batches written, BEGIN to COMMIT */
    uint64_t rows;               /* their rows */
    hub_slog_cost_t prune_steps; /* retention steps (a transaction each) */
    uint64_t prunes;             /* retention passes finished (hub_slog_prune) */
    uint64_t pruned;             /* rows they deleted, and the most in one step */
    uint64_t prune_step_rows_max;
} hub_slog_stats_t;
void hub_slog_stats(hub_slog_t *l, hub_slog_stats_t *out);
/* The log file's path (main_path + "-log"). */
const char *hub_slog_path(const hub_slog_t *l);
/* "file:PATH-log?mode=ro": what the main connection ATTACHes to read the
 * log (read-only, so its BEGIN IMMEDIATE never takes the log's write lock;
 * the connection needs SQLITE_OPEN_URI). */
const char *hub_slog_ro_uri(const hub_slog_t *l);
/* Writes what is queued, stops the thread, closes. NULL is fine. */
void hub_slog_close(hub_slog_t *l);

#endif
