/*
 * One chunk of dw-initsync, from source rows to target rows to checkpoint.
 *
 * Mapping: the chunk's rows become a batch of "insert" changes and go through
 * dw_map_apply, the engine live sync uses, so filters, value maps, constants
 * and required fields behave exactly as they do for a committed insert.  Only
 * the operations of the map being copied are kept (other maps of the same
 * table have their own runs).  When the engine rejects the batch, the rows
 * are mapped one by one to find every bad row; the good ones still go to the
 * target together.
 *
 * Writing: the chunk's operations are one target transaction (connector begin,
 * apply_bulk where the connector has it, else apply, then commit; more than
 * one only when the connector's bytes_per_batch asks for it), admitted by the
 * connector's limiter.  One-phase commit is enough: the operations are
 * upserts of rows that the chunk's FOR SHARE locks hold still on the source,
 * so a target that committed while the source did not holds nothing the
 * source does not, and sending the chunk again changes nothing.  When the
 * target rejects the chunk, each row is sent in its own transaction, and each
 * rejected row is recorded with the target's message.
 *
 * Then, in the chunk's source transaction: the failed rows and the checkpoint,
 * and COMMIT, which releases the locks.  --max-errors and Ctrl-C can stop a
 * chunk between rows; the checkpoint then ends at the last row handled.
 */
#include "tools/initsync/dw_initsync.h"

#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_buf.h"

/* Failed rows printed per map; the rest are only in dualwrite.initsync_error. */
#define ERRORS_SHOWN 10

/* ---------------------------------------------------------------- mapping */

static struct dw_error *keep_error(struct dw_arena *a, const struct dw_error *e)
{
    struct dw_error *copy = dw_arena_alloc(a, sizeof(*copy));

    if (copy)
        *copy = *e;
    return copy;
}

/* Keep the operations of our map from one engine result, for row base + op->change. */
static dw_errcode collect(struct dw_initsync_chunk *chunk, const struct dw_map *map,
                          const struct dw_oplist *ol, size_t base, size_t cap, struct dw_error *err)
{
    for (size_t i = 0; i < ol->nops; i++) {
        const struct dw_target_op *op = &ol->ops[i];
        size_t row = base + op->change;

        if (!op->map || strcmp(op->map, map->name) != 0)
            continue;
        if (chunk->nops == cap || row >= chunk->nrows)
            return dw_error_set(err, DW_ERR_INTERNAL, "table map \"%s\": the engine gave more "
                                "than one operation for an inserted row", map->name);
        chunk->ops[chunk->nops] = *op;
        chunk->ops[chunk->nops].change = row;
        chunk->row_op[row] = (long) chunk->nops++;
    }
    return DW_OK;
}

dw_errcode dw_initsync_map_chunk(const struct dw_initsync_run *run,
                                 const struct dw_initsync_source *src,
                                 struct dw_initsync_chunk *chunk, struct dw_error *err)
{
    const struct dw_map *map = src->map;
    struct dw_arena *a = &chunk->arena;
    struct dw_change *changes;
    struct dw_batch batch;
    struct dw_oplist ol;
    struct dw_error merr;
    size_t n = chunk->nrows;
    dw_errcode rc;

    chunk->nops = 0;
    chunk->nmap_errors = 0;
    if (n == 0)
        return DW_OK;
    changes = dw_arena_zalloc(a, n * sizeof(*changes));
    chunk->ops = dw_arena_alloc(a, n * sizeof(*chunk->ops));
    chunk->row_op = dw_arena_alloc(a, n * sizeof(*chunk->row_op));
    chunk->row_error = dw_arena_zalloc(a, n * sizeof(*chunk->row_error));
    if (!changes || !chunk->ops || !chunk->row_op || !chunk->row_error)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    for (size_t r = 0; r < n; r++) {
        const char **vals = dw_arena_alloc(a, src->ncols * sizeof(*vals));

        if (!vals)
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        for (size_t c = 0; c < src->ncols; c++)
            vals[c] = PQgetisnull(chunk->rows, (int) r, (int) c) ? NULL
                      : PQgetvalue(chunk->rows, (int) r, (int) c);
        changes[r].table = map->source_table;
        changes[r].op = DW_CHANGE_INSERT;
        changes[r].new_row.ncols = src->ncols;
        changes[r].new_row.names = src->cols;
        changes[r].new_row.values = vals;
        chunk->row_op[r] = -1;
    }
    memset(&batch, 0, sizeof(batch));
    batch.id = "dw-initsync";
    batch.deadline_ms = -1;
    batch.changes = changes;
    batch.nchanges = n;

