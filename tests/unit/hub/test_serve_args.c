/* connect-hub serve: every option is parsed and checked, with one clear
 * message naming the option. */
#include "cn_test.h"

#include "api.h"
#include "cn_loop.h"
#include "cmd_serve.h"
#include "events.h"
#include "runtime.h"
#include "server.h"

/* Parses "serve" followed by the NULL-terminated `args`. */
static int parse_v(hub_serve_options_t *o, char *err, const char *const *args)
{
    char *argv[16] = {(char *)"serve"};
    int argc = 1;
    for (size_t i = 0; args[i] && argc < 15; i++)
        argv[argc++] = (char *)args[i];
    err[0] = '\0';
    return hub_serve_parse_args(argc, argv, o, err, 256);
}

#define parse(o, err, ...) parse_v(o, err, (const char *const[]){__VA_ARGS__, NULL})

static void test_defaults(void **state)
{
    hub_serve_options_t o;
    char err[256];
    assert_int_equal(parse(&o, err, "--db", "/tmp/x.db"), 0);
    assert_string_equal(o.db, "/tmp/x.db");
    assert_string_equal(o.listen_host, "127.0.0.1");
    assert_int_equal(o.listen_port, 8080);
    assert_string_equal(o.public_domain, "localhost");
    assert_int_equal(o.http_port, 0);
    assert_false(o.http_port_set); /* the edge takes the listen port + 1 */
    assert_int_equal(o.http_timeout_s, HUB_HTTP_TIMEOUT_DEFAULT_S);
    assert_int_equal(o.tcp_port_lo, HUB_API_TCP_PORTS_DEFAULT_LO);
    assert_int_equal(o.tcp_port_hi, HUB_API_TCP_PORTS_DEFAULT_HI);
    assert_int_equal(o.rate_limit, HUB_API_RATE_LIMIT_DEFAULT);
    assert_int_equal(o.max_tunnels, HUB_API_MAX_TUNNELS_DEFAULT);
    assert_int_equal(o.max_agents, HUB_API_MAX_AGENTS_DEFAULT);
    assert_int_equal(o.event_days, HUB_EVENT_RETENTION_DAYS_DEFAULT);
    assert_int_equal(o.event_max, HUB_EVENT_MAX_DEFAULT);
    assert_null(o.tls_cert);
}

static void test_values(void **state)
{
    hub_serve_options_t o;
    char err[256];
    assert_int_equal(
        parse(&o, err, "--db=/d", "--listen", "[::1]:0", "--public-domain=tunnels.example.com"), 0);
    assert_string_equal(o.listen_host, "::1");
    assert_int_equal(o.listen_port, 0);
    assert_string_equal(o.public_domain, "tunnels.example.com");
    assert_int_equal(parse(&o, err, "--db", "/d", "--tcp-ports", "30000-30010"), 0);
    assert_int_equal(o.tcp_port_lo, 30000);
    assert_int_equal(o.tcp_port_hi, 30010);
    assert_int_equal(parse(&o, err, "--db", "/d", "--rate-limit=0", "--max-tunnels=3"), 0);
    assert_int_equal(o.rate_limit, 0);
    assert_int_equal(o.max_tunnels, 3);
    assert_int_equal(parse(&o, err, "--db", "/d", "--max-agents", "0"), 0);
    assert_int_equal(o.max_agents, 0);
    assert_int_equal(parse(&o, err, "--db", "/d", "--max-agents=7"), 0);
    assert_int_equal(o.max_agents, 7);
    assert_int_equal(parse(&o, err, "--db", "/d", "--max-agents", "x"), -1);
    assert_non_null(strstr(err, "--max-agents"));
    assert_int_equal(parse(&o, err, "--db", "/d", "--event-retention", "0", "--event-max=5"), 0);
    assert_int_equal(o.event_days, 0);
    assert_int_equal(o.event_max, 5);
    assert_int_equal(parse(&o, err, "--db", "/d", "--event-retention", "36501"), -1);
    assert_non_null(strstr(err, "--event-retention"));
    assert_int_equal(parse(&o, err, "--db", "/d", "--http-port", "8081"), 0);
    assert_int_equal(o.http_port, 8081);
    assert_true(o.http_port_set);
    /* 0: the kernel picks the HTTP edge's port. */
    assert_int_equal(parse(&o, err, "--db", "/d", "--http-port", "0", "--http-timeout", "5"), 0);
    assert_true(o.http_port_set);
    assert_int_equal(o.http_port, 0);
    assert_int_equal(o.http_timeout_s, 5);
    assert_int_equal(parse(&o, err, "--db", "/d", "--help"), 1);
    assert_int_equal(parse(&o, err, "-h"), 1);
    assert_int_equal(parse(&o, err, "--db", "/d"), 0);
    assert_false(o.json);
    assert_int_equal(o.log_level, 0);
    assert_int_equal(parse(&o, err, "--db", "/d", "--json", "--log-level=debug"), 0);
    assert_true(o.json);
    assert_int_equal(o.log_level, 1 + 3); /* 1 + CN_LOG_DEBUG */
    assert_int_equal(parse(&o, err, "--listen=localhost:9", "--db", "/d"), 0);
    assert_string_equal(o.listen_host, "127.0.0.1");
    assert_int_equal(o.listen_port, 9);
}

