/*
 * The pg connector against real PostgreSQL 15 clusters from the fixtures: one
 * with max_prepared_transactions = 10 (the target of most tests) and one with
 * 0 (two-phase refused, "auto" choosing one-phase).
 *
 * Covers upserts and deletes of many operations in one pipeline, composite
 * keys, NULLs, unicode, identifiers that need quoting, coercion of text
 * values, constraint violations with SQLSTATE and the failing operation,
 * prepare / list / resolve, a lost connection, the statement cache, the
 * statement timeout, the catalog checks and a 1000-operation batch.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge/common/dw_log.h"
#include "connectors/dw_connector.h"
#include "connectors/pg/dw_pg_int.h"
#include "tests/fixtures/dw_fixture.h"
#include "tests/unit/common/dw_cunit.h"

static struct dw_pg_cluster target;     /* max_prepared_transactions = 10 */
static struct dw_pg_cluster no2pc;      /* max_prepared_transactions = 0 */
static PGconn *admin;                   /* our own view of the target */
static const struct dw_connector_ops *pg;
static char conninfo[512], conninfo_no2pc[512];

/* ---- helpers ---- */

struct conn_cfg {
    struct dw_setting setting;
    struct dw_connector_config cfg;
};

static struct dw_connector_config *make_cfg(struct conn_cfg *c, const char *ci, dw_commit_mode mode,
                                            long timeout_ms)
{
    c->setting.key = "conninfo";
    c->setting.value = ci;
    c->setting.secret = false;
    c->cfg.name = "target";
    c->cfg.type = "pg";
    c->cfg.commit = mode;
    c->cfg.nsettings = 1;
    c->cfg.settings = &c->setting;
    c->cfg.timeout_ms = timeout_ms;
    return &c->cfg;
}

static struct dw_session *open_session(struct conn_cfg *c, dw_commit_mode mode)
{
    struct dw_session *s = NULL;
    struct dw_error err;

