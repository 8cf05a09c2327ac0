/* Shared CLI plumbing: errors, signals, logging, REST client, output. */
#include "cli.h"

#include "cn_api.h"
#include "cn_err.h"
#include "cn_errmsg.h"
#include "cn_log.h"
#include "cn_id.h"
#include "plugins.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t cli_stop;
volatile sig_atomic_t cli_force;

int cli_stop_raised(void *unused)
{
    return cli_stop != 0;
}

int cli_force_raised(void *unused)
{
    return cli_force != 0;
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cn_args_vfail("connect", fmt, ap);
    va_end(ap);
    return rc;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    return cn_args_usage_error("connect", cmd, "%s", line);
}

int cli_hoist_global_options(int argc, char **argv, char ***out, int *out_argc, char *err,
                             size_t errlen)
{
    agent_common_t c = {0};
    const cn_opt_t common[] = {AGENT_COMMON_OPTIONS(&c), CN_OPT_END};
    int at = argc;
    *out = NULL;
    *out_argc = 0;
    int rc = cn_args_leading(common, argc, argv, &at, err, errlen);
    if (rc != CN_ARGS_OK)
        return rc;
    if (at >= argc)
        return cn_errf(CN_ARGS_ERROR, err, errlen, "missing command");
    char **v = calloc((size_t)argc + 1, sizeof(*v));
    if (!v)
        return cn_errf(CN_ENOMEM, err, errlen, "out of memory");
    int n = 0;
    v[n++] = argv[at];
    for (int i = 1; i < at; i++) /* the global options, in their order */
        v[n++] = argv[i];
    for (int i = at + 1; i < argc; i++)
        v[n++] = argv[i];
    *out = v;
    *out_argc = n;
    return CN_ARGS_OK;
}

static void on_signal(int sig)
{
    if (cli_stop)
        cli_force = 1;
    cli_stop = 1;
}

void cli_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: poll() must return */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void lws_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    cn_log_debug("lws: %.*s", (int)n, line);
}

void cli_logging(int given, int level)
{
    if (given > 0)
        cn_log_set_level(given - 1);
    else if (!getenv("CONNECT_LOG"))
        cn_log_set_level(level);
    if (cn_log_get_level() >= CN_LOG_DEBUG)
        lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);
    else
        lws_set_log_level(0, NULL);
}

struct cn_api *cli_api(const agent_config_t *cfg, bool cancellable)
{
    char err[256];
    cn_api_t *api = cn_api_new(cfg->hub, cfg->token, err, sizeof(err));
    if (!api) {
        cli_fail("%s", err);
        return NULL;
    }
    cn_api_set_allow_insecure(api, cfg->allow_insecure);
    if (cn_api_set_ca_file(api, cfg->ca_file, err, sizeof(err)) < 0) {
        cn_api_free(api);
        cli_fail("%s", err);
        return NULL;
    }
    if (cancellable)
        cn_api_set_cancel(api, cli_stop_raised, NULL);
    return api;
}

struct cn_api *cli_hub_api(const agent_common_t *c, int *exit_status)
{
    char err[512];
    agent_config_t cfg;
    if (agent_config_resolve(c, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &cfg, err, sizeof(err)) < 0) {
        *exit_status = cli_fail("%s", err);
        return NULL;
    }
    cn_api_t *api = cli_api(&cfg, true);
    agent_config_wipe(&cfg); /* the client holds its own copies */
    if (!api)
        *exit_status = AGENT_EXIT_FAIL;
    return api;
}

int cli_begin(const agent_common_t *c, unsigned need, agent_config_t *cfg, struct cn_api **api)
{
    char err[512];
    *api = NULL;
    cli_logging(c->log_level, CN_LOG_INFO);
    cli_signals();
    if (agent_config_resolve(c, need, cfg, err, sizeof(err)) < 0)
        return cli_fail("%s", err);
    *api = cli_api(cfg, true);
    if (!*api) {
        agent_config_wipe(cfg);
        return AGENT_EXIT_FAIL;
    }
    return -1;
}

void cli_nap(unsigned ms)
{
    for (unsigned t = 0; t < ms && !cli_stop; t += 100) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int cli_find_tunnel(struct cn_api *api, const char *ref, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cn_id_is_uuid(ref))
        return cn_api_tunnel_get(api, ref, out, err, errlen);
    json_t *list = NULL;
    int rc = cn_api_tunnel_list(api, NULL, NULL, &list, err, errlen);
    if (rc < 0)
        return rc;
    size_t i;
    json_t *t;
    json_array_foreach(list, i, t)
    {
        const char *name = jstr(t, "name", NULL);
        if (name && !strcmp(name, ref)) {
            *out = json_incref(t);
            break;
        }
    }
    json_decref(list);
    if (!*out) {
        char safe[128];
        out_sanitize(ref, safe, sizeof(safe), 100);
        return cn_errf(CN_ENOTFOUND, err, errlen, "no tunnel with id or name '%s'", safe);
    }
    return 0;
}

/* ---- output ---------------------------------------------------------- */

void out_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) {
        fputs(s, stdout);
        free(s);
    }
    fputc('\n', stdout);
    fflush(stdout);
}

const char *jstr(const json_t *obj, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : dflt;
}

void out_endpoint(const json_t *t, char *buf, size_t len)
{
    const char *url = jstr(t, "publicUrl", NULL);
    json_t *port = json_object_get(t, "hubPort");
    if (url && *url)
        snprintf(buf, len, "%s", url);
    else if (json_is_integer(port))
        snprintf(buf, len, "hub port %lld", (long long)json_integer_value(port));
    else
        snprintf(buf, len, "-");
}

