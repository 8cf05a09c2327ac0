/* Tunnels: create (= connect expose), list with filters, show, update
 * (name, status active/paused, metadata), delete. */
#include "api_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "allowlist.h"
#include "plugins.h"
#include "tunnels.h"
#include "validate.h"

/* Public tunnels of the HTTP edge's protocols are reached by name
 * (NAME.DOMAIN); every other public tunnel gets a hub port. */
static bool by_name(enum hub_protocol p)
{
    return hub_protocol_on_http_edge(p);
}

static void public_url(const hub_api_t *api, const hub_tunnel_t *t, char *out, size_t outlen)
{
    out[0] = '\0';
    if (!t->is_public)
        return;
    if (by_name(t->protocol)) {
        hub_api_edge_url(api, "", t->name, out, outlen);
    } else if (t->hub_port) {
        snprintf(out, outlen, "tcp://%s:%u", api->cfg.public_domain, (unsigned)t->hub_port);
    }
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

/* The protocol a tunnel object shows: its plugin's name when it has one
 * (named at creation or chosen by protocol auto), else the stored protocol. */
static const char *shown_protocol(const hub_tunnel_t *t)
{
    return t->plugin[0] ? t->plugin : hub_protocol_name(t->protocol);
}

/* The connection string clients use through the hub: the public URL of a
 * tunnel reached by name; for one with a hub port, its plugin's string (tcp
 * when it has none) for the public domain and that port, with the tunnel's
 * metadata (user, database, tls, options). */
static void connection_string(const hub_api_t *api, const hub_tunnel_t *t, const char *url,
                              const json_t *meta, char *out, size_t outlen)
{
    out[0] = '\0';
    if (url[0] && by_name(t->protocol)) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    if (!t->hub_port)
        return;
    const cn_plugin_t *p = plugins_find(api->cfg.plugins, t->plugin[0] ? t->plugin : "tcp");
    if (!p ||
        plugins_connection_string(p, api->cfg.public_domain, t->hub_port, meta, out, outlen) != 0)
        snprintf(out, outlen, "%s:%u", api->cfg.public_domain, (unsigned)t->hub_port);
}

static json_t *tunnel_json(const hub_api_t *api, const hub_tunnel_t *t)
{
    char target[HUB_TARGET_TEXT_MAX + 1];
    hub_format_target(t->target_host, t->target_port, target, sizeof(target));
    char url[512];
    public_url(api, t, url, sizeof(url));
    json_t *meta = t->metadata ? json_loads(t->metadata, 0, NULL) : NULL;
    if (!json_is_object(meta)) {
        json_decref(meta);
        meta = json_object();
    }
    char conn[CN_PLUGIN_CONNSTR_MAX];
    const char *conn_str = t->connection_string;
    if (!conn_str || !*conn_str) {
        connection_string(api, t, url, meta, conn, sizeof(conn));
        conn_str = conn;
    }
    return json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:b,s:o,s:o,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id", t->id,
        "name", t->name, "agentId", t->agent_id, "target", target, "protocol", shown_protocol(t),
        "public", t->is_public, "publicUrl", str_or_null(url), "hubPort",
        t->hub_port ? json_integer(t->hub_port) : json_null(), "status",
        hub_tunnel_status_name(t->status), "metadata", meta, "connectionString",
        str_or_null(conn_str), "createdAt", hub_json_time(t->created_at), "connectedAt",
        hub_json_time(t->connected_at), "expiresAt", hub_json_time(t->expires_at), "updatedAt",
        hub_json_time(t->updated_at), "lastError", str_or_null(t->last_error), "httpUser",
        str_or_null(t->http_user), "idleTimeout",
        t->idle_timeout_s >= 0 ? json_integer(t->idle_timeout_s) : json_null());
}

/* Reads "idleTimeout": seconds 0..HUB_IDLE_TIMEOUT_MAX (0 = never), or null
 * for the hub's --tcp-idle-timeout. *present: the key was given, null
 * included (a PATCH with null goes back to the hub's default). */
