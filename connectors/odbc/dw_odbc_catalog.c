/*
 * The ODBC connector's catalog: column metadata of target tables
 * (SQLColumns, cached per session for the value rewriting of
 * dw_odbc_value.c) and the startup checks, check_table (the table and its
 * columns exist) and check_key (a primary key or unique index covers exactly
 * the key, through SQLPrimaryKeys and SQLStatistics).
 *
 * A table "q.t" is qualified by a catalog where the target has catalogs but
 * no schemas in DML (MariaDB: q is the database), by a schema otherwise.
 * SQLColumns takes search patterns, so "_" and "%" in names are escaped.
 * Column names compare case-insensitively on SQLite and MariaDB, as those
 * targets compare them.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/odbc/dw_odbc_int.h"

/* ---------------------------------------------------------------- metadata */

void dw_odbc_split_table(const struct odbc_session *s, const char *table, char *catalog,
                         size_t csize, char *schema, size_t ssize, char *name, size_t nsize)
{
    const char *dot = strchr(table, '.');

    catalog[0] = schema[0] = '\0';
    if (dot) {
        int qlen = (int) (dot - table);

        if (s->qualifier_is_catalog)
            snprintf(catalog, csize, "%.*s", qlen, table);
        else
            snprintf(schema, ssize, "%.*s", qlen, table);
        table = dot + 1;
    }
    snprintf(name, nsize, "%s", table);
}

void dw_odbc_pattern(const struct odbc_session *s, const char *in, char *out, size_t size)
{
    size_t o = 0, elen = strlen(s->escape);

    for (; *in && o + elen + 2 < size; in++) {
        if (elen && (*in == '_' || *in == '%' || strncmp(in, s->escape, elen) == 0)) {
            memcpy(out + o, s->escape, elen);
            o += elen;
        }
        out[o++] = *in;
    }
    out[o] = '\0';
}

static void free_table(struct odbc_table *t)
{
    for (size_t i = 0; i < t->ncols; i++)
        free(t->cols[i].name);
    free(t->cols);
    t->cols = NULL;
    t->ncols = 0;
}

/* Read the columns of table into t (its name already set). */
static dw_errcode load_columns(struct odbc_session *s, const char *table, struct odbc_table *t,
                               struct dw_error *err)
{
    char cat[129], sch[129], name[129], spat[300], npat[300];
    size_t cap = 0;
    SQLRETURN r;

    dw_odbc_split_table(s, table, cat, sizeof(cat), sch, sizeof(sch), name, sizeof(name));
    dw_odbc_pattern(s, sch, spat, sizeof(spat));
    dw_odbc_pattern(s, name, npat, sizeof(npat));
    r = SQLColumns(s->direct, (SQLCHAR *) (cat[0] ? cat : NULL), cat[0] ? SQL_NTS : 0,
                   (SQLCHAR *) (spat[0] ? spat : NULL), spat[0] ? SQL_NTS : 0, (SQLCHAR *) npat,
                   SQL_NTS, NULL, 0);
    if (!SQL_SUCCEEDED(r)) {
        dw_errcode rc = dw_odbc_error(s, SQL_HANDLE_STMT, s->direct, r,
                                      "reading the columns of a table", err);

        SQLFreeStmt(s->direct, SQL_CLOSE);
        return rc;
    }
    while (SQL_SUCCEEDED(r = SQLFetch(s->direct))) {
        char tname[129], cname[129], type_name[48];
        SQLSMALLINT type = 0;
        SQLLEN len;
        struct odbc_column *c;

        if (!SQL_SUCCEEDED(SQLGetData(s->direct, 3, SQL_C_CHAR, tname, sizeof(tname), &len)) ||
            len == SQL_NULL_DATA || strcmp(tname, name) != 0)
            continue;    /* a pattern match of another table */
        if (!SQL_SUCCEEDED(SQLGetData(s->direct, 4, SQL_C_CHAR, cname, sizeof(cname), &len)) ||
            len == SQL_NULL_DATA)
            continue;
        if (!SQL_SUCCEEDED(SQLGetData(s->direct, 5, SQL_C_SSHORT, &type, 0, &len)))
            type = SQL_UNKNOWN_TYPE;
        if (!SQL_SUCCEEDED(SQLGetData(s->direct, 6, SQL_C_CHAR, type_name, sizeof(type_name),
                                      &len)) || len == SQL_NULL_DATA)
            type_name[0] = '\0';
        if (t->ncols == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct odbc_column *p = realloc(t->cols, ncap * sizeof(*p));

            if (!p)
                goto nomem;
            t->cols = p;
            cap = ncap;
        }
        c = &t->cols[t->ncols];
        c->name = strdup(cname);
        if (!c->name)
            goto nomem;
        c->type = type;
        for (size_t i = 0; i < sizeof(c->type_name); i++) {
            c->type_name[i] = (char) tolower((unsigned char) type_name[i]);
            if (!type_name[i])
                break;
        }
        c->type_name[sizeof(c->type_name) - 1] = '\0';
        t->ncols++;
    }
    if (r != SQL_NO_DATA) {
        dw_errcode rc = dw_odbc_error(s, SQL_HANDLE_STMT, s->direct, r,
                                      "reading the columns of a table", err);

        SQLFreeStmt(s->direct, SQL_CLOSE);
        return rc;
    }
    SQLFreeStmt(s->direct, SQL_CLOSE);
    return DW_OK;
nomem:
    SQLFreeStmt(s->direct, SQL_CLOSE);
    return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
}

