/*
 * Integration tests of the PostgreSQL extension "dualwrite" (issue 3): a real
 * throwaway PostgreSQL 15 cluster with the module in shared_preload_libraries,
 * and the fake bridge (tests/integration/fake_bridge.c) on a Unix socket in
 * the test's private folder.  Each test programs the fake's answer, runs SQL
 * through libpq, and checks both sides: what the source kept, and exactly
 * what the bridge received.
 *
 * Capture triggers are created with plain SQL here; `dwctl hooks install`
 * gets its own tests once the configuration loader exists.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "tests/fixtures/dw_fixture.h"
#include "tests/integration/fake_bridge.h"
#include "tests/unit/common/dw_cunit.h"

static struct dw_pg_cluster cluster;
static struct fake_bridge *fb;
static char bridge_path[512];
static PGconn *db;
static char sysid[32];
static char dboid[16];

/* the value of a column that is SQL null, in expectations */
static const char sql_null[] = "<SQL NULL>";
#define NUL_ sql_null

/* ---- helpers ---- */





/* q(): SQL that may fail (tests/fixtures/dw_fixture.h) */
#define q dw_sql_try

#define ASSERT_OK(r)                                                                       \
    do {                                                                                   \
        struct dw_sql_res r_ = (r);                                                               \
        if (!r_.ok)                                                                        \
            fprintf(stderr, "\n    unexpected error %s: %s (%s)\n", r_.state, r_.msg,     \
                    r_.detail);                                                            \
        CU_ASSERT(r_.ok);                                                                  \
    } while (0)

#define ASSERT_FAILS(r, sqlstate, msgpart)                                                 \
    do {                                                                                   \
        CU_ASSERT(!(r).ok);                                                                \
        DW_ASSERT_STREQ((r).state, (sqlstate));                                            \
        DW_ASSERT_CONTAINS((r).msg, (msgpart));                                            \
    } while (0)

static long count_rows(const char *table, const char *where)
{
    const char *v = dw_sql_value(db, "SELECT count(*) FROM %s WHERE %s", table, where);

    return v ? atol(v) : -1;
}

/* Delete everything from the test tables without replicating it. */
static void clean_tables(void)
{
    PQclear(dw_sql(db, "SET dualwrite.enabled = off; "
                       "TRUNCATE orders, order_lines, typed, bulk, parts; "
                       "RESET dualwrite.enabled; RESET dualwrite.origin; "
                       "RESET dualwrite.commit_timeout; RESET dualwrite.bridge; "
                       "RESET dualwrite.token"));
}

static void behave(const struct fake_behaviour *b)
{
    fake_bridge_set(fb, b);
}

static void behave_ok(void)
{
    struct fake_behaviour b = fake_behaviour_ok();

    behave(&b);
}

/* Start each test from empty tables, a committed-verdict bridge and no records. */
static void fresh(void)
{
    behave_ok();
    clean_tables();
    fake_bridge_reset(fb);
}

static void batch_id_for(const char *xid, char *out, size_t size)
{
    snprintf(out, size, "%s:%s:%s", sysid, dboid, xid);
}

/* BEGIN; sql; (remember the xid); COMMIT */
static struct dw_sql_res commit_tx(PGconn *c, const char *sql, char *batch_id, size_t size)
{
    struct dw_sql_res r;
    const char *xid;

    r = q(c, "BEGIN; %s", sql);
    if (!r.ok)
        return r;
    xid = dw_sql_value(c, "SELECT pg_current_xact_id()");
    if (batch_id)
        batch_id_for(xid ? xid : "?", batch_id, size);
    return q(c, "COMMIT");
}

/*
 * Check one row image: kv is name, value, name, value, ..., NULL, with
 * NUL_ for SQL null; kv NULL means "no image".
 */
static void expect_row(const struct dw_row *row, const char *const *kv, const char *what)
{
    size_t n = 0;

    if (!kv) {
        if (row->ncols != 0)
            fprintf(stderr, "\n    %s: expected no image, got %zu columns\n", what, row->ncols);
        CU_ASSERT_EQUAL(row->ncols, 0);
        return;
    }
    while (kv[2 * n])
        n++;
    if (row->ncols != n)
        fprintf(stderr, "\n    %s: expected %zu columns, got %zu\n", what, n, row->ncols);
    CU_ASSERT_EQUAL_FATAL(row->ncols, n);
    for (size_t i = 0; i < n; i++) {
        const char *want = kv[2 * i + 1];
        const char *got = row->values[i];

        DW_ASSERT_STREQ(row->names[i], kv[2 * i]);
        if (want == NUL_) {
            if (got)
                fprintf(stderr, "\n    %s.%s: expected null, got \"%s\"\n", what, kv[2 * i], got);
            CU_ASSERT_PTR_NULL(got);
        } else {
            DW_ASSERT_STREQ(got, want);
        }
    }
}

static void expect_change(const struct dw_batch *b, size_t i, const char *table, dw_change_op op,
                          const char *const *old_kv, const char *const *new_kv)
{
    const struct dw_change *c;
    char what[64];

    CU_ASSERT_FATAL(b != NULL);
    if (i >= b->nchanges) {
        fprintf(stderr, "\n    change %zu missing (batch has %zu)\n", i, b->nchanges);
        CU_FAIL_FATAL("missing change");
    }
    c = &b->changes[i];
    snprintf(what, sizeof(what), "change %zu", i);
    DW_ASSERT_STREQ(c->table, table);
    CU_ASSERT_EQUAL(c->op, op);
    expect_row(&c->old_row, old_kv, what);
    expect_row(&c->new_row, new_kv, what);
}

#define ROW(...) ((const char *const[]){__VA_ARGS__, NULL})

/* the int value of column name in a row image, or -1 */
static long row_int(const struct dw_row *r, const char *name)
{
    for (size_t i = 0; i < r->ncols; i++) {
        if (strcmp(r->names[i], name) == 0 && r->values[i])
            return atol(r->values[i]);
    }
    return -1;
}

/* The ids of the batch's changes, "1,3,4". */
static void change_ids(const struct dw_batch *b, char *out, size_t size)
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; b && i < b->nchanges && len + 16 < size; i++) {
        const struct dw_row *r = b->changes[i].new_row.ncols ? &b->changes[i].new_row
                                                              : &b->changes[i].old_row;

        len += (size_t) snprintf(out + len, size - len, "%s%ld", i ? "," : "", row_int(r, "id"));
    }
}

static int fd_count(const char *pid)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%s/fd", pid);
    d = opendir(path);
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n;
}

static long rss_anon_kb(const char *pid)
{
    char path[64], line[256];
    FILE *f;
    long kb = -1;

    snprintf(path, sizeof(path), "/proc/%s/status", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "RssAnon: %ld", &kb) == 1)
            break;
    }
    fclose(f);
    return kb;
}

/* ---- setup ---- */

static void install_triggers(const char *table, const char *maps, const char *cols)
{
    PQclear(dw_sql(db,
                   "CREATE TRIGGER dualwrite_capture AFTER INSERT OR UPDATE OR DELETE ON %s "
                   "FOR EACH ROW EXECUTE FUNCTION dualwrite.capture('%s', %s); "
                   "ALTER TABLE %s ENABLE ALWAYS TRIGGER dualwrite_capture; "
                   "CREATE TRIGGER dualwrite_truncate BEFORE TRUNCATE ON %s "
                   "FOR EACH STATEMENT EXECUTE FUNCTION dualwrite.reject_truncate('%s'); "
                   "ALTER TABLE %s ENABLE ALWAYS TRIGGER dualwrite_truncate",
                   table, maps, cols, table, table, maps, table));
}

