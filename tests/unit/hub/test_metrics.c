/* metrics: the Prometheus text of GET /metrics, byte for byte for a known
 * registry and snapshot; every family present from the start; label values
 * escaped; byte totals of deleted tunnels forgotten; a NULL registry is a
 * no-op everywhere. */
#include "cn_test.h"

#include "metrics.h"

static char *render(hub_metrics_t *m, const hub_metrics_snapshot_t *s)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(hub_metrics_render(m, s, &text, &len), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* The line of `text` that starts with `prefix` + ' ', or NULL. */
static const char *line(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, prefix, n) && p[n] == ' ')
            return p;
    return NULL;
}

static unsigned long long value(const char *text, const char *series)
{
    const char *l = line(text, series);
    if (!l)
        fail_msg("no line for %s in:\n%s", series, text);
    return strtoull(l + strlen(series) + 1, NULL, 10);
}

static void test_full_rendering(void **state)
{
    hub_metrics_t *m = hub_metrics_new();
    assert_non_null(m);
    hub_metrics_handshake_failure(m, HUB_HS_CHANNEL);
    hub_metrics_handshake_failure(m, HUB_HS_CHANNEL);
    hub_metrics_handshake_failure(m, HUB_HS_REFUSED);
    hub_metrics_http_request(m, 200);
    hub_metrics_http_request(m, 200);
    hub_metrics_http_request(m, 503);
    hub_metrics_share_rejection(m, HUB_SHARE_REJ_PATH);
    hub_metrics_webhook_delivery(m, HUB_WH_DELIVERED);
    hub_metrics_webhook_delivery(m, HUB_WH_FAILED);
    hub_metrics_webhook_delivery(m, HUB_WH_FAILED);
    hub_metrics_tunnel_bytes(m, "t1", 100, 2000);
    hub_metrics_tunnel_bytes(m, "t1", 1, 2);
    hub_metrics_tunnel_entries_sent(m, HUB_TM_LIST, 1000);
    hub_metrics_tunnel_entries_sent(m, HUB_TM_LIST, 999);
    hub_metrics_tunnel_entries_sent(m, HUB_TM_STATUS, 1);
    hub_metrics_tunnel_entries_sent(m, HUB_TM_DELTA, 2);
    hub_metrics_connection_refused(m, HUB_REF_HUB_LIMIT);
    hub_metrics_connection_refused(m, HUB_REF_HUB_LIMIT);
    hub_metrics_connection_refused(m, HUB_REF_CLIENT_LIMIT);
    hub_metrics_connection_refused(m, HUB_REF_COUNT); /* out of range: ignored */

    hub_metrics_tunnel_t tunnels[] = {
        {"t1", "web", "active", "tcp", 10, 20},
        {"t2", "db", "paused", "tcp", 0, 0},
    };
    hub_metrics_snapshot_t s = {
        .agents_connected = 1,
        .agents_disconnected = 2,
        .agents_pending = 3,
        .links = 4,
        .streams_open = 5,
        .streams_pooled = 7,
        .webhook_pending = 6,
        .share_log_dropped = 8,
        .tunnels = tunnels,
        .ntunnels = 2,
    };
    char *text = render(m, &s);
    static const char expected[] =
        "# HELP connect_agents Agents by state (pending: not enrolled yet).\n"
        "# TYPE connect_agents gauge\n"
        "connect_agents{state=\"connected\"} 1\n"
        "connect_agents{state=\"disconnected\"} 2\n"
        "connect_agents{state=\"pending\"} 3\n"
        "# HELP connect_agent_links Live agent links (an agent may hold several).\n"
        "# TYPE connect_agent_links gauge\n"
        "connect_agent_links 4\n"
        "# HELP connect_tunnels Tunnels by status and protocol.\n"
        "# TYPE connect_tunnels gauge\n"
        "connect_tunnels{status=\"connecting\",protocol=\"auto\"} 0\n"
        "connect_tunnels{status=\"connecting\",protocol=\"tcp\"} 0\n"
        "connect_tunnels{status=\"connecting\",protocol=\"udp\"} 0\n"
        "connect_tunnels{status=\"connecting\",protocol=\"http\"} 0\n"
        "connect_tunnels{status=\"connecting\",protocol=\"https\"} 0\n"
        "connect_tunnels{status=\"active\",protocol=\"auto\"} 0\n"
        "connect_tunnels{status=\"active\",protocol=\"tcp\"} 1\n"
        "connect_tunnels{status=\"active\",protocol=\"udp\"} 0\n"
        "connect_tunnels{status=\"active\",protocol=\"http\"} 0\n"
        "connect_tunnels{status=\"active\",protocol=\"https\"} 0\n"
        "connect_tunnels{status=\"paused\",protocol=\"auto\"} 0\n"
        "connect_tunnels{status=\"paused\",protocol=\"tcp\"} 1\n"
        "connect_tunnels{status=\"paused\",protocol=\"udp\"} 0\n"
        "connect_tunnels{status=\"paused\",protocol=\"http\"} 0\n"
        "connect_tunnels{status=\"paused\",protocol=\"https\"} 0\n"
        "connect_tunnels{status=\"error\",protocol=\"auto\"} 0\n"
        "connect_tunnels{status=\"error\",protocol=\"tcp\"} 0\n"
        "connect_tunnels{status=\"error\",protocol=\"udp\"} 0\n"
        "connect_tunnels{status=\"error\",protocol=\"http\"} 0\n"
        "connect_tunnels{status=\"error\",protocol=\"https\"} 0\n"
        "connect_tunnels{status=\"expired\",protocol=\"auto\"} 0\n"
        "connect_tunnels{status=\"expired\",protocol=\"tcp\"} 0\n"
        "connect_tunnels{status=\"expired\",protocol=\"udp\"} 0\n"
        "connect_tunnels{status=\"expired\",protocol=\"http\"} 0\n"
        "connect_tunnels{status=\"expired\",protocol=\"https\"} 0\n"
        "# HELP connect_streams_open Multiplexed streams open on all agent links.\n"
        "# TYPE connect_streams_open gauge\n"
        "connect_streams_open 5\n"
        "# HELP connect_http_pooled_streams Idle streams the HTTP edge keeps open to targets for "
        "the next requests (included in connect_streams_open).\n"
        "# TYPE connect_http_pooled_streams gauge\n"
        "connect_http_pooled_streams 7\n"
        "# HELP connect_tunnel_received_bytes_total Bytes public clients sent into the tunnel "
        "(toward its target).\n"
        "# TYPE connect_tunnel_received_bytes_total counter\n"
        "connect_tunnel_received_bytes_total{tunnel_id=\"t1\",tunnel_name=\"web\"} 111\n"
        "connect_tunnel_received_bytes_total{tunnel_id=\"t2\",tunnel_name=\"db\"} 0\n"
        "# HELP connect_tunnel_sent_bytes_total Bytes the tunnel sent back to its public "
        "clients.\n"
        "# TYPE connect_tunnel_sent_bytes_total counter\n"
        "connect_tunnel_sent_bytes_total{tunnel_id=\"t1\",tunnel_name=\"web\"} 2022\n"
        "connect_tunnel_sent_bytes_total{tunnel_id=\"t2\",tunnel_name=\"db\"} 0\n"
        "# HELP connect_http_requests_total Requests the HTTP edge answered, by status code.\n"
        "# TYPE connect_http_requests_total counter\n"
        "connect_http_requests_total{code=\"200\"} 2\n"
        "connect_http_requests_total{code=\"503\"} 1\n"
        "# HELP connect_share_rejections_total Requests or connections a share refused, by "
        "reason.\n"
        "# TYPE connect_share_rejections_total counter\n"
        "connect_share_rejections_total{reason=\"expired\"} 0\n"
        "connect_share_rejections_total{reason=\"revoked\"} 0\n"
        "connect_share_rejections_total{reason=\"method\"} 0\n"
        "connect_share_rejections_total{reason=\"path\"} 1\n"
        "connect_share_rejections_total{reason=\"rate_limit\"} 0\n"
        "connect_share_rejections_total{reason=\"auth\"} 0\n"
        "# HELP connect_share_log_dropped_total Share access-log rows dropped because the log "
        "writer fell behind.\n"
        "# TYPE connect_share_log_dropped_total counter\n"
        "connect_share_log_dropped_total 8\n"
        "# HELP connect_webhook_deliveries_total Webhook delivery attempts, by result.\n"
        "# TYPE connect_webhook_deliveries_total counter\n"
        "connect_webhook_deliveries_total{result=\"delivered\"} 1\n"
        "connect_webhook_deliveries_total{result=\"failed\"} 2\n"
        "connect_webhook_deliveries_total{result=\"dropped\"} 0\n"
        "# HELP connect_webhook_deliveries_pending Webhook deliveries queued in the store.\n"
        "# TYPE connect_webhook_deliveries_pending gauge\n"
        "connect_webhook_deliveries_pending 6\n"
        "# HELP connect_handshake_failures_total Agent links that failed before the hub "
        "admitted them, by reason.\n"
        "# TYPE connect_handshake_failures_total counter\n"
        "connect_handshake_failures_total{reason=\"timeout\"} 0\n"
        "connect_handshake_failures_total{reason=\"channel\"} 2\n"
        "connect_handshake_failures_total{reason=\"refused\"} 1\n"
        "connect_handshake_failures_total{reason=\"websocket\"} 0\n"
        "connect_handshake_failures_total{reason=\"other\"} 0\n"
        "# HELP connect_agent_tunnel_entries_sent_total Tunnel entries sent to agent links: in "
        "whole lists (list), as one tunnel's new status (status), or as one tunnel made, "
        "changed or deleted (delta).\n"
        "# TYPE connect_agent_tunnel_entries_sent_total counter\n"
        "connect_agent_tunnel_entries_sent_total{message=\"list\"} 1999\n"
        "connect_agent_tunnel_entries_sent_total{message=\"status\"} 1\n"
        "connect_agent_tunnel_entries_sent_total{message=\"delta\"} 2\n"
        "# HELP connect_public_connections_refused_total Public connections (TCP tunnel ports, "
        "the HTTP edge) reset right after accept, by reason.\n"
        "# TYPE connect_public_connections_refused_total counter\n"
        "connect_public_connections_refused_total{reason=\"tunnel_paused\"} 0\n"
        "connect_public_connections_refused_total{reason=\"agent_offline\"} 0\n"
        "connect_public_connections_refused_total{reason=\"hub_limit\"} 2\n"
        "connect_public_connections_refused_total{reason=\"tunnel_limit\"} 0\n"
        "connect_public_connections_refused_total{reason=\"workspace_limit\"} 0\n"
        "connect_public_connections_refused_total{reason=\"client_limit\"} 1\n";
    assert_string_equal(text, expected);
    free(text);
    hub_metrics_free(m);
}

