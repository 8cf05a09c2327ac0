/* reach: the "reach" list of the config file, as `connect agent` reads it:
 * entries with a tunnel and an optional port, an absent list, and every
 * malformed entry refused with a line naming it. */
#include "cn_test.h"

#include "cn_err.h"
#include "reach.h"

#include <stdlib.h>

static void write_config(char path[static 64], const char *text)
{
    snprintf(path, 64, "/tmp/cn-reach-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static int load(const char *text, agent_reach_entry_t *out, size_t cap, size_t *n, char *err,
                size_t errlen)
{
    char path[64];
    write_config(path, text);
    int rc = agent_reach_list_load(path, out, cap, n, err, errlen);
    unlink(path);
    return rc;
}

static void a_list_of_tunnels_and_ports(void **state)
{
    (void)state;
    agent_reach_entry_t e[4];
    size_t n = 9;
    char err[256] = "";
    assert_int_equal(load("{\"version\":1,\"reach\":[{\"tunnel\":\"staging-db\"},"
                          "{\"tunnel\":\"cache\",\"port\":16379}]}",
                          e, 4, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(e[0].tunnel, "staging-db");
    assert_int_equal(e[0].port, 0);
    assert_string_equal(e[1].tunnel, "cache");
    assert_int_equal(e[1].port, 16379);
    /* No list: nothing to reach. */
    assert_int_equal(load("{\"version\":1}", e, 4, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
}

static void malformed_entries_are_named(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *names;
    } bad[] = {
        {"{\"reach\":{\"tunnel\":\"x\"}}", "must be a list"},
        {"{\"reach\":[{\"port\":1}]}", "entry 1"},
        {"{\"reach\":[{\"tunnel\":\"a\"},{\"tunnel\":\"\"}]}", "entry 2"},
        {"{\"reach\":[{\"tunnel\":\"a\",\"port\":0}]}", "entry 1"},
        {"{\"reach\":[{\"tunnel\":\"a\",\"port\":65536}]}", "entry 1"},
        {"{\"reach\":[{\"tunnel\":\"a\",\"port\":\"5432\"}]}", "entry 1"},
        {"{\"reach\":[{\"tunnel\":7}]}", "entry 1"},
        {"{\"reach\":[\"db\"]}", "entry 1"},
        {"{\"reach\":[{\"tunnel\":\"a\"},{\"tunnel\":\"b\"},{\"tunnel\":\"c\"}]}", "more than 2"},
        {"not json", "/tmp/cn-reach-test-"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        agent_reach_entry_t e[2];
        size_t n = 0;
        char err[256] = "";
        if (load(bad[i].text, e, 2, &n, err, sizeof(err)) != CN_EINVAL)
            fail_msg("accepted: %s", bad[i].text);
        if (!strstr(err, bad[i].names))
            fail_msg("'%s': the error '%s' does not name '%s'", bad[i].text, err, bad[i].names);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_list_of_tunnels_and_ports),
        cmocka_unit_test(malformed_entries_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
