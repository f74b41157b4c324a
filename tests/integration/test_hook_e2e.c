/*
 * End to end: the dualwrite extension in a real source cluster, the real
 * dualwrited, and a real two-phase target cluster.  Where test_hook.c checks
 * the hook against a programmable double, this checks that the pieces agree:
 * an application's COMMIT lands on the target (prepared, then committed by the
 * outcome), a target rejection fails COMMIT with the target's own SQLSTATE, a
 * map rule fails it before the target is touched, a savepoint's rolled-back
 * rows never reach the target, a bridge restart costs one failed transaction,
 * a COMMIT canceled while the target is slow leaves nothing on the target
 * once the resolver has asked the source (DESIGN.md section 2, failure matrix),
 * and a COMMIT that reaches a bridge draining for shutdown says so.
 *
 * Skips (77) when dualwrited has not been built.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "tests/fixtures/dw_fixture.h"
#include "tests/unit/common/dw_cunit.h"

static struct dw_pg_cluster src_cluster, tgt_cluster;
static PGconn *src, *tgt;
static char daemon_bin[512], cfg_path[512], sock_path[512], log_path[512];
static pid_t daemon_pid = -1;



/* q(): SQL that may fail (tests/fixtures/dw_fixture.h) */
#define q dw_sql_try

static long tgt_count(const char *where)
{
    const char *v = dw_sql_value(tgt, "SELECT count(*) FROM orders WHERE %s", where);

    return v ? atol(v) : -1;
}

static long src_count(const char *where)
{
    const char *v = dw_sql_value(src, "SELECT count(*) FROM orders WHERE %s", where);

    return v ? atol(v) : -1;
}

/* Poll until the target holds no prepared transaction (the outcome or the resolver settled it). */
static bool settled(int timeout_ms)
{
    long deadline = dw_fixture_now_ms() + timeout_ms;

    for (;;) {
        const char *v = dw_sql_value(tgt, "SELECT count(*) FROM pg_prepared_xacts");

        if (v && atol(v) == 0)
            return true;
        if (dw_fixture_now_ms() > deadline)
            return false;
        usleep(50000);
    }
}


/* Start dualwrited; its config gives the socket to group postgres ("listen.group"). */
static bool start_daemon(void)
{
    long deadline = dw_fixture_now_ms() + 15000;
    struct stat st;

    unlink(sock_path);
    daemon_pid = fork();
    if (daemon_pid < 0)
        return false;
    if (daemon_pid == 0) {
        FILE *log = freopen(log_path, "a", stderr);

        (void) log;
        execl(daemon_bin, daemon_bin, "-c", cfg_path, (char *) NULL);
        perror("execl");
        _exit(127);
    }
    dw_fixture_track_pid(daemon_pid);
    while (stat(sock_path, &st) != 0) {
        if (dw_fixture_now_ms() > deadline || waitpid(daemon_pid, NULL, WNOHANG) == daemon_pid) {
            fprintf(stderr, "dualwrited did not start; see %s\n", log_path);
            return false;
        }
        usleep(20000);
    }
    return true;
}

static void stop_daemon(void)
{
    if (daemon_pid <= 0)
        return;
    kill(daemon_pid, SIGTERM);
    waitpid(daemon_pid, NULL, 0);
    daemon_pid = -1;
}