static void read_idle_timeout(hub_api_call_t *c, json_t *body, int32_t *out, bool *present)
{
    json_t *v = json_object_get(body, "idleTimeout");
    *present = v != NULL;
    *out = HUB_IDLE_TIMEOUT_DEFAULT;
    if (!v || json_is_null(v))
        return;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > HUB_IDLE_TIMEOUT_MAX) {
        hub_api_invalid(c, "idleTimeout",
                        "must be an integer number of seconds between 0 (never) and 604800 "
                        "(7 days), or null for the hub's default");
        return;
    }
    *out = (int32_t)json_integer_value(v);
}

/* Checks a "metadata" value: a JSON object of bounded size. Returns its
 * text (caller frees) or NULL after recording an error. */
static char *metadata_text(hub_api_call_t *c, json_t *v)
{
    if (!json_is_object(v)) {
        hub_api_invalid(c, "metadata", "must be a JSON object");
        return NULL;
    }
    char *text = json_dumps(v, JSON_COMPACT);
    if (!text) {
        hub_api_invalid(c, "metadata", "could not be serialised");
        return NULL;
    }
    if (strlen(text) > HUB_METADATA_MAX) {
        free(text);
        hub_api_invalid(c, "metadata", "must be at most 16384 bytes as JSON");
        return NULL;
    }
    return text;
}

/* Reads "target" in either form into host/port. */
static bool read_target(hub_api_call_t *c, json_t *body, char host[static HUB_HOST_SIZE],
                        uint16_t *port)
{
    json_t *v = json_object_get(body, "target");
    const char *why = NULL;
    if (!v || json_is_null(v)) {
        hub_api_invalid(c, "target", "is required (\"host:port\" or {\"host\",\"port\"})");
        return false;
    }
    if (json_is_string(v)) {
        if (strlen(json_string_value(v)) != json_string_length(v) ||
            !hub_parse_target(json_string_value(v), host, port, &why)) {
            hub_api_invalid(c, "target", why ? why : "must be \"host:port\"");
            return false;
        }
        return true;
    }
    if (!json_is_object(v)) {
        hub_api_invalid(c, "target", "must be \"host:port\" or an object {\"host\",\"port\"}");
        return false;
    }
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val)
    {
        if (strcmp(key, "host") && strcmp(key, "port")) {
            hub_api_invalid(c, "target", "unknown field in target (expected host and port)");
            return false;
        }
    }
    json_t *h = json_object_get(v, "host"), *p = json_object_get(v, "port");
    if (!json_is_string(h) || strlen(json_string_value(h)) != json_string_length(h)) {
        hub_api_invalid(c, "target", "host must be a string");
        return false;
    }
    if (!hub_valid_host(json_string_value(h), &why)) {
        hub_api_invalid(c, "target", why);
        return false;
    }
    if (!json_is_integer(p)) {
        hub_api_invalid(c, "target", "port must be an integer between 1 and 65535");
        return false;
    }
    if (!hub_valid_port((long long)json_integer_value(p), &why)) {
        hub_api_invalid(c, "target", why);
        return false;
    }
    snprintf(host, HUB_HOST_SIZE, "%s", json_string_value(h));
    *port = (uint16_t)json_integer_value(p);
    return true;
}

/* Checks a name for a tunnel of this kind (public HTTP names are DNS
 * labels). */
static bool check_name(hub_api_call_t *c, const char *name, bool is_public, enum hub_protocol proto)
{
    const char *why = NULL;
    if (!hub_valid_name(name, &why) ||
        (is_public && by_name(proto) && !hub_valid_dns_label(name, &why))) {
        hub_api_invalid(c, "name", why);
        return false;
    }
    return true;
}

/* Whether another tunnel of the workspace already has `name`. */
static int name_taken(hub_store_t *st, const char *ws, const char *name, const char *except_id,
                      bool *taken)
{
    hub_tunnel_t other = {0};
    int rc = hub_store_tunnel_get_by_name(st, ws, name, &other);
    *taken = rc == 0 && (!except_id || strcmp(other.id, except_id) != 0);
    hub_tunnel_clear(&other);
    return rc == CN_ENOTFOUND ? 0 : rc;
}

/* Whether `name` is free for the tunnel `except_id` (NULL: a new one);
 * false after answering 409 (taken) or the store's error. */
