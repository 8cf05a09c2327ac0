/* Targets, enrollment tokens, ids and keys. */
#include "parse.h"

#include "cn_err.h"
#include "cn_errmsg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static bool parse_port(const char *s, size_t len, uint16_t *port)
{
    if (len == 0 || len > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* A DNS name: labels of [A-Za-z0-9_-], 1-63 bytes, not starting or ending
 * with '-'; at most 253 bytes. IPv4 literals pass as names too. */
static bool valid_name(const char *h, size_t len)
{
    if (len == 0 || len > AGENT_HOST_MAX)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0 || h[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)c) && c != '-' && c != '_')
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 && h[len - 1] != '-';
}

int agent_parse_target(const char *s, char host[static AGENT_HOST_MAX + 1], uint16_t *port,
                       char *err, size_t errlen)
{
    host[0] = '\0';
    if (!s || !*s)
        return cn_errf(CN_EINVAL, err, errlen, "the target is empty (expected HOST:PORT or PORT)");
    size_t len = strlen(s);
    /* A bare port means a service on this machine. */
    if (strspn(s, "0123456789") == len) {
        if (!parse_port(s, len, port))
            return cn_errf(CN_EINVAL, err, errlen, "port must be between 1 and 65535");
        snprintf(host, AGENT_HOST_MAX + 1, "localhost");
        return 0;
    }
    const char *colon;
    const char *h;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return cn_errf(CN_EINVAL, err, errlen,
                           "unterminated '[' in the target (expected [IPv6]:PORT)");
        if (close[1] != ':')
            return cn_errf(CN_EINVAL, err, errlen, "expected :PORT after the bracketed address");
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
        if (hlen == 0 || hlen >= INET6_ADDRSTRLEN)
            return cn_errf(CN_EINVAL, err, errlen, "the bracketed address is not an IPv6 address");
        char tmp[INET6_ADDRSTRLEN];
        memcpy(tmp, h, hlen);
        tmp[hlen] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return cn_errf(CN_EINVAL, err, errlen, "the bracketed address is not an IPv6 address");
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return cn_errf(CN_EINVAL, err, errlen, "expected HOST:PORT or PORT");
        if (memchr(s, ':', (size_t)(colon - s)))
            return cn_errf(CN_EINVAL, err, errlen,
                           "put IPv6 addresses in brackets, e.g. [::1]:5432");
        h = s;
        hlen = (size_t)(colon - s);
        if (hlen == 0)
            return cn_errf(CN_EINVAL, err, errlen,
                           "the target has no host (expected HOST:PORT or PORT)");
        if (!valid_name(h, hlen))
            return cn_errf(CN_EINVAL, err, errlen,
                           "the target's host is not a valid name or address");
    }
    if (!parse_port(colon + 1, strlen(colon + 1), port))
        return cn_errf(CN_EINVAL, err, errlen, "port must be between 1 and 65535");
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    return 0;
}

void agent_format_target(const char *host, unsigned port, char *out, size_t outlen)
{
    if (strchr(host, ':'))
        snprintf(out, outlen, "[%s]:%u", host, port);
    else
        snprintf(out, outlen, "%s:%u", host, port);
}

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
    if (strlen(key) != AGENT_KEY_B64URL_LEN || agent_key_from_b64url(key, hub_pk) < 0)
        return cn_errf(CN_EINVAL, err, errlen,
                       "the enrollment token's hub key (after the last '.') is not 43 base64url "
                       "characters; was the token cut short?");
    memcpy(secret, token, slen);
    secret[slen] = '\0';
    return 0;
}

bool agent_is_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

void agent_key_to_b64(const uint8_t key[static 32], char out[static 45])
{
    sodium_bin2base64(out, 45, key, 32, sodium_base64_VARIANT_ORIGINAL);
}

void agent_key_to_b64url(const uint8_t key[static 32], char out[static 44])
{
    sodium_bin2base64(out, 44, key, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static int key_from(const char *s, uint8_t key[static 32], int variant)
{
    size_t n = 0;
    const char *end = NULL;
    uint8_t tmp[33];
    if (!s || sodium_base642bin(tmp, sizeof(tmp), s, strlen(s), NULL, &n, &end, variant) != 0 ||
        n != 32 || (end && *end)) {
        sodium_memzero(tmp, sizeof(tmp));
        return CN_EINVAL;
    }
    memcpy(key, tmp, 32);
    sodium_memzero(tmp, sizeof(tmp));
    return 0;
}

int agent_key_from_b64(const char *s, uint8_t key[static 32])
{
    return key_from(s, key, sodium_base64_VARIANT_ORIGINAL);
}

int agent_key_from_b64url(const char *s, uint8_t key[static 32])
{
    return key_from(s, key, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}