static void setup(void)
{
    char line_bridge[600];
    const char *conf[6];
    const char *v;

    snprintf(bridge_path, sizeof(bridge_path), "%s/bridge.sock", dw_fixture_tmpdir());
    snprintf(line_bridge, sizeof(line_bridge), "dualwrite.bridge = '%s'", bridge_path);
    conf[0] = "shared_preload_libraries = 'dualwrite'";
    conf[1] = line_bridge;
    conf[2] = "dualwrite.commit_timeout = '20s'";
    conf[3] = "max_prepared_transactions = 5";
    conf[4] = "log_min_messages = warning";
    conf[5] = NULL;
    if (!dw_pg_cluster_start(&cluster, conf, true)) {
        fprintf(stderr, "could not start a cluster with the dualwrite module\n");
        exit(1);
    }
    fb = fake_bridge_start_unix(bridge_path);
    db = dw_pg_cluster_connect(&cluster, "postgres");
    PQclear(dw_sql(db, "SET client_min_messages = warning"));
    PQclear(dw_sql(db, "CREATE EXTENSION dualwrite"));
    PQclear(dw_sql(db,
                   "CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric(12,2), "
                   "  note text, secret text);"
                   "CREATE TABLE order_lines (order_id int, line int, qty int, "
                   "  PRIMARY KEY (order_id, line));"
                   "CREATE TABLE unmapped (id int PRIMARY KEY, v text);"
                   "CREATE TABLE typed (id int PRIMARY KEY, n numeric, ts timestamptz, "
                   "  t timestamp, d date, iv interval, f8 float8, f4 float4, b bytea, j json, "
                   "  jb jsonb, u text, arr timestamptz[], tstz_range tstzrange);"
                   "CREATE TABLE bulk (id bigserial PRIMARY KEY, v int);"
                   "CREATE TABLE parts (id int, region text) PARTITION BY LIST (region);"
                   "CREATE TABLE parts_eu PARTITION OF parts FOR VALUES IN ('eu');"
                   "CREATE TABLE parts_us PARTITION OF parts FOR VALUES IN ('us');"
                   "CREATE TABLE badcols (id int PRIMARY KEY);"
                   "CREATE ROLE app LOGIN;"
                   "GRANT ALL ON orders, unmapped TO app;"));
    install_triggers("orders", "orders", "'id', 'status', 'total', 'note'");
    install_triggers("order_lines", "order_lines,lines_audit", "'order_id', 'line', 'qty'");
    install_triggers("typed", "typed",
                     "'id', 'n', 'ts', 't', 'd', 'iv', 'f8', 'f4', 'b', 'j', 'jb', 'u', 'arr', "
                     "'tstz_range'");
    install_triggers("bulk", "bulk", "'id', 'v'");
    PQclear(dw_sql(db, "CREATE TRIGGER dualwrite_capture AFTER INSERT OR UPDATE OR DELETE ON "
                       "parts FOR EACH ROW EXECUTE FUNCTION dualwrite.capture('parts', 'id', "
                       "'region')"));
    PQclear(dw_sql(db, "CREATE TRIGGER dualwrite_capture AFTER INSERT ON badcols FOR EACH ROW "
                       "EXECUTE FUNCTION dualwrite.capture('badcols', 'id', 'nosuchcolumn')"));
    PQclear(dw_sql(db,
                   "CREATE PROCEDURE many_commits(n int) LANGUAGE plpgsql AS $$ "
                   "BEGIN FOR i IN 1..n LOOP INSERT INTO bulk (v) VALUES (i); COMMIT; END LOOP; "
                   "END $$"));
    v = dw_sql_value(db, "SELECT system_identifier FROM pg_control_system()");
    snprintf(sysid, sizeof(sysid), "%s", v ? v : "?");
    v = dw_sql_value(db, "SELECT oid FROM pg_database WHERE datname = current_database()");
    snprintf(dboid, sizeof(dboid), "%s", v ? v : "?");
}

static void teardown(void)
{
    if (db)
        PQfinish(db);
    fake_bridge_stop(fb);
    dw_pg_cluster_stop(&cluster);
}

/* ---- the contract: commit, veto, fail closed ---- */

static void test_commit_keeps_rows_and_sends_exact_batch(void)
{
    char id[128], outcome[32];
    const struct dw_batch *b;
    size_t accepts;
    struct dw_sql_res r;

    fresh();
    r = commit_tx(db,
                  "INSERT INTO orders VALUES (17, 'draft', 12.5, NULL, 'not captured');"
                  "INSERT INTO order_lines VALUES (17, 1, 2);",
                  id, sizeof(id));
    ASSERT_OK(r);
    CU_ASSERT_EQUAL(count_rows("orders", "id = 17"), 1);
    CU_ASSERT_EQUAL(count_rows("order_lines", "order_id = 17"), 1);
    CU_ASSERT_EQUAL_FATAL(fake_bridge_batch_count(fb), 1);
    CU_ASSERT_EQUAL(fake_bridge_decode_errors(fb), 0);
    b = fake_bridge_batch(fb, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    DW_ASSERT_STREQ(b->id, id);
    DW_ASSERT_STREQ(b->source_system, sysid);
    DW_ASSERT_STREQ(b->source_database, "postgres");
    CU_ASSERT_PTR_NOT_NULL_FATAL(strrchr(id, ':'));
    DW_ASSERT_STREQ(b->source_xid, strrchr(id, ':') + 1);
    CU_ASSERT_PTR_NULL(b->origin);
    CU_ASSERT(b->deadline_ms > 15000 && b->deadline_ms <= 20000);
    CU_ASSERT_EQUAL_FATAL(b->nchanges, 2);
    expect_change(b, 0, "public.orders", DW_CHANGE_INSERT, NULL,
                  ROW("id", "17", "status", "draft", "total", "12.50", "note", NUL_));
    expect_change(b, 1, "public.order_lines", DW_CHANGE_INSERT, NULL,
                  ROW("order_id", "17", "line", "1", "qty", "2"));
    CU_ASSERT(fake_bridge_wait_outcome(fb, id, 5000, outcome, sizeof(outcome)));
    DW_ASSERT_STREQ(outcome, "committed");

    /* keep-alive: more transactions reuse the connection */
    accepts = fake_bridge_accepts(fb);
    for (int i = 0; i < 5; i++)
        ASSERT_OK(q(db, "INSERT INTO orders (id, status) VALUES (%d, 'x')", 100 + i));
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 6);
    CU_ASSERT_EQUAL(fake_bridge_accepts(fb), accepts);
}

static void test_prepared_verdict_commits(void)
{
    struct fake_behaviour b = fake_behaviour_ok();
    char id[128], outcome[32];

    fresh();
    b.status = DW_VERDICT_PREPARED;
    behave(&b);
    ASSERT_OK(commit_tx(db, "INSERT INTO orders (id, status) VALUES (1, 'p')", id, sizeof(id)));
    CU_ASSERT_EQUAL(count_rows("orders", "id = 1"), 1);
    CU_ASSERT(fake_bridge_wait_outcome(fb, id, 5000, outcome, sizeof(outcome)));
    DW_ASSERT_STREQ(outcome, "committed");
}

