/*
 * The wire format between the hook and the bridge (DESIGN.md section 4):
 * a batch (one source transaction's changes) and a verdict (the bridge's
 * answer).  Both are JSON objects in UTF-8.
 *
 * Encoding needs no JSON library: the PostgreSQL extension links this code and
 * writes a batch incrementally with dw_wire_batch_begin / _change / _end into a
 * dw_buf it reuses across transactions.  Decoding is strict (types, required
 * fields, unknown op, UTF-8, depth and size limits, duplicate keys) and puts
 * the result in an arena; the hook decodes verdicts with it too.
 */
#ifndef DW_WIRE_H
#define DW_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_error.h"

/* Input limits of the decoder. */
#define DW_WIRE_MAX_DEPTH 16            /* nesting of objects/arrays */
#define DW_WIRE_MAX_BATCH_BYTES (64u * 1024u * 1024u)
#define DW_WIRE_MAX_VERDICT_BYTES (64u * 1024u)

typedef enum dw_change_op {
    DW_CHANGE_INSERT = 0,
    DW_CHANGE_UPDATE,
    DW_CHANGE_DELETE
} dw_change_op;

/* A row image: column names and their text values (NULL value = SQL null). */
struct dw_row {
    size_t ncols;
    const char **names;
    const char **values;
};

struct dw_change {
    const char *table;      /* "schema.table" as the source names it */
    dw_change_op op;
    struct dw_row old_row;  /* update and delete; ncols 0 otherwise */
    struct dw_row new_row;  /* insert and update; ncols 0 otherwise */
};

struct dw_batch {
    const char *id;              /* "<system>:<database oid>:<xid>" */
    const char *source_system;   /* the source's system identifier */
    const char *source_database; /* database name */
    const char *source_xid;      /* full transaction id (xid8), decimal */
    const char *origin;          /* NULL unless set */
    int64_t deadline_ms;         /* what is left of the source's commit timeout;
                                  * -1 when absent (a negative value is not sent) */
    size_t nchanges;
    struct dw_change *changes;
};

typedef enum dw_verdict_status {
    DW_VERDICT_PREPARED = 0,
    DW_VERDICT_COMMITTED,
    DW_VERDICT_REJECTED,
    DW_VERDICT_THROTTLED,
    DW_VERDICT_UNAVAILABLE
} dw_verdict_status;

struct dw_verdict {
    const char *id;              /* NULL when absent: an error body for a batch
                                  * that could not be decoded has no id */
    dw_verdict_status status;
    const char *stage;           /* "pre-validation", "operation", ... or NULL */
    const char *map;             /* the map at fault, or NULL */
    long change;                 /* index of the change at fault, or -1 */
    const char *message;         /* NULL on success */
    const char *detail;          /* optional */
    const char *hint;            /* optional */
    const char *target_sqlstate; /* NULL when the target gave none */
    int64_t elapsed_ms;          /* -1 when absent */
    int64_t retry_after_s;       /* throttled: seconds to wait; -1 when absent */
};

const char *dw_change_op_name(dw_change_op op);
const char *dw_verdict_status_name(dw_verdict_status s);

/* ---- encoding (no JSON library) ---- */

/*
 * Append s as a JSON string literal (quotes included), escaping as needed.
 * s must be valid UTF-8 (the hook converts from the server encoding first):
 * invalid UTF-8 is not sent but marks b failed, as running out of memory does.
 */
void dw_wire_put_string(struct dw_buf *b, const char *s, size_t len);

/*
 * Incremental batch writer; errors surface as dw_buf_failed(b).  It appends
 * to b (reset b first to reuse it).  A NULL required string, an unknown op or
 * a missing image the op needs also mark b failed.
 */
void dw_wire_batch_begin(struct dw_buf *b, const char *id, const char *system,
                         const char *database, const char *xid, const char *origin,
                         int64_t deadline_ms);
/*
 * old_row / new_row may be NULL when the op has no such image (an image the
 * op does not use is ignored).  Names and values are NUL-terminated; a NULL
 * value is SQL null.
 */
void dw_wire_batch_change(struct dw_buf *b, const char *table, dw_change_op op,
                          const struct dw_row *old_row, const struct dw_row *new_row);
void dw_wire_batch_end(struct dw_buf *b);

/*
 * Whole batch or verdict in one call (tests, tools, the service), appended to
 * out.  Strings are checked first, so an error names the field
 * ("cannot encode /changes/0/new/total: value is not valid UTF-8 ...");
 * absent optional fields (NULL, negative numbers) are left out.
 */
dw_errcode dw_wire_encode_batch(const struct dw_batch *batch, struct dw_buf *out,
                                struct dw_error *err) DW_MUST_CHECK;
dw_errcode dw_wire_encode_verdict(const struct dw_verdict *v, struct dw_buf *out,
                                  struct dw_error *err) DW_MUST_CHECK;

/* ---- decoding (strict) ---- */

/*
 * Decode a batch from data[0..len) (no NUL terminator needed).  On success
 * *out points into arena, which owns every string; on failure *out is NULL, err
 * says what and where ("/changes/3/op: ..."), the code is DW_ERR_PROTOCOL
 * (malformed) or DW_ERR_LIMIT (too large or too deep), and the arena may hold
 * partial results until it is reset.  Optional fields may also be sent as null.
 */
dw_errcode dw_wire_decode_batch(const char *data, size_t len, struct dw_arena *arena,
                                struct dw_batch **out, struct dw_error *err) DW_MUST_CHECK;
dw_errcode dw_wire_decode_verdict(const char *data, size_t len, struct dw_arena *arena,
                                  struct dw_verdict **out, struct dw_error *err) DW_MUST_CHECK;

/* Verdict with every optional field absent (change -1, elapsed -1, retry -1). */
void dw_verdict_init(struct dw_verdict *v, const char *id, dw_verdict_status status);

#endif