    dw_error_clear(&merr);
    rc = dw_map_apply(run->set, &batch, a, &ol, &merr);
    if (rc == DW_OK)
        return collect(chunk, map, &ol, 0, n, err);
    if (rc != DW_ERR_MAP) {
        if (err && !dw_error_is_set(err))
            *err = merr;
        return rc;
    }
    /* find every bad row; the others still go together */
    for (size_t r = 0; r < n; r++) {
        batch.changes = &changes[r];
        batch.nchanges = 1;
        dw_error_clear(&merr);
        rc = dw_map_apply(run->set, &batch, a, &ol, &merr);
        if (rc == DW_ERR_MAP) {
            if (!(chunk->row_error[r] = keep_error(a, &merr)))
                return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
            chunk->nmap_errors++;
            continue;
        }
        if (rc != DW_OK) {
            if (err && !dw_error_is_set(err))
                *err = merr;
            return rc;
        }
        if ((rc = collect(chunk, map, &ol, r, n, err)) != DW_OK)
            return rc;
    }
    return DW_OK;
}

void dw_initsync_row_key(const struct dw_initsync_source *src,
                         const struct dw_initsync_chunk *chunk, size_t r, const char **key)
{
    for (size_t k = 0; k < src->map->nkey; k++)
        key[k] = PQgetvalue(chunk->rows, (int) r, (int) src->key_col[k]);
}

/* ---------------------------------------------------------------- the target */

/* What live sync would count as the batch's size: names and values of the rows. */
static size_t op_bytes(const struct dw_target_op *op)
{
    size_t n = 16;

    for (size_t c = 0; c < op->ncolumns; c++)
        n += strlen(op->columns[c]) + (op->values[c] ? strlen(op->values[c]) : 4) + 6;
    return n;
}

/* A rejection of rows (retry them one by one) rather than of the session. */
static bool rejected(const struct dw_session *s, dw_errcode rc)
{
    if (s->broken)
        return false;
    return rc == DW_ERR_TARGET || rc == DW_ERR_LIMIT || rc == DW_ERR_TIMEOUT || rc == DW_ERR_MAP;
}

/* One target transaction of ops, admitted by the limiter; retried when the target throttles. */
static dw_errcode one_transaction(struct dw_initsync_run *run, struct dw_initsync_job *job,
                                  struct dw_session *s, const struct dw_target_op *ops,
                                  size_t nops, bool bulk, struct dw_error *err)
{
    const struct dw_connector_ops *c = s->ops;

    for (;;) {
        struct dw_throttle_ticket ticket;
        struct dw_error local;
        int64_t t0;
        dw_errcode rc;

        if (job->throttle && (rc = dw_initsync_admit(run, job->throttle, &ticket, err)) != DW_OK)
            return rc;
        dw_error_clear(&local);
        t0 = dw_initsync_now_ms();
        rc = c->begin(s, "dw-initsync", &local);
        if (rc == DW_OK)
            rc = bulk ? c->apply_bulk(s, ops, nops, &local) : c->apply(s, ops, nops, &local);
        if (rc == DW_OK)
            rc = c->commit(s, &local);
        if (rc != DW_OK)
            c->rollback(s);
        if (job->throttle)
            dw_throttle_release(job->throttle, &ticket, dw_initsync_now_ms() - t0);
        if (rc == DW_ERR_THROTTLED && job->throttle && !dw_initsync_stopping(run)) {
            long wait = s->retry_after_ms > 0 ? s->retry_after_ms : 5000;

            dw_initsync_say("info", "connector \"%s\": the target asked to slow down; waiting "
                            "%ld ms", job->conn->cfg.name, wait);
            dw_throttle_pause(job->throttle, dw_throttle_now(job->throttle) + wait);
            continue;
        }
        if (rc != DW_OK && err && !dw_error_is_set(err))
            *err = local;
        return rc;
    }
}

/*
 * ops[0..nops) as few transactions as the connector's bytes_per_batch allows.
 * *done: how many operations are committed (all of them on DW_OK).
 */
static dw_errcode apply_ops(struct dw_initsync_run *run, struct dw_initsync_job *job,
                            struct dw_session *s, const struct dw_target_op *ops, size_t nops,
                            size_t *done, struct dw_error *err)
{
    long max_bytes = job->conn->limits.bytes_per_batch;
    bool bulk_ok = s->ops->apply_bulk != NULL;

    *done = 0;
    while (*done < nops) {
        size_t n = nops - *done, bytes = 0;
        dw_errcode rc;

        if (max_bytes > 0) {
            for (n = 0; *done + n < nops; n++) {
                bytes += op_bytes(&ops[*done + n]);
                if (n > 0 && bytes > (size_t) max_bytes)
                    break;
            }
        }
        rc = one_transaction(run, job, s, ops + *done, n, bulk_ok && n > 1, err);
        if (rc != DW_OK)
            return rc;
        *done += n;
    }
    return DW_OK;
}

