/*
 * dualwrited's HTTP API against real clusters: the transaction path (prepare,
 * outcome, commit/rollback prepared), verdicts and their statuses (409 with
 * the target's SQLSTATE, 422 for map rules and sync limits, 503 past the
 * deadline), hostile input (malformed, truncated, oversized, deeply nested,
 * non-UTF-8 bodies, lying lengths, garbage), unknown outcome ids, the TCP
 * bearer token, keep-alive and independent connections.  The harness is in
 * svc_harness.h; test_service_ops.c covers resolver, restarts and signals.
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

/* ------------------------------------------------------------ tests */

static void test_routes(void)
{
    struct resp r;

    CU_ASSERT_EQUAL(call("GET", "/v1/health", NULL, &r), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"tgt\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"status\":\"ok\""));
    resp_free(&r);

    CU_ASSERT_EQUAL(call("GET", "/v1/status", NULL, &r), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"two_phase\":true"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"name\":\"orders\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"in_doubt\":["));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"outcomes_queued\":0,"));
    resp_free(&r);

    CU_ASSERT_EQUAL(call("GET", "/metrics", NULL, &r), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.head, "text/plain"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "# TYPE dualwrite_stage_seconds histogram"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "dualwrite_in_doubt "));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "dualwrite_outcomes_queued 0\n"));
    resp_free(&r);

    CU_ASSERT_EQUAL(call("POST", "/v1/health", "{}", &r), 405);
    CU_ASSERT_TRUE(is_error_body(&r));
    CU_ASSERT_PTR_NOT_NULL(strcasestr(r.head, "Allow: GET"));
    resp_free(&r);
    CU_ASSERT_EQUAL(call("GET", "/v1/batches", NULL, &r), 405);
    resp_free(&r);
    CU_ASSERT_EQUAL(call("GET", "/nope", NULL, &r), 404);
    CU_ASSERT_TRUE(is_error_body(&r));
    resp_free(&r);
    CU_ASSERT_EQUAL(call_status("POST", "/v1/batches//outcome", "{}"), 404);

    /* a refused request does not cost a keep-alive client its connection */
    {
        int fd = connect_unix();

        CU_ASSERT_TRUE_FATAL(fd >= 0);
        CU_ASSERT_TRUE(send_request(fd, "POST", "/nope", NULL, "{\"a\":1}", 7));
        CU_ASSERT_TRUE(read_response(fd, &r, RESPONSE_TIMEOUT_MS));
        CU_ASSERT_EQUAL(r.status, 404);
        resp_free(&r);
        CU_ASSERT_TRUE(send_request(fd, "GET", "/v1/health", NULL, NULL, 0));
        CU_ASSERT_TRUE(read_response(fd, &r, RESPONSE_TIMEOUT_MS));
        CU_ASSERT_EQUAL(r.status, 200);
        resp_free(&r);
        close(fd);
    }
}

static void test_commit_with_outcome(void)
{
    struct src_tx t;
    struct resp r;
    char *ch = ins(1, "\"draft\"", "\"12.50\"");

    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, ch, &r), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"status\":\"prepared\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, t.xid));
    resp_free(&r);
    /* prepared, not visible yet */
    CU_ASSERT_EQUAL(prepared_count(), 1);
    CU_ASSERT_EQUAL(order_rows(1), 0);
    /* the same transaction again while in doubt: refused without touching the target */
    CU_ASSERT_EQUAL(post_batch(t.xid, ch, &r), 409);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "already in doubt"));
    resp_free(&r);
    CU_ASSERT_EQUAL(prepared_count(), 1);
    src_end(&t, true);
    CU_ASSERT_EQUAL(post_outcome(t.xid, "committed"), 204);
    CU_ASSERT_TRUE(wait_prepared_count(0, 5000));
    CU_ASSERT_EQUAL(order_rows(1), 1);
    CU_ASSERT_STRING_EQUAL(dw_sql_value(tgt, "SELECT status || '/' || total FROM orders WHERE id = 1"),
                           "draft/12.50");
    /* the same outcome again, once the settler is done: nothing in doubt any more */
    CU_ASSERT_TRUE(wait_in_doubt_empty(5000));
    CU_ASSERT_EQUAL(post_outcome(t.xid, "committed"), 404);
    free(ch);
}

