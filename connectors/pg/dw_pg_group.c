/*
 * Grouping for the pg connector's batch pipeline: consecutive operations of
 * one shape (table, kind, column list) become one statement, a multi-row
 * INSERT ... VALUES (...), (...) ... ON CONFLICT for upserts and a
 * DELETE ... WHERE key IN (...) for deletes.  The target then parses,
 * plans and starts one executor per group instead of one per row, and the
 * pipeline carries one Bind/Execute per group.
 *
 * Order is kept: only consecutive operations are grouped, and a group ends
 * before an operation whose key already occurs in it (ON CONFLICT cannot
 * touch one row twice in one statement, and an upsert then a delete of one
 * key must stay in that order).  The parameters stay text, untyped: the
 * server infers their types from the target columns, as it does for the
 * single-row statements, so no catalog lookup is needed.
 *
 * Statements are cached per (shape, row count).  To bound the cache, counts
 * up to EXACT_MAX are used as they are and longer groups are cut into
 * powers of two (at most MAX_ROWS, and within the protocol's parameter
 * limit) before the exact remainder: at most about twenty statements per
 * shape.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/pg/dw_pg_int.h"

/* The protocol carries at most this many parameters per statement. */
#define MAX_PARAMS 65535
/* Rows of one grouped statement, at most. */
#define MAX_ROWS 128
/* Group sizes up to this are used as they are; longer ones are cut into powers of two. */
#define EXACT_MAX 16

static bool same_shape(const struct dw_target_op *a, const struct dw_target_op *b)
{
    if (a->kind != b->kind || a->nkey != b->nkey || a->ncolumns != b->ncolumns)
        return false;
    if (a->table != b->table && (!a->table || !b->table || strcmp(a->table, b->table) != 0))
        return false;
    if (a->columns == b->columns)
        return true;
    if (!a->columns || !b->columns)
        return false;
    for (size_t i = 0; i < a->ncolumns; i++) {
        const char *x = a->columns[i], *y = b->columns[i];

        if (x != y && (!x || !y || strcmp(x, y) != 0))
            return false;
    }
    return true;
}

static uint64_t key_hash(const struct dw_target_op *op)
{
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a over the key values, NULL apart */

    for (size_t k = 0; k < op->nkey; k++) {
        const unsigned char *v = (const unsigned char *) op->values[k];

        if (!v) {
            h = (h ^ 0xffu) * 1099511628211ULL;
            continue;
        }
        for (; *v; v++)
            h = (h ^ *v) * 1099511628211ULL;
        h = (h ^ 0xfeu) * 1099511628211ULL;
    }
    return h;
}

/* Same key values (NULL equals NULL here: when in doubt, do not group). */
static bool same_key(const struct dw_target_op *a, const struct dw_target_op *b)
{
    for (size_t k = 0; k < a->nkey; k++) {
        const char *x = a->values[k], *y = b->values[k];

        if (x == y)
            continue;
        if (!x || !y || strcmp(x, y) != 0)
            return false;
    }
    return true;
}

/* A shape that can be grouped: well formed (check_op says why not) and with a key. */
static bool groupable(const struct dw_target_op *op)
{
    if (!op->table || !op->columns || !op->values || op->nkey == 0 || op->ncolumns < op->nkey)
        return false;
    if (op->kind != DW_OP_UPSERT && op->kind != DW_OP_DELETE)
        return false;
    for (size_t i = 0; i < op->ncolumns; i++) {
        if (!op->columns[i] || !op->columns[i][0])
            return false;
    }
    return true;
}

