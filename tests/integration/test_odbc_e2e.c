/*
 * dualwrited with ODBC targets, end to end: the built daemon as a child
 * process (svc_harness), a source cluster for real xids (the resolver asks
 * it), an SQLite file behind connector "lite" (one-phase) and a MariaDB
 * server behind connector "maria" (XA, its password from ${ENV}); batches are
 * posted as the hook would post them.
 *
 * Covers commit, a target rejection carrying the driver's message and
 * SQLSTATE, the types round trip, a 1000-row batch, concurrent batches, and
 * for MariaDB prepared / outcome / resolver: the daemon killed while a batch
 * is prepared, and the MariaDB server killed while one is.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <libpq-fe.h>

#include "tests/fixtures/dw_fixture.h"
#include "tests/fixtures/dw_fixture_odbc.h"
#include "tests/integration/svc_harness.h"
#include "tests/unit/common/dw_cunit.h"

#define PASSWORD "Sup3rSecretPw"

static struct dw_mariadb maria;
static struct dw_odbc_conn *lite_db, *maria_db;   /* the test's own views of the targets */
static char lite_cs[700], maria_root_cs[700];

/* ------------------------------------------------------------ helpers */

static const char *lite_val(const char *sql)
{
    const char *v = dw_odbc_value(lite_db, "%s", sql);

    return v ? v : "(null)";
}

static const char *maria_val(const char *sql)
{
    const char *v = dw_odbc_value(maria_db, "%s", sql);

    return v ? v : "(null)";
}

static long maria_prepared(void)
{
    /* the test's own connection may not read XA RECOVER's rows either: count through the server */
    char cmd[600], out[64] = "";
    FILE *p;

    snprintf(cmd, sizeof(cmd), "'%s' sql '%s' 'XA RECOVER' | grep -c 'dw:'", getenv("DW_MARIADB"),
             maria.dir);
    p = popen(cmd, "r");
    if (!p)
        return -1;
    if (!fgets(out, sizeof(out), p))
        out[0] = '\0';
    pclose(p);
    return strtol(out, NULL, 10);
}

static bool wait_maria(const char *sql, const char *want, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    while (now_ms() < end) {
        if (strcmp(maria_val(sql), want) == 0)
            return true;
        sleep_ms(100);
    }
    fprintf(stderr, "\n    %s: wanted %s, have %s\n", sql, want, maria_val(sql));
    return false;
}

static bool wait_maria_prepared(long n, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    while (now_ms() < end) {
        if (maria_prepared() == n)
            return true;
        sleep_ms(100);
    }
    return maria_prepared() == n;
}

/* A change on table (public.orders: SQLite, public.morders: MariaDB). */
static char *order(const char *table, int id, const char *status, const char *total)
{
    char *s = NULL;

    if (asprintf(&s, "{\"table\":\"%s\",\"op\":\"insert\",\"new\":{\"id\":\"%d\",\"status\":%s,"
                     "\"total\":%s}}", table, id, status, total) < 0)
        exit(1);
    return s;
}

/* A source transaction on its own connection (thread-safe, unlike src_begin). */
static PGconn *tx_begin(char *xid, size_t size)
{
    PGconn *c = PQconnectdb(source_ci);
    PGresult *r;

    PQclear(PQexec(c, "BEGIN"));
    r = PQexec(c, "SELECT pg_current_xact_id()::text");
    snprintf(xid, size, "%s", PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "0");
    PQclear(r);
    return c;
}

static void tx_end(PGconn *c, bool commit)
{
    PQclear(PQexec(c, commit ? "COMMIT" : "ROLLBACK"));
    PQfinish(c);
}

/* ------------------------------------------------------------ setup */

static const char map_fmt[] =
    "{\"map\": \"%s\",\n"
    " \"source\": {\"table\": \"%s\", \"key\": [\"id\"]},\n"
    " \"target\": {\"connector\": \"%s\", \"table\": \"orders\", \"key\": [\"id\"]},\n"
    " \"fields\": [{\"source\": \"id\", \"target\": \"id\"},\n"
    "            {\"source\": \"status\", \"target\": \"status\", \"required\": true},\n"
    "            {\"source\": \"total\", \"target\": \"total\"}]}\n";

