/* The agent's allow-list: the tunnels the hub says this agent exposes,
 * replaced whole by every `hello` and `tunnels` CONTROL message
 * (docs/agent-protocol.md), and the one decision that guards the agent
 * against being used as a proxy: a stream the hub opens is dialed only when
 * it is a TCP stream whose ref is the id of a listed, not paused, tunnel,
 * and then only to that tunnel's target. */
#ifndef AGENT_ALLOWLIST_H
#define AGENT_ALLOWLIST_H

#include "cn_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parse.h"

struct json_t;

#define AGENT_ALLOWLIST_MAX 4096 /* tunnels kept; more are ignored */
#define AGENT_TUNNEL_ID_LEN 36
#define AGENT_TUNNEL_NAME_MAX 100

typedef struct agent_tunnel {
    char id[AGENT_TUNNEL_ID_LEN + 1];
    char name[AGENT_TUNNEL_NAME_MAX + 1];
    char host[AGENT_HOST_MAX + 1];
    uint16_t port;
    char protocol[16];
    char status[16];
} agent_tunnel_t;

typedef struct agent_allowlist {
    agent_tunnel_t *items;
    size_t count;
} agent_allowlist_t;

/* Builds a list from the JSON array `tunnels` (T objects: id, name, target
 * {host,port} or "host:port", protocol, status). Malformed entries are
 * skipped and counted in *skipped (optional): an entry we cannot read is an
 * entry we do not dial. Returns 0, CN_EINVAL when `tunnels` is not an
 * array, CN_ENOMEM. *out is replaced only on success. */
CN_WARN_UNUSED int agent_allowlist_parse(const struct json_t *tunnels, agent_allowlist_t *out,
                                         size_t *skipped);
void agent_allowlist_free(agent_allowlist_t *l);

const agent_tunnel_t *agent_allowlist_find(const agent_allowlist_t *l, const char *id,
                                           size_t id_len);

/* May a tunnel in this status carry streams? Not when paused or expired. */
bool agent_tunnel_open(const agent_tunnel_t *t);

/* The decision for a stream the hub opened: returns 0 and sets *t when it
 * may be dialed, else the CN_RST_* code to reject it with (CN_RST_REFUSED:
 * wrong kind, unknown ref, paused or expired tunnel) and a short reason in
 * *why. */
uint32_t agent_allowlist_check(const agent_allowlist_t *l, uint8_t kind, const uint8_t *ref,
                               size_t ref_len, const agent_tunnel_t **t, const char **why);

#endif
