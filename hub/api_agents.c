/* Agents: register (with a single-use enroll token, shown once), list,
 * show, delete (with their tunnels and their agent token; the runtime
 * closes their links). Registering and deleting need a workspace admin. */
#include "api_internal.h"

#include <sodium.h>
#include <string.h>

#include "tunnels.h"
#include "validate.h"

static const char *agent_status(const hub_agent_t *a)
{
    if (!a->enrolled)
        return "pending";
    return a->connected ? "online" : "offline";
}

static json_t *agent_json(const hub_agent_t *a)
{
    char b64[HUB_KEY_B64_SIZE] = "";
    if (a->enrolled)
        hub_key_to_b64(a->public_key, b64);
    json_t *key = a->enrolled ? json_string(b64) : json_null();
    return json_pack("{s:s,s:o,s:s,s:b,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id", a->id, "name",
                     a->name[0] ? json_string(a->name) : json_null(), "status", agent_status(a),
                     "enrolled", a->enrolled, "connected", a->connected, "publicKey", key,
                     "createdAt", hub_json_time(a->created_at), "enrollExpiresAt",
                     hub_json_time(a->enroll_expires_at), "enrolledAt",
                     hub_json_time(a->enrolled_at), "connectedAt", hub_json_time(a->connected_at),
                     "disconnectedAt", hub_json_time(a->disconnected_at), "updatedAt",
                     hub_json_time(a->updated_at));
}

static void agent_create(hub_api_call_t *c)
{
    static const char *const fields[] = {"name", NULL};
    json_t *body = hub_api_body(c);
    if (!body)
        return;
    hub_api_only_fields(c, body, fields);
    const char *name = NULL;
    bool have_name = false;
    const char *why = NULL;
    if (hub_api_get_string(c, body, "name", false, &name, &have_name) && have_name &&
        !hub_valid_label(name, &why))
        hub_api_invalid(c, "name", why);
    if (hub_api_failed_validation(c))
        return;
    char token[HUB_TOKEN_STR_SIZE];
    hub_agent_t a;
    const char *ws = c->token.workspace_id;
    hub_store_t *st = c->api->store;
    int rc = hub_store_tx_begin(st);
    if (rc == 0) {
        rc = hub_store_agent_create(st, ws, have_name ? name : NULL, 0, c->api->cfg.max_agents,
                                    token, &a);
        if (rc == 0)
            rc = hub_event_record(st, ws, HUB_EV_AGENT_CREATED, NULL, a.id,
                                  json_pack("{s:s}", "name", a.name));
        rc = hub_store_tx_end(st, rc);
    }
    if (rc == CN_EEXHAUSTED) {
        /* 409 like the tunnel cap: deleting an agent resolves it. */
        char msg[96];
        snprintf(msg, sizeof(msg), "this workspace already has the maximum of %zu agents",
                 c->api->cfg.max_agents);
        sodium_memzero(token, sizeof(token));
        hub_api_fail(c, 409, "agents", msg);
        return;
    }
    if (rc < 0) {
        sodium_memzero(token, sizeof(token));
        hub_api_store_fail(c, rc, "agent", "name");
        return;
    }
    cn_log_info("agent %s created in workspace %s", a.id, ws);
    json_t *out = agent_json(&a);
    if (out) {
        /* The agent pins the hub key from the token itself
         * (docs/agent-protocol.md): SECRET.HUBKEY. */
        char full[HUB_TOKEN_STR_SIZE + HUB_KEY_B64_SIZE + 1];
        snprintf(full, sizeof(full), "%s.%s", token, c->api->cfg.hub_public_key);
        json_object_set_new(out, "enrollToken", json_string(full));
        sodium_memzero(full, sizeof(full));
        if (c->api->cfg.hub_public_key[0])
            json_object_set_new(out, "hubPublicKey", json_string(c->api->cfg.hub_public_key));
    }
    sodium_memzero(token, sizeof(token));
    hub_api_reply(c, 201, out);
}

static void agent_list(hub_api_call_t *c)
{
    hub_agent_list_t l = {0};
    int rc = hub_store_agent_list(c->api->store, c->token.workspace_id, &l);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "agent", "");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l.count; i++)
        json_array_append_new(arr, agent_json(&l.items[i]));
    hub_agent_list_free(&l);
    hub_api_reply(c, 200, json_pack("{s:o}", "agents", arr));
}

static void agent_get(hub_api_call_t *c)
{
    const char *id = c->params.value[0];
    if (!hub_api_check_id(c, id, "agent"))
        return;
    hub_agent_t a;
    int rc = hub_store_agent_get(c->api->store, c->token.workspace_id, id, &a);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "agent", "id");
        return;
    }
    hub_api_reply(c, 200, agent_json(&a));
}

static void agent_delete(hub_api_call_t *c)
{
    const char *id = c->params.value[0];
    const char *ws = c->token.workspace_id;
    hub_store_t *st = c->api->store;
    if (!hub_api_check_id(c, id, "agent"))
        return;
    hub_agent_t a;
    int rc = hub_store_agent_get(st, ws, id, &a);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "agent", "id");
        return;
    }
    /* The store deletes the agent's tunnels with it; their events are ours,
     * in the same transaction. */
    hub_tunnel_filter_t f = {.agent_id = id};
    hub_tunnel_list_t tl = {0};
    rc = hub_store_tx_begin(st);
    if (rc == 0) {
        rc = hub_store_tunnel_list(st, ws, &f, &tl);
        if (rc == 0)
            rc = hub_store_agent_delete(st, ws, id);
        for (size_t i = 0; rc == 0 && i < tl.count; i++)
            rc = hub_event_record(
                st, ws, HUB_EV_TUNNEL_DELETED, tl.items[i].id, id,
                json_pack("{s:s,s:s}", "name", tl.items[i].name, "reason", "agent deleted"));
        if (rc == 0)
            rc = hub_event_record(st, ws, HUB_EV_AGENT_DELETED, NULL, id,
                                  json_pack("{s:s}", "name", a.name));
        rc = hub_store_tx_end(st, rc);
    }
    if (rc < 0) {
        hub_tunnel_list_free(&tl);
        hub_api_store_fail(c, rc, "agent", "id");
        return;
    }
    cn_log_info("agent %s deleted with %zu tunnel(s)", id, tl.count);
    hub_live_changed(&c->api->cfg.live, ws, id);
    hub_tunnel_list_free(&tl);
    hub_api_reply(c, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
}

const hub_api_route_t hub_api_agents_routes[] = {
    {{HUB_POST, "/api/v1/agents"}, agent_create, HUB_AUTH_ADMIN, NULL, NULL},
    {{HUB_GET, "/api/v1/agents"}, agent_list, HUB_AUTH_TOKEN, NULL, NULL},
    {{HUB_GET, "/api/v1/agents/{id}"}, agent_get, HUB_AUTH_TOKEN, NULL, NULL},
    {{HUB_DELETE, "/api/v1/agents/{id}"}, agent_delete, HUB_AUTH_ADMIN, NULL, NULL},
};
const size_t hub_api_agents_nroutes =
    sizeof(hub_api_agents_routes) / sizeof(hub_api_agents_routes[0]);
