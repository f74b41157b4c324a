/*
 * The pg connector's sessions: connecting and configuring a target session,
 * choosing one- or two-phase commit, the catalog checks made at startup, the
 * resolver's COMMIT/ROLLBACK PREPARED and its listing of prepared transactions,
 * and the error mapping shared with the batch pipeline (dw_pg_batch.c).
 *
 * Every session runs in non-blocking mode and every wait goes through one
 * poll() with the connector's timeout, so that a target that stops answering
 * can never hold a worker past timeout_ms.
 */
#include "connectors/pg/dw_pg.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge/common/dw_log.h"
#include "connectors/pg/dw_pg_copy.h"
#include "connectors/pg/dw_pg_int.h"

/* The server's own statement timeout fires first; this slack lets its message arrive. */
#define WAIT_SLACK_MS 1000

static const char *const pg_settings[] = {"conninfo", NULL};

/* ---------------------------------------------------------------- helpers */

static const char *conn_name(const struct pg_session *s)
{
    return s->base.config && s->base.config->name ? s->base.config->name : "?";
}

/* First line of a libpq message into buf; the rest (if any) into rest. */
static void split_message(const char *msg, char *buf, size_t size, char *rest, size_t restsize)
{
    const char *nl;
    size_t n;

    if (!msg || !*msg)
        msg = "unknown error";
    nl = strchr(msg, '\n');
    n = nl ? (size_t) (nl - msg) : strlen(msg);
    if (n >= size)
        n = size - 1;
    memcpy(buf, msg, n);
    buf[n] = '\0';
    if (rest && restsize) {
        rest[0] = '\0';
        if (nl && nl[1]) {
            const char *r = nl + 1;

            while (*r == '\t' || *r == ' ')
                r++;
            snprintf(rest, restsize, "%s", r);
            n = strlen(rest);
            while (n > 0 && (rest[n - 1] == '\n' || rest[n - 1] == ' '))
                rest[--n] = '\0';
        }
    }
}

long dw_pg_wait_ms(const struct pg_session *s)
{
    long t = s->base.config ? s->base.config->timeout_ms : 0;

    return t > 0 ? t + WAIT_SLACK_MS : 0;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int dw_pg_wait(struct pg_session *s, bool want_write, long timeout_ms)
{
    struct pollfd pfd;
    long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;

    pfd.fd = PQsocket(s->conn);
    if (pfd.fd < 0)
        return -1;
    pfd.events = POLLIN | (want_write ? POLLOUT : 0);
    for (;;) {
        long left = -1;
        int rc;

        if (deadline) {
            left = deadline - now_ms();
            if (left <= 0)
                return 0;
        }
        pfd.revents = 0;
        rc = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int) left);
        if (rc > 0)
            return 1;
        if (rc == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

dw_errcode dw_pg_lost(struct pg_session *s, const char *what, struct dw_error *err)
{
    char first[200], rest[400];

    s->base.broken = true;
    split_message(s->conn ? PQerrorMessage(s->conn) : NULL, first, sizeof(first), rest,
                  sizeof(rest));
    dw_error_set(err, DW_ERR_CONNECT, "lost the connection to the target while %s: %s", what,
                 first);
    if (rest[0])
        dw_error_detail(err, "%s", rest);
    return DW_ERR_CONNECT;
}

/* SQLSTATEs that say the server ended the session. */
static bool sqlstate_is_disconnect(const char *st)
{
    return st && (strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 ||
                  strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0);
}

dw_errcode dw_pg_result_error(struct pg_session *s, const PGresult *res, struct dw_error *err)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    dw_errcode code = DW_ERR_TARGET;

    if (PQstatus(s->conn) == CONNECTION_BAD || sqlstate_is_disconnect(state)) {
        s->base.broken = true;
        code = DW_ERR_CONNECT;
    } else if (state && strcmp(state, "57014") == 0) {
        code = DW_ERR_TIMEOUT;  /* statement_timeout (or a cancel) */
    }
    if (!primary) {
        char first[256];

        split_message(PQresultErrorMessage(res), first, sizeof(first), NULL, 0);
        if (code == DW_ERR_CONNECT)
            dw_error_set(err, code, "lost the connection to the target: %s", first);
        else
            dw_error_set(err, code, "%s", first);
    } else if (code == DW_ERR_CONNECT) {
        dw_error_set(err, code, "lost the connection to the target: %s", primary);
    } else {
        dw_error_set(err, code, "%s", primary);
    }
    dw_error_sqlstate(err, state);
    if (detail)
        dw_error_detail(err, "%s", detail);
    if (hint)
        dw_error_hint(err, "%s", hint);
    return code;
}

static void quote_n(struct dw_buf *b, const char *name, size_t n)
{
    dw_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '"')
            dw_buf_putc(b, '"');
        dw_buf_putc(b, name[i]);
    }
    dw_buf_putc(b, '"');
}

