/* Identifiers as text: UUIDs (agents, tunnels, workspaces) and 32-byte
 * X25519 keys in base64url (the hub key agents pin) or standard base64 (the
 * agent's private key in its config). One checker for the hub and the
 * agent. Pure; needs libsodium initialised for the key functions. */
#ifndef CN_ID_H
#define CN_ID_H

#include <stdbool.h>
#include <stdint.h>

#define CN_ID_UUID_LEN 36
#define CN_ID_UUID_SIZE (CN_ID_UUID_LEN + 1)
#define CN_ID_KEY_BYTES 32
#define CN_ID_KEY_B64URL_LEN 43 /* unpadded */
#define CN_ID_KEY_B64URL_SIZE (CN_ID_KEY_B64URL_LEN + 1)
#define CN_ID_KEY_B64_SIZE 45 /* 44 with padding, + NUL */

/* 8-4-4-4-12 hex digits, either case (what users may paste). */
bool cn_id_is_uuid(const char *s);
/* The same in lowercase only: the one spelling the hub mints and stores. */
bool cn_id_is_uuid_lower(const char *s);

/* A key as unpadded base64url, and back: 0, or CN_EINVAL unless `s` is
 * exactly the canonical encoding of 32 bytes. */
void cn_id_key_to_b64url(const uint8_t key[static CN_ID_KEY_BYTES],
                         char out[static CN_ID_KEY_B64URL_SIZE]);
int cn_id_key_from_b64url(const char *s, uint8_t key[static CN_ID_KEY_BYTES]);

/* The same in standard base64 with padding. */
void cn_id_key_to_b64(const uint8_t key[static CN_ID_KEY_BYTES],
                      char out[static CN_ID_KEY_B64_SIZE]);
int cn_id_key_from_b64(const char *s, uint8_t key[static CN_ID_KEY_BYTES]);

#endif