size_t dw_pg_group_size(const struct dw_target_op *ops, size_t nops)
{
    uint64_t hashes[MAX_ROWS];
    size_t per_row, cap, n;

    if (nops < 2 || !groupable(&ops[0]))
        return 1;
    per_row = ops[0].kind == DW_OP_DELETE ? ops[0].nkey : ops[0].ncolumns;
    cap = MAX_PARAMS / per_row;
    if (cap > MAX_ROWS)
        cap = MAX_ROWS;
    if (cap < 2)
        return 1;
    hashes[0] = key_hash(&ops[0]);
    for (n = 1; n < nops && n < cap; n++) {
        const struct dw_target_op *op = &ops[n];
        bool dup = false;

        if (!same_shape(&ops[0], op) || !op->values)
            break;
        hashes[n] = key_hash(op);
        for (size_t j = 0; j < n && !dup; j++)
            dup = hashes[j] == hashes[n] && same_key(&ops[j], op);
        if (dup)
            break;
    }
    if (n <= EXACT_MAX)
        return n;
    /* the largest power of two that fits: the rest comes in the next call */
    for (size_t p = MAX_ROWS; p > 1; p /= 2) {
        if (p <= n)
            return p;
    }
    return 1;
}

int dw_pg_group_sql(struct dw_buf *b, const struct dw_target_op *op, size_t nrows)
{
    size_t param = 1;

    dw_buf_reset(b);
    if (op->kind == DW_OP_DELETE) {
        dw_buf_puts(b, "DELETE FROM ");
        dw_pg_quote_table(b, op->table);
        dw_buf_puts(b, " WHERE ");
        if (op->nkey > 1)
            dw_buf_putc(b, '(');
        for (size_t i = 0; i < op->nkey; i++) {
            if (i)
                dw_buf_puts(b, ", ");
            dw_pg_quote_ident(b, op->columns[i]);
        }
        dw_buf_puts(b, op->nkey > 1 ? ") IN (" : " IN (");
        for (size_t r = 0; r < nrows; r++) {
            dw_buf_puts(b, r ? ", " : "");
            if (op->nkey > 1)
                dw_buf_putc(b, '(');
            for (size_t i = 0; i < op->nkey; i++)
                dw_buf_printf(b, "%s$%zu", i ? ", " : "", param++);
            if (op->nkey > 1)
                dw_buf_putc(b, ')');
        }
        dw_buf_putc(b, ')');
        return (int) (param - 1);
    }
    dw_buf_puts(b, "INSERT INTO ");
    dw_pg_quote_table(b, op->table);
    dw_buf_puts(b, " (");
    for (size_t i = 0; i < op->ncolumns; i++) {
        if (i)
            dw_buf_puts(b, ", ");
        dw_pg_quote_ident(b, op->columns[i]);
    }
    dw_buf_puts(b, ") VALUES ");
    for (size_t r = 0; r < nrows; r++) {
        dw_buf_puts(b, r ? ", (" : "(");
        for (size_t i = 0; i < op->ncolumns; i++)
            dw_buf_printf(b, "%s$%zu", i ? ", " : "", param++);
        dw_buf_putc(b, ')');
    }
    dw_buf_puts(b, " ON CONFLICT (");
    for (size_t i = 0; i < op->nkey; i++) {
        if (i)
            dw_buf_puts(b, ", ");
        dw_pg_quote_ident(b, op->columns[i]);
    }
    if (op->ncolumns == op->nkey) {
        /* nothing but the key: the row existing is all an upsert can ask for */
        dw_buf_puts(b, ") DO NOTHING");
    } else {
        dw_buf_puts(b, ") DO UPDATE SET ");
        for (size_t i = op->nkey; i < op->ncolumns; i++) {
            if (i > op->nkey)
                dw_buf_puts(b, ", ");
            dw_pg_quote_ident(b, op->columns[i]);
            dw_buf_puts(b, " = EXCLUDED.");
            dw_pg_quote_ident(b, op->columns[i]);
        }
    }
    return (int) (param - 1);
}

const char *const *dw_pg_group_params(struct pg_session *s, const struct dw_target_op *ops,
                                      size_t nrows)
{
    size_t per_row = ops[0].kind == DW_OP_DELETE ? ops[0].nkey : ops[0].ncolumns;
    size_t need = per_row * nrows, k = 0;

    if (need > s->gparamcap) {
        const char **p = realloc(s->gparams, need * sizeof(*p));

        if (!p)
            return NULL;
        s->gparams = p;
        s->gparamcap = need;
    }
    for (size_t r = 0; r < nrows; r++) {
        memcpy(&s->gparams[k], ops[r].values, per_row * sizeof(*s->gparams));
        k += per_row;
    }
    return s->gparams;
}
