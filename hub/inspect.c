/* Request inspection: records built by the HTTP edge, kept in a bounded
 * in-memory store, read and replayed through the REST API. inspect.h says
 * why in memory and what bounds it. */
#include "inspect.h"

#include "cn_buf.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cn_err.h"

/* Buckets by tunnel id: a hash index, since the edge looks a tunnel's
 * bucket up on every recorded request and a walk of all of them cost
 * 8-14 % of the hub's CPU with 250 tunnels recording (performance.md). A
 * fixed 8 KiB; buckets exist only while their tunnel has records, so the
 * bounds of inspect.h hold as before. */
#define INDEX_SLOTS 1024 /* a power of two */

/* The records of one tunnel, newest at the head. */
typedef struct hub_inspect_bucket {
    struct hub_inspect_bucket *next; /* in its index slot */
    char tunnel_id[HUB_ID_SIZE];
    hub_inspect_rec_t *newest, *oldest;
    size_t count;
} bucket_t;

struct hub_inspect {
    hub_inspect_config_t cfg;
    bucket_t *index[INDEX_SLOTS];
    /* SipHash key: slots no client can aim at, whatever the ids. */
    uint8_t key[crypto_shorthash_KEYBYTES];
    hub_inspect_rec_t *newest, *oldest; /* hub-wide, by commit */
    size_t bytes;
    uint64_t next_id;
};

hub_inspect_t *hub_inspect_new(const hub_inspect_config_t *cfg)
{
    hub_inspect_t *in = calloc(1, sizeof(*in));
    if (!in)
        return NULL;
    in->cfg = *cfg;
    if (!in->cfg.keep)
        in->cfg.keep = HUB_INSPECT_KEEP_DEFAULT;
    if (!in->cfg.retention_ms)
        in->cfg.retention_ms = HUB_INSPECT_RETENTION_DEFAULT_MS;
    if (!in->cfg.bytes_max)
        in->cfg.bytes_max = HUB_INSPECT_BYTES_DEFAULT;
    if (in->cfg.body_max > HUB_INSPECT_BODY_MAX_LIMIT)
        in->cfg.body_max = HUB_INSPECT_BODY_MAX_LIMIT;
    in->next_id = 1;
    randombytes_buf(in->key, sizeof(in->key));
    return in;
}

void hub_inspect_rec_free(hub_inspect_rec_t *r)
{
    if (!r)
        return;
    free(r->target);
    free(r->req_head);
    free(r->resp_head);
    free(r->req_body.data);
    free(r->resp_body.data);
    free(r);
}

void hub_inspect_free(hub_inspect_t *in)
{
    if (!in)
        return;
    while (in->oldest) {
        hub_inspect_rec_t *r = in->oldest;
        in->oldest = r->newer;
        hub_inspect_rec_free(r);
    }
    for (size_t i = 0; i < INDEX_SLOTS; i++)
        while (in->index[i]) {
            bucket_t *b = in->index[i];
            in->index[i] = b->next;
            free(b);
        }
    free(in);
}

bool hub_inspect_enabled(const hub_inspect_t *in)
{
    return in && in->cfg.enabled;
}

/* ---- masking ---- */

static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

bool hub_inspect_masked_name(const char *name, size_t name_len)
{
    return name_is(name, name_len, "authorization") ||
           name_is(name, name_len, "proxy-authorization") || name_is(name, name_len, "cookie") ||
           name_is(name, name_len, "set-cookie");
}

/* Appends n bytes to dst[*j..cap-1), keeping room for the NUL. */
static void put(char *dst, size_t cap, size_t *j, const char *p, size_t n)
{
    if (*j + 1 >= cap)
        return;
    if (n > cap - 1 - *j)
        n = cap - 1 - *j;
    memcpy(dst + *j, p, n);
    *j += n;
}

/* "a=1; b=2" -> "a=***; b=***" (Cookie), or only the first pair for
 * Set-Cookie, whose attributes (Path, Expires, HttpOnly) are not secret. */
static void mask_cookies(const char *v, size_t vl, bool first_only, char *dst, size_t cap,
                         size_t *j)
{
    size_t i = 0;
    bool first = true;
    while (i < vl) {
        size_t end = i;
        while (end < vl && v[end] != ';')
            end++;
        size_t s = i;
        while (s < end && v[s] == ' ')
            s++;
        if (!first)
            put(dst, cap, j, "; ", 2);
        const char *eq = memchr(v + s, '=', end - s);
        if ((first || !first_only) && eq) {
            put(dst, cap, j, v + s, (size_t)(eq - (v + s)) + 1);
            put(dst, cap, j, HUB_INSPECT_MASK, strlen(HUB_INSPECT_MASK));
        } else if (first || !first_only) {
            put(dst, cap, j, HUB_INSPECT_MASK, strlen(HUB_INSPECT_MASK)); /* a bare value */
        } else {
            put(dst, cap, j, v + s, end - s);
        }
        first = false;
        i = end < vl ? end + 1 : end;
    }
}

