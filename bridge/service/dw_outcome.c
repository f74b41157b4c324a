/*
 * The in-doubt table and the settling of prepared target transactions.
 *
 * The table is small (at most one entry per prepared transaction, which the
 * target bounds with max_prepared_transactions), so it is an array searched
 * linearly under one mutex.  The mutex is never held across I/O: settling
 * marks the entry "settling", drops the lock, talks to the target, and takes
 * the lock again to remove the entry or to clear the mark.  The mark also
 * keeps an outcome message and the resolver from sending COMMIT PREPARED for
 * the same gid at once (the second would fail with "is busy").
 *
 * Settling is idempotent at the level of the table, so that each batch is
 * settled (and counted, and logged) once.  A resolver pass lists the target's
 * prepared transactions and then looks at them one by one; an outcome message
 * may settle a listed gid in between.  Were the entry simply gone, the pass
 * would take the gid for one nobody registered and settle it a second time
 * (COMMIT PREPARED finds nothing and counts as done).  So a settled entry
 * leaves a record behind: while it exists, the resolver is told the gid is
 * being settled and leaves it alone, and the record goes once a listing that
 * began after the settle has been swept (a gid that such a listing still
 * shows is then judged afresh by the next pass, as one found on the target).
 */
#include "bridge/service/dw_outcome.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_log.h"
#include "bridge/service/dw_idindex.h"
#include "bridge/service/dw_metrics.h"
#include "bridge/service/dw_state.h"

#define SETTLE_TIMEOUT_MS 30000
/*
 * A settled record outlives any listing that could predate it by far; one
 * older than this goes even when no sweep confirmed it (its connector was
 * removed, or listing it keeps failing), which at worst brings back a
 * redundant COMMIT PREPARED.
 */
#define SETTLED_KEEP_MS 60000

/* A batch settled by this process, kept until the resolver has seen it gone. */
struct settled_rec {
    char id[sizeof(((struct dw_indoubt_info *) NULL)->id)];
    char connector[sizeof(((struct dw_indoubt_info *) NULL)->connector)];
    int64_t at_ms;              /* when COMMIT/ROLLBACK PREPARED returned (dw_now_ms clock) */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct dw_indoubt_info *entries;
static size_t nentries, capentries;
static struct settled_rec *settled;
static size_t nsettled, capsettled;
/*
 * Settled records by id.  Under load thousands of batches settle between two
 * resolver passes, and every settle and every gid a pass looks at asks
 * whether a record exists: a scan of the list per batch held the lock for
 * tens of microseconds.
 */
static const char *settled_key(const void *arg, size_t pos)
{
    return ((const struct settled_rec *) arg)[pos].id;
}
static struct dw_idindex settled_ix = {.key = settled_key};

void dw_outcome_init(void)
{
}

void dw_outcome_cleanup(void)
{
    pthread_mutex_lock(&lock);
    free(entries);
    entries = NULL;
    nentries = capentries = 0;
    free(settled);
    settled = NULL;
    nsettled = capsettled = 0;
    dw_idindex_cleanup(&settled_ix);
    pthread_mutex_unlock(&lock);
}

const char *dw_decision_name(dw_decision d)
{
    switch (d) {
    case DW_DECISION_COMMIT: return "commit";
    case DW_DECISION_ROLLBACK: return "rollback";
    case DW_DECISION_NONE: break;
    }
    return "none";
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char) s[i]))
            return false;
    }
    return true;
}

