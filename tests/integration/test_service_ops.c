/*
 * dualwrited's operations against real clusters: the resolver settling from
 * the source's commit log (no outcome message), kill -9 with prepared batches
 * and restart, SIGHUP with a broken configuration or map (the old one keeps
 * working), --check and start-up errors, a target that goes away and comes
 * back, and SIGTERM with a batch in flight (drained, answered, not lost).
 * The harness is in svc_harness.h.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "tests/integration/svc_harness.h"

/* ------------------------------------------------------------ tests */

/* No outcome message: the resolver asks the source and settles both ways. */
static void test_resolver(void)
{
    struct src_tx tc, ta;
    struct resp r;
    char *cc = ins(30, "\"resolved\"", "\"3\""), *ca = ins(31, "\"aborted\"", "\"3\"");

    src_begin(&tc);
    src_begin(&ta);
    CU_ASSERT_EQUAL(post_batch(tc.xid, cc, &r), 200);
    resp_free(&r);
    CU_ASSERT_EQUAL(post_batch(ta.xid, ca, &r), 200);
    resp_free(&r);
    CU_ASSERT_EQUAL(prepared_count(), 2);
    /* still in progress on the source: the resolver must wait, even past the grace period */
    sleep_ms(1600);
    CU_ASSERT_EQUAL(prepared_count(), 2);
    src_end(&tc, true);
    src_end(&ta, false);
    CU_ASSERT_TRUE(wait_prepared_count(0, 10000));
    CU_ASSERT_EQUAL(order_rows(30), 1);
    CU_ASSERT_EQUAL(order_rows(31), 0);
    CU_ASSERT_TRUE(wait_for_log("decided by resolver", 1000));
    free(cc);
    free(ca);
}

/* Prepared transactions the source cannot vouch for are reported once and left alone. */
static void test_resolver_leaves_undecidable(void)
{
    char other[64], future[128];
    struct resp r;
    int64_t end;

    snprintf(other, sizeof(other), "dw:42:5:100");
    snprintf(future, sizeof(future), "dw:%s:5:999999999", sysid);
    PQclear(dw_sql(tgt, "BEGIN"));
    PQclear(dw_sql(tgt, "PREPARE TRANSACTION '%s'", other));
    PQclear(dw_sql(tgt, "BEGIN"));
    PQclear(dw_sql(tgt, "PREPARE TRANSACTION '%s'", future));
    CU_ASSERT_TRUE(wait_for_log("belongs to source system 42", 10000));
    CU_ASSERT_TRUE(wait_for_log("is in the future", 10000));
    sleep_ms(600);   /* a few more passes: still there, and reported only once */
    CU_ASSERT_EQUAL(prepared_count(), 2);
    {
        char *text = read_file(log_path);
        const char *p = strstr(text, "belongs to source system 42");

        CU_ASSERT_PTR_NOT_NULL(p);
        CU_ASSERT_PTR_NULL(p ? strstr(p + 1, "belongs to source system 42") : NULL);
        free(text);
    }
    end = now_ms() + 5000;
    do {
        CU_ASSERT_EQUAL(call("GET", "/v1/status", NULL, &r), 200);
        if (strstr(r.body, "\"needs_human\":true"))
            break;
        resp_free(&r);
        sleep_ms(100);
    } while (now_ms() < end);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"id\":\"42:5:100\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"needs_human\":true"));
    resp_free(&r);
    /* the human: */
    PQclear(dw_sql(tgt, "ROLLBACK PREPARED '%s'", other));
    PQclear(dw_sql(tgt, "ROLLBACK PREPARED '%s'", future));
    CU_ASSERT_TRUE(wait_prepared_count(0, 1000));
    /* and the table forgets them */
    end = now_ms() + 5000;
    do {
        CU_ASSERT_EQUAL(call("GET", "/v1/status", NULL, &r), 200);
        if (strstr(r.body, "\"in_doubt\":[]"))
            break;
        resp_free(&r);
        sleep_ms(100);
    } while (now_ms() < end);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"in_doubt\":[]"));
    resp_free(&r);
}

