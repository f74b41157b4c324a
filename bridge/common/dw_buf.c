/*
 * Growable buffer and arena.  Growth doubles; a failed growth is remembered in
 * the buffer instead of being reported at each append.
 */
#include "bridge/common/dw_buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dw_buf_init(struct dw_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void dw_buf_cleanup(struct dw_buf *b)
{
    free(b->data);
    dw_buf_init(b);
}

void dw_buf_reset(struct dw_buf *b)
{
    b->len = 0;
    b->failed = false;
    if (b->data)
        b->data[0] = '\0';
}

bool dw_buf_reserve(struct dw_buf *b, size_t n)
{
    size_t need, cap;
    char *p;

    if (b->failed)
        return false;
    if (n > SIZE_MAX - b->len - 1) {
        b->failed = true;
        return false;
    }
    need = b->len + n + 1;
    if (need <= b->cap)
        return true;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void dw_buf_append(struct dw_buf *b, const void *data, size_t n)
{
    if (!dw_buf_reserve(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void dw_buf_puts(struct dw_buf *b, const char *s)
{
    dw_buf_append(b, s, strlen(s));
}

void dw_buf_putc(struct dw_buf *b, char c)
{
    dw_buf_append(b, &c, 1);
}

void dw_buf_printf(struct dw_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !dw_buf_reserve(b, (size_t) n)) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t) n;
}

char *dw_buf_take(struct dw_buf *b)
{
    char *p = b->data;

    if (!p)
        p = calloc(1, 1);
    dw_buf_init(b);
    return p;
}

/* ---- arena ---- */

struct dw_arena_chunk {
    struct dw_arena_chunk *next;
    size_t size;
    size_t used;
    max_align_t data[];
};

#define ARENA_ALIGN (sizeof(max_align_t))
#define ARENA_MAX_ALLOC ((size_t) 1 << 40)

void dw_arena_init(struct dw_arena *a, size_t chunk_size)
{
    a->head = NULL;
    a->chunk_size = chunk_size ? chunk_size : 16384;
    a->total = 0;
}

void dw_arena_cleanup(struct dw_arena *a)
{
    struct dw_arena_chunk *c = a->head;

    while (c) {
        struct dw_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

void dw_arena_reset(struct dw_arena *a)
{
    struct dw_arena_chunk *c, *keep;

    if (!a->head)
        return;
    /*
     * Keep the largest chunk for reuse, so that a service handling batches of
     * similar size allocates (and faults in) memory once, not per batch.
     */
    keep = a->head;
    for (c = a->head->next; c; c = c->next) {
        if (c->size > keep->size)
            keep = c;
    }
    c = a->head;
    while (c) {
        struct dw_arena_chunk *next = c->next;

        if (c != keep)
            free(c);
        c = next;
    }
    keep->used = 0;
    keep->next = NULL;
    a->head = keep;
    a->total = 0;
}

void *dw_arena_alloc(struct dw_arena *a, size_t n)
{
    struct dw_arena_chunk *c = a->head;
    size_t rounded;
    void *p;

    /* No object of ours comes near this; larger requests are bugs or hostile sizes. */
    if (n > ARENA_MAX_ALLOC)
        return NULL;
    rounded = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (rounded == 0)
        rounded = ARENA_ALIGN;
    if (!c || c->size - c->used < rounded) {
        size_t size = a->chunk_size;

        if (size < rounded)
            size = rounded;
        if (size > SIZE_MAX - sizeof(*c))
            return NULL;
        c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->size = size;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    p = (char *) c->data + c->used;
    c->used += rounded;
    a->total += rounded;
    return p;
}

void *dw_arena_zalloc(struct dw_arena *a, size_t n)
{
    void *p = dw_arena_alloc(a, n);

    if (p)
        memset(p, 0, n);
    return p;
}

char *dw_arena_strndup(struct dw_arena *a, const char *s, size_t n)
{
    char *p;

    if (n == SIZE_MAX)
        return NULL;
    p = dw_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *dw_arena_strdup(struct dw_arena *a, const char *s)
{
    return dw_arena_strndup(a, s, strlen(s));
}