size_t hub_inspect_mask_header(const char *name, size_t name_len, const char *value,
                               size_t value_len, char *dst, size_t cap)
{
    size_t j = 0;
    if (!cap)
        return 0;
    if (name_is(name, name_len, "authorization") ||
        name_is(name, name_len, "proxy-authorization")) {
        /* The scheme says how the client authenticated; the rest is the secret. */
        const char *sp = memchr(value, ' ', value_len);
        if (sp && sp != value) {
            put(dst, cap, &j, value, (size_t)(sp - value) + 1);
        }
        put(dst, cap, &j, HUB_INSPECT_MASK, strlen(HUB_INSPECT_MASK));
    } else if (name_is(name, name_len, "cookie")) {
        mask_cookies(value, value_len, false, dst, cap, &j);
    } else if (name_is(name, name_len, "set-cookie")) {
        mask_cookies(value, value_len, true, dst, cap, &j);
    } else {
        put(dst, cap, &j, value, value_len);
    }
    dst[j] = '\0';
    return j;
}

/* ---- building ---- */

/* The headers of `h` as recorded: hop-by-hop ones left out, secrets masked,
 * a share's Host label masked; at most HUB_INSPECT_HEAD_MAX bytes. */
static char *record_headers(const hub_h1_head_t *h, bool share, size_t *len, bool *cut)
{
    /* Built on the stack, then copied once at its size: the record is
     * kept for an hour and should hold what the headers take, not the bound. */
    char tmp[HUB_INSPECT_HEAD_MAX + 1];
    size_t j = 0;
    *cut = false;
    for (size_t i = 0; i < h->nheaders; i++) {
        const hub_h1_header_t *hd = &h->headers[i];
        if (hub_h1_hop_by_hop(hd) || hub_h1_connection_names(h, hd))
            continue;
        /* name ": " value "\n", the value masked straight into place */
        size_t room = HUB_INSPECT_HEAD_MAX - j; /* bytes left before the NUL */
        if (hd->name_len + 3 >= room) {
            *cut = true;
            break;
        }
        char *v = tmp + j + hd->name_len + 2;
        size_t vcap = room - hd->name_len - 2, vl; /* with the value's NUL, in place of "\n" */
        if (share && hub_h1_header_is(hd, "host") && hd->value_len > 6 &&
            !strncasecmp(hd->value, "share-", 6)) {
            const char *dot = memchr(hd->value, '.', hd->value_len);
            size_t rest = dot ? hd->value_len - (size_t)(dot - hd->value) : 0;
            int n = snprintf(v, vcap, "share-%s%.*s", HUB_INSPECT_MASK, (int)rest, dot ? dot : "");
            vl = n < 0 ? vcap : (size_t)n;
        } else {
            vl = hub_inspect_mask_header(hd->name, hd->name_len, hd->value, hd->value_len, v, vcap);
        }
        if (vl + 1 >= vcap) {
            *cut = true;
            break;
        }
        memcpy(tmp + j, hd->name, hd->name_len);
        memcpy(tmp + j + hd->name_len, ": ", 2);
        j += hd->name_len + 2 + vl;
        tmp[j++] = '\n';
    }
    tmp[j] = '\0';
    char *out = malloc(j + 1);
    if (out)
        memcpy(out, tmp, j + 1);
    *len = j;
    return out;
}

hub_inspect_rec_t *hub_inspect_begin(const hub_inspect_t *in, const hub_h1_head_t *h,
                                     const char *workspace_id, const char *tunnel_id,
                                     const char *share_id, const char *client, int64_t now)
{
    if (!hub_inspect_enabled(in))
        return NULL;
    hub_inspect_rec_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    cn_buf_strcpy(r->workspace_id, sizeof(r->workspace_id), workspace_id, SIZE_MAX);
    cn_buf_strcpy(r->tunnel_id, sizeof(r->tunnel_id), tunnel_id, SIZE_MAX);
    cn_buf_strcpy(r->share_id, sizeof(r->share_id), share_id ? share_id : "", SIZE_MAX);
    cn_buf_strcpy(r->client, sizeof(r->client), client, SIZE_MAX);
    cn_buf_strcpy(r->method, sizeof(r->method), h->method, h->method_len);
    size_t tl = h->target_len;
    if (tl > HUB_INSPECT_TARGET_MAX) {
        tl = HUB_INSPECT_TARGET_MAX;
        r->target_cut = true;
    }
    r->target = malloc(tl + 1);
    r->req_head = record_headers(h, share_id && *share_id, &r->req_head_len, &r->req_head_cut);
    if (!r->target || !r->req_head) {
        hub_inspect_rec_free(r);
        return NULL;
    }
    memcpy(r->target, h->target, tl);
    r->target[tl] = '\0';
    r->started = now;
    r->first_byte = -1;
    r->body_max = in->cfg.body_max;
    return r;
}

