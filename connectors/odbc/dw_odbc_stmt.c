/*
 * The ODBC connector's statements: text per dialect, a cache per shape,
 * parameter binding and execution of runs of operations.
 *
 * A shape is (table, operation kind, column list); its statement text is the
 * cache key, since quoting makes it unambiguous.  A statement is prepared
 * once per connection (SQLPrepare) and executed for every operation of its
 * shape.  Consecutive operations of one shape form a run; where the driver
 * has parameter arrays with per-row status (SQL_PARAM_ARRAY_ROW_COUNTS) a run
 * goes out as one SQLExecute with SQL_ATTR_PARAMSET_SIZE rows (MariaDB sends
 * that as one bulk command), otherwise row by row.  When an array fails
 * without saying which row did, its rows are run again one by one (the batch
 * is lost anyway) so that the error names the operation.
 *
 * Values arrive as PostgreSQL's text output and are bound as SQL_C_CHAR text,
 * NULL as SQL_NULL_DATA.  What each driver needs (tested for SQLite, MariaDB
 * and PostgreSQL): SQLDescribeParam tells nothing for SQLite (every parameter
 * is SQL_LONGVARCHAR) or MariaDB (SQL_VARCHAR); psqlodbc describes real
 * types, and converting text to SQL_TYPE_TIMESTAMP there drops a time-zone
 * offset.  So a described integer, floating-point, bit or date type is used
 * as the bind type, anything else binds as SQL_VARCHAR and the server
 * converts; booleans and zoned timestamps are rewritten first for targets
 * that do not read PostgreSQL's forms of them (dw_odbc_value.c).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/odbc/dw_odbc_int.h"

#define MAX_PARAMS 65535
#define NORM_BUF 64
/* A status value no driver writes: the entry was left alone. */
#define STATUS_UNSET 0xFFFF

/* ---------------------------------------------------------------- statement text */

static void column_list(struct odbc_session *s, const struct dw_target_op *op, size_t from,
                        size_t to, const char *sep, const char *suffix)
{
    for (size_t i = from; i < to; i++) {
        if (i > from)
            dw_buf_puts(&s->sql, sep);
        dw_odbc_quote_ident(s, &s->sql, op->columns[i]);
        if (suffix)
            dw_buf_puts(&s->sql, suffix);
    }
}

static void where_key(struct odbc_session *s, const struct dw_target_op *op)
{
    dw_buf_puts(&s->sql, " WHERE ");
    column_list(s, op, 0, op->nkey, " AND ", " = ?");
}

static void insert_head(struct odbc_session *s, const struct dw_target_op *op)
{
    dw_buf_puts(&s->sql, "INSERT INTO ");
    dw_odbc_quote_table(s, &s->sql, op->table);
    dw_buf_puts(&s->sql, " (");
    column_list(s, op, 0, op->ncolumns, ", ", NULL);
    dw_buf_puts(&s->sql, ") VALUES (");
    for (size_t i = 0; i < op->ncolumns; i++)
        dw_buf_puts(&s->sql, i ? ", ?" : "?");
    dw_buf_putc(&s->sql, ')');
}

