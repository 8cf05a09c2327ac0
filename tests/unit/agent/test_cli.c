/* The `connect` front: global options before or after the command, and
 * every command's --help (exit 0) and unknown option (exit 2). The parser
 * itself is tested in tests/unit/sdk/test_args.c. */
#include "cn_test.h"

#include "cli.h"

#include <sodium.h>

/* Global options before the command move behind its name, in order;
 * after the command they stay where they are. */
static void test_hoist(void **state)
{
    static const struct {
        int argc;
        const char *in[8];
        int rc;
        const char *out; /* the new argv joined with ' ' */
    } cases[] = {
        {2, {"ls"}, CN_ARGS_OK, "ls"},
        {4, {"--config", "F", "ls"}, CN_ARGS_OK, "ls --config F"},
        {4, {"ls", "--config", "F"}, CN_ARGS_OK, "ls --config F"},
        {6,
         {"--json", "--hub=http://h:1", "status", "web", "--token"},
         CN_ARGS_OK,
         "status --json --hub=http://h:1 web --token"},
        {5,
         {"--log-level", "debug", "agent", "--json"},
         CN_ARGS_OK,
         "agent --log-level debug --json"},
        {3, {"--token", "t"}, CN_ARGS_ERROR, NULL}, /* no command */
        {1, {NULL}, CN_ARGS_ERROR, NULL},           /* nothing at all */
        {3, {"--cfg", "ls"}, CN_ARGS_ERROR, NULL},  /* not a global option */
        {4, {"--log-level", "loud", "ls"}, CN_ARGS_ERROR, NULL},
        {3, {"--help", "ls"}, CN_ARGS_HELP, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[9] = {(char *)"connect"};
        for (int k = 1; k < cases[i].argc; k++)
            argv[k] = (char *)cases[i].in[k - 1];
        char **v = NULL, err[256] = "";
        int n = -1;
        int rc = cli_hoist_global_options(cases[i].argc, argv, &v, &n, err, sizeof(err));
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d (%s)", i, rc, err);
        if (rc != CN_ARGS_OK) {
            assert_null(v);
            continue;
        }
        char joined[256] = "";
        for (int k = 0; k < n; k++)
            snprintf(joined + strlen(joined), sizeof(joined) - strlen(joined), "%s%s", k ? " " : "",
                     v[k]);
        assert_null(v[n]);
        free(v);
        if (strcmp(joined, cases[i].out) != 0)
            fail_msg("case %zu: '%s', expected '%s'", i, joined, cases[i].out);
    }
}

/* Every command: --help exits 0, an unknown option exits 2, and so does a
 * stray positional argument where none is taken. Output is discarded. */
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
        {"reach", cmd_reach, 1},   {"share", cmd_share, 1},
        {"link", cmd_share, 1},    {"app-server", cmd_app_server, 0},
    };
    cn_test_capture_t cap;
    cn_test_capture_begin(&cap);
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
    cn_test_capture_end(&cap, NULL, 0, NULL, 0);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (results[i][0] != AGENT_EXIT_OK || results[i][3] != AGENT_EXIT_OK)
            fail_msg("%s --help exited %d/%d", cmds[i].name, results[i][0], results[i][3]);
        int want = AGENT_EXIT_USAGE;
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
        cmocka_unit_test(test_hoist),
        cmocka_unit_test(test_every_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
