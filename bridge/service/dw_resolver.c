/*
 * The resolver thread.
 *
 * It trusts only two things: the list of prepared transactions on the target
 * and the source's commit log.  A pass that races with an outcome message or
 * with a worker costs at most a redundant query: a gid the outcome settled
 * after the pass listed it is recognised as settled (dw_outcome.c keeps a
 * record of it), not taken for a new one and settled twice.  Only
 * one rule protects correctness: a transaction a worker is still preparing
 * (registered, not yet prepared) is never judged, because until the worker
 * answers, the source transaction is legitimately "in progress" or, if the
 * source gave up, "aborted", and both lead to the right decision anyway once
 * the entry is prepared.
 *
 * Problems that repeat every pass (source down, a gid nobody can decide) are
 * logged once, not every interval.
 */
#include "bridge/service/dw_resolver.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "bridge/common/dw_json.h"
#include "bridge/common/dw_log.h"
#include "bridge/service/dw_metrics.h"
#include "bridge/service/dw_outcome.h"
#include "bridge/service/dw_state.h"

#define SOURCE_TIMEOUT_MS 10000
#define LIST_TIMEOUT_MS 10000

typedef enum xact_status {
    XACT_COMMITTED,
    XACT_ABORTED,
    XACT_IN_PROGRESS,
    XACT_UNKNOWN,       /* NULL: too old, or wraparound made it unknowable */
    XACT_ERROR,         /* the query failed but the connection is fine */
    XACT_SOURCE_DOWN
} xact_status;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static pthread_t thread;
static bool started, stop_requested, wake_requested;
static struct dw_resolver_info shared_info;   /* under lock */

/* Owned by the resolver thread only. */
static PGconn *src;
static char *src_conninfo;
static char src_system[32];
static char last_source_error[256];
static char last_list_error[256];

void dw_resolver_info(struct dw_resolver_info *out)
{
    pthread_mutex_lock(&lock);
    *out = shared_info;
    pthread_mutex_unlock(&lock);
}

static void set_info(bool up, const char *error, bool pass_done)
{
    pthread_mutex_lock(&lock);
    shared_info.source_up = up;
    snprintf(shared_info.source_system, sizeof(shared_info.source_system), "%s", src_system);
    snprintf(shared_info.last_error, sizeof(shared_info.last_error), "%s", error ? error : "");
    if (pass_done)
        shared_info.passes_done = true;
    pthread_mutex_unlock(&lock);
}

static void source_close(void)
{
    if (src)
        PQfinish(src);
    src = NULL;
}

/* One line of libpq's message (it ends with a newline and may have more lines). */
static void first_line(char *dst, size_t size, const char *msg)
{
    size_t n = strcspn(msg ? msg : "", "\n");

    snprintf(dst, size, "%.*s", (int) n, msg ? msg : "");
}

static void source_problem(const char *fmt, const char *msg)
{
    char line[256];

    first_line(line, sizeof(line), msg);
    if (strcmp(line, last_source_error) != 0) {
        char text[512];

        snprintf(text, sizeof(text), fmt, line);
        dw_warn("resolver: %s; prepared transactions wait until the source is reachable", text);
        snprintf(last_source_error, sizeof(last_source_error), "%s", line);
    }
    set_info(false, line, false);
}

