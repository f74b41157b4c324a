/*
 * Unit tests of the sync-limit limiter (bridge/service/dw_throttle.c).
 *
 * Most tests drive the limiter with their own clock, so that windows, expiry
 * and retry-after values are exact numbers: the clock only moves when a test
 * moves it (and kicks the limiter so that waiters look again).  A waiter
 * thread is only released after the test has seen it waiting (stats.waiting),
 * so no assertion depends on how fast anything runs.  The concurrency stress
 * test uses the real clock and asserts only counts.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge/service/dw_throttle.h"
#include "tests/unit/common/dw_cunit.h"

/* ---- a clock the test moves ---- */

static _Atomic int64_t fake_now;

static int64_t fake_clock(void *arg)
{
    (void) arg;
    return atomic_load(&fake_now);
}

static struct dw_throttle *fake(long requests, long window_s, long exec_s, long concurrent)
{
    struct dw_throttle_limits l = {requests, window_s, exec_s, concurrent};
    struct dw_throttle *t;

    atomic_store(&fake_now, 1000000);
    t = dw_throttle_new("crm", &l, fake_clock, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

static void advance(struct dw_throttle *t, int64_t ms)
{
    atomic_fetch_add(&fake_now, ms);
    dw_throttle_kick(t);
}

static dw_errcode admit(struct dw_throttle *t, int64_t deadline, struct dw_throttle_ticket *tk, int64_t *retry,
                        struct dw_error *err)
{
    dw_error_clear(err);
    return dw_throttle_admit(t, deadline, tk, retry, err);
}

/* Admit now, without waiting; true when admitted (the ticket is released at once). */
static bool admit_now(struct dw_throttle *t)
{
    struct dw_throttle_ticket tk;
    struct dw_error err;
    int64_t retry;

    if (admit(t, dw_throttle_now(t), &tk, &retry, &err) != DW_OK)
        return false;
    dw_throttle_release(t, &tk, 0);
    return true;
}

static void stats(struct dw_throttle *t, struct dw_throttle_stats *s)
{
    dw_throttle_stats(t, s);
}

/* Spin (yielding) until n admissions are waiting; bounded. */
static bool wait_for_waiters(struct dw_throttle *t, long n)
{
    for (int i = 0; i < 20000; i++) {
        struct dw_throttle_stats s;
        struct timespec ts = {0, 1000000};

        stats(t, &s);
        if (s.waiting == n)
            return true;
        nanosleep(&ts, NULL);
    }
    return false;
}

/* An admission on its own thread. */
struct waiter {
    pthread_t thread;
    struct dw_throttle *t;
    int64_t deadline;
    dw_errcode rc;
    int64_t retry;
    struct dw_throttle_ticket ticket;
    struct dw_error err;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;

    w->rc = admit(w->t, w->deadline, &w->ticket, &w->retry, &w->err);
    return NULL;
}

static void waiter_start(struct waiter *w, struct dw_throttle *t, int64_t deadline)
{
    memset(w, 0, sizeof(*w));
    w->t = t;
    w->deadline = deadline;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&w->thread, NULL, waiter_main, w), 0);
}

/* ---- tests ---- */

static void test_names(void)
{
    DW_ASSERT_STREQ(dw_throttle_limit_name(DW_THROTTLE_REQUESTS), "requests_per_window");
    DW_ASSERT_STREQ(dw_throttle_limit_name(DW_THROTTLE_EXECUTION), "execution_s_per_window");
    DW_ASSERT_STREQ(dw_throttle_limit_name(DW_THROTTLE_CONCURRENT), "concurrent");
    DW_ASSERT_STREQ(dw_throttle_limit_name(DW_THROTTLE_TARGET), "target");
}

