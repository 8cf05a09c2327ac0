/* connect: the agent CLI. A table of subcommands, each in its own cmd_*.c. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *args; /* NULL: an alias, not listed */
    const char *what;
} commands[] = {
    {"enroll", cmd_enroll, "--hub URL --token ENROLL", "make this machine an agent of the hub"},
    {"agent", cmd_agent, "", "run the agent in the foreground (alias: up)"},
    {"up", cmd_agent, NULL, NULL},
    {"expose", cmd_expose, "HOST:PORT|PORT [options]", "expose a local service through the hub"},
    {"ls", cmd_ls, "", "list tunnels"},
    {"status", cmd_status, "ID|NAME", "show one tunnel"},
    {"pause", cmd_pause, "ID|NAME", "pause a tunnel"},
    {"resume", cmd_resume, "ID|NAME", "resume a paused tunnel"},
    {"rm", cmd_rm, "ID|NAME", "delete a tunnel"},
    {"events", cmd_events, "[--follow] [--tunnel ID]", "lifecycle events"},
    {"reach", cmd_reach, "TUNNEL [--port N]", "reach a tunnel of the workspace on a local port"},
    {"share", cmd_share, "TUNNEL [options]",
     "create a share link for an HTTP tunnel (alias: link)"},
    {"link", cmd_share, NULL, NULL},
    {"inspect", cmd_inspect, "TUNNEL [--follow]", "recorded HTTP requests of a tunnel"},
    {"replay", cmd_replay, "RID", "send a recorded HTTP request again"},
    {"app-server", cmd_app_server, "[--host H] [--port N]", "local control plane for tunnels"},
};

static void usage(FILE *out)
{
    fputs("usage: connect <command> [options]\n\ncommands:\n", out);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (commands[i].args)
            fprintf(out, "  %-10s %-26s %s\n", commands[i].name, commands[i].args,
                    commands[i].what);
    fputs("\nglobal options (before or after the command):\n"
          "  --config FILE      config file (default: $CONNECT_CONFIG, else\n"
          "                     ~/.config/connect/config.json)\n"
          "  --hub URL          hub URL (default: $CONNECT_HUB, else the config)\n"
          "  --token TOKEN      API token (default: $CONNECT_TOKEN, else the config)\n"
          "  --json             print JSON instead of text\n"
          "  --log-level LEVEL  error|warn|info|debug (default: $CONNECT_LOG)\n"
          "\nEvery command takes --help. 'connect enroll' writes the config file.\n",
          out);
}

static int run(int argc, char **argv)
{
    if (!strcmp(argv[0], "help")) {
        usage(stdout);
        return AGENT_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[0], commands[i].name))
            return commands[i].run(argc, argv);
    fprintf(stderr, "connect: unknown command '%s' (try 'connect --help')\n", argv[0]);
    return AGENT_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fputs("connect: cannot initialise libsodium\n", stderr);
        return AGENT_EXIT_FAIL;
    }
    char **v = NULL, err[512];
    int n = 0;
    int rc = cli_hoist_global_options(argc, argv, &v, &n, err, sizeof(err));
    if (rc == CN_ARGS_HELP) {
        usage(stdout);
        return AGENT_EXIT_OK;
    }
    if (rc == CN_ARGS_ERROR) {
        fprintf(stderr, "connect: %s (try 'connect --help')\n", err);
        return AGENT_EXIT_USAGE;
    }
    if (rc < 0)
        return cli_fail("%s", err);
    int status = run(n, v);
    free(v);
    return status;
}
