/* A share's request policy (see share_policy.h): pure functions over bytes,
 * a window and the caller's clock. */
#include "share_policy.h"

#include <string.h>

#include "cn_err.h"
#include "router.h"

/* ---- normalising ------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Ends the segment that started at *seg and runs to *pos: drops it when
 * empty or ".", drops it and the one before for "..", else keeps it and,
 * when a separator follows, writes the '/'. */
static int end_segment(char *out, size_t cap, size_t *pos, size_t *seg, bool separator)
{
    size_t n = *pos - *seg;
    const char *s = out + *seg;
    /* ".;x" and "..;x" are dot segments to servers that strip path
     * parameters (Tomcat): refuse them rather than guess. */
    if ((n >= 2 && s[0] == '.' && s[1] == ';') ||
        (n >= 3 && s[0] == '.' && s[1] == '.' && s[2] == ';'))
        return CN_EINVAL;
    if (n == 1 && s[0] == '.') {
        *pos = *seg;
    } else if (n == 2 && s[0] == '.' && s[1] == '.') {
        /* out[*seg - 1] is the '/' before this segment; climb to the one
         * before the previous segment, never above the root. */
        size_t p = *seg - 1;
        while (p > 0 && out[p - 1] != '/')
            p--;
        if (p == 0)
            p = 1;
        *pos = p;
        *seg = p;
    } else if (n > 0 && separator) {
        if (*pos + 1 >= cap)
            return CN_ETOOBIG;
        out[(*pos)++] = '/';
        *seg = *pos;
    }
    return 0;
}

int hub_path_normalize(const char *raw, size_t len, char *out, size_t cap, size_t *outlen)
{
    if (!raw || !out || cap < 2)
        return CN_EINVAL;
    if (len == 0 || len > HUB_PATH_RAW_MAX || (raw[0] != '/' && raw[0] != '\\'))
        return CN_EINVAL;
    size_t pos = 0, seg;
    out[pos++] = '/';
    seg = pos;
    for (size_t i = 1; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '?' || c == '#')
            break;
        if (c <= 0x20 || c >= 0x7f)
            return CN_EINVAL; /* a request target is visible ASCII */
        bool sep = c == '/' || c == '\\';
        if (c == '%') {
            if (i + 2 >= len)
                return CN_EINVAL;
            int hi = hexval(raw[i + 1]), lo = hexval(raw[i + 2]);
            if (hi < 0 || lo < 0)
                return CN_EINVAL;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
            if (c < 0x20 || c == 0x7f)
                return CN_EINVAL;
            sep = c == '/' || c == '\\';
        }
        if (sep) {
            int rc = end_segment(out, cap, &pos, &seg, true);
            if (rc < 0)
                return rc;
            continue;
        }
        if (pos + 1 >= cap)
            return CN_ETOOBIG;
        out[pos++] = (char)c;
    }
    int rc = end_segment(out, cap, &pos, &seg, false);
    if (rc < 0)
        return rc;
    out[pos] = '\0';
    if (outlen)
        *outlen = pos;
    return 0;
}

static bool keep_literal(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("-._~/!$&'()*+,;=:@", c) != NULL;
}

int hub_path_encode(const char *path, size_t len, char *out, size_t cap, size_t *outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t pos = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (keep_literal(c)) {
            if (pos + 1 >= cap)
                return CN_ETOOBIG;
            out[pos++] = (char)c;
        } else {
            if (pos + 3 >= cap)
                return CN_ETOOBIG;
            out[pos++] = '%';
            out[pos++] = hex[c >> 4];
            out[pos++] = hex[c & 15];
        }
    }
    if (pos >= cap)
        return CN_ETOOBIG;
    out[pos] = '\0';
    if (outlen)
        *outlen = pos;
    return 0;
}

/* ---- patterns ------------------------------------------------------------ */

static bool fail(const char **why, const char *msg)
{
    if (why)
        *why = msg;
    return false;
}

bool hub_path_pattern_valid(const char *p, const char **why)
{
    if (!p || !*p)
        return fail(why, "a path pattern must not be empty");
    size_t n = strnlen(p, HUB_SHARE_PATTERN_MAX + 1);
    if (n > HUB_SHARE_PATTERN_MAX)
        return fail(why, "a path pattern must be at most 256 characters");
    if (p[0] != '/')
        return fail(why, "a path pattern must start with '/'");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#' || c == '%' || c == '\\')
            return fail(why, "a path pattern may not contain spaces, '?', '#', '%' or '\\'");
    }
    /* Segment by segment: no empty ones inside, no dot segments. */
    const char *s = p + 1;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t sl = e ? (size_t)(e - s) : strlen(s);
        if ((sl == 0 && e) || (sl == 1 && s[0] == '.') || (sl == 2 && s[0] == '.' && s[1] == '.'))
            return fail(why, "a path pattern must be normal: no '//', '.' or '..' segments");
        if (!e)
            break;
        s = e + 1;
    }
    return true;
}

