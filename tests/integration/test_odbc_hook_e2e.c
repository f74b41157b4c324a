/*
 * ODBC targets end to end through the hook: a source cluster with the
 * dualwrite extension preloaded and capture triggers, the real dualwrited
 * (svc_harness) with two ODBC connectors, "lite" (an SQLite file through
 * DRIVER={SQLite3}, one-phase) and "maria" (a MariaDB server through its ODBC
 * driver, XA two-phase with commit "auto"), and nothing but real source
 * transactions on libpq: COMMIT is what sends each batch.
 *
 * For both targets: a COMMIT lands on the target; a target constraint (CHECK
 * and UNIQUE) fails the source COMMIT with the driver's message and SQLSTATE
 * and leaves nothing on either side; the types round trip from source
 * columns to target columns (int, bigint, numeric, double, date, timestamp,
 * timestamptz, boolean, NULL, UTF-8 with 4-byte characters); one transaction
 * of 1000 rows; four concurrent sessions for about ten seconds.  For MariaDB
 * the crash rows of the failure matrix (DESIGN.md section 2), driven by the
 * fault points of a test build: the source backend killed after "prepared"
 * (the resolver rolls the XA transaction back), killed after its commit
 * record (the resolver commits it), and the service killed holding a
 * prepared XA transaction (restarted, the resolver settles it).
 *
 * Every test ends with the same contract: no "dw:" xid in MariaDB's
 * XA RECOVER, and each source table identical to its target table.  The
 * crash-tolerant source helpers (gh_q, gh_long, gh_source_connect) come from
 * guarantees_harness.c.  DW_TEST_KEEP_LOG=1 prints the service's log.
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <libpq-fe.h>

#include "tests/fixtures/dw_fixture.h"
#include "tests/fixtures/dw_fixture_odbc.h"
#include "tests/integration/guarantees_harness.h"
#include "tests/integration/svc_harness.h"
#include "tests/unit/common/dw_cunit.h"

#define PASSWORD "Hook2eSecretPw"
#define SETTLE_MS 30000      /* the outcome or the resolver settling MariaDB's XA transactions */
#define PAGE 100             /* rows per comparison query (the fixture's value buffer is 8 KB) */
#define PAGE_S "100"

static struct dw_mariadb maria;
static struct dw_odbc_conn *lite_db, *maria_db;   /* the test's own views of the targets */
static char lite_cs[700], maria_root_cs[700];

/* One target as the tests see it: its source tables, its own SQL for the checks. */
struct side {
    const char *name;          /* "SQLite" */
    const char *orders, *types;   /* source tables */
    bool two_phase;
    struct dw_odbc_conn **db;
    const char *page_sql;      /* id|status|ref|total rows, PAGE at offset %d */
    const char *check_state, *check_msg, *unique_state, *unique_msg;
    bool unique_works;         /* the target reports a non-key UNIQUE conflict */
};

static const struct side lite = {
    "SQLite", "lorders", "ltypes", false, &lite_db,
    "SELECT group_concat(r, ',') FROM (SELECT id || '|' || status || '|' || ifnull(ref, 'N') || '|' || "
    "CASE WHEN total IS NULL THEN 'N' ELSE printf('%%.2f', total) END AS r FROM orders ORDER BY id LIMIT " PAGE_S " OFFSET %d)",
    "HY000", "CHECK constraint failed", "HY000", "UNIQUE constraint failed: orders.ref", true};

static const struct side mar = {
    "MariaDB", "morders", "mtypes", true, &maria_db,
    "SELECT GROUP_CONCAT(r ORDER BY id SEPARATOR ',') FROM (SELECT id, CONCAT(id, '|', status, '|', "
    "IFNULL(ref, 'N'), '|', IFNULL(total, 'N')) AS r FROM orders ORDER BY id LIMIT " PAGE_S " OFFSET %d) s",
    "23000", "CONSTRAINT `orders.status` failed", "23000", "conflicts with another row on a unique key other than the target key",
    true};

/* ------------------------------------------------------------ helpers */

static const char *tval(const struct side *s, const char *sql)
{
    const char *v = dw_odbc_value(*s->db, "%s", sql);

    return v ? v : "(null)";
}

/* "dw:" xids in MariaDB's XA RECOVER, counted through the server's own client (-1: cannot say). */
static long maria_prepared(void)
{
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
    return out[0] ? strtol(out, NULL, 10) : -1;
}

