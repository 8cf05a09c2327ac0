/* POST /api/v1/tunnels/{id}/connect (= `connect reach`): who may reach a
 * tunnel, on which local port, with which connection string, and the
 * exposing agent's static key that the reaching agent pins for the
 * end-to-end handshake (docs/api.md, docs/protocol.md). The streams
 * themselves are checked again when they open (edge_reach.c). */
#include "api_internal.h"

#include <stdio.h>
#include <string.h>

#include "cn_id.h"
#include "secrets.h"
#include "store.h"

/* The local port `connect reach` binds when none is asked for: the
 * target's port plus 10000 (5432 -> 15432), or 0 (any free port) when that
 * is out of range. */
static int default_local_port(const hub_tunnel_t *t)
{
    int p = (int)t->target_port + 10000;
    return p <= 65535 ? p : 0;
}

/* The connection string a client pastes to use the reach. The one place to
 * switch to the protocol plugins' strings once they land; until then the
 * TCP form of the contract. */
static void reach_connection_string(const hub_tunnel_t *t, int port, char *out, size_t len)
{
    (void)t;
    snprintf(out, len, "127.0.0.1:%d", port);
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
    if (hub_api_get_int(c, body, "localPort", &port, &has_port) && has_port &&
        (port < 1 || port > 65535))
        hub_api_invalid(c, "localPort", "must be between 1 and 65535");
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
    int local = has_port ? (int)port : default_local_port(&t);
    char cs[64], key[CN_ID_KEY_B64URL_SIZE];
    reach_connection_string(&t, local, cs, sizeof(cs));
    cn_id_key_to_b64url(exposer.public_key, key);
    hub_api_reply(c, 200,
                  json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:s}", "tunnelId", t.id, "name",
                            t.name, "protocol", hub_protocol_name(t.protocol), "status",
                            hub_tunnel_status_name(t.status), "localPort", local,
                            "connectionString", cs, "agentId", reacher.id, "exposingAgentId",
                            exposer.id, "peerKey", key));
out:
    hub_tunnel_clear(&t);
}

const hub_api_route_t hub_api_reach_routes[] = {
    {{HUB_POST, "/api/v1/tunnels/{id}/connect"}, tunnel_connect, HUB_AUTH_TOKEN},
};
const size_t hub_api_reach_nroutes = sizeof(hub_api_reach_routes) / sizeof(hub_api_reach_routes[0]);
