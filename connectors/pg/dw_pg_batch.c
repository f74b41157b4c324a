/*
 * The pg connector's batch pipeline: a whole batch is one round trip.
 *
 * begin and apply only queue (libpq pipeline mode; libpq may already push
 * bytes out, but nothing waits for the target): BEGIN, then per operation a
 * parameterized statement.  prepare or commit queue PREPARE TRANSACTION or
 * COMMIT and one Sync, then read every result in order.  The first error
 * names its operation (session->failed_op); everything after it comes back
 * "pipeline aborted" and is skipped.
 *
 * Consecutive operations of one shape with distinct keys are grouped into
 * one multi-row statement (dw_pg_group.c).  When a grouped statement fails,
 * the batch is replayed one statement per operation up to that group, in a
 * transaction that is rolled back, so that the error and failed_op name the
 * operation the target refused, exactly as without grouping; this costs
 * time only on the failure path.
 *
 * Statements are cached per shape (table, kind, columns, rows): the key is
 * the kind, the row count and the names, each ended by a NUL (names hold
 * none), which is cheaper to build than the statement text, so the text is
 * built only for a shape not seen before.  A new shape is sent
 * as a named Parse in the same pipeline, so later batches skip parse and
 * plan.  A Parse that the pipeline skipped or refused leaves the statement
 * unknown to the server, and it is parsed again next time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_log.h"
#include "connectors/pg/dw_pg_int.h"

/* The protocol carries at most this many parameters per statement. */
#define MAX_PARAMS 65535

static struct pg_session *session(struct dw_session *base)
{
    return (struct pg_session *) base;
}

static uint64_t hash_text(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a */

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char) s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void reset_batch(struct pg_session *s)
{
    s->in_batch = false;
    s->synced = false;
    s->nsteps = 0;
    s->nops = 0;
    s->bops = NULL;
    s->applies = 0;
    s->failed_count = 0;
}

void dw_pg_batch_cleanup(struct pg_session *s)
{
    for (size_t i = 0; i < s->nstmts; i++) {
        free(s->stmts[i].sql);
        free(s->stmts[i].key);
    }
    free(s->stmts);
    s->stmts = NULL;
    s->nstmts = s->stmtcap = 0;
    free(s->steps);
    s->steps = NULL;
    s->stepcap = 0;
    free(s->gparams);
    s->gparams = NULL;
    s->gparamcap = 0;
    reset_batch(s);
    dw_buf_cleanup(&s->sql);
    dw_buf_cleanup(&s->key);
}

static bool push_step(struct pg_session *s, pg_step_kind kind, long op, long stmt,
                      const struct dw_target_op *top)
{
    struct pg_step *st;

    if (s->nsteps == s->stepcap) {
        size_t cap = s->stepcap ? s->stepcap * 2 : 64;
        struct pg_step *p = realloc(s->steps, cap * sizeof(*p));

        if (!p)
            return false;
        s->steps = p;
        s->stepcap = cap;
    }
    st = &s->steps[s->nsteps++];
    st->kind = kind;
    st->op = op;
    st->stmt = stmt;
    st->table = top ? top->table : NULL;
    st->upsert = top && top->kind == DW_OP_UPSERT;
    st->count = 1;
    return true;
}

/* A failed send: the connection is gone, or libpq refused (out of memory). */
static dw_errcode send_failed(struct pg_session *s, struct dw_error *err)
{
    if (PQstatus(s->conn) == CONNECTION_BAD)
        return dw_pg_lost(s, "sending the batch", err);
    return dw_error_set(err, DW_ERR_INTERNAL, "could not queue a statement for the target: %s",
                        PQerrorMessage(s->conn));
}

static dw_errcode queue_simple(struct pg_session *s, const char *sql, pg_step_kind kind,
                               struct dw_error *err)
{
    if (!push_step(s, kind, -1, -1, NULL))
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    if (!PQsendQueryParams(s->conn, sql, 0, NULL, NULL, NULL, NULL, 0)) {
        s->nsteps--;
        return send_failed(s, err);
    }
    return DW_OK;
}

