/* Allow-list parsing and the stream admission decision. */
#include "allowlist.h"

#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_frame.h"
#include "cn_id.h"
#include "cn_target.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static bool copy_str(const json_t *v, char *out, size_t outlen, bool required)
{
    const char *s = json_string_value(v);
    if (!s)
        return !required && !v;
    size_t n = strlen(s);
    if (n >= outlen || n != json_string_length(v))
        return false;
    memcpy(out, s, n + 1);
    return true;
}

/* The optional "tls" object of an https tunnel. */
static bool read_tls(const json_t *v, agent_tunnel_t *t)
{
    if (!v)
        return true;
    const json_t *insecure = json_object_get(v, "insecure");
    if (!json_is_object(v) || (insecure && !json_is_boolean(insecure)))
        return false;
    t->tls_insecure = json_is_true(insecure);
    return copy_str(json_object_get(v, "caFile"), t->tls_ca_file, sizeof(t->tls_ca_file), false) &&
           copy_str(json_object_get(v, "serverName"), t->tls_name, sizeof(t->tls_name), false);
}

static bool read_target(const json_t *v, agent_tunnel_t *t)
{
    if (json_is_object(v)) {
        const char *host = json_string_value(json_object_get(v, "host"));
        json_t *port = json_object_get(v, "port");
        if (!host || !json_is_integer(port))
            return false;
        json_int_t p = json_integer_value(port);
        if (p < 1 || p > 65535)
            return false;
        /* Re-check the host as a target would be checked. */
        char text[CN_TARGET_TEXT_MAX + 1];
        cn_target_format(host, (unsigned)p, text, sizeof(text));
        return cn_target_parse(text, CN_TARGET_BARE_PORT, t->host, &t->port, NULL);
    }
    if (json_is_string(v))
        return cn_target_parse(json_string_value(v), CN_TARGET_BARE_PORT, t->host, &t->port, NULL);
    return false;
}

/* One T object of a list or an upsert into *t (zeroed first). */
static bool read_entry(const json_t *e, agent_tunnel_t *t)
{
    memset(t, 0, sizeof(*t));
    return json_is_object(e) && copy_str(json_object_get(e, "id"), t->id, sizeof(t->id), true) &&
           cn_id_is_uuid(t->id) &&
           copy_str(json_object_get(e, "name"), t->name, sizeof(t->name), false) &&
           copy_str(json_object_get(e, "protocol"), t->protocol, sizeof(t->protocol), false) &&
           copy_str(json_object_get(e, "status"), t->status, sizeof(t->status), false) &&
           read_target(json_object_get(e, "target"), t) && read_tls(json_object_get(e, "tls"), t);
}

/* Orders indexes by their entries' ids, ties by position: the first of a
 * repeated id sorts first. qsort has no context argument, hence the
 * pointer; per thread, as embedded tunnels may parse on several. */
static _Thread_local const agent_tunnel_t *sort_items;

static int by_id_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    int c = strncasecmp(sort_items[x].id, sort_items[y].id, AGENT_TUNNEL_ID_LEN);
    return c ? c : (x > y) - (x < y);
}

static void sort_by_id(agent_allowlist_t *l)
{
    for (size_t i = 0; i < l->count; i++)
        l->by_id[i] = (uint32_t)i;
    if (l->count < 2)
        return;
    sort_items = l->items;
    qsort(l->by_id, l->count, sizeof(*l->by_id), by_id_cmp);
    sort_items = NULL;
}

int agent_allowlist_parse(const json_t *tunnels, agent_allowlist_t *out, size_t *skipped)
{
    if (skipped)
        *skipped = 0;
    if (!json_is_array(tunnels))
        return CN_EINVAL;
    size_t n = json_array_size(tunnels);
    if (n > AGENT_ALLOWLIST_MAX) {
        if (skipped)
            *skipped += n - AGENT_ALLOWLIST_MAX;
        n = AGENT_ALLOWLIST_MAX;
    }
    agent_allowlist_t l = {0};
    if (n) {
        l.items = calloc(n, sizeof(*l.items));
        l.by_id = calloc(n, sizeof(*l.by_id));
        if (!l.items || !l.by_id) {
            agent_allowlist_free(&l);
            return CN_ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!read_entry(json_array_get(tunnels, i), &l.items[l.count])) {
            if (skipped)
                (*skipped)++;
            continue;
        }
        l.count++;
    }
    /* A repeated id keeps its first entry: in the sorted order the others
     * follow it; they are dropped and what is left sorted again. */
    sort_by_id(&l);
    size_t repeated = 0;
    for (size_t i = 1, head = 0; i < l.count; i++) {
        agent_tunnel_t *t = &l.items[l.by_id[i]];
        if (strncasecmp(t->id, l.items[l.by_id[head]].id, AGENT_TUNNEL_ID_LEN) != 0) {
            head = i;
            continue;
        }
        t->id[0] = '\0'; /* not a UUID: marks it for the sweep below */
        repeated++;
    }
    if (repeated) {
        size_t kept = 0;
        for (size_t k = 0; k < l.count; k++)
            if (l.items[k].id[0])
                l.items[kept++] = l.items[k];
        l.count = kept;
        if (skipped)
            *skipped += repeated;
        sort_by_id(&l);
    }
    l.cap = n;
    agent_allowlist_free(out);
    *out = l;
    return 0;
}

