/*
 * The source database side of dw-initsync: sessions, the chunk queries and
 * the checks made before a map is copied.
 *
 * A chunk is a key range (lo, hi] (DESIGN.md section 8).  Its end hi is found
 * first, without locks: the chunk-th key after lo in key order.  Then its rows
 * are read with FOR SHARE.  Keeping the two apart matters: in READ COMMITTED a
 * row that a concurrent transaction updated while we waited for its lock comes
 * back as its newest version, which may carry a different key, so the keys of
 * the rows read cannot tell where the next chunk starts; hi can.  A row whose
 * key moved out of the range is left out by the lock's recheck, and its new
 * version reached the target through live sync when that transaction
 * committed, as did every row inserted after the chunk was read.
 *
 * Values are read as text under the capture trigger's pinned settings
 * (bridge/hook/README.md, "Values"), so the map engine sees exactly what live
 * sync would send; keys round-trip through the same text form.
 */
#include "tools/initsync/dw_initsync.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_buf.h"

/* ---------------------------------------------------------------- errors and statements */

static void first_line(char *buf, size_t size, const char *msg)
{
    size_t n;

    if (!msg || !*msg)
        msg = "unknown error";
    n = strcspn(msg, "\n");
    if (n >= size)
        n = size - 1;
    memcpy(buf, msg, n);
    buf[n] = '\0';
}

dw_errcode dw_initsync_pg_error(PGconn *conn, const PGresult *res, struct dw_error *err,
                                const char *fmt, ...)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
    dw_errcode code = PQstatus(conn) == CONNECTION_BAD ? DW_ERR_CONNECT : DW_ERR_TARGET;
    char what[256] = "", msg[256];
    va_list ap;

    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
    }
    first_line(msg, sizeof(msg), primary ? primary : PQerrorMessage(conn));
    if (what[0])
        dw_error_set(err, code, "%s: %s", what, msg);
    else
        dw_error_set(err, code, "%s", msg);
    dw_error_sqlstate(err, state);
    if (detail)
        dw_error_detail(err, "%s", detail);
    if (hint)
        dw_error_hint(err, "%s", hint);
    return code;
}

dw_errcode dw_initsync_sql(PGconn *conn, const char *sql, int nparams, const char *const *params,
                           PGresult **out, struct dw_error *err)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    *out = NULL;
    if (res && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)) {
        *out = res;
        return DW_OK;
    }
    {
        dw_errcode code = dw_initsync_pg_error(conn, res, err, NULL);

        PQclear(res);
        return code;
    }
}

/* Warnings of the source reach the user as ours; notices are dropped. */
static void notice_receiver(void *arg, const PGresult *res)
{
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    (void) arg;
    if (sev && strcmp(sev, "WARNING") == 0)
        dw_initsync_say("warning", "the source database says: %s", primary ? primary : "?");
}

dw_errcode dw_initsync_source_connect(const struct dw_config *cfg, PGconn **out,
                                      struct dw_error *err)
{
    /* conninfo last: what it sets wins */
    const char *keys[] = {"application_name", "client_encoding", "dbname", NULL};
    const char *values[] = {"dw-initsync", "UTF8", cfg->source_conninfo, NULL};
    static const char *const setup =
        "SELECT pg_catalog.set_config('datestyle', 'ISO', false), "
        "pg_catalog.set_config('intervalstyle', 'postgres', false), "
        "pg_catalog.set_config('timezone', 'UTC', false), "
        "pg_catalog.set_config('extra_float_digits', '3', false), "
        "pg_catalog.set_config('bytea_output', 'hex', false), "
        "pg_catalog.set_config('statement_timeout', '0', false), "
        "pg_catalog.set_config('lock_timeout', '0', false), "
        "pg_catalog.set_config('idle_in_transaction_session_timeout', '0', false), "
        "pg_catalog.set_config('search_path', 'pg_catalog', false)";
    PGconn *conn;
    PGresult *res;
    dw_errcode rc;

    *out = NULL;
    conn = PQconnectdbParams(keys, values, 1);
    if (!conn)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[256];

