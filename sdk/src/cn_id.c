/* UUID and key text (see cn_id.h). */
#include "cn_id.h"

#include "cn_err.h"

#include <sodium.h>
#include <string.h>

static bool uuid_shape(const char *s, bool lower_only)
{
    if (!s || strnlen(s, CN_ID_UUID_LEN + 1) != CN_ID_UUID_LEN)
        return false;
    for (int i = 0; i < CN_ID_UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
            continue;
        }
        bool digit = c >= '0' && c <= '9';
        bool lower = c >= 'a' && c <= 'f';
        bool upper = c >= 'A' && c <= 'F';
        if (!digit && !lower && (lower_only || !upper))
            return false;
    }
    return true;
}

bool cn_id_is_uuid(const char *s)
{
    return uuid_shape(s, false);
}

bool cn_id_is_uuid_lower(const char *s)
{
    return uuid_shape(s, true);
}

void cn_id_key_to_b64url(const uint8_t key[static CN_ID_KEY_BYTES],
                         char out[static CN_ID_KEY_B64URL_SIZE])
{
    sodium_bin2base64(out, CN_ID_KEY_B64URL_SIZE, key, CN_ID_KEY_BYTES,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void cn_id_key_to_b64(const uint8_t key[static CN_ID_KEY_BYTES],
                      char out[static CN_ID_KEY_B64_SIZE])
{
    sodium_bin2base64(out, CN_ID_KEY_B64_SIZE, key, CN_ID_KEY_BYTES,
                      sodium_base64_VARIANT_ORIGINAL);
}

/* Decodes into a scratch buffer one byte larger than a key, so a longer
 * input is caught, and wipes it: these are private keys too. */
static int key_from(const char *s, uint8_t key[static CN_ID_KEY_BYTES], int variant)
{
    size_t n = 0;
    const char *end = NULL;
    uint8_t tmp[CN_ID_KEY_BYTES + 1];
    if (!s || sodium_base642bin(tmp, sizeof(tmp), s, strlen(s), NULL, &n, &end, variant) != 0 ||
        n != CN_ID_KEY_BYTES || (end && *end)) {
        sodium_memzero(tmp, sizeof(tmp));
        return CN_EINVAL;
    }
    memcpy(key, tmp, CN_ID_KEY_BYTES);
    sodium_memzero(tmp, sizeof(tmp));
    return 0;
}

int cn_id_key_from_b64url(const char *s, uint8_t key[static CN_ID_KEY_BYTES])
{
    return key_from(s, key, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int cn_id_key_from_b64(const char *s, uint8_t key[static CN_ID_KEY_BYTES])
{
    return key_from(s, key, sodium_base64_VARIANT_ORIGINAL);
}