/* kill -9 while holding prepared batches; the next start settles them from the source. */
static void test_kill9_restart(void)
{
    struct src_tx tc, ta;
    struct resp r;
    char *cc = ins(40, "\"kept\"", "\"4\""), *ca = ins(41, "\"dropped\"", "\"4\"");

    src_begin(&tc);
    src_begin(&ta);
    CU_ASSERT_EQUAL(post_batch(tc.xid, cc, &r), 200);
    resp_free(&r);
    CU_ASSERT_EQUAL(post_batch(ta.xid, ca, &r), 200);
    resp_free(&r);
    CU_ASSERT_EQUAL(stop_daemon(SIGKILL), 128 + SIGKILL);
    src_end(&tc, true);
    src_end(&ta, false);
    CU_ASSERT_EQUAL(prepared_count(), 2);
    /* the socket file is left behind; the new process replaces it */
    CU_ASSERT_TRUE_FATAL(start_daemon());
    CU_ASSERT_TRUE(wait_prepared_count(0, 10000));
    CU_ASSERT_EQUAL(order_rows(40), 1);
    CU_ASSERT_EQUAL(order_rows(41), 0);
    free(cc);
    free(ca);
}

static long status_generation(void)
{
    struct resp r;
    long g = -1;

    if (call("GET", "/v1/status", NULL, &r) == 200) {
        const char *p = strstr(r.body, "\"generation\":");

        if (p)
            g = strtol(p + 13, NULL, 10);
    }
    resp_free(&r);
    return g;
}

static void test_reload(void)
{
    char *good = read_file(cfg_path), badmap[512];
    long gen = status_generation();
    struct src_tx t;
    struct resp r;
    char *ch = ins(50, "\"after-reload\"", "\"5\"");

    CU_ASSERT_TRUE(gen > 0);
    /* 1. a file that is not JSON */
    write_file(cfg_path, "{\"listen\": ");
    kill(daemon_pid, SIGHUP);
    CU_ASSERT_TRUE(wait_for_log("reload refused", 10000));
    CU_ASSERT_EQUAL(status_generation(), gen);

    /* 2. valid JSON, a map pointing at a missing target column */
    write_file(cfg_path, "%s", good);
    snprintf(badmap, sizeof(badmap), "%s/zz_bad.json", maps_dir);
    write_file(badmap,
               "{\"map\": \"bad\", \"source\": {\"table\": \"public.bad\", \"key\": [\"id\"]},\n"
               " \"target\": {\"connector\": \"tgt\", \"table\": \"orders\", \"key\": [\"id\"]},\n"
               " \"fields\": [{\"source\": \"id\", \"target\": \"id\"}, {\"source\": \"x\", \"target\": \"no_such\"}]}\n");
    kill(daemon_pid, SIGHUP);
    CU_ASSERT_TRUE(wait_for_log("no column \"no_such\"", 10000));
    sleep_ms(200);
    CU_ASSERT_EQUAL(status_generation(), gen);

    /* the old configuration keeps working */
    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, ch, &r), 200);
    resp_free(&r);
    src_end(&t, true);
    CU_ASSERT_EQUAL(post_outcome(t.xid, "committed"), 204);
    CU_ASSERT_EQUAL(order_rows(50), 1);

    /* 3. fixed: the reload goes through */
    unlink(badmap);
    kill(daemon_pid, SIGHUP);
    {
        int64_t end = now_ms() + 10000;

        while (now_ms() < end && status_generation() == gen)
            sleep_ms(50);
    }
    CU_ASSERT_TRUE(status_generation() > gen);
    CU_ASSERT_TRUE(healthy());
    free(good);
    free(ch);
}

static bool inflight_is(long n)
{
    struct resp r;
    char want[64];
    bool ok;

    snprintf(want, sizeof(want), "dualwrite_batches_in_flight %ld\n", n);
    ok = call("GET", "/metrics", NULL, &r) == 200 && strstr(r.body, want);
    resp_free(&r);
    return ok;
}

