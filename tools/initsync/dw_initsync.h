/*
 * dw-initsync, the initial sync (DESIGN.md section 8): what its files share.
 *
 * dw_initsync.c             main: options, configuration, the run from start to summary
 * dw_initsync_plan.c        which maps, in which order, on how many threads
 * dw_initsync_source.c      the source database: sessions, chunk queries, checks
 * dw_initsync_checkpoint.c  dualwrite.initsync_checkpoint and dualwrite.initsync_error
 * dw_initsync_copy.c        one map: reader and writer threads, chunk by chunk
 * dw_initsync_apply.c       one chunk to the target: bulk, then row by row
 * dw_initsync_pace.c        --rate, the connectors' sync limits, interruptible waits
 * dw_initsync_progress.c    progress bars or log lines, messages, the summary table
 *
 * One job per chosen map.  A job's counters are atomics: the copying threads
 * write them, the progress thread reads them.  Everything else of a job is
 * written before its thread starts or by that thread only, and read by others
 * after it ended (the scheduler's mutex orders the two).
 */
#ifndef DW_INITSYNC_H
#define DW_INITSYNC_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_error.h"
#include "bridge/service/dw_config.h"
#include "bridge/service/dw_throttle.h"
#include "maps/dw_map.h"

#define DW_INITSYNC_EXIT_OK 0          /* every chosen map copied, no row failed */
#define DW_INITSYNC_EXIT_INCOMPLETE 1  /* rows failed, or a map did not finish */
#define DW_INITSYNC_EXIT_USAGE 2       /* usage, configuration, nothing started */

#define DW_INITSYNC_DEFAULT_CHUNK 10000
#define DW_INITSYNC_DEFAULT_MAX_ERRORS 100
#define DW_INITSYNC_MAX_CHUNK 1000000

struct dw_initsync_options {
    const char *config_path;
    const char **maps;       /* --map NAME..., in the order given */
    size_t nmaps;
    bool all;
    long chunk;              /* source rows per chunk */
    bool resume, restart, dry_run;
    long max_errors;         /* failed rows tolerated before the run stops */
    double rate;             /* rows per second over all maps; 0 = no limit */
    int jobs;                /* maps copied at once */
};

typedef enum dw_initsync_state {
    DW_INITSYNC_WAITING = 0, /* not started (yet) */
    DW_INITSYNC_RUNNING,
    DW_INITSYNC_DONE,        /* every row read and handled */
    DW_INITSYNC_FAILED,      /* an error stopped it; message says which */
    DW_INITSYNC_INTERRUPTED, /* Ctrl-C: stopped after a chunk */
    DW_INITSYNC_STOPPED,     /* the run passed --max-errors */
    DW_INITSYNC_SKIPPED,     /* a parent map did not finish */
    DW_INITSYNC_FINISHED     /* --resume: finished by an earlier run */
} dw_initsync_state;

/* Rows of one map: read = written + skipped + failed. */
struct dw_initsync_counts {
    long long read, written, skipped, failed;
};

struct dw_initsync_job {
    const struct dw_map *map;
    const struct dw_connector_entry *conn;  /* the map's connector */
    const struct dw_connector_ops *ops;
    struct dw_throttle *throttle;           /* its connector's limiter; NULL in a dry run */
    size_t ndeps;
    size_t *deps;                           /* indexes of chosen parent maps */
    long chunk;                             /* source rows per chunk, after the limits */
    /* from the checkpoint of an earlier run (--resume) */
    size_t nresume;
    char **resume_key;                      /* start after this source key; NULL: from the start */
    struct dw_initsync_counts before;
    /* this run */
    _Atomic int state;                      /* dw_initsync_state */
    atomic_llong nread, nwritten, nskipped, nfailed;
    atomic_llong estimate;                  /* rows of the table (all runs), -1 unknown */
    atomic_llong started_ms, ended_ms;      /* 0 until then */
    int errors_shown;                       /* failed rows printed so far */
    char message[768];                      /* why it failed, stopped or was skipped */
    char hint[256];
};

