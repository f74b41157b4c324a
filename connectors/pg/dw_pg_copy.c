/*
 * The pg connector's bulk path for initial sync (apply_bulk): many upserts of
 * one table and one column list, loaded with COPY instead of one statement per
 * row.  The result is the same as dw_pg_apply's: every row is upserted by key.
 *
 * Two ways, chosen per chunk:
 *   direct    SAVEPOINT; COPY straight into the target table; RELEASE.  A row
 *             that does not exist yet is inserted, which is what its upsert
 *             would do, so when no key of the chunk exists on the target (the
 *             usual case of an initial sync) this is an upsert at COPY speed.
 *             A unique violation (23505: some key exists) rolls back to the
 *             savepoint and the chunk goes the staged way.
 *   staged    COPY into a temporary staging table with the target's column
 *             types (ON COMMIT DELETE ROWS), then one INSERT ... SELECT ...
 *             ON CONFLICT (key) DO UPDATE (DO NOTHING when the row is only its
 *             key), the same statement dw_pg_apply runs per row.
 * After a conflict the next chunks of the same connector and table go the
 * staged way at once (BACKOFF of them), then the direct way is tried again:
 * a target that already holds the rows (a rerun, live sync ahead of the copy)
 * pays for a failed COPY only now and then.
 *
 * begin left the session in pipeline mode with BEGIN queued, and COPY cannot
 * run in pipeline mode: the pipeline is synced and left first (its errors are
 * reported as dw_pg_batch.c would), and entered again at the end so that
 * apply, prepare and commit work as usual.  On failure the session is left
 * out of pipeline mode inside an aborted transaction; dw_pg_rollback ends it.
 * A transaction that used the staging table cannot be prepared (PostgreSQL
 * refuses temporary objects there): bulk transactions end with commit.
 */
#include "connectors/pg/dw_pg_copy.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/pg/dw_pg_int.h"

/* COPY data goes out in pieces of this size. */
#define COPY_PIECE (256 * 1024)
/* Chunks that go the staged way after a direct COPY met an existing key. */
#define BACKOFF 8
/* Connector and table pairs whose conflicts are remembered. */
#define NHISTORY 64

static pthread_mutex_t history_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint64_t key;    /* 0: free */
    int staged_left; /* chunks still to go the staged way */
} history[NHISTORY];

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char) *s;
        h *= 1099511628211ULL;
    }
    h ^= 0xff;  /* separator: ("ab", "c") and ("a", "bc") differ */
    return h * 1099511628211ULL;
}

static uint64_t shape_hash(const struct dw_target_op *op)
{
    uint64_t h = fnv(1469598103934665603ULL, op->table);

    for (size_t i = 0; i < op->ncolumns; i++)
        h = fnv(h, op->columns[i]);
    return h ? h : 1;
}

static uint64_t history_key(const struct pg_session *s, const char *table)
{
    const char *name = s->base.config && s->base.config->name ? s->base.config->name : "";
    uint64_t h = fnv(fnv(1469598103934665603ULL, name), table);

    return h ? h : 1;
}

/* Go the direct way this time?  Counts a staged chunk down. */
static bool try_direct(uint64_t key)
{
    bool direct = true;

    pthread_mutex_lock(&history_lock);
    for (size_t i = 0; i < NHISTORY; i++) {
        if (history[i].key == key) {
            if (history[i].staged_left > 0) {
                history[i].staged_left--;
                direct = false;
            }
            break;
        }
    }
    pthread_mutex_unlock(&history_lock);
    return direct;
}

static void remember_conflict(uint64_t key)
{
    size_t slot = (size_t) (key % NHISTORY);

    pthread_mutex_lock(&history_lock);
    for (size_t i = 0; i < NHISTORY; i++) {
        if (history[i].key == key || history[i].key == 0) {
            slot = i;
            break;
        }
    }
    history[slot].key = key;   /* full: replace one, the cost is one more failed COPY */
    history[slot].staged_left = BACKOFF;
    pthread_mutex_unlock(&history_lock);
}

