/* One formatter for error-message buffers (see cn_errmsg.h). */
#include "cn_errmsg.h"

#include <stdio.h>

int cn_verrf(int rc, char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (!err || !errlen)
        return rc;
    vsnprintf(err, errlen, fmt, ap);
    /* Messages quote what users and peers wrote (config values, patterns,
     * names): a newline or escape there would break the one-line promise
     * or drive the terminal, so control bytes become '?'. */
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return rc;
}

int cn_errf(int rc, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc = cn_verrf(rc, err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

bool cn_why(const char **why, const char *msg)
{
    if (why)
        *why = msg;
    return false;
}
