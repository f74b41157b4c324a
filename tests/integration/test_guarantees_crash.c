/*
 * G4 and G5 across crashes: the rows of DESIGN.md section 2's failure matrix
 * that kill a process, each driven to its exact point by a fault-injection
 * point compiled into test builds (dualwrite.fault in the hook, DW_FAULT in
 * the service), or by killing a cluster:
 *   a. the source backend dies after "prepared", before its commit record;
 *   b. the source backend dies after its commit record, before the outcome,
 *      and (synchronous_commit = off) right after the outcome;
 *   c. the service dies holding a prepared transaction, before its verdict;
 *   d. the target dies right after PREPARE (one batch committed at the source,
 *      one canceled) and restarts;
 *   e. the bridge is unreachable, then the target is down.
 * After each, the source's commit log decides: every committed source
 * transaction is on the target, no aborted one is, and no "dw:" transaction
 * stays prepared (gh_consistent compares every mapped table on both sides).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <libpq-fe.h>

#include "tests/integration/guarantees_harness.h"
#include "tests/integration/test_guarantees.h"
#include "tests/unit/common/dw_cunit.h"

/* A source session that will kill itself at the named fault point. */
static PGconn *fault_session(const char *fault)
{
    PGconn *c = gh_source_connect();
    struct gh_res r = gh_q(c, "SET dualwrite.fault = '%s'", fault);

    if (!r.ok)
        fprintf(stderr, "\n    cannot set dualwrite.fault: %s\n", r.msg);
    CU_ASSERT_FATAL(r.ok);
    return c;
}

static struct gh_res insert_order(PGconn *c, int id, const char *total)
{
    return gh_q(c, "INSERT INTO orders (id, customer_id, status, total) VALUES (%d, 1, 'draft', %s)", id, total);
}

static long source_count(const char *fmt, int id)
{
    PGconn *c = gh_source_connect();
    char where[256];
    long n;

    snprintf(where, sizeof(where), fmt, id);
    n = gh_long(c, "SELECT count(*) FROM %s", where);
    PQfinish(c);
    return n;
}

/*
 * After a crash restart of the source, new transactions take xids again.  A
 * few committed ones right away: if the crashed transaction's xid were not
 * durable, one of these would reuse it, and the resolver would judge the
 * crashed batch by the wrong transaction.
 */
static void take_xids(void)
{
    PGconn *c = gh_source_connect();

    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT(gh_q(c, "SET client_min_messages = warning; CREATE TABLE IF NOT EXISTS gt_scratch (n int)").ok);
    for (int i = 0; i < 5; i++)
        CU_ASSERT(gh_q(c, "INSERT INTO gt_scratch VALUES (%d)", i).ok);
    PQfinish(c);
}

/* "<system>:<database oid>:<xid>" of the open transaction on c. */
static void batch_id(PGconn *c, char *out, size_t size)
{
    PGresult *r = PQexec(c, "SELECT (SELECT system_identifier FROM pg_control_system())::text || ':' || "
                            "(SELECT oid FROM pg_database WHERE datname = current_database())::text || ':' || "
                            "pg_current_xact_id()::text");

    snprintf(out, size, "%s", PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "?");
    PQclear(r);
}

/* a. Source backend SIGKILLed after "prepared", before its commit record: aborted, rolled back. */
static void test_source_dies_before_commit_record(void)
{
    PGconn *c = fault_session("crash-after-verdict");
    struct gh_res r = insert_order(c, 101, "5");

    CU_ASSERT_FALSE(r.ok);   /* the server closed the connection */
    PQfinish(c);
    take_xids();
    CU_ASSERT_EQUAL(source_count("orders WHERE id = %d", 101), 0);
    CU_ASSERT_TRUE(gh_consistent());
    CU_ASSERT_EQUAL(gh_target_count("orders WHERE id = %d", 101), 0);
    CU_ASSERT_TRUE(gh_service_healthy());
    /* the resolver's connection died with the source: that is no case for a human */
    CU_ASSERT_FALSE(gh_log_contains("a human must run"));
}

/* b. Source backend SIGKILLed after its commit record, before the outcome: committed. */
static void test_source_dies_before_outcome(void)
{
    PGconn *c = fault_session("crash-before-outcome");
    struct gh_res r = gh_q(c, "BEGIN; INSERT INTO orders (id, customer_id, status, total) VALUES "
                              "(102, 2, 'confirmed', 7.25); INSERT INTO order_lines VALUES "
                              "(102, 1, 'rope', 3, 2.25); COMMIT");

    CU_ASSERT_FALSE(r.ok);   /* the client never heard of the commit */
    PQfinish(c);
    take_xids();
    CU_ASSERT_EQUAL(source_count("orders WHERE id = %d", 102), 1);
    CU_ASSERT_TRUE(gh_consistent());
    CU_ASSERT_EQUAL(gh_target_count("orders WHERE id = %d AND status = 'open' AND total = 7.25", 102), 1);
    CU_ASSERT_EQUAL(gh_target_count("order_lines WHERE order_id = %d", 102), 1);
    CU_ASSERT_FALSE(gh_log_contains("a human must run"));
}

