/*
 * The ODBC test targets (see odbc_targets.h): starting them, their tables,
 * and the SQL each one needs to show what landed.
 */
#include "tests/integration/odbc_targets.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/common/dw_cunit.h"

struct target sqlite_t = {.label = "sqlite"}, maria_t = {.label = "mariadb"},
              pg_t = {.label = "postgresql"};
struct dw_mariadb maria;
static struct dw_pg_cluster pgc;
const struct dw_connector_ops *odbc;

const char *const order_cols[4] = {"id", "status", "total", "note"};
const char *const order_key[1] = {"id"};
const char *const line_cols[3] = {"order_id", "line", "qty"};
const char *const line_key[2] = {"order_id", "line"};
const char *const tag_cols[1] = {"name"};
const char *const uniq_cols[2] = {"id", "code"};
const char *const type_cols[10] = {"id", "i", "b", "d", "f", "dt", "ts", "tz", "bo", "t"};

static const char *const quoted_std[] = {"Item Id", "Name", "select", "we\"ird"};
static const char *const quoted_maria[] = {"Item Id", "Name", "select", "we`ird"};

static const struct target *current;

/*
 * LeakSanitizer (sanitizer builds) reads this: MariaDB Connector/ODBC 3.1
 * loses 1 KiB per connection that allows several statements (see
 * tests/fixtures/valgrind-odbc.supp), not ours to fix.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libmaodbc.so\n";
}

/* ---------------------------------------------------------------- helpers */

struct dw_connector_config *make_cfg(struct tcfg *c, const char *cs, dw_commit_mode mode,
                                     long timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->setting.key = "connection_string";
    c->setting.value = cs;
    c->cfg.name = "target";
    c->cfg.type = "odbc";
    c->cfg.commit = mode;
    c->cfg.nsettings = cs ? 1 : 0;
    c->cfg.settings = &c->setting;
    c->cfg.timeout_ms = timeout_ms;
    return &c->cfg;
}

void print_err(const char *what, const struct dw_error *err)
{
    fprintf(stderr, "\n    [%s] %s: [%s] %s (detail: %s) (context: %s)\n",
            current ? current->label : "-", what, err->sqlstate, err->message, err->detail,
            err->context);
}

struct dw_session *open_t(struct tcfg *c, const struct target *t, dw_commit_mode mode)
{
    struct dw_session *s = NULL;
    struct dw_error err;

    dw_error_clear(&err);
    if (odbc->open(make_cfg(c, t->connstr, mode, 20000), &s, &err) != DW_OK)
        print_err("open", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

dw_errcode run_batch(struct dw_session *s, const struct dw_target_op *ops, size_t n,
                     const char *gid, struct dw_error *err)
{
    dw_errcode rc;

    dw_error_clear(err);
    rc = odbc->begin(s, gid ? gid : "1:2:3", err);
    if (rc == DW_OK)
        rc = odbc->apply(s, ops, n, err);
    if (rc == DW_OK)
        rc = gid ? odbc->prepare(s, gid, err) : odbc->commit(s, err);
    if (rc != DW_OK)
        odbc->rollback(s);
    return rc;
}

void expect_batch_ok(struct dw_session *s, const struct dw_target_op *ops, size_t n,
                     const struct target *t)
{
    struct dw_error err;
    dw_errcode rc;

    current = t;
    rc = run_batch(s, ops, n, NULL, &err);
    if (rc != DW_OK)
        print_err("batch", &err);
    CU_ASSERT_EQUAL(rc, DW_OK);
    CU_ASSERT_EQUAL(s->failed_op, -1);
}

const char *tval(const struct target *t, const char *fmt, ...)
{
    char *sql = NULL;
    const char *v;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&sql, fmt, ap) < 0)
        exit(1);
    va_end(ap);
    v = dw_odbc_value(t->admin, "%s", sql);
    free(sql);
    return v ? v : "(null)";
}

void for_each_target(void (*fn)(struct target *t))
{
    struct target *all[] = {&sqlite_t, &maria_t, &pg_t};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (!all[i]->available)
            continue;
        current = all[i];
        fn(all[i]);
    }
    current = NULL;
}

/* ---------------------------------------------------------------- what landed */

static void sqlite_types(struct target *t, const char *hex)
{
    DW_ASSERT_STREQ(tval(t, "SELECT typeof(id)||','||i||','||b||','||typeof(b)||','||d||','||"
                            "typeof(d)||','||f||','||dt||','||ts||','||tz||','||bo||','||"
                            "typeof(bo) FROM types WHERE id = 1"),
                    "integer,-7,9223372036854775807,integer,12.5,real,0.1,2024-03-01,"
                    "2024-03-01 10:00:00.123456,2024-03-01 09:00:00.5,1,integer");
    DW_ASSERT_STREQ(tval(t, "SELECT hex(t) FROM types WHERE id = 1"), hex);
    DW_ASSERT_STREQ(tval(t, "SELECT bo||','||typeof(i)||','||typeof(t)||','||typeof(tz) "
                            "FROM types WHERE id = 2"), "0,null,null,null");
}