/* Where id sits (or would go) in l->by_id; *found whether it is there. */
static size_t by_id_slot(const agent_allowlist_t *l, const char *id, bool *found)
{
    size_t lo = 0, hi = l->count;
    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strncasecmp(l->items[l->by_id[mid]].id, id, AGENT_TUNNEL_ID_LEN);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool same_entry(const agent_tunnel_t *a, const agent_tunnel_t *b)
{
    return !strcmp(a->id, b->id) && !strcmp(a->name, b->name) && !strcmp(a->host, b->host) &&
           a->port == b->port && !strcmp(a->protocol, b->protocol) &&
           !strcmp(a->status, b->status) && !strcmp(a->tls_ca_file, b->tls_ca_file) &&
           !strcmp(a->tls_name, b->tls_name) && a->tls_insecure == b->tls_insecure;
}

int agent_allowlist_upsert(agent_allowlist_t *l, const json_t *entry)
{
    agent_tunnel_t t;
    if (!read_entry(entry, &t))
        return CN_EINVAL;
    bool found;
    size_t slot = by_id_slot(l, t.id, &found);
    if (found) {
        agent_tunnel_t *cur = &l->items[l->by_id[slot]];
        if (same_entry(cur, &t))
            return 0;
        *cur = t;
        return 1;
    }
    if (l->count >= AGENT_ALLOWLIST_MAX)
        return CN_ETOOBIG;
    if (l->count == l->cap) {
        /* Grown by half again: N creations cost O(N) copies in all. */
        size_t cap = l->cap < 16 ? 16 : l->cap + l->cap / 2;
        if (cap > AGENT_ALLOWLIST_MAX)
            cap = AGENT_ALLOWLIST_MAX;
        agent_tunnel_t *items = realloc(l->items, cap * sizeof(*items));
        if (!items)
            return CN_ENOMEM;
        l->items = items;
        uint32_t *by_id = realloc(l->by_id, cap * sizeof(*by_id));
        if (!by_id)
            return CN_ENOMEM; /* items merely grew: the list stands */
        l->by_id = by_id;
        l->cap = cap;
    }
    /* Last in the hub's order, as a list read after the creation has it. */
    l->items[l->count] = t;
    memmove(&l->by_id[slot + 1], &l->by_id[slot], (l->count - slot) * sizeof(*l->by_id));
    l->by_id[slot] = (uint32_t)l->count;
    l->count++;
    return 1;
}

int agent_allowlist_remove(agent_allowlist_t *l, const char *id)
{
    if (!id || !cn_id_is_uuid(id))
        return CN_EINVAL;
    bool found;
    size_t slot = by_id_slot(l, id, &found);
    if (!found)
        return 0;
    uint32_t at = l->by_id[slot];
    memmove(&l->items[at], &l->items[at + 1], (l->count - at - 1) * sizeof(*l->items));
    memmove(&l->by_id[slot], &l->by_id[slot + 1], (l->count - slot - 1) * sizeof(*l->by_id));
    l->count--;
    for (size_t i = 0; i < l->count; i++)
        if (l->by_id[i] > at)
            l->by_id[i]--;
    return 1;
}

void agent_allowlist_free(agent_allowlist_t *l)
{
    if (!l)
        return;
    free(l->items);
    free(l->by_id);
    l->items = NULL;
    l->by_id = NULL;
    l->count = 0;
    l->cap = 0;
}

const agent_tunnel_t *agent_allowlist_find(const agent_allowlist_t *l, const char *id,
                                           size_t id_len)
{
    if (id_len != AGENT_TUNNEL_ID_LEN || !l->count)
        return NULL;
    size_t lo = 0, hi = l->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const agent_tunnel_t *t = &l->items[l->by_id[mid]];
        int c = strncasecmp(t->id, id, AGENT_TUNNEL_ID_LEN);
        if (c == 0)
            return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int agent_allowlist_set_status(agent_allowlist_t *l, const char *id, const char *status)
{
    size_t n = status ? strlen(status) : 0;
    if (!id || !n || n >= sizeof(l->items[0].status))
        return CN_EINVAL;
    agent_tunnel_t *t = (agent_tunnel_t *)agent_allowlist_find(l, id, strlen(id));
    if (!t || !strcmp(t->status, status))
        return 0;
    memcpy(t->status, status, n + 1);
    return 1;
}

bool agent_tunnel_open(const agent_tunnel_t *t)
{
    return strcmp(t->status, "paused") != 0 && strcmp(t->status, "expired") != 0;
}

uint32_t agent_allowlist_check(const agent_allowlist_t *l, uint8_t kind, const uint8_t *ref,
                               size_t ref_len, const agent_tunnel_t **t, const char **why)
{
    *t = NULL;
    /* TCP or UDP from the public edge, RELAY from an agent reaching the
     * tunnel. */
    if (kind != CN_KIND_TCP && kind != CN_KIND_UDP && kind != CN_KIND_RELAY) {
        *why = "stream kind not served by this agent";
        return CN_RST_REFUSED;
    }
    if (!ref || ref_len != AGENT_TUNNEL_ID_LEN || memchr(ref, '\0', ref_len)) {
        *why = "unknown tunnel";
        return CN_RST_REFUSED;
    }
    const agent_tunnel_t *found = agent_allowlist_find(l, (const char *)ref, ref_len);
    if (!found) {
        *why = "unknown tunnel";
        return CN_RST_REFUSED;
    }
    if (!agent_tunnel_open(found)) {
        *why = "tunnel not active";
        return CN_RST_REFUSED;
    }
    /* A public stream's kind must match the tunnel: UDP flows only for
     * udp tunnels, TCP connections only for the others. */
    if (kind != CN_KIND_RELAY && (kind == CN_KIND_UDP) != !strcmp(found->protocol, "udp")) {
        *why = "stream kind does not match the tunnel's protocol";
        return CN_RST_REFUSED;
    }
    *t = found;
    *why = NULL;
    return 0;
}

/* ---- agent-local target policy ----------------------------------------- */

static int pol_fail(char *err, size_t errlen, const char *pattern, const char *why)
{
    return cn_errf(CN_EINVAL, err, errlen, "allow pattern '%.80s': %s", pattern, why);
}

/* "*", "N" or "N-M" into [lo, hi]. */
static bool parse_ports(const char *s, uint16_t *lo, uint16_t *hi)
{
    if (!strcmp(s, "*")) {
        *lo = 1;
        *hi = 65535;
        return true;
    }
    unsigned long a = 0, b = 0;
    const char *p = s;
    int n = 0;
    for (; *p >= '0' && *p <= '9' && n < 6; p++, n++)
        a = a * 10 + (unsigned long)(*p - '0');
    if (n == 0 || n > 5)
        return false;
    b = a;
    if (*p == '-') {
        p++;
        n = 0;
        b = 0;
        for (; *p >= '0' && *p <= '9' && n < 6; p++, n++)
            b = b * 10 + (unsigned long)(*p - '0');
        if (n == 0 || n > 5)
            return false;
    }
    if (*p || a < 1 || b > 65535 || a > b)
        return false;
    *lo = (uint16_t)a;
    *hi = (uint16_t)b;
    return true;
}

/* An address with an optional "/prefix" into e. */
static bool parse_net(const char *s, int family, agent_policy_entry_t *e)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (strlen(s) >= sizeof(buf))
        return false;
    snprintf(buf, sizeof(buf), "%s", s);
    unsigned max = family == AF_INET ? 32 : 128;
    unsigned prefix = max;
    char *slash = strchr(buf, '/');
    if (slash) {
        *slash++ = '\0';
        char *end = NULL;
        if (!*slash || strlen(slash) > 3)
            return false;
        unsigned long v = strtoul(slash, &end, 10);
        if (*end || v > max)
            return false;
        prefix = (unsigned)v;
    }
    if (inet_pton(family, buf, e->addr) != 1)
        return false;
    e->family = family;
    e->prefix = prefix;
    e->kind = AGENT_POL_NET;
    return true;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* Drops one trailing dot: "db.internal." and "db.internal" are one name. */
static void no_root_dot(char *s)
{
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '.')
        s[n - 1] = '\0';
}

static int policy_push(agent_policy_t *p, const agent_policy_entry_t *e)
{
    if (p->count == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 8;
        agent_policy_entry_t *n = realloc(p->items, ncap * sizeof(*n));
        if (!n)
            return CN_ENOMEM;
        p->items = n;
        p->cap = ncap;
    }
    p->items[p->count++] = *e;
    return 0;
}

int agent_policy_add(agent_policy_t *p, const char *pattern, char *err, size_t errlen)
{
    if (!pattern || !*pattern)
        return pol_fail(err, errlen, "", "empty");
    if (strlen(pattern) > AGENT_POLICY_PATTERN_MAX)
        return pol_fail(err, errlen, pattern, "too long");
    char host[AGENT_POLICY_PATTERN_MAX + 1];
    const char *ports;
    agent_policy_entry_t e;
    memset(&e, 0, sizeof(e));
    if (pattern[0] == '[') {
        const char *close = strchr(pattern, ']');
        if (!close || close[1] != ':')
            return pol_fail(err, errlen, pattern, "an IPv6 host is written [ADDR]:PORTS");
        size_t n = (size_t)(close - pattern - 1);
        memcpy(host, pattern + 1, n);
        host[n] = '\0';
        ports = close + 2;
        if (!parse_net(host, AF_INET6, &e))
            return pol_fail(err, errlen, pattern, "not an IPv6 address or CIDR");
    } else {
        const char *colon = strrchr(pattern, ':');
        if (!colon)
            return pol_fail(err, errlen, pattern, "needs a port: HOST:PORT, HOST:N-M or HOST:*");
        size_t n = (size_t)(colon - pattern);
        memcpy(host, pattern, n);
        host[n] = '\0';
        ports = colon + 1;
        if (strchr(host, ':'))
            return pol_fail(err, errlen, pattern, "write IPv6 hosts in brackets: [ADDR]:PORTS");
        if (!strcmp(host, "*")) {
            e.kind = AGENT_POL_ANY;
        } else if (host[0] >= '0' && host[0] <= '9' && strspn(host, "0123456789./") == n) {
            if (!parse_net(host, AF_INET, &e))
                return pol_fail(err, errlen, pattern, "not an IPv4 address or CIDR");
        } else {
            bool suffix = !strncmp(host, "*.", 2);
            const char *name = suffix ? host + 1 : host;
            /* The same rules as a target's host: check it as one. */
            char probe[AGENT_POLICY_PATTERN_MAX + 8], parsed[CN_TARGET_HOST_SIZE];
            uint16_t port;
            snprintf(probe, sizeof(probe), "%s:1", suffix ? name + 1 : name);
            if (!*name || !cn_target_parse(probe, 0, parsed, &port, NULL) ||
                strchr(name + (suffix ? 1 : 0), '*'))
                return pol_fail(err, errlen, pattern,
                                "not a host name, *.SUFFIX, address, CIDR or *");
            size_t nl = strlen(name);
            if (nl >= sizeof(e.name))
                return pol_fail(err, errlen, pattern, "host name too long");
            e.kind = suffix ? AGENT_POL_SUFFIX : AGENT_POL_NAME;
            memcpy(e.name, name, nl + 1);
            lower(e.name);
            no_root_dot(e.name);
        }
    }
    if (!parse_ports(ports, &e.port_lo, &e.port_hi))
        return pol_fail(err, errlen, pattern, "ports must be *, N or N-M within 1-65535");
    if (policy_push(p, &e) < 0)
        return cn_errf(CN_ENOMEM, err, errlen, "out of memory");
    return 0;
}

int agent_policy_add_target(agent_policy_t *p, const char *host, uint16_t port)
{
    char text[CN_TARGET_TEXT_MAX + 1];
    cn_target_format(host, port, text, sizeof(text));
    return agent_policy_add(p, text, NULL, 0);
}

static bool net_contains(const agent_policy_entry_t *e, const uint8_t *addr)
{
    unsigned full = e->prefix / 8, rest = e->prefix % 8;
    if (memcmp(e->addr, addr, full) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (e->addr[full] & mask) == (addr[full] & mask);
}

bool agent_policy_allows(const agent_policy_t *p, const char *host, uint16_t port)
{
    if (!p || !host || !*host || port == 0)
        return false;
    uint8_t addr[16];
    int family = 0;
    if (inet_pton(AF_INET, host, addr) == 1)
        family = AF_INET;
    else if (inet_pton(AF_INET6, host, addr) == 1)
        family = AF_INET6;
    char name[CN_TARGET_HOST_SIZE] = "";
    if (!family) {
        if (strlen(host) > CN_TARGET_HOST_MAX)
            return false;
        snprintf(name, sizeof(name), "%s", host);
        lower(name);
        no_root_dot(name);
    }
    size_t nlen = strlen(name);
    for (size_t i = 0; i < p->count; i++) {
        const agent_policy_entry_t *e = &p->items[i];
        if (port < e->port_lo || port > e->port_hi)
            continue;
        switch (e->kind) {
        case AGENT_POL_ANY:
            return true;
        case AGENT_POL_NAME:
            if (!family && !strcmp(name, e->name))
                return true;
            break;
        case AGENT_POL_SUFFIX: {
            size_t slen = strlen(e->name);
            if (!family && nlen > slen && !strcmp(name + nlen - slen, e->name))
                return true;
            break;
        }
        case AGENT_POL_NET:
            if (family == e->family && net_contains(e, addr))
                return true;
            break;
        }
    }
    return false;
}

void agent_policy_free(agent_policy_t *p)
{
    if (!p)
        return;
    free(p->items);
    p->items = NULL;
    p->count = p->cap = 0;
}
