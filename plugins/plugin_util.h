/* Helpers shared by the built-in plugins: bounded string building with
 * RFC 3986 percent-escaping, host:port with IPv6 brackets, the metadata
 * options as a query string, integer readers and reason texts. Compiled into
 * every plugin (built-in and shared object); it uses only the plugin ABI
 * header and libc, and never the heap. */
#ifndef PLUG_UTIL_H
#define PLUG_UTIL_H

#include <connect/plugin.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A writer into a caller's fixed buffer. The first write that does not fit
 * sets `err` to CN_PLUGIN_ETOOBIG; later writes do nothing. The text stays
 * NUL-terminated whenever cap > 0. */
typedef struct plug_str {
    char *out;
    size_t cap, len;
    int err;
} plug_str_t;

void plug_str_init(plug_str_t *s, char *out, size_t cap);
void plug_str_puts(plug_str_t *s, const char *text);
/* Appends `text` percent-encoded: RFC 3986 unreserved characters
 * (ALPHA DIGIT - . _ ~) pass, every other byte becomes %XX. */
void plug_str_escape(plug_str_t *s, const char *text);
/* Appends "host:port", with an IPv6 literal in brackets. */
void plug_str_hostport(plug_str_t *s, const cn_plugin_target_t *t);
/* Appends "SCHEME://[USER@]HOST:PORT", the user escaped (none when NULL). */
void plug_str_authority(plug_str_t *s, const char *scheme, const cn_plugin_target_t *t,
                        const char *user);
/* Appends meta->options as "k=v&k=v", each key and value escaped, starting
 * with `first_sep` ('?' or '&') when at least one is written. Returns the
 * separator the next parameter takes ('&' after any output). Options with a
 * NULL or empty key are skipped. */
char plug_str_options(plug_str_t *s, const cn_plugin_meta_t *meta, char first_sep);
/* The URL of a database server, SCHEME://[USER@]HOST:PORT/[DB][?TLS&OPTIONS]:
 * DB is meta's database, else default_db (NULL: none); TLS is tls_on or
 * tls_off ("sslmode=require", ...) when meta sets tls. 0, CN_PLUGIN_EINVAL
 * (no host or port) or CN_PLUGIN_ETOOBIG. */
int plug_db_url(const cn_plugin_target_t *t, const cn_plugin_meta_t *meta, const char *scheme,
                const char *default_db, const char *tls_on, const char *tls_off, char *out,
                size_t cap);
/* 0, or the error of the first write that did not fit. */
int plug_str_done(const plug_str_t *s);

/* True when the target has a usable host and a non-zero port. */
bool plug_target_ok(const cn_plugin_target_t *t);
/* The meta field when set and non-empty, else NULL (meta may be NULL). */
const char *plug_meta_user(const cn_plugin_meta_t *meta);
const char *plug_meta_database(const cn_plugin_meta_t *meta);
int plug_meta_tls(const cn_plugin_meta_t *meta); /* -1 when unset */

uint32_t plug_be32(const uint8_t *p);
uint32_t plug_le32(const uint8_t *p);
uint32_t plug_le24(const uint8_t *p);
uint16_t plug_le16(const uint8_t *p);

/* Writes a reason into why[0..cap) with printf formatting; always returns
 * CN_PLUGIN_DOWN so a probe can `return plug_down(why, cap, "...")`. */
int plug_down(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Copies up to `max` bytes of `data` into out as printable text (other bytes
 * become '.'), stopping at CR or LF: for quoting a peer's message. */
void plug_printable(char *out, size_t cap, const uint8_t *data, size_t len);

#endif