static void setup(void)
{
    const char *build = getenv("DW_BUILD_ROOT");
    const char *tmp;
    char conf_bridge[600], ci_src[512], ci_tgt[512], maps_dir[512], path[600];
    const char *src_conf[5], *tgt_conf[] = {"max_prepared_transactions = 48", NULL};

    dw_fixture_require();
    snprintf(daemon_bin, sizeof(daemon_bin), "%s/bridge/service/dualwrited", build ? build : ".");
    if (access(daemon_bin, X_OK) != 0) {
        fprintf(stderr, "SKIP: %s has not been built\n", daemon_bin);
        exit(77);
    }
    tmp = dw_fixture_tmpdir();
    snprintf(sock_path, sizeof(sock_path), "%s/bridge.sock", tmp);
    snprintf(cfg_path, sizeof(cfg_path), "%s/dualwrite.json", tmp);
    snprintf(log_path, sizeof(log_path), "%s/dualwrited.log", tmp);
    snprintf(maps_dir, sizeof(maps_dir), "%s/maps", tmp);
    snprintf(conf_bridge, sizeof(conf_bridge), "dualwrite.bridge = '%s'", sock_path);
    src_conf[0] = "shared_preload_libraries = 'dualwrite'";
    src_conf[1] = conf_bridge;
    src_conf[2] = "dualwrite.commit_timeout = '20s'";
    src_conf[3] = NULL;
    if (!dw_pg_cluster_start(&tgt_cluster, tgt_conf, false) ||
        !dw_pg_cluster_start(&src_cluster, src_conf, true))
        exit(1);
    src = dw_pg_cluster_connect(&src_cluster, "postgres");
    tgt = dw_pg_cluster_connect(&tgt_cluster, "postgres");
    PQclear(dw_sql(tgt, "CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, "
                        "total numeric CHECK (total >= 0))"));
    PQclear(dw_sql(src, "SET client_min_messages = warning; CREATE EXTENSION dualwrite; "
                        "CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric(12,2), "
                        "  internal text);"
                        "CREATE TRIGGER dualwrite_capture AFTER INSERT OR UPDATE OR DELETE ON orders "
                        "  FOR EACH ROW EXECUTE FUNCTION dualwrite.capture('orders', 'id', 'status', "
                        "  'total');"
                        "ALTER TABLE orders ENABLE ALWAYS TRIGGER dualwrite_capture;"
                        "CREATE TRIGGER dualwrite_truncate BEFORE TRUNCATE ON orders "
                        "  FOR EACH STATEMENT EXECUTE FUNCTION dualwrite.reject_truncate('orders');"
                        "ALTER TABLE orders ENABLE ALWAYS TRIGGER dualwrite_truncate"));

    if (mkdir(maps_dir, 0755) != 0 && errno != EEXIST)
        exit(1);
    snprintf(path, sizeof(path), "%s/orders.json", maps_dir);
    dw_fixture_write_file(path,
               "{\"map\": \"orders\",\n"
               " \"source\": {\"table\": \"public.orders\", \"key\": [\"id\"]},\n"
               " \"target\": {\"connector\": \"tgt\", \"table\": \"orders\", \"key\": [\"id\"]},\n"
               " \"fields\": [\n"
               "   {\"source\": \"id\", \"target\": \"id\"},\n"
               "   {\"source\": \"status\", \"target\": \"status\", \"required\": true},\n"
               "   {\"source\": \"total\", \"target\": \"total\"}]}\n");
    dw_fixture_write_file(cfg_path,
               "{\"listen\": {\"unix\": \"%s\", \"group\": \"postgres\"},\n"
               " \"source\": {\"conninfo\": \"%s\"},\n"
               " \"maps\": \"maps\",\n"
               " \"connectors\": {\"tgt\": {\"type\": \"pg\", \"conninfo\": \"%s\",\n"
               "                          \"commit\": \"two-phase\", \"timeout_ms\": 20000}},\n"
               " \"resolver\": {\"interval_ms\": 200, \"grace_ms\": 1000}}\n",
               sock_path, dw_pg_cluster_conninfo(&src_cluster, "postgres", ci_src, sizeof(ci_src)),
               dw_pg_cluster_conninfo(&tgt_cluster, "postgres", ci_tgt, sizeof(ci_tgt)));
    if (!start_daemon())
        exit(1);
}

static void teardown(void)
{
    stop_daemon();
    PQfinish(src);
    PQfinish(tgt);
    if (getenv("DW_TEST_KEEP_LOG")) {
        char cmd[600];

        snprintf(cmd, sizeof(cmd), "cat '%s' >&2", log_path);
        if (system(cmd) != 0)
            fprintf(stderr, "could not print %s\n", log_path);
    }
    dw_pg_cluster_stop(&src_cluster);
    dw_pg_cluster_stop(&tgt_cluster);
}

static void test_commit_reaches_target(void)
{
    CU_ASSERT(q(src, "BEGIN; INSERT INTO orders VALUES (1, 'draft', 12.5, 'x'), "
                     "(2, 'draft', 7, 'y'); COMMIT").ok);
    CU_ASSERT(q(src, "BEGIN; UPDATE orders SET status = 'confirmed' WHERE id = 1; "
                     "DELETE FROM orders WHERE id = 2; COMMIT").ok);
    CU_ASSERT(settled(10000));
    CU_ASSERT_EQUAL(tgt_count("id = 1 AND status = 'confirmed' AND total = 12.50"), 1);
    CU_ASSERT_EQUAL(tgt_count("id = 2"), 0);
}

