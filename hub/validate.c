/* Validators for user input (see validate.h). Everything here is pure so
 * the unit tests can table-drive it. */
#include "validate.h"

#include "cn_target.h"
#include "cn_errmsg.h"

#include <stdio.h>
#include <string.h>

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The two sides are equal today, which is what this compile-time check wants
 * to keep true: the analyser's "equivalent operands" is the point here. */
/* NOLINTNEXTLINE(misc-redundant-expression) */
_Static_assert(HUB_HOST_MAX == CN_TARGET_HOST_MAX && HUB_TARGET_TEXT_MAX == CN_TARGET_TEXT_MAX,
               "cn_target sizes");

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

bool hub_valid_host(const char *host, const char **why)
{
    return cn_target_host_valid(host, why);
}

bool hub_valid_port(long long v, const char **why)
{
    if (v < 1 || v > 65535)
        return cn_why(why, "port must be between 1 and 65535");
    return true;
}

bool hub_parse_target(const char *s, char host[static HUB_HOST_SIZE], uint16_t *port,
                      const char **why)
{
    return cn_target_parse(s, CN_TARGET_BARE_PORT, host, port, why);
}

void hub_format_target(const char *host, uint16_t port, char *out, size_t outlen)
{
    cn_target_format(host, port, out, outlen);
}

bool hub_valid_name(const char *name, const char **why)
{
    if (!name || !*name)
        return cn_why(why, "name must be 1-100 characters");
    size_t n = strnlen(name, HUB_NAME_MAX + 1);
    if (n > HUB_NAME_MAX)
        return cn_why(why, "name must be 1-100 characters");
    if (!is_alnum(name[0]))
        return cn_why(why, "name must start with a letter or digit");
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!(is_alnum(c) || c == '-' || c == '_' || c == '.'))
            return cn_why(why, "name may contain only letters, digits, '-', '_' and '.'");
    }
    return true;
}

bool hub_valid_dns_label(const char *name, const char **why)
{
    if (!name || !*name)
        return cn_why(why, "name must not be empty");
    size_t n = strnlen(name, HUB_DNS_LABEL_MAX + 1);
    if (n > HUB_DNS_LABEL_MAX)
        return cn_why(why, "a public HTTP tunnel's name becomes a hostname: at most 63 characters");
    for (size_t i = 0; i < n; i++) {
        if (!(is_lower_alnum(name[i]) || name[i] == '-'))
            return cn_why(why, "a public HTTP tunnel's name becomes a hostname: use only "
                               "lowercase letters, digits and '-'");
    }
    if (name[0] == '-' || name[n - 1] == '-')
        return cn_why(why, "a public HTTP tunnel's name must not start or end with '-'");
    return true;
}

bool hub_valid_label(const char *label, const char **why)
{
    if (!label || !*label)
        return cn_why(why, "must be 1-100 characters");
    size_t n = strnlen(label, HUB_NAME_MAX + 1);
    if (n > HUB_NAME_MAX)
        return cn_why(why, "must be 1-100 characters");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)label[i];
        if (c < 0x20 || c == 0x7f)
            return cn_why(why, "must not contain control characters");
    }
    return true;
}

bool hub_valid_http_user(const char *user, const char **why)
{
    if (!user || !*user)
        return cn_why(why, "httpUser must be 1-64 characters");
    size_t n = strnlen(user, HUB_USER_MAX + 1);
    if (n > HUB_USER_MAX)
        return cn_why(why, "httpUser must be 1-64 characters");
    for (size_t i = 0; i < n; i++) {
        char c = user[i];
        if (!(is_alnum(c) || c == '.' || c == '_' || c == '-' || c == '@'))
            return cn_why(why, "httpUser may contain only letters, digits, '.', '_', '-' and '@'");
    }
    return true;
}

bool hub_valid_ttl(long long seconds, const char **why)
{
    if (seconds < 1 || seconds > HUB_TTL_MAX_SECONDS)
        return cn_why(why, "ttl must be between 1 and 2592000 seconds (30 days)");
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
        return cn_why(why, "port range must be \"A-B\"");
    const char *dash = strchr(s, '-');
    char a[8], b[8];
    if (!dash || dash == s || (size_t)(dash - s) >= sizeof(a) || strlen(dash + 1) >= sizeof(b))
        return cn_why(why, "port range must be \"A-B\"");
    memcpy(a, s, (size_t)(dash - s));
    a[dash - s] = '\0';
    snprintf(b, sizeof(b), "%s", dash + 1);
    unsigned long long x = 0, y = 0;
    if (!hub_parse_uint(a, 65535, &x) || !hub_parse_uint(b, 65535, &y))
        return cn_why(why, "port range must be two numbers \"A-B\" between 1 and 65535");
    if (x < 1 || y < 1)
        return cn_why(why, "port range must be between 1 and 65535");
    if (x > y)
        return cn_why(why, "port range start must not exceed its end");
    *lo = (uint16_t)x;
    *hi = (uint16_t)y;
    return true;
}

bool hub_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port, const char **why)
{
    char h[CN_TARGET_HOST_SIZE];
    if (!cn_target_parse(s, CN_TARGET_PORT_ZERO | CN_TARGET_ADDRESS_ONLY, h, port, why))
        return false;
    /* lws binds to an address, not a name. */
    const char *addr = strcmp(h, "localhost") ? h : "127.0.0.1";
    if (strlen(addr) >= hostlen)
        return cn_why(why, "the listen host is too long");
    snprintf(host, hostlen, "%s", addr);
    return true;
}
