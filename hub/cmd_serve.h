/* `connect-hub serve`'s options (the command itself is in cmd.h:
 * hub_cmd_serve() returns 0 after a clean SIGINT/SIGTERM shutdown, 1 on a
 * runtime failure, 2 on bad usage). */
#ifndef HUB_CMD_SERVE_H
#define HUB_CMD_SERVE_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

/* Seconds a target may take to start answering before the edge answers 504. */
#define HUB_HTTP_TIMEOUT_DEFAULT_S 30
/* The HTTP edge's upstream keep-alive pool (docs/http-edge.md): idle
 * streams kept per tunnel and agent link, and how long (below common
 * targets' keep-alive timeouts: nginx 75 s, Node.js 5 s). */
#define HUB_HTTP_POOL_DEFAULT 64
#define HUB_HTTP_POOL_IDLE_DEFAULT_S 4

typedef struct hub_serve_options {
    const char *db;
    char listen_host[64];
    uint16_t listen_port;
    const char *public_domain;
    uint16_t http_port;        /* the HTTP edge's port when http_port_set */
    bool http_port_set;        /* --http-port given (0 = the kernel picks) */
    uint16_t https_port;       /* the HTTPS edge's port when https_port_set */
    bool https_port_set;       /* --https-port given (0 = the kernel picks) */
    unsigned http_timeout_s;   /* --http-timeout, HUB_HTTP_TIMEOUT_DEFAULT_S when not given */
    unsigned http_pool;        /* --http-pool: idle streams per tunnel, 0 = no pool */
    unsigned http_pool_idle_s; /* --http-pool-idle */
    uint16_t tcp_port_lo, tcp_port_hi;
    const char *tls_cert;
    const char *tls_key;
    unsigned rate_limit;
    size_t max_tunnels;
    size_t max_agents;
    uint32_t udp_idle_ms;   /* a UDP flow ends after this long without a datagram */
    const char *plugin_dir; /* NULL: the install directory, if it exists */
    unsigned event_days;    /* --event-retention, 0 = keep */
    size_t event_max;       /* --event-max per workspace, 0 = no cap */
    bool json;              /* one JSON line on stdout once listening */
    int log_level;          /* 0: not given, else 1 + CN_LOG_* */
    char public_bind[64];   /* public TCP listeners' address; "" = the --listen host */
    /* Abuse bounds (docs/security.md argues each default). */
    unsigned max_links;             /* agent links at once */
    unsigned max_links_per_agent;   /* links of one agent */
    unsigned conn_rate;             /* new API/agent connections per address per minute, 0 = off */
    unsigned auth_fail_rate;        /* 401s per address per minute before 429, 0 = off */
    unsigned max_conns;             /* public TCP connections, hub-wide */
    unsigned max_conns_per_tunnel;  /* ... to one tunnel */
    unsigned max_conns_per_ws;      /* ... of one workspace's tunnels */
    unsigned max_conns_per_client;  /* ... from one client address (IPv6 /64), per tunnel */
    unsigned tcp_idle_timeout;      /* seconds a public TCP connection may stay idle, 0 = never */
    uint32_t stream_window;         /* --stream-window, 0 = CN_MUX_DEFAULT_WINDOW */
    uint32_t window_update;         /* --window-update, 0 = a quarter of the window */
    int event_loop;                 /* --event-loop: cn_loop_kind_t */
    unsigned busy_poll_us;          /* --busy-poll: cn_loop_set_busy_poll(), 0 = off */
    int metrics_access;             /* enum hub_metrics_access (api.h) */
    const char *metrics_token_file; /* --metrics token: the file holding it */
    uint32_t webhook_retry_base_ms; /* 0 = HUB_WEBHOOK_RETRY_BASE_MS */
    unsigned webhook_disable_after; /* 0 = HUB_WEBHOOK_DISABLE_AFTER */
    bool inspect;                   /* --inspect on|off: the edge records requests */
    size_t inspect_body_max;        /* body bytes recorded per direction */
    size_t inspect_keep;            /* records per tunnel */
    unsigned inspect_retention_s;   /* records older than this are dropped */
} hub_serve_options_t;

/* Parses `serve`'s arguments (argv[0] is "serve") with cn_args and checks
 * them, alone and together. Returns CN_ARGS_OK (0), CN_ARGS_HELP (1) when
 * --help was asked for, or CN_ARGS_ERROR (-1) with one line in `err` that
 * names the option. Strings point into argv. */
int hub_serve_parse_args(int argc, char **argv, hub_serve_options_t *out, char *err, size_t errlen);

/* Prints `serve`'s usage. */
void hub_serve_usage(FILE *out);

#endif