/* 3 per 10 s: the 4th is refused with the exact time until the first bucket leaves the window. */
static void test_window_counts_and_expiry(void)
{
    struct dw_throttle *t = fake(3, 10, 0, 0);
    struct dw_throttle_ticket tk;
    struct dw_throttle_stats s;
    struct dw_error err;
    int64_t retry;

    for (int i = 0; i < 3; i++)
        CU_ASSERT_TRUE(admit_now(t));
    stats(t, &s);
    CU_ASSERT_EQUAL(s.requests_in_window, 3);
    CU_ASSERT_EQUAL(s.in_use, 0);

    CU_ASSERT_EQUAL(admit(t, dw_throttle_now(t), &tk, &retry, &err), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(err.code, DW_ERR_THROTTLED);
    /* 100 ms buckets: bucket 10000 counts until (10000 + 1 + 100) * 100 */
    CU_ASSERT_EQUAL(retry, 10100);
    CU_ASSERT_EQUAL(tk.held_by, DW_THROTTLE_REQUESTS);
    CU_ASSERT_FALSE(tk.held);
    DW_ASSERT_STREQ(err.message, "connector \"crm\": 3 requests in the last 10 s (limit \"requests_per_window\" 3); "
                                 "retry in 11 s");
    DW_ASSERT_CONTAINS(err.hint, "requests_per_window");

    advance(t, 10099);
    CU_ASSERT_EQUAL(admit(t, dw_throttle_now(t), &tk, &retry, &err), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(retry, 1);
    advance(t, 1);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.requests_in_window, 0);
    CU_ASSERT_TRUE(admit_now(t));
    stats(t, &s);
    CU_ASSERT_EQUAL(s.requests_in_window, 1);
    CU_ASSERT_EQUAL(s.admitted, 4);
    CU_ASSERT_EQUAL(s.rejections[DW_THROTTLE_REQUESTS], 2);
    dw_throttle_free(t);
}

/* The window slides: requests leave it one bucket at a time. */
static void test_window_slides(void)
{
    struct dw_throttle *t = fake(3, 10, 0, 0);
    struct dw_throttle_ticket tk;
    struct dw_throttle_stats s;
    struct dw_error err;
    int64_t retry;

    CU_ASSERT_TRUE(admit_now(t));
    CU_ASSERT_TRUE(admit_now(t));
    advance(t, 5000);
    CU_ASSERT_TRUE(admit_now(t));
    CU_ASSERT_EQUAL(admit(t, dw_throttle_now(t), &tk, &retry, &err), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(retry, 5100);
    advance(t, 5100);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.requests_in_window, 1);
    CU_ASSERT_TRUE(admit_now(t));
    CU_ASSERT_TRUE(admit_now(t));
    CU_ASSERT_EQUAL(admit(t, dw_throttle_now(t), &tk, &retry, &err), DW_ERR_THROTTLED);
    /* the request made at +5000 (bucket 10050) leaves at (10050 + 101) * 100 */
    CU_ASSERT_EQUAL(retry, 1015100 - 1010100);
    /* a jump longer than the window forgets everything */
    advance(t, 1000000);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.requests_in_window, 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_TRUE(admit_now(t));
    CU_ASSERT_FALSE(admit_now(t));
    dw_throttle_free(t);
}

/* A clock that starts below zero (a test's or a platform's) works the same. */
static void test_negative_clock(void)
{
    struct dw_throttle *t = fake(1, 10, 0, 0);
    struct dw_throttle_ticket tk;
    struct dw_error err;
    int64_t retry;

    atomic_store(&fake_now, -5050);
    CU_ASSERT_TRUE(admit_now(t));
    CU_ASSERT_EQUAL(admit(t, dw_throttle_now(t), &tk, &retry, &err), DW_ERR_THROTTLED);
    /* bucket -51 counts until (-51 + 101) * 100 = 5000 */
    CU_ASSERT_EQUAL(retry, 5000 + 5050);
    advance(t, 10050);
    CU_ASSERT_TRUE(admit_now(t));
    dw_throttle_free(t);
}

/* Execution seconds per window: the sum of the execution times reported at release. */
static void test_execution_window(void)
{
    struct dw_throttle *t = fake(0, 10, 1, 0);
    struct dw_throttle_ticket a, b, c;
    struct dw_throttle_stats s;
    struct dw_error err;
    int64_t retry;

    CU_ASSERT_EQUAL(admit(t, 0, &a, &retry, &err), DW_OK);
    CU_ASSERT_EQUAL(admit(t, 0, &b, &retry, &err), DW_OK);
    dw_throttle_release(t, &a, 600);
    advance(t, 2000);
    dw_throttle_release(t, &b, 500);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.exec_ms_in_window, 1100);
    CU_ASSERT_EQUAL(s.in_use, 0);
    CU_ASSERT_EQUAL(admit(t, dw_throttle_now(t), &c, &retry, &err), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(c.held_by, DW_THROTTLE_EXECUTION);
    DW_ASSERT_STREQ(err.message, "connector \"crm\": 1.1 s of target execution time in the last 10 s (limit "
                                 "\"execution_s_per_window\" 1); retry in 9 s");
    /* dropping the first 600 ms is enough: its bucket (10000) leaves at 1010100 */
    CU_ASSERT_EQUAL(retry, 1010100 - 1002000);
    advance(t, retry);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.exec_ms_in_window, 500);
    CU_ASSERT_TRUE(admit_now(t));
    dw_throttle_free(t);
}

