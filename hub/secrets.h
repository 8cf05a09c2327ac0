/* The hub's secrets: bearer tokens, their keyed hashes, basic-auth
 * passwords, UUIDs, and the two key files that live next to the database.
 *
 * Tokens are 32 random bytes in unpadded base64url behind a prefix that
 * says what they are: "cnt_" (API token) and "cne_" (enroll token), 47
 * characters in all. The database only ever sees
 * BLAKE2b-256(key = hub secret key, message = the whole token string),
 * compared with crypto_verify_32. The hub secret key (32 random bytes) is in
 * `<db>.secret`, so a copy of the database alone cannot confirm a guessed
 * token. The hub's static X25519 key for the agent channel is in `<db>.key`
 * (the 32-byte private key; the public key is derived). Both files are
 * created 0600 and refused when group or others can read them.
 *
 * Nothing here logs. Callers wipe plaintext secrets with sodium_memzero()
 * once shown or used. */
#ifndef HUB_SECRETS_H
#define HUB_SECRETS_H

#include "cn_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_KEY_BYTES 32   /* hub secret key, token hashes, X25519 keys */
#define HUB_TOKEN_BYTES 32 /* random bytes in a token */
#define HUB_TOKEN_PREFIX_API "cnt_"
#define HUB_TOKEN_PREFIX_ENROLL "cne_"
#define HUB_TOKEN_STR_LEN (4 + 43) /* prefix + base64url(32 bytes) */
#define HUB_TOKEN_STR_SIZE (HUB_TOKEN_STR_LEN + 1)
#define HUB_PASSWORD_LEN 24 /* generated passwords: [A-Za-z0-9], ~142 bits */
#define HUB_PASSWORD_SIZE (HUB_PASSWORD_LEN + 1)
#define HUB_PASSWORD_HASH_SIZE 128 /* crypto_pwhash_STRBYTES */
#define HUB_UUID_LEN 36
#define HUB_UUID_SIZE (HUB_UUID_LEN + 1)
#define HUB_KEY_B64_SIZE 44 /* base64url(32 bytes), unpadded, + NUL */
#define HUB_SECRET_SUFFIX ".secret"
#define HUB_KEYPAIR_SUFFIX ".key"

/* Initialises libsodium; 0 or CN_ECRYPTO. Every function below calls it. */
CN_WARN_UNUSED int hub_secrets_init(void);

/* Writes a fresh token "<prefix><base64url(32 random bytes)>"; `prefix`
 * is one of HUB_TOKEN_PREFIX_*. 0 or CN_EINVAL / CN_ECRYPTO. */
CN_WARN_UNUSED int hub_token_generate(const char *prefix, char out[static HUB_TOKEN_STR_SIZE]);
/* Whether `token` has the exact shape of a token with `prefix` (length,
 * prefix, alphabet, canonical base64url). Cheap pre-check before hashing. */
bool hub_token_well_formed(const char *prefix, const char *token);
/* out = BLAKE2b-256 keyed with `key` over the token string. 0 or
 * CN_EINVAL (NULL / overlong token) / CN_ECRYPTO. */
CN_WARN_UNUSED int hub_token_hash(const uint8_t key[static HUB_KEY_BYTES], const char *token,
                                  uint8_t out[static HUB_KEY_BYTES]);
/* Constant-time comparison of two 32-byte hashes (crypto_verify_32). */
bool hub_hash_equal(const uint8_t a[static HUB_KEY_BYTES], const uint8_t b[static HUB_KEY_BYTES]);

/* A random password of HUB_PASSWORD_LEN characters from [A-Za-z0-9]. */
CN_WARN_UNUSED int hub_password_generate(char out[static HUB_PASSWORD_SIZE]);
/* Argon2id (crypto_pwhash_str, interactive limits). Slow and 64 MiB of
 * memory by design: the caller caps how many run at once. 0, CN_EINVAL
 * (empty or over 1024 bytes) or CN_ENOMEM. */
CN_WARN_UNUSED int hub_password_hash(const char *password, char out[static HUB_PASSWORD_HASH_SIZE]);
/* 0 when `password` matches `hash`, else CN_EAUTH (also for a malformed
 * hash or NULLs). Same cost as hashing. */
int hub_password_verify(const char *hash, const char *password);

/* A random (version 4, RFC 9562) UUID in lowercase, e.g.
 * "0b6b0f3c-8a57-4d35-9c52-6f0e1e2b8c41". */
void hub_uuid_v4(char out[static HUB_UUID_SIZE]);
/* Whether `s` is a UUID in that canonical lowercase 8-4-4-4-12 form
 * (cn_id_is_uuid_lower under the hub's name). */
bool hub_uuid_valid(const char *s);

/* out = db_path + suffix (HUB_SECRET_SUFFIX or HUB_KEYPAIR_SUFFIX).
 * 0 or CN_ETOOBIG / CN_EINVAL. */
CN_WARN_UNUSED int hub_secret_path(const char *db_path, const char *suffix, char *out,
                                   size_t outlen);

/* Creates `path` (O_EXCL, no symlinks, mode 0600, fsynced) holding a fresh
 * 32-byte hub secret key, also returned in `key`. HUB_ECONFLICT if the file
 * exists; CN_EIO otherwise. `err` (optional) receives one line. */
CN_WARN_UNUSED int hub_secret_key_create(const char *path, uint8_t key[static HUB_KEY_BYTES],
                                         char *err, size_t errlen);
/* Loads a hub secret key. CN_ENOTFOUND (missing), CN_EREFUSED (group/other
 * permission bits set, not a regular file, or a symlink), CN_EINVAL (not 32
 * bytes), CN_EIO. */
CN_WARN_UNUSED int hub_secret_key_load(const char *path, uint8_t key[static HUB_KEY_BYTES],
                                       char *err, size_t errlen);

/* The hub's static X25519 keypair for the agent channel. */
typedef struct hub_keypair {
    uint8_t public_key[HUB_KEY_BYTES];
    uint8_t secret_key[HUB_KEY_BYTES];
} hub_keypair_t;
/* Same rules as the secret key file; the file holds the private key. */
CN_WARN_UNUSED int hub_keypair_create(const char *path, hub_keypair_t *kp, char *err,
                                      size_t errlen);
CN_WARN_UNUSED int hub_keypair_load(const char *path, hub_keypair_t *kp, char *err, size_t errlen);
/* Wipes both halves. NULL is fine. */
void hub_keypair_wipe(hub_keypair_t *kp);
/* The public key as unpadded base64url (43 characters), the form agents
 * pin (cn_id_key_to_b64url under the hub's name). */
void hub_key_to_b64(const uint8_t key[static HUB_KEY_BYTES], char out[static HUB_KEY_B64_SIZE]);

#endif