static bool wait_maria_prepared(long n, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    while (now_ms() < end) {
        if (maria_prepared() == n)
            return true;
        sleep_ms(100);
    }
    if (maria_prepared() == n)
        return true;
    fprintf(stderr, "\n    XA RECOVER: %ld dw: transactions, wanted %ld\n", maria_prepared(), n);
    return false;
}

static bool wait_tval(const struct side *s, const char *sql, const char *want, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    while (now_ms() < end) {
        if (strcmp(tval(s, sql), want) == 0)
            return true;
        sleep_ms(100);
    }
    if (strcmp(tval(s, sql), want) == 0)
        return true;
    fprintf(stderr, "\n    %s: %s: wanted %s, have %s\n", s->name, sql, want, tval(s, sql));
    return false;
}

/* A statement on a fresh source session (waits while the source crash-recovers). */
static struct gh_res src_q(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct gh_res src_q(const char *fmt, ...)
{
    PGconn *c = gh_source_connect();
    char *sql = NULL;
    struct gh_res r;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&sql, fmt, ap) < 0)
        exit(1);
    va_end(ap);
    r = gh_q(c, "%s", sql);
    if (!r.ok)
        fprintf(stderr, "\n    (%s: %s; %s)\n", r.state, r.msg, r.detail);
    PQfinish(c);
    free(sql);
    return r;
}

static long src_long(const char *fmt, const char *table, int arg)
{
    PGconn *c = gh_source_connect();
    char sql[512];
    long v;

    snprintf(sql, sizeof(sql), fmt, table, arg);
    v = gh_long(c, "%s", sql);
    PQfinish(c);
    return v;
}

