/* Bounded buffers: a non-owning slice and an owning growable buffer with a
 * hard maximum size and optional headroom (for LWS_PRE and record headers). */
#ifndef CN_BUF_H
#define CN_BUF_H

#include "cn_defs.h"

#include <stddef.h>
#include <stdint.h>

/* A borrowed view of bytes; never freed through the slice. */
typedef struct cn_slice {
    const uint8_t *base;
    size_t len;
} cn_slice_t;

/* An owning buffer: data lives at mem + head .. mem + head + len.
 * `max` bounds len; growth beyond it fails with CN_ETOOBIG and leaves
 * the buffer unchanged. Zero-initialise, or use cn_buf_init(). */
typedef struct cn_buf {
    uint8_t *mem;
    size_t head;     /* bytes of headroom / consumed prefix before data */
    size_t len;      /* bytes of data */
    size_t cap;      /* allocated bytes in mem */
    size_t max;      /* hard limit on len */
    size_t headroom; /* headroom restored by cn_buf_reset() */
} cn_buf_t;

void cn_buf_init(cn_buf_t *b, size_t max, size_t headroom);
/* Frees memory; the buffer may be reused after cn_buf_init(). NULL is fine. */
void cn_buf_free(cn_buf_t *b);
/* Pointer to the first data byte (may be NULL when nothing was allocated). */
static inline uint8_t *cn_buf_data(const cn_buf_t *b)
{
    return b->mem ? b->mem + b->head : NULL;
}
/* Makes room for `n` more bytes after the data; returns a pointer to it or
 * NULL (CN_ETOOBIG / CN_ENOMEM via *err when err is not NULL). */
CN_WARN_UNUSED uint8_t *cn_buf_reserve(cn_buf_t *b, size_t n, int *err);
/* Marks `n` reserved bytes as data. */
void cn_buf_commit(cn_buf_t *b, size_t n);
/* Appends bytes; 0 or a negative CN_E* code. */
CN_WARN_UNUSED int cn_buf_append(cn_buf_t *b, const void *p, size_t n);
/* Drops `n` bytes from the front (n <= len). */
void cn_buf_consume(cn_buf_t *b, size_t n);
/* Empties the buffer, keeping its memory. */
void cn_buf_reset(cn_buf_t *b);

/* Copies at most n bytes of the string src (fewer at a NUL) into dst[cap],
 * cut to cap - 1 bytes and NUL-terminated: snprintf(dst, cap, "%.*s", n,
 * src) without parsing a format, for the fixed-size fields filled on every
 * request. cap >= 1; returns the bytes copied. */
size_t cn_buf_strcpy(char *dst, size_t cap, const char *src, size_t n);

#endif
