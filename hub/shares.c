/* The share expiry sweep (see shares.h). */
#include "shares.h"

#include <jansson.h>

#include "cn_log.h"
#include "events.h"

int hub_shares_expire_due(hub_store_t *st, size_t *count)
{
    hub_share_list_t l = {0};
    size_t n = 0;
    if (count)
        *count = 0;
    int rc = hub_store_share_list_expired(st, 100, &l);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < l.count; i++) {
        const hub_share_t *s = &l.items[i];
        rc = hub_store_tx_begin(st);
        if (rc < 0)
            break;
        rc = hub_store_share_mark_expired(st, s->workspace_id, s->id);
        if (rc == 0)
            rc = hub_event_record(st, s->workspace_id, HUB_EV_SHARE_EXPIRED, s->tunnel_id, NULL,
                                  json_pack("{s:s,s:s}", "shareId", s->id, "name", s->name));
        rc = hub_store_tx_end(st, rc);
        if (rc < 0)
            break;
        cn_log_info("share %s (%s) expired", s->id, s->name);
        n++;
    }
    hub_share_list_free(&l);
    if (count)
        *count = n;
    return rc < 0 ? rc : 0;
}
