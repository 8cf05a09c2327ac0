/* cn_args: every accepted form, every usage error, once-only options,
 * choices, global options before a subcommand, help, and the one usage
 * line both binaries print. */
#include "cn_test.h"

#include "cn_args.h"

typedef struct opts {
    bool flag;
    const char *str, *str2;
    unsigned long num;
    struct {
        const char *config, *hub, *token;
        bool json;
    } c;
    int level;
} opts_t;

static int parse(opts_t *o, const char **pos, size_t max_pos, size_t *npos, char *err, int argc,
                 ...)
{
    const cn_opt_t table[] = {
        {"flag", CN_OPT_FLAG, &o->flag, 0, 0, NULL, "a flag"},
        {"str", CN_OPT_STRING, &o->str, 0, 0, "S", "a string"},
        {"num", CN_OPT_UINT, &o->num, 1, 100, "N", "a number"},
        {"config", CN_OPT_STRING, &o->c.config, 0, 0, "FILE", "config file"},
        {"hub", CN_OPT_STRING, &o->c.hub, 0, 0, "URL", "hub URL"},
        {"token", CN_OPT_STRING, &o->c.token, 0, 0, "TOKEN", "API token"},
        {"json", CN_OPT_FLAG, &o->c.json, 0, 0, NULL, "print JSON"},
        {"level", CN_OPT_CHOICE, &o->level, 0, 0, "error|warn|info|debug", "a choice"},
        {"once", CN_OPT_STRING | CN_OPT_ONCE, &o->str2, 0, 0, "X", "at most once"},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    char *argv[16];
    va_list ap;
    va_start(ap, argc);
    argv[0] = (char *)"cmd";
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    memset(o, 0, sizeof(*o));
    return cn_args_parse(table, argc, argv, pos, 0, max_pos, npos, err, 256);
}

static void test_accepted_forms(void **state)
{
    opts_t o;
    const char *pos[2];
    size_t n = 9;
    char err[256];
    assert_int_equal(parse(&o, pos, 2, &n, err, 1), CN_ARGS_OK);
    assert_int_equal(n, 0);
    assert_false(o.flag);

    assert_int_equal(
        parse(&o, pos, 2, &n, err, 8, "a", "--flag", "--str", "x", "--num=42", "--json", "b"),
        CN_ARGS_OK);
    assert_true(o.flag);
    assert_true(o.c.json);
    assert_string_equal(o.str, "x");
    assert_int_equal(o.num, 42);
    assert_int_equal(n, 2);
    assert_string_equal(pos[0], "a");
    assert_string_equal(pos[1], "b");

    /* --name=value, last one wins, values may start with '-'. */
    assert_int_equal(parse(&o, pos, 2, &n, err, 4, "--str=one", "--str", "-two"), CN_ARGS_OK);
    assert_string_equal(o.str, "-two");
    /* -- ends options; '-' alone is positional (stdin). */
    assert_int_equal(parse(&o, pos, 2, &n, err, 4, "--", "--flag", "-"), CN_ARGS_OK);
    assert_false(o.flag);
    assert_int_equal(n, 2);
    assert_string_equal(pos[0], "--flag");
    assert_string_equal(pos[1], "-");
    /* Common options are in every table. */
    assert_int_equal(
        parse(&o, pos, 0, &n, err, 7, "--config", "f.json", "--hub", "http://h:1", "--token", "t"),
        CN_ARGS_OK);
    assert_string_equal(o.c.config, "f.json");
    assert_string_equal(o.c.hub, "http://h:1");
    assert_string_equal(o.c.token, "t");
}

static void test_help_wins(void **state)
{
    opts_t o;
    size_t n;
    char err[256];
    assert_int_equal(parse(&o, NULL, 0, &n, err, 2, "--help"), CN_ARGS_HELP);
    assert_int_equal(parse(&o, NULL, 0, &n, err, 2, "-h"), CN_ARGS_HELP);
    /* Even after an error-to-be. */
    assert_int_equal(parse(&o, NULL, 0, &n, err, 3, "--bogus", "--help"), CN_ARGS_HELP);
    /* But not after "--". */
    const char *pos[1];
    assert_int_equal(parse(&o, pos, 1, &n, err, 3, "--", "--help"), CN_ARGS_OK);
}

static void test_usage_errors(void **state)
{
    static const struct {
        int argc;
        const char *a[4];
        const char *why;
    } cases[] = {
        {2, {"--bogus"}, "unknown option '--bogus'"},
        {2, {"--bogus=1"}, "unknown option '--bogus'"},
        {2, {"-x"}, "unknown option '-x'"},
        {2, {"--str"}, "--str needs a value"},
        {3, {"--str", ""}, "--str needs a non-empty value"},
        {2, {"--str="}, "--str needs a non-empty value"},
        {2, {"--flag=1"}, "--flag takes no value"},
        {3, {"--num", "0"}, "--num must be an integer between 1 and 100"},
        {3, {"--num", "101"}, "between 1 and 100"},
        {3, {"--num", "-1"}, "between 1 and 100"},
        {3, {"--num", "1e3"}, "between 1 and 100"},
        {3, {"--num", "99999999999999999999999"}, "between 1 and 100"},
        {3, {"--num", " 5"}, "between 1 and 100"},
        {4, {"a", "b", "c"}, "unexpected argument 'c'"},
        {3, {"--level", "loud"}, "--level must be one of error|warn|info|debug"},
        {2, {"--level=warn2"}, "must be one of"},
        {3, {"--level", ""}, "must be one of"},
        {4, {"--once=a", "--once", "b"}, "--once is given twice"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        opts_t o;
        const char *pos[2];
        size_t n;
        char err[256] = "";
        int rc =
            parse(&o, pos, 2, &n, err, cases[i].argc, cases[i].a[0], cases[i].a[1], cases[i].a[2]);
        assert_int_equal(rc, CN_ARGS_ERROR);
        if (!strstr(err, cases[i].why))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].why);
    }
}

