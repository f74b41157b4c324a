/*
 * Inside the ODBC connector: the session struct and what its files share.
 *
 *   dw_odbc.c        sessions: connect, learn the target (dialect, quoting,
 *                    arrays), commit mode, catalog checks, the vtable
 *   dw_odbc_diag.c   diagnostic records into a dw_error, lost connections,
 *                    connection strings and the masking of their secrets
 *   dw_odbc_catalog.c  column metadata, check_table and check_key
 *   dw_odbc_value.c  rewriting PostgreSQL's boolean and timestamp text
 *   dw_odbc_stmt.c   statement text per dialect, the statement cache,
 *                    binding and execution of runs of operations
 *   dw_odbc_batch.c  begin / apply / prepare / commit / rollback, and XA
 *                    (MariaDB): resolve and list prepared transactions
 */
#ifndef DW_ODBC_INT_H
#define DW_ODBC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sql.h>
#include <sqlext.h>

#include "bridge/common/dw_buf.h"
#include "connectors/dw_connector.h"

/* Past this many shapes a session prepares statements for one use only. */
#define ODBC_MAX_CACHED_STMTS 512
/* Largest parameter array, and the most bytes its buffers may take. */
#define ODBC_MAX_ARRAY_ROWS 1000
#define ODBC_MAX_ARRAY_BYTES (8 * 1024 * 1024)
/* XA ids: gtrid and bqual hold 64 bytes each; a longer gid is split over both. */
#define ODBC_XID_PART 64
#define ODBC_MAX_GID (2 * ODBC_XID_PART)
/* MariaDB/MySQL Connector/ODBC option flag that allows multiple statements. */
#define ODBC_MYSQL_FLAG_MULTI_STATEMENTS 67108864UL

typedef enum odbc_family {
    ODBC_FAMILY_OTHER = 0,
    ODBC_FAMILY_SQLITE,
    ODBC_FAMILY_MARIADB,     /* MariaDB server */
    ODBC_FAMILY_MYSQL,       /* MySQL server */
    ODBC_FAMILY_POSTGRESQL
} odbc_family;

typedef enum odbc_dialect {
    ODBC_UPSERT_ON_CONFLICT = 0,    /* INSERT ... ON CONFLICT (key) DO UPDATE */
    ODBC_UPSERT_ON_DUPLICATE_KEY,   /* INSERT ... ON DUPLICATE KEY UPDATE */
    ODBC_UPSERT_UPDATE_INSERT       /* UPDATE, and INSERT when no row matched */
} odbc_dialect;

typedef enum odbc_stmt_kind {
    ODBC_STMT_UPSERT = 0,   /* one statement does it (ON CONFLICT / ON DUPLICATE KEY) */
    ODBC_STMT_UPDATE,       /* first half of UPDATE-then-INSERT */
    ODBC_STMT_INSERT,       /* second half */
    ODBC_STMT_DELETE
} odbc_stmt_kind;

/* How a value is rewritten before binding (targets without PostgreSQL's input formats). */
typedef enum odbc_norm {
    ODBC_NORM_NONE = 0,
    ODBC_NORM_BOOL,         /* t/true/f/false... into 1/0 (integer, bit and boolean columns) */
    ODBC_NORM_TIMESTAMP     /* ISO 8601 with an offset into UTC without one */
} odbc_norm;

/* A column of a target table as SQLColumns reports it. */
struct odbc_column {
    char *name;
    SQLSMALLINT type;       /* DATA_TYPE */
    char type_name[48];     /* TYPE_NAME, lowercased */
};

struct odbc_table {
    char *name;             /* as the maps spell it ("schema.table" or "table") */
    struct odbc_column *cols;
    size_t ncols;
};

/* A prepared statement, cached per shape; the text is the key. */
struct odbc_stmt {
    char *sql;
    uint64_t hash;
    odbc_stmt_kind kind;
    SQLHSTMT h;
    bool prepared;          /* SQLPrepare succeeded on this connection */
    int nparams;
    int *colidx;            /* parameter i binds the operation's column colidx[i] */
    SQLSMALLINT *sqltype;   /* bind type per parameter */
    SQLULEN *colsize;       /* 0: from the value length */
    SQLSMALLINT *digits;
    unsigned char *norm;    /* odbc_norm per parameter */
};