static void sqlite_types2(struct target *t)
{
    DW_ASSERT_STREQ(tval(t, "SELECT i||','||b||','||d||','||f||','||dt||','||ts||','||tz||','||"
                            "bo||','||typeof(t) FROM types WHERE id = 1"),
                    "8,-9223372036854775808,-0.01,-1.5e+300,1999-12-31,2024-02-29 23:59:59,"
                    "2024-03-01 00:30:00,0,null");
}

static void maria_types(struct target *t, const char *hex)
{
    char expect[400];

    /* UNIX_TIMESTAMP: the instant, whatever the checking session's time zone */
    snprintf(expect, sizeof(expect), "1,-7,9223372036854775807,12.50,0.1,2024-03-01,"
             "2024-03-01 10:00:00.123456,1709283600.500000,1,%s", hex);
    DW_ASSERT_STREQ(tval(t, "SELECT CONCAT_WS(',', id, i, b, d, f, dt, ts, UNIX_TIMESTAMP(tz), "
                            "bo, HEX(t)) FROM types WHERE id = 1"), expect);
    DW_ASSERT_STREQ(tval(t, "SELECT CONCAT_WS(',', bo, ISNULL(i), ISNULL(t), ISNULL(tz)) "
                            "FROM types WHERE id = 2"), "0,1,1,1");
}

static void maria_types2(struct target *t)
{
    DW_ASSERT_STREQ(tval(t, "SELECT CONCAT_WS(',', i, b, d, f, dt, ts, UNIX_TIMESTAMP(tz), bo, "
                            "ISNULL(t)) FROM types WHERE id = 1"),
                    "8,-9223372036854775808,-0.01,-1.5e300,1999-12-31,2024-02-29 23:59:59.000000,"
                    "1709253000.000000,0,1");
}

static void pg_types(struct target *t, const char *hex)
{
    char expect[400];

    snprintf(expect, sizeof(expect), "1,-7,9223372036854775807,12.50,0.1,2024-03-01,"
             "2024-03-01 10:00:00.123456,1709283600.500000,t,%s", hex);
    DW_ASSERT_STREQ(tval(t, "SELECT concat_ws(',', id, i, b, d, f, dt, ts, "
                            "extract(epoch FROM tz), bo, "
                            "upper(encode(convert_to(t, 'UTF8'), 'hex'))) FROM types WHERE id = 1"),
                    expect);
    DW_ASSERT_STREQ(tval(t, "SELECT concat_ws(',', bo, i IS NULL, t IS NULL, tz IS NULL) "
                            "FROM types WHERE id = 2"), "f,t,t,t");
}

static void pg_types2(struct target *t)
{
    DW_ASSERT_STREQ(tval(t, "SELECT concat_ws(',', i, b, d, f, dt, ts, extract(epoch FROM tz), "
                            "bo, t IS NULL) FROM types WHERE id = 1"),
                    "8,-9223372036854775808,-0.01,-1.5e+300,1999-12-31,2024-02-29 23:59:59,"
                    "1709253000.000000,f,t");
}

/* ---------------------------------------------------------------- setup */

static void common_tables(struct target *t, const char *suffix)
{
    dw_odbc_sql(t->admin, "CREATE TABLE orders (id INT PRIMARY KEY, status VARCHAR(40) NOT NULL "
                          "CHECK (status <> 'bad'), total DECIMAL(12,2), note TEXT)%s", suffix);
    dw_odbc_sql(t->admin, "CREATE TABLE order_lines (order_id INT, line INT, qty INT CHECK (qty > 0), "
                          "PRIMARY KEY (order_id, line))%s", suffix);
    dw_odbc_sql(t->admin, "CREATE TABLE tags (name VARCHAR(40) PRIMARY KEY)%s", suffix);
    dw_odbc_sql(t->admin, "CREATE TABLE uniq (id INT PRIMARY KEY, code VARCHAR(20) UNIQUE)%s",
                suffix);
}

static void setup_sqlite(void)
{
    struct target *t = &sqlite_t;

    dw_sqlite_connstr("target.sqlite", t->connstr, sizeof(t->connstr));
    t->admin = dw_odbc_conn_open(t->connstr);
    common_tables(t, "");
    dw_odbc_sql(t->admin, "CREATE TABLE types (id INTEGER PRIMARY KEY, i INTEGER, b BIGINT, "
                          "d NUMERIC(12,2), f DOUBLE, dt DATE, ts TIMESTAMP, tz TIMESTAMP, "
                          "bo BOOLEAN, t TEXT)");
    dw_odbc_sql(t->admin, "CREATE TABLE \"Order \"\"Items\"\"\" (\"Item Id\" INT PRIMARY KEY, "
                          "\"Name\" TEXT, \"select\" TEXT, \"we\"\"ird\" TEXT)");
    t->quoted_table = "Order \"Items\"";
    t->quoted_cols = quoted_std;
    t->quoted_check = "SELECT \"Name\" || \"select\" FROM \"Order \"\"Items\"\"\"";
    t->quoted_count = "SELECT count(*) FROM \"Order \"\"Items\"\"\"";
    t->check_sqlstate = "HY000";
    t->check_message = "CHECK constraint failed";
    t->unique_sqlstate = "HY000";
    t->unique_message = "UNIQUE constraint failed: uniq.code";
    t->check_types = sqlite_types;
    t->check_types2 = sqlite_types2;
    t->available = true;
}

