/* The app-server core as a specification: every route and its errors, the
 * status machine and its events, the event ring's bound, the callback
 * queue's retries, and callback URL parsing. */
#include "cn_test.h"

#include "app_server.h"
#include "cn_err.h"
#include "cn_log.h"

#include <sodium.h>
#include <string.h>

#define T0 1764888000000LL /* a wall clock */
#define TOKEN "s3cret-token-for-tests"

static as_server_t *server(const char *token)
{
    as_config_t cfg = {.token = token};
    as_server_t *as = as_new(&cfg);
    assert_non_null(as);
    return as;
}

/* Answers a request; returns the status. */
static int req(as_server_t *as, const char *method, const char *path, const char *body,
               const char *auth, as_answer_t *a)
{
    as_request_t r = {
        .method = method,
        .path = path,
        .authorization = auth,
        .body = body,
        .body_len = body ? strlen(body) : 0,
    };
    as_handle(as, &r, T0, a);
    return a->status;
}

static const char *message(const as_answer_t *a)
{
    return json_string_value(json_object_get(a->body, "message"));
}

/* A create that the hub accepted: returns the tunnel id in id. */
static void create(as_server_t *as, const char *body, char id[static CN_ID_UUID_SIZE])
{
    as_answer_t a;
    req(as, "POST", "/api/v1/tunnels", body, NULL, &a);
    assert_int_equal(a.action, AS_ACT_START);
    assert_int_equal(a.status, 0); /* deferred until the hub answers */
    assert_null(a.body);
    snprintf(id, CN_ID_UUID_SIZE, "%s", a.tunnel_id);
    as_answer_clear(&a);
    as_answer_t c;
    as_tunnel_created(as, id, "11111111-2222-4333-8444-555555555555", "http://x.localhost:1/", 0,
                      T0 + 5, &c);
    assert_int_equal(c.status, 201);
    assert_string_equal(json_string_value(json_object_get(c.body, "status")), "starting");
    assert_string_equal(json_string_value(json_object_get(c.body, "tunnel_url")),
                        "http://x.localhost:1/");
    as_answer_clear(&c);
}

static void test_health_needs_no_token(void **state)
{
    as_server_t *as = server(TOKEN);
    as_answer_t a;
    assert_int_equal(req(as, "GET", "/api/v1/health", NULL, NULL, &a), 200);
    assert_string_equal(json_string_value(json_object_get(a.body, "status")), "ok");
    as_answer_clear(&a);
    assert_int_equal(req(as, "POST", "/api/v1/health", NULL, NULL, &a), 405);
    assert_string_equal(a.allow, "GET");
    as_answer_clear(&a);
    as_free(as);
}

static void test_token(void **state)
{
    as_server_t *as = server(TOKEN);
    static const char *const bad[] = {NULL,
                                      "",
                                      "Bearer",
                                      "Bearer ",
                                      "Bearer wrong",
                                      "Basic " TOKEN,
                                      "Bearer " TOKEN "x",
                                      "Bearer  " TOKEN};
    as_answer_t a;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(req(as, "GET", "/api/v1/tunnels", NULL, bad[i], &a), 401);
        assert_non_null(message(&a));
        as_answer_clear(&a);
    }
    /* Unknown routes too: nothing is told before the token. */
    assert_int_equal(req(as, "GET", "/nope", NULL, NULL, &a), 401);
    as_answer_clear(&a);
    assert_int_equal(req(as, "GET", "/api/v1/tunnels", NULL, "Bearer " TOKEN, &a), 200);
    as_answer_clear(&a);
    assert_int_equal(req(as, "GET", "/api/v1/tunnels", NULL, "bearer " TOKEN, &a), 200);
    as_answer_clear(&a);
    as_free(as);
    /* Without a token configured, none is asked for. */
    as = server(NULL);
    assert_int_equal(req(as, "GET", "/api/v1/tunnels", NULL, NULL, &a), 200);
    as_answer_clear(&a);
    as_free(as);
}

