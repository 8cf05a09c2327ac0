/* hub_accept: accept4() for the hub's own listening sockets (API, public TCP
 * ports, HTTP edge) that survives running out of file descriptors.
 *
 * At EMFILE/ENFILE a connection stays queued, the listener stays readable
 * and a level-triggered loop (poll or epoll) wakes at once, again and again:
 * the hub spun at 100% of a core and logged a line per turn (lws #2852 is
 * the same in lws's own listeners). So one descriptor is kept in reserve:
 * at EMFILE it is closed, the queued connection accepted and reset (RST:
 * the client learns at once), and the reserve reopened. Refusals are
 * logged at most once a second, with their count.
 *
 * Single-threaded: call it from the lws service thread only. */
#ifndef HUB_ACCEPT_H
#define HUB_ACCEPT_H

#include <sys/socket.h>

/* Accepts one connection on the non-blocking listener `lfd`, non-blocking
 * and close-on-exec, filling ss/sl (sl in: sizeof(*ss)). Returns the new
 * descriptor, or -1 when there is nothing more to accept on this wake-up
 * (EAGAIN, an error, or a connection just refused for want of descriptors).
 * `who` names the listener in the log line ("api", "tunnel ID"). */
int hub_accept(int lfd, struct sockaddr_storage *ss, socklen_t *sl, const char *who);

#endif
