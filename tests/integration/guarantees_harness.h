/*
 * The harness of the guarantee tests (test_guarantees*.c): the whole product
 * as tools/demo/run sets it up, driven from C.  A source cluster with the
 * dualwrite extension preloaded and the demo's ERP schema
 * (tools/demo/source.sql), a target cluster with max_prepared_transactions and
 * the demo's CRM schema (tools/demo/target.sql), copies of the example table
 * maps of maps/examples, capture triggers installed by "dwctl hooks install",
 * and the real dualwrited as a child process (two-phase connector "target",
 * resolver every 100 ms with a grace of 500 ms, the per-window sync limits
 * off: the load test runs far more than Dataverse's 6000 requests in 5
 * minutes), optionally started with a service fault point (DW_FAULT).
 *
 * Every query helper here survives a server that went away (crash tests kill
 * both clusters): errors come back as results, never as an exit, and the
 * target connection is reopened on demand.  gh_consistent() is the contract
 * every test ends with: no "dw:" prepared transaction left on the target
 * (bounded polling for the resolver), and the mapped columns of every table
 * identical on both sides.  DW_TEST_KEEP_LOG=1 prints the service's log at the
 * end.
 */
#ifndef GUARANTEES_HARNESS_H
#define GUARANTEES_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "tests/fixtures/dw_fixture.h"

/* Bounds of every poll: generous, the machine is shared. */
#define GH_RECOVERY_MS 60000   /* a crashed cluster accepting connections again */
#define GH_SETTLE_MS 30000     /* the resolver settling what is in doubt */

extern struct dw_pg_cluster gh_source, gh_target;
extern char gh_dir[256];             /* the temp folder of everything */
extern char gh_cfg_path[400], gh_sock_path[400], gh_log_path[400], gh_maps_dir[400];
extern char gh_source_ci[256], gh_target_ci[256];
extern pid_t gh_service_pid;

/* The result of one statement: never exits on error. */
struct gh_res {
    bool ok;
    char state[6];                   /* SQLSTATE, "" when ok */
    char msg[1024];                  /* primary message, or libpq's when there is none */
    char detail[1024];
};

int64_t gh_now_ms(void);
void gh_sleep_ms(int ms);

/* Clusters, schemas, maps, config, triggers, service: false (message on stderr) on failure. */
bool gh_setup(void);
void gh_teardown(void);

/* Statements that may fail. */
struct gh_res gh_q(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The single value of a query as a number; -1 on error or null. */
long gh_long(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A new source connection, waiting (bounded) while the source crash-recovers; NULL at the bound. */
PGconn *gh_source_connect(void);
/* The test's own target connection, reopened after the target went away; NULL when it is down. */
PGconn *gh_tgt(void);
/* Forget the target connection (before the target is killed). */
void gh_tgt_drop(void);
/* Wait until the target accepts queries again. */
bool gh_target_wait_up(int timeout_ms);

long gh_prepared_count(void);        /* "dw:" gids on the target, -1 when it cannot say */
bool gh_wait_prepared(long n, int timeout_ms);
/* Count of rows on the target matching where (on the orders table unless the text names another). */
long gh_target_count(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* No dw: transaction prepared, and both sides' mapped columns identical. */
bool gh_consistent(void);
bool gh_tables_equal(void);

/* The service. fault: NULL, or DW_FAULT's value for this run. Waits until /v1/health answers 200. */
bool gh_service_start(const char *fault);
/* Signal it and wait: its exit code, 128+signal, or -1 at the bound. */
int gh_service_stop(int sig);
/* Wait for the service to exit by itself (a fault point): as gh_service_stop. */
int gh_service_wait_exit(int timeout_ms);
bool gh_service_healthy(void);
/* One GET on the service's socket: the status, body (malloc'd) in *body; -1 on failure. */
int gh_service_get(const char *path, char **body);
bool gh_log_contains(const char *needle);
bool gh_wait_for_log(const char *needle, int timeout_ms);
/* Run "dwctl -c CONFIG ARGS": its exit code. */
int gh_dwctl(const char *args);

#endif
