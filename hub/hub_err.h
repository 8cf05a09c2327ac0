/* Error codes of the hub that libconnect's CN_E* set has no word for.
 *
 * Hub functions return 0, a negative CN_E* code, or one of these. They sit
 * well below the CN_E* range so the two sets never collide. */
#ifndef HUB_ERR_H
#define HUB_ERR_H

enum hub_err {
    /* A unique name, port, key or file is already taken (the API's 409). */
    HUB_ECONFLICT = -100,
};

/* A static, human-readable name for a CN_E* or HUB_E* code; never NULL. */
const char *hub_strerror(int err);

#endif