static void test_rejected_fails_commit_with_target_sqlstate(void)
{
    struct fake_behaviour b = fake_behaviour_ok();
    struct dw_sql_res r;

    fresh();
    b.status = DW_VERDICT_REJECTED;
    b.stage = "operation";
    b.map = "orders";
    b.change = 0;
    b.message = "duplicate key value violates unique constraint \"accounts_pkey\"";
    b.detail = "Key (account_no)=(17) already exists.";
    b.target_sqlstate = "23505";
    behave(&b);
    r = commit_tx(db, "INSERT INTO orders (id, status) VALUES (2, 'dup')", NULL, 0);
    ASSERT_FAILS(r, "23505", "dualwrite: target rejected the transaction");
    DW_ASSERT_CONTAINS(r.detail, "accounts_pkey");
    DW_ASSERT_CONTAINS(r.detail, "Key (account_no)=(17) already exists.");
    DW_ASSERT_CONTAINS(r.context, "table map \"orders\"");
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 0);
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 1);
    /* a rejected batch left nothing on the target: no outcome to send */
    usleep(200000);
    CU_ASSERT_EQUAL(fake_bridge_outcome_count(fb), 0);

    /* without a target SQLSTATE: the dualwrite class */
    b.target_sqlstate = NULL;
    behave(&b);
    r = q(db, "INSERT INTO orders (id, status) VALUES (3, 'x')");
    ASSERT_FAILS(r, "YW002", "target rejected the transaction");
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 0);
    /* the connection stays usable after a well-formed rejection */
    behave_ok();
    ASSERT_OK(q(db, "INSERT INTO orders (id, status) VALUES (4, 'ok')"));
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 1);
}

static void test_prevalidation_throttle_unavailable(void)
{
    struct fake_behaviour b = fake_behaviour_ok();
    struct dw_sql_res r;

    fresh();
    b.status = DW_VERDICT_REJECTED;
    b.stage = "pre-validation";
    b.map = "orders";
    b.change = 0;
    b.message = "table map \"orders\" field \"status\": value \"archived\" has no entry";
    behave(&b);
    r = q(db, "INSERT INTO orders (id, status) VALUES (1, 'archived')");
    ASSERT_FAILS(r, "YW003", "table map \"orders\"");
    DW_ASSERT_CONTAINS(r.detail, "has no entry");

    b = fake_behaviour_ok();
    b.status = DW_VERDICT_THROTTLED;
    b.stage = "pre-validation";
    b.message = "connector \"crm\": 6000 requests in 300 s";
    b.retry_after_s = 7;
    behave(&b);
    r = q(db, "INSERT INTO orders (id, status) VALUES (1, 'x')");
    ASSERT_FAILS(r, "YW004", "throttled");
    DW_ASSERT_CONTAINS(r.hint, "Retry in 7 seconds");

    b = fake_behaviour_ok();
    b.status = DW_VERDICT_UNAVAILABLE;
    b.stage = "operation";
    b.message = "connector \"crm\": connection refused";
    behave(&b);
    r = q(db, "INSERT INTO orders (id, status) VALUES (1, 'x')");
    ASSERT_FAILS(r, "YW005", "target is unavailable");
    DW_ASSERT_CONTAINS(r.detail, "connection refused");
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 0);

    /* the bridge is draining for a shutdown: it says so, and the target is not blamed */
    b = fake_behaviour_ok();
    b.mode = FAKE_RAW;   /* exactly what dualwrited sends while it drains: a verdict without id */
    b.raw = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            "Content-Length: {clen}\r\nConnection: close\r\n\r\n"
            "{\"status\":\"unavailable\",\"stage\":\"shutdown\",\"message\":\"the bridge is "
            "shutting down; retry the transaction when it is back\"}";
    b.close_after = true;
    behave(&b);
    r = q(db, "INSERT INTO orders (id, status) VALUES (1, 'x')");
    ASSERT_FAILS(r, "YW005", "dualwrite: the bridge is shutting down");
    CU_ASSERT_PTR_NULL(strstr(r.msg, "target"));
    DW_ASSERT_CONTAINS(r.detail, "shutting down");
    DW_ASSERT_CONTAINS(r.hint, "Retry the transaction when the bridge is back");
    DW_ASSERT_CONTAINS(r.context, "stage \"shutdown\"");
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 0);
    /* and the next transaction goes through once the bridge is back */
    behave_ok();
    ASSERT_OK(q(db, "INSERT INTO orders (id, status) VALUES (1, 'x')"));
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 1);
}

static void test_bridge_not_listening_fails_fast(void)
{
    char path[600];
    struct dw_sql_res r;

    fresh();
    snprintf(path, sizeof(path), "%s/nobody.sock", dw_fixture_tmpdir());
    ASSERT_OK(q(db, "SET dualwrite.bridge = '%s'; SET dualwrite.commit_timeout = '60s'", path));
    r = q(db, "INSERT INTO orders (id, status) VALUES (1, 'x')");
    ASSERT_FAILS(r, "YW001", "could not reach the bridge at");
    DW_ASSERT_CONTAINS(r.msg, path);
    CU_ASSERT(r.ms < 5000);
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 0);

    /* a socket the server's OS user may not use */
    {
        struct fake_bridge *closed;

        snprintf(path, sizeof(path), "%s/private.sock", dw_fixture_tmpdir());
        closed = fake_bridge_start_unix(path);
        CU_ASSERT_FATAL(chmod(path, 0600) == 0);
        ASSERT_OK(q(db, "SET dualwrite.bridge = '%s'", path));
        r = q(db, "INSERT INTO orders (id, status) VALUES (1, 'x')");
        ASSERT_FAILS(r, "YW001", "permission denied");
        DW_ASSERT_CONTAINS(r.hint, "socket's group");
        fake_bridge_stop(closed);
    }

    /* TCP: nothing listens on that port */
    ASSERT_OK(q(db, "SET dualwrite.bridge = '127.0.0.1:%d'", dw_fixture_free_port()));
    r = q(db, "INSERT INTO orders (id, status) VALUES (1, 'x')");
    ASSERT_FAILS(r, "YW001", "connection refused");
    CU_ASSERT(r.ms < 5000);
    ASSERT_OK(q(db, "RESET dualwrite.bridge"));
    ASSERT_OK(q(db, "INSERT INTO orders (id, status) VALUES (1, 'x')"));
}

static void test_never_answering_bridge_times_out(void)
{
    struct fake_behaviour b = fake_behaviour_ok();
    struct dw_sql_res r;

    fresh();
    b.mode = FAKE_SILENT;
    behave(&b);
    ASSERT_OK(q(db, "SET dualwrite.commit_timeout = '500ms'"));
    r = q(db, "INSERT INTO orders (id, status) VALUES (1, 'x')");
    ASSERT_FAILS(r, "YW006", "did not answer within dualwrite.commit_timeout (500 ms)");
    DW_ASSERT_CONTAINS(r.detail, "unknown");
    CU_ASSERT(r.ms >= 450);
    CU_ASSERT(r.ms < 10000);
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 0);
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 1);
    /* the next transaction gets a fresh connection and goes through */
    behave_ok();
    ASSERT_OK(q(db, "INSERT INTO orders (id, status) VALUES (2, 'x')"));
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 1);
}

