/*
 * Checkpoints and failed rows of dw-initsync, in the source database's schema
 * "dualwrite" (which the extension owns; dw-initsync adds two tables):
 *
 *   dualwrite.initsync_checkpoint  one row per map: where the copy is, its
 *                                  counts, when it started and finished
 *   dualwrite.initsync_error       one row per failed source row: its key and
 *                                  why (the map engine's or the target's
 *                                  message and SQLSTATE)
 *
 * Both are written in the chunk's own source transaction, the one holding its
 * FOR SHARE locks, after the target committed: a crash between the target's
 * commit and the source's loses the checkpoint's step, and --resume sends that
 * chunk again (upserts: the same rows give the same target), never a step
 * without its rows.  Each run takes a session advisory lock per map, so two
 * runs cannot copy one map at once nor reset each other's checkpoints.
 */
#include "tools/initsync/dw_initsync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_buf.h"

/* pg_try_advisory_lock(ADVISORY_CLASS, hashtext(map)); 0x64776973 is "dwis". */
#define ADVISORY_CLASS "1685547379"

static const char *const create_sql =
    "BEGIN; "
    "SELECT pg_catalog.pg_advisory_xact_lock(" ADVISORY_CLASS ", 0); "
    "CREATE TABLE IF NOT EXISTS dualwrite.initsync_checkpoint ("
    "  map text PRIMARY KEY,"
    "  last_key text[],"
    "  rows_read bigint NOT NULL DEFAULT 0,"
    "  rows_written bigint NOT NULL DEFAULT 0,"
    "  rows_skipped bigint NOT NULL DEFAULT 0,"
    "  rows_failed bigint NOT NULL DEFAULT 0,"
    "  started_at timestamptz NOT NULL DEFAULT pg_catalog.now(),"
    "  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),"
    "  finished_at timestamptz); "
    "COMMENT ON TABLE dualwrite.initsync_checkpoint IS "
    "  'dw-initsync: where the initial sync of each table map is (last_key: the source key "
    "copied up to)'; "
    "CREATE TABLE IF NOT EXISTS dualwrite.initsync_error ("
    "  map text NOT NULL,"
    "  source_key text[] NOT NULL,"
    "  message text NOT NULL,"
    "  detail text,"
    "  sqlstate text,"
    "  at timestamptz NOT NULL DEFAULT pg_catalog.now()); "
    "COMMENT ON TABLE dualwrite.initsync_error IS "
    "  'dw-initsync: source rows the map engine or the target rejected'; "
    "CREATE INDEX IF NOT EXISTS initsync_error_map ON dualwrite.initsync_error (map); "
    "COMMIT";

/* ---------------------------------------------------------------- helpers */

void dw_initsync_key_text(char *buf, size_t size, const struct dw_map *map, const char *const *key)
{
    size_t pos = 0;

    if (size == 0)
        return;
    buf[0] = '\0';
#define PUT(...)                                                                \
    do {                                                                        \
        if (pos < size)                                                         \
            pos += (size_t) snprintf(buf + pos, size - pos, __VA_ARGS__);       \
    } while (0)
    PUT("(");
    for (size_t k = 0; k < map->nkey; k++)
        PUT("%s%s", k ? ", " : "", map->source_key[k]);
    PUT(")=(");
    for (size_t k = 0; k < map->nkey; k++)
        PUT("%s%.60s", k ? ", " : "", key && key[k] ? key[k] : "null");
    PUT(")");
#undef PUT
}

/* ---------------------------------------------------------------- setup and locks */

