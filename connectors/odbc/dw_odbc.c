/*
 * The ODBC connector's sessions: checking the configured connection string,
 * connecting, learning what the target is (SQLGetInfo: DBMS name and hence
 * the upsert dialect, the identifier quote, parameter arrays, catalog or
 * schema qualifiers), choosing one- or two-phase commit, setting the session
 * up, and the vtable.
 *
 * Two-phase commit is XA and only MariaDB has it here: such sessions run with
 * autocommit on (MariaDB refuses XA inside a regular transaction) and send
 * XA statements themselves; every other session runs in manual-commit mode,
 * one transaction per batch, ended with SQLEndTran.
 */
#include "connectors/odbc/dw_odbc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge/common/dw_log.h"
#include "connectors/odbc/dw_odbc_int.h"

static const char *const odbc_settings[] = {"connection_string", NULL};

/* The driver's read timeout waits this much longer than the server's statement timeout. */
#define READ_SLACK_S 2

/* ---------------------------------------------------------------- helpers */

const char *dw_odbc_name(const struct odbc_session *s)
{
    return s->base.config && s->base.config->name ? s->base.config->name : "?";
}

static void quote_n(const struct odbc_session *s, struct dw_buf *b, const char *name, size_t n)
{
    if (!s->quote) {
        dw_buf_append(b, name, n);
        return;
    }
    dw_buf_putc(b, s->quote);
    for (size_t i = 0; i < n; i++) {
        if (name[i] == s->quote)
            dw_buf_putc(b, s->quote);
        dw_buf_putc(b, name[i]);
    }
    dw_buf_putc(b, s->quote);
}

void dw_odbc_quote_ident(const struct odbc_session *s, struct dw_buf *b, const char *name)
{
    quote_n(s, b, name, strlen(name));
}

void dw_odbc_quote_table(const struct odbc_session *s, struct dw_buf *b, const char *table)
{
    const char *dot = strchr(table, '.');

    if (dot) {
        quote_n(s, b, table, (size_t) (dot - table));
        dw_buf_putc(b, '.');
        table = dot + 1;
    }
    dw_odbc_quote_ident(s, b, table);
}

static long timeout_s(const struct odbc_session *s)
{
    long ms = s->base.config ? s->base.config->timeout_ms : 0;

    return ms > 0 ? (ms + 999) / 1000 : 0;
}

dw_errcode dw_odbc_exec(struct odbc_session *s, const char *sql, struct dw_error *err)
{
    SQLRETURN r;

    if (!s->connected || !s->direct)
        return dw_odbc_lost(s, "running a statement", err);
    dw_odbc_call_start(s);
    r = SQLExecDirect(s->direct, (SQLCHAR *) sql, SQL_NTS);
    if (r != SQL_NO_DATA && !SQL_SUCCEEDED(r)) {
        dw_errcode rc = dw_odbc_error(s, SQL_HANDLE_STMT, s->direct, r, "running a statement",
                                      err);

        SQLFreeStmt(s->direct, SQL_CLOSE);
        return rc;
    }
    SQLFreeStmt(s->direct, SQL_CLOSE);
    return DW_OK;
}

static void get_info_str(SQLHDBC dbc, SQLUSMALLINT what, char *buf, size_t size)
{
    SQLSMALLINT len = 0;

    buf[0] = '\0';
    if (!SQL_SUCCEEDED(SQLGetInfo(dbc, what, buf, (SQLSMALLINT) size, &len)))
        buf[0] = '\0';
    buf[size - 1] = '\0';
}

static SQLUINTEGER get_info_uint(SQLHDBC dbc, SQLUSMALLINT what)
{
    SQLUINTEGER v = 0;

    if (!SQL_SUCCEEDED(SQLGetInfo(dbc, what, &v, sizeof(v), NULL)))
        return 0;
    return v;
}

/* SQLite's ON CONFLICT upsert arrived in 3.24. */
static bool sqlite_has_upsert(const char *version)
{
    int major = 0, minor = 0;

    if (sscanf(version, "%d.%d", &major, &minor) < 2)
        return true;
    return major > 3 || (major == 3 && minor >= 24);
}

