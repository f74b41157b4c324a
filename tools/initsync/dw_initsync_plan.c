/*
 * Which maps dw-initsync copies and in which order.
 *
 * The chosen maps (--map NAME..., or --all) keep the mapset's order, which
 * puts parents (depends_on) before their children.  A map waits for its
 * chosen parents; a parent that was not chosen is taken as copied already.
 * With --jobs N, N threads each take the first waiting map whose parents have
 * finished, so independent maps are copied at once and a child starts as soon
 * as its last parent is done.  A child whose parent did not finish (failed,
 * interrupted, stopped) is skipped: its rows would refer to rows the target
 * may not have.  Once the run is stopping nothing new starts.
 *
 * Each map's chunk size is --chunk, at most the connector's
 * records_per_transaction (one chunk is one target transaction), and with
 * --rate at most a quarter second of rows.
 */
#include "tools/initsync/dw_initsync.h"

#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_buf.h"

struct scheduler {
    struct dw_initsync_run *run;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static long chunk_for(const struct dw_initsync_run *run, const struct dw_connector_entry *e,
                      bool *capped)
{
    long chunk = run->opt.chunk;

    *capped = false;
    if (e->limits.records_per_transaction > 0 && chunk > e->limits.records_per_transaction) {
        chunk = e->limits.records_per_transaction;
        *capped = true;
    }
    if (run->opt.rate > 0 && chunk > run->opt.rate / 4)
        chunk = run->opt.rate / 4 >= 1 ? (long) (run->opt.rate / 4) : 1;
    return chunk;
}

static struct dw_throttle *throttle_for(struct dw_initsync_run *run,
                                        const struct dw_connector_entry *e)
{
    struct dw_throttle_limits tl;
    struct dw_throttle **grown;
    struct dw_throttle *t;

    for (size_t j = 0; j < run->njobs; j++)
        if (run->jobs[j].conn == e && run->jobs[j].throttle)
            return run->jobs[j].throttle;
    tl.requests_per_window = e->limits.requests_per_window;
    tl.window_s = e->limits.window_s;
    tl.execution_s_per_window = e->limits.execution_s_per_window;
    tl.concurrent = e->limits.concurrent;
    grown = realloc(run->throttles, (run->nthrottles + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    run->throttles = grown;
    if (!(t = dw_throttle_new(e->cfg.name, &tl, NULL, NULL)))
        return NULL;
    run->throttles[run->nthrottles++] = t;
    return t;
}

static bool chosen(const struct dw_initsync_run *run, const char *name)
{
    if (run->opt.all)
        return true;
    for (size_t i = 0; i < run->opt.nmaps; i++)
        if (strcmp(run->opt.maps[i], name) == 0)
            return true;
    return false;
}

static dw_errcode unknown_map(const struct dw_initsync_run *run, const char *name,
                              struct dw_error *err)
{
    struct dw_buf known;

    dw_buf_init(&known);
    for (size_t i = 0; i < run->set->nmaps; i++)
        dw_buf_printf(&known, "%s\"%s\"", i ? ", " : "", run->set->maps[i].name);
    dw_error_set(err, DW_ERR_CONFIG, "no table map is named \"%s\"", name);
    dw_error_detail(err, "The maps are: %s.", known.len ? known.data : "(none)");
    dw_buf_cleanup(&known);
    return DW_ERR_CONFIG;
}

dw_errcode dw_initsync_plan_jobs(struct dw_initsync_run *run, struct dw_error *err)
{
    const struct dw_mapset *set = run->set;
    size_t n = 0;

    for (size_t i = 0; i < run->opt.nmaps; i++)
        if (!dw_mapset_find(set, run->opt.maps[i]))
            return unknown_map(run, run->opt.maps[i], err);
    run->jobs = calloc(set->nmaps ? set->nmaps : 1, sizeof(*run->jobs));
    if (!run->jobs)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < set->nmaps; i++) {
        const struct dw_map *m = &set->maps[i];
        struct dw_initsync_job *job;
        bool capped;

        if (!chosen(run, m->name))
            continue;
        job = &run->jobs[n];
        job->map = m;
        job->conn = dw_config_connector(run->cfg, m->connector);
        if (!job->conn)
            return dw_error_set(err, DW_ERR_CONFIG, "table map \"%s\" names connector \"%s\", "
                                "which the configuration does not define", m->name, m->connector);
        job->ops = dw_connector_find(job->conn->cfg.type);
        if (!job->ops)
            return dw_error_set(err, DW_ERR_CONFIG, "connector \"%s\" has type \"%s\", which "
                                "this build does not have", job->conn->cfg.name,
                                job->conn->cfg.type);
        job->chunk = chunk_for(run, job->conn, &capped);
        if (capped)
            dw_initsync_say("notice", "table map \"%s\": %ld rows per chunk, the sync limit "
                            "\"records_per_transaction\" of connector \"%s\"", m->name,
                            job->chunk, job->conn->cfg.name);
        atomic_store(&job->estimate, -1);
        job->deps = calloc(m->ndepends ? m->ndepends : 1, sizeof(*job->deps));
        if (!job->deps)
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        /* parents come first in the mapset, so they already have their jobs */
        for (size_t d = 0; d < m->ndepends; d++)
            for (size_t j = 0; j < n; j++)
                if (strcmp(run->jobs[j].map->name, m->depends_on[d]) == 0)
                    job->deps[job->ndeps++] = j;
        run->njobs = ++n;
        if (!run->opt.dry_run && !(job->throttle = throttle_for(run, job->conn)))
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    return DW_OK;
}

void dw_initsync_plan_cleanup(struct dw_initsync_run *run)
{
    for (size_t i = 0; i < run->njobs; i++) {
        free(run->jobs[i].deps);
        dw_initsync_free_key(run->jobs[i].resume_key, run->jobs[i].nresume);
    }
    free(run->jobs);
    run->jobs = NULL;
    run->njobs = 0;
    for (size_t i = 0; i < run->nthrottles; i++)
        dw_throttle_free(run->throttles[i]);
    free(run->throttles);
    run->throttles = NULL;
    run->nthrottles = 0;
}

/* ---------------------------------------------------------------- the threads */

static bool finished_ok(int state)
{
    return state == DW_INITSYNC_DONE || state == DW_INITSYNC_FINISHED;
}

/*
 * The next job to run (under the lock), or NULL: *wait says whether a later
 * one may become ready when running jobs end.  Children of parents that
 * ended badly are marked skipped on the way.
 */
static struct dw_initsync_job *next_job(struct dw_initsync_run *run, bool *wait)
{
    *wait = false;
    if (dw_initsync_stopping(run))
        return NULL;
    for (size_t i = 0; i < run->njobs; i++) {
        struct dw_initsync_job *job = &run->jobs[i];
        bool ready = true;

        if (atomic_load(&job->state) != DW_INITSYNC_WAITING)
            continue;
        for (size_t d = 0; d < job->ndeps; d++) {
            const struct dw_initsync_job *parent = &run->jobs[job->deps[d]];
            int ps = atomic_load(&parent->state);

            if (finished_ok(ps))
                continue;
            ready = false;
            if (ps == DW_INITSYNC_WAITING || ps == DW_INITSYNC_RUNNING) {
                *wait = true;
            } else {
                snprintf(job->message, sizeof(job->message), "not started: table map \"%s\" "
                         "did not finish", parent->map->name);
                atomic_store(&job->state, DW_INITSYNC_SKIPPED);
                i = (size_t) -1;    /* its own children may now be skipped too: look again */
                *wait = false;
                break;
            }
        }
        if (ready) {
            atomic_store(&job->state, DW_INITSYNC_RUNNING);
            return job;
        }
    }
    return NULL;
}

static void *worker_main(void *arg)
{
    struct scheduler *sc = arg;

    pthread_mutex_lock(&sc->lock);
    for (;;) {
        bool wait;
        struct dw_initsync_job *job = next_job(sc->run, &wait);

        if (!job) {
            if (!wait)
                break;
            pthread_cond_wait(&sc->cond, &sc->lock);
            continue;
        }
        pthread_mutex_unlock(&sc->lock);
        dw_initsync_copy_map(sc->run, job);
        pthread_mutex_lock(&sc->lock);
        pthread_cond_broadcast(&sc->cond);
    }
    pthread_cond_broadcast(&sc->cond);
    pthread_mutex_unlock(&sc->lock);
    return NULL;
}

void dw_initsync_plan_run(struct dw_initsync_run *run)
{
    struct scheduler sc = {.run = run};
    int nthreads = run->opt.jobs < 1 ? 1 : run->opt.jobs;
    pthread_t *threads;
    int started = 0;

    if ((size_t) nthreads > run->njobs)
        nthreads = run->njobs ? (int) run->njobs : 1;
    pthread_mutex_init(&sc.lock, NULL);
    pthread_cond_init(&sc.cond, NULL);
    threads = calloc((size_t) nthreads, sizeof(*threads));
    for (int i = 0; threads && i < nthreads; i++)
        if (pthread_create(&threads[i], NULL, worker_main, &sc) == 0)
            started++;
    if (started == 0)
        worker_main(&sc);   /* no threads: copy on this one */
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    pthread_mutex_destroy(&sc.lock);
    pthread_cond_destroy(&sc.cond);
}
