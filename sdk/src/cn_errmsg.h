/* Error messages for the caller's buffer: the one helper behind every
 * "char *err, size_t errlen" parameter in the tree.
 *
 * Convention (docs/conventions.md): a function that can say why it failed
 * takes an optional `char *err, size_t errlen` pair (NULL/0 means "don't
 * care"), writes one line there and returns a negative CN_E* code (or NULL
 * for a constructor). cn_errf() does both in one statement:
 *
 *     return cn_errf(CN_EINVAL, err, errlen, "port must be 1-65535");
 */
#ifndef CN_ERRMSG_H
#define CN_ERRMSG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Formats into err (when err && errlen; truncated, always terminated) and
 * returns rc unchanged. Control bytes (newlines, escapes) in the result,
 * which can only come from quoted input, become '?': one line, always. */
int cn_errf(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int cn_verrf(int rc, char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* The same for pure validators that answer bool with a static sentence
 * (docs/conventions.md): sets *why (when why) and returns false, so that
 * "return cn_why(why, \"port must be 1-65535\");" reads as one statement. */
bool cn_why(const char **why, const char *msg);

#endif
