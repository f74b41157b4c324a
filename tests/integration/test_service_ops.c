/*
 * dualwrited's operations against real clusters: the resolver settling from
 * the source's commit log (no outcome message), outcome messages racing an
 * eager resolver (each batch settled and counted once), kill -9 with prepared
 * batches and restart, SIGHUP with a broken configuration or map (the old one
 * keeps working), --check and start-up errors, a target that goes away and
 * comes back, and SIGTERM with a batch in flight (drained, answered, not
 * lost; a new batch meanwhile refused with stage "shutdown").
 * The harness is in svc_harness.h.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "tests/integration/svc_harness.h"

static long status_generation(void);

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
        char *text = dw_fixture_read_file(log_path);
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

/*
 * An outcome message and a resolver pass settling the same batch: the
 * resolver lists a gid, the outcome commits it and forgets it, and the
 * resolver must not take the gid for a new, undecided one and settle it a
 * second time.  With a resolver that runs all the time and no grace period,
 * several backends' batches race with it; each must be settled (and counted)
 * exactly once, and no attempt may find its prepared transaction gone.
 */
#define RACE_THREADS 4
#define RACE_BATCHES 40
#define RACE_HELD 5          /* with RACE_THREADS and the settler's 32, below max_prepared_transactions */

struct race_worker {
    int index;
    int failures;
    int committed, aborted;
    char last_error[512];
};

