/*
 * Table maps: loading, validation and the mapping engine (DESIGN.md section 5).
 *
 * A map file (or a folder of *.json files) is read with cJSON, validated
 * completely and converted into the structs below; no cJSON pointer is kept.
 * The engine turns a decoded batch into the ordered list of target operations
 * (upsert by target key with the full mapped row, delete by target key).
 * Maps never see connectors: a target operation names its connector and table
 * by string only.
 */
#ifndef DW_MAP_H
#define DW_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_error.h"
#include "bridge/common/dw_op.h"
#include "bridge/common/dw_wire.h"

struct dw_map_plan;
struct dw_mapset_index;

struct dw_value_entry {
    char *from;
    char *to;                /* NULL maps to SQL null */
};

/*
 * How a lookup key value is written in the bind's key predicate (OData URL
 * conventions).  Maps never see a connector's data model, so the map says
 * the type; a string is the default.
 */
typedef enum dw_lookup_type {
    DW_LOOKUP_STRING = 0,    /* 'text', quotes doubled, percent-encoded */
    DW_LOOKUP_INTEGER,       /* Edm.Int16/32/64, Byte, SByte: digits, no leading zeros */
    DW_LOOKUP_DECIMAL,       /* Edm.Decimal: digits with an optional fraction */
    DW_LOOKUP_GUID           /* Edm.Guid: 8-4-4-4-12 hex digits, lowercased */
} dw_lookup_type;

struct dw_lookup_key {
    char *property;          /* key property of the entity set */
    char *source;            /* source column its value comes from */
    dw_lookup_type type;
};

/* A field whose value is a reference to a parent: "/Set(prop=literal,...)". */
struct dw_lookup {
    char *entity_set;
    size_t nkeys;
    struct dw_lookup_key *keys;   /* in file order: the order of the key predicate */
};

struct dw_field {
    char *source;            /* source column, NULL for a constant or a lookup */
    char *target;            /* target column */
    bool required;           /* null is rejected */
    bool has_const;
    char *const_value;       /* when has_const; NULL = SQL null */
    size_t nvalues;          /* value map, 0 when absent */
    struct dw_value_entry *values;   /* in file order */
    bool has_values;
    bool has_default;
    char *default_value;     /* when has_default; NULL = SQL null */
    struct dw_lookup *lookup;    /* a lookup field, else NULL */
};

struct dw_filter {
    char *column;            /* NULL when the map has no filter */
    size_t nin;
    char **in;               /* in file order; a NULL element matches SQL null */
};

struct dw_map {
    char *name;
    char *file;              /* the file it came from, for messages */
    char *source_table;      /* normalized "schema.table" */
    size_t nkey;
    char **source_key;       /* nkey columns */
    char *connector;
    char *target_table;
    char **target_key;       /* nkey columns, same positions as source_key */
    struct dw_filter filter;
    size_t nfields;
    struct dw_field *fields; /* in file order */
    size_t ndepends;
    char **depends_on;
    /* derived at load */
    size_t *key_field;       /* nkey indexes into fields: the field of key i */
    struct dw_map_plan *plan;    /* the engine's precomputed lookups (private) */
};

/* A loaded, validated set of maps. */
struct dw_mapset {
    size_t nmaps;
    struct dw_map *maps;     /* parents first; among ready maps the smallest name first */
    struct dw_mapset_index *index;   /* owns all memory; lookups by table and name (private) */
};

/*
 * Load every path (a map file, or a folder whose *.json files are each one
 * map).  All files are read and all errors reported: each error is one line
 * "file: /json/path: message" appended to *errors (a newline-separated list,
 * caller frees with free()), and the function fails with DW_ERR_CONFIG and a
 * summary in err.  On success *out is a new mapset (free with dw_mapset_free)
 * and *errors is NULL.  errors may be NULL when the caller needs only err.
 * JSON syntax errors are reported as "file:line:column: message".
 */
dw_errcode dw_mapset_load(const char *const *paths, size_t npaths, struct dw_mapset **out,
                          char **errors, struct dw_error *err) DW_MUST_CHECK;
void dw_mapset_free(struct dw_mapset *set);

/* Borrowed lookups; NULL when absent. */
const struct dw_map *dw_mapset_find(const struct dw_mapset *set, const char *name);

/*
 * Every source column the maps read from this table (key, fields, filter),
 * without duplicates, in first-use order: what the capture trigger must send.
 * Returns the count; names are borrowed from the mapset; *cols is malloc'd.
 * An unqualified table name means "public.table".  A table no map covers (or
 * no memory) gives 0 and *cols NULL.
 */
size_t dw_mapset_source_columns(const struct dw_mapset *set, const char *source_table,
                                const char ***cols);

struct dw_oplist {
    size_t nops;
    struct dw_target_op *ops;
    const char *connector;   /* the one connector all ops go to; NULL if no ops */
    /* on failure: where the fault is (for the verdict) */
    const char *fail_map;    /* NULL when not map-specific */
    long fail_change;        /* -1 when not change-specific */
};

/*
 * Map a decoded batch.  All memory comes from arena (reset it to free).  The
 * mapset is only read, so threads may map batches concurrently with one set.  A
 * change on a table no map covers, a required null, a value with no entry and
 * no default, a null key, or operations for more than one connector fail with
 * DW_ERR_MAP; the message names the map, field, change index and source key,
 * and out->fail_map / fail_change say the same for the verdict.
 */
dw_errcode dw_map_apply(const struct dw_mapset *set, const struct dw_batch *batch,
                        struct dw_arena *arena, struct dw_oplist *out,
                        struct dw_error *err) DW_MUST_CHECK;

#endif