dw_errcode dw_initsync_checkpoint_setup(PGconn *conn, bool create, struct dw_error *err)
{
    PGresult *res;
    dw_errcode rc;
    bool exists;

    rc = dw_initsync_sql(conn, "SELECT pg_catalog.to_regnamespace('dualwrite') IS NOT NULL", 0,
                         NULL, &res, err);
    if (rc != DW_OK)
        return rc;
    exists = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!exists) {
        dw_error_set(err, DW_ERR_CONFIG, "schema \"dualwrite\" does not exist in the source "
                     "database");
        dw_error_detail(err, "dw-initsync keeps its checkpoints and failed rows in the schema of "
                        "the dualwrite extension.");
        dw_error_hint(err, "Install the extension first: CREATE EXTENSION dualwrite; (see "
                      "bridge/hook/README.md).");
        return DW_ERR_CONFIG;
    }
    if (!create)
        return DW_OK;
    res = PQexec(conn, create_sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = dw_initsync_pg_error(conn, res, err, "could not create the checkpoint tables in "
                                  "schema \"dualwrite\"");
        dw_error_hint(err, "Run dw-initsync once as the owner of the extension (or grant its "
                      "role CREATE on schema dualwrite).");
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return rc;
    }
    PQclear(res);
    return DW_OK;
}

dw_errcode dw_initsync_checkpoint_lock(PGconn *conn, const struct dw_initsync_job *job,
                                       struct dw_error *err)
{
    const char *param = job->map->name;
    PGresult *res;
    dw_errcode rc;
    bool got;

    rc = dw_initsync_sql(conn, "SELECT pg_catalog.pg_try_advisory_lock(" ADVISORY_CLASS
                         ", pg_catalog.hashtext($1))", 1, &param, &res, err);
    if (rc != DW_OK)
        return rc;
    got = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (got)
        return DW_OK;
    dw_error_set(err, DW_ERR_CONFIG, "table map \"%s\" is being copied by another dw-initsync",
                 job->map->name);
    dw_error_hint(err, "Wait until it ends or stop it; its session holds an advisory lock with "
                  "classid " ADVISORY_CLASS " (see pg_locks).");
    return DW_ERR_CONFIG;
}

/* ---------------------------------------------------------------- where a map starts */

static dw_errcode read_key(PGconn *conn, struct dw_initsync_job *job, struct dw_error *err)
{
    const char *param = job->map->name;
    PGresult *res;
    dw_errcode rc;
    const char *vals[64];
    int n;

    rc = dw_initsync_sql(conn, "SELECT u.k FROM dualwrite.initsync_checkpoint c, "
                         "pg_catalog.unnest(c.last_key) WITH ORDINALITY AS u(k, n) "
                         "WHERE c.map = $1 ORDER BY u.n", 1, &param, &res, err);
    if (rc != DW_OK)
        return rc;
    n = PQntuples(res);
    if (n == 0) {
        PQclear(res);
        return DW_OK;           /* no chunk finished yet: from the start */
    }
    if ((size_t) n != job->map->nkey || n > 64) {
        PQclear(res);
        dw_error_set(err, DW_ERR_CONFIG, "table map \"%s\": the checkpoint's key has %d columns, "
                     "the map's key %zu", job->map->name, n, job->map->nkey);
        dw_error_hint(err, "The map's key changed since the copy started: start over with "
                      "--restart.");
        return DW_ERR_CONFIG;
    }
    for (int i = 0; i < n; i++)
        vals[i] = PQgetisnull(res, i, 0) ? NULL : PQgetvalue(res, i, 0);
    job->resume_key = dw_initsync_copy_key(vals, (size_t) n);
    job->nresume = (size_t) n;
    PQclear(res);
    return job->resume_key ? DW_OK : dw_error_set(err, DW_ERR_NOMEM, "out of memory");
}

/* Forget earlier runs of the map and write a fresh checkpoint (one transaction). */
static dw_errcode start_fresh(PGconn *conn, const struct dw_initsync_job *job, struct dw_error *err)
{
    const char *param = job->map->name;
    static const char *const steps[] = {
        "BEGIN",
        "DELETE FROM dualwrite.initsync_error WHERE map = $1",
        "INSERT INTO dualwrite.initsync_checkpoint AS c (map) VALUES ($1) "
        "ON CONFLICT (map) DO UPDATE SET last_key = NULL, rows_read = 0, rows_written = 0, "
        "rows_skipped = 0, rows_failed = 0, started_at = pg_catalog.now(), "
        "updated_at = pg_catalog.now(), finished_at = NULL",
        "COMMIT",
    };

    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        bool with_param = strchr(steps[i], '$') != NULL;
        PGresult *res;
        dw_errcode rc = dw_initsync_sql(conn, steps[i], with_param ? 1 : 0,
                                        with_param ? &param : NULL, &res, err);

        if (rc != DW_OK) {
            dw_error_prefix(err, "table map \"%s\": could not write its checkpoint",
                            job->map->name);
            PQclear(PQexec(conn, "ROLLBACK"));
            return rc;
        }
        PQclear(res);
    }
    return DW_OK;
}

