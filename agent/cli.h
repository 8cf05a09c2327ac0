/* What the `connect` subcommands share: exit codes, the one-line error
 * convention, signals, logging set-up, REST client construction, tunnel
 * lookup by id or name, and output (JSON lines, tables, tunnel blocks).
 *
 * Each command takes the arguments after `connect` (argv[0] is the command
 * name), prints its result on stdout and, on failure, exactly one line on
 * stderr ("connect: ..."), and returns the exit status. */
#ifndef AGENT_CLI_H
#define AGENT_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"

struct json_t;
struct cn_api;

#define AGENT_EXIT_OK CN_EXIT_OK
#define AGENT_EXIT_FAIL CN_EXIT_FAIL
#define AGENT_EXIT_USAGE CN_EXIT_USAGE

/* Raised by SIGINT/SIGTERM; cli_force by a second one. */
extern volatile sig_atomic_t cli_stop;
extern volatile sig_atomic_t cli_force;
/* cn_api cancel checks (cn_api_cancel_fn): nonzero once cli_stop,
 * respectively cli_force, is raised. The argument is unused. */
int cli_stop_raised(void *unused);
int cli_force_raised(void *unused);

int cmd_enroll(int argc, char **argv);
int cmd_agent(int argc, char **argv);
int cmd_expose(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_share(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_reach(int argc, char **argv);
int cmd_app_server(int argc, char **argv);

/* `connect [GLOBAL OPTIONS] COMMAND [ARGS]`, as git, docker and kubectl
 * read it: every command's table takes the common options, so those given
 * before the command move behind its name ("connect --config F ls" runs as
 * "connect ls --config F"). CN_ARGS_OK with *out (argv[0] the command; the
 * caller frees the array, not the strings) and *out_argc; CN_ARGS_HELP for
 * a --help before the command; CN_ARGS_ERROR (usage: unknown or bad
 * option, no command) or CN_ENOMEM with err. */
int cli_hoist_global_options(int argc, char **argv, char ***out, int *out_argc, char *err,
                             size_t errlen);

/* "connect: MSG" on stderr; returns AGENT_EXIT_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "connect: CMD: MSG (try 'connect CMD --help')"; returns AGENT_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Installs SIGINT/SIGTERM handlers (no SA_RESTART, so a blocking poll
 * returns) and ignores SIGPIPE. */
void cli_signals(void);
/* Log threshold for a command: --log-level (`given`, agent_common_t's
 * 1 + CN_LOG_* or 0), else CONNECT_LOG, else `level`; lws's own logging
 * goes through cn_log at debug level only. */
void cli_logging(int given, int level);

/* A REST client for cfg's hub and token, cancelled by cli_stop when
 * `cancellable`. NULL after printing the error (returns via *status). */
struct cn_api *cli_api(const agent_config_t *cfg, bool cancellable);

/* A REST client, cancelled by cli_stop, for the hub and token of the
 * config `c` names (both needed); the config itself is wiped at once. NULL
 * after printing the error, with the exit status in *exit_status. */
struct cn_api *cli_hub_api(const agent_common_t *c, int *exit_status);

/* The start of a long-running command that talks to the hub: logging
 * (default info), signals, the config with `need` (AGENT_NEED_*), and a
 * REST client cancelled by Ctrl-C. -1 to go on, with *cfg and *api set
 * (the caller wipes and frees them); else the exit status, nothing held. */
int cli_begin(const agent_common_t *c, unsigned need, agent_config_t *cfg, struct cn_api **api);

/* Sleeps ms in slices of 100 ms, returning early on Ctrl-C (cli_stop):
 * the pause between polls of --follow. */
void cli_nap(unsigned ms);

/* Finds a tunnel by id (UUID) or exact name. 0 and *out, or a negative
 * CN_E* with err. */
int cli_find_tunnel(struct cn_api *api, const char *ref, struct json_t **out, char *err,
                    size_t errlen);

/* The shared front of the one-tunnel commands (status, pause, resume, rm):
 * parses `CMD ID|NAME` with the common options into *c, prints --help
 * (`about`), resolves the config and finds the tunnel. Returns 1 with *api
 * and *tunnel set (the caller frees both), or 0 when the command is already
 * over, with its exit status in *exit_status. */
int cli_tunnel_command(const char *cmd, const char *about, int argc, char **argv, agent_common_t *c,
                       struct cn_api **api, struct json_t **tunnel, int *exit_status);

/* ---- output ---- */

/* One compact JSON value and a newline; flushes. */
void out_json(const struct json_t *v);
/* The string member `key`, or `dflt` when absent/not a string. */
const char *jstr(const struct json_t *obj, const char *key, const char *dflt);
/* "URL", "hub port N" or "-": where a tunnel is reached. */
void out_endpoint(const struct json_t *t, char *buf, size_t len);
/* A tunnel as an indented human block. */
void out_tunnel(FILE *out, const struct json_t *t);

/* A text table with aligned columns; cells are sanitised and truncated. */
typedef struct out_table {
    size_t ncols, nrows, cap;
    char **cells; /* nrows * ncols, row 0 is the header */
} out_table_t;
int out_table_init(out_table_t *t, size_t ncols, const char *const *header);
int out_table_add(out_table_t *t, const char *const *row);
void out_table_print(FILE *out, const out_table_t *t);
void out_table_free(out_table_t *t);
/* Copies s into out, replacing control characters and cutting at max
 * characters (with ".." at the end). */
void out_sanitize(const char *s, char *out, size_t outlen, size_t max);

/* The protocol plugins: the built-ins, then the *.so files of `dir` (NULL:
 * the install directory, when it exists); each file skipped is one warning.
 * NULL when out of memory; free with plugins_free(). */
struct plugins *cli_plugins(const char *dir);

#endif