void out_sanitize(const char *s, char *out, size_t outlen, size_t max)
{
    size_t o = 0, n = 0;
    if (!outlen)
        return;
    if (!s)
        s = "";
    for (; *s && o + 1 < outlen; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c & 0xc0) != 0x80) /* count characters, not UTF-8 continuation bytes */
            n++;
        if (n > max) {
            if (o >= 2)
                o -= 2;
            while (o > 0 && ((unsigned char)out[o] & 0xc0) == 0x80)
                o--;
            out[o++] = '.';
            out[o++] = '.';
            break;
        }
        out[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[o] = '\0';
}

static void line(FILE *out, const char *label, const char *value)
{
    char safe[512];
    out_sanitize(value, safe, sizeof(safe), 400);
    fprintf(out, "  %-12s %s\n", label, safe);
}

void out_tunnel(FILE *out, const json_t *t)
{
    char buf[512];
    out_sanitize(jstr(t, "name", "?"), buf, sizeof(buf), 100);
    fprintf(out, "Tunnel %s\n", buf);
    line(out, "id", jstr(t, "id", "?"));
    line(out, "status", jstr(t, "status", "?"));
    snprintf(buf, sizeof(buf), "%s (%s)", jstr(t, "target", "?"), jstr(t, "protocol", "?"));
    line(out, "target", buf);
    const char *url = jstr(t, "publicUrl", NULL);
    if (url)
        line(out, "public URL", url);
    json_t *port = json_object_get(t, "hubPort");
    if (json_is_integer(port)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(port));
        line(out, "hub port", buf);
    }
    if (!url && !json_is_integer(port))
        line(out, "public", json_is_true(json_object_get(t, "public")) ? "yes" : "no");
    const char *conn = jstr(t, "connectionString", NULL);
    if (conn)
        line(out, "connect", conn);
    const char *user = jstr(t, "httpUser", NULL);
    const char *pw = jstr(t, "httpPassword", NULL);
    if (user && pw) {
        snprintf(buf, sizeof(buf), "%s / %s  (the password is shown only this once)", user, pw);
        line(out, "basic auth", buf);
    } else if (user) {
        line(out, "basic auth", user);
    }
    const char *exp = jstr(t, "expiresAt", NULL);
    if (exp)
        line(out, "expires", exp);
    const char *lerr = jstr(t, "lastError", NULL);
    if (lerr)
        line(out, "last error", lerr);
    line(out, "agent", jstr(t, "agentId", "?"));
    line(out, "created", jstr(t, "createdAt", "?"));
    fflush(out);
}

int out_table_init(out_table_t *t, size_t ncols, const char *const *header)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    return out_table_add(t, header);
}

int out_table_add(out_table_t *t, const char *const *row)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));
        if (!c)
            return CN_ENOMEM;
        t->cells = c;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        char buf[256];
        out_sanitize(row[i] ? row[i] : "-", buf, sizeof(buf), 60);
        t->cells[t->nrows * t->ncols + i] = strdup(buf);
    }
    t->nrows++;
    return 0;
}

static size_t text_width(const char *s)
{
    size_t n = 0;
    for (; s && *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

void out_table_print(FILE *out, const out_table_t *t)
{
    size_t width[16] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols && c < 16; c++) {
            size_t w = text_width(t->cells[r * t->ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols && c < 16; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            cell = cell ? cell : "";
            bool last = c + 1 == t->ncols;
            fputs(cell, out);
            if (!last)
                for (size_t pad = text_width(cell); pad < width[c] + 2; pad++)
                    fputc(' ', out);
        }
        fputc('\n', out);
    }
    fflush(out);
}

void out_table_free(out_table_t *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

int cli_tunnel_command(const char *cmd, const char *about, int argc, char **argv, agent_common_t *c,
                       cn_api_t **api, json_t **tunnel, int *exit_status)
{
    const cn_opt_t opts[] = {
        AGENT_COMMON_OPTIONS(c),
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    const char *pos[1];
    size_t npos = 0;
    char err[512];
    *api = NULL;
    *tunnel = NULL;
    int rc = cn_args_parse(opts, argc, argv, pos, 0, 1, &npos, err, sizeof(err));
    if (rc == CN_ARGS_HELP) {
        cn_args_help(stdout, "connect", cmd, "ID|NAME [--json]", about, opts);
        *exit_status = AGENT_EXIT_OK;
        return 0;
    }
    if (rc < 0) {
        *exit_status = cli_usage_error(cmd, "%s", err);
        return 0;
    }
    if (npos != 1) {
        *exit_status = cli_usage_error(cmd, "which tunnel? give its id or name");
        return 0;
    }
    cli_logging(c->log_level, CN_LOG_WARN);
    if (!(*api = cli_hub_api(c, exit_status)))
        return 0;
    if (cli_find_tunnel(*api, pos[0], tunnel, err, sizeof(err)) < 0) {
        cn_api_free(*api);
        *api = NULL;
        *exit_status = cli_fail("%s", err);
        return 0;
    }
    return 1;
}

static void plugin_skipped(void *user, const char *line)
{
    cn_log_warn("plugin skipped: %s", line);
}

struct plugins *cli_plugins(const char *dir)
{
    plugins_t *ps = plugins_new();
    const char *d = dir ? dir : plugins_default_dir();
    if (ps && (dir || access(d, F_OK) == 0))
        plugins_load_dir(ps, d, plugin_skipped, NULL);
    return ps;
}
