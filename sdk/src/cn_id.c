/* UUID and key text (see cn_id.h). */
#include "cn_id.h"

#include "cn_err.h"

#include <sodium.h>
#include <string.h>

/* Hex digits by case: one table lookup a character, one pass, stopping at
 * the first mismatch (a NUL included), so a short string is never read
 * past its end. The edge checks an id per share request (the access log's
 * append); the branchy version with strnlen first cost ~0.1 us there. */
enum { HEX_LOWER = 1, HEX_UPPER = 2 };
static const unsigned char hex_class[256] = {
    ['0'] = 3, ['1'] = 3, ['2'] = 3, ['3'] = 3, ['4'] = 3, ['5'] = 3, ['6'] = 3, ['7'] = 3,
    ['8'] = 3, ['9'] = 3, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['A'] = 2, ['B'] = 2, ['C'] = 2, ['D'] = 2, ['E'] = 2, ['F'] = 2,
};

static bool uuid_shape(const char *s, bool lower_only)
{
    if (!s)
        return false;
    unsigned want = lower_only ? HEX_LOWER : HEX_LOWER | HEX_UPPER;
    for (int i = 0; i < CN_ID_UUID_LEN; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!(hex_class[c] & want)) {
            return false;
        }
    }
    return s[CN_ID_UUID_LEN] == '\0';
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
