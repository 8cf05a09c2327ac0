/* HTTP/1.1 heads and body framing, sans-IO (see http1.h). */
#include "http1.h"

#include <string.h>
#include <strings.h>

#include "cn_err.h"

/* ---- character classes --------------------------------------------------- */

/* tchar (RFC 9110 5.6.2) by table: every byte of every header name of
 * every request and response goes through it. */
static const bool tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static inline bool is_tchar(unsigned char c)
{
    return tchar[c];
}

/* field-value bytes: HTAB, SP, VCHAR, obs-text. */
static bool is_vchar(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Where the head ends: the index after "\r\n\r\n" or 0. */
static size_t head_end(const char *buf, size_t len, size_t from)
{
    /* From CR to CR with memchr: a head has one per line. */
    for (size_t i = from; i + 3 < len;) {
        const char *cr = memchr(buf + i, '\r', len - 3 - i);
        if (!cr)
            return 0;
        i = (size_t)(cr - buf);
        if (buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n')
            return i + 4;
        i++;
    }
    return 0;
}

/* One line [p, *eol) ending in CRLF within [p, end); false if a bare CR
 * or LF shows up. */
static bool line_at(const char *p, const char *end, const char **eol)
{
    if (end - p < 2)
        return false;
    /* The first CR (before the last byte), and no LF before it: memchr
     * rather than a loop over every byte of every head. */
    const char *cr = memchr(p, '\r', (size_t)(end - 1 - p));
    if (!cr || memchr(p, '\n', (size_t)(cr - p)) || cr[1] != '\n')
        return false;
    *eol = cr;
    return true;
}

static int parse_headers(const char *p, const char *end, hub_h1_head_t *h)
{
    while (p < end) {
        const char *eol;
        if (!line_at(p, end, &eol))
            return CN_EPROTO;
        if (eol == p)
            return 0; /* the empty line */
        if (is_ows(*p))
            return CN_EPROTO; /* obsolete line folding */
        const char *colon = p;
        while (colon < eol && is_tchar((unsigned char)*colon))
            colon++;
        if (colon == p || colon == eol || *colon != ':')
            return CN_EPROTO; /* no name, or whitespace/garbage before ':' */
        const char *v = colon + 1, *ve = eol;
        while (v < ve && is_ows(*v))
            v++;
        while (ve > v && is_ows(ve[-1]))
            ve--;
        for (const char *q = v; q < ve; q++)
            if (!is_vchar((unsigned char)*q))
                return CN_EPROTO;
        if (h->nheaders == HUB_H1_MAX_HEADERS)
            return CN_ETOOBIG;
        h->headers[h->nheaders++] = (hub_h1_header_t){
            .name = p, .name_len = (size_t)(colon - p), .value = v, .value_len = (size_t)(ve - v)};
        p = eol + 2;
    }
    return CN_EPROTO;
}

static bool parse_version(const char *p, const char *end, int *minor)
{
    if (end - p != 8 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9')
        return false;
    *minor = p[7] - '0';
    return true;
}

int hub_h1_parse_request(const char *buf, size_t len, hub_h1_head_t *h)
{
    memset(h, 0, sizeof(*h));
    size_t skip = 0;
    while (skip + 1 < len && buf[skip] == '\r' && buf[skip + 1] == '\n' && skip < 8)
        skip += 2;
    size_t end = head_end(buf, len, skip);
    if (!end) {
        /* A bare LF is malformed now, not "more to come". */
        for (size_t i = skip; i < len; i++)
            if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
                return CN_EPROTO;
        return len >= HUB_H1_HEAD_MAX ? CN_ETOOBIG : 0;
    }
    if (end > HUB_H1_HEAD_MAX)
        return CN_ETOOBIG;
    const char *p = buf + skip, *e = buf + end, *eol;
    if (!line_at(p, e, &eol))
        return CN_EPROTO;
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    if (!sp1 || sp1 == p)
        return CN_EPROTO;
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q))
            return CN_EPROTO;
    const char *t = sp1 + 1;
    const char *sp2 = memchr(t, ' ', (size_t)(eol - t));
    if (!sp2 || sp2 == t)
        return CN_EPROTO;
    for (const char *q = t; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return CN_EPROTO;
    if (!parse_version(sp2 + 1, eol, &h->minor))
        return CN_EPROTO;
    h->method = p;
    h->method_len = (size_t)(sp1 - p);
    h->target = t;
    h->target_len = (size_t)(sp2 - t);
    int rc = parse_headers(eol + 2, e, h);
    if (rc < 0)
        return rc;
    h->head_len = end;
    return 1;
}

int hub_h1_parse_response(const char *buf, size_t len, hub_h1_head_t *h)
{
    memset(h, 0, sizeof(*h));
    size_t end = head_end(buf, len, 0);
    if (!end)
        return len >= HUB_H1_HEAD_MAX ? CN_ETOOBIG : 0;
    if (end > HUB_H1_HEAD_MAX)
        return CN_ETOOBIG;
    const char *p = buf, *e = buf + end, *eol;
    if (!line_at(p, e, &eol) || eol - p < 12)
        return CN_EPROTO;
    if (!parse_version(p, p + 8, &h->minor) || p[8] != ' ')
        return CN_EPROTO;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return CN_EPROTO;
        st = st * 10 + (p[i] - '0');
    }
    if (st < 100 || (eol - p > 12 && p[12] != ' '))
        return CN_EPROTO;
    h->status = st;
    int rc = parse_headers(eol + 2, e, h);
    if (rc < 0)
        return rc;
    h->head_len = end;
    return 1;
}

/* ---- headers ------------------------------------------------------------------ */

bool hub_h1_header_is(const hub_h1_header_t *hd, const char *name)
{
    size_t n = strlen(name);
    return hd->name_len == n && strncasecmp(hd->name, name, n) == 0;
}

const hub_h1_header_t *hub_h1_find(const hub_h1_head_t *h, const char *name)
{
    for (size_t i = 0; i < h->nheaders; i++)
        if (hub_h1_header_is(&h->headers[i], name))
            return &h->headers[i];
    return NULL;
}

static bool list_has(const char *v, size_t n, const char *tok, size_t tn)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_ows(v[i]) || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && is_ows(v[e - 1]))
            e--;
        if (e - s == tn && strncasecmp(v + s, tok, tn) == 0)
            return true;
    }
    return false;
}

