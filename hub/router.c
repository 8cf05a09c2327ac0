/* Segment-by-segment path matching and Allow formatting (see router.h). */
#include "router.h"

#include <stdio.h>
#include <string.h>

/* Length of the segment starting at s (up to '/' or the end). */
static size_t segment_len(const char *s)
{
    const char *slash = strchr(s, '/');
    return slash ? (size_t)(slash - s) : strlen(s);
}

bool hub_route_path_match(const char *pattern, const char *path, hub_route_params_t *params)
{
    hub_route_params_t scratch;
    hub_route_params_t *pp = params ? params : &scratch;
    pp->count = 0;
    if (!pattern || !path || pattern[0] != '/' || path[0] != '/')
        return false;
    size_t plen = strlen(path);
    /* Ignore exactly one trailing slash ("/api/v1/tunnels/"), not "/". */
    if (plen > 1 && path[plen - 1] == '/')
        plen--;
    const char *pat = pattern + 1;
    size_t pos = 1;
    for (;;) {
        size_t pseg = segment_len(pat);
        size_t rest = plen - pos;
        const char *seg = path + pos;
        size_t sseg = 0;
        while (sseg < rest && seg[sseg] != '/')
            sseg++;
        if (pseg >= 2 && pat[0] == '{' && pat[pseg - 1] == '}') {
            if (sseg == 0 || sseg > HUB_ROUTE_PARAM_MAX || pp->count >= HUB_ROUTE_MAX_PARAMS)
                return false;
            memcpy(pp->value[pp->count], seg, sseg);
            pp->value[pp->count][sseg] = '\0';
            pp->count++;
        } else if (pseg != sseg || memcmp(pat, seg, sseg) != 0) {
            return false;
        }
        bool pat_end = pat[pseg] == '\0';
        bool path_end = pos + sseg == plen;
        if (pat_end || path_end)
            return pat_end && path_end;
        pat += pseg + 1;
        pos += sseg + 1;
    }
}

int hub_route_lookup(const void *table, size_t n, size_t stride, unsigned method, const char *path,
                     size_t *index, hub_route_params_t *params, unsigned *allow)
{
    const unsigned char *base = table;
    bool path_known = false;
    for (size_t i = 0; i < n; i++) {
        const hub_route_t *r = (const hub_route_t *)(const void *)(base + i * stride);
        hub_route_params_t caps;
        if (!hub_route_path_match(r->pattern, path, &caps))
            continue;
        if (r->method == method) {
            if (index)
                *index = i;
            if (params)
                *params = caps;
            return HUB_ROUTE_FOUND;
        }
        path_known = true;
        if (allow)
            *allow |= r->method;
    }
    return path_known ? HUB_ROUTE_BAD_METHOD : HUB_ROUTE_NOT_FOUND;
}

static const struct {
    unsigned bit;
    const char *name;
} method_names[] = {
    {HUB_GET, "GET"},     {HUB_HEAD, "HEAD"},     {HUB_POST, "POST"},       {HUB_PUT, "PUT"},
    {HUB_PATCH, "PATCH"}, {HUB_DELETE, "DELETE"}, {HUB_OPTIONS, "OPTIONS"},
};

const char *hub_method_name(unsigned method)
{
    for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++)
        if (method_names[i].bit == method)
            return method_names[i].name;
    return "?";
}

unsigned hub_method_parse(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++)
        if (strlen(method_names[i].name) == len && !memcmp(method_names[i].name, name, len))
            return method_names[i].bit;
    return 0;
}

int hub_allow_format(unsigned mask, char *out, size_t outlen)
{
    size_t len = 0;
    if (!outlen)
        return -1;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
        if (!(mask & method_names[i].bit))
            continue;
        int w = snprintf(out + len, outlen - len, "%s%s", len ? ", " : "", method_names[i].name);
        if (w < 0 || (size_t)w >= outlen - len) {
            out[0] = '\0';
            return -1;
        }
        len += (size_t)w;
    }
    return (int)len;
}
