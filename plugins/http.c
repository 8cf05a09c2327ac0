/* HTTP/1.x: clients speak first with a request line, "METHOD SP target SP
 * HTTP/1.x CRLF"; an HTTP/2 client with prior knowledge sends the preface
 * "PRI * HTTP/2.0". The probe sends HEAD / and reads the status line: any
 * answer below 500 is a healthy server (a 404 or 401 still serves), a 5xx
 * is an unhealthy one. */
#include "plugin_util.h"

#include <stdio.h>
#include <string.h>

#define HTTP_METHOD_MAX 20
#define HTTP_LINE_MAX 8192

static bool tchar(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

static int http_detect(const uint8_t *data, size_t len, int from)
{
    static const char h2_preface[] = "PRI * HTTP/2.0\r\n";
    size_t i = 0, sp1;
    if (from != CN_PLUGIN_FROM_CLIENT)
        return CN_PLUGIN_NO;
    if (len > 0 && !memcmp(data, h2_preface, len < 16 ? len : 16))
        return len >= 16 ? CN_PLUGIN_MATCH : CN_PLUGIN_MORE;
    /* The method: an upper-case token (GET, POST, PROPFIND, ...). */
    while (i < len && tchar(data[i]) && i < HTTP_METHOD_MAX)
        i++;
    if (i == len)
        return i < HTTP_METHOD_MAX ? CN_PLUGIN_MORE : CN_PLUGIN_NO;
    if (i == 0 || data[i] != ' ')
        return CN_PLUGIN_NO;
    sp1 = i++;
    /* The target: visible characters, no spaces or controls. */
    while (i < len && data[i] > 0x20 && data[i] < 0x7f && i < HTTP_LINE_MAX)
        i++;
    if (i == len)
        return i < HTTP_LINE_MAX ? CN_PLUGIN_MORE : CN_PLUGIN_NO;
    if (i == sp1 + 1 || data[i] != ' ')
        return CN_PLUGIN_NO;
    i++;
    /* "HTTP/1.x\r\n" */
    static const char version[] = "HTTP/1.";
    for (size_t k = 0; k < 7; k++, i++) {
        if (i == len)
            return CN_PLUGIN_MORE;
        if (data[i] != (uint8_t)version[k])
            return CN_PLUGIN_NO;
    }
    if (i == len)
        return CN_PLUGIN_MORE;
    if (data[i] != '0' && data[i] != '1')
        return CN_PLUGIN_NO;
    if (++i == len)
        return CN_PLUGIN_MORE;
    if (data[i] != '\r')
        return CN_PLUGIN_NO;
    if (++i == len)
        return CN_PLUGIN_MORE;
    return data[i] == '\n' ? CN_PLUGIN_MATCH : CN_PLUGIN_NO;
}

static int http_probe_request(const cn_plugin_target_t *t, uint8_t *out, size_t cap,
                              size_t *out_len)
{
    plug_str_t s;
    if (!plug_target_ok(t))
        return CN_PLUGIN_EINVAL;
    plug_str_init(&s, (char *)out, cap);
    plug_str_puts(&s, "HEAD / HTTP/1.1\r\nHost: ");
    plug_str_hostport(&s, t);
    plug_str_puts(&s, "\r\nUser-Agent: connect-probe/1\r\nAccept: */*\r\n"
                      "Connection: close\r\n\r\n");
    if (plug_str_done(&s))
        return plug_str_done(&s);
    *out_len = s.len;
    return 0;
}

static int http_probe_reply(const uint8_t *reply, size_t len, char *why, size_t cap)
{
    static const char prefix[] = "HTTP/1.";
    size_t n = len < 7 ? len : 7;
    char text[160];
    if (memcmp(reply, prefix, n) != 0)
        return plug_down(why, cap, "not an HTTP server (answer starts 0x%02x)", reply[0]);
    /* "HTTP/1.x SSS" is all we need; the reason phrase is optional. */
    if (len < 12)
        return CN_PLUGIN_PARTIAL;
    if ((reply[7] != '0' && reply[7] != '1') || reply[8] != ' ' || reply[9] < '1' ||
        reply[9] > '5' || reply[10] < '0' || reply[10] > '9' || reply[11] < '0' || reply[11] > '9')
        return plug_down(why, cap, "not an HTTP server (bad status line)");
    int status = (reply[9] - '0') * 100 + (reply[10] - '0') * 10 + (reply[11] - '0');
    if (status < 500)
        return CN_PLUGIN_UP;
    plug_printable(text, sizeof(text), reply + 9, len - 9);
    return plug_down(why, cap, "HTTP %s", text);
}

/* http[s]://host:port/[?options]: the user and database do not belong in
 * an HTTP URL and are left out. */
static int http_connection_string(const cn_plugin_target_t *t, const cn_plugin_meta_t *meta,
                                  char *out, size_t cap)
{
    plug_str_t s;
    if (!plug_target_ok(t))
        return CN_PLUGIN_EINVAL;
    plug_str_init(&s, out, cap);
    plug_str_puts(&s, plug_meta_tls(meta) == 1 ? "https://" : "http://");
    plug_str_hostport(&s, t);
    plug_str_puts(&s, "/");
    plug_str_options(&s, meta, '?');
    return plug_str_done(&s);
}

const cn_plugin_t cn_plugin_http = {
    .abi_version = CN_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(cn_plugin_t),
    .name = "http",
    .description = "HTTP/1.x (and the HTTP/2 prior-knowledge preface)",
    .flags = 0,
    .default_ports = {80, 8080, 8000, 3000, 5000, 8888},
    .detect = http_detect,
    .probe_request = http_probe_request,
    .probe_reply = http_probe_reply,
    .connection_string = http_connection_string,
};

CN_PLUGIN_DEFINE(cn_plugin_http)
