/*
 * A growable byte buffer, always NUL-terminated, and an arena for objects that
 * share one lifetime (a decoded batch and everything mapped from it).
 *
 * Allocation failure is reported, never fatal: a buffer that failed to grow
 * remembers it (dw_buf_failed) so encoders can append freely and check once.
 */
#ifndef DW_BUF_H
#define DW_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "bridge/common/dw_error.h"

struct dw_buf {
    char *data;     /* NUL-terminated when cap > 0 */
    size_t len;
    size_t cap;
    bool failed;    /* an append ran out of memory; contents are incomplete */
};

void dw_buf_init(struct dw_buf *b);
void dw_buf_cleanup(struct dw_buf *b);
/* Keep the memory, forget the contents (and a previous failure). */
void dw_buf_reset(struct dw_buf *b);
/* Make room for n more bytes. */
bool dw_buf_reserve(struct dw_buf *b, size_t n);
void dw_buf_append(struct dw_buf *b, const void *data, size_t n);
void dw_buf_puts(struct dw_buf *b, const char *s);
void dw_buf_putc(struct dw_buf *b, char c);
void dw_buf_printf(struct dw_buf *b, const char *fmt, ...) DW_PRINTF(2, 3);
/* True if any append failed since init/reset. */
static inline bool dw_buf_failed(const struct dw_buf *b) { return b->failed; }
/* Hand the data to the caller (who frees it with free()); b is left empty. */
char *dw_buf_take(struct dw_buf *b);

/*
 * Arena: bump allocation in chunks, everything freed at once by
 * dw_arena_reset (keeps the first chunk for reuse) or dw_arena_cleanup.
 */
struct dw_arena_chunk;
struct dw_arena {
    struct dw_arena_chunk *head;
    size_t chunk_size;   /* default size of new chunks */
    size_t total;        /* bytes handed out since the last reset */
};

void dw_arena_init(struct dw_arena *a, size_t chunk_size);
void dw_arena_cleanup(struct dw_arena *a);
void dw_arena_reset(struct dw_arena *a);
/* Returns NULL when out of memory. Memory is aligned for any type. */
void *dw_arena_alloc(struct dw_arena *a, size_t n);
void *dw_arena_zalloc(struct dw_arena *a, size_t n);
char *dw_arena_strndup(struct dw_arena *a, const char *s, size_t n);
char *dw_arena_strdup(struct dw_arena *a, const char *s);

#endif
