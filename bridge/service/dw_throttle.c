/*
 * The per-connector limiter of sync limits and the service's table of them
 * (dw_throttle.h says what it enforces and how).
 *
 * One mutex per limiter guards everything in it.  The sliding window is a
 * ring of DW_THROTTLE_BUCKETS + 1 buckets addressed by absolute bucket number
 * (clock / width); running totals are kept, and a bucket leaves them when
 * the clock moves past its end plus the window, so the common admit touches
 * one bucket.  When a limit is reached, the time until it frees is found by
 * walking the buckets oldest first until enough would have expired.
 *
 * The shared table is a list that only grows, published with an atomic
 * pointer: lookups walk it without a lock; only creating a limiter takes the
 * table's mutex.  A connector's limiter lives as long as the process, so a
 * request that started under the previous configuration releases its ticket
 * to the same limiter as the new requests.
 */
#include "bridge/service/dw_throttle.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge/common/dw_log.h"
#include "bridge/service/dw_metrics.h"

/* Longest single sleep: waiters look again at least this often. */
#define MAX_SLICE_MS 1000
/* Retry-after for a full concurrency limit when no batch finished in the window. */
#define CONCURRENT_RETRY_MS 1000

struct bucket {
    int64_t idx;        /* absolute bucket number; EMPTY when unused */
    long requests;      /* admissions */
    long done;          /* releases */
    int64_t exec_ms;    /* execution time reported at those releases */
};

#define EMPTY INT64_MIN

struct dw_throttle {
    char *name;
    dw_throttle_clock clock;
    void *clock_arg;
    pthread_mutex_t lock;
    pthread_cond_t changed;          /* a release, new limits, a pause, a kick */
    struct dw_throttle_limits limits;

    /* the window; width 0 when window_s is 0 */
    int64_t width_ms;
    struct bucket *slots;            /* DW_THROTTLE_BUCKETS + 1 */
    int64_t cur;                     /* newest bucket number seen */
    bool started;
    long requests;                   /* totals over the buckets that count */
    long done;
    int64_t exec_ms;

    long in_use;
    long waiting;
    int64_t paused_until;
    bool paused;

    uint64_t admitted;
    uint64_t target_pauses;
    uint64_t waits[DW_THROTTLE_NLIMITS];
    uint64_t wait_ms[DW_THROTTLE_NLIMITS];
    uint64_t rejections[DW_THROTTLE_NLIMITS];

    /* the shared table */
    struct dw_throttle *next;
    _Atomic unsigned long generation;
};

#define NSLOTS (DW_THROTTLE_BUCKETS + 1)

static const char *const limit_names[DW_THROTTLE_NLIMITS] = {
    "requests_per_window", "execution_s_per_window", "concurrent", "target",
};

const char *dw_throttle_limit_name(dw_throttle_limit limit)
{
    return (unsigned) limit < DW_THROTTLE_NLIMITS ? limit_names[limit] : "none";
}

