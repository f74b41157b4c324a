/*
 * Sync-limit throttling end to end (DESIGN.md section 7): the real dualwrited
 * as a child process (tests/integration/svc_harness.h) against a real
 * two-phase target cluster, its limits changed between tests by SIGHUP.
 *
 *   - requests_per_window 3 per 2 s: a 4th batch whose deadline is shorter
 *     than the rest of the window is refused at once with 429, Retry-After
 *     and the numbers; one whose deadline allows waits, then commits;
 *   - concurrent 1, one batch held by a row lock on the target: a second one
 *     waits for it, a third with a short deadline is refused;
 *   - the source's extension turns a 429 into SQLSTATE YW004 with a hint to
 *     retry (when the build has the extension);
 *   - /metrics and /v1/status show waits, refusals and use;
 *   - dwctl status prints its tables and exits 0 when healthy, 1 when an
 *     in-doubt batch needs a human, 2 when the service is down;
 *   - a target's own 429 with Retry-After (the OData test server of
 *     tests/fixtures/odataserver, told to answer 429): the connector is
 *     paused and the batch retried once when its deadline allows, else 429
 *     with the target's Retry-After, and a paused connector sends nothing.
 *     That suite skips when node and npm are missing.
 *
 * Counters are compared before and after each step rather than to absolute
 * numbers, and no assertion measures time: waits are bounded polls.
 */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <curl/curl.h>

#include "tests/integration/svc_harness.h"
#include "tests/unit/common/dw_cunit.h"

#define HOOK_COMMIT_TIMEOUT "5s"

static char dwctl_bin[512];
static int generation = 1;
static const char *conn = "tgt";   /* the connector the metrics are read for */
#ifdef DW_TEST_HOOK
static const bool with_hook = true;
#else
static const bool with_hook = false;
#endif

/* ------------------------------------------------------------ configuration */

/* The configuration with these limits, written to path with listen (the inside of its object). */
static void write_config_as(const char *path, const char *listen, long requests, long window_s, long exec_s,
                            long concurrent)
{
    dw_fixture_write_file(path,
               "{\"listen\": {%s},\n"
               " \"source\": {\"conninfo\": \"%s\", \"system\": \"%s\"},\n"
               " \"maps\": \"maps\",\n"
               " \"connectors\": {\"tgt\": {\"type\": \"pg\", \"conninfo\": \"%s\", \"commit\": \"auto\",\n"
               "      \"pool_size\": 4, \"timeout_ms\": 20000,\n"
               "      \"limits\": {\"requests_per_window\": %ld, \"window_s\": %ld,\n"
               "                 \"execution_s_per_window\": %ld, \"concurrent\": %ld}}},\n"
               " \"resolver\": {\"interval_ms\": 200, \"grace_ms\": 1000},\n"
               " \"log_level\": \"debug\"}\n",
               listen, source_ci, sysid, target_ci, requests, window_s, exec_s, concurrent);
}

static void write_limits_config(long requests, long window_s, long exec_s, long concurrent)
{
    bool root_group = geteuid() == 0 && getgrnam("postgres") != NULL;
    char listen[700];

    /* the source server's OS user must reach the socket for the hook test */
    snprintf(listen, sizeof(listen), "\"unix\": \"%s\"%s, \"tcp\": \"127.0.0.1:%d\", \"token\": \"" TOKEN "\"",
             sock_path, root_group ? ", \"group\": \"postgres\"" : "", tcp_port);
    write_config_as(cfg_path, listen, requests, window_s, exec_s, concurrent);
}

/* New limits through SIGHUP; returns when the new generation is in force. */
static void reload(long requests, long window_s, long exec_s, long concurrent)
{
    char needle[80];

    write_limits_config(requests, window_s, exec_s, concurrent);
    generation++;
    snprintf(needle, sizeof(needle), "configuration generation %d in force", generation);
    kill(daemon_pid, SIGHUP);
    CU_ASSERT_FATAL(wait_for_log(needle, 30000));
}

/* ------------------------------------------------------------ helpers */

static int post(const char *xid, int id, long deadline_ms, struct resp *r)
{
    char *change = ins(id, "\"new\"", "\"1\"");
    char *body = batch_json(sysid, xid, deadline_ms, change);
    int st = call("POST", "/v1/batches", body, r);

    free(body);
    free(change);
    return st;
}