static void test_target_rejection_is_the_commit_error(void)
{
    struct dw_sql_res r = q(src, "INSERT INTO orders VALUES (3, 'draft', -1, NULL)");

    CU_ASSERT(!r.ok);
    DW_ASSERT_STREQ(r.state, "23514");
    DW_ASSERT_CONTAINS(r.msg, "dualwrite: target rejected the transaction");
    DW_ASSERT_CONTAINS(r.detail, "check constraint");
    CU_ASSERT_EQUAL(src_count("id = 3"), 0);
    CU_ASSERT(settled(10000));
    CU_ASSERT_EQUAL(tgt_count("id = 3"), 0);
}

static void test_map_rule_rejects_before_target(void)
{
    struct dw_sql_res r = q(src, "INSERT INTO orders VALUES (4, NULL, 1, NULL)");

    CU_ASSERT(!r.ok);
    DW_ASSERT_STREQ(r.state, "YW003");
    DW_ASSERT_CONTAINS(r.msg, "table map \"orders\"");
    CU_ASSERT_EQUAL(src_count("id = 4"), 0);
    CU_ASSERT_EQUAL(tgt_count("id = 4"), 0);
}

static void test_savepoint_rows_never_reach_target(void)
{
    CU_ASSERT(q(src, "BEGIN; INSERT INTO orders VALUES (5, 'a', 1); SAVEPOINT s; "
                     "INSERT INTO orders VALUES (6, 'b', 1); ROLLBACK TO s; "
                     "INSERT INTO orders VALUES (7, 'c', 1); COMMIT").ok);
    CU_ASSERT(settled(10000));
    CU_ASSERT_EQUAL(tgt_count("id IN (5, 7)"), 2);
    CU_ASSERT_EQUAL(tgt_count("id = 6"), 0);
}

static void test_bridge_restart(void)
{
    struct dw_sql_res r;

    stop_daemon();
    r = q(src, "INSERT INTO orders VALUES (8, 'x', 1)");
    CU_ASSERT(!r.ok);
    DW_ASSERT_STREQ(r.state, "YW001");
    CU_ASSERT_EQUAL(src_count("id = 8"), 0);
    CU_ASSERT_FATAL(start_daemon());
    /* the backend's kept-alive connection went with the old process: it reconnects */
    CU_ASSERT(q(src, "INSERT INTO orders VALUES (8, 'x', 1)").ok);
    CU_ASSERT(settled(10000));
    CU_ASSERT_EQUAL(tgt_count("id = 8"), 1);
}

/* The failure matrix's "the user cancels" row: aborted at the source, nothing kept on the target. */
static void test_cancel_while_target_is_slow(void)
{
    PGconn *blocker = dw_pg_cluster_connect(&tgt_cluster, "postgres");
    PGconn *other = dw_pg_cluster_connect(&src_cluster, "postgres");
    const char *pid = dw_sql_value(src, "SELECT pg_backend_pid()");
    char spid[32];
    PGresult *res;
    long t0;

    snprintf(spid, sizeof(spid), "%s", pid ? pid : "0");
    /* hold the key on the target so that the bridge's apply waits */
    PQclear(dw_sql(blocker, "BEGIN; INSERT INTO orders VALUES (9, 'blocker', 0)"));
    CU_ASSERT_FATAL(PQsendQuery(src, "INSERT INTO orders VALUES (9, 'app', 1)") == 1);
    for (int i = 0; i < 200; i++) {
        const char *v = dw_sql_value(tgt, "SELECT count(*) FROM pg_stat_activity "
                                          "WHERE wait_event_type = 'Lock'");

        if (v && atol(v) > 0)
            break;
        usleep(25000);
    }
    t0 = dw_fixture_now_ms();
    PQclear(dw_sql(other, "SELECT pg_cancel_backend(%s)", spid));
    res = PQgetResult(src);
    CU_ASSERT(PQresultStatus(res) == PGRES_FATAL_ERROR);
    DW_ASSERT_STREQ(PQresultErrorField(res, PG_DIAG_SQLSTATE), "57014");
    PQclear(res);
    while ((res = PQgetResult(src)) != NULL)
        PQclear(res);
    CU_ASSERT(dw_fixture_now_ms() - t0 < 5000);
    CU_ASSERT_EQUAL(src_count("id = 9"), 0);
    /* the target may now prepare the batch; the resolver asks the source and rolls it back */
    PQclear(dw_sql(blocker, "ROLLBACK"));
    usleep(500000);
    CU_ASSERT(settled(15000));
    CU_ASSERT_EQUAL(tgt_count("id = 9"), 0);
    /* and the session goes on */
    CU_ASSERT(q(src, "INSERT INTO orders VALUES (10, 'after', 1)").ok);
    CU_ASSERT(settled(10000));
    CU_ASSERT_EQUAL(tgt_count("id = 10"), 1);
    PQfinish(blocker);
    PQfinish(other);
}

