/* cn_resolve: names are resolved by threads and the answers come back only
 * through cn_resolve_dispatch() on the caller's thread; a cancelled request
 * never calls back; bad arguments fail at once without a callback. */
#include "cn_test.h"

#include "cn_err.h"
#include "cn_resolve.h"

#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct answer {
    int calls, err, port;
} answer_t;

static void on_answer(void *arg, int err, struct addrinfo *res)
{
    answer_t *a = arg;
    a->calls++;
    a->err = err;
    if (res && res->ai_family == AF_INET)
        a->port = ntohs(((const struct sockaddr_in *)res->ai_addr)->sin_port);
    else if (res && res->ai_family == AF_INET6)
        a->port = ntohs(((const struct sockaddr_in6 *)res->ai_addr)->sin6_port);
    if (res)
        freeaddrinfo(res);
}

static struct lws_context *context(void)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    lws_set_log_level(0, NULL);
    struct lws_context *ctx = lws_create_context(&info);
    assert_non_null(ctx);
    return ctx;
}

/* Dispatches until `a` got its answer or ~5 s passed. */
static void wait_answer(struct lws_context *ctx, answer_t *a)
{
    for (int i = 0; i < 500 && !a->calls; i++) {
        cn_resolve_dispatch(ctx);
        if (!a->calls)
            usleep(10000);
    }
}

static void test_resolves_off_thread(void **state)
{
    struct lws_context *ctx = context();
    answer_t a = {0};
    int err = 0;
    cn_resolve_req_t *r = cn_resolve_start(ctx, "localhost", 8080, on_answer, &a, &err);
    assert_non_null(r);
    assert_int_equal(a.calls, 0); /* never from inside start */
    wait_answer(ctx, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.port, 8080);
    /* Another context's dispatch never runs our callbacks. */
    struct lws_context *other = context();
    answer_t b = {0};
    assert_non_null(cn_resolve_start(ctx, "127.0.0.1", 1, on_answer, &b, &err));
    for (int i = 0; i < 50; i++) {
        cn_resolve_dispatch(other);
        usleep(2000);
    }
    assert_int_equal(b.calls, 0);
    wait_answer(ctx, &b);
    assert_int_equal(b.calls, 1);
    lws_context_destroy(other);
    lws_context_destroy(ctx);
}

static void test_cancel_and_bad_arguments(void **state)
{
    struct lws_context *ctx = context();
    answer_t a = {0};
    int err = 0;
    for (int i = 0; i < 20; i++) {
        cn_resolve_req_t *r = cn_resolve_start(ctx, "localhost", 22, on_answer, &a, &err);
        assert_non_null(r);
        if (i % 2)
            usleep(1000); /* some cancelled while a thread holds them */
        cn_resolve_cancel(r);
    }
    for (int i = 0; i < 300 && cn_resolve_pending(); i++) {
        cn_resolve_dispatch(ctx);
        usleep(10000);
    }
    cn_resolve_dispatch(ctx);
    assert_int_equal(cn_resolve_pending(), 0);
    assert_int_equal(a.calls, 0);
    assert_null(cn_resolve_start(ctx, "", 22, on_answer, &a, &err));
    assert_int_equal(err, CN_EINVAL);
    assert_null(cn_resolve_start(ctx, "localhost", 0, on_answer, &a, &err));
    assert_null(cn_resolve_start(ctx, "localhost", 22, NULL, &a, &err));
    assert_int_equal(a.calls, 0);
    lws_context_destroy(ctx);
}

/* No context: nothing wakes anyone; the owner polls with dispatch(NULL),
 * and a context's dispatch never takes a polled request. */
static void test_polled(void **state)
{
    struct lws_context *ctx = context();
    answer_t a = {0};
    int err = 0;
    assert_non_null(cn_resolve_start(NULL, "localhost", 5432, on_answer, &a, &err));
    for (int i = 0; i < 50; i++) {
        cn_resolve_dispatch(ctx);
        usleep(2000);
    }
    assert_int_equal(a.calls, 0);
    wait_answer(NULL, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.port, 5432);
    lws_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolves_off_thread),
        cmocka_unit_test(test_cancel_and_bad_arguments),
        cmocka_unit_test(test_polled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
