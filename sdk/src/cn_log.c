/* stderr logger with a level threshold and UTC timestamps. */
#include "cn_log.h"

#include "cn_time.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int log_level = -1;

static int level_from_env(void)
{
    const char *v = getenv("CONNECT_LOG");
    if (!v)
        return CN_LOG_INFO;
    if (!strcmp(v, "error"))
        return CN_LOG_ERROR;
    if (!strcmp(v, "warn"))
        return CN_LOG_WARN;
    if (!strcmp(v, "debug"))
        return CN_LOG_DEBUG;
    return CN_LOG_INFO;
}

void cn_log_set_level(int level)
{
    log_level = level;
}

int cn_log_get_level(void)
{
    if (log_level < 0)
        log_level = level_from_env();
    return log_level;
}

void cn_log(int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (level > cn_log_get_level())
        return;
    int64_t now = cn_time_wall_ms();
    time_t sec = (time_t)(now / 1000);
    struct tm tm;
    char when[32];
    gmtime_r(&sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03dZ %s %s\n", when, (int)(now % 1000),
            names[level < 0 ? 0 : (level > 3 ? 3 : level)], line);
}
