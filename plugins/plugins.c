/* The plugin registry and loader (see plugins.h). */
#include "plugins.h"

#include "cn_err.h"
#include "probe.h"

#include <dirent.h>
#include <stddef.h>
#include <dlfcn.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#ifndef CN_PLUGIN_DIR
#define CN_PLUGIN_DIR "/usr/local/lib/connect/plugins"
#endif

#define PLUGINS_MAX 64
#define OPTIONS_MAX 32

typedef struct entry {
    const cn_plugin_t *p;
    void *handle; /* dlopen handle, NULL for a built-in */
    char *origin; /* the file, NULL for a built-in */
} entry_t;

struct plugins {
    probe_registry_t registry; /* first: the SDK's health probes look plugins up through it */
    entry_t e[PLUGINS_MAX];
    size_t n;
};

_Static_assert(offsetof(struct plugins, registry) == 0, "probe.h: the registry comes first");

static const cn_plugin_t *const builtins[] = {
    &cn_plugin_postgresql, &cn_plugin_mysql, &cn_plugin_redis,
    &cn_plugin_mongodb,    &cn_plugin_http,  &cn_plugin_tcp,
};

plugins_t *plugins_new(void)
{
    plugins_t *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return NULL;
    ps->registry.find = plugins_find;
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
        ps->e[ps->n++].p = builtins[i];
    return ps;
}

void plugins_free(plugins_t *ps)
{
    if (!ps)
        return;
    for (size_t i = 0; i < ps->n; i++) {
        if (ps->e[i].handle)
            dlclose(ps->e[i].handle);
        free(ps->e[i].origin);
    }
    free(ps);
}

const char *plugins_default_dir(void)
{
    return CN_PLUGIN_DIR;
}

static bool name_ok(const char *name)
{
    size_t n = 0;
    if (!name || !(name[0] >= 'a' && name[0] <= 'z'))
        return false;
    for (; name[n]; n++) {
        char c = name[n];
        if (n >= CN_PLUGIN_NAME_MAX ||
            !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

int plugins_check(const cn_plugin_t *p, char *why, size_t whylen)
{
    if (!p) {
        snprintf(why, whylen, "no plugin (NULL vtable)");
        return CN_EINVAL;
    }
    if (p->abi_version != CN_PLUGIN_ABI_VERSION) {
        snprintf(why, whylen, "plugin ABI version %u, this build speaks version %u",
                 (unsigned)p->abi_version, CN_PLUGIN_ABI_VERSION);
        return CN_EVERSION;
    }
    if (p->struct_size < CN_PLUGIN_V1_SIZE) {
        snprintf(why, whylen, "vtable of %u bytes, version %u needs at least %zu",
                 (unsigned)p->struct_size, CN_PLUGIN_ABI_VERSION, (size_t)CN_PLUGIN_V1_SIZE);
        return CN_EINVAL;
    }
    if (!name_ok(p->name)) {
        snprintf(why, whylen, "bad plugin name (want [a-z][a-z0-9_-]{0,30})");
        return CN_EINVAL;
    }
    if (!p->probe_request || !p->probe_reply || !p->connection_string) {
        snprintf(why, whylen, "plugin %s lacks probe_request, probe_reply or connection_string",
                 p->name);
        return CN_EINVAL;
    }
    return 0;
}

static ssize_t index_of(const plugins_t *ps, const char *name)
{
    for (size_t i = 0; i < ps->n; i++)
        if (!strcmp(ps->e[i].p->name, name))
            return (ssize_t)i;
    return -1;
}

int plugins_load_file(plugins_t *ps, const char *path, char *err, size_t errlen)
{
    char why[256];
    int rc = CN_EINVAL;
    void *h;
    cn_plugin_entry_fn entry;
    const cn_plugin_t *p;

    dlerror();
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        size_t n = strlen(path);
        if (e && !strncmp(e, path, n) && !strncmp(e + n, ": ", 2))
            e += n + 2; /* dlerror() names the file too: say it once */
        snprintf(err, errlen, "%s: not a loadable shared object (%s)", path, e ? e : "?");
        return CN_EINVAL;
    }
    /* dlsym returns void *; POSIX guarantees it converts to a function
     * pointer, C does not, hence the copy. */
    void *sym = dlsym(h, CN_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        snprintf(err, errlen, "%s: no %s symbol: not a Connect plugin", path,
                 CN_PLUGIN_ENTRY_SYMBOL);
        goto fail;
    }
    memcpy(&entry, &sym, sizeof(entry));
    p = entry();
    rc = plugins_check(p, why, sizeof(why));
    if (rc) {
        snprintf(err, errlen, "%s: %s", path, why);
        goto fail;
    }
    ssize_t at = index_of(ps, p->name);
    if (at >= 0 && ps->e[at].handle) {
        snprintf(err, errlen, "%s: a plugin named %s is already loaded from %s", path, p->name,
                 ps->e[at].origin);
        rc = CN_ESTATE;
        goto fail;
    }
    if (at < 0 && ps->n == PLUGINS_MAX) {
        snprintf(err, errlen, "%s: too many plugins (at most %d)", path, PLUGINS_MAX);
        rc = CN_EEXHAUSTED;
        goto fail;
    }
    char *origin = strdup(path);
    if (!origin) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = CN_ENOMEM;
        goto fail;
    }
    /* A built-in of the same name is replaced in place, keeping the order
     * in which detection tries plugins. */
    entry_t *e = at >= 0 ? &ps->e[at] : &ps->e[ps->n++];
    e->p = p;
    e->handle = h;
    e->origin = origin;
    return 0;
fail:
    dlclose(h);
    return rc;
}

static int so_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 3 && !strcmp(d->d_name + n - 3, ".so");
}

