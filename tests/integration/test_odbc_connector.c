/*
 * The ODBC connector against real targets: an SQLite file (libsqliteodbc), a
 * MariaDB server from the fixtures (odbc-mariadb) and, where its driver is
 * installed, a PostgreSQL cluster (odbc-postgresql).
 *
 * For every target: upserts and deletes in one transaction, 1000-operation
 * batches, composite keys, identifiers that need quoting, a round trip of
 * every common type, constraint violations with the driver's SQLSTATE and
 * the failing operation, rollback, the catalog checks.  For MariaDB also XA
 * (prepare, list, resolve; a kill -9 of the server with a prepared
 * transaction), a killed connection, a statement timeout.  And the pieces
 * without a server: configuration checks, masking of secrets, the rewriting
 * of values, connection strings.  XA, a crashed server and the generic
 * UPDATE-then-INSERT dialect are in test_odbc_connector_xa.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge/common/dw_log.h"
#include "connectors/dw_connector.h"
#include "connectors/odbc/dw_odbc_int.h"
#include "tests/fixtures/dw_fixture.h"
#include "tests/fixtures/dw_fixture_odbc.h"
#include "tests/integration/odbc_targets.h"
#include "tests/unit/common/dw_cunit.h"

/* ---- tests ---- */

static void test_registry(void)
{
    const char *const *types = dw_connector_types();
    bool listed = false;

    CU_ASSERT_PTR_EQUAL(dw_connector_find("odbc"), odbc);
    for (size_t i = 0; types[i]; i++)
        listed = listed || strcmp(types[i], "odbc") == 0;
    CU_ASSERT_TRUE(listed);
    DW_ASSERT_STREQ(odbc->settings[0], "connection_string");
    CU_ASSERT_PTR_NULL(odbc->settings[1]);
}

static void expect_check(const char *cs, dw_errcode code, const char *needle)
{
    struct tcfg c;
    struct dw_error err;

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->check(make_cfg(&c, cs, DW_COMMIT_AUTO, 5000), &err), code);
    if (needle)
        DW_ASSERT_CONTAINS(err.message, needle);
    CU_ASSERT_PTR_NULL(strstr(err.message, "Sup3rSecret"));
    CU_ASSERT_PTR_NULL(strstr(err.detail, "Sup3rSecret"));
}

static void test_check_config(void)
{
    char cs[600];

    expect_check(NULL, DW_ERR_CONFIG, "\"connection_string\" is required for type \"odbc\"");
    expect_check("", DW_ERR_CONFIG, "is required");
    expect_check("DRIVER={SQLite3;Database=/x;PWD={Sup3rSecret", DW_ERR_CONFIG,
                 "the value of \"DRIVER\" opens a \"{\" that is never closed");
    expect_check("Database=/tmp/x.db;PWD=Sup3rSecret", DW_ERR_CONFIG,
                 "it names neither a DRIVER nor a DSN");
    expect_check("DRIVER={No Such Driver};PWD=Sup3rSecret", DW_ERR_CONFIG,
                 "ODBC driver \"No Such Driver\" is not installed");
    expect_check("DSN=no_such_dsn;PWD=Sup3rSecret", DW_ERR_CONFIG,
                 "ODBC data source \"no_such_dsn\" is not defined");
    expect_check(sqlite_t.connstr, DW_OK, NULL);
    snprintf(cs, sizeof(cs), "Driver={%s} ; Database=/tmp/none.db;PWD={Sup3rSecret;}}x}",
             dw_odbc_driver("sqlite"));
    expect_check(cs, DW_OK, NULL);
    {
        struct tcfg c;
        struct dw_error err;

        /* the unknown driver's message lists the installed ones */
        dw_error_clear(&err);
        odbc->check(make_cfg(&c, "DRIVER={Nope}", DW_COMMIT_AUTO, 0), &err);
        DW_ASSERT_CONTAINS(err.detail, dw_odbc_driver("sqlite"));
        CU_ASSERT(err.hint[0] != '\0');
    }
}

