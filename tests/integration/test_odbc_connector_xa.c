/*
 * The ODBC connector's two-phase commit on MariaDB (XA) and its failures:
 * prepare, list and resolve (also right after the prepare, while MariaDB
 * still hands the transaction over, and for ids longer than 64 bytes); a
 * kill -9 of the server holding prepared transactions; a killed connection
 * and a dead server breaking the session, and reopening; a lock held past the
 * connector's timeout.  Then the generic UPDATE-then-INSERT dialect, run
 * against SQLite.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge/common/dw_log.h"
#include "connectors/dw_connector.h"
#include "connectors/odbc/dw_odbc_int.h"
#include "tests/fixtures/dw_fixture.h"
#include "tests/fixtures/dw_fixture_odbc.h"
#include "tests/integration/odbc_targets.h"
#include "tests/unit/common/dw_cunit.h"

#define ROW(id) {(id), "draft", NULL, NULL}

/* The server's id of the session's connection. */
static long connection_id(struct dw_session *s)
{
    struct odbc_session *os = (struct odbc_session *) s;
    SQLINTEGER id = 0;
    SQLLEN len;

    if (SQL_SUCCEEDED(SQLExecDirect(os->direct, (SQLCHAR *) "SELECT CONNECTION_ID()", SQL_NTS)) &&
        SQL_SUCCEEDED(SQLFetch(os->direct)))
        SQLGetData(os->direct, 1, SQL_C_SLONG, &id, 0, &len);
    SQLFreeStmt(os->direct, SQL_CLOSE);
    if (!os->xa)
        SQLEndTran(SQL_HANDLE_DBC, os->dbc, SQL_ROLLBACK);
    return (long) id;
}

static size_t count_prepared(struct dw_session *s, const char *prefix)
{
    char **gids = NULL;
    size_t n = 0;
    struct dw_error err;

    dw_error_clear(&err);
    if (odbc->list_prepared(s, prefix, &gids, &n, &err) != DW_OK)
        print_err("list_prepared", &err);
    dw_connector_free_gids(gids, n);
    return n;
}