void dw_pg_quote_ident(struct dw_buf *b, const char *name)
{
    quote_n(b, name, strlen(name));
}

void dw_pg_quote_table(struct dw_buf *b, const char *table)
{
    const char *dot = strchr(table, '.');

    if (dot) {
        quote_n(b, table, (size_t) (dot - table));
        dw_buf_putc(b, '.');
        table = dot + 1;
    }
    dw_pg_quote_ident(b, table);
}

bool dw_pg_gid_valid(const char *gid)
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
    return n > 0 && n < 200;  /* the server's GIDSIZE is 200 with the NUL */
}

dw_errcode dw_pg_run(struct pg_session *s, const char *sql, int nparams,
                     const char *const *params, PGresult **out, struct dw_error *err)
{
    PGresult *last = NULL;
    long timeout = dw_pg_wait_ms(s);

    *out = NULL;
    if (s->base.broken || !s->conn || PQstatus(s->conn) == CONNECTION_BAD)
        return dw_pg_lost(s, "sending a statement", err);
    if (!PQsendQueryParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0)) {
        if (PQstatus(s->conn) == CONNECTION_BAD)
            return dw_pg_lost(s, "sending a statement", err);
        return dw_error_set(err, DW_ERR_INTERNAL, "could not send a statement to the target: %s",
                            PQerrorMessage(s->conn));
    }
    for (;;) {
        int flushed = PQflush(s->conn);
        int ready;

        if (flushed < 0)
            goto lost;
        while (!PQisBusy(s->conn)) {
            PGresult *res = PQgetResult(s->conn);

            if (!res)
                goto done;
            PQclear(last);
            last = res;
        }
        ready = dw_pg_wait(s, flushed == 1, timeout);
        if (ready == 0) {
            PQclear(last);
            s->base.broken = true;
            return dw_error_set(err, DW_ERR_TIMEOUT, "the target did not answer within %ld ms",
                                timeout);
        }
        if (ready < 0 || !PQconsumeInput(s->conn))
            goto lost;
    }
done:
    if (!last)
        goto lost;
    if (PQresultStatus(last) == PGRES_COMMAND_OK || PQresultStatus(last) == PGRES_TUPLES_OK) {
        *out = last;
        return DW_OK;
    }
    {
        dw_errcode code = dw_pg_result_error(s, last, err);

        PQclear(last);
        return code;
    }
lost:
    PQclear(last);
    return dw_pg_lost(s, "waiting for a result", err);
}

/* Target notices (for example a WARNING) go to the debug log, never to stderr. */
static void notice_to_log(void *arg, const char *message)
{
    char line[256];

    split_message(message, line, sizeof(line), NULL, 0);
    dw_debug("connector \"%s\": target said: %s", (const char *) arg, line);
}

/*
 * "auto" logs its choice once per connector name (the pool opens many
 * sessions), and again if the target's answer changes.
 */
static void log_auto_choice(const char *name, bool two_phase, long mpt)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static struct {
        char name[64];
        bool two_phase;
    } seen[32];
    static size_t nseen;
    bool log = true;

    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nseen; i++) {
        if (strcmp(seen[i].name, name) == 0) {
            log = seen[i].two_phase != two_phase;
            seen[i].two_phase = two_phase;
            goto out;
        }
    }
    if (nseen < sizeof(seen) / sizeof(seen[0])) {
        snprintf(seen[nseen].name, sizeof(seen[nseen].name), "%s", name);
        seen[nseen].two_phase = two_phase;
        nseen++;
    }
