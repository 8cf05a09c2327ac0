/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF, no truncated sequences. One checker for WebSocket close reasons
 * and text frames (cn_wsc) and the hub's stored text (hub/store.c). */
#ifndef CN_UTF8_H
#define CN_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the valid sequence that starts at p, with `left` bytes
 * available (left >= 1), or 0 when it is not valid UTF-8. */
size_t cn_utf8_seq(const uint8_t *p, size_t left);

/* Whether p[0..n) is entirely valid UTF-8 (NUL bytes are valid). */
bool cn_utf8_valid(const void *p, size_t n);

#endif