        first_line(msg, sizeof(msg), PQerrorMessage(conn));
        PQfinish(conn);
        return dw_error_set(err, DW_ERR_CONNECT, "could not connect to the source database: %s",
                            msg);
    }
    PQsetNoticeReceiver(conn, notice_receiver, NULL);
    if ((rc = dw_initsync_sql(conn, setup, 0, NULL, &res, err)) != DW_OK) {
        dw_error_prefix(err, "could not set up the source session");
        PQfinish(conn);
        return rc;
    }
    PQclear(res);
    /* the capture trigger ignores sessions with an origin (loop prevention) */
    res = PQexec(conn, "SELECT pg_catalog.set_config('dualwrite.origin', 'dw-initsync', false)");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

        rc = dw_initsync_pg_error(conn, res, err, "cannot set \"dualwrite.origin\" on the source");
        if (state && strcmp(state, "42501") == 0) {
            if (err)
                err->code = DW_ERR_CONFIG;  /* a privilege to grant, not a failure to retry */
            rc = DW_ERR_CONFIG;
            dw_error_hint(err, "Run dw-initsync as a superuser, or let its role set the "
                          "parameter: GRANT SET ON PARAMETER dualwrite.origin TO <role>.");
        }
        PQclear(res);
        PQfinish(conn);
        return rc;
    }
    PQclear(res);
    *out = conn;
    return DW_OK;
}

/* ---------------------------------------------------------------- the queries of a map */

static void quote_ident(struct dw_buf *b, const char *name, size_t n)
{
    dw_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '"')
            dw_buf_putc(b, '"');
        dw_buf_putc(b, name[i]);
    }
    dw_buf_putc(b, '"');
}

static void key_list(struct dw_buf *b, const struct dw_map *m)
{
    for (size_t k = 0; k < m->nkey; k++) {
        if (k)
            dw_buf_puts(b, ", ");
        quote_ident(b, m->source_key[k], strlen(m->source_key[k]));
    }
}

/* "(k1, k2) > ($1, $2)": a row comparison, which a btree index on (k1, k2) serves. */
static void key_compare(struct dw_buf *b, const struct dw_map *m, const char *op, size_t first)
{
    dw_buf_putc(b, '(');
    key_list(b, m);
    dw_buf_printf(b, ") %s (", op);
    for (size_t k = 0; k < m->nkey; k++)
        dw_buf_printf(b, "%s$%zu", k ? ", " : "", first + k);
    dw_buf_putc(b, ')');
}

static char *take(struct dw_buf *b)
{
    if (dw_buf_failed(b)) {
        dw_buf_cleanup(b);
        return NULL;
    }
    return dw_buf_take(b);
}

dw_errcode dw_initsync_source_init(struct dw_initsync_source *src, const struct dw_mapset *set,
                                   const struct dw_map *map, long chunk, bool lock_rows,
                                   struct dw_error *err)
{
    const char *dot = strchr(map->source_table, '.');
    struct dw_buf b;

    memset(src, 0, sizeof(*src));
    src->map = map;
    src->ncols = dw_mapset_source_columns(set, map->source_table, &src->cols);
    src->key_col = calloc(map->nkey, sizeof(*src->key_col));
    if (src->ncols == 0 || !src->key_col || !dot)
        goto nomem;
    for (size_t k = 0; k < map->nkey; k++) {
        size_t c = 0;

        while (c < src->ncols && strcmp(src->cols[c], map->source_key[k]) != 0)
            c++;
        if (c == src->ncols)
            return dw_error_set(err, DW_ERR_INTERNAL, "table map \"%s\": key column \"%s\" is "
                                "not among the columns read", map->name, map->source_key[k]);
        src->key_col[k] = c;
    }

    dw_buf_init(&b);
    quote_ident(&b, map->source_table, (size_t) (dot - map->source_table));
    dw_buf_putc(&b, '.');
    quote_ident(&b, dot + 1, strlen(dot + 1));
    if (!(src->ident = take(&b)))
        goto nomem;