dw_errcode dw_pg_begin(struct dw_session *base, const char *batch_id, struct dw_error *err)
{
    struct pg_session *s = session(base);
    PGTransactionStatusType ts;
    dw_errcode rc;

    (void) batch_id;
    if (s->in_batch)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot begin a batch while another is in "
                            "progress on the same session");
    base->failed_op = -1;
    reset_batch(s);
    if (base->broken || PQstatus(s->conn) == CONNECTION_BAD)
        return dw_pg_lost(s, "beginning a batch", err);
    ts = PQtransactionStatus(s->conn);
    if (ts == PQTRANS_ACTIVE || ts == PQTRANS_UNKNOWN)
        return dw_pg_lost(s, "beginning a batch", err);
    if (!PQenterPipelineMode(s->conn))
        return send_failed(s, err);
    s->in_batch = true;
    /* a batch that failed without a rollback left its transaction open */
    if (ts != PQTRANS_IDLE && (rc = queue_simple(s, "ROLLBACK", PG_STEP_ROLLBACK, err)) != DW_OK)
        return rc;
    return queue_simple(s, "BEGIN", PG_STEP_BEGIN, err);
}

/* Statement text of one operation into s->sql; returns the parameter count. */
/*
 * The statement for one operation: a delete by "key = $n" (the grouped form,
 * "key IN (...)", is for several rows); an upsert as dw_pg_group_sql builds
 * it for one row.
 */
static int build_sql(struct pg_session *s, const struct dw_target_op *op)
{
    struct dw_buf *b = &s->sql;

    if (op->kind != DW_OP_DELETE)
        return dw_pg_group_sql(b, op, 1);
    dw_buf_reset(b);
    dw_buf_puts(b, "DELETE FROM ");
    dw_pg_quote_table(b, op->table);
    dw_buf_puts(b, " WHERE ");
    for (size_t i = 0; i < op->nkey; i++) {
        if (i)
            dw_buf_puts(b, " AND ");
        dw_pg_quote_ident(b, op->columns[i]);
        dw_buf_printf(b, " = $%zu", i + 1);
    }
    return (int) op->nkey;
}

/* The shape key of count operations like op into s->key. */
static void shape_key(struct pg_session *s, const struct dw_target_op *op, size_t count)
{
    struct dw_buf *b = &s->key;
    char kind = op->kind == DW_OP_DELETE ? 'D' : 'U';

    dw_buf_reset(b);
    dw_buf_append(b, &kind, 1);
    dw_buf_append(b, &count, sizeof(count));
    dw_buf_append(b, &op->nkey, sizeof(op->nkey));  /* ncolumns: the names that follow */
    dw_buf_append(b, op->table, strlen(op->table) + 1);
    for (size_t i = 0; i < op->ncolumns; i++)
        dw_buf_append(b, op->columns[i], strlen(op->columns[i]) + 1);
}

/* The cached statement of shape s->key, or -1. */
static long find_stmt(struct pg_session *s)
{
    uint64_t h = hash_text(s->key.data, s->key.len);

    for (size_t i = 0; i < s->nstmts; i++) {
        const struct pg_stmt *st = &s->stmts[i];

        if (st->hash == h && st->keylen == s->key.len &&
            memcmp(st->key, s->key.data, st->keylen) == 0)
            return (long) i;
    }
    return -1;
}

/* Add the statement s->sql for shape s->key (state NEW); -1 when the cache is full. */
static long add_stmt(struct pg_session *s, int nparams, bool *nomem)
{
    struct pg_stmt *st;

    *nomem = false;
    if (s->nstmts >= PG_MAX_CACHED_STMTS)
        return -1;
    if (s->nstmts == s->stmtcap) {
        size_t cap = s->stmtcap ? s->stmtcap * 2 : 16;
        struct pg_stmt *p = realloc(s->stmts, cap * sizeof(*p));

        if (!p) {
            *nomem = true;
            return -1;
        }
        s->stmts = p;
        s->stmtcap = cap;
    }
    st = &s->stmts[s->nstmts];
    st->sql = strdup(s->sql.data);
    st->key = malloc(s->key.len);
    if (!st->sql || !st->key) {
        free(st->sql);
        free(st->key);
        *nomem = true;
        return -1;
    }
    memcpy(st->key, s->key.data, s->key.len);
    st->keylen = s->key.len;
    st->hash = hash_text(s->key.data, s->key.len);
    st->nparams = nparams;
    st->state = PG_STMT_NEW;
    snprintf(st->name, sizeof(st->name), "dw_%lu", ++s->next_stmt);
    return (long) s->nstmts++;
}

