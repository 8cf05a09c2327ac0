/* GET /api/v1/health: liveness, no token. Also tells agents the hub's
 * public channel key (public by nature) and the version. */
#include "api_internal.h"

#ifndef CONNECT_VERSION
#define CONNECT_VERSION "0.1.0"
#endif

static void health(hub_api_call_t *c)
{
    json_t *body = json_pack("{s:s,s:s,s:o}", "status", "ok", "version", CONNECT_VERSION, "time",
                             hub_json_time(hub_store_now(c->api->store)));
    if (body && c->api->cfg.hub_public_key[0])
        json_object_set_new(body, "hubPublicKey", json_string(c->api->cfg.hub_public_key));
    hub_api_reply(c, 200, body);
}

const hub_api_route_t hub_api_health_routes[] = {
    {{HUB_GET, "/api/v1/health"}, health, HUB_AUTH_NONE, NULL, NULL},
};
const size_t hub_api_health_nroutes =
    sizeof(hub_api_health_routes) / sizeof(hub_api_health_routes[0]);
