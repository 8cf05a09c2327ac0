/* POST /api/v1/tunnels/{id}/connect (= `connect reach`): who may reach a
 * tunnel, on which local port, with which connection string, and the
 * exposing agent's static key that the reaching agent pins for the
 * end-to-end handshake (docs/api.md, docs/protocol.md). The streams
 * themselves are checked again when they open (edge_reach.c). */
#include "api_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_id.h"
#include "plugins.h"
#include "secrets.h"
#include "store.h"

/* The tunnel's protocol plugin: the one named at creation or chosen by
 * protocol auto, else tcp (udp tunnels too: their string is HOST:PORT). */
static const cn_plugin_t *reach_plugin(const hub_api_t *api, const hub_tunnel_t *t)
{
    const cn_plugin_t *p = t->plugin[0] ? plugins_find(api->cfg.plugins, t->plugin) : NULL;
    return p ? p : plugins_find(api->cfg.plugins, "tcp");
}

/* The local port `connect reach` binds when none is asked for: the usual
 * port of the target's protocol plus 10000 (PostgreSQL: 15432), the
 * target's own port plus 10000 for plain TCP, or 0 (any free port) when
 * that is out of range. */
static int default_local_port(const cn_plugin_t *p, const hub_tunnel_t *t)
{
    int base = p && strcmp(p->name, "tcp") != 0 && p->default_ports[0] ? p->default_ports[0]
                                                                       : t->target_port;
    return base + 10000 <= 65535 ? base + 10000 : 0;
}

/* The connection string a client pastes to use the reach: the plugin's,
 * for 127.0.0.1 and the local port, with the tunnel's metadata (user,
 * database, tls, options); HOST:PORT when the plugin cannot make one. */
static void reach_connection_string(const cn_plugin_t *p, const hub_tunnel_t *t, int port,
                                    char *out, size_t len)
{
    json_t *meta = t->metadata ? json_loads(t->metadata, 0, NULL) : NULL;
    if (!p || !json_is_object(meta) ||
        plugins_connection_string(p, "127.0.0.1", (uint16_t)port, meta, out, len) != 0)
        snprintf(out, len, "127.0.0.1:%d", port);
    json_decref(meta);
}

/* The protocol an answer shows: the plugin's name when the tunnel has
 * one, else the stored protocol (tcp, udp, ...). */
static const char *shown_protocol(const hub_tunnel_t *t)
{
    return t->plugin[0] ? t->plugin : hub_protocol_name(t->protocol);
}

/* The optional localPort field (a 422 when out of range). */
static void parse_local_port(hub_api_call_t *c, json_t *body, long long *port, bool *has)
{
    if (hub_api_get_int(c, body, "localPort", port, has) && *has && (*port < 1 || *port > 65535))
        hub_api_invalid(c, "localPort", "must be between 1 and 65535");
}

/* What every reach answer holds (both routes): tunnelId, name, protocol,
 * status, localPort (the asked one, else the default), connectionString
 * and the exposing agent's key as peerKey. NULL when out of memory. */
static json_t *reach_answer(const hub_api_t *api, const hub_tunnel_t *t, const hub_agent_t *exposer,
                            bool has_port, long long port)
{
    const cn_plugin_t *plugin = reach_plugin(api, t);
    int local = has_port ? (int)port : default_local_port(plugin, t);
    char cs[CN_PLUGIN_CONNSTR_MAX], key[CN_ID_KEY_B64URL_SIZE];
    reach_connection_string(plugin, t, local, cs, sizeof(cs));
    cn_id_key_to_b64url(exposer->public_key, key);
    return json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s}", "tunnelId", t->id, "name", t->name,
                     "protocol", shown_protocol(t), "status", hub_tunnel_status_name(t->status),
                     "localPort", local, "connectionString", cs, "peerKey", key);
}