/* ---------------------------------------------------------------- checks and text */

static bool same_shape(const struct dw_target_op *a, const struct dw_target_op *b)
{
    if (b->kind != DW_OP_UPSERT || a->nkey != b->nkey || a->ncolumns != b->ncolumns ||
        (a->table != b->table && strcmp(a->table, b->table) != 0))
        return false;
    if (a->columns == b->columns)
        return true;
    for (size_t i = 0; i < a->ncolumns; i++)
        if (strcmp(a->columns[i], b->columns[i]) != 0)
            return false;
    return true;
}

static dw_errcode check_ops(const struct dw_target_op *ops, size_t nops, struct dw_error *err)
{
    const struct dw_target_op *first = &ops[0];

    if (first->kind != DW_OP_UPSERT || !first->table || !first->columns || !first->values ||
        first->nkey == 0 || first->ncolumns < first->nkey)
        return dw_error_set(err, DW_ERR_INTERNAL, "bulk operations must be well-formed upserts");
    for (size_t i = 0; i < first->ncolumns; i++)
        if (!first->columns[i] || !first->columns[i][0])
            return dw_error_set(err, DW_ERR_INTERNAL, "bulk operation has an empty column name");
    for (size_t i = 1; i < nops; i++)
        if (!ops[i].values || !same_shape(first, &ops[i]))
            return dw_error_set(err, DW_ERR_INTERNAL, "bulk operation %zu differs in table or "
                                "columns from the first", i);
    return DW_OK;
}

static void column_list(struct dw_buf *b, const struct dw_target_op *op)
{
    for (size_t i = 0; i < op->ncolumns; i++) {
        if (i)
            dw_buf_puts(b, ", ");
        dw_pg_quote_ident(b, op->columns[i]);
    }
}

/* One row in COPY's text format: \N for null; backslash, tab, newline, carriage return escaped. */
static void copy_row(struct dw_buf *b, const struct dw_target_op *op)
{
    for (size_t c = 0; c < op->ncolumns; c++) {
        const char *v = op->values[c];

        if (c)
            dw_buf_putc(b, '\t');
        if (!v) {
            dw_buf_puts(b, "\\N");
            continue;
        }
        for (;;) {
            size_t plain = strcspn(v, "\\\t\n\r");

            dw_buf_append(b, v, plain);
            v += plain;
            if (!*v)
                break;
            dw_buf_putc(b, '\\');
            dw_buf_putc(b, *v == '\t' ? 't' : *v == '\n' ? 'n' : *v == '\r' ? 'r' : '\\');
            v++;
        }
    }
    dw_buf_putc(b, '\n');
}

/* The rows of a COPY, formatted piece by piece while the server loads the previous piece. */
struct copy_data {
    const struct dw_target_op *ops;
    size_t nops;
    struct dw_buf *buf;      /* scratch for one piece */
};

static void staging_name(struct dw_buf *b, uint64_t shape)
{
    dw_buf_printf(b, "pg_temp.\"dw_stage_%016llx\"", (unsigned long long) shape);
}

/* The staged way's script: create the staging table, empty it, COPY, upsert. */
static void staged_script(struct dw_buf *b, const struct dw_target_op *op)
{
    uint64_t shape = shape_hash(op);

    dw_buf_puts(b, "CREATE TEMP TABLE IF NOT EXISTS ");
    staging_name(b, shape);
    dw_buf_puts(b, " ON COMMIT DELETE ROWS AS SELECT ");
    column_list(b, op);
    dw_buf_puts(b, " FROM ");
    dw_pg_quote_table(b, op->table);
    dw_buf_puts(b, " WITH NO DATA; DELETE FROM ");
    staging_name(b, shape);
    dw_buf_puts(b, "; COPY ");
    staging_name(b, shape);
    dw_buf_puts(b, " FROM STDIN; INSERT INTO ");
    dw_pg_quote_table(b, op->table);
    dw_buf_puts(b, " (");
    column_list(b, op);
    dw_buf_puts(b, ") SELECT ");
    column_list(b, op);
    dw_buf_puts(b, " FROM ");
    staging_name(b, shape);
    dw_buf_puts(b, " ON CONFLICT (");
    for (size_t i = 0; i < op->nkey; i++) {
        if (i)
            dw_buf_puts(b, ", ");
        dw_pg_quote_ident(b, op->columns[i]);
    }
    if (op->ncolumns == op->nkey) {
        dw_buf_puts(b, ") DO NOTHING");
        return;
    }
    dw_buf_puts(b, ") DO UPDATE SET ");
    for (size_t i = op->nkey; i < op->ncolumns; i++) {
        if (i > op->nkey)
            dw_buf_puts(b, ", ");
        dw_pg_quote_ident(b, op->columns[i]);
        dw_buf_puts(b, " = EXCLUDED.");
        dw_pg_quote_ident(b, op->columns[i]);
    }
}