static const char types_map_fmt[] =
    "{\"map\": \"%s\",\n"
    " \"source\": {\"table\": \"%s\", \"key\": [\"id\"]},\n"
    " \"target\": {\"connector\": \"%s\", \"table\": \"types\", \"key\": [\"id\"]},\n"
    " \"fields\": [{\"source\": \"id\", \"target\": \"id\"}, {\"source\": \"i\", \"target\": \"i\"},\n"
    "   {\"source\": \"b\", \"target\": \"b\"}, {\"source\": \"d\", \"target\": \"d\"},\n"
    "   {\"source\": \"f\", \"target\": \"f\"}, {\"source\": \"dt\", \"target\": \"dt\"},\n"
    "   {\"source\": \"ts\", \"target\": \"ts\"}, {\"source\": \"tz\", \"target\": \"tz\"},\n"
    "   {\"source\": \"bo\", \"target\": \"bo\"}, {\"source\": \"t\", \"target\": \"t\"}]}\n";

static void write_maps(void)
{
    char path[600];

    snprintf(path, sizeof(path), "%s/lite_orders.json", maps_dir);
    dw_fixture_write_file(path, map_fmt, "lite_orders", "public.orders", "lite");
    snprintf(path, sizeof(path), "%s/maria_orders.json", maps_dir);
    dw_fixture_write_file(path, map_fmt, "maria_orders", "public.morders", "maria");
    snprintf(path, sizeof(path), "%s/lite_types.json", maps_dir);
    dw_fixture_write_file(path, types_map_fmt, "lite_types", "public.types", "lite");
    snprintf(path, sizeof(path), "%s/maria_types.json", maps_dir);
    dw_fixture_write_file(path, types_map_fmt, "maria_types", "public.mtypes", "maria");
}

static void write_odbc_config(void)
{
    char maria_cs[700];

    snprintf(maria_cs, sizeof(maria_cs), "DRIVER={%s};SOCKET=%s;DATABASE=dw;UID=dw;PWD=${DW_E2E_PW}",
             dw_odbc_driver("mariadb"), maria.sock);
    dw_fixture_write_file(cfg_path,
               "{\"listen\": {\"unix\": \"%s\", \"tcp\": \"127.0.0.1:%d\", \"token\": \"" TOKEN "\"},\n"
               " \"source\": {\"conninfo\": \"%s\", \"system\": \"%s\"},\n"
               " \"maps\": \"maps\",\n"
               " \"connectors\": {\n"
               "   \"lite\": {\"type\": \"odbc\", \"connection_string\": \"%s\", \"pool_size\": 2,\n"
               "             \"timeout_ms\": 20000, \"limits\": {\"records_per_transaction\": 2000}},\n"
               "   \"maria\": {\"type\": \"odbc\", \"connection_string\": \"%s\", \"commit\": \"auto\",\n"
               "             \"pool_size\": 4, \"timeout_ms\": 20000,\n"
               "             \"limits\": {\"records_per_transaction\": 2000}}},\n"
               " \"resolver\": {\"interval_ms\": 200, \"grace_ms\": 1000},\n"
               " \"limits\": {\"max_body_bytes\": %d},\n"
               " \"log_level\": \"debug\"}\n",
               sock_path, tcp_port, source_ci, sysid, lite_cs, maria_cs, MAX_BODY);
}

static void create_tables(struct dw_odbc_conn *c, const char *suffix, const char *types)
{
    dw_odbc_sql(c, "CREATE TABLE orders (id INT PRIMARY KEY, status VARCHAR(40) NOT NULL "
                   "CHECK (status <> 'bad'), total DECIMAL(12,2))%s", suffix);
    dw_odbc_sql(c, "%s", types);
}

