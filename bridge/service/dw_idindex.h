/*
 * An index from string ids to positions in an array the caller owns: open
 * addressing with linear probing, at most half full.  The index stores
 * positions only; the caller's key function reads an element's id.  There is
 * no single removal: a caller that drops elements compacts its array and
 * rebuilds the index (one pass), which suits lists trimmed in bulk.
 * Not thread-safe: the caller's lock covers the index with its array.
 */
#ifndef DW_IDINDEX_H
#define DW_IDINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef const char *(*dw_idindex_key_fn)(const void *arg, size_t pos);

struct dw_idindex {
    uint32_t *slots;       /* position + 1; 0 is an empty slot */
    size_t cap;            /* a power of two, or 0 */
    size_t used;
    dw_idindex_key_fn key;
    const void *arg;       /* passed to key */
};

/* An empty index reading ids through key(arg, pos). */
void dw_idindex_init(struct dw_idindex *ix, dw_idindex_key_fn key, const void *arg);
void dw_idindex_cleanup(struct dw_idindex *ix);

/* The array moved (realloc): read ids through arg from now on. */
void dw_idindex_rebind(struct dw_idindex *ix, const void *arg);

/* The position of id, or -1. */
long dw_idindex_find(const struct dw_idindex *ix, const char *id);

/* Index position pos under id; false when out of memory (the index is unchanged). */
bool dw_idindex_add(struct dw_idindex *ix, const char *id, size_t pos);

/*
 * Index positions [0, n) anew.  False when out of memory: the index is then
 * empty and finds nothing until a later rebuild succeeds.
 */
bool dw_idindex_rebuild(struct dw_idindex *ix, size_t n);

#endif
