/* GET /api/v1/openapi.json: the OpenAPI 3.1 document of this API, the
 * bytes of docs/openapi.json compiled in by hub/embed.cmake (no file is
 * looked up at run time, so the answer is the document of this very
 * binary). No token: it is public documentation, like the API's source,
 * and tools read it before anyone has a token; it holds no secret and
 * nothing about this hub's state. tests/unit/hub/test_openapi.c checks
 * that it documents every route of every table, and only those. */
#include "api_internal.h"

#include <stdlib.h>
#include <string.h>

static void openapi_get(hub_api_call_t *c)
{
    char *copy = malloc(hub_openapi_doc_len);
    if (!copy) {
        hub_api_fail(c, 500, "", "out of memory");
        return;
    }
    memcpy(copy, hub_openapi_doc, hub_openapi_doc_len);
    hub_resp_text(c->resp, 200, copy, hub_openapi_doc_len, "application/json");
}

const hub_api_route_t hub_api_openapi_routes[] = {
    {{HUB_GET, "/api/v1/openapi.json"}, openapi_get, HUB_AUTH_NONE, NULL, NULL},
};
const size_t hub_api_openapi_nroutes =
    sizeof(hub_api_openapi_routes) / sizeof(hub_api_openapi_routes[0]);