static void test_abort_with_outcome(void)
{
    struct src_tx t;
    struct resp r;
    char *ch = ins(2, "\"draft\"", "\"1\"");

    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, ch, &r), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"prepared\""));
    resp_free(&r);
    CU_ASSERT_EQUAL(prepared_count(), 1);
    src_end(&t, false);
    CU_ASSERT_EQUAL(post_outcome(t.xid, "aborted"), 204);
    CU_ASSERT_TRUE(wait_prepared_count(0, 5000));
    CU_ASSERT_EQUAL(order_rows(2), 0);
    free(ch);
}

static void test_target_rejects(void)
{
    struct src_tx t;
    struct resp r;
    char *a = ins(3, "\"draft\"", "\"5\"");
    char *b = ins(4, "\"draft\"", "\"-1\"");
    char both[1024];

    snprintf(both, sizeof(both), "%s,%s", a, b);
    src_begin(&t);
    CU_ASSERT_EQUAL(post_batch(t.xid, both, &r), 409);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"status\":\"rejected\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"target_sqlstate\":\"23514\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"map\":\"orders\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"change\":1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "orders_total_check"));
    if (r.status != 409)
        fprintf(stderr, "body: %s\n", r.body);
    resp_free(&r);
    src_end(&t, false);
    CU_ASSERT_EQUAL(prepared_count(), 0);
    CU_ASSERT_EQUAL(order_rows(3), 0);
    CU_ASSERT_EQUAL(order_rows(4), 0);
    free(a);
    free(b);
}

static void test_map_rule_and_limits(void)
{
    struct src_tx t;
    struct resp r;
    char *ch = ins(5, "null", "\"1\"");
    char many[4096] = "";
    char *b;

    src_begin(&t);
    /* required field null */
    CU_ASSERT_EQUAL(post_batch(t.xid, ch, &r), 422);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"stage\":\"pre-validation\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"map\":\"orders\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"change\":0"));
    resp_free(&r);

    /* 6 records over the connector's limit of 5 */
    for (int i = 0; i < 6; i++) {
        char *one = ins(10 + i, "\"draft\"", "\"1\"");

        if (i)
            strcat(many, ",");
        strcat(many, one);
        free(one);
    }
    CU_ASSERT_EQUAL(post_batch(t.xid, many, &r), 422);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "records_per_transaction"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "6 target records, limit 5"));
    resp_free(&r);

    /* a table no map covers */
    CU_ASSERT_EQUAL(post_batch(t.xid, "{\"table\":\"public.nothing\",\"op\":\"insert\",\"new\":{\"a\":\"1\"}}",
                               &r), 422);
    resp_free(&r);

    /* another source system */
    b = batch_json("42", t.xid, 20000, ch);
    CU_ASSERT_EQUAL(call("POST", "/v1/batches", b, &r), 422);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "source system 42"));
    resp_free(&r);
    free(b);

    /* no time left: not even started */
    free(ch);
    ch = ins(6, "\"draft\"", "\"1\"");
    b = batch_json(sysid, t.xid, 0, ch);
    CU_ASSERT_EQUAL(call("POST", "/v1/batches", b, &r), 503);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"status\":\"unavailable\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "deadline"));
    resp_free(&r);
    free(b);

    /* an id whose xid is not the source's xid: the resolver could not judge it */
    {
        char *b2 = batch_json(sysid, t.xid, 20000, ch);
        size_t at = (size_t) (strstr(b2, "\"xid\":\"") - b2) + 7;

        b2[at] = b2[at] == '9' ? '8' : '9';
        CU_ASSERT_EQUAL(call("POST", "/v1/batches", b2, &r), 400);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "/id"));
        resp_free(&r);
        free(b2);
    }
    src_end(&t, false);
    CU_ASSERT_EQUAL(prepared_count(), 0);
    CU_ASSERT_EQUAL(order_rows(5), 0);
    CU_ASSERT_EQUAL(order_rows(6), 0);
    CU_ASSERT_EQUAL(order_rows(10), 0);
    free(ch);
}

