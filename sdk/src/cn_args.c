/* Option tables: parsing and help (see cn_args.h). */
#include "cn_args.h"

#include "cn_errmsg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#define MAX_OPTS 64

static bool table_fits(const cn_opt_t *opts)
{
    size_t n = 0;
    for (const cn_opt_t *o = opts; o && o->name; o++)
        n++;
    return n <= MAX_OPTS;
}

static const cn_opt_t *find(const cn_opt_t *opts, const char *name, size_t len)
{
    for (const cn_opt_t *o = opts; o && o->name; o++)
        if (strlen(o->name) == len && !memcmp(o->name, name, len))
            return o;
    return NULL;
}

static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    size_t len = strlen(s);
    if (len == 0 || len > 19 || strspn(s, "0123456789") != len)
        return false;
    unsigned long long v = 0;
    for (const char *p = s; *p; p++)
        v = v * 10 + (unsigned)(*p - '0');
    if (v < min || v > max)
        return false;
    *out = (unsigned long)v;
    return true;
}

/* The index of `v` among the '|'-separated words of `choices`, or -1. */
static int choice_index(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    int i = 0;
    for (const char *p = choices; p && *p; i++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vl && !memcmp(p, v, n))
            return i;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

/* One warning per process, however many secrets or parses (a global
 * option is parsed twice: before and after the command). */
static bool warned_secret;

static void warn_secret(const char *name)
{
    if (warned_secret)
        return;
    warned_secret = true;
    fflush(stdout);
    fprintf(stderr,
            "%s: warning: --%s on the command line is visible to other users of this machine "
            "(ps); use --%s-file FILE or --%s - (standard input)\n",
            program_invocation_short_name, name, name, name);
}

static int set_value(const cn_opt_t *o, const char *v, char *err, size_t errlen)
{
    switch (o->kind & CN_OPT_KIND_MASK) {
    case CN_OPT_STRING:
        if (!*v)
            return cn_errf(CN_ARGS_ERROR, err, errlen, "--%s needs a non-empty value", o->name);
        if ((o->kind & CN_OPT_SECRET) && strcmp(v, "-") != 0)
            warn_secret(o->name);
        *(const char **)o->dest = v;
        return 0;
    case CN_OPT_UINT:
        if (!parse_uint(v, o->min, o->max, (unsigned long *)o->dest))
            return cn_errf(CN_ARGS_ERROR, err, errlen,
                           "--%s must be an integer between %lu and %lu", o->name, o->min, o->max);
        return 0;
    case CN_OPT_CHOICE: {
        int i = choice_index(o->arg, v);
        if (i < 0)
            return cn_errf(CN_ARGS_ERROR, err, errlen, "--%s must be one of %s", o->name, o->arg);
        *(int *)o->dest = i + 1; /* 0 stays "not given" */
        return 0;
    }
    default:
        return cn_errf(CN_ARGS_ERROR, err, errlen, "--%s takes no value", o->name);
    }
}

/* One "--name[=value]" at argv[*i]; may consume the next argument. */
static int parse_option(const cn_opt_t *opts, bool seen[MAX_OPTS], int argc, char **argv, int *i,
                        char *err, size_t errlen)
{
    const char *name = argv[*i] + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const cn_opt_t *o = find(opts, name, len);
    if (!o)
        return cn_errf(CN_ARGS_ERROR, err, errlen, "unknown option '--%.*s'", (int)len, name);
    size_t idx = (size_t)(o - opts);
    if ((o->kind & CN_OPT_ONCE) && seen[idx])
        return cn_errf(CN_ARGS_ERROR, err, errlen, "--%s is given twice", o->name);
    seen[idx] = true;
    if ((o->kind & CN_OPT_KIND_MASK) == CN_OPT_FLAG) {
        if (eq)
            return cn_errf(CN_ARGS_ERROR, err, errlen, "--%s takes no value", o->name);
        *(bool *)o->dest = true;
        return 0;
    }
    const char *v = eq ? eq + 1 : NULL;
    if (!v) {
        if (*i + 1 >= argc)
            return cn_errf(CN_ARGS_ERROR, err, errlen, "--%s needs a value", o->name);
        v = argv[++*i];
    }
    return set_value(o, v, err, errlen);
}

int cn_args_parse(const cn_opt_t *opts, int argc, char **argv, const char **pos, size_t min_pos,
                  size_t max_pos, size_t *npos, char *err, size_t errlen)
{
    bool seen[MAX_OPTS] = {false};
    size_t n = 0;
    bool only_pos = false;
    if (!table_fits(opts))
        return cn_errf(CN_ARGS_ERROR, err, errlen, "too many options in the table");
    /* --help anywhere before "--" wins over any error. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return CN_ARGS_HELP;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = true;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] == '-') {
            if (parse_option(opts, seen, argc, argv, &i, err, errlen) < 0)
                return CN_ARGS_ERROR;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0')
            return cn_errf(CN_ARGS_ERROR, err, errlen, "unknown option '%s'", a);
        if (n >= max_pos)
            return cn_errf(CN_ARGS_ERROR, err, errlen, "unexpected argument '%s'", a);
        pos[n++] = a;
    }
    if (n < min_pos)
        return cn_errf(CN_ARGS_ERROR, err, errlen, "missing argument");
    if (npos)
        *npos = n;
    return CN_ARGS_OK;
}

int cn_args_leading(const cn_opt_t *opts, int argc, char **argv, int *cmd_index, char *err,
                    size_t errlen)
{
    bool seen[MAX_OPTS] = {false};
    if (!table_fits(opts))
        return cn_errf(CN_ARGS_ERROR, err, errlen, "too many options in the table");
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return CN_ARGS_HELP;
        if (a[1] != '-' || a[2] == '\0')
            return cn_errf(CN_ARGS_ERROR, err, errlen, "unknown option '%s'", a);
        if (parse_option(opts, seen, argc, argv, &i, err, errlen) < 0)
            return CN_ARGS_ERROR;
    }
    *cmd_index = i;
    return CN_ARGS_OK;
}

void cn_args_help(FILE *out, const char *prog, const char *cmd, const char *synopsis,
                  const char *description, const cn_opt_t *opts)
{
    fprintf(out, "usage: %s %s %s\n\n%s\n", prog, cmd, synopsis, description);
    if (!opts || !opts->name)
        return;
    /* One column wide enough for the longest "--name ARG". */
    int width = (int)strlen("-h, --help");
    for (const cn_opt_t *o = opts; o->name; o++) {
        int w = (int)(2 + strlen(o->name) + (o->arg ? 1 + strlen(o->arg) : 0));
        if (w > width && w <= 40)
            width = w;
    }
    fputs("\noptions:\n", out);
    for (const cn_opt_t *o = opts; o->name; o++) {
        char left[96];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(out, "  %-*s %s\n", width, left, o->help);
    }
    fprintf(out, "  %-*s %s\n", width, "-h, --help", "show this help");
}

/* vsnprintf with line breaks turned into spaces: one line, whatever the
 * message carried. */
static void one_line(char *line, size_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void one_line(char *line, size_t len, const char *fmt, va_list ap)
{
    vsnprintf(line, len, fmt, ap);
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

int cn_args_vfail(const char *who, const char *fmt, va_list ap)
{
    char line[1024];
    one_line(line, sizeof(line), fmt, ap);
    fflush(stdout);
    fprintf(stderr, "%s: %s\n", who, line);
    return CN_EXIT_FAIL;
}

int cn_args_usage_error(const char *prog, const char *cmd, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    one_line(line, sizeof(line), fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "%s: %s: %s (try '%s %s --help')\n", prog, cmd, line, prog, cmd);
    return CN_EXIT_USAGE;
}

int cn_args_front(const cn_args_cmd_t *cmd, int argc, char **argv, const char **pos, size_t *npos)
{
    char err[512];
    int rc = cn_args_parse(cmd->opts, argc, argv, pos, cmd->min_pos, cmd->max_pos, npos, err,
                           sizeof(err));
    if (rc == CN_ARGS_HELP) {
        cn_args_help(stdout, cmd->prog, cmd->name, cmd->synopsis, cmd->description, cmd->opts);
        fflush(stdout);
    } else if (rc < 0) {
        cn_args_usage_error(cmd->prog, cmd->name, "%s", err);
    }
    return rc;
}

int cn_args_exit(int rc)
{
    return rc == CN_ARGS_ERROR ? CN_EXIT_USAGE : CN_EXIT_OK;
}