static void test_routes_404_405(void **state)
{
    static const struct {
        const char *method, *path;
        int status;
        const char *allow;
    } cases[] = {
        {"GET", "/api/v1/nothing", 404, NULL},
        {"GET", "/", 404, NULL},
        {"GET", "/api/v1/tunnels/", 404, NULL},
        {"GET", "/api/v1/tunnels/00000000-0000-4000-8000-000000000000", 404, NULL},
        {"DELETE", "/api/v1/tunnels/not-a-uuid", 404, NULL},
        {"POST", "/api/v1/tunnels/00000000-0000-4000-8000-000000000000/shutdown", 404, NULL},
        {"GET", "/api/v1/tunnels/00000000-0000-4000-8000-000000000000/other", 404, NULL},
        {"PUT", "/api/v1/tunnels", 405, "GET, POST"},
        {"DELETE", "/api/v1/tunnels", 405, "GET, POST"},
        {"POST", "/api/v1/tunnels/00000000-0000-4000-8000-000000000000", 405, "GET, DELETE"},
        {"GET", "/api/v1/tunnels/00000000-0000-4000-8000-000000000000/shutdown", 405, "POST"},
        {"POST", "/api/v1/events", 405, "GET"},
    };
    as_server_t *as = server(NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        as_answer_t a;
        int st = req(as, cases[i].method, cases[i].path, NULL, NULL, &a);
        if (st != cases[i].status)
            fail_msg("%s %s: %d, want %d", cases[i].method, cases[i].path, st, cases[i].status);
        assert_non_null(message(&a));
        if (cases[i].allow)
            assert_string_equal(a.allow, cases[i].allow);
        else
            assert_null(a.allow);
        assert_int_equal(a.action, AS_ACT_NONE);
        as_answer_clear(&a);
    }
    as_free(as);
}

static void test_create_validation(void **state)
{
    static const struct {
        const char *body;
        const char *says[4]; /* each must be in the message */
    } cases[] = {
        {NULL, {"JSON body is required"}},
        {"{\"type\":", {"invalid JSON"}},
        {"[1,2]", {"JSON object"}},
        {"{\"type\":\"tcp\",\"port\":1,\"port\":2}", {"invalid JSON"}}, /* duplicate key */
        {"{}", {"type is required", "port is required"}},
        {"{\"type\":\"ftp\",\"port\":0}", {"type must be http or tcp", "port must be"}},
        {"{\"type\":\"tcp\",\"port\":65536}", {"port must be"}},
        {"{\"type\":\"tcp\",\"port\":\"80\"}", {"port must be"}},
        {"{\"type\":\"tcp\",\"port\":80,\"host\":\"a b\"}", {"host"}},
        {"{\"type\":\"tcp\",\"port\":80,\"bogus\":1}", {"'bogus' is not a known field"}},
        {"{\"type\":\"tcp\",\"port\":80,\"subdomain\":\"web\"}", {"http tunnels only"}},
        {"{\"type\":\"http\",\"port\":80,\"subdomain\":\"-web\"}", {"subdomain must be"}},
        {"{\"type\":\"http\",\"port\":80,\"subdomain\":\"Web\"}", {"subdomain must be"}},
        {"{\"type\":\"http\",\"port\":80,\"name\":\"\"}", {"name must be"}},
        {"{\"type\":\"http\",\"port\":80,\"callback_url\":\"https://127.0.0.1/\"}",
         {"callback_url must start with http://"}},
        {"{\"type\":\"http\",\"port\":80,\"callback_url\":\"http://example.com/\"}",
         {"callback_url must name an IP address"}},
        {"{\"type\":\"http\",\"port\":80,\"callback_urls\":\"http://127.0.0.1/\"}",
         {"callback_urls must be an array"}},
        {"{\"type\":\"http\",\"port\":80,\"callback_urls\":[1]}",
         {"callback_urls must be a string"}},
    };
    as_server_t *as = server(NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        as_answer_t a;
        int st = req(as, "POST", "/api/v1/tunnels", cases[i].body, NULL, &a);
        if (st != 400)
            fail_msg("body %s: %d, want 400", cases[i].body ? cases[i].body : "(none)", st);
        assert_int_equal(a.action, AS_ACT_NONE);
        for (size_t k = 0; k < 4 && cases[i].says[k]; k++)
            if (!strstr(message(&a), cases[i].says[k]))
                fail_msg("body %s: message '%s' lacks '%s'", cases[i].body, message(&a),
                         cases[i].says[k]);
        as_answer_clear(&a);
    }
    assert_int_equal(as_tunnel_count(as), 0);
    as_free(as);
}