static bool check_name_free(hub_api_call_t *c, const char *name, const char *except_id)
{
    bool taken = false;
    int rc = name_taken(c->api->store, c->token.workspace_id, name, except_id, &taken);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "tunnel", "name");
        return false;
    }
    if (taken) {
        hub_api_fail(c, 409, "name", "a tunnel with this name already exists");
        return false;
    }
    return true;
}

/* Picks the first hub port of the configured range the workspace may use. */
static int allocate_hub_port(hub_api_t *api, const char *ws, uint16_t *out)
{
    for (unsigned p = api->cfg.tcp_port_lo; p && p <= api->cfg.tcp_port_hi; p++) {
        bool avail = false;
        int rc = hub_store_hub_port_available(api->store, ws, (uint16_t)p, &avail);
        if (rc < 0)
            return rc;
        if (avail) {
            *out = (uint16_t)p;
            return 0;
        }
    }
    return CN_EEXHAUSTED;
}

/* 409: the per-workspace tunnel cap (--max-tunnels) is reached. */
static void fail_cap(hub_api_call_t *c)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "this workspace already has the maximum of %zu tunnels",
             c->api->cfg.max_tunnels);
    hub_api_fail(c, 409, "tunnels", msg);
}

_Static_assert(HUB_API_TUNNELS_PER_AGENT <= AGENT_ALLOWLIST_MAX,
               "an agent must keep every tunnel the API lets it have");

/* 409: the agent already has HUB_API_TUNNELS_PER_AGENT tunnels. A count
 * (the store's insert checks it again, exactly). */
static bool agent_full(hub_api_call_t *c, const char *agent_id)
{
    size_t n = 0;
    if (hub_store_tunnel_count_agent(c->api->store, c->token.workspace_id, agent_id, &n) < 0 ||
        n < HUB_API_TUNNELS_PER_AGENT)
        return false; /* the insert reports a store failure itself */
    char msg[96];
    snprintf(msg, sizeof(msg), "this agent already has the maximum of %d tunnels",
             HUB_API_TUNNELS_PER_AGENT);
    hub_api_fail(c, 409, "agentId", msg);
    return true;
}

/* A create request once parsed. Strings point into the request body. */
typedef struct create_req {
    char host[HUB_HOST_SIZE];
    uint16_t port;
    const char *agent_id;
    enum hub_protocol proto;
    const char *plugin; /* a plugin name given as the protocol, or NULL */
    bool is_public;
    const char *name; /* NULL: generate one */
    char generated[HUB_NAME_SIZE];
    long long hub_port;
    bool have_hub_port;
    long long ttl;
    const char *http_user; /* NULL: no basic auth */
    char *metadata;        /* owned: JSON text or NULL */
    int32_t idle_timeout;  /* HUB_IDLE_TIMEOUT_DEFAULT: the hub's */
} create_req_t;

/* Step 1: reads every field, collecting a 422 per bad one. False when the
 * request was answered. */