void hub_inspect_response(hub_inspect_rec_t *r, const hub_h1_head_t *h, int64_t now)
{
    if (!r || r->resp_head)
        return;
    r->status = h->status;
    r->first_byte = now - r->started;
    r->resp_head = record_headers(h, false, &r->resp_head_len, &r->resp_head_cut);
}

void hub_inspect_body(hub_inspect_rec_t *r, enum hub_inspect_side side, const void *p, size_t n)
{
    if (!r || !n)
        return;
    hub_inspect_body_t *b = side == HUB_INSPECT_REQ ? &r->req_body : &r->resp_body;
    if (b->len < r->body_max && b->seen == b->len) {
        size_t take = r->body_max - b->len < n ? r->body_max - b->len : n;
        if (b->len + take > b->cap) {
            /* Grown as bytes come (doubling, up to the cap): a short body
             * costs what it is, not body_max. */
            size_t cap = b->cap ? b->cap * 2 : 1024;
            if (cap < b->len + take)
                cap = b->len + take;
            if (cap > r->body_max)
                cap = r->body_max;
            uint8_t *d = realloc(b->data, cap);
            if (!d) {
                b->seen += n; /* counted, not kept: the record says it was cut */
                return;
            }
            b->data = d;
            b->cap = cap;
        }
        memcpy(b->data + b->len, p, take);
        b->len += take;
    }
    b->seen += n;
}

/* ---- the store ---- */

static size_t slot_of(const hub_inspect_t *in, const char *tunnel_id)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)tunnel_id, strlen(tunnel_id), in->key);
    uint32_t v = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    return v & (INDEX_SLOTS - 1);
}

static bucket_t *bucket_find(const hub_inspect_t *in, const char *tunnel_id)
{
    for (bucket_t *b = in->index[slot_of(in, tunnel_id)]; b; b = b->next)
        if (!strcmp(b->tunnel_id, tunnel_id))
            return b;
    return NULL;
}

static void drop(hub_inspect_t *in, hub_inspect_rec_t *r)
{
    bucket_t *b = r->bucket;
    /* hub-wide list; an end is one whose pointer names it */
    if (in->oldest == r)
        in->oldest = r->newer;
    else
        r->older->newer = r->newer;
    if (in->newest == r)
        in->newest = r->older;
    else
        r->newer->older = r->older;
    /* its tunnel's */
    if (b->oldest == r)
        b->oldest = r->t_newer;
    else
        r->t_older->t_newer = r->t_newer;
    if (b->newest == r)
        b->newest = r->t_older;
    else
        r->t_newer->t_older = r->t_older;
    in->bytes -= r->bytes;
    if (--b->count == 0) {
        for (bucket_t **pp = &in->index[slot_of(in, b->tunnel_id)]; *pp; pp = &(*pp)->next)
            if (*pp == b) {
                *pp = b->next;
                break;
            }
        free(b);
    }
    hub_inspect_rec_free(r);
}

void hub_inspect_commit(hub_inspect_t *in, hub_inspect_rec_t *r, int status, int64_t now)
{
    if (!r)
        return;
    if (!in) {
        hub_inspect_rec_free(r);
        return;
    }
    bucket_t *b = bucket_find(in, r->tunnel_id);
    if (!b) {
        b = calloc(1, sizeof(*b));
        if (!b) {
            hub_inspect_rec_free(r);
            return;
        }
        snprintf(b->tunnel_id, sizeof(b->tunnel_id), "%s", r->tunnel_id);
        bucket_t **slot = &in->index[slot_of(in, b->tunnel_id)];
        b->next = *slot;
        *slot = b;
    }
    if (status)
        r->status = status;
    r->duration = now - r->started;
    if (!r->id)
        r->id = in->next_id++;
    r->bytes = sizeof(*r) + strlen(r->target) + r->req_head_len + r->resp_head_len +
               r->req_body.cap + r->resp_body.cap;
    r->bucket = b;
    r->older = in->newest;
    r->newer = NULL;
    if (in->newest)
        in->newest->newer = r;
    else
        in->oldest = r;
    in->newest = r;
    r->t_older = b->newest;
    r->t_newer = NULL;
    if (b->newest)
        b->newest->t_newer = r;
    else
        b->oldest = r;
    b->newest = r;
    b->count++;
    in->bytes += r->bytes;
    while (b->count > in->cfg.keep)
        drop(in, b->oldest); /* b lives on: it still holds r */
    while (in->bytes > in->cfg.bytes_max && in->oldest != r)
        drop(in, in->oldest);
}

