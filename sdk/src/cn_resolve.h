/* cn_resolve: name resolution off the event loop.
 *
 * Debian's lws 4.1.6 has no asynchronous DNS and getaddrinfo() blocks: one
 * slow DNS answer on the loop thread would stall every stream and the
 * link's pings. So names are resolved by a pool of resolver threads
 * (CN_RESOLVE_THREADS, started as needed: enough that a few slow names,
 * dials and health probes together, do not hold up the others) fed by a
 * bounded queue; the result comes back on the
 * lws service thread: a worker queues it under a lock and wakes the loop
 * with lws_cancel_service() (the only lws call another thread may make),
 * and the loop runs the callback from LWS_CALLBACK_EVENT_WAIT_CANCELLED
 * through cn_resolve_dispatch() (cn_pipe's protocol does that).
 *
 * A request made with no context (NULL) is polled instead: nothing wakes
 * anyone, and its owner calls cn_resolve_dispatch(NULL) from its own timer
 * (the health probe runner does, on every step).
 *
 * Threading: cn_resolve_start(), cn_resolve_cancel() and
 * cn_resolve_dispatch() are called on the service thread of the context
 * the request names (for NULL: the one thread that polls). A request must
 * be cancelled or dispatched before its context is destroyed.
 *
 * Errors: 0 / pointers on success, negative CN_E* codes. A start that
 * fails never calls its callback. */
#ifndef CN_RESOLVE_H
#define CN_RESOLVE_H

#include <stddef.h>

struct addrinfo;
struct lws_context;

#define CN_RESOLVE_THREADS 16
/* Requests waiting for a thread; beyond it cn_resolve_start() says
 * CN_EAGAIN, so a flood of streams to slow names cannot queue without end. */
#define CN_RESOLVE_QUEUE_MAX 64

typedef struct cn_resolve_req cn_resolve_req_t;

/* Called once on the service thread with 0 and the addresses (TCP, any
 * family, port filled in; the callee owns them: freeaddrinfo()), or
 * CN_EREFUSED (the name does not resolve) and NULL. */
typedef void (*cn_resolve_cb)(void *arg, int err, struct addrinfo *res);

/* Starts resolving host (a name; literals work too) for TCP port `port`;
 * ctx NULL: polled (see above).
 * Returns the request (owned by the module until its callback returns or it
 * is cancelled) or NULL with *err: CN_EAGAIN (queue full), CN_EINVAL,
 * CN_ENOMEM, CN_EIO (no thread could start). */
cn_resolve_req_t *cn_resolve_start(struct lws_context *ctx, const char *host, int port,
                                   cn_resolve_cb cb, void *arg, int *err);
/* The callback will not run; the request is freed (now, or when its thread
 * is done with it). */
void cn_resolve_cancel(cn_resolve_req_t *req);
/* Runs the callbacks of the context's finished requests. */
void cn_resolve_dispatch(struct lws_context *ctx);
/* Requests queued or being resolved, all contexts (for tests). */
size_t cn_resolve_pending(void);

#endif
