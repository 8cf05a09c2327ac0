/* connect-hub's subcommands. Each takes the arguments after the command
 * name (argv[0] is the command name), prints its result on stdout, at most
 * one line on stderr on failure, and returns the process exit status:
 * 0 success, 1 failure, 2 usage error. */
#ifndef HUB_CMD_H
#define HUB_CMD_H

#include "cn_args.h"

/* The same statuses as `connect`'s. Usage errors are printed by
 * cn_args_front()/cn_args_usage_error(), like the agent's. */
#define HUB_EXIT_OK CN_EXIT_OK
#define HUB_EXIT_FAIL CN_EXIT_FAIL
#define HUB_EXIT_USAGE CN_EXIT_USAGE

/* "error|warn|info|debug": the order of enum cn_log_level. */
#define HUB_LOG_LEVELS "error|warn|info|debug"

int hub_cmd_init(int argc, char **argv);
int hub_cmd_serve(int argc, char **argv);

/* "connect-hub CMD: MSG" on stderr, one line; returns HUB_EXIT_FAIL. */
int hub_cmd_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Log threshold: --log-level (`given`: 0, or 1 + CN_LOG_*) wins over
 * CONNECT_LOG, which wins over the default (info). */
void hub_cmd_logging(int given);

#endif