/* The source's page at offset, as the target's page_sql formats it; "(null)" when empty. */
static char *src_page(PGconn *c, const char *table, int offset)
{
    PGresult *r;
    char *out, sql[512];

    snprintf(sql, sizeof(sql),
             "SELECT string_agg(id || '|' || status || '|' || coalesce(ref, 'N') || '|' || "
             "coalesce(total::text, 'N'), ',' ORDER BY id) FROM (SELECT * FROM %s ORDER BY id "
             "LIMIT %d OFFSET %d) s", table, PAGE, offset);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        out = strdup("(query failed)");
    else
        out = strdup(PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

/* Both sides of one orders table identical, page by page; differences on stderr. */
static bool tables_equal(const struct side *s)
{
    PGconn *c = gh_source_connect();
    bool same = c != NULL;

    for (int offset = 0; same; offset += PAGE) {
        char *a = src_page(c, s->orders, offset), sql[600];
        const char *b;

        snprintf(sql, sizeof(sql), s->page_sql, offset);
        b = tval(s, sql);
        same = strcmp(a, b) == 0;
        if (!same)
            fprintf(stderr, "\n    %s orders differ at rows %d..%d:\n      source: %.600s\n"
                    "      target: %.600s\n", s->name, offset, offset + PAGE - 1, a, b);
        if (strcmp(a, "(null)") == 0) {
            free(a);
            break;
        }
        free(a);
    }
    PQfinish(c);
    return same;
}

/* The contract every test ends with. */
static bool consistent(void)
{
    bool ok = wait_maria_prepared(0, SETTLE_MS);

    ok = tables_equal(&lite) && ok;
    return tables_equal(&mar) && ok;
}

/* A source session that kills itself at the named fault point of the hook. */
static PGconn *fault_session(const char *fault)
{
    PGconn *c = gh_source_connect();
    struct gh_res r = gh_q(c, "SET dualwrite.fault = '%s'", fault);

    if (!r.ok)
        fprintf(stderr, "\n    cannot set dualwrite.fault: %s\n", r.msg);
    CU_ASSERT_FATAL(r.ok);
    return c;
}

/* ------------------------------------------------------------ set-up */

static const char orders_map_fmt[] =
    "{\"map\": \"%s\",\n"
    " \"source\": {\"table\": \"public.%s\", \"key\": [\"id\"]},\n"
    " \"target\": {\"connector\": \"%s\", \"table\": \"orders\", \"key\": [\"id\"]},\n"
    " \"fields\": [{\"source\": \"id\", \"target\": \"id\"},\n"
    "            {\"source\": \"status\", \"target\": \"status\", \"required\": true},\n"
    "            {\"source\": \"ref\", \"target\": \"ref\"},\n"
    "            {\"source\": \"total\", \"target\": \"total\"}]}\n";

static const char types_map_fmt[] =
    "{\"map\": \"%s\",\n"
    " \"source\": {\"table\": \"public.%s\", \"key\": [\"id\"]},\n"
    " \"target\": {\"connector\": \"%s\", \"table\": \"types\", \"key\": [\"id\"]},\n"
    " \"fields\": [{\"source\": \"id\", \"target\": \"id\"}, {\"source\": \"i\", \"target\": \"i\"},\n"
    "   {\"source\": \"b\", \"target\": \"b\"}, {\"source\": \"d\", \"target\": \"d\"},\n"
    "   {\"source\": \"f\", \"target\": \"f\"}, {\"source\": \"dt\", \"target\": \"dt\"},\n"
    "   {\"source\": \"ts\", \"target\": \"ts\"}, {\"source\": \"tz\", \"target\": \"tz\"},\n"
    "   {\"source\": \"bo\", \"target\": \"bo\"}, {\"source\": \"t\", \"target\": \"t\"}]}\n";

static void write_map(const char *name, const char *fmt, const char *table, const char *connector)
{
    char path[600];

    snprintf(path, sizeof(path), "%s/%s.json", maps_dir, name);
    dw_fixture_write_file(path, fmt, name, table, connector);
}

static void write_service_config(void)
{
    char maria_cs[700];

    snprintf(maria_cs, sizeof(maria_cs), "DRIVER={%s};SOCKET=%s;DATABASE=dw;UID=dw;PWD=${DW_E2E_PW}",
             dw_odbc_driver("mariadb"), maria.sock);
    dw_fixture_write_file(cfg_path,
               "{\"listen\": {\"unix\": \"%s\", \"group\": \"postgres\"},\n"
               " \"source\": {\"conninfo\": \"%s\"},\n"
               " \"maps\": \"maps\",\n"
               " \"connectors\": {\n"
               "   \"lite\": {\"type\": \"odbc\", \"connection_string\": \"%s\", \"pool_size\": 1,\n"
               "             \"timeout_ms\": 20000, \"limits\": {\"records_per_transaction\": 2000,\n"
               "             \"requests_per_window\": 0, \"execution_s_per_window\": 0}},\n"
               "   \"maria\": {\"type\": \"odbc\", \"connection_string\": \"%s\", \"commit\": \"auto\",\n"
               "             \"pool_size\": 6, \"timeout_ms\": 20000,\n"
               "             \"limits\": {\"records_per_transaction\": 2000,\n"
               "             \"requests_per_window\": 0, \"execution_s_per_window\": 0}}},\n"
               " \"resolver\": {\"interval_ms\": 200, \"grace_ms\": 1000},\n"
               " \"log_level\": \"debug\"}\n",
               sock_path, source_ci, lite_cs, maria_cs);
}

static void create_target_tables(struct dw_odbc_conn *c, const char *suffix, const char *types)
{
    dw_odbc_sql(c, "CREATE TABLE orders (id INT PRIMARY KEY, status VARCHAR(40) NOT NULL "
                   "CHECK (status <> 'bad'), ref VARCHAR(40) UNIQUE, total DECIMAL(12,2))%s", suffix);
    dw_odbc_sql(c, "%s", types);
}

static bool create_source_tables(void)
{
    static const char *const tables[][3] = {
        {"lorders", "lite_orders", "'id', 'status', 'ref', 'total'"},
        {"morders", "maria_orders", "'id', 'status', 'ref', 'total'"},
        {"ltypes", "lite_types", "'id', 'i', 'b', 'd', 'f', 'dt', 'ts', 'tz', 'bo', 't'"},
        {"mtypes", "maria_types", "'id', 'i', 'b', 'd', 'f', 'dt', 'ts', 'tz', 'bo', 't'"},
    };
    PGconn *c = gh_source_connect();
    bool ok = c && gh_q(c, "SET client_min_messages = warning; CREATE EXTENSION dualwrite").ok;

    for (size_t i = 0; ok && i < sizeof(tables) / sizeof(tables[0]); i++) {
        const char *cols = strstr(tables[i][0], "orders")
            ? "id int PRIMARY KEY, status text, ref text, total numeric(12,2)"
            : "id int PRIMARY KEY, i int, b bigint, d numeric(12,2), f double precision, dt date, "
              "ts timestamp, tz timestamptz, bo boolean, t text";
        struct gh_res r = gh_q(c, "CREATE TABLE %s (%s); "
                                  "CREATE TRIGGER dualwrite_capture AFTER INSERT OR UPDATE OR DELETE ON %s "
                                  "  FOR EACH ROW EXECUTE FUNCTION dualwrite.capture('%s', %s); "
                                  "ALTER TABLE %s ENABLE ALWAYS TRIGGER dualwrite_capture",
                               tables[i][0], cols, tables[i][0], tables[i][1], tables[i][2], tables[i][0]);

        if (!r.ok)
            fprintf(stderr, "source table %s: %s\n", tables[i][0], r.msg);
        ok = r.ok;
    }
    PQfinish(c);
    return ok;
}

static int suite_init(void)
{
    const char *root = getenv("DW_BUILD_ROOT");
    const char *sconf[4];
    char bridge_line[500];

    dw_fixture_require();
    dw_odbc_require_sqlite();
    dw_odbc_require_mariadb();
    if (!root)
        return 1;
    snprintf(daemon_bin, sizeof(daemon_bin), "%s/bridge/service/dualwrited", root);
    if (access(daemon_bin, X_OK) != 0) {
        fprintf(stderr, "SKIP: %s has not been built\n", daemon_bin);
        exit(77);
    }
    snprintf(dir, sizeof(dir), "%s/svc", dw_fixture_tmpdir());
    mkdir(dir, 0755);
    snprintf(maps_dir, sizeof(maps_dir), "%s/maps", dir);
    mkdir(maps_dir, 0755);
    snprintf(cfg_path, sizeof(cfg_path), "%s/dualwrite.json", dir);
    snprintf(sock_path, sizeof(sock_path), "%s/bridge.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/dualwrited.log", dir);

    /* the source: the extension preloaded, its bridge our daemon */
    snprintf(bridge_line, sizeof(bridge_line), "dualwrite.bridge = '%s'", sock_path);
    sconf[0] = "shared_preload_libraries = 'dualwrite'";
    sconf[1] = bridge_line;
    sconf[2] = "dualwrite.commit_timeout = '20s'";
    sconf[3] = NULL;
    if (!dw_pg_cluster_start(&source, sconf, true) || !dw_mariadb_start(&maria, NULL))
        return 1;
    dw_pg_cluster_conninfo(&source, "postgres", source_ci, sizeof(source_ci));
    if (strlen(source_ci) >= sizeof(gh_source_ci))
        return 1;
    memcpy(gh_source_ci, source_ci, strlen(source_ci) + 1);
    if (!create_source_tables())
        return 1;

    /* the targets */
    dw_sqlite_connstr("hook_e2e.sqlite", lite_cs, sizeof(lite_cs));
    lite_db = dw_odbc_conn_open(lite_cs);
    create_target_tables(lite_db, "", "CREATE TABLE types (id INTEGER PRIMARY KEY, i INTEGER, b BIGINT, "
                                      "d NUMERIC(12,2), f DOUBLE, dt DATE, ts TIMESTAMP, tz TIMESTAMP, "
                                      "bo BOOLEAN, t TEXT)");
    dw_mariadb_connstr(&maria, "dw", NULL, maria_root_cs, sizeof(maria_root_cs));
    maria_db = dw_odbc_conn_open(maria_root_cs);
    create_target_tables(maria_db, " ENGINE=InnoDB",
                         "CREATE TABLE types (id INT PRIMARY KEY, i INT, b BIGINT, d DECIMAL(12,2), "
                         "f DOUBLE, dt DATE, ts DATETIME(6), tz TIMESTAMP(6) NULL, bo BOOLEAN, "
                         "t VARCHAR(200)) ENGINE=InnoDB");
    dw_odbc_sql(maria_db, "CREATE USER 'dw'@'localhost' IDENTIFIED BY '" PASSWORD "'");
    dw_odbc_sql(maria_db, "GRANT ALL ON dw.* TO 'dw'@'localhost'");

    /* the service */
    write_map("lite_orders", orders_map_fmt, "lorders", "lite");
    write_map("maria_orders", orders_map_fmt, "morders", "maria");
    write_map("lite_types", types_map_fmt, "ltypes", "lite");
    write_map("maria_types", types_map_fmt, "mtypes", "maria");
    write_service_config();
    setenv("DW_E2E_PW", PASSWORD, 1);
    unsetenv("DW_FAULT");
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
    dw_pg_cluster_stop(&source);
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------ commit */

static void commit_lands(const struct side *s)
{
    const char *t = s->orders;

    CU_ASSERT(src_q("BEGIN; INSERT INTO %s VALUES (1, 'draft', 'r1', 12.5), (2, 'draft', NULL, 7), "
                    "(3, 'draft', 'r3', NULL); COMMIT", t).ok);
    CU_ASSERT(src_q("BEGIN; UPDATE %s SET status = 'confirmed', total = 13 WHERE id = 1; "
                    "DELETE FROM %s WHERE id = 2; COMMIT", t, t).ok);
    if (!s->two_phase)   /* one-phase: committed on the target before the source's COMMIT returned */
        DW_ASSERT_STREQ(tval(s, "SELECT count(*) FROM orders"), "2");
    CU_ASSERT(wait_tval(s, "SELECT count(*) FROM orders WHERE id = 1 AND status = 'confirmed' AND total = 13",
                        "1", SETTLE_MS));
    CU_ASSERT(wait_tval(s, "SELECT count(*) FROM orders", "2", SETTLE_MS));
    CU_ASSERT(consistent());
}

static void test_sqlite_commit(void)
{
    commit_lands(&lite);
}

static void test_maria_commit(void)
{
    commit_lands(&mar);
    CU_ASSERT(log_contains("connector \"maria\""));
}

/* ------------------------------------------------------------ rejection */

static void rejected(const struct side *s, const char *sql, const char *state, const char *msg, int id)
{
    struct gh_res r = src_q("BEGIN; INSERT INTO %s VALUES (%d, 'ok', NULL, 1); %s; COMMIT", s->orders, id, sql);

    CU_ASSERT_FALSE(r.ok);
    DW_ASSERT_STREQ(r.state, state);
    DW_ASSERT_CONTAINS(r.msg, "dualwrite: target rejected the transaction");
    DW_ASSERT_CONTAINS(r.detail, msg);
    CU_ASSERT_EQUAL(src_long("SELECT count(*) FROM %s WHERE id BETWEEN %d AND %d + 9", s->orders, id), 0);
    CU_ASSERT(wait_maria_prepared(0, SETTLE_MS));
    {
        char q[128];

        snprintf(q, sizeof(q), "SELECT count(*) FROM orders WHERE id BETWEEN %d AND %d", id, id + 9);
        DW_ASSERT_STREQ(tval(s, q), "0");
    }
}

/* Two source rows with the same ref (id+1, id+2): only the target's UNIQUE (ref) objects. */
static void target_rejects_unique(const struct side *s, int id)
{
    char sql[200];

    snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (%d, 'ok', 'dup%d', 2), (%d, 'ok', 'dup%d', 3)",
             s->orders, id + 1, id, id + 2, id);
    rejected(s, sql, s->unique_state, s->unique_msg, id);
}

static void target_rejects(const struct side *s)
{
    char sql[200];

    /* CHECK (status <> 'bad'): the target's rule only */
    snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (11, 'bad', NULL, 2)", s->orders);
    rejected(s, sql, s->check_state, s->check_msg, 10);
    /* UNIQUE (ref): two source rows that only the target finds duplicates */
    if (s->unique_works)
        target_rejects_unique(s, 40);
    /* and the next transaction goes through */
    CU_ASSERT(src_q("INSERT INTO %s VALUES (30, 'after', 'dup40', 1)", s->orders).ok);
    CU_ASSERT(consistent());
}

static void test_sqlite_rejects(void)
{
    target_rejects(&lite);
}

static void test_maria_rejects(void)
{
    target_rejects(&mar);
}

/* ------------------------------------------------------------ types */

static const char types_rows[] =
    "INSERT INTO %s VALUES "
    "(1, -7, 9223372036854775807, 12.50, 0.1, '2024-03-01', '2024-03-01 10:00:00.123456', "
    "  '2024-03-01 10:00:00.5+01', true, E'Gr\\u00fc\\u00dfe \\u2014 \\u6771\\u4eac \\U0001F680'), "
    "(2, 2147483647, -9223372036854775808, -0.01, -2.5e-7, '1999-12-31', '1999-12-31 23:59:59', "
    "  '2000-01-01 00:00:00+00', false, 'plain'), "
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)";

#define UTF8_HEX "4772C3BCC39F6520E2809420E69DB1E4BAAC20F09F9A80"

static void test_types_round_trip(void)
{
    PGconn *c;

    CU_ASSERT_FATAL(src_q(types_rows, "ltypes").ok);
    CU_ASSERT_FATAL(src_q(types_rows, "mtypes").ok);
    /* the source holds what the targets should hold */
    c = gh_source_connect();
    CU_ASSERT_EQUAL(gh_long(c, "SELECT count(*) FROM ltypes WHERE encode(convert_to(t, 'UTF8'), 'hex') = "
                               "lower('" UTF8_HEX "')"), 1);
    PQfinish(c);

    DW_ASSERT_STREQ(tval(&lite, "SELECT i||','||b||','||d||','||f||','||dt||','||ts||','||tz||','||bo||','||"
                                "hex(t) FROM types WHERE id = 1"),
                    "-7,9223372036854775807,12.5,0.1,2024-03-01,2024-03-01 10:00:00.123456,"
                    "2024-03-01 09:00:00.5,1," UTF8_HEX);
    DW_ASSERT_STREQ(tval(&lite, "SELECT i||','||b||','||d||','||f||','||dt||','||ts||','||tz||','||bo||','||t"
                                " FROM types WHERE id = 2"),
                    "2147483647,-9223372036854775808,-0.01,-2.5e-07,1999-12-31,1999-12-31 23:59:59,"
                    "2000-01-01 00:00:00,0,plain");
    DW_ASSERT_STREQ(tval(&lite, "SELECT count(*) FROM types WHERE id = 3 AND i IS NULL AND b IS NULL AND "
                                "d IS NULL AND f IS NULL AND dt IS NULL AND ts IS NULL AND tz IS NULL AND "
                                "bo IS NULL AND t IS NULL"), "1");

    CU_ASSERT(wait_tval(&mar, "SELECT CONCAT_WS(',', i, b, d, f, dt, ts, UNIX_TIMESTAMP(tz), bo, HEX(t)) "
                              "FROM types WHERE id = 1",
                        "-7,9223372036854775807,12.50,0.1,2024-03-01,2024-03-01 10:00:00.123456,"
                        "1709283600.500000,1," UTF8_HEX, SETTLE_MS));
    DW_ASSERT_STREQ(tval(&mar, "SELECT CONCAT_WS(',', i, b, d, f, dt, ts, UNIX_TIMESTAMP(tz), bo, t) "
                               "FROM types WHERE id = 2"),
                    "2147483647,-9223372036854775808,-0.01,-0.00000025,1999-12-31,1999-12-31 23:59:59.000000,"
                    "946684800.000000,0,plain");
    DW_ASSERT_STREQ(tval(&mar, "SELECT COUNT(*) FROM types WHERE id = 3 AND i IS NULL AND b IS NULL AND "
                               "d IS NULL AND f IS NULL AND dt IS NULL AND ts IS NULL AND tz IS NULL AND "
                               "bo IS NULL AND t IS NULL"), "1");
    CU_ASSERT(consistent());
}

/* ------------------------------------------------------------ 1000 rows */

static void thousand_rows(const struct side *s)
{
    CU_ASSERT(src_q("INSERT INTO %s SELECT g, 'bulk', 'b' || g, g + 0.25 FROM generate_series(1000, 1999) g",
                    s->orders).ok);
    CU_ASSERT(wait_tval(s, "SELECT count(*) FROM orders WHERE status = 'bulk'", "1000", SETTLE_MS));
    CU_ASSERT(src_q("UPDATE %s SET status = 'bulk2', total = total + 1 WHERE id BETWEEN 1000 AND 1999",
                    s->orders).ok);
    CU_ASSERT(wait_tval(s, "SELECT count(*) FROM orders WHERE status = 'bulk2'", "1000", SETTLE_MS));
    CU_ASSERT(consistent());
}

static void test_sqlite_thousand_rows(void)
{
    thousand_rows(&lite);
}

static void test_maria_thousand_rows(void)
{
    thousand_rows(&mar);
}

/* ------------------------------------------------------------ concurrent sessions */

enum { SESSIONS = 4, RUN_MS = 10000 };

struct worker {
    int n;
    long committed, failed;
    char first_error[2200];
};

/*
 * One session: transactions of an insert, an update of an earlier row and
 * now and then a delete, alternating between the two targets' tables (even
 * sessions start with SQLite, odd ones with MariaDB).
 */
static void *session_run(void *arg)
{
    struct worker *w = arg;
    PGconn *c = gh_source_connect();
    int64_t end = now_ms() + RUN_MS;
    int i = 0;

    while (c && now_ms() < end) {
        const char *t = ((i + w->n) % 2 == 0) ? lite.orders : mar.orders;
        int id = 100000 * (w->n + 1) + i;
        struct gh_res r = gh_q(c, "BEGIN; INSERT INTO %s VALUES (%d, 's%d', NULL, %d.%02d); "
                                  "UPDATE %s SET status = 'u', total = total + 1 WHERE id = %d; "
                                  "DELETE FROM %s WHERE id = %d AND %d %% 5 = 0; COMMIT",
                               t, id, w->n, i, i % 100, t, id - 2, t, id - 4, i);

        if (r.ok) {
            w->committed++;
        } else {
            if (!w->failed)
                snprintf(w->first_error, sizeof(w->first_error), "%s: %s (%s)", r.state, r.msg, r.detail);
            w->failed++;
            gh_q(c, "ROLLBACK");
        }
        i++;
    }
    PQfinish(c);
    return NULL;
}

static void test_concurrent_sessions(void)
{
    pthread_t th[SESSIONS];
    struct worker w[SESSIONS];
    long committed = 0, failed = 0;

    for (int i = 0; i < SESSIONS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].n = i;
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, session_run, &w[i]) == 0);
    }
    for (int i = 0; i < SESSIONS; i++) {
        pthread_join(th[i], NULL);
        committed += w[i].committed;
        failed += w[i].failed;
        if (w[i].failed)
            fprintf(stderr, "\n    session %d: %ld failed, first: %s\n", i, w[i].failed, w[i].first_error);
    }
    fprintf(stderr, "\n    %d sessions: %ld transactions committed, %ld failed\n", SESSIONS, committed,
            failed);
    CU_ASSERT(committed > 0);
    CU_ASSERT_EQUAL(failed, 0);
    CU_ASSERT(consistent());
}

