/* connect-hub: entry point, a table of subcommands. */
#include <stdio.h>
#include <string.h>

#include "cmd_serve.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"serve", hub_cmd_serve, "serve the API, agent endpoint and public edge"},
};

static void usage(FILE *out)
{
    fputs("usage: connect-hub <command> [options]\n\ncommands:\n", out);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-6s %s\n", commands[i].name, commands[i].summary);
    fputs("\nRun 'connect-hub <command> --help' for a command's options.\n", out);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "connect-hub: unknown command '%s' (try --help)\n", argv[1]);
    return 2;
}