    for (int lo = 0; lo < 2; lo++) {
        dw_buf_init(&b);
        dw_buf_puts(&b, "SELECT ");
        key_list(&b, map);
        dw_buf_printf(&b, " FROM %s", src->ident);
        if (lo) {
            dw_buf_puts(&b, " WHERE ");
            key_compare(&b, map, ">", 1);
        }
        dw_buf_puts(&b, " ORDER BY ");
        key_list(&b, map);
        dw_buf_printf(&b, " OFFSET %ld LIMIT 1", chunk - 1);
        if (!(src->sql_bound[lo] = take(&b)))
            goto nomem;
        for (int hi = 0; hi < 2; hi++) {
            dw_buf_init(&b);
            dw_buf_puts(&b, "SELECT ");
            for (size_t c = 0; c < src->ncols; c++) {
                if (c)
                    dw_buf_puts(&b, ", ");
                quote_ident(&b, src->cols[c], strlen(src->cols[c]));
            }
            dw_buf_printf(&b, " FROM %s", src->ident);
            if (lo || hi)
                dw_buf_puts(&b, " WHERE ");
            if (lo)
                key_compare(&b, map, ">", 1);
            if (lo && hi)
                dw_buf_puts(&b, " AND ");
            if (hi)
                key_compare(&b, map, "<=", lo ? map->nkey + 1 : 1);
            dw_buf_puts(&b, " ORDER BY ");
            key_list(&b, map);
            if (lock_rows)
                dw_buf_puts(&b, " FOR SHARE");
            if (!(src->sql_rows[lo][hi] = take(&b)))
                goto nomem;
        }
    }
    return DW_OK;
nomem:
    return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
}

void dw_initsync_source_cleanup(struct dw_initsync_source *src)
{
    free(src->cols);
    free(src->key_col);
    free(src->ident);
    for (int lo = 0; lo < 2; lo++) {
        free(src->sql_bound[lo]);
        for (int hi = 0; hi < 2; hi++)
            free(src->sql_rows[lo][hi]);
    }
    memset(src, 0, sizeof(*src));
}

void dw_initsync_text_array(struct dw_buf *b, const char *const *vals, size_t n)
{
    dw_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            dw_buf_putc(b, ',');
        if (!vals[i]) {
            dw_buf_puts(b, "NULL");
            continue;
        }
        dw_buf_putc(b, '"');
        for (const char *p = vals[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                dw_buf_putc(b, '\\');
            dw_buf_putc(b, *p);
        }
        dw_buf_putc(b, '"');
    }
    dw_buf_putc(b, '}');
}

char **dw_initsync_copy_key(const char *const *key, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof(*out));

    if (!out)
        return NULL;
    for (size_t k = 0; k < n; k++) {
        if (key[k] && !(out[k] = strdup(key[k]))) {
            dw_initsync_free_key(out, n);
            return NULL;
        }
    }
    return out;
}

void dw_initsync_free_key(char **key, size_t n)
{
    if (!key)
        return;
    for (size_t k = 0; k < n; k++)
        free(key[k]);
    free(key);
}

dw_errcode dw_initsync_source_bound(PGconn *conn, const struct dw_initsync_source *src,
                                    char *const *lo, char ***hi, struct dw_error *err)
{
    const struct dw_map *m = src->map;
    const char *vals[64];
    PGresult *res;
    dw_errcode rc;

    *hi = NULL;
    if (m->nkey > 64)
        return dw_error_set(err, DW_ERR_CONFIG, "table map \"%s\": more than 64 key columns",
                            m->name);
    for (size_t k = 0; lo && k < m->nkey; k++)
        vals[k] = lo[k];
    rc = dw_initsync_sql(conn, src->sql_bound[lo != NULL], lo ? (int) m->nkey : 0, vals, &res,
                         err);
    if (rc != DW_OK) {
        dw_error_prefix(err, "table map \"%s\": could not find the end of the next chunk",
                        m->name);
        return rc;
    }
    if (PQntuples(res) == 1) {
        for (size_t k = 0; k < m->nkey; k++) {
            if (PQgetisnull(res, 0, (int) k)) {
                PQclear(res);
                dw_error_set(err, DW_ERR_CONFIG, "table map \"%s\": key column \"%s\" of table "
                             "\"%s\" holds null values", m->name, m->source_key[k],
                             m->source_table);
                dw_error_hint(err, "The source key must identify every row: make its columns "
                              "NOT NULL (normally it is the primary key).");
                return DW_ERR_CONFIG;
            }
            vals[k] = PQgetvalue(res, 0, (int) k);
        }
        if (!(*hi = dw_initsync_copy_key(vals, m->nkey))) {
            PQclear(res);
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        }
    }
    PQclear(res);
    return DW_OK;
}

