/*
 * The service's running state: configuration, table maps and one pair of
 * session pools per connector, built as a whole and swapped as a whole.
 *
 * Request threads take a reference (dw_state_acquire) for the time of one
 * request and read the state without locks: nothing in it changes after it is
 * built.  A reload (SIGHUP) builds a complete new state, checks it against
 * the targets, and installs it; the old one is freed when its last request
 * returns it.  So a batch sees one configuration from start to end, and a
 * broken new configuration never replaces a working one.
 */
#ifndef DW_STATE_H
#define DW_STATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "bridge/common/dw_error.h"
#include "bridge/service/dw_config.h"
#include "bridge/service/dw_pool.h"
#include "connectors/dw_connector.h"
#include "maps/dw_map.h"

/* Sessions reserved for COMMIT/ROLLBACK PREPARED per connector: half the worker pool, at least this. */
#define DW_SETTLE_POOL_MIN 2

struct dw_conn_state {
    const char *name;                       /* borrowed from config */
    const struct dw_connector_entry *entry; /* borrowed from config */
    const struct dw_connector_ops *ops;
    bool checked;                           /* dw_state_check_targets reached it */
    bool two_phase;                         /* as decided by the target at the check */
    struct dw_pool *workers;                /* batches */
    struct dw_pool *settle;                 /* outcome messages and the resolver, never batches */
};

struct dw_state {
    atomic_int refs;
    unsigned long generation;
    struct dw_config *config;
    struct dw_mapset *maps;
    size_t nconns;
    struct dw_conn_state *conns;
};

/*
 * Load the configuration file and its maps and check that they fit together
 * (every map's connector is configured and of a known type).  No connection
 * is made.  Every problem is one line in *errors (caller frees); on success
 * *out is a new state with one reference.
 */
dw_errcode dw_state_load(const char *config_path, struct dw_state **out, char **errors,
                         struct dw_error *err) DW_MUST_CHECK;

/*
 * Open one session per connector, check every map's target table and columns
 * in the target's catalog, and learn whether each target is two-phase.  The
 * sessions then serve as the pools' first sessions.  Every problem is a line
 * in *errors; err says whether it was a map problem (DW_ERR_CONFIG) or an
 * unreachable target (DW_ERR_CONNECT).
 */
dw_errcode dw_state_check_targets(struct dw_state *st, char **errors,
                                  struct dw_error *err) DW_MUST_CHECK;

/* The connector called name, or NULL. Borrowed. */
struct dw_conn_state *dw_state_conn(struct dw_state *st, const char *name);

/* Reference counting; release frees at zero.  Accepts NULL. */
void dw_state_ref(struct dw_state *st);
void dw_state_release(struct dw_state *st);

/* The installed state with a new reference, or NULL before the first install. */
struct dw_state *dw_state_acquire(void);
/* Install st (takes over the caller's reference); the previous one is released. */
void dw_state_install(struct dw_state *st);
/* Release the installed state (at shutdown). */
void dw_state_uninstall(void);

#endif
