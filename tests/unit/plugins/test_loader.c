/* The registry and the loader: the six built-ins are always there; shared
 * objects load from a directory, replace a built-in of the same name, and
 * every bad file (garbage, foreign library, wrong ABI, malformed vtable,
 * a second file with a taken name) is skipped with exactly one line naming
 * it, while the process goes on. */
#include "cn_test.h"

#include "cn_err.h"
#include "plugins.h"

#include <sys/stat.h>
#include <unistd.h>

static const char *env_dir(const char *var)
{
    const char *d = getenv(var);
    if (!d)
        fail_msg("%s is not set (run through ctest)", var);
    return d;
}

typedef struct lines {
    char text[16][512];
    size_t n;
} lines_t;

static void collect(void *user, const char *line)
{
    lines_t *l = user;
    if (l->n < 16)
        snprintf(l->text[l->n], sizeof(l->text[0]), "%s", line);
    l->n++;
}

/* The one line that mentions `file`, which must also contain `why`. */
static void expect_line(const lines_t *l, const char *file, const char *why)
{
    size_t hits = 0;
    for (size_t i = 0; i < l->n && i < 16; i++) {
        if (strstr(l->text[i], file)) {
            hits++;
            if (!strstr(l->text[i], why))
                fail_msg("line for %s: \"%s\" lacks \"%s\"", file, l->text[i], why);
        }
    }
    if (hits != 1)
        fail_msg("%zu lines mention %s, want 1", hits, file);
}

static void copy_file(const char *from, const char *dir, const char *name)
{
    char to[1024];
    snprintf(to, sizeof(to), "%s/%s", dir, name);
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out)
        fail_msg("copy %s -> %s", from, to);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char to[1024];
    snprintf(to, sizeof(to), "%s/%s", dir, name);
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    fwrite(data, 1, len, f);
    fclose(f);
}

static void remove_dir(const char *dir)
{
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_builtins_are_always_there(void **state)
{
    plugins_t *ps = plugins_new();
    const char *names[] = {"postgresql", "mysql", "redis", "mongodb", "http", "tcp"};
    assert_int_equal(plugins_count(ps), 6);
    for (size_t i = 0; i < 6; i++) {
        char why[256];
        assert_string_equal(plugins_at(ps, i)->name, names[i]);
        assert_string_equal(plugins_origin(ps, i), "built-in");
        assert_ptr_equal(plugins_find(ps, names[i]), plugins_at(ps, i));
        assert_int_equal(plugins_check(plugins_at(ps, i), why, sizeof(why)), 0);
    }
    assert_null(plugins_at(ps, 6));
    assert_null(plugins_find(ps, "ssh"));
    assert_null(plugins_find(ps, NULL));
    assert_ptr_equal(plugins_by_port(ps, 5432), &cn_plugin_postgresql);
    assert_ptr_equal(plugins_by_port(ps, 3306), &cn_plugin_mysql);
    assert_ptr_equal(plugins_by_port(ps, 6379), &cn_plugin_redis);
    assert_ptr_equal(plugins_by_port(ps, 27017), &cn_plugin_mongodb);
    assert_ptr_equal(plugins_by_port(ps, 80), &cn_plugin_http);
    assert_ptr_equal(plugins_by_port(ps, 8080), &cn_plugin_http);
    assert_null(plugins_by_port(ps, 19000));
    assert_null(plugins_by_port(ps, 0));
    plugins_free(ps);
    plugins_free(NULL);
}

static int dummy_request(const cn_plugin_target_t *t, uint8_t *out, size_t cap, size_t *len)
{
    *len = 0;
    return 0;
}

static void test_check_refuses_bad_vtables(void **state)
{
    char why[256];
    cn_plugin_t p = cn_plugin_redis;
    assert_int_equal(plugins_check(&p, why, sizeof(why)), 0);

    p.abi_version = 2;
    assert_int_equal(plugins_check(&p, why, sizeof(why)), CN_EVERSION);
    assert_non_null(strstr(why, "plugin ABI version 2, this build speaks version 1"));
    p.abi_version = 0;
    assert_int_equal(plugins_check(&p, why, sizeof(why)), CN_EVERSION);

    p = cn_plugin_redis;
    p.struct_size = 16;
    assert_int_equal(plugins_check(&p, why, sizeof(why)), CN_EINVAL);
    assert_non_null(strstr(why, "vtable of 16 bytes"));

    const char *bad_names[] = {NULL,
                               "",
                               "Redis",
                               "1redis",
                               "re dis",
                               "re.dis",
                               "abcdefghijklmnopqrstuvwxyz012345" /* 32 */};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        p = cn_plugin_redis;
        p.name = bad_names[i];
        if (plugins_check(&p, why, sizeof(why)) != CN_EINVAL)
            fail_msg("name \"%s\" accepted", bad_names[i] ? bad_names[i] : "(null)");
    }
    p = cn_plugin_redis;
    p.name = "abcdefghijklmnopqrstuvwxyz01234"; /* 31: the longest allowed */
    assert_int_equal(plugins_check(&p, why, sizeof(why)), 0);
    p.name = "my_proto-2";
    assert_int_equal(plugins_check(&p, why, sizeof(why)), 0);

    p = cn_plugin_redis;
    p.probe_reply = NULL;
    assert_int_equal(plugins_check(&p, why, sizeof(why)), CN_EINVAL);
    p = cn_plugin_redis;
    p.connection_string = NULL;
    assert_int_equal(plugins_check(&p, why, sizeof(why)), CN_EINVAL);
    p = cn_plugin_redis;
    p.probe_request = NULL;
    assert_int_equal(plugins_check(&p, why, sizeof(why)), CN_EINVAL);
    p = cn_plugin_redis;
    p.detect = NULL; /* optional */
    p.probe_request = dummy_request;
    assert_int_equal(plugins_check(&p, why, sizeof(why)), 0);
    assert_int_equal(plugins_check(NULL, why, sizeof(why)), CN_EINVAL);
}

