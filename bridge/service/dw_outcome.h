/*
 * The in-doubt table: batches whose target transaction is (or is about to
 * be) prepared and whose outcome is not settled, keyed by batch id.
 *
 * A worker registers a batch before it sends PREPARE, so that an early
 * "aborted" outcome (the source gave up waiting) is not lost, and marks it
 * prepared afterwards.  An outcome message records the decision and settles
 * it at once: COMMIT PREPARED or ROLLBACK PREPARED on the connector's settle
 * sessions, never on the worker pool.  The resolver (dw_resolver.h) adds the
 * prepared transactions it finds on a target that nobody registered (left by
 * an earlier run), and retries decisions that could not be applied.  Entries
 * outlive configuration reloads; they name their connector by string.
 */
#ifndef DW_OUTCOME_H
#define DW_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_error.h"

#define DW_GID_PREFIX "dw:"

typedef enum dw_indoubt_state {
    DW_INDOUBT_PREPARING = 0,   /* a worker is between BEGIN and the end of PREPARE */
    DW_INDOUBT_PREPARED         /* prepared (or maybe prepared: the connection broke) */
} dw_indoubt_state;

typedef enum dw_decision {
    DW_DECISION_NONE = 0,
    DW_DECISION_COMMIT,
    DW_DECISION_ROLLBACK
} dw_decision;

/* A copy of one entry, for the resolver and /v1/status. */
struct dw_indoubt_info {
    char id[200];
    char connector[128];
    char xid[32];               /* from the batch, or parsed from the gid; "" when unparsable */
    dw_indoubt_state state;
    dw_decision decision;
    bool discovered;            /* found on the target by the resolver, not registered by a worker */
    bool settling;
    bool reported;              /* the resolver logged that it cannot decide */
    int64_t since_ms;           /* registered, prepared or discovered (dw_now_ms clock) */
};

void dw_outcome_init(void);
void dw_outcome_cleanup(void);

/* Worker: before PREPARE / after it worked / when it failed cleanly (nothing prepared). */
dw_errcode dw_outcome_register(const char *id, const char *connector, const char *xid,
                               struct dw_error *err) DW_MUST_CHECK;
/* Returns the decision that arrived meanwhile (the caller then settles). */
dw_decision dw_outcome_prepared(const char *id);
void dw_outcome_forget(const char *id);

typedef enum dw_decide_result {
    DW_DECIDE_OK = 0,          /* recorded (settle next) */
    DW_DECIDE_UNKNOWN,         /* no such in-doubt batch */
    DW_DECIDE_CONFLICT         /* the other decision was recorded before */
} dw_decide_result;

/* Record a decision; on conflict *previous says which one stands. */
dw_decide_result dw_outcome_decide(const char *id, dw_decision d, dw_decision *previous);

/*
 * Settle the decided entry id: COMMIT/ROLLBACK PREPARED "dw:<id>" on a settle
 * session of its connector in the installed state, then drop the entry.  by
 * is "outcome" or "resolver" (metrics and logs).  Does nothing when there is
 * no decision or another thread is settling it.  On failure the entry stays
 * (the resolver retries) and err says why.
 */
dw_errcode dw_outcome_settle(const char *id, const char *by, struct dw_error *err) DW_MUST_CHECK;

/*
 * Settle the decided entries among ids (others are skipped as by
 * dw_outcome_settle), one exchange per connector where the connector can
 * settle several at once.  Failures are logged; those entries stay for the
 * resolver.
 */
void dw_outcome_settle_many(const char *const *ids, size_t n, const char *by);

/*
 * True when the in-doubt batch id belongs to a connector that settles
 * several prepared transactions in one exchange (resolve_prepared_many):
 * the only ones whose outcomes the settler takes in the background.
 */
bool dw_outcome_batched_settle(const char *id);

/*
 * Resolver: make sure a prepared gid found on connector is in the table
 * (added as discovered when absent) and copy its entry to *info.
 */
void dw_outcome_observe(const char *id, const char *connector, struct dw_indoubt_info *info);
void dw_outcome_mark_reported(const char *id);

/*
 * Resolver: drop the prepared entries of connector that were prepared before
 * listed_at_ms and whose gid is not among the ids found on the target (they
 * were settled elsewhere, or the PREPARE never happened).
 */
void dw_outcome_sweep(const char *connector, const char *const *ids, size_t nids, int64_t listed_at_ms);

/* Number of entries / copies of all of them (caller frees *out). */
size_t dw_outcome_count(void);
size_t dw_outcome_list(struct dw_indoubt_info **out);

/* "<xid>" of a batch id "<system>:<database oid>:<xid>" into buf; false when it has another shape. */
bool dw_outcome_parse_id(const char *id, char *system, size_t system_size, char *xid, size_t xid_size);

const char *dw_decision_name(dw_decision d);

#endif
