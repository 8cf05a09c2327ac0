/* Table-driven command-line options for both binaries (`connect` and
 * `connect-hub`): internal to libconnect, not part of the public API.
 *
 * Each command declares its options as a table; cn_args_parse() fills the
 * destinations, collects positional arguments and says exactly what is
 * wrong in one sentence; cn_args_help() prints the same table as help.
 * cn_args_front() does both the way every command of both binaries answers:
 * help on stdout (exit 0), one usage line on stderr (exit 2).
 *
 * Accepted forms: `--name value`, `--name=value`, flags `--name`, `-h` and
 * `--help` (anywhere before `--`, winning over any error), and `--` to end
 * options. An option given twice keeps the last value, unless its kind has
 * CN_OPT_ONCE. Option values point into argv. */
#ifndef CN_ARGS_H
#define CN_ARGS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Exit statuses shared by both binaries. */
#define CN_EXIT_OK 0
#define CN_EXIT_FAIL 1
#define CN_EXIT_USAGE 2

enum cn_opt_kind {
    CN_OPT_FLAG,   /* dest: bool * */
    CN_OPT_STRING, /* dest: const char ** (non-empty, points into argv) */
    CN_OPT_UINT,   /* dest: unsigned long *, within [min, max] */
    CN_OPT_CHOICE, /* dest: int *, 1 + the index of the value among arg's "a|b|c"
                      words (so a zeroed int means "not given") */
    CN_OPT_KIND_MASK = 0xff,
    CN_OPT_ONCE = 0x100, /* or'ed into kind: giving the option twice is an error */
    /* or'ed into a CN_OPT_STRING: the value is a secret, which other users
     * of the machine can read in argv (ps, /proc/PID/cmdline). Giving it
     * (other than "-", read from stdin) prints one warning on stderr, once
     * per process, naming --NAME-file and "--NAME -" instead. */
    CN_OPT_SECRET = 0x200,
};

typedef struct cn_opt {
    const char *name; /* long name without the dashes; NULL ends the table */
    int kind;         /* enum cn_opt_kind, optionally | CN_OPT_ONCE */
    void *dest;
    unsigned long min, max; /* CN_OPT_UINT */
    const char *arg;        /* value placeholder for help ("N"); CN_OPT_CHOICE: "a|b|c" */
    const char *help;
} cn_opt_t;

#define CN_OPT_END                                                                                 \
    {                                                                                              \
        NULL, 0, NULL, 0, 0, NULL, NULL                                                            \
    }

enum {
    CN_ARGS_OK = 0,
    CN_ARGS_HELP = 1,   /* -h/--help was given: print help, exit 0 */
    CN_ARGS_ERROR = -1, /* usage error: err says why */
};

/* Parses argv[1..argc) (argv[0] is the command name). Positional arguments
 * go to pos[0..max_pos) and their count to *npos (optional); more than
 * max_pos is an error, fewer than min_pos too. At most 64 options. */
int cn_args_parse(const cn_opt_t *opts, int argc, char **argv, const char **pos, size_t min_pos,
                  size_t max_pos, size_t *npos, char *err, size_t errlen);

/* Parses the options before the first positional argument (the
 * subcommand) in argv[1..argc), the way git, docker and kubectl read global
 * options: *cmd_index gets that argument's index (argc when there is none).
 * CN_ARGS_OK, CN_ARGS_HELP for -h/--help, or CN_ARGS_ERROR with err. */
int cn_args_leading(const cn_opt_t *opts, int argc, char **argv, int *cmd_index, char *err,
                    size_t errlen);

/* Prints "usage: PROG CMD SYNOPSIS", the description and the options. */
void cn_args_help(FILE *out, const char *prog, const char *cmd, const char *synopsis,
                  const char *description, const cn_opt_t *opts);

/* A command's description for cn_args_front(). */
typedef struct cn_args_cmd {
    const char *prog;     /* "connect", "connect-hub" */
    const char *name;     /* the subcommand, as typed */
    const char *synopsis; /* after "usage: PROG NAME " */
    const char *description;
    const cn_opt_t *opts;
    size_t min_pos, max_pos;
} cn_args_cmd_t;

/* Parses like cn_args_parse() and answers the two early cases itself:
 * --help prints help on stdout (CN_ARGS_HELP), a usage error prints
 * cn_args_usage_error() on stderr (CN_ARGS_ERROR). cn_args_exit() turns
 * either into the exit status. */
int cn_args_front(const cn_args_cmd_t *cmd, int argc, char **argv, const char **pos, size_t *npos);
/* CN_EXIT_OK for CN_ARGS_HELP (and CN_ARGS_OK), CN_EXIT_USAGE otherwise. */
int cn_args_exit(int rc);

/* "WHO: MSG" on stderr as one line (line breaks in MSG become spaces),
 * after flushing stdout; returns CN_EXIT_FAIL. WHO is e.g. "connect" or
 * "connect-hub serve". */
int cn_args_vfail(const char *who, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* "PROG: CMD: MSG (try 'PROG CMD --help')" on stderr, one line; returns
 * CN_EXIT_USAGE. */
int cn_args_usage_error(const char *prog, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