/* Concurrent requests: a counting semaphore; releasing twice is harmless. */
static void test_concurrency(void)
{
    struct dw_throttle *t = fake(0, 0, 0, 2);
    struct dw_throttle_ticket a, b, c;
    struct dw_throttle_stats s;
    struct dw_error err;
    int64_t retry;

    CU_ASSERT_EQUAL(admit(t, 0, &a, &retry, &err), DW_OK);
    CU_ASSERT_EQUAL(admit(t, 0, &b, &retry, &err), DW_OK);
    CU_ASSERT_TRUE(a.held);
    CU_ASSERT_EQUAL(admit(t, dw_throttle_now(t), &c, &retry, &err), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(c.held_by, DW_THROTTLE_CONCURRENT);
    CU_ASSERT(retry >= 1000);
    DW_ASSERT_STREQ(err.message, "connector \"crm\": 2 requests in progress (limit \"concurrent\" 2); retry in 1 s");
    dw_throttle_release(t, &a, 10);
    dw_throttle_release(t, &a, 10);
    CU_ASSERT_FALSE(a.held);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.in_use, 1);
    CU_ASSERT_EQUAL(admit(t, dw_throttle_now(t), &c, &retry, &err), DW_OK);
    dw_throttle_release(t, &b, 0);
    dw_throttle_release(t, &c, 0);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.in_use, 0);
    CU_ASSERT_EQUAL(s.rejections[DW_THROTTLE_CONCURRENT], 1);
    dw_throttle_free(t);
}

/* The target's pause: refused at once when it passes the deadline, waited out when it does not. */
static void test_pause(void)
{
    struct dw_throttle *t = fake(0, 0, 0, 0);
    struct dw_throttle_ticket tk;
    struct dw_throttle_stats s;
    struct dw_error err;
    struct waiter w;
    int64_t retry, now = dw_throttle_now(t);

    dw_throttle_pause(t, now + 5000);
    dw_throttle_pause(t, now + 2000);   /* an earlier end does not shorten it */
    stats(t, &s);
    CU_ASSERT_EQUAL(s.paused_ms, 5000);
    CU_ASSERT_EQUAL(s.target_pauses, 2);
    CU_ASSERT_EQUAL(admit(t, now + 1000, &tk, &retry, &err), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(retry, 5000);
    CU_ASSERT_EQUAL(tk.waited_ms, 0);
    CU_ASSERT_EQUAL(tk.held_by, DW_THROTTLE_TARGET);
    DW_ASSERT_CONTAINS(err.message, "connector \"crm\": the target asked to pause");
    DW_ASSERT_CONTAINS(err.message, "retry in 5 s");

    waiter_start(&w, t, now + 10000);
    CU_ASSERT_TRUE(wait_for_waiters(t, 1));
    advance(t, 4999);
    CU_ASSERT_TRUE(wait_for_waiters(t, 1));
    advance(t, 1);
    pthread_join(w.thread, NULL);
    CU_ASSERT_EQUAL(w.rc, DW_OK);
    CU_ASSERT_EQUAL(w.ticket.held_by, DW_THROTTLE_TARGET);
    CU_ASSERT_EQUAL(w.ticket.waited_ms, 5000);
    dw_throttle_release(t, &w.ticket, 0);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.paused_ms, 0);
    CU_ASSERT_EQUAL(s.waits[DW_THROTTLE_TARGET], 1);
    CU_ASSERT_EQUAL(s.wait_ms[DW_THROTTLE_TARGET], 5000);
    CU_ASSERT_EQUAL(s.rejections[DW_THROTTLE_TARGET], 1);
    dw_throttle_free(t);
}

