/*
 * Inside maps/: what the loader, the validator, the index builder and the
 * engine share.  Nothing here is part of the public API.
 *
 * A mapset owns one arena that holds every string and array of its maps, so
 * freeing a set is one arena cleanup.  At load the index builder precomputes,
 * per source table, the list of maps covering it and the table's source
 * columns ("slots"), and per map a plan that refers to slots by number, so
 * that the engine resolves each row image once and then works with array
 * indexes instead of column names.
 */
#ifndef DW_MAP_INT_H
#define DW_MAP_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "bridge/common/dw_buf.h"
#include "maps/dw_map.h"

#define DW_MAP_NONE ((size_t) -1)

/* PostgreSQL's NAMEDATALEN - 1: longer source names never match a catalog name. */
#define DW_MAP_PG_NAME_MAX 63

/* Per map, derived at load; read-only afterwards. */
struct dw_map_plan {
    size_t table;                /* index into the set's tables */
    size_t connector;            /* interned connector number */
    size_t ncolumns;             /* columns of an upsert (== nfields) */
    const char **columns;        /* target key columns in key order, then the others in file order */
    size_t *column_field;        /* field index behind each op column */
    size_t *field_slot;          /* per field: slot of its source column, DW_MAP_NONE for const */
    size_t *key_slot;            /* per key column: its slot */
    size_t filter_slot;          /* DW_MAP_NONE without filter */
    size_t nfilter;              /* non-null filter values, sorted bytewise */
    const char **filter_sorted;
    bool filter_null;            /* the filter lets SQL null in */
    size_t **value_order;        /* per field: value entries sorted by "from", or NULL */
    size_t **lookup_slots;       /* per field: the slot of each lookup key column, or NULL */
    size_t nmapped;              /* distinct slots read by fields: what "changed" compares */
    size_t *mapped_slots;
};

/* One source table: the maps that cover it and the columns they read. */
struct dw_map_table {
    const char *name;
    size_t nmaps;
    size_t *maps;                /* indexes into set->maps, in map order */
    size_t ncols;
    const char **cols;           /* first-use order: keys, fields, filter, map by map */
    size_t hmask;                /* open-addressing hash of cols: slot + 1, 0 = empty */
    size_t *hash;
};

struct dw_mapset_index {
    struct dw_arena arena;       /* owns every string and array of the set */
    size_t ntables;
    struct dw_map_table *tables;
    size_t hmask;                /* hash of table names: table + 1, 0 = empty */
    size_t *hash;
    size_t *by_name;             /* map indexes sorted by name */
    size_t nconnectors;
    const char **connectors;     /* interned connector names, first-use order */
    size_t max_cols;             /* largest ncols of any table */
};

/* FNV-1a, for the small hashes above. */
static inline size_t dw_map_hash(const char *s)
{
    unsigned long long h = 1469598103934665603ULL;

    while (*s) {
        h ^= (unsigned char) *s++;
        h *= 1099511628211ULL;
    }
    return (size_t) (h ^ (h >> 29));
}

/*
 * Write s to dst as a double-quoted string with '"', '\' and control
 * characters escaped, so that a message stays on one line; truncates with
 * "..." (never inside a UTF-8 sequence) when it does not fit.  s == NULL
 * writes "null" without quotes.
 */
void dw_map_quote(char *dst, size_t size, const char *s);

/* Build set->index lookups and every map's plan; maps are already in final order. */
dw_errcode dw_map_index_build(struct dw_mapset *set, struct dw_error *err) DW_MUST_CHECK;

/* The table entry for a source table name, or NULL. */
const struct dw_map_table *dw_map_index_table(const struct dw_mapset *set, const char *table);

/* The slot of a source column in a table, or DW_MAP_NONE. */
size_t dw_map_index_column(const struct dw_map_table *t, const char *col);

/* ---- between the loader and the validator ---- */

/* One file being loaded. */
struct dw_map_file {
    char *display;               /* path as shown in messages (control characters escaped) */
    struct dw_map map;           /* filled as far as the file is valid; array holes are NULL */
    bool has_map;                /* a JSON object was found (map may still be partial) */
    size_t nerrors;
    struct dw_buf errors;        /* "display: path: message\n" lines */
};

struct dw_map_loader {
    struct dw_arena *arena;      /* the set's arena */
    struct dw_arena scratch;     /* quoted names for messages, reset after each file */
    struct dw_arena paths;       /* file and directory names read, for the whole load */
    size_t nfiles;
    struct dw_map_file *files;
    size_t nerrors;
    size_t nbadfiles;
    bool nomem;                  /* an allocation failed: the load fails with DW_ERR_NOMEM */
    size_t *order;               /* after dw_map_validate_set without errors: files in dependency order */
};

/*
 * Append one error line for file: "display: where: message", or
 * "display: message" when where is NULL, or "display:L:C: message" when
 * where is ":L:C" (syntax errors).
 */
void dw_map_file_error(struct dw_map_loader *ld, struct dw_map_file *file, const char *where,
                       const char *fmt, ...) DW_PRINTF(4, 5);

/* Validate one parsed document (a cJSON tree, passed as void * to keep cJSON out of this header). */
void dw_map_validate_file(struct dw_map_loader *ld, struct dw_map_file *file, const void *json);

/*
 * Syntax of a map file's text (data[len] must be NUL): true when it is one
 * valid JSON value with nothing cJSON would silently alter; otherwise false
 * with the byte offset of the fault and a message.
 */
bool dw_map_syntax_check(const char *data, size_t len, size_t *err_pos, char *msg, size_t msgsize);

/* Checks across files: duplicate names, depends_on, cycles. */
void dw_map_validate_set(struct dw_map_loader *ld);

#endif