/* Wait until a session on the target waits for a lock (the bridge's apply is blocked). */
static bool target_lock_wait(void)
{
    for (int i = 0; i < 400; i++) {
        const char *v = dw_sql_value(tgt, "SELECT count(*) FROM pg_stat_activity "
                                          "WHERE wait_event_type = 'Lock'");

        if (v && atol(v) > 0)
            return true;
        usleep(25000);
    }
    return false;
}

/*
 * A COMMIT that reaches the bridge while it drains for a shutdown: the error
 * says that the bridge is shutting down (the target is fine), and the batch
 * that was in flight still commits on both sides.
 */
static void test_bridge_shutting_down(void)
{
    PGconn *blocker = dw_pg_cluster_connect(&tgt_cluster, "postgres");
    PGconn *other = dw_pg_cluster_connect(&src_cluster, "postgres");
    struct stat st;
    struct dw_sql_res r;
    PGresult *res;
    long deadline;

    /* other's backend opens its kept-alive connection to the bridge */
    CU_ASSERT(q(other, "INSERT INTO orders VALUES (11, 'warm', 1)").ok);
    /* src's batch waits on the target, so the bridge has a batch in flight when told to stop */
    PQclear(dw_sql(blocker, "BEGIN; INSERT INTO orders VALUES (12, 'blocker', 0)"));
    CU_ASSERT_FATAL(PQsendQuery(src, "INSERT INTO orders VALUES (12, 'app', 1)") == 1);
    CU_ASSERT(target_lock_wait());
    kill(daemon_pid, SIGTERM);
    /* the socket file goes first: the bridge is draining */
    deadline = dw_fixture_now_ms() + 10000;
    while (stat(sock_path, &st) == 0 && dw_fixture_now_ms() < deadline)
        usleep(20000);
    CU_ASSERT(stat(sock_path, &st) != 0);

    r = q(other, "INSERT INTO orders VALUES (13, 'late', 1)");
    CU_ASSERT(!r.ok);
    DW_ASSERT_STREQ(r.state, "YW005");
    DW_ASSERT_CONTAINS(r.msg, "dualwrite: the bridge is shutting down");
    CU_ASSERT_PTR_NULL(strstr(r.msg, "target"));
    DW_ASSERT_CONTAINS(r.hint, "Retry the transaction when the bridge is back");
    /* (src is busy with its COMMIT) */
    CU_ASSERT_STRING_EQUAL(dw_sql_value(other, "SELECT count(*) FROM orders WHERE id = 13"), "0");

    /* the batch in flight finishes, then the bridge exits */
    PQclear(dw_sql(blocker, "ROLLBACK"));
    res = PQgetResult(src);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fprintf(stderr, "    (the batch in flight: %s)\n", PQresultErrorMessage(res));
    CU_ASSERT(PQresultStatus(res) == PGRES_COMMAND_OK);
    PQclear(res);
    while ((res = PQgetResult(src)) != NULL)
        PQclear(res);
    waitpid(daemon_pid, NULL, 0);
    daemon_pid = -1;
    CU_ASSERT_EQUAL(src_count("id = 12"), 1);

    /* back: the outcome of 12 may have missed the old process; the resolver settles it */
    CU_ASSERT_FATAL(start_daemon());
    CU_ASSERT(settled(15000));
    CU_ASSERT_EQUAL(tgt_count("id = 12 AND status = 'app'"), 1);
    CU_ASSERT_EQUAL(tgt_count("id = 13"), 0);
    CU_ASSERT(q(other, "INSERT INTO orders VALUES (13, 'again', 1)").ok);
    CU_ASSERT(settled(10000));
    CU_ASSERT_EQUAL(tgt_count("id = 13"), 1);
    PQfinish(blocker);
    PQfinish(other);
}

static const struct dw_cunit_test tests[] = {
    {"commit reaches the target", test_commit_reaches_target},
    {"target rejection is the COMMIT error", test_target_rejection_is_the_commit_error},
    {"map rule rejects before the target", test_map_rule_rejects_before_target},
    {"rolled-back savepoint never reaches the target", test_savepoint_rows_never_reach_target},
    {"bridge restart", test_bridge_restart},
    {"cancel while the target is slow", test_cancel_while_target_is_slow},
    {"bridge shutting down", test_bridge_shutting_down},
};

int main(void)
{
    int rc;

    setup();
    rc = dw_cunit_run("hook end to end", tests, sizeof(tests) / sizeof(tests[0]));
    teardown();
    return rc;
}