/* Before anything happened every family is there (the labelled ones with
 * their fixed values at zero), and a NULL registry renders the same. */
static void test_every_family_from_the_start(void **state)
{
    static const char *const families[] = {
        "connect_agents",
        "connect_agent_links",
        "connect_tunnels",
        "connect_streams_open",
        "connect_http_pooled_streams",
        "connect_tunnel_received_bytes_total",
        "connect_tunnel_sent_bytes_total",
        "connect_http_requests_total",
        "connect_share_rejections_total",
        "connect_share_log_dropped_total",
        "connect_webhook_deliveries_total",
        "connect_webhook_deliveries_pending",
        "connect_handshake_failures_total",
        "connect_agent_tunnel_entries_sent_total",
        "connect_public_connections_refused_total",
    };
    hub_metrics_t *m = hub_metrics_new();
    char *fresh = render(m, NULL);
    char *none = render(NULL, NULL);
    assert_string_equal(fresh, none);
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        char help[128], type[128];
        snprintf(help, sizeof(help), "# HELP %s", families[i]);
        snprintf(type, sizeof(type), "# TYPE %s", families[i]);
        assert_non_null(line(fresh, help));
        assert_non_null(line(fresh, type));
    }
    assert_int_equal(value(fresh, "connect_share_rejections_total{reason=\"rate_limit\"}"), 0);
    assert_int_equal(value(fresh, "connect_webhook_deliveries_total{result=\"dropped\"}"), 0);
    assert_int_equal(value(fresh, "connect_handshake_failures_total{reason=\"timeout\"}"), 0);
    assert_int_equal(value(fresh, "connect_agent_tunnel_entries_sent_total{message=\"status\"}"),
                     0);
    assert_int_equal(value(fresh, "connect_tunnels{status=\"error\",protocol=\"https\"}"), 0);
    free(fresh);
    free(none);

    /* Counters on a NULL registry do nothing (and do not crash). */
    hub_metrics_http_request(NULL, 200);
    hub_metrics_tunnel_bytes(NULL, "t", 1, 1);
    hub_metrics_handshake_failure(NULL, HUB_HS_TIMEOUT);
    hub_metrics_share_rejection(NULL, HUB_SHARE_REJ_AUTH);
    hub_metrics_webhook_delivery(NULL, HUB_WH_DROPPED);
    hub_metrics_tunnel_entries_sent(NULL, HUB_TM_LIST, 1);
    /* Out-of-range inputs are ignored rather than counted somewhere. */
    hub_metrics_http_request(m, 99);
    hub_metrics_http_request(m, 600);
    hub_metrics_handshake_failure(m, HUB_HS_COUNT);
    hub_metrics_tunnel_entries_sent(m, HUB_TM_COUNT, 5);
    char *after = render(m, NULL);
    assert_int_equal(value(after, "connect_agent_tunnel_entries_sent_total{message=\"list\"}"), 0);
    assert_string_equal(hub_metrics_tunnel_msg_name(HUB_TM_COUNT), "?");
    assert_null(strstr(after, "connect_http_requests_total{"));
    assert_string_equal(hub_metrics_handshake_name(HUB_HS_COUNT), "?");
    free(after);
    hub_metrics_free(m);
}