static void test_shared_objects_replace_builtins(void **state)
{
    const char *dir = env_dir("CN_PLUGIN_BUILD_DIR");
    plugins_t *ps = plugins_new();
    lines_t lines = {0};
    assert_int_equal(plugins_load_dir(ps, dir, collect, &lines), 6);
    assert_int_equal(lines.n, 0);
    assert_int_equal(plugins_count(ps), 6);
    const char *names[] = {"postgresql", "mysql", "redis", "mongodb", "http", "tcp"};
    const cn_plugin_t *builtin[] = {&cn_plugin_postgresql, &cn_plugin_mysql, &cn_plugin_redis,
                                    &cn_plugin_mongodb,    &cn_plugin_http,  &cn_plugin_tcp};
    for (size_t i = 0; i < 6; i++) {
        char want[1024];
        const cn_plugin_t *p = plugins_at(ps, i);
        assert_string_equal(p->name, names[i]); /* same place in the order */
        assert_ptr_not_equal(p, builtin[i]);    /* but the loaded copy */
        snprintf(want, sizeof(want), "%s/%s.so", dir, names[i]);
        assert_string_equal(plugins_origin(ps, i), want);
    }
    /* The loaded code works. */
    char out[128];
    assert_int_equal(
        plugins_connection_string(plugins_find(ps, "redis"), "::1", 6379, NULL, out, sizeof(out)),
        0);
    assert_string_equal(out, "redis://[::1]:6379");
    assert_int_equal(
        plugins_find(ps, "postgresql")
            ->detect((const uint8_t *)"\0\0\0\x08\x04\xd2\x16\x2f", 8, CN_PLUGIN_FROM_CLIENT),
        CN_PLUGIN_MATCH);

    /* A second file with a name already loaded from a file is refused. */
    char path[1024], err[512];
    snprintf(path, sizeof(path), "%s/redis.so", dir);
    assert_int_equal(plugins_load_file(ps, path, err, sizeof(err)), CN_ESTATE);
    assert_non_null(strstr(err, "a plugin named redis is already loaded from"));
    assert_ptr_equal(plugins_find(ps, "redis"), plugins_at(ps, 2));
    plugins_free(ps);
}