static void test_cancel_during_wait_aborts_promptly(void)
{
    struct fake_behaviour b = fake_behaviour_ok();
    PGconn *other = dw_pg_cluster_connect(&cluster, "postgres");
    char pid[32];
    PGresult *res;
    struct dw_sql_res r;
    long t0;

    fresh();
    b.mode = FAKE_SILENT;
    behave(&b);
    snprintf(pid, sizeof(pid), "%s", dw_sql_value(db, "SELECT pg_backend_pid()"));
    ASSERT_OK(q(db, "SET dualwrite.commit_timeout = '60s'"));
    ASSERT_OK(q(db, "BEGIN; INSERT INTO orders (id, status) VALUES (1, 'x')"));
    CU_ASSERT_FATAL(PQsendQuery(db, "COMMIT") == 1);
    CU_ASSERT_FATAL(fake_bridge_wait_batches(fb, 1, 10000));
    usleep(100000);
    t0 = dw_fixture_now_ms();
    PQclear(dw_sql(other, "SELECT pg_cancel_backend(%s)", pid));
    res = PQgetResult(db);
    dw_sql_res_fill(&r, res, db);
    PQclear(res);
    while ((res = PQgetResult(db)) != NULL)
        PQclear(res);
    ASSERT_FAILS(r, "57014", "canceling statement due to user request");
    CU_ASSERT(dw_fixture_now_ms() - t0 < 5000);
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 0);
    /* the backend is still fine and reconnects */
    behave_ok();
    ASSERT_OK(q(db, "INSERT INTO orders (id, status) VALUES (2, 'x')"));
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 1);
    PQfinish(other);
}

/* ---- the unit of work ---- */

static void test_savepoints(void)
{
    char ids[256];

    fresh();
    ASSERT_OK(q(db, "BEGIN;"
                    "INSERT INTO orders (id) VALUES (1);"
                    "SAVEPOINT a; INSERT INTO orders (id) VALUES (2); ROLLBACK TO a;"
                    "INSERT INTO orders (id) VALUES (3);"
                    "COMMIT"));
    CU_ASSERT_EQUAL_FATAL(fake_bridge_batch_count(fb), 1);
    change_ids(fake_bridge_batch(fb, 0), ids, sizeof(ids));
    DW_ASSERT_STREQ(ids, "1,3");

    /* nested, released and rolled back, restarted after ROLLBACK TO */
    fresh();
    ASSERT_OK(q(db, "BEGIN;"
                    "INSERT INTO orders (id) VALUES (1);"
                    "SAVEPOINT a; INSERT INTO orders (id) VALUES (2);"
                    "  SAVEPOINT b; INSERT INTO orders (id) VALUES (3); RELEASE b;"
                    "  INSERT INTO orders (id) VALUES (4);"
                    "  SAVEPOINT c; INSERT INTO orders (id) VALUES (5);"
                    "    SAVEPOINT d; INSERT INTO orders (id) VALUES (6);"
                    "  ROLLBACK TO c; INSERT INTO orders (id) VALUES (7);"
                    "RELEASE a;"
                    "INSERT INTO orders (id) VALUES (8);"
                    "SAVEPOINT e; INSERT INTO orders (id) VALUES (9); UPDATE orders SET status = 'u' "
                    "  WHERE id = 1; ROLLBACK TO e;"
                    "SAVEPOINT f; UPDATE orders SET status = 'kept' WHERE id = 2; RELEASE f;"
                    "COMMIT"));
    CU_ASSERT_EQUAL_FATAL(fake_bridge_batch_count(fb), 1);
    change_ids(fake_bridge_batch(fb, 0), ids, sizeof(ids));
    DW_ASSERT_STREQ(ids, "1,2,3,4,7,8,2");
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 6);

    /* everything rolled back: no batch at all */
    fresh();
    ASSERT_OK(q(db, "BEGIN; SAVEPOINT a; INSERT INTO orders (id) VALUES (1); ROLLBACK TO a; "
                    "COMMIT"));
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 0);
}

static void test_plpgsql_exception_blocks(void)
{
    char ids[256];

    fresh();
    ASSERT_OK(q(db, "DO $$ BEGIN "
                    "  INSERT INTO orders (id) VALUES (10);"
                    "  BEGIN INSERT INTO orders (id) VALUES (11); RAISE EXCEPTION 'no'; "
                    "  EXCEPTION WHEN OTHERS THEN NULL; END;"
                    "  BEGIN INSERT INTO orders (id) VALUES (12);"
                    "    BEGIN INSERT INTO orders (id) VALUES (13); PERFORM 1 / 0; "
                    "    EXCEPTION WHEN division_by_zero THEN NULL; END;"
                    "  EXCEPTION WHEN OTHERS THEN NULL; END;"
                    "  FOR i IN 1..200 LOOP "
                    "    BEGIN INSERT INTO orders (id) VALUES (1000 + i);"
                    "      IF i %% 2 = 0 THEN RAISE EXCEPTION 'even'; END IF;"
                    "    EXCEPTION WHEN OTHERS THEN NULL; END;"
                    "  END LOOP;"
                    "END $$"));
    CU_ASSERT_EQUAL_FATAL(fake_bridge_batch_count(fb), 1);
    CU_ASSERT_EQUAL(fake_bridge_batch(fb, 0)->nchanges, 2 + 100);
    change_ids(fake_bridge_batch(fb, 0), ids, sizeof(ids));
    CU_ASSERT(strncmp(ids, "10,12,1001,1003,1005,", 21) == 0);
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 102);
}

static void test_multi_table_many_rows(void)
{
    const struct dw_batch *b;
    bool in_order = true;

    fresh();
    ASSERT_OK(q(db, "BEGIN;"
                    "INSERT INTO orders (id, status) SELECT g, 'bulk' FROM generate_series(1, 5000) g;"
                    "INSERT INTO order_lines SELECT g, 1, g FROM generate_series(1, 100) g;"
                    "INSERT INTO unmapped VALUES (1, 'not replicated');"
                    "UPDATE orders SET status = 'last' WHERE id = 5000;"
                    "COMMIT"));
    CU_ASSERT_EQUAL_FATAL(fake_bridge_batch_count(fb), 1);
    b = fake_bridge_batch(fb, 0);
    CU_ASSERT_EQUAL_FATAL(b->nchanges, 5000 + 100 + 1);
    for (size_t i = 0; i < 5000; i++)
        in_order = in_order && strcmp(b->changes[i].table, "public.orders") == 0 &&
                   row_int(&b->changes[i].new_row, "id") == (long) i + 1;
    CU_ASSERT(in_order);
    for (size_t i = 5000; i < 5100; i++)
        in_order = in_order && strcmp(b->changes[i].table, "public.order_lines") == 0 &&
                   row_int(&b->changes[i].new_row, "order_id") == (long) (i - 4999);
    CU_ASSERT(in_order);
    expect_change(b, 5100, "public.orders", DW_CHANGE_UPDATE,
                  ROW("id", "5000", "status", "bulk", "total", NUL_, "note", NUL_),
                  ROW("id", "5000", "status", "last", "total", NUL_, "note", NUL_));
    PQclear(dw_sql(db, "TRUNCATE unmapped"));
}