/* '*' matches any run of bytes within one segment (no '/' is passed in). */
static bool glob_segment(const char *pat, size_t pn, const char *s, size_t sn)
{
    size_t pi = 0, si = 0, star = (size_t)-1, mark = 0;
    while (si < sn) {
        if (pi < pn && pat[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < pn && pat[pi] == s[si]) {
            pi++;
            si++;
        } else if (star != (size_t)-1) {
            pi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (pi < pn && pat[pi] == '*')
        pi++;
    return pi == pn;
}

/* The next non-empty segment of s[*i..n); false at the end. */
static bool next_segment(const char *s, size_t n, size_t *i, const char **seg, size_t *len)
{
    while (*i < n && s[*i] == '/')
        (*i)++;
    if (*i >= n)
        return false;
    size_t start = *i;
    while (*i < n && s[*i] != '/')
        (*i)++;
    *seg = s + start;
    *len = *i - start;
    return true;
}

bool hub_path_match(const char *pattern, const char *path, size_t len)
{
    if (!pattern || !path || len == 0 || path[0] != '/')
        return false;
    size_t pn = strlen(pattern);
    /* A final "/" + "*" segment is the prefix wildcard: the same as none. */
    if (pn >= 2 && pattern[pn - 1] == '*' && pattern[pn - 2] == '/')
        pn -= 2;
    size_t pi = 0, si = 0;
    const char *ps, *ss;
    size_t pl, sl;
    while (next_segment(pattern, pn, &pi, &ps, &pl)) {
        if (!next_segment(path, len, &si, &ss, &sl))
            return false;
        if (!glob_segment(ps, pl, ss, sl))
            return false;
    }
    return true;
}

/* ---- the window ------------------------------------------------------------ */

bool hub_share_window_take(hub_share_window_t *w, uint32_t limit, int64_t now_ms,
                           uint32_t *retry_after_s)
{
    if (w->start_ms == 0 || now_ms < w->start_ms || now_ms - w->start_ms >= HUB_SHARE_WINDOW_MS) {
        w->start_ms = now_ms ? now_ms : 1;
        w->count = 0;
    }
    if (w->count < limit) {
        w->count++;
        return true;
    }
    int64_t left = w->start_ms + HUB_SHARE_WINDOW_MS - now_ms;
    int64_t s = (left + 999) / 1000;
    if (retry_after_s)
        *retry_after_s = s < 1 ? 1 : (uint32_t)s;
    return false;
}

/* ---- the decision ------------------------------------------------------------ */

unsigned hub_share_allowed_mask(const hub_share_rules_t *r)
{
    unsigned m = r->methods;
    if (m & HUB_GET)
        m |= HUB_HEAD;
    return m;
}

static hub_share_decision_t verdict(enum hub_share_verdict v, int status)
{
    return (hub_share_decision_t){.verdict = v, .status = status};
}

hub_share_decision_t hub_share_decide(const hub_share_rules_t *rules, hub_share_window_t *w,
                                      const hub_share_request_t *req, int64_t now_ms)
{
    if (rules->revoked)
        return verdict(HUB_SHARE_REVOKED, 410);
    if (rules->expires_at && now_ms >= rules->expires_at)
        return verdict(HUB_SHARE_EXPIRED, 410);
    if (rules->needs_auth && !req->auth_ok)
        return verdict(HUB_SHARE_AUTH, 401);
    if (rules->methods && !(req->method & hub_share_allowed_mask(rules)))
        return verdict(HUB_SHARE_METHOD, 405);
    if (rules->npaths) {
        bool ok = false;
        for (size_t i = 0; i < rules->npaths && !ok; i++)
            ok = hub_path_match(rules->paths[i], req->path, req->path_len);
        if (!ok)
            return verdict(HUB_SHARE_PATH, 403);
    }
    if (rules->rate_limit) {
        uint32_t retry = 0;
        if (!hub_share_window_take(w, rules->rate_limit, now_ms, &retry)) {
            hub_share_decision_t d = verdict(HUB_SHARE_LIMIT, 429);
            d.retry_after_s = retry;
            return d;
        }
    }
    return verdict(HUB_SHARE_ALLOW, 200);
}

const char *hub_share_verdict_name(enum hub_share_verdict v)
{
    switch (v) {
    case HUB_SHARE_ALLOW:
        return "allow";
    case HUB_SHARE_REVOKED:
        return "revoked";
    case HUB_SHARE_EXPIRED:
        return "expired";
    case HUB_SHARE_AUTH:
        return "auth";
    case HUB_SHARE_METHOD:
        return "method";
    case HUB_SHARE_PATH:
        return "path";
    case HUB_SHARE_LIMIT:
        return "rate_limit";
    }
    return "?";
}