bool hub_h1_has_token(const hub_h1_head_t *h, const char *name, const char *token)
{
    size_t tn = strlen(token);
    for (size_t i = 0; i < h->nheaders; i++)
        if (hub_h1_header_is(&h->headers[i], name) &&
            list_has(h->headers[i].value, h->headers[i].value_len, token, tn))
            return true;
    return false;
}

bool hub_h1_hop_by_hop(const hub_h1_header_t *hd)
{
    static const struct {
        const char *name;
        size_t len;
    } names[] = {{"connection", 10},          {"keep-alive", 10}, {"proxy-connection", 16},
                 {"proxy-authenticate", 18},  {"te", 2},          {"trailer", 7},
                 {"proxy-authorization", 19}, {"upgrade", 7}};
    /* Asked of every header forwarded: the length rules most out at once. */
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (hd->name_len == names[i].len && strncasecmp(hd->name, names[i].name, hd->name_len) == 0)
            return true;
    return false;
}

bool hub_h1_connection_names(const hub_h1_head_t *h, const hub_h1_header_t *hd)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        const hub_h1_header_t *c = &h->headers[i];
        if (hub_h1_header_is(c, "connection") &&
            list_has(c->value, c->value_len, hd->name, hd->name_len))
            return true;
    }
    return false;
}

/* ---- body framing --------------------------------------------------------------- */

