/* cn_tunnel: what can be decided without a hub. Options are checked before
 * anything runs; credentials resolve as the CLI's; a tunnel never started
 * answers its getters with nothing and stops as a no-op; a start against a
 * hub that is not there fails (blocking: with the reason, the thread joined;
 * async: the ready callback exactly once, on the tunnel's thread), and a
 * tunnel starts once. The hub side is test_sdk_tunnel.sh's. */
#include "cn_test.h"

#include "cn_err.h"
#include "config.h"

#include <connect/tunnel.h>

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#define AID "2da00a1a-38b5-49ea-bedf-669e3b31ccef"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cn-test-tunnel.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A port nothing listens on: bound, then closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* An enrolled agent's config for a hub at `hub`, at dir/NAME. */
static void write_config(const char *name, const char *hub, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    agent_config_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.hub, sizeof(c.hub), "%s", hub);
    snprintf(c.agent_id, sizeof(c.agent_id), AID);
    snprintf(c.token, sizeof(c.token), "cnt_unit");
    for (int i = 0; i < 32; i++) {
        c.agent_sk[i] = (uint8_t)(i + 1);
        c.hub_pk[i] = (uint8_t)(200 - i);
    }
    c.have_keys = true;
    char err[256];
    assert_int_equal(agent_config_save(path, &c, err, sizeof(err)), 0);
}

static void test_options_are_checked(void **state)
{
    (void)state;
    char name101[102];
    memset(name101, 'n', 101);
    name101[101] = '\0';
    const struct {
        int port;
        const char *name;
        const char *why;
    } v[] = {
        {0, NULL, "local_port"},
        {-1, NULL, "local_port"},
        {65536, NULL, "local_port"},
        {80, "", "name must be 1-100"},
        {80, name101, "name must be 1-100"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char err[256] = "";
        cn_tunnel_options_t o = {.local_port = v[i].port, .name = v[i].name};
        cn_tunnel_t *t = cn_tunnel_new(&o, err, sizeof(err));
        if (t || !strstr(err, v[i].why))
            fail_msg("case %zu: tunnel %p, err '%s', want '%s'", i, (void *)t, err, v[i].why);
    }
    char err[256] = "";
    assert_null(cn_tunnel_new(NULL, err, sizeof(err)));
    assert_true(err[0] != '\0');
}

static void test_credentials_as_the_cli(void **state)
{
    (void)state;
    char err[512] = "", path[300];
    /* No config file: no agent identity, whatever the options say. */
    snprintf(path, sizeof(path), "%s/absent.json", dir);
    cn_tunnel_options_t o = {
        .local_port = 80, .config_path = path, .hub_url = "http://127.0.0.1:1", .token = "cnt_x"};
    assert_null(cn_tunnel_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "no enrolled agent"));
    /* A config file others may read is refused, like the CLI's. */
    write_config("open.json", "http://127.0.0.1:1", path, sizeof(path));
    assert_int_equal(chmod(path, 0644), 0);
    o.config_path = path;
    assert_null(cn_tunnel_new(&o, err, sizeof(err)));
    /* The file's token is never sent to another hub than the file's. */
    write_config("mine.json", "http://127.0.0.1:1", path, sizeof(path));
    cn_tunnel_options_t other = {
        .local_port = 80, .config_path = path, .hub_url = "http://127.0.0.1:2"};
    assert_null(cn_tunnel_new(&other, err, sizeof(err)));
    assert_non_null(strstr(err, "never sent to another hub"));
}

