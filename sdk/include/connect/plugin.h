/* The protocol plugin ABI of Connect, version 1.
 *
 * A protocol plugin teaches Connect one application protocol (PostgreSQL,
 * MySQL, Redis, ...): its name and usual ports, how to recognise it from the
 * first bytes of a connection, how to check that a server speaking it is
 * healthy, and how to write the connection string a client uses to reach it.
 * Six plugins are built into connect and connect-hub; more are shared objects
 * loaded from a plugin directory (docs/plugins.md).
 *
 * This header is self-contained (only <stddef.h> and <stdint.h>) so that a
 * plugin builds outside the Connect tree against the installed header alone.
 *
 * A shared-object plugin exports exactly one symbol:
 *
 *     CN_PLUGIN_EXPORT const cn_plugin_t *cn_plugin_entry(void);
 *
 * returning a pointer to a static, constant vtable whose first two fields
 * are CN_PLUGIN_ABI_VERSION and sizeof(cn_plugin_t). CN_PLUGIN_DEFINE(var)
 * writes that function for you.
 *
 * Conventions
 * - Sans-IO. A plugin never touches sockets, files, clocks, threads or the
 *   heap: every function is a pure function of its arguments. The host owns
 *   sockets and timeouts, so no plugin can block an event loop or leak.
 * - Threading. Every function may be called from any thread, concurrently;
 *   a plugin keeps no mutable state.
 * - Ownership. Every pointer argument is borrowed for the duration of the
 *   call. Output buffers are the caller's, with their capacity given; a
 *   plugin writes nothing past it. The vtable and the strings it points to
 *   live as long as the shared object stays loaded.
 * - Errors. Functions that can fail return 0 or a negative CN_PLUGIN_E*
 *   code (the values equal libconnect's CN_E* codes). Verdict functions
 *   return one of their documented positive constants instead.
 * - Input bytes are untrusted: they come straight from the network. A plugin
 *   reads only within [data, data + len) and treats every length field in
 *   them as hostile.
 * - Versioning. A host accepts a vtable whose abi_version equals its own
 *   CN_PLUGIN_ABI_VERSION and whose struct_size is at least the size of
 *   version 1's fields; later minor additions go at the end of the struct
 *   and are read only when struct_size covers them. */
#ifndef CONNECT_PLUGIN_H
#define CONNECT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CN_PLUGIN_ABI_VERSION 1u

/* The exported entry point's name, for dlsym(). */
#define CN_PLUGIN_ENTRY_SYMBOL "cn_plugin_entry"

/* Limits. */
#define CN_PLUGIN_NAME_MAX 31      /* name: [a-z0-9_-]{1,31}, starting with a letter */
#define CN_PLUGIN_PORTS_MAX 8      /* default_ports entries, zero-terminated when fewer */
#define CN_PLUGIN_REQUEST_MAX 1024 /* bytes a probe request may take */
#define CN_PLUGIN_REPLY_MAX 16384  /* bytes of reply the host keeps for probe_reply() */
#define CN_PLUGIN_WHY_MAX 256      /* a reason text, with its NUL */
#define CN_PLUGIN_CONNSTR_MAX 2048 /* a connection string, with its NUL */

/* Error codes (equal to libconnect's CN_E* of the same name). */
#define CN_PLUGIN_EINVAL (-1)  /* an argument the function cannot use */
#define CN_PLUGIN_ETOOBIG (-5) /* the output does not fit its buffer */

/* flags */
/* The server speaks first (MySQL's greeting, SSH's banner): the probe sends
 * nothing, and detection from the server's bytes is meaningful. */
#define CN_PLUGIN_SERVER_FIRST 0x1u

/* Whose bytes detect() looks at. */
enum cn_plugin_from {
    CN_PLUGIN_FROM_CLIENT = 1, /* what a client sends first on a new connection */
    CN_PLUGIN_FROM_SERVER = 2, /* what a server sends first (its greeting) */
};

/* detect() verdicts. */
enum cn_plugin_detect {
    CN_PLUGIN_NO = 0,    /* these bytes are not this protocol */
    CN_PLUGIN_MATCH = 1, /* these bytes are this protocol */
    CN_PLUGIN_MORE = 2,  /* could be: more bytes are needed to tell */
};

/* probe_reply() verdicts. */
enum cn_plugin_probe {
    CN_PLUGIN_UP = 1,      /* a healthy server of this protocol answered */
    CN_PLUGIN_DOWN = 2,    /* not this protocol, or unhealthy: `why` says which */
    CN_PLUGIN_PARTIAL = 3, /* the reply so far is an incomplete, plausible answer */
};

/* Where a probe goes, or what a connection string points at. `host` is a
 * DNS name, an IPv4 literal or an IPv6 literal *without* brackets. */