dw_errcode dw_initsync_checkpoint_start(PGconn *conn, const struct dw_initsync_run *run,
                                        struct dw_initsync_job *job, bool write, bool *refused,
                                        struct dw_error *err)
{
    const char *param = job->map->name;
    PGresult *res;
    dw_errcode rc;
    bool exists, finished;

    *refused = false;
    rc = dw_initsync_sql(conn, "SELECT finished_at IS NOT NULL, rows_read, rows_written, "
                         "rows_skipped, rows_failed, "
                         "pg_catalog.to_char(started_at, 'YYYY-MM-DD HH24:MI:SS TZ') "
                         "FROM dualwrite.initsync_checkpoint WHERE map = $1", 1, &param, &res,
                         err);
    if (rc != DW_OK)
        return rc;
    exists = PQntuples(res) == 1;
    finished = exists && PQgetvalue(res, 0, 0)[0] == 't';
    if (exists && !finished && !run->opt.resume && !run->opt.restart) {
        *refused = true;
        snprintf(job->message, sizeof(job->message), "table map \"%s\" has an unfinished "
                 "initial sync (started %s, %s rows read)", job->map->name,
                 PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 1));
        snprintf(job->hint, sizeof(job->hint), "Continue it with --resume, or start over with "
                 "--restart.");
        PQclear(res);
        return DW_OK;
    }
    if (!write) {
        PQclear(res);
        return DW_OK;
    }
    if (exists && run->opt.resume && !run->opt.restart) {
        job->before.read = atoll(PQgetvalue(res, 0, 1));
        job->before.written = atoll(PQgetvalue(res, 0, 2));
        job->before.skipped = atoll(PQgetvalue(res, 0, 3));
        job->before.failed = atoll(PQgetvalue(res, 0, 4));
        PQclear(res);
        if (finished) {
            atomic_store(&job->state, DW_INITSYNC_FINISHED);
            snprintf(job->message, sizeof(job->message), "finished by an earlier run");
            return DW_OK;
        }
        return read_key(conn, job, err);
    }
    PQclear(res);
    return start_fresh(conn, job, err);
}

/* ---------------------------------------------------------------- per chunk */

dw_errcode dw_initsync_checkpoint_error(PGconn *conn, const struct dw_map *map,
                                        const char *const *key, const struct dw_error *why,
                                        struct dw_error *err)
{
    struct dw_buf keys, detail;
    const char *params[5];
    PGresult *res;
    dw_errcode rc;

    dw_buf_init(&keys);
    dw_buf_init(&detail);
    dw_initsync_text_array(&keys, key, map->nkey);
    dw_buf_puts(&detail, why->detail);
    if (why->context[0])
        dw_buf_printf(&detail, "%sContext: %s", detail.len ? "\n" : "", why->context);
    if (dw_buf_failed(&keys) || dw_buf_failed(&detail)) {
        dw_buf_cleanup(&keys);
        dw_buf_cleanup(&detail);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    params[0] = map->name;
    params[1] = keys.data;
    params[2] = why->message[0] ? why->message : "unknown error";
    params[3] = detail.len ? detail.data : NULL;
    params[4] = why->sqlstate[0] ? why->sqlstate : NULL;
    rc = dw_initsync_sql(conn, "INSERT INTO dualwrite.initsync_error "
                         "(map, source_key, message, detail, sqlstate) "
                         "VALUES ($1, $2::text[], $3, $4, $5)", 5, params, &res, err);
    PQclear(res);
    dw_buf_cleanup(&keys);
    dw_buf_cleanup(&detail);
    if (rc != DW_OK)
        dw_error_prefix(err, "table map \"%s\": could not record a failed row", map->name);
    return rc;
}

/* The checkpoint's UPDATE (which must change one row) and COMMIT, pipelined. */
static dw_errcode advance_and_commit(PGconn *conn, const char *sql, int nparams,
                                     const char *const *params, const struct dw_map *map,
                                     struct dw_error *err)
{
    struct dw_error first;
    bool updated = false, synced = false;
    PGresult *res;

