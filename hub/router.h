/* Method + path routing for the REST API: patterns such as
 * "/api/v1/tunnels/{id}" matched segment by segment against the path lws
 * has already percent-decoded and normalised. Pure: no lws, no JSON. */
#ifndef HUB_ROUTER_H
#define HUB_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

/* HTTP methods as bits, so a set of them (for Allow) is a mask. */
enum hub_method {
    HUB_GET = 1u << 0,
    HUB_POST = 1u << 1,
    HUB_PUT = 1u << 2,
    HUB_PATCH = 1u << 3,
    HUB_DELETE = 1u << 4,
    HUB_HEAD = 1u << 5,
    HUB_OPTIONS = 1u << 6,
};

#define HUB_ROUTE_MAX_PARAMS 2
/* Longest path segment a parameter may capture; ids are 36 bytes. */
#define HUB_ROUTE_PARAM_MAX 64

/* One route: a single method and a pattern whose "{...}" segments capture
 * one whole path segment each. Tables of larger structs start with this. */
typedef struct hub_route {
    unsigned method;
    const char *pattern;
} hub_route_t;

typedef struct hub_route_params {
    size_t count;
    char value[HUB_ROUTE_MAX_PARAMS][HUB_ROUTE_PARAM_MAX + 1];
} hub_route_params_t;

/* Whether `path` matches `pattern`; captures go to `params` (may be NULL).
 * One trailing '/' on the path is ignored; empty captures, captures longer
 * than HUB_ROUTE_PARAM_MAX and paths without a leading '/' never match. */
bool hub_route_path_match(const char *pattern, const char *path, hub_route_params_t *params);

/* Outcome of looking a request up in a table. */
enum hub_route_result {
    HUB_ROUTE_FOUND = 0,
    HUB_ROUTE_NOT_FOUND = 1,  /* no pattern matches the path: 404 */
    HUB_ROUTE_BAD_METHOD = 2, /* the path exists, not with this method: 405 */
};

/* Looks `method` + `path` up among `n` routes laid out `stride` bytes apart
 * (an array of structs that begin with hub_route_t). On FOUND, *index is the
 * route's position and params holds its captures; on BAD_METHOD, *allow
 * gets the mask of methods the path accepts (OR-ed into what it held, so
 * several tables can be searched in turn). */
int hub_route_lookup(const void *table, size_t n, size_t stride, unsigned method, const char *path,
                     size_t *index, hub_route_params_t *params, unsigned *allow);

/* "GET", "POST", ...; "?" for anything else. */
const char *hub_method_name(unsigned method);

/* The bit of the method spelled exactly `name[0..len)` (methods are
 * case-sensitive), or 0 for one this table does not know. */
unsigned hub_method_parse(const char *name, size_t len);

/* Formats a method mask as an Allow header value ("GET, POST"), in a fixed
 * order. Returns the length written, or -1 when it does not fit. */
int hub_allow_format(unsigned mask, char *out, size_t outlen);

#endif
