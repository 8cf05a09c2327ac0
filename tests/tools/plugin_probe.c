/* plugin_probe: drives the plugin library from the integration tests
 * (tests/integration/test_plugins.sh) against real servers.
 *
 * usage: plugin_probe [--plugin-dir DIR] COMMAND ...
 *   list                          every plugin, "NAME ORIGIN", one a line
 *   probe NAME HOST PORT [MS]     "up" (exit 0) or "down: REASON" (exit 1)
 *   detect client|server FILE     the plugin whose detect() matches FILE's
 *                                 bytes, or "none" (exit 1)
 *   choose HOST PORT              protocol auto: "NAME HOW: WHY"
 *   connstr NAME HOST PORT [JSON] the connection string for that metadata
 * With --plugin-dir the directory is loaded first; each file it skips is one
 * line on stderr. Exit 2 on usage errors. */
#include "cn_err.h"
#include "plugins.h"
#include "probe.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_error(void *user, const char *line)
{
    fprintf(stderr, "plugin_probe: %s\n", line);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: plugin_probe [--plugin-dir DIR] list|probe|detect|choose|connstr ...\n");
    return 2;
}

static uint16_t port_arg(const char *s)
{
    long v = strtol(s, NULL, 10);
    return v > 0 && v < 65536 ? (uint16_t)v : 0;
}

static void on_probe(void *user, const char *key, const probe_result_t *res)
{
    probe_result_t *out = user;
    *out = *res;
    out->reply = NULL;
}

static int cmd_probe(const plugins_t *ps, int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const cn_plugin_t *p = plugins_find(ps, argv[0]);
    unsigned ms = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 3000;
    probe_result_t res = {.err = CN_EIO};
    if (!p) {
        fprintf(stderr, "plugin_probe: no plugin named %s\n", argv[0]);
        return 2;
    }
    probe_runner_t *r = probe_runner_new();
    if (!r || probe_runner_start(r, "probe", p, argv[1], port_arg(argv[2]), ms, on_probe, &res)) {
        probe_runner_free(r);
        fprintf(stderr, "plugin_probe: cannot start the probe\n");
        return 2;
    }
    while (probe_runner_active(r))
        probe_runner_step(r, 100);
    probe_runner_free(r);
    if (res.up) {
        printf("up\n");
        return 0;
    }
    printf("down: %s: %s\n", cn_strerror(res.err), res.why);
    return 1;
}

static int cmd_detect(const plugins_t *ps, int argc, char **argv)
{
    static uint8_t buf[CN_PLUGIN_REPLY_MAX];
    if (argc < 2)
        return usage();
    int from = !strcmp(argv[0], "server") ? CN_PLUGIN_FROM_SERVER : CN_PLUGIN_FROM_CLIENT;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        fprintf(stderr, "plugin_probe: cannot open %s\n", argv[1]);
        return 2;
    }
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    const cn_plugin_t *p = plugins_detect(ps, buf, len, from, NULL);
    printf("%s\n", p ? p->name : "none");
    return p ? 0 : 1;
}

static int cmd_choose(const plugins_t *ps, int argc, char **argv)
{
    plugins_choice_t c;
    if (argc < 2)
        return usage();
    if (plugins_choose(ps, argv[0], port_arg(argv[1]), 500, 2000, &c))
        return 1;
    printf("%s %s: %s\n", c.plugin->name, c.how, c.why);
    return 0;
}

static int cmd_connstr(const plugins_t *ps, int argc, char **argv)
{
    char out[CN_PLUGIN_CONNSTR_MAX];
    json_t *meta = NULL;
    if (argc < 3)
        return usage();
    const cn_plugin_t *p = plugins_find(ps, argv[0]);
    if (!p)
        return 2;
    if (argc > 3 && !(meta = json_loads(argv[3], 0, NULL)))
        return 2;
    int rc = plugins_connection_string(p, argv[1], port_arg(argv[2]), meta, out, sizeof(out));
    json_decref(meta);
    if (rc) {
        fprintf(stderr, "plugin_probe: %s\n", cn_strerror(rc));
        return 1;
    }
    printf("%s\n", out);
    return 0;
}

int main(int argc, char **argv)
{
    int i = 1, rc;
    plugins_t *ps = plugins_new();
    if (!ps)
        return 1;
    if (argc > 2 && !strcmp(argv[1], "--plugin-dir")) {
        plugins_load_dir(ps, argv[2], print_error, NULL);
        i = 3;
    }
    if (i >= argc) {
        plugins_free(ps);
        return usage();
    }
    const char *cmd = argv[i++];
    if (!strcmp(cmd, "list")) {
        for (size_t k = 0; k < plugins_count(ps); k++)
            printf("%s %s\n", plugins_at(ps, k)->name, plugins_origin(ps, k));
        rc = 0;
    } else if (!strcmp(cmd, "probe")) {
        rc = cmd_probe(ps, argc - i, argv + i);
    } else if (!strcmp(cmd, "detect")) {
        rc = cmd_detect(ps, argc - i, argv + i);
    } else if (!strcmp(cmd, "choose")) {
        rc = cmd_choose(ps, argc - i, argv + i);
    } else if (!strcmp(cmd, "connstr")) {
        rc = cmd_connstr(ps, argc - i, argv + i);
    } else {
        rc = usage();
    }
    plugins_free(ps);
    return rc;
}
