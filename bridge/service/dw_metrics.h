/*
 * Service counters and the Prometheus text rendering of GET /metrics.
 *
 * Every counter is updated from many request threads at once, so plain values
 * are C11 atomics; the labelled batch counters live in a small table whose
 * lookup takes a mutex (held for a string compare or two, never across I/O).
 * Counters survive configuration reloads: a map that disappears keeps its
 * series until the process restarts, as Prometheus expects of counters.
 */
#ifndef DW_METRICS_H
#define DW_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bridge/common/dw_buf.h"

/* Stages of one batch, for the latency histogram (DESIGN.md section 2). */
typedef enum dw_stage {
    DW_STAGE_PREVALIDATION = 0,  /* decode, map, limits */
    DW_STAGE_SESSION_WAIT,       /* waiting for a pooled target session */
    DW_STAGE_OPERATION,          /* begin + apply */
    DW_STAGE_FINISH,             /* prepare or commit */
    DW_STAGE_SETTLE,             /* COMMIT / ROLLBACK PREPARED */
    DW_STAGE_TOTAL,              /* whole batch request */
    DW_STAGE_THROTTLE,           /* admission through the sync limits (dw_throttle.h) */
    DW_STAGE_COUNT
} dw_stage;

/* Monotonic clock in microseconds / milliseconds. */
static inline int64_t dw_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t dw_now_ms(void)
{
    return dw_now_us() / 1000;
}

/* The CLOCK_MONOTONIC time ms (at least 0) from now, for pthread_cond_timedwait on a monotonic condition. */
static inline struct timespec dw_monotonic_in_ms(int64_t ms)
{
    struct timespec ts;

    if (ms < 0)
        ms = 0;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t) (ms / 1000);
    ts.tv_nsec += (long) (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

void dw_metrics_init(void);
void dw_metrics_cleanup(void);

/*
 * One finished batch: counted once for each distinct map it touched (a batch
 * that failed before mapping counts under map "" and connector "").  rows is
 * the number of target operations of that map.
 */
void dw_metrics_batch(const char *map, const char *connector, const char *status, size_t rows);
void dw_metrics_stage(dw_stage stage, int64_t elapsed_us);
void dw_metrics_http(int code);
/* A settled prepared transaction: commit or rollback, decided by "outcome" or "resolver". */
void dw_metrics_settled(bool commit, const char *by);

/* Batches being processed now; the drain on SIGTERM waits for zero. */
void dw_metrics_inflight_add(int delta);
long dw_metrics_inflight(void);

/* Totals for /v1/status. */
struct dw_metrics_totals {
    uint64_t batches_by_status[5];   /* indexed by dw_verdict_status */
    uint64_t batches_invalid;        /* 400: not decodable */
    uint64_t rows;
    uint64_t settled_commit;
    uint64_t settled_rollback;
    long in_flight;
};
void dw_metrics_totals(struct dw_metrics_totals *out);
void dw_metrics_count_verdict(int verdict_status, bool invalid, size_t rows);

/* One map's batches since start, summed over connectors, for /v1/status. */
struct dw_metrics_map_counts {
    uint64_t batches;        /* every verdict */
    uint64_t failed;         /* rejected, throttled or unavailable */
    uint64_t rows;           /* target operations of the batches that succeeded */
};
void dw_metrics_map_counts(const char *map, struct dw_metrics_map_counts *out);

/* Seconds since dw_metrics_init. */
double dw_metrics_uptime_s(void);

/* The whole exposition (text format 0.0.4) appended to out. */
void dw_metrics_render(struct dw_buf *out);

#endif