/* Connect (or reconnect after a change of conninfo or a broken connection). */
static bool source_connect(const char *conninfo, const char *expected_system)
{
    static const char *const keys[] = {"dbname", "connect_timeout", "fallback_application_name", NULL};
    const char *values[] = {conninfo, "10", "dualwrited resolver", NULL};
    PGresult *res;

    if (src && PQstatus(src) == CONNECTION_OK && src_conninfo && strcmp(src_conninfo, conninfo) == 0)
        return true;
    source_close();
    free(src_conninfo);
    src_conninfo = strdup(conninfo);
    src_system[0] = '\0';
    src = PQconnectdbParams(keys, values, 1);
    if (!src || PQstatus(src) != CONNECTION_OK) {
        source_problem("could not connect to the source: %s", src ? PQerrorMessage(src) : "out of memory");
        source_close();
        return false;
    }
    res = PQexec(src, "SET statement_timeout = 10000");
    PQclear(res);
    /* The system identifier tells our gids from those of another source; best effort. */
    res = PQexec(src, "SELECT system_identifier::text FROM pg_control_system()");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        snprintf(src_system, sizeof(src_system), "%s", PQgetvalue(res, 0, 0));
    else if (expected_system)
        snprintf(src_system, sizeof(src_system), "%s", expected_system);
    PQclear(res);
    if (expected_system && src_system[0] && strcmp(src_system, expected_system) != 0)
        dw_logerr("resolver: the source at source.conninfo has system identifier %s, but the configuration "
                  "expects %s; prepared transactions of %s are not settled", src_system, expected_system,
                  expected_system);
    if (last_source_error[0])
        dw_info("resolver: the source is reachable again");
    last_source_error[0] = '\0';
    set_info(true, NULL, false);
    return true;
}

static xact_status source_xact_status(const char *xid, char *msg, size_t msgsize)
{
    const char *params[1] = {xid};
    PGresult *res;
    xact_status st;

    msg[0] = '\0';
    res = PQexecParams(src, "SELECT pg_xact_status($1::xid8)", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        /*
         * After the server went away libpq may still say CONNECTION_OK, with
         * an error of its own (no SQLSTATE); or the server said it is going.
         */
        bool gone = PQstatus(src) != CONNECTION_OK || !state || strncmp(state, "08", 2) == 0 ||
                    strncmp(state, "57P0", 4) == 0;

        first_line(msg, msgsize, primary ? primary : PQerrorMessage(src));
        PQclear(res);
        if (gone) {
            source_problem("lost the connection to the source: %s", msg);
            source_close();
            return XACT_SOURCE_DOWN;
        }
        return XACT_ERROR;
    }
    if (PQgetisnull(res, 0, 0))
        st = XACT_UNKNOWN;
    else if (strcmp(PQgetvalue(res, 0, 0), "committed") == 0)
        st = XACT_COMMITTED;
    else if (strcmp(PQgetvalue(res, 0, 0), "aborted") == 0)
        st = XACT_ABORTED;
    else
        st = XACT_IN_PROGRESS;
    PQclear(res);
    return st;
}

static void settle(const char *id, const char *by)
{
    struct dw_error err;

    dw_error_clear(&err);
    if (dw_outcome_settle(id, by, &err) != DW_OK)
        dw_warn("resolver: %s; will retry", err.message);
}

/*
 * Record the source's verdict and settle.  An outcome message may have
 * settled the batch since the pass looked at it: then there is nothing to
 * do, and nothing to announce.
 */
static void decide_and_settle(const struct dw_indoubt_info *info, dw_decision d)
{
    bool commit = d == DW_DECISION_COMMIT;
    dw_decision previous = DW_DECISION_NONE;

    switch (dw_outcome_decide(info->id, d, &previous)) {
    case DW_DECIDE_UNKNOWN:
        dw_debug("resolver: batch %s was settled meanwhile", info->id);
        return;
    case DW_DECIDE_CONFLICT:
        dw_logerr("resolver: source transaction %s %s, but batch %s was decided \"%s\" earlier; keeping "
                  "the earlier decision", info->xid, commit ? "committed" : "aborted", info->id,
                  dw_decision_name(previous));
        break;
    case DW_DECIDE_OK:
        dw_info("resolver: source transaction %s %s; %s batch %s", info->xid, commit ? "committed" : "aborted",
                commit ? "committing" : "rolling back", info->id);
        break;
    }
    settle(info->id, "resolver");
}

