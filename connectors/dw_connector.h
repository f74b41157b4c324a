/*
 * The connector interface (DESIGN.md section 6): one vtable per target kind and
 * one registry table of the kinds this build has.  A NULL slot means "not
 * supported" (no prepare: the target is one-phase only).
 *
 * A connector receives target operations (bridge/common/dw_op.h), never maps.
 * The service owns sessions and pools them per configured connector; a session
 * is used by one thread at a time.
 *
 * Calls may be lazy: begin and apply may only queue work, so that the pg
 * backend sends BEGIN, every statement and PREPARE in one round trip; an error
 * may therefore surface at prepare or commit.  Whatever the call, a target
 * rejection sets err (code DW_ERR_TARGET, the target's SQLSTATE and message)
 * and session->failed_op to the index of the rejected operation when known.
 * That index counts the operations of every apply call since begin, so a
 * caller that applies a batch in several calls still gets the batch index.
 * A lost connection sets DW_ERR_CONNECT and session->broken; a target that
 * stops answering for longer than timeout_ms sets DW_ERR_TIMEOUT and marks the
 * session broken too (the outcome of the transaction is then unknown, and the
 * resolver settles a prepared one).  A target that asks the bridge to slow
 * down (an HTTP 429, or a 503 with Retry-After) sets DW_ERR_THROTTLED and
 * session->retry_after_ms; nothing of the batch was applied.
 */
#ifndef DW_CONNECTOR_H
#define DW_CONNECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "bridge/common/dw_error.h"
#include "bridge/common/dw_op.h"

typedef enum dw_commit_mode {
    DW_COMMIT_AUTO = 0,      /* two-phase when the target can prepare */
    DW_COMMIT_TWO_PHASE,
    DW_COMMIT_ONE_PHASE
} dw_commit_mode;

/* One type-specific setting of a connector ("conninfo", "url", ...). */
struct dw_setting {
    const char *key;
    const char *value;       /* secrets already expanded */
    bool secret;             /* came through ${ENV} or a file: never log it */
};

struct dw_connector_config {
    const char *name;        /* the key in "connectors" */
    const char *type;        /* "pg", "odbc", "odata" */
    dw_commit_mode commit;
    size_t nsettings;
    const struct dw_setting *settings;
    long timeout_ms;         /* connect and statement timeout */
};

/* Borrowed value of a setting, or NULL. */
const char *dw_connector_setting(const struct dw_connector_config *cfg, const char *key);
/* True when the setting exists and is secret (its value must not be shown). */
bool dw_connector_setting_secret(const struct dw_connector_config *cfg, const char *key);

/* "auto", "two-phase", "one-phase"; parse returns false for anything else. */
const char *dw_commit_mode_name(dw_commit_mode mode);
bool dw_commit_mode_parse(const char *name, dw_commit_mode *out);

struct dw_connector_ops;

/* Base of every backend's session struct (embed it first). */
struct dw_session {
    const struct dw_connector_ops *ops;
    const struct dw_connector_config *config;
    bool two_phase;          /* decided at open from config and target */
    bool broken;             /* connection lost: the pool closes and reopens it */
    long failed_op;          /* index of the rejected operation, or -1 */
    /*
     * With DW_ERR_THROTTLED: how long the target asked us to wait (its
     * Retry-After) in ms, or 0 when it did not say.  Reset by begin.
     */
    long retry_after_ms;
    /*
     * When the batch's target work must be over (CLOCK_MONOTONIC, ms), or 0
     * for no deadline.  The service sets it before begin from the batch's
     * deadline_ms; a backend bounds its waits by it where it can.
     */
    long long deadline_ms;
};

struct dw_connector_ops {
    const char *type;
    /* NULL-terminated list of the settings this type accepts, for messages. */
    const char *const *settings;
    /* Validate settings at config load (no connection). */
    dw_errcode (*check)(const struct dw_connector_config *cfg, struct dw_error *err);

    dw_errcode (*open)(const struct dw_connector_config *cfg, struct dw_session **out,
                       struct dw_error *err);
    /* Check a target table has these columns (startup catalog check). */
    dw_errcode (*check_table)(struct dw_session *s, const char *table,
                              const char *const *columns, size_t ncolumns, struct dw_error *err);
    dw_errcode (*begin)(struct dw_session *s, const char *batch_id, struct dw_error *err);
    dw_errcode (*apply)(struct dw_session *s, const struct dw_target_op *ops, size_t nops,
                        struct dw_error *err);
    /* Optional: end the transaction with a prepare under this global id. */
    dw_errcode (*prepare)(struct dw_session *s, const char *gid, struct dw_error *err);
    dw_errcode (*commit)(struct dw_session *s, struct dw_error *err);
    /* Cannot fail: on a lost connection the session is marked broken. */
    void (*rollback)(struct dw_session *s);
    /* Optional (two-phase): settle a prepared transaction; unknown gid is DW_OK. */
    dw_errcode (*resolve_prepared)(struct dw_session *s, const char *gid, bool commit,
                                   struct dw_error *err);
    /*
     * Optional (two-phase): settle n prepared transactions in one exchange
     * where the target allows it; each gets its own result in rcs[i] and
     * errs[i] (an unknown gid is DW_OK).  Without it, the service calls
     * resolve_prepared for each.
     */
    void (*resolve_prepared_many)(struct dw_session *s, const char *const *gids, const bool *commit,
                                  size_t n, dw_errcode *rcs, struct dw_error *errs);
    /* Optional (two-phase): the gids of prepared transactions starting with prefix. */
    dw_errcode (*list_prepared)(struct dw_session *s, const char *prefix, char ***gids,
                                size_t *ngids, struct dw_error *err);
    void (*close)(struct dw_session *s);
    /*
     * Optional: check the target can address rows of the table by this key
     * (for pg: a unique index on exactly these columns, which ON CONFLICT
     * needs).  Startup catalog check, like check_table.  (Added after close
     * so that the slots above keep their places.)
     */
    dw_errcode (*check_key)(struct dw_session *s, const char *table, const char *const *key,
                            size_t nkey, struct dw_error *err);
    /*
     * Optional (initial sync, tools/initsync): apply nops upserts that all go
     * to one table with one column list (same nkey, ncolumns and column
     * names), inside the transaction begun by begin, by the fastest path the
     * target has (pg: COPY).  The result is that of apply with the same
     * operations; only the speed differs.  A rejection may not name the
     * operation (failed_op stays -1): callers retry row by row with apply.
     * The transaction may afterwards be unable to prepare (pg: a temporary
     * staging table), so end it with commit.  Also added after close.
     */
    dw_errcode (*apply_bulk)(struct dw_session *s, const struct dw_target_op *ops, size_t nops,
                             struct dw_error *err);
};

/* The registry: NULL when this build has no such type. */
const struct dw_connector_ops *dw_connector_find(const char *type);
/* NULL-terminated list of the types this build has, for messages. */
const char *const *dw_connector_types(void);

/* Free a list returned by list_prepared. */
void dw_connector_free_gids(char **gids, size_t n);

#endif
