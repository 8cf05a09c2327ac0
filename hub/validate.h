/* Pure validators for what users send the hub: tunnel targets, names,
 * ports, TTLs, listen addresses and port ranges. No I/O, no allocation;
 * each parser returns bool and, on failure, a static sentence saying
 * exactly what is wrong (suitable for an API error's "details"). */
#ifndef HUB_VALIDATE_H
#define HUB_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Longest TTL a tunnel may ask for: 30 days. */
#define HUB_TTL_MAX_SECONDS (30LL * 24 * 3600)
/* Longest DNS label: the limit for names that become NAME.DOMAIN. */
#define HUB_DNS_LABEL_MAX 63
/* "host:port" text: a bracketed IPv6 literal or a 253-byte name plus port. */
#define HUB_TARGET_TEXT_MAX (HUB_HOST_MAX + 8)

/* Targets are HOST:PORT text, checked by the SDK's one parser (cn_target.h);
 * these three are its hub spellings. */

/* A host a tunnel may target: cn_target_host_valid(). */
bool hub_valid_host(const char *host, const char **why);

/* Parses a target "host:port", "[v6]:port" or a bare "port" (meaning
 * localhost) into host (without brackets) and port 1-65535:
 * cn_target_parse() with CN_TARGET_BARE_PORT. */
bool hub_parse_target(const char *s, char host[static HUB_HOST_SIZE], uint16_t *port,
                      const char **why);

/* Formats a target back to text, bracketing IPv6 literals. */
void hub_format_target(const char *host, uint16_t port, char *out, size_t outlen);

/* A port number given as JSON integer or text: 1-65535. */
bool hub_valid_port(long long v, const char **why);

/* Tunnel name: 1-100 bytes of [A-Za-z0-9._-], starting with a letter or
 * digit. */
bool hub_valid_name(const char *name, const char **why);

/* A name that becomes a hostname label (public HTTP tunnels): 1-63 bytes of
 * [a-z0-9-], not starting or ending with '-'. */
bool hub_valid_dns_label(const char *name, const char **why);

/* Workspace / agent / token label: 1-100 bytes of printable UTF-8 text
 * without control characters (the JSON layer has already checked UTF-8). */
bool hub_valid_label(const char *label, const char **why);

/* Basic-auth user: 1-64 bytes of [A-Za-z0-9._@-] (no ':'). */
bool hub_valid_http_user(const char *user, const char **why);

/* TTL in seconds: 1 .. HUB_TTL_MAX_SECONDS. */
bool hub_valid_ttl(long long seconds, const char **why);

/* A generated tunnel name "adjective-noun-xxxx" (lowercase, DNS-safe) from
 * `rnd` (the caller supplies randomness so tests are reproducible). */
void hub_generate_name(uint32_t rnd, char out[static HUB_NAME_SIZE]);

/* "A-B" with 1 <= A <= B <= 65535. */
bool hub_parse_port_range(const char *s, uint16_t *lo, uint16_t *hi, const char **why);

/* "HOST:PORT" where HOST is an IPv4 literal, "[IPv6]" or "localhost" and
 * PORT 0-65535 (0: the kernel picks). `host` gets the bare address
 * ("localhost" becomes 127.0.0.1). cn_target_parse() does the parsing. */
bool hub_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port, const char **why);

/* Parses a decimal integer with no sign, spaces or leading junk, at most
 * `max`. */
bool hub_parse_uint(const char *s, unsigned long long max, unsigned long long *out);

#endif