static void setup_maria(void)
{
    struct target *t = &maria_t;

    if (!dw_mariadb_start(&maria, NULL))
        exit(1);
    dw_mariadb_connstr(&maria, "dw", NULL, t->connstr, sizeof(t->connstr));
    t->admin = dw_odbc_conn_open(t->connstr);
    common_tables(t, " ENGINE=InnoDB");
    dw_odbc_sql(t->admin, "CREATE TABLE types (id INT PRIMARY KEY, i INT, b BIGINT, "
                          "d DECIMAL(12,2), f DOUBLE, dt DATE, ts DATETIME(6), "
                          "tz TIMESTAMP(6) NULL, bo BOOLEAN, t VARCHAR(200))");
    dw_odbc_sql(t->admin, "CREATE DATABASE `Sales Dept`");
    dw_odbc_sql(t->admin, "CREATE TABLE `Sales Dept`.`Order \"Items\"` (`Item Id` INT PRIMARY KEY, "
                          "`Name` TEXT, `select` TEXT, `we``ird` TEXT)");
    t->quoted_table = "Sales Dept.Order \"Items\"";
    t->quoted_cols = quoted_maria;
    t->quoted_check = "SELECT CONCAT(`Name`, `select`) FROM `Sales Dept`.`Order \"Items\"`";
    t->quoted_count = "SELECT count(*) FROM `Sales Dept`.`Order \"Items\"`";
    t->check_sqlstate = "23000";
    t->check_message = "CONSTRAINT `orders.status` failed";
    t->unique_sqlstate = "23000";
    t->unique_message = "Duplicate entry 'A' for key 'code'";
    t->check_types = maria_types;
    t->check_types2 = maria_types2;
    t->available = true;
}

static void setup_pg(void)
{
    struct target *t = &pg_t;
    const char *driver = dw_odbc_driver("postgresql");
    const char *script = getenv("DW_PGCLUSTER");

    if (!driver || !script || access(script, X_OK) != 0 ||
        access("/usr/lib/postgresql/15/bin/initdb", X_OK) != 0) {
        fprintf(stderr, "note: PostgreSQL through ODBC is not tested here (no driver or no "
                        "PostgreSQL 15)\n");
        return;
    }
    if (!dw_pg_cluster_start(&pgc, NULL, false))
        exit(1);
    snprintf(t->connstr, sizeof(t->connstr),
             "DRIVER={%s};SERVER=127.0.0.1;PORT=%d;DATABASE=postgres;UID=postgres;PWD=", driver,
             pgc.port);
    t->admin = dw_odbc_conn_open(t->connstr);
    common_tables(t, "");
    dw_odbc_sql(t->admin, "CREATE TABLE types (id int PRIMARY KEY, i int, b bigint, "
                          "d numeric(12,2), f float8, dt date, ts timestamp, tz timestamptz, "
                          "bo boolean, t text)");
    dw_odbc_sql(t->admin, "CREATE SCHEMA \"Sales Dept\"");
    dw_odbc_sql(t->admin, "CREATE TABLE \"Sales Dept\".\"Order \"\"Items\"\"\" (\"Item Id\" int "
                          "PRIMARY KEY, \"Name\" text, \"select\" text, \"we\"\"ird\" text)");
    t->quoted_table = "Sales Dept.Order \"Items\"";
    t->quoted_cols = quoted_std;
    t->quoted_check = "SELECT \"Name\" || \"select\" FROM \"Sales Dept\".\"Order \"\"Items\"\"\"";
    t->quoted_count = "SELECT count(*) FROM \"Sales Dept\".\"Order \"\"Items\"\"\"";
    t->check_sqlstate = "23514";
    t->check_message = "violates check constraint \"orders_status_check\"";
    t->unique_sqlstate = "23505";
    t->unique_message = "duplicate key value violates unique constraint \"uniq_code_key\"";
    t->check_types = pg_types;
    t->check_types2 = pg_types2;
    t->available = true;
}

void targets_start(bool with_pg)
{
    dw_odbc_require_sqlite();
    dw_odbc_require_mariadb();
    odbc = dw_connector_find("odbc");
    if (!odbc) {
        fprintf(stderr, "this build has no odbc connector\n");
        exit(1);
    }
    setup_sqlite();
    setup_maria();
    if (with_pg)
        setup_pg();
}

void targets_stop(void)
{
    struct target *all[] = {&sqlite_t, &maria_t, &pg_t};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        dw_odbc_conn_close(all[i]->admin);
        all[i]->admin = NULL;
    }
    dw_mariadb_stop(&maria);
    if (pg_t.available)
        dw_pg_cluster_stop(&pgc);
}