/* --rate: a token bucket shared by every map (dw_initsync_pace.c). */
struct dw_initsync_pace {
    pthread_mutex_t lock;
    double rate;             /* rows per second; 0 = off */
    int64_t next_us;         /* when the next chunk may start */
};

struct dw_initsync_run {
    struct dw_initsync_options opt;
    const char *prog;                       /* "dw-initsync" */
    struct dw_config *cfg;
    struct dw_mapset *set;
    size_t njobs;
    struct dw_initsync_job *jobs;           /* in mapset order: parents first */
    size_t nthrottles;
    struct dw_throttle **throttles;         /* one per connector used */
    struct dw_initsync_pace pace;
    atomic_llong failed_total;              /* failed rows of this run, all maps */
    atomic_bool stop;                       /* --max-errors passed: start and read nothing more */
    bool progress_tty;                      /* progress bars instead of log lines */
};

/* Set by SIGINT/SIGTERM: finish the chunk at hand, then stop. */
extern volatile sig_atomic_t dw_initsync_interrupted;

static inline bool dw_initsync_stopping(const struct dw_initsync_run *run)
{
    return dw_initsync_interrupted || atomic_load(&run->stop);
}

/* ---- dw_initsync_plan.c ---- */

/*
 * Build run->jobs from the options: the chosen maps (unknown names are a
 * DW_ERR_CONFIG error that lists the known ones), their parents among them,
 * connectors, chunk sizes and limiters.
 */
dw_errcode dw_initsync_plan_jobs(struct dw_initsync_run *run, struct dw_error *err) DW_MUST_CHECK;
/* Copy every job on opt.jobs threads, parents before children. */
void dw_initsync_plan_run(struct dw_initsync_run *run);
void dw_initsync_plan_cleanup(struct dw_initsync_run *run);

/* ---- dw_initsync_source.c ---- */

/* The source side of one map: its columns, key and chunk queries. */
struct dw_initsync_source {
    const struct dw_map *map;
    char *ident;             /* "schema"."table" */
    size_t ncols;
    const char **cols;       /* every column the maps of the table read (borrowed names) */
    size_t *key_col;         /* map->nkey indexes into cols */
    char *sql_bound[2];      /* [after a key]: the key that ends a chunk */
    char *sql_rows[2][2];    /* [after a key][up to a key]: a chunk's rows */
};

/*
 * A source session: conninfo of the configuration, UTF-8, the pinned value
 * formats of the capture trigger, no statement or idle timeouts, and
 * dualwrite.origin set so that nothing it does is captured (a clear error
 * with a hint when the role may not set it).
 */
dw_errcode dw_initsync_source_connect(const struct dw_config *cfg, PGconn **out,
                                      struct dw_error *err) DW_MUST_CHECK;
/* Fill err from a failed result (or the connection's message), prefixed with what failed. */
dw_errcode dw_initsync_pg_error(PGconn *conn, const PGresult *res, struct dw_error *err,
                                const char *fmt, ...) DW_PRINTF(4, 5);
/* Run SQL with text parameters; DW_OK with *out (PQclear it) or an error. */
dw_errcode dw_initsync_sql(PGconn *conn, const char *sql, int nparams, const char *const *params,
                           PGresult **out, struct dw_error *err) DW_MUST_CHECK;

dw_errcode dw_initsync_source_init(struct dw_initsync_source *src, const struct dw_mapset *set,
                                   const struct dw_map *map, long chunk, bool lock_rows,
                                   struct dw_error *err) DW_MUST_CHECK;
void dw_initsync_source_cleanup(struct dw_initsync_source *src);
/*
 * Checks before copying: the table exists; its size for the progress bar;
 * warnings (through dw_initsync_say) when no enabled capture trigger guards
 * the table or no index serves the key order.
 */
