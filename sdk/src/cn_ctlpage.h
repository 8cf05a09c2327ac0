/* Paged CONTROL lists: a tunnel list too long for one frame
 * (CN_FRAME_MAX_PAYLOAD) goes as several
 * {"type":"tunnels_page","page":N,"more":BOOL,"tunnels":[...]} messages
 * (docs/agent-protocol.md, "Long tunnel lists"). The sender cuts the list
 * with cn_ctlpage_take(); the receiver gathers the pages with
 * cn_ctlpage_add() and acts only on the whole list, so it never drops
 * tunnels because a later page had not arrived yet. */
#ifndef CN_CTLPAGE_H
#define CN_CTLPAGE_H

#include "cn_defs.h"

#include <stdbool.h>
#include <stddef.h>

#include "cn_frame.h"

struct json_t;

/* Bytes of one page's array: the frame less room for the envelope. */
#define CN_CTLPAGE_BUDGET ((size_t)CN_FRAME_MAX_PAYLOAD - 256u)

/* How many items of the JSON array `items`, from index `from` on, fit in a
 * compact JSON array of at most `budget` bytes. 0 when `from` is past the
 * end or item `from` alone does not fit (the caller drops it). */
size_t cn_ctlpage_take(const struct json_t *items, size_t from, size_t budget);

/* The page message {"type":"tunnels_page","page":PAGE,"more":MORE,
 * "tunnels":[items from..from+k)} (new references to the items), or NULL
 * out of memory. Caller owns it. */
struct json_t *cn_ctlpage_msg(const struct json_t *items, size_t from, size_t k, size_t page,
                              bool more);

/* The receiver's gathering; zero-initialise, set max_items (> 0). Owns
 * `acc` until cn_ctlpage_reset(). */
typedef struct cn_ctlpage {
    struct json_t *acc; /* the items so far, NULL when no list is under way */
    size_t next;        /* the page number expected */
    size_t max_items;   /* more than this in one list is refused */
} cn_ctlpage_t;

/* Adds one tunnels_page message. Returns 1 and hands the whole list to
 * *list (caller owns it; the gathering is reset) when this page was the
 * last, 0 when more are due, CN_EINVAL for a malformed page or one out of
 * order, CN_ETOOBIG above max_items, CN_ENOMEM; on error the gathering is
 * dropped (the current list stays in force) and the next page 0 starts
 * over. */
CN_WARN_UNUSED int cn_ctlpage_add(cn_ctlpage_t *p, const struct json_t *msg, struct json_t **list);
void cn_ctlpage_reset(cn_ctlpage_t *p);

#endif
