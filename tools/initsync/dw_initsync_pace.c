/*
 * How fast dw-initsync may go: --rate and the connectors' sync limits.
 *
 * --rate ROWS_PER_S is one token bucket for the whole run (every map, every
 * thread): a chunk may start when the bucket is not in debt, and the rows it
 * read are charged afterwards, so the average over a few chunks is the rate
 * and no FOR SHARE lock is ever held while waiting for it.  The bucket keeps
 * up to one second of unused rate (a burst after a slow chunk).
 *
 * The connectors' window limits (requests_per_window, execution_s_per_window,
 * concurrent) go through the service's limiter (bridge/service/dw_throttle.h),
 * one per connector shared by the run's threads; each target transaction is
 * one request.  dw-initsync is its own process, so it cannot share the
 * service's window: while both run, the target sees the sum.
 *
 * Every wait wakes at least every WAKE_MS to notice Ctrl-C.
 */
#include "tools/initsync/dw_initsync.h"

#include <errno.h>
#include <time.h>

#define WAKE_MS 200
#define BURST_US 1000000

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t dw_initsync_now_ms(void)
{
    return now_us() / 1000;
}

void dw_initsync_sleep_ms(const struct dw_initsync_run *run, long ms)
{
    while (ms > 0 && !dw_initsync_stopping(run)) {
        long step = ms < WAKE_MS ? ms : WAKE_MS;
        struct timespec ts = {step / 1000, (step % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !dw_initsync_stopping(run))
            ;
        ms -= step;
    }
}

void dw_initsync_pace_init(struct dw_initsync_pace *p, double rate)
{
    pthread_mutex_init(&p->lock, NULL);
    p->rate = rate;
    p->next_us = 0;
}

void dw_initsync_pace_cleanup(struct dw_initsync_pace *p)
{
    pthread_mutex_destroy(&p->lock);
}

bool dw_initsync_pace_wait(const struct dw_initsync_run *run, struct dw_initsync_pace *p)
{
    if (p->rate <= 0)
        return !dw_initsync_stopping(run);
    for (;;) {
        int64_t wait_us;

        if (dw_initsync_stopping(run))
            return false;
        pthread_mutex_lock(&p->lock);
        wait_us = p->next_us - now_us();
        pthread_mutex_unlock(&p->lock);
        if (wait_us <= 0)
            return true;
        dw_initsync_sleep_ms(run, (long) ((wait_us + 999) / 1000));
    }
}

void dw_initsync_pace_charge(struct dw_initsync_pace *p, size_t rows)
{
    int64_t now;

    if (p->rate <= 0 || rows == 0)
        return;
    now = now_us();
    pthread_mutex_lock(&p->lock);
    if (p->next_us < now - BURST_US)
        p->next_us = now - BURST_US;
    p->next_us += (int64_t) ((double) rows * 1e6 / p->rate);
    pthread_mutex_unlock(&p->lock);
}

dw_errcode dw_initsync_admit(const struct dw_initsync_run *run, struct dw_throttle *t,
                             struct dw_throttle_ticket *ticket, struct dw_error *err)
{
    for (;;) {
        struct dw_error local;
        int64_t retry_ms = 0;

        dw_error_clear(&local);
        if (dw_throttle_admit(t, dw_throttle_now(t) + WAKE_MS, ticket, &retry_ms, &local) == DW_OK)
            return DW_OK;
        if (dw_initsync_stopping(run)) {
            if (err && !dw_error_is_set(err))
                *err = local;
            return DW_ERR_THROTTLED;
        }
        /* the limiter refuses at once when it knows capacity comes back later */
        if (retry_ms > 0)
            dw_initsync_sleep_ms(run, retry_ms < WAKE_MS ? (long) retry_ms : WAKE_MS);
    }
}