/* The text of the statement of this kind for op, into s->sql. */
static void build_sql(struct odbc_session *s, odbc_stmt_kind kind, const struct dw_target_op *op)
{
    struct dw_buf *b = &s->sql;

    dw_buf_reset(b);
    switch (kind) {
    case ODBC_STMT_DELETE:
        dw_buf_puts(b, "DELETE FROM ");
        dw_odbc_quote_table(s, b, op->table);
        where_key(s, op);
        break;
    case ODBC_STMT_INSERT:
        insert_head(s, op);
        break;
    case ODBC_STMT_UPDATE:
        dw_buf_puts(b, "UPDATE ");
        dw_odbc_quote_table(s, b, op->table);
        dw_buf_puts(b, " SET ");
        if (op->ncolumns == op->nkey) {
            /* nothing but the key: a no-op update that still counts the row */
            dw_odbc_quote_ident(s, b, op->columns[0]);
            dw_buf_puts(b, " = ");
            dw_odbc_quote_ident(s, b, op->columns[0]);
        } else {
            column_list(s, op, op->nkey, op->ncolumns, ", ", " = ?");
        }
        where_key(s, op);
        break;
    case ODBC_STMT_UPSERT:
        insert_head(s, op);
        if (s->dialect == ODBC_UPSERT_ON_DUPLICATE_KEY) {
            /*
             * ON DUPLICATE KEY fires on a conflict with ANY unique key, and would
             * then overwrite a different row.  The first assignment keeps the key
             * when the conflicting row is ours and otherwise fails the statement
             * (a subquery of two rows: error 1242, which the connector reports
             * as a unique-key conflict); it comes first because MariaDB applies
             * the assignments left to right.
             */
            dw_buf_puts(b, " ON DUPLICATE KEY UPDATE ");
            dw_odbc_quote_ident(s, b, op->columns[0]);
            dw_buf_puts(b, " = IF(");
            for (size_t i = 0; i < op->nkey; i++) {
                if (i > 0)
                    dw_buf_puts(b, " AND ");
                dw_odbc_quote_ident(s, b, op->columns[i]);
                dw_buf_puts(b, " <=> VALUES(");
                dw_odbc_quote_ident(s, b, op->columns[i]);
                dw_buf_putc(b, ')');
            }
            dw_buf_puts(b, ", ");
            dw_odbc_quote_ident(s, b, op->columns[0]);
            dw_buf_puts(b, ", (SELECT 1 UNION ALL SELECT 2))");
            for (size_t i = op->nkey; i < op->ncolumns; i++) {
                dw_buf_puts(b, ", ");
                dw_odbc_quote_ident(s, b, op->columns[i]);
                dw_buf_puts(b, " = VALUES(");
                dw_odbc_quote_ident(s, b, op->columns[i]);
                dw_buf_putc(b, ')');
            }
        } else {
            dw_buf_puts(b, " ON CONFLICT (");
            column_list(s, op, 0, op->nkey, ", ", NULL);
            if (op->ncolumns == op->nkey) {
                dw_buf_puts(b, ") DO NOTHING");
            } else {
                dw_buf_puts(b, ") DO UPDATE SET ");
                for (size_t i = op->nkey; i < op->ncolumns; i++) {
                    if (i > op->nkey)
                        dw_buf_puts(b, ", ");
                    dw_odbc_quote_ident(s, b, op->columns[i]);
                    dw_buf_puts(b, " = excluded.");
                    dw_odbc_quote_ident(s, b, op->columns[i]);
                }
            }
        }
        break;
    }
}

/* Which column of the operation each parameter takes. */
static int fill_colidx(odbc_stmt_kind kind, const struct dw_target_op *op, int *colidx)
{
    int n = 0;

    switch (kind) {
    case ODBC_STMT_DELETE:
        for (size_t i = 0; i < op->nkey; i++)
            colidx[n++] = (int) i;
        break;
    case ODBC_STMT_UPDATE:
        for (size_t i = op->nkey; i < op->ncolumns; i++)
            colidx[n++] = (int) i;
        for (size_t i = 0; i < op->nkey; i++)
            colidx[n++] = (int) i;
        break;
    case ODBC_STMT_INSERT:
    case ODBC_STMT_UPSERT:
        for (size_t i = 0; i < op->ncolumns; i++)
            colidx[n++] = (int) i;
        break;
    }
    return n;
}

/* ---------------------------------------------------------------- the cache */

static uint64_t hash_text(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a */

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char) p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void stmt_free(struct odbc_stmt *st)
{
    if (st->h)
        SQLFreeHandle(SQL_HANDLE_STMT, st->h);
    free(st->sql);
    free(st->colidx);
    free(st->sqltype);
    free(st->colsize);
    free(st->digits);
    free(st->norm);
    memset(st, 0, sizeof(*st));
}

void dw_odbc_stmts_release(struct odbc_session *s)
{
    for (size_t i = 0; i < s->nstmts; i++) {
        if (s->stmts[i].h)
            SQLFreeHandle(SQL_HANDLE_STMT, s->stmts[i].h);
        s->stmts[i].h = NULL;
        s->stmts[i].prepared = false;
    }
}

void dw_odbc_stmts_cleanup(struct odbc_session *s)
{
    for (size_t i = 0; i < s->nstmts; i++)
        stmt_free(&s->stmts[i]);
    free(s->stmts);
    s->stmts = NULL;
    s->nstmts = s->stmtcap = 0;
    dw_odbc_tables_cleanup(s);
    free(s->bindbuf);
    free(s->ind);
    free(s->status);
    s->bindbuf = NULL;
    s->ind = NULL;
    s->status = NULL;
    s->bindcap = s->indcap = s->statuscap = 0;
    dw_buf_cleanup(&s->sql);
}