static void test_secrets_masked(void)
{
    char text[256];
    char *v;

    snprintf(text, sizeof(text), "login failed: DRIVER={X};UID=dw;PWD=Sup3rSecret;SERVER=h");
    dw_odbc_mask(text, sizeof(text), NULL);
    DW_ASSERT_STREQ(text, "login failed: DRIVER={X};UID=dw;PWD=***;SERVER=h");
    snprintf(text, sizeof(text), "a Password = {Sup3r;Secret} b, pwd=x y");
    dw_odbc_mask(text, sizeof(text), NULL);
    DW_ASSERT_STREQ(text, "a Password = *** b, pwd=*** y");
    snprintf(text, sizeof(text), "the driver said: 'Sup3rSecret' is wrong");
    dw_odbc_mask(text, sizeof(text), "Sup3rSecret");
    DW_ASSERT_STREQ(text, "the driver said: '***' is wrong");
    /* a short password is only masked after PWD= (it would hit ordinary words) */
    snprintf(text, sizeof(text), "pwd=ab; about");
    dw_odbc_mask(text, sizeof(text), "ab");
    DW_ASSERT_STREQ(text, "pwd=***; about");

    v = dw_odbc_connstr_get("DRIVER={A};PWD={x;}}y} ;UID=u", "pwd");
    DW_ASSERT_STREQ(v, "x;}y");
    free(v);
    v = dw_odbc_connstr_with_multi_statements("DSN=a;OPTION=3;PWD={p;q}");
    DW_ASSERT_STREQ(v, "DSN=a;OPTION=67108867;PWD={p;q}");
    free(v);
    v = dw_odbc_connstr_with_timeouts("DRIVER={MariaDB Unicode};READ_TIMEOUT=9;", 5, 7);
    DW_ASSERT_STREQ(v, "DRIVER={MariaDB Unicode};READ_TIMEOUT=9;CONN_TIMEOUT=5;WRITE_TIMEOUT=7");
    free(v);
    v = dw_odbc_connstr_with_timeouts("DRIVER={SQLite3};Database=/x", 5, 7);
    DW_ASSERT_STREQ(v, "DRIVER={SQLite3};Database=/x");
    free(v);
    v = dw_odbc_connstr_with_timeouts("DSN=wms", 5, 7);
    DW_ASSERT_STREQ(v, "DSN=wms");
    free(v);
    v = dw_odbc_connstr_with_multi_statements("DRIVER={MariaDB Unicode};SOCKET=/s;");
    DW_ASSERT_STREQ(v, "DRIVER={MariaDB Unicode};SOCKET=/s;OPTION=67108864");
    free(v);

    /* connecting: the driver's refusal never carries the password */
    if (maria_t.available) {
        char cs[700];
        struct tcfg c;
        struct dw_session *s = NULL;
        struct dw_error err;

        snprintf(cs, sizeof(cs), "DRIVER={%s};SERVER=127.0.0.1;PORT=%d;UID=root;"
                 "PWD=Sup3rSecret", dw_odbc_driver("mariadb"), maria.port);
        dw_error_clear(&err);
        CU_ASSERT_EQUAL(odbc->open(make_cfg(&c, cs, DW_COMMIT_AUTO, 5000), &s, &err),
                        DW_ERR_CONNECT);
        CU_ASSERT_PTR_NULL(s);
        DW_ASSERT_CONTAINS(err.message, "could not connect to the target: ");
        DW_ASSERT_CONTAINS(err.message, "Access denied");
        DW_ASSERT_STREQ(err.sqlstate, "28000");
        CU_ASSERT_PTR_NULL(strstr(err.message, "Sup3rSecret"));
        CU_ASSERT_PTR_NULL(strstr(err.detail, "Sup3rSecret"));
    }
}