dw_errcode dw_initsync_source_check(PGconn *conn, const struct dw_initsync_source *src,
                                    const char *prog, long long *estimate,
                                    struct dw_error *err) DW_MUST_CHECK;
/*
 * The key that ends the chunk after lo (NULL: from the start): the chunk-th
 * key in key order.  *hi is NULL when fewer rows are left (the last chunk),
 * else an array of map->nkey strings (free with dw_initsync_free_key).
 */
dw_errcode dw_initsync_source_bound(PGconn *conn, const struct dw_initsync_source *src,
                                    char *const *lo, char ***hi,
                                    struct dw_error *err) DW_MUST_CHECK;
/* The rows with lo < key <= hi (either may be NULL: unbounded), in key order. */
dw_errcode dw_initsync_source_rows(PGconn *conn, const struct dw_initsync_source *src,
                                   char *const *lo, char *const *hi, PGresult **out,
                                   struct dw_error *err) DW_MUST_CHECK;
struct dw_initsync_chunk;
/*
 * May a chunk stopped after row cut - 1 (whose key is at) checkpoint that key?
 * True when no row of rows[cut, nrows) has a smaller key (compared by the
 * source, in the key's own type and collation).
 */
dw_errcode dw_initsync_source_cut_ok(PGconn *conn, const struct dw_initsync_source *src,
                                     const struct dw_initsync_chunk *chunk, size_t cut,
                                     const char *const *at, bool *ok,
                                     struct dw_error *err) DW_MUST_CHECK;
/* Append a text[] literal: {"a","b"}, NULL elements as NULL. */
void dw_initsync_text_array(struct dw_buf *b, const char *const *vals, size_t n);
char **dw_initsync_copy_key(const char *const *key, size_t n);
void dw_initsync_free_key(char **key, size_t n);

/* ---- dw_initsync_checkpoint.c ---- */

/* Schema dualwrite must exist; with create, make the two tables if missing. */
dw_errcode dw_initsync_checkpoint_setup(PGconn *conn, bool create,
                                        struct dw_error *err) DW_MUST_CHECK;
/* A session advisory lock per map, so that two runs never copy one map at once. */
dw_errcode dw_initsync_checkpoint_lock(PGconn *conn, const struct dw_initsync_job *job,
                                       struct dw_error *err) DW_MUST_CHECK;
/*
 * Decide where the job starts (--resume, --restart, or anew) and, with write,
 * write its starting checkpoint (or read where to resume).  *refused is set
 * (with job->message and hint) when the map has an unfinished checkpoint and
 * neither --resume nor --restart was given; nothing is changed then.  Call it
 * for every job without write first, so that a refusal changes nothing.
 */
dw_errcode dw_initsync_checkpoint_start(PGconn *conn, const struct dw_initsync_run *run,
                                        struct dw_initsync_job *job, bool write, bool *refused,
                                        struct dw_error *err) DW_MUST_CHECK;
/* Record one failed row (in the chunk's source transaction). */
dw_errcode dw_initsync_checkpoint_error(PGconn *conn, const struct dw_map *map,
                                        const char *const *key, const struct dw_error *why,
                                        struct dw_error *err) DW_MUST_CHECK;
/*
 * Move the checkpoint past last_key (NULL: where it is), add the chunk's
 * counts, and COMMIT the chunk's source transaction, in one round trip.
 */
dw_errcode dw_initsync_checkpoint_advance(PGconn *conn, const struct dw_map *map,
                                          const char *const *last_key,
                                          const struct dw_initsync_counts *delta, bool finished,
                                          struct dw_error *err) DW_MUST_CHECK;
/* "(id, line)=(17, 2)": a source key for messages. */
void dw_initsync_key_text(char *buf, size_t size, const struct dw_map *map,
                          const char *const *key);

/* ---- dw_initsync_copy.c ---- */