/* Content-Length: one or more identical decimal values (a list or repeated
 * headers); 1 found, 0 none, CN_EPROTO otherwise. */
static int content_length(const hub_h1_head_t *h, uint64_t *out)
{
    bool seen = false;
    uint64_t val = 0;
    for (size_t i = 0; i < h->nheaders; i++) {
        const hub_h1_header_t *hd = &h->headers[i];
        if (!hub_h1_header_is(hd, "content-length"))
            continue;
        size_t j = 0;
        const char *v = hd->value;
        size_t n = hd->value_len;
        if (n == 0)
            return CN_EPROTO;
        while (j < n) {
            while (j < n && is_ows(v[j]))
                j++;
            uint64_t x = 0;
            size_t digits = 0;
            while (j < n && v[j] >= '0' && v[j] <= '9') {
                if (++digits > 18)
                    return CN_EPROTO;
                x = x * 10 + (uint64_t)(v[j++] - '0');
            }
            while (j < n && is_ows(v[j]))
                j++;
            if (!digits || (j < n && v[j] != ','))
                return CN_EPROTO;
            if (j < n)
                j++;
            if (seen && x != val)
                return CN_EPROTO;
            seen = true;
            val = x;
        }
    }
    *out = val;
    return seen ? 1 : 0;
}

static void body_init(hub_h1_body_t *b, enum hub_h1_body_kind k, uint64_t left)
{
    memset(b, 0, sizeof(*b));
    b->kind = k;
    b->left = left;
    b->done = k == HUB_H1_BODY_NONE || (k == HUB_H1_BODY_LENGTH && left == 0);
}

/* Transfer-Encoding: 1 when it is exactly "chunked", 0 when absent,
 * CN_EPROTO for anything else (gzip, chunked not last, empty). */
static int transfer_chunked(const hub_h1_head_t *h, bool *other_last)
{
    int n = 0;
    *other_last = false;
    for (size_t i = 0; i < h->nheaders; i++) {
        const hub_h1_header_t *hd = &h->headers[i];
        if (!hub_h1_header_is(hd, "transfer-encoding"))
            continue;
        n++;
        if (!(hd->value_len == 7 && strncasecmp(hd->value, "chunked", 7) == 0)) {
            *other_last = true;
            return CN_EPROTO;
        }
    }
    if (n > 1)
        return CN_EPROTO;
    return n;
}

int hub_h1_request_body(const hub_h1_head_t *h, hub_h1_body_t *b)
{
    bool other = false;
    uint64_t cl = 0;
    int te = transfer_chunked(h, &other);
    int has_cl = content_length(h, &cl);
    if (te < 0 || has_cl < 0 || (te > 0 && has_cl > 0))
        return CN_EPROTO;
    if (te > 0)
        body_init(b, HUB_H1_BODY_CHUNKED, 0);
    else if (has_cl > 0)
        body_init(b, HUB_H1_BODY_LENGTH, cl);
    else
        body_init(b, HUB_H1_BODY_NONE, 0);
    return 0;
}

int hub_h1_response_body(const hub_h1_head_t *h, bool head_request, hub_h1_body_t *b)
{
    if (head_request || h->status < 200 || h->status == 204 || h->status == 304) {
        body_init(b, HUB_H1_BODY_NONE, 0);
        return 0;
    }
    bool other = false;
    uint64_t cl = 0;
    int te = transfer_chunked(h, &other);
    if (te < 0 && other) {
        /* A response coded otherwise ends with the stream (RFC 9112 6.3). */
        body_init(b, HUB_H1_BODY_CLOSE, 0);
        return 0;
    }
    if (te < 0)
        return CN_EPROTO;
    if (te > 0) {
        body_init(b, HUB_H1_BODY_CHUNKED, 0);
        return 0;
    }
    int has_cl = content_length(h, &cl);
    if (has_cl < 0)
        return CN_EPROTO;
    body_init(b, has_cl ? HUB_H1_BODY_LENGTH : HUB_H1_BODY_CLOSE, cl);
    return 0;
}