static void tunnel_connect(hub_api_call_t *c)
{
    static const char *const fields[] = {"agentId", "localPort", NULL};
    hub_store_t *st = c->api->store;
    const char *ws = c->token.workspace_id;
    const char *id = c->params.value[0];
    hub_tunnel_t t = {0};
    hub_agent_t reacher, exposer;
    if (!hub_api_check_id(c, id, "tunnel"))
        return;
    json_t *body = hub_api_body(c);
    if (!body)
        return;
    const char *agent_id = NULL;
    long long port = 0;
    bool has_agent = false, has_port = false;
    hub_api_only_fields(c, body, fields);
    hub_api_get_string(c, body, "agentId", false, &agent_id, &has_agent);
    parse_local_port(c, body, &port, &has_port);
    /* An agent token reaches for its own agent; other tokens must say which. */
    if (!has_agent && c->token.scope == HUB_SCOPE_AGENT)
        agent_id = c->token.agent_id;
    else if (!has_agent)
        hub_api_invalid(c, "agentId", "required: the agent that reaches the tunnel");
    if (hub_api_failed_validation(c))
        return;
    /* Only agents and tunnels of the caller's workspace exist here. */
    int rc = hub_store_tunnel_get(st, ws, id, &t);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "tunnel", "id");
        return;
    }
    if (!hub_uuid_valid(agent_id)) {
        hub_api_not_found(c, "agent");
        goto out;
    }
    rc = hub_store_agent_get(st, ws, agent_id, &reacher);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "agent", "agentId");
        goto out;
    }
    if (!hub_api_acts_for_agent(c, reacher.id, "agentId"))
        goto out;
    rc = hub_store_agent_get(st, ws, t.agent_id, &exposer);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "tunnel", "id");
        goto out;
    }
    if (!exposer.enrolled || !reacher.enrolled) {
        hub_api_fail(c, 409, exposer.enrolled ? "agentId" : "id",
                     "the agent has not enrolled yet: it has no key");
        goto out;
    }
    json_t *j = reach_answer(c->api, &t, &exposer, has_port, port);
    if (j) {
        json_object_set_new(j, "agentId", json_string(reacher.id));
        json_object_set_new(j, "exposingAgentId", json_string(exposer.id));
    }
    hub_api_reply(c, 200, j);
out:
    hub_tunnel_clear(&t);
}

/* POST /api/v1/share-redemptions {"token", "localPort"} (= `connect reach
 * SHARE_URL`), no API token: the share token is the credential, and it
 * buys only this answer and a link that may reach the one shared tunnel
 * (docs/security.md). The hub's key comes with it, since the redeemer has
 * no enrollment that pinned it. Unknown token 404, revoked or expired 410. */
static void share_redeem(hub_api_call_t *c)
{
    static const char *const fields[] = {"token", "localPort", NULL};
    hub_store_t *st = c->api->store;
    json_t *body = hub_api_body(c);
    if (!body)
        return;
    const char *token = NULL;
    long long port = 0;
    bool has_token = false, has_port = false;
    hub_api_only_fields(c, body, fields);
    hub_api_get_string(c, body, "token", true, &token, &has_token);
    parse_local_port(c, body, &port, &has_port);
    if (hub_api_failed_validation(c))
        return;
    hub_share_t *sh = calloc(1, sizeof(*sh));
    hub_tunnel_t t = {0};
    hub_agent_t exposer;
    if (!sh) {
        hub_api_fail(c, 500, "", "out of memory");
        return;
    }
    if (strlen(token) >= HUB_SHARE_TOKEN_SIZE || hub_store_share_find_by_token(st, token, sh) < 0 ||
        hub_store_tunnel_get(st, sh->workspace_id, sh->tunnel_id, &t) < 0 ||
        t.protocol == HUB_PROTO_UDP || hub_protocol_on_http_edge(t.protocol)) {
        hub_api_fail(c, 404, "token", "no such TCP share");
        goto out;
    }
    if (sh->revoked_at != HUB_TIME_NONE ||
        (sh->expires_at != HUB_TIME_NONE && hub_store_now(st) >= sh->expires_at)) {
        hub_api_fail(c, 410, "token",
                     sh->revoked_at != HUB_TIME_NONE ? "this share was revoked"
                                                     : "this share has expired");
        goto out;
    }
    int rc = hub_store_agent_get(st, sh->workspace_id, t.agent_id, &exposer);
    if (rc < 0 || !exposer.enrolled) {
        hub_api_fail(c, 409, "token", "the exposing agent has not enrolled yet: it has no key");
        goto out;
    }
    json_t *j = reach_answer(c->api, &t, &exposer, has_port, port);
    if (j) {
        json_object_set_new(j, "shareId", json_string(sh->id));
        json_object_set_new(j, "hubPublicKey", json_string(c->api->cfg.hub_public_key));
        json_object_set_new(j, "expiresAt", hub_json_time(sh->expires_at));
    }
    hub_api_reply(c, 200, j);
out:
    hub_tunnel_clear(&t);
    free(sh);
}

const hub_api_route_t hub_api_reach_routes[] = {
    {{HUB_POST, "/api/v1/tunnels/{id}/connect"}, tunnel_connect, HUB_AUTH_TOKEN, NULL, NULL},
    {{HUB_POST, "/api/v1/share-redemptions"}, share_redeem, HUB_AUTH_NONE, NULL, NULL},
};
const size_t hub_api_reach_nroutes = sizeof(hub_api_reach_routes) / sizeof(hub_api_reach_routes[0]);