    dw_error_clear(&err);
    if (pg->open(make_cfg(c, conninfo, mode, 10000), &s, &err) != DW_OK)
        fprintf(stderr, "\n    open: %s\n", err.message);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

static void print_err(const char *what, const struct dw_error *err)
{
    fprintf(stderr, "\n    %s: [%s] %s (detail: %s) (context: %s)\n", what, err->sqlstate,
            err->message, err->detail, err->context);
}

/* Run one batch; returns the code of whichever step failed. */
static dw_errcode run_batch(struct dw_session *s, const struct dw_target_op *ops, size_t n,
                           const char *gid, struct dw_error *err)
{
    dw_errcode rc;

    dw_error_clear(err);
    rc = pg->begin(s, gid ? gid : "test", err);
    if (rc == DW_OK)
        rc = pg->apply(s, ops, n, err);
    if (rc == DW_OK)
        rc = gid ? pg->prepare(s, gid, err) : pg->commit(s, err);
    if (rc != DW_OK)
        pg->rollback(s);
    return rc;
}

static void expect_batch_ok(struct dw_session *s, const struct dw_target_op *ops, size_t n)
{
    struct dw_error err;
    dw_errcode rc = run_batch(s, ops, n, NULL, &err);

    if (rc != DW_OK)
        print_err("batch", &err);
    CU_ASSERT_EQUAL(rc, DW_OK);
    CU_ASSERT_EQUAL(s->failed_op, -1);
}

static const char *val(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *val(const char *fmt, ...)
{
    static char buf[8192];
    va_list ap;
    const char *v;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    v = dw_sql_value(admin, "%s", buf);
    return v ? v : "(null)";
}

/* End every session of the connector on the target, and wait until they are gone. */
static void terminate_sessions(void)
{
    PQclear(dw_sql(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'dualwrited'"));
    for (int i = 0; i < 100 && strcmp(val("SELECT count(*) FROM pg_stat_activity WHERE "
                                          "application_name = 'dualwrited'"), "0") != 0; i++)
        usleep(20000);
}

#define OP(kind_, table_, nkey_, cols_, vals_)                                            \
    {.kind = (kind_), .connector = "target", .table = (table_), .nkey = (nkey_),           \
     .ncolumns = sizeof(cols_) / sizeof((cols_)[0]), .columns = (cols_), .values = (vals_), \
     .map = "test"}

static const char *const order_cols[] = {"id", "status", "total", "created", "paid", "extra", "note"};
static const char *const order_key[] = {"id"};
static const char *const line_cols[] = {"order_id", "line", "qty"};
static const char *const line_key[] = {"order_id", "line"};

/* ---- tests ---- */

static void test_session_setup(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_AUTO);
    const char *const probe_cols[] = {"id"};
    const char *const probe_vals[] = {"1"};
    struct dw_target_op op = OP(DW_OP_UPSERT, "origin_probe", 1, probe_cols, probe_vals);

    CU_ASSERT_TRUE(s->two_phase);
    CU_ASSERT_FALSE(s->broken);
    expect_batch_ok(s, &op, 1);
    /* the default of "origin" reads dualwrite.origin in the connector's session */
    DW_ASSERT_STREQ(val("SELECT origin FROM origin_probe WHERE id = 1"), "dualwrite");
    DW_ASSERT_STREQ(val("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                        "'dualwrited'"), "1");
    DW_ASSERT_STREQ(val("SELECT setting FROM pg_settings WHERE name = 'max_prepared_transactions'"),
                    "10");
    pg->close(s);
}

static void test_upsert_delete_many(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_ONE_PHASE);
    enum { N = 300 };
    static char ids[N][16], totals[N][16];
    static const char *vals[N][7];
    static struct dw_target_op ops[2 * N];
    size_t n = 0;

    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%d", 1000 + i);
        snprintf(totals[i], sizeof(totals[i]), "%d.25", i);
        const char *row[7] = {ids[i], "draft", totals[i], "2024-01-01 00:00:00+00", "f", NULL, NULL};
        memcpy(vals[i], row, sizeof(row));
        ops[n++] = (struct dw_target_op) OP(DW_OP_UPSERT, "public.orders", 1, order_cols, vals[i]);
    }
    /* in the same transaction: update every other row, delete every third */
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            ops[n++] = (struct dw_target_op) {.kind = DW_OP_DELETE, .table = "public.orders",
                                              .nkey = 1, .ncolumns = 1, .columns = order_key,
                                              .values = vals[i]};
    }
    expect_batch_ok(s, ops, n);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM orders WHERE id BETWEEN 1000 AND 1299"), "200");
    DW_ASSERT_STREQ(val("SELECT total FROM orders WHERE id = 1001"), "1.25");

    /* upsert over existing rows updates them */
    n = 0;
    for (int i = 1; i < N; i += 3) {
        vals[i][1] = "confirmed";
        ops[n++] = (struct dw_target_op) OP(DW_OP_UPSERT, "public.orders", 1, order_cols, vals[i]);
    }
    expect_batch_ok(s, ops, n);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM orders WHERE status = 'confirmed'"), "100");
    DW_ASSERT_STREQ(val("SELECT count(*) FROM orders WHERE id BETWEEN 1000 AND 1299"), "200");
    pg->close(s);
}

static void test_apply_only_queues(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_ONE_PHASE);
    const char *const v[] = {"7", "draft", NULL, NULL, NULL, NULL, NULL};
    struct dw_target_op op = OP(DW_OP_UPSERT, "orders", 1, order_cols, v);
    PGconn *locker = dw_pg_cluster_connect(&target, "postgres");
    struct dw_error err;

    /* with the table locked, begin and apply still return at once: nothing waits */
    PQclear(dw_sql(locker, "BEGIN"));
    PQclear(dw_sql(locker, "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"));
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(pg->begin(s, "q", &err), DW_OK);
    CU_ASSERT_EQUAL(pg->apply(s, &op, 1, &err), DW_OK);
    PQclear(dw_sql(locker, "COMMIT"));
    CU_ASSERT_EQUAL(pg->commit(s, &err), DW_OK);
    DW_ASSERT_STREQ(val("SELECT status FROM orders WHERE id = 7"), "draft");
    PQfinish(locker);
    pg->close(s);
}

static void test_composite_keys(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_ONE_PHASE);
    const char *const a[] = {"1", "1", "5"}, *const b[] = {"1", "2", "6"}, *const a2[] = {"1", "1", "9"};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "lines", 2, line_cols, a),
                                 OP(DW_OP_UPSERT, "lines", 2, line_cols, b),
                                 OP(DW_OP_UPSERT, "lines", 2, line_cols, a2),
                                 {.kind = DW_OP_DELETE, .table = "lines", .nkey = 2, .ncolumns = 2,
                                  .columns = line_key, .values = b}};

    expect_batch_ok(s, ops, 4);
    DW_ASSERT_STREQ(val("SELECT string_agg(order_id || '/' || line || '=' || qty, ',' ORDER BY line) "
                        "FROM lines"), "1/1=9");
    pg->close(s);
}

static void test_nulls_unicode_types(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_ONE_PHASE);
    const char *const v[] = {"42", "Grüße — 東京 🚀 'quoted' \"double\" \\", "12.5",
                             "2024-03-01 10:00:00+01", "true", "{\"a\": [1, 2], \"b\": null}", NULL};
    const char *const v2[] = {"42", "ok", NULL, NULL, "false", NULL, "note"};
    struct dw_target_op op = OP(DW_OP_UPSERT, "public.orders", 1, order_cols, v);
    struct dw_target_op op2 = OP(DW_OP_UPSERT, "public.orders", 1, order_cols, v2);

    expect_batch_ok(s, &op, 1);
    DW_ASSERT_STREQ(val("SELECT status FROM orders WHERE id = 42"), v[1]);
    DW_ASSERT_STREQ(val("SELECT total = 12.50 FROM orders WHERE id = 42"), "t");
    DW_ASSERT_STREQ(val("SELECT created = '2024-03-01 09:00:00+00' FROM orders WHERE id = 42"), "t");
    DW_ASSERT_STREQ(val("SELECT paid FROM orders WHERE id = 42"), "t");
    DW_ASSERT_STREQ(val("SELECT extra->'a'->>1 FROM orders WHERE id = 42"), "2");
    DW_ASSERT_STREQ(val("SELECT note IS NULL FROM orders WHERE id = 42"), "t");
    /* NULL over a value */
    expect_batch_ok(s, &op2, 1);
    DW_ASSERT_STREQ(val("SELECT total IS NULL AND created IS NULL AND extra IS NULL AND NOT paid "
                        "FROM orders WHERE id = 42"), "t");
    pg->close(s);
}

