/*
 * A target operation: what the mapping engine produces and connectors apply.
 * It lives in common so that connectors never need to see maps.
 */
#ifndef DW_OP_H
#define DW_OP_H

#include <stddef.h>

typedef enum dw_op_kind {
    DW_OP_UPSERT = 0,
    DW_OP_DELETE
} dw_op_kind;

/*
 * columns[0..nkey) are the target key columns in key order; an upsert carries
 * the full mapped row after them, a delete only the key (ncolumns == nkey).
 * All strings are borrowed (from the maps, the batch, or the batch's arena).
 */
struct dw_target_op {
    dw_op_kind kind;
    const char *connector;
    const char *table;
    size_t nkey;
    size_t ncolumns;
    const char *const *columns;
    const char *const *values;   /* NULL element = SQL null */
    const char *map;             /* name of the map that produced it */
    size_t change;               /* index of the source change in the batch */
};

#endif