/* ------------------------------------------------------------ MariaDB crash tests */

/* The backend SIGKILLed after "prepared", before its commit record: aborted; XA ROLLBACK. */
static void test_maria_source_dies_before_commit_record(void)
{
    PGconn *c = fault_session("crash-after-verdict");
    struct gh_res r = gh_q(c, "INSERT INTO morders VALUES (501, 'crash', NULL, 5)");

    CU_ASSERT_FALSE(r.ok);   /* the server closed the connection */
    PQfinish(c);
    CU_ASSERT_EQUAL(src_long("SELECT count(*) FROM %s WHERE id = %d", "morders", 501), 0);
    CU_ASSERT(consistent());
    DW_ASSERT_STREQ(tval(&mar, "SELECT count(*) FROM orders WHERE id = 501"), "0");
    CU_ASSERT(wait_for_log("aborted; ", 5000));
    CU_ASSERT(healthy());
    CU_ASSERT_FALSE(log_contains("a human must run"));
}

/* The backend SIGKILLed after its commit record, before the outcome: committed; XA COMMIT. */
static void test_maria_source_dies_before_outcome(void)
{
    PGconn *c = fault_session("crash-before-outcome");
    struct gh_res r = gh_q(c, "BEGIN; INSERT INTO morders VALUES (502, 'crash', 'c502', 6); "
                              "UPDATE morders SET total = 99 WHERE id = 1; COMMIT");

    CU_ASSERT_FALSE(r.ok);   /* the client never heard of the commit */
    PQfinish(c);
    CU_ASSERT_EQUAL(src_long("SELECT count(*) FROM %s WHERE id = %d", "morders", 502), 1);
    CU_ASSERT(consistent());
    DW_ASSERT_STREQ(tval(&mar, "SELECT CONCAT(status, '/', total) FROM orders WHERE id = 502"), "crash/6.00");
    DW_ASSERT_STREQ(tval(&mar, "SELECT total FROM orders WHERE id = 1"), "99.00");
    CU_ASSERT(wait_for_log("committed; ", 5000));
    CU_ASSERT_FALSE(log_contains("a human must run"));
}