typedef enum odbc_xa_state {
    ODBC_XA_NONE = 0,
    ODBC_XA_ACTIVE,         /* XA START sent */
    ODBC_XA_IDLE            /* XA END sent */
} odbc_xa_state;

struct odbc_session {
    struct dw_session base;
    SQLHENV env;
    SQLHDBC dbc;
    bool connected;
    SQLHSTMT direct;        /* control statements (XA, SET, catalog calls) */
    char *connstr;          /* the connection string in use (secret) */
    char *password;         /* its PWD value, masked out of every message; may be NULL */
    /* what the target is */
    char dbms[64];
    char dbms_version[64];
    char driver[64];
    odbc_family family;
    odbc_dialect dialect;
    char quote;             /* identifier quote character, '\0' when there is none */
    bool qualifier_is_catalog;  /* "db.table": db is a catalog (MariaDB) or a schema */
    bool arrays;            /* parameter arrays with per-row status */
    bool describe;          /* SQLDescribeParam is there */
    bool normalize;         /* rewrite booleans and timestamps (not for PostgreSQL) */
    bool fold_columns;      /* column names compare case-insensitively */
    char escape[8];         /* search pattern escape for catalog functions */
    bool xa;                /* two-phase through XA: autocommit on, XA statements */
    bool multi_stmt;        /* the connection allows several statements (XA RECOVER) */
    /* the batch in flight */
    bool in_batch;
    bool txn_open;          /* manual commit: statements ran since the last end */
    odbc_xa_state xa_state;
    char xid[ODBC_MAX_GID + 1];
    long nops;              /* operations applied since begin */
    bool changed;           /* a statement since begin may have changed rows */
    long long call_ms;      /* when the current call to the target started (monotonic) */
    /* caches */
    struct odbc_stmt *stmts;
    size_t nstmts, stmtcap;
    struct odbc_table *tables;
    size_t ntables, tablecap;
    /* scratch */
    struct dw_buf sql;
    char *bindbuf;
    size_t bindcap;
    SQLLEN *ind;
    size_t indcap;
    SQLUSMALLINT *status;   /* per-row status of the last parameter array */
    size_t statuscap;
    SQLULEN processed;      /* rows the driver processed of it */
};

/* ---- dw_odbc_diag.c ---- */

/*
 * Fill err from the diagnostic records of handle h after rc: the first
 * SQLSTATE, the records' messages joined (vendor prefixes removed, secrets
 * masked), DW_ERR_TARGET; a lost connection gives DW_ERR_CONNECT and marks
 * the session broken ("lost the connection to the target while WHAT: ..."),
 * a statement or lock timeout DW_ERR_TIMEOUT.  what says what was being done.
 */
dw_errcode dw_odbc_error(struct odbc_session *s, SQLSMALLINT htype, SQLHANDLE h, SQLRETURN rc,
                         const char *what, struct dw_error *err);
/* Like dw_odbc_error, but with this code and the message "prefix: <records>". */
dw_errcode dw_odbc_error_as(struct odbc_session *s, SQLSMALLINT htype, SQLHANDLE h,
                            dw_errcode code, const char *prefix, struct dw_error *err);
/* The connection is known to be gone: DW_ERR_CONNECT, broken. */
dw_errcode dw_odbc_lost(struct odbc_session *s, const char *what, struct dw_error *err);
/* Replace PWD=/PASSWORD= values and the password itself in text by "***". */
void dw_odbc_mask(char *text, size_t size, const char *password);

/* Syntax check; on failure a message (no secret in it) into msg. */
bool dw_odbc_connstr_valid(const char *connstr, char *msg, size_t size);
/* A new copy of the value of key (case-insensitive), or NULL. */
char *dw_odbc_connstr_get(const char *connstr, const char *key);
/* A new connection string with MariaDB's multi-statement option flag added. */
char *dw_odbc_connstr_with_multi_statements(const char *connstr);
/*
 * A new connection string: for a MariaDB or MySQL driver named in DRIVER,
 * CONN_TIMEOUT, READ_TIMEOUT and WRITE_TIMEOUT (seconds) unless it sets them;
 * otherwise a plain copy.
 */