static void test_never_started(void **state)
{
    (void)state;
    char err[256], path[300];
    write_config("idle.json", "http://127.0.0.1:1", path, sizeof(path));
    cn_tunnel_options_t o = {.local_port = 8000, .config_path = path};
    cn_tunnel_t *t = cn_tunnel_new(&o, err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(cn_tunnel_status(t), CN_TUNNEL_IDLE);
    assert_null(cn_tunnel_url(t));
    assert_null(cn_tunnel_id(t));
    assert_null(cn_tunnel_connection_string(t));
    assert_null(cn_tunnel_http_password(t));
    assert_int_equal(cn_tunnel_hub_port(t), 0);
    assert_int_equal(cn_tunnel_stop(t, err, sizeof(err)), 0);
    cn_tunnel_free(t);
    cn_tunnel_free(NULL);
    assert_int_equal(cn_tunnel_stop(NULL, err, sizeof(err)), 0);
}

static void test_status_names(void **state)
{
    (void)state;
    static const char *const names[] = {"idle",         "connecting", "active",
                                        "reconnecting", "paused",     "error"};
    for (int s = CN_TUNNEL_IDLE; s <= CN_TUNNEL_ERROR; s++)
        assert_string_equal(cn_tunnel_status_name((cn_tunnel_status_t)s), names[s]);
    assert_string_equal(cn_tunnel_status_name((cn_tunnel_status_t)42), "unknown");
}

/* Status changes seen by the callback, on the tunnel's thread. */
typedef struct seen {
    pthread_mutex_t mu;
    int statuses[8];
    int n;
    int ready_calls, ready_rc, stop_rc;
    bool why;
    pthread_t ready_thread;
} seen_t;

static void on_status(void *ctx, cn_tunnel_t *t, cn_tunnel_status_t s, const char *why)
{
    (void)t;
    (void)why;
    seen_t *sn = ctx;
    pthread_mutex_lock(&sn->mu);
    if (sn->n < 8)
        sn->statuses[sn->n++] = (int)s;
    pthread_mutex_unlock(&sn->mu);
}

static void test_start_without_a_hub(void **state)
{
    (void)state;
    char err[512] = "", path[300], hub[64];
    snprintf(hub, sizeof(hub), "http://127.0.0.1:%d", closed_port());
    write_config("nohub.json", hub, path, sizeof(path));
    seen_t sn = {.mu = PTHREAD_MUTEX_INITIALIZER};
    cn_tunnel_options_t o = {
        .local_port = 8000, .config_path = path, .on_status = on_status, .ctx = &sn};
    cn_tunnel_t *t = cn_tunnel_new(&o, err, sizeof(err));
    assert_non_null(t);
    int rc = cn_tunnel_start(t, 10000, err, sizeof(err));
    assert_int_equal(rc, CN_EIO);
    assert_non_null(strstr(err, "cannot reach the hub"));
    assert_int_equal(cn_tunnel_status(t), CN_TUNNEL_ERROR);
    assert_int_equal(sn.n, 2);
    assert_int_equal(sn.statuses[0], CN_TUNNEL_CONNECTING);
    assert_int_equal(sn.statuses[1], CN_TUNNEL_ERROR);
    assert_null(cn_tunnel_id(t));
    /* A tunnel starts once. */
    assert_int_equal(cn_tunnel_start(t, 1000, err, sizeof(err)), CN_ESTATE);
    assert_int_equal(cn_tunnel_start_async(t, NULL, NULL), CN_ESTATE);
    assert_int_equal(cn_tunnel_stop(t, err, sizeof(err)), 0);
    cn_tunnel_free(t);
}

static void on_ready(void *ctx, cn_tunnel_t *t, int result, const char *why)
{
    seen_t *sn = ctx;
    char err[128];
    /* On the tunnel's own thread, stopping would wait for itself (checked
     * on the test's thread: cmocka's asserts belong there). */
    int stop_rc = cn_tunnel_stop(t, err, sizeof(err));
    pthread_mutex_lock(&sn->mu);
    sn->stop_rc = stop_rc;
    sn->why = why && *why;
    sn->ready_calls++;
    sn->ready_rc = result;
    sn->ready_thread = pthread_self();
    pthread_mutex_unlock(&sn->mu);
}

static void test_start_async_reports_once(void **state)
{
    (void)state;
    char err[512] = "", path[300], hub[64];
    snprintf(hub, sizeof(hub), "http://127.0.0.1:%d", closed_port());
    write_config("async.json", hub, path, sizeof(path));
    seen_t sn = {.mu = PTHREAD_MUTEX_INITIALIZER};
    cn_tunnel_options_t o = {.local_port = 8000, .config_path = path};
    cn_tunnel_t *t = cn_tunnel_new(&o, err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(cn_tunnel_start_async(t, on_ready, &sn), 0);
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&sn.mu);
        int calls = sn.ready_calls;
        pthread_mutex_unlock(&sn.mu);
        if (calls)
            break;
        struct timespec ms10 = {0, 10 * 1000 * 1000};
        nanosleep(&ms10, NULL);
    }
    assert_int_equal(cn_tunnel_stop(t, err, sizeof(err)), 0); /* joins */
    assert_int_equal(sn.ready_calls, 1);
    assert_int_equal(sn.ready_rc, CN_EIO);
    assert_int_equal(sn.stop_rc, CN_ESTATE);
    assert_true(sn.why);
    assert_false(pthread_equal(sn.ready_thread, pthread_self()));
    cn_tunnel_free(t);

    /* Stopped at once: the outcome is still reported, exactly once. */
    seen_t s2 = {.mu = PTHREAD_MUTEX_INITIALIZER};
    t = cn_tunnel_new(&o, err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(cn_tunnel_start_async(t, on_ready, &s2), 0);
    assert_int_equal(cn_tunnel_stop(t, err, sizeof(err)), 0);
    assert_int_equal(s2.ready_calls, 1);
    assert_true(s2.ready_rc < 0);
    cn_tunnel_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_are_checked), cmocka_unit_test(test_credentials_as_the_cli),
        cmocka_unit_test(test_never_started),       cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_start_without_a_hub), cmocka_unit_test(test_start_async_reports_once),
    };
    /* The environment must not supply credentials behind the test's back. */
    unsetenv("CONNECT_HUB");
    unsetenv("CONNECT_TOKEN");
    unsetenv("CONNECT_CONFIG");
    unsetenv("CONNECT_CA_FILE");
    return cmocka_run_group_tests(tests, setup, teardown);
}