    dw_error_clear(&first);
    if (!PQenterPipelineMode(conn) ||
        !PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0) ||
        !PQsendQueryParams(conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) ||
        !PQpipelineSync(conn)) {
        dw_initsync_pg_error(conn, NULL, &first, "could not send");
        goto out;
    }
    while (!synced) {
        res = PQgetResult(conn);
        if (!res) {
            if (PQstatus(conn) == CONNECTION_BAD) {
                dw_initsync_pg_error(conn, NULL, &first, "lost the source");
                goto out;
            }
            continue;       /* the end of one statement's results */
        }
        switch (PQresultStatus(res)) {
        case PGRES_PIPELINE_SYNC:
            synced = true;
            break;
        case PGRES_COMMAND_OK:
            if (strncmp(PQcmdStatus(res), "UPDATE", 6) == 0)
                updated = strcmp(PQcmdTuples(res), "1") == 0;
            break;
        case PGRES_PIPELINE_ABORTED:
            break;
        default:
            if (!dw_error_is_set(&first))
                dw_initsync_pg_error(conn, res, &first, NULL);
            break;
        }
        PQclear(res);
    }
    if (!dw_error_is_set(&first) && !updated)
        dw_error_set(&first, DW_ERR_INTERNAL, "its checkpoint row disappeared");
out:
    if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF && !PQexitPipelineMode(conn) &&
        !dw_error_is_set(&first))
        dw_initsync_pg_error(conn, NULL, &first, "could not leave pipeline mode");
    if (!dw_error_is_set(&first))
        return DW_OK;
    if (err && !dw_error_is_set(err))
        *err = first;
    dw_error_prefix(err, "table map \"%s\": could not advance its checkpoint and commit the chunk "
                    "on the source (the target has it; --resume sends it again)", map->name);
    return first.code;
}

dw_errcode dw_initsync_checkpoint_advance(PGconn *conn, const struct dw_map *map,
                                          const char *const *last_key,
                                          const struct dw_initsync_counts *delta, bool finished,
                                          struct dw_error *err)
{
    struct dw_buf keys;
    char counts[4][24];
    const char *params[7];
    dw_errcode rc;

    dw_buf_init(&keys);
    if (last_key)
        dw_initsync_text_array(&keys, last_key, map->nkey);
    if (dw_buf_failed(&keys)) {
        dw_buf_cleanup(&keys);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    snprintf(counts[0], sizeof(counts[0]), "%lld", delta->read);
    snprintf(counts[1], sizeof(counts[1]), "%lld", delta->written);
    snprintf(counts[2], sizeof(counts[2]), "%lld", delta->skipped);
    snprintf(counts[3], sizeof(counts[3]), "%lld", delta->failed);
    params[0] = map->name;
    params[1] = last_key ? keys.data : NULL;
    params[2] = counts[0];
    params[3] = counts[1];
    params[4] = counts[2];
    params[5] = counts[3];
    params[6] = finished ? "true" : "false";
    /*
     * The update and COMMIT go in one round trip (pipeline mode): the writer
     * waits for this before the next chunk, and the target idles meanwhile.
     * A chunk that read nothing keeps the key it started after.
     */
    rc = advance_and_commit(conn, "UPDATE dualwrite.initsync_checkpoint SET "
                            "last_key = COALESCE($2::text[], last_key), "
                            "rows_read = rows_read + $3, rows_written = rows_written + $4, "
                            "rows_skipped = rows_skipped + $5, rows_failed = rows_failed + $6, "
                            "updated_at = pg_catalog.now(), "
                            "finished_at = CASE WHEN $7::boolean THEN pg_catalog.now() END "
                            "WHERE map = $1", 7, params, map, err);
    dw_buf_cleanup(&keys);
    return rc;
}
