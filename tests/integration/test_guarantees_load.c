/*
 * The guarantees under operations and load, end to end:
 *   h. SIGHUP with a broken configuration, then a broken map: live sync goes
 *      on under the old maps; SIGHUP with a fixed one applies the new maps;
 *   f. 8 concurrent source sessions for 30 s (own libpq connections, one
 *      thread each): conflicting updates of a small hot set of orders,
 *      inserts, deletes and key updates of orders and their lines, filter
 *      transitions, savepoints, deliberate rollbacks, transactions the target
 *      rejects (its CHECK total >= 0) and ones the bridge rejects (a value
 *      with no entry in the map); afterwards both sides are identical (G1-G3,
 *      G7);
 *   g. SIGTERM to dualwrited while sessions commit: it drains and exits 0;
 *      every transaction whose COMMIT succeeded is on the target, none whose
 *      COMMIT failed is, and after a restart nothing is in doubt.
 * CUnit is not thread-safe: the threads count, the main thread asserts.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <libpq-fe.h>

#include "tests/integration/guarantees_harness.h"
#include "tests/integration/test_guarantees.h"
#include "tests/unit/common/dw_cunit.h"

#define SESSIONS 8
#define LOAD_MS 30000
#define HOT_ROWS 4          /* orders 1..4, created by the harness */
#define DW_XSTR(x) #x
#define DW_STR(x) DW_XSTR(x)

/* ------------------------------------------------------------ h. reload */

static long generation(void)
{
    char *body;
    long g = -1;

    if (gh_service_get("/v1/status", &body) == 200) {
        const char *p = strstr(body, "\"generation\":");

        if (p)
            g = strtol(p + 13, NULL, 10);
    }
    free(body);
    return g;
}

static int log_count(const char *needle)
{
    char *text = dw_fixture_read_file(gh_log_path);
    int n = 0;

    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    free(text);
    return n;
}

static bool wait_log_count(const char *needle, int n, int timeout_ms)
{
    int64_t end = gh_now_ms() + timeout_ms;

    while (log_count(needle) < n) {
        if (gh_now_ms() > end)
            return false;
        gh_sleep_ms(50);
    }
    return true;
}

static void write_notes_map(const char *body_target)
{
    char path[600];

    snprintf(path, sizeof(path), "%s/notes.json", gh_maps_dir);
    dw_fixture_write_file(path,
                  "{\"map\": \"notes\",\n"
                  " \"source\": {\"table\": \"public.notes\", \"key\": [\"id\"]},\n"
                  " \"target\": {\"connector\": \"target\", \"table\": \"notes\", \"key\": [\"id\"]},\n"
                  " \"fields\": [{\"source\": \"id\", \"target\": \"id\"},\n"
                  "            {\"source\": \"body\", \"target\": \"%s\", \"required\": true}]}\n",
                  body_target);
}