/* A waiter whose deadline allows it waits for the window, then is admitted. */
static void test_wait_then_admit(void)
{
    struct dw_throttle *t = fake(1, 10, 0, 0);
    struct dw_throttle_stats s;
    struct waiter w;

    CU_ASSERT_TRUE(admit_now(t));
    waiter_start(&w, t, dw_throttle_now(t) + 20000);
    CU_ASSERT_TRUE(wait_for_waiters(t, 1));
    advance(t, 10100);
    pthread_join(w.thread, NULL);
    CU_ASSERT_EQUAL(w.rc, DW_OK);
    CU_ASSERT_TRUE(w.ticket.held);
    CU_ASSERT_EQUAL(w.ticket.waited_ms, 10100);
    dw_throttle_release(t, &w.ticket, 0);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.waits[DW_THROTTLE_REQUESTS], 1);
    CU_ASSERT_EQUAL(s.wait_ms[DW_THROTTLE_REQUESTS], 10100);
    CU_ASSERT_EQUAL(s.waiting, 0);
    CU_ASSERT_EQUAL(s.requests_in_window, 1);
    dw_throttle_free(t);
}

/* A deadline shorter than the wait: refused at once, without sleeping, with the time capacity frees. */
static void test_reject_when_deadline_too_short(void)
{
    struct dw_throttle *t = fake(1, 10, 0, 0);
    struct dw_throttle_ticket tk;
    struct dw_throttle_stats s;
    struct dw_error err;
    int64_t retry;

    CU_ASSERT_TRUE(admit_now(t));
    advance(t, 3000);
    CU_ASSERT_EQUAL(admit(t, dw_throttle_now(t) + 5000, &tk, &retry, &err), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(retry, 7100);
    CU_ASSERT_EQUAL(tk.waited_ms, 0);
    DW_ASSERT_CONTAINS(err.message, "retry in 8 s");
    DW_ASSERT_STREQ(err.detail, "Waiting for capacity would pass the batch's deadline (5000 ms left).");
    /* a deadline already past */
    CU_ASSERT_EQUAL(admit(t, dw_throttle_now(t) - 1, &tk, &retry, &err), DW_ERR_THROTTLED);
    CU_ASSERT_EQUAL(retry, 7100);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.rejections[DW_THROTTLE_REQUESTS], 2);
    CU_ASSERT_EQUAL(s.waits[DW_THROTTLE_REQUESTS], 0);
    CU_ASSERT_EQUAL(s.waiting, 0);
    dw_throttle_free(t);
}

/* A full concurrency limit has no known end: the batch waits for a release, or for its deadline. */
static void test_concurrency_wait(void)
{
    struct dw_throttle *t = fake(0, 0, 0, 1);
    struct dw_throttle_ticket first;
    struct dw_throttle_stats s;
    struct dw_error err;
    struct waiter w;
    int64_t retry;

    CU_ASSERT_EQUAL(admit(t, 0, &first, &retry, &err), DW_OK);
    waiter_start(&w, t, dw_throttle_now(t) + 60000);
    CU_ASSERT_TRUE(wait_for_waiters(t, 1));
    dw_throttle_release(t, &first, 50);
    pthread_join(w.thread, NULL);
    CU_ASSERT_EQUAL(w.rc, DW_OK);
    CU_ASSERT_EQUAL(w.ticket.held_by, DW_THROTTLE_CONCURRENT);

    /* now w holds the slot; the next one's deadline comes first */
    {
        struct waiter late;

        waiter_start(&late, t, dw_throttle_now(t) + 100);
        CU_ASSERT_TRUE(wait_for_waiters(t, 1));
        advance(t, 100);
        pthread_join(late.thread, NULL);
        CU_ASSERT_EQUAL(late.rc, DW_ERR_THROTTLED);
        CU_ASSERT_EQUAL(late.ticket.held_by, DW_THROTTLE_CONCURRENT);
        CU_ASSERT_EQUAL(late.ticket.waited_ms, 100);
        CU_ASSERT(late.retry >= 1000);
        DW_ASSERT_CONTAINS(late.err.detail, "finished before the batch's deadline");
    }
    dw_throttle_release(t, &w.ticket, 0);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.waits[DW_THROTTLE_CONCURRENT], 1);
    CU_ASSERT_EQUAL(s.rejections[DW_THROTTLE_CONCURRENT], 1);
    CU_ASSERT_EQUAL(s.in_use, 0);
    dw_throttle_free(t);
}