static int suite_init(void)
{
    const char *root = getenv("DW_BUILD_ROOT");
    const char *v;

    dw_fixture_require();
    dw_odbc_require_sqlite();
    dw_odbc_require_mariadb();
    if (!root)
        return 1;
    snprintf(daemon_bin, sizeof(daemon_bin), "%s/bridge/service/dualwrited", root);
    if (access(daemon_bin, X_OK) != 0) {
        fprintf(stderr, "no dualwrited at %s\n", daemon_bin);
        return 1;
    }
    if (!dw_pg_cluster_start(&source, NULL, false) || !dw_mariadb_start(&maria, NULL))
        return 1;
    dw_pg_cluster_conninfo(&source, "postgres", source_ci, sizeof(source_ci));
    {
        PGconn *s = dw_pg_cluster_connect(&source, "postgres");

        v = dw_sql_value(s, "SELECT system_identifier::text FROM pg_control_system()");
        snprintf(sysid, sizeof(sysid), "%s", v ? v : "0");
        PQfinish(s);
    }
    /* targets */
    dw_sqlite_connstr("e2e.sqlite", lite_cs, sizeof(lite_cs));
    lite_db = dw_odbc_conn_open(lite_cs);
    create_tables(lite_db, "", "CREATE TABLE types (id INTEGER PRIMARY KEY, i INTEGER, b BIGINT, "
                               "d NUMERIC(12,2), f DOUBLE, dt DATE, ts TIMESTAMP, tz TIMESTAMP, "
                               "bo BOOLEAN, t TEXT)");
    dw_mariadb_connstr(&maria, "dw", NULL, maria_root_cs, sizeof(maria_root_cs));
    maria_db = dw_odbc_conn_open(maria_root_cs);
    create_tables(maria_db, " ENGINE=InnoDB",
                  "CREATE TABLE types (id INT PRIMARY KEY, i INT, b BIGINT, d DECIMAL(12,2), "
                  "f DOUBLE, dt DATE, ts DATETIME(6), tz TIMESTAMP(6) NULL, bo BOOLEAN, "
                  "t VARCHAR(200))");
    dw_odbc_sql(maria_db, "CREATE USER 'dw'@'localhost' IDENTIFIED BY '" PASSWORD "'");
    dw_odbc_sql(maria_db, "GRANT ALL ON dw.* TO 'dw'@'localhost'");
    /* the daemon */
    snprintf(dir, sizeof(dir), "%s/svc", dw_fixture_tmpdir());
    mkdir(dir, 0755);
    snprintf(maps_dir, sizeof(maps_dir), "%s/maps", dir);
    mkdir(maps_dir, 0755);
    snprintf(cfg_path, sizeof(cfg_path), "%s/dualwrite.json", dir);
    snprintf(sock_path, sizeof(sock_path), "%s/bridge.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/dualwrited.log", dir);
    tcp_port = dw_fixture_free_port();
    write_maps();
    write_odbc_config();
    setenv("DW_E2E_PW", PASSWORD, 1);
    return start_daemon() ? 0 : 1;
}

static int suite_cleanup(void)
{
    int rc = stop_daemon(SIGTERM);

    if (rc != 0)
        fprintf(stderr, "dualwrited exited with %d at the end\n", rc);
    if (getenv("DW_TEST_KEEP_LOG")) {
        char *text = dw_fixture_read_file(log_path);

        fprintf(stderr, "---- dualwrited log ----\n%s\n", text);
        free(text);
    }
    dw_odbc_conn_close(lite_db);
    dw_odbc_conn_close(maria_db);
    dw_mariadb_stop(&maria);
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------ tests */

static void test_sqlite_commit_and_reject(void)
{
    struct src_tx t;
    struct resp r;
    char *a = order("public.orders", 1, "\"draft\"", "\"12.50\"");
    char *b = order("public.orders", 2, "\"draft\"", "null");
    char *bad = order("public.orders", 3, "\"bad\"", "null");
    char both[1024];

    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, a, &r), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"status\":\"committed\""));
    resp_free(&r);
    src_end(&t, true);
    DW_ASSERT_STREQ(lite_val("SELECT status || '/' || total FROM orders WHERE id = 1"), "draft/12.5");

    snprintf(both, sizeof(both), "%s,%s", b, bad);
    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, both, &r), 409);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"status\":\"rejected\""));
    DW_ASSERT_CONTAINS(r.body, "CHECK constraint failed");
    DW_ASSERT_CONTAINS(r.body, "\"target_sqlstate\":\"HY000\"");
    DW_ASSERT_CONTAINS(r.body, "\"map\":\"lite_orders\"");
    DW_ASSERT_CONTAINS(r.body, "\"change\":1");
    resp_free(&r);
    src_end(&t, false);
    DW_ASSERT_STREQ(lite_val("SELECT count(*) FROM orders WHERE id IN (2, 3)"), "0");
    free(a);
    free(b);
    free(bad);
}

