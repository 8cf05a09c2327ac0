/* `connect-hub serve`: parse and check every option, load the key files
 * `init` wrote, open the store, and run the API until SIGINT/SIGTERM. */
#include "cmd_serve.h"

#include "cmd.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sodium.h>

#include "api.h"
#include "cn_err.h"
#include "cn_log.h"
#include "runtime.h"
#include "secrets.h"
#include "server.h"
#include "store.h"
#include "tunnels.h"
#include "validate.h"

void hub_serve_usage(FILE *out)
{
    fprintf(out,
            "usage: connect-hub serve --db PATH [options]\n"
            "\n"
            "Serves the REST API (and, on the same port, the agent endpoint).\n"
            "\n"
            "options:\n"
            "  --db PATH              database created by 'connect-hub init' (required)\n"
            "  --listen HOST:PORT     address to listen on (default 127.0.0.1:8080;\n"
            "                         port 0 picks a free port)\n"
            "  --public-domain DOMAIN domain of public tunnel URLs, NAME.DOMAIN\n"
            "                         (default localhost)\n"
            "  --http-port N          port of the HTTP edge (public HTTP tunnels and\n"
            "                         shares at NAME.DOMAIN:N); default: the listen\n"
            "                         port + 1; 0 picks a free port\n"
            "  --http-timeout S       seconds a target may take to answer before the\n"
            "                         edge answers 504 (default 30)\n"
            "  --tcp-ports A-B        range of hub ports for public TCP tunnels\n"
            "                         (default %u-%u)\n"
            "  --tls-cert FILE        TLS certificate (PEM); needs --tls-key\n"
            "  --tls-key FILE         TLS private key (PEM); needs --tls-cert\n"
            "  --rate-limit N         API requests per token per minute, 0 = unlimited\n"
            "                         (default %u)\n"
            "  --max-tunnels N        tunnels per workspace, 0 = unlimited (default %u)\n"
            "  --max-agents N         agents per workspace, 0 = unlimited (default %u)\n"
            "  -h, --help             show this help\n",
            HUB_API_TCP_PORTS_DEFAULT_LO, HUB_API_TCP_PORTS_DEFAULT_HI, HUB_API_RATE_LIMIT_DEFAULT,
            HUB_API_MAX_TUNNELS_DEFAULT, HUB_API_MAX_AGENTS_DEFAULT);
}

static int usage_error(char *err, size_t errlen, const char *opt, const char *what)
{
    snprintf(err, errlen, "%s: %s", opt, what);
    return -1;
}

static bool readable_file(const char *path)
{
    return access(path, R_OK) == 0;
}

