/* MongoDB: the wire protocol. Every message starts with a 16-byte header
 * (int32 messageLength, requestID, responseTo, opCode, little-endian).
 * Clients speak first: drivers open with a handshake command, as OP_MSG
 * (2013) or, from older drivers and for the legacy handshake, OP_QUERY
 * (2004) on "admin.$cmd". The probe sends OP_MSG {hello: 1, $db: "admin"}
 * and reads the reply's "ok" field from its BSON body. */
#include "plugin_util.h"

#include <string.h>

#define MONGO_OP_REPLY 1
#define MONGO_OP_QUERY 2004
#define MONGO_OP_MSG 2013
#define MONGO_HEADER 16
#define MONGO_MESSAGE_MAX 48000000u /* the server's maxMessageSizeBytes */
#define MONGO_NAME_MAX 255          /* "db.collection" in OP_QUERY */
#define MONGO_PROBE_ID 0x434e5052u  /* our requestID, "RPNC" on the wire */
#define BSON_DEPTH_MAX 32

static int mongo_header(const uint8_t *data, size_t len)
{
    if (len >= 4) {
        uint32_t mlen = plug_le32(data);
        if (mlen < MONGO_HEADER + 5 || mlen > MONGO_MESSAGE_MAX)
            return CN_PLUGIN_NO;
    }
    if (len >= 12 && plug_le32(data + 8) != 0) /* a first message answers nothing */
        return CN_PLUGIN_NO;
    if (len < MONGO_HEADER)
        return CN_PLUGIN_MORE;
    uint32_t op = plug_le32(data + 12);
    return op == MONGO_OP_MSG || op == MONGO_OP_QUERY ? CN_PLUGIN_MATCH : CN_PLUGIN_NO;
}

static int mongo_detect(const uint8_t *data, size_t len, int from)
{
    if (from != CN_PLUGIN_FROM_CLIENT)
        return CN_PLUGIN_NO;
    int v = mongo_header(data, len);
    if (v != CN_PLUGIN_MATCH)
        return v;
    uint32_t mlen = plug_le32(data);
    if (len < MONGO_HEADER + 4)
        return CN_PLUGIN_MORE;
    uint32_t flags = plug_le32(data + 16);
    if (plug_le32(data + 12) == MONGO_OP_MSG) {
        /* flagBits: only checksumPresent (0), moreToCome (1) and
         * exhaustAllowed (16) exist; unknown low bits are "required". */
        if (flags & ~0x10003u)
            return CN_PLUGIN_NO;
        if (len < MONGO_HEADER + 5)
            return CN_PLUGIN_MORE;
        uint8_t kind = data[20];
        if (kind == 1)
            return CN_PLUGIN_MATCH;
        if (kind != 0)
            return CN_PLUGIN_NO;
        if (len < MONGO_HEADER + 9)
            return CN_PLUGIN_MORE;
        uint32_t blen = plug_le32(data + 21);
        return blen >= 5 && blen <= mlen - 21 ? CN_PLUGIN_MATCH : CN_PLUGIN_NO;
    }
    /* OP_QUERY: flags (bit 0 reserved, bits 1-7 defined), then the full
     * collection name as a C string, "db.collection". */
    if (flags & ~0xfeu)
        return CN_PLUGIN_NO;
    bool dot = false;
    for (size_t i = 20; i < len; i++) {
        if (i - 20 > MONGO_NAME_MAX || i >= mlen)
            return CN_PLUGIN_NO;
        if (data[i] == 0)
            return dot && i > 22 ? CN_PLUGIN_MATCH : CN_PLUGIN_NO;
        if (data[i] < 0x20 || data[i] >= 0x7f)
            return CN_PLUGIN_NO;
        if (data[i] == '.')
            dot = true;
    }
    return CN_PLUGIN_MORE;
}

/* The probe: OP_MSG, flagBits 0, one kind-0 section {hello: 1, $db: "admin"}. */
/* clang-format off */
static const uint8_t hello_msg[] = {
    52, 0, 0, 0,             /* messageLength */
    0x52, 0x50, 0x4e, 0x43,  /* requestID = MONGO_PROBE_ID */
    0, 0, 0, 0,              /* responseTo */
    0xdd, 0x07, 0, 0,        /* opCode 2013 */
    0, 0, 0, 0,              /* flagBits */
    0,                       /* section kind 0: body */
    31, 0, 0, 0,             /* BSON document length */
    0x10, 'h', 'e', 'l', 'l', 'o', 0, 1, 0, 0, 0,        /* int32 hello: 1 */
    0x02, '$', 'd', 'b', 0, 6, 0, 0, 0, 'a', 'd', 'm', 'i', 'n', 0, /* string $db */
    0,                       /* end of document */
};
/* clang-format on */

