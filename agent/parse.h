/* The enrollment token the hub hands out. Targets, ids and keys are the
 * SDK's (cn_target.h, cn_id.h). Pure: returns 0 or CN_EINVAL with one
 * sentence in err saying exactly what is wrong. */
#ifndef AGENT_PARSE_H
#define AGENT_PARSE_H

#include "cn_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_ENROLL_SECRET_MAX 256

/* Splits an enrollment token "<secret>.<hubkey>" at its last '.': the secret
 * (cne_ followed by base64url characters) and the hub's X25519 public key
 * (43 base64url characters). */
CN_WARN_UNUSED int agent_split_enroll_token(const char *token,
                                            char secret[static AGENT_ENROLL_SECRET_MAX + 1],
                                            uint8_t hub_pk[static 32], char *err, size_t errlen);

#endif
