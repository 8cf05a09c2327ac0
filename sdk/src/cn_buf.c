/* Bounded growable buffer. Compacts before growing so a consumer that drains
 * from the front never makes the allocation creep. */
#include "cn_buf.h"
#include "cn_err.h"

#include <stdlib.h>
#include <string.h>

void cn_buf_init(cn_buf_t *b, size_t max, size_t headroom)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
    b->headroom = headroom;
    b->head = headroom;
}

void cn_buf_free(cn_buf_t *b)
{
    if (!b)
        return;
    free(b->mem);
    b->mem = NULL;
    b->cap = 0;
    b->len = 0;
    b->head = b->headroom;
}

uint8_t *cn_buf_reserve(cn_buf_t *b, size_t n, int *err)
{
    if (n > b->max || b->len > b->max - n) {
        if (err)
            *err = CN_ETOOBIG;
        return NULL;
    }
    size_t need = b->head + b->len + n;
    if (need <= b->cap)
        return b->mem + b->head + b->len;
    /* Compact first: consumed prefix beyond the headroom is wasted space. */
    if (b->mem && b->head > b->headroom) {
        memmove(b->mem + b->headroom, b->mem + b->head, b->len);
        b->head = b->headroom;
        need = b->head + b->len + n;
        if (need <= b->cap)
            return b->mem + b->head + b->len;
    }
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap *= 2;
    size_t limit = b->headroom + b->max;
    if (ncap > limit)
        ncap = limit;
    uint8_t *m = realloc(b->mem, ncap);
    if (!m) {
        if (err)
            *err = CN_ENOMEM;
        return NULL;
    }
    b->mem = m;
    b->cap = ncap;
    return b->mem + b->head + b->len;
}

void cn_buf_commit(cn_buf_t *b, size_t n)
{
    b->len += n;
}

int cn_buf_append(cn_buf_t *b, const void *p, size_t n)
{
    int err = 0;
    if (n == 0)
        return 0;
    uint8_t *dst = cn_buf_reserve(b, n, &err);
    if (!dst)
        return err;
    memcpy(dst, p, n);
    b->len += n;
    return 0;
}

void cn_buf_consume(cn_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        b->head = b->headroom;
        return;
    }
    b->head += n;
    b->len -= n;
}

void cn_buf_reset(cn_buf_t *b)
{
    b->len = 0;
    b->head = b->headroom;
}

size_t cn_buf_strcpy(char *dst, size_t cap, const char *src, size_t n)
{
    size_t m = strnlen(src, n < cap - 1 ? n : cap - 1);
    memcpy(dst, src, m);
    dst[m] = '\0';
    return m;
}
