/* Request inspection (issue 8, docs/guide.md "Inspecting requests"): the
 * HTTP edge records each request it routes to a tunnel or share (method,
 * target, headers with secrets masked, status, timings, body prefixes up to
 * a cap) and the REST API lists, shows and replays them.
 *
 * Where records live: in memory, in one bounded store per hub, not in
 * SQLite. A record is a debugging aid of at most a few KiB that is read
 * within minutes; writing every request's headers and bodies to the
 * database would cost a write per request (or a batch of large ones) on
 * the event-loop thread that also serves the edge, and grow the file for
 * data that is stale within the hour. In memory the edge's whole cost is
 * bounded copies into the record as the bytes pass and one list insert at
 * the end; nothing waits on I/O. The price: records do not survive a
 * restart of the hub, which docs/guide.md says.
 *
 * Bounds: at most `keep` records per tunnel (the oldest go first), none
 * older than `retention_ms` (hub_inspect_sweep), and at most `bytes_max`
 * bytes of records in all (the oldest of the hub go first). Each record
 * holds at most HUB_INSPECT_HEAD_MAX bytes of header text per direction,
 * HUB_INSPECT_TARGET_MAX of target and `body_max` of each body.
 *
 * Conventions
 * - Everything runs on the event-loop thread; nothing is locked.
 * - Records being built are owned by their builder (the edge) until
 *   hub_inspect_commit() takes them; committed records are owned by the
 *   store, and the pointers the queries return are valid until the next
 *   call that changes the store (commit, sweep, free).
 * - Every query takes the caller's workspace: another workspace's records
 *   look like records that never existed. */
#ifndef HUB_INSPECT_H
#define HUB_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http1.h"
#include "store.h"

#define HUB_INSPECT_BODY_MAX_DEFAULT 4096
#define HUB_INSPECT_BODY_MAX_LIMIT 65536u /* a replayed body must fit a socket buffer */
#define HUB_INSPECT_KEEP_DEFAULT 100
#define HUB_INSPECT_KEEP_MAX 10000u
#define HUB_INSPECT_RETENTION_DEFAULT_MS (3600LL * 1000) /* one hour */
#define HUB_INSPECT_BYTES_DEFAULT (64u * 1024 * 1024)
#define HUB_INSPECT_PAGE_MAX 1000u
#define HUB_INSPECT_TARGET_MAX 2048u
#define HUB_INSPECT_HEAD_MAX 8192u /* recorded header text per direction */
#define HUB_INSPECT_MASK "***"

typedef struct hub_inspect_config {
    bool enabled;         /* false: the edge records nothing */
    size_t body_max;      /* body bytes kept per direction; 0 = none */
    size_t keep;          /* records per tunnel; 0 = HUB_INSPECT_KEEP_DEFAULT */
    int64_t retention_ms; /* 0 = HUB_INSPECT_RETENTION_DEFAULT_MS */
    size_t bytes_max;     /* 0 = HUB_INSPECT_BYTES_DEFAULT */
} hub_inspect_config_t;

/* One side's body: the first `len` bytes of `seen`. */
typedef struct hub_inspect_body {
    uint8_t *data; /* owned; NULL when len is 0 */
    size_t len;
    size_t cap; /* bytes allocated at data */
    uint64_t seen;
} hub_inspect_body_t;

/* One request. Fields are read-only outside inspect.c. */
typedef struct hub_inspect_rec {
    uint64_t id;        /* 0 until committed */
    uint64_t replay_of; /* the record this one replays, 0 if none */
    char workspace_id[HUB_ID_SIZE];
    char tunnel_id[HUB_ID_SIZE];
    char share_id[HUB_ID_SIZE]; /* "" when not through a share */
    char method[24];
    char client[64];
    char *target;         /* owned; as received, query included, cut at TARGET_MAX */
    bool target_cut;      /* the target was longer */
    int64_t started;      /* ms since the epoch */
    int64_t first_byte;   /* ms from start to the response head; -1 none */
    int64_t duration;     /* ms from start to the end */
    int status;           /* 499: the client left first */
    char *req_head;       /* owned; "Name: value\n" lines, secrets masked */
    size_t req_head_len;  /* bytes of req_head */
    bool req_head_cut;    /* headers left out: HEAD_MAX reached */
    char *resp_head;      /* owned; likewise, NULL before a response head */
    size_t resp_head_len; /* bytes of resp_head */
    bool resp_head_cut;
    hub_inspect_body_t req_body, resp_body;
    /* The store's own links (inspect.c). */
    size_t body_max;
    size_t bytes;
    struct hub_inspect_rec *older, *newer;     /* hub-wide, by commit */
    struct hub_inspect_rec *t_older, *t_newer; /* within its tunnel */
    struct hub_inspect_bucket *bucket;
} hub_inspect_rec_t;

