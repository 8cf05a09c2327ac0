/* connect-hub's subcommands. Each takes the arguments after the command
 * name (argv[0] is the command name), prints its result on stdout, at most
 * one line on stderr on failure, and returns the process exit status:
 * 0 success, 1 failure, 2 usage error. */
#ifndef HUB_CMD_H
#define HUB_CMD_H

#define HUB_EXIT_OK 0
#define HUB_EXIT_FAIL 1
#define HUB_EXIT_USAGE 2

int hub_cmd_init(int argc, char **argv);
int hub_cmd_serve(int argc, char **argv);

#endif
