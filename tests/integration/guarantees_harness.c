/*
 * The harness of the guarantee tests (see guarantees_harness.h): set-up in
 * the order of tools/demo/run, the service as a child process, query helpers
 * that tolerate crashed servers, and the source/target comparison that every
 * test ends with.
 */
#include "tests/integration/guarantees_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/svc_client.h"

struct dw_pg_cluster gh_source, gh_target;
char gh_dir[256];
char gh_cfg_path[400], gh_sock_path[400], gh_log_path[400], gh_maps_dir[400];
char gh_source_ci[256], gh_target_ci[256];
pid_t gh_service_pid = -1;

static char service_bin[512], dwctl_bin[512];
static PGconn *tgt;

/* The example maps, copied so that the reload test may change them. */
static const char *const example_maps[] = {"companies", "customers", "orders", "order_lines"};

/*
 * What "identical" means: per table, the source's rows mapped as the example
 * maps map them (filter, value maps, constants), and the target's rows.
 */
static const struct {
    const char *name, *source_sql, *target_sql;
} compared[] = {
    {"companies", "SELECT id, name, currency FROM companies ORDER BY id",
     "SELECT id, name, currency FROM companies ORDER BY id"},
    {"customers",
     "SELECT id, company, name, CASE status WHEN 'blocked' THEN 1 ELSE 0 END, 'erp' FROM customers "
     "WHERE company IN ('usmf', 'usrt') ORDER BY id",
     "SELECT id, company, name, state, origin_system FROM customers ORDER BY id"},
    {"orders",
     "SELECT id, customer_id, CASE status WHEN 'draft' THEN 'open' WHEN 'confirmed' THEN 'open' "
     "WHEN 'shipped' THEN 'closed' WHEN 'cancelled' THEN 'cancelled' END, total FROM orders ORDER BY id",
     "SELECT id, customer_id, status, total FROM orders ORDER BY id"},
    {"order_lines", "SELECT order_id, line, item, qty, price FROM order_lines ORDER BY order_id, line",
     "SELECT order_id, line, item, qty, price FROM order_lines ORDER BY order_id, line"},
};

/* ------------------------------------------------------------ small helpers */

int64_t gh_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void gh_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}



/* ------------------------------------------------------------ queries */

static struct gh_res run(PGconn *c, const char *sql)
{
    struct gh_res out;
    PGresult *r;
    const char *v;

    memset(&out, 0, sizeof(out));
    if (!c) {
        snprintf(out.msg, sizeof(out.msg), "no connection");
        return out;
    }
    r = PQexec(c, sql);
    out.ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!out.ok) {
        v = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(out.state, sizeof(out.state), "%s", v ? v : "");
        v = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        snprintf(out.msg, sizeof(out.msg), "%s", v ? v : PQerrorMessage(c));
        v = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
        snprintf(out.detail, sizeof(out.detail), "%s", v ? v : "");
    }
    PQclear(r);
    return out;
}

struct gh_res gh_q(PGconn *c, const char *fmt, ...)
{
    char *sql = NULL;
    va_list ap;
    struct gh_res out;

    va_start(ap, fmt);
    if (vasprintf(&sql, fmt, ap) < 0)
        exit(1);
    va_end(ap);
    out = run(c, sql);
    free(sql);
    return out;
}

