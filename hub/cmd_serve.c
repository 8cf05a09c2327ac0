/* `connect-hub serve`: parse and check every option, load the key files
 * `init` wrote, open the store, and run the API until SIGINT/SIGTERM. */
#include "cmd_serve.h"

#include "cmd.h"
#include "cn_frame.h"
#include "cn_loop.h"
#include "cn_mux.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "api.h"
#include "cn_args.h"
#include "plugins.h"
#include "cn_errmsg.h"
#include "cn_target.h"
#include "cn_udp.h"
#include "runtime.h"
#include "cn_err.h"
#include "cn_log.h"
#include "events.h"
#include "inspect.h"
#include "secrets.h"
#include "server.h"
#include "store.h"
#include "tunnels.h"
#include "validate.h"
#include "webhook_core.h"
#include "webhooks.h"

#define STR_(x) #x
#define STR(x) STR_(x)

#define SERVE_SYNOPSIS "--db PATH [--listen HOST:PORT] [options]"
#define SERVE_ABOUT                                                                                \
    "Serves the REST API (and, on the same port, the agent endpoint) and the\n"                    \
    "HTTP edge (public HTTP tunnels and shares, on --http-port) until\n"                           \
    "SIGINT/SIGTERM. With --json, prints one JSON line on stdout once listening."

/* --http-port not given: the edge takes the API's port + 1. */
#define HTTP_PORT_UNSET ((unsigned long)-1)

/* Rows of serve_table(), the end marker included. */
#define SERVE_OPTS 43

/* What the table parses before the checks turn it into options. */
typedef struct serve_raw {
    const char *listen, *tcp_ports;
    unsigned long http_port;  /* HTTP_PORT_UNSET: not given */
    unsigned long https_port; /* HTTP_PORT_UNSET: not given */
    unsigned long http_timeout, http_pool, http_pool_idle, rate_limit, max_tunnels, max_agents,
        udp_idle, event_days, event_max;
    const char *public_bind;
    unsigned long max_links, max_links_per_agent, conn_rate, auth_fail_rate, max_conns,
        max_conns_per_tunnel, max_conns_per_ws, max_conns_per_client, tcp_idle_timeout;
    unsigned long stream_window, window_update; /* 0: the multiplexer's defaults */
    unsigned long webhook_retry_base, webhook_disable_after;
    unsigned long inspect_body_max, inspect_keep, inspect_retention;
    unsigned long busy_poll;
    int metrics, inspect;
    int event_loop; /* 0: not given, else 1 + the index in CN_LOOP_CHOICES */
    bool json;
    int log_level;
} serve_raw_t;