static void test_reload(void)
{
    char *good = dw_fixture_read_file(gh_cfg_path);
    long gen = generation();
    int refused = log_count("reload refused");
    PGconn *c = gh_source_connect();
    struct gh_res r;
    int64_t end;

    CU_ASSERT_FATAL(c != NULL && gen > 0);
    CU_ASSERT_FATAL(gh_q(c, "CREATE TABLE notes (id int PRIMARY KEY, body text, secret text)").ok);
    CU_ASSERT_FATAL(gh_q(gh_tgt(), "CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)").ok);
    /* captured, but no map covers it yet */
    CU_ASSERT_FATAL(gh_q(c, "CREATE TRIGGER dualwrite_capture AFTER INSERT OR UPDATE OR DELETE ON notes "
                            "FOR EACH ROW EXECUTE FUNCTION dualwrite.capture('notes', 'id', 'body')").ok);
    r = gh_q(c, "INSERT INTO notes VALUES (1, 'hello', 'x')");
    CU_ASSERT_FALSE(r.ok);
    DW_ASSERT_STREQ(r.state, "YW003");

    /* 1. not JSON: refused, the old configuration keeps syncing */
    dw_fixture_write_file(gh_cfg_path, "{\"listen\": ");
    kill(gh_service_pid, SIGHUP);
    CU_ASSERT_TRUE(wait_log_count("reload refused", refused + 1, 10000));
    CU_ASSERT_EQUAL(generation(), gen);
    CU_ASSERT(gh_q(c, "INSERT INTO orders (id, customer_id, status, total) VALUES (301, 1, 'draft', 3)").ok);
    CU_ASSERT_TRUE(gh_service_healthy());

    /* 2. valid JSON, a new map naming a missing target column: refused as a whole */
    dw_fixture_write_file(gh_cfg_path, "%s", good);
    write_notes_map("no_such_column");
    kill(gh_service_pid, SIGHUP);
    CU_ASSERT_TRUE(wait_log_count("reload refused", refused + 2, 10000));
    CU_ASSERT_TRUE(gh_log_contains("no_such_column"));
    CU_ASSERT_EQUAL(generation(), gen);
    CU_ASSERT(gh_q(c, "UPDATE orders SET status = 'confirmed' WHERE id = 301").ok);
    r = gh_q(c, "INSERT INTO notes VALUES (1, 'hello', 'x')");
    DW_ASSERT_STREQ(r.state, "YW003");

    /* 3. fixed: the new map is in force, the triggers follow the maps */
    write_notes_map("body");
    kill(gh_service_pid, SIGHUP);
    end = gh_now_ms() + 10000;
    while (generation() <= gen && gh_now_ms() < end)
        gh_sleep_ms(50);
    CU_ASSERT_TRUE(generation() > gen);
    CU_ASSERT_EQUAL(gh_dwctl("hooks install"), 0);
    r = gh_q(c, "INSERT INTO notes VALUES (1, 'hello', 'never leaves the source'), (2, 'world', NULL)");
    CU_ASSERT_TRUE(r.ok);
    CU_ASSERT(gh_q(c, "UPDATE orders SET total = 4 WHERE id = 301").ok);
    PQfinish(c);
    CU_ASSERT_TRUE(gh_consistent());
    CU_ASSERT_EQUAL(gh_target_count("notes WHERE id IN (1, 2)"), 2);
    CU_ASSERT_EQUAL(gh_target_count("orders WHERE id = %d AND status = 'open' AND total = 4", 301), 1);
    free(good);
}

/* ------------------------------------------------------------ i. order within a session */

/*
 * G3: each transaction deletes the row the one before it inserted, in the
 * same session and then in another one.  Outcomes are applied in the
 * background, and here each COMMIT PREPARED is held back 300 ms (fault
 * point): were the DELETE's batch run on the target before the INSERT's
 * COMMIT PREPARED, it would find nothing (a prepared insert is invisible and
 * nothing waits for it), and the row would then appear on the target
 * although the source deleted it.
 */
static void test_session_order(void)
{
    PGconn *c, *other;

    CU_ASSERT_EQUAL_FATAL(gh_service_stop(SIGTERM), 0);
    CU_ASSERT_TRUE_FATAL(gh_service_start("delay-settle:300"));
    c = gh_source_connect();
    CU_ASSERT_FATAL(c != NULL);
    for (int i = 0; i < 5; i++) {
        int id = 900 + i;

        CU_ASSERT(gh_q(c, "INSERT INTO orders (id, customer_id, status, total) VALUES (%d, 1, 'draft', 9)", id).ok);
        CU_ASSERT(gh_q(c, "DELETE FROM orders WHERE id = %d", id).ok);
    }
    /* and an update of a row inserted by the transaction before */
    CU_ASSERT(gh_q(c, "INSERT INTO orders (id, customer_id, status, total) VALUES (910, 1, 'draft', 9)").ok);
    CU_ASSERT(gh_q(c, "UPDATE orders SET status = 'shipped' WHERE id = 910").ok);
    /* another session deletes what this one has just inserted */
    other = gh_source_connect();
    CU_ASSERT_FATAL(other != NULL);
    for (int i = 0; i < 3; i++) {
        int id = 920 + i;

        CU_ASSERT(gh_q(c, "INSERT INTO orders (id, customer_id, status, total) VALUES (%d, 1, 'draft', 9)", id).ok);
        CU_ASSERT(gh_q(other, "DELETE FROM orders WHERE id = %d", id).ok);
    }
    PQfinish(other);
    PQfinish(c);
    CU_ASSERT_TRUE(gh_consistent());
    CU_ASSERT_EQUAL(gh_target_count("orders WHERE id BETWEEN 900 AND 904"), 0);
    CU_ASSERT_EQUAL(gh_target_count("orders WHERE id BETWEEN 920 AND 922"), 0);
    CU_ASSERT_EQUAL(gh_target_count("orders WHERE id = %d AND status = 'closed'", 910), 1);
    CU_ASSERT_EQUAL_FATAL(gh_service_stop(SIGTERM), 0);
    CU_ASSERT_TRUE_FATAL(gh_service_start(NULL));
}

