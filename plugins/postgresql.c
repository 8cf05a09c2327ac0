/* PostgreSQL: the frontend/backend protocol 3. Clients speak first, with an
 * SSLRequest, a GSSENCRequest, a CancelRequest or a StartupMessage, each an
 * int32 length and an int32 code in network order. The probe sends an
 * SSLRequest, which every postmaster answers with one byte, 'S' or 'N',
 * before any authentication, and closes: no session, no log noise. */
#include "plugin_util.h"

#include <string.h>

#define PG_SSL_REQUEST 80877103u
#define PG_GSSENC_REQUEST 80877104u
#define PG_CANCEL_REQUEST 80877102u
#define PG_PROTOCOL_3 3u      /* major version, the code's high 16 bits */
#define PG_STARTUP_MAX 10000u /* the server's own limit on a startup packet */

static int pg_detect(const uint8_t *data, size_t len, int from)
{
    if (from != CN_PLUGIN_FROM_CLIENT)
        return CN_PLUGIN_NO;
    /* The length is at most 10000, so its first two bytes are zero. */
    if ((len >= 1 && data[0] != 0) || (len >= 2 && data[1] != 0))
        return CN_PLUGIN_NO;
    if (len < 4)
        return CN_PLUGIN_MORE;
    uint32_t plen = plug_be32(data);
    if (plen < 8 || plen > PG_STARTUP_MAX)
        return CN_PLUGIN_NO;
    if (len < 8)
        return CN_PLUGIN_MORE;
    uint32_t code = plug_be32(data + 4);
    if (code == PG_SSL_REQUEST || code == PG_GSSENC_REQUEST)
        return plen == 8 ? CN_PLUGIN_MATCH : CN_PLUGIN_NO;
    if (code == PG_CANCEL_REQUEST)
        return plen == 16 ? CN_PLUGIN_MATCH : CN_PLUGIN_NO;
    /* StartupMessage: protocol 3.x, then "key\0value\0...\0"; at least the
     * "user" parameter, so longer than the bare header. */
    if (code >> 16 == PG_PROTOCOL_3 && (code & 0xffff) < 0x100 && plen > 8)
        return CN_PLUGIN_MATCH;
    return CN_PLUGIN_NO;
}

static int pg_probe_request(const cn_plugin_target_t *target, uint8_t *out, size_t cap,
                            size_t *out_len)
{
    static const uint8_t ssl_request[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
    if (cap < sizeof(ssl_request))
        return CN_PLUGIN_ETOOBIG;
    memcpy(out, ssl_request, sizeof(ssl_request));
    *out_len = sizeof(ssl_request);
    return 0;
}

/* An ErrorResponse ('E', int32 length, fields "Xtext\0" ... "\0"): the
 * message field 'M' as the reason. */
static int pg_error(const uint8_t *r, size_t len, char *why, size_t cap)
{
    if (len < 5)
        return CN_PLUGIN_PARTIAL;
    uint32_t elen = plug_be32(r + 1);
    if (elen < 4 || elen > 4096)
        return plug_down(why, cap, "not a PostgreSQL server (bad error length %u)", elen);
    if (len < 1 + (size_t)elen)
        return CN_PLUGIN_PARTIAL;
    const uint8_t *p = r + 5, *end = r + 1 + elen;
    while (p < end && *p) {
        uint8_t field = *p++;
        const uint8_t *v = p;
        while (p < end && *p)
            p++;
        if (field == 'M') {
            char msg[160];
            plug_printable(msg, sizeof(msg), v, (size_t)(p - v));
            return plug_down(why, cap, "PostgreSQL error: %s", msg);
        }
        if (p < end)
            p++;
    }
    return plug_down(why, cap, "PostgreSQL error without a message");
}

static int pg_probe_reply(const uint8_t *reply, size_t len, char *why, size_t cap)
{
    if (len == 0)
        return CN_PLUGIN_PARTIAL;
    if (reply[0] == 'E')
        return pg_error(reply, len, why, cap);
    /* The answer is exactly one byte; the server then waits for us. More
     * bytes mean another protocol that happens to start with S or N
     * ("SSH-2.0-..."). */
    if ((reply[0] == 'S' || reply[0] == 'N') && len == 1)
        return CN_PLUGIN_UP;
    return plug_down(why, cap, "not a PostgreSQL server (answer starts 0x%02x, %zu bytes)",
                     reply[0], len);
}

/* postgresql://[user@]host:port/database[?sslmode=...&options]; the
 * database defaults to "postgres", the database every cluster has. */
static int pg_connection_string(const cn_plugin_target_t *t, const cn_plugin_meta_t *meta,
                                char *out, size_t cap)
{
    return plug_db_url(t, meta, "postgresql", "postgres", "sslmode=require", "sslmode=disable", out,
                       cap);
}

const cn_plugin_t cn_plugin_postgresql = {
    .abi_version = CN_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(cn_plugin_t),
    .name = "postgresql",
    .description = "PostgreSQL (frontend/backend protocol 3)",
    .flags = 0,
    .default_ports = {5432},
    .detect = pg_detect,
    .probe_request = pg_probe_request,
    .probe_reply = pg_probe_reply,
    .connection_string = pg_connection_string,
};

CN_PLUGIN_DEFINE(cn_plugin_postgresql)