bool dw_outcome_parse_id(const char *id, char *system, size_t system_size, char *xid, size_t xid_size)
{
    const char *c1 = strchr(id, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    size_t xlen;

    if (!c1 || !c2 || strchr(c2 + 1, ':'))
        return false;
    xlen = strlen(c2 + 1);
    if (!all_digits(id, (size_t) (c1 - id)) || !all_digits(c1 + 1, (size_t) (c2 - c1 - 1)) ||
        !all_digits(c2 + 1, xlen) || xlen > 20)
        return false;
    if (system)
        snprintf(system, system_size, "%.*s", (int) (c1 - id), id);
    if (xid)
        snprintf(xid, xid_size, "%s", c2 + 1);
    return true;
}

/* Under lock. */
static struct dw_indoubt_info *find(const char *id)
{
    for (size_t i = 0; i < nentries; i++) {
        if (strcmp(entries[i].id, id) == 0)
            return &entries[i];
    }
    return NULL;
}

/* Under lock. */
static void remove_at(size_t i)
{
    entries[i] = entries[nentries - 1];
    nentries--;
}

/* Under lock. */
static struct settled_rec *find_settled(const char *id)
{
    long pos = dw_idindex_find(&settled_ix, id);

    return pos < 0 ? NULL : &settled[pos];
}

/* Under lock: drop the records that match (connector NULL: any) and are older than before_ms. */
static void drop_settled(const char *connector, int64_t before_ms)
{
    size_t kept = 0;

    for (size_t i = 0; i < nsettled; i++) {
        if (settled[i].at_ms < before_ms && (!connector || strcmp(settled[i].connector, connector) == 0))
            continue;
        if (kept != i)
            settled[kept] = settled[i];
        kept++;
    }
    if (kept == nsettled)
        return;
    nsettled = kept;
    /* out of memory the index stays empty: a record not found costs a redundant settle */
    dw_idindex_rebuild(&settled_ix, nsettled);
}

/*
 * Under lock: remember that id was settled just now.  Out of memory, the
 * record is not kept; the worst that follows is a redundant settle.
 */
static void remember_settled(const char *id, const char *connector)
{
    struct settled_rec *r = find_settled(id);
    int64_t now = dw_now_ms();

    if (!r) {
        if (nsettled == capsettled)
            drop_settled(NULL, now - SETTLED_KEEP_MS);
        if (nsettled == capsettled) {
            size_t cap = capsettled ? capsettled * 2 : 32;
            struct settled_rec *p = realloc(settled, cap * sizeof(*p));

            if (!p)
                return;
            settled = p;
            capsettled = cap;
            dw_idindex_rebind(&settled_ix, settled);
        }
        r = &settled[nsettled];
        snprintf(r->id, sizeof(r->id), "%s", id);
        if (!dw_idindex_add(&settled_ix, r->id, nsettled))
            return;
        nsettled++;
    }
    snprintf(r->connector, sizeof(r->connector), "%s", connector);
    r->at_ms = now;
}

/* Under lock: a new zeroed entry, or NULL when out of memory. */
static struct dw_indoubt_info *add(const char *id, const char *connector)
{
    struct dw_indoubt_info *e;

    if (nentries == capentries) {
        size_t cap = capentries ? capentries * 2 : 32;
        struct dw_indoubt_info *p = realloc(entries, cap * sizeof(*p));

        if (!p)
            return NULL;
        entries = p;
        capentries = cap;
    }
    e = &entries[nentries++];
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    snprintf(e->connector, sizeof(e->connector), "%s", connector);
    e->since_ms = dw_now_ms();
    return e;
}

dw_errcode dw_outcome_register(const char *id, const char *connector, const char *xid, struct dw_error *err)
{
    struct dw_indoubt_info *e;

    if (strlen(id) >= sizeof(e->id))
        return dw_error_set(err, DW_ERR_PROTOCOL, "batch id is too long (%zu bytes)", strlen(id));
    pthread_mutex_lock(&lock);
    e = find(id);
    if (e) {
        /* The same transaction twice: never touch the target for the second copy. */
        dw_error_set(err, DW_ERR_TARGET, "batch %s is already in doubt on connector \"%s\" (%s); its "
                                         "outcome is awaited", id, e->connector,
                     e->state == DW_INDOUBT_PREPARING ? "being prepared" : "prepared");
        pthread_mutex_unlock(&lock);
        return DW_ERR_TARGET;
    }
    e = add(id, connector);
    if (!e) {
        pthread_mutex_unlock(&lock);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    e->state = DW_INDOUBT_PREPARING;
    snprintf(e->xid, sizeof(e->xid), "%s", xid ? xid : "");
    pthread_mutex_unlock(&lock);
    return DW_OK;
}

dw_decision dw_outcome_prepared(const char *id)
{
    struct dw_indoubt_info *e;
    dw_decision d = DW_DECISION_NONE;

    pthread_mutex_lock(&lock);
    e = find(id);
    if (e) {
        e->state = DW_INDOUBT_PREPARED;
        e->since_ms = dw_now_ms();
        d = e->decision;
    }
    pthread_mutex_unlock(&lock);
    return d;
}

void dw_outcome_forget(const char *id)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nentries; i++) {
        if (strcmp(entries[i].id, id) == 0) {
            remove_at(i);
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

dw_decide_result dw_outcome_decide(const char *id, dw_decision d, dw_decision *previous)
{
    struct dw_indoubt_info *e;
    dw_decide_result r = DW_DECIDE_OK;

    pthread_mutex_lock(&lock);
    e = find(id);
    if (!e) {
        r = DW_DECIDE_UNKNOWN;
    } else if (e->decision != DW_DECISION_NONE && e->decision != d) {
        r = DW_DECIDE_CONFLICT;
        if (previous)
            *previous = e->decision;
    } else {
        e->decision = d;
    }
    pthread_mutex_unlock(&lock);
    return r;
}

void dw_outcome_observe(const char *id, const char *connector, struct dw_indoubt_info *info)
{
    struct dw_indoubt_info *e;
    const struct settled_rec *rec;

    pthread_mutex_lock(&lock);
    e = find(id);
    if (!e && (rec = find_settled(id)) != NULL) {
        /*
         * Settled by this process moments ago, probably after the caller's
         * listing began: not a new gid.  Described as being settled, so that
         * the resolver leaves it alone; the sweep of a later listing decides.
         */
        memset(info, 0, sizeof(*info));
        snprintf(info->id, sizeof(info->id), "%s", id);
        snprintf(info->connector, sizeof(info->connector), "%s", connector);
        info->state = DW_INDOUBT_PREPARED;
        info->settling = true;
        info->since_ms = rec->at_ms;
        pthread_mutex_unlock(&lock);
        return;
    }
    if (!e) {
        e = add(id, connector);
        if (e) {
            e->state = DW_INDOUBT_PREPARED;
            e->discovered = true;
            if (!dw_outcome_parse_id(id, NULL, 0, e->xid, sizeof(e->xid)))
                e->xid[0] = '\0';
        }
    }
    if (e) {
        *info = *e;
    } else {
        /* out of memory: describe it without keeping it; the next pass tries again */
        memset(info, 0, sizeof(*info));
        snprintf(info->id, sizeof(info->id), "%s", id);
        snprintf(info->connector, sizeof(info->connector), "%s", connector);
        info->state = DW_INDOUBT_PREPARED;
        info->discovered = true;
        if (!dw_outcome_parse_id(id, NULL, 0, info->xid, sizeof(info->xid)))
            info->xid[0] = '\0';
        info->since_ms = dw_now_ms();
    }
    pthread_mutex_unlock(&lock);
}

bool dw_outcome_batched_settle(const char *id)
{
    char connector[sizeof(((struct dw_indoubt_info *) NULL)->connector)];
    struct dw_indoubt_info *e;
    struct dw_state *st;
    struct dw_conn_state *c;
    bool yes;

    pthread_mutex_lock(&lock);
    e = find(id);
    if (e)
        snprintf(connector, sizeof(connector), "%s", e->connector);
    pthread_mutex_unlock(&lock);
    if (!e)
        return false;
    st = dw_state_acquire();
    c = st ? dw_state_conn(st, connector) : NULL;
    yes = c && c->ops->resolve_prepared_many;
    dw_state_release(st);
    return yes;
}

void dw_outcome_mark_reported(const char *id)
{
    struct dw_indoubt_info *e;

    pthread_mutex_lock(&lock);
    e = find(id);
    if (e)
        e->reported = true;
    pthread_mutex_unlock(&lock);
}

void dw_outcome_sweep(const char *connector, const char *const *ids, size_t nids, int64_t listed_at_ms)
{
    pthread_mutex_lock(&lock);
    /*
     * A record settled before this listing began has done its work: either
     * the listing no longer shows its gid, or the gid is on the target again
     * and the next pass judges it like any gid nobody registered.
     */
    drop_settled(connector, listed_at_ms);
    drop_settled(NULL, dw_now_ms() - SETTLED_KEEP_MS);
    for (size_t i = 0; i < nentries;) {
        struct dw_indoubt_info *e = &entries[i];
        bool listed = false;

        if (e->state != DW_INDOUBT_PREPARED || e->settling || e->since_ms >= listed_at_ms ||
            strcmp(e->connector, connector) != 0) {
            i++;
            continue;
        }
        for (size_t k = 0; k < nids && !listed; k++)
            listed = strcmp(ids[k], e->id) == 0;
        if (listed) {
            i++;
            continue;
        }
        dw_debug("batch %s: no longer prepared on connector \"%s\"; forgetting it", e->id, e->connector);
        remove_at(i);
    }
    pthread_mutex_unlock(&lock);
}

size_t dw_outcome_count(void)
{
    size_t n;

    pthread_mutex_lock(&lock);
    n = nentries;
    pthread_mutex_unlock(&lock);
    return n;
}

size_t dw_outcome_list(struct dw_indoubt_info **out)
{
    size_t n;

    pthread_mutex_lock(&lock);
    n = nentries;
    *out = n ? malloc(n * sizeof(**out)) : NULL;
    if (*out)
        memcpy(*out, entries, n * sizeof(**out));
    else
        n = 0;
    pthread_mutex_unlock(&lock);
    return n;
}

/* Clear the settling mark; when done, replace the entry by a settled record. */
static void settle_done(const char *id, bool done)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nentries; i++) {
        if (strcmp(entries[i].id, id) == 0) {
            if (done) {
                remember_settled(id, entries[i].connector);
                remove_at(i);
            } else {
                entries[i].settling = false;
            }
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

/* Mark the decided, prepared entry id as being settled and copy it; false when there is nothing to do. */
static bool claim(const char *id, struct dw_indoubt_info *copy)
{
    struct dw_indoubt_info *e;

    pthread_mutex_lock(&lock);
    e = find(id);
    if (!e || e->decision == DW_DECISION_NONE || e->settling || e->state != DW_INDOUBT_PREPARED) {
        pthread_mutex_unlock(&lock);
        return false;
    }
    e->settling = true;
    *copy = *e;
    pthread_mutex_unlock(&lock);
    return true;
}

/* Record how settling a claimed entry went: on failure the entry stays for the resolver. */
static dw_errcode finish(const struct dw_indoubt_info *e, const char *by, dw_errcode rc, struct dw_error *err)
{
    bool commit = e->decision == DW_DECISION_COMMIT;

    if (rc != DW_OK) {
        dw_error_prefix(err, "could not %s prepared transaction \"" DW_GID_PREFIX "%s\" on connector \"%s\"",
                        commit ? "commit" : "roll back", e->id, e->connector);
        settle_done(e->id, false);
        return rc;
    }
    settle_done(e->id, true);
    dw_metrics_settled(commit, by);
    dw_info("batch %s: %s on connector \"%s\" (decided by %s)", e->id,
            commit ? "COMMIT PREPARED" : "ROLLBACK PREPARED", e->connector, by);
    return DW_OK;
}

/*
 * Settle n claimed entries of one connector on one settle session: in one
 * exchange when the connector can (resolve_prepared_many), else one by one.
 * rcs and errs receive each entry's result.
 */
static void settle_claimed(const struct dw_indoubt_info *const *es, size_t n, dw_errcode *rcs,
                           struct dw_error *errs)
{
    struct dw_state *st = dw_state_acquire();
    struct dw_conn_state *c = dw_state_conn(st, es[0]->connector);
    struct dw_session *s = NULL;
    struct dw_error perr;
    int64_t t0 = dw_now_us();
    long timeout;
    dw_errcode rc;
    size_t i;

    for (i = 0; i < n; i++)
        dw_error_clear(&errs[i]);
    if (!c || !c->ops->resolve_prepared) {
        for (i = 0; i < n; i++)
            rcs[i] = dw_error_set(&errs[i], DW_ERR_CONFIG, "connector \"%s\" is %s", es[i]->connector,
                                  c ? "not two-phase" : "no longer configured");
        dw_state_release(st);
        return;
    }
    timeout = c->entry->cfg.timeout_ms > 0 ? c->entry->cfg.timeout_ms : SETTLE_TIMEOUT_MS;
    dw_error_clear(&perr);
    rc = dw_pool_acquire(c->settle, dw_now_ms() + timeout, &s, &perr);
    if (rc != DW_OK) {
        for (i = 0; i < n; i++) {
            errs[i] = perr;
            rcs[i] = rc;
        }
    } else if (n > 1 && c->ops->resolve_prepared_many) {
        const char **gids = malloc(n * sizeof(*gids));
        char (*gidbuf)[sizeof(es[0]->id) + sizeof(DW_GID_PREFIX)] = malloc(n * sizeof(*gidbuf));
        bool *commit = malloc(n * sizeof(*commit));

        if (gids && gidbuf && commit) {
            for (i = 0; i < n; i++) {
                snprintf(gidbuf[i], sizeof(gidbuf[i]), DW_GID_PREFIX "%s", es[i]->id);
                gids[i] = gidbuf[i];
                commit[i] = es[i]->decision == DW_DECISION_COMMIT;
            }
            c->ops->resolve_prepared_many(s, gids, commit, n, rcs, errs);
        } else {
            for (i = 0; i < n; i++)
                rcs[i] = dw_error_set(&errs[i], DW_ERR_NOMEM, "out of memory");
        }
        free(gids);
        free(gidbuf);
        free(commit);
    } else {
        for (i = 0; i < n; i++) {
            char gid[sizeof(es[0]->id) + sizeof(DW_GID_PREFIX)];

            snprintf(gid, sizeof(gid), DW_GID_PREFIX "%s", es[i]->id);
            rcs[i] = c->ops->resolve_prepared(s, gid, es[i]->decision == DW_DECISION_COMMIT, &errs[i]);
        }
    }
    if (s)
        dw_pool_release(c->settle, s);
    dw_state_release(st);
    t0 = dw_now_us() - t0;
    for (i = 0; i < n; i++)
        dw_metrics_stage(DW_STAGE_SETTLE, t0);
}

dw_errcode dw_outcome_settle(const char *id, const char *by, struct dw_error *err)
{
    struct dw_indoubt_info copy;
    const struct dw_indoubt_info *one = &copy;
    struct dw_error local;
    dw_errcode rc;

    if (!claim(id, &copy))
        return DW_OK;
    settle_claimed(&one, 1, &rc, &local);
    if (rc != DW_OK && err && !dw_error_is_set(err))
        *err = local;
    return finish(&copy, by, rc, err);
}

void dw_outcome_settle_many(const char *const *ids, size_t n, const char *by)
{
    struct dw_indoubt_info *copies = malloc(n * sizeof(*copies));
    const struct dw_indoubt_info **group = malloc(n * sizeof(*group));
    dw_errcode *rcs = malloc(n * sizeof(*rcs));
    struct dw_error *errs = malloc(n * sizeof(*errs));
    bool *taken = calloc(n, sizeof(*taken));
    size_t m = 0;

    if (!copies || !group || !rcs || !errs || !taken) {
        /* out of memory: one at a time, each on the stack */
        for (size_t i = 0; i < n; i++) {
            struct dw_error err;

            dw_error_clear(&err);
            if (dw_outcome_settle(ids[i], by, &err) != DW_OK)
                dw_warn("batch %s: %s; the resolver will retry", ids[i], err.message);
        }
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (claim(ids[i], &copies[m]))
            m++;
    }
    /* one exchange per connector, in the order the first of each came */
    for (size_t i = 0; i < m; i++) {
        size_t k = 0;

        if (taken[i])
            continue;
        for (size_t j = i; j < m; j++) {
            if (!taken[j] && strcmp(copies[j].connector, copies[i].connector) == 0) {
                taken[j] = true;
                group[k++] = &copies[j];
            }
        }
        settle_claimed(group, k, rcs, errs);
        for (size_t j = 0; j < k; j++) {
            if (finish(group[j], by, rcs[j], &errs[j]) != DW_OK)
                dw_warn("batch %s: %s; the resolver will retry", group[j]->id, errs[j].message);
        }
    }
out:
    free(copies);
    free(group);
    free(rcs);
    free(errs);
    free(taken);
}
