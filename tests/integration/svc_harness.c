/*
 * The harness shared by the dualwrited integration tests (see svc_harness.h).
 */
#include "tests/integration/svc_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <CUnit/Basic.h>
#include <libpq-fe.h>


struct dw_pg_cluster target, source;
PGconn *tgt;
char sysid[32];
char dir[256];
char cfg_path[400], sock_path[400], log_path[400], maps_dir[400];
char target_ci[512], source_ci[512];
char daemon_bin[512];
int tcp_port;
pid_t daemon_pid = -1;

/* ------------------------------------------------------------ small helpers */

int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}



bool log_contains(const char *needle)
{
    char *text = dw_fixture_read_file(log_path);
    bool found = strstr(text, needle) != NULL;

    free(text);
    return found;
}

bool wait_for_log(const char *needle, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    while (now_ms() < end) {
        if (log_contains(needle))
            return true;
        sleep_ms(50);
    }
    return log_contains(needle);
}

/* ------------------------------------------------------------ HTTP */

int connect_unix(void)
{
    return svc_connect_unix(sock_path);
}

int connect_tcp(void)
{
    return svc_connect_tcp(tcp_port);
}

bool read_response(int fd, struct resp *r, int timeout_ms)
{
    return svc_read_response(fd, r, timeout_ms);
}

bool send_request(int fd, const char *method, const char *path, const char *headers, const char *body,
                         size_t len)
{
    return svc_send_request(fd, method, path, headers, body, len);
}

bool send_all(int fd, const void *data, size_t n)
{
    return svc_send_all(fd, data, n);
}

/* One request on a fresh Unix-socket connection; returns the status (-1 on failure). */
int call(const char *method, const char *path, const char *body, struct resp *r)
{
    int fd = connect_unix();
    bool ok;

    if (fd < 0) {
        r->status = -1;
        r->body = strdup("");
        return -1;
    }
    ok = send_request(fd, method, path, "Connection: close\r\n", body, body ? strlen(body) : 0) &&
         read_response(fd, r, RESPONSE_TIMEOUT_MS);
    close(fd);
    if (!ok) {
        free(r->body);
        r->body = strdup("");
        r->status = -1;
    }
    return r->status;
}

int call_status(const char *method, const char *path, const char *body)
{
    struct resp r;
    int st = call(method, path, body, &r);

    resp_free(&r);
    return st;
}

/* Every error body is {"status": ..., "message": ...}. */
bool is_error_body(const struct resp *r)
{
    return r->body && strstr(r->body, "\"status\":") && strstr(r->body, "\"message\":");
}

/* ------------------------------------------------------------ batches */

void src_begin(struct src_tx *t)
{
    const char *x;

    t->conn = dw_pg_cluster_connect(&source, "postgres");
    PQclear(dw_sql(t->conn, "BEGIN"));
    x = dw_sql_value(t->conn, "SELECT pg_current_xact_id()::text");
    snprintf(t->xid, sizeof(t->xid), "%s", x ? x : "0");
}

void src_end(struct src_tx *t, bool commit)
{
    PQclear(dw_sql(t->conn, commit ? "COMMIT" : "ROLLBACK"));
    PQfinish(t->conn);
    t->conn = NULL;
}

/* A batch of the given changes (a JSON array's contents) for source transaction xid. */
char *batch_json(const char *system, const char *xid, long deadline_ms, const char *changes)
{
    static const char fmt[] =
        "{\"id\":\"%s:5:%s\",\"source\":{\"system\":\"%s\",\"database\":\"postgres\",\"xid\":\"%s\"},"
        "\"origin\":null,\"deadline_ms\":%ld,\"changes\":[%s]}";
    size_t size = strlen(changes) + 2 * strlen(system) + 2 * strlen(xid) + sizeof(fmt) + 32;
    char *out = malloc(size);

    if (!out)
        exit(1);
    snprintf(out, size, fmt, system, xid, system, xid, deadline_ms, changes);
    return out;
}