static void test_quoted_identifiers(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_ONE_PHASE);
    const char *const cols[] = {"Item Id", "Name", "select", "we\"ird"};
    const char *const v[] = {"1", "first", "x", "y"};
    const char *const v2[] = {"1", "second", "z", NULL};
    const char *table = "Sales Dept.Order \"Items\"";
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, table, 1, cols, v), OP(DW_OP_UPSERT, table, 1, cols, v2)};
    struct dw_error err;

    expect_batch_ok(s, ops, 2);
    DW_ASSERT_STREQ(val("SELECT \"Name\" || \"select\" FROM \"Sales Dept\".\"Order \"\"Items\"\"\""),
                    "secondz");
    ops[0].kind = DW_OP_DELETE;
    ops[0].ncolumns = 1;
    expect_batch_ok(s, ops, 1);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM \"Sales Dept\".\"Order \"\"Items\"\"\""), "0");
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(pg->check_table(s, table, cols, 4, &err), DW_OK);
    pg->close(s);
}

static void test_key_only_table(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_ONE_PHASE);
    const char *const cols[] = {"name"};
    const char *const v[] = {"red"};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "tags", 1, cols, v), OP(DW_OP_UPSERT, "tags", 1, cols, v)};

    expect_batch_ok(s, ops, 2);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM tags"), "1");
    pg->close(s);
}

static void test_check_violation(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_ONE_PHASE);
    const char *const good1[] = {"501", "draft", NULL, NULL, NULL, NULL, NULL};
    const char *const good2[] = {"502", "draft", NULL, NULL, NULL, NULL, NULL};
    const char *const bad[] = {"503", "bad", NULL, NULL, NULL, NULL, NULL};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "orders", 1, order_cols, good1),
                                 OP(DW_OP_UPSERT, "orders", 1, order_cols, good2),
                                 OP(DW_OP_UPSERT, "orders", 1, order_cols, good1),
                                 OP(DW_OP_UPSERT, "orders", 1, order_cols, bad),
                                 OP(DW_OP_UPSERT, "orders", 1, order_cols, good2)};
    struct dw_error err;

    CU_ASSERT_EQUAL(run_batch(s, ops, 5, NULL, &err), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.sqlstate, "23514");
    DW_ASSERT_CONTAINS(err.message, "violates check constraint \"orders_status_check\"");
    DW_ASSERT_CONTAINS(err.detail, "Failing row contains");
    DW_ASSERT_CONTAINS(err.context, "operation 3");
    CU_ASSERT_EQUAL(s->failed_op, 3);
    CU_ASSERT_FALSE(s->broken);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM orders WHERE id BETWEEN 501 AND 503"), "0");
    /* the session goes on */
    expect_batch_ok(s, ops, 2);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM orders WHERE id BETWEEN 501 AND 503"), "2");
    pg->close(s);
}

static void test_unique_violation_two_phase(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_TWO_PHASE);
    const char *const cols[] = {"id", "code"};
    const char *const a[] = {"1", "A"}, *const b[] = {"2", "B"}, *const dup[] = {"3", "A"};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "uniq", 1, cols, a),
                                 OP(DW_OP_UPSERT, "uniq", 1, cols, b),
                                 OP(DW_OP_UPSERT, "uniq", 1, cols, dup)};
    struct dw_error err;

    CU_ASSERT_EQUAL(run_batch(s, ops, 3, "dw:uniq-1", &err), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.sqlstate, "23505");
    DW_ASSERT_CONTAINS(err.message, "duplicate key value violates unique constraint");
    DW_ASSERT_CONTAINS(err.detail, "Key (code)=(A) already exists.");
    CU_ASSERT_EQUAL(s->failed_op, 2);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM pg_prepared_xacts"), "0");
    DW_ASSERT_STREQ(val("SELECT count(*) FROM uniq"), "0");
    /* a failed batch left without rollback is rolled back by the next begin */
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(pg->begin(s, "x", &err), DW_OK);
    CU_ASSERT_EQUAL(pg->apply(s, ops, 3, &err), DW_OK);
    CU_ASSERT_EQUAL(pg->commit(s, &err), DW_ERR_TARGET);
    CU_ASSERT_EQUAL(s->failed_op, 2);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(pg->begin(s, "y", &err), DW_OK);
    CU_ASSERT_EQUAL(pg->apply(s, ops, 2, &err), DW_OK);
    CU_ASSERT_EQUAL(pg->commit(s, &err), DW_OK);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM uniq"), "2");
    pg->close(s);
}