/* What the target is, from the driver (no round trip for most drivers). */
static void learn_target(struct odbc_session *s)
{
    char quote[8];
    SQLUINTEGER rowcounts;
    SQLUSMALLINT has = SQL_FALSE;

    get_info_str(s->dbc, SQL_DBMS_NAME, s->dbms, sizeof(s->dbms));
    get_info_str(s->dbc, SQL_DBMS_VER, s->dbms_version, sizeof(s->dbms_version));
    get_info_str(s->dbc, SQL_DRIVER_NAME, s->driver, sizeof(s->driver));
    get_info_str(s->dbc, SQL_IDENTIFIER_QUOTE_CHAR, quote, sizeof(quote));
    get_info_str(s->dbc, SQL_SEARCH_PATTERN_ESCAPE, s->escape, sizeof(s->escape));

    if (strcasestr(s->dbms, "sqlite"))
        s->family = ODBC_FAMILY_SQLITE;
    else if (strcasestr(s->dbms, "mariadb") || strcasestr(s->dbms_version, "mariadb"))
        s->family = ODBC_FAMILY_MARIADB;
    else if (strcasestr(s->dbms, "mysql"))
        s->family = ODBC_FAMILY_MYSQL;
    else if (strcasestr(s->dbms, "postgres"))
        s->family = ODBC_FAMILY_POSTGRESQL;
    else
        s->family = ODBC_FAMILY_OTHER;

    switch (s->family) {
    case ODBC_FAMILY_SQLITE:
        s->dialect = sqlite_has_upsert(s->dbms_version) ? ODBC_UPSERT_ON_CONFLICT
                                                        : ODBC_UPSERT_UPDATE_INSERT;
        break;
    case ODBC_FAMILY_POSTGRESQL:
        s->dialect = ODBC_UPSERT_ON_CONFLICT;
        break;
    case ODBC_FAMILY_MARIADB:
    case ODBC_FAMILY_MYSQL:
        s->dialect = ODBC_UPSERT_ON_DUPLICATE_KEY;
        break;
    case ODBC_FAMILY_OTHER:
        s->dialect = ODBC_UPSERT_UPDATE_INSERT;
        break;
    }
    s->quote = quote[0] != ' ' ? quote[0] : '\0';
    /* arrays only where the driver reports what happened to each row */
    rowcounts = get_info_uint(s->dbc, SQL_PARAM_ARRAY_ROW_COUNTS);
    s->arrays = rowcounts == SQL_PARC_BATCH || rowcounts == SQL_PARC_NO_BATCH;
    if (SQL_SUCCEEDED(SQLGetFunctions(s->dbc, SQL_API_SQLDESCRIBEPARAM, &has)))
        s->describe = has == SQL_TRUE;
    s->normalize = s->family != ODBC_FAMILY_POSTGRESQL;
    s->fold_columns = s->family == ODBC_FAMILY_SQLITE || s->family == ODBC_FAMILY_MARIADB ||
                      s->family == ODBC_FAMILY_MYSQL;
    s->qualifier_is_catalog =
        !(get_info_uint(s->dbc, SQL_SCHEMA_USAGE) & SQL_SU_DML_STATEMENTS) &&
        (get_info_uint(s->dbc, SQL_CATALOG_USAGE) & SQL_CU_DML_STATEMENTS);
}

/* Session settings, one statement: the origin marker, UTC, and the statement timeout. */
static dw_errcode setup_session(struct odbc_session *s, struct dw_error *err)
{
    const struct dw_connector_config *cfg = s->base.config;
    long ms = cfg ? cfg->timeout_ms : 0;
    char sql[512];
    dw_errcode rc;

    switch (s->family) {
    case ODBC_FAMILY_MARIADB:
    case ODBC_FAMILY_MYSQL:
        /* timestamps arrive in UTC (see dw_odbc_normalize); TIMESTAMP columns take them so */
        snprintf(sql, sizeof(sql), "SET time_zone = '+00:00', @dualwrite_origin = 'dualwrite'");
        if (ms > 0 && s->family == ODBC_FAMILY_MARIADB)
            snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
                     ", max_statement_time = %ld.%03ld, innodb_lock_wait_timeout = %ld", ms / 1000,
                     ms % 1000, timeout_s(s));
        break;
    case ODBC_FAMILY_POSTGRESQL:
        snprintf(sql, sizeof(sql),
                 "SELECT pg_catalog.set_config('dualwrite.origin', 'dualwrite', false), "
                 "pg_catalog.set_config('timezone', 'UTC', false), "
                 "pg_catalog.set_config('datestyle', 'ISO', false)");
        if (ms > 0)
            snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
                     ", pg_catalog.set_config('statement_timeout', '%ld', false)", ms);
        break;
    default:
        return DW_OK;
    }
    rc = dw_odbc_exec(s, sql, err);
    if (rc == DW_OK && !s->xa && !SQL_SUCCEEDED(SQLEndTran(SQL_HANDLE_DBC, s->dbc, SQL_COMMIT)))
        rc = dw_odbc_error(s, SQL_HANDLE_DBC, s->dbc, SQL_ERROR, "setting up the session", err);
    if (rc != DW_OK)
        dw_error_prefix(err, "could not set up the target session");
    return rc;
}

