/*
 * The harness of the dualwrited integration tests: a target cluster
 * (max_prepared_transactions = 48) and a source cluster started through the
 * fixture, a configuration and one table map in a temp folder, the built
 * dualwrited as a child process (its log in log_path), HTTP helpers on its
 * Unix socket, and source transactions whose real xids go into batches so
 * that the resolver's answers agree with the source.
 *
 * The table map "orders" maps public.orders (id, status required, total)
 * onto the target's orders (id primary key, status not null,
 * total numeric CHECK (total >= 0)) through connector "tgt", whose
 * records_per_transaction limit is 5; the resolver runs every 200 ms with a
 * grace of 1 s.  DW_TEST_WRAPPER (e.g. "valgrind --error-exitcode=99") runs
 * the daemon under a tool; DW_TEST_KEEP_LOG=1 prints its log at the end.
 */
#ifndef SVC_HARNESS_H
#define SVC_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "tests/fixtures/dw_fixture.h"
#include "tests/integration/svc_client.h"

#define TOKEN "test-token-0123456789abcdef"
#define MAX_BODY 1048576
#define RESPONSE_TIMEOUT_MS 30000

extern struct dw_pg_cluster target, source;
extern PGconn *tgt;              /* the test's own connection to the target */
extern char sysid[32];           /* the source's system identifier */
extern char dir[256];
extern char cfg_path[400], sock_path[400], log_path[400], maps_dir[400];
extern char target_ci[512], source_ci[512];
extern char daemon_bin[512];
extern int tcp_port;
extern pid_t daemon_pid;
extern const char orders_map[];

/* CUnit suite init/cleanup: clusters, files, daemon up and healthy / daemon stopped with exit 0. */
int svc_suite_init(void);
int svc_suite_cleanup(void);

int64_t now_ms(void);
void sleep_ms(int ms);
bool log_contains(const char *needle);
bool wait_for_log(const char *needle, int timeout_ms);

/* HTTP on the daemon's sockets. */
int connect_unix(void);
int connect_tcp(void);
bool read_response(int fd, struct resp *r, int timeout_ms);
bool send_request(int fd, const char *method, const char *path, const char *headers, const char *body,
                  size_t len);
bool send_all(int fd, const void *data, size_t n);
/* One request on a fresh Unix-socket connection; the status, -1 on failure. */
int call(const char *method, const char *path, const char *body, struct resp *r);
int call_status(const char *method, const char *path, const char *body);
/* {"status": ..., "message": ...} */
bool is_error_body(const struct resp *r);

/* A source transaction kept open, as the hook's backend would. */
struct src_tx {
    PGconn *conn;
    char xid[32];
};
void src_begin(struct src_tx *t);
void src_end(struct src_tx *t, bool commit);

/* Batch JSON (malloc'd) with id "<system>:5:<xid>"; changes is the inside of the array. */
char *batch_json(const char *system, const char *xid, long deadline_ms, const char *changes);
/* An insert into public.orders; status and total are JSON literals. */
char *ins(int id, const char *status, const char *total);
int post_batch(const char *xid, const char *changes, struct resp *r);
int post_outcome(const char *xid, const char *outcome);

long target_long(const char *fmt, int arg);
long prepared_count(void);                    /* dw: gids on the target */
long order_rows(int id);
bool wait_prepared_count(long n, int timeout_ms);
bool wait_in_doubt_empty(int timeout_ms);      /* /v1/status lists nothing in doubt */

/* The daemon. */
bool healthy(void);
pid_t spawn(const char *const *args);         /* dualwrited ARGS, output appended to log_path */
int wait_exit(pid_t pid, int timeout_ms);     /* exit code, 128+signal, or -1 at the timeout */
bool start_daemon(void);                      /* with cfg_path; waits until healthy */
int stop_daemon(int sig);
void write_config(const char *path, const char *maps, const char *sock, long records_limit);

#endif