static void test_prepare_and_resolve(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_TWO_PHASE);
    const char *const v1[] = {"601", "draft", NULL, NULL, NULL, NULL, NULL};
    const char *const v2[] = {"602", "draft", NULL, NULL, NULL, NULL, NULL};
    struct dw_target_op op1 = OP(DW_OP_UPSERT, "orders", 1, order_cols, v1);
    struct dw_target_op op2 = OP(DW_OP_UPSERT, "orders", 1, order_cols, v2);
    PGconn *other = dw_pg_cluster_connect(&target, "postgres");
    struct dw_error err;
    char **gids = NULL;
    size_t n = 0;

    CU_ASSERT_TRUE(s->two_phase);
    CU_ASSERT_EQUAL(run_batch(s, &op1, 1, "dw:1:2:601", &err), DW_OK);
    CU_ASSERT_EQUAL(run_batch(s, &op2, 1, "dw:1:2:602", &err), DW_OK);
    /* a prepared transaction that is not ours, and one in another database */
    PQclear(dw_sql(other, "BEGIN"));
    PQclear(dw_sql(other, "PREPARE TRANSACTION 'other:1'"));
    DW_ASSERT_STREQ(val("SELECT count(*) FROM orders WHERE id IN (601, 602)"), "0");

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(pg->list_prepared(s, "dw:", &gids, &n, &err), DW_OK);
    CU_ASSERT_EQUAL(n, 2);
    if (n == 2) {
        DW_ASSERT_STREQ(gids[0], "dw:1:2:601");
        DW_ASSERT_STREQ(gids[1], "dw:1:2:602");
    }
    dw_connector_free_gids(gids, n);
    /* "_" is no wildcard */
    CU_ASSERT_EQUAL(pg->list_prepared(s, "dw_", &gids, &n, &err), DW_OK);
    CU_ASSERT_EQUAL(n, 0);
    dw_connector_free_gids(gids, n);

    CU_ASSERT_EQUAL(pg->resolve_prepared(s, "dw:1:2:601", true, &err), DW_OK);
    CU_ASSERT_EQUAL(pg->resolve_prepared(s, "dw:1:2:602", false, &err), DW_OK);
    DW_ASSERT_STREQ(val("SELECT string_agg(id::text, ',') FROM orders WHERE id IN (601, 602)"), "601");
    /* settled already, or never there: success */
    CU_ASSERT_EQUAL(pg->resolve_prepared(s, "dw:1:2:601", true, &err), DW_OK);
    CU_ASSERT_EQUAL(pg->resolve_prepared(s, "dw:never", false, &err), DW_OK);
    CU_ASSERT_FALSE(dw_error_is_set(&err));
    CU_ASSERT_EQUAL(pg->list_prepared(s, "dw:", &gids, &n, &err), DW_OK);
    CU_ASSERT_EQUAL(n, 0);
    dw_connector_free_gids(gids, n);
    /* a gid that could escape its quotes is refused before anything is sent */
    CU_ASSERT_EQUAL(pg->resolve_prepared(s, "dw:x' OR '1", true, &err), DW_ERR_PROTOCOL);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(run_batch(s, &op1, 1, "dw:'x", &err), DW_ERR_PROTOCOL);
    CU_ASSERT_FALSE(s->broken);
    PQclear(dw_sql(other, "ROLLBACK PREPARED 'other:1'"));
    PQfinish(other);
    pg->close(s);
}

/*
 * Settling several prepared transactions in one exchange: each gets its own
 * answer (committed, rolled back, unknown = done, refused by the server,
 * invalid and never sent), one failure leaves the others alone, and the
 * session is usable afterwards; a lost connection fails every one sent.
 */
static void test_resolve_many(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_TWO_PHASE);
    const char *v[4][7] = {{"611", "draft"}, {"612", "draft"}, {"613", "draft"}, {"614", "draft"}};
    char gid[4][32];
    PGconn *other;
    struct dw_error err, errs[7];
    dw_errcode rcs[7];
    const char *gids[7];
    const bool commit[7] = {true, true, true, false, true, true, true};

    PQclear(dw_sql(admin, "CREATE DATABASE resolve_other"));
    other = dw_pg_cluster_connect(&target, "resolve_other");
    PQclear(dw_sql(other, "BEGIN"));
    PQclear(dw_sql(other, "PREPARE TRANSACTION 'dw:other-db'"));
    for (int i = 0; i < 4; i++) {
        struct dw_target_op op = OP(DW_OP_UPSERT, "orders", 1, order_cols, v[i]);

        snprintf(gid[i], sizeof(gid[i]), "dw:1:2:%s", v[i][0]);
        CU_ASSERT_EQUAL(run_batch(s, &op, 1, gid[i], &err), DW_OK);
    }
    gids[0] = gid[0];             /* commit */
    gids[1] = "dw:never";         /* unknown: done */
    gids[2] = "dw:x' OR '1";      /* invalid: refused, never sent */
    gids[3] = gid[1];             /* roll back */
    gids[4] = "dw:other-db";      /* the server refuses: another database's */
    gids[5] = gid[2];             /* commit, after a refusal */
    gids[6] = gid[2];             /* the same again: unknown by now, done */
    pg->resolve_prepared_many(s, gids, commit, 7, rcs, errs);
    CU_ASSERT_EQUAL(rcs[0], DW_OK);
    CU_ASSERT_EQUAL(rcs[1], DW_OK);
    CU_ASSERT_EQUAL(rcs[2], DW_ERR_PROTOCOL);
    CU_ASSERT_EQUAL(rcs[3], DW_OK);
    CU_ASSERT_EQUAL(rcs[4], DW_ERR_TARGET);
    DW_ASSERT_CONTAINS(errs[4].message, "could not commit prepared transaction \"dw:other-db\"");
    DW_ASSERT_CONTAINS(errs[4].message, "another database");
    CU_ASSERT_EQUAL(rcs[5], DW_OK);
    CU_ASSERT_EQUAL(rcs[6], DW_OK);
    CU_ASSERT_FALSE(dw_error_is_set(&errs[0]) || dw_error_is_set(&errs[3]) || dw_error_is_set(&errs[5]));
    CU_ASSERT_FALSE(s->broken);
    DW_ASSERT_STREQ(val("SELECT string_agg(id::text, ',' ORDER BY id) FROM orders WHERE id BETWEEN 611 AND 614"),
                    "611,613");
    DW_ASSERT_STREQ(val("SELECT string_agg(gid, ',' ORDER BY gid) FROM pg_prepared_xacts"), "dw:1:2:614,dw:other-db");
    /* the session is back out of pipeline mode and runs the next batch */
    {
        const char *const v5[] = {"615", "draft", NULL, NULL, NULL, NULL, NULL};
        struct dw_target_op op = OP(DW_OP_UPSERT, "orders", 1, order_cols, v5);

        expect_batch_ok(s, &op, 1);
    }

    /* a lost connection: every gid sent fails with DW_ERR_CONNECT */
    terminate_sessions();
    gids[0] = gid[3];
    gids[1] = "dw:never";
    pg->resolve_prepared_many(s, gids, commit, 2, rcs, errs);
    CU_ASSERT_EQUAL(rcs[0], DW_ERR_CONNECT);
    CU_ASSERT_EQUAL(rcs[1], DW_ERR_CONNECT);
    DW_ASSERT_CONTAINS(errs[0].message, "connection");
    CU_ASSERT_TRUE(s->broken);
    pg->close(s);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'dw:1:2:614'"), "1");

    s = open_session(&c, DW_COMMIT_TWO_PHASE);
    gids[0] = gid[3];
    pg->resolve_prepared_many(s, gids, commit, 1, rcs, errs);
    CU_ASSERT_EQUAL(rcs[0], DW_OK);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM orders WHERE id = 614"), "1");
    pg->close(s);
    PQclear(dw_sql(other, "ROLLBACK PREPARED 'dw:other-db'"));
    PQfinish(other);
    PQclear(dw_sql(admin, "DROP DATABASE resolve_other"));
}