static void test_labels_escaped(void **state)
{
    hub_metrics_tunnel_t t = {"id1", "a\"b\\c\nd", "active", "tcp", 1, 2};
    hub_metrics_snapshot_t s = {.tunnels = &t, .ntunnels = 1};
    char *text = render(NULL, &s);
    assert_non_null(strstr(text, "connect_tunnel_received_bytes_total{tunnel_id=\"id1\",tunnel_"
                                 "name=\"a\\\"b\\\\c\\nd\"} 1\n"));
    free(text);
}

/* A tunnel deleted between two scrapes disappears with its totals: if a
 * tunnel of the same id came back, it would start from zero again. */
static void test_deleted_tunnels_forgotten(void **state)
{
    hub_metrics_t *m = hub_metrics_new();
    hub_metrics_tunnel_bytes(m, "gone", 5, 5);
    hub_metrics_tunnel_bytes(m, "kept", 7, 9);
    hub_metrics_tunnel_t both[] = {{"gone", "g", "active", "tcp", 0, 0},
                                   {"kept", "k", "active", "tcp", 0, 0}};
    hub_metrics_snapshot_t s = {.tunnels = both, .ntunnels = 2};
    char *text = render(m, &s);
    assert_int_equal(
        value(text, "connect_tunnel_received_bytes_total{tunnel_id=\"gone\",tunnel_name=\"g\"}"),
        5);
    free(text);
    s.tunnels = &both[1];
    s.ntunnels = 1;
    text = render(m, &s);
    assert_null(strstr(text, "\"gone\""));
    assert_int_equal(
        value(text, "connect_tunnel_sent_bytes_total{tunnel_id=\"kept\",tunnel_name=\"k\"}"), 9);
    free(text);
    s.tunnels = both;
    s.ntunnels = 2;
    text = render(m, &s);
    assert_int_equal(
        value(text, "connect_tunnel_received_bytes_total{tunnel_id=\"gone\",tunnel_name=\"g\"}"),
        0);
    assert_int_equal(
        value(text, "connect_tunnel_received_bytes_total{tunnel_id=\"kept\",tunnel_name=\"k\"}"),
        7);
    free(text);
    hub_metrics_free(m);
}

/* A status or protocol outside the fixed grid (a plugin protocol, a newer
 * status) is still counted, once per pair. */
static void test_values_outside_grid(void **state)
{
    hub_metrics_tunnel_t t[] = {{"a", "a", "active", "postgresql", 0, 0},
                                {"b", "b", "active", "postgresql", 0, 0},
                                {"c", "c", "active", "tcp", 0, 0}};
    hub_metrics_snapshot_t s = {.tunnels = t, .ntunnels = 3};
    char *text = render(NULL, &s);
    assert_int_equal(value(text, "connect_tunnels{status=\"active\",protocol=\"postgresql\"}"), 2);
    assert_int_equal(value(text, "connect_tunnels{status=\"active\",protocol=\"tcp\"}"), 1);
    const char *first = strstr(text, "protocol=\"postgresql\"");
    assert_null(strstr(first + 1, "protocol=\"postgresql\""));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_rendering),
        cmocka_unit_test(test_every_family_from_the_start),
        cmocka_unit_test(test_labels_escaped),
        cmocka_unit_test(test_deleted_tunnels_forgotten),
        cmocka_unit_test(test_values_outside_grid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