/* An insert into public.orders; status and total are JSON literals ("\"x\"" or "null"). */
char *ins(int id, const char *status, const char *total)
{
    char *s = NULL;

    if (asprintf(&s, "{\"table\":\"public.orders\",\"op\":\"insert\",\"new\":{\"id\":\"%d\",\"status\":%s,"
                     "\"total\":%s}}", id, status, total) < 0)
        exit(1);
    return s;
}

int post_batch(const char *xid, const char *changes, struct resp *r)
{
    char *b = batch_json(sysid, xid, 20000, changes);
    int st = call("POST", "/v1/batches", b, r);

    free(b);
    return st;
}

int post_outcome(const char *xid, const char *outcome)
{
    char path[256], body[64];

    snprintf(path, sizeof(path), "/v1/batches/%s:5:%s/outcome", sysid, xid);
    snprintf(body, sizeof(body), "{\"outcome\":\"%s\"}", outcome);
    return call_status("POST", path, body);
}

long target_long(const char *fmt, int arg)
{
    char sql[512];
    const char *v;

    snprintf(sql, sizeof(sql), fmt, arg);
    v = dw_sql_value(tgt, "%s", sql);
    return v ? strtol(v, NULL, 10) : -1;
}

long prepared_count(void)
{
    const char *v = dw_sql_value(tgt, "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'dw:%%'");

    return v ? strtol(v, NULL, 10) : -1;
}

long order_rows(int id)
{
    return target_long("SELECT count(*) FROM orders WHERE id = %d", id);
}

bool wait_prepared_count(long n, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    while (now_ms() < end) {
        if (prepared_count() == n)
            return true;
        sleep_ms(50);
    }
    return prepared_count() == n;
}

/* ------------------------------------------------------------ the daemon */

bool healthy(void)
{
    return call_status("GET", "/v1/health", NULL) == 200;
}

/* Fork and exec dualwrited with extra args; output appended to log_path. */
pid_t spawn(const char *const *args)
{
    pid_t pid = fork();

    if (pid == 0) {
        const char *argv[32];
        int n = 0, fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        char *wrapper = getenv("DW_TEST_WRAPPER") ? strdup(getenv("DW_TEST_WRAPPER")) : NULL;

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        for (char *tok = wrapper ? strtok(wrapper, " ") : NULL; tok && n < 16; tok = strtok(NULL, " "))
            argv[n++] = tok;
        argv[n++] = daemon_bin;
        for (; *args && n < 31; args++)
            argv[n++] = *args;
        argv[n] = NULL;
        execv(argv[0], (char *const *) argv);
        perror("execv");
        _exit(127);
    }
    return pid;
}

/* Wait for a child's exit status; -1 when it is still running at the timeout. */
int wait_exit(pid_t pid, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    int status;

    do {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        sleep_ms(20);
    } while (now_ms() < end);
    return -1;
}

bool start_daemon(void)
{
    const char *args[] = {"-c", cfg_path, "--log-level", "debug", NULL};
    int64_t end = now_ms() + 60000;

    daemon_pid = spawn(args);
    dw_fixture_track_pid(daemon_pid);
    while (now_ms() < end) {
        int status;

        if (waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
            fprintf(stderr, "dualwrited exited during start-up; log:\n");
            char *text = dw_fixture_read_file(log_path);
            fprintf(stderr, "%s\n", text);
            free(text);
            daemon_pid = -1;
            return false;
        }
        if (healthy())
            return true;
        sleep_ms(50);
    }
    return false;
}

int stop_daemon(int sig)
{
    int rc;

    if (daemon_pid <= 0)
        return -1;
    kill(daemon_pid, sig);
    rc = wait_exit(daemon_pid, 60000);
    daemon_pid = -1;
    return rc;
}