out:
    pthread_mutex_unlock(&lock);
    if (!log)
        return;
    if (two_phase)
        dw_info("connector \"%s\": commit \"auto\" uses two-phase commit (the target has "
                "max_prepared_transactions = %ld)", name, mpt);
    else
        dw_info("connector \"%s\": commit \"auto\" uses one-phase commit (the target has "
                "max_prepared_transactions = 0)", name);
}

/* ---------------------------------------------------------------- the vtable */

static dw_errcode pg_check(const struct dw_connector_config *cfg, struct dw_error *err)
{
    const char *conninfo = dw_connector_setting(cfg, "conninfo");
    PQconninfoOption *opts;
    char *msg = NULL;

    if (!conninfo || !*conninfo)
        return dw_error_set(err, DW_ERR_CONFIG, "\"conninfo\" is required for type \"pg\"");
    opts = PQconninfoParse(conninfo, &msg);
    if (!opts) {
        /* libpq quotes parts of the string, which may hold a password */
        if (msg && !dw_connector_setting_secret(cfg, "conninfo") &&
            !strcasestr(conninfo, "password") && !strchr(conninfo, '@')) {
            char first[200];

            split_message(msg, first, sizeof(first), NULL, 0);
            dw_error_set(err, DW_ERR_CONFIG, "\"conninfo\" is not a valid connection string: %s",
                         first);
        } else {
            dw_error_set(err, DW_ERR_CONFIG, "\"conninfo\" is not a valid connection string");
        }
        PQfreemem(msg);
        return DW_ERR_CONFIG;
    }
    PQconninfoFree(opts);
    return DW_OK;
}

static dw_errcode setup_session(struct pg_session *s, struct dw_error *err)
{
    const struct dw_connector_config *cfg = s->base.config;
    char timeout[96] = "";
    char sql[768];
    PGresult *res;
    dw_errcode rc;
    long mpt;

    /*
     * One round trip: the origin marker (a placeholder GUC where the target
     * has no dualwrite extension), the value formats the source renders in,
     * the statement timeout, and the target's max_prepared_transactions.
     */
    if (cfg->timeout_ms > 0)
        snprintf(timeout, sizeof(timeout),
                 "pg_catalog.set_config('statement_timeout', '%ld', false), ", cfg->timeout_ms);
    snprintf(sql, sizeof(sql),
             "SELECT pg_catalog.set_config('dualwrite.origin', 'dualwrite', false), "
             "pg_catalog.set_config('datestyle', 'ISO', false), "
             "pg_catalog.set_config('intervalstyle', 'postgres', false), "
             "pg_catalog.set_config('extra_float_digits', '3', false), "
             "pg_catalog.set_config('timezone', 'UTC', false), %s"
             "pg_catalog.current_setting('max_prepared_transactions')::int",
             timeout);
    rc = dw_pg_run(s, sql, 0, NULL, &res, err);
    if (rc != DW_OK) {
        dw_error_prefix(err, "could not set up the target session");
        return rc;
    }
    mpt = strtol(PQgetvalue(res, 0, PQnfields(res) - 1), NULL, 10);
    PQclear(res);

    switch (cfg->commit) {
    case DW_COMMIT_TWO_PHASE:
        if (mpt <= 0) {
            dw_error_set(err, DW_ERR_CONFIG,
                         "cannot use commit \"two-phase\": the target has "
                         "max_prepared_transactions = 0");
            dw_error_hint(err, "Set max_prepared_transactions above zero on the target server "
                          "and restart it, or use commit \"auto\" or \"one-phase\".");
            return DW_ERR_CONFIG;
        }
        s->base.two_phase = true;
        break;
    case DW_COMMIT_ONE_PHASE:
        s->base.two_phase = false;
        break;
    case DW_COMMIT_AUTO:
        s->base.two_phase = mpt > 0;
        log_auto_choice(conn_name(s), s->base.two_phase, mpt);
        break;
    }
    return DW_OK;
}

