/* `connect-hub serve`'s options (the command itself is in cmd.h:
 * hub_cmd_serve() returns 0 after a clean SIGINT/SIGTERM shutdown, 1 on a
 * runtime failure, 2 on bad usage). */
#ifndef HUB_CMD_SERVE_H
#define HUB_CMD_SERVE_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hub_serve_options {
    const char *db;
    char listen_host[64];
    uint16_t listen_port;
    const char *public_domain;
    uint16_t http_port;      /* the HTTP edge's port when http_port_set */
    bool http_port_set;      /* --http-port given (0 = the kernel picks) */
    unsigned http_timeout_s; /* 0 = not given (30) */
    uint16_t tcp_port_lo, tcp_port_hi;
    const char *tls_cert;
    const char *tls_key;
    unsigned rate_limit;
    size_t max_tunnels;
    size_t max_agents;
} hub_serve_options_t;

/* Parses `serve`'s arguments (argv[0] is "serve"). Returns 0, 1 when --help
 * was asked for, or -1 with one line in `err`. Strings point into argv. */
int hub_serve_parse_args(int argc, char **argv, hub_serve_options_t *out, char *err, size_t errlen);

/* Prints `serve`'s usage. */
void hub_serve_usage(FILE *out);

#endif
