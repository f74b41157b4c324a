/*
 * Lookups precomputed when a mapset is loaded, so that mapping a batch costs
 * hash lookups and array indexing rather than name scans: source table ->
 * maps covering it and the columns they read (the table's "slots"), map name
 * -> map, and per map a plan (slots of its key, fields and filter, the column
 * list of its upserts, value maps and filter lists sorted for binary search).
 *
 * Everything is allocated in the set's arena and read-only afterwards.
 */
#include "maps/dw_map_int.h"

#include <stdlib.h>
#include <string.h>

static size_t pow2_at_least(size_t n)
{
    size_t p = 8;

    while (p < n)
        p *= 2;
    return p;
}

static void *zalloc(struct dw_mapset_index *ix, size_t n, size_t size)
{
    return dw_arena_zalloc(&ix->arena, (n ? n : 1) * size);
}

/* ---- lookups by table and by column ---- */

const struct dw_map_table *dw_map_index_table(const struct dw_mapset *set, const char *table)
{
    const struct dw_mapset_index *ix = set->index;
    size_t h;

    if (!ix || !ix->hash || !table)
        return NULL;
    for (h = dw_map_hash(table) & ix->hmask; ix->hash[h]; h = (h + 1) & ix->hmask) {
        const struct dw_map_table *t = &ix->tables[ix->hash[h] - 1];

        if (strcmp(t->name, table) == 0)
            return t;
    }
    return NULL;
}

size_t dw_map_index_column(const struct dw_map_table *t, const char *col)
{
    for (size_t h = dw_map_hash(col) & t->hmask; t->hash[h]; h = (h + 1) & t->hmask)
        if (strcmp(t->cols[t->hash[h] - 1], col) == 0)
            return t->hash[h] - 1;
    return DW_MAP_NONE;
}

static size_t add_column(struct dw_map_table *t, const char *col)
{
    size_t h;

    for (h = dw_map_hash(col) & t->hmask; t->hash[h]; h = (h + 1) & t->hmask)
        if (strcmp(t->cols[t->hash[h] - 1], col) == 0)
            return t->hash[h] - 1;
    t->cols[t->ncols] = col;
    t->hash[h] = ++t->ncols;
    return t->ncols - 1;
}

/* ---- building ---- */

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* A name and where it came from, for sorting indexes by name. */
struct entry_ref {
    const char *from;
    size_t index;
};

static int cmp_entry_ref(const void *a, const void *b)
{
    return strcmp(((const struct entry_ref *) a)->from, ((const struct entry_ref *) b)->from);
}