static long long_of(PGconn *c, const char *sql)
{
    PGresult *r;
    long v = -1;

    if (!c)
        return -1;
    r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

long gh_long(PGconn *c, const char *fmt, ...)
{
    char *sql = NULL;
    va_list ap;
    long v;

    va_start(ap, fmt);
    if (vasprintf(&sql, fmt, ap) < 0)
        exit(1);
    va_end(ap);
    v = long_of(c, sql);
    free(sql);
    return v;
}

/* A connection that answers "SELECT 1", or NULL. */
static PGconn *try_connect(const char *ci)
{
    PGconn *c = PQconnectdb(ci);

    if (PQstatus(c) == CONNECTION_OK && long_of(c, "SELECT 1") == 1)
        return c;
    PQfinish(c);
    return NULL;
}

PGconn *gh_source_connect(void)
{
    int64_t end = gh_now_ms() + GH_RECOVERY_MS;

    for (;;) {
        PGconn *c = try_connect(gh_source_ci);

        if (c)
            return c;
        if (gh_now_ms() > end) {
            fprintf(stderr, "the source did not accept connections within %d ms\n", GH_RECOVERY_MS);
            return NULL;
        }
        gh_sleep_ms(100);
    }
}

void gh_tgt_drop(void)
{
    if (tgt)
        PQfinish(tgt);
    tgt = NULL;
}

PGconn *gh_tgt(void)
{
    if (tgt && PQstatus(tgt) == CONNECTION_OK && PQtransactionStatus(tgt) == PQTRANS_IDLE)
        return tgt;
    gh_tgt_drop();
    tgt = try_connect(gh_target_ci);
    return tgt;
}

bool gh_target_wait_up(int timeout_ms)
{
    int64_t end = gh_now_ms() + timeout_ms;

    gh_tgt_drop();
    while (!gh_tgt()) {
        if (gh_now_ms() > end)
            return false;
        gh_sleep_ms(100);
    }
    return true;
}

long gh_prepared_count(void)
{
    long n = long_of(gh_tgt(), "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'dw:%'");

    if (n < 0)
        gh_tgt_drop();   /* a broken connection: fresh next time */
    return n;
}

bool gh_wait_prepared(long n, int timeout_ms)
{
    int64_t end = gh_now_ms() + timeout_ms;

    while (gh_prepared_count() != n) {
        if (gh_now_ms() > end)
            return false;
        gh_sleep_ms(50);
    }
    return true;
}

long gh_target_count(const char *fmt, ...)
{
    char *where = NULL, *sql = NULL;
    va_list ap;
    long v;

    va_start(ap, fmt);
    if (vasprintf(&where, fmt, ap) < 0)
        exit(1);
    va_end(ap);
    if (asprintf(&sql, "SELECT count(*) FROM %s", where) < 0)
        exit(1);
    v = long_of(gh_tgt(), sql);
    free(where);
    free(sql);
    return v;
}

/* ------------------------------------------------------------ comparison */

/* Every row as one "a|b|c" line, NULL as \N; NULL on a failed query. */
static char **dump(PGconn *c, const char *sql, int *nrows)
{
    PGresult *r = PQexec(c, sql);
    char **rows;
    int n, nf;

    *nrows = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "    dump failed: %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        return NULL;
    }
    n = PQntuples(r);
    nf = PQnfields(r);
    rows = calloc((size_t) n + 1, sizeof(*rows));
    for (int i = 0; i < n; i++) {
        size_t len = 1;
        char *line;

        for (int f = 0; f < nf; f++)
            len += (size_t) PQgetlength(r, i, f) + 3;
        line = malloc(len);
        line[0] = '\0';
        for (int f = 0; f < nf; f++) {
            if (f)
                strcat(line, "|");
            strcat(line, PQgetisnull(r, i, f) ? "\\N" : PQgetvalue(r, i, f));
        }
        rows[i] = line;
    }
    PQclear(r);
    *nrows = n;
    return rows;
}

static void free_rows(char **rows, int n)
{
    for (int i = 0; rows && i < n; i++)
        free(rows[i]);
    free(rows);
}

static bool contains(char **rows, int n, const char *line)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(rows[i], line) == 0)
            return true;
    }
    return false;
}

