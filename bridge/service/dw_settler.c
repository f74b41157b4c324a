/*
 * The settler: a queue of decided batch ids and a few threads draining it.
 *
 * An outcome message used to settle its batch in the HTTP thread before
 * answering: the hook reads that answer before its next batch, so with
 * fsync on, COMMIT PREPARED's flush on the target sat in front of the
 * client's next transaction, and under load every outcome was its own round
 * trip with its own wake-ups of a service thread and a target backend.  Now
 * the HTTP thread queues the id and answers; a settler thread takes what is
 * queued (up to MAX_GROUP) and settles it in one exchange per connector
 * (dw_outcome_settle_many).
 *
 * Correctness does not rest on the queue: the decision is in the in-doubt
 * table before the id is queued, and anything not settled (queue left at
 * stop, target error) is the resolver's, exactly as a lost outcome message.
 *
 * Order (G3): a later transaction's batch (of the same source session or
 * another) may now reach the target while an earlier transaction's COMMIT
 * PREPARED is still queued.  The target's own locks keep the rows in order
 * for everything but a DELETE: an upsert of a key that the prepared
 * transaction inserted, updated or deleted waits on that transaction (its
 * row lock, or its entry in the key's unique index) until the COMMIT
 * PREPARED, and then applies on top of it.  A DELETE of a row that the
 * prepared transaction inserted finds nothing (the insert is invisible to
 * it, and nothing makes it wait), and the row would appear afterwards.  So
 * every queued id gets a ticket, in queue order, and a batch with deletes
 * first waits (dw_settler_wait) until every outcome received before it is
 * applied (dw_pipeline.c).  The hook sends a transaction's outcome right
 * after its commit, before its client hears of the commit, so the outcome
 * of anything a later transaction could have seen has arrived by then.
 */
#include "bridge/service/dw_settler.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge/common/dw_log.h"
#include "bridge/service/dw_metrics.h"
#include "bridge/service/dw_outcome.h"

/*
 * Four threads, groups of at most 8.  Within a group each COMMIT PREPARED is
 * its own transaction on the target and, with fsync on, waits for its own WAL
 * flush, one after the other in one backend; several smaller groups in
 * parallel let the target's group commit merge those flushes.  Measured at 8
 * clients on 2 cores: +6% throughput with fsync on against 2 threads with
 * groups of 64, -5% with fsync off (where one big group saves wake-ups).
 */
#define SETTLER_THREADS 4
#define MAX_GROUP 8
/*
 * Outcomes queued or being applied, at most.  Each one is a prepared
 * transaction the target keeps a while longer than a synchronous settle
 * would (the hook's next batch no longer waits for it), so this bounds what
 * the settler adds to the target's max_prepared_transactions; past it an
 * outcome waits for room before it is answered, which also slows down
 * whoever outpaces the target.
 */
#define MAX_PENDING 32
/* How long an outcome waits for room before it is applied in the caller's thread. */
#define ROOM_WAIT_MS 30000
#define ID_SIZE sizeof(((struct dw_indoubt_info *) NULL)->id)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more;        /* the queue got an id, or stop */
static pthread_cond_t done;        /* a group is settled (or the settler stopped) */
struct queued {
    uint64_t ticket;
    char id[ID_SIZE];
};
static struct queued *queue;       /* a ring of qcap entries, qlen of them from qhead */
static size_t qhead, qlen, qcap;
static uint64_t next_ticket = 1;
static bool running, stopping;
static size_t busy_ids;            /* ids in groups being settled */
static uint64_t busy_first[SETTLER_THREADS];  /* first ticket of each thread's group, 0: none */
static pthread_t threads[SETTLER_THREADS];
static int nthreads;

/* Under lock: every ticket up to the one returned has been settled (or left to the resolver). */
static uint64_t settled_through(void)
{
    uint64_t low = next_ticket;

    if (qlen > 0 && queue[qhead].ticket < low)
        low = queue[qhead].ticket;
    for (int i = 0; i < SETTLER_THREADS; i++) {
        if (busy_first[i] != 0 && busy_first[i] < low)
            low = busy_first[i];
    }
    return low - 1;
}

static void settle_now(const char *id)
{
    struct dw_error err;

    dw_error_clear(&err);
    if (dw_outcome_settle(id, "outcome", &err) != DW_OK)
        dw_warn("batch %s: %s; the resolver will retry", id, err.message);
}

/* Under lock: room for one more id; false when out of memory. */
static bool make_room(void)
{
    size_t cap;
    struct queued *q;

    if (qlen < qcap)
        return true;
    cap = qcap ? qcap * 2 : 64;
    q = malloc(cap * sizeof(*q));
    if (!q)
        return false;
    for (size_t i = 0; i < qlen; i++)
        q[i] = queue[(qhead + i) % qcap];
    free(queue);
    queue = q;
    qcap = cap;
    qhead = 0;
    return true;
}