static bool create_parse(hub_api_call_t *c, json_t *body, create_req_t *r)
{
    static const char *const fields[] = {"target",   "agentId",     "name", "protocol",
                                         "public",   "hubPort",     "ttl",  "httpUser",
                                         "metadata", "idleTimeout", NULL};
    hub_api_t *api = c->api;
    const char *why = NULL;
    hub_api_only_fields(c, body, fields);
    read_target(c, body, r->host, &r->port);

    /* An agent token's tunnels are its own agent's unless it names one. */
    bool own = c->token.scope == HUB_SCOPE_AGENT, have_agent = false;
    if (hub_api_get_string(c, body, "agentId", !own, &r->agent_id, &have_agent) && have_agent &&
        !hub_uuid_valid(r->agent_id)) {
        hub_api_invalid(c, "agentId", "must be an agent id (UUID)");
        r->agent_id = NULL;
    }
    if (own && !have_agent)
        r->agent_id = c->token.agent_id;

    const char *proto_text = NULL;
    bool have_proto = false;
    if (hub_api_get_string(c, body, "protocol", false, &proto_text, &have_proto) && have_proto &&
        hub_protocol_parse(proto_text, &r->proto) < 0) {
        /* A plugin's name (postgresql, redis, ...): a TCP tunnel that
         * protocol auto or the user named; "tcp" and "http" parse above. */
        if (plugins_find(api->cfg.plugins, proto_text)) {
            r->proto = HUB_PROTO_TCP;
            r->plugin = proto_text;
        } else {
            char msg[512];
            size_t n = (size_t)snprintf(msg, sizeof(msg),
                                        "must be one of auto, tcp, udp, http, https or a plugin");
            for (size_t i = 0; i < plugins_count(api->cfg.plugins) && n < sizeof(msg); i++)
                n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s %s", i ? "," : ":",
                                      plugins_at(api->cfg.plugins, i)->name);
            hub_api_invalid(c, "protocol", msg);
        }
    }

    hub_api_get_bool(c, body, "public", &r->is_public, NULL);

    bool have_name = false;
    if (hub_api_get_string(c, body, "name", false, &r->name, &have_name) && have_name)
        check_name(c, r->name, r->is_public, r->proto);
    if (!have_name)
        r->name = NULL;

    if (hub_api_get_int(c, body, "hubPort", &r->hub_port, &r->have_hub_port) && r->have_hub_port) {
        char msg[96];
        if (!hub_valid_port(r->hub_port, &why)) {
            hub_api_invalid(c, "hubPort", why);
        } else if (api->cfg.tcp_port_lo &&
                   (r->hub_port < api->cfg.tcp_port_lo || r->hub_port > api->cfg.tcp_port_hi)) {
            snprintf(msg, sizeof(msg), "must be within the hub's port range %u-%u",
                     (unsigned)api->cfg.tcp_port_lo, (unsigned)api->cfg.tcp_port_hi);
            hub_api_invalid(c, "hubPort", msg);
        }
    }

    bool have_ttl = false;
    if (hub_api_get_int(c, body, "ttl", &r->ttl, &have_ttl) && have_ttl &&
        !hub_valid_ttl(r->ttl, &why))
        hub_api_invalid(c, "ttl", why);

    bool have_user = false;
    if (hub_api_get_string(c, body, "httpUser", false, &r->http_user, &have_user) && have_user) {
        if (!hub_valid_http_user(r->http_user, &why))
            hub_api_invalid(c, "httpUser", why);
        else if (r->proto == HUB_PROTO_TCP || r->proto == HUB_PROTO_UDP)
            hub_api_invalid(c, "httpUser", "basic auth applies to HTTP tunnels only");
    }
    if (!have_user)
        r->http_user = NULL;

    json_t *meta_v = json_object_get(body, "metadata");
    if (meta_v && !json_is_null(meta_v))
        r->metadata = metadata_text(c, meta_v);

    bool have_idle = false;
    read_idle_timeout(c, body, &r->idle_timeout, &have_idle);

    return !hub_api_failed_validation(c) && hub_api_acts_for_agent(c, r->agent_id, "agentId");
}

/* Step 2: checks the request against the store (the agent, the cap, the
 * name, the hub port), choosing a name and a port when none was given.
 * False when the request was answered. */
