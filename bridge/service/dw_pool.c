/*
 * Per-connector pool of target sessions.
 *
 * Opening and closing happen outside the pool's lock: a connect can take as
 * long as the target's connect timeout, and other batches must keep getting
 * the sessions that are already open.  A slot is "busy" from checkout to
 * return, whether or not its session is open yet, so the number of sessions
 * never exceeds the size.  Free slots with an open session are preferred, so
 * a lightly loaded service keeps few connections.  The health flag remembers
 * the last open or breakage, for /v1/health and /metrics.
 */
#include "bridge/service/dw_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge/common/dw_log.h"

struct slot {
    struct dw_session *session;   /* NULL until opened */
    bool busy;
};

struct dw_pool {
    const struct dw_connector_config *cfg;
    const struct dw_connector_ops *ops;
    char what[16];
    pthread_mutex_t lock;
    pthread_cond_t freed;         /* a slot became free */
    int size;
    int waiting;
    dw_pool_health health;
    char last_error[256];
    struct slot *slots;
};

struct dw_pool *dw_pool_new(const struct dw_connector_config *cfg, const struct dw_connector_ops *ops,
                            int size, const char *what)
{
    struct dw_pool *p = calloc(1, sizeof(*p));
    pthread_condattr_t ca;

    if (!p)
        return NULL;
    if (size < 1)
        size = 1;
    p->slots = calloc((size_t) size, sizeof(*p->slots));
    if (!p->slots) {
        free(p);
        return NULL;
    }
    p->cfg = cfg;
    p->ops = ops;
    p->size = size;
    snprintf(p->what, sizeof(p->what), "%s", what ? what : "sessions");
    pthread_mutex_init(&p->lock, NULL);
    /* deadlines are on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->freed, &ca);
    pthread_condattr_destroy(&ca);
    return p;
}

void dw_pool_free(struct dw_pool *pool)
{
    if (!pool)
        return;
    for (int i = 0; i < pool->size; i++) {
        if (pool->slots[i].busy)
            dw_logerr("internal error: connector \"%s\" %s session %d freed while in use", pool->cfg->name,
                      pool->what, i);
        if (pool->slots[i].session)
            pool->ops->close(pool->slots[i].session);
    }
    pthread_cond_destroy(&pool->freed);
    pthread_mutex_destroy(&pool->lock);
    free(pool->slots);
    free(pool);
}

void dw_pool_adopt(struct dw_pool *pool, struct dw_session *s)
{
    pthread_mutex_lock(&pool->lock);
    for (int i = 0; i < pool->size; i++) {
        if (!pool->slots[i].busy && !pool->slots[i].session) {
            pool->slots[i].session = s;
            pool->health = DW_POOL_UP;
            pool->last_error[0] = '\0';
            pthread_cond_signal(&pool->freed);
            pthread_mutex_unlock(&pool->lock);
            return;
        }
    }
    pthread_mutex_unlock(&pool->lock);
    pool->ops->close(s);
}

static void set_health(struct dw_pool *pool, dw_pool_health h, const char *msg)
{
    pthread_mutex_lock(&pool->lock);
    pool->health = h;
    snprintf(pool->last_error, sizeof(pool->last_error), "%s", msg ? msg : "");
    pthread_mutex_unlock(&pool->lock);
}

/* Pick a free slot, preferring one with an open session; -1 when all are busy. */
static int pick_slot(struct dw_pool *pool)
{
    int empty = -1;

    for (int i = 0; i < pool->size; i++) {
        if (pool->slots[i].busy)
            continue;
        if (pool->slots[i].session && !pool->slots[i].session->broken)
            return i;
        if (empty < 0)
            empty = i;
    }
    return empty;
}

dw_errcode dw_pool_acquire(struct dw_pool *pool, int64_t deadline_ms, struct dw_session **out,
                           struct dw_error *err)
{
    struct dw_session *s, *stale = NULL;
    dw_errcode rc;
    int i;

    *out = NULL;
    pthread_mutex_lock(&pool->lock);
    while ((i = pick_slot(pool)) < 0) {
        int wrc;

        pool->waiting++;
        if (deadline_ms > 0) {
            struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000};

            wrc = pthread_cond_timedwait(&pool->freed, &pool->lock, &ts);
        } else {
            wrc = pthread_cond_wait(&pool->freed, &pool->lock);
        }
        pool->waiting--;
        if (wrc == ETIMEDOUT && (i = pick_slot(pool)) < 0) {
            int size = pool->size;

            pthread_mutex_unlock(&pool->lock);
            dw_error_set(err, DW_ERR_TIMEOUT,
                         "could not get a session of connector \"%s\": all %d sessions stayed busy until "
                         "the deadline", pool->cfg->name, size);
            dw_error_hint(err, "Raise \"pool_size\" of the connector, or the source's "
                               "dualwrite.commit_timeout.");
            return DW_ERR_TIMEOUT;
        }
        if (i >= 0)
            break;
    }
    pool->slots[i].busy = true;
    s = pool->slots[i].session;
    if (s && s->broken) {
        stale = s;
        s = NULL;
        pool->slots[i].session = NULL;
    }
    pthread_mutex_unlock(&pool->lock);

    if (stale)
        pool->ops->close(stale);
    if (s) {
        s->failed_op = -1;
        *out = s;
        return DW_OK;
    }

    rc = pool->ops->open(pool->cfg, &s, err);
    if (rc != DW_OK) {
        set_health(pool, DW_POOL_DOWN, err ? err->message : NULL);
        pthread_mutex_lock(&pool->lock);
        pool->slots[i].busy = false;
        pthread_cond_signal(&pool->freed);
        pthread_mutex_unlock(&pool->lock);
        return rc;
    }
    s->failed_op = -1;
    pthread_mutex_lock(&pool->lock);
    pool->slots[i].session = s;
    pool->health = DW_POOL_UP;
    pool->last_error[0] = '\0';
    pthread_mutex_unlock(&pool->lock);
    *out = s;
    return DW_OK;
}

void dw_pool_release(struct dw_pool *pool, struct dw_session *s)
{
    bool broken = s->broken;
    int i;

    if (broken) {
        dw_warn("connector \"%s\": a %s session lost its connection; it is reopened on next use",
                pool->cfg->name, pool->what);
        pool->ops->close(s);
    }
    pthread_mutex_lock(&pool->lock);
    for (i = 0; i < pool->size; i++) {
        if (pool->slots[i].session == s && pool->slots[i].busy)
            break;
    }
    if (i == pool->size) {
        pthread_mutex_unlock(&pool->lock);
        dw_logerr("internal error: connector \"%s\": returned session is not from this pool",
                  pool->cfg->name);
        return;
    }
    if (broken) {
        pool->slots[i].session = NULL;
        pool->health = DW_POOL_DOWN;
        snprintf(pool->last_error, sizeof(pool->last_error), "connection lost");
    }
    pool->slots[i].busy = false;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
}

void dw_pool_stats(struct dw_pool *pool, struct dw_pool_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    out->size = pool->size;
    out->waiting = pool->waiting;
    out->health = pool->health;
    snprintf(out->last_error, sizeof(out->last_error), "%s", pool->last_error);
    for (int i = 0; i < pool->size; i++) {
        if (pool->slots[i].session)
            out->open++;
        if (pool->slots[i].busy)
            out->busy++;
    }
    pthread_mutex_unlock(&pool->lock);
}