/* New limits apply at once, to waiters too; the window survives unless window_s changes. */
static void test_set_limits(void)
{
    struct dw_throttle *t = fake(2, 10, 0, 0);
    struct dw_throttle_limits more = {3, 10, 0, 0}, other_window = {3, 20, 0, 0};
    struct dw_throttle_stats s;
    struct waiter w;

    CU_ASSERT_TRUE(admit_now(t));
    CU_ASSERT_TRUE(admit_now(t));
    waiter_start(&w, t, dw_throttle_now(t) + 60000);
    CU_ASSERT_TRUE(wait_for_waiters(t, 1));
    dw_throttle_set_limits(t, &more);
    pthread_join(w.thread, NULL);
    CU_ASSERT_EQUAL(w.rc, DW_OK);
    dw_throttle_release(t, &w.ticket, 0);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.requests_in_window, 3);
    CU_ASSERT_EQUAL(s.limits.requests_per_window, 3);
    CU_ASSERT_FALSE(admit_now(t));
    dw_throttle_set_limits(t, &other_window);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.requests_in_window, 0);
    CU_ASSERT_EQUAL(s.limits.window_s, 20);
    CU_ASSERT_TRUE(admit_now(t));
    dw_throttle_free(t);
}

/* Off means off: no limit, no waiting, but the use is still counted. */
static void test_limits_off(void)
{
    struct dw_throttle *t = fake(0, 10, 0, 0);
    struct dw_throttle_stats s;

    for (int i = 0; i < 1000; i++)
        CU_ASSERT_TRUE(admit_now(t));
    stats(t, &s);
    CU_ASSERT_EQUAL(s.requests_in_window, 1000);
    dw_throttle_free(t);
}

/* ---- many threads ---- */

#define NTHREADS 8

struct hammer {
    struct dw_throttle *t;
    int rounds;
    bool hold;                  /* sleep a little while admitted */
    int64_t deadline_ms;        /* relative; 0: admit now or never */
    _Atomic long *admitted;
    _Atomic long *refused;
    _Atomic long *inside;
    _Atomic long *max_inside;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;

    for (int i = 0; i < h->rounds; i++) {
        struct dw_throttle_ticket tk;
        struct dw_error err;
        int64_t retry, now = dw_throttle_now(h->t);

        if (admit(h->t, now + h->deadline_ms, &tk, &retry, &err) != DW_OK) {
            atomic_fetch_add(h->refused, 1);
            continue;
        }
        {
            long in = atomic_fetch_add(h->inside, 1) + 1, max = atomic_load(h->max_inside);

            while (in > max && !atomic_compare_exchange_weak(h->max_inside, &max, in)) {
            }
        }
        atomic_fetch_add(h->admitted, 1);
        if (h->hold) {
            struct timespec ts = {0, 200000};

            nanosleep(&ts, NULL);
        }
        atomic_fetch_sub(h->inside, 1);
        dw_throttle_release(h->t, &tk, 1);
    }
    return NULL;
}

static void run_hammer(struct dw_throttle *t, int rounds, bool hold, int64_t deadline_ms, long *admitted,
                       long *refused, long *max_inside)
{
    _Atomic long a = 0, r = 0, in = 0, mx = 0;
    struct hammer h = {t, rounds, hold, deadline_ms, &a, &r, &in, &mx};
    pthread_t th[NTHREADS];

    for (int i = 0; i < NTHREADS; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, hammer_main, &h), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    *admitted = atomic_load(&a);
    *refused = atomic_load(&r);
    *max_inside = atomic_load(&mx);
}

/* A frozen clock and 50 per window: exactly 50 of 160 concurrent admissions get in. */
static void test_threads_window(void)
{
    struct dw_throttle *t = fake(50, 10, 0, 0);
    struct dw_throttle_stats s;
    long admitted, refused, max_inside;

    run_hammer(t, 20, false, 0, &admitted, &refused, &max_inside);
    CU_ASSERT_EQUAL(admitted, 50);
    CU_ASSERT_EQUAL(refused, NTHREADS * 20 - 50);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.requests_in_window, 50);
    CU_ASSERT_EQUAL(s.in_use, 0);
    CU_ASSERT_EQUAL(s.admitted, 50);
    CU_ASSERT_EQUAL((long) s.rejections[DW_THROTTLE_REQUESTS], refused);
    dw_throttle_free(t);
}