static void test_maria_prepared_then_outcome(void)
{
    struct src_tx t;
    struct resp r;
    char *a = order("public.morders", 1, "\"draft\"", "\"12.50\"");
    char *b = order("public.morders", 2, "\"draft\"", "\"1\"");

    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, a, &r), 200);
    DW_ASSERT_CONTAINS(r.body, "\"status\":\"prepared\"");
    resp_free(&r);
    /* prepared (XA), not visible yet */
    CU_ASSERT_EQUAL(maria_prepared(), 1);
    DW_ASSERT_STREQ(maria_val("SELECT count(*) FROM orders WHERE id = 1"), "0");
    src_end(&t, true);
    CU_ASSERT_EQUAL(post_outcome(t.xid, "committed"), 204);
    CU_ASSERT_TRUE(wait_maria("SELECT CONCAT(status, '/', total) FROM orders WHERE id = 1",
                              "draft/12.50", 10000));
    CU_ASSERT_TRUE(wait_maria_prepared(0, 10000));

    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, b, &r), 200);
    resp_free(&r);
    src_end(&t, false);
    CU_ASSERT_EQUAL(post_outcome(t.xid, "aborted"), 204);
    CU_ASSERT_TRUE(wait_maria_prepared(0, 10000));
    DW_ASSERT_STREQ(maria_val("SELECT count(*) FROM orders WHERE id = 2"), "0");
    free(a);
    free(b);
}

static void test_maria_rejects(void)
{
    struct src_tx t;
    struct resp r;
    char *a = order("public.morders", 10, "\"draft\"", "null");
    char *bad = order("public.morders", 11, "\"bad\"", "null");
    char both[1024];

    snprintf(both, sizeof(both), "%s,%s", a, bad);
    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, both, &r), 409);
    DW_ASSERT_CONTAINS(r.body, "CONSTRAINT `orders.status` failed");
    DW_ASSERT_CONTAINS(r.body, "\"target_sqlstate\":\"23000\"");
    DW_ASSERT_CONTAINS(r.body, "\"map\":\"maria_orders\"");
    DW_ASSERT_CONTAINS(r.body, "\"change\":1");
    resp_free(&r);
    src_end(&t, false);
    CU_ASSERT_EQUAL(maria_prepared(), 0);
    DW_ASSERT_STREQ(maria_val("SELECT count(*) FROM orders WHERE id IN (10, 11)"), "0");
    free(a);
    free(bad);
}

static void test_types_round_trip(void)
{
    static const char row[] =
        "{\"table\":\"%s\",\"op\":\"insert\",\"new\":{\"id\":\"1\",\"i\":\"-7\","
        "\"b\":\"9223372036854775807\",\"d\":\"12.50\",\"f\":\"0.1\",\"dt\":\"2024-03-01\","
        "\"ts\":\"2024-03-01 10:00:00.123456\",\"tz\":\"2024-03-01 10:00:00.5+01\",\"bo\":\"t\","
        "\"t\":\"Gr\\u00fc\\u00dfe \\u2014 \\u6771\\u4eac \\ud83d\\ude80\"}}";
    char change[600];
    struct src_tx t;
    struct resp r;

    snprintf(change, sizeof(change), row, "public.types");
    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, change, &r), 200);
    resp_free(&r);
    src_end(&t, true);
    DW_ASSERT_STREQ(lite_val("SELECT i||','||b||','||d||','||f||','||dt||','||ts||','||tz||','||bo"
                             "||','||hex(t) FROM types WHERE id = 1"),
                    "-7,9223372036854775807,12.5,0.1,2024-03-01,2024-03-01 10:00:00.123456,"
                    "2024-03-01 09:00:00.5,1,4772C3BCC39F6520E2809420E69DB1E4BAAC20F09F9A80");

    snprintf(change, sizeof(change), row, "public.mtypes");
    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, change, &r), 200);
    resp_free(&r);
    src_end(&t, true);
    CU_ASSERT_EQUAL(post_outcome(t.xid, "committed"), 204);
    CU_ASSERT_TRUE(wait_maria("SELECT CONCAT_WS(',', i, b, d, f, dt, ts, UNIX_TIMESTAMP(tz), bo, "
                              "HEX(t)) FROM types WHERE id = 1",
                              "-7,9223372036854775807,12.50,0.1,2024-03-01,"
                              "2024-03-01 10:00:00.123456,1709283600.500000,1,"
                              "4772C3BCC39F6520E2809420E69DB1E4BAAC20F09F9A80", 10000));
}

