/* The pure half of webhooks: which URLs a webhook may have, which events
 * its filter selects, how a delivery is signed and what it carries, how
 * long a failing receiver waits, and which resolved addresses the hub
 * refuses to POST to. No I/O; the delivery worker (webhooks.h), the store's
 * fan-out and the REST API share these, and unit tests pin them down.
 *
 * Like validate.h, a checker returns bool and on failure a static sentence
 * in *why (optional) fit for an API error's "details". */
#ifndef HUB_WEBHOOK_CORE_H
#define HUB_WEBHOOK_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store.h"

struct sockaddr;

/* ---- URLs --------------------------------------------------------------- */

/* A webhook URL taken apart. */
typedef struct hub_webhook_url {
    bool tls;                        /* https */
    char host[HUB_HOST_SIZE];        /* DNS name or IP literal, without brackets */
    uint16_t port;                   /* explicit, or 80 / 443 */
    char path[HUB_WEBHOOK_URL_SIZE]; /* path and query, "/" when empty */
} hub_webhook_url_t;

/* Parses and checks a webhook URL: http:// or https:// only (the scheme in
 * any case), a host (DNS name, IPv4 or [IPv6]), an optional port 1-65535,
 * an optional path and query of printable ASCII; no user:password@ (no
 * credentials in URLs: they end up in logs), no #fragment, at most
 * HUB_WEBHOOK_URL_MAX bytes. */
bool hub_webhook_url_parse(const char *url, hub_webhook_url_t *out, const char **why);

/* ---- event filters ------------------------------------------------------ */

/* Most patterns one filter may hold. */
#define HUB_WEBHOOK_PATTERNS_MAX 32

/* A filter is a JSON array of patterns, each "*" (every event), "FAMILY.*"
 * (e.g. "tunnel.*") or an event type (hub_event_type_known()). Checks one
 * given by a user: a non-empty array of at most HUB_WEBHOOK_PATTERNS_MAX
 * known patterns, without duplicates. */
bool hub_webhook_events_valid(const json_t *events, const char **why);
/* Whether the filter (JSON array text as stored) selects event `type`.
 * Text that does not parse selects nothing. */
bool hub_webhook_events_match(const char *events_json, const char *type);

/* ---- signing and the payload --------------------------------------------
 * Each delivery carries
 *   X-Connect-Signature: t=TIMESTAMP,v1=HEX
 * where TIMESTAMP is the Unix time in seconds when the attempt was signed
 * and HEX the lowercase hex of HMAC-SHA256(key = the webhook secret, the
 * whole "whsec_..." string; message = TIMESTAMP "." BODY). Receivers
 * recompute it over the raw body, compare in constant time and refuse a
 * timestamp far from their clock (docs/guide.md has a 10-line example). */
#define HUB_WEBHOOK_SIG_SIZE 96 /* "t=" + 20 digits + ",v1=" + 64 hex + NUL */
int hub_webhook_sign(const char *secret, int64_t timestamp_s, const uint8_t *body, size_t len,
                     char out[static HUB_WEBHOOK_SIG_SIZE]);

/* The JSON body of a delivery: the event as GET /api/v1/events shows it,
 * plus "workspaceId". NULL on allocation failure. */
json_t *hub_webhook_payload(const hub_event_t *e);

/* ---- retries ------------------------------------------------------------ */

#define HUB_WEBHOOK_RETRY_BASE_MS 2000
#define HUB_WEBHOOK_RETRY_CAP_MS (3600u * 1000)
/* Consecutive failed attempts after which a webhook is disabled: with the
 * default base that is about 8 hours of retrying. */
#define HUB_WEBHOOK_DISABLE_AFTER 20

/* The delay after the n-th consecutive failure (n >= 1): exponential from
 * `base_ms` (0 = HUB_WEBHOOK_RETRY_BASE_MS) up to HUB_WEBHOOK_RETRY_CAP_MS,
 * with equal jitter from `rnd` (cn_backoff.h). */
uint32_t hub_webhook_retry_delay(unsigned failures, uint32_t base_ms, uint32_t rnd);

/* ---- where the hub POSTs -----------------------------------------------
 * Webhook URLs are set by workspace admins, and the hub POSTs from inside
 * its network, so a URL is a way to make the hub send requests (SSRF).
 * Loopback and private addresses stay allowed (receivers on the same host
 * or LAN are the normal self-hosted case); what no receiver needs and
 * attackers want is refused on the resolved address, right before
 * connecting to exactly that address (so DNS cannot swap it afterwards):
 * link-local (169.254.0.0/16 with the cloud metadata service, fe80::/10),
 * unspecified, multicast and broadcast addresses, and the AWS IPv6
 * metadata address (fd00:ec2::254), also when IPv4-mapped. */
bool hub_webhook_addr_allowed(const struct sockaddr *sa, const char **why);

#endif