void dw_odbc_tables_cleanup(struct odbc_session *s)
{
    for (size_t i = 0; i < s->ntables; i++) {
        free_table(&s->tables[i]);
        free(s->tables[i].name);
    }
    free(s->tables);
    s->tables = NULL;
    s->ntables = s->tablecap = 0;
}

dw_errcode dw_odbc_table(struct odbc_session *s, const char *table, bool refresh,
                         const struct odbc_table **out, struct dw_error *err)
{
    struct odbc_table *t = NULL;
    dw_errcode rc;

    *out = NULL;
    for (size_t i = 0; i < s->ntables; i++) {
        if (strcmp(s->tables[i].name, table) == 0) {
            t = &s->tables[i];
            break;
        }
    }
    if (t && !refresh && t->ncols) {
        *out = t;
        return DW_OK;
    }
    if (!t) {
        if (s->ntables == s->tablecap) {
            size_t cap = s->tablecap ? s->tablecap * 2 : 8;
            struct odbc_table *p = realloc(s->tables, cap * sizeof(*p));

            if (!p)
                return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
            s->tables = p;
            s->tablecap = cap;
        }
        t = &s->tables[s->ntables];
        memset(t, 0, sizeof(*t));
        t->name = strdup(table);
        if (!t->name)
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        s->ntables++;
    }
    free_table(t);
    rc = load_columns(s, table, t, err);
    if (rc != DW_OK) {
        free_table(t);
        return rc;
    }
    *out = t->ncols ? t : NULL;
    return DW_OK;
}

/* ---------------------------------------------------------------- startup checks */

static dw_errcode idle(struct odbc_session *s, const char *what, struct dw_error *err)
{
    if (s->in_batch)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot %s while a batch is in progress", what);
    if (s->base.broken || !s->connected)
        return dw_odbc_lost(s, what, err);
    return DW_OK;
}

/* End the read-only transaction a catalog call may have opened (manual commit). */
static void end_read(struct odbc_session *s)
{
    if (!s->xa && s->connected)
        SQLEndTran(SQL_HANDLE_DBC, s->dbc, SQL_ROLLBACK);
}

static bool same_column(const struct odbc_session *s, const char *a, const char *b)
{
    return strcmp(a, b) == 0 || (s->fold_columns && strcasecmp(a, b) == 0);
}

dw_errcode dw_odbc_check_table(struct dw_session *base, const char *table,
                                   const char *const *columns, size_t ncolumns,
                                   struct dw_error *err)
{
    struct odbc_session *s = (struct odbc_session *) base;
    const struct odbc_table *t = NULL;
    struct dw_buf missing;
    size_t nmissing = 0;
    dw_errcode rc;

    if ((rc = idle(s, "check a table", err)) != DW_OK)
        return rc;
    rc = dw_odbc_table(s, table, true, &t, err);
    end_read(s);
    if (rc != DW_OK) {
        dw_error_prefix(err, "could not check table \"%s\" on the target", table);
        return rc;
    }
    if (!t)
        return dw_error_set(err, DW_ERR_CONFIG, "table \"%s\" does not exist on the target", table);
    dw_buf_init(&missing);
    for (size_t i = 0; i < ncolumns; i++) {
        bool found = false;

        for (size_t c = 0; c < t->ncols && !found; c++)
            found = same_column(s, t->cols[c].name, columns[i]);
        if (!found) {
            dw_buf_printf(&missing, "%s\"%s\"", nmissing ? ", " : "", columns[i]);
            nmissing++;
        }
    }
    if (nmissing) {
        rc = dw_error_set(err, DW_ERR_CONFIG, "table \"%s\" on the target has no column%s %s",
                          table, nmissing > 1 ? "s" : "", missing.data ? missing.data : "");
        if (!s->fold_columns)
            dw_error_hint(err, "Column names are case-sensitive: they are quoted as the map "
                          "spells them.");
    }
    dw_buf_cleanup(&missing);
    return rc;
}

/* Does the list of names (n of them, each at most 128 bytes) equal the key as a set? */
static bool same_set(const struct odbc_session *s, char names[][129], size_t n,
                     const char *const *key, size_t nkey)
{
    if (n != nkey)
        return false;
    for (size_t k = 0; k < nkey; k++) {
        bool found = false;

        for (size_t i = 0; i < n && !found; i++)
            found = same_column(s, names[i], key[k]);
        if (!found)
            return false;
    }
    return true;
}

/* Primary key, then each unique index: does one cover exactly the key? */
static dw_errcode find_unique(struct odbc_session *s, const char *cat, const char *sch,
                              const char *name, const char *const *key, size_t nkey, bool *ok,
                              struct dw_error *err)
{
    char (*cols)[129] = calloc(nkey + 1, sizeof(*cols));
    char index[129] = "", col[129], idx[129];
    size_t n = 0;
    SQLLEN len, ilen, nlen;
    SQLSMALLINT type;
    SQLRETURN r;

