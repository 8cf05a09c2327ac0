/* Table-driven option parsing for the `connect` subcommands.
 *
 * Each command declares its options as a table; agent_args_parse() fills
 * the destinations, collects positional arguments and says exactly what is
 * wrong in one sentence; agent_args_help() prints the same table as help.
 * Accepted forms: `--name value`, `--name=value`, flags `--name`, `-h` and
 * `--help`, and `--` to end options. An option given twice keeps the last
 * value. */
#ifndef AGENT_ARGS_H
#define AGENT_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum agent_opt_kind {
    AGENT_OPT_FLAG,   /* dest: bool * */
    AGENT_OPT_STRING, /* dest: const char ** (points into argv) */
    AGENT_OPT_UINT,   /* dest: unsigned long *, within [min, max] */
};

typedef struct agent_opt {
    const char *name; /* long name without the dashes; NULL ends the table */
    int kind;         /* enum agent_opt_kind */
    void *dest;
    unsigned long min, max; /* AGENT_OPT_UINT */
    const char *arg;        /* value placeholder for help, e.g. "N" */
    const char *help;
} agent_opt_t;

/* The options every command takes. */
typedef struct agent_common {
    const char *config;
    const char *hub;
    const char *token;
    bool json;
} agent_common_t;

#define AGENT_COMMON_OPTIONS(c)                                                                    \
    {"config",                                                                                     \
     AGENT_OPT_STRING,                                                                             \
     &(c)->config,                                                                                 \
     0,                                                                                            \
     0,                                                                                            \
     "FILE",                                                                                       \
     "config file (default: $CONNECT_CONFIG, else ~/.config/connect/config.json)"},                \
        {"hub",                                                                                    \
         AGENT_OPT_STRING,                                                                         \
         &(c)->hub,                                                                                \
         0,                                                                                        \
         0,                                                                                        \
         "URL",                                                                                    \
         "hub URL, e.g. http://127.0.0.1:8080 (default: $CONNECT_HUB, else the config)"},          \
        {"token",                                                                                  \
         AGENT_OPT_STRING,                                                                         \
         &(c)->token,                                                                              \
         0,                                                                                        \
         0,                                                                                        \
         "TOKEN",                                                                                  \
         "API token (default: $CONNECT_TOKEN, else the config; argv is visible to other users)"},  \
    {                                                                                              \
        "json", AGENT_OPT_FLAG, &(c)->json, 0, 0, NULL, "print JSON instead of text"               \
    }

enum {
    AGENT_ARGS_OK = 0,
    AGENT_ARGS_HELP = 1,   /* -h/--help was given: print help, exit 0 */
    AGENT_ARGS_ERROR = -1, /* usage error: err says why */
};

/* Parses argv[1..argc) (argv[0] is the command name). Positional arguments
 * go to pos[0..max_pos) and their count to *npos; more than max_pos is an
 * error, fewer than min_pos too. */
int agent_args_parse(const agent_opt_t *opts, int argc, char **argv, const char **pos,
                     size_t min_pos, size_t max_pos, size_t *npos, char *err, size_t errlen);

/* Prints "usage: connect CMD SYNOPSIS", the description and the options. */
void agent_args_help(FILE *out, const char *cmd, const char *synopsis, const char *description,
                     const agent_opt_t *opts);

#endif