/* Send raw bytes on a fresh connection; return the status (or -1 when the server just closed). */
static int raw(const char *bytes, size_t n, struct resp *r)
{
    int fd = connect_unix();
    int st = -1;

    memset(r, 0, sizeof(*r));
    if (fd < 0)
        return -2;
    if (send_all(fd, bytes, n) && read_response(fd, r, RESPONSE_TIMEOUT_MS))
        st = r->status;
    close(fd);
    if (!r->body)
        r->body = strdup("");
    return st;
}

static void test_bad_bodies(void)
{
    struct resp r;
    char *deep, *b;
    size_t n = 0;
    int fd;

    CU_ASSERT_EQUAL(call("POST", "/v1/batches", "{", &r), 400);
    CU_ASSERT_TRUE(is_error_body(&r));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"stage\":\"decode\""));
    resp_free(&r);

    /* truncated JSON */
    b = batch_json(sysid, "100", 20000, "{\"table\":\"public.orders\",\"op\":\"insert\",\"new\":{\"id\":\"1\"}}");
    b[strlen(b) / 2] = '\0';
    CU_ASSERT_EQUAL(call("POST", "/v1/batches", b, &r), 400);
    resp_free(&r);
    free(b);

    /* not an object; wrong types; unknown op */
    CU_ASSERT_EQUAL(call_status("POST", "/v1/batches", "[]"), 400);
    CU_ASSERT_EQUAL(call_status("POST", "/v1/batches", ""), 400);
    b = batch_json(sysid, "100", 20000, "{\"table\":\"public.orders\",\"op\":\"upsert\",\"new\":{\"id\":\"1\"}}");
    CU_ASSERT_EQUAL(call("POST", "/v1/batches", b, &r), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "/changes/0/op"));
    resp_free(&r);
    free(b);

    /* deeply nested */
    deep = calloc(1, 4096);
    strcpy(deep, "{\"id\":");
    n = strlen(deep);
    for (int i = 0; i < 200; i++)
        deep[n++] = '[';
    for (int i = 0; i < 200; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    CU_ASSERT_EQUAL(call("POST", "/v1/batches", deep, &r), 400);
    CU_ASSERT_TRUE(is_error_body(&r));
    resp_free(&r);
    free(deep);

    /* not UTF-8 */
    b = batch_json(sysid, "100", 20000,
                   "{\"table\":\"public.orders\",\"op\":\"insert\",\"new\":{\"id\":\"1\",\"status\":\"\xff\xfe\"}}");
    CU_ASSERT_EQUAL(call("POST", "/v1/batches", b, &r), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "UTF-8"));
    resp_free(&r);
    free(b);

    /* too large, announced: refused before the body is read */
    {
        char head[512];

        snprintf(head, sizeof(head), "POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
                 MAX_BODY + 1);
        CU_ASSERT_EQUAL(raw(head, strlen(head), &r), 413);
        CU_ASSERT_TRUE(is_error_body(&r));
        resp_free(&r);
    }

    /* too large, chunked (no length announced): read up to the limit, discarded, 413 */
    fd = connect_unix();
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    {
        const char *head = "POST /v1/batches HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        char *chunk = malloc(65536 + 16);
        size_t total = 0;
        bool ok = send_all(fd, head, strlen(head));

        snprintf(chunk, 16, "10000\r\n");
        memset(chunk + 7, ' ', 65536);
        memcpy(chunk + 7 + 65536, "\r\n", 2);
        while (ok && total <= (size_t) MAX_BODY + 65536) {
            ok = send_all(fd, chunk, 7 + 65536 + 2);
            total += 65536;
        }
        ok = ok && send_all(fd, "0\r\n\r\n", 5);
        CU_ASSERT_TRUE(ok && read_response(fd, &r, RESPONSE_TIMEOUT_MS));
        CU_ASSERT_EQUAL(r.status, 413);
        resp_free(&r);
        free(chunk);
        close(fd);
    }

    /* cut off mid-body: the server just drops the connection */
    {
        const char *cut = "POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"id\":";

        fd = connect_unix();
        CU_ASSERT_TRUE(fd >= 0 && send_all(fd, cut, strlen(cut)));
        close(fd);
    }

    /* not HTTP at all */
    CU_ASSERT_NOT_EQUAL(raw("\x01\x02garbage\r\n\r\n", 13, &r), 200);
    resp_free(&r);

    /* outcome bodies */
    CU_ASSERT_EQUAL(call_status("POST", "/v1/batches/1:2:3/outcome", "{\"outcome\":\"maybe\"}"), 400);
    CU_ASSERT_EQUAL(call_status("POST", "/v1/batches/1:2:3/outcome", "{\"outcome\":\"committed\",\"x\":1}"), 400);
    CU_ASSERT_EQUAL(call_status("POST", "/v1/batches/1:2:3/outcome", "nope"), 400);

    /* still serving */
    sleep_ms(100);
    CU_ASSERT_TRUE(healthy());
    CU_ASSERT_EQUAL(kill(daemon_pid, 0), 0);
}

