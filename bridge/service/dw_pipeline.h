/*
 * One batch through the bridge (DESIGN.md section 2): pre-validation without
 * a target transaction (decode, source check, maps, per-transaction limits),
 * then the operation on a pooled target session ending in PREPARE (two-phase)
 * or COMMIT, and the verdict with its HTTP status.  Window and concurrency
 * limits admit the batch through its connector's limiter (dw_throttle.h)
 * between the two.
 */
#ifndef DW_PIPELINE_H
#define DW_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "bridge/common/dw_buf.h"

/*
 * Run the batch in body[0..len).  The verdict JSON is appended to out and the
 * HTTP status returned (200, 400, 409, 413, 422, 429, 503); with 429,
 * *retry_after_s is the Retry-After to send (seconds, at least 1), else -1.
 * Everything decoded or mapped lives in arena, which the caller resets after
 * the response.  Runs synchronously in the calling (connection) thread, so
 * batches that arrive on one connection are applied in arrival order.
 */
int dw_pipeline_batch(const char *body, size_t len, struct dw_arena *arena, struct dw_buf *out,
                      int64_t *retry_after_s);

struct dw_state;
struct dw_conn_state;
struct dw_throttle;

/*
 * The connector's limiter (dw_throttle_shared), brought up to st's limits if
 * st is a newer configuration than it has seen.  Borrowed; NULL when out of
 * memory.  Metrics and status read the limits' use through it.
 */
struct dw_throttle *dw_pipeline_throttle(const struct dw_state *st, const struct dw_conn_state *c);

/* A verdict for a batch that never reached the pipeline (auth, size, shutdown). */
int dw_pipeline_refuse(int http_status, const char *stage, const char *message, struct dw_buf *out);

#endif
