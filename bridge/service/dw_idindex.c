/*
 * The id index: FNV-1a hashes, linear probing, grown to keep at most half
 * of the slots used so that a miss ends after a few probes.
 */
#include "bridge/service/dw_idindex.h"

#include <stdlib.h>
#include <string.h>

#define MIN_CAP 64

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++) {
        h ^= (unsigned char) *s;
        h *= 1099511628211ULL;
    }
    return h;
}

void dw_idindex_init(struct dw_idindex *ix, dw_idindex_key_fn key, const void *arg)
{
    memset(ix, 0, sizeof(*ix));
    ix->key = key;
    ix->arg = arg;
}

void dw_idindex_cleanup(struct dw_idindex *ix)
{
    free(ix->slots);
    ix->slots = NULL;
    ix->cap = ix->used = 0;
}

void dw_idindex_rebind(struct dw_idindex *ix, const void *arg)
{
    ix->arg = arg;
}

long dw_idindex_find(const struct dw_idindex *ix, const char *id)
{
    size_t mask, i;

    if (ix->cap == 0)
        return -1;
    mask = ix->cap - 1;
    for (i = (size_t) hash_id(id) & mask; ix->slots[i] != 0; i = (i + 1) & mask) {
        size_t pos = ix->slots[i] - 1;

        if (strcmp(ix->key(ix->arg, pos), id) == 0)
            return (long) pos;
    }
    return -1;
}

static void put(uint32_t *slots, size_t cap, const char *id, size_t pos)
{
    size_t mask = cap - 1, i;

    for (i = (size_t) hash_id(id) & mask; slots[i] != 0; i = (i + 1) & mask)
        ;
    slots[i] = (uint32_t) (pos + 1);
}

/* Slots for n elements at most half full; NULL when out of memory or too many. */
static uint32_t *alloc_slots(size_t n, size_t *cap)
{
    size_t c = MIN_CAP;

    if (n >= UINT32_MAX / 2)
        return NULL;
    while (c < 2 * n)
        c *= 2;
    *cap = c;
    return calloc(c, sizeof(uint32_t));
}

bool dw_idindex_rebuild(struct dw_idindex *ix, size_t n)
{
    size_t cap;
    uint32_t *slots = alloc_slots(n, &cap);

    free(ix->slots);
    ix->slots = NULL;
    ix->cap = ix->used = 0;
    if (!slots)
        return false;
    for (size_t pos = 0; pos < n; pos++)
        put(slots, cap, ix->key(ix->arg, pos), pos);
    ix->slots = slots;
    ix->cap = cap;
    ix->used = n;
    return true;
}

bool dw_idindex_add(struct dw_idindex *ix, const char *id, size_t pos)
{
    if (pos >= UINT32_MAX - 1)
        return false;
    if (2 * (ix->used + 1) > ix->cap) {
        size_t cap;
        uint32_t *slots = alloc_slots(ix->used + 1, &cap);

        if (!slots)
            return false;
        for (size_t i = 0; i < ix->cap; i++) {
            if (ix->slots[i] != 0)
                put(slots, cap, ix->key(ix->arg, ix->slots[i] - 1), ix->slots[i] - 1);
        }
        free(ix->slots);
        ix->slots = slots;
        ix->cap = cap;
    }
    put(ix->slots, ix->cap, id, pos);
    ix->used++;
    return true;
}
