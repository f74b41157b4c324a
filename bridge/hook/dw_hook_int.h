/*
 * Internal interface of the dualwrite extension, shared by its four files:
 *
 *   dw_hook.c     _PG_init, the settings, the transaction callbacks, and the
 *                 pre-commit step that turns the bridge's verdict into COMMIT
 *                 or an ERROR;
 *   dw_capture.c  the capture trigger, value rendering, and the transaction's
 *                 list of changes with its subtransaction bookkeeping;
 *   dw_truncate.c TRUNCATE of replicated tables refused: the BEFORE TRUNCATE
 *                 trigger, and a utility hook that also covers partitions,
 *                 inheritance children and CASCADE;
 *   dw_client.c   the HTTP/1.1 client to the bridge: one keep-alive socket per
 *                 backend, non-blocking I/O, an interruptible wait.
 *
 * Include "postgres.h" before this header.
 */
#ifndef DW_HOOK_INT_H
#define DW_HOOK_INT_H

#include "access/xact.h"
#include "datatype/timestamp.h"

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_wire.h"

/* SQLSTATE class "YW": errors of dualwrite itself (bridge, protocol, limits). */
#define ERRCODE_DW_BRIDGE_UNREACHABLE MAKE_SQLSTATE('Y', 'W', '0', '0', '1')
#define ERRCODE_DW_TARGET_REJECTED MAKE_SQLSTATE('Y', 'W', '0', '0', '2')
#define ERRCODE_DW_PREVALIDATION MAKE_SQLSTATE('Y', 'W', '0', '0', '3')
#define ERRCODE_DW_THROTTLED MAKE_SQLSTATE('Y', 'W', '0', '0', '4')
#define ERRCODE_DW_TARGET_UNAVAILABLE MAKE_SQLSTATE('Y', 'W', '0', '0', '5')
#define ERRCODE_DW_COMMIT_TIMEOUT MAKE_SQLSTATE('Y', 'W', '0', '0', '6')
#define ERRCODE_DW_PROTOCOL MAKE_SQLSTATE('Y', 'W', '0', '0', '7')

/* ---- settings (dw_hook.c) ---- */
extern char *dw_guc_bridge;
extern char *dw_guc_token;
extern int dw_guc_commit_timeout_ms;
extern bool dw_guc_enabled;
extern char *dw_guc_origin;

/* ---- capture (dw_capture.c) ---- */

/*
 * The transaction's captured changes, or NULL when there are none: the
 * pre-commit callback runs for every transaction and only tests this pointer.
 */
extern struct dw_capture_xact *dw_capture_current;

/* Register the relcache callback that keeps the per-trigger cache fresh. */
void dw_capture_init(void);
/* Number of changes still in the transaction (after rolled-back savepoints). */
size_t dw_capture_count(void);
/* End of the top-level transaction: forget every change (memory goes with it). */
void dw_capture_reset(void);
/*
 * Savepoint released (commit) or rolled back (abort).  Never raises an ERROR
 * and does no I/O.
 */
void dw_capture_subxact(SubXactEvent event, SubTransactionId my_subid,
                        SubTransactionId parent_subid);
/* Append the whole batch (begin, every change, end) to b. */
void dw_capture_encode(struct dw_buf *b, const char *id, const char *system,
                       const char *database, const char *xid, int64 deadline_ms);

/* ---- TRUNCATE (dw_truncate.c) ---- */

/* Install the ProcessUtility hook (chained to the previous one); from _PG_init. */
void dw_truncate_init(void);

/* ---- client (dw_client.c) ---- */

/* What the bridge answered to a batch; points into the client's own memory. */
struct dw_bridge_reply {
    int http_status;
    int64 retry_after_s;         /* Retry-After header, -1 when absent */
    const char *body;            /* NUL-terminated, never NULL */
    size_t body_len;
    struct dw_verdict *verdict;  /* NULL when the body is not a valid verdict */
    char decode_error[256];      /* why verdict is NULL, when the body was not empty */
};

/*
 * The buffer the batch is encoded into; owned by the client, kept (and
 * shrunk when a huge batch made it large) across transactions.
 */
struct dw_buf *dw_client_batch_buffer(void);

/*
 * POST /v1/batches with the batch in dw_client_batch_buffer() and read the
 * reply, waiting at most until deadline.  Raises ERROR (and drops the
 * connection) when the bridge cannot be reached, does not answer in time,
 * the reply is not HTTP, or the wait is interrupted (cancel, shutdown).  The
 * reply stays valid until the next call.
 */
void dw_client_post_batch(const char *batch_id, TimestampTz deadline,
                          struct dw_bridge_reply *reply);

/*
 * POST /v1/batches/{id}/outcome, best effort: one non-blocking write, no
 * waiting, never an ERROR.  The reply is read before the next request.
 */
void dw_client_send_outcome(const char *batch_id, bool committed);

/* Drop the connection (the next request reconnects).  Never raises. */
void dw_client_disconnect(void);

/* Split "host:port" or "[v6]:port"; false when addr is not of that form. */
bool dw_client_parse_address(const char *addr, char *host, size_t hostsize, char *port,
                             size_t portsize);

/* The address of dualwrite.bridge as messages show it. */
const char *dw_client_address(void);

#endif
