/*
 * One map of dw-initsync: its sessions, and the chunks flowing from a reader
 * thread to the writer (the job's own thread).
 *
 * The reader finds each chunk's end, opens a source transaction, reads the
 * chunk's rows FOR SHARE and maps them; the writer sends them to the target,
 * records the checkpoint and commits that source transaction.  Each chunk
 * needs its own source transaction (its locks last until its checkpoint), so
 * the map has NSLOTS source sessions used in turn: while the writer sends
 * chunk i, the reader already reads chunk i + 1 on the other session, and
 * the source, the mapping and the target work at the same time.  Checkpoints
 * stay in order because the writer takes the chunks in order.
 *
 * Stopping: Ctrl-C, --max-errors or an error let the writer finish (or cut)
 * the chunk at hand; a chunk already read but not written is rolled back,
 * which releases its locks and leaves its rows for --resume.
 */
#include "tools/initsync/dw_initsync.h"

#include <stdlib.h>
#include <string.h>

#define NSLOTS 2

enum slot_state { SLOT_FREE, SLOT_READY };

struct slot {
    PGconn *conn;
    enum slot_state state;
    bool in_txn;                    /* a source transaction is open on conn */
    struct dw_initsync_chunk chunk;
};

struct copier {
    struct dw_initsync_run *run;
    struct dw_initsync_job *job;
    struct dw_initsync_source src;
    struct dw_session *target;
    struct slot slots[NSLOTS];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool reader_done;               /* no more chunks will come */
    bool writer_done;               /* the reader must stop */
    struct dw_error reader_err;     /* why the reader stopped early, if it did */
    bool reader_failed;
};

static void chunk_reset(struct dw_initsync_chunk *c, size_t nkey)
{
    PQclear(c->rows);
    c->rows = NULL;
    c->nrows = 0;
    dw_initsync_free_key(c->lo, nkey);
    c->lo = NULL;
    dw_initsync_free_key(c->hi, nkey);
    c->hi = NULL;
    c->last = false;
    c->ops = NULL;
    c->nops = 0;
    c->row_op = NULL;
    c->row_error = NULL;
    c->nmap_errors = 0;
    dw_arena_reset(&c->arena);
}

static void end_txn(struct slot *s)
{
    if (s->in_txn && s->conn)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    s->in_txn = false;
}

/* ---------------------------------------------------------------- the reader */

static dw_errcode read_chunk(struct copier *cp, struct slot *s, char *const *lo,
                             struct dw_error *err)
{
    struct dw_initsync_chunk *c = &s->chunk;
    bool dry = cp->run->opt.dry_run;
    PGresult *res;
    dw_errcode rc;

    chunk_reset(c, cp->job->map->nkey);
    c->conn = s->conn;
    if (lo && !(c->lo = dw_initsync_copy_key((const char *const *) lo, cp->job->map->nkey)))
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    if ((rc = dw_initsync_source_bound(s->conn, &cp->src, lo, &c->hi, err)) != DW_OK)
        return rc;
    c->last = c->hi == NULL;
    if (!dry) {
        if ((rc = dw_initsync_sql(s->conn, "BEGIN", 0, NULL, &res, err)) != DW_OK)
            return rc;
        PQclear(res);
        s->in_txn = true;
    }
    rc = dw_initsync_source_rows(s->conn, &cp->src, lo, c->hi, &c->rows, err);
    if (rc != DW_OK)
        return rc;
    c->nrows = (size_t) PQntuples(c->rows);
    rc = dw_initsync_map_chunk(cp->run, &cp->src, c, err);
    if (rc != DW_OK)
        dw_error_prefix(err, "table map \"%s\"", cp->job->map->name);
    return rc;
}

