/* Allow-list parsing and the stream admission decision. */
#include "allowlist.h"

#include "cn_err.h"
#include "cn_frame.h"
#include "cn_id.h"
#include "cn_target.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

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
    agent_allowlist_t l = {NULL, 0};
    if (n) {
        l.items = calloc(n, sizeof(*l.items));
        if (!l.items)
            return CN_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(tunnels, i);
        agent_tunnel_t *t = &l.items[l.count];
        memset(t, 0, sizeof(*t));
        bool ok =
            json_is_object(e) && copy_str(json_object_get(e, "id"), t->id, sizeof(t->id), true) &&
            cn_id_is_uuid(t->id) &&
            copy_str(json_object_get(e, "name"), t->name, sizeof(t->name), false) &&
            copy_str(json_object_get(e, "protocol"), t->protocol, sizeof(t->protocol), false) &&
            copy_str(json_object_get(e, "status"), t->status, sizeof(t->status), false) &&
            read_target(json_object_get(e, "target"), t) &&
            !agent_allowlist_find(&l, t->id, strlen(t->id));
        if (!ok) {
            if (skipped)
                (*skipped)++;
            continue;
        }
        l.count++;
    }
    agent_allowlist_free(out);
    *out = l;
    return 0;
}

void agent_allowlist_free(agent_allowlist_t *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

const agent_tunnel_t *agent_allowlist_find(const agent_allowlist_t *l, const char *id,
                                           size_t id_len)
{
    if (id_len != AGENT_TUNNEL_ID_LEN)
        return NULL;
    for (size_t i = 0; i < l->count; i++)
        if (!strncasecmp(l->items[i].id, id, AGENT_TUNNEL_ID_LEN))
            return &l->items[i];
    return NULL;
}

bool agent_tunnel_open(const agent_tunnel_t *t)
{
    return strcmp(t->status, "paused") != 0 && strcmp(t->status, "expired") != 0;
}

uint32_t agent_allowlist_check(const agent_allowlist_t *l, uint8_t kind, const uint8_t *ref,
                               size_t ref_len, const agent_tunnel_t **t, const char **why)
{
    *t = NULL;
    if (kind != CN_KIND_TCP) {
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
    if (!strcmp(found->protocol, "udp")) {
        *why = "UDP tunnels are not served yet";
        return CN_RST_REFUSED;
    }
    *t = found;
    *why = NULL;
    return 0;
}