dw_errcode dw_initsync_source_rows(PGconn *conn, const struct dw_initsync_source *src,
                                   char *const *lo, char *const *hi, PGresult **out,
                                   struct dw_error *err)
{
    const struct dw_map *m = src->map;
    const char *vals[128];
    int n = 0;
    dw_errcode rc;

    for (size_t k = 0; lo && k < m->nkey; k++)
        vals[n++] = lo[k];
    for (size_t k = 0; hi && k < m->nkey; k++)
        vals[n++] = hi[k];
    rc = dw_initsync_sql(conn, src->sql_rows[lo != NULL][hi != NULL], n, vals, out, err);
    if (rc != DW_OK)
        dw_error_prefix(err, "table map \"%s\": could not read a chunk of table \"%s\"", m->name,
                        m->source_table);
    return rc;
}

dw_errcode dw_initsync_source_cut_ok(PGconn *conn, const struct dw_initsync_source *src,
                                     const struct dw_initsync_chunk *chunk, size_t cut,
                                     const char *const *at, bool *ok, struct dw_error *err)
{
    const struct dw_map *m = src->map;
    size_t nk = m->nkey, np = 0, nrest = chunk->nrows - cut;
    struct dw_buf sql, arrays[64];
    const char *params[192], **col;
    PGresult *res;
    dw_errcode rc = DW_OK;

    *ok = false;
    if (nk > 64)
        return dw_error_set(err, DW_ERR_CONFIG, "table map \"%s\": more than 64 key columns",
                            m->name);
    col = calloc(nrest ? nrest : 1, sizeof(*col));
    if (!col)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    /* the rows not handled, one text[] per key column, as the source renders them */
    for (size_t k = 0; k < nk; k++) {
        dw_buf_init(&arrays[k]);
        for (size_t r = 0; r < nrest; r++)
            col[r] = PQgetvalue(chunk->rows, (int) (cut + r), (int) src->key_col[k]);
        dw_initsync_text_array(&arrays[k], col, nrest);
    }
    free(col);
    dw_buf_init(&sql);
    dw_buf_printf(&sql, "SELECT NOT EXISTS (SELECT 1 FROM %s WHERE ", src->ident);
    if (chunk->lo) {
        key_compare(&sql, m, ">", 1);
        dw_buf_puts(&sql, " AND ");
        for (size_t k = 0; k < nk; k++)
            params[np++] = chunk->lo[k];
    }
    key_compare(&sql, m, "<", np + 1);
    for (size_t k = 0; k < nk; k++)
        params[np++] = at[k];
    dw_buf_puts(&sql, " AND (");
    for (size_t k = 0; k < nk; k++) {
        dw_buf_puts(&sql, k ? ", pg_catalog.concat(" : "pg_catalog.concat(");
        quote_ident(&sql, m->source_key[k], strlen(m->source_key[k]));
        dw_buf_putc(&sql, ')');
    }
    dw_buf_puts(&sql, ") IN (SELECT * FROM pg_catalog.unnest(");
    for (size_t k = 0; k < nk; k++) {
        dw_buf_printf(&sql, "%s$%zu::text[]", k ? ", " : "", np + 1);
        params[np++] = arrays[k].data;
    }
    dw_buf_puts(&sql, ")))");
    for (size_t k = 0; k < nk; k++)
        if (dw_buf_failed(&arrays[k]))
            rc = dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    if (dw_buf_failed(&sql))
        rc = dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    if (rc == DW_OK) {
        rc = dw_initsync_sql(conn, sql.data, (int) np, params, &res, err);
        if (rc == DW_OK) {
            *ok = PQgetvalue(res, 0, 0)[0] == 't';
            PQclear(res);
        } else {
            dw_error_prefix(err, "table map \"%s\": could not check where a stopped chunk ends",
                            m->name);
        }
    }
    dw_buf_cleanup(&sql);
    for (size_t k = 0; k < nk; k++)
        dw_buf_cleanup(&arrays[k]);
    return rc;
}

/* ---------------------------------------------------------------- checks */

