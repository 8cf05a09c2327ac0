/* fuzz_share_policy: the input is a request path a hostile client sends,
 * optionally followed by "\n" and an allowedPaths pattern. The normaliser
 * must refuse it or produce a normal path (leading '/', no empty, "." or
 * ".." segments, no control bytes); re-encoding that path and normalising
 * it again must give it back unchanged (what the edge checks is what it
 * forwards); the path must match itself as a pattern when it is a valid
 * one, and the matcher and the decision must hold their invariants for any
 * pattern: a match never reaches past a segment boundary of the pattern.
 *
 * Seeds: tests/fuzz/corpus/share_policy. */
#include "router.h"
#include "share_policy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_normal(const char *p, size_t n)
{
    if (n == 0 || p[0] != '/' || strlen(p) != n)
        abort();
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            abort();
        if (c == '/' && i + 1 < n && p[i + 1] == '/')
            abort();
    }
    /* No "." or ".." segment anywhere. */
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '/')
            continue;
        size_t j = i + 1, k = j;
        while (k < n && p[k] != '/')
            k++;
        size_t sl = k - j;
        if ((sl == 1 && p[j] == '.') || (sl == 2 && p[j] == '.' && p[j + 1] == '.'))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t plen = nl ? (size_t)(nl - data) : size;
    static char norm[HUB_PATH_MAX + 1], enc[3 * HUB_PATH_MAX + 1], again[HUB_PATH_MAX + 1];
    static char pattern[HUB_SHARE_PATTERN_MAX + 2];
    size_t n = 0;
    if (hub_path_normalize((const char *)data, plen, norm, sizeof(norm), &n) != 0)
        return 0;
    check_normal(norm, n);

    size_t en = 0, an = 0;
    if (hub_path_encode(norm, n, enc, sizeof(enc), &en) != 0)
        abort(); /* 3 bytes per byte always fit */
    if (hub_path_normalize(enc, en, again, sizeof(again), &an) != 0 || an != n ||
        memcmp(again, norm, n) != 0)
        abort();

    if (n <= HUB_SHARE_PATTERN_MAX && hub_path_pattern_valid(norm, NULL) &&
        !hub_path_match(norm, norm, n))
        abort();

    if (nl) {
        size_t qlen = size - plen - 1;
        if (qlen > HUB_SHARE_PATTERN_MAX)
            qlen = HUB_SHARE_PATTERN_MAX;
        memcpy(pattern, nl + 1, qlen);
        pattern[qlen] = '\0';
        if (hub_path_pattern_valid(pattern, NULL)) {
            bool m = hub_path_match(pattern, norm, n);
            /* A pattern without '*' is a segment prefix: a match means the
             * path starts with it and continues, if at all, with '/'. */
            size_t bl = strlen(pattern);
            while (bl > 0 && pattern[bl - 1] == '/')
                bl--;
            if (m && !strchr(pattern, '*') && bl > 0 &&
                (n < bl || memcmp(norm, pattern, bl) != 0 || (n > bl && norm[bl] != '/')))
                abort();
            const char *paths[1] = {pattern};
            hub_share_rules_t r = {
                .methods = HUB_GET, .paths = paths, .npaths = 1, .rate_limit = 3};
            hub_share_window_t w = {0};
            hub_share_request_t q = {.method = HUB_GET, .path = norm, .path_len = n};
            hub_share_decision_t d = hub_share_decide(&r, &w, &q, 1);
            if ((d.verdict == HUB_SHARE_ALLOW) != m)
                abort();
        }
    }
    return 0;
}