/* ------------------------------------------------------------ f. concurrency */

struct worker {
    pthread_t thread;
    int no;
    unsigned seed;
    PGconn *c;
    int64_t end_ms;
    int base, next;                 /* this session's own order ids: base .. base+next-1 */
    long committed, rolled_back, target_rejected, bridge_rejected, source_conflicts, unexpected;
    char unexpected_msg[2100];
};

static int rnd(struct worker *w, int n)
{
    return (int) (rand_r(&w->seed) % (unsigned) n);
}

static int own_order(struct worker *w)
{
    return w->next ? w->base + rnd(w, w->next) : w->base;
}

static void classify(struct worker *w, const struct gh_res *r)
{
    if (strcmp(r->state, "23514") == 0) {
        w->target_rejected++;   /* only the target has that CHECK */
    } else if (strcmp(r->state, "YW003") == 0) {
        w->bridge_rejected++;
    } else if (strcmp(r->state, "40P01") == 0 || strcmp(r->state, "23505") == 0 ||
               strcmp(r->state, "23503") == 0) {
        w->source_conflicts++;  /* decided by the source before the bridge is asked */
    } else {
        if (!w->unexpected++)
            snprintf(w->unexpected_msg, sizeof(w->unexpected_msg), "%s: %s %s", r->state, r->msg, r->detail);
    }
}

/* BEGIN; statements; COMMIT (or ROLLBACK when rollback is set). */
static void txn(struct worker *w, bool rollback, int n, char stmts[][400])
{
    struct gh_res r = gh_q(w->c, "BEGIN");

    for (int i = 0; r.ok && i < n; i++)
        r = gh_q(w->c, "%s", stmts[i]);
    if (!r.ok) {
        classify(w, &r);
        gh_q(w->c, "ROLLBACK");
        return;
    }
    if (rollback) {
        if (gh_q(w->c, "ROLLBACK").ok)
            w->rolled_back++;
        return;
    }
    r = gh_q(w->c, "COMMIT");
    if (r.ok)
        w->committed++;
    else
        classify(w, &r);
}

static const char *const statuses[] = {"draft", "confirmed", "shipped", "cancelled"};