static bool create_check(hub_api_call_t *c, create_req_t *r, hub_agent_t *agent)
{
    hub_api_t *api = c->api;
    hub_store_t *st = api->store;
    const char *ws = c->token.workspace_id;
    int rc = hub_store_agent_get(st, ws, r->agent_id, agent);
    if (rc == CN_ENOTFOUND) {
        hub_api_fail(c, 422, "agentId", "no such agent in this workspace");
        return false;
    }
    if (rc < 0) {
        hub_api_store_fail(c, rc, "agent", "agentId");
        return false;
    }

    /* The store enforces both caps atomically with the insert; checking
     * first answers before a name or a port is chosen for nothing. */
    size_t count = 0;
    if (api->cfg.max_tunnels && hub_store_tunnel_count(st, ws, &count) == 0 &&
        count >= api->cfg.max_tunnels) {
        fail_cap(c);
        return false;
    }
    if (agent_full(c, r->agent_id))
        return false;

    bool taken = false;
    if (r->name) {
        if (!check_name_free(c, r->name, NULL))
            return false;
    } else {
        for (int attempt = 0;; attempt++) {
            hub_generate_name(randombytes_random(), r->generated);
            rc = name_taken(st, ws, r->generated, NULL, &taken);
            if (rc < 0) {
                hub_api_store_fail(c, rc, "tunnel", "name");
                return false;
            }
            if (!taken)
                break;
            if (attempt == 20) {
                hub_api_fail(c, 409, "name", "could not generate a free name; give one");
                return false;
            }
        }
        r->name = r->generated;
    }

    if (r->have_hub_port) {
        bool avail = false;
        rc = hub_store_hub_port_available(st, ws, (uint16_t)r->hub_port, &avail);
        if (rc < 0) {
            hub_api_store_fail(c, rc, "tunnel", "hubPort");
            return false;
        }
        if (!avail) {
            hub_api_fail(c, 409, "hubPort", "this hub port is in use or reserved");
            return false;
        }
    } else if (r->is_public && !by_name(r->proto) && api->cfg.tcp_port_lo) {
        uint16_t hp = 0;
        rc = allocate_hub_port(api, ws, &hp);
        if (rc == CN_EEXHAUSTED) {
            hub_api_fail(c, 409, "hubPort", "no free hub port left in the hub's range");
            return false;
        }
        if (rc < 0) {
            hub_api_store_fail(c, rc, "tunnel", "hubPort");
            return false;
        }
        r->hub_port = hp;
    }
    return true;
}

/* Step 3: stores the tunnel, its tunnel.created event and, when a live
 * link already serves it, its activation, in one transaction. */
static int create_persist(hub_api_call_t *c, const create_req_t *r, const hub_agent_t *agent,
                          hub_tunnel_t *t, char password[static HUB_PASSWORD_SIZE])
{
    hub_api_t *api = c->api;
    hub_store_t *st = api->store;
    const char *ws = c->token.workspace_id;
    hub_tunnel_spec_t spec = {
        .name = r->name,
        .agent_id = r->agent_id,
        .target_host = r->host,
        .target_port = r->port,
        .protocol = r->proto,
        .plugin = r->plugin,
        .is_public = r->is_public,
        .hub_port = (uint16_t)r->hub_port,
        .ttl_ms = r->ttl * 1000,
        .metadata = r->metadata,
        .http_user = r->http_user,
        .idle_timeout_set = r->idle_timeout >= 0,
        .idle_timeout_s = r->idle_timeout >= 0 ? (uint32_t)r->idle_timeout : 0,
        .max_tunnels = api->cfg.max_tunnels,
        .max_per_agent = HUB_API_TUNNELS_PER_AGENT,
    };
    int rc = hub_store_tx_begin(st);
    if (rc < 0)
        return rc;
    rc = hub_store_tunnel_create(st, ws, &spec, t, password);
    if (rc == 0)
        rc = hub_event_record(st, ws, HUB_EV_TUNNEL_CREATED, t->id, t->agent_id,
                              json_pack("{s:s,s:s,s:b}", "name", t->name, "protocol",
                                        shown_protocol(t), "public", t->is_public));
    /* Active at once only when a live link of the agent serves it (a
     * `connect expose` process serves only the tunnel it names). */
    if (rc == 0 && hub_live_served(&api->cfg.live, t->agent_id, t->id, agent->connected)) {
        hub_tunnel_t now = {0};
        rc = hub_tunnels_set_status(st, ws, t->id, HUB_TUNNEL_ACTIVE, "agent online", NULL, &now,
                                    NULL);
        if (rc == 0) {
            hub_tunnel_clear(t);
            *t = now;
        }
    }
    rc = hub_store_tx_end(st, rc);
    if (rc < 0) {
        hub_tunnel_clear(t);
        sodium_memzero(password, HUB_PASSWORD_SIZE);
    }
    return rc;
}

