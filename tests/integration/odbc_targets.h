/*
 * The targets of the ODBC connector tests (test_odbc_connector.c and
 * test_odbc_connector_xa.c): an SQLite file, a MariaDB server and, when its
 * driver and PostgreSQL 15 are installed, a PostgreSQL cluster; each with the
 * same tables, its own SQL for the checks a test makes through a plain ODBC
 * connection, and the helpers that run batches the way the service does.
 */
#ifndef ODBC_TARGETS_H
#define ODBC_TARGETS_H

#include <stdbool.h>
#include <stddef.h>

#include "connectors/dw_connector.h"
#include "tests/fixtures/dw_fixture.h"
#include "tests/fixtures/dw_fixture_odbc.h"

struct target {
    const char *label;
    bool available;
    char connstr[700];
    struct dw_odbc_conn *admin;
    /* identifiers that need quoting */
    const char *quoted_table;
    const char *const *quoted_cols;
    const char *quoted_check;    /* SELECT "Name" || "select" ... */
    const char *quoted_count;
    /* what its constraint violations look like */
    const char *check_sqlstate, *check_message;
    const char *unique_sqlstate, *unique_message;
    /* the types round trip's checks; hex is the UTF-8 text in upper-case hex */
    void (*check_types)(struct target *t, const char *hex);
    void (*check_types2)(struct target *t);
};

extern struct target sqlite_t, maria_t, pg_t;
extern struct dw_mariadb maria;
extern const struct dw_connector_ops *odbc;

extern const char *const order_cols[4], *const order_key[1];
extern const char *const line_cols[3], *const line_key[2];
extern const char *const tag_cols[1], *const uniq_cols[2], *const type_cols[10];

struct tcfg {
    struct dw_setting setting;
    struct dw_connector_config cfg;
};

#define OP(kind_, table_, nkey_, cols_, vals_)                                            \
    {.kind = (kind_), .connector = "target", .table = (table_), .nkey = (nkey_),           \
     .ncolumns = (kind_) == DW_OP_DELETE ? (nkey_) : sizeof(cols_) / sizeof((cols_)[0]),   \
     .columns = (cols_), .values = (vals_), .map = "test"}

struct dw_connector_config *make_cfg(struct tcfg *c, const char *cs, dw_commit_mode mode,
                                     long timeout_ms);
/* Open or fail the test (fatally). */
struct dw_session *open_t(struct tcfg *c, const struct target *t, dw_commit_mode mode);
/* begin, apply, then prepare (gid given) or commit; rollback on failure. */
dw_errcode run_batch(struct dw_session *s, const struct dw_target_op *ops, size_t n,
                     const char *gid, struct dw_error *err);
void expect_batch_ok(struct dw_session *s, const struct dw_target_op *ops, size_t n,
                     const struct target *t);
void print_err(const char *what, const struct dw_error *err);
/* A value through the target's plain connection, "(null)" for NULL. */
const char *tval(const struct target *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Run fn for each available target. */
void for_each_target(void (*fn)(struct target *t));

/* Start the targets and create their tables (exit 77 without SQLite or MariaDB). */
void targets_start(bool with_pg);
void targets_stop(void);

#endif