/* Bind types from SQLDescribeParam where they help (see the top of this file). */
static void describe_params(struct odbc_session *s, struct odbc_stmt *st)
{
    for (int i = 0; i < st->nparams; i++) {
        SQLSMALLINT type = SQL_VARCHAR, dd = 0, nullable;
        SQLULEN size = 0;

        st->sqltype[i] = SQL_VARCHAR;
        st->colsize[i] = 0;
        st->digits[i] = 0;
        if (!s->describe ||
            !SQL_SUCCEEDED(SQLDescribeParam(st->h, (SQLUSMALLINT) (i + 1), &type, &size, &dd,
                                            &nullable)))
            continue;
        switch (type) {
        case SQL_INTEGER:
        case SQL_SMALLINT:
        case SQL_TINYINT:
        case SQL_BIGINT:
        case SQL_BIT:
        case SQL_REAL:
        case SQL_FLOAT:
        case SQL_DOUBLE:
        case SQL_TYPE_DATE:
            st->sqltype[i] = type;
            st->colsize[i] = size;
            st->digits[i] = dd < 0 ? 0 : dd;
            break;
        default:
            break;
        }
    }
}

/* How each parameter's values are rewritten, from the table's columns. */
static dw_errcode set_norms(struct odbc_session *s, struct odbc_stmt *st,
                            const struct dw_target_op *op, struct dw_error *err)
{
    const struct odbc_table *t = NULL;
    struct dw_error local;
    dw_errcode rc;

    memset(st->norm, ODBC_NORM_NONE, (size_t) st->nparams);
    if (!s->normalize)
        return DW_OK;
    dw_error_clear(&local);
    rc = dw_odbc_table(s, op->table, false, &t, &local);
    if (rc != DW_OK) {
        if (!s->base.broken)
            return DW_OK;   /* without metadata the values go as they are */
        if (err && !dw_error_is_set(err))
            *err = local;
        return rc;
    }
    if (!t)
        return DW_OK;
    for (int i = 0; i < st->nparams; i++) {
        const char *name = op->columns[st->colidx[i]];

        for (size_t c = 0; c < t->ncols; c++) {
            if (strcmp(t->cols[c].name, name) == 0 ||
                (s->fold_columns && strcasecmp(t->cols[c].name, name) == 0)) {
                st->norm[i] = (unsigned char) dw_odbc_column_norm(&t->cols[c]);
                break;
            }
        }
    }
    return DW_OK;
}

/* Prepare st on this connection (first use, or after a reconnect). */
static dw_errcode prepare_stmt(struct odbc_session *s, struct odbc_stmt *st,
                               const struct dw_target_op *op, struct dw_error *err)
{
    long ms = s->base.config ? s->base.config->timeout_ms : 0;
    SQLRETURN r;
    dw_errcode rc;

    if (!s->connected)
        return dw_odbc_lost(s, "preparing a statement", err);
    /* metadata first: the catalog call runs on the direct handle */
    if ((rc = set_norms(s, st, op, err)) != DW_OK)
        return rc;
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, s->dbc, &st->h))) {
        st->h = NULL;
        return dw_odbc_error(s, SQL_HANDLE_DBC, s->dbc, SQL_ERROR, "allocating a statement",
                             err);
    }
    if (ms > 0)
        SQLSetStmtAttr(st->h, SQL_ATTR_QUERY_TIMEOUT, (SQLPOINTER) (SQLULEN) ((ms + 999) / 1000),
                       0);
    SQLSetStmtAttr(st->h, SQL_ATTR_PARAM_BIND_TYPE, (SQLPOINTER) SQL_PARAM_BIND_BY_COLUMN, 0);
    r = SQLPrepare(st->h, (SQLCHAR *) st->sql, SQL_NTS);
    if (!SQL_SUCCEEDED(r)) {
        rc = dw_odbc_error(s, SQL_HANDLE_STMT, st->h, r, "preparing a statement", err);
        SQLFreeHandle(SQL_HANDLE_STMT, st->h);
        st->h = NULL;
        return rc;
    }
    describe_params(s, st);
    st->prepared = true;
    return DW_OK;
}