static dw_errcode check_op(const struct dw_target_op *op, long index, struct dw_error *err)
{
    if (!op->table || !op->columns || !op->values || op->nkey == 0 || op->ncolumns < op->nkey ||
        (op->kind != DW_OP_UPSERT && op->kind != DW_OP_DELETE))
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

/*
 * Queue ops[0, count) as one statement: the single-row statement for one
 * operation, the grouped one (dw_pg_group.c) for more.
 */
static dw_errcode queue_op(struct pg_session *s, const struct dw_target_op *op, size_t count,
                           struct dw_error *err)
{
    long index = s->nops;
    const char *const *values = op->values;
    int nparams;
    long stmt;
    bool nomem;
    dw_errcode rc;

    for (size_t i = 0; i < count; i++) {
        if ((rc = check_op(&op[i], index + (long) i, err)) != DW_OK) {
            s->base.failed_op = index + (long) i;
            return rc;
        }
    }
    if (count > 1) {
        values = dw_pg_group_params(s, op, count);
        if (!values)
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    shape_key(s, op, count);
    if (dw_buf_failed(&s->key))
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    stmt = find_stmt(s);
    if (stmt >= 0) {
        nparams = s->stmts[stmt].nparams;
    } else {
        /* a new shape, or the cache is full: the text is needed */
        nparams = count == 1 ? build_sql(s, op) : dw_pg_group_sql(&s->sql, op, count);
        if (dw_buf_failed(&s->sql))
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        stmt = add_stmt(s, nparams, &nomem);
        if (nomem)
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    if (stmt >= 0 && s->stmts[stmt].state == PG_STMT_NEW) {
        struct pg_stmt *st = &s->stmts[stmt];

        if (!push_step(s, PG_STEP_PARSE, index, stmt, op))
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        if (!PQsendPrepare(s->conn, st->name, st->sql, nparams, NULL)) {
            s->nsteps--;
            return send_failed(s, err);
        }
        st->state = PG_STMT_PENDING;
    }
    if (!push_step(s, PG_STEP_EXEC, index, -1, op))
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    s->steps[s->nsteps - 1].count = (long) count;
    if (stmt >= 0) {
        if (!PQsendQueryPrepared(s->conn, s->stmts[stmt].name, nparams, values, NULL, NULL,
                                 0)) {
            s->nsteps--;
            return send_failed(s, err);
        }
    } else if (!PQsendQueryParams(s->conn, s->sql.data, nparams, NULL, values, NULL, NULL,
                                  0)) {
        s->nsteps--;
        return send_failed(s, err);
    }
    s->nops += (long) count;
    return DW_OK;
}

dw_errcode dw_pg_apply(struct dw_session *base, const struct dw_target_op *ops, size_t nops,
                       struct dw_error *err)
{
    struct pg_session *s = session(base);

    if (!s->in_batch || s->synced)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot apply operations outside a batch");
    /* the replay needs the whole batch in one array, from operation 0 */
    if (s->applies++ == 0 && s->nops == 0)
        s->bops = ops;
    else
        s->bops = NULL;
    for (size_t i = 0; i < nops;) {
        size_t n = s->no_group || !s->bops ? 1 : dw_pg_group_size(&ops[i], nops - i);
        dw_errcode rc = queue_op(s, &ops[i], n, err);

        if (rc != DW_OK)
            return rc;
        i += n;
    }
    return DW_OK;
}

/* Where an error happened, for err->context. */
static void step_context(const struct pg_step *st, struct dw_error *err)
{
    if (!err || err->context[0])
        return;
    switch (st->kind) {
    case PG_STEP_EXEC:
    case PG_STEP_PARSE:
        if (st->count > 1)
            snprintf(err->context, sizeof(err->context),
                     "operations %ld to %ld (one statement): %s table \"%s\"", st->op,
                     st->op + st->count - 1, st->upsert ? "upsert into" : "delete from",
                     st->table ? st->table : "?");
        else
            snprintf(err->context, sizeof(err->context), "operation %ld: %s table \"%s\"",
                     st->op, st->upsert ? "upsert into" : "delete from",
                     st->table ? st->table : "?");
        break;
    case PG_STEP_END:
        snprintf(err->context, sizeof(err->context), "ending the target transaction");
        break;
    case PG_STEP_BEGIN:
    case PG_STEP_ROLLBACK:
        snprintf(err->context, sizeof(err->context), "beginning the target transaction");
        break;
    }
}

/* Account for one result of step st. */
static void take_result(struct pg_session *s, const struct pg_step *st, const PGresult *res,
                        struct dw_error *first)
{
    ExecStatusType status = PQresultStatus(res);
    bool ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;

    if (st->kind == PG_STEP_PARSE && st->stmt >= 0)
        s->stmts[st->stmt].state = ok ? PG_STMT_READY : PG_STMT_NEW;
    if (ok || status == PGRES_PIPELINE_ABORTED)
        return;
    if (dw_error_is_set(first))
        return;
    dw_pg_result_error(s, res, first);
    step_context(st, first);
    if (st->kind == PG_STEP_EXEC || st->kind == PG_STEP_PARSE) {
        s->base.failed_op = st->op;
        s->failed_count = st->count;
    }
}

/*
 * Read every result up to the Sync.  Waits at most the session's timeout
 * without progress; a timeout or a lost connection breaks the session (its
 * transaction's fate is then unknown to us).
 */
static dw_errcode drain(struct pg_session *s, struct dw_error *err)
{
    struct dw_error first;
    long timeout = dw_pg_wait_ms(s);
    size_t step = 0;

    dw_error_clear(&first);
    for (;;) {
        int flushed = PQflush(s->conn);
        int ready;

        if (flushed < 0)
            return dw_pg_lost(s, "sending the batch", err);
        while (!PQisBusy(s->conn)) {
            PGresult *res = PQgetResult(s->conn);

            if (!res) {
                /* the end of one step's results */
                if (PQstatus(s->conn) == CONNECTION_BAD || step >= s->nsteps)
                    goto lost;
                step++;
                continue;
            }
            if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
                PQclear(res);
                goto synced;
            }
            if (step < s->nsteps)
                take_result(s, &s->steps[step], res, &first);
            PQclear(res);
            if (PQstatus(s->conn) == CONNECTION_BAD)
                goto lost;
        }
        ready = dw_pg_wait(s, flushed == 1, timeout);
        if (ready == 0) {
            s->base.broken = true;
            return dw_error_set(err, DW_ERR_TIMEOUT, "the target did not answer within %ld ms",
                                timeout);
        }
        if (ready < 0 || !PQconsumeInput(s->conn))
            goto lost;
    }
synced:
    if (!dw_error_is_set(&first))
        return DW_OK;
    if (err && !dw_error_is_set(err))
        *err = first;
    return first.code;
lost:
    if (dw_error_is_set(&first) && first.code == DW_ERR_CONNECT) {
        /* the server said why before it hung up (pg_terminate_backend, shutdown) */
        s->base.broken = true;
        if (err && !dw_error_is_set(err))
            *err = first;
        return first.code;
    }
    return dw_pg_lost(s, "reading the results of the batch", err);
}

static dw_errcode finish(struct pg_session *s, const char *end_sql, struct dw_error *err);

/*
 * Errors that depend on a row's values, which a replay can pin on one row:
 * data exceptions (22), integrity constraints (23), a value the column or
 * an expression refuses (42), WITH CHECK OPTION (44), raised in a trigger
 * (P0).  Not lock, deadlock or serialization failures: a replay would wait
 * on the same locks again.
 */
static bool value_error(const char *sqlstate)
{
    static const char *const classes[] = {"22", "23", "42", "44", "P0"};

    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        if (strncmp(sqlstate, classes[i], 2) == 0)
            return true;
    }
    return false;
}

/*
 * A grouped statement failed: run the batch again up to the end of that
 * group, one statement per operation, in a transaction that is rolled back,
 * and take its answer when it names an operation of the group.  Otherwise
 * (the replay passed, or failed elsewhere or for another reason) the group's
 * error stands, attributed to its first operation.
 */
static void replay(struct pg_session *s, struct dw_error *first)
{
    const struct dw_target_op *ops = s->bops;
    long from = s->base.failed_op, count = s->failed_count;
    struct dw_error again;
    dw_errcode rc;

    reset_batch(s);
    s->no_group = true;
    dw_error_clear(&again);
    rc = dw_pg_begin(&s->base, NULL, &again);
    if (rc == DW_OK)
        rc = dw_pg_apply(&s->base, ops, (size_t) (from + count), &again);
    if (rc == DW_OK) {
        rc = finish(s, "ROLLBACK", &again);
    } else if (s->in_batch) {
        long keep = s->base.failed_op;

        dw_pg_rollback(&s->base);
        s->base.failed_op = keep;
    }
    s->no_group = false;
    if (rc == DW_ERR_TARGET && s->base.failed_op >= from && s->base.failed_op < from + count) {
        *first = again;
        return;
    }
    dw_debug("the replay of a failed grouped statement did not single out an operation");
    s->base.failed_op = from;
}

/* Queue the end of the transaction, sync, read everything. */
static dw_errcode finish(struct pg_session *s, const char *end_sql, struct dw_error *err)
{
    struct dw_error first;
    dw_errcode rc;

    if (!s->in_batch || s->synced)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot end a batch that was not begun");
    if (s->base.broken)
        return dw_pg_lost(s, "ending the batch", err);
    if ((rc = queue_simple(s, end_sql, PG_STEP_END, err)) != DW_OK)
        return rc;
    if (!PQpipelineSync(s->conn))
        return send_failed(s, err);
    s->synced = true;
    dw_error_clear(&first);
    rc = drain(s, &first);
    if (!s->base.broken && !PQexitPipelineMode(s->conn)) {
        s->base.broken = true;
        return dw_error_set(err, DW_ERR_INTERNAL, "could not leave pipeline mode: %s",
                            PQerrorMessage(s->conn));
    }
    if (!s->base.broken && rc == DW_ERR_TARGET && s->failed_count > 1 && s->bops &&
        !s->no_group && value_error(first.sqlstate))
        replay(s, &first);
    if (rc != DW_OK && err && !dw_error_is_set(err))
        *err = first;
    if (!s->base.broken)
        reset_batch(s);
    return rc;
}

dw_errcode dw_pg_prepare(struct dw_session *base, const char *gid, struct dw_error *err)
{
    struct pg_session *s = session(base);
    char sql[256];

    if (!dw_pg_gid_valid(gid))
        return dw_error_set(err, DW_ERR_PROTOCOL, "invalid global transaction id \"%.64s\"",
                            gid ? gid : "");
    /* gid holds only [A-Za-z0-9:._-]: safe between quotes */
    snprintf(sql, sizeof(sql), "PREPARE TRANSACTION '%s'", gid);
    return finish(s, sql, err);
}

dw_errcode dw_pg_commit(struct dw_session *base, struct dw_error *err)
{
    return finish(session(base), "COMMIT", err);
}

void dw_pg_rollback(struct dw_session *base)
{
    struct pg_session *s = session(base);
    struct dw_error ignored;
    PGresult *res = NULL;
    long failed_op = base->failed_op;  /* the caller's answer, kept through the cleanup */

    dw_error_clear(&ignored);
    if (base->broken || !s->conn || PQstatus(s->conn) == CONNECTION_BAD) {
        base->broken = true;
        reset_batch(s);
        return;
    }
    if (PQpipelineStatus(s->conn) != PQ_PIPELINE_OFF) {
        /* a batch ended early: read what it queued, so the connection is usable again */
        if (!s->synced) {
            if (!PQpipelineSync(s->conn)) {
                base->broken = true;
                reset_batch(s);
                return;
            }
            s->synced = true;
        }
        (void) drain(s, &ignored);
        base->failed_op = failed_op;
        if (base->broken || !PQexitPipelineMode(s->conn)) {
            base->broken = true;
            reset_batch(s);
            return;
        }
    }
    reset_batch(s);
    if (PQtransactionStatus(s->conn) == PQTRANS_IDLE)
        return;
    dw_error_clear(&ignored);
    if (dw_pg_run(s, "ROLLBACK", 0, NULL, &res, &ignored) != DW_OK)
        base->broken = true;
    PQclear(res);
}
