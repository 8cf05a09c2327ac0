/* Validators for user input (see validate.h). Everything here is pure so
 * the unit tests can table-drive it. */
#include "validate.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static bool fail(const char **why, const char *msg)
{
    if (why)
        *why = msg;
    return false;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_lower_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z');
}

static bool is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

bool hub_parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    if (!s || !*s)
        return false;
    unsigned long long v = 0;
    for (const char *p = s; *p; p++) {
        if (!is_digit(*p))
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool is_ip_literal(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

bool hub_valid_host(const char *host, const char **why)
{
    if (!host || !*host)
        return fail(why, "host must not be empty");
    size_t n = strnlen(host, HUB_HOST_MAX + 1);
    if (n > HUB_HOST_MAX)
        return fail(why, "host must be at most 253 characters");
    if (strchr(host, ':'))
        return is_ip_literal(host) ? true : fail(why, "host is not a valid IPv6 address");
    size_t label = 0;
    bool all_numeric = true;
    for (size_t i = 0; i < n; i++) {
        char c = host[i];
        if (c == '.') {
            if (label == 0)
                return fail(why, "host has an empty label");
            if (host[i - 1] == '-')
                return fail(why, "host labels must not end with '-'");
            label = 0;
            continue;
        }
        if (!(is_alnum(c) || c == '-' || c == '_'))
            return fail(why, "host must be a hostname or an IP address");
        if (c == '-' && label == 0)
            return fail(why, "host labels must not start with '-'");
        if (!is_digit(c))
            all_numeric = false;
        if (++label > HUB_DNS_LABEL_MAX)
            return fail(why, "host labels must be at most 63 characters");
    }
    /* A trailing dot (FQDN) is fine; an empty last label otherwise is not. */
    if (label == 0 && n > 0 && host[n - 1] != '.')
        return fail(why, "host has an empty label");
    if (host[n - 1] == '-')
        return fail(why, "host labels must not end with '-'");
    /* "1.2.3" or "999.1.1.1" look like broken IPv4, not like names. */
    if (all_numeric && !is_ip_literal(host))
        return fail(why, "host is not a valid IPv4 address");
    return true;
}

bool hub_valid_port(long long v, const char **why)
{
    if (v < 1 || v > 65535)
        return fail(why, "port must be between 1 and 65535");
    return true;
}

bool hub_parse_target(const char *s, char host[static HUB_HOST_SIZE], uint16_t *port,
                      const char **why)
{
    host[0] = '\0';
    if (!s || !*s)
        return fail(why, "target must be \"host:port\"");
    size_t n = strnlen(s, HUB_TARGET_TEXT_MAX + 1);
    if (n > HUB_TARGET_TEXT_MAX)
        return fail(why, "target is too long");
    const char *port_text;
    char h[HUB_HOST_SIZE];
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return fail(why, "target must be \"[ipv6]:port\"");
        size_t hl = (size_t)(end - s - 1);
        if (hl == 0 || hl > HUB_HOST_MAX)
            return fail(why, "target host is empty or too long");
        memcpy(h, s + 1, hl);
        h[hl] = '\0';
        unsigned char buf[16];
        if (inet_pton(AF_INET6, h, buf) != 1)
            return fail(why, "target host is not a valid IPv6 address");
        port_text = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon) {
            /* A bare port means a service on the agent's own machine. */
            if (!is_digit(s[0]))
                return fail(why, "target must be \"host:port\"");
            snprintf(h, sizeof(h), "localhost");
            port_text = s;
        } else {
            if (memchr(s, ':', (size_t)(colon - s)))
                return fail(why, "IPv6 targets must be written \"[address]:port\"");
            size_t hl = (size_t)(colon - s);
            if (hl == 0)
                return fail(why, "target host must not be empty");
            if (hl > HUB_HOST_MAX)
                return fail(why, "host must be at most 253 characters");
            memcpy(h, s, hl);
            h[hl] = '\0';
            port_text = colon + 1;
        }
        if (!hub_valid_host(h, why))
            return false;
    }
    unsigned long long p = 0;
    if (!*port_text)
        return fail(why, "target port is missing");
    if (!hub_parse_uint(port_text, 1000000, &p))
        return fail(why, "target port must be a number");
    if (!hub_valid_port((long long)p, why))
        return false;
    memcpy(host, h, strlen(h) + 1);
    *port = (uint16_t)p;
    return true;
}

void hub_format_target(const char *host, uint16_t port, char *out, size_t outlen)
{
    if (strchr(host, ':'))
        snprintf(out, outlen, "[%s]:%u", host, (unsigned)port);
    else
        snprintf(out, outlen, "%s:%u", host, (unsigned)port);
}

bool hub_valid_name(const char *name, const char **why)
{
    if (!name || !*name)
        return fail(why, "name must be 1-100 characters");
    size_t n = strnlen(name, HUB_NAME_MAX + 1);
    if (n > HUB_NAME_MAX)
        return fail(why, "name must be 1-100 characters");
    if (!is_alnum(name[0]))
        return fail(why, "name must start with a letter or digit");
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!(is_alnum(c) || c == '-' || c == '_' || c == '.'))
            return fail(why, "name may contain only letters, digits, '-', '_' and '.'");
    }
    return true;
}