/* SIGTERM while a batch waits on the target: it finishes, is answered, and nothing is lost. */
static void test_sigterm_drains(void)
{
    struct src_tx t;
    struct resp r;
    PGconn *locker = dw_pg_cluster_connect(&target, "postgres");
    char *ch = ins(60, "\"drained\"", "\"6\""), *b;
    int fd = connect_unix(), rc;
    int64_t end;

    CU_ASSERT_TRUE_FATAL(fd >= 0);
    PQclear(dw_sql(locker, "BEGIN"));
    PQclear(dw_sql(locker, "INSERT INTO orders VALUES (60, 'lock', 0)"));
    src_begin(&t);
    b = batch_json(sysid, t.xid, 30000, ch);
    CU_ASSERT_TRUE(send_request(fd, "POST", "/v1/batches", NULL, b, strlen(b)));
    end = now_ms() + 10000;
    while (now_ms() < end && !inflight_is(1))
        sleep_ms(50);
    CU_ASSERT_TRUE(inflight_is(1));

    kill(daemon_pid, SIGTERM);
    /* new connections are refused at once (the socket file is gone) */
    end = now_ms() + 5000;
    while (now_ms() < end && access(sock_path, F_OK) == 0)
        sleep_ms(20);
    CU_ASSERT_NOT_EQUAL(access(sock_path, F_OK), 0);
    CU_ASSERT_EQUAL(connect_unix(), -1);
    sleep_ms(300);
    CU_ASSERT_EQUAL(wait_exit(daemon_pid, 0), -1);   /* still draining */

    PQclear(dw_sql(locker, "ROLLBACK"));
    CU_ASSERT_TRUE(read_response(fd, &r, RESPONSE_TIMEOUT_MS));
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"prepared\""));
    resp_free(&r);
    close(fd);
    rc = wait_exit(daemon_pid, 30000);
    CU_ASSERT_EQUAL(rc, 0);
    daemon_pid = -1;
    CU_ASSERT_TRUE(wait_for_log("drained", 1000));

    /* the source commits while the bridge is down; the next start commits the target */
    src_end(&t, true);
    CU_ASSERT_EQUAL(prepared_count(), 1);
    CU_ASSERT_TRUE_FATAL(start_daemon());
    CU_ASSERT_TRUE(wait_prepared_count(0, 10000));
    CU_ASSERT_STRING_EQUAL(dw_sql_value(tgt, "SELECT status FROM orders WHERE id = 60"), "drained");
    PQfinish(locker);
    free(ch);
    free(b);
}

/*
 * The target goes away and comes back: 503 while it is down, then sessions are
 * reopened.  Each attempt is a new source transaction, as with the hook (a
 * failed COMMIT aborts the transaction; the application retries).
 */
static void test_target_down(void)
{
    struct src_tx t;
    struct resp r;
    char *ch = ins(70, "\"back\"", "\"7\"");
    int attempts = 0, st = 0;

    PQfinish(tgt);
    tgt = NULL;
    CU_ASSERT_TRUE_FATAL(dw_pg_cluster_halt(&target));
    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, ch, &r), 503);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"status\":\"unavailable\""));
    resp_free(&r);
    src_end(&t, false);
    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, ch, &r), 503);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "could not connect"));
    resp_free(&r);
    src_end(&t, false);
    CU_ASSERT_EQUAL(call("GET", "/v1/health", NULL, &r), 503);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"state\":\"down\""));
    resp_free(&r);

    CU_ASSERT_TRUE_FATAL(dw_pg_cluster_restart(&target));
    tgt = dw_pg_cluster_connect(&target, "postgres");
    /* sessions that died with the server are found out on use (each costs one 503) */
    for (;;) {
        src_begin(&t);
        st = post_batch(t.xid, ch, &r);
        resp_free(&r);
        if (st != 503 || ++attempts >= 6)
            break;
        src_end(&t, false);
    }
    CU_ASSERT_EQUAL(st, 200);
    src_end(&t, true);
    CU_ASSERT_EQUAL(post_outcome(t.xid, "committed"), 204);
    CU_ASSERT_TRUE(wait_prepared_count(0, 5000));
    CU_ASSERT_EQUAL(order_rows(70), 1);
    CU_ASSERT_TRUE(healthy());
    free(ch);
}

