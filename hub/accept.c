#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include "accept.h"

#include "cn_log.h"
#include "cn_pipe.h"
#include "cn_time.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* The descriptor given up to shed a connection at EMFILE; -1 until the
 * first call opens it (or while it could not be reopened). */
static int reserve = -1;
static unsigned long refused_unlogged;
static uint64_t logged_at;

static void reserve_open(void)
{
    if (reserve < 0)
        reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int hub_accept(int lfd, struct sockaddr_storage *ss, socklen_t *sl, const char *who)
{
    reserve_open();
    int fd = accept4(lfd, (struct sockaddr *)ss, sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0 || (errno != EMFILE && errno != ENFILE))
        return fd;
    int shed = -1;
    if (reserve >= 0) {
        close(reserve);
        reserve = -1;
        shed = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (shed >= 0)
            cn_sock_reset(shed);
        reserve_open();
    }
    refused_unlogged += shed >= 0;
    uint64_t now = cn_time_mono_ms();
    if (!logged_at || now - logged_at >= 1000) {
        cn_log_warn("%s: out of file descriptors: %lu connection%s refused since the last such "
                    "line%s",
                    who, refused_unlogged, refused_unlogged == 1 ? "" : "s",
                    reserve < 0 ? " (no descriptor in reserve: connections stay queued)" : "");
        logged_at = now;
        refused_unlogged = 0;
    }
    return -1;
}