static void test_update_delete_nulls_unicode(void)
{
    const struct dw_batch *b;

    fresh();
    ASSERT_OK(q(db, "INSERT INTO orders VALUES (17, 'draft', 12.5, NULL, 's')"));
    fake_bridge_reset(fb);
    ASSERT_OK(q(db, "BEGIN;"
                    "UPDATE orders SET status = 'confirmed', note = 'Grüße 日本 🎉 \"q\" \\ "
                    "tab\tend' WHERE id = 17;"
                    "UPDATE orders SET secret = 'only an uncaptured column' WHERE id = 17;"
                    "UPDATE orders SET id = 18 WHERE id = 17;"
                    "DELETE FROM orders WHERE id = 18;"
                    "COMMIT"));
    CU_ASSERT_EQUAL_FATAL(fake_bridge_batch_count(fb), 1);
    b = fake_bridge_batch(fb, 0);
    CU_ASSERT_EQUAL_FATAL(b->nchanges, 4);
    expect_change(b, 0, "public.orders", DW_CHANGE_UPDATE,
                  ROW("id", "17", "status", "draft", "total", "12.50", "note", NUL_),
                  ROW("id", "17", "status", "confirmed", "total", "12.50", "note",
                      "Grüße 日本 🎉 \"q\" \\ tab\tend"));
    expect_change(b, 1, "public.orders", DW_CHANGE_UPDATE,
                  ROW("id", "17", "status", "confirmed", "total", "12.50", "note",
                      "Grüße 日本 🎉 \"q\" \\ tab\tend"),
                  ROW("id", "17", "status", "confirmed", "total", "12.50", "note",
                      "Grüße 日本 🎉 \"q\" \\ tab\tend"));
    expect_change(b, 2, "public.orders", DW_CHANGE_UPDATE,
                  ROW("id", "17", "status", "confirmed", "total", "12.50", "note",
                      "Grüße 日本 🎉 \"q\" \\ tab\tend"),
                  ROW("id", "18", "status", "confirmed", "total", "12.50", "note",
                      "Grüße 日本 🎉 \"q\" \\ tab\tend"));
    expect_change(b, 3, "public.orders", DW_CHANGE_DELETE,
                  ROW("id", "18", "status", "confirmed", "total", "12.50", "note",
                      "Grüße 日本 🎉 \"q\" \\ tab\tend"),
                  NULL);
}

/* Insert one typed row from a session with the given settings; returns the batch. */
static const struct dw_batch *insert_typed(PGconn *c, int id, const char *settings)
{
    size_t before = fake_bridge_batch_count(fb);

    ASSERT_OK(q(c, "%s", settings));
    ASSERT_OK(q(c,
                "INSERT INTO typed VALUES (%d, 12345678901234567890.123456789, "
                "'2024-03-01 12:34:56.789+01', '2024-03-01 12:34:56.5', '2024-03-01', "
                "'1 day 02:03:04', 1.0::float8 / 3, 0.1::float4, '\\x00ff41', "
                "'{\"a\": [1, 2.50]}', '{\"b\": 1, \"a\": [1, 2.50]}', 'Grüße', "
                "'{\"2024-03-01 12:00:00+01\"}', "
                "'[2024-03-01 12:00:00+01,2024-03-02 00:00:00+00)')",
                id));
    if (fake_bridge_batch_count(fb) != before + 1)
        return NULL;
    return fake_bridge_batch(fb, before);
}

static void test_rendering_independent_of_session_settings(void)
{
    PGconn *other = dw_pg_cluster_connect(&cluster, "postgres");
    const struct dw_batch *a, *b;
    const char *const expected[] = {
        "n", "12345678901234567890.123456789",
        "ts", "2024-03-01 11:34:56.789+00",
        "t", "2024-03-01 12:34:56.5",
        "d", "2024-03-01",
        "iv", "1 day 02:03:04",
        "f8", "0.3333333333333333",
        "f4", "0.1",
        "b", "\\x00ff41",
        "j", "{\"a\": [1, 2.50]}",
        "jb", "{\"a\": [1, 2.50], \"b\": 1}",
        "u", "Grüße",
        "arr", "{\"2024-03-01 11:00:00+00\"}",
        "tstz_range", "[\"2024-03-01 11:00:00+00\",\"2024-03-02 00:00:00+00\")",
    };

    fresh();
    a = insert_typed(db, 1,
                     "SET DateStyle = 'ISO, MDY'; SET TimeZone = 'UTC'; "
                     "SET extra_float_digits = 3; SET IntervalStyle = 'postgres'; "
                     "SET bytea_output = 'hex'");
    b = insert_typed(other, 2,
                     "SET DateStyle = 'SQL, DMY'; SET TimeZone = 'America/New_York'; "
                     "SET extra_float_digits = 0; SET IntervalStyle = 'sql_standard'; "
                     "SET bytea_output = 'escape'");
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    for (int k = 0; k < 2; k++) {
        const struct dw_row *row = &(k == 0 ? a : b)->changes[0].new_row;

        CU_ASSERT_EQUAL_FATAL(row->ncols, 14);
        for (size_t i = 0; i < 13; i++) {
            DW_ASSERT_STREQ(row->names[i + 1], expected[2 * i]);
            DW_ASSERT_STREQ(row->values[i + 1], expected[2 * i + 1]);
        }
    }
    /* the session's own settings are untouched */
    DW_ASSERT_STREQ(dw_sql_value(other, "SHOW DateStyle"), "SQL, DMY");
    DW_ASSERT_STREQ(dw_sql_value(other, "SHOW TimeZone"), "America/New_York");
    DW_ASSERT_STREQ(dw_sql_value(other, "SHOW extra_float_digits"), "0");
    DW_ASSERT_STREQ(dw_sql_value(other, "SHOW IntervalStyle"), "sql_standard");
    DW_ASSERT_STREQ(dw_sql_value(other, "SHOW bytea_output"), "escape");
    DW_ASSERT_STREQ(dw_sql_value(other, "SELECT d::text FROM typed WHERE id = 2"), "01/03/2024");
    PQfinish(other);
    ASSERT_OK(q(db, "RESET DateStyle; RESET TimeZone; RESET extra_float_digits; "
                    "RESET IntervalStyle; RESET bytea_output"));
}

static void test_partitioned_table_named_after_parent(void)
{
    const struct dw_batch *b;

    fresh();
    ASSERT_OK(q(db, "BEGIN; INSERT INTO parts VALUES (1, 'eu'), (2, 'us'); "
                    "INSERT INTO parts_eu VALUES (3, 'eu'); COMMIT"));
    CU_ASSERT_EQUAL_FATAL(fake_bridge_batch_count(fb), 1);
    b = fake_bridge_batch(fb, 0);
    CU_ASSERT_EQUAL_FATAL(b->nchanges, 3);
    for (size_t i = 0; i < 3; i++)
        DW_ASSERT_STREQ(b->changes[i].table, "public.parts");
}

/* ---- bypasses and refusals ---- */

static void test_origin_and_unmapped_send_nothing(void)
{
    size_t accepts;

    fresh();
    accepts = fake_bridge_accepts(fb);
    ASSERT_OK(q(db, "SET dualwrite.origin = 'peer'"));
    ASSERT_OK(q(db, "INSERT INTO orders (id) VALUES (1)"));
    ASSERT_OK(q(db, "RESET dualwrite.origin"));
    ASSERT_OK(q(db, "BEGIN; INSERT INTO unmapped VALUES (1, 'a'); UPDATE unmapped SET v = 'b'; "
                    "DELETE FROM unmapped; COMMIT"));
    ASSERT_OK(q(db, "SET dualwrite.enabled = off"));
    ASSERT_OK(q(db, "INSERT INTO orders (id) VALUES (2)"));
    ASSERT_OK(q(db, "RESET dualwrite.enabled"));
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 2);
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 0);
    CU_ASSERT_EQUAL(fake_bridge_accepts(fb), accepts);
    /* session_replication_role = replica does not bypass ENABLE ALWAYS triggers */
    ASSERT_OK(q(db, "SET session_replication_role = replica; "
                    "INSERT INTO orders (id) VALUES (3); RESET session_replication_role"));
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 1);
}

