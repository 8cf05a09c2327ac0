/* Names for the hub's own error codes; everything else is libconnect's. */
#include "hub_err.h"

#include "cn_err.h"

const char *hub_strerror(int err)
{
    if (err == HUB_ECONFLICT)
        return "already exists";
    return cn_strerror(err);
}