/* The table of `serve`'s options; each may be given once. */
static void serve_table(hub_serve_options_t *o, serve_raw_t *r, cn_opt_t t[static SERVE_OPTS])
{
    const cn_opt_t table[] = {
        {"db", CN_OPT_STRING | CN_OPT_ONCE, &o->db, 0, 0, "PATH",
         "database created by 'connect-hub init' (required)"},
        {"listen", CN_OPT_STRING | CN_OPT_ONCE, &r->listen, 0, 0, "HOST:PORT",
         "address to listen on (default 127.0.0.1:8080; port 0 picks a free port)"},
        {"public-domain", CN_OPT_STRING | CN_OPT_ONCE, &o->public_domain, 0, 0, "DOMAIN",
         "domain of public tunnel URLs, NAME.DOMAIN (default localhost)"},
        {"http-port", CN_OPT_UINT | CN_OPT_ONCE, &r->http_port, 0, 65535, "N",
         "port of the HTTP edge (public HTTP tunnels and shares at NAME.DOMAIN:N); "
         "default: the listen port + 1; 0 picks a free port"},
        {"https-port", CN_OPT_UINT | CN_OPT_ONCE, &r->https_port, 0, 65535, "N",
         "port where the HTTP edge answers TLS, with --tls-cert (publicUrl and shareUrl then "
         "say https://NAME.DOMAIN:N/); default: the HTTP edge port + 1; 0 picks a free port"},
        {"http-timeout", CN_OPT_UINT | CN_OPT_ONCE, &r->http_timeout, 1, 3600, "S",
         "seconds a target may take to answer before the edge answers 504 (default " STR(
             HUB_HTTP_TIMEOUT_DEFAULT_S) ")"},
        {"http-pool", CN_OPT_UINT | CN_OPT_ONCE, &r->http_pool, 0, 1024, "N",
         "idle keep-alive streams to a tunnel's target the HTTP edge keeps for the next "
         "requests, per tunnel and agent link; 0 = a new target connection per request "
         "(default " STR(HUB_HTTP_POOL_DEFAULT) ")"},
        {"http-pool-idle", CN_OPT_UINT | CN_OPT_ONCE, &r->http_pool_idle, 1, 3600, "S",
         "seconds an idle pooled stream is kept; keep it below the targets' own keep-alive "
         "timeout (default " STR(HUB_HTTP_POOL_IDLE_DEFAULT_S) ")"},
        {"tcp-ports", CN_OPT_STRING | CN_OPT_ONCE, &r->tcp_ports, 0, 0, "A-B",
         "range of hub ports for public TCP tunnels (default " STR(
             HUB_API_TCP_PORTS_DEFAULT_LO) "-" STR(HUB_API_TCP_PORTS_DEFAULT_HI) ")"},
        {"tls-cert", CN_OPT_STRING | CN_OPT_ONCE, &o->tls_cert, 0, 0, "FILE",
         "TLS certificate (PEM); needs --tls-key"},
        {"tls-key", CN_OPT_STRING | CN_OPT_ONCE, &o->tls_key, 0, 0, "FILE",
         "TLS private key (PEM); needs --tls-cert"},
        {"rate-limit", CN_OPT_UINT | CN_OPT_ONCE, &r->rate_limit, 0, 1000000, "N",
         "API requests per token per minute, 0 = unlimited (default " STR(
             HUB_API_RATE_LIMIT_DEFAULT) ")"},
        {"max-tunnels", CN_OPT_UINT | CN_OPT_ONCE, &r->max_tunnels, 0, 1000000, "N",
         "tunnels per workspace, 0 = unlimited (default " STR(HUB_API_MAX_TUNNELS_DEFAULT) ")"},
        {"max-agents", CN_OPT_UINT | CN_OPT_ONCE, &r->max_agents, 0, 1000000, "N",
         "agents per workspace, 0 = unlimited (default " STR(HUB_API_MAX_AGENTS_DEFAULT) ")"},
        {"plugin-dir", CN_OPT_STRING | CN_OPT_ONCE, &o->plugin_dir, 0, 0, "DIR",
         "protocol plugins (*.so) to load (default: the install directory)"},
        {"event-loop", CN_OPT_CHOICE | CN_OPT_ONCE, &r->event_loop, 0, 0, CN_LOOP_CHOICES,
         "epoll (libev) and uv (libuv) wake for the sockets that are ready; poll() scans every "
         "descriptor each turn, so idle connections slow the busy ones (default epoll)"},
        {"busy-poll", CN_OPT_UINT | CN_OPT_ONCE, &r->busy_poll, 0, CN_LOOP_BUSY_POLL_MAX, "US",
         "after a turn with events, keep checking for the next one for up to US microseconds "
         "before sleeping: lower latency in VMs for a core's worth of CPU while traffic flows "
         "(epoll loop only; default 0, off)"},
        {"metrics", CN_OPT_CHOICE | CN_OPT_ONCE, &r->metrics, 0, 0, "loopback|token|public",
         "who may read GET /metrics (default loopback: clients on this host)"},
        {"metrics-token-file", CN_OPT_STRING | CN_OPT_ONCE, &o->metrics_token_file, 0, 0, "FILE",
         "with --metrics token: file (mode 0600) holding the scrape token, 32+ characters"},
        {"webhook-retry-base", CN_OPT_UINT | CN_OPT_ONCE, &r->webhook_retry_base, 10, 3600000, "MS",
         "first webhook retry delay, doubling to an hour (default " STR(
             HUB_WEBHOOK_RETRY_BASE_MS) ")"},
        {"webhook-disable-after", CN_OPT_UINT | CN_OPT_ONCE, &r->webhook_disable_after, 1, 1000,
         "N",
         "failed attempts in a row that disable a webhook (default " STR(
             HUB_WEBHOOK_DISABLE_AFTER) ")"},
        {"event-retention", CN_OPT_UINT | CN_OPT_ONCE, &r->event_days, 0, 36500, "DAYS",
         "drop events older than this, 0 = keep them (default " STR(
             HUB_EVENT_RETENTION_DAYS_DEFAULT) ")"},
        {"event-max", CN_OPT_UINT | CN_OPT_ONCE, &r->event_max, 0, 100000000, "N",
         "keep at most N events per workspace, newest first, 0 = no cap (default " STR(
             HUB_EVENT_MAX_DEFAULT) ")"},
        {"udp-idle", CN_OPT_UINT | CN_OPT_ONCE, &r->udp_idle, 1, 86400, "S",
         "end a UDP flow after S seconds without a datagram (default 60)"},
        {"public-bind", CN_OPT_STRING | CN_OPT_ONCE, &r->public_bind, 0, 0, "ADDR",
         "address public TCP tunnel ports bind to (default: the --listen address)"},
        /* Abuse bounds: docs/security.md argues each default. */
        {"max-links", CN_OPT_UINT | CN_OPT_ONCE, &r->max_links, 1, 1000000, "N",
         "agent links at once (default " STR(HUB_RUNTIME_MAX_LINKS_DEFAULT) ")"},
        {"max-links-per-agent", CN_OPT_UINT | CN_OPT_ONCE, &r->max_links_per_agent, 1, 1000000, "N",
         "links of one agent (default " STR(HUB_RUNTIME_MAX_LINKS_PER_AGENT_DEFAULT) ")"},
        {"conn-rate", CN_OPT_UINT | CN_OPT_ONCE, &r->conn_rate, 0, 1000000, "N",
         "new API/agent connections per client address (IPv6: per /64) per minute, "
         "0 = unlimited (default " STR(HUB_SERVER_CONN_RATE_DEFAULT) ")"},
        {"auth-fail-rate", CN_OPT_UINT | CN_OPT_ONCE, &r->auth_fail_rate, 0, 1000000, "N",
         "failed authentications (401) per address per minute before 429, 0 = unlimited "
         "(default " STR(HUB_API_AUTH_FAIL_RATE_DEFAULT) ")"},
        {"max-conns", CN_OPT_UINT | CN_OPT_ONCE, &r->max_conns, 1, 1000000, "N",
         "public TCP connections at once (default " STR(HUB_RUNTIME_MAX_CONNS_DEFAULT) ")"},
        {"max-conns-per-tunnel", CN_OPT_UINT | CN_OPT_ONCE, &r->max_conns_per_tunnel, 1, 1000000,
         "N",
         "public TCP connections to one tunnel (default " STR(
             HUB_RUNTIME_MAX_CONNS_PER_TUNNEL_DEFAULT) ")"},
        {"max-conns-per-workspace", CN_OPT_UINT | CN_OPT_ONCE, &r->max_conns_per_ws, 1, 1000000,
         "N",
         "public TCP connections to one workspace's tunnels (default " STR(
             HUB_RUNTIME_MAX_CONNS_PER_WS_DEFAULT) ")"},
        {"max-conns-per-client", CN_OPT_UINT | CN_OPT_ONCE, &r->max_conns_per_client, 1, 1000000,
         "N",
         "public TCP connections from one client address to one tunnel (default " STR(
             HUB_RUNTIME_MAX_CONNS_PER_CLIENT_DEFAULT) ")"},
        {"tcp-idle-timeout", CN_OPT_UINT | CN_OPT_ONCE, &r->tcp_idle_timeout, 0, 7 * 24 * 3600, "S",
         "close a public TCP connection idle for S seconds, 0 = never (default " STR(
             HUB_RUNTIME_TCP_IDLE_TIMEOUT_DEFAULT) ")"},
        /* Flow control of every stream on an agent link (docs/performance.md,
         * "Windows: bandwidth x RTT"). */
        {"stream-window", CN_OPT_UINT | CN_OPT_ONCE, &r->stream_window, CN_MUX_MIN_WINDOW,
         CN_FRAME_MAX_WINDOW, "BYTES",
         "receive window the hub grants each stream on an agent link: the bytes one stream may "
         "have in flight towards the hub (default " STR(CN_MUX_DEFAULT_WINDOW_KIB) " KiB)"},
        {"window-update", CN_OPT_UINT | CN_OPT_ONCE, &r->window_update, 1, CN_FRAME_MAX_WINDOW,
         "BYTES",
         "return a stream's credit once this many bytes were consumed, at most the window "
         "(default: a quarter of the window)"},
        /* Request inspection (inspect.h argues the bounds). */
        {"inspect", CN_OPT_CHOICE | CN_OPT_ONCE, &r->inspect, 0, 0, "on|off",
         "record the HTTP edge's requests for GET /api/v1/tunnels/ID/requests (default on)"},
        {"inspect-body-max", CN_OPT_UINT | CN_OPT_ONCE, &r->inspect_body_max, 0,
         HUB_INSPECT_BODY_MAX_LIMIT, "BYTES",
         "body bytes recorded per request and per response, 0 = none (default " STR(
             HUB_INSPECT_BODY_MAX_DEFAULT) ")"},
        {"inspect-keep", CN_OPT_UINT | CN_OPT_ONCE, &r->inspect_keep, 1, HUB_INSPECT_KEEP_MAX, "N",
         "recorded requests kept per tunnel, newest first (default " STR(
             HUB_INSPECT_KEEP_DEFAULT) ")"},
        {"inspect-retention", CN_OPT_UINT | CN_OPT_ONCE, &r->inspect_retention, 1, 7 * 24 * 3600,
         "S", "drop recorded requests older than S seconds (default 3600)"},
        {"json", CN_OPT_FLAG, &r->json, 0, 0, NULL, "print one JSON line once listening"},
        {"log-level", CN_OPT_CHOICE, &r->log_level, 0, 0, HUB_LOG_LEVELS,
         "log threshold on stderr (default: $CONNECT_LOG, else info)"},
        CN_OPT_END,
    };
    _Static_assert(sizeof(table) / sizeof(table[0]) == SERVE_OPTS, "serve_table size");
    memcpy(t, table, sizeof(table));
}