static void test_prepare_list_resolve(void)
{
    struct tcfg c1, c2;
    struct dw_session *s = open_t(&c1, &maria_t, DW_COMMIT_TWO_PHASE);
    struct dw_session *r = open_t(&c2, &maria_t, DW_COMMIT_AUTO);
    const char *const v1[] = ROW("601"), *const v2[] = ROW("602"), *const v3[] = ROW("603");
    struct dw_target_op op1 = OP(DW_OP_UPSERT, "orders", 1, order_cols, v1);
    struct dw_target_op op2 = OP(DW_OP_UPSERT, "orders", 1, order_cols, v2);
    struct dw_target_op op3 = OP(DW_OP_UPSERT, "orders", 1, order_cols, v3);
    struct dw_odbc_conn *other = dw_odbc_conn_open(maria_t.connstr);
    struct dw_error err;
    char **gids = NULL;
    size_t n = 0;

    CU_ASSERT_TRUE(s->two_phase);
    /* begin takes the batch id, prepare the gid "dw:<batch id>" */
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->begin(s, "1:2:601", &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->apply(s, &op1, 1, &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->prepare(s, "dw:1:2:601", &err), DW_OK);
    if (dw_error_is_set(&err))
        print_err("prepare", &err);
    /* settled at once from another session: MariaDB is still handing it over */
    CU_ASSERT_EQUAL(odbc->resolve_prepared(r, "dw:1:2:601", true, &err), DW_OK);
    if (dw_error_is_set(&err))
        print_err("resolve", &err);
    DW_ASSERT_STREQ(tval(&maria_t, "SELECT count(*) FROM orders WHERE id = 601"), "1");

    /* an array of rows, prepared: nothing visible before the commit */
    {
        enum { N = 50 };
        static char ids[N][8];
        static const char *vals[N][4];
        static struct dw_target_op many[N];

        for (int i = 0; i < N; i++) {
            snprintf(ids[i], sizeof(ids[i]), "%d", 650 + i);
            vals[i][0] = ids[i];
            vals[i][1] = "array";
            vals[i][2] = vals[i][3] = NULL;
            many[i] = (struct dw_target_op) OP(DW_OP_UPSERT, "orders", 1, order_cols, vals[i]);
        }
        CU_ASSERT_EQUAL(run_batch(s, many, N, "dw:1:2:650", &err), DW_OK);
        DW_ASSERT_STREQ(tval(&maria_t, "SELECT count(*) FROM orders WHERE status = 'array'"), "0");
        CU_ASSERT_EQUAL(odbc->resolve_prepared(r, "dw:1:2:650", true, &err), DW_OK);
        DW_ASSERT_STREQ(tval(&maria_t, "SELECT count(*) FROM orders WHERE status = 'array'"), "50");
    }
    CU_ASSERT_EQUAL(run_batch(s, &op2, 1, "dw:1:2:602", &err), DW_OK);
    CU_ASSERT_EQUAL(run_batch(s, &op3, 1, "dw:1:2:603", &err), DW_OK);
    /* one that is not ours */
    dw_odbc_sql(other, "XA START 'other:1'");
    dw_odbc_sql(other, "XA END 'other:1'");
    dw_odbc_sql(other, "XA PREPARE 'other:1'");
    dw_odbc_conn_close(other);
    DW_ASSERT_STREQ(tval(&maria_t, "SELECT count(*) FROM orders WHERE id IN (602, 603)"), "0");

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->list_prepared(r, "dw:", &gids, &n, &err), DW_OK);
    CU_ASSERT_EQUAL(n, 2);
    if (n == 2) {
        DW_ASSERT_STREQ(gids[0], "dw:1:2:602");
        DW_ASSERT_STREQ(gids[1], "dw:1:2:603");
    }
    dw_connector_free_gids(gids, n);
    CU_ASSERT_EQUAL(count_prepared(r, "dw_"), 0);
    CU_ASSERT_EQUAL(count_prepared(r, ""), 3);

    CU_ASSERT_EQUAL(odbc->resolve_prepared(r, "dw:1:2:602", true, &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->resolve_prepared(r, "dw:1:2:603", false, &err), DW_OK);
    DW_ASSERT_STREQ(tval(&maria_t, "SELECT count(*) FROM orders WHERE id IN (602, 603)"), "1");
    /* settled already, or never there: success */
    CU_ASSERT_EQUAL(odbc->resolve_prepared(r, "dw:1:2:602", true, &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->resolve_prepared(r, "dw:never", false, &err), DW_OK);
    CU_ASSERT_FALSE(dw_error_is_set(&err));
    CU_ASSERT_EQUAL(odbc->resolve_prepared(r, "other:1", false, &err), DW_OK);
    CU_ASSERT_EQUAL(count_prepared(r, ""), 0);

    /* refused before anything is sent */
    CU_ASSERT_EQUAL(odbc->resolve_prepared(r, "dw:x' OR '1", true, &err), DW_ERR_PROTOCOL);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(run_batch(s, &op1, 1, "dw:'x", &err), DW_ERR_PROTOCOL);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->begin(s, "1:2:604", &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->prepare(s, "dw:1:2:605", &err), DW_ERR_INTERNAL);
    DW_ASSERT_CONTAINS(err.message, "the XA transaction began as \"dw:1:2:604\"");
    odbc->rollback(s);
    CU_ASSERT_FALSE(s->broken);
    CU_ASSERT_FALSE(r->broken);
    odbc->close(s);
    odbc->close(r);
    dw_odbc_sql(maria_t.admin, "DELETE FROM orders");
}

static void test_xa_variants(void)
{
    struct tcfg c;
    struct dw_session *s = open_t(&c, &maria_t, DW_COMMIT_AUTO);
    struct odbc_session *os = (struct odbc_session *) s;
    char id[160], gid[170];
    const char *const v1[] = ROW("701"), *const v2[] = ROW("702");
    const char *const l1[] = {"7", "1", "1"}, *const l2[] = {"7", "2", "2"};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "orders", 1, order_cols, v1),
                                 OP(DW_OP_UPSERT, "order_lines", 2, line_cols, l1),
                                 OP(DW_OP_UPSERT, "orders", 1, order_cols, v2),
                                 OP(DW_OP_UPSERT, "order_lines", 2, line_cols, l2)};
    struct dw_error err;
    size_t nstmts;
    char **gids = NULL;
    size_t n = 0;

    /* commit on a two-phase session: XA COMMIT ... ONE PHASE */
    expect_batch_ok(s, ops, 2, &maria_t);
    DW_ASSERT_STREQ(tval(&maria_t, "SELECT count(*) FROM orders WHERE id = 701"), "1");
    nstmts = os->nstmts;
    /* an id longer than an XA gtrid (64 bytes) continues in bqual */
    memset(id, 'x', 100);
    snprintf(id + 100, sizeof(id) - 100, ":7:702");
    snprintf(gid, sizeof(gid), "dw:%s", id);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->begin(s, id, &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->apply(s, ops + 2, 2, &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->prepare(s, gid, &err), DW_OK);
    if (dw_error_is_set(&err))
        print_err("long gid", &err);
    CU_ASSERT_EQUAL(odbc->list_prepared(s, "dw:", &gids, &n, &err), DW_OK);
    CU_ASSERT_EQUAL(n, 1);
    if (n == 1)
        DW_ASSERT_STREQ(gids[0], gid);
    dw_connector_free_gids(gids, n);
    CU_ASSERT_EQUAL(odbc->resolve_prepared(s, gid, true, &err), DW_OK);
    DW_ASSERT_STREQ(tval(&maria_t, "SELECT count(*) FROM order_lines WHERE order_id = 7"), "2");
    /* too long for XA at all */
    memset(id, 'y', 140);
    id[140] = '\0';
    CU_ASSERT_EQUAL(odbc->begin(s, id, &err), DW_ERR_PROTOCOL);
    dw_error_clear(&err);
    /* a batch that changes nothing (the same values again, a missing row) prepares too */
    {
        const char *const gone[] = {"799"};
        struct dw_target_op same[] = {ops[2], OP(DW_OP_DELETE, "orders", 1, order_key, gone)};

        CU_ASSERT_EQUAL(run_batch(s, same, 2, "dw:same", &err), DW_OK);
        CU_ASSERT_EQUAL(odbc->resolve_prepared(s, "dw:same", true, &err), DW_OK);
        if (dw_error_is_set(&err))
            print_err("resolve same", &err);
        DW_ASSERT_STREQ(tval(&maria_t, "SELECT count(*) FROM orders WHERE id = 702"), "1");
    }
    /* a batch with no operations prepares too */
    CU_ASSERT_EQUAL(run_batch(s, NULL, 0, "dw:empty", &err), DW_OK);
    if (dw_error_is_set(&err))
        print_err("empty", &err);
    CU_ASSERT_EQUAL(odbc->resolve_prepared(s, "dw:empty", true, &err), DW_OK);
    if (dw_error_is_set(&err))
        print_err("resolve empty", &err);
    /* statements survive the reconnect that follows a prepare (prepared again) */
    expect_batch_ok(s, ops, 4, &maria_t);
    CU_ASSERT_EQUAL(os->nstmts, nstmts + 1);    /* the one delete above */
    CU_ASSERT_FALSE(s->broken);
    odbc->close(s);
    dw_odbc_sql(maria_t.admin, "DELETE FROM orders");
    dw_odbc_sql(maria_t.admin, "DELETE FROM order_lines");
}

static void test_killed_connection(void)
{
    struct tcfg c;
    dw_commit_mode modes[] = {DW_COMMIT_ONE_PHASE, DW_COMMIT_TWO_PHASE};

    for (size_t m = 0; m < 2; m++) {
        struct dw_session *s = open_t(&c, &maria_t, modes[m]);
        const char *const v[] = ROW("801");
        struct dw_target_op op = OP(DW_OP_UPSERT, "orders", 1, order_cols, v);
        struct dw_error err;

        expect_batch_ok(s, &op, 1, &maria_t);
        /* killed while idle: the next batch starts over on a new connection */
        dw_odbc_sql(maria_t.admin, "KILL CONNECTION %ld", connection_id(s));
        expect_batch_ok(s, &op, 1, &maria_t);
        CU_ASSERT_FALSE(s->broken);
        odbc->close(s);

        /* killed in the middle of a batch */
        s = open_t(&c, &maria_t, modes[m]);
        dw_error_clear(&err);
        CU_ASSERT_EQUAL(odbc->begin(s, "9:9:802", &err), DW_OK);
        CU_ASSERT_EQUAL(odbc->apply(s, &op, 1, &err), DW_OK);
        dw_odbc_sql(maria_t.admin, "KILL CONNECTION %ld", connection_id(s));
        CU_ASSERT_EQUAL(odbc->commit(s, &err), DW_ERR_CONNECT);
        DW_ASSERT_CONTAINS(err.message, "lost the connection to the target");
        CU_ASSERT_TRUE(s->broken);
        odbc->rollback(s);   /* cannot fail, even now */
        CU_ASSERT_TRUE(s->broken);
        odbc->close(s);
        /* the pool opens a new one */
        s = open_t(&c, &maria_t, modes[m]);
        expect_batch_ok(s, &op, 1, &maria_t);
        odbc->close(s);
    }
    DW_ASSERT_STREQ(tval(&maria_t, "SELECT count(*) FROM orders WHERE id = 801"), "1");
    dw_odbc_sql(maria_t.admin, "DELETE FROM orders");
}

static void test_server_crash_keeps_prepared(void)
{
    struct tcfg c, c2;
    struct dw_session *s = open_t(&c, &maria_t, DW_COMMIT_TWO_PHASE);
    struct dw_session *one = open_t(&c2, &maria_t, DW_COMMIT_ONE_PHASE);
    const char *const v1[] = ROW("901"), *const v2[] = ROW("902"), *const v3[] = ROW("903");
    struct dw_target_op op1 = OP(DW_OP_UPSERT, "orders", 1, order_cols, v1);
    struct dw_target_op op2 = OP(DW_OP_UPSERT, "orders", 1, order_cols, v2);
    struct dw_target_op op3 = OP(DW_OP_UPSERT, "orders", 1, order_cols, v3);
    struct dw_error err;
    char **gids = NULL;
    size_t n = 0;

    CU_ASSERT_EQUAL(run_batch(s, &op1, 1, "dw:crash-1", &err), DW_OK);
    CU_ASSERT_EQUAL(run_batch(s, &op2, 1, "dw:crash-2", &err), DW_OK);
    dw_odbc_conn_close(maria_t.admin);
    maria_t.admin = NULL;
    CU_ASSERT_TRUE_FATAL(dw_mariadb_kill(&maria));
    /* the server is gone: both sessions notice */
    CU_ASSERT_EQUAL(run_batch(s, &op3, 1, "dw:crash-3", &err), DW_ERR_CONNECT);
    CU_ASSERT_TRUE(s->broken);
    CU_ASSERT_EQUAL(run_batch(one, &op3, 1, NULL, &err), DW_ERR_CONNECT);
    CU_ASSERT_TRUE(one->broken);
    odbc->rollback(s);
    odbc->rollback(one);
    odbc->close(s);
    odbc->close(one);
    /* reopening fails while it is down, clearly */
    {
        struct dw_session *none = NULL;

        dw_error_clear(&err);
        CU_ASSERT_EQUAL(odbc->open(make_cfg(&c, maria_t.connstr, DW_COMMIT_AUTO, 5000), &none,
                                   &err), DW_ERR_CONNECT);
        DW_ASSERT_CONTAINS(err.message, "could not connect to the target: ");
    }
    CU_ASSERT_TRUE_FATAL(dw_mariadb_restart(&maria));
    maria_t.admin = dw_odbc_conn_open(maria_t.connstr);

    /* XA RECOVER still has them after crash recovery */
    s = open_t(&c, &maria_t, DW_COMMIT_AUTO);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->list_prepared(s, "dw:", &gids, &n, &err), DW_OK);
    CU_ASSERT_EQUAL(n, 2);
    if (n == 2) {
        DW_ASSERT_STREQ(gids[0], "dw:crash-1");
        DW_ASSERT_STREQ(gids[1], "dw:crash-2");
    }
    dw_connector_free_gids(gids, n);
    CU_ASSERT_EQUAL(odbc->resolve_prepared(s, "dw:crash-1", true, &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->resolve_prepared(s, "dw:crash-2", false, &err), DW_OK);
    if (dw_error_is_set(&err))
        print_err("resolve after crash", &err);
    DW_ASSERT_STREQ(tval(&maria_t, "SELECT GROUP_CONCAT(id) FROM orders WHERE id > 900"), "901");
    CU_ASSERT_EQUAL(count_prepared(s, ""), 0);
    expect_batch_ok(s, &op3, 1, &maria_t);
    odbc->close(s);
    dw_odbc_sql(maria_t.admin, "DELETE FROM orders");
}

static void test_lock_timeout(void)
{
    struct tcfg c1, c2;
    struct dw_session *holder = open_t(&c1, &maria_t, DW_COMMIT_TWO_PHASE);
    struct dw_session *s = NULL;
    const char *const v[] = ROW("950");
    struct dw_target_op op = OP(DW_OP_UPSERT, "orders", 1, order_cols, v);
    struct dw_error err;

    dw_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(odbc->open(make_cfg(&c2, maria_t.connstr, DW_COMMIT_ONE_PHASE, 1500),
                                     &s, &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->begin(holder, "1:1:950", &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->apply(holder, &op, 1, &err), DW_OK);
    /* the row is locked by holder's transaction: s gives up after its timeout */
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, NULL, &err), DW_ERR_TIMEOUT);
    DW_ASSERT_CONTAINS(err.message, "exceeded");
    CU_ASSERT_FALSE(s->broken);
    CU_ASSERT_EQUAL(s->failed_op, 0);
    odbc->rollback(holder);
    expect_batch_ok(s, &op, 1, &maria_t);
    odbc->close(holder);
    odbc->close(s);
    dw_odbc_sql(maria_t.admin, "DELETE FROM orders");
}

static pid_t server_pid(void)
{
    char path[400], buf[32] = "";
    FILE *f;

    snprintf(path, sizeof(path), "%s/mariadbd.pid", maria.dir);
    f = fopen(path, "r");
    if (f) {
        if (!fgets(buf, sizeof(buf), f))
            buf[0] = '\0';
        fclose(f);
    }
    return (pid_t) atoi(buf);
}

static void test_server_stops_answering(void)
{
    struct tcfg c;
    struct dw_session *s = NULL;
    const char *const v[] = ROW("960");
    struct dw_target_op op = OP(DW_OP_UPSERT, "orders", 1, order_cols, v);
    struct dw_error err;
    pid_t pid = server_pid();

    CU_ASSERT_FATAL(pid > 0);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(odbc->open(make_cfg(&c, maria_t.connstr, DW_COMMIT_ONE_PHASE, 1000),
                                     &s, &err), DW_OK);
    expect_batch_ok(s, &op, 1, &maria_t);
    /* frozen, not gone: only the driver's read timeout ends the wait */
    kill(pid, SIGSTOP);
    CU_ASSERT_EQUAL(run_batch(s, &op, 1, NULL, &err), DW_ERR_TIMEOUT);
    kill(pid, SIGCONT);
    DW_ASSERT_CONTAINS(err.message, "the target did not answer within 1000 ms");
    CU_ASSERT_TRUE(s->broken);
    odbc->close(s);
    s = open_t(&c, &maria_t, DW_COMMIT_ONE_PHASE);
    expect_batch_ok(s, &op, 1, &maria_t);
    odbc->close(s);
    dw_odbc_sql(maria_t.admin, "DELETE FROM orders");
}

static void *resolve_elsewhere(void *arg)
{
    struct dw_error err;

    dw_error_clear(&err);
    return (void *) (intptr_t) odbc->resolve_prepared(arg, "dw:elsewhere", true, &err);
}

/* A driver lock left held by XA RECOVER would hang the next thread to use the session. */
static void test_session_moves_threads(void)
{
    struct tcfg c;
    struct dw_session *s = open_t(&c, &maria_t, DW_COMMIT_AUTO);
    struct timespec deadline;
    pthread_t th;
    void *ret = NULL;

    CU_ASSERT_EQUAL(count_prepared(s, "dw:"), 0);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, resolve_elsewhere, s), 0);
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    if (pthread_timedjoin_np(th, &ret, &deadline) == ETIMEDOUT) {
        CU_FAIL("the session hangs on another thread after list_prepared");
        return;    /* the thread stays stuck; the test program exits anyway */
    }
    CU_ASSERT_EQUAL((dw_errcode) (intptr_t) ret, DW_OK);
    odbc->close(s);
}

