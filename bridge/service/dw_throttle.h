/*
 * Sync-limit throttling (DESIGN.md section 7): one limiter per connector,
 * shared by every thread that sends work to that connector's target (the
 * service's request threads now, dw-initsync later).  It knows nothing of
 * HTTP: callers turn a refusal into whatever their protocol needs.
 *
 * A limiter enforces, each one only when on (0 = off):
 *   requests_per_window     admissions in a sliding window of window_s;
 *   execution_s_per_window  the target time of the batches that finished in
 *                           that window (reported at release);
 *   concurrent              admitted and not yet released, a counting
 *                           semaphore;
 * and a pause: a target that answered 429/503 with Retry-After stops every
 * admission until then.
 *
 * The window is bucketed: it is cut into DW_THROTTLE_BUCKETS buckets (window_s
 * 300 gives 3 s buckets), and an admission or an execution counts until the
 * end of its bucket plus the window.  So a limit is never exceeded in any
 * window of window_s, and capacity may come back up to one bucket later than
 * an exact log of timestamps would give it back.
 *
 * dw_throttle_admit waits (a condition variable, re-checked when a batch is
 * released, the limits change, or the computed time comes) while the
 * caller's deadline allows.  When the time until capacity frees is known
 * (window limits, the pause) and ends after the deadline, it refuses at once
 * instead of sleeping uselessly; a full concurrency limit has no such time,
 * so it waits until the deadline.  A refusal says how long to wait before
 * retrying.  Waiters are not queued: whoever re-checks first after capacity
 * frees is admitted.
 *
 * Cost on the commit path when no limit is near: one clock read and one
 * uncontended mutex per admit and per release.
 *
 * Clock: every time is in milliseconds of the limiter's clock, CLOCK_MONOTONIC
 * (dw_now_ms) unless a test passes its own.  Waits are real time whatever the
 * clock: a test that moves its clock calls dw_throttle_kick to make waiters
 * look again.
 */
#ifndef DW_THROTTLE_H
#define DW_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#include "bridge/common/dw_error.h"

/* Buckets per window (see above). */
#define DW_THROTTLE_BUCKETS 100
/* Admit without a deadline: wait as long as it takes. */
#define DW_THROTTLE_NO_DEADLINE 0

typedef int64_t (*dw_throttle_clock)(void *arg);

/* What held a batch back; the names are the configuration's. */
typedef enum dw_throttle_limit {
    DW_THROTTLE_REQUESTS = 0,   /* "requests_per_window" */
    DW_THROTTLE_EXECUTION,      /* "execution_s_per_window" */
    DW_THROTTLE_CONCURRENT,     /* "concurrent" */
    DW_THROTTLE_TARGET,         /* "target": the target's own Retry-After pause */
    DW_THROTTLE_NLIMITS
} dw_throttle_limit;

/* The window limits of one connector (the per-transaction ones are checked elsewhere); 0 = off. */
struct dw_throttle_limits {
    long requests_per_window;
    long window_s;              /* 0: both window limits off */
    long execution_s_per_window;
    long concurrent;
};

/* One admission, on the caller's storage, from admit to release. */
struct dw_throttle_ticket {
    int64_t admitted_ms;        /* on the limiter's clock */
    int64_t waited_ms;          /* time admit spent waiting (also when it refused) */
    dw_throttle_limit held_by;  /* what made it wait or refused it; DW_THROTTLE_NLIMITS: nothing */
    bool held;                  /* counted as concurrent until released */
};

/* A consistent snapshot for metrics and status. */
struct dw_throttle_stats {
    struct dw_throttle_limits limits;
    long requests_in_window;
    int64_t exec_ms_in_window;
    long in_use;                /* admitted, not released */
    long waiting;               /* inside admit now */
    int64_t paused_ms;          /* the target's pause lasts this much longer; 0 = none */
    uint64_t admitted;
    uint64_t target_pauses;     /* dw_throttle_pause calls */
    uint64_t waits[DW_THROTTLE_NLIMITS];       /* admissions that waited, by what held them */
    uint64_t wait_ms[DW_THROTTLE_NLIMITS];     /* and how long, in total */
    uint64_t rejections[DW_THROTTLE_NLIMITS];
};

/* "requests_per_window", "execution_s_per_window", "concurrent", "target". */
const char *dw_throttle_limit_name(dw_throttle_limit limit);

/*
 * A limiter for connector name (copied, for messages) with these limits.
 * clock NULL: CLOCK_MONOTONIC milliseconds.  NULL when out of memory.
 */
struct dw_throttle *dw_throttle_new(const char *name, const struct dw_throttle_limits *limits,
                                    dw_throttle_clock clock, void *clock_arg);
/* No admit may be running and no ticket outstanding.  Accepts NULL. */
void dw_throttle_free(struct dw_throttle *t);

/*
 * New limits (a reload).  Admissions in flight keep their tickets; waiters
 * look again at once.  The window's history is kept when window_s stays the
 * same and starts empty when it changes.  Out of memory keeps the old window
 * and logs a warning.
 */
void dw_throttle_set_limits(struct dw_throttle *t, const struct dw_throttle_limits *limits);

/* The limiter's clock. */
int64_t dw_throttle_now(const struct dw_throttle *t);

/*
 * Admit one request, waiting until deadline_ms (limiter clock;
 * DW_THROTTLE_NO_DEADLINE waits as long as it takes).  DW_OK: admitted, and
 * the ticket must be released.  DW_ERR_THROTTLED: refused, err names the limit
 * and the numbers ("connector \"crm\": 6000 requests in the last 300 s (limit
 * \"requests_per_window\" 6000); retry in 12 s"), *retry_after_ms says when
 * capacity is expected back (at least 1), and the ticket holds nothing.
 */
dw_errcode dw_throttle_admit(struct dw_throttle *t, int64_t deadline_ms, struct dw_throttle_ticket *ticket,
                             int64_t *retry_after_ms, struct dw_error *err) DW_MUST_CHECK;

/*
 * End an admission: its concurrency slot is freed and exec_ms (the target
 * time it used; 0 when it never reached the target) counts against
 * execution_s_per_window.  A ticket that holds nothing is ignored, so
 * releasing twice is harmless.
 */
void dw_throttle_release(struct dw_throttle *t, struct dw_throttle_ticket *ticket, int64_t exec_ms);

/* The target asked to wait: admit nothing before until_ms (an earlier time than a pause in force is ignored). */
void dw_throttle_pause(struct dw_throttle *t, int64_t until_ms);

/* Make waiters re-check now (tests that move their clock). */
void dw_throttle_kick(struct dw_throttle *t);

void dw_throttle_stats(struct dw_throttle *t, struct dw_throttle_stats *out);

/*
 * The service's limiters, one per connector name, for the life of the
 * process: a reload that keeps a connector keeps its limiter (and so its
 * window, its batches in flight and its counters) and only applies the new
 * limits.  generation is the configuration's (dw_state): the limits are
 * compared and applied only when it changed, so the lookup costs no lock in
 * between.  Limiters of connectors that a reload removed stay, idle.  NULL
 * when out of memory.
 */
struct dw_throttle *dw_throttle_shared(const char *name, const struct dw_throttle_limits *limits,
                                       unsigned long generation);
/* The shared limiter of name, or NULL when none was made yet. */
struct dw_throttle *dw_throttle_shared_find(const char *name);
/* Free every shared limiter (at exit, when no request runs). */
void dw_throttle_shared_cleanup(void);

#endif