static void test_help_lists_options(void **state)
{
    opts_t o = {0};
    const cn_opt_t table[] = {
        {"num", CN_OPT_UINT, &o.num, 1, 100, "N", "a number"},
        {"config", CN_OPT_STRING, &o.c.config, 0, 0, "FILE", "config file"},
        {"public-domain", CN_OPT_STRING, &o.c.hub, 0, 0, "DOMAIN", "a long one"},
        {"json", CN_OPT_FLAG, &o.c.json, 0, 0, NULL, "print JSON"},
        CN_OPT_END,
    };
    char buf[4096] = "";
    FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
    cn_args_help(f, "prog", "thing", "[--num N]", "Does a thing.", table);
    fclose(f);
    assert_non_null(strstr(buf, "usage: prog thing [--num N]"));
    assert_non_null(strstr(buf, "--num N"));
    assert_non_null(strstr(buf, "--config FILE"));
    /* The column fits the longest option: help text starts after it. */
    assert_non_null(strstr(buf, "  --public-domain DOMAIN a long one"));
    assert_non_null(strstr(buf, "  --config FILE          config file"));
    assert_non_null(strstr(buf, "--json"));
    assert_non_null(strstr(buf, "-h, --help"));
}

static void test_choice_and_once(void **state)
{
    opts_t o;
    const char *pos[2];
    size_t n;
    char err[256];
    /* A choice stores 1 + its index, so 0 means "not given". */
    assert_int_equal(parse(&o, pos, 2, &n, err, 1), CN_ARGS_OK);
    assert_int_equal(o.level, 0);
    assert_int_equal(parse(&o, pos, 2, &n, err, 3, "--level", "error"), CN_ARGS_OK);
    assert_int_equal(o.level, 1);
    assert_int_equal(parse(&o, pos, 2, &n, err, 2, "--level=debug"), CN_ARGS_OK);
    assert_int_equal(o.level, 4);
    /* Once-only options take one value; others keep the last. */
    assert_int_equal(parse(&o, pos, 2, &n, err, 2, "--once=a"), CN_ARGS_OK);
    assert_string_equal(o.str2, "a");
    assert_int_equal(parse(&o, pos, 2, &n, err, 3, "--str=a", "--str=b"), CN_ARGS_OK);
    assert_string_equal(o.str, "b");
}

static void test_leading(void **state)
{
    bool json = false;
    const char *config = NULL;
    const cn_opt_t opts[] = {
        {"config", CN_OPT_STRING, &config, 0, 0, "FILE", "config file"},
        {"json", CN_OPT_FLAG, &json, 0, 0, NULL, "print JSON"},
        CN_OPT_END,
    };
    static const struct {
        int argc;
        const char *a[5];
        int rc, at;
        const char *why;
    } cases[] = {
        {2, {"ls"}, CN_ARGS_OK, 1, NULL},
        {4, {"--config", "f", "ls"}, CN_ARGS_OK, 3, NULL},
        {4, {"--config=f", "--json", "ls", "--x"}, CN_ARGS_OK, 3, NULL},
        {3, {"--json", "ls"}, CN_ARGS_OK, 2, NULL},
        {2, {"--json"}, CN_ARGS_OK, 2, NULL}, /* no command: at == argc */
        {3, {"--help", "ls"}, CN_ARGS_HELP, 0, NULL},
        {3, {"--json", "-h"}, CN_ARGS_HELP, 0, NULL},
        {3, {"--bogus", "ls"}, CN_ARGS_ERROR, 0, "unknown option '--bogus'"},
        {3, {"-x", "ls"}, CN_ARGS_ERROR, 0, "unknown option '-x'"},
        {2, {"--config"}, CN_ARGS_ERROR, 0, "--config needs a value"},
        {3, {"--json=1", "ls"}, CN_ARGS_ERROR, 0, "takes no value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[6] = {(char *)"prog"};
        for (int k = 1; k < cases[i].argc; k++)
            argv[k] = (char *)cases[i].a[k - 1];
        char err[256] = "";
        int at = -1;
        int rc = cn_args_leading(opts, cases[i].argc, argv, &at, err, sizeof(err));
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d, expected %d (%s)", i, rc, cases[i].rc, err);
        if (rc == CN_ARGS_OK && at != cases[i].at)
            fail_msg("case %zu: command at %d, expected %d", i, at, cases[i].at);
        if (cases[i].why && !strstr(err, cases[i].why))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].why);
    }
}