static int64_t monotonic_ms(void *arg)
{
    struct timespec ts;

    (void) arg;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dw_throttle_now(const struct dw_throttle *t)
{
    return t->clock(t->clock_arg);
}

/* Floor division and modulo that also work for negative clocks (a test's clock may start anywhere). */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static struct bucket *slot_of(struct dw_throttle *t, int64_t idx)
{
    int64_t m = idx % NSLOTS;

    return &t->slots[m < 0 ? m + NSLOTS : m];
}

static void bucket_forget(struct dw_throttle *t, struct bucket *b)
{
    t->requests -= b->requests;
    t->done -= b->done;
    t->exec_ms -= b->exec_ms;
    memset(b, 0, sizeof(*b));
    b->idx = EMPTY;
}

static void window_clear(struct dw_throttle *t)
{
    for (int i = 0; t->slots && i < NSLOTS; i++) {
        memset(&t->slots[i], 0, sizeof(t->slots[i]));
        t->slots[i].idx = EMPTY;
    }
    t->requests = t->done = 0;
    t->exec_ms = 0;
    t->started = false;
}

/* Move the window to now: buckets [cur - B, cur] count, older ones leave the totals. */
static void advance(struct dw_throttle *t, int64_t now)
{
    int64_t idx;

    if (!t->width_ms)
        return;
    idx = floor_div(now, t->width_ms);
    if (!t->started) {
        t->cur = idx;
        t->started = true;
        return;
    }
    if (idx <= t->cur)
        return;   /* same bucket, or a clock that went back: keep the newest */
    if (idx - t->cur >= NSLOTS) {
        window_clear(t);
        t->cur = idx;
        t->started = true;
        return;
    }
    /* the buckets that counted at cur and no longer do at idx */
    for (int64_t k = t->cur - DW_THROTTLE_BUCKETS; k < idx - DW_THROTTLE_BUCKETS; k++) {
        struct bucket *b = slot_of(t, k);

        if (b->idx == k)
            bucket_forget(t, b);
    }
    t->cur = idx;
}

/* The bucket of the current time, emptied first if it still holds an old one. */
static struct bucket *current_bucket(struct dw_throttle *t)
{
    struct bucket *b = slot_of(t, t->cur);

    if (b->idx != t->cur) {
        if (b->idx != EMPTY)
            bucket_forget(t, b);
        b->idx = t->cur;
    }
    return b;
}

/* When bucket idx stops counting. */
static int64_t bucket_expiry(const struct dw_throttle *t, int64_t idx)
{
    return (idx + 1 + DW_THROTTLE_BUCKETS) * t->width_ms;
}

/*
 * How long until the oldest buckets holding `need` units of requests
 * (exec false) or execution milliseconds (exec true) have left the window.
 */
static int64_t time_until_freed(struct dw_throttle *t, int64_t now, int64_t need, bool exec)
{
    int64_t acc = 0;

    for (int64_t k = t->cur - DW_THROTTLE_BUCKETS; k <= t->cur; k++) {
        struct bucket *b = slot_of(t, k);

        if (b->idx != k)
            continue;
        acc += exec ? b->exec_ms : b->requests;
        if (acc >= need) {
            int64_t w = bucket_expiry(t, k) - now;

            return w > 0 ? w : 1;
        }
    }
    /* cannot happen: the totals are the sum of the buckets */
    return bucket_expiry(t, t->cur) - now;
}

/*
 * What holds an admission back now, or DW_THROTTLE_NLIMITS.  *wait_ms is the
 * time until the longest time-bound block ends (the pause, a window limit),
 * or -1 when only the concurrency limit blocks (no time is known for it).
 */
static dw_throttle_limit blocked(struct dw_throttle *t, int64_t now, int64_t *wait_ms)
{
    dw_throttle_limit which = DW_THROTTLE_NLIMITS;
    int64_t longest = -1;
    const struct dw_throttle_limits *l = &t->limits;

    if (t->paused) {
        if (now < t->paused_until) {
            longest = t->paused_until - now;
            which = DW_THROTTLE_TARGET;
        } else {
            t->paused = false;
        }
    }
    if (t->width_ms && l->requests_per_window > 0 && t->requests >= l->requests_per_window) {
        int64_t w = time_until_freed(t, now, t->requests - l->requests_per_window + 1, false);

        if (w > longest) {
            longest = w;
            which = DW_THROTTLE_REQUESTS;
        }
    }
    if (t->width_ms && l->execution_s_per_window > 0 && t->exec_ms >= l->execution_s_per_window * 1000) {
        int64_t w = time_until_freed(t, now, t->exec_ms - l->execution_s_per_window * 1000 + 1, true);

        if (w > longest) {
            longest = w;
            which = DW_THROTTLE_EXECUTION;
        }
    }
    if (which == DW_THROTTLE_NLIMITS && l->concurrent > 0 && t->in_use >= l->concurrent)
        which = DW_THROTTLE_CONCURRENT;
    *wait_ms = longest;
    return which;
}

/* A guess for a full concurrency limit: how long a batch takes, from the window. */
static int64_t concurrent_retry(const struct dw_throttle *t)
{
    int64_t avg = t->done > 0 ? t->exec_ms / t->done : 0;

    return avg > CONCURRENT_RETRY_MS ? avg : CONCURRENT_RETRY_MS;
}

static long long seconds_up(int64_t ms)
{
    return ms <= 0 ? 1 : (long long) ((ms + 999) / 1000);
}

/* The refusal's message, hint and detail, with the numbers as they are now (lock held). */
static void refuse(struct dw_throttle *t, dw_throttle_limit which, int64_t retry_ms, int64_t left_ms,
                   struct dw_error *err)
{
    const struct dw_throttle_limits *l = &t->limits;
    long long retry_s = seconds_up(retry_ms);

    switch (which) {
    case DW_THROTTLE_REQUESTS:
        dw_error_set(err, DW_ERR_THROTTLED,
                     "connector \"%s\": %ld request%s in the last %ld s (limit \"requests_per_window\" %ld); "
                     "retry in %lld s", t->name, t->requests, t->requests == 1 ? "" : "s", l->window_s,
                     l->requests_per_window, retry_s);
        break;
    case DW_THROTTLE_EXECUTION:
        dw_error_set(err, DW_ERR_THROTTLED,
                     "connector \"%s\": %.1f s of target execution time in the last %ld s (limit "
                     "\"execution_s_per_window\" %ld); retry in %lld s", t->name, (double) t->exec_ms / 1000.0,
                     l->window_s, l->execution_s_per_window, retry_s);
        break;
    case DW_THROTTLE_CONCURRENT:
        dw_error_set(err, DW_ERR_THROTTLED,
                     "connector \"%s\": %ld request%s in progress (limit \"concurrent\" %ld); retry in %lld s",
                     t->name, t->in_use, t->in_use == 1 ? "" : "s", l->concurrent, retry_s);
        break;
    case DW_THROTTLE_TARGET:
    case DW_THROTTLE_NLIMITS:
        dw_error_set(err, DW_ERR_THROTTLED,
                     "connector \"%s\": the target asked to pause (429/503 with Retry-After) for %lld s more; "
                     "retry in %lld s", t->name, seconds_up(t->paused_until - dw_throttle_now(t)), retry_s);
        break;
    }
    if (which == DW_THROTTLE_CONCURRENT)
        dw_error_detail(err, "No request of the connector finished before the batch's deadline.");
    else if (left_ms > 0)
        dw_error_detail(err, "Waiting for capacity would pass the batch's deadline (%lld ms left).",
                        (long long) left_ms);
    else
        dw_error_detail(err, "The batch's deadline left no time to wait for capacity.");
    if (which == DW_THROTTLE_TARGET)
        dw_error_hint(err, "The target is protecting itself; retry the transaction in %lld s.", retry_s);
    else
        dw_error_hint(err, "Retry the transaction in %lld s; if this happens often, raise the connector's limit "
                           "\"%s\" or spread the load.", retry_s, dw_throttle_limit_name(which));
}

static void cond_wait_ms(struct dw_throttle *t, int64_t ms)
{
    struct timespec ts = dw_monotonic_in_ms(ms);

    (void) pthread_cond_timedwait(&t->changed, &t->lock, &ts);
}

dw_errcode dw_throttle_admit(struct dw_throttle *t, int64_t deadline_ms, struct dw_throttle_ticket *ticket,
                             int64_t *retry_after_ms, struct dw_error *err)
{
    int64_t start, now, wait_ms;
    dw_throttle_limit which;
    bool counted = false;

    memset(ticket, 0, sizeof(*ticket));
    ticket->held_by = DW_THROTTLE_NLIMITS;
    *retry_after_ms = 0;
    pthread_mutex_lock(&t->lock);
    start = now = t->clock(t->clock_arg);
    for (;;) {
        int64_t left, slice;

        advance(t, now);
        which = blocked(t, now, &wait_ms);
        if (which == DW_THROTTLE_NLIMITS)
            break;
        if (ticket->held_by == DW_THROTTLE_NLIMITS)
            ticket->held_by = which;
        left = deadline_ms == DW_THROTTLE_NO_DEADLINE ? INT64_MAX : deadline_ms - now;
        if (left <= 0 || (wait_ms >= 0 && wait_ms > left)) {
            int64_t retry = wait_ms >= 0 ? wait_ms : concurrent_retry(t);

            if (counted)
                t->waiting--;
            t->rejections[which]++;
            ticket->held_by = which;
            ticket->waited_ms = now - start;
            *retry_after_ms = retry > 0 ? retry : 1;
            refuse(t, which, retry, left, err);
            pthread_mutex_unlock(&t->lock);
            return DW_ERR_THROTTLED;
        }
        slice = wait_ms >= 0 ? wait_ms : left;
        if (slice > left)
            slice = left;
        if (slice > MAX_SLICE_MS)
            slice = MAX_SLICE_MS;
        if (slice < 1)
            slice = 1;
        if (!counted) {
            t->waiting++;
            counted = true;
        }
        cond_wait_ms(t, slice);
        now = t->clock(t->clock_arg);
    }
    if (counted) {
        t->waiting--;
        t->waits[ticket->held_by]++;
        t->wait_ms[ticket->held_by] += (uint64_t) (now - start > 0 ? now - start : 0);
    }
    if (t->width_ms) {
        current_bucket(t)->requests++;
        t->requests++;
    }
    t->in_use++;
    t->admitted++;
    ticket->held = true;
    ticket->admitted_ms = now;
    ticket->waited_ms = now - start;
    pthread_mutex_unlock(&t->lock);
    return DW_OK;
}

void dw_throttle_release(struct dw_throttle *t, struct dw_throttle_ticket *ticket, int64_t exec_ms)
{
    if (!t || !ticket || !ticket->held)
        return;
    pthread_mutex_lock(&t->lock);
    ticket->held = false;
    t->in_use--;
    if (t->width_ms) {
        struct bucket *b;

        advance(t, t->clock(t->clock_arg));
        b = current_bucket(t);
        b->done++;
        t->done++;
        if (exec_ms > 0) {
            b->exec_ms += exec_ms;
            t->exec_ms += exec_ms;
        }
    }
    if (t->waiting > 0)
        pthread_cond_broadcast(&t->changed);
    pthread_mutex_unlock(&t->lock);
}

void dw_throttle_pause(struct dw_throttle *t, int64_t until_ms)
{
    pthread_mutex_lock(&t->lock);
    t->target_pauses++;
    if (!t->paused || until_ms > t->paused_until) {
        t->paused_until = until_ms;
        t->paused = true;
    }
    /* waiters whose deadline the pause passes refuse now rather than at their deadline */
    pthread_cond_broadcast(&t->changed);
    pthread_mutex_unlock(&t->lock);
}

void dw_throttle_kick(struct dw_throttle *t)
{
    pthread_mutex_lock(&t->lock);
    pthread_cond_broadcast(&t->changed);
    pthread_mutex_unlock(&t->lock);
}

/* Set limits and the window (lock held, or not shared yet). */
static void apply_limits(struct dw_throttle *t, const struct dw_throttle_limits *l)
{
    int64_t width = l->window_s > 0 ? (l->window_s * 1000 + DW_THROTTLE_BUCKETS - 1) / DW_THROTTLE_BUCKETS : 0;

    if (width != t->width_ms) {
        if (width && !t->slots) {
            t->slots = calloc(NSLOTS, sizeof(*t->slots));
            if (!t->slots) {
                dw_warn("connector \"%s\": out of memory for the sync-limit window; window limits are off "
                        "until the next reload", t->name);
                width = 0;
            }
        }
        t->width_ms = width;
        window_clear(t);
    }
    t->limits = *l;
}

void dw_throttle_set_limits(struct dw_throttle *t, const struct dw_throttle_limits *limits)
{
    pthread_mutex_lock(&t->lock);
    apply_limits(t, limits);
    pthread_cond_broadcast(&t->changed);
    pthread_mutex_unlock(&t->lock);
}

struct dw_throttle *dw_throttle_new(const char *name, const struct dw_throttle_limits *limits,
                                    dw_throttle_clock clock, void *clock_arg)
{
    struct dw_throttle *t = calloc(1, sizeof(*t));
    pthread_condattr_t ca;

    if (!t)
        return NULL;
    t->name = strdup(name ? name : "");
    if (!t->name) {
        free(t);
        return NULL;
    }
    t->clock = clock ? clock : monotonic_ms;
    t->clock_arg = clock_arg;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->changed, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&t->generation, 0);
    apply_limits(t, limits);
    if (limits->window_s > 0 && !t->width_ms) {
        dw_throttle_free(t);
        return NULL;
    }
    return t;
}

