/* Connection strings: every plugin, with and without each metadata field,
 * the examples of the contract and the issue character for character, and
 * metadata that needs percent-escaping, IPv6 brackets and bounded output. */
#include "cn_test.h"

#include "cn_err.h"
#include "plugins.h"

#include <jansson.h>

typedef struct vector {
    const cn_plugin_t *plugin;
    const char *host;
    uint16_t port;
    const char *metadata; /* JSON text or NULL */
    const char *want;
} vector_t;

static const vector_t vectors[] = {
    /* The contract's examples: no metadata. */
    {&cn_plugin_postgresql, "127.0.0.1", 15432, NULL, "postgresql://127.0.0.1:15432/postgres"},
    {&cn_plugin_mysql, "127.0.0.1", 13306, NULL, "mysql://127.0.0.1:13306/"},
    {&cn_plugin_redis, "127.0.0.1", 16379, NULL, "redis://127.0.0.1:16379"},
    {&cn_plugin_mongodb, "127.0.0.1", 27018, NULL,
     "mongodb://127.0.0.1:27018/?directConnection=true"},
    {&cn_plugin_http, "127.0.0.1", 18080, NULL, "http://127.0.0.1:18080/"},
    {&cn_plugin_tcp, "127.0.0.1", 19000, NULL, "127.0.0.1:19000"},
    /* The issue's examples: with metadata. */
    {&cn_plugin_postgresql, "127.0.0.1", 15432,
     "{\"user\":\"app\",\"database\":\"appdb\",\"tls\":false}",
     "postgresql://app@127.0.0.1:15432/appdb?sslmode=disable"},
    {&cn_plugin_mysql, "127.0.0.1", 13306, "{\"user\":\"root\",\"database\":\"shop\"}",
     "mysql://root@127.0.0.1:13306/shop"},
    {&cn_plugin_redis, "127.0.0.1", 16379, "{\"database\":0}", "redis://127.0.0.1:16379/0"},
    {&cn_plugin_redis, "127.0.0.1", 16379, "{\"database\":\"3\"}", "redis://127.0.0.1:16379/3"},
    {&cn_plugin_mongodb, "127.0.0.1", 27018, "{}",
     "mongodb://127.0.0.1:27018/?directConnection=true"},
    /* tls on and off */
    {&cn_plugin_postgresql, "db.example", 5432, "{\"tls\":true}",
     "postgresql://db.example:5432/postgres?sslmode=require"},
    {&cn_plugin_mysql, "h", 3306, "{\"tls\":true}", "mysql://h:3306/?ssl-mode=REQUIRED"},
    {&cn_plugin_mysql, "h", 3306, "{\"tls\":false,\"database\":\"d\"}",
     "mysql://h:3306/d?ssl-mode=DISABLED"},
    {&cn_plugin_redis, "h", 6380, "{\"tls\":true,\"user\":\"default\"}", "rediss://default@h:6380"},
    {&cn_plugin_redis, "h", 6379, "{\"tls\":false}", "redis://h:6379"},
    {&cn_plugin_mongodb, "h", 27017, "{\"tls\":true,\"user\":\"u\",\"database\":\"admin\"}",
     "mongodb://u@h:27017/admin?directConnection=true&tls=true"},
    {&cn_plugin_mongodb, "h", 27017, "{\"tls\":false}",
     "mongodb://h:27017/?directConnection=true&tls=false"},
    {&cn_plugin_http, "h", 8443, "{\"tls\":true}", "https://h:8443/"},
    {&cn_plugin_tcp, "h", 9000, "{\"tls\":true,\"user\":\"u\",\"database\":\"d\"}", "h:9000"},
    /* user and database are not part of an HTTP URL */
    {&cn_plugin_http, "h", 80, "{\"user\":\"u\",\"database\":\"d\"}", "http://h:80/"},
    /* options: an object (its order), or a "k=v&k=v" string */
    {&cn_plugin_postgresql, "h", 5432,
     "{\"tls\":false,\"options\":{\"application_name\":\"my app\",\"connect_timeout\":10}}",
     "postgresql://h:5432/postgres?sslmode=disable&application_name=my%20app&connect_timeout=10"},
    {&cn_plugin_postgresql, "h", 5432,
     "{\"options\":\"connect_timeout=10&target_session_attrs=any\"}",
     "postgresql://h:5432/postgres?connect_timeout=10&target_session_attrs=any"},
    {&cn_plugin_mongodb, "h", 1, "{\"options\":{\"replicaSet\":\"rs0\",\"retryWrites\":false}}",
     "mongodb://h:1/?directConnection=true&replicaSet=rs0&retryWrites=false"},
    {&cn_plugin_redis, "h", 1, "{\"options\":{\"protocol\":3}}", "redis://h:1?protocol=3"},
    {&cn_plugin_http, "h", 1, "{\"options\":\"a=1&flag\"}", "http://h:1/?a=1&flag="},
    {&cn_plugin_mysql, "h", 1, "{\"options\":{\"charset\":\"utf8mb4\",\"skip\":null}}",
     "mysql://h:1/?charset=utf8mb4"},
    /* escaping: reserved characters, spaces, percent, non-ASCII (UTF-8
     * bytes), in user, database and options */
    {&cn_plugin_postgresql, "127.0.0.1", 5432,
     "{\"user\":\"app user@corp:x/y\",\"database\":\"my db/é?#\"}",
     "postgresql://app%20user%40corp%3Ax%2Fy@127.0.0.1:5432/my%20db%2F%C3%A9%3F%23"},
    {&cn_plugin_mysql, "h", 3306, "{\"user\":\"a%b\",\"database\":\"100%\"}",
     "mysql://a%25b@h:3306/100%25"},
    {&cn_plugin_mongodb, "h", 27017, "{\"user\":\"u+v=w\",\"database\":\"d&e\"}",
     "mongodb://u%2Bv%3Dw@h:27017/d%26e?directConnection=true"},
    {&cn_plugin_redis, "h", 6379, "{\"user\":\"~a_b-c.d\"}", "redis://~a_b-c.d@h:6379"},
    {&cn_plugin_postgresql, "h", 5432, "{\"options\":{\"a b&c\":\"x=y&z\"}}",
     "postgresql://h:5432/postgres?a%20b%26c=x%3Dy%26z"},
    /* IPv6 literals in brackets */
    {&cn_plugin_postgresql, "::1", 5432, NULL, "postgresql://[::1]:5432/postgres"},
    {&cn_plugin_tcp, "fe80::1", 22, NULL, "[fe80::1]:22"},
    {&cn_plugin_http, "2001:db8::7", 8080, NULL, "http://[2001:db8::7]:8080/"},
    {&cn_plugin_redis, "::1", 6379, "{\"database\":1}", "redis://[::1]:6379/1"},
    /* fields of the wrong type, or empty, are ignored */
    {&cn_plugin_postgresql, "h", 5432,
     "{\"user\":7,\"database\":[1],\"tls\":\"yes\",\"options\":5}", "postgresql://h:5432/postgres"},
    {&cn_plugin_mysql, "h", 3306, "{\"user\":\"\",\"database\":\"\"}", "mysql://h:3306/"},
    {&cn_plugin_redis, "h", 6379, "{\"database\":-1}", "redis://h:6379"},
    {&cn_plugin_redis, "h", 6379, "[1,2]", "redis://h:6379"},
};