static void test_prepare_transaction_refused(void)
{
    struct dw_sql_res r;

    fresh();
    r = q(db, "BEGIN; INSERT INTO orders (id) VALUES (1); PREPARE TRANSACTION 'dw_test'");
    ASSERT_FAILS(r, "0A000", "cannot PREPARE a transaction that changed tables replicated");
    CU_ASSERT_EQUAL(PQtransactionStatus(db), PQTRANS_IDLE);
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 0);
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 0);
    CU_ASSERT_EQUAL(atol(dw_sql_value(db, "SELECT count(*) FROM pg_prepared_xacts")), 0);
    /* unmapped tables may still be prepared */
    ASSERT_OK(q(db, "BEGIN; INSERT INTO unmapped VALUES (1, 'a'); PREPARE TRANSACTION 'dw_ok'"));
    ASSERT_OK(q(db, "COMMIT PREPARED 'dw_ok'"));
    PQclear(dw_sql(db, "TRUNCATE unmapped"));
    /* and a mapped change rolled back to a savepoint does not block PREPARE */
    ASSERT_OK(q(db, "BEGIN; SAVEPOINT s; INSERT INTO orders (id) VALUES (5); ROLLBACK TO s; "
                    "PREPARE TRANSACTION 'dw_ok2'"));
    ASSERT_OK(q(db, "COMMIT PREPARED 'dw_ok2'"));
}

static void test_truncate_refused(void)
{
    struct dw_sql_res r;

    fresh();
    ASSERT_OK(q(db, "INSERT INTO orders (id) VALUES (1)"));
    r = q(db, "TRUNCATE orders");
    ASSERT_FAILS(r, "0A000", "cannot truncate table \"public.orders\"");
    DW_ASSERT_CONTAINS(r.detail, "orders");
    DW_ASSERT_CONTAINS(r.hint, "DELETE");
    r = q(db, "TRUNCATE order_lines");
    ASSERT_FAILS(r, "0A000", "cannot truncate table \"public.order_lines\"");
    DW_ASSERT_CONTAINS(r.detail, "order_lines,lines_audit");
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 1);
    /* the kill switch allows it (visibly, superuser only) */
    ASSERT_OK(q(db, "SET dualwrite.enabled = off; TRUNCATE orders; RESET dualwrite.enabled"));
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 0);
}

/*
 * TRUNCATE reaches tables that carry no TRUNCATE trigger of their own:
 * partitions (PostgreSQL does not clone statement triggers onto them),
 * inheritance children, and referencing tables with CASCADE.  The utility
 * hook follows it there; ONLY is respected, and the two bypasses apply.
 */
static void test_truncate_partitions_inheritance_cascade(void)
{
    struct dw_sql_res r;

    fresh();
    PQclear(dw_sql(db,
                   "CREATE TABLE tr_regions (code text PRIMARY KEY);"
                   "INSERT INTO tr_regions VALUES ('eu'), ('us');"
                   "CREATE TABLE tr_sales (id int, region text REFERENCES tr_regions) "
                   "  PARTITION BY LIST (region);"
                   "CREATE TABLE tr_sales_eu PARTITION OF tr_sales FOR VALUES IN ('eu');"
                   "CREATE TABLE tr_sales_us PARTITION OF tr_sales FOR VALUES IN ('us') "
                   "  PARTITION BY RANGE (id);"
                   "CREATE TABLE tr_sales_us_low PARTITION OF tr_sales_us FOR VALUES FROM (0) TO (1000);"
                   "CREATE TABLE tr_base (id int);"
                   "CREATE TABLE tr_child (note text) INHERITS (tr_base);"));
    install_triggers("tr_sales", "sales", "'id', 'region'");
    install_triggers("tr_child", "child", "'id'");
    ASSERT_OK(q(db, "BEGIN; INSERT INTO tr_sales VALUES (1, 'eu'), (2, 'us'), (3, 'us');"
                    "INSERT INTO tr_base VALUES (1); INSERT INTO tr_child VALUES (2, 'x'); COMMIT"));
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 1);

    /* the partitioned table itself */
    r = q(db, "TRUNCATE tr_sales");
    ASSERT_FAILS(r, "0A000", "cannot truncate table \"public.tr_sales\"");
    /* one partition, with and without ONLY, one and two levels down */
    r = q(db, "TRUNCATE tr_sales_eu");
    ASSERT_FAILS(r, "0A000", "cannot truncate table \"public.tr_sales_eu\": it is replicated");
    DW_ASSERT_CONTAINS(r.detail, "partition of table \"public.tr_sales\"");
    DW_ASSERT_CONTAINS(r.detail, "Table maps: sales.");
    DW_ASSERT_CONTAINS(r.hint, "DELETE");
    r = q(db, "TRUNCATE ONLY tr_sales_eu");
    ASSERT_FAILS(r, "0A000", "cannot truncate table \"public.tr_sales_eu\"");
    r = q(db, "TRUNCATE ONLY tr_sales_us_low");
    ASSERT_FAILS(r, "0A000", "cannot truncate table \"public.tr_sales_us_low\"");
    DW_ASSERT_CONTAINS(r.detail, "partition of table \"public.tr_sales\"");
    r = q(db, "TRUNCATE tr_sales_us");
    ASSERT_FAILS(r, "0A000", "cannot truncate table \"public.tr_sales_us");
    /* from a function (a nested statement), and with an unmapped table first in the list */
    r = q(db, "DO $$ BEGIN TRUNCATE tr_sales_eu; END $$");
    ASSERT_FAILS(r, "0A000", "cannot truncate table \"public.tr_sales_eu\"");
    r = q(db, "TRUNCATE unmapped, tr_sales_eu");
    ASSERT_FAILS(r, "0A000", "cannot truncate table \"public.tr_sales_eu\"");
    /* CASCADE reaches the partitions through their foreign key */
    r = q(db, "TRUNCATE tr_regions CASCADE");
    ASSERT_FAILS(r, "0A000", "cannot truncate table \"public.tr_sales");
    CU_ASSERT_EQUAL(count_rows("tr_sales", "true"), 3);
    CU_ASSERT_EQUAL(count_rows("tr_regions", "true"), 2);

    /* inheritance: the parent reaches its mapped child, unless ONLY */
    r = q(db, "TRUNCATE tr_base");
    ASSERT_FAILS(r, "0A000", "cannot truncate table \"public.tr_child\"");
    DW_ASSERT_CONTAINS(r.detail, "Table maps: child.");
    CU_ASSERT_EQUAL(count_rows("tr_base", "true"), 2);
    ASSERT_OK(q(db, "TRUNCATE ONLY tr_base"));
    CU_ASSERT_EQUAL(count_rows("tr_base", "true"), 1);
    CU_ASSERT_EQUAL(count_rows("tr_child", "true"), 1);

    /* an unmapped table is none of our business */
    ASSERT_OK(q(db, "INSERT INTO unmapped VALUES (1, 'a')"));
    ASSERT_OK(q(db, "TRUNCATE unmapped"));
    CU_ASSERT_EQUAL(count_rows("unmapped", "true"), 0);
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 1);

    /* the two bypasses, the same as the trigger's */
    ASSERT_OK(q(db, "SET dualwrite.enabled = off; TRUNCATE tr_sales_eu; RESET dualwrite.enabled"));
    CU_ASSERT_EQUAL(count_rows("tr_sales", "region = 'eu'"), 0);
    ASSERT_OK(q(db, "SET dualwrite.origin = 'test'; TRUNCATE ONLY tr_sales_us_low; "
                    "RESET dualwrite.origin"));
    CU_ASSERT_EQUAL(count_rows("tr_sales", "true"), 0);
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 1);
    PQclear(dw_sql(db, "DROP TABLE tr_sales, tr_regions, tr_base, tr_child"));
}

