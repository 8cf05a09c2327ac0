/* connect-hub: a table of subcommands; each lives in its own cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *synopsis;
} commands[] = {
    {"init", hub_cmd_init,
     "--db PATH [--json]   create the database, a workspace and an admin token"},
    {"serve", hub_cmd_serve,
     "--db PATH [--listen HOST:PORT] ...   serve the API and agent endpoint"},
};

static void usage(FILE *out)
{
    fputs("usage: connect-hub <command> [options]\n\ncommands:\n", out);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-6s %s\n", commands[i].name, commands[i].synopsis);
    fputs("\nRun 'connect-hub <command> --help' for a command's options.\n", out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("connect-hub: missing command (try 'connect-hub --help')\n", stderr);
        return HUB_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return HUB_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "connect-hub: unknown command '%s' (try 'connect-hub --help')\n", argv[1]);
    return HUB_EXIT_USAGE;
}