uint64_t dw_settler_submit(const char *id)
{
    struct timespec deadline = dw_monotonic_in_ms(ROOM_WAIT_MS);
    struct queued *q;
    uint64_t ticket;

    /*
     * Only connectors that settle in groups (PostgreSQL) go through the queue:
     * the order argument above rests on PostgreSQL's locking, and for the
     * others (MariaDB XA through ODBC) the background settle would gain
     * nothing but a later COMMIT.  Theirs is applied here, before the answer,
     * which the hook reads before its next batch.
     */
    if (!dw_outcome_batched_settle(id)) {
        settle_now(id);
        return 0;
    }
    pthread_mutex_lock(&lock);
    /* backpressure: wait for room, so that every outcome gets a ticket (the order of deletes rests on it) */
    while (running && !stopping && qlen + busy_ids >= MAX_PENDING) {
        if (pthread_cond_timedwait(&done, &lock, &deadline) != 0)
            break;
    }
    if (!running || stopping || strlen(id) >= ID_SIZE || qlen + busy_ids >= MAX_PENDING || !make_room()) {
        pthread_mutex_unlock(&lock);
        settle_now(id);
        return 0;
    }
    q = &queue[(qhead + qlen) % qcap];
    ticket = q->ticket = next_ticket++;
    memcpy(q->id, id, strlen(id) + 1);
    qlen++;
    pthread_cond_signal(&more);
    pthread_mutex_unlock(&lock);
    return ticket;
}

uint64_t dw_settler_last_ticket(void)
{
    uint64_t t;

    pthread_mutex_lock(&lock);
    t = next_ticket - 1;
    pthread_mutex_unlock(&lock);
    return t;
}

bool dw_settler_wait(uint64_t ticket, long timeout_ms)
{
    struct timespec deadline = dw_monotonic_in_ms(timeout_ms);
    bool ok = true;

    if (ticket == 0)
        return true;
    pthread_mutex_lock(&lock);
    while (running && settled_through() < ticket) {
        if (pthread_cond_timedwait(&done, &lock, &deadline) != 0) {
            ok = !running || settled_through() >= ticket;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return ok;
}

#ifdef DW_FAULT_INJECTION
/*
 * Fault injection (test builds only): DW_FAULT=delay-settle:MS makes every
 * group wait MS milliseconds before it goes to the target, so that a test
 * can show what a session's next batch does meanwhile.
 */
static void fault_before_settle(void)
{
    const char *f = getenv("DW_FAULT");

    if (f && strncmp(f, "delay-settle:", 13) == 0) {
        long ms = strtol(f + 13, NULL, 10);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) != 0) {
        }
    }
}
#endif

static void *settler_main(void *arg)
{
    int me = (int) (intptr_t) arg;
    char ids[MAX_GROUP][ID_SIZE];
    const char *ptrs[MAX_GROUP];

    pthread_mutex_lock(&lock);
    for (;;) {
        size_t n = 0;

        while (qlen == 0 && !stopping)
            pthread_cond_wait(&more, &lock);
        if (stopping)
            break;
        busy_first[me] = queue[qhead].ticket;
        while (qlen > 0 && n < MAX_GROUP) {
            memcpy(ids[n], queue[qhead].id, ID_SIZE);
            ptrs[n] = ids[n];
            n++;
            qhead = (qhead + 1) % qcap;
            qlen--;
        }
        busy_ids += n;
        pthread_mutex_unlock(&lock);
#ifdef DW_FAULT_INJECTION
        fault_before_settle();
#endif
        dw_outcome_settle_many(ptrs, n, "outcome");
        pthread_mutex_lock(&lock);
        busy_ids -= n;
        busy_first[me] = 0;
        pthread_cond_broadcast(&done);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

dw_errcode dw_settler_start(struct dw_error *err)
{
    pthread_condattr_t attr;

    pthread_mutex_lock(&lock);
    if (running) {
        pthread_mutex_unlock(&lock);
        return DW_OK;
    }
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&more, &attr);
    pthread_cond_init(&done, &attr);
    pthread_condattr_destroy(&attr);
    stopping = false;
    for (nthreads = 0; nthreads < SETTLER_THREADS; nthreads++) {
        if (pthread_create(&threads[nthreads], NULL, settler_main, (void *) (intptr_t) nthreads) != 0)
            break;
    }
    if (nthreads == 0) {
        pthread_cond_destroy(&more);
        pthread_cond_destroy(&done);
        pthread_mutex_unlock(&lock);
        return dw_error_set(err, DW_ERR_INTERNAL, "could not start the settler threads");
    }
    running = true;
    pthread_mutex_unlock(&lock);
    return DW_OK;
}

void dw_settler_stop(long wait_ms)
{
    struct timespec deadline;
    size_t left;

    pthread_mutex_lock(&lock);
    if (!running) {
        pthread_mutex_unlock(&lock);
        return;
    }
    deadline = dw_monotonic_in_ms(wait_ms);
    while ((qlen > 0 || busy_ids > 0) && pthread_cond_timedwait(&done, &lock, &deadline) == 0)
        ;
    stopping = true;
    pthread_cond_broadcast(&more);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_lock(&lock);
    left = qlen;
    free(queue);
    queue = NULL;
    qhead = qlen = qcap = 0;
    running = false;
    nthreads = 0;
    pthread_cond_broadcast(&done);
    pthread_cond_destroy(&more);
    pthread_cond_destroy(&done);
    pthread_mutex_unlock(&lock);
    if (left > 0)
        dw_warn("stopping with %zu outcome%s not applied; the resolver settles %s at the next start", left,
                left == 1 ? "" : "s", left == 1 ? "it" : "them");
}

size_t dw_settler_queued(void)
{
    size_t n;

    pthread_mutex_lock(&lock);
    n = qlen;
    pthread_mutex_unlock(&lock);
    return n;
}