static void test_unknown_outcome(void)
{
    struct resp r;

    CU_ASSERT_EQUAL(call("POST", "/v1/batches/1:2:3/outcome", "{\"outcome\":\"committed\"}", &r), 404);
    CU_ASSERT_TRUE(is_error_body(&r));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "1:2:3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.head, "application/json"));
    resp_free(&r);
}

static int tcp_call(const char *auth, struct resp *r)
{
    int fd = connect_tcp();
    bool ok;

    if (fd < 0)
        return -2;
    ok = send_request(fd, "GET", "/v1/health", auth, NULL, 0) && read_response(fd, r, RESPONSE_TIMEOUT_MS);
    close(fd);
    if (!r->body)
        r->body = strdup("");
    return ok ? r->status : -1;
}

static void test_tcp_token(void)
{
    struct resp r;

    memset(&r, 0, sizeof(r));
    CU_ASSERT_EQUAL(tcp_call("Authorization: Bearer " TOKEN "\r\n", &r), 200);
    resp_free(&r);
    CU_ASSERT_EQUAL(tcp_call("Authorization: Bearer " TOKEN "x\r\n", &r), 401);
    CU_ASSERT_TRUE(is_error_body(&r));
    CU_ASSERT_PTR_NOT_NULL(strcasestr(r.head, "WWW-Authenticate: Bearer"));
    resp_free(&r);
    CU_ASSERT_EQUAL(tcp_call("Authorization: Bearer wrong-token-0123456789ab\r\n", &r), 401);
    resp_free(&r);
    CU_ASSERT_EQUAL(tcp_call("", &r), 401);
    resp_free(&r);
    CU_ASSERT_EQUAL(tcp_call("Authorization: Basic dXNlcjpwYXNz\r\n", &r), 401);
    resp_free(&r);
}

/*
 * Keep-alive and independence of connections: connection A's batch blocks on
 * a target row lock; connection B's batch goes through meanwhile; then A's
 * second batch on the same connection follows its first.
 */