/* --help lists every option the parser takes, from the same table. */
/* The abuse bounds and --public-bind: defaults, values, refusals. */
static void test_abuse_bounds(void **state)
{
    hub_serve_options_t o;
    char err[256];
    assert_int_equal(parse(&o, err, "--db", "/d"), 0);
    assert_int_equal(o.max_links, HUB_RUNTIME_MAX_LINKS_DEFAULT);
    assert_int_equal(o.max_links_per_agent, HUB_RUNTIME_MAX_LINKS_PER_AGENT_DEFAULT);
    assert_int_equal(o.conn_rate, HUB_SERVER_CONN_RATE_DEFAULT);
    assert_int_equal(o.auth_fail_rate, HUB_API_AUTH_FAIL_RATE_DEFAULT);
    assert_int_equal(o.max_conns, HUB_RUNTIME_MAX_CONNS_DEFAULT);
    assert_int_equal(o.max_conns_per_ws, HUB_RUNTIME_MAX_CONNS_PER_WS_DEFAULT);
    assert_int_equal(o.max_conns_per_client, HUB_RUNTIME_MAX_CONNS_PER_CLIENT_DEFAULT);
    assert_int_equal(o.tcp_idle_timeout, HUB_RUNTIME_TCP_IDLE_TIMEOUT_DEFAULT);
    assert_string_equal(o.public_bind, "");
    assert_int_equal(parse(&o, err, "--db", "/d", "--max-links-per-agent", "2", "--conn-rate=0",
                           "--tcp-idle-timeout", "30", "--public-bind", "::"),
                     0);
    assert_int_equal(o.max_links_per_agent, 2);
    assert_int_equal(o.conn_rate, 0);
    assert_int_equal(o.tcp_idle_timeout, 30);
    assert_string_equal(o.public_bind, "::");
    assert_int_equal(parse(&o, err, "--db", "/d", "--public-bind", "0.0.0.0"), 0);
    assert_string_equal(o.public_bind, "0.0.0.0");
    assert_int_equal(parse(&o, err, "--db", "/d", "--public-bind", "example.com"), -1);
    assert_non_null(strstr(err, "--public-bind"));
    assert_int_equal(parse(&o, err, "--db", "/d", "--max-links", "0"), -1);
    assert_non_null(strstr(err, "max-links"));
    assert_int_equal(parse(&o, err, "--db", "/d", "--max-conns-per-client", "x"), -1);
}

/* --event-loop: epoll unless poll or uv is asked for; nothing else. */
static void test_event_loop(void **state)
{
    hub_serve_options_t o;
    char err[256];
    assert_int_equal(parse(&o, err, "--db", "/d"), 0);
    assert_int_equal(o.event_loop, CN_LOOP_EPOLL);
    assert_int_equal(parse(&o, err, "--db", "/d", "--event-loop", "poll"), 0);
    assert_int_equal(o.event_loop, CN_LOOP_POLL);
    assert_int_equal(parse(&o, err, "--db", "/d", "--event-loop", "uv"), 0);
    assert_int_equal(o.event_loop, CN_LOOP_UV);
    assert_int_equal(parse(&o, err, "--db", "/d", "--event-loop=epoll"), 0);
    assert_int_equal(o.event_loop, CN_LOOP_EPOLL);
    assert_int_equal(parse(&o, err, "--db", "/d", "--event-loop", "select"), -1);
    assert_non_null(strstr(err, "event-loop"));
}