/* The service SIGKILLed holding a prepared XA transaction: COMMIT fails, state unknown; restarted, settled. */
static void test_maria_service_dies_holding_prepared(void)
{
    PGconn *c;
    struct gh_res r;
    int rc;

    CU_ASSERT_EQUAL_FATAL(stop_daemon(SIGTERM), 0);
    setenv("DW_FAULT", "exit-after-prepare", 1);
    CU_ASSERT_FATAL(start_daemon());
    unsetenv("DW_FAULT");
    c = gh_source_connect();
    r = gh_q(c, "INSERT INTO morders VALUES (503, 'crash', NULL, 7)");
    CU_ASSERT_FALSE(r.ok);
    DW_ASSERT_STREQ(r.state, "YW007");
    DW_ASSERT_CONTAINS(r.msg, "state unknown");
    rc = wait_exit(daemon_pid, 30000);
    CU_ASSERT_EQUAL(rc, 128 + SIGKILL);
    if (rc >= 0)
        daemon_pid = -1;
    /* the session lives on, its transaction rolled back; MariaDB keeps what the dead service prepared */
    CU_ASSERT_EQUAL(gh_long(c, "SELECT count(*) FROM morders WHERE id = 503"), 0);
    PQfinish(c);
    CU_ASSERT_EQUAL(maria_prepared(), 1);
    DW_ASSERT_STREQ(tval(&mar, "SELECT count(*) FROM orders WHERE id = 503"), "0");

    CU_ASSERT_FATAL(start_daemon());
    CU_ASSERT(consistent());
    DW_ASSERT_STREQ(tval(&mar, "SELECT count(*) FROM orders WHERE id = 503"), "0");
    /* and the service takes new transactions again */
    CU_ASSERT(src_q("INSERT INTO morders VALUES (504, 'after', NULL, 8)").ok);
    CU_ASSERT(consistent());
    CU_ASSERT(wait_tval(&mar, "SELECT count(*) FROM orders WHERE id = 504", "1", SETTLE_MS));
}