static void test_normalize(void)
{
    char out[64];
    static const char *const cases[][2] = {
        {"2024-03-01 10:00:00+01", "2024-03-01 09:00:00"},
        {"2024-03-01 10:00:00.5+01", "2024-03-01 09:00:00.5"},
        {"2024-03-01 00:30:00.123456+05:30", "2024-02-29 19:00:00.123456"},
        {"2023-12-31 23:30:00-01", "2024-01-01 00:30:00"},
        {"2024-03-01T10:00:00Z", "2024-03-01 10:00:00"},
        {"2024-03-01T10:00:00", "2024-03-01 10:00:00"},
        {"2024-03-01 10:00:00", "2024-03-01 10:00:00"},
        {"2024-03-01 10:00:00+00", "2024-03-01 10:00:00"},
        {"1900-03-01 00:00:00+00:19:32", "1900-02-28 23:40:28"},
        {"2024-03-01 10:00:00+01 BC", "2024-03-01 10:00:00+01 BC"},
        {"infinity", "infinity"},
        {"2024-03-01", "2024-03-01"},
        {"0001-01-01 00:30:00+01", "0001-01-01 00:30:00+01"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        DW_ASSERT_STREQ(dw_odbc_normalize(ODBC_NORM_TIMESTAMP, cases[i][0], out, sizeof(out)),
                        cases[i][1]);
    DW_ASSERT_STREQ(dw_odbc_normalize(ODBC_NORM_BOOL, "t", out, sizeof(out)), "1");
    DW_ASSERT_STREQ(dw_odbc_normalize(ODBC_NORM_BOOL, "FALSE", out, sizeof(out)), "0");
    DW_ASSERT_STREQ(dw_odbc_normalize(ODBC_NORM_BOOL, "17", out, sizeof(out)), "17");
    DW_ASSERT_STREQ(dw_odbc_normalize(ODBC_NORM_NONE, "t", out, sizeof(out)), "t");
    CU_ASSERT_PTR_NULL(dw_odbc_normalize(ODBC_NORM_BOOL, NULL, out, sizeof(out)));
}

static void test_session_facts(void)
{
    struct tcfg c;
    struct dw_session *s;
    struct odbc_session *os;
    struct dw_error err;

    s = open_t(&c, &sqlite_t, DW_COMMIT_AUTO);
    os = (struct odbc_session *) s;
    CU_ASSERT_FALSE(s->two_phase);
    CU_ASSERT_EQUAL(os->family, ODBC_FAMILY_SQLITE);
    CU_ASSERT_EQUAL(os->dialect, ODBC_UPSERT_ON_CONFLICT);
    CU_ASSERT_EQUAL(os->quote, '"');
    odbc->close(s);

    dw_error_clear(&err);
    s = NULL;
    CU_ASSERT_EQUAL(odbc->open(make_cfg(&c, sqlite_t.connstr, DW_COMMIT_TWO_PHASE, 5000), &s,
                               &err), DW_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(s);
    DW_ASSERT_CONTAINS(err.message, "cannot use commit \"two-phase\": the target is SQLite");
    CU_ASSERT(err.hint[0] != '\0');

    if (maria_t.available) {
        s = open_t(&c, &maria_t, DW_COMMIT_AUTO);
        os = (struct odbc_session *) s;
        CU_ASSERT_TRUE(s->two_phase);
        CU_ASSERT_EQUAL(os->family, ODBC_FAMILY_MARIADB);
        CU_ASSERT_EQUAL(os->dialect, ODBC_UPSERT_ON_DUPLICATE_KEY);
        CU_ASSERT_EQUAL(os->quote, '`');
        CU_ASSERT_TRUE(os->arrays);
        odbc->close(s);
        s = open_t(&c, &maria_t, DW_COMMIT_ONE_PHASE);
        CU_ASSERT_FALSE(s->two_phase);
        odbc->close(s);
    }
    if (pg_t.available) {
        s = open_t(&c, &pg_t, DW_COMMIT_AUTO);
        os = (struct odbc_session *) s;
        CU_ASSERT_FALSE(s->two_phase);
        CU_ASSERT_EQUAL(os->dialect, ODBC_UPSERT_ON_CONFLICT);
        odbc->close(s);
    }
}

static void upsert_delete_many(struct target *t)
{
    struct tcfg c;
    struct dw_session *s = open_t(&c, t, DW_COMMIT_AUTO);
    enum { N = 300 };
    static char ids[N][16], totals[N][16];
    static const char *vals[N][4];
    static struct dw_target_op ops[2 * N];
    size_t n = 0;

    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%d", 1000 + i);
        snprintf(totals[i], sizeof(totals[i]), "%d.25", i);
        vals[i][0] = ids[i];
        vals[i][1] = "draft";
        vals[i][2] = totals[i];
        vals[i][3] = NULL;
        ops[n++] = (struct dw_target_op) OP(DW_OP_UPSERT, "orders", 1, order_cols, vals[i]);
    }
    /* in the same transaction: delete every third */
    for (int i = 0; i < N; i += 3)
        ops[n++] = (struct dw_target_op) OP(DW_OP_DELETE, "orders", 1, order_key, vals[i]);
    /* one row alone first: the same statement then takes arrays (a MariaDB driver bug) */
    expect_batch_ok(s, ops, 1, t);
    expect_batch_ok(s, ops, n, t);
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM orders WHERE id BETWEEN 1000 AND 1299"), "200");
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM orders WHERE id = 1001 AND total = 1.25"), "1");
    /* upserts over existing rows update them */
    n = 0;
    for (int i = 1; i < N; i += 3) {
        vals[i][1] = "confirmed";
        ops[n++] = (struct dw_target_op) OP(DW_OP_UPSERT, "orders", 1, order_cols, vals[i]);
    }
    expect_batch_ok(s, ops, n, t);
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM orders WHERE status = 'confirmed'"), "100");
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM orders WHERE id BETWEEN 1000 AND 1299"), "200");
    for (int i = 0; i < N; i++)
        vals[i][1] = "draft";
    odbc->close(s);
    dw_odbc_sql(t->admin, "DELETE FROM orders");
}

static void test_upsert_delete_many(void)
{
    for_each_target(upsert_delete_many);
}

static void thousand_ops(struct target *t)
{
    struct tcfg c;
    struct dw_session *s = open_t(&c, t, DW_COMMIT_AUTO);
    struct odbc_session *os = (struct odbc_session *) s;
    enum { N = 1000 };
    static char ids[N][16];
    static const char *vals[N][4];
    static struct dw_target_op ops[N];
    size_t nstmts;

    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%d", 20000 + i);
        vals[i][0] = ids[i];
        vals[i][1] = "bulk";
        vals[i][2] = i % 7 ? "1.00" : NULL;
        vals[i][3] = "a somewhat longer note to make the batch bigger than a socket buffer";
        ops[i] = (struct dw_target_op) OP(DW_OP_UPSERT, "orders", 1, order_cols, vals[i]);
    }
    expect_batch_ok(s, ops, N, t);
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM orders WHERE status = 'bulk'"), "1000");
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM orders WHERE status = 'bulk' AND total IS NULL"),
                    "143");
    nstmts = os->nstmts;
    /* the same again as deletes, then once more: one statement per shape */
    for (int i = 0; i < N; i++) {
        ops[i].kind = DW_OP_DELETE;
        ops[i].ncolumns = 1;
    }
    expect_batch_ok(s, ops, N, t);
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM orders WHERE status = 'bulk'"), "0");
    CU_ASSERT_EQUAL(os->nstmts, nstmts + 1);
    expect_batch_ok(s, ops, N, t);
    CU_ASSERT_EQUAL(os->nstmts, nstmts + 1);
    odbc->close(s);
}