static void test_create_spec_and_json(void **state)
{
    as_server_t *as = server(NULL);
    char id[CN_ID_UUID_SIZE];
    create(as,
           "{\"type\":\"http\",\"port\":3000,\"name\":\"my app\",\"subdomain\":\"myapp\","
           "\"callback_url\":\"http://127.0.0.1:9/a\",\"callback_urls\":[\"http://[::1]:9/b\","
           "\"http://127.0.0.1:9/a\"]}",
           id);
    assert_true(cn_id_is_uuid_lower(id));
    as_tunnel_spec_t spec;
    assert_int_equal(as_tunnel_spec(as, id, &spec), 0);
    assert_string_equal(spec.name, "myapp"); /* the subdomain names the hub tunnel */
    assert_true(spec.http);
    assert_string_equal(spec.host, "localhost");
    assert_int_equal(spec.port, 3000);
    assert_int_equal(as_tunnel_spec(as, "nope", &spec), CN_ENOTFOUND);
    json_t *j = as_tunnel_json(as, id);
    static const char *const fields[] = {"id",         "status",     "tunnel_url", "remote_port",
                                         "started_at", "updated_at", "stopped_at", "last_error"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        assert_non_null(json_object_get(j, fields[i]));
    assert_true(json_is_null(json_object_get(j, "stopped_at")));
    assert_true(json_is_null(json_object_get(j, "remote_port")));
    assert_string_equal(json_string_value(json_object_get(j, "started_at")),
                        "2025-12-04T22:40:00.000Z");
    /* The same receiver twice counts once. */
    assert_int_equal(json_array_size(json_object_get(j, "callback_urls")), 2);
    json_decref(j);
    as_free(as);
}

static void test_create_failure_forgets(void **state)
{
    as_server_t *as = server(NULL);
    as_answer_t a;
    req(as, "POST", "/api/v1/tunnels", "{\"type\":\"tcp\",\"port\":80}", NULL, &a);
    char id[CN_ID_UUID_SIZE];
    snprintf(id, sizeof(id), "%s", a.tunnel_id);
    as_answer_clear(&a);
    assert_int_equal(as_tunnel_count(as), 1);
    as_tunnel_create_failed(as, id, false, "cannot reach the hub", &a);
    assert_int_equal(a.status, 500);
    assert_non_null(strstr(message(&a), "cannot reach the hub"));
    as_answer_clear(&a);
    assert_int_equal(as_tunnel_count(as), 0);
    req(as, "POST", "/api/v1/tunnels", "{\"type\":\"tcp\",\"port\":80}", NULL, &a);
    snprintf(id, sizeof(id), "%s", a.tunnel_id);
    as_answer_clear(&a);
    as_tunnel_create_failed(as, id, true, "name: already taken", &a);
    assert_int_equal(a.status, 400);
    as_answer_clear(&a);
    assert_int_equal(as_tunnel_count(as), 0);
    as_free(as);
}

/* The types of the events of `id` (or all), comma-separated. */
static void event_types(as_server_t *as, const char *id, char *out, size_t len)
{
    as_request_t r = {.method = "GET", .path = "/api/v1/events", .tunnel_id_arg = id};
    as_answer_t a;
    as_handle(as, &r, T0, &a);
    assert_int_equal(a.status, 200);
    out[0] = '\0';
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(a.body, "events"), i, e)
    {
        size_t n = strlen(out);
        snprintf(out + n, len - n, "%s%s", n ? "," : "",
                 json_string_value(json_object_get(e, "type")));
    }
    as_answer_clear(&a);
}