void hub_inspect_sweep(hub_inspect_t *in, int64_t now)
{
    while (in && in->oldest && now - in->oldest->started > in->cfg.retention_ms)
        drop(in, in->oldest);
}

const hub_inspect_rec_t *hub_inspect_get(const hub_inspect_t *in, const char *workspace_id,
                                         uint64_t id)
{
    if (!in)
        return NULL;
    for (const hub_inspect_rec_t *r = in->newest; r; r = r->older)
        if (r->id == id)
            return strcmp(r->workspace_id, workspace_id) ? NULL : r;
    return NULL;
}

size_t hub_inspect_list(const hub_inspect_t *in, const char *workspace_id, const char *tunnel_id,
                        uint64_t before, bool forward, uint64_t after, size_t limit,
                        const hub_inspect_rec_t **out)
{
    const bucket_t *b = in ? bucket_find(in, tunnel_id) : NULL;
    size_t n = 0;
    if (!b || strcmp(b->newest->workspace_id, workspace_id))
        return 0;
    if (forward) {
        /* Oldest first from the cursor. A replay's reserved id may land
         * out of order; the walk checks every record. */
        for (const hub_inspect_rec_t *r = b->oldest; r && n < limit; r = r->t_newer)
            if (r->id > after)
                out[n++] = r;
        return n;
    }
    for (const hub_inspect_rec_t *r = b->newest; r && n < limit; r = r->t_older)
        if (!before || r->id < before)
            out[n++] = r;
    return n;
}

uint64_t hub_inspect_reserve(hub_inspect_t *in)
{
    return in->next_id++;
}

void hub_inspect_set_replay(hub_inspect_rec_t *r, uint64_t of, uint64_t id)
{
    if (r) {
        r->replay_of = of;
        r->id = id;
    }
}

/* ---- replay ---- */

int hub_inspect_replay_request(const hub_inspect_rec_t *r, const char *host, char **out,
                               size_t *len, const char **why)
{
    *out = NULL;
    *len = 0;
    if (r->target_cut || r->req_head_cut) {
        *why = "the request's target or headers were too long to be recorded whole";
        return CN_EINVAL;
    }
    if (r->req_body.seen != r->req_body.len) {
        *why = "the request body was not recorded whole (it is longer than the hub's "
               "--inspect-body-max)";
        return CN_EINVAL;
    }
    size_t cap = strlen(r->method) + strlen(r->target) + strlen(host) + 2 * r->req_head_len +
                 r->req_body.len + 64;
    char *buf = malloc(cap);
    if (!buf)
        return CN_ENOMEM;
    size_t j =
        (size_t)snprintf(buf, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n", r->method, r->target, host);
    for (const char *p = r->req_head; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        const char *colon = memchr(p, ':', ll);
        size_t nlen = colon ? (size_t)(colon - p) : ll;
        if (colon && !hub_inspect_masked_name(p, nlen) && !name_is(p, nlen, "host")) {
            put(buf, cap, &j, p, ll);
            put(buf, cap, &j, "\r\n", 2);
        }
        p = nl ? nl + 1 : p + ll;
    }
    put(buf, cap, &j, "\r\n", 2);
    /* The body must be what the recorded framing promises, no less. */
    hub_h1_head_t *h = malloc(sizeof(*h));
    hub_h1_body_t body;
    size_t used = 0;
    int rc = h ? hub_h1_parse_request(buf, j, h) : CN_ENOMEM;
    if (rc == CN_ENOMEM)
        goto fail;
    if (rc != 1 || h->head_len != j || hub_h1_request_body(h, &body) < 0) {
        *why = "the recorded request head cannot be sent again";
        rc = CN_EINVAL;
        goto fail;
    }
    if (body.kind != HUB_H1_BODY_NONE) {
        if (hub_h1_body_feed(&body, r->req_body.data, r->req_body.len, &used) < 0 || !body.done ||
            used != r->req_body.len) {
            *why = "the request body was not recorded whole";
            rc = CN_EINVAL;
            goto fail;
        }
    } else if (r->req_body.len) {
        *why = "the recorded request has a body but no framing for it";
        rc = CN_EINVAL;
        goto fail;
    }
    if (r->req_body.len)
        memcpy(buf + j, r->req_body.data, r->req_body.len);
    j += r->req_body.len;
    free(h);
    *out = buf;
    *len = j;
    return 0;
fail:
    free(h);
    free(buf);
    return rc;
}