/* Copy one map; sets job->state (and message) at the end. */
void dw_initsync_copy_map(struct dw_initsync_run *run, struct dw_initsync_job *job);

/* ---- dw_initsync_apply.c ---- */

/* One chunk, as the reader hands it to the writer. */
struct dw_initsync_chunk {
    PGconn *conn;                  /* the source session whose transaction holds the rows */
    PGresult *rows;                /* owns the values */
    size_t nrows;
    char **lo;                     /* the key the chunk starts after; NULL for the first one */
    char **hi;                     /* the key that ends the chunk; NULL for the last one */
    bool last;
    struct dw_arena arena;         /* batch, operations, messages */
    struct dw_target_op *ops;      /* this map's operations, op->change = row */
    size_t nops;
    long *row_op;                  /* per row: index into ops, -1 skipped by the filter */
    struct dw_error **row_error;   /* per row: why the map engine rejected it, or NULL */
    size_t nmap_errors;
};

/* Map the chunk's rows with the engine, as inserts (live sync does the same). */
dw_errcode dw_initsync_map_chunk(const struct dw_initsync_run *run,
                                 const struct dw_initsync_source *src,
                                 struct dw_initsync_chunk *chunk,
                                 struct dw_error *err) DW_MUST_CHECK;
/* The key of row r (borrowed from the result), in key order. */
void dw_initsync_row_key(const struct dw_initsync_source *src,
                         const struct dw_initsync_chunk *chunk, size_t r, const char **key);

/*
 * Write one chunk: to the target (unless a dry run), the failed rows and the
 * checkpoint to the source, then commit the chunk's source transaction.
 * DW_OK also when rows failed; an error means the map cannot go on (target
 * lost, source lost).  *cut tells how many rows were handled: fewer than
 * nrows when the run stopped inside the chunk (Ctrl-C, --max-errors).
 */
dw_errcode dw_initsync_write_chunk(struct dw_initsync_run *run, struct dw_initsync_job *job,
                                   const struct dw_initsync_source *src, struct dw_session *target,
                                   struct dw_initsync_chunk *chunk, size_t *cut,
                                   struct dw_error *err) DW_MUST_CHECK;

/* ---- dw_initsync_pace.c ---- */

void dw_initsync_pace_init(struct dw_initsync_pace *p, double rate);
void dw_initsync_pace_cleanup(struct dw_initsync_pace *p);
/* Wait until the next chunk may be read; false when the run is stopping. */
bool dw_initsync_pace_wait(const struct dw_initsync_run *run, struct dw_initsync_pace *p);
/* Count rows against the rate. */
void dw_initsync_pace_charge(struct dw_initsync_pace *p, size_t rows);
/*
 * Admission through the connector's limiter, waiting as long as it takes but
 * giving up (DW_ERR_THROTTLED) when the run is stopping.
 */
dw_errcode dw_initsync_admit(const struct dw_initsync_run *run, struct dw_throttle *t,
                             struct dw_throttle_ticket *ticket, struct dw_error *err) DW_MUST_CHECK;
/* Sleep, waking early when the run is stopping. */
void dw_initsync_sleep_ms(const struct dw_initsync_run *run, long ms);
int64_t dw_initsync_now_ms(void);

/* ---- dw_initsync_progress.c ---- */

/* A message line on stderr ("dw-initsync: LEVEL: ..."), drawn around the progress bars. */
void dw_initsync_say(const char *level, const char *fmt, ...) DW_PRINTF(2, 3);
/* The error with its detail and hint, as dw_initsync_say lines. */
void dw_initsync_say_error(const char *level, const struct dw_error *err);
void dw_initsync_progress_start(struct dw_initsync_run *run);
void dw_initsync_progress_stop(struct dw_initsync_run *run);
/* The summary table (stdout) and what to do next (stderr). */
void dw_initsync_summary(const struct dw_initsync_run *run);

#endif
