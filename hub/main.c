/* connect-hub: entry point. Subcommands arrive with the hub issue. */
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fputs("usage: connect-hub <command> [options]\n"
          "\n"
          "commands:\n"
          "  init   --db PATH [--json]            create the database, a workspace and an admin "
          "token\n"
          "  serve  --db PATH --listen HOST:PORT  serve the API, agent endpoint and public edge\n"
          "\n"
          "Run 'connect-hub <command> --help' for a command's options.\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "connect-hub: unknown command '%s' (try --help)\n", argv[1]);
    return 2;
}
