/* Helpers shared by the built-in plugins (see plugin_util.h). */
#include "plugin_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void plug_str_init(plug_str_t *s, char *out, size_t cap)
{
    s->out = out;
    s->cap = cap;
    s->len = 0;
    s->err = cap ? 0 : CN_PLUGIN_ETOOBIG;
    if (cap)
        out[0] = '\0';
}

static void put(plug_str_t *s, const char *p, size_t n)
{
    if (s->err)
        return;
    if (n >= s->cap - s->len) { /* room for the NUL too */
        s->err = CN_PLUGIN_ETOOBIG;
        return;
    }
    memcpy(s->out + s->len, p, n);
    s->len += n;
    s->out[s->len] = '\0';
}

void plug_str_puts(plug_str_t *s, const char *text)
{
    put(s, text, strlen(text));
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

void plug_str_escape(plug_str_t *s, const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (unreserved(*p)) {
            put(s, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            put(s, e, 3);
        }
    }
}

void plug_str_hostport(plug_str_t *s, const cn_plugin_target_t *t)
{
    char port[8];
    bool v6 = strchr(t->host, ':') != NULL;
    if (v6)
        put(s, "[", 1);
    plug_str_puts(s, t->host);
    snprintf(port, sizeof(port), "%s%u", v6 ? "]:" : ":", (unsigned)t->port);
    plug_str_puts(s, port);
}

void plug_str_authority(plug_str_t *s, const char *scheme, const cn_plugin_target_t *t,
                        const char *user)
{
    plug_str_puts(s, scheme);
    plug_str_puts(s, "://");
    if (user) {
        plug_str_escape(s, user);
        plug_str_puts(s, "@");
    }
    plug_str_hostport(s, t);
}

char plug_str_options(plug_str_t *s, const cn_plugin_meta_t *meta, char first_sep)
{
    char sep = first_sep;
    if (!meta || !meta->options)
        return sep;
    for (size_t i = 0; i < meta->n_options; i++) {
        const cn_plugin_option_t *o = &meta->options[i];
        if (!o->key || !o->key[0])
            continue;
        put(s, &sep, 1);
        plug_str_escape(s, o->key);
        put(s, "=", 1);
        plug_str_escape(s, o->value ? o->value : "");
        sep = '&';
    }
    return sep;
}

int plug_db_url(const cn_plugin_target_t *t, const cn_plugin_meta_t *meta, const char *scheme,
                const char *default_db, const char *tls_on, const char *tls_off, char *out,
                size_t cap)
{
    plug_str_t s;
    const char *db = plug_meta_database(meta);
    int tls = plug_meta_tls(meta);
    char sep = '?';
    if (!plug_target_ok(t))
        return CN_PLUGIN_EINVAL;
    plug_str_init(&s, out, cap);
    plug_str_authority(&s, scheme, t, plug_meta_user(meta));
    plug_str_puts(&s, "/");
    if (db || default_db)
        plug_str_escape(&s, db ? db : default_db);
    if (tls >= 0) {
        plug_str_puts(&s, "?");
        plug_str_puts(&s, tls ? tls_on : tls_off);
        sep = '&';
    }
    plug_str_options(&s, meta, sep);
    return plug_str_done(&s);
}

int plug_str_done(const plug_str_t *s)
{
    return s->err;
}

bool plug_target_ok(const cn_plugin_target_t *t)
{
    return t && t->host && t->host[0] && t->port;
}

const char *plug_meta_user(const cn_plugin_meta_t *meta)
{
    return meta && meta->user && meta->user[0] ? meta->user : NULL;
}

const char *plug_meta_database(const cn_plugin_meta_t *meta)
{
    return meta && meta->database && meta->database[0] ? meta->database : NULL;
}

int plug_meta_tls(const cn_plugin_meta_t *meta)
{
    return meta && meta->tls >= 0 ? (meta->tls ? 1 : 0) : -1;
}

uint32_t plug_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint32_t plug_le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

uint32_t plug_le24(const uint8_t *p)
{
    return (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

uint16_t plug_le16(const uint8_t *p)
{
    return (uint16_t)(p[1] << 8 | p[0]);
}

int plug_down(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    /* clang-tidy 14's valist checker loses track of va_start here (it does
     * not for the same code in sdk/src/cn_errmsg.c): a false positive. */
    if (why && cap)
        vsnprintf(why, cap, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    return CN_PLUGIN_DOWN;
}

void plug_printable(char *out, size_t cap, const uint8_t *data, size_t len)
{
    size_t n = 0;
    if (!cap)
        return;
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        if (data[i] == '\r' || data[i] == '\n')
            break;
        out[n++] = data[i] >= 0x20 && data[i] < 0x7f ? (char)data[i] : '.';
    }
    out[n] = '\0';
}
