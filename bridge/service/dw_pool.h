/*
 * A pool of target sessions for one configured connector.
 *
 * Sessions are opened lazily, on first use of a slot; a session its connector
 * marked broken is closed when it comes back and reopened on the next use of
 * that slot.  A caller waits for a free session at most until its deadline.
 * Each pool belongs to one service state (dw_state.h): its sessions borrow
 * that state's connector configuration and are closed when the state is freed.
 */
#ifndef DW_POOL_H
#define DW_POOL_H

#include <stdint.h>

#include "bridge/common/dw_error.h"
#include "connectors/dw_connector.h"

struct dw_pool;

typedef enum dw_pool_health {
    DW_POOL_UNKNOWN = 0,   /* nothing tried yet */
    DW_POOL_UP,            /* the last open or use of a session worked */
    DW_POOL_DOWN           /* the last open failed or a session broke */
} dw_pool_health;

struct dw_pool_stats {
    int size;
    int open;
    int busy;
    int waiting;
    dw_pool_health health;
    char last_error[256];  /* why it is down; "" otherwise */
};

/*
 * A pool of size sessions (at least 1) of cfg's connector, opened with ops.
 * cfg is borrowed and must outlive the pool.  what names the pool in log
 * lines ("workers", "settle").  NULL when out of memory.
 */
struct dw_pool *dw_pool_new(const struct dw_connector_config *cfg, const struct dw_connector_ops *ops,
                            int size, const char *what);
/* Close every session; none may be checked out.  Accepts NULL. */
void dw_pool_free(struct dw_pool *pool);

/* Put an already open session (of the same connector) into a free slot; closes it if none. */
void dw_pool_adopt(struct dw_pool *pool, struct dw_session *s);

/*
 * Check out a session, waiting until deadline_ms (dw_now_ms clock; 0 = wait
 * without limit) for a free one and opening it if needed.  DW_ERR_TIMEOUT when
 * none became free in time, the open's error (DW_ERR_CONNECT...) otherwise.
 */
dw_errcode dw_pool_acquire(struct dw_pool *pool, int64_t deadline_ms, struct dw_session **out,
                           struct dw_error *err) DW_MUST_CHECK;
/* Return a session; a broken one is closed here. */
void dw_pool_release(struct dw_pool *pool, struct dw_session *s);

void dw_pool_stats(struct dw_pool *pool, struct dw_pool_stats *out);

#endif