static int run_check(const char *config, char **output)
{
    const char *args[] = {"--check", "-c", config, NULL};
    char saved[400];
    pid_t pid;
    int rc;

    snprintf(saved, sizeof(saved), "%s", log_path);
    snprintf(log_path, sizeof(log_path), "%s/check.out", dir);
    unlink(log_path);
    pid = spawn(args);
    rc = wait_exit(pid, 60000);
    *output = read_file(log_path);
    snprintf(log_path, sizeof(log_path), "%s", saved);
    return rc;
}

static void test_check_and_startup_errors(void)
{
    char *out = NULL, path[1024], bad_cfg[512], bad_maps[512], sock2[512];
    const char *args[] = {"-c", bad_cfg, NULL};
    char saved[400];
    pid_t pid;
    int rc;

    CU_ASSERT_EQUAL(run_check(cfg_path, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "valid"));
    free(out);

    snprintf(bad_cfg, sizeof(bad_cfg), "%s/bad.json", dir);
    write_file(bad_cfg, "{\"listen\": {\"unix\": 5}, \"source\": {}, \"maps\": \"nowhere\", \"bogus\": 1}");
    CU_ASSERT_EQUAL(run_check(bad_cfg, &out), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "bad.json"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "/listen/unix"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "bogus"));
    free(out);

    /* a map whose target column does not exist: start-up fails naming map, table and column */
    snprintf(bad_maps, sizeof(bad_maps), "%s/maps_bad", dir);
    mkdir(bad_maps, 0755);
    snprintf(path, sizeof(path), "%s/orders.json", bad_maps);
    write_file(path,
               "{\"map\": \"orders_bad\", \"source\": {\"table\": \"public.orders\", \"key\": [\"id\"]},\n"
               " \"target\": {\"connector\": \"tgt\", \"table\": \"orders\", \"key\": [\"id\"]},\n"
               " \"fields\": [{\"source\": \"id\", \"target\": \"id\"}, {\"source\": \"s\", \"target\": \"stat\"}]}\n");
    snprintf(sock2, sizeof(sock2), "%s/bridge2.sock", dir);
    write_config(bad_cfg, "maps_bad", sock2, 5);
    CU_ASSERT_EQUAL(run_check(bad_cfg, &out), 0);   /* --check does not contact targets */
    free(out);
    snprintf(saved, sizeof(saved), "%s", log_path);
    snprintf(log_path, sizeof(log_path), "%s/badstart.out", dir);
    pid = spawn(args);
    rc = wait_exit(pid, 60000);
    CU_ASSERT_EQUAL(rc, 2);
    out = read_file(log_path);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "table map \"orders_bad\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"orders\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"stat\""));
    free(out);
    snprintf(log_path, sizeof(log_path), "%s", saved);

    /* a second instance on the live socket is refused */
    write_config(bad_cfg, "maps", sock_path, 5);
    snprintf(saved, sizeof(saved), "%s", log_path);
    snprintf(log_path, sizeof(log_path), "%s/second.out", dir);
    pid = spawn(args);
    rc = wait_exit(pid, 60000);
    CU_ASSERT_NOT_EQUAL(rc, 0);
    out = read_file(log_path);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "another process"));
    free(out);
    snprintf(log_path, sizeof(log_path), "%s", saved);
    CU_ASSERT_TRUE(healthy());

    {
        struct stat st;

        CU_ASSERT_EQUAL(stat(sock_path, &st), 0);
        CU_ASSERT_EQUAL(st.st_mode & 0777, 0660);
    }
}

int main(void)
{
    CU_pSuite s;
    unsigned failed;

    dw_fixture_require();
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    s = CU_add_suite("service operations", svc_suite_init, svc_suite_cleanup);
    CU_add_test(s, "resolver settles from the source", test_resolver);
    CU_add_test(s, "undecidable prepared transactions are left for a human", test_resolver_leaves_undecidable);
    CU_add_test(s, "kill -9 and restart settles", test_kill9_restart);
    CU_add_test(s, "SIGHUP with a broken config keeps the old", test_reload);
    CU_add_test(s, "--check and start-up errors", test_check_and_startup_errors);
    CU_add_test(s, "target down: 503, then reconnects", test_target_down);
    CU_add_test(s, "SIGTERM drains in-flight batches", test_sigterm_drains);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