/* ---------------------------------------------------------------- talking to the target */

static dw_errcode send_failed(struct pg_session *s, const char *what, struct dw_error *err)
{
    if (PQstatus(s->conn) == CONNECTION_BAD)
        return dw_pg_lost(s, what, err);
    return dw_error_set(err, DW_ERR_INTERNAL, "could not send to the target while %s: %s", what,
                        PQerrorMessage(s->conn));
}

static dw_errcode timed_out(struct pg_session *s, long timeout, struct dw_error *err)
{
    s->base.broken = true;
    return dw_error_set(err, DW_ERR_TIMEOUT, "the target did not answer within %ld ms", timeout);
}

/*
 * Read what the pipeline holds up to its Sync (BEGIN, a ROLLBACK left over,
 * operations applied before) and leave pipeline mode.  The statement cache
 * and failed_op are kept as dw_pg_batch.c keeps them.
 */
static dw_errcode leave_pipeline(struct pg_session *s, struct dw_error *err)
{
    long timeout = dw_pg_wait_ms(s);
    struct dw_error first;
    size_t step = 0;

    if (PQpipelineStatus(s->conn) == PQ_PIPELINE_OFF)
        return DW_OK;
    dw_error_clear(&first);
    if (s->nsteps > 0) {
        if (!PQpipelineSync(s->conn))
            return send_failed(s, "ending the pipeline", err);
        s->synced = true;
        for (;;) {
            int flushed = PQflush(s->conn);
            int ready;

            if (flushed < 0)
                return dw_pg_lost(s, "sending the batch", err);
            while (!PQisBusy(s->conn)) {
                PGresult *res = PQgetResult(s->conn);
                ExecStatusType st;

                if (!res) {
                    if (PQstatus(s->conn) == CONNECTION_BAD || step >= s->nsteps)
                        return dw_pg_lost(s, "reading the results of the batch", err);
                    step++;
                    continue;
                }
                st = PQresultStatus(res);
                if (st == PGRES_PIPELINE_SYNC) {
                    PQclear(res);
                    goto synced;
                }
                if (step < s->nsteps) {
                    struct pg_step *ps = &s->steps[step];
                    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

                    if (ps->kind == PG_STEP_PARSE && ps->stmt >= 0)
                        s->stmts[ps->stmt].state = ok ? PG_STMT_READY : PG_STMT_NEW;
                    if (!ok && st != PGRES_PIPELINE_ABORTED && !dw_error_is_set(&first)) {
                        dw_pg_result_error(s, res, &first);
                        if (ps->kind == PG_STEP_EXEC || ps->kind == PG_STEP_PARSE)
                            s->base.failed_op = ps->op;
                    }
                }
                PQclear(res);
            }
            ready = dw_pg_wait(s, flushed == 1, timeout);
            if (ready == 0)
                return timed_out(s, timeout, err);
            if (ready < 0 || !PQconsumeInput(s->conn))
                return dw_pg_lost(s, "reading the results of the batch", err);
        }
    }
synced:
    s->nsteps = 0;
    s->synced = false;
    if (!PQexitPipelineMode(s->conn)) {
        s->base.broken = true;
        return dw_error_set(err, DW_ERR_INTERNAL, "could not leave pipeline mode: %s",
                            PQerrorMessage(s->conn));
    }
    if (dw_error_is_set(&first)) {
        if (err && !dw_error_is_set(err))
            *err = first;
        return first.code;
    }
    return DW_OK;
}