static void test_thousand_ops(void)
{
    for_each_target(thousand_ops);
}

static void composite_keys(struct target *t)
{
    struct tcfg c;
    struct dw_session *s = open_t(&c, t, DW_COMMIT_AUTO);
    const char *const a[] = {"1", "1", "5"}, *const b[] = {"1", "2", "6"}, *const a2[] = {"1", "1", "9"};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "order_lines", 2, line_cols, a),
                                 OP(DW_OP_UPSERT, "order_lines", 2, line_cols, b),
                                 OP(DW_OP_UPSERT, "order_lines", 2, line_cols, a2),
                                 OP(DW_OP_DELETE, "order_lines", 2, line_key, b)};
    const char *const tag[] = {"red"};
    struct dw_target_op tags[] = {OP(DW_OP_UPSERT, "tags", 1, tag_cols, tag),
                                  OP(DW_OP_UPSERT, "tags", 1, tag_cols, tag)};

    expect_batch_ok(s, ops, 4, t);
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM order_lines"), "1");
    DW_ASSERT_STREQ(tval(t, "SELECT qty FROM order_lines WHERE order_id = 1 AND line = 1"), "9");
    /* a key-only table: upserting an existing row changes nothing */
    expect_batch_ok(s, tags, 2, t);
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM tags"), "1");
    odbc->close(s);
}