static void test_update_then_insert(void)
{
    struct tcfg c;
    struct dw_session *s = open_t(&c, &sqlite_t, DW_COMMIT_AUTO);
    struct odbc_session *os = (struct odbc_session *) s;
    const char *const a[] = {"1", "draft", "1.5", NULL}, *const b[] = {"2", "draft", NULL, "x"};
    const char *const a2[] = {"1", "sent", NULL, "y"}, *const bad[] = {"3", "bad", NULL, NULL};
    const char *const tag[] = {"blue"};
    struct dw_target_op ops[] = {OP(DW_OP_UPSERT, "orders", 1, order_cols, a),
                                 OP(DW_OP_UPSERT, "orders", 1, order_cols, b),
                                 OP(DW_OP_UPSERT, "orders", 1, order_cols, a2),
                                 OP(DW_OP_DELETE, "orders", 1, order_key, b),
                                 OP(DW_OP_UPSERT, "tags", 1, tag_cols, tag),
                                 OP(DW_OP_UPSERT, "tags", 1, tag_cols, tag)};
    struct dw_target_op fail[] = {OP(DW_OP_UPSERT, "orders", 1, order_cols, b),
                                  OP(DW_OP_UPSERT, "orders", 1, order_cols, bad)};
    struct dw_error err;

    /* what a DBMS without a known upsert gets */
    os->dialect = ODBC_UPSERT_UPDATE_INSERT;
    expect_batch_ok(s, ops, 6, &sqlite_t);
    DW_ASSERT_STREQ(tval(&sqlite_t, "SELECT group_concat(id || ':' || status || ':' || "
                                    "coalesce(total, '-') || ':' || coalesce(note, '-')) "
                                    "FROM orders"), "1:sent:-:y");
    DW_ASSERT_STREQ(tval(&sqlite_t, "SELECT count(*) FROM tags WHERE name = 'blue'"), "1");
    CU_ASSERT_EQUAL(run_batch(s, fail, 2, NULL, &err), DW_ERR_TARGET);
    CU_ASSERT_EQUAL(s->failed_op, 1);
    DW_ASSERT_CONTAINS(err.message, "CHECK constraint failed");
    DW_ASSERT_STREQ(tval(&sqlite_t, "SELECT count(*) FROM orders"), "1");
    odbc->close(s);
    dw_odbc_sql(sqlite_t.admin, "DELETE FROM orders");
    dw_odbc_sql(sqlite_t.admin, "DELETE FROM tags");
}