/* Push out what libpq holds, waiting while the socket is full. */
static dw_errcode flush_out(struct pg_session *s, long timeout, struct dw_error *err)
{
    for (;;) {
        int flushed = PQflush(s->conn);
        int ready;

        if (flushed == 0)
            return DW_OK;
        if (flushed < 0)
            return dw_pg_lost(s, "sending rows", err);
        ready = dw_pg_wait(s, true, timeout);
        if (ready == 0)
            return timed_out(s, timeout, err);
        if (ready < 0 || !PQconsumeInput(s->conn))
            return dw_pg_lost(s, "sending rows", err);
    }
}

/*
 * Format and send the COPY data in pieces, then end it.  When the server
 * ended the COPY early (an error), libpq refuses more data: stop sending, the
 * results say why.
 */
static dw_errcode send_copy(struct pg_session *s, const struct copy_data *data, long timeout,
                            struct dw_error *err)
{
    size_t row = 0, nrows = data ? data->nops : 0;
    dw_errcode rc;

    while (row < nrows) {
        struct dw_buf *b = data->buf;
        int put;

        dw_buf_reset(b);
        while (row < nrows && b->len < COPY_PIECE)
            copy_row(b, &data->ops[row++]);
        if (dw_buf_failed(b) || b->len > INT32_MAX) {
            PQputCopyEnd(s->conn, "out of memory");
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        }
        while ((put = PQputCopyData(s->conn, b->data, (int) b->len)) == 0) {
            if ((rc = flush_out(s, timeout, err)) != DW_OK)
                return rc;
        }
        if (put < 0)
            return PQstatus(s->conn) == CONNECTION_BAD ? dw_pg_lost(s, "sending rows", err) : DW_OK;
        if ((rc = flush_out(s, timeout, err)) != DW_OK)
            return rc;
    }
    for (;;) {
        int put = PQputCopyEnd(s->conn, NULL);

        if (put < 0)
            return PQstatus(s->conn) == CONNECTION_BAD ? dw_pg_lost(s, "ending the rows", err)
                                                       : DW_OK;
        if ((rc = flush_out(s, timeout, err)) != DW_OK)
            return rc;
        if (put == 1)
            return DW_OK;
    }
}

/*
 * Run a script of simple statements (one of them may be COPY ... FROM STDIN,
 * fed with data) and read every result.  The first error is returned; the
 * server skips the rest of the script after it.
 */
static dw_errcode run_script(struct pg_session *s, const char *sql, const struct copy_data *data,
                             struct dw_error *err)
{
    long timeout = dw_pg_wait_ms(s);
    struct dw_error first;
    dw_errcode rc;

    dw_error_clear(&first);
    if (!PQsendQuery(s->conn, sql))
        return send_failed(s, "sending a bulk load", err);
    for (;;) {
        int flushed = PQflush(s->conn);
        int ready;

        if (flushed < 0)
            return dw_pg_lost(s, "sending a bulk load", err);
        while (!PQisBusy(s->conn)) {
            PGresult *res = PQgetResult(s->conn);

            if (!res)
                goto done;
            switch (PQresultStatus(res)) {
            case PGRES_COPY_IN:
                PQclear(res);
                if ((rc = send_copy(s, data, timeout, err)) != DW_OK)
                    return rc;
                continue;
            case PGRES_COMMAND_OK:
            case PGRES_TUPLES_OK:
                break;
            case PGRES_COPY_OUT:
            case PGRES_COPY_BOTH:
                PQclear(res);
                s->base.broken = true;
                return dw_error_set(err, DW_ERR_PROTOCOL, "the target started an unexpected COPY");
            default:
                if (!dw_error_is_set(&first))
                    dw_pg_result_error(s, res, &first);
                break;
            }
            PQclear(res);
            if (PQstatus(s->conn) == CONNECTION_BAD)
                return dw_pg_lost(s, "reading the results of a bulk load", err);
        }
        ready = dw_pg_wait(s, flushed == 1, timeout);
        if (ready == 0)
            return timed_out(s, timeout, err);
        if (ready < 0 || !PQconsumeInput(s->conn))
            return dw_pg_lost(s, "reading the results of a bulk load", err);
    }
done:
    if (PQstatus(s->conn) == CONNECTION_BAD)
        return dw_pg_lost(s, "reading the results of a bulk load", err);
    if (dw_error_is_set(&first)) {
        if (err && !dw_error_is_set(err))
            *err = first;
        return first.code;
    }
    return DW_OK;
}

