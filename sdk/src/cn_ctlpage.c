#include "cn_ctlpage.h"

#include <jansson.h>

#include "cn_err.h"

size_t cn_ctlpage_take(const json_t *items, size_t from, size_t budget)
{
    size_t n = json_array_size(items);
    size_t used = 2; /* "[" and "]" */
    size_t k = 0;
    for (size_t i = from; i < n; i++) {
        size_t len = json_dumpb(json_array_get(items, i), NULL, 0, JSON_COMPACT);
        size_t add = len + (k ? 1 : 0); /* "," before all but the first */
        if (!len || used + add > budget)
            break;
        used += add;
        k++;
    }
    return k;
}

json_t *cn_ctlpage_msg(const json_t *items, size_t from, size_t k, size_t page, bool more)
{
    json_t *arr = json_array();
    for (size_t j = from; arr && j < from + k && j < json_array_size(items); j++)
        if (json_array_append(arr, json_array_get(items, j)) < 0) {
            json_decref(arr);
            return NULL;
        }
    if (!arr)
        return NULL;
    return json_pack("{s:s,s:I,s:b,s:o}", "type", "tunnels_page", "page", (json_int_t)page, "more",
                     more, "tunnels", arr);
}

void cn_ctlpage_reset(cn_ctlpage_t *p)
{
    json_decref(p->acc);
    p->acc = NULL;
    p->next = 0;
}

static int fail(cn_ctlpage_t *p, int rc)
{
    cn_ctlpage_reset(p);
    return rc;
}

int cn_ctlpage_add(cn_ctlpage_t *p, const json_t *msg, json_t **list)
{
    json_t *items = json_object_get(msg, "tunnels");
    json_t *page = json_object_get(msg, "page");
    json_t *more = json_object_get(msg, "more");
    if (!json_is_array(items) || !json_is_integer(page) || !json_is_boolean(more) ||
        json_integer_value(page) < 0)
        return fail(p, CN_EINVAL);
    size_t n = (size_t)json_integer_value(page);
    if (n == 0) {
        /* A new list: whatever was gathered before was cut short. */
        cn_ctlpage_reset(p);
        p->acc = json_array();
        if (!p->acc)
            return CN_ENOMEM;
    } else if (!p->acc || n != p->next) {
        return fail(p, CN_EINVAL);
    }
    if (json_array_size(p->acc) + json_array_size(items) > p->max_items)
        return fail(p, CN_ETOOBIG);
    if (json_array_extend(p->acc, items) < 0)
        return fail(p, CN_ENOMEM);
    p->next = n + 1;
    if (json_is_true(more))
        return 0;
    *list = p->acc;
    p->acc = NULL;
    p->next = 0;
    return 1;
}
