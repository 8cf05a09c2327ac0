/* HOST:PORT parsing and formatting (see cn_target.h). */
#include "cn_target.h"

#include "cn_errmsg.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_name_char(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

static bool is_ipv4(const char *s)
{
    struct in_addr a;
    return inet_pton(AF_INET, s, &a) == 1;
}

static bool is_ipv6(const char *s)
{
    struct in6_addr a;
    return inet_pton(AF_INET6, s, &a) == 1;
}

bool cn_target_host_valid(const char *host, const char **why)
{
    if (!host || !*host)
        return cn_why(why, "the host is empty");
    size_t n = strnlen(host, CN_TARGET_HOST_MAX + 1);
    if (n > CN_TARGET_HOST_MAX)
        return cn_why(why, "the host is longer than 253 characters");
    if (strchr(host, ':'))
        return is_ipv6(host) ? true : cn_why(why, "the host is not a valid IPv6 address");
    size_t label = 0;
    bool all_numeric = true;
    for (size_t i = 0; i < n; i++) {
        char c = host[i];
        if (c == '.') {
            if (label == 0)
                return cn_why(why, "the host is not a valid name (empty label)");
            if (host[i - 1] == '-')
                return cn_why(why, "the host is not a valid name (a label ends with '-')");
            label = 0;
            continue;
        }
        if (!is_name_char(c))
            return cn_why(why, "the host is not a valid name or address");
        if (c == '-' && label == 0)
            return cn_why(why, "the host is not a valid name (a label starts with '-')");
        if (!is_digit(c))
            all_numeric = false;
        if (++label > 63)
            return cn_why(why, "the host is not a valid name (a label is longer than 63)");
    }
    if (host[n - 1] == '-')
        return cn_why(why, "the host is not a valid name (a label ends with '-')");
    /* "1.2.3" or "999.1.1.1" are broken IPv4 addresses, not names. */
    if (all_numeric && !is_ipv4(host))
        return cn_why(why, "the host is not a valid IPv4 address");
    return true;
}

/* Decimal digits only, no sign or spaces; lo..65535. */
static bool parse_port(const char *s, unsigned lo, uint16_t *port)
{
    size_t len = strlen(s);
    if (len == 0 || len > 5 || strspn(s, "0123456789") != len)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (unsigned)(s[i] - '0');
    if (v < lo || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

bool cn_target_parse(const char *s, unsigned flags, char host[static CN_TARGET_HOST_SIZE],
                     uint16_t *port, const char **why)
{
    host[0] = '\0';
    const char *port_msg = (flags & CN_TARGET_PORT_ZERO) ? "port must be between 0 and 65535"
                                                         : "port must be between 1 and 65535";
    unsigned lo = (flags & CN_TARGET_PORT_ZERO) ? 0 : 1;
    if (!s || !*s)
        return cn_why(why, "the address is empty (expected HOST:PORT)");
    size_t len = strnlen(s, CN_TARGET_TEXT_MAX + 1);
    if (len > CN_TARGET_TEXT_MAX)
        return cn_why(why, "the address is too long");
    char h[CN_TARGET_HOST_SIZE];
    const char *port_text;
    if ((flags & CN_TARGET_BARE_PORT) && strspn(s, "0123456789") == len) {
        /* A bare port means a service on this machine. */
        snprintf(h, sizeof(h), "localhost");
        port_text = s;
    } else if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return cn_why(why, "unterminated '[' (expected [IPv6]:PORT)");
        if (close[1] != ':')
            return cn_why(why, "expected :PORT after the bracketed address");
        size_t hl = (size_t)(close - s - 1);
        if (hl == 0 || hl >= INET6_ADDRSTRLEN)
            return cn_why(why, "the bracketed address is not an IPv6 address");
        memcpy(h, s + 1, hl);
        h[hl] = '\0';
        if (!is_ipv6(h))
            return cn_why(why, "the bracketed address is not an IPv6 address");
        port_text = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return cn_why(why, (flags & CN_TARGET_BARE_PORT) ? "expected HOST:PORT or PORT"
                                                             : "expected HOST:PORT");
        if (memchr(s, ':', (size_t)(colon - s)))
            return cn_why(why, "put IPv6 addresses in brackets, e.g. [::1]:5432");
        size_t hl = (size_t)(colon - s);
        if (hl == 0)
            return cn_why(why, "the address has no host (expected HOST:PORT)");
        if (hl > CN_TARGET_HOST_MAX)
            return cn_why(why, "the host is longer than 253 characters");
        memcpy(h, s, hl);
        h[hl] = '\0';
        if (!cn_target_host_valid(h, why))
            return false;
        port_text = colon + 1;
    }
    if ((flags & CN_TARGET_ADDRESS_ONLY) && strcmp(h, "localhost") != 0 && !is_ipv4(h) &&
        !is_ipv6(h))
        return cn_why(why, "the host must be an IP address or localhost");
    if (!parse_port(port_text, lo, port))
        return cn_why(why, port_msg);
    memcpy(host, h, strlen(h) + 1);
    return true;
}

void cn_target_format(const char *host, unsigned port, char *out, size_t outlen)
{
    if (strchr(host, ':'))
        snprintf(out, outlen, "[%s]:%u", host, port);
    else
        snprintf(out, outlen, "%s:%u", host, port);
}