/* n inserts on table from id first, as one JSON array body (malloc'd). */
static char *many(const char *table, int first, int n)
{
    size_t size = (size_t) n * 160 + 16, len = 0;
    char *out = malloc(size);

    out[0] = '\0';
    for (int i = 0; i < n; i++)
        len += (size_t) snprintf(out + len, size - len,
                                 "%s{\"table\":\"%s\",\"op\":\"insert\",\"new\":{\"id\":\"%d\","
                                 "\"status\":\"bulk\",\"total\":\"%d.25\"}}", i ? "," : "", table,
                                 first + i, i);
    return out;
}

static void test_thousand_rows(void)
{
    char *lite = many("public.orders", 1000, 1000), *ma = many("public.morders", 1000, 1000);
    struct src_tx t;
    struct resp r;

    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, lite, &r), 200);
    resp_free(&r);
    src_end(&t, true);
    DW_ASSERT_STREQ(lite_val("SELECT count(*) FROM orders WHERE status = 'bulk'"), "1000");

    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, ma, &r), 200);
    DW_ASSERT_CONTAINS(r.body, "\"prepared\"");
    resp_free(&r);
    DW_ASSERT_STREQ(maria_val("SELECT count(*) FROM orders WHERE status = 'bulk'"), "0");
    src_end(&t, true);
    CU_ASSERT_EQUAL(post_outcome(t.xid, "committed"), 204);
    CU_ASSERT_TRUE(wait_maria("SELECT count(*) FROM orders WHERE status = 'bulk'", "1000", 10000));
    DW_ASSERT_STREQ(maria_val("SELECT total FROM orders WHERE id = 1999"), "999.25");
    free(lite);
    free(ma);
}

enum { THREADS = 4, PER_THREAD = 5 };

static void *poster(void *arg)
{
    int base = 5000 + 100 * (int) (intptr_t) arg;
    long failures = 0;

    for (int i = 0; i < PER_THREAD; i++) {
        char xid[32], *ch = order("public.morders", base + i, "\"concurrent\"", "\"1\"");
        PGconn *c = tx_begin(xid, sizeof(xid));
        struct resp r;

        if (post_batch(xid, ch, &r) != 200 || !strstr(r.body, "\"prepared\"")) {
            fprintf(stderr, "\n    concurrent batch: %d %s\n", r.status, r.body);
            failures++;
        }
        resp_free(&r);
        tx_end(c, true);
        if (post_outcome(xid, "committed") != 204)
            failures++;
        free(ch);
    }
    return (void *) (intptr_t) failures;
}

static void test_concurrent_batches(void)
{
    pthread_t th[THREADS];
    long failures = 0;

    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, poster, (void *) (intptr_t) i);
    for (int i = 0; i < THREADS; i++) {
        void *ret;

        pthread_join(th[i], &ret);
        failures += (long) (intptr_t) ret;
    }
    CU_ASSERT_EQUAL(failures, 0);
    CU_ASSERT_TRUE(wait_maria("SELECT count(*) FROM orders WHERE status = 'concurrent'", "20",
                              20000));
    CU_ASSERT_TRUE(wait_maria_prepared(0, 20000));
}

