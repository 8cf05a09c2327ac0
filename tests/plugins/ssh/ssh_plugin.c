/* A third-party protocol plugin for SSH, built outside the Connect tree
 * against the installed <connect/plugin.h> alone (test_plugins.sh compiles
 * it with `cc -shared -fPIC -I PREFIX/include`). It proves that the ABI is
 * usable from outside: no Connect source, no libconnect, only the header.
 *
 * SSH (RFC 4253 section 4.2): both sides send an identification line first,
 * "SSH-protoversion-softwareversion [comments]" CR LF; a server may send
 * other lines before it. We detect "SSH-2.0-" or "SSH-1.99-" from either
 * side, and the probe sends nothing and reads the server's line. */
#include <connect/plugin.h>

#include <stdio.h>
#include <string.h>

#define SSH_LINE_MAX 255 /* RFC 4253: at most 255 characters with CR LF */

static int prefix_match(const uint8_t *data, size_t len, const char *want)
{
    size_t n = strlen(want);
    return memcmp(data, want, len < n ? len : n) == 0;
}

static int ssh_detect(const uint8_t *data, size_t len, int from)
{
    if (prefix_match(data, len, "SSH-2.0-") || prefix_match(data, len, "SSH-1.99-"))
        return len >= 8 && (len >= 9 || data[4] == '2') ? CN_PLUGIN_MATCH : CN_PLUGIN_MORE;
    return CN_PLUGIN_NO;
}

static int ssh_probe_request(const cn_plugin_target_t *t, uint8_t *out, size_t cap, size_t *len)
{
    *len = 0;
    return 0;
}

static int ssh_probe_reply(const uint8_t *reply, size_t len, char *why, size_t cap)
{
    if (!memchr(reply, '\n', len)) {
        if (len <= SSH_LINE_MAX)
            return CN_PLUGIN_PARTIAL;
        snprintf(why, cap, "no SSH identification line");
        return CN_PLUGIN_DOWN;
    }
    if (ssh_detect(reply, len, CN_PLUGIN_FROM_SERVER) == CN_PLUGIN_MATCH)
        return CN_PLUGIN_UP;
    snprintf(why, cap, "not an SSH server");
    return CN_PLUGIN_DOWN;
}

static int ssh_connection_string(const cn_plugin_target_t *t, const cn_plugin_meta_t *meta,
                                 char *out, size_t cap)
{
    const char *user = meta && meta->user && meta->user[0] ? meta->user : NULL;
    int v6 = strchr(t->host, ':') != NULL, n;
    if (!t->host[0] || !t->port)
        return CN_PLUGIN_EINVAL;
    /* RFC 3986 userinfo: this sample accepts only plain user names. */
    if (user && strspn(user, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
                    strlen(user))
        return CN_PLUGIN_EINVAL;
    n = snprintf(out, cap, "ssh://%s%s%s%s%s:%u", user ? user : "", user ? "@" : "", v6 ? "[" : "",
                 t->host, v6 ? "]" : "", (unsigned)t->port);
    return n < 0 || (size_t)n >= cap ? CN_PLUGIN_ETOOBIG : 0;
}

static const cn_plugin_t ssh_plugin = {
    .abi_version = CN_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(cn_plugin_t),
    .name = "ssh",
    .description = "SSH (sample third-party plugin)",
    .flags = CN_PLUGIN_SERVER_FIRST,
    .default_ports = {22},
    .detect = ssh_detect,
    .probe_request = ssh_probe_request,
    .probe_reply = ssh_probe_reply,
    .connection_string = ssh_connection_string,
};

CN_PLUGIN_DEFINE(ssh_plugin)