static void test_keepalive_and_parallel(void)
{
    struct src_tx ta, tb, ta2;
    struct resp r;
    PGconn *locker = dw_pg_cluster_connect(&target, "postgres");
    char *ca = ins(20, "\"a\"", "\"1\""), *cb = ins(21, "\"b\"", "\"1\""), *ca2 = ins(22, "\"a2\"", "\"1\"");
    char *ba, *ba2;
    int fa = connect_unix();
    int64_t t0;

    CU_ASSERT_TRUE_FATAL(fa >= 0);
    PQclear(dw_sql(locker, "BEGIN"));
    PQclear(dw_sql(locker, "INSERT INTO orders VALUES (20, 'lock', 0)"));

    src_begin(&ta);
    ba = batch_json(sysid, ta.xid, 20000, ca);
    CU_ASSERT_TRUE(send_request(fa, "POST", "/v1/batches", NULL, ba, strlen(ba)));
    sleep_ms(300);

    src_begin(&tb);
    t0 = now_ms();
    CU_ASSERT_EQUAL(post_batch(tb.xid, cb, &r), 200);
    CU_ASSERT_TRUE(now_ms() - t0 < 5000);
    resp_free(&r);

    PQclear(dw_sql(locker, "ROLLBACK"));
    CU_ASSERT_TRUE(read_response(fa, &r, RESPONSE_TIMEOUT_MS));
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);

    /* a second batch on the same keep-alive connection */
    src_begin(&ta2);
    ba2 = batch_json(sysid, ta2.xid, 20000, ca2);
    CU_ASSERT_TRUE(send_request(fa, "POST", "/v1/batches", NULL, ba2, strlen(ba2)));
    CU_ASSERT_TRUE(read_response(fa, &r, RESPONSE_TIMEOUT_MS));
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    /* and its outcome on the same connection too */
    {
        char path[256];
        const char *body = "{\"outcome\":\"committed\"}";

        src_end(&ta2, true);
        snprintf(path, sizeof(path), "/v1/batches/%s:5:%s/outcome", sysid, ta2.xid);
        CU_ASSERT_TRUE(send_request(fa, "POST", path, NULL, body, strlen(body)));
        CU_ASSERT_TRUE(read_response(fa, &r, RESPONSE_TIMEOUT_MS));
        CU_ASSERT_EQUAL(r.status, 204);
        resp_free(&r);
    }
    close(fa);

    src_end(&ta, true);
    src_end(&tb, true);
    CU_ASSERT_EQUAL(post_outcome(ta.xid, "committed"), 204);
    CU_ASSERT_EQUAL(post_outcome(tb.xid, "committed"), 204);
    CU_ASSERT_TRUE(wait_prepared_count(0, 5000));
    CU_ASSERT_STRING_EQUAL(dw_sql_value(tgt, "SELECT string_agg(status, ',' ORDER BY id) FROM orders "
                                             "WHERE id BETWEEN 20 AND 22"), "a,b,a2");
    PQfinish(locker);
    free(ca);
    free(cb);
    free(ca2);
    free(ba);
    free(ba2);
}

/*
 * Many backends at once: each worker thread keeps one connection (like a
 * hook's backend), runs source transactions that upsert a few hot rows, and
 * commits or aborts each after the verdict, sending the outcome on the same
 * connection.  Batches on the same rows wait for each other's prepared
 * transactions on the target and go on as soon as the outcome settles them.
 * Afterwards nothing is in doubt, every verdict was 200 and every hot row
 * holds the value of a committed batch.
 */
#define STRESS_THREADS 8
#define STRESS_BATCHES 25
#define STRESS_ROWS 4

struct stress_worker {
    int index;
    int failures;
    int committed;
    char last_error[512];
};

static pthread_mutex_t stress_lock = PTHREAD_MUTEX_INITIALIZER;
static char committed_values[STRESS_THREADS * STRESS_BATCHES][32];
static int ncommitted_values;

