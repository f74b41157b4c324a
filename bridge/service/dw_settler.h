/*
 * The settler: applies outcomes (COMMIT/ROLLBACK PREPARED) in the
 * background, so that answering an outcome message never waits for the
 * target, and several outcomes that arrive together go to the target in one
 * exchange.  The decision is recorded (dw_outcome_decide) before an id is
 * submitted; what fails to settle stays in the in-doubt table for the
 * resolver, as before.
 */
#ifndef DW_SETTLER_H
#define DW_SETTLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge/common/dw_error.h"

/* Start the settler threads; DW_OK or why not (then submit settles in the caller). */
dw_errcode dw_settler_start(struct dw_error *err) DW_MUST_CHECK;

/*
 * Queue the decided batch id for settling and return its ticket; with 32
 * outcomes pending, first wait for room.  Without a running settler (not
 * started, stopping, no room within 30 s, or out of memory), settles it in
 * the calling thread and returns 0.
 */
uint64_t dw_settler_submit(const char *id);

/*
 * Wait until every id queued up to ticket has been settled (or, failing,
 * left to the resolver): a batch with deletes must not reach the target
 * before earlier transactions are committed there (G3, see dw_settler.c).
 * True at once for ticket 0; false when timeout_ms passed first.
 */
bool dw_settler_wait(uint64_t ticket, long timeout_ms) DW_MUST_CHECK;

/* The ticket of the last id queued so far (0: none yet). */
uint64_t dw_settler_last_ticket(void);

/*
 * Settle what is queued, waiting at most wait_ms for it (what is left stays
 * prepared for the resolver of the next start), and stop the threads.
 */
void dw_settler_stop(long wait_ms);

/* Ids queued and not yet taken by a settler thread. */
size_t dw_settler_queued(void);

#endif