/* Commit the source transaction and tell the bridge, as the hook would. */
static void settle(struct src_tx *t)
{
    src_end(t, true);
    CU_ASSERT_EQUAL(post_outcome(t->xid, "committed"), 204);
}

static long retry_after(const struct resp *r)
{
    const char *h = strcasestr(r->head, "\r\nRetry-After:");

    return h ? strtol(h + strlen("\r\nRetry-After:"), NULL, 10) : -1;
}

/* A sample of /metrics for connector conn (and limit, unless NULL); -1 when absent. */
static double metric(const char *name, const char *limit)
{
    struct resp r;
    char key[256];
    double v = -1;

    if (limit)
        snprintf(key, sizeof(key), "\n%s{connector=\"%s\",limit=\"%s\"} ", name, conn, limit);
    else
        snprintf(key, sizeof(key), "\n%s{connector=\"%s\"} ", name, conn);
    if (call("GET", "/metrics", NULL, &r) == 200) {
        const char *p = strstr(r.body, key);

        if (p)
            v = strtod(p + strlen(key), NULL);
    }
    resp_free(&r);
    return v;
}

static bool wait_metric(const char *name, const char *limit, double value, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    do {
        if (metric(name, limit) == value)
            return true;
        sleep_ms(25);
    } while (now_ms() < end);
    return false;
}

/* Some session on the target waits for a lock. */
static bool wait_target_lock(int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    do {
        if (target_long("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND %d = 1", 1) > 0)
            return true;
        sleep_ms(25);
    } while (now_ms() < end);
    return false;
}

