/* Operator endpoints: workspaces (their tokens are in api_tokens.c). */
#include "api_internal.h"

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

const hub_api_route_t hub_api_workspaces_routes[] = {
    {{HUB_POST, "/api/v1/workspaces"}, workspace_create, HUB_AUTH_OPERATOR, NULL, NULL},
    {{HUB_GET, "/api/v1/workspaces"}, workspace_list, HUB_AUTH_OPERATOR, NULL, NULL},
};
const size_t hub_api_workspaces_nroutes =
    sizeof(hub_api_workspaces_routes) / sizeof(hub_api_workspaces_routes[0]);