int hub_serve_parse_args(int argc, char **argv, hub_serve_options_t *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->listen_host, sizeof(o->listen_host), "127.0.0.1");
    o->listen_port = 8080;
    o->public_domain = "localhost";
    o->tcp_port_lo = HUB_API_TCP_PORTS_DEFAULT_LO;
    o->tcp_port_hi = HUB_API_TCP_PORTS_DEFAULT_HI;
    o->rate_limit = HUB_API_RATE_LIMIT_DEFAULT;
    o->max_tunnels = HUB_API_MAX_TUNNELS_DEFAULT;
    o->max_agents = HUB_API_MAX_AGENTS_DEFAULT;
    bool seen_db = false, seen_listen = false, seen_domain = false, seen_http = false,
         seen_tcp = false, seen_rate = false, seen_max = false, seen_max_agents = false;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help"))
            return 1;
        if (strncmp(arg, "--", 2) != 0)
            return usage_error(err, errlen, arg, "unexpected argument");
        /* --opt=value or --opt value */
        char opt[32];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        size_t on = eq ? (size_t)(eq - arg) : strlen(arg);
        if (on >= sizeof(opt))
            return usage_error(err, errlen, "option", "unknown option (try --help)");
        memcpy(opt, arg, on);
        opt[on] = '\0';
        static const char *const known[] = {"--db",         "--listen",      "--public-domain",
                                            "--http-port",  "--tcp-ports",   "--tls-cert",
                                            "--tls-key",    "--rate-limit",  "--max-tunnels",
                                            "--max-agents", "--http-timeout"};
        bool is_known = false;
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
            if (!strcmp(opt, known[k]))
                is_known = true;
        if (!is_known) {
            snprintf(err, errlen, "%s: unknown option (try --help)", opt);
            return -1;
        }
        if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc)
                return usage_error(err, errlen, opt, "needs a value");
            val = argv[++i];
        }
        const char *why = NULL;
        unsigned long long n = 0;
        if (!strcmp(opt, "--db")) {
            if (seen_db)
                return usage_error(err, errlen, opt, "given twice");
            if (!*val)
                return usage_error(err, errlen, opt, "must not be empty");
            o->db = val;
            seen_db = true;
        } else if (!strcmp(opt, "--listen")) {
            if (seen_listen)
                return usage_error(err, errlen, opt, "given twice");
            if (!hub_parse_listen(val, o->listen_host, sizeof(o->listen_host), &o->listen_port,
                                  &why))
                return usage_error(err, errlen, opt, why);
            seen_listen = true;
        } else if (!strcmp(opt, "--public-domain")) {
            if (seen_domain)
                return usage_error(err, errlen, opt, "given twice");
            if (!hub_valid_host(val, &why) || strchr(val, ':'))
                return usage_error(err, errlen, opt, "must be a DNS name such as example.com");
            for (const char *p = val; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    return usage_error(err, errlen, opt, "must be lowercase");
            if (strlen(val) > 190)
                return usage_error(err, errlen, opt, "is too long (at most 190 characters)");
            o->public_domain = val;
            seen_domain = true;
        } else if (!strcmp(opt, "--http-port")) {
            if (seen_http)
                return usage_error(err, errlen, opt, "given twice");
            if (!hub_parse_uint(val, 65535, &n))
                return usage_error(err, errlen, opt, "must be a port between 0 and 65535");
            o->http_port = (uint16_t)n;
            seen_http = true;
            o->http_port_set = true;
        } else if (!strcmp(opt, "--tcp-ports")) {
            if (seen_tcp)
                return usage_error(err, errlen, opt, "given twice");
            if (!hub_parse_port_range(val, &o->tcp_port_lo, &o->tcp_port_hi, &why))
                return usage_error(err, errlen, opt, why);
            seen_tcp = true;
        } else if (!strcmp(opt, "--tls-cert")) {
            if (o->tls_cert)
                return usage_error(err, errlen, opt, "given twice");
            o->tls_cert = val;
        } else if (!strcmp(opt, "--tls-key")) {
            if (o->tls_key)
                return usage_error(err, errlen, opt, "given twice");
            o->tls_key = val;
        } else if (!strcmp(opt, "--rate-limit")) {
            if (seen_rate)
                return usage_error(err, errlen, opt, "given twice");
            if (!hub_parse_uint(val, 1000000, &n))
                return usage_error(err, errlen, opt, "must be a number from 0 to 1000000");
            o->rate_limit = (unsigned)n;
            seen_rate = true;
        } else if (!strcmp(opt, "--max-tunnels")) {
            if (seen_max)
                return usage_error(err, errlen, opt, "given twice");
            if (!hub_parse_uint(val, 1000000, &n))
                return usage_error(err, errlen, opt, "must be a number from 0 to 1000000");
            o->max_tunnels = (size_t)n;
            seen_max = true;
        } else if (!strcmp(opt, "--http-timeout")) {
            if (o->http_timeout_s)
                return usage_error(err, errlen, opt, "given twice");
            if (!hub_parse_uint(val, 3600, &n) || n < 1)
                return usage_error(err, errlen, opt, "must be 1 to 3600 seconds");
            o->http_timeout_s = (unsigned)n;
        } else if (!strcmp(opt, "--max-agents")) {
            if (seen_max_agents)
                return usage_error(err, errlen, opt, "given twice");
            if (!hub_parse_uint(val, 1000000, &n))
                return usage_error(err, errlen, opt, "must be a number from 0 to 1000000");
            o->max_agents = (size_t)n;
            seen_max_agents = true;
        }
    }
    if (!o->db)
        return usage_error(err, errlen, "--db", "is required");
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
    return 0;
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

/* More connections before accept() fails: the soft fd limit up to the hard
 * one (bounded; lws sizes its tables from it). */
/* Sets the soft open-file limit to what the hub's caps need (3,000 public
 * connections by default, agents, API clients, listeners) with room to
 * spare: 8,192. Not higher: lws sizes its fd table from this limit and
 * Debian's lws 4.1.6 (built with _DEBUG) scans the whole table on every
 * socket close, so a huge limit costs time per connection. */
#define HUB_FD_LIMIT 8192

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want =
        rl.rlim_max != RLIM_INFINITY && rl.rlim_max < HUB_FD_LIMIT ? rl.rlim_max : HUB_FD_LIMIT;
    if (rl.rlim_cur != want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int load_keys(const char *db, uint8_t secret[static HUB_KEY_BYTES], hub_keypair_t *kp)
{
    char path[4096], err[256];
    if (hub_secret_path(db, HUB_SECRET_SUFFIX, path, sizeof(path)) < 0) {
        fprintf(stderr, "connect-hub serve: --db: path is too long\n");
        return -1;
    }
    int rc = hub_secret_key_load(path, secret, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "connect-hub serve: %s%s\n", err,
                rc == CN_ENOTFOUND ? " (run 'connect-hub init --db PATH' first)" : "");
        return -1;
    }
    if (hub_secret_path(db, HUB_KEYPAIR_SUFFIX, path, sizeof(path)) < 0) {
        fprintf(stderr, "connect-hub serve: --db: path is too long\n");
        return -1;
    }
    rc = hub_keypair_load(path, kp, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "connect-hub serve: %s%s\n", err,
                rc == CN_ENOTFOUND ? " (run 'connect-hub init --db PATH' first)" : "");
        return -1;
    }
    return 0;
}