static void one_transaction(struct worker *w)
{
    char s[4][400];
    int op = rnd(w, 100), id, h1, h2;

    if (op < 30) {
        /*
         * The hot set: two rows, locked in key order as applications do (in
         * random order, the source's deadlock detector would stall every
         * session for deadlock_timeout again and again).
         */
        h1 = 1 + rnd(w, HOT_ROWS);
        h2 = h1 + rnd(w, HOT_ROWS - h1 + 1);
        snprintf(s[0], sizeof(s[0]), "UPDATE orders SET total = total + %d WHERE id = %d", rnd(w, 8) - 3, h1);
        snprintf(s[1], sizeof(s[1]), "UPDATE orders SET total = total + %d, status = '%s' WHERE id = %d",
                 rnd(w, 8) - 3, statuses[rnd(w, 4)], h2);
        txn(w, false, 2, s);
    } else if (op < 50) {
        id = w->base + w->next++;
        snprintf(s[0], sizeof(s[0]), "INSERT INTO orders (id, customer_id, status, total) "
                                     "VALUES (%d, %d, 'draft', %d.%02d)", id, 1 + rnd(w, 4), rnd(w, 500), rnd(w, 100));
        snprintf(s[1], sizeof(s[1]), "INSERT INTO order_lines SELECT %d, g, 'item-' || g, %d, g * 1.5 "
                                     "FROM generate_series(1, %d) g", id, 1 + rnd(w, 9), 1 + rnd(w, 3));
        txn(w, false, 2, s);
    } else if (op < 60) {
        id = own_order(w);
        snprintf(s[0], sizeof(s[0]), "UPDATE orders SET status = '%s', total = total + 1, note = 'n%d' "
                                     "WHERE id = %d", statuses[rnd(w, 4)], rnd(w, 100), id);
        snprintf(s[1], sizeof(s[1]), "UPDATE order_lines SET qty = qty + 1, price = NULL WHERE order_id = %d "
                                     "AND line = 1", id);
        txn(w, false, 2, s);
    } else if (op < 68) {
        id = own_order(w);
        snprintf(s[0], sizeof(s[0]), "UPDATE order_lines SET line = line + 10 WHERE order_id = %d AND "
                                     "line = (SELECT max(line) FROM order_lines WHERE order_id = %d)", id, id);
        txn(w, false, 1, s);
    } else if (op < 75) {
        snprintf(s[0], sizeof(s[0]), "DELETE FROM orders WHERE id = %d", own_order(w));
        txn(w, false, 1, s);
    } else if (op < 82) {
        /* deliberately rolled back, after touching the hot set too */
        id = w->base + w->next++;
        snprintf(s[0], sizeof(s[0]), "INSERT INTO orders (id, customer_id, status, total) "
                                     "VALUES (%d, 1, 'draft', 1)", id);
        snprintf(s[1], sizeof(s[1]), "UPDATE orders SET total = total + 1000 WHERE id = %d", 1 + rnd(w, HOT_ROWS));
        txn(w, true, 2, s);
    } else if (op < 88) {
        /* the target's CHECK (total >= 0) rejects it; the source has no such rule */
        id = w->base + w->next++;
        snprintf(s[0], sizeof(s[0]), "INSERT INTO orders (id, customer_id, status, total) "
                                     "VALUES (%d, 2, 'draft', 5)", id);
        snprintf(s[1], sizeof(s[1]), "INSERT INTO order_lines VALUES (%d, 1, 'x', 1, 1)", id);
        snprintf(s[2], sizeof(s[2]), "UPDATE orders SET total = -5 WHERE id = %d", id);
        txn(w, false, 3, s);
    } else if (op < 92) {
        /* a rolled-back savepoint inside a committed transaction */
        id = w->base + w->next++;
        snprintf(s[0], sizeof(s[0]), "INSERT INTO orders (id, customer_id, status, total) "
                                     "VALUES (%d, 4, 'confirmed', 2)", id);
        snprintf(s[1], sizeof(s[1]), "SAVEPOINT sp");
        snprintf(s[2], sizeof(s[2]), "INSERT INTO order_lines VALUES (%d, 1, 'gone', 1, 1); "
                                     "ROLLBACK TO SAVEPOINT sp", id);
        snprintf(s[3], sizeof(s[3]), "INSERT INTO order_lines VALUES (%d, 2, 'kept', 2, 2)", id);
        txn(w, false, 4, s);
    } else if (op < 96) {
        /* filter transitions (company in or out of the map's filter) and a value map */
        snprintf(s[0], sizeof(s[0]), "UPDATE customers SET company = CASE company WHEN 'usmf' THEN 'demf' "
                                     "ELSE 'usmf' END WHERE id = %d", 3 + rnd(w, 2));
        snprintf(s[1], sizeof(s[1]), "UPDATE customers SET status = CASE status WHEN 'active' THEN 'blocked' "
                                     "ELSE 'active' END WHERE id = %d", 1 + rnd(w, 2));
        txn(w, false, 2, s);
    } else {
        /* "archived" has no entry in the orders map's values: the bridge rejects it */
        snprintf(s[0], sizeof(s[0]), "UPDATE orders SET status = 'archived' WHERE id = %d", own_order(w));
        snprintf(s[1], sizeof(s[1]), "INSERT INTO orders (id, customer_id, status, total) "
                                     "VALUES (%d, 1, 'archived', 1)", w->base + w->next++);
        txn(w, false, 2, s);
    }
}

static void *load_main(void *arg)
{
    struct worker *w = arg;

    while (gh_now_ms() < w->end_ms) {
        if (PQstatus(w->c) != CONNECTION_OK) {
            snprintf(w->unexpected_msg, sizeof(w->unexpected_msg), "connection lost: %s", PQerrorMessage(w->c));
            w->unexpected++;
            break;
        }
        one_transaction(w);
    }
    return NULL;
}