/*
 * MariaDB, UNIQUE on a column outside the map's key.  Last in the suite: while
 * the connector's ON DUPLICATE KEY UPDATE takes any unique key's conflict for
 * the map key's, the second row overwrites the first one's non-key columns on
 * the target instead of failing the COMMIT, and both sides then differ.
 */
static void test_no_secret_in_log(void)
{
    char *log = dw_fixture_read_file(log_path);

    CU_ASSERT_PTR_NULL(strstr(log, PASSWORD));
    free(log);
}

int main(void)
{
    CU_pSuite s;
    unsigned failures;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    s = CU_add_suite("ODBC targets through the hook", suite_init, suite_cleanup);
    CU_add_test(s, "SQLite: COMMIT lands on the target", test_sqlite_commit);
    CU_add_test(s, "MariaDB: COMMIT lands on the target (XA)", test_maria_commit);
    CU_add_test(s, "SQLite: CHECK and UNIQUE fail the source COMMIT", test_sqlite_rejects);
    CU_add_test(s, "MariaDB: CHECK fails the source COMMIT", test_maria_rejects);
    CU_add_test(s, "types round trip from source columns", test_types_round_trip);
    CU_add_test(s, "SQLite: 1000 rows in one transaction", test_sqlite_thousand_rows);
    CU_add_test(s, "MariaDB: 1000 rows in one transaction", test_maria_thousand_rows);
    CU_add_test(s, "4 concurrent source sessions", test_concurrent_sessions);
    CU_add_test(s, "MariaDB: source dies after prepared: XA ROLLBACK",
                test_maria_source_dies_before_commit_record);
    CU_add_test(s, "MariaDB: source dies after its commit record: XA COMMIT",
                test_maria_source_dies_before_outcome);
    CU_add_test(s, "MariaDB: service dies holding a prepared XA transaction",
                test_maria_service_dies_holding_prepared);
    CU_add_test(s, "the password appears nowhere in the log", test_no_secret_in_log);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
               CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failures != 0;
}