/* Run dwctl with args; its stdout and stderr into *out (malloc'd); the exit code. */
static int dwctl(const char *args, char **out)
{
    char cmd[1400];
    char *text = NULL;
    size_t len = 0, n;
    char chunk[4096];
    FILE *p;
    int st;

    snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", dwctl_bin, args);
    p = popen(cmd, "r");
    if (!p) {
        *out = strdup("");
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) {
        char *more = realloc(text, len + n + 1);

        if (!more)
            break;
        text = more;
        memcpy(text + len, chunk, n);
        len += n;
        text[len] = '\0';
    }
    st = pclose(p);
    *out = text ? text : strdup("");
    if (getenv("DW_TEST_VERBOSE"))
        fprintf(stderr, "\n$ dwctl %s\n%s", args, *out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ------------------------------------------------------------ suite */

static int suite_init(void)
{
    const char *tconf[] = {"max_prepared_transactions = 48", NULL};
    const char *root = getenv("DW_BUILD_ROOT");
    const char *sconf[4] = {NULL};
    char path[512], bridge_line[600];
    PGconn *s;
    const char *v;

    dw_fixture_require();
    if (!root) {
        fprintf(stderr, "DW_BUILD_ROOT is not set\n");
        return 1;
    }
    snprintf(daemon_bin, sizeof(daemon_bin), "%s/bridge/service/dualwrited", root);
    snprintf(dwctl_bin, sizeof(dwctl_bin), "%s/tools/dwctl/dwctl", root);
    if (access(daemon_bin, X_OK) != 0 || access(dwctl_bin, X_OK) != 0) {
        fprintf(stderr, "dualwrited or dwctl has not been built under %s\n", root);
        return 1;
    }
    snprintf(dir, sizeof(dir), "%s/svc", dw_fixture_tmpdir());
    mkdir(dir, 0755);
    snprintf(maps_dir, sizeof(maps_dir), "%s/maps", dir);
    mkdir(maps_dir, 0755);
    snprintf(cfg_path, sizeof(cfg_path), "%s/dualwrite.json", dir);
    snprintf(sock_path, sizeof(sock_path), "%s/bridge.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/dualwrited.log", dir);
    tcp_port = dw_fixture_free_port();

    if (with_hook) {
        snprintf(bridge_line, sizeof(bridge_line), "dualwrite.bridge = '%s'", sock_path);
        sconf[0] = "shared_preload_libraries = 'dualwrite'";
        sconf[1] = bridge_line;
        sconf[2] = "dualwrite.commit_timeout = '" HOOK_COMMIT_TIMEOUT "'";
    }
    if (!dw_pg_cluster_start(&target, tconf, false) || !dw_pg_cluster_start(&source, sconf, with_hook))
        return 1;
    dw_pg_cluster_conninfo(&target, "postgres", target_ci, sizeof(target_ci));
    dw_pg_cluster_conninfo(&source, "postgres", source_ci, sizeof(source_ci));
    tgt = dw_pg_cluster_connect(&target, "postgres");
    PQclear(dw_sql(tgt, "CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, "
                        "total numeric CHECK (total >= 0))"));
    s = dw_pg_cluster_connect(&source, "postgres");
    v = dw_sql_value(s, "SELECT system_identifier::text FROM pg_control_system()");
    snprintf(sysid, sizeof(sysid), "%s", v ? v : "0");
    if (with_hook)
        PQclear(dw_sql(s, "SET client_min_messages = warning; CREATE EXTENSION dualwrite; "
                          "CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric(12,2));"
                          "CREATE TRIGGER dualwrite_capture AFTER INSERT OR UPDATE OR DELETE ON orders "
                          "  FOR EACH ROW EXECUTE FUNCTION dualwrite.capture('orders', 'id', 'status', 'total');"
                          "ALTER TABLE orders ENABLE ALWAYS TRIGGER dualwrite_capture"));
    PQfinish(s);

    snprintf(path, sizeof(path), "%s/orders.json", maps_dir);
    dw_fixture_write_file(path, "%s", orders_map);
    /* every window and concurrency limit off; each test sets its own */
    write_limits_config(0, 0, 0, 0);
    return start_daemon() ? 0 : 1;
}

static int suite_cleanup(void)
{
    int rc = daemon_pid > 0 ? stop_daemon(SIGTERM) : 0;

    if (rc != 0)
        fprintf(stderr, "dualwrited exited with %d at the end\n", rc);
    if (getenv("DW_TEST_KEEP_LOG")) {
        char *text = dw_fixture_read_file(log_path);

        fprintf(stderr, "---- dualwrited log ----\n%s\n", text);
        free(text);
    }
    if (tgt)
        PQfinish(tgt);
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------ tests */

/* 3 per 2 s: the 4th is refused when its deadline cannot wait, admitted when it can. */
static void test_requests_per_window(void)
{
    double waits0 = metric("dualwrite_throttle_waits_total", "requests_per_window");
    double rej0 = metric("dualwrite_throttle_rejections_total", "requests_per_window");
    struct src_tx tx[5];
    struct resp r;
    long ra;

    CU_ASSERT(waits0 >= 0 && rej0 >= 0);
    reload(3, 2, 0, 0);
    for (int i = 0; i < 3; i++) {
        src_begin(&tx[i]);
        CU_ASSERT_EQUAL(post(tx[i].xid, 100 + i, 20000, &r), 200);
        resp_free(&r);
    }

    /* the window is full for about 2 s more: a 300 ms deadline cannot wait for it */
    src_begin(&tx[3]);
    CU_ASSERT_EQUAL(post(tx[3].xid, 103, 300, &r), 429);
    ra = retry_after(&r);
    CU_ASSERT(ra >= 1 && ra <= 3);
    DW_ASSERT_CONTAINS(r.body, "\"status\":\"throttled\"");
    DW_ASSERT_CONTAINS(r.body, "\"retry_after_s\":");
    DW_ASSERT_CONTAINS(r.body, "connector \\\"tgt\\\": 3 requests in the last 2 s (limit "
                               "\\\"requests_per_window\\\" 3); retry in ");
    resp_free(&r);
    src_end(&tx[3], false);

    /* a deadline that allows it: waits for the window, then goes through */
    src_begin(&tx[4]);
    CU_ASSERT_EQUAL(post(tx[4].xid, 104, 20000, &r), 200);
    DW_ASSERT_CONTAINS(r.body, "\"status\":\"prepared\"");
    resp_free(&r);

    for (int i = 0; i < 5; i++) {
        if (i != 3)
            settle(&tx[i]);
    }
    CU_ASSERT_TRUE(wait_prepared_count(0, 10000));
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(order_rows(100 + i), i == 3 ? 0 : 1);
    CU_ASSERT_EQUAL(metric("dualwrite_throttle_waits_total", "requests_per_window"), waits0 + 1);
    CU_ASSERT_EQUAL(metric("dualwrite_throttle_rejections_total", "requests_per_window"), rej0 + 1);
    CU_ASSERT_TRUE(wait_for_log("status=throttled http=429", 1000));
}

struct job {
    pthread_t thread;
    char xid[32];
    int id;
    long deadline_ms;
    int status;
    struct resp r;
};

static void *job_main(void *arg)
{
    struct job *j = arg;

    j->status = post(j->xid, j->id, j->deadline_ms, &j->r);
    return NULL;
}

static void job_start(struct job *j, const struct src_tx *t, int id, long deadline_ms)
{
    memset(j, 0, sizeof(*j));
    snprintf(j->xid, sizeof(j->xid), "%s", t->xid);
    j->id = id;
    j->deadline_ms = deadline_ms;
    CU_ASSERT_FATAL(pthread_create(&j->thread, NULL, job_main, j) == 0);
}

/* concurrent 1: a batch slowed by a target row lock holds the only slot. */
static void test_concurrent(void)
{
    double waits0 = metric("dualwrite_throttle_waits_total", "concurrent");
    double rej0 = metric("dualwrite_throttle_rejections_total", "concurrent");
    PGconn *blocker = dw_pg_cluster_connect(&target, "postgres");
    struct src_tx ta, tb, tc;
    struct job a, b;
    struct resp r;

    reload(0, 0, 0, 1);
    CU_ASSERT_EQUAL(metric("dualwrite_limit_max", "concurrent"), 1);
    PQclear(dw_sql(blocker, "BEGIN; INSERT INTO orders VALUES (200, 'blocker', 0)"));
    src_begin(&ta);
    src_begin(&tb);
    src_begin(&tc);
    job_start(&a, &ta, 200, 30000);
    CU_ASSERT_TRUE(wait_target_lock(20000));
    CU_ASSERT_TRUE(wait_metric("dualwrite_limit_use", "concurrent", 1, 10000));

    /* no slot frees before a short deadline: refused */
    CU_ASSERT_EQUAL(post(tc.xid, 202, 300, &r), 429);
    CU_ASSERT(retry_after(&r) >= 1);
    DW_ASSERT_CONTAINS(r.body, "connector \\\"tgt\\\": 1 request in progress (limit \\\"concurrent\\\" 1)");
    resp_free(&r);
    src_end(&tc, false);

    /* a long deadline waits for the slot */
    job_start(&b, &tb, 201, 30000);
    CU_ASSERT_TRUE(wait_metric("dualwrite_throttle_waiting", NULL, 1, 20000));
    PQclear(dw_sql(blocker, "ROLLBACK"));
    pthread_join(a.thread, NULL);
    pthread_join(b.thread, NULL);
    CU_ASSERT_EQUAL(a.status, 200);
    CU_ASSERT_EQUAL(b.status, 200);
    resp_free(&a.r);
    resp_free(&b.r);
    settle(&ta);
    settle(&tb);
    CU_ASSERT_TRUE(wait_prepared_count(0, 10000));
    CU_ASSERT_EQUAL(order_rows(200), 1);
    CU_ASSERT_EQUAL(order_rows(201), 1);
    CU_ASSERT_EQUAL(order_rows(202), 0);
    CU_ASSERT_EQUAL(metric("dualwrite_throttle_waits_total", "concurrent"), waits0 + 1);
    CU_ASSERT_EQUAL(metric("dualwrite_throttle_rejections_total", "concurrent"), rej0 + 1);
    CU_ASSERT_EQUAL(metric("dualwrite_limit_use", "concurrent"), 0);
    PQfinish(blocker);
}

/* The counters and the use of each limit, in both documents. */
static void test_metrics_and_status(void)
{
    static const char *const names[] = {"dualwrite_throttle_waits_total", "dualwrite_throttle_rejections_total",
                                        "dualwrite_throttle_wait_seconds_total"};
    static const char *const limits[] = {"requests_per_window", "execution_s_per_window", "concurrent", "target"};
    struct resp r;

    for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++)
        for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++)
            CU_ASSERT(metric(names[n], limits[l]) >= 0);
    CU_ASSERT(metric("dualwrite_throttle_waits_total", "requests_per_window") >= 1);
    CU_ASSERT(metric("dualwrite_throttle_rejections_total", "concurrent") >= 1);
    CU_ASSERT(metric("dualwrite_throttle_wait_seconds_total", "concurrent") > 0);
    CU_ASSERT_EQUAL(metric("dualwrite_limit_use", "requests_per_window"), 0);   /* window off now */
    CU_ASSERT(metric("dualwrite_limit_use", "execution_s_per_window") >= 0);
    CU_ASSERT_EQUAL(metric("dualwrite_limit_max", "requests_per_window"), 0);
    CU_ASSERT_EQUAL(metric("dualwrite_limit_max", "concurrent"), 1);
    CU_ASSERT_EQUAL(metric("dualwrite_throttle_paused_seconds", NULL), 0);
    CU_ASSERT_EQUAL(metric("dualwrite_target_throttled_total", NULL), 0);
    CU_ASSERT_EQUAL(call("GET", "/metrics", NULL, &r), 200);
    DW_ASSERT_CONTAINS(r.body, "# TYPE dualwrite_limit_use gauge\n");
    DW_ASSERT_CONTAINS(r.body, "dualwrite_stage_seconds_count{stage=\"throttle\"}");
    resp_free(&r);

    CU_ASSERT_EQUAL(call("GET", "/v1/status", NULL, &r), 200);
    DW_ASSERT_CONTAINS(r.body, "\"throttle\":{\"window_s\":0,");
    DW_ASSERT_CONTAINS(r.body, "\"concurrent\":{\"max\":1,\"use\":0.000,\"waits\":");
    DW_ASSERT_CONTAINS(r.body, "\"target\":{\"max\":0,");
    DW_ASSERT_CONTAINS(r.body, "\"paused_ms\":0");
    DW_ASSERT_CONTAINS(r.body, "\"pid\":");
    DW_ASSERT_CONTAINS(r.body, "\"uptime_s\":");
    /* the maps' counts: 4 + 2 batches went through, the 2 refused ones count as failed */
    DW_ASSERT_CONTAINS(r.body, "\"batches\":8,\"failed\":2,\"rows\":6");
    resp_free(&r);
}

/* The source's COMMIT fails with YW004 and a hint that says when to retry. */
static void test_hook_turns_429_into_yw004(void)
{
    PGconn *s;
    PGresult *res;
    const char *state, *hint, *msg, *detail;

    if (!with_hook) {
        fprintf(stderr, "(skipped: this build has no extension) ");
        return;
    }
    /* one request per minute: the second COMMIT cannot wait that long with a 5 s commit timeout */
    reload(1, 60, 0, 0);
    s = dw_pg_cluster_connect(&source, "postgres");
    res = PQexec(s, "INSERT INTO orders VALUES (300, 'first', 1)");
    CU_ASSERT_EQUAL(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    res = PQexec(s, "INSERT INTO orders VALUES (301, 'second', 1)");
    CU_ASSERT_EQUAL(PQresultStatus(res), PGRES_FATAL_ERROR);
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    DW_ASSERT_STREQ(state, "YW004");
    DW_ASSERT_CONTAINS(msg, "throttled");
    DW_ASSERT_CONTAINS(detail, "limit \"requests_per_window\" 1");
    DW_ASSERT_CONTAINS(hint, "Retry in ");
    DW_ASSERT_CONTAINS(hint, " seconds.");
    PQclear(res);
    CU_ASSERT_STRING_EQUAL(dw_sql_value(s, "SELECT count(*) FROM orders WHERE id IN (300, 301)"), "1");
    CU_ASSERT_TRUE(wait_prepared_count(0, 10000));
    CU_ASSERT_EQUAL(order_rows(300), 1);
    CU_ASSERT_EQUAL(order_rows(301), 0);
    PQfinish(s);
    /* back to no window limit for the tests after this one */
    reload(0, 0, 0, 1);
}

/* dwctl status: the tables, --json, and the exit codes for healthy and for attention. */
static void test_dwctl_status(void)
{
    char args[600], *out = NULL;
    struct resp r;
    int64_t end;

    snprintf(args, sizeof(args), "-c '%s' status", cfg_path);
    CU_ASSERT_EQUAL(dwctl(args, &out), 0);
    DW_ASSERT_CONTAINS(out, "SERVICE\n");
    DW_ASSERT_CONTAINS(out, "running");
    DW_ASSERT_CONTAINS(out, "\nCONNECTORS\n");
    DW_ASSERT_CONTAINS(out, "REQUESTS/WINDOW");
    DW_ASSERT_CONTAINS(out, "\nSYNC LIMITS");
    DW_ASSERT_CONTAINS(out, "requests_per_window");
    DW_ASSERT_CONTAINS(out, "\nMAPS\n");
    DW_ASSERT_CONTAINS(out, "orders");
    DW_ASSERT_CONTAINS(out, "\nIN-DOUBT BATCHES\nnone\n");
    DW_ASSERT_CONTAINS(out, "\nhealthy\n");
    free(out);

    snprintf(args, sizeof(args), "status --json -c '%s'", cfg_path);
    CU_ASSERT_EQUAL(dwctl(args, &out), 0);
    CU_ASSERT(out[0] == '{');
    DW_ASSERT_CONTAINS(out, "\"connectors\":[");
    free(out);

    /* over TCP with the token; a wrong token is 2 */
    {
        char path[500], listen[200];

        snprintf(path, sizeof(path), "%s/tcp.json", dir);
        snprintf(listen, sizeof(listen), "\"tcp\": \"127.0.0.1:%d\", \"token\": \"" TOKEN "\"", tcp_port);
        write_config_as(path, listen, 0, 0, 0, 1);
        snprintf(args, sizeof(args), "status -c '%s'", path);
        CU_ASSERT_EQUAL(dwctl(args, &out), 0);
        DW_ASSERT_CONTAINS(out, "\nhealthy\n");
        free(out);
        snprintf(listen, sizeof(listen), "\"tcp\": \"127.0.0.1:%d\", \"token\": \"not-the-token-0123456789\"",
                 tcp_port);
        write_config_as(path, listen, 0, 0, 0, 1);
        CU_ASSERT_EQUAL(dwctl(args, &out), 2);
        DW_ASSERT_CONTAINS(out, "answered HTTP 401");
        DW_ASSERT_CONTAINS(out, "bearer token");
        free(out);
    }

    /* a prepared transaction the source cannot vouch for: the resolver leaves it to a human */
    PQclear(dw_sql(tgt, "BEGIN"));
    PQclear(dw_sql(tgt, "PREPARE TRANSACTION 'dw:42:5:100'"));
    end = now_ms() + 15000;
    do {
        bool found;

        CU_ASSERT_EQUAL(call("GET", "/v1/status", NULL, &r), 200);
        found = strstr(r.body, "\"needs_human\":true") != NULL;
        resp_free(&r);
        if (found)
            break;
        sleep_ms(50);
    } while (now_ms() < end);
    snprintf(args, sizeof(args), "-c '%s' status", cfg_path);
    CU_ASSERT_EQUAL(dwctl(args, &out), 1);
    DW_ASSERT_CONTAINS(out, "42:5:100");
    DW_ASSERT_CONTAINS(out, "YES");
    DW_ASSERT_CONTAINS(out, "needs attention");
    free(out);
    PQclear(dw_sql(tgt, "ROLLBACK PREPARED 'dw:42:5:100'"));

    /* usage errors are 2 as well */
    CU_ASSERT_EQUAL(dwctl("status", &out), 2);
    DW_ASSERT_CONTAINS(out, "missing configuration file");
    free(out);
}

/* With the service down: exit 2, naming the socket, with a hint to start dualwrited. */
static void test_dwctl_status_service_down(void)
{
    char args[600], *out = NULL;

    CU_ASSERT_EQUAL(stop_daemon(SIGTERM), 0);
    snprintf(args, sizeof(args), "-c '%s' status", cfg_path);
    CU_ASSERT_EQUAL(dwctl(args, &out), 2);
    DW_ASSERT_CONTAINS(out, "could not reach the bridge at");
    DW_ASSERT_CONTAINS(out, sock_path);
    DW_ASSERT_CONTAINS(out, "dualwrited -c");
    free(out);
}

/* ------------------------------------------------------------ a target's own 429 (OData) */

#define OD_TOKEN "tok-throttle-0123456789"

static bool odata_up;
static char od_script[600], od_dir[512], od_base[128], od_maps[450];

static size_t od_collect(char *data, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    char *more = realloc(r->body, r->len + size * n + 1);

    if (!more)
        return 0;
    r->body = more;
    memcpy(r->body + r->len, data, size * n);
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

/* A request to the test server's control endpoints; the status, the body in *r. */
static long od_control(const char *method, const char *path, const char *json, struct resp *r)
{
    char url[300];
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    CURL *c = curl_easy_init();
    long status = -1;

    memset(r, 0, sizeof(*r));
    r->body = strdup("");
    snprintf(url, sizeof(url), "%s/dw-fixture/%s", od_base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, od_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (json)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return status;
}

static void od_fault(const char *json)
{
    struct resp r;

    CU_ASSERT_EQUAL(od_control("POST", "faults", json, &r), 204);
    resp_free(&r);
}

/* $batch requests the server has seen. */
static long od_batches(void)
{
    struct resp r;
    const char *p;
    long n = -1;

    if (od_control("GET", "stats", NULL, &r) == 200 && (p = strstr(r.body, "\"batch\":")))
        n = strtol(p + 8, NULL, 10);
    resp_free(&r);
    return n;
}

static int odata_init(void)
{
    const char *src = getenv("DW_SOURCE_ROOT");
    char cmd[1400], out[64] = "", path[600];
    FILE *p;
    int status, port = 0;

    snprintf(od_script, sizeof(od_script), "%s/tests/fixtures/odataserver", src ? src : ".");
    if (access(od_script, X_OK) != 0) {
        fprintf(stderr, "(no %s: the OData tests are skipped) ", od_script);
        return 0;
    }
    snprintf(od_dir, sizeof(od_dir), "%s/odata", dw_fixture_tmpdir());
    snprintf(cmd, sizeof(cmd), "'%s' start '%s' --token %s", od_script, od_dir, OD_TOKEN);
    p = popen(cmd, "r");
    if (!p)
        return 1;
    if (!fgets(out, sizeof(out), p))
        out[0] = '\0';
    status = pclose(p);
    snprintf(path, sizeof(path), "%s/pid", od_dir);
    {
        FILE *f = fopen(path, "r");
        int pid = 0;

        if (f) {
            if (fscanf(f, "%d", &pid) == 1 && pid > 0)
                dw_fixture_track_pid((pid_t) pid);
            fclose(f);
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        fprintf(stderr, "(node and npm are missing: the OData tests are skipped) ");
        return 0;
    }
    if (status != 0 || sscanf(out, "%d", &port) != 1 || port <= 0) {
        fprintf(stderr, "could not start the OData test server (%s)\n", out);
        return 1;
    }
    snprintf(od_base, sizeof(od_base), "http://127.0.0.1:%d", port);

    /* the same source table, now mapped onto the service's Orders */
    snprintf(od_maps, sizeof(od_maps), "%s/maps_odata", dir);
    mkdir(od_maps, 0755);
    snprintf(path, sizeof(path), "%s/orders.json", od_maps);
    dw_fixture_write_file(path, "{\"map\": \"orders\",\n"
                     " \"source\": {\"table\": \"public.orders\", \"key\": [\"id\"]},\n"
                     " \"target\": {\"connector\": \"od\", \"table\": \"Orders\", \"key\": [\"ID\"]},\n"
                     " \"fields\": [{\"source\": \"id\", \"target\": \"ID\"},\n"
                     "            {\"source\": \"status\", \"target\": \"status\"},\n"
                     "            {\"source\": \"total\", \"target\": \"amount\"}]}\n");
    dw_fixture_write_file(cfg_path,
               "{\"listen\": {\"unix\": \"%s\"},\n"
               " \"source\": {\"conninfo\": \"%s\", \"system\": \"%s\"},\n"
               " \"maps\": \"maps_odata\",\n"
               " \"connectors\": {\"od\": {\"type\": \"odata\", \"url\": \"%s/api/data/v9.2/\",\n"
               "      \"token\": \"" OD_TOKEN "\", \"pool_size\": 2, \"timeout_ms\": 20000}},\n"
               " \"resolver\": {\"interval_ms\": 200, \"grace_ms\": 1000},\n"
               " \"log_level\": \"debug\"}\n",
               sock_path, source_ci, sysid, od_base);
    conn = "od";
    if (!start_daemon())
        return 1;
    odata_up = true;
    return 0;
}

static int odata_cleanup(void)
{
    int rc = daemon_pid > 0 ? stop_daemon(SIGTERM) : 0;
    char cmd[1200];

    if (getenv("DW_TEST_KEEP_LOG")) {
        char *text = dw_fixture_read_file(log_path);

        fprintf(stderr, "---- dualwrited log ----\n%s\n", text);
        free(text);
    }
    if (od_base[0]) {
        snprintf(cmd, sizeof(cmd), "'%s' stop '%s'", od_script, od_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not stop the OData test server\n");
    }
    return rc == 0 ? 0 : 1;
}

static bool odata_skip(void)
{
    if (!odata_up)
        fprintf(stderr, "(skipped) ");
    return !odata_up;
}

/* 429 with Retry-After 1: the connector pauses a second, the batch is sent again and commits. */
static void test_target_429_retried(void)
{
    struct src_tx t;
    struct resp r;
    long before;

    if (odata_skip())
        return;
    before = od_batches();
    od_fault("{\"on\": \"batch\", \"count\": 1, \"status\": 429, \"retry_after\": \"1\"}");
    src_begin(&t);
    CU_ASSERT_EQUAL(post(t.xid, 500, 20000, &r), 200);
    DW_ASSERT_CONTAINS(r.body, "\"status\":\"committed\"");
    resp_free(&r);
    src_end(&t, true);
    CU_ASSERT_EQUAL(od_batches(), before + 2);
    CU_ASSERT_EQUAL(metric("dualwrite_target_throttled_total", NULL), 1);
    CU_ASSERT_EQUAL(metric("dualwrite_throttle_waits_total", "target"), 1);
    CU_ASSERT_TRUE(wait_for_log("the target throttled the batch; pausing the connector for 1000 ms, then trying "
                                "once more", 1000));
}

/* Throttled again on the retry: 429 with the target's Retry-After, nothing applied. */
static void test_target_429_twice(void)
{
    struct src_tx t;
    struct resp r;
    long before;

    if (odata_skip())
        return;
    before = od_batches();
    od_fault("{\"on\": \"batch\", \"count\": 2, \"status\": 429, \"retry_after\": \"1\"}");
    src_begin(&t);
    CU_ASSERT_EQUAL(post(t.xid, 501, 20000, &r), 429);
    CU_ASSERT_EQUAL(retry_after(&r), 1);
    DW_ASSERT_CONTAINS(r.body, "\"status\":\"throttled\"");
    DW_ASSERT_CONTAINS(r.body, "connector \\\"od\\\": ");
    DW_ASSERT_CONTAINS(r.body, "\"stage\":\"");
    resp_free(&r);
    src_end(&t, false);
    CU_ASSERT_EQUAL(od_batches(), before + 2);
    CU_ASSERT_EQUAL(metric("dualwrite_target_throttled_total", NULL), 3);
    CU_ASSERT_TRUE(wait_for_log("the second attempt was throttled too", 1000));
}

/* A Retry-After past the deadline: refused at once, and while paused nothing reaches the target. */
static void test_target_429_past_deadline(void)
{
    struct src_tx t, u;
    struct resp r;
    long before;

    if (odata_skip())
        return;
    od_fault("{\"on\": \"batch\", \"count\": 1, \"status\": 429, \"retry_after\": \"30\"}");
    src_begin(&t);
    CU_ASSERT_EQUAL(post(t.xid, 502, 5000, &r), 429);
    CU_ASSERT_EQUAL(retry_after(&r), 30);
    DW_ASSERT_CONTAINS(r.body, "\"retry_after_s\":30");
    resp_free(&r);
    src_end(&t, false);
    CU_ASSERT_TRUE(wait_for_log("the pause passes the batch's deadline", 1000));
    CU_ASSERT(metric("dualwrite_throttle_paused_seconds", NULL) > 20);

    /* the connector is paused: the next batch is refused without a request to the target */
    before = od_batches();
    src_begin(&u);
    CU_ASSERT_EQUAL(post(u.xid, 503, 5000, &r), 429);
    CU_ASSERT(retry_after(&r) > 20 && retry_after(&r) <= 30);
    DW_ASSERT_CONTAINS(r.body, "the target asked to pause");
    resp_free(&r);
    src_end(&u, false);
    CU_ASSERT_EQUAL(od_batches(), before);
    CU_ASSERT(metric("dualwrite_throttle_rejections_total", "target") >= 1);
}

int main(void)
{
    CU_pSuite s;
    unsigned failed;

    dw_fixture_require();
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    s = CU_add_suite("sync-limit throttling", suite_init, suite_cleanup);
    CU_add_test(s, "requests per window: wait, or 429 with Retry-After", test_requests_per_window);
    CU_add_test(s, "concurrent: wait for the slot, or 429", test_concurrent);
    CU_add_test(s, "/metrics and /v1/status", test_metrics_and_status);
    CU_add_test(s, "the hook turns 429 into YW004 with a hint", test_hook_turns_429_into_yw004);
    CU_add_test(s, "dwctl status", test_dwctl_status);
    CU_add_test(s, "dwctl status with the service down", test_dwctl_status_service_down);
    s = CU_add_suite("a target's own 429 (OData)", odata_init, odata_cleanup);
    CU_add_test(s, "429 with Retry-After: pause, retry, commit", test_target_429_retried);
    CU_add_test(s, "429 again on the retry: 429 to the source", test_target_429_twice);
    CU_add_test(s, "Retry-After past the deadline: 429 at once, the connector paused", test_target_429_past_deadline);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
