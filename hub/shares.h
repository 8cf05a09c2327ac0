/* Share lifecycle beside the store: the expiry sweep. Expiry is enforced by
 * time on every request (share_policy.h); the sweep only records it, once
 * per share, as a share.expired event (in the same transaction as the
 * mark), so that event consumers see it even when nobody uses the link. */
#ifndef HUB_SHARES_H
#define HUB_SHARES_H

#include <stddef.h>

#include "store.h"

/* Records share.expired for every live share whose expiry passed and that
 * has none yet, each in its own transaction. `count` (may be NULL) gets
 * how many. 0 or the store's error. */
int hub_shares_expire_due(hub_store_t *st, size_t *count);

#endif
