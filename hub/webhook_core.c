/* The pure half of webhooks (see webhook_core.h). */
#include "webhook_core.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <sodium.h>

#include "cn_backoff.h"
#include "cn_err.h"
#include "cn_target.h"
#include "events.h"

static bool why_(const char **why, const char *text)
{
    if (why)
        *why = text;
    return false;
}

/* ---- URLs --------------------------------------------------------------- */

bool hub_webhook_url_parse(const char *url, hub_webhook_url_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    if (!url || !*url)
        return why_(why, "must be an http:// or https:// URL");
    size_t len = strnlen(url, HUB_WEBHOOK_URL_MAX + 1);
    if (len > HUB_WEBHOOK_URL_MAX)
        return why_(why, "must be at most 2048 characters");
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return why_(why, "must be printable ASCII without spaces (percent-encode the rest)");
    const char *rest;
    if (!strncasecmp(url, "https://", 8)) {
        out->tls = true;
        rest = url + 8;
    } else if (!strncasecmp(url, "http://", 7)) {
        rest = url + 7;
    } else {
        return why_(why, "must be an http:// or https:// URL");
    }
    if (strchr(url, '#'))
        return why_(why, "must not have a #fragment");
    size_t alen = strcspn(rest, "/?");
    char authority[CN_TARGET_TEXT_MAX + 1];
    if (alen == 0)
        return why_(why, "must name a host");
    if (alen >= sizeof(authority))
        return why_(why, "host is too long");
    memcpy(authority, rest, alen);
    authority[alen] = '\0';
    if (strchr(authority, '@'))
        return why_(why, "must not carry credentials (user:password@); the signature "
                         "authenticates the hub");
    /* A port is present when the authority ends in ":digits" after any
     * IPv6 literal's closing bracket. */
    const char *close = strrchr(authority, ']');
    const char *colon = strrchr(close ? close : authority, ':');
    if (authority[0] == '[' && !close)
        return why_(why, "has an unterminated [IPv6] literal");
    if (colon) {
        if (!cn_target_parse(authority, 0, out->host, &out->port, why))
            return false;
    } else {
        const char *h = authority;
        size_t hlen = alen;
        if (authority[0] == '[') {
            h++;
            hlen -= 2;
        }
        if (hlen >= sizeof(out->host))
            return why_(why, "host is too long");
        memcpy(out->host, h, hlen);
        out->host[hlen] = '\0';
        if (authority[0] == '[' && !strchr(out->host, ':'))
            return why_(why, "brackets are for IPv6 literals");
        if (!cn_target_host_valid(out->host, why))
            return false;
        out->port = out->tls ? 443 : 80;
    }
    const char *path = rest + alen;
    if (*path == '?')
        snprintf(out->path, sizeof(out->path), "/%s", path);
    else
        snprintf(out->path, sizeof(out->path), "%s", *path ? path : "/");
    return true;
}

/* ---- event filters ------------------------------------------------------ */

/* Whether some known type starts with `family` followed by '.'. */
static bool known_family(const char *family, size_t n)
{
    for (size_t i = 0; hub_event_types[i]; i++)
        if (!strncmp(hub_event_types[i], family, n) && hub_event_types[i][n] == '.')
            return true;
    return false;
}

static bool pattern_known(const char *p)
{
    size_t n = strlen(p);
    if (!strcmp(p, "*") || hub_event_type_known(p))
        return true;
    return n > 2 && p[n - 1] == '*' && p[n - 2] == '.' && known_family(p, n - 2);
}

bool hub_webhook_events_valid(const json_t *events, const char **why)
{
    if (!json_is_array(events) || json_array_size(events) == 0)
        return why_(why, "must be a non-empty array of event types, \"FAMILY.*\" or \"*\"");
    if (json_array_size(events) > HUB_WEBHOOK_PATTERNS_MAX)
        return why_(why, "may hold at most 32 patterns");
    for (size_t i = 0; i < json_array_size(events); i++) {
        const char *p = json_string_value(json_array_get(events, i));
        if (!p)
            return why_(why, "must hold strings");
        if (!pattern_known(p))
            return why_(why, "names an unknown event type (see GET /api/v1/events for the "
                             "types, or use \"tunnel.*\", \"*\")");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(p, json_string_value(json_array_get(events, j))))
                return why_(why, "names a pattern twice");
    }
    return true;
}