/* The real clock, concurrent 3, everyone willing to wait: all get in, never more than 3 at once. */
static void test_threads_concurrency(void)
{
    struct dw_throttle_limits l = {0, 0, 0, 3};
    struct dw_throttle *t = dw_throttle_new("crm", &l, NULL, NULL);
    struct dw_throttle_stats s;
    long admitted, refused, max_inside;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    run_hammer(t, 25, true, 120000, &admitted, &refused, &max_inside);
    CU_ASSERT_EQUAL(admitted, NTHREADS * 25);
    CU_ASSERT_EQUAL(refused, 0);
    CU_ASSERT(max_inside >= 1 && max_inside <= 3);
    stats(t, &s);
    CU_ASSERT_EQUAL(s.in_use, 0);
    CU_ASSERT_EQUAL(s.waiting, 0);
    CU_ASSERT_EQUAL((long) s.admitted, NTHREADS * 25);
    dw_throttle_free(t);
}

/* Both at once, real clock: 40 per 100 s and 2 concurrent; the window caps the total. */
static void test_threads_both(void)
{
    struct dw_throttle_limits l = {40, 100, 0, 2};
    struct dw_throttle *t = dw_throttle_new("crm", &l, NULL, NULL);
    long admitted, refused, max_inside;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    /* a deadline long enough to wait for a slot, far shorter than the window */
    run_hammer(t, 10, true, 30000, &admitted, &refused, &max_inside);
    CU_ASSERT_EQUAL(admitted, 40);
    CU_ASSERT_EQUAL(refused, NTHREADS * 10 - 40);
    CU_ASSERT(max_inside <= 2);
    dw_throttle_free(t);
}

/* ---- the shared table ---- */

static void test_shared(void)
{
    struct dw_throttle_limits one = {1, 10, 0, 0}, two = {2, 10, 0, 0};
    struct dw_throttle *a, *again, *b;
    struct dw_throttle_stats s;

    CU_ASSERT_PTR_NULL(dw_throttle_shared_find("a"));
    a = dw_throttle_shared("a", &one, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_EQUAL(dw_throttle_shared_find("a"), a);
    b = dw_throttle_shared("b", &two, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_EQUAL(a, b);
    CU_ASSERT_TRUE(admit_now(a));
    CU_ASSERT_FALSE(admit_now(a));

    /* a reload: the same limiter, new limits, the window kept */
    again = dw_throttle_shared("a", &two, 2);
    CU_ASSERT_PTR_EQUAL(again, a);
    dw_throttle_stats(a, &s);
    CU_ASSERT_EQUAL(s.limits.requests_per_window, 2);
    CU_ASSERT_EQUAL(s.requests_in_window, 1);
    /* a request of the older generation does not bring the old limits back */
    CU_ASSERT_PTR_EQUAL(dw_throttle_shared("a", &one, 1), a);
    dw_throttle_stats(a, &s);
    CU_ASSERT_EQUAL(s.limits.requests_per_window, 2);
    CU_ASSERT_TRUE(admit_now(a));
    dw_throttle_shared_cleanup();
    CU_ASSERT_PTR_NULL(dw_throttle_shared_find("a"));
}

static const struct dw_cunit_test tests[] = {
    {"limit names", test_names},
    {"sliding window: counts and expiry", test_window_counts_and_expiry},
    {"sliding window: slides bucket by bucket", test_window_slides},
    {"clock below zero", test_negative_clock},
    {"execution seconds per window", test_execution_window},
    {"concurrent requests", test_concurrency},
    {"pause until the target's Retry-After", test_pause},
    {"wait, then admit", test_wait_then_admit},
    {"refuse at once when the deadline is too short", test_reject_when_deadline_too_short},
    {"concurrency: wait for a release or the deadline", test_concurrency_wait},
    {"new limits", test_set_limits},
    {"limits off", test_limits_off},
    {"threads: window never exceeded", test_threads_window},
    {"threads: concurrency never exceeded", test_threads_concurrency},
    {"threads: window and concurrency together", test_threads_both},
    {"shared limiters across reloads", test_shared},
};

DW_CUNIT_MAIN("throttle", tests)
