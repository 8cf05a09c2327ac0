/* HOST:PORT text: the one parser and formatter for tunnel targets (the
 * agent's `connect expose HOST:PORT`, the hub's `"target"` field and the
 * allow-list check) and for listen addresses (`connect-hub serve --listen`).
 *
 * Pure: no I/O, no allocation, no DNS. Like hub/validate.h, a parser returns
 * bool and, on failure, a static sentence in *why (optional) saying exactly
 * what is wrong, fit for a CLI line or an API error's "details". */
#ifndef CN_TARGET_H
#define CN_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CN_TARGET_HOST_MAX 253 /* a DNS name's limit; IPv6 literals are shorter */
#define CN_TARGET_HOST_SIZE (CN_TARGET_HOST_MAX + 1)
#define CN_TARGET_TEXT_MAX (CN_TARGET_HOST_MAX + 8) /* "[host]:65535" */

/* What a caller accepts beyond HOST:PORT with a host name or IP literal and
 * a port 1-65535. */
enum cn_target_flags {
    CN_TARGET_BARE_PORT = 1,    /* "PORT" alone means localhost:PORT */
    CN_TARGET_PORT_ZERO = 2,    /* port 0 (the kernel picks) is allowed */
    CN_TARGET_ADDRESS_ONLY = 4, /* the host must be an IP literal or "localhost" */
};

/* A host: a DNS name (labels of letters, digits, '-' and '_', 1-63 bytes
 * each, not starting or ending with '-', at most 253 bytes; a trailing dot
 * is fine; all-numeric names must be real IPv4 addresses) or an IPv4/IPv6
 * literal (IPv6 without brackets here). */
bool cn_target_host_valid(const char *host, const char **why);

/* Parses "HOST:PORT" or "[IPv6]:PORT" (and what `flags` adds) into host,
 * without brackets, and port. An unbracketed IPv6 literal is refused: which
 * colon would be the port? On failure host is "". */
bool cn_target_parse(const char *s, unsigned flags, char host[static CN_TARGET_HOST_SIZE],
                     uint16_t *port, const char **why);

/* Formats host and port back, bracketing IPv6 literals (truncated to
 * outlen, always terminated). */
void cn_target_format(const char *host, unsigned port, char *out, size_t outlen);

#endif