static const char *status_of(as_server_t *as, const char *id)
{
    static char buf[16];
    json_t *j = as_tunnel_json(as, id);
    snprintf(buf, sizeof(buf), "%s", j ? json_string_value(json_object_get(j, "status")) : "-");
    json_decref(j);
    return buf;
}

static void test_status_machine_and_events(void **state)
{
    as_server_t *as = server(NULL);
    char a[CN_ID_UUID_SIZE], b[CN_ID_UUID_SIZE], types[256];
    create(as, "{\"type\":\"tcp\",\"port\":80}", a);
    create(as, "{\"type\":\"tcp\",\"port\":81}", b);
    assert_string_equal(status_of(as, a), "starting");
    as_tunnel_state(as, a, AS_RUNNING, NULL, T0 + 1, 0);
    assert_string_equal(status_of(as, a), "running");
    as_tunnel_state(as, a, AS_RUNNING, NULL, T0 + 2, 0); /* no change, no event */
    as_tunnel_state(as, a, AS_UNHEALTHY, "link down", T0 + 3, 0);
    as_tunnel_state(as, a, AS_UNHEALTHY, "link down again", T0 + 4, 0); /* reason only */
    json_t *j = as_tunnel_json(as, a);
    assert_string_equal(json_string_value(json_object_get(j, "last_error")), "link down again");
    json_decref(j);
    as_tunnel_state(as, a, AS_RUNNING, NULL, T0 + 5, 0);
    j = as_tunnel_json(as, a);
    assert_true(json_is_null(json_object_get(j, "last_error")));
    json_decref(j);
    /* b never ran: unhealthy first, then its first running is "started". */
    as_tunnel_state(as, b, AS_UNHEALTHY, "target refused", T0 + 6, 0);
    as_tunnel_state(as, b, AS_RUNNING, NULL, T0 + 7, 0);
    as_tunnel_state(as, b, AS_FAILED, "the tunnel expired on the hub", T0 + 8, 0);
    as_tunnel_state(as, b, AS_RUNNING, NULL, T0 + 9, 0); /* failed is final */
    assert_string_equal(status_of(as, b), "failed");
    event_types(as, a, types, sizeof(types));
    assert_string_equal(types, "started,unhealthy,reconnected");
    event_types(as, b, types, sizeof(types));
    assert_string_equal(types, "unhealthy,started,failed");
    event_types(as, NULL, types, sizeof(types));
    assert_string_equal(types, "started,unhealthy,reconnected,unhealthy,started,failed");
    event_types(as, "00000000-0000-4000-8000-000000000000", types, sizeof(types));
    assert_string_equal(types, "");

    /* shutdown: stopped at once, the record stays; "stopped" once the
     * worker is done; a second shutdown changes nothing. */
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s/shutdown", a);
    as_answer_t ans;
    assert_int_equal(req(as, "POST", path, NULL, NULL, &ans), 200);
    assert_int_equal(ans.action, AS_ACT_STOP);
    assert_string_equal(ans.tunnel_id, a);
    assert_string_equal(json_string_value(json_object_get(ans.body, "status")), "stopped");
    assert_true(json_is_string(json_object_get(ans.body, "stopped_at")));
    as_answer_clear(&ans);
    as_tunnel_state(as, a, AS_RUNNING, NULL, T0 + 10, 0); /* a late report: ignored */
    assert_string_equal(status_of(as, a), "stopped");
    assert_int_equal(req(as, "POST", path, NULL, NULL, &ans), 200);
    assert_int_equal(ans.action, AS_ACT_NONE);
    as_answer_clear(&ans);
    as_tunnel_finished(as, a, NULL, T0 + 11, 0);
    event_types(as, a, types, sizeof(types));
    assert_string_equal(types, "started,unhealthy,reconnected,stopped");
    assert_string_equal(status_of(as, a), "stopped");

    /* DELETE: hidden at once, forgotten when the worker is done. */
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", b);
    assert_int_equal(req(as, "DELETE", path, NULL, NULL, &ans), 200);
    assert_int_equal(ans.action, AS_ACT_STOP);
    as_answer_clear(&ans);
    assert_int_equal(req(as, "GET", path, NULL, NULL, &ans), 404);
    as_answer_clear(&ans);
    assert_int_equal(req(as, "DELETE", path, NULL, NULL, &ans), 404);
    as_answer_clear(&ans);
    assert_int_equal(as_tunnel_count(as), 2);
    as_tunnel_finished(as, b, NULL, T0 + 12, 0);
    assert_int_equal(as_tunnel_count(as), 1);
    /* A finished (shut down) tunnel is forgotten by DELETE at once. */
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", a);
    assert_int_equal(req(as, "DELETE", path, NULL, NULL, &ans), 200);
    assert_int_equal(ans.action, AS_ACT_NONE);
    as_answer_clear(&ans);
    assert_int_equal(as_tunnel_count(as), 0);
    as_free(as);
}

