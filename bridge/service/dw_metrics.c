/*
 * Service counters and GET /metrics.
 *
 * Batches are counted by (map, connector, status) in a fixed table: new label
 * sets are rare (one per map and outcome), so a mutex around the lookup costs
 * nothing next to a target round trip, and the counts themselves are atomics
 * so that rendering never blocks a batch for long.  The table is bounded;
 * label sets beyond it are folded into map="_other" rather than growing
 * without limit on hostile input (map names come only from loaded maps, but
 * reloads can add new ones forever).  Stage latencies go into fixed-bucket
 * histograms in microseconds.  The gauges that belong to other modules
 * (in-doubt transactions, pool use) are read from them at render time, and
 * so are the sync-limit counters: each connector's limiter (dw_throttle.h)
 * keeps its own, and lives as long as the process, so they count across
 * reloads like the rest.
 */
#include "bridge/service/dw_metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_wire.h"
#include "bridge/service/dw_outcome.h"
#include "bridge/service/dw_pipeline.h"
#include "bridge/service/dw_pool.h"
#include "bridge/service/dw_settler.h"
#include "bridge/service/dw_state.h"
#include "bridge/service/dw_throttle.h"

#define MAX_SERIES 512
#define LABEL_LEN 96

struct series {
    char map[LABEL_LEN];
    char connector[LABEL_LEN];
    char status[16];
    _Atomic uint64_t batches;
    _Atomic uint64_t rows;
};

/* Upper bounds of the latency buckets, microseconds; +Inf is implicit. */
static const int64_t bucket_us[] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
    500000, 1000000, 2500000, 5000000, 10000000, 30000000,
};
#define NBUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]))

struct histogram {
    _Atomic uint64_t buckets[NBUCKETS + 1];   /* non-cumulative; last is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
};

static const char *const stage_names[DW_STAGE_COUNT] = {
    "pre-validation", "session-wait", "operation", "finish", "settle", "total", "throttle",
};

/* HTTP status codes we answer with, for dw_http_responses_total. */
static const int http_codes[] = {200, 204, 400, 401, 404, 405, 409, 413, 422, 429, 500, 503};
#define NCODES (sizeof(http_codes) / sizeof(http_codes[0]))

static pthread_mutex_t series_lock = PTHREAD_MUTEX_INITIALIZER;
static struct series table[MAX_SERIES];
static size_t nseries;   /* written under series_lock, read under it too */

static struct histogram stages[DW_STAGE_COUNT];
static _Atomic uint64_t http_counts[NCODES + 1];   /* last: any other code */
static _Atomic uint64_t settled[2][2];             /* [commit][by resolver] */
static _Atomic long inflight;
static _Atomic uint64_t verdicts[5];
static _Atomic uint64_t invalid_batches;
static _Atomic uint64_t total_rows;
static int64_t started_us;

void dw_metrics_init(void)
{
    started_us = dw_now_us();
    snprintf(table[MAX_SERIES - 1].map, LABEL_LEN, "_other");
    snprintf(table[MAX_SERIES - 1].status, sizeof(table[0].status), "any");
}

void dw_metrics_cleanup(void)
{
    /* Nothing is allocated; kept for symmetry with init. */
}

static struct series *find_series(const char *map, const char *connector, const char *status)
{
    struct series *s = NULL;