    *ok = false;
    if (!cols)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    r = SQLPrimaryKeys(s->direct, (SQLCHAR *) (cat[0] ? cat : NULL), cat[0] ? SQL_NTS : 0,
                       (SQLCHAR *) (sch[0] ? sch : NULL), sch[0] ? SQL_NTS : 0,
                       (SQLCHAR *) name, SQL_NTS);
    if (SQL_SUCCEEDED(r)) {
        while (SQL_SUCCEEDED(SQLFetch(s->direct))) {
            if (SQL_SUCCEEDED(SQLGetData(s->direct, 4, SQL_C_CHAR, col, sizeof(col), &len)) &&
                len != SQL_NULL_DATA && n <= nkey)
                snprintf(cols[n++], sizeof(cols[0]), "%s", col);
        }
        *ok = same_set(s, cols, n, key, nkey);
    }
    SQLFreeStmt(s->direct, SQL_CLOSE);
    if (*ok) {
        free(cols);
        return DW_OK;
    }
    r = SQLStatistics(s->direct, (SQLCHAR *) (cat[0] ? cat : NULL), cat[0] ? SQL_NTS : 0,
                      (SQLCHAR *) (sch[0] ? sch : NULL), sch[0] ? SQL_NTS : 0, (SQLCHAR *) name,
                      SQL_NTS, SQL_INDEX_UNIQUE, SQL_QUICK);
    if (!SQL_SUCCEEDED(r)) {
        dw_errcode rc = dw_odbc_error(s, SQL_HANDLE_STMT, s->direct, r, "reading the indexes",
                                      err);

        SQLFreeStmt(s->direct, SQL_CLOSE);
        free(cols);
        return rc;
    }
    n = 0;
    /* rows come ordered by index name, then column position */
    while (!*ok && SQL_SUCCEEDED(SQLFetch(s->direct))) {
        if (!SQL_SUCCEEDED(SQLGetData(s->direct, 7, SQL_C_SSHORT, &type, 0, &len)) ||
            type == SQL_TABLE_STAT)
            continue;
        if (!SQL_SUCCEEDED(SQLGetData(s->direct, 6, SQL_C_CHAR, idx, sizeof(idx), &ilen)) ||
            ilen == SQL_NULL_DATA)
            idx[0] = '\0';
        if (!SQL_SUCCEEDED(SQLGetData(s->direct, 9, SQL_C_CHAR, col, sizeof(col), &nlen)) ||
            nlen == SQL_NULL_DATA)
            continue;
        if (strcmp(idx, index) != 0) {
            *ok = same_set(s, cols, n, key, nkey);
            snprintf(index, sizeof(index), "%s", idx);
            n = 0;
        }
        if (n <= nkey)
            snprintf(cols[n++], sizeof(cols[0]), "%s", col);
    }
    if (!*ok && index[0])
        *ok = same_set(s, cols, n, key, nkey);
    SQLFreeStmt(s->direct, SQL_CLOSE);
    free(cols);
    return DW_OK;
}

dw_errcode dw_odbc_check_key(struct dw_session *base, const char *table,
                                 const char *const *key, size_t nkey, struct dw_error *err)
{
    struct odbc_session *s = (struct odbc_session *) base;
    char cat[129], sch[129], name[129];
    struct dw_buf cols;
    dw_errcode rc;
    bool ok = false;

    if ((rc = idle(s, "check a table", err)) != DW_OK)
        return rc;
    dw_odbc_split_table(s, table, cat, sizeof(cat), sch, sizeof(sch), name, sizeof(name));
    rc = find_unique(s, cat, sch, name, key, nkey, &ok, err);
    end_read(s);
    if (rc != DW_OK) {
        dw_error_prefix(err, "could not check the key of table \"%s\" on the target", table);
        return rc;
    }
    if (ok)
        return DW_OK;
    dw_buf_init(&cols);
    for (size_t k = 0; k < nkey; k++)
        dw_buf_printf(&cols, "%s\"%s\"", k ? ", " : "", key[k]);
    rc = dw_error_set(err, DW_ERR_CONFIG,
                      "table \"%s\" on the target has no primary key or unique index on the key "
                      "(%s)", table, cols.data ? cols.data : "");
    switch (s->dialect) {
    case ODBC_UPSERT_ON_CONFLICT:
        dw_error_hint(err, "Upserts use INSERT ... ON CONFLICT, which needs a unique index or "
                      "constraint on exactly the key columns.");
        break;
    case ODBC_UPSERT_ON_DUPLICATE_KEY:
        dw_error_hint(err, "Upserts use INSERT ... ON DUPLICATE KEY UPDATE, which finds the row "
                      "through a primary key or unique index on the key columns.");
        break;
    case ODBC_UPSERT_UPDATE_INSERT:
        dw_error_hint(err, "Upserts update by the key and insert when no row matched; without a "
                      "unique index on the key a row could be inserted twice.");
        break;
    }
    dw_buf_cleanup(&cols);
    return rc;
}