typedef struct cn_plugin_target {
    const char *host;
    uint16_t port;
} cn_plugin_target_t;

/* One `key=value` connection option. */
typedef struct cn_plugin_option {
    const char *key;
    const char *value;
} cn_plugin_option_t;

/* The tunnel's metadata that a connection string may use. Every field is
 * optional: NULL (or tls < 0, or n_options 0) means "not set". Strings are
 * raw text; the plugin percent-escapes them where its URL syntax needs. */
typedef struct cn_plugin_meta {
    const char *user;                  /* user name, no password */
    const char *database;              /* database name or number */
    int tls;                           /* -1 unset, 0 off, 1 on */
    const cn_plugin_option_t *options; /* extra options, in order */
    size_t n_options;
} cn_plugin_meta_t;

typedef struct cn_plugin {
    /* CN_PLUGIN_ABI_VERSION and sizeof(cn_plugin_t) as this plugin was
     * built. The host checks both before reading anything else. */
    uint32_t abi_version;
    uint32_t struct_size;

    /* Name as used in `protocol` fields and on the command line. */
    const char *name;
    /* One line for humans, e.g. "PostgreSQL (frontend/backend protocol 3)". */
    const char *description;
    /* CN_PLUGIN_* flags. */
    uint32_t flags;
    /* The ports this protocol usually listens on, most usual first; unused
     * entries are 0. Used to choose a plugin by port. */
    uint16_t default_ports[CN_PLUGIN_PORTS_MAX];

    /* Is this the protocol? `data` holds the first `len` bytes seen in
     * direction `from` (enum cn_plugin_from) on a fresh connection. Returns
     * CN_PLUGIN_MATCH, CN_PLUGIN_NO or CN_PLUGIN_MORE. MORE with len at or
     * beyond CN_PLUGIN_REPLY_MAX is taken as NO. May be NULL: never matches. */
    int (*detect)(const uint8_t *data, size_t len, int from);

    /* The bytes a health probe sends first, for `target`, written to
     * out[0..cap) with their length in *out_len (0 for server-first
     * protocols, which send nothing). A plugin that sends nothing and is not
     * CN_PLUGIN_SERVER_FIRST is up as soon as the TCP connection opens, and
     * its probe_reply() is not called. Returns 0 or CN_PLUGIN_ETOOBIG. */
    int (*probe_request)(const cn_plugin_target_t *target, uint8_t *out, size_t cap,
                         size_t *out_len);

    /* Judges the reply to the probe request: `reply` holds every byte
     * received so far (at most CN_PLUGIN_REPLY_MAX). Returns CN_PLUGIN_UP,
     * CN_PLUGIN_PARTIAL (wait for more), or CN_PLUGIN_DOWN with a short,
     * printable, NUL-terminated reason in why[0..why_cap) such as
     * "not a PostgreSQL server (got 0x2d)". The host ends the probe as down
     * on its own when the peer closes, the timeout passes or the reply
     * outgrows CN_PLUGIN_REPLY_MAX while PARTIAL. */
    int (*probe_reply)(const uint8_t *reply, size_t len, char *why, size_t why_cap);

    /* The connection string a client uses to reach this protocol at
     * `target`, using `meta` where set (meta may be NULL). Writes a
     * NUL-terminated string to out[0..cap). Returns 0, CN_PLUGIN_EINVAL
     * (e.g. no host) or CN_PLUGIN_ETOOBIG. */
    int (*connection_string)(const cn_plugin_target_t *target, const cn_plugin_meta_t *meta,
                             char *out, size_t cap);
} cn_plugin_t;

/* The vtable fields of ABI version 1 end here; a host needs at least this
 * many bytes of struct. */
#define CN_PLUGIN_V1_SIZE (offsetof(cn_plugin_t, connection_string) + sizeof(void (*)(void)))

#if defined(__GNUC__) || defined(__clang__)
#define CN_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define CN_PLUGIN_EXPORT
#endif

/* The entry point of a shared-object plugin. */
typedef const cn_plugin_t *(*cn_plugin_entry_fn)(void);

/* Defines cn_plugin_entry() returning &VTABLE. Built-ins compiled into the
 * binaries define CN_PLUGIN_BUILTIN, which turns this into nothing. */
#ifdef CN_PLUGIN_BUILTIN
#define CN_PLUGIN_DEFINE(vtable)
#else
#define CN_PLUGIN_DEFINE(vtable)                                                                   \
    CN_PLUGIN_EXPORT const cn_plugin_t *cn_plugin_entry(void);                                     \
    const cn_plugin_t *cn_plugin_entry(void)                                                       \
    {                                                                                              \
        return &(vtable);                                                                          \
    }
#endif

#ifdef __cplusplus
}
#endif

#endif