void dw_odbc_disconnect(struct odbc_session *s)
{
    dw_odbc_stmts_release(s);
    if (s->direct) {
        SQLFreeHandle(SQL_HANDLE_STMT, s->direct);
        s->direct = NULL;
    }
    if (s->dbc) {
        if (s->connected)
            SQLDisconnect(s->dbc);
        SQLFreeHandle(SQL_HANDLE_DBC, s->dbc);
        s->dbc = NULL;
    }
    s->connected = false;
    s->txn_open = false;
    s->xa_state = ODBC_XA_NONE;
}

dw_errcode dw_odbc_connect(struct odbc_session *s, struct dw_error *err)
{
    long secs = timeout_s(s);
    SQLRETURN r;
    dw_errcode rc;

    if (s->connected)
        dw_odbc_disconnect(s);
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_DBC, s->env, &s->dbc))) {
        s->dbc = NULL;
        return dw_error_set(err, DW_ERR_NOMEM, "could not allocate an ODBC connection handle");
    }
    if (secs > 0) {
        /* drivers that do not know these attributes say so; that is fine */
        SQLSetConnectAttr(s->dbc, SQL_ATTR_LOGIN_TIMEOUT, (SQLPOINTER) (SQLULEN) secs, 0);
        SQLSetConnectAttr(s->dbc, SQL_ATTR_CONNECTION_TIMEOUT, (SQLPOINTER) (SQLULEN) secs, 0);
    }
    r = SQLDriverConnect(s->dbc, NULL, (SQLCHAR *) s->connstr, SQL_NTS, NULL, 0, NULL,
                         SQL_DRIVER_NOPROMPT);
    if (!SQL_SUCCEEDED(r)) {
        rc = dw_odbc_error_as(s, SQL_HANDLE_DBC, s->dbc, DW_ERR_CONNECT,
                              "could not connect to the target", err);
        SQLFreeHandle(SQL_HANDLE_DBC, s->dbc);
        s->dbc = NULL;
        return rc;
    }
    s->connected = true;
    s->base.broken = false;
    learn_target(s);
    r = SQLSetConnectAttr(s->dbc, SQL_ATTR_AUTOCOMMIT,
                          (SQLPOINTER) (SQLULEN) (s->xa ? SQL_AUTOCOMMIT_ON : SQL_AUTOCOMMIT_OFF), 0);
    if (!SQL_SUCCEEDED(r)) {
        rc = dw_odbc_error_as(s, SQL_HANDLE_DBC, s->dbc, DW_ERR_CONNECT,
                              "could not switch the target session to manual commit", err);
        goto fail;
    }
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, s->dbc, &s->direct))) {
        s->direct = NULL;
        rc = dw_odbc_error_as(s, SQL_HANDLE_DBC, s->dbc, DW_ERR_CONNECT,
                              "could not allocate a statement on the target", err);
        goto fail;
    }
    if (secs > 0)
        SQLSetStmtAttr(s->direct, SQL_ATTR_QUERY_TIMEOUT, (SQLPOINTER) (SQLULEN) secs, 0);
    rc = setup_session(s, err);
    if (rc != DW_OK)
        goto fail;
    return DW_OK;
fail:
    dw_odbc_disconnect(s);
    return rc;
}

/*
 * "auto" logs its choice once per connector name (the pool opens many
 * sessions), and again if the target's answer changes.
 */
static void log_auto_choice(const struct odbc_session *s)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static struct {
        char name[64];
        bool xa;
    } seen[32];
    static size_t nseen;
    const char *name = dw_odbc_name(s);
    bool log = true;

    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nseen; i++) {
        if (strcmp(seen[i].name, name) == 0) {
            log = seen[i].xa != s->xa;
            seen[i].xa = s->xa;
            goto out;
        }
    }
    if (nseen < sizeof(seen) / sizeof(seen[0])) {
        snprintf(seen[nseen].name, sizeof(seen[nseen].name), "%s", name);
        seen[nseen].xa = s->xa;
        nseen++;
    }