/*
 * b2. synchronous_commit = off, and the backend dies right after the outcome
 * "committed" went out.  The target commits on that outcome, so the source's
 * commit record must be durable by then, whatever synchronous_commit says.
 */
static void test_async_commit_durable_before_outcome(void)
{
    PGconn *c = fault_session("crash-after-outcome");
    struct gh_res r;

    CU_ASSERT_FATAL(gh_q(c, "SET synchronous_commit = off").ok);
    r = insert_order(c, 109, "3");
    CU_ASSERT_FALSE(r.ok);
    PQfinish(c);
    take_xids();
    CU_ASSERT_TRUE(gh_consistent());
    CU_ASSERT_EQUAL(source_count("orders WHERE id = %d", 109), 1);
    CU_ASSERT_EQUAL(gh_target_count("orders WHERE id = %d", 109), 1);
}

/* c. The service SIGKILLed holding a prepared transaction: COMMIT fails, state unknown; rolled back. */
static void test_service_dies_holding_prepared(void)
{
    PGconn *c;
    struct gh_res r;

    CU_ASSERT_EQUAL_FATAL(gh_service_stop(SIGTERM), 0);
    CU_ASSERT_TRUE_FATAL(gh_service_start("exit-after-prepare"));
    c = gh_source_connect();
    r = insert_order(c, 103, "9");
    CU_ASSERT_FALSE(r.ok);
    DW_ASSERT_STREQ(r.state, "YW007");
    DW_ASSERT_CONTAINS(r.msg, "state unknown");
    CU_ASSERT_EQUAL(gh_service_wait_exit(30000), 128 + SIGKILL);
    /* the session lives on, its transaction rolled back */
    CU_ASSERT_EQUAL(gh_long(c, "SELECT count(*) FROM orders WHERE id = 103"), 0);
    PQfinish(c);
    /* the target keeps what the dead service prepared */
    CU_ASSERT_EQUAL(gh_prepared_count(), 1);
    CU_ASSERT_TRUE_FATAL(gh_service_start(NULL));
    CU_ASSERT_TRUE(gh_consistent());
    CU_ASSERT_EQUAL(gh_target_count("orders WHERE id = %d", 103), 0);
    CU_ASSERT_TRUE(gh_log_contains("ROLLBACK PREPARED on connector \"target\" (decided by resolver)"));
}

/*
 * d. The target killed right after PREPARE of two batches (the service holds
 * its verdicts back for a while): one source transaction commits, the other
 * is canceled.  The prepared transactions survive the target's restart, and
 * once the pools reconnect, the outcome and the resolver settle each one
 * per the source.
 */
static void test_target_dies_after_prepare(void)
{
    PGconn *c1, *c2;
    PGresult *res;
    PGcancel *cancel;
    char id1[96], id2[96], errbuf[256], line[200];
    int64_t end;
    bool window = true;

    CU_ASSERT_EQUAL_FATAL(gh_service_stop(SIGTERM), 0);
    CU_ASSERT_TRUE_FATAL(gh_service_start("delay-after-prepare:6000"));
    c1 = gh_source_connect();
    c2 = gh_source_connect();
    CU_ASSERT_FATAL(c1 && c2);
    CU_ASSERT(gh_q(c1, "BEGIN; INSERT INTO orders (id, customer_id, status, total) VALUES (104, 1, 'shipped', 4)").ok);
    CU_ASSERT(gh_q(c2, "BEGIN; INSERT INTO orders (id, customer_id, status, total) VALUES (105, 1, 'draft', 5)").ok);
    batch_id(c1, id1, sizeof(id1));
    batch_id(c2, id2, sizeof(id2));
    CU_ASSERT_FATAL(PQsendQuery(c1, "COMMIT") == 1);
    CU_ASSERT_FATAL(PQsendQuery(c2, "COMMIT") == 1);

    /* both prepared on the target, no verdict sent yet */
    end = gh_now_ms() + 60000;
    while (gh_prepared_count() != 2 && gh_now_ms() < end) {
        PQconsumeInput(c1);
        if (!PQisBusy(c1)) {
            window = false;   /* the verdict came before we saw both prepared */
            break;
        }
        gh_sleep_ms(20);
    }
    if (!window || gh_prepared_count() != 2)
        fprintf(stderr, "\n    missed the window between PREPARE and the verdict (machine too slow?)\n");
    CU_ASSERT_TRUE_FATAL(window && gh_prepared_count() == 2);

    /* the second is canceled by its user: aborted at the source */
    cancel = PQgetCancel(c2);
    CU_ASSERT(PQcancel(cancel, errbuf, sizeof(errbuf)) == 1);
    PQfreeCancel(cancel);
    res = PQgetResult(c2);
    CU_ASSERT_EQUAL(PQresultStatus(res), PGRES_FATAL_ERROR);
    DW_ASSERT_STREQ(PQresultErrorField(res, PG_DIAG_SQLSTATE), "57014");
    PQclear(res);
    while ((res = PQgetResult(c2)) != NULL)
        PQclear(res);

    /* the target dies holding both */
    gh_tgt_drop();
    CU_ASSERT_TRUE_FATAL(dw_pg_cluster_kill(&gh_target));

    /* the first gets its "prepared" verdict and commits; its outcome cannot reach the target */
    res = PQgetResult(c1);
    CU_ASSERT_EQUAL(PQresultStatus(res), PGRES_COMMAND_OK);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fprintf(stderr, "\n    COMMIT: %s\n", PQerrorMessage(c1));
    PQclear(res);
    while ((res = PQgetResult(c1)) != NULL)
        PQclear(res);
    PQfinish(c1);
    PQfinish(c2);

    CU_ASSERT_TRUE_FATAL(dw_pg_cluster_restart(&gh_target));
    CU_ASSERT_TRUE_FATAL(gh_target_wait_up(GH_RECOVERY_MS));
    CU_ASSERT_TRUE(gh_consistent());
    CU_ASSERT_EQUAL(gh_target_count("orders WHERE id = %d AND status = 'closed'", 104), 1);
    CU_ASSERT_EQUAL(gh_target_count("orders WHERE id = %d", 105), 0);
    /* settled, not re-applied: the prepared transactions themselves survived */
    snprintf(line, sizeof(line), "batch %s: COMMIT PREPARED", id1);
    CU_ASSERT_TRUE(gh_wait_for_log(line, 5000));
    snprintf(line, sizeof(line), "batch %s: ROLLBACK PREPARED", id2);
    CU_ASSERT_TRUE(gh_wait_for_log(line, 5000));
    CU_ASSERT_EQUAL(gh_service_stop(SIGTERM), 0);
    CU_ASSERT_TRUE_FATAL(gh_service_start(NULL));
}