static void test_two_phase_needs_prepared_transactions(void)
{
    struct conn_cfg c;
    struct dw_session *s = NULL;
    struct dw_error err;

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(pg->open(make_cfg(&c, conninfo_no2pc, DW_COMMIT_TWO_PHASE, 5000), &s, &err),
                    DW_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(s);
    DW_ASSERT_CONTAINS(err.message, "cannot use commit \"two-phase\"");
    DW_ASSERT_CONTAINS(err.message, "max_prepared_transactions = 0");
    CU_ASSERT(err.hint[0] != '\0');

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(pg->open(make_cfg(&c, conninfo_no2pc, DW_COMMIT_AUTO, 5000), &s, &err), DW_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_FALSE(s->two_phase);
    pg->close(s);
    s = open_session(&c, DW_COMMIT_ONE_PHASE);
    CU_ASSERT_FALSE(s->two_phase);
    pg->close(s);
}

static void test_connection_loss(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_TWO_PHASE);
    const char *const v[] = {"701", "draft", NULL, NULL, NULL, NULL, NULL};
    struct dw_target_op op = OP(DW_OP_UPSERT, "orders", 1, order_cols, v);
    struct dw_error err;

    expect_batch_ok(s, &op, 1);
    terminate_sessions();
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, "dw:lost", &err), DW_ERR_CONNECT);
    DW_ASSERT_CONTAINS(err.message, "connection");
    CU_ASSERT_TRUE(s->broken);
    pg->rollback(s);   /* cannot fail, even now */
    pg->close(s);

    s = open_session(&c, DW_COMMIT_TWO_PHASE);
    CU_ASSERT_FALSE(s->broken);
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, "dw:after-loss", &err), DW_OK);
    CU_ASSERT_EQUAL(pg->resolve_prepared(s, "dw:after-loss", true, &err), DW_OK);
    pg->close(s);
}

static void test_connect_failure(void)
{
    struct conn_cfg c;
    struct dw_session *s = NULL;
    struct dw_error err;
    char ci[600];

    snprintf(ci, sizeof(ci), "host=%s port=%d user=postgres dbname=no_such_db", target.sockdir,
             target.port);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(pg->open(make_cfg(&c, ci, DW_COMMIT_AUTO, 5000), &s, &err), DW_ERR_CONNECT);
    CU_ASSERT_PTR_NULL(s);
    DW_ASSERT_CONTAINS(err.message, "could not connect to the target: ");
    DW_ASSERT_CONTAINS(err.message, "no_such_db");
}

static void test_statement_cache(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_ONE_PHASE);
    struct pg_session *ps = (struct pg_session *) s;
    const char *const bad[] = {"801", "bad", NULL, NULL, NULL, NULL, NULL};
    const char *const good[] = {"1", "2", "3"};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "orders", 1, order_cols, bad),
                                 OP(DW_OP_UPSERT, "lines", 2, line_cols, good)};
    struct dw_error err;

    /* the first op fails, so the Parse of the second shape is skipped: it stays unknown */
    CU_ASSERT_EQUAL(run_batch(s, ops, 2, NULL, &err), DW_ERR_TARGET);
    CU_ASSERT_EQUAL(ps->nstmts, 2);
    CU_ASSERT_EQUAL(ps->stmts[0].state, PG_STMT_READY);
    CU_ASSERT_EQUAL(ps->stmts[1].state, PG_STMT_NEW);
    /* and is parsed again next time */
    expect_batch_ok(s, &ops[1], 1);
    CU_ASSERT_EQUAL(ps->stmts[1].state, PG_STMT_READY);
    expect_batch_ok(s, &ops[1], 1);
    CU_ASSERT_EQUAL(ps->nstmts, 2);
    pg->close(s);
}