out:
    pthread_mutex_unlock(&lock);
    if (!log)
        return;
    if (s->xa)
        dw_info("connector \"%s\": commit \"auto\" uses two-phase commit (XA on %s %s)", name,
                s->dbms, s->dbms_version);
    else
        dw_info("connector \"%s\": commit \"auto\" uses one-phase commit (%s has no two-phase "
                "commit through this connector)", name, s->dbms[0] ? s->dbms : "the target");
}

/* ---------------------------------------------------------------- check */

/* Is driver registered with the driver manager (or, given as a path, a file)? */
static bool driver_known(SQLHENV env, const char *driver, struct dw_buf *known)
{
    SQLCHAR name[256], attrs[1024];
    SQLSMALLINT nlen, alen;
    SQLUSMALLINT dir = SQL_FETCH_FIRST;
    bool found = false;

    if (strchr(driver, '/'))
        return access(driver, R_OK) == 0;
    while (SQL_SUCCEEDED(SQLDrivers(env, dir, name, sizeof(name), &nlen, attrs, sizeof(attrs),
                                    &alen))) {
        dir = SQL_FETCH_NEXT;
        if (strcasecmp((char *) name, driver) == 0)
            found = true;
        dw_buf_printf(known, "%s\"%s\"", known->len ? ", " : "", (char *) name);
    }
    return found;
}

static bool dsn_known(SQLHENV env, const char *dsn)
{
    SQLCHAR name[256], desc[512];
    SQLSMALLINT nlen, dlen;
    SQLUSMALLINT dir = SQL_FETCH_FIRST;

    while (SQL_SUCCEEDED(SQLDataSources(env, dir, name, sizeof(name), &nlen, desc, sizeof(desc),
                                        &dlen))) {
        dir = SQL_FETCH_NEXT;
        if (strcasecmp((char *) name, dsn) == 0)
            return true;
    }
    return false;
}

static dw_errcode odbc_check(const struct dw_connector_config *cfg, struct dw_error *err)
{
    const char *cs = dw_connector_setting(cfg, "connection_string");
    char msg[200];
    char *driver = NULL, *dsn = NULL;
    SQLHENV env = NULL;
    dw_errcode rc = DW_OK;

    if (!cs || !*cs)
        return dw_error_set(err, DW_ERR_CONFIG,
                            "\"connection_string\" is required for type \"odbc\"");
    if (!dw_odbc_connstr_valid(cs, msg, sizeof(msg)))
        return dw_error_set(err, DW_ERR_CONFIG,
                            "\"connection_string\" is not a valid ODBC connection string: %s", msg);
    driver = dw_odbc_connstr_get(cs, "DRIVER");
    dsn = dw_odbc_connstr_get(cs, "DSN");
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &env))) {
        rc = dw_error_set(err, DW_ERR_INTERNAL, "could not allocate an ODBC environment");
        goto out;
    }
    SQLSetEnvAttr(env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER) SQL_OV_ODBC3, 0);
    if (driver && *driver) {
        struct dw_buf known;

        dw_buf_init(&known);
        if (!driver_known(env, driver, &known)) {
            rc = dw_error_set(err, DW_ERR_CONFIG,
                              "\"connection_string\": ODBC driver \"%s\" is not installed", driver);
            if (known.len)
                dw_error_detail(err, "The driver manager knows %s.", known.data);
            else
                dw_error_detail(err, "The driver manager knows no driver at all.");
            dw_error_hint(err, "\"odbcinst -q -d\" lists the installed drivers; install the "
                          "driver's package (odbc-mariadb, libsqliteodbc, ...).");
        }
        dw_buf_cleanup(&known);
    } else if (dsn && *dsn && !dsn_known(env, dsn)) {
        rc = dw_error_set(err, DW_ERR_CONFIG,
                          "\"connection_string\": ODBC data source \"%s\" is not defined", dsn);
        dw_error_hint(err, "\"odbcinst -q -s\" lists the data sources in odbc.ini; or name the "
                      "driver with DRIVER={...} instead.");
    }
out:
    if (env)
        SQLFreeHandle(SQL_HANDLE_ENV, env);
    free(driver);
    free(dsn);
    return rc;
}

/* ---------------------------------------------------------------- open and close */

static void wipe_free(char *p)
{
    if (p) {
        volatile char *v = p;

        while (*v)
            *v++ = '\0';
        free(p);
    }
}

