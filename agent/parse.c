/* Enrollment tokens. */
#include "parse.h"

#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_id.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static bool b64url_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_';
}

int agent_split_enroll_token(const char *token, char secret[static AGENT_ENROLL_SECRET_MAX + 1],
                             uint8_t hub_pk[static 32], char *err, size_t errlen)
{
    secret[0] = '\0';
    const char *dot = token ? strrchr(token, '.') : NULL;
    if (!token || !*token)
        return cn_errf(CN_EINVAL, err, errlen, "the enrollment token is empty");
    if (!dot)
        return cn_errf(CN_EINVAL, err, errlen,
                       "this is not an enrollment token (expected cne_...<dot><hub key>, as "
                       "returned by POST /api/v1/agents)");
    size_t slen = (size_t)(dot - token);
    if (slen <= 4 || strncmp(token, "cne_", 4) != 0)
        return cn_errf(CN_EINVAL, err, errlen,
                       "this is not an enrollment token (it must start with cne_; API tokens "
                       "(cnt_...) cannot enroll)");
    if (slen > AGENT_ENROLL_SECRET_MAX)
        return cn_errf(CN_EINVAL, err, errlen, "the enrollment token is too long");
    for (size_t i = 4; i < slen; i++)
        if (!b64url_char(token[i]))
            return cn_errf(CN_EINVAL, err, errlen,
                           "the enrollment token has a character that is not allowed");
    const char *key = dot + 1;
    if (strlen(key) != CN_ID_KEY_B64URL_LEN || cn_id_key_from_b64url(key, hub_pk) < 0)
        return cn_errf(CN_EINVAL, err, errlen,
                       "the enrollment token's hub key (after the last '.') is not 43 base64url "
                       "characters; was the token cut short?");
    memcpy(secret, token, slen);
    secret[slen] = '\0';
    return 0;
}