static void test_statement_timeout(void)
{
    struct conn_cfg c;
    struct dw_session *s = NULL;
    const char *const v[] = {"901", "draft", NULL, NULL, NULL, NULL, NULL};
    struct dw_target_op op = OP(DW_OP_UPSERT, "orders", 1, order_cols, v);
    PGconn *locker = dw_pg_cluster_connect(&target, "postgres");
    struct dw_error err;

    dw_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(pg->open(make_cfg(&c, conninfo, DW_COMMIT_ONE_PHASE, 1000), &s, &err),
                          DW_OK);
    PQclear(dw_sql(locker, "BEGIN"));
    PQclear(dw_sql(locker, "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"));
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, NULL, &err), DW_ERR_TIMEOUT);
    DW_ASSERT_STREQ(err.sqlstate, "57014");
    DW_ASSERT_CONTAINS(err.message, "statement timeout");
    CU_ASSERT_FALSE(s->broken);
    PQclear(dw_sql(locker, "COMMIT"));
    PQfinish(locker);
    expect_batch_ok(s, &op, 1);
    pg->close(s);
}

static void test_check_table(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_AUTO);
    const char *const missing[] = {"id", "nope", "status", "Total"};
    const char *const key2[] = {"line", "order_id"};
    const char *const status[] = {"status"};
    struct dw_error err;

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(pg->check_table(s, "public.orders", order_cols, 7, &err), DW_OK);
    CU_ASSERT_EQUAL(pg->check_table(s, "orders", missing, 4, &err), DW_ERR_CONFIG);
    DW_ASSERT_STREQ(err.message, "table \"orders\" on the target has no columns \"nope\", \"Total\"");
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(pg->check_table(s, "public.nothing", missing, 1, &err), DW_ERR_CONFIG);
    DW_ASSERT_STREQ(err.message, "table \"public.nothing\" does not exist on the target");
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(pg->check_table(s, "no_schema.orders", missing, 1, &err), DW_ERR_CONFIG);

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(pg->check_key(s, "orders", order_key, 1, &err), DW_OK);
    CU_ASSERT_EQUAL(pg->check_key(s, "public.lines", key2, 2, &err), DW_OK);
    CU_ASSERT_EQUAL(pg->check_key(s, "uniq", (const char *const[]) {"code"}, 1, &err), DW_OK);
    CU_ASSERT_EQUAL(pg->check_key(s, "orders", status, 1, &err), DW_ERR_CONFIG);
    DW_ASSERT_STREQ(err.message, "table \"orders\" on the target has no unique index on the key "
                    "(\"status\")");
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(pg->check_key(s, "lines", line_key, 1, &err), DW_ERR_CONFIG);
    CU_ASSERT_FALSE(s->broken);
    pg->close(s);
}

static void test_thousand_ops(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_TWO_PHASE);
    enum { N = 1000 };
    static char ids[N][16];
    static const char *vals[N][7];
    static struct dw_target_op ops[N];
    struct dw_error err;

    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%d", 20000 + i);
        const char *row[7] = {ids[i], "bulk", "1.00", "2024-06-01T12:00:00Z", "yes",
                              "[1, \"two\", {\"three\": 3}]", "a somewhat longer note to make the "
                              "batch bigger than a socket buffer or two when it is sent"};
        memcpy(vals[i], row, sizeof(row));
        ops[i] = (struct dw_target_op) OP(DW_OP_UPSERT, "orders", 1, order_cols, vals[i]);
    }
    CU_ASSERT_EQUAL(run_batch(s, ops, N, "dw:bulk", &err), DW_OK);
    CU_ASSERT_EQUAL(pg->resolve_prepared(s, "dw:bulk", true, &err), DW_OK);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM orders WHERE status = 'bulk'"), "1000");
    /* the same again, one-phase, as deletes */
    for (int i = 0; i < N; i++) {
        ops[i].kind = DW_OP_DELETE;
        ops[i].ncolumns = 1;
    }
    CU_ASSERT_EQUAL(run_batch(s, ops, N, NULL, &err), DW_OK);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM orders WHERE status = 'bulk'"), "0");
    pg->close(s);
}

/* ---- grouping: consecutive operations of one shape in one statement ---- */

static const char *lines_now(void)
{
    return val("SELECT coalesce(string_agg(order_id || '/' || line || '=' || coalesce(qty::text, "
               "'null'), ',' ORDER BY order_id, line), '') FROM lines WHERE order_id >= 100");
}

