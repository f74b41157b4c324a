/*
 * The ODBC connector's batches and its two-phase commit.
 *
 * One-phase sessions run in manual-commit mode: begin sends nothing, apply
 * executes the operations (dw_odbc_stmt.c), commit and rollback are
 * SQLEndTran.
 *
 * Two-phase sessions (MariaDB) use XA with autocommit on: begin sends
 * XA START 'dw:<batch id>', prepare XA END and XA PREPARE, commit (one phase)
 * XA END and XA COMMIT ... ONE PHASE.  MariaDB keeps a prepared XA
 * transaction tied to the connection that prepared it: that connection can
 * do nothing else, and any other one gets "unknown XID" for it, until it
 * disconnects.  So prepare ends by reconnecting, which hands the prepared
 * transaction over to the server for anyone to settle.  The server notices a
 * closed connection a moment later; resolve_prepared therefore retries an
 * "unknown XID" that XA RECOVER still lists.  A branch that changed no row
 * is committed at prepare instead: MariaDB rolls a read-only branch back at
 * the handover and would answer the later XA COMMIT with XA_RBROLLBACK; the
 * resolver then finds no such transaction, which counts as settled.
 *
 * XA RECOVER returns rows, which MariaDB Connector/ODBC 3.1 reads only
 * through the prepared-statement protocol: alone it is sent as a text query
 * whose result is never read (the connection then falls out of step).  Sent
 * as "XA RECOVER; SELECT 1" on a connection allowed several statements, each
 * part is prepared separately and the rows arrive.  list_prepared switches
 * its session to such a connection (the driver's OPTION flag) once, and
 * prepares rather than executes directly (see recover()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge/common/dw_log.h"
#include "connectors/odbc/dw_odbc_int.h"

#define GID_PREFIX "dw:"
/* How long resolve waits for a just-prepared transaction to be handed over. */
#define HANDOVER_WAIT_MS 5000
#define HANDOVER_STEP_MS 25

static struct odbc_session *session(struct dw_session *base)
{
    return (struct odbc_session *) base;
}