static dw_errcode pg_open(const struct dw_connector_config *cfg, struct dw_session **out,
                          struct dw_error *err)
{
    const char *conninfo = dw_connector_setting(cfg, "conninfo");
    char timeout[32] = "";
    /* conninfo comes last so that whatever it sets wins */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *values[] = {timeout, "dualwrited", conninfo, NULL};
    struct pg_session *s;
    dw_errcode rc;

    *out = NULL;
    if (!conninfo)
        return dw_error_set(err, DW_ERR_CONFIG, "\"conninfo\" is required for type \"pg\"");
    if (cfg->timeout_ms > 0)
        snprintf(timeout, sizeof(timeout), "%ld", cfg->timeout_ms < 2000 ? 2 :
                 (cfg->timeout_ms + 999) / 1000);
    s = calloc(1, sizeof(*s));
    if (!s)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    s->base.ops = &dw_pg_connector;
    s->base.config = cfg;
    s->base.failed_op = -1;
    dw_buf_init(&s->sql);
    s->conn = PQconnectdbParams(keys, values, 1);
    if (!s->conn) {
        free(s);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    if (PQstatus(s->conn) != CONNECTION_OK) {
        char first[200], rest[400];

        split_message(PQerrorMessage(s->conn), first, sizeof(first), rest, sizeof(rest));
        dw_error_set(err, DW_ERR_CONNECT, "could not connect to the target: %s", first);
        if (rest[0])
            dw_error_detail(err, "%s", rest);
        PQfinish(s->conn);
        free(s);
        return DW_ERR_CONNECT;
    }
    PQsetNoticeProcessor(s->conn, notice_to_log, (void *) conn_name(s));
    if (PQsetnonblocking(s->conn, 1) != 0) {
        dw_error_set(err, DW_ERR_CONNECT, "could not make the target connection non-blocking");
        rc = DW_ERR_CONNECT;
        goto fail;
    }
    rc = setup_session(s, err);
    if (rc != DW_OK)
        goto fail;
    *out = &s->base;
    return DW_OK;
fail:
    PQfinish(s->conn);
    dw_buf_cleanup(&s->sql);
    free(s);
    return rc;
}

static void pg_close(struct dw_session *base)
{
    struct pg_session *s = (struct pg_session *) base;

    if (!s)
        return;
    dw_pg_batch_cleanup(s);
    if (s->conn)
        PQfinish(s->conn);
    free(s);
}

static dw_errcode not_in_batch(struct pg_session *s, const char *what, struct dw_error *err)
{
    if (s->in_batch)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot %s while a batch is in progress", what);
    return DW_OK;
}

static dw_errcode pg_check_table(struct dw_session *base, const char *table,
                                 const char *const *columns, size_t ncolumns, struct dw_error *err)
{
    struct pg_session *s = (struct pg_session *) base;
    const char *sql =
        "SELECT c.relkind, a.attname FROM pg_catalog.pg_class c "
        "LEFT JOIN pg_catalog.pg_attribute a "
        "ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.oid = pg_catalog.to_regclass($1)";
    struct dw_buf name, missing;
    const char *param;
    PGresult *res = NULL;
    dw_errcode rc;
    size_t nmissing = 0;
    int nrows;

    if ((rc = not_in_batch(s, "check a table", err)) != DW_OK)
        return rc;
    dw_buf_init(&name);
    dw_buf_init(&missing);
    dw_pg_quote_table(&name, table);
    if (dw_buf_failed(&name)) {
        rc = dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        goto out;
    }
    param = name.data;
    rc = dw_pg_run(s, sql, 1, &param, &res, err);
    if (rc != DW_OK) {
        dw_error_prefix(err, "could not check table \"%s\" on the target", table);
        goto out;
    }
    nrows = PQntuples(res);
    if (nrows == 0) {
        rc = dw_error_set(err, DW_ERR_CONFIG, "table \"%s\" does not exist on the target", table);
        goto out;
    }
    if (!strchr("rpvf", PQgetvalue(res, 0, 0)[0])) {
        rc = dw_error_set(err, DW_ERR_CONFIG, "\"%s\" on the target is not a table", table);
        goto out;
    }
    for (size_t i = 0; i < ncolumns; i++) {
        bool found = false;

        for (int r = 0; r < nrows && !found; r++)
            found = !PQgetisnull(res, r, 1) && strcmp(PQgetvalue(res, r, 1), columns[i]) == 0;
        if (!found) {
            dw_buf_printf(&missing, "%s\"%s\"", nmissing ? ", " : "", columns[i]);
            nmissing++;
        }
    }
    if (nmissing) {
        rc = dw_error_set(err, DW_ERR_CONFIG, "table \"%s\" on the target has no column%s %s",
                          table, nmissing > 1 ? "s" : "", missing.data);
        dw_error_hint(err, "Column names are case-sensitive: they are quoted as the map spells "
                      "them.");
    }
out:
    PQclear(res);
    dw_buf_cleanup(&name);
    dw_buf_cleanup(&missing);
    return rc;
}

/* Does the index whose rows are res[from, to) cover exactly the key columns? */
static bool index_matches(const PGresult *res, int from, int to, const char *const *key,
                          size_t nkey)
{
    if ((size_t) (to - from) != nkey)
        return false;
    for (size_t k = 0; k < nkey; k++) {
        bool found = false;

        for (int r = from; r < to && !found; r++)
            found = strcmp(PQgetvalue(res, r, 1), key[k]) == 0;
        if (!found)
            return false;
    }
    return true;
}

static dw_errcode pg_check_key(struct dw_session *base, const char *table, const char *const *key,
                               size_t nkey, struct dw_error *err)
{
    struct pg_session *s = (struct pg_session *) base;
    /* what ON CONFLICT (key) can infer: unique, valid, immediate, no predicate or expression */
    const char *sql =
        "SELECT i.indexrelid, a.attname FROM pg_catalog.pg_index i "
        "CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::pg_catalog.int2[]) "
        "WITH ORDINALITY AS k(attnum, n) "
        "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisunique AND i.indisvalid "
        "AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL "
        "AND k.n <= i.indnkeyatts ORDER BY 1, k.n";
    struct dw_buf name, cols;
    const char *param;
    PGresult *res = NULL;
    dw_errcode rc;
    int nrows, from = 0;
    bool ok = false;

    if ((rc = not_in_batch(s, "check a table", err)) != DW_OK)
        return rc;
    dw_buf_init(&name);
    dw_buf_init(&cols);
    dw_pg_quote_table(&name, table);
    if (dw_buf_failed(&name)) {
        rc = dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        goto out;
    }
    param = name.data;
    rc = dw_pg_run(s, sql, 1, &param, &res, err);
    if (rc != DW_OK) {
        dw_error_prefix(err, "could not check the key of table \"%s\" on the target", table);
        goto out;
    }
    nrows = PQntuples(res);
    for (int r = 1; r <= nrows && !ok; r++) {
        if (r == nrows || strcmp(PQgetvalue(res, r, 0), PQgetvalue(res, from, 0)) != 0) {
            ok = index_matches(res, from, r, key, nkey);
            from = r;
        }
    }
    if (!ok) {
        for (size_t k = 0; k < nkey; k++)
            dw_buf_printf(&cols, "%s\"%s\"", k ? ", " : "", key[k]);
        rc = dw_error_set(err, DW_ERR_CONFIG,
                          "table \"%s\" on the target has no unique index on the key (%s)",
                          table, cols.data ? cols.data : "");
        dw_error_hint(err, "Upserts use INSERT ... ON CONFLICT, which needs a unique index or "
                      "constraint on exactly the key columns, without a predicate.");
    }
out:
    PQclear(res);
    dw_buf_cleanup(&name);
    dw_buf_cleanup(&cols);
    return rc;
}

static dw_errcode pg_resolve_prepared(struct dw_session *base, const char *gid, bool commit,
                                      struct dw_error *err)
{
    struct pg_session *s = (struct pg_session *) base;
    char sql[256];
    PGresult *res = NULL;
    struct dw_error local;
    dw_errcode rc;