static void test_group_duplicate_keys(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_TWO_PHASE);
    struct pg_session *ps = (struct pg_session *) s;
    const char *const a[] = {"100", "1", "5"}, *const b[] = {"100", "2", "6"};
    const char *const a2[] = {"100", "1", "9"}, *const c3[] = {"100", "3", "1"};
    const char *const b2[] = {"100", "2", "7"}, *const d[] = {"101", "1", NULL};
    /* a key twice in a run splits it; an upsert, a delete and an upsert of one key keep their order */
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "lines", 2, line_cols, a),
                                 OP(DW_OP_UPSERT, "lines", 2, line_cols, b),
                                 OP(DW_OP_UPSERT, "lines", 2, line_cols, a2),
                                 OP(DW_OP_UPSERT, "lines", 2, line_cols, c3),
                                 {.kind = DW_OP_DELETE, .table = "lines", .nkey = 2, .ncolumns = 2,
                                  .columns = line_key, .values = b},
                                 {.kind = DW_OP_DELETE, .table = "lines", .nkey = 2, .ncolumns = 2,
                                  .columns = line_key, .values = c3},
                                 {.kind = DW_OP_DELETE, .table = "lines", .nkey = 2, .ncolumns = 2,
                                  .columns = line_key, .values = b},
                                 OP(DW_OP_UPSERT, "lines", 2, line_cols, b2),
                                 OP(DW_OP_UPSERT, "lines", 2, line_cols, d),
                                 OP(DW_OP_UPSERT, "lines", 2, line_cols, a)};
    struct dw_error err;

    CU_ASSERT_EQUAL(run_batch(s, ops, 10, "dw:group-dup", &err), DW_OK);
    CU_ASSERT_EQUAL(pg->resolve_prepared(s, "dw:group-dup", true, &err), DW_OK);
    DW_ASSERT_STREQ(lines_now(), "100/1=5,100/2=7,101/1=null");
    /* the deletes run as 2 + 1: one of them is a grouped statement */
    {
        bool grouped_delete = false;

        for (size_t i = 0; i < ps->nstmts; i++)
            grouped_delete |= strstr(ps->stmts[i].sql, "WHERE (\"order_id\", \"line\") IN "
                                     "(($1, $2), ($3, $4))") != NULL;
        CU_ASSERT_TRUE(grouped_delete);
    }
    pg->close(s);
}

static void test_group_mixed_shapes(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_ONE_PHASE);
    const char *const short_cols[] = {"id", "status"};
    const char *const o1[] = {"1101", "draft", NULL, NULL, NULL, NULL, NULL};
    const char *const o2[] = {"1102", "draft", "2.50", NULL, "true", "{\"a\": null}", "n"};
    const char *const o3[] = {"1102", "confirmed"}, *const o4[] = {"1103", "confirmed"};
    const char *const l1[] = {"102", "1", "3"}, *const l2[] = {"102", "2", NULL};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "orders", 1, order_cols, o1),
                                 OP(DW_OP_UPSERT, "orders", 1, order_cols, o2),
                                 OP(DW_OP_UPSERT, "lines", 2, line_cols, l1),
                                 OP(DW_OP_UPSERT, "lines", 2, line_cols, l2),
                                 OP(DW_OP_UPSERT, "orders", 1, short_cols, o3),
                                 OP(DW_OP_UPSERT, "orders", 1, short_cols, o4),
                                 {.kind = DW_OP_DELETE, .table = "orders", .nkey = 1, .ncolumns = 1,
                                  .columns = order_key, .values = o1},
                                 {.kind = DW_OP_DELETE, .table = "orders", .nkey = 1, .ncolumns = 1,
                                  .columns = order_key, .values = o4}};

    expect_batch_ok(s, ops, 8);
    DW_ASSERT_STREQ(val("SELECT string_agg(id || ':' || status || ':' || coalesce(total::text, '-') "
                        "|| ':' || coalesce(paid::text, '-') || ':' || coalesce(extra::text, '-'), "
                        "',' ORDER BY id) FROM orders WHERE id BETWEEN 1101 AND 1103"),
                    "1102:confirmed:2.50:true:{\"a\": null}");
    DW_ASSERT_STREQ(val("SELECT string_agg(line || '=' || coalesce(qty::text, 'null'), ',' "
                        "ORDER BY line) FROM lines WHERE order_id = 102"), "1=3,2=null");
    pg->close(s);
}

static void test_group_failure_names_the_op(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_TWO_PHASE);
    enum { N = 40 };
    static char ids[N][16];
    static const char *vals[N][7];
    static struct dw_target_op ops[N];
    struct dw_error err;

    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%d", 5200 + i);
        const char *row[7] = {ids[i], i == 27 ? "bad" : "draft", NULL, NULL, NULL, NULL, NULL};
        memcpy(vals[i], row, sizeof(row));
        ops[i] = (struct dw_target_op) OP(DW_OP_UPSERT, "orders", 1, order_cols, vals[i]);
    }
    /* 40 = 32 + 8: the failing op is one row of the first grouped statement */
    CU_ASSERT_EQUAL(run_batch(s, ops, N, "dw:group-bad", &err), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.sqlstate, "23514");
    DW_ASSERT_CONTAINS(err.detail, "Failing row contains (5227, bad");
    DW_ASSERT_CONTAINS(err.context, "operation 27: upsert into table \"orders\"");
    CU_ASSERT_EQUAL(s->failed_op, 27);
    CU_ASSERT_FALSE(s->broken);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM pg_prepared_xacts"), "0");
    DW_ASSERT_STREQ(val("SELECT count(*) FROM orders WHERE id BETWEEN 5200 AND 5239"), "0");
    /* a value the column type refuses (an error at Bind, for the whole statement) too */
    vals[27][1] = "draft";
    vals[30][0] = "not a number";
    CU_ASSERT_EQUAL(run_batch(s, ops, N, "dw:group-bad2", &err), DW_ERR_TARGET);
    DW_ASSERT_STREQ(err.sqlstate, "22P02");
    CU_ASSERT_EQUAL(s->failed_op, 30);
    vals[30][0] = ids[30];
    CU_ASSERT_EQUAL(run_batch(s, ops, N, "dw:group-ok", &err), DW_OK);
    CU_ASSERT_EQUAL(pg->resolve_prepared(s, "dw:group-ok", true, &err), DW_OK);
    DW_ASSERT_STREQ(val("SELECT count(*) FROM orders WHERE id BETWEEN 5200 AND 5239"), "40");
    pg->close(s);
}

