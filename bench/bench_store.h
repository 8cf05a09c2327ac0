/* What the in-process store benchmarks share: a hub store on a fresh file
 * in a temporary directory, with one workspace, one agent and one public
 * HTTP tunnel "web" to hang shares on; and its removal. Set-up failures
 * stop the benchmark (bench_check). */
#ifndef CN_BENCH_STORE_H
#define CN_BENCH_STORE_H

#include "bench.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

typedef struct bench_store {
    char dir[64];
    char db[PATH_MAX];
    hub_store_t *st;
    hub_workspace_t ws;
    hub_agent_t agent;
    hub_tunnel_t web; /* cleared by bench_store_close */
} bench_store_t;

/* `tag` names the directory (/tmp/cn-bench-TAG-XXXXXX); `log_thread`:
 * the access log written by its thread, as `serve` opens the store. */
static inline void bench_store_open(bench_store_t *b, const char *tag, bool log_thread)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->dir, sizeof(b->dir), "/tmp/cn-bench-%s-XXXXXX", tag);
    if (!mkdtemp(b->dir))
        bench_check(CN_EIO, "temporary directory");
    snprintf(b->db, sizeof(b->db), "%s/hub.db", b->dir);
    uint8_t key[HUB_KEY_BYTES] = {7};
    /* external_check_ms as `serve` opens it: another process's commit is
     * asked about at most once a millisecond. */
    hub_store_options_t so = {.path = b->db,
                              .secret_key = key,
                              .create = true,
                              .log_thread = log_thread,
                              .external_check_ms = 1};
    char err[256] = "";
    if (hub_store_open(&so, &b->st, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench: open: %s\n", err);
        exit(1);
    }
    char tok[HUB_TOKEN_STR_SIZE];
    bench_check(hub_store_workspace_create(b->st, "bench", &b->ws), "workspace");
    bench_check(hub_store_agent_create(b->st, b->ws.id, "bench", 0, 0, tok, &b->agent), "agent");
    hub_tunnel_spec_t sp = {.name = "web",
                            .agent_id = b->agent.id,
                            .target_host = "127.0.0.1",
                            .target_port = 8080,
                            .protocol = HUB_PROTO_HTTP,
                            .is_public = true};
    bench_check(hub_store_tunnel_create(b->st, b->ws.id, &sp, &b->web, NULL), "tunnel");
}

/* Closes the store and removes its files and directory. */
static inline void bench_store_close(bench_store_t *b)
{
    hub_tunnel_clear(&b->web);
    hub_store_close(b->st);
    b->st = NULL;
    static const char *const ext[] = {"", "-wal", "-shm", "-log", "-log-wal", "-log-shm"};
    char p[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", b->db, ext[i]);
        unlink(p);
    }
    rmdir(b->dir);
}

#endif