static int mongo_probe_request(const cn_plugin_target_t *target, uint8_t *out, size_t cap,
                               size_t *out_len)
{
    if (cap < sizeof(hello_msg))
        return CN_PLUGIN_ETOOBIG;
    memcpy(out, hello_msg, sizeof(hello_msg));
    *out_len = sizeof(hello_msg);
    return 0;
}

/* ---- a minimal BSON reader: walks a document, checking every length ---- */

typedef struct bson_found {
    const char *name; /* the top-level field sought */
    int type;         /* its BSON type, 0 when absent */
    const uint8_t *value;
    size_t value_len;
} bson_found_t;

static size_t cstring_len(const uint8_t *p, size_t len)
{
    const uint8_t *z = memchr(p, 0, len);
    return z ? (size_t)(z - p) : len;
}

/* Size of a value of `type` at p (len bytes available), or 0 when it is
 * malformed or unknown. */
static size_t bson_value_size(int type, const uint8_t *p, size_t len, int depth);

/* Checks the document at doc[0..len) and records up to `n` sought fields.
 * Returns its size, or 0 when malformed. */
static size_t bson_doc(const uint8_t *doc, size_t len, int depth, bson_found_t *want, size_t n)
{
    if (len < 5 || depth > BSON_DEPTH_MAX)
        return 0;
    uint32_t dlen = plug_le32(doc);
    if (dlen < 5 || dlen > len || doc[dlen - 1] != 0)
        return 0;
    size_t i = 4;
    while (i < dlen - 1) {
        int type = doc[i++];
        size_t nlen = cstring_len(doc + i, dlen - 1 - i);
        if (i + nlen >= dlen - 1)
            return 0;
        const char *name = (const char *)doc + i;
        i += nlen + 1;
        size_t vlen = bson_value_size(type, doc + i, dlen - 1 - i, depth);
        if (!vlen && type != 0x06 && type != 0x0a && type != 0x7f && type != 0xff)
            return 0;
        for (size_t k = 0; k < n; k++) {
            if (!want[k].type && !strcmp(name, want[k].name)) {
                want[k].type = type;
                want[k].value = doc + i;
                want[k].value_len = vlen;
            }
        }
        i += vlen;
    }
    return i == dlen - 1 ? dlen : 0;
}

static size_t bson_string_size(const uint8_t *p, size_t len)
{
    if (len < 5)
        return 0;
    uint32_t slen = plug_le32(p);
    if (slen < 1 || slen > len - 4 || p[4 + slen - 1] != 0)
        return 0;
    return 4 + (size_t)slen;
}

static size_t bson_value_size(int type, const uint8_t *p, size_t len, int depth)
{
    size_t n, m;
    switch (type) {
    case 0x01: /* double */
    case 0x09: /* UTC datetime */
    case 0x11: /* timestamp */
    case 0x12: /* int64 */
        n = 8;
        break;
    case 0x02: /* string */
    case 0x0d: /* JavaScript code */
    case 0x0e: /* symbol */
        return bson_string_size(p, len);
    case 0x03: /* document */
    case 0x04: /* array */
        return bson_doc(p, len, depth + 1, NULL, 0);
    case 0x05: /* binary: int32 length, subtype, bytes */
        if (len < 5 || plug_le32(p) > len - 5)
            return 0;
        return 5 + (size_t)plug_le32(p);
    case 0x06: /* undefined */
    case 0x0a: /* null */
    case 0x7f: /* max key */
    case 0xff: /* min key */
        return 0;
    case 0x07: /* ObjectId */
        n = 12;
        break;
    case 0x08: /* boolean */
        return len >= 1 && p[0] <= 1 ? 1 : 0;
    case 0x0b: /* regex: two C strings */
        n = cstring_len(p, len);
        if (n >= len)
            return 0;
        m = cstring_len(p + n + 1, len - n - 1);
        if (n + 1 + m >= len)
            return 0;
        return n + 1 + m + 1;
    case 0x0c: /* DBPointer: string, 12-byte id */
        n = bson_string_size(p, len);
        return n && len - n >= 12 ? n + 12 : 0;
    case 0x0f: { /* code with scope: int32 total, string, document */
        if (len < 4)
            return 0;
        uint32_t total = plug_le32(p);
        if (total < 14 || total > len)
            return 0;
        n = bson_string_size(p + 4, total - 4);
        if (!n || !bson_doc(p + 4 + n, total - 4 - n, depth + 1, NULL, 0))
            return 0;
        return total;
    }
    case 0x10: /* int32 */
        n = 4;
        break;
    case 0x13: /* decimal128 */
        n = 16;
        break;
    default:
        return 0;
    }
    return len >= n ? n : 0;
}

