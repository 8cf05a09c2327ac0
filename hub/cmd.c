/* What connect-hub's commands share: the failure line and the log level. */
#include "cmd.h"

#include "cn_log.h"

#include <stdarg.h>
#include <stdio.h>

int hub_cmd_fail(const char *cmd, const char *fmt, ...)
{
    char who[64];
    snprintf(who, sizeof(who), "connect-hub %s", cmd);
    va_list ap;
    va_start(ap, fmt);
    int rc = cn_args_vfail(who, fmt, ap);
    va_end(ap);
    return rc;
}

void hub_cmd_logging(int given)
{
    if (given > 0)
        cn_log_set_level(given - 1);
}