typedef struct hub_inspect hub_inspect_t;

/* NULL on allocation failure. cfg is copied. */
hub_inspect_t *hub_inspect_new(const hub_inspect_config_t *cfg);
/* Frees every record. NULL is fine. */
void hub_inspect_free(hub_inspect_t *in);
/* Whether the edge records (NULL store: no). */
bool hub_inspect_enabled(const hub_inspect_t *in);

/* ---- building (the edge) ---- */

/* A new record of the request head `h`: method, target, the headers but
 * hop-by-hop ones, with secrets masked (hub_inspect_mask_header); a
 * share's Host label is masked too, as it is the share's secret. NULL when
 * recording is off or memory is short (the request goes on unrecorded). */
hub_inspect_rec_t *hub_inspect_begin(const hub_inspect_t *in, const hub_h1_head_t *h,
                                     const char *workspace_id, const char *tunnel_id,
                                     const char *share_id, const char *client, int64_t now);
/* The response head (interim 1xx are not recorded). */
void hub_inspect_response(hub_inspect_rec_t *r, const hub_h1_head_t *h, int64_t now);
enum hub_inspect_side { HUB_INSPECT_REQ = 0, HUB_INSPECT_RESP = 1 };
/* `n` more body bytes went by: the first body_max are kept, all counted. */
void hub_inspect_body(hub_inspect_rec_t *r, enum hub_inspect_side side, const void *p, size_t n);
/* Takes the record: stamps status and duration, gives it its id (or the
 * one hub_inspect_reserve() gave its replay), files it, and drops what the
 * bounds no longer allow. */
void hub_inspect_commit(hub_inspect_t *in, hub_inspect_rec_t *r, int status, int64_t now);
/* Frees a record that was not committed. NULL is fine. */
void hub_inspect_rec_free(hub_inspect_rec_t *r);
/* Drops records older than the retention. */
void hub_inspect_sweep(hub_inspect_t *in, int64_t now);

/* ---- masking (pure) ---- */

/* Writes header `name` with its value as recorded into dst (NUL-terminated,
 * cut to cap): Authorization and Proxy-Authorization keep their scheme
 * ("Basic ***"); Cookie keeps its names ("a=***; b=***"); Set-Cookie keeps
 * its name and attributes ("sid=***; Path=/; HttpOnly"). Other headers are
 * copied. Returns the length written. */
size_t hub_inspect_mask_header(const char *name, size_t name_len, const char *value,
                               size_t value_len, char *dst, size_t cap);
/* Whether the recorded value of header `name` is masked. */
bool hub_inspect_masked_name(const char *name, size_t name_len);

/* ---- reading (the API) ---- */

/* The record `id` of the workspace, or NULL. */
const hub_inspect_rec_t *hub_inspect_get(const hub_inspect_t *in, const char *workspace_id,
                                         uint64_t id);
/* Up to `limit` records of the tunnel into out[]: newest first with ids
 * below `before` (0: no bound), or, when `forward`, oldest first with ids
 * above `after` (what `connect inspect --follow` polls). Returns the
 * count. */
size_t hub_inspect_list(const hub_inspect_t *in, const char *workspace_id, const char *tunnel_id,
                        uint64_t before, bool forward, uint64_t after, size_t limit,
                        const hub_inspect_rec_t **out);
/* An id for a replay's record, given before the replay runs. */
uint64_t hub_inspect_reserve(hub_inspect_t *in);
/* Marks `r` as the replay of `of` with the reserved id `id`. */
void hub_inspect_set_replay(hub_inspect_rec_t *r, uint64_t of, uint64_t id);

/* ---- replay (pure) ---- */

/* The request `r` records, ready to send again (malloc'd into *out, *len
 * bytes): the same method, target and headers, but masked ones (their
 * secrets were never kept) and Host (set to `host`), and the recorded body.
 * CN_EINVAL with *why when the body was not captured whole (cut at the cap,
 * or its framing incomplete) or the target was cut; CN_ENOMEM. */
int hub_inspect_replay_request(const hub_inspect_rec_t *r, const char *host, char **out,
                               size_t *len, const char **why);

#endif