static void test_concurrency(void)
{
    static struct worker ws[SESSIONS];
    long committed = 0, rolled_back = 0, target_rejected = 0, bridge_rejected = 0, conflicts = 0,
         unexpected = 0;
    int64_t end = gh_now_ms() + LOAD_MS;

    for (int i = 0; i < SESSIONS; i++) {
        memset(&ws[i], 0, sizeof(ws[i]));
        ws[i].no = i;
        ws[i].seed = 7919u * (unsigned) (i + 1);
        ws[i].base = 10000 + i * 100000;
        ws[i].end_ms = end;
        ws[i].c = gh_source_connect();
        CU_ASSERT_FATAL(ws[i].c != NULL);
    }
    for (int i = 0; i < SESSIONS; i++)
        CU_ASSERT_FATAL(pthread_create(&ws[i].thread, NULL, load_main, &ws[i]) == 0);
    for (int i = 0; i < SESSIONS; i++) {
        pthread_join(ws[i].thread, NULL);
        PQfinish(ws[i].c);
        committed += ws[i].committed;
        rolled_back += ws[i].rolled_back;
        target_rejected += ws[i].target_rejected;
        bridge_rejected += ws[i].bridge_rejected;
        conflicts += ws[i].source_conflicts;
        unexpected += ws[i].unexpected;
        if (ws[i].unexpected)
            fprintf(stderr, "\n    session %d: %ld unexpected errors, first: %s\n", i, ws[i].unexpected,
                    ws[i].unexpected_msg);
    }
    fprintf(stderr, "\n    %d sessions, %d s: %ld committed, %ld rolled back, %ld rejected by the target, "
                    "%ld by the bridge, %ld source conflicts, %ld unexpected\n",
            SESSIONS, LOAD_MS / 1000, committed, rolled_back, target_rejected, bridge_rejected, conflicts,
            unexpected);
    CU_ASSERT_EQUAL(unexpected, 0);
    CU_ASSERT(committed > 0 && rolled_back > 0 && target_rejected > 0 && bridge_rejected > 0);
    CU_ASSERT_TRUE(gh_consistent());
}

/* ------------------------------------------------------------ g. SIGTERM */

#define STOP_IDS 20000
#define STOP_BASE 2000000
#define STOP_STRIDE 100000

struct committer {
    pthread_t thread;
    PGconn *c;
    int base, n;
    atomic_bool *stop;
    signed char result[STOP_IDS];   /* 1 committed, -1 failed */
    char state[STOP_IDS][6];
    bool present[STOP_IDS];         /* scratch: the id is on the side being checked */
    char unknown_msg[2100];         /* the first "state unknown" failure */
};

static void *commit_main(void *arg)
{
    struct committer *w = arg;

    while (!atomic_load(w->stop) && w->n < STOP_IDS) {
        struct gh_res r = gh_q(w->c, "INSERT INTO orders (id, customer_id, status, total) VALUES (%d, 1, 'draft', 1)",
                               w->base + w->n);

        w->result[w->n] = r.ok ? 1 : -1;
        snprintf(w->state[w->n], sizeof(w->state[0]), "%s", r.state);
        if (strcmp(r.state, "YW007") == 0 && !w->unknown_msg[0])
            snprintf(w->unknown_msg, sizeof(w->unknown_msg), "%s (%s)", r.msg, r.detail);
        w->n++;
        if (!r.ok)
            gh_sleep_ms(5);
    }
    return NULL;
}

/* How many ids of the sessions the side behind c disagrees on with what each COMMIT said; -1 on error. */
static long disagreements(PGconn *c, struct committer *ws)
{
    PGresult *res = PQexec(c, "SELECT id FROM orders WHERE id >= " DW_STR(STOP_BASE));
    long wrong = 0;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < SESSIONS; i++)
        memset(ws[i].present, 0, sizeof(ws[i].present));
    for (int r = 0; r < PQntuples(res); r++) {
        long id = strtol(PQgetvalue(res, r, 0), NULL, 10) - STOP_BASE;
        int i = (int) (id / STOP_STRIDE), k = (int) (id % STOP_STRIDE);

        if (i >= 0 && i < SESSIONS && k < ws[i].n)
            ws[i].present[k] = true;
        else
            wrong++;   /* a row nobody asked for */
    }
    PQclear(res);
    for (int i = 0; i < SESSIONS; i++) {
        for (int k = 0; k < ws[i].n; k++) {
            if (ws[i].present[k] != (ws[i].result[k] > 0))
                wrong++;
        }
    }
    return wrong;
}