/* ---------------------------------------------------------------- the slot */

static dw_errcode load(struct pg_session *s, const struct dw_target_op *ops, size_t nops,
                       struct dw_buf *piece, struct dw_buf *sql, struct dw_error *err)
{
    uint64_t hkey = history_key(s, ops[0].table);
    struct copy_data data = {ops, nops, piece};
    struct dw_error local;
    dw_errcode rc;

    if (try_direct(hkey)) {
        dw_buf_puts(sql, "SAVEPOINT dw_bulk; COPY ");
        dw_pg_quote_table(sql, ops[0].table);
        dw_buf_puts(sql, " (");
        column_list(sql, &ops[0]);
        dw_buf_puts(sql, ") FROM STDIN; RELEASE SAVEPOINT dw_bulk");
        if (dw_buf_failed(sql))
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        dw_error_clear(&local);
        rc = run_script(s, sql->data, &data, &local);
        if (rc == DW_OK)
            return DW_OK;
        if (rc != DW_ERR_TARGET || strcmp(local.sqlstate, "23505") != 0) {
            if (err && !dw_error_is_set(err))
                *err = local;
            return rc;
        }
        /* a key exists on the target: upsert instead */
        remember_conflict(hkey);
        if ((rc = run_script(s, "ROLLBACK TO SAVEPOINT dw_bulk; RELEASE SAVEPOINT dw_bulk", NULL,
                             err)) != DW_OK)
            return rc;
    }
    dw_buf_reset(sql);
    staged_script(sql, &ops[0]);
    if (dw_buf_failed(sql))
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    return run_script(s, sql->data, &data, err);
}

dw_errcode dw_pg_apply_bulk(struct dw_session *base, const struct dw_target_op *ops, size_t nops,
                            struct dw_error *err)
{
    struct pg_session *s = (struct pg_session *) base;
    struct dw_buf piece, sql;
    dw_errcode rc;

    if (!s->in_batch || s->synced)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot apply operations outside a batch");
    if (nops == 0)
        return DW_OK;
    if ((rc = check_ops(ops, nops, err)) != DW_OK)
        return rc;
    if (base->broken || PQstatus(s->conn) == CONNECTION_BAD)
        return dw_pg_lost(s, "applying a bulk load", err);
    if ((rc = leave_pipeline(s, err)) != DW_OK)
        return rc;
    if (PQtransactionStatus(s->conn) != PQTRANS_INTRANS)
        return dw_error_set(err, DW_ERR_INTERNAL, "a bulk load needs an open transaction on the "
                            "target");

    dw_buf_init(&piece);
    dw_buf_init(&sql);
    rc = load(s, ops, nops, &piece, &sql, err);
    dw_buf_cleanup(&piece);
    dw_buf_cleanup(&sql);
    if (rc != DW_OK) {
        if (err && !err->context[0])
            snprintf(err->context, sizeof(err->context), "bulk upsert of %zu rows into table "
                     "\"%s\"", nops, ops[0].table);
        return rc;
    }
    /* back to the batch pipeline, for apply and the end of the transaction */
    if (!PQenterPipelineMode(s->conn))
        return send_failed(s, "entering pipeline mode", err);
    s->nops += (long) nops;
    s->bops = NULL;     /* a failed group is not replayed across a bulk load (dw_pg_batch.c) */
    return DW_OK;
}