/* Both sides of one table: true when identical, else the differences on stderr. */
static bool compare_one(PGconn *src, PGconn *dst, const char *name, const char *ssql, const char *tsql)
{
    int ns, nt, shown = 0;
    char **s = dump(src, ssql, &ns), **t = dump(dst, tsql, &nt);
    bool same = s && t && ns == nt;

    for (int i = 0; same && i < ns; i++)
        same = strcmp(s[i], t[i]) == 0;
    if (!same && s && t) {
        fprintf(stderr, "\n    table %s differs: %d rows on the source, %d on the target\n", name, ns, nt);
        for (int i = 0; i < ns && shown < 15; i++) {
            if (!contains(t, nt, s[i])) {
                fprintf(stderr, "      only on the source: %s\n", s[i]);
                shown++;
            }
        }
        for (int i = 0; i < nt && shown < 30; i++) {
            if (!contains(s, ns, t[i])) {
                fprintf(stderr, "      only on the target: %s\n", t[i]);
                shown++;
            }
        }
    }
    free_rows(s, ns);
    free_rows(t, nt);
    return same;
}

bool gh_tables_equal(void)
{
    PGconn *src = gh_source_connect(), *dst = gh_tgt();
    bool same = src && dst;

    for (size_t i = 0; same && i < sizeof(compared) / sizeof(compared[0]); i++)
        same = compare_one(src, dst, compared[i].name, compared[i].source_sql, compared[i].target_sql);
    /* the reload test's table, once it exists on both sides */
    if (same && long_of(src, "SELECT count(*) FROM pg_class WHERE relname = 'notes'") == 1 &&
        long_of(dst, "SELECT count(*) FROM pg_class WHERE relname = 'notes'") == 1)
        same = compare_one(src, dst, "notes", "SELECT id, body FROM notes ORDER BY id",
                           "SELECT id, body FROM notes ORDER BY id");
    PQfinish(src);
    return same;
}

bool gh_consistent(void)
{
    if (!gh_wait_prepared(0, GH_SETTLE_MS)) {
        fprintf(stderr, "\n    %ld dw: transactions still prepared on the target after %d ms\n",
                gh_prepared_count(), GH_SETTLE_MS);
        return false;
    }
    return gh_tables_equal();
}

/* ------------------------------------------------------------ the service */

int gh_service_get(const char *path, char **body)
{
    struct resp r;
    int fd = svc_connect_unix(gh_sock_path);
    bool ok;

    *body = NULL;
    if (fd < 0)
        return -1;
    memset(&r, 0, sizeof(r));
    ok = svc_send_request(fd, "GET", path, "Connection: close\r\n", NULL, 0) &&
         svc_read_response(fd, &r, 30000);
    close(fd);
    if (!ok) {
        resp_free(&r);
        return -1;
    }
    *body = r.body;
    return r.status;
}

bool gh_service_healthy(void)
{
    char *body;
    int st = gh_service_get("/v1/health", &body);

    free(body);
    return st == 200;
}

bool gh_log_contains(const char *needle)
{
    char *text = dw_fixture_read_file(gh_log_path);
    bool found = strstr(text, needle) != NULL;

    free(text);
    return found;
}

bool gh_wait_for_log(const char *needle, int timeout_ms)
{
    int64_t end = gh_now_ms() + timeout_ms;

    while (!gh_log_contains(needle)) {
        if (gh_now_ms() > end)
            return false;
        gh_sleep_ms(50);
    }
    return true;
}

static int wait_child(pid_t pid, int timeout_ms)
{
    int64_t end = gh_now_ms() + timeout_ms;
    int status;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0 || gh_now_ms() > end)
            return -1;
        gh_sleep_ms(20);
    }
}