dw_errcode dw_initsync_source_check(PGconn *conn, const struct dw_initsync_source *src,
                                    const char *prog, long long *estimate, struct dw_error *err)
{
    const struct dw_map *m = src->map;
    /* size, capture trigger, and whether a btree index starts with the key columns in order */
    static const char *const sql =
        "SELECT c.reltuples::bigint, c.relpages, "
        "  (SELECT t.tgenabled FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid "
        "     AND t.tgname = 'dualwrite_capture' AND t.tgparentid = 0), "
        "  EXISTS (SELECT 1 FROM pg_catalog.pg_index i "
        "     JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid "
        "     JOIN pg_catalog.pg_am am ON am.oid = ic.relam AND am.amname = 'btree' "
        "     WHERE i.indrelid = c.oid AND i.indisvalid AND i.indpred IS NULL "
        "     AND (i.indkey::pg_catalog.int2[])[0:$3 - 1] = "
        "       (SELECT pg_catalog.array_agg(a.attnum ORDER BY k.n) "
        "          FROM pg_catalog.unnest($2::text[]) WITH ORDINALITY AS k(name, n) "
        "          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = k.name)) "
        "FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)";
    struct dw_buf keys;
    const char *params[3];
    char nkey[24];
    PGresult *res;
    dw_errcode rc;
    long long tuples;
    long pages;

    *estimate = -1;
    dw_buf_init(&keys);
    dw_buf_putc(&keys, '{');
    for (size_t k = 0; k < m->nkey; k++) {
        dw_buf_puts(&keys, k ? ",\"" : "\"");
        for (const char *p = m->source_key[k]; *p; p++) {
            if (*p == '"' || *p == '\\')
                dw_buf_putc(&keys, '\\');
            dw_buf_putc(&keys, *p);
        }
        dw_buf_putc(&keys, '"');
    }
    dw_buf_putc(&keys, '}');
    snprintf(nkey, sizeof(nkey), "%zu", m->nkey);
    params[0] = src->ident;
    params[1] = keys.data;
    params[2] = nkey;
    if (dw_buf_failed(&keys)) {
        dw_buf_cleanup(&keys);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    rc = dw_initsync_sql(conn, sql, 3, params, &res, err);
    dw_buf_cleanup(&keys);
    if (rc != DW_OK) {
        dw_error_prefix(err, "table map \"%s\": could not look up table \"%s\"", m->name,
                        m->source_table);
        return rc;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        return dw_error_set(err, DW_ERR_CONFIG, "table map \"%s\": table \"%s\" does not exist "
                            "in the source database", m->name, m->source_table);
    }
    tuples = atoll(PQgetvalue(res, 0, 0));
    pages = atol(PQgetvalue(res, 0, 1));
    if (PQgetisnull(res, 0, 2))
        dw_initsync_say("warning", "table \"%s\" has no capture trigger: rows changed while "
                        "%s copies it can be stale on the target (run \"dwctl hooks install\" "
                        "and start dualwrited first)", m->source_table, prog);
    else if (PQgetvalue(res, 0, 2)[0] == 'D')
        dw_initsync_say("warning", "the capture trigger of table \"%s\" is disabled: rows "
                        "changed while %s copies it can be stale on the target",
                        m->source_table, prog);
    if (PQgetvalue(res, 0, 3)[0] != 't') {
        struct dw_buf cols;

        dw_buf_init(&cols);
        key_list(&cols, m);
        dw_initsync_say("warning", "no index of table \"%s\" starts with its key (%s): every "
                        "chunk sorts the rest of the table (create one: CREATE INDEX ON %s (%s))",
                        m->source_table, cols.data ? cols.data : "", src->ident,
                        cols.data ? cols.data : "");
        dw_buf_cleanup(&cols);
    }
    PQclear(res);

    /* the statistics when the table is large, else count (exact for small tables) */
    if (tuples > 0 && pages >= 1000) {
        *estimate = tuples;
        return DW_OK;
    }
    {
        char sql2[512];

        snprintf(sql2, sizeof(sql2), "SELECT pg_catalog.count(*) FROM %s", src->ident);
        if (strlen(src->ident) + 40 < sizeof(sql2) &&
            dw_initsync_sql(conn, sql2, 0, NULL, &res, NULL) == DW_OK) {
            *estimate = atoll(PQgetvalue(res, 0, 0));
            PQclear(res);
        }
    }
    return DW_OK;
}