/* --busy-poll: off unless given, up to CN_LOOP_BUSY_POLL_MAX microseconds,
 * and only on the epoll loop. */
static void test_busy_poll(void **state)
{
    (void)state;
    hub_serve_options_t o;
    char err[256];
    assert_int_equal(parse(&o, err, "--db", "/d"), 0);
    assert_int_equal(o.busy_poll_us, 0);
    assert_int_equal(parse(&o, err, "--db", "/d", "--busy-poll", "50"), 0);
    assert_int_equal(o.busy_poll_us, 50);
    assert_int_equal(parse(&o, err, "--db", "/d", "--busy-poll", "10000", "--event-loop", "epoll"),
                     0);
    assert_int_equal(o.busy_poll_us, 10000);
    assert_int_equal(parse(&o, err, "--db", "/d", "--busy-poll", "10001"), -1);
    assert_non_null(strstr(err, "busy-poll"));
    assert_int_equal(parse(&o, err, "--db", "/d", "--busy-poll", "-5"), -1);
    assert_int_equal(parse(&o, err, "--db", "/d", "--busy-poll", "50", "--event-loop", "poll"), -1);
    assert_non_null(strstr(err, "needs --event-loop epoll"));
    assert_int_equal(parse(&o, err, "--db", "/d", "--event-loop", "uv", "--busy-poll", "1"), -1);
    /* 0 is off, and fine with any loop. */
    assert_int_equal(parse(&o, err, "--db", "/d", "--event-loop", "poll", "--busy-poll", "0"), 0);
}

/* --stream-window and --window-update: the multiplexer's defaults unless
 * given; the window within CN_MUX_MIN_WINDOW..CN_FRAME_MAX_WINDOW, the
 * update threshold within 1..the window in effect. */
