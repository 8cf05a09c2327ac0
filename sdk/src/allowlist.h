/* The agent's allow-list: the tunnels the hub says this agent exposes,
 * replaced whole by every `hello` and `tunnels` CONTROL message or a whole
 * paged list, one entry's status changed by a `tunnel_status` message, one
 * entry added, replaced or dropped by `tunnel_upsert` / `tunnel_remove`
 * (docs/agent-protocol.md), and the one decision that guards the agent
 * against being used as a proxy: a stream the hub opens is dialed only when
 * it is a TCP stream whose ref is the id of a listed, not paused, tunnel,
 * and then only to that tunnel's target.
 *
 * The hub is not trusted to pick targets on the agent's network, so a
 * second, agent-local policy (agent_policy_t) decides which targets may be
 * dialled at all: patterns the hub cannot change, from this machine's
 * config file and its own `connect expose` commands (config.h). Deny by
 * default; docs/security.md argues it. */
#ifndef AGENT_ALLOWLIST_H
#define AGENT_ALLOWLIST_H

#include "cn_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cn_target.h"

struct json_t;

#define AGENT_ALLOWLIST_MAX 4096 /* tunnels kept; more are ignored */
#define AGENT_TUNNEL_ID_LEN 36
#define AGENT_TUNNEL_NAME_MAX 100

typedef struct agent_tunnel {
    char id[AGENT_TUNNEL_ID_LEN + 1];
    char name[AGENT_TUNNEL_NAME_MAX + 1];
    char host[CN_TARGET_HOST_SIZE];
    uint16_t port;
    char protocol[32]; /* "tcp", "http", ... or a plugin name (at most 31) */
    char status[16];
    /* protocol https: how the target's certificate is checked, from the
     * tunnel's metadata "tls": {"caFile", "serverName", "insecure"}. */
    char tls_ca_file[256]; /* "" = the system CA store */
    char tls_name[256];    /* "" = the target host */
    bool tls_insecure;     /* no verification at all (opt-in, logged) */
} agent_tunnel_t;

typedef struct agent_allowlist {
    agent_tunnel_t *items; /* in the hub's order */
    size_t count;
    /* items' indexes sorted by id, case-insensitively: a lookup (every
     * stream the hub opens) is a binary search, not a walk of up to 4,096
     * entries, and a list's repeated ids are found in one sort. */
    uint32_t *by_id;
    size_t cap; /* room in items and by_id (upserts grow both) */
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

/* Applies one tunnel's new status (CONTROL "tunnel_status"): the rest of
 * the list stands. Returns 1 when the listed tunnel `id` changed status,
 * 0 when it is not listed (a list under way will say) or already had it,
 * CN_EINVAL for a status that is empty or too long. */
CN_WARN_UNUSED int agent_allowlist_set_status(agent_allowlist_t *l, const char *id,
                                              const char *status);

/* Adds or replaces one entry (CONTROL "tunnel_upsert": a T object as in a
 * list), as a list with it would: a new id goes last in the hub's order, a
 * listed one is replaced in place. Returns 1 when the list changed, 0 when
 * the entry was listed as it is, CN_EINVAL for an entry a list would skip
 * (a malformed message), CN_ETOOBIG when a new id would take the list
 * above AGENT_ALLOWLIST_MAX, CN_ENOMEM; the list stands on every error.
 * Pointers into the list are invalid after it. */
CN_WARN_UNUSED int agent_allowlist_upsert(agent_allowlist_t *l, const struct json_t *entry);

/* Drops tunnel `id` (CONTROL "tunnel_remove"). Returns 1 when it was
 * listed, 0 when not (a list under way will not have it either),
 * CN_EINVAL for an id that is not a UUID. Pointers into the list are
 * invalid after it. */
CN_WARN_UNUSED int agent_allowlist_remove(agent_allowlist_t *l, const char *id);

/* May a tunnel in this status carry streams? Not when paused or expired. */
bool agent_tunnel_open(const agent_tunnel_t *t);

/* The decision for a stream the hub opened: returns 0 and sets *t when it
 * may be dialed, else the CN_RST_* code to reject it with (CN_RST_REFUSED:
 * wrong kind, unknown ref, paused or expired tunnel) and a short reason in
 * *why. */
uint32_t agent_allowlist_check(const agent_allowlist_t *l, uint8_t kind, const uint8_t *ref,
                               size_t ref_len, const agent_tunnel_t **t, const char **why);

/* ---- agent-local target policy ----------------------------------------- */

/* The lastError the hub shows for a tunnel this policy refuses. */
#define AGENT_POLICY_REFUSED "target not allowed by the agent's policy"
#define AGENT_POLICY_PATTERN_MAX 300

/* One pattern, HOST:PORTS.
 *   HOST  = "*" (any host) | IPv4 address or CIDR ("10.0.0.0/8") |
 *           "[" IPv6 address or CIDR "]" ("[fd00::/8]", "[::1]") |
 *           "*." DNS suffix ("*.internal": names under it, not itself) |
 *           a DNS name ("db.internal", "localhost"; no case)
 *   PORTS = "*" | N | N-M
 * Addresses match IP-literal targets only and names match name targets
 * only: a name is not resolved to test it against a CIDR (DNS answers are
 * the hub's to influence as much as anyone's), and an address target is
 * never allowed by a name. */
typedef struct agent_policy_entry {
    enum { AGENT_POL_ANY, AGENT_POL_NAME, AGENT_POL_SUFFIX, AGENT_POL_NET } kind;
    char name[CN_TARGET_HOST_SIZE]; /* NAME: the name; SUFFIX: ".internal" (lowercase) */
    int family;                     /* NET: AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix; /* NET: prefix length in bits */
    uint16_t port_lo, port_hi;
} agent_policy_entry_t;

/* Owns its entries; zero-initialise, fill with agent_policy_add(), release
 * with agent_policy_free(). An empty policy allows nothing. */
typedef struct agent_policy {
    agent_policy_entry_t *items;
    size_t count, cap;
} agent_policy_t;

/* Parses one pattern and appends it. CN_EINVAL with a sentence in `err`
 * saying what is wrong; CN_ENOMEM. */
int agent_policy_add(agent_policy_t *p, const char *pattern, char *err, size_t errlen);
/* Adds exactly HOST:PORT (a target some expose named). */
int agent_policy_add_target(agent_policy_t *p, const char *host, uint16_t port);
/* Whether the target (as cn_target_parse() gives it: IPv6 without
 * brackets) may be dialled. */
bool agent_policy_allows(const agent_policy_t *p, const char *host, uint16_t port);
void agent_policy_free(agent_policy_t *p);

#endif
