/* connect: the agent CLI. A table of subcommands, each in its own cmd_*.c. */
#include <sodium.h>
#include <stdio.h>
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
    {"reach", cmd_not_yet, "TUNNEL|SHARE_URL", "not yet available"},
    {"share", cmd_share, "TUNNEL [options]",
     "create a share link for an HTTP tunnel (alias: link)"},
    {"link", cmd_share, NULL, NULL},
    {"app-server", cmd_not_yet, "[options]", "not yet available"},
};

static void usage(FILE *out)
{
    fputs("usage: connect <command> [options]\n\ncommands:\n", out);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (commands[i].args)
            fprintf(out, "  %-10s %-26s %s\n", commands[i].name, commands[i].args,
                    commands[i].what);
    fputs("\nEvery command takes --help and --json. The hub URL and API token come from\n"
          "--hub/--token, CONNECT_HUB/CONNECT_TOKEN, or the config file written by\n"
          "'connect enroll' (--config FILE or CONNECT_CONFIG chooses it).\n"
          "CONNECT_LOG=debug|info|warn|error sets the log level.\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("connect: missing command (try 'connect --help')\n", stderr);
        return AGENT_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return AGENT_EXIT_OK;
    }
    if (sodium_init() < 0) {
        fputs("connect: cannot initialise libsodium\n", stderr);
        return AGENT_EXIT_FAIL;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "connect: unknown command '%s' (try 'connect --help')\n", argv[1]);
    return AGENT_EXIT_USAGE;
}