static void test_composite_keys(void)
{
    for_each_target(composite_keys);
}

static void quoted_identifiers(struct target *t)
{
    struct tcfg c;
    struct dw_session *s = open_t(&c, t, DW_COMMIT_AUTO);
    const char *const v[] = {"1", "first", "x", "y"};
    const char *const v2[] = {"1", "second", "z", NULL};
    struct dw_target_op ops[2] = {
        {.kind = DW_OP_UPSERT, .table = t->quoted_table, .nkey = 1, .ncolumns = 4,
         .columns = t->quoted_cols, .values = v},
        {.kind = DW_OP_UPSERT, .table = t->quoted_table, .nkey = 1, .ncolumns = 4,
         .columns = t->quoted_cols, .values = v2}};
    struct dw_error err;

    expect_batch_ok(s, ops, 2, t);
    DW_ASSERT_STREQ(tval(t, "%s", t->quoted_check), "secondz");
    ops[0].kind = DW_OP_DELETE;
    ops[0].ncolumns = 1;
    expect_batch_ok(s, ops, 1, t);
    DW_ASSERT_STREQ(tval(t, "%s", t->quoted_count), "0");
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->check_table(s, t->quoted_table, t->quoted_cols, 4, &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->check_key(s, t->quoted_table, t->quoted_cols, 1, &err), DW_OK);
    if (dw_error_is_set(&err))
        print_err("check", &err);
    odbc->close(s);
}

static void test_quoted_identifiers(void)
{
    for_each_target(quoted_identifiers);
}

static void types_round_trip(struct target *t)
{
    struct tcfg c;
    struct dw_session *s = open_t(&c, t, DW_COMMIT_AUTO);
    static const char text[] = "Grüße — 東京 🚀 'q' \"d\" \\ end";
    const char *const row1[] = {"1", "-7", "9223372036854775807", "12.50", "0.1", "2024-03-01",
                                "2024-03-01 10:00:00.123456", "2024-03-01 10:00:00.5+01", "t",
                                text};
    const char *const row2[] = {"2", NULL, NULL, NULL, NULL, NULL, NULL, NULL, "f", NULL};
    const char *const row1b[] = {"1", "8", "-9223372036854775808", "-0.01", "-1.5e+300",
                                 "1999-12-31", "2024-02-29T23:59:59", "2024-03-01T00:30:00Z",
                                 "false", NULL};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "types", 1, type_cols, row1),
                                 OP(DW_OP_UPSERT, "types", 1, type_cols, row2)};
    struct dw_target_op op1b = OP(DW_OP_UPSERT, "types", 1, type_cols, row1b);
    char hex[200] = "";

    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        snprintf(hex + strlen(hex), sizeof(hex) - strlen(hex), "%02X", *p);
    expect_batch_ok(s, ops, 2, t);
    t->check_types(t, hex);
    /* NULL over values, and values over NULLs, in the other formats */
    expect_batch_ok(s, &op1b, 1, t);
    t->check_types2(t);
    odbc->close(s);
}

