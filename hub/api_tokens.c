/* API tokens: minted per workspace (shown once), listed without their
 * secrets, revoked. Workspace admins manage their own workspace's tokens;
 * the hub operator may mint in any workspace. */
#include "api_internal.h"

#include <sodium.h>
#include <string.h>

#include "validate.h"

static json_t *token_json(const hub_token_info_t *t)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:b,s:o,s:o}", "id", t->id, "workspaceId",
                     t->workspace_id, "name", t->name, "scope", hub_token_scope_name(t->scope),
                     "agentId", t->agent_id[0] ? json_string(t->agent_id) : json_null(), "admin",
                     t->scope == HUB_SCOPE_ADMIN || t->scope == HUB_SCOPE_OPERATOR, "createdAt",
                     hub_json_time(t->created_at), "lastUsedAt", hub_json_time(t->last_used_at));
}

/* POST /api/v1/workspaces/{id}/tokens: `scope` admin|member, or the older
 * `admin` bool. Operator and agent tokens are not minted here: the one
 * operator token comes from `connect-hub init`, agent tokens from
 * enrollment. */
static void token_create(hub_api_call_t *c)
{
    static const char *const fields[] = {"name", "scope", "admin", NULL};
    const char *ws = c->params.value[0];
    if (!hub_api_check_id(c, ws, "workspace"))
        return;
    /* A workspace admin sees only its own workspace. */
    if (c->token.scope != HUB_SCOPE_OPERATOR && strcmp(ws, c->token.workspace_id) != 0) {
        hub_api_not_found(c, "workspace");
        return;
    }
    json_t *body = hub_api_body(c);
    if (!body)
        return;
    hub_api_only_fields(c, body, fields);
    const char *name = NULL, *scope_text = NULL;
    bool have_name = false, have_scope = false, have_admin = false, admin = false;
    const char *why = NULL;
    if (hub_api_get_string(c, body, "name", false, &name, &have_name) && have_name &&
        !hub_valid_label(name, &why))
        hub_api_invalid(c, "name", why);
    enum hub_token_scope scope = HUB_SCOPE_MEMBER;
    if (hub_api_get_string(c, body, "scope", false, &scope_text, &have_scope) && have_scope &&
        (hub_token_scope_parse(scope_text, &scope) < 0 ||
         (scope != HUB_SCOPE_ADMIN && scope != HUB_SCOPE_MEMBER)))
        hub_api_invalid(c, "scope", "must be admin or member");
    if (hub_api_get_bool(c, body, "admin", &admin, &have_admin) && have_admin) {
        if (!have_scope)
            scope = admin ? HUB_SCOPE_ADMIN : HUB_SCOPE_MEMBER;
        else if (admin != (scope == HUB_SCOPE_ADMIN))
            hub_api_invalid(c, "admin", "contradicts scope; give scope alone");
    }
    if (hub_api_failed_validation(c))
        return;
    char token[HUB_TOKEN_STR_SIZE];
    hub_token_info_t info;
    int rc = hub_store_token_create(c->api->store, ws, have_name ? name : NULL, scope, NULL, token,
                                    &info);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "workspace", "name");
        return;
    }
    cn_log_info("workspace %s: %s token %s created", ws, hub_token_scope_name(scope), info.id);
    json_t *out = token_json(&info);
    if (out)
        json_object_set_new(out, "token", json_string(token));
    sodium_memzero(token, sizeof(token));
    hub_api_reply(c, 201, out);
}

static void token_list(hub_api_call_t *c)
{
    hub_token_list_t l = {0};
    int rc = hub_store_token_list(c->api->store, c->token.workspace_id, &l);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "token", "");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l.count; i++)
        json_array_append_new(arr, token_json(&l.items[i]));
    hub_token_list_free(&l);
    hub_api_reply(c, 200, json_pack("{s:o}", "tokens", arr));
}

static void token_delete(hub_api_call_t *c)
{
    const char *id = c->params.value[0];
    const char *ws = c->token.workspace_id;
    if (!hub_api_check_id(c, id, "token"))
        return;
    hub_token_info_t t;
    int rc = hub_store_token_get(c->api->store, ws, id, &t);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "token", "id");
        return;
    }
    /* A workspace admin cannot lock the operator out. */
    if (t.scope == HUB_SCOPE_OPERATOR && c->token.scope != HUB_SCOPE_OPERATOR) {
        hub_api_fail(c, 403, "id", "only the operator may revoke the operator token");
        return;
    }
    rc = hub_store_token_delete(c->api->store, ws, id);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "token", "id");
        return;
    }
    cn_log_info("workspace %s: %s token %s revoked", ws, hub_token_scope_name(t.scope), id);
    hub_api_reply(c, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
}

const hub_api_route_t hub_api_tokens_routes[] = {
    {{HUB_POST, "/api/v1/workspaces/{id}/tokens"}, token_create, HUB_AUTH_ADMIN, NULL, NULL},
    {{HUB_GET, "/api/v1/tokens"}, token_list, HUB_AUTH_ADMIN, NULL, NULL},
    {{HUB_DELETE, "/api/v1/tokens/{id}"}, token_delete, HUB_AUTH_ADMIN, NULL, NULL},
};
const size_t hub_api_tokens_nroutes =
    sizeof(hub_api_tokens_routes) / sizeof(hub_api_tokens_routes[0]);
