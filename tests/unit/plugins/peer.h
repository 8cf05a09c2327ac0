/* A scripted TCP peer for the probe tests, on 127.0.0.1 in its own thread:
 * on each connection it may send a greeting, then answers the first bytes
 * it receives with `reply` (or a reply chosen by a function), and closes or
 * stays silent as told. Bounded: it stops with peer_stop() or after 30 s. */
#ifndef TEST_PEER_H
#define TEST_PEER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct peer {
    int lfd;
    uint16_t port;
    const uint8_t *greeting;
    size_t greeting_len;
    /* The answer to the first bytes received; NULL to answer nothing. A
     * chooser, when set, picks it from the request instead. */
    const uint8_t *reply;
    size_t reply_len;
    size_t (*chooser)(const uint8_t *req, size_t len, const uint8_t **reply);
    size_t flood;       /* send this many 'x' bytes after the request instead */
    bool close_at_once; /* close each connection right after accept */
    bool close_after_reply;
    volatile bool stop;
    int accepted;
    pthread_t thread;
} peer_t;

static void peer_send(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

static void *peer_main(void *arg)
{
    peer_t *pe = arg;
    int conns[64];
    bool answered[64];
    size_t nc = 0;
    time_t end = time(NULL) + 30;
    while (!pe->stop && time(NULL) < end) {
        struct pollfd fds[65];
        fds[0].fd = pe->lfd;
        fds[0].events = POLLIN;
        for (size_t i = 0; i < nc; i++) {
            fds[i + 1].fd = conns[i];
            fds[i + 1].events = POLLIN;
        }
        if (poll(fds, nc + 1, 10) <= 0)
            continue;
        if (fds[0].revents & POLLIN) {
            int fd = accept(pe->lfd, NULL, NULL);
            if (fd >= 0) {
                pe->accepted++;
                if (pe->close_at_once || nc == 64) {
                    close(fd);
                } else {
                    if (pe->greeting_len)
                        peer_send(fd, pe->greeting, pe->greeting_len);
                    answered[nc] = false;
                    conns[nc++] = fd;
                }
            }
        }
        for (size_t i = 0; i < nc; i++) {
            if (!(fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            uint8_t buf[4096];
            ssize_t n = recv(conns[i], buf, sizeof(buf), 0);
            if (n <= 0) {
                close(conns[i]);
                conns[i] = conns[--nc];
                answered[i] = answered[nc];
                fds[i + 1] = fds[nc + 1];
                i--;
                continue;
            }
            if (answered[i])
                continue;
            answered[i] = true;
            const uint8_t *reply = pe->reply;
            size_t len = pe->reply_len;
            if (pe->chooser)
                len = pe->chooser(buf, (size_t)n, &reply);
            if (pe->flood) {
                uint8_t x[1024];
                memset(x, 'x', sizeof(x));
                for (size_t k = 0; k < pe->flood; k += sizeof(x))
                    peer_send(conns[i], x, sizeof(x));
            } else if (reply && len) {
                peer_send(conns[i], reply, len);
            }
            if (pe->close_after_reply) {
                close(conns[i]);
                conns[i] = conns[--nc];
                answered[i] = answered[nc];
                fds[i + 1] = fds[nc + 1];
                i--;
            }
        }
    }
    for (size_t i = 0; i < nc; i++)
        close(conns[i]);
    return NULL;
}

/* A port on 127.0.0.1 that nothing listens on (bound, then closed). */
static uint16_t closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0)
        abort();
    close(fd);
    return ntohs(a.sin_port);
}

static void peer_start(peer_t *pe)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int one = 1;
    pe->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (pe->lfd < 0)
        abort();
    setsockopt(pe->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(pe->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(pe->lfd, 64) < 0 ||
        getsockname(pe->lfd, (struct sockaddr *)&a, &al) < 0)
        abort();
    pe->port = ntohs(a.sin_port);
    if (pthread_create(&pe->thread, NULL, peer_main, pe) != 0)
        abort();
}

static void peer_stop(peer_t *pe)
{
    pe->stop = true;
    pthread_join(pe->thread, NULL);
    close(pe->lfd);
}

#endif