static void *race_main(void *arg)
{
    struct race_worker *w = arg;
    char ci[512], path[256];
    PGconn *src;
    int fd;

    dw_pg_cluster_conninfo(&source, "postgres", ci, sizeof(ci));
    src = PQconnectdb(ci);
    fd = connect_unix();
    if (PQstatus(src) != CONNECTION_OK || fd < 0) {
        w->failures++;
        snprintf(w->last_error, sizeof(w->last_error), "could not connect");
        PQfinish(src);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    for (int i = 0; i < RACE_BATCHES; i++) {
        PGresult *res;
        char xid[32], *batch, *change;
        struct resp r;
        bool commit = i % 4 != 3;

        PQclear(PQexec(src, "BEGIN"));
        res = PQexec(src, "SELECT pg_current_xact_id()::text");
        snprintf(xid, sizeof(xid), "%s", PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "0");
        PQclear(res);
        change = ins(5000 + w->index * 1000 + i, "\"race\"", "\"1\"");
        batch = batch_json(sysid, xid, 20000, change);
        free(change);
        memset(&r, 0, sizeof(r));
        r.status = -1;
        if (!send_request(fd, "POST", "/v1/batches", NULL, batch, strlen(batch)) ||
            !read_response(fd, &r, RESPONSE_TIMEOUT_MS) || r.status != 200) {
            w->failures++;
            snprintf(w->last_error, sizeof(w->last_error), "batch %d: %d %s", i, r.status, r.body ? r.body : "");
            free(r.body);
            free(batch);
            PQclear(PQexec(src, "ROLLBACK"));
            break;
        }
        free(r.body);
        free(batch);
        PQclear(PQexec(src, commit ? "COMMIT" : "ROLLBACK"));
        if (commit)
            w->committed++;
        else
            w->aborted++;
        snprintf(path, sizeof(path), "/v1/batches/%s:5:%s/outcome", sysid, xid);
        memset(&r, 0, sizeof(r));
        r.status = -1;
        if (!send_request(fd, "POST", path, NULL, commit ? "{\"outcome\":\"committed\"}" : "{\"outcome\":\"aborted\"}",
                          commit ? 23 : 21) ||
            !read_response(fd, &r, RESPONSE_TIMEOUT_MS) || (r.status != 204 && r.status != 404)) {
            /* 404: the resolver settled it first, which is fine */
            w->failures++;
            snprintf(w->last_error, sizeof(w->last_error), "outcome %d: %d", i, r.status);
        }
        free(r.body);
    }
    close(fd);
    PQfinish(src);
    return NULL;
}

/* The settled counters of /v1/status; false when they cannot be read. */
static bool settled_counters(long *commit, long *rollback)
{
    struct resp r;
    bool ok = false;

    if (call("GET", "/v1/status", NULL, &r) == 200) {
        const char *p = strstr(r.body, "\"settled\":{\"commit\":");

        ok = p && sscanf(p, "\"settled\":{\"commit\":%ld,\"rollback\":%ld}", commit, rollback) == 2;
    }
    resp_free(&r);
    return ok;
}

/* Rewrite the resolver's settings in the configuration file and reload; false when no reload happened. */
static bool set_resolver(const char *from, const char *to)
{
    char *text = dw_fixture_read_file(cfg_path), *at = strstr(text, from);
    long gen = status_generation();
    int64_t end = now_ms() + 10000;

    if (!at) {
        free(text);
        return false;
    }
    dw_fixture_write_file(cfg_path, "%.*s%s%s", (int) (at - text), text, to, at + strlen(from));
    free(text);
    kill(daemon_pid, SIGHUP);
    while (now_ms() < end && status_generation() == gen)
        sleep_ms(50);
    return status_generation() > gen;
}

static void test_outcome_and_resolver_settle_once(void)
{
    static const char normal[] = "\"resolver\": {\"interval_ms\": 200, \"grace_ms\": 1000}";
    static const char eager[] = "\"resolver\": {\"interval_ms\": 10, \"grace_ms\": 0}";
    pthread_t threads[RACE_THREADS];
    struct race_worker workers[RACE_THREADS];
    struct src_tx held[RACE_HELD];
    long commit0 = -1, rollback0 = -1, commit1 = -1, rollback1 = -1, committed = 0, aborted = 0;
    char *log_before = dw_fixture_read_file(log_path), *log_after, *tail;
    size_t log_start = strlen(log_before);

    free(log_before);
    CU_ASSERT_TRUE_FATAL(set_resolver(normal, eager));
    CU_ASSERT_TRUE_FATAL(wait_prepared_count(0, 10000));
    CU_ASSERT_TRUE_FATAL(settled_counters(&commit0, &rollback0));

    /*
     * Batches whose source transactions stay open: every pass asks the source
     * about each of them before it reaches the newer gids in its list, which
     * widens the window in which an outcome settles a gid the pass has listed.
     */
    for (int k = 0; k < RACE_HELD; k++) {
        struct resp r;
        char *change = ins(4900 + k, "\"held\"", "\"1\"");

        src_begin(&held[k]);
        CU_ASSERT_EQUAL(post_batch(held[k].xid, change, &r), 200);
        resp_free(&r);
        free(change);
    }
    memset(workers, 0, sizeof(workers));
    for (int i = 0; i < RACE_THREADS; i++) {
        workers[i].index = i;
        pthread_create(&threads[i], NULL, race_main, &workers[i]);
    }
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(threads[i], NULL);
        if (workers[i].failures)
            fprintf(stderr, "worker %d: %d failures, last: %s\n", i, workers[i].failures, workers[i].last_error);
        CU_ASSERT_EQUAL(workers[i].failures, 0);
        committed += workers[i].committed;
        aborted += workers[i].aborted;
    }
    CU_ASSERT_EQUAL(committed + aborted, RACE_THREADS * RACE_BATCHES);
    for (int k = 0; k < RACE_HELD; k++) {
        int st;

        src_end(&held[k], true);
        st = post_outcome(held[k].xid, "committed");
        CU_ASSERT_TRUE(st == 204 || st == 404);
        committed++;
    }
    CU_ASSERT_TRUE(wait_prepared_count(0, 20000));
    CU_ASSERT_TRUE(wait_in_doubt_empty(20000));
    /* let a late resolver pass do whatever it would do: the counters must not move */
    sleep_ms(500);
    CU_ASSERT_TRUE(wait_in_doubt_empty(0));
    CU_ASSERT_TRUE(settled_counters(&commit1, &rollback1));
    fprintf(stderr, "\n    %ld committed, %ld aborted; settled %ld commit, %ld rollback\n", committed, aborted,
            commit1 - commit0, rollback1 - rollback0);
    CU_ASSERT_EQUAL(commit1 - commit0, committed);
    CU_ASSERT_EQUAL(rollback1 - rollback0, aborted);
    for (int w = 0; w < RACE_THREADS; w++) {
        CU_ASSERT_EQUAL(target_long("SELECT count(*) FROM orders WHERE id / 1000 = %d", 5 + w),
                        workers[w].committed);
    }
    CU_ASSERT_EQUAL(target_long("SELECT count(*) FROM orders WHERE id BETWEEN 4900 AND %d", 4899 + RACE_HELD),
                    RACE_HELD);
    log_after = dw_fixture_read_file(log_path);
    tail = log_after + (strlen(log_after) >= log_start ? log_start : 0);
    CU_ASSERT_PTR_NULL(strstr(tail, "no longer exists"));
    CU_ASSERT_PTR_NULL(strstr(tail, "does not exist"));
    CU_ASSERT_PTR_NULL(strstr(tail, "could not commit prepared"));
    CU_ASSERT_PTR_NULL(strstr(tail, "could not roll back prepared"));
    free(log_after);
    CU_ASSERT_TRUE(set_resolver(eager, normal));
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
    char *good = dw_fixture_read_file(cfg_path), badmap[512];
    long gen = status_generation();
    struct src_tx t;
    struct resp r;
    char *ch = ins(50, "\"after-reload\"", "\"5\"");

    CU_ASSERT_TRUE(gen > 0);
    /* 1. a file that is not JSON */
    dw_fixture_write_file(cfg_path, "{\"listen\": ");
    kill(daemon_pid, SIGHUP);
    CU_ASSERT_TRUE(wait_for_log("reload refused", 10000));
    CU_ASSERT_EQUAL(status_generation(), gen);

    /* 2. valid JSON, a map pointing at a missing target column */
    dw_fixture_write_file(cfg_path, "%s", good);
    snprintf(badmap, sizeof(badmap), "%s/zz_bad.json", maps_dir);
    dw_fixture_write_file(badmap,
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
    /* outcomes are applied in the background */
    CU_ASSERT_TRUE(wait_prepared_count(0, 10000));
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
    char *ch = ins(60, "\"drained\"", "\"6\""), *late = ins(61, "\"late\"", "\"6\""), *b, *b2;
    int fd = connect_unix(), fd2 = connect_unix(), rc;
    int64_t end;

    CU_ASSERT_TRUE_FATAL(fd >= 0);
    CU_ASSERT_TRUE_FATAL(fd2 >= 0);
    /* a second client's kept-alive connection, open before the signal */
    CU_ASSERT_TRUE(send_request(fd2, "GET", "/v1/health", NULL, NULL, 0));
    CU_ASSERT_TRUE(read_response(fd2, &r, RESPONSE_TIMEOUT_MS));
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
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

    /*
     * A batch on a connection that was already open is refused, and the
     * refusal says that the bridge is stopping, not that the target is down.
     */
    b2 = batch_json(sysid, "4242", 30000, late);
    CU_ASSERT_TRUE(send_request(fd2, "POST", "/v1/batches", NULL, b2, strlen(b2)));
    CU_ASSERT_TRUE(read_response(fd2, &r, RESPONSE_TIMEOUT_MS));
    CU_ASSERT_EQUAL(r.status, 503);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"status\":\"unavailable\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"stage\":\"shutdown\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "shutting down"));
    resp_free(&r);
    close(fd2);
    free(b2);
    CU_ASSERT_EQUAL(order_rows(61), 0);

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
    free(late);
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

/* Set (or, with NULL, reset) synchronous_standby_names on the target and wait until sessions see it. */
static void target_sync_standby(const char *name)
{
    char sql[200];
    int64_t end = now_ms() + 10000;

    if (name)
        snprintf(sql, sizeof(sql), "ALTER SYSTEM SET synchronous_standby_names = '%s'", name);
    else
        snprintf(sql, sizeof(sql), "ALTER SYSTEM RESET synchronous_standby_names");
    PQclear(dw_sql(tgt, sql));
    PQclear(dw_sql(tgt, "SELECT pg_reload_conf()"));
    for (;;) {
        PGconn *c = dw_pg_cluster_connect(&target, "postgres");
        const char *v = dw_sql_value(c, "SHOW synchronous_standby_names");
        bool seen = v && strcmp(v, name ? name : "") == 0;

        PQfinish(c);
        if (seen || now_ms() >= end)
            break;
        sleep_ms(50);
    }
}

/*
 * The answer to an outcome does not wait for the target: COMMIT PREPARED is
 * held on the target (synchronous replication to a standby that does not
 * exist) and the outcome is still answered; once the target can go on, the
 * settler's COMMIT PREPARED completes and the row arrives.
 */
static void test_outcome_answered_before_settle(void)
{
    struct src_tx t;
    struct resp r;
    char *ch = ins(80, "\"background\"", "\"8\"");
    const char *v = NULL;
    int64_t end;

    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, ch, &r), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"prepared\""));
    resp_free(&r);
    src_end(&t, true);
    target_sync_standby("no_such_standby");
    CU_ASSERT_EQUAL(post_outcome(t.xid, "committed"), 204);
    /* the settler's COMMIT PREPARED is on the target, waiting */
    end = now_ms() + 10000;
    while (now_ms() < end) {
        v = dw_sql_value(tgt, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COMMIT PREPARED%%' "
                              "AND wait_event = 'SyncRep'");
        if (v && strcmp(v, "1") == 0)
            break;
        sleep_ms(50);
    }
    CU_ASSERT_STRING_EQUAL(v ? v : "(none)", "1");
    CU_ASSERT_TRUE(healthy());
    target_sync_standby(NULL);
    CU_ASSERT_TRUE(wait_prepared_count(0, 10000));
    CU_ASSERT_TRUE(wait_in_doubt_empty(10000));
    CU_ASSERT_EQUAL(order_rows(80), 1);
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
    *output = dw_fixture_read_file(log_path);
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
    dw_fixture_write_file(bad_cfg, "{\"listen\": {\"unix\": 5}, \"source\": {}, \"maps\": \"nowhere\", \"bogus\": 1}");
    CU_ASSERT_EQUAL(run_check(bad_cfg, &out), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "bad.json"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "/listen/unix"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "bogus"));
    free(out);

    /* a map whose target column does not exist: start-up fails naming map, table and column */
    snprintf(bad_maps, sizeof(bad_maps), "%s/maps_bad", dir);
    mkdir(bad_maps, 0755);
    snprintf(path, sizeof(path), "%s/orders.json", bad_maps);
    dw_fixture_write_file(path,
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
    out = dw_fixture_read_file(log_path);
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
    out = dw_fixture_read_file(log_path);
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
    CU_add_test(s, "outcome and resolver racing settle each batch once", test_outcome_and_resolver_settle_once);
    CU_add_test(s, "an outcome is answered before the target settles it", test_outcome_answered_before_settle);
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