    if ((rc = not_in_batch(s, "resolve a prepared transaction", err)) != DW_OK)
        return rc;
    if (!dw_pg_gid_valid(gid))
        return dw_error_set(err, DW_ERR_PROTOCOL, "invalid global transaction id \"%.64s\"",
                            gid ? gid : "");
    /* gid holds only [A-Za-z0-9:._-]: safe between quotes */
    snprintf(sql, sizeof(sql), "%s PREPARED '%s'", commit ? "COMMIT" : "ROLLBACK", gid);
    dw_error_clear(&local);
    rc = dw_pg_run(s, sql, 0, NULL, &res, &local);
    PQclear(res);
    if (rc == DW_ERR_TARGET && strcmp(local.sqlstate, "42704") == 0) {
        /* already settled (by us before a crash, or by hand): nothing left to do */
        dw_debug("connector \"%s\": prepared transaction \"%s\" no longer exists", conn_name(s),
                 gid);
        return DW_OK;
    }
    if (rc != DW_OK) {
        /* first error wins: copy ours in only if the caller has none yet */
        if (!dw_error_is_set(err) && err)
            *err = local;
        dw_error_prefix(err, "could not %s prepared transaction \"%s\"",
                        commit ? "commit" : "roll back", gid);
    }
    return rc;
}

/*
 * Settle several prepared transactions in one round trip: in pipeline mode,
 * each COMMIT/ROLLBACK PREPARED is followed by its own Sync (the server
 * refuses them inside a pipeline's implicit transaction), so one failing
 * leaves the others alone.  Each is still its own transaction on the
 * target; what the group saves is the wake-ups and round trips.
 */
static void pg_resolve_prepared_many(struct dw_session *base, const char *const *gids,
                                     const bool *commit, size_t n, dw_errcode *rcs,
                                     struct dw_error *errs)
{
    struct pg_session *s = (struct pg_session *) base;
    long timeout = dw_pg_wait_ms(s);
    size_t sent = 0, cur = 0, i;
    bool got_result = false;