/* A DELETE while the hub is still creating the tunnel: the worker is told
 * to stop at once, the create is still answered (201, stopped), and the
 * tunnel is forgotten when the worker is done (after deleting it). */
static void test_delete_while_starting(void **state)
{
    as_server_t *as = server(NULL);
    as_answer_t a;
    req(as, "POST", "/api/v1/tunnels", "{\"type\":\"tcp\",\"port\":80}", NULL, &a);
    char id[CN_ID_UUID_SIZE], path[128];
    snprintf(id, sizeof(id), "%s", a.tunnel_id);
    as_answer_clear(&a);
    snprintf(path, sizeof(path), "/api/v1/tunnels/%s", id);
    assert_int_equal(req(as, "DELETE", path, NULL, NULL, &a), 200);
    assert_int_equal(a.action, AS_ACT_STOP);
    as_answer_clear(&a);
    as_tunnel_created(as, id, "11111111-2222-4333-8444-555555555555", NULL, 20001, T0 + 1, &a);
    assert_int_equal(a.status, 201);
    assert_string_equal(json_string_value(json_object_get(a.body, "status")), "stopped");
    assert_int_equal(json_integer_value(json_object_get(a.body, "remote_port")), 20001);
    as_answer_clear(&a);
    as_tunnel_state(as, id, AS_RUNNING, NULL, T0 + 2, 0); /* too late: ignored */
    assert_int_equal(as_tunnel_count(as), 1);
    as_tunnel_finished(as, id, NULL, T0 + 3, 0);
    assert_int_equal(as_tunnel_count(as), 0);
    char types[64];
    event_types(as, id, types, sizeof(types));
    assert_string_equal(types, "stopped");
    as_free(as);
}

static void collect(void *ctx, const char *id)
{
    (*(int *)ctx)++;
}

static void test_stop_all(void **state)
{
    as_server_t *as = server(NULL);
    char a[CN_ID_UUID_SIZE], b[CN_ID_UUID_SIZE];
    create(as, "{\"type\":\"tcp\",\"port\":80}", a);
    create(as, "{\"type\":\"tcp\",\"port\":81}", b);
    as_tunnel_finished(as, b, NULL, T0, 0); /* already done: not stopped again */
    int n = 0;
    as_stop_all(as, T0 + 1, collect, &n);
    assert_int_equal(n, 1);
    assert_string_equal(status_of(as, a), "stopped");
    n = 0;
    as_stop_all(as, T0 + 2, collect, &n);
    assert_int_equal(n, 0);
    as_free(as);
}