static void test_sigterm_under_load(void)
{
    static struct committer ws[SESSIONS];
    atomic_bool stop;
    long committed = 0, failed = 0, bad_state = 0, unreachable = 0, refused = 0, unknown = 0;
    PGconn *src;
    char *body = NULL;
    int64_t end;
    int rc;

    atomic_init(&stop, false);
    for (int i = 0; i < SESSIONS; i++) {
        memset(&ws[i], 0, sizeof(ws[i]));
        ws[i].base = STOP_BASE + i * STOP_STRIDE;
        ws[i].stop = &stop;
        ws[i].c = gh_source_connect();
        CU_ASSERT_FATAL(ws[i].c != NULL);
    }
    for (int i = 0; i < SESSIONS; i++)
        CU_ASSERT_FATAL(pthread_create(&ws[i].thread, NULL, commit_main, &ws[i]) == 0);
    gh_sleep_ms(2000);
    kill(gh_service_pid, SIGTERM);
    rc = gh_service_wait_exit(60000);
    CU_ASSERT_EQUAL(rc, 0);
    gh_sleep_ms(500);   /* sessions keep trying against the stopped bridge */
    atomic_store(&stop, true);
    for (int i = 0; i < SESSIONS; i++) {
        pthread_join(ws[i].thread, NULL);
        PQfinish(ws[i].c);
        for (int k = 0; k < ws[i].n; k++) {
            if (ws[i].result[k] > 0) {
                committed++;
                continue;
            }
            failed++;
            /* the bridge stopped, refused while stopping, or the state became unknown */
            if (strcmp(ws[i].state[k], "YW001") == 0)
                unreachable++;
            else if (strcmp(ws[i].state[k], "YW005") == 0)
                refused++;
            else if (strcmp(ws[i].state[k], "YW007") == 0)
                unknown++;
            else if (!bad_state++)
                fprintf(stderr, "\n    unexpected failure: SQLSTATE %s\n", ws[i].state[k]);
        }
    }
    fprintf(stderr, "\n    SIGTERM under load: %ld committed, %ld failed (%ld bridge unreachable, %ld refused "
                    "while stopping, %ld state unknown)\n", committed, failed, unreachable, refused, unknown);
    CU_ASSERT(committed > 0 && failed > 0);
    CU_ASSERT_EQUAL(bad_state, 0);
    /* the bridge refusing while it stops is its answer to this batch, not a lost one */
    for (int i = 0; i < SESSIONS; i++) {
        if (strstr(ws[i].unknown_msg, "another batch")) {
            fprintf(stderr, "\n    session %d: %s\n", i, ws[i].unknown_msg);
            CU_FAIL("a refusal while stopping was reported as a verdict for another batch");
        }
    }

    /* the source agrees with what each COMMIT said */
    src = gh_source_connect();
    CU_ASSERT_FATAL(src != NULL);
    CU_ASSERT_EQUAL(disagreements(src, ws), 0);
    PQfinish(src);

    /* after the restart the resolver settles whatever lost its outcome, and the target agrees too */
    CU_ASSERT_TRUE_FATAL(gh_service_start(NULL));
    CU_ASSERT_TRUE(gh_consistent());
    CU_ASSERT_EQUAL(disagreements(gh_tgt(), ws), 0);
    end = gh_now_ms() + 10000;
    do {
        free(body);
        body = NULL;
        if (gh_service_get("/v1/status", &body) == 200 && strstr(body, "\"in_doubt\":[]"))
            break;
        gh_sleep_ms(100);
    } while (gh_now_ms() < end);
    CU_ASSERT_PTR_NOT_NULL(body ? strstr(body, "\"in_doubt\":[]") : NULL);
    free(body);
}

const struct dw_cunit_test gt_load_tests[] = {
    {"h. SIGHUP: a broken config keeps live sync, a fixed one applies new maps", test_reload},
    {"i. order: a delete waits for the outcome of the insert before it", test_session_order},
    {"f. 8 concurrent sessions for 30 s: both sides identical", test_concurrency},
    {"g. SIGTERM while sessions commit: nothing lost, nothing in doubt", test_sigterm_under_load},
};
const size_t gt_load_ntests = sizeof(gt_load_tests) / sizeof(gt_load_tests[0]);
