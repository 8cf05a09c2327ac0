/* Resolver threads with a bounded queue (see cn_resolve.h). One lock guards
 * the three lists a request moves through: waiting -> (a thread) -> done;
 * the loop thread takes done ones for its context. Threads start on the
 * first request and live as long as the process. */
#include "cn_resolve.h"

#include "cn_err.h"

#include <libwebsockets.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct cn_resolve_req {
    cn_resolve_req_t *next;
    struct lws_context *ctx;
    cn_resolve_cb cb;
    void *arg;
    bool cancelled, running;
    int err;
    struct addrinfo *res;
    char port[8];
    char host[256];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static cn_resolve_req_t *waiting_head, *waiting_tail, *done_head;
static size_t nwaiting, nrunning;
static int nthreads;

static void req_free(cn_resolve_req_t *r)
{
    if (r->res)
        freeaddrinfo(r->res);
    free(r);
}

static void *worker(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!waiting_head)
            pthread_cond_wait(&more, &lock);
        cn_resolve_req_t *r = waiting_head;
        waiting_head = r->next;
        if (!waiting_head)
            waiting_tail = NULL;
        nwaiting--;
        nrunning++;
        r->running = true;
        pthread_mutex_unlock(&lock);

        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        int rc = getaddrinfo(r->host, r->port, &hints, &res);

        pthread_mutex_lock(&lock);
        nrunning--;
        r->running = false;
        r->res = rc == 0 ? res : NULL;
        r->err = rc == 0 && res ? 0 : CN_EREFUSED;
        if (rc == 0 && !res)
            r->err = CN_EREFUSED;
        if (r->cancelled) {
            req_free(r);
            continue;
        }
        r->next = done_head;
        done_head = r;
        /* Under the lock: a cancel (which must precede the context's end)
         * cannot slip between the check above and this wake-up. */
        if (r->ctx)
            lws_cancel_service(r->ctx);
    }
    return NULL;
}

/* Starts threads up to CN_RESOLVE_THREADS, one per waiting request. */
static int grow(void)
{
    while (nthreads < CN_RESOLVE_THREADS && (size_t)nthreads < nwaiting + nrunning) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a, 256 * 1024);
        int rc = pthread_create(&t, &a, worker, NULL);
        pthread_attr_destroy(&a);
        if (rc != 0)
            return nthreads ? 0 : CN_EIO;
        nthreads++;
    }
    return 0;
}

cn_resolve_req_t *cn_resolve_start(struct lws_context *ctx, const char *host, int port,
                                   cn_resolve_cb cb, void *arg, int *err)
{
    int rc = CN_EINVAL;
    cn_resolve_req_t *r = NULL;
    if (!host || !*host || !cb || port <= 0 || port > 65535 || strlen(host) >= 256)
        goto fail;
    rc = CN_ENOMEM;
    r = calloc(1, sizeof(*r));
    if (!r)
        goto fail;
    r->ctx = ctx;
    r->cb = cb;
    r->arg = arg;
    snprintf(r->host, sizeof(r->host), "%s", host);
    snprintf(r->port, sizeof(r->port), "%d", port);
    pthread_mutex_lock(&lock);
    if (nwaiting >= CN_RESOLVE_QUEUE_MAX) {
        pthread_mutex_unlock(&lock);
        rc = CN_EAGAIN;
        goto fail;
    }
    if (waiting_tail)
        waiting_tail->next = r;
    else
        waiting_head = r;
    waiting_tail = r;
    nwaiting++;
    rc = grow();
    if (rc < 0) {
        /* No thread at all: take it back. */
        waiting_head = waiting_tail = NULL;
        nwaiting = 0;
        pthread_mutex_unlock(&lock);
        goto fail;
    }
    pthread_cond_signal(&more);
    pthread_mutex_unlock(&lock);
    return r;
fail:
    free(r);
    if (err)
        *err = rc;
    return NULL;
}

/* Unlinks r from a singly linked list; true when it was there. */
static bool unlink_from(cn_resolve_req_t **head, cn_resolve_req_t **tail, cn_resolve_req_t *r)
{
    cn_resolve_req_t *prev = NULL;
    for (cn_resolve_req_t *p = *head; p; prev = p, p = p->next) {
        if (p != r)
            continue;
        if (prev)
            prev->next = p->next;
        else
            *head = p->next;
        if (tail && *tail == p)
            *tail = prev;
        return true;
    }
    return false;
}

void cn_resolve_cancel(cn_resolve_req_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&lock);
    if (r->running) {
        r->cancelled = true; /* its thread frees it */
    } else if (unlink_from(&waiting_head, &waiting_tail, r)) {
        nwaiting--;
        req_free(r);
    } else if (unlink_from(&done_head, NULL, r)) {
        req_free(r);
    }
    pthread_mutex_unlock(&lock);
}

void cn_resolve_dispatch(struct lws_context *ctx)
{
    /* One at a time, unlocked around the callback: it may start requests,
     * or cancel other finished ones, which must then never run. */
    for (;;) {
        cn_resolve_req_t *r = NULL;
        pthread_mutex_lock(&lock);
        for (cn_resolve_req_t *p = done_head; p; p = p->next)
            if (p->ctx == ctx)
                r = p; /* the oldest: done_head is newest first */
        if (r)
            unlink_from(&done_head, NULL, r);
        pthread_mutex_unlock(&lock);
        if (!r)
            return;
        struct addrinfo *res = r->res;
        r->res = NULL; /* the callback's now */
        r->cb(r->arg, r->err, res);
        req_free(r);
    }
}

size_t cn_resolve_pending(void)
{
    pthread_mutex_lock(&lock);
    size_t n = nwaiting + nrunning;
    for (cn_resolve_req_t *r = done_head; r; r = r->next)
        n++;
    pthread_mutex_unlock(&lock);
    return n;
}