/* ---------------------------------------------------------------- failed rows */

/* Count a failed row of this run; true when it passes --max-errors (the run stops). */
static bool one_more_failure(struct dw_initsync_run *run)
{
    long long n = atomic_fetch_add(&run->failed_total, 1) + 1;

    if (run->opt.dry_run || n <= run->opt.max_errors)
        return false;
    atomic_store(&run->stop, true);
    return true;
}

static void show_failure(const struct dw_initsync_run *run, struct dw_initsync_job *job,
                         const char *const *key, const struct dw_error *why)
{
    char k[256];

    if (job->errors_shown > ERRORS_SHOWN)
        return;
    if (job->errors_shown++ == ERRORS_SHOWN) {
        dw_initsync_say("error", "table map \"%s\": more rows %s; %s", job->map->name,
                        run->opt.dry_run ? "would fail" : "failed",
                        run->opt.dry_run ? "the summary counts them"
                                         : "see dualwrite.initsync_error");
        return;
    }
    dw_initsync_key_text(k, sizeof(k), job->map, key);
    dw_initsync_say("error", "table map \"%s\": source key %s%s: %s%s%s%s", job->map->name, k,
                    run->opt.dry_run ? " would fail" : "", why->message,
                    why->sqlstate[0] ? " (SQLSTATE " : "", why->sqlstate,
                    why->sqlstate[0] ? ")" : "");
    if (why->detail[0])
        dw_initsync_say("detail", "%s", why->detail);
}

/* ---------------------------------------------------------------- the chunk */

/*
 * Count the engine's rejections of rows [from, *cut) in row order; the row
 * that passes --max-errors is the last one handled (*cut).
 */
static void count_map_errors(struct dw_initsync_run *run, const struct dw_initsync_chunk *chunk,
                             size_t from, size_t *cut)
{
    for (size_t r = from; r < *cut && chunk->nmap_errors; r++) {
        if (chunk->row_error[r] && one_more_failure(run)) {
            *cut = r + 1;
            return;
        }
    }
}

/* Send rows [from, *cut) one by one: written[r] when it got in, target_error[r] when not. */
static dw_errcode row_by_row(struct dw_initsync_run *run, struct dw_initsync_job *job,
                             struct dw_session *s, struct dw_initsync_chunk *chunk,
                             struct dw_error **target_error, bool *written, size_t from,
                             size_t *cut, struct dw_error *err)
{
    for (size_t r = from; r < *cut; r++) {
        long op = chunk->row_op[r];
        struct dw_error rerr;
        size_t done;
        dw_errcode rc;

        if (r > from && dw_initsync_stopping(run)) {
            *cut = r;       /* Ctrl-C or --max-errors elsewhere: stop between rows */
            break;
        }
        if (chunk->row_error[r] && one_more_failure(run)) {
            *cut = r + 1;
            break;
        }
        if (op < 0)
            continue;
        dw_error_clear(&rerr);
        rc = apply_ops(run, job, s, &chunk->ops[op], 1, &done, &rerr);
        if (rc == DW_OK) {
            written[r] = true;
            continue;
        }
        if (rc == DW_ERR_THROTTLED && dw_initsync_stopping(run)) {
            *cut = r;       /* stopped while waiting for the limiter */
            break;
        }
        if (!rejected(s, rc)) {
            if (err && !dw_error_is_set(err))
                *err = rerr;
            return rc;
        }
        if (!(target_error[r] = keep_error(&chunk->arena, &rerr)))
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        if (one_more_failure(run)) {
            *cut = r + 1;
            break;
        }
    }
    return DW_OK;
}

/*
 * A chunk stopped at row *cut - 1 (Ctrl-C, --max-errors) can checkpoint that
 * row's key only if every row not handled has a greater key.  Rows come in key
 * order, except one that a concurrent transaction changed while the read
 * waited for its lock (READ COMMITTED returns its new version, key and all),
 * so the source checks.  If not, the whole chunk is left for --resume (*cut
 * = 0): what the target got of it is sent again, which changes nothing.
 */
static dw_errcode check_cut(const struct dw_initsync_source *src, struct dw_initsync_chunk *chunk,
                            size_t *cut, struct dw_error *err)
{
    const char *at[64];
    bool ok = false;
    dw_errcode rc;

    dw_initsync_row_key(src, chunk, *cut - 1, at);
    rc = dw_initsync_source_cut_ok(chunk->conn, src, chunk, *cut, at, &ok, err);
    if (rc == DW_OK && !ok)
        *cut = 0;
    return rc;
}

