/*
 * The resolver: settles prepared "dw:" transactions whose outcome message
 * never came, by asking the source's own commit log (DESIGN.md section 2).
 *
 * One thread.  At start-up and every resolver_interval_ms it lists the
 * prepared transactions of every two-phase connector (on the connector's
 * settle sessions, never the worker pool).  For each one whose outcome is
 * unknown (all of them at start-up, and any not registered by this run;
 * others once resolver_grace_ms has passed since PREPARE), it asks the source
 * SELECT pg_xact_status(xid) over a libpq connection of its own:
 * committed -> COMMIT PREPARED, aborted -> ROLLBACK PREPARED, in progress ->
 * wait, NULL (too old to know) -> an error in the log, left for a human.
 */
#ifndef DW_RESOLVER_H
#define DW_RESOLVER_H

#include <stdbool.h>

#include "bridge/common/dw_error.h"

/* Start the thread (it reads the installed state at each pass). */
dw_errcode dw_resolver_start(struct dw_error *err) DW_MUST_CHECK;
/* Ask for a pass now (after a reload, for example). */
void dw_resolver_wake(void);
/* Stop and join; closes the source connection. Safe without start. */
void dw_resolver_stop(void);

/* For /v1/status and /v1/health: is the source reachable, and its system identifier. */
struct dw_resolver_info {
    bool source_up;
    bool passes_done;          /* at least one complete pass */
    char source_system[32];
    char last_error[256];
};
void dw_resolver_info(struct dw_resolver_info *out);

#endif