char *dw_odbc_connstr_with_timeouts(const char *connstr, long connect_s, long read_s);
/* Note the start of a call to the target (for telling a timeout from a loss). */
void dw_odbc_call_start(struct odbc_session *s);

/* ---- dw_odbc.c ---- */

/* Connect s->dbc with s->connstr and set the session up. */
dw_errcode dw_odbc_connect(struct odbc_session *s, struct dw_error *err);
/* Free every statement handle and disconnect (the session stays allocated). */
void dw_odbc_disconnect(struct odbc_session *s);
/* Run a statement without parameters (and without rows) on s->direct; err as by dw_odbc_error. */
dw_errcode dw_odbc_exec(struct odbc_session *s, const char *sql, struct dw_error *err);
/* Quoted identifiers, "q"."t" for "q.t". */
void dw_odbc_quote_ident(const struct odbc_session *s, struct dw_buf *b, const char *name);
void dw_odbc_quote_table(const struct odbc_session *s, struct dw_buf *b, const char *table);
/* Connector name for log lines. */
const char *dw_odbc_name(const struct odbc_session *s);

/* ---- dw_odbc_value.c ---- */

/* Rewrite a text value for a column; returns value itself or out. */
const char *dw_odbc_normalize(odbc_norm norm, const char *value, char *out, size_t size);
/* The rewriting a column needs. */
odbc_norm dw_odbc_column_norm(const struct odbc_column *c);

/* ---- dw_odbc_catalog.c ---- */

dw_errcode dw_odbc_check_table(struct dw_session *s, const char *table,
                               const char *const *columns, size_t ncolumns, struct dw_error *err);
dw_errcode dw_odbc_check_key(struct dw_session *s, const char *table, const char *const *key,
                             size_t nkey, struct dw_error *err);
/* Column metadata of a table (cached); NULL when the target has no such table. */
dw_errcode dw_odbc_table(struct odbc_session *s, const char *table, bool refresh,
                         const struct odbc_table **out, struct dw_error *err);
/* Free the metadata cache. */
void dw_odbc_tables_cleanup(struct odbc_session *s);
/* Split "q.t" for the catalog functions: catalog or schema (per the target) and table. */
void dw_odbc_split_table(const struct odbc_session *s, const char *table, char *catalog,
                         size_t csize, char *schema, size_t ssize, char *name, size_t nsize);
/* Escape the search-pattern characters of a catalog function argument. */
void dw_odbc_pattern(const struct odbc_session *s, const char *in, char *out, size_t size);

/* ---- dw_odbc_stmt.c ---- */

/*
 * Apply ops[0..n) (index base+i in the batch): runs of one shape as
 * parameter arrays where the driver has them, row by row otherwise.  On
 * failure session->failed_op names the operation when known.
 */
dw_errcode dw_odbc_run_ops(struct odbc_session *s, const struct dw_target_op *ops, size_t n,
                           long base, struct dw_error *err);
/* Free the statement handles (before a disconnect); the cache keeps its entries. */
void dw_odbc_stmts_release(struct odbc_session *s);
/* Free every cache and scratch buffer. */
void dw_odbc_stmts_cleanup(struct odbc_session *s);

/* ---- dw_odbc_batch.c ---- */

dw_errcode dw_odbc_begin(struct dw_session *s, const char *batch_id, struct dw_error *err);
dw_errcode dw_odbc_apply(struct dw_session *s, const struct dw_target_op *ops, size_t nops,
                         struct dw_error *err);
dw_errcode dw_odbc_prepare(struct dw_session *s, const char *gid, struct dw_error *err);
dw_errcode dw_odbc_commit(struct dw_session *s, struct dw_error *err);
void dw_odbc_rollback(struct dw_session *s);
dw_errcode dw_odbc_resolve_prepared(struct dw_session *s, const char *gid, bool commit,
                                    struct dw_error *err);
dw_errcode dw_odbc_list_prepared(struct dw_session *s, const char *prefix, char ***gids,
                                 size_t *ngids, struct dw_error *err);
/* True when gid can be an XA id: [A-Za-z0-9:._-], 1 to ODBC_MAX_GID bytes. */
bool dw_odbc_gid_valid(const char *gid);

#endif