    pthread_mutex_lock(&series_lock);
    for (size_t i = 0; i < nseries; i++) {
        if (strcmp(table[i].map, map) == 0 && strcmp(table[i].connector, connector) == 0 &&
            strcmp(table[i].status, status) == 0) {
            s = &table[i];
            break;
        }
    }
    if (!s && nseries < MAX_SERIES - 1) {
        s = &table[nseries++];
        snprintf(s->map, sizeof(s->map), "%s", map);
        snprintf(s->connector, sizeof(s->connector), "%s", connector);
        snprintf(s->status, sizeof(s->status), "%s", status);
    }
    if (!s)
        s = &table[MAX_SERIES - 1];   /* collects everything that did not fit */
    pthread_mutex_unlock(&series_lock);
    return s;
}

void dw_metrics_batch(const char *map, const char *connector, const char *status, size_t rows)
{
    struct series *s = find_series(map ? map : "", connector ? connector : "", status);

    atomic_fetch_add(&s->batches, 1);
    atomic_fetch_add(&s->rows, (uint64_t) rows);
}

void dw_metrics_count_verdict(int verdict_status, bool invalid, size_t rows)
{
    if (invalid)
        atomic_fetch_add(&invalid_batches, 1);
    else if (verdict_status >= 0 && verdict_status < 5)
        atomic_fetch_add(&verdicts[verdict_status], 1);
    atomic_fetch_add(&total_rows, (uint64_t) rows);
}

void dw_metrics_stage(dw_stage stage, int64_t elapsed_us)
{
    struct histogram *h;
    size_t b = NBUCKETS;

    if ((unsigned) stage >= DW_STAGE_COUNT)
        return;
    if (elapsed_us < 0)
        elapsed_us = 0;
    h = &stages[stage];
    for (size_t i = 0; i < NBUCKETS; i++) {
        if (elapsed_us <= bucket_us[i]) {
            b = i;
            break;
        }
    }
    atomic_fetch_add(&h->buckets[b], 1);
    atomic_fetch_add(&h->count, 1);
    atomic_fetch_add(&h->sum_us, (uint64_t) elapsed_us);
}

void dw_metrics_http(int code)
{
    for (size_t i = 0; i < NCODES; i++) {
        if (http_codes[i] == code) {
            atomic_fetch_add(&http_counts[i], 1);
            return;
        }
    }
    atomic_fetch_add(&http_counts[NCODES], 1);
}

void dw_metrics_settled(bool commit, const char *by)
{
    bool resolver = by && strcmp(by, "resolver") == 0;

    atomic_fetch_add(&settled[commit ? 1 : 0][resolver ? 1 : 0], 1);
}

void dw_metrics_inflight_add(int delta)
{
    atomic_fetch_add(&inflight, delta);
}

long dw_metrics_inflight(void)
{
    return atomic_load(&inflight);
}

void dw_metrics_map_counts(const char *map, struct dw_metrics_map_counts *out)
{
    size_t n;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&series_lock);
    n = nseries;
    pthread_mutex_unlock(&series_lock);
    /* entries below n are immutable but for their atomic counts */
    for (size_t i = 0; i < n; i++) {
        const struct series *s = &table[i];
        bool ok = strcmp(s->status, "prepared") == 0 || strcmp(s->status, "committed") == 0;
        uint64_t b;

        if (strcmp(s->map, map) != 0)
            continue;
        b = atomic_load(&s->batches);
        out->batches += b;
        if (ok)
            out->rows += atomic_load(&s->rows);
        else
            out->failed += b;
    }
}

double dw_metrics_uptime_s(void)
{
    return (double) (dw_now_us() - started_us) / 1e6;
}

void dw_metrics_totals(struct dw_metrics_totals *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < 5; i++)
        out->batches_by_status[i] = atomic_load(&verdicts[i]);
    out->batches_invalid = atomic_load(&invalid_batches);
    out->rows = atomic_load(&total_rows);
    out->settled_commit = atomic_load(&settled[1][0]) + atomic_load(&settled[1][1]);
    out->settled_rollback = atomic_load(&settled[0][0]) + atomic_load(&settled[0][1]);
    out->in_flight = atomic_load(&inflight);
}

/* Label values: backslash, double quote and newline are escaped (text format 0.0.4). */
static void put_label(struct dw_buf *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            dw_buf_putc(out, '\\'), dw_buf_putc(out, *v);
        else if (*v == '\n')
            dw_buf_puts(out, "\\n");
        else
            dw_buf_putc(out, *v);
    }
}

static void render_series(struct dw_buf *out)
{
    size_t n;

    pthread_mutex_lock(&series_lock);
    n = nseries;
    pthread_mutex_unlock(&series_lock);

    dw_buf_puts(out, "# HELP dualwrite_batches_total Batches answered, by map, connector and verdict.\n"
                     "# TYPE dualwrite_batches_total counter\n");
    for (size_t pass = 0; pass < 2; pass++) {
        if (pass == 1)
            dw_buf_puts(out, "# HELP dualwrite_rows_total Target operations applied or attempted, by map "
                             "and connector.\n# TYPE dualwrite_rows_total counter\n");
        for (size_t i = 0; i < MAX_SERIES; i++) {
            struct series *s = &table[i];

            /* entries below n are immutable once published; the overflow slot is last */
            if (i >= n && i != MAX_SERIES - 1)
                continue;
            if (i == MAX_SERIES - 1 && atomic_load(&s->batches) == 0)
                continue;
            dw_buf_puts(out, pass == 0 ? "dualwrite_batches_total{map=\"" : "dualwrite_rows_total{map=\"");
            put_label(out, s->map);
            dw_buf_puts(out, "\",connector=\"");
            put_label(out, s->connector);
            dw_buf_puts(out, "\",status=\"");
            put_label(out, s->status);
            dw_buf_printf(out, "\"} %" PRIu64 "\n",
                          pass == 0 ? atomic_load(&s->batches) : atomic_load(&s->rows));
        }
    }
}