bool dw_odbc_gid_valid(const char *gid)
{
    size_t n = 0;

    if (!gid)
        return false;
    for (const char *p = gid; *p; p++, n++) {
        char c = *p;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == ':' || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return n > 0 && n <= ODBC_MAX_GID;
}

/* "XA <verb> 'gtrid'[,'bqual'] <suffix>": a gid over 64 bytes continues in bqual. */
static void xa_sql(char *sql, size_t size, const char *verb, const char *gid, const char *suffix)
{
    size_t n = strlen(gid);

    if (n <= ODBC_XID_PART)
        snprintf(sql, size, "XA %s '%s'%s", verb, gid, suffix);
    else
        snprintf(sql, size, "XA %s '%.*s','%s'%s", verb, ODBC_XID_PART, gid,
                 gid + ODBC_XID_PART, suffix);
}

/* Run an XA statement; a failure's SQLSTATE is in err. */
static dw_errcode xa_exec(struct odbc_session *s, const char *verb, const char *gid,
                          const char *suffix, struct dw_error *err)
{
    char sql[ODBC_MAX_GID + 64];

    xa_sql(sql, sizeof(sql), verb, gid, suffix);
    return dw_odbc_exec(s, sql, err);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static void reset_batch(struct odbc_session *s)
{
    s->in_batch = false;
    s->txn_open = false;
    s->xa_state = ODBC_XA_NONE;
    s->nops = 0;
}

/* Best-effort end of whatever transaction is open; false when the session is unusable. */
static bool abort_open(struct odbc_session *s)
{
    struct dw_error ignored;

    dw_error_clear(&ignored);
    if (!s->connected || s->base.broken)
        return false;
    if (s->xa) {
        if (s->xa_state == ODBC_XA_ACTIVE) {
            (void) xa_exec(s, "END", s->xid, "", &ignored);
            s->xa_state = ODBC_XA_IDLE;
        }
        if (s->xa_state == ODBC_XA_IDLE) {
            dw_error_clear(&ignored);
            /* rolled back already (XA_RB*, XA100) or unknown (XAE04): gone either way */
            if (xa_exec(s, "ROLLBACK", s->xid, "", &ignored) != DW_OK &&
                strcmp(ignored.sqlstate, "XA100") != 0 &&
                strncmp(ignored.sqlstate, "XA1", 3) != 0 &&
                strcmp(ignored.sqlstate, "XAE04") != 0)
                return false;
        }
        s->xa_state = ODBC_XA_NONE;
        return !s->base.broken;
    }
    if (!SQL_SUCCEEDED(SQLEndTran(SQL_HANDLE_DBC, s->dbc, SQL_ROLLBACK)))
        return false;
    s->txn_open = false;
    return true;
}

/*
 * Connect again when the connection turned out to be gone before the batch
 * did anything: a pooled session whose target restarted while it sat idle.
 * Whatever the batch had sent died with the old connection, so it starts
 * over on the new one (XA START again).  False when that cannot be done.
 */
static bool reopen_for_batch(struct odbc_session *s)
{
    struct dw_error e;

    dw_error_clear(&e);
    if (dw_odbc_connect(s, &e) != DW_OK) {
        s->base.broken = true;
        return false;
    }
    dw_info("connector \"%s\": the target connection was gone before the batch did anything; "
            "reconnected", dw_odbc_name(s));
    if (s->xa) {
        dw_error_clear(&e);
        if (xa_exec(s, "START", s->xid, "", &e) != DW_OK)
            return false;
        s->xa_state = ODBC_XA_ACTIVE;
    }
    return true;
}

/* XA START, once more on a new connection if the old one was gone. */
static dw_errcode start_xa(struct odbc_session *s, struct dw_error *err)
{
    struct dw_error first;
    dw_errcode rc;

    dw_error_clear(&first);
    rc = xa_exec(s, "START", s->xid, "", &first);
    if (rc == DW_ERR_CONNECT && reopen_for_batch(s))
        return DW_OK;
    if (rc != DW_OK && err && !dw_error_is_set(err))
        *err = first;
    return rc;
}

dw_errcode dw_odbc_begin(struct dw_session *base, const char *batch_id, struct dw_error *err)
{
    struct odbc_session *s = session(base);
    dw_errcode rc;

    if (s->in_batch)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot begin a batch while another is in "
                            "progress on the same session");
    base->failed_op = -1;
    s->nops = 0;
    s->changed = false;
    if (base->broken || !s->connected)
        return dw_odbc_lost(s, "beginning a batch", err);
    /* a batch that failed without a rollback left its transaction open */
    if ((s->txn_open || s->xa_state != ODBC_XA_NONE) && !abort_open(s)) {
        base->broken = true;
        return dw_odbc_lost(s, "beginning a batch", err);
    }
    if (s->xa) {
        size_t plen = strlen(GID_PREFIX);
        bool prefixed;

        if (!batch_id)
            batch_id = "";
        prefixed = strncmp(batch_id, GID_PREFIX, plen) == 0;
        if (strlen(batch_id) + (prefixed ? 0 : plen) > ODBC_MAX_GID)
            return dw_error_set(err, DW_ERR_PROTOCOL,
                                "batch id \"%.64s...\" is too long to name an XA transaction "
                                "(at most %zu characters)", batch_id, ODBC_MAX_GID - plen);
        snprintf(s->xid, sizeof(s->xid), "%s%s", prefixed ? "" : GID_PREFIX, batch_id);
        if (!dw_odbc_gid_valid(s->xid))
            return dw_error_set(err, DW_ERR_PROTOCOL,
                                "batch id \"%.64s\" cannot name an XA transaction: it may only "
                                "hold letters, digits, \":\", \".\", \"_\" and \"-\"", batch_id);
        rc = start_xa(s, err);
        if (rc != DW_OK) {
            if (err && !err->context[0])
                snprintf(err->context, sizeof(err->context), "beginning the target transaction");
            return rc;
        }
        s->xa_state = ODBC_XA_ACTIVE;
    }
    s->in_batch = true;
    return DW_OK;
}

dw_errcode dw_odbc_apply(struct dw_session *base, const struct dw_target_op *ops, size_t nops,
                         struct dw_error *err)
{
    struct odbc_session *s = session(base);
    struct dw_error first;
    dw_errcode rc;

    if (!s->in_batch)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot apply operations outside a batch");
    if (base->broken || !s->connected)
        return dw_odbc_lost(s, "applying operations", err);
    if (!s->xa && nops)
        s->txn_open = true;
    dw_error_clear(&first);
    rc = dw_odbc_run_ops(s, ops, nops, s->nops, &first);
    /* the first apply of a batch may start over on a new connection (see reopen_for_batch) */
    if (rc == DW_ERR_CONNECT && s->nops == 0 && reopen_for_batch(s)) {
        base->failed_op = -1;
        s->changed = false;
        s->txn_open = !s->xa && nops;
        dw_error_clear(&first);
        rc = dw_odbc_run_ops(s, ops, nops, 0, &first);
    }
    if (rc != DW_OK && err && !dw_error_is_set(err))
        *err = first;
    s->nops += (long) nops;
    return rc;
}

static void end_context(struct dw_error *err)
{
    if (err && !err->context[0])
        snprintf(err->context, sizeof(err->context), "ending the target transaction");
}

static dw_errcode check_end(struct odbc_session *s, struct dw_error *err)
{
    if (!s->in_batch)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot end a batch that was not begun");
    if (s->base.broken || !s->connected)
        return dw_odbc_lost(s, "ending the batch", err);
    return DW_OK;
}

dw_errcode dw_odbc_prepare(struct dw_session *base, const char *gid, struct dw_error *err)
{
    struct odbc_session *s = session(base);
    struct dw_error local;
    dw_errcode rc;

    if (!dw_odbc_gid_valid(gid))
        return dw_error_set(err, DW_ERR_PROTOCOL, "invalid global transaction id \"%.64s\"",
                            gid ? gid : "");
    if ((rc = check_end(s, err)) != DW_OK)
        return rc;
    if (!s->xa)
        return dw_error_set(err, DW_ERR_INTERNAL,
                            "cannot prepare: the session uses one-phase commit");
    if (strcmp(gid, s->xid) != 0)
        return dw_error_set(err, DW_ERR_INTERNAL,
                            "cannot prepare as \"%s\": the XA transaction began as \"%s\"", gid,
                            s->xid);
    rc = xa_exec(s, "END", s->xid, "", err);
    if (rc == DW_OK) {
        s->xa_state = ODBC_XA_IDLE;
        if (!s->changed) {
            /*
             * Nothing changed: MariaDB would roll the read-only branch back
             * at the handover and answer the later XA COMMIT with
             * XA_RBROLLBACK.  Ending it here is the same outcome; the
             * resolver then finds no such transaction, which is success.
             */
            rc = xa_exec(s, "COMMIT", s->xid, " ONE PHASE", err);
            if (rc == DW_OK) {
                reset_batch(s);
                return DW_OK;
            }
        } else {
            rc = xa_exec(s, "PREPARE", s->xid, "", err);
        }
    }
    if (rc != DW_OK) {
        end_context(err);
        return rc;
    }
    reset_batch(s);
    /* hand the prepared transaction over: only a disconnect does that (see above) */
    dw_error_clear(&local);
    if (dw_odbc_connect(s, &local) != DW_OK) {
        s->base.broken = true;
        dw_warn("connector \"%s\": transaction \"%s\" is prepared, but the session could not "
                "reconnect: %s", dw_odbc_name(s), gid, local.message);
    }
    return DW_OK;
}

dw_errcode dw_odbc_commit(struct dw_session *base, struct dw_error *err)
{
    struct odbc_session *s = session(base);
    dw_errcode rc;

    if ((rc = check_end(s, err)) != DW_OK)
        return rc;
    if (s->xa) {
        rc = xa_exec(s, "END", s->xid, "", err);
        if (rc == DW_OK) {
            s->xa_state = ODBC_XA_IDLE;
            rc = xa_exec(s, "COMMIT", s->xid, " ONE PHASE", err);
        }
    } else {
        SQLRETURN r;

        dw_odbc_call_start(s);
        r = SQLEndTran(SQL_HANDLE_DBC, s->dbc, SQL_COMMIT);

        if (!SQL_SUCCEEDED(r))
            rc = dw_odbc_error(s, SQL_HANDLE_DBC, s->dbc, r, "committing", err);
    }
    if (rc != DW_OK) {
        end_context(err);
        return rc;
    }
    reset_batch(s);
    return DW_OK;
}

void dw_odbc_rollback(struct dw_session *base)
{
    struct odbc_session *s = session(base);
    long failed_op = base->failed_op;   /* the caller's answer, kept through the cleanup */

    if (!s->connected || base->broken || !abort_open(s))
        base->broken = true;
    reset_batch(s);
    base->failed_op = failed_op;
}

/* ---------------------------------------------------------------- the resolver's calls */

static dw_errcode resolver_ready(struct odbc_session *s, const char *what, struct dw_error *err)
{
    if (s->in_batch)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot %s while a batch is in progress", what);
    if (s->base.broken || !s->connected)
        return dw_odbc_lost(s, what, err);
    /* XA statements refuse to run inside a regular transaction */
    if (!s->xa && !SQL_SUCCEEDED(SQLEndTran(SQL_HANDLE_DBC, s->dbc, SQL_ROLLBACK)))
        return dw_odbc_error(s, SQL_HANDLE_DBC, s->dbc, SQL_ERROR, what, err);
    s->txn_open = false;
    return DW_OK;
}

static int compare_gids(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Switch to a connection that may send several statements at once (for XA RECOVER). */
static dw_errcode allow_multi_statements(struct odbc_session *s, struct dw_error *err)
{
    char *cs;

    if (s->multi_stmt)
        return DW_OK;
    cs = dw_odbc_connstr_with_multi_statements(s->connstr);
    if (!cs)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    free(s->connstr);
    s->connstr = cs;
    s->multi_stmt = true;
    return dw_odbc_connect(s, err);
}

/*
 * Run XA RECOVER on a statement handle of its own, left open for fetching.
 * SQLPrepare and SQLExecute, not SQLExecDirect: Connector/ODBC 3.1 returns
 * from SQLExecDirect of several statements with its connection lock still
 * held, and the next thread to use the session waits for it forever.
 */
static dw_errcode recover(struct odbc_session *s, SQLHSTMT *out, struct dw_error *err)
{
    static const char sql[] = "XA RECOVER; SELECT 1";
    SQLHSTMT h;
    SQLRETURN r;
    dw_errcode rc;

    *out = NULL;
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, s->dbc, &h)))
        return dw_odbc_error(s, SQL_HANDLE_DBC, s->dbc, SQL_ERROR, "allocating a statement", err);
    dw_odbc_call_start(s);
    r = SQLPrepare(h, (SQLCHAR *) sql, SQL_NTS);
    if (SQL_SUCCEEDED(r))
        r = SQLExecute(h);
    if (!SQL_SUCCEEDED(r)) {
        rc = dw_odbc_error(s, SQL_HANDLE_STMT, h, r, "running XA RECOVER", err);
        SQLFreeHandle(SQL_HANDLE_STMT, h);
        return rc;
    }
    *out = h;
    return DW_OK;
}