static void test_one_phase_targets_have_no_xa(void)
{
    struct tcfg c;
    struct dw_session *s = open_t(&c, &sqlite_t, DW_COMMIT_AUTO);
    struct dw_error err;
    char **gids = NULL;
    size_t n = 7;

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->list_prepared(s, "dw:", &gids, &n, &err), DW_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(odbc->resolve_prepared(s, "dw:x", true, &err), DW_ERR_CONFIG);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(odbc->begin(s, "1:1:1", &err), DW_OK);
    CU_ASSERT_EQUAL(odbc->prepare(s, "dw:1:1:1", &err), DW_ERR_INTERNAL);
    odbc->rollback(s);
    odbc->close(s);
}

static const struct dw_cunit_test tests[] = {
    {"XA: prepare, list, resolve", test_prepare_list_resolve},
    {"XA: one-phase commit, long ids, empty batch, statements after prepare", test_xa_variants},
    {"a killed connection: reconnect before the batch, broken within it", test_killed_connection},
    {"kill -9 of the server keeps prepared transactions", test_server_crash_keeps_prepared},
    {"a lock held past the timeout", test_lock_timeout},
    {"a server that stops answering", test_server_stops_answering},
    {"a session moves to another thread after listing", test_session_moves_threads},
    {"UPDATE-then-INSERT dialect", test_update_then_insert},
    {"one-phase targets have no XA", test_one_phase_targets_have_no_xa},
};

int main(void)
{
    int rc;

    dw_log_set_level(DW_LOG_WARNING);
    targets_start(false);
    rc = dw_cunit_run("odbc connector: XA and failures", tests, sizeof(tests) / sizeof(tests[0]));
    targets_stop();
    return rc;
}
