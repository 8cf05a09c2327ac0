/* TCP: the fallback for any other protocol. It recognises nothing by its
 * bytes, and its probe is the TCP connection itself: a target that accepts
 * is up. Its connection string is the bare "host:port". */
#include "plugin_util.h"

static int tcp_probe_request(const cn_plugin_target_t *target, uint8_t *out, size_t cap,
                             size_t *out_len)
{
    *out_len = 0;
    return 0;
}

static int tcp_probe_reply(const uint8_t *reply, size_t len, char *why, size_t cap)
{
    return CN_PLUGIN_UP;
}

static int tcp_connection_string(const cn_plugin_target_t *t, const cn_plugin_meta_t *meta,
                                 char *out, size_t cap)
{
    plug_str_t s;
    if (!plug_target_ok(t))
        return CN_PLUGIN_EINVAL;
    plug_str_init(&s, out, cap);
    plug_str_hostport(&s, t);
    return plug_str_done(&s);
}

const cn_plugin_t cn_plugin_tcp = {
    .abi_version = CN_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(cn_plugin_t),
    .name = "tcp",
    .description = "Any TCP service (the fallback)",
    .flags = 0,
    .default_ports = {0},
    .detect = NULL,
    .probe_request = tcp_probe_request,
    .probe_reply = tcp_probe_reply,
    .connection_string = tcp_connection_string,
};

CN_PLUGIN_DEFINE(cn_plugin_tcp)