static void *reader_main(void *arg)
{
    struct copier *cp = arg;
    const struct dw_map *map = cp->job->map;
    char **lo = NULL;
    struct dw_error err;

    dw_error_clear(&err);
    if (cp->job->resume_key &&
        !(lo = dw_initsync_copy_key((const char *const *) cp->job->resume_key, map->nkey)))
        dw_error_set(&err, DW_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !dw_error_is_set(&err); i++) {
        struct slot *s = &cp->slots[i % NSLOTS];
        bool stop;

        pthread_mutex_lock(&cp->lock);
        while (s->state != SLOT_FREE && !cp->writer_done)
            pthread_cond_wait(&cp->cond, &cp->lock);
        stop = cp->writer_done;
        pthread_mutex_unlock(&cp->lock);
        if (stop || !dw_initsync_pace_wait(cp->run, &cp->run->pace))
            break;
        if (read_chunk(cp, s, lo, &err) != DW_OK) {
            end_txn(s);
            break;
        }
        dw_initsync_pace_charge(&cp->run->pace, s->chunk.nrows);
        dw_initsync_free_key(lo, map->nkey);
        lo = NULL;
        if (!s->chunk.last &&
            !(lo = dw_initsync_copy_key((const char *const *) s->chunk.hi, map->nkey)))
            dw_error_set(&err, DW_ERR_NOMEM, "out of memory");
        pthread_mutex_lock(&cp->lock);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&cp->cond);
        pthread_mutex_unlock(&cp->lock);
        if (s->chunk.last)
            break;
    }
    dw_initsync_free_key(lo, map->nkey);
    pthread_mutex_lock(&cp->lock);
    cp->reader_done = true;
    if (dw_error_is_set(&err)) {
        cp->reader_failed = true;
        cp->reader_err = err;
    }
    pthread_cond_broadcast(&cp->cond);
    pthread_mutex_unlock(&cp->lock);
    return NULL;
}

/* ---------------------------------------------------------------- the writer */

/* Chunks in order until the last, an error or a stop; the job's final state. */
static dw_initsync_state write_all(struct copier *cp, struct dw_error *err)
{
    struct dw_initsync_run *run = cp->run;

    for (size_t i = 0;; i++) {
        struct slot *s = &cp->slots[i % NSLOTS];
        bool ready;
        size_t cut = 0;
        dw_errcode rc;

        pthread_mutex_lock(&cp->lock);
        while (s->state != SLOT_READY && !cp->reader_done)
            pthread_cond_wait(&cp->cond, &cp->lock);
        ready = s->state == SLOT_READY;
        pthread_mutex_unlock(&cp->lock);
        if (!ready) {
            if (cp->reader_failed) {
                *err = cp->reader_err;
                return DW_INITSYNC_FAILED;
            }
            return atomic_load(&run->stop) ? DW_INITSYNC_STOPPED : DW_INITSYNC_INTERRUPTED;
        }
        rc = dw_initsync_write_chunk(run, cp->job, &cp->src, cp->target, &s->chunk, &cut, err);
        if (rc != DW_OK)
            return DW_INITSYNC_FAILED;   /* the slot's transaction is rolled back at the end */
        s->in_txn = false;
        {
            bool finished = s->chunk.last && cut == s->chunk.nrows;

            pthread_mutex_lock(&cp->lock);
            s->state = SLOT_FREE;
            pthread_cond_broadcast(&cp->cond);
            pthread_mutex_unlock(&cp->lock);
            if (finished)
                return DW_INITSYNC_DONE;
        }
        if (atomic_load(&run->stop))
            return DW_INITSYNC_STOPPED;
        if (dw_initsync_interrupted)
            return DW_INITSYNC_INTERRUPTED;
    }
}

/* ---------------------------------------------------------------- the job */

static dw_errcode open_target(struct copier *cp, struct dw_error *err)
{
    const struct dw_initsync_job *job = cp->job;
    const struct dw_map *m = job->map;
    const char **cols;
    dw_errcode rc;
    size_t n = 0;

    rc = job->ops->open(&job->conn->cfg, &cp->target, err);
    if (rc != DW_OK) {
        dw_error_prefix(err, "table map \"%s\": connector \"%s\"", m->name, job->conn->cfg.name);
        return rc;
    }
    /* the catalog checks the service makes at startup, for clear messages now */
    cols = calloc(m->nfields, sizeof(*cols));
    if (!cols)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < m->nfields; i++)
        cols[n++] = m->fields[i].target;
    rc = DW_OK;
    if (job->ops->check_table)
        rc = job->ops->check_table(cp->target, m->target_table, cols, n, err);
    if (rc == DW_OK && job->ops->check_key)
        rc = job->ops->check_key(cp->target, m->target_table, (const char *const *) m->target_key,
                                 m->nkey, err);
    free(cols);
    if (rc != DW_OK)
        dw_error_prefix(err, "table map \"%s\": connector \"%s\"", m->name, job->conn->cfg.name);
    return rc;
}