    for (i = 0; i < n; i++) {
        dw_error_clear(&errs[i]);
        rcs[i] = DW_OK;
    }
    if (n == 1 || (s->conn && PQpipelineStatus(s->conn) != PQ_PIPELINE_OFF)) {
        for (i = 0; i < n; i++)
            rcs[i] = pg_resolve_prepared(base, gids[i], commit[i], &errs[i]);
        return;
    }
    if (s->base.broken || !s->conn || PQstatus(s->conn) == CONNECTION_BAD)
        goto lost;
    if (!PQenterPipelineMode(s->conn)) {
        for (i = 0; i < n; i++)
            rcs[i] = pg_resolve_prepared(base, gids[i], commit[i], &errs[i]);
        return;
    }
    for (i = 0; i < n; i++) {
        char sql[256];

        if (!dw_pg_gid_valid(gids[i])) {
            rcs[i] = dw_error_set(&errs[i], DW_ERR_PROTOCOL, "invalid global transaction id \"%.64s\"",
                                  gids[i] ? gids[i] : "");
            continue;
        }
        /* gid holds only [A-Za-z0-9:._-]: safe between quotes */
        snprintf(sql, sizeof(sql), "%s PREPARED '%s'", commit[i] ? "COMMIT" : "ROLLBACK", gids[i]);
        if (!PQsendQueryParams(s->conn, sql, 0, NULL, NULL, NULL, NULL, 0) || !PQpipelineSync(s->conn))
            goto lost;
        sent = i + 1;
    }
    /* read each statement's result and its Sync, in order; skipped (invalid) gids sent nothing */
    while (cur < n && !dw_pg_gid_valid(gids[cur]))
        cur++;
    while (cur < sent) {
        int flushed = PQflush(s->conn);
        int ready;

        if (flushed < 0)
            goto lost;
        while (cur < sent && !PQisBusy(s->conn)) {
            PGresult *res = PQgetResult(s->conn);

            if (!res) {
                if (PQstatus(s->conn) == CONNECTION_BAD || !got_result)
                    goto lost;
                continue;      /* the end of this statement's results; its Sync follows */
            }
            if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
                PQclear(res);
                if (!got_result)
                    goto lost;
                got_result = false;
                for (cur++; cur < sent && !dw_pg_gid_valid(gids[cur]); cur++)
                    ;
                continue;
            }
            got_result = true;
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                rcs[cur] = dw_pg_result_error(s, res, &errs[cur]);
                if (rcs[cur] == DW_ERR_TARGET && strcmp(errs[cur].sqlstate, "42704") == 0) {
                    /* already settled (by us before a crash, or by hand) */
                    dw_error_clear(&errs[cur]);
                    rcs[cur] = DW_OK;
                } else {
                    dw_error_prefix(&errs[cur], "could not %s prepared transaction \"%s\"",
                                    commit[cur] ? "commit" : "roll back", gids[cur]);
                }
            }
            PQclear(res);
            if (PQstatus(s->conn) == CONNECTION_BAD)
                goto lost;
        }
        if (cur >= sent)
            break;
        ready = dw_pg_wait(s, flushed == 1, timeout);
        if (ready == 0) {
            s->base.broken = true;
            for (i = cur; i < n; i++) {
                if (dw_pg_gid_valid(gids[i]))
                    rcs[i] = dw_error_set(&errs[i], DW_ERR_TIMEOUT, "the target did not answer within %ld ms",
                                          timeout);
            }
            return;
        }
        if (ready < 0 || !PQconsumeInput(s->conn))
            goto lost;
    }
    if (!PQexitPipelineMode(s->conn))
        s->base.broken = true;
    return;
