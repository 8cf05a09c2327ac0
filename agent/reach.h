/* Setting up one reach: find the tunnel (name or id), ask the hub for its
 * reach (POST /api/v1/tunnels/{id}/connect: local port, connection string,
 * the exposing agent's key), and bind the local port in a daemon. Shared
 * by `connect reach` and by `connect agent`, which sets up the "reach" list
 * of the config file:
 *
 *   "reach": [{"tunnel": "staging-db"}, {"tunnel": "cache", "port": 16379}]
 *
 * Blocking REST calls: never from inside daemon callbacks. */
#ifndef AGENT_REACH_H
#define AGENT_REACH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "daemon.h"

struct cn_api;
struct json_t;

#define AGENT_REACH_HOST "127.0.0.1"
#define AGENT_REACH_MAX 64 /* entries of a config's "reach" list */

/* What a bound reach is. */
typedef struct agent_reach_info {
    char tunnel_id[AGENT_TUNNEL_ID_LEN + 1];
    char name[128]; /* sanitised for messages */
    char protocol[16];
    char connection_string[256];
    int port; /* bound */
} agent_reach_info_t;

/* Finds the tunnel `ref`, asks the hub, binds in `d`: `port` exactly when
 * nonzero (CN_EIO if taken), else the hub's suggestion (the target's port
 * + 10000) when free, else any free port (logged). 0 with *info, or a
 * negative CN_E* with one line in err. */
int agent_reach_open(struct cn_api *api, agent_daemon_t *d, const agent_config_t *cfg,
                     const char *ref, int port, agent_reach_info_t *info, char *err, size_t errlen);

/* One entry of a config's "reach" list. */
typedef struct agent_reach_entry {
    char tunnel[128];
    int port; /* 0 = choose */
} agent_reach_entry_t;

/* Reads the "reach" list of the config file at `path` (absent: 0 entries).
 * 0 with *n, or CN_EINVAL with err naming the bad entry. */
int agent_reach_list_load(const char *path, agent_reach_entry_t *out, size_t cap, size_t *n,
                          char *err, size_t errlen);

#endif