static void tunnel_create(hub_api_call_t *c)
{
    const char *ws = c->token.workspace_id;
    json_t *body = hub_api_body(c);
    if (!body)
        return;
    create_req_t r = {.proto = HUB_PROTO_AUTO};
    hub_agent_t agent;
    if (!create_parse(c, body, &r) || !create_check(c, &r, &agent))
        goto out;

    char password[HUB_PASSWORD_SIZE] = "";
    hub_tunnel_t t = {0};
    int rc = create_persist(c, &r, &agent, &t, password);
    if (rc < 0) {
        /* The store names the field: "name: ...", "hubPort: ...", and for
         * a cap met since create_check() (another hub on the database)
         * "tunnels: ..." or "agentId: ...". */
        hub_api_store_fail(c, rc, "tunnel", "name");
        goto out;
    }
    cn_log_info("tunnel %s (%s) created for agent %s", t.id, t.name, t.agent_id);
    hub_live_tunnel_changed(&c->api->cfg.live, ws, t.agent_id, t.id, &t);

    /* Step 4: the answer, with the basic-auth password shown once. */
    json_t *outj = tunnel_json(c->api, &t);
    if (outj && password[0])
        json_object_set_new(outj, "httpPassword", json_string(password));
    sodium_memzero(password, sizeof(password));
    hub_tunnel_clear(&t);
    hub_api_reply(c, 201, outj);
out:
    free(r.metadata);
}

static void tunnel_list(hub_api_call_t *c)
{
    hub_tunnel_filter_t f = {0};
    const char *agent = hub_api_query(c, "agentId");
    const char *status = hub_api_query(c, "status");
    if (agent) {
        if (!hub_uuid_valid(agent))
            hub_api_invalid(c, "agentId", "must be an agent id (UUID)");
        f.agent_id = agent;
    }
    if (status) {
        if (hub_tunnel_status_parse(status, &f.status) < 0)
            hub_api_invalid(c, "status",
                            "must be one of connecting, active, paused, error, expired");
        f.by_status = true;
    }
    if (hub_api_failed_validation(c))
        return;
    hub_tunnel_list_t l = {0};
    int rc = hub_store_tunnel_list(c->api->store, c->token.workspace_id, &f, &l);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "tunnel", "");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l.count; i++)
        json_array_append_new(arr, tunnel_json(c->api, &l.items[i]));
    hub_tunnel_list_free(&l);
    hub_api_reply(c, 200, json_pack("{s:o}", "tunnels", arr));
}

static void tunnel_get(hub_api_call_t *c)
{
    const char *id = c->params.value[0];
    if (!hub_api_check_id(c, id, "tunnel"))
        return;
    hub_tunnel_t t = {0};
    int rc = hub_store_tunnel_get(c->api->store, c->token.workspace_id, id, &t);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "tunnel", "id");
        return;
    }
    hub_api_reply(c, 200, tunnel_json(c->api, &t));
    hub_tunnel_clear(&t);
}

/* A PATCH request once parsed. Strings point into the request body. */
typedef struct patch_req {
    const char *name; /* NULL: unchanged */
    bool have_status;
    enum hub_tunnel_status want; /* active or paused */
    char *metadata;              /* owned: JSON text, NULL: unchanged */
    bool have_idle;
    int32_t idle_timeout; /* HUB_IDLE_TIMEOUT_DEFAULT: back to the hub's */
} patch_req_t;

/* Step 1: reads name, status and metadata, collecting a 422 per bad one.
 * False when the request was answered. */
static bool patch_parse(hub_api_call_t *c, json_t *body, const hub_tunnel_t *t, patch_req_t *r)
{
    static const char *const fields[] = {"name", "status", "metadata", "idleTimeout", NULL};
    hub_api_only_fields(c, body, fields);
    const char *status_text = NULL;
    bool have_name = false;
    if (hub_api_get_string(c, body, "name", false, &r->name, &have_name) && have_name)
        check_name(c, r->name, t->is_public, t->protocol);
    if (!have_name)
        r->name = NULL;
    r->want = t->status;
    if (hub_api_get_string(c, body, "status", false, &status_text, &r->have_status) &&
        r->have_status) {
        if (!strcmp(status_text, "active"))
            r->want = HUB_TUNNEL_ACTIVE;
        else if (!strcmp(status_text, "paused"))
            r->want = HUB_TUNNEL_PAUSED;
        else
            hub_api_invalid(c, "status", "can only be set to active or paused");
    }
    json_t *meta_v = json_object_get(body, "metadata");
    bool have_meta = meta_v && !json_is_null(meta_v);
    if (have_meta)
        r->metadata = metadata_text(c, meta_v);
    read_idle_timeout(c, body, &r->idle_timeout, &r->have_idle);
    if (!c->errors && !have_name && !r->have_status && !have_meta && !r->have_idle)
        hub_api_invalid(c, "body", "nothing to update: give name, status, metadata or idleTimeout");
    return !hub_api_failed_validation(c);
}