bool gh_service_start(const char *fault)
{
    int64_t end = gh_now_ms() + 60000;
    pid_t pid = fork();

    if (pid < 0)
        return false;
    if (pid == 0) {
        int fd = open(gh_log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        if (fault)
            setenv("DW_FAULT", fault, 1);
        else
            unsetenv("DW_FAULT");
        execl(service_bin, service_bin, "-c", gh_cfg_path, (char *) NULL);
        perror("execl");
        _exit(127);
    }
    gh_service_pid = pid;
    dw_fixture_track_pid(pid);
    while (!gh_service_healthy()) {
        if (waitpid(pid, NULL, WNOHANG) == pid || gh_now_ms() > end) {
            fprintf(stderr, "dualwrited did not become healthy; see %s\n", gh_log_path);
            gh_service_pid = -1;
            return false;
        }
        gh_sleep_ms(50);
    }
    return true;
}

int gh_service_stop(int sig)
{
    int rc;

    if (gh_service_pid <= 0)
        return -1;
    kill(gh_service_pid, sig);
    rc = wait_child(gh_service_pid, 60000);
    gh_service_pid = -1;
    return rc;
}

int gh_service_wait_exit(int timeout_ms)
{
    int rc;

    if (gh_service_pid <= 0)
        return -1;
    rc = wait_child(gh_service_pid, timeout_ms);
    if (rc >= 0)
        gh_service_pid = -1;
    return rc;
}

int gh_dwctl(const char *args)
{
    char cmd[1600];
    int rc;

    snprintf(cmd, sizeof(cmd), "'%s' -c '%s' %s >>'%s/dwctl.out' 2>&1", dwctl_bin, gh_cfg_path, args, gh_dir);
    rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* ------------------------------------------------------------ set-up */

static bool run_sql_file(PGconn *c, const char *path)
{
    char *sql = dw_fixture_read_file(path);
    struct gh_res r = sql[0] ? run(c, sql) : (struct gh_res){.ok = false};

    if (!r.ok)
        fprintf(stderr, "%s: %s\n", path, sql[0] ? r.msg : "missing or empty");
    free(sql);
    return r.ok;
}

static bool copy_maps(const char *root)
{
    for (size_t i = 0; i < sizeof(example_maps) / sizeof(example_maps[0]); i++) {
        char from[600], to[600], *text;

        snprintf(from, sizeof(from), "%s/maps/examples/%s.json", root, example_maps[i]);
        snprintf(to, sizeof(to), "%s/%s.json", gh_maps_dir, example_maps[i]);
        text = dw_fixture_read_file(from);
        if (!text[0]) {
            fprintf(stderr, "no table map %s\n", from);
            free(text);
            return false;
        }
        dw_fixture_write_file(to, "%s", text);
        free(text);
    }
    return true;
}

bool gh_setup(void)
{
    const char *src_root = getenv("DW_SOURCE_ROOT"), *build = getenv("DW_BUILD_ROOT");
    const char *tconf[] = {"max_prepared_transactions = 64", NULL};
    const char *sconf[4];
    char bridge_line[500], path[600];
    PGconn *c;
    bool ok;

    dw_fixture_require();
    if (!src_root || !build) {
        fprintf(stderr, "DW_SOURCE_ROOT and DW_BUILD_ROOT must be set\n");
        return false;
    }
    snprintf(service_bin, sizeof(service_bin), "%s/bridge/service/dualwrited", build);
    snprintf(dwctl_bin, sizeof(dwctl_bin), "%s/tools/dwctl/dwctl", build);
    if (access(service_bin, X_OK) != 0 || access(dwctl_bin, X_OK) != 0) {
        fprintf(stderr, "SKIP: dualwrited or dwctl has not been built\n");
        exit(77);
    }
    snprintf(gh_dir, sizeof(gh_dir), "%s", dw_fixture_tmpdir());
    snprintf(gh_cfg_path, sizeof(gh_cfg_path), "%s/dualwrite.json", gh_dir);
    snprintf(gh_sock_path, sizeof(gh_sock_path), "%s/bridge.sock", gh_dir);
    snprintf(gh_log_path, sizeof(gh_log_path), "%s/dualwrited.log", gh_dir);
    snprintf(gh_maps_dir, sizeof(gh_maps_dir), "%s/maps", gh_dir);
    if (mkdir(gh_maps_dir, 0755) != 0 && errno != EEXIST)
        return false;

    snprintf(bridge_line, sizeof(bridge_line), "dualwrite.bridge = '%s'", gh_sock_path);
    sconf[0] = "shared_preload_libraries = 'dualwrite'";
    sconf[1] = bridge_line;
    sconf[2] = "dualwrite.commit_timeout = '20s'";
    sconf[3] = NULL;
    if (!dw_pg_cluster_start(&gh_target, tconf, false) || !dw_pg_cluster_start(&gh_source, sconf, true))
        return false;
    dw_pg_cluster_conninfo(&gh_source, "postgres", gh_source_ci, sizeof(gh_source_ci));
    dw_pg_cluster_conninfo(&gh_target, "postgres", gh_target_ci, sizeof(gh_target_ci));

    c = gh_source_connect();
    snprintf(path, sizeof(path), "%s/tools/demo/source.sql", src_root);
    ok = c && run(c, "SET client_min_messages = warning").ok && run_sql_file(c, path);
    PQfinish(c);
    snprintf(path, sizeof(path), "%s/tools/demo/target.sql", src_root);
    ok = ok && gh_tgt() && run_sql_file(gh_tgt(), path);
    if (!ok || !copy_maps(src_root))
        return false;

    dw_fixture_write_file(gh_cfg_path,
                  "{\"listen\": {\"unix\": \"%s\", \"group\": \"postgres\"},\n"
                  " \"source\": {\"conninfo\": \"%s\"},\n"
                  " \"maps\": \"maps\",\n"
                  " \"connectors\": {\"target\": {\"type\": \"pg\", \"commit\": \"two-phase\",\n"
                  "     \"conninfo\": \"%s\", \"pool_size\": 12, \"timeout_ms\": 20000,\n"
                  "     \"limits\": {\"requests_per_window\": 0, \"execution_s_per_window\": 0}}},\n"
                  " \"resolver\": {\"interval_ms\": 100, \"grace_ms\": 500},\n"
                  " \"log_level\": \"info\"}\n",
                  gh_sock_path, gh_source_ci, gh_target_ci);
    if (gh_dwctl("hooks install") != 0) {
        char *out;

        snprintf(path, sizeof(path), "%s/dwctl.out", gh_dir);
        out = dw_fixture_read_file(path);
        fprintf(stderr, "dwctl hooks install failed:\n%s\n", out);
        free(out);
        return false;
    }
    if (!gh_service_start(NULL))
        return false;

    /* Reference data, through the bridge like everything else. */
    c = gh_source_connect();
    ok = c && run(c, "INSERT INTO companies VALUES ('usmf', 'Contoso US', 'USD'), "
                     "('usrt', 'Contoso Retail', 'USD'), ('demf', 'Contoso DE', 'EUR')").ok &&
         run(c, "INSERT INTO customers (id, company, name, status) VALUES (1, 'usmf', 'Alpine Ski', 'active'), "
                "(2, 'usrt', 'Bike World', 'blocked'), (3, 'demf', 'Berlin GmbH', 'active'), "
                "(4, 'usmf', 'Coho Winery', 'active')").ok &&
         run(c, "INSERT INTO orders (id, customer_id, status, total) "
                "SELECT g, 1 + g % 2, 'draft', 100 FROM generate_series(1, 4) g").ok;
    PQfinish(c);
    if (!ok) {
        fprintf(stderr, "could not load the reference data\n");
        return false;
    }
    return gh_consistent();
}

void gh_teardown(void)
{
    int rc = gh_service_stop(SIGTERM);

    if (rc != 0 && rc != -1)
        fprintf(stderr, "dualwrited exited with %d at the end\n", rc);
    if (getenv("DW_TEST_KEEP_LOG")) {
        char *text = dw_fixture_read_file(gh_log_path);

        fprintf(stderr, "---- dualwrited log ----\n%s\n", text);
        free(text);
    }
    gh_tgt_drop();
    dw_pg_cluster_stop(&gh_source);
    dw_pg_cluster_stop(&gh_target);
}
