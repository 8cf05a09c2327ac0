/* Redis (and compatible servers such as Valkey and KeyDB): RESP. Clients
 * send commands as arrays of bulk strings, "*<n>\r\n$<len>\r\n...", which
 * is what redis-cli and every client library send first. The probe sends
 * PING and expects +PONG; an -ERR line is Redis refusing (loading, too many
 * clients), except that a server asking for a password is healthy. */
#include "plugin_util.h"

#include <string.h>

#define RESP_ARGS_MAX 1048576 /* the server's own limit on a multibulk length */
#define RESP_DIGITS_MAX 10

/* Reads "<digits>\r\n" at data[*i]; returns MATCH with *value set, MORE when
 * the bytes end first, NO when malformed or above `max`. */
static int resp_number(const uint8_t *data, size_t len, size_t *i, unsigned long max,
                       unsigned long *value)
{
    unsigned long v = 0;
    size_t n = 0;
    while (*i < len && data[*i] >= '0' && data[*i] <= '9') {
        v = v * 10 + (unsigned long)(data[*i] - '0');
        if (++n > RESP_DIGITS_MAX || v > max)
            return CN_PLUGIN_NO;
        (*i)++;
    }
    if (*i == len)
        return CN_PLUGIN_MORE;
    if (n == 0 || data[*i] != '\r')
        return CN_PLUGIN_NO;
    if (++(*i) == len)
        return CN_PLUGIN_MORE;
    if (data[*i] != '\n')
        return CN_PLUGIN_NO;
    (*i)++;
    *value = v;
    return CN_PLUGIN_MATCH;
}

static int redis_detect(const uint8_t *data, size_t len, int from)
{
    size_t i = 1;
    unsigned long n, blen;
    int v;
    if (from != CN_PLUGIN_FROM_CLIENT)
        return CN_PLUGIN_NO;
    if (len == 0)
        return CN_PLUGIN_MORE;
    if (data[0] != '*')
        return CN_PLUGIN_NO;
    v = resp_number(data, len, &i, RESP_ARGS_MAX, &n);
    if (v != CN_PLUGIN_MATCH)
        return v;
    if (n == 0)
        return CN_PLUGIN_NO; /* an empty command is not a first message */
    if (i == len)
        return CN_PLUGIN_MORE;
    if (data[i++] != '$')
        return CN_PLUGIN_NO;
    /* The command name's length: short, but not empty. */
    v = resp_number(data, len, &i, 64, &blen);
    if (v != CN_PLUGIN_MATCH)
        return v;
    return blen ? CN_PLUGIN_MATCH : CN_PLUGIN_NO;
}

static int redis_probe_request(const cn_plugin_target_t *target, uint8_t *out, size_t cap,
                               size_t *out_len)
{
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    if (cap < sizeof(ping) - 1)
        return CN_PLUGIN_ETOOBIG;
    memcpy(out, ping, sizeof(ping) - 1);
    *out_len = sizeof(ping) - 1;
    return 0;
}

static bool starts(const uint8_t *p, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && !memcmp(p, prefix, n);
}

static int redis_probe_reply(const uint8_t *reply, size_t len, char *why, size_t cap)
{
    const uint8_t *eol = len ? memchr(reply, '\n', len) : NULL;
    char text[160];
    if (len && reply[0] != '+' && reply[0] != '-')
        return plug_down(why, cap, "not a Redis server (answer starts 0x%02x)", reply[0]);
    /* A reply line longer than 512 bytes is refused whether or not its end
     * has arrived yet, so that a prefix and the whole reply agree. */
    if (eol ? (size_t)(eol - reply) > 512 : len > 512)
        return plug_down(why, cap, "not a Redis server (no line end)");
    if (!eol)
        return CN_PLUGIN_PARTIAL;
    size_t line = (size_t)(eol - reply) + 1;
    if (line < 3 || reply[line - 2] != '\r')
        return plug_down(why, cap, "not a Redis server (malformed line)");
    if (starts(reply, len, "+PONG\r\n"))
        return CN_PLUGIN_UP;
    /* Asking for credentials is a healthy server: auth is the client's job. */
    if (starts(reply, len, "-NOAUTH ") || starts(reply, len, "-WRONGPASS "))
        return CN_PLUGIN_UP;
    plug_printable(text, sizeof(text), reply + 1, line - 1);
    if (reply[0] == '-')
        return plug_down(why, cap, "Redis error: %s", text);
    return plug_down(why, cap, "not a Redis server (answered \"%s\" to PING)", text);
}

/* redis[s]://[user@]host:port[/database][?options]: no trailing slash
 * without a database, as redis-cli -u and client libraries print it. */
static int redis_connection_string(const cn_plugin_target_t *t, const cn_plugin_meta_t *meta,
                                   char *out, size_t cap)
{
    plug_str_t s;
    const char *user = plug_meta_user(meta), *db = plug_meta_database(meta);
    if (!plug_target_ok(t))
        return CN_PLUGIN_EINVAL;
    plug_str_init(&s, out, cap);
    plug_str_authority(&s, plug_meta_tls(meta) == 1 ? "rediss" : "redis", t, user);
    if (db) {
        plug_str_puts(&s, "/");
        plug_str_escape(&s, db);
    }
    plug_str_options(&s, meta, '?');
    return plug_str_done(&s);
}

const cn_plugin_t cn_plugin_redis = {
    .abi_version = CN_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(cn_plugin_t),
    .name = "redis",
    .description = "Redis and compatible servers (RESP)",
    .flags = 0,
    .default_ports = {6379},
    .detect = redis_detect,
    .probe_request = redis_probe_request,
    .probe_reply = redis_probe_reply,
    .connection_string = redis_connection_string,
};

CN_PLUGIN_DEFINE(cn_plugin_redis)