void dw_throttle_free(struct dw_throttle *t)
{
    if (!t)
        return;
    pthread_cond_destroy(&t->changed);
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t->name);
    free(t);
}

void dw_throttle_stats(struct dw_throttle *t, struct dw_throttle_stats *out)
{
    int64_t now;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&t->lock);
    now = t->clock(t->clock_arg);
    advance(t, now);
    out->limits = t->limits;
    out->requests_in_window = t->requests;
    out->exec_ms_in_window = t->exec_ms;
    out->in_use = t->in_use;
    out->waiting = t->waiting;
    out->paused_ms = t->paused && t->paused_until > now ? t->paused_until - now : 0;
    out->admitted = t->admitted;
    out->target_pauses = t->target_pauses;
    memcpy(out->waits, t->waits, sizeof(out->waits));
    memcpy(out->wait_ms, t->wait_ms, sizeof(out->wait_ms));
    memcpy(out->rejections, t->rejections, sizeof(out->rejections));
    pthread_mutex_unlock(&t->lock);
}

/* ---- the service's table ---- */

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct dw_throttle *) shared_head;

struct dw_throttle *dw_throttle_shared_find(const char *name)
{
    for (struct dw_throttle *t = atomic_load_explicit(&shared_head, memory_order_acquire); t; t = t->next) {
        if (strcmp(t->name, name) == 0)
            return t;
    }
    return NULL;
}

