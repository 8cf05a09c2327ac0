/* Option tables: every accepted form, every usage error, and every
 * command's --help (exit 0) and unknown option (exit 2). */
#include "cn_test.h"

#include "args.h"
#include "cli.h"

#include <sodium.h>
#include <unistd.h>

typedef struct opts {
    bool flag;
    const char *str;
    unsigned long num;
    agent_common_t c;
} opts_t;

static int parse(opts_t *o, const char **pos, size_t max_pos, size_t *npos, char *err, int argc,
                 ...)
{
    const agent_opt_t table[] = {
        {"flag", AGENT_OPT_FLAG, &o->flag, 0, 0, NULL, "a flag"},
        {"str", AGENT_OPT_STRING, &o->str, 0, 0, "S", "a string"},
        {"num", AGENT_OPT_UINT, &o->num, 1, 100, "N", "a number"},
        AGENT_COMMON_OPTIONS(&o->c),
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
    return agent_args_parse(table, argc, argv, pos, 0, max_pos, npos, err, 256);
}

static void test_accepted_forms(void **state)
{
    opts_t o;
    const char *pos[2];
    size_t n = 9;
    char err[256];
    assert_int_equal(parse(&o, pos, 2, &n, err, 1), AGENT_ARGS_OK);
    assert_int_equal(n, 0);
    assert_false(o.flag);

    assert_int_equal(
        parse(&o, pos, 2, &n, err, 8, "a", "--flag", "--str", "x", "--num=42", "--json", "b"),
        AGENT_ARGS_OK);
    assert_true(o.flag);
    assert_true(o.c.json);
    assert_string_equal(o.str, "x");
    assert_int_equal(o.num, 42);
    assert_int_equal(n, 2);
    assert_string_equal(pos[0], "a");
    assert_string_equal(pos[1], "b");

    /* --name=value, last one wins, values may start with '-'. */
    assert_int_equal(parse(&o, pos, 2, &n, err, 4, "--str=one", "--str", "-two"), AGENT_ARGS_OK);
    assert_string_equal(o.str, "-two");
    /* -- ends options; '-' alone is positional (stdin). */
    assert_int_equal(parse(&o, pos, 2, &n, err, 4, "--", "--flag", "-"), AGENT_ARGS_OK);
    assert_false(o.flag);
    assert_int_equal(n, 2);
    assert_string_equal(pos[0], "--flag");
    assert_string_equal(pos[1], "-");
    /* Common options are in every table. */
    assert_int_equal(
        parse(&o, pos, 0, &n, err, 7, "--config", "f.json", "--hub", "http://h:1", "--token", "t"),
        AGENT_ARGS_OK);
    assert_string_equal(o.c.config, "f.json");
    assert_string_equal(o.c.hub, "http://h:1");
    assert_string_equal(o.c.token, "t");
}

static void test_help_wins(void **state)
{
    opts_t o;
    size_t n;
    char err[256];
    assert_int_equal(parse(&o, NULL, 0, &n, err, 2, "--help"), AGENT_ARGS_HELP);
    assert_int_equal(parse(&o, NULL, 0, &n, err, 2, "-h"), AGENT_ARGS_HELP);
    /* Even after an error-to-be. */
    assert_int_equal(parse(&o, NULL, 0, &n, err, 3, "--bogus", "--help"), AGENT_ARGS_HELP);
    /* But not after "--". */
    const char *pos[1];
    assert_int_equal(parse(&o, pos, 1, &n, err, 3, "--", "--help"), AGENT_ARGS_OK);
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
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        opts_t o;
        const char *pos[2];
        size_t n;
        char err[256] = "";
        int rc =
            parse(&o, pos, 2, &n, err, cases[i].argc, cases[i].a[0], cases[i].a[1], cases[i].a[2]);
        assert_int_equal(rc, AGENT_ARGS_ERROR);
        if (!strstr(err, cases[i].why))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].why);
    }
}

static void test_help_lists_options(void **state)
{
    opts_t o = {0};
    const agent_opt_t table[] = {
        {"num", AGENT_OPT_UINT, &o.num, 1, 100, "N", "a number"},
        AGENT_COMMON_OPTIONS(&o.c),
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    char buf[4096] = "";
    FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
    agent_args_help(f, "thing", "[--num N]", "Does a thing.", table);
    fclose(f);
    assert_non_null(strstr(buf, "usage: connect thing [--num N]"));
    assert_non_null(strstr(buf, "--num N"));
    assert_non_null(strstr(buf, "--config FILE"));
    assert_non_null(strstr(buf, "--json"));
    assert_non_null(strstr(buf, "-h, --help"));
}

/* Every command: --help exits 0, an unknown option exits 2, and so does a
 * stray positional argument where none is taken. Output goes to /dev/null. */
static void test_every_command(void **state)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
        int takes_pos;
    } cmds[] = {
        {"enroll", cmd_enroll, 0}, {"agent", cmd_agent, 0},
        {"up", cmd_agent, 0},      {"expose", cmd_expose, 1},
        {"ls", cmd_ls, 0},         {"status", cmd_status, 1},
        {"pause", cmd_pause, 1},   {"resume", cmd_resume, 1},
        {"rm", cmd_rm, 1},         {"events", cmd_events, 0},
        {"reach", cmd_not_yet, 0}, {"share", cmd_share, 1},
        {"link", cmd_share, 1},    {"app-server", cmd_not_yet, 0},
    };
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    FILE *null = fopen("/dev/null", "w");
    dup2(fileno(null), 1);
    dup2(fileno(null), 2);
    int results[sizeof(cmds) / sizeof(cmds[0])][4];
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char *help[] = {(char *)cmds[i].name, (char *)"--help", NULL};
        char *bogus[] = {(char *)cmds[i].name, (char *)"x", (char *)"--no-such-option", NULL};
        char *extra[] = {(char *)cmds[i].name, (char *)"one", (char *)"two", NULL};
        results[i][0] = cmds[i].run(2, help);
        results[i][1] = cmds[i].run(3, bogus);
        results[i][2] = cmds[i].run(3, extra);
        char *h2[] = {(char *)cmds[i].name, (char *)"-h", NULL};
        results[i][3] = cmds[i].run(2, h2);
    }
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    fclose(null);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        bool later = cmds[i].run == cmd_not_yet;
        if (results[i][0] != AGENT_EXIT_OK || results[i][3] != AGENT_EXIT_OK)
            fail_msg("%s --help exited %d/%d", cmds[i].name, results[i][0], results[i][3]);
        int want = later ? AGENT_EXIT_FAIL : AGENT_EXIT_USAGE;
        if (results[i][1] != want)
            fail_msg("%s --no-such-option exited %d", cmds[i].name, results[i][1]);
        if (results[i][2] != want)
            fail_msg("%s one two exited %d", cmds[i].name, results[i][2]);
    }
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_forms), cmocka_unit_test(test_help_wins),
        cmocka_unit_test(test_usage_errors),   cmocka_unit_test(test_help_lists_options),
        cmocka_unit_test(test_every_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