static void cannot_decide(const struct dw_indoubt_info *info, const char *why)
{
    char gid[sizeof(info->id) + sizeof(DW_GID_PREFIX)], quoted[256];

    if (info->reported)
        return;
    /* a gid on the target can hold anything: keep the log line one line */
    snprintf(gid, sizeof(gid), DW_GID_PREFIX "%s", info->id);
    dw_json_quote(quoted, sizeof(quoted), gid, strlen(gid));
    dw_logerr("resolver: cannot settle prepared transaction %s on connector \"%s\": %s; a human must run "
              "COMMIT PREPARED or ROLLBACK PREPARED on the target after checking the source", quoted,
              info->connector, why);
    dw_outcome_mark_reported(info->id);
}

/* Decide one listed gid. Returns false when the source went away (stop asking this pass). */
static bool judge(const struct dw_indoubt_info *info, bool source_ok, const char *expected_system,
                  long grace_ms)
{
    char system[32], msg[256], why[400];

    if (info->settling)
        return true;
    if (info->decision != DW_DECISION_NONE) {
        settle(info->id, "outcome");   /* decided earlier, could not be applied then */
        return true;
    }
    if (info->state == DW_INDOUBT_PREPARING)
        return true;
    if (!info->discovered && dw_now_ms() - info->since_ms < grace_ms)
        return true;
    if (!source_ok)
        return true;
    if (!info->xid[0] || !dw_outcome_parse_id(info->id, system, sizeof(system), NULL, 0)) {
        cannot_decide(info, "its id is not \"<system>:<database oid>:<xid>\", so no source transaction "
                            "can be asked");
        return true;
    }
    if ((src_system[0] && strcmp(system, src_system) != 0) ||
        (expected_system && strcmp(system, expected_system) != 0)) {
        snprintf(why, sizeof(why), "it belongs to source system %s, and this bridge's source is %s", system,
                 src_system[0] ? src_system : expected_system);
        cannot_decide(info, why);
        return true;
    }
    switch (source_xact_status(info->xid, msg, sizeof(msg))) {
    case XACT_COMMITTED:
        decide_and_settle(info, DW_DECISION_COMMIT);
        break;
    case XACT_ABORTED:
        decide_and_settle(info, DW_DECISION_ROLLBACK);
        break;
    case XACT_IN_PROGRESS:
        dw_debug("resolver: source transaction %s of batch %s is still in progress", info->xid, info->id);
        break;
    case XACT_UNKNOWN:
        snprintf(why, sizeof(why), "pg_xact_status(%s) on the source is null (the transaction is too old "
                                   "for the source's commit log)", info->xid);
        cannot_decide(info, why);
        break;
    case XACT_ERROR:
        snprintf(why, sizeof(why), "pg_xact_status(%s) failed on the source: %s", info->xid, msg);
        cannot_decide(info, why);
        break;
    case XACT_SOURCE_DOWN:
        return false;
    }
    return true;
}

static void pass_connector(struct dw_conn_state *c, bool *source_ok, const char *expected_system,
                           long grace_ms)
{
    struct dw_session *s = NULL;
    struct dw_error err;
    char **gids = NULL;
    const char **ids;
    size_t ngids = 0;
    int64_t listed_at;
    long timeout = c->entry->cfg.timeout_ms > 0 ? c->entry->cfg.timeout_ms : LIST_TIMEOUT_MS;
    dw_errcode rc;

    dw_error_clear(&err);
    listed_at = dw_now_ms();
    rc = dw_pool_acquire(c->settle, dw_now_ms() + timeout, &s, &err);
    if (rc == DW_OK) {
        rc = c->ops->list_prepared(s, DW_GID_PREFIX, &gids, &ngids, &err);
        dw_pool_release(c->settle, s);
    }
    if (rc != DW_OK) {
        if (strcmp(err.message, last_list_error) != 0)
            dw_warn("resolver: connector \"%s\": %s", c->name, err.message);
        snprintf(last_list_error, sizeof(last_list_error), "%s", err.message);
        return;
    }
    last_list_error[0] = '\0';
    ids = calloc(ngids ? ngids : 1, sizeof(*ids));
    for (size_t i = 0; i < ngids; i++) {
        struct dw_indoubt_info info;
        const char *id = gids[i] + strlen(DW_GID_PREFIX);

        if (strncmp(gids[i], DW_GID_PREFIX, strlen(DW_GID_PREFIX)) != 0)
            continue;
        if (ids)
            ids[i] = id;
        dw_outcome_observe(id, c->name, &info);
        if (!judge(&info, *source_ok, expected_system, grace_ms))
            *source_ok = false;
    }
    /* Without the id list we cannot tell what vanished; keep everything this time. */
    if (ids) {
        size_t n = 0;

        for (size_t i = 0; i < ngids; i++) {
            if (ids[i])
                ids[n++] = ids[i];
        }
        dw_outcome_sweep(c->name, ids, n, listed_at);
    }
    free(ids);
    dw_connector_free_gids(gids, ngids);
}