/* cn_args_front: help on stdout and 1, one usage line on stderr and -1;
 * cn_args_exit maps them to 0 and 2. */
static void test_front(void **state)
{
    bool json = false;
    const cn_opt_t opts[] = {{"json", CN_OPT_FLAG, &json, 0, 0, NULL, "print JSON"}, CN_OPT_END};
    const cn_args_cmd_t cmd = {"prog", "thing", "[--json]", "Does a thing.", opts, 0, 0};
    char out[2048] = "", errbuf[2048] = "";
    cn_test_capture_t cap;
    cn_test_capture_begin(&cap);
    char *help[] = {(char *)"thing", (char *)"--help"};
    char *bad[] = {(char *)"thing", (char *)"--nope"};
    char *good[] = {(char *)"thing", (char *)"--json"};
    int r_help = cn_args_front(&cmd, 2, help, NULL, NULL);
    int r_bad = cn_args_front(&cmd, 2, bad, NULL, NULL);
    int r_good = cn_args_front(&cmd, 2, good, NULL, NULL);
    cn_test_capture_end(&cap, out, sizeof(out), errbuf, sizeof(errbuf));
    assert_int_equal(r_help, CN_ARGS_HELP);
    assert_int_equal(cn_args_exit(r_help), CN_EXIT_OK);
    assert_int_equal(r_bad, CN_ARGS_ERROR);
    assert_int_equal(cn_args_exit(r_bad), CN_EXIT_USAGE);
    assert_int_equal(r_good, CN_ARGS_OK);
    assert_true(json);
    assert_non_null(strstr(out, "usage: prog thing [--json]"));
    assert_string_equal(errbuf, "prog: thing: unknown option '--nope' (try 'prog thing --help')\n");
}

/* A secret option warns once per process, however often it is parsed (a
 * global option is parsed before and after the command), and not for "-". */
static void test_secret_warns_once(void **state)
{
    const char *token = NULL;
    const cn_opt_t opts[] = {
        {"token", CN_OPT_STRING | CN_OPT_SECRET, &token, 0, 0, "T", "secret"},
        CN_OPT_END,
    };
    char err[256], out[64], errout[512];
    cn_test_capture_t cap;
    char cmd[] = "cmd", opt[] = "--token", dash[] = "-", joined[] = "--token=s3cret";
    char *stdin_form[] = {cmd, opt, dash, NULL};
    char *arg_form[] = {cmd, joined, NULL};
    cn_test_capture_begin(&cap);
    assert_int_equal(cn_args_parse(opts, 3, stdin_form, NULL, 0, 0, NULL, err, sizeof(err)), 0);
    cn_test_capture_end(&cap, out, sizeof(out), errout, sizeof(errout));
    assert_string_equal(errout, "");
    assert_string_equal(token, "-");
    cn_test_capture_begin(&cap);
    assert_int_equal(cn_args_parse(opts, 2, arg_form, NULL, 0, 0, NULL, err, sizeof(err)), 0);
    assert_int_equal(cn_args_parse(opts, 2, arg_form, NULL, 0, 0, NULL, err, sizeof(err)), 0);
    cn_test_capture_end(&cap, out, sizeof(out), errout, sizeof(errout));
    assert_string_equal(token, "s3cret");
    assert_non_null(strstr(errout, "warning: --token on the command line is visible"));
    assert_non_null(strstr(errout, "--token-file FILE"));
    assert_null(strstr(errout, "s3cret"));
    assert_int_equal(strchr(errout, '\n') - errout + 1, (long)strlen(errout)); /* one line */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_forms),  cmocka_unit_test(test_help_wins),
        cmocka_unit_test(test_usage_errors),    cmocka_unit_test(test_help_lists_options),
        cmocka_unit_test(test_choice_and_once), cmocka_unit_test(test_leading),
        cmocka_unit_test(test_front),           cmocka_unit_test(test_secret_warns_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