bool hub_valid_dns_label(const char *name, const char **why)
{
    if (!name || !*name)
        return fail(why, "name must not be empty");
    size_t n = strnlen(name, HUB_DNS_LABEL_MAX + 1);
    if (n > HUB_DNS_LABEL_MAX)
        return fail(why, "a public HTTP tunnel's name becomes a hostname: at most 63 characters");
    for (size_t i = 0; i < n; i++) {
        if (!(is_lower_alnum(name[i]) || name[i] == '-'))
            return fail(why, "a public HTTP tunnel's name becomes a hostname: use only "
                             "lowercase letters, digits and '-'");
    }
    if (name[0] == '-' || name[n - 1] == '-')
        return fail(why, "a public HTTP tunnel's name must not start or end with '-'");
    return true;
}

bool hub_valid_label(const char *label, const char **why)
{
    if (!label || !*label)
        return fail(why, "must be 1-100 characters");
    size_t n = strnlen(label, HUB_NAME_MAX + 1);
    if (n > HUB_NAME_MAX)
        return fail(why, "must be 1-100 characters");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)label[i];
        if (c < 0x20 || c == 0x7f)
            return fail(why, "must not contain control characters");
    }
    return true;
}

bool hub_valid_http_user(const char *user, const char **why)
{
    if (!user || !*user)
        return fail(why, "httpUser must be 1-64 characters");
    size_t n = strnlen(user, HUB_USER_MAX + 1);
    if (n > HUB_USER_MAX)
        return fail(why, "httpUser must be 1-64 characters");
    for (size_t i = 0; i < n; i++) {
        char c = user[i];
        if (!(is_alnum(c) || c == '.' || c == '_' || c == '-' || c == '@'))
            return fail(why, "httpUser may contain only letters, digits, '.', '_', '-' and '@'");
    }
    return true;
}

bool hub_valid_ttl(long long seconds, const char **why)
{
    if (seconds < 1 || seconds > HUB_TTL_MAX_SECONDS)
        return fail(why, "ttl must be between 1 and 2592000 seconds (30 days)");
    return true;
}

void hub_generate_name(uint32_t rnd, char out[static HUB_NAME_SIZE])
{
    static const char *const adjectives[] = {
        "amber", "brave", "calm",  "clever", "crisp",  "eager",  "fancy",  "gentle",
        "happy", "jolly", "keen",  "lively", "lucky",  "merry",  "nimble", "proud",
        "quick", "quiet", "rapid", "shiny",  "silent", "sunny",  "swift",  "tidy",
        "vivid", "witty", "bold",  "bright", "cosmic", "daring", "noble",  "zesty",
    };
    static const char *const nouns[] = {
        "badger", "falcon", "otter",   "panda",  "tiger",  "heron",  "lynx",   "koala",
        "raven",  "comet",  "river",   "meadow", "canyon", "harbor", "forest", "island",
        "breeze", "ember",  "glacier", "lagoon", "maple",  "nebula", "orbit",  "pebble",
        "quartz", "summit", "thunder", "valley", "willow", "beacon", "cedar",  "dune",
    };
    size_t na = sizeof(adjectives) / sizeof(adjectives[0]);
    size_t nn = sizeof(nouns) / sizeof(nouns[0]);
    snprintf(out, HUB_NAME_SIZE, "%s-%s-%04x", adjectives[(rnd >> 16) % na],
             nouns[(rnd >> 21) % nn], (unsigned)(rnd & 0xffffu));
}

bool hub_parse_port_range(const char *s, uint16_t *lo, uint16_t *hi, const char **why)
{
    if (!s)
        return fail(why, "port range must be \"A-B\"");
    const char *dash = strchr(s, '-');
    char a[8], b[8];
    if (!dash || dash == s || (size_t)(dash - s) >= sizeof(a) || strlen(dash + 1) >= sizeof(b))
        return fail(why, "port range must be \"A-B\"");
    memcpy(a, s, (size_t)(dash - s));
    a[dash - s] = '\0';
    snprintf(b, sizeof(b), "%s", dash + 1);
    unsigned long long x = 0, y = 0;
    if (!hub_parse_uint(a, 65535, &x) || !hub_parse_uint(b, 65535, &y))
        return fail(why, "port range must be two numbers \"A-B\" between 1 and 65535");
    if (x < 1 || y < 1)
        return fail(why, "port range must be between 1 and 65535");
    if (x > y)
        return fail(why, "port range start must not exceed its end");
    *lo = (uint16_t)x;
    *hi = (uint16_t)y;
    return true;
}

bool hub_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port, const char **why)
{
    if (!s || !*s)
        return fail(why, "listen address must be HOST:PORT");
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return fail(why, "listen address must be HOST:PORT");
    char h[64];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof(h))
        return fail(why, "listen host is too long");
    memcpy(h, s, hl);
    h[hl] = '\0';
    unsigned long long p = 0;
    if (!hub_parse_uint(colon + 1, 65535, &p))
        return fail(why, "listen port must be a number between 0 and 65535");
    unsigned char buf[16];
    char addr[64];
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']')
            return fail(why, "IPv6 listen addresses must be written [ADDRESS]:PORT");
        memcpy(addr, h + 1, hl - 2);
        addr[hl - 2] = '\0';
        if (inet_pton(AF_INET6, addr, buf) != 1)
            return fail(why, "listen host is not a valid IPv6 address");
    } else if (!strcmp(h, "localhost")) {
        snprintf(addr, sizeof(addr), "127.0.0.1");
    } else {
        if (inet_pton(AF_INET, h, buf) != 1)
            return fail(why, "listen host must be an IP address or localhost");
        snprintf(addr, sizeof(addr), "%s", h);
    }
    if (strlen(addr) >= hostlen)
        return fail(why, "listen host is too long");
    snprintf(host, hostlen, "%s", addr);
    *port = (uint16_t)p;
    return true;
}