static dw_errcode open_all(struct copier *cp, struct dw_error *err)
{
    struct dw_initsync_job *job = cp->job;
    long long estimate = -1;
    dw_errcode rc;

    rc = dw_initsync_source_init(&cp->src, cp->run->set, job->map, job->chunk,
                                 !cp->run->opt.dry_run, err);
    if (rc != DW_OK)
        return rc;
    for (int i = 0; i < NSLOTS; i++) {
        if ((rc = dw_initsync_source_connect(cp->run->cfg, &cp->slots[i].conn, err)) != DW_OK)
            return rc;
    }
    rc = dw_initsync_source_check(cp->slots[0].conn, &cp->src, cp->run->prog, &estimate, err);
    if (rc != DW_OK)
        return rc;
    atomic_store(&job->estimate, estimate);
    return open_target(cp, err);
}

static void set_message(struct dw_initsync_job *job, const struct dw_error *err)
{
    size_t pos = (size_t) snprintf(job->message, sizeof(job->message), "%s", err->message);

    if (err->detail[0] && pos < sizeof(job->message))
        snprintf(job->message + pos, sizeof(job->message) - pos, " (%s)", err->detail);
    snprintf(job->hint, sizeof(job->hint), "%s", err->hint);
}

void dw_initsync_copy_map(struct dw_initsync_run *run, struct dw_initsync_job *job)
{
    struct copier *cp = calloc(1, sizeof(*cp));
    dw_initsync_state end = DW_INITSYNC_FAILED;
    struct dw_error err;
    pthread_t reader;
    bool reader_started = false;

    dw_error_clear(&err);
    atomic_store(&job->started_ms, dw_initsync_now_ms());
    if (!cp) {
        dw_error_set(&err, DW_ERR_NOMEM, "out of memory");
        goto out;
    }
    cp->run = run;
    cp->job = job;
    pthread_mutex_init(&cp->lock, NULL);
    pthread_cond_init(&cp->cond, NULL);
    for (int i = 0; i < NSLOTS; i++)
        dw_arena_init(&cp->slots[i].chunk.arena, 1 << 20);

    if (open_all(cp, &err) != DW_OK)
        goto out;
    if (pthread_create(&reader, NULL, reader_main, cp) != 0) {
        dw_error_set(&err, DW_ERR_INTERNAL, "could not start a thread");
        goto out;
    }
    reader_started = true;
    end = write_all(cp, &err);

out:
    if (reader_started) {
        pthread_mutex_lock(&cp->lock);
        cp->writer_done = true;
        pthread_cond_broadcast(&cp->cond);
        pthread_mutex_unlock(&cp->lock);
        pthread_join(reader, NULL);
    }
    if (end == DW_INITSYNC_FAILED)
        set_message(job, &err);
    else if (end == DW_INITSYNC_STOPPED)
        snprintf(job->message, sizeof(job->message), "stopped: more than %ld rows failed "
                 "(--max-errors)", run->opt.max_errors);
    else if (end == DW_INITSYNC_INTERRUPTED)
        snprintf(job->message, sizeof(job->message), "interrupted");
    if (cp) {
        for (int i = 0; i < NSLOTS; i++) {
            /* a chunk read but not written: its rows wait for --resume */
            end_txn(&cp->slots[i]);
            chunk_reset(&cp->slots[i].chunk, job->map->nkey);
            dw_arena_cleanup(&cp->slots[i].chunk.arena);
            if (cp->slots[i].conn)
                PQfinish(cp->slots[i].conn);
        }
        if (cp->target)
            job->ops->close(cp->target);
        dw_initsync_source_cleanup(&cp->src);
        pthread_mutex_destroy(&cp->lock);
        pthread_cond_destroy(&cp->cond);
        free(cp);
    }
    atomic_store(&job->ended_ms, dw_initsync_now_ms());
    atomic_store(&job->state, end);
}