dw_errcode dw_initsync_write_chunk(struct dw_initsync_run *run, struct dw_initsync_job *job,
                                   const struct dw_initsync_source *src, struct dw_session *target,
                                   struct dw_initsync_chunk *chunk, size_t *cut_out,
                                   struct dw_error *err)
{
    const struct dw_map *map = job->map;
    size_t n = chunk->nrows, cut = n, nops = 0;
    struct dw_error **target_error = NULL;
    bool *written = NULL;
    struct dw_initsync_counts delta = {0, 0, 0, 0};
    const char *key[64], *last[64];
    const char *const *last_key = NULL;
    dw_errcode rc;

    /*
     * The rows sent together end before the engine's rejection that would
     * pass --max-errors; the failures are counted in row order as the rows
     * are handled, so the run stops exactly at the row that passes it.
     */
    if (chunk->nmap_errors && !run->opt.dry_run) {
        long long allowed = run->opt.max_errors - atomic_load(&run->failed_total), seen = 0;

        for (size_t r = 0; r < n; r++) {
            if (chunk->row_error[r] && ++seen > allowed) {
                cut = r + 1;
                break;
            }
        }
    }
    while (nops < chunk->nops && chunk->ops[nops].change < cut)
        nops++;

    if (n > 0) {
        target_error = dw_arena_zalloc(&chunk->arena, n * sizeof(*target_error));
        written = dw_arena_zalloc(&chunk->arena, n * sizeof(*written));
        if (!target_error || !written)
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }

    if (!run->opt.dry_run && nops > 0) {
        struct dw_error cerr;
        size_t done = 0;

        dw_error_clear(&cerr);
        rc = apply_ops(run, job, target, chunk->ops, nops, &done, &cerr);
        for (size_t i = 0; i < done; i++)
            written[chunk->ops[i].change] = true;
        if (rc == DW_OK) {
            count_map_errors(run, chunk, 0, &cut);
        } else if (rc == DW_ERR_THROTTLED && dw_initsync_stopping(run)) {
            cut = chunk->ops[done].change;      /* stopped while waiting: up to the rows sent */
            count_map_errors(run, chunk, 0, &cut);
        } else if (!rejected(target, rc)) {
            if (err && !dw_error_is_set(err))
                *err = cerr;
            dw_error_prefix(err, "table map \"%s\": connector \"%s\"", map->name,
                            job->conn->cfg.name);
            return rc;
        } else {
            size_t from = chunk->ops[done].change, upto = from;

            rc = DW_OK;
            count_map_errors(run, chunk, 0, &upto);
            if (upto < from)
                cut = upto;
            else
                rc = row_by_row(run, job, target, chunk, target_error, written, from, &cut, err);
            if (rc != DW_OK) {
                dw_error_prefix(err, "table map \"%s\": connector \"%s\"", map->name,
                                job->conn->cfg.name);
                return rc;
            }
        }
    } else {
        count_map_errors(run, chunk, 0, &cut);
        for (size_t i = 0; i < chunk->nops && chunk->ops[i].change < cut; i++)
            written[chunk->ops[i].change] = run->opt.dry_run;   /* what would be written */
    }
    /* a chunk stopped inside ends at a row only if no row after it has a smaller key */
    if (!run->opt.dry_run && cut > 0 && cut < n && (rc = check_cut(src, chunk, &cut, err)) != DW_OK)
        return rc;
    for (size_t r = 0; r < cut; r++)
        delta.written += written[r];

    /* the failed rows, then the checkpoint, then COMMIT: one source transaction */
    for (size_t r = 0; r < cut; r++) {
        const struct dw_error *why = chunk->row_error[r] ? chunk->row_error[r] : target_error[r];

        if (!why)
            continue;
        delta.failed++;
        dw_initsync_row_key(src, chunk, r, key);
        show_failure(run, job, key, why);
        if (!run->opt.dry_run &&
            (rc = dw_initsync_checkpoint_error(chunk->conn, map, key, why, err)) != DW_OK)
            return rc;
    }
    delta.read = (long long) cut;
    delta.skipped = delta.read - delta.written - delta.failed;
    if (cut == n && !chunk->last) {
        last_key = (const char *const *) chunk->hi;
    } else if (cut > 0) {
        dw_initsync_row_key(src, chunk, cut - 1, last);
        last_key = last;
    }
    if (!run->opt.dry_run) {
        rc = dw_initsync_checkpoint_advance(chunk->conn, map, last_key, &delta,
                                            chunk->last && cut == n, err);
        if (rc != DW_OK)
            return rc;
    }
    atomic_fetch_add(&job->nread, delta.read);
    atomic_fetch_add(&job->nwritten, delta.written);
    atomic_fetch_add(&job->nskipped, delta.skipped);
    atomic_fetch_add(&job->nfailed, delta.failed);
    *cut_out = cut;
    return DW_OK;
}