static dw_errcode build_plan(struct dw_mapset *set, size_t mi, struct dw_error *err)
{
    struct dw_mapset_index *ix = set->index;
    struct dw_map *m = &set->maps[mi];
    struct dw_map_plan *p = zalloc(ix, 1, sizeof(*p));
    const struct dw_map_table *t;
    size_t n = 0;
    bool *is_key, *seen;

    if (!p)
        goto nomem;
    m->plan = p;
    t = dw_map_index_table(set, m->source_table);
    p->table = (size_t) (t - ix->tables);

    for (p->connector = 0; p->connector < ix->nconnectors; p->connector++)
        if (strcmp(ix->connectors[p->connector], m->connector) == 0)
            break;

    /* upsert columns: the key in key order, then the other fields in file order */
    p->ncolumns = m->nfields;
    p->columns = zalloc(ix, m->nfields, sizeof(*p->columns));
    p->column_field = zalloc(ix, m->nfields, sizeof(*p->column_field));
    p->field_slot = zalloc(ix, m->nfields, sizeof(*p->field_slot));
    p->key_slot = zalloc(ix, m->nkey, sizeof(*p->key_slot));
    p->value_order = zalloc(ix, m->nfields, sizeof(*p->value_order));
    p->lookup_slots = zalloc(ix, m->nfields, sizeof(*p->lookup_slots));
    {
        size_t nread = m->nfields;   /* source columns fields read: one each, a lookup's keys */

        for (size_t f = 0; f < m->nfields; f++)
            if (m->fields[f].lookup)
                nread += m->fields[f].lookup->nkeys;
        p->mapped_slots = zalloc(ix, nread, sizeof(*p->mapped_slots));
    }
    is_key = zalloc(ix, m->nfields, sizeof(*is_key));
    if (!p->columns || !p->column_field || !p->field_slot || !p->key_slot || !p->value_order ||
        !p->lookup_slots || !p->mapped_slots || !is_key)
        goto nomem;
    for (size_t k = 0; k < m->nkey; k++) {
        size_t f = m->key_field[k];

        p->columns[n] = m->fields[f].target;
        p->column_field[n++] = f;
        is_key[f] = true;
        p->key_slot[k] = dw_map_index_column(t, m->source_key[k]);
    }
    for (size_t f = 0; f < m->nfields; f++)
        if (!is_key[f]) {
            p->columns[n] = m->fields[f].target;
            p->column_field[n++] = f;
        }

    seen = zalloc(ix, t->ncols, sizeof(*seen));
    if (!seen)
        goto nomem;
    for (size_t f = 0; f < m->nfields; f++) {
        const struct dw_field *fd = &m->fields[f];

        p->field_slot[f] = fd->source ? dw_map_index_column(t, fd->source) : DW_MAP_NONE;
        if (p->field_slot[f] != DW_MAP_NONE && !seen[p->field_slot[f]]) {
            seen[p->field_slot[f]] = true;
            p->mapped_slots[p->nmapped++] = p->field_slot[f];
        }
        if (fd->lookup) {
            size_t *slots = zalloc(ix, fd->lookup->nkeys, sizeof(*slots));

            if (!slots)
                goto nomem;
            for (size_t k = 0; k < fd->lookup->nkeys; k++) {
                slots[k] = dw_map_index_column(t, fd->lookup->keys[k].source);
                if (slots[k] != DW_MAP_NONE && !seen[slots[k]]) {
                    seen[slots[k]] = true;
                    p->mapped_slots[p->nmapped++] = slots[k];
                }
            }
            p->lookup_slots[f] = slots;
        }
        if (fd->has_values && fd->nvalues > 0) {
            struct entry_ref *refs = malloc(fd->nvalues * sizeof(*refs));
            size_t *order = zalloc(ix, fd->nvalues, sizeof(*order));

            if (!refs || !order) {
                free(refs);
                goto nomem;
            }
            for (size_t v = 0; v < fd->nvalues; v++) {
                refs[v].from = fd->values[v].from;
                refs[v].index = v;
            }
            qsort(refs, fd->nvalues, sizeof(*refs), cmp_entry_ref);
            for (size_t v = 0; v < fd->nvalues; v++)
                order[v] = refs[v].index;
            free(refs);
            p->value_order[f] = order;
        }
    }

    p->filter_slot = DW_MAP_NONE;
    if (m->filter.column) {
        p->filter_slot = dw_map_index_column(t, m->filter.column);
        p->filter_sorted = zalloc(ix, m->filter.nin, sizeof(*p->filter_sorted));
        if (!p->filter_sorted)
            goto nomem;
        for (size_t i = 0; i < m->filter.nin; i++) {
            if (m->filter.in[i])
                p->filter_sorted[p->nfilter++] = m->filter.in[i];
            else
                p->filter_null = true;
        }
        qsort(p->filter_sorted, p->nfilter, sizeof(*p->filter_sorted), cmp_cstr);
    }
    return DW_OK;
nomem:
    return dw_error_set(err, DW_ERR_NOMEM, "out of memory while indexing table maps");
}