static void test_settings_privileges(void)
{
    PGconn *app;
    char ci[512];
    struct dw_sql_res r;

    fresh();
    dw_pg_cluster_conninfo(&cluster, "postgres", ci, sizeof(ci));
    strncat(ci, " user=app", sizeof(ci) - strlen(ci) - 1);
    app = PQconnectdb(ci);
    CU_ASSERT_FATAL(PQstatus(app) == CONNECTION_OK);
    ASSERT_OK(q(db, "ALTER SYSTEM SET dualwrite.token = 'hidden-token'"));
    ASSERT_OK(q(db, "SELECT pg_reload_conf()"));
    for (int i = 0; i < 100; i++) {
        const char *v = dw_sql_value(db, "SHOW dualwrite.token");

        if (v && strcmp(v, "hidden-token") == 0)
            break;
        usleep(50000);
    }
    r = q(app, "SHOW dualwrite.token");
    CU_ASSERT(!r.ok);
    DW_ASSERT_STREQ(r.state, "42501");
    r = q(app, "SET dualwrite.bridge = '/tmp/elsewhere.sock'");
    ASSERT_FAILS(r, "42501", "permission denied");
    r = q(app, "SET dualwrite.origin = 'me'");
    ASSERT_FAILS(r, "42501", "permission denied");
    r = q(app, "SET dualwrite.enabled = off");
    ASSERT_FAILS(r, "42501", "permission denied");
    ASSERT_OK(q(app, "SET dualwrite.commit_timeout = '5s'"));
    /* the bridge's role gets the right to set its origin explicitly */
    ASSERT_OK(q(db, "GRANT SET ON PARAMETER dualwrite.origin TO app"));
    ASSERT_OK(q(app, "SET dualwrite.origin = 'peer'; INSERT INTO orders (id) VALUES (99); "
                     "RESET dualwrite.origin"));
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 0);
    ASSERT_OK(q(db, "REVOKE SET ON PARAMETER dualwrite.origin FROM app"));
    DW_ASSERT_STREQ(dw_sql_value(db, "SHOW dualwrite.token"), "hidden-token");
    /* an unprivileged writer is captured like anyone else */
    ASSERT_OK(q(app, "INSERT INTO orders (id) VALUES (1)"));
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 1);
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 2);
    /* settings are validated */
    r = q(db, "SET dualwrite.bridge = 'no-port'");
    ASSERT_FAILS(r, "22023", "invalid value for parameter \"dualwrite.bridge\"");
    r = q(db, "SET dualwrite.token = 'two words'");
    ASSERT_FAILS(r, "22023", "invalid value for parameter \"dualwrite.token\"");
    r = q(db, "SET dualwrite.no_such_setting = 1");
    CU_ASSERT(!r.ok);
    ASSERT_OK(q(db, "ALTER SYSTEM RESET dualwrite.token"));
    ASSERT_OK(q(db, "SELECT pg_reload_conf()"));
    PQfinish(app);
}

static void test_tcp_bridge_with_token(void)
{
    int port = 0;
    struct fake_bridge *tcp = fake_bridge_start_tcp(&port);
    char id[128], outcome[32];

    fresh();
    ASSERT_OK(q(db, "SET dualwrite.bridge = '127.0.0.1:%d'; SET dualwrite.token = 's3cret-tok'",
                port));
    ASSERT_OK(commit_tx(db, "INSERT INTO orders (id) VALUES (1)", id, sizeof(id)));
    CU_ASSERT_EQUAL_FATAL(fake_bridge_batch_count(tcp), 1);
    DW_ASSERT_STREQ(fake_bridge_batch_auth(tcp, 0), "Bearer s3cret-tok");
    CU_ASSERT(fake_bridge_wait_outcome(tcp, id, 5000, outcome, sizeof(outcome)));
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 0);
    /* back to the Unix socket: no token sent there */
    ASSERT_OK(q(db, "RESET dualwrite.bridge"));
    ASSERT_OK(q(db, "INSERT INTO orders (id) VALUES (2)"));
    CU_ASSERT_EQUAL_FATAL(fake_bridge_batch_count(fb), 1);
    DW_ASSERT_STREQ(fake_bridge_batch_auth(fb, 0), "");
    ASSERT_OK(q(db, "RESET dualwrite.token"));
    fake_bridge_stop(tcp);
}

static void test_abort_after_verdict_sends_aborted_outcome(void)
{
    PGconn *t1 = dw_pg_cluster_connect(&cluster, "postgres");
    PGconn *t2 = dw_pg_cluster_connect(&cluster, "postgres");
    char id2[128], outcome[32];
    const char *xid;
    struct dw_sql_res r;

    fresh();
    /* write skew under SERIALIZABLE: t2 is doomed at t1's commit, fails after pre-commit */
    ASSERT_OK(q(t1, "BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT count(*) FROM orders WHERE "
                    "status = 'ssi'"));
    ASSERT_OK(q(t2, "BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT count(*) FROM orders WHERE "
                    "status = 'ssi'"));
    ASSERT_OK(q(t1, "INSERT INTO orders (id, status) VALUES (1, 'ssi')"));
    ASSERT_OK(q(t2, "INSERT INTO orders (id, status) VALUES (2, 'ssi')"));
    xid = dw_sql_value(t2, "SELECT pg_current_xact_id()");
    batch_id_for(xid, id2, sizeof(id2));
    ASSERT_OK(q(t1, "COMMIT"));
    r = q(t2, "COMMIT");
    ASSERT_FAILS(r, "40001", "could not serialize access");
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 2);
    CU_ASSERT(fake_bridge_wait_outcome(fb, id2, 5000, outcome, sizeof(outcome)));
    DW_ASSERT_STREQ(outcome, "aborted");
    CU_ASSERT_EQUAL(count_rows("orders", "true"), 1);
    PQfinish(t1);
    PQfinish(t2);
}

static void test_misconfigured_trigger(void)
{
    struct dw_sql_res r;

    fresh();
    r = q(db, "INSERT INTO badcols VALUES (1)");
    ASSERT_FAILS(r, "42703", "column \"nosuchcolumn\" of table \"public.badcols\" does not exist");
    CU_ASSERT_EQUAL(count_rows("badcols", "true"), 0);
    r = q(db, "SELECT dualwrite.capture()");
    CU_ASSERT(!r.ok);
}

/* ---- bad input from the bridge ---- */

struct bad_reply {
    const char *name;
    enum fake_mode mode;
    const char *raw;
    bool close_after;
    const char *expect;
};