dw_errcode dw_odbc_list_prepared(struct dw_session *base, const char *prefix, char ***gids,
                                 size_t *ngids, struct dw_error *err)
{
    struct odbc_session *s = session(base);
    size_t plen = prefix ? strlen(prefix) : 0, n = 0, cap = 0;
    char **list = NULL;
    SQLHSTMT h = NULL;
    dw_errcode rc;
    SQLRETURN r;

    *gids = NULL;
    *ngids = 0;
    if (s->family != ODBC_FAMILY_MARIADB)
        return DW_OK;    /* nothing can be prepared there through this connector */
    if ((rc = resolver_ready(s, "list prepared transactions", err)) != DW_OK ||
        (rc = allow_multi_statements(s, err)) != DW_OK ||
        (rc = recover(s, &h, err)) != DW_OK) {
        dw_error_prefix(err, "could not list prepared transactions on the target");
        return rc;
    }
    while (SQL_SUCCEEDED(r = SQLFetch(h))) {
        SQLINTEGER format = 0, glen = 0, blen = 0;
        unsigned char data[2 * ODBC_XID_PART + 8];
        SQLLEN len = 0, ind;
        char gid[ODBC_MAX_GID + 1];

        if (!SQL_SUCCEEDED(SQLGetData(h, 1, SQL_C_SLONG, &format, 0, &ind)) ||
            !SQL_SUCCEEDED(SQLGetData(h, 2, SQL_C_SLONG, &glen, 0, &ind)) ||
            !SQL_SUCCEEDED(SQLGetData(h, 3, SQL_C_SLONG, &blen, 0, &ind)) ||
            !SQL_SUCCEEDED(SQLGetData(h, 4, SQL_C_BINARY, data, sizeof(data), &len)) ||
            len == SQL_NULL_DATA)
            continue;
        /* XA START 'x' uses format 1; others are not ours */
        if (format != 1 || glen < 0 || blen < 0 || glen + blen > ODBC_MAX_GID ||
            (SQLLEN) (glen + blen) > len)
            continue;
        memcpy(gid, data, (size_t) (glen + blen));
        gid[glen + blen] = '\0';
        if (strlen(gid) != (size_t) (glen + blen) || strncmp(gid, prefix ? prefix : "", plen))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            char **p = realloc(list, (ncap + 1) * sizeof(*p));

            if (!p)
                goto nomem;
            list = p;
            cap = ncap;
        }
        if (!(list[n] = strdup(gid)))
            goto nomem;
        n++;
    }
    /* the "SELECT 1" that made the driver prepare XA RECOVER */
    while (SQLMoreResults(h) == SQL_SUCCESS)
        ;
    SQLFreeHandle(SQL_HANDLE_STMT, h);
    if (n > 1)
        qsort(list, n, sizeof(*list), compare_gids);
    *gids = list;
    *ngids = n;
    return DW_OK;