dw_errcode dw_map_index_build(struct dw_mapset *set, struct dw_error *err)
{
    struct dw_mapset_index *ix = set->index;
    size_t n = set->nmaps, ncolbound = 0;

    ix->by_name = zalloc(ix, n, sizeof(*ix->by_name));
    ix->tables = zalloc(ix, n, sizeof(*ix->tables));
    ix->hmask = pow2_at_least(2 * n) - 1;
    ix->hash = zalloc(ix, ix->hmask + 1, sizeof(*ix->hash));
    ix->connectors = zalloc(ix, n, sizeof(*ix->connectors));
    if (!ix->by_name || !ix->tables || !ix->hash || !ix->connectors)
        goto nomem;
    {
        /* names are unique (the validator checked), so the order is total */
        struct entry_ref *refs = malloc((n ? n : 1) * sizeof(*refs));

        if (!refs)
            goto nomem;
        for (size_t i = 0; i < n; i++) {
            refs[i].from = set->maps[i].name;
            refs[i].index = i;
        }
        qsort(refs, n, sizeof(*refs), cmp_entry_ref);
        for (size_t i = 0; i < n; i++)
            ix->by_name[i] = refs[i].index;
        free(refs);
    }

    /* tables in first-use order, and how many maps each has */
    for (size_t i = 0; i < n; i++) {
        const struct dw_map *m = &set->maps[i];
        size_t h, c;

        for (h = dw_map_hash(m->source_table) & ix->hmask; ix->hash[h]; h = (h + 1) & ix->hmask)
            if (strcmp(ix->tables[ix->hash[h] - 1].name, m->source_table) == 0)
                break;
        if (!ix->hash[h]) {
            ix->tables[ix->ntables].name = m->source_table;
            ix->hash[h] = ++ix->ntables;
        }
        ix->tables[ix->hash[h] - 1].nmaps++;
        for (c = 0; c < ix->nconnectors; c++)
            if (strcmp(ix->connectors[c], m->connector) == 0)
                break;
        if (c == ix->nconnectors)
            ix->connectors[ix->nconnectors++] = m->connector;
    }
    for (size_t t = 0; t < ix->ntables; t++) {
        struct dw_map_table *tb = &ix->tables[t];

        tb->maps = zalloc(ix, tb->nmaps, sizeof(*tb->maps));
        if (!tb->maps)
            goto nomem;
        tb->nmaps = 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct dw_map_table *tb = (struct dw_map_table *) dw_map_index_table(set, set->maps[i].source_table);

        tb->maps[tb->nmaps++] = i;
    }

    /* each table's columns, map by map: key, fields, filter */
    for (size_t t = 0; t < ix->ntables; t++) {
        struct dw_map_table *tb = &ix->tables[t];

        ncolbound = 0;
        for (size_t k = 0; k < tb->nmaps; k++) {
            const struct dw_map *m = &set->maps[tb->maps[k]];

            ncolbound += m->nkey + m->nfields + 1;
            for (size_t f = 0; f < m->nfields; f++)
                if (m->fields[f].lookup)
                    ncolbound += m->fields[f].lookup->nkeys;
        }
        tb->cols = zalloc(ix, ncolbound, sizeof(*tb->cols));
        tb->hmask = pow2_at_least(2 * ncolbound) - 1;
        tb->hash = zalloc(ix, tb->hmask + 1, sizeof(*tb->hash));
        if (!tb->cols || !tb->hash)
            goto nomem;
        for (size_t k = 0; k < tb->nmaps; k++) {
            const struct dw_map *m = &set->maps[tb->maps[k]];

            for (size_t c = 0; c < m->nkey; c++)
                add_column(tb, m->source_key[c]);
            for (size_t f = 0; f < m->nfields; f++)
                if (m->fields[f].source)
                    add_column(tb, m->fields[f].source);
                else if (m->fields[f].lookup)
                    for (size_t k = 0; k < m->fields[f].lookup->nkeys; k++)
                        add_column(tb, m->fields[f].lookup->keys[k].source);
            if (m->filter.column)
                add_column(tb, m->filter.column);
        }
        if (tb->ncols > ix->max_cols)
            ix->max_cols = tb->ncols;
    }

    for (size_t i = 0; i < n; i++)
        if (build_plan(set, i, err) != DW_OK)
            return err ? err->code : DW_ERR_NOMEM;
    return DW_OK;
nomem:
    return dw_error_set(err, DW_ERR_NOMEM, "out of memory while indexing table maps");
}

/* ---- public lookups ---- */

const struct dw_map *dw_mapset_find(const struct dw_mapset *set, const char *name)
{
    size_t lo = 0, hi;

    if (!set || !set->index || !name)
        return NULL;
    hi = set->nmaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct dw_map *m = &set->maps[set->index->by_name[mid]];
        int r = strcmp(m->name, name);

        if (r == 0)
            return m;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t dw_mapset_source_columns(const struct dw_mapset *set, const char *source_table,
                                const char ***cols)
{
    const struct dw_map_table *t;
    char qualified[256];

    *cols = NULL;
    if (!set || !source_table)
        return 0;
    /* accept an unqualified name as the loader does: "orders" is "public.orders" */
    if (!strchr(source_table, '.') && strlen(source_table) < sizeof(qualified) - 8) {
        memcpy(qualified, "public.", 7);
        strcpy(qualified + 7, source_table);
        source_table = qualified;
    }
    t = dw_map_index_table(set, source_table);
    if (!t || t->ncols == 0)
        return 0;
    *cols = malloc(t->ncols * sizeof(**cols));
    if (!*cols)
        return 0;
    memcpy(*cols, t->cols, t->ncols * sizeof(**cols));
    return t->ncols;
}
