/* The protocol plugins a process knows: the six built-ins, always present,
 * plus shared objects loaded from a plugin directory. Used by connect-hub
 * (connection strings) and connect (choosing a plugin, health probes).
 *
 * Loading rules (docs/plugins.md)
 * - A plugin directory is scanned for "*.so" files in name order; each is
 *   dlopen()ed (RTLD_NOW | RTLD_LOCAL), its cn_plugin_entry symbol called,
 *   and the vtable checked (plugins_check()) before anything else is read.
 * - A file that is not a shared object, has no entry symbol, speaks another
 *   ABI version or has a malformed vtable is skipped with one line through
 *   the error callback; the process goes on.
 * - A loaded plugin with a built-in's name replaces that built-in (so the
 *   installed shared objects of the six built-ins replace themselves, and a
 *   fixed plugin can be dropped in without rebuilding). A second loaded
 *   plugin with a name already loaded from a file is refused.
 * - The directory is trusted: loading a shared object runs its code.
 *
 * Conventions
 * - Functions return 0 (or a count) or a negative CN_E* code.
 * - A plugins_t is used from one thread at a time. The vtables it hands out
 *   stay valid until plugins_free().
 * - Strings passed in are borrowed for the call. */
#ifndef PLUGINS_H
#define PLUGINS_H

#include <connect/plugin.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_t;

typedef struct plugins plugins_t;

/* The built-in vtables. */
extern const cn_plugin_t cn_plugin_postgresql;
extern const cn_plugin_t cn_plugin_mysql;
extern const cn_plugin_t cn_plugin_redis;
extern const cn_plugin_t cn_plugin_mongodb;
extern const cn_plugin_t cn_plugin_http;
extern const cn_plugin_t cn_plugin_tcp;

/* A set holding the built-ins; NULL when out of memory. */
plugins_t *plugins_new(void);
/* Unloads every shared object; NULL is fine. */
void plugins_free(plugins_t *ps);

/* The directory `--plugin-dir` defaults to (set at build time from the
 * install prefix, e.g. /usr/local/lib/connect/plugins). */
const char *plugins_default_dir(void);

/* Receives one line per file that was not loaded: "PATH: reason". */
typedef void (*plugins_error_fn)(void *user, const char *line);

/* Loads every *.so in `dir` (see the rules above). Returns how many were
 * loaded, or CN_ENOTFOUND when the directory cannot be opened (the error
 * callback gets that line too). */
int plugins_load_dir(plugins_t *ps, const char *dir, plugins_error_fn on_error, void *user);

/* Loads one shared object. Returns 0, or a negative code with `err` holding
 * "PATH: reason": CN_EINVAL (not loadable, no entry point, bad vtable),
 * CN_EVERSION (another ABI version), CN_ESTATE (the name
 * is taken by another loaded file), CN_ENOMEM. */
int plugins_load_file(plugins_t *ps, const char *path, char *err, size_t errlen);

/* Checks a vtable as the loader does: ABI version and struct size first,
 * then name syntax, ports and required functions (detect may be NULL).
 * Returns 0, CN_EVERSION or CN_EINVAL with a reason in `why`. */
int plugins_check(const cn_plugin_t *p, char *why, size_t whylen);

size_t plugins_count(const plugins_t *ps);
/* The i-th plugin (registry order: built-ins, then loaded files), or NULL. */
const cn_plugin_t *plugins_at(const plugins_t *ps, size_t i);
/* "built-in" or the path the i-th plugin was loaded from. */
const char *plugins_origin(const plugins_t *ps, size_t i);
/* By name; NULL when unknown. */
const cn_plugin_t *plugins_find(const plugins_t *ps, const char *name);
/* The first plugin listing `port` among its default ports, or NULL. */
const cn_plugin_t *plugins_by_port(const plugins_t *ps, uint16_t port);
/* The first plugin whose detect() matches the first `len` bytes seen in
 * direction `from`, or NULL; *more (optional) tells whether some plugin
 * still needs more bytes to decide. */
const cn_plugin_t *plugins_detect(const plugins_t *ps, const uint8_t *data, size_t len, int from,
                                  bool *more);

/* The connection string of plugin `p` for host:port, taking user,
 * database, tls and options from `metadata` (a JSON object or NULL):
 *   user      string
 *   database  string, or a non-negative integer (Redis "0")
 *   tls       boolean
 *   options   object of string/number/boolean values, in key order as
 *             stored, or a string "k=v&k2=v2" (split at & and the first =)
 * Fields of other types are ignored. Returns 0, CN_EINVAL or CN_ETOOBIG. */
int plugins_connection_string(const cn_plugin_t *p, const char *host, uint16_t port,
                              const struct json_t *metadata, char *out, size_t cap);

/* How `protocol: auto` chose a plugin. */
typedef struct plugins_choice {
    const cn_plugin_t *plugin; /* never NULL after a 0 return: tcp at worst */
    const char *how;           /* "greeting", "probe", "port" or "fallback" */
    char why[2 * CN_PLUGIN_WHY_MAX];
} plugins_choice_t;

/* Chooses the plugin for a target whose protocol is "auto": by probe, then
 * by port. First it connects and waits up to greeting_ms for the server to
 * speak: a greeting some plugin detects (MySQL) decides; a greeting none
 * detects skips the client-first probes (they would only confuse such a
 * server). A silent server gets every client-first plugin's probe at once,
 * each bounded by probe_ms; the plugin that is up wins (the one owning the
 * target's port first, then registry order). Otherwise the port decides,
 * and tcp is the fallback. Blocks for at most greeting_ms + probe_ms: call
 * it before an event loop runs, never from one. Returns 0 or CN_ENOMEM. */
int plugins_choose(const plugins_t *ps, const char *host, uint16_t port, unsigned greeting_ms,
                   unsigned probe_ms, plugins_choice_t *out);

#endif
