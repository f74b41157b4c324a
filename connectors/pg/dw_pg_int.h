/*
 * Inside the pg connector: the session struct and what its two files share.
 * dw_pg.c holds connection handling, the catalog checks and the resolver's
 * calls; dw_pg_batch.c builds statements and runs the batch pipeline.
 */
#ifndef DW_PG_INT_H
#define DW_PG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "bridge/common/dw_buf.h"
#include "connectors/dw_connector.h"

/* Statement names are per session; past this many shapes, use unnamed ones. */
#define PG_MAX_CACHED_STMTS 512

typedef enum pg_stmt_state {
    PG_STMT_NEW = 0,     /* the server does not know it */
    PG_STMT_PENDING,     /* its Parse is in the current pipeline */
    PG_STMT_READY        /* parsed on the server, reusable */
} pg_stmt_state;

/* A prepared statement, cached per shape (table, kind, column list, row count). */
struct pg_stmt {
    char *sql;
    char *key;           /* the shape, as built by shape_key in dw_pg_batch.c */
    size_t keylen;
    uint64_t hash;       /* of key */
    char name[24];
    int nparams;
    pg_stmt_state state;
};

typedef enum pg_step_kind {
    PG_STEP_ROLLBACK = 0,  /* left over from an unfinished batch */
    PG_STEP_BEGIN,
    PG_STEP_PARSE,         /* Parse of a new cached statement */
    PG_STEP_EXEC,          /* one operation */
    PG_STEP_END            /* PREPARE TRANSACTION or COMMIT */
} pg_step_kind;

/* One queued command whose result is still to be read, in pipeline order. */
struct pg_step {
    pg_step_kind kind;
    long op;             /* operation index in the batch, -1 for none */
    long stmt;           /* index into stmts for PARSE, -1 otherwise */
    const char *table;   /* borrowed for the time of the batch, for context */
    bool upsert;
    long count;          /* operations in this step: more than 1 when grouped */
};

struct pg_session {
    struct dw_session base;
    PGconn *conn;
    /* statement cache */
    struct pg_stmt *stmts;
    size_t nstmts;
    size_t stmtcap;
    unsigned long next_stmt;
    /* the batch in flight */
    bool in_batch;       /* begin called, results not all read */
    bool synced;         /* the pipeline's Sync is sent */
    long nops;           /* operations queued since begin */
    struct pg_step *steps;
    size_t nsteps;
    size_t stepcap;
    struct dw_buf sql;   /* scratch for statement text */
    struct dw_buf key;   /* scratch for a statement's shape key */
    /* grouping (dw_pg_group.c) */
    const char **gparams;  /* scratch: the parameters of one grouped statement */
    size_t gparamcap;
    bool no_group;         /* replaying a failed batch one statement per operation */
    const struct dw_target_op *bops;  /* the batch's operations (one apply call), for the replay */
    long applies;          /* apply calls since begin */
    long failed_count;     /* operations in the statement of the first error */
};

/*
 * Wait until the socket is readable (and writable while output is pending),
 * at most timeout_ms (0 = no limit).  Returns 1 ready, 0 timed out, -1 error.
 */
int dw_pg_wait(struct pg_session *s, bool want_write, long timeout_ms);

/*
 * Record a lost connection: DW_ERR_CONNECT, the session marked broken, the
 * message built from libpq's.
 */
dw_errcode dw_pg_lost(struct pg_session *s, const char *what, struct dw_error *err);

/*
 * Fill err from an error result: DW_ERR_TARGET (DW_ERR_TIMEOUT for a
 * canceled statement) with the target's SQLSTATE, primary message, detail
 * and hint; or dw_pg_lost when the connection is gone.
 */
dw_errcode dw_pg_result_error(struct pg_session *s, const PGresult *res, struct dw_error *err);

/*
 * Run one statement outside a batch (the connection is idle, not in pipeline
 * mode) with text parameters, waiting at most the session's timeout.  On
 * success *out is the result (PGRES_COMMAND_OK or PGRES_TUPLES_OK; caller
 * PQclears); on failure err is set as by dw_pg_result_error and *out is NULL.
 */
dw_errcode dw_pg_run(struct pg_session *s, const char *sql, int nparams,
                     const char *const *params, PGresult **out, struct dw_error *err);

/* How long to wait for the target without progress, in ms (0 = no limit). */
long dw_pg_wait_ms(const struct pg_session *s);

/* Append table as a quoted identifier, "schema"."table" when it has a dot. */
void dw_pg_quote_table(struct dw_buf *b, const char *table);
void dw_pg_quote_ident(struct dw_buf *b, const char *name);

/* Batch pipeline (dw_pg_batch.c). */
dw_errcode dw_pg_begin(struct dw_session *s, const char *batch_id, struct dw_error *err);
dw_errcode dw_pg_apply(struct dw_session *s, const struct dw_target_op *ops, size_t nops,
                       struct dw_error *err);
dw_errcode dw_pg_prepare(struct dw_session *s, const char *gid, struct dw_error *err);
dw_errcode dw_pg_commit(struct dw_session *s, struct dw_error *err);
void dw_pg_rollback(struct dw_session *s);
/* Free the statement cache and the batch state. */
void dw_pg_batch_cleanup(struct pg_session *s);

/*
 * Grouping (dw_pg_group.c).  dw_pg_group_size: how many of ops, from the
 * first, go into one statement (1: run it alone).  dw_pg_group_sql: the text
 * of the grouped statement for nrows operations of op's shape into b; returns
 * its parameter count.  dw_pg_group_params: the parameters of ops[0, nrows)
 * in s's scratch array (borrowed until the next call), NULL when out of memory.
 */
size_t dw_pg_group_size(const struct dw_target_op *ops, size_t nops);
int dw_pg_group_sql(struct dw_buf *b, const struct dw_target_op *op, size_t nrows);
const char *const *dw_pg_group_params(struct pg_session *s, const struct dw_target_op *ops,
                                      size_t nrows);

/* True when gid is a valid global transaction id for PREPARE TRANSACTION. */
bool dw_pg_gid_valid(const char *gid);

#endif