/* e. Bridge unreachable, then target down: COMMIT fails with which of them it was, nothing is kept. */
static void test_bridge_or_target_down(void)
{
    PGconn *c;
    struct gh_res r;
    int attempts = 0;

    CU_ASSERT_EQUAL_FATAL(gh_service_stop(SIGTERM), 0);
    c = gh_source_connect();
    r = insert_order(c, 106, "1");
    CU_ASSERT_FALSE(r.ok);
    DW_ASSERT_STREQ(r.state, "YW001");
    DW_ASSERT_CONTAINS(r.msg, "could not reach the bridge");
    CU_ASSERT_EQUAL(gh_long(c, "SELECT count(*) FROM orders WHERE id = 106"), 0);
    CU_ASSERT_EQUAL(gh_target_count("orders WHERE id = %d", 106), 0);
    CU_ASSERT_TRUE_FATAL(gh_service_start(NULL));

    gh_tgt_drop();
    CU_ASSERT_TRUE_FATAL(dw_pg_cluster_halt(&gh_target));
    r = insert_order(c, 107, "1");
    CU_ASSERT_FALSE(r.ok);
    DW_ASSERT_STREQ(r.state, "YW005");
    DW_ASSERT_CONTAINS(r.msg, "target is unavailable");
    CU_ASSERT_EQUAL(gh_long(c, "SELECT count(*) FROM orders WHERE id = 107"), 0);

    CU_ASSERT_TRUE_FATAL(dw_pg_cluster_restart(&gh_target));
    CU_ASSERT_TRUE_FATAL(gh_target_wait_up(GH_RECOVERY_MS));
    CU_ASSERT_EQUAL(gh_target_count("orders WHERE id = %d", 107), 0);
    /* back: sessions that died with the target are replaced (a failure costs one COMMIT each) */
    for (;;) {
        r = insert_order(c, 108, "1");
        if (r.ok || ++attempts > 14)
            break;
        DW_ASSERT_STREQ(r.state, "YW005");
        gh_sleep_ms(100);
    }
    CU_ASSERT_TRUE(r.ok);
    fprintf(stderr, "\n    target back: %d COMMIT%s failed before a fresh session took it\n", attempts,
            attempts == 1 ? "" : "s");
    PQfinish(c);
    CU_ASSERT_TRUE(gh_consistent());
    CU_ASSERT_EQUAL(gh_target_count("orders WHERE id = %d", 108), 1);
}

const struct dw_cunit_test gt_crash_tests[] = {
    {"a. source dies after prepared, before its commit record", test_source_dies_before_commit_record},
    {"b. source dies after its commit record, before the outcome", test_source_dies_before_outcome},
    {"b2. synchronous_commit = off: source commit durable before its outcome",
     test_async_commit_durable_before_outcome},
    {"c. service dies holding a prepared transaction", test_service_dies_holding_prepared},
    {"d. target dies right after PREPARE and restarts", test_target_dies_after_prepare},
    {"e. bridge unreachable, target down", test_bridge_or_target_down},
};
const size_t gt_crash_ntests = sizeof(gt_crash_tests) / sizeof(gt_crash_tests[0]);
