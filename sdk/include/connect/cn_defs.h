/* Attributes every libconnect header uses.
 *
 * libconnect is built with hidden visibility: a function is part of the
 * shared library's ABI only when its declaration carries CN_EXTERN, and every
 * such declaration lives, documented, in a header under <connect/>. Whatever
 * else the library holds (frames, channel, multiplexer, link) stays internal
 * and may change without notice.
 *
 * CN_WARN_UNUSED marks a call that can fail: its result must be looked at,
 * as curl does with WARN_UNUSED_RESULT. GCC does not accept a (void) cast as
 * looking, so a caller that really has nothing to do on failure writes why in
 * an if statement. */
#ifndef CN_DEFS_H
#define CN_DEFS_H

#if defined(__GNUC__) || defined(__clang__)
#define CN_EXTERN __attribute__((visibility("default")))
#define CN_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define CN_EXTERN
#define CN_WARN_UNUSED
#endif

#endif
