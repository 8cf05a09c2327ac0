/* The config file: 0600 on write whatever the umask, parents 0700, refused
 * when group/other may read it, symlinked or malformed; and where the hub
 * URL and token come from (flags > environment > file). */
#include "cn_test.h"

#include "cn_err.h"
#include "config.h"
#include "parse.h"

#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#define AID "2da00a1a-38b5-49ea-bedf-669e3b31ccef"

static char dir[256];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/cn-test-config-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    unsetenv("CONNECT_CONFIG");
    unsetenv("CONNECT_HUB");
    unsetenv("CONNECT_TOKEN");
    return 0;
}

static int teardown(void **state)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void sample(agent_config_t *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->hub, sizeof(c->hub), "http://127.0.0.1:8080");
    snprintf(c->agent_id, sizeof(c->agent_id), AID);
    snprintf(c->workspace_id, sizeof(c->workspace_id), "ws");
    snprintf(c->token, sizeof(c->token), "cnt_secret");
    for (int i = 0; i < 32; i++) {
        c->agent_sk[i] = (uint8_t)i;
        c->hub_pk[i] = (uint8_t)(255 - i);
    }
    c->have_keys = true;
}

static void test_save_then_load(void **state)
{
    char path[512];
    path_in(path, sizeof(path), "new/sub/config.json");
    agent_config_t c, back;
    sample(&c);
    mode_t old = umask(0);
    char err[256];
    int rc = agent_config_save(path, &c, err, sizeof(err));
    umask(old);
    assert_int_equal(rc, 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char sub[512];
    path_in(sub, sizeof(sub), "new/sub");
    assert_int_equal(stat(sub, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    memset(&back, 0, sizeof(back));
    assert_int_equal(agent_config_load(path, &back, err, sizeof(err)), 0);
    assert_true(back.loaded);
    assert_string_equal(back.hub, c.hub);
    assert_string_equal(back.agent_id, c.agent_id);
    assert_string_equal(back.workspace_id, c.workspace_id);
    assert_string_equal(back.token, c.token);
    assert_true(back.have_keys);
    assert_memory_equal(back.agent_sk, c.agent_sk, 32);
    assert_memory_equal(back.hub_pk, c.hub_pk, 32);
    /* Saving again replaces it atomically and leaves no temporary behind. */
    snprintf(c.token, sizeof(c.token), "cnt_other");
    assert_int_equal(agent_config_save(path, &c, err, sizeof(err)), 0);
    memset(&back, 0, sizeof(back));
    assert_int_equal(agent_config_load(path, &back, err, sizeof(err)), 0);
    assert_string_equal(back.token, "cnt_other");
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", sub);
    assert_int_equal(system(cmd), 0);
    agent_config_wipe(&back);
    for (int i = 0; i < 32; i++)
        assert_int_equal(back.agent_sk[i], 0);
    assert_string_equal(back.token, "");
}

static void test_refuses_unsafe_files(void **state)
{
    char path[512], link[512], err[256];
    path_in(path, sizeof(path), "c.json");
    agent_config_t c;
    sample(&c);
    assert_int_equal(agent_config_save(path, &c, err, sizeof(err)), 0);
    static const mode_t bad[] = {0644, 0640, 0604, 0660, 0606, 0700, 0610};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(chmod(path, bad[i]), 0);
        agent_config_t got;
        memset(&got, 0, sizeof(got));
        int rc = agent_config_load(path, &got, err, sizeof(err));
        if (bad[i] & 077) {
            assert_int_equal(rc, CN_EAUTH);
            assert_non_null(strstr(err, "chmod 600"));
            assert_string_equal(got.token, "");
        } else {
            assert_int_equal(rc, 0);
        }
    }
    assert_int_equal(chmod(path, 0600), 0);
    path_in(link, sizeof(link), "link.json");
    assert_int_equal(symlink(path, link), 0);
    agent_config_t got;
    memset(&got, 0, sizeof(got));
    assert_int_equal(agent_config_load(link, &got, err, sizeof(err)), CN_EAUTH);
    assert_non_null(strstr(err, "symbolic link"));
    path_in(path, sizeof(path), "missing.json");
    assert_int_equal(agent_config_load(path, &got, err, sizeof(err)), CN_ENOTFOUND);
    assert_int_equal(agent_config_load(dir, &got, err, sizeof(err)), CN_EINVAL);
}

static void test_rejects_malformed(void **state)
{
    static const struct {
        const char *text;
        const char *why;
    } cases[] = {
        {"", "not valid JSON"},
        {"{", "not valid JSON"},
        {"[]", "not a JSON object"},
        {"{\"a\":1,\"a\":2}", "not valid JSON"},
        {"{\"version\":2}", "unsupported config version"},
        {"{\"hub\":5}", "\"hub\""},
        {"{\"hub\":\"https://[::1]\"}", "IPv6"},
        {"{\"hub\":\"http://x y\"}", "\"hub\""},
        {"{\"agentId\":\"nope\"}", "not a UUID"},
        {"{\"token\":\"has space\"}", "\"token\""},
        {"{\"agentKey\":\"AAAA\",\"hubKey\":\"AAAA\"}", "agentKey"},
        {"{\"agentKey\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\",\"hubKey\":\"x\"}",
         "hubKey"},
    };
    char path[512], err[256];
    path_in(path, sizeof(path), "bad.json");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_file(path, cases[i].text, 0600);
        agent_config_t got;
        memset(&got, 0, sizeof(got));
        err[0] = '\0';
        assert_int_equal(agent_config_load(path, &got, err, sizeof(err)), CN_EINVAL);
        if (!strstr(err, cases[i].why))
            fail_msg("'%s': '%s' lacks '%s'", cases[i].text, err, cases[i].why);
    }
    /* Unknown members are ignored; an empty object is a valid, empty config. */
    write_file(path, "{\"future\":true}", 0600);
    agent_config_t got;
    memset(&got, 0, sizeof(got));
    assert_int_equal(agent_config_load(path, &got, err, sizeof(err)), 0);
    assert_false(got.have_keys);
    /* Too large. */
    char *big = malloc(70000);
    memset(big, ' ', 69999);
    big[0] = '{';
    big[69998] = '}';
    big[69999] = '\0';
    write_file(path, big, 0600);
    free(big);
    assert_int_equal(agent_config_load(path, &got, err, sizeof(err)), CN_EINVAL);
    assert_non_null(strstr(err, "64 KiB"));
}

static void test_path_choice(void **state)
{
    char out[512], err[256];
    setenv("HOME", "/home/someone", 1);
    assert_int_equal(agent_config_path(NULL, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "/home/someone/.config/connect/config.json");
    setenv("CONNECT_CONFIG", "/etc/env.json", 1);
    assert_int_equal(agent_config_path(NULL, out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "/etc/env.json");
    assert_int_equal(agent_config_path("flag.json", out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, "flag.json");
    unsetenv("CONNECT_CONFIG");
    unsetenv("HOME");
    assert_int_equal(agent_config_path(NULL, out, sizeof(out), err, sizeof(err)), CN_EINVAL);
    assert_non_null(strstr(err, "--config"));
}

static void test_precedence(void **state)
{
    char path[512], err[256];
    path_in(path, sizeof(path), "p.json");
    agent_config_t c;
    sample(&c);
    assert_int_equal(agent_config_save(path, &c, err, sizeof(err)), 0);
    agent_common_t flags = {.config = path};
    agent_config_t r;

    /* File only. */
    assert_int_equal(
        agent_config_resolve(&flags, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &r, err, sizeof(err)), 0);
    assert_string_equal(r.hub, "http://127.0.0.1:8080");
    assert_string_equal(r.token, "cnt_secret");
    /* Environment over file. */
    setenv("CONNECT_HUB", "http://env:1", 1);
    setenv("CONNECT_TOKEN", "cnt_env", 1);
    assert_int_equal(agent_config_resolve(&flags,
                                          AGENT_NEED_HUB | AGENT_NEED_TOKEN | AGENT_NEED_AGENT, &r,
                                          err, sizeof(err)),
                     0);
    assert_string_equal(r.hub, "http://env:1");
    assert_string_equal(r.token, "cnt_env");
    assert_string_equal(r.agent_id, AID); /* the agent still comes from the file */
    /* Flags over environment. */
    flags.hub = "http://flag:2";
    flags.token = "cnt_flag";
    assert_int_equal(
        agent_config_resolve(&flags, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &r, err, sizeof(err)), 0);
    assert_string_equal(r.hub, "http://flag:2");
    assert_string_equal(r.token, "cnt_flag");
    /* With everything given, the file is not even read (so a bad one does
     * not stop `connect ls --hub --token`). */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(
        agent_config_resolve(&flags, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &r, err, sizeof(err)), 0);
    assert_false(r.loaded);
    /* ... but when it is needed, its permissions are checked. */
    assert_int_equal(agent_config_resolve(&flags, AGENT_NEED_AGENT, &r, err, sizeof(err)),
                     CN_EAUTH);
    assert_int_equal(chmod(path, 0600), 0);
    flags.hub = "ftp://nope";
    assert_int_equal(agent_config_resolve(&flags, AGENT_NEED_HUB, &r, err, sizeof(err)), CN_EINVAL);
    unsetenv("CONNECT_HUB");
    unsetenv("CONNECT_TOKEN");
    agent_config_wipe(&r);
}

static void test_missing_settings_say_how(void **state)
{
    char path[512], err[256];
    path_in(path, sizeof(path), "none.json");
    agent_common_t flags = {.config = path};
    agent_config_t r;
    assert_int_equal(agent_config_resolve(&flags, AGENT_NEED_HUB, &r, err, sizeof(err)),
                     CN_ENOTFOUND);
    assert_non_null(strstr(err, "--hub URL"));
    assert_non_null(strstr(err, "CONNECT_HUB"));
    flags.hub = "http://h:1";
    assert_int_equal(
        agent_config_resolve(&flags, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &r, err, sizeof(err)),
        CN_ENOTFOUND);
    assert_non_null(strstr(err, "CONNECT_TOKEN"));
    assert_int_equal(agent_config_resolve(&flags, AGENT_NEED_AGENT, &r, err, sizeof(err)),
                     CN_ENOTFOUND);
    assert_non_null(strstr(err, "connect enroll"));
    /* A config without keys is not an enrolled agent. */
    write_file(path, "{\"hub\":\"http://h:1\",\"agentId\":\"" AID "\"}", 0600);
    assert_int_equal(agent_config_resolve(&flags, AGENT_NEED_AGENT, &r, err, sizeof(err)),
                     CN_ENOTFOUND);
}

/* The stored token (and CA file, and consent to plain http) belong to the
 * hub the config was written for: another --hub never gets them. */
static void test_token_bound_to_its_hub(void **state)
{
    char path[512], err[512];
    path_in(path, sizeof(path), "bound.json");
    agent_config_t c;
    sample(&c);
    snprintf(c.hub, sizeof(c.hub), "https://hub.example.com");
    snprintf(c.ca_file, sizeof(c.ca_file), "/etc/connect/ca.pem");
    c.allow_insecure = true;
    assert_int_equal(agent_config_save(path, &c, err, sizeof(err)), 0);
    agent_config_wipe(&c);
    unsetenv("CONNECT_HUB");
    unsetenv("CONNECT_TOKEN");
    unsetenv("CONNECT_CA_FILE");

    /* The same hub, spelt differently: the stored settings apply. */
    static const char *const same[] = {"https://hub.example.com", "HTTPS://Hub.Example.COM:443/",
                                       NULL};
    agent_config_t r;
    for (size_t i = 0; same[i]; i++) {
        agent_common_t flags = {.config = path, .hub = same[i]};
        assert_int_equal(
            agent_config_resolve(&flags, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &r, err, sizeof(err)),
            0);
        assert_string_equal(r.token, "cnt_secret");
        assert_string_equal(r.ca_file, "/etc/connect/ca.pem");
        assert_true(r.allow_insecure);
        agent_config_wipe(&r);
    }
    /* Another scheme, host, port or base path: none of it. */
    static const char *const other[] = {"http://hub.example.com:443", "https://evil.example.com",
                                        "https://hub.example.com:8443", "https://hub.example.com/x",
                                        NULL};
    for (size_t i = 0; other[i]; i++) {
        agent_common_t flags = {.config = path, .hub = other[i]};
        err[0] = '\0';
        assert_int_equal(
            agent_config_resolve(&flags, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &r, err, sizeof(err)),
            CN_ENOTFOUND);
        if (!strstr(err, "never sent") || !strstr(err, "https://hub.example.com"))
            fail_msg("%s: '%s'", other[i], err);
        assert_int_equal(agent_config_resolve(&flags, AGENT_NEED_HUB, &r, err, sizeof(err)), 0);
        assert_string_equal(r.token, "");
        assert_string_equal(r.ca_file, "");
        assert_false(r.allow_insecure);
        agent_config_wipe(&r);
    }
    /* CONNECT_HUB counts as naming another hub too. */
    setenv("CONNECT_HUB", "https://evil.example.com", 1);
    agent_common_t env_flags = {.config = path};
    assert_int_equal(
        agent_config_resolve(&env_flags, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &r, err, sizeof(err)),
        CN_ENOTFOUND);
    unsetenv("CONNECT_HUB");
    /* A token given for the other hub is used for it. */
    agent_common_t given = {.config = path, .hub = "https://evil.example.com", .token = "cnt_x"};
    assert_int_equal(
        agent_config_resolve(&given, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &r, err, sizeof(err)), 0);
    assert_string_equal(r.token, "cnt_x");
    agent_config_wipe(&r);
}

/* --token-file FILE and --token - (stdin) keep the token out of argv. */
static void test_token_from_file_or_stdin(void **state)
{
    char path[512], tok[512], err[512];
    path_in(path, sizeof(path), "none.json");
    path_in(tok, sizeof(tok), "token.txt");
    unsetenv("CONNECT_TOKEN");
    write_file(tok, "  cnt_from_file \r\nsecond line\n", 0600);
    agent_common_t flags = {.config = path, .hub = "http://127.0.0.1:1", .token_file = tok};
    agent_config_t r;
    assert_int_equal(
        agent_config_resolve(&flags, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &r, err, sizeof(err)), 0);
    assert_string_equal(r.token, "cnt_from_file");
    agent_config_wipe(&r);
    /* Both at once is a mistake worth saying. */
    flags.token = "cnt_arg";
    assert_int_equal(agent_config_resolve(&flags, AGENT_NEED_TOKEN, &r, err, sizeof(err)),
                     CN_EINVAL);
    assert_non_null(strstr(err, "not both"));
    /* Standard input. */
    flags.token_file = NULL;
    flags.token = "-";
    write_file(tok, "cnt_from_stdin\n", 0600);
    assert_non_null(freopen(tok, "r", stdin));
    assert_int_equal(
        agent_config_resolve(&flags, AGENT_NEED_HUB | AGENT_NEED_TOKEN, &r, err, sizeof(err)), 0);
    assert_string_equal(r.token, "cnt_from_stdin");
    agent_config_wipe(&r);
    /* Empty, missing, or not a token: one line each. */
    write_file(tok, "\n", 0600);
    flags.token = NULL;
    flags.token_file = tok;
    assert_int_equal(agent_config_resolve(&flags, AGENT_NEED_TOKEN, &r, err, sizeof(err)),
                     CN_EINVAL);
    assert_non_null(strstr(err, "no token in"));
    write_file(tok, "has space\n", 0600);
    assert_int_equal(agent_config_resolve(&flags, AGENT_NEED_TOKEN, &r, err, sizeof(err)),
                     CN_EINVAL);
    flags.token_file = "/nonexistent/token";
    assert_int_equal(agent_config_resolve(&flags, AGENT_NEED_TOKEN, &r, err, sizeof(err)), CN_EIO);
    assert_non_null(strstr(err, "/nonexistent/token"));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_save_then_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_unsafe_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_choice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_settings_say_how, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_bound_to_its_hub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_from_file_or_stdin, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