static bool pattern_matches(const char *p, const char *type)
{
    size_t n = strlen(p);
    if (!strcmp(p, "*") || !strcmp(p, type))
        return true;
    /* "tunnel.*" selects "tunnel.created", not "tunnels.x" or "tunnel". */
    return n >= 2 && p[n - 1] == '*' && p[n - 2] == '.' && !strncmp(p, type, n - 1) &&
           type[n - 1] != '\0';
}

bool hub_webhook_events_match(const char *events_json, const char *type)
{
    if (!events_json || !type)
        return false;
    json_t *arr = json_loads(events_json, 0, NULL);
    bool hit = false;
    for (size_t i = 0; json_is_array(arr) && i < json_array_size(arr) && !hit; i++) {
        const char *p = json_string_value(json_array_get(arr, i));
        hit = p && pattern_matches(p, type);
    }
    json_decref(arr);
    return hit;
}

/* ---- signing and the payload -------------------------------------------- */

int hub_webhook_sign(const char *secret, int64_t timestamp_s, const uint8_t *body, size_t len,
                     char out[static HUB_WEBHOOK_SIG_SIZE])
{
    out[0] = '\0';
    if (!secret || (!body && len) || timestamp_s < 0)
        return CN_EINVAL;
    char ts[24];
    int tl = snprintf(ts, sizeof(ts), "%lld", (long long)timestamp_s);
    crypto_auth_hmacsha256_state st;
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    if (crypto_auth_hmacsha256_init(&st, (const uint8_t *)secret, strlen(secret)) != 0 ||
        crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, (size_t)tl) != 0 ||
        crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1) != 0 ||
        (len && crypto_auth_hmacsha256_update(&st, body, len) != 0) ||
        crypto_auth_hmacsha256_final(&st, mac) != 0) {
        sodium_memzero(&st, sizeof(st));
        return CN_ECRYPTO;
    }
    char hex[2 * sizeof(mac) + 1];
    sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
    snprintf(out, HUB_WEBHOOK_SIG_SIZE, "t=%s,v1=%s", ts, hex);
    sodium_memzero(&st, sizeof(st));
    return 0;
}

json_t *hub_webhook_payload(const hub_event_t *e)
{
    json_t *j = hub_event_to_json(e);
    if (j && json_object_set_new(j, "workspaceId", json_string(e->workspace_id)) < 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- retries ------------------------------------------------------------ */

uint32_t hub_webhook_retry_delay(unsigned failures, uint32_t base_ms, uint32_t rnd)
{
    return cn_backoff_delay(failures ? failures - 1 : 0,
                            base_ms ? base_ms : HUB_WEBHOOK_RETRY_BASE_MS, HUB_WEBHOOK_RETRY_CAP_MS,
                            rnd);
}

/* ---- where the hub POSTs ----------------------------------------------- */

static bool v4_allowed(uint32_t a, const char **why)
{
    if ((a >> 24) == 0)
        return why_(why, "resolves to an unspecified address (0.0.0.0/8)");
    if ((a >> 16) == 0xa9fe)
        return why_(why, "resolves to a link-local address (169.254.0.0/16, where cloud "
                         "metadata services live)");
    if ((a >> 28) >= 0xe)
        return why_(why, "resolves to a multicast, reserved or broadcast address");
    return true;
}

bool hub_webhook_addr_allowed(const struct sockaddr *sa, const char **why)
{
    if (!sa)
        return why_(why, "has no address");
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return v4_allowed(ntohl(in->sin_addr.s_addr), why);
    }
    if (sa->sa_family != AF_INET6)
        return why_(why, "resolves to an address that is neither IPv4 nor IPv6");
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    const uint8_t *b = in6->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) || IN6_IS_ADDR_V4COMPAT(&in6->sin6_addr)) {
        uint32_t a = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
        return v4_allowed(a, why);
    }
    if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
        return why_(why, "resolves to an unspecified address (::)");
    if (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr))
        return why_(why, "resolves to a link-local address (fe80::/10)");
    if (IN6_IS_ADDR_MULTICAST(&in6->sin6_addr))
        return why_(why, "resolves to a multicast address");
    static const uint8_t aws_metadata[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0,    0,
                                             0,    0,    0,    0,    0, 0, 0x02, 0x54};
    if (!memcmp(b, aws_metadata, 16))
        return why_(why, "resolves to a cloud metadata address (fd00:ec2::254)");
    return true;
}
