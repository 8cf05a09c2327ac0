/* Pure parsers for what users type and what the hub hands out: tunnel
 * targets, enrollment tokens, ids and keys. No I/O; each returns 0 or
 * CN_EINVAL with one sentence in err saying exactly what is wrong. */
#ifndef AGENT_PARSE_H
#define AGENT_PARSE_H

#include "cn_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_HOST_MAX 253
#define AGENT_ENROLL_SECRET_MAX 256
#define AGENT_KEY_B64URL_LEN 43 /* 32 bytes, base64url without padding */

/* A target "HOST:PORT", "[IPv6]:PORT" or a bare "PORT" (meaning
 * localhost). host gets the name or address without brackets. An unbracketed
 * IPv6 literal is refused (which colon would be the port?). */
CN_WARN_UNUSED int agent_parse_target(const char *s, char host[static AGENT_HOST_MAX + 1],
                                      uint16_t *port, char *err, size_t errlen);

/* Formats host:port back, bracketing IPv6 literals. */
void agent_format_target(const char *host, unsigned port, char *out, size_t outlen);

/* Splits an enrollment token "<secret>.<hubkey>" at its last '.': the secret
 * (cne_ followed by base64url characters) and the hub's X25519 public key
 * (43 base64url characters). */
CN_WARN_UNUSED int agent_split_enroll_token(const char *token,
                                            char secret[static AGENT_ENROLL_SECRET_MAX + 1],
                                            uint8_t hub_pk[static 32], char *err, size_t errlen);

/* A canonical lowercase or uppercase UUID text (8-4-4-4-12 hex digits). */
bool agent_is_uuid(const char *s);

/* Keys as text: the agent's private key in standard base64 (with padding),
 * the hub's public key in base64url without padding. out sizes: 45 and 44
 * bytes with the NUL. */
void agent_key_to_b64(const uint8_t key[static 32], char out[static 45]);
void agent_key_to_b64url(const uint8_t key[static 32], char out[static 44]);
int agent_key_from_b64(const char *s, uint8_t key[static 32]);
int agent_key_from_b64url(const char *s, uint8_t key[static 32]);

#endif
