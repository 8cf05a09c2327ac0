/* Admin endpoints: workspaces and their API tokens (token shown once). */
#include "api_internal.h"

#include <sodium.h>
#include <string.h>

#include "validate.h"

static json_t *workspace_json(const hub_workspace_t *w)
{
    return json_pack("{s:s,s:s,s:o}", "id", w->id, "name", w->name, "createdAt",
                     hub_json_time(w->created_at));
}

static void workspace_create(hub_api_call_t *c)
{
    static const char *const fields[] = {"name", NULL};
    json_t *body = hub_api_body(c);
    if (!body)
        return;
    hub_api_only_fields(c, body, fields);
    const char *name = NULL;
    const char *why = NULL;
    if (hub_api_get_string(c, body, "name", true, &name, NULL) && !hub_valid_label(name, &why))
        hub_api_invalid(c, "name", why);
    if (hub_api_failed_validation(c))
        return;
    hub_workspace_t w;
    int rc = hub_store_workspace_create(c->api->store, name, &w);
    if (rc == HUB_ECONFLICT) {
        hub_api_fail(c, 409, "name", "a workspace with this name already exists");
        return;
    }
    if (rc < 0) {
        hub_api_store_fail(c, rc, "workspace", "name");
        return;
    }
    cn_log_info("workspace %s (%s) created", w.id, w.name);
    hub_api_reply(c, 201, workspace_json(&w));
}

static void workspace_list(hub_api_call_t *c)
{
    static const char *const query[] = {NULL};
    if (!hub_api_only_query(c, query) || hub_api_failed_validation(c))
        return;
    hub_workspace_list_t l = {0};
    int rc = hub_store_workspace_list(c->api->store, &l);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "workspace", "");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < l.count; i++)
        json_array_append_new(arr, workspace_json(&l.items[i]));
    hub_workspace_list_free(&l);
    hub_api_reply(c, 200, json_pack("{s:o}", "workspaces", arr));
}

static void token_create(hub_api_call_t *c)
{
    static const char *const fields[] = {"name", "admin", NULL};
    const char *ws = c->params.value[0];
    if (!hub_api_check_id(c, ws, "workspace"))
        return;
    json_t *body = hub_api_body(c);
    if (!body)
        return;
    hub_api_only_fields(c, body, fields);
    const char *name = NULL;
    bool have_name = false, admin = false;
    const char *why = NULL;
    if (hub_api_get_string(c, body, "name", false, &name, &have_name) && have_name &&
        !hub_valid_label(name, &why))
        hub_api_invalid(c, "name", why);
    hub_api_get_bool(c, body, "admin", &admin, NULL);
    if (hub_api_failed_validation(c))
        return;
    char token[HUB_TOKEN_STR_SIZE];
    hub_token_info_t info;
    int rc =
        hub_store_token_create(c->api->store, ws, have_name ? name : NULL, admin, token, &info);
    if (rc < 0) {
        hub_api_store_fail(c, rc, "workspace", "name");
        return;
    }
    cn_log_info("workspace %s: %stoken %s created", ws, admin ? "admin " : "", info.id);
    json_t *out = json_pack("{s:s,s:s,s:s,s:b,s:s,s:o}", "id", info.id, "workspaceId",
                            info.workspace_id, "name", info.name, "admin", info.admin, "token",
                            token, "createdAt", hub_json_time(info.created_at));
    sodium_memzero(token, sizeof(token));
    hub_api_reply(c, 201, out);
}

const hub_api_route_t hub_api_workspaces_routes[] = {
    {{HUB_POST, "/api/v1/workspaces"}, workspace_create, HUB_AUTH_ADMIN},
    {{HUB_GET, "/api/v1/workspaces"}, workspace_list, HUB_AUTH_ADMIN},
    {{HUB_POST, "/api/v1/workspaces/{id}/tokens"}, token_create, HUB_AUTH_ADMIN},
};
const size_t hub_api_workspaces_nroutes =
    sizeof(hub_api_workspaces_routes) / sizeof(hub_api_workspaces_routes[0]);