static void test_malformed_op(void)
{
    struct conn_cfg c;
    struct dw_session *s = open_session(&c, DW_COMMIT_ONE_PHASE);
    const char *const cols[] = {"name"};
    const char *const v[] = {"blue"};
    struct dw_target_op op = {.kind = DW_OP_UPSERT, .table = "tags", .nkey = 0, .ncolumns = 1,
                              .columns = cols, .values = v};
    struct dw_error err;

    CU_ASSERT_EQUAL(run_batch(s, &op, 1, NULL, &err), DW_ERR_INTERNAL);
    CU_ASSERT_EQUAL(s->failed_op, 0);
    CU_ASSERT_FALSE(s->broken);
    op.nkey = 1;
    expect_batch_ok(s, &op, 1);
    pg->close(s);
}

static void test_registry(void)
{
    const char *const *types = dw_connector_types();

    CU_ASSERT_PTR_EQUAL(dw_connector_find("pg"), pg);
    CU_ASSERT_PTR_NULL(dw_connector_find("nope"));
    CU_ASSERT_PTR_NULL(dw_connector_find(NULL));
    DW_ASSERT_STREQ(types[0], "pg");
    for (size_t i = 0; types[i]; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(dw_connector_find(types[i]));
        DW_ASSERT_STREQ(dw_connector_find(types[i])->type, types[i]);
    }
    DW_ASSERT_STREQ(dw_commit_mode_name(DW_COMMIT_TWO_PHASE), "two-phase");
    DW_ASSERT_STREQ(pg->settings[0], "conninfo");
}

static const struct dw_cunit_test tests[] = {
    {"registry", test_registry},
    {"session setup: origin, application_name, auto two-phase", test_session_setup},
    {"many upserts and deletes in one batch", test_upsert_delete_many},
    {"begin and apply only queue", test_apply_only_queues},
    {"composite keys", test_composite_keys},
    {"nulls, unicode, coercion from text", test_nulls_unicode_types},
    {"quoted identifiers", test_quoted_identifiers},
    {"key-only table", test_key_only_table},
    {"check violation: 23514 and the failing op", test_check_violation},
    {"unique violation with two-phase: 23505", test_unique_violation_two_phase},
    {"prepare, list, resolve", test_prepare_and_resolve},
    {"resolve many in one exchange", test_resolve_many},
    {"two-phase needs max_prepared_transactions", test_two_phase_needs_prepared_transactions},
    {"connection loss breaks the session", test_connection_loss},
    {"connect failure", test_connect_failure},
    {"statement cache", test_statement_cache},
    {"statement timeout", test_statement_timeout},
    {"check_table and check_key", test_check_table},
    {"1000 operations in one batch", test_thousand_ops},
    {"grouping: duplicate keys split a run, order kept", test_group_duplicate_keys},
    {"grouping: mixed shapes, NULLs", test_group_mixed_shapes},
    {"grouping: a failed group names the operation", test_group_failure_names_the_op},
    {"malformed operation", test_malformed_op},
};

int main(void)
{
    static const char *const conf[] = {"max_prepared_transactions = 10", NULL};
    static const char *const conf0[] = {"max_prepared_transactions = 0", NULL};
    int rc;

    dw_fixture_require();
    dw_log_set_level(DW_LOG_WARNING);
    pg = dw_connector_find("pg");
    if (!pg || !dw_pg_cluster_start(&target, conf, false) ||
        !dw_pg_cluster_start(&no2pc, conf0, false))
        return 1;
    dw_pg_cluster_conninfo(&target, "postgres", conninfo, sizeof(conninfo));
    dw_pg_cluster_conninfo(&no2pc, "postgres", conninfo_no2pc, sizeof(conninfo_no2pc));
    admin = dw_pg_cluster_connect(&target, "postgres");
    PQclear(dw_sql(admin,
        "CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL CHECK (status <> 'bad'), "
        "  total numeric(12,2), created timestamptz, paid bool, extra jsonb, note text);"
        "CREATE TABLE lines (order_id int, line int, qty int CHECK (qty > 0), "
        "  PRIMARY KEY (order_id, line));"
        "CREATE TABLE tags (name text PRIMARY KEY);"
        "CREATE TABLE uniq (id int PRIMARY KEY, code text UNIQUE);"
        "CREATE TABLE origin_probe (id int PRIMARY KEY, "
        "  origin text DEFAULT current_setting('dualwrite.origin', true));"
        "CREATE SCHEMA \"Sales Dept\";"
        "CREATE TABLE \"Sales Dept\".\"Order \"\"Items\"\"\" (\"Item Id\" int PRIMARY KEY, "
        "  \"Name\" text, \"select\" text, \"we\"\"ird\" text);"));
    rc = dw_cunit_run("pg connector", tests, sizeof(tests) / sizeof(tests[0]));
    PQfinish(admin);
    dw_pg_cluster_stop(&no2pc);
    dw_pg_cluster_stop(&target);
    return rc;
}