lost:
    for (i = cur; i < n; i++) {
        /* an invalid gid was never sent; a statement whose result came is done */
        if (!dw_pg_gid_valid(gids[i]) || (i == cur && got_result))
            continue;
        dw_error_clear(&errs[i]);
        rcs[i] = dw_pg_lost(s, "settling prepared transactions", &errs[i]);
    }
}

static dw_errcode pg_list_prepared(struct dw_session *base, const char *prefix, char ***gids,
                                   size_t *ngids, struct dw_error *err)
{
    struct pg_session *s = (struct pg_session *) base;
    /* a prefix match without LIKE, whose wildcards "_" and "%" could appear in prefix */
    const char *sql =
        "SELECT gid FROM pg_catalog.pg_prepared_xacts "
        "WHERE pg_catalog.left(gid, pg_catalog.length($1)) = $1 "
        "AND database = pg_catalog.current_database() ORDER BY prepared";
    const char *param = prefix ? prefix : "";
    PGresult *res;
    dw_errcode rc;
    char **list;
    int n;

    *gids = NULL;
    *ngids = 0;
    if ((rc = not_in_batch(s, "list prepared transactions", err)) != DW_OK)
        return rc;
    rc = dw_pg_run(s, sql, 1, &param, &res, err);
    if (rc != DW_OK) {
        dw_error_prefix(err, "could not list prepared transactions on the target");
        return rc;
    }
    n = PQntuples(res);
    list = calloc((size_t) n + 1, sizeof(*list));
    if (!list) {
        PQclear(res);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        list[i] = strdup(PQgetvalue(res, i, 0));
        if (!list[i]) {
            dw_connector_free_gids(list, (size_t) i);
            PQclear(res);
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        }
    }
    PQclear(res);
    *gids = list;
    *ngids = (size_t) n;
    return DW_OK;
}

const struct dw_connector_ops dw_pg_connector = {
    .type = "pg",
    .settings = pg_settings,
    .check = pg_check,
    .open = pg_open,
    .check_table = pg_check_table,
    .begin = dw_pg_begin,
    .apply = dw_pg_apply,
    .prepare = dw_pg_prepare,
    .commit = dw_pg_commit,
    .rollback = dw_pg_rollback,
    .resolve_prepared = pg_resolve_prepared,
    .resolve_prepared_many = pg_resolve_prepared_many,
    .list_prepared = pg_list_prepared,
    .close = pg_close,
    .check_key = pg_check_key,
    .apply_bulk = dw_pg_apply_bulk,
};