/* Step 2: checks the change against the tunnel and the store (an expired
 * tunnel cannot be resumed or paused; a new name must be free). Drops a
 * "rename" to the current name. False when the request was answered. */
static bool patch_check(hub_api_call_t *c, const hub_tunnel_t *t, patch_req_t *r)
{
    if (r->have_status && t->status == HUB_TUNNEL_EXPIRED) {
        hub_api_fail(c, 409, "status", "the tunnel has expired; create a new one");
        return false;
    }
    if (r->name && !strcmp(r->name, t->name))
        r->name = NULL;
    return !r->name || check_name_free(c, r->name, t->id);
}

/* Step 3a: the new name and metadata with their tunnel.updated event. */
static int patch_fields_tx(hub_api_call_t *c, const patch_req_t *r, hub_tunnel_t *t)
{
    hub_store_t *st = c->api->store;
    const char *ws = c->token.workspace_id;
    hub_tunnel_update_t upd = {.fields = 0};
    json_t *changed = json_array();
    if (r->name) {
        upd.fields |= HUB_TUNNEL_SET_NAME;
        upd.name = r->name;
        json_array_append_new(changed, json_string("name"));
    }
    if (r->metadata) {
        upd.fields |= HUB_TUNNEL_SET_METADATA;
        upd.metadata = r->metadata;
        json_array_append_new(changed, json_string("metadata"));
    }
    if (r->have_idle) {
        upd.fields |= HUB_TUNNEL_SET_IDLE_TIMEOUT;
        upd.idle_timeout_s = r->idle_timeout;
        json_array_append_new(changed, json_string("idleTimeout"));
    }
    hub_tunnel_t res = {0};
    int rc = hub_store_tunnel_update(st, ws, t->id, &upd, &res);
    if (rc < 0) {
        json_decref(changed);
        return rc;
    }
    json_t *data = json_pack("{s:o}", "fields", changed);
    if (data && r->name) {
        json_object_set_new(data, "from", json_string(t->name));
        json_object_set_new(data, "name", json_string(res.name));
    }
    rc = hub_event_record(st, ws, HUB_EV_TUNNEL_UPDATED, t->id, res.agent_id, data);
    hub_tunnel_clear(t);
    *t = res;
    return rc;
}

/* Step 3b: pause or resume with its tunnel.status_changed event. */
static int patch_status_tx(hub_api_call_t *c, const patch_req_t *r, hub_tunnel_t *t)
{
    hub_store_t *st = c->api->store;
    enum hub_tunnel_status to = r->want;
    if (r->want == HUB_TUNNEL_ACTIVE && t->status != HUB_TUNNEL_ACTIVE) {
        int rc = hub_tunnels_resume_status(st, &c->api->cfg.live, t, &to);
        if (rc < 0)
            return rc;
    }
    if (to == t->status)
        return 0;
    hub_tunnel_t res = {0};
    int rc = hub_tunnels_set_status(
        st, c->token.workspace_id, t->id, to,
        r->want == HUB_TUNNEL_PAUSED ? "paused by user" : "resumed by user", NULL, &res, NULL);
    if (rc < 0)
        return rc;
    hub_tunnel_clear(t);
    *t = res;
    return 0;
}

/* Step 3: every change of the request and its events in one transaction;
 * `t` becomes the stored result. *param names the field of a failure. */
static int patch_persist(hub_api_call_t *c, const patch_req_t *r, hub_tunnel_t *t,
                         const char **param)
{
    hub_store_t *st = c->api->store;
    int rc = hub_store_tx_begin(st);
    if (rc < 0)
        return rc;
    if (r->name || r->metadata || r->have_idle) {
        *param = r->name ? "name" : r->metadata ? "metadata" : "idleTimeout";
        rc = patch_fields_tx(c, r, t);
    }
    if (rc == 0 && r->have_status) {
        *param = "status";
        rc = patch_status_tx(c, r, t);
    }
    return hub_store_tx_end(st, rc);
}

