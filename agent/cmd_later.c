/* Commands of the contract that later issues implement: they are listed
 * in `connect --help` and answer with a clear error meanwhile. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    const char *synopsis;
    const char *what;
} later[] = {
    {"app-server", "[--host 127.0.0.1] [--port 7778] [--token T]",
     "Runs the local control plane for process-owned tunnels."},
};

int cmd_not_yet(int argc, char **argv)
{
    const char *name = argv[0];
    for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
        if (strcmp(later[i].name, name) != 0)
            continue;
        for (int a = 1; a < argc; a++) {
            if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
                printf("usage: connect %s %s\n\n%s\n\nNot yet available in this version.\n", name,
                       later[i].synopsis, later[i].what);
                return AGENT_EXIT_OK;
            }
        }
        break;
    }
    return cli_fail("'%s' is not yet available in this version", name);
}