static void test_event_ring_bounded(void **state)
{
    as_server_t *as = server(NULL);
    char a[CN_ID_UUID_SIZE];
    create(as, "{\"type\":\"tcp\",\"port\":80}", a);
    for (int i = 0; i < AS_EVENTS_MAX + 10; i++)
        as_tunnel_state(as, a, i % 2 ? AS_UNHEALTHY : AS_RUNNING, i % 2 ? "down" : NULL, T0 + i, 0);
    as_answer_t ans;
    req(as, "GET", "/api/v1/events", NULL, NULL, &ans);
    json_t *ev = json_object_get(ans.body, "events");
    assert_int_equal(json_array_size(ev), AS_EVENTS_MAX);
    /* The oldest went first: ids run on from 11. */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ev, 0), "id")), 11);
    as_answer_clear(&ans);
    as_free(as);
}

static void test_callbacks_retry_then_give_up(void **state)
{
    as_server_t *as = server(NULL);
    char a[CN_ID_UUID_SIZE];
    create(as,
           "{\"type\":\"tcp\",\"port\":80,\"callback_urls\":[\"http://127.0.0.1:9/x\","
           "\"http://localhost:9/y\"]}",
           a);
    assert_int_equal(as_callback_pending(as), 0);
    as_tunnel_state(as, a, AS_RUNNING, NULL, T0, 1000);
    assert_int_equal(as_callback_pending(as), 2);
    int64_t next = 0;
    as_callback_t *x = as_callback_take(as, 1000, &next);
    as_callback_t *y = as_callback_take(as, 1000, &next);
    assert_non_null(x);
    assert_non_null(y);
    assert_null(as_callback_take(as, 1000, &next)); /* both in flight */
    assert_int_equal(next, -1);
    assert_string_equal(x->url, "http://127.0.0.1:9/x");
    json_t *body = json_loadb(x->body, x->body_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(body, "event")), "started");
    assert_string_equal(json_string_value(json_object_get(body, "tunnel_id")), a);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(body, "tunnel"), "status")), "running");
    json_decref(body);
    /* y succeeds; x fails AS_CALLBACK_ATTEMPTS times with growing delays. */
    assert_true(as_callback_done(as, y->seq, true, 1000, 0, NULL));
    uint64_t seq = x->seq;
    int64_t now = 1000;
    uint32_t prev = 0;
    for (unsigned attempt = 1; attempt < AS_CALLBACK_ATTEMPTS; attempt++) {
        uint32_t retry = 0;
        assert_false(as_callback_done(as, seq, false, now, 0xffffffffu, &retry));
        assert_true(retry > prev);
        assert_true(retry <= 8000);
        prev = retry;
        assert_null(as_callback_take(as, now + retry - 1, &next)); /* not yet due */
        assert_int_equal(next, now + retry);
        now += retry;
        x = as_callback_take(as, now, NULL);
        assert_non_null(x);
        assert_int_equal(x->seq, seq);
        assert_int_equal(x->attempts, attempt + 1);
    }
    assert_true(as_callback_done(as, seq, false, now, 0, NULL)); /* given up */
    assert_int_equal(as_callback_pending(as), 0);
    as_free(as);
}

static void test_callback_queue_bounded(void **state)
{
    as_server_t *as = server(NULL);
    char a[CN_ID_UUID_SIZE];
    create(as, "{\"type\":\"tcp\",\"port\":80,\"callback_url\":\"http://127.0.0.1:9/\"}", a);
    for (int i = 0; i < AS_CALLBACK_QUEUE_MAX + 20; i++)
        as_tunnel_state(as, a, i % 2 ? AS_UNHEALTHY : AS_RUNNING, i % 2 ? "down" : NULL, T0 + i, 0);
    assert_int_equal(as_callback_pending(as), AS_CALLBACK_QUEUE_MAX);
    as_free(as);
}