static void test_every_vector(void **state)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const vector_t *v = &vectors[i];
        json_t *meta = NULL;
        char out[CN_PLUGIN_CONNSTR_MAX];
        if (v->metadata) {
            json_error_t e;
            meta = json_loads(v->metadata, JSON_DECODE_ANY, &e);
            if (!meta)
                fail_msg("vector %zu: bad JSON %s", i, e.text);
        }
        int rc = plugins_connection_string(v->plugin, v->host, v->port, meta, out, sizeof(out));
        if (rc != 0 || strcmp(out, v->want) != 0)
            fail_msg("vector %zu (%s): rc %d, got \"%s\", want \"%s\"", i, v->plugin->name, rc,
                     rc ? "" : out, v->want);
        json_decref(meta);
    }
}

static void test_output_is_bounded(void **state)
{
    const char *want = "postgresql://127.0.0.1:15432/postgres";
    size_t n = strlen(want);
    char out[64];
    /* Exactly big enough works; one byte less is CN_ETOOBIG, and nothing
     * is written past the buffer (ASan watches the heap copy). */
    char *exact = malloc(n + 1);
    assert_non_null(exact);
    assert_int_equal(
        plugins_connection_string(&cn_plugin_postgresql, "127.0.0.1", 15432, NULL, exact, n + 1),
        0);
    assert_string_equal(exact, want);
    free(exact);
    char *small = malloc(n);
    assert_non_null(small);
    assert_int_equal(
        plugins_connection_string(&cn_plugin_postgresql, "127.0.0.1", 15432, NULL, small, n),
        CN_ETOOBIG);
    free(small);
    /* Escaping triples a byte's size: it counts. */
    json_t *meta = json_pack("{s:s}", "user", "@@@@@@@@@@@@@@@@@@@@");
    assert_int_equal(plugins_connection_string(&cn_plugin_mysql, "h", 1, meta, out, sizeof(out)),
                     CN_ETOOBIG);
    json_decref(meta);
    /* Every plugin, a 1-byte buffer. */
    const cn_plugin_t *all[] = {&cn_plugin_postgresql, &cn_plugin_mysql, &cn_plugin_redis,
                                &cn_plugin_mongodb,    &cn_plugin_http,  &cn_plugin_tcp};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(plugins_connection_string(all[i], "h", 1, NULL, out, 1), CN_ETOOBIG);
}

static void test_bad_targets_are_refused(void **state)
{
    char out[256];
    const cn_plugin_t *all[] = {&cn_plugin_postgresql, &cn_plugin_mysql, &cn_plugin_redis,
                                &cn_plugin_mongodb,    &cn_plugin_http,  &cn_plugin_tcp};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(plugins_connection_string(all[i], "", 1, NULL, out, sizeof(out)),
                         CN_EINVAL);
        assert_int_equal(plugins_connection_string(all[i], "h", 0, NULL, out, sizeof(out)),
                         CN_EINVAL);
        cn_plugin_target_t t = {.host = NULL, .port = 1};
        assert_int_equal(all[i]->connection_string(&t, NULL, out, sizeof(out)), CN_PLUGIN_EINVAL);
    }
}

/* The ABI directly: options with NULL or empty keys are skipped, NULL
 * values are empty, tls < 0 is unset. */
static void test_abi_meta_edges(void **state)
{
    cn_plugin_option_t opts[] = {{"a", "1"}, {NULL, "x"}, {"", "y"}, {"b", NULL}};
    cn_plugin_meta_t m = {
        .user = "u", .database = NULL, .tls = -5, .options = opts, .n_options = 4};
    cn_plugin_target_t t = {.host = "h", .port = 5432};
    char out[256];
    assert_int_equal(cn_plugin_postgresql.connection_string(&t, &m, out, sizeof(out)), 0);
    assert_string_equal(out, "postgresql://u@h:5432/postgres?a=1&b=");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_vector),
        cmocka_unit_test(test_output_is_bounded),
        cmocka_unit_test(test_bad_targets_are_refused),
        cmocka_unit_test(test_abi_meta_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