static void render_histograms(struct dw_buf *out)
{
    dw_buf_puts(out, "# HELP dualwrite_stage_seconds Time spent in each stage of a batch.\n"
                     "# TYPE dualwrite_stage_seconds histogram\n");
    for (int s = 0; s < DW_STAGE_COUNT; s++) {
        struct histogram *h = &stages[s];
        uint64_t cum = 0;

        for (size_t i = 0; i <= NBUCKETS; i++) {
            cum += atomic_load(&h->buckets[i]);
            if (i < NBUCKETS)
                dw_buf_printf(out, "dualwrite_stage_seconds_bucket{stage=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                              stage_names[s], (double) bucket_us[i] / 1e6, cum);
            else
                dw_buf_printf(out, "dualwrite_stage_seconds_bucket{stage=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                              stage_names[s], cum);
        }
        dw_buf_printf(out, "dualwrite_stage_seconds_sum{stage=\"%s\"} %.6f\n", stage_names[s],
                      (double) atomic_load(&h->sum_us) / 1e6);
        dw_buf_printf(out, "dualwrite_stage_seconds_count{stage=\"%s\"} %" PRIu64 "\n", stage_names[s],
                      atomic_load(&h->count));
    }
}

static void render_pools(struct dw_buf *out)
{
    struct dw_state *st = dw_state_acquire();

    if (!st)
        return;
    dw_buf_puts(out, "# HELP dualwrite_pool_sessions Target sessions of each connector's worker pool.\n"
                     "# TYPE dualwrite_pool_sessions gauge\n");
    for (size_t i = 0; i < st->nconns; i++) {
        struct dw_pool_stats ps;

        dw_pool_stats(st->conns[i].workers, &ps);
        dw_buf_puts(out, "dualwrite_pool_sessions{connector=\"");
        put_label(out, st->conns[i].name);
        dw_buf_printf(out, "\",state=\"busy\"} %d\n", ps.busy);
        dw_buf_puts(out, "dualwrite_pool_sessions{connector=\"");
        put_label(out, st->conns[i].name);
        dw_buf_printf(out, "\",state=\"open\"} %d\n", ps.open);
        dw_buf_puts(out, "dualwrite_pool_sessions{connector=\"");
        put_label(out, st->conns[i].name);
        dw_buf_printf(out, "\",state=\"size\"} %d\n", ps.size);
    }
    dw_buf_puts(out, "# HELP dualwrite_pool_waiting Batches waiting for a free target session.\n"
                     "# TYPE dualwrite_pool_waiting gauge\n");
    for (size_t i = 0; i < st->nconns; i++) {
        struct dw_pool_stats ps;

        dw_pool_stats(st->conns[i].workers, &ps);
        dw_buf_puts(out, "dualwrite_pool_waiting{connector=\"");
        put_label(out, st->conns[i].name);
        dw_buf_printf(out, "\"} %d\n", ps.waiting);
    }
    dw_buf_puts(out, "# HELP dualwrite_connector_up 1 when the last attempt to reach the target worked.\n"
                     "# TYPE dualwrite_connector_up gauge\n");
    for (size_t i = 0; i < st->nconns; i++) {
        struct dw_pool_stats ps;

        dw_pool_stats(st->conns[i].workers, &ps);
        dw_buf_puts(out, "dualwrite_connector_up{connector=\"");
        put_label(out, st->conns[i].name);
        dw_buf_printf(out, "\"} %d\n", ps.health == DW_POOL_DOWN ? 0 : 1);
    }
    dw_state_release(st);
}

/* One sample "name{connector="c",limit="l"} " (the value follows). */
static void put_limit_sample(struct dw_buf *out, const char *name, const char *connector, const char *limit)
{
    dw_buf_puts(out, name);
    dw_buf_puts(out, "{connector=\"");
    put_label(out, connector);
    dw_buf_puts(out, "\",limit=\"");
    put_label(out, limit);
    dw_buf_puts(out, "\"} ");
}

/*
 * Sync limits of every configured connector: counters and current use come
 * from its limiter, the maxima from the configuration in force (which the
 * limiter is brought up to first).
 */
static void render_throttle(struct dw_buf *out)
{
    static const char *const counters[3][2] = {
        {"dualwrite_throttle_waits_total", "Batches that waited for a sync limit before they were admitted."},
        {"dualwrite_throttle_wait_seconds_total", "Time batches spent waiting for a sync limit."},
        {"dualwrite_throttle_rejections_total", "Batches refused (429) by a sync limit."},
    };
    struct dw_state *st = dw_state_acquire();
    struct dw_throttle_stats *stats;

    if (!st)
        return;
    stats = calloc(st->nconns ? st->nconns : 1, sizeof(*stats));
    if (!stats) {
        out->failed = true;
        dw_state_release(st);
        return;
    }
    for (size_t i = 0; i < st->nconns; i++) {
        struct dw_throttle *th = dw_pipeline_throttle(st, &st->conns[i]);

        if (th)
            dw_throttle_stats(th, &stats[i]);
    }
    for (int k = 0; k < 3; k++) {
        dw_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", counters[k][0], counters[k][1], counters[k][0]);
        for (size_t i = 0; i < st->nconns; i++) {
            for (int l = 0; l < DW_THROTTLE_NLIMITS; l++) {
                put_limit_sample(out, counters[k][0], st->conns[i].name, dw_throttle_limit_name(l));
                if (k == 0)
                    dw_buf_printf(out, "%" PRIu64 "\n", stats[i].waits[l]);
                else if (k == 1)
                    dw_buf_printf(out, "%.3f\n", (double) stats[i].wait_ms[l] / 1e3);
                else
                    dw_buf_printf(out, "%" PRIu64 "\n", stats[i].rejections[l]);
            }
        }
    }
    dw_buf_puts(out, "# HELP dualwrite_limit_use Current use of each sync limit: requests in the window, "
                     "execution seconds in the window, requests in progress.\n# TYPE dualwrite_limit_use gauge\n");
    for (size_t i = 0; i < st->nconns; i++) {
        const char *name = st->conns[i].name;

        put_limit_sample(out, "dualwrite_limit_use", name, "requests_per_window");
        dw_buf_printf(out, "%ld\n", stats[i].requests_in_window);
        put_limit_sample(out, "dualwrite_limit_use", name, "execution_s_per_window");
        dw_buf_printf(out, "%.3f\n", (double) stats[i].exec_ms_in_window / 1e3);
        put_limit_sample(out, "dualwrite_limit_use", name, "concurrent");
        dw_buf_printf(out, "%ld\n", stats[i].in_use);
    }
    dw_buf_puts(out, "# HELP dualwrite_limit_max Each sync limit as configured; 0 means off.\n"
                     "# TYPE dualwrite_limit_max gauge\n");
    for (size_t i = 0; i < st->nconns; i++) {
        const struct dw_limits *l = &st->conns[i].entry->limits;
        const char *name = st->conns[i].name;

        put_limit_sample(out, "dualwrite_limit_max", name, "requests_per_window");
        dw_buf_printf(out, "%ld\n", l->window_s > 0 ? l->requests_per_window : 0);
        put_limit_sample(out, "dualwrite_limit_max", name, "execution_s_per_window");
        dw_buf_printf(out, "%ld\n", l->window_s > 0 ? l->execution_s_per_window : 0);
        put_limit_sample(out, "dualwrite_limit_max", name, "concurrent");
        dw_buf_printf(out, "%ld\n", l->concurrent);
        put_limit_sample(out, "dualwrite_limit_max", name, "records_per_transaction");
        dw_buf_printf(out, "%ld\n", l->records_per_transaction);
        put_limit_sample(out, "dualwrite_limit_max", name, "bytes_per_batch");
        dw_buf_printf(out, "%ld\n", l->bytes_per_batch);
    }
    dw_buf_puts(out, "# HELP dualwrite_throttle_waiting Batches waiting for admission now.\n"
                     "# TYPE dualwrite_throttle_waiting gauge\n");
    for (size_t i = 0; i < st->nconns; i++) {
        dw_buf_puts(out, "dualwrite_throttle_waiting{connector=\"");
        put_label(out, st->conns[i].name);
        dw_buf_printf(out, "\"} %ld\n", stats[i].waiting);
    }
    dw_buf_puts(out, "# HELP dualwrite_throttle_paused_seconds How much longer the connector is paused "
                     "because its target asked to wait (429/503 Retry-After).\n"
                     "# TYPE dualwrite_throttle_paused_seconds gauge\n");
    for (size_t i = 0; i < st->nconns; i++) {
        dw_buf_puts(out, "dualwrite_throttle_paused_seconds{connector=\"");
        put_label(out, st->conns[i].name);
        dw_buf_printf(out, "\"} %.3f\n", (double) stats[i].paused_ms / 1e3);
    }
    dw_buf_puts(out, "# HELP dualwrite_target_throttled_total Times a target throttled a batch by itself "
                     "(429/503), pausing its connector.\n# TYPE dualwrite_target_throttled_total counter\n");
    for (size_t i = 0; i < st->nconns; i++) {
        dw_buf_puts(out, "dualwrite_target_throttled_total{connector=\"");
        put_label(out, st->conns[i].name);
        dw_buf_printf(out, "\"} %" PRIu64 "\n", stats[i].target_pauses);
    }
    free(stats);
    dw_state_release(st);
}

void dw_metrics_render(struct dw_buf *out)
{
    render_series(out);
    render_histograms(out);

    dw_buf_printf(out, "# HELP dualwrite_batches_in_flight Batches being processed now.\n"
                       "# TYPE dualwrite_batches_in_flight gauge\n"
                       "dualwrite_batches_in_flight %ld\n", dw_metrics_inflight());
    dw_buf_printf(out, "# HELP dualwrite_invalid_batches_total Batch requests that could not be decoded.\n"
                       "# TYPE dualwrite_invalid_batches_total counter\n"
                       "dualwrite_invalid_batches_total %" PRIu64 "\n", atomic_load(&invalid_batches));
    dw_buf_printf(out, "# HELP dualwrite_in_doubt Prepared target transactions whose outcome is not "
                       "settled yet.\n# TYPE dualwrite_in_doubt gauge\ndualwrite_in_doubt %zu\n",
                  dw_outcome_count());
    dw_buf_printf(out, "# HELP dualwrite_outcomes_queued Outcomes received and not yet taken by a settler "
                       "thread.\n# TYPE dualwrite_outcomes_queued gauge\ndualwrite_outcomes_queued %zu\n",
                  dw_settler_queued());
    dw_buf_puts(out, "# HELP dualwrite_settled_total Prepared transactions committed or rolled back, "
                     "by who decided.\n# TYPE dualwrite_settled_total counter\n");
    for (int c = 1; c >= 0; c--) {
        for (int r = 0; r < 2; r++)
            dw_buf_printf(out, "dualwrite_settled_total{action=\"%s\",by=\"%s\"} %" PRIu64 "\n",
                          c ? "commit" : "rollback", r ? "resolver" : "outcome",
                          atomic_load(&settled[c][r]));
    }
    dw_buf_puts(out, "# HELP dualwrite_http_responses_total HTTP responses by status code.\n"
                     "# TYPE dualwrite_http_responses_total counter\n");
    for (size_t i = 0; i < NCODES; i++)
        dw_buf_printf(out, "dualwrite_http_responses_total{code=\"%d\"} %" PRIu64 "\n", http_codes[i],
                      atomic_load(&http_counts[i]));
    dw_buf_printf(out, "dualwrite_http_responses_total{code=\"other\"} %" PRIu64 "\n",
                  atomic_load(&http_counts[NCODES]));
    render_pools(out);
    render_throttle(out);
    dw_buf_printf(out, "# HELP dualwrite_uptime_seconds Seconds since the service started.\n"
                       "# TYPE dualwrite_uptime_seconds gauge\ndualwrite_uptime_seconds %.3f\n",
                  (double) (dw_now_us() - started_us) / 1e6);
}