static void test_daemon_killed_at_prepared(void)
{
    struct src_tx ta, tb;
    struct resp r;
    char *a = order("public.morders", 20, "\"draft\"", "null");
    char *b = order("public.morders", 21, "\"draft\"", "null");

    src_begin(&ta);
    src_begin(&tb);
    CU_ASSERT_EQUAL(post_batch(ta.xid, a, &r), 200);
    resp_free(&r);
    CU_ASSERT_EQUAL(post_batch(tb.xid, b, &r), 200);
    resp_free(&r);
    CU_ASSERT_EQUAL(maria_prepared(), 2);
    /* the bridge dies holding two prepared XA transactions; the source decides meanwhile */
    CU_ASSERT_EQUAL(stop_daemon(SIGKILL), 128 + SIGKILL);
    src_end(&ta, true);
    src_end(&tb, false);
    CU_ASSERT_TRUE_FATAL(start_daemon());
    /* the resolver asks the source and settles both */
    CU_ASSERT_TRUE(wait_maria_prepared(0, 20000));
    CU_ASSERT_TRUE(wait_maria("SELECT GROUP_CONCAT(id) FROM orders WHERE id IN (20, 21)", "20",
                              10000));
    free(a);
    free(b);
}

static void test_mariadb_killed_at_prepared(void)
{
    struct src_tx t;
    struct resp r;
    char *a = order("public.morders", 30, "\"draft\"", "null");
    char *after = order("public.morders", 31, "\"draft\"", "null");

    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, a, &r), 200);
    resp_free(&r);
    dw_odbc_conn_close(maria_db);
    CU_ASSERT_TRUE_FATAL(dw_mariadb_kill(&maria));
    src_end(&t, true);
    /* accepted; the settling fails while the target is down and the resolver keeps at it */
    CU_ASSERT_EQUAL(post_outcome(t.xid, "committed"), 204);
    CU_ASSERT_TRUE_FATAL(dw_mariadb_restart(&maria));
    maria_db = dw_odbc_conn_open(maria_root_cs);
    CU_ASSERT_TRUE(wait_maria("SELECT count(*) FROM orders WHERE id = 30", "1", 30000));
    CU_ASSERT_TRUE(wait_maria_prepared(0, 20000));
    /* and new batches go through again (the pool reopened its sessions) */
    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, after, &r), 200);
    resp_free(&r);
    src_end(&t, true);
    CU_ASSERT_EQUAL(post_outcome(t.xid, "committed"), 204);
    CU_ASSERT_TRUE(wait_maria("SELECT count(*) FROM orders WHERE id = 31", "1", 10000));
    free(a);
    free(after);
}

static void test_no_secret_anywhere(void)
{
    struct resp r;
    char *log = dw_fixture_read_file(log_path);

    CU_ASSERT_PTR_NULL(strstr(log, PASSWORD));
    free(log);
    CU_ASSERT_EQUAL(call("GET", "/v1/status", NULL, &r), 200);
    CU_ASSERT_PTR_NULL(strstr(r.body, PASSWORD));
    resp_free(&r);
    CU_ASSERT_EQUAL(call("GET", "/metrics", NULL, &r), 200);
    CU_ASSERT_PTR_NULL(strstr(r.body, PASSWORD));
    resp_free(&r);
}

int main(void)
{
    CU_pSuite s;
    unsigned failures;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    s = CU_add_suite("dualwrited with ODBC targets", suite_init, suite_cleanup);
    CU_add_test(s, "SQLite: commit, and a rejection with the driver's message",
                test_sqlite_commit_and_reject);
    CU_add_test(s, "MariaDB: prepared, then the outcome", test_maria_prepared_then_outcome);
    CU_add_test(s, "MariaDB: a rejection with the driver's message", test_maria_rejects);
    CU_add_test(s, "types round trip", test_types_round_trip);
    CU_add_test(s, "1000 rows in one batch", test_thousand_rows);
    CU_add_test(s, "concurrent batches", test_concurrent_batches);
    CU_add_test(s, "daemon killed with prepared XA transactions", test_daemon_killed_at_prepared);
    CU_add_test(s, "MariaDB killed with a prepared XA transaction",
                test_mariadb_killed_at_prepared);
    CU_add_test(s, "the password appears nowhere", test_no_secret_anywhere);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
               CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failures != 0;
}