nomem:
    SQLFreeHandle(SQL_HANDLE_STMT, h);
    dw_connector_free_gids(list, n);
    return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
}

/* Is gid among the prepared transactions (XA RECOVER)? */
static dw_errcode still_listed(struct odbc_session *s, const char *gid, bool *listed,
                               struct dw_error *err)
{
    char **gids = NULL;
    size_t n = 0;
    dw_errcode rc = dw_odbc_list_prepared(&s->base, gid, &gids, &n, err);

    *listed = false;
    for (size_t i = 0; rc == DW_OK && i < n; i++)
        *listed = *listed || strcmp(gids[i], gid) == 0;
    dw_connector_free_gids(gids, n);
    return rc;
}

dw_errcode dw_odbc_resolve_prepared(struct dw_session *base, const char *gid, bool commit,
                                    struct dw_error *err)
{
    struct odbc_session *s = session(base);
    const char *verb = commit ? "commit" : "roll back";
    struct dw_error local;
    dw_errcode rc;

    if (!dw_odbc_gid_valid(gid))
        return dw_error_set(err, DW_ERR_PROTOCOL, "invalid global transaction id \"%.64s\"",
                            gid ? gid : "");
    if (s->family != ODBC_FAMILY_MARIADB)
        return dw_error_set(err, DW_ERR_CONFIG,
                            "cannot %s prepared transaction \"%s\": the target is %s, without "
                            "two-phase commit through this connector", verb, gid, s->dbms);
    if ((rc = resolver_ready(s, "settle a prepared transaction", err)) != DW_OK)
        return rc;
    for (long waited = 0;; waited += HANDOVER_STEP_MS) {
        bool listed = false;

        dw_error_clear(&local);
        rc = xa_exec(s, commit ? "COMMIT" : "ROLLBACK", gid, "", &local);
        if (rc == DW_OK)
            return DW_OK;
        /* XA ROLLBACK of a handed-over transaction answers XA_RBROLLBACK: it is rolled back */
        if (!commit && rc == DW_ERR_TARGET && strncmp(local.sqlstate, "XA1", 3) == 0)
            return DW_OK;
        if (rc != DW_ERR_TARGET || strcmp(local.sqlstate, "XAE04") != 0)
            break;
        /* unknown XID: settled already, or still held by the session that prepared it */
        dw_error_clear(&local);
        rc = still_listed(s, gid, &listed, &local);
        if (rc != DW_OK)
            break;
        if (!listed) {
            dw_debug("connector \"%s\": prepared transaction \"%s\" no longer exists",
                     dw_odbc_name(s), gid);
            return DW_OK;
        }
        if (waited >= HANDOVER_WAIT_MS) {
            rc = dw_error_set(&local, DW_ERR_TARGET,
                              "prepared transaction \"%s\" is still held by the target session "
                              "that prepared it", gid);
            dw_error_hint(&local, "MariaDB hands a prepared XA transaction over when its "
                          "session disconnects; it is retried later.");
            break;
        }
        sleep_ms(HANDOVER_STEP_MS);
    }
    if (err && !dw_error_is_set(err))
        *err = local;
    dw_error_prefix(err, "could not %s prepared transaction \"%s\"", verb, gid);
    return rc;
}