int plugins_load_dir(plugins_t *ps, const char *dir, plugins_error_fn on_error, void *user)
{
    struct dirent **names = NULL;
    char line[1024], path[4096];
    int n = scandir(dir, &names, so_filter, alphasort), loaded = 0;
    if (n < 0) {
        snprintf(line, sizeof(line), "%s: cannot open the plugin directory", dir);
        if (on_error)
            on_error(user, line);
        return CN_ENOTFOUND;
    }
    for (int i = 0; i < n; i++) {
        int w = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (w < 0 || (size_t)w >= sizeof(path)) {
            snprintf(line, sizeof(line), "%s/...: path too long", dir);
            if (on_error)
                on_error(user, line);
        } else if (plugins_load_file(ps, path, line, sizeof(line)) == 0) {
            loaded++;
        } else if (on_error) {
            on_error(user, line);
        }
        free(names[i]);
    }
    free(names);
    return loaded;
}

size_t plugins_count(const plugins_t *ps)
{
    return ps->n;
}

const cn_plugin_t *plugins_at(const plugins_t *ps, size_t i)
{
    return i < ps->n ? ps->e[i].p : NULL;
}

const char *plugins_origin(const plugins_t *ps, size_t i)
{
    return i < ps->n && ps->e[i].origin ? ps->e[i].origin : "built-in";
}

const cn_plugin_t *plugins_find(const plugins_t *ps, const char *name)
{
    ssize_t i = name ? index_of(ps, name) : -1;
    return i >= 0 ? ps->e[i].p : NULL;
}

const cn_plugin_t *plugins_by_port(const plugins_t *ps, uint16_t port)
{
    if (!port)
        return NULL;
    for (size_t i = 0; i < ps->n; i++)
        for (size_t k = 0; k < CN_PLUGIN_PORTS_MAX && ps->e[i].p->default_ports[k]; k++)
            if (ps->e[i].p->default_ports[k] == port)
                return ps->e[i].p;
    return NULL;
}

const cn_plugin_t *plugins_detect(const plugins_t *ps, const uint8_t *data, size_t len, int from,
                                  bool *more)
{
    bool any_more = false;
    for (size_t i = 0; i < ps->n; i++) {
        const cn_plugin_t *p = ps->e[i].p;
        if (!p->detect)
            continue;
        int v = p->detect(data, len, from);
        if (v == CN_PLUGIN_MATCH) {
            if (more)
                *more = false;
            return p;
        }
        if (v == CN_PLUGIN_MORE && len < CN_PLUGIN_REPLY_MAX)
            any_more = true;
    }
    if (more)
        *more = any_more;
    return NULL;
}

/* ---- connection strings from JSON metadata ---------------------------- */

/* Scalar JSON as text into buf; NULL for other types. */
static const char *scalar(const json_t *v, char *buf, size_t cap)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, cap, "%.17g", json_real_value(v));
        return buf;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    return NULL;
}

int plugins_connection_string(const cn_plugin_t *p, const char *host, uint16_t port,
                              const json_t *metadata, char *out, size_t cap)
{
    cn_plugin_target_t t = {.host = host, .port = port};
    cn_plugin_meta_t m = {.tls = -1};
    cn_plugin_option_t opts[OPTIONS_MAX];
    char numbers[OPTIONS_MAX + 1][32];
    char *split = NULL;
    size_t n = 0;
    int rc;

    if (!p || !host || !out || !cap)
        return CN_EINVAL;
    if (json_is_object(metadata)) {
        const json_t *v = json_object_get(metadata, "user");
        m.user = json_is_string(v) ? json_string_value(v) : NULL;
        v = json_object_get(metadata, "database");
        if (json_is_string(v))
            m.database = json_string_value(v);
        else if (json_is_integer(v) && json_integer_value(v) >= 0)
            m.database = scalar(v, numbers[OPTIONS_MAX], sizeof(numbers[0]));
        v = json_object_get(metadata, "tls");
        if (json_is_boolean(v))
            m.tls = json_is_true(v);
        v = json_object_get(metadata, "options");
        if (json_is_object(v)) {
            const char *key;
            json_t *val;
            json_object_foreach((json_t *)v, key, val)
            {
                const char *s = scalar(val, numbers[n], sizeof(numbers[0]));
                if (s && n < OPTIONS_MAX) {
                    opts[n].key = key;
                    opts[n].value = s;
                    n++;
                }
            }
        } else if (json_is_string(v)) {
            split = strdup(json_string_value(v));
            if (!split)
                return CN_ENOMEM;
            char *save = NULL;
            for (char *kv = strtok_r(split, "&", &save); kv && n < OPTIONS_MAX;
                 kv = strtok_r(NULL, "&", &save)) {
                char *eq = strchr(kv, '=');
                if (eq)
                    *eq++ = '\0';
                opts[n].key = kv;
                opts[n].value = eq ? eq : "";
                n++;
            }
        }
        m.options = opts;
        m.n_options = n;
    }
    rc = p->connection_string(&t, &m, out, cap);
    free(split);
    if (rc == CN_PLUGIN_ETOOBIG)
        return CN_ETOOBIG;
    return rc ? CN_EINVAL : 0;
}