static void test_bad_files_are_skipped_with_one_line_each(void **state)
{
    const char *fixtures = env_dir("CN_PLUGIN_FIXTURE_DIR");
    char dir[] = "/tmp/cn-plugins-test.XXXXXX";
    char path[1024];
    assert_non_null(mkdtemp(dir));

    uint8_t garbage[4096];
    cn_test_fill(garbage, sizeof(garbage), 7);
    write_file(dir, "garbage.so", garbage, sizeof(garbage));
    write_file(dir, "empty.so", "", 0);
    write_file(dir, "elf_header_only.so",
               "\x7f"
               "ELF\x02\x01\x01",
               7);
    const char *fixture_names[] = {"wrong_abi", "no_entry", "bad_vtable", "echo_test"};
    for (size_t i = 0; i < 4; i++) {
        char name[64];
        snprintf(path, sizeof(path), "%s/%s.so", fixtures, fixture_names[i]);
        snprintf(name, sizeof(name), "%s.so", fixture_names[i]);
        copy_file(path, dir, name);
    }
    /* Not *.so, or hidden: not even looked at. */
    write_file(dir, "README.txt", "x", 1);
    write_file(dir, ".hidden.so", garbage, 64);
    write_file(dir, "so", garbage, 64);
    snprintf(path, sizeof(path), "%s/sub.so", dir);
    assert_int_equal(mkdir(path, 0755), 0);

    plugins_t *ps = plugins_new();
    lines_t lines = {0};
    assert_int_equal(plugins_load_dir(ps, dir, collect, &lines), 1);
    assert_int_equal(lines.n, 7);
    expect_line(&lines, "/garbage.so", "not a loadable shared object");
    expect_line(&lines, "/empty.so", "not a loadable shared object");
    expect_line(&lines, "/elf_header_only.so", "not a loadable shared object");
    expect_line(&lines, "/wrong_abi.so", "plugin ABI version 99, this build speaks version 1");
    expect_line(&lines, "/no_entry.so", "no cn_plugin_entry symbol: not a Connect plugin");
    expect_line(&lines, "/bad_vtable.so", "lacks probe_request, probe_reply or connection_string");
    expect_line(&lines, "/sub.so", "not a loadable shared object");
    for (size_t i = 0; i < lines.n; i++) /* each line starts with its path */
        assert_memory_equal(lines.text[i], dir, strlen(dir));

    /* The valid newcomer is appended after the built-ins. */
    assert_int_equal(plugins_count(ps), 7);
    const cn_plugin_t *echo = plugins_find(ps, "echo_test");
    assert_non_null(echo);
    assert_ptr_equal(plugins_at(ps, 6), echo);
    assert_ptr_equal(plugins_by_port(ps, 7), echo);
    bool more;
    assert_ptr_equal(
        plugins_detect(ps, (const uint8_t *)"ECHO hi", 7, CN_PLUGIN_FROM_CLIENT, &more), echo);
    /* Built-ins are untouched. */
    assert_ptr_equal(plugins_find(ps, "redis"), &cn_plugin_redis);
    plugins_free(ps);
    remove_dir(dir);
}

static void test_missing_directory_is_one_line(void **state)
{
    plugins_t *ps = plugins_new();
    lines_t lines = {0};
    assert_int_equal(plugins_load_dir(ps, "/nonexistent/connect-plugins", collect, &lines),
                     CN_ENOTFOUND);
    assert_int_equal(lines.n, 1);
    assert_string_equal(lines.text[0],
                        "/nonexistent/connect-plugins: cannot open the plugin directory");
    assert_int_equal(plugins_count(ps), 6);
    /* No callback is fine too. */
    assert_int_equal(plugins_load_dir(ps, "/nonexistent/connect-plugins", NULL, NULL),
                     CN_ENOTFOUND);
    plugins_free(ps);
    assert_non_null(plugins_default_dir());
    assert_non_null(strstr(plugins_default_dir(), "connect/plugins"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtins_are_always_there),
        cmocka_unit_test(test_check_refuses_bad_vtables),
        cmocka_unit_test(test_shared_objects_replace_builtins),
        cmocka_unit_test(test_bad_files_are_skipped_with_one_line_each),
        cmocka_unit_test(test_missing_directory_is_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