/* Entries whose connector a reload removed: nobody here can settle them any more. */
static void report_orphans(struct dw_state *st)
{
    struct dw_indoubt_info *list = NULL;
    size_t n = dw_outcome_list(&list);

    for (size_t i = 0; i < n; i++) {
        if (!list[i].reported && !dw_state_conn(st, list[i].connector))
            cannot_decide(&list[i], "its connector is no longer configured");
    }
    free(list);
}

static void pass(void)
{
    struct dw_state *st = dw_state_acquire();
    bool source_ok;
    const char *expected;

    if (!st)
        return;
    expected = st->config->source_system;
    source_ok = st->config->source_conninfo && source_connect(st->config->source_conninfo, expected);
    for (size_t i = 0; i < st->nconns; i++) {
        struct dw_conn_state *c = &st->conns[i];

        if (!c->ops->list_prepared || !c->ops->resolve_prepared)
            continue;
        if (c->checked && !c->two_phase)
            continue;
        pass_connector(c, &source_ok, expected, st->config->resolver_grace_ms);
    }
    report_orphans(st);
    set_info(source_ok, source_ok ? NULL : last_source_error, true);
    dw_state_release(st);
}

static long current_interval(void)
{
    struct dw_state *st = dw_state_acquire();
    long ms = st && st->config->resolver_interval_ms > 0 ? st->config->resolver_interval_ms : 1000;

    dw_state_release(st);
    return ms;
}

static void *resolver_main(void *arg)
{
    (void) arg;
    for (;;) {
        struct timespec ts;
        long ms;

        pass();
        ms = current_interval();
        ts = dw_monotonic_in_ms(ms);
        pthread_mutex_lock(&lock);
        while (!stop_requested && !wake_requested) {
            if (pthread_cond_timedwait(&cond, &lock, &ts) != 0)
                break;
        }
        wake_requested = false;
        if (stop_requested) {
            pthread_mutex_unlock(&lock);
            break;
        }
        pthread_mutex_unlock(&lock);
    }
    source_close();
    free(src_conninfo);
    src_conninfo = NULL;
    return NULL;
}

dw_errcode dw_resolver_start(struct dw_error *err)
{
    pthread_condattr_t ca;
    int rc;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cond, &ca);
    pthread_condattr_destroy(&ca);
    stop_requested = false;
    rc = pthread_create(&thread, NULL, resolver_main, NULL);
    if (rc != 0)
        return dw_error_set(err, DW_ERR_INTERNAL, "could not start the resolver thread: %s", strerror(rc));
    started = true;
    return DW_OK;
}

void dw_resolver_wake(void)
{
    pthread_mutex_lock(&lock);
    wake_requested = true;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
}

void dw_resolver_stop(void)
{
    if (!started)
        return;
    pthread_mutex_lock(&lock);
    stop_requested = true;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    pthread_join(thread, NULL);
    pthread_cond_destroy(&cond);
    started = false;
}