int hub_cmd_serve(int argc, char **argv)
{
    hub_serve_options_t o;
    char err[512];
    int rc = hub_serve_parse_args(argc, argv, &o, err, sizeof(err));
    if (rc == 1) {
        hub_serve_usage(stdout);
        return HUB_EXIT_OK;
    }
    if (rc < 0) {
        fprintf(stderr, "connect-hub serve: %s\n", err);
        return HUB_EXIT_USAGE;
    }
    if (hub_secrets_init() < 0) {
        fprintf(stderr, "connect-hub serve: libsodium failed to initialise\n");
        return HUB_EXIT_FAIL;
    }

    int status = HUB_EXIT_FAIL;
    uint8_t secret[HUB_KEY_BYTES];
    hub_keypair_t kp;
    hub_store_t *store = NULL;
    hub_api_t *api = NULL;
    hub_runtime_t *runtime = NULL;
    hub_server_t *server = NULL;
    memset(&kp, 0, sizeof(kp));

    if (load_keys(o.db, secret, &kp) < 0)
        goto out;
    hub_store_options_t so = {.path = o.db, .secret_key = secret};
    rc = hub_store_open(&so, &store, err, sizeof(err));
    sodium_memzero(secret, sizeof(secret));
    if (rc < 0) {
        fprintf(stderr, "connect-hub serve: %s%s\n", err,
                rc == CN_ENOTFOUND ? " (run 'connect-hub init --db PATH' first)" : "");
        goto out;
    }
    if (hub_tunnels_reset_links(store) < 0) {
        fprintf(stderr, "connect-hub serve: database: %s\n", hub_store_errmsg(store));
        goto out;
    }

    hub_api_config_t ac = {
        .public_domain = o.public_domain,
        .tls = o.tls_cert != NULL,
        .tcp_port_lo = o.tcp_port_lo,
        .tcp_port_hi = o.tcp_port_hi,
        .rate_limit = o.rate_limit,
        .max_tunnels = o.max_tunnels,
        .max_agents = o.max_agents,
    };
    hub_key_to_b64(kp.public_key, ac.hub_public_key);

    /* The live side first: the API tells it about changes (ac.live). */
    /* The HTTP edge: --http-port, else the port after the API's (the
     * kernel's choice when the API's is). */
    int edge_port = o.http_port_set ? (int)o.http_port
                    : o.listen_port ? (o.listen_port < 65535 ? o.listen_port + 1 : 0)
                                    : 0;
    hub_runtime_config_t rc_live = {
        .store = store,
        .keypair = &kp,
        .tcp_host = o.listen_host,
        .http_port = edge_port,
        .http_port_fallback = !o.http_port_set,
        .public_domain = o.public_domain,
        .http_timeout_ms = o.http_timeout_s * 1000u,
    };
    runtime = hub_runtime_new(&rc_live, err, sizeof(err));
    if (!runtime) {
        fprintf(stderr, "connect-hub serve: %s\n", err);
        goto out;
    }
    hub_runtime_live(runtime, &ac.live);

    hub_server_config_t sc = {
        .listen_host = o.listen_host,
        .listen_port = o.listen_port,
        .tls_cert = o.tls_cert,
        .tls_key = o.tls_key,
        .store = store,
        .runtime = runtime,
    };
    /* The public URL port is only known once listening (port 0); create the
     * API with it afterwards. */
    api = hub_api_new(store, &ac);
    if (!api) {
        fprintf(stderr, "connect-hub serve: out of memory\n");
        goto out;
    }
    sc.api = api;
    raise_fd_limit();
    server = hub_server_new(&sc, err, sizeof(err));
    if (!server) {
        fprintf(stderr, "connect-hub serve: %s\n", err);
        goto out;
    }
    int port = hub_server_port(server);
    int http_port = hub_runtime_http_port(runtime);
    hub_api_set_public_http_port(api, (uint16_t)(http_port > 0 ? http_port : port));

    running_server = server;
    install_signals();
    const char *scheme = o.tls_cert ? "https" : "http";
    bool v6 = strchr(o.listen_host, ':') != NULL;
    fprintf(stderr,
            "connect-hub: listening on %s://%s%s%s:%d (public domain %s, HTTP edge port %d)\n",
            scheme, v6 ? "[" : "", o.listen_host, v6 ? "]" : "", port, o.public_domain, http_port);
    fflush(stderr);

    if (hub_server_run(server, &stop_flag) < 0) {
        cn_log_error("serve: the event loop failed");
        goto out;
    }
    cn_log_info("serve: shutting down");
    status = HUB_EXIT_OK;
out:
    running_server = NULL;
    hub_server_free(server);
    hub_runtime_free(runtime); /* after the context that used it */
    hub_api_free(api);
    hub_store_close(store);
    hub_keypair_wipe(&kp);
    return status;
}
