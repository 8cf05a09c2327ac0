/* MySQL and MariaDB: the server speaks first, with a greeting in a packet
 * of sequence 0 (int<3> payload length, int<1> sequence, payload). A usable
 * server greets with Protocol::HandshakeV10 (0x0a, the version string, the
 * connection id, 8 bytes of scramble, a zero filler, capabilities); a server
 * that refuses the client outright (too many connections, host not allowed)
 * greets with an ERR packet (0xff, int<2> code, message). The probe sends
 * nothing and reads the greeting. */
#include "plugin_util.h"

#include <string.h>

#define MY_HANDSHAKE_V10 0x0a
#define MY_ERR 0xff
#define MY_GREETING_MAX 4096 /* real greetings are ~100 bytes */
#define MY_V10_MIN 17        /* 0x0a, "" NUL, id 4, scramble 8, filler, caps 2 */

/* A complete, well-formed greeting packet: CN_PLUGIN_MATCH; an impossible
 * one: CN_PLUGIN_NO; a plausible prefix: CN_PLUGIN_MORE. *kind receives the
 * payload's first byte on MATCH. */
static int my_greeting(const uint8_t *data, size_t len, uint8_t *kind)
{
    if (len < 4)
        return len >= 3 && (plug_le24(data) == 0 || plug_le24(data) > MY_GREETING_MAX)
                   ? CN_PLUGIN_NO
                   : CN_PLUGIN_MORE;
    uint32_t plen = plug_le24(data);
    if (plen == 0 || plen > MY_GREETING_MAX || data[3] != 0)
        return CN_PLUGIN_NO;
    if (len < 5)
        return CN_PLUGIN_MORE;
    const uint8_t *p = data + 4;
    if (p[0] != MY_HANDSHAKE_V10 && p[0] != MY_ERR)
        return CN_PLUGIN_NO;
    if (p[0] == MY_HANDSHAKE_V10 && plen < MY_V10_MIN)
        return CN_PLUGIN_NO;
    if (p[0] == MY_ERR && plen < 3)
        return CN_PLUGIN_NO;
    /* The server version must be printable up to its NUL; check what we
     * have so far so that junk is refused early. */
    size_t have = len - 4 < plen ? len - 4 : plen;
    if (p[0] == MY_HANDSHAKE_V10) {
        size_t i = 1;
        while (i < have && p[i] != 0) {
            if (p[i] < 0x20 || p[i] >= 0x7f)
                return CN_PLUGIN_NO;
            i++;
        }
        if (i == have)
            return have == plen ? CN_PLUGIN_NO : CN_PLUGIN_MORE;
        /* NUL at i: id (4), scramble (8), filler (must be 0), capabilities (2). */
        if (i + 1 + 4 + 8 + 1 + 2 > plen)
            return CN_PLUGIN_NO;
        if (have > i + 13 && p[i + 13] != 0)
            return CN_PLUGIN_NO;
    }
    if (have < plen)
        return CN_PLUGIN_MORE;
    *kind = p[0];
    return CN_PLUGIN_MATCH;
}

static int my_detect(const uint8_t *data, size_t len, int from)
{
    uint8_t kind;
    if (from != CN_PLUGIN_FROM_SERVER)
        return CN_PLUGIN_NO;
    return my_greeting(data, len, &kind);
}

static int my_probe_request(const cn_plugin_target_t *target, uint8_t *out, size_t cap,
                            size_t *out_len)
{
    *out_len = 0;
    return 0;
}

static int my_probe_reply(const uint8_t *reply, size_t len, char *why, size_t cap)
{
    uint8_t kind = 0;
    int v = my_greeting(reply, len, &kind);
    if (v == CN_PLUGIN_MORE)
        return CN_PLUGIN_PARTIAL;
    if (v == CN_PLUGIN_NO) {
        if (len >= 5 && reply[3] == 0 && reply[4] == 9)
            return plug_down(why, cap, "MySQL protocol 9 is not supported");
        return plug_down(why, cap, "not a MySQL server (no HandshakeV10 greeting)");
    }
    if (kind == MY_ERR) {
        /* ERR: 0xff, code, ["#" + 5-char SQL state], message */
        uint32_t plen = plug_le24(reply);
        const uint8_t *msg = reply + 4 + 3;
        size_t mlen = plen - 3;
        if (mlen >= 6 && msg[0] == '#') {
            msg += 6;
            mlen -= 6;
        }
        char text[160];
        plug_printable(text, sizeof(text), msg, mlen);
        return plug_down(why, cap, "MySQL error %u: %s", (unsigned)plug_le16(reply + 5), text);
    }
    return CN_PLUGIN_UP;
}

/* mysql://[user@]host:port/[database][?ssl-mode=REQUIRED|DISABLED&options] */
static int my_connection_string(const cn_plugin_target_t *t, const cn_plugin_meta_t *meta,
                                char *out, size_t cap)
{
    return plug_db_url(t, meta, "mysql", NULL, "ssl-mode=REQUIRED", "ssl-mode=DISABLED", out, cap);
}

const cn_plugin_t cn_plugin_mysql = {
    .abi_version = CN_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(cn_plugin_t),
    .name = "mysql",
    .description = "MySQL and MariaDB (client/server protocol, HandshakeV10)",
    .flags = CN_PLUGIN_SERVER_FIRST,
    .default_ports = {3306},
    .detect = my_detect,
    .probe_request = my_probe_request,
    .probe_reply = my_probe_reply,
    .connection_string = my_connection_string,
};

CN_PLUGIN_DEFINE(cn_plugin_mysql)