static void test_stream_window(void **state)
{
    hub_serve_options_t o;
    char err[256];
    assert_int_equal(parse(&o, err, "--db", "/d"), 0);
    assert_int_equal(o.stream_window, 0); /* cn_mux: CN_MUX_DEFAULT_WINDOW */
    assert_int_equal(o.window_update, 0); /* cn_mux: a quarter of the window */
    assert_int_equal(
        parse(&o, err, "--db", "/d", "--stream-window", "2097152", "--window-update", "1048576"),
        0);
    assert_int_equal(o.stream_window, 2097152);
    assert_int_equal(o.window_update, 1048576);
    assert_int_equal(parse(&o, err, "--db", "/d", "--stream-window=1024", "--window-update=1024"),
                     0);
    assert_int_equal(o.stream_window, 1024);
    assert_int_equal(o.window_update, 1024);
    assert_int_equal(parse(&o, err, "--db", "/d", "--stream-window", "1073741824"), 0);
    assert_int_equal(o.stream_window, 1073741824u);
    /* The threshold alone is checked against the default window. */
    assert_int_equal(parse(&o, err, "--db", "/d", "--window-update", "524288"), 0);
    assert_int_equal(o.window_update, 524288);
    static const struct {
        const char *a[7];
        const char *names;
    } bad[] = {
        {{"--db", "/d", "--stream-window", "1023", NULL}, "--stream-window"},
        {{"--db", "/d", "--stream-window", "1073741825", NULL}, "--stream-window"},
        {{"--db", "/d", "--stream-window", "1M", NULL}, "--stream-window"},
        {{"--db", "/d", "--window-update", "0", NULL}, "--window-update"},
        {{"--db", "/d", "--window-update", "2097153", NULL}, "--window-update"},
        {{"--db", "/d", "--stream-window", "4096", "--window-update", "4097", NULL},
         "must not exceed the stream window"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_v(&o, err, bad[i].a);
        if (rc != -1)
            fail_msg("case %zu accepted", i);
        if (!strstr(err, bad[i].names))
            fail_msg("case %zu: '%s' does not name %s", i, err, bad[i].names);
    }
}

static void test_usage_lists_every_option(void **state)
{
    char buf[16384] = "";
    FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
    hub_serve_usage(f);
    fclose(f);
    static const char *const want[] = {
        "usage: connect-hub serve --db PATH",
        "--db PATH",
        "--listen HOST:PORT",
        "--public-domain DOMAIN",
        "--http-port N",
        "--http-timeout S",
        "--tcp-ports A-B",
        "--tls-cert FILE",
        "--tls-key FILE",
        "--rate-limit N",
        "--max-tunnels N",
        "--max-agents N",
        "--udp-idle S",
        "--json",
        "--log-level error|warn|info|debug",
        "-h, --help",
        "(default 20000-29999)",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(buf, want[i]))
            fail_msg("serve --help lacks '%s'", want[i]);
    assert_true(strlen(buf) < sizeof(buf) - 2); /* nothing cut off */
    /* Defaults are stringified macros: a C suffix must not show ("1024u"). */
    for (const char *d = buf; (d = strstr(d, "(default ")) != NULL; d++) {
        const char *v = d + strlen("(default ");
        while (*v >= '0' && *v <= '9')
            v++;
        if (v > d + strlen("(default ") && (*v == 'u' || *v == 'U' || *v == 'l' || *v == 'L'))
            fail_msg("serve --help shows a C literal: %.24s", d);
    }
    assert_non_null(strstr(buf, "agent links at once (default 1024)"));
}

static void test_errors(void **state)
{
    static const struct {
        const char *a[7];
        const char *names;
    } bad[] = {
        {{NULL}, "--db"},
        {{"--db", NULL}, "--db"},
        {{"--db", "", NULL}, "--db"},
        {{"--db", "/d", "--db", "/e", NULL}, "--db"},
        {{"--db", "/d", "--listen", "8080", NULL}, "--listen"},
        {{"--db", "/d", "--listen", "example.com:80", NULL}, "--listen"},
        {{"--db", "/d", "--listen", "127.0.0.1:70000", NULL}, "--listen"},
        {{"--db", "/d", "--public-domain", "bad domain", NULL}, "--public-domain"},
        {{"--db", "/d", "--public-domain", "Example.com", NULL}, "--public-domain"},
        {{"--db", "/d", "--http-timeout", "0", NULL}, "--http-timeout"},
        {{"--db", "/d", "--http-port", "x", NULL}, "--http-port"},
        {{"--db", "/d", "--http-port", "20005", NULL}, "--http-port"},
        {{"--db", "/d", "--tcp-ports", "5", NULL}, "--tcp-ports"},
        {{"--db", "/d", "--tcp-ports", "10-5", NULL}, "--tcp-ports"},
        {{"--db", "/d", "--rate-limit", "-1", NULL}, "--rate-limit"},
        {{"--db", "/d", "--max-tunnels", "lots", NULL}, "--max-tunnels"},
        {{"--db", "/d", "--tls-cert", "/nonexistent/cert.pem", NULL}, "--tls-"},
        {{"--db", "/d", "--tls-key", "/etc/hostname", NULL}, "--tls-cert"},
        {{"--db", "/d", "--what", NULL}, "--what"},
        {{"--db", "/d", "stray", NULL}, "stray"},
        {{"--db", "/d", "--listen", "127.0.0.1:20001", NULL}, "--listen"},
        {{"--db", "/d", "--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2", NULL}, "--listen"},
        {{"--db", "/d", "--rate-limit", "1000001", NULL}, "--rate-limit"},
        {{"--db", "/d", "--log-level", "loud", NULL}, "--log-level"},
        {{"--db", "/d", "--json=yes", NULL}, "--json"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hub_serve_options_t o;
        char err[256];
        int rc = parse_v(&o, err, bad[i].a);
        if (rc != -1)
            fail_msg("case %zu accepted", i);
        if (!strstr(err, bad[i].names))
            fail_msg("case %zu: '%s' does not name %s", i, err, bad[i].names);
        assert_null(strchr(err, '\n'));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_usage_lists_every_option),
        cmocka_unit_test(test_abuse_bounds), cmocka_unit_test(test_event_loop),
        cmocka_unit_test(test_busy_poll),    cmocka_unit_test(test_stream_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