static bool stmt_alloc_arrays(struct odbc_stmt *st, int n)
{
    st->nparams = n;
    st->colidx = calloc((size_t) n + 1, sizeof(*st->colidx));
    st->sqltype = calloc((size_t) n + 1, sizeof(*st->sqltype));
    st->colsize = calloc((size_t) n + 1, sizeof(*st->colsize));
    st->digits = calloc((size_t) n + 1, sizeof(*st->digits));
    st->norm = calloc((size_t) n + 1, 1);
    return st->colidx && st->sqltype && st->colsize && st->digits && st->norm;
}

/*
 * The statement of this kind for op: from the cache, or new (then cached
 * unless the cache is full: *temp says the caller frees it after use).
 */
static dw_errcode get_stmt(struct odbc_session *s, odbc_stmt_kind kind,
                           const struct dw_target_op *op, struct odbc_stmt **out,
                           struct odbc_stmt *temp, struct dw_error *err)
{
    struct odbc_stmt *st;
    uint64_t h;
    dw_errcode rc;

    *out = NULL;
    build_sql(s, kind, op);
    if (dw_buf_failed(&s->sql))
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    h = hash_text(s->sql.data, s->sql.len);
    for (size_t i = 0; i < s->nstmts; i++) {
        if (s->stmts[i].hash == h && strcmp(s->stmts[i].sql, s->sql.data) == 0) {
            st = &s->stmts[i];
            goto found;
        }
    }
    if (s->nstmts >= ODBC_MAX_CACHED_STMTS) {
        st = temp;
    } else {
        if (s->nstmts == s->stmtcap) {
            size_t cap = s->stmtcap ? s->stmtcap * 2 : 16;
            struct odbc_stmt *p = realloc(s->stmts, cap * sizeof(*p));

            if (!p)
                return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
            s->stmts = p;
            s->stmtcap = cap;
        }
        st = &s->stmts[s->nstmts];
    }
    memset(st, 0, sizeof(*st));
    st->sql = strdup(s->sql.data);
    if (!st->sql || !stmt_alloc_arrays(st, (int) op->ncolumns)) {
        stmt_free(st);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    st->hash = h;
    st->kind = kind;
    st->nparams = fill_colidx(kind, op, st->colidx);
    if (st != temp)
        s->nstmts++;
found:
    if (!st->prepared && (rc = prepare_stmt(s, st, op, err)) != DW_OK) {
        if (st == temp)
            stmt_free(st);
        return rc;
    }
    *out = st;
    return DW_OK;
}

/* ---------------------------------------------------------------- binding and execution */

static bool reserve(void **p, size_t *cap, size_t need, size_t elem)
{
    void *np;

    if (need <= *cap)
        return true;
    np = realloc(*p, need * elem);
    if (!np)
        return false;
    *p = np;
    *cap = need;
    return true;
}

static const char *param_value(const struct odbc_stmt *st, int p, const struct dw_target_op *op,
                               char *tmp)
{
    return dw_odbc_normalize((odbc_norm) st->norm[p], op->values[st->colidx[p]], tmp, NORM_BUF);
}

/*
 * How many rows from ops[0..n) fit one parameter array: each parameter's
 * cells are as wide as its longest value, so the buffers take the sum of
 * those widths times the rows.
 */
static size_t chunk_rows(const struct odbc_session *s, const struct odbc_stmt *st,
                         const struct dw_target_op *ops, size_t n)
{
    size_t small[64], *maxw = small, rows = 0;

    if (!s->arrays || n < 2)
        return 1;
    if (st->nparams > 64 && !(maxw = calloc((size_t) st->nparams, sizeof(*maxw))))
        return 1;
    memset(maxw, 0, (size_t) (st->nparams < 64 ? 64 : st->nparams) * sizeof(*maxw));
    while (rows < n && rows < ODBC_MAX_ARRAY_ROWS) {
        size_t width = 0;

        for (int p = 0; p < st->nparams; p++) {
            const char *v = ops[rows].values[st->colidx[p]];
            size_t w = (v ? strlen(v) : 0) + NORM_BUF;   /* room for a rewritten value */

            width += w > maxw[p] ? w : maxw[p];
        }
        if (rows > 0 && width * (rows + 1) > ODBC_MAX_ARRAY_BYTES)
            break;
        for (int p = 0; p < st->nparams; p++) {
            const char *v = ops[rows].values[st->colidx[p]];
            size_t w = (v ? strlen(v) : 0) + NORM_BUF;

            if (w > maxw[p])
                maxw[p] = w;
        }
        rows++;
    }
    if (maxw != small)
        free(maxw);
    return rows ? rows : 1;
}

/*
 * Bind the values of ops[0..n) (column-wise arrays of text) and execute.
 * Returns the ODBC return code; *nomem when the buffers could not grow.
 */
static SQLRETURN bind_execute(struct odbc_session *s, struct odbc_stmt *st,
                              const struct dw_target_op *ops, size_t n, bool *nomem)
{
    size_t width[64], *widths = width, total = 0, off = 0;
    char tmp[NORM_BUF];
    SQLRETURN r;

    *nomem = false;
    if (st->nparams > 64) {
        widths = calloc((size_t) st->nparams, sizeof(*widths));
        if (!widths) {
            *nomem = true;
            return SQL_ERROR;
        }
    }
    for (int p = 0; p < st->nparams; p++) {
        size_t w = 1;

        for (size_t row = 0; row < n; row++) {
            const char *v = param_value(st, p, &ops[row], tmp);
            size_t len = v ? strlen(v) + 1 : 1;

            if (len > w)
                w = len;
        }
        widths[p] = w;
        total += w * n;
    }
    if (!reserve((void **) &s->bindbuf, &s->bindcap, total ? total : 1, 1) ||
        !reserve((void **) &s->ind, &s->indcap, (size_t) st->nparams * n + 1, sizeof(SQLLEN)) ||
        !reserve((void **) &s->status, &s->statuscap, n, sizeof(SQLUSMALLINT))) {
        if (widths != width)
            free(widths);
        *nomem = true;
        return SQL_ERROR;
    }
    /*
     * Unbind, then the array size, then bind: MariaDB Connector/ODBC 3.1
     * sends garbage when buffers bound at the same address for one row are
     * then used for an array without SQL_RESET_PARAMS in between.
     */
    SQLFreeStmt(st->h, SQL_RESET_PARAMS);
    if (s->arrays) {
        for (size_t row = 0; row < n; row++)
            s->status[row] = STATUS_UNSET;
        SQLSetStmtAttr(st->h, SQL_ATTR_PARAMSET_SIZE, (SQLPOINTER) (SQLULEN) n, 0);
        SQLSetStmtAttr(st->h, SQL_ATTR_PARAM_STATUS_PTR, s->status, 0);
        SQLSetStmtAttr(st->h, SQL_ATTR_PARAMS_PROCESSED_PTR, &s->processed, 0);
    }
    for (int p = 0; p < st->nparams; p++) {
        char *buf = s->bindbuf + off;
        SQLLEN *ind = s->ind + (size_t) p * n;
        SQLSMALLINT type = st->sqltype[p];
        SQLULEN colsize = st->colsize[p];
        size_t maxlen = 0;

        for (size_t row = 0; row < n; row++) {
            const char *v = param_value(st, p, &ops[row], tmp);
            char *cell = buf + row * widths[p];

            if (!v) {
                ind[row] = SQL_NULL_DATA;
                cell[0] = '\0';
                continue;
            }
            ind[row] = (SQLLEN) strlen(v);
            memcpy(cell, v, (size_t) ind[row] + 1);
            if ((size_t) ind[row] > maxlen)
                maxlen = (size_t) ind[row];
        }
        if (type == SQL_VARCHAR) {
            colsize = maxlen ? maxlen : 1;
            if (maxlen > 8000)
                type = SQL_LONGVARCHAR;
        }
        r = SQLBindParameter(st->h, (SQLUSMALLINT) (p + 1), SQL_PARAM_INPUT, SQL_C_CHAR, type,
                             colsize, st->digits[p], buf, (SQLLEN) widths[p], ind);
        if (!SQL_SUCCEEDED(r)) {
            if (widths != width)
                free(widths);
            return r;
        }
        off += widths[p] * n;
    }
    if (widths != width)
        free(widths);
    /* nothing may touch st->h between this and reading its diagnostics */
    dw_odbc_call_start(s);
    return SQLExecute(st->h);
}

static void set_context(struct dw_error *err, const struct dw_target_op *op, long first,
                        long last)
{
    if (!err || err->context[0])
        return;
    if (first == last)
        snprintf(err->context, sizeof(err->context), "operation %ld: %s table \"%s\"", first,
                 op->kind == DW_OP_UPSERT ? "upsert into" : "delete from", op->table);
    else
        snprintf(err->context, sizeof(err->context), "operations %ld to %ld: %s table \"%s\"",
                 first, last, op->kind == DW_OP_UPSERT ? "upsert into" : "delete from",
                 op->table);
}

/* The row of the last array execution that the driver marked as failed, or -1. */
static long failed_row(const struct odbc_session *s, size_t n)
{
    for (size_t row = 0; row < n; row++) {
        if (s->status[row] == SQL_PARAM_ERROR)
            return (long) row;
    }
    return -1;
}

/* May the rows of a failed array run again to find the failing one? */
static bool can_replay(const struct odbc_session *s, const struct dw_error *e)
{
    if (e->code != DW_ERR_TARGET || s->base.broken)
        return false;
    /* PostgreSQL aborts the transaction at the first error; a deadlock ends it anywhere */
    if (s->family == ODBC_FAMILY_POSTGRESQL || strncmp(e->sqlstate, "40", 2) == 0)
        return false;
    return true;
}

/* Run rows one by one until one fails: its index, with its error in *e; -1 when none does. */
static long replay(struct odbc_session *s, struct odbc_stmt *st, const struct dw_target_op *ops,
                   size_t rows, struct dw_error *e, bool *nomem)
{
    for (size_t row = 0; row < rows; row++) {
        SQLRETURN r = bind_execute(s, st, ops + row, 1, nomem);

        if (*nomem)
            return -1;
        if (SQL_SUCCEEDED(r) || r == SQL_NO_DATA) {
            SQLFreeStmt(st->h, SQL_CLOSE);
            continue;
        }
        dw_error_clear(e);
        dw_odbc_error(s, SQL_HANDLE_STMT, st->h, r, "running a statement", e);
        SQLFreeStmt(st->h, SQL_CLOSE);
        return (long) row;
    }
    return -1;
}

/*
 * Execute st for ops[0..n) (batch indexes base..), as arrays where possible.
 * *rowcount gets the affected rows of a single-row execution.
 */
static dw_errcode exec_rows(struct odbc_session *s, struct odbc_stmt *st,
                            const struct dw_target_op *ops, size_t n, long base,
                            SQLLEN *rowcount, struct dw_error *err)
{
    size_t done = 0;

    while (done < n) {
        size_t rows = chunk_rows(s, st, ops + done, n - done);
        long first = base + (long) done, bad = -1;
        struct dw_error e;
        bool nomem, ok;
        SQLRETURN r = bind_execute(s, st, ops + done, rows, &nomem);

        if (nomem)
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        ok = SQL_SUCCEEDED(r) || r == SQL_NO_DATA;
        if (SQL_SUCCEEDED(r)) {
            SQLLEN count = -1;

            /*
             * Only "certainly none" lets XA skip PREPARE: an unknown count (-1)
             * counts as a change, and so does any array (drivers without batch
             * row counts report the first row's count only).
             */
            if (rows > 1 || !SQL_SUCCEEDED(SQLRowCount(st->h, &count)))
                count = -1;
            if (count != 0)
                s->changed = true;
            if (rowcount)
                *rowcount = count < 0 ? 0 : count;
        } else if (rowcount) {
            *rowcount = 0;
        }
        /* with arrays, some rows may fail while the call says "with info" */
        if (rows > 1)
            bad = failed_row(s, rows);
        else if (!ok)
            bad = 0;
        if (ok && bad < 0) {
            SQLFreeStmt(st->h, SQL_CLOSE);
            done += rows;
            continue;
        }
        dw_error_clear(&e);
        dw_odbc_error(s, SQL_HANDLE_STMT, st->h, ok ? SQL_ERROR : r, "running a statement", &e);
        SQLFreeStmt(st->h, SQL_CLOSE);
        if (bad < 0 && can_replay(s, &e)) {
            /* the driver did not say which row: the first to fail alone is the one */
            bad = replay(s, st, ops + done, rows, &e, &nomem);
            if (nomem)
                return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        }
        if (err && !dw_error_is_set(err))
            *err = e;
        if (bad >= 0) {
            s->base.failed_op = first + bad;
            set_context(err, &ops[done + (size_t) bad], first + bad, first + bad);
        } else {
            set_context(err, &ops[done], first, first + (long) rows - 1);
        }
        return e.code;
    }
    return DW_OK;
}

static dw_errcode check_op(const struct dw_target_op *op, long index, struct dw_error *err)
{
    if (!op->table || !op->table[0] || !op->columns || !op->values || op->nkey == 0 ||
        op->ncolumns < op->nkey || (op->kind != DW_OP_UPSERT && op->kind != DW_OP_DELETE))
        return dw_error_set(err, DW_ERR_INTERNAL, "operation %ld is malformed (no table, no key, "
                            "or fewer columns than key columns)", index);
    if (op->ncolumns > MAX_PARAMS)
        return dw_error_set(err, DW_ERR_LIMIT, "operation %ld has %zu columns, more than the %d "
                            "parameters a statement can carry", index, op->ncolumns, MAX_PARAMS);
    for (size_t i = 0; i < op->ncolumns; i++) {
        if (!op->columns[i] || !op->columns[i][0])
            return dw_error_set(err, DW_ERR_INTERNAL, "operation %ld has an empty column name",
                                index);
    }
    return DW_OK;
}

static bool same_shape(const struct dw_target_op *a, const struct dw_target_op *b)
{
    if (a->kind != b->kind || a->nkey != b->nkey || a->ncolumns != b->ncolumns ||
        (a->table != b->table && strcmp(a->table, b->table) != 0))
        return false;
    if (a->columns == b->columns)
        return true;
    for (size_t i = 0; i < (a->kind == DW_OP_DELETE ? a->nkey : a->ncolumns); i++) {
        if (a->columns[i] != b->columns[i] && strcmp(a->columns[i], b->columns[i]) != 0)
            return false;
    }
    return true;
}

/* UPDATE, then INSERT when the UPDATE matched no row (one operation). */
static dw_errcode update_insert(struct odbc_session *s, const struct dw_target_op *op,
                                long index, struct dw_error *err)
{
    struct odbc_stmt temp, *st;
    SQLLEN count = 0;
    dw_errcode rc;

    if ((rc = get_stmt(s, ODBC_STMT_UPDATE, op, &st, &temp, err)) != DW_OK)
        goto failed;
    rc = exec_rows(s, st, op, 1, index, &count, err);
    if (st == &temp)
        stmt_free(&temp);
    if (rc != DW_OK || count > 0)
        return rc;
    if ((rc = get_stmt(s, ODBC_STMT_INSERT, op, &st, &temp, err)) != DW_OK)
        goto failed;
    rc = exec_rows(s, st, op, 1, index, NULL, err);
    if (st == &temp)
        stmt_free(&temp);
    return rc;
failed:
    if (rc == DW_ERR_TARGET || rc == DW_ERR_TIMEOUT) {
        s->base.failed_op = index;
        set_context(err, op, index, index);
    }
    return rc;
}

dw_errcode dw_odbc_run_ops(struct odbc_session *s, const struct dw_target_op *ops, size_t n,
                           long base, struct dw_error *err)
{
    size_t i = 0;

    while (i < n) {
        const struct dw_target_op *op = &ops[i];
        struct odbc_stmt temp, *st;
        size_t run = 1;
        dw_errcode rc;

        if ((rc = check_op(op, base + (long) i, err)) != DW_OK) {
            s->base.failed_op = base + (long) i;
            return rc;
        }
        if (op->kind == DW_OP_UPSERT && s->dialect == ODBC_UPSERT_UPDATE_INSERT) {
            if ((rc = update_insert(s, op, base + (long) i, err)) != DW_OK)
                return rc;
            i++;
            continue;
        }
        while (i + run < n && same_shape(op, &ops[i + run]) &&
               check_op(&ops[i + run], 0, NULL) == DW_OK)
            run++;
        rc = get_stmt(s, op->kind == DW_OP_DELETE ? ODBC_STMT_DELETE : ODBC_STMT_UPSERT, op, &st,
                      &temp, err);
        if (rc != DW_OK) {
            if (rc == DW_ERR_TARGET || rc == DW_ERR_TIMEOUT) {
                s->base.failed_op = base + (long) i;
                set_context(err, op, base + (long) i, base + (long) i);
            }
            return rc;
        }
        rc = exec_rows(s, st, op, run, base + (long) i, NULL, err);
        if (st == &temp)
            stmt_free(&temp);
        if (rc != DW_OK)
            return rc;
        i += run;
    }
    return DW_OK;
}