void hub_serve_usage(FILE *out)
{
    hub_serve_options_t o;
    serve_raw_t r;
    cn_opt_t t[SERVE_OPTS];
    serve_table(&o, &r, t);
    cn_args_help(out, "connect-hub", "serve", SERVE_SYNOPSIS, SERVE_ABOUT, t);
}

static int usage_error(char *err, size_t errlen, const char *opt, const char *what)
{
    return cn_errf(CN_ARGS_ERROR, err, errlen, "%s: %s", opt, what);
}

static bool readable_file(const char *path)
{
    return access(path, R_OK) == 0;
}

static void set_defaults(hub_serve_options_t *o, serve_raw_t *r)
{
    memset(o, 0, sizeof(*o));
    memset(r, 0, sizeof(*r));
    o->public_domain = "localhost";
    r->listen = "127.0.0.1:8080";
    r->http_port = HTTP_PORT_UNSET;
    r->https_port = HTTP_PORT_UNSET;
    r->http_timeout = HUB_HTTP_TIMEOUT_DEFAULT_S;
    r->http_pool = HUB_HTTP_POOL_DEFAULT;
    r->http_pool_idle = HUB_HTTP_POOL_IDLE_DEFAULT_S;
    r->rate_limit = HUB_API_RATE_LIMIT_DEFAULT;
    r->max_tunnels = HUB_API_MAX_TUNNELS_DEFAULT;
    r->max_agents = HUB_API_MAX_AGENTS_DEFAULT;
    r->max_links = HUB_RUNTIME_MAX_LINKS_DEFAULT;
    r->max_links_per_agent = HUB_RUNTIME_MAX_LINKS_PER_AGENT_DEFAULT;
    r->conn_rate = HUB_SERVER_CONN_RATE_DEFAULT;
    r->auth_fail_rate = HUB_API_AUTH_FAIL_RATE_DEFAULT;
    r->max_conns = HUB_RUNTIME_MAX_CONNS_DEFAULT;
    r->max_conns_per_tunnel = HUB_RUNTIME_MAX_CONNS_PER_TUNNEL_DEFAULT;
    r->max_conns_per_ws = HUB_RUNTIME_MAX_CONNS_PER_WS_DEFAULT;
    r->max_conns_per_client = HUB_RUNTIME_MAX_CONNS_PER_CLIENT_DEFAULT;
    r->tcp_idle_timeout = HUB_RUNTIME_TCP_IDLE_TIMEOUT_DEFAULT;
    r->event_days = HUB_EVENT_RETENTION_DAYS_DEFAULT;
    r->event_max = HUB_EVENT_MAX_DEFAULT;
    r->udp_idle = CN_UDP_DEFAULT_IDLE_MS / 1000;
    r->inspect_body_max = HUB_INSPECT_BODY_MAX_DEFAULT;
    r->inspect_keep = HUB_INSPECT_KEEP_DEFAULT;
    r->inspect_retention = HUB_INSPECT_RETENTION_DEFAULT_MS / 1000;
}