void write_config(const char *path, const char *maps, const char *sock, long records_limit)
{
    dw_fixture_write_file(path,
               "{\"listen\": {\"unix\": \"%s\", \"tcp\": \"127.0.0.1:%d\", \"token\": \"" TOKEN "\"},\n"
               " \"source\": {\"conninfo\": \"%s\", \"system\": \"%s\"},\n"
               " \"maps\": \"%s\",\n"
               " \"connectors\": {\"tgt\": {\"type\": \"pg\", \"conninfo\": \"%s\", \"commit\": \"auto\",\n"
               "      \"pool_size\": 4, \"timeout_ms\": 20000,\n"
               "      \"limits\": {\"records_per_transaction\": %ld}}},\n"
               " \"resolver\": {\"interval_ms\": 200, \"grace_ms\": 1000},\n"
               " \"limits\": {\"max_body_bytes\": %d},\n"
               " \"log_level\": \"debug\"}\n",
               sock, tcp_port, source_ci, sysid, maps, target_ci, records_limit, MAX_BODY);
}

const char orders_map[] =
    "{\"map\": \"orders\",\n"
    " \"source\": {\"table\": \"public.orders\", \"key\": [\"id\"]},\n"
    " \"target\": {\"connector\": \"tgt\", \"table\": \"orders\", \"key\": [\"id\"]},\n"
    " \"fields\": [{\"source\": \"id\", \"target\": \"id\"},\n"
    "            {\"source\": \"status\", \"target\": \"status\", \"required\": true},\n"
    "            {\"source\": \"total\", \"target\": \"total\"}]}\n";

int svc_suite_init(void)
{
    /* the sessions of a test, plus the outcomes the settler may hold back (32) */
    const char *tconf[] = {"max_prepared_transactions = 48", NULL};
    const char *root = getenv("DW_BUILD_ROOT");
    const char *v;
    char path[512];

    dw_fixture_require();
    if (!root) {
        fprintf(stderr, "DW_BUILD_ROOT is not set\n");
        return 1;
    }
    snprintf(daemon_bin, sizeof(daemon_bin), "%s/bridge/service/dualwrited", root);
    if (access(daemon_bin, X_OK) != 0) {
        fprintf(stderr, "no dualwrited at %s\n", daemon_bin);
        return 1;
    }
    if (!dw_pg_cluster_start(&target, tconf, false) || !dw_pg_cluster_start(&source, NULL, false))
        return 1;
    dw_pg_cluster_conninfo(&target, "postgres", target_ci, sizeof(target_ci));
    dw_pg_cluster_conninfo(&source, "postgres", source_ci, sizeof(source_ci));
    tgt = dw_pg_cluster_connect(&target, "postgres");
    PQclear(dw_sql(tgt, "CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, "
                        "total numeric CHECK (total >= 0))"));
    {
        PGconn *s = dw_pg_cluster_connect(&source, "postgres");

        v = dw_sql_value(s, "SELECT system_identifier::text FROM pg_control_system()");
        snprintf(sysid, sizeof(sysid), "%s", v ? v : "0");
        PQfinish(s);
    }

    snprintf(dir, sizeof(dir), "%s/svc", dw_fixture_tmpdir());
    mkdir(dir, 0755);
    snprintf(maps_dir, sizeof(maps_dir), "%s/maps", dir);
    mkdir(maps_dir, 0755);
    snprintf(path, sizeof(path), "%s/orders.json", maps_dir);
    dw_fixture_write_file(path, "%s", orders_map);
    snprintf(cfg_path, sizeof(cfg_path), "%s/dualwrite.json", dir);
    snprintf(sock_path, sizeof(sock_path), "%s/bridge.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/dualwrited.log", dir);
    tcp_port = dw_fixture_free_port();
    write_config(cfg_path, "maps", sock_path, 5);
    return start_daemon() ? 0 : 1;
}

int svc_suite_cleanup(void)
{
    int rc = stop_daemon(SIGTERM);

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


bool wait_in_doubt_empty(int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    for (;;) {
        struct resp r;
        bool empty = call("GET", "/v1/status", NULL, &r) == 200 && strstr(r.body, "\"in_doubt\":[]") != NULL;

        resp_free(&r);
        if (empty)
            return true;
        if (now_ms() >= end)
            return false;
        sleep_ms(50);
    }
}