/* A numeric or boolean field's truth, as the server writes "ok". */
static int bson_truth(const bson_found_t *f)
{
    switch (f->type) {
    case 0x01: {
        uint64_t bits = (uint64_t)plug_le32(f->value + 4) << 32 | plug_le32(f->value);
        return (bits & ~(1ull << 63)) != 0; /* any non-zero double, -0.0 is zero */
    }
    case 0x08:
        return f->value[0];
    case 0x10:
        return plug_le32(f->value) != 0;
    case 0x12:
        return (plug_le32(f->value) | plug_le32(f->value + 4)) != 0;
    default:
        return -1;
    }
}

static int mongo_probe_reply(const uint8_t *reply, size_t len, char *why, size_t cap)
{
    const uint8_t *doc;
    size_t doc_len;
    if (len >= 4) {
        uint32_t mlen = plug_le32(reply);
        if (mlen < MONGO_HEADER + 5 || mlen > MONGO_MESSAGE_MAX)
            return plug_down(why, cap, "not a MongoDB server (message length %u)", mlen);
        if (mlen > CN_PLUGIN_REPLY_MAX)
            return plug_down(why, cap, "MongoDB reply too large (%u bytes)", mlen);
    }
    if (len < MONGO_HEADER)
        return CN_PLUGIN_PARTIAL;
    uint32_t mlen = plug_le32(reply), op = plug_le32(reply + 12);
    if (plug_le32(reply + 8) != MONGO_PROBE_ID)
        return plug_down(why, cap, "not a MongoDB server (reply to another request)");
    if (op != MONGO_OP_MSG && op != MONGO_OP_REPLY)
        return plug_down(why, cap, "not a MongoDB server (opCode %u)", op);
    if (len < mlen)
        return CN_PLUGIN_PARTIAL;
    if (op == MONGO_OP_MSG) {
        /* flagBits, then sections; the body is the kind-0 section. With
         * checksumPresent the last 4 bytes are a CRC-32C we do not check. */
        uint32_t flags = plug_le32(reply + 16);
        size_t end = mlen - ((flags & 1) ? 4 : 0);
        if (flags & ~0x10003u || end < 21 + 5 || reply[20] != 0)
            return plug_down(why, cap, "not a MongoDB server (bad OP_MSG)");
        doc = reply + 21;
        doc_len = end - 21;
    } else {
        /* OP_REPLY: flags, cursorID (8), startingFrom, numberReturned, docs */
        if (mlen < 36 + 5 || plug_le32(reply + 32) < 1)
            return plug_down(why, cap, "not a MongoDB server (bad OP_REPLY)");
        doc = reply + 36;
        doc_len = mlen - 36;
    }
    bson_found_t want[2] = {{.name = "ok"}, {.name = "errmsg"}};
    if (!bson_doc(doc, doc_len, 0, want, 2))
        return plug_down(why, cap, "not a MongoDB server (malformed BSON reply)");
    int ok = want[0].type ? bson_truth(&want[0]) : -1;
    if (ok == 1)
        return CN_PLUGIN_UP;
    if (ok < 0)
        return plug_down(why, cap, "MongoDB reply without an ok field");
    if (want[1].type == 0x02) {
        char text[160];
        plug_printable(text, sizeof(text), want[1].value + 4, want[1].value_len - 5);
        return plug_down(why, cap, "MongoDB error: %s", text);
    }
    return plug_down(why, cap, "MongoDB answered ok: 0 to hello");
}

/* mongodb://[user@]host:port/[database]?directConnection=true[&tls=...]
 * [&options]: directConnection because the tunnel reaches one member, never
 * the replica set's advertised hosts. */
static int mongo_connection_string(const cn_plugin_target_t *t, const cn_plugin_meta_t *meta,
                                   char *out, size_t cap)
{
    plug_str_t s;
    const char *user = plug_meta_user(meta), *db = plug_meta_database(meta);
    int tls = plug_meta_tls(meta);
    if (!plug_target_ok(t))
        return CN_PLUGIN_EINVAL;
    plug_str_init(&s, out, cap);
    plug_str_authority(&s, "mongodb", t, user);
    plug_str_puts(&s, "/");
    if (db)
        plug_str_escape(&s, db);
    plug_str_puts(&s, "?directConnection=true");
    if (tls >= 0)
        plug_str_puts(&s, tls ? "&tls=true" : "&tls=false");
    plug_str_options(&s, meta, '&');
    return plug_str_done(&s);
}

const cn_plugin_t cn_plugin_mongodb = {
    .abi_version = CN_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(cn_plugin_t),
    .name = "mongodb",
    .description = "MongoDB (wire protocol, OP_MSG and OP_QUERY)",
    .flags = 0,
    .default_ports = {27017},
    .detect = mongo_detect,
    .probe_request = mongo_probe_request,
    .probe_reply = mongo_probe_reply,
    .connection_string = mongo_connection_string,
};

CN_PLUGIN_DEFINE(cn_plugin_mongodb)