static bool valid_public_domain(const char *d, const char **why)
{
    if (!hub_valid_host(d, why) || strchr(d, ':'))
        return cn_why(why, "must be a DNS name such as example.com");
    for (const char *p = d; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            return cn_why(why, "must be lowercase");
    if (strlen(d) > 190)
        return cn_why(why, "is too long (at most 190 characters)");
    return true;
}

/* Checks what the table parsed, alone and together, and fills the rest of
 * the options. */
static int check_options(hub_serve_options_t *o, const serve_raw_t *r, char *err, size_t errlen)
{
    const char *why = NULL;
    if (!o->db)
        return usage_error(err, errlen, "--db", "is required");
    if (!hub_parse_listen(r->listen, o->listen_host, sizeof(o->listen_host), &o->listen_port, &why))
        return usage_error(err, errlen, "--listen", why);
    if (!valid_public_domain(o->public_domain, &why))
        return usage_error(err, errlen, "--public-domain", why);
    o->tcp_port_lo = HUB_API_TCP_PORTS_DEFAULT_LO;
    o->tcp_port_hi = HUB_API_TCP_PORTS_DEFAULT_HI;
    if (r->tcp_ports && !hub_parse_port_range(r->tcp_ports, &o->tcp_port_lo, &o->tcp_port_hi, &why))
        return usage_error(err, errlen, "--tcp-ports", why);
    o->http_port_set = r->http_port != HTTP_PORT_UNSET;
    o->http_port = o->http_port_set ? (uint16_t)r->http_port : 0;
    o->https_port_set = r->https_port != HTTP_PORT_UNSET;
    o->https_port = o->https_port_set ? (uint16_t)r->https_port : 0;
    o->http_timeout_s = (unsigned)r->http_timeout;
    o->http_pool = (unsigned)r->http_pool;
    o->http_pool_idle_s = (unsigned)r->http_pool_idle;
    o->rate_limit = (unsigned)r->rate_limit;
    o->max_tunnels = (size_t)r->max_tunnels;
    o->max_agents = (size_t)r->max_agents;
    o->event_days = (unsigned)r->event_days;
    o->event_max = (size_t)r->event_max;
    o->udp_idle_ms = (uint32_t)r->udp_idle * 1000u;
    o->json = r->json;
    o->log_level = r->log_level;
    o->max_links = (unsigned)r->max_links;
    o->max_links_per_agent = (unsigned)r->max_links_per_agent;
    o->conn_rate = (unsigned)r->conn_rate;
    o->auth_fail_rate = (unsigned)r->auth_fail_rate;
    o->max_conns = (unsigned)r->max_conns;
    o->max_conns_per_tunnel = (unsigned)r->max_conns_per_tunnel;
    o->max_conns_per_ws = (unsigned)r->max_conns_per_ws;
    o->max_conns_per_client = (unsigned)r->max_conns_per_client;
    o->tcp_idle_timeout = (unsigned)r->tcp_idle_timeout;
    if (!cn_mux_window_valid(r->stream_window, r->window_update, &why))
        return usage_error(err, errlen, "--window-update", why);
    o->stream_window = (uint32_t)r->stream_window;
    o->window_update = (uint32_t)r->window_update;
    if (r->public_bind) {
        /* An address literal, as --listen takes it, without a port. */
        char probe[96];
        uint16_t port = 0;
        snprintf(probe, sizeof(probe), strchr(r->public_bind, ':') ? "[%s]:1" : "%s:1",
                 r->public_bind);
        if (!*r->public_bind || strlen(r->public_bind) >= sizeof(o->public_bind) ||
            !hub_parse_listen(probe, o->public_bind, sizeof(o->public_bind), &port, &why))
            return usage_error(err, errlen, "--public-bind",
                               "must be an IP address such as 0.0.0.0 or ::");
    }
    /* CHOICE values are 1 + the index in "loopback|token|public"; the enum
     * follows the same order. */
    o->metrics_access = r->metrics ? r->metrics - 1 : HUB_METRICS_LOOPBACK;
    o->event_loop = r->event_loop ? r->event_loop - 1 : CN_LOOP_EPOLL;
    o->busy_poll_us = (unsigned)r->busy_poll;
    if (o->busy_poll_us && o->event_loop != CN_LOOP_EPOLL)
        return usage_error(err, errlen, "--busy-poll", "needs --event-loop epoll");
    o->webhook_retry_base_ms = (uint32_t)r->webhook_retry_base;
    o->webhook_disable_after = (unsigned)r->webhook_disable_after;
    o->inspect = r->inspect != 2; /* "on|off": 1 or 2, 0 when not given */
    o->inspect_body_max = (size_t)r->inspect_body_max;
    o->inspect_keep = (size_t)r->inspect_keep;
    o->inspect_retention_s = (unsigned)r->inspect_retention;
    if (o->metrics_access == HUB_METRICS_TOKEN && !o->metrics_token_file)
        return usage_error(err, errlen, "--metrics token", "needs --metrics-token-file");
    if (o->metrics_access != HUB_METRICS_TOKEN && o->metrics_token_file)
        return usage_error(err, errlen, "--metrics-token-file", "is only for --metrics token");
    if (o->metrics_token_file && !readable_file(o->metrics_token_file))
        return usage_error(err, errlen, "--metrics-token-file", "cannot read the file");
    if (!o->tls_cert != !o->tls_key)
        return usage_error(err, errlen, o->tls_cert ? "--tls-key" : "--tls-cert",
                           "is required with the other TLS option");
    if (o->tls_cert && !readable_file(o->tls_cert))
        return usage_error(err, errlen, "--tls-cert", "cannot read the file");
    if (o->tls_key && !readable_file(o->tls_key))
        return usage_error(err, errlen, "--tls-key", "cannot read the file");
    if (o->http_port && o->http_port >= o->tcp_port_lo && o->http_port <= o->tcp_port_hi)
        return usage_error(err, errlen, "--http-port", "lies inside the --tcp-ports range");
    if (o->listen_port && o->listen_port >= o->tcp_port_lo && o->listen_port <= o->tcp_port_hi)
        return usage_error(err, errlen, "--listen", "port lies inside the --tcp-ports range");
    return CN_ARGS_OK;
}

int hub_serve_parse_args(int argc, char **argv, hub_serve_options_t *o, char *err, size_t errlen)
{
    serve_raw_t r;
    cn_opt_t table[SERVE_OPTS];
    set_defaults(o, &r);
    serve_table(o, &r, table);
    int rc = cn_args_parse(table, argc, argv, NULL, 0, 0, NULL, err, errlen);
    if (rc != CN_ARGS_OK)
        return rc;
    return check_options(o, &r, err, errlen);
}

/* ---- running ------------------------------------------------------------ */

static volatile sig_atomic_t stop_flag;
static hub_server_t *running_server;

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    stop_flag = 1;
    /* lws_cancel_service only writes to the loop's wake-up pipe. */
    hub_server_wake(running_server);
    errno = saved;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Sets the soft open-file limit to what the hub's caps need, up to the
 * hard limit: one descriptor per public connection (--max-conns) and per
 * agent link (--max-links), plus 1,024 for API clients, listeners and the
 * database; never below 8,192 (the defaults: 3,000 + 1,024 + 1,024 with room
 * to spare). Not higher than that: lws sizes its fd table from this limit
 * and Debian's lws 4.1.6 (built with _DEBUG) scans the whole table on every
 * socket close, so a limit far above the caps costs time per connection. */
#define HUB_FD_LIMIT_MIN 8192
#define HUB_FD_SPARE 1024

static void raise_fd_limit(const hub_serve_options_t *o)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)o->max_conns + o->max_links + HUB_FD_SPARE;
    if (want < HUB_FD_LIMIT_MIN)
        want = HUB_FD_LIMIT_MIN;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        want = rl.rlim_max;
    if (rl.rlim_cur != want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Everything `serve` holds while it runs, freed by serve_close(). */
typedef struct serve {
    hub_serve_options_t o;
    hub_keypair_t kp;
    hub_store_t *store;
    hub_runtime_t *runtime; /* the live side: agent links, public listeners */
    hub_api_t *api;
    hub_server_t *server;
    plugins_t *plugins;       /* built-ins and --plugin-dir */
    hub_metrics_t *metrics;   /* counters behind GET /metrics */
    hub_webhooks_t *webhooks; /* the delivery worker */
    hub_inspect_t *inspect;   /* the edge's request records */
} serve_t;

static int load_key_file(const char *db, const char *suffix, uint8_t *secret /* or NULL */,
                         hub_keypair_t *kp)
{
    char path[4096], err[256];
    if (hub_secret_path(db, suffix, path, sizeof(path)) < 0)
        return hub_cmd_fail("serve", "--db: path is too long");
    int rc = secret ? hub_secret_key_load(path, secret, err, sizeof(err))
                    : hub_keypair_load(path, kp, err, sizeof(err));
    if (rc < 0)
        return hub_cmd_fail("serve", "%s%s", err,
                            rc == CN_ENOTFOUND ? " (run 'connect-hub init --db PATH' first)" : "");
    return 0;
}

/* Step 1: the key files `init` wrote, then the store they unlock. */
static int open_store(serve_t *s)
{
    uint8_t secret[HUB_KEY_BYTES];
    char err[512];
    if (load_key_file(s->o.db, HUB_SECRET_SUFFIX, secret, NULL) != 0 ||
        load_key_file(s->o.db, HUB_KEYPAIR_SUFFIX, NULL, &s->kp) != 0)
        return HUB_EXIT_FAIL;
    hub_store_options_t so = {.path = s->o.db,
                              .secret_key = secret,
                              .checkpoint_thread = true,
                              .log_thread = true,
                              .external_check_ms = 1};
    int rc = hub_store_open(&so, &s->store, err, sizeof(err));
    sodium_memzero(secret, sizeof(secret));
    if (rc < 0)
        return hub_cmd_fail("serve", "%s%s", err,
                            rc == CN_ENOTFOUND ? " (run 'connect-hub init --db PATH' first)" : "");
    if (hub_tunnels_reset_links(s->store) < 0)
        return hub_cmd_fail("serve", "database: %s", hub_store_errmsg(s->store));
    return 0;
}

static void plugin_error(void *user, const char *line)
{
    cn_log_warn("plugin skipped: %s", line);
}

/* Step 2: the protocol plugins: the built-ins, then the plugin directory.
 * Each file that cannot be loaded is one warning and is skipped; a
 * --plugin-dir that cannot be opened is an error, a missing install
 * directory is not. */
static int load_plugins(serve_t *s)
{
    s->plugins = plugins_new();
    if (!s->plugins)
        return hub_cmd_fail("serve", "out of memory");
    const char *dir = s->o.plugin_dir ? s->o.plugin_dir : plugins_default_dir();
    if (!s->o.plugin_dir && access(dir, F_OK) != 0)
        return 0; /* nothing installed there: the built-ins alone */
    if (access(dir, R_OK | X_OK) != 0)
        return hub_cmd_fail("serve", "--plugin-dir: cannot open %s", dir);
    int n = plugins_load_dir(s->plugins, dir, plugin_error, NULL);
    if (n < 0)
        return hub_cmd_fail("serve", "--plugin-dir: cannot read %s", dir);
    cn_log_info("plugins: %d loaded from %s, %zu known", n, dir, plugins_count(s->plugins));
    return 0;
}

/* --metrics-token-file: a private regular file (like the key files) with
 * one token of 32+ printable characters; only its hash is kept. Without a
 * usable token `serve` refuses to start rather than serve metrics openly
 * or not at all. */
static int load_metrics_token(const char *path, uint8_t hash[static HUB_KEY_BYTES])
{
    struct stat sb;
    char buf[512];
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return hub_cmd_fail("serve", "--metrics-token-file: cannot open %s: %s", path,
                            strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & 077)) {
        close(fd);
        return hub_cmd_fail("serve",
                            "--metrics-token-file: %s must be a regular file readable by its "
                            "owner only (chmod 600 %s)",
                            path, path);
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        n = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    bool printable = true;
    for (ssize_t i = 0; i < n; i++)
        printable &= buf[i] > 0x20 && buf[i] < 0x7f;
    int rc = printable ? hub_metrics_token_hash(buf, hash) : CN_EINVAL;
    sodium_memzero(buf, sizeof(buf));
    if (rc < 0)
        return hub_cmd_fail("serve",
                            "--metrics-token-file: %s must hold one token of at least 32 "
                            "printable characters",
                            path);
    return 0;
}

/* Step 3: the live side, the API (which tells the live side about changes)
 * and the server that listens for both. */
static int start_server(serve_t *s)
{
    const hub_serve_options_t *o = &s->o;
    char err[512];
    hub_api_config_t ac = {
        .public_domain = o->public_domain,
        .tcp_port_lo = o->tcp_port_lo,
        .tcp_port_hi = o->tcp_port_hi,
        .rate_limit = o->rate_limit,
        .max_tunnels = o->max_tunnels,
        .max_agents = o->max_agents,
        .auth_fail_rate = o->auth_fail_rate,
        .max_webhooks = HUB_WEBHOOKS_PER_WORKSPACE,
        .plugins = s->plugins,
        .metrics_access = (enum hub_metrics_access)o->metrics_access,
    };
    hub_key_to_b64(s->kp.public_key, ac.hub_public_key);
    if (o->metrics_token_file && load_metrics_token(o->metrics_token_file, ac.metrics_token_hash))
        return HUB_EXIT_FAIL;
    s->metrics = hub_metrics_new();
    hub_webhooks_config_t wc = {
        .store = s->store,
        .metrics = s->metrics,
        .retry_base_ms = o->webhook_retry_base_ms,
        .disable_after = o->webhook_disable_after,
    };
    s->webhooks = s->metrics ? hub_webhooks_new(&wc) : NULL;
    if (!s->webhooks)
        return hub_cmd_fail("serve", "out of memory");
    ac.metrics = s->metrics;
    hub_inspect_config_t ic = {
        .enabled = o->inspect,
        .body_max = o->inspect_body_max,
        .keep = o->inspect_keep,
        .retention_ms = (int64_t)o->inspect_retention_s * 1000,
    };
    s->inspect = hub_inspect_new(&ic);
    if (!s->inspect)
        return hub_cmd_fail("serve", "out of memory");
    /* The HTTP edge: --http-port, else the port after the API's (the
     * kernel's choice when the API's is, or when that one is taken). */
    int edge_port = o->http_port_set ? (int)o->http_port
                    : o->listen_port ? (o->listen_port < 65535 ? o->listen_port + 1 : 0)
                                     : 0;
    /* The HTTPS edge: --https-port, else the port after the HTTP edge's. */
    int tls_port = !o->tls_cert        ? -1
                   : o->https_port_set ? (int)o->https_port
                   : edge_port         ? (edge_port < 65535 ? edge_port + 1 : 0)
                                       : 0;
    /* Read once: how tests make this hub one before the deltas. */
    const char *td = getenv("CONNECT_HUB_TUNNEL_DELTA");
    hub_runtime_config_t rc_live = {
        .store = s->store,
        .keypair = &s->kp,
        .tcp_host = o->public_bind[0] ? o->public_bind : o->listen_host,
        .max_conns = o->max_conns,
        .max_conns_per_tunnel = o->max_conns_per_tunnel,
        .max_conns_per_ws = o->max_conns_per_ws,
        .max_conns_per_client = o->max_conns_per_client,
        .tcp_idle_timeout_s = o->tcp_idle_timeout,
        .max_links = o->max_links,
        .max_links_per_agent = o->max_links_per_agent,
        .stream_window = o->stream_window,
        .window_update = o->window_update,
        .metrics = s->metrics,
        .http_port = edge_port,
        .http_port_fallback = !o->http_port_set,
        .tls_cert = o->tls_cert,
        .tls_key = o->tls_key,
        .https_port = tls_port,
        .https_port_fallback = !o->https_port_set,
        .public_domain = o->public_domain,
        .http_timeout_ms = o->http_timeout_s * 1000u,
        .http_pool_max = o->http_pool,
        .http_pool_idle_ms = o->http_pool_idle_s * 1000u,
        .udp_idle_ms = o->udp_idle_ms,
        .inspect = s->inspect,
        .no_tunnel_delta = td && !strcmp(td, "0"),
    };
    s->runtime = hub_runtime_new(&rc_live, err, sizeof(err));
    if (!s->runtime)
        return hub_cmd_fail("serve", "%s", err);
    hub_runtime_live(s->runtime, &ac.live);
    ac.inspect = s->inspect;
    ac.replay = hub_runtime_replay;
    ac.replay_ctx = s->runtime;
    ac.metrics_source = (hub_metrics_source_t){.collect = hub_runtime_metrics, .ctx = s->runtime};
    /* The public URL port is only known once listening (port 0); the API
     * learns it afterwards. */
    s->api = hub_api_new(s->store, &ac);
    if (!s->api)
        return hub_cmd_fail("serve", "out of memory");
    hub_server_config_t sc = {
        .listen_host = o->listen_host,
        .listen_port = o->listen_port,
        .tls_cert = o->tls_cert,
        .tls_key = o->tls_key,
        .retention = {.days = o->event_days, .max_per_ws = o->event_max},
        .store = s->store,
        .runtime = s->runtime,
        .api = s->api,
        .conn_rate = o->conn_rate,
        .event_loop = o->event_loop,
        .busy_poll_us = o->busy_poll_us,
        .webhooks = s->webhooks,
    };
    raise_fd_limit(o);
    s->server = hub_server_new(&sc, err, sizeof(err));
    if (!s->server)
        return hub_cmd_fail("serve", "%s", err);
    int port = hub_server_port(s->server);
    int http_port = hub_runtime_http_port(s->runtime);
    int https_port = hub_runtime_https_port(s->runtime);
    /* Public URLs name the HTTPS port when there is one. */
    if (https_port > 0)
        hub_api_set_public_tls(s->api, (uint16_t)https_port);
    else
        hub_api_set_public_http_port(s->api, (uint16_t)(http_port > 0 ? http_port : port));
    /* A wildcard listen address names no host a redeemer can dial: the
     * public domain does. */
    char addr[CN_TARGET_TEXT_MAX + 1], url[CN_TARGET_TEXT_MAX + 16];
    bool wildcard = !strcmp(o->listen_host, "0.0.0.0") || !strcmp(o->listen_host, "::");
    cn_target_format(wildcard ? o->public_domain : o->listen_host, (unsigned)port, addr,
                     sizeof(addr));
    snprintf(url, sizeof(url), "%s://%s", o->tls_cert ? "https" : "http", addr);
    hub_api_set_hub_url(s->api, url);
    return 0;
}

/* Step 4: say where it listens: one line on stderr, and with --json one
 * JSON line on stdout (as the agent's long-running commands do). */
static void announce(const serve_t *s)
{
    int port = hub_server_port(s->server);
    int http_port = hub_runtime_http_port(s->runtime);
    int https_port = hub_runtime_https_port(s->runtime);
    char addr[CN_TARGET_TEXT_MAX + 1], url[CN_TARGET_TEXT_MAX + 16];
    cn_target_format(s->o.listen_host, (unsigned)port, addr, sizeof(addr));
    snprintf(url, sizeof(url), "%s://%s", s->o.tls_cert ? "https" : "http", addr);
    char https[48] = "";
    if (https_port > 0)
        snprintf(https, sizeof(https), ", HTTPS edge port %d", https_port);
    fprintf(stderr, "connect-hub: listening on %s (public domain %s, HTTP edge port %d%s)\n", url,
            s->o.public_domain, http_port, https);
    fflush(stderr);
    if (s->o.json) {
        json_t *j = json_pack("{s:s, s:i, s:s, s:i}", "url", url, "port", port, "publicDomain",
                              s->o.public_domain, "httpPort", http_port);
        if (j && https_port > 0)
            json_object_set_new(j, "httpsPort", json_integer(https_port));
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (text)
            printf("%s\n", text);
        fflush(stdout);
        free(text);
        json_decref(j);
    }
}

static void serve_close(serve_t *s)
{
    running_server = NULL;
    hub_server_free(s->server);
    hub_runtime_free(s->runtime);   /* after the context that used it */
    hub_webhooks_free(s->webhooks); /* likewise */
    hub_api_free(s->api);
    plugins_free(s->plugins); /* after the API that borrowed it */
    hub_metrics_free(s->metrics);
    hub_inspect_free(s->inspect); /* after the runtime and API that borrowed it */
    hub_store_close(s->store);
    hub_keypair_wipe(&s->kp);
}

int hub_cmd_serve(int argc, char **argv)
{
    serve_t s = {0};
    char err[512];
    int rc = hub_serve_parse_args(argc, argv, &s.o, err, sizeof(err));
    if (rc == CN_ARGS_HELP) {
        hub_serve_usage(stdout);
        return HUB_EXIT_OK;
    }
    if (rc < 0)
        return cn_args_usage_error("connect-hub", "serve", "%s", err);
    hub_cmd_logging(s.o.log_level);
    if (hub_secrets_init() < 0)
        return hub_cmd_fail("serve", "libsodium failed to initialise");

    int status = open_store(&s);
    if (status == 0)
        status = load_plugins(&s);
    if (status == 0)
        status = start_server(&s);
    if (status == 0) {
        running_server = s.server;
        install_signals();
        announce(&s);
        if (hub_server_run(s.server, &stop_flag) < 0) {
            cn_log_error("serve: the event loop failed");
            status = HUB_EXIT_FAIL;
        } else {
            cn_log_info("serve: shutting down");
        }
    }
    serve_close(&s);
    return status;
}