static void *stress_main(void *arg)
{
    struct stress_worker *w = arg;
    char ci[512], change[256], path[256], value[32];
    PGconn *src;
    int fd;
    unsigned seed = (unsigned) w->index * 7919u + 1u;

    dw_pg_cluster_conninfo(&source, "postgres", ci, sizeof(ci));
    src = PQconnectdb(ci);
    fd = connect_unix();
    if (PQstatus(src) != CONNECTION_OK || fd < 0) {
        w->failures++;
        snprintf(w->last_error, sizeof(w->last_error), "could not connect");
        PQfinish(src);
        return NULL;
    }
    for (int i = 0; i < STRESS_BATCHES; i++) {
        PGresult *res;
        char xid[32], *batch;
        struct resp r;
        bool commit = rand_r(&seed) % 3 != 0;
        int row = 200 + rand_r(&seed) % STRESS_ROWS;

        PQclear(PQexec(src, "BEGIN"));
        res = PQexec(src, "SELECT pg_current_xact_id()::text");
        snprintf(xid, sizeof(xid), "%s", PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "0");
        PQclear(res);
        snprintf(value, sizeof(value), "w%d-%d", w->index, i);
        snprintf(change, sizeof(change),
                 "{\"table\":\"public.orders\",\"op\":\"update\",\"old\":{\"id\":\"%d\",\"status\":\"x\","
                 "\"total\":\"1\"},\"new\":{\"id\":\"%d\",\"status\":\"%s\",\"total\":\"%d\"}}",
                 row, row, value, i);
        batch = batch_json(sysid, xid, 20000, change);
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
        if (commit) {
            pthread_mutex_lock(&stress_lock);
            snprintf(committed_values[ncommitted_values++], sizeof(committed_values[0]), "%s", value);
            pthread_mutex_unlock(&stress_lock);
            w->committed++;
        }
        snprintf(path, sizeof(path), "/v1/batches/%s:5:%s/outcome", sysid, xid);
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

static void test_parallel_backends(void)
{
    pthread_t threads[STRESS_THREADS];
    struct stress_worker workers[STRESS_THREADS];
    int committed = 0;

    memset(workers, 0, sizeof(workers));
    for (int i = 0; i < STRESS_THREADS; i++) {
        workers[i].index = i;
        pthread_create(&threads[i], NULL, stress_main, &workers[i]);
    }
    for (int i = 0; i < STRESS_THREADS; i++) {
        pthread_join(threads[i], NULL);
        if (workers[i].failures)
            fprintf(stderr, "worker %d: %d failures, last: %s\n", i, workers[i].failures, workers[i].last_error);
        CU_ASSERT_EQUAL(workers[i].failures, 0);
        committed += workers[i].committed;
    }
    CU_ASSERT_TRUE(committed > 0);
    CU_ASSERT_TRUE(wait_prepared_count(0, 10000));
    /* every hot row that exists holds a committed value */
    for (int row = 200; row < 200 + STRESS_ROWS; row++) {
        char sql[128];
        const char *v;
        bool found = false;

        snprintf(sql, sizeof(sql), "SELECT status FROM orders WHERE id = %d", row);
        v = dw_sql_value(tgt, "%s", sql);
        if (!v)
            continue;
        for (int k = 0; k < ncommitted_values && !found; k++)
            found = strcmp(committed_values[k], v) == 0;
        if (!found)
            fprintf(stderr, "row %d holds \"%s\", which no committed batch wrote\n", row, v);
        CU_ASSERT_TRUE(found);
    }
    CU_ASSERT_TRUE(healthy());
}

int main(void)
{
    CU_pSuite s;
    unsigned failed;

    dw_fixture_require();
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    s = CU_add_suite("service API", svc_suite_init, svc_suite_cleanup);
    CU_add_test(s, "routes, status, health, metrics", test_routes);
    CU_add_test(s, "commit, then outcome committed", test_commit_with_outcome);
    CU_add_test(s, "outcome aborted rolls back", test_abort_with_outcome);
    CU_add_test(s, "target rejection is 409 with SQLSTATE", test_target_rejects);
    CU_add_test(s, "map rules and sync limits are 422", test_map_rule_and_limits);
    CU_add_test(s, "bad bodies are 400/413, service survives", test_bad_bodies);
    CU_add_test(s, "unknown outcome id is 404", test_unknown_outcome);
    CU_add_test(s, "TCP needs the bearer token", test_tcp_token);
    CU_add_test(s, "keep-alive and parallel connections", test_keepalive_and_parallel);
    CU_add_test(s, "many backends in parallel on hot rows", test_parallel_backends);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
