/* Option tables: parsing and help. */
#include "args.h"

#include <ctype.h>
#include <stdarg.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return AGENT_ARGS_ERROR;
}

static const agent_opt_t *find(const agent_opt_t *opts, const char *name, size_t len)
{
    for (const agent_opt_t *o = opts; o && o->name; o++)
        if (strlen(o->name) == len && !memcmp(o->name, name, len))
            return o;
    return NULL;
}

static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    if (!*s || strlen(s) > 19)
        return false;
    unsigned long long v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v < min || v > max)
        return false;
    *out = (unsigned long)v;
    return true;
}

static int set_value(const agent_opt_t *o, const char *v, char *err, size_t errlen)
{
    switch (o->kind) {
    case AGENT_OPT_STRING:
        if (!*v)
            return fail(err, errlen, "--%s needs a non-empty value", o->name);
        *(const char **)o->dest = v;
        return 0;
    case AGENT_OPT_UINT:
        if (!parse_uint(v, o->min, o->max, (unsigned long *)o->dest))
            return fail(err, errlen, "--%s must be an integer between %lu and %lu", o->name, o->min,
                        o->max);
        return 0;
    default:
        return fail(err, errlen, "--%s takes no value", o->name);
    }
}

int agent_args_parse(const agent_opt_t *opts, int argc, char **argv, const char **pos,
                     size_t min_pos, size_t max_pos, size_t *npos, char *err, size_t errlen)
{
    size_t n = 0;
    bool only_pos = false;
    /* --help anywhere before "--" wins over any error. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return AGENT_ARGS_HELP;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = true;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const agent_opt_t *o = find(opts, name, len);
            if (!o)
                return fail(err, errlen, "unknown option '--%.*s'", (int)len, name);
            if (o->kind == AGENT_OPT_FLAG) {
                if (eq)
                    return fail(err, errlen, "--%s takes no value", o->name);
                *(bool *)o->dest = true;
                continue;
            }
            const char *v = eq ? eq + 1 : NULL;
            if (!v) {
                if (i + 1 >= argc)
                    return fail(err, errlen, "--%s needs a value", o->name);
                v = argv[++i];
            }
            if (set_value(o, v, err, errlen) < 0)
                return AGENT_ARGS_ERROR;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0')
            return fail(err, errlen, "unknown option '%s'", a);
        if (n >= max_pos)
            return fail(err, errlen, "unexpected argument '%s'", a);
        pos[n++] = a;
    }
    if (n < min_pos)
        return fail(err, errlen, "missing argument");
    if (npos)
        *npos = n;
    return AGENT_ARGS_OK;
}

void agent_args_help(FILE *out, const char *cmd, const char *synopsis, const char *description,
                     const agent_opt_t *opts)
{
    fprintf(out, "usage: connect %s %s\n\n%s\n", cmd, synopsis, description);
    if (!opts || !opts->name)
        return;
    fputs("\noptions:\n", out);
    for (const agent_opt_t *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(out, "  %-18s %s\n", left, o->help);
    }
    fprintf(out, "  %-18s %s\n", "-h, --help", "show this help");
}