enum {
    C_SIZE = 0, /* hex digits of a chunk size */
    C_EXT,      /* chunk extensions up to CR */
    C_SIZE_LF,
    C_DATA,
    C_DATA_CR,
    C_DATA_LF,
    C_TRAILER,    /* start of a trailer line (or the final empty line) */
    C_TRAILER_IN, /* inside a trailer line */
    C_TRAILER_LF,
    C_END_LF,
};

static int chunked_feed(hub_h1_body_t *b, const uint8_t *d, size_t len, size_t *used)
{
    size_t i = 0;
    while (i < len && !b->done) {
        uint8_t c = d[i];
        switch (b->state) {
        case C_SIZE: {
            int v = (c >= '0' && c <= '9')   ? c - '0'
                    : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                             : -1;
            if (v >= 0) {
                if (++b->digits > 15)
                    return CN_EPROTO;
                b->left = b->left * 16 + (uint64_t)v;
                i++;
                break;
            }
            if (!b->digits)
                return CN_EPROTO;
            if (c == ';' || c == ' ' || c == '\t') {
                b->state = C_EXT;
                b->line = 0;
                i++;
            } else if (c == '\r') {
                b->state = C_SIZE_LF;
                i++;
            } else {
                return CN_EPROTO;
            }
            break;
        }
        case C_EXT:
            if (c == '\r')
                b->state = C_SIZE_LF;
            else if (c == '\n' || ++b->line > HUB_H1_LINE_MAX)
                return CN_EPROTO;
            i++;
            break;
        case C_SIZE_LF:
            if (c != '\n')
                return CN_EPROTO;
            i++;
            b->digits = 0;
            b->state = b->left ? C_DATA : C_TRAILER;
            break;
        case C_DATA: {
            size_t n = len - i;
            if (n > b->left)
                n = (size_t)b->left;
            b->left -= n;
            i += n;
            if (!b->left)
                b->state = C_DATA_CR;
            break;
        }
        case C_DATA_CR:
            if (c != '\r')
                return CN_EPROTO;
            b->state = C_DATA_LF;
            i++;
            break;
        case C_DATA_LF:
            if (c != '\n')
                return CN_EPROTO;
            b->state = C_SIZE;
            b->left = 0;
            i++;
            break;
        case C_TRAILER:
            if (c == '\r') {
                b->state = C_END_LF;
            } else if (c == '\n') {
                return CN_EPROTO;
            } else {
                b->state = C_TRAILER_IN;
                b->line = 1;
            }
            i++;
            break;
        case C_TRAILER_IN:
            if (c == '\r')
                b->state = C_TRAILER_LF;
            else if (c == '\n' || ++b->line > HUB_H1_LINE_MAX)
                return CN_EPROTO;
            i++;
            break;
        case C_TRAILER_LF:
            if (c != '\n')
                return CN_EPROTO;
            b->state = C_TRAILER;
            i++;
            break;
        case C_END_LF:
            if (c != '\n')
                return CN_EPROTO;
            b->done = true;
            i++;
            break;
        default:
            return CN_EPROTO;
        }
    }
    *used = i;
    return 0;
}

int hub_h1_body_feed(hub_h1_body_t *b, const uint8_t *data, size_t len, size_t *used)
{
    *used = 0;
    if (b->done)
        return 0;
    switch (b->kind) {
    case HUB_H1_BODY_NONE:
        b->done = true;
        return 0;
    case HUB_H1_BODY_CLOSE:
        *used = len;
        return 0;
    case HUB_H1_BODY_LENGTH: {
        size_t n = len;
        if (n > b->left)
            n = (size_t)b->left;
        b->left -= n;
        *used = n;
        b->done = b->left == 0;
        return 0;
    }
    case HUB_H1_BODY_CHUNKED:
        return chunked_feed(b, data, len, used);
    }
    return CN_EPROTO;
}