static void test_bad_verdicts(void)
{
    static const struct bad_reply cases[] = {
        {"malformed json", FAKE_RAW,
         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{not json",
         false, "malformed verdict from the bridge"},
        {"no status", FAKE_RAW,
         "HTTP/1.1 200 OK\r\nContent-Length: {clen}\r\n\r\n{\"id\":\"{id}\"}\n", false,
         "malformed verdict from the bridge"},
        {"truncated body", FAKE_RAW,
         "HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n{\"id\":\"{id}\",\"status\":\"comm", true,
         "in the middle of its reply"},
        {"oversized", FAKE_RAW,
         "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{\"id\":\"{id}\",\"status\":", true,
         "oversized reply from the bridge"},
        {"wrong id", FAKE_RAW,
         "HTTP/1.1 200 OK\r\nContent-Length: {clen}\r\n\r\n{\"id\":\"1:2:3\",\"status\":\"committed\"}  ",
         false, "answered for another batch"},
        {"closed mid-headers", FAKE_RAW, "HTTP/1.1 200 OK\r\nContent-", true,
         "in the middle of its reply"},
        {"closed without a word", FAKE_CLOSE, NULL, false, "without answering"},
        {"not http", FAKE_RAW, "SSH-2.0-OpenSSH\r\n\r\n", false, "malformed reply"},
        {"chunked", FAKE_RAW,
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false,
         "malformed reply"},
        {"no content-length", FAKE_RAW, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok",
         true, "malformed reply"},
        {"server error", FAKE_RAW,
         "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!", false,
         "unexpected reply from the bridge"},
        {"contradiction", FAKE_RAW,
         "HTTP/1.1 409 Conflict\r\nContent-Length: {clen}\r\n\r\n{\"id\":\"{id}\",\"status\":\"committed\"}",
         false, "contradictory verdict"},
        {"huge headers", FAKE_RAW, NULL, true, "malformed reply"},
    };
    char *huge;

    huge = malloc(20000);
    strcpy(huge, "HTTP/1.1 200 OK\r\nX-Junk: ");
    memset(huge + strlen(huge), 'a', 12000);
    huge[25 + 12000] = '\0';
    strcat(huge, "\r\n\r\n");

    fresh();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fake_behaviour b = fake_behaviour_ok();
        size_t accepts;
        struct dw_sql_res r;

        b.mode = cases[i].mode;
        b.raw = cases[i].raw ? cases[i].raw : huge;
        b.close_after = cases[i].close_after;
        behave(&b);
        r = q(db, "INSERT INTO orders (id, status) VALUES (%zu, 'bad')", i + 1);
        if (r.ok || strcmp(r.state, "YW007") != 0 || !strstr(r.msg, cases[i].expect))
            fprintf(stderr, "\n    case \"%s\": %s %s (%s)\n", cases[i].name, r.state, r.msg,
                    r.detail);
        ASSERT_FAILS(r, "YW007", cases[i].expect);
        CU_ASSERT_EQUAL(count_rows("orders", "true"), 0);

        /* the next transaction reconnects and commits */
        accepts = fake_bridge_accepts(fb);
        behave_ok();
        r = q(db, "INSERT INTO orders (id, status) VALUES (%zu, 'good')", 1000 + i);
        if (!r.ok)
            fprintf(stderr, "\n    after case \"%s\": %s %s\n", cases[i].name, r.state, r.msg);
        CU_ASSERT(r.ok);
        CU_ASSERT_EQUAL(fake_bridge_accepts(fb), accepts + 1);
        PQclear(dw_sql(db, "SET dualwrite.enabled = off; TRUNCATE orders; "
                           "RESET dualwrite.enabled"));
    }
    free(huge);
}

/* ---- endurance ---- */

static void test_many_transactions_no_leak(void)
{
    struct fake_behaviour quiet = fake_behaviour_ok();
    char pid[32];
    int fds0, fds1, fds2;
    long rss0, rss1, mem0, mem1;
    const char *v;

    fresh();
    quiet.keep_bodies = false;
    behave(&quiet);
    snprintf(pid, sizeof(pid), "%s", dw_sql_value(db, "SELECT pg_backend_pid()"));
    PQclear(dw_sql(db, "CALL many_commits(500)"));

    fds0 = fd_count(pid);
    rss0 = rss_anon_kb(pid);
    v = dw_sql_value(db, "SELECT sum(total_bytes) FROM pg_backend_memory_contexts");
    mem0 = v ? atol(v) : -1;

    PQclear(dw_sql(db, "CALL many_commits(10000)"));
    CU_ASSERT_EQUAL(fake_bridge_batch_count(fb), 10500);
    CU_ASSERT_EQUAL(fake_bridge_decode_errors(fb), 0);
    CU_ASSERT_EQUAL(count_rows("bulk", "true"), 10500);

    fds1 = fd_count(pid);
    rss1 = rss_anon_kb(pid);
    v = dw_sql_value(db, "SELECT sum(total_bytes) FROM pg_backend_memory_contexts");
    mem1 = v ? atol(v) : -1;
    fprintf(stderr, "\n    10,000 commits: fds %d -> %d, RssAnon %ld -> %ld kB, contexts %ld -> "
                    "%ld bytes\n",
            fds0, fds1, rss0, rss1, mem0, mem1);
    CU_ASSERT(fds0 > 0);
    CU_ASSERT(fds1 <= fds0 + 2);
    CU_ASSERT(rss1 - rss0 < 16 * 1024);
    CU_ASSERT(mem1 - mem0 < 1024 * 1024);

    /* error paths: rejections, protocol errors (reconnects), timeouts */
    for (int i = 0; i < 300; i++) {
        struct fake_behaviour b = fake_behaviour_ok();

        b.keep_bodies = false;
        switch (i % 3) {
        case 0:
            b.status = DW_VERDICT_REJECTED;
            b.message = "no";
            break;
        case 1:
            b.mode = FAKE_RAW;
            b.raw = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{x}";
            break;
        default:
            b.mode = FAKE_CLOSE;
            break;
        }
        behave(&b);
        CU_ASSERT(!q(db, "INSERT INTO bulk (v) VALUES (%d)", i).ok);
        behave(&quiet);
        CU_ASSERT(q(db, "INSERT INTO bulk (v) VALUES (%d)", i).ok);
    }
    fds2 = fd_count(pid);
    fprintf(stderr, "    300 failed + 300 good commits: fds %d -> %d, open bridge connections %zu\n",
            fds1, fds2, fake_bridge_open_connections(fb));
    CU_ASSERT(fds2 <= fds0 + 2);
    CU_ASSERT(fake_bridge_open_connections(fb) <= 2);
}

static const struct dw_cunit_test tests[] = {
    {"commit keeps rows, bridge gets the exact batch", test_commit_keeps_rows_and_sends_exact_batch},
    {"prepared verdict commits", test_prepared_verdict_commits},
    {"rejected: COMMIT fails with target SQLSTATE", test_rejected_fails_commit_with_target_sqlstate},
    {"pre-validation, throttled, unavailable, shutting down", test_prevalidation_throttle_unavailable},
    {"bridge not listening: fast failure", test_bridge_not_listening_fails_fast},
    {"bridge never answers: commit_timeout", test_never_answering_bridge_times_out},
    {"pg_cancel_backend during the wait", test_cancel_during_wait_aborts_promptly},
    {"savepoints", test_savepoints},
    {"PL/pgSQL exception blocks", test_plpgsql_exception_blocks},
    {"multi-table, many rows, order", test_multi_table_many_rows},
    {"update old/new, delete, nulls, unicode", test_update_delete_nulls_unicode},
    {"rendering ignores session settings", test_rendering_independent_of_session_settings},
    {"partitioned table named after its parent", test_partitioned_table_named_after_parent},
    {"origin, kill switch, unmapped: nothing sent", test_origin_and_unmapped_send_nothing},
    {"PREPARE TRANSACTION refused", test_prepare_transaction_refused},
    {"TRUNCATE refused", test_truncate_refused},
    {"TRUNCATE of partitions, children, CASCADE", test_truncate_partitions_inheritance_cascade},
    {"settings: privileges and validation", test_settings_privileges},
    {"TCP bridge with bearer token", test_tcp_bridge_with_token},
    {"abort after the verdict: outcome aborted", test_abort_after_verdict_sends_aborted_outcome},
    {"misconfigured trigger", test_misconfigured_trigger},
    {"bad verdicts and replies", test_bad_verdicts},
    {"10,000 transactions: no fd or memory growth", test_many_transactions_no_leak},
};

int main(void)
{
    int rc;

    dw_fixture_require();
    setup();
    rc = dw_cunit_run("hook", tests, sizeof(tests) / sizeof(tests[0]));
    teardown();
    return rc;
}