static void test_types_round_trip(void)
{
    for_each_target(types_round_trip);
}

static void constraint_violation(struct target *t)
{
    struct tcfg c;
    struct dw_session *s = open_t(&c, t, DW_COMMIT_ONE_PHASE);
    const char *const good1[] = {"501", "draft", NULL, NULL};
    const char *const good2[] = {"502", "draft", NULL, NULL};
    const char *const bad[] = {"503", "bad", NULL, NULL};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "orders", 1, order_cols, good1),
                                 OP(DW_OP_UPSERT, "orders", 1, order_cols, good2),
                                 OP(DW_OP_UPSERT, "orders", 1, order_cols, good1),
                                 OP(DW_OP_UPSERT, "orders", 1, order_cols, bad),
                                 OP(DW_OP_UPSERT, "orders", 1, order_cols, good2)};
    const char *const u1[] = {"1", "A"}, *const u2[] = {"2", "B"}, *const u4[] = {"4", "D"};
    const char *const u5[] = {"5", "E"}, *const u2a[] = {"2", "A"}, *const u6[] = {"6", "F"};
    struct dw_target_op uops[] = {OP(DW_OP_UPSERT, "uniq", 1, uniq_cols, u1),
                                  OP(DW_OP_UPSERT, "uniq", 1, uniq_cols, u2)};
    /*
     * Row 2 takes row 1's code.  (A new row with a taken code would not do:
     * on MariaDB ON DUPLICATE KEY UPDATE then updates the row holding the code.)
     */
    struct dw_target_op dup[] = {OP(DW_OP_UPSERT, "uniq", 1, uniq_cols, u4),
                                 OP(DW_OP_UPSERT, "uniq", 1, uniq_cols, u5),
                                 OP(DW_OP_UPSERT, "uniq", 1, uniq_cols, u2a),
                                 OP(DW_OP_UPSERT, "uniq", 1, uniq_cols, u6)};
    struct dw_error err;

    /* one run of one shape: an array where the driver has them */
    CU_ASSERT_EQUAL(run_batch(s, ops, 5, NULL, &err), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.sqlstate, t->check_sqlstate);
    DW_ASSERT_CONTAINS(err.message, t->check_message);
    DW_ASSERT_CONTAINS(err.context, "operation 3: upsert into table \"orders\"");
    CU_ASSERT_EQUAL(s->failed_op, 3);
    CU_ASSERT_FALSE(s->broken);
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM orders WHERE id BETWEEN 501 AND 503"), "0");
    /* the session goes on */
    expect_batch_ok(s, ops, 2, t);
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM orders WHERE id BETWEEN 501 AND 503"), "2");

    expect_batch_ok(s, uops, 2, t);
    CU_ASSERT_EQUAL(run_batch(s, dup, 4, NULL, &err), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.sqlstate, t->unique_sqlstate);
    DW_ASSERT_CONTAINS(err.message, t->unique_message);
    CU_ASSERT_EQUAL(s->failed_op, 2);
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM uniq"), "2");
    DW_ASSERT_STREQ(tval(t, "SELECT code FROM uniq WHERE id = 2"), "B");
    odbc->close(s);
    dw_odbc_sql(t->admin, "DELETE FROM orders");
    dw_odbc_sql(t->admin, "DELETE FROM uniq");
}

static void test_constraint_violation(void)
{
    for_each_target(constraint_violation);
}