static void odbc_close(struct dw_session *base)
{
    struct odbc_session *s = (struct odbc_session *) base;

    if (!s)
        return;
    dw_odbc_disconnect(s);
    dw_odbc_stmts_cleanup(s);
    if (s->env)
        SQLFreeHandle(SQL_HANDLE_ENV, s->env);
    wipe_free(s->connstr);
    wipe_free(s->password);
    free(s);
}

static dw_errcode odbc_open(const struct dw_connector_config *cfg, struct dw_session **out,
                            struct dw_error *err)
{
    const char *cs = dw_connector_setting(cfg, "connection_string");
    struct odbc_session *s;
    dw_errcode rc;

    *out = NULL;
    if (!cs || !*cs)
        return dw_error_set(err, DW_ERR_CONFIG,
                            "\"connection_string\" is required for type \"odbc\"");
    s = calloc(1, sizeof(*s));
    if (!s)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    s->base.ops = &dw_odbc_connector;
    s->base.config = cfg;
    s->base.failed_op = -1;
    dw_buf_init(&s->sql);
    /* MariaDB's driver only knows its own timeouts: the server's fires first, with a message */
    s->connstr = dw_odbc_connstr_with_timeouts(cs, timeout_s(s), timeout_s(s) + READ_SLACK_S);
    s->password = dw_odbc_connstr_get(cs, "PWD");
    if (!s->password)
        s->password = dw_odbc_connstr_get(cs, "PASSWORD");
    if (!s->connstr) {
        rc = dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &s->env))) {
        s->env = NULL;
        rc = dw_error_set(err, DW_ERR_INTERNAL, "could not allocate an ODBC environment");
        goto fail;
    }
    SQLSetEnvAttr(s->env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER) SQL_OV_ODBC3, 0);
    rc = dw_odbc_connect(s, err);
    if (rc != DW_OK)
        goto fail;

    switch (cfg->commit) {
    case DW_COMMIT_TWO_PHASE:
        if (s->family != ODBC_FAMILY_MARIADB) {
            rc = dw_error_set(err, DW_ERR_CONFIG,
                              "cannot use commit \"two-phase\": the target is %s, and this "
                              "connector has two-phase commit (XA) only for MariaDB",
                              s->dbms[0] ? s->dbms : "an unknown DBMS");
            if (s->family == ODBC_FAMILY_POSTGRESQL)
                dw_error_hint(err, "Use a connector of type \"pg\" for PostgreSQL targets, or "
                              "commit \"auto\" or \"one-phase\".");
            else
                dw_error_hint(err, "Use commit \"auto\" or \"one-phase\".");
            goto fail;
        }
        s->xa = true;
        break;
    case DW_COMMIT_ONE_PHASE:
        s->xa = false;
        break;
    case DW_COMMIT_AUTO:
        s->xa = s->family == ODBC_FAMILY_MARIADB;
        log_auto_choice(s);
        break;
    }
    if (s->xa && !SQL_SUCCEEDED(SQLSetConnectAttr(s->dbc, SQL_ATTR_AUTOCOMMIT,
                                                  (SQLPOINTER) SQL_AUTOCOMMIT_ON, 0))) {
        rc = dw_odbc_error_as(s, SQL_HANDLE_DBC, s->dbc, DW_ERR_CONNECT,
                              "could not switch the target session to autocommit for XA", err);
        goto fail;
    }
    s->base.two_phase = s->xa;
    dw_debug("connector \"%s\": connected to %s %s through %s (%s upserts, %s)", dw_odbc_name(s),
             s->dbms, s->dbms_version, s->driver,
             s->dialect == ODBC_UPSERT_ON_CONFLICT       ? "ON CONFLICT"
             : s->dialect == ODBC_UPSERT_ON_DUPLICATE_KEY ? "ON DUPLICATE KEY"
                                                          : "UPDATE-then-INSERT",
             s->arrays ? "parameter arrays" : "row by row");
    *out = &s->base;
    return DW_OK;
fail:
    odbc_close(&s->base);
    return rc;
}

const struct dw_connector_ops dw_odbc_connector = {
    .type = "odbc",
    .settings = odbc_settings,
    .check = odbc_check,
    .open = odbc_open,
    .check_table = dw_odbc_check_table,
    .begin = dw_odbc_begin,
    .apply = dw_odbc_apply,
    .prepare = dw_odbc_prepare,
    .commit = dw_odbc_commit,
    .rollback = dw_odbc_rollback,
    .resolve_prepared = dw_odbc_resolve_prepared,
    .list_prepared = dw_odbc_list_prepared,
    .close = odbc_close,
    .check_key = dw_odbc_check_key,
};
