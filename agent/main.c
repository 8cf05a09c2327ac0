/* connect: the agent CLI. Subcommands arrive with the hub/agent issue. */
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fputs("usage: connect <command> [options]\n"
          "\n"
          "commands:\n"
          "  enroll, agent (up), expose, reach, share (link), ls, status, pause, resume, rm,\n"
          "  events, app-server\n"
          "\n"
          "Run 'connect <command> --help' for a command's options.\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "connect: unknown command '%s' (try --help)\n", argv[1]);
    return 2;
}