static void rollback_leaves_nothing(struct target *t)
{
    struct tcfg c;
    struct dw_session *s = open_t(&c, t, DW_COMMIT_AUTO);
    const char *const v[] = {"601", "draft", "1", NULL};
    struct dw_target_op op = OP(DW_OP_UPSERT, "orders", 1, order_cols, v);
    struct dw_error err;

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->begin(s, "7:8:601", &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->apply(s, &op, 1, &err), DW_OK);
    odbc->rollback(s);
    CU_ASSERT_FALSE(s->broken);
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM orders WHERE id = 601"), "0");
    /* a batch left open without rollback is rolled back by the next begin */
    CU_ASSERT_EQUAL(odbc->begin(s, "7:8:602", &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->apply(s, &op, 1, &err), DW_OK);
    odbc->rollback(s);
    expect_batch_ok(s, &op, 1, t);
    DW_ASSERT_STREQ(tval(t, "SELECT count(*) FROM orders WHERE id = 601"), "1");
    /* malformed operations are refused before anything is sent */
    op.nkey = 0;
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, NULL, &err), DW_ERR_INTERNAL);
    CU_ASSERT_EQUAL(s->failed_op, 0);
    CU_ASSERT_FALSE(s->broken);
    odbc->close(s);
    dw_odbc_sql(t->admin, "DELETE FROM orders");
}

static void test_rollback(void)
{
    for_each_target(rollback_leaves_nothing);
}

static void check_table_and_key(struct target *t)
{
    struct tcfg c;
    struct dw_session *s = open_t(&c, t, DW_COMMIT_AUTO);
    const char *const missing[] = {"id", "nope", "status", "other"};
    const char *const key2[] = {"line", "order_id"};
    const char *const code[] = {"code"};
    const char *const status[] = {"status"};
    struct dw_error err;

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->check_table(s, "orders", order_cols, 4, &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->check_table(s, "orders", missing, 4, &err), DW_ERR_CONFIG);
    DW_ASSERT_STREQ(err.message, "table \"orders\" on the target has no columns \"nope\", \"other\"");
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->check_table(s, "nothing_here", missing, 1, &err), DW_ERR_CONFIG);
    DW_ASSERT_STREQ(err.message, "table \"nothing_here\" does not exist on the target");
    dw_error_clear(&err);
    /* "_" is no wildcard: "order_" matches neither "orders" nor "orderX" */
    CU_ASSERT_EQUAL(odbc->check_table(s, "order_", missing, 1, &err), DW_ERR_CONFIG);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->check_key(s, "orders", order_key, 1, &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->check_key(s, "order_lines", key2, 2, &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->check_key(s, "uniq", code, 1, &err), DW_OK);
    if (dw_error_is_set(&err))
        print_err("check_key", &err);
    CU_ASSERT_EQUAL(odbc->check_key(s, "orders", status, 1, &err), DW_ERR_CONFIG);
    DW_ASSERT_STREQ(err.message, "table \"orders\" on the target has no primary key or unique "
                    "index on the key (\"status\")");
    CU_ASSERT(err.hint[0] != '\0');
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->check_key(s, "order_lines", line_key, 1, &err), DW_ERR_CONFIG);
    CU_ASSERT_FALSE(s->broken);
    odbc->close(s);
}

static void test_check_table(void)
{
    for_each_target(check_table_and_key);
}

static const struct dw_cunit_test tests[] = {
    {"registry", test_registry},
    {"configuration check", test_check_config},
    {"secrets are masked", test_secrets_masked},
    {"value rewriting", test_normalize},
    {"what each target is", test_session_facts},
    {"upserts and deletes in one batch", test_upsert_delete_many},
    {"1000 operations in one batch, statements reused", test_thousand_ops},
    {"composite keys and key-only tables", test_composite_keys},
    {"identifiers that need quoting", test_quoted_identifiers},
    {"types round trip", test_types_round_trip},
    {"constraint violations: SQLSTATE, message, failing operation", test_constraint_violation},
    {"rollback leaves nothing", test_rollback},
    {"check_table and check_key", test_check_table},
};

int main(void)
{
    int rc;

    dw_log_set_level(DW_LOG_WARNING);
    targets_start(true);
    rc = dw_cunit_run("odbc connector", tests, sizeof(tests) / sizeof(tests[0]));
    targets_stop();
    return rc;
}