static void tunnel_patch(hub_api_call_t *c)
{
    hub_store_t *st = c->api->store;
    const char *ws = c->token.workspace_id;
    const char *id = c->params.value[0];
    patch_req_t r = {0};
    hub_tunnel_t t = {0};
    if (!hub_api_check_id(c, id, "tunnel"))
        return;
    json_t *body = hub_api_body(c);
    if (!body)
        return;
    int rc = hub_store_tunnel_get(st, ws, id, &t);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "tunnel", "id");
        return;
    }
    if (!hub_api_acts_for_agent(c, t.agent_id, "id") || !patch_parse(c, body, &t, &r) ||
        !patch_check(c, &t, &r))
        goto out;
    enum hub_tunnel_status before = t.status;
    const char *param = "id";
    rc = patch_persist(c, &r, &t, &param);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "tunnel", param);
        goto out;
    }
    if (r.name || r.metadata || r.have_idle ||
        (t.status != before && t.status != HUB_TUNNEL_PAUSED))
        hub_live_tunnel_changed(&c->api->cfg.live, ws, t.agent_id, t.id, &t);
    else if (t.status != before)
        /* A pause alone closes the tunnel: its status is all the agent
         * needs (pausing N tunnels one by one sent N whole lists). A
         * resume goes as the whole entry, at once. */
        hub_live_tunnel_status(&c->api->cfg.live, &t);
    /* Step 4: the answer. */
    hub_api_reply(c, 200, tunnel_json(c->api, &t));
out:
    hub_tunnel_clear(&t);
    free(r.metadata);
}

static void tunnel_delete(hub_api_call_t *c)
{
    hub_store_t *st = c->api->store;
    const char *ws = c->token.workspace_id;
    const char *id = c->params.value[0];
    if (!hub_api_check_id(c, id, "tunnel"))
        return;
    hub_tunnel_t t = {0};
    int rc = hub_store_tx_begin(st);
    if (rc == 0) {
        rc = hub_store_tunnel_get(st, ws, id, &t);
        if (rc == 0 && !hub_api_acts_for_agent(c, t.agent_id, "id")) {
            /* Answered 403; nothing changes. */
            (void)hub_store_tx_end(st, CN_EREFUSED);
            hub_tunnel_clear(&t);
            return;
        }
        if (rc == 0)
            rc = hub_store_tunnel_delete(st, ws, id);
        if (rc == 0)
            rc = hub_event_record(st, ws, HUB_EV_TUNNEL_DELETED, id, t.agent_id,
                                  json_pack("{s:s}", "name", t.name));
        rc = hub_store_tx_end(st, rc);
    }
    if (rc < 0) {
        hub_tunnel_clear(&t);
        hub_api_store_fail(c, rc, "tunnel", "id");
        return;
    }
    cn_log_info("tunnel %s (%s) deleted", id, t.name);
    hub_live_tunnel_changed(&c->api->cfg.live, ws, t.agent_id, id, NULL);
    hub_tunnel_clear(&t);
    hub_api_reply(c, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
}

static const char *const tunnel_query[] = {"agentId", "status", NULL};

const hub_api_route_t hub_api_tunnels_routes[] = {
    {{HUB_POST, "/api/v1/tunnels"}, tunnel_create, HUB_AUTH_TOKEN, NULL, NULL},
    {{HUB_GET, "/api/v1/tunnels"}, tunnel_list, HUB_AUTH_TOKEN, tunnel_query, NULL},
    {{HUB_GET, "/api/v1/tunnels/{id}"}, tunnel_get, HUB_AUTH_TOKEN, NULL, NULL},
    {{HUB_PATCH, "/api/v1/tunnels/{id}"}, tunnel_patch, HUB_AUTH_TOKEN, NULL, NULL},
    {{HUB_DELETE, "/api/v1/tunnels/{id}"}, tunnel_delete, HUB_AUTH_TOKEN, NULL, NULL},
};
const size_t hub_api_tunnels_nroutes =
    sizeof(hub_api_tunnels_routes) / sizeof(hub_api_tunnels_routes[0]);