static void test_url_parse(void **state)
{
    static const struct {
        const char *url;
        const char *host; /* NULL: refused */
        unsigned port;
        const char *path;
    } cases[] = {
        {"http://127.0.0.1:8080/hook", "127.0.0.1", 8080, "/hook"},
        {"http://127.0.0.1", "127.0.0.1", 80, "/"},
        {"HTTP://localhost:9/a?b=c", "localhost", 9, "/a?b=c"},
        {"http://127.0.0.1?x=1", "127.0.0.1", 80, "/?x=1"},
        {"http://[::1]:7/v6", "::1", 7, "/v6"},
        {"http://[::1]", "::1", 80, "/"},
        {"https://127.0.0.1/", NULL, 0, NULL},
        {"ftp://127.0.0.1/", NULL, 0, NULL},
        {"http://example.com/", NULL, 0, NULL},
        {"http://user:pw@127.0.0.1/", NULL, 0, NULL},
        {"http://127.0.0.1/#frag", NULL, 0, NULL},
        {"http://127.0.0.1:0/", NULL, 0, NULL},
        {"http://127.0.0.1:65536/", NULL, 0, NULL},
        {"http://127.0.0.1:99999999999999999999/", NULL, 0, NULL},
        {"http://127.0.0.1:/", NULL, 0, NULL},
        {"http://127.0.0.1:8x/", NULL, 0, NULL},
        {"http:///path", NULL, 0, NULL},
        {"http://[::1/", NULL, 0, NULL},
        {"http://[::1]x/", NULL, 0, NULL},
        {"http://127.0.0.1/a b", NULL, 0, NULL},
        {"http://127.0.0.1/\x7f", NULL, 0, NULL},
        {"", NULL, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        as_url_t u;
        const char *why = NULL;
        bool ok = as_url_parse(cases[i].url, &u, &why);
        if (ok != (cases[i].host != NULL))
            fail_msg("%s: %s", cases[i].url, ok ? "accepted" : why);
        if (!ok) {
            assert_non_null(why);
            continue;
        }
        assert_string_equal(u.host, cases[i].host);
        assert_int_equal(u.port, cases[i].port);
        assert_string_equal(u.path, cases[i].path);
    }
    char longurl[AS_CALLBACK_URL_MAX + 32] = "http://127.0.0.1/";
    memset(longurl + strlen(longurl), 'a', AS_CALLBACK_URL_MAX);
    longurl[sizeof(longurl) - 1] = '\0';
    as_url_t u;
    const char *why = NULL;
    assert_false(as_url_parse(longurl, &u, &why));
}

static void test_tunnel_cap(void **state)
{
    as_server_t *as = server(NULL);
    as_answer_t a;
    for (int i = 0; i < AS_MAX_TUNNELS; i++) {
        req(as, "POST", "/api/v1/tunnels", "{\"type\":\"tcp\",\"port\":80}", NULL, &a);
        assert_int_equal(a.action, AS_ACT_START);
        as_answer_clear(&a);
    }
    assert_int_equal(req(as, "POST", "/api/v1/tunnels", "{\"type\":\"tcp\",\"port\":80}", NULL, &a),
                     400);
    assert_int_equal(a.action, AS_ACT_NONE);
    as_answer_clear(&a);
    as_free(as);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    cn_log_set_level(CN_LOG_ERROR); /* the core logs every event and drop */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_needs_no_token),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_routes_404_405),
        cmocka_unit_test(test_create_validation),
        cmocka_unit_test(test_create_spec_and_json),
        cmocka_unit_test(test_create_failure_forgets),
        cmocka_unit_test(test_status_machine_and_events),
        cmocka_unit_test(test_delete_while_starting),
        cmocka_unit_test(test_stop_all),
        cmocka_unit_test(test_event_ring_bounded),
        cmocka_unit_test(test_callbacks_retry_then_give_up),
        cmocka_unit_test(test_callback_queue_bounded),
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_tunnel_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