struct dw_throttle *dw_throttle_shared(const char *name, const struct dw_throttle_limits *limits,
                                       unsigned long generation)
{
    struct dw_throttle *t = dw_throttle_shared_find(name);

    if (!t) {
        pthread_mutex_lock(&shared_lock);
        t = dw_throttle_shared_find(name);
        if (!t) {
            t = dw_throttle_new(name, limits, NULL, NULL);
            if (t) {
                atomic_store(&t->generation, generation);
                t->next = atomic_load_explicit(&shared_head, memory_order_relaxed);
                atomic_store_explicit(&shared_head, t, memory_order_release);
            }
        }
        pthread_mutex_unlock(&shared_lock);
        return t;
    }
    /* a newer configuration: apply its limits once; an older one (a request from before a reload) never */
    if (generation > atomic_load(&t->generation)) {
        pthread_mutex_lock(&t->lock);
        if (generation > atomic_load(&t->generation)) {
            apply_limits(t, limits);
            atomic_store(&t->generation, generation);
            pthread_cond_broadcast(&t->changed);
        }
        pthread_mutex_unlock(&t->lock);
    }
    return t;
}

void dw_throttle_shared_cleanup(void)
{
    struct dw_throttle *t;

    pthread_mutex_lock(&shared_lock);
    t = atomic_exchange(&shared_head, NULL);
    pthread_mutex_unlock(&shared_lock);
    while (t) {
        struct dw_throttle *next = t->next;

        dw_throttle_free(t);
        t = next;
    }
}
